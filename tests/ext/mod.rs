//! OpenSSH's SFTP extensions, field by field and error by error: posix-rename, statvfs,
//! fstatvfs, hardlink, fsync, lsetstat, limits, expand-path, copy-data, home-directory
//! and users-groups-by-id (formats in OpenSSH's PROTOCOL file), the `-R`/`-P`/`-p`
//! policies applied to them, and the same extensions reached through OpenSSH's own
//! `sftp` client (`sftp -D <server> -b -`).
//!
//! Each test runs its own server in its own scratch directory, which is the server's
//! working directory. Where our server deliberately differs from OpenSSH's the test
//! says so with `if testing_openssh() { .. } else { .. }`.

use crate::support::raw::*;
use crate::support::session::{self, abs_in, deref_to_session};
use crate::support::status::*;
use crate::support::{Scratch, Server, server_bin, testing_openssh, wait_bounded};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every extension the server advertises (proto_init_version_and_extensions checks
/// their version strings).
const EXTENSIONS: [&str; 11] = [
    "posix-rename@openssh.com",
    "statvfs@openssh.com",
    "fstatvfs@openssh.com",
    "hardlink@openssh.com",
    "fsync@openssh.com",
    "lsetstat@openssh.com",
    "limits@openssh.com",
    "expand-path@openssh.com",
    "copy-data",
    "home-directory",
    "users-groups-by-id@openssh.com",
];

/// The extensions `-R` refuses because they change the file system.
const WRITING_EXTENSIONS: [&str; 5] = [
    "posix-rename@openssh.com",
    "hardlink@openssh.com",
    "fsync@openssh.com",
    "lsetstat@openssh.com",
    "copy-data",
];

/// limits@openssh.com: the largest packet, READ and WRITE the server accepts.
const MAX_PACKET: u64 = 262144;
const MAX_READ: u64 = 261120;
const MAX_WRITE: u64 = 261120;

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("UTF-8 path")
}

/// Request data made of strings, one after the other.
fn strs(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().fold(Buf::new(), |b, s| b.str(s)).into_vec()
}

/// copy-data's request data.
fn copy_req(from: &[u8], from_off: u64, len: u64, to: &[u8], to_off: u64) -> Vec<u8> {
    Buf::new()
        .str(from)
        .u64(from_off)
        .u64(len)
        .str(to)
        .u64(to_off)
        .into_vec()
}

/// users-groups-by-id's request data: two strings of packed big-endian ids.
fn ids_req(uids: &[u32], gids: &[u32]) -> Vec<u8> {
    let pack = |ids: &[u32]| {
        ids.iter()
            .flat_map(|i| i.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    strs(&[&pack(uids), &pack(gids)])
}

/// A deterministic, non-repeating-looking test pattern of `len` bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// A uid and gid with no name on this system.
fn unnamed_id() -> u32 {
    let id = 3_999_999_999;
    assert!(user_name(id).is_none() && group_name(id).is_none());
    id
}

/// A path under /dev/shm (another file system than the scratch directory's), removed
/// on drop.
struct ShmPath(PathBuf);

impl ShmPath {
    fn new(tag: &str) -> ShmPath {
        let p = PathBuf::from(format!(
            "/dev/shm/sftp-server-test-{tag}-{}",
            std::process::id()
        ));
        let _ = fs::remove_file(&p);
        let scratch_dev = fs::metadata(std::env::temp_dir()).unwrap().dev();
        let shm_dev = fs::metadata("/dev/shm").expect("/dev/shm").dev();
        assert_ne!(scratch_dev, shm_dev, "/dev/shm must be another file system");
        ShmPath(p)
    }
}

impl Drop for ShmPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A server started in a fresh scratch directory, past INIT.
struct Session {
    s: session::Session,
    dir: Scratch,
}

deref_to_session!(Session, s);

impl Session {
    fn start(tag: &str) -> Session {
        Session::start_with(tag, &[])
    }

    /// Starts the server under test with `args` and completes INIT/VERSION.
    fn start_with(tag: &str, args: &[&str]) -> Session {
        let dir = Scratch::new(tag);
        let server = Server::spawn_with(&server_bin(), dir.path(), args, Stdio::null());
        Session::init(dir, server)
    }

    /// Starts the server under test with its file descriptor limit lowered to `nofile`.
    fn start_with_nofile(tag: &str, nofile: u32) -> Session {
        let dir = Scratch::new(tag);
        let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
        let bin = server_bin();
        let args = ["-c", script.as_str(), bin.to_str().unwrap()];
        let server = Server::spawn_with(Path::new("/bin/sh"), dir.path(), &args, Stdio::null());
        Session::init(dir, server)
    }

    fn init(dir: Scratch, server: Server) -> Session {
        Session {
            s: session::Session::init(server),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The canonical absolute path of `name` in the scratch directory, as bytes.
    fn abs(&self, name: &str) -> Vec<u8> {
        abs_in(self.dir.path(), name)
    }

    #[track_caller]
    fn ext_status(&mut self, name: &str, data: &[u8], code: u32) {
        let r = self.ext(name, data);
        assert_status(&r, code);
    }

    #[track_caller]
    fn ext_ok(&mut self, name: &str, data: &[u8]) {
        self.ext_status(name, data, SSH_FX_OK);
    }

    #[track_caller]
    fn ext_os_failure(&mut self, name: &str, data: &[u8], os_text: &str) {
        let r = self.ext(name, data);
        assert_os_failure(&r, os_text);
    }

    /// The body of the EXTENDED_REPLY to an extension request.
    #[track_caller]
    fn ext_reply(&mut self, name: &str, data: &[u8]) -> Vec<u8> {
        match self.ext(name, data) {
            Reply::ExtendedReply { body, .. } => body,
            other => panic!("expected EXTENDED_REPLY to {name}, got {other:?}"),
        }
    }

    /// The path in a NAME reply holding exactly one entry whose long name equals its
    /// name and whose attributes are empty (as expand-path and home-directory answer).
    #[track_caller]
    fn ext_path(&mut self, name: &str, data: &[u8]) -> Vec<u8> {
        match self.ext(name, data) {
            Reply::Name { entries, .. } => {
                assert_eq!(entries.len(), 1, "{name}: {entries:?}");
                let e = &entries[0];
                assert_eq!(e.longname, e.name, "{name}: long name");
                assert_eq!(e.attrs, Attrs::none(), "{name}: attributes");
                e.name.clone()
            }
            other => panic!("expected NAME from {name}, got {other:?}"),
        }
    }

    #[track_caller]
    fn open(&mut self, path: &str, pflags: u32) -> Vec<u8> {
        match self.try_open(path, pflags) {
            Reply::Handle { handle, .. } => handle,
            other => panic!("expected HANDLE for {path:?}, got {other:?}"),
        }
    }

    fn try_open(&mut self, path: &str, pflags: u32) -> Reply {
        self.call(Request::Open {
            path: path.as_bytes(),
            pflags,
            attrs: Attrs::none(),
        })
    }

    #[track_caller]
    fn opendir(&mut self, path: &str) -> Vec<u8> {
        match self.call(Request::Opendir {
            path: path.as_bytes(),
        }) {
            Reply::Handle { handle, .. } => handle,
            other => panic!("expected HANDLE for directory {path:?}, got {other:?}"),
        }
    }

    /// Sends an EXTENDED request whose data does not decode: OpenSSH exits with status
    /// 255; ours answers BAD_MESSAGE with the id and goes on.
    #[track_caller]
    fn expect_bad_message(mut self, name: &str, data: &[u8]) {
        let id = 77;
        let body = Buf::new()
            .u32(id)
            .str(name.as_bytes())
            .bytes(data)
            .into_vec();
        self.c.send_packet(SSH_FXP_EXTENDED, &body);
        if testing_openssh() {
            self.c.expect_eof();
            let st = self.wait_exit(Duration::from_secs(10));
            assert_eq!(st.code(), Some(255), "{name}: exit status");
        } else {
            let r = self.c.recv().expect("reply to an undecodable request");
            assert_eq!(r.id(), Some(id), "{name}: {r:?}");
            assert_status(&r, SSH_FX_BAD_MESSAGE);
            // The session goes on.
            let body = self.ext_reply("limits@openssh.com", b"");
            assert_eq!(body.len(), 32, "{name}: limits after BAD_MESSAGE");
        }
    }
}

// ---------------------------------------------------------------------------
// posix-rename@openssh.com

#[test]
fn ext_posix_rename_replaces_an_existing_target() {
    let mut s = Session::start("ext-prename");
    fs::write(s.path("a"), b"from a").unwrap();
    fs::write(s.path("b"), b"old b").unwrap();
    let ino = fs::metadata(s.path("a")).unwrap().ino();
    s.ext_ok("posix-rename@openssh.com", &strs(&[b"a", b"b"]));
    assert!(!s.path("a").exists(), "source still there");
    assert_eq!(fs::read(s.path("b")).unwrap(), b"from a");
    assert_eq!(fs::metadata(s.path("b")).unwrap().ino(), ino);

    // A directory replaces an empty directory.
    fs::create_dir(s.path("d1")).unwrap();
    fs::write(s.path("d1/inside"), b"x").unwrap();
    fs::create_dir(s.path("d2")).unwrap();
    s.ext_ok("posix-rename@openssh.com", &strs(&[b"d1", b"d2"]));
    assert_eq!(fs::read(s.path("d2/inside")).unwrap(), b"x");
    assert!(!s.path("d1").exists());

    // Renaming a file onto itself changes nothing.
    s.ext_ok("posix-rename@openssh.com", &strs(&[b"b", b"b"]));
    assert_eq!(fs::read(s.path("b")).unwrap(), b"from a");

    // Absolute paths work as well as relative ones.
    let (from, to) = (s.abs("b"), s.abs("c"));
    s.ext_ok("posix-rename@openssh.com", &strs(&[&from, &to]));
    assert_eq!(fs::read(s.path("c")).unwrap(), b"from a");
}

#[test]
fn ext_posix_rename_errors() {
    let mut s = Session::start("ext-prename-err");
    fs::write(s.path("f"), b"f").unwrap();
    fs::create_dir(s.path("d")).unwrap();
    fs::create_dir(s.path("full")).unwrap();
    fs::write(s.path("full/x"), b"x").unwrap();
    let name = "posix-rename@openssh.com";
    // ENOENT: the source is missing.
    s.ext_status(name, &strs(&[b"missing", b"g"]), SSH_FX_NO_SUCH_FILE);
    assert!(!s.path("g").exists());
    // ENOENT: the target's directory is missing.
    s.ext_status(name, &strs(&[b"f", b"nodir/g"]), SSH_FX_NO_SUCH_FILE);
    // ENOTDIR: a directory onto a file.
    s.ext_status(name, &strs(&[b"d", b"f"]), SSH_FX_NO_SUCH_FILE);
    // EISDIR: a file onto a directory.
    s.ext_os_failure(name, &strs(&[b"f", b"d"]), "Is a directory");
    // ENOTEMPTY: a directory onto a non-empty directory.
    s.ext_os_failure(name, &strs(&[b"d", b"full"]), "Directory not empty");
    // EINVAL: a directory into itself.
    s.ext_status(name, &strs(&[b"d", b"d/sub"]), SSH_FX_BAD_MESSAGE);
    // EXDEV: onto another file system.
    let shm = ShmPath::new("prename");
    s.ext_os_failure(
        name,
        &strs(&[b"f", &bytes_of(&shm.0)]),
        "Invalid cross-device link",
    );
    assert!(!shm.0.exists());
    // Nothing moved.
    assert_eq!(fs::read(s.path("f")).unwrap(), b"f");
    assert!(s.path("d").is_dir());
    assert_eq!(fs::read(s.path("full/x")).unwrap(), b"x");
}

// ---------------------------------------------------------------------------
// statvfs@openssh.com and fstatvfs@openssh.com

/// The eleven fields of a statvfs reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Vfs {
    bsize: u64,
    frsize: u64,
    blocks: u64,
    bfree: u64,
    bavail: u64,
    files: u64,
    ffree: u64,
    favail: u64,
    fsid: u64,
    flag: u64,
    namemax: u64,
}

impl Vfs {
    #[track_caller]
    fn decode(body: &[u8]) -> Vfs {
        assert_eq!(body.len(), 11 * 8, "statvfs reply: 11 uint64 fields");
        let mut r = Reader::new(body);
        let mut f = || r.u64().unwrap();
        Vfs {
            bsize: f(),
            frsize: f(),
            blocks: f(),
            bfree: f(),
            bavail: f(),
            files: f(),
            ffree: f(),
            favail: f(),
            fsid: f(),
            flag: f(),
            namemax: f(),
        }
    }

    /// What statvfs(3) says about `path` now, in the reply's encoding: f_flag carries
    /// only ST_RDONLY (1) and ST_NOSUID (2).
    fn of(path: &Path) -> Vfs {
        let st = nix::sys::statvfs::statvfs(path).unwrap();
        Vfs {
            bsize: st.block_size() as u64,
            frsize: st.fragment_size() as u64,
            blocks: st.blocks() as u64,
            bfree: st.blocks_free() as u64,
            bavail: st.blocks_available() as u64,
            files: st.files() as u64,
            ffree: st.files_free() as u64,
            favail: st.files_available() as u64,
            fsid: st.filesystem_id() as u64,
            flag: st.flags().bits() as u64 & 0x3,
            namemax: st.name_max() as u64,
        }
    }

    /// The fields that do not move while other tests write files.
    fn fixed(&self) -> (u64, u64, u64, u64, u64, u64, u64) {
        (
            self.bsize,
            self.frsize,
            self.blocks,
            self.files,
            self.fsid,
            self.flag,
            self.namemax,
        )
    }

    /// Asserts `self` (a reply) describes the same file system as `want` (from
    /// statvfs(3)): the fixed fields equal, the free counts close (other tests create
    /// and remove files meanwhile) and consistent.
    #[track_caller]
    fn assert_matches(&self, want: &Vfs) {
        assert_eq!(self.fixed(), want.fixed(), "{self:?} vs {want:?}");
        let close = |a: u64, b: u64, total: u64| a.abs_diff(b) <= (total / 100).max(4096);
        assert!(close(self.bfree, want.bfree, want.blocks), "bfree");
        assert!(close(self.bavail, want.bavail, want.blocks), "bavail");
        assert!(close(self.ffree, want.ffree, want.files), "ffree");
        assert!(close(self.favail, want.favail, want.files), "favail");
        assert!(
            self.bavail <= self.bfree && self.bfree <= self.blocks,
            "{self:?}"
        );
        assert!(
            self.favail <= self.ffree && self.ffree <= self.files,
            "{self:?}"
        );
    }
}

/// `stat -f` (coreutils, statfs(2)) for `path`: block size, fundamental block size,
/// total blocks, total inodes and the longest file name.
fn stat_f(path: &Path) -> (u64, u64, u64, u64, u64) {
    let out = Command::new("stat")
        .args(["-f", "-c", "%s %S %b %c %l"])
        .arg(path)
        .output()
        .expect("run stat -f");
    assert!(out.status.success(), "stat -f: {out:?}");
    let v: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3], v[4])
}

#[test]
fn ext_statvfs_fields() {
    let mut s = Session::start("ext-statvfs");
    fs::write(s.path("f"), b"f").unwrap();
    let here = Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"."])));
    here.assert_matches(&Vfs::of(s.dir.path()));
    let (bsize, frsize, blocks, files, namemax) = stat_f(s.dir.path());
    assert_eq!(
        (
            here.bsize,
            here.frsize,
            here.blocks,
            here.files,
            here.namemax
        ),
        (bsize, frsize, blocks, files, namemax),
        "against stat -f"
    );
    assert!(
        here.bsize.is_power_of_two() && here.bsize >= 512,
        "{here:?}"
    );
    assert!(here.blocks > 0 && here.namemax >= 14, "{here:?}");
    assert_eq!(here.flag & 1, 0, "the scratch directory is writable");

    // A file in the directory, by absolute path, is on the same file system.
    let abs = s.abs("f");
    let file = Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[&abs])));
    assert_eq!(file.fixed(), here.fixed());

    // Another file system gives its own figures.
    let shm = Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"/dev/shm"])));
    shm.assert_matches(&Vfs::of(Path::new("/dev/shm")));
    assert_ne!(shm.fsid, here.fsid);
    let proc = Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"/proc"])));
    proc.assert_matches(&Vfs::of(Path::new("/proc")));
}

#[test]
fn ext_fstatvfs_matches_statvfs() {
    let mut s = Session::start("ext-fstatvfs");
    fs::write(s.path("f"), b"f").unwrap();
    let by_path = Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"f"])));
    for pflags in [
        SSH_FXF_READ,
        SSH_FXF_WRITE,
        SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_APPEND,
    ] {
        let h = s.open("f", pflags);
        let by_handle = Vfs::decode(&s.ext_reply("fstatvfs@openssh.com", &strs(&[&h])));
        assert_eq!(by_handle.fixed(), by_path.fixed(), "pflags {pflags:#x}");
        by_handle.assert_matches(&Vfs::of(s.dir.path()));
        s.close(&h);
    }
    let h = s.open("/dev/shm", SSH_FXF_READ);
    let shm = Vfs::decode(&s.ext_reply("fstatvfs@openssh.com", &strs(&[&h])));
    shm.assert_matches(&Vfs::of(Path::new("/dev/shm")));
    s.close(&h);
}

#[test]
fn ext_statvfs_errors() {
    let mut s = Session::start("ext-statvfs-err");
    fs::write(s.path("f"), b"f").unwrap();
    // ENOENT, ENOTDIR
    s.ext_status(
        "statvfs@openssh.com",
        &strs(&[b"missing"]),
        SSH_FX_NO_SUCH_FILE,
    );
    s.ext_status("statvfs@openssh.com", &strs(&[b"f/x"]), SSH_FX_NO_SUCH_FILE);
    // Handles that are not open files.
    s.ext_status("fstatvfs@openssh.com", &strs(&[b""]), SSH_FX_FAILURE);
    s.ext_status(
        "fstatvfs@openssh.com",
        &strs(&[b"no such handle"]),
        SSH_FX_FAILURE,
    );
    let d = s.opendir(".");
    s.ext_status("fstatvfs@openssh.com", &strs(&[&d]), SSH_FX_FAILURE);
    s.close(&d);
    let h = s.open("f", SSH_FXF_READ);
    s.close(&h);
    s.ext_status("fstatvfs@openssh.com", &strs(&[&h]), SSH_FX_FAILURE);
}

// ---------------------------------------------------------------------------
// hardlink@openssh.com

#[test]
fn ext_hardlink_creates_a_second_name() {
    let mut s = Session::start("ext-hardlink");
    fs::write(s.path("a"), b"shared").unwrap();
    s.ext_ok("hardlink@openssh.com", &strs(&[b"a", b"b"]));
    let (ma, mb) = (
        fs::metadata(s.path("a")).unwrap(),
        fs::metadata(s.path("b")).unwrap(),
    );
    assert_eq!((ma.ino(), ma.nlink()), (mb.ino(), 2));
    fs::write(s.path("a"), b"changed").unwrap();
    assert_eq!(fs::read(s.path("b")).unwrap(), b"changed");

    // Absolute paths, into a subdirectory.
    fs::create_dir(s.path("d")).unwrap();
    let (from, to) = (s.abs("a"), s.abs("d/c"));
    s.ext_ok("hardlink@openssh.com", &strs(&[&from, &to]));
    assert_eq!(fs::metadata(s.path("a")).unwrap().nlink(), 3);
    assert_eq!(fs::metadata(s.path("d/c")).unwrap().ino(), ma.ino());

    // link(2) does not follow a symbolic link: the new name is the link itself.
    symlink("a", s.path("sym")).unwrap();
    s.ext_ok("hardlink@openssh.com", &strs(&[b"sym", b"sym2"]));
    let m = fs::symlink_metadata(s.path("sym2")).unwrap();
    assert!(m.file_type().is_symlink(), "{m:?}");
    assert_eq!(m.ino(), fs::symlink_metadata(s.path("sym")).unwrap().ino());
}

#[test]
fn ext_hardlink_errors() {
    let mut s = Session::start("ext-hardlink-err");
    fs::write(s.path("a"), b"a").unwrap();
    fs::write(s.path("b"), b"b").unwrap();
    let name = "hardlink@openssh.com";
    // EEXIST: the new name is taken, even by a file of the same content.
    s.ext_os_failure(name, &strs(&[b"a", b"b"]), "File exists");
    s.ext_os_failure(name, &strs(&[b"a", b"a"]), "File exists");
    assert_eq!(fs::read(s.path("b")).unwrap(), b"b");
    assert_eq!(fs::metadata(s.path("a")).unwrap().nlink(), 1);
    // ENOENT
    s.ext_status(name, &strs(&[b"missing", b"c"]), SSH_FX_NO_SUCH_FILE);
    s.ext_status(name, &strs(&[b"a", b"nodir/c"]), SSH_FX_NO_SUCH_FILE);
    assert!(!s.path("c").exists());
    // EXDEV
    let shm = ShmPath::new("hardlink");
    s.ext_os_failure(
        name,
        &strs(&[b"a", &bytes_of(&shm.0)]),
        "Invalid cross-device link",
    );
    assert!(!shm.0.exists());
    // EPERM: directories cannot be hard-linked.
    fs::create_dir(s.path("d")).unwrap();
    s.ext_status(name, &strs(&[b"d", b"d2"]), SSH_FX_PERMISSION_DENIED);
}

// ---------------------------------------------------------------------------
// fsync@openssh.com

#[test]
fn ext_fsync() {
    let mut s = Session::start("ext-fsync");
    let h = s.open("f", SSH_FXF_WRITE | SSH_FXF_CREAT);
    s.ok(Request::Write {
        handle: &h,
        offset: 0,
        data: b"durable",
    });
    s.ext_ok("fsync@openssh.com", &strs(&[&h]));
    assert_eq!(fs::read(s.path("f")).unwrap(), b"durable");
    s.close(&h);
    // A read-only handle can be synced too.
    let h = s.open("f", SSH_FXF_READ);
    s.ext_ok("fsync@openssh.com", &strs(&[&h]));
    s.close(&h);
    // A handle that is no longer open, or never was.
    s.ext_status("fsync@openssh.com", &strs(&[&h]), SSH_FX_NO_SUCH_FILE);
    s.ext_status("fsync@openssh.com", &strs(&[b""]), SSH_FX_NO_SUCH_FILE);
    s.ext_status("fsync@openssh.com", &strs(&[b"junk"]), SSH_FX_NO_SUCH_FILE);
    // A directory handle is not a file handle.
    let d = s.opendir(".");
    s.ext_status("fsync@openssh.com", &strs(&[&d]), SSH_FX_NO_SUCH_FILE);
    s.close(&d);
}

// ---------------------------------------------------------------------------
// lsetstat@openssh.com

/// (atime, mtime) of `path` itself, not following a final symbolic link.
fn ltimes(path: &Path) -> (i64, i64) {
    let m = fs::symlink_metadata(path).unwrap();
    (m.atime(), m.mtime())
}

fn lsetstat_req(path: &[u8], attrs: &Attrs) -> Vec<u8> {
    Buf::new().str(path).attrs(attrs).into_vec()
}

#[test]
fn ext_lsetstat_times_change_the_link_not_the_target() {
    let mut s = Session::start("ext-lsetstat-times");
    fs::write(s.path("f"), b"target").unwrap();
    symlink("f", s.path("l")).unwrap();
    let target_before = ltimes(&s.path("f"));
    let times = Attrs::none().with_times(1_000_000_000, 1_100_000_000);
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"l", &times));
    assert_eq!(ltimes(&s.path("l")), (1_000_000_000, 1_100_000_000));
    assert_eq!(
        ltimes(&s.path("f")),
        target_before,
        "the target was touched"
    );

    // A dangling link's own times can be set as well.
    symlink("nowhere", s.path("dangling")).unwrap();
    let times = Attrs::none().with_times(1_200_000_000, 1_300_000_000);
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"dangling", &times));
    assert_eq!(ltimes(&s.path("dangling")), (1_200_000_000, 1_300_000_000));

    // On a regular file it acts as SETSTAT.
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"f", &times));
    assert_eq!(ltimes(&s.path("f")), (1_200_000_000, 1_300_000_000));
}

#[test]
fn ext_lsetstat_owner_changes_the_link_not_the_target() {
    let mut s = Session::start("ext-lsetstat-owner");
    fs::write(s.path("f"), b"target").unwrap();
    symlink("f", s.path("l")).unwrap();
    let owner = Attrs::none().with_uidgid(1234, 5678);
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"l", &owner));
    let (ml, mf) = (
        fs::symlink_metadata(s.path("l")).unwrap(),
        fs::metadata(s.path("f")).unwrap(),
    );
    assert_eq!((ml.uid(), ml.gid()), (1234, 5678));
    assert_eq!((mf.uid(), mf.gid()), (0, 0), "the target changed owner");
}

#[test]
fn ext_lsetstat_mode_size_and_errors() {
    let mut s = Session::start("ext-lsetstat-mode");
    fs::write(s.path("f"), b"target").unwrap();
    fs::set_permissions(s.path("f"), fs::Permissions::from_mode(0o644)).unwrap();
    symlink("f", s.path("l")).unwrap();
    // Linux cannot change a symbolic link's mode: EOPNOTSUPP.
    let mode = Attrs::none().with_permissions(0o600);
    s.ext_os_failure(
        "lsetstat@openssh.com",
        &lsetstat_req(b"l", &mode),
        "Operation not supported",
    );
    let mode_of = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode_of(&s.path("f")), 0o644, "the target's mode changed");
    assert_eq!(mode_of(&s.path("l")), 0o777);
    // A regular file's mode can be changed.
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"f", &mode));
    assert_eq!(mode_of(&s.path("f")), 0o600);

    // A size is refused outright, on a link or a file, and nothing else is applied.
    let size = Attrs::none().with_size(1).with_permissions(0o640);
    s.ext_status(
        "lsetstat@openssh.com",
        &lsetstat_req(b"f", &size),
        SSH_FX_BAD_MESSAGE,
    );
    s.ext_status(
        "lsetstat@openssh.com",
        &lsetstat_req(b"l", &size),
        SSH_FX_BAD_MESSAGE,
    );
    assert_eq!(fs::read(s.path("f")).unwrap(), b"target");
    assert_eq!(mode_of(&s.path("f")), 0o600);

    // No attributes at all: nothing to do.
    s.ext_ok("lsetstat@openssh.com", &lsetstat_req(b"l", &Attrs::none()));
    // A missing path.
    let times = Attrs::none().with_times(1, 2);
    s.ext_status(
        "lsetstat@openssh.com",
        &lsetstat_req(b"missing", &times),
        SSH_FX_NO_SUCH_FILE,
    );
}

// ---------------------------------------------------------------------------
// limits@openssh.com

/// The four fields of a limits reply.
#[track_caller]
fn decode_limits(body: &[u8]) -> [u64; 4] {
    assert_eq!(body.len(), 32, "limits reply: 4 uint64 fields");
    let mut r = Reader::new(body);
    [
        r.u64().unwrap(),
        r.u64().unwrap(),
        r.u64().unwrap(),
        r.u64().unwrap(),
    ]
}

/// max-open-handles for a given RLIMIT_NOFILE soft limit: OpenSSH keeps 5 descriptors
/// back, ours 8.
fn handles_for(nofile: u64) -> u64 {
    if testing_openssh() {
        nofile - 5
    } else {
        nofile - 8
    }
}

#[test]
fn ext_limits_fields() {
    let mut s = Session::start("ext-limits");
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let [packet, read, write, handles] = decode_limits(&s.ext_reply("limits@openssh.com", b""));
    assert_eq!((packet, read, write), (MAX_PACKET, MAX_READ, MAX_WRITE));
    assert_eq!(handles, handles_for(soft));

    // The advertised READ length is what a READ returns.
    fs::write(s.path("big"), pattern(MAX_READ as usize + 10)).unwrap();
    let h = s.open("big", SSH_FXF_READ);
    match s.call(Request::Read {
        handle: &h,
        offset: 0,
        len: MAX_READ as u32 + 10,
    }) {
        Reply::Data { data, .. } => assert_eq!(data.len() as u64, MAX_READ),
        other => panic!("expected DATA, got {other:?}"),
    }
    // Trailing data after the (empty) request is ignored.
    let again = decode_limits(&s.ext_reply("limits@openssh.com", b"extra"));
    assert_eq!(again, [packet, read, write, handles]);
}

#[test]
fn ext_limits_handle_count_is_honest() {
    const NOFILE: u32 = 64;
    let mut s = Session::start_with_nofile("ext-limits-handles", NOFILE);
    let [_, _, _, n] = decode_limits(&s.ext_reply("limits@openssh.com", b""));
    assert_eq!(n, handles_for(NOFILE.into()));
    fs::write(s.path("f"), b"f").unwrap();
    let mut handles = Vec::new();
    for i in 0..n {
        match s.try_open("f", SSH_FXF_READ) {
            Reply::Handle { handle, .. } => handles.push(handle),
            other => panic!("open {} of {n} advertised: {other:?}", i + 1),
        }
    }
    if testing_openssh() {
        // OpenSSH keeps no count of its own: opening goes on until the descriptors
        // run out (EMFILE), a little beyond the advertised number.
        let mut extra = 0;
        loop {
            match s.try_open("f", SSH_FXF_READ) {
                Reply::Handle { handle, .. } => handles.push(handle),
                r => {
                    assert_status(&r, SSH_FX_FAILURE);
                    break;
                }
            }
            extra += 1;
            assert!(extra < 8, "descriptors never ran out");
        }
    } else {
        // Ours refuses the one past the advertised count, files and directories alike.
        let r = s.try_open("f", SSH_FXF_READ);
        assert_status_msg(&r, SSH_FX_FAILURE, "Too many open files");
        let r = s.call(Request::Opendir { path: b"." });
        assert_status_msg(&r, SSH_FX_FAILURE, "Too many open files");
        // The handles already open still work.
        for h in &handles {
            match s.call(Request::Fstat { handle: h }) {
                Reply::Attrs { attrs, .. } => assert_eq!(attrs.size, 1),
                other => panic!("FSTAT: {other:?}"),
            }
        }
    }
    // Closing one makes room for one more.
    let h = handles.pop().unwrap();
    s.close(&h);
    let h = s.open("f", SSH_FXF_READ);
    s.close(&h);
    for h in &handles {
        s.close(h);
    }
    let d = s.opendir(".");
    s.close(&d);
}

// ---------------------------------------------------------------------------
// expand-path@openssh.com

#[test]
fn ext_expand_path() {
    let mut s = Session::start("ext-expand");
    fs::create_dir(s.path("sub")).unwrap();
    fs::write(s.path("f"), b"f").unwrap();
    symlink("sub", s.path("link")).unwrap();
    let expand = |s: &mut Session, p: &str| {
        text(s.ext_path("expand-path@openssh.com", &strs(&[p.as_bytes()])))
    };
    let here = |s: &Session, name: &str| text(s.abs(name));
    // "~" and "~/" are the server's starting directory (its working directory, which
    // `-d` sets), not the user's home directory.
    assert_eq!(expand(&mut s, "~"), here(&s, ""));
    assert_eq!(expand(&mut s, "~/"), here(&s, ""));
    assert_eq!(expand(&mut s, "~/sub"), here(&s, "sub"));
    assert_eq!(
        expand(&mut s, "~/x"),
        here(&s, "x"),
        "a missing last component"
    );
    // "~user/..." is that user's home directory.
    let root_home = nix::unistd::User::from_uid(0u32.into())
        .unwrap()
        .unwrap()
        .dir;
    let root_home = fs::canonicalize(root_home).unwrap();
    assert_eq!(
        expand(&mut s, "~root/x"),
        root_home.join("x").to_str().unwrap()
    );
    assert_eq!(expand(&mut s, "~root"), root_home.to_str().unwrap());
    // Relative paths are taken from the working directory and canonicalised.
    assert_eq!(expand(&mut s, ""), here(&s, ""));
    assert_eq!(expand(&mut s, "."), here(&s, ""));
    assert_eq!(expand(&mut s, "sub/../f"), here(&s, "f"));
    assert_eq!(expand(&mut s, "link"), here(&s, "sub"));
    assert_eq!(expand(&mut s, "./sub//"), here(&s, "sub"));
    // Absolute paths are canonicalised only.
    assert_eq!(expand(&mut s, "/"), "/");
    assert_eq!(expand(&mut s, "/proc/../dev"), "/dev");

    // An unknown user.
    let r = s.ext("expand-path@openssh.com", &strs(&[b"~nosuchuser-sftp/x"]));
    assert_status_msg(&r, SSH_FX_NO_SUCH_FILE, "no such user");
    // A missing directory before the last component.
    s.ext_status(
        "expand-path@openssh.com",
        &strs(&[b"~/missing/x"]),
        SSH_FX_NO_SUCH_FILE,
    );
    s.ext_status(
        "expand-path@openssh.com",
        &strs(&[b"f/x"]),
        SSH_FX_NO_SUCH_FILE,
    );
}

// ---------------------------------------------------------------------------
// copy-data

/// The size of the source file in the copy-data tests: more than three of
/// OpenSSH's 64 KiB copy steps.
const PATTERN_LEN: usize = 200_000;

/// A session whose directory holds `src`, PATTERN_LEN bytes of `pattern`.
fn copy_session(tag: &str) -> (Session, Vec<u8>) {
    let s = Session::start(tag);
    let data = pattern(PATTERN_LEN);
    fs::write(s.path("src"), &data).unwrap();
    (s, data)
}

#[test]
fn ext_copy_data_whole_file_and_ranges() {
    let (mut s, data) = copy_session("ext-copy");
    let src = s.open("src", SSH_FXF_READ);

    // Length 0: to the end of the source.
    let dst = s.open("whole", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    s.ext_ok("copy-data", &copy_req(&src, 0, 0, &dst, 0));
    s.close(&dst);
    assert_eq!(fs::read(s.path("whole")).unwrap(), data);

    // From an offset to the end, to an offset past the destination's end (a hole).
    let dst = s.open("tail", SSH_FXF_WRITE | SSH_FXF_CREAT);
    s.ext_ok("copy-data", &copy_req(&src, 150_000, 0, &dst, 10));
    s.close(&dst);
    let mut want = vec![0u8; 10];
    want.extend_from_slice(&data[150_000..]);
    assert_eq!(fs::read(s.path("tail")).unwrap(), want);

    // A sub-range into the middle of an existing file, which keeps its length.
    fs::write(s.path("mid"), vec![b'x'; 100]).unwrap();
    let dst = s.open("mid", SSH_FXF_WRITE);
    s.ext_ok("copy-data", &copy_req(&src, 1000, 30, &dst, 20));
    s.close(&dst);
    let mut want = vec![b'x'; 100];
    want[20..50].copy_from_slice(&data[1000..1030]);
    assert_eq!(fs::read(s.path("mid")).unwrap(), want);

    // A range running past the source's end copies what there is.
    let dst = s.open("short", SSH_FXF_WRITE | SSH_FXF_CREAT);
    s.ext_ok(
        "copy-data",
        &copy_req(&src, PATTERN_LEN as u64 - 5, 1000, &dst, 0),
    );
    s.close(&dst);
    assert_eq!(fs::read(s.path("short")).unwrap(), &data[PATTERN_LEN - 5..]);

    // A source offset past the end copies nothing and succeeds.
    let dst = s.open("none", SSH_FXF_WRITE | SSH_FXF_CREAT);
    let past = PATTERN_LEN as u64 + 100;
    s.ext_ok("copy-data", &copy_req(&src, past, 0, &dst, 0));
    s.ext_ok("copy-data", &copy_req(&src, past, 10, &dst, 0));
    // With a length reaching more than 64 KiB past the end, OpenSSH (which copies
    // in 64 KiB steps) reports EOF once it meets the end before its last step; ours
    // copies what there is and succeeds.
    let r = s.ext("copy-data", &copy_req(&src, past, 1 << 20, &dst, 0));
    if testing_openssh() {
        assert_status(&r, SSH_FX_EOF);
    } else {
        assert_status(&r, SSH_FX_OK);
    }
    s.close(&dst);
    assert_eq!(fs::metadata(s.path("none")).unwrap().len(), 0);

    // A read-write handle is a fine destination; the source handle stays usable.
    let dst = s.open("rw", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT);
    s.ext_ok("copy-data", &copy_req(&src, 5, 5, &dst, 0));
    match s.call(Request::Read {
        handle: &dst,
        offset: 0,
        len: 100,
    }) {
        Reply::Data { data: got, .. } => assert_eq!(got, &data[5..10]),
        other => panic!("expected DATA, got {other:?}"),
    }
    s.close(&dst);
    match s.call(Request::Read {
        handle: &src,
        offset: 0,
        len: 4,
    }) {
        Reply::Data { data: got, .. } => assert_eq!(got, &data[..4]),
        other => panic!("expected DATA, got {other:?}"),
    }
    s.close(&src);
}

#[test]
fn ext_copy_data_append_destination_appends() {
    let (mut s, data) = copy_session("ext-copy-append");
    fs::write(s.path("log"), b"head:").unwrap();
    let src = s.open("src", SSH_FXF_READ);
    let dst = s.open("log", SSH_FXF_WRITE | SSH_FXF_APPEND);
    // The write offset is ignored: the data goes to the end.
    s.ext_ok("copy-data", &copy_req(&src, 0, 10, &dst, 0));
    s.ext_ok("copy-data", &copy_req(&src, 100, 5, &dst, 2));
    s.close(&dst);
    s.close(&src);
    let mut want = b"head:".to_vec();
    want.extend_from_slice(&data[..10]);
    want.extend_from_slice(&data[100..105]);
    assert_eq!(fs::read(s.path("log")).unwrap(), want);
}

#[test]
fn ext_copy_data_bad_handles() {
    let (mut s, data) = copy_session("ext-copy-bad");
    fs::write(s.path("dst"), b"unchanged").unwrap();
    let src = s.open("src", SSH_FXF_READ);
    let dst = s.open("dst", SSH_FXF_WRITE);
    let dir = s.opendir(".");
    for (from, to) in [
        (&b"junk"[..], &dst[..]),
        (&src[..], &b"junk"[..]),
        (&b""[..], &b""[..]),
        (&dir[..], &dst[..]),
        (&src[..], &dir[..]),
    ] {
        let r = s.ext("copy-data", &copy_req(from, 0, 0, to, 0));
        assert_status(&r, SSH_FX_FAILURE);
    }
    // The same handle on both sides.
    s.ext_status(
        "copy-data",
        &copy_req(&src, 0, 10, &src, 100),
        SSH_FX_FAILURE,
    );
    s.ext_status(
        "copy-data",
        &copy_req(&dst, 0, 10, &dst, 100),
        SSH_FX_FAILURE,
    );
    // A closed handle.
    let gone = s.open("src", SSH_FXF_READ);
    s.close(&gone);
    s.ext_status("copy-data", &copy_req(&gone, 0, 0, &dst, 0), SSH_FX_FAILURE);
    assert_eq!(fs::read(s.path("dst")).unwrap(), b"unchanged");
    assert_eq!(fs::read(s.path("src")).unwrap(), data);
}

#[test]
fn ext_copy_data_wrong_access_modes() {
    let (mut s, data) = copy_session("ext-copy-modes");
    fs::write(s.path("dst"), b"unchanged").unwrap();
    // A destination opened for reading only: EBADF.
    let src = s.open("src", SSH_FXF_READ);
    let ro = s.open("dst", SSH_FXF_READ);
    s.ext_status(
        "copy-data",
        &copy_req(&src, 0, 0, &ro, 0),
        SSH_FX_NO_SUCH_FILE,
    );
    // A source opened for writing only: EBADF.
    let wo_src = s.open("src", SSH_FXF_WRITE);
    let dst = s.open("dst", SSH_FXF_WRITE);
    s.ext_status(
        "copy-data",
        &copy_req(&wo_src, 0, 0, &dst, 0),
        SSH_FX_NO_SUCH_FILE,
    );
    for h in [src, ro, wo_src, dst] {
        s.close(&h);
    }
    assert_eq!(fs::read(s.path("dst")).unwrap(), b"unchanged");
    assert_eq!(fs::read(s.path("src")).unwrap(), data);
}

#[test]
fn ext_copy_data_within_one_file() {
    let (mut s, data) = copy_session("ext-copy-same");
    let r = s.open("src", SSH_FXF_READ);
    let w = s.open("src", SSH_FXF_WRITE);
    let a = s.open("src", SSH_FXF_WRITE | SSH_FXF_APPEND);
    // Overlapping ranges, to the end of file (length 0), or onto an APPEND handle of
    // the same file: refused by both servers (OpenSSH refuses any two handles with the
    // same name).
    for req in [
        copy_req(&r, 0, 100, &w, 50),
        copy_req(&r, 50, 100, &w, 0),
        copy_req(&r, 0, 0, &w, 150_000),
        copy_req(&r, 0, 10, &a, 0),
    ] {
        s.ext_status("copy-data", &req, SSH_FX_FAILURE);
    }
    assert_eq!(fs::read(s.path("src")).unwrap(), data);

    // Disjoint ranges of the same file.
    let r2 = s.ext("copy-data", &copy_req(&r, 0, 100, &w, 1000));
    if testing_openssh() {
        assert_status(&r2, SSH_FX_FAILURE);
        assert_eq!(fs::read(s.path("src")).unwrap(), data);
    } else {
        assert_status(&r2, SSH_FX_OK);
        let mut want = data.clone();
        want.copy_within(0..100, 1000);
        assert_eq!(fs::read(s.path("src")).unwrap(), want);
    }

    if !testing_openssh() {
        // Ours compares files, not names: "./src" is the same file as "src".
        let fs_before = fs::read(s.path("src")).unwrap();
        let w2 = s.open("./src", SSH_FXF_WRITE);
        s.ext_status("copy-data", &copy_req(&r, 0, 100, &w2, 50), SSH_FX_FAILURE);
        s.ext_status("copy-data", &copy_req(&r, 0, 0, &w2, 500), SSH_FX_FAILURE);
        s.close(&w2);
        assert_eq!(fs::read(s.path("src")).unwrap(), fs_before);
    }
    for h in [r, w, a] {
        s.close(&h);
    }
}

// ---------------------------------------------------------------------------
// home-directory

#[test]
fn ext_home_directory() {
    let mut s = Session::start("ext-home");
    assert_eq!(
        text(s.ext_path("home-directory", &strs(&[b"root"]))),
        "/root"
    );
    // Another user's home, as the password database has it (not canonicalised, and
    // it need not exist).
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let got = s.ext_path("home-directory", &strs(&[b"nobody"]));
    if testing_openssh() {
        // OpenSSH 9.2 answers with its own user's home directory whoever is asked
        // (fixed in later releases).
        assert_eq!(text(got), "/root");
    } else {
        assert_eq!(text(got), nobody.dir.to_str().unwrap());
    }
    s.ext_status("home-directory", &strs(&[b""]), SSH_FX_FAILURE);
    s.ext_status(
        "home-directory",
        &strs(&[b"nosuchuser-sftp"]),
        SSH_FX_FAILURE,
    );
}

// ---------------------------------------------------------------------------
// users-groups-by-id@openssh.com

/// Decodes the reply: two strings, each holding a sequence of strings.
#[track_caller]
fn decode_names(body: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut r = Reader::new(body);
    let list = |r: &mut Reader| {
        let inner = r.string().unwrap();
        let mut ir = Reader::new(&inner);
        let mut names = Vec::new();
        while !ir.done() {
            names.push(String::from_utf8(ir.string().unwrap()).unwrap());
        }
        names
    };
    let users = list(&mut r);
    let groups = list(&mut r);
    assert!(r.done(), "trailing bytes in users-groups-by-id reply");
    (users, groups)
}

#[test]
fn ext_users_groups_by_id() {
    let mut s = Session::start("ext-ugid");
    let unknown = unnamed_id();
    let name = "users-groups-by-id@openssh.com";
    let body = s.ext_reply(name, &ids_req(&[0, unknown, 0], &[0, unknown]));
    assert_eq!(
        decode_names(&body),
        (
            vec!["root".to_string(), String::new(), "root".to_string()],
            vec!["root".to_string(), String::new()]
        )
    );
    // Whatever ids this system names.
    let ids = [1, 2, 100, 1000, 65534];
    let body = s.ext_reply(name, &ids_req(&ids, &ids));
    let want_users: Vec<String> = ids
        .iter()
        .map(|&i| user_name(i).unwrap_or_default())
        .collect();
    let want_groups: Vec<String> = ids
        .iter()
        .map(|&i| group_name(i).unwrap_or_default())
        .collect();
    assert_eq!(decode_names(&body), (want_users, want_groups));
    // Users only, groups only, neither.
    let body = s.ext_reply(name, &ids_req(&[0], &[]));
    assert_eq!(decode_names(&body), (vec!["root".to_string()], vec![]));
    let body = s.ext_reply(name, &ids_req(&[], &[unknown]));
    assert_eq!(decode_names(&body), (vec![], vec![String::new()]));
    let body = s.ext_reply(name, &ids_req(&[], &[]));
    assert_eq!(body, [0u8; 8], "two empty strings");
}

// ---------------------------------------------------------------------------
// Bodies that do not decode

#[test]
fn ext_undecodable_bodies() {
    let cases: [(&str, Vec<u8>); 10] = [
        // An id list whose length is not a multiple of 4.
        (
            "users-groups-by-id@openssh.com",
            strs(&[&[0, 0, 0, 0, 1], b""]),
        ),
        ("users-groups-by-id@openssh.com", strs(&[b""])),
        ("posix-rename@openssh.com", strs(&[b"a"])),
        ("hardlink@openssh.com", strs(&[b"a"])),
        ("statvfs@openssh.com", Vec::new()),
        ("fsync@openssh.com", Vec::new()),
        ("lsetstat@openssh.com", strs(&[b"a"])),
        ("expand-path@openssh.com", vec![0, 0, 0, 9, b'x']),
        // copy-data without its write offset.
        (
            "copy-data",
            Buf::new().str(b"h").u64(0).u64(0).str(b"h").into_vec(),
        ),
        ("home-directory", Vec::new()),
    ];
    for (name, data) in cases {
        let s = Session::start("ext-badbody");
        s.expect_bad_message(name, &data);
    }
}

// ---------------------------------------------------------------------------
// -R, -P and -p

/// A directory with a file, a second file and a symbolic link whose times are known.
fn policy_fixture(s: &Session) {
    fs::write(s.path("a"), b"a").unwrap();
    fs::write(s.path("b"), b"b").unwrap();
    symlink("a", s.path("l")).unwrap();
}

#[track_caller]
fn assert_fixture_unchanged(s: &Session, link_times: (i64, i64)) {
    assert_eq!(fs::read(s.path("a")).unwrap(), b"a");
    assert_eq!(fs::read(s.path("b")).unwrap(), b"b");
    assert_eq!(fs::metadata(s.path("a")).unwrap().nlink(), 1);
    assert!(!s.path("c").exists());
    assert_eq!(ltimes(&s.path("l")), link_times);
    let mut names: Vec<_> = fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "l"].map(OsStr::new));
}

#[test]
fn ext_read_only_refuses_writing_extensions() {
    let mut s = Session::start_with("ext-readonly", &["-R"]);
    policy_fixture(&s);
    let link_times = ltimes(&s.path("l"));
    for name in EXTENSIONS {
        let writes = WRITING_EXTENSIONS.contains(&name);
        // What is refused is not advertised.
        assert_eq!(s.advertises(name), !writes, "{name} in VERSION");
    }
    let a = s.open("a", SSH_FXF_READ);
    let b = s.open("b", SSH_FXF_READ);
    let denied: [(&str, Vec<u8>); 6] = [
        ("posix-rename@openssh.com", strs(&[b"a", b"b"])),
        ("hardlink@openssh.com", strs(&[b"a", b"c"])),
        ("fsync@openssh.com", strs(&[&a])),
        (
            "lsetstat@openssh.com",
            lsetstat_req(b"l", &Attrs::none().with_times(1, 2)),
        ),
        ("copy-data", copy_req(&a, 0, 0, &b, 0)),
        ("copy-data", copy_req(b"junk", 0, 0, b"junk", 0)),
    ];
    for (name, data) in &denied {
        s.ext_status(name, data, SSH_FX_PERMISSION_DENIED);
    }
    assert_fixture_unchanged(&s, link_times);

    // The extensions that only look still work.
    Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"."])))
        .assert_matches(&Vfs::of(s.dir.path()));
    Vfs::decode(&s.ext_reply("fstatvfs@openssh.com", &strs(&[&a])))
        .assert_matches(&Vfs::of(s.dir.path()));
    decode_limits(&s.ext_reply("limits@openssh.com", b""));
    assert_eq!(
        text(s.ext_path("expand-path@openssh.com", &strs(&[b"a"]))),
        text(s.abs("a"))
    );
    assert_eq!(
        text(s.ext_path("home-directory", &strs(&[b"root"]))),
        "/root"
    );
    let body = s.ext_reply("users-groups-by-id@openssh.com", &ids_req(&[0], &[0]));
    assert_eq!(
        decode_names(&body),
        (vec!["root".to_string()], vec!["root".to_string()])
    );
    s.close(&a);
    s.close(&b);
    assert_fixture_unchanged(&s, link_times);
}

#[test]
fn ext_denylisted_hardlink_is_refused() {
    let mut s = Session::start_with("ext-deny", &["-P", "hardlink"]);
    policy_fixture(&s);
    let link_times = ltimes(&s.path("l"));
    assert!(
        !s.advertises("hardlink@openssh.com"),
        "a refused extension is not advertised"
    );
    for name in EXTENSIONS {
        if name != "hardlink@openssh.com" {
            assert!(s.advertises(name), "{name} still advertised");
        }
    }
    s.ext_status(
        "hardlink@openssh.com",
        &strs(&[b"a", b"c"]),
        SSH_FX_PERMISSION_DENIED,
    );
    // Even a request that would fail anyway is refused first.
    s.ext_status(
        "hardlink@openssh.com",
        &strs(&[b"missing", b"c"]),
        SSH_FX_PERMISSION_DENIED,
    );
    assert_fixture_unchanged(&s, link_times);
    // The rest is unaffected.
    s.ext_ok("posix-rename@openssh.com", &strs(&[b"b", b"c"]));
    assert_eq!(fs::read(s.path("c")).unwrap(), b"b");
}

#[test]
fn ext_allowlist_permits_only_the_listed_extensions() {
    let mut s = Session::start_with("ext-allow", &["-p", "open,close,statvfs,limits"]);
    policy_fixture(&s);
    let link_times = ltimes(&s.path("l"));
    for name in EXTENSIONS {
        let allowed = name == "statvfs@openssh.com" || name == "limits@openssh.com";
        assert_eq!(s.advertises(name), allowed, "{name} in VERSION");
    }
    decode_limits(&s.ext_reply("limits@openssh.com", b""));
    Vfs::decode(&s.ext_reply("statvfs@openssh.com", &strs(&[b"."])));
    let a = s.open("a", SSH_FXF_READ);
    let denied: [(&str, Vec<u8>); 8] = [
        ("posix-rename@openssh.com", strs(&[b"a", b"b"])),
        ("hardlink@openssh.com", strs(&[b"a", b"c"])),
        ("fstatvfs@openssh.com", strs(&[&a])),
        ("fsync@openssh.com", strs(&[&a])),
        ("expand-path@openssh.com", strs(&[b"~"])),
        ("copy-data", copy_req(&a, 0, 0, &a, 0)),
        ("home-directory", strs(&[b"root"])),
        ("users-groups-by-id@openssh.com", ids_req(&[0], &[0])),
    ];
    for (name, data) in &denied {
        s.ext_status(name, data, SSH_FX_PERMISSION_DENIED);
    }
    s.close(&a);
    assert_fixture_unchanged(&s, link_times);
}

// ---------------------------------------------------------------------------
// Through OpenSSH's sftp client

/// What one `sftp -b -` run printed.
struct SftpRun {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sftp [extra] -D "<server> <server_args>" -b -` in `dir` with `batch` on its
/// standard input; stops it after 30 seconds.
fn run_sftp(dir: &Path, extra: &[&str], server_args: &str, batch: &str) -> SftpRun {
    let server = format!("{} {server_args}", server_bin().display());
    let mut child = Command::new("sftp")
        .args(extra)
        .arg("-D")
        .arg(server.trim_end())
        .args(["-b", "-"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sftp");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(batch.as_bytes()).unwrap();
    drop(stdin);
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    SftpRun {
        ok: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

impl SftpRun {
    #[track_caller]
    fn assert_ok(&self) {
        assert!(
            self.ok,
            "sftp failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }

    /// The whitespace-separated numbers on the line after the one containing `header`.
    #[track_caller]
    fn numbers_after(&self, header: &str) -> Vec<u64> {
        let mut lines = self.stdout.lines();
        lines
            .by_ref()
            .find(|l| l.contains(header))
            .unwrap_or_else(|| panic!("no {header:?} in {:?}", self.stdout));
        let line = lines.next().expect("a line of figures");
        line.split_whitespace()
            .map(|w| w.trim_end_matches('%').parse().unwrap())
            .collect()
    }
}

#[test]
fn ext_sftp_df() {
    let dir = Scratch::new("ext-sftp-df");
    let run = run_sftp(dir.path(), &[], "", "df\ndf -i\n");
    run.assert_ok();
    let st = Vfs::of(dir.path());
    let kib = |blocks: u64| blocks * st.frsize / 1024;
    // Size, Used, Avail, (root), %Capacity in KiB.
    let df = run.numbers_after("Size");
    assert_eq!(df.len(), 5, "{:?}", run.stdout);
    assert_eq!(df[0], kib(st.blocks), "size");
    let close = |a: u64, b: u64| a.abs_diff(b) <= kib(st.blocks) / 100;
    assert!(close(df[1], kib(st.blocks - st.bfree)), "used {df:?}");
    assert!(close(df[2], kib(st.bavail)), "avail {df:?}");
    assert!(close(df[3], kib(st.bfree)), "root {df:?}");
    // Inodes, Used, Avail, (root), %Capacity.
    let dfi = run.numbers_after("Inodes");
    assert_eq!(dfi.len(), 5, "{:?}", run.stdout);
    assert_eq!(dfi[0], st.files, "inodes");
    assert!(
        dfi[1].abs_diff(st.files - st.ffree) <= st.files / 100,
        "{dfi:?}"
    );
}

#[test]
fn ext_sftp_ln_hard_and_symbolic() {
    let dir = Scratch::new("ext-sftp-ln");
    fs::write(dir.path().join("a"), b"linked").unwrap();
    let run = run_sftp(dir.path(), &[], "-e -l INFO", "ln a hard\nln -s a soft\n");
    run.assert_ok();
    let (ma, mh) = (
        fs::metadata(dir.path().join("a")).unwrap(),
        fs::metadata(dir.path().join("hard")).unwrap(),
    );
    assert_eq!((mh.ino(), mh.nlink()), (ma.ino(), 2));
    assert_eq!(
        fs::read_link(dir.path().join("soft")).unwrap(),
        Path::new("a")
    );
    assert!(run.stderr.contains("hardlink old "), "{}", run.stderr);
    assert!(run.stderr.contains("symlink old \"a\""), "{}", run.stderr);
}

#[test]
fn ext_sftp_cp_copies_bytes() {
    let dir = Scratch::new("ext-sftp-cp");
    let data = pattern(300_000);
    fs::write(dir.path().join("orig"), &data).unwrap();
    fs::write(dir.path().join("old"), vec![b'z'; 400_000]).unwrap();
    let run = run_sftp(dir.path(), &[], "", "cp orig copy\ncp orig old\n");
    run.assert_ok();
    assert_eq!(fs::read(dir.path().join("copy")).unwrap(), data);
    assert_eq!(
        fs::read(dir.path().join("old")).unwrap(),
        data,
        "an existing target is truncated first"
    );
    assert_eq!(fs::read(dir.path().join("orig")).unwrap(), data);
}

#[test]
fn ext_sftp_lsetstat_on_a_symlink() {
    let dir = Scratch::new("ext-sftp-lsetstat");
    let p = |n: &str| dir.path().join(n);
    fs::write(p("f"), b"target").unwrap();
    fs::set_permissions(p("f"), fs::Permissions::from_mode(0o644)).unwrap();
    symlink("f", p("l")).unwrap();
    // chmod -h: Linux cannot change a link's mode, and the target is left alone.
    let run = run_sftp(dir.path(), &[], "", "chmod -h 600 l\n");
    assert!(!run.ok, "chmod -h on a symlink succeeded: {}", run.stdout);
    assert!(run.stderr.contains("lsetstat"), "{}", run.stderr);
    assert_eq!(fs::metadata(p("f")).unwrap().mode() & 0o7777, 0o644);
    // chown -h / chgrp -h change the link's owner and group, not the target's.
    let run = run_sftp(dir.path(), &[], "", "chown -h 1234 l\nchgrp -h 5678 l\n");
    run.assert_ok();
    let ml = fs::symlink_metadata(p("l")).unwrap();
    assert_eq!((ml.uid(), ml.gid()), (1234, 5678));
    let mf = fs::metadata(p("f")).unwrap();
    assert_eq!((mf.uid(), mf.gid()), (0, 0));
}

#[test]
fn ext_sftp_ls_l_names_the_owner() {
    let dir = Scratch::new("ext-sftp-ls");
    let p = |n: &str| dir.path().join(n);
    fs::write(p("mine"), b"x").unwrap();
    fs::write(p("theirs"), b"x").unwrap();
    // A user and a group that have names here, other than root.
    let (uid, gid) = (1u32, 1u32);
    let (user, group) = (user_name(uid).unwrap(), group_name(gid).unwrap());
    std::os::unix::fs::chown(p("theirs"), Some(uid), Some(gid)).unwrap();
    let run = run_sftp(dir.path(), &[], "-e -l VERBOSE", "ls -l *\n");
    run.assert_ok();
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {:?}", run.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mine = line("mine");
    assert_eq!((mine[2].as_str(), mine[3].as_str()), ("root", "root"));
    let theirs = line("theirs");
    assert_eq!((theirs[2].as_str(), theirs[3].as_str()), (&*user, &*group));
    // The names came from users-groups-by-id (a glob lists without long names).
    assert!(run.stderr.contains("users-groups-by-id"), "{}", run.stderr);
}

#[test]
fn ext_sftp_rename_replaces_an_existing_file() {
    let dir = Scratch::new("ext-sftp-rename");
    let p = |n: &str| dir.path().join(n);
    fs::write(p("new"), b"new content").unwrap();
    fs::write(p("old"), b"old content").unwrap();
    let run = run_sftp(dir.path(), &[], "-e -l INFO", "rename new old\n");
    run.assert_ok();
    assert!(!p("new").exists());
    assert_eq!(fs::read(p("old")).unwrap(), b"new content");
    assert!(run.stderr.contains("posix-rename old "), "{}", run.stderr);
}

#[test]
fn ext_sftp_put_with_fsync() {
    let dir = Scratch::new("ext-sftp-fsync");
    let local = Scratch::new("ext-sftp-fsync-local");
    let data = pattern(100_000);
    let src = local.path().join("upload");
    fs::write(&src, &data).unwrap();
    let batch = format!("put {} arrived\n", src.display());
    let run = run_sftp(dir.path(), &["-f"], "-e -l VERBOSE", &batch);
    run.assert_ok();
    assert_eq!(fs::read(dir.path().join("arrived")).unwrap(), data);
    let fsync_line = run
        .stderr
        .lines()
        .find(|l| l.contains("fsync \""))
        .unwrap_or_else(|| panic!("no fsync line in {}", run.stderr));
    assert!(fsync_line.contains("/arrived\""), "{fsync_line}");
}

#[test]
fn ext_sftp_fsync_is_logged_at_verbose_not_info() {
    // OpenSSH logs fsync "..." at VERBOSE, so `-l INFO` leaves it out.
    let dir = Scratch::new("ext-sftp-fsync-info");
    let local = Scratch::new("ext-sftp-fsync-info-local");
    let src = local.path().join("upload");
    fs::write(&src, b"data").unwrap();
    let batch = format!("put {} arrived\n", src.display());
    let run = run_sftp(dir.path(), &["-f"], "-e -l INFO", &batch);
    run.assert_ok();
    assert_eq!(fs::read(dir.path().join("arrived")).unwrap(), b"data");
    assert!(run.stderr.contains("session opened"), "{}", run.stderr);
    assert!(!run.stderr.contains("fsync \""), "{}", run.stderr);
}
