//! A raw-client session with one server: the request helpers the protocol, extension,
//! fault and confinement tests share. Each module wraps it in its own session type
//! (reaching it through `deref_to_session!`, or by delegating) to add its own start-up
//! and specialised checks.

use super::raw::*;
use super::status::*;
use super::{Server, wait_bounded};
use std::fs;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

/// A server and the raw client talking to it.
pub struct Session {
    pub c: Client,
    pub server: Server,
    /// The extensions VERSION advertised (empty until `init`).
    pub extensions: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Session {
    /// A client on `server`'s socket that has sent nothing yet.
    pub fn raw(server: Server) -> Session {
        let c = Client::new(server.sock.try_clone().expect("dup socket"));
        Session {
            c,
            server,
            extensions: Vec::new(),
        }
    }

    /// A client on `server`'s socket past INIT/VERSION (version 3 expected).
    pub fn init(server: Server) -> Session {
        let mut s = Session::raw(server);
        s.handshake();
        s
    }

    /// Sends INIT, expects VERSION 3 and keeps the extensions it advertises.
    #[track_caller]
    pub fn handshake(&mut self) {
        self.extensions = match self.c.init() {
            Reply::Version {
                version: 3,
                extensions,
            } => extensions,
            other => panic!("expected VERSION 3, got {other:?}"),
        };
    }

    /// True when VERSION advertised the extension `name`.
    pub fn advertises(&self, name: &str) -> bool {
        self.extensions.iter().any(|(n, _)| n == name.as_bytes())
    }

    pub fn pid(&self) -> u32 {
        self.server.child.id()
    }

    pub fn call(&mut self, req: Request) -> Reply {
        self.c.call(&req)
    }

    /// Sends the extension request `name` with `data` and returns the reply.
    pub fn ext(&mut self, name: &str, data: &[u8]) -> Reply {
        self.call(Request::Extended {
            name: name.as_bytes(),
            data,
        })
    }

    #[track_caller]
    pub fn status(&mut self, req: Request, code: u32) {
        let r = self.call(req);
        assert_status(&r, code);
    }

    #[track_caller]
    pub fn ok(&mut self, req: Request) {
        self.status(req, SSH_FX_OK);
    }

    #[track_caller]
    pub fn close(&mut self, handle: &[u8]) {
        self.ok(Request::Close { handle });
    }

    #[track_caller]
    pub fn os_failure(&mut self, req: Request, os_text: &str) {
        let r = self.call(req);
        assert_os_failure(&r, os_text);
    }

    #[track_caller]
    pub fn handle(&mut self, req: Request) -> Vec<u8> {
        match self.call(req) {
            Reply::Handle { handle, .. } => handle,
            other => panic!("expected HANDLE, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn data(&mut self, req: Request) -> Vec<u8> {
        match self.call(req) {
            Reply::Data { data, .. } => data,
            other => panic!("expected DATA, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn read(&mut self, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
        self.data(Request::Read {
            handle,
            offset,
            len,
        })
    }

    #[track_caller]
    pub fn write(&mut self, handle: &[u8], offset: u64, data: &[u8]) {
        self.ok(Request::Write {
            handle,
            offset,
            data,
        });
    }

    #[track_caller]
    pub fn attrs(&mut self, req: Request) -> Attrs {
        match self.call(req) {
            Reply::Attrs { attrs, .. } => attrs,
            other => panic!("expected ATTRS, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn names(&mut self, req: Request) -> Vec<NameEntry> {
        match self.call(req) {
            Reply::Name { entries, .. } => entries,
            other => panic!("expected NAME, got {other:?}"),
        }
    }

    /// Closes our end and returns the server's exit status (bounded wait).
    pub fn finish(self) -> ExitStatus {
        self.server.finish()
    }

    /// Waits (at most `limit`) for the server to exit by itself, our end still open.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_bounded(&mut self.server.child, limit)
    }
}

/// The canonical absolute path of `name` in `dir` (`dir` itself for ""), as bytes.
pub fn abs_in(dir: &Path, name: &str) -> Vec<u8> {
    let base = fs::canonicalize(dir).unwrap();
    if name.is_empty() {
        bytes_of(&base)
    } else {
        bytes_of(&base.join(name))
    }
}

/// Implements `Deref` and `DerefMut` from `$wrapper` to the `Session` in its field
/// `$field`, so a module's own session type has the shared helpers besides its own.
macro_rules! deref_to_session {
    ($wrapper:ty, $field:ident) => {
        impl std::ops::Deref for $wrapper {
            type Target = $crate::support::session::Session;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }

        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.$field
            }
        }
    };
}
pub(crate) use deref_to_session;
