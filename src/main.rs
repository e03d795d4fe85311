//! The `sftp-server` binary: flags to settings, process set-up (umask, logging,
//! signals, root and start directory, sandbox), then the session on stdin and stdout.

use sftp_server::audit::{self, Audit};
use sftp_server::cli::{self, Action, Options};
use sftp_server::event_loop::{self, Peer};
use sftp_server::logging::{self, Destination, Level};
use sftp_server::paths::Paths;
use sftp_server::server::Session;
use sftp_server::{logit, longname, peer, sandbox, signals};
use std::io::Write;

fn main() {
    let code = match cli::parse(std::env::args_os()) {
        Action::Print(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Action::Usage(text) => {
            let _ = std::io::stderr().write_all(text.as_bytes());
            1
        }
        Action::Fatal {
            status,
            errors,
            stderr,
        } => {
            if let Some(text) = stderr {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            fail(status, &errors)
        }
        Action::Serve(opts) => serve(opts),
    };
    std::process::exit(code);
}

/// An error in the flags: to syslog, as OpenSSH sends it (its logging is not set up
/// yet, whatever -e and -f say).
fn fail(status: i32, errors: &[(Level, String)]) -> i32 {
    for (level, message) in errors {
        logging::early(*level, message);
    }
    status
}

fn serve(opts: Options) -> i32 {
    for w in &opts.warnings {
        logging::early(Level::Error, w);
    }
    let user = match nix::unistd::User::from_uid(nix::unistd::getuid()) {
        Ok(Some(u)) => u,
        _ => {
            let uid = nix::unistd::getuid();
            return fail(
                255,
                &[(Level::Fatal, format!("No user found for uid {uid}"))],
            );
        }
    };
    // OpenSSH expands -d while reading its flags, so its errors are flag errors.
    let start_dir = match opts.start_dir.as_deref().map(|d| expand_dir(d, &user)) {
        None => None,
        Some(Ok(dir)) => Some(dir),
        Some(Err(errors)) => return fail(255, &errors),
    };
    // --root takes the same expansions (a name that is not UTF-8 is taken as is).
    let root = match opts.root.as_deref().map(|r| (r, r.to_str())) {
        None => None,
        Some((_, Some(r))) => match expand_dir(r, &user) {
            Ok(dir) => Some(std::ffi::OsString::from(dir)),
            Err(errors) => return fail(255, &errors),
        },
        Some((r, None)) => Some(r.to_os_string()),
    };
    // inetd and xinetd hand the connection over as standard error too: log lines
    // written there would land inside the SFTP stream and break the session at the
    // first one, so -e gives way to syslog.
    let stderr_is_connection = opts.log_stderr && stderr_is_the_connection();
    let dest = if opts.log_stderr && !stderr_is_connection {
        Destination::Stderr
    } else {
        Destination::Syslog(opts.facility)
    };
    logging::init(opts.log_level, dest);
    if stderr_is_connection {
        logit!(
            Error,
            "standard error is the client's connection: logging to syslog instead (-e)"
        );
    }
    // The audit sink is opened before --root and the sandbox take effect, and is the
    // only thing ever opened for it; without it the session does not start.
    let sink = match opts.audit_log.as_deref().map(|d| audit_sink(d, &user)) {
        None => None,
        Some(Ok(sink)) => Some(sink),
        Some(Err(message)) => {
            logit!(Fatal, "{}", message);
            return 255;
        }
    };
    let mut paths = match root.as_deref().map(open_root) {
        None => Paths::new(),
        Some(Ok(paths)) => paths,
        Some(Err(message)) => {
            logit!(Fatal, "{}", message);
            return 255;
        }
    };
    // A write past RLIMIT_FSIZE must fail with EFBIG, not kill the session.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    longname::init_time_zone();
    // With -m the mode given to open(2) and mkdir(2) is the one wanted: no umask may
    // take bits away, so -u has no effect (as in the patch that defines -m).
    let umask = match opts.config.force_mode {
        Some(_) => Some(0),
        None => opts.umask,
    };
    if let Some(mask) = umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let closed = |client: &str| {
        logit!(
            Info,
            "session closed for local user {} from [{}]",
            user.name,
            client
        );
    };
    // SAFETY: standard input stays open for the whole life of the process. (Not
    // std::io::stdin(): that allocates a buffer the session never uses.)
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    let client = match peer::client_address(stdin) {
        Ok(c) => c,
        Err(raw) => {
            logit!(Error, "Malformed SSH_CONNECTION variable: \"{}\"", raw);
            closed(&raw);
            return 255;
        }
    };
    logit!(
        Info,
        "session opened for local user {} from [{}]",
        user.name,
        client
    );
    if let Some(dir) = &start_dir {
        // Confined, the start directory is taken inside the root.
        let r = match paths.root_fd() {
            None => nix::unistd::chdir(dir.as_str()),
            Some(_) => paths.set_start(dir.as_bytes()),
        };
        if let Err(e) = r {
            logit!(
                Error,
                "chdir to \"{}\" failed: {}",
                dir,
                sftp_server::status::strerror(e)
            );
        }
    }
    if let Some(root) = paths.root_fd() {
        // Nothing outside stays the working directory.
        let _ = nix::unistd::fchdir(root);
    }
    if opts.sandboxed() {
        let report = sandbox::apply(paths.root_fd(), opts.config.read_only);
        // Asked for by name, a sandbox that is not all there is no sandbox to serve in.
        if opts.sandbox == Some(true) && !report.complete() {
            logit!(
                Fatal,
                "sandbox: --sandbox was given and could not be applied in full; not serving"
            );
            closed(&client);
            return 255;
        }
    }
    let mut config = opts.config;
    if paths.root_fd().is_some() {
        config.max_handles = sftp_server::config::default_max_handles(true);
    }
    let atomic_uploads = config.atomic_uploads;
    let mut session = Session::new(config);
    session.paths = paths;
    if let Some(sink) = sink {
        session.audit = Some(Audit::new(
            sink,
            audit::Identity {
                user: user.name.clone(),
                uid: user.uid.as_raw(),
                client: client.clone(),
                root: root.as_ref().map(|r| r.to_string_lossy().into_owned()),
            },
        ));
    }
    // A caught signal ends the session through its end: the audit log's last records,
    // and no hidden upload file left behind.
    if session.audit.is_some() || atomic_uploads {
        signals::catch_signals();
    }
    let peer = Peer {
        client: &client,
        user: &user.name,
    };
    release_start_up_memory();
    let code = event_loop::run(
        &mut session,
        stdin,
        // SAFETY: standard output stays open for the whole life of the process.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(1) },
        &peer,
    );
    let signal = signals::signalled();
    let reason = match (signal, code) {
        (Some(_), _) => "signal",
        (None, 0) => "client closed",
        (None, _) => "error",
    };
    if let Err(e) = session.end_audit(reason) {
        logit!(
            Error,
            "audit log: write: {}",
            sftp_server::status::strerror(e)
        );
    }
    closed(&client);
    if let Some(sig) = signal {
        signals::die_of(sig);
    }
    code
}

/// Opens `--audit-log`'s destination; a path takes `-d`'s expansions.
fn audit_sink(dest: &str, user: &nix::unistd::User) -> Result<audit::Sink, String> {
    let dest = match audit::Dest::parse(dest)? {
        audit::Dest::Path(p) => audit::Dest::Path(expand_dir(&p, user).map_err(|errors| {
            errors
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; ")
        })?),
        other => other,
    };
    audit::Sink::open(&dest)
}

/// Gives back to the system the heap pages that start-up used and freed (flag
/// parsing, the user and time zone look-ups and their stdio buffers): glibc keeps
/// them otherwise, and an idle session would hold them for its whole life.
fn release_start_up_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// `--root`: the directory opened once, and paths confined to it.
fn open_root(dir: &std::ffi::OsStr) -> Result<Paths, String> {
    use nix::fcntl::{AT_FDCWD, OFlag, openat};
    let shown = dir.to_string_lossy();
    let fd = openat(
        AT_FDCWD,
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| {
        format!(
            "root directory \"{}\": {}",
            shown,
            sftp_server::status::strerror(e)
        )
    })?;
    let real =
        std::fs::canonicalize(dir).map_err(|e| format!("root directory \"{shown}\": {e}"))?;
    let (paths, openat2) = Paths::confined(fd, real);
    if !openat2 {
        logit!(
            Error,
            "openat2 is not available: paths are resolved one component at a time"
        );
    }
    Ok(paths)
}

/// `-d`'s expansions as OpenSSH applies them (and `--root`'s): a leading `~` or
/// `~user` first, then `%%`, `%d` (home), `%u` (user name) and `%U` (uid). An
/// unknown user or `%` key is fatal, as in OpenSSH: the messages to report come back
/// as the error.
fn expand_dir(dir: &str, user: &nix::unistd::User) -> Result<String, Vec<(Level, String)>> {
    let home = user.dir.to_string_lossy().into_owned();
    let tilded = match dir.strip_prefix('~') {
        None => dir.to_string(),
        Some(rest) => {
            let (name, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let base = if name.is_empty() {
                home.clone()
            } else {
                match nix::unistd::User::from_name(name) {
                    Ok(Some(u)) => u.dir.to_string_lossy().into_owned(),
                    _ => {
                        return Err(vec![(
                            Level::Error,
                            format!("tilde_expand: No such user {name}"),
                        )]);
                    }
                }
            };
            format!("{base}{tail}")
        }
    };
    let mut out = String::new();
    let mut chars = tilded.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home),
            Some('u') => out.push_str(&user.name),
            Some('U') => out.push_str(&user.uid.to_string()),
            Some(other) => {
                return Err(vec![
                    (
                        Level::Error,
                        format!("vdollar_percent_expand: unknown key %{other}"),
                    ),
                    (Level::Fatal, "percent_expand: failed".into()),
                ]);
            }
            None => {
                return Err(vec![
                    (
                        Level::Error,
                        "vdollar_percent_expand: invalid format".into(),
                    ),
                    (Level::Fatal, "percent_expand: failed".into()),
                ]);
            }
        }
    }
    Ok(out)
}

/// Whether standard error is the very socket the session runs on (standard input or
/// output), as inetd-style super-servers pass it.
fn stderr_is_the_connection() -> bool {
    use nix::sys::stat::{SFlag, fstat};
    use std::os::fd::BorrowedFd;
    // SAFETY: descriptors 0, 1 and 2 stay open for the life of the process; fstat only
    // reads them.
    let st = |fd| fstat(unsafe { BorrowedFd::borrow_raw(fd) }).ok();
    let Some(err) = st(2) else {
        return false;
    };
    let is_socket = SFlag::from_bits_truncate(err.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK;
    is_socket
        && [0, 1]
            .into_iter()
            .filter_map(st)
            .any(|s| (s.st_dev, s.st_ino) == (err.st_dev, err.st_ino))
}
