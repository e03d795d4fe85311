//! Fault injection: the server driven into full disks, file size limits, read-only and
//! immutable files, descriptor exhaustion, clients that vanish mid-transfer, oversized
//! and truncated frames, floods of bad handles, and directories deleted under a
//! listing; and the server's peak memory under pipelined transfers and a large listing.
//!
//! Every test checks three things: the client gets the right status, the server
//! either stays up or ends the session cleanly with the expected exit status (never a
//! signal, never a hang), and every WRITE that was answered OK is in the file.
//!
//! Mounts (tmpfs) go under each test's own scratch directory and are detached by a
//! guard on drop, so the tests run in parallel and clean up after a failure too. They
//! need root, as CI has.

use crate::support::Spawn;
use crate::support::content::{assert_same_bytes, pseudo_random};
use crate::support::raw::*;
use crate::support::session::{Session, deref_to_session};
use crate::support::status::*;
use crate::support::{Scratch, Server, testing_openssh, wait_bounded};
use nix::sys::resource::Resource;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The most data one READ returns.
const MAX_READ: usize = 261120;
/// The largest packet length (type byte and body) a server accepts.
const MAX_PACKET: usize = 262144;
/// The time any one session end (exit after EOF, EPIPE or a bad frame) may take.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Helpers

/// `FS_IMMUTABLE_FL` and `FS_APPEND_FL` from <linux/fs.h>.
const FS_IMMUTABLE_FL: nix::libc::c_int = 0x10;
const FS_APPEND_FL: nix::libc::c_int = 0x20;

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// A tmpfs mounted on a directory of a scratch directory; detached on drop, so a
/// failing test leaves no mount behind.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs with `options` (e.g. "size=1m") on `path`, creating it.
    fn tmpfs(path: &Path, options: &str) -> Mount {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the fault tests mount file systems and need root"
        );
        fs::create_dir_all(path).expect("create mount point");
        let target = c_path(path);
        let data = CString::new(options).unwrap();
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let r = unsafe {
            nix::libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            panic!(
                "mount tmpfs on {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Mount {
            path: path.to_path_buf(),
        }
    }

    /// Makes the mount read-only.
    fn remount_read_only(&self) {
        let target = c_path(&self.path);
        // SAFETY: as in `tmpfs`; a remount takes no source or type.
        let r = unsafe {
            nix::libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                nix::libc::MS_REMOUNT | nix::libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "remount {} read-only: {}",
            self.path.display(),
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = c_path(&self.path);
        // Lazy: a server that is still being killed may hold files open.
        // SAFETY: a valid NUL-terminated path.
        unsafe {
            nix::libc::umount2(target.as_ptr(), nix::libc::MNT_DETACH);
        }
    }
}

/// Sets the inode flags (chattr) of `path` to `flags`.
fn set_inode_flags(path: &Path, flags: nix::libc::c_int) {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let value: nix::libc::c_int = flags;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the pointer, which is valid.
    let r = unsafe {
        nix::libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            nix::libc::FS_IOC_SETFLAGS,
            &value,
        )
    };
    assert_eq!(
        r,
        0,
        "chattr {} (tmpfs takes inode flags from Linux 6.0): {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Starts the server under test in `cwd` on a socketpair, with `limits` (soft and hard)
/// set in the child before it runs, and stderr discarded. With `nonblocking`, its
/// stdin and stdout (one open socket) are in non-blocking mode, as a parent may leave
/// them.
fn spawn_server(
    cwd: &Path,
    args: &[&str],
    limits: &[(Resource, u64)],
    nonblocking: bool,
) -> Server {
    let mut spawn = Spawn::new(cwd).args(args).stderr(Stdio::null());
    for &(resource, value) in limits {
        spawn = spawn.limit(resource, value);
    }
    if nonblocking {
        spawn = spawn.nonblocking();
    }
    spawn.start()
}

/// The status code and message of a STATUS reply.
#[track_caller]
fn status_of(r: &Reply) -> (u32, String) {
    match r {
        Reply::Status { code, msg, .. } => (*code, String::from_utf8_lossy(msg).into_owned()),
        other => panic!("expected a STATUS, got {other:?}"),
    }
}

/// How the server's process ended, for messages.
fn describe(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => format!("{st:?}"),
    }
}

/// The peak resident set size (VmHWM) of a live process, in KiB; None once it has
/// exited.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A server past INIT, and the client talking to it.
struct Sftp {
    s: Session,
}

deref_to_session!(Sftp, s);

impl Sftp {
    fn start(cwd: &Path) -> Sftp {
        Sftp::start_limited(cwd, &[])
    }

    fn start_limited(cwd: &Path, limits: &[(Resource, u64)]) -> Sftp {
        Sftp::start_with(cwd, limits, false)
    }

    fn start_with(cwd: &Path, limits: &[(Resource, u64)], nonblocking: bool) -> Sftp {
        Sftp::start_args(cwd, &[], limits, nonblocking)
    }

    fn start_args(
        cwd: &Path,
        args: &[&str],
        limits: &[(Resource, u64)],
        nonblocking: bool,
    ) -> Sftp {
        let server = spawn_server(cwd, args, limits, nonblocking);
        Sftp {
            s: Session::init(server),
        }
    }

    #[track_caller]
    fn open(&mut self, path: &[u8], pflags: u32) -> Vec<u8> {
        self.handle(Request::Open {
            path,
            pflags,
            attrs: Attrs::none(),
        })
    }

    #[track_caller]
    fn size_of(&mut self, path: &[u8]) -> u64 {
        self.attrs(Request::Stat { path }).size
    }

    /// Proves the session still answers.
    #[track_caller]
    fn alive(&mut self) {
        match self.call(Request::Stat { path: b"." }) {
            Reply::Attrs { .. } => {}
            other => panic!("expected ATTRS for STAT ., got {other:?}"),
        }
    }

    /// Sends every request at once, then reads one reply per request, in order.
    #[track_caller]
    fn pipeline(&mut self, reqs: &[Request]) -> Vec<Reply> {
        let mut ids = Vec::with_capacity(reqs.len());
        let mut bytes = Vec::new();
        for r in reqs {
            let id = self.c.fresh_id();
            bytes.extend_from_slice(&r.encode(id));
            ids.push(id);
        }
        self.c.send_raw(&bytes);
        ids.iter()
            .map(|&id| {
                let r = self
                    .c
                    .recv()
                    .unwrap_or_else(|e| panic!("reply to {id}: {e:?}"));
                assert_eq!(r.id(), Some(id), "replies come in request order");
                r
            })
            .collect()
    }

    /// Reads the OK replies to `n` WRITEs sent with ids from `first_id` on, in order.
    #[track_caller]
    fn expect_write_acks(&mut self, first_id: u32, n: u32) {
        for i in 0..n {
            let r = self.c.recv().expect("WRITE reply");
            assert_eq!(r.id(), Some(first_id + i));
            assert_status(&r, SSH_FX_OK);
        }
    }

    /// Closes our end; the server must exit 0 within the limit.
    #[track_caller]
    fn finish(self) {
        let st = self.s.finish();
        assert_eq!(st.code(), Some(0), "server ended with {}", describe(&st));
    }

    /// Waits (bounded) for the server to exit on its own.
    fn exit_status(&mut self) -> ExitStatus {
        self.wait_exit(EXIT_LIMIT)
    }
}

/// Writes `bytes` on a clone of `sock` from a thread, stopping quietly at the first
/// error (the server may be gone): a client that keeps sending while it reads.
fn send_in_background(sock: &UnixStream, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut sock = sock.try_clone().expect("dup socket");
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    std::thread::spawn(move || {
        let _ = sock.write_all(&bytes);
    })
}

/// The WRITE requests for `n` chunks of `size` bytes at consecutive offsets; chunk `i`
/// holds `pseudo_random(seed + i, size)`.
fn chunk_data(seed: u64, n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| pseudo_random(seed + i as u64, size))
        .collect()
}

fn write_requests<'a>(handle: &'a [u8], chunks: &'a [Vec<u8>]) -> Vec<Request<'a>> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, data)| Request::Write {
            handle,
            offset: (i * data.len()) as u64,
            data,
        })
        .collect()
}

/// The WRITE requests for `chunks` (see `write_requests`) encoded back to back with ids
/// from `first_id` on.
fn encoded_writes(handle: &[u8], chunks: &[Vec<u8>], first_id: u32) -> Vec<u8> {
    write_requests(handle, chunks)
        .iter()
        .enumerate()
        .map(|(i, r)| r.encode(first_id + i as u32))
        .collect::<Vec<_>>()
        .concat()
}

/// Asserts the file holds every one of `chunks`, all acknowledged.
#[track_caller]
fn assert_all_chunks(path: &Path, chunks: &[Vec<u8>]) {
    let all: Vec<usize> = (0..chunks.len()).collect();
    assert_eq!(assert_chunks_prefix(path, chunks, &all), chunks.len());
}

/// Asserts the file holds exactly the acknowledged chunks: a prefix of `chunks`, each
/// chunk at its offset, that includes every chunk in `acked`.
#[track_caller]
fn assert_chunks_prefix(path: &Path, chunks: &[Vec<u8>], acked: &[usize]) -> usize {
    let size = chunks[0].len();
    let file = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(
        file.len() % size,
        0,
        "{} holds a partial chunk: {} bytes",
        path.display(),
        file.len()
    );
    let n = file.len() / size;
    for (i, chunk) in chunks.iter().enumerate().take(n) {
        assert_same_bytes(
            &file[i * size..(i + 1) * size],
            chunk,
            &format!("chunk {i} of {}", path.display()),
        );
    }
    if let Some(&last) = acked.iter().max() {
        assert!(
            last < n,
            "chunk {last} was acknowledged but the file has only {n} chunks"
        );
    }
    n
}

// ---------------------------------------------------------------------------
// Disk full

#[test]
fn fault_dev_full_write_is_no_space() {
    let dir = Scratch::new("fault-devfull");
    let mut s = Sftp::start(dir.path());
    let h = s.open(b"/dev/full", SSH_FXF_WRITE);
    s.os_failure(
        Request::Write {
            handle: &h,
            offset: 0,
            data: b"no room",
        },
        "No space left on device",
    );
    // Pipelined: every one answered, every one the same failure.
    let data = vec![0x55; 32 * KIB];
    let reqs: Vec<Request> = (0..16)
        .map(|i| Request::Write {
            handle: &h,
            offset: i * 32 * KIB as u64,
            data: &data,
        })
        .collect();
    for r in s.pipeline(&reqs) {
        assert_os_failure(&r, "No space left on device");
    }
    s.alive();
    s.close(&h);
    s.finish();
}

#[test]
fn fault_tmpfs_full_pipelined_writes() {
    let dir = Scratch::new("fault-tmpfs-full");
    let mnt = Mount::tmpfs(&dir.path().join("mnt"), "size=1m");
    // A quarter of the space taken, to be given back later.
    fs::write(mnt.path.join("ballast"), vec![7u8; 256 * KIB]).unwrap();
    let mut s = Sftp::start(dir.path());
    let h = s.open(b"mnt/upload", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    // 2 MiB pipelined into the 768 KiB left.
    let chunks = chunk_data(100, 64, 32 * KIB);
    let replies = s.pipeline(&write_requests(&h, &chunks));
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        match status_of(r) {
            (SSH_FX_OK, _) => acked.push(i),
            _ => {
                assert_os_failure(r, "No space left on device");
                failed.push(i);
            }
        }
    }
    assert!(!acked.is_empty(), "no write fitted");
    assert!(!failed.is_empty(), "the file system never filled up");
    // Later requests are still answered, and the file is as large as what was acked.
    let acked_end = (acked.iter().max().unwrap() + 1) * 32 * KIB;
    assert!(s.size_of(b"mnt/upload") >= acked_end as u64);
    // Room again: the first refused chunk now goes through.
    s.ok(Request::Remove {
        path: b"mnt/ballast",
    });
    let retry = failed[0];
    s.write(&h, (retry * 32 * KIB) as u64, &chunks[retry]);
    acked.push(retry);
    s.close(&h);
    let n = assert_chunks_prefix(&mnt.path.join("upload"), &chunks, &acked);
    println!(
        "fault_tmpfs_full: {} of 64 chunks acknowledged, first refused {}, file {n} chunks",
        acked.len() - 1,
        failed[0]
    );
    s.finish();
}

#[test]
fn fault_tmpfs_out_of_inodes() {
    let dir = Scratch::new("fault-inodes");
    let mnt = Mount::tmpfs(&dir.path().join("mnt"), "size=1m,nr_inodes=8");
    let mut s = Sftp::start(dir.path());
    // Create files until the inodes run out (the root directory takes one).
    let mut created = Vec::new();
    loop {
        let path = format!("mnt/f{}", created.len()).into_bytes();
        match s.call(Request::Open {
            path: &path,
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
            attrs: Attrs::none(),
        }) {
            Reply::Handle { handle, .. } => {
                s.write(&handle, 0, &path);
                s.close(&handle);
                created.push(path);
            }
            r => {
                assert_os_failure(&r, "No space left on device");
                break;
            }
        }
        assert!(created.len() < 8, "more files than inodes");
    }
    assert!(!created.is_empty(), "no file created");
    s.os_failure(
        Request::Mkdir {
            path: b"mnt/d",
            attrs: Attrs::none(),
        },
        "No space left on device",
    );
    s.os_failure(
        Request::Symlink {
            target: b"f0",
            link: b"mnt/link",
        },
        "No space left on device",
    );
    // Existing files are still readable and writable.
    let h = s.open(b"mnt/f0", SSH_FXF_READ | SSH_FXF_WRITE);
    assert_eq!(s.read(&h, 0, 100), b"mnt/f0");
    s.write(&h, 6, b"+");
    s.close(&h);
    // One removed, one more fits.
    let last = created.pop().unwrap();
    s.ok(Request::Remove { path: &last });
    s.ok(Request::Mkdir {
        path: b"mnt/d",
        attrs: Attrs::none(),
    });
    s.finish();
    assert_eq!(fs::read(mnt.path.join("f0")).unwrap(), b"mnt/f0+");
    for p in &created[1..] {
        let name = std::str::from_utf8(&p[4..]).unwrap();
        assert_eq!(fs::read(mnt.path.join(name)).unwrap(), *p);
    }
    assert!(mnt.path.join("d").is_dir());
}

// ---------------------------------------------------------------------------
// File too large (RLIMIT_FSIZE)

#[test]
fn fault_file_too_large_rlimit_fsize() {
    let dir = Scratch::new("fault-fsize");
    let limit = 96 * KIB;
    let mut s = Sftp::start_limited(dir.path(), &[(Resource::RLIMIT_FSIZE, limit as u64)]);
    let h = s.open(b"big", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    let chunks = chunk_data(200, 6, 32 * KIB);
    let reqs = write_requests(&h, &chunks);
    if testing_openssh() {
        // OpenSSH leaves SIGXFSZ at its default: the first write past the limit kills
        // it. The writes below the limit were all acknowledged and are in the file.
        let bytes: Vec<u8> = reqs
            .iter()
            .map(|r| r.encode(s.c.fresh_id()))
            .collect::<Vec<_>>()
            .concat();
        let _ = s.c.try_send_raw(&bytes);
        let mut acked = Vec::new();
        while let Ok(r) = s.c.recv() {
            assert_status(&r, SSH_FX_OK);
            acked.push(acked.len());
        }
        let st = s.exit_status();
        assert_eq!(st.signal(), Some(nix::libc::SIGXFSZ), "{}", describe(&st));
        assert_eq!(acked.len(), 3);
        assert_chunks_prefix(&dir.path().join("big"), &chunks, &acked);
        return;
    }
    let replies = s.pipeline(&reqs);
    for (i, r) in replies.iter().enumerate() {
        if i < 3 {
            assert_status(r, SSH_FX_OK);
        } else {
            assert_os_failure(r, "File too large");
        }
    }
    // One byte at the limit is refused too; the server is not killed.
    s.os_failure(
        Request::Write {
            handle: &h,
            offset: limit as u64,
            data: b"x",
        },
        "File too large",
    );
    // Below the limit it goes on working: rewrite the first chunk and read it back.
    s.write(&h, 0, &chunks[0]);
    s.close(&h);
    let h = s.open(b"big", SSH_FXF_READ);
    assert_eq!(s.read(&h, 0, 32 * KIB as u32), chunks[0]);
    s.close(&h);
    assert_eq!(s.size_of(b"big"), limit as u64);
    assert_eq!(
        assert_chunks_prefix(&dir.path().join("big"), &chunks, &[0, 1, 2]),
        3
    );
    s.finish();
}

// ---------------------------------------------------------------------------
// Read-only file system, and permissions root cannot override

#[test]
fn fault_read_only_file_system() {
    let dir = Scratch::new("fault-rofs");
    let mnt = Mount::tmpfs(&dir.path().join("ro"), "size=1m");
    fs::write(mnt.path.join("f"), b"still readable").unwrap();
    fs::create_dir(mnt.path.join("d")).unwrap();
    mnt.remount_read_only();
    let mut s = Sftp::start(dir.path());
    const EROFS: &str = "Read-only file system";
    for (path, pflags) in [
        (&b"ro/f"[..], SSH_FXF_WRITE),
        (b"ro/f", SSH_FXF_READ | SSH_FXF_WRITE),
        (b"ro/f", SSH_FXF_READ | SSH_FXF_TRUNC),
        (b"ro/new", SSH_FXF_WRITE | SSH_FXF_CREAT),
    ] {
        s.os_failure(
            Request::Open {
                path,
                pflags,
                attrs: Attrs::none(),
            },
            EROFS,
        );
    }
    s.os_failure(
        Request::Mkdir {
            path: b"ro/x",
            attrs: Attrs::none(),
        },
        EROFS,
    );
    s.os_failure(Request::Remove { path: b"ro/f" }, EROFS);
    s.os_failure(Request::Rmdir { path: b"ro/d" }, EROFS);
    s.os_failure(
        Request::Rename {
            old: b"ro/f",
            new: b"ro/g",
        },
        EROFS,
    );
    s.os_failure(
        Request::Setstat {
            path: b"ro/f",
            attrs: Attrs::none().with_permissions(0o600),
        },
        EROFS,
    );
    // Reading is unaffected.
    let h = s.open(b"ro/f", SSH_FXF_READ);
    assert_eq!(s.read(&h, 0, 100), b"still readable");
    s.close(&h);
    let h = s.handle(Request::Opendir { path: b"ro" });
    match s.call(Request::Readdir { handle: &h }) {
        Reply::Name { entries, .. } => {
            let mut names: Vec<_> = entries.into_iter().map(|e| e.name).collect();
            names.sort();
            assert_eq!(names, [&b"."[..], b"..", b"d", b"f"]);
        }
        other => panic!("expected NAME, got {other:?}"),
    }
    s.close(&h);
    s.finish();
}

#[test]
fn fault_immutable_and_append_only_files_refuse_root() {
    let dir = Scratch::new("fault-chattr");
    // On a tmpfs of its own: unmounting disposes of the immutable files.
    let mnt = Mount::tmpfs(&dir.path().join("m"), "size=1m");
    fs::write(mnt.path.join("frozen"), b"frozen").unwrap();
    fs::write(mnt.path.join("log"), b"one\n").unwrap();
    fs::create_dir(mnt.path.join("fdir")).unwrap();
    fs::write(mnt.path.join("fdir/inside"), b"in").unwrap();
    set_inode_flags(&mnt.path.join("frozen"), FS_IMMUTABLE_FL);
    set_inode_flags(&mnt.path.join("log"), FS_APPEND_FL);
    set_inode_flags(&mnt.path.join("fdir"), FS_IMMUTABLE_FL);
    let mut s = Sftp::start(dir.path());
    const DENIED: u32 = SSH_FX_PERMISSION_DENIED;

    // Immutable file: no writing, truncating, removing, renaming or chmod, even as root.
    for pflags in [
        SSH_FXF_WRITE,
        SSH_FXF_WRITE | SSH_FXF_APPEND,
        SSH_FXF_READ | SSH_FXF_TRUNC,
    ] {
        s.status(
            Request::Open {
                path: b"m/frozen",
                pflags,
                attrs: Attrs::none(),
            },
            DENIED,
        );
    }
    s.status(Request::Remove { path: b"m/frozen" }, DENIED);
    s.status(
        Request::Rename {
            old: b"m/frozen",
            new: b"m/thawed",
        },
        DENIED,
    );
    for attrs in [
        Attrs::none().with_permissions(0o600),
        Attrs::none().with_size(0),
    ] {
        s.status(
            Request::Setstat {
                path: b"m/frozen",
                attrs,
            },
            DENIED,
        );
    }
    let h = s.open(b"m/frozen", SSH_FXF_READ);
    assert_eq!(s.read(&h, 0, 100), b"frozen");
    s.close(&h);

    // Append-only file: opened for plain writing it is refused; with APPEND it works.
    s.status(
        Request::Open {
            path: b"m/log",
            pflags: SSH_FXF_WRITE,
            attrs: Attrs::none(),
        },
        DENIED,
    );
    s.status(Request::Remove { path: b"m/log" }, DENIED);
    let h = s.open(b"m/log", SSH_FXF_WRITE | SSH_FXF_APPEND);
    s.write(&h, 0, b"two\n");
    s.status(
        Request::Fsetstat {
            handle: &h,
            attrs: Attrs::none().with_size(0),
        },
        DENIED,
    );
    s.close(&h);

    // Immutable directory: nothing created or removed in it.
    s.status(
        Request::Open {
            path: b"m/fdir/new",
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
            attrs: Attrs::none(),
        },
        DENIED,
    );
    s.status(
        Request::Mkdir {
            path: b"m/fdir/sub",
            attrs: Attrs::none(),
        },
        DENIED,
    );
    s.status(
        Request::Remove {
            path: b"m/fdir/inside",
        },
        DENIED,
    );
    // A file in it can still be rewritten in place.
    let h = s.open(b"m/fdir/inside", SSH_FXF_WRITE);
    s.write(&h, 0, b"IN");
    s.close(&h);
    s.finish();

    assert_eq!(fs::read(mnt.path.join("frozen")).unwrap(), b"frozen");
    assert_eq!(fs::read(mnt.path.join("log")).unwrap(), b"one\ntwo\n");
    assert_eq!(fs::read(mnt.path.join("fdir/inside")).unwrap(), b"IN");
    assert!(!mnt.path.join("fdir/new").exists());
}

#[test]
fn fault_write_refused_by_the_kernel_is_failure() {
    let dir = Scratch::new("fault-eio");
    let mut s = Sftp::start(dir.path());
    // /proc/version opens for writing (as root) but takes no data. OpenSSH seeks and
    // write(2)s, and gets EIO; ours uses pwrite(2), which this file refuses with ESPIPE.
    // Either way a FAILURE, with the OS's text from ours.
    let h = s.open(b"/proc/version", SSH_FXF_WRITE);
    let r = s.call(Request::Write {
        handle: &h,
        offset: 0,
        data: b"x",
    });
    if testing_openssh() {
        assert_status(&r, SSH_FX_FAILURE);
    } else {
        let (code, msg) = status_of(&r);
        assert_eq!(code, SSH_FX_FAILURE, "{r:?}");
        assert!(
            ["Input/output error", "Illegal seek"].contains(&msg.as_str()),
            "{r:?}"
        );
    }
    s.close(&h);
    s.alive();
    s.finish();
}

// ---------------------------------------------------------------------------
// The client going away

#[test]
fn fault_client_killed_mid_pipelined_upload() {
    let dir = Scratch::new("fault-client-killed");
    let mut s = Sftp::start(dir.path());
    let h = s.open(b"upload", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    let chunks = chunk_data(300, 64, 32 * KIB);
    let first_id = s.c.fresh_id();
    let bytes = encoded_writes(&h, &chunks, first_id);
    let writer = send_in_background(&s.c.sock, bytes);
    // Read a few acknowledgements, then vanish while the rest is in flight.
    let mut acked = Vec::new();
    for _ in 0..8 {
        let r = s.c.recv().expect("an acknowledgement");
        assert_status(&r, SSH_FX_OK);
        acked.push((r.id().unwrap() - first_id) as usize);
    }
    assert_eq!(acked, (0..8).collect::<Vec<_>>(), "in request order");
    s.c.sock.shutdown(std::net::Shutdown::Both).unwrap();
    writer.join().unwrap();
    let Session { c, mut server, .. } = s.s;
    drop(c);
    let _ = server.sock.shutdown(std::net::Shutdown::Both);
    let started = Instant::now();
    let st = wait_bounded(&mut server.child, EXIT_LIMIT);
    // EOF after the last request: 0. Replies still to send to a closed socket: EPIPE,
    // exit 1 (OpenSSH is killed by SIGPIPE there).
    match (st.code(), st.signal()) {
        (Some(0 | 1), _) => {}
        (_, Some(nix::libc::SIGPIPE)) if testing_openssh() => {}
        _ => panic!("server ended with {}", describe(&st)),
    }
    let n = assert_chunks_prefix(&dir.path().join("upload"), &chunks, &acked);
    println!(
        "fault_client_killed: {} after {:?}, {n} of 64 chunks written, 8 acknowledged",
        describe(&st),
        started.elapsed()
    );
}

/// Waits up to `limit` for `child` to exit, without killing it.
fn exited_within(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Makes the server answer many maximal READs, and after two replies stops reading
/// (`how` is `Read`: shuts its read side, the socket stays open; `Both`: closes it).
/// The server must end by itself, promptly, with exit status 1 (EPIPE).
fn stdout_closed_during_reads(tag: &str, how: std::net::Shutdown, nonblocking: bool) {
    let dir = Scratch::new(tag);
    fs::write(dir.path().join("f"), pseudo_random(400, MAX_READ)).unwrap();
    let mut s = Sftp::start_with(dir.path(), &[], nonblocking);
    let h = s.open(b"f", SSH_FXF_READ);
    // 400 replies of 255 KiB: 100 MiB that nobody will read.
    let bytes: Vec<u8> = (0..400)
        .map(|_| {
            Request::Read {
                handle: &h,
                offset: 0,
                len: MAX_READ as u32,
            }
            .encode(s.c.fresh_id())
        })
        .collect::<Vec<_>>()
        .concat();
    let writer = send_in_background(&s.c.sock, bytes);
    for _ in 0..2 {
        match s.c.recv() {
            Ok(Reply::Data { data, .. }) => assert_eq!(data.len(), MAX_READ),
            other => panic!("expected DATA, got {other:?}"),
        }
    }
    // Let the server fill the socket and wait for room.
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    s.c.sock.shutdown(how).unwrap();
    let ended = exited_within(&mut s.server.child, Duration::from_secs(3));
    let took = started.elapsed();
    if testing_openssh() {
        // OpenSSH waits in poll(2) for room to write, which a peer that only shut its
        // read side never signals (the unread replies keep the socket full): it may
        // wait until the socket closes. Then SIGPIPE, at its default there, ends it.
        let st = ended.unwrap_or_else(|| {
            let _ = s.c.sock.shutdown(std::net::Shutdown::Both);
            s.exit_status()
        });
        writer.join().unwrap();
        println!(
            "{tag}: OpenSSH: {} after {:?}",
            describe(&st),
            started.elapsed()
        );
        assert!(
            matches!(st.code(), Some(0 | 1)) || st.signal() == Some(nix::libc::SIGPIPE),
            "OpenSSH ended with {}",
            describe(&st)
        );
        return;
    }
    let Some(st) = ended else {
        let _ = s.c.sock.shutdown(std::net::Shutdown::Both);
        let after = s.exit_status();
        writer.join().unwrap();
        panic!(
            "the server was still running {took:?} after the client stopped reading; \
             it ended with {} once the socket was closed",
            describe(&after)
        );
    };
    writer.join().unwrap();
    println!("{tag}: {} after {took:?}", describe(&st));
    assert_eq!(st.code(), Some(1), "server ended with {}", describe(&st));
}

#[test]
fn fault_stdout_shut_down_during_large_reads() {
    stdout_closed_during_reads("fault-stdout-shut", std::net::Shutdown::Read, false);
}

#[test]
fn fault_socket_closed_during_large_reads() {
    stdout_closed_during_reads("fault-socket-closed", std::net::Shutdown::Both, false);
}

#[test]
fn fault_stdout_shut_down_during_large_reads_nonblocking() {
    stdout_closed_during_reads("fault-stdout-shut-nb", std::net::Shutdown::Read, true);
}

#[test]
fn fault_socket_closed_during_large_reads_nonblocking() {
    stdout_closed_during_reads("fault-socket-closed-nb", std::net::Shutdown::Both, true);
}

#[test]
fn fault_stdin_closed_mid_frame() {
    let dir = Scratch::new("fault-half-frame");
    // Cut inside the length field, inside the body, and right after the length.
    for cut in [2usize, 4, 500] {
        let mut s = Sftp::start(dir.path());
        let h = s.open(b"f", SSH_FXF_WRITE | SSH_FXF_CREAT);
        let packet = Request::Write {
            handle: &h,
            offset: 0,
            data: &[b'z'; 1000],
        }
        .encode(s.c.fresh_id());
        s.c.send_raw(&packet[..cut]);
        s.c.sock.shutdown(std::net::Shutdown::Write).unwrap();
        s.c.expect_eof();
        let st = s.exit_status();
        assert_eq!(st.code(), Some(0), "cut at {cut}: {}", describe(&st));
        // The half-sent write never happened.
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"");
    }
}

// ---------------------------------------------------------------------------
// Descriptor exhaustion

#[test]
fn fault_handle_cap_with_low_nofile() {
    let dir = Scratch::new("fault-nofile");
    fs::write(dir.path().join("f"), b"data").unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    let nofile = 64;
    let mut s = Sftp::start_limited(dir.path(), &[(Resource::RLIMIT_NOFILE, nofile)]);
    const EMFILE: &str = "Too many open files";
    let mut handles = Vec::new();
    loop {
        // Files and directories alternately.
        let req = if handles.len() % 2 == 0 {
            Request::Open {
                path: b"f",
                pflags: SSH_FXF_READ,
                attrs: Attrs::none(),
            }
        } else {
            Request::Opendir { path: b"d" }
        };
        match s.call(req) {
            Reply::Handle { handle, .. } => handles.push(handle),
            r => {
                assert_os_failure(&r, EMFILE);
                break;
            }
        }
        assert!(
            handles.len() <= nofile as usize,
            "handles beyond RLIMIT_NOFILE"
        );
    }
    println!(
        "fault_handle_cap: {} handles with RLIMIT_NOFILE {nofile}",
        handles.len()
    );
    if !testing_openssh() {
        // The cap is the soft limit less the descriptors kept in reserve.
        assert_eq!(handles.len(), nofile as usize - 8);
    }
    // Both kinds are refused at the cap; everything else still works.
    s.os_failure(
        Request::Open {
            path: b"f",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        },
        EMFILE,
    );
    s.os_failure(Request::Opendir { path: b"d" }, EMFILE);
    s.alive();
    // Every handle is live.
    assert_eq!(s.read(&handles[0], 0, 10), b"data");
    // Closing one lets exactly one more open.
    let last = handles.pop().unwrap();
    s.close(&last);
    let again = s.open(b"f", SSH_FXF_READ);
    assert_eq!(s.read(&again, 0, 10), b"data");
    s.os_failure(Request::Opendir { path: b"d" }, EMFILE);
    s.close(&again);
    let d = s.handle(Request::Opendir { path: b"d" });
    s.close(&d);
    for h in &handles {
        s.close(h);
    }
    s.finish();
}

/// Confined, path requests need descriptors of their own (the root, a parent
/// directory, an O_PATH descriptor): at the handle cap they all still work.
#[test]
fn fault_handle_cap_leaves_room_for_confined_requests() {
    if testing_openssh() {
        return;
    }
    let dir = Scratch::new("fault-nofile-root");
    let root = dir.path().canonicalize().unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/x"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("/d/x", root.join("link")).unwrap();
    let nofile = 64;
    let root_arg = root.to_str().unwrap();
    let mut s = Sftp::start_args(
        &root,
        &["--root", root_arg],
        &[(Resource::RLIMIT_NOFILE, nofile)],
        false,
    );
    let mut handles = Vec::new();
    loop {
        match s.call(Request::Open {
            path: b"/d/x",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        }) {
            Reply::Handle { handle, .. } => handles.push(handle),
            r => {
                assert_os_failure(&r, "Too many open files");
                break;
            }
        }
    }
    // Four more descriptors than unconfined are kept in reserve.
    assert_eq!(handles.len(), nofile as usize - 12);
    // At the cap: every kind of path resolution, a spliced READ, a truncation.
    assert_eq!(s.attrs(Request::Stat { path: b"/link" }).size, 100_000);
    assert_eq!(s.attrs(Request::Lstat { path: b"/d/x" }).size, 100_000);
    assert_eq!(s.attrs(Request::Stat { path: b"d/x" }).size, 100_000);
    assert_eq!(s.read(&handles[0], 0, 65536).len(), 65536);
    s.ok(Request::Mkdir {
        path: b"/d/sub",
        attrs: Attrs::none(),
    });
    s.ok(Request::Rename {
        old: b"/d/sub",
        new: b"/sub",
    });
    s.ok(Request::Setstat {
        path: b"/link",
        attrs: Attrs::none().with_size(10),
    });
    assert_eq!(s.attrs(Request::Stat { path: b"/d/x" }).size, 10);
    let names = s.names(Request::Realpath {
        path: b"/sub/../d/./x",
    });
    assert_eq!(names[0].name, b"/d/x");
    match s.ext("statvfs@openssh.com", &Buf::new().str(b"/d").into_vec()) {
        Reply::ExtendedReply { .. } => {}
        r => panic!("statvfs at the handle cap: {r:?}"),
    }
    s.ok(Request::Rmdir { path: b"/sub" });
    for h in &handles {
        s.close(h);
    }
    s.finish();
}

// ---------------------------------------------------------------------------
// Oversized frames

/// Samples the peak RSS of `pid` until it exits (or `limit` passes); the largest seen.
fn peak_rss_until_exit(pid: u32, limit: Duration) -> Option<u64> {
    let start = Instant::now();
    let mut peak = None;
    while start.elapsed() < limit {
        match vm_hwm_kib(pid) {
            Some(k) => peak = peak.max(Some(k)),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    peak
}

#[test]
fn fault_frame_one_byte_too_long_exits_11() {
    let dir = Scratch::new("fault-frame-long");
    let mut s = Sftp::start(dir.path());
    let frame = frame(SSH_FXP_WRITE, &vec![0u8; MAX_PACKET]);
    assert_eq!(frame.len(), 4 + MAX_PACKET + 1);
    let writer = send_in_background(&s.c.sock, frame);
    s.c.expect_eof();
    let st = s.exit_status();
    writer.join().unwrap();
    assert_eq!(st.code(), Some(11), "server ended with {}", describe(&st));
}

#[test]
fn fault_frame_claiming_4gib_exits_11_promptly() {
    let dir = Scratch::new("fault-frame-4g");
    // With 256 MiB of address space, any attempt to make room for the frame would
    // fail and abort the process instead of exiting 11.
    let mut s = Sftp::start_limited(dir.path(), &[(Resource::RLIMIT_AS, 256 * MIB as u64)]);
    let before = vm_hwm_kib(s.pid()).expect("server alive");
    let mut packet = u32::MAX.to_be_bytes().to_vec();
    packet.push(SSH_FXP_WRITE);
    packet.extend_from_slice(&[0xab; 64 * KIB]);
    let started = Instant::now();
    let _ = s.c.try_send_raw(&packet);
    let peak = peak_rss_until_exit(s.pid(), EXIT_LIMIT);
    s.c.expect_eof();
    let st = s.exit_status();
    let took = started.elapsed();
    println!(
        "fault_frame_4gib: {} after {took:?}; VmHWM {before} KiB before, {peak:?} KiB after",
        describe(&st)
    );
    assert_eq!(st.code(), Some(11), "server ended with {}", describe(&st));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        peak.unwrap_or(before) < TRANSFER_RSS_BOUND_KIB,
        "VmHWM {peak:?} KiB"
    );
}

// ---------------------------------------------------------------------------
// Floods of bad handles

/// xorshift64*: enough randomness for handle bytes, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn fault_100k_bad_handles() {
    const TOTAL: usize = 100_000;
    const BATCH: usize = 1000;
    let dir = Scratch::new("fault-bad-handles");
    fs::write(dir.path().join("f"), b"the one real file").unwrap();
    let mut s = Sftp::start(dir.path());
    // One real handle, which no random one may close or reach.
    let real = s.open(b"f", SSH_FXF_READ | SSH_FXF_WRITE);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut done = 0;
    while done < TOTAL {
        let mut bytes = Vec::new();
        let mut expected = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let len = match rng.below(4) {
                0 | 1 => real.len(),
                2 => 4,
                _ => rng.below(301) as usize,
            };
            let handle = loop {
                let h = rng.bytes(len);
                if h != real {
                    break h;
                }
            };
            let data_len = rng.below(65) as usize;
            let data = rng.bytes(data_len);
            let id = s.c.fresh_id();
            let (req, code) = match rng.below(4) {
                0 => (
                    Request::Read {
                        handle: &handle,
                        offset: rng.next() >> 1,
                        len: rng.below(MAX_READ as u64 + 1) as u32,
                    },
                    SSH_FX_FAILURE,
                ),
                1 => (
                    Request::Write {
                        handle: &handle,
                        offset: rng.below(1 << 20),
                        data: &data,
                    },
                    SSH_FX_FAILURE,
                ),
                2 => (Request::Close { handle: &handle }, SSH_FX_NO_SUCH_FILE),
                _ => (Request::Fstat { handle: &handle }, SSH_FX_FAILURE),
            };
            bytes.extend_from_slice(&req.encode(id));
            expected.push((id, code, handle.clone()));
        }
        s.c.send_raw(&bytes);
        for (id, code, handle) in expected {
            let r =
                s.c.recv()
                    .unwrap_or_else(|e| panic!("no reply to request {id}: {e:?}"));
            assert_eq!(r.id(), Some(id), "replies in request order");
            match &r {
                Reply::Status { code: c, .. } if *c == code => assert_status(&r, code),
                other => panic!("handle {handle:02x?}: expected status {code}, got {other:?}"),
            }
        }
        done += BATCH;
    }
    let took = started.elapsed();
    println!("fault_100k_bad_handles: {TOTAL} requests answered in {took:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // The real handle is untouched.
    assert_eq!(s.read(&real, 0, 100), b"the one real file");
    s.close(&real);
    assert_eq!(
        fs::read(dir.path().join("f")).unwrap(),
        b"the one real file"
    );
    s.finish();
}

// ---------------------------------------------------------------------------
// A directory deleted while it is being listed

/// READDIR until EOF (at most `max` calls): each reply a NAME or a STATUS; returns the
/// names seen.
#[track_caller]
fn readdir_until_eof(s: &mut Sftp, h: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    for _ in 0..max {
        match s.call(Request::Readdir { handle: h }) {
            Reply::Name { entries, .. } => {
                assert!(!entries.is_empty(), "empty NAME reply");
                names.extend(entries.into_iter().map(|e| e.name));
            }
            r @ Reply::Status { .. } => {
                if status_of(&r).0 == SSH_FX_EOF {
                    assert_status(&r, SSH_FX_EOF);
                    return names;
                }
            }
            other => panic!("READDIR answered {other:?}"),
        }
    }
    panic!("READDIR gave no EOF within {max} calls");
}

#[test]
fn fault_readdir_of_deleted_directory() {
    let dir = Scratch::new("fault-readdir-deleted");
    let listed = dir.path().join("d");
    fs::create_dir(&listed).unwrap();
    let all: std::collections::BTreeSet<Vec<u8>> = (0..350)
        .map(|i| format!("entry-{i:04}").into_bytes())
        .chain([b".".to_vec(), b"..".to_vec()])
        .collect();
    for name in all.iter().filter(|n| n.starts_with(b"entry")) {
        fs::write(listed.join(std::str::from_utf8(name).unwrap()), b"x").unwrap();
    }
    let mut s = Sftp::start(dir.path());

    // Deleted after the first batch.
    let h = s.handle(Request::Opendir { path: b"d" });
    let mut seen = match s.call(Request::Readdir { handle: &h }) {
        Reply::Name { entries, .. } => entries.into_iter().map(|e| e.name).collect::<Vec<_>>(),
        other => panic!("expected NAME, got {other:?}"),
    };
    fs::remove_dir_all(&listed).unwrap();
    seen.extend(readdir_until_eof(&mut s, &h, 10));
    // EOF again, then the handle closes normally.
    assert_status(&s.call(Request::Readdir { handle: &h }), SSH_FX_EOF);
    s.close(&h);
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a name listed twice");
    assert!(
        unique.is_subset(&all),
        "names that never existed: {unique:?}"
    );

    // Deleted before the first READDIR.
    fs::create_dir(&listed).unwrap();
    fs::write(listed.join("entry-0000"), b"x").unwrap();
    let h = s.handle(Request::Opendir { path: b"d" });
    fs::remove_dir_all(&listed).unwrap();
    let names = readdir_until_eof(&mut s, &h, 10);
    assert!(
        names.iter().all(|n| all.contains(n)),
        "names that never existed: {names:?}"
    );
    s.close(&h);
    s.alive();
    s.finish();
}

// ---------------------------------------------------------------------------
// Memory bounds

/// Peak RSS bounds. Measured: under 5 MiB for either server in every case (see the
/// README); a server that held a whole 64-deep pipeline (16 MiB of data) or a whole
/// listing in memory would pass 12 MiB.
const TRANSFER_RSS_BOUND_KIB: u64 = 12 * 1024;
const LISTING_RSS_BOUND_KIB: u64 = 12 * 1024;

/// Reads the server's VmHWM, prints it and asserts it is below `bound_kib`.
#[track_caller]
fn check_peak_rss(s: &Sftp, what: &str, bound_kib: u64) {
    let hwm = vm_hwm_kib(s.pid()).expect("server still running");
    let who = if testing_openssh() { "OpenSSH" } else { "ours" };
    println!("peak RSS ({who}) {what}: VmHWM {hwm} KiB");
    assert!(
        hwm < bound_kib,
        "{what}: VmHWM {hwm} KiB, bound {bound_kib} KiB"
    );
}

#[test]
fn fault_memory_pipelined_writes() {
    let dir = Scratch::new("fault-mem-write");
    let mut s = Sftp::start(dir.path());
    let h = s.open(b"big", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    // The largest data that fits a maximal packet with this handle.
    let size = MAX_PACKET - (1 + 4 + 4 + h.len() + 8 + 4);
    let chunks = chunk_data(500, 64, size);
    let first_id = s.c.fresh_id();
    let bytes = encoded_writes(&h, &chunks, first_id);
    // 16 MiB of requests sent while the replies come back.
    let writer = send_in_background(&s.c.sock, bytes);
    s.expect_write_acks(first_id, 64);
    writer.join().unwrap();
    check_peak_rss(&s, "64 pipelined WRITEs of 256 KiB", TRANSFER_RSS_BOUND_KIB);
    s.close(&h);
    assert_all_chunks(&dir.path().join("big"), &chunks);
    s.finish();
}

#[test]
fn fault_memory_pipelined_reads() {
    let dir = Scratch::new("fault-mem-read");
    let content = pseudo_random(600, 64 * MAX_READ);
    fs::write(dir.path().join("big"), &content).unwrap();
    let mut s = Sftp::start(dir.path());
    let h = s.open(b"big", SSH_FXF_READ);
    let reqs: Vec<Request> = (0..64)
        .map(|i| Request::Read {
            handle: &h,
            offset: (i * MAX_READ) as u64,
            len: MAX_READ as u32,
        })
        .collect();
    for (i, r) in s.pipeline(&reqs).into_iter().enumerate() {
        match r {
            Reply::Data { data, .. } => assert_same_bytes(
                &data,
                &content[i * MAX_READ..(i + 1) * MAX_READ],
                &format!("READ {i}"),
            ),
            other => panic!("expected DATA, got {other:?}"),
        }
    }
    check_peak_rss(
        &s,
        "64 pipelined READs of 261120 bytes",
        TRANSFER_RSS_BOUND_KIB,
    );
    s.close(&h);
    s.finish();
}

#[test]
fn fault_memory_readdir_100k_entries() {
    const ENTRIES: usize = 100_000;
    const WINDOW: usize = 64;
    let dir = Scratch::new("fault-mem-readdir");
    let mnt = Mount::tmpfs(&dir.path().join("big"), "size=16m,nr_inodes=200k");
    for i in 0..ENTRIES {
        fs::File::create(mnt.path.join(format!("file-with-a-longish-name-{i:06}"))).unwrap();
    }
    let mut s = Sftp::start(dir.path());
    let h = s.handle(Request::Opendir { path: b"big" });
    // READDIRs kept 64 deep until EOF comes back.
    let mut outstanding = std::collections::VecDeque::new();
    let mut count = 0usize;
    let mut eof = false;
    let mut calls = 0;
    loop {
        while !eof && outstanding.len() < WINDOW {
            outstanding.push_back(s.c.send(&Request::Readdir { handle: &h }));
            calls += 1;
            assert!(calls < ENTRIES, "READDIR never ends");
        }
        let Some(id) = outstanding.pop_front() else {
            break;
        };
        let r = s.c.recv().expect("READDIR reply");
        assert_eq!(r.id(), Some(id));
        match r {
            Reply::Name { entries, .. } => {
                assert!(!eof, "entries after EOF");
                count += entries.len();
            }
            r => {
                assert_status(&r, SSH_FX_EOF);
                eof = true;
            }
        }
    }
    assert_eq!(count, ENTRIES + 2, "every entry, with . and ..");
    check_peak_rss(&s, "READDIR of 100,000 entries", LISTING_RSS_BOUND_KIB);
    s.close(&h);
    s.finish();
}

// ---------------------------------------------------------------------------
// Awkward transport: non-blocking descriptors, dribbled frames, a stopped process

/// A 64-deep pipelined upload of `size`-byte chunks and a 64-deep pipelined download
/// of the result, checked byte for byte; `send` puts the request bytes on the wire.
fn round_trip(
    s: &mut Sftp,
    dir: &Path,
    seed: u64,
    size: usize,
    send: impl FnOnce(&UnixStream, Vec<u8>) -> std::thread::JoinHandle<()>,
) {
    let h = s.open(
        b"up",
        SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
    );
    let chunks = chunk_data(seed, 64, size);
    let first_id = s.c.fresh_id();
    let bytes = encoded_writes(&h, &chunks, first_id);
    let writer = send(&s.c.sock, bytes);
    s.expect_write_acks(first_id, 64);
    writer.join().unwrap();
    let reqs: Vec<Request> = (0..64)
        .map(|i| Request::Read {
            handle: &h,
            offset: (i * size) as u64,
            len: size as u32,
        })
        .collect();
    for (i, r) in s.pipeline(&reqs).into_iter().enumerate() {
        match r {
            Reply::Data { data, .. } => assert_same_bytes(&data, &chunks[i], &format!("READ {i}")),
            other => panic!("expected DATA, got {other:?}"),
        }
    }
    s.close(&h);
    assert_all_chunks(&dir.join("up"), &chunks);
}

#[test]
fn fault_nonblocking_stdio() {
    let dir = Scratch::new("fault-nonblock");
    let mut s = Sftp::start_with(dir.path(), &[], true);
    // Replies outgrow the socket buffer while the client is still sending (EAGAIN on
    // write), and requests arrive slower than the server reads (EAGAIN on read).
    round_trip(&mut s, dir.path(), 700, MAX_READ, send_in_background);
    round_trip(&mut s, dir.path(), 800, 4 * KIB, dribble);
    s.finish();
}

/// Sends `bytes` from a thread in pieces of 1 to 7 bytes and of up to 100 KiB, mixed,
/// with a short pause after each, so frames arrive cut at arbitrary places.
fn dribble(sock: &UnixStream, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut sock = sock.try_clone().expect("dup socket");
    std::thread::spawn(move || {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = if rng.below(2) == 0 {
                1 + rng.below(7)
            } else {
                1 + rng.below(100 * KIB as u64)
            };
            let (piece, tail) = rest.split_at((n as usize).min(rest.len()));
            if sock.write_all(piece).is_err() {
                return;
            }
            rest = tail;
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

#[test]
fn fault_frames_cut_at_arbitrary_places() {
    let dir = Scratch::new("fault-dribble");
    let mut s = Sftp::start(dir.path());
    round_trip(&mut s, dir.path(), 900, 32 * KIB, dribble);
    s.finish();
}

#[test]
fn fault_server_stopped_and_continued_mid_transfer() {
    use nix::sys::signal::{Signal, kill};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = Scratch::new("fault-sigstop");
    let mut s = Sftp::start(dir.path());
    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
    let done = Arc::new(AtomicBool::new(false));
    let stopper = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut stops = 0;
            while !done.load(Ordering::Relaxed) {
                // The child is not reaped before this thread is joined: the pid is
                // still the server's.
                kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
                std::thread::sleep(Duration::from_millis(3));
                kill(pid, Signal::SIGCONT).expect("SIGCONT");
                std::thread::sleep(Duration::from_millis(2));
                stops += 1;
            }
            stops
        })
    };
    round_trip(&mut s, dir.path(), 1000, MAX_READ, send_in_background);
    done.store(true, Ordering::Relaxed);
    let stops = stopper.join().unwrap();
    println!("fault_server_stopped: stopped and continued {stops} times");
    s.alive();
    s.finish();
}
