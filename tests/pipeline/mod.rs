//! Requests in flight: runs of requests sent in one write, as sshfs, rclone and
//! OpenSSH's own client send them, with exactly one reply per request, in order, and
//! nothing extra. Every run follows large READs (the replies that zero-copy splicing
//! would carry) and surrounds the requests that change a file's data (OPEN for
//! writing, SETSTAT of a size), which must not overtake READ data still unread.
//! Then the READ data itself: bytes a pread(2) returned when the READ was served,
//! never bytes that changed afterwards, never a false end of file; and READ on a FIFO.
//!
//! Each test runs the server as it starts by default and, for ours, once more with
//! `--zero-copy-reads`.

use crate::support::content::{assert_same_bytes, write_random_file};
use crate::support::raw::*;
use crate::support::session::Session;
use crate::support::status::*;
use crate::support::{Scratch, Server, testing_openssh};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

mod fuse;

/// The server's flags for each way a test runs: as started by default and, for ours,
/// with zero-copy READ.
fn modes() -> Vec<Vec<&'static str>> {
    let mut m = vec![vec![]];
    if !testing_openssh() {
        m.push(vec!["--zero-copy-reads"]);
    }
    m
}

fn start(dir: &Path, args: &[&str]) -> Session {
    Session::init(Server::spawn(dir, args))
}

/// Sends `reqs` in one write and reads their replies: exactly one each, with the
/// request's id, in order, and nothing after them.
#[track_caller]
pub fn pipelined(s: &mut Session, reqs: &[Request]) -> Vec<Reply> {
    let mut bytes = Vec::new();
    let mut ids = Vec::new();
    for r in reqs {
        let id = s.c.fresh_id();
        bytes.extend_from_slice(&r.encode(id));
        ids.push(id);
    }
    s.c.send_raw(&bytes);
    let replies = ids
        .iter()
        .zip(reqs)
        .map(|(&id, req)| {
            let reply =
                s.c.recv()
                    .unwrap_or_else(|e| panic!("no reply to {req:?} (id {id}): {e:?}"));
            assert_eq!(reply.id(), Some(id), "reply to {req:?}: {reply:?}");
            reply
        })
        .collect();
    s.c.expect_silence(Duration::from_millis(200));
    replies
}

const READ_LEN: u32 = 64 * 1024;

/// A file of `len` random bytes named `name` in `dir`; its content.
fn file(dir: &Path, name: &str, len: usize) -> Vec<u8> {
    write_random_file(&dir.join(name), len as u64 ^ 0x5eed, len)
}

/// Opens `name` for reading and READs it whole in pipelined 64 KiB requests, then
/// closes it: the large READs a zero-copy server splices.
#[track_caller]
fn read_whole(s: &mut Session, name: &[u8], content: &[u8]) {
    let h = s.handle(Request::Open {
        path: name,
        pflags: SSH_FXF_READ,
        attrs: Attrs::none(),
    });
    let reads: Vec<Request> = (0..content.len().div_ceil(READ_LEN as usize))
        .map(|i| Request::Read {
            handle: &h,
            offset: i as u64 * READ_LEN as u64,
            len: READ_LEN,
        })
        .collect();
    let mut got = Vec::new();
    for r in pipelined(s, &reads) {
        match r {
            Reply::Data { data, .. } => got.extend_from_slice(&data),
            other => panic!("expected DATA, got {other:?}"),
        }
    }
    assert_same_bytes(&got, content, "pipelined READs");
    s.close(&h);
}

#[track_caller]
fn expect_handle(r: &Reply) -> Vec<u8> {
    match r {
        Reply::Handle { handle, .. } => handle.clone(),
        other => panic!("expected HANDLE, got {other:?}"),
    }
}

#[test]
fn pipeline_stat_and_truncate_after_large_reads() {
    for args in modes() {
        let dir = Scratch::new("pipe-trunc");
        let content = file(dir.path(), "f", 300_000);
        let mut s = start(dir.path(), &args);
        read_whole(&mut s, b"f", &content);
        let replies = pipelined(
            &mut s,
            &[
                Request::Stat { path: b"f" },
                Request::Setstat {
                    path: b"f",
                    attrs: Attrs::none().with_size(1000),
                },
                Request::Stat { path: b"f" },
            ],
        );
        assert!(matches!(&replies[0], Reply::Attrs { attrs, .. } if attrs.size == 300_000));
        assert_status(&replies[1], SSH_FX_OK);
        assert!(matches!(&replies[2], Reply::Attrs { attrs, .. } if attrs.size == 1000));
        s.finish();
    }
}

#[test]
fn pipeline_opendir_and_open_for_writing_after_large_reads() {
    for args in modes() {
        let dir = Scratch::new("pipe-open");
        let content = file(dir.path(), "f", 200_000);
        let mut s = start(dir.path(), &args);
        read_whole(&mut s, b"f", &content);
        let replies = pipelined(
            &mut s,
            &[
                Request::Opendir { path: b"." },
                Request::Open {
                    path: b"g",
                    pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
                    attrs: Attrs::none(),
                },
                Request::Open {
                    path: b"f",
                    pflags: SSH_FXF_READ | SSH_FXF_WRITE,
                    attrs: Attrs::none(),
                },
            ],
        );
        for r in &replies {
            let h = expect_handle(r);
            s.close(&h);
        }
        s.finish();
    }
}

/// The same runs with per-request debug logging, which describes each reply.
#[test]
fn pipeline_with_debug_logging() {
    for mut args in modes() {
        args.extend(["-e", "-l", "DEBUG3"]);
        let dir = Scratch::new("pipe-debug");
        let content = file(dir.path(), "f", 200_000);
        let server = Server::spawn_with(
            &crate::support::server_bin(),
            dir.path(),
            &args,
            Stdio::null(),
        );
        let mut s = Session::init(server);
        read_whole(&mut s, b"f", &content);
        let replies = pipelined(
            &mut s,
            &[
                Request::Opendir { path: b"." },
                Request::Open {
                    path: b"f",
                    pflags: SSH_FXF_WRITE,
                    attrs: Attrs::none(),
                },
                Request::Setstat {
                    path: b"f",
                    attrs: Attrs::none().with_size(10),
                },
            ],
        );
        expect_handle(&replies[0]);
        expect_handle(&replies[1]);
        assert_status(&replies[2], SSH_FX_OK);
        let st = s.finish();
        assert!(st.success(), "server exit: {st:?}");
    }
}

/// Every kind of request, interleaved with large READs of files that the same run
/// writes, truncates and renames: one reply each, in order, and READ data that
/// matches what the file held at that point of the run.
#[test]
fn pipeline_every_request_between_large_reads() {
    for args in modes() {
        let dir = Scratch::new("pipe-all");
        let a = file(dir.path(), "a", 600_000);
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let mut s = start(dir.path(), &args);
        let ha = s.handle(Request::Open {
            path: b"a",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        });
        let read = |offset: u64| Request::Read {
            handle: &ha,
            offset,
            len: READ_LEN,
        };
        let new_data = vec![0x5a; 70_000];
        let dot = Buf::new().str(b".").into_vec();
        let reqs = vec![
            read(0),
            Request::Open {
                path: b"w",
                pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
                attrs: Attrs::none(),
            },
            read(65536),
            Request::Stat { path: b"a" },
            Request::Lstat { path: b"d" },
            Request::Opendir { path: b"d" },
            read(131072),
            Request::Realpath { path: b"." },
            Request::Mkdir {
                path: b"d/e",
                attrs: Attrs::none(),
            },
            Request::Setstat {
                path: b"a",
                attrs: Attrs::none().with_permissions(0o640),
            },
            read(196608),
            Request::Rename {
                old: b"d/e",
                new: b"d/f",
            },
            Request::Rmdir { path: b"d/f" },
            Request::Symlink {
                target: b"a",
                link: b"l",
            },
            Request::Readlink { path: b"l" },
            read(262144),
            Request::Remove { path: b"l" },
            Request::Fstat { handle: &ha },
            Request::Open {
                path: b"a",
                pflags: SSH_FXF_READ | SSH_FXF_WRITE,
                attrs: Attrs::none(),
            },
            read(327680),
            Request::Extended {
                name: b"statvfs@openssh.com",
                data: &dot,
            },
            Request::Setstat {
                path: b"a",
                attrs: Attrs::none().with_size(400_000),
            },
            read(393216),
            read(458752),
            Request::Open {
                path: b"missing",
                pflags: SSH_FXF_READ,
                attrs: Attrs::none(),
            },
            Request::Close {
                handle: b"nonsense",
            },
        ];
        let replies = pipelined(&mut s, &reqs);
        let data = |i: usize| match &replies[i] {
            Reply::Data { data, .. } => data.clone(),
            other => panic!("request {i}: expected DATA, got {other:?}"),
        };
        // READs before the truncation to 400,000 bytes see the whole file.
        for (i, off) in [(0, 0), (2, 65536), (6, 131072), (10, 196608), (15, 262144)] {
            assert_same_bytes(&data(i), &a[off..off + READ_LEN as usize], "READ");
        }
        assert_same_bytes(&data(19), &a[327680..393216], "READ before truncation");
        assert_same_bytes(&data(22), &a[393216..400_000], "READ after truncation");
        assert_status(&replies[23], SSH_FX_EOF);
        let hw = expect_handle(&replies[1]);
        expect_handle(&replies[5]);
        let hrw = expect_handle(&replies[18]);
        assert!(matches!(replies[3], Reply::Attrs { .. }));
        assert!(matches!(replies[4], Reply::Attrs { .. }));
        assert!(matches!(replies[7], Reply::Name { .. }));
        for i in [8, 9, 11, 12, 13, 16, 21] {
            assert_status(&replies[i], SSH_FX_OK);
        }
        assert!(matches!(replies[14], Reply::Name { .. }));
        assert!(matches!(replies[17], Reply::Attrs { .. }));
        assert!(matches!(replies[20], Reply::ExtendedReply { .. }));
        assert_status(&replies[24], SSH_FX_NO_SUCH_FILE);
        // A failed CLOSE gets its one STATUS; then the run's own writes and a read
        // of what they wrote.
        let replies = pipelined(
            &mut s,
            &[
                Request::Write {
                    handle: &hw,
                    offset: 0,
                    data: &new_data,
                },
                Request::Write {
                    handle: &hrw,
                    offset: 0,
                    data: &new_data,
                },
                Request::Read {
                    handle: &ha,
                    offset: 0,
                    len: READ_LEN,
                },
                Request::Close { handle: &hw },
                Request::Close { handle: &hrw },
                Request::Close { handle: &ha },
            ],
        );
        for i in [0, 1, 3, 4, 5] {
            assert_status(&replies[i], SSH_FX_OK);
        }
        assert!(matches!(&replies[2], Reply::Data { data, .. } if data[..] == new_data[..65536]));
        assert_eq!(std::fs::read(dir.path().join("w")).unwrap(), new_data);
        s.finish();
    }
}

/// READ replies left unread while another process truncates the file: each one holds
/// the bytes the file had when the READ was served (or reports the end of the file,
/// if the server had not yet served it), never bytes the file never held. Only as
/// the server starts by default: `--zero-copy-reads` gives this up (README says so).
#[test]
fn pipeline_unread_replies_survive_truncation_by_another_process() {
    let dir = Scratch::new("pipe-trunc-other");
    let content = file(dir.path(), "f", 4 * READ_LEN as usize);
    let mut s = start(dir.path(), &[]);
    let (h, ids) = open_and_send_reads(&mut s, b"f", 4);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("f"))
        .unwrap()
        .set_len(100)
        .unwrap();
    check_reads_after_truncation(&mut s, &ids, &content, 100);
    s.close(&h);
    s.finish();
}

/// The session's own SETSTAT of a size behind READs whose replies the client takes
/// only seconds later (a slow link): the READ replies still hold the file's bytes.
#[test]
fn pipeline_unread_replies_survive_the_sessions_own_truncation() {
    for args in modes() {
        let dir = Scratch::new("pipe-trunc-own");
        let content = file(dir.path(), "f", 4 * READ_LEN as usize);
        let mut s = start(dir.path(), &args);
        let (h, ids) = open_and_send_reads(&mut s, b"f", 4);
        let trunc = s.c.send(&Request::Setstat {
            path: b"f",
            attrs: Attrs::none().with_size(100),
        });
        std::thread::sleep(Duration::from_millis(5500));
        check_reads_after_truncation(&mut s, &ids, &content, usize::MAX);
        let r = s.c.recv().expect("SETSTAT reply");
        assert_eq!(r.id(), Some(trunc));
        assert_status(&r, SSH_FX_OK);
        assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 100);
        s.close(&h);
        s.finish();
    }
}

/// Opens `name` for reading and sends `n` READs of 64 KiB from its start without
/// reading their replies: the handle and the READs' ids.
fn open_and_send_reads(s: &mut Session, name: &[u8], n: u64) -> (Vec<u8>, Vec<u32>) {
    let h = s.handle(Request::Open {
        path: name,
        pflags: SSH_FXF_READ,
        attrs: Attrs::none(),
    });
    let ids = (0..n)
        .map(|i| {
            s.c.send(&Request::Read {
                handle: &h,
                offset: i * READ_LEN as u64,
                len: READ_LEN,
            })
        })
        .collect();
    (h, ids)
}

/// Reads the replies to READs of 64 KiB at offsets 0, 64 Ki, ...: each is the file's
/// original bytes, or (served after the file was cut to `cut` bytes) what is left.
#[track_caller]
fn check_reads_after_truncation(s: &mut Session, ids: &[u32], content: &[u8], cut: usize) {
    for (i, &id) in ids.iter().enumerate() {
        let r = s.c.recv().expect("READ reply");
        assert_eq!(r.id(), Some(id));
        let off = i * READ_LEN as usize;
        let whole = &content[off..off + READ_LEN as usize];
        match r {
            Reply::Data { data, .. } if data.len() == whole.len() => {
                assert_same_bytes(&data, whole, "READ reply")
            }
            Reply::Data { data, .. } => {
                let end = cut.min(content.len());
                assert!(off < end, "short DATA past the cut: {} bytes", data.len());
                assert_same_bytes(&data, &content[off..end], "READ reply after the cut")
            }
            other => {
                assert!(off >= cut, "READ {i}: {other:?}");
                assert_status(&other, SSH_FX_EOF);
            }
        }
    }
}

/// A READ of 32 KiB from a FIFO returns what a writer put there. OpenSSH's server
/// refuses every READ on a FIFO (its lseek fails): a named difference.
#[test]
fn pipeline_large_read_from_a_fifo() {
    for args in modes() {
        let dir = Scratch::new("pipe-fifo");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let data = crate::support::content::pseudo_random(7, 40_000);
        let writer = {
            let fifo = fifo.clone();
            let data = data.clone();
            // Its open returns once the server holds the reading end; the pipe then
            // takes all 40,000 bytes before anybody reads.
            std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
        };
        let mut s = start(dir.path(), &args);
        let h = s.handle(Request::Open {
            path: b"fifo",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        });
        writer.join().unwrap();
        let r = s.call(Request::Read {
            handle: &h,
            offset: 0,
            len: 32768,
        });
        if testing_openssh() {
            assert_status(&r, SSH_FX_FAILURE);
        } else {
            match r {
                Reply::Data { data: got, .. } => assert_same_bytes(&got, &data[..32768], "FIFO"),
                other => panic!("expected DATA, got {other:?}"),
            }
            let rest = s.read(&h, 32768, 32768);
            assert_same_bytes(&rest, &data[32768..], "FIFO rest");
        }
        s.close(&h);
        s.finish();
    }
}
