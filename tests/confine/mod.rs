//! Confinement with `--root DIR` and the sandbox. Each test sets up a scratch
//! directory holding `root/` (DIR, what the client sees as `/`) and `outside/` (files
//! the client must never reach), plants ways out inside DIR (`..` chains, absolute
//! paths, symlinks pointing out, links swapped by another thread), and checks that
//! every attempt to read or write outside fails while the same operation on a path
//! inside succeeds, and that nothing outside changed.

use crate::support::clients::{Batch, SftpClient, sftp_quote};
use crate::support::raw::*;
use crate::support::session::Session;
use crate::support::{Scratch, Server, server_bin, testing_openssh, wait_bounded};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INSIDE: &[u8] = b"inside: served";
const SECRET: &[u8] = b"outside: must never be served, 42 bytes long";

/// A scratch tree: `root/` with `inside.txt`, `sub/` and `sub/deeper/`; `outside/`
/// with `secret`, `victim` and `odir/`.
struct Fixture {
    scratch: Scratch,
    root: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let scratch = Scratch::new(tag);
        let top = fs::canonicalize(scratch.path()).unwrap();
        let root = top.join("root");
        let outside = top.join("outside");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(outside.join("odir")).unwrap();
        fs::write(root.join("inside.txt"), INSIDE).unwrap();
        fs::write(outside.join("secret"), SECRET).unwrap();
        fs::write(outside.join("victim"), SECRET).unwrap();
        fs::write(outside.join("odir/deep-secret"), SECRET).unwrap();
        Fixture {
            scratch,
            root,
            outside,
        }
    }

    fn top(&self) -> &Path {
        self.scratch.path()
    }

    /// The real absolute path of a file outside, as bytes.
    fn out(&self, name: &str) -> Vec<u8> {
        self.outside.join(name).as_os_str().as_bytes().to_vec()
    }

    fn root_bytes(&self) -> Vec<u8> {
        self.root.as_os_str().as_bytes().to_vec()
    }

    /// Plants a symlink inside the root (as someone with access to DIR would).
    fn plant(&self, name: &str, target: impl AsRef<Path>) {
        symlink(target, self.root.join(name)).unwrap();
    }

    /// Starts the server with `--root root` and `args`, in the scratch directory (not
    /// in the root), past INIT.
    fn serve(&self, args: &[&str]) -> Conn {
        self.serve_in(self.top(), args)
    }

    fn serve_in(&self, cwd: &Path, args: &[&str]) -> Conn {
        let mut all = vec!["--root", self.root.to_str().unwrap()];
        all.extend_from_slice(args);
        Conn::start(Server::spawn_with(&server_bin(), cwd, &all, Stdio::null()))
    }

    /// Everything outside the root, to compare before and after.
    fn outside_snapshot(&self) -> Snapshot {
        snapshot(&self.outside)
    }
}

/// Kind, mode, size, link count, content (or link target) of every entry below a
/// directory, by relative path; the directory itself as "".
type Snapshot = BTreeMap<PathBuf, (u32, u64, u64, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    fn walk(top: &Path, p: &Path, out: &mut Snapshot) {
        let md = fs::symlink_metadata(p).unwrap();
        let content = if md.file_type().is_symlink() {
            fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec()
        } else if md.is_file() {
            fs::read(p).unwrap()
        } else {
            Vec::new()
        };
        let rel = p.strip_prefix(top).unwrap().to_path_buf();
        out.insert(rel, (md.mode(), md.len(), md.nlink(), content));
        if md.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(top, &e.unwrap().path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A raw client session whose helpers return the status code of a failure.
struct Conn {
    s: Session,
}

impl Conn {
    fn start(server: Server) -> Conn {
        Conn {
            s: Session::init(server),
        }
    }

    fn pid(&self) -> u32 {
        self.s.pid()
    }

    fn call(&mut self, req: Request) -> Reply {
        self.s.call(req)
    }

    fn ext(&mut self, name: &str, data: &[u8]) -> Reply {
        self.s.ext(name, data)
    }

    /// A handle, or the status code.
    fn open(&mut self, path: &[u8], pflags: u32) -> Result<Vec<u8>, u32> {
        match self.call(Request::Open {
            path,
            pflags,
            attrs: Attrs::none(),
        }) {
            Reply::Handle { handle, .. } => Ok(handle),
            r => Err(code(&r)),
        }
    }

    fn close(&mut self, handle: &[u8]) {
        assert_eq!(code(&self.call(Request::Close { handle })), SSH_FX_OK);
    }

    /// The whole content of a file, or the status code of the first failure.
    fn read(&mut self, path: &[u8]) -> Result<Vec<u8>, u32> {
        let h = self.open(path, SSH_FXF_READ)?;
        let mut data = Vec::new();
        let result = loop {
            match self.call(Request::Read {
                handle: &h,
                offset: data.len() as u64,
                len: 32768,
            }) {
                Reply::Data { data: d, .. } => data.extend_from_slice(&d),
                r if code(&r) == SSH_FX_EOF => break Ok(data),
                r => break Err(code(&r)),
            }
        };
        self.close(&h);
        result
    }

    /// Creates (or truncates) a file with `data`.
    fn write(&mut self, path: &[u8], data: &[u8]) -> Result<(), u32> {
        let h = self.open(path, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)?;
        let r = self.call(Request::Write {
            handle: &h,
            offset: 0,
            data,
        });
        self.close(&h);
        match code(&r) {
            SSH_FX_OK => Ok(()),
            c => Err(c),
        }
    }

    fn stat(&mut self, path: &[u8]) -> Result<Attrs, u32> {
        attrs(self.call(Request::Stat { path }))
    }

    fn lstat(&mut self, path: &[u8]) -> Result<Attrs, u32> {
        attrs(self.call(Request::Lstat { path }))
    }

    /// The names of a directory's entries, or the status code.
    fn list(&mut self, path: &[u8]) -> Result<Vec<NameEntry>, u32> {
        let h = match self.call(Request::Opendir { path }) {
            Reply::Handle { handle, .. } => handle,
            r => return Err(code(&r)),
        };
        let mut all = Vec::new();
        loop {
            match self.call(Request::Readdir { handle: &h }) {
                Reply::Name { entries, .. } => all.extend(entries),
                r if code(&r) == SSH_FX_EOF => break,
                r => panic!("readdir: {r:?}"),
            }
        }
        self.close(&h);
        Ok(all)
    }

    fn names(&mut self, path: &[u8]) -> Result<Vec<Vec<u8>>, u32> {
        self.list(path)
            .map(|l| l.into_iter().map(|e| e.name).collect())
    }

    /// The single name of a NAME reply (REALPATH, READLINK, expand-path,
    /// home-directory), or the status code.
    fn name(&mut self, r: Reply) -> Result<Vec<u8>, u32> {
        match r {
            Reply::Name { entries, .. } => {
                assert_eq!(entries.len(), 1, "one name: {entries:?}");
                Ok(entries[0].name.clone())
            }
            r => Err(code(&r)),
        }
    }

    fn realpath(&mut self, path: &[u8]) -> Result<Vec<u8>, u32> {
        let r = self.call(Request::Realpath { path });
        self.name(r)
    }

    fn readlink(&mut self, path: &[u8]) -> Result<Vec<u8>, u32> {
        let r = self.call(Request::Readlink { path });
        self.name(r)
    }

    fn expand(&mut self, path: &[u8]) -> Result<Vec<u8>, u32> {
        let r = self.ext("expand-path@openssh.com", &Buf::new().str(path).into_vec());
        self.name(r)
    }

    fn home(&mut self, user: &[u8]) -> Result<Vec<u8>, u32> {
        let r = self.ext("home-directory", &Buf::new().str(user).into_vec());
        self.name(r)
    }

    /// statvfs@openssh.com: (f_fsid, f_blocks), or the status code.
    fn statvfs(&mut self, path: &[u8]) -> Result<(u64, u64), u32> {
        match self.ext("statvfs@openssh.com", &Buf::new().str(path).into_vec()) {
            Reply::ExtendedReply { body, .. } => {
                let mut r = Reader::new(&body);
                let f: Vec<u64> = (0..11).map(|_| r.u64().unwrap()).collect();
                Ok((f[8], f[2]))
            }
            r => Err(code(&r)),
        }
    }

    /// A request that only answers with a status.
    fn status(&mut self, req: Request) -> u32 {
        code(&self.call(req))
    }

    fn ext_status(&mut self, name: &str, parts: &[&[u8]]) -> u32 {
        let data = parts.iter().fold(Buf::new(), |b, s| b.str(s)).into_vec();
        code(&self.ext(name, &data))
    }

    fn finish(self) {
        let st = self.s.finish();
        assert!(st.success(), "server exit: {st:?}");
    }
}

fn code(r: &Reply) -> u32 {
    match r {
        Reply::Status { code, .. } => *code,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn attrs(r: Reply) -> Result<Attrs, u32> {
    match r {
        Reply::Attrs { attrs, .. } => Ok(attrs),
        r => Err(code(&r)),
    }
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Skips a test that only applies to this server (OpenSSH has no --root).
fn ours_only() -> bool {
    if testing_openssh() {
        eprintln!("not applicable: OpenSSH's sftp-server has no --root");
        return false;
    }
    true
}

/// Reads that climb with `..` end at the root; the same shapes reach files inside.
#[test]
fn confine_dotdot_chains() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-dotdot");
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    for p in [
        &b"../outside/secret"[..],
        b"../../../../../../../outside/secret",
        b"/../outside/secret",
        b"sub/../../outside/secret",
        b"sub/deeper/../../../outside/secret",
        b"./.././../outside/secret",
        b"//..//..//outside//secret",
    ] {
        assert_eq!(s.read(p), Err(SSH_FX_NO_SUCH_FILE), "read {}", show(p));
        assert_eq!(s.stat(p).map(drop), Err(SSH_FX_NO_SUCH_FILE));
    }
    for p in [
        &b"../inside.txt"[..],
        b"../../../../../../../inside.txt",
        b"/../inside.txt",
        b"sub/../../inside.txt",
        b"sub/deeper/../../../inside.txt",
    ] {
        assert_eq!(s.read(p).as_deref(), Ok(INSIDE), "read {}", show(p));
    }
    // Listing `..` of the root lists the root; `..` in it is the root again.
    let names = s.names(b"../..").unwrap();
    assert!(names.contains(&b"inside.txt".to_vec()), "{names:?}");
    assert!(!names.contains(&b"outside".to_vec()), "{names:?}");
    // Writes that climb land inside.
    s.write(b"../../../planted", b"x").unwrap();
    assert_eq!(
        s.status(Request::Mkdir {
            path: b"sub/../../../newdir",
            attrs: Attrs::none(),
        }),
        SSH_FX_OK
    );
    assert_eq!(
        s.write(b"../../outside/planted", b"x"),
        Err(SSH_FX_NO_SUCH_FILE)
    );
    assert!(f.root.join("planted").is_file() && f.root.join("newdir").is_dir());
    assert!(!f.top().join("planted").exists() && !f.top().join("newdir").exists());
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// Absolute paths are taken inside the root: the real path of a file outside, and
/// even the real path of the root itself, name nothing.
#[test]
fn confine_absolute_paths() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-absolute");
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    let secret = f.out("secret");
    let mut real_inside = f.root_bytes();
    real_inside.extend_from_slice(b"/inside.txt");
    for p in [
        &secret[..],
        &real_inside,
        b"/etc/passwd",
        b"/proc/self/environ",
    ] {
        assert_eq!(s.read(p), Err(SSH_FX_NO_SUCH_FILE), "read {}", show(p));
        assert_eq!(s.lstat(p).map(drop), Err(SSH_FX_NO_SUCH_FILE));
    }
    assert_eq!(s.list(&f.out("odir")).map(drop), Err(SSH_FX_NO_SUCH_FILE));
    assert_eq!(s.list(b"/proc/self/fd").map(drop), Err(SSH_FX_NO_SUCH_FILE));
    assert_eq!(s.read(b"/inside.txt").as_deref(), Ok(INSIDE));
    // Writing to the real path of a file outside.
    assert_eq!(
        s.write(&f.out("victim"), b"gotcha"),
        Err(SSH_FX_NO_SUCH_FILE)
    );
    assert_eq!(
        s.status(Request::Setstat {
            path: &f.out("victim"),
            attrs: Attrs::none().with_permissions(0o777),
        }),
        SSH_FX_NO_SUCH_FILE
    );
    assert_eq!(
        s.status(Request::Remove {
            path: &f.out("victim")
        }),
        SSH_FX_NO_SUCH_FILE
    );
    assert_eq!(
        s.status(Request::Mkdir {
            path: &f.out("newdir"),
            attrs: Attrs::none(),
        }),
        SSH_FX_NO_SUCH_FILE
    );
    s.write(b"/written", b"ok").unwrap();
    assert_eq!(fs::read(f.root.join("written")).unwrap(), b"ok");
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// Symlinks planted inside that point out (absolute, relative and climbing, to files
/// and to directories) lead nowhere when followed; links that stay inside work, an
/// absolute one taken from the root.
#[test]
fn confine_planted_symlinks() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-symlinks");
    let climb = format!("{}{}", "../".repeat(20), f.outside.display());
    f.plant("abs", f.outside.join("secret"));
    f.plant("rel", "../outside/secret");
    f.plant("climb", format!("{climb}/secret"));
    f.plant("absdir", &f.outside);
    f.plant("reldir", "../outside");
    f.plant("victim", f.outside.join("victim"));
    f.plant("good-abs", "/inside.txt");
    f.plant("good-rel", "../../inside.txt");
    f.plant("good-dir", "/sub/..");
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    for p in [&b"abs"[..], b"rel", b"climb", b"victim"] {
        assert_eq!(s.read(p), Err(SSH_FX_NO_SUCH_FILE), "read {}", show(p));
        assert_eq!(s.stat(p).map(drop), Err(SSH_FX_NO_SUCH_FILE));
        assert_eq!(s.statvfs(p).map(drop), Err(SSH_FX_NO_SUCH_FILE));
        // LSTAT and READLINK see the link itself: the client's own data.
        assert!(s.lstat(p).is_ok());
        let stored = fs::read_link(f.root.join(show(p))).unwrap();
        assert_eq!(s.readlink(p).unwrap(), stored.as_os_str().as_bytes());
    }
    for p in [&b"absdir"[..], b"reldir"] {
        assert_eq!(s.list(p).map(drop), Err(SSH_FX_NO_SUCH_FILE));
    }
    for p in [&b"good-abs"[..], b"good-rel", b"good-dir/inside.txt"] {
        assert_eq!(s.read(p).as_deref(), Ok(INSIDE), "read {}", show(p));
    }
    assert!(
        s.names(b"good-dir")
            .unwrap()
            .contains(&b"inside.txt".to_vec())
    );
    // Writing through the links: the targets are looked for inside the root.
    assert_eq!(s.write(b"victim", b"gotcha"), Err(SSH_FX_NO_SUCH_FILE));
    for attrs in [
        Attrs::none().with_permissions(0o777),
        Attrs::none().with_size(0),
        Attrs::none().with_times(1, 1),
        Attrs::none().with_uidgid(65534, 65534),
    ] {
        assert_eq!(
            s.status(Request::Setstat {
                path: b"victim",
                attrs,
            }),
            SSH_FX_NO_SUCH_FILE
        );
    }
    // lsetstat and remove act on the link itself, never on its target.
    let data = Buf::new()
        .str(b"victim")
        .attrs(&Attrs::none().with_times(1, 1))
        .into_vec();
    assert_eq!(code(&s.ext("lsetstat@openssh.com", &data)), SSH_FX_OK);
    assert_eq!(
        fs::symlink_metadata(f.root.join("victim")).unwrap().mtime(),
        1
    );
    assert_eq!(s.status(Request::Remove { path: b"victim" }), SSH_FX_OK);
    assert!(fs::symlink_metadata(f.root.join("victim")).is_err());
    // A dangling absolute link created by O_CREAT lands inside the root.
    f.plant("creator", "/created-through-link");
    s.write(b"creator", b"made").unwrap();
    assert_eq!(
        fs::read(f.root.join("created-through-link")).unwrap(),
        b"made"
    );
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// A symlink in the middle of a path: every operation on a name below it, reading
/// or changing, stays inside.
#[test]
fn confine_symlink_in_the_middle() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-middle");
    f.plant("absdir", &f.outside);
    f.plant("reldir", "../outside");
    fs::create_dir(f.root.join("sub/odir")).unwrap();
    f.plant("sub/deeper/up", "../../../outside");
    f.plant("gooddir", "/sub");
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    for dir in ["absdir", "reldir", "sub/deeper/up"] {
        let p = |name: &str| format!("{dir}/{name}").into_bytes();
        assert_eq!(s.read(&p("secret")), Err(SSH_FX_NO_SUCH_FILE), "{dir}");
        assert_eq!(s.lstat(&p("secret")).map(drop), Err(SSH_FX_NO_SUCH_FILE));
        assert_eq!(s.list(&p("odir")).map(drop), Err(SSH_FX_NO_SUCH_FILE));
        assert_eq!(s.write(&p("new"), b"x"), Err(SSH_FX_NO_SUCH_FILE));
        assert_eq!(
            s.status(Request::Remove { path: &p("victim") }),
            SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(
            s.status(Request::Mkdir {
                path: &p("newdir"),
                attrs: Attrs::none()
            }),
            SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(
            s.status(Request::Rmdir { path: &p("odir") }),
            SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(
            s.status(Request::Rename {
                old: &p("secret"),
                new: b"stolen"
            }),
            SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(
            s.status(Request::Symlink {
                target: b"/inside.txt",
                link: &p("planted-link")
            }),
            SSH_FX_NO_SUCH_FILE
        );
        assert_eq!(s.readlink(&p("secret")), Err(SSH_FX_NO_SUCH_FILE));
    }
    assert_eq!(s.read(b"gooddir/../inside.txt").as_deref(), Ok(INSIDE));
    s.write(b"gooddir/new", b"x").unwrap();
    assert!(f.root.join("sub/new").is_file());
    // `..` after a link in the middle is `..` of where the link led, inside.
    assert_eq!(
        s.list(b"sub/deeper/up/..").map(drop),
        Err(SSH_FX_NO_SUCH_FILE)
    );
    assert_eq!(
        s.status(Request::Rmdir {
            path: b"gooddir/odir"
        }),
        SSH_FX_OK
    );
    assert!(!f.root.join("sub/odir").exists());
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// A run of requests on names in one directory resolves the directory once; a
/// rename or removal in the same run that could change the way to it, or any change
/// between runs, is seen at once, and STAT of a name that turns out to be a symlink
/// still follows it inside.
#[test]
fn confine_parent_directory_is_never_stale() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-parent");
    fs::create_dir(f.root.join("d")).unwrap();
    fs::write(f.root.join("d/x"), b"12345").unwrap();
    f.plant("d/out", f.outside.join("secret"));
    f.plant("d/in", "/inside.txt");
    let mut s = f.serve(&[]);
    // Each run in one write, so the server reads and answers it together.
    let mut run = |reqs: &[Request]| -> Vec<u32> {
        let bytes: Vec<u8> = reqs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.encode(1000 + i as u32))
            .collect();
        s.s.c.send_raw(&bytes);
        (0..reqs.len())
            .map(|i| {
                let r = s.s.c.recv().unwrap();
                assert_eq!(r.id(), Some(1000 + i as u32));
                match r {
                    Reply::Attrs { attrs, .. } => {
                        assert_eq!(attrs.size, 5);
                        SSH_FX_OK
                    }
                    r => code(&r),
                }
            })
            .collect()
    };
    let codes = run(&[
        Request::Lstat { path: b"/d/x" },
        Request::Rename {
            old: b"/d",
            new: b"/e",
        },
        Request::Mkdir {
            path: b"/d",
            attrs: Attrs::none(),
        },
        Request::Lstat { path: b"/d/x" },
        Request::Stat { path: b"/d/x" },
        Request::Stat { path: b"/e/x" },
    ]);
    use SSH_FX_NO_SUCH_FILE as NONE;
    assert_eq!(
        codes,
        [SSH_FX_OK, SSH_FX_OK, SSH_FX_OK, NONE, NONE, SSH_FX_OK]
    );
    // A directory reached through a symlink that lies in the directory itself:
    // removing that symlink takes the way there away.
    f.plant("e/self", ".");
    let codes = run(&[
        Request::Lstat { path: b"/e/self/x" },
        Request::Remove {
            path: b"/e/self/self",
        },
        Request::Lstat { path: b"/e/self/x" },
        Request::Lstat { path: b"/e/x" },
    ]);
    assert_eq!(codes, [SSH_FX_OK, SSH_FX_OK, NONE, SSH_FX_OK]);
    // Renames inside the directory used keep it, and are seen.
    let codes = run(&[
        Request::Lstat { path: b"/e/x" },
        Request::Rename {
            old: b"/e/x",
            new: b"/e/y",
        },
        Request::Lstat { path: b"/e/x" },
        Request::Lstat { path: b"/e/y" },
        Request::Rename {
            old: b"/e/y",
            new: b"/e/x",
        },
    ]);
    assert_eq!(codes, [SSH_FX_OK, SSH_FX_OK, NONE, SSH_FX_OK, SSH_FX_OK]);
    // Changed by another process between two requests of the client.
    assert_eq!(s.lstat(b"/e/x").unwrap().size, 5);
    fs::rename(f.root.join("e"), f.root.join("g")).unwrap();
    fs::create_dir(f.root.join("e")).unwrap();
    fs::write(f.root.join("e/x"), b"1").unwrap();
    assert_eq!(s.lstat(b"/e/x").unwrap().size, 1);
    assert_eq!(s.stat(b"/e/x").unwrap().size, 1);
    // Final symlinks: STAT follows them inside the root, LSTAT does not.
    let link = s.lstat(b"/g/out").unwrap();
    assert_eq!(link.permissions & 0o170000, 0o120000);
    assert_eq!(s.stat(b"/g/out").map(drop), Err(SSH_FX_NO_SUCH_FILE));
    let inside = s.stat(b"/g/in").unwrap();
    assert_eq!(inside.size, INSIDE.len() as u64);
    // A trailing slash on a file still asks for a directory.
    assert_ne!(s.stat(b"/g/x/").map(drop), Ok(()));
    s.finish();
}

/// `--root` takes `-d`'s expansions, so one sshd Subsystem line can give each user
/// a directory of their own; an unknown key is fatal, as for `-d`.
#[test]
fn confine_root_takes_the_start_directory_expansions() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-root-expand");
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap();
    let top = fs::canonicalize(f.top()).unwrap();
    let per_user = top.join(format!("{}-{}", user.name, user.uid));
    fs::create_dir(&per_user).unwrap();
    fs::write(per_user.join("mine.txt"), b"per-user").unwrap();
    let arg = format!("{}/%u-%U", top.display());
    let mut s = Conn::start(Server::spawn_with(
        &server_bin(),
        &top,
        &["--root", &arg],
        Stdio::null(),
    ));
    assert_eq!(s.read(b"/mine.txt").as_deref(), Ok(&b"per-user"[..]));
    assert_eq!(s.realpath(b".").as_deref(), Ok(&b"/"[..]));
    s.finish();
    for bad in ["/srv/%x", "~no-such-user-here/x"] {
        let server = Server::spawn_with(&server_bin(), &top, &["--root", bad], Stdio::null());
        assert_eq!(server.finish().code(), Some(255), "--root {bad}");
    }
}

/// Hard links and renames to and from outside: rename, posix-rename and hardlink
/// resolve both paths inside, and a hard link to a symlink links the symlink.
#[test]
fn confine_links_and_renames() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-rename");
    f.plant("abs", f.outside.join("secret"));
    f.plant("absdir", &f.outside);
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    let secret = f.out("secret");
    let outside_new = f.out("new");
    for (old, new) in [
        (&secret[..], &b"/stolen"[..]),
        (b"../outside/secret", b"/stolen"),
        (b"absdir/secret", b"/stolen"),
        (b"/inside.txt", &outside_new[..]),
        (b"/inside.txt", b"absdir/new"),
        (b"/inside.txt", b"../outside/new"),
    ] {
        let why = format!("{} -> {}", show(old), show(new));
        assert_eq!(
            s.status(Request::Rename { old, new }),
            SSH_FX_NO_SUCH_FILE,
            "rename {why}"
        );
        assert_eq!(
            s.ext_status("posix-rename@openssh.com", &[old, new]),
            SSH_FX_NO_SUCH_FILE,
            "posix-rename {why}"
        );
        assert_eq!(
            s.ext_status("hardlink@openssh.com", &[old, new]),
            SSH_FX_NO_SUCH_FILE,
            "hardlink {why}"
        );
    }
    // A hard link of the planted symlink is another name for the link, not for the
    // file it names.
    assert_eq!(
        s.ext_status("hardlink@openssh.com", &[b"abs", b"abs-link"]),
        SSH_FX_OK
    );
    assert!(
        fs::symlink_metadata(f.root.join("abs-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(s.read(b"abs-link"), Err(SSH_FX_NO_SUCH_FILE));
    // A symlink the client makes to a path outside stores the text, and leads
    // nowhere.
    assert_eq!(
        s.status(Request::Symlink {
            target: &secret,
            link: b"mine"
        }),
        SSH_FX_OK
    );
    assert_eq!(s.read(b"mine"), Err(SSH_FX_NO_SUCH_FILE));
    // The same operations inside work; a rename climbing with `..` stays inside.
    assert_eq!(
        s.ext_status("hardlink@openssh.com", &[b"inside.txt", b"sub/hard"]),
        SSH_FX_OK
    );
    assert_eq!(fs::metadata(f.root.join("inside.txt")).unwrap().nlink(), 2);
    assert_eq!(
        s.status(Request::Rename {
            old: b"sub/hard",
            new: b"../../renamed"
        }),
        SSH_FX_OK
    );
    assert_eq!(
        s.ext_status("posix-rename@openssh.com", &[b"/renamed", b"sub/../moved"]),
        SSH_FX_OK
    );
    assert_eq!(fs::read(f.root.join("moved")).unwrap(), INSIDE);
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// Another thread keeps exchanging a directory inside with a symlink to the outside
/// directory while the client reads, lists, writes and removes through the name.
/// Every success must be the directory inside; nothing outside is ever read or
/// touched.
#[test]
fn confine_symlink_swap_race() {
    if !ours_only() {
        return;
    }
    // Without the sandbox too: with Landlock on, an escape would only turn into
    // PERMISSION_DENIED. Resolution alone must answer NO_SUCH_FILE.
    for args in [&[][..], &["--no-sandbox"][..]] {
        symlink_swap_race(args);
    }
}

fn symlink_swap_race(args: &[&str]) {
    let f = Fixture::new("confine-race");
    let swap = f.root.join("swap");
    let other = f.root.join("other");
    fs::create_dir(&swap).unwrap();
    fs::write(swap.join("secret"), INSIDE).unwrap();
    fs::write(swap.join("victim"), INSIDE).unwrap();
    symlink(&f.outside, &other).unwrap();
    let before = f.outside_snapshot();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (swap, other, stop) = (swap.clone(), other.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &swap,
                    nix::fcntl::AT_FDCWD,
                    &other,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("exchange");
                n += 1;
            }
            n
        })
    };
    let mut s = f.serve(args);
    let (mut reads_ok, mut reads_failed) = (0, 0);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        i += 1;
        match s.read(b"swap/secret") {
            Ok(data) => {
                assert_eq!(data, INSIDE, "read through the swapped name");
                reads_ok += 1;
            }
            Err(code) => {
                assert_eq!(
                    code, SSH_FX_NO_SUCH_FILE,
                    "{args:?}: read refused otherwise"
                );
                reads_failed += 1
            }
        }
        if let Ok(a) = s.stat(b"/swap/secret") {
            assert_eq!(a.size, INSIDE.len() as u64, "stat through the swapped name");
        }
        if let Ok(names) = s.names(b"swap") {
            assert!(
                !names.contains(&b"odir".to_vec()),
                "listed outside: {names:?}"
            );
        }
        let name = format!("swap/new-{i}");
        let _ = s.write(name.as_bytes(), b"x");
        // Once the victim inside is gone, only the one outside is left to hit.
        let _ = s.status(Request::Remove {
            path: b"swap/victim",
        });
        let _ = s.status(Request::Setstat {
            path: b"swap/secret",
            attrs: Attrs::none().with_permissions(0o600),
        });
        let _ = s.ext_status("hardlink@openssh.com", &[b"swap/secret", b"hl"]);
        let _ = s.status(Request::Remove { path: b"hl" });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    s.finish();
    eprintln!("{i} rounds, {swaps} swaps, {reads_ok} reads inside, {reads_failed} refused");
    assert!(
        i > 20 && swaps > 20,
        "the race ran: {i} rounds, {swaps} swaps"
    );
    assert!(reads_ok > 0, "some reads met the directory inside");
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// copy-data copies between two open handles, and no handle can be had on a file
/// outside: every way to open one fails, a made-up handle is refused, and a copy
/// between handles inside works.
#[test]
fn confine_copy_data_has_no_way_out() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-copy");
    f.plant("abs", f.outside.join("victim"));
    f.plant("absdir", &f.outside);
    let before = f.outside_snapshot();
    let mut s = f.serve(&[]);
    let src = s.open(b"inside.txt", SSH_FXF_READ).unwrap();
    let wflags = SSH_FXF_WRITE | SSH_FXF_CREAT;
    for p in [
        &f.out("victim")[..],
        b"../outside/victim",
        b"abs",
        b"absdir/victim",
        b"absdir/new",
    ] {
        assert_eq!(s.open(p, wflags), Err(SSH_FX_NO_SUCH_FILE), "{}", show(p));
    }
    let copy =
        |from: &[u8], to: &[u8]| Buf::new().str(from).u64(0).u64(0).str(to).u64(0).into_vec();
    for forged in [&[0u8, 0, 0, 7, 0, 0, 0, 0][..], b"/outside/victim", b""] {
        let r = s.ext("copy-data", &copy(&src, forged));
        assert_eq!(code(&r), SSH_FX_FAILURE);
    }
    let dst = s
        .open(b"copy.txt", SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
        .unwrap();
    assert_eq!(code(&s.ext("copy-data", &copy(&src, &dst))), SSH_FX_OK);
    s.close(&dst);
    s.close(&src);
    assert_eq!(fs::read(f.root.join("copy.txt")).unwrap(), INSIDE);
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// expand-path's `~` is the start directory; `~user` and home-directory give the
/// user's home as seen inside the root, `/` when it lies outside.
#[test]
fn confine_expand_path_and_home_directory() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-expand");
    let mut s = f.serve(&[]);
    assert_eq!(s.expand(b"~").unwrap(), b"/");
    assert_eq!(s.expand(b"~/sub/deeper").unwrap(), b"/sub/deeper");
    assert_eq!(s.expand(b"~/../..").unwrap(), b"/");
    assert_eq!(s.expand(b"sub").unwrap(), b"/sub");
    // root's home, /root, is outside the root directory.
    assert_eq!(s.expand(b"~root").unwrap(), b"/");
    assert_eq!(s.expand(b"~root/inside.txt").unwrap(), b"/inside.txt");
    assert_eq!(s.home(b"root").unwrap(), b"/");
    assert_eq!(s.expand(b"~no-such-user-here"), Err(SSH_FX_NO_SUCH_FILE));
    assert_eq!(s.home(b"no-such-user-here"), Err(SSH_FX_FAILURE));
    s.finish();
    // Started in /sub (-d is taken inside the root).
    let mut s = f.serve(&["-d", "/sub"]);
    assert_eq!(s.expand(b"~").unwrap(), b"/sub");
    assert_eq!(s.expand(b"deeper").unwrap(), b"/sub/deeper");
    assert_eq!(s.expand(b"~/..").unwrap(), b"/");
    s.finish();
    // With / as the root, a home directory inside keeps its place.
    let home = nix::unistd::User::from_name("root").unwrap().unwrap().dir;
    let home = fs::canonicalize(home).unwrap();
    let mut s = Conn::start(Server::spawn_with(
        &server_bin(),
        f.top(),
        &["--root", "/"],
        Stdio::null(),
    ));
    assert_eq!(s.home(b"root").unwrap(), home.as_os_str().as_bytes());
    assert_eq!(s.expand(b"~root").unwrap(), home.as_os_str().as_bytes());
    s.finish();
}

/// Nothing the server answers shows where the root really is: REALPATH of every
/// shape, expand-path, the listing of `/` (whose `..` is the root itself), and
/// READLINK, which returns the link's own text.
#[test]
fn confine_realpath_and_readlink_hide_the_root() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-realpath");
    f.plant("abs", f.outside.join("secret"));
    f.plant("up", "../..");
    f.plant("good", "/sub/deeper");
    // The real parent of the root looks different from the root.
    fs::set_permissions(f.top(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(&f.root, fs::Permissions::from_mode(0o750)).unwrap();
    let mut s = f.serve(&[]);
    let real = f.root_bytes();
    type Case<'a> = (&'a [u8], Result<&'a [u8], u32>);
    let cases: &[Case] = &[
        (b"", Ok(b"/")),
        (b".", Ok(b"/")),
        (b"..", Ok(b"/")),
        (b"/..", Ok(b"/")),
        (b"../../..", Ok(b"/")),
        (b"sub/deeper/../..", Ok(b"/")),
        (b"up", Ok(b"/")),
        (b"up/inside.txt", Ok(b"/inside.txt")),
        (b"good", Ok(b"/sub/deeper")),
        (b"good/../../new-file", Ok(b"/new-file")),
        (b"abs", Err(SSH_FX_NO_SUCH_FILE)),
    ];
    for (path, want) in cases {
        let got = s.realpath(path);
        assert_eq!(
            got.as_deref().map_err(|e| *e),
            *want,
            "realpath {}",
            show(path)
        );
    }
    for p in [&b"~"[..], b"~/up", b"~root", b"..", b"up/up"] {
        let got = s.expand(p).unwrap();
        assert!(!contains(&got, &real), "expand {}: {}", show(p), show(&got));
        assert_eq!(got, b"/");
    }
    assert_eq!(s.readlink(b"up").unwrap(), b"../..");
    assert_eq!(s.readlink(b"good").unwrap(), b"/sub/deeper");
    let listing = s.list(b"/").unwrap();
    let entry = |n: &[u8]| listing.iter().find(|e| e.name == n).unwrap().clone();
    let (dot, dotdot) = (entry(b"."), entry(b".."));
    assert_eq!(dot.attrs.permissions & 0o7777, 0o750);
    assert_eq!(dotdot.attrs, dot.attrs, "`..` of / is / itself");
    for e in &listing {
        assert!(!contains(&e.longname, &real), "{e:?}");
    }
    s.finish();
}

/// Confined, REALPATH's limits (OpenSSH's PATH_MAX, see proto_realpath_path_max)
/// apply to the paths the client sees, as OpenSSH's would under a chroot: a result
/// of 4095 bytes inside the root is answered though its real path is longer, and
/// 4096 bytes is BAD_MESSAGE however short the real path.
#[test]
fn confine_realpath_path_max() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-path-max");
    // `/rrr…/rrr`, 4095 bytes as the client sees it, made through descriptors: its
    // real path is longer than PATH_MAX.
    let mut shown = Vec::new();
    let mut dir = fs::File::open(&f.root).unwrap();
    while shown.len() < 4095 {
        let n = (4095 - shown.len() - 1).min(200);
        let name = vec![b'r'; n];
        nix::sys::stat::mkdirat(
            &dir,
            name.as_slice(),
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        dir = fs::File::from(
            nix::fcntl::openat(
                &dir,
                name.as_slice(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .unwrap(),
        );
        shown.push(b'/');
        shown.extend_from_slice(&name);
    }
    assert_eq!(shown.len(), 4095);
    let mut s = f.serve(&[]);
    let join = |a: &[u8], b: &[u8]| [a, b].concat();
    let parent = &shown[..shown.iter().rposition(|&b| b == b'/').unwrap()];
    let missing = |len: usize| join(&join(parent, b"/"), &vec![b'y'; len - parent.len() - 1]);
    type Case = (Vec<u8>, Result<Vec<u8>, u32>);
    let cases: Vec<Case> = vec![
        (join(&b"./".repeat(2047), b"x"), Ok(b"/x".to_vec())),
        (join(&b"./".repeat(2047), b"xx"), Err(SSH_FX_BAD_MESSAGE)),
        (join(&b"/".repeat(4095), b"x"), Ok(b"/x".to_vec())),
        (join(&b"/".repeat(4096), b"x"), Err(SSH_FX_BAD_MESSAGE)),
        (shown.clone(), Ok(shown.clone())),
        (shown[1..].to_vec(), Ok(shown.clone())),
        (join(&shown, b"/."), Err(SSH_FX_BAD_MESSAGE)),
        // A missing last name: up to 4095 bytes with it.
        (missing(4095), Ok(missing(4095))),
        (missing(4096), Err(SSH_FX_BAD_MESSAGE)),
        (b"./".repeat(125_000), Err(SSH_FX_BAD_MESSAGE)),
        (b"sub/../".repeat(35_000), Err(SSH_FX_BAD_MESSAGE)),
    ];
    for (path, want) in cases {
        let start = Instant::now();
        let shown_path = show(&path[..path.len().min(60)]);
        assert_eq!(
            s.realpath(&path),
            want,
            "realpath of {} bytes: {shown_path}...",
            path.len()
        );
        assert!(start.elapsed() < Duration::from_secs(2), "{shown_path}");
    }
    s.finish();
}

/// statvfs reports the file system holding the root; a path outside, or a link to
/// another file system, names nothing.
#[test]
fn confine_statvfs() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-statvfs");
    // The root on another file system (tmpfs) than the scratch directory's.
    let shm = PathBuf::from(format!(
        "/dev/shm/sftp-server-confine-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&shm);
    fs::create_dir(&shm).unwrap();
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(shm.clone());
    symlink(f.top(), shm.join("scratch")).unwrap();
    symlink("../../../../tmp", shm.join("tmp-rel")).unwrap();
    fs::create_dir(shm.join("dir")).unwrap();
    let inside = nix::sys::statvfs::statvfs(&shm).unwrap();
    let outside = nix::sys::statvfs::statvfs(f.top()).unwrap();
    assert_ne!(inside.filesystem_id(), outside.filesystem_id());
    let mut s = Conn::start(Server::spawn_with(
        &server_bin(),
        f.top(),
        &["--root", shm.to_str().unwrap()],
        Stdio::null(),
    ));
    for p in [&b"/"[..], b".", b"dir", b"../../.."] {
        let (fsid, blocks) = s.statvfs(p).unwrap();
        assert_eq!(fsid, inside.filesystem_id(), "statvfs {}", show(p));
        assert_eq!(blocks, inside.blocks() as u64);
    }
    for p in [
        f.top().as_os_str().as_bytes(),
        b"scratch",
        b"scratch/root",
        b"tmp-rel",
        b"/tmp",
        b"/proc",
    ] {
        assert_eq!(
            s.statvfs(p),
            Err(SSH_FX_NO_SUCH_FILE),
            "statvfs {}",
            show(p)
        );
    }
    s.finish();
}

/// `-R` with `--root`: every request that writes is refused, reads inside work, and
/// nothing changes on disk, inside or outside.
#[test]
fn confine_read_only() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-ro");
    f.plant("abs", f.outside.join("secret"));
    let before = snapshot(f.top());
    let mut s = f.serve(&["-R"]);
    assert_eq!(s.read(b"inside.txt").as_deref(), Ok(INSIDE));
    assert!(s.names(b"/").unwrap().contains(&b"inside.txt".to_vec()));
    for p in [&b"inside.txt"[..], b"new", b"abs"] {
        for flags in [
            SSH_FXF_WRITE,
            SSH_FXF_READ | SSH_FXF_CREAT,
            SSH_FXF_READ | SSH_FXF_TRUNC,
        ] {
            assert_eq!(s.open(p, flags), Err(SSH_FX_PERMISSION_DENIED));
        }
    }
    let denied = SSH_FX_PERMISSION_DENIED;
    let attrs = Attrs::none().with_permissions(0o777);
    assert_eq!(
        s.status(Request::Setstat {
            path: b"inside.txt",
            attrs: attrs.clone()
        }),
        denied
    );
    assert_eq!(
        s.status(Request::Remove {
            path: b"inside.txt"
        }),
        denied
    );
    assert_eq!(
        s.status(Request::Mkdir {
            path: b"d",
            attrs: Attrs::none()
        }),
        denied
    );
    assert_eq!(
        s.status(Request::Rmdir {
            path: b"sub/deeper"
        }),
        denied
    );
    assert_eq!(
        s.status(Request::Rename {
            old: b"inside.txt",
            new: b"x"
        }),
        denied
    );
    assert_eq!(
        s.status(Request::Symlink {
            target: b"x",
            link: b"y"
        }),
        denied
    );
    for (name, parts) in [
        ("posix-rename@openssh.com", &[&b"inside.txt"[..], b"x"][..]),
        ("hardlink@openssh.com", &[b"inside.txt", b"x"]),
    ] {
        assert_eq!(s.ext_status(name, parts), denied);
    }
    let data = Buf::new().str(b"inside.txt").attrs(&attrs).into_vec();
    assert_eq!(code(&s.ext("lsetstat@openssh.com", &data)), denied);
    s.finish();
    assert_eq!(snapshot(f.top()), before, "nothing changed on disk");
}

/// `-d`, `-u`, `-P` and `-p` work as usual inside the root.
#[test]
fn confine_with_start_directory_umask_and_request_lists() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-flags");
    let mut s = f.serve(&["-d", "sub", "-u", "077", "-P", "remove"]);
    assert_eq!(s.realpath(b".").unwrap(), b"/sub");
    assert_eq!(s.read(b"../inside.txt").as_deref(), Ok(INSIDE));
    s.write(b"deeper/private", b"x").unwrap();
    let md = fs::metadata(f.root.join("sub/deeper/private")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    assert_eq!(
        s.status(Request::Remove {
            path: b"deeper/private"
        }),
        SSH_FX_PERMISSION_DENIED
    );
    s.finish();
    // A start directory that is not inside the root (here: the root's real path,
    // taken inside it) is logged, and the session starts at /.
    let real = f.root.to_str().unwrap().to_string();
    let err = f.top().join("stderr");
    let server = Server::spawn_with(
        &server_bin(),
        f.top(),
        &["--root", &real, "-d", &real, "-e"],
        Stdio::from(fs::File::create(&err).unwrap()),
    );
    let mut s = Conn::start(server);
    assert_eq!(s.realpath(b".").unwrap(), b"/");
    s.finish();
    let log = fs::read_to_string(&err).unwrap();
    assert!(
        log.contains(&format!(
            "chdir to \"{real}\" failed: No such file or directory"
        )),
        "{log}"
    );
    // -p: only the listed requests.
    let mut s = f.serve(&["-p", "open,close,read,realpath"]);
    assert_eq!(s.read(b"/inside.txt").as_deref(), Ok(INSIDE));
    assert_eq!(
        s.stat(b"/inside.txt").map(drop),
        Err(SSH_FX_PERMISSION_DENIED)
    );
    s.finish();
    // A --root that cannot be opened is fatal.
    let missing = f.top().join("no-such-root");
    let mut child = Command::new(server_bin())
        .args(["-e", "--root", missing.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_bounded(&mut child, Duration::from_secs(10));
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(st.code(), Some(255), "{text}");
    assert!(
        text.contains("root directory") && text.contains("No such file or directory"),
        "{text}"
    );
}

/// The fields of /proc/PID/status, by name.
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The soft and hard core file size limits of a process.
fn core_limit(pid: u32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    line.split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Landlock ABI version of the running kernel; 0 without Landlock.
fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION only
    // returns the version; the null attribute is not read.
    let v = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

/// Starts the server with `args` and stderr to a file, past INIT.
fn serve_logged(f: &Fixture, args: &[&str]) -> (Conn, PathBuf) {
    let err = f
        .top()
        .join(format!("stderr-{}", args.join("_").replace('/', "")));
    let server = Server::spawn_with(
        &server_bin(),
        f.top(),
        args,
        Stdio::from(fs::File::create(&err).unwrap()),
    );
    (Conn::start(server), err)
}

/// The sandbox is on with --root: no new privileges, no core dumps, and the log says
/// whether Landlock is enforced; --no-sandbox turns it off, --sandbox turns it on
/// without --root.
#[test]
fn confine_sandbox_process_attributes() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-sandbox");
    let root = f.root.to_str().unwrap();
    let abi = landlock_abi();
    for (args, sandboxed, beneath) in [
        (&["--root", root][..], true, "the root"),
        (&["--root", root, "-R"], true, "the root"),
        (&["--root", root, "--no-sandbox"], false, ""),
        (&["--sandbox"], true, "/"),
        (&[], false, ""),
    ] {
        let mut all = vec!["-e", "-l", "VERBOSE"];
        all.extend_from_slice(args);
        let (mut s, err) = serve_logged(&f, &all);
        // Past INIT: the sandbox is in place.
        assert!(s.realpath(b".").is_ok());
        let pid = s.pid();
        let status = proc_status(pid);
        let nnp = if sandboxed { "1" } else { "0" };
        assert_eq!(status["NoNewPrivs"], nnp, "{args:?}");
        let core = core_limit(pid);
        if sandboxed {
            assert_eq!(core, "0 0", "{args:?}");
        }
        s.finish();
        let log = fs::read_to_string(&err).unwrap();
        let line = log.lines().find(|l| l.starts_with("sandbox: "));
        match (sandboxed, line) {
            (false, None) => {}
            (false, Some(l)) => panic!("{args:?}: sandboxed: {l}"),
            (true, None) => panic!("{args:?}: no sandbox line in {log}"),
            // A read-only session needs Landlock's first version, a writable one
            // its second (renames between directories).
            (true, Some(l)) if abi >= 2 || (abi == 1 && args.contains(&"-R")) => {
                let access = if args.contains(&"-R") {
                    "read-only"
                } else {
                    "read-write"
                };
                assert!(
                    l.contains("Landlock")
                        && l.contains("enforced")
                        && l.contains(&format!("{access} access beneath {beneath}")),
                    "{args:?}: {l}"
                );
            }
            (true, Some(l)) => assert!(l.contains("Landlock not enforced"), "{l}"),
        }
    }
}

/// What the sandbox adds beyond path resolution, shown on the sandbox itself: a
/// process that has applied it (this test binary, run again in a child with only
/// the probe below) cannot open a file outside the root by its plain path, as a bug
/// bypassing the resolution would, nor execute anything; files inside and the user
/// database stay readable. Read-only, nothing inside can be written either.
#[test]
fn confine_sandbox_blocks_what_resolution_would_miss() {
    if !ours_only() {
        return;
    }
    if landlock_abi() < 2 {
        eprintln!("skipped: this kernel has no Landlock (ABI 2 or later)");
        return;
    }
    let f = Fixture::new("confine-landlock");
    for mode in ["rw", "ro"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "confine::confine_sandbox_probe",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SFTP_CONFINE_PROBE", mode)
            .env("SFTP_CONFINE_ROOT", &f.root)
            .env("SFTP_CONFINE_OUTSIDE", &f.outside)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "probe {mode}:\n{text}");
        assert!(text.contains("probe: all checks passed"), "{text}");
    }
}

/// The child half of the test above: does nothing unless run by it.
#[test]
fn confine_sandbox_probe() {
    let Ok(mode) = std::env::var("SFTP_CONFINE_PROBE") else {
        return;
    };
    let root = PathBuf::from(std::env::var_os("SFTP_CONFINE_ROOT").unwrap());
    let outside = PathBuf::from(std::env::var_os("SFTP_CONFINE_OUTSIDE").unwrap());
    let read_only = mode == "ro";
    let fd = nix::fcntl::open(
        &root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    use std::os::fd::AsFd;
    let report = sftp_server::sandbox::apply(Some(fd.as_fd()), read_only);
    assert!(report.no_new_privs && report.not_dumpable && report.no_core);
    // Partial on kernels that lack the newer rights (ioctl, scopes).
    use sftp_server::sandbox::Landlock;
    assert!(
        matches!(report.landlock, Landlock::Full | Landlock::Partial),
        "{report:?}"
    );
    let denied = |r: std::io::Result<()>, what: &str| match r {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        other => panic!("{what}: {other:?}"),
    };
    denied(fs::read(outside.join("secret")).map(drop), "read outside");
    denied(fs::write(outside.join("victim"), b"x"), "write outside");
    denied(fs::write(outside.join("new"), b"x"), "create outside");
    denied(fs::read_dir(&outside).map(drop), "list outside");
    denied(
        fs::read("/etc/os-release").map(drop),
        "read /etc/os-release",
    );
    denied(
        Command::new("/bin/true").status().map(drop),
        "execute /bin/true",
    );
    assert_eq!(fs::read(root.join("inside.txt")).unwrap(), INSIDE);
    assert!(fs::read_dir(&root).is_ok());
    assert!(nix::unistd::User::from_uid(0.into()).unwrap().is_some());
    let created = fs::write(root.join("probe-new"), b"x");
    if read_only {
        denied(created, "create inside, read-only");
    } else {
        created.unwrap();
        fs::rename(root.join("probe-new"), root.join("sub/probe-moved")).unwrap();
        fs::remove_file(root.join("sub/probe-moved")).unwrap();
    }
    println!("probe: all checks passed");
}

/// An unprivileged user serving a directory it owns, next to a directory anyone may
/// write to: writes inside work, every way out fails, and the process is not
/// dumpable (its /proc files belong to root) and has no new privileges.
#[test]
fn confine_unprivileged_user() {
    if !ours_only() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to switch to nobody");
        return;
    }
    let f = Fixture::new("confine-nobody");
    fs::set_permissions(f.top(), fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    for p in [&f.root, &f.root.join("sub"), &f.root.join("sub/deeper")] {
        nix::unistd::chown(p, Some(nobody), Some(nogroup)).unwrap();
    }
    // Outside, DAC alone would let nobody write.
    fs::set_permissions(&f.outside, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(f.outside.join("victim"), fs::Permissions::from_mode(0o666)).unwrap();
    f.plant("absdir", &f.outside);
    f.plant("victim", f.outside.join("victim"));
    let before = f.outside_snapshot();
    let bin = server_bin();
    let args = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        bin.to_str().unwrap(),
        "--root",
        f.root.to_str().unwrap(),
    ];
    let mut s = Conn::start(Server::spawn_with(
        Path::new("setpriv"),
        f.top(),
        &args,
        Stdio::inherit(),
    ));
    s.write(b"mine", b"by nobody").unwrap();
    assert_eq!(fs::metadata(f.root.join("mine")).unwrap().uid(), 65534);
    assert_eq!(s.read(b"/mine").as_deref(), Ok(&b"by nobody"[..]));
    // setstat and lsetstat work under the sandbox for the file's owner.
    let chmod = |mode| Attrs::none().with_permissions(mode).with_times(7, 7);
    assert_eq!(
        s.status(Request::Setstat {
            path: b"mine",
            attrs: chmod(0o640)
        }),
        SSH_FX_OK
    );
    let data = Buf::new().str(b"mine").attrs(&chmod(0o604)).into_vec();
    assert_eq!(code(&s.ext("lsetstat@openssh.com", &data)), SSH_FX_OK);
    let md = fs::metadata(f.root.join("mine")).unwrap();
    assert_eq!((md.mode() & 0o777, md.mtime()), (0o604, 7));
    for p in [
        &f.out("new")[..],
        b"../outside/new",
        b"absdir/new",
        b"victim",
        b"/../outside/victim",
    ] {
        assert_eq!(
            s.write(p, b"gotcha"),
            Err(SSH_FX_NO_SUCH_FILE),
            "{}",
            show(p)
        );
    }
    assert_eq!(
        s.ext_status("posix-rename@openssh.com", &[b"mine", b"absdir/mine"]),
        SSH_FX_NO_SUCH_FILE
    );
    let pid = s.pid();
    let status = proc_status(pid);
    assert!(status["Uid"].starts_with("65534"), "{status:?}");
    assert_eq!(status["NoNewPrivs"], "1");
    // A process that is not dumpable has its /proc files owned by root.
    let md = fs::metadata(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(md.uid(), 0, "/proc/{pid} belongs to root: not dumpable");
    s.finish();
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// Long names and users-groups-by-id still show names under the sandbox (the user
/// database stays readable).
#[test]
fn confine_names_under_the_sandbox() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-names");
    let mut s = f.serve(&[]);
    let listing = s.list(b"/").unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let e = listing.iter().find(|e| e.name == b"inside.txt").unwrap();
    let long = show(&e.longname);
    assert!(
        long.split_whitespace().nth(2) == Some(me.as_str()),
        "{long}"
    );
    let ids = |v: &[u32]| v.iter().flat_map(|i| i.to_be_bytes()).collect::<Vec<u8>>();
    let data = Buf::new().str(&ids(&[0])).str(&ids(&[0])).into_vec();
    match s.ext("users-groups-by-id@openssh.com", &data) {
        Reply::ExtendedReply { body, .. } => {
            assert!(contains(&body, b"root"), "{body:?}");
        }
        r => panic!("{r:?}"),
    }
    s.finish();
}

/// OpenSSH's sftp client run as a user would, `sftp -D "sftp-server --root DIR"`:
/// the remote side is `/`, uploads and downloads work inside, and every way out
/// fails; nothing it prints shows the real location.
#[test]
fn confine_sftp_client() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-sftp");
    f.plant("abs", f.outside.join("secret"));
    f.plant("absdir", &f.outside);
    let local = f.top().join("local");
    let ctl = f.top().join("ctl");
    fs::create_dir(&local).unwrap();
    fs::create_dir(&ctl).unwrap();
    fs::write(local.join("upload.txt"), b"uploaded").unwrap();
    let before = f.outside_snapshot();
    let server = format!(
        "{} --root {}",
        sftp_quote(&server_bin()),
        sftp_quote(&f.root)
    );
    let secret = f.outside.join("secret");
    let secret = secret.to_str().unwrap();
    let batch = Batch::new()
        .cmd("pwd")
        .cmd("cd ..")
        .cmd("pwd")
        .cmd("ls -1")
        .cmd("get inside.txt")
        .cmd("put upload.txt sub/upload.txt")
        .cmd("mkdir made")
        .cmd("rename sub/upload.txt made/moved.txt")
        .cmd(format!("-get {secret} stolen1"))
        .cmd("-get abs stolen2")
        .cmd("-get ../outside/secret stolen3")
        .cmd("-get absdir/secret stolen4")
        .cmd("-put upload.txt absdir/planted")
        .cmd("-put upload.txt ../outside/planted")
        .cmd("-rename made/moved.txt absdir/moved")
        .cmd("-ln -s /inside.txt absdir/link")
        .cmd("cd /sub/deeper/../../..")
        .cmd("pwd")
        .cmd("ls -1 made");
    let run = SftpClient::new(&local, &ctl)
        .arg("-D")
        .arg(&server)
        .run(&batch)
        .ok();
    assert_eq!(run.output_of("pwd"), "Remote working directory: /\n");
    let listed = run.output_of("ls -1");
    assert!(
        listed.contains("inside.txt") && !listed.contains("outside"),
        "{run}"
    );
    assert!(run.output_of("ls -1 made").contains("moved.txt"), "{run}");
    let real = f.root.to_str().unwrap();
    assert!(!run.stdout.contains(real), "{run}");
    assert_eq!(fs::read(local.join("inside.txt")).unwrap(), INSIDE);
    assert_eq!(
        fs::read(f.root.join("made/moved.txt")).unwrap(),
        b"uploaded"
    );
    for n in ["stolen1", "stolen2", "stolen3", "stolen4"] {
        assert!(!local.join(n).exists(), "{n} was fetched\n{run}");
    }
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// Syslog still works under the sandbox: /dev/log lies outside the root. The server
/// runs in a private mount namespace whose /dev/log is the test's socket. At level
/// INFO the first line goes out before the sandbox; at the default level ERROR the
/// first connection to /dev/log is made from inside it.
#[test]
fn confine_syslog_under_the_sandbox() {
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-syslog");
    let olddev = f.top().join("olddev");
    fs::create_dir(&olddev).unwrap();
    const PRIVATE_DEV_LOG: &str = r#"set -e
olddev=$1; sock=$2; shift 2
mount --rbind /dev "$olddev"
mount -t tmpfs -o mode=755 tmpfs /dev
for e in "$olddev"/*; do ln -s "$e" /dev/; done
ln -s "$sock" /dev/log
exec "$@""#;
    for level in ["INFO", "ERROR"] {
        let sock_path = f.top().join(format!("log-{level}.sock"));
        let log = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        let bin = server_bin();
        let args = [
            "--mount",
            "sh",
            "-c",
            PRIVATE_DEV_LOG,
            "sh",
            olddev.to_str().unwrap(),
            sock_path.to_str().unwrap(),
            bin.to_str().unwrap(),
            "--root",
            f.root.to_str().unwrap(),
            "-l",
            level,
        ];
        let mut s = Conn::start(Server::spawn_with(
            Path::new("unshare"),
            f.top(),
            &args,
            Stdio::inherit(),
        ));
        assert_eq!(s.read(b"missing"), Err(SSH_FX_NO_SUCH_FILE));
        assert_eq!(s.read(b"inside.txt").as_deref(), Ok(INSIDE));
        assert_eq!(
            code(&s.ext("bogus@example.com", b"")),
            SSH_FX_OP_UNSUPPORTED
        );
        s.finish();
        log.set_nonblocking(true).unwrap();
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = log.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let text = lines.join("\n");
        let mut wanted = vec!["Unknown extended request \"bogus@example.com\""];
        if level == "INFO" {
            wanted.extend([
                "session opened for local user",
                "open \"missing\" flags READ mode 0666",
                "sent status No such file",
                "close \"inside.txt\" bytes read 14 written 0",
                "session closed for local user",
            ]);
        } else {
            assert_eq!(lines.len(), 1, "{text}");
        }
        for want in wanted {
            assert!(
                text.contains(want),
                "{level}: {want:?} not in syslog:\n{text}"
            );
        }
    }
}

/// The README's recipes: `ncat -lk -e "sftp-server --root DIR -R"` and socat's
/// `EXEC:"sftp-server --root DIR"`, reached with `sftp -D "ncat 127.0.0.1 PORT"`. The
/// read-only share serves downloads and refuses uploads; the read-write one takes
/// them; both show DIR as `/`.
#[test]
fn confine_ncat_and_socat_recipes() {
    use crate::support::procs::{Daemon, start_on_free_port, tcp_connectable};
    if !ours_only() {
        return;
    }
    let f = Fixture::new("confine-ncat");
    let (local, ctl) = (f.top().join("local"), f.top().join("ctl"));
    fs::create_dir(&local).unwrap();
    fs::create_dir(&ctl).unwrap();
    fs::write(local.join("upload.txt"), b"uploaded").unwrap();
    let bin = server_bin();
    let (bin, root) = (bin.to_str().unwrap(), f.root.to_str().unwrap());
    assert!(
        !bin.contains(' ') && !root.contains(' '),
        "ncat -e splits on spaces"
    );
    let exec = format!("{bin} --root {root}");
    let before = f.outside_snapshot();
    for (listener, read_only) in [("ncat", true), ("socat", false)] {
        let command = if read_only {
            format!("{exec} -R")
        } else {
            exec.clone()
        };
        let (_daemon, port) = start_on_free_port(
            listener,
            |port| {
                let mut cmd = Command::new(listener);
                if listener == "ncat" {
                    cmd.args(["-lk", "-e", &command, "127.0.0.1", &port.to_string()]);
                } else {
                    cmd.arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
                        .arg(format!("EXEC:{command}"));
                }
                Daemon::spawn(
                    listener,
                    cmd.current_dir(f.top()),
                    &ctl.join(format!("{listener}.log")),
                )
            },
            |_, port| tcp_connectable(port),
        );
        let put = if read_only { "-put" } else { "put" };
        let batch = Batch::new()
            .cmd("pwd")
            .cmd("get /inside.txt")
            .cmd(format!("{put} upload.txt {listener}.txt"))
            .cmd("-get ../outside/secret stolen");
        let run = SftpClient::new(&local, &ctl)
            .arg("-D")
            .arg(format!("ncat 127.0.0.1 {port}"))
            .run(&batch)
            .ok();
        assert_eq!(
            run.output_of("pwd"),
            "Remote working directory: /\n",
            "{run}"
        );
        assert_eq!(fs::read(local.join("inside.txt")).unwrap(), INSIDE);
        let uploaded = f.root.join(format!("{listener}.txt"));
        assert_eq!(uploaded.exists(), !read_only, "{run}");
        assert!(!local.join("stolen").exists(), "{run}");
        fs::remove_file(local.join("inside.txt")).unwrap();
    }
    assert_eq!(f.outside_snapshot(), before, "nothing outside changed");
}

/// A trailing slash keeps its meaning under `--root`, as without it: a regular file
/// named with one is not a directory (REMOVE and RENAME leave it alone), and LSTAT of
/// a symlink to a directory with one describes the directory.
#[test]
fn confine_trailing_slash_means_a_directory() {
    let dir = Scratch::new("confine-slash");
    let root = dir.path();
    fs::write(root.join("f"), b"data").unwrap();
    fs::write(root.join("g"), b"data").unwrap();
    fs::create_dir(root.join("d")).unwrap();
    symlink("d", root.join("link")).unwrap();
    let mut args = vec![];
    if !testing_openssh() {
        args = vec!["--root", root.to_str().unwrap()];
    }
    let mut s = Session::init(Server::spawn_with(
        &server_bin(),
        root,
        &args,
        Stdio::null(),
    ));
    // ENOTDIR is NO_SUCH_FILE, in OpenSSH's table of errors.
    s.status(Request::Remove { path: b"f/" }, SSH_FX_NO_SUCH_FILE);
    s.status(
        Request::Rename {
            old: b"g/",
            new: b"h",
        },
        SSH_FX_NO_SUCH_FILE,
    );
    let a = s.attrs(Request::Lstat { path: b"link/" });
    assert_eq!(
        a.permissions & 0o170000,
        0o040000,
        "the directory's attributes"
    );
    let a = s.attrs(Request::Lstat { path: b"link" });
    assert_eq!(a.permissions & 0o170000, 0o120000, "the link's own");
    s.status(Request::Lstat { path: b"f/" }, SSH_FX_NO_SUCH_FILE);
    s.finish();
    assert!(root.join("f").is_file() && root.join("g").is_file());
    assert!(!root.join("h").exists());
}
