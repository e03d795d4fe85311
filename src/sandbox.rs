//! The sandbox a session puts itself in once it is set up (`--sandbox`, on by default
//! with `--root`): no new privileges, no core dumps, and Landlock.
//!
//! * `PR_SET_NO_NEW_PRIVS`: nothing the process runs can gain privileges (set-user-ID
//!   files, file capabilities); also what lets an unprivileged process use Landlock.
//! * `PR_SET_DUMPABLE` 0 and `RLIMIT_CORE` 0: no core file holding file contents, and
//!   other processes of the same user cannot ptrace the server or read its memory.
//! * Landlock (Linux 5.13 and later): file access only beneath the root directory
//!   (beneath `/` without `--root`), read-only under `-R`; nothing may be executed and
//!   no device may be reached through ioctl anywhere. Reading the user and group
//!   databases and the time zone stays allowed, so long names keep showing names. A
//!   bug that let a request name a file outside the root would still meet the kernel's
//!   refusal. Connecting to Unix sockets by path (syslog's `/dev/log`, name service
//!   daemons) is not restricted; abstract Unix sockets and signals to other processes
//!   are, where the kernel can (Linux 6.12).
//!
//! Each part degrades on its own: a kernel without Landlock (or with only its first
//! version, which cannot allow renames between directories, for a writable session)
//! leaves the session confined by path resolution alone, and says so in the log.

use crate::logit;
use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::os::fd::BorrowedFd;

/// The Landlock version whose rights the server asks for. Its file-system rights are
/// those of Linux 6.10; later versions add the restriction of Unix socket connections,
/// which would cut the server off from syslog.
const LANDLOCK_ABI: ABI = ABI::V8;

/// Files outside the root the server still reads: the user and group databases of
/// the `files` name service (for long names and users-groups-by-id), its
/// configuration, and the local time zone.
const READABLE: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
];

/// How far Landlock got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landlock {
    /// Every right asked for is enforced.
    Full,
    /// Enforced, with the rights this kernel knows.
    Partial,
    /// Not enforced, and why.
    Off(String),
}

/// What the sandbox achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub no_new_privs: bool,
    pub not_dumpable: bool,
    pub no_core: bool,
    pub landlock: Landlock,
}

/// Sandboxes the calling thread (the server has only one) and logs what it did:
/// file access beneath `root` (an open directory; `/` when `None`), read-only when
/// `read_only`.
pub fn apply(root: Option<BorrowedFd<'_>>, read_only: bool) -> Report {
    // Look the server's own group up once while /etc is still readable, so the name
    // service has loaded its modules before Landlock applies.
    let _ = nix::unistd::Group::from_gid(nix::unistd::getgid());
    let no_new_privs = report("no_new_privs", nix::sys::prctl::set_no_new_privs());
    let not_dumpable = report("set_dumpable", nix::sys::prctl::set_dumpable(false));
    let no_core = report(
        "setrlimit RLIMIT_CORE",
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0),
    );
    let landlock = match landlock(root, read_only) {
        Ok(RulesetStatus::FullyEnforced) => Landlock::Full,
        Ok(RulesetStatus::PartiallyEnforced) => Landlock::Partial,
        Ok(RulesetStatus::NotEnforced) => {
            Landlock::Off("Landlock is not supported or not enabled by this kernel".into())
        }
        Err(e) => Landlock::Off(e.to_string()),
    };
    let beneath = if root.is_some() { "the root" } else { "/" };
    let access = if read_only { "read-only" } else { "read-write" };
    match &landlock {
        Landlock::Full | Landlock::Partial => logit!(
            Verbose,
            "sandbox: no new privileges, no core dumps, Landlock {} enforced: {} access beneath {}",
            if landlock == Landlock::Full {
                "fully"
            } else {
                "partially"
            },
            access,
            beneath
        ),
        // Asked for and not there: the default level shows it.
        Landlock::Off(why) => logit!(
            Error,
            "sandbox: Landlock not enforced ({}); no new privileges and no core dumps only",
            why
        ),
    }
    Report {
        no_new_privs,
        not_dumpable,
        no_core,
        landlock,
    }
}

impl Report {
    /// Whether every part was applied (Landlock with the rights this kernel knows).
    pub fn complete(&self) -> bool {
        self.no_new_privs
            && self.not_dumpable
            && self.no_core
            && matches!(self.landlock, Landlock::Full | Landlock::Partial)
    }
}

fn report(what: &str, r: nix::Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            logit!(Error, "sandbox: {}: {}", what, crate::status::strerror(e));
            false
        }
    }
}

fn landlock(
    root: Option<BorrowedFd<'_>>,
    read_only: bool,
) -> Result<RulesetStatus, Box<dyn std::error::Error>> {
    let handled = AccessFs::from_all(LANDLOCK_ABI);
    let allowed: BitFlags<AccessFs> = if read_only {
        AccessFs::ReadFile | AccessFs::ReadDir
    } else {
        handled & !(AccessFs::Execute | AccessFs::IoctlDev)
    };
    let mut ruleset = Ruleset::default();
    if !read_only {
        // Landlock's first version refuses every rename and link between
        // directories: a writable session would break, so it is not used then.
        ruleset = ruleset
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::Refer)?
            .set_compatibility(CompatLevel::BestEffort);
    }
    let mut created = ruleset
        .handle_access(handled)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)?
        .create()?;
    created = match root {
        Some(fd) => created.add_rule(PathBeneath::new(fd, allowed))?,
        None => created.add_rule(PathBeneath::new(PathFd::new("/")?, allowed))?,
    };
    if root.is_some() {
        for file in READABLE {
            if let Ok(fd) = PathFd::new(file) {
                created = created.add_rule(PathBeneath::new(fd, AccessFs::ReadFile))?;
            }
        }
    }
    Ok(created.restrict_self()?.ruleset)
}
