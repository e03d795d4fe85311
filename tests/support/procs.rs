//! Starting, bounding and stopping the external programs the end-to-end tests drive
//! (sftp, sshd, ncat, socat): every child is waited for with a time limit, and every
//! long-running one is stopped by its process id when its guard is dropped.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What a finished (or killed) short-lived program printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` with stdin closed and its output captured, killing its whole process
/// group if it runs longer than `limit` (then panics with what it printed so far).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Finished {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout also stops the helpers it started
        // (ssh, ncat, the server under test).
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if start.elapsed() > limit {
            timed_out = true;
            // Not yet reaped, so the process group id is still ours.
            let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
            break child.wait().expect("wait");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    if timed_out {
        panic!(
            "{:?} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
            cmd.get_program(),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    Finished {
        status,
        stdout,
        stderr,
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A long-running program (sshd, ncat, socat) with its output going to a log file.
/// Dropping it stops it: SIGTERM to its process id, SIGKILL if it lingers.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open daemon log");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits (bounded by `limit`) until `ready` returns true, polling; false if the
    /// program exits first or the time runs out.
    pub fn wait_ready(&mut self, limit: Duration, mut ready: impl FnMut(&Daemon) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.exited().is_some() {
                return false;
            }
            if ready(self) {
                return true;
            }
            thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Stops it by its process id and reaps it; idempotent.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // Still unreaped, so the pid cannot have been reused.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} (pid {}) ignored SIGTERM; killing it", self.name, pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            // The test failed: what the daemon said is likely to tell why.
            eprintln!(
                "--- {} log ({})\n{}",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, and that no other test in
/// this process has been given (so a connection probe cannot reach another test's
/// listener).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

pub fn tcp_connectable(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub fn unix_connectable(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// Starts a daemon on a free loopback TCP port and waits until `ready` says it
/// listens. `start` spawns it for a given port; if somebody else took that port in the
/// meantime the daemon exits, and another port is tried.
pub fn start_on_free_port(
    name: &str,
    mut start: impl FnMut(u16) -> Daemon,
    mut ready: impl FnMut(&Daemon, u16) -> bool,
) -> (Daemon, u16) {
    let mut logs = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut d = start(port);
        if d.wait_ready(Duration::from_secs(20), |d| ready(d, port)) {
            return (d, port);
        }
        d.stop();
        logs.push_str(&format!("--- port {port}\n{}\n", d.log()));
    }
    panic!("{name} never listened on a loopback port\n{logs}");
}

/// Runs `program args...` bounded in time, panicking unless it succeeds.
pub fn run_ok<I, S>(program: &str, args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let f = run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(
        f.status.success(),
        "{cmd:?} failed: {}\n{}",
        f.status,
        String::from_utf8_lossy(&f.stderr)
    );
    f
}
