//! Starting a server with its stdin and stdout on a socketpair (as sshd and `sftp -D`
//! do) or on two pipes, and collecting its CPU time and peak RSS.

use crate::client::{Conn, Result};
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{Pid, pipe2};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A server under test: a program and its extra arguments.
#[derive(Debug, Clone)]
pub struct Server {
    pub label: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// How the server's stdin and stdout are connected to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Socketpair,
    Pipes,
}

/// What a server process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system time, from `wait4`.
    pub cpu: Duration,
    /// Peak resident set size (`VmHWM`), KiB.
    pub maxrss_kib: u64,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

impl Exit {
    /// The status a wrapper should exit with to pass this on.
    pub fn as_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// A running server and the client end of its connection.
pub struct Session {
    pid: Pid,
    pub conn: Conn,
}

/// Starts `server` in `dir`.
pub fn start(server: &Server, dir: &Path, transport: Transport) -> Result<Session> {
    let sys = |what: &str, e: nix::Error| format!("{what}: {e}");
    let (ours_r, ours_w, stdin, stdout) = match transport {
        Transport::Socketpair => {
            let (client, child) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| sys("socketpair", e))?;
            let client2 = client.try_clone().map_err(|e| format!("dup: {e}"))?;
            let child2 = child.try_clone().map_err(|e| format!("dup: {e}"))?;
            (client, client2, child, child2)
        }
        Transport::Pipes => {
            let (stdin_r, stdin_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| sys("pipe", e))?;
            let (stdout_r, stdout_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| sys("pipe", e))?;
            (stdout_r, stdin_w, stdin_r, stdout_w)
        }
    };
    let child = Command::new(&server.program)
        .args(&server.args)
        .current_dir(dir)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", server.program.display()))?;
    // The Command, and with it the child's ends, is gone: EOF works both ways.
    let pid = Pid::from_raw(child.id() as i32);
    let conn = match Conn::new(ours_r, ours_w) {
        Ok(c) => c,
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = wait(pid);
            return Err(e);
        }
    };
    Ok(Session { pid, conn })
}

impl Session {
    /// The server's memory now, from `/proc/PID/smaps_rollup`.
    pub fn memory(&self) -> Option<Memory> {
        memory(self.pid)
    }

    /// Closes the connection and waits for the server, which must exit with status 0.
    pub fn finish(self) -> Result<Usage> {
        let Session { pid, conn } = self;
        // The work is done and the server idles in read: its peak is in.
        let maxrss_kib = peak_rss_kib(pid).unwrap_or(0);
        drop(conn);
        let (exit, cpu) = wait(pid)?;
        if exit != Exit::Code(0) {
            return Err(format!("the server ended with {exit}"));
        }
        Ok(Usage { cpu, maxrss_kib })
    }

    /// Ends the server after a failed run.
    pub fn abort(self) {
        let Session { pid, conn } = self;
        drop(conn);
        let _ = kill(pid, Signal::SIGKILL);
        let _ = wait(pid);
    }
}

/// The peak resident set size of a live process since its exec (`VmHWM`), KiB.
///
/// Not `ru_maxrss`: Linux carries the high-water mark of the memory the process had
/// before exec (its parent's, after fork) into it, so a child of a big benchmark
/// process would report the benchmark's size.
fn peak_rss_kib(pid: Pid) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's memory, KiB: resident (Rss), and proportional (Pss: each page
/// shared with other processes counted as its share), in all, anonymous and
/// file-backed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
    pub pss_anon: u64,
    pub pss_file: u64,
}

fn memory(pid: Pid) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mut m = Memory::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let field = match words.next()? {
            "Rss:" => &mut m.rss,
            "Pss:" => &mut m.pss,
            "Pss_Anon:" => &mut m.pss_anon,
            "Pss_File:" => &mut m.pss_file,
            _ => continue,
        };
        *field = words.next()?.parse().ok()?;
    }
    Some(m)
}

/// Reaps `pid`; returns how it ended and its user plus system time.
fn wait(pid: Pid) -> Result<(Exit, Duration)> {
    Ok(wait4(pid, true)?.expect("a blocking wait4 returns the child"))
}

/// `wait4`, which reports the usage of that one child; `None` if `block` is false
/// and the child is still running.
fn wait4(pid: Pid, block: bool) -> Result<Option<(Exit, Duration)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero is a valid `rusage` (plain integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let options = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types.
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, options, &mut ru) };
        if r == pid.as_raw() {
            break;
        }
        if r == 0 && !block {
            return Ok(None);
        }
        let e = nix::Error::last();
        if r == -1 && e == nix::Error::EINTR {
            continue;
        }
        return Err(format!("wait4({pid}): {e}"));
    }
    let exit = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Some((exit, tv(ru.ru_utime) + tv(ru.ru_stime))))
}

/// The wrapper the `sftp -D` workloads start instead of the server: runs the server
/// with the same stdin, stdout and stderr, samples its peak RSS until it exits, then
/// writes its usage and exit to `report` and exits as it did. Arguments:
/// `report program [args...]`.
pub fn wrapper_main(args: &[String]) -> ! {
    let [report, program, rest @ ..] = args else {
        eprintln!("wrapper: report file and program expected");
        std::process::exit(2);
    };
    // spawn() returns once the child has exec'd, so every sample is the server's.
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wrapper: {program}: {e}");
            std::process::exit(127);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let mut maxrss_kib = 0;
    let ended = loop {
        // VmHWM only grows; the last sample before exit is the peak, give or take
        // the last interval.
        if let Some(kib) = peak_rss_kib(pid) {
            maxrss_kib = maxrss_kib.max(kib);
        }
        match wait4(pid, false) {
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Ok(Some(ended)) => break ended,
            Err(e) => {
                eprintln!("wrapper: {e}");
                std::process::exit(2);
            }
        }
    };
    let (exit, cpu) = ended;
    let line = format!("{} {} {}\n", cpu.as_micros(), maxrss_kib, exit.as_code());
    if let Err(e) = std::fs::write(report, line) {
        eprintln!("wrapper: {report}: {e}");
        std::process::exit(2);
    }
    std::process::exit(exit.as_code());
}

/// Reads what [`wrapper_main`] wrote.
pub fn read_wrapper_report(path: &Path) -> Result<(Exit, Usage)> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: malformed usage report {text:?}", path.display());
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse::<i64>().map(|v| v as u64))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let [cpu_us, maxrss_kib, code] = fields[..] else {
        return Err(bad());
    };
    let code = code as i64 as i32;
    let exit = if code > 128 {
        Exit::Signal(code - 128)
    } else {
        Exit::Code(code)
    };
    Ok((
        exit,
        Usage {
            cpu: Duration::from_micros(cpu_us),
            maxrss_kib,
        },
    ))
}
