//! Validated settings of a session, built from the command line.

use crate::requests::{Op, REQUESTS};

/// A set of requests from the request table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSet(u64);

impl OpSet {
    pub const fn empty() -> OpSet {
        OpSet(0)
    }

    /// The requests named in a comma-separated `-p`/`-P` list; names this server does
    /// not know are ignored, as OpenSSH ignores them.
    pub fn from_list(list: &str) -> OpSet {
        let mut set = OpSet::empty();
        for r in REQUESTS
            .iter()
            .filter(|r| list.split(',').any(|n| n == r.name))
        {
            set.insert(r.op);
        }
        set
    }

    pub fn insert(&mut self, op: Op) {
        self.0 |= 1 << op as u32;
    }

    pub fn contains(&self, op: Op) -> bool {
        self.0 & (1 << op as u32) != 0
    }
}

/// What the session may do.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-R`: refuse every request that writes.
    pub read_only: bool,
    /// `-P`: requests refused.
    pub denied: Option<OpSet>,
    /// `-p`: when set, only these requests are served.
    pub allowed: Option<OpSet>,
    /// Open handles allowed at once (below RLIMIT_NOFILE).
    pub max_handles: usize,
    /// `--zero-copy-reads`: large READ replies spliced from the page cache.
    pub zero_copy_reads: bool,
    /// `-m`: the mode of every file OPEN creates and every directory MKDIR creates,
    /// whatever the client asks and whatever the umask.
    pub force_mode: Option<u32>,
    /// `--force-mode-on-setstat`: a permissions change by SETSTAT, FSETSTAT or
    /// lsetstat sets the `-m` mode instead of the client's.
    pub force_mode_on_setstat: bool,
    /// `--atomic-uploads`: an OPEN that writes and truncates writes a hidden file
    /// that replaces the target when the client's CLOSE succeeds.
    pub atomic_uploads: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read_only: false,
            denied: None,
            allowed: None,
            max_handles: default_max_handles(false),
            zero_copy_reads: false,
            force_mode: None,
            force_mode_on_setstat: false,
            atomic_uploads: false,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ReadOnly,
    Denied,
    NotAllowed,
}

impl Config {
    /// Why `op` may not be served, checked in OpenSSH's order: `-R`, `-P`, `-p`.
    pub fn refusal(&self, op: Op) -> Option<Refusal> {
        if self.read_only && op.info().writes {
            Some(Refusal::ReadOnly)
        } else if self.denied.is_some_and(|d| d.contains(op)) {
            Some(Refusal::Denied)
        } else if self.allowed.is_some_and(|a| !a.contains(op)) {
            Some(Refusal::NotAllowed)
        } else {
            None
        }
    }

    pub fn permits(&self, op: Op) -> bool {
        self.refusal(op).is_none()
    }

    /// The mode a new file or directory is created with when the client asks for
    /// `requested`: the one decision OPEN, MKDIR and copy-file share. With `-m` it is
    /// that mode (the umask is 0 then, so it is exact).
    pub fn creation_mode(&self, requested: u32) -> u32 {
        self.force_mode.unwrap_or(requested)
    }

    /// The permissions a SETSTAT, FSETSTAT or lsetstat applies when the client asks
    /// for `requested`.
    pub fn setstat_mode(&self, requested: u32) -> u32 {
        match (self.force_mode, self.force_mode_on_setstat) {
            (Some(mode), true) => mode,
            _ => requested,
        }
    }
}

/// File descriptors kept out of the handle budget: stdin, stdout, stderr, syslog,
/// the READ pipe's two ends, and a few for operations that open a file for a moment
/// (setstat's truncate, a copy, a directory listing being opened).
const RESERVED_FDS: u64 = 8;
/// More kept out with `--root`: the root, the kept parent directory, and the
/// descriptors a confined request resolves its paths with.
const RESERVED_CONFINED_FDS: u64 = 4;

/// The handle cap: the soft RLIMIT_NOFILE less the reserved descriptors.
pub fn default_max_handles(confined: bool) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let reserved = RESERVED_FDS + if confined { RESERVED_CONFINED_FDS } else { 0 };
    soft.saturating_sub(reserved).clamp(1, 1 << 20) as usize
}
