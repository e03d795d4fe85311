//! The scratch directory the session fuzz targets work in, and the process set-up
//! around it: included by path (`#[path = "scratch.rs"] mod scratch;`).
//!
//! The directory is `<parent>/sftp-server-fuzz-<tag>-<pid>`, the parent being
//! `SFTP_FUZZ_DIR`, else /dev/shm (a tmpfs: on a disk, making and removing trees for
//! every input dominates the run time), else the temp dir. Files are capped at 1 MiB
//! by RLIMIT_FSIZE (SIGXFSZ ignored, so a write past it is an EFBIG error), which also
//! bounds a copy-data from a large sparse file. libFuzzer reads and writes corpus
//! and crash files by paths relative to where it started: that working directory is
//! restored after every input and before a failed check aborts.

use super::session::remove_tree;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// RLIMIT_FSIZE for the fuzzing process: the largest file a session can make.
const MAX_FILE: u64 = 1 << 20;

/// The working directory libFuzzer started in.
static HOME: OnceLock<PathBuf> = OnceLock::new();

/// Makes this process's scratch directory, after removing those of earlier runs of
/// the same target whose process is gone (a crash leaves its directory behind), and
/// sets the process up: the panic hook that restores the working directory, the file
/// size limit, and `at_exit`.
pub fn make(tag: &str, at_exit: extern "C" fn()) -> PathBuf {
    HOME.set(std::env::current_dir().expect("the working directory"))
        .expect("one scratch directory per process");
    let libfuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        libfuzzer_hook(info)
    }));
    let parent = parent();
    let prefix = format!("sftp-server-fuzz-{tag}-");
    remove_stale(&parent, &prefix);
    let base = parent.join(format!("{prefix}{}", std::process::id()));
    remove_tree(&base);
    std::fs::create_dir(&base).expect("create the scratch directory");
    let limit = libc::rlimit {
        rlim_cur: MAX_FILE,
        rlim_max: MAX_FILE,
    };
    // SAFETY: plain libc calls with valid arguments; `at_exit` is a valid
    // `extern "C" fn()`.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        libc::atexit(at_exit);
    }
    base
}

/// The directory libFuzzer started in (the confined target lets it be written).
#[allow(dead_code)]
pub fn home() -> &'static Path {
    HOME.get().expect("the scratch directory is made")
}

/// Back to the directory libFuzzer started in.
pub fn leave() {
    if let Some(home) = HOME.get() {
        let _ = std::env::set_current_dir(home);
    }
}

fn parent() -> PathBuf {
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

/// Scratch directories named `<prefix><pid>` whose process is gone.
fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            remove_tree(&e.path());
        }
    }
}
