//! Requests on paths: STAT, LSTAT, SETSTAT, REMOVE, MKDIR, RMDIR, REALPATH, RENAME,
//! READLINK, SYMLINK.

use super::{Answer, OpResult};
use crate::logging::Bytes;
use crate::logit;
use crate::output::Out;
use crate::paths::Target;
use crate::server::Session;
use crate::status::Status;
use crate::wire::*;
use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat, renameat2};
use nix::sys::stat::{Mode, SFlag, mkdirat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, LinkatFlags, Uid, UnlinkatFlags, ftruncate, linkat, symlinkat, unlinkat};
use std::os::unix::ffi::OsStrExt;

pub fn stat(s: &mut Session, out: &mut Out, id: u32, path: &[u8], follow: bool) -> OpResult {
    logit!(
        Verbose,
        "{}stat name \"{}\"",
        if follow { "" } else { "l" },
        Bytes(path)
    );
    let st = s.paths.stat(path, follow)?;
    out.attrs(id, &Attrs::from_stat(&st));
    Ok(Answer::Sent)
}

/// One attribute change of SETSTAT, in the order OpenSSH applies them.
pub enum Change {
    Size(i64),
    Mode(Mode),
    Times(TimeSpec, TimeSpec),
    Owner(Uid, Gid),
}

/// Applies `attrs` in OpenSSH's order (size, mode, times, owner) with `apply`,
/// logging each change as OpenSSH does. Every change is tried; the status is that of
/// the last one that failed.
/// `config` decides the permissions actually applied (`--force-mode-on-setstat`).
pub fn apply_attrs(
    config: &crate::config::Config,
    path: &[u8],
    attrs: &Attrs,
    mut apply: impl FnMut(Change) -> nix::Result<()>,
) -> OpResult {
    let mut result = Ok(Answer::Ok);
    let mut run = |c: Change| {
        if let Err(e) = apply(c) {
            result = Err(Status::from(e));
        }
    };
    if let Some(size) = attrs.size {
        logit!(Info, "set \"{}\" size {}", Bytes(path), size);
        // A size beyond off_t is what the kernel would refuse with EINVAL.
        run(Change::Size(i64::try_from(size).unwrap_or(-1)));
    }
    if let Some(asked) = attrs.permissions {
        let perm = config.setstat_mode(asked);
        logit!(Info, "set \"{}\" mode {:04o}", Bytes(path), perm);
        if perm != asked {
            logit!(
                Verbose,
                "mode {:04o} asked for, forced to {:04o}",
                asked,
                perm
            );
        }
        run(Change::Mode(Mode::from_bits_truncate(perm & 0o7777)));
    }
    if let Some((atime, mtime)) = attrs.times {
        logit!(
            Info,
            "set \"{}\" modtime {}",
            Bytes(path),
            super::log_time(mtime)
        );
        run(Change::Times(
            TimeSpec::new(atime as i64, 0),
            TimeSpec::new(mtime as i64, 0),
        ));
    }
    if let Some((uid, gid)) = attrs.uid_gid {
        logit!(Info, "set \"{}\" owner {} group {}", Bytes(path), uid, gid);
        run(Change::Owner(Uid::from_raw(uid), Gid::from_raw(gid)));
    }
    result
}

pub fn setstat(s: &mut Session, path: &[u8], attrs: &Attrs) -> OpResult {
    if attrs.is_empty() {
        return Ok(Answer::Ok);
    }
    let t = s.paths.resolve_follow(path)?;
    let paths = &s.paths;
    apply_attrs(&s.config, path, attrs, |change| match change {
        // truncate(2) has no *at form: open for writing and truncate the descriptor,
        // which asks the same permission.
        Change::Size(size) => {
            // truncate(2) refuses anything but a regular file (EISDIR, EINVAL) before
            // it would open it; so does this.
            let kind = SFlag::from_bits_truncate(t.stat(true)?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFDIR {
                return Err(Errno::EISDIR);
            } else if kind != SFlag::S_IFREG {
                return Err(Errno::EINVAL);
            }
            let fd = paths.open(
                path,
                OFlag::O_WRONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
                Mode::empty(),
            )?;
            ftruncate(&fd, size)
        }
        Change::Mode(mode) => t.chmod(mode, true),
        Change::Times(atime, mtime) => t.set_times(&atime, &mtime, true),
        Change::Owner(uid, gid) => t.chown(uid, gid, true),
    })
}

pub fn remove(s: &mut Session, path: &[u8]) -> OpResult {
    logit!(Info, "remove name \"{}\"", Bytes(path));
    let t = s.paths.resolve(path)?;
    unlinkat(t.dir(), t.path(), UnlinkatFlags::NoRemoveDir)?;
    Ok(Answer::Ok)
}

pub fn mkdir(s: &mut Session, path: &[u8], attrs: &Attrs) -> OpResult {
    let mode = s
        .config
        .creation_mode(attrs.permissions.map_or(0o777, |p| p & 0o7777));
    logit!(Info, "mkdir name \"{}\" mode 0{:o}", Bytes(path), mode);
    let t = s.paths.resolve(path)?;
    mkdirat(t.dir(), t.path(), Mode::from_bits_truncate(mode))?;
    Ok(Answer::Ok)
}

pub fn rmdir(s: &mut Session, path: &[u8]) -> OpResult {
    logit!(Info, "rmdir name \"{}\"", Bytes(path));
    let t = s.paths.resolve(path)?;
    unlinkat(t.dir(), t.path(), UnlinkatFlags::RemoveDir)?;
    Ok(Answer::Ok)
}

/// A NAME reply with one entry whose long name is the name itself and which has no
/// attributes, as REALPATH and READLINK answer in OpenSSH.
fn single_name(out: &mut Out, id: u32, name: &[u8]) {
    let mut names = out.names(id);
    names.push(out, name, |b| b.extend_from_slice(name), &Attrs::default());
    names.finish(out);
}

pub fn realpath(s: &mut Session, out: &mut Out, id: u32, path: &[u8]) -> OpResult {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    logit!(Verbose, "realpath \"{}\"", Bytes(path));
    let resolved = s.paths.canonical(path)?;
    single_name(out, id, &resolved);
    Ok(Answer::Sent)
}

/// RENAME as version 3 defines it: an existing target is never replaced.
pub fn rename(s: &mut Session, oldpath: &[u8], newpath: &[u8]) -> OpResult {
    logit!(
        Info,
        "rename old \"{}\" new \"{}\"",
        Bytes(oldpath),
        Bytes(newpath)
    );
    let from = s.paths.resolve(oldpath)?;
    // The source is looked at first, as OpenSSH does: a missing source is reported
    // as such whatever the target. Its lstat(2) follows a trailing slash (a file
    // with one is ENOTDIR), which confined takes resolving it inside the root.
    let st = match oldpath.len() > 1 && oldpath.ends_with(b"/") {
        true => s.paths.resolve_link(oldpath)?.stat(false)?,
        false => from.stat(false)?,
    };
    let to = s.paths.resolve(newpath)?;
    let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    rename_noreplace(&from, &to, regular)?;
    Ok(Answer::Ok)
}

/// Moves `from` to `to`, never over an existing name: renameat2(RENAME_NOREPLACE),
/// atomic for every kind of file. File systems without it get OpenSSH's way: a hard
/// link then an unlink for a regular file (atomic against an existing target), a
/// check then a rename for anything else or where hard links are not to be had.
pub(crate) fn rename_noreplace(
    from: &Target<'_>,
    to: &Target<'_>,
    regular: bool,
) -> Result<(), Errno> {
    match renameat2(
        from.dir(),
        from.path(),
        to.dir(),
        to.path(),
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Err(Errno::EINVAL) => {}
        r => return r,
    }
    if regular {
        match linkat(
            from.dir(),
            from.path(),
            to.dir(),
            to.path(),
            LinkatFlags::empty(),
        ) {
            Ok(()) => return drop_old_name(from, to),
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EXDEV | Errno::EPERM) => {}
            Err(e) => return Err(e),
        }
    }
    if to.stat(true).is_ok() {
        return Err(Errno::EEXIST);
    }
    renameat(from.dir(), from.path(), to.dir(), to.path())
}

/// The second half of a move by hard link (where the file system has no
/// RENAME_NOREPLACE): the old name goes; if it cannot, the new link goes too, so that
/// nothing is left half done.
fn drop_old_name(from: &Target<'_>, to: &Target<'_>) -> Result<(), Errno> {
    unlinkat(from.dir(), from.path(), UnlinkatFlags::NoRemoveDir).inspect_err(|_| {
        let _ = unlinkat(to.dir(), to.path(), UnlinkatFlags::NoRemoveDir);
    })
}

pub fn readlink(s: &mut Session, out: &mut Out, id: u32, path: &[u8]) -> OpResult {
    logit!(Verbose, "readlink \"{}\"", Bytes(path));
    let target = s.paths.resolve_link(path)?.readlink()?;
    single_name(out, id, target.as_bytes());
    Ok(Answer::Sent)
}

/// SYMLINK with OpenSSH's argument order: the link at `linkpath` will point to
/// `targetpath`, stored as given.
pub fn symlink(s: &mut Session, targetpath: &[u8], linkpath: &[u8]) -> OpResult {
    logit!(
        Info,
        "symlink old \"{}\" new \"{}\"",
        Bytes(targetpath),
        Bytes(linkpath)
    );
    // symlink(2) refuses a target it cannot take before it looks the link's path up.
    match targetpath.len() {
        0 => return Err(Errno::ENOENT.into()),
        n if n >= nix::libc::PATH_MAX as usize => return Err(Errno::ENAMETOOLONG.into()),
        _ => {}
    }
    let t = s.paths.resolve(linkpath)?;
    symlinkat(targetpath, t.dir(), t.path())?;
    Ok(Answer::Ok)
}

/// posix-rename: rename(2), replacing an existing target atomically.
pub fn posix_rename(s: &mut Session, oldpath: &[u8], newpath: &[u8]) -> OpResult {
    logit!(
        Info,
        "posix-rename old \"{}\" new \"{}\"",
        Bytes(oldpath),
        Bytes(newpath)
    );
    // The kernel looks both parents up before either name, as this does.
    let from = s.paths.resolve(oldpath)?;
    let to = s.paths.resolve(newpath)?;
    renameat(from.dir(), from.path(), to.dir(), to.path())?;
    Ok(Answer::Ok)
}

/// The target of hardlink's new path. Confined, its parent is resolved before the
/// call; if that fails, the old path's own error comes first, as link(2) looks the
/// whole old path up before the new one's parent.
fn resolve_second<'a>(
    s: &Session,
    first: &Target<'_>,
    second: &'a [u8],
) -> Result<Target<'a>, Status> {
    s.paths
        .resolve(second)
        .map_err(|e| match first.stat(false) {
            Err(first_error) => first_error.into(),
            Ok(_) => e.into(),
        })
}

/// hardlink: link(2), which does not follow a symlink at `oldpath`.
pub fn hardlink(s: &mut Session, oldpath: &[u8], newpath: &[u8]) -> OpResult {
    logit!(
        Info,
        "hardlink old \"{}\" new \"{}\"",
        Bytes(oldpath),
        Bytes(newpath)
    );
    let from = s.paths.resolve_link(oldpath)?;
    let to = resolve_second(s, &from, newpath)?;
    if from.is_resolved() {
        // A trailing slash led to a directory, which cannot be linked; link(2)
        // finds an existing new name first.
        return Err(match to.stat(false) {
            Ok(_) => Errno::EEXIST,
            Err(_) => Errno::EPERM,
        }
        .into());
    }
    linkat(
        from.dir(),
        from.path(),
        to.dir(),
        to.path(),
        LinkatFlags::empty(),
    )?;
    Ok(Answer::Ok)
}

/// lsetstat: SETSTAT on the link itself when the path names a symlink. A size makes
/// no sense for a link and is refused as OpenSSH refuses it.
pub fn lsetstat(s: &mut Session, path: &[u8], attrs: &Attrs) -> OpResult {
    if attrs.size.is_some() {
        return Err(Status::BAD_MESSAGE);
    }
    if attrs.is_empty() {
        return Ok(Answer::Ok);
    }
    let t = s.paths.resolve_link(path)?;
    apply_attrs(&s.config, path, attrs, |change| match change {
        Change::Size(_) => Err(Errno::EINVAL),
        Change::Mode(mode) => t.chmod(mode, false),
        Change::Times(atime, mtime) => t.set_times(&atime, &mtime, false),
        Change::Owner(uid, gid) => t.chown(uid, gid, false),
    })
}

pub fn statvfs(s: &mut Session, out: &mut Out, id: u32, path: &[u8]) -> OpResult {
    logit!(Info, "statvfs \"{}\"", Bytes(path));
    // statvfs(3) has no *at form; an O_PATH descriptor names the file without
    // opening it for anything.
    let fd = s.paths.open(path, OFlag::O_PATH, Mode::empty())?;
    let st = nix::sys::statvfs::fstatvfs(&fd)?;
    send_statvfs(out, id, &st);
    Ok(Answer::Sent)
}

/// The statvfs@openssh.com reply: eleven u64 fields.
pub fn send_statvfs(out: &mut Out, id: u32, st: &nix::sys::statvfs::Statvfs) {
    use bytes::BufMut;
    use nix::sys::statvfs::FsFlags;
    let mut flag = 0u64;
    if st.flags().contains(FsFlags::ST_RDONLY) {
        flag |= 0x1; // SSH2_FXE_STATVFS_ST_RDONLY
    }
    if st.flags().contains(FsFlags::ST_NOSUID) {
        flag |= 0x2; // SSH2_FXE_STATVFS_ST_NOSUID
    }
    out.extended_reply(id, |b| {
        for v in [
            st.block_size(),
            st.fragment_size(),
            st.blocks(),
            st.blocks_free(),
            st.blocks_available(),
            st.files(),
            st.files_free(),
            st.files_available(),
            st.filesystem_id(),
            flag,
            st.name_max(),
        ] {
            b.put_u64(v);
        }
    });
}
