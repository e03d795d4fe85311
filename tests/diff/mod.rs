//! Differential tests (`diff_*`): the same request sequences go to OpenSSH's
//! sftp-server (`/usr/lib/openssh/sftp-server`) and to ours, each working in its own
//! copy of one scratch tree; every reply and the final trees must match, except for the
//! deliberate differences listed in `allowed`.
//!
//! - `ops`: requests with symbolic handles and copy-relative paths;
//! - `harness`: runs a sequence on both servers in lock-step, masks, compares;
//! - `allowed`: the list of deliberate differences;
//! - `fixture`: the scratch tree with awkward names;
//! - `tree`: exact copies of trees, snapshots to compare them;
//! - `scenarios`: scripted sequences for every request and error path;
//! - `random`: seeded random sequences.
//!
//! Environment:
//!
//! - `SFTP_DIFF_SEED=<n>` (with `SFTP_DIFF_REQUESTS=<count>`, `SFTP_DIFF_SEEDS=<k>`):
//!   `diff_random_replay` runs seeds n..n+k for count requests each;
//! - `SFTP_DIFF_KEEP_GOING=1`: a random run lists every difference, not only the first;
//! - `SFTP_DIFF_VERBOSE=1`: every step and its outcome as the run goes;
//! - `SFTP_SERVER_BIN=/usr/lib/openssh/sftp-server`: OpenSSH against itself, which
//!   checks that the harness sees no difference where there is none.

mod allowed;
mod fixture;
mod harness;
mod ops;
mod random;
mod scenarios;
mod tree;
