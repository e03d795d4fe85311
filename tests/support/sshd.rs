//! A real OpenSSH sshd on a free loopback port, configured in a scratch directory with
//! its own host key and an authorized user key, serving the server under test as its
//! sftp subsystem; and OpenSSH's clients (sftp, ssh, scp) that log in to it with that key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::clients::SftpClient;
use super::procs::{Daemon, run_ok, start_on_free_port};
use super::server_bin;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd serving the server under test as its sftp subsystem, and the key
/// that logs in to it. Dropping it stops sshd (by its process id).
pub struct Sshd {
    pub daemon: Daemon,
    pub port: u16,
    pub user_key: PathBuf,
    pub user: String,
}

impl Sshd {
    /// Starts sshd with `Subsystem sftp <server under test> <server_args>`; its files
    /// (keys, config, log) go to `ctl`.
    pub fn start(ctl: &Path, server_args: &str) -> Sshd {
        Sshd::start_with(ctl, server_args, "")
    }

    /// As `start`, with `extra` (whole sshd_config lines) put first in the
    /// configuration, where they win over the defaults below (sshd takes the first
    /// value of a keyword).
    pub fn start_with(ctl: &Path, server_args: &str, extra: &str) -> Sshd {
        // Privilege separation wants this directory; packages create it at boot only.
        if !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd").expect("create /run/sshd (run as root)");
        }
        let host_key = ctl.join("host_key");
        let user_key = ctl.join("user_key");
        // Keys already in `ctl` are kept: several sshds can share one host key, as
        // hosts behind one load balancer must.
        for key in [&host_key, &user_key].into_iter().filter(|k| !k.exists()) {
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
                "{extra}\
                 ListenAddress 127.0.0.1\n\
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

    /// The options every OpenSSH client (ssh, sftp, scp) needs to log in to this sshd
    /// and nothing else: no user configuration, known hosts or agent; the port option
    /// is left to the caller (`-p` for ssh, `-P` for sftp and scp).
    pub fn login_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["-F".into(), "/dev/null".into()];
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
            args.push("-o".into());
            args.push(opt.into());
        }
        args.push("-i".into());
        args.push(self.user_key.clone().into());
        args
    }

    /// An sftp client for this sshd, ignoring the user's own ssh configuration,
    /// known hosts and agent.
    pub fn client(&self, cwd: &Path, ctl: &Path) -> SftpClient {
        let mut c = SftpClient::new(cwd, ctl);
        for a in self.login_args() {
            c = c.arg(a);
        }
        c.arg("-P")
            .arg(self.port.to_string())
            .destination(&format!("{}@127.0.0.1", self.user))
    }
}
