//! Fuzz inputs replayed in the normal test run, through the oracles the fuzz targets
//! in fuzz/ use (`props::packets::check_decode`, `props::session::check_reply`):
//! the checked-in seed corpora, and each input a fuzzer has found a problem with, as
//! a test of its own named `fuzz_regression_<what>` holding the input's bytes.
//!
//! A decode input goes to `wire::decode` in-process. A session input goes to the
//! server binary, started in a fresh directory laid out as the fuzz target's
//! (`populate`), with its paths confined the same way (`confine`), its settings
//! header turned into options (`cli_args`), and one reply read per packet.

use crate::props::packets::*;
use crate::props::session::*;
use crate::support::Spawn;
use crate::support::{Scratch, testing_openssh, wait_bounded};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The files of `target`'s corpus: the checked-in seeds, or those under
/// `$FUZZ_CORPUS_DIR/<target>` when that is set (to replay what a fuzzer found).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = std::env::var_os("FUZZ_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
    let dir = root.join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Writes one frame and reads the one reply (with its length), or None when the
/// server ended the session.
fn exchange(sock: &mut UnixStream, body: &[u8]) -> Option<Vec<u8>> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    if let Err(e) = sock.write_all(&frame) {
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "write: {e}");
        return None;
    }
    let mut len = [0u8; 4];
    match sock.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("no reply: {e}"),
    }
    let mut reply = len.to_vec();
    reply.resize(4 + u32::from_be_bytes(len) as usize, 0);
    sock.read_exact(&mut reply[4..])
        .expect("the rest of the reply");
    Some(reply)
}

/// Runs a session fuzz input against the server binary and checks every reply.
fn replay_session(input: &[u8]) {
    let (header, bodies) = split_session_input(input);
    let dir = Scratch::new("fuzz-replay");
    populate(dir.path());
    let (args, nofile) = cli_args(header);
    let mut spawn = Spawn::new(dir.path()).args(&args).stderr(Stdio::null());
    if let Some(n) = nofile {
        spawn = spawn.limit(nix::sys::resource::Resource::RLIMIT_NOFILE, n);
    }
    let (mut child, mut sock) = spawn.start_parts();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let init = encode(&sftp_server::wire::Request::Init { version: 3 });
    let reply = exchange(&mut sock, &init).expect("VERSION");
    check_reply(&init, &reply);
    let mut handles = Handles::default();
    for body in bodies {
        let body = confine(body);
        match exchange(&mut sock, &body) {
            Some(reply) => {
                check_reply(&body, &reply);
                handles.check(&body, &reply);
            }
            None => {
                // The session ends only on a packet with no id to answer.
                let bad = sftp_server::wire::decode(&body).expect_err("ended on a good packet");
                assert_eq!(bad.id, None, "ended on a packet with an id");
                break;
            }
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Both);
    wait_bounded(&mut child, Duration::from_secs(10));
}

#[test]
fn fuzz_regression_decode_seed_corpus() {
    for (path, bytes) in corpus("decode") {
        let r = std::panic::catch_unwind(|| check_decode(&bytes));
        assert!(r.is_ok(), "{}: {bytes:02x?}", path.display());
    }
}

#[test]
fn fuzz_regression_session_seed_corpus() {
    if testing_openssh() {
        return; // the oracle is this server's: OpenSSH ends a session on a bad packet
    }
    for (path, bytes) in corpus("session") {
        let r = std::panic::catch_unwind(|| replay_session(&bytes));
        assert!(r.is_ok(), "{}: {bytes:02x?}", path.display());
    }
}

/// An OPEN whose path ends in one NUL, which the decoder drops: the oracle's path
/// rewriting took the string on the wire for as long as the path and left the NUL
/// behind, so the rewritten packet no longer decoded.
#[test]
fn fuzz_regression_session_path_with_trailing_nul() {
    if testing_openssh() {
        return;
    }
    let input: &[u8] = &[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x15, 0x03, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x00, 0x15, 0x26, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x15, 0x03, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x04, 0x66, 0x69,
        0x4b, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x15, 0x03, 0x00, 0x00,
        0x00, 0x65, 0x10, 0x00, 0x00, 0x04, 0x63, 0x04, 0x6f, 0x70, 0x79, 0x00, 0x00, 0x00, 0x0b,
    ];
    replay_session(input);
}
