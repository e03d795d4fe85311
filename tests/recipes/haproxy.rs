//! README's HAProxy configuration ("More than one host") in front of two sshds that
//! stand for two hosts: the same host key, the same user, one directory for the
//! shared storage. Sessions held open at once land on both hosts (`leastconn`), a file
//! one host wrote is read through the other, the client's known_hosts holds one key
//! for the balancer, and with one host stopped a new session goes to the other at
//! once (`option redispatch`).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{LIMIT, eventually, recipe, s, text};
use crate::support::clients::{Workspace, sftp_quote as q};
use crate::support::content::{MIB, assert_file_content, write_random_file};
use crate::support::procs::{Daemon, run_bounded, start_on_free_port, tcp_connectable};
use crate::support::sshd::Sshd;
use crate::support::wait_bounded;

/// How many logins an sshd has accepted so far (its log, at LogLevel VERBOSE).
fn logins(sshd: &Sshd) -> usize {
    sshd.daemon.log().matches("Accepted publickey").count()
}

/// `sftp` through the balancer with the login options of `host` (all hosts take the
/// same), checking the host key strictly against `known_hosts` (ssh takes the first
/// value of an option, so these go before the login options that switch it off).
fn sftp(host: &Sshd, port: u16, known_hosts: &Path) -> Command {
    let mut cmd = Command::new("sftp");
    cmd.arg("-o")
        .arg("StrictHostKeyChecking=yes")
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(host.login_args())
        .arg("-P")
        .arg(port.to_string())
        .env("LC_ALL", "C");
    cmd
}

/// A session kept open: sftp reading its batch from a pipe.
struct Held {
    child: Child,
}

impl Held {
    fn start(mut cmd: Command, dest: &str, log: &Path) -> Held {
        let out = fs::File::create(log).expect("sftp log");
        let child = cmd
            .arg("-b")
            .arg("-")
            .arg(dest)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start sftp");
        Held { child }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("sftp's stdin");
        writeln!(stdin, "{line}").expect("write to sftp");
    }

    /// Ends the batch and waits for sftp; true if every command succeeded.
    fn finish(mut self) -> bool {
        drop(self.child.stdin.take());
        wait_bounded(&mut self.child, LIMIT).success()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn recipes_haproxy_two_hosts_one_storage() {
    let ws = Workspace::new("recipe-haproxy");
    let (ctl_a, ctl_b) = (ws.ctl.join("host-a"), ws.ctl.join("host-b"));
    fs::create_dir(&ctl_a).unwrap();
    fs::create_dir(&ctl_b).unwrap();
    let a = Sshd::start(&ctl_a, "");
    // Host b gets host a's host key (README: every host the same keys) and the same
    // authorized user key.
    for f in ["host_key", "host_key.pub", "user_key", "user_key.pub"] {
        fs::copy(ctl_a.join(f), ctl_b.join(f)).unwrap();
    }
    let b = Sshd::start(&ctl_b, "");
    let hosts = [a, b];

    let log = ws.ctl.join("haproxy.log");
    let config = ws.ctl.join("haproxy.cfg");
    let (mut haproxy, port) = start_on_free_port(
        "haproxy",
        |port| {
            let cfg = recipe(
                "haproxy",
                &[
                    s("bind :22", format!("bind 127.0.0.1:{port}")),
                    s("10.0.0.11:22", format!("127.0.0.1:{}", hosts[0].port)),
                    s("10.0.0.12:22", format!("127.0.0.1:{}", hosts[1].port)),
                ],
            );
            fs::write(&config, cfg).unwrap();
            // -db: in the foreground, not as a daemon.
            Daemon::spawn(
                "haproxy",
                Command::new("haproxy").arg("-db").arg("-f").arg(&config),
                &log,
            )
        },
        |_, port| tcp_connectable(port),
    );
    // The readiness probe was a connection too; it reached a host's sshd.
    let probes = logins(&hosts[0]) + logins(&hosts[1]);
    assert_eq!(probes, 0, "the probe logged in nowhere");

    // One key for the balancer's address, whichever host answers.
    let host_key = fs::read_to_string(ctl_a.join("host_key.pub")).unwrap();
    let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    let known_hosts = ws.ctl.join("known_hosts");
    fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
    )
    .unwrap();
    let dest = format!("{}@127.0.0.1", hosts[0].user);

    // A session held open on one host; the next one goes to the other (leastconn).
    let data = write_random_file(&ws.local.join("up.bin"), 77, 3 * MIB + 5);
    let mut held = Held::start(
        sftp(&hosts[0], port, &known_hosts),
        &dest,
        &ws.ctl.join("held.log"),
    );
    held.send(&format!("cd {}", q(&ws.remote)));
    held.send(&format!("put {} up.bin", q(&ws.local.join("up.bin"))));
    assert!(
        eventually(LIMIT, || ws
            .remote
            .join("up.bin")
            .metadata()
            .is_ok_and(|m| m.len() == data.len() as u64)),
        "the held session's upload\n{}",
        fs::read_to_string(ws.ctl.join("held.log")).unwrap_or_default()
    );
    let first = if logins(&hosts[0]) == 1 { 0 } else { 1 };
    assert_eq!((logins(&hosts[first]), logins(&hosts[1 - first])), (1, 0));

    let batch = ws.ctl.join("batch");
    fs::write(
        &batch,
        format!(
            "cd {}\nget up.bin {}\n",
            q(&ws.remote),
            q(&ws.local.join("back.bin"))
        ),
    )
    .unwrap();
    let mut second = sftp(&hosts[0], port, &known_hosts);
    second.arg("-b").arg(&batch).arg(&dest);
    let f = run_bounded(&mut second, LIMIT);
    assert!(f.status.success(), "{}", text(&f));
    assert_file_content(&ws.local.join("back.bin"), &data);
    assert_eq!(
        (logins(&hosts[first]), logins(&hosts[1 - first])),
        (1, 1),
        "the second session went to the other host"
    );
    // The host without a session goes away, so leastconn picks it for the next one:
    // the refused connection is redispatched to the other host at once, before the
    // health checks have noticed.
    let [h0, h1] = hosts;
    let (left, mut gone) = if first == 0 { (h0, h1) } else { (h1, h0) };
    gone.daemon.stop();
    let _ = fs::remove_file(ws.local.join("back.bin"));
    let mut third = sftp(&left, port, &known_hosts);
    third.arg("-b").arg(&batch).arg(&dest);
    let f = run_bounded(&mut third, LIMIT);
    assert!(f.status.success(), "{}", text(&f));
    assert_file_content(&ws.local.join("back.bin"), &data);
    assert_eq!(logins(&left), 2, "the third session went to the host left");
    assert!(held.finish(), "the held session");
    haproxy.stop();
}
