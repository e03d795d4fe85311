//! "Files and a shell over one SSH connection": the server behind `ncat -lkU` on the
//! "remote" side, a real sshd forwarding a local socket to it (`ssh -L`, or `~C` in a
//! running session, typed on a pseudo-terminal), and sftp through `ncat -U`; then
//! README's clean-up of both sockets.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use super::{
    LIMIT, SEED, Terminal, daemon_line, eventually, fill_share, path_str, recipe, recipe_commands,
    run_line, s, server_subs, sftp_line, share, text,
};
use crate::support::clients::Workspace;
use crate::support::content::{MIB, assert_file_content, write_random_file};
use crate::support::procs::{Daemon, unix_connectable};
use crate::support::sshd::Sshd;

/// One workspace's "remote host" (sshd, the share, the listener's socket directory)
/// and "local host" (the runtime directory holding the forwarded socket).
struct Hosts {
    ws: Workspace,
    share: PathBuf,
    sshd: Sshd,
    remote_dir: PathBuf,
    run_dir: PathBuf,
}

impl Hosts {
    fn new(tag: &str) -> Hosts {
        let ws = Workspace::new(tag);
        let share = share(&ws);
        // sshd's helper turns TCP forwarding off; sshd then refuses Unix-socket
        // forwarding too, whatever AllowStreamLocalForwarding says.
        let sshd = Sshd::start_with(
            &ws.ctl,
            "",
            "AllowStreamLocalForwarding yes\nAllowTcpForwarding local\n",
        );
        let remote_dir = ws.root().join("alice-sftp");
        let run_dir = ws.root().join("run");
        fs::create_dir(&run_dir).expect("create the runtime directory");
        fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
        Hosts {
            ws,
            share,
            sshd,
            remote_dir,
            run_dir,
        }
    }

    fn remote_sock(&self) -> PathBuf {
        self.remote_dir.join("sftp.sock")
    }

    fn local_sock(&self) -> PathBuf {
        self.run_dir.join("sftp.sock")
    }

    /// README's socket directories: the "remote" one and the local runtime directory.
    fn path_subs(&self) -> Vec<(String, String)> {
        vec![
            s("/home/alice/.sftp", path_str(&self.remote_dir)),
            s("/run/user/1000", path_str(&self.run_dir)),
        ]
    }

    /// README's host: this sshd, logged in to with the test's key.
    fn login_sub(&self) -> (String, String) {
        let login: Vec<String> = self
            .sshd
            .login_args()
            .iter()
            .map(|a| path_str(Path::new(a)).to_string())
            .collect();
        s(
            "alice@host",
            format!(
                "{} -p {} {}@127.0.0.1",
                login.join(" "),
                self.sshd.port,
                self.sshd.user
            ),
        )
    }

    /// The `ssh-forward` recipe's lines: mkdir, listener, ssh, sftp, rm, rm.
    fn forward_recipe(&self) -> [String; 6] {
        let mut subs = server_subs(&self.share);
        subs.extend(self.path_subs());
        subs.push(self.login_sub());
        recipe_commands("ssh-forward", &subs)
    }

    /// README's mkdir and listener lines: the listener, ready.
    fn start_listener(&self) -> Daemon {
        let [mkdir, listen, ..] = self.forward_recipe();
        run_line(&mkdir, &self.ws.ctl);
        let mode = fs::metadata(&self.remote_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "`{mkdir}`");
        let mut ncat = daemon_line(
            "ncat -lkU",
            &listen,
            &self.ws.ctl,
            &self.ws.ctl.join("ncat.log"),
        );
        let sock = self.remote_sock();
        assert!(
            ncat.wait_ready(LIMIT, |_| unix_connectable(&sock)),
            "`{listen}` never listened\n{}",
            ncat.log()
        );
        ncat
    }

    /// Waits for ssh's local socket to take connections; README says only its owner
    /// may.
    fn wait_forwarded(&self, term: &Terminal, what: &str) {
        let sock = self.local_sock();
        assert!(
            eventually(LIMIT, || unix_connectable(&sock)),
            "`{what}` did not forward {}\n{}",
            sock.display(),
            term.output()
        );
        let mode = fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", sock.display());
    }

    /// README's sftp line through the forwarded socket: uploads, downloads, lists,
    /// renames and removes; checks both sides by content.
    fn sftp_through_forward(&self, seed: u64) {
        let [_, _, _, sftp, ..] = self.forward_recipe();
        let files = fill_share(&self.share, seed);
        let up = write_random_file(&self.ws.local.join("up.bin"), seed + 10, MIB + 1);
        let batch = [
            "put up.bin".to_string(),
            "get big.bin big.back".to_string(),
            "rename up.bin moved.bin".to_string(),
            "rm empty".to_string(),
            "ls -1".to_string(),
        ];
        let f = sftp_line(&sftp, &self.ws.local, &self.ws.ctl, &batch);
        assert!(f.status.success(), "`{sftp}`\n{}", text(&f));
        assert_file_content(&self.share.join("moved.bin"), &up);
        assert_file_content(&self.ws.local.join("big.back"), &files[1].1);
        assert!(!self.share.join("empty").exists());
        let out = String::from_utf8_lossy(&f.stdout);
        let listed: Vec<&str> = out
            .lines()
            .skip_while(|l| *l != "sftp> ls -1")
            .skip(1)
            .collect();
        assert_eq!(
            listed,
            ["big.bin", "moved.bin", "small.txt"],
            "{}",
            text(&f)
        );
    }

    /// Ends the shell (and so ssh), checks the whole session was one SSH connection,
    /// that both sockets outlived their programs, and runs README's clean-up.
    fn exit_and_clean_up(&self, mut term: Terminal, listener: Daemon) {
        term.type_text("exit\r");
        let st = term.finish();
        assert!(st.success(), "ssh ended with {st}");
        let logins = self.sshd.daemon.log().matches("Accepted publickey").count();
        assert_eq!(
            logins,
            1,
            "one SSH connection for the shell and the files\n{}",
            self.sshd.daemon.log()
        );

        drop(listener);
        let (local, remote) = (self.local_sock(), self.remote_sock());
        assert!(
            local.symlink_metadata().is_ok(),
            "ssh removed {}: README says it does not",
            local.display()
        );
        assert!(
            remote.symlink_metadata().is_ok(),
            "ncat removed {}: README says it does not",
            remote.display()
        );
        let [.., rm_local, rm_remote] = self.forward_recipe();
        run_line(&rm_local, &self.ws.ctl);
        run_line(&rm_remote, &self.ws.ctl);
        assert!(local.symlink_metadata().is_err() && remote.symlink_metadata().is_err());
    }
}

/// Types a shell command whose output (not its echo) shows the remote shell ran it.
fn shell_answers(term: &mut Terminal, n: u32) {
    term.type_text(&format!("echo SHELL-$(({n}+1))\r"));
    term.wait_for(&format!("SHELL-{}", n + 1));
}

#[test]
fn recipes_ssh_forward_unix_socket() {
    let hosts = Hosts::new("recipe-ssh-forward");
    let listener = hosts.start_listener();
    // A socket an earlier session left: StreamLocalBindUnlink=yes lets ssh replace it.
    drop(UnixListener::bind(hosts.local_sock()).expect("bind a stale socket"));
    assert!(!unix_connectable(&hosts.local_sock()));

    let [_, _, ssh, ..] = hosts.forward_recipe();
    let mut term = Terminal::start(&ssh, &hosts.ws.local, &hosts.ws.ctl.join("terminal.log"));
    shell_answers(&mut term, 41);
    hosts.wait_forwarded(&term, &ssh);
    hosts.sftp_through_forward(SEED + 300);
    shell_answers(&mut term, 99);
    hosts.exit_and_clean_up(term, listener);
}

#[test]
fn recipes_ssh_forward_added_with_escape() {
    let hosts = Hosts::new("recipe-ssh-escape");
    let listener = hosts.start_listener();
    let [ssh] = recipe_commands::<1>("ssh-escape", &[hosts.login_sub()]);
    let mut term = Terminal::start(&ssh, &hosts.ws.local, &hosts.ws.ctl.join("terminal.log"));
    shell_answers(&mut term, 41);
    assert!(
        hosts.local_sock().symlink_metadata().is_err(),
        "no forwarding yet"
    );

    // ssh takes `~C` only at the start of a line: the last key typed was Return.
    let forward = recipe("ssh-escape-forward", &hosts.path_subs());
    let forward = forward.trim();
    term.type_text("~C");
    term.wait_for("ssh>");
    term.type_text(&format!("{forward}\r"));
    hosts.wait_forwarded(&term, &format!("~C {forward}"));
    hosts.sftp_through_forward(SEED + 400);
    shell_answers(&mut term, 99);
    hosts.exit_and_clean_up(term, listener);
}
