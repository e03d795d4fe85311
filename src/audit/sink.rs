//! Where audit records go: a file appended to, a descriptor inherited from the
//! parent, or systemd-journald's socket. Each is opened or connected once, at start.

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, send, sendmsg,
    socket,
};
use nix::sys::stat::{Mode, SFlag, fstat};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// journald's socket for native-protocol records.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// What `--audit-log` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file, appended to (created 0600 if missing).
    Path(String),
    /// `fd:N`: a descriptor the parent opened.
    Fd(i32),
    /// `journal`, or `journal:SOCKET` for a journald listening elsewhere.
    Journal(String),
}

impl Dest {
    pub fn parse(s: &str) -> Result<Dest, String> {
        if s == "journal" {
            return Ok(Dest::Journal(JOURNAL_SOCKET.to_string()));
        }
        if let Some(socket) = s.strip_prefix("journal:") {
            return Ok(Dest::Journal(socket.to_string()));
        }
        if let Some(n) = s.strip_prefix("fd:") {
            return match n.parse::<i32>() {
                Ok(n) if n >= 0 => Ok(Dest::Fd(n)),
                _ => Err(format!("Invalid audit log descriptor \"{s}\"")),
            };
        }
        match s.is_empty() {
            true => Err("Invalid audit log \"\"".to_string()),
            false => Ok(Dest::Path(s.to_string())),
        }
    }
}

/// An open audit sink.
pub struct Sink {
    fd: OwnedFd,
    journal: bool,
}

impl Sink {
    /// Opens `dest`; the error is the line to log before refusing to serve.
    pub fn open(dest: &Dest) -> Result<Sink, String> {
        match dest {
            Dest::Path(p) => {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_APPEND
                    | OFlag::O_CREAT
                    | OFlag::O_CLOEXEC
                    | OFlag::O_NOFOLLOW;
                let fd = open(p.as_str(), flags, Mode::from_bits_truncate(0o600))
                    .map_err(|e| format!("audit log \"{p}\": {}", crate::status::strerror(e)))?;
                Ok(Sink { fd, journal: false })
            }
            Dest::Fd(n) => {
                let flags = fcntl_flags(*n)
                    .map_err(|e| format!("audit log fd:{n}: {}", crate::status::strerror(e)))?;
                if flags & OFlag::O_ACCMODE == OFlag::O_RDONLY {
                    return Err(format!("audit log fd:{n}: not open for writing"));
                }
                // SAFETY: the descriptor is open (fcntl answered) and inherited for
                // this use alone; from here the sink owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(*n) };
                let regular = fstat(fd.as_fd())
                    .map(|st| {
                        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
                    })
                    .unwrap_or(false);
                // Without O_APPEND, records of concurrent sessions would overwrite
                // each other, and the session could seek back over its own.
                if regular && !flags.contains(OFlag::O_APPEND) {
                    std::mem::forget(fd);
                    return Err(format!(
                        "audit log fd:{n}: a regular file not opened for appending"
                    ));
                }
                let _ = fcntl(
                    fd.as_fd(),
                    FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
                Ok(Sink { fd, journal: false })
            }
            Dest::Journal(path) => {
                let fd = socket(
                    AddressFamily::Unix,
                    SockType::Datagram,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .map_err(|e| format!("audit log journal: {}", crate::status::strerror(e)))?;
                // Connected once: under Landlock the socket's path could not be
                // named again.
                let addr = UnixAddr::new(path.as_str())
                    .map_err(|e| format!("audit log journal: {}", crate::status::strerror(e)))?;
                connect(fd.as_raw_fd(), &addr).map_err(|e| {
                    format!("audit log journal {path}: {}", crate::status::strerror(e))
                })?;
                Ok(Sink { fd, journal: true })
            }
        }
    }

    pub fn is_journal(&self) -> bool {
        self.journal
    }

    /// Appends `lines` (whole records) to a file in one write(2), so that sessions
    /// appending to one file never interleave lines.
    pub fn append(&mut self, lines: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < lines.len() {
            match nix::unistd::write(self.fd.as_fd(), &lines[done..]) {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends records to the journal, one datagram each.
    pub fn send(&mut self, datagrams: &[Vec<u8>]) -> Result<(), Errno> {
        datagrams.iter().try_for_each(|d| self.datagram(d))
    }

    /// One record to journald; one too large for a datagram goes as a sealed memfd,
    /// as its protocol provides.
    fn datagram(&self, record: &[u8]) -> Result<(), Errno> {
        loop {
            match send(self.fd.as_raw_fd(), record, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::EMSGSIZE | Errno::ENOBUFS) => return self.memfd(record),
                Err(e) => return Err(e),
            }
        }
    }

    fn memfd(&self, record: &[u8]) -> Result<(), Errno> {
        let flags = nix::libc::MFD_ALLOW_SEALING | nix::libc::MFD_CLOEXEC;
        // SAFETY: the name is a NUL-terminated literal; the result is checked.
        let raw = unsafe { nix::libc::memfd_create(c"audit-record".as_ptr(), flags) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        let mem = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut done = 0;
        while done < record.len() {
            done += nix::unistd::write(mem.as_fd(), &record[done..])?;
        }
        let seals = nix::libc::F_SEAL_SHRINK
            | nix::libc::F_SEAL_GROW
            | nix::libc::F_SEAL_WRITE
            | nix::libc::F_SEAL_SEAL;
        // SAFETY: F_ADD_SEALS takes an int argument and touches no memory of ours.
        if unsafe { nix::libc::fcntl(mem.as_raw_fd(), nix::libc::F_ADD_SEALS, seals) } < 0 {
            return Err(Errno::last());
        }
        let fds = [mem.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<UnixAddr>(self.fd.as_raw_fd(), &[], &cmsg, MsgFlags::empty(), None)?;
        Ok(())
    }
}

fn fcntl_flags(fd: i32) -> Result<OFlag, Errno> {
    // SAFETY: F_GETFL reads the flags of a descriptor number; a closed one is EBADF.
    let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFL) };
    match flags {
        -1 => Err(Errno::last()),
        f => Ok(OFlag::from_bits_truncate(f)),
    }
}
