//! Requests on open files: OPEN, CLOSE, READ, WRITE, FSTAT, FSETSTAT; and the two
//! copies inside the server, copy-data (between handles) and copy-file (by path).

use super::{Answer, OpResult};
use crate::handles::{Handle, Object};
use crate::logging::Bytes;
use crate::logit;
use crate::output::Out;
use crate::server::Session;
use crate::status::Status;
use crate::upload::{self, Begun};
use crate::wire::*;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{self, Mode, fchmod, futimens};
use nix::unistd::{fchown, ftruncate};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};

/// With `--zero-copy-reads`, READs of at least this many bytes go from the file to
/// the client through a pipe; below it, the copy costs less than the extra system
/// calls (measured with `cargo bench --bench compare -- --only read`).
const SPLICE_FROM: usize = 16 * 1024;

/// OPEN's `pflags` as `open(2)` flags, as OpenSSH maps them.
fn open_flags(pflags: u32) -> OFlag {
    let mut f = match (pflags & SSH_FXF_READ != 0, pflags & SSH_FXF_WRITE != 0) {
        (true, true) => OFlag::O_RDWR,
        (false, true) => OFlag::O_WRONLY,
        _ => OFlag::O_RDONLY,
    };
    for (bit, flag) in [
        (SSH_FXF_APPEND, OFlag::O_APPEND),
        (SSH_FXF_CREAT, OFlag::O_CREAT),
        (SSH_FXF_TRUNC, OFlag::O_TRUNC),
        (SSH_FXF_EXCL, OFlag::O_EXCL),
    ] {
        if pflags & bit != 0 {
            f |= flag;
        }
    }
    f
}

/// `READ,WRITE,CREATE,TRUNCATE` for the log line.
fn flags_text(pflags: u32) -> String {
    [
        (SSH_FXF_READ, "READ"),
        (SSH_FXF_WRITE, "WRITE"),
        (SSH_FXF_APPEND, "APPEND"),
        (SSH_FXF_CREAT, "CREATE"),
        (SSH_FXF_TRUNC, "TRUNCATE"),
        (SSH_FXF_EXCL, "EXCL"),
    ]
    .iter()
    .filter(|(bit, _)| pflags & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

pub fn open(
    s: &mut Session,
    out: &mut Out,
    id: u32,
    filename: &[u8],
    pflags: u32,
    attrs: &Attrs,
) -> OpResult {
    let flags = open_flags(pflags);
    let mode = s.config.creation_mode(attrs.permissions.unwrap_or(0o666));
    logit!(
        Info,
        "open \"{}\" flags {} mode 0{:o}",
        Bytes(filename),
        flags_text(pflags),
        mode
    );
    if s.config.read_only
        && (flags & OFlag::O_ACCMODE != OFlag::O_RDONLY
            || flags.intersects(OFlag::O_CREAT | OFlag::O_TRUNC))
    {
        logit!(Verbose, "Refusing open request in read-only mode");
        return Err(Status::PERMISSION_DENIED);
    }
    if s.handles.is_full() {
        return Err(Errno::EMFILE.into());
    }
    let append = flags.contains(OFlag::O_APPEND);
    let writable = flags & OFlag::O_ACCMODE != OFlag::O_RDONLY;
    // A fresh upload (writing from an empty file) goes to a hidden file with
    // --atomic-uploads; anything else is written in place.
    if s.config.atomic_uploads && writable && flags.contains(OFlag::O_TRUNC) {
        let Session { paths, uploads, .. } = &mut *s;
        if let Begun::Atomic(fd, upload) = upload::begin(paths, uploads, filename, flags, mode)? {
            let mut handle = Handle::file(fd, append, writable, filename, pflags, mode);
            handle.upload = Some(upload);
            return match s.handles.insert(handle) {
                Ok(h) => {
                    out.handle(id, &h);
                    Ok(Answer::Sent)
                }
                Err(mut h) => {
                    if let Some(up) = h.upload.take() {
                        upload::abandon(&s.paths, up);
                    }
                    Err(Errno::EMFILE.into())
                }
            };
        }
    }
    // Non-blocking, so that a FIFO or a device never stalls the whole session; it
    // changes nothing for regular files.
    let fd = s.paths.open(
        filename,
        flags | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(mode & 0o7777),
    )?;
    match s
        .handles
        .insert(Handle::file(fd, append, writable, filename, pflags, mode))
    {
        Ok(h) => {
            out.handle(id, &h);
            Ok(Answer::Sent)
        }
        Err(_) => Err(Errno::EMFILE.into()),
    }
}

/// OpenSSH's `close` / `closedir` log line; `how` is "" or "forced ".
pub fn log_close(h: &Handle, how: &str) {
    match h.object {
        Object::File { .. } => logit!(
            Info,
            "{}close \"{}\" bytes read {} written {}",
            how,
            Bytes(&h.path),
            h.bytes_read,
            h.bytes_written
        ),
        Object::Dir { .. } => logit!(Info, "{}closedir \"{}\"", how, Bytes(&h.path)),
    }
}

pub fn close(s: &mut Session, handle: &[u8]) -> OpResult {
    let Some(h) = s.handles.remove(handle) else {
        // OpenSSH logs an unknown handle as a directory without a name.
        logit!(Info, "closedir \"(null)\"");
        return Err(Status::NO_SUCH_FILE);
    };
    log_close(&h, "");
    let Handle {
        object,
        upload,
        path,
        ..
    } = h;
    match object {
        Object::File { fd, .. } if let Some(up) = upload => {
            let Session { paths, uploads, .. } = s;
            upload::finish(paths, uploads, &path, fd, up)?;
        }
        Object::File { fd, .. } => close_reporting(fd)?,
        Object::Dir { .. } => {}
    }
    Ok(Answer::Ok)
}

/// The descriptor of an open file handle; any other handle gets FAILURE, as OpenSSH.
fn file_fd<'a>(s: &'a Session, handle: &[u8]) -> Result<BorrowedFd<'a>, Status> {
    file(s, handle).map(|(fd, _)| fd)
}

/// The descriptor of an open file handle and whether it was opened with APPEND.
fn file<'a>(s: &'a Session, handle: &[u8]) -> Result<(BorrowedFd<'a>, bool), Status> {
    match s.handles.get(handle).map(|h| &h.object) {
        Some(Object::File { fd, append, .. }) => Ok((fd.as_fd(), *append)),
        _ => Err(Status::FAILURE),
    }
}

/// A client offset as `off_t`; beyond its range the kernel's answer would be EINVAL.
fn offset(off: u64) -> Result<i64, Status> {
    i64::try_from(off).map_err(|_| Errno::EINVAL.into())
}

/// Offsets from here on are checked the way OpenSSH's lseek(2) checks them (past the
/// file system's largest file size is EINVAL, BAD_MESSAGE to the client), at the cost
/// of one system call that ordinary offsets never pay.
const SEEK_CHECK_FROM: i64 = 1 << 40;

/// The offset of a READ or WRITE on `fd`, refused as OpenSSH's lseek would refuse it.
fn seek_offset(fd: BorrowedFd<'_>, off: u64) -> Result<i64, Status> {
    let off = offset(off)?;
    if off >= SEEK_CHECK_FROM {
        match nix::unistd::lseek(fd, off, nix::unistd::Whence::SeekSet) {
            Ok(_) | Err(Errno::ESPIPE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(off)
}

pub fn read(
    s: &mut Session,
    out: &mut Out,
    id: u32,
    handle: &[u8],
    off: u64,
    len: u32,
) -> OpResult {
    if len > MAX_READ {
        logit!(Debug2, "read change len {} to {}", len, MAX_READ);
    }
    let len = len.min(MAX_READ);
    if len > s.largest_read {
        logit!(
            Debug3,
            "process_read: allocate {} => {}",
            s.largest_read,
            len
        );
        s.largest_read = len;
    }
    let fd = file_fd(s, handle)?;
    let off = seek_offset(fd, off)?;
    let len = len as usize;
    if len == 0 {
        // An empty DATA, as OpenSSH answers, without asking the file.
        out.empty_data(id);
        return Ok(Answer::Sent);
    }
    // With --zero-copy-reads, large READs are spliced while no open file of the
    // session can be written (see crate::transport); small ones cost less copied.
    let zero_copy = len >= SPLICE_FROM && out.pipe().is_some() && !s.handles.any_writable();
    let n = match zero_copy {
        true => match out.data_spliced(id, fd, off, len) {
            // The pipe is full: this one is copied.
            Err(Errno::EAGAIN) => out.data(id, fd, off, len)?,
            r => r?,
        },
        false => out.data(id, fd, off, len)?,
    };
    if n == 0 {
        return Err(Status::EOF);
    }
    if let Some(h) = s.handles.get_mut(handle) {
        h.bytes_read += n as u64;
    }
    Ok(Answer::Sent)
}

pub fn write(s: &mut Session, handle: &[u8], off: u64, data: &[u8]) -> OpResult {
    let (fd, append) = file(s, handle)?;
    // pwrite on a descriptor opened with O_APPEND appends on Linux, whatever the
    // offset: exactly APPEND's meaning, so the offset is not even looked at.
    let mut off = if append { 0 } else { seek_offset(fd, off)? };
    let mut rest = data;
    // An empty write still asks the kernel, which refuses a read-only handle.
    let mut first = true;
    while first || !rest.is_empty() {
        first = false;
        let written = match nix::sys::uio::pwrite(fd, rest, off) {
            // Not seekable (a FIFO, a terminal): write where it is, as OpenSSH would.
            Err(Errno::ESPIPE) => nix::unistd::write(fd, rest),
            r => r,
        };
        let n = match written {
            Ok(0) if !rest.is_empty() => return Err(Status::FAILURE),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                let h = s.handles.get(handle);
                let path = h.map(|h| h.path.as_slice()).unwrap_or_default();
                logit!(
                    Error,
                    "process_write: write \"{}\": {}",
                    Bytes(&path[..path.len().min(100)]),
                    crate::status::strerror(e)
                );
                return Err(e.into());
            }
        };
        rest = &rest[n..];
        off += n as i64;
    }
    if let Some(h) = s.handles.get_mut(handle) {
        h.bytes_written += data.len() as u64;
    }
    Ok(Answer::Ok)
}

pub fn fstat(s: &mut Session, out: &mut Out, id: u32, handle: &[u8]) -> OpResult {
    let st = stat::fstat(file_fd(s, handle)?)?;
    out.attrs(id, &Attrs::from_stat(&st));
    Ok(Answer::Sent)
}

pub fn fsetstat(s: &mut Session, handle: &[u8], attrs: &Attrs) -> OpResult {
    let fd = file_fd(s, handle)?;
    let path = s
        .handles
        .get(handle)
        .map(|h| h.path.as_slice())
        .unwrap_or_default();
    super::path::apply_attrs(&s.config, path, attrs, |change| match change {
        super::path::Change::Size(size) => ftruncate(fd, size),
        super::path::Change::Mode(mode) => fchmod(fd, mode),
        super::path::Change::Times(atime, mtime) => futimens(fd, &atime, &mtime),
        super::path::Change::Owner(uid, gid) => fchown(fd, Some(uid), Some(gid)),
    })
}

pub fn fsync(s: &mut Session, handle: &[u8]) -> OpResult {
    let path = s
        .handles
        .get(handle)
        .map_or(&b"(null)"[..], |h| &h.path[..]);
    logit!(Verbose, "fsync \"{}\"", Bytes(path));
    let fd = file_fd(s, handle).map_err(|_| Status::NO_SUCH_FILE)?;
    nix::unistd::fsync(fd)?;
    // An upload not yet in place: its CLOSE makes the rename durable too.
    if let Some(up) = s.handles.get_mut(handle).and_then(|h| h.upload.as_mut()) {
        up.durable = true;
    }
    Ok(Answer::Ok)
}

pub fn fstatvfs(s: &mut Session, out: &mut Out, id: u32, handle: &[u8]) -> OpResult {
    let st = nix::sys::statvfs::fstatvfs(file_fd(s, handle)?)?;
    super::path::send_statvfs(out, id, &st);
    Ok(Answer::Sent)
}

/// copy-data: copies `len` bytes (0: to the end of the source) from one open file to
/// another inside the server (see [`copy_range`]).
pub fn copy_data(
    s: &mut Session,
    from: &[u8],
    from_off: u64,
    len: u64,
    to: &[u8],
    to_off: u64,
) -> OpResult {
    let (Ok(src), Ok((dst, append))) = (file_fd(s, from), file(s, to)) else {
        return Err(Status::FAILURE);
    };
    let (src_st, dst_st) = (stat::fstat(src)?, stat::fstat(dst)?);
    // Copying a range of a file onto an overlapping range of the same file would read
    // what it has just written.
    let same_file = src_st.st_dev == dst_st.st_dev && src_st.st_ino == dst_st.st_ino;
    let overlaps = len == 0
        || (from_off < to_off.saturating_add(len) && to_off < from_off.saturating_add(len));
    if from == to || (same_file && (append || overlaps)) {
        return Err(Status::FAILURE);
    }
    let copied = copy_range(src, offset(from_off)?, dst, offset(to_off)?, len, append)?;
    if let Some(h) = s.handles.get_mut(from) {
        h.bytes_read += copied;
    }
    if let Some(h) = s.handles.get_mut(to) {
        h.bytes_written += copied;
    }
    Ok(Answer::Ok)
}

/// The copy engine of copy-data and copy-file: `len` bytes (0: to the end of the
/// source) from `src` at `src_off` to `dst` at `dst_off`; returns the bytes copied.
/// copy_file_range(2) lets file systems that can share extents do so; a read/write
/// loop covers the rest, and the APPEND case (which copy_file_range refuses).
fn copy_range(
    src: BorrowedFd<'_>,
    mut src_off: i64,
    dst: BorrowedFd<'_>,
    mut dst_off: i64,
    len: u64,
    append: bool,
) -> Result<u64, Status> {
    let mut left = if len == 0 { u64::MAX } else { len };
    let mut copied: u64 = 0;
    let mut use_cfr = !append;
    let mut buf: Vec<u8> = Vec::new();
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        if use_cfr {
            let (mut so, mut doff) = (src_off, dst_off);
            match nix::fcntl::copy_file_range(src, Some(&mut so), dst, Some(&mut doff), chunk) {
                // Nothing copied is not proof of the source's end: a file system's
                // own copy (FUSE, NFS) may stop early, and the kernel's page-cache
                // copy stops at a cached size that the file has outgrown. pread(2)
                // decides, as OpenSSH's read(2) loop would (and marks the file
                // accessed as that read does).
                Ok(0) => use_cfr = false,
                Ok(n) => {
                    src_off += n as i64;
                    dst_off += n as i64;
                    left -= n as u64;
                    copied += n as u64;
                    continue;
                }
                Err(Errno::EINTR) => continue,
                // EBADF, EISDIR: a handle not open for reading or for writing, or a
                // directory opened as a file. The read/write loop fails in OpenSSH's
                // order (the source read first, which marks it accessed as OpenSSH's
                // read does), with the error of the call that failed.
                Err(
                    Errno::EXDEV
                    | Errno::EINVAL
                    | Errno::ENOSYS
                    | Errno::EOPNOTSUPP
                    | Errno::EBADF
                    | Errno::EISDIR,
                ) => {
                    use_cfr = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if buf.is_empty() {
            buf = vec![0; MAX_READ as usize];
        }
        let want = chunk.min(buf.len());
        let n = match nix::sys::uio::pread(src, &mut buf[..want], src_off) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut done = 0;
        while done < n {
            match nix::sys::uio::pwrite(dst, &buf[done..n], dst_off + done as i64) {
                Ok(0) => return Err(Status::FAILURE),
                Ok(w) => done += w,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        src_off += n as i64;
        dst_off += n as i64;
        left -= n as u64;
        copied += n as u64;
    }
    Ok(copied)
}

/// The text of a copy-file refused because both paths name one file.
const SAME_FILE: &str = "Source and destination are the same file";

/// Whether `st` is a regular file; a directory is EISDIR, anything else refused.
fn regular(st: &stat::FileStat) -> Result<(), Status> {
    match stat::SFlag::from_bits_truncate(st.st_mode) & stat::SFlag::S_IFMT {
        stat::SFlag::S_IFREG => Ok(()),
        stat::SFlag::S_IFDIR => Err(Errno::EISDIR.into()),
        _ => Err(Status::with_text(
            crate::status::StatusCode::FAILURE,
            "Not a regular file",
        )),
    }
}

/// copy-file: a regular file (the target of a symlink) copied to a new name, with the
/// source's permissions and modification time (clients send no SETSTAT after it). An
/// existing destination is replaced only when the client says so.
pub fn copy_file(s: &mut Session, source: &[u8], destination: &[u8], overwrite: bool) -> OpResult {
    logit!(
        Info,
        "copy-file from \"{}\" to \"{}\"{}",
        Bytes(source),
        Bytes(destination),
        if overwrite { " overwrite" } else { "" }
    );
    let nonblock = OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let src = s
        .paths
        .open(source, OFlag::O_RDONLY | nonblock, Mode::empty())?;
    let src_st = stat::fstat(&src)?;
    regular(&src_st)?;
    // With -m the copy, a file this request creates, gets that mode as OPEN's would.
    let mode = Mode::from_bits_truncate(s.config.creation_mode(src_st.st_mode & 0o7777));
    // Not truncated at open: the destination may turn out to be the source itself.
    let mut flags = OFlag::O_WRONLY | OFlag::O_CREAT | nonblock;
    if !overwrite {
        flags |= OFlag::O_EXCL;
    }
    let dst = s.paths.open(destination, flags, mode)?;
    let dst_st = stat::fstat(&dst)?;
    if (src_st.st_dev, src_st.st_ino) == (dst_st.st_dev, dst_st.st_ino) {
        return Err(Status::with_text(
            crate::status::StatusCode::FAILURE,
            SAME_FILE,
        ));
    }
    regular(&dst_st)?;
    if dst_st.st_size != 0 {
        ftruncate(&dst, 0)?;
    }
    copy_range(src.as_fd(), 0, dst.as_fd(), 0, 0, false)?;
    // The mode given at creation went through the umask, and an existing file kept
    // its own: set it as the source has it.
    fchmod(&dst, mode)?;
    let atime = nix::sys::time::TimeSpec::new(src_st.st_atime, src_st.st_atime_nsec);
    let mtime = nix::sys::time::TimeSpec::new(src_st.st_mtime, src_st.st_mtime_nsec);
    futimens(&dst, &atime, &mtime)?;
    close_reporting(dst)?;
    Ok(Answer::Ok)
}

/// close(2) of a file written through: it may report a write-back error (EIO,
/// ENOSPC on NFS) that the client must hear of, so the descriptor is not simply
/// dropped. EINTR is no error: Linux has released the descriptor, and the data went
/// where it goes.
pub(crate) fn close_reporting(fd: OwnedFd) -> Result<(), Errno> {
    match nix::unistd::close(fd.into_raw_fd()) {
        Ok(()) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
