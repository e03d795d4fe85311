//! A small SFTP version 3 client that speaks the wire format directly
//! (draft-ietf-secsh-filexfer-02), written independently of the server's own codec so
//! that the tests check the server against the protocol and not against itself.
//!
//! Every packet is `uint32 length, byte type, body`; every request after INIT carries a
//! `uint32 id` first in its body. Strings are `uint32 length` followed by raw bytes:
//! paths and names are bytes here, never `String`.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub const SSH_FXP_INIT: u8 = 1;
pub const SSH_FXP_VERSION: u8 = 2;
pub const SSH_FXP_OPEN: u8 = 3;
pub const SSH_FXP_CLOSE: u8 = 4;
pub const SSH_FXP_READ: u8 = 5;
pub const SSH_FXP_WRITE: u8 = 6;
pub const SSH_FXP_LSTAT: u8 = 7;
pub const SSH_FXP_FSTAT: u8 = 8;
pub const SSH_FXP_SETSTAT: u8 = 9;
pub const SSH_FXP_FSETSTAT: u8 = 10;
pub const SSH_FXP_OPENDIR: u8 = 11;
pub const SSH_FXP_READDIR: u8 = 12;
pub const SSH_FXP_REMOVE: u8 = 13;
pub const SSH_FXP_MKDIR: u8 = 14;
pub const SSH_FXP_RMDIR: u8 = 15;
pub const SSH_FXP_REALPATH: u8 = 16;
pub const SSH_FXP_STAT: u8 = 17;
pub const SSH_FXP_RENAME: u8 = 18;
pub const SSH_FXP_READLINK: u8 = 19;
pub const SSH_FXP_SYMLINK: u8 = 20;
pub const SSH_FXP_STATUS: u8 = 101;
pub const SSH_FXP_HANDLE: u8 = 102;
pub const SSH_FXP_DATA: u8 = 103;
pub const SSH_FXP_NAME: u8 = 104;
pub const SSH_FXP_ATTRS: u8 = 105;
pub const SSH_FXP_EXTENDED: u8 = 200;
pub const SSH_FXP_EXTENDED_REPLY: u8 = 201;

pub const SSH_FXF_READ: u32 = 0x01;
pub const SSH_FXF_WRITE: u32 = 0x02;
pub const SSH_FXF_APPEND: u32 = 0x04;
pub const SSH_FXF_CREAT: u32 = 0x08;
pub const SSH_FXF_TRUNC: u32 = 0x10;
pub const SSH_FXF_EXCL: u32 = 0x20;

pub const SSH_FILEXFER_ATTR_SIZE: u32 = 0x01;
pub const SSH_FILEXFER_ATTR_UIDGID: u32 = 0x02;
pub const SSH_FILEXFER_ATTR_PERMISSIONS: u32 = 0x04;
pub const SSH_FILEXFER_ATTR_ACMODTIME: u32 = 0x08;
pub const SSH_FILEXFER_ATTR_EXTENDED: u32 = 0x8000_0000;

pub const SSH_FX_OK: u32 = 0;
pub const SSH_FX_EOF: u32 = 1;
pub const SSH_FX_NO_SUCH_FILE: u32 = 2;
pub const SSH_FX_PERMISSION_DENIED: u32 = 3;
pub const SSH_FX_FAILURE: u32 = 4;
pub const SSH_FX_BAD_MESSAGE: u32 = 5;
pub const SSH_FX_NO_CONNECTION: u32 = 6;
pub const SSH_FX_CONNECTION_LOST: u32 = 7;
pub const SSH_FX_OP_UNSUPPORTED: u32 = 8;

/// How long `recv` waits for a reply before reporting `RecvError::Timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Appends big-endian wire values to a byte buffer; also used to build malformed packets.
#[derive(Default, Clone, Debug)]
pub struct Buf(pub Vec<u8>);

impl Buf {
    pub fn new() -> Buf {
        Buf(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> Buf {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Buf {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Buf {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A string: `uint32 length` then the bytes.
    pub fn str(self, s: &[u8]) -> Buf {
        self.u32(s.len() as u32).bytes(s)
    }
    /// Raw bytes with no length prefix.
    pub fn bytes(mut self, b: &[u8]) -> Buf {
        self.0.extend_from_slice(b);
        self
    }
    pub fn attrs(self, a: &Attrs) -> Buf {
        self.bytes(&a.encode())
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// Frames a packet: `uint32 length (of type + body)`, `byte type`, body.
pub fn frame(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes());
    out.push(typ);
    out.extend_from_slice(body);
    out
}

/// File attributes as on the wire. `flags` says which fields are present; the fields
/// of absent groups are zero when decoded and ignored when encoded.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Attrs {
    pub flags: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub permissions: u32,
    pub atime: u32,
    pub mtime: u32,
    pub extended: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attrs {
    /// No attributes (flags 0).
    pub fn none() -> Attrs {
        Attrs::default()
    }
    pub fn with_size(mut self, size: u64) -> Attrs {
        self.flags |= SSH_FILEXFER_ATTR_SIZE;
        self.size = size;
        self
    }
    pub fn with_uidgid(mut self, uid: u32, gid: u32) -> Attrs {
        self.flags |= SSH_FILEXFER_ATTR_UIDGID;
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn with_permissions(mut self, permissions: u32) -> Attrs {
        self.flags |= SSH_FILEXFER_ATTR_PERMISSIONS;
        self.permissions = permissions;
        self
    }
    pub fn with_times(mut self, atime: u32, mtime: u32) -> Attrs {
        self.flags |= SSH_FILEXFER_ATTR_ACMODTIME;
        self.atime = atime;
        self.mtime = mtime;
        self
    }
    pub fn with_extended(mut self, name: &[u8], data: &[u8]) -> Attrs {
        self.flags |= SSH_FILEXFER_ATTR_EXTENDED;
        self.extended.push((name.to_vec(), data.to_vec()));
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Buf::new().u32(self.flags);
        if self.flags & SSH_FILEXFER_ATTR_SIZE != 0 {
            b = b.u64(self.size);
        }
        if self.flags & SSH_FILEXFER_ATTR_UIDGID != 0 {
            b = b.u32(self.uid).u32(self.gid);
        }
        if self.flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 {
            b = b.u32(self.permissions);
        }
        if self.flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
            b = b.u32(self.atime).u32(self.mtime);
        }
        if self.flags & SSH_FILEXFER_ATTR_EXTENDED != 0 {
            b = b.u32(self.extended.len() as u32);
            for (name, data) in &self.extended {
                b = b.str(name).str(data);
            }
        }
        b.into_vec()
    }

    fn decode(r: &mut Reader) -> Result<Attrs, String> {
        let mut a = Attrs {
            flags: r.u32()?,
            ..Attrs::default()
        };
        if a.flags & SSH_FILEXFER_ATTR_SIZE != 0 {
            a.size = r.u64()?;
        }
        if a.flags & SSH_FILEXFER_ATTR_UIDGID != 0 {
            a.uid = r.u32()?;
            a.gid = r.u32()?;
        }
        if a.flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 {
            a.permissions = r.u32()?;
        }
        if a.flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
            a.atime = r.u32()?;
            a.mtime = r.u32()?;
        }
        if a.flags & SSH_FILEXFER_ATTR_EXTENDED != 0 {
            let n = r.u32()?;
            for _ in 0..n {
                let name = r.string()?;
                let data = r.string()?;
                a.extended.push((name, data));
            }
        }
        Ok(a)
    }
}

/// One request after INIT. Its id is supplied when it is encoded.
#[derive(Clone, Debug)]
pub enum Request<'a> {
    Open {
        path: &'a [u8],
        pflags: u32,
        attrs: Attrs,
    },
    Close {
        handle: &'a [u8],
    },
    Read {
        handle: &'a [u8],
        offset: u64,
        len: u32,
    },
    Write {
        handle: &'a [u8],
        offset: u64,
        data: &'a [u8],
    },
    Lstat {
        path: &'a [u8],
    },
    Fstat {
        handle: &'a [u8],
    },
    Setstat {
        path: &'a [u8],
        attrs: Attrs,
    },
    Fsetstat {
        handle: &'a [u8],
        attrs: Attrs,
    },
    Opendir {
        path: &'a [u8],
    },
    Readdir {
        handle: &'a [u8],
    },
    Remove {
        path: &'a [u8],
    },
    Mkdir {
        path: &'a [u8],
        attrs: Attrs,
    },
    Rmdir {
        path: &'a [u8],
    },
    Realpath {
        path: &'a [u8],
    },
    Stat {
        path: &'a [u8],
    },
    Rename {
        old: &'a [u8],
        new: &'a [u8],
    },
    Readlink {
        path: &'a [u8],
    },
    /// Sent in OpenSSH's order, which reverses the draft's: the link's target first,
    /// then the path of the link to create.
    Symlink {
        target: &'a [u8],
        link: &'a [u8],
    },
    /// `name` then the request-specific data, appended raw.
    Extended {
        name: &'a [u8],
        data: &'a [u8],
    },
}

impl Request<'_> {
    pub fn packet_type(&self) -> u8 {
        match self {
            Request::Open { .. } => SSH_FXP_OPEN,
            Request::Close { .. } => SSH_FXP_CLOSE,
            Request::Read { .. } => SSH_FXP_READ,
            Request::Write { .. } => SSH_FXP_WRITE,
            Request::Lstat { .. } => SSH_FXP_LSTAT,
            Request::Fstat { .. } => SSH_FXP_FSTAT,
            Request::Setstat { .. } => SSH_FXP_SETSTAT,
            Request::Fsetstat { .. } => SSH_FXP_FSETSTAT,
            Request::Opendir { .. } => SSH_FXP_OPENDIR,
            Request::Readdir { .. } => SSH_FXP_READDIR,
            Request::Remove { .. } => SSH_FXP_REMOVE,
            Request::Mkdir { .. } => SSH_FXP_MKDIR,
            Request::Rmdir { .. } => SSH_FXP_RMDIR,
            Request::Realpath { .. } => SSH_FXP_REALPATH,
            Request::Stat { .. } => SSH_FXP_STAT,
            Request::Rename { .. } => SSH_FXP_RENAME,
            Request::Readlink { .. } => SSH_FXP_READLINK,
            Request::Symlink { .. } => SSH_FXP_SYMLINK,
            Request::Extended { .. } => SSH_FXP_EXTENDED,
        }
    }

    /// The body after the type byte, id included.
    pub fn body(&self, id: u32) -> Vec<u8> {
        let b = Buf::new().u32(id);
        let b = match self {
            Request::Open {
                path,
                pflags,
                attrs,
            } => b.str(path).u32(*pflags).attrs(attrs),
            Request::Close { handle } | Request::Fstat { handle } | Request::Readdir { handle } => {
                b.str(handle)
            }
            Request::Read {
                handle,
                offset,
                len,
            } => b.str(handle).u64(*offset).u32(*len),
            Request::Write {
                handle,
                offset,
                data,
            } => b.str(handle).u64(*offset).str(data),
            Request::Lstat { path }
            | Request::Stat { path }
            | Request::Opendir { path }
            | Request::Remove { path }
            | Request::Rmdir { path }
            | Request::Realpath { path }
            | Request::Readlink { path } => b.str(path),
            Request::Setstat { path, attrs } | Request::Mkdir { path, attrs } => {
                b.str(path).attrs(attrs)
            }
            Request::Fsetstat { handle, attrs } => b.str(handle).attrs(attrs),
            Request::Rename { old, new } => b.str(old).str(new),
            Request::Symlink { target, link } => b.str(target).str(link),
            Request::Extended { name, data } => b.str(name).bytes(data),
        };
        b.into_vec()
    }

    /// The whole framed packet.
    pub fn encode(&self, id: u32) -> Vec<u8> {
        frame(self.packet_type(), &self.body(id))
    }
}

/// One entry of a NAME reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameEntry {
    pub name: Vec<u8>,
    pub longname: Vec<u8>,
    pub attrs: Attrs,
}

/// A decoded packet from the server. Variants are named after the packet types.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Version {
        version: u32,
        extensions: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Status {
        id: u32,
        code: u32,
        msg: Vec<u8>,
        lang: Vec<u8>,
    },
    Handle {
        id: u32,
        handle: Vec<u8>,
    },
    Data {
        id: u32,
        data: Vec<u8>,
    },
    Name {
        id: u32,
        entries: Vec<NameEntry>,
    },
    Attrs {
        id: u32,
        attrs: Attrs,
    },
    ExtendedReply {
        id: u32,
        body: Vec<u8>,
    },
}

impl Reply {
    /// The request id the reply answers (None for VERSION).
    pub fn id(&self) -> Option<u32> {
        match self {
            Reply::Version { .. } => None,
            Reply::Status { id, .. }
            | Reply::Handle { id, .. }
            | Reply::Data { id, .. }
            | Reply::Name { id, .. }
            | Reply::Attrs { id, .. }
            | Reply::ExtendedReply { id, .. } => Some(*id),
        }
    }

    /// Decodes one packet (type byte and body, without the length).
    pub fn decode(packet: &[u8]) -> Result<Reply, String> {
        let (&typ, body) = packet.split_first().ok_or("empty packet")?;
        let mut r = Reader { buf: body, pos: 0 };
        let reply = match typ {
            SSH_FXP_VERSION => {
                let version = r.u32()?;
                let mut extensions = Vec::new();
                while !r.done() {
                    let name = r.string()?;
                    let data = r.string()?;
                    extensions.push((name, data));
                }
                Reply::Version {
                    version,
                    extensions,
                }
            }
            SSH_FXP_STATUS => {
                let id = r.u32()?;
                let code = r.u32()?;
                let (msg, lang) = if r.done() {
                    // Allowed by the draft for very old servers; keep it decodable.
                    (Vec::new(), Vec::new())
                } else {
                    (r.string()?, r.string()?)
                };
                Reply::Status {
                    id,
                    code,
                    msg,
                    lang,
                }
            }
            SSH_FXP_HANDLE => Reply::Handle {
                id: r.u32()?,
                handle: r.string()?,
            },
            SSH_FXP_DATA => Reply::Data {
                id: r.u32()?,
                data: r.string()?,
            },
            SSH_FXP_NAME => {
                let id = r.u32()?;
                let count = r.u32()?;
                let mut entries = Vec::new();
                for _ in 0..count {
                    let name = r.string()?;
                    let longname = r.string()?;
                    let attrs = Attrs::decode(&mut r)?;
                    entries.push(NameEntry {
                        name,
                        longname,
                        attrs,
                    });
                }
                Reply::Name { id, entries }
            }
            SSH_FXP_ATTRS => Reply::Attrs {
                id: r.u32()?,
                attrs: Attrs::decode(&mut r)?,
            },
            SSH_FXP_EXTENDED_REPLY => {
                let id = r.u32()?;
                Reply::ExtendedReply {
                    id,
                    body: r.rest().to_vec(),
                }
            }
            other => return Err(format!("unknown reply type {other}")),
        };
        if !r.done() {
            return Err(format!(
                "{} trailing bytes after reply type {typ}: {reply:?}",
                r.buf.len() - r.pos
            ));
        }
        Ok(reply)
    }
}

/// Reads big-endian wire values from a byte slice.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "truncated: want {n} bytes at {} of {}",
                self.pos,
                self.buf.len()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn string(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Why no reply could be read.
#[derive(Debug)]
pub enum RecvError {
    /// The server closed its end before a packet started.
    Eof,
    /// The server closed its end in the middle of a packet.
    Truncated,
    /// Nothing (or only part of a packet) arrived within the read timeout.
    Timeout,
    /// The packet arrived but is not a well-formed SFTP v3 reply.
    Malformed(String),
    Io(std::io::Error),
}

/// A client connection over the test's end of the socketpair.
pub struct Client {
    pub sock: UnixStream,
    next_id: u32,
}

impl Client {
    /// Wraps `sock` and sets its read timeout to `DEFAULT_TIMEOUT`.
    pub fn new(sock: UnixStream) -> Client {
        sock.set_read_timeout(Some(DEFAULT_TIMEOUT))
            .expect("set read timeout");
        sock.set_write_timeout(Some(DEFAULT_TIMEOUT))
            .expect("set write timeout");
        Client {
            sock,
            next_id: 1000,
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.sock.set_read_timeout(Some(t)).expect("set timeout");
    }

    /// A fresh request id (distinct within this client, never 0).
    pub fn fresh_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends bytes exactly as given.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write to server");
    }

    /// Sends bytes, reporting a write error instead of panicking (the server may be gone).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Frames and sends one packet.
    #[track_caller]
    pub fn send_packet(&mut self, typ: u8, body: &[u8]) {
        self.send_raw(&frame(typ, body));
    }

    /// Sends SSH_FXP_INIT with `version` and no extension data.
    #[track_caller]
    pub fn send_init(&mut self, version: u32) {
        self.send_packet(SSH_FXP_INIT, &version.to_be_bytes());
    }

    /// Sends INIT for version 3 and returns the VERSION reply.
    #[track_caller]
    pub fn init(&mut self) -> Reply {
        self.send_init(3);
        self.recv().expect("VERSION reply")
    }

    /// Sends a request with a fresh id and returns that id.
    #[track_caller]
    pub fn send(&mut self, req: &Request) -> u32 {
        let id = self.fresh_id();
        self.send_with_id(id, req);
        id
    }

    #[track_caller]
    pub fn send_with_id(&mut self, id: u32, req: &Request) {
        self.send_raw(&req.encode(id));
    }

    /// Sends a request and reads its reply, checking the reply carries the request's id.
    #[track_caller]
    pub fn call(&mut self, req: &Request) -> Reply {
        let id = self.send(req);
        let reply = self
            .recv()
            .unwrap_or_else(|e| panic!("no reply to {req:?}: {e:?}"));
        assert_eq!(reply.id(), Some(id), "reply id for {req:?}: {reply:?}");
        reply
    }

    /// Reads one reply.
    pub fn recv(&mut self) -> Result<Reply, RecvError> {
        let packet = self.recv_packet()?;
        Reply::decode(&packet).map_err(RecvError::Malformed)
    }

    /// Reads one packet (type byte and body) without decoding it.
    pub fn recv_packet(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut len = [0u8; 4];
        match read_full(&mut self.sock, &mut len)? {
            0 => return Err(RecvError::Eof),
            4 => {}
            _ => return Err(RecvError::Truncated),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            return Err(RecvError::Malformed(format!("reply length {len}")));
        }
        let mut packet = vec![0u8; len];
        if read_full(&mut self.sock, &mut packet)? != len {
            return Err(RecvError::Truncated);
        }
        Ok(packet)
    }

    /// Asserts that the server closes the connection without sending anything more.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        match self.recv() {
            Err(RecvError::Eof) => {}
            other => panic!("expected EOF from server, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives within `t`.
    #[track_caller]
    pub fn expect_silence(&mut self, t: Duration) {
        self.set_timeout(t);
        match self.recv() {
            Err(RecvError::Timeout) => {}
            other => panic!("expected no reply within {t:?}, got {other:?}"),
        }
        self.set_timeout(DEFAULT_TIMEOUT);
    }
}

/// Fills `buf` as far as possible; returns how many bytes were read before EOF.
fn read_full(sock: &mut UnixStream, buf: &mut [u8]) -> Result<usize, RecvError> {
    let mut got = 0;
    while got < buf.len() {
        match sock.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(RecvError::Timeout);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(RecvError::Io(e)),
        }
    }
    Ok(got)
}
