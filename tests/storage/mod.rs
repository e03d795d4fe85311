//! Storage that fails the way shared file systems fail, through a FUSE file system the
//! tests control (`support::faultfs`): errors from reads, writes, fsync, close,
//! lookups and listings; short reads; files that change size behind the kernel's
//! cache; copy_file_range that stops short; a daemon that dies between requests and
//! while one waits on it.
//!
//! Each test checks that the error reaches the client as an error STATUS with the OS's
//! text (never OK, never EOF for a failed read or listing), that the session goes on
//! serving requests on other storage, that nothing hangs, and that every byte a WRITE
//! acknowledged is in the store (or, where write-back fails at close, that CLOSE says
//! so). The same tests run against OpenSSH's server; where it answers otherwise the
//! test names the difference.

use crate::support::Spawn;
use crate::support::clients::{Batch, Workspace, sftp_quote};
use crate::support::content::{assert_same_bytes, pseudo_random};
use crate::support::faultfs::{CopyRange, FaultFs, Op, Options};
use crate::support::raw::*;
use crate::support::session::Session;
use crate::support::status::*;
use crate::support::{Scratch, testing_openssh};
use nix::errno::Errno;
use std::time::Duration;

const KIB: usize = 1024;

/// A scratch directory holding the mount (`fuse/`) and a local directory (`local/`),
/// with a server started in it.
struct Rig {
    fs: FaultFs,
    s: Session,
    _scratch: Scratch,
}

impl Rig {
    fn new(tag: &str, options: Options, args: &[&str]) -> Rig {
        let scratch = Scratch::new(tag);
        let fs = FaultFs::mount(&scratch.path().join("fuse"), options);
        std::fs::create_dir(scratch.path().join("local")).unwrap();
        std::fs::write(scratch.path().join("local/here"), b"local file").unwrap();
        let s = Session::init(Spawn::new(scratch.path()).args(args).start());
        Rig {
            fs,
            s,
            _scratch: scratch,
        }
    }

    fn open(&mut self, path: &str, pflags: u32) -> Vec<u8> {
        self.s.handle(Request::Open {
            path: path.as_bytes(),
            pflags,
            attrs: Attrs::none(),
        })
    }

    /// The session still answers a request on local storage.
    #[track_caller]
    fn still_serving(&mut self) {
        let a = self.s.attrs(Request::Stat {
            path: b"local/here",
        });
        assert_eq!(a.size, 10, "local file stat after a storage fault");
    }
}

/// The OS's text for `e`, as ours sends it with FAILURE.
fn text(e: Errno) -> String {
    // SAFETY: strerror returns a NUL-terminated string; this thread makes no other
    // strerror call while it is read.
    unsafe { std::ffi::CStr::from_ptr(nix::libc::strerror(e as i32)) }
        .to_string_lossy()
        .into_owned()
}

/// A FAILURE caused by `e`: its text from ours, "Failure" from OpenSSH.
#[track_caller]
fn assert_failed_with(reply: &Reply, e: Errno) {
    assert_os_failure(reply, &text(e));
}

// ---------------------------------------------------------------------------
// Reads

#[test]
fn failed_read_is_an_error_not_eof() {
    let mut r = Rig::new("fs-read-eio", Options::default(), &[]);
    let content = pseudo_random(1, 100 * KIB);
    r.fs.put("f", &content);
    r.fs.fail(Op::Read, "f", Errno::EIO as i32);
    let h = r.open("fuse/f", SSH_FXF_READ);
    let reply = r.s.call(Request::Read {
        handle: &h,
        offset: 0,
        len: 32768,
    });
    assert_failed_with(&reply, Errno::EIO);
    assert!(r.fs.calls(Op::Read) > 0, "the read reached the file system");
    r.still_serving();
    r.fs.heal();
    assert_same_bytes(
        &r.s.read(&h, 0, 32768),
        &content[..32768],
        "read after heal",
    );
    r.s.close(&h);
}

/// A file system that answers less than asked (FOPEN_DIRECT_IO passes short reads to
/// the caller): each READ gets what the one read(2) got, and OpenSSH's client, which
/// asks again for the rest, downloads the whole file.
#[test]
fn short_reads_are_answered_as_read_and_downloads_complete() {
    let mut r = Rig::new(
        "fs-short",
        Options {
            direct_io: true,
            ..Options::default()
        },
        &[],
    );
    let content = pseudo_random(2, 300 * KIB + 17);
    r.fs.put("f", &content);
    r.fs.short_reads(1000);
    let h = r.open("fuse/f", SSH_FXF_READ);
    for off in [0u64, 5000, 200 * 1024] {
        let got = r.s.read(&h, off, 32768);
        assert_eq!(got.len(), 1000, "one short read at {off}");
        assert_same_bytes(
            &got,
            &content[off as usize..off as usize + 1000],
            "short read",
        );
    }
    r.s.close(&h);
}

#[test]
fn sftp_get_over_short_reads_is_whole() {
    let ws = Workspace::new("fs-short-get");
    let fs = FaultFs::mount(
        &ws.remote.join("fuse"),
        Options {
            direct_io: true,
            ..Options::default()
        },
    );
    let content = pseudo_random(3, 700 * KIB + 3);
    fs.put("f", &content);
    fs.short_reads(4096 + 512);
    let dest = ws.local.join("got");
    ws.direct()
        .run(&Batch::new().cmd(format!("get fuse/f {}", sftp_quote(&dest))))
        .ok();
    assert_same_bytes(&std::fs::read(&dest).unwrap(), &content, "downloaded file");
    assert!(
        fs.calls(Op::Read) as usize >= content.len() / 4608,
        "reads were short"
    );
}

/// How the server under test can answer READ: by default, and (ours) splicing.
fn read_modes() -> &'static [&'static [&'static str]] {
    if testing_openssh() {
        &[&[]]
    } else {
        &[&[], &["--zero-copy-reads"]]
    }
}

/// A file that grew behind the kernel's cached size: READ past the old size finds
/// the new bytes, as read(2) does (it asks the file system for the size), with and
/// without `--zero-copy-reads` (where a splice stops at the cached size).
#[test]
fn file_grown_behind_the_cache_reads_on() {
    for args in read_modes() {
        let mut r = Rig::new("fs-grown", Options::default(), args);
        let content = pseudo_random(4, 64 * KIB);
        r.fs.put("f", &content[..10_000]);
        let h = r.open("fuse/f", SSH_FXF_READ);
        assert_same_bytes(&r.s.read(&h, 0, 32768), &content[..10_000], "before");
        r.fs.put("f", &content);
        // Two READs in flight: the first ends at the old size, the second past it.
        let ids = [0u64, 10_000].map(|offset| {
            r.s.c.send(&Request::Read {
                handle: &h,
                offset,
                len: 32768,
            })
        });
        for (id, offset) in ids.into_iter().zip([0usize, 10_000]) {
            match r.s.c.recv().expect("reply") {
                Reply::Data { id: got, data } => {
                    assert_eq!(got, id);
                    assert_same_bytes(
                        &data,
                        &content[offset..(offset + 32768).min(content.len())],
                        &format!("{args:?}: READ at {offset} after growth"),
                    );
                }
                other => panic!("{args:?}: READ at {offset}: {other:?}"),
            }
        }
        r.s.close(&h);
    }
}

/// Many READs in flight over reads that come back short and then fail: each reply is
/// the bytes at its offset or the error, never EOF before the end of the file.
#[test]
fn pipelined_reads_over_failing_storage() {
    let mut r = Rig::new(
        "fs-pipe-read",
        Options {
            direct_io: true,
            ..Options::default()
        },
        &[],
    );
    let content = pseudo_random(12, 2 << 20);
    r.fs.put("f", &content);
    r.fs.short_reads(20_000);
    r.fs.fail_after(Op::Read, "f", Errno::EIO as i32, 20);
    let h = r.open("fuse/f", SSH_FXF_READ);
    let sent: Vec<(u32, usize)> = (0..64)
        .map(|i| {
            let offset = i * 32768;
            let id = r.s.c.send(&Request::Read {
                handle: &h,
                offset: offset as u64,
                len: 32768,
            });
            (id, offset)
        })
        .collect();
    let (mut data, mut failed) = (0, 0);
    for (id, offset) in sent {
        let reply = r.s.c.recv().expect("READ reply");
        assert_eq!(reply.id(), Some(id), "replies in request order");
        match reply {
            Reply::Data { data: d, .. } => {
                assert!(!d.is_empty() && d.len() <= 20_000, "short read at {offset}");
                assert_same_bytes(&d, &content[offset..offset + d.len()], "READ in flight");
                data += 1;
            }
            other => {
                assert_failed_with(&other, Errno::EIO);
                failed += 1;
            }
        }
    }
    assert_eq!((data, failed), (20, 44), "reads served, then failed");
    r.still_serving();
}

/// A file that shrank behind the kernel's cache (another host truncated it): each
/// READ answers what read(2) on the same file answers at that moment, whether the
/// kernel rechecks the size on every read (FUSE_AUTO_INVAL_DATA) or trusts its cache.
#[test]
fn file_shrunk_behind_the_cache_reads_as_read_does() {
    use std::os::unix::fs::FileExt;
    for (auto_inval_data, args) in [false, true]
        .into_iter()
        .flat_map(|a| read_modes().iter().map(move |m| (a, *m)))
    {
        let options = Options {
            auto_inval_data,
            ..Options::default()
        };
        let mut r = Rig::new("fs-shrunk", options, args);
        let content = pseudo_random(14, 64 * KIB);
        r.fs.put("f", &content);
        // The test's own descriptor, opened first: opening a FUSE file drops its
        // cached pages, which must not happen between the two reads compared.
        let mine = std::fs::File::open(r.fs.path.join("f")).unwrap();
        let h = r.open("fuse/f", SSH_FXF_READ);
        assert_same_bytes(&r.s.read(&h, 0, 65536), &content[..65536], "cached");
        r.fs.put("f", &content[..5000]);
        for offset in [10_000u64, 2000] {
            let reply = r.s.call(Request::Read {
                handle: &h,
                offset,
                len: 4096,
            });
            let mut buf = vec![0u8; 4096];
            let n = mine.read_at(&mut buf, offset).unwrap();
            match reply {
                Reply::Data { data, .. } => assert_same_bytes(
                    &data,
                    &buf[..n],
                    &format!("{args:?}, auto_inval_data {auto_inval_data}: READ at {offset}"),
                ),
                other => {
                    assert_status(&other, SSH_FX_EOF);
                    assert_eq!(n, 0, "EOF where read(2) found {n} bytes at {offset}");
                }
            }
        }
        r.s.close(&h);
    }
}

// ---------------------------------------------------------------------------
// Writes, fsync and close

#[test]
fn failed_write_is_an_error_and_acknowledged_writes_are_kept() {
    for e in [Errno::EDQUOT, Errno::ENOSPC, Errno::EIO] {
        let mut r = Rig::new("fs-write", Options::default(), &[]);
        r.fs.fail_after(Op::Write, "up", e as i32, 3);
        let h = r.open("fuse/up", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
        let content = pseudo_random(5, 5 * 8 * KIB);
        let mut acked = 0;
        for (i, chunk) in content.chunks(8 * KIB).enumerate() {
            let reply = r.s.call(Request::Write {
                handle: &h,
                offset: (i * 8 * KIB) as u64,
                data: chunk,
            });
            if i < 3 {
                assert_status(&reply, SSH_FX_OK);
                acked += chunk.len();
            } else {
                assert_failed_with(&reply, e);
            }
        }
        r.still_serving();
        r.s.close(&h);
        assert_same_bytes(
            &r.fs.content("up").unwrap(),
            &content[..acked],
            "acknowledged writes in the store",
        );
    }
}

/// Many WRITEs in flight when the quota runs out: every one acknowledged is in the
/// store at its offset; none after it is.
#[test]
fn pipelined_writes_over_failing_storage() {
    let mut r = Rig::new("fs-pipe-write", Options::default(), &[]);
    r.fs.fail_after(Op::Write, "up", Errno::EDQUOT as i32, 10);
    let h = r.open("fuse/up", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
    let content = pseudo_random(13, 64 * 16 * KIB);
    let ids: Vec<u32> = content
        .chunks(16 * KIB)
        .enumerate()
        .map(|(i, chunk)| {
            r.s.c.send(&Request::Write {
                handle: &h,
                offset: (i * 16 * KIB) as u64,
                data: chunk,
            })
        })
        .collect();
    let mut acked = 0;
    for id in ids {
        let reply = r.s.c.recv().expect("WRITE reply");
        assert_eq!(reply.id(), Some(id));
        match reply {
            Reply::Status {
                code: SSH_FX_OK, ..
            } => acked += 1,
            other => assert_failed_with(&other, Errno::EDQUOT),
        }
    }
    assert_eq!(acked, 10, "writes acknowledged before the quota ran out");
    r.s.close(&h);
    assert_same_bytes(
        &r.fs.content("up").unwrap(),
        &content[..acked * 16 * KIB],
        "acknowledged writes in the store",
    );
}

/// Write-back that fails at close, as NFS reports it: every WRITE was acknowledged,
/// the data is lost, and CLOSE must say so.
#[test]
fn write_back_failing_at_close_is_reported_by_close() {
    for e in [Errno::EDQUOT, Errno::ENOSPC, Errno::EIO] {
        let mut r = Rig::new(
            "fs-close",
            Options {
                write_back: true,
                ..Options::default()
            },
            &[],
        );
        r.fs.fail(Op::Flush, "up", e as i32);
        let h = r.open("fuse/up", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
        r.s.write(&h, 0, &pseudo_random(6, 20 * KIB));
        let reply = r.s.call(Request::Close { handle: &h });
        assert_failed_with(&reply, e);
        assert_eq!(r.fs.content("up").unwrap(), b"", "the lost write-back");
        assert!(r.fs.calls(Op::Flush) > 0);
        r.still_serving();
    }
}

#[test]
fn failed_fsync_is_an_error() {
    let mut r = Rig::new(
        "fs-fsync",
        Options {
            write_back: true,
            ..Options::default()
        },
        &[],
    );
    r.fs.fail(Op::Fsync, "up", Errno::EIO as i32);
    let h = r.open("fuse/up", SSH_FXF_WRITE | SSH_FXF_CREAT);
    r.s.write(&h, 0, b"data");
    let reply = r.s.ext("fsync@openssh.com", &Buf::new().str(&h).into_vec());
    assert_failed_with(&reply, Errno::EIO);
    r.still_serving();
}

#[test]
fn sftp_put_reports_a_failed_close() {
    let ws = Workspace::new("fs-put");
    let fs = FaultFs::mount(
        &ws.remote.join("fuse"),
        Options {
            write_back: true,
            ..Options::default()
        },
    );
    fs.fail(Op::Flush, "up", Errno::EDQUOT as i32);
    let src = ws.local.join("src");
    std::fs::write(&src, pseudo_random(7, 200 * KIB)).unwrap();
    let run = ws
        .direct()
        .run(&Batch::new().cmd(format!("put {} fuse/up", sftp_quote(&src))))
        .failed();
    // sftp prints its own text for the status code.
    assert!(
        run.stderr.contains("close remote: Failure"),
        "sftp's report: {run}"
    );
}

// ---------------------------------------------------------------------------
// Lookups and listings

#[test]
fn stale_lookup_is_an_error() {
    let mut r = Rig::new("fs-estale", Options::default(), &[]);
    r.fs.put("gone", b"x");
    r.fs.fail(Op::Lookup, "gone", Errno::ESTALE as i32);
    for req in [
        Request::Lstat { path: b"fuse/gone" },
        Request::Stat { path: b"fuse/gone" },
        Request::Open {
            path: b"fuse/gone",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        },
    ] {
        let reply = r.s.call(req);
        assert_failed_with(&reply, Errno::ESTALE);
    }
    r.still_serving();
}

/// Under `--root` the server keeps the last parent directory it resolved for the
/// requests it read together. Another host replaces that directory (`rm -r`, `mkdir`)
/// between two of them: the second must find the new directory, as a fresh path
/// resolution does, not fail with the kept descriptor's ESTALE.
#[test]
fn directory_replaced_by_another_host_between_pipelined_requests() {
    if testing_openssh() {
        return; // --root is ours alone
    }
    let scratch = Scratch::new("fs-kept-parent");
    let fs = FaultFs::mount(&scratch.path().join("fuse"), Options::default());
    fs.mkdir("d");
    fs.put("d/x", b"x");
    fs.put("d/y", b"old y");
    let root = scratch.path().to_str().unwrap();
    let mut s = Session::init(Spawn::new(scratch.path()).args(&["--root", root]).start());
    fs.hang(Op::Lookup, "x");
    let mut both = Request::Lstat { path: b"/fuse/d/x" }.encode(1);
    both.extend(Request::Lstat { path: b"/fuse/d/y" }.encode(2));
    s.c.send_raw(&both);
    assert!(
        fs.wait_hanging(Duration::from_secs(10)),
        "first LSTAT in the daemon"
    );
    fs.replace_dir("d");
    fs.put("d/y", b"the new y");
    fs.heal();
    let first = s.c.recv().expect("first reply");
    assert_eq!(first.id(), Some(1));
    match s.c.recv().expect("second reply") {
        Reply::Attrs { id: 2, attrs } => assert_eq!(attrs.size, 9, "the new d/y"),
        other => panic!("LSTAT of d/y in the replaced directory: {other:?}"),
    }
}

/// Reads every READDIR reply of `dir` until a status; returns the names and it.
fn list(s: &mut Session, dir: &[u8]) -> (Vec<Vec<u8>>, Reply) {
    let h = s.handle(Request::Opendir { path: dir });
    let mut names = Vec::new();
    loop {
        match s.call(Request::Readdir { handle: &h }) {
            Reply::Name { entries, .. } => names.extend(entries.into_iter().map(|e| e.name)),
            status => {
                s.close(&h);
                return (names, status);
            }
        }
    }
}

/// A listing whose directory read fails, or one of whose entries cannot be looked at
/// (lstat fails with EIO), ends with the error, not with EOF: a client must not take
/// a failed listing for an empty or complete one. OpenSSH's server ends it with EOF
/// (readdir(3) returning NULL is all it looks at) and leaves such an entry out: a
/// named difference.
#[test]
fn failed_listing_ends_with_the_error() {
    let mut r = Rig::new("fs-readdir", Options::default(), &[]);
    r.fs.mkdir("d");
    r.fs.mkdir("big");
    for i in 0..600 {
        r.fs.put(&format!("big/entry-with-a-longish-name-{i:04}"), b"");
    }
    // An entry whose attributes cannot be read (lstat fails with EIO).
    r.fs.mkdir("s");
    for name in ["a", "bad", "c"] {
        r.fs.put(&format!("s/{name}"), b"");
    }
    r.fs.fail(Op::Lookup, "bad", Errno::EIO as i32);
    r.fs.fail(Op::Readdir, "d", Errno::EIO as i32);
    r.fs.fail_after(Op::Readdir, "big", Errno::EIO as i32, 1);
    for dir in ["fuse/d", "fuse/big", "fuse/s"] {
        let (names, end) = list(&mut r.s, dir.as_bytes());
        if testing_openssh() {
            // Named difference: OpenSSH ends a failed listing with EOF.
            assert_status(&end, SSH_FX_EOF);
        } else {
            assert_failed_with(&end, Errno::EIO);
        }
        assert!(names.len() < 602, "{dir}: a failed listing is not complete");
        assert!(
            !names.iter().any(|n| n == b"bad"),
            "{dir}: an entry without attributes"
        );
    }
    r.still_serving();
    r.fs.heal();
    let (names, end) = list(&mut r.s, b"fuse/big");
    assert_status(&end, SSH_FX_EOF);
    assert_eq!(names.len(), 602, "the whole listing after heal");
}

/// FUSE lets a name be 1,024 bytes, four times a local disk's: READDIR replies still
/// stay within the 32 KiB they promise (below the 40,000 bytes some clients take at
/// most), and every entry comes once. OpenSSH sends 100 entries a reply, whatever
/// their size: a named difference.
#[test]
fn listing_of_long_names_stays_within_the_reply_budget() {
    let mut r = Rig::new("fs-longnames", Options::default(), &[]);
    r.fs.mkdir("d");
    let names: Vec<String> = (0..120)
        .map(|i| format!("{i:04}{}", "n".repeat(1020)))
        .collect();
    for n in &names {
        r.fs.put(&format!("d/{n}"), b"");
    }
    let h = r.s.handle(Request::Opendir { path: b"fuse/d" });
    let mut seen = Vec::new();
    loop {
        r.s.c.send(&Request::Readdir { handle: &h });
        let packet = r.s.c.recv_packet().expect("READDIR reply");
        match Reply::decode(&packet).expect("reply") {
            Reply::Name { entries, .. } => {
                if !testing_openssh() {
                    assert!(
                        packet.len() <= 32 * KIB,
                        "a reply of {} bytes",
                        packet.len()
                    );
                }
                seen.extend(entries.into_iter().map(|e| e.name));
            }
            end => {
                assert_status(&end, SSH_FX_EOF);
                break;
            }
        }
    }
    r.s.close(&h);
    seen.retain(|n| n != b"." && n != b"..");
    seen.sort();
    let want: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
    assert_eq!(seen, want, "every entry once");
}

#[test]
fn sftp_ls_of_a_failed_listing_fails() {
    let ws = Workspace::new("fs-ls");
    let fs = FaultFs::mount(&ws.remote.join("fuse"), Options::default());
    fs.mkdir("d");
    fs.put("d/file", b"");
    fs.fail(Op::Readdir, "d", Errno::EIO as i32);
    let batch = Batch::new().cmd("ls -l fuse/d");
    if testing_openssh() {
        // Named difference: OpenSSH's server answers EOF, and sftp lists nothing.
        let run = ws.direct().run(&batch).ok();
        assert_eq!(run.output_of("ls -l fuse/d"), "", "{run}");
    } else {
        let run = ws.direct().run(&batch).failed();
        assert!(run.stderr.contains("Couldn't read directory"), "{run}");
    }
}

// ---------------------------------------------------------------------------
// copy-data over copy_file_range that stops short or early, and across file systems

#[test]
fn copy_data_is_whole_when_copy_file_range_stops_short() {
    for how in [
        CopyRange::Unsupported,
        CopyRange::Short(4096),
        CopyRange::EndsAt(10_000),
    ] {
        let mut r = Rig::new("fs-copy", Options::default(), &[]);
        if !r.s.advertises("copy-data") {
            return;
        }
        r.fs.copy_range(how);
        let content = pseudo_random(8, 300 * KIB + 5);
        r.fs.put("src", &content);
        std::fs::write(r._scratch.path().join("local/src"), &content).unwrap();
        for (from, to) in [
            ("fuse/src", "fuse/dst"),
            ("local/src", "fuse/dst2"),
            ("fuse/src", "local/dst"),
        ] {
            let hs = r.open(from, SSH_FXF_READ);
            let hd = r.open(to, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
            let body = Buf::new().str(&hs).u64(0).u64(0).str(&hd).u64(0).into_vec();
            let reply = r.s.ext("copy-data", &body);
            assert_status(&reply, SSH_FX_OK);
            r.s.close(&hs);
            r.s.close(&hd);
            let stored = match to.strip_prefix("fuse/") {
                Some(rel) => r.fs.content(rel).unwrap(),
                None => std::fs::read(r._scratch.path().join(to)).unwrap(),
            };
            assert_same_bytes(&stored, &content, &format!("{how:?}: {from} -> {to}"));
        }
    }
}

/// The source grew behind the kernel's cached size after it was opened: copy-data
/// copies all of it, as a read(2) loop does.
#[test]
fn copy_data_of_a_file_grown_behind_the_cache_is_whole() {
    for how in [CopyRange::Unsupported, CopyRange::Short(1 << 20)] {
        let mut r = Rig::new("fs-copy-grown", Options::default(), &[]);
        r.fs.copy_range(how);
        let content = pseudo_random(11, 200 * KIB);
        r.fs.put("src", &content[..10_000]);
        let hs = r.open("fuse/src", SSH_FXF_READ);
        assert_eq!(r.s.read(&hs, 0, 32768).len(), 10_000);
        r.fs.put("src", &content);
        for to in ["fuse/dst", "local/dst"] {
            let hd = r.open(to, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC);
            let body = Buf::new().str(&hs).u64(0).u64(0).str(&hd).u64(0).into_vec();
            assert_status(&r.s.ext("copy-data", &body), SSH_FX_OK);
            r.s.close(&hd);
            let stored = match to.strip_prefix("fuse/") {
                Some(rel) => r.fs.content(rel).unwrap(),
                None => std::fs::read(r._scratch.path().join(to)).unwrap(),
            };
            assert_same_bytes(&stored, &content, &format!("{how:?}: grown source -> {to}"));
        }
        r.s.close(&hs);
    }
}

// ---------------------------------------------------------------------------
// A daemon that dies

#[test]
fn dead_daemon_between_requests_is_an_error() {
    let mut r = Rig::new("fs-dead", Options::default(), &[]);
    r.fs.put("f", &pseudo_random(9, 10 * KIB));
    let h = r.open("fuse/f", SSH_FXF_READ);
    r.fs.abort();
    let reply = r.s.call(Request::Read {
        handle: &h,
        offset: 0,
        len: 4096,
    });
    assert_failed_with(&reply, Errno::ENOTCONN);
    let reply = r.s.call(Request::Stat { path: b"fuse/f" });
    assert_failed_with(&reply, Errno::ENOTCONN);
    r.still_serving();
    // Closing a handle on the dead mount answers (whatever close(2) says) at once.
    match r.s.call(Request::Close { handle: &h }) {
        Reply::Status { .. } => {}
        other => panic!("CLOSE on a dead mount: {other:?}"),
    }
    r.still_serving();
}

/// OpenSSH's sftp downloading from a mount whose daemon dies mid-transfer: the
/// download fails with an error, and nothing hangs.
#[test]
fn sftp_get_from_a_dying_daemon_fails() {
    let ws = Workspace::new("fs-dying-get");
    let fs = FaultFs::mount(&ws.remote.join("fuse"), Options::default());
    fs.put("f", &pseudo_random(15, 4 << 20));
    fs.hang_after(Op::Read, "f", 8);
    let client = ws.direct().limit(Duration::from_secs(60));
    let dest = ws.local.join("got");
    let batch = Batch::new().cmd(format!("get fuse/f {}", sftp_quote(&dest)));
    std::thread::scope(|t| {
        let run = t.spawn(|| client.run(&batch));
        assert!(
            fs.wait_hanging(Duration::from_secs(20)),
            "a READ in the daemon"
        );
        fs.abort();
        let run = run.join().unwrap().failed();
        assert!(run.stderr.contains("Failure"), "sftp's report: {run}");
    });
}

#[test]
fn daemon_dying_during_a_read_is_an_error() {
    let mut r = Rig::new("fs-dying", Options::default(), &[]);
    r.fs.put("f", &pseudo_random(10, 10 * KIB));
    let h = r.open("fuse/f", SSH_FXF_READ);
    r.fs.hang(Op::Read, "f");
    let read = r.s.c.send(&Request::Read {
        handle: &h,
        offset: 0,
        len: 4096,
    });
    let stat = r.s.c.send(&Request::Stat {
        path: b"local/here",
    });
    assert!(
        r.fs.wait_hanging(Duration::from_secs(10)),
        "the READ reached the daemon"
    );
    r.fs.abort();
    let reply = r.s.c.recv().expect("READ reply");
    assert_eq!(reply.id(), Some(read));
    // A request waiting when the connection is aborted fails with ENOTCONN or, on
    // older kernels, ECONNABORTED.
    if testing_openssh() {
        assert_status(&reply, SSH_FX_FAILURE);
    } else if !matches!(&reply, Reply::Status { msg, .. } if *msg == text(Errno::ECONNABORTED).as_bytes())
    {
        assert_failed_with(&reply, Errno::ENOTCONN);
    }
    let reply = r.s.c.recv().expect("STAT reply");
    assert_eq!(reply.id(), Some(stat));
    assert!(matches!(reply, Reply::Attrs { .. }), "{reply:?}");
    r.still_serving();
}
