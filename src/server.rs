//! The session: its state, and the one `match` that sends each request to its
//! operation after the policy checks. Operations write their own success replies;
//! the dispatcher sends every STATUS.

use crate::audit::{Audit, Record, events};
use crate::config::{Config, Refusal};
use crate::handles::HandleTable;
use crate::handles::Object;
use crate::logging::Bytes;
use crate::longname::Names;
use crate::ops::{self, Answer, OpResult};
use crate::output::Out;
use crate::paths::Paths;
use crate::requests::Op;
use crate::requests::{Carrier, REQUESTS};
use crate::status::{Status, StatusCode};
use crate::transport::Transport;
use crate::wire::{self, Request};
use crate::{logit, trace};
use nix::errno::Errno;

/// What the event loop does after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// End the session with this exit status.
    Exit(i32),
}

/// Whether `request` may change the data of a file (open it for writing or
/// truncate it): READ replies spliced before it must reach the client first.
fn changes_file_data(request: &Request<'_>) -> bool {
    match request {
        Request::Open { pflags, .. } => {
            pflags & (wire::SSH_FXF_WRITE | wire::SSH_FXF_APPEND | wire::SSH_FXF_TRUNC) != 0
        }
        Request::SetStat { attrs, .. }
        | Request::FSetStat { attrs, .. }
        | Request::LSetStat { attrs, .. } => attrs.size.is_some(),
        // It may overwrite a file whose pages a spliced READ reply still holds.
        Request::CopyFile { .. } => true,
        _ => false,
    }
}

/// One client's session.
pub struct Session {
    pub config: Config,
    pub handles: HandleTable,
    pub paths: Paths,
    pub names: Names,
    /// The largest READ served so far; OpenSSH logs when its read buffer grows, and
    /// its DEBUG3 output is reproduced from this.
    pub largest_read: u32,
    /// `--audit-log`: the session's records.
    pub audit: Option<Audit>,
    /// `--atomic-uploads`: what the session learnt about making hidden files.
    pub uploads: crate::upload::Uploads,
    initialized: bool,
}

impl Session {
    pub fn new(config: Config) -> Session {
        let handles = HandleTable::new(config.max_handles);
        Session {
            config,
            handles,
            paths: Paths::new(),
            names: Names::default(),
            largest_read: 0,
            audit: None,
            uploads: Default::default(),
            initialized: false,
        }
    }

    /// Handles one packet body (type byte first); replies are appended to `out`.
    /// `transport`, where there is one, is where the replies go: it is asked to
    /// deliver every spliced READ reply before a request that changes a file's data.
    pub fn handle_packet(
        &mut self,
        body: &[u8],
        out: &mut Out,
        transport: Option<&mut Transport>,
    ) -> Flow {
        let request = match wire::decode(body) {
            Ok(r) => r,
            Err(bad) => {
                return match bad.id {
                    Some(id) if self.initialized => {
                        logit!(
                            Error,
                            "request {}: type {}: bad message: {}",
                            id,
                            bad.ptype,
                            bad.error
                        );
                        self.send_status(out, id, Status::BAD_MESSAGE);
                        Flow::Continue
                    }
                    // Without an id there is nobody to answer.
                    _ => {
                        logit!(Error, "process: parse ID: {}", bad.error);
                        Flow::Exit(255)
                    }
                };
            }
        };
        let id = match request {
            Request::Init { version } => {
                logit!(Verbose, "received client version {}", version);
                self.initialized = true;
                if let Some(a) = &mut self.audit {
                    let start = self.paths.cwd().unwrap_or_default();
                    let mut r = Record::new("session_start")
                        .bool("read_only", self.config.read_only)
                        .path("start_dir", &start)
                        .u64("version", version.into());
                    if let Some(root) = &a.id.root {
                        r = r.path("root", root.as_bytes());
                    }
                    a.add(r);
                }
                out.version(wire::SFTP_VERSION, &self.advertised());
                return Flow::Continue;
            }
            _ if !self.initialized => {
                logit!(Error, "Received {} request before init", body[0]);
                return Flow::Exit(255);
            }
            ref r => r.id().unwrap_or(0),
        };
        if let Some(op) = request.op()
            && !self.permitted(op)
        {
            if let Some(a) = &mut self.audit {
                let r = events::denied(&request, op, &self.paths, &a.dirs, self.config.read_only);
                a.add(r);
                a.totals.requests += 1;
                a.totals.errors += 1;
            }
            self.send_status(out, id, Status::PERMISSION_DENIED);
            return Flow::Continue;
        }
        let debugging = crate::logging::enabled(crate::logging::Level::Debug1);
        if debugging {
            trace::request(&self.handles, &request);
        }
        if let Some(t) = transport
            && changes_file_data(&request)
            && let Err(e) = t.settle(out)
        {
            logit!(Error, "write: {}", crate::status::strerror(e));
            return Flow::Exit(1);
        }
        let changes = request.op().is_some_and(|op| op.info().writes);
        self.paths.begin();
        let mark = out.mark();
        let audited = self.audit.as_ref().map(|a| {
            events::before(
                &request,
                &self.handles,
                &self.paths,
                &a.dirs,
                self.config.read_only,
            )
        });
        let mut result = self.dispatch(request, out);
        // ESTALE through a directory kept from an earlier request: that directory was
        // replaced (on another host); the failed call changed nothing, and the request
        // resolved afresh gets the answer a plain path lookup gives. (The body decoded
        // once already: it decodes the same again.)
        if let Err(status) = &result
            && status.errno == Some(Errno::ESTALE)
            && self.paths.reused_kept()
            && let Ok(request) = wire::decode(body)
        {
            self.paths.forget();
            out.rollback(mark);
            self.paths.begin();
            result = self.dispatch(request, out);
        }
        if let (Some(a), Some(pending)) = (&mut self.audit, audited) {
            events::after(a, pending, &result, &self.paths, &self.handles);
        }
        if changes {
            self.paths.changed();
        }
        match result {
            Ok(Answer::Ok) => self.send_status(out, id, Status::OK),
            Ok(Answer::Sent) => {
                if debugging {
                    trace::reply(id, &out.as_bytes()[mark..]);
                }
            }
            Err(status) => {
                out.rollback(mark);
                self.send_status(out, id, status);
            }
        }
        Flow::Continue
    }

    fn dispatch(&mut self, request: Request<'_>, out: &mut Out) -> OpResult {
        use Request::*;
        match request {
            Init { .. } => Ok(Answer::Ok),
            Open {
                id,
                filename,
                pflags,
                attrs,
            } => ops::file::open(self, out, id, filename, pflags, &attrs),
            Close { handle, .. } => ops::file::close(self, handle),
            Read {
                id,
                handle,
                offset,
                len,
            } => ops::file::read(self, out, id, handle, offset, len),
            Write {
                handle,
                offset,
                data,
                ..
            } => ops::file::write(self, handle, offset, data),
            Fstat { id, handle } => ops::file::fstat(self, out, id, handle),
            FSetStat { handle, attrs, .. } => ops::file::fsetstat(self, handle, &attrs),
            OpenDir { id, path } => ops::dir::opendir(self, out, id, path),
            ReadDir { id, handle } => ops::dir::readdir(self, out, id, handle),
            Lstat { id, path } => ops::path::stat(self, out, id, path, false),
            Stat { id, path } => ops::path::stat(self, out, id, path, true),
            SetStat { path, attrs, .. } => ops::path::setstat(self, path, &attrs),
            Remove { filename, .. } => ops::path::remove(self, filename),
            Mkdir { path, attrs, .. } => ops::path::mkdir(self, path, &attrs),
            Rmdir { path, .. } => ops::path::rmdir(self, path),
            RealPath { id, path } => ops::path::realpath(self, out, id, path),
            Rename {
                oldpath, newpath, ..
            } => ops::path::rename(self, oldpath, newpath),
            ReadLink { id, path } => ops::path::readlink(self, out, id, path),
            Symlink {
                targetpath,
                linkpath,
                ..
            } => ops::path::symlink(self, targetpath, linkpath),
            PosixRename {
                oldpath, newpath, ..
            } => ops::path::posix_rename(self, oldpath, newpath),
            StatVfs { id, path } => ops::path::statvfs(self, out, id, path),
            FStatVfs { id, handle } => ops::file::fstatvfs(self, out, id, handle),
            Hardlink {
                oldpath, newpath, ..
            } => ops::path::hardlink(self, oldpath, newpath),
            Fsync { handle, .. } => ops::file::fsync(self, handle),
            LSetStat { path, attrs, .. } => ops::path::lsetstat(self, path, &attrs),
            Limits { id } => ops::info::limits(self, out, id),
            ExpandPath { id, path } => ops::info::expand_path(self, out, id, path),
            CopyData {
                read_from_handle,
                read_from_offset,
                read_data_length,
                write_to_handle,
                write_to_offset,
                ..
            } => ops::file::copy_data(
                self,
                read_from_handle,
                read_from_offset,
                read_data_length,
                write_to_handle,
                write_to_offset,
            ),
            HomeDirectory { id, username } => ops::info::home_directory(self, out, id, username),
            UsersGroupsById { id, uids, gids } => {
                ops::info::users_groups_by_id(self, out, id, uids, gids)
            }
            CheckFile {
                id,
                form,
                target,
                hash_algorithm_list,
                start_offset,
                length,
                block_size,
            } => ops::hash::check_file(
                self,
                out,
                id,
                form,
                target,
                ops::hash::Range {
                    algorithms: hash_algorithm_list,
                    start: start_offset,
                    length,
                    block_size,
                },
            ),
            CopyFile {
                source_path,
                destination_path,
                overwrite_destination,
                ..
            } => ops::file::copy_file(self, source_path, destination_path, overwrite_destination),
            UnknownExtended { name, .. } => {
                logit!(Error, "Unknown extended request \"{}\"", Bytes(name));
                Err(Status::OP_UNSUPPORTED)
            }
            Unknown { ptype, .. } => {
                logit!(Error, "Unknown message {}", ptype);
                Err(Status::OP_UNSUPPORTED)
            }
        }
    }

    fn send_status(&self, out: &mut Out, id: u32, status: Status) {
        logit!(Debug3, "request {}: sent status {}", id, status.code.0);
        // OpenSSH logs failures at INFO, and successes too once debugging is on.
        let routine = matches!(status.code, StatusCode::OK | StatusCode::EOF);
        if !routine || crate::logging::enabled(crate::logging::Level::Debug1) {
            logit!(Info, "sent status {}", status.code.text());
        }
        out.status(id, status.code.0, &status.message());
    }

    /// Whether `op` may be served, logging the decision as OpenSSH does.
    fn permitted(&self, op: Op) -> bool {
        let name = op.info().name;
        match self.config.refusal(op) {
            None => {
                if self.config.allowed.is_some() {
                    logit!(Debug2, "Permitting allowlisted {} request", name);
                }
                true
            }
            Some(Refusal::ReadOnly) => {
                logit!(Verbose, "Refusing {} request in read-only mode", name);
                false
            }
            Some(Refusal::Denied) => {
                logit!(Verbose, "Refusing denylisted {} request", name);
                false
            }
            Some(Refusal::NotAllowed) => {
                logit!(Verbose, "Refusing non-allowlisted {} request", name);
                false
            }
        }
    }

    /// The extensions VERSION advertises: every extension row the policy permits.
    fn advertised(&self) -> Vec<(&'static str, &'static str)> {
        REQUESTS
            .iter()
            .filter_map(|r| match r.carrier {
                Carrier::Extension { name, version } => Some((r.op, name, version)),
                Carrier::Packet(_) => None,
            })
            .filter(|&(op, name, _)| {
                let ok = self.permitted(op);
                if !ok {
                    logit!(
                        Debug2,
                        "compose_extension: refusing to advertise disallowed extension {}",
                        name
                    );
                }
                ok
            })
            .map(|(_, name, version)| (name, version))
            .collect()
    }

    /// Closes every handle still open (the session is over), logging each as OpenSSH
    /// does.
    pub fn close_all(&mut self) {
        let handles: Vec<_> = self.handles.drain().collect();
        for mut h in handles {
            ops::file::log_close(&h, "forced ");
            if let (Some(a), Object::File { .. }) = (&mut self.audit, &h.object) {
                let r = events::transfer(&h, &self.paths, &a.dirs, "session_end");
                a.add(r);
                events::count_transfer(a, h.pflags, h.bytes_read, h.bytes_written, true);
                a.totals.forced_closes += 1;
            }
            // The upload never completed: the target stays as it was.
            if let Some(up) = h.upload.take() {
                crate::upload::abandon(&self.paths, up);
            }
        }
    }

    /// Writes the audit records not yet written; an error must end the session.
    pub fn flush_audit(&mut self) -> Result<(), Errno> {
        match &mut self.audit {
            Some(a) => a.flush(),
            None => Ok(()),
        }
    }

    /// Bytes of audit records waiting to be written.
    pub fn audit_pending(&self) -> usize {
        self.audit.as_ref().map_or(0, Audit::pending)
    }

    /// The session is over (`reason`: "client closed", "error", "signal"): every
    /// handle still open gets its transfer record, then `session_end`, then all is
    /// written.
    pub fn end_audit(&mut self, reason: &'static str) -> Result<(), Errno> {
        self.close_all();
        let Some(a) = &mut self.audit else {
            return Ok(());
        };
        let t = &a.totals;
        let r = Record::new("session_end")
            .text("reason", reason)
            .u64("duration_ms", a.started.elapsed().as_millis() as u64)
            .u64("requests", t.requests)
            .u64("errors", t.errors)
            .u64("files_uploaded", t.files_uploaded)
            .u64("files_downloaded", t.files_downloaded)
            .u64("bytes_read", t.bytes_read)
            .u64("bytes_written", t.bytes_written)
            .u64("forced_closes", t.forced_closes);
        a.add(r);
        a.flush()
    }
}
