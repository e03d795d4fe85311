//! The way out to the client: replies are encoded into one buffer (lengths written as
//! placeholders and patched when the body is complete, so nothing is built twice) and
//! written out in one call per batch. Where standard output is a Unix socket, READ
//! data goes from the file to the socket through a pipe, never through this process.

use crate::wire::*;
use bytes::BufMut;
use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Replies waiting to be written to the client: bytes, and file data parked in a
/// pipe (READ replies sent without copying the data through this process).
#[derive(Debug, Default)]
pub struct Out {
    /// Where replies go (standard output); none for an in-process session.
    to: Option<BorrowedFd<'static>>,
    buf: Vec<u8>,
    /// Where pipe data goes: after `buf[..at]` come `len` bytes from the pipe.
    spliced: Vec<(usize, usize)>,
    pipe: Option<Pipe>,
    /// Pipe slots (pages) in use.
    in_pipe: usize,
    /// File data went through the pipe since the client last had everything.
    unsettled: bool,
}

/// A pipe that holds READ data between the file and the client.
#[derive(Debug)]
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    pub capacity: usize,
}

/// One piece of the pending output, in order.
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    /// This many bytes from the pipe's reading end.
    Pipe(usize),
}

/// A NAME reply under construction: entries are appended, the count patched at the end.
#[derive(Debug)]
pub struct NameList {
    start: usize,
    count_at: usize,
    count: u32,
}

impl Out {
    /// Replies for `to`, with room for `capacity` bytes before a flush. Where `to` is a
    /// Unix stream socket, READ data will go through a pipe.
    pub fn new(to: BorrowedFd<'static>, capacity: usize) -> Out {
        Out {
            to: Some(to),
            buf: Vec::with_capacity(capacity),
            pipe: Pipe::for_socket(to),
            ..Out::default()
        }
    }

    pub fn pipe(&self) -> Option<&Pipe> {
        self.pipe.as_ref()
    }

    /// Whether the pipe could not take another READ of `max` bytes.
    pub fn pipe_full(&self, max: usize) -> bool {
        self.pipe
            .as_ref()
            .is_some_and(|p| self.in_pipe + pages(0, max) + 1 > p.capacity / PAGE)
    }

    /// The pending output, in order.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        let mut from = 0;
        self.spliced
            .iter()
            .flat_map(move |&(at, len)| {
                let bytes = &self.buf[from..at];
                from = at;
                [Piece::Bytes(bytes), Piece::Pipe(len)]
            })
            .chain(std::iter::once(Piece::Bytes(
                &self.buf[self.spliced.last().map_or(0, |s| s.0)..],
            )))
    }

    /// Forgets all pending output (an in-process caller has taken it from
    /// [`Out::as_bytes`]).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spliced.clear();
        self.in_pipe = 0;
    }

    /// Sends every pending reply to the client.
    pub fn flush(&mut self) -> Result<(), Errno> {
        let Some(to) = self.to else {
            return Ok(());
        };
        let mut result = Ok(());
        for piece in self.pieces() {
            result = match piece {
                Piece::Bytes(b) => write_all(to, b),
                Piece::Pipe(n) => match &self.pipe {
                    Some(p) => splice_all(p.read.as_fd(), to, n),
                    None => Err(Errno::EINVAL),
                },
            };
            if result.is_err() {
                break;
            }
        }
        if !self.spliced.is_empty() {
            self.unsettled = true;
        }
        self.clear();
        result
    }

    /// Makes sure the client has read every byte sent so far. Data that went through
    /// the pipe sits in the socket as references to the file's pages: a write to the
    /// file must wait until the client has it, or the client would see the write in a
    /// READ reply that came before it. Waits at most a few seconds (a client that
    /// stops reading altogether cannot hold the session forever).
    pub fn settle(&mut self) -> Result<(), Errno> {
        if !self.unsettled {
            return Ok(());
        }
        self.flush()?;
        let Some(to) = self.to else {
            return Ok(());
        };
        let start = std::time::Instant::now();
        while unsent(to)? > 0 {
            if start.elapsed() > SETTLE_LIMIT {
                crate::logit!(Debug1, "settle: client has not read its READ data");
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        self.unsettled = false;
        Ok(())
    }

    /// A DATA reply whose data `splice(2)` moves from `fd` at `offset` into the pipe,
    /// at most `max` bytes. Ok(0) at end of file (nothing is left in the output).
    /// Must be the last thing a request does: pipe data cannot be rolled back.
    pub fn data_spliced(
        &mut self,
        id: u32,
        fd: BorrowedFd<'_>,
        offset: i64,
        max: usize,
    ) -> Result<usize, Errno> {
        let Some(pipe) = &self.pipe else {
            return Err(Errno::EINVAL);
        };
        // A pipe holds pages: a range needs one slot per page it touches.
        if self.in_pipe + pages(offset, max) > pipe.capacity / PAGE {
            return Err(Errno::EAGAIN);
        }
        let mut off = offset;
        let mut n = 0;
        while n < max {
            match splice(
                fd,
                Some(&mut off),
                &pipe.write,
                None,
                max - n,
                SpliceFFlags::SPLICE_F_NONBLOCK,
            ) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(Errno::EINTR) => {}
                // Some data is in the pipe already: send that (a short read).
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            let start = self.begin(SSH_FXP_DATA, id);
            self.buf.put_u32(n as u32);
            patch_len_with(&mut self.buf, start, n);
            self.spliced.push((self.buf.len(), n));
            self.in_pipe += pages(offset, n);
        }
        Ok(n)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Where the next reply starts; [`Out::rollback`] returns to it.
    pub fn mark(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything written since `mark` (a reply begun by an operation that
    /// then failed).
    pub fn rollback(&mut self, mark: usize) {
        self.buf.truncate(mark);
    }

    /// Starts a reply: a length placeholder, the type and the id.
    fn begin(&mut self, ptype: u8, id: u32) -> usize {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_u8(ptype);
        self.buf.put_u32(id);
        start
    }

    fn finish(&mut self, start: usize) {
        patch_len(&mut self.buf, start);
    }

    pub fn version(&mut self, version: u32, extensions: &[(&str, &str)]) {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_u8(SSH_FXP_VERSION);
        self.buf.put_u32(version);
        for (name, data) in extensions {
            put_string(&mut self.buf, name.as_bytes());
            put_string(&mut self.buf, data.as_bytes());
        }
        self.finish(start);
    }

    pub fn status(&mut self, id: u32, code: u32, message: &str) {
        let start = self.begin(SSH_FXP_STATUS, id);
        self.buf.put_u32(code);
        put_string(&mut self.buf, message.as_bytes());
        put_string(&mut self.buf, b"");
        self.finish(start);
    }

    pub fn handle(&mut self, id: u32, handle: &[u8]) {
        let start = self.begin(SSH_FXP_HANDLE, id);
        put_string(&mut self.buf, handle);
        self.finish(start);
    }

    pub fn attrs(&mut self, id: u32, attrs: &Attrs) {
        let start = self.begin(SSH_FXP_ATTRS, id);
        attrs.encode(&mut self.buf);
        self.finish(start);
    }

    /// An EXTENDED_REPLY whose body `body` writes.
    pub fn extended_reply(&mut self, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
        let start = self.begin(SSH_FXP_EXTENDED_REPLY, id);
        body(&mut self.buf);
        self.finish(start);
    }

    /// A DATA reply with no data (a READ of length 0).
    pub fn empty_data(&mut self, id: u32) {
        let start = self.begin(SSH_FXP_DATA, id);
        put_string(&mut self.buf, b"");
        self.finish(start);
    }

    /// A DATA reply of at most `max` bytes that `fill` writes straight into the output
    /// buffer (for READ: the file data is copied once, from the kernel to here).
    /// `fill` returns how many bytes it wrote; on error, or when it wrote none,
    /// nothing is left in the buffer and the result says what happened.
    pub fn data<E>(
        &mut self,
        id: u32,
        max: usize,
        fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let start = self.begin(SSH_FXP_DATA, id);
        let len_at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.reserve(max);
        let spare = &mut self.buf.spare_capacity_mut()[..max];
        match fill(spare) {
            Ok(n) if n > 0 => {
                let n = n.min(max);
                // SAFETY: `fill` initialised the first `n` bytes of the spare capacity
                // (it returned their count, and `n <= max <= spare capacity`).
                unsafe { self.buf.set_len(self.buf.len() + n) };
                self.buf[len_at..len_at + 4].copy_from_slice(&(n as u32).to_be_bytes());
                self.finish(start);
                Ok(n)
            }
            other => {
                self.buf.truncate(start);
                other
            }
        }
    }

    /// Starts a NAME reply.
    pub fn names(&mut self, id: u32) -> NameList {
        let start = self.begin(SSH_FXP_NAME, id);
        let count_at = self.buf.len();
        self.buf.put_u32(0);
        NameList {
            start,
            count_at,
            count: 0,
        }
    }
}

impl NameList {
    /// Appends one entry; `longname` writes the long name in place.
    pub fn push(
        &mut self,
        out: &mut Out,
        name: &[u8],
        longname: impl FnOnce(&mut Vec<u8>),
        attrs: &Attrs,
    ) {
        put_string(&mut out.buf, name);
        let at = out.buf.len();
        out.buf.put_u32(0);
        longname(&mut out.buf);
        let n = (out.buf.len() - at - 4) as u32;
        out.buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
        attrs.encode(&mut out.buf);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes this reply holds so far.
    pub fn size(&self, out: &Out) -> usize {
        out.buf.len() - self.start
    }

    pub fn finish(self, out: &mut Out) {
        out.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        out.finish(self.start);
    }

    /// Drops the whole reply (no entries to send).
    pub fn abandon(self, out: &mut Out) {
        out.buf.truncate(self.start);
    }
}

/// Appends an SSH `string`: a u32 length and the bytes.
pub fn put_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.put_u32(s.len() as u32);
    buf.put_slice(s);
}

/// The page size the pipe's slots are counted in (the kernel's, on every Linux
/// architecture this runs on in practice; a larger page only makes the count cautious).
const PAGE: usize = 4096;

/// The pages the byte range `[offset, offset + len)` touches.
fn pages(offset: i64, len: usize) -> usize {
    let first = offset as usize % PAGE;
    (first + len).div_ceil(PAGE)
}

/// How long [`Out::settle`] waits for the client to read.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Pipe {
    /// A pipe for READ data, when `to` is a Unix stream socket (the kernel then hands
    /// the file's pages to the socket without copying, and the socket reports what its
    /// peer has not read yet, see [`Out::settle`]).
    fn for_socket(to: BorrowedFd<'_>) -> Option<Pipe> {
        use nix::sys::socket::{
            AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt,
            sockopt,
        };
        let kind = getsockopt(&to, sockopt::SockType).ok()?;
        let addr = getsockname::<SockaddrStorage>(to.as_raw_fd()).ok()?;
        if kind != SockType::Stream || addr.family() != Some(AddressFamily::Unix) {
            return None;
        }
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        // As large as allowed (1 MiB by default): several READ replies fit.
        let capacity = nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20))
            .or_else(|_| nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_GETPIPE_SZ))
            .ok()? as usize;
        (capacity >= MAX_READ as usize).then_some(Pipe {
            read,
            write,
            capacity,
        })
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
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::from(1000u16)) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the frame length of a packet starting at `start` whose last `extra` bytes
/// are not in the buffer.
fn patch_len_with(buf: &mut [u8], start: usize, extra: usize) {
    let len = (buf.len() - start - 4 + extra) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes the frame length of the packet starting at `start`.
fn patch_len(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_golden_bytes() {
        let mut out = Out::default();
        out.status(7, 2, "No such file");
        let expect: &[u8] = b"\0\0\0\x1d\x65\0\0\0\x07\0\0\0\x02\0\0\0\x0cNo such file\0\0\0\0";
        assert_eq!(out.as_bytes(), expect);
    }

    #[test]
    fn data_is_patched_or_rolled_back() {
        let mut out = Out::default();
        let n = out
            .data(1, 10, |buf| {
                for b in buf[..3].iter_mut() {
                    b.write(b'x');
                }
                Ok::<_, ()>(3)
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(out.as_bytes(), b"\0\0\0\x0c\x67\0\0\0\x01\0\0\0\x03xxx");
        let before = out.len();
        assert_eq!(out.data(2, 10, |_| Err::<usize, _>(5)), Err(5));
        assert_eq!(out.data(2, 10, |_| Ok::<_, ()>(0)), Ok(0));
        assert_eq!(out.len(), before);
    }

    #[test]
    fn name_list() {
        let mut out = Out::default();
        let mut names = out.names(3);
        names.push(
            &mut out,
            b"a",
            |b| b.extend_from_slice(b"la"),
            &Attrs::default(),
        );
        names.finish(&mut out);
        let expect: &[u8] = b"\0\0\0\x18\x68\0\0\0\x03\0\0\0\x01\0\0\0\x01a\0\0\0\x02la\0\0\0\0";
        assert_eq!(out.as_bytes(), expect);
    }
}
