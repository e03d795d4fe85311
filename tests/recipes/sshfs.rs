//! "Mounting with sshfs": sshfs with `-o directport` on the server behind `ncat -lk`,
//! and on the server behind `ncat --ssl` through a local ncat that unwraps the TLS.
//! Files written, read, listed, renamed and removed through the mount, checked on the
//! served directory by content; unmounted with README's `fusermount3 -u`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{
    LIMIT, SEED, alive, children, daemon_line, eventually, fill_share, path_str, pids_running,
    recipe_commands, run_line, s, server_subs, share,
};
use crate::support::clients::Workspace;
use crate::support::content::{MIB, assert_file_content, pseudo_random};
use crate::support::procs::{Daemon, start_on_free_port, tcp_connectable};
use crate::support::testing_openssh;

/// Whether a file system is mounted at `dir` (given as the recipe gives it: absolute).
fn is_mounted(dir: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|l| l.split(' ').nth(1) == dir.to_str())
}

/// Guards a mount point while a recipe mounts it: on drop after a failure, a lazy
/// unmount, and the sshfs that daemonized itself for it (found by its command line,
/// as it is no child of ours) stopped by its id.
struct MountGuard {
    mnt: PathBuf,
}

impl MountGuard {
    fn sshfs_pids(&self) -> Vec<u32> {
        pids_running("sshfs", path_str(&self.mnt))
            .into_iter()
            .filter(|&p| alive(p))
            .collect()
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mnt)
                .status();
        }
        for pid in self.sshfs_pids() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
}

/// The placeholders of the sshfs recipes but the ports. OpenSSH's server, started in
/// the share with `-d`, is not confined to it: sshfs names the share by its path.
fn sshfs_subs(share: &Path, mnt: &Path) -> Vec<(String, String)> {
    let mut subs = Vec::new();
    if testing_openssh() {
        subs.push(s("127.0.0.1:/ ", format!("127.0.0.1:{} ", path_str(share))));
    }
    subs.extend(server_subs(share));
    subs.push(s("/mnt/share", path_str(mnt)));
    subs
}

fn with(subs: &[(String, String)], more: &[(&str, u16)]) -> Vec<(String, String)> {
    let mut all = subs.to_vec();
    all.extend(more.iter().map(|&(from, port)| s(from, port.to_string())));
    all
}

/// Mounts with README's sshfs line, works through the mount, unmounts with README's
/// fusermount3 line; checks sshfs is gone afterwards, and then the server processes
/// (`servers_of`'s children).
fn mount_work_unmount(
    ws: &Workspace,
    share: &Path,
    mnt: &Path,
    mount: &str,
    unmount: &str,
    servers_of: &[&Daemon],
) {
    let guard = MountGuard {
        mnt: mnt.to_path_buf(),
    };
    run_line(mount, &ws.ctl);
    assert!(
        is_mounted(mnt),
        "`{mount}` succeeded but nothing is mounted on {}",
        mnt.display()
    );
    let sshfs = guard.sshfs_pids();
    assert_eq!(sshfs.len(), 1, "one sshfs for {}: {sshfs:?}", mnt.display());

    work_through_mount(share, mnt);

    run_line(unmount, &ws.ctl);
    assert!(
        !is_mounted(mnt),
        "`{unmount}` left {} mounted",
        mnt.display()
    );
    assert!(
        eventually(LIMIT, || !alive(sshfs[0])),
        "sshfs (pid {}) still runs after `{unmount}`",
        sshfs[0]
    );
    // sshfs's connection closed: each server it had sees end of file and exits.
    for d in servers_of {
        assert!(
            eventually(LIMIT, || children(d.pid()).is_empty()),
            "processes started by pid {} outlived the mount: {:?}\n{}",
            d.pid(),
            children(d.pid()),
            d.log()
        );
    }
    drop(guard);
}

/// Reads, lists, writes, renames (onto a new name and over an existing file) and
/// removes through the mount, checking the served directory after each step.
fn work_through_mount(share: &Path, mnt: &Path) {
    let files = fill_share(share, SEED + 100);
    for (name, data) in &files {
        let back = fs::read(mnt.join(name))
            .unwrap_or_else(|e| panic!("read {name} through the mount: {e}"));
        assert!(
            back == *data,
            "{name} read through the mount differs from the share's"
        );
    }
    let listing = |dir: &Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(mnt), ["big.bin", "empty", "small.txt"]);

    let up = pseudo_random(SEED + 200, MIB + 3);
    fs::write(mnt.join("up.bin"), &up).expect("write through the mount");
    assert_file_content(&share.join("up.bin"), &up);
    fs::create_dir(mnt.join("sub")).expect("mkdir through the mount");
    fs::write(mnt.join("sub/inner.txt"), b"inner\n").expect("write in a new directory");
    assert_file_content(&share.join("sub/inner.txt"), b"inner\n");

    fs::rename(mnt.join("up.bin"), mnt.join("sub/moved.bin")).expect("rename through the mount");
    assert!(!share.join("up.bin").exists());
    assert_file_content(&share.join("sub/moved.bin"), &up);
    // Over an existing file: sshfs needs the server's posix-rename@openssh.com.
    fs::rename(mnt.join("small.txt"), mnt.join("sub/inner.txt")).expect("rename over a file");
    assert!(!share.join("small.txt").exists());
    assert_file_content(&share.join("sub/inner.txt"), &files[0].1);
    assert_eq!(listing(&mnt.join("sub")), ["inner.txt", "moved.bin"]);

    fs::remove_file(mnt.join("sub/moved.bin")).expect("rm through the mount");
    fs::remove_file(mnt.join("sub/inner.txt")).expect("rm through the mount");
    fs::remove_dir(mnt.join("sub")).expect("rmdir through the mount");
    assert_eq!(listing(share), ["big.bin", "empty"]);
    assert_eq!(listing(mnt), ["big.bin", "empty"]);
}

fn mount_point(ws: &Workspace) -> PathBuf {
    let mnt = ws.root().join("mnt");
    fs::create_dir(&mnt).expect("create mount point");
    mnt
}

#[test]
fn recipes_sshfs_direct() {
    let ws = Workspace::new("recipe-sshfs");
    let (share, mnt) = (share(&ws), mount_point(&ws));
    let subs = sshfs_subs(&share, &mnt);
    let (ncat, port) = start_on_free_port(
        "ncat",
        |port| {
            let [listen, ..] =
                recipe_commands::<3>("sshfs-direct", &with(&subs, &[("2222", port)]));
            daemon_line("ncat", &listen, &ws.ctl, &ws.ctl.join("ncat.log"))
        },
        |_, port| tcp_connectable(port),
    );
    let [_, mount, unmount] = recipe_commands::<3>("sshfs-direct", &with(&subs, &[("2222", port)]));
    mount_work_unmount(&ws, &share, &mnt, &mount, &unmount, &[&ncat]);
}

#[test]
fn recipes_sshfs_through_tls() {
    let ws = Workspace::new("recipe-sshfs-tls");
    let (share, mnt) = (share(&ws), mount_point(&ws));
    crate::ncat::make_certificate(&ws.ctl);
    let subs = sshfs_subs(&share, &mnt);
    // The TLS server first; the local port is not chosen yet (0 stands in for it).
    let (server, server_port) = start_on_free_port(
        "ncat --ssl",
        |port| {
            let [listen, ..] =
                recipe_commands::<4>("sshfs-tls", &with(&subs, &[("2222", port), ("2223", 0)]));
            daemon_line("ncat --ssl", &listen, &ws.ctl, &ws.ctl.join("server.log"))
        },
        |_, port| tcp_connectable(port),
    );
    let (unwrap, local_port) = start_on_free_port(
        "local ncat",
        |port| {
            let [_, listen, ..] = recipe_commands::<4>(
                "sshfs-tls",
                &with(&subs, &[("2222", server_port), ("2223", port)]),
            );
            daemon_line("local ncat", &listen, &ws.ctl, &ws.ctl.join("local.log"))
        },
        |_, port| tcp_connectable(port),
    );
    let [_, _, mount, unmount] = recipe_commands::<4>(
        "sshfs-tls",
        &with(&subs, &[("2222", server_port), ("2223", local_port)]),
    );
    mount_work_unmount(&ws, &share, &mnt, &mount, &unmount, &[&unwrap, &server]);
}
