//! The per-request DEBUG lines OpenSSH's server writes: one when a request arrives
//! and one for the reply it sends. Only called when DEBUG1 or more is on, so they
//! cost nothing otherwise. Handles appear as OpenSSH numbers them: the slot, or -1
//! (printed signed or unsigned as OpenSSH's own format does) for an unknown one.

use crate::handles::HandleTable;
use crate::logging::Bytes;
use crate::logit;
use crate::wire::{self, Request};

/// A handle as OpenSSH's `%d`: its number or -1.
fn signed(handles: &HandleTable, h: &[u8]) -> i64 {
    handles.number(h).map_or(-1, i64::from)
}

/// A handle as OpenSSH's `%u`: its number or 4294967295.
fn unsigned(handles: &HandleTable, h: &[u8]) -> u32 {
    handles.number(h).unwrap_or(u32::MAX)
}

/// The handle's path, or "(null)" as OpenSSH prints a missing one.
fn name<'a>(handles: &'a HandleTable, h: &[u8]) -> Bytes<'a> {
    Bytes(handles.get(h).map_or(&b"(null)"[..], |h| &h.path[..]))
}

/// The line for a request as it arrives.
pub fn request(handles: &HandleTable, r: &Request<'_>) {
    use Request::*;
    match *r {
        Open { id, pflags, .. } => logit!(Debug3, "request {}: open flags {}", id, pflags),
        Close { id, handle } => {
            logit!(
                Debug3,
                "request {}: close handle {}",
                id,
                unsigned(handles, handle)
            )
        }
        Read {
            id,
            handle,
            offset,
            len,
        } => logit!(
            Debug1,
            "request {}: read \"{}\" (handle {}) off {} len {}",
            id,
            name(handles, handle),
            signed(handles, handle),
            offset,
            len
        ),
        Write {
            id,
            handle,
            offset,
            data,
        } => logit!(
            Debug1,
            "request {}: write \"{}\" (handle {}) off {} len {}",
            id,
            name(handles, handle),
            signed(handles, handle),
            offset,
            data.len()
        ),
        Lstat { id, .. } => logit!(Debug3, "request {}: lstat", id),
        Stat { id, .. } => logit!(Debug3, "request {}: stat", id),
        Fstat { id, handle } => logit!(
            Debug1,
            "request {}: fstat \"{}\" (handle {})",
            id,
            name(handles, handle),
            unsigned(handles, handle)
        ),
        SetStat { id, path, .. } => {
            logit!(Debug1, "request {}: setstat name \"{}\"", id, Bytes(path))
        }
        FSetStat { id, handle, .. } => {
            logit!(
                Debug1,
                "request {}: fsetstat handle {}",
                id,
                signed(handles, handle)
            )
        }
        OpenDir { id, .. } => logit!(Debug3, "request {}: opendir", id),
        ReadDir { id, handle } => logit!(
            Debug1,
            "request {}: readdir \"{}\" (handle {})",
            id,
            name(handles, handle),
            signed(handles, handle)
        ),
        Remove { id, .. } => logit!(Debug3, "request {}: remove", id),
        Mkdir { id, .. } => logit!(Debug3, "request {}: mkdir", id),
        Rmdir { id, .. } => logit!(Debug3, "request {}: rmdir", id),
        RealPath { id, .. } => logit!(Debug3, "request {}: realpath", id),
        Rename { id, .. } => logit!(Debug3, "request {}: rename", id),
        ReadLink { id, .. } => logit!(Debug3, "request {}: readlink", id),
        Symlink { id, .. } => logit!(Debug3, "request {}: symlink", id),
        PosixRename { id, .. } => logit!(Debug3, "request {}: posix-rename", id),
        StatVfs { id, .. } => logit!(Debug3, "request {}: statvfs", id),
        FStatVfs { id, handle } => logit!(
            Debug1,
            "request {}: fstatvfs \"{}\" (handle {})",
            id,
            name(handles, handle),
            unsigned(handles, handle)
        ),
        Hardlink { id, .. } => logit!(Debug3, "request {}: hardlink", id),
        Fsync { id, handle } => logit!(
            Debug3,
            "request {}: fsync (handle {})",
            id,
            unsigned(handles, handle)
        ),
        LSetStat { id, path, .. } => {
            logit!(Debug1, "request {}: lsetstat name \"{}\"", id, Bytes(path))
        }
        Limits { id } => logit!(Debug1, "request {}: limits", id),
        ExpandPath { id, path } => {
            logit!(
                Debug3,
                "request {}: expand, original \"{}\"",
                id,
                Bytes(path)
            )
        }
        CopyData {
            id,
            read_from_handle,
            read_from_offset,
            read_data_length,
            write_to_handle,
            write_to_offset,
        } => logit!(
            Debug1,
            "request {}: copy-data from \"{}\" (handle {}) off {} len {} to \"{}\" (handle {}) off {}",
            id,
            name(handles, read_from_handle),
            signed(handles, read_from_handle),
            read_from_offset,
            read_data_length,
            name(handles, write_to_handle),
            signed(handles, write_to_handle),
            write_to_offset
        ),
        HomeDirectory { id, username } => {
            logit!(
                Debug3,
                "request {}: home-directory \"{}\"",
                id,
                Bytes(username)
            )
        }
        UsersGroupsById { uids, gids, .. } => logit!(
            Debug1,
            "process_extended_get_users_groups_by_id: uids len = {}, gids len = {}",
            uids.len(),
            gids.len()
        ),
        CheckFile {
            id,
            form,
            target,
            start_offset,
            length,
            block_size,
            ..
        } => match form {
            wire::CheckFileForm::Name => logit!(
                Debug3,
                "request {}: check-file name \"{}\"",
                id,
                Bytes(target)
            ),
            _ => logit!(
                Debug1,
                "request {}: check-file \"{}\" (handle {}) off {} len {} block-size {}",
                id,
                name(handles, target),
                signed(handles, target),
                start_offset,
                length,
                block_size
            ),
        },
        CopyFile { id, .. } => logit!(Debug3, "request {}: copy-file", id),
        Init { .. } | UnknownExtended { .. } | Unknown { .. } => {}
    }
}

/// The line for the reply an operation wrote at `reply` (a whole packet).
pub fn reply(id: u32, reply: &[u8]) {
    let Some(&ptype) = reply.get(4) else {
        return;
    };
    let word = |at: usize| {
        reply
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match ptype {
        // After the length, type and id: the handle string's length, then its slot.
        wire::SSH_FXP_HANDLE => logit!(Debug1, "request {}: sent handle handle {}", id, word(13)),
        wire::SSH_FXP_NAME => logit!(Debug1, "request {}: sent names count {}", id, word(9)),
        wire::SSH_FXP_ATTRS => logit!(Debug1, "request {}: sent attrib have 0x{:x}", id, word(9)),
        wire::SSH_FXP_DATA => logit!(Debug1, "request {}: sent data len {}", id, word(9)),
        _ => {}
    }
}
