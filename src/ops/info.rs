//! Requests that describe the server and its users rather than a file: limits,
//! expand-path, home-directory, users-groups-by-id.

use super::{Answer, OpResult};
use crate::logging::Bytes;
use crate::logit;
use crate::output::Out;
use crate::server::Session;
use crate::status::Status;
use crate::wire::*;
use bytes::BufMut;
use nix::unistd::{Gid, Group, Uid, User};

/// limits@openssh.com: what this server really accepts.
pub fn limits(s: &mut Session, out: &mut Out, id: u32) -> OpResult {
    let max_handles = s.handles.cap() as u64;
    out.extended_reply(id, |b| {
        b.put_u64(MAX_FRAME as u64);
        b.put_u64(MAX_READ as u64);
        b.put_u64(MAX_READ as u64);
        b.put_u64(max_handles);
    });
    Ok(Answer::Sent)
}

/// A NAME reply with the path as both name and long name and no attributes.
fn send_path(out: &mut Out, id: u32, path: &[u8]) {
    let mut names = out.names(id);
    names.push(out, path, |b| b.extend_from_slice(path), &Attrs::default());
    names.finish(out);
}

/// expand-path@openssh.com: `~`, `~/x` and `~user/x` expanded, a relative path taken
/// from the working directory, then canonicalised as REALPATH does.
pub fn expand_path(s: &mut Session, out: &mut Out, id: u32, path: &[u8]) -> OpResult {
    let expanded: Vec<u8> = if path.is_empty() {
        b".".to_vec()
    } else if let Some(rest) = path.strip_prefix(b"~") {
        let (user, tail) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        // A bare `~` is the session's start directory (where `-d` put it), as in
        // OpenSSH; `~user` is that user's home (confined: where it is inside the
        // root, or `/`).
        let mut p = if user.is_empty() {
            s.paths.cwd()?
        } else {
            let pw = std::str::from_utf8(user)
                .ok()
                .map_or(Ok(None), User::from_name);
            let Ok(Some(pw)) = pw else {
                logit!(Error, "tilde_expand: No such user {}", Bytes(user));
                return Err(Status::with_text(
                    crate::status::StatusCode::NO_SUCH_FILE,
                    "no such user",
                ));
            };
            s.paths.home(&pw.dir)
        };
        if !tail.is_empty() {
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(tail);
        }
        p
    } else {
        path.to_vec()
    };
    let shown = if expanded.starts_with(b"/") || expanded == b"." {
        expanded.clone()
    } else {
        let mut cwd = s.paths.cwd()?;
        if !cwd.ends_with(b"/") {
            cwd.push(b'/');
        }
        cwd.extend_from_slice(&expanded);
        cwd
    };
    logit!(Verbose, "expand \"{}\"", Bytes(&shown));
    let resolved = s.paths.canonical(&shown)?;
    send_path(out, id, &resolved);
    Ok(Answer::Sent)
}

/// home-directory: the named user's home directory (confined: where it is inside the
/// root, or `/`).
pub fn home_directory(s: &mut Session, out: &mut Out, id: u32, username: &[u8]) -> OpResult {
    let user = std::str::from_utf8(username)
        .ok()
        .filter(|u| !u.is_empty())
        .and_then(|u| User::from_name(u).ok().flatten());
    let Some(user) = user else {
        return Err(Status::FAILURE);
    };
    let home = s.paths.home(&user.dir);
    logit!(Verbose, "home-directory \"{}\"", Bytes(&home));
    send_path(out, id, &home);
    Ok(Answer::Sent)
}

/// users-groups-by-id@openssh.com: the names of the given ids, an empty string for
/// an id without a name.
pub fn users_groups_by_id(
    _s: &mut Session,
    out: &mut Out,
    id: u32,
    uids: &[u8],
    gids: &[u8],
) -> OpResult {
    let users: Vec<Vec<u8>> = ids(uids)
        .map(|u| {
            let name = match User::from_uid(Uid::from_raw(u)) {
                Ok(Some(pw)) => pw.name.into_bytes(),
                _ => Vec::new(),
            };
            logit!(
                Debug3,
                "process_extended_get_users_groups_by_id: uid {} => \"{}\"",
                u,
                Bytes(&name)
            );
            name
        })
        .collect();
    let groups: Vec<Vec<u8>> = ids(gids)
        .map(|g| {
            let name = match Group::from_gid(Gid::from_raw(g)) {
                Ok(Some(gr)) => gr.name.into_bytes(),
                _ => Vec::new(),
            };
            logit!(
                Debug3,
                "process_extended_get_users_groups_by_id: gid {} => \"{}\"",
                g,
                Bytes(&name)
            );
            name
        })
        .collect();
    logit!(
        Verbose,
        "users-groups-by-id: {} users, {} groups",
        users.len(),
        groups.len()
    );
    out.extended_reply(id, |b| {
        for list in [&users, &groups] {
            let len: usize = list.iter().map(|n| 4 + n.len()).sum();
            b.put_u32(len as u32);
            for n in list {
                b.put_u32(n.len() as u32);
                b.put_slice(n);
            }
        }
    });
    Ok(Answer::Sent)
}

/// The ids packed in a users-groups-by-id list (its length is a multiple of 4).
fn ids(list: &[u8]) -> impl Iterator<Item = u32> + '_ {
    list.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}
