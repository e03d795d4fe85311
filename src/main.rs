//! The `sftp-server` binary: flags to settings, process set-up (umask, start
//! directory, logging, signals), then the session on stdin and stdout.

use sftp_server::cli::{self, Action, Options};
use sftp_server::event_loop::{self, Peer};
use sftp_server::logging::{self, Destination};
use sftp_server::server::Session;
use sftp_server::{logit, longname};
use std::io::Write;
use std::os::fd::AsFd;

fn main() {
    let code = match cli::parse(std::env::args_os().skip(1)) {
        Action::Print(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Action::Fail(text, code) => {
            let _ = std::io::stderr().write_all(text.as_bytes());
            code
        }
        Action::Serve(opts) => serve(opts),
    };
    std::process::exit(code);
}

fn serve(opts: Options) -> i32 {
    let dest = if opts.log_stderr {
        Destination::Stderr
    } else {
        Destination::Syslog(opts.facility)
    };
    logging::init(opts.log_level, dest);
    // A write past RLIMIT_FSIZE must fail with EFBIG, not kill the session.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGXFSZ,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    longname::init_time_zone();
    let user = match nix::unistd::User::from_uid(nix::unistd::getuid()) {
        Ok(Some(u)) => u,
        _ => {
            logit!(Fatal, "No user found for uid {}", nix::unistd::getuid());
            return 255;
        }
    };
    if let Some(mask) = opts.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let client = sftp_server::peer::client_address(std::io::stdin().as_fd());
    logit!(
        Info,
        "session opened for local user {} from [{}]",
        user.name,
        client
    );
    if let Some(dir) = &opts.start_dir {
        let dir = expand_start_dir(dir, &user);
        if let Err(e) = nix::unistd::chdir(dir.as_str()) {
            logit!(Error, "chdir to \"{}\" failed: {}", dir, e.desc());
        }
    }
    let mut session = Session::new(opts.config);
    let peer = Peer {
        client: &client,
        user: &user.name,
    };
    let code = event_loop::run(
        &mut session,
        std::io::stdin().as_fd(),
        std::io::stdout().as_fd(),
        &peer,
    );
    session.close_all();
    logit!(
        Info,
        "session closed for local user {} from [{}]",
        user.name,
        client
    );
    code
}

/// `-d`'s expansions: `%%`, `%d` (home), `%u` (user name), `%U` (uid), leading `~`.
fn expand_start_dir(dir: &str, user: &nix::unistd::User) -> String {
    let home = user.dir.to_string_lossy();
    let mut out = String::new();
    let mut chars = dir.chars();
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
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    if out == "~" {
        home.into_owned()
    } else if let Some(rest) = out.strip_prefix("~/") {
        format!("{home}/{rest}")
    } else {
        out
    }
}
