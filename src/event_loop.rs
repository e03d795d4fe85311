//! The I/O loop: read stdin in large chunks, handle every complete packet in the
//! buffer, and write all the replies with one call. Blocking I/O on the inherited
//! descriptors; `poll` only when a descriptor turns out to be non-blocking and a call
//! would block.

use crate::logit;
use crate::output::{Out, Pipe};
use crate::server::{Flow, Session};
use crate::transport::Transport;
use crate::wire::{MAX_FRAME, MAX_READ};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::BorrowedFd;

/// Input buffer: room for a whole maximal frame after any partial one, so one read
/// can always make progress, and large enough to take many small requests at once.
const INPUT_SIZE: usize = 4 * (MAX_FRAME + 4);
/// Replies are written out once this much is pending, so a burst of READs never
/// holds more than a few megabytes.
const FLUSH_AT: usize = 256 * 1024;
/// What the input and output buffers start with. Most sessions behind sshd sit idle
/// most of the time, and this is all an idle one holds; both grow to full size the
/// first time a read fills the input buffer (before that, the output buffer only as
/// replies need).
const START_SIZE: usize = 1024;

/// Who is on the other end, for the log line of a session ended by a bad frame.
pub struct Peer<'a> {
    pub client: &'a str,
    pub user: &'a str,
}

/// Runs the session until the client goes away or the session must end; returns the
/// exit status.
pub fn run(
    session: &mut Session,
    input: BorrowedFd<'_>,
    output: BorrowedFd<'static>,
    peer: &Peer<'_>,
) -> i32 {
    let mut buf = vec![0u8; START_SIZE];
    let mut start = 0;
    let mut end = 0;
    // The pipe for zero-copy READ exists only where it was asked for and can work.
    let pipe = match session.config.zero_copy_reads {
        true => Pipe::for_socket(output),
        false => None,
    };
    let mut out = Out::new(START_SIZE, pipe);
    let mut transport = Transport::new(output);
    loop {
        // Keep the unprocessed tail at the front so a whole frame always fits.
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 && buf.len() - end < MAX_FRAME + 4 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        // What was resolved for this run of requests is not kept while waiting.
        session.paths.forget();
        let n = match read(input, &mut buf[end..]) {
            Ok(0) => {
                logit!(Debug1, "read eof");
                return 0;
            }
            Ok(n) => n,
            // A signal the audit log catches: the caller records the end and dies.
            Err(Errno::EINTR) => return 1,
            Err(e) => {
                logit!(Error, "read: {}", crate::status::strerror(e));
                return 1;
            }
        };
        end += n;
        // A read that fills the first, small buffer means a burst of requests or a
        // frame larger than it: from now on the full sizes, in one step each (fresh
        // pages, which cost nothing until used; growing through every size between
        // would leave the heap with touched pages it keeps).
        if end == buf.len() && buf.len() < INPUT_SIZE {
            let mut full = vec![0u8; INPUT_SIZE];
            full[..end].copy_from_slice(&buf[..end]);
            buf = full;
            out.reserve(FLUSH_AT + MAX_FRAME);
        }
        while end - start >= 4 {
            let len =
                u32::from_be_bytes([buf[start], buf[start + 1], buf[start + 2], buf[start + 3]])
                    as usize;
            if len > MAX_FRAME {
                logit!(
                    Error,
                    "bad message from {} local user {}",
                    peer.client,
                    peer.user
                );
                let _ = flush(session, &mut transport, &mut out);
                return 11;
            }
            if end - start < 4 + len {
                break;
            }
            let packet = &buf[start + 4..start + 4 + len];
            let flow = session.handle_packet(packet, &mut out, Some(&mut transport));
            start += 4 + len;
            if let Flow::Exit(code) = flow {
                let _ = flush(session, &mut transport, &mut out);
                return code;
            }
            // Flush before the next READ could find the buffer or the pipe full.
            let pipe_full = out.pipe_full(MAX_READ as usize);
            let full = out.len() >= FLUSH_AT || session.audit_pending() >= FLUSH_AT;
            if (full || pipe_full) && flush(session, &mut transport, &mut out).is_err() {
                return 1;
            }
        }
        if flush(session, &mut transport, &mut out).is_err() {
            return 1;
        }
    }
}

fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // A signal caught while requests were served: the read would not see it.
        if crate::signals::signalled().is_some() {
            return Err(Errno::EINTR);
        }
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR | Errno::EAGAIN) if crate::signals::signalled().is_some() => {
                return Err(Errno::EINTR);
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => wait(fd, PollFlags::POLLIN)?,
            r => return r,
        }
    }
}

/// Writes every pending audit record, then every pending reply: no reply leaves
/// before the record of what it acknowledges. A record that cannot be written ends
/// the session with the replies unsent.
fn flush(session: &mut Session, transport: &mut Transport, out: &mut Out) -> Result<(), Errno> {
    session.flush_audit().inspect_err(|e| {
        logit!(Error, "audit log: write: {}", crate::status::strerror(*e));
    })?;
    transport.send(out).inspect_err(|e| {
        logit!(Error, "write: {}", crate::status::strerror(*e));
    })
}

/// Waits until `fd` has input (stdin inherited in non-blocking mode).
fn wait(fd: BorrowedFd<'_>, events: PollFlags) -> Result<(), Errno> {
    let mut fds = [PollFd::new(fd, events)];
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
