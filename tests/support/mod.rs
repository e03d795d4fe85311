//! Shared helpers for the integration tests: where the binary is, scratch directories,
//! and starting the server on a Unix socketpair as sshd and `sftp -D` do.
#![allow(dead_code)]

pub mod clients;
pub mod content;
pub mod procs;

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server under test: `SFTP_SERVER_BIN` if set, else the binary this crate built.
pub fn server_bin() -> PathBuf {
    match std::env::var_os("SFTP_SERVER_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_sftp-server")),
    }
}

/// True when the tests run against OpenSSH's own server rather than ours.
pub fn testing_openssh() -> bool {
    std::env::var_os("SFTP_SERVER_BIN").is_some()
}

/// A directory under the system temp dir, removed (with its contents) on drop.
pub mod raw;
pub mod session;
pub mod status;

pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "sftp-server-test-{}-{}-{}",
            tag,
            std::process::id(),
            n
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SFTP_TEST_KEEP=1 keeps scratch directories, to look at what a test left.
        if std::env::var_os("SFTP_TEST_KEEP").is_some_and(|v| v != "0") {
            eprintln!("kept {}", self.path.display());
            return;
        }
        // Tests may leave read-only directories behind; make everything writable first.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(&self.path)
            .status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server process whose stdin and stdout are one end of a Unix socketpair.
pub struct Server {
    pub child: Child,
    pub sock: UnixStream,
}

impl Server {
    /// Starts the server under test in `cwd` with `args`; stderr is inherited.
    pub fn spawn(cwd: &Path, args: &[&str]) -> Server {
        Self::spawn_with(server_bin().as_path(), cwd, args, Stdio::inherit())
    }

    pub fn spawn_with(bin: &Path, cwd: &Path, args: &[&str], stderr: Stdio) -> Server {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let stdin = theirs.try_clone().expect("dup socket");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(stderr);
        // Keep the server out of the test's process group signals.
        cmd.process_group(0);
        let child = cmd.spawn().expect("spawn server");
        Server { child, sock: ours }
    }

    /// Closes our end and waits for the exit status (bounded: kills after 10 s).
    pub fn finish(mut self) -> std::process::ExitStatus {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        wait_bounded(&mut self.child, std::time::Duration::from_secs(10))
    }
}

/// Waits for `child` for at most `limit`, killing it if it is still running then.
pub fn wait_bounded(child: &mut Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let st = child.wait().expect("wait");
            panic!(
                "process {} did not exit within {:?}: {:?}",
                child.id(),
                limit,
                st
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
