//! sftp-server: a drop-in replacement for OpenSSH's sftp-server(8).
//!
//! A single-threaded server: [`event_loop`] reads length-prefixed SFTP packets from
//! stdin, [`server::Session`] decodes each ([`wire`]), checks it against the policy
//! ([`config`], [`requests`]) and hands it to one operation in [`ops`], which works
//! on paths through [`paths`] and on open files through [`handles`]; replies are
//! encoded into one buffer and written to stdout in one call per batch. With
//! `--root`, [`paths`] confines every path to one directory and [`sandbox`] has the
//! kernel enforce it.

pub mod audit;
pub mod cli;
pub mod config;
pub mod event_loop;
pub mod handles;
pub mod logging;
pub mod longname;
pub mod ops;
pub mod output;
pub mod paths;
pub mod peer;
pub mod requests;
pub mod sandbox;
pub mod server;
pub mod signals;
pub mod status;
pub mod trace;
pub mod transport;
pub mod upload;
pub mod wire;
