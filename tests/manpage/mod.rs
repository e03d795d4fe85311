//! The manual page `man/sftp-server.8` against the built binary: the options it
//! documents are the options the binary accepts, its REQUESTS section names every
//! request `-Q requests` prints, and mandoc finds nothing to complain about.
//!
//! The binary's options come from the binary itself: the usage text it prints for
//! `-h`, plus a probe of every option letter (an option the parser does not know is
//! answered with exactly that usage text and status 1; any other answer means the
//! parser took it). Long options are not in OpenSSH's usage text: their names come
//! from the list the parser is built from (`cli::LONG_OPTIONS`), each probed the same
//! way, and an unknown long option must be refused.

use crate::support::{server_bin, testing_openssh, wait_bounded};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn page_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man/sftp-server.8")
}

fn page() -> String {
    std::fs::read_to_string(page_path()).expect("read man/sftp-server.8")
}

/// The lines of section `name` (between its `.Sh` and the next `.Sh`).
fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!(".Sh {name}");
    let mut lines = page.lines().skip_while(|l| l.trim_end() != header);
    assert!(
        lines.next().is_some(),
        "the page has no {name} section ({header:?})"
    );
    lines.take_while(|l| !l.starts_with(".Sh ")).collect()
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the server under test with `args`, stdin from /dev/null (so a session, if one
/// starts, ends at once), for at most 10 seconds.
fn run(args: &[&str]) -> Run {
    // In a directory of its own: a probed option may take the next word as a file to
    // create (`--audit-log -Q`).
    let scratch = crate::support::Scratch::new("manpage-run");
    let mut child = Command::new(server_bin())
        .args(args)
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// An option as `.It Fl` writes it and as the command line takes it: `-d`,
/// `--version`.
type Flag = String;

/// The options the usage text shows, each with the name of its argument if it takes
/// one: `[-ehR]` is three options without one, `[-d start_directory]` and
/// `-Q protocol_feature` one each with one.
fn usage_flags(usage: &str) -> BTreeMap<Flag, Option<String>> {
    let mut flags = BTreeMap::new();
    let spaced = usage.replace('[', " [ ").replace(']', " ] ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        let Some(letters) = w.strip_prefix('-').filter(|l| !l.is_empty()) else {
            continue;
        };
        let argument = words
            .get(i)
            .filter(|a| !a.starts_with('-') && !["[", "]", "sftp-server"].contains(a));
        match argument {
            Some(a) => {
                assert_eq!(
                    letters.chars().count(),
                    1,
                    "usage shows {w} {a}: an argument after several letters"
                );
                flags.insert(format!("-{letters}"), Some(a.to_string()));
                i += 1;
            }
            None => {
                for c in letters.chars() {
                    flags.insert(format!("-{c}"), None);
                }
            }
        }
    }
    flags
}

/// True when the binary takes `flag`: with `-Q requests` after it (and an argument
/// between, for an option that needs one), the answer is anything but the usage
/// text with status 1.
fn accepts(flag: &str, usage: &str) -> bool {
    let rejected = |r: &Run| r.code == Some(1) && r.stderr == usage;
    !rejected(&run(&[flag, "-Q", "requests"])) || !rejected(&run(&[flag, "x", "-Q", "requests"]))
}

/// The options documented in OPTIONS, each with the name of its argument if the
/// page gives one.
fn page_flags(page: &str) -> BTreeMap<Flag, Option<String>> {
    let mut flags = BTreeMap::new();
    for line in section(page, "OPTIONS") {
        let Some(rest) = line.strip_prefix(".It Fl ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().expect("a letter after .It Fl");
        let argument = match (words.next(), words.next()) {
            (Some("Ar"), Some(a)) => Some(a.to_string()),
            _ => None,
        };
        let old = flags.insert(format!("-{name}"), argument);
        assert!(old.is_none(), "-{name} is documented twice in OPTIONS");
    }
    flags
}

#[test]
fn options_match_the_binary() {
    if testing_openssh() {
        eprintln!("not applicable: the page documents this server's options, not OpenSSH's");
        return;
    }
    let help = run(&["-h"]);
    assert_eq!(help.code, Some(1), "-h exits with 1");
    // OpenSSH's usage lines, then (after a blank line) the list of every option.
    let usage = match help.stderr.split_once("\n\n") {
        Some((usage, _)) => format!("{usage}\n"),
        None => help.stderr.clone(),
    };
    assert!(usage.starts_with("usage: "), "-h prints usage: {usage:?}");
    let shown = usage_flags(&usage);
    assert!(shown.contains_key("-Q"), "usage shows -Q: {usage:?}");

    // Every option the binary accepts: those its usage shows, every letter it takes,
    // and --version.
    let mut binary: BTreeSet<Flag> = shown.keys().cloned().collect();
    for c in ('a'..='z').chain('A'..='Z') {
        let flag = format!("-{c}");
        if accepts(&flag, &usage) {
            binary.insert(flag);
        }
    }
    assert!(
        binary.len() < 52,
        "every letter looks accepted: the probe cannot tell options apart"
    );
    let version = run(&["--version"]);
    assert_eq!(version.code, Some(0), "--version: {}", version.stderr);
    assert!(
        version.stdout.starts_with("sftp-server "),
        "--version prints the name and version: {:?}",
        version.stdout
    );
    // Every long option, each of which the binary must take.
    assert!(
        !accepts("--no-such-option", &usage),
        "an unknown long option looks accepted: the probe cannot tell options apart"
    );
    for name in sftp_server::cli::LONG_OPTIONS {
        let flag = format!("--{name}");
        assert!(accepts(&flag, &usage), "the binary refuses {flag}");
        binary.insert(flag);
    }
    assert!(binary.contains("--version"));

    let page = page();
    let documented = page_flags(&page);
    let missing: Vec<_> = binary
        .iter()
        .filter(|f| !documented.contains_key(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted by the binary but not documented in OPTIONS as `.It Fl`: {missing:?}"
    );
    for flag in documented.keys() {
        assert!(
            shown.contains_key(flag) || accepts(flag, &usage),
            "OPTIONS documents {flag}, which the binary does not accept"
        );
    }
    // A long option takes an argument exactly when the page names one: such an
    // option given last, without its value, is a usage error.
    for (flag, argument) in documented.iter().filter(|(f, _)| f.starts_with("--")) {
        let alone = run(&[flag.as_str()]);
        let wants_value = alone.code == Some(1) && alone.stderr == usage;
        assert_eq!(
            argument.is_some(),
            wants_value,
            "{flag}: OPTIONS gives it the argument {argument:?}"
        );
    }
    // The options the usage shows take an argument exactly when the page says so,
    // under the same name.
    for (flag, argument) in &shown {
        assert_eq!(
            &documented[flag], argument,
            "{flag}: argument in OPTIONS (left) differs from the usage text (right)"
        );
    }
}

#[test]
fn requests_section_lists_every_request() {
    let q = run(&["-Q", "requests"]);
    assert_eq!(q.code, Some(0), "-Q requests: {}", q.stderr);
    let printed: Vec<&str> = q.stdout.lines().collect();
    assert!(!printed.is_empty(), "-Q requests printed nothing");
    let page = page();
    let documented: Vec<&str> = section(&page, "REQUESTS")
        .into_iter()
        .filter_map(|l| l.strip_prefix(".It Cm "))
        .map(str::trim)
        .collect();
    let missing: Vec<_> = printed.iter().filter(|n| !documented.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "printed by -Q requests but not in REQUESTS: {missing:?}"
    );
    if !testing_openssh() {
        assert_eq!(
            documented, printed,
            "REQUESTS lists the requests in the order -Q requests prints them"
        );
    }
}

#[test]
fn mandoc_lint_is_clean() {
    // mandoc is installed by .ci/run; a missing one is a failure, not a skip.
    let out = Command::new("mandoc")
        .args(["-T", "lint"])
        .arg(page_path())
        .output()
        .expect("run mandoc (apt-get install mandoc)");
    // Whether an `.Xr` reference resolves depends on the manuals installed and on
    // the state of mandoc.db on this machine, not on the page.
    let about_this_machine =
        |l: &&str| l.contains("referenced manual not found") || l.contains("outdated mandoc.db");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !about_this_machine(l))
        .collect();
    assert!(
        complaints.is_empty(),
        "mandoc -T lint:\n{}",
        complaints.join("\n")
    );
}

/// `--help` (stdout, exit 0) and `-h` (stderr, exit 1) print the usage and then every
/// option the binary takes, one line each, so the list stays in step with them.
#[test]
fn help_lists_every_option() {
    if crate::support::testing_openssh() {
        return; // OpenSSH's server has no --help and prints the usage alone for -h
    }
    let help = run(&["--help"]);
    assert_eq!(help.code, Some(0), "--help exits 0: {}", help.stderr);
    assert!(help.stdout.starts_with("usage: "), "{}", help.stdout);
    let short = run(&["-h"]);
    assert_eq!(short.code, Some(1), "-h exits 1");
    assert_eq!(short.stderr, help.stdout, "-h prints what --help prints");
    // The options a line lists: its first column (`-d DIR`, `--sandbox, --no-sandbox`).
    let listed: Vec<&str> = help
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split("  ").next())
        .flat_map(|column| column.split(", "))
        .filter_map(|option| option.split(' ').next())
        .collect();
    for name in sftp_server::cli::LONG_OPTIONS {
        let flag = format!("--{name}");
        assert!(
            listed.contains(&flag.as_str()),
            "--help does not list {flag}:\n{}",
            help.stdout
        );
    }
    // Every letter the usage shows (the usage is OpenSSH's, with -m).
    let usage = help
        .stdout
        .split_once("\n\n")
        .expect("a blank line after the usage")
        .0;
    for flag in usage_flags(usage).keys() {
        assert!(
            listed.contains(&flag.as_str()),
            "--help does not list {flag}:\n{}",
            help.stdout
        );
    }
}
