//! Whole trees: exact copies, snapshots for comparison, walks through descriptors (the
//! fixture has paths longer than PATH_MAX, which path-based tools cannot reach).

use super::harness::in_window;
use super::ops::replace;
use nix::dir::Dir;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmodat, fstat, fstatat, mkdirat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, linkat, mkfifoat, symlinkat};
use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One file in a tree snapshot.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    kind: char,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: i64,
    /// None when "now".
    mtime: Option<i64>,
    /// A regular file's bytes or a symlink's target (as its side shows it).
    content: Vec<u8>,
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

pub fn open_dir(path: &Path) -> Dir {
    Dir::openat(
        AT_FDCWD,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .expect("open directory")
}

fn open_sub(dir: BorrowedFd, name: &[u8]) -> Dir {
    Dir::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .expect("open directory in tree")
}

/// What `visit` calls for each file: its directory, name, path and status.
pub type Visitor<'a> = dyn FnMut(&Dir, &[u8], &[u8], &FileStat) + 'a;

/// Calls `f(dir, name, path, stat)` for everything below `dir` (parents before their
/// contents).
pub fn visit(mut dir: Dir, rel: Vec<u8>, f: &mut Visitor) {
    let names: Vec<Vec<u8>> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for name in names {
        let mut path = rel.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let Ok(st) = fstatat(dir.as_fd(), name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        f(&dir, &name, &path, &st);
        if kind(&st) == SFlag::S_IFDIR {
            visit(open_sub(dir.as_fd(), &name), path, f);
        }
    }
}

/// Every file under `root` by its path relative to `root`, `root` itself as ".";
/// modification times in the window `w` are "now".
pub fn snapshot(
    root: &Path,
    w: (u64, u64),
    shown: &dyn Fn(&[u8]) -> Vec<u8>,
) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let dir = open_dir(root);
    let st = fstat(&dir).expect("fstat root");
    out.insert(b".".to_vec(), node(&st, Vec::new(), w));
    visit(dir, Vec::new(), &mut |dir, name, path, st| {
        let content = match kind(st) {
            SFlag::S_IFREG => {
                let fd = openat(
                    dir.as_fd(),
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .expect("open file in tree");
                let mut data = Vec::new();
                std::fs::File::from(fd)
                    .read_to_end(&mut data)
                    .expect("read file in tree");
                data
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(dir.as_fd(), name).expect("readlink");
                shown(target.as_bytes())
            }
            _ => Vec::new(),
        };
        out.insert(path.to_vec(), node(st, content, w));
    });
    out
}

fn node(st: &FileStat, content: Vec<u8>, w: (u64, u64)) -> Node {
    let kind = match kind(st) {
        SFlag::S_IFREG => 'f',
        SFlag::S_IFDIR => 'd',
        SFlag::S_IFLNK => 'l',
        SFlag::S_IFIFO => 'p',
        SFlag::S_IFSOCK => 's',
        SFlag::S_IFCHR => 'c',
        SFlag::S_IFBLK => 'b',
        _ => '?',
    };
    let mtime = st.st_mtime;
    let now = (0..=u32::MAX as i64).contains(&mtime) && in_window(mtime as u32, w);
    Node {
        kind,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: st.st_nlink,
        // A symlink's size is its target's length, as shown (a copy's root may be
        // shown shorter than it is).
        size: match kind {
            'l' => content.len() as i64,
            _ => st.st_size,
        },
        mtime: (!now).then_some(mtime),
        content,
    }
}

/// Copies the tree `from` to the new directory `to` as `cp -a` does: types, contents
/// (holes kept), modes, owners, modification times, hard links, symlink targets (those
/// starting with `rewrite.0` start with `rewrite.1` in the copy). Access times in the
/// copy are the modification times.
pub fn copy(from: &Path, to: &Path, rewrite: Option<(&[u8], &[u8])>) {
    let src = open_dir(from);
    let st = fstat(&src).expect("fstat");
    std::fs::create_dir(to).expect("create copy");
    let dst = open_dir(to);
    let mut links = HashMap::new();
    copy_dir(src, &dst, rewrite, &mut links);
    let parent = open_dir(to.parent().expect("parent"));
    set_meta(
        parent.as_fd(),
        to.file_name().unwrap().as_bytes(),
        &st,
        true,
    );
}

/// Hard-linked files copied so far: (device, inode) to the copy's directory and name.
/// (Symbolic links and FIFOs can be hard-linked too.)
type Links = HashMap<(u64, u64), (OwnedFd, Vec<u8>)>;

fn copy_dir(mut src: Dir, dst: &Dir, rewrite: Option<(&[u8], &[u8])>, links: &mut Links) {
    let names: Vec<Vec<u8>> = src
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    let (s, d) = (src.as_fd(), dst.as_fd());
    for name in names {
        let name = name.as_slice();
        let st = fstatat(s, name, AtFlags::AT_SYMLINK_NOFOLLOW).expect("stat in tree");
        let private = Mode::from_bits_truncate(0o700);
        let key = (st.st_dev, st.st_ino);
        if kind(&st) != SFlag::S_IFDIR && st.st_nlink > 1 {
            if let Some((dir, first)) = links.get(&key) {
                linkat(dir.as_fd(), first.as_slice(), d, name, AtFlags::empty()).expect("link");
                continue;
            }
            links.insert(key, (nix::unistd::dup(d).expect("dup"), name.to_vec()));
        }
        match kind(&st) {
            SFlag::S_IFDIR => {
                mkdirat(d, name, private).expect("mkdir");
                copy_dir(open_sub(s, name), &open_sub(d, name), rewrite, links);
            }
            SFlag::S_IFREG => {
                let from = openat(s, name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty())
                    .expect("open source");
                let to = openat(
                    d,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    private,
                )
                .expect("create copy");
                copy_data(from, to, st.st_size);
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(s, name).expect("readlink");
                let target = match rewrite {
                    Some((old, new)) if target.as_bytes().starts_with(old) => {
                        replace(target.as_bytes(), old, new)
                    }
                    _ => target.as_bytes().to_vec(),
                };
                symlinkat(target.as_slice(), d, name).expect("symlink");
            }
            SFlag::S_IFIFO => mkfifoat(d, name, private).expect("mkfifo"),
            other => panic!("cannot copy file type {other:?}"),
        }
        set_meta(d, name, &st, kind(&st) != SFlag::S_IFLNK);
    }
}

/// Copies a regular file's data, leaving its holes holes.
fn copy_data(from: OwnedFd, to: OwnedFd, size: i64) {
    use nix::unistd::{Whence, lseek};
    use std::os::unix::fs::FileExt;
    let (from, to) = (std::fs::File::from(from), std::fs::File::from(to));
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = 0;
    while pos < size {
        let Ok(start) = lseek(&from, pos, Whence::SeekData) else {
            break; // only a hole is left
        };
        let end = lseek(&from, start, Whence::SeekHole).expect("seek hole");
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            let n = from.read_at(&mut buf[..n], at as u64).expect("read");
            assert!(n > 0, "file shrank while copied");
            to.write_all_at(&buf[..n], at as u64).expect("write");
            at += n as i64;
        }
        pos = end;
    }
    to.set_len(size as u64).expect("set length");
}

/// Owner, then mode (a change of owner clears set-id bits), then times; the access
/// time is the modification time (see `atime_from_mtime`).
fn set_meta(dir: BorrowedFd, name: &[u8], st: &FileStat, mode: bool) {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("chown");
    if mode {
        fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            FchmodatFlags::FollowSymlink,
        )
        .expect("chmod");
    }
    let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    utimensat(dir, name, &mtime, &mtime, UtimensatFlags::NoFollowSymlink).expect("set times");
}

/// Sets every access time under `root` (and its own) to the modification time.
/// Copying and comparing read the files, which moves their access times; this puts
/// both copies back on equal terms. A directory's own time is set after its contents
/// have been listed, since listing it moves it.
pub fn atime_from_mtime(root: &Path) {
    fn set(dir: BorrowedFd, name: &[u8], st: &FileStat) {
        let atime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
        utimensat(
            dir,
            name,
            &atime,
            &TimeSpec::UTIME_OMIT,
            UtimensatFlags::NoFollowSymlink,
        )
        .expect("set access time");
    }
    fn below(mut dir: Dir) {
        let names: Vec<Vec<u8>> = dir
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        for name in names {
            let st = fstatat(dir.as_fd(), name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .expect("stat in tree");
            if kind(&st) == SFlag::S_IFDIR {
                below(open_sub(dir.as_fd(), &name));
            }
            set(dir.as_fd(), &name, &st);
        }
    }
    below(open_dir(root));
    let parent = open_dir(root.parent().expect("parent"));
    let name = root.file_name().unwrap().as_bytes();
    let st = fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).expect("stat root");
    set(parent.as_fd(), name, &st);
}
