//! Client requests, decoded in one place. A `Request` borrows its paths, handles and
//! write data from the input buffer; nothing is copied on the way to the system call.

use super::reader::{DecodeError, Reader};
use super::*;
use crate::requests::{self, Op};

/// A decoded request. Field names follow the draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Init {
        version: u32,
    },
    Open {
        id: u32,
        filename: &'a [u8],
        pflags: u32,
        attrs: Attrs,
    },
    Close {
        id: u32,
        handle: &'a [u8],
    },
    Read {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        len: u32,
    },
    Write {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        data: &'a [u8],
    },
    Lstat {
        id: u32,
        path: &'a [u8],
    },
    Fstat {
        id: u32,
        handle: &'a [u8],
    },
    SetStat {
        id: u32,
        path: &'a [u8],
        attrs: Attrs,
    },
    FSetStat {
        id: u32,
        handle: &'a [u8],
        attrs: Attrs,
    },
    OpenDir {
        id: u32,
        path: &'a [u8],
    },
    ReadDir {
        id: u32,
        handle: &'a [u8],
    },
    Remove {
        id: u32,
        filename: &'a [u8],
    },
    Mkdir {
        id: u32,
        path: &'a [u8],
        attrs: Attrs,
    },
    Rmdir {
        id: u32,
        path: &'a [u8],
    },
    RealPath {
        id: u32,
        path: &'a [u8],
    },
    Stat {
        id: u32,
        path: &'a [u8],
    },
    Rename {
        id: u32,
        oldpath: &'a [u8],
        newpath: &'a [u8],
    },
    ReadLink {
        id: u32,
        path: &'a [u8],
    },
    /// OpenSSH sends (and every client expects) the target first and the link path
    /// second, the reverse of the draft.
    Symlink {
        id: u32,
        targetpath: &'a [u8],
        linkpath: &'a [u8],
    },
    PosixRename {
        id: u32,
        oldpath: &'a [u8],
        newpath: &'a [u8],
    },
    StatVfs {
        id: u32,
        path: &'a [u8],
    },
    FStatVfs {
        id: u32,
        handle: &'a [u8],
    },
    Hardlink {
        id: u32,
        oldpath: &'a [u8],
        newpath: &'a [u8],
    },
    Fsync {
        id: u32,
        handle: &'a [u8],
    },
    LSetStat {
        id: u32,
        path: &'a [u8],
        attrs: Attrs,
    },
    Limits {
        id: u32,
    },
    ExpandPath {
        id: u32,
        path: &'a [u8],
    },
    CopyData {
        id: u32,
        read_from_handle: &'a [u8],
        read_from_offset: u64,
        read_data_length: u64,
        write_to_handle: &'a [u8],
        write_to_offset: u64,
    },
    HomeDirectory {
        id: u32,
        username: &'a [u8],
    },
    /// The ids as packed big-endian u32s (length checked to be a multiple of 4).
    UsersGroupsById {
        id: u32,
        uids: &'a [u8],
        gids: &'a [u8],
    },
    /// check-file-name, check-file-handle, or paramiko's check-file (a handle).
    CheckFile {
        id: u32,
        form: CheckFileForm,
        /// A path (check-file-name) or a handle.
        target: &'a [u8],
        /// Comma-separated, in the client's order of preference.
        hash_algorithm_list: &'a [u8],
        start_offset: u64,
        /// 0: to the end of the file.
        length: u64,
        /// 0: one hash over the range.
        block_size: u32,
    },
    CopyFile {
        id: u32,
        source_path: &'a [u8],
        destination_path: &'a [u8],
        overwrite_destination: bool,
    },
    /// An EXTENDED request whose name this server does not know.
    UnknownExtended {
        id: u32,
        name: &'a [u8],
    },
    /// A packet type this server does not know.
    Unknown {
        id: u32,
        ptype: u8,
    },
}

/// The name a check-file request arrived under, which decides what its target is
/// and how the reply begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFileForm {
    /// check-file-name: a path; the reply is the algorithm and the digests.
    Name,
    /// check-file-handle: a handle; the reply as for Name.
    Handle,
    /// check-file, as paramiko sends it: a handle; the reply starts with the
    /// string "check-file" before the algorithm.
    Paramiko,
}

/// A packet whose framing was fine but whose body was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRequest {
    pub ptype: u8,
    /// The request id, when the body was long enough to hold one.
    pub id: Option<u32>,
    pub error: DecodeError,
}

impl Request<'_> {
    /// The request id (INIT has none).
    pub fn id(&self) -> Option<u32> {
        use Request::*;
        match *self {
            Init { .. } => None,
            Open { id, .. }
            | Close { id, .. }
            | Read { id, .. }
            | Write { id, .. }
            | Lstat { id, .. }
            | Fstat { id, .. }
            | SetStat { id, .. }
            | FSetStat { id, .. }
            | OpenDir { id, .. }
            | ReadDir { id, .. }
            | Remove { id, .. }
            | Mkdir { id, .. }
            | Rmdir { id, .. }
            | RealPath { id, .. }
            | Stat { id, .. }
            | Rename { id, .. }
            | ReadLink { id, .. }
            | Symlink { id, .. }
            | PosixRename { id, .. }
            | StatVfs { id, .. }
            | FStatVfs { id, .. }
            | Hardlink { id, .. }
            | Fsync { id, .. }
            | LSetStat { id, .. }
            | Limits { id }
            | ExpandPath { id, .. }
            | CopyData { id, .. }
            | HomeDirectory { id, .. }
            | UsersGroupsById { id, .. }
            | CheckFile { id, .. }
            | CopyFile { id, .. }
            | UnknownExtended { id, .. }
            | Unknown { id, .. } => Some(id),
        }
    }

    /// The row of the request table this request belongs to, if any.
    pub fn op(&self) -> Option<Op> {
        use Request::*;
        Some(match self {
            Init { .. } | UnknownExtended { .. } | Unknown { .. } => return None,
            Open { .. } => Op::Open,
            Close { .. } => Op::Close,
            Read { .. } => Op::Read,
            Write { .. } => Op::Write,
            Lstat { .. } => Op::Lstat,
            Fstat { .. } => Op::Fstat,
            SetStat { .. } => Op::SetStat,
            FSetStat { .. } => Op::FSetStat,
            OpenDir { .. } => Op::OpenDir,
            ReadDir { .. } => Op::ReadDir,
            Remove { .. } => Op::Remove,
            Mkdir { .. } => Op::Mkdir,
            Rmdir { .. } => Op::Rmdir,
            RealPath { .. } => Op::RealPath,
            Stat { .. } => Op::Stat,
            Rename { .. } => Op::Rename,
            ReadLink { .. } => Op::ReadLink,
            Symlink { .. } => Op::Symlink,
            PosixRename { .. } => Op::PosixRename,
            StatVfs { .. } => Op::StatVfs,
            FStatVfs { .. } => Op::FStatVfs,
            Hardlink { .. } => Op::Hardlink,
            Fsync { .. } => Op::Fsync,
            LSetStat { .. } => Op::LSetStat,
            Limits { .. } => Op::Limits,
            ExpandPath { .. } => Op::ExpandPath,
            CopyData { .. } => Op::CopyData,
            HomeDirectory { .. } => Op::HomeDirectory,
            UsersGroupsById { .. } => Op::UsersGroupsById,
            CheckFile { .. } => Op::CheckFile,
            CopyFile { .. } => Op::CopyFile,
        })
    }
}

/// Decodes one packet body (type byte first, length prefix already removed).
/// Bytes after the last field are ignored, as OpenSSH ignores them.
pub fn decode(body: &[u8]) -> Result<Request<'_>, BadRequest> {
    let mut r = Reader::new(body);
    let ptype = r.u8().map_err(|error| BadRequest {
        ptype: 0,
        id: None,
        error,
    })?;
    let bad = |id, error| BadRequest { ptype, id, error };
    if ptype == SSH_FXP_INIT {
        let version = r.u32().map_err(|e| bad(None, e))?;
        return Ok(Request::Init { version });
    }
    let id = r.u32().map_err(|e| bad(None, e))?;
    decode_body(ptype, id, &mut r).map_err(|e| bad(Some(id), e))
}

fn decode_body<'a>(ptype: u8, id: u32, r: &mut Reader<'a>) -> Result<Request<'a>, DecodeError> {
    use Request::*;
    Ok(match ptype {
        SSH_FXP_OPEN => Open {
            id,
            filename: r.path()?,
            pflags: r.u32()?,
            attrs: Attrs::decode(r)?,
        },
        SSH_FXP_CLOSE => Close {
            id,
            handle: r.string()?,
        },
        SSH_FXP_READ => Read {
            id,
            handle: r.string()?,
            offset: r.u64()?,
            len: r.u32()?,
        },
        SSH_FXP_WRITE => Write {
            id,
            handle: r.string()?,
            offset: r.u64()?,
            data: r.string()?,
        },
        SSH_FXP_LSTAT => Lstat {
            id,
            path: r.path()?,
        },
        SSH_FXP_FSTAT => Fstat {
            id,
            handle: r.string()?,
        },
        SSH_FXP_SETSTAT => SetStat {
            id,
            path: r.path()?,
            attrs: Attrs::decode(r)?,
        },
        SSH_FXP_FSETSTAT => FSetStat {
            id,
            handle: r.string()?,
            attrs: Attrs::decode(r)?,
        },
        SSH_FXP_OPENDIR => OpenDir {
            id,
            path: r.path()?,
        },
        SSH_FXP_READDIR => ReadDir {
            id,
            handle: r.string()?,
        },
        SSH_FXP_REMOVE => Remove {
            id,
            filename: r.path()?,
        },
        SSH_FXP_MKDIR => Mkdir {
            id,
            path: r.path()?,
            attrs: Attrs::decode(r)?,
        },
        SSH_FXP_RMDIR => Rmdir {
            id,
            path: r.path()?,
        },
        SSH_FXP_REALPATH => RealPath {
            id,
            path: r.path()?,
        },
        SSH_FXP_STAT => Stat {
            id,
            path: r.path()?,
        },
        SSH_FXP_RENAME => Rename {
            id,
            oldpath: r.path()?,
            newpath: r.path()?,
        },
        SSH_FXP_READLINK => ReadLink {
            id,
            path: r.path()?,
        },
        SSH_FXP_SYMLINK => Symlink {
            id,
            targetpath: r.path()?,
            linkpath: r.path()?,
        },
        SSH_FXP_EXTENDED => {
            let name = r.path()?;
            match requests::extension(name) {
                Some(info) => decode_extension(info.op, name, id, r)?,
                None => UnknownExtended { id, name },
            }
        }
        _ => Unknown { id, ptype },
    })
}

/// The bodies of the extensions in the request table, after their name.
fn decode_extension<'a>(
    op: Op,
    name: &[u8],
    id: u32,
    r: &mut Reader<'a>,
) -> Result<Request<'a>, DecodeError> {
    use Request::*;
    Ok(match op {
        Op::PosixRename => PosixRename {
            id,
            oldpath: r.path()?,
            newpath: r.path()?,
        },
        Op::StatVfs => StatVfs {
            id,
            path: r.path()?,
        },
        Op::FStatVfs => FStatVfs {
            id,
            handle: r.string()?,
        },
        Op::Hardlink => Hardlink {
            id,
            oldpath: r.path()?,
            newpath: r.path()?,
        },
        Op::Fsync => Fsync {
            id,
            handle: r.string()?,
        },
        Op::LSetStat => LSetStat {
            id,
            path: r.path()?,
            attrs: Attrs::decode(r)?,
        },
        Op::Limits => Limits { id },
        Op::ExpandPath => ExpandPath {
            id,
            path: r.path()?,
        },
        Op::CopyData => CopyData {
            id,
            read_from_handle: r.string()?,
            read_from_offset: r.u64()?,
            read_data_length: r.u64()?,
            write_to_handle: r.string()?,
            write_to_offset: r.u64()?,
        },
        Op::HomeDirectory => HomeDirectory {
            id,
            username: r.path()?,
        },
        Op::UsersGroupsById => UsersGroupsById {
            id,
            uids: id_list(r)?,
            gids: id_list(r)?,
        },
        Op::CheckFile => {
            let form = match name {
                n if n == requests::CHECK_FILE_NAME.as_bytes() => CheckFileForm::Name,
                n if n == requests::CHECK_FILE_HANDLE.as_bytes() => CheckFileForm::Handle,
                _ => CheckFileForm::Paramiko,
            };
            CheckFile {
                id,
                form,
                target: match form {
                    CheckFileForm::Name => r.path()?,
                    _ => r.string()?,
                },
                hash_algorithm_list: r.string()?,
                start_offset: r.u64()?,
                length: r.u64()?,
                block_size: r.u32()?,
            }
        }
        Op::CopyFile => CopyFile {
            id,
            source_path: r.path()?,
            destination_path: r.path()?,
            overwrite_destination: r.u8()? != 0,
        },
        // Requests with a packet type of their own never arrive as EXTENDED.
        _ => UnknownExtended {
            id,
            name: op.info().name.as_bytes(),
        },
    })
}

/// A string holding packed u32 ids.
fn id_list<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let ids = r.string()?;
    if ids.len() % 4 != 0 {
        return Err(DecodeError::Truncated);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn packet(ptype: u8, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = vec![ptype];
        f(&mut v);
        v
    }

    fn string(v: &mut Vec<u8>, s: &[u8]) {
        v.put_u32(s.len() as u32);
        v.put_slice(s);
    }

    fn samples() -> Vec<Vec<u8>> {
        vec![
            packet(SSH_FXP_INIT, |v| v.put_u32(3)),
            packet(SSH_FXP_OPEN, |v| {
                v.put_u32(1);
                string(v, b"f");
                v.put_u32(SSH_FXF_READ);
                v.put_u32(SSH_FILEXFER_ATTR_PERMISSIONS);
                v.put_u32(0o644);
            }),
            packet(SSH_FXP_READ, |v| {
                v.put_u32(2);
                string(v, b"hh");
                v.put_u64(5);
                v.put_u32(100);
            }),
            packet(SSH_FXP_WRITE, |v| {
                v.put_u32(3);
                string(v, b"hh");
                v.put_u64(5);
                string(v, b"data");
            }),
            packet(SSH_FXP_RENAME, |v| {
                v.put_u32(4);
                string(v, b"a");
                string(v, b"b");
            }),
            packet(SSH_FXP_SETSTAT, |v| {
                v.put_u32(5);
                string(v, b"a");
                v.put_u32(SSH_FILEXFER_ATTR_ACMODTIME);
                v.put_u32(1);
                v.put_u32(2);
            }),
        ]
    }

    #[test]
    fn decodes_samples() {
        let s = samples();
        assert_eq!(decode(&s[0]), Ok(Request::Init { version: 3 }));
        assert_eq!(
            decode(&s[3]),
            Ok(Request::Write {
                id: 3,
                handle: b"hh",
                offset: 5,
                data: b"data"
            })
        );
        assert_eq!(
            decode(&s[4]),
            Ok(Request::Rename {
                id: 4,
                oldpath: b"a",
                newpath: b"b"
            })
        );
    }

    #[test]
    fn every_truncated_prefix_is_an_error() {
        for p in samples() {
            for cut in 0..p.len() {
                let err = decode(&p[..cut]).expect_err("prefix must not decode");
                if cut >= 5 && p[0] != SSH_FXP_INIT {
                    assert!(err.id.is_some(), "id is known once 5 bytes are in");
                }
            }
        }
    }

    #[test]
    fn unknown_types_and_extensions() {
        let p = packet(99, |v| v.put_u32(9));
        assert_eq!(decode(&p), Ok(Request::Unknown { id: 9, ptype: 99 }));
        let p = packet(SSH_FXP_EXTENDED, |v| {
            v.put_u32(9);
            string(v, b"nope@example.com");
        });
        assert_eq!(
            decode(&p),
            Ok(Request::UnknownExtended {
                id: 9,
                name: b"nope@example.com"
            })
        );
    }
}
