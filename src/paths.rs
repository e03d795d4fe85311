//! Where a client path becomes what a system call acts on. Every operation on a path
//! asks [`Paths`] for a [`Target`] (a directory descriptor and a path relative to it)
//! and calls the `*at` system call on it, so a confinement mode can be added here and
//! nowhere else. Paths stay bytes all the way: names need not be UTF-8.

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, readlinkat};
use nix::sys::stat::{SFlag, fstatat};
use std::borrow::Cow;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// How many symbolic links REALPATH follows before it gives up (ELOOP).
const MAX_SYMLINKS: usize = 32;

/// A path as a system call takes it: relative to `dir`.
pub struct Target<'a> {
    dir: Option<OwnedFd>,
    path: Cow<'a, [u8]>,
}

impl Target<'_> {
    /// The directory `path` is relative to.
    pub fn dir(&self) -> BorrowedFd<'_> {
        match &self.dir {
            Some(fd) => fd.as_fd(),
            None => AT_FDCWD,
        }
    }

    pub fn path(&self) -> &[u8] {
        &self.path
    }
}

/// Turns client paths into targets. Today the client sees the server's own file
/// system, relative paths starting at the working directory, as with OpenSSH.
#[derive(Debug, Default)]
pub struct Paths {}

impl Paths {
    pub fn new() -> Paths {
        Paths {}
    }

    /// The target of a client path.
    pub fn resolve<'a>(&self, client: &'a [u8]) -> Result<Target<'a>, Errno> {
        Ok(Target {
            dir: None,
            path: Cow::Borrowed(client),
        })
    }

    /// REALPATH: the absolute, symlink-free form of `client`, with `.`, `..` and
    /// repeated slashes removed. The last component may be missing (a client asks
    /// where a file it is about to create will be); any other missing component is an
    /// error.
    pub fn canonical(&self, client: &[u8]) -> Result<Vec<u8>, Errno> {
        let mut resolved: Vec<u8> = if client.starts_with(b"/") {
            b"/".to_vec()
        } else {
            nix::unistd::getcwd()?.as_os_str().as_bytes().to_vec()
        };
        // What is left to resolve; symlink targets are spliced in front of it.
        let mut left: Vec<u8> = client.to_vec();
        let mut links = 0;
        while !left.is_empty() {
            let (component, rest) = match left.iter().position(|&b| b == b'/') {
                Some(i) => (left[..i].to_vec(), left[i + 1..].to_vec()),
                None => (std::mem::take(&mut left), Vec::new()),
            };
            let last = !left.contains(&b'/');
            left = rest;
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    pop_component(&mut resolved);
                    continue;
                }
                _ => {}
            }
            let before = resolved.len();
            if !resolved.ends_with(b"/") {
                resolved.push(b'/');
            }
            resolved.extend_from_slice(&component);
            let st = match fstatat(AT_FDCWD, resolved.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) if last => return Ok(resolved),
                Err(e) => return Err(e),
            };
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP);
            }
            let target = readlinkat(AT_FDCWD, resolved.as_slice())?;
            let target = target.as_bytes();
            resolved.truncate(before);
            if target.starts_with(b"/") {
                resolved = b"/".to_vec();
            }
            if resolved.is_empty() {
                resolved.push(b'/');
            }
            let mut spliced = target.to_vec();
            if !last {
                if !spliced.ends_with(b"/") {
                    spliced.push(b'/');
                }
                spliced.extend_from_slice(&left);
            }
            left = spliced;
        }
        Ok(resolved)
    }
}

/// Removes the last component of an absolute path, never going above `/`.
fn pop_component(path: &mut Vec<u8>) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => path.truncate(1),
        Some(i) => path.truncate(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_cases() {
        let p = Paths::new();
        assert_eq!(p.canonical(b"/").unwrap(), b"/");
        assert_eq!(p.canonical(b"//").unwrap(), b"/");
        assert_eq!(p.canonical(b"/..").unwrap(), b"/");
        assert_eq!(p.canonical(b"/tmp/./../tmp//").unwrap(), b"/tmp");
        assert_eq!(
            p.canonical(b"/tmp/no-such-name").unwrap(),
            b"/tmp/no-such-name"
        );
        assert_eq!(p.canonical(b"/no-such-dir/x"), Err(Errno::ENOENT));
        assert_eq!(p.canonical(b"/no-such-dir/"), Err(Errno::ENOENT));
        assert_eq!(p.canonical(b"/no-such-dir/.."), Err(Errno::ENOENT));
    }
}
