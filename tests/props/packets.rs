//! Client packets built from decoded requests, for the property tests and the fuzz
//! targets (fuzz/ includes this file by path, so both speak the same format).
//!
//! The encoder follows draft-ietf-secsh-filexfer-02 and OpenSSH's extension
//! documents field by field and does not use the server's own encoder, so a round
//! trip through it checks the decoder against the protocol.
#![allow(dead_code)]

use sftp_server::wire::{Attrs, CheckFileForm, Request};

pub const SSH_FXP_INIT: u8 = 1;
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
pub const SSH_FXP_EXTENDED: u8 = 200;

pub const SSH_FXF_READ: u32 = 0x01;
pub const SSH_FXF_WRITE: u32 = 0x02;
pub const SSH_FXF_APPEND: u32 = 0x04;
pub const SSH_FXF_CREAT: u32 = 0x08;
pub const SSH_FXF_TRUNC: u32 = 0x10;
pub const SSH_FXF_EXCL: u32 = 0x20;

pub const ATTR_SIZE: u32 = 0x01;
pub const ATTR_UIDGID: u32 = 0x02;
pub const ATTR_PERMISSIONS: u32 = 0x04;
pub const ATTR_ACMODTIME: u32 = 0x08;
pub const ATTR_EXTENDED: u32 = 0x8000_0000;

/// The extension names the server decodes, as OpenSSH spells them.
pub const POSIX_RENAME: &str = "posix-rename@openssh.com";
pub const STATVFS: &str = "statvfs@openssh.com";
pub const FSTATVFS: &str = "fstatvfs@openssh.com";
pub const HARDLINK: &str = "hardlink@openssh.com";
pub const FSYNC: &str = "fsync@openssh.com";
pub const LSETSTAT: &str = "lsetstat@openssh.com";
pub const LIMITS: &str = "limits@openssh.com";
pub const EXPAND_PATH: &str = "expand-path@openssh.com";
pub const COPY_DATA: &str = "copy-data";
pub const HOME_DIRECTORY: &str = "home-directory";
pub const USERS_GROUPS_BY_ID: &str = "users-groups-by-id@openssh.com";
pub const CHECK_FILE_NAME: &str = "check-file-name";
pub const CHECK_FILE_HANDLE: &str = "check-file-handle";
/// paramiko's name for check-file-handle.
pub const CHECK_FILE: &str = "check-file";
pub const COPY_FILE: &str = "copy-file";

/// The extension name each form of check-file arrives under.
pub fn check_file_name(form: CheckFileForm) -> &'static str {
    match form {
        CheckFileForm::Name => CHECK_FILE_NAME,
        CheckFileForm::Handle => CHECK_FILE_HANDLE,
        CheckFileForm::Paramiko => CHECK_FILE,
    }
}

pub fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

pub fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

pub fn put_str(v: &mut Vec<u8>, s: &[u8]) {
    put_u32(v, s.len() as u32);
    v.extend_from_slice(s);
}

/// `ATTRS` with exactly the flags of the fields present (no extended pairs).
pub fn put_attrs(v: &mut Vec<u8>, a: &Attrs) {
    let mut flags = 0;
    for (present, bit) in [
        (a.size.is_some(), ATTR_SIZE),
        (a.uid_gid.is_some(), ATTR_UIDGID),
        (a.permissions.is_some(), ATTR_PERMISSIONS),
        (a.times.is_some(), ATTR_ACMODTIME),
    ] {
        if present {
            flags |= bit;
        }
    }
    put_u32(v, flags);
    if let Some(size) = a.size {
        put_u64(v, size);
    }
    if let Some((uid, gid)) = a.uid_gid {
        put_u32(v, uid);
        put_u32(v, gid);
    }
    if let Some(perm) = a.permissions {
        put_u32(v, perm);
    }
    if let Some((atime, mtime)) = a.times {
        put_u32(v, atime);
        put_u32(v, mtime);
    }
}

/// A packet body (type byte first, no length prefix) for `req`, with no byte more
/// than the request needs.
pub fn encode(req: &Request<'_>) -> Vec<u8> {
    use Request::*;
    let mut v = Vec::new();
    let head = |v: &mut Vec<u8>, ptype: u8, id: u32| {
        v.push(ptype);
        put_u32(v, id);
    };
    let ext = |v: &mut Vec<u8>, id: u32, name: &str| {
        v.push(SSH_FXP_EXTENDED);
        put_u32(v, id);
        put_str(v, name.as_bytes());
    };
    match *req {
        Init { version } => {
            v.push(SSH_FXP_INIT);
            put_u32(&mut v, version);
        }
        Open {
            id,
            filename,
            pflags,
            ref attrs,
        } => {
            head(&mut v, SSH_FXP_OPEN, id);
            put_str(&mut v, filename);
            put_u32(&mut v, pflags);
            put_attrs(&mut v, attrs);
        }
        Close { id, handle } => {
            head(&mut v, SSH_FXP_CLOSE, id);
            put_str(&mut v, handle);
        }
        Read {
            id,
            handle,
            offset,
            len,
        } => {
            head(&mut v, SSH_FXP_READ, id);
            put_str(&mut v, handle);
            put_u64(&mut v, offset);
            put_u32(&mut v, len);
        }
        Write {
            id,
            handle,
            offset,
            data,
        } => {
            head(&mut v, SSH_FXP_WRITE, id);
            put_str(&mut v, handle);
            put_u64(&mut v, offset);
            put_str(&mut v, data);
        }
        Lstat { id, path } => {
            head(&mut v, SSH_FXP_LSTAT, id);
            put_str(&mut v, path);
        }
        Fstat { id, handle } => {
            head(&mut v, SSH_FXP_FSTAT, id);
            put_str(&mut v, handle);
        }
        SetStat {
            id,
            path,
            ref attrs,
        } => {
            head(&mut v, SSH_FXP_SETSTAT, id);
            put_str(&mut v, path);
            put_attrs(&mut v, attrs);
        }
        FSetStat {
            id,
            handle,
            ref attrs,
        } => {
            head(&mut v, SSH_FXP_FSETSTAT, id);
            put_str(&mut v, handle);
            put_attrs(&mut v, attrs);
        }
        OpenDir { id, path } => {
            head(&mut v, SSH_FXP_OPENDIR, id);
            put_str(&mut v, path);
        }
        ReadDir { id, handle } => {
            head(&mut v, SSH_FXP_READDIR, id);
            put_str(&mut v, handle);
        }
        Remove { id, filename } => {
            head(&mut v, SSH_FXP_REMOVE, id);
            put_str(&mut v, filename);
        }
        Mkdir {
            id,
            path,
            ref attrs,
        } => {
            head(&mut v, SSH_FXP_MKDIR, id);
            put_str(&mut v, path);
            put_attrs(&mut v, attrs);
        }
        Rmdir { id, path } => {
            head(&mut v, SSH_FXP_RMDIR, id);
            put_str(&mut v, path);
        }
        RealPath { id, path } => {
            head(&mut v, SSH_FXP_REALPATH, id);
            put_str(&mut v, path);
        }
        Stat { id, path } => {
            head(&mut v, SSH_FXP_STAT, id);
            put_str(&mut v, path);
        }
        Rename {
            id,
            oldpath,
            newpath,
        } => {
            head(&mut v, SSH_FXP_RENAME, id);
            put_str(&mut v, oldpath);
            put_str(&mut v, newpath);
        }
        ReadLink { id, path } => {
            head(&mut v, SSH_FXP_READLINK, id);
            put_str(&mut v, path);
        }
        Symlink {
            id,
            targetpath,
            linkpath,
        } => {
            head(&mut v, SSH_FXP_SYMLINK, id);
            put_str(&mut v, targetpath);
            put_str(&mut v, linkpath);
        }
        PosixRename {
            id,
            oldpath,
            newpath,
        } => {
            ext(&mut v, id, POSIX_RENAME);
            put_str(&mut v, oldpath);
            put_str(&mut v, newpath);
        }
        StatVfs { id, path } => {
            ext(&mut v, id, STATVFS);
            put_str(&mut v, path);
        }
        FStatVfs { id, handle } => {
            ext(&mut v, id, FSTATVFS);
            put_str(&mut v, handle);
        }
        Hardlink {
            id,
            oldpath,
            newpath,
        } => {
            ext(&mut v, id, HARDLINK);
            put_str(&mut v, oldpath);
            put_str(&mut v, newpath);
        }
        Fsync { id, handle } => {
            ext(&mut v, id, FSYNC);
            put_str(&mut v, handle);
        }
        LSetStat {
            id,
            path,
            ref attrs,
        } => {
            ext(&mut v, id, LSETSTAT);
            put_str(&mut v, path);
            put_attrs(&mut v, attrs);
        }
        Limits { id } => ext(&mut v, id, LIMITS),
        ExpandPath { id, path } => {
            ext(&mut v, id, EXPAND_PATH);
            put_str(&mut v, path);
        }
        CopyData {
            id,
            read_from_handle,
            read_from_offset,
            read_data_length,
            write_to_handle,
            write_to_offset,
        } => {
            ext(&mut v, id, COPY_DATA);
            put_str(&mut v, read_from_handle);
            put_u64(&mut v, read_from_offset);
            put_u64(&mut v, read_data_length);
            put_str(&mut v, write_to_handle);
            put_u64(&mut v, write_to_offset);
        }
        HomeDirectory { id, username } => {
            ext(&mut v, id, HOME_DIRECTORY);
            put_str(&mut v, username);
        }
        UsersGroupsById { id, uids, gids } => {
            ext(&mut v, id, USERS_GROUPS_BY_ID);
            put_str(&mut v, uids);
            put_str(&mut v, gids);
        }
        CheckFile {
            id,
            form,
            target,
            hash_algorithm_list,
            start_offset,
            length,
            block_size,
        } => {
            ext(&mut v, id, check_file_name(form));
            put_str(&mut v, target);
            put_str(&mut v, hash_algorithm_list);
            put_u64(&mut v, start_offset);
            put_u64(&mut v, length);
            put_u32(&mut v, block_size);
        }
        CopyFile {
            id,
            source_path,
            destination_path,
            overwrite_destination,
        } => {
            ext(&mut v, id, COPY_FILE);
            put_str(&mut v, source_path);
            put_str(&mut v, destination_path);
            v.push(overwrite_destination as u8);
        }
        UnknownExtended { id, name } => {
            v.push(SSH_FXP_EXTENDED);
            put_u32(&mut v, id);
            put_str(&mut v, name);
        }
        Unknown { id, ptype } => head(&mut v, ptype, id),
    }
    v
}

/// True for the requests that carry `ATTRS`: the decoder drops extended pairs and
/// unknown flag bits there, so their encoding need not be the bytes that were decoded.
pub fn has_attrs(req: &Request<'_>) -> bool {
    use Request::*;
    matches!(
        req,
        Open { .. } | SetStat { .. } | FSetStat { .. } | Mkdir { .. } | LSetStat { .. }
    )
}

/// The path fields of a request: what the server hands to a system call as a file
/// name (a symlink's target included; a user name is not a path).
pub fn paths<'a>(req: &Request<'a>) -> Vec<&'a [u8]> {
    use Request::*;
    match *req {
        Open { filename, .. } | Remove { filename, .. } => vec![filename],
        Lstat { path, .. }
        | SetStat { path, .. }
        | OpenDir { path, .. }
        | Mkdir { path, .. }
        | Rmdir { path, .. }
        | RealPath { path, .. }
        | Stat { path, .. }
        | ReadLink { path, .. }
        | StatVfs { path, .. }
        | LSetStat { path, .. }
        | ExpandPath { path, .. } => vec![path],
        Rename {
            oldpath, newpath, ..
        }
        | PosixRename {
            oldpath, newpath, ..
        }
        | Hardlink {
            oldpath, newpath, ..
        } => vec![oldpath, newpath],
        Symlink {
            targetpath,
            linkpath,
            ..
        } => vec![targetpath, linkpath],
        CheckFile {
            form: CheckFileForm::Name,
            target,
            ..
        } => vec![target],
        CopyFile {
            source_path,
            destination_path,
            ..
        } => vec![source_path, destination_path],
        _ => vec![],
    }
}

/// The wire form of handle `slot` with generation 0: what the server hands out for
/// the `slot`-th handle opened in a fresh session (0 first).
pub const fn handle(slot: u8) -> [u8; 8] {
    [0, 0, 0, slot, 0, 0, 0, 0]
}

/// The handle the session seeds open first: `file`, read-write.
pub const H_FILE: [u8; 8] = handle(0);
/// The second: `copy`, read-write, created.
pub const H_COPY: [u8; 8] = handle(1);
/// The third: the directory `dir`.
pub const H_DIR: [u8; 8] = handle(2);

/// One valid request of every kind the server knows, each named for a corpus file,
/// with paths and handles that mean something in the fuzz session's directory.
pub fn samples() -> Vec<(&'static str, Request<'static>)> {
    use Request::*;
    let all = Attrs {
        size: Some(3),
        uid_gid: Some((0, 0)),
        permissions: Some(0o100644),
        times: Some((1_000_000_000, 1_000_000_001)),
    };
    let perm = Attrs {
        permissions: Some(0o755),
        ..Attrs::default()
    };
    vec![
        ("init", Init { version: 3 }),
        (
            "open",
            Open {
                id: 1,
                filename: b"new",
                pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
                attrs: perm,
            },
        ),
        (
            "close",
            Close {
                id: 2,
                handle: &H_FILE,
            },
        ),
        (
            "read",
            Read {
                id: 3,
                handle: &H_FILE,
                offset: 1,
                len: 64,
            },
        ),
        (
            "write",
            Write {
                id: 4,
                handle: &H_FILE,
                offset: 2,
                data: b"data",
            },
        ),
        (
            "lstat",
            Lstat {
                id: 5,
                path: b"link",
            },
        ),
        (
            "fstat",
            Fstat {
                id: 6,
                handle: &H_FILE,
            },
        ),
        (
            "setstat",
            SetStat {
                id: 7,
                path: b"file",
                attrs: all,
            },
        ),
        (
            "fsetstat",
            FSetStat {
                id: 8,
                handle: &H_FILE,
                attrs: all,
            },
        ),
        (
            "opendir",
            OpenDir {
                id: 9,
                path: b"dir",
            },
        ),
        (
            "readdir",
            ReadDir {
                id: 10,
                handle: &H_DIR,
            },
        ),
        (
            "remove",
            Remove {
                id: 11,
                filename: b"dir/inner",
            },
        ),
        (
            "mkdir",
            Mkdir {
                id: 12,
                path: b"dir/new",
                attrs: perm,
            },
        ),
        (
            "rmdir",
            Rmdir {
                id: 13,
                path: b"dir/sub",
            },
        ),
        (
            "realpath",
            RealPath {
                id: 14,
                path: b"dir/../link",
            },
        ),
        (
            "stat",
            Stat {
                id: 15,
                path: b"link",
            },
        ),
        (
            "rename",
            Rename {
                id: 16,
                oldpath: b"file",
                newpath: b"dir/moved",
            },
        ),
        (
            "readlink",
            ReadLink {
                id: 17,
                path: b"link",
            },
        ),
        (
            "symlink",
            Symlink {
                id: 18,
                targetpath: b"file",
                linkpath: b"dir/link2",
            },
        ),
        (
            "ext-posix-rename",
            PosixRename {
                id: 19,
                oldpath: b"file",
                newpath: b"copy",
            },
        ),
        (
            "ext-statvfs",
            StatVfs {
                id: 20,
                path: b"dir",
            },
        ),
        (
            "ext-fstatvfs",
            FStatVfs {
                id: 21,
                handle: &H_FILE,
            },
        ),
        (
            "ext-hardlink",
            Hardlink {
                id: 22,
                oldpath: b"file",
                newpath: b"dir/hard",
            },
        ),
        (
            "ext-fsync",
            Fsync {
                id: 23,
                handle: &H_FILE,
            },
        ),
        (
            "ext-lsetstat",
            LSetStat {
                id: 24,
                path: b"link",
                attrs: Attrs {
                    times: Some((5, 6)),
                    ..Attrs::default()
                },
            },
        ),
        ("ext-limits", Limits { id: 25 }),
        (
            "ext-expand-path",
            ExpandPath {
                id: 26,
                path: b"~/x",
            },
        ),
        (
            "ext-copy-data",
            CopyData {
                id: 27,
                read_from_handle: &H_FILE,
                read_from_offset: 0,
                read_data_length: 0,
                write_to_handle: &H_COPY,
                write_to_offset: 4,
            },
        ),
        (
            "ext-home-directory",
            HomeDirectory {
                id: 28,
                username: b"root",
            },
        ),
        (
            "ext-users-groups-by-id",
            UsersGroupsById {
                id: 29,
                uids: &[0, 0, 0, 0, 0, 0, 0, 1],
                gids: &[0, 0, 0, 0],
            },
        ),
        (
            "ext-check-file-name",
            CheckFile {
                id: 32,
                form: CheckFileForm::Name,
                target: b"link",
                hash_algorithm_list: b"sha256,md5",
                start_offset: 0,
                length: 0,
                block_size: 0,
            },
        ),
        (
            "ext-check-file-handle",
            CheckFile {
                id: 33,
                form: CheckFileForm::Handle,
                target: &H_FILE,
                hash_algorithm_list: b"crc32",
                start_offset: 1,
                length: 1000,
                block_size: 256,
            },
        ),
        (
            "ext-check-file",
            CheckFile {
                id: 34,
                form: CheckFileForm::Paramiko,
                target: &H_FILE,
                hash_algorithm_list: b"sha1",
                start_offset: 0,
                length: 0,
                block_size: 0,
            },
        ),
        (
            "ext-copy-file",
            CopyFile {
                id: 35,
                source_path: b"file",
                destination_path: b"dir/copied",
                overwrite_destination: true,
            },
        ),
        (
            "ext-unknown",
            UnknownExtended {
                id: 30,
                name: b"nope@example.com",
            },
        ),
        ("unknown-type", Unknown { id: 31, ptype: 99 }),
    ]
}

/// The session fuzz target's input format: a header of five bytes (the session
/// settings, see fuzz/fuzz_targets/session.rs), then packet bodies, each as a
/// big-endian u16 length and that many bytes; a last body shorter than its length
/// takes what is left.
pub const SESSION_HEADER: usize = 5;

pub fn session_input(header: [u8; SESSION_HEADER], bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut v = header.to_vec();
    for b in bodies {
        let len = u16::try_from(b.len()).expect("body fits a u16 length");
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(b);
    }
    v
}

/// Splits a session input into its header (zero-padded) and its packet bodies.
pub fn split_session_input(data: &[u8]) -> ([u8; SESSION_HEADER], Vec<&[u8]>) {
    let mut header = [0u8; SESSION_HEADER];
    let n = data.len().min(SESSION_HEADER);
    header[..n].copy_from_slice(&data[..n]);
    let mut rest = &data[n..];
    let mut bodies = Vec::new();
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let take = len.min(body.len());
        bodies.push(&body[..take]);
        rest = &body[take..];
    }
    (header, bodies)
}

/// A session seed for one request: open the session's three handles (`file`, `copy`
/// and `dir`), send `body`, close the handles.
pub fn session_seed(body: &[u8]) -> Vec<u8> {
    let open = |id, filename: &'static [u8], pflags| {
        encode(&Request::Open {
            id,
            filename,
            pflags,
            attrs: Attrs::default(),
        })
    };
    let close = |id, handle: &'static [u8]| encode(&Request::Close { id, handle });
    let bodies = vec![
        open(100, b"file", SSH_FXF_READ | SSH_FXF_WRITE),
        open(101, b"copy", SSH_FXF_READ | SSH_FXF_WRITE | SSH_FXF_CREAT),
        encode(&Request::OpenDir {
            id: 102,
            path: b"dir",
        }),
        body.to_vec(),
        close(103, &H_FILE),
        close(104, &H_COPY),
        close(105, &H_DIR),
    ];
    session_input([0; SESSION_HEADER], &bodies)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The packet types that have a request of their own (EXTENDED included).
pub fn is_known_type(ptype: u8) -> bool {
    ptype == SSH_FXP_INIT || (SSH_FXP_OPEN..=SSH_FXP_SYMLINK).contains(&ptype) || ptype == 200
}

/// What must hold of `wire::decode` on any input; panics with the reason otherwise.
/// The id (or INIT's version) is the u32 after the type byte; the packet type of an
/// error is the first byte; a decoded request encodes to a packet that decodes to
/// it again, is complete (any shorter is an error) and, where no attributes were
/// involved, is exactly the bytes that were decoded.
pub fn check_decode(data: &[u8]) {
    let word = (data.len() >= 5).then(|| be32(&data[1..5]));
    match sftp_server::wire::decode(data) {
        Ok(req) => {
            let ptype = data[0];
            match req {
                Request::Init { version } => {
                    assert_eq!(ptype, SSH_FXP_INIT);
                    assert_eq!(Some(version), word, "INIT's version");
                    assert_eq!(req.id(), None, "INIT has no id");
                }
                _ => {
                    assert_ne!(ptype, SSH_FXP_INIT);
                    assert_eq!(req.id(), word, "request id");
                }
            }
            if let Request::Unknown { ptype: p, .. } = req {
                assert_eq!(p, ptype);
                assert!(!is_known_type(p), "type {p} decoded as unknown");
            }
            if let Request::UnknownExtended { .. } = req {
                assert_eq!(ptype, SSH_FXP_EXTENDED);
            }
            // The request table agrees with the packet: its own type, or EXTENDED.
            if let Some(op) = req.op() {
                match op.info().carrier {
                    sftp_server::requests::Carrier::Packet(t) => assert_eq!(t, ptype),
                    sftp_server::requests::Carrier::Extension { name, .. } => {
                        assert_eq!(ptype, SSH_FXP_EXTENDED);
                        let len = be32(&data[5..9]) as usize;
                        let sent = &data[9..9 + len];
                        let aliases = op.info().aliases;
                        assert!(
                            sent == name.as_bytes() || aliases.iter().any(|a| a.as_bytes() == sent),
                            "extension name"
                        );
                    }
                }
            }
            let enc = encode(&req);
            assert_eq!(
                sftp_server::wire::decode(&enc).as_ref(),
                Ok(&req),
                "re-encoded request decodes to itself"
            );
            assert!(
                sftp_server::wire::decode(&enc[..enc.len() - 1]).is_err(),
                "a re-encoded request less its last byte must not decode"
            );
            // The encoding is the start of the input, unless the decoder dropped
            // something: attributes' extended pairs, or a C string's closing NUL.
            if let Request::CopyFile {
                overwrite_destination,
                ..
            } = req
                && !ends_a_string_with_nul(data, &req)
            {
                // A boolean is any byte, true when not 0 (RFC 4251); it encodes as 1.
                let last = enc.len() - 1;
                assert!(data.starts_with(&enc[..last]), "copy-file's strings");
                assert_eq!(data[last] != 0, overwrite_destination, "copy-file's bool");
            } else if !has_attrs(&req) && !ends_a_string_with_nul(data, &req) {
                assert!(
                    data.starts_with(&enc),
                    "the decoded request is a prefix of the input: {enc:02x?}"
                );
            }
        }
        Err(bad) => {
            assert_eq!(
                bad.ptype,
                data.first().copied().unwrap_or(0),
                "error's type"
            );
            let id = if data.first() == Some(&SSH_FXP_INIT) {
                None
            } else {
                word
            };
            assert_eq!(bad.id, id, "error's id");
        }
    }
}

/// Whether a string of `req` (a path or an extension name) is followed by a NUL in
/// `data`: its C-string terminator, which the decoder drops.
fn ends_a_string_with_nul(data: &[u8], req: &Request<'_>) -> bool {
    let mut strings = paths(req);
    if let Request::UnknownExtended { name, .. } = req {
        strings.push(name);
    }
    if data.first() == Some(&SSH_FXP_EXTENDED) {
        return true;
    }
    strings.iter().any(|p| {
        data.windows(p.len() + 1)
            .any(|w| w[..p.len()] == **p && w[p.len()] == 0)
    })
}
