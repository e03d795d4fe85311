//! The audit log (`--audit-log DEST`): one structured record per completed operation
//! (a transfer per file handle, never one per READ or WRITE), apart from OpenSSH's
//! syslog lines, which stay as they are.
//!
//! The sink is opened (or connected) once, before `--root` and the sandbox take
//! effect, and nothing else is ever opened for it: a client can never reach it, and
//! it keeps working under Landlock. Records are kept in memory while a run of
//! requests is served and written out, in one write(2) for a file, before the replies
//! that acknowledge them leave the server; a record that cannot be written ends the
//! session (fail closed), so nothing a client was told happened goes unrecorded.
//!
//! `record` holds what goes in a record and how it is encoded (JSON Lines, or
//! journald's native fields); `sink` where it goes.

pub mod events;
mod record;
mod sink;

pub use record::{Record, Value};
pub use sink::{Dest, Sink};

use nix::errno::Errno;
use std::time::Instant;

/// The records' format version (`v`): fields may be added, never changed.
pub const VERSION: u64 = 1;

/// Who the session is, on every record; and what `session_start` tells of it.
pub struct Identity {
    pub user: String,
    pub uid: u32,
    pub client: String,
    /// `--root`, as given after expansion.
    pub root: Option<String>,
}

/// What `session_end` sums up.
#[derive(Default)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub files_uploaded: u64,
    pub files_downloaded: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub forced_closes: u64,
}

/// The session's audit log: its sink, its identity and the records not yet written.
pub struct Audit {
    sink: Sink,
    pub id: Identity,
    /// A random session id, 128 bits in hex.
    sid: String,
    pid: u32,
    seq: u64,
    pub started: Instant,
    pub totals: Totals,
    /// Records waiting for the next flush: JSON lines in one buffer for a file (one
    /// write), datagrams for the journal.
    lines: Vec<u8>,
    datagrams: Vec<Vec<u8>>,
    lines_or_datagrams_len: usize,
    /// The session's fields, encoded once.
    encoded: record::Encoded,
    /// Directories resolved for the records of the current run of requests.
    pub dirs: events::Dirs,
}

impl Audit {
    pub fn new(sink: Sink, id: Identity) -> Audit {
        let sid = session_id();
        let pid = std::process::id();
        let encoded = record::Common {
            sid: &sid,
            seq: 0,
            pid,
            user: &id.user,
            uid: id.uid,
            client: &id.client,
        }
        .encode();
        Audit {
            sink,
            id,
            sid,
            pid,
            seq: 0,
            started: Instant::now(),
            totals: Totals::default(),
            lines: Vec::new(),
            datagrams: Vec::new(),
            lines_or_datagrams_len: 0,
            encoded,
            dirs: events::Dirs::default(),
        }
    }

    /// Adds a record, numbered next in the session.
    pub fn add(&mut self, record: Record) {
        self.seq += 1;
        if self.sink.is_journal() {
            let common = record::Common {
                sid: &self.sid,
                seq: self.seq,
                pid: self.pid,
                user: &self.id.user,
                uid: self.id.uid,
                client: &self.id.client,
            };
            let datagram = record.journal(&common);
            self.lines_or_datagrams_len += datagram.len();
            self.datagrams.push(datagram);
        } else {
            record.json_line(&mut self.lines, self.seq, &self.encoded);
        }
    }

    /// Bytes of records waiting to be written.
    pub fn pending(&self) -> usize {
        self.lines.len() + self.lines_or_datagrams_len
    }

    /// Writes every pending record. An error here must end the session.
    pub fn flush(&mut self) -> Result<(), Errno> {
        self.dirs.forget();
        if self.lines.is_empty() && self.datagrams.is_empty() {
            return Ok(());
        }
        let datagrams = std::mem::take(&mut self.datagrams);
        self.lines_or_datagrams_len = 0;
        let result = match self.sink.is_journal() {
            true => self.sink.send(&datagrams),
            false => self.sink.append(&self.lines),
        };
        self.lines.clear();
        result
    }
}

/// 128 random bits in hex: unique enough to join the records of one session across
/// hosts and rotated files.
fn session_id() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer given.
    let n = unsafe { nix::libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // No entropy source: time and pid still tell sessions apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t ^ (u128::from(std::process::id()) << 64)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
