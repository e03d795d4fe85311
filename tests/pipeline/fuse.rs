//! READ on a FUSE file system whose files change behind the kernel's cache: sshfs
//! mounting OpenSSH's server (reached through `ncat -e`), the file then growing on
//! the other side of the mount. The kernel still caches the old size; a READ must
//! return what read(2) returns, which asks the file system, never a false end of file.

use super::modes;
use crate::support::clients::{Batch, SftpClient, sftp_quote};
use crate::support::content::{assert_file_content, pseudo_random, write_random_file};
use crate::support::procs::{Daemon, start_on_free_port, tcp_connectable};
use crate::support::{Scratch, server_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OPENSSH_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// An sshfs mount of `back` at `mnt`, served by OpenSSH's server behind ncat; both
/// stopped (and the mount undone) on drop.
pub struct SshfsMount {
    mnt: PathBuf,
    sshfs: Daemon,
    _ncat: Daemon,
}

impl SshfsMount {
    pub fn new(back: &Path, mnt: &Path, logs: &Path) -> SshfsMount {
        let exec = format!("{OPENSSH_SERVER} -d {}", back.display());
        assert!(!exec.contains("  "), "ncat -e splits on spaces");
        let (ncat, port) = start_on_free_port(
            "ncat",
            |port| {
                Daemon::spawn(
                    "ncat",
                    Command::new("ncat").args(["-lk", "-e", &exec, "127.0.0.1", &port.to_string()]),
                    &logs.join("ncat.log"),
                )
            },
            |_, port| tcp_connectable(port),
        );
        let mut sshfs = Daemon::spawn(
            "sshfs",
            Command::new("sshfs")
                .arg("-f")
                .arg("-o")
                .arg(format!("directport={port}"))
                // No attribute cache of sshfs's own: the kernel's is the one that
                // goes stale.
                .arg("-o")
                .arg("dir_cache=no")
                .arg(format!("127.0.0.1:{}", back.display()))
                .arg(mnt),
            &logs.join("sshfs.log"),
        );
        let mounted = sshfs.wait_ready(Duration::from_secs(20), |_| is_mounted(mnt));
        assert!(
            mounted,
            "sshfs did not mount {}\n{}",
            mnt.display(),
            sshfs.log()
        );
        SshfsMount {
            mnt: mnt.to_path_buf(),
            sshfs,
            _ncat: ncat,
        }
    }
}

impl Drop for SshfsMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(&self.mnt)
            .status();
        self.sshfs.stop();
    }
}

/// Whether a file system is mounted at `dir`.
fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap_or("")))
}

/// `back/f.bin` (300,000 bytes) in `dir`, mounted at `mnt` through sshfs, its size
/// (and with `cache_pages` its pages) cached by the kernel, then grown by 100,000
/// bytes on the far side and left until the kernel's attribute timeout (1 s by
/// default) has passed: read(2) then asks the file system for the size again, while
/// the page cache still ends at the old size. The mount and the whole content.
fn grown_behind_the_mount(dir: &Path, seed: u64, cache_pages: bool) -> (SshfsMount, Vec<u8>) {
    let (back, mnt) = (dir.join("back"), dir.join("mnt"));
    for d in [&back, &mnt] {
        std::fs::create_dir(d).unwrap();
    }
    let mut content = write_random_file(&back.join("f.bin"), seed, 300_000);
    let mount = SshfsMount::new(&back, &mnt, dir);
    assert_eq!(std::fs::metadata(mnt.join("f.bin")).unwrap().len(), 300_000);
    if cache_pages {
        assert_eq!(std::fs::read(mnt.join("f.bin")).unwrap().len(), 300_000);
    }
    let more = pseudo_random(seed + 1, 100_000);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(back.join("f.bin"))
        .unwrap();
    std::io::Write::write_all(&mut f, &more).unwrap();
    content.extend_from_slice(&more);
    std::thread::sleep(Duration::from_millis(1500));
    (mount, content)
}

/// `sftp -D` with the server under test downloads a file that grew behind the FUSE
/// mount's cached size: all of it arrives.
#[test]
fn pipeline_fuse_file_grown_behind_the_cache_downloads_whole() {
    for args in modes() {
        let dir = Scratch::new("pipe-fuse-grow");
        let (mount, content) = grown_behind_the_mount(dir.path(), 11, false);
        let (mnt, local) = (dir.path().join("mnt"), dir.path().join("local"));
        std::fs::create_dir(&local).unwrap();
        let mut server = sftp_quote(&server_bin());
        for a in &args {
            server.push(' ');
            server.push_str(a);
        }
        SftpClient::new(&mnt, dir.path())
            .arg("-D")
            .arg(server)
            .run(&Batch::new().cmd(format!("get f.bin {}", sftp_quote(&local.join("f.bin")))))
            .ok();
        assert_file_content(&local.join("f.bin"), &content);
        drop(mount);
    }
}

/// The same with the raw client, which opens and reads without asking for the size
/// first (as sshfs and rclone do): READs past the cached size return the new bytes.
#[test]
fn pipeline_fuse_reads_past_the_cached_size() {
    for args in modes() {
        let dir = Scratch::new("pipe-fuse-raw");
        let (mount, content) = grown_behind_the_mount(dir.path(), 13, true);
        let mnt = dir.path().join("mnt");
        let mut s = super::start(&mnt, &args);
        let h = s.handle(crate::support::raw::Request::Open {
            path: b"f.bin",
            pflags: crate::support::raw::SSH_FXF_READ,
            attrs: crate::support::raw::Attrs::none(),
        });
        let mut got = Vec::new();
        loop {
            match s.call(crate::support::raw::Request::Read {
                handle: &h,
                offset: got.len() as u64,
                len: 32768,
            }) {
                crate::support::raw::Reply::Data { data, .. } => got.extend_from_slice(&data),
                other => {
                    crate::support::status::assert_status(&other, crate::support::raw::SSH_FX_EOF);
                    break;
                }
            }
        }
        crate::support::content::assert_same_bytes(&got, &content, "READs over FUSE");
        s.close(&h);
        s.finish();
        drop(mount);
    }
}
