//! Shared helpers for the integration tests: where the binary is, scratch directories,
//! and starting the server on a Unix socketpair as sshd and `sftp -D` do.
#![allow(dead_code)]

pub mod clients;
pub mod content;
pub mod faultfs;
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

pub mod raw;
pub mod session;
pub mod sshd;
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
        Spawn::new(cwd).args(args).start()
    }

    pub fn spawn_with(bin: &Path, cwd: &Path, args: &[&str], stderr: Stdio) -> Server {
        Spawn::new(cwd).bin(bin).args(args).stderr(stderr).start()
    }

    /// Closes our end and waits for the exit status (bounded: kills after 10 s).
    pub fn finish(mut self) -> std::process::ExitStatus {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        wait_bounded(&mut self.child, std::time::Duration::from_secs(10))
    }
}

/// How to start a server on a Unix socketpair (its stdin and stdout one socket, as
/// sshd and `sftp -D` give it): the one place tests spawn a server that way.
pub struct Spawn {
    bin: PathBuf,
    cwd: PathBuf,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    stderr: Option<Stdio>,
    limits: Vec<(nix::sys::resource::Resource, u64)>,
    umask: Option<u32>,
    nonblocking: bool,
    stderr_on_socket: bool,
}

impl Spawn {
    /// The server under test, started in `cwd`, with no arguments, `SSH_CONNECTION`
    /// removed from its environment, and stderr inherited.
    pub fn new(cwd: &Path) -> Spawn {
        Spawn {
            bin: server_bin(),
            cwd: cwd.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            stderr: None,
            limits: Vec::new(),
            umask: None,
            nonblocking: false,
            stderr_on_socket: false,
        }
    }

    pub fn bin(mut self, bin: &Path) -> Spawn {
        self.bin = bin.to_path_buf();
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: &[S]) -> Spawn {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Spawn {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn stderr(mut self, stderr: Stdio) -> Spawn {
        self.stderr = Some(stderr);
        self
    }

    /// Sets `resource`'s soft and hard limits to `value` in the child before it runs.
    pub fn limit(mut self, resource: nix::sys::resource::Resource, value: u64) -> Spawn {
        self.limits.push((resource, value));
        self
    }

    /// Starts the server with this file mode creation mask.
    pub fn umask(mut self, mask: u32) -> Spawn {
        self.umask = Some(mask);
        self
    }

    /// Leaves the socket in non-blocking mode, as a parent may hand it over.
    pub fn nonblocking(mut self) -> Spawn {
        self.nonblocking = true;
        self
    }

    /// Gives the server the connection as its standard error too, as inetd and
    /// xinetd do.
    pub fn stderr_on_socket(mut self) -> Spawn {
        self.stderr_on_socket = true;
        self
    }

    pub fn start(self) -> Server {
        let (child, sock) = self.start_parts();
        Server { child, sock }
    }

    /// The started process and the client's end of the socketpair, for callers that
    /// manage the process themselves.
    pub fn start_parts(self) -> (Child, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        if self.nonblocking {
            theirs.set_nonblocking(true).expect("O_NONBLOCK");
        }
        let stdin = theirs.try_clone().expect("dup socket");
        let stderr = match self.stderr {
            _ if self.stderr_on_socket => Stdio::from(std::os::fd::OwnedFd::from(
                theirs.try_clone().expect("dup socket"),
            )),
            Some(stderr) => stderr,
            None => Stdio::inherit(),
        };
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env_remove("SSH_CONNECTION")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(stderr)
            // Keep the server out of the test's process group signals.
            .process_group(0);
        let limits = self.limits;
        let umask = self.umask;
        if !limits.is_empty() || umask.is_some() {
            // SAFETY: the closure only calls umask(2) and setrlimit(2), which are
            // async-signal-safe, and allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(mask) = umask {
                        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
                    }
                    for &(resource, value) in &limits {
                        nix::sys::resource::setrlimit(resource, value, value)
                            .map_err(std::io::Error::from)?;
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        (child, ours)
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

/// The code block after `<!-- recipe: NAME -->` in README.md, without its fences: the
/// recipes the tests run and the example files the package ships are README's text.
pub fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let marker = format!("<!-- recipe: {name} -->");
    let mut lines = readme.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "README.md has no `{marker}`");
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "`{marker}` is not followed by a code block"
    );
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect()
}
