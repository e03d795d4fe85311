//! The file-system work: one function per request, each returning what it did
//! ([`Answer`]) or the [`Status`] to send. An operation never sends anything itself:
//! it encodes its reply into [`crate::output::Out`], and only the dispatcher and the
//! transport decide when bytes leave.
//! Paths go through [`crate::paths`]; handles through [`crate::handles`].

pub mod dir;
pub mod file;
pub mod hash;
pub mod info;
pub mod path;

use crate::status::Status;

/// What a successful operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It encoded its own reply (HANDLE, DATA, NAME, ATTRS, EXTENDED_REPLY).
    Sent,
    /// It has nothing to say but OK, which the dispatcher sends.
    Ok,
}

pub type OpResult = Result<Answer, Status>;

/// A time as OpenSSH's `set ... modtime` line shows it: `%Y%m%d-%H:%M:%S`, local.
pub(crate) fn log_time(t: u32) -> String {
    crate::longname::stamp(t as i64)
}
