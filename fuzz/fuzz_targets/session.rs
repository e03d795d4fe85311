//! A whole session in-process: INIT, then the packet bodies of the input (format in
//! `split_session_input`, tests/props/packets.rs: a five-byte settings header, then
//! u16-length-prefixed bodies) through one `Session`, in a fresh directory for each
//! input. Every packet must get exactly one well-framed reply of a type its request
//! may have, carrying its id, or end the session with nothing written; nothing may
//! panic.
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
use sftp_server::output::Out;
use sftp_server::server::{Flow, Session};
use sftp_server::wire::Request;
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

fuzz_target!(|data: &[u8]| {
    let (header, bodies) = split_session_input(data);
    fresh_dir();
    let mut session = Session::new(config(header));
    let mut out = Out::default();
    let init = encode(&Request::Init { version: 3 });
    assert_eq!(session.handle_packet(&init, &mut out), Flow::Continue);
    check_reply(&init, out.as_bytes());
    out.clear();
    let mut handles = Handles::default();
    for body in bodies {
        let body = confine(body);
        match session.handle_packet(&body, &mut out) {
            Flow::Continue => {
                check_reply(&body, out.as_bytes());
                handles.check(&body, out.as_bytes());
            }
            Flow::Exit(_) => {
                assert!(out.is_empty(), "a reply before the session ended");
                break;
            }
        }
        out.clear();
    }
    session.close_all();
    scratch::leave();
});
