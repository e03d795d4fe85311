//! A small in-memory FUSE file system whose failures the tests choose, for storage
//! that fails the way shared file systems do: an error from any one operation on one
//! name (EIO, EDQUOT, ENOSPC, ESTALE), short reads, files that grow or shrink behind
//! the kernel's cached size, write-back that fails at close (the data then lost, as
//! NFS loses it), copy_file_range that stops short or early, and a daemon that dies
//! (the connection aborted: ENOTCONN) between requests or while one waits on it.
//!
//! It runs in a thread of the test process, mounted under the test's scratch
//! directory. Attributes and names are never cached (TTL zero), so every request the
//! server makes reaches it; the test reads and changes its contents directly, never
//! through the mount, so a stuck daemon never blocks the test itself.

use fuser::{
    Config, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;

/// The requests a fault can be set on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Open,
    Read,
    Write,
    Flush,
    Fsync,
    Readdir,
    Create,
    Mkdir,
    Unlink,
    Rename,
    CopyFileRange,
}

/// What copy_file_range does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyRange {
    /// ENOSYS, as most FUSE file systems: the kernel and the server fall back.
    Unsupported,
    /// Copies at most this many bytes a call.
    Short(u64),
    /// Copies correctly up to this source offset, then answers 0 (nothing copied)
    /// although the source goes on.
    EndsAt(u64),
}

/// How the file system is mounted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Files are opened with FOPEN_DIRECT_IO: reads reach the daemon as the caller
    /// asked and short reads reach the caller as they are.
    pub direct_io: bool,
    /// Writes are acknowledged at once and kept only when a flush (close) or fsync
    /// succeeds; a failed flush loses them, as a failed NFS write-back does.
    pub write_back: bool,
    /// FUSE_AUTO_INVAL_DATA, as libfuse 3 file systems (sshfs, s3fs) ask for: the
    /// kernel checks the size and mtime on every read and drops stale cached pages.
    pub auto_inval_data: bool,
    /// rename(2) with flags (RENAME_NOREPLACE) unsupported, as on older FUSE
    /// daemons and some network file systems: the kernel then answers EINVAL.
    pub no_rename_flags: bool,
}

struct Fault {
    op: Op,
    name: Vec<u8>,
    errno: i32,
    /// Requests that pass before the fault starts.
    pass: u32,
}

enum Body {
    File {
        data: Vec<u8>,
        /// The content at the last successful flush, while writes are pending.
        committed: Option<Vec<u8>>,
    },
    Dir(BTreeMap<OsString, u64>),
}

struct Node {
    name: OsString,
    parent: u64,
    body: Body,
    mode: u32,
    mtime: SystemTime,
}

struct State {
    nodes: HashMap<u64, Node>,
    /// Inodes replaced behind the kernel's back: every request on them is ESTALE.
    stale: Vec<u64>,
    next_ino: u64,
    next_fh: u64,
    options: Options,
    faults: Vec<Fault>,
    short_reads: Option<u32>,
    copy: CopyRange,
    calls: HashMap<Op, u64>,
    /// A request that waits (holding the daemon) until released or aborted, after
    /// so many such requests have passed.
    hang: Option<(Op, Vec<u8>, u32)>,
    hanging: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The daemon side, handed to fuser.
struct Fs(Arc<Shared>);

/// The mounted file system, as the test holds it. Unmounted on drop.
pub struct FaultFs {
    pub path: PathBuf,
    shared: Arc<Shared>,
    session: Option<fuser::BackgroundSession>,
    /// The FUSE connection number (the mount's minor device number), for abort.
    conn: u64,
}

impl FaultFs {
    /// Mounts an empty file system on `path` (created if missing).
    pub fn mount(path: &Path, options: Options) -> FaultFs {
        std::fs::create_dir_all(path).expect("mount point");
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                name: OsString::new(),
                parent: ROOT,
                body: Body::Dir(BTreeMap::new()),
                mode: 0o755,
                mtime: SystemTime::now(),
            },
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                nodes,
                stale: Vec::new(),
                next_ino: ROOT + 1,
                next_fh: 1,
                options,
                faults: Vec::new(),
                short_reads: None,
                copy: CopyRange::Unsupported,
                calls: HashMap::new(),
                hang: None,
                hanging: false,
            }),
            wake: Condvar::new(),
        });
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("faultfs".into()),
            MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(Fs(Arc::clone(&shared)), path, &config)
            .unwrap_or_else(|e| panic!("mount faultfs on {}: {e}", path.display()));
        let dev = std::fs::metadata(path).expect("stat mount").dev();
        FaultFs {
            path: path.to_path_buf(),
            shared,
            session: Some(session),
            conn: nix::libc::minor(dev) as u64,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Creates (or replaces the content of) the file at `rel`, behind the kernel's
    /// back: the kernel learns the new size only when it next asks.
    pub fn put(&self, rel: &str, data: &[u8]) {
        let mut st = self.lock();
        let (parent, name) = st.walk_parent(rel);
        match st.child(parent, &name) {
            Some(ino) => match &mut st.node(ino).body {
                Body::File { data: d, .. } => *d = data.to_vec(),
                Body::Dir(_) => panic!("{rel} is a directory"),
            },
            None => {
                st.insert(
                    parent,
                    &name,
                    Body::File {
                        data: data.to_vec(),
                        committed: None,
                    },
                    0o644,
                );
            }
        }
    }

    /// Creates the directory `rel`.
    pub fn mkdir(&self, rel: &str) {
        let mut st = self.lock();
        let (parent, name) = st.walk_parent(rel);
        st.insert(parent, &name, Body::Dir(BTreeMap::new()), 0o755);
    }

    /// Replaces the directory `rel` by a new, empty one under the same name, as
    /// another host does with `rm -r` and `mkdir`: requests on the old one, through
    /// a descriptor kept open, are ESTALE from then on.
    pub fn replace_dir(&self, rel: &str) {
        let mut st = self.lock();
        let (parent, name) = st.walk_parent(rel);
        let old = st.child(parent, &name).expect("directory to replace");
        st.stale.push(old);
        st.nodes.remove(&old);
        if let Body::Dir(entries) = &mut st.node(parent).body {
            entries.remove(&name);
        }
        st.insert(parent, &name, Body::Dir(BTreeMap::new()), 0o755);
    }

    /// The stored content of the file `rel`: what survived, whatever the kernel and
    /// the server were told.
    pub fn content(&self, rel: &str) -> Option<Vec<u8>> {
        let mut st = self.lock();
        let (parent, name) = st.walk_parent(rel);
        let ino = st.child(parent, &name)?;
        match &st.node(ino).body {
            Body::File {
                data,
                committed: None,
            } => Some(data.clone()),
            Body::File {
                committed: Some(c), ..
            } => Some(c.clone()),
            Body::Dir(_) => None,
        }
    }

    /// Every `op` on `name` (a final name; "" for the root) fails with `errno`.
    pub fn fail(&self, op: Op, name: &str, errno: i32) {
        self.fail_after(op, name, errno, 0);
    }

    /// As `fail`, after `pass` such requests have succeeded.
    pub fn fail_after(&self, op: Op, name: &str, errno: i32, pass: u32) {
        self.lock().faults.push(Fault {
            op,
            name: name.as_bytes().to_vec(),
            errno,
            pass,
        });
    }

    /// Removes every fault, short reads and hang.
    pub fn heal(&self) {
        let mut st = self.lock();
        st.faults.clear();
        st.short_reads = None;
        st.hang = None;
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Each read answers at most `max` bytes.
    pub fn short_reads(&self, max: u32) {
        self.lock().short_reads = Some(max);
    }

    pub fn copy_range(&self, how: CopyRange) {
        self.lock().copy = how;
    }

    /// How many `op` requests have reached the daemon.
    pub fn calls(&self, op: Op) -> u64 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// The next `op` on `name` waits inside the daemon (which then answers nothing
    /// else) until `heal` or `abort`.
    pub fn hang(&self, op: Op, name: &str) {
        self.hang_after(op, name, 0);
    }

    /// As `hang`, after `pass` such requests have been answered.
    pub fn hang_after(&self, op: Op, name: &str, pass: u32) {
        self.lock().hang = Some((op, name.as_bytes().to_vec(), pass));
    }

    /// Waits until a request hangs; false after `limit`.
    pub fn wait_hanging(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut st = self.lock();
        while !st.hanging {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Kills the connection as a dying daemon does: requests waiting fail, and every
    /// later one on the mount fails with ENOTCONN until it is unmounted.
    pub fn abort(&self) {
        ensure_fusectl();
        let file = format!("/sys/fs/fuse/connections/{}/abort", self.conn);
        std::fs::write(&file, b"1").unwrap_or_else(|e| panic!("write {file}: {e}"));
        self.heal();
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        self.heal();
        // A lazy unmount never waits on a stuck or dead daemon; the session's own
        // unmount then finds nothing to do.
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        if let Some(session) = self.session.take() {
            drop(session);
        }
    }
}

/// The FUSE control file system, where connections are aborted; mounted if missing.
fn ensure_fusectl() {
    let dir = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return;
    }
    let _ = nix::mount::mount(
        Some("fusectl"),
        dir,
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
}

impl State {
    fn node(&mut self, ino: u64) -> &mut Node {
        self.nodes.get_mut(&ino).expect("known inode")
    }

    fn child(&self, parent: u64, name: &OsStr) -> Option<u64> {
        match &self.nodes.get(&parent)?.body {
            Body::Dir(entries) => entries.get(name).copied(),
            Body::File { .. } => None,
        }
    }

    /// The directory holding `rel` and its final name.
    fn walk_parent(&self, rel: &str) -> (u64, OsString) {
        let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let name = parts.pop().expect("a name");
        let mut dir = ROOT;
        for p in parts {
            dir = self
                .child(dir, OsStr::new(p))
                .unwrap_or_else(|| panic!("no directory {p} in {rel}"));
        }
        (dir, OsString::from(name))
    }

    fn insert(&mut self, parent: u64, name: &OsStr, body: Body, mode: u32) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                name: name.to_os_string(),
                parent,
                body,
                mode,
                mtime: SystemTime::now(),
            },
        );
        if let Body::Dir(entries) = &mut self.node(parent).body {
            entries.insert(name.to_os_string(), ino);
        }
        self.node(parent).mtime = SystemTime::now();
        ino
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &n.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir(_) => (FileType::Directory, 0, 2),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind,
            perm: n.mode as u16,
            nlink,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    /// Counts the request and answers the fault set on it, if any.
    fn check(&mut self, op: Op, name: &[u8]) -> Result<(), Errno> {
        *self.calls.entry(op).or_default() += 1;
        for f in &mut self.faults {
            if f.op == op && f.name == name {
                if f.pass > 0 {
                    f.pass -= 1;
                    return Ok(());
                }
                return Err(Errno::from_i32(f.errno));
            }
        }
        Ok(())
    }

    fn name_of(&self, ino: u64) -> Vec<u8> {
        self.nodes
            .get(&ino)
            .map(|n| n.name.as_bytes().to_vec())
            .unwrap_or_default()
    }
}

impl Fs {
    /// Takes the state for a request `op` on inode `ino` (or on `name` in it):
    /// ESTALE for a replaced inode, the request's fault, or the hang.
    fn begin(
        &self,
        op: Op,
        ino: u64,
        name: Option<&OsStr>,
    ) -> Result<MutexGuard<'_, State>, Errno> {
        let mut st = self.0.lock();
        if st.stale.contains(&ino) {
            return Err(Errno::ESTALE);
        }
        let name = match name {
            Some(n) => n.as_bytes().to_vec(),
            None => st.name_of(ino),
        };
        if let Some((o, n, pass)) = &mut st.hang
            && *o == op
            && *n == name
            && std::mem::replace(pass, pass.saturating_sub(1)) == 0
        {
            st.hanging = true;
            self.0.wake.notify_all();
            while st.hang.is_some() {
                st = self.0.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.hanging = false;
        }
        st.check(op, &name)?;
        Ok(st)
    }

    fn entry(st: &State, ino: u64, reply: ReplyEntry) {
        match st.attr(ino) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn make(&self, op: Op, parent: u64, name: &OsStr, body: Body, mode: u32) -> Result<u64, Errno> {
        let mut st = self.begin(op, parent, Some(name))?;
        if st.child(parent, name).is_some() {
            return Err(Errno::EEXIST);
        }
        Ok(st.insert(parent, name, body, mode & 0o7777))
    }

    fn file_open_flags(st: &State) -> FopenFlags {
        if st.options.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }
}

macro_rules! answer {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(errno) => return $reply.error(errno),
        }
    };
}

impl Filesystem for Fs {
    fn init(&mut self, _: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        if self.0.lock().options.auto_inval_data {
            let _ = config.add_capabilities(fuser::InitFlags::FUSE_AUTO_INVAL_DATA);
        }
        Ok(())
    }

    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = answer!(reply, self.begin(Op::Lookup, parent.0, Some(name)));
        match st.child(parent.0, name) {
            Some(ino) => Fs::entry(&st, ino, reply),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        let st = answer!(reply, self.begin(Op::Getattr, ino.0, None));
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = answer!(reply, self.begin(Op::Setattr, ino.0, None));
        let Some(n) = st.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(m) = mode {
            n.mode = m & 0o7777;
        }
        if let Some(t) = mtime {
            n.mtime = match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
        }
        if let Some(size) = size {
            match &mut n.body {
                Body::File { data, .. } => data.resize(size as usize, 0),
                Body::Dir(_) => return reply.error(Errno::EISDIR),
            }
        }
        let a = st.attr(ino.0).expect("node");
        reply.attr(&TTL, &a);
    }

    fn mkdir(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _: u32,
        reply: ReplyEntry,
    ) {
        let ino = answer!(
            reply,
            self.make(Op::Mkdir, parent.0, name, Body::Dir(BTreeMap::new()), mode)
        );
        Fs::entry(&self.0.lock(), ino, reply);
    }

    fn create(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let body = Body::File {
            data: Vec::new(),
            committed: None,
        };
        let ino = answer!(reply, self.make(Op::Create, parent.0, name, body, mode));
        let mut st = self.0.lock();
        let fh = st.next_fh;
        st.next_fh += 1;
        let a = st.attr(ino).expect("node");
        reply.created(
            &TTL,
            &a,
            Generation(0),
            FileHandle(fh),
            Fs::file_open_flags(&st),
        );
    }

    fn unlink(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = answer!(reply, self.begin(Op::Unlink, parent.0, Some(name)));
        let Some(ino) = st.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        if matches!(st.node(ino).body, Body::Dir(_)) {
            return reply.error(Errno::EISDIR);
        }
        if let Body::Dir(entries) = &mut st.node(parent.0).body {
            entries.remove(name);
        }
        st.nodes.remove(&ino);
        reply.ok();
    }

    fn rmdir(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = answer!(reply, self.begin(Op::Unlink, parent.0, Some(name)));
        let Some(ino) = st.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        match &st.node(ino).body {
            Body::Dir(e) if e.is_empty() => {}
            Body::Dir(_) => return reply.error(Errno::ENOTEMPTY),
            Body::File { .. } => return reply.error(Errno::ENOTDIR),
        }
        if let Body::Dir(entries) = &mut st.node(parent.0).body {
            entries.remove(name);
        }
        st.nodes.remove(&ino);
        reply.ok();
    }

    fn rename(
        &self,
        _: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = answer!(reply, self.begin(Op::Rename, parent.0, Some(name)));
        if st.options.no_rename_flags && !flags.is_empty() {
            // ENOSYS: the kernel remembers the daemon lacks rename2 and answers EINVAL.
            return reply.error(Errno::ENOSYS);
        }
        let Some(ino) = st.child(parent.0, name) else {
            return reply.error(Errno::ENOENT);
        };
        // rename(2) replaces a file (what an atomic upload's last step asks);
        // RENAME_NOREPLACE and anything else in the way are refused.
        if let Some(old) = st.child(newparent.0, newname) {
            let file = !matches!(st.node(old).body, Body::Dir(_));
            if !file || flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return reply.error(Errno::EEXIST);
            }
            st.nodes.remove(&old);
        }
        if let Body::Dir(entries) = &mut st.node(parent.0).body {
            entries.remove(name);
        }
        if let Body::Dir(entries) = &mut st.node(newparent.0).body {
            entries.insert(newname.to_os_string(), ino);
        }
        let n = st.node(ino);
        n.name = newname.to_os_string();
        n.parent = newparent.0;
        reply.ok();
    }

    fn open(&self, _: &Request, ino: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        let mut st = answer!(reply, self.begin(Op::Open, ino.0, None));
        let fh = st.next_fh;
        st.next_fh += 1;
        reply.opened(FileHandle(fh), Fs::file_open_flags(&st));
    }

    fn read(
        &self,
        _: &Request,
        ino: INodeNo,
        _: FileHandle,
        offset: u64,
        size: u32,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = answer!(reply, self.begin(Op::Read, ino.0, None));
        let max = st.short_reads.map_or(size, |m| m.min(size)) as usize;
        match &st.node(ino.0).body {
            Body::File { data, .. } => {
                let start = (offset as usize).min(data.len());
                let end = (start + max).min(data.len());
                reply.data(&data[start..end]);
            }
            Body::Dir(_) => reply.error(Errno::EISDIR),
        }
    }

    fn write(
        &self,
        _: &Request,
        ino: INodeNo,
        _: FileHandle,
        offset: u64,
        bytes: &[u8],
        _: WriteFlags,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = answer!(reply, self.begin(Op::Write, ino.0, None));
        let write_back = st.options.write_back;
        let n = st.node(ino.0);
        let Body::File { data, committed } = &mut n.body else {
            return reply.error(Errno::EISDIR);
        };
        if write_back && committed.is_none() {
            *committed = Some(data.clone());
        }
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        n.mtime = SystemTime::now();
        reply.written(bytes.len() as u32);
    }

    fn flush(&self, _: &Request, ino: INodeNo, _: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        reply_settled(self.write_back(Op::Flush, ino.0), reply);
    }

    fn fsync(&self, _: &Request, ino: INodeNo, _: FileHandle, _: bool, reply: ReplyEmpty) {
        reply_settled(self.write_back(Op::Fsync, ino.0), reply);
    }

    fn opendir(&self, _: &Request, ino: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        let mut st = answer!(reply, self.begin(Op::Open, ino.0, None));
        let fh = st.next_fh;
        st.next_fh += 1;
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _: &Request,
        ino: INodeNo,
        _: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = answer!(reply, self.begin(Op::Readdir, ino.0, None));
        let Some(Node {
            body: Body::Dir(entries),
            parent,
            ..
        }) = st.nodes.get(&ino.0)
        else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (*parent, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in entries {
            let kind = match st.nodes[&child].body {
                Body::Dir(_) => FileType::Directory,
                Body::File { .. } => FileType::RegularFile,
            };
            all.push((child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _: &Request, _: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 19, 1 << 19, 1 << 16, 1 << 15, 4096, 255, 4096);
    }

    fn copy_file_range(
        &self,
        _: &Request,
        ino_in: INodeNo,
        _: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _: FileHandle,
        offset_out: u64,
        len: u64,
        _: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let mut st = answer!(reply, self.begin(Op::CopyFileRange, ino_in.0, None));
        let limit = match st.copy {
            CopyRange::Unsupported => return reply.error(Errno::ENOSYS),
            CopyRange::Short(n) => n.min(len),
            CopyRange::EndsAt(at) => at.saturating_sub(offset_in).min(len),
        };
        let src = match &st.node(ino_in.0).body {
            Body::File { data, .. } => data.clone(),
            Body::Dir(_) => return reply.error(Errno::EISDIR),
        };
        let start = (offset_in as usize).min(src.len());
        let end = (start + limit as usize).min(src.len());
        let Body::File { data, .. } = &mut st.node(ino_out.0).body else {
            return reply.error(Errno::EISDIR);
        };
        let out_end = offset_out as usize + (end - start);
        if data.len() < out_end {
            data.resize(out_end, 0);
        }
        data[offset_out as usize..out_end].copy_from_slice(&src[start..end]);
        reply.written((end - start) as u32);
    }
}

fn reply_settled(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Fs {
    /// A flush or fsync: pending writes are kept, or lost with the fault's error.
    fn write_back(&self, op: Op, ino: u64) -> Result<(), Errno> {
        let mut st = self.0.lock();
        if st.stale.contains(&ino) {
            return Err(Errno::ESTALE);
        }
        let name = st.name_of(ino);
        let result = st.check(op, &name);
        if let Some(Node {
            body: Body::File { data, committed },
            ..
        }) = st.nodes.get_mut(&ino)
        {
            if let (Err(_), Some(before)) = (&result, committed.take()) {
                *data = before;
            }
        }
        result
    }
}
