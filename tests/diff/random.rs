//! Seeded random request sequences: requests over a small pool of names (the fixture's
//! awkward ones among them) and the handles obtained so far, with occasional garbage.
//! A seed and a length define a run exactly (given servers that agree), so a failure
//! is replayed with
//!
//! ```sh
//! SFTP_DIFF_SEED=<seed> SFTP_DIFF_REQUESTS=<count> \
//!     cargo test --release --test tests diff_random_replay -- --nocapture
//! ```
//!
//! and long runs are the same command with a large count (or a loop over seeds).

use super::fixture::{self, NEWLINE, NON_UTF8, SPACE, deep, l255, l256, long};
use super::harness::{Pair, reserved_id};
use super::ops::*;
use crate::support::raw::*;

/// Requests per seed in a plain `cargo test` run.
const REQUESTS_PER_SEED: usize = 850;
/// At most this many handles open at once: then the generator closes one.
const MAX_OPEN: usize = 24;

/// splitmix64: small, fast, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Paths any request may use, mutating ones included. None of them, and no symlink
/// target below, leads out of a server's own copy (see `harness`).
fn pool() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "f",
        "e",
        "ro",
        "x",
        "hole",
        "hard1",
        "hard2",
        "owned",
        "recent",
        "future",
        "d",
        "d/g",
        "d/sub",
        "d/sub2",
        "d/sub2/h",
        "d/new",
        "empty",
        "empty/new",
        "locked",
        "locked/inner",
        "many",
        "many/n007",
        "link",
        "chain",
        "dlink",
        "dlink/new",
        "dangle",
        "abs",
        "loop1",
        "self",
        "up",
        "up/up-file",
        "up/up-dir",
        "through",
        "f/x",
        "sp link",
        "new",
        "new2",
        "new dir",
        "new\nline",
        ".",
        "",
        "..",
        "../up-file",
        "../up-dir",
        "../up-dir/inner",
        "../new-up",
        "./f",
        "d/../e",
        "d//g",
        "nonexistent/x",
        "{ROOT}/r/w/f",
        "{ROOT}/r/w/new",
        "{ROOT}/r/up-file",
        "deep",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let mut deep_new = deep();
    deep_new.extend_from_slice(b"/new");
    let mut deep_leaf = deep();
    deep_leaf.extend_from_slice(b"/leaf");
    let mut long_end = long();
    long_end.extend_from_slice(b"/end");
    let mut long_new = long();
    long_new.extend_from_slice(b"/new");
    v.extend([
        b"\x80new".to_vec(),
        SPACE.to_vec(),
        NEWLINE.to_vec(),
        NON_UTF8.to_vec(),
        l255(),
        l256(),
        deep(),
        deep_new,
        deep_leaf,
        long(),
        long_end,
        long_new,
    ]);
    v
}

/// `path` after as many `./` (and a `/`) as make it `len` bytes long.
fn padded(path: &[u8], len: usize) -> Vec<u8> {
    let mut p = b"./".repeat((len - path.len()) / 2);
    if p.len() + path.len() < len {
        p.push(b'/');
    }
    p.extend_from_slice(path);
    p
}

/// Paths around PATH_MAX (4096 bytes, a system call's limit and OpenSSH's REALPATH
/// buffers) and NAME_MAX (255): relative paths whose absolute form is longer, or
/// that are themselves just under or over, through existing and missing directories.
/// Confined, ours makes a relative path absolute inside the root (`/r/w/` more) and
/// resolves the parent of a final name apart from the name: the ones just under the
/// limit are kept 6 bytes shorter there (a trailing slash may follow).
fn long_paths(confined: bool) -> Vec<Vec<u8>> {
    let under = if confined { 4089 } else { 4095 };
    let name = |c: u8, n: usize| vec![c; n];
    let join = |a: &[u8], b: &[u8]| [a, b"/", b].concat();
    // The first `levels` directories of `long`.
    let long_part = |levels: usize| {
        let l = long();
        let end = l
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .nth(levels)
            .unwrap_or(l.len());
        l[..end].to_vec()
    };
    vec![
        padded(b"f", under - 5),
        padded(b"f", under),
        padded(b"f", 4096),
        padded(b"d/g", under),
        padded(b"new", under),
        padded(b"nonexistent/x", 4096),
        [b"a/".repeat(2040), b"z".to_vec()].concat(),
        join(b"d", &name(b'N', 255)),
        join(b"d", &name(b'N', 256)),
        join(b"nonexistent", &name(b'N', 255)),
        join(&l255(), b"x"),
        join(&deep(), &l256()),
        join(&long_part(24), &name(b'N', 255)),
        join(&long_part(25), &l255()),
        join(&long_part(20), b"../../x"),
        [b"a/".repeat(2100), b"z".to_vec()].concat(),
        join(&long(), &name(b'N', 255)),
    ]
}

/// Extra paths for requests that change nothing: above the copy, and the root.
const READ_ONLY: &[&str] = &["../..", "../../..", "{ROOT}"];
/// Extra paths for REALPATH and expand-path only.
const NAMES_ONLY: &[&str] = &["/", "/..", "//", "../../../../../..", "~", "~/f", "~root"];
/// What a confined run sends instead of a path that names something outside the copy
/// (or a home directory), which a confined server answers differently by design.
fn inside_copy(path: &str) -> &str {
    match path {
        "../../.." => "../..",
        p if p.starts_with('~') => ".",
        p => p,
    }
}
/// Symbolic link targets: relative ones with at most one `..`, and absolute ones into
/// the copy or nowhere. "Nowhere" has a missing parent, so that an OPEN with CREAT
/// through the link cannot create it (OpenSSH's server would, outside the copy).
const TARGETS: &[&str] = &[
    "f",
    "d",
    "nowhere",
    "d/g",
    "link",
    "loop1",
    "self",
    "..",
    "../up-dir",
    "{ROOT}/r/w/f",
    "{ROOT}/r/w/d",
    "{ROOT}/r/up-dir",
    "/nonexistent/target",
    "",
    "sp ace",
    "new",
];

const PFLAGS: &[u32] = &[
    SSH_FXF_READ,
    SSH_FXF_READ,
    SSH_FXF_WRITE,
    SSH_FXF_READ | SSH_FXF_WRITE,
    SSH_FXF_READ | SSH_FXF_WRITE,
    SSH_FXF_WRITE | SSH_FXF_CREAT,
    SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
    SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL,
    SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT,
    SSH_FXF_WRITE | SSH_FXF_APPEND,
    SSH_FXF_WRITE | SSH_FXF_APPEND | SSH_FXF_CREAT,
    SSH_FXF_READ | SSH_FXF_TRUNC,
    0,
    0x40,
];
const OFFSETS: &[u64] = &[
    0,
    0,
    1,
    10,
    999,
    1000,
    4096,
    65536,
    1 << 20,
    (1 << 20) + 3,
    1 << 21,
    u64::MAX,
    1 << 63,
];
const LENGTHS: &[u32] = &[1, 16, 100, 1000, 4096, 65536, 261_120, 300_000, 0];
const SIZES: &[u64] = &[0, 1, 100, 1000, 5000, 1 << 20];
const TIMES: &[u32] = &[0, 1, 1_000_000_000, 1_234_567_890, 2_000_000_000, u32::MAX];
const IDS: &[u32] = &[0, 1, 65534, 4242];
const PERMS: &[u32] = &[
    0o644, 0o600, 0o755, 0o700, 0o444, 0o000, 0o7777, 0o4755, 0o100640,
];

/// Generates the requests of one run.
pub struct Generator {
    rng: Rng,
    /// Our server runs confined to its copy: nothing leads above the copy, and no
    /// home directory is asked for (see `inside_copy`).
    confined: bool,
    pool: Vec<Vec<u8>>,
    next_id: u32,
    /// Steps whose handles were closed, most recent last (a few).
    closed: Vec<usize>,
    open_before: Vec<(usize, bool)>,
    /// Steps generated so far: the index the next step gets in the pair's history.
    steps: usize,
    /// The OPEN flags of the OPEN steps, by step index.
    pflags: std::collections::HashMap<usize, u32>,
}

impl Generator {
    pub fn new(seed: u64, confined: bool) -> Generator {
        Generator {
            rng: Rng::new(seed),
            confined,
            pool: [pool(), long_paths(confined)].concat(),
            next_id: 1,
            closed: Vec::new(),
            open_before: Vec::new(),
            steps: 0,
            pflags: std::collections::HashMap::new(),
        }
    }

    /// Notes a generated step, for the open modes of the handles it may give.
    fn generated(&mut self, op: &Op) {
        if let Op::Open(_, pflags, _) = op.base() {
            self.pflags.insert(self.steps, *pflags);
        }
        self.steps += 1;
    }

    /// An open handle whose kind suits `want` (its OPEN flags; None for a directory
    /// handle), or any handle if none does.
    fn handle_where(&mut self, open: &[(usize, bool)], want: fn(Option<u32>) -> bool) -> H {
        let suits: Vec<usize> = open
            .iter()
            .filter(|(s, dir)| {
                want(if *dir {
                    None
                } else {
                    self.pflags.get(s).copied()
                })
            })
            .map(|(s, _)| *s)
            .collect();
        match suits.is_empty() {
            true => self.handle(open, None),
            false => h(*self.rng.pick(&suits)),
        }
    }

    fn path(&mut self) -> Vec<u8> {
        let mut p = self.rng.pick(&self.pool).clone();
        // Now and then a trailing slash, which asks for a directory (and follows a
        // final symlink) whatever the request.
        if self.rng.chance(15) && !p.is_empty() && !p.ends_with(b"/") {
            p.push(b'/');
        }
        p
    }

    /// `path` as this run sends it (see `inside_copy`).
    fn outside(&self, path: &str) -> Vec<u8> {
        match self.confined {
            true => inside_copy(path).as_bytes().to_vec(),
            false => path.as_bytes().to_vec(),
        }
    }

    fn read_only_path(&mut self) -> Vec<u8> {
        if self.rng.chance(100) {
            let path = *self.rng.pick(READ_ONLY);
            self.outside(path)
        } else {
            self.path()
        }
    }

    fn attrs(&mut self) -> Attrs {
        let mut a = Attrs::none();
        if self.rng.chance(300) {
            a = a.with_size(*self.rng.pick(SIZES));
        }
        if self.rng.chance(250) {
            a = a.with_uidgid(*self.rng.pick(IDS), *self.rng.pick(IDS));
        }
        if self.rng.chance(500) {
            let perm = if self.rng.chance(200) {
                self.rng.next() as u32 & 0o7777
            } else {
                *self.rng.pick(PERMS)
            };
            a = a.with_permissions(perm);
        }
        if self.rng.chance(300) {
            a = a.with_times(*self.rng.pick(TIMES), *self.rng.pick(TIMES));
        }
        if self.rng.chance(20) {
            a = a.with_extended(b"vendor@example.com", b"value");
        }
        a
    }

    /// A handle: mostly an open one (of the wanted kind if there is one), sometimes a
    /// closed one or made-up bytes.
    fn handle(&mut self, open: &[(usize, bool)], want_dir: Option<bool>) -> H {
        let r = self.rng.below(100);
        if r < 4 || (open.is_empty() && self.closed.is_empty()) {
            let bytes: &[&[u8]] = &[b"", b"\xff\xff\xff", b"\xff\xff\xff\xf0", b"bogus!!!"];
            return H::Bytes(self.rng.pick(bytes).to_vec());
        }
        if (r < 8 && !self.closed.is_empty()) || open.is_empty() {
            return h(*self.rng.pick(&self.closed));
        }
        let kind: Vec<usize> = open
            .iter()
            .filter(|(_, d)| want_dir.is_none_or(|w| w == *d))
            .map(|(s, _)| *s)
            .collect();
        if !kind.is_empty() && self.rng.chance(850) {
            h(*self.rng.pick(&kind))
        } else {
            h(self.rng.pick(open).0)
        }
    }

    fn id(&mut self) -> u32 {
        if self.rng.chance(20) {
            let id = self.rng.next() as u32;
            if !reserved_id(id) {
                return id;
            }
        }
        self.next_id = self.next_id.wrapping_add(1);
        if reserved_id(self.next_id) {
            self.next_id = 1;
        }
        self.next_id
    }

    /// The next request, given the handles open now.
    pub fn next(&mut self, open: &[(usize, bool)]) -> Step {
        for gone in self.open_before.iter().filter(|x| !open.contains(x)) {
            self.closed.push(gone.0);
        }
        let excess = self.closed.len().saturating_sub(8);
        self.closed.drain(..excess);
        self.open_before = open.to_vec();
        let id = self.id();
        let op = if open.len() >= MAX_OPEN {
            close(self.handle(open, None))
        } else if self.rng.chance(12) {
            self.garbage(open)
        } else {
            self.request(open)
        };
        self.generated(&op);
        Step { id, op }
    }

    /// The next request for a pipelined run: well-formed, of a known type, never a
    /// second INIT.
    pub fn next_well_formed(&mut self, open: &[(usize, bool)]) -> Step {
        let id = self.id();
        loop {
            let op = self.request(open);
            if !matches!(op, Op::Init(_)) {
                self.generated(&op);
                return Step { id, op };
            }
        }
    }

    fn request(&mut self, open: &[(usize, bool)]) -> Op {
        match self.rng.below(100) {
            0..=10 => {
                let path = self.path();
                let pflags = *self.rng.pick(PFLAGS);
                let attrs = if self.rng.chance(400) {
                    self.attrs()
                } else {
                    Attrs::none()
                };
                Op::Open(path, pflags, attrs)
            }
            11..=17 => close(self.handle(open, None)),
            18..=26 => {
                let hd = self.handle(open, Some(false));
                let offset = if self.rng.chance(500) {
                    self.rng.below(2000)
                } else {
                    *self.rng.pick(OFFSETS)
                };
                read(hd, offset, *self.rng.pick(LENGTHS))
            }
            27..=35 => {
                let hd = self.handle(open, Some(false));
                let offset = if self.rng.chance(500) {
                    self.rng.below(2000)
                } else {
                    *self.rng.pick(OFFSETS)
                };
                let len = *self.rng.pick(&[0usize, 1, 10, 100, 4000, 40_000]);
                let data = self.rng.bytes(len);
                Op::Write(hd, offset, data)
            }
            36..=40 => Op::Lstat(self.read_only_path()),
            41..=45 => Op::Stat(self.read_only_path()),
            46..=49 => fstat(self.handle(open, None)),
            50..=53 => {
                let path = self.path();
                Op::Setstat(path, self.attrs())
            }
            54..=56 => {
                let hd = self.handle(open, Some(false));
                fsetstat(hd, self.attrs())
            }
            57..=60 => Op::Opendir(self.read_only_path()),
            61..=65 => readdir(self.handle(open, Some(true))),
            66..=68 => Op::Remove(self.path()),
            69..=71 => {
                let path = self.path();
                let attrs = if self.rng.chance(500) {
                    self.attrs()
                } else {
                    Attrs::none()
                };
                Op::Mkdir(path, attrs)
            }
            72..=73 => Op::Rmdir(self.path()),
            74..=76 => {
                let path = if self.rng.chance(150) {
                    let path = *self.rng.pick(NAMES_ONLY);
                    self.outside(path)
                } else {
                    self.read_only_path()
                };
                Op::Realpath(path)
            }
            77..=79 => Op::Rename(self.path(), self.path()),
            80..=81 => Op::Readlink(self.read_only_path()),
            82..=84 => {
                let target = if self.rng.chance(200) {
                    // The last component of a pool path.
                    let path = self.path();
                    path.rsplit(|&b| b == b'/')
                        .next()
                        .unwrap_or_default()
                        .to_vec()
                } else {
                    self.rng.pick(TARGETS).as_bytes().to_vec()
                };
                Op::Symlink(target, self.path())
            }
            85..=86 => Op::PosixRename(self.path(), self.path()),
            87..=88 => Op::Hardlink(self.path(), self.path()),
            89 => {
                let path = self.path();
                Op::Lsetstat(path, self.attrs())
            }
            90 => Op::Statvfs(self.read_only_path()),
            91 => Op::Fstatvfs(self.handle(open, None)),
            92 => Op::Fsync(self.handle(open, None)),
            93 => Op::Limits,
            94 => {
                let path = if self.rng.chance(300) {
                    let path = *self.rng.pick(NAMES_ONLY);
                    self.outside(path)
                } else {
                    self.read_only_path()
                };
                Op::ExpandPath(path)
            }
            95..=97 => {
                // Mostly two file handles; now and then a source that cannot be read
                // (opened for writing only), or a destination that cannot be written
                // (opened for reading only, or a directory's handle).
                let (from, to) = match self.rng.below(6) {
                    0 => (
                        self.handle_where(open, |p| {
                            p.is_some_and(|p| p & (SSH_FXF_READ | SSH_FXF_WRITE) == SSH_FXF_WRITE)
                        }),
                        self.handle(open, Some(false)),
                    ),
                    1 => (
                        self.handle(open, Some(false)),
                        self.handle_where(open, |p| p.is_none_or(|p| p & SSH_FXF_WRITE == 0)),
                    ),
                    _ => (
                        self.handle(open, Some(false)),
                        self.handle(open, Some(false)),
                    ),
                };
                Op::CopyData {
                    from,
                    offset: *self.rng.pick(&[0, 0, 10, 500, 999, 5000]),
                    // Never 0 ("to the end of the file"): from a file into another
                    // name of itself, OpenSSH's server would copy forever.
                    len: *self.rng.pick(&[1, 100, 1000, 1 << 20]),
                    to,
                    to_offset: *self.rng.pick(&[0, 0, 10, 2000, 1 << 20]),
                }
            }
            98 => match self.rng.below(3) {
                0 => {
                    let user = *self.rng.pick(&["", "root", "daemon"]);
                    match self.confined {
                        true => Op::Limits,
                        false => Op::HomeDirectory(user.into()),
                    }
                }
                1 => {
                    let n = self.rng.below(4) as usize;
                    let uids = (0..n).map(|_| *self.rng.pick(IDS)).collect();
                    let gids = (0..n).map(|_| *self.rng.pick(IDS)).collect();
                    Op::UsersGroupsById(uids, gids)
                }
                _ => Op::Extended(b"unknown@diff.test".to_vec(), self.rng.bytes(3)),
            },
            _ => Op::Init(3),
        }
    }

    /// A request damaged in one of the ways `Mangle` knows, or of an unknown type.
    /// Unknown types are rare: OpenSSH's server answers nothing to them, and the
    /// harness has to wait to see that.
    fn garbage(&mut self, open: &[(usize, bool)]) -> Op {
        let op = self.request(open);
        match self.rng.below(40) {
            0..=14 => Op::Mangled(
                Box::new(op),
                Mangle::CutTail(1 + self.rng.below(8) as usize),
            ),
            15..=26 => Op::Mangled(Box::new(op), Mangle::Overrun),
            27..=38 => {
                let n = self.rng.below(12) as usize;
                Op::Mangled(Box::new(op), Mangle::Append(self.rng.bytes(n)))
            }
            _ => {
                let typ = *self.rng.pick(&[0u8, 2, 21, 100, 150, 201, 255]);
                let n = self.rng.below(12) as usize;
                Op::Unknown(typ, self.rng.bytes(n))
            }
        }
    }
}

/// Runs `requests` random requests from `seed`; panics with the replay command and
/// the history at the first difference that is not allowed. With `keep_going`, it
/// notes each difference, makes our copy OpenSSH's again, restarts both sessions and
/// goes on, and returns every difference found.
pub fn run_seed(seed: u64, requests: usize, keep_going: bool, confined: bool) -> Vec<String> {
    let mut pair = Pair::with(&format!("random-{seed}"), fixture::standard, confined)
        .unwrap_or_else(|m| panic!("seed {seed}: {}", m.what));
    let mut generator = Generator::new(seed, confined);
    let title = |pair: &Pair| {
        format!(
            "random sequence, seed {seed}{}\nreplay: SFTP_DIFF_SEED={seed} SFTP_DIFF_REQUESTS={}{} \
             cargo test --release --test tests diff_random_replay -- --nocapture",
            if confined {
                ", ours confined with --root"
            } else {
                ""
            },
            pair.steps(),
            if confined {
                " SFTP_DIFF_CONFINED=1"
            } else {
                ""
            },
        )
    };
    let mut found = Vec::new();
    for _ in 0..requests {
        let step = generator.next(&pair.open_handles());
        if let Err(m) = pair.step(step) {
            if !keep_going {
                panic!("{}", pair.report(&title(&pair), &m));
            }
            found.push(format!(
                "{}\n  {}\n  after:\n{}",
                title(&pair),
                m.what,
                pair.recent(40)
            ));
            pair.recover();
        }
    }
    if let Err(m) = pair.finish() {
        if !keep_going {
            panic!("{}", pair.report(&title(&pair), &m));
        }
        found.push(format!("{}\n  {}", title(&pair), m.what));
    }
    found
}

/// As [`run_seed`], with the requests sent in pipelined runs of 1 to 24 (one write
/// each, the barrier only after the last), as sshfs and rclone send them.
pub fn run_seed_pipelined(seed: u64, requests: usize, confined: bool) {
    let mut pair = Pair::with(&format!("pipelined-{seed}"), fixture::standard, confined)
        .unwrap_or_else(|m| panic!("seed {seed}: {}", m.what));
    let mut generator = Generator::new(seed, confined);
    let mut run_rng = Rng::new(seed ^ 0x9e37_79b9);
    let title = |pair: &Pair| {
        format!(
            "pipelined random sequence, seed {seed}\nreplay: SFTP_DIFF_SEED={seed} \
             SFTP_DIFF_REQUESTS={} SFTP_DIFF_PIPELINED=1{} \
             cargo test --release --test tests diff_random_replay -- --nocapture",
            pair.steps(),
            if confined {
                " SFTP_DIFF_CONFINED=1"
            } else {
                ""
            },
        )
    };
    let mut sent = 0;
    while sent < requests {
        let n = (1 + run_rng.below(24) as usize).min(requests - sent);
        let open = pair.open_handles();
        // A run ends after an OPEN, OPENDIR or CLOSE: the handle table changes there,
        // and a handle used after it in the same run would meet OpenSSH's reuse of
        // handle slots (a named difference) where the tables seen before the run
        // cannot tell. It also ends after a READDIR, which is read to the end.
        let mut steps = Vec::new();
        while steps.len() < n {
            let step = generator.next_well_formed(&open);
            let last = matches!(
                step.op.base(),
                Op::Open(..) | Op::Opendir(_) | Op::Close(_) | Op::Readdir(_)
            );
            steps.push(step);
            if last {
                break;
            }
        }
        let n = steps.len();
        if let Err(m) = pair.step_run(steps) {
            panic!("{}", pair.report(&title(&pair), &m));
        }
        sent += n;
    }
    if let Err(m) = pair.finish() {
        panic!("{}", pair.report(&title(&pair), &m));
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

#[test]
fn diff_random_seeds_1_to_3() {
    for seed in 1..=3 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, false).is_empty());
    }
}

#[test]
fn diff_random_seeds_4_to_6() {
    for seed in 4..=6 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, false).is_empty());
    }
}

#[test]
fn diff_random_seeds_7_to_9() {
    for seed in 7..=9 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, false).is_empty());
    }
}

#[test]
fn diff_random_seeds_10_to_12() {
    for seed in 10..=12 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, false).is_empty());
    }
}

/// The same random sequences with our server confined to its copy (`--root`), paths
/// shown relative to the copy on both sides.
#[test]
fn diff_random_confined_seeds_1_to_3() {
    // OpenSSH's server has no --root to compare with itself.
    if crate::support::testing_openssh() {
        return;
    }
    for seed in 1..=3 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, true).is_empty());
    }
}

#[test]
fn diff_random_confined_seeds_4_to_6() {
    if crate::support::testing_openssh() {
        return;
    }
    for seed in 4..=6 {
        assert!(run_seed(seed, REQUESTS_PER_SEED, false, true).is_empty());
    }
}

/// The random requests in pipelined runs, unconfined and confined.
#[test]
fn diff_random_pipelined_seeds_1_to_3() {
    for seed in 1..=3 {
        run_seed_pipelined(seed, REQUESTS_PER_SEED, false);
    }
}

#[test]
fn diff_random_pipelined_confined_seeds_1_to_2() {
    if crate::support::testing_openssh() {
        return;
    }
    for seed in 1..=2 {
        run_seed_pipelined(seed, REQUESTS_PER_SEED, true);
    }
}

/// `SFTP_DIFF_SEED=<n>` runs that seed for `SFTP_DIFF_REQUESTS` requests (default: as
/// many as a plain run gives one seed); `SFTP_DIFF_SEEDS=<count>` runs that many seeds
/// from it. `SFTP_DIFF_KEEP_GOING=1` lists every difference instead of stopping at the
/// first. Without `SFTP_DIFF_SEED`, nothing.
#[test]
fn diff_random_replay() {
    let Some(first) = env_u64("SFTP_DIFF_SEED") else {
        return;
    };
    let requests = env_u64("SFTP_DIFF_REQUESTS").unwrap_or(REQUESTS_PER_SEED as u64);
    let seeds = env_u64("SFTP_DIFF_SEEDS").unwrap_or(1);
    let keep_going = env_u64("SFTP_DIFF_KEEP_GOING").unwrap_or(0) != 0;
    let confined = env_u64("SFTP_DIFF_CONFINED").unwrap_or(0) != 0;
    if env_u64("SFTP_DIFF_PIPELINED").unwrap_or(0) != 0 {
        for seed in first..first + seeds {
            run_seed_pipelined(seed, requests as usize, confined);
        }
        return;
    }
    let mut found = Vec::new();
    for seed in first..first + seeds {
        let f = run_seed(seed, requests as usize, keep_going, confined);
        eprintln!("seed {seed}: {requests} requests, {} differences", f.len());
        found.extend(f);
    }
    assert!(
        found.is_empty(),
        "{} differences:\n{}",
        found.len(),
        found.join("\n")
    );
}
