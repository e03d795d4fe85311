//! Where a client path becomes what a system call acts on. Every operation on a path
//! asks [`Paths`] for a [`Target`] (a directory descriptor and a path relative to it)
//! or for an open descriptor, so confinement lives here and nowhere else. Paths stay
//! bytes all the way: names need not be UTF-8.
//!
//! Unconfined, the client sees the server's own file system: a target is `AT_FDCWD`
//! and the client's path as given, and the kernel resolves it, exactly as OpenSSH.
//!
//! Confined (`--root DIR`), the client sees DIR as `/`. DIR is opened once, and every
//! path is resolved beneath that descriptor with openat2(2) and `RESOLVE_IN_ROOT`:
//! `..` stops at DIR, and symbolic links, absolute ones included, are followed as if
//! DIR were the root of the file system. Magic links (`/proc/self/fd/N` and the like)
//! are refused. Where openat2 is missing, the same resolution is done one component at
//! a time with `O_NOFOLLOW`. Operations then act on one of two kinds of target:
//!
//! * the final component itself (lstat, remove, mkdir, rmdir, rename, link, symlink,
//!   readlink, lsetstat): the parent directory, resolved inside DIR, and the last
//!   name, acted on with the `*at` call that never follows it;
//! * what the path leads to (stat, setstat, statvfs, open, opendir): a descriptor of
//!   the file itself, the final symlink followed inside DIR, acted on through the
//!   descriptor (`AT_EMPTY_PATH`, `f*` calls).
//!
//! Nothing that reaches a system call can then name a file outside DIR, whatever
//! symlinks another process swaps in meanwhile: each step either goes through
//! openat2's scoped resolution or refuses to follow a final symlink.
//!
//! The last parent directory resolved is kept for the requests the server read in
//! one go, so that a run of requests on names in one directory resolves it once (see
//! [`Paths::forget`] and [`Paths::changed`] for when it is dropped). STAT takes the
//! same way: the lstat of the final name in its parent, unless that name is a symlink.

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmodat, fstat, fstatat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How many symbolic links one resolution follows before it gives up (ELOOP), as the
/// kernel's own limit.
const MAX_SYMLINKS: usize = 40;

/// The size of OpenSSH's path buffers (and the kernel's limit on a path given to
/// a system call, its NUL included).
const PATH_MAX: usize = 4096;

/// How many symbolic links REALPATH follows: OpenSSH's `sftp_realpath` gives up
/// at the next one (its `symlinks++ > SYMLOOP_MAX`, 32).
const REALPATH_SYMLINKS: usize = 33;

/// How often an openat2 that reports a concurrent rename (EAGAIN) is tried again
/// before the component walk takes over.
const EAGAIN_RETRIES: usize = 16;

/// How a target's path is to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unconfined: the kernel resolves the whole path; the operation says whether a
    /// final symlink is followed.
    Open,
    /// Confined: a single name in `dir`, never followed.
    Name,
    /// Confined: `dir` is the file itself (an `O_PATH` descriptor), `path` is empty.
    Resolved,
}

/// A path as a system call takes it: relative to `dir`.
pub struct Target<'a> {
    /// Shared with [`Paths`]' cache of the last parent directory resolved.
    dir: Option<Rc<OwnedFd>>,
    path: Cow<'a, [u8]>,
    kind: Kind,
}

impl Target<'_> {
    /// The directory `path` is relative to.
    pub fn dir(&self) -> BorrowedFd<'_> {
        match &self.dir {
            Some(fd) => fd.as_fd(),
            None => AT_FDCWD,
        }
    }

    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The `AT_*` flags for a call on this target that follows a final symlink when
    /// `follow` is set and the target allows it. A confined name is never followed.
    fn at_flags(&self, follow: bool) -> AtFlags {
        match self.kind {
            Kind::Open if follow => AtFlags::empty(),
            Kind::Open | Kind::Name => AtFlags::AT_SYMLINK_NOFOLLOW,
            Kind::Resolved => AtFlags::AT_EMPTY_PATH,
        }
    }

    /// The path for a call that looks at the target itself. A confined name keeps
    /// a trailing slash for the calls that create, remove or rename by name (the
    /// kernel never follows a symlink for those, and answers ENOTDIR or EEXIST as
    /// the slash asks); the calls that would follow a final symlink because of the
    /// slash (lstat, lchmod, lchown, utimes, readlink) take the bare name, and
    /// [`Paths::resolve_link`] resolves the slash inside the root beforehand.
    fn name(&self) -> &[u8] {
        match self.kind {
            Kind::Name => {
                let end = self
                    .path
                    .iter()
                    .rposition(|&b| b != b'/')
                    .map_or(0, |i| i + 1);
                &self.path[..end]
            }
            Kind::Open | Kind::Resolved => &self.path,
        }
    }

    /// stat(2) (`follow`) or lstat(2) of the target.
    pub fn stat(&self, follow: bool) -> nix::Result<FileStat> {
        fstatat(self.dir(), self.name(), self.at_flags(follow))
    }

    /// Whether the target is a file already resolved (a confined path that followed
    /// a final symlink).
    pub fn is_resolved(&self) -> bool {
        matches!(self.kind, Kind::Resolved)
    }

    /// readlink(2) of the target.
    pub fn readlink(&self) -> nix::Result<std::ffi::OsString> {
        match self.kind {
            // A trailing slash resolved to a directory, which is no symlink.
            Kind::Resolved => Err(Errno::EINVAL),
            Kind::Open | Kind::Name => nix::fcntl::readlinkat(self.dir(), self.name()),
        }
    }

    /// chmod(2) (`follow`) of the target, or of a symlink itself.
    pub fn chmod(&self, mode: Mode, follow: bool) -> nix::Result<()> {
        match self.kind {
            Kind::Open if follow => {
                fchmodat(self.dir(), self.path(), mode, FchmodatFlags::FollowSymlink)
            }
            Kind::Open | Kind::Name => fchmodat(
                self.dir(),
                self.name(),
                mode,
                FchmodatFlags::NoFollowSymlink,
            ),
            Kind::Resolved => {
                // fchmodat2(2) (Linux 6.6) takes AT_EMPTY_PATH; fchmod(2) refuses an
                // O_PATH descriptor. Before 6.6, the descriptor's /proc link names
                // the very file already resolved.
                // SAFETY: the path is a NUL-terminated string; the call only reads it.
                let r = unsafe {
                    nix::libc::syscall(
                        nix::libc::SYS_fchmodat2,
                        self.dir().as_raw_fd(),
                        c"".as_ptr(),
                        mode.bits() as nix::libc::c_uint,
                        nix::libc::AT_EMPTY_PATH,
                    )
                };
                match Errno::result(r) {
                    Err(Errno::ENOSYS | Errno::EINVAL) => chmod_by_proc(self.dir(), mode),
                    r => r.map(drop),
                }
            }
        }
    }

    /// chown(2) (`follow`) or lchown(2) of the target.
    pub fn chown(&self, uid: Uid, gid: Gid, follow: bool) -> nix::Result<()> {
        fchownat(
            self.dir(),
            self.name(),
            Some(uid),
            Some(gid),
            self.at_flags(follow),
        )
    }

    /// utimensat(2) of the target, following a final symlink when `follow` is set.
    pub fn set_times(&self, atime: &TimeSpec, mtime: &TimeSpec, follow: bool) -> nix::Result<()> {
        match self.kind {
            Kind::Open if follow => utimensat(
                self.dir(),
                self.path(),
                atime,
                mtime,
                UtimensatFlags::FollowSymlink,
            ),
            Kind::Open | Kind::Name => utimensat(
                self.dir(),
                self.name(),
                atime,
                mtime,
                UtimensatFlags::NoFollowSymlink,
            ),
            Kind::Resolved => {
                let times = [*atime.as_ref(), *mtime.as_ref()];
                // SAFETY: a NUL-terminated empty path and two timespecs, only read.
                let r = unsafe {
                    nix::libc::utimensat(
                        self.dir().as_raw_fd(),
                        c"".as_ptr(),
                        times.as_ptr(),
                        nix::libc::AT_EMPTY_PATH,
                    )
                };
                match Errno::result(r) {
                    // AT_EMPTY_PATH in utimensat is Linux 5.8.
                    Err(Errno::EINVAL | Errno::ENOENT) => times_by_proc(self.dir(), atime, mtime),
                    r => r.map(drop),
                }
            }
        }
    }
}

/// The /proc path of one of our descriptors: a magic link to the very file the
/// descriptor holds, resolved already.
fn proc_fd(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// chmod(2) of the file an `O_PATH` descriptor holds, before fchmodat2.
fn chmod_by_proc(fd: BorrowedFd<'_>, mode: Mode) -> nix::Result<()> {
    fchmodat(
        AT_FDCWD,
        proc_fd(fd).as_str(),
        mode,
        FchmodatFlags::FollowSymlink,
    )
}

/// utimensat(2) of the file an `O_PATH` descriptor holds, before Linux 5.8.
fn times_by_proc(fd: BorrowedFd<'_>, atime: &TimeSpec, mtime: &TimeSpec) -> nix::Result<()> {
    utimensat(
        AT_FDCWD,
        proc_fd(fd).as_str(),
        atime,
        mtime,
        UtimensatFlags::FollowSymlink,
    )
}

/// The confinement: the root directory and where the session starts in it.
#[derive(Debug)]
struct Root {
    /// DIR, `O_PATH | O_DIRECTORY`.
    fd: OwnedFd,
    /// DIR's real, canonical location: only to tell whether a home directory lies
    /// inside; never shown to the client.
    real: PathBuf,
    /// The start directory as the client sees it: absolute, canonical.
    start: Vec<u8>,
    /// openat2(2) is missing: resolve one component at a time.
    walk: bool,
    /// The last parent directory resolved, kept until [`Paths::forget`]: a run of
    /// requests on names in one directory resolves it once.
    parent: RefCell<Option<Parent>>,
    /// The current request has acted on a name in a directory other than the kept
    /// one (see [`Paths::changed`]).
    strayed: Cell<bool>,
    /// The current request has been handed the kept directory.
    handed: Cell<bool>,
    /// The current request has been handed a directory kept from before it began.
    reused: Cell<bool>,
}

/// A kept parent directory.
#[derive(Debug)]
struct Parent {
    /// Its path as given to `Root::open`.
    path: Vec<u8>,
    fd: Rc<OwnedFd>,
    /// Reached from the root through real directories only, downwards (no `..`, no
    /// symlink): no entry of the directory itself lies on that way, so renaming or
    /// removing names in it cannot change where the path leads.
    downward: bool,
}

/// Turns client paths into targets: the server's own file system, relative paths
/// starting at the working directory, as with OpenSSH; or, confined, the tree below
/// one directory.
#[derive(Debug, Default)]
pub struct Paths {
    root: Option<Root>,
}

impl Paths {
    pub fn new() -> Paths {
        Paths { root: None }
    }

    /// Confined to `root` (a directory descriptor; `O_PATH` is enough), whose real
    /// location is `real`. The session starts at `/`. Returns whether openat2 is
    /// available (otherwise the component walk is used).
    pub fn confined(root: OwnedFd, real: PathBuf) -> (Paths, bool) {
        let probe = openat2(
            &root,
            "/",
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(resolve_flags()),
        );
        // ENOSYS: before Linux 5.6; EPERM: a seccomp filter that does not know it.
        let walk = matches!(probe, Err(Errno::ENOSYS | Errno::EPERM));
        (Paths::confined_with(root, real, walk), !walk)
    }

    fn confined_with(root: OwnedFd, real: PathBuf, walk: bool) -> Paths {
        Paths {
            root: Some(Root {
                fd: root,
                real,
                start: b"/".to_vec(),
                walk,
                parent: RefCell::new(None),
                strayed: Cell::new(false),
                handed: Cell::new(false),
                reused: Cell::new(false),
            }),
        }
    }

    /// The root directory's descriptor, when confined.
    pub fn root_fd(&self) -> Option<BorrowedFd<'_>> {
        self.root.as_ref().map(|r| r.fd.as_fd())
    }

    /// Confined: starts the session in `dir`, taken inside the root (relative to `/`).
    /// It must be a directory.
    pub fn set_start(&mut self, dir: &[u8]) -> Result<(), Errno> {
        if self.root.is_none() || dir.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut abs = b"/".to_vec();
        abs.extend_from_slice(dir);
        let canonical = self.canonical(&abs)?;
        self.open(
            &canonical,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )?;
        if let Some(root) = &mut self.root {
            root.start = canonical;
        }
        Ok(())
    }

    /// The directory relative paths start from, as the client sees it: the working
    /// directory, or inside the root the start directory.
    pub fn cwd(&self) -> Result<Vec<u8>, Errno> {
        match &self.root {
            None => Ok(nix::unistd::getcwd()?.as_os_str().as_bytes().to_vec()),
            Some(root) => Ok(root.start.clone()),
        }
    }

    /// A user's home directory (`home`, a real path) as the client sees it. Confined:
    /// its place inside the root if it lies there, else `/`.
    pub fn home(&self, home: &Path) -> Vec<u8> {
        let Some(root) = &self.root else {
            return home.as_os_str().as_bytes().to_vec();
        };
        let real = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
        match real.strip_prefix(&root.real) {
            Ok(inside) => {
                let mut shown = b"/".to_vec();
                shown.extend_from_slice(inside.as_os_str().as_bytes());
                shown
            }
            Err(_) => b"/".to_vec(),
        }
    }

    /// The target of a client path for an operation on its final component, which is
    /// never followed when confined (lstat, remove, mkdir, rmdir, rename, link,
    /// symlink, readlink, lsetstat).
    pub fn resolve<'a>(&self, client: &'a [u8]) -> Result<Target<'a>, Errno> {
        let Some(root) = &self.root else {
            return Ok(Target {
                dir: None,
                path: Cow::Borrowed(client),
                kind: Kind::Open,
            });
        };
        if client.is_empty() {
            return Err(Errno::ENOENT);
        }
        // The parent and the name are each shorter than the path: the kernel, given
        // the whole path, would refuse it, as OpenSSH's server gets it refused.
        if client.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let full = root.full(client);
        // The final name is found without its trailing slashes, and keeps them (see
        // Target::name).
        let end = full.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &full[..end];
        let slash = trimmed.iter().rposition(|&b| b == b'/');
        let name = match slash {
            Some(i) => &trimmed[i + 1..],
            None => trimmed,
        };
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let (dir, name) = if matches!(name, b"" | b"." | b"..") {
            // The root itself, or a path ending in `.` or `..`: the directory it
            // names, resolved whole, and `.` in it (never `..`, which would leave the
            // root when the directory is the root).
            root.strayed.set(true);
            let dir = root.open(&full, dir_flags, Mode::empty())?;
            (Rc::new(dir), Cow::Borrowed(&b"."[..]))
        } else {
            let parent: &[u8] = match slash {
                Some(0) | None => b"/",
                Some(i) => &trimmed[..i],
            };
            let dir = root.parent(parent)?;
            // The name borrows the client's own bytes where the path was absolute.
            let at = end - name.len();
            let name = match &full {
                Cow::Borrowed(b) => Cow::Borrowed(&b[at..]),
                Cow::Owned(v) => Cow::Owned(v[at..].to_vec()),
            };
            (dir, name)
        };
        Ok(Target {
            dir: Some(dir),
            path: name,
            kind: Kind::Name,
        })
    }

    /// The target of a client path for an operation on a final symlink itself
    /// (lstat, readlink, lsetstat, hardlink's old path). A trailing slash asks for the
    /// directory a final symlink leads to, as the kernel reads it: confined, that is
    /// resolved inside the root.
    pub fn resolve_link<'a>(&self, client: &'a [u8]) -> Result<Target<'a>, Errno> {
        match self.root.is_some() && client.len() > 1 && client.ends_with(b"/") {
            true => self.resolve_follow(client),
            false => self.resolve(client),
        }
    }

    /// The target of a client path for an operation that follows a final symlink
    /// (stat, setstat): confined, a descriptor of the file it leads to inside the root.
    pub fn resolve_follow<'a>(&self, client: &'a [u8]) -> Result<Target<'a>, Errno> {
        let Some(root) = &self.root else {
            return self.resolve(client);
        };
        if client.is_empty() {
            return Err(Errno::ENOENT);
        }
        let fd = root.open(&root.full(client), OFlag::O_PATH, Mode::empty())?;
        Ok(Target {
            dir: Some(Rc::new(fd)),
            path: Cow::Borrowed(b""),
            kind: Kind::Resolved,
        })
    }

    /// stat(2) (`follow`) or lstat(2) of a client path. Confined, a stat whose final
    /// name turns out not to be a symlink is answered by the lstat of that name in its
    /// parent directory (one call, the parent most often known already); only a
    /// symlink costs the resolution of the whole path.
    pub fn stat(&self, client: &[u8], follow: bool) -> Result<FileStat, Errno> {
        // A trailing slash asks for a directory, which only the whole resolution tells.
        if self.root.is_none() || client.ends_with(b"/") {
            return match follow {
                true => self.resolve_follow(client)?.stat(true),
                false => self.resolve_link(client)?.stat(false),
            };
        }
        let st = self.resolve(client)?.stat(false)?;
        if follow && is_symlink(&st) {
            return self.resolve_follow(client)?.stat(true);
        }
        Ok(st)
    }

    /// Drops the kept parent directory. The server calls this before it waits for
    /// more requests, so a directory is reused only within one run of requests read
    /// together.
    pub fn forget(&self) {
        if let Some(root) = &self.root {
            root.parent.take();
        }
    }

    /// Marks the start of a request, for [`Paths::changed`].
    pub fn begin(&self) {
        if let Some(root) = &self.root {
            root.strayed.set(false);
            root.handed.set(false);
            root.reused.set(false);
        }
    }

    /// Whether the current request acted through a directory kept from an earlier
    /// one. On shared storage another host may have replaced that directory since
    /// (NFS then answers ESTALE through the old descriptor), where resolving the path
    /// afresh finds the new one: the server forgets it and runs the request again.
    pub fn reused_kept(&self) -> bool {
        self.root.as_ref().is_some_and(|r| r.reused.get())
    }

    /// After a request that may have renamed or removed something: the kept
    /// directory stays only if the request acted on names in it alone and it was
    /// reached downwards, so nothing the request did lies on the way to it.
    pub fn changed(&self) {
        if let Some(root) = &self.root {
            let keep =
                !root.strayed.get() && root.parent.borrow().as_ref().is_some_and(|p| p.downward);
            if !keep {
                self.forget();
            }
        }
    }

    /// open(2) of a client path with `flags` (`O_CLOEXEC` is added), following a
    /// final symlink unless `flags` say otherwise; confined, inside the root.
    pub fn open(&self, client: &[u8], flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
        match &self.root {
            None => openat(AT_FDCWD, client, flags | OFlag::O_CLOEXEC, mode),
            Some(_) if client.is_empty() => Err(Errno::ENOENT),
            Some(root) => root.open(&root.full(client), flags, mode),
        }
    }

    /// stat(2) of the entry `..` of an open directory. Confined, the `..` of the root
    /// is the root itself, as in a chroot.
    pub fn stat_dotdot(&self, dir: BorrowedFd<'_>) -> nix::Result<FileStat> {
        if let Some(root) = &self.root {
            let here = fstat(dir)?;
            let top = fstat(&root.fd)?;
            if (here.st_dev, here.st_ino) == (top.st_dev, top.st_ino) {
                return Ok(here);
            }
        }
        fstatat(dir, "..", AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    /// REALPATH: the absolute, symlink-free form of `client`, with `.`, `..` and
    /// repeated slashes removed. The last component may be missing (a client asks
    /// where a file it is about to create will be); any other missing component is an
    /// error. Confined, the path is the one the client sees: symlinks are resolved as
    /// the kernel resolves them inside the root (an absolute target starts at the
    /// root), and `..` never climbs above `/`.
    ///
    /// It answers as OpenSSH's `sftp_realpath` does, limits included: that works in
    /// buffers of PATH_MAX bytes, so a path (without its leading slash) of PATH_MAX
    /// bytes or more, a result that would reach PATH_MAX, or a symlink target that
    /// with what is left of the path would, is ENAMETOOLONG; and it gives up at the
    /// 34th symlink. Confined, the lengths are those of the paths the client sees.
    /// Each component is taken where it lies, so the work is linear in the path.
    pub fn canonical(&self, client: &[u8]) -> Result<Vec<u8>, Errno> {
        let (mut resolved, left) = match client.strip_prefix(b"/") {
            Some(b"") => return Ok(b"/".to_vec()),
            Some(rest) => (b"/".to_vec(), rest),
            None if client.is_empty() => return Err(Errno::ENOENT),
            None => (self.cwd()?, client),
        };
        if left.len() >= PATH_MAX || resolved.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        // What is left to resolve is `buf[at..]`, split at every slash (a trailing
        // slash leaves an empty last component); a symlink's target is spliced in
        // front of it. `None`: nothing is left.
        let mut buf: Cow<[u8]> = Cow::Borrowed(left);
        let mut next = Some(0);
        let mut links = 0;
        while let Some(at) = next {
            let (end, after) = match buf[at..].iter().position(|&b| b == b'/') {
                Some(i) => (at + i, Some(at + i + 1)),
                None => (buf.len(), None),
            };
            next = after;
            // OpenSSH appends the slash before it looks at the component.
            if !resolved.ends_with(b"/") {
                if resolved.len() + 1 >= PATH_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                resolved.push(b'/');
            }
            let component = &buf[at..end];
            match component {
                b"" | b"." => continue,
                b".." => {
                    if resolved.len() > 1 {
                        resolved.pop();
                        pop_component(&mut resolved);
                    }
                    continue;
                }
                _ => {}
            }
            resolved.extend_from_slice(component);
            if resolved.len() >= PATH_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let entry = self.resolve(&resolved);
            let st = entry.as_ref().map_err(|&e| e).and_then(|t| t.stat(false));
            let entry = match (entry, st) {
                (Ok(entry), Ok(st)) if is_symlink(&st) => entry,
                (_, Ok(_)) => continue,
                (_, Err(Errno::ENOENT)) if next.is_none() => return Ok(resolved),
                (_, Err(e)) => return Err(e),
            };
            links += 1;
            if links > REALPATH_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            let target = readlinkat(entry.dir(), entry.path())?;
            let target = target.as_bytes();
            if target.starts_with(b"/") {
                resolved.truncate(1);
            } else {
                pop_component(&mut resolved);
            }
            let mut spliced = target.to_vec();
            if let Some(rest) = next {
                if !spliced.ends_with(b"/") {
                    spliced.push(b'/');
                }
                spliced.extend_from_slice(&buf[rest..]);
                if spliced.len() >= PATH_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
            }
            buf = Cow::Owned(spliced);
            next = Some(0);
        }
        if resolved.len() > 1 && resolved.ends_with(b"/") {
            resolved.pop();
        }
        Ok(resolved)
    }
}

/// openat2's resolution for every confined lookup.
fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

impl Root {
    /// A client path made absolute inside the root: a relative one is taken from the
    /// start directory. (openat2 takes an absolute path as relative to the root.)
    fn full<'a>(&self, client: &'a [u8]) -> Cow<'a, [u8]> {
        if client.starts_with(b"/") {
            return Cow::Borrowed(client);
        }
        let mut p = self.start.clone();
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(client);
        Cow::Owned(p)
    }

    /// The directory `path` (absolute inside the root), `O_PATH`: the remembered one
    /// if it is the same path.
    fn parent(&self, path: &[u8]) -> Result<Rc<OwnedFd>, Errno> {
        if let Some(kept) = &*self.parent.borrow()
            && kept.path == path
        {
            if !self.handed.get() {
                self.reused.set(true);
            }
            self.handed.set(true);
            return Ok(Rc::clone(&kept.fd));
        }
        // The request goes on in another directory than one it already acts in.
        if self.handed.get() {
            self.strayed.set(true);
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let no_dotdot = !path.split(|&b| b == b'/').any(|c| c == b"..");
        let downward = match no_dotdot && !self.walk {
            true => {
                match self.openat2(path, flags, Mode::empty(), ResolveFlag::RESOLVE_NO_SYMLINKS) {
                    // A symlink on the way (or renames racing): resolved as usual.
                    Err(Errno::ELOOP | Errno::EAGAIN) => None,
                    r => Some(r?),
                }
            }
            false => None,
        };
        let (fd, downward) = match downward {
            Some(fd) => (fd, true),
            None => (self.open(path, flags, Mode::empty())?, false),
        };
        let fd = Rc::new(fd);
        *self.parent.borrow_mut() = Some(Parent {
            path: path.to_vec(),
            fd: Rc::clone(&fd),
            downward,
        });
        self.handed.set(true);
        Ok(fd)
    }

    /// Opens `path` (absolute inside the root) with `flags`, following symlinks
    /// inside the root.
    fn open(&self, path: &[u8], flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
        if !self.walk {
            match self.openat2(path, flags, mode, ResolveFlag::empty()) {
                Err(Errno::EAGAIN) => {}
                r => return r,
            }
        }
        walk(self.fd.as_fd(), path, flags, mode)
    }

    /// openat2(2) inside the root, with `more` resolution flags; EAGAIN once it has
    /// been retried enough.
    fn openat2(
        &self,
        path: &[u8],
        flags: OFlag,
        mode: Mode,
        more: ResolveFlag,
    ) -> Result<OwnedFd, Errno> {
        let mut how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(resolve_flags() | more);
        // openat2 refuses a mode without O_CREAT (or O_TMPFILE).
        if flags.contains(OFlag::O_CREAT) {
            how = how.mode(mode);
        }
        for _ in 0..EAGAIN_RETRIES {
            match openat2(&self.fd, path, how) {
                // A rename elsewhere raced with `..`: the kernel asks to retry.
                Err(Errno::EAGAIN) => continue,
                r => return r,
            }
        }
        Err(Errno::EAGAIN)
    }
}

/// Removes the last component of an absolute path, never going above `/`.
fn pop_component(path: &mut Vec<u8>) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => path.truncate(1),
        Some(i) => path.truncate(i),
    }
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// A fresh `O_PATH` descriptor of the root.
fn root_dir(root: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    openat(
        root,
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The directory at `names` below the root, none of which may be a symlink.
fn reopen(root: BorrowedFd<'_>, names: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
    let mut dir = root_dir(root)?;
    for name in names {
        dir = openat(
            &dir,
            name.as_slice(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(dir)
}

/// openat2's `RESOLVE_IN_ROOT` done by hand, for kernels without openat2: `path`
/// (absolute inside the root) is taken one component at a time, each opened with
/// `O_NOFOLLOW` relative to the directory before it. A symlink is read and its target
/// spliced into what is left (an absolute target starts again at the root); `..` is
/// the directory before, kept as a list of names, never above the root. No component
/// is ever resolved by the kernel on its own, so none can lead outside.
fn walk(root: BorrowedFd<'_>, path: &[u8], flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    // openat2 takes no longer path either.
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let flags = flags | OFlag::O_CLOEXEC;
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut dir = root_dir(root)?;
    // What is left to resolve is `left[at..]`: each component is taken where it
    // lies, and only a symlink (at most MAX_SYMLINKS) copies what follows it.
    let mut left: Vec<u8> = path.to_vec();
    // A trailing slash asks for a directory, following a final symlink: as `/.`.
    if left.ends_with(b"/") {
        left.push(b'.');
    }
    let mut at = 0;
    let mut links = 0;
    loop {
        while left.get(at) == Some(&b'/') {
            at += 1;
        }
        let start = at;
        at = left[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(left.len(), |i| start + i);
        let last = left[at..].iter().all(|&b| b == b'/');
        let name: &[u8] = match &left[start..at] {
            b"" | b"." if !last => continue,
            b"" | b"." => b".",
            b".." => {
                if names.pop().is_some() {
                    dir = reopen(root, &names)?;
                }
                if !last {
                    continue;
                }
                b"."
            }
            n => n,
        };
        // The entry: opened (the final one with the caller's flags), or found to be
        // a symlink to follow.
        let link = if !last || flags.contains(OFlag::O_PATH) {
            let fd = openat(
                &dir,
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let st = fstat(&fd)?;
            if !is_symlink(&st) {
                if last {
                    if flags.contains(OFlag::O_DIRECTORY) && !is_dir(&st) {
                        return Err(Errno::ENOTDIR);
                    }
                    return Ok(fd);
                }
                if !is_dir(&st) {
                    return Err(Errno::ENOTDIR);
                }
                names.push(name.to_vec());
                dir = fd;
                continue;
            }
            true
        } else {
            match openat(&dir, name, flags | OFlag::O_NOFOLLOW, mode) {
                Ok(fd) => return Ok(fd),
                // A symlink (ELOOP; ENOTDIR with O_DIRECTORY) unless O_NOFOLLOW was
                // asked for, or O_EXCL (which refuses an existing name anyway).
                Err(e @ (Errno::ELOOP | Errno::ENOTDIR))
                    if !flags.intersects(OFlag::O_NOFOLLOW | OFlag::O_EXCL) =>
                {
                    match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st) if is_symlink(&st) => true,
                        _ => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if link {
            if last && flags.contains(OFlag::O_NOFOLLOW) {
                // The caller asked for the link itself (O_PATH | O_NOFOLLOW).
                return openat(&dir, name, flags, Mode::empty());
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            let target = readlinkat(&dir, name)?;
            let target = target.as_bytes();
            if target.is_empty() {
                return Err(Errno::ENOENT);
            }
            if target.starts_with(b"/") {
                names.clear();
                dir = root_dir(root)?;
            }
            let mut spliced = target.to_vec();
            spliced.extend_from_slice(&left[at..]);
            if last && spliced.ends_with(b"/") {
                spliced.push(b'.');
            }
            left = spliced;
            at = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    #[test]
    fn lexical_cases() {
        let p = Paths::new();
        assert_eq!(p.canonical(b"/").unwrap(), b"/");
        assert_eq!(p.canonical(b"//").unwrap(), b"/");
        assert_eq!(p.canonical(b"/..").unwrap(), b"/");
        assert_eq!(p.canonical(b"/tmp/./../tmp//").unwrap(), b"/tmp");
        assert_eq!(
            p.canonical(b"/tmp/no-such-name").unwrap(),
            b"/tmp/no-such-name"
        );
        assert_eq!(p.canonical(b"/no-such-dir/x"), Err(Errno::ENOENT));
        assert_eq!(p.canonical(b"/no-such-dir/"), Err(Errno::ENOENT));
        assert_eq!(p.canonical(b"/no-such-dir/.."), Err(Errno::ENOENT));
    }

    /// REALPATH's limits are OpenSSH's: the path without its leading slash must be
    /// shorter than PATH_MAX. Within them, the components are taken in place: a
    /// copy of what is left per component would allocate megabytes here.
    #[test]
    fn canonical_lengths() {
        let t = Tree::new("lengths");
        let root = t.root();
        let real = root.as_os_str().as_bytes();
        for (p, prefix) in [(Paths::new(), real), (t.paths(false), &b""[..])] {
            for unit in [&b"./"[..], b"dir/../"] {
                let mut path = prefix.to_vec();
                path.push(b'/');
                while path.len() + unit.len() < PATH_MAX {
                    path.extend_from_slice(unit);
                }
                path.resize(PATH_MAX, b'/');
                let mut want = prefix.to_vec();
                if want.is_empty() {
                    want.push(b'/');
                }
                let (r, bytes) = allocated(|| p.canonical(&path));
                assert_eq!(r.unwrap(), want);
                assert!(bytes < 64 * 1024, "{bytes} bytes allocated");
                path.push(b'/');
                assert_eq!(p.canonical(&path), Err(Errno::ENAMETOOLONG));
                assert_eq!(p.canonical(&path[1..]), Err(Errno::ENAMETOOLONG));
            }
        }
    }

    /// Confined, a path of PATH_MAX bytes or more is refused whole, as the kernel
    /// refuses it, even where its parent directory and final name are each short
    /// enough to be reached one after the other.
    #[test]
    fn confined_long_path_with_a_short_parent() {
        let t = Tree::new("long-parent");
        let component = "d".repeat(200);
        let mut dir = openat(
            AT_FDCWD,
            &t.root(),
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let mut path = Vec::new();
        for _ in 0..19 {
            nix::sys::stat::mkdirat(&dir, component.as_str(), Mode::from_bits_truncate(0o755))
                .unwrap();
            dir = openat(
                &dir,
                component.as_str(),
                OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            path.extend_from_slice(b"/");
            path.extend_from_slice(component.as_bytes());
        }
        let name = "f".repeat(250);
        std::fs::write(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()), b"x").unwrap();
        path.push(b'/');
        path.extend_from_slice(name.as_bytes());
        let p = t.paths(false);
        let short = &path[..];
        assert!(short.len() < PATH_MAX);
        assert!(
            p.stat(short, false).is_ok(),
            "{} bytes reach the file",
            short.len()
        );
        let mut long = b"/.".repeat((PATH_MAX - short.len()) / 2 + 1);
        long.extend_from_slice(short);
        assert_eq!(p.stat(&long, false).map(drop), Err(Errno::ENAMETOOLONG));
        assert_eq!(p.resolve(&long).map(drop), Err(Errno::ENAMETOOLONG));
    }

    /// A scratch tree: `root/` with files, directories and symlinks that try to
    /// leave it, and `outside/` next to it.
    struct Tree {
        top: PathBuf,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            let top = std::env::temp_dir()
                .join(format!("sftp-server-paths-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&top);
            let root = top.join("root");
            let outside = top.join("outside");
            for d in [
                &root,
                &outside,
                &root.join("dir/sub"),
                &outside.join("odir"),
            ] {
                std::fs::create_dir_all(d).unwrap();
            }
            std::fs::write(root.join("file"), b"inside").unwrap();
            std::fs::write(root.join("dir/f"), b"inside dir").unwrap();
            std::fs::write(outside.join("secret"), b"outside").unwrap();
            let out = outside.to_str().unwrap();
            symlink(format!("{out}/secret"), root.join("abs")).unwrap();
            symlink("../outside/secret", root.join("rel")).unwrap();
            symlink("../../../../../..", root.join("dir/up")).unwrap();
            symlink(out, root.join("odir")).unwrap();
            symlink("/file", root.join("dir/toroot")).unwrap();
            symlink("sub/..", root.join("dir/loopy")).unwrap();
            symlink("self", root.join("self")).unwrap();
            symlink("/dir/new", root.join("dangling")).unwrap();
            symlink("/proc/self/root/etc", root.join("magic")).unwrap();
            Tree { top }
        }

        fn root(&self) -> PathBuf {
            self.top.join("root")
        }

        fn paths(&self, walk: bool) -> Paths {
            let fd = openat(
                AT_FDCWD,
                &self.root(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            let real = std::fs::canonicalize(self.root()).unwrap();
            Paths::confined_with(fd, real, walk)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.top);
        }
    }

    fn read(p: &Paths, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let fd = p.open(path, OFlag::O_RDONLY, Mode::empty())?;
        let mut f = std::fs::File::from(fd);
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut v).map_err(|_| Errno::EISDIR)?;
        Ok(v)
    }

    fn ino(fd: OwnedFd) -> u64 {
        fstat(&fd).unwrap().st_ino
    }

    /// The component walk and openat2 agree on every path, and neither leaves the
    /// root.
    #[test]
    fn walk_matches_openat2() {
        let t = Tree::new("walk");
        let kernel = t.paths(false);
        let walk = t.paths(true);
        let root_ino = std::fs::metadata(t.root()).unwrap().ino();
        let cases: &[&[u8]] = &[
            b"/file",
            b"file",
            b"/../../file",
            b"dir/../file",
            b"dir/up/file",
            b"dir/toroot",
            b"dir/loopy/f",
            b"abs",
            b"rel",
            b"odir/secret",
            b"self",
            b"magic",
            b"dir/",
            b"file/",
            b"/",
            b"..",
            b"dir/up",
            b"dir/sub/../../dir/f",
            b"nowhere",
        ];
        for path in cases {
            let k = read(&kernel, path);
            let w = read(&walk, path);
            assert_eq!(k, w, "read {}", String::from_utf8_lossy(path));
            assert_ne!(k.as_deref(), Ok(&b"outside"[..]));
            for flags in [OFlag::O_PATH, OFlag::O_PATH | OFlag::O_DIRECTORY] {
                let k = kernel.open(path, flags, Mode::empty()).map(ino);
                let w = walk.open(path, flags, Mode::empty()).map(ino);
                assert_eq!(k, w, "{flags:?} {}", String::from_utf8_lossy(path));
            }
        }
        for p in [&kernel, &walk] {
            let up = p.open(b"dir/up", OFlag::O_PATH, Mode::empty()).unwrap();
            assert_eq!(fstat(&up).unwrap().st_ino, root_ino);
        }
        // O_CREAT through a dangling absolute link creates inside the root.
        for (p, name) in [(&kernel, "k"), (&walk, "w")] {
            std::fs::remove_file(t.root().join("dangling")).ok();
            symlink(format!("/dir/new-{name}"), t.root().join("dangling")).unwrap();
            let fd = p
                .open(
                    b"dangling",
                    OFlag::O_WRONLY | OFlag::O_CREAT,
                    Mode::from_bits_truncate(0o600),
                )
                .unwrap();
            drop(fd);
            assert!(t.root().join(format!("dir/new-{name}")).exists());
            let excl = p.open(
                b"dangling",
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
            );
            assert_eq!(excl.map(drop), Err(Errno::EEXIST));
        }
        assert!(!t.top.join("outside/new").exists());
    }

    /// Counts the bytes this thread allocates, to tell a linear resolution from one
    /// that copies what is left of a path at each component, without timing it.
    struct Counting;

    thread_local! {
        static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: every call is passed on to the system allocator unchanged.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            ALLOCATED.with(|a| a.set(a.get() + layout.size()));
            // SAFETY: the caller's own arguments, under the caller's contract.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: the caller's own arguments, under the caller's contract.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
            ALLOCATED.with(|a| a.set(a.get() + size));
            // SAFETY: the caller's own arguments, under the caller's contract.
            unsafe { std::alloc::System.realloc(ptr, layout, size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Bytes allocated by `f` on this thread.
    fn allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ALLOCATED.with(Cell::get);
        let r = f();
        (r, ALLOCATED.with(Cell::get) - before)
    }

    /// Symlinks whose targets lead with the next symlink pile about 160 KB of `./`
    /// components in front of the rest of the path: the walk takes them in one pass
    /// (copying what is left at each component made it quadratic: gigabytes, about
    /// a second), and ends where openat2 does.
    #[test]
    fn walk_is_linear_in_what_symlinks_splice() {
        let t = Tree::new("splice");
        let links = MAX_SYMLINKS - 1;
        for i in 0..links {
            let next = match i + 1 {
                n if n == links => "dir".to_string(),
                n => format!("n{n}"),
            };
            symlink(
                format!("{next}/{}", "./".repeat(2000)),
                t.root().join(format!("n{i}")),
            )
            .unwrap();
        }
        let kernel = t.paths(false);
        let walk = t.paths(true);
        let (w, bytes) = allocated(|| read(&walk, b"n0/f"));
        assert_eq!(w, read(&kernel, b"n0/f"));
        assert_eq!(w.unwrap(), b"inside dir");
        // Each symlink copies what is left after it once: 40 times 160 KB at most.
        assert!(bytes < 40 * 160_000, "{bytes} bytes allocated");
        // The 40th link is followed, the 41st is ELOOP, both ways.
        symlink("n0", t.root().join("m40")).unwrap();
        symlink("m40", t.root().join("m41")).unwrap();
        for p in [&kernel, &walk] {
            assert_eq!(read(p, b"m40/f").unwrap(), b"inside dir");
            assert_eq!(read(p, b"m41/f"), Err(Errno::ELOOP));
        }
        // A path of PATH_MAX bytes is refused by both; one byte less is not.
        let fits = format!("/{}", "./".repeat(2047));
        for p in [&kernel, &walk] {
            assert!(
                p.open(fits.as_bytes(), OFlag::O_PATH, Mode::empty())
                    .is_ok()
            );
            let long = format!("{fits}.");
            let r = p
                .open(long.as_bytes(), OFlag::O_PATH, Mode::empty())
                .map(drop);
            assert_eq!(r, Err(Errno::ENAMETOOLONG));
        }
    }

    /// Another thread exchanges a directory inside with a symlink to the outside
    /// while names below it are opened: whatever is reached is inside.
    #[test]
    fn resolution_survives_symlink_swaps() {
        let t = Tree::new("race");
        let (swap, other) = (t.root().join("swap"), t.root().join("other"));
        std::fs::create_dir(&swap).unwrap();
        std::fs::write(swap.join("secret"), b"inside").unwrap();
        symlink(t.top.join("outside"), &other).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    nix::fcntl::renameat2(
                        AT_FDCWD,
                        &swap,
                        AT_FDCWD,
                        &other,
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    )
                    .unwrap();
                }
            })
        };
        let secret = t.top.join("outside/secret");
        let mode_before = std::fs::metadata(&secret).unwrap().mode();
        let start = std::time::Instant::now();
        let mut reached = [0, 0];
        for (i, walk) in [false, true].into_iter().enumerate() {
            let p = t.paths(walk);
            while start.elapsed() < std::time::Duration::from_millis(400 * (i as u64 + 1)) {
                if let Ok(data) = read(&p, b"swap/secret") {
                    assert_eq!(data, b"inside");
                    reached[i] += 1;
                }
                let _ = p.open(
                    b"/swap/new",
                    OFlag::O_WRONLY | OFlag::O_CREAT,
                    Mode::from_bits_truncate(0o600),
                );
                if let Ok(t) = p.resolve(b"swap/secret") {
                    let _ = t.chmod(Mode::from_bits_truncate(0o600), false);
                }
                if let Ok(t) = p.resolve_follow(b"swap/secret") {
                    let _ = t.chmod(Mode::from_bits_truncate(0o640), true);
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(reached[0] > 0 && reached[1] > 0, "{reached:?}");
        let outside = t.top.join("outside");
        assert!(!outside.join("new").exists());
        assert_eq!(std::fs::metadata(&secret).unwrap().mode(), mode_before);
    }

    /// The fallbacks for kernels without fchmodat2 or utimensat's AT_EMPTY_PATH act
    /// on the file an O_PATH descriptor holds, even through a symlink's name.
    #[test]
    fn proc_fallbacks_act_on_the_descriptor() {
        let t = Tree::new("proc");
        let p = t.paths(false);
        std::fs::remove_file(t.root().join("dangling")).unwrap();
        symlink("/file", t.root().join("dangling")).unwrap();
        let target = p.resolve_follow(b"dangling").unwrap();
        chmod_by_proc(target.dir(), Mode::from_bits_truncate(0o604)).unwrap();
        let (a, m) = (TimeSpec::new(5, 0), TimeSpec::new(6, 0));
        times_by_proc(target.dir(), &a, &m).unwrap();
        let md = std::fs::metadata(t.root().join("file")).unwrap();
        assert_eq!((md.mode() & 0o777, md.mtime()), (0o604, 6));
        // The same through the descriptor calls used first.
        target.chmod(Mode::from_bits_truncate(0o640), true).unwrap();
        target.set_times(&m, &a, true).unwrap();
        let md = std::fs::metadata(t.root().join("file")).unwrap();
        assert_eq!((md.mode() & 0o777, md.mtime()), (0o640, 5));
    }

    #[test]
    fn confined_canonical_and_targets() {
        let t = Tree::new("canon");
        for walk in [false, true] {
            let p = t.paths(walk);
            assert_eq!(p.canonical(b"/..").unwrap(), b"/");
            assert_eq!(p.canonical(b".").unwrap(), b"/");
            assert_eq!(p.canonical(b"dir/up").unwrap(), b"/");
            assert_eq!(p.canonical(b"dir/toroot").unwrap(), b"/file");
            assert_eq!(p.canonical(b"dir/loopy").unwrap(), b"/dir");
            assert_eq!(p.canonical(b"dangling").unwrap(), b"/dir/new");
            assert_eq!(p.canonical(b"self"), Err(Errno::ELOOP));
            assert_eq!(p.canonical(b"odir/secret"), Err(Errno::ENOENT));
            // The final name of a target is the link, never what it points to.
            let abs = p.resolve(b"abs").unwrap();
            assert!(is_symlink(&abs.stat(true).unwrap()));
            assert_eq!(p.resolve_follow(b"abs").map(drop), Err(Errno::ENOENT));
            // `..` of the root, as a target, is the root.
            let up = p.resolve(b"/..").unwrap();
            assert_eq!(up.path(), b".");
            let root_ino = std::fs::metadata(t.root()).unwrap();
            assert_eq!(up.stat(false).unwrap().st_ino, root_ino.ino());
            let fd = p.open(b"/", OFlag::O_PATH, Mode::empty()).unwrap();
            assert_eq!(p.stat_dotdot(fd.as_fd()).unwrap().st_ino, root_ino.ino());
            let mut started = t.paths(walk);
            started.set_start(b"dir/sub").unwrap();
            assert_eq!(started.canonical(b"..").unwrap(), b"/dir");
            assert_eq!(started.cwd().unwrap(), b"/dir/sub");
            assert_eq!(read(&started, b"../f").unwrap(), b"inside dir");
            assert_eq!(started.set_start(b"file"), Err(Errno::ENOTDIR));
            // Home directories: inside the root they keep their place.
            assert_eq!(p.home(&t.root().join("dir")), b"/dir");
            assert_eq!(p.home(&t.root()), b"/");
            assert_eq!(p.home(&t.top.join("outside")), b"/");
        }
    }
}
