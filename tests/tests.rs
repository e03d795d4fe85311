//! Integration tests: the built `sftp-server` binary driven the way users drive it.
//!
//! One test crate (one link step); each module covers one way of reaching the server.
//! Set `SFTP_SERVER_BIN=/usr/lib/openssh/sftp-server` to run the same tests against
//! OpenSSH's server where the behaviour is meant to be identical.

mod support;

mod batch;
mod diff;
mod manpage;
mod ncat;
mod proto;
mod sshd;
