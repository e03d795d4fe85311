//! OpenSSH's `sftp` client in batch mode running the server under test itself
//! (`sftp -D SERVER -b FILE`, started in the workspace's `remote/` directory, which
//! so becomes the server's working directory). Each test checks sftp's exit status,
//! what it printed, and the files on disk.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::support::clients::{Batch, Workspace, parse_ls_long, sftp_quote as q};
use crate::support::content::{
    MIB, assert_file_content, assert_same_bytes, pseudo_random, write_random_file,
};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A path made of raw bytes (for names that are not UTF-8).
fn byte_path(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(std::ffi::OsString::from_vec(name.to_vec()))
}

/// A batch line made of raw byte words separated by spaces.
fn byte_line(words: &[&[u8]]) -> Vec<u8> {
    words.join(&b' ')
}

/// Every regular file and directory under `root`, by relative path: file content, or
/// `None` for a directory.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(read(&p)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn batch_ls_long_shows_names_and_sizes() {
    let ws = Workspace::new("batch-ls");
    let r = &ws.remote;
    write_random_file(&r.join("big.bin"), 1, 3 * MIB + 7);
    fs::write(r.join("empty"), b"").unwrap();
    fs::write(r.join("one"), b"x").unwrap();
    fs::write(r.join(".hidden"), b"abc").unwrap();
    fs::create_dir(r.join("subdir")).unwrap();
    fs::write(r.join("subdir/inner"), b"12345").unwrap();

    let run = ws
        .direct()
        .run(
            &Batch::new()
                .cmd("pwd")
                .cmd("ls -l")
                .cmd("ls -la")
                .cmd("ls -l subdir"),
        )
        .ok();

    let cwd = fs::canonicalize(r).unwrap();
    assert_eq!(
        run.output_of("pwd").trim(),
        format!("Remote working directory: {}", cwd.display()),
        "{run}"
    );

    let ls = parse_ls_long(&run.output_of("ls -l"));
    let summary: Vec<(&str, char, Option<u64>)> = ls
        .iter()
        .map(|e| {
            let kind = e.perms.chars().next().unwrap();
            // A directory's size depends on the file system.
            let size = (kind != 'd').then_some(e.size);
            (e.name.as_str(), kind, size)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("big.bin", '-', Some(3 * MIB as u64 + 7)),
            ("empty", '-', Some(0)),
            ("one", '-', Some(1)),
            ("subdir", 'd', None),
        ],
        "{run}"
    );

    let all = parse_ls_long(&run.output_of("ls -la"));
    let hidden = all.iter().find(|e| e.name == ".hidden");
    assert_eq!(hidden.map(|e| e.size), Some(3), "{run}");
    assert!(all.iter().any(|e| e.name == "big.bin"), "{run}");

    let sub = parse_ls_long(&run.output_of("ls -l subdir"));
    assert_eq!(sub.len(), 1, "{run}");
    assert!(sub[0].name.ends_with("inner"), "{run}");
    assert_eq!(sub[0].size, 5, "{run}");
}

#[test]
fn batch_put_get_roundtrip() {
    let ws = Workspace::new("batch-putget");
    let (l, r) = (&ws.local, &ws.remote);
    let data = write_random_file(&l.join("src.bin"), 2, 4 * MIB + 123);
    fs::write(l.join("empty.bin"), b"").unwrap();
    let stamped = write_random_file(&l.join("stamped.bin"), 3, MIB);
    fs::set_permissions(l.join("stamped.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    let mtime = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(l.join("stamped.bin"))
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
        .unwrap();
    fs::create_dir(l.join("sub")).unwrap();

    ws.direct()
        .run(
            &Batch::new()
                .cmd(format!("put {} up.bin", q(&l.join("src.bin"))))
                .cmd(format!("get up.bin {}", q(&l.join("down.bin"))))
                // No target name: the remote working directory, the same name.
                .cmd(format!("put {}", q(&l.join("src.bin"))))
                .cmd(format!("put {} empty.bin", q(&l.join("empty.bin"))))
                .cmd(format!("get empty.bin {}", q(&l.join("empty.down")))),
        )
        .ok();
    assert_file_content(&r.join("up.bin"), &data);
    assert_file_content(&l.join("down.bin"), &data);
    assert_file_content(&r.join("src.bin"), &data);
    assert_file_content(&r.join("empty.bin"), b"");
    assert_file_content(&l.join("empty.down"), b"");

    // -p keeps permissions and times, both ways; lcd + get without a local name.
    ws.direct()
        .run(
            &Batch::new()
                .cmd(format!("put -p {} stamped.bin", q(&l.join("stamped.bin"))))
                .cmd(format!("lcd {}", q(&l.join("sub"))))
                .cmd("get -p stamped.bin"),
        )
        .ok();
    for p in [r.join("stamped.bin"), l.join("sub/stamped.bin")] {
        assert_file_content(&p, &stamped);
        assert_eq!(mode(&p), 0o640, "{}", p.display());
        let got = fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(got, mtime, "{}", p.display());
    }
}

#[test]
fn batch_reget_resumes_partial_download() {
    let ws = Workspace::new("batch-reget");
    let full = write_random_file(&ws.remote.join("full.bin"), 4, 5 * MIB + 321);
    // The partial local copy is marked, so a resumed download (which keeps what is
    // there) can be told apart from a fresh one.
    let have = 2 * MIB + 99;
    let mut partial = full[..have].to_vec();
    partial[0] ^= 0xff;
    partial[have - 1] ^= 0xff;
    let local = ws.local.join("full.bin");
    fs::write(&local, &partial).unwrap();

    ws.direct()
        .run(&Batch::new().cmd(format!("reget full.bin {}", q(&local))))
        .ok();

    let mut expected = partial;
    expected.extend_from_slice(&full[have..]);
    assert_file_content(&local, &expected);
}

#[test]
fn batch_reput_resumes_partial_upload() {
    let ws = Workspace::new("batch-reput");
    let local = ws.local.join("full.bin");
    let full = write_random_file(&local, 5, 5 * MIB + 321);
    let have = 3 * MIB - 1;
    let mut partial = full[..have].to_vec();
    partial[0] ^= 0xff;
    partial[have - 1] ^= 0xff;
    fs::write(ws.remote.join("full.bin"), &partial).unwrap();

    ws.direct()
        .run(&Batch::new().cmd(format!("reput {} full.bin", q(&local))))
        .ok();

    let mut expected = partial;
    expected.extend_from_slice(&full[have..]);
    assert_file_content(&ws.remote.join("full.bin"), &expected);
}

#[test]
fn batch_rename() {
    let ws = Workspace::new("batch-rename");
    let r = &ws.remote;
    for name in ["a", "c", "d", "e"] {
        fs::write(r.join(name), name).unwrap();
    }
    fs::create_dir(r.join("dir")).unwrap();

    ws.direct()
        .run(
            &Batch::new()
                .cmd("rename a b")
                // Onto an existing file: replaced (posix-rename@openssh.com).
                .cmd("rename c b")
                .cmd("rename d dir/d2")
                .cmd("rename dir dir2"),
        )
        .ok();
    assert!(!r.join("a").exists() && !r.join("c").exists() && !r.join("d").exists());
    assert_eq!(read(&r.join("b")), b"c");
    assert!(!r.join("dir").exists());
    assert_eq!(read(&r.join("dir2/d2")), b"d");

    // The protocol's own rename (-l) refuses to replace an existing file.
    let run = ws.direct().run(&Batch::new().cmd("rename -l e b")).failed();
    assert_eq!(read(&r.join("e")), b"e", "{run}");
    assert_eq!(read(&r.join("b")), b"c", "{run}");
    ws.direct().run(&Batch::new().cmd("rename -l e f")).ok();
    assert_eq!(read(&r.join("f")), b"e");
    assert!(!r.join("e").exists());
}

#[test]
fn batch_mkdir_rmdir() {
    let ws = Workspace::new("batch-mkdir");
    let r = &ws.remote;
    ws.direct()
        .run(
            &Batch::new()
                .cmd("mkdir newdir")
                .cmd("mkdir newdir/nested")
                .cmd("mkdir gone")
                .cmd("rmdir gone"),
        )
        .ok();
    assert!(r.join("newdir/nested").is_dir());
    assert!(!r.join("gone").exists());

    // A directory that is not empty stays; an existing one cannot be made again.
    let run = ws.direct().run(&Batch::new().cmd("rmdir newdir")).failed();
    assert!(r.join("newdir/nested").is_dir(), "{run}");
    ws.direct().run(&Batch::new().cmd("mkdir newdir")).failed();

    ws.direct()
        .run(&Batch::new().cmd("rmdir newdir/nested").cmd("rmdir newdir"))
        .ok();
    assert!(!r.join("newdir").exists());
}

#[test]
fn batch_rm() {
    let ws = Workspace::new("batch-rm");
    let r = &ws.remote;
    for name in ["one.tmp", "two.tmp", "keep.txt", "single.bin"] {
        fs::write(r.join(name), name).unwrap();
    }
    ws.direct()
        .run(&Batch::new().cmd("rm single.bin").cmd("rm *.tmp"))
        .ok();
    let left: Vec<_> = fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["keep.txt"]);

    ws.direct().run(&Batch::new().cmd("rm missing")).failed();
    assert!(r.join("keep.txt").exists());
}

#[test]
fn batch_chmod() {
    let ws = Workspace::new("batch-chmod");
    let r = &ws.remote;
    fs::write(r.join("f"), b"f").unwrap();
    fs::write(r.join("g"), b"g").unwrap();
    fs::create_dir(r.join("d")).unwrap();
    ws.direct()
        .run(
            &Batch::new()
                .cmd("chmod 600 f")
                .cmd("chmod 4751 g")
                .cmd("chmod 1730 d"),
        )
        .ok();
    assert_eq!(mode(&r.join("f")), 0o600);
    assert_eq!(mode(&r.join("g")), 0o4751);
    assert_eq!(mode(&r.join("d")), 0o1730);
    ws.direct().run(&Batch::new().cmd("chmod 644 f")).ok();
    assert_eq!(mode(&r.join("f")), 0o644);
}

#[test]
fn batch_chown_chgrp() {
    let ws = Workspace::new("batch-chown");
    let r = &ws.remote;
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let root = uid.is_root();
    for name in ["mine", "theirs"] {
        fs::write(r.join(name), name).unwrap();
    }
    std::os::unix::fs::symlink("theirs", r.join("link")).unwrap();
    if root {
        // Start from someone else's file, so giving it to us is a visible change.
        std::os::unix::fs::chown(r.join("mine"), Some(4321), Some(4321)).unwrap();
    }

    let mut batch = Batch::new()
        .cmd(format!("chown {uid} mine"))
        .cmd(format!("chgrp {gid} mine"));
    if root {
        batch = batch
            .cmd("chown 1234 theirs")
            .cmd("chgrp 1234 theirs")
            // -h: the link itself (lsetstat@openssh.com), not its target.
            .cmd("chown -h 4321 link")
            .cmd("chgrp -h 4322 link");
    } else {
        eprintln!("not root: only changing ownership to the current uid and gid");
    }
    ws.direct().run(&batch).ok();

    let meta = |name: &str| fs::symlink_metadata(r.join(name)).unwrap();
    assert_eq!(
        (meta("mine").uid(), meta("mine").gid()),
        (uid.as_raw(), gid.as_raw())
    );
    if root {
        assert_eq!((meta("theirs").uid(), meta("theirs").gid()), (1234, 1234));
        assert_eq!((meta("link").uid(), meta("link").gid()), (4321, 4322));
    }
}

#[test]
fn batch_ln_s_symlink_and_hard_link() {
    let ws = Workspace::new("batch-ln");
    let r = &ws.remote;
    let data = write_random_file(&r.join("target.bin"), 6, MIB + 5);
    let run = ws
        .direct()
        .run(
            &Batch::new()
                .cmd("ln -s target.bin l1")
                .cmd("symlink target.bin l2")
                .cmd("ln -s ../elsewhere/x dangling")
                .cmd("ln target.bin hard")
                .cmd("ls -l")
                .cmd(format!("get l1 {}", q(&ws.local.join("via-link")))),
        )
        .ok();
    for (name, target) in [
        ("l1", "target.bin"),
        ("l2", "target.bin"),
        ("dangling", "../elsewhere/x"),
    ] {
        let got = fs::read_link(r.join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{run}"));
        assert_eq!(got, Path::new(target), "{name}");
    }
    assert_eq!(
        fs::metadata(r.join("hard")).unwrap().ino(),
        fs::metadata(r.join("target.bin")).unwrap().ino()
    );
    let ls = parse_ls_long(&run.output_of("ls -l"));
    let l1 = ls
        .iter()
        .find(|e| e.name.starts_with("l1"))
        .expect("l1 listed");
    assert!(l1.perms.starts_with('l'), "{run}");
    assert_file_content(&ws.local.join("via-link"), &data);
}

#[test]
fn batch_non_utf8_names() {
    let ws = Workspace::new("batch-bytes");
    let (l, r) = (&ws.local, &ws.remote);
    let local_name: &[u8] = b"caf\xe9-\xff.bin";
    let remote_name: &[u8] = b"r\xe9mote-\xfe.bin";
    let data = pseudo_random(7, 2 * MIB + 3);
    fs::write(byte_path(l, local_name), &data).unwrap();

    let local_dir = l.as_os_str().as_bytes();
    let local_src = [local_dir, b"/", local_name].concat();
    let local_back = [local_dir, b"/back-\xfe"].concat();
    let run = ws
        .direct()
        .run(
            &Batch::new()
                .cmd(byte_line(&[b"put", &local_src, remote_name]))
                .cmd("ls -l")
                .cmd(byte_line(&[b"get", remote_name, &local_back]))
                .cmd(b"mkdir dir-\xf0\x28")
                .cmd(byte_line(&[b"rename", remote_name, b"dir-\xf0\x28/\x80"])),
        )
        .ok();

    // Listed byte for byte (sftp shows bytes that are not printable as octal escapes).
    let ls = parse_ls_long(&run.output_of("ls -l"));
    let listed = ls.iter().find(|e| e.name == "r\\351mote-\\376.bin");
    assert_eq!(listed.map(|e| e.size), Some(data.len() as u64), "{run}");

    assert_file_content(&byte_path(l, b"back-\xfe"), &data);
    assert_file_content(&byte_path(r, b"dir-\xf0\x28/\x80"), &data);
    assert!(!byte_path(r, remote_name).exists());
}

#[test]
fn batch_recursive_put_get() {
    let ws = Workspace::new("batch-recursive");
    let src = ws.local.join("tree");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir(src.join("empty")).unwrap();
    write_random_file(&src.join("a.bin"), 8, MIB + 1);
    write_random_file(&src.join("sub/b.bin"), 9, 200 * 1024);
    fs::write(src.join("sub/deeper/c.txt"), b"c").unwrap();
    let back = ws.local.join("back");

    ws.direct()
        .run(
            &Batch::new()
                .cmd(format!("put -r {} tree", q(&src)))
                .cmd(format!("get -r tree {}", q(&back))),
        )
        .ok();

    let expected = tree(&src);
    assert_eq!(expected.len(), 6);
    for (what, dir) in [("uploaded", ws.remote.join("tree")), ("downloaded", back)] {
        let got = tree(&dir);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{what} tree"
        );
        for (path, content) in &expected {
            if let Some(content) = content {
                let what = format!("{what} {}", path.display());
                assert_same_bytes(got[path].as_deref().unwrap(), content, &what);
            }
        }
    }
}

#[test]
fn batch_stops_at_first_error() {
    let ws = Workspace::new("batch-error");
    let run = ws
        .direct()
        .run(
            &Batch::new()
                // A leading '-' lets the batch go on after this command fails.
                .cmd(format!("-get missing1 {}", q(&ws.local.join("x"))))
                .cmd("mkdir first")
                .cmd(format!("get missing2 {}", q(&ws.local.join("y"))))
                .cmd("mkdir second"),
        )
        .failed();
    assert!(ws.remote.join("first").is_dir(), "{run}");
    assert!(!ws.remote.join("second").exists(), "{run}");
    assert!(!ws.local.join("x").exists() && !ws.local.join("y").exists());
    assert!(run.stderr.contains("missing2"), "{run}");
}
