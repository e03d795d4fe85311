//! The one table of request names. Each row says how a request arrives (a packet type
//! or an extension name with the version string advertised for it), the name that
//! `-Q requests`, `-p` and `-P` use, and whether it writes (so `-R` refuses it).
//! VERSION, `-Q`, `-p`/`-P` and `-R` all read this table: adding an extension is one
//! row here, one decode arm in `wire::request` and one operation in `ops`.

use crate::wire::*;

/// Every request this server knows, in the order of [`REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    Close,
    Read,
    Write,
    Lstat,
    Fstat,
    SetStat,
    FSetStat,
    OpenDir,
    ReadDir,
    Remove,
    Mkdir,
    Rmdir,
    RealPath,
    Stat,
    Rename,
    ReadLink,
    Symlink,
    PosixRename,
    StatVfs,
    FStatVfs,
    Hardlink,
    Fsync,
    LSetStat,
    Limits,
    ExpandPath,
    CopyData,
    HomeDirectory,
    UsersGroupsById,
    CheckFile,
    CopyFile,
}

/// How a request is carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Its own packet type.
    Packet(u8),
    /// An EXTENDED request with this name, advertised in VERSION with this version.
    Extension {
        name: &'static str,
        version: &'static str,
    },
}

/// One row of the table.
#[derive(Debug)]
pub struct RequestInfo {
    pub op: Op,
    /// The name `-Q requests` prints and `-p`/`-P` take.
    pub name: &'static str,
    pub carrier: Carrier,
    /// Refused in read-only mode (`-R`).
    pub writes: bool,
    /// More extension names that arrive as this request but are not advertised:
    /// the draft's check-file-name and check-file-handle behind `check-file`.
    pub aliases: &'static [&'static str],
}

const fn row(op: Op, name: &'static str, carrier: Carrier, writes: bool) -> RequestInfo {
    RequestInfo {
        op,
        name,
        carrier,
        writes,
        aliases: &[],
    }
}

use Carrier::Packet;

const fn ext(name: &'static str, version: &'static str) -> Carrier {
    Carrier::Extension { name, version }
}

/// The table, in OpenSSH's order (which is the order `-Q requests` prints).
pub static REQUESTS: &[RequestInfo] = &[
    row(Op::Open, "open", Packet(SSH_FXP_OPEN), false),
    row(Op::Close, "close", Packet(SSH_FXP_CLOSE), false),
    row(Op::Read, "read", Packet(SSH_FXP_READ), false),
    row(Op::Write, "write", Packet(SSH_FXP_WRITE), true),
    row(Op::Lstat, "lstat", Packet(SSH_FXP_LSTAT), false),
    row(Op::Fstat, "fstat", Packet(SSH_FXP_FSTAT), false),
    row(Op::SetStat, "setstat", Packet(SSH_FXP_SETSTAT), true),
    row(Op::FSetStat, "fsetstat", Packet(SSH_FXP_FSETSTAT), true),
    row(Op::OpenDir, "opendir", Packet(SSH_FXP_OPENDIR), false),
    row(Op::ReadDir, "readdir", Packet(SSH_FXP_READDIR), false),
    row(Op::Remove, "remove", Packet(SSH_FXP_REMOVE), true),
    row(Op::Mkdir, "mkdir", Packet(SSH_FXP_MKDIR), true),
    row(Op::Rmdir, "rmdir", Packet(SSH_FXP_RMDIR), true),
    row(Op::RealPath, "realpath", Packet(SSH_FXP_REALPATH), false),
    row(Op::Stat, "stat", Packet(SSH_FXP_STAT), false),
    row(Op::Rename, "rename", Packet(SSH_FXP_RENAME), true),
    row(Op::ReadLink, "readlink", Packet(SSH_FXP_READLINK), false),
    row(Op::Symlink, "symlink", Packet(SSH_FXP_SYMLINK), true),
    row(
        Op::PosixRename,
        "posix-rename",
        ext("posix-rename@openssh.com", "1"),
        true,
    ),
    row(
        Op::StatVfs,
        "statvfs",
        ext("statvfs@openssh.com", "2"),
        false,
    ),
    row(
        Op::FStatVfs,
        "fstatvfs",
        ext("fstatvfs@openssh.com", "2"),
        false,
    ),
    row(
        Op::Hardlink,
        "hardlink",
        ext("hardlink@openssh.com", "1"),
        true,
    ),
    row(Op::Fsync, "fsync", ext("fsync@openssh.com", "1"), true),
    row(
        Op::LSetStat,
        "lsetstat",
        ext("lsetstat@openssh.com", "1"),
        true,
    ),
    row(Op::Limits, "limits", ext("limits@openssh.com", "1"), false),
    row(
        Op::ExpandPath,
        "expand-path",
        ext("expand-path@openssh.com", "1"),
        false,
    ),
    row(Op::CopyData, "copy-data", ext("copy-data", "1"), true),
    row(
        Op::HomeDirectory,
        "home-directory",
        ext("home-directory", "1"),
        false,
    ),
    row(
        Op::UsersGroupsById,
        "users-groups-by-id",
        ext("users-groups-by-id@openssh.com", "1"),
        false,
    ),
    // Advertised under paramiko's and WinSCP's name, with the algorithms it offers
    // as its data (as paramiko's own server advertises it); WinSCP sends
    // check-file-name, paramiko check-file with a handle.
    RequestInfo {
        op: Op::CheckFile,
        name: "check-file",
        carrier: ext("check-file", crate::ops::hash::ALGORITHM_LIST),
        writes: false,
        aliases: &[CHECK_FILE_NAME, CHECK_FILE_HANDLE],
    },
    row(Op::CopyFile, "copy-file", ext("copy-file", "1"), true),
];

/// The draft's name of check-file by path.
pub const CHECK_FILE_NAME: &str = "check-file-name";
/// The draft's name of check-file by handle.
pub const CHECK_FILE_HANDLE: &str = "check-file-handle";

impl Op {
    pub fn info(self) -> &'static RequestInfo {
        &REQUESTS[self as usize]
    }
}

/// The row of an extension by its wire name.
pub fn extension(name: &[u8]) -> Option<&'static RequestInfo> {
    REQUESTS.iter().find(|r| {
        matches!(r.carrier, Carrier::Extension { name: n, .. } if n.as_bytes() == name)
            || r.aliases.iter().any(|a| a.as_bytes() == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_op_order() {
        for (i, r) in REQUESTS.iter().enumerate() {
            assert_eq!(r.op as usize, i, "row {} ({}) is out of place", i, r.name);
        }
    }
}
