//! SFTP clients other than OpenSSH's: curl (`sftp://`, libssh2), rclone, PuTTY's psftp,
//! paramiko and asyncssh, each logging in through a real sshd on 127.0.0.1 that runs
//! the server under test as its subsystem (`support::sshd`). Data is checked by
//! content on the disk the server shares with the test. Every client gets a private
//! HOME, so nothing in the user's own (known hosts, rclone config, PuTTY's random seed)
//! is read or written.

mod lftp;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::clients::Workspace;
use crate::support::content::{MIB, assert_file_content, pseudo_random, write_random_file};
use crate::support::procs::{Finished, run_bounded, run_ok};
use crate::support::sshd::Sshd;
use crate::support::testing_openssh;

const LIMIT: Duration = Duration::from_secs(120);

/// A workspace, an sshd serving it, and what clients need to trust that sshd.
struct Rig {
    ws: Workspace,
    sshd: Sshd,
    home: PathBuf,
}

impl Rig {
    fn new(tag: &str) -> Rig {
        let ws = Workspace::new(tag);
        let sshd = Sshd::start(&ws.ctl, "");
        let home = ws.ctl.join("home");
        fs::create_dir(&home).expect("create client HOME");
        // Paths go into URLs, batch lines and rclone's remote syntax unquoted.
        let root = ws.root().to_str().expect("UTF-8 scratch path");
        assert!(
            root.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c)),
            "scratch path {root:?} needs quoting"
        );
        Rig { ws, sshd, home }
    }

    fn remote(&self, name: &str) -> PathBuf {
        self.ws.remote.join(name)
    }

    fn local(&self, name: &str) -> PathBuf {
        self.ws.local.join(name)
    }

    fn remote_str(&self) -> &str {
        self.ws.remote.to_str().unwrap()
    }

    /// The host key's public half, `type base64`.
    fn host_key(&self) -> String {
        let line = fs::read_to_string(self.ws.ctl.join("host_key.pub")).expect("host key");
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    fn host_key_sha256(&self) -> String {
        let f = run_ok(
            "ssh-keygen",
            [Path::new("-lf"), &self.ws.ctl.join("host_key.pub")],
        );
        let out = String::from_utf8_lossy(&f.stdout).into_owned();
        let fp = out.split_whitespace().nth(1).expect("fingerprint field");
        assert!(fp.starts_with("SHA256:"), "{out}");
        fp.to_string()
    }

    /// A known_hosts file holding just this sshd's host key.
    fn known_hosts(&self) -> PathBuf {
        let path = self.ws.ctl.join("known_hosts");
        let line = format!("[127.0.0.1]:{} {}\n", self.sshd.port, self.host_key());
        fs::write(&path, line).expect("write known_hosts");
        path
    }

    /// Runs a client with the private HOME, bounded in time.
    fn run(&self, cmd: &mut Command) -> Finished {
        cmd.env("HOME", &self.home)
            .env("LC_ALL", "C")
            .current_dir(&self.ws.local);
        run_bounded(cmd, LIMIT)
    }

    /// As `run`, panicking (with what the client and sshd said) unless it succeeds;
    /// returns stdout.
    #[track_caller]
    fn run_ok(&self, cmd: &mut Command) -> String {
        let f = self.run(cmd);
        assert!(f.status.success(), "{cmd:?}: {}\n{}", f.status, show(&f));
        String::from_utf8(f.stdout).expect("UTF-8 output")
    }
}

fn show(f: &Finished) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&f.stdout),
        String::from_utf8_lossy(&f.stderr)
    )
}

/// Every regular file under `dir`, by relative path, with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("dir entry");
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.insert(rel, fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A small tree with files of awkward sizes (empty, one byte, around 32 KiB request
/// sizes, a few MiB) at three depths; returns it as `tree` would.
fn make_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let files: [(&str, usize); 7] = [
        ("empty", 0),
        ("one", 1),
        ("a/32k-1", 32 * 1024 - 1),
        ("a/32k+1", 32 * 1024 + 1),
        ("a/b/big", 3 * MIB + 7),
        ("a/b/c/deep", 100_000),
        ("z/last", 4096),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_random_file(&path, 1000 + i as u64, *len);
    }
    tree(dir)
}

/// The names in a listing of `ls -l` style long names (as both servers make them),
/// sorted; a symlink's name keeps its ` -> target`.
fn long_listing_names(out: &str) -> Vec<String> {
    let mut names: Vec<String> = out
        .lines()
        .map(|l| {
            let name: Vec<&str> = l.split_whitespace().skip(8).collect();
            assert!(!name.is_empty(), "{l:?} in\n{out}");
            name.join(" ")
        })
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// curl

/// curl (libssh2) with the host key pinned by its SHA-256 fingerprint and the test's
/// user key.
fn curl(rig: &Rig) -> Command {
    let fp = rig.host_key_sha256();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--connect-timeout", "20", "--hostpubsha256"])
        .arg(fp.strip_prefix("SHA256:").unwrap())
        .arg("--key")
        .arg(&rig.sshd.user_key)
        .arg("-u")
        .arg(format!("{}:", rig.sshd.user));
    cmd
}

fn curl_url(rig: &Rig, path: &str) -> String {
    format!(
        "sftp://127.0.0.1:{}{}{path}",
        rig.sshd.port,
        rig.remote_str()
    )
}

#[test]
fn interop_curl() {
    let rig = Rig::new("interop-curl");
    let remote = rig.remote_str().to_string();

    // Upload, into directories curl creates (--ftp-create-dirs: MKDIR on failure).
    let up = write_random_file(&rig.local("up.bin"), 1, 2 * MIB + 3);
    rig.run_ok(
        curl(&rig)
            .arg("--ftp-create-dirs")
            .arg("-T")
            .arg(rig.local("up.bin"))
            .arg(curl_url(&rig, "/new/dir/up.bin")),
    );
    assert_file_content(&rig.remote("new/dir/up.bin"), &up);

    // Download, then resume a download of which the first 1000 bytes are here.
    let down = write_random_file(&rig.remote("down.bin"), 2, 3 * MIB + 5);
    rig.run_ok(
        curl(&rig)
            .arg("-o")
            .arg(rig.local("down.bin"))
            .arg(curl_url(&rig, "/down.bin")),
    );
    assert_file_content(&rig.local("down.bin"), &down);
    fs::write(rig.local("part.bin"), &down[..1000]).unwrap();
    rig.run_ok(
        curl(&rig)
            .args(["-C", "-", "-o"])
            .arg(rig.local("part.bin"))
            .arg(curl_url(&rig, "/down.bin")),
    );
    assert_file_content(&rig.local("part.bin"), &down);

    // A resumed upload opens the remote file for appending.
    fs::write(rig.remote("grow.txt"), b"0123456789\n").unwrap();
    fs::write(rig.local("grow.txt"), b"0123456789\nappended\n").unwrap();
    rig.run_ok(
        curl(&rig)
            .args(["-C", "-", "-T"])
            .arg(rig.local("grow.txt"))
            .arg(curl_url(&rig, "/grow.txt")),
    );
    assert_file_content(&rig.remote("grow.txt"), b"0123456789\nappended\n");

    // Quote commands, before (-Q) and after (-Q -cmd) the transfer of a listing.
    fs::write(rig.remote("f"), b"quoted").unwrap();
    let out = rig.run_ok(
        curl(&rig)
            .arg("-Q")
            .arg(format!("rename {remote}/f {remote}/g"))
            .arg("-Q")
            .arg(format!("mkdir {remote}/d"))
            .arg("-Q")
            .arg(format!("chmod 640 {remote}/g"))
            .arg("-Q")
            .arg(format!(
                "mtime \"Fri, 13 Feb 2009 23:31:30 GMT\" {remote}/g"
            ))
            .arg("-Q")
            .arg(format!("symlink {remote}/g {remote}/d/s"))
            .arg("-Q")
            .arg(format!("-rm {remote}/grow.txt"))
            .arg(curl_url(&rig, "/")),
    );
    assert!(!rig.remote("f").exists());
    assert_file_content(&rig.remote("g"), b"quoted");
    let g = fs::metadata(rig.remote("g")).unwrap();
    assert_eq!(g.permissions().mode() & 0o7777, 0o640);
    assert_eq!(g.mtime(), 1_234_567_890);
    assert_eq!(
        fs::read_link(rig.remote("d/s")).unwrap(),
        rig.remote("g"),
        "symlink target first, as OpenSSH reads SYMLINK"
    );
    assert!(!rig.remote("grow.txt").exists(), "post-quote rm");
    // The listing was made before the post-quote rm.
    assert_eq!(
        long_listing_names(&out),
        [".", "..", "d", "down.bin", "g", "grow.txt", "new"],
        "{out}"
    );
    let g_line = out.lines().find(|l| l.ends_with(" g")).unwrap();
    assert!(g_line.starts_with("-rw-r-----"), "{g_line}");
    assert!(g_line.contains(" Feb 13  2009 g"), "{g_line}");

    // Names only (-l), a subdirectory, a symlink shown as such.
    let out = rig.run_ok(curl(&rig).arg("-l").arg(curl_url(&rig, "/d/")));
    let mut names: Vec<&str> = out.lines().collect();
    names.sort();
    assert_eq!(names, [".", "..", "s"], "{out}");
    let out = rig.run_ok(curl(&rig).arg(curl_url(&rig, "/d/")));
    let s_line = out.lines().find(|l| l.contains(" s -> ")).unwrap();
    assert!(s_line.starts_with('l'), "{s_line}");
    assert!(s_line.ends_with(&format!(" s -> {remote}/g")), "{s_line}");

    // Removing and failing: rm of a missing file fails the whole command (exit 21,
    // "quote command returned error") with the status text.
    rig.run_ok(
        curl(&rig)
            .arg("-Q")
            .arg(format!("rm {remote}/d/s"))
            .arg("-Q")
            .arg(format!("rmdir {remote}/d"))
            .arg("-Q")
            .arg(format!("rm {remote}/g"))
            .arg("-I")
            .arg(curl_url(&rig, "/")),
    );
    assert!(!rig.remote("d").exists() && !rig.remote("g").exists());
    let f = rig.run(
        curl(&rig)
            .arg("-Q")
            .arg(format!("rm {remote}/missing"))
            .arg("-I")
            .arg(curl_url(&rig, "/")),
    );
    assert_eq!(f.status.code(), Some(21), "{}", show(&f));
    assert!(
        String::from_utf8_lossy(&f.stderr).contains("rm command failed: No such file"),
        "{}",
        show(&f)
    );

    // A download of a missing file: SSH_FX_NO_SUCH_FILE is curl's exit 78.
    let f = rig.run(curl(&rig).arg(curl_url(&rig, "/missing")));
    assert_eq!(f.status.code(), Some(78), "{}", show(&f));
}

// ---------------------------------------------------------------------------
// rclone

/// rclone with no configuration file; remotes are given on the command line.
fn rclone() -> Command {
    let mut cmd = Command::new("rclone");
    cmd.args([
        "--config",
        "/dev/null",
        "--contimeout",
        "20s",
        "--timeout",
        "60s",
    ]);
    cmd
}

/// An on-the-fly remote (`:sftp,opts:path`) for `path` on this sshd, its host key
/// pinned.
///
/// rclone runs `md5sum`, `sha1sum` and `df` through the SSH shell when it can, which
/// would hash and size files without the SFTP server. `shell_type=none` and
/// `disable_hashcheck` keep every operation on SFTP: `about` then uses
/// statvfs@openssh.com, and `check --download` compares bytes read over SFTP. The test
/// asserts that sshd started no command session.
fn rclone_remote(rig: &Rig, known_hosts: &Path, path: &Path) -> String {
    format!(
        ":sftp,host=127.0.0.1,port={},user={},key_file={},known_hosts_file={},\
         shell_type=none,disable_hashcheck=true:{}",
        rig.sshd.port,
        rig.sshd.user,
        rig.sshd.user_key.display(),
        known_hosts.display(),
        path.display()
    )
}

#[test]
fn interop_rclone() {
    let rig = Rig::new("interop-rclone");
    let kh = rig.known_hosts();
    let src = rig.local("src");
    let want = make_tree(&src);
    let up = rclone_remote(&rig, &kh, &rig.remote("up"));

    rig.run_ok(rclone().arg("copy").arg(&src).arg(&up));
    assert_eq!(tree(&rig.remote("up")), want, "uploaded tree");
    // rclone sets each file's modification time (SETSTAT) after the upload.
    for name in want.keys() {
        let l = fs::metadata(src.join(name)).unwrap();
        let r = fs::metadata(rig.remote("up").join(name)).unwrap();
        assert_eq!(r.mtime(), l.mtime(), "{name}: mtime");
    }

    // check reads both sides byte by byte; make it fail once on a changed byte.
    rig.run_ok(rclone().args(["check", "--download"]).arg(&src).arg(&up));
    let mut big = want["a/b/big"].clone();
    big[MIB + 1] ^= 1;
    fs::write(rig.remote("up/a/b/big"), &big).unwrap();
    let f = rig.run(rclone().args(["check", "--download"]).arg(&src).arg(&up));
    assert!(
        !f.status.success(),
        "check missed a changed byte\n{}",
        show(&f)
    );
    assert!(
        String::from_utf8_lossy(&f.stderr).contains("1 differences found"),
        "{}",
        show(&f)
    );
    fs::write(rig.remote("up/a/b/big"), &want["a/b/big"]).unwrap();

    // And back down.
    let back = rig.local("back");
    rig.run_ok(rclone().arg("copy").arg(&up).arg(&back));
    assert_eq!(tree(&back), want, "downloaded tree");

    // about: statvfs@openssh.com, the total as statvfs(3) gives it.
    let out = rig.run_ok(rclone().args(["about", "--json"]).arg(&up));
    let vfs = nix::sys::statvfs::statvfs(&rig.ws.remote).unwrap();
    let total = vfs.fragment_size() as u64 * vfs.blocks() as u64;
    assert!(
        out.contains(&format!("\"total\": {total},")),
        "total {total} bytes expected\n{out}"
    );

    // moveto: a rename on the server (the file keeps its inode).
    let ino = fs::metadata(rig.remote("up/one")).unwrap().ino();
    rig.run_ok(
        rclone()
            .arg("moveto")
            .arg(rclone_remote(&rig, &kh, &rig.remote("up/one")))
            .arg(rclone_remote(&rig, &kh, &rig.remote("up/z/moved"))),
    );
    assert!(!rig.remote("up/one").exists());
    assert_eq!(fs::metadata(rig.remote("up/z/moved")).unwrap().ino(), ino);
    assert_file_content(&rig.remote("up/z/moved"), &want["one"]);

    // purge: the whole tree, directories included.
    rig.run_ok(rclone().arg("purge").arg(&up));
    assert!(!rig.remote("up").exists(), "purge left the tree");
    assert_eq!(fs::read_dir(&rig.ws.remote).unwrap().count(), 0);

    let log = rig.sshd.daemon.log();
    assert!(
        log.contains("Starting session: subsystem 'sftp'"),
        "sshd log without the sftp subsystem\n{log}"
    );
    assert!(
        !log.contains("Starting session: command"),
        "rclone ran a shell command\n{log}"
    );
}

// ---------------------------------------------------------------------------
// PuTTY's psftp

/// psftp in batch mode (`-batch`: never prompt) with the host key pinned by its
/// fingerprint and the user key converted to PuTTY's format; runs `batch` (lines).
fn psftp(rig: &Rig, ppk: &Path, hostkey: &str, batch: &[String]) -> Command {
    let file = rig.ws.ctl.join("psftp.batch");
    fs::write(&file, batch.join("\n") + "\n").expect("write psftp batch");
    let mut cmd = Command::new("psftp");
    cmd.args(["-batch", "-P"])
        .arg(rig.sshd.port.to_string())
        .arg("-l")
        .arg(&rig.sshd.user)
        .arg("-i")
        .arg(ppk)
        .arg("-hostkey")
        .arg(hostkey)
        .arg("-b")
        .arg(&file)
        .arg("127.0.0.1");
    cmd
}

#[test]
fn interop_psftp() {
    let rig = Rig::new("interop-psftp");
    let ppk = rig.ws.ctl.join("key.ppk");
    // Through rig.run: puttygen too writes a random seed file under HOME.
    rig.run_ok(
        Command::new("puttygen")
            .arg(&rig.sshd.user_key)
            .args(["-O", "private", "-o"])
            .arg(&ppk),
    );
    let hostkey = rig.host_key_sha256();
    let remote = rig.remote_str().to_string();
    let local = rig.ws.local.to_str().unwrap().to_string();

    let want = make_tree(&rig.local("t"));
    // reput and reget continue partial copies from where they end.
    let big = write_random_file(&rig.local("big"), 10, 2 * MIB + 11);
    fs::write(rig.remote("big"), &big[..MIB - 5]).unwrap();
    let dl = write_random_file(&rig.remote("dl"), 11, MIB + 3);
    fs::write(rig.local("dl"), &dl[..1000]).unwrap();
    let lines = [
        format!("cd {remote}"),
        format!("lcd {local}"),
        "put -r t t".into(),
        "reput big".into(),
        "reget dl".into(),
        "mkdir t/new".into(),
        "mv t/one t/new/".into(),
        "ren t/empty t/new/renamed".into(),
        "ls t/new".into(),
        "get -r t back".into(),
        "del t/z/last".into(),
        "rmdir t/z".into(),
        "chmod go-r big".into(),
        "chmod 0600 dl".into(),
        "pwd".into(),
    ];
    let out = rig.run_ok(&mut psftp(&rig, &ppk, &hostkey, &lines));

    let mut moved = want.clone();
    for (from, to) in [("one", "new/one"), ("empty", "new/renamed")] {
        let data = moved.remove(from).unwrap();
        moved.insert(to.into(), data);
    }
    assert_eq!(tree(&rig.local("back")), moved, "downloaded tree");
    moved.remove("z/last");
    assert_eq!(tree(&rig.remote("t")), moved, "remote tree");
    assert!(!rig.remote("t/z").exists());
    assert_file_content(&rig.remote("big"), &big);
    assert_file_content(&rig.local("dl"), &dl);
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(rig.remote("big")), 0o600);
    assert_eq!(mode(rig.remote("dl")), 0o600);
    assert!(
        out.contains(&format!("reput: restarting at file position {}", MIB - 5)),
        "{out}"
    );
    assert!(
        out.contains("reget: restarting at file position 1000"),
        "{out}"
    );
    // psftp sorts the listing; `.` and `..` included, sizes as sent.
    let listing: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("Listing directory {remote}/t/new")))
        .skip(1)
        .take(4)
        .collect();
    assert_eq!(
        long_listing_names(&listing.join("\n")),
        [".", "..", "one", "renamed"],
        "{out}"
    );
    let one: Vec<&str> = listing[2].split_whitespace().collect();
    assert_eq!(
        (one[0], one[4], one[8]),
        ("-rw-r--r--", "1", "one"),
        "{out}"
    );
    assert!(
        out.contains(&format!("Remote directory is {remote}\n")),
        "{out}"
    );

    // A failing command ends the batch with a non-zero exit.
    let f = rig.run(&mut psftp(
        &rig,
        &ppk,
        &hostkey,
        &[
            format!("rm {remote}/missing"),
            format!("mkdir {remote}/after"),
        ],
    ));
    assert!(!f.status.success(), "{}", show(&f));
    assert!(
        String::from_utf8_lossy(&f.stdout).contains("no such file or directory"),
        "{}",
        show(&f)
    );
    assert!(
        !rig.remote("after").exists(),
        "psftp went on after a failure"
    );
}

// ---------------------------------------------------------------------------
// paramiko and asyncssh

/// Runs a Python client script (`paramiko_client.py`, `asyncssh_client.py`) against
/// this sshd after making remote/down.bin and local/up.bin; checks the download and
/// returns what the script printed. Debian's /usr/bin/python3 has the packages (the
/// python3 first on PATH may be another).
fn python_client(rig: &Rig, script: &str) -> String {
    let down = write_random_file(&rig.remote("down.bin"), 20, 3 * MIB + 13);
    write_random_file(&rig.local("up.bin"), 21, 2 * MIB + 9);
    let kh = rig.known_hosts();
    let file = rig.ws.ctl.join("client.py");
    fs::write(&file, script).expect("write client script");
    let out = rig.run_ok(
        Command::new("/usr/bin/python3")
            // asyncssh imports ciphers that python3-cryptography warns about.
            .args(["-W", "ignore"])
            .arg(&file)
            .arg("127.0.0.1")
            .arg(rig.sshd.port.to_string())
            .arg(&rig.sshd.user)
            .arg(&rig.sshd.user_key)
            .arg(&kh)
            .arg(&rig.ws.remote)
            .arg(&rig.ws.local),
    );
    assert_file_content(&rig.local("down.bin"), &down);
    assert!(out.ends_with("done\n"), "{out}");
    out
}

#[test]
fn interop_paramiko() {
    let rig = Rig::new("interop-paramiko");
    let out = python_client(&rig, include_str!("paramiko_client.py"));
    assert_file_content(&rig.remote("up.bin"), &pseudo_random(21, 2 * MIB + 9));
    // paramiko raises the status message as the error text: FAILURE's text differs
    // (README, Differences from OpenSSH).
    let failure = |ours: &str| {
        if testing_openssh() {
            "OSError Failure".to_string()
        } else {
            format!("OSError {ours}")
        }
    };
    let want = [
        ("open-excl-existing", failure("File exists")),
        ("rename-onto-existing", failure("File exists")),
        ("remove-directory", failure("Is a directory")),
        ("rmdir-nonempty", failure("Directory not empty")),
        ("mkdir-existing", failure("File exists")),
        (
            "open-missing-dir",
            "FileNotFoundError [Errno 2] No such file".to_string(),
        ),
    ];
    for (what, text) in want {
        let line = format!("{what} {text}\n");
        assert!(out.contains(&line), "expected {line:?}\n{out}");
    }
}

#[test]
fn interop_asyncssh() {
    let rig = Rig::new("interop-asyncssh");
    let out = python_client(&rig, include_str!("asyncssh_client.py"));
    assert!(out.contains("remove-missing 2 No such file\n"), "{out}");
    let names: Vec<_> = fs::read_dir(&rig.ws.remote)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["down.bin"]);
}
