//! A whole session confined to a directory, as `--root` confines it, fed packets
//! whose paths are left as they are: absolute ones, `..` chains and symlink targets
//! pointing anywhere. Same input format and reply checks as the `session` target;
//! on top of them, nothing outside the root may change or be read.
//!
//! Each input gets a fresh scratch directory `base/` with `root/` (what the client
//! sees as `/`, holding symlinks planted to lead out: absolute and relative, to the
//! directory outside and to the secret in it) and `outside/` (a file of random bytes
//! made anew for each input, so the fuzzer cannot learn them, and a directory). The
//! working directory is `outside/`, so that a path resolved by mistake from the
//! working directory lands where the check looks. After every input:
//!
//! - `outside/` is exactly as it was made (names, kinds, modes, sizes, contents,
//!   modification times), and `base/` holds nothing else;
//! - no reply carried the secret bytes.
//!
//! A confinement bug must not reach the machine while it is being looked for: before
//! the first input the process restricts itself with Landlock to writing beneath
//! `base/` and the directory libFuzzer started in (its corpus and artifacts), reading
//! anywhere. Without Landlock the target refuses to run.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run confined`
#![no_main]

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};
use libfuzzer_sys::fuzz_target;
use sftp_server::output::Out;
use sftp_server::paths::Paths;
use sftp_server::server::{Flow, Session};
use sftp_server::wire::Request;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "../../tests/props/packets.rs"]
mod packets;
#[path = "../../tests/props/session.rs"]
mod session;
use packets::*;
use session::*;
#[path = "scratch.rs"]
mod scratch;

static BASE: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch directory (see `scratch`), made and Landlock applied on
/// first use.
fn base() -> &'static Path {
    BASE.get_or_init(|| {
        let base = scratch::make("confined", remove_base);
        lock_down(&base, scratch::home());
        base
    })
}

/// Landlock: write beneath `base` and `home` only, read anywhere.
fn lock_down(base: &Path, home: &Path) {
    let abi = ABI::V5;
    let all = AccessFs::from_all(abi);
    let fd = |p: &Path| PathFd::new(p).expect("open a Landlock rule's directory");
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| {
            r.add_rule(PathBeneath::new(
                fd(Path::new("/")),
                AccessFs::from_read(abi),
            ))
        })
        .and_then(|r| r.add_rule(PathBeneath::new(fd(base), all)))
        .and_then(|r| r.add_rule(PathBeneath::new(fd(home), all)))
        .and_then(|r| r.restrict_self())
        .expect("Landlock");
    assert_ne!(
        status.ruleset,
        RulesetStatus::NotEnforced,
        "the confined target needs Landlock, to keep a confinement bug from the machine"
    );
}

/// At exit: everything beneath the scratch directory. The directory itself stays,
/// empty (Landlock allows no removal beside it); the next run removes it.
extern "C" fn remove_base() {
    if let Some(base) = BASE.get() {
        scratch::leave();
        for name in ["root", "outside"] {
            remove_tree(&base.join(name));
        }
    }
}

/// One file under `outside/` as the check compares it.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    content: Vec<u8>,
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(top: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let m = std::fs::symlink_metadata(p).expect("stat outside");
        let content = if m.is_file() {
            std::fs::read(p).expect("read outside")
        } else {
            Vec::new()
        };
        let node = Node {
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            content,
        };
        out.insert(p.strip_prefix(top).unwrap().to_path_buf(), node);
        if m.is_dir() {
            for e in std::fs::read_dir(p).expect("list outside") {
                walk(top, &e.unwrap().path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// 32 random bytes, new for every input.
fn secret() -> Vec<u8> {
    let mut s = vec![0u8; 32];
    // SAFETY: writes at most `s.len()` bytes into `s`.
    let n = unsafe { libc::getrandom(s.as_mut_ptr().cast(), s.len(), 0) };
    assert_eq!(n, s.len() as isize, "getrandom");
    s
}

/// The fresh tree for one input: the root's paths, the secret, `outside/` as made.
fn fresh() -> (Paths, Vec<u8>, BTreeMap<PathBuf, Node>) {
    let base = base();
    std::env::set_current_dir(base).expect("cd to the scratch directory");
    let root = base.join("root");
    let outside = base.join("outside");
    remove_tree(&root);
    remove_tree(&outside);
    std::fs::create_dir(&root).expect("mkdir root");
    populate(&root);
    std::fs::create_dir_all(outside.join("dir")).expect("mkdir outside");
    let secret = secret();
    std::fs::write(outside.join("secret"), &secret).expect("write the secret");
    for (name, target) in [
        ("out-abs", outside.clone()),
        ("out-rel", PathBuf::from("../outside")),
        ("secret-abs", outside.join("secret")),
        ("secret-rel", PathBuf::from("../outside/secret")),
        ("dir/up", PathBuf::from("../../outside")),
    ] {
        symlink(target, root.join(name)).expect("plant a symlink");
    }
    let before = snapshot(&outside);
    let fd: OwnedFd = std::fs::File::open(&root).expect("open root").into();
    let (paths, _) = Paths::confined(fd, root);
    std::env::set_current_dir(&outside).expect("cd outside");
    (paths, secret, before)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let (header, bodies) = split_session_input(data);
    let (paths, secret, before) = fresh();
    let mut session = Session::new(config(header));
    session.paths = paths;
    let mut out = Out::default();
    let init = encode(&Request::Init { version: 3 });
    assert_eq!(session.handle_packet(&init, &mut out, None), Flow::Continue);
    out.clear();
    let mut handles = Handles::default();
    for body in bodies {
        let flow = session.handle_packet(body, &mut out, None);
        assert!(
            !contains(out.as_bytes(), &secret),
            "a reply carried the secret from outside the root"
        );
        match flow {
            Flow::Continue => {
                check_reply(body, out.as_bytes());
                handles.check(body, out.as_bytes());
            }
            Flow::Exit(_) => {
                assert!(out.is_empty(), "a reply before the session ended");
                break;
            }
        }
        // The kept parent directory is never dropped here, as if every packet came
        // in one read: the most any later request can reuse.
        out.clear();
    }
    session.close_all();
    let base = base();
    let outside = base.join("outside");
    assert_eq!(
        snapshot(&outside),
        before,
        "something outside the root changed"
    );
    let mut names: Vec<_> = std::fs::read_dir(base)
        .expect("list base")
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "something appeared beside the root"
    );
    scratch::leave();
});
