//! The SFTP wire format, without I/O: framing limits, the packet-type numbers of
//! draft-ietf-secsh-filexfer-02, a bounds-checked [`Reader`], the file attributes,
//! and the decoded [`Request`]s. Replies are encoded by [`crate::output`].

mod attrs;
mod reader;
mod request;

pub use attrs::Attrs;
pub use reader::{DecodeError, Reader};
pub use request::{CheckFileForm, Request, decode};

/// The largest frame (length field excluded) accepted from a client, as OpenSSH's
/// `SFTP_MAX_MSG_LENGTH`. A longer one ends the session.
pub const MAX_FRAME: usize = 256 * 1024;
/// The most file data one READ returns or one WRITE is advertised to take: a frame less
/// room for the headers, as OpenSSH's `SFTP_MAX_READ_LENGTH`.
pub const MAX_READ: u32 = MAX_FRAME as u32 - 1024;
/// The protocol version this server speaks.
pub const SFTP_VERSION: u32 = 3;

pub const SSH_FXP_INIT: u8 = 1;
pub const SSH_FXP_VERSION: u8 = 2;
pub const SSH_FXP_OPEN: u8 = 3;
pub const SSH_FXP_CLOSE: u8 = 4;
pub const SSH_FXP_READ: u8 = 5;
pub const SSH_FXP_WRITE: u8 = 6;
pub const SSH_FXP_LSTAT: u8 = 7;
pub const SSH_FXP_FSTAT: u8 = 8;
pub const SSH_FXP_SETSTAT: u8 = 9;
pub const SSH_FXP_FSETSTAT: u8 = 10;
pub const SSH_FXP_OPENDIR: u8 = 11;
pub const SSH_FXP_READDIR: u8 = 12;
pub const SSH_FXP_REMOVE: u8 = 13;
pub const SSH_FXP_MKDIR: u8 = 14;
pub const SSH_FXP_RMDIR: u8 = 15;
pub const SSH_FXP_REALPATH: u8 = 16;
pub const SSH_FXP_STAT: u8 = 17;
pub const SSH_FXP_RENAME: u8 = 18;
pub const SSH_FXP_READLINK: u8 = 19;
pub const SSH_FXP_SYMLINK: u8 = 20;
pub const SSH_FXP_STATUS: u8 = 101;
pub const SSH_FXP_HANDLE: u8 = 102;
pub const SSH_FXP_DATA: u8 = 103;
pub const SSH_FXP_NAME: u8 = 104;
pub const SSH_FXP_ATTRS: u8 = 105;
pub const SSH_FXP_EXTENDED: u8 = 200;
pub const SSH_FXP_EXTENDED_REPLY: u8 = 201;

/// OPEN's `pflags`.
pub const SSH_FXF_READ: u32 = 0x01;
pub const SSH_FXF_WRITE: u32 = 0x02;
pub const SSH_FXF_APPEND: u32 = 0x04;
pub const SSH_FXF_CREAT: u32 = 0x08;
pub const SSH_FXF_TRUNC: u32 = 0x10;
pub const SSH_FXF_EXCL: u32 = 0x20;

/// Attribute flags.
pub const SSH_FILEXFER_ATTR_SIZE: u32 = 0x01;
pub const SSH_FILEXFER_ATTR_UIDGID: u32 = 0x02;
pub const SSH_FILEXFER_ATTR_PERMISSIONS: u32 = 0x04;
pub const SSH_FILEXFER_ATTR_ACMODTIME: u32 = 0x08;
pub const SSH_FILEXFER_ATTR_EXTENDED: u32 = 0x8000_0000;
