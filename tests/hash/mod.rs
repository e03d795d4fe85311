//! check-file and copy-file (draft-ietf-secsh-filexfer-extensions-00): digests checked
//! against coreutils' `md5sum`/`sha*sum` and gzip's CRC-32, ranges, block runs, the
//! refusals; paramiko's `SFTPFile.check()` through a real paramiko client; copy-file
//! with and without overwrite, onto itself, across directories, under `-R`, `-P`/`-p`
//! and `--root`.
//!
//! OpenSSH's server has neither extension: against it (`SFTP_SERVER_BIN`) each test
//! checks that neither is advertised and that every name is answered OP_UNSUPPORTED.

use crate::support::raw::*;
use crate::support::session::{self, deref_to_session};
use crate::support::status::*;
use crate::support::{Scratch, Server, server_bin, testing_openssh, wait_bounded};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const ALGORITHMS: [&str; 7] = [
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "crc32",
];
const CHECK_NAMES: [&str; 3] = ["check-file-name", "check-file-handle", "check-file"];

/// A deterministic test pattern of `len` bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

/// The digest of `data` by a program that is not ours: coreutils' `<alg>sum`, or for
/// crc32 the CRC-32 in the trailer gzip writes (little-endian there, big-endian here).
fn reference(alg: &str, data: &[u8]) -> Vec<u8> {
    let (prog, args): (String, &[&str]) = match alg {
        "crc32" => ("gzip".into(), &["-c", "-n", "-1"]),
        _ => (format!("{alg}sum"), &[]),
    };
    let mut child = Command::new(&prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{prog} failed");
    if alg == "crc32" {
        let t = &out.stdout[out.stdout.len() - 8..];
        return vec![t[3], t[2], t[1], t[0]];
    }
    let hex = std::str::from_utf8(&out.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The reference digests of `data` cut into `block`-byte blocks (0: one block).
fn reference_blocks(alg: &str, data: &[u8], block: usize) -> Vec<u8> {
    if block == 0 || data.is_empty() {
        return reference(alg, data);
    }
    data.chunks(block).flat_map(|c| reference(alg, c)).collect()
}

/// check-file's request data after its name.
fn check_req(target: &[u8], algs: &str, start: u64, len: u64, block: u32) -> Vec<u8> {
    Buf::new()
        .str(target)
        .str(algs.as_bytes())
        .u64(start)
        .u64(len)
        .u32(block)
        .into_vec()
}

fn copy_req(from: &str, to: &str, overwrite: bool) -> Vec<u8> {
    Buf::new()
        .str(from.as_bytes())
        .str(to.as_bytes())
        .u8(overwrite as u8)
        .into_vec()
}

struct Session {
    s: session::Session,
    dir: Scratch,
}

deref_to_session!(Session, s);

impl Session {
    fn start(tag: &str, args: &[&str]) -> Session {
        let dir = Scratch::new(tag);
        let server = Server::spawn_with(&server_bin(), dir.path(), args, Stdio::null());
        Session {
            s: session::Session::init(server),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Against OpenSSH: checks that neither extension is there, and says the test
    /// ends here.
    fn openssh_lacks_them(&mut self) -> bool {
        if !testing_openssh() {
            assert!(self.advertises("check-file"), "check-file advertised");
            assert!(self.advertises("copy-file"), "copy-file advertised");
            return false;
        }
        assert!(!self.advertises("check-file") && !self.advertises("copy-file"));
        for name in CHECK_NAMES {
            let r = self.ext(name, &check_req(b"f", "md5", 0, 0, 0));
            assert_status(&r, SSH_FX_OP_UNSUPPORTED);
        }
        let r = self.ext("copy-file", &copy_req("f", "g", false));
        assert_status(&r, SSH_FX_OP_UNSUPPORTED);
        true
    }

    #[track_caller]
    fn open(&mut self, path: &str, pflags: u32) -> Vec<u8> {
        self.handle(Request::Open {
            path: path.as_bytes(),
            pflags,
            attrs: Attrs::none(),
        })
    }

    /// check-file-name, or check-file-handle on a handle opened for reading: the
    /// algorithm used and the digests.
    #[track_caller]
    fn check(
        &mut self,
        by_handle: bool,
        name: &str,
        algs: &str,
        range: (u64, u64, u32),
    ) -> (String, Vec<u8>) {
        let (start, len, block) = range;
        let reply = if by_handle {
            let h = self.open(name, SSH_FXF_READ);
            let r = self.ext("check-file-handle", &check_req(&h, algs, start, len, block));
            self.close(&h);
            r
        } else {
            self.ext(
                "check-file-name",
                &check_req(name.as_bytes(), algs, start, len, block),
            )
        };
        match reply {
            Reply::ExtendedReply { body, .. } => {
                let mut r = Reader::new(&body);
                let alg = String::from_utf8(r.string().unwrap()).unwrap();
                (alg, r.rest().to_vec())
            }
            other => panic!("check-file {name} {algs} {range:?}: {other:?}"),
        }
    }

    #[track_caller]
    fn check_status(&mut self, ext: &str, data: &[u8], code: u32, msg: &str) {
        let r = self.ext(ext, data);
        assert_status_msg(&r, code, msg);
    }
}

// ---------------------------------------------------------------------------
// check-file

#[test]
fn hash_every_algorithm_matches_the_reference_programs() {
    let mut s = Session::start("hash-algs", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    // Past one read buffer (256 KiB) and not a multiple of any block size.
    let data = pattern(700_001);
    fs::write(s.path("f"), &data).unwrap();
    for alg in ALGORITHMS {
        let want = reference(alg, &data);
        for by_handle in [false, true] {
            let (used, got) = s.check(by_handle, "f", alg, (0, 0, 0));
            assert_eq!(used, alg);
            assert_eq!(got, want, "{alg}, by handle: {by_handle}");
        }
    }
    // The first algorithm of the client's list that the server has.
    let (used, got) = s.check(false, "f", "sha3-256,blake2b,sha384,md5", (0, 0, 0));
    assert_eq!((used.as_str(), got), ("sha384", reference("sha384", &data)));
}

#[test]
fn hash_ranges_and_block_runs() {
    let mut s = Session::start("hash-ranges", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    let data = pattern(5000);
    fs::write(s.path("f"), &data).unwrap();
    // (start, length, block size), the bytes they cover, the algorithm.
    type Case<'a> = ((u64, u64, u32), &'a [u8], &'a str);
    let cases: [Case; 9] = [
        ((100, 1000, 0), &data[100..1100], "md5"),
        // A length past the end stops at the end.
        ((4990, 100, 0), &data[4990..], "sha1"),
        ((0, 5000, 0), &data[..], "crc32"),
        // Past the end: an empty range, the digest of nothing.
        ((6000, 0, 0), b"", "sha256"),
        ((5000, 10, 0), b"", "crc32"),
        // Blocks: the last one short, or all whole.
        ((0, 0, 1024), &data[..], "md5"),
        ((10, 2000, 256), &data[10..2010], "crc32"),
        ((0, 1024, 256), &data[..1024], "sha512"),
        ((4900, 0, 256), &data[4900..], "sha224"),
    ];
    for (range, bytes, alg) in cases {
        let block = range.2 as usize;
        let want = reference_blocks(alg, bytes, block);
        for by_handle in [false, true] {
            let (used, got) = s.check(by_handle, "f", alg, range);
            assert_eq!(used, alg);
            assert_eq!(got, want, "{alg} {range:?}, by handle: {by_handle}");
        }
    }
}

#[test]
fn hash_of_an_empty_file_is_the_digest_of_nothing() {
    let mut s = Session::start("hash-empty", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    fs::write(s.path("empty"), b"").unwrap();
    for alg in ALGORITHMS {
        let want = reference(alg, b"");
        for block in [0, 256] {
            for by_handle in [false, true] {
                let (_, got) = s.check(by_handle, "empty", alg, (0, 0, block));
                assert_eq!(got, want, "{alg} block {block}, by handle: {by_handle}");
            }
        }
    }
}

#[test]
fn hash_follows_symlinks_and_refuses_what_it_cannot_read() {
    let mut s = Session::start("hash-refusals", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    let data = pattern(3000);
    fs::write(s.path("f"), &data).unwrap();
    symlink("f", s.path("link")).unwrap();
    fs::create_dir(s.path("dir")).unwrap();
    let want = reference("sha256", &data);
    // By name, and by a handle opened through it, a symlink is its target.
    assert_eq!(s.check(false, "link", "sha256", (0, 0, 0)).1, want);
    assert_eq!(s.check(true, "link", "sha256", (0, 0, 0)).1, want);

    let name = "check-file-name";
    s.check_status(
        name,
        &check_req(b"dir", "md5", 0, 0, 0),
        SSH_FX_FAILURE,
        "Is a directory",
    );
    let r = s.ext(name, &check_req(b"missing", "md5", 0, 0, 0));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
    for block in [1, 128, 255] {
        s.check_status(
            name,
            &check_req(b"f", "md5", 0, 0, block),
            SSH_FX_FAILURE,
            "Block size must be 0 or at least 256",
        );
    }
    s.check_status(
        name,
        &check_req(b"f", "sha3-256,whirlpool", 0, 0, 0),
        SSH_FX_FAILURE,
        "No supported hash algorithm in the list",
    );

    // A handle opened without READ, a directory's handle, a handle that is not one.
    let w = s.open("f", SSH_FXF_WRITE);
    for ext in ["check-file-handle", "check-file"] {
        let r = s.ext(ext, &check_req(&w, "md5", 0, 0, 0));
        assert_status(&r, SSH_FX_PERMISSION_DENIED);
    }
    s.close(&w);
    let d = s.handle(Request::Opendir { path: b"dir" });
    let r = s.ext("check-file-handle", &check_req(&d, "md5", 0, 0, 0));
    assert_status(&r, SSH_FX_FAILURE);
    s.close(&d);
    let r = s.ext("check-file-handle", &check_req(b"bogus", "md5", 0, 0, 0));
    assert_status(&r, SSH_FX_FAILURE);
    // The file was never changed, and the session goes on.
    assert_eq!(fs::read(s.path("f")).unwrap(), data);
    assert_eq!(
        s.check(false, "f", "md5", (0, 0, 256)).1,
        reference_blocks("md5", &data, 256)
    );
}

#[test]
fn hash_refuses_more_digests_than_one_reply_holds() {
    let mut s = Session::start("hash-toomany", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    // 4297 blocks of 256 bytes: 275,008 bytes of SHA-512 digests, past 256 KiB.
    let data = pattern(1_100_000);
    fs::write(s.path("big"), &data).unwrap();
    s.check_status(
        "check-file-name",
        &check_req(b"big", "sha512", 0, 0, 256),
        SSH_FX_FAILURE,
        "Block size too small: the digests of the range do not fit in one reply",
    );
    // As CRC-32s they fit.
    let (_, got) = s.check(false, "big", "crc32", (0, 0, 256));
    assert_eq!(got.len(), 4297 * 4);
    assert_eq!(got[..4], reference("crc32", &data[..256]));
    assert_eq!(
        got[got.len() - 4..],
        reference("crc32", &data[4296 * 256..])
    );
    // And the same range in larger blocks.
    let (_, got) = s.check(false, "big", "sha512", (0, 0, 4096));
    assert_eq!(got, reference_blocks("sha512", &data, 4096));
}

#[test]
fn hash_undecodable_bodies_are_bad_messages() {
    if testing_openssh() {
        // OpenSSH does not know the names, so never reads their bodies.
        return;
    }
    let mut s = Session::start("hash-badbody", &[]);
    fs::write(s.path("f"), b"x").unwrap();
    let cut = check_req(b"f", "md5", 0, 0, 0);
    for name in CHECK_NAMES {
        let r = s.ext(name, &cut[..cut.len() - 1]);
        assert_status(&r, SSH_FX_BAD_MESSAGE);
    }
    let r = s.ext("copy-file", &Buf::new().str(b"f").str(b"g").into_vec());
    assert_status(&r, SSH_FX_BAD_MESSAGE);
    assert!(!s.path("g").exists());
}

/// paramiko's client: `SFTPFile.check()` sends "check-file" with a handle and reads
/// "check-file", the algorithm and the digests.
#[test]
fn hash_paramiko_check() {
    let dir = Scratch::new("hash-paramiko");
    let data = pattern(300_000);
    fs::write(dir.path().join("f"), &data).unwrap();
    let script = r#"
import socket, subprocess, sys
import paramiko
a, b = socket.socketpair()
server = subprocess.Popen([sys.argv[1]], stdin=b, stdout=b, cwd=sys.argv[2])
b.close()
class Channel:
    # What paramiko asks of an SSH channel, over a plain socket.
    def __init__(self, sock): self.sock = sock
    def send(self, data): return self.sock.send(data)
    def recv(self, n): return self.sock.recv(n)
    def get_name(self): return "sftp-server"
    def close(self): self.sock.close()
sftp = paramiko.SFTPClient(Channel(a))
with sftp.open("f", "r") as f:
    for alg, off, length, block in [("sha256", 0, 0, 0), ("md5", 1000, 5000, 0),
                                    ("sha1", 0, 0, 65536), ("crc32", 10, 2000, 256)]:
        try:
            print(alg, off, length, block, f.check(alg, off, length, block).hex())
        except IOError as e:
            print(alg, off, length, block, "error", e)
sftp.close()
server.wait()
"#;
    // Debian's python3-paramiko (the python3 first on PATH may be another).
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(server_bin())
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (apt-get install python3-paramiko)");
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "paramiko client failed:\n{out}\n{err}");
    let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        ("sha256", 0, 0, 0),
        ("md5", 1000, 5000, 0),
        ("sha1", 0, 0, 65536),
        ("crc32", 10, 2000, 256),
    ];
    assert_eq!(lines.len(), want.len(), "{out}\n{err}");
    for (line, (alg, off, len, block)) in lines.iter().zip(want) {
        let head = format!("{alg} {off} {len} {block} ");
        let rest = line.strip_prefix(&head).unwrap_or_else(|| panic!("{line}"));
        if testing_openssh() {
            assert!(
                rest.starts_with("error"),
                "OpenSSH has no check-file: {line}"
            );
            continue;
        }
        let end = if len == 0 { data.len() } else { off + len };
        let digests = reference_blocks(alg, &data[off..end], block);
        assert_eq!(rest, hex(digests), "{alg} {off} {len} {block}");
    }
}

// ---------------------------------------------------------------------------
// copy-file

#[test]
fn copy_file_copies_bytes_mode_and_times() {
    let mut s = Session::start("copy-file", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    // Larger than one copy_file_range step of the read/write fallback.
    let data = pattern(3 << 20);
    fs::write(s.path("src"), &data).unwrap();
    // Bits the usual umask (022) would clear.
    fs::set_permissions(s.path("src"), fs::Permissions::from_mode(0o767)).unwrap();
    let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(s.path("src"))
        .unwrap()
        .set_modified(then)
        .unwrap();
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("src", "dst", false),
    });
    let (a, b) = (
        fs::metadata(s.path("src")).unwrap(),
        fs::metadata(s.path("dst")).unwrap(),
    );
    assert_eq!(fs::read(s.path("dst")).unwrap(), data);
    assert_ne!(a.ino(), b.ino(), "a copy, not a link");
    assert_eq!(b.mode() & 0o7777, 0o767, "mode");
    assert_eq!(
        (b.mtime(), b.mtime_nsec()),
        (a.mtime(), a.mtime_nsec()),
        "mtime"
    );

    // An existing destination stays without overwrite, is replaced with it.
    fs::write(
        s.path("old"),
        pattern(4 << 20).iter().rev().copied().collect::<Vec<_>>(),
    )
    .unwrap();
    let before = fs::read(s.path("old")).unwrap();
    s.check_status(
        "copy-file",
        &copy_req("src", "old", false),
        SSH_FX_FAILURE,
        "File exists",
    );
    assert_eq!(fs::read(s.path("old")).unwrap(), before);
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("src", "old", true),
    });
    assert_eq!(fs::read(s.path("old")).unwrap(), data, "replaced whole");
    assert_eq!(fs::metadata(s.path("old")).unwrap().mode() & 0o7777, 0o767);
    // An empty source makes an empty copy.
    fs::write(s.path("empty"), b"").unwrap();
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("empty", "old", true),
    });
    assert_eq!(fs::metadata(s.path("old")).unwrap().len(), 0);
}

#[test]
fn copy_file_refusals_and_paths() {
    let mut s = Session::start("copy-file-refusals", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    let data = pattern(10_000);
    fs::create_dir_all(s.path("a")).unwrap();
    fs::create_dir_all(s.path("b/sub")).unwrap();
    fs::write(s.path("a/f"), &data).unwrap();
    symlink("a/f", s.path("link")).unwrap();
    symlink("f", s.path("a/self")).unwrap();

    // Onto itself: by its own name, and through a symlink to it.
    s.check_status(
        "copy-file",
        &copy_req("a/f", "a/f", false),
        SSH_FX_FAILURE,
        "File exists",
    );
    for dst in ["a/f", "a/self", "link"] {
        s.check_status(
            "copy-file",
            &copy_req("a/f", dst, true),
            SSH_FX_FAILURE,
            "Source and destination are the same file",
        );
        assert_eq!(
            fs::read(s.path("a/f")).unwrap(),
            data,
            "source intact after {dst}"
        );
    }
    // Across directories, and from a symlink (its target is copied, as a file).
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("a/f", "b/sub/g", false),
    });
    assert_eq!(fs::read(s.path("b/sub/g")).unwrap(), data);
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("link", "b/h", false),
    });
    assert!(
        fs::symlink_metadata(s.path("b/h"))
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(fs::read(s.path("b/h")).unwrap(), data);

    // A directory source, a directory destination, missing paths.
    s.check_status(
        "copy-file",
        &copy_req("a", "c", false),
        SSH_FX_FAILURE,
        "Is a directory",
    );
    assert!(!s.path("c").exists());
    s.check_status(
        "copy-file",
        &copy_req("a/f", "b", true),
        SSH_FX_FAILURE,
        "Is a directory",
    );
    let r = s.ext("copy-file", &copy_req("missing", "c", false));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
    let r = s.ext("copy-file", &copy_req("a/f", "nodir/c", false));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
    // A dangling symlink as the destination exists.
    symlink("nowhere", s.path("dangling")).unwrap();
    s.check_status(
        "copy-file",
        &copy_req("a/f", "dangling", false),
        SSH_FX_FAILURE,
        "File exists",
    );
}

/// A FIFO or a device is refused at once, never read: opening a FIFO with no writer
/// for reading (or with no reader for writing) would otherwise stall the session.
#[test]
fn hash_and_copy_refuse_fifos_and_devices_without_stalling() {
    let mut s = Session::start("hash-fifo", &[]);
    if s.openssh_lacks_them() {
        return;
    }
    nix::unistd::mkfifo(
        &s.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::write(s.path("f"), pattern(1000)).unwrap();
    for name in CHECK_NAMES.iter().filter(|n| n.ends_with("-name")) {
        for target in ["fifo", "/dev/null", "/dev/zero"] {
            s.check_status(
                name,
                &check_req(target.as_bytes(), "md5", 0, 0, 0),
                SSH_FX_FAILURE,
                "Not a regular file",
            );
        }
    }
    for source in ["fifo", "/dev/zero"] {
        s.check_status(
            "copy-file",
            &copy_req(source, "copy", false),
            SSH_FX_FAILURE,
            "Not a regular file",
        );
        assert!(!s.path("copy").exists(), "nothing created from {source}");
    }
    // Onto a FIFO: an existing name, left alone unless overwriting, and never opened
    // for writing with nobody reading.
    s.check_status(
        "copy-file",
        &copy_req("f", "fifo", false),
        SSH_FX_FAILURE,
        "File exists",
    );
    // With nobody reading, the non-blocking open for writing fails (ENXIO); with a
    // reader, the open succeeds and the FIFO is refused before a byte is written.
    s.check_status(
        "copy-file",
        &copy_req("f", "fifo", true),
        SSH_FX_FAILURE,
        "No such device or address",
    );
    let reader = fs::File::options()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(s.path("fifo"))
        .unwrap();
    s.check_status(
        "copy-file",
        &copy_req("f", "fifo", true),
        SSH_FX_FAILURE,
        "Not a regular file",
    );
    let mut buf = [0u8; 16];
    let got = std::io::Read::read(&mut &reader, &mut buf);
    assert!(
        matches!(got, Ok(0))
            || got
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing written into the FIFO: {got:?}"
    );
    assert!(
        fs::symlink_metadata(s.path("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // The session still answers.
    assert_eq!(s.attrs(Request::Stat { path: b"f" }).size, 1000);
}

// ---------------------------------------------------------------------------
// Policies and confinement

#[test]
fn hash_and_copy_under_read_only() {
    let mut s = Session::start("hash-copy-R", &["-R"]);
    if testing_openssh() {
        assert!(!s.advertises("check-file") && !s.advertises("copy-file"));
        return;
    }
    assert!(s.advertises("check-file"), "check-file only reads");
    assert!(!s.advertises("copy-file"), "copy-file writes");
    fs::write(s.path("f"), b"hello").unwrap();
    let r = s.ext("copy-file", &copy_req("f", "g", false));
    assert_status(&r, SSH_FX_PERMISSION_DENIED);
    assert!(!s.path("g").exists());
    assert_eq!(
        s.check(false, "f", "md5", (0, 0, 0)).1,
        reference("md5", b"hello")
    );
    assert_eq!(
        s.check(true, "f", "md5", (0, 0, 0)).1,
        reference("md5", b"hello")
    );
}

#[test]
fn hash_and_copy_refused_by_deny_and_allow_lists() {
    let mut s = Session::start("hash-copy-P", &["-P", "check-file,copy-file"]);
    fs::write(s.path("f"), b"hello").unwrap();
    assert!(!s.advertises("check-file") && !s.advertises("copy-file"));
    let h = s.open("f", SSH_FXF_READ);
    let code = match testing_openssh() {
        true => SSH_FX_OP_UNSUPPORTED,
        false => SSH_FX_PERMISSION_DENIED,
    };
    for name in CHECK_NAMES {
        let target: &[u8] = if name == "check-file-name" { b"f" } else { &h };
        let r = s.ext(name, &check_req(target, "md5", 0, 0, 0));
        assert_status(&r, code);
    }
    let r = s.ext("copy-file", &copy_req("f", "g", false));
    assert_status(&r, code);
    assert!(!s.path("g").exists());
    s.close(&h);
    // The rest is served.
    assert!(s.advertises("copy-data"));

    let mut s = Session::start("hash-copy-p", &["-p", "open,close,check-file"]);
    if testing_openssh() {
        return;
    }
    fs::write(s.path("f"), b"hello").unwrap();
    assert!(s.advertises("check-file") && !s.advertises("copy-file"));
    assert_eq!(
        s.check(true, "f", "sha1", (0, 0, 0)).1,
        reference("sha1", b"hello")
    );
    let r = s.ext("copy-file", &copy_req("f", "g", false));
    assert_status(&r, SSH_FX_PERMISSION_DENIED);
}

#[test]
fn hash_and_copy_stay_inside_the_root() {
    if testing_openssh() {
        // OpenSSH's server has no --root.
        return;
    }
    let top = Scratch::new("hash-copy-root");
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    fs::create_dir_all(root.join("d")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(root.join("a"), b"inside").unwrap();
    fs::write(outside.join("secret"), b"outside").unwrap();
    symlink("../outside/secret", root.join("up")).unwrap();
    symlink(outside.join("secret"), root.join("abs")).unwrap();
    let server = Server::spawn_with(
        &server_bin(),
        top.path(),
        &["--root", root.to_str().unwrap()],
        Stdio::null(),
    );
    let mut s = session::Session::init(server);
    let reply = |r: Reply| match r {
        Reply::ExtendedReply { body, .. } => body,
        other => panic!("{other:?}"),
    };
    // Absolute paths are the root's.
    let body = reply(s.ext("check-file-name", &check_req(b"/a", "md5", 0, 0, 0)));
    assert_eq!(body[4 + 3..], reference("md5", b"inside"));
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &copy_req("/a", "/d/copy", false),
    });
    assert_eq!(fs::read(root.join("d/copy")).unwrap(), b"inside");
    // Symlinks and `..` that lead out of the root lead nowhere.
    for link in ["up", "abs", "../outside/secret", "/../../outside/secret"] {
        let r = s.ext(
            "check-file-name",
            &check_req(link.as_bytes(), "md5", 0, 0, 0),
        );
        assert_status(&r, SSH_FX_NO_SUCH_FILE);
        let r = s.ext("copy-file", &copy_req(link, "/stolen", false));
        assert_status(&r, SSH_FX_NO_SUCH_FILE);
    }
    assert!(!root.join("stolen").exists());
    let r = s.ext("copy-file", &copy_req("/a", "../outside/planted", false));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
    assert!(!outside.join("planted").exists());
    // An escaping symlink as the destination, with overwrite, stays inside too.
    let r = s.ext("copy-file", &copy_req("/a", "abs", true));
    assert_status(&r, SSH_FX_NO_SUCH_FILE);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"outside");
}
