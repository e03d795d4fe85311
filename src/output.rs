//! The replies: encoded into one buffer (lengths written as placeholders and patched
//! when the body is complete, so nothing is built twice) until the transport
//! ([`crate::transport`]) sends them. With `--zero-copy-reads`, READ data may instead
//! be parked in a pipe, to go from the file to the client without passing through
//! this process.

use crate::wire::*;
use bytes::BufMut;
use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Replies waiting to be sent: bytes, and file data parked in a pipe.
#[derive(Debug, Default)]
pub struct Out {
    buf: Vec<u8>,
    /// Where pipe data goes: after `buf[..at]` come `len` bytes from the pipe.
    spliced: Vec<(usize, usize)>,
    pipe: Option<Pipe>,
    /// Pipe slots (pages) in use.
    in_pipe: usize,
}

/// A pipe that holds READ data between the file and the client.
#[derive(Debug)]
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    /// Bytes it holds, in slots of `page` bytes (the system's page size).
    pub capacity: usize,
    pub page: usize,
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
    /// Room for `capacity` bytes of replies before a flush; READ data is spliced
    /// through `pipe` when there is one.
    pub fn new(capacity: usize, pipe: Option<Pipe>) -> Out {
        Out {
            buf: Vec::with_capacity(capacity),
            pipe,
            ..Out::default()
        }
    }

    /// Makes room for `capacity` bytes of replies in all, in one step.
    pub fn reserve(&mut self, capacity: usize) {
        self.buf.reserve(capacity.saturating_sub(self.buf.len()));
    }

    pub fn pipe(&self) -> Option<&Pipe> {
        self.pipe.as_ref()
    }

    /// Whether file data waits in the pipe.
    pub fn has_spliced(&self) -> bool {
        !self.spliced.is_empty()
    }

    /// Whether the pipe could not take another READ of `max` bytes.
    pub fn pipe_full(&self, max: usize) -> bool {
        self.pipe
            .as_ref()
            .is_some_and(|p| self.in_pipe + pages(p.page, 0, max) + 1 > p.capacity / p.page)
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

    /// Forgets all pending output (it has been sent, or an in-process caller has
    /// taken it from [`Out::as_bytes`]).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spliced.clear();
        self.in_pipe = 0;
    }

    /// A DATA reply of at most `max` bytes of `fd` from `offset`: what one pread(2)
    /// returns, or read(2) where the file cannot seek (a FIFO, a terminal). Ok(0) at
    /// end of file; then, and on error, nothing is left in the output.
    pub fn data(
        &mut self,
        id: u32,
        fd: BorrowedFd<'_>,
        offset: i64,
        max: usize,
    ) -> Result<usize, Errno> {
        let start = self.begin_data(id);
        match self.read_into(fd, offset, max) {
            Ok(n) if n > 0 => {
                patch_data_len(&mut self.buf, start, 0);
                Ok(n)
            }
            other => {
                self.buf.truncate(start);
                other
            }
        }
    }

    /// Starts a DATA reply whose lengths [`patch_data_len`] writes once the data is in.
    fn begin_data(&mut self, id: u32) -> usize {
        let start = self.begin(SSH_FXP_DATA, id);
        self.buf.put_u32(0);
        start
    }

    /// Appends at most `max` bytes of `fd` from `offset` to the buffer (one pread(2),
    /// or read(2) where the file cannot seek); how many it appended.
    fn read_into(&mut self, fd: BorrowedFd<'_>, offset: i64, max: usize) -> Result<usize, Errno> {
        self.buf.reserve(max);
        let spare = &mut self.buf.spare_capacity_mut()[..max];
        let raw = fd.as_raw_fd();
        // SAFETY: pread and read write at most `spare.len()` bytes into `spare`, valid
        // writable memory that nothing else refers to; they never read from it.
        let r = unsafe { nix::libc::pread(raw, spare.as_mut_ptr().cast(), spare.len(), offset) };
        let r = match Errno::result(r) {
            // SAFETY: as above.
            Err(Errno::ESPIPE) => unsafe {
                Errno::result(nix::libc::read(raw, spare.as_mut_ptr().cast(), spare.len()))
            },
            r => r,
        };
        let n = (r? as usize).min(max);
        // SAFETY: the kernel initialised the first `n` bytes of the spare capacity (the
        // count it returned, at most `max`, which is within the spare capacity).
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Ok(n)
    }

    /// A DATA reply of at most `max` bytes of the regular file `fd` from `offset`,
    /// moved by splice(2) into the pipe. Where the splice ends early (the end of what
    /// the page cache holds, which on FUSE and network file systems need not be the
    /// end of the file; a short or failed splice), pread(2) takes over from there, so
    /// the reply ends where a pread would end it. Ok(0) at end of file (nothing is
    /// left in the output). Err(EAGAIN) when the pipe is too full: send what is
    /// pending first. Must be the last thing a request does: pipe data cannot be
    /// rolled back.
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
        let pipe_page = pipe.page;
        // A pipe holds pages: a range needs one slot per page it touches.
        if self.in_pipe + pages(pipe.page, offset, max) > pipe.capacity / pipe.page {
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
                Err(_) => break,
            }
        }
        if n == 0 {
            return self.data(id, fd, offset, max);
        }
        let start = self.begin_data(id);
        self.spliced.push((self.buf.len(), n));
        self.in_pipe += pages(pipe_page, offset, n);
        // What the splice did not bring, as pread sees it; an error there leaves a
        // short reply, as a short pread would.
        let rest = match n < max {
            true => self.read_into(fd, offset + n as i64, max - n).unwrap_or(0),
            false => 0,
        };
        patch_data_len(&mut self.buf, start, n);
        Ok(n + rest)
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

/// The pages (pipe slots) the byte range `[offset, offset + len)` of a file touches:
/// a pipe holds file data one page per slot.
fn pages(page: usize, offset: i64, len: usize) -> usize {
    let first = offset as usize % page;
    (first + len).div_ceil(page)
}

impl Pipe {
    /// A pipe for READ data, when `to` is a Unix stream socket (the kernel then hands
    /// the file's pages to the socket without copying, and the socket reports what its
    /// peer has not read yet, see [`crate::transport::Transport::settle`]).
    pub fn for_socket(to: BorrowedFd<'_>) -> Option<Pipe> {
        use nix::sys::socket::{
            AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt,
            sockopt,
        };
        use nix::unistd::{SysconfVar, sysconf};
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
        let page = sysconf(SysconfVar::PAGE_SIZE).ok()??.max(1) as usize;
        // A READ of the largest size must fit whatever its alignment.
        (capacity / page > pages(page, page as i64 - 1, MAX_READ as usize)).then_some(Pipe {
            read,
            write,
            capacity,
            page,
        })
    }
}

/// Writes the frame and data lengths of the DATA reply starting at `start`, whose
/// last `extra` bytes are not in the buffer (they wait in the pipe).
fn patch_data_len(buf: &mut [u8], start: usize, extra: usize) {
    // After the frame length, the type and the id: the data's length, then the data.
    let data_at = start + 13;
    let len = (buf.len() - start - 4 + extra) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    let data_len = (buf.len() - data_at + extra) as u32;
    buf[data_at - 4..data_at].copy_from_slice(&data_len.to_be_bytes());
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
        use std::os::fd::AsFd;
        let path = std::env::temp_dir().join(format!("sftp-out-test-{}", std::process::id()));
        std::fs::write(&path, b"xxx").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut out = Out::default();
        assert_eq!(out.data(1, file.as_fd(), 0, 10), Ok(3));
        assert_eq!(out.as_bytes(), b"\0\0\0\x0c\x67\0\0\0\x01\0\0\0\x03xxx");
        let before = out.len();
        // End of file, and an error: nothing is left of the reply.
        assert_eq!(out.data(2, file.as_fd(), 3, 10), Ok(0));
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        assert_eq!(out.data(3, dir.as_fd(), 0, 10), Err(Errno::EISDIR));
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
