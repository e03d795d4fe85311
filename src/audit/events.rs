//! Which request makes which record, with which fields. What a record needs from a
//! handle is taken before the request runs (`before`: a CLOSE's handle is gone after
//! it); the record is made once the result is known (`after`).

use super::{Audit, Record, Value};
use crate::handles::{Handle, HandleTable, Object};
use crate::ops::OpResult;
use crate::paths::Paths;
use crate::requests::Op;
use crate::status::{Status, StatusCode};
use crate::wire::{self, Attrs, Request};
use std::cell::RefCell;
use std::os::fd::AsFd;

/// What a request will be recorded as.
pub enum Pending<'a> {
    None,
    /// A file handle being closed: its record, but for the close's own result, and
    /// its flags and byte counts for the session's totals.
    Close(Record, u32, u64, u64),
    Open {
        path: &'a [u8],
        pflags: u32,
        mode: u32,
        refused_read_only: bool,
    },
    Path(&'static str, &'a [u8], Option<u32>),
    Two {
        event: &'static str,
        from: &'a [u8],
        to: &'a [u8],
        posix: Option<bool>,
        /// copy-file's overwrite flag.
        overwrite: Option<bool>,
    },
    SetStat {
        request: &'static str,
        path: Vec<u8>,
        attrs: Attrs,
    },
    Symlink {
        target: &'a [u8],
        link: &'a [u8],
    },
    Copy {
        from: Vec<u8>,
        to: Vec<u8>,
        from_handle: &'a [u8],
        read_before: u64,
        from_offset: u64,
        to_offset: u64,
        length: u64,
    },
}

/// What `request` will be recorded as, read before it runs.
pub fn before<'a>(
    request: &Request<'a>,
    handles: &HandleTable,
    paths: &Paths,
    dirs: &Dirs,
    read_only: bool,
) -> Pending<'a> {
    let absolute = |p: &[u8]| dirs.absolute(paths, p);
    match request {
        Request::Open {
            filename,
            pflags,
            attrs,
            ..
        } => Pending::Open {
            path: filename,
            pflags: *pflags,
            mode: attrs.permissions.unwrap_or(0o666),
            refused_read_only: read_only
                && pflags & (wire::SSH_FXF_WRITE | wire::SSH_FXF_CREAT | wire::SSH_FXF_TRUNC) != 0,
        },
        Request::Close { handle, .. } => match handles.get(handle) {
            Some(
                h @ Handle {
                    object: Object::File { .. },
                    ..
                },
            ) => Pending::Close(
                transfer(h, paths, dirs, "client"),
                h.pflags,
                h.bytes_read,
                h.bytes_written,
            ),
            _ => Pending::None,
        },
        Request::Remove { filename, .. } => Pending::Path("remove", filename, None),
        Request::Rmdir { path, .. } => Pending::Path("rmdir", path, None),
        Request::Mkdir { path, attrs, .. } => Pending::Path("mkdir", path, attrs.permissions),
        Request::Rename {
            oldpath, newpath, ..
        } => Pending::Two {
            event: "rename",
            from: oldpath,
            to: newpath,
            posix: Some(false),
            overwrite: None,
        },
        Request::PosixRename {
            oldpath, newpath, ..
        } => Pending::Two {
            event: "rename",
            from: oldpath,
            to: newpath,
            posix: Some(true),
            overwrite: None,
        },
        Request::CopyFile {
            source_path,
            destination_path,
            overwrite_destination,
            ..
        } => Pending::Two {
            event: "copy",
            from: source_path,
            to: destination_path,
            posix: None,
            overwrite: Some(*overwrite_destination),
        },
        Request::Hardlink {
            oldpath, newpath, ..
        } => Pending::Two {
            event: "hardlink",
            from: oldpath,
            to: newpath,
            posix: None,
            overwrite: None,
        },
        Request::Symlink {
            targetpath,
            linkpath,
            ..
        } => Pending::Symlink {
            target: targetpath,
            link: linkpath,
        },
        Request::SetStat { path, attrs, .. } => Pending::SetStat {
            request: "setstat",
            path: absolute(path),
            attrs: *attrs,
        },
        Request::LSetStat { path, attrs, .. } => Pending::SetStat {
            request: "lsetstat",
            path: absolute(path),
            attrs: *attrs,
        },
        Request::FSetStat { handle, attrs, .. } => Pending::SetStat {
            request: "fsetstat",
            path: handle_path(handles, handle, paths, dirs),
            attrs: *attrs,
        },
        Request::CopyData {
            read_from_handle,
            read_from_offset,
            read_data_length,
            write_to_handle,
            write_to_offset,
            ..
        } => Pending::Copy {
            from: handle_path(handles, read_from_handle, paths, dirs),
            to: handle_path(handles, write_to_handle, paths, dirs),
            from_handle: read_from_handle,
            read_before: handles.get(read_from_handle).map_or(0, |h| h.bytes_read),
            from_offset: *read_from_offset,
            to_offset: *write_to_offset,
            length: *read_data_length,
        },
        _ => Pending::None,
    }
}

/// Adds the record of a request that ran with `result`.
pub fn after(
    audit: &mut Audit,
    pending: Pending<'_>,
    result: &OpResult,
    paths: &Paths,
    handles: &HandleTable,
) {
    audit.totals.requests += 1;
    if result.is_err() {
        audit.totals.errors += 1;
    }
    let dirs = &audit.dirs;
    let absolute = |p: &[u8]| dirs.absolute(paths, p);
    let renames = matches!(
        pending,
        Pending::Path("remove" | "rmdir", ..)
            | Pending::Two {
                event: "rename" | "hardlink",
                ..
            }
            | Pending::Symlink { .. }
    );
    let record = match pending {
        Pending::None => return,
        Pending::Close(record, pflags, read, written) => {
            count_transfer(audit, pflags, read, written, result.is_ok());
            outcome(record, result)
        }
        Pending::Open {
            path,
            pflags,
            mode,
            refused_read_only,
        } => {
            // A successful OPEN is recorded when its handle is closed.
            let Err(status) = result else {
                return;
            };
            if refused_read_only {
                Record::new("denied")
                    .text("request", "open")
                    .path_owned("path", absolute(path))
                    .text("reason", "read-only")
                    .failed(status.code.name(), None)
            } else {
                Record::new("transfer")
                    .path_owned("path", absolute(path))
                    .field("flags", Value::Flags(pflags))
                    .field("mode", Value::Mode(mode))
                    .text("direction", direction(pflags))
                    .failed(status.code.name(), os_text(status))
            }
        }
        Pending::Path(event, path, mode) => {
            let mut r = Record::new(event).path_owned("path", absolute(path));
            if let Some(mode) = mode {
                r = r.field("mode", Value::Mode(mode));
            }
            outcome(r, result)
        }
        Pending::Two {
            event,
            from,
            to,
            posix,
            overwrite,
        } => {
            let mut r = Record::new(event)
                .path_owned("from", absolute(from))
                .path_owned("to", absolute(to));
            if let Some(posix) = posix {
                r = r.bool("posix", posix);
            }
            if let Some(overwrite) = overwrite {
                r = r.text("request", "copy-file").bool("overwrite", overwrite);
            }
            outcome(r, result)
        }
        Pending::SetStat {
            request,
            path,
            attrs,
        } => {
            let mut r = Record::new("setstat")
                .text("request", request)
                .path("path", &path);
            if let Some(size) = attrs.size {
                r = r.u64("size", size);
            }
            if let Some(mode) = attrs.permissions {
                r = r.field("mode", Value::Mode(mode));
            }
            if let Some((uid, gid)) = attrs.uid_gid {
                r = r.u64("uid_set", uid.into()).u64("gid_set", gid.into());
            }
            if let Some((atime, mtime)) = attrs.times {
                r = r.u64("atime", atime.into()).u64("mtime", mtime.into());
            }
            outcome(r, result)
        }
        Pending::Symlink { target, link } => outcome(
            Record::new("symlink")
                .path("target", target)
                .path_owned("link", absolute(link)),
            result,
        ),
        Pending::Copy {
            from,
            to,
            from_handle,
            read_before,
            from_offset,
            to_offset,
            length,
        } => {
            let copied = handles
                .get(from_handle)
                .map_or(0, |h| h.bytes_read - read_before);
            outcome(
                Record::new("copy")
                    .text("request", "copy-data")
                    .path("from", &from)
                    .path("to", &to)
                    .u64("from_offset", from_offset)
                    .u64("to_offset", to_offset)
                    .u64("length", length)
                    .u64("bytes_copied", copied),
                result,
            )
        }
    };
    // What the request renamed or removed may lie on the way to a directory
    // remembered (a failed request changed nothing).
    if renames && result.is_ok() {
        for path in record.paths() {
            audit.dirs.changed(path);
        }
    }
    audit.add(record);
}

/// The record of a request refused by `-R` or `-p`/`-P`.
pub fn denied(
    request: &Request<'_>,
    op: Op,
    paths: &Paths,
    dirs: &Dirs,
    read_only: bool,
) -> Record {
    let mut r = Record::new("denied").text("request", op.info().name);
    if let Some(path) = first_path(request) {
        r = r.path_owned("path", dirs.absolute(paths, path));
    }
    let reason = match read_only && op.info().writes {
        true => "read-only",
        false => "not permitted",
    };
    r.text("reason", reason)
        .failed(StatusCode::PERMISSION_DENIED.name(), None)
}

/// The transfer record of a file handle, its close not yet done (`close`: who
/// closes it, "client" or "session_end").
pub fn transfer(h: &Handle, paths: &Paths, dirs: &Dirs, close: &'static str) -> Record {
    let size = match &h.object {
        Object::File { fd, .. } => nix::sys::stat::fstat(fd.as_fd()).ok().map(|st| st.st_size),
        Object::Dir { .. } => None,
    };
    let mut r = Record::new("transfer")
        .path_owned("path", dirs.absolute(paths, &h.path))
        .field("flags", Value::Flags(h.pflags))
        .field("mode", Value::Mode(h.mode))
        .text("direction", direction(h.pflags))
        .u64("bytes_read", h.bytes_read)
        .u64("bytes_written", h.bytes_written)
        .u64("duration_ms", h.opened.elapsed().as_millis() as u64)
        .text("close", close);
    if let Some(size) = size {
        r = r.u64("size", size as u64);
    }
    r
}

/// Adds a transfer to the session's totals: its bytes, and a file uploaded or
/// downloaded if it was opened for that and closed without error.
pub fn count_transfer(audit: &mut Audit, pflags: u32, read: u64, written: u64, ok: bool) {
    let t = &mut audit.totals;
    t.bytes_read += read;
    t.bytes_written += written;
    if ok {
        let d = direction(pflags);
        t.files_uploaded += u64::from(matches!(d, "upload" | "both"));
        t.files_downloaded += u64::from(matches!(d, "download" | "both"));
    }
}

fn outcome(r: Record, result: &OpResult) -> Record {
    match result {
        Ok(_) => r,
        Err(status) => r.failed(status.code.name(), os_text(status)),
    }
}

fn os_text(status: &Status) -> Option<String> {
    status.errno.map(crate::status::strerror)
}

fn direction(pflags: u32) -> &'static str {
    match (
        pflags & wire::SSH_FXF_READ != 0,
        pflags & (wire::SSH_FXF_WRITE | wire::SSH_FXF_APPEND) != 0,
    ) {
        (true, true) => "both",
        (true, false) => "download",
        (false, true) => "upload",
        (false, false) => "none",
    }
}

fn handle_path(handles: &HandleTable, handle: &[u8], paths: &Paths, dirs: &Dirs) -> Vec<u8> {
    handles
        .get(handle)
        .map(|h| dirs.absolute(paths, &h.path))
        .unwrap_or_default()
}

fn first_path<'a>(request: &Request<'a>) -> Option<&'a [u8]> {
    match request {
        Request::Open { filename, .. } | Request::Remove { filename, .. } => Some(filename),
        Request::Mkdir { path, .. }
        | Request::Rmdir { path, .. }
        | Request::SetStat { path, .. }
        | Request::LSetStat { path, .. }
        | Request::OpenDir { path, .. }
        | Request::Stat { path, .. }
        | Request::Lstat { path, .. }
        | Request::ReadLink { path, .. }
        | Request::StatVfs { path, .. }
        | Request::RealPath { path, .. }
        | Request::ExpandPath { path, .. } => Some(path),
        Request::Rename { oldpath, .. }
        | Request::PosixRename { oldpath, .. }
        | Request::Hardlink { oldpath, .. } => Some(oldpath),
        Request::Symlink { linkpath, .. } => Some(linkpath),
        _ => None,
    }
}

/// The directories resolved for the records of one run of requests: the working
/// directory, and the last directory a path named. A run of uploads into one
/// directory resolves it once; the server forgets them before it waits for more
/// requests, and after a request that may have renamed or removed one.
#[derive(Default)]
pub struct Dirs {
    cwd: RefCell<Option<Vec<u8>>>,
    last: RefCell<Option<(Vec<u8>, Vec<u8>)>>,
}

impl Dirs {
    pub fn forget(&self) {
        self.cwd.take();
        self.last.take();
    }

    /// `abs` (an absolute path as records show it) was renamed or removed: a
    /// directory remembered at or below it, or reached through a component of its
    /// name (a symlink), is resolved again.
    pub fn changed(&self, abs: &[u8]) {
        let below = |p: &[u8]| {
            p.starts_with(abs) && (p.len() == abs.len() || p[abs.len()] == b'/' || abs == b"/")
        };
        let name = abs.rsplit(|&b| b == b'/').next().unwrap_or(abs);
        let mut last = self.last.borrow_mut();
        if let Some((client, resolved)) = &*last
            && (below(resolved) || client.split(|&b| b == b'/').any(|c| c == name))
        {
            *last = None;
        }
        let mut cwd = self.cwd.borrow_mut();
        if cwd.as_deref().is_some_and(below) {
            *cwd = None;
        }
    }

    /// A client path as that client would see it absolute: its directory resolved
    /// the way REALPATH resolves it (inside the root when confined), the final name
    /// as given (a symlink removed or renamed is named, not followed). Where the
    /// directory cannot be resolved (the request failed for that), the path is made
    /// absolute as written.
    pub fn absolute(&self, paths: &Paths, client: &[u8]) -> Vec<u8> {
        let end = client.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &client[..end];
        let (dir, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (Some(&trimmed[..i]), &trimmed[i + 1..]),
            None => (None, trimmed),
        };
        if matches!(name, b"" | b"." | b"..") {
            return paths
                .canonical(client)
                .unwrap_or_else(|_| lexical(&self.cwd(paths), client));
        }
        let dir = match dir {
            None => Ok(self.cwd(paths)),
            Some(b"") => Ok(b"/".to_vec()),
            Some(d) => self.dir(paths, d),
        };
        match dir {
            Ok(mut d) => {
                if !d.ends_with(b"/") {
                    d.push(b'/');
                }
                d.extend_from_slice(name);
                d
            }
            Err(_) => lexical(&self.cwd(paths), client),
        }
    }

    fn cwd(&self, paths: &Paths) -> Vec<u8> {
        self.cwd
            .borrow_mut()
            .get_or_insert_with(|| paths.cwd().unwrap_or_else(|_| b"/".to_vec()))
            .clone()
    }

    fn dir(&self, paths: &Paths, dir: &[u8]) -> Result<Vec<u8>, nix::errno::Errno> {
        if let Some((client, resolved)) = &*self.last.borrow()
            && client == dir
        {
            return Ok(resolved.clone());
        }
        let resolved = paths.canonical(dir)?;
        *self.last.borrow_mut() = Some((dir.to_vec(), resolved.clone()));
        Ok(resolved)
    }
}

/// `client` made absolute from the working directory without looking at the file
/// system: `.`, `..` and repeated slashes removed.
fn lexical(cwd: &[u8], client: &[u8]) -> Vec<u8> {
    let mut out = match client.starts_with(b"/") {
        true => b"/".to_vec(),
        false => cwd.to_vec(),
    };
    for c in client.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                while out.len() > 1 && out.pop() != Some(b'/') {}
                if out.is_empty() {
                    out.push(b'/');
                }
            }
            _ => {
                if !out.ends_with(b"/") {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    out
}
