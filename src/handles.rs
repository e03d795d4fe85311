//! The handle table: every open file and directory of the session. A handle on the
//! wire is a slot number and a generation; a slot's generation changes each time it is
//! freed, so the bytes of a closed handle never name something opened later.

use nix::dir::OwningIter;
use std::os::fd::OwnedFd;
use std::time::Instant;

/// What a handle holds.
pub enum Object {
    File {
        fd: OwnedFd,
        /// Opened with APPEND: writes go to the end whatever their offset.
        append: bool,
        /// Opened for writing.
        writable: bool,
    },
    Dir {
        entries: OwningIter,
        /// An error met after the entries already sent in a reply: the answer to the
        /// next READDIR, so that a listing that failed never ends as if complete.
        failed: Option<nix::errno::Errno>,
    },
}

/// An open handle: the object, the client's path (for log lines), byte counters, and
/// how and when it was opened (for the audit log's transfer record).
pub struct Handle {
    pub object: Object,
    pub path: Vec<u8>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// The OPEN's `SSH_FXF_*` flags and requested mode (0 for a directory).
    pub pflags: u32,
    pub mode: u32,
    pub opened: Instant,
    /// `--atomic-uploads`: the file is a hidden one that CLOSE puts in place.
    pub upload: Option<crate::upload::Upload>,
}

impl Handle {
    pub fn file(
        fd: OwnedFd,
        append: bool,
        writable: bool,
        path: &[u8],
        pflags: u32,
        mode: u32,
    ) -> Handle {
        Handle {
            object: Object::File {
                fd,
                append,
                writable,
            },
            path: path.to_vec(),
            bytes_read: 0,
            bytes_written: 0,
            pflags,
            mode,
            opened: Instant::now(),
            upload: None,
        }
    }

    pub fn dir(entries: OwningIter, path: &[u8]) -> Handle {
        Handle {
            object: Object::Dir {
                entries,
                failed: None,
            },
            path: path.to_vec(),
            bytes_read: 0,
            bytes_written: 0,
            pflags: 0,
            mode: 0,
            opened: Instant::now(),
            upload: None,
        }
    }

    fn is_writable(&self) -> bool {
        matches!(self.object, Object::File { writable: true, .. })
    }
}

struct Slot {
    generation: u32,
    handle: Option<Handle>,
}

/// Length of a handle on the wire: slot and generation, big-endian u32 each.
pub const HANDLE_LEN: usize = 8;

/// The open handles, at most `cap` at once.
pub struct HandleTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    cap: usize,
    /// Open files that can be written through.
    writable: usize,
}

impl HandleTable {
    pub fn new(cap: usize) -> HandleTable {
        HandleTable {
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            cap,
            writable: 0,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn is_full(&self) -> bool {
        self.open >= self.cap
    }

    /// Stores `handle` and returns its wire form, or gives it back when the table is
    /// full.
    pub fn insert(&mut self, handle: Handle) -> Result<[u8; HANDLE_LEN], Handle> {
        if self.is_full() {
            return Err(handle);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    handle: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.writable += usize::from(handle.is_writable());
        let slot = &mut self.slots[index as usize];
        slot.handle = Some(handle);
        self.open += 1;
        Ok(encode(index, slot.generation))
    }

    fn slot_of(&self, wire: &[u8]) -> Option<usize> {
        let (index, generation) = decode(wire)?;
        let slot = self.slots.get(index as usize)?;
        (slot.generation == generation && slot.handle.is_some()).then_some(index as usize)
    }

    /// The slot number of a live handle, as log lines show handles.
    pub fn number(&self, wire: &[u8]) -> Option<u32> {
        self.slot_of(wire).map(|i| i as u32)
    }

    pub fn get(&self, wire: &[u8]) -> Option<&Handle> {
        let i = self.slot_of(wire)?;
        self.slots[i].handle.as_ref()
    }

    pub fn get_mut(&mut self, wire: &[u8]) -> Option<&mut Handle> {
        let i = self.slot_of(wire)?;
        self.slots[i].handle.as_mut()
    }

    /// Takes the handle out of the table; its wire form is dead from now on.
    pub fn remove(&mut self, wire: &[u8]) -> Option<Handle> {
        let i = self.slot_of(wire)?;
        let slot = &mut self.slots[i];
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(i as u32);
        self.open -= 1;
        let handle = slot.handle.take();
        self.writable -= usize::from(handle.as_ref().is_some_and(Handle::is_writable));
        handle
    }

    /// Whether any open file can be written through.
    pub fn any_writable(&self) -> bool {
        self.writable > 0
    }

    /// Takes every open handle out (the session is ending).
    pub fn drain(&mut self) -> impl Iterator<Item = Handle> + '_ {
        self.open = 0;
        self.writable = 0;
        self.free.clear();
        self.slots.drain(..).filter_map(|s| s.handle)
    }
}

fn encode(index: u32, generation: u32) -> [u8; HANDLE_LEN] {
    let mut b = [0u8; HANDLE_LEN];
    b[..4].copy_from_slice(&index.to_be_bytes());
    b[4..].copy_from_slice(&generation.to_be_bytes());
    b
}

fn decode(wire: &[u8]) -> Option<(u32, u32)> {
    let b: &[u8; HANDLE_LEN] = wire.try_into().ok()?;
    Some((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Handle {
        let fd = std::fs::File::open("/dev/null").unwrap();
        Handle::file(fd.into(), false, false, b"/dev/null", 1, 0)
    }

    #[test]
    fn stale_handle_is_refused_after_reuse() {
        let mut t = HandleTable::new(4);
        let a = t.insert(file()).ok().unwrap();
        assert!(t.remove(&a).is_some());
        let b = t.insert(file()).ok().unwrap();
        assert_ne!(a, b);
        assert!(t.get(&a).is_none());
        assert!(t.get(&b).is_some());
        assert!(t.remove(&a).is_none());
    }

    #[test]
    fn cap_and_garbage() {
        let mut t = HandleTable::new(2);
        t.insert(file()).ok().unwrap();
        t.insert(file()).ok().unwrap();
        assert!(t.insert(file()).is_err());
        assert!(t.get(b"").is_none());
        assert!(t.get(&[0xff; 8]).is_none());
        assert!(t.get(&[0; 300]).is_none());
        assert_eq!(t.drain().count(), 2);
    }
}
