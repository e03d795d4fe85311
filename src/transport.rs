//! How replies leave: the pending output of [`Out`] written to the client, in order,
//! bytes and spliced file data alike, with one call per piece.
//!
//! Spliced READ data ([`crate::cli`]'s `--zero-copy-reads`) is not a copy: the socket
//! holds references to the file's pages until the client reads them. A request that
//! changes a file's data must therefore wait until the client has taken everything
//! sent before it ([`Transport::settle`]); the dispatcher does that before such a
//! request starts, never in the middle of one.

use crate::output::{Out, Piece};
use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// The client's end: standard output.
#[derive(Debug)]
pub struct Transport {
    to: BorrowedFd<'static>,
    /// File data went through the pipe since the client last had everything.
    unsettled: bool,
}

impl Transport {
    pub fn new(to: BorrowedFd<'static>) -> Transport {
        Transport {
            to,
            unsettled: false,
        }
    }

    /// Sends every pending reply and empties `out`.
    pub fn send(&mut self, out: &mut Out) -> Result<(), Errno> {
        let mut result = Ok(());
        for piece in out.pieces() {
            result = match piece {
                Piece::Bytes(b) => write_all(self.to, b),
                Piece::Pipe(n) => match out.pipe() {
                    Some(p) => splice_all(p.read.as_fd(), self.to, n),
                    None => Err(Errno::EINVAL),
                },
            };
            if result.is_err() {
                break;
            }
        }
        if out.has_spliced() {
            self.unsettled = true;
        }
        out.clear();
        result
    }

    /// Sends every pending reply and waits until the client has read every byte sent
    /// so far, so that no spliced READ reply can show a change made after it. A
    /// client that has gone away ends the wait with EPIPE.
    pub fn settle(&mut self, out: &mut Out) -> Result<(), Errno> {
        if !self.unsettled && !out.has_spliced() {
            return Ok(());
        }
        self.send(out)?;
        let mut pause = Duration::from_micros(50);
        while unsent(self.to)? > 0 {
            let mut fds = [PollFd::new(self.to, PollFlags::empty())];
            let _ = poll(&mut fds, PollTimeout::ZERO);
            if fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
            {
                return Err(Errno::EPIPE);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        self.unsettled = false;
        Ok(())
    }
}

/// Bytes sent on socket `fd` that its peer has not read yet (SIOCOUTQ).
fn unsent(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the pointer, which is valid.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCOUTQ, &mut n) };
    Errno::result(r).map(|_| n)
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_writable(fd)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn splice_all(from: BorrowedFd<'_>, to: BorrowedFd<'_>, mut n: usize) -> Result<(), Errno> {
    while n > 0 {
        match splice(from, None, to, None, n, SpliceFFlags::SPLICE_F_MOVE) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(k) => n -= k,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_writable(to)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `fd` can take more, or a second has passed: a socket whose peer shut
/// down only its reading side never turns writable, yet a retried write fails at
/// once with EPIPE, so the session ends instead of hanging.
fn wait_writable(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(1000u16)) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
