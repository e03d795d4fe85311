//! lftp through sshd: lftp runs `ssh -s sftp` itself and keeps many requests in
//! flight (16 packets by default, larger with `sftp:max-packets-in-flight`); `mirror`
//! walks trees both ways and `pget -n` reads one file over several sessions at once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use super::tree;
use crate::support::clients::Workspace;
use crate::support::content::{MIB, assert_file_content, write_random_file};
use crate::support::procs::run_bounded;
use crate::support::sshd::Sshd;

/// Runs an lftp script (`lftp -f`) logged in to `sshd` and stopping at the first
/// failing command; returns what it printed on stdout.
fn lftp(ws: &Workspace, sshd: &Sshd, name: &str, commands: &[String]) -> String {
    // lftp starts ssh through a shell-like split of this string.
    let ssh: Vec<String> = std::iter::once("ssh -a -x".to_string())
        .chain(sshd.login_args().iter().map(|a| {
            let a = a.to_str().expect("UTF-8 ssh argument");
            assert!(!a.contains([' ', '"', '\'']), "{a:?} needs quoting");
            a.to_string()
        }))
        .collect();
    let mut script = vec![
        format!("set sftp:connect-program \"{}\"", ssh.join(" ")),
        "set cmd:fail-exit yes".to_string(),
        "set net:max-retries 1".to_string(),
        // `user,` is the user with an empty password: lftp asks for none, ssh logs in
        // with the key.
        format!("open -u {}, -p {} sftp://127.0.0.1", sshd.user, sshd.port),
    ];
    script.extend(commands.iter().cloned());
    let file = ws.ctl.join(format!("{name}.lftp"));
    fs::write(&file, script.join("\n") + "\n").expect("write lftp script");
    let mut cmd = Command::new("lftp");
    cmd.arg("-f")
        .arg(&file)
        .current_dir(&ws.local)
        .env("HOME", &ws.ctl)
        .env("LC_ALL", "C");
    let f = run_bounded(&mut cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&f.stdout).into_owned();
    assert!(
        f.status.success(),
        "lftp {name} failed: {}\n--- script\n{}\n--- stdout\n{stdout}\n--- stderr\n{}",
        f.status,
        script.join("\n"),
        String::from_utf8_lossy(&f.stderr)
    );
    stdout
}

#[test]
fn interop_lftp_put_mirror_both_ways_pget_mv_chmod_rm() {
    let ws = Workspace::new("lftp");
    let sshd = Sshd::start(&ws.ctl, "");
    let remote = fs::canonicalize(&ws.remote).unwrap();
    let remote = remote.to_str().expect("UTF-8 path");

    let big = write_random_file(&ws.local.join("big.bin"), 41, 9 * MIB + 123);
    let up = ws.local.join("up");
    for (i, rel) in ["a.txt", "empty", "sub/b.bin", "sub/deeper/c.bin"]
        .iter()
        .enumerate()
    {
        let p = up.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_random_file(
            &p,
            50 + i as u64,
            if *rel == "empty" { 0 } else { 70_000 * i + 5 },
        );
    }

    let out = lftp(
        &ws,
        &sshd,
        "session",
        &[
            format!("cd {remote}"),
            // More in flight than lftp's default, as a fast link would use.
            "set sftp:max-packets-in-flight 64".to_string(),
            "put big.bin -o big.bin".to_string(),
            "mirror -R up up".to_string(),
            "mv big.bin moved.bin".to_string(),
            "chmod 640 moved.bin".to_string(),
            "cls -l moved.bin".to_string(),
            "pget -n 4 moved.bin -o pget.bin".to_string(),
            "mirror up down".to_string(),
            "rm up/a.txt".to_string(),
            "mkdir made".to_string(),
            "rmdir made".to_string(),
            "cls -1 up".to_string(),
        ],
    );

    assert_file_content(&ws.remote.join("moved.bin"), &big);
    assert!(!ws.remote.join("big.bin").exists(), "mv left big.bin");
    let mode = fs::metadata(ws.remote.join("moved.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640, "chmod 640");
    assert!(
        out.lines().any(|l| l.starts_with("-rw-r-----")
            && l.contains(&format!(" {} ", big.len()))
            && l.ends_with("moved.bin")),
        "cls -l shows mode and size:\n{out}"
    );
    assert_file_content(&ws.local.join("pget.bin"), &big);
    let sent = tree(&up);
    assert_eq!(tree(&ws.local.join("down")), sent, "mirror down");
    let mut left = sent.clone();
    left.remove("a.txt");
    assert_eq!(
        tree(&ws.remote.join("up")),
        left,
        "mirror -R, then rm up/a.txt"
    );
    assert!(!ws.remote.join("made").exists(), "rmdir made");
    let listed: Vec<&str> = out.lines().rev().take(2).collect();
    assert_eq!(
        listed,
        ["up/sub/", "up/empty"],
        "cls -1 up (last lines):\n{out}"
    );
}
