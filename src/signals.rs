//! Ending a session on a signal: TERM, HUP and INT are caught (only where a session
//! has something to finish: audit records to write, hidden upload files to remove),
//! the session ends through its normal end, and the process then dies of the signal
//! as it would have without the handler.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that ended the session, 0 for none. Only `--audit-log` and
/// `--atomic-uploads` install the handler that sets it, so that `session_end` is
/// written and hidden upload files are removed before the process dies of the signal
/// as it would have.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    SIGNALLED.store(sig, Ordering::Relaxed);
    // A read of standard input about to block, or blocked already, returns at once
    // (end of file) when it is a socket, as behind sshd; otherwise the EINTR of a
    // read in progress ends it.
    // SAFETY: shutdown(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        nix::libc::shutdown(0, nix::libc::SHUT_RD);
    }
}

/// Catches SIGTERM, SIGHUP and SIGINT without SA_RESTART: a read waiting for the
/// client returns EINTR and the session ends with its record.
pub fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The signal caught, if any.
pub fn signalled() -> Option<nix::sys::signal::Signal> {
    match SIGNALLED.load(Ordering::Relaxed) {
        0 => None,
        n => nix::sys::signal::Signal::try_from(n).ok(),
    }
}

/// Dies of `sig` as the process would have without the handler.
pub fn die_of(sig: nix::sys::signal::Signal) -> ! {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: SIG_DFL installs no handler code.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let _ = nix::sys::signal::raise(sig);
    std::process::exit(128 + sig as i32)
}
