//! `--atomic-uploads`: an OPEN that writes and truncates writes into a file no one else
//! can see, in the target's own directory, which takes the target's place only when
//! the client's CLOSE succeeds. Readers of the directory see the old file, or none,
//! until then; a session that ends without CLOSE leaves the target as it was.
//!
//! The new file is made with `O_TMPFILE`: it has no name, so nothing else can open it
//! and nothing is left behind whatever ends the process. At CLOSE it is linked into
//! the directory (linkat(2) with `AT_EMPTY_PATH`, or through its `/proc/self/fd` link
//! where that needs a privilege the process lacks): straight at the target's name when
//! there was no target (the link fails rather than replace one created meanwhile), or
//! at a hidden name renamed over the target. Where the file system has no `O_TMPFILE`,
//! or the file cannot be linked, it is a hidden file with a name of its own, removed
//! when the session ends, which listings leave out.
//!
//! The handle keeps the client's path; the target's directory is resolved again at
//! CLOSE, through [`Paths`] like every other path (so `--root` confines it), and no
//! descriptor beyond the file's own is held while the upload runs.

use crate::ops::file::close_reporting;
use crate::paths::Paths;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat};
use nix::unistd::{AccessFlags, UnlinkatFlags, faccessat, fchown, linkat, unlinkat};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// How the names of hidden files start: a dot, so `ls` and most pickup jobs skip them.
pub const TEMP_PREFIX: &[u8] = b".sftp-upload-";
/// The random part of a hidden name, in hex digits.
const TEMP_DIGITS: usize = 16;

/// Whether `name` (one directory entry) is the hidden file of an upload.
pub fn is_temp(name: &[u8]) -> bool {
    name.len() == TEMP_PREFIX.len() + TEMP_DIGITS
        && name.starts_with(TEMP_PREFIX)
        && name[TEMP_PREFIX.len()..].iter().all(u8::is_ascii_hexdigit)
}

/// How an unnamed file gets a name, found out once a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkWay {
    /// linkat(2) of the descriptor itself (CAP_DAC_READ_SEARCH, or Linux 6.10).
    EmptyPath,
    /// linkat(2) of its `/proc/self/fd` link.
    Proc,
    /// Neither: hidden files with names are used.
    Named,
}

/// The session's side of atomic uploads.
#[derive(Debug, Default)]
pub struct Uploads {
    link: Option<LinkWay>,
    seed: u64,
    made: u64,
}

impl Uploads {
    /// A hidden name not used before in this session, unlikely to be used by any
    /// other (the seed is random).
    fn temp_name(&mut self) -> Vec<u8> {
        if self.seed == 0 {
            let mut b = [0u8; 8];
            // SAFETY: getrandom writes at most `b.len()` bytes into the buffer given.
            let n = unsafe { nix::libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
            self.seed = match n {
                8 => u64::from_ne_bytes(b),
                _ => u64::from(std::process::id()) << 32,
            } | 1;
        }
        self.made += 1;
        // A multiplicative step makes successive names differ in every digit.
        let v = self
            .seed
            .wrapping_add(self.made.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut name = TEMP_PREFIX.to_vec();
        name.extend_from_slice(format!("{v:016x}").as_bytes());
        name
    }
}

/// An upload under way: what its CLOSE has to do.
#[derive(Debug)]
pub struct Upload {
    /// The hidden file's path as the client would name it, when it has a name.
    temp: Option<Vec<u8>>,
    /// `SSH_FXF_EXCL` with `SSH_FXF_CREAT`: never replace a target.
    excl: bool,
    /// There was a target at OPEN.
    existed: bool,
    /// The client synced the handle: the rename is synced too.
    pub durable: bool,
}

/// What OPEN is to do.
pub enum Begun {
    /// Open the target itself, as without `--atomic-uploads`.
    InPlace,
    /// Write into this file instead.
    Atomic(OwnedFd, Upload),
}

/// The directory part of a client path, for a call relative to the working
/// directory: `a/b` for `a/b/c`, `.` for `c`, `/` for `/c`.
fn parent_of(client: &[u8]) -> &[u8] {
    match client.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &client[..i],
        None => b".",
    }
}

/// The client path of `name` in the directory of `client`.
fn sibling(client: &[u8], name: &[u8]) -> Vec<u8> {
    let cut = client.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let mut p = client[..cut].to_vec();
    p.extend_from_slice(name);
    p
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

/// Starts an upload for an OPEN of `client` with `flags` (which write and truncate)
/// and `mode` for a new file. The errors are those open(2) of the target would give.
pub fn begin(
    paths: &Paths,
    uploads: &mut Uploads,
    client: &[u8],
    flags: OFlag,
    mode: u32,
) -> Result<Begun, Errno> {
    let last = client.rsplit(|&b| b == b'/').next().unwrap_or_default();
    // A path that names a directory gets the error open(2) gives it.
    if matches!(last, b"" | b"." | b"..") {
        return Ok(Begun::InPlace);
    }
    let target = paths.resolve(client)?;
    let old = match target.stat(false) {
        Ok(st) => Some(st),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(e),
    };
    let creat = flags.contains(OFlag::O_CREAT);
    let excl = creat && flags.contains(OFlag::O_EXCL);
    match &old {
        // A symlink is written through, a FIFO or a device is no upload.
        Some(st) if !is_regular(st) => return Ok(Begun::InPlace),
        Some(_) if excl => return Err(Errno::EEXIST),
        // Replacing a file takes what truncating it would: the right to write it.
        Some(_) => faccessat(
            target.dir(),
            target.path(),
            AccessFlags::W_OK,
            AtFlags::AT_EACCESS,
        )?,
        None if !creat => return Err(Errno::ENOENT),
        None => {}
    }
    let keep = flags & (OFlag::O_ACCMODE | OFlag::O_APPEND);
    let mode = Mode::from_bits_truncate(mode & 0o7777);
    let upload = |temp| Upload {
        temp,
        excl,
        existed: old.is_some(),
        durable: false,
    };
    if uploads.link != Some(LinkWay::Named) {
        // Confined, the target's directory is resolved already; unconfined, the
        // kernel resolves its path.
        let made = match paths.root_fd() {
            Some(_) => openat(
                target.dir(),
                ".",
                OFlag::O_TMPFILE | keep | OFlag::O_CLOEXEC,
                mode,
            ),
            None => openat(
                AT_FDCWD,
                parent_of(client),
                OFlag::O_TMPFILE | keep | OFlag::O_CLOEXEC,
                mode,
            ),
        };
        match made {
            Ok(fd) => {
                let way = *uploads
                    .link
                    .get_or_insert_with(|| probe(fd.as_fd(), target.dir()));
                if way != LinkWay::Named {
                    adopt(&fd, old.as_ref());
                    return Ok(Begun::Atomic(fd, upload(None)));
                }
            }
            // No O_TMPFILE here (the file system, an old kernel, a sandbox that
            // refuses it): a file with a name.
            Err(
                Errno::EOPNOTSUPP
                | Errno::EISDIR
                | Errno::EINVAL
                | Errno::ENOSYS
                | Errno::EACCES
                | Errno::EPERM,
            ) => {}
            Err(e) => return Err(e),
        }
    }
    for _ in 0..8 {
        let temp = sibling(client, &uploads.temp_name());
        let t = paths.resolve(&temp)?;
        let how = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | keep;
        match openat(t.dir(), t.path(), how, mode) {
            Ok(fd) => {
                adopt(&fd, old.as_ref());
                return Ok(Begun::Atomic(fd, upload(Some(temp))));
            }
            Err(Errno::EEXIST) => continue,
            // The directory is not writable but the file is: written in place, as
            // OpenSSH would.
            Err(Errno::EACCES | Errno::EPERM) if old.is_some() => return Ok(Begun::InPlace),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EEXIST)
}

/// A new file that replaces `old` takes its owner and group where the process may
/// give them, and its permissions (without set-user-ID and set-group-ID, which a
/// write by anyone but root would clear too): what truncating `old` would have left.
fn adopt(fd: &OwnedFd, old: Option<&FileStat>) {
    let Some(old) = old else { return };
    if let Ok(new) = fstat(fd)
        && (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid)
    {
        let _ = fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(old.st_uid)),
            Some(nix::unistd::Gid::from_raw(old.st_gid)),
        );
    }
    let _ = fchmod(fd, Mode::from_bits_truncate(old.st_mode & 0o1777));
}

/// Which way an unnamed file can be linked, asked without making a name: a link at
/// `.` fails with EEXIST only once the source was accepted (ENOENT otherwise).
fn probe(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>) -> LinkWay {
    if linkat(fd, "", dir, ".", AtFlags::AT_EMPTY_PATH) == Err(Errno::EEXIST) {
        return LinkWay::EmptyPath;
    }
    let proc = proc_path(fd);
    match linkat(
        AT_FDCWD,
        proc.as_str(),
        dir,
        ".",
        AtFlags::AT_SYMLINK_FOLLOW,
    ) {
        Err(Errno::EEXIST) => LinkWay::Proc,
        _ => LinkWay::Named,
    }
}

fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Gives the unnamed file `fd` the name `client`.
fn link(paths: &Paths, way: LinkWay, fd: BorrowedFd<'_>, client: &[u8]) -> Result<(), Errno> {
    let to = paths.resolve(client)?;
    match way {
        LinkWay::EmptyPath => linkat(fd, "", to.dir(), to.path(), AtFlags::AT_EMPTY_PATH),
        _ => linkat(
            AT_FDCWD,
            proc_path(fd).as_str(),
            to.dir(),
            to.path(),
            AtFlags::AT_SYMLINK_FOLLOW,
        ),
    }
}

fn remove(paths: &Paths, client: &[u8]) {
    if let Ok(t) = paths.resolve(client) {
        let _ = unlinkat(t.dir(), t.path(), UnlinkatFlags::NoRemoveDir);
    }
}

/// Moves the hidden file `temp` to `client`: never over an existing file with
/// `excl`. The hidden file is gone afterwards either way.
fn rename_into_place(paths: &Paths, temp: &[u8], client: &[u8], excl: bool) -> Result<(), Errno> {
    let r = (|| {
        let from = paths.resolve(temp)?;
        let to = paths.resolve(client)?;
        if !excl {
            return renameat(from.dir(), from.path(), to.dir(), to.path());
        }
        crate::ops::path::rename_noreplace(&from, &to, true)
    })();
    if r.is_err() {
        remove(paths, temp);
    }
    r
}

/// CLOSE of an upload handle: the new file takes the target's place (the client's
/// path, resolved now), then the descriptor is closed. On error the target is as it
/// was and nothing is left behind.
pub fn finish(
    paths: &Paths,
    uploads: &mut Uploads,
    client: &[u8],
    fd: OwnedFd,
    up: Upload,
) -> Result<(), Errno> {
    match &up.temp {
        // Closed first: a write-back error must keep the file from replacing the
        // target.
        Some(temp) => {
            if let Err(e) = close_reporting(fd) {
                remove(paths, temp);
                return Err(e);
            }
            rename_into_place(paths, temp, client, up.excl)?;
        }
        None => {
            let way = uploads.link.unwrap_or(LinkWay::Proc);
            // No target at OPEN: the link itself puts the file in place, and fails
            // rather than replace one created meanwhile.
            let direct = match up.excl || !up.existed {
                true => link(paths, way, fd.as_fd(), client),
                false => Err(Errno::EEXIST),
            };
            match direct {
                Ok(()) => {}
                Err(Errno::EEXIST) if !up.excl => {
                    let mut tries = 0;
                    let temp = loop {
                        let temp = sibling(client, &uploads.temp_name());
                        match link(paths, way, fd.as_fd(), &temp) {
                            Ok(()) => break temp,
                            Err(Errno::EEXIST) if tries < 8 => tries += 1,
                            Err(e) => return Err(e),
                        }
                    };
                    rename_into_place(paths, &temp, client, false)?;
                }
                Err(e) => return Err(e),
            }
            close_reporting(fd)?;
        }
    }
    if up.durable {
        sync_dir(paths, client)?;
    }
    Ok(())
}

/// fsync(2) of the directory holding `client`, so that its new entry lasts.
fn sync_dir(paths: &Paths, client: &[u8]) -> Result<(), Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = match paths.root_fd() {
        Some(_) => openat(paths.resolve(client)?.dir(), ".", flags, Mode::empty())?,
        None => openat(AT_FDCWD, parent_of(client), flags, Mode::empty())?,
    };
    nix::unistd::fsync(&dir)
}

/// The session ends with the upload's handle open: the target stays as it was, and a
/// hidden file with a name is removed (an unnamed one goes with its descriptor).
pub fn abandon(paths: &Paths, up: Upload) {
    if let Some(temp) = &up.temp {
        remove(paths, temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parent_of(b"a/b/c"), b"a/b");
        assert_eq!(parent_of(b"c"), b".");
        assert_eq!(parent_of(b"/c"), b"/");
        assert_eq!(sibling(b"a/b/c", b"x"), b"a/b/x");
        assert_eq!(sibling(b"c", b"x"), b"x");
        assert_eq!(sibling(b"/c", b"x"), b"/x");
        let mut u = Uploads::default();
        let (a, b) = (u.temp_name(), u.temp_name());
        assert!(a != b && is_temp(&a) && is_temp(&b));
        assert!(!is_temp(b".sftp-upload-") && !is_temp(b"file"));
    }
}
