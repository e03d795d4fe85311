//! OpenSSH's command line, parsed into validated settings. The letters and their
//! meaning are OpenSSH's; anything new is a long option so it can never collide with
//! a future OpenSSH letter.

use crate::config::{Config, OpSet};
use crate::logging::{Facility, Level};
use crate::requests::REQUESTS;
use clap::{Arg, ArgAction, Command};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Serve a session.
    Serve(Options),
    /// Print this to stdout and exit 0 (`-Q requests`, `--version`).
    Print(String),
    /// Print this (the usage text, or OpenSSH's "Invalid query type") to stderr and
    /// exit 1.
    Usage(String),
    /// A bad value: the messages go to syslog, as OpenSSH sends them (its logging
    /// is not set up yet), `stderr` (if any) to stderr; then exit with `status`.
    Fatal {
        status: i32,
        errors: Vec<(Level, String)>,
        stderr: Option<String>,
    },
}

fn fatal(status: i32, level: Level, message: String) -> Action {
    Action::Fatal {
        status,
        errors: vec![(level, message)],
        stderr: None,
    }
}

/// A bad `-l` or `-f` value: OpenSSH logs the error and then fails to set up logging,
/// saying so on stderr with an internal code; ours says which value was wrong.
fn bad_log_setting(message: String) -> Action {
    Action::Fatal {
        status: 1,
        stderr: Some(format!("{message}\n")),
        errors: vec![(Level::Error, message)],
    }
}

/// Settings for a session.
#[derive(Debug)]
pub struct Options {
    pub config: Config,
    pub log_level: Level,
    pub log_stderr: bool,
    pub facility: Facility,
    /// `-d`, before `%` and `~` expansion.
    pub start_dir: Option<String>,
    pub umask: Option<u32>,
    /// Problems OpenSSH sends to syslog and then carries on.
    pub warnings: Vec<String>,
    /// `--root`: the directory the client sees as `/`.
    pub root: Option<OsString>,
    /// `--sandbox` / `--no-sandbox`, the last one given; unset means on with `--root`
    /// and off without it.
    pub sandbox: Option<bool>,
    /// `--audit-log DEST`, before `%` and `~` expansion.
    pub audit_log: Option<String>,
}

impl Options {
    /// Whether the process sandboxes itself after start-up.
    pub fn sandboxed(&self) -> bool {
        self.sandbox.unwrap_or(self.root.is_some())
    }
}

/// Short options as getopt(3) sees them: a `:` follows those that take a value.
const OPTSTRING: &[u8] = b"cd:ef:hl:m:P:p:Q:Ru:";
/// Long options (ours only) that take a value.
const LONG_WITH_VALUE: &[&str] = &["audit-log", "root"];
/// Every long option, as `--name` takes it: the manual page test checks each is
/// documented.
pub const LONG_OPTIONS: &[&str] = &[
    "atomic-uploads",
    "audit-log",
    "force-mode-on-setstat",
    "help",
    "no-sandbox",
    "root",
    "sandbox",
    "version",
    "zero-copy-reads",
];

fn command() -> Command {
    // As getopt: a value may start with '-', and a repeated option's last value wins.
    let value = |id: &'static str, short: char| {
        Arg::new(id)
            .short(short)
            .num_args(1)
            .allow_hyphen_values(true)
            .action(ArgAction::Append)
    };
    let flag = |id: &'static str, short: char| Arg::new(id).short(short).action(ArgAction::SetTrue);
    Command::new("sftp-server")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(value("start_directory", 'd'))
        .arg(flag("stderr", 'e'))
        .arg(value("facility", 'f'))
        .arg(flag("help", 'h'))
        .arg(value("level", 'l'))
        .arg(value("denied", 'P'))
        .arg(value("allowed", 'p'))
        .arg(value("query", 'Q'))
        .arg(flag("read_only", 'R'))
        .arg(value("umask", 'u'))
        // SUSE's and Red Hat's patch to OpenSSH: the mode of every file and directory
        // created.
        .arg(value("force_mode", 'm'))
        // Run as a login shell with `-c command`: the rest is ignored.
        .arg(flag("shell_command", 'c').hide(true))
        .arg(
            Arg::new("long_help")
                .long("help")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("root")
                .long("root")
                .num_args(1)
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(OsString))
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("sandbox")
                .long("sandbox")
                .action(ArgAction::SetTrue)
                .overrides_with("no_sandbox"),
        )
        .arg(
            Arg::new("no_sandbox")
                .long("no-sandbox")
                .action(ArgAction::SetTrue)
                .overrides_with("sandbox"),
        )
        .arg(
            Arg::new("audit_log")
                .long("audit-log")
                .num_args(1)
                .allow_hyphen_values(true)
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new("zero_copy_reads")
                .long("zero-copy-reads")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("force_mode_on_setstat")
                .long("force-mode-on-setstat")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("atomic_uploads")
                .long("atomic-uploads")
                .action(ArgAction::SetTrue),
        )
}

/// The arguments getopt(3) would read as options, the way OpenSSH reads them: up to
/// the first operand or `--`, and nothing after `-c` or after `-Q`'s value (OpenSSH
/// acts on those at once).
fn options_only(args: &[OsString]) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        if arg == b"--" || arg.len() < 2 || arg[0] != b'-' {
            break;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            kept.push(args[i].clone());
            let takes_value = LONG_WITH_VALUE.iter().any(|l| l.as_bytes() == long);
            if takes_value && i + 1 < args.len() {
                kept.push(args[i + 1].clone());
                i += 1;
            }
            i += 1;
            continue;
        }
        // A cluster of letters, such as `-eR` or `-lINFO`.
        for (j, &c) in arg.iter().enumerate().skip(1) {
            let pos = OPTSTRING.iter().position(|&o| o == c);
            let takes_value = pos.is_some_and(|p| OPTSTRING.get(p + 1) == Some(&b':'));
            if c == b'c' {
                kept.push(OsString::from_vec(arg[..=j].to_vec()));
                return kept;
            }
            if takes_value {
                kept.push(args[i].clone());
                let attached = j + 1 < arg.len();
                if !attached && i + 1 < args.len() {
                    i += 1;
                    kept.push(args[i].clone());
                }
                if c == b'Q' {
                    return kept;
                }
                break;
            }
            if j + 1 == arg.len() {
                kept.push(args[i].clone());
            }
        }
        i += 1;
    }
    kept
}

/// What `-h` (to stderr, exit 1) and `--help` (to stdout, exit 0) print after the
/// usage: every option, one line each (`-c`, which only a login shell passes, aside).
/// A bad option prints the usage alone, as OpenSSH does.
pub const OPTIONS_HELP: &str = "
Options (sftp-server(8) has the details):
  -d DIR                   start in DIR; ~user, %d, %u, %U and %% are expanded
  -e                       log to standard error instead of syslog
  -f FACILITY              syslog facility: DAEMON, USER, AUTH, LOCAL0-7
  -h                       print this to standard error and exit 1
  -l LEVEL                 log level: QUIET to DEBUG3 (ERROR by default)
  -P LIST                  refuse these requests (names as -Q prints them)
  -p LIST                  serve only these requests (names as -Q prints them)
  -Q requests              print the request names -p and -P take, and exit
  -R                       read-only: refuse every request that changes files
  -u UMASK                 umask for files and directories created (octal)
  -m MODE                  files and directories are created with MODE (octal)
  --force-mode-on-setstat  with -m: permissions set later become MODE too
  --atomic-uploads         an upload replaces its target at a successful CLOSE
  --root DIR               serve DIR as / (with a sandbox unless --no-sandbox)
  --sandbox, --no-sandbox  sandbox the process (the default with --root) or not
  --audit-log DEST         log every operation to a file, fd:N or journal
  --zero-copy-reads        splice READ data from the page cache to the socket
  --help                   print this to standard output and exit 0
  --version                print the version and exit
";

/// OpenSSH's usage text, naming the program as it was invoked, with `-m` where SUSE's
/// and Red Hat's patched server shows it.
pub fn usage(program: &str) -> String {
    format!(
        "usage: {program} [-ehR] [-d start_directory] [-f log_facility] [-l log_level]\n\
         \t[-P denied_requests] [-p allowed_requests] [-u umask] [-m force_file_dir_perms]\n       \
         {program} -Q protocol_feature\n"
    )
}

/// The program's name as invoked (the last component of argv[0]).
fn program_name(argv0: Option<&OsString>) -> String {
    argv0
        .map(|a| {
            let bytes = a.as_bytes();
            let base = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
            String::from_utf8_lossy(base).into_owned()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "sftp-server".to_string())
}

/// The octal umask as OpenSSH reads it (strtol in base 8): optional leading white
/// space and sign, octal digits to the end, 0 to 0777. The patch that adds `-m` reads
/// its mode the same way.
fn parse_umask(s: &str) -> Option<u32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    let v = u64::from_str_radix(digits, 8).ok()?;
    if (negative && v != 0) || v > 0o777 {
        return None;
    }
    Some(v as u32)
}

/// Parses the whole command line, program name first.
pub fn parse<I, S>(argv: I) -> Action
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let program = program_name(argv.first());
    let usage = usage(&program);
    let options = options_only(argv.get(1..).unwrap_or_default());
    let m = match command()
        .try_get_matches_from(std::iter::once(OsString::from(&program)).chain(options))
    {
        Ok(m) => m,
        Err(_) => return Action::Usage(usage),
    };
    let last = |id: &str| {
        m.get_many::<String>(id)
            .and_then(|mut v| v.next_back())
            .cloned()
    };
    let count = |id: &str| m.get_many::<String>(id).map_or(0, |v| v.len());
    if m.get_flag("help") {
        return Action::Usage(format!("{usage}{OPTIONS_HELP}"));
    }
    if m.get_flag("long_help") {
        return Action::Print(format!("{usage}{OPTIONS_HELP}"));
    }
    if m.get_flag("version") {
        return Action::Print(format!("sftp-server {}\n", env!("CARGO_PKG_VERSION")));
    }
    if let Some(q) = last("query") {
        if !q.eq_ignore_ascii_case("requests") {
            return Action::Usage("Invalid query type\n".to_string());
        }
        let names: String = REQUESTS.iter().map(|r| format!("{}\n", r.name)).collect();
        return Action::Print(names);
    }
    if count("allowed") > 1 {
        return fatal(255, Level::Fatal, "Permitted requests already set".into());
    }
    if count("denied") > 1 {
        return fatal(255, Level::Fatal, "Refused requests already set".into());
    }
    let umask = match last("umask") {
        None => None,
        Some(u) => match parse_umask(&u) {
            Some(v) => Some(v),
            None => return fatal(255, Level::Fatal, format!("Invalid umask \"{u}\"")),
        },
    };
    let force_mode = match last("force_mode") {
        None => None,
        Some(v) => match parse_umask(&v) {
            Some(v) => Some(v),
            None => return fatal(255, Level::Fatal, format!("Invalid file mode \"{v}\"")),
        },
    };
    let force_mode_on_setstat = m.get_flag("force_mode_on_setstat");
    if force_mode_on_setstat && force_mode.is_none() {
        return fatal(
            255,
            Level::Fatal,
            "--force-mode-on-setstat needs -m force_file_dir_perms".into(),
        );
    }
    let log_stderr = m.get_flag("stderr");
    let log_level = match last("level") {
        None => Level::Error,
        Some(l) => match Level::parse(&l) {
            Some(l) => l,
            None => return bad_log_setting(format!("Invalid log level \"{l}\"")),
        },
    };
    let mut warnings = Vec::new();
    let facility = match last("facility") {
        None => Facility::Auth,
        Some(f) => match Facility::parse(&f) {
            Some(f) => f,
            // The facility only matters for syslog: with -e OpenSSH logs and goes on.
            None if log_stderr => {
                warnings.push(format!("Invalid log facility \"{f}\""));
                Facility::Auth
            }
            None => return bad_log_setting(format!("Invalid log facility \"{f}\"")),
        },
    };
    let config = Config {
        read_only: m.get_flag("read_only"),
        denied: last("denied").map(|l| OpSet::from_list(&l)),
        allowed: last("allowed").map(|l| OpSet::from_list(&l)),
        zero_copy_reads: m.get_flag("zero_copy_reads"),
        force_mode,
        force_mode_on_setstat,
        atomic_uploads: m.get_flag("atomic_uploads"),
        ..Config::default()
    };
    let root = m
        .get_many::<OsString>("root")
        .and_then(|mut v| v.next_back())
        .cloned();
    if root.as_ref().is_some_and(|r| r.is_empty()) {
        return fatal(255, Level::Fatal, "Invalid root directory \"\"".into());
    }
    let sandbox = if m.get_flag("sandbox") {
        Some(true)
    } else if m.get_flag("no_sandbox") {
        Some(false)
    } else {
        None
    };
    Action::Serve(Options {
        config,
        log_level,
        log_stderr,
        facility,
        start_dir: last("start_directory"),
        umask,
        warnings,
        root,
        sandbox,
        audit_log: last("audit_log"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Action {
        parse(std::iter::once("sftp-server").chain(args.iter().copied()))
    }

    #[test]
    fn flags() {
        let Action::Serve(o) = run(&["-e", "-l", "INFO", "-R", "-u", "022"]) else {
            panic!()
        };
        assert!(o.log_stderr && o.config.read_only);
        assert_eq!(o.log_level, Level::Info);
        assert_eq!(o.umask, Some(0o22));
        assert!(matches!(run(&["-h"]), Action::Usage(_)));
        assert!(matches!(run(&["-x"]), Action::Usage(_)));
        assert!(matches!(
            run(&["-u", "999"]),
            Action::Fatal { status: 255, .. }
        ));
        assert!(matches!(
            run(&["-u", "-1"]),
            Action::Fatal { status: 255, .. }
        ));
        assert!(matches!(
            run(&["-p", "a", "-p", "b"]),
            Action::Fatal { status: 255, .. }
        ));
        assert!(matches!(run(&["-Q", "requests"]), Action::Print(_)));
        assert!(matches!(run(&["-Q", "requests", "-z"]), Action::Print(_)));
        assert!(matches!(run(&["-c", "-x", "whatever"]), Action::Serve(_)));
        assert!(matches!(
            run(&["-e", "operand", "-l", "bogus"]),
            Action::Serve(_)
        ));
        assert!(matches!(
            run(&["-e", "--", "-l", "bogus"]),
            Action::Serve(_)
        ));
        assert!(matches!(
            run(&["-lINFO", "-ce", "-l", "bogus"]),
            Action::Serve(_)
        ));
    }

    #[test]
    fn long_options() {
        let Action::Serve(o) = run(&["--root", "/srv", "-R"]) else {
            panic!()
        };
        assert_eq!(o.root.as_deref(), Some(std::ffi::OsStr::new("/srv")));
        assert!(o.sandboxed() && o.config.read_only);
        let Action::Serve(o) = run(&["--root=/a", "--root", "-b", "--no-sandbox"]) else {
            panic!()
        };
        assert_eq!(o.root.as_deref(), Some(std::ffi::OsStr::new("-b")));
        assert!(!o.sandboxed());
        let Action::Serve(o) = run(&["--no-sandbox", "--sandbox"]) else {
            panic!()
        };
        assert!(o.root.is_none() && o.sandboxed());
        let Action::Serve(o) = run(&["--sandbox", "--no-sandbox"]) else {
            panic!()
        };
        assert!(!o.sandboxed());
        let Action::Serve(o) = run(&[]) else { panic!() };
        assert!(!o.sandboxed());
        assert!(matches!(run(&["--root"]), Action::Usage(_)));
        assert!(matches!(run(&["--root", ""]), Action::Fatal { .. }));
        assert!(matches!(run(&["--rooot", "x"]), Action::Usage(_)));
        // An operand ends the options, long ones too.
        let Action::Serve(o) = run(&["operand", "--root", "/x"]) else {
            panic!()
        };
        assert!(o.root.is_none());
        for name in LONG_OPTIONS {
            let arg = format!("--{name}");
            let mut args = vec![arg.as_str()];
            if LONG_WITH_VALUE.contains(name) {
                args.push("/");
            }
            assert!(
                !matches!(run(&args), Action::Usage(_)),
                "{arg} is not accepted"
            );
        }
    }

    #[test]
    fn forced_modes() {
        let Action::Serve(o) = run(&["-m", "0640", "-u", "077"]) else {
            panic!()
        };
        assert_eq!(o.config.force_mode, Some(0o640));
        assert_eq!(o.config.creation_mode(0o777), 0o640);
        assert!(!o.config.force_mode_on_setstat && !o.config.atomic_uploads);
        let Action::Serve(o) = run(&["-m640", "--force-mode-on-setstat", "--atomic-uploads"])
        else {
            panic!()
        };
        assert_eq!(o.config.setstat_mode(0o4777), 0o640);
        assert!(o.config.atomic_uploads);
        let Action::Serve(o) = run(&[]) else { panic!() };
        assert_eq!(o.config.creation_mode(0o600), 0o600);
        assert_eq!(o.config.setstat_mode(0o4755), 0o4755);
        for bad in ["1000", "8", "x", ""] {
            assert!(matches!(
                run(&["-m", bad]),
                Action::Fatal { status: 255, .. }
            ));
        }
        assert!(matches!(run(&["-m"]), Action::Usage(_)));
        assert!(matches!(
            run(&["--force-mode-on-setstat"]),
            Action::Fatal { status: 255, .. }
        ));
    }

    #[test]
    fn umask_as_strtol() {
        assert_eq!(parse_umask(" 77"), Some(0o77));
        assert_eq!(parse_umask("+022"), Some(0o22));
        assert_eq!(parse_umask("-0"), Some(0));
        assert_eq!(parse_umask("8"), None);
        assert_eq!(parse_umask("077x"), None);
        assert_eq!(parse_umask(""), None);
        assert_eq!(parse_umask("1000"), None);
    }

    #[test]
    fn usage_names_the_program() {
        let Action::Usage(text) = parse(["/usr/bin/my-sftpd", "-h"]) else {
            panic!()
        };
        assert!(text.starts_with("usage: my-sftpd [-ehR]"));
        assert!(text.contains("[-u umask] [-m force_file_dir_perms]\n"));
        assert!(text.contains("\n       my-sftpd -Q protocol_feature\n"));
        assert!(text.ends_with(OPTIONS_HELP));
    }

    #[test]
    fn options_help_fits_79_columns() {
        for line in OPTIONS_HELP.lines() {
            assert!(line.len() < 80, "{line:?} is {} columns", line.len());
        }
    }
}
