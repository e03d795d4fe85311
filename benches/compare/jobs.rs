//! The request streams of the pipelined workloads, each checking every reply.

use crate::client::{Attrs, Job, Reply, Request, Result, S_IFREG, pflags, status};
use crate::pattern;
use std::collections::VecDeque;
use std::rc::Rc;

fn mismatch(what: &str, got: impl std::fmt::Debug, want: impl std::fmt::Debug) -> String {
    format!("{what}: got {got:?}, expected {want:?}")
}

/// Sequential READ of a whole file with `chunk`-byte requests, then one READ at the
/// end (which must answer EOF) and CLOSE. Short reads are legal: the rest of such a
/// request is asked for again.
pub struct ReadFile {
    path: String,
    size: u64,
    chunk: u32,
    seed: u64,
    open_sent: bool,
    handle: Option<Vec<u8>>,
    next: u64,
    retries: Vec<(u64, u32)>,
    outstanding: usize,
    eof_sent: bool,
    close_sent: bool,
    closed: bool,
    received: u64,
}

pub enum ReadTag {
    Open,
    Read(u64, u32),
    Eof,
    Close,
}

impl ReadFile {
    pub fn new(path: &str, size: u64, chunk: u32, seed: u64) -> Self {
        ReadFile {
            path: path.into(),
            size,
            chunk,
            seed,
            open_sent: false,
            handle: None,
            next: 0,
            retries: Vec::new(),
            outstanding: 0,
            eof_sent: false,
            close_sent: false,
            closed: false,
            received: 0,
        }
    }
}

impl Job for ReadFile {
    type Tag = ReadTag;

    fn next(&mut self, req: &mut Request<'_>) -> Option<ReadTag> {
        if !self.open_sent {
            self.open_sent = true;
            req.open(&self.path, pflags::READ, None);
            return Some(ReadTag::Open);
        }
        let handle = self.handle.as_deref()?;
        if let Some((offset, len)) = self.retries.pop() {
            req.read(handle, offset, len);
            self.outstanding += 1;
            return Some(ReadTag::Read(offset, len));
        }
        if self.next < self.size {
            let offset = self.next;
            let len = (self.size - offset).min(u64::from(self.chunk)) as u32;
            self.next += u64::from(len);
            req.read(handle, offset, len);
            self.outstanding += 1;
            return Some(ReadTag::Read(offset, len));
        }
        if !self.eof_sent {
            self.eof_sent = true;
            req.read(handle, self.size, self.chunk);
            self.outstanding += 1;
            return Some(ReadTag::Eof);
        }
        if self.outstanding == 0 && self.retries.is_empty() && !self.close_sent {
            self.close_sent = true;
            req.close(handle);
            return Some(ReadTag::Close);
        }
        None
    }

    fn reply(&mut self, tag: ReadTag, reply: Reply<'_>) -> Result<()> {
        match tag {
            ReadTag::Open => self.handle = Some(reply.handle()?),
            ReadTag::Read(offset, len) => {
                self.outstanding -= 1;
                let data = reply.data().map_err(|e| format!("READ at {offset}: {e}"))?;
                if data.is_empty() || data.len() > len as usize {
                    return Err(format!(
                        "READ of {len} at {offset}: {} bytes of data",
                        data.len()
                    ));
                }
                if let Some(e) = pattern::check(data, offset, self.seed) {
                    return Err(format!("READ of {len} at {offset}: {e}"));
                }
                let n = data.len() as u32;
                self.received += u64::from(n);
                if n < len {
                    self.retries.push((offset + u64::from(n), len - n));
                }
            }
            ReadTag::Eof => {
                self.outstanding -= 1;
                reply
                    .status(status::EOF)
                    .map_err(|e| format!("READ at the end of the file: {e}"))?;
            }
            ReadTag::Close => {
                reply.ok()?;
                self.closed = true;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        if self.received != self.size || !self.closed {
            return Err(mismatch("bytes read", self.received, self.size));
        }
        Ok(())
    }
}

/// OPEN with `flags`, sequential WRITE of `size` bytes in `chunk`-byte requests, CLOSE.
pub struct WriteFile {
    path: String,
    flags: u32,
    size: u64,
    chunk: u32,
    /// The whole file's content, made before the run so that the client spends its
    /// time sending, not computing.
    content: Rc<[u8]>,
    open_sent: bool,
    handle: Option<Vec<u8>>,
    next: u64,
    outstanding: usize,
    close_sent: bool,
    closed: bool,
    acked: u64,
}

pub enum WriteTag {
    Open,
    Write(u64, u32),
    Close,
}

impl WriteFile {
    pub fn new(path: &str, flags: u32, size: u64, chunk: u32, seed: u64) -> Self {
        WriteFile {
            path: path.into(),
            flags,
            size,
            chunk,
            content: pattern::content(size, seed).into(),
            open_sent: false,
            handle: None,
            next: 0,
            outstanding: 0,
            close_sent: false,
            closed: false,
            acked: 0,
        }
    }
}

impl Job for WriteFile {
    type Tag = WriteTag;

    fn next(&mut self, req: &mut Request<'_>) -> Option<WriteTag> {
        if !self.open_sent {
            self.open_sent = true;
            req.open(&self.path, self.flags, Some(0o644));
            return Some(WriteTag::Open);
        }
        let handle = self.handle.as_deref()?;
        if self.next < self.size {
            let offset = self.next;
            let len = (self.size - offset).min(u64::from(self.chunk)) as u32;
            self.next += u64::from(len);
            let start = offset as usize;
            req.write_shared(handle, offset, &self.content, start, start + len as usize);
            self.outstanding += 1;
            return Some(WriteTag::Write(offset, len));
        }
        if self.outstanding == 0 && !self.close_sent {
            self.close_sent = true;
            req.close(handle);
            return Some(WriteTag::Close);
        }
        None
    }

    fn reply(&mut self, tag: WriteTag, reply: Reply<'_>) -> Result<()> {
        match tag {
            WriteTag::Open => self.handle = Some(reply.handle()?),
            WriteTag::Write(offset, len) => {
                self.outstanding -= 1;
                reply
                    .ok()
                    .map_err(|e| format!("WRITE of {len} at {offset}: {e}"))?;
                self.acked += u64::from(len);
            }
            WriteTag::Close => {
                reply.ok()?;
                self.closed = true;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        if self.acked != self.size || !self.closed {
            return Err(mismatch("bytes written", self.acked, self.size));
        }
        Ok(())
    }
}

/// The name of entry `i` of the big directory.
pub fn entry_name(i: usize) -> String {
    format!("e{i:06}")
}

/// OPENDIR, READDIR until EOF, CLOSE, one request at a time as clients list a
/// directory. Every entry must be listed exactly once, with the size and type of
/// the empty regular files it holds.
pub struct ReadDir {
    path: String,
    seen: Vec<bool>,
    listed: usize,
    waiting: bool,
    handle: Option<Vec<u8>>,
    eof: bool,
    close_sent: bool,
    closed: bool,
}

pub enum DirTag {
    Open,
    Read,
    Close,
}

impl ReadDir {
    pub fn new(path: &str, entries: usize) -> Self {
        ReadDir {
            path: path.into(),
            seen: vec![false; entries],
            listed: 0,
            waiting: false,
            handle: None,
            eof: false,
            close_sent: false,
            closed: false,
        }
    }

    fn check_entry(&mut self, name: &[u8], longname: &[u8], attrs: Attrs) -> Result<()> {
        if name == b"." || name == b".." {
            return Ok(());
        }
        let index = std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.strip_prefix('e'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&i| i < self.seen.len() && name == entry_name(i).as_bytes())
            .ok_or_else(|| format!("unexpected entry {:?}", String::from_utf8_lossy(name)))?;
        if std::mem::replace(&mut self.seen[index], true) {
            return Err(format!("entry {} listed twice", entry_name(index)));
        }
        self.listed += 1;
        if attrs.size != Some(0) || attrs.file_type() != Some(S_IFREG) {
            return Err(format!("entry {}: attributes {attrs:?}", entry_name(index)));
        }
        if longname.is_empty() {
            return Err(format!("entry {}: empty long name", entry_name(index)));
        }
        Ok(())
    }
}

impl Job for ReadDir {
    type Tag = DirTag;

    fn next(&mut self, req: &mut Request<'_>) -> Option<DirTag> {
        if self.waiting {
            return None;
        }
        let tag = match self.handle.as_deref() {
            None if !self.close_sent => {
                req.opendir(&self.path);
                DirTag::Open
            }
            Some(h) if !self.eof => {
                req.readdir(h);
                DirTag::Read
            }
            Some(h) if !self.close_sent => {
                self.close_sent = true;
                req.close(h);
                DirTag::Close
            }
            _ => return None,
        };
        self.waiting = true;
        Some(tag)
    }

    fn reply(&mut self, tag: DirTag, reply: Reply<'_>) -> Result<()> {
        self.waiting = false;
        match tag {
            DirTag::Open => self.handle = Some(reply.handle()?),
            DirTag::Read => match reply {
                Reply::Status { code, .. } if code == status::EOF => self.eof = true,
                Reply::Name(names) => {
                    if names.count == 0 {
                        return Err("NAME with no entries".into());
                    }
                    for e in names.entries()? {
                        self.check_entry(e.filename, e.longname, e.attrs)?;
                    }
                }
                other => return Err(other.unexpected("NAME or STATUS EOF")),
            },
            DirTag::Close => {
                reply.ok()?;
                self.closed = true;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        if self.listed != self.seen.len() || !self.closed {
            return Err(mismatch("entries listed", self.listed, self.seen.len()));
        }
        Ok(())
    }
}

/// Many independent short request chains (one per file or cycle), run side by side:
/// each item starts with `first()`, and each reply may name the item's next steps.
pub trait Chain {
    type Step: Copy;
    /// How many items to run.
    fn items(&self) -> usize;
    fn first(&self) -> Self::Step;
    fn send(&mut self, item: usize, step: Self::Step, req: &mut Request<'_>);
    /// Checks the reply to `step` of `item` and pushes the item's next steps.
    fn reply(
        &mut self,
        item: usize,
        step: Self::Step,
        reply: Reply<'_>,
        then: &mut Vec<Self::Step>,
    ) -> Result<()>;
    /// How many items went all the way through.
    fn completed(&self) -> usize;
}

/// Runs a [`Chain`], continuing started items before starting new ones, so about
/// `window` items are under way at once.
pub struct Chained<C: Chain> {
    chain: C,
    started: usize,
    ready: VecDeque<(usize, C::Step)>,
    then: Vec<C::Step>,
}

impl<C: Chain> Chained<C> {
    pub fn new(chain: C) -> Self {
        Chained {
            chain,
            started: 0,
            ready: VecDeque::new(),
            then: Vec::new(),
        }
    }
}

impl<C: Chain> Job for Chained<C> {
    type Tag = (usize, C::Step);

    fn next(&mut self, req: &mut Request<'_>) -> Option<Self::Tag> {
        let (item, step) = match self.ready.pop_front() {
            Some(next) => next,
            None if self.started < self.chain.items() => {
                self.started += 1;
                (self.started - 1, self.chain.first())
            }
            None => return None,
        };
        self.chain.send(item, step, req);
        Some((item, step))
    }

    fn reply(&mut self, (item, step): Self::Tag, reply: Reply<'_>) -> Result<()> {
        self.then.clear();
        self.chain.reply(item, step, reply, &mut self.then)?;
        self.ready.extend(self.then.iter().map(|&s| (item, s)));
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        let done = self.chain.completed();
        if done != self.chain.items() {
            return Err(mismatch("items completed", done, self.chain.items()));
        }
        Ok(())
    }
}

/// STAT or LSTAT of entries of the big directory, cycling through them.
pub struct Stat {
    pub dir: String,
    pub entries: usize,
    pub count: usize,
    pub lstat: bool,
    pub done: usize,
}

impl Chain for Stat {
    type Step = ();

    fn items(&self) -> usize {
        self.count
    }

    fn first(&self) {}

    fn send(&mut self, item: usize, _: (), req: &mut Request<'_>) {
        let path = format!("{}/{}", self.dir, entry_name(item % self.entries));
        if self.lstat {
            req.lstat(&path);
        } else {
            req.stat(&path);
        }
    }

    fn reply(&mut self, item: usize, _: (), reply: Reply<'_>, _: &mut Vec<()>) -> Result<()> {
        let attrs = reply.attrs()?;
        if attrs.size != Some(0) || attrs.file_type() != Some(S_IFREG) {
            return Err(format!(
                "{}: attributes {attrs:?}",
                entry_name(item % self.entries)
            ));
        }
        self.done += 1;
        Ok(())
    }

    fn completed(&self) -> usize {
        self.done
    }
}

/// The seed of small file `i`.
pub fn small_seed(i: usize) -> u64 {
    1_000_000 + i as u64
}

/// The path of small file `i` in `dir`.
pub fn small_path(dir: &str, i: usize) -> String {
    format!("{dir}/f{i:05}")
}

/// The handle item `item` holds open (between the OPEN reply and CLOSE).
fn open_handle(handles: &[Option<Vec<u8>>], item: usize) -> &[u8] {
    handles[item].as_deref().unwrap()
}

/// Creates small files: OPEN (CREAT|TRUNC|WRITE), one WRITE, CLOSE.
pub struct SmallCreate {
    dir: String,
    count: usize,
    size: usize,
    handles: Vec<Option<Vec<u8>>>,
    done: usize,
}

impl SmallCreate {
    pub fn new(dir: &str, count: usize, size: usize) -> Self {
        SmallCreate {
            dir: dir.into(),
            count,
            size,
            handles: vec![None; count],
            done: 0,
        }
    }
}

#[derive(Clone, Copy)]
pub enum CreateStep {
    Open,
    Write,
    Close,
}

impl Chain for SmallCreate {
    type Step = CreateStep;

    fn items(&self) -> usize {
        self.count
    }

    fn first(&self) -> CreateStep {
        CreateStep::Open
    }

    fn send(&mut self, item: usize, step: CreateStep, req: &mut Request<'_>) {
        let flags = pflags::WRITE | pflags::CREAT | pflags::TRUNC;
        match step {
            CreateStep::Open => req.open(&small_path(&self.dir, item), flags, Some(0o644)),
            CreateStep::Write => {
                let handle = open_handle(&self.handles, item);
                req.write(handle, 0, self.size, |buf| {
                    pattern::fill(buf, 0, small_seed(item))
                });
            }
            CreateStep::Close => req.close(open_handle(&self.handles, item)),
        }
    }

    fn reply(
        &mut self,
        item: usize,
        step: CreateStep,
        reply: Reply<'_>,
        then: &mut Vec<CreateStep>,
    ) -> Result<()> {
        match step {
            CreateStep::Open => {
                self.handles[item] = Some(reply.handle()?);
                then.push(CreateStep::Write);
            }
            CreateStep::Write => {
                reply.ok()?;
                then.push(CreateStep::Close);
            }
            CreateStep::Close => {
                reply.ok()?;
                self.handles[item] = None;
                self.done += 1;
            }
        }
        Ok(())
    }

    fn completed(&self) -> usize {
        self.done
    }
}

/// Reads small files back: OPEN, READ of 32768 bytes from the start, READ at the end
/// (EOF), CLOSE; the two READs go out together.
pub struct SmallRead {
    dir: String,
    count: usize,
    size: u64,
    files: Vec<SmallFile>,
    done: usize,
}

#[derive(Clone, Default)]
struct SmallFile {
    handle: Option<Vec<u8>>,
    pending: u8,
}

const SMALL_READ_LEN: u32 = 32768;

impl SmallRead {
    pub fn new(dir: &str, count: usize, size: usize) -> Self {
        SmallRead {
            dir: dir.into(),
            count,
            size: size as u64,
            files: vec![SmallFile::default(); count],
            done: 0,
        }
    }
}

#[derive(Clone, Copy)]
pub enum ReadStep {
    Open,
    Read(u64),
    Eof,
    Close,
}

impl Chain for SmallRead {
    type Step = ReadStep;

    fn items(&self) -> usize {
        self.count
    }

    fn first(&self) -> ReadStep {
        ReadStep::Open
    }

    fn send(&mut self, item: usize, step: ReadStep, req: &mut Request<'_>) {
        let handle = self.files[item].handle.as_deref();
        match step {
            ReadStep::Open => req.open(&small_path(&self.dir, item), pflags::READ, None),
            ReadStep::Read(offset) => req.read(handle.unwrap(), offset, SMALL_READ_LEN),
            ReadStep::Eof => req.read(handle.unwrap(), self.size, SMALL_READ_LEN),
            ReadStep::Close => req.close(handle.unwrap()),
        }
    }

    fn reply(
        &mut self,
        item: usize,
        step: ReadStep,
        reply: Reply<'_>,
        then: &mut Vec<ReadStep>,
    ) -> Result<()> {
        let file = &mut self.files[item];
        match step {
            ReadStep::Open => {
                file.handle = Some(reply.handle()?);
                file.pending = 2;
                then.extend([ReadStep::Read(0), ReadStep::Eof]);
            }
            ReadStep::Read(offset) => {
                let data = reply.data()?;
                let end = offset + data.len() as u64;
                if data.is_empty() || end > self.size {
                    return Err(format!("READ at {offset}: {} bytes of data", data.len()));
                }
                if let Some(e) = pattern::check(data, offset, small_seed(item)) {
                    return Err(format!("file {item}: {e}"));
                }
                if end < self.size {
                    then.push(ReadStep::Read(end));
                } else {
                    file.pending -= 1;
                }
            }
            ReadStep::Eof => {
                reply.status(status::EOF)?;
                file.pending -= 1;
            }
            ReadStep::Close => {
                reply.ok()?;
                file.handle = None;
                self.done += 1;
            }
        }
        if matches!(step, ReadStep::Read(_) | ReadStep::Eof) && file.pending == 0 {
            then.push(ReadStep::Close);
        }
        Ok(())
    }

    fn completed(&self) -> usize {
        self.done
    }
}

/// The two names item `item` of a metadata cycle in `dir` has: before the RENAME
/// (`{dir}/{from}{item}`) and after it (`{dir}/{to}{item}`).
fn cycle_paths(dir: &str, item: usize, from: &str, to: &str) -> (String, String) {
    (format!("{dir}/{from}{item}"), format!("{dir}/{to}{item}"))
}

/// Directory metadata cycle: MKDIR, RENAME, RMDIR.
pub struct MetaDir {
    pub dir: String,
    pub count: usize,
    pub done: usize,
}

#[derive(Clone, Copy)]
pub enum DirStep {
    Mkdir,
    Rename,
    Rmdir,
}

impl Chain for MetaDir {
    type Step = DirStep;

    fn items(&self) -> usize {
        self.count
    }

    fn first(&self) -> DirStep {
        DirStep::Mkdir
    }

    fn send(&mut self, item: usize, step: DirStep, req: &mut Request<'_>) {
        let (a, b) = cycle_paths(&self.dir, item, "d", "r");
        match step {
            DirStep::Mkdir => req.mkdir(&a, 0o755),
            DirStep::Rename => req.rename(&a, &b),
            DirStep::Rmdir => req.rmdir(&b),
        }
    }

    fn reply(
        &mut self,
        _: usize,
        step: DirStep,
        reply: Reply<'_>,
        then: &mut Vec<DirStep>,
    ) -> Result<()> {
        reply.ok()?;
        match step {
            DirStep::Mkdir => then.push(DirStep::Rename),
            DirStep::Rename => then.push(DirStep::Rmdir),
            DirStep::Rmdir => self.done += 1,
        }
        Ok(())
    }

    fn completed(&self) -> usize {
        self.done
    }
}

/// File metadata cycle: OPEN (CREAT|EXCL|WRITE), CLOSE, RENAME, REMOVE.
pub struct MetaFile {
    dir: String,
    count: usize,
    handles: Vec<Option<Vec<u8>>>,
    done: usize,
}

impl MetaFile {
    pub fn new(dir: &str, count: usize) -> Self {
        MetaFile {
            dir: dir.into(),
            count,
            handles: vec![None; count],
            done: 0,
        }
    }
}

#[derive(Clone, Copy)]
pub enum FileStep {
    Open,
    Close,
    Rename,
    Remove,
}

impl Chain for MetaFile {
    type Step = FileStep;

    fn items(&self) -> usize {
        self.count
    }

    fn first(&self) -> FileStep {
        FileStep::Open
    }

    fn send(&mut self, item: usize, step: FileStep, req: &mut Request<'_>) {
        let (a, b) = cycle_paths(&self.dir, item, "f", "g");
        let flags = pflags::WRITE | pflags::CREAT | pflags::EXCL;
        match step {
            FileStep::Open => req.open(&a, flags, Some(0o644)),
            FileStep::Close => req.close(open_handle(&self.handles, item)),
            FileStep::Rename => req.rename(&a, &b),
            FileStep::Remove => req.remove(&b),
        }
    }

    fn reply(
        &mut self,
        item: usize,
        step: FileStep,
        reply: Reply<'_>,
        then: &mut Vec<FileStep>,
    ) -> Result<()> {
        match step {
            FileStep::Open => {
                self.handles[item] = Some(reply.handle()?);
                then.push(FileStep::Close);
            }
            FileStep::Close => {
                reply.ok()?;
                self.handles[item] = None;
                then.push(FileStep::Rename);
            }
            FileStep::Rename => {
                reply.ok()?;
                then.push(FileStep::Remove);
            }
            FileStep::Remove => {
                reply.ok()?;
                self.done += 1;
            }
        }
        Ok(())
    }

    fn completed(&self) -> usize {
        self.done
    }
}

/// One EXTENDED request answered by EXTENDED_REPLY or STATUS OK (check-file,
/// copy-file): the server's whole work is in that one request.
pub struct OneExtended {
    pub name: &'static str,
    pub body: Vec<u8>,
    pub sent: bool,
    pub done: bool,
}

impl Job for OneExtended {
    type Tag = ();

    fn next(&mut self, req: &mut Request<'_>) -> Option<()> {
        if self.sent {
            return None;
        }
        self.sent = true;
        req.extended(self.name, &self.body);
        Some(())
    }

    fn reply(&mut self, _: (), reply: Reply<'_>) -> Result<()> {
        match reply {
            Reply::Extended => {}
            r => r.ok()?,
        }
        self.done = true;
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        match self.done {
            true => Ok(()),
            false => Err(format!("{}: no reply", self.name)),
        }
    }
}
