//! The workloads: what each one does to a server, the files it needs, and the checks
//! around the measured part (written files are verified and removed afterwards,
//! outside the timing).

use crate::client::{Conn, Job, Result, pflags};
use crate::jobs::{
    Chained, MetaDir, MetaFile, OneExtended, ReadDir, ReadFile, SmallCreate, SmallRead, Stat,
    WriteFile, entry_name, small_path, small_seed,
};
use crate::pattern;
use crate::server::{self, Exit, Server, Transport, Usage};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The seed of the source file that READ and `sftp get`/`put` use.
const SRC_SEED: u64 = 1;
/// The seed the file that WRITE overwrites starts with.
const OVER_SEED: u64 = 2;
/// The request sizes of the bulk workloads: `sftp`'s default and OpenSSH's largest
/// READ (`SFTP_MAX_READ_LENGTH`).
pub const CHUNKS: [u32; 2] = [32768, 261120];

/// How big the workloads are.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Bytes of the READ/WRITE/sftp files.
    pub file: u64,
    /// STAT and LSTAT requests.
    pub stats: usize,
    /// Entries of the READDIR directory.
    pub entries: usize,
    /// Small files created and read.
    pub small: usize,
    pub small_size: usize,
    /// MKDIR, RENAME, RMDIR cycles: fewer, as rmdir(2) alone can take milliseconds
    /// (ext4 with online discard).
    pub meta_dirs: usize,
    /// OPEN, CLOSE, RENAME, REMOVE cycles.
    pub meta_files: usize,
}

impl Sizes {
    /// Full sizes, or all divided by `divisor`.
    pub fn new(divisor: usize) -> Sizes {
        Sizes {
            file: (1 << 30) / divisor as u64,
            stats: 100_000 / divisor,
            entries: 100_000 / divisor,
            small: 10_000 / divisor,
            small_size: 4096,
            meta_dirs: 1_000 / divisor,
            meta_files: 10_000 / divisor,
        }
    }

    /// The share of one of `n` concurrent sessions that together do `total` times
    /// these amounts (at least one of each).
    pub fn per_session(self, n: usize, total: usize) -> Sizes {
        let share = |x: usize| (x * total / n).max(1);
        Sizes {
            file: (self.file * total as u64 / n as u64).max(1),
            stats: share(self.stats),
            entries: share(self.entries),
            small: share(self.small),
            small_size: self.small_size,
            meta_dirs: share(self.meta_dirs),
            meta_files: share(self.meta_files),
        }
    }

    fn src(&self) -> String {
        format!("src-{}.bin", self.file)
    }

    fn over(&self) -> String {
        format!("over-{}.bin", self.file)
    }

    fn big_dir(&self) -> String {
        format!("dir-{}", self.entries)
    }

    fn small_dir(&self) -> String {
        format!("small-{}x{}", self.small, self.small_size)
    }
}

const META_DIR: &str = "meta";
const SMALL_NEW_DIR: &str = "small-new";
const NEW_FILE: &str = "new.bin";
/// What copy-file and `cp` write.
const COPY_OUT: &str = "copy.bin";

/// What a workload moves: bytes, or a count of some unit.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    Bytes(u64),
    Count(u64, &'static str),
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Read(u32),
    WriteNew(u32),
    WriteOver(u32),
    Stat {
        lstat: bool,
    },
    ReadDir,
    SmallCreate,
    SmallRead,
    MetaDir,
    MetaFile,
    SftpGet(Option<u32>),
    SftpPut(Option<u32>),
    /// check-file-name sha256 of the source file; OpenSSH has no check-file, so its
    /// column is `sha256sum` on the same file.
    CheckFile,
    /// copy-file of the source file; OpenSSH's column is `cp` on the same file system.
    CopyFile,
}

impl Kind {
    pub fn is_sftp(self) -> bool {
        matches!(self, Kind::SftpGet(_) | Kind::SftpPut(_))
    }

    /// Compared with a program (`sha256sum`, `cp`) in OpenSSH's column, as OpenSSH's
    /// server has no such request; not run with `--sessions`.
    pub fn is_against_program(self) -> bool {
        matches!(self, Kind::CheckFile | Kind::CopyFile)
    }
}

#[derive(Debug, Clone)]
pub struct Workload {
    /// Short name, matched by `--only`.
    pub name: String,
    /// One line for the legend.
    pub description: String,
    pub amount: Amount,
    pub kind: Kind,
}

impl Workload {
    /// The workload done by `n` sessions at once, each as described: `n` times the
    /// amount.
    pub fn times(mut self, n: usize) -> Workload {
        if n > 1 {
            self.description = format!("{n} sessions, each: {}", self.description);
            self.amount = match self.amount {
                Amount::Bytes(b) => Amount::Bytes(b * n as u64),
                Amount::Count(c, unit) => Amount::Count(c * n as u64, unit),
            };
        }
        self
    }
}

/// Every workload, in the order they run within a round.
pub fn all(s: &Sizes) -> Vec<Workload> {
    let size = if s.file % (1 << 30) == 0 {
        format!("{} GiB", s.file >> 30)
    } else {
        format!("{} MiB", s.file >> 20)
    };
    let bytes = Amount::Bytes(s.file);
    let mut w = Vec::new();
    let mut add = |name: String, description: String, amount, kind| {
        w.push(Workload {
            name,
            description,
            amount,
            kind,
        })
    };
    for c in CHUNKS {
        add(
            format!("read-{c}"),
            format!("sequential READ of a cached {size} file, {c}-byte requests"),
            bytes,
            Kind::Read(c),
        );
    }
    for c in CHUNKS {
        add(
            format!("write-new-{c}"),
            format!("sequential WRITE of {size} into a new file, {c}-byte requests"),
            bytes,
            Kind::WriteNew(c),
        );
    }
    for c in CHUNKS {
        add(
            format!("write-over-{c}"),
            format!(
                "sequential WRITE of {size} over an existing file (no TRUNC), {c}-byte requests"
            ),
            bytes,
            Kind::WriteOver(c),
        );
    }
    for (name, lstat) in [("stat", false), ("lstat", true)] {
        add(
            name.into(),
            format!(
                "{} {} requests, cycling through the files of a {}-entry directory",
                s.stats,
                name.to_uppercase(),
                s.entries
            ),
            Amount::Count(s.stats as u64, name),
            Kind::Stat { lstat },
        );
    }
    add(
        "readdir".into(),
        format!(
            "OPENDIR, READDIR until EOF, CLOSE of a {}-entry directory, one request at a time",
            s.entries
        ),
        Amount::Count(s.entries as u64, "entries"),
        Kind::ReadDir,
    );
    add(
        "small-create".into(),
        format!(
            "{} files of {} bytes created: OPEN (CREAT|TRUNC|WRITE), WRITE, CLOSE",
            s.small, s.small_size
        ),
        Amount::Count(s.small as u64, "files"),
        Kind::SmallCreate,
    );
    add(
        "small-read".into(),
        format!(
            "{} files of {} bytes read: OPEN, READ, READ (EOF), CLOSE",
            s.small, s.small_size
        ),
        Amount::Count(s.small as u64, "files"),
        Kind::SmallRead,
    );
    add(
        "meta-dir".into(),
        format!("{} cycles of MKDIR, RENAME, RMDIR", s.meta_dirs),
        Amount::Count(s.meta_dirs as u64, "cycles"),
        Kind::MetaDir,
    );
    add(
        "meta-file".into(),
        format!(
            "{} cycles of OPEN (CREAT|EXCL), CLOSE, RENAME, REMOVE",
            s.meta_files
        ),
        Amount::Count(s.meta_files as u64, "cycles"),
        Kind::MetaFile,
    );
    for b in [None, Some(CHUNKS[1])] {
        let (suffix, flag) = match b {
            None => (String::new(), String::new()),
            Some(b) => (format!("-B{b}"), format!(" -B {b}")),
        };
        add(
            format!("sftp-get{suffix}"),
            format!("`sftp{flag} -D server -b batch`: get of a cached {size} file"),
            bytes,
            Kind::SftpGet(b),
        );
        add(
            format!("sftp-put{suffix}"),
            format!("`sftp{flag} -D server -b batch`: put of a cached {size} file"),
            bytes,
            Kind::SftpPut(b),
        );
    }
    add(
        "check-file".into(),
        format!(
            "check-file-name sha256 of a cached {size} file; OpenSSH's column: `sha256sum` of it"
        ),
        bytes,
        Kind::CheckFile,
    );
    add(
        "copy-file".into(),
        format!("copy-file of a cached {size} file; OpenSSH's column: `cp` of it"),
        bytes,
        Kind::CopyFile,
    );
    w
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub elapsed: Duration,
    pub usage: Usage,
    /// The client's CPU time over the measured part (the benchmark's own client, or
    /// OpenSSH's sftp for the sftp-* workloads): near `elapsed`, the client and not
    /// the server sets the pace.
    pub client_cpu: Duration,
    /// Proportional set size (Pss) per server process once the work is done, KiB;
    /// measured with `--sessions` only (0 otherwise).
    pub pss_kib: u64,
}

/// CPU time (user + system) of the calling thread so far.
pub fn thread_cpu() -> Duration {
    cpu_of(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

/// CPU time (user + system) of every child process waited for so far, and of their
/// waited-for descendants.
fn children_cpu() -> Duration {
    cpu_of(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

fn cpu_of(who: nix::sys::resource::UsageWho) -> Duration {
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    nix::sys::resource::getrusage(who)
        .map(|u| Duration::from_micros(us(u.user_time()) + us(u.system_time())))
        .unwrap_or_default()
}

/// Everything a run needs besides the server.
pub struct Ctx {
    pub dir: PathBuf,
    pub sizes: Sizes,
    pub transport: Transport,
    pub window: usize,
    /// This benchmark's own executable, started as the usage-recording wrapper.
    pub exe: PathBuf,
    pub sftp: PathBuf,
    seeds: Cell<u64>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Writes dirty pages back so one run's writeback does not land in the next.
pub fn settle() {
    nix::unistd::sync();
}

impl Ctx {
    pub fn new(
        dir: PathBuf,
        sizes: Sizes,
        transport: Transport,
        window: usize,
        exe: PathBuf,
        sftp: PathBuf,
    ) -> Ctx {
        Ctx {
            dir,
            sizes,
            transport,
            window,
            exe,
            sftp,
            seeds: Cell::new(100),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A seed not used before in this run, so every write is told from the last.
    fn fresh_seed(&self) -> u64 {
        let s = self.seeds.get();
        self.seeds.set(s + 1);
        s
    }

    /// Creates (or checks and reuses) the files the selected workloads need, and
    /// leaves the READ source in the page cache.
    pub fn prepare(&self, workloads: &[Workload]) -> Result<()> {
        let needs = |f: fn(Kind) -> bool| workloads.iter().any(|w| f(w.kind));
        let s = &self.sizes;
        if needs(|k| matches!(k, Kind::Read(_)) || k.is_sftp() || k.is_against_program()) {
            let path = self.path(&s.src());
            if pattern::verify_file(&path, s.file, SRC_SEED).is_err() {
                eprintln!("creating {}", path.display());
                pattern::create_file(&path, s.file, SRC_SEED).map_err(io(&path))?;
                // Read it back: checks it, and leaves it cached.
                pattern::verify_file(&path, s.file, SRC_SEED)?;
            }
        }
        if needs(|k| matches!(k, Kind::WriteOver(_))) {
            let path = self.path(&s.over());
            if fs::metadata(&path).map(|m| m.len()).ok() != Some(s.file) {
                eprintln!("creating {}", path.display());
                pattern::create_file(&path, s.file, OVER_SEED).map_err(io(&path))?;
            }
        }
        if needs(|k| matches!(k, Kind::Stat { .. } | Kind::ReadDir)) {
            self.prepare_dir(&s.big_dir(), s.entries, |path, i| {
                fs::File::create(path.join(entry_name(i))).map(drop)
            })?;
        }
        if needs(|k| matches!(k, Kind::SmallRead)) {
            let mut buf = vec![0; s.small_size];
            self.prepare_dir(&s.small_dir(), s.small, |_, i| {
                pattern::fill(&mut buf, 0, small_seed(i));
                let path = self.path(&small_path(&s.small_dir(), i));
                fs::write(path, &buf)
            })?;
        }
        settle();
        Ok(())
    }

    /// Creates directory `name` with `count` entries made by `make`, unless a marker
    /// says an earlier run finished making it.
    fn prepare_dir(
        &self,
        name: &str,
        count: usize,
        mut make: impl FnMut(&Path, usize) -> std::io::Result<()>,
    ) -> Result<()> {
        let marker = self.path(&format!("{name}.done"));
        if marker.exists() {
            return Ok(());
        }
        let path = self.path(name);
        eprintln!("creating {} ({count} entries)", path.display());
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        fs::create_dir(&path).map_err(io(&path))?;
        for i in 0..count {
            make(&path, i).map_err(io(&path))?;
        }
        fs::write(&marker, b"").map_err(io(&marker))?;
        Ok(())
    }

    /// A new empty directory for one run of a workload that creates and removes
    /// files, named `prefix-N`. A fresh directory (in a scratch directory marked as
    /// the top of a hierarchy, see `main::Scratch`) keeps one run's deletions from
    /// slowing the next run's file creation: ext4 without a journal skips inodes
    /// freed in the last minutes, one by one, when it allocates in the same group.
    fn fresh_dir(&self, prefix: &str) -> Result<String> {
        let name = format!("{prefix}-{}", self.fresh_seed());
        let path = self.path(&name);
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        fs::create_dir(&path).map_err(io(&path))?;
        Ok(name)
    }

    /// Removes a directory made by [`Ctx::fresh_dir`].
    fn remove_dir(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        fs::remove_dir_all(&path).map_err(io(&path))
    }

    /// Removes what the workloads write, for the end of a run with a kept directory.
    pub fn remove_outputs(&self) {
        for name in [NEW_FILE, "get.out", "put.out", "batch", "usage"] {
            let _ = fs::remove_file(self.path(name));
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if [SMALL_NEW_DIR, META_DIR]
                .iter()
                .any(|p| name.starts_with(&format!("{p}-")))
            {
                let _ = fs::remove_dir_all(e.path());
            } else if name.starts_with("new-") && name.ends_with(".bin") {
                // Left by a failed `--sessions` run of write-new.
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Runs `workload` once against `server`.
    pub fn run(&self, workload: &Workload, server: &Server) -> Result<Sample> {
        settle();
        let s = &self.sizes;
        match workload.kind {
            Kind::Read(chunk) => {
                self.pipelined(server, ReadFile::new(&s.src(), s.file, chunk, SRC_SEED))
            }
            Kind::WriteNew(chunk) => {
                let path = self.path(NEW_FILE);
                let _ = fs::remove_file(&path);
                let seed = self.fresh_seed();
                let flags = pflags::WRITE | pflags::CREAT | pflags::TRUNC;
                let job = WriteFile::new(NEW_FILE, flags, s.file, chunk, seed);
                let sample = self.pipelined(server, job)?;
                pattern::verify_file(&path, s.file, seed)?;
                fs::remove_file(&path).map_err(io(&path))?;
                Ok(sample)
            }
            Kind::WriteOver(chunk) => {
                let seed = self.fresh_seed();
                let job = WriteFile::new(&s.over(), pflags::WRITE, s.file, chunk, seed);
                let sample = self.pipelined(server, job)?;
                pattern::verify_file(&self.path(&s.over()), s.file, seed)?;
                Ok(sample)
            }
            Kind::Stat { lstat } => self.pipelined(
                server,
                Chained::new(Stat {
                    dir: s.big_dir(),
                    entries: s.entries,
                    count: s.stats,
                    lstat,
                    done: 0,
                }),
            ),
            Kind::ReadDir => self.pipelined(server, ReadDir::new(&s.big_dir(), s.entries)),
            Kind::SmallCreate => {
                let dir = self.fresh_dir(SMALL_NEW_DIR)?;
                settle();
                let job = SmallCreate::new(&dir, s.small, s.small_size);
                let sample = self.pipelined(server, Chained::new(job))?;
                for i in 0..s.small {
                    let path = self.path(&small_path(&dir, i));
                    pattern::verify_file(&path, s.small_size as u64, small_seed(i))?;
                }
                self.remove_dir(&dir)?;
                Ok(sample)
            }
            Kind::SmallRead => {
                let job = SmallRead::new(&s.small_dir(), s.small, s.small_size);
                self.pipelined(server, Chained::new(job))
            }
            Kind::MetaDir => {
                let dir = self.fresh_dir(META_DIR)?;
                settle();
                let job = MetaDir {
                    dir: dir.clone(),
                    count: s.meta_dirs,
                    done: 0,
                };
                let sample = self.pipelined(server, Chained::new(job))?;
                self.check_empty(&dir)?;
                self.remove_dir(&dir)?;
                Ok(sample)
            }
            Kind::MetaFile => {
                let dir = self.fresh_dir(META_DIR)?;
                settle();
                let job = MetaFile::new(&dir, s.meta_files);
                let sample = self.pipelined(server, Chained::new(job))?;
                self.check_empty(&dir)?;
                self.remove_dir(&dir)?;
                Ok(sample)
            }
            Kind::SftpGet(buflen) => self.sftp(server, true, buflen),
            Kind::SftpPut(buflen) => self.sftp(server, false, buflen),
            Kind::CheckFile | Kind::CopyFile => self.against_program(workload.kind, server),
        }
    }

    /// check-file or copy-file through our server; for OpenSSH's, which has neither,
    /// the program that does the same on the same file (`sha256sum`, `cp`).
    fn against_program(&self, kind: Kind, server: &Server) -> Result<Sample> {
        let src = self.sizes.src();
        let out = self.path(COPY_OUT);
        let _ = fs::remove_file(&out);
        settle();
        let sample = if server.label == "ours" {
            let (name, body) = match kind {
                Kind::CheckFile => {
                    let mut b = Vec::new();
                    for s in [src.as_bytes(), b"sha256"] {
                        b.extend_from_slice(&(s.len() as u32).to_be_bytes());
                        b.extend_from_slice(s);
                    }
                    b.extend_from_slice(&[0; 8 + 8 + 4]);
                    ("check-file-name", b)
                }
                _ => {
                    let mut b = Vec::new();
                    for s in [src.as_bytes(), COPY_OUT.as_bytes()] {
                        b.extend_from_slice(&(s.len() as u32).to_be_bytes());
                        b.extend_from_slice(s);
                    }
                    b.push(0);
                    ("copy-file", b)
                }
            };
            let job = OneExtended {
                name,
                body,
                sent: false,
                done: false,
            };
            self.pipelined(server, job)?
        } else {
            let mut cmd = match kind {
                Kind::CheckFile => {
                    let mut c = Command::new("sha256sum");
                    c.arg(&src);
                    c
                }
                _ => {
                    let mut c = Command::new("cp");
                    c.arg(&src).arg(COPY_OUT);
                    c
                }
            };
            cmd.current_dir(&self.dir).stdout(Stdio::null());
            let (start, children) = (Instant::now(), children_cpu());
            let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
            let elapsed = start.elapsed();
            if !status.success() {
                return Err(format!("{cmd:?}: {status}"));
            }
            Sample {
                elapsed,
                usage: Usage {
                    cpu: children_cpu().saturating_sub(children),
                    maxrss_kib: 0,
                },
                client_cpu: Duration::ZERO,
                pss_kib: 0,
            }
        };
        if matches!(kind, Kind::CopyFile) {
            pattern::verify_file(&out, self.sizes.file, SRC_SEED)?;
            fs::remove_file(&out).map_err(io(&out))?;
        }
        Ok(sample)
    }

    fn check_empty(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        let left = fs::read_dir(&path).map_err(io(&path))?.count();
        if left != 0 {
            return Err(format!("{}: {left} entries left behind", path.display()));
        }
        Ok(())
    }

    /// Runs `job` on a fresh server session; times it from the first request to the
    /// last reply (start-up and INIT excluded) and takes the server's usage at exit.
    fn pipelined<J: Job>(&self, server: &Server, mut job: J) -> Result<Sample> {
        let mut session = server::start(server, &self.dir, self.transport)?;
        let conn = &mut session.conn;
        let measured = conn.handshake().and_then(|()| {
            let (start, cpu) = (Instant::now(), thread_cpu());
            conn.run(&mut job, self.window)?;
            Ok((start.elapsed(), thread_cpu() - cpu))
        });
        match measured {
            Ok((elapsed, client_cpu)) => Ok(Sample {
                elapsed,
                usage: session.finish()?,
                client_cpu,
                pss_kib: 0,
            }),
            Err(e) => {
                session.abort();
                Err(e)
            }
        }
    }

    /// OpenSSH's `sftp` with the server behind `-D` (through the usage-recording
    /// wrapper), one get or put in batch mode; timed from start to exit of `sftp`.
    fn sftp(&self, server: &Server, get: bool, buflen: Option<u32>) -> Result<Sample> {
        let src = self.sizes.src();
        let (command, output) = if get {
            (format!("get {src} get.out\n"), "get.out")
        } else {
            (format!("put {src} put.out\n"), "put.out")
        };
        let batch = self.path("batch");
        fs::write(&batch, command).map_err(io(&batch))?;
        let report = self.path("usage");
        let _ = fs::remove_file(&report);
        let mut words = vec![
            self.exe.display().to_string(),
            "--wrap-server".into(),
            report.display().to_string(),
            server.program.display().to_string(),
        ];
        words.extend(server.args.iter().cloned());
        let server_command = words
            .iter()
            .map(|w| sftp_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&self.sftp);
        if let Some(b) = buflen {
            cmd.arg("-B").arg(b.to_string());
        }
        cmd.arg("-b")
            .arg("batch")
            .arg("-D")
            .arg(&server_command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let (start, children) = (Instant::now(), children_cpu());
        let status = cmd
            .status()
            .map_err(|e| format!("{}: {e}", self.sftp.display()))?;
        let elapsed = start.elapsed();
        let (exit, usage) = server::read_wrapper_report(&report)?;
        // sftp waited for the server (through the usage-recording wrapper), so its
        // children's time includes the server's.
        let client_cpu = children_cpu()
            .saturating_sub(children)
            .saturating_sub(usage.cpu);
        if exit != Exit::Code(0) {
            return Err(format!("the server ended with {exit}"));
        }
        if !status.success() {
            return Err(format!("sftp failed: {status}"));
        }
        let out = self.path(output);
        pattern::verify_file(&out, self.sizes.file, SRC_SEED)?;
        fs::remove_file(&out).map_err(io(&out))?;
        Ok(Sample {
            elapsed,
            usage,
            client_cpu,
            pss_kib: 0,
        })
    }
}

/// What session `i` of a concurrent run (`--sessions`) does: the workload's request
/// stream on files of its own where it writes, on shared ones where it only reads.
/// Made in the benchmark's main thread; the job itself is built in the session's
/// thread ([`Plan::job`]).
#[derive(Debug, Clone)]
pub enum Plan {
    Read {
        path: String,
        size: u64,
        chunk: u32,
    },
    Write {
        path: String,
        flags: u32,
        size: u64,
        chunk: u32,
        seed: u64,
        /// A new file, removed once checked (else an existing one, kept).
        new: bool,
    },
    Stat {
        dir: String,
        entries: usize,
        count: usize,
        lstat: bool,
    },
    ReadDir {
        dir: String,
        entries: usize,
    },
    SmallCreate {
        dir: String,
        count: usize,
        size: usize,
    },
    SmallRead {
        dir: String,
        count: usize,
        size: usize,
    },
    MetaDir {
        dir: String,
        count: usize,
    },
    MetaFile {
        dir: String,
        count: usize,
    },
}

/// The job of one [`Plan`], ready to run.
pub enum SessionJob {
    Read(ReadFile),
    Write(WriteFile),
    Stat(Chained<Stat>),
    ReadDir(ReadDir),
    SmallCreate(Chained<SmallCreate>),
    SmallRead(Chained<SmallRead>),
    MetaDir(Chained<MetaDir>),
    MetaFile(Chained<MetaFile>),
}

impl Plan {
    /// Builds the job (the data a WRITE sends is made here, before the clock starts).
    pub fn job(&self) -> SessionJob {
        match self.clone() {
            Plan::Read { path, size, chunk } => {
                SessionJob::Read(ReadFile::new(&path, size, chunk, SRC_SEED))
            }
            Plan::Write {
                path,
                flags,
                size,
                chunk,
                seed,
                ..
            } => SessionJob::Write(WriteFile::new(&path, flags, size, chunk, seed)),
            Plan::Stat {
                dir,
                entries,
                count,
                lstat,
            } => SessionJob::Stat(Chained::new(Stat {
                dir,
                entries,
                count,
                lstat,
                done: 0,
            })),
            Plan::ReadDir { dir, entries } => SessionJob::ReadDir(ReadDir::new(&dir, entries)),
            Plan::SmallCreate { dir, count, size } => {
                SessionJob::SmallCreate(Chained::new(SmallCreate::new(&dir, count, size)))
            }
            Plan::SmallRead { dir, count, size } => {
                SessionJob::SmallRead(Chained::new(SmallRead::new(&dir, count, size)))
            }
            Plan::MetaDir { dir, count } => SessionJob::MetaDir(Chained::new(MetaDir {
                dir,
                count,
                done: 0,
            })),
            Plan::MetaFile { dir, count } => {
                SessionJob::MetaFile(Chained::new(MetaFile::new(&dir, count)))
            }
        }
    }
}

impl SessionJob {
    pub fn run(&mut self, conn: &mut Conn, window: usize) -> Result<()> {
        match self {
            SessionJob::Read(j) => conn.run(j, window),
            SessionJob::Write(j) => conn.run(j, window),
            SessionJob::Stat(j) => conn.run(j, window),
            SessionJob::ReadDir(j) => conn.run(j, window),
            SessionJob::SmallCreate(j) => conn.run(j, window),
            SessionJob::SmallRead(j) => conn.run(j, window),
            SessionJob::MetaDir(j) => conn.run(j, window),
            SessionJob::MetaFile(j) => conn.run(j, window),
        }
    }
}

impl Ctx {
    /// The plan of session `i` of a concurrent run of `workload` (the sftp-*
    /// workloads have none); makes the files and directories it needs of its own.
    pub fn plan(&self, workload: &Workload, i: usize) -> Result<Plan> {
        let s = &self.sizes;
        Ok(match workload.kind {
            Kind::Read(chunk) => Plan::Read {
                path: s.src(),
                size: s.file,
                chunk,
            },
            Kind::WriteNew(chunk) => {
                let path = format!("new-{i}.bin");
                let _ = fs::remove_file(self.path(&path));
                Plan::Write {
                    path,
                    flags: pflags::WRITE | pflags::CREAT | pflags::TRUNC,
                    size: s.file,
                    chunk,
                    seed: self.fresh_seed(),
                    new: true,
                }
            }
            Kind::WriteOver(chunk) => {
                let path = format!("over-{}-{i}.bin", s.file);
                let full = self.path(&path);
                if fs::metadata(&full).map(|m| m.len()).ok() != Some(s.file) {
                    pattern::create_file(&full, s.file, OVER_SEED).map_err(io(&full))?;
                }
                Plan::Write {
                    path,
                    flags: pflags::WRITE,
                    size: s.file,
                    chunk,
                    seed: self.fresh_seed(),
                    new: false,
                }
            }
            Kind::Stat { lstat } => Plan::Stat {
                dir: s.big_dir(),
                entries: s.entries,
                count: s.stats,
                lstat,
            },
            Kind::ReadDir => Plan::ReadDir {
                dir: s.big_dir(),
                entries: s.entries,
            },
            Kind::SmallCreate => Plan::SmallCreate {
                dir: self.fresh_dir(SMALL_NEW_DIR)?,
                count: s.small,
                size: s.small_size,
            },
            Kind::SmallRead => Plan::SmallRead {
                dir: s.small_dir(),
                count: s.small,
                size: s.small_size,
            },
            Kind::MetaDir => Plan::MetaDir {
                dir: self.fresh_dir(META_DIR)?,
                count: s.meta_dirs,
            },
            Kind::MetaFile => Plan::MetaFile {
                dir: self.fresh_dir(META_DIR)?,
                count: s.meta_files,
            },
            Kind::SftpGet(_) | Kind::SftpPut(_) | Kind::CheckFile | Kind::CopyFile => {
                return Err(format!("{}: not a pipelined workload", workload.name));
            }
        })
    }

    /// Checks on disk what a session's plan wrote, and removes what it made.
    pub fn check(&self, plan: &Plan) -> Result<()> {
        match plan {
            Plan::Write {
                path,
                size,
                seed,
                new,
                ..
            } => {
                let full = self.path(path);
                pattern::verify_file(&full, *size, *seed)?;
                if *new {
                    fs::remove_file(&full).map_err(io(&full))?;
                }
            }
            Plan::SmallCreate { dir, count, size } => {
                for i in 0..*count {
                    let path = self.path(&small_path(dir, i));
                    pattern::verify_file(&path, *size as u64, small_seed(i))?;
                }
                self.remove_dir(dir)?;
            }
            Plan::MetaDir { dir, .. } | Plan::MetaFile { dir, .. } => {
                self.check_empty(dir)?;
                self.remove_dir(dir)?;
            }
            Plan::Read { .. }
            | Plan::Stat { .. }
            | Plan::ReadDir { .. }
            | Plan::SmallRead { .. } => {}
        }
        Ok(())
    }
}

/// Quotes a word for `sftp -D`, which splits its argument itself (OpenSSH's
/// `argv_split`: whitespace separates, quotes group, backslash escapes quotes and
/// backslashes).
fn sftp_quote(word: &str) -> String {
    if !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'))
    {
        return word.into();
    }
    let mut quoted = String::from("'");
    for c in word.chars() {
        if matches!(c, '\'' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}
