//! The Debian package `sftp-server-rs` (`cargo deb`, metadata in Cargo.toml) as
//! installed on this machine: it serves `sftp -D` from its own path, reports this
//! tree's version, its manual page is found by `man`, its documentation examples are
//! there, and it owns no file another installed package owns (OpenSSH's
//! `sftp-server.8.gz` above all).
//!
//! `.ci/run` installs the package and sets `SFTP_TEST_PACKAGE=1`, which makes a
//! missing package a failure. Without it these tests run only when the package is
//! installed, and otherwise say why they did nothing. They test the package whatever
//! `SFTP_SERVER_BIN` names. The one test that needs no package keeps the example
//! units in `man/examples/` equal to README's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::clients::{Batch, SftpClient, Workspace, sftp_quote};
use crate::support::content::{assert_file_content, write_random_file};
use crate::support::readme_block;

const PACKAGE: &str = "sftp-server-rs";
/// Where the package installs the binary (README "Install").
const BIN: &str = "/usr/libexec/sftp-server-rs/sftp-server";
/// Where README's recipes put the binary built from source.
const SOURCE_BIN: &str = "/usr/local/libexec/sftp-server";
const DOC: &str = "/usr/share/doc/sftp-server-rs";
const MAN_PAGE: &str = "/usr/share/man/man8/sftp-server-rs.8.gz";

/// Each file of `man/examples/` and the README recipe it is: the file is that block
/// with the package's path for the binary.
const EXAMPLES: &[(&str, &str)] = &[
    ("sftp.socket", "systemd-socket"),
    ("sftp@.service", "systemd-service"),
    ("sftp-share.xinetd", "xinetd"),
    ("inetd.conf", "inetd"),
];

/// Runs `program args`, panicking unless it exits 0; returns its stdout.
fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Whether the package is installed. With `SFTP_TEST_PACKAGE=1` it must be; without,
/// a missing package is reported on stderr and the caller does nothing.
fn installed(test: &str) -> bool {
    let state = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", PACKAGE])
        .output();
    let why_not = match &state {
        Ok(out) if out.status.success() && out.stdout == b"installed" => return true,
        Ok(out) if out.status.success() => {
            format!("dpkg-query says {}", String::from_utf8_lossy(&out.stdout))
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("cannot run dpkg-query: {e}"),
    };
    assert!(
        std::env::var_os("SFTP_TEST_PACKAGE").is_none_or(|v| v != "1"),
        "SFTP_TEST_PACKAGE=1 but {PACKAGE} is not installed: {why_not}"
    );
    eprintln!(
        "{test}: did nothing: {PACKAGE} is not installed ({why_not}); `cargo deb --locked` \
         and `apt-get install ./target/debian/{PACKAGE}_*.deb` install it, \
         SFTP_TEST_PACKAGE=1 makes its absence a failure"
    );
    false
}

#[test]
fn package_examples_are_readme_blocks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, recipe) in EXAMPLES {
        let block = readme_block(recipe);
        let expected = block.replace(SOURCE_BIN, BIN);
        let path = root.join("man/examples").join(file);
        let actual = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert_eq!(
            actual, expected,
            "man/examples/{file} is README's recipe {recipe} with {BIN}"
        );
    }
    // A file added without a README block to follow would drift unnoticed.
    let files: BTreeSet<String> = std::fs::read_dir(root.join("man/examples"))
        .expect("read man/examples")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    let listed: BTreeSet<String> = EXAMPLES.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        files, listed,
        "man/examples/ holds the files EXAMPLES lists"
    );
}

#[test]
fn package_serves_sftp_d() {
    if !installed("package_serves_sftp_d") {
        return;
    }
    let ws = Workspace::new("package-sftp");
    let data = write_random_file(&ws.local.join("up.bin"), 16, 300_000);
    let up = ws.local.join("up.bin");
    let back = ws.local.join("back.bin");
    SftpClient::new(&ws.remote, &ws.ctl)
        .arg("-D")
        .arg(BIN)
        .run(
            &Batch::new()
                .cmd(format!("put {} stored.bin", sftp_quote(&up)))
                .cmd(format!("get stored.bin {}", sftp_quote(&back))),
        )
        .ok();
    assert_file_content(&ws.remote.join("stored.bin"), &data);
    assert_file_content(&back, &data);
}

#[test]
fn package_binary_is_this_version() {
    if !installed("package_binary_is_this_version") {
        return;
    }
    assert_eq!(
        output(BIN, &["--version"]),
        format!("sftp-server {}\n", env!("CARGO_PKG_VERSION"))
    );
    let version = output("dpkg-query", &["-W", "-f=${Version}", PACKAGE]);
    assert!(
        version.starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
        "package version {version}"
    );
}

#[test]
fn package_manual_page_is_found() {
    if !installed("package_manual_page_is_found") {
        return;
    }
    assert_eq!(output("man", &["-w", PACKAGE]), format!("{MAN_PAGE}\n"));
    let page = Command::new("man")
        .args(["-P", "cat", PACKAGE])
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C")
        .output()
        .expect("run man");
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(page.status.success(), "man {PACKAGE}: {}", page.status);
    // The FILES section names the package's own path.
    assert!(text.contains(BIN), "man {PACKAGE} shows the page:\n{text}");
}

#[test]
fn package_installs_its_documentation() {
    if !installed("package_installs_its_documentation") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, _) in EXAMPLES {
        let installed = Path::new(DOC).join("examples").join(file);
        let shipped = std::fs::read(root.join("man/examples").join(file)).expect("read example");
        assert_file_content(&installed, &shipped);
    }
    for file in ["README.md", "copyright"] {
        let path = Path::new(DOC).join(file);
        assert!(path.is_file(), "{} is installed", path.display());
    }
}

#[test]
fn package_owns_no_file_of_another() {
    if !installed("package_owns_no_file_of_another") {
        return;
    }
    let files: Vec<String> = output("dpkg", &["-L", PACKAGE])
        .lines()
        .filter(|p| !Path::new(p).is_dir())
        .map(String::from)
        .collect();
    assert!(files.iter().any(|f| f == BIN), "{PACKAGE} installs {BIN}");
    assert!(
        files.iter().any(|f| f == MAN_PAGE),
        "{PACKAGE} installs {MAN_PAGE}"
    );
    let mut args = vec!["-S"];
    args.extend(files.iter().map(String::as_str));
    for line in output("dpkg", &args).lines() {
        if line.starts_with("diversion by ") {
            continue;
        }
        let (owners, path) = line.split_once(": ").expect("`owners: path`");
        assert_eq!(owners, PACKAGE, "{path} has one owner, {PACKAGE}");
    }
    // Not the virtual package sftp-server: OpenSSH's must stay what provides it, since
    // sshd's default Subsystem line names OpenSSH's binary.
    let provides = output("dpkg-query", &["-W", "-f=${Provides}", PACKAGE]);
    assert!(
        !provides
            .split(',')
            .any(|p| p.trim().starts_with("sftp-server")),
        "{PACKAGE} provides {provides}"
    );
}
