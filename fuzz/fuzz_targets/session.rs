//! A whole session in-process: INIT, then the packet bodies of the input (format in
//! `split_session_input`, tests/props/packets.rs: a five-byte settings header, then
//! u16-length-prefixed bodies) through one `Session`, in a fresh directory for each
//! input. Every packet must get exactly one well-framed reply of a type its request
//! may have, carrying its id, or end the session with nothing written; nothing may
//! panic.
//!
//! # Keeping the session in its directory
//!
//! The server acts on the paths it is sent, absolute ones included, with the full
//! rights of this process (root here). So before a packet reaches the session, every
//! path field in it (symlink targets included) is rewritten to a relative path with no
//! `..` component (`confine`): such a path names something under the working
//! directory, and so does every symlink the session can make, since its target is
//! confined the same way. The directory starts with one symlink of ours, to a name
//! inside it. Packets that do not decode are passed on unchanged: the session decodes
//! them with the same decoder and touches no file for them. Handles only name what was
//! opened through such paths. Reading outside is possible only through REALPATH and
//! expand-path (`~`), which resolve names but change nothing.
//!
//! A chroot(2) into the directory would be simpler, but libFuzzer goes on reading
//! and writing files by path while it runs (seed inputs, new corpus entries, crash
//! inputs under fuzz/); inside a chroot those would fail, a crash input silently.
//! For the same reason the working directory is the session's only while an input
//! runs, and is restored before a failed check aborts.
//!
//! The rest of the harm a session could do is size: files are capped at 1 MiB by
//! RLIMIT_FSIZE (SIGXFSZ ignored, so a write past it is an EFBIG error), which also
//! bounds a copy-data from a large sparse file, and the directory is removed and made
//! anew for every input (and removed when the process exits normally).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sftp_server::config::{Config, OpSet};
use sftp_server::requests::REQUESTS;
use sftp_server::server::{Flow, Session};
use sftp_server::wire::{self, Attrs, Out, Reader, Request};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "../../tests/props/packets.rs"]
mod packets;
use packets::*;

/// RLIMIT_FSIZE for the fuzzing process: the largest file a session can make.
const MAX_FILE: u64 = 1 << 20;

static BASE: OnceLock<PathBuf> = OnceLock::new();
/// The working directory libFuzzer started in, restored after every input: it
/// reads corpus files by the paths it was given, relative ones too.
static HOME: OnceLock<PathBuf> = OnceLock::new();

/// Where the scratch directory goes: `SFTP_FUZZ_DIR`, else /dev/shm (a tmpfs: on a
/// disk, making and removing the directory for every input dominates the run time),
/// else the temp dir.
fn scratch_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("SFTP_FUZZ_DIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// This process's scratch directory, made (and the limits set) on first use.
fn base() -> &'static Path {
    BASE.get_or_init(|| {
        HOME.set(std::env::current_dir().expect("the working directory"))
            .unwrap();
        // A failed check aborts the process from libFuzzer's panic hook: go back to
        // where relative paths (a relative -artifact_prefix) were meant first.
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            leave_session_dir();
            libfuzzer_hook(info)
        }));
        let base = scratch_parent().join(format!("sftp-server-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).expect("create the scratch directory");
        let limit = libc::rlimit {
            rlim_cur: MAX_FILE,
            rlim_max: MAX_FILE,
        };
        // SAFETY: plain libc calls with valid arguments; `remove_base` is a valid
        // `extern "C" fn()`.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            libc::atexit(remove_base);
        }
        base
    })
}

fn leave_session_dir() {
    if let Some(home) = HOME.get() {
        let _ = std::env::set_current_dir(home);
    }
}

extern "C" fn remove_base() {
    if let Some(base) = BASE.get() {
        leave_session_dir();
        remove_tree(base);
    }
}

/// Removes `path` and everything under it, making directories writable first if it
/// has to (a session may chmod them; root needs no such help).
fn remove_tree(path: &Path) {
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
    std::fs::remove_dir_all(path).expect("remove the session directory");
}

/// A fresh session directory (made anew) as the working directory:
/// `file`, `dir/inner`, `dir/sub/`, `link -> file`.
fn fresh_dir() {
    let base = base();
    std::env::set_current_dir(base).expect("cd to the scratch directory");
    let w = base.join("w");
    remove_tree(&w);
    std::fs::create_dir(&w).expect("mkdir w");
    std::fs::write(w.join("file"), b"hello, world\n").unwrap();
    std::fs::create_dir(w.join("dir")).unwrap();
    std::fs::write(w.join("dir/inner"), b"inner\n").unwrap();
    std::fs::create_dir(w.join("dir/sub")).unwrap();
    std::os::unix::fs::symlink("file", w.join("link")).unwrap();
    std::env::set_current_dir(&w).expect("cd to the session directory");
}

/// `p` as a relative path without `..`: those components dropped, then the leading
/// slashes.
fn confine_path(p: &[u8]) -> Vec<u8> {
    let kept: Vec<&[u8]> = p.split(|&b| b == b'/').filter(|c| *c != b"..").collect();
    let joined = kept.join(&b'/');
    let start = joined
        .iter()
        .position(|&b| b != b'/')
        .unwrap_or(joined.len());
    joined[start..].to_vec()
}

fn is_confined(p: &[u8]) -> bool {
    !p.starts_with(b"/") && !p.split(|&b| b == b'/').any(|c| c == b"..")
}

/// `body` with every path field confined; everything else (trailing bytes included)
/// as it was.
fn confine(body: &[u8]) -> Vec<u8> {
    let Ok(req) = wire::decode(body) else {
        return body.to_vec();
    };
    let mut fields = paths(&req);
    fields.sort_by_key(|f| f.as_ptr() as usize);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for f in fields {
        // A path is a string: its bytes follow its u32 length in the body.
        let start = f.as_ptr() as usize - body.as_ptr() as usize;
        out.extend_from_slice(&body[at..start - 4]);
        put_str(&mut out, &confine_path(f));
        at = start + f.len();
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
fn config(header: [u8; SESSION_HEADER]) -> Config {
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
fn success_type(req: &Request<'_>) -> Option<u8> {
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
        StatVfs { .. } | FStatVfs { .. } | Limits { .. } | UsersGroupsById { .. } => {
            wire::SSH_FXP_EXTENDED_REPLY
        }
        _ => return None,
    })
}

fn s<'a>(f: &mut Reader<'a>) -> &'a [u8] {
    f.string().expect("a string in the reply")
}

/// Checks that `out` holds exactly the one reply `body` should have had.
fn check_reply(body: &[u8], out: &[u8]) {
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
                    assert!(!data.is_empty(), "empty DATA instead of EOF");
                    assert!(data.len() <= (*len).min(wire::MAX_READ) as usize);
                }
                (wire::SSH_FXP_ATTRS, _) => {
                    Attrs::decode(&mut f).expect("attrs");
                }
                (wire::SSH_FXP_NAME, _) => {
                    let n = f.u32().expect("count");
                    match req {
                        Request::ReadDir { .. } => assert!((1..=100).contains(&n), "{n}"),
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
                _ => unreachable!(),
            }
        }
    }
    assert!(f.is_empty(), "bytes left over in the reply: {frame:02x?}");
}

fuzz_target!(|data: &[u8]| {
    let (header, bodies) = split_session_input(data);
    fresh_dir();
    let mut session = Session::new(config(header));
    let mut out = Out::default();
    let init = encode(&Request::Init { version: 3 });
    assert_eq!(session.handle_packet(&init, &mut out), Flow::Continue);
    check_reply(&init, out.as_bytes());
    out.consume(out.len());
    for body in bodies {
        let body = confine(body);
        match session.handle_packet(&body, &mut out) {
            Flow::Continue => check_reply(&body, out.as_bytes()),
            Flow::Exit(_) => {
                assert!(out.is_empty(), "a reply before the session ended");
                break;
            }
        }
        out.consume(out.len());
    }
    session.close_all();
    leave_session_dir();
});
