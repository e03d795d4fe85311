//! Request-by-request checks of the SFTP v3 wire protocol (draft-ietf-secsh-filexfer-02
//! with OpenSSH's semantics), driven over the raw client in `support::raw`.
//!
//! Each test runs its own server in its own scratch directory; relative paths in the
//! requests resolve against that directory, which is the server's working directory.
//! Where our server deliberately differs from OpenSSH's the test says so with
//! `if testing_openssh() { .. } else { .. }`.

use crate::support::raw::*;
use crate::support::session::{Session, abs_in, deref_to_session};
use crate::support::status::*;
use crate::support::{Scratch, Server, server_bin, testing_openssh};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most data one READ returns (OpenSSH's 256 KiB message limit less 1024).
const MAX_READ: usize = 261120;
/// The largest packet length a server accepts.
const MAX_PACKET: u32 = 262144;

fn set_umask() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // The spawned server inherits it; 022 is also the usual default, so setting it
    // process-wide does not disturb other tests.
    ONCE.call_once(|| {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    });
}

/// The attributes a server reports for a file with metadata `m`.
fn attrs_of(m: &fs::Metadata) -> Attrs {
    Attrs::none()
        .with_size(m.size())
        .with_uidgid(m.uid(), m.gid())
        .with_permissions(m.mode())
        .with_times(m.atime() as u32, m.mtime() as u32)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn set_mtime(path: &Path, secs: i64) {
    let t = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs((-secs) as u64)
    };
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The `ls -l` mode column as OpenSSH's strmode() writes it (without its trailing space).
fn mode_string(mode: u32) -> String {
    let mut s = String::new();
    s.push(match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o100000 => '-',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '?',
    });
    for (shift, special, set_x, set_nox) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => set_x,
            (true, false) => set_nox,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// The date column: "%b %e %H:%M" for mtimes in the last six months, else "%b %e  %Y",
/// in the local time zone (which the server inherits from the test).
fn date_column(mtime: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t: nix::libc::time_t = mtime as nix::libc::time_t;
    // SAFETY: localtime_r only writes the tm we pass and reads `t`.
    let tm = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        assert!(!nix::libc::localtime_r(&t, &mut tm).is_null());
        tm
    };
    let month = MONTHS[tm.tm_mon as usize];
    if now - (365 * 24 * 60 * 60) / 2 < mtime && now >= mtime {
        format!(
            "{month} {:>2} {:02}:{:02}",
            tm.tm_mday, tm.tm_hour, tm.tm_min
        )
    } else {
        format!("{month} {:>2}  {}", tm.tm_mday, tm.tm_year + 1900)
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(gid.into()) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

/// The long name a READDIR gives for `name` with metadata `m`:
/// "%s %3u %-8s %-8s %8llu %s %s" with strmode()'s 11-character mode (ending in a space).
fn expected_longname(name: &[u8], m: &fs::Metadata, now: i64) -> Vec<u8> {
    let mut line = format!(
        "{} {:>3} {:<8} {:<8} {:>8} {} ",
        mode_string(m.mode()) + " ",
        m.nlink(),
        user_name(m.uid()),
        group_name(m.gid()),
        m.size(),
        date_column(m.mtime(), now)
    )
    .into_bytes();
    line.extend_from_slice(name);
    line
}

/// A server started in a fresh scratch directory, past INIT.
struct Sftp {
    s: Session,
    dir: Scratch,
}

deref_to_session!(Sftp, s);

impl Sftp {
    /// Starts a server and completes INIT/VERSION.
    fn start(tag: &str) -> Sftp {
        let mut s = Sftp::start_raw(tag, &[], Stdio::null());
        s.handshake();
        s
    }

    /// Starts a server without sending anything.
    fn start_raw(tag: &str, args: &[&str], stderr: Stdio) -> Sftp {
        set_umask();
        let dir = Scratch::new(tag);
        let server = Server::spawn_with(&server_bin(), dir.path(), args, stderr);
        Sftp {
            s: Session::raw(server),
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

    /// A HANDLE reply whose handle is 1 to 256 bytes long.
    #[track_caller]
    fn handle(&mut self, req: Request) -> Vec<u8> {
        let handle = self.s.handle(req);
        assert!(!handle.is_empty() && handle.len() <= 256, "{handle:?}");
        handle
    }

    #[track_caller]
    fn open(&mut self, path: &[u8], pflags: u32, attrs: Attrs) -> Vec<u8> {
        self.handle(Request::Open {
            path,
            pflags,
            attrs,
        })
    }

    /// A NAME reply with exactly one entry whose name and long name are both `expected`
    /// and whose attributes are empty (as REALPATH and READLINK answer).
    #[track_caller]
    fn single_name(&mut self, req: Request, expected: &[u8]) {
        let entries = self.names(req);
        assert_eq!(
            entries,
            vec![NameEntry {
                name: expected.to_vec(),
                longname: expected.to_vec(),
                attrs: Attrs::none(),
            }],
            "expected the single name {:?}",
            String::from_utf8_lossy(expected)
        );
    }

    /// OPENDIR, READDIR until EOF (checking EOF repeats), CLOSE; all entries in order.
    fn read_dir_all(&mut self, path: &[u8]) -> Vec<NameEntry> {
        let h = self.handle(Request::Opendir { path });
        let mut all = Vec::new();
        loop {
            match self.call(Request::Readdir { handle: &h }) {
                Reply::Name { entries, .. } => {
                    assert!(!entries.is_empty(), "empty NAME reply from READDIR");
                    all.extend(entries);
                }
                r => {
                    assert_status(&r, SSH_FX_EOF);
                    break;
                }
            }
            assert!(all.len() < 100_000, "READDIR never ends");
        }
        let again = self.call(Request::Readdir { handle: &h });
        assert_status(&again, SSH_FX_EOF);
        self.close(&h);
        all
    }

    /// Sends a packet with a well-formed frame but an undecodable body: OpenSSH exits
    /// with status 255; ours answers BAD_MESSAGE with the id and goes on.
    fn expect_bad_message(&mut self, typ: u8, body: &[u8], id: u32) {
        self.c.send_packet(typ, body);
        if testing_openssh() {
            self.c.expect_eof();
        } else {
            let r = self.c.recv().expect("reply to an undecodable request");
            assert_eq!(r.id(), Some(id), "{r:?}");
            assert_status(&r, SSH_FX_BAD_MESSAGE);
            // The session is still usable.
            let a = self.attrs(Request::Stat { path: b"." });
            assert_eq!(a.flags, 0x0F);
        }
    }

    /// Closes our end and returns the server's exit status (bounded wait).
    fn finish(self) -> ExitStatus {
        self.s.finish()
    }

    /// Waits (bounded) for the server to exit by itself, our end still open.
    fn exit_status(mut self) -> ExitStatus {
        self.wait_exit(Duration::from_secs(10))
    }
}

// ---------------------------------------------------------------------------
// INIT / VERSION

#[test]
fn proto_init_version_and_extensions() {
    let mut s = Sftp::start_raw("init", &[], Stdio::null());
    let (version, extensions) = match s.c.init() {
        Reply::Version {
            version,
            extensions,
        } => (version, extensions),
        other => panic!("expected VERSION, got {other:?}"),
    };
    assert_eq!(version, 3);
    for (name, ver) in [
        ("posix-rename@openssh.com", "1"),
        ("statvfs@openssh.com", "2"),
        ("fstatvfs@openssh.com", "2"),
        ("hardlink@openssh.com", "1"),
        ("fsync@openssh.com", "1"),
        ("lsetstat@openssh.com", "1"),
        ("limits@openssh.com", "1"),
        ("expand-path@openssh.com", "1"),
        ("copy-data", "1"),
        ("home-directory", "1"),
        ("users-groups-by-id@openssh.com", "1"),
    ] {
        let found: Vec<&Vec<u8>> = extensions
            .iter()
            .filter(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            found,
            vec![&ver.as_bytes().to_vec()],
            "extension {name} advertised once with version {ver}"
        );
    }
    assert_eq!(s.finish().code(), Some(0));
}

#[test]
fn proto_init_newer_client_version_gets_3() {
    let mut s = Sftp::start_raw("init6", &[], Stdio::null());
    // A client offering version 6 plus an extension pair still gets version 3.
    let body = Buf::new().u32(6).str(b"x@example.com").str(b"1").into_vec();
    s.c.send_packet(SSH_FXP_INIT, &body);
    match s.c.recv().expect("VERSION") {
        Reply::Version { version, .. } => assert_eq!(version, 3),
        other => panic!("expected VERSION, got {other:?}"),
    }
    let a = s.attrs(Request::Stat { path: b"." });
    assert_eq!(a.flags, 0x0F);
}

#[test]
fn proto_request_before_init_exits_255() {
    let mut s = Sftp::start_raw("preinit", &["-e"], Stdio::piped());
    let mut stderr = s.server.child.stderr.take().unwrap();
    s.c.send_raw(&Request::Stat { path: b"." }.encode(1));
    s.c.expect_eof();
    assert_eq!(s.exit_status().code(), Some(255));
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(
        log.contains("Received 17 request before init"),
        "stderr: {log:?}"
    );
}

// ---------------------------------------------------------------------------
// OPEN

#[test]
fn proto_open_create_modes() {
    let mut s = Sftp::start("open-mode");
    // No permissions attribute: 0666 less the umask (022).
    let h = s.open(b"plain", SSH_FXF_WRITE | SSH_FXF_CREAT, Attrs::none());
    s.close(&h);
    assert_eq!(mode_of(&s.path("plain")), 0o644);
    assert!(s.path("plain").is_file());

    let h = s.open(
        b"private",
        SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL,
        Attrs::none().with_permissions(0o600),
    );
    s.close(&h);
    assert_eq!(mode_of(&s.path("private")), 0o600);

    // The umask still applies to a requested mode.
    let h = s.open(
        b"wide",
        SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT,
        Attrs::none().with_permissions(0o777),
    );
    s.close(&h);
    assert_eq!(mode_of(&s.path("wide")), 0o755);

    // The mode of an existing file is left alone.
    let h = s.open(
        b"private",
        SSH_FXF_WRITE | SSH_FXF_CREAT,
        Attrs::none().with_permissions(0o666),
    );
    s.close(&h);
    assert_eq!(mode_of(&s.path("private")), 0o600);
}

#[test]
fn proto_open_read_write_roundtrip() {
    let mut s = Sftp::start("open-rw");
    let h = s.open(
        b"f",
        SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT,
        Attrs::none(),
    );
    s.write(&h, 0, b"hello world");
    assert_eq!(s.read(&h, 6, 100), b"world");
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), b"hello world");

    // CREAT without TRUNC or EXCL opens an existing file as it is.
    let h = s.open(b"f", SSH_FXF_READ | SSH_FXF_CREAT, Attrs::none());
    assert_eq!(s.read(&h, 0, 100), b"hello world");
    s.close(&h);

    // No access flags at all opens for reading.
    let h = s.open(b"f", 0, Attrs::none());
    assert_eq!(s.read(&h, 0, 5), b"hello");
    s.close(&h);
}

#[test]
fn proto_open_excl_existing_fails() {
    let mut s = Sftp::start("open-excl");
    fs::write(s.path("f"), b"keep").unwrap();
    s.os_failure(
        Request::Open {
            path: b"f",
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL,
            attrs: Attrs::none(),
        },
        "File exists",
    );
    // EXCL does not follow a dangling symlink either.
    symlink("nowhere", s.path("dangling")).unwrap();
    s.os_failure(
        Request::Open {
            path: b"dangling",
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL,
            attrs: Attrs::none(),
        },
        "File exists",
    );
    assert!(!s.path("nowhere").exists());
    assert_eq!(fs::read(s.path("f")).unwrap(), b"keep");
}

#[test]
fn proto_open_missing_is_no_such_file() {
    let mut s = Sftp::start("open-missing");
    for (path, pflags) in [
        (&b"missing"[..], SSH_FXF_READ),
        (b"missing", SSH_FXF_WRITE),
        (b"missing", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_TRUNC),
        (b"no-dir/new", SSH_FXF_WRITE | SSH_FXF_CREAT),
    ] {
        s.status(
            Request::Open {
                path,
                pflags,
                attrs: Attrs::none(),
            },
            SSH_FX_NO_SUCH_FILE,
        );
    }
    assert!(!s.path("missing").exists());
}

#[test]
fn proto_open_trunc_truncates() {
    let mut s = Sftp::start("open-trunc");
    fs::write(s.path("f"), b"0123456789").unwrap();
    let h = s.open(b"f", SSH_FXF_WRITE | SSH_FXF_TRUNC, Attrs::none());
    // Truncated as soon as it is open.
    assert_eq!(fs::metadata(s.path("f")).unwrap().len(), 0);
    s.write(&h, 0, b"ab");
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), b"ab");

    // CREAT with TRUNC makes a missing file; READ with TRUNC empties it too.
    let h = s.open(
        b"new",
        SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
        Attrs::none(),
    );
    s.close(&h);
    assert_eq!(fs::metadata(s.path("new")).unwrap().len(), 0);
    let h = s.open(
        b"f",
        SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_TRUNC,
        Attrs::none(),
    );
    let r = s.call(Request::Read {
        handle: &h,
        offset: 0,
        len: 10,
    });
    assert_status(&r, SSH_FX_EOF);
    s.close(&h);
}

#[test]
fn proto_open_append_ignores_offset() {
    let mut s = Sftp::start("open-append");
    fs::write(s.path("f"), b"abc").unwrap();
    let h = s.open(b"f", SSH_FXF_WRITE | SSH_FXF_APPEND, Attrs::none());
    s.write(&h, 0, b"XYZ");
    s.write(&h, 1, b"123");
    s.write(&h, 1000, b"!");
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), b"abcXYZ123!");
}

#[test]
fn proto_open_directory() {
    let mut s = Sftp::start("open-dir");
    fs::create_dir(s.path("d")).unwrap();
    // Opening a directory for writing fails with EISDIR.
    s.os_failure(
        Request::Open {
            path: b"d",
            pflags: SSH_FXF_WRITE,
            attrs: Attrs::none(),
        },
        "Is a directory",
    );
    // Opening one for reading succeeds, but reading it fails with EISDIR.
    let h = s.open(b"d", SSH_FXF_READ, Attrs::none());
    s.os_failure(
        Request::Read {
            handle: &h,
            offset: 0,
            len: 10,
        },
        "Is a directory",
    );
    // A file handle is not a directory handle.
    s.status(Request::Readdir { handle: &h }, SSH_FX_FAILURE);
    s.close(&h);
}

// ---------------------------------------------------------------------------
// READ / WRITE / FSTAT / CLOSE

#[test]
fn proto_read_data_short_and_eof() {
    let mut s = Sftp::start("read");
    fs::write(s.path("f"), b"0123456789").unwrap();
    let h = s.open(b"f", SSH_FXF_READ, Attrs::none());
    assert_eq!(s.read(&h, 0, 4), b"0123");
    assert_eq!(s.read(&h, 3, 2), b"34");
    // Short read at the end.
    assert_eq!(s.read(&h, 8, 10), b"89");
    // At and past the end: EOF.
    for offset in [10, 11, 1 << 40] {
        let r = s.call(Request::Read {
            handle: &h,
            offset,
            len: 4,
        });
        assert_status(&r, SSH_FX_EOF);
    }
    // Reads do not depend on a file position: the start is still there.
    assert_eq!(s.read(&h, 0, 10), b"0123456789");
    s.close(&h);
}

#[test]
fn proto_read_len_is_capped() {
    let mut s = Sftp::start("read-cap");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(s.path("big"), &content).unwrap();
    let h = s.open(b"big", SSH_FXF_READ, Attrs::none());
    for len in [MAX_READ as u32 + 1, 400_000, u32::MAX] {
        let d = s.read(&h, 0, len);
        assert_eq!(d.len(), MAX_READ, "READ of {len} bytes");
        assert_eq!(d, &content[..MAX_READ]);
    }
    let d = s.read(&h, 100, MAX_READ as u32);
    assert_eq!(d, &content[100..100 + MAX_READ]);
    let d = s.read(&h, MAX_READ as u64, 400_000);
    assert_eq!(d, &content[MAX_READ..]);
    s.close(&h);
}

#[test]
fn proto_read_on_directory_handle_fails() {
    let mut s = Sftp::start("read-dirh");
    let h = s.handle(Request::Opendir { path: b"." });
    s.status(
        Request::Read {
            handle: &h,
            offset: 0,
            len: 10,
        },
        SSH_FX_FAILURE,
    );
    s.status(
        Request::Write {
            handle: &h,
            offset: 0,
            data: b"x",
        },
        SSH_FX_FAILURE,
    );
    s.status(Request::Fstat { handle: &h }, SSH_FX_FAILURE);
    s.status(
        Request::Fsetstat {
            handle: &h,
            attrs: Attrs::none().with_permissions(0o700),
        },
        SSH_FX_FAILURE,
    );
    s.close(&h);
    assert_eq!(mode_of(s.dir.path()), 0o755);
}

#[test]
fn proto_bad_handles_get_status() {
    let mut s = Sftp::start("bad-handle");
    let long = vec![0x5a; 300];
    let handles: [&[u8]; 5] = [
        b"",
        b"abc",
        b"\xff\xff\xff\xff",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        &long,
    ];
    for h in handles {
        // Nothing was ever opened, so no handle is valid.
        s.status(Request::Close { handle: h }, SSH_FX_NO_SUCH_FILE);
        s.status(
            Request::Read {
                handle: h,
                offset: 0,
                len: 10,
            },
            SSH_FX_FAILURE,
        );
        s.status(
            Request::Write {
                handle: h,
                offset: 0,
                data: b"x",
            },
            SSH_FX_FAILURE,
        );
        s.status(Request::Fstat { handle: h }, SSH_FX_FAILURE);
        s.status(
            Request::Fsetstat {
                handle: h,
                attrs: Attrs::none().with_size(0),
            },
            SSH_FX_FAILURE,
        );
        s.status(Request::Readdir { handle: h }, SSH_FX_FAILURE);
    }
    // The server is still there.
    assert_eq!(s.attrs(Request::Stat { path: b"." }).flags, 0x0F);
    assert_eq!(s.finish().code(), Some(0));
}

#[test]
fn proto_write_sparse_and_fstat() {
    let mut s = Sftp::start("write");
    let h = s.open(b"f", SSH_FXF_WRITE | SSH_FXF_CREAT, Attrs::none());
    s.write(&h, 10, b"abc");
    s.write(&h, 0, b"X");
    s.write(&h, 1 << 20, b"end");
    let a = s.attrs(Request::Fstat { handle: &h });
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!(a, attrs_of(&m));
    assert_eq!(a.flags, 0x0F);
    assert_eq!(a.size, (1 << 20) + 3);
    assert_eq!(a.permissions, 0o100644);
    s.close(&h);
    let content = fs::read(s.path("f")).unwrap();
    assert_eq!(&content[..13], b"X\0\0\0\0\0\0\0\0\0abc");
    assert!(content[13..1 << 20].iter().all(|&b| b == 0));
    assert_eq!(&content[1 << 20..], b"end");
    // An empty write succeeds and changes nothing.
    let h = s.open(b"f", SSH_FXF_WRITE, Attrs::none());
    s.write(&h, 0, b"");
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), content);
}

#[test]
fn proto_close_twice() {
    let mut s = Sftp::start("close");
    fs::write(s.path("f"), b"x").unwrap();
    let h = s.open(b"f", SSH_FXF_READ, Attrs::none());
    s.close(&h);
    s.status(Request::Close { handle: &h }, SSH_FX_NO_SUCH_FILE);
    s.status(
        Request::Read {
            handle: &h,
            offset: 0,
            len: 1,
        },
        SSH_FX_FAILURE,
    );
    let d = s.handle(Request::Opendir { path: b"." });
    s.close(&d);
    s.status(Request::Close { handle: &d }, SSH_FX_NO_SUCH_FILE);
    s.status(Request::Readdir { handle: &d }, SSH_FX_FAILURE);
}

#[test]
fn proto_stale_handle_does_not_reach_a_later_file() {
    let mut s = Sftp::start("stale");
    fs::write(s.path("a"), b"AAAA").unwrap();
    fs::write(s.path("b"), b"BBBB").unwrap();
    let ha = s.open(b"a", SSH_FXF_READ, Attrs::none());
    s.close(&ha);
    let hb = s.open(b"b", SSH_FXF_READ, Attrs::none());
    let stale = s.call(Request::Read {
        handle: &ha,
        offset: 0,
        len: 4,
    });
    if testing_openssh() {
        // OpenSSH hands out the freed slot again, so the old handle reads the new file.
        assert_eq!(ha, hb);
        assert!(
            matches!(&stale, Reply::Data { data, .. } if data == b"BBBB"),
            "{stale:?}"
        );
    } else {
        assert_ne!(ha, hb, "a closed handle is not handed out again");
        assert_status(&stale, SSH_FX_FAILURE);
        s.status(Request::Close { handle: &ha }, SSH_FX_NO_SUCH_FILE);
        // The new handle is unaffected.
        assert_eq!(s.read(&hb, 0, 4), b"BBBB");
    }
    s.close(&hb);
}

#[test]
fn proto_ids_are_echoed_for_pipelined_requests() {
    let mut s = Sftp::start("ids");
    fs::write(s.path("f"), b"x").unwrap();
    let ids = [0u32, u32::MAX, 7, 0x8000_0000];
    for id in ids {
        s.c.send_with_id(id, &Request::Stat { path: b"f" });
    }
    s.c.send_with_id(42, &Request::Stat { path: b"missing" });
    // The draft lets a server answer in any order, so match replies by id.
    let mut got: Vec<u32> = Vec::new();
    for _ in 0..=ids.len() {
        match s.c.recv().expect("reply") {
            Reply::Attrs { id, attrs } => {
                assert_eq!(attrs.size, 1);
                got.push(id);
            }
            r => {
                assert_eq!(r.id(), Some(42), "{r:?}");
                assert_status(&r, SSH_FX_NO_SUCH_FILE);
            }
        }
    }
    got.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn proto_trailing_bytes_in_a_request_are_ignored() {
    let mut s = Sftp::start("trailing");
    fs::write(s.path("f"), b"12345").unwrap();
    // OpenSSH skips whatever follows a request's fields up to the end of the packet.
    let body = Buf::new().u32(61).str(b"f").bytes(b"junk").into_vec();
    s.c.send_packet(SSH_FXP_STAT, &body);
    match s.c.recv().expect("reply") {
        Reply::Attrs { id: 61, attrs } => assert_eq!(attrs.size, 5),
        other => panic!("expected ATTRS for id 61, got {other:?}"),
    }
    let body = Buf::new().u32(62).str(b"missing").u32(0).into_vec();
    s.c.send_packet(SSH_FXP_LSTAT, &body);
    let r = s.c.recv().expect("reply");
    assert_eq!(r.id(), Some(62));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
}

// ---------------------------------------------------------------------------
// STAT / LSTAT / SETSTAT / FSETSTAT

#[test]
fn proto_stat_lstat_symlinks() {
    let mut s = Sftp::start("stat");
    fs::write(s.path("f"), b"hello").unwrap();
    set_mtime(&s.path("f"), 1_500_000_000);
    fs::create_dir(s.path("d")).unwrap();
    symlink("f", s.path("l")).unwrap();
    symlink("nowhere", s.path("dangling")).unwrap();
    let fm = fs::metadata(s.path("f")).unwrap();

    let a = s.attrs(Request::Stat { path: b"f" });
    assert_eq!(a, attrs_of(&fm));
    assert_eq!(
        (a.flags, a.size, a.permissions, a.atime, a.mtime),
        (0x0F, 5, 0o100644, 1_500_000_000, 1_500_000_000)
    );
    assert_eq!(s.attrs(Request::Lstat { path: b"f" }), a);
    // STAT follows the link, LSTAT describes it.
    assert_eq!(s.attrs(Request::Stat { path: b"l" }), a);
    let la = s.attrs(Request::Lstat { path: b"l" });
    assert_eq!(la, attrs_of(&fs::symlink_metadata(s.path("l")).unwrap()));
    assert_eq!((la.permissions, la.size), (0o120777, 1));
    // Absolute paths work the same.
    let abs = s.abs("l");
    assert_eq!(s.attrs(Request::Lstat { path: &abs }), la);

    let da = s.attrs(Request::Stat { path: b"d" });
    assert_eq!(da, attrs_of(&fs::metadata(s.path("d")).unwrap()));
    assert_eq!(da.permissions, 0o40755);

    s.status(Request::Stat { path: b"dangling" }, SSH_FX_NO_SUCH_FILE);
    let dl = s.attrs(Request::Lstat { path: b"dangling" });
    assert_eq!((dl.permissions, dl.size), (0o120777, 7));
    s.status(Request::Stat { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
    s.status(Request::Lstat { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
}

#[test]
fn proto_setstat_size_mode_times() {
    let mut s = Sftp::start("setstat");
    fs::write(s.path("f"), b"0123456789").unwrap();
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_size(4),
    });
    assert_eq!(fs::read(s.path("f")).unwrap(), b"0123");
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_size(100),
    });
    let content = fs::read(s.path("f")).unwrap();
    assert_eq!(content.len(), 100);
    assert!(content[4..].iter().all(|&b| b == 0));

    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_permissions(0o600),
    });
    assert_eq!(mode_of(&s.path("f")), 0o600);
    // File-type bits in the permissions are ignored; setuid and sticky are kept.
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_permissions(0o104751),
    });
    assert_eq!(mode_of(&s.path("f")), 0o4751);

    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_times(1_000_000_000, 1_200_000_000),
    });
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!((m.atime(), m.mtime()), (1_000_000_000, 1_200_000_000));
    // u32 seconds beyond 2038.
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_times(3_000_000_000, 4_000_000_000),
    });
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!((m.atime(), m.mtime()), (3_000_000_000, 4_000_000_000));

    // Everything at once, and an empty SETSTAT.
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none()
            .with_size(3)
            .with_permissions(0o640)
            .with_times(1_100_000_000, 1_300_000_000),
    });
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!(
        (m.len(), m.mode() & 0o7777, m.atime(), m.mtime()),
        (3, 0o640, 1_100_000_000, 1_300_000_000)
    );
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none(),
    });
    assert_eq!(s.attrs(Request::Stat { path: b"f" }), attrs_of(&m));

    // A directory's mode and times.
    fs::create_dir(s.path("d")).unwrap();
    s.ok(Request::Setstat {
        path: b"d",
        attrs: Attrs::none()
            .with_permissions(0o1777)
            .with_times(1_000_000_000, 1_000_000_001),
    });
    let m = fs::metadata(s.path("d")).unwrap();
    assert_eq!((m.mode(), m.mtime()), (0o41777, 1_000_000_001));

    s.status(
        Request::Setstat {
            path: b"missing",
            attrs: Attrs::none().with_permissions(0o600),
        },
        SSH_FX_NO_SUCH_FILE,
    );
}

#[test]
fn proto_setstat_follows_symlinks() {
    let mut s = Sftp::start("setstat-link");
    fs::write(s.path("f"), b"x").unwrap();
    symlink("f", s.path("l")).unwrap();
    s.ok(Request::Setstat {
        path: b"l",
        attrs: Attrs::none().with_permissions(0o600),
    });
    assert_eq!(mode_of(&s.path("f")), 0o600);
}

#[test]
fn proto_setstat_owner() {
    let mut s = Sftp::start("setstat-owner");
    fs::write(s.path("f"), b"x").unwrap();
    let m = fs::metadata(s.path("f")).unwrap();
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none().with_uidgid(m.uid(), m.gid()),
    });
    let m2 = fs::metadata(s.path("f")).unwrap();
    assert_eq!((m2.uid(), m2.gid()), (m.uid(), m.gid()));
    if nix::unistd::geteuid().is_root() {
        // Root may give a file away, also to ids with no account.
        s.ok(Request::Setstat {
            path: b"f",
            attrs: Attrs::none().with_uidgid(12345, 54321),
        });
        let m3 = fs::metadata(s.path("f")).unwrap();
        assert_eq!((m3.uid(), m3.gid()), (12345, 54321));
        let h = s.open(b"f", SSH_FXF_READ, Attrs::none());
        s.ok(Request::Fsetstat {
            handle: &h,
            attrs: Attrs::none().with_uidgid(m.uid(), m.gid()),
        });
        s.close(&h);
        let m4 = fs::metadata(s.path("f")).unwrap();
        assert_eq!((m4.uid(), m4.gid()), (m.uid(), m.gid()));
    }
}

#[test]
fn proto_fsetstat_size_mode_times() {
    let mut s = Sftp::start("fsetstat");
    fs::write(s.path("f"), b"0123456789").unwrap();
    let h = s.open(b"f", SSH_FXF_READ | SSH_FXF_WRITE, Attrs::none());
    s.ok(Request::Fsetstat {
        handle: &h,
        attrs: Attrs::none().with_size(3),
    });
    assert_eq!(fs::read(s.path("f")).unwrap(), b"012");
    s.ok(Request::Fsetstat {
        handle: &h,
        attrs: Attrs::none().with_size(50),
    });
    assert_eq!(fs::metadata(s.path("f")).unwrap().len(), 50);
    s.ok(Request::Fsetstat {
        handle: &h,
        attrs: Attrs::none().with_permissions(0o604),
    });
    assert_eq!(mode_of(&s.path("f")), 0o604);
    s.ok(Request::Fsetstat {
        handle: &h,
        attrs: Attrs::none().with_times(1_234_567_890, 1_234_567_891),
    });
    let m = fs::metadata(s.path("f")).unwrap();
    assert_eq!((m.atime(), m.mtime()), (1_234_567_890, 1_234_567_891));
    assert_eq!(s.attrs(Request::Fstat { handle: &h }), attrs_of(&m));
    s.close(&h);

    // Truncating through a handle opened read-only: ftruncate fails with EINVAL.
    let h = s.open(b"f", SSH_FXF_READ, Attrs::none());
    s.status(
        Request::Fsetstat {
            handle: &h,
            attrs: Attrs::none().with_size(0),
        },
        SSH_FX_BAD_MESSAGE,
    );
    s.close(&h);
    assert_eq!(fs::metadata(s.path("f")).unwrap().len(), 50);
}

// ---------------------------------------------------------------------------
// OPENDIR / READDIR and long names

fn sorted_names(entries: &[NameEntry]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = entries.iter().map(|e| e.name.clone()).collect();
    names.sort();
    names
}

#[test]
fn proto_readdir_entries_and_attrs() {
    let mut s = Sftp::start("readdir");
    fs::create_dir(s.path("d")).unwrap();
    fs::write(s.path("d/file"), b"1234567").unwrap();
    fs::create_dir(s.path("d/sub")).unwrap();
    symlink("file", s.path("d/link")).unwrap();
    symlink("nowhere", s.path("d/dangling")).unwrap();
    let entries = s.read_dir_all(b"d");
    assert_eq!(
        sorted_names(&entries),
        [&b"."[..], b"..", b"dangling", b"file", b"link", b"sub"]
    );
    let now = now_secs();
    for e in &entries {
        let path = s
            .dir
            .path()
            .join("d")
            .join(String::from_utf8(e.name.clone()).unwrap());
        // Entries are described as by lstat.
        let m = fs::symlink_metadata(&path).unwrap();
        assert_eq!(e.attrs.flags, 0x0F, "{:?}", e.name);
        assert_eq!(e.attrs.permissions, m.mode(), "{:?}", e.name);
        if e.name != b".." && e.name != b"." {
            assert_eq!(e.attrs, attrs_of(&m), "{:?}", e.name);
            assert_eq!(
                String::from_utf8_lossy(&e.longname),
                String::from_utf8_lossy(&expected_longname(&e.name, &m, now)),
            );
        }
    }
    // The same with an absolute path, and for "." (the scratch dir itself).
    let abs = s.abs("d");
    assert_eq!(sorted_names(&s.read_dir_all(&abs)), sorted_names(&entries));
    let top = s.read_dir_all(b".");
    assert_eq!(sorted_names(&top), [&b"."[..], b"..", b"d"]);
}

#[test]
fn proto_readdir_many_entries() {
    let mut s = Sftp::start("readdir-many");
    let mut expected = vec![b".".to_vec(), b"..".to_vec()];
    // Enough entries to need several replies from either server (OpenSSH sends 100 a
    // reply, ours fills replies up to 32 KiB).
    for i in 0..1000 {
        let name = format!("entry-{i:04}-with-a-name-long-enough-to-fill-replies");
        fs::write(s.path(&name), b"").unwrap();
        expected.push(name.into_bytes());
    }
    expected.sort();
    let h = s.handle(Request::Opendir { path: b"." });
    let mut all = Vec::new();
    let mut replies = 0;
    loop {
        match s.call(Request::Readdir { handle: &h }) {
            Reply::Name { entries, .. } => {
                replies += 1;
                all.extend(entries);
            }
            r => {
                assert_status(&r, SSH_FX_EOF);
                break;
            }
        }
        assert!(replies < 1000);
    }
    assert!(replies >= 2, "1002 entries in {replies} NAME replies");
    assert_eq!(sorted_names(&all), expected);
    s.close(&h);
}

#[test]
fn proto_readdir_longname_format() {
    let mut s = Sftp::start("longname");
    fs::create_dir(s.path("d")).unwrap();
    let now = now_secs();
    let file = |s: &Sftp, name: &str, size: usize, mode: u32, mtime: i64| {
        let p = s.path("d").join(name);
        fs::write(&p, vec![b'x'; size]).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&p, mtime);
    };
    // 2020-01-02 12:00:00 UTC: January 2nd in nearly every time zone.
    let old = 1_577_966_400;
    file(&s, "old", 1234, 0o644, old);
    file(&s, "recent", 1234, 0o644, now - 10 * 86400);
    file(&s, "future", 99, 0o600, now + 30 * 86400);
    file(&s, "setuid", 0, 0o4755, now - 86400);
    file(&s, "setgid-nox", 5, 0o2644, now - 86400);
    file(&s, "big", 0, 0o644, old);
    fs::File::options()
        .write(true)
        .open(s.path("d/big"))
        .unwrap()
        .set_len(123_456_789_012)
        .unwrap();
    set_mtime(&s.path("d/big"), old);
    fs::hard_link(s.path("d/old"), s.path("d/old-link")).unwrap();
    fs::create_dir(s.path("d/sticky")).unwrap();
    fs::set_permissions(s.path("d/sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(s.path("d/sticky-nox")).unwrap();
    fs::set_permissions(s.path("d/sticky-nox"), fs::Permissions::from_mode(0o1770)).unwrap();
    symlink("old", s.path("d/link")).unwrap();
    nix::unistd::mkfifo(
        &s.path("d/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        file(&s, "orphan", 7, 0o644, old);
        nix::unistd::chown(&s.path("d/orphan"), Some(12345.into()), Some(54321.into())).unwrap();
    }

    let entries = s.read_dir_all(b"d");
    let now = now_secs();
    let longname = |name: &str| -> String {
        let e = entries
            .iter()
            .find(|e| e.name == name.as_bytes())
            .unwrap_or_else(|| panic!("no entry {name}"));
        String::from_utf8(e.longname.clone()).unwrap()
    };
    for e in &entries {
        if e.name == b".." {
            continue; // the parent is shared with other tests and may change meanwhile
        }
        let m = fs::symlink_metadata(s.path("d").join(String::from_utf8_lossy(&e.name).as_ref()))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&e.longname),
            String::from_utf8_lossy(&expected_longname(&e.name, &m, now)),
            "long name of {:?}",
            String::from_utf8_lossy(&e.name)
        );
    }
    if root && user_name(0) == "root" && group_name(0) == "root" {
        // The layout spelled out for files whose every field is known.
        assert_eq!(
            longname("old"),
            "-rw-r--r--    2 root     root         1234 Jan  2  2020 old"
        );
        assert_eq!(
            longname("big"),
            "-rw-r--r--    1 root     root     123456789012 Jan  2  2020 big"
        );
        assert_eq!(
            longname("orphan"),
            "-rw-r--r--    1 12345    54321           7 Jan  2  2020 orphan"
        );
        let recent = longname("recent");
        assert!(
            recent.starts_with("-rw-r--r--    1 root     root         1234 ")
                && recent.ends_with(" recent"),
            "{recent}"
        );
        assert_eq!(
            recent.len(),
            "-rw-r--r--    1 root     root         1234 Jan  2 03:04 recent".len()
        );
    }
    assert!(longname("setuid").starts_with("-rwsr-xr-x "));
    assert!(longname("setgid-nox").starts_with("-rw-r-Sr-- "));
    assert!(longname("sticky").starts_with("drwxrwxrwt "));
    assert!(longname("sticky-nox").starts_with("drwxrwx--T "));
    assert!(longname("link").starts_with("lrwxrwxrwx "));
    assert!(longname("fifo").starts_with("prw-r--r-- "));
}

#[test]
fn proto_readdir_odd_names() {
    let mut s = Sftp::start("odd-names");
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let names: [&[u8]; 4] = [b"caf\xe9", b"with space", b"new\nline", b"\xff\xfe"];
    for n in names {
        fs::write(s.dir.path().join(OsStr::from_bytes(n)), n).unwrap();
    }
    let entries = s.read_dir_all(b".");
    let now = now_secs();
    for n in names {
        let e = entries
            .iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("no entry {n:?}"));
        let m = fs::symlink_metadata(s.dir.path().join(OsStr::from_bytes(n))).unwrap();
        assert_eq!(e.longname, expected_longname(n, &m, now));
        // The same bytes name the file in other requests.
        assert_eq!(s.attrs(Request::Stat { path: n }).size, n.len() as u64);
        let h = s.open(n, SSH_FXF_READ, Attrs::none());
        assert_eq!(s.read(&h, 0, 100), n);
        s.close(&h);
        let mut abs = s.abs("");
        abs.push(b'/');
        abs.extend_from_slice(n);
        s.single_name(Request::Realpath { path: n }, &abs);
    }
}

#[test]
fn proto_opendir_errors() {
    let mut s = Sftp::start("opendir");
    fs::write(s.path("f"), b"x").unwrap();
    s.status(Request::Opendir { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
    // ENOTDIR
    s.status(Request::Opendir { path: b"f" }, SSH_FX_NO_SUCH_FILE);
    // A directory reached through a symlink is fine.
    fs::create_dir(s.path("d")).unwrap();
    symlink("d", s.path("l")).unwrap();
    assert_eq!(sorted_names(&s.read_dir_all(b"l")), [&b"."[..], b".."]);
}

// ---------------------------------------------------------------------------
// REMOVE / MKDIR / RMDIR

#[test]
fn proto_remove() {
    let mut s = Sftp::start("remove");
    fs::write(s.path("f"), b"x").unwrap();
    s.ok(Request::Remove { path: b"f" });
    assert!(!s.path("f").exists());
    s.status(Request::Remove { path: b"f" }, SSH_FX_NO_SUCH_FILE);
    // A symlink is removed, not its target.
    fs::write(s.path("target"), b"x").unwrap();
    symlink("target", s.path("l")).unwrap();
    s.ok(Request::Remove { path: b"l" });
    assert!(fs::symlink_metadata(s.path("l")).is_err());
    assert!(s.path("target").exists());
    // Directories are not files: unlink fails with EISDIR.
    fs::create_dir(s.path("d")).unwrap();
    s.os_failure(Request::Remove { path: b"d" }, "Is a directory");
    assert!(s.path("d").is_dir());
}

#[test]
fn proto_mkdir() {
    let mut s = Sftp::start("mkdir");
    s.ok(Request::Mkdir {
        path: b"plain",
        attrs: Attrs::none(),
    });
    assert!(s.path("plain").is_dir());
    assert_eq!(mode_of(&s.path("plain")), 0o755);
    s.ok(Request::Mkdir {
        path: b"private",
        attrs: Attrs::none().with_permissions(0o700),
    });
    assert_eq!(mode_of(&s.path("private")), 0o700);
    s.ok(Request::Mkdir {
        path: b"masked",
        attrs: Attrs::none().with_permissions(0o777),
    });
    assert_eq!(mode_of(&s.path("masked")), 0o755);
    let abs = s.abs("absolute");
    s.ok(Request::Mkdir {
        path: &abs,
        attrs: Attrs::none(),
    });
    assert!(s.path("absolute").is_dir());

    s.os_failure(
        Request::Mkdir {
            path: b"plain",
            attrs: Attrs::none(),
        },
        "File exists",
    );
    s.status(
        Request::Mkdir {
            path: b"missing/sub",
            attrs: Attrs::none(),
        },
        SSH_FX_NO_SUCH_FILE,
    );
}

#[test]
fn proto_rmdir() {
    let mut s = Sftp::start("rmdir");
    fs::create_dir(s.path("empty")).unwrap();
    fs::create_dir(s.path("full")).unwrap();
    fs::write(s.path("full/f"), b"x").unwrap();
    fs::write(s.path("file"), b"x").unwrap();
    s.ok(Request::Rmdir { path: b"empty" });
    assert!(!s.path("empty").exists());
    s.os_failure(Request::Rmdir { path: b"full" }, "Directory not empty");
    assert!(s.path("full/f").exists());
    s.status(Request::Rmdir { path: b"empty" }, SSH_FX_NO_SUCH_FILE);
    // ENOTDIR
    s.status(Request::Rmdir { path: b"file" }, SSH_FX_NO_SUCH_FILE);
    assert!(s.path("file").exists());
}

// ---------------------------------------------------------------------------
// REALPATH

#[test]
fn proto_realpath() {
    let mut s = Sftp::start("realpath");
    fs::create_dir(s.path("sub")).unwrap();
    fs::write(s.path("file.txt"), b"x").unwrap();
    symlink("sub", s.path("lnk")).unwrap();
    symlink(s.path("sub"), s.path("abslnk")).unwrap();
    symlink("nowhere", s.path("dangling")).unwrap();
    symlink("loop", s.path("loop")).unwrap();
    let base = s.abs("");
    let base_str = String::from_utf8(base.clone()).unwrap();

    for (path, expected) in [
        (".".to_string(), base_str.clone()),
        ("".to_string(), base_str.clone()),
        ("/".to_string(), "/".to_string()),
        ("//".to_string(), "/".to_string()),
        ("/.".to_string(), "/".to_string()),
        ("/..".to_string(), "/".to_string()),
        ("sub".to_string(), format!("{base_str}/sub")),
        ("sub/".to_string(), format!("{base_str}/sub")),
        ("./sub/.".to_string(), format!("{base_str}/sub")),
        ("sub/..".to_string(), base_str.clone()),
        (format!("/{base_str}/./sub/../c"), format!("{base_str}/c")),
        (format!("{base_str}//sub///"), format!("{base_str}/sub")),
        // A missing last component is accepted.
        ("missing".to_string(), format!("{base_str}/missing")),
        ("sub/missing".to_string(), format!("{base_str}/sub/missing")),
        // Symlinks are resolved, before any ".." that follows them.
        ("lnk".to_string(), format!("{base_str}/sub")),
        ("abslnk".to_string(), format!("{base_str}/sub")),
        ("lnk/..".to_string(), base_str.clone()),
        ("lnk/file".to_string(), format!("{base_str}/sub/file")),
        ("dangling".to_string(), format!("{base_str}/nowhere")),
        // A trailing slash after a regular file is accepted, as is ".." after one.
        ("file.txt".to_string(), format!("{base_str}/file.txt")),
        ("file.txt/".to_string(), format!("{base_str}/file.txt")),
        ("file.txt/..".to_string(), base_str.clone()),
    ] {
        s.single_name(
            Request::Realpath {
                path: path.as_bytes(),
            },
            expected.as_bytes(),
        );
    }

    for path in [
        "missing/x",
        "missing/..",
        "file.txt/x",
        "loop",
        "loop/x",
        "dangling/x",
    ] {
        let r = s.call(Request::Realpath {
            path: path.as_bytes(),
        });
        assert_status(&r, SSH_FX_NO_SUCH_FILE);
    }
}

/// REALPATH answers as OpenSSH's `sftp_realpath`, whose buffers are PATH_MAX (4096)
/// bytes: a path (without its leading slash) of 4096 bytes or more, a result that
/// would reach 4096 bytes (a slash is added before each component, even `.` or `..`),
/// or a symlink target that with the rest of the path would, is BAD_MESSAGE
/// (ENAMETOOLONG), whether or not its components exist; the 34th symlink is
/// NO_SUCH_FILE (ELOOP). Paths as long as a packet allows answer at once.
#[test]
fn proto_realpath_path_max() {
    let mut s = Sftp::start("realpath-path-max");
    fs::create_dir(s.path("sub")).unwrap();
    fs::write(s.path("f"), b"x").unwrap();
    let base = s.abs("");
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    // A relative path whose absolute form is exactly `len` bytes: names of up to 200
    // bytes of `c`, created (absolute paths below PATH_MAX need no descriptors).
    let dir_of = |c: u8, len: usize| -> Vec<u8> {
        let mut left = len - base.len() - 1;
        let mut rel = Vec::new();
        while left > 201 {
            rel.extend(std::iter::repeat_n(c, 200));
            rel.push(b'/');
            left -= 201;
        }
        rel.extend(std::iter::repeat_n(c, left));
        fs::create_dir_all(s.path(&text(&rel))).unwrap();
        rel
    };
    let (d4093, d4094, d4095) = (dir_of(b'p', 4093), dir_of(b'q', 4094), dir_of(b'r', 4095));
    for i in 0..34 {
        let next = if i == 33 {
            "f".to_string()
        } else {
            format!("s{}", i + 1)
        };
        symlink(next, s.path(&format!("s{i}"))).unwrap();
    }
    let spliced = format!("{}sub", "./".repeat(1000));
    symlink(&spliced, s.path("lt")).unwrap();

    let join = |a: &[u8], b: &[u8]| [a, b].concat();
    let abs_of = |len: usize| {
        let mut p = join(&base, b"/");
        while p.len() + 2 < len {
            p.extend_from_slice(b"./");
        }
        p.resize(len - 1, b'/');
        p.push(b'f');
        p
    };
    let at = |rel: &[u8]| join(&join(&base, b"/"), rel);
    let fits_splice = format!("lt/{}x", "./".repeat(1045));
    type Case = (Vec<u8>, Result<Vec<u8>, u32>);
    let cases: Vec<Case> = vec![
        // The path's own length.
        ([b"./".repeat(2047), b"f".to_vec()].concat(), Ok(at(b"f"))),
        (
            [b"./".repeat(2047), b"ff".to_vec()].concat(),
            Err(SSH_FX_BAD_MESSAGE),
        ),
        (abs_of(4096), Ok(at(b"f"))),
        (abs_of(4097), Err(SSH_FX_BAD_MESSAGE)),
        // Missing components do not matter once the path is too long.
        (
            [b"a/".repeat(2040), b"z".to_vec()].concat(),
            Err(SSH_FX_NO_SUCH_FILE),
        ),
        (
            [b"a/".repeat(2100), b"z".to_vec()].concat(),
            Err(SSH_FX_BAD_MESSAGE),
        ),
        // The result's length, a missing last component included.
        (join(&d4093, b"/x"), Ok(at(&join(&d4093, b"/x")))),
        (join(&d4094, b"/x"), Err(SSH_FX_BAD_MESSAGE)),
        (d4095.clone(), Ok(at(&d4095))),
        (join(&d4095, b"/."), Err(SSH_FX_BAD_MESSAGE)),
        (join(&d4095, b"/.."), Err(SSH_FX_BAD_MESSAGE)),
        (
            join(&d4094, b"/.."),
            Ok(at(&d4094[..d4094.iter().rposition(|&b| b == b'/').unwrap()])),
        ),
        // A symlink's target with what follows it.
        (fits_splice.clone().into_bytes(), Ok(at(b"sub/x"))),
        (
            format!("{fits_splice}x").into_bytes(),
            Err(SSH_FX_BAD_MESSAGE),
        ),
        // 33 symlinks are followed, not 34.
        (b"s1".to_vec(), Ok(at(b"f"))),
        (b"s0".to_vec(), Err(SSH_FX_NO_SUCH_FILE)),
        // As long as a packet allows.
        (b"./".repeat(125_000), Err(SSH_FX_BAD_MESSAGE)),
        (b"sub/../".repeat(35_000), Err(SSH_FX_BAD_MESSAGE)),
        (b"/a/..".repeat(50_000), Err(SSH_FX_BAD_MESSAGE)),
    ];
    for (path, want) in cases {
        let start = Instant::now();
        let got = match s.call(Request::Realpath { path: &path }) {
            Reply::Name { entries, .. } if entries.len() == 1 => Ok(entries[0].name.clone()),
            Reply::Status { code, .. } => Err(code),
            r => panic!("expected a NAME or a STATUS, got {r:?}"),
        };
        let shown = String::from_utf8_lossy(&path[..path.len().min(60)]).into_owned();
        assert_eq!(got, want, "realpath of {} bytes: {shown}...", path.len());
        assert!(start.elapsed() < Duration::from_secs(2), "{shown}");
    }
}

// ---------------------------------------------------------------------------
// RENAME

#[test]
fn proto_rename() {
    let mut s = Sftp::start("rename");
    fs::write(s.path("a"), b"A").unwrap();
    s.ok(Request::Rename {
        old: b"a",
        new: b"b",
    });
    assert!(!s.path("a").exists());
    assert_eq!(fs::read(s.path("b")).unwrap(), b"A");

    // No overwriting: a file onto a file, a file onto a directory.
    fs::write(s.path("c"), b"C").unwrap();
    fs::create_dir(s.path("d")).unwrap();
    fs::create_dir(s.path("e")).unwrap();
    s.os_failure(
        Request::Rename {
            old: b"b",
            new: b"c",
        },
        "File exists",
    );
    s.os_failure(
        Request::Rename {
            old: b"b",
            new: b"d",
        },
        "File exists",
    );
    assert_eq!(fs::read(s.path("b")).unwrap(), b"A");
    assert_eq!(fs::read(s.path("c")).unwrap(), b"C");

    // A directory onto a directory or a file. OpenSSH finds the target by stat() and
    // answers a plain "Failure"; a server that asks the kernel not to replace gets EEXIST.
    for new in [&b"e"[..], b"c"] {
        let r = s.call(Request::Rename { old: b"d", new });
        if testing_openssh() {
            assert_status(&r, SSH_FX_FAILURE);
        } else if !matches!(&r, Reply::Status { msg, .. } if msg == b"Failure") {
            assert_os_failure(&r, "File exists");
        }
    }
    assert!(s.path("d").is_dir() && s.path("e").is_dir());

    // Directories and symlinks move.
    fs::write(s.path("d/inner"), b"i").unwrap();
    s.ok(Request::Rename {
        old: b"d",
        new: b"d2",
    });
    assert_eq!(fs::read(s.path("d2/inner")).unwrap(), b"i");
    symlink("c", s.path("l")).unwrap();
    s.ok(Request::Rename {
        old: b"l",
        new: b"l2",
    });
    assert_eq!(fs::read_link(s.path("l2")).unwrap(), Path::new("c"));

    s.status(
        Request::Rename {
            old: b"missing",
            new: b"x",
        },
        SSH_FX_NO_SUCH_FILE,
    );
    s.status(
        Request::Rename {
            old: b"c",
            new: b"no-dir/x",
        },
        SSH_FX_NO_SUCH_FILE,
    );
    assert!(s.path("c").exists());
}

// ---------------------------------------------------------------------------
// READLINK / SYMLINK

#[test]
fn proto_symlink_and_readlink() {
    let mut s = Sftp::start("symlink");
    // OpenSSH's order: the target first, then the link to create.
    s.ok(Request::Symlink {
        target: b"some/target",
        link: b"l",
    });
    assert_eq!(
        fs::read_link(s.path("l")).unwrap(),
        Path::new("some/target")
    );
    s.single_name(Request::Readlink { path: b"l" }, b"some/target");
    let abs_target = s.abs("f");
    let abs_link = s.abs("l2");
    s.ok(Request::Symlink {
        target: &abs_target,
        link: &abs_link,
    });
    s.single_name(Request::Readlink { path: b"l2" }, &abs_target);
    // Odd bytes in a target survive.
    s.ok(Request::Symlink {
        target: b"caf\xe9 \n",
        link: b"l3",
    });
    s.single_name(Request::Readlink { path: b"l3" }, b"caf\xe9 \n");

    // Onto an existing path.
    fs::write(s.path("f"), b"x").unwrap();
    s.os_failure(
        Request::Symlink {
            target: b"x",
            link: b"f",
        },
        "File exists",
    );
    s.os_failure(
        Request::Symlink {
            target: b"x",
            link: b"l",
        },
        "File exists",
    );
    assert_eq!(fs::read(s.path("f")).unwrap(), b"x");
    s.status(
        Request::Symlink {
            target: b"x",
            link: b"missing/l",
        },
        SSH_FX_NO_SUCH_FILE,
    );

    s.status(Request::Readlink { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
    // readlink() of a non-link is EINVAL, which OpenSSH calls a bad message.
    s.status(Request::Readlink { path: b"f" }, SSH_FX_BAD_MESSAGE);
}

// ---------------------------------------------------------------------------
// EXTENDED and malformed input

#[test]
fn proto_extended_unknown_is_unsupported() {
    let mut s = Sftp::start("ext");
    s.status(
        Request::Extended {
            name: b"no-such-extension@example.com",
            data: b"",
        },
        SSH_FX_OP_UNSUPPORTED,
    );
    s.status(
        Request::Extended {
            name: b"",
            data: b"\0\0\0\x01x",
        },
        SSH_FX_OP_UNSUPPORTED,
    );
    assert_eq!(s.attrs(Request::Stat { path: b"." }).flags, 0x0F);
}

#[test]
fn proto_unknown_packet_type() {
    let mut s = Sftp::start("unknown-type");
    s.c.send_packet(99, &Buf::new().u32(77).str(b"whatever").into_vec());
    if testing_openssh() {
        // OpenSSH logs it and sends nothing.
        s.c.expect_silence(Duration::from_secs(1));
    } else {
        let r = s.c.recv().expect("reply to an unknown type");
        assert_eq!(r.id(), Some(77));
        assert_status(&r, SSH_FX_OP_UNSUPPORTED);
    }
    // Either way the session goes on.
    assert_eq!(s.attrs(Request::Stat { path: b"." }).flags, 0x0F);
    assert_eq!(s.finish().code(), Some(0));
}

#[test]
fn proto_string_past_end_of_frame() {
    let mut s = Sftp::start("bad-string");
    // STAT whose path length runs past the end of the packet.
    let body = Buf::new().u32(31).u32(100).bytes(b"abc").into_vec();
    s.expect_bad_message(SSH_FXP_STAT, &body, 31);
    if testing_openssh() {
        assert_eq!(s.exit_status().code(), Some(255));
    } else {
        assert_eq!(s.finish().code(), Some(0));
    }
}

#[test]
fn proto_truncated_open() {
    let mut s = Sftp::start("bad-open");
    // OPEN with a path but no pflags or attributes.
    let body = Buf::new().u32(32).str(b"new-file").into_vec();
    s.expect_bad_message(SSH_FXP_OPEN, &body, 32);
    assert!(!s.path("new-file").exists());
    if testing_openssh() {
        assert_eq!(s.exit_status().code(), Some(255));
    } else {
        // An attribute block cut short in the middle.
        let body = Buf::new()
            .u32(33)
            .str(b"new-file")
            .u32(SSH_FXF_WRITE | SSH_FXF_CREAT)
            .u32(SSH_FILEXFER_ATTR_SIZE)
            .u32(0)
            .into_vec();
        s.expect_bad_message(SSH_FXP_OPEN, &body, 33);
        assert!(!s.path("new-file").exists());
        assert_eq!(s.finish().code(), Some(0));
    }
}

#[test]
fn proto_largest_packet_is_accepted() {
    let mut s = Sftp::start("max-packet");
    let h = s.open(b"f", SSH_FXF_WRITE | SSH_FXF_CREAT, Attrs::none());
    // type + id + handle string + offset + data length
    let overhead = 1 + 4 + (4 + h.len()) + 8 + 4;
    let data = vec![b'q'; MAX_PACKET as usize - overhead];
    let packet = Request::Write {
        handle: &h,
        offset: 0,
        data: &data,
    }
    .encode(55);
    assert_eq!(&packet[..4], &MAX_PACKET.to_be_bytes());
    s.c.send_raw(&packet);
    let r = s.c.recv().expect("reply to the largest packet");
    assert_eq!(r.id(), Some(55));
    assert_status(&r, SSH_FX_OK);
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), data);
}

/// Announces a packet of `len` bytes, sends its type byte and a little more, and
/// expects the server to hang up at once with exit status 11.
fn assert_oversized_packet_ends_session(tag: &str, len: u32) {
    let mut s = Sftp::start(tag);
    let mut packet = len.to_be_bytes().to_vec();
    packet.push(SSH_FXP_WRITE);
    packet.extend_from_slice(&[0; 16]);
    let started = Instant::now();
    let _ = s.c.try_send_raw(&packet);
    s.c.expect_eof();
    let status = s.exit_status();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(11));
}

#[test]
fn proto_packet_one_byte_too_long_ends_session() {
    assert_oversized_packet_ends_session("over-max", MAX_PACKET + 1);
}

#[test]
fn proto_packet_of_4gib_ends_session() {
    assert_oversized_packet_ends_session("huge", u32::MAX);
}

#[test]
fn proto_eof_with_open_handles_exits_0() {
    let mut s = Sftp::start("eof");
    fs::write(s.path("f"), b"x").unwrap();
    let _h = s.open(b"f", SSH_FXF_READ, Attrs::none());
    let _d = s.handle(Request::Opendir { path: b"." });
    let _w = s.open(b"g", SSH_FXF_WRITE | SSH_FXF_CREAT, Attrs::none());
    s.c.sock.shutdown(std::net::Shutdown::Write).unwrap();
    s.c.expect_eof();
    assert_eq!(s.exit_status().code(), Some(0));
}

// ---------------------------------------------------------------------------
// errno -> status code

#[test]
fn proto_errno_no_such_file() {
    let mut s = Sftp::start("errno-nsf");
    fs::write(s.path("f"), b"x").unwrap();
    symlink("loop", s.path("loop")).unwrap();
    // ENOENT
    s.status(Request::Stat { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
    // ENOTDIR
    s.status(Request::Stat { path: b"f/x" }, SSH_FX_NO_SUCH_FILE);
    // ELOOP
    s.status(Request::Stat { path: b"loop" }, SSH_FX_NO_SUCH_FILE);
    // EBADF: writing through a read-only handle, reading through a write-only one.
    let h = s.open(b"f", SSH_FXF_READ, Attrs::none());
    s.status(
        Request::Write {
            handle: &h,
            offset: 0,
            data: b"y",
        },
        SSH_FX_NO_SUCH_FILE,
    );
    s.close(&h);
    let h = s.open(b"f", SSH_FXF_WRITE, Attrs::none());
    s.status(
        Request::Read {
            handle: &h,
            offset: 0,
            len: 1,
        },
        SSH_FX_NO_SUCH_FILE,
    );
    s.close(&h);
    assert_eq!(fs::read(s.path("f")).unwrap(), b"x");
}

#[test]
fn proto_errno_permission_denied() {
    let mut s = Sftp::start("errno-perm");
    // EPERM, even for root: /proc/<pid> entries refuse chmod.
    s.status(
        Request::Setstat {
            path: b"/proc/self",
            attrs: Attrs::none().with_permissions(0o700),
        },
        SSH_FX_PERMISSION_DENIED,
    );
    // EPERM: a hard link to a directory.
    fs::create_dir(s.path("d")).unwrap();
    s.status(
        Request::Extended {
            name: b"hardlink@openssh.com",
            data: &Buf::new().str(b"d").str(b"d-link").into_vec(),
        },
        SSH_FX_PERMISSION_DENIED,
    );
    // EACCES, even for root: a sysfs attribute that has no write method.
    let ro = b"/sys/kernel/uevent_seqnum";
    assert!(Path::new("/sys/kernel/uevent_seqnum").exists(), "sysfs");
    s.status(
        Request::Open {
            path: ro,
            pflags: SSH_FXF_WRITE,
            attrs: Attrs::none(),
        },
        SSH_FX_PERMISSION_DENIED,
    );
}

#[test]
fn proto_errno_bad_message() {
    let mut s = Sftp::start("errno-badmsg");
    fs::write(s.path("f"), b"x").unwrap();
    // ENAMETOOLONG
    let long = vec![b'n'; 300];
    s.status(Request::Stat { path: &long }, SSH_FX_BAD_MESSAGE);
    s.status(
        Request::Open {
            path: &long,
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
            attrs: Attrs::none(),
        },
        SSH_FX_BAD_MESSAGE,
    );
    // EINVAL: readlink of a regular file; renaming a directory into itself.
    s.status(Request::Readlink { path: b"f" }, SSH_FX_BAD_MESSAGE);
    fs::create_dir(s.path("d")).unwrap();
    s.status(
        Request::Rename {
            old: b"d",
            new: b"d/inside",
        },
        SSH_FX_BAD_MESSAGE,
    );
}

#[test]
fn proto_errno_failure_carries_os_text() {
    let mut s = Sftp::start("errno-failure");
    fs::create_dir(s.path("d")).unwrap();
    fs::write(s.path("d/f"), b"x").unwrap();
    // EEXIST, ENOTEMPTY, EISDIR
    s.os_failure(
        Request::Mkdir {
            path: b"d",
            attrs: Attrs::none(),
        },
        "File exists",
    );
    s.os_failure(Request::Rmdir { path: b"d" }, "Directory not empty");
    s.os_failure(Request::Remove { path: b"d" }, "Is a directory");
    // ENOSPC
    let h = s.open(b"/dev/full", SSH_FXF_WRITE, Attrs::none());
    s.os_failure(
        Request::Write {
            handle: &h,
            offset: 0,
            data: b"no room",
        },
        "No space left on device",
    );
    s.close(&h);
}
