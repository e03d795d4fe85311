//! The file-system work: one function per request, each returning `Ok(())` after
//! writing its reply (or writing none, for a plain OK) or the [`Status`] to send.
//! Paths go through [`crate::paths`]; handles through [`crate::handles`].

pub mod dir;
pub mod file;
pub mod info;
pub mod path;

use crate::status::Status;

pub type OpResult = Result<(), Status>;

/// A time as OpenSSH's `set ... modtime` line shows it: `%Y%m%d-%H:%M:%S`, local.
pub(crate) fn log_time(t: u32) -> String {
    crate::longname::stamp(t as i64)
}
