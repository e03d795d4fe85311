//! Assertions on STATUS replies, shared by the test modules: the code, and the message
//! OpenSSH sends for it or, where ours deliberately differs, the operating system's
//! text.

use super::raw::*;
use super::testing_openssh;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// OpenSSH's fixed status message for each code.
pub fn fixed_message(code: u32) -> &'static str {
    match code {
        SSH_FX_OK => "Success",
        SSH_FX_EOF => "End of file",
        SSH_FX_NO_SUCH_FILE => "No such file",
        SSH_FX_PERMISSION_DENIED => "Permission denied",
        SSH_FX_FAILURE => "Failure",
        SSH_FX_BAD_MESSAGE => "Bad message",
        SSH_FX_NO_CONNECTION => "No connection",
        SSH_FX_CONNECTION_LOST => "Connection lost",
        SSH_FX_OP_UNSUPPORTED => "Operation unsupported",
        _ => "Unknown error",
    }
}

/// Asserts `reply` is a STATUS with `code` and OpenSSH's fixed message for it.
#[track_caller]
pub fn assert_status(reply: &Reply, code: u32) {
    assert_status_msg(reply, code, fixed_message(code));
}

/// Asserts `reply` is a STATUS with `code` and `msg`, and an empty language tag.
#[track_caller]
pub fn assert_status_msg(reply: &Reply, code: u32, msg: &str) {
    match reply {
        Reply::Status {
            code: c,
            msg: m,
            lang,
            ..
        } => {
            assert_eq!(
                (*c, String::from_utf8_lossy(m).as_ref()),
                (code, msg),
                "status code and message"
            );
            assert_eq!(lang, b"", "language tag");
        }
        other => panic!("expected status {code} ({msg}), got {other:?}"),
    }
}

/// Asserts a FAILURE that came from an OS error: OpenSSH says "Failure", ours says the
/// OS's own text for the error (`os_text`, e.g. "File exists").
#[track_caller]
pub fn assert_os_failure(reply: &Reply, os_text: &str) {
    if testing_openssh() {
        assert_status(reply, SSH_FX_FAILURE);
    } else {
        assert_status_msg(reply, SSH_FX_FAILURE, os_text);
    }
}

/// A path as the bytes a request carries.
pub fn bytes_of(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}
