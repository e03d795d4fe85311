//! The systemd socket unit and its service template: checked by `systemd-analyze
//! verify`, then run the way systemd runs them, without a systemd of the test's own:
//! `systemd-socket-activate --accept --inetd` listens where `ListenStream=` says and
//! starts `ExecStart=` per connection with the connection as standard input and
//! output (`Accept=yes`, `StandardInput=socket`, `StandardOutput=socket`), as the
//! unit's `User=` (through setpriv). sftp reaches it through `ncat 127.0.0.1 PORT`.

use std::fs;
use std::process::Command;

use super::read_only::{check_served, share_with_a_secret};
use super::{LIMIT, SEED, children, eventually, recipe, s, server_subs};
use crate::support::clients::Workspace;
use crate::support::procs::{Daemon, run_bounded, start_on_free_port, tcp_connectable};

/// The user the recipe's service runs as (`sftpshare` in README).
const USER: &str = "nobody";

/// The value of `key=` in a unit file; panics unless it is there exactly once.
fn setting<'a>(unit: &'a str, key: &str) -> &'a str {
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect();
    match values[..] {
        [v] => v,
        _ => panic!("{key}= is set {} times in\n{unit}", values.len()),
    }
}

#[test]
fn recipes_systemd_socket_activation() {
    let ws = Workspace::new("recipe-systemd");
    let (share, files) = share_with_a_secret(&ws, SEED + 600);

    let units = ws.ctl.join("units");
    fs::create_dir(&units).unwrap();
    let mut service_subs = server_subs(&share);
    service_subs.push(s("sftpshare", USER));
    let log = ws.ctl.join("activate.log");
    let (activator, port) = start_on_free_port(
        "systemd-socket-activate",
        |port| {
            let socket_subs = [
                s("/srv/share", super::path_str(&share)),
                s("127.0.0.1:2222", format!("127.0.0.1:{port}")),
            ];
            let socket = recipe("systemd-socket", &socket_subs);
            let service = recipe("systemd-service", &service_subs);
            let (socket_file, service_file) =
                (units.join("sftp.socket"), units.join("sftp@.service"));
            fs::write(&socket_file, &socket).unwrap();
            fs::write(&service_file, &service).unwrap();
            verify(&[&socket_file, &service_file]);

            assert_eq!(setting(&socket, "Accept"), "yes");
            assert_eq!(setting(&service, "StandardInput"), "socket");
            assert_eq!(setting(&service, "StandardOutput"), "socket");
            let user = setting(&service, "User");
            let exec: Vec<&str> = setting(&service, "ExecStart").split_whitespace().collect();
            Daemon::spawn(
                "systemd-socket-activate",
                Command::new("systemd-socket-activate")
                    .arg(format!("--listen={}", setting(&socket, "ListenStream")))
                    .args(["--accept", "--inetd", "--"])
                    .args(["setpriv", "--clear-groups"])
                    .arg(format!("--reuid={user}"))
                    .arg(format!("--regid={}", primary_group(user)))
                    .args(&exec)
                    // systemd starts services in `/`.
                    .current_dir("/"),
                &log,
            )
        },
        |_, port| tcp_connectable(port),
    );
    // The probe connection above got a server too; let it go before counting.
    assert!(eventually(LIMIT, || children(activator.pid()).is_empty()));

    check_served(&ws, port, &share, &files, USER, activator.pid());
}

/// `systemd-analyze verify` finds nothing wrong with the units but the warning that
/// comes with `User=nobody` (README's unit names a user of its own).
fn verify(files: &[&std::path::Path]) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"]).args(files);
    let f = run_bounded(&mut cmd, LIMIT);
    let stderr = String::from_utf8_lossy(&f.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Special user nobody configured"))
        .collect();
    assert!(
        f.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {}\n{}",
        f.status,
        complaints.join("\n")
    );
}

/// The primary group of `user`, by name.
fn primary_group(user: &str) -> String {
    let u = nix::unistd::User::from_name(user)
        .expect("getpwnam")
        .unwrap_or_else(|| panic!("no user {user}"));
    nix::unistd::Group::from_gid(u.gid)
        .expect("getgrgid")
        .map_or_else(|| u.gid.to_string(), |g| g.name)
}
