//! The xinetd service file, run by xinetd in the foreground with the file as its whole
//! (private) configuration on a port of the test's own, and sftp through
//! `ncat 127.0.0.1 PORT`. The `inetd.conf` line is not run: Debian's openbsd-inetd
//! conflicts with xinetd, so one machine cannot have both; its fields are checked
//! against the service file's instead.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::{
    LIMIT, SEED, children, eventually, fill_share, readme_block, recipe, s, server_subs, share,
    text,
};
use crate::support::clients::Workspace;
use crate::support::content::assert_file_content;
use crate::support::procs::{Daemon, run_bounded, start_on_free_port};

/// The user the recipe's server runs as (`sftpshare` in README).
const USER: &str = "nobody";

#[test]
fn recipes_xinetd_service() {
    let ws = Workspace::new("recipe-xinetd");
    let share = share(&ws);
    let files = fill_share(&share, SEED + 500);
    // Readable by the service's user, but for one file only root may read: it shows
    // the server ran as `user`, not as xinetd's root.
    for dir in [ws.root(), share.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(share.join("secret"), b"root only\n").unwrap();
    fs::set_permissions(share.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();

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

    let sftp = |batch: &[&str]| {
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
    let f = sftp(&["ls -1", "get small.txt", "get big.bin", "get empty"]);
    assert!(f.status.success(), "{}", text(&f));
    let out = String::from_utf8_lossy(&f.stdout);
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "sftp> ls -1")
        .skip(1)
        .take_while(|l| !l.starts_with("sftp> "))
        .collect();
    assert_eq!(
        listed,
        ["big.bin", "empty", "secret", "small.txt"],
        "{}",
        text(&f)
    );
    for (name, data) in &files {
        assert_file_content(&ws.local.join(name), data);
    }

    // Read-only (-R), and served as `user`: both refused, nothing written.
    fs::write(ws.local.join("up.txt"), b"up\n").unwrap();
    let f = sftp(&["put up.txt"]);
    assert!(!f.status.success(), "put on a -R share\n{}", text(&f));
    assert!(!share.join("up.txt").exists());
    let f = sftp(&["get secret"]);
    assert!(
        !f.status.success(),
        "a root-only file read as {USER}\n{}",
        text(&f)
    );
    assert!(
        String::from_utf8_lossy(&f.stderr).contains("Permission denied"),
        "{}",
        text(&f)
    );
    assert!(!ws.local.join("secret").exists());

    // One server per connection, each gone when its connection closed.
    assert!(
        eventually(LIMIT, || children(xinetd.pid()).is_empty()),
        "servers outlived their connections: {:?}",
        children(xinetd.pid())
    );
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
