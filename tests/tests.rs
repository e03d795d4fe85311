//! Integration tests: the built `sftp-server` binary driven the way users drive it.
//!
//! One test crate (one link step); each module covers one way of reaching the server.
//! Set `SFTP_SERVER_BIN=/usr/lib/openssh/sftp-server` to run the same tests against
//! OpenSSH's server where the behaviour is meant to be identical.
//!
//! `props` (property tests of the wire format) uses the library in-process instead;
//! `fuzz_regressions` replays fuzz inputs, in-process or through the binary.

mod support;

mod admin;
mod audit;
mod batch;
mod confine;
mod diff;
mod ext;
mod faults;
mod fuzz_regressions;
mod hash;
mod interop;
mod manpage;
mod ncat;
mod package;
mod pipeline;
mod policy;
mod props;
mod proto;
mod recipes;
mod sshd;
mod storage;
