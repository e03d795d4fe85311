//! The scratch tree both servers work in. Every name the scenarios use is here as a
//! constant. All times are fixed (a past date), except two files that exercise the
//! other date formats of long names; owners are fixed uids, not the caller's.

use super::harness::WORK;
use super::tree::visit;
use nix::dir::Dir;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{Mode, UtimensatFlags, mkdirat, utimensat};
use nix::sys::time::TimeSpec;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// The time of every file: 2001-09-09 01:46:40 UTC.
pub const T0: i64 = 1_000_000_000;
/// A time in the future (2096), shown with its year in long names.
pub const FUTURE: i64 = 4_000_000_000;

/// A 255-byte name (the longest a component may be).
pub fn l255() -> Vec<u8> {
    vec![b'L'; 255]
}
/// A 256-byte name (one too long).
pub fn l256() -> Vec<u8> {
    vec![b'M'; 256]
}
/// A name that is not UTF-8.
pub const NON_UTF8: &[u8] = b"\xff\xfe-bin";
pub const NEWLINE: &[u8] = b"nl\nname";
pub const SPACE: &[u8] = b"sp ace";

/// Directories under `deep`.
pub const DEEP_LEVELS: usize = 40;
/// `deep/d/d/.../d`, 40 levels below `deep`.
pub fn deep() -> Vec<u8> {
    let mut p = b"deep".to_vec();
    for _ in 0..DEEP_LEVELS {
        p.extend_from_slice(b"/d");
    }
    p
}

/// Levels of 150-byte names under `long`.
pub const LONG_LEVELS: usize = 27;
/// The bottom directory of `long`: 4081 bytes relative to the working directory,
/// so that requests fit PATH_MAX but the absolute path does not.
pub fn long() -> Vec<u8> {
    let mut p = b"long".to_vec();
    for i in 0..LONG_LEVELS {
        p.push(b'/');
        p.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 150));
    }
    p
}

/// Files in `many`: more than two READDIR batches.
pub const MANY: usize = 120;

/// The standard tree, inside `root` (a copy's root): `w/` is the working directory,
/// `up-file` and `up-dir/` lie above it.
pub fn standard(root: &Path) {
    let w = root.join(WORK);
    fs::create_dir(&w).unwrap();
    file(
        &root.join("up-file"),
        b"above the working directory\n",
        0o644,
    );
    fs::create_dir(root.join("up-dir")).unwrap();
    file(&root.join("up-dir/inner"), b"inner\n", 0o644);

    let f: Vec<u8> = (0..1000u32).map(|i| b'0' + (i % 10) as u8).collect();
    file(&w.join("f"), &f, 0o644);
    file(&w.join("e"), b"", 0o644);
    file(&w.join("ro"), b"read-only\n", 0o444);
    file(&w.join("x"), b"#!/bin/sh\n", 0o755);
    file(&w.join("suid"), b"suid\n", 0o4755);
    file(&w.join(name(SPACE)), b"space\n", 0o644);
    file(&w.join(name(NEWLINE)), b"newline\n", 0o644);
    file(&w.join(name(NON_UTF8)), b"\xff\x00binary\x01", 0o600);
    file(&w.join(name(&l255())), b"long name\n", 0o644);
    let hole = fs::File::create(w.join("hole")).unwrap();
    hole.set_len(1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&hole, b"end", 1 << 20).unwrap();
    drop(hole);
    file(&w.join("hard1"), b"hard link\n", 0o644);
    fs::hard_link(w.join("hard1"), w.join("hard2")).unwrap();
    file(&w.join("owned"), b"daemon's\n", 0o640);
    std::os::unix::fs::chown(w.join("owned"), Some(1), Some(1)).unwrap();
    file(&w.join("nobody"), b"nobody's\n", 0o644);
    std::os::unix::fs::chown(w.join("nobody"), Some(65534), Some(65534)).unwrap();
    file(&w.join("recent"), b"yesterday\n", 0o644);
    file(&w.join("future"), b"future\n", 0o644);

    fs::create_dir(w.join("d")).unwrap();
    file(&w.join("d/g"), b"g\n", 0o644);
    file(&w.join("d/sp ace2"), b"space 2\n", 0o644);
    fs::create_dir(w.join("d/sub")).unwrap();
    fs::create_dir(w.join("d/sub2")).unwrap();
    file(&w.join("d/sub2/h"), b"h\n", 0o644);
    fs::create_dir(w.join("empty")).unwrap();
    fs::create_dir(w.join("locked")).unwrap();
    file(&w.join("locked/inner"), b"locked in\n", 0o644);
    fs::create_dir(w.join("many")).unwrap();
    for i in 0..MANY {
        file(
            &w.join(format!("many/n{i:03}")),
            format!("{i}\n").as_bytes(),
            0o644,
        );
    }
    fs::create_dir(w.join("special")).unwrap();
    nix::unistd::mkfifo(&w.join("special/fifo"), Mode::from_bits_truncate(0o644)).unwrap();

    fs::create_dir_all(w.join(name(&deep()))).unwrap();
    file(&w.join(name(&deep())).join("leaf"), b"leaf\n", 0o644);
    make_long(&w);

    symlink("f", w.join("link")).unwrap();
    symlink("link", w.join("chain")).unwrap();
    symlink("d", w.join("dlink")).unwrap();
    symlink("nowhere", w.join("dangle")).unwrap();
    symlink("/nonexistent/abs", w.join("abs")).unwrap();
    symlink("loop2", w.join("loop1")).unwrap();
    symlink("loop1", w.join("loop2")).unwrap();
    symlink("self", w.join("self")).unwrap();
    symlink("..", w.join("up")).unwrap();
    symlink("sp ace", w.join("sp link")).unwrap();
    symlink("f/x", w.join("through")).unwrap();

    fs::set_permissions(w.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    set_times(root, T0);
    let day_ago = super::harness::now_secs() as i64 - 86_400;
    touch(&w.join("recent"), day_ago);
    touch(&w.join("future"), FUTURE);
}

fn name(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

fn file(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn touch(path: &Path, t: i64) {
    let ts = TimeSpec::new(t, 0);
    utimensat(AT_FDCWD, path, &ts, &ts, UtimensatFlags::NoFollowSymlink).unwrap();
}

/// `long/...`, made level by level through descriptors (its absolute path is longer
/// than PATH_MAX), with a file `end` at the bottom.
fn make_long(w: &Path) {
    let long = long();
    let mut dir: OwnedFd = openat(
        AT_FDCWD,
        w,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    for comp in long.split(|&b| b == b'/') {
        mkdirat(dir.as_fd(), comp, Mode::from_bits_truncate(0o755)).unwrap();
        dir = openat(
            dir.as_fd(),
            comp,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
    let end = openat(
        dir.as_fd(),
        "end",
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::io::Write::write_all(&mut fs::File::from(end), b"bottom\n").unwrap();
}

/// Sets the access and modification times of everything under `root` (symlinks
/// themselves, not their targets) to `t`.
fn set_times(root: &Path, t: i64) {
    let ts = TimeSpec::new(t, 0);
    let dir = Dir::openat(
        AT_FDCWD,
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    visit(dir, Vec::new(), &mut |dir, name, _, _| {
        utimensat(dir.as_fd(), name, &ts, &ts, UtimensatFlags::NoFollowSymlink).unwrap();
    });
    touch(root, t);
}
