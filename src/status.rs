//! What a client sees when a request does not produce data: a status code and a
//! message. The errno-to-code table is OpenSSH's, because clients key on the code.

use nix::errno::Errno;
use std::borrow::Cow;

/// `SSH_FX_*` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode(pub u32);

impl StatusCode {
    pub const OK: StatusCode = StatusCode(0);
    pub const EOF: StatusCode = StatusCode(1);
    pub const NO_SUCH_FILE: StatusCode = StatusCode(2);
    pub const PERMISSION_DENIED: StatusCode = StatusCode(3);
    pub const FAILURE: StatusCode = StatusCode(4);
    pub const BAD_MESSAGE: StatusCode = StatusCode(5);
    pub const NO_CONNECTION: StatusCode = StatusCode(6);
    pub const CONNECTION_LOST: StatusCode = StatusCode(7);
    pub const OP_UNSUPPORTED: StatusCode = StatusCode(8);

    /// The code's name without `SSH_FX_` (the audit log's `sftp_status`).
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            1 => "EOF",
            2 => "NO_SUCH_FILE",
            3 => "PERMISSION_DENIED",
            4 => "FAILURE",
            5 => "BAD_MESSAGE",
            6 => "NO_CONNECTION",
            7 => "CONNECTION_LOST",
            8 => "OP_UNSUPPORTED",
            _ => "UNKNOWN",
        }
    }

    /// OpenSSH's fixed text for each code.
    pub fn text(self) -> &'static str {
        match self.0 {
            0 => "Success",
            1 => "End of file",
            2 => "No such file",
            3 => "Permission denied",
            4 => "Failure",
            5 => "Bad message",
            6 => "No connection",
            7 => "Connection lost",
            8 => "Operation unsupported",
            _ => "Unknown error",
        }
    }
}

/// A status reply: the code and, where the code is FAILURE and the cause was an OS
/// error, that error (whose own text becomes the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub code: StatusCode,
    pub errno: Option<Errno>,
    /// A message of the operation's own, where OpenSSH has one ("no such user").
    pub text: Option<&'static str>,
}

impl Status {
    pub const OK: Status = Status::code(StatusCode::OK);
    pub const EOF: Status = Status::code(StatusCode::EOF);
    pub const NO_SUCH_FILE: Status = Status::code(StatusCode::NO_SUCH_FILE);
    pub const PERMISSION_DENIED: Status = Status::code(StatusCode::PERMISSION_DENIED);
    pub const FAILURE: Status = Status::code(StatusCode::FAILURE);
    pub const BAD_MESSAGE: Status = Status::code(StatusCode::BAD_MESSAGE);
    pub const OP_UNSUPPORTED: Status = Status::code(StatusCode::OP_UNSUPPORTED);

    pub const fn code(code: StatusCode) -> Status {
        Status {
            code,
            errno: None,
            text: None,
        }
    }

    /// A status with a message of its own.
    pub const fn with_text(code: StatusCode, text: &'static str) -> Status {
        Status {
            code,
            errno: None,
            text: Some(text),
        }
    }

    /// The message sent with the code: OpenSSH's text, except that a FAILURE caused by
    /// the OS carries the OS's own description ("No space left on device").
    pub fn message(&self) -> Cow<'static, str> {
        match (self.text, self.errno) {
            (Some(text), _) => Cow::Borrowed(text),
            (None, Some(e)) if self.code == StatusCode::FAILURE => Cow::Owned(strerror(e)),
            _ => Cow::Borrowed(self.code.text()),
        }
    }
}

impl From<Errno> for Status {
    /// OpenSSH's buckets (`errno_to_portable`).
    fn from(e: Errno) -> Status {
        let code = match e {
            Errno::ENOENT | Errno::ENOTDIR | Errno::EBADF | Errno::ELOOP => {
                StatusCode::NO_SUCH_FILE
            }
            Errno::EPERM | Errno::EACCES | Errno::EFAULT => StatusCode::PERMISSION_DENIED,
            Errno::ENAMETOOLONG | Errno::EINVAL => StatusCode::BAD_MESSAGE,
            Errno::ENOSYS => StatusCode::OP_UNSUPPORTED,
            _ => StatusCode::FAILURE,
        };
        Status {
            code,
            errno: Some(e),
            text: None,
        }
    }
}

/// The C library's description of `e` (its strerror), as `ls` or `cp` would print it.
pub fn strerror(e: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e as i32).to_string();
    // std appends " (os error N)" to the C library's text.
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_messages() {
        assert_eq!(Status::from(Errno::ENOENT).code, StatusCode::NO_SUCH_FILE);
        assert_eq!(Status::from(Errno::ENOENT).message(), "No such file");
        assert_eq!(Status::from(Errno::EACCES).message(), "Permission denied");
        assert_eq!(Status::from(Errno::EINVAL).code, StatusCode::BAD_MESSAGE);
        let full = Status::from(Errno::ENOSPC);
        assert_eq!(full.code, StatusCode::FAILURE);
        assert_eq!(full.message(), "No space left on device");
        assert_eq!(
            Status::from(Errno::ENOTEMPTY).message(),
            "Directory not empty"
        );
        assert_eq!(Status::FAILURE.message(), "Failure");
    }
}
