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

/// RLIMIT_FSIZE for the fuzzing process: the largest file a session can make.
const MAX_FILE: u64 = 1 << 20;

static BASE: OnceLock<PathBuf> = OnceLock::new();
/// The working directory libFuzzer started in, restored after every input: it
/// reads corpus files by the paths it was given, relative ones too.
static HOME: OnceLock<PathBuf> = OnceLock::new();

/// Where the scratch directory goes: `SFTP_FUZZ_DIR`, else /dev/shm (a tmpfs: on a
/// disk, making and removing the directory for every input dominates the run time),
/// else the temp dir.
fn scratch_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("SFTP_FUZZ_DIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// This process's scratch directory, made (and the limits set) on first use.
fn base() -> &'static Path {
    BASE.get_or_init(|| {
        HOME.set(std::env::current_dir().expect("the working directory"))
            .unwrap();
        // A failed check aborts the process from libFuzzer's panic hook: go back to
        // where relative paths (a relative -artifact_prefix) were meant first.
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            leave_session_dir();
            libfuzzer_hook(info)
        }));
        let base = scratch_parent().join(format!("sftp-server-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).expect("create the scratch directory");
        let limit = libc::rlimit {
            rlim_cur: MAX_FILE,
            rlim_max: MAX_FILE,
        };
        // SAFETY: plain libc calls with valid arguments; `remove_base` is a valid
        // `extern "C" fn()`.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            libc::atexit(remove_base);
        }
        base
    })
}

fn leave_session_dir() {
    if let Some(home) = HOME.get() {
        let _ = std::env::set_current_dir(home);
    }
}

extern "C" fn remove_base() {
    if let Some(base) = BASE.get() {
        leave_session_dir();
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
    leave_session_dir();
});
