//! OpenSSH's log levels and destinations: syslog (ident `sftp-server`, with the pid,
//! the chosen facility) by default, stderr with `-e`. A line whose level is off costs
//! one atomic load: the [`logit!`](crate::logit) macro checks the level before anything is
//! formatted. Lines go out through the `log` facade, to `env_logger` on stderr or to
//! a small syslog logger built on nix's `syslog(3)` binding.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// OpenSSH's levels, least verbose first. `DEBUG` is `DEBUG1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Quiet = 0,
    Fatal,
    Error,
    Info,
    Verbose,
    Debug1,
    Debug2,
    Debug3,
}

impl Level {
    /// Parses a `-l` value (case-insensitive, as OpenSSH).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_uppercase().as_str() {
            "QUIET" => Level::Quiet,
            "FATAL" => Level::Fatal,
            "ERROR" => Level::Error,
            "INFO" => Level::Info,
            "VERBOSE" => Level::Verbose,
            "DEBUG" | "DEBUG1" => Level::Debug1,
            "DEBUG2" => Level::Debug2,
            "DEBUG3" => Level::Debug3,
            _ => return None,
        })
    }

    /// The name carried as the `log` record's target, so sinks can tell the levels
    /// the `log` crate folds together.
    fn target(self) -> &'static str {
        match self {
            Level::Quiet => "quiet",
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Info => "info",
            Level::Verbose => "verbose",
            Level::Debug1 => "debug1",
            Level::Debug2 => "debug2",
            Level::Debug3 => "debug3",
        }
    }

    fn as_log(self) -> log::Level {
        match self {
            Level::Quiet | Level::Fatal | Level::Error => log::Level::Error,
            Level::Info | Level::Verbose => log::Level::Info,
            Level::Debug1 => log::Level::Debug,
            Level::Debug2 | Level::Debug3 => log::Level::Trace,
        }
    }
}

/// Syslog facilities `-f` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facility {
    Daemon,
    User,
    Auth,
    Local(u8),
}

impl Facility {
    pub fn parse(s: &str) -> Option<Facility> {
        let up = s.to_ascii_uppercase();
        Some(match up.as_str() {
            "DAEMON" => Facility::Daemon,
            "USER" => Facility::User,
            "AUTH" => Facility::Auth,
            _ => {
                let n = up.strip_prefix("LOCAL")?.parse::<u8>().ok()?;
                if n > 7 || up.len() != 6 {
                    return None;
                }
                Facility::Local(n)
            }
        })
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Error as u8);

/// True when lines at `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level != Level::Quiet && level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Where lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    Syslog(Facility),
}

/// Sets the level and the destination; call once, before the first line.
pub fn init(level: Level, dest: Destination) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    let installed = match dest {
        Destination::Stderr => env_logger::Builder::new()
            .filter_level(log::LevelFilter::Trace)
            .format(|buf, record| {
                use std::io::Write;
                // OpenSSH marks debug lines with their level on stderr, nothing else.
                if let t @ ("debug1" | "debug2" | "debug3") = record.target() {
                    write!(buf, "{t}: ")?;
                }
                write!(buf, "{}\r\n", record.args())
            })
            .try_init()
            .is_ok(),
        Destination::Syslog(facility) => syslog::install(facility),
    };
    if installed {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Sends a line to syslog before [`init`], as OpenSSH does with the errors it finds
/// in its flags: ident `sftp-server`, facility AUTH, whatever `-f` and `-e` say.
pub fn early(level: Level, message: &str) {
    syslog::send_early(level.target(), message);
}

/// Writes one line at `level` (use [`logit!`](crate::logit), which checks the level first).
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    log::logger().log(
        &log::Record::builder()
            .args(args)
            .level(level.as_log())
            .target(level.target())
            .build(),
    );
    log::logger().flush();
}

/// Logs a line at one of OpenSSH's levels: `logit!(Info, "open \"{}\"", name)`.
/// Nothing is formatted when the level is off.
#[macro_export]
macro_rules! logit {
    ($level:ident, $($arg:tt)+) => {
        if $crate::logging::enabled($crate::logging::Level::$level) {
            $crate::logging::emit($crate::logging::Level::$level, format_args!($($arg)+));
        }
    };
}

/// Shows client bytes (paths, names) in a log line the way OpenSSH's `%s` would.
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

mod syslog {
    use super::Facility;
    use nix::syslog::{self as sys, Facility as F, LogFlags, Severity};

    struct Syslog;

    impl log::Log for Syslog {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            let (severity, text) = line(record.target(), record.args());
            let _ = sys::syslog(severity, text.as_str());
        }

        fn flush(&self) {}
    }

    fn line(target: &str, message: &dyn std::fmt::Display) -> (Severity, String) {
        let (severity, prefix) = match target {
            "fatal" => (Severity::LOG_CRIT, "fatal: "),
            "error" => (Severity::LOG_ERR, "error: "),
            "info" | "verbose" => (Severity::LOG_INFO, ""),
            "debug1" => (Severity::LOG_DEBUG, "debug1: "),
            "debug2" => (Severity::LOG_DEBUG, "debug2: "),
            _ => (Severity::LOG_DEBUG, "debug3: "),
        };
        (severity, format!("{prefix}{message}"))
    }

    pub fn send_early(target: &str, message: &str) {
        if sys::openlog(Some(c"sftp-server"), LogFlags::LOG_PID, F::LOG_AUTH).is_ok() {
            let (severity, text) = line(target, &message);
            let _ = sys::syslog(severity, text.as_str());
        }
    }

    pub fn install(facility: Facility) -> bool {
        let facility = match facility {
            Facility::Daemon => F::LOG_DAEMON,
            Facility::User => F::LOG_USER,
            Facility::Auth => F::LOG_AUTH,
            Facility::Local(n) => [
                F::LOG_LOCAL0,
                F::LOG_LOCAL1,
                F::LOG_LOCAL2,
                F::LOG_LOCAL3,
                F::LOG_LOCAL4,
                F::LOG_LOCAL5,
                F::LOG_LOCAL6,
                F::LOG_LOCAL7,
            ][n as usize],
        };
        if sys::openlog(Some(c"sftp-server"), LogFlags::LOG_PID, facility).is_err() {
            return false;
        }
        log::set_boxed_logger(Box::new(Syslog)).is_ok()
    }
}
