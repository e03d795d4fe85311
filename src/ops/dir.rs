//! Directory listings: OPENDIR and READDIR.

use super::{Answer, OpResult};
use crate::handles::{Handle, Object};
use crate::logging::Bytes;
use crate::logit;
use crate::longname;
use crate::output::Out;
use crate::server::Session;
use crate::status::Status;
use crate::wire::*;
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, fstatat};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The most a READDIR reply holds. OpenSSH sends 100 entries at most; filling a reply
/// by size instead takes fewer round trips for a long listing, and 32 KiB stays below
/// the smallest packet limit SFTP clients have been seen to enforce (40,000 bytes).
const REPLY_BUDGET: usize = 32 * 1024;
/// The largest one entry can be: a name as long as any Linux file system allows one
/// (FUSE: 1,024 bytes, where local disks stop at 255), a long name (OpenSSH caps it
/// at 1023 bytes), full attributes and the length fields.
const MAX_ENTRY: usize = 4 + 1024 + 4 + 1023 + 32;

pub fn opendir(s: &mut Session, out: &mut Out, id: u32, path: &[u8]) -> OpResult {
    logit!(Info, "opendir \"{}\"", Bytes(path));
    if s.handles.is_full() {
        return Err(Errno::EMFILE.into());
    }
    let fd = s.paths.open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    // nix's Dir::from_fd gives the descriptor up before fdopendir(3) and does not
    // close it when that fails: this does.
    let raw = fd.as_raw_fd();
    let dir = Dir::from_fd(fd).inspect_err(|_| {
        // SAFETY: `raw` was `fd`'s, which fdopendir did not take; nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    })?;
    match s.handles.insert(Handle::dir(dir.into_iter(), path)) {
        Ok(h) => {
            out.handle(id, &h);
            Ok(Answer::Sent)
        }
        Err(_) => Err(Errno::EMFILE.into()),
    }
}

/// The next batch of entries, with `.` and `..`, each with its attributes (of the
/// entry itself, not a symlink's target) and its `ls -l` long name. Entries that
/// vanish between the listing and the stat are skipped; any other error ends the
/// listing with that error (at once, or at the next READDIR when entries are already
/// in the reply). EOF once the listing is done.
pub fn readdir(s: &mut Session, out: &mut Out, id: u32, handle: &[u8]) -> OpResult {
    let Session {
        handles,
        names,
        paths,
        config,
        ..
    } = s;
    let hide_uploads = config.atomic_uploads;
    let Some(Handle {
        object: Object::Dir { entries, failed },
        ..
    }) = handles.get_mut(handle)
    else {
        return Err(Status::FAILURE);
    };
    if let Some(e) = failed.take() {
        return Err(e.into());
    }
    let now = now();
    let mut list = out.names(id);
    while list.size(out) + MAX_ENTRY <= REPLY_BUDGET {
        let entry = match entries.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                if list.count() == 0 {
                    list.abandon(out);
                    return Err(e.into());
                }
                *failed = Some(e);
                break;
            }
            None => break,
        };
        // SAFETY: the descriptor belongs to `entries`, which outlives this borrow.
        let dirfd = unsafe { BorrowedFd::borrow_raw(entries.as_raw_fd()) };
        let name = entry.file_name().to_bytes();
        // Another upload's hidden file is not part of the directory yet.
        if hide_uploads && crate::upload::is_temp(name) {
            continue;
        }
        // `..` of the root is the root itself when confined.
        let st = if name == b".." {
            paths.stat_dotdot(dirfd)
        } else {
            fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        };
        let st = match st {
            Ok(st) => st,
            // Removed since the directory was read: not part of the listing. Without
            // search permission on the directory no entry can be looked at: listed
            // as OpenSSH lists it, without them.
            Err(Errno::ENOENT | Errno::EACCES) => continue,
            // Storage that fails (EIO, ESTALE): the listing fails rather than leave
            // the entry out unseen. OpenSSH skips it.
            Err(e) if list.count() == 0 => {
                list.abandon(out);
                return Err(e.into());
            }
            Err(e) => {
                *failed = Some(e);
                break;
            }
        };
        list.push(
            out,
            name,
            |b| longname::write(b, name, &st, names, now),
            &Attrs::from_stat(&st),
        );
    }
    if list.count() == 0 {
        list.abandon(out);
        return Err(Status::EOF);
    }
    list.finish(out);
    Ok(Answer::Sent)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
