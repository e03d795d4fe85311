//! What the super-server recipes that start the server as a user of their own (xinetd,
//! systemd) have to show: a read-only share (`-R`) served as that user, not as the
//! super-server's root, one server per connection.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{LIMIT, children, eventually, fill_share, share, text};
use crate::support::clients::Workspace;
use crate::support::content::assert_file_content;
use crate::support::procs::{Finished, run_bounded};

/// The share (`/srv/share`), readable by anyone but for `secret`, which only root may
/// read; and the files anyone may read.
pub fn share_with_a_secret(ws: &Workspace, seed: u64) -> (PathBuf, Vec<(String, Vec<u8>)>) {
    let share = share(ws);
    let files = fill_share(&share, seed);
    for dir in [ws.root(), share.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(share.join("secret"), b"root only\n").unwrap();
    fs::set_permissions(share.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    (share, files)
}

/// Through `sftp -D "ncat 127.0.0.1 PORT"`: the listing and every file read back by
/// content; an upload refused (`-R`) and `secret` refused ("Permission denied": the
/// server runs as `user`); and, once the connections are closed, no server left
/// among the children of `listener`.
pub fn check_served(
    ws: &Workspace,
    port: u16,
    share: &Path,
    files: &[(String, Vec<u8>)],
    user: &str,
    listener: u32,
) {
    let sftp = |batch: &[&str]| -> Finished {
        let file = ws.ctl.join("batch");
        fs::write(&file, batch.join("\n") + "\n").unwrap();
        let mut cmd = Command::new("sftp");
        cmd.arg("-b")
            .arg(&file)
            .arg("-D")
            .arg(format!("ncat 127.0.0.1 {port}"))
            .current_dir(&ws.local)
            .env("LC_ALL", "C");
        run_bounded(&mut cmd, LIMIT)
    };
    let mut batch = vec!["ls -1".to_string()];
    batch.extend(files.iter().map(|(name, _)| format!("get {name}")));
    let f = sftp(&batch.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(f.status.success(), "{}", text(&f));
    let out = String::from_utf8_lossy(&f.stdout);
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "sftp> ls -1")
        .skip(1)
        .take_while(|l| !l.starts_with("sftp> "))
        .collect();
    let mut want: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    want.push("secret");
    want.sort();
    assert_eq!(listed, want, "{}", text(&f));
    for (name, data) in files {
        assert_file_content(&ws.local.join(name), data);
    }

    fs::write(ws.local.join("up.txt"), b"up\n").unwrap();
    let f = sftp(&["put up.txt"]);
    assert!(!f.status.success(), "put on a -R share\n{}", text(&f));
    assert!(!share.join("up.txt").exists());
    let f = sftp(&["get secret"]);
    assert!(
        !f.status.success() && String::from_utf8_lossy(&f.stderr).contains("Permission denied"),
        "a root-only file read as {user}\n{}",
        text(&f)
    );
    assert!(!ws.local.join("secret").exists());

    assert!(
        eventually(LIMIT, || children(listener).is_empty()),
        "servers outlived their connections: {:?}",
        children(listener)
    );
}
