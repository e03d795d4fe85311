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
