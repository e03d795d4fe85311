//! The deliberate differences between OpenSSH's sftp-server and ours: after the
//! harness's masks, the only differences the differential tests accept. Each entry
//! says when it applies, from the request as sent and the two servers' outcomes.

use super::harness::{End, Outcome, Sent};
use super::ops::Op;
use crate::support::raw::*;

pub struct Allowed {
    pub name: &'static str,
    pub description: &'static str,
    /// (the request, OpenSSH's outcome, ours), both outcomes masked.
    pub applies: fn(&Sent, &Outcome, &Outcome) -> bool,
    /// The sessions no longer match afterwards: the harness restarts both.
    pub ends_sessions: bool,
    /// OpenSSH may have changed its copy where ours did not: the harness copies
    /// OpenSSH's tree over ours before restarting (instead of comparing the trees).
    pub resync: bool,
}

impl std::fmt::Debug for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub static ALLOWED: &[Allowed] = &[
    Allowed {
        name: "undecodable-body",
        description: "a request body that fails to decode (framing intact): ours replies \
                      STATUS BAD_MESSAGE with the id and goes on; OpenSSH exits with 255",
        applies: undecodable_body,
        ends_sessions: true,
        resync: false,
    },
    Allowed {
        name: "unknown-packet-type",
        description: "an unknown packet type: ours replies STATUS OP_UNSUPPORTED with the id; \
                      OpenSSH sends nothing (then or later: its session is over)",
        applies: unknown_packet_type,
        ends_sessions: true,
        resync: false,
    },
    Allowed {
        name: "failure-text",
        description: "a STATUS with code FAILURE: ours carries the system's error text, \
                      OpenSSH \"Failure\" (codes, ids and language tags still compared)",
        applies: failure_text,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "stale-handle",
        description: "a closed handle: OpenSSH's bytes may name a file opened later and reach \
                      it; ours refuses the handle with a STATUS",
        applies: stale_handle,
        ends_sessions: true,
        resync: true,
    },
    Allowed {
        name: "readdir-batches",
        description: "READDIR batch boundaries: the set of entries over the whole listing and \
                      the reply that ends it are compared, not each batch",
        applies: readdir_batches,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "limits-open-handles",
        description: "limits@openssh.com max-open-handles: ours RLIMIT_NOFILE soft - 8 \
                      (- 12 confined), OpenSSH's soft - 5 (the other three limits compared)",
        applies: limits_open_handles,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "readdir-open-directory",
        description: "READDIR lists the directory that was opened (entries looked up relative \
                      to its descriptor); OpenSSH looks entries up by the path given at \
                      OPENDIR, so after a rename or a retargeted symlink, or past PATH_MAX, \
                      it lists fewer (here: OpenSSH's entries are a subset of ours)",
        applies: readdir_open_directory,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "rename-noreplace",
        description: "version 3 RENAME with renameat2(RENAME_NOREPLACE): any existing target, \
                      a dangling symlink included, gives FAILURE \"File exists\"; OpenSSH's \
                      stat-then-rename replaces a dangling symlink (or fails on it)",
        applies: rename_noreplace,
        ends_sessions: true,
        resync: true,
    },
    Allowed {
        name: "home-directory-of-user",
        description: "home-directory answers the named user's home; OpenSSH answers the \
                      session user's home whatever name is asked",
        applies: home_directory_of_user,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "confined-path-length",
        description: "confined (--root): REALPATH and expand-path build the path inside the \
                      root, shorter than the real one, so a path OpenSSH finds longer than \
                      PATH_MAX (BAD_MESSAGE) gets an answer",
        applies: confined_path_length,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "confined-rmdir-dotdot",
        description: "confined (--root): RMDIR of a path ending in `..` (or of `/`) is \
                      BAD_MESSAGE, as for one ending in `.`; OpenSSH gets the kernel's \
                      answer for the directory above (not empty, or busy)",
        applies: confined_rmdir_dotdot,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "copy-data-false-success",
        description: "copy-data from a handle opened without READ, into one opened without \
                      WRITE, or from a directory opened as a file, with a length: OpenSSH \
                      copies nothing and answers OK (its error logging clears errno); ours \
                      answers the failure: NO_SUCH_FILE (EBADF's code, as OpenSSH answers \
                      with length 0) or FAILURE \"Is a directory\"",
        applies: copy_data_false_success,
        ends_sessions: false,
        resync: false,
    },
    Allowed {
        name: "copy-data-checks",
        description: "copy-data statuses: ours refuses overlapping ranges of one file \
                      through two handles, and answers OK when the source ends early; \
                      OpenSSH refuses two handles opened by one name, and answers EOF or OK \
                      by where its 64 KiB steps fall",
        applies: copy_data_checks,
        ends_sessions: true,
        resync: true,
    },
    Allowed {
        name: "own-extensions",
        description: "a second INIT: ours advertises check-file and copy-file after \
                      OpenSSH's extensions, which are compared",
        applies: own_extensions,
        ends_sessions: false,
        resync: false,
    },
];

fn own_extensions(_: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    matches!(ours.replies.first(), Some(Reply::Version { .. }))
        && *openssh == super::harness::without_own_extensions(ours.clone())
}

fn readdir_open_directory(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let names = |o: &Outcome| -> std::collections::BTreeSet<Vec<u8>> {
        listing(o).0.into_iter().map(|e| e.name).collect()
    };
    matches!(s.step.op.base(), Op::Readdir(_))
        && openssh.end == ours.end
        && ids(openssh) == ids(ours)
        && listing(openssh).1 == listing(ours).1
        && names(openssh).is_subset(&names(ours))
}

/// The only reply, when it is a STATUS: (id, code, message).
fn only_status(o: &Outcome) -> Option<(u32, u32, &[u8])> {
    match (&o.replies[..], &o.end) {
        ([Reply::Status { id, code, msg, .. }], End::Alive) => Some((*id, *code, &msg[..])),
        _ => None,
    }
}

fn rename_noreplace(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    // Whatever OpenSSH made of the target (replaced it, or failed on what is behind
    // the dangling link), ours found it there.
    matches!(s.step.op.base(), Op::Rename(..))
        && matches!(
            (only_status(openssh), only_status(ours)),
            (Some((ia, _, _)), Some((ib, SSH_FX_FAILURE, b"File exists"))) if ia == ib
        )
}

fn home_directory_of_user(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let one_name = |o: &Outcome| matches!((&o.replies[..], &o.end), ([Reply::Name { entries, .. }], End::Alive) if entries.len() == 1);
    matches!(s.step.op.base(), Op::HomeDirectory(_))
        && one_name(openssh)
        && one_name(ours)
        && ids(openssh) == ids(ours)
}

fn confined_path_length(s: &Sent, openssh: &Outcome, _: &Outcome) -> bool {
    let long = |p: &[u8]| p.len() > 3000;
    s.confined
        && matches!(s.step.op.base(), Op::Realpath(p) | Op::ExpandPath(p) if long(p))
        && matches!(only_status(openssh), Some((_, SSH_FX_BAD_MESSAGE, _)))
}

fn confined_rmdir_dotdot(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let dotdot = |p: &[u8]| {
        let trimmed = p.strip_suffix(b"/").unwrap_or(p);
        trimmed == b".." || trimmed.ends_with(b"/..") || trimmed.iter().all(|&b| b == b'/')
    };
    s.confined
        && matches!(s.step.op.base(), Op::Rmdir(p) if dotdot(p))
        && matches!((only_status(openssh), only_status(ours)), (Some((ia, _, _)), Some((ib, SSH_FX_BAD_MESSAGE, _))) if ia == ib)
}

fn copy_data_false_success(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let Op::CopyData { len, .. } = s.step.op.base() else {
        return false;
    };
    let (Some((ia, SSH_FX_OK, _)), Some((ib, code, msg))) =
        (only_status(openssh), only_status(ours))
    else {
        return false;
    };
    // OpenSSH maps SSH_FXF_WRITE alone to O_WRONLY, and no access flag to O_RDONLY.
    let unreadable =
        |p: Option<u32>| p.is_some_and(|p| p & (SSH_FXF_READ | SSH_FXF_WRITE) == SSH_FXF_WRITE);
    let unwritable = |p: Option<u32>| p.is_some_and(|p| p & SSH_FXF_WRITE == 0);
    let [from, to] = [0, 1].map(|i| s.handles.get(i).and_then(|u| u.pflags));
    let refused = match (code, msg) {
        (SSH_FX_NO_SUCH_FILE, _) => unreadable(from) || unwritable(to),
        (SSH_FX_FAILURE, b"Is a directory") => true,
        _ => false,
    };
    *len != 0 && ia == ib && refused
}

fn copy_data_checks(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    // OpenSSH's OK where ours reports that the handles could not be read or written
    // is copy-data-false-success's, and only that.
    let false_success = |o: Option<(u32, u32, &[u8])>, u: Option<(u32, u32, &[u8])>| {
        matches!(o, Some((_, SSH_FX_OK, _)))
            && matches!(
                u,
                Some((_, SSH_FX_NO_SUCH_FILE, _)) | Some((_, SSH_FX_FAILURE, b"Is a directory"))
            )
    };
    let (o, u) = (only_status(openssh), only_status(ours));
    matches!(s.step.op.base(), Op::CopyData { .. })
        && matches!((o, u), (Some((ia, ..)), Some((ib, ..))) if ia == ib)
        && !false_success(o, u)
}

/// The first entry that accepts the difference.
pub fn find(sent: &Sent, openssh: &Outcome, ours: &Outcome) -> Option<&'static Allowed> {
    ALLOWED.iter().find(|a| (a.applies)(sent, openssh, ours))
}

fn id_of(body: &[u8]) -> Option<u32> {
    body.get(..4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
}

fn undecodable_body(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let [(ta, ba), (tb, bb)] = &s.packets;
    if decodes(*ta, ba) || decodes(*tb, bb) {
        return false;
    }
    let ours_ok = match ours.only_status() {
        // Without a whole id there is none to echo.
        Some((id, SSH_FX_BAD_MESSAGE, _)) => id_of(bb).is_none_or(|want| id == want),
        _ => false,
    };
    openssh.replies.is_empty() && openssh.end == End::Exited(Some(255)) && ours_ok
}

fn unknown_packet_type(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    let (typ, body) = &s.packets[1];
    if known_type(*typ) {
        return false;
    }
    let Some(id) = id_of(body) else {
        return false;
    };
    openssh.replies.is_empty()
        && openssh.end == End::Silent
        && matches!(ours.only_status(), Some((i, SSH_FX_OP_UNSUPPORTED, _)) if i == id)
}

fn failure_text(_: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    openssh.end == ours.end
        && openssh.replies.len() == ours.replies.len()
        && openssh
            .replies
            .iter()
            .zip(&ours.replies)
            .all(|pair| match pair {
                (
                    Reply::Status {
                        id: ia,
                        code: SSH_FX_FAILURE,
                        msg,
                        lang: la,
                    },
                    Reply::Status {
                        id: ib,
                        code: SSH_FX_FAILURE,
                        lang: lb,
                        ..
                    },
                ) => ia == ib && la == lb && msg == b"Failure",
                (a, b) => a == b,
            })
}

fn stale_handle(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    s.handles
        .iter()
        .any(|u| u.closed && u.openssh_reaches.is_some())
        && openssh.end == End::Alive
        && ours.only_status().is_some()
}

/// A whole listing: every entry (sorted) and the replies other than NAME.
fn listing(o: &Outcome) -> (Vec<NameEntry>, Vec<Reply>) {
    let mut entries = Vec::new();
    let mut rest = Vec::new();
    for r in &o.replies {
        match r {
            Reply::Name { entries: e, .. } => entries.extend(e.iter().cloned()),
            other => rest.push(other.clone()),
        }
    }
    entries.sort_by(|a, b| (&a.name, &a.longname).cmp(&(&b.name, &b.longname)));
    (entries, rest)
}

fn ids(o: &Outcome) -> Vec<Option<u32>> {
    let mut v: Vec<_> = o.replies.iter().map(|r| r.id()).collect();
    v.dedup();
    v
}

fn readdir_batches(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    matches!(s.step.op.base(), Op::Readdir(_))
        && openssh.end == ours.end
        && ids(openssh) == ids(ours)
        && listing(openssh) == listing(ours)
}

fn limits_open_handles(s: &Sent, openssh: &Outcome, ours: &Outcome) -> bool {
    // Recognised by the reply's shape: the request may name the extension with a
    // C string's trailing NUL, which both servers accept.
    let fields = |o: &Outcome| match (&o.replies[..], &o.end) {
        ([Reply::ExtendedReply { id, body }], End::Alive) if body.len() == 32 => {
            let v: Vec<u64> = body
                .chunks(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                .collect();
            Some((*id, v))
        }
        _ => None,
    };
    let (Some((ia, a)), Some((ib, b))) = (fields(openssh), fields(ours)) else {
        return false;
    };
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit")
        .0;
    let reserved = if s.confined { 12 } else { 8 };
    ia == ib && a[..3] == b[..3] && a[3] == soft - 5 && b[3] == soft - reserved
}

/// Request types OpenSSH's server handles (INIT included: it answers a second one).
pub fn known_type(typ: u8) -> bool {
    matches!(
        typ,
        SSH_FXP_INIT | SSH_FXP_OPEN..=SSH_FXP_SYMLINK | SSH_FXP_EXTENDED
    )
}

/// Whether OpenSSH's server can parse this request body: every field it reads is
/// there, and the strings it takes as C strings (paths, names) hold no NUL byte
/// before their last byte.
/// Bytes after the last field are ignored, as OpenSSH ignores them.
pub fn decodes(typ: u8, body: &[u8]) -> bool {
    let mut p = Parse(body);
    parse(typ, &mut p).is_some()
}

struct Parse<'a>(&'a [u8]);

impl Parse<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<()> {
        self.take(8).map(drop)
    }
    fn string(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(|b| b.to_vec())
    }
    /// A string OpenSSH takes as a C string: a NUL byte is allowed only at its end.
    fn cstring(&mut self) -> Option<Vec<u8>> {
        self.string()
            .filter(|s| s.is_empty() || !s[..s.len() - 1].contains(&0))
    }
    fn attrs(&mut self) -> Option<()> {
        let flags = self.u32()?;
        if flags & SSH_FILEXFER_ATTR_SIZE != 0 {
            self.u64()?;
        }
        if flags & SSH_FILEXFER_ATTR_UIDGID != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & SSH_FILEXFER_ATTR_PERMISSIONS != 0 {
            self.u32()?;
        }
        if flags & SSH_FILEXFER_ATTR_ACMODTIME != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & SSH_FILEXFER_ATTR_EXTENDED != 0 {
            let count = self.u32()?;
            for _ in 0..count {
                self.cstring()?;
                self.string()?;
            }
        }
        Some(())
    }
    /// A string holding a list of u32s.
    fn ids(&mut self) -> Option<()> {
        (self.string()?.len() % 4 == 0).then_some(())
    }
}

fn parse(typ: u8, p: &mut Parse) -> Option<()> {
    if typ == SSH_FXP_INIT {
        return p.u32().map(drop);
    }
    p.u32()?; // id
    match typ {
        SSH_FXP_OPEN => {
            p.cstring()?;
            p.u32()?;
            p.attrs()
        }
        SSH_FXP_CLOSE | SSH_FXP_FSTAT | SSH_FXP_READDIR => p.string().map(drop),
        SSH_FXP_READ => {
            p.string()?;
            p.u64()?;
            p.u32().map(drop)
        }
        SSH_FXP_WRITE => {
            p.string()?;
            p.u64()?;
            p.string().map(drop)
        }
        SSH_FXP_LSTAT | SSH_FXP_STAT | SSH_FXP_OPENDIR | SSH_FXP_REMOVE | SSH_FXP_RMDIR
        | SSH_FXP_REALPATH | SSH_FXP_READLINK => p.cstring().map(drop),
        SSH_FXP_SETSTAT | SSH_FXP_MKDIR => {
            p.cstring()?;
            p.attrs()
        }
        SSH_FXP_FSETSTAT => {
            p.string()?;
            p.attrs()
        }
        SSH_FXP_RENAME | SSH_FXP_SYMLINK => {
            p.cstring()?;
            p.cstring().map(drop)
        }
        SSH_FXP_EXTENDED => {
            let name = p.cstring()?;
            match &name[..] {
                b"posix-rename@openssh.com" | b"hardlink@openssh.com" => {
                    p.cstring()?;
                    p.cstring().map(drop)
                }
                b"statvfs@openssh.com" | b"expand-path@openssh.com" | b"home-directory" => {
                    p.cstring().map(drop)
                }
                b"fstatvfs@openssh.com" | b"fsync@openssh.com" => p.string().map(drop),
                b"lsetstat@openssh.com" => {
                    p.cstring()?;
                    p.attrs()
                }
                b"copy-data" => {
                    p.string()?;
                    p.u64()?;
                    p.u64()?;
                    p.string()?;
                    p.u64()
                }
                b"users-groups-by-id@openssh.com" => {
                    p.ids()?;
                    p.ids()
                }
                _ => Some(()),
            }
        }
        // An unknown type: OpenSSH reads the id and nothing more.
        _ => Some(()),
    }
}

/// The list as a Markdown table (for the README), and a check that it is well-formed.
#[test]
fn diff_allowed_list_is_well_formed() {
    let mut names: Vec<&str> = ALLOWED.iter().map(|a| a.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ALLOWED.len(), "names are unique");
    let mut table = String::from("| name | difference |\n|---|---|\n");
    for a in ALLOWED {
        assert!(!a.description.is_empty() && !a.description.contains('\n'));
        assert!(
            !a.resync || a.ends_sessions,
            "{}: resync needs a restart",
            a.name
        );
        table.push_str(&format!("| `{}` | {} |\n", a.name, a.description));
    }
    eprintln!("{table}");
}
