//! OpenSSH's command line, parsed into validated settings. The letters and their
//! meaning are OpenSSH's; anything new is a long option so it can never collide with
//! a future OpenSSH letter.

use crate::config::{Config, OpSet};
use crate::logging::{Facility, Level};
use crate::requests::REQUESTS;
use clap::{Arg, ArgAction, Command};

/// OpenSSH's usage text, printed for `-h` and for any bad option.
pub const USAGE: &str = concat!(
    "usage: sftp-server [-ehR] [-d start_directory] [-f log_facility] [-l log_level]\n",
    "\t[-P denied_requests] [-p allowed_requests] [-u umask]\n",
    "       sftp-server -Q protocol_feature\n",
);

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    /// Serve a session.
    Serve(Options),
    /// Print this to stdout and exit 0 (`-Q requests`, `--version`).
    Print(String),
    /// Print this to stderr and exit with this status (usage and bad values).
    Fail(String, i32),
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
}

fn command() -> Command {
    let value = |id: &'static str, short: char| Arg::new(id).short(short).num_args(1);
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
        // Run as a login shell with `-c command`: ignore everything after -c.
        .arg(
            Arg::new("shell_command")
                .short('c')
                .num_args(0..)
                .allow_hyphen_values(true)
                .hide(true),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue),
        )
}

/// Parses `args` (without the program name).
pub fn parse<I, S>(args: I) -> Action
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("sftp-server"))
        .chain(args.into_iter().map(Into::into));
    let m = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(_) => return Action::Fail(USAGE.to_string(), 1),
    };
    if m.get_flag("help") {
        return Action::Fail(USAGE.to_string(), 1);
    }
    if m.get_flag("version") {
        return Action::Print(format!("sftp-server {}\n", env!("CARGO_PKG_VERSION")));
    }
    if let Some(q) = m.get_one::<String>("query") {
        if !q.eq_ignore_ascii_case("requests") {
            return Action::Fail("Invalid query type\n".to_string(), 1);
        }
        let names: String = REQUESTS.iter().map(|r| format!("{}\n", r.name)).collect();
        return Action::Print(names);
    }
    let config = Config {
        read_only: m.get_flag("read_only"),
        denied: m.get_one::<String>("denied").map(|l| OpSet::from_list(l)),
        allowed: m.get_one::<String>("allowed").map(|l| OpSet::from_list(l)),
        ..Config::default()
    };
    let log_level = match m.get_one::<String>("level") {
        None => Level::Error,
        Some(l) => match Level::parse(l) {
            Some(l) => l,
            None => return Action::Fail(format!("Invalid log level \"{l}\"\n"), 1),
        },
    };
    let facility = match m.get_one::<String>("facility") {
        None => Facility::Auth,
        Some(f) => match Facility::parse(f) {
            Some(f) => f,
            None => return Action::Fail(format!("Invalid log facility \"{f}\"\n"), 1),
        },
    };
    let umask = match m.get_one::<String>("umask") {
        None => None,
        Some(u) => match u32::from_str_radix(u, 8) {
            Ok(v) if v <= 0o777 => Some(v),
            _ => return Action::Fail(format!("Invalid umask \"{u}\"\n"), 255),
        },
    };
    Action::Serve(Options {
        config,
        log_level,
        log_stderr: m.get_flag("stderr"),
        facility,
        start_dir: m.get_one::<String>("start_directory").cloned(),
        umask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let Action::Serve(o) = parse(["-e", "-l", "INFO", "-R", "-u", "022"]) else {
            panic!()
        };
        assert!(o.log_stderr && o.config.read_only);
        assert_eq!(o.log_level, Level::Info);
        assert_eq!(o.umask, Some(0o22));
        assert!(matches!(parse(["-h"]), Action::Fail(_, 1)));
        assert!(matches!(parse(["-x"]), Action::Fail(_, 1)));
        assert!(matches!(parse(["-u", "999"]), Action::Fail(_, 255)));
        assert!(matches!(parse(["-Q", "requests"]), Action::Print(_)));
        assert!(matches!(parse(["-c", "-x", "whatever"]), Action::Serve(_)));
    }
}
