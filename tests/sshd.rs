//! The server as OpenSSH sshd's sftp subsystem: a real sshd on a free loopback port,
//! configured in a scratch directory with its own host key and an authorized user key,
//! and OpenSSH's sftp client logging in with that key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::clients::{Batch, SftpClient, Workspace, parse_ls_long, sftp_quote as q};
use crate::support::content::{MIB, file_checksum, fnv1a64, pseudo_random};
use crate::support::procs::{Daemon, run_ok, start_on_free_port};
use crate::support::server_bin;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd serving the server under test as its sftp subsystem, and the key
/// that logs in to it. Dropping it stops sshd (by its process id).
struct Sshd {
    daemon: Daemon,
    port: u16,
    user_key: PathBuf,
    user: String,
}

impl Sshd {
    /// Starts sshd with `Subsystem sftp <server under test> <server_args>`; its files
    /// (keys, config, log) go to `ctl`.
    fn start(ctl: &Path, server_args: &str) -> Sshd {
        // Privilege separation wants this directory; packages create it at boot only.
        if !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd").expect("create /run/sshd (run as root)");
        }
        let host_key = ctl.join("host_key");
        let user_key = ctl.join("user_key");
        for key in [&host_key, &user_key] {
            run_ok(
                "ssh-keygen",
                [
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "sftp-server-test",
                    "-f",
                ]
                .map(std::ffi::OsStr::new)
                .into_iter()
                .chain([key.as_os_str()]),
            );
        }
        let authorized = ctl.join("authorized_keys");
        fs::copy(user_key.with_extension("pub"), &authorized).expect("authorized_keys");

        let server = server_bin();
        let server = server.to_str().expect("UTF-8 server path");
        assert!(
            !server.contains(char::is_whitespace),
            "sshd runs the subsystem through a shell: {server:?} must not contain spaces"
        );
        let config = ctl.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 AuthenticationMethods publickey\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {authorized}\n\
                 UseDNS no\n\
                 X11Forwarding no\n\
                 AllowTcpForwarding no\n\
                 LogLevel VERBOSE\n\
                 Subsystem sftp {server} {server_args}\n",
                host_key = host_key.display(),
                authorized = authorized.display(),
            ),
        )
        .expect("write sshd_config");

        let log = ctl.join("sshd.log");
        let (daemon, port) = start_on_free_port(
            "sshd",
            |port| {
                Daemon::spawn(
                    "sshd",
                    Command::new(SSHD)
                        .arg("-D")
                        .arg("-e")
                        .arg("-f")
                        .arg(&config)
                        .arg("-p")
                        .arg(port.to_string()),
                    &log,
                )
            },
            |d, port| {
                d.log()
                    .contains(&format!("Server listening on 127.0.0.1 port {port}."))
            },
        );
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .expect("getpwuid")
            .expect("a user name for the current uid")
            .name;
        Sshd {
            daemon,
            port,
            user_key,
            user,
        }
    }

    /// An sftp client for this sshd, ignoring the user's own ssh configuration,
    /// known hosts and agent.
    fn client(&self, cwd: &Path, ctl: &Path) -> SftpClient {
        let mut c = SftpClient::new(cwd, ctl).arg("-F").arg("/dev/null");
        for opt in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "GlobalKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "ConnectTimeout=20",
            "LogLevel=ERROR",
        ] {
            c = c.arg("-o").arg(opt);
        }
        c.arg("-i")
            .arg(&self.user_key)
            .arg("-P")
            .arg(self.port.to_string())
            .destination(&format!("{}@127.0.0.1", self.user))
    }
}

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
        cmd.args(["-F", "/dev/null"]);
        for opt in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "GlobalKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "LogLevel=ERROR",
        ] {
            cmd.arg("-o").arg(opt);
        }
        cmd.arg("-i")
            .arg(&sshd.user_key)
            .arg("-P")
            .arg(sshd.port.to_string())
            .arg(from)
            .arg(to);
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
