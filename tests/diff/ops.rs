//! Requests as the scenarios write them: symbolic handles ("the handle step 3 got") and
//! paths that may name the copy's root, turned into wire bytes per server with the raw
//! client's encoders.

use crate::support::raw::*;
use std::fmt;

/// Marks the copy's root in a path; replaced by each copy's absolute root when sent,
/// and put back in place of that root in the names of replies.
pub const ROOT: &[u8] = b"{ROOT}";

/// A handle argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H {
    /// The handle returned by the step with this index (empty if it returned none).
    Of(usize),
    /// These bytes, the same for both servers (made-up handles).
    Bytes(Vec<u8>),
}

/// How a well-formed request is damaged before it is sent. The framing stays intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mangle {
    /// Drops this many bytes from the end of the body (the id counts as body).
    CutTail(usize),
    /// Appends bytes after the last field.
    Append(Vec<u8>),
    /// Makes the first string after the id claim more bytes than the packet has.
    Overrun,
}

/// One request after INIT, in SFTP v3 with OpenSSH's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Open(Vec<u8>, u32, Attrs),
    Close(H),
    Read(H, u64, u32),
    Write(H, u64, Vec<u8>),
    Lstat(Vec<u8>),
    Fstat(H),
    Setstat(Vec<u8>, Attrs),
    Fsetstat(H, Attrs),
    Opendir(Vec<u8>),
    /// READDIR until a reply other than NAME: a whole listing is one step.
    Readdir(H),
    Remove(Vec<u8>),
    Mkdir(Vec<u8>, Attrs),
    Rmdir(Vec<u8>),
    Realpath(Vec<u8>),
    Stat(Vec<u8>),
    Rename(Vec<u8>, Vec<u8>),
    Readlink(Vec<u8>),
    /// Target first, then the link's path (OpenSSH's order).
    Symlink(Vec<u8>, Vec<u8>),
    PosixRename(Vec<u8>, Vec<u8>),
    Statvfs(Vec<u8>),
    Fstatvfs(H),
    Hardlink(Vec<u8>, Vec<u8>),
    Fsync(H),
    Lsetstat(Vec<u8>, Attrs),
    Limits,
    ExpandPath(Vec<u8>),
    CopyData {
        from: H,
        offset: u64,
        len: u64,
        to: H,
        to_offset: u64,
    },
    HomeDirectory(Vec<u8>),
    UsersGroupsById(Vec<u32>, Vec<u32>),
    /// An EXTENDED request with any name and these bytes after the name.
    Extended(Vec<u8>, Vec<u8>),
    /// A second INIT in the middle of the session (no id).
    Init(u32),
    /// A packet of a type no server knows: the id, then these bytes.
    Unknown(u8, Vec<u8>),
    Mangled(Box<Op>, Mangle),
}

/// One request with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: u32,
    pub op: Op,
}

/// What one server's copy needs to turn an `Op` into bytes.
pub trait Resolve {
    /// A path of a request with `ROOT` replaced by the copy's root as this server
    /// names it.
    fn path(&self, p: &[u8]) -> Vec<u8>;
    /// The bytes of a symbolic handle for this server.
    fn handle(&self, h: &H) -> Vec<u8>;
}

/// Replaces every `from` in `s` with `to`.
pub fn replace(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if !from.is_empty() && s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

impl Op {
    /// The symbolic handles the request carries.
    pub fn handles(&self) -> Vec<&H> {
        match self {
            Op::Close(h)
            | Op::Read(h, ..)
            | Op::Write(h, ..)
            | Op::Fstat(h)
            | Op::Fsetstat(h, _)
            | Op::Readdir(h)
            | Op::Fstatvfs(h)
            | Op::Fsync(h) => vec![h],
            Op::CopyData { from, to, .. } => vec![from, to],
            Op::Mangled(inner, _) => inner.handles(),
            _ => vec![],
        }
    }

    /// The request without damage.
    pub fn base(&self) -> &Op {
        match self {
            Op::Mangled(inner, _) => inner.base(),
            other => other,
        }
    }

    /// The packet type and body (id included) as `r` would send them.
    pub fn encode(&self, id: u32, r: &dyn Resolve) -> (u8, Vec<u8>) {
        let p = |path: &[u8]| r.path(path);
        let enc = |req: Request| (req.packet_type(), req.body(id));
        let ext = |name: &[u8], data: Buf| {
            enc(Request::Extended {
                name,
                data: &data.into_vec(),
            })
        };
        match self {
            Op::Open(path, pflags, attrs) => enc(Request::Open {
                path: &p(path),
                pflags: *pflags,
                attrs: attrs.clone(),
            }),
            Op::Close(h) => enc(Request::Close {
                handle: &r.handle(h),
            }),
            Op::Read(h, offset, len) => enc(Request::Read {
                handle: &r.handle(h),
                offset: *offset,
                len: *len,
            }),
            Op::Write(h, offset, data) => enc(Request::Write {
                handle: &r.handle(h),
                offset: *offset,
                data,
            }),
            Op::Lstat(path) => enc(Request::Lstat { path: &p(path) }),
            Op::Fstat(h) => enc(Request::Fstat {
                handle: &r.handle(h),
            }),
            Op::Setstat(path, attrs) => enc(Request::Setstat {
                path: &p(path),
                attrs: attrs.clone(),
            }),
            Op::Fsetstat(h, attrs) => enc(Request::Fsetstat {
                handle: &r.handle(h),
                attrs: attrs.clone(),
            }),
            Op::Opendir(path) => enc(Request::Opendir { path: &p(path) }),
            Op::Readdir(h) => enc(Request::Readdir {
                handle: &r.handle(h),
            }),
            Op::Remove(path) => enc(Request::Remove { path: &p(path) }),
            Op::Mkdir(path, attrs) => enc(Request::Mkdir {
                path: &p(path),
                attrs: attrs.clone(),
            }),
            Op::Rmdir(path) => enc(Request::Rmdir { path: &p(path) }),
            Op::Realpath(path) => enc(Request::Realpath { path: &p(path) }),
            Op::Stat(path) => enc(Request::Stat { path: &p(path) }),
            Op::Rename(old, new) => enc(Request::Rename {
                old: &p(old),
                new: &p(new),
            }),
            Op::Readlink(path) => enc(Request::Readlink { path: &p(path) }),
            Op::Symlink(target, link) => enc(Request::Symlink {
                target: &p(target),
                link: &p(link),
            }),
            Op::PosixRename(old, new) => ext(
                b"posix-rename@openssh.com",
                Buf::new().str(&p(old)).str(&p(new)),
            ),
            Op::Statvfs(path) => ext(b"statvfs@openssh.com", Buf::new().str(&p(path))),
            Op::Fstatvfs(h) => ext(b"fstatvfs@openssh.com", Buf::new().str(&r.handle(h))),
            Op::Hardlink(old, new) => ext(
                b"hardlink@openssh.com",
                Buf::new().str(&p(old)).str(&p(new)),
            ),
            Op::Fsync(h) => ext(b"fsync@openssh.com", Buf::new().str(&r.handle(h))),
            Op::Lsetstat(path, attrs) => ext(
                b"lsetstat@openssh.com",
                Buf::new().str(&p(path)).attrs(attrs),
            ),
            Op::Limits => ext(b"limits@openssh.com", Buf::new()),
            Op::ExpandPath(path) => ext(b"expand-path@openssh.com", Buf::new().str(&p(path))),
            Op::CopyData {
                from,
                offset,
                len,
                to,
                to_offset,
            } => ext(
                b"copy-data",
                Buf::new()
                    .str(&r.handle(from))
                    .u64(*offset)
                    .u64(*len)
                    .str(&r.handle(to))
                    .u64(*to_offset),
            ),
            Op::HomeDirectory(user) => ext(b"home-directory", Buf::new().str(user)),
            Op::UsersGroupsById(uids, gids) => {
                let list = |ids: &[u32]| ids.iter().fold(Buf::new(), |b, id| b.u32(*id)).into_vec();
                ext(
                    b"users-groups-by-id@openssh.com",
                    Buf::new().str(&list(uids)).str(&list(gids)),
                )
            }
            Op::Extended(name, data) => ext(name, Buf::new().bytes(data)),
            Op::Init(version) => (SSH_FXP_INIT, version.to_be_bytes().to_vec()),
            Op::Unknown(typ, data) => (*typ, Buf::new().u32(id).bytes(data).into_vec()),
            Op::Mangled(inner, how) => {
                let (typ, mut body) = inner.encode(id, r);
                match how {
                    Mangle::CutTail(n) => body.truncate(body.len().saturating_sub(*n)),
                    Mangle::Append(extra) => body.extend_from_slice(extra),
                    Mangle::Overrun => {
                        if body.len() >= 8 {
                            let claim = (body.len() - 8 + 1) as u32;
                            body[4..8].copy_from_slice(&claim.to_be_bytes());
                        }
                    }
                }
                (typ, body)
            }
        }
    }
}

/// Bytes as a quoted string, `\xNN` for what is not printable ASCII, with runs of one
/// byte and of one path component shortened so that deep and long names stay readable.
pub struct Q<'a>(pub &'a [u8]);

impl fmt::Display for Q<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let comps: Vec<&[u8]> = self.0.split(|&b| b == b'/').collect();
        f.write_str("\"")?;
        let mut i = 0;
        while i < comps.len() {
            if i > 0 {
                f.write_str("/")?;
            }
            let mut n = 1;
            while i + n < comps.len() && comps[i + n] == comps[i] && !comps[i].is_empty() {
                n += 1;
            }
            component(f, comps[i])?;
            if n >= 4 {
                f.write_str("(/")?;
                component(f, comps[i])?;
                write!(f, ")*{}", n - 1)?;
                i += n;
            } else {
                i += 1;
            }
        }
        f.write_str("\"")
    }
}

fn component(f: &mut fmt::Formatter, c: &[u8]) -> fmt::Result {
    let mut i = 0;
    while i < c.len() {
        let mut n = 1;
        while i + n < c.len() && c[i + n] == c[i] {
            n += 1;
        }
        if n >= 8 {
            write!(f, "{{{}*{n}}}", [c[i]].escape_ascii())?;
        } else {
            write!(f, "{}", c[i..i + n].escape_ascii())?;
        }
        i += n;
    }
    Ok(())
}

impl fmt::Display for H {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            H::Of(step) => write!(f, "h{step}"),
            H::Bytes(b) => write!(f, "bytes{}", Q(b)),
        }
    }
}

/// Attributes in a short form: only the groups present.
pub struct A<'a>(pub &'a Attrs);

impl fmt::Display for A<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let a = self.0;
        let mut parts = Vec::new();
        if a.flags & SSH_FILEXFER_ATTR_SIZE != 0 {
            parts.push(format!("size={}", a.size));
        }
        if a.flags & SSH_FILEXFER_ATTR_UIDGID != 0 {
            parts.push(format!("uid={} gid={}", a.uid, a.gid));
        }
        if a.flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 {
            parts.push(format!("perm={:o}", a.permissions));
        }
        if a.flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
            parts.push(format!("atime={} mtime={}", a.atime, a.mtime));
        }
        if a.flags & SSH_FILEXFER_ATTR_EXTENDED != 0 {
            for (n, d) in &a.extended {
                parts.push(format!("ext {}={}", Q(n), Q(d)));
            }
        }
        let known = SSH_FILEXFER_ATTR_SIZE
            | SSH_FILEXFER_ATTR_UIDGID
            | SSH_FILEXFER_ATTR_PERMISSIONS
            | SSH_FILEXFER_ATTR_ACMODTIME
            | SSH_FILEXFER_ATTR_EXTENDED;
        if a.flags & !known != 0 {
            parts.push(format!("flags={:#x}", a.flags));
        }
        write!(f, "{{{}}}", parts.join(" "))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Op::Open(p, fl, a) => write!(f, "OPEN {} pflags={fl:#x} {}", Q(p), A(a)),
            Op::Close(h) => write!(f, "CLOSE {h}"),
            Op::Read(h, o, l) => write!(f, "READ {h} offset={o} len={l}"),
            Op::Write(h, o, d) => write!(f, "WRITE {h} offset={o} data=<{} bytes>", d.len()),
            Op::Lstat(p) => write!(f, "LSTAT {}", Q(p)),
            Op::Fstat(h) => write!(f, "FSTAT {h}"),
            Op::Setstat(p, a) => write!(f, "SETSTAT {} {}", Q(p), A(a)),
            Op::Fsetstat(h, a) => write!(f, "FSETSTAT {h} {}", A(a)),
            Op::Opendir(p) => write!(f, "OPENDIR {}", Q(p)),
            Op::Readdir(h) => write!(f, "READDIR {h} (to the end)"),
            Op::Remove(p) => write!(f, "REMOVE {}", Q(p)),
            Op::Mkdir(p, a) => write!(f, "MKDIR {} {}", Q(p), A(a)),
            Op::Rmdir(p) => write!(f, "RMDIR {}", Q(p)),
            Op::Realpath(p) => write!(f, "REALPATH {}", Q(p)),
            Op::Stat(p) => write!(f, "STAT {}", Q(p)),
            Op::Rename(o, n) => write!(f, "RENAME {} {}", Q(o), Q(n)),
            Op::Readlink(p) => write!(f, "READLINK {}", Q(p)),
            Op::Symlink(t, l) => write!(f, "SYMLINK target={} link={}", Q(t), Q(l)),
            Op::PosixRename(o, n) => write!(f, "posix-rename {} {}", Q(o), Q(n)),
            Op::Statvfs(p) => write!(f, "statvfs {}", Q(p)),
            Op::Fstatvfs(h) => write!(f, "fstatvfs {h}"),
            Op::Hardlink(o, n) => write!(f, "hardlink {} {}", Q(o), Q(n)),
            Op::Fsync(h) => write!(f, "fsync {h}"),
            Op::Lsetstat(p, a) => write!(f, "lsetstat {} {}", Q(p), A(a)),
            Op::Limits => write!(f, "limits"),
            Op::ExpandPath(p) => write!(f, "expand-path {}", Q(p)),
            Op::CopyData {
                from,
                offset,
                len,
                to,
                to_offset,
            } => write!(
                f,
                "copy-data {from} offset={offset} len={len} to {to} offset={to_offset}"
            ),
            Op::HomeDirectory(u) => write!(f, "home-directory {}", Q(u)),
            Op::UsersGroupsById(u, g) => write!(f, "users-groups-by-id uids={u:?} gids={g:?}"),
            Op::Extended(n, d) => write!(f, "EXTENDED {} data={}", Q(n), Q(d)),
            Op::Init(v) => write!(f, "INIT version={v}"),
            Op::Unknown(t, d) => write!(f, "packet type {t} data={}", Q(d)),
            Op::Mangled(inner, how) => {
                let how = match how {
                    Mangle::CutTail(n) => format!("last {n} bytes cut"),
                    Mangle::Append(b) => format!("{} appended", Q(b)),
                    Mangle::Overrun => "first string overruns the packet".to_string(),
                };
                write!(f, "{inner} [{how}]")
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "id={} {}", self.id, self.op)
    }
}

// Short constructors for scenarios: paths as anything byte-like, handles by step.

pub fn h(step: usize) -> H {
    H::Of(step)
}
pub fn p(path: impl AsRef<[u8]>) -> Vec<u8> {
    path.as_ref().to_vec()
}
pub fn open(path: impl AsRef<[u8]>, pflags: u32, attrs: Attrs) -> Op {
    Op::Open(p(path), pflags, attrs)
}
pub fn close(h: H) -> Op {
    Op::Close(h)
}
pub fn read(h: H, offset: u64, len: u32) -> Op {
    Op::Read(h, offset, len)
}
pub fn write(h: H, offset: u64, data: impl AsRef<[u8]>) -> Op {
    Op::Write(h, offset, p(data))
}
pub fn lstat(path: impl AsRef<[u8]>) -> Op {
    Op::Lstat(p(path))
}
pub fn stat(path: impl AsRef<[u8]>) -> Op {
    Op::Stat(p(path))
}
pub fn fstat(h: H) -> Op {
    Op::Fstat(h)
}
pub fn setstat(path: impl AsRef<[u8]>, attrs: Attrs) -> Op {
    Op::Setstat(p(path), attrs)
}
pub fn fsetstat(h: H, attrs: Attrs) -> Op {
    Op::Fsetstat(h, attrs)
}
pub fn opendir(path: impl AsRef<[u8]>) -> Op {
    Op::Opendir(p(path))
}
pub fn readdir(h: H) -> Op {
    Op::Readdir(h)
}
pub fn remove(path: impl AsRef<[u8]>) -> Op {
    Op::Remove(p(path))
}
pub fn mkdir(path: impl AsRef<[u8]>, attrs: Attrs) -> Op {
    Op::Mkdir(p(path), attrs)
}
pub fn rmdir(path: impl AsRef<[u8]>) -> Op {
    Op::Rmdir(p(path))
}
pub fn realpath(path: impl AsRef<[u8]>) -> Op {
    Op::Realpath(p(path))
}
pub fn rename(old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Op {
    Op::Rename(p(old), p(new))
}
pub fn readlink(path: impl AsRef<[u8]>) -> Op {
    Op::Readlink(p(path))
}
pub fn symlink(target: impl AsRef<[u8]>, link: impl AsRef<[u8]>) -> Op {
    Op::Symlink(p(target), p(link))
}
