//! The administrator's interface: command-line flags, what they do to a session, and
//! the log lines, on stderr and through syslog. Every test runs OpenSSH's own
//! sftp-server and ours the same way and compares them; where OpenSSH's output is
//! fixed text the test also records it, so a test reads as documentation of what
//! OpenSSH does.
//!
//! Each server gets its own scratch directory with identical contents, and only
//! relative paths are sent, so the two transcripts can be compared line by line.
//! SSH_CONNECTION is always set explicitly (or removed) so the tests do not depend on
//! how they were started.

use crate::support::Spawn;
use crate::support::raw::*;
use crate::support::{Scratch, server_bin, testing_openssh, wait_bounded};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// OpenSSH's server, the reference.
const OPENSSH_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// SSH_CONNECTION for sessions whose log lines are compared: without it the two
/// servers name the client differently by design (see admin_session_line_*).
const CONN: &[(&str, &str)] = &[("SSH_CONNECTION", "192.0.2.1 5555 192.0.2.2 22")];
/// The client address the server takes from `CONN`.
const CONN_ADDR: &str = "192.0.2.1";

/// The log message that starts `user`'s session from client address `addr`.
fn session_opened(user: &str, addr: &str) -> String {
    format!("session opened for local user {user} from [{addr}]")
}

/// The log message that ends `user`'s session from client address `addr`.
fn session_closed(user: &str, addr: &str) -> String {
    format!("session closed for local user {user} from [{addr}]")
}

/// How long any one server process may run.
const LIMIT: Duration = Duration::from_secs(10);

/// OpenSSH's usage text (`-h`, unknown flags, missing arguments).
const USAGE: &str = "usage: sftp-server [-ehR] [-d start_directory] [-f log_facility] [-l log_level]\n\
    \t[-P denied_requests] [-p allowed_requests] [-u umask]\n       sftp-server -Q protocol_feature\n";

/// What `-e -d /nonexistent-sftp-dir` logs.
const CHDIR_FAILED: &str =
    "chdir to \"/nonexistent-sftp-dir\" failed: No such file or directory\r\n";

/// What `-Q requests` prints: the request names `-p` and `-P` take.
const REQUEST_NAMES: &str = "open\nclose\nread\nwrite\nlstat\nfstat\nsetstat\nfsetstat\n\
    opendir\nreaddir\nremove\nmkdir\nrmdir\nrealpath\nstat\nrename\nreadlink\nsymlink\n\
    posix-rename\nstatvfs\nfstatvfs\nhardlink\nfsync\nlsetstat\nlimits\nexpand-path\n\
    copy-data\nhome-directory\nusers-groups-by-id\n";

/// The requests only ours has, which `-Q requests` lists after OpenSSH's.
const OWN_REQUEST_NAMES: &str = "check-file\ncopy-file\n";

/// What VERSION advertises for them.
const OWN_EXTENSIONS: [&str; 2] = [
    "check-file=md5,sha1,sha224,sha256,sha384,sha512,crc32",
    "copy-file=1",
];

/// Whether a log line is about one of the requests only ours has (its refusal under
/// a policy, or its leaving VERSION): OpenSSH has no such line to compare with.
fn own_request_line(line: &str) -> bool {
    ["check-file", "copy-file"].iter().any(|n| {
        line.ends_with(&format!(" {n} request"))
            || line.ends_with(&format!(" {n} request in read-only mode"))
            || line.ends_with(&format!("disallowed extension {n}"))
    })
}

// ---------------------------------------------------------------------------------
// The two servers
// ---------------------------------------------------------------------------------

/// One of the two servers being compared.
#[derive(Clone, Debug)]
struct Impl {
    name: &'static str,
    bin: PathBuf,
}

fn openssh() -> Impl {
    let bin = PathBuf::from(OPENSSH_SERVER);
    assert!(
        bin.exists(),
        "{OPENSSH_SERVER} is needed as the reference (package openssh-sftp-server)"
    );
    Impl {
        name: "openssh",
        bin,
    }
}

fn ours() -> Impl {
    Impl {
        name: "ours",
        bin: server_bin(),
    }
}

/// A string for the `'static` tables of expected output.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// What `-e` with `level` prints for a session that ends at once (stdin at EOF).
fn empty_session_log(level: &str) -> &'static str {
    let user = me().name;
    let open = session_opened(&user, "UNKNOWN");
    let close = session_closed(&user, "UNKNOWN");
    leak(match level {
        "INFO" | "VERBOSE" => format!("{open}\r\n{close}\r\n"),
        _ => format!("{open}\r\ndebug1: read eof\r\n{close}\r\n"),
    })
}

/// The current user, as the servers see it.
fn me() -> nix::unistd::User {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("getpwuid")
        .expect("a passwd entry for the current user")
}

/// The name of a scratch file for `imp`'s output `what`.
fn out_file(dir: &Path, imp: &Impl, what: &str) -> PathBuf {
    dir.join(format!("{}.{}", imp.name, what))
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// A command for `bin` with a controlled environment: SSH_CONNECTION only as given.
fn command(bin: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).env_remove("SSH_CONNECTION");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.process_group(0);
    cmd
}

// ---------------------------------------------------------------------------------
// Running the binary for its exit status and output (stdin at EOF)
// ---------------------------------------------------------------------------------

/// What a run printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn new(status: i32, stdout: &str, stderr: &str) -> Outcome {
        Outcome {
            status: Some(status),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
        }
    }
}

/// Runs `imp` with `args` and stdin at end of file, so a server that starts serving
/// ends its session at once.
fn run_cli(imp: &Impl, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let out = out_file(dir, imp, "stdout");
    let err = out_file(dir, imp, "stderr");
    let mut child = command(&imp.bin, dir, args, env)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", imp.bin.display()));
    let status = wait_bounded(&mut child, LIMIT);
    Outcome {
        status: status.code(),
        stdout: read_text(&out),
        stderr: read_text(&err),
    }
}

/// One command line and what OpenSSH's server does with it.
struct CliCase {
    args: Vec<&'static str>,
    openssh: Outcome,
}

fn case(args: &[&'static str], status: i32, stdout: &str, stderr: &str) -> CliCase {
    CliCase {
        args: args.to_vec(),
        openssh: Outcome::new(status, stdout, stderr),
    }
}

/// Runs every case against both servers. Collects every difference (OpenSSH's output
/// against the recorded one, ours against OpenSSH's) and fails once with all of them.
#[track_caller]
/// The one place where ours deliberately differs from OpenSSH on the command line
/// (README.md, "Differences from OpenSSH"): OpenSSH's outcome turned into ours.
/// Exit statuses never differ; only what is printed on stderr.
fn expected_of_ours(args: &[&str], openssh: &Outcome) -> Outcome {
    let mut o = openssh.clone();
    if testing_openssh() {
        return o;
    }
    // A bad -l or -f value: OpenSSH prints its internal code; ours names the value.
    if o.stderr == "Unrecognized internal syslog level code -1\n" {
        o.stderr = format!("Invalid log level \"{}\"\n", last_value(args, 'l'));
    }
    if o.stderr == "Unrecognized internal syslog facility code -1\n" {
        o.stderr = format!("Invalid log facility \"{}\"\n", last_value(args, 'f'));
    }
    if o.stdout == REQUEST_NAMES {
        o.stdout.push_str(OWN_REQUEST_NAMES);
    }
    // The usage shows -m where SUSE's and Red Hat's patched server shows it, and -h
    // adds the list of every option.
    o.stderr = ours_usage(&o.stderr);
    if o.stderr == ours_usage(USAGE) && reaches_help(args) {
        o.stderr.push_str(sftp_server::cli::OPTIONS_HELP);
    }
    o
}

/// Whether getopt reaches `-h` before an option it rejects (the cases here use `-z`
/// as the unknown one).
fn reaches_help(args: &[&str]) -> bool {
    args.iter().find(|a| ["-h", "-z"].contains(a)) == Some(&"-h")
}

/// OpenSSH's usage text as ours prints it: with SUSE's `-m` after `-u`.
fn ours_usage(openssh: &str) -> String {
    openssh.replace("[-u umask]\n", "[-u umask] [-m force_file_dir_perms]\n")
}

/// The value of the last `-X value` or `-Xvalue` in `args`.
fn last_value(args: &[&str], letter: char) -> String {
    let flag = format!("-{letter}");
    let mut value = String::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == flag {
            value = args.get(i + 1).map(|v| v.to_string()).unwrap_or_default();
            i += 1;
        } else if let Some(v) = args[i].strip_prefix(&flag) {
            value = v.to_string();
        }
        i += 1;
    }
    value
}

fn check_cli_cases(tag: &str, cases: &[CliCase]) {
    let scratch = Scratch::new(tag);
    let mut problems = Vec::new();
    for c in cases {
        let reference = run_cli(&openssh(), scratch.path(), &c.args, &[]);
        if reference != c.openssh {
            problems.push(format!(
                "OpenSSH's server changed for {:?}:\n  recorded {:?}\n  now      {:?}",
                c.args, c.openssh, reference
            ));
        }
        let got = run_cli(&ours(), scratch.path(), &c.args, &[]);
        let want = expected_of_ours(&c.args, &reference);
        if got != want {
            problems.push(format!(
                "sftp-server {}\n  OpenSSH: {:?}\n  expected of ours: {:?}\n  ours:    {:?}",
                c.args.join(" "),
                reference,
                want,
                got
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} command lines differ:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------

/// A running server with the test's client on the other end of a socketpair.
struct Session {
    child: Child,
    client: Client,
    /// The working directory, shown as `<ROOT>` in reply summaries.
    root: String,
}

impl Session {
    /// Starts `bin args` in `cwd` with stdin and stdout on a socketpair.
    fn start(
        bin: &Path,
        cwd: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Session {
        let mut spawn = Spawn::new(cwd).bin(bin).args(args).stderr(stderr);
        for (k, v) in env {
            spawn = spawn.env(k, v);
        }
        let (child, sock) = spawn.start_parts();
        Session {
            child,
            client: Client::new(sock),
            root: cwd.display().to_string(),
        }
    }

    /// Starts `imp` with its stderr going to `stderr_file`.
    fn logged(
        imp: &Impl,
        cwd: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stderr_file: &Path,
    ) -> Session {
        let err = fs::File::create(stderr_file).unwrap();
        Session::start(&imp.bin, cwd, args, env, Stdio::from(err))
    }

    /// Sends a request and summarises the reply in words both servers should share.
    fn call(&mut self, req: Request) -> String {
        let reply = self.client.call(&req);
        summary(&reply).replace(&self.root, "<ROOT>")
    }

    /// Sends the extension request `name` with `data`; the reply as `call` gives it.
    fn ext(&mut self, name: &[u8], data: &[u8]) -> String {
        self.call(Request::Extended { name, data })
    }

    /// Sends a request that must return a handle.
    fn handle(&mut self, req: Request) -> Vec<u8> {
        match self.client.call(&req) {
            Reply::Handle { handle, .. } => handle,
            other => panic!("expected a handle for {req:?}, got {other:?}"),
        }
    }

    /// Closes the client's end (EOF for the server) and returns the exit status.
    fn finish(mut self) -> Option<i32> {
        let _ = self.client.sock.shutdown(std::net::Shutdown::Both);
        wait_bounded(&mut self.child, LIMIT).code()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A reply reduced to what both servers must agree on: no handle bytes, no times.
fn summary(reply: &Reply) -> String {
    match reply {
        Reply::Version { version, .. } => format!("VERSION {version}"),
        // Ours deliberately says what failed where OpenSSH says "Failure" (see the
        // protocol tests); that is not what these tests are about.
        Reply::Status {
            code: SSH_FX_FAILURE,
            ..
        } => "STATUS 4 (failure)".to_string(),
        Reply::Status { code, msg, .. } => {
            format!("STATUS {code} {}", String::from_utf8_lossy(msg))
        }
        Reply::Handle { .. } => "HANDLE".to_string(),
        Reply::Data { data, .. } => format!("DATA {:?}", String::from_utf8_lossy(data)),
        Reply::Name { entries, .. } => {
            let mut names: Vec<String> = entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect();
            names.sort();
            format!("NAME {}", names.join(" "))
        }
        Reply::Attrs { attrs, .. } => {
            format!("ATTRS size {} mode {:o}", attrs.size, attrs.permissions)
        }
        Reply::ExtendedReply { .. } => "EXTENDED_REPLY".to_string(),
    }
}

fn status_line(code: u32) -> String {
    let msg = match code {
        SSH_FX_OK => "Success",
        SSH_FX_EOF => "End of file",
        SSH_FX_NO_SUCH_FILE => "No such file",
        SSH_FX_PERMISSION_DENIED => "Permission denied",
        SSH_FX_FAILURE => "Failure",
        SSH_FX_OP_UNSUPPORTED => "Operation unsupported",
        _ => panic!("status {code}"),
    };
    format!("STATUS {code} {msg}")
}

fn perms(mode: u32) -> Attrs {
    Attrs::none().with_permissions(mode)
}

/// The body of an extended request made of two strings (renames, links).
fn two_strings(a: &[u8], b: &[u8]) -> Vec<u8> {
    Buf::new().str(a).str(b).into_vec()
}

fn one_string(a: &[u8]) -> Vec<u8> {
    Buf::new().str(a).into_vec()
}

/// The names in a directory, read with OPENDIR/READDIR/CLOSE, sorted.
fn list_dir(s: &mut Session, path: &[u8]) -> String {
    let h = s.handle(Request::Opendir { path });
    let mut names = Vec::new();
    for _ in 0..100 {
        match s.client.call(&Request::Readdir { handle: &h }) {
            Reply::Name { entries, .. } => {
                names.extend(
                    entries
                        .iter()
                        .map(|e| String::from_utf8_lossy(&e.name).into_owned()),
                );
            }
            Reply::Status {
                code: SSH_FX_EOF, ..
            } => break,
            other => panic!("READDIR: {other:?}"),
        }
    }
    let close = s.call(Request::Close { handle: &h });
    names.sort();
    format!("{} / close {close}", names.join(" "))
}

/// Everything under `root` that a request could change: kind, mode, owner, size,
/// mtime, contents, link targets.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            };
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} uid {} gid {} size {} mtime {}.{} nlink {}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.nlink()
                ),
            );
            if m.is_dir() && !m.file_type().is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// ---------------------------------------------------------------------------------
// Comparing line by line
// ---------------------------------------------------------------------------------

/// A diff of two line lists from their longest common subsequence:
/// "  " both, "- " only OpenSSH's, "+ " only ours.
fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}

/// Fails with a readable diff unless `ours` has exactly OpenSSH's lines.
#[track_caller]
fn assert_same_lines(what: &str, openssh: &[String], ours: &[String]) {
    if openssh != ours {
        panic!(
            "{what}: our lines differ from OpenSSH's (\"- \" OpenSSH only, \"+ \" ours only):\n{}",
            line_diff(openssh, ours)
        );
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Log text made comparable: the scratch root replaced by `<ROOT>`, the numbers of
/// handles by `N`, carriage returns dropped (checked separately), other control
/// characters shown as `\xNN`.
fn mask_log(text: &str, root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    text.lines()
        .map(|l| {
            let l = mask_handle_numbers(&l.replace(&root, "<ROOT>"));
            l.chars()
                .map(|c| match c {
                    '\t' => c.to_string(),
                    c if c.is_control() => format!("\\x{:02x}", c as u32),
                    c => c.to_string(),
                })
                .collect()
        })
        .collect()
}

fn mask_handle_numbers(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("handle ") {
        let (head, tail) = rest.split_at(at + "handle ".len());
        out += head;
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out += "N";
        }
        rest = &tail[digits..];
    }
    out + rest
}

// ---------------------------------------------------------------------------------
// 1. Flags: exit statuses and messages
// ---------------------------------------------------------------------------------

#[test]
fn admin_help_unknown_flag_and_missing_arguments_print_usage() {
    check_cli_cases(
        "admin-usage",
        &[
            case(&["-h"], 1, "", USAGE),
            case(&["-e", "-h"], 1, "", USAGE),
            case(&["-R", "-h", "-e"], 1, "", USAGE),
            case(&["-z"], 1, "", USAGE),
            case(&["-e", "-z"], 1, "", USAGE),
            case(&["-d"], 1, "", USAGE),
            case(&["-e", "-d"], 1, "", USAGE),
            case(&["-l"], 1, "", USAGE),
            case(&["-f"], 1, "", USAGE),
            case(&["-u"], 1, "", USAGE),
            case(&["-p"], 1, "", USAGE),
            case(&["-P"], 1, "", USAGE),
            case(&["-Q"], 1, "", USAGE),
            // getopt stops at the bad flag: nothing after it is looked at.
            case(&["-z", "-Q", "requests"], 1, "", USAGE),
        ],
    );
}

#[test]
fn admin_usage_names_the_program_as_invoked() {
    // OpenSSH prints __progname, the last component of argv[0].
    let scratch = Scratch::new("admin-progname");
    let mut problems = Vec::new();
    for imp in [openssh(), ours()] {
        let link = scratch.path().join(format!("{}-sftpd", imp.name));
        symlink(&imp.bin, &link).unwrap();
        let name = link.file_name().unwrap().to_str().unwrap().to_string();
        let got = run_cli(
            &Impl {
                name: imp.name,
                bin: link.clone(),
            },
            scratch.path(),
            &["-h"],
            &[],
        );
        let mut usage = USAGE.replace("sftp-server", &name);
        if imp.name == "ours" && !testing_openssh() {
            usage = ours_usage(&usage) + sftp_server::cli::OPTIONS_HELP;
        }
        let want = Outcome::new(1, "", &usage);
        if got != want {
            problems.push(format!("{}:\n  want {want:?}\n  got  {got:?}", imp.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn admin_log_level_and_facility_values() {
    // The value check happens when logging is set up after all the flags are read:
    // a bad level always fails; a bad facility only matters when logging to syslog.
    let bad_level = "Unrecognized internal syslog level code -1\n";
    let bad_facility = "Unrecognized internal syslog facility code -1\n";
    check_cli_cases(
        "admin-level",
        &[
            case(&["-l", "bogus"], 1, "", bad_level),
            case(&["-e", "-l", "bogus"], 1, "", bad_level),
            case(&["-l", "DEBUG4"], 1, "", bad_level),
            case(&["-l", ""], 1, "", bad_level),
            case(&["-f", "bogus"], 1, "", bad_facility),
            case(&["-f", "LOCAL8"], 1, "", bad_facility),
            case(&["-e", "-f", "bogus"], 0, "", ""),
            case(&["-l", "bogus", "-f", "bogus"], 1, "", bad_level),
            // Names are case-insensitive.
            case(&["-l", "quiet", "-f", "local7"], 0, "", ""),
            case(&["-e", "-l", "fatal", "-f", "Daemon"], 0, "", ""),
            case(&["-e", "-l", "error", "-f", "user"], 0, "", ""),
            case(
                &["-e", "-l", "debug", "-f", "auth"],
                0,
                "",
                empty_session_log("DEBUG"),
            ),
            case(&["-e", "-l", "DEBUG1"], 0, "", empty_session_log("DEBUG")),
            case(&["-e", "-l", "DEBUG2"], 0, "", empty_session_log("DEBUG")),
            // ERROR is the default; FATAL and QUIET leave out errors.
            case(&["-e", "-d", "/nonexistent-sftp-dir"], 0, "", CHDIR_FAILED),
            case(
                &["-e", "-l", "ERROR", "-d", "/nonexistent-sftp-dir"],
                0,
                "",
                CHDIR_FAILED,
            ),
            case(
                &["-e", "-l", "FATAL", "-d", "/nonexistent-sftp-dir"],
                0,
                "",
                "",
            ),
            case(
                &["-e", "-l", "QUIET", "-d", "/nonexistent-sftp-dir"],
                0,
                "",
                "",
            ),
        ],
    );
}

#[test]
fn admin_umask_values() {
    // A bad umask is fatal (exit 255), but it is found while the flags are being
    // read, before -e takes effect, so the message goes to syslog, not stderr.
    let mut cases = Vec::new();
    for bad in [
        "999", "abc", "077x", "-1", "", "1000", "8", "0x1f", "0o77", "07777",
    ] {
        cases.push(case(&["-u", bad], 255, "", ""));
        cases.push(case(&["-e", "-u", bad], 255, "", ""));
    }
    // strtol(3) in base 8: leading blanks and a sign are accepted.
    for good in ["077", "0", "777", "0777", "22", "+77", " 77"] {
        cases.push(case(&["-e", "-u", good], 0, "", ""));
    }
    check_cli_cases("admin-umask", &cases);
}

#[test]
fn admin_query_requests() {
    check_cli_cases(
        "admin-query",
        &[
            case(&["-Q", "requests"], 0, REQUEST_NAMES, ""),
            case(&["-Q", "REQUESTS"], 0, REQUEST_NAMES, ""),
            // -Q answers as soon as it is read, whatever follows.
            case(&["-Q", "requests", "-z"], 0, REQUEST_NAMES, ""),
            case(
                &["-e", "-l", "DEBUG3", "-Q", "requests"],
                0,
                REQUEST_NAMES,
                "",
            ),
            case(&["-Q", "bogus"], 1, "", "Invalid query type\n"),
            case(&["-Q", ""], 1, "", "Invalid query type\n"),
        ],
    );
}

#[test]
fn admin_allow_and_deny_lists_given_twice_are_fatal() {
    // fatal("Permitted requests already set") / ("Refused requests already set"),
    // logged before -e takes effect, so stderr stays empty.
    check_cli_cases(
        "admin-twice",
        &[
            case(&["-p", "read", "-p", "write"], 255, "", ""),
            case(&["-P", "read", "-P", "write"], 255, "", ""),
            case(&["-e", "-p", "read", "-p", "read"], 255, "", ""),
            case(&["-e", "-P", "read", "-P", "read"], 255, "", ""),
            case(&["-p", "read", "-P", "write"], 0, "", ""),
            // Unknown names in the lists are not an error.
            case(&["-p", "bogus", "-P", "nonsense"], 0, "", ""),
        ],
    );
}

#[test]
fn admin_dash_c_ignores_the_rest_of_the_arguments() {
    check_cli_cases(
        "admin-c",
        &[
            case(&["-c"], 0, "", ""),
            case(&["-c", "junk", "-z"], 0, "", ""),
            case(
                &["-c", "-u", "999", "-l", "bogus", "-p", "a", "-p", "b"],
                0,
                "",
                "",
            ),
            // Flags before -c still count.
            case(
                &["-e", "-l", "DEBUG1", "-c", "-l", "bogus"],
                0,
                "",
                empty_session_log("DEBUG"),
            ),
            case(
                &["-l", "bogus", "-c"],
                1,
                "",
                "Unrecognized internal syslog level code -1\n",
            ),
        ],
    );
}

#[test]
fn admin_dash_c_then_serves_normally() {
    let scratch = Scratch::new("admin-c-serves");
    let mut transcripts = Vec::new();
    for imp in [openssh(), ours()] {
        let root = scratch.path().join(imp.name);
        fs::create_dir(&root).unwrap();
        fs::write(root.join("f"), b"data").unwrap();
        let mut s = Session::start(
            &imp.bin,
            &root,
            &["-c", "sftp-server -u 999 junk", "-z", "-R"],
            &[],
            Stdio::null(),
        );
        let mut t = vec![summary(&s.client.init())];
        t.push(s.call(Request::Stat { path: b"f" }));
        // Not read-only: the -R after -c was ignored.
        t.push(s.call(Request::Mkdir {
            path: b"d",
            attrs: Attrs::none(),
        }));
        t.push(format!("exit {:?}", s.finish()));
        t.push(format!("d exists {}", root.join("d").is_dir()));
        transcripts.push(t);
    }
    assert_eq!(
        transcripts[0],
        [
            "VERSION 3",
            "ATTRS size 4 mode 100644",
            "STATUS 0 Success",
            "exit Some(0)",
            "d exists true"
        ],
        "OpenSSH's transcript"
    );
    assert_same_lines("session after -c", &transcripts[0], &transcripts[1]);
}

#[test]
fn admin_operands_are_ignored() {
    // getopt stops at the first operand; everything from there on is ignored.
    let both = empty_session_log("INFO");
    check_cli_cases(
        "admin-operands",
        &[
            case(&["extra"], 0, "", ""),
            case(&["-e", "-l", "INFO", "extra", "-l", "bogus"], 0, "", both),
            case(&["-e", "-l", "INFO", "--", "-l", "bogus"], 0, "", both),
            case(&["-e", "-l", "INFO", "-", "-z"], 0, "", both),
        ],
    );
}

#[test]
fn admin_start_directory_argument_errors() {
    // Expansion happens while the flags are read: an unknown %-escape or an unknown
    // ~user is fatal (exit 255) with the message in syslog, not on stderr.
    check_cli_cases(
        "admin-d-errors",
        &[
            case(&["-e", "-d", "%x"], 255, "", ""),
            case(&["-e", "-d", "/tmp/%"], 255, "", ""),
            case(&["-e", "-d", "~no-such-user-here/x"], 255, "", ""),
            case(&["-e", "-d", "~%u"], 255, "", ""),
            // The last -d wins.
            case(
                &[
                    "-e",
                    "-d",
                    "/nonexistent-sftp-a",
                    "-d",
                    "/nonexistent-sftp-b",
                ],
                0,
                "",
                "chdir to \"/nonexistent-sftp-b\" failed: No such file or directory\r\n",
            ),
        ],
    );
}

#[test]
fn admin_version_flag_is_ours() {
    // Our addition; OpenSSH's server answers --version with its usage.
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("admin-version");
    let got = run_cli(&ours(), scratch.path(), &["--version"], &[]);
    assert_eq!(
        got,
        Outcome::new(
            0,
            &format!("sftp-server {}\n", env!("CARGO_PKG_VERSION")),
            ""
        )
    );
}

// ---------------------------------------------------------------------------------
// 2. Effects of the flags on a session
// ---------------------------------------------------------------------------------

/// Runs `-e args` against both servers in `cwd` and returns, for each, the
/// REALPATH of "." and the stderr log (with -e).
fn start_dir_of(scratch: &Path, args: &[&str], cwd: &Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for imp in [openssh(), ours()] {
        let err = scratch.join(format!("{}.stderr", imp.name));
        let mut all = vec!["-e"];
        all.extend_from_slice(args);
        let mut s = Session::logged(&imp, cwd, &all, &[], &err);
        s.client.init();
        let dot = match s.client.call(&Request::Realpath { path: b"." }) {
            Reply::Name { entries, .. } if entries.len() == 1 => {
                String::from_utf8_lossy(&entries[0].name).into_owned()
            }
            other => panic!("{}: REALPATH .: {other:?}", imp.name),
        };
        assert_eq!(s.finish(), Some(0), "{} exit status", imp.name);
        out.push((dot, lines(&read_text(&err))));
    }
    out
}

#[test]
fn admin_start_directory_expansions() {
    let scratch = Scratch::new("admin-d");
    let base = scratch.path().canonicalize().unwrap();
    let user = me();
    let home = user.dir.canonicalize().unwrap().display().to_string();
    let b = base.display().to_string();
    let elsewhere = base.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    for d in [
        user.name.clone(),
        user.uid.to_string(),
        "a%b".to_string(),
        "x~y".to_string(),
        format!("{}-{}-%", user.name, user.uid),
    ] {
        fs::create_dir(base.join(d)).unwrap();
    }
    let cases: Vec<(String, String)> = vec![
        (format!("{b}/%u"), format!("{b}/{}", user.name)),
        (format!("{b}/%U"), format!("{b}/{}", user.uid)),
        (format!("{b}/a%%b"), format!("{b}/a%b")),
        (
            format!("{b}/%u-%U-%%"),
            format!("{b}/{}-{}-%", user.name, user.uid),
        ),
        ("%d".to_string(), home.clone()),
        ("~".to_string(), home.clone()),
        ("~/".to_string(), home.clone()),
        ("~/.".to_string(), home.clone()),
        (format!("~{}", user.name), home.clone()),
        (format!("~{}/", user.name), home.clone()),
        // A ~ that is not leading is an ordinary character.
        (format!("{b}/x~y"), format!("{b}/x~y")),
    ];
    let mut problems = Vec::new();
    for (arg, want) in &cases {
        let got = start_dir_of(&base, &["-d", arg], &elsewhere);
        let (openssh_dot, openssh_log) = &got[0];
        let (ours_dot, ours_log) = &got[1];
        if openssh_dot != want || !openssh_log.is_empty() {
            problems.push(format!(
                "OpenSSH with -d {arg:?}: REALPATH . = {openssh_dot:?}, log {openssh_log:?}; expected {want:?}"
            ));
        }
        if (ours_dot, ours_log) != (openssh_dot, openssh_log) {
            problems.push(format!(
                "-d {arg:?}: OpenSSH REALPATH . = {openssh_dot:?} log {openssh_log:?}; \
                 ours REALPATH . = {ours_dot:?} log {ours_log:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn admin_failing_start_directory_is_logged_and_the_session_goes_on() {
    let scratch = Scratch::new("admin-d-fail");
    let base = scratch.path().canonicalize().unwrap();
    let cwd = base.join("cwd");
    fs::create_dir(&cwd).unwrap();
    fs::write(base.join("plain"), b"").unwrap();
    let b = base.display().to_string();
    let cwd_s = cwd.display().to_string();
    for (arg, reason) in [
        (format!("{b}/missing"), "No such file or directory"),
        (format!("{b}/plain"), "Not a directory"),
        (format!("{b}/%u-missing"), "No such file or directory"),
    ] {
        let got = start_dir_of(&base, &["-d", &arg], &cwd);
        let expanded = arg.replace("%u", &me().name);
        let want = (
            cwd_s.clone(),
            vec![format!("chdir to \"{expanded}\" failed: {reason}")],
        );
        assert_eq!(got[0], want, "OpenSSH with -d {arg}");
        assert_eq!(got[1], got[0], "ours against OpenSSH with -d {arg}");
    }
}

#[test]
fn admin_umask_flag_applies_to_created_files_and_dirs() {
    let scratch = Scratch::new("admin-u");
    let mut results = Vec::new();
    for imp in [openssh(), ours()] {
        let root = scratch.path().join(imp.name);
        fs::create_dir(&root).unwrap();
        let mut s = Session::start(&imp.bin, &root, &["-u", "077"], &[], Stdio::null());
        s.client.init();
        let h = s.handle(Request::Open {
            path: b"file",
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
            attrs: perms(0o666),
        });
        s.call(Request::Close { handle: &h });
        let h = s.handle(Request::Open {
            path: b"default",
            pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
            attrs: Attrs::none(),
        });
        s.call(Request::Close { handle: &h });
        let mut t = vec![
            s.call(Request::Mkdir {
                path: b"dir",
                attrs: perms(0o777),
            }),
            s.call(Request::Mkdir {
                path: b"dir-default",
                attrs: Attrs::none(),
            }),
        ];
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().mode() & 0o7777;
        t.push(format!(
            "file {:o} default {:o} dir {:o} dir-default {:o}",
            mode("file"),
            mode("default"),
            mode("dir"),
            mode("dir-default")
        ));
        // The umask only filters creation: SETSTAT sets what it is given.
        t.push(s.call(Request::Setstat {
            path: b"file",
            attrs: perms(0o644),
        }));
        t.push(s.call(Request::Setstat {
            path: b"dir",
            attrs: perms(0o755),
        }));
        t.push(format!("file {:o} dir {:o}", mode("file"), mode("dir")));
        assert_eq!(s.finish(), Some(0));
        results.push(t);
    }
    assert_eq!(
        results[0],
        [
            "STATUS 0 Success",
            "STATUS 0 Success",
            "file 600 default 600 dir 700 dir-default 700",
            "STATUS 0 Success",
            "STATUS 0 Success",
            "file 644 dir 755",
        ],
        "OpenSSH with -u 077"
    );
    assert_same_lines("-u 077", &results[0], &results[1]);
}

/// The tree the -R, -p and -P sessions work on.
fn make_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    fs::write(root.join("f"), b"hello").unwrap();
    fs::set_permissions(root.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/inner"), b"x").unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    symlink("f", root.join("l")).unwrap();
}

/// Every request with the status or reply it gets, as "name: summary" lines. The
/// requests are the same for every run: reading ones, then every kind that writes.
fn every_request(s: &mut Session) -> Vec<String> {
    let mut t = Vec::new();
    let mut note = |what: &str, reply: String| t.push(format!("{what}: {reply}"));
    let rd = |path: &'static [u8], pflags: u32| Request::Open {
        path,
        pflags,
        attrs: Attrs::none(),
    };

    // Opening for writing, creating or truncating.
    note("open f WRITE", s.call(rd(b"f", SSH_FXF_WRITE)));
    note(
        "open f READ|WRITE",
        s.call(rd(b"f", SSH_FXF_READ | SSH_FXF_WRITE)),
    );
    note(
        "open f READ|CREAT",
        s.call(rd(b"f", SSH_FXF_READ | SSH_FXF_CREAT)),
    );
    note(
        "open f READ|TRUNC",
        s.call(rd(b"f", SSH_FXF_READ | SSH_FXF_TRUNC)),
    );
    note(
        "open new READ|CREAT",
        s.call(rd(b"new", SSH_FXF_READ | SSH_FXF_CREAT)),
    );
    note(
        "open new WRITE|CREAT|EXCL",
        s.call(rd(b"new", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_EXCL)),
    );

    // Reading through a handle; writing through it.
    match s.client.call(&rd(b"f", SSH_FXF_READ)) {
        Reply::Handle { handle: h, .. } => {
            note("open f READ", "HANDLE".to_string());
            note(
                "read",
                s.call(Request::Read {
                    handle: &h,
                    offset: 0,
                    len: 100,
                }),
            );
            note("fstat", s.call(Request::Fstat { handle: &h }));
            note(
                "write",
                s.call(Request::Write {
                    handle: &h,
                    offset: 0,
                    data: b"XX",
                }),
            );
            note(
                "fsetstat",
                s.call(Request::Fsetstat {
                    handle: &h,
                    attrs: perms(0o600),
                }),
            );
            let hb = one_string(&h);
            note("fsync", s.ext(b"fsync@openssh.com", &hb));
            note("fstatvfs", s.ext(b"fstatvfs@openssh.com", &hb));
            let copy = Buf::new().str(&h).u64(0).u64(0).str(&h).u64(0).into_vec();
            note("copy-data", s.ext(b"copy-data", &copy));
            note("close", s.call(Request::Close { handle: &h }));
        }
        other => note("open f READ", summary(&other)),
    }

    // Requests by path that only read.
    note("stat f", s.call(Request::Stat { path: b"f" }));
    note("lstat l", s.call(Request::Lstat { path: b"l" }));
    note("readlink l", s.call(Request::Readlink { path: b"l" }));
    note("realpath d/..", s.call(Request::Realpath { path: b"d/.." }));
    match s.client.call(&Request::Opendir { path: b"d" }) {
        Reply::Handle { handle: h, .. } => {
            note("opendir d", "HANDLE".to_string());
            note("readdir", s.call(Request::Readdir { handle: &h }));
            note("close", s.call(Request::Close { handle: &h }));
        }
        other => note("opendir d", summary(&other)),
    }
    let dot = one_string(b".");
    note("statvfs .", s.ext(b"statvfs@openssh.com", &dot));
    note("limits", s.ext(b"limits@openssh.com", b""));
    let d = one_string(b"d");
    note("expand-path d", s.ext(b"expand-path@openssh.com", &d));

    // Requests by path that write.
    note(
        "setstat f",
        s.call(Request::Setstat {
            path: b"f",
            attrs: perms(0o600),
        }),
    );
    let lset = Buf::new().str(b"l").attrs(&perms(0o600)).into_vec();
    note("lsetstat l", s.ext(b"lsetstat@openssh.com", &lset));
    note("remove f", s.call(Request::Remove { path: b"f" }));
    note(
        "mkdir new",
        s.call(Request::Mkdir {
            path: b"new",
            attrs: Attrs::none(),
        }),
    );
    note("rmdir empty", s.call(Request::Rmdir { path: b"empty" }));
    note(
        "rename f g",
        s.call(Request::Rename {
            old: b"f",
            new: b"g",
        }),
    );
    note(
        "symlink f s",
        s.call(Request::Symlink {
            target: b"f",
            link: b"s",
        }),
    );
    let fg = two_strings(b"f", b"g");
    note("posix-rename f g", s.ext(b"posix-rename@openssh.com", &fg));
    note("hardlink f g", s.ext(b"hardlink@openssh.com", &fg));
    t
}

/// Runs `every_request` with `args` against both servers; returns the transcripts and
/// whether each tree was left as it was.
fn every_request_under(tag: &str, args: &[&str]) -> Vec<(Vec<String>, bool)> {
    let scratch = Scratch::new(tag);
    let mut out = Vec::new();
    for imp in [openssh(), ours()] {
        let root = scratch.path().join(imp.name);
        make_tree(&root);
        let before = snapshot(&root);
        let mut s = Session::start(&imp.bin, &root, args, &[], Stdio::null());
        s.client.init();
        let t = every_request(&mut s);
        assert_eq!(s.finish(), Some(0), "{} exit status", imp.name);
        out.push((t, snapshot(&root) == before));
    }
    out
}

#[test]
fn admin_read_only_refuses_every_write() {
    let denied = status_line(SSH_FX_PERMISSION_DENIED);
    let got = every_request_under("admin-R", &["-R"]);
    let (openssh_t, openssh_unchanged) = &got[0];
    // What OpenSSH does under -R: reads work, anything that would write is refused.
    let writes = [
        "open f WRITE",
        "open f READ|WRITE",
        "open f READ|CREAT",
        "open f READ|TRUNC",
        "open new READ|CREAT",
        "open new WRITE|CREAT|EXCL",
        "write",
        "fsetstat",
        "fsync",
        "copy-data",
        "setstat f",
        "lsetstat l",
        "remove f",
        "mkdir new",
        "rmdir empty",
        "rename f g",
        "symlink f s",
        "posix-rename f g",
        "hardlink f g",
    ];
    for line in openssh_t {
        let what = line.split(": ").next().unwrap();
        if writes.contains(&what) {
            assert_eq!(line, &format!("{what}: {denied}"), "OpenSSH under -R");
        } else {
            assert!(!line.contains("STATUS 3"), "OpenSSH under -R: {line}");
        }
    }
    assert!(openssh_t.contains(&"read: DATA \"hello\"".to_string()));
    assert!(openssh_unchanged, "OpenSSH changed the tree under -R");
    let (ours_t, ours_unchanged) = &got[1];
    assert_same_lines("requests under -R", openssh_t, ours_t);
    assert!(ours_unchanged, "our server changed the tree under -R");
}

/// The extensions a VERSION reply advertises, as "name=data" strings.
fn advertised(reply: &Reply) -> Vec<String> {
    match reply {
        Reply::Version { extensions, .. } => extensions
            .iter()
            .map(|(n, d)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(d)
                )
            })
            .collect(),
        other => panic!("expected VERSION, got {other:?}"),
    }
}

#[test]
fn admin_version_leaves_out_refused_extensions() {
    // OpenSSH does not advertise an extension the flags would refuse.
    let scratch = Scratch::new("admin-ext");
    let all = [
        "posix-rename@openssh.com=1",
        "statvfs@openssh.com=2",
        "fstatvfs@openssh.com=2",
        "hardlink@openssh.com=1",
        "fsync@openssh.com=1",
        "lsetstat@openssh.com=1",
        "limits@openssh.com=1",
        "expand-path@openssh.com=1",
        "copy-data=1",
        "home-directory=1",
        "users-groups-by-id@openssh.com=1",
    ];
    let without = |gone: &[&str]| -> Vec<String> {
        all.iter()
            .filter(|e| {
                !gone
                    .iter()
                    .any(|g| e.starts_with(&format!("{g}@")) || e.starts_with(&format!("{g}=")))
            })
            .map(|e| e.to_string())
            .collect()
    };
    // Each case with the extensions of ours alone that it leaves advertised.
    let cases: Vec<(&[&str], Vec<String>, &[&str])> = vec![
        (&[], without(&[]), &OWN_EXTENSIONS),
        (
            &["-R"],
            without(&["posix-rename", "hardlink", "fsync", "lsetstat", "copy-data"]),
            &OWN_EXTENSIONS[..1],
        ),
        (
            &["-P", "hardlink,limits,open"],
            without(&["hardlink", "limits"]),
            &OWN_EXTENSIONS,
        ),
        (&["-P", "check-file,copy-file"], without(&[]), &[]),
        (
            &["-p", "open,close,statvfs,home-directory,copy-file"],
            without(&[
                "posix-rename",
                "fstatvfs",
                "hardlink",
                "fsync",
                "lsetstat",
                "limits",
                "expand-path",
                "copy-data",
                "users-groups-by-id",
            ]),
            &OWN_EXTENSIONS[1..],
        ),
    ];
    let mut problems = Vec::new();
    for (args, want, own) in &cases {
        let [reference, got] = [openssh(), ours()].map(|imp| {
            let mut s = Session::start(&imp.bin, scratch.path(), args, &[], Stdio::null());
            let version = s.client.init();
            assert_eq!(s.finish(), Some(0));
            advertised(&version)
        });
        assert_eq!(&reference, want, "OpenSSH's VERSION with {args:?}");
        let mut want_ours = reference.clone();
        if !testing_openssh() {
            want_ours.extend(own.iter().map(|e| e.to_string()));
        }
        if got != want_ours {
            problems.push(format!(
                "sftp-server {}: VERSION extensions\n  OpenSSH: {reference:?}\n  ours:    {got:?}",
                args.join(" ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Checks OpenSSH's transcript under a request list: a request is refused with
/// PERMISSION_DENIED exactly when `refused(name)`.
#[track_caller]
fn assert_refused_exactly(transcript: &[String], refused: impl Fn(&str) -> bool, flags: &str) {
    let denied = status_line(SSH_FX_PERMISSION_DENIED);
    for line in transcript {
        let (what, reply) = line.split_once(": ").unwrap();
        let name = what.split(' ').next().unwrap();
        if refused(name) {
            assert_eq!(reply, denied, "OpenSSH under {flags}: {what}");
        } else {
            assert_ne!(reply, denied, "OpenSSH under {flags}: {what}");
        }
    }
}

#[test]
fn admin_allow_list_serves_only_those_requests() {
    let allowed = "open,read,close,stat,opendir,readdir,statvfs,mkdir,posix-rename";
    let got = every_request_under("admin-p", &["-p", allowed]);
    assert_refused_exactly(
        &got[0].0,
        |name| !allowed.split(',').any(|a| a == name),
        &format!("-p {allowed}"),
    );
    assert_same_lines("requests under -p", &got[0].0, &got[1].0);
    assert_eq!(got[1].1, got[0].1, "whether the tree was left as it was");
}

#[test]
fn admin_deny_list_refuses_those_requests() {
    let refused = "write,remove,mkdir,posix-rename,lstat,limits,fstatvfs";
    let got = every_request_under("admin-P", &["-P", refused]);
    assert_refused_exactly(
        &got[0].0,
        |name| refused.split(',').any(|a| a == name),
        &format!("-P {refused}"),
    );
    assert_same_lines("requests under -P", &got[0].0, &got[1].0);
}

#[test]
fn admin_deny_list_applies_before_allow_list() {
    let got = every_request_under("admin-pP", &["-P", "stat,read", "-p", "stat,open,close"]);
    assert_same_lines("requests under -P and -p", &got[0].0, &got[1].0);
    let stat = got[0].0.iter().find(|l| l.starts_with("stat f")).unwrap();
    assert_eq!(
        stat,
        &format!("stat f: {}", status_line(SSH_FX_PERMISSION_DENIED))
    );
}

// ---------------------------------------------------------------------------------
// 3. Log lines on stderr
// ---------------------------------------------------------------------------------

/// The scripted session for the log comparisons. Returns the reply summaries.
fn logged_session(s: &mut Session) -> Vec<String> {
    let mut t = vec![summary(&s.client.init())];
    t.push(s.call(Request::Realpath { path: b"." }));

    let h = s.handle(Request::Open {
        path: b"file",
        pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
        attrs: perms(0o644),
    });
    t.push(s.call(Request::Write {
        handle: &h,
        offset: 0,
        data: b"hello world",
    }));
    t.push(s.call(Request::Close { handle: &h }));

    t.push(list_dir(s, b"."));

    let user = me();
    t.push(
        s.call(Request::Setstat {
            path: b"file",
            attrs: Attrs::none()
                .with_size(5)
                .with_uidgid(user.uid.as_raw(), user.gid.as_raw())
                .with_permissions(0o600)
                .with_times(1_000_000_000, 1_000_000_000),
        }),
    );
    t.push(s.call(Request::Mkdir {
        path: b"dir",
        attrs: perms(0o755),
    }));
    t.push(s.call(Request::Rename {
        old: b"file",
        new: b"file2",
    }));
    let data = two_strings(b"file2", b"file3");
    t.push(s.ext(b"posix-rename@openssh.com", &data));
    t.push(s.call(Request::Symlink {
        target: b"file3",
        link: b"link",
    }));
    let data = two_strings(b"file3", b"hard");
    t.push(s.ext(b"hardlink@openssh.com", &data));
    t.push(s.call(Request::Remove { path: b"hard" }));
    t.push(s.call(Request::Remove { path: b"link" }));
    t.push(s.call(Request::Rmdir { path: b"dir" }));
    let data = one_string(b".");
    t.push(s.ext(b"statvfs@openssh.com", &data));
    t.push(s.call(Request::Stat { path: b"missing" }));
    // Refused by -P readlink.
    t.push(s.call(Request::Readlink { path: b"file3" }));

    // Left open: the server closes it itself at EOF ("forced close").
    let h = s.handle(Request::Open {
        path: b"file3",
        pflags: SSH_FXF_READ,
        attrs: Attrs::none(),
    });
    t.push(s.call(Request::Read {
        handle: &h,
        offset: 0,
        len: 100,
    }));
    t
}

/// Runs the scripted session with `-e -l level -P readlink` against both servers and
/// compares the replies and the masked stderr lines.
fn compare_session_logs(level: &str) -> Vec<String> {
    let scratch = Scratch::new(&format!("admin-log-{level}"));
    let mut logs = Vec::new();
    let mut replies = Vec::new();
    for imp in [openssh(), ours()] {
        let root = scratch.path().join(imp.name);
        fs::create_dir(&root).unwrap();
        let err = out_file(scratch.path(), &imp, "stderr");
        let mut s = Session::logged(
            &imp,
            &root,
            &["-e", "-l", level, "-P", "readlink"],
            CONN,
            &err,
        );
        let mut t = logged_session(&mut s);
        t.push(format!("exit {:?}", s.finish()));
        replies.push(t);
        let text = read_text(&err);
        for l in text.split_inclusive('\n') {
            assert!(
                l.ends_with("\r\n"),
                "{}: stderr line without CR LF: {l:?}",
                imp.name
            );
        }
        logs.push(mask_log(&text, &root));
    }
    assert_same_lines(&format!("replies at {level}"), &replies[0], &replies[1]);
    assert_same_lines(&format!("stderr at -l {level}"), &logs[0], &logs[1]);
    logs.swap_remove(0)
}

/// Runs `every_request` (see the -R, -p and -P tests) with `args` against both
/// servers and compares the masked stderr lines.
fn compare_every_request_logs(tag: &str, args: &[&str]) {
    let scratch = Scratch::new(tag);
    let logs = [openssh(), ours()].map(|imp| {
        let root = scratch.path().join(imp.name);
        make_tree(&root);
        let err = out_file(scratch.path(), &imp, "stderr");
        let mut s = Session::logged(&imp, &root, args, CONN, &err);
        s.client.init();
        every_request(&mut s);
        assert_eq!(s.finish(), Some(0), "{} exit status", imp.name);
        mask_log(&read_text(&err), &root)
    });
    let mut ours = logs[1].clone();
    ours.retain(|l| !own_request_line(l));
    assert_same_lines(&format!("stderr with {args:?}"), &logs[0], &ours);
}

#[test]
fn admin_log_lines_of_read_only_refusals() {
    compare_every_request_logs("admin-log-R", &["-e", "-l", "VERBOSE", "-R"]);
}

#[test]
fn admin_log_lines_of_allow_list_refusals() {
    let args = ["-e", "-l", "VERBOSE", "-p", "open,close,read,stat,mkdir"];
    compare_every_request_logs("admin-log-p", &args);
}

#[test]
fn admin_log_lines_of_deny_list_refusals() {
    let args = [
        "-e",
        "-l",
        "VERBOSE",
        "-P",
        "write,remove,lstat,hardlink,limits",
    ];
    compare_every_request_logs("admin-log-P", &args);
}

#[test]
fn admin_log_lines_of_allow_list_at_debug2() {
    // DEBUG2 adds "Permitting allowlisted ... request" for each request let through.
    let args = ["-e", "-l", "DEBUG2", "-p", "open,close,read,stat,mkdir"];
    compare_every_request_logs("admin-log-p-debug2", &args);
}

#[test]
fn admin_log_lines_info() {
    let user = me().name;
    let log = compare_session_logs("INFO");
    // Spot checks that the session did what it should, in OpenSSH's words.
    for want in [
        session_opened(&user, CONN_ADDR),
        "open \"file\" flags WRITE,CREATE,TRUNCATE mode 0644".to_string(),
        "close \"file\" bytes read 0 written 11".to_string(),
        "set \"file\" size 5".to_string(),
        "set \"file\" mode 0600".to_string(),
        "sent status No such file".to_string(),
        "sent status Permission denied".to_string(),
        "forced close \"file3\" bytes read 5 written 0".to_string(),
        session_closed(&user, CONN_ADDR),
    ] {
        assert!(
            log.contains(&want),
            "OpenSSH's INFO log lacks {want:?}:\n{log:#?}"
        );
    }
}

#[test]
fn admin_log_lines_verbose() {
    let log = compare_session_logs("VERBOSE");
    for want in [
        "received client version 3",
        "realpath \".\"",
        "Refusing denylisted readlink request",
    ] {
        assert!(
            log.iter().any(|l| l == want),
            "OpenSSH's VERBOSE log lacks {want:?}:\n{log:#?}"
        );
    }
}

#[test]
fn admin_log_lines_debug3() {
    let log = compare_session_logs("DEBUG3");
    assert!(log.iter().any(|l| l == "debug1: read eof"), "{log:#?}");
    assert!(
        log.iter().any(|l| l.starts_with("debug3: request ")),
        "{log:#?}"
    );
}

/// The two "session" lines with SSH_CONNECTION set to `conn`, and the exit status.
fn session_lines(conn: &str) -> [(Option<i32>, Vec<String>); 2] {
    let scratch = Scratch::new("admin-conn");
    [openssh(), ours()].map(|imp| {
        let err = out_file(scratch.path(), &imp, "stderr");
        let s = Session::logged(
            &imp,
            scratch.path(),
            &["-e", "-l", "INFO"],
            &[("SSH_CONNECTION", conn)],
            &err,
        );
        let status = s.finish();
        (status, mask_log(&read_text(&err), scratch.path()))
    })
}

/// Runs each SSH_CONNECTION value against both servers; each case gives OpenSSH's
/// exit status and lines for it. Fails once, listing every difference.
#[track_caller]
fn check_ssh_connection(cases: &[(&str, Option<i32>, Vec<String>)]) {
    let mut problems = Vec::new();
    for (conn, status, lines) in cases {
        let [reference, got] = session_lines(conn);
        if reference != (*status, lines.clone()) {
            problems.push(format!(
                "OpenSSH's server changed for SSH_CONNECTION={conn:?}:\n  recorded {:?}\n  now      {reference:?}",
                (status, lines)
            ));
        }
        if got != reference {
            problems.push(format!(
                "SSH_CONNECTION={conn:?} sftp-server -e -l INFO\n  OpenSSH: {reference:?}\n  ours:    {got:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn admin_session_line_names_the_client_address() {
    let user = me().name;
    let lines = |addr: &str| vec![session_opened(&user, addr), session_closed(&user, addr)];
    check_ssh_connection(&[
        ("192.0.2.1 5555 192.0.2.2 22", Some(0), lines("192.0.2.1")),
        (
            "2001:db8::1 5555 2001:db8::2 22",
            Some(0),
            lines("2001:db8::1"),
        ),
        // Everything up to the first space, as it is.
        (" 192.0.2.1 5555 192.0.2.2 22", Some(0), lines("")),
        (
            "192.0.2.1\t5555 192.0.2.2 22",
            Some(0),
            lines("192.0.2.1\t5555"),
        ),
    ]);
}

#[test]
fn admin_malformed_ssh_connection_ends_the_session() {
    // No space at all: an error, then the session-closed line, exit 255.
    let user = me().name;
    let lines = |conn: &str| {
        vec![
            format!("Malformed SSH_CONNECTION variable: \"{conn}\""),
            session_closed(&user, conn),
        ]
    };
    check_ssh_connection(&[
        ("192.0.2.1", Some(255), lines("192.0.2.1")),
        ("", Some(255), lines("")),
    ]);
}

// ---------------------------------------------------------------------------------
// 4. Syslog, delivered to a private /dev/log
// ---------------------------------------------------------------------------------

/// Runs the program it is given in a private mount namespace whose /dev is a tmpfs of
/// symlinks to the real devices plus /dev/log pointing at the test's socket.
/// Arguments: the scratch dir for the real /dev, the socket, then the command.
const PRIVATE_DEV_LOG: &str = r#"set -e
olddev=$1; sock=$2; shift 2
mount --rbind /dev "$olddev"
mount -t tmpfs -o mode=755 tmpfs /dev
for e in "$olddev"/*; do ln -s "$e" /dev/; done
ln -s "$sock" /dev/log
exec "$@""#;

/// A datagram socket standing in for the system logger.
struct Syslog {
    sock: UnixDatagram,
    path: PathBuf,
    olddev: PathBuf,
}

impl Syslog {
    fn new(dir: &Path) -> Syslog {
        let path = dir.join("log.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the log socket");
        let olddev = dir.join("olddev");
        fs::create_dir(&olddev).unwrap();
        Syslog { sock, path, olddev }
    }

    /// Starts `imp args` with this socket as its /dev/log and stderr to `stderr`.
    fn session(&self, imp: &Impl, cwd: &Path, args: &[&str], stderr: &Path) -> Session {
        let mut all: Vec<&str> = vec![
            "--mount",
            "sh",
            "-c",
            PRIVATE_DEV_LOG,
            "sh",
            self.olddev.to_str().unwrap(),
            self.path.to_str().unwrap(),
            imp.bin.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let err = fs::File::create(stderr).unwrap();
        Session::start(Path::new("unshare"), cwd, &all, CONN, Stdio::from(err))
    }

    /// Every datagram received so far, as text.
    fn drain(&self) -> Vec<String> {
        self.sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv on the log socket: {e}"),
            }
        }
        out
    }
}

/// Checks a syslog(3) datagram's shape, "<PRI>Mmm dd hh:mm:ss ident[pid]: message", and
/// returns it with the time stamp replaced by "TIME" and the pid by "PID".
fn mask_datagram(d: &str, pid: u32) -> String {
    let (pri, rest) = d
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .unwrap_or_else(|| panic!("no <PRI> in {d:?}"));
    assert!(pri.parse::<u8>().is_ok(), "PRI in {d:?}");
    let stamp = rest.get(..16).unwrap_or_else(|| panic!("short {d:?}"));
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert!(
        shape.len() == 16 && shape.ends_with(" 99:99:99 ") && shape.as_bytes()[3] == b' ',
        "time stamp in {d:?}"
    );
    let body = rest[16..].replacen(&format!("[{pid}]: "), "[PID]: ", 1);
    format!("<{pri}>TIME {body}")
}

/// How a run with a private /dev/log ended and what it logged.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Logged {
    status: Option<i32>,
    /// Masked datagrams, in arrival order.
    syslog: Vec<String>,
    stderr: String,
}

impl Logged {
    fn new(status: i32, syslog: &[&str], stderr: &str) -> Logged {
        Logged {
            status: Some(status),
            syslog: syslog.iter().map(|l| l.to_string()).collect(),
            stderr: stderr.to_string(),
        }
    }
}

/// Runs `args` with a private /dev/log against both servers (OpenSSH's first); each
/// runs `script` as client.
fn syslog_of(tag: &str, args: &[&str], script: fn(&mut Session)) -> [Logged; 2] {
    let scratch = Scratch::new(tag);
    [openssh(), ours()].map(|imp| {
        let dir = scratch.path().join(imp.name);
        fs::create_dir(&dir).unwrap();
        let root = dir.join("root");
        fs::create_dir(&root).unwrap();
        let err = dir.join("stderr");
        let log = Syslog::new(&dir);
        let mut s = log.session(&imp, &root, args, &err);
        let pid = s.child.id();
        script(&mut s);
        let status = s.finish();
        Logged {
            status,
            syslog: log.drain().iter().map(|d| mask_datagram(d, pid)).collect(),
            stderr: read_text(&err),
        }
    })
}

fn open_missing(s: &mut Session) {
    s.client.init();
    let r = s.call(Request::Open {
        path: b"missing",
        pflags: SSH_FXF_READ,
        attrs: Attrs::none(),
    });
    assert_eq!(r, status_line(SSH_FX_NO_SUCH_FILE));
}

fn nothing(_: &mut Session) {}

/// One line of the datagram text, as `mask_datagram` leaves it.
fn syslog_line(pri: u32, msg: &str) -> String {
    format!("<{pri}>TIME sftp-server[PID]: {msg}")
}

/// OpenSSH's result (`got[0]`) is `want`, and ours (`got[1]`) is the same.
#[track_caller]
fn assert_syslog(got: &[Logged; 2], want: &Logged) {
    assert_eq!(&got[0], want, "OpenSSH's syslog datagrams");
    assert_same_lines("syslog datagrams", &got[0].syslog, &got[1].syslog);
    assert_eq!(got[1], got[0]);
}

#[test]
fn admin_syslog_delivery() {
    let user = me().name;
    // LOCAL3 is facility 19: info is <19*8+6> = <158>, err <155>, debug <159>.
    let got = syslog_of(
        "admin-syslog",
        &[
            "-l",
            "DEBUG1",
            "-f",
            "LOCAL3",
            "-d",
            "/nonexistent-sftp-dir",
        ],
        open_missing,
    );
    let want = Logged {
        status: Some(0),
        syslog: vec![
            syslog_line(158, &session_opened(&user, CONN_ADDR)),
            syslog_line(
                155,
                "error: chdir to \"/nonexistent-sftp-dir\" failed: No such file or directory",
            ),
            syslog_line(158, "received client version 3"),
            syslog_line(158, "open \"missing\" flags READ mode 0666"),
            syslog_line(158, "sent status No such file"),
            syslog_line(159, "debug1: read eof"),
            syslog_line(158, &session_closed(&user, CONN_ADDR)),
        ],
        stderr: String::new(),
    };
    assert_syslog(&got, &want);
}

#[test]
fn admin_syslog_info_level_and_default_facility() {
    let user = me().name;
    // No -f: AUTH (facility 4), info <38>. INFO leaves out the debug line.
    let got = syslog_of("admin-syslog-auth", &["-l", "INFO"], open_missing);
    let want = Logged {
        status: Some(0),
        syslog: vec![
            syslog_line(38, &session_opened(&user, CONN_ADDR)),
            syslog_line(38, "open \"missing\" flags READ mode 0666"),
            syslog_line(38, "sent status No such file"),
            syslog_line(38, &session_closed(&user, CONN_ADDR)),
        ],
        stderr: String::new(),
    };
    assert_syslog(&got, &want);
}

#[test]
fn admin_syslog_gets_the_errors_found_in_the_flags() {
    // Errors found while the flags are read are logged before -e and -f take effect:
    // to syslog, facility AUTH (4), fatal at LOG_CRIT (<34>), error at LOG_ERR (<35>),
    // whatever -e and -f say. The exit status is 255 for fatal ones.
    let bad_level = "Unrecognized internal syslog level code -1\n";
    let cases: Vec<(&[&str], Logged)> = vec![
        (
            &["-f", "LOCAL3", "-u", "999"],
            Logged::new(255, &[&syslog_line(34, "fatal: Invalid umask \"999\"")], ""),
        ),
        (
            &["-e", "-u", "abc"],
            Logged::new(255, &[&syslog_line(34, "fatal: Invalid umask \"abc\"")], ""),
        ),
        (
            &["-e", "-p", "read", "-p", "write"],
            Logged::new(
                255,
                &[&syslog_line(34, "fatal: Permitted requests already set")],
                "",
            ),
        ),
        (
            &["-P", "read", "-P", "write"],
            Logged::new(
                255,
                &[&syslog_line(34, "fatal: Refused requests already set")],
                "",
            ),
        ),
        (
            &["-l", "bogus"],
            Logged::new(
                1,
                &[&syslog_line(35, "error: Invalid log level \"bogus\"")],
                bad_level,
            ),
        ),
        (
            &["-e", "-f", "bogus"],
            Logged::new(
                0,
                &[&syslog_line(35, "error: Invalid log facility \"bogus\"")],
                "",
            ),
        ),
        (
            &["-d", "%x"],
            Logged::new(
                255,
                &[
                    &syslog_line(35, "error: vdollar_percent_expand: unknown key %x"),
                    &syslog_line(34, "fatal: percent_expand: failed"),
                ],
                "",
            ),
        ),
        (
            &["-e", "-d", "/tmp/%"],
            Logged::new(
                255,
                &[
                    &syslog_line(35, "error: vdollar_percent_expand: invalid format"),
                    &syslog_line(34, "fatal: percent_expand: failed"),
                ],
                "",
            ),
        ),
        (
            &["-d", "~no-such-user-here/x"],
            Logged::new(
                255,
                &[&syslog_line(
                    35,
                    "error: tilde_expand: No such user no-such-user-here",
                )],
                "",
            ),
        ),
    ];
    let mut problems = Vec::new();
    for (args, want) in &cases {
        let [reference, got] = syslog_of("admin-syslog-flags", args, nothing);
        if &reference != want {
            problems.push(format!(
                "OpenSSH's server changed for {args:?}:\n  recorded {want:?}\n  now      {reference:?}"
            ));
        }
        let want_ours = Logged {
            stderr: expected_of_ours(args, &Outcome::new(0, "", &reference.stderr)).stderr,
            ..reference.clone()
        };
        if got != want_ours {
            problems.push(format!(
                "sftp-server {}\n  OpenSSH: {reference:?}\n  ours:    {got:?}",
                args.join(" ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} command lines differ:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// inetd and xinetd give the server the connection as its standard error too. With
/// `-e`, OpenSSH's server writes its log lines into the SFTP stream, which breaks the
/// session at the first one (sftp: "Received message too long"); ours logs to syslog
/// instead (a named difference: README, "Differences from OpenSSH").
#[test]
fn admin_log_to_stderr_that_is_the_connection() {
    let dir = Scratch::new("admin-stderr-socket");
    fs::write(dir.path().join("f"), b"data").unwrap();
    let server = Spawn::new(dir.path())
        .args(&["-e", "-l", "DEBUG3"])
        .stderr_on_socket()
        .start();
    let mut c = Client::new(server.sock.try_clone().expect("dup socket"));
    if testing_openssh() {
        // The first bytes back are a log line, not the VERSION packet.
        c.send_init(3);
        let mut head = [0u8; 64];
        std::io::Read::read_exact(&mut &server.sock, &mut head).expect("read");
        let text = String::from_utf8_lossy(&head);
        assert!(
            text.contains("debug") || text.contains("session opened"),
            "OpenSSH's log lines in the stream: {text:?}"
        );
        return;
    }
    assert!(matches!(c.init(), Reply::Version { version: 3, .. }));
    for _ in 0..3 {
        match c.call(&Request::Stat { path: b"f" }) {
            Reply::Attrs { attrs, .. } => assert_eq!(attrs.size, 4),
            other => panic!("STAT f: {other:?}"),
        }
        let r = c.call(&Request::Open {
            path: b"missing",
            pflags: SSH_FXF_READ,
            attrs: Attrs::none(),
        });
        assert!(matches!(r, Reply::Status { code: 2, .. }), "{r:?}");
    }
    drop(c);
    assert!(
        server.finish().success(),
        "clean exit at the end of the session"
    );
}
