//! Differential tests (`diff_*`): the same request sequences go to OpenSSH's
//! sftp-server and to ours, each working in its own copy of one scratch tree; every
//! reply and the final trees must match, except for the deliberate differences listed
//! in `allowed`.
//!
//! - `ops`: requests with symbolic handles and copy-relative paths;
//! - `harness`: runs a sequence on both servers in lock-step, masks, compares;
//! - `allowed`: the list of deliberate differences;
//! - `fixture`: the scratch tree with awkward names;
//! - `tree`: exact copies of trees, snapshots to compare them;
//! - `scenarios`: scripted sequences for every request and error path;
//! - `random`: seeded random sequences (`SFTP_DIFF_SEED`, `SFTP_DIFF_REQUESTS`).

mod allowed;
mod fixture;
mod harness;
mod ops;
mod random;
mod scenarios;
mod tree;
