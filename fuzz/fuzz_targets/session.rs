//! A whole session in-process: INIT, then the packet bodies of the input (format in
//! `split_session_input`, tests/props/packets.rs: a five-byte settings header, then
//! u16-length-prefixed bodies) through one `Session`, in a fresh directory for each
//! input. Every packet must get exactly one well-framed reply of a type its request
//! may have, carrying its id, or end the session with nothing written; nothing may
//! panic.
//!
//! Replies take the server's real way out: a Unix socketpair, with READ data spliced
//! through the pipe as `--zero-copy-reads` does, and the transport's wait for the
//! client before a request that changes a file. A thread plays the client, reading
//! everything the server sends; each packet's replies are checked as they arrive.
//!
//! # Keeping the session in its directory
//!
//! The server acts on the paths it is sent, absolute ones included, with the full
//! rights of this process (root here). So every path in a packet, symlink targets
//! included, is rewritten to a relative path without `..` before the session sees it
//! (`confine`, tests/props/session.rs, which says why that is enough).
//!
//! A chroot(2) into the directory would be simpler, but libFuzzer goes on reading
//! and writing files by path while it runs (seed inputs, new corpus entries, crash
//! inputs under fuzz/); inside a chroot those would fail, a crash input silently.
//! For the same reason the working directory is the session's only while an input
//! runs, and is restored before a failed check aborts.
//!
//! The rest of the harm a session could do is size: files are capped at 1 MiB by
//! RLIMIT_FSIZE (SIGXFSZ ignored, so a write past it is an EFBIG error), which also
//! bounds a copy-data from a large sparse file, and the directory is removed and made
//! anew for every input (and removed when the process exits normally).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sftp_server::output::{Out, Piece, Pipe};
use sftp_server::server::{Flow, Session};
use sftp_server::transport::Transport;
use sftp_server::wire::Request;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

#[path = "../../tests/props/packets.rs"]
mod packets;
#[path = "../../tests/props/session.rs"]
mod session;
use packets::*;
use session::*;
#[path = "scratch.rs"]
mod scratch;

static BASE: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch directory (see `scratch`), made on first use.
fn base() -> &'static Path {
    BASE.get_or_init(|| scratch::make("session", remove_base))
}

extern "C" fn remove_base() {
    if let Some(base) = BASE.get() {
        scratch::leave();
        remove_tree(base);
    }
}

/// A fresh session directory (made anew, see `populate`) as the working directory.
fn fresh_dir() {
    let base = base();
    std::env::set_current_dir(base).expect("cd to the scratch directory");
    let w = base.join("w");
    remove_tree(&w);
    std::fs::create_dir(&w).expect("mkdir w");
    populate(&w);
    std::env::set_current_dir(&w).expect("cd to the session directory");
}

/// What the client thread has read and not yet taken.
type Received = Arc<(Mutex<Vec<u8>>, Condvar)>;

/// The server's end of the socketpair (kept for the life of the process) and what
/// the client thread at the other end has read.
struct Wire {
    server: BorrowedFd<'static>,
    received: Received,
}

fn wire() -> &'static Wire {
    static WIRE: OnceLock<Wire> = OnceLock::new();
    WIRE.get_or_init(|| {
        let (server, mut client) = UnixStream::pair().expect("socketpair");
        let server: &'static OwnedFd = Box::leak(Box::new(OwnedFd::from(server)));
        let received: Received = Arc::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = client.read(&mut buf) {
                let (lock, more) = &*sink;
                lock.lock().unwrap().extend_from_slice(&buf[..n]);
                more.notify_all();
            }
        });
        Wire {
            server: server.as_fd(),
            received,
        }
    })
}

/// Bytes (and spliced data) waiting in `out`.
fn pending(out: &Out) -> usize {
    out.pieces()
        .map(|p| match p {
            Piece::Bytes(b) => b.len(),
            Piece::Pipe(n) => n,
        })
        .sum()
}

/// Sends what `out` holds and returns it as the client received it.
fn deliver(transport: &mut Transport, out: &mut Out, received: &Received) -> Vec<u8> {
    let n = pending(out);
    transport.send(out).expect("send the replies");
    let (lock, more) = &**received;
    let mut got = lock.lock().unwrap();
    while got.len() < n {
        got = more.wait(got).unwrap();
    }
    assert_eq!(got.len(), n, "the client received more than was sent");
    std::mem::take(&mut *got)
}

fuzz_target!(|data: &[u8]| {
    let (header, bodies) = split_session_input(data);
    fresh_dir();
    let wire = wire();
    let mut session = Session::new(config(header));
    let mut out = Out::new(1 << 20, Pipe::for_socket(wire.server));
    let mut transport = Transport::new(wire.server);
    let init = encode(&Request::Init { version: 3 });
    let flow = session.handle_packet(&init, &mut out, Some(&mut transport));
    assert_eq!(flow, Flow::Continue);
    check_reply(&init, &deliver(&mut transport, &mut out, &wire.received));
    let mut handles = Handles::default();
    for body in bodies {
        let body = confine(body);
        let flow = session.handle_packet(&body, &mut out, Some(&mut transport));
        let replies = deliver(&mut transport, &mut out, &wire.received);
        match flow {
            Flow::Continue => {
                check_reply(&body, &replies);
                handles.check(&body, &replies);
            }
            Flow::Exit(_) => {
                assert!(replies.is_empty(), "a reply before the session ended");
                break;
            }
        }
    }
    session.close_all();
    scratch::leave();
});
