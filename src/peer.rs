//! Who is on the other end of the session, for the "session opened ... from \[ADDR\]"
//! line: SSH_CONNECTION as OpenSSH reads it; without it (ncat, socat, inetd, systemd
//! sockets) the peer of standard input, or ncat's NCAT_REMOTE_ADDR.

use nix::sys::socket::{
    AddressFamily, SockaddrLike, SockaddrStorage, getpeername, getsockopt, sockopt,
};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The client's address, as the session log lines show it. A SSH_CONNECTION without
/// a space is malformed: OpenSSH ends the session on it, so the raw value comes back
/// as the error.
pub fn client_address(stdin: BorrowedFd<'_>) -> Result<String, String> {
    if let Ok(conn) = std::env::var("SSH_CONNECTION") {
        // OpenSSH cuts at the first space (not at other white space).
        return match conn.split_once(' ') {
            Some((addr, _)) => Ok(addr.to_string()),
            None => Err(conn),
        };
    }
    Ok(from_socket(stdin))
}

fn from_socket(stdin: BorrowedFd<'_>) -> String {
    let peer = getpeername::<SockaddrStorage>(stdin.as_raw_fd()).ok();
    if let Some(ip) = peer.as_ref().and_then(ip_of) {
        return ip.to_string();
    }
    if let Some(addr) = std::env::var("NCAT_REMOTE_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return addr;
    }
    if peer.as_ref().and_then(|p| p.family()) == Some(AddressFamily::Unix)
        && let Ok(cred) = getsockopt(&stdin, sockopt::PeerCredentials)
    {
        return format!(
            "unix:pid={},uid={},gid={}",
            cred.pid(),
            cred.uid(),
            cred.gid()
        );
    }
    "UNKNOWN".to_string()
}

fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    let v6 = addr.as_sockaddr_in6()?.ip();
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}
