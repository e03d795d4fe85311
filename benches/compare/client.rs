//! A small pipelined SFTP version 3 client, written from the protocol draft and
//! independent of the server crate's codec.
//!
//! A [`Job`] hands out requests one at a time and checks each reply; [`Conn::run`]
//! keeps up to `window` of them in flight on non-blocking descriptors, so the server
//! never waits for the client's round trip while the window is full.

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::uio::writev;
use nix::unistd::read;
use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// Packet types.
pub mod fxp {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const EXTENDED: u8 = 200;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// `SSH_FXF_*` open flags.
pub mod pflags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// `SSH_FX_*` status codes.
pub mod status {
    pub const OK: u32 = 0;
    pub const EOF: u32 = 1;
}

mod attr {
    pub const SIZE: u32 = 0x01;
    pub const UIDGID: u32 = 0x02;
    pub const PERMISSIONS: u32 = 0x04;
    pub const ACMODTIME: u32 = 0x08;
    pub const EXTENDED: u32 = 0x8000_0000;
}

/// Largest reply accepted: OpenSSH's 256 KiB message limit with room to spare.
const MAX_PACKET: usize = 1024 * 1024;
/// Input buffer: several maximal replies per read.
const INPUT_SIZE: usize = 4 * MAX_PACKET;
/// How long the server may stay silent with requests outstanding before the run is
/// declared stalled (not a timing limit: only a hang ends the benchmark).
const STALL_LIMIT: Duration = Duration::from_secs(120);

/// Requests and reply checks of one workload.
pub trait Job {
    /// What the job needs to remember about a request until its reply arrives.
    type Tag;
    /// Encodes the next request into `req` if one can be sent now. Returns `None`, and
    /// encodes nothing, if the job must wait for replies or has nothing left to send.
    fn next(&mut self, req: &mut Request<'_>) -> Option<Self::Tag>;
    /// Checks the reply to the request tagged `tag`.
    fn reply(&mut self, tag: Self::Tag, reply: Reply<'_>) -> Result<()>;
    /// Checks, once nothing is in flight, that the job did all it was meant to.
    fn finish(&self) -> Result<()>;
}

/// Most pieces handed to one `writev`.
const MAX_IOV: usize = 64;

/// Requests encoded and not yet written: encoded bytes, and WRITE data taken by
/// reference from a job's content, so sending it costs the client one copy (into the
/// socket) and the benchmark measures the server rather than its own client.
#[derive(Default)]
struct Outbox {
    /// Encoded bytes; `pieces` say where in the stream they go.
    bytes: Vec<u8>,
    /// Bytes of `bytes` already covered by a `Piece::Bytes`.
    covered: usize,
    pieces: VecDeque<Piece>,
    /// Bytes of the front piece already written.
    front_done: usize,
    /// Where the front `Piece::Bytes` starts in `bytes`.
    bytes_pos: usize,
}

enum Piece {
    /// The next this many bytes of `Outbox::bytes`.
    Bytes(usize),
    /// `content[start..end]`.
    Shared(Rc<[u8]>, usize, usize),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Bytes(n) => *n,
            Piece::Shared(_, start, end) => end - start,
        }
    }
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.pieces.is_empty() && self.covered == self.bytes.len()
    }

    /// Closes the run of encoded bytes so far as one piece.
    fn seal(&mut self) {
        let n = self.bytes.len() - self.covered;
        if n > 0 {
            self.pieces.push_back(Piece::Bytes(n));
            self.covered = self.bytes.len();
        }
    }

    fn share(&mut self, content: &Rc<[u8]>, start: usize, end: usize) {
        self.seal();
        self.pieces
            .push_back(Piece::Shared(Rc::clone(content), start, end));
    }

    /// Writes what the descriptor takes; true if anything was written.
    fn flush(&mut self, fd: &OwnedFd) -> Result<bool> {
        self.seal();
        let mut iov = Vec::with_capacity(MAX_IOV);
        let mut pos = self.bytes_pos;
        for (i, piece) in self.pieces.iter().take(MAX_IOV).enumerate() {
            let skip = if i == 0 { self.front_done } else { 0 };
            let slice = match piece {
                Piece::Bytes(n) => {
                    pos += n;
                    &self.bytes[pos - n..pos]
                }
                Piece::Shared(content, start, end) => &content[*start..*end],
            };
            iov.push(IoSlice::new(&slice[skip..]));
        }
        if iov.is_empty() {
            return Ok(false);
        }
        let mut n = match writev(fd, &iov) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return Ok(false),
            Err(Errno::EINTR) => return Ok(true),
            Err(e) => return Err(format!("write to server: {e}")),
        };
        while n > 0 {
            let front = &self.pieces[0];
            let left = front.len() - self.front_done;
            if n < left {
                self.front_done += n;
                break;
            }
            n -= left;
            if let Piece::Bytes(len) = front {
                self.bytes_pos += len;
            }
            self.pieces.pop_front();
            self.front_done = 0;
        }
        if self.pieces.is_empty() {
            self.bytes.clear();
            self.covered = 0;
            self.bytes_pos = 0;
        }
        Ok(true)
    }
}

/// The client end of a session: one descriptor for a socket (both fields refer to it)
/// or one per pipe.
pub struct Conn {
    rfd: OwnedFd,
    wfd: OwnedFd,
    out: Outbox,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    next_id: u32,
}

impl Conn {
    /// Takes the client ends of the server's stdout (`rfd`) and stdin (`wfd`).
    pub fn new(rfd: OwnedFd, wfd: OwnedFd) -> Result<Conn> {
        for fd in [&rfd, &wfd] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .map_err(|e| format!("O_NONBLOCK: {e}"))?;
        }
        Ok(Conn {
            rfd,
            wfd,
            out: Outbox::default(),
            input: vec![0; INPUT_SIZE],
            in_start: 0,
            in_end: 0,
            next_id: 0,
        })
    }

    /// INIT version 3; the server must answer VERSION 3.
    pub fn handshake(&mut self) -> Result<()> {
        let bytes = &mut self.out.bytes;
        bytes.extend_from_slice(&5u32.to_be_bytes());
        bytes.push(fxp::INIT);
        bytes.extend_from_slice(&3u32.to_be_bytes());
        let mut last_progress = Instant::now();
        loop {
            if let Some((start, end)) = self.take_packet()? {
                let packet = &self.input[start..end];
                if packet[0] != fxp::VERSION || packet.len() < 5 {
                    return Err(format!("expected VERSION, got packet type {}", packet[0]));
                }
                let version = u32::from_be_bytes(packet[1..5].try_into().unwrap());
                if version != 3 {
                    return Err(format!("server speaks version {version}, not 3"));
                }
                return Ok(());
            }
            let progress = self.flush()? | self.fill()?;
            if progress {
                last_progress = Instant::now();
            } else {
                self.wait(last_progress)?;
            }
        }
    }

    /// Runs `job` to completion with up to `window` requests in flight.
    pub fn run<J: Job>(&mut self, job: &mut J, window: usize) -> Result<()> {
        let mut inflight: HashMap<u32, J::Tag> = HashMap::with_capacity(2 * window);
        let mut last_progress = Instant::now();
        loop {
            while inflight.len() < window {
                let id = self.next_id;
                let mut req = Request::new(&mut self.out, id);
                let Some(tag) = job.next(&mut req) else {
                    assert_eq!(req.count, 0, "a job encoded a request it did not tag");
                    break;
                };
                assert_eq!(req.count, 1, "a job encoded {} requests at once", req.count);
                inflight.insert(id, tag);
                self.next_id = id.wrapping_add(1);
            }
            if inflight.is_empty() {
                return job.finish();
            }
            let mut progress = self.flush()? | self.fill()?;
            while let Some((start, end)) = self.take_packet()? {
                progress = true;
                let packet = &self.input[start..end];
                if packet.len() < 5 {
                    return Err(format!("reply of {} bytes", packet.len()));
                }
                let kind = packet[0];
                let id = u32::from_be_bytes(packet[1..5].try_into().unwrap());
                let tag = inflight
                    .remove(&id)
                    .ok_or_else(|| format!("reply (type {kind}) to unknown request id {id}"))?;
                let reply = Reply::parse(kind, &packet[5..])
                    .map_err(|e| format!("request {id}: malformed reply: {e}"))?;
                job.reply(tag, reply)
                    .map_err(|e| format!("request {id}: {e}"))?;
            }
            if progress {
                last_progress = Instant::now();
            } else {
                self.wait(last_progress)?;
            }
        }
    }

    /// Writes what it can of the pending requests; true if anything was written.
    fn flush(&mut self) -> Result<bool> {
        self.out.flush(&self.wfd)
    }

    /// Reads what is available; true if anything was read.
    fn fill(&mut self) -> Result<bool> {
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        } else if self.input.len() - self.in_end < MAX_PACKET + 4 {
            self.input.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        match read(&self.rfd, &mut self.input[self.in_end..]) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => {
                self.in_end += n;
                Ok(true)
            }
            Err(Errno::EAGAIN) => Ok(false),
            Err(Errno::EINTR) => Ok(true),
            Err(e) => Err(format!("read from server: {e}")),
        }
    }

    /// The range of the next complete packet's body (type byte onwards), if one has
    /// arrived.
    fn take_packet(&mut self) -> Result<Option<(usize, usize)>> {
        let available = self.in_end - self.in_start;
        if available < 4 {
            return Ok(None);
        }
        let header = &self.input[self.in_start..self.in_start + 4];
        let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
        if len == 0 || len > MAX_PACKET {
            return Err(format!("reply length {len}"));
        }
        if available < 4 + len {
            return Ok(None);
        }
        let start = self.in_start + 4;
        self.in_start = start + len;
        Ok(Some((start, start + len)))
    }

    /// Waits until the server can take more or has sent something.
    fn wait(&self, last_progress: Instant) -> Result<()> {
        let mut fds = vec![PollFd::new(self.rfd.as_fd(), PollFlags::POLLIN)];
        if !self.out.is_empty() {
            fds.push(PollFd::new(self.wfd.as_fd(), PollFlags::POLLOUT));
        }
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        if last_progress.elapsed() > STALL_LIMIT {
            return Err(format!(
                "the server has not answered for {} s",
                STALL_LIMIT.as_secs()
            ));
        }
        Ok(())
    }
}

/// Encodes one request; a job calls exactly one of its methods per [`Job::next`].
pub struct Request<'a> {
    out: &'a mut Outbox,
    id: u32,
    count: u32,
}

impl<'a> Request<'a> {
    fn new(out: &'a mut Outbox, id: u32) -> Self {
        Request { out, id, count: 0 }
    }

    fn begin(&mut self, kind: u8) -> usize {
        self.count += 1;
        let start = self.out.bytes.len();
        self.out.bytes.extend_from_slice(&[0; 4]);
        self.out.bytes.push(kind);
        self.u32(self.id);
        start
    }

    fn end(&mut self, start: usize) {
        let len = (self.out.bytes.len() - start - 4) as u32;
        self.out.bytes[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.out.bytes.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.bytes.extend_from_slice(&v.to_be_bytes());
    }

    fn string(&mut self, s: &[u8]) {
        self.u32(s.len() as u32);
        self.out.bytes.extend_from_slice(s);
    }

    /// ATTRS with only permissions, or with nothing.
    fn attrs(&mut self, perm: Option<u32>) {
        match perm {
            Some(p) => {
                self.u32(attr::PERMISSIONS);
                self.u32(p);
            }
            None => self.u32(0),
        }
    }

    fn path_request(&mut self, kind: u8, path: &str) {
        let start = self.begin(kind);
        self.string(path.as_bytes());
        self.end(start);
    }

    fn handle_request(&mut self, kind: u8, handle: &[u8]) {
        let start = self.begin(kind);
        self.string(handle);
        self.end(start);
    }

    pub fn open(&mut self, path: &str, flags: u32, perm: Option<u32>) {
        let start = self.begin(fxp::OPEN);
        self.string(path.as_bytes());
        self.u32(flags);
        self.attrs(perm);
        self.end(start);
    }

    pub fn close(&mut self, handle: &[u8]) {
        self.handle_request(fxp::CLOSE, handle);
    }

    pub fn read(&mut self, handle: &[u8], offset: u64, len: u32) {
        let start = self.begin(fxp::READ);
        self.string(handle);
        self.u64(offset);
        self.u32(len);
        self.end(start);
    }

    /// WRITE of `len` bytes at `offset`, the data produced in place by `fill`.
    pub fn write(&mut self, handle: &[u8], offset: u64, len: usize, fill: impl FnOnce(&mut [u8])) {
        let start = self.begin(fxp::WRITE);
        self.string(handle);
        self.u64(offset);
        self.u32(len as u32);
        let data = self.out.bytes.len();
        self.out.bytes.resize(data + len, 0);
        fill(&mut self.out.bytes[data..]);
        self.end(start);
    }

    /// WRITE of `content[start..end]` at `offset`, the data sent by reference.
    pub fn write_shared(
        &mut self,
        handle: &[u8],
        offset: u64,
        content: &Rc<[u8]>,
        start: usize,
        end: usize,
    ) {
        let header = self.begin(fxp::WRITE);
        self.string(handle);
        self.u64(offset);
        self.u32((end - start) as u32);
        self.end(header);
        let len = (self.out.bytes.len() - header - 4 + end - start) as u32;
        self.out.bytes[header..header + 4].copy_from_slice(&len.to_be_bytes());
        self.out.share(content, start, end);
    }

    pub fn stat(&mut self, path: &str) {
        self.path_request(fxp::STAT, path);
    }

    pub fn lstat(&mut self, path: &str) {
        self.path_request(fxp::LSTAT, path);
    }

    pub fn opendir(&mut self, path: &str) {
        self.path_request(fxp::OPENDIR, path);
    }

    pub fn readdir(&mut self, handle: &[u8]) {
        self.handle_request(fxp::READDIR, handle);
    }

    pub fn remove(&mut self, path: &str) {
        self.path_request(fxp::REMOVE, path);
    }

    pub fn mkdir(&mut self, path: &str, perm: u32) {
        let start = self.begin(fxp::MKDIR);
        self.string(path.as_bytes());
        self.attrs(Some(perm));
        self.end(start);
    }

    pub fn rmdir(&mut self, path: &str) {
        self.path_request(fxp::RMDIR, path);
    }

    /// An EXTENDED request: its name, then `body` as already encoded.
    pub fn extended(&mut self, name: &str, body: &[u8]) {
        let start = self.begin(fxp::EXTENDED);
        self.string(name.as_bytes());
        self.out.bytes.extend_from_slice(body);
        self.end(start);
    }

    pub fn rename(&mut self, from: &str, to: &str) {
        let start = self.begin(fxp::RENAME);
        self.string(from.as_bytes());
        self.string(to.as_bytes());
        self.end(start);
    }
}

/// File attributes as sent by the server.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attrs {
    pub size: Option<u64>,
    pub permissions: Option<u32>,
}

impl Attrs {
    /// The file type bits of the permissions (`S_IFMT`), if sent.
    pub fn file_type(&self) -> Option<u32> {
        self.permissions.map(|p| p & 0o170_000)
    }
}

pub const S_IFREG: u32 = 0o100_000;

/// One decoded reply; data and names borrow from the input buffer.
#[derive(Debug)]
pub enum Reply<'a> {
    Status { code: u32, message: String },
    Handle(&'a [u8]),
    Data(&'a [u8]),
    Name(Names<'a>),
    Attrs(Attrs),
    Extended,
}

impl<'a> Reply<'a> {
    fn parse(kind: u8, body: &'a [u8]) -> Result<Reply<'a>> {
        let mut r = Reader(body);
        let reply = match kind {
            fxp::STATUS => {
                let code = r.u32()?;
                // OpenSSH always sends the message and language tag; tolerate their
                // absence as the draft allows.
                let message = if r.0.is_empty() {
                    String::new()
                } else {
                    let m = String::from_utf8_lossy(r.string()?).into_owned();
                    r.string()?;
                    m
                };
                Reply::Status { code, message }
            }
            fxp::HANDLE => {
                let h = r.string()?;
                if h.is_empty() || h.len() > 256 {
                    return Err(format!("handle of {} bytes", h.len()));
                }
                Reply::Handle(h)
            }
            fxp::DATA => Reply::Data(r.string()?),
            fxp::NAME => {
                let count = r.u32()?;
                let rest = r.0;
                r.0 = &[];
                Reply::Name(Names { count, body: rest })
            }
            fxp::ATTRS => Reply::Attrs(r.attrs()?),
            fxp::EXTENDED_REPLY => {
                r.0 = &[];
                Reply::Extended
            }
            other => return Err(format!("unknown reply type {other}")),
        };
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the reply", r.0.len()));
        }
        Ok(reply)
    }

    /// Describes this reply as not the `wanted` one.
    pub fn unexpected(&self, wanted: &str) -> String {
        match self {
            Reply::Status { code, message } => {
                format!("expected {wanted}, got STATUS {code} ({message})")
            }
            Reply::Handle(_) => format!("expected {wanted}, got HANDLE"),
            Reply::Data(d) => format!("expected {wanted}, got DATA of {} bytes", d.len()),
            Reply::Name(n) => format!("expected {wanted}, got NAME with {} entries", n.count),
            Reply::Attrs(_) => format!("expected {wanted}, got ATTRS"),
            Reply::Extended => format!("expected {wanted}, got EXTENDED_REPLY"),
        }
    }

    /// Succeeds only on STATUS `code`.
    pub fn status(self, code: u32) -> Result<()> {
        match self {
            Reply::Status { code: c, .. } if c == code => Ok(()),
            other => Err(other.unexpected(&format!("STATUS {code}"))),
        }
    }

    pub fn ok(self) -> Result<()> {
        self.status(status::OK)
    }

    pub fn handle(self) -> Result<Vec<u8>> {
        match self {
            Reply::Handle(h) => Ok(h.to_vec()),
            other => Err(other.unexpected("HANDLE")),
        }
    }

    pub fn data(self) -> Result<&'a [u8]> {
        match self {
            Reply::Data(d) => Ok(d),
            other => Err(other.unexpected("DATA")),
        }
    }

    pub fn attrs(self) -> Result<Attrs> {
        match self {
            Reply::Attrs(a) => Ok(a),
            other => Err(other.unexpected("ATTRS")),
        }
    }
}

/// The entries of a NAME reply, decoded on iteration.
#[derive(Debug)]
pub struct Names<'a> {
    pub count: u32,
    body: &'a [u8],
}

/// One NAME entry.
pub struct Entry<'a> {
    pub filename: &'a [u8],
    pub longname: &'a [u8],
    pub attrs: Attrs,
}

impl<'a> Names<'a> {
    /// All entries; fails if the body does not hold exactly `count` of them.
    pub fn entries(&self) -> Result<Vec<Entry<'a>>> {
        let mut r = Reader(self.body);
        let mut entries = Vec::with_capacity(self.count as usize);
        for _ in 0..self.count {
            let filename = r.string()?;
            let longname = r.string()?;
            let attrs = r.attrs()?;
            entries.push(Entry {
                filename,
                longname,
                attrs,
            });
        }
        if !r.0.is_empty() {
            return Err(format!("{} bytes after {} names", r.0.len(), self.count));
        }
        Ok(entries)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(format!("{} bytes wanted, {} left", n, self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn attrs(&mut self) -> Result<Attrs> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & attr::SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & attr::UIDGID != 0 {
            self.take(8)?;
        }
        if flags & attr::PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & attr::ACMODTIME != 0 {
            self.take(8)?;
        }
        if flags & attr::EXTENDED != 0 {
            for _ in 0..self.u32()? {
                self.string()?;
                self.string()?;
            }
        }
        Ok(a)
    }
}
