//! The xinetd service file, run by xinetd in the foreground with the file as its whole
//! (private) configuration on a port of the test's own, and sftp through
//! `ncat 127.0.0.1 PORT`. The `inetd.conf` line is not run: Debian's openbsd-inetd
//! conflicts with xinetd, so one machine cannot have both; its fields are checked
//! against the service file's instead.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use super::read_only::{check_served, share_with_a_secret};
use super::{SEED, readme_block, recipe, s, server_subs};
use crate::support::clients::Workspace;
use crate::support::procs::{Daemon, start_on_free_port};

/// The user the recipe's server runs as (`sftpshare` in README).
const USER: &str = "nobody";

#[test]
fn recipes_xinetd_service() {
    let ws = Workspace::new("recipe-xinetd");
    let (share, files) = share_with_a_secret(&ws, SEED + 500);

    let mut subs = server_subs(&share);
    subs.push(s("sftpshare", USER));
    let config = ws.ctl.join("xinetd.conf");
    let log = ws.ctl.join("xinetd.log");
    let (xinetd, port) = start_on_free_port(
        "xinetd",
        |port| {
            let mut subs = subs.clone();
            subs.push(s("2222", port.to_string()));
            fs::write(&config, recipe("xinetd", &subs)).expect("write the service file");
            Daemon::spawn(
                "xinetd",
                Command::new("xinetd")
                    .arg("-dontfork")
                    .arg("-filelog")
                    .arg(&log)
                    .arg("-f")
                    .arg(&config),
                &ws.ctl.join("xinetd.out"),
            )
        },
        // Not a probe connection: xinetd goes on running without the service when
        // the port is taken, and says so in this line.
        |_, _| {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Started working: 1 available service")
        },
    );

    check_served(&ws, port, &share, &files, USER, xinetd.pid());
}

/// README's inetd.conf line says what its xinetd service file says: address, port,
/// socket type, protocol, nowait, user, server and its arguments.
#[test]
fn recipes_inetd_line_matches_the_xinetd_service() {
    let service: BTreeMap<String, String> = readme_block("xinetd")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let line = readme_block("inetd");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [
        addr,
        socket_type,
        protocol,
        wait,
        user,
        server,
        argv0,
        args @ ..,
    ] = &fields[..]
    else {
        panic!("not an inetd.conf line: {line}");
    };
    let get = |k: &str| {
        service
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in the xinetd service"))
    };
    assert_eq!(*addr, format!("{}:{}", get("bind"), get("port")));
    assert_eq!(*socket_type, get("socket_type"));
    assert_eq!(*protocol, get("protocol"));
    assert_eq!((*wait, get("wait")), ("nowait", "no"));
    assert_eq!(*user, get("user"));
    assert_eq!(*server, get("server"));
    assert_eq!(Some(*argv0), server.rsplit('/').next());
    assert_eq!(args.join(" "), get("server_args"));
}
