//! Policies for shared upload directories: `-m` (the mode of what OPEN and MKDIR
//! create, as SUSE's and Red Hat's OpenSSH define it), `--force-mode-on-setstat`, and
//! `--atomic-uploads` (a reader sees the old file or the whole new one, never a part).
//!
//! The options are this server's (and, for `-m`, a patched OpenSSH's): against the
//! stock OpenSSH server these tests check only what it shares, or return at once.

use crate::support::clients::{Batch, SftpClient, Workspace, server_command};
use crate::support::raw::*;
use crate::support::session::Session;
use crate::support::status::assert_status;
use crate::support::{Scratch, Spawn, testing_openssh};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn ours_only(test: &str) -> bool {
    if testing_openssh() {
        eprintln!("{test}: the options are this server's: nothing to check against OpenSSH");
        return false;
    }
    true
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn serve(dir: &Path, args: &[&str], umask: u32) -> Session {
    Session::init(Spawn::new(dir).args(args).umask(umask).start())
}

fn create(s: &mut Session, path: &[u8], pflags: u32, attrs: Attrs) -> Vec<u8> {
    s.handle(Request::Open {
        path,
        pflags,
        attrs,
    })
}

const NEW: u32 = SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC;

/// `-m 0640` gives exactly 0640 to every file OPEN creates and every directory MKDIR
/// creates, whatever the client asks, the umask (022 or 077) and `-u` (077 given
/// before or after `-m`). An existing file truncated keeps its mode, and SETSTAT,
/// FSETSTAT and lsetstat still set any mode (the patch does not touch them).
#[test]
fn policy_force_mode_on_open_and_mkdir() {
    if !ours_only("policy_force_mode_on_open_and_mkdir") {
        return;
    }
    let scratch = Scratch::new("policy-force-mode");
    let d = scratch.path();
    std::fs::write(d.join("old"), b"old").unwrap();
    std::fs::set_permissions(d.join("old"), std::fs::Permissions::from_mode(0o604)).unwrap();
    for (i, (args, umask)) in [
        (&["-m", "0640"][..], 0o022),
        (&["-m", "640", "-u", "077"][..], 0o022),
        (&["-u", "077", "-m0640"][..], 0o077),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = serve(d, args, umask);
        for (name, asked) in [("a", Some(0o777)), ("b", Some(0o600)), ("c", None)] {
            let name = format!("{name}{i}");
            let attrs = match asked {
                Some(m) => Attrs::none().with_permissions(m),
                None => Attrs::none(),
            };
            let h = create(&mut s, name.as_bytes(), NEW, attrs);
            s.close(&h);
            assert_eq!(
                mode_of(&d.join(&name)),
                0o640,
                "{name} {args:?} asked {asked:?}"
            );
            let dir = format!("dir-{name}");
            let attrs = match asked {
                Some(m) => Attrs::none().with_permissions(m),
                None => Attrs::none(),
            };
            s.ok(Request::Mkdir {
                path: dir.as_bytes(),
                attrs,
            });
            assert_eq!(mode_of(&d.join(&dir)), 0o640, "{dir} {args:?}");
        }
        let h = create(&mut s, b"old", NEW, Attrs::none().with_permissions(0o777));
        s.close(&h);
        assert_eq!(
            mode_of(&d.join("old")),
            0o604,
            "an existing file keeps its mode"
        );
        let name = format!("a{i}");
        s.ok(Request::Setstat {
            path: name.as_bytes(),
            attrs: Attrs::none().with_permissions(0o755),
        });
        assert_eq!(
            mode_of(&d.join(&name)),
            0o755,
            "-m alone leaves SETSTAT alone"
        );
        s.ok(Request::Setstat {
            path: name.as_bytes(),
            attrs: Attrs::none().with_permissions(0o640),
        });
        s.finish();
    }
}

/// `--force-mode-on-setstat`: SETSTAT, FSETSTAT and lsetstat of permissions set the
/// `-m` mode on files and directories, while sizes and times still apply.
#[test]
fn policy_force_mode_on_setstat() {
    if !ours_only("policy_force_mode_on_setstat") {
        return;
    }
    let scratch = Scratch::new("policy-setstat");
    let d = scratch.path();
    std::fs::write(d.join("f"), b"0123456789").unwrap();
    std::fs::create_dir(d.join("dir")).unwrap();
    let mut s = serve(d, &["-m", "0640", "--force-mode-on-setstat"], 0o022);
    s.ok(Request::Setstat {
        path: b"f",
        attrs: Attrs::none()
            .with_permissions(0o4777)
            .with_size(4)
            .with_times(1_000_000, 2_000_000),
    });
    let md = std::fs::metadata(d.join("f")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.len(), md.mtime()),
        (0o640, 4, 2_000_000)
    );
    s.ok(Request::Setstat {
        path: b"dir",
        attrs: Attrs::none().with_permissions(0o700),
    });
    assert_eq!(mode_of(&d.join("dir")), 0o640);
    let h = create(&mut s, b"g", NEW, Attrs::none().with_permissions(0o600));
    s.ok(Request::Fsetstat {
        handle: &h,
        attrs: Attrs::none()
            .with_permissions(0o777)
            .with_times(3_000_000, 3_000_000),
    });
    s.close(&h);
    let md = std::fs::metadata(d.join("g")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o640, 3_000_000));
    let lsetstat = Buf::new()
        .str(b"f")
        .bytes(&Attrs::none().with_permissions(0o777).encode())
        .into_vec();
    let r = s.ext("lsetstat@openssh.com", &lsetstat);
    assert_status(&r, SSH_FX_OK);
    assert_eq!(mode_of(&d.join("f")), 0o640);
    s.finish();
}

/// Through OpenSSH's `sftp`: `put` sends the local file's mode, `put -p` a SETSTAT
/// right after, and `mkdir`/`chmod` their own modes; with `-m 0640` every upload
/// lands 0640 (under a server umask of 077 too), `put -p` and `chmod` change that
/// only without `--force-mode-on-setstat`, and `put -p` still keeps the mtime.
#[test]
fn policy_force_mode_through_sftp() {
    if !ours_only("policy_force_mode_through_sftp") {
        return;
    }
    for setstat in [false, true] {
        let ws = Workspace::new("policy-sftp");
        let wrapper = ws.ctl.join("server.sh");
        let extra = if setstat {
            "--force-mode-on-setstat"
        } else {
            ""
        };
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\numask 077\nexec {} -u 022 -m 0640 {extra}\n",
                server_command()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, mode) in [("open", 0o777), ("private", 0o600)] {
            let p = ws.local.join(name);
            std::fs::write(&p, name).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let mtime = std::fs::metadata(ws.local.join("open")).unwrap().mtime();
        let local = |n: &str| ws.local.join(n).display().to_string();
        SftpClient::new(&ws.remote, &ws.ctl)
            .arg("-D")
            .arg(wrapper.display().to_string())
            .run(
                &Batch::new()
                    .cmd(format!("put {} open", local("open")))
                    .cmd(format!("put {} private", local("private")))
                    .cmd(format!("put -p {} kept", local("open")))
                    .cmd("mkdir dir")
                    .cmd(format!("put {} chmodded", local("private")))
                    .cmd("chmod 755 chmodded"),
            )
            .ok();
        let r = &ws.remote;
        for name in ["open", "private", "dir"] {
            assert_eq!(mode_of(&r.join(name)), 0o640, "{name}");
        }
        let after_setstat = if setstat { 0o640 } else { 0o777 };
        assert_eq!(mode_of(&r.join("kept")), after_setstat, "put -p");
        assert_eq!(std::fs::metadata(r.join("kept")).unwrap().mtime(), mtime);
        let after_chmod = if setstat { 0o640 } else { 0o755 };
        assert_eq!(mode_of(&r.join("chmodded")), after_chmod, "chmod");
    }
}

// ---------------------------------------------------------------------------------
// --atomic-uploads
// ---------------------------------------------------------------------------------

/// The ways a server is started for the atomic upload tests: in the directory, and
/// confined to it with the sandbox (Landlock).
fn setups(d: &Path) -> Vec<Vec<String>> {
    vec![
        vec!["--atomic-uploads".into()],
        vec![
            "--atomic-uploads".into(),
            "--root".into(),
            d.display().to_string(),
            "--sandbox".into(),
        ],
    ]
}

fn start(d: &Path, args: &[String]) -> Session {
    Session::init(Spawn::new(d).args(args).start())
}

/// The entries of directory `d` on disk, sorted.
fn on_disk(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The names a READDIR of `.` lists, without `.` and `..`, sorted.
fn listed(s: &mut Session) -> Vec<String> {
    let h = s.handle(Request::Opendir { path: b"." });
    let mut v = Vec::new();
    loop {
        match s.call(Request::Readdir { handle: &h }) {
            Reply::Name { entries, .. } => v.extend(
                entries
                    .into_iter()
                    .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                    .filter(|n| n != "." && n != ".."),
            ),
            r => {
                assert_status(&r, SSH_FX_EOF);
                break;
            }
        }
    }
    s.close(&h);
    v.sort();
    v
}

/// An upload with WRITE|CREAT|TRUNC: until CLOSE the target is the old file for a
/// STAT, a listing, another session and a reader on disk, and no other entry shows;
/// the handle itself reads, FSTATs and FSETSTATs (mode, times, size) the new data;
/// CLOSE puts it in place with what FSETSTAT set. A new file appears only at CLOSE.
#[test]
fn policy_atomic_upload_is_hidden_until_close() {
    if !ours_only("policy_atomic_upload_is_hidden_until_close") {
        return;
    }
    let scratch = Scratch::new("policy-atomic-hidden");
    let d = scratch.path();
    for args in setups(d) {
        std::fs::write(d.join("target"), b"old content").unwrap();
        std::fs::set_permissions(d.join("target"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = on_disk(d);
        let mut s = start(d, &args);
        let mut other = start(d, &args);
        let rw = SSH_FXF_READ | NEW;
        let h = create(&mut s, b"target", rw, Attrs::none().with_permissions(0o600));
        s.write(&h, 0, b"new data, longer than before");
        assert_eq!(s.read(&h, 0, 8), b"new data");
        assert_eq!(
            s.attrs(Request::Fstat { handle: &h }).size,
            28,
            "FSTAT: the new data"
        );
        for who in [&mut s, &mut other] {
            let st = who.attrs(Request::Stat { path: b"target" });
            assert_eq!((st.size, st.permissions & 0o7777), (11, 0o640), "{args:?}");
            assert_eq!(listed(who), before, "{args:?}");
        }
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"old content");
        assert_eq!(on_disk(d), before, "no entry on disk meanwhile");
        s.ok(Request::Fsetstat {
            handle: &h,
            attrs: Attrs::none()
                .with_size(8)
                .with_permissions(0o604)
                .with_times(1_000_000, 1_500_000),
        });
        let hn = create(&mut s, b"fresh", NEW, Attrs::none().with_permissions(0o600));
        s.write(&hn, 0, b"fresh");
        assert!(
            !d.join("fresh").exists(),
            "a new file appears only at CLOSE"
        );
        s.close(&hn);
        s.close(&h);
        let md = std::fs::metadata(d.join("target")).unwrap();
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"new data");
        assert_eq!((md.mode() & 0o7777, md.mtime()), (0o604, 1_500_000));
        assert_eq!(std::fs::read(d.join("fresh")).unwrap(), b"fresh");
        assert_eq!(mode_of(&d.join("fresh")), 0o600 & !0o022 & 0o600);
        let st = other.attrs(Request::Stat { path: b"target" });
        assert_eq!(st.size, 8, "the other session sees the new file");
        s.finish();
        other.finish();
        std::fs::remove_file(d.join("fresh")).unwrap();
        assert_eq!(on_disk(d), before);
    }
}

/// A session that ends with an upload half done, by EOF, by SIGTERM to the server
/// (caught) and by SIGKILL: the old content is byte for byte there, and nothing else
/// is, on disk or in a listing. The same after an upload of a new name.
#[test]
fn policy_atomic_upload_interrupted_leaves_target() {
    if !ours_only("policy_atomic_upload_interrupted_leaves_target") {
        return;
    }
    let scratch = Scratch::new("policy-atomic-killed");
    let d = scratch.path();
    let old = crate::support::content::pseudo_random(7, 3 << 20);
    let new = crate::support::content::pseudo_random(8, 4 << 20);
    for args in setups(d) {
        for how in ["eof", "SIGTERM", "SIGKILL"] {
            std::fs::write(d.join("target"), &old).unwrap();
            let before = on_disk(d);
            let mut s = start(d, &args);
            let h = create(&mut s, b"target", NEW, Attrs::none());
            let hn = create(&mut s, b"new-name", NEW, Attrs::none());
            for (i, chunk) in new[..new.len() / 2].chunks(32768).enumerate() {
                s.write(&h, (i * 32768) as u64, chunk);
                s.write(&hn, (i * 32768) as u64, chunk);
            }
            match how {
                "eof" => {
                    let status = s.finish();
                    assert!(status.success(), "{status:?}");
                }
                sig => {
                    let sig = match sig {
                        "SIGTERM" => nix::sys::signal::Signal::SIGTERM,
                        _ => nix::sys::signal::Signal::SIGKILL,
                    };
                    let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
                    nix::sys::signal::kill(pid, sig).unwrap();
                    let status = s.wait_exit(std::time::Duration::from_secs(10));
                    use std::os::unix::process::ExitStatusExt;
                    assert_eq!(status.signal(), Some(sig as i32), "{how}");
                }
            }
            assert!(
                std::fs::read(d.join("target")).unwrap() == old,
                "{how} {args:?}: the old content"
            );
            assert_eq!(on_disk(d), before, "{how} {args:?}: nothing left on disk");
            let mut s = start(d, &args);
            assert_eq!(listed(&mut s), before, "{how} {args:?}: listing");
            s.finish();
        }
    }
}

/// EXCL keeps its meaning: an existing target refuses the OPEN; a target created by
/// someone else between OPEN and CLOSE makes CLOSE fail with "File exists" and stays
/// as they wrote it; the audit log's transfer record of that CLOSE is an error. (The
/// first part is OpenSSH's behaviour too.)
#[test]
fn policy_atomic_upload_excl() {
    let scratch = Scratch::new("policy-atomic-excl");
    let d = scratch.path();
    let log = scratch.path().join("audit.log");
    std::fs::create_dir(d.join("up")).unwrap();
    let up = d.join("up");
    let excl = SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC | SSH_FXF_EXCL;
    std::fs::write(up.join("there"), b"theirs").unwrap();
    let mut cases = setups(&up);
    if testing_openssh() {
        cases = vec![vec![]];
    }
    for mut args in cases {
        if !testing_openssh() {
            args.extend(["--audit-log".into(), log.display().to_string()]);
        }
        let mut s = start(&up, &args);
        let r = s.call(Request::Open {
            path: b"there",
            pflags: excl,
            attrs: Attrs::none(),
        });
        crate::support::status::assert_os_failure(&r, "File exists");
        if testing_openssh() {
            s.finish();
            return;
        }
        let h = create(&mut s, b"race", excl, Attrs::none());
        s.write(&h, 0, b"ours");
        std::fs::write(up.join("race"), b"theirs").unwrap();
        let r = s.call(Request::Close { handle: &h });
        crate::support::status::assert_os_failure(&r, "File exists");
        assert_eq!(std::fs::read(up.join("race")).unwrap(), b"theirs");
        // Without the race, EXCL creates.
        let h = create(&mut s, b"mine", excl, Attrs::none());
        s.write(&h, 0, b"ours");
        s.close(&h);
        assert_eq!(std::fs::read(up.join("mine")).unwrap(), b"ours");
        s.finish();
        assert_eq!(on_disk(&up), ["mine", "race", "there"]);
        let text = std::fs::read_to_string(&log).unwrap();
        let race: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &serde_json::Value| r["event"] == "transfer")
            .collect();
        let race_path = race[race.len() - 2]["path"].as_str().unwrap().to_string();
        assert!(race_path.ends_with("/race"), "{race_path}");
        assert_eq!(race[race.len() - 2]["status"], "error");
        assert_eq!(race[race.len() - 1]["status"], "ok");
        std::fs::remove_file(up.join("race")).unwrap();
        std::fs::remove_file(up.join("mine")).unwrap();
        std::fs::remove_file(&log).unwrap();
    }
}

/// Opens without TRUNC write in place as before: `reput` of a partial file appends
/// to it (through OpenSSH's `sftp`), and a WRITE without TRUNC is seen at once.
#[test]
fn policy_atomic_upload_resume_writes_in_place() {
    let ws = Workspace::new("policy-atomic-reput");
    let data = crate::support::content::pseudo_random(9, 1 << 20);
    std::fs::write(ws.local.join("file"), &data).unwrap();
    std::fs::write(ws.remote.join("file"), &data[..300_000]).unwrap();
    let atomic = if testing_openssh() {
        ""
    } else {
        " --atomic-uploads"
    };
    SftpClient::new(&ws.remote, &ws.ctl)
        .arg("-D")
        .arg(format!("{}{atomic}", server_command()))
        .run(&Batch::new().cmd(format!("reput {} file", ws.local.join("file").display())))
        .ok();
    assert!(
        std::fs::read(ws.remote.join("file")).unwrap() == data,
        "reput"
    );
    let mut args = vec![];
    if !testing_openssh() {
        args.push("--atomic-uploads".to_string());
    }
    let mut s = start(&ws.remote, &args);
    let h = create(&mut s, b"file", SSH_FXF_WRITE, Attrs::none());
    s.write(&h, 0, b"INPLACE");
    assert_eq!(
        &std::fs::read(ws.remote.join("file")).unwrap()[..7],
        b"INPLACE"
    );
    s.close(&h);
    s.finish();
}

/// A reader polls the target every millisecond while OpenSSH's `sftp` uploads
/// 200 MiB over it with `--atomic-uploads`, plain and under `--root`: every size it
/// sees is the old file's or the final one, and it sees the final one at the end.
#[test]
fn policy_atomic_upload_reader_never_sees_a_part() {
    if !ours_only("policy_atomic_upload_reader_never_sees_a_part") {
        return;
    }
    let ws = Workspace::new("policy-atomic-poll");
    let size = 200 << 20;
    let data = crate::support::content::pseudo_random(11, size);
    std::fs::write(ws.local.join("big"), &data).unwrap();
    drop(data);
    for root in [false, true] {
        std::fs::write(ws.remote.join("big"), b"old").unwrap();
        let target = ws.remote.join("big");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let stop = stop.clone();
            let target = target.clone();
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeMap::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let len = std::fs::metadata(&target).map(|m| m.len()).ok();
                    *seen.entry(len).or_insert(0u64) += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                seen
            })
        };
        let extra = match root {
            true => format!(
                " --root {}",
                crate::support::clients::sftp_quote(&ws.remote)
            ),
            false => String::new(),
        };
        SftpClient::new(&ws.remote, &ws.ctl)
            .arg("-D")
            .arg(format!("{} --atomic-uploads{extra}", server_command()))
            .run(&Batch::new().cmd(format!("put {} big", ws.local.join("big").display())))
            .ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = poller.join().unwrap();
        let sizes: Vec<_> = seen.keys().copied().collect();
        assert_eq!(sizes, [Some(3), Some(size as u64)], "root {root}: {seen:?}");
        assert!(
            seen[&Some(3)] > 10,
            "the reader polled during the upload: {seen:?}"
        );
        assert_eq!(on_disk(&ws.remote), ["big"]);
    }
}

/// On a file system without `O_TMPFILE` (the FUSE file system of the tests), the new
/// data goes to a hidden file with a name: listings leave it out, CLOSE renames it
/// over the target, and a session ended by EOF or SIGTERM removes it.
#[test]
fn policy_atomic_upload_named_fallback() {
    if !ours_only("policy_atomic_upload_named_fallback") {
        return;
    }
    use crate::support::faultfs::{FaultFs, Options};
    let scratch = Scratch::new("policy-atomic-named");
    let fs = FaultFs::mount(&scratch.path().join("fuse"), Options::default());
    let dir = scratch.path().join("fuse");
    fs.put("target", b"old");
    for how in ["close", "eof", "SIGTERM"] {
        let mut s = start(scratch.path(), &["--atomic-uploads".to_string()]);
        let h = create(&mut s, b"fuse/target", NEW, Attrs::none());
        s.write(&h, 0, b"new content");
        let entries = on_disk(&dir);
        assert_eq!(entries.len(), 2, "a hidden file on disk: {entries:?}");
        assert!(entries[0].starts_with(".sftp-upload-"), "{entries:?}");
        let lh = s.handle(Request::Opendir { path: b"fuse" });
        let names: Vec<_> = s
            .names(Request::Readdir { handle: &lh })
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        s.close(&lh);
        assert_eq!(names, ["target"], "the listing leaves it out");
        assert_eq!(fs.content("target").unwrap(), b"old");
        match how {
            "close" => {
                s.close(&h);
                s.finish();
                assert_eq!(fs.content("target").unwrap(), b"new content");
                fs.put("target", b"old");
            }
            "eof" => {
                s.finish();
            }
            _ => {
                let pid = nix::unistd::Pid::from_raw(s.pid() as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
                s.wait_exit(std::time::Duration::from_secs(10));
            }
        }
        assert_eq!(fs.content("target").unwrap(), b"old", "{how}");
        assert_eq!(on_disk(&dir), ["target"], "{how}: nothing left");
    }
}

/// Where the file system has no RENAME_NOREPLACE (and the tests' FUSE file system has
/// no hard links either), a move that must not replace falls back to a check then a
/// rename: v3 RENAME and the last step of an EXCL atomic upload both still land, and
/// both still refuse an existing name.
#[test]
fn policy_no_replace_without_rename_flags() {
    use crate::support::faultfs::{FaultFs, Options};
    let scratch = Scratch::new("policy-norename2");
    let options = Options {
        no_rename_flags: true,
        ..Options::default()
    };
    let fs = FaultFs::mount(&scratch.path().join("fuse"), options);
    fs.put("a", b"a");
    fs.put("taken", b"theirs");
    let mut s = start(scratch.path(), &[]);
    s.ok(Request::Rename {
        old: b"fuse/a",
        new: b"fuse/b",
    });
    assert_eq!(fs.content("b").unwrap(), b"a");
    let r = s.call(Request::Rename {
        old: b"fuse/b",
        new: b"fuse/taken",
    });
    assert!(
        matches!(
            r,
            Reply::Status {
                code: SSH_FX_FAILURE,
                ..
            }
        ),
        "RENAME onto an existing name: {r:?}"
    );
    assert_eq!(fs.content("taken").unwrap(), b"theirs");
    s.finish();
    if testing_openssh() {
        return;
    }

    let excl = NEW | SSH_FXF_EXCL;
    let mut s = start(scratch.path(), &["--atomic-uploads".to_string()]);
    let h = create(&mut s, b"fuse/new", excl, Attrs::none());
    s.write(&h, 0, b"ours");
    s.close(&h);
    assert_eq!(fs.content("new").unwrap(), b"ours");
    let h = create(&mut s, b"fuse/race", excl, Attrs::none());
    s.write(&h, 0, b"ours");
    fs.put("race", b"theirs");
    let r = s.call(Request::Close { handle: &h });
    crate::support::status::assert_os_failure(&r, "File exists");
    assert_eq!(fs.content("race").unwrap(), b"theirs");
    s.finish();
    assert_eq!(
        on_disk(&scratch.path().join("fuse")),
        ["b", "new", "race", "taken"]
    );
}
