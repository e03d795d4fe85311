//! What a session must do with each packet, and how a packet is kept inside the
//! session's directory: the oracle of the session fuzz target (fuzz/ includes this
//! file by path) and of the replays in `fuzz_regressions`.
//!
//! # Keeping a session in its directory
//!
//! The server acts on the paths it is sent, absolute ones included, with the full
//! rights of its process. So before a packet reaches a session, every path field in
//! it (symlink targets included) is rewritten to a relative path with no `..`
//! component (`confine`): such a path names something under the working directory,
//! and so does every symlink the session can make, since its target is confined the
//! same way. The directory starts with one symlink, to a name inside it
//! (`populate`). Packets that do not decode are passed on unchanged: the session
//! decodes them with the same decoder and touches no file for them. Handles only name
//! what was opened through such paths. Reading outside is possible only through
//! REALPATH and expand-path (`~`), which resolve names but change nothing.
#![allow(dead_code)]

use super::packets::*;
use sftp_server::config::{Config, OpSet};
use sftp_server::requests::REQUESTS;
use sftp_server::wire::{self, Attrs, Reader, Request};
use std::path::Path;

/// Fills a fresh session directory: `file`, `dir/inner`, `dir/sub/`, `link -> file`.
pub fn populate(w: &Path) {
    std::fs::write(w.join("file"), b"hello, world\n").unwrap();
    std::fs::create_dir(w.join("dir")).unwrap();
    std::fs::write(w.join("dir/inner"), b"inner\n").unwrap();
    std::fs::create_dir(w.join("dir/sub")).unwrap();
    std::os::unix::fs::symlink("file", w.join("link")).unwrap();
}

/// Removes `path` and everything under it, making directories writable first if it
/// has to (a session may chmod them; root needs no such help).
pub fn remove_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(path).is_ok() || std::fs::symlink_metadata(path).is_err() {
        return;
    }
    fn open_up(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                open_up(&e.path());
            }
        }
    }
    open_up(path);
    if let Err(e) = std::fs::remove_dir_all(path) {
        panic!("remove {}: {e}", path.display());
    }
}

/// `p` as a relative path without `..`: those components dropped, then the leading
/// slashes.
pub fn confine_path(p: &[u8]) -> Vec<u8> {
    let kept: Vec<&[u8]> = p.split(|&b| b == b'/').filter(|c| *c != b"..").collect();
    let joined = kept.join(&b'/');
    let start = joined
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(joined.len());
    joined[start..].to_vec()
}

pub fn is_confined(p: &[u8]) -> bool {
    !p.starts_with(b"/") && !p.split(|&b| b == b'/').any(|c| c == b"..")
}

/// `body` with every path field confined; everything else (trailing bytes included)
/// as it was.
pub fn confine(body: &[u8]) -> Vec<u8> {
    let Ok(req) = wire::decode(body) else {
        return body.to_vec();
    };
    let mut fields = paths(&req);
    fields.sort_by_key(|f| f.as_ptr() as usize);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for f in fields {
        // A path is a string: its bytes follow its u32 length in the body. The
        // decoder drops one trailing NUL from a path, so the string on the wire may
        // be a byte longer than the path.
        let start = f.as_ptr() as usize - body.as_ptr() as usize;
        let wire_len = u32::from_be_bytes(body[start - 4..start].try_into().unwrap()) as usize;
        out.extend_from_slice(&body[at..start - 4]);
        put_str(&mut out, &confine_path(f));
        at = start + wire_len;
    }
    out.extend_from_slice(&body[at..]);
    let again = wire::decode(&out).expect("a confined packet decodes");
    assert_eq!(again.id(), req.id());
    assert!(paths(&again).iter().all(|p| is_confined(p)), "{again:?}");
    out
}

/// The session settings the header selects: bit 0 read-only (`-R`), bit 1 a table
/// of two handles, bit 2 deny (`-P`) and bit 3 allow only (`-p`) the requests whose
/// row numbers are set in the u32 that follows.
pub fn config(header: [u8; SESSION_HEADER]) -> Config {
    let mut c = Config::default();
    let flags = header[0];
    let mask = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut set = OpSet::empty();
    for r in REQUESTS {
        if mask & (1 << (r.op as u32 % 32)) != 0 {
            set.insert(r.op);
        }
    }
    c.read_only = flags & 1 != 0;
    if flags & 2 != 0 {
        c.max_handles = 2;
    }
    if flags & 4 != 0 {
        c.denied = Some(set);
    }
    if flags & 8 != 0 {
        c.allowed = Some(set);
    }
    c
}

/// The reply type a request has when it succeeds with something other than a STATUS.
pub fn success_type(req: &Request<'_>) -> Option<u8> {
    use Request::*;
    Some(match req {
        Open { .. } | OpenDir { .. } => wire::SSH_FXP_HANDLE,
        Read { .. } => wire::SSH_FXP_DATA,
        Stat { .. } | Lstat { .. } | Fstat { .. } => wire::SSH_FXP_ATTRS,
        ReadDir { .. }
        | RealPath { .. }
        | ReadLink { .. }
        | ExpandPath { .. }
        | HomeDirectory { .. } => wire::SSH_FXP_NAME,
        StatVfs { .. }
        | FStatVfs { .. }
        | Limits { .. }
        | UsersGroupsById { .. }
        | CheckFile { .. } => wire::SSH_FXP_EXTENDED_REPLY,
        _ => return None,
    })
}

/// The most one READDIR reply holds.
const READDIR_BUDGET: usize = 32 * 1024;

fn s<'a>(f: &mut Reader<'a>) -> &'a [u8] {
    f.string().expect("a string in the reply")
}

/// Checks that `out` holds exactly the one reply `body` should have had.
pub fn check_reply(body: &[u8], out: &[u8]) {
    let mut r = Reader::new(out);
    let frame = r.string().expect("a whole [u32 length][body] frame");
    assert!(r.is_empty(), "one reply per request, got more: {out:02x?}");
    assert!(
        frame.len() <= wire::MAX_FRAME,
        "reply of {} bytes",
        frame.len()
    );
    let mut f = Reader::new(frame);
    let ptype = f.u8().expect("reply type");
    let word = f.u32().expect("reply id");
    let decoded = wire::decode(body);
    if let Ok(Request::Init { .. }) = decoded {
        assert_eq!(ptype, wire::SSH_FXP_VERSION, "INIT's reply");
        assert_eq!(word, wire::SFTP_VERSION);
        while !f.is_empty() {
            s(&mut f);
            s(&mut f);
        }
        return;
    }
    let (id, success) = match &decoded {
        Ok(req) => (req.id().expect("an id"), success_type(req)),
        Err(bad) => (bad.id.expect("the session went on without an id"), None),
    };
    assert_eq!(word, id, "the reply's id is the request's");
    match ptype {
        wire::SSH_FXP_STATUS => {
            let code = f.u32().expect("status code");
            assert!(code <= 8, "status code {code}");
            if decoded.is_err() {
                assert_eq!(code, 5, "a bad packet gets BAD_MESSAGE");
            }
            s(&mut f);
            assert_eq!(s(&mut f), b"", "language tag");
        }
        t => {
            assert_eq!(Some(t), success, "reply type {t} to {decoded:?}");
            let req = decoded.as_ref().unwrap();
            match (t, req) {
                (wire::SSH_FXP_HANDLE, _) => assert_eq!(s(&mut f).len(), 8, "handle length"),
                (wire::SSH_FXP_DATA, Request::Read { len, .. }) => {
                    let data = s(&mut f);
                    // A READ of 0 bytes gets an empty DATA, as from OpenSSH.
                    assert!(!data.is_empty() || *len == 0, "empty DATA instead of EOF");
                    assert!(data.len() <= (*len).min(wire::MAX_READ) as usize);
                }
                (wire::SSH_FXP_ATTRS, _) => {
                    Attrs::decode(&mut f).expect("attrs");
                }
                (wire::SSH_FXP_NAME, _) => {
                    let n = f.u32().expect("count");
                    match req {
                        // As many entries as fit in 32 KiB (the reply's whole frame,
                        // length word included), and at least one.
                        Request::ReadDir { .. } => {
                            assert!(n >= 1, "empty NAME instead of EOF");
                            assert!(frame.len() + 4 <= READDIR_BUDGET, "{} bytes", frame.len());
                        }
                        _ => assert_eq!(n, 1, "one name"),
                    }
                    for _ in 0..n {
                        s(&mut f);
                        s(&mut f);
                        Attrs::decode(&mut f).expect("attrs");
                    }
                }
                (_, Request::Limits { .. }) => {
                    f.take(4 * 8).expect("four u64s");
                }
                (_, Request::StatVfs { .. } | Request::FStatVfs { .. }) => {
                    f.take(11 * 8).expect("eleven u64s");
                }
                (_, Request::UsersGroupsById { uids, gids, .. }) => {
                    for ids in [uids, gids] {
                        let mut names = Reader::new(s(&mut f));
                        for _ in 0..ids.len() / 4 {
                            s(&mut names);
                        }
                        assert!(names.is_empty(), "one name per id");
                    }
                }
                (_, Request::CheckFile { form, .. }) => {
                    if *form == wire::CheckFileForm::Paramiko {
                        assert_eq!(s(&mut f), b"check-file", "paramiko's reply");
                    }
                    let alg = s(&mut f);
                    let len = match alg {
                        b"md5" => 16,
                        b"sha1" => 20,
                        b"sha224" => 28,
                        b"sha256" => 32,
                        b"sha384" => 48,
                        b"sha512" => 64,
                        b"crc32" => 4,
                        other => panic!("algorithm {other:?}"),
                    };
                    let digests = f.rest();
                    assert!(
                        !digests.is_empty() && digests.len() % len == 0,
                        "whole digests"
                    );
                }
                _ => unreachable!(),
            }
        }
    }
    assert!(f.is_empty(), "bytes left over in the reply: {frame:02x?}");
}

/// The server's command line for the settings `header` selects (as `config`), and
/// the RLIMIT_NOFILE that gives it a table of two handles when bit 1 is set (its
/// table is the limit less 8).
pub fn cli_args(header: [u8; SESSION_HEADER]) -> (Vec<String>, Option<u64>) {
    let c = config(header);
    let mut args = Vec::new();
    if c.read_only {
        args.push("-R".to_string());
    }
    let names = |set: OpSet| {
        REQUESTS
            .iter()
            .filter(|r| set.contains(r.op))
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(",")
    };
    if let Some(set) = c.denied {
        args.push("-P".to_string());
        args.push(names(set));
    }
    if let Some(set) = c.allowed {
        args.push("-p".to_string());
        args.push(names(set));
    }
    (args, (header[0] & 2 != 0).then_some(10))
}

/// What a handle was opened as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// The handles a session has handed out and not closed, from its replies: a request
/// on any other handle, or on a handle of the wrong kind, must fail.
#[derive(Debug, Default)]
pub struct Handles {
    live: Vec<(Vec<u8>, Kind)>,
}

impl Handles {
    /// Checks the reply (as `check_reply` takes it) to `body` against the handles
    /// open so far, then notes what it opened or closed.
    pub fn check(&mut self, body: &[u8], reply: &[u8]) {
        use Request::*;
        let Ok(req) = wire::decode(body) else {
            return;
        };
        let ok = match reply[4] {
            wire::SSH_FXP_STATUS => reply[9..13] == [0, 0, 0, 0],
            _ => true,
        };
        let (used, kind): (Vec<&[u8]>, Option<Kind>) = match req {
            Close { handle, .. } => (vec![handle], None),
            ReadDir { handle, .. } => (vec![handle], Some(Kind::Dir)),
            Read { handle, .. }
            | Write { handle, .. }
            | Fstat { handle, .. }
            | FSetStat { handle, .. }
            | FStatVfs { handle, .. }
            | Fsync { handle, .. } => (vec![handle], Some(Kind::File)),
            CopyData {
                read_from_handle,
                write_to_handle,
                ..
            } => (vec![read_from_handle, write_to_handle], Some(Kind::File)),
            _ => (vec![], None),
        };
        for h in &used {
            let live = self.live.iter().find(|(l, _)| l == h).map(|&(_, k)| k);
            let fits = live.is_some() && (kind.is_none() || live == kind);
            assert!(
                fits || !ok,
                "{req:?} succeeded on handle {h:02x?} ({live:?}, open: {:02x?})",
                self.live
            );
        }
        if let Close { handle, .. } = req {
            self.live.retain(|(l, _)| l != handle);
        }
        if reply[4] == wire::SSH_FXP_HANDLE {
            let h = reply[13..].to_vec();
            assert!(
                !self.live.iter().any(|(l, _)| *l == h),
                "handle {h:02x?} handed out twice"
            );
            let kind = match req {
                OpenDir { .. } => Kind::Dir,
                _ => Kind::File,
            };
            self.live.push((h, kind));
        }
    }
}
