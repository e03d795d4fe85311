//! README's ncat and socat recipes ("Plain SFTP behind a super-server"), run as
//! written like the `recipes_*` tests: each test takes its code block, puts its own
//! share, port and socket directory in place of README's, starts the listener line
//! and runs OpenSSH's sftp through README's `sftp -D` line. Shares README marks `-R`
//! serve reads and refuse uploads; the Unix-socket one, and the TCP one with `-R`
//! dropped as README suggests, take uploads. The socat test also checks README's
//! socat client and what it says sftp does when the server dies first.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::recipes::{
    LIMIT, alive, daemon_line, eventually, fill_share, path_str, pids_running, recipe_commands,
    run_line, s, server_subs, sftp_line, share, shell, text,
};
use crate::support::clients::{Workspace, parse_ls_long, sftp_quote as q};
use crate::support::content::{MIB, assert_file_content, write_random_file};
use crate::support::procs::{
    Daemon, Finished, run_bounded, start_on_free_port, tcp_connectable, unix_connectable,
};
use crate::support::{server_bin, testing_openssh};

/// Seeds for this module's content, apart from other modules'.
const SEED: u64 = 0x0ca7_0000;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Access {
    ReadOnly,
    ReadWrite,
}

/// What sftp printed after echoing batch command `cmd`, up to the next command.
fn output_of(f: &Finished, cmd: &str) -> String {
    let out = String::from_utf8_lossy(&f.stdout);
    let echo = format!("sftp> {cmd}");
    let mut lines = out.lines().skip_while(|l| *l != echo);
    assert!(lines.next().is_some(), "no `{echo}`\n{}", text(f));
    lines
        .take_while(|l| !l.starts_with("sftp> "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One session through README's `sftp -D ...` line, run in `ctl/` (where the TLS
/// recipe's `cert.pem` is): pwd, ls -l, the share's files fetched, then a 3 MiB
/// upload, listed and fetched back. Read-write: all checked by content on both sides;
/// read-only: everything before the upload works, the upload is refused and nothing
/// is written.
fn session(ws: &Workspace, share: &Path, sftp: &str, access: Access, seed: u64) {
    let files = fill_share(share, seed);
    let local = ws.local.join(format!("session-{seed:x}"));
    fs::create_dir(&local).expect("create the client's directory");
    let src = local.join("data.bin");
    let data = write_random_file(&src, seed + 10, 3 * MIB + 11);
    let back = local.join("back.bin");
    let mut batch = vec!["pwd".to_string(), "ls -l".to_string()];
    for (name, _) in &files {
        batch.push(format!("get {name} {}", q(&local.join(name))));
    }
    batch.push(format!("put {} up.bin", q(&src)));
    batch.push("ls -l up.bin".to_string());
    batch.push(format!("get up.bin {}", q(&back)));
    let f = sftp_line(sftp, &ws.ctl, &ws.ctl, &batch);

    // Under `--root` the share is `/`; OpenSSH's server, started there with `-d`,
    // shows its real path.
    let cwd = if testing_openssh() {
        fs::canonicalize(share).unwrap().display().to_string()
    } else {
        "/".to_string()
    };
    assert_eq!(
        output_of(&f, "pwd").trim(),
        format!("Remote working directory: {cwd}"),
        "`{sftp}`\n{}",
        text(&f)
    );
    let listed = |cmd: &str| -> Vec<(String, u64)> {
        parse_ls_long(&output_of(&f, cmd))
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect()
    };
    let mut expected: Vec<(String, u64)> = files
        .iter()
        .map(|(n, d)| (n.clone(), d.len() as u64))
        .collect();
    expected.sort();
    assert_eq!(listed("ls -l"), expected, "`{sftp}`\n{}", text(&f));
    for (name, content) in &files {
        assert_file_content(&local.join(name), content);
    }
    match access {
        Access::ReadWrite => {
            assert!(f.status.success(), "`{sftp}`\n{}", text(&f));
            assert_eq!(
                listed("ls -l up.bin"),
                [("up.bin".to_string(), data.len() as u64)]
            );
            assert_file_content(&share.join("up.bin"), &data);
            assert_file_content(&back, &data);
        }
        Access::ReadOnly => {
            assert!(!f.status.success(), "upload to a -R share\n{}", text(&f));
            assert!(
                String::from_utf8_lossy(&f.stderr).contains("Permission denied"),
                "`{sftp}`\n{}",
                text(&f)
            );
            assert!(!share.join("up.bin").exists());
            assert!(!back.exists());
        }
    }
}

/// README's block `name` (`N` commands) with `subs`, its listener (command
/// `listener`) started on a free port in place of `2222`, and listening.
fn start_tcp<const N: usize>(
    ws: &Workspace,
    name: &str,
    subs: &[(String, String)],
    listener: usize,
) -> (Daemon, u16, [String; N]) {
    let commands = |port: u16| {
        let mut all = subs.to_vec();
        all.push(s("2222", port.to_string()));
        recipe_commands::<N>(name, &all)
    };
    let log = ws.ctl.join(format!("{name}.log"));
    let (daemon, port) = start_on_free_port(
        name,
        |port| daemon_line(name, &commands(port)[listener], &ws.ctl, &log),
        |_, port| tcp_connectable(port),
    );
    (daemon, port, commands(port))
}

#[test]
fn ncat_tcp_recipe() {
    let ws = Workspace::new("ncat-tcp");
    let share = share(&ws);
    let (_ro, _, [_, sftp]) = start_tcp::<2>(&ws, "ncat-tcp", &server_subs(&share), 0);
    session(&ws, &share, &sftp, Access::ReadOnly, SEED);

    // "Drop -R to let clients upload".
    let mut subs = server_subs(&share);
    subs.push(s(" -R", ""));
    let (_rw, _, [_, sftp]) = start_tcp::<2>(&ws, "ncat-tcp", &subs, 0);
    session(&ws, &share, &sftp, Access::ReadWrite, SEED + 100);
}

#[test]
fn ncat_unix_socket_recipe() {
    let ws = Workspace::new("ncat-unix");
    let share = share(&ws);
    let run_dir = ws.root().join("run");
    fs::create_dir(&run_dir).expect("create the runtime directory");
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let mut subs = server_subs(&share);
    subs.push(s("$XDG_RUNTIME_DIR", path_str(&run_dir)));
    let [rm, listen, sftp] = recipe_commands::<3>("ncat-unix", &subs);
    let sock = run_dir.join("sftp.sock");

    // A socket an earlier listener left: ncat will not start while it exists, and
    // README's `rm -f` line is what lets it.
    drop(UnixListener::bind(&sock).expect("bind a stale socket"));
    let f = run_bounded(&mut shell(&listen, &ws.ctl), LIMIT);
    assert!(
        !f.status.success() && String::from_utf8_lossy(&f.stderr).contains("already in use"),
        "`{listen}` over a stale socket\n{}",
        text(&f)
    );
    run_line(&rm, &ws.ctl);
    let mut ncat = daemon_line("ncat -lkU", &listen, &ws.ctl, &ws.ctl.join("ncat.log"));
    assert!(
        ncat.wait_ready(LIMIT, |_| unix_connectable(&sock)),
        "`{listen}` never listened\n{}",
        ncat.log()
    );
    session(&ws, &share, &sftp, Access::ReadWrite, SEED + 200);

    drop(ncat);
    assert!(
        sock.symlink_metadata().is_ok(),
        "ncat removed {} when it stopped: README says it does not",
        sock.display()
    );
}

/// README's certificate (the TLS recipe's openssl line), `cert.pem` and `key.pem`
/// made in `dir`.
pub fn make_certificate(dir: &Path) {
    let [openssl, ..] = recipe_commands::<3>("ncat-tls", &[]);
    run_line(&openssl, dir);
}

#[test]
fn ncat_tls_recipe() {
    let ws = Workspace::new("ncat-tls");
    let share = share(&ws);
    make_certificate(&ws.ctl);
    let (_ncat, _, [_, _, sftp]) = start_tcp::<3>(&ws, "ncat-tls", &server_subs(&share), 1);
    session(&ws, &share, &sftp, Access::ReadOnly, SEED + 300);
}

/// README's other client for the socat recipe, as its text gives it.
const SOCAT_CLIENT: &str = r#"sftp -D "socat - TCP:127.0.0.1:2222""#;

/// sftp reading its commands from a pipe (`-b -`) through a recipe's `sftp -D` line,
/// its output in a log. Dropping it kills its process group (sftp and its ncat or
/// socat) by the group's id.
struct Client {
    child: Child,
    input: ChildStdin,
    log: PathBuf,
}

impl Client {
    fn start(sftp: &str, cwd: &Path, log: &Path) -> Client {
        let rest = sftp.strip_prefix("sftp ").expect("an sftp line");
        let out = fs::File::create(log).expect("create client log");
        let mut child = shell(&format!("exec sftp -b - {rest}"), cwd)
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start sftp");
        let input = child.stdin.take().expect("piped stdin");
        Client {
            child,
            input,
            log: log.to_path_buf(),
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    #[track_caller]
    fn command(&mut self, cmd: &str) {
        writeln!(self.input, "{cmd}").expect("send a command to sftp");
        let echo = format!("sftp> {cmd}");
        assert!(
            eventually(LIMIT, || self.output().contains(&echo)),
            "sftp never ran `{cmd}`:\n{}",
            self.output()
        );
    }

    fn exited_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        eventually(limit, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // Unreaped, so the group (led by sftp) is still ours.
            let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Connects through `sftp`, then makes the server side close first with a request
/// outstanding: the session's server is stopped, sent `ls`, and killed before it
/// answers. Returns the client, waiting for that answer or not.
fn server_dies_mid_request(ws: &Workspace, share: &Path, sftp: &str, tag: &str) -> Client {
    let mut client = Client::start(sftp, &ws.ctl, &ws.ctl.join(format!("{tag}.log")));
    client.command("pwd");
    assert!(
        eventually(LIMIT, || client
            .output()
            .contains("Remote working directory")),
        "`{sftp}` never connected:\n{}",
        client.output()
    );
    let bin = server_bin();
    let program = bin.file_name().unwrap().to_str().unwrap();
    let servers: Vec<u32> = pids_running(program, path_str(share))
        .into_iter()
        .filter(|&p| alive(p))
        .collect();
    assert_eq!(servers.len(), 1, "one server for `{sftp}`: {servers:?}");
    let server = Pid::from_raw(servers[0] as i32);
    kill(server, Signal::SIGSTOP).expect("stop the server");
    client.command("ls");
    // sftp sends the request right after echoing the command; socat would stay
    // another 0.5 s (its -t) for a late one.
    thread::sleep(Duration::from_millis(200));
    kill(server, Signal::SIGKILL).expect("kill the server");
    assert!(
        eventually(LIMIT, || !alive(servers[0])),
        "the server outlived SIGKILL"
    );
    client
}

#[test]
fn ncat_socat_recipe() {
    let ws = Workspace::new("ncat-socat");
    let share = share(&ws);
    let (_socat, port, [_, sftp]) = start_tcp::<2>(&ws, "socat", &server_subs(&share), 0);
    session(&ws, &share, &sftp, Access::ReadOnly, SEED + 400);

    // README's socat client, and its difference from ncat when the server side closes
    // first: sftp through socat ends at once, through ncat it goes on waiting.
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    assert!(
        readme.contains(&format!("`{SOCAT_CLIENT}` works as a client too")),
        "README no longer offers `{SOCAT_CLIENT}`"
    );
    let through_socat = SOCAT_CLIENT.replace("2222", &port.to_string());
    let mut client = server_dies_mid_request(&ws, &share, &through_socat, "socat-client");
    let status = client.exited_within(LIMIT);
    assert!(
        status.is_some_and(|st| !st.success()) && client.output().contains("Connection closed"),
        "`{through_socat}` after the server died: {status:?}\n{}",
        client.output()
    );

    let mut client = server_dies_mid_request(&ws, &share, &sftp, "ncat-client");
    assert_eq!(
        client.exited_within(Duration::from_secs(2)),
        None,
        "`{sftp}` ended after the server died: README says it waits\n{}",
        client.output()
    );
    assert!(!client.output().contains("Connection closed"));
}
