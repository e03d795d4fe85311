//! README's recipes, run as written: each test takes the code block that follows a
//! `<!-- recipe: NAME -->` marker in README.md, replaces the placeholders (the server's
//! path, `/srv/share`, ports, socket paths, `alice@host`) with its own, and runs the
//! lines with `sh -c`, on loopback, with the real programs: sshfs with FUSE, a real
//! sshd forwarding a Unix socket (driven through a pseudo-terminal for `~C`), xinetd,
//! systemd's units through `systemd-socket-activate`, HAProxy in front of two sshds.
//! Against OpenSSH's server (`SFTP_SERVER_BIN`), `--root DIR` becomes `-d DIR` and
//! sshfs mounts that directory by its path.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::clients::Workspace;
use crate::support::content::{MIB, write_random_file};
use crate::support::procs::{Daemon, Finished, run_bounded};
use crate::support::readme_block;
use crate::support::{server_bin, testing_openssh};

mod haproxy;
mod read_only;
mod ssh;
mod sshfs;
mod systemd;
mod xinetd;

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// README's block `name` with each `(placeholder, value)` replaced, all in one pass
/// (a value, such as a scratch path holding the process id, is never searched for
/// the next placeholder; where two start at one place the first listed wins). Every
/// placeholder must be in the block, so a README edit cannot leave one unreplaced.
fn recipe(name: &str, subs: &[(String, String)]) -> String {
    let block = readme_block(name);
    for (from, _) in subs {
        assert!(
            block.contains(from.as_str()),
            "README recipe `{name}` no longer contains {from:?}:\n{block}"
        );
    }
    let mut text = String::new();
    let mut rest = block.as_str();
    while let Some(c) = rest.chars().next() {
        match subs
            .iter()
            .find(|(from, _)| rest.starts_with(from.as_str()))
        {
            Some((from, to)) => {
                text.push_str(to);
                rest = &rest[from.len()..];
            }
            None => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    text
}

/// The shell commands of a block: continuation lines joined, comments and blank
/// lines dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "block ends in a continuation line");
    out
}

/// The `N` commands of README's block `name`, substituted.
pub(crate) fn recipe_commands<const N: usize>(
    name: &str,
    subs: &[(String, String)],
) -> [String; N] {
    let cmds = commands(&recipe(name, subs));
    cmds.try_into().unwrap_or_else(|c: Vec<String>| {
        panic!("recipe `{name}` has {} commands, not {N}: {c:#?}", c.len())
    })
}

pub(crate) fn s(from: &str, to: impl AsRef<str>) -> (String, String) {
    (from.to_string(), to.as_ref().to_string())
}

pub(crate) fn path_str(p: &Path) -> &str {
    let s = p.to_str().expect("UTF-8 path");
    assert!(
        !s.contains(char::is_whitespace),
        "{s:?}: ncat -e splits on spaces"
    );
    s
}

/// The placeholders for the server: its path, and `--root /srv/share` as `share`
/// (OpenSSH's server has no `--root`: its `-d` starts it there instead).
pub(crate) fn server_subs(share: &Path) -> Vec<(String, String)> {
    let share = path_str(share);
    let mut subs = Vec::new();
    if testing_openssh() {
        subs.push(s("--root /srv/share", format!("-d {share}")));
    }
    subs.push(s("/usr/local/libexec/sftp-server", path_str(&server_bin())));
    subs.push(s("/srv/share", share));
    subs
}

/// `sh -c command` in `cwd`, with plain ASCII messages.
pub(crate) fn shell(command: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env("LC_ALL", "C");
    cmd
}

/// Runs a recipe's command to its end (bounded), panicking unless it succeeds.
#[track_caller]
pub(crate) fn run_line(command: &str, cwd: &Path) -> Finished {
    let f = run_bounded(&mut shell(command, cwd), LIMIT);
    assert!(
        f.status.success(),
        "`{command}` failed: {}\n--- stdout\n{}--- stderr\n{}",
        f.status,
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    );
    f
}

/// Starts a recipe's long-running command (a listener); `exec` makes the shell's
/// process id the program's, so the guard stops the program itself.
pub(crate) fn daemon_line(name: &str, command: &str, cwd: &Path, log: &Path) -> Daemon {
    Daemon::spawn(name, &mut shell(&format!("exec {command}"), cwd), log)
}

/// A recipe's `sftp -D ...` line run in batch mode: `-b FILE` added after `sftp`.
pub(crate) fn sftp_line(command: &str, cwd: &Path, ctl: &Path, batch: &[String]) -> Finished {
    let rest = command
        .strip_prefix("sftp ")
        .unwrap_or_else(|| panic!("not an sftp line: {command}"));
    let file = ctl.join("batch");
    fs::write(&file, batch.join("\n") + "\n").expect("write batch");
    run_bounded(
        &mut shell(&format!("sftp -b {} {rest}", path_str(&file)), cwd),
        LIMIT,
    )
}

pub(crate) fn text(f: &Finished) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        f.status,
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    )
}

/// Polls `cond` every 25 ms for at most `limit`.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(25));
    }
    cond()
}

/// The children of process `pid` (Linux's `/proc/PID/task/PID/children`).
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The processes whose command line is `program` (by file name) with `arg` among its
/// arguments: how a test finds the sshfs that daemonized itself for its mount point.
pub(crate) fn pids_running(program: &str, arg: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut argv = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
            argv.next()
                .is_some_and(|a0| Path::new(a0.as_ref()).file_name() == Some(program.as_ref()))
                && argv.any(|a| a == arg)
        })
        .collect()
}

pub(crate) fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

/// A program run under a pseudo-terminal by util-linux's `script`, as a person at a
/// terminal runs it: what it prints goes to a log, what the test types goes to the
/// terminal. Dropping it stops `script` and the program by their process ids.
struct Terminal {
    child: Child,
    input: Option<ChildStdin>,
    log: PathBuf,
}

impl Terminal {
    fn start(command: &str, cwd: &Path, log: &Path) -> Terminal {
        let out = fs::File::create(log).expect("create terminal log");
        let child = Command::new("script")
            // -q: no "Script started" lines; -e: its exit status is the program's;
            // the typescript goes nowhere, the terminal's output to the log.
            .args(["-q", "-e", "-c", command, "/dev/null"])
            .current_dir(cwd)
            .env("SHELL", "/bin/sh")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start script");
        let mut t = Terminal {
            input: None,
            child,
            log: log.to_path_buf(),
        };
        t.input = t.child.stdin.take();
        t
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn type_text(&mut self, s: &str) {
        let input = self.input.as_mut().expect("terminal input open");
        input
            .write_all(s.as_bytes())
            .expect("type into the terminal");
        input.flush().expect("flush terminal input");
    }

    #[track_caller]
    fn wait_for(&self, text: &str) {
        assert!(
            eventually(LIMIT, || self.output().contains(text)),
            "the terminal never showed {text:?}:\n{}",
            self.output()
        );
    }

    /// Waits (bounded) for `script` to exit after the program ended.
    #[track_caller]
    fn finish(mut self) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!("the terminal's program did not end:\n{}", self.output());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        drop(self.input.take());
        if thread::panicking() {
            eprintln!("--- terminal ({})\n{}", self.log.display(), self.output());
        }
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // script's child (ssh) runs in a session of its own on the terminal: stop it
        // by its id too, as script lists it now. script is unreaped, so its id is its.
        for pid in children(self.child.id()) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        if !eventually(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().is_some()
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Seeds for this module's content, apart from other modules'.
const SEED: u64 = 0x02ec_19e5;

/// Files for a share: `(name, content)`; the content is also written into `dir`.
pub(crate) fn fill_share(dir: &Path, seed: u64) -> Vec<(String, Vec<u8>)> {
    [("small.txt", 13), ("big.bin", 2 * MIB + 5), ("empty", 0)]
        .into_iter()
        .enumerate()
        .map(|(i, (name, len))| {
            let data = write_random_file(&dir.join(name), seed + i as u64, len);
            (name.to_string(), data)
        })
        .collect()
}

/// The directory a recipe shares (`/srv/share`): `share/` in the workspace, beside
/// `local/` (the client's files) and `ctl/` (logs, certificates, batch files).
pub(crate) fn share(ws: &Workspace) -> PathBuf {
    let share = ws.root().join("share");
    fs::create_dir(&share).expect("create share");
    share
}
