//! The server as OpenSSH sshd's sftp subsystem (`support::sshd`), reached by OpenSSH's
//! sftp and scp.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::clients::{Batch, Workspace, parse_ls_long, sftp_quote as q};
use crate::support::content::{MIB, file_checksum, fnv1a64, pseudo_random};
use crate::support::sshd::Sshd;

#[test]
fn sshd_put_get_100_mib() {
    let ws = Workspace::new("sshd");
    let sshd = Sshd::start(&ws.ctl, "-l INFO");

    const LEN: usize = 100 * MIB;
    let local = ws.local.join("big.bin");
    let (sum, len) = {
        let data = pseudo_random(100, LEN);
        fs::write(&local, &data).expect("write big file");
        (fnv1a64(&data), data.len() as u64)
    };
    let back = ws.local.join("big.back");

    let start = Instant::now();
    let run = sshd
        .client(&ws.local, &ws.ctl)
        .limit(Duration::from_secs(300))
        .run(
            &Batch::new()
                .cmd(format!("cd {}", q(&ws.remote)))
                .cmd(format!("put {} big.bin", q(&local)))
                .cmd("ls -l big.bin")
                .cmd(format!("get big.bin {}", q(&back))),
        )
        .ok();
    eprintln!(
        "sshd: 100 MiB up and down in {:.1?} (sshd pid {})",
        start.elapsed(),
        sshd.daemon.pid()
    );

    let ls = parse_ls_long(&run.output_of("ls -l big.bin"));
    assert_eq!(ls.len(), 1, "{run}");
    assert_eq!(ls[0].size, len, "{run}");
    assert_eq!(
        file_checksum(&ws.remote.join("big.bin")),
        (sum, len),
        "uploaded"
    );
    assert_eq!(file_checksum(&back), (sum, len), "downloaded");
}

/// scp (SFTP mode, OpenSSH's default) resolves `~user` paths with
/// expand-path@openssh.com (`~/x` it shortens to `x` itself). The path goes from the
/// user's home up to `/` and down to the scratch directory, so it lands there.
#[test]
fn sshd_scp_tilde_paths_use_expand_path() {
    let ws = Workspace::new("sshd-scp");
    // sshd runs the subsystem through the login shell, so its stderr can go to a file.
    let log = ws.ctl.join("server.log");
    let args = format!(
        "-e -l VERBOSE -d {} 2>>{}",
        ws.remote.display(),
        log.display()
    );
    let sshd = Sshd::start(&ws.ctl, &args);
    let local = ws.local.join("up.bin");
    let data = pseudo_random(7, 3 * MIB + 17);
    fs::write(&local, &data).expect("write local file");
    let scp = |from: &std::ffi::OsStr, to: &std::ffi::OsStr| {
        let mut cmd = Command::new("scp");
        cmd.args(sshd.login_args());
        cmd.arg("-P").arg(sshd.port.to_string()).arg(from).arg(to);
        let f = crate::support::procs::run_bounded(&mut cmd, Duration::from_secs(60));
        assert!(
            f.status.success(),
            "{cmd:?}: {}\n{}",
            f.status,
            String::from_utf8_lossy(&f.stderr)
        );
    };
    let home = nix::unistd::User::from_name(&sshd.user)
        .expect("getpwnam")
        .expect("the user")
        .dir;
    let ups = "../".repeat(home.components().count() - 1);
    let tilde = format!(
        "~{}/{ups}{}/up.bin",
        sshd.user,
        ws.remote.display().to_string().trim_start_matches('/')
    );
    let remote = |p: &str| format!("{}@127.0.0.1:{p}", sshd.user);
    scp(local.as_os_str(), remote(&tilde).as_ref());
    assert_eq!(
        fs::read(ws.remote.join("up.bin")).expect("uploaded file in the start directory"),
        data
    );
    let back = ws.local.join("back.bin");
    scp(remote(&tilde).as_ref(), back.as_os_str());
    assert_eq!(fs::read(&back).expect("downloaded file"), data);
    // Both sessions asked the server to expand the path.
    let text = fs::read_to_string(&log).unwrap_or_default();
    let want = format!(
        "expand \"{}/{ups}{}/up.bin\"",
        home.display(),
        ws.remote.display().to_string().trim_start_matches('/')
    );
    assert_eq!(
        text.matches(&want).count(),
        2,
        "two {want:?} lines in the server's log:\n{text}"
    );
}
