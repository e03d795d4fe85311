//! OpenSSH's `sftp` client driven in batch mode (`-b FILE`), connected to the server
//! under test directly (`-D`), through a TCP or Unix-socket relay, or through sshd.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::procs::run_bounded;
use super::{Scratch, server_bin};

/// A scratch directory laid out for client/server tests:
/// `remote/` is the server's working directory, `local/` the client's files,
/// `ctl/` batch files, keys, logs and sockets (kept out of the server's listings).
pub struct Workspace {
    pub remote: PathBuf,
    pub local: PathBuf,
    pub ctl: PathBuf,
    scratch: Scratch,
}

impl Workspace {
    pub fn new(tag: &str) -> Workspace {
        let scratch = Scratch::new(tag);
        let sub = |name: &str| {
            let p = scratch.path().join(name);
            std::fs::create_dir(&p).expect("create workspace dir");
            p
        };
        Workspace {
            remote: sub("remote"),
            local: sub("local"),
            ctl: sub("ctl"),
            scratch,
        }
    }

    pub fn root(&self) -> &Path {
        self.scratch.path()
    }

    /// `sftp -D <server under test>`, run in (and so serving) `remote/`.
    pub fn direct(&self) -> SftpClient {
        SftpClient::new(&self.remote, &self.ctl)
            .arg("-D")
            .arg(server_command())
    }
}

/// The server under test as one `sftp -D` argument. sftp splits that argument into
/// words itself (honouring quotes) and runs it without a shell, so quote the path.
pub fn server_command() -> String {
    sftp_quote(&server_bin())
}

/// `path` quoted for an sftp batch line or `-D` argument (both split words the same
/// way: double quotes group, backslash escapes). Panics on a non-UTF-8 path: tests
/// that want such names build their lines from bytes.
pub fn sftp_quote(path: &Path) -> String {
    let s = path.to_str().expect("UTF-8 path");
    let mut q = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The lines of an sftp batch file; they may hold any bytes but newline.
#[derive(Default)]
pub struct Batch {
    text: Vec<u8>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn cmd(mut self, line: impl AsRef<[u8]>) -> Batch {
        let line = line.as_ref();
        assert!(!line.contains(&b'\n'), "one command per line");
        self.text.extend_from_slice(line);
        self.text.push(b'\n');
        self
    }
}

/// One `sftp -b` invocation, ready to run a batch.
pub struct SftpClient {
    cwd: PathBuf,
    ctl: PathBuf,
    args: Vec<OsString>,
    destination: Option<String>,
    limit: Duration,
}

impl SftpClient {
    /// A client started in `cwd`, keeping its batch files in `ctl`.
    pub fn new(cwd: &Path, ctl: &Path) -> SftpClient {
        SftpClient {
            cwd: cwd.to_path_buf(),
            ctl: ctl.to_path_buf(),
            args: Vec::new(),
            destination: None,
            limit: Duration::from_secs(60),
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> SftpClient {
        self.args.push(a.into());
        self
    }

    /// The `[user@]host` to connect to through ssh (the last argument); none with -D.
    pub fn destination(mut self, dest: &str) -> SftpClient {
        self.destination = Some(dest.to_string());
        self
    }

    /// Kills the client (and what it started) after `limit`; 60 s unless set.
    pub fn limit(mut self, limit: Duration) -> SftpClient {
        self.limit = limit;
        self
    }

    /// Writes `batch` to a file and runs `sftp <args> -b FILE`, bounded in time.
    pub fn run(&self, batch: &Batch) -> SftpRun {
        static N: AtomicU32 = AtomicU32::new(0);
        let file = self
            .ctl
            .join(format!("batch-{}", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&file, &batch.text).expect("write batch file");
        let mut cmd = Command::new("sftp");
        cmd.args(&self.args)
            .arg("-b")
            .arg(&file)
            .args(&self.destination)
            .current_dir(&self.cwd)
            // Plain ASCII output: non-UTF-8 names are shown as octal escapes.
            .env("LC_ALL", "C");
        let f = run_bounded(&mut cmd, self.limit);
        SftpRun {
            status: f.status,
            stdout: String::from_utf8_lossy(&f.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&f.stderr).into_owned(),
            batch: String::from_utf8_lossy(&batch.text).into_owned(),
        }
    }
}

/// What one batch run did.
pub struct SftpRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    batch: String,
}

impl SftpRun {
    /// Panics unless sftp exited 0 (every command in the batch succeeded).
    #[track_caller]
    pub fn ok(self) -> SftpRun {
        assert!(self.status.success(), "sftp batch failed\n{self}");
        self
    }

    /// Panics unless sftp exited non-zero (some command failed and ended the batch).
    #[track_caller]
    pub fn failed(self) -> SftpRun {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "sftp batch should have failed\n{self}"
        );
        self
    }
}

impl SftpRun {
    /// What sftp printed on stdout after echoing batch command `cmd` (as `sftp> cmd`)
    /// and before the next command; panics if `cmd` was not echoed.
    #[track_caller]
    pub fn output_of(&self, cmd: &str) -> String {
        let echo = format!("sftp> {cmd}");
        let mut lines = self.stdout.lines().skip_while(|l| *l != echo);
        assert!(lines.next().is_some(), "no `{echo}` in output\n{self}");
        lines
            .take_while(|l| !l.starts_with("sftp> "))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl fmt::Display for SftpRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status: {}\n--- batch\n{}--- stdout\n{}--- stderr\n{}",
            self.status, self.batch, self.stdout, self.stderr
        )
    }
}

/// One line of `ls -l` output.
#[derive(Debug, Clone, PartialEq)]
pub struct LsEntry {
    pub perms: String,
    pub size: u64,
    pub name: String,
}

/// The entries of `ls -l` listings in sftp's output: lines of the form
/// `perms links owner group size month day time-or-year name`.
pub fn parse_ls_long(stdout: &str) -> Vec<LsEntry> {
    stdout
        .lines()
        .filter(|l| !l.starts_with("sftp>"))
        .filter_map(|line| {
            let (fields, name) = split_fields(line, 8)?;
            let size = fields[4].parse().ok()?;
            let kind = fields[0].chars().next()?;
            if !"-dlcbps".contains(kind) || name.is_empty() {
                return None;
            }
            Some(LsEntry {
                perms: fields[0].to_string(),
                size,
                name: name.to_string(),
            })
        })
        .collect()
}

/// The first `n` whitespace-separated fields of `line` and the rest after them.
fn split_fields(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut fields = Vec::with_capacity(n);
    let mut rest = line.trim_start();
    while fields.len() < n {
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Some((fields, rest))
}
