//! `--audit-log`: the records a session leaves, field by field, through OpenSSH's
//! `sftp` and raw packets, unconfined and under `--root` with the sandbox; many
//! sessions appending to one file; the `fd:N` and journal sinks; and failing closed.
//!
//! The option is ours alone: against OpenSSH's server these tests have nothing to
//! check and return at once.

use crate::support::clients::{Batch, SftpClient, Workspace, server_command, sftp_quote};
use crate::support::content::pseudo_random;
use crate::support::raw::*;
use crate::support::session::Session;
use crate::support::status::assert_status;
use crate::support::{Scratch, Spawn, testing_openssh, wait_bounded};
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn records(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).expect("audit log");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A raw session with the server under test writing its records to `log`.
fn audited(scratch: &Scratch, log: &Path) -> Session {
    Session::init(
        Spawn::new(scratch.path())
            .args(&["--audit-log", log.to_str().unwrap()])
            .start(),
    )
}

/// OPEN of `up` as an upload starts (WRITE, CREATE, TRUNCATE): its handle.
fn upload(s: &mut Session) -> Vec<u8> {
    s.handle(Request::Open {
        path: b"up",
        pflags: SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC,
        attrs: Attrs::none(),
    })
}

/// `sftp -D "server --audit-log LOG ARGS"` in the workspace's remote directory.
fn client(ws: &Workspace, log: &Path, args: &str) -> SftpClient {
    SftpClient::new(&ws.remote, &ws.ctl).arg("-D").arg(format!(
        "{} --audit-log {} {args}",
        server_command(),
        sftp_quote(log)
    ))
}

/// The records of `event`.
fn of<'a>(rs: &'a [Value], event: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["event"] == event).collect()
}

/// Checks what every record of one session shares: the version, the session id,
/// `seq` counting from 1 without a gap, the process and user.
#[track_caller]
fn check_common(rs: &[Value]) {
    let sid = rs[0]["sid"].as_str().expect("sid");
    assert_eq!(sid.len(), 32, "128-bit hex session id");
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r["v"], 1);
        assert_eq!(r["sid"], sid);
        assert_eq!(r["seq"], i as u64 + 1, "seq of {r}");
        assert_eq!(r["user"], "root");
        assert_eq!(r["uid"], 0);
        assert!(r["pid"].as_u64().is_some());
        assert!(r["client"].as_str().is_some_and(|c| c.starts_with("unix:")));
        let ts = r["ts"].as_str().expect("ts");
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        assert!(r["status"] == "ok" || r["status"] == "error");
    }
    assert_eq!(rs[0]["event"], "session_start");
    assert_eq!(rs.last().unwrap()["event"], "session_end");
}

/// One `sftp` session of every kind of operation, unconfined (paths absolute in the
/// server's file system) or under `--root` (paths inside it).
fn sftp_session(confined: bool) {
    if testing_openssh() {
        return;
    }
    let ws = Workspace::new(if confined { "audit-root" } else { "audit" });
    let log = ws.root().join("audit.jsonl");
    let content = pseudo_random(1, 300_000);
    let src = ws.local.join("src");
    std::fs::write(&src, &content).unwrap();
    let partial = ws.local.join("partial");
    std::fs::write(&partial, &content[..100_000]).unwrap();
    let got = ws.local.join("got");
    let root = ws.remote.to_str().unwrap().to_string();
    let args = match confined {
        true => format!("--root {}", sftp_quote(&ws.remote)),
        false => String::new(),
    };
    let batch = Batch::new()
        .cmd(format!("put {} up", sftp_quote(&src)))
        .cmd(format!("get up {}", sftp_quote(&got)))
        .cmd(format!("reget up {}", sftp_quote(&partial)))
        .cmd("rename up moved")
        .cmd("mkdir d")
        .cmd("rmdir d")
        .cmd("chmod 600 moved")
        .cmd("ln moved hard")
        .cmd("ln -s moved soft")
        .cmd("rm hard")
        .cmd("-rm nonexistent");
    client(&ws, &log, &args).run(&batch).ok();
    let rs = records(&log);
    check_common(&rs);
    // Paths as the client sees them.
    let at = |name: &str| match confined {
        true => format!("/{name}"),
        false => format!("{root}/{name}"),
    };
    let start = &rs[0];
    assert_eq!(start["version"], 3);
    assert_eq!(start["read_only"], false);
    assert_eq!(
        start["start_dir"],
        at("").trim_end_matches('/').to_string() + if confined { "/" } else { "" }
    );
    assert_eq!(start["root"].is_string(), confined);

    let transfers = of(&rs, "transfer");
    assert_eq!(transfers.len(), 3, "put, get, reget: {transfers:?}");
    let (put, get, reget) = (transfers[0], transfers[1], transfers[2]);
    assert_eq!(put["path"], at("up"));
    assert_eq!(put["flags"], "WRITE,CREATE,TRUNCATE");
    assert_eq!(put["direction"], "upload");
    assert_eq!(put["bytes_written"], 300_000);
    assert_eq!(put["bytes_read"], 0);
    assert_eq!(put["size"], 300_000);
    assert_eq!(put["close"], "client");
    assert_eq!(put["status"], "ok");
    assert!(put["duration_ms"].is_u64() && put["mode"].is_string());
    assert_eq!(get["path"], at("up"));
    assert_eq!(get["flags"], "READ");
    assert_eq!(get["direction"], "download");
    assert_eq!(get["bytes_read"], 300_000);
    assert_eq!(reget["bytes_read"], 200_000, "reget reads the rest");

    let rename = of(&rs, "rename")[0];
    assert_eq!(
        (&rename["from"], &rename["to"]),
        (&at("up").into(), &at("moved").into())
    );
    assert_eq!(rename["posix"], true);
    let mkdir = of(&rs, "mkdir")[0];
    assert_eq!(
        (&mkdir["path"], &mkdir["mode"]),
        (&at("d").into(), &"0777".into())
    );
    assert_eq!(of(&rs, "rmdir")[0]["path"], at("d"));
    let setstat = of(&rs, "setstat")[0];
    assert_eq!(setstat["request"], "setstat");
    assert_eq!(
        (&setstat["path"], &setstat["mode"]),
        (&at("moved").into(), &"0600".into())
    );
    let hard = of(&rs, "hardlink")[0];
    assert_eq!(
        (&hard["from"], &hard["to"]),
        (&at("moved").into(), &at("hard").into())
    );
    let soft = of(&rs, "symlink")[0];
    assert_eq!(soft["link"], at("soft"));
    assert!(soft["target"].as_str().unwrap().ends_with("moved"));
    let removes = of(&rs, "remove");
    assert_eq!(removes.len(), 2);
    assert_eq!(
        (&removes[0]["path"], &removes[0]["status"]),
        (&at("hard").into(), &"ok".into())
    );
    let failed = removes[1];
    assert_eq!(failed["path"], at("nonexistent"));
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["sftp_status"], "NO_SUCH_FILE");
    assert_eq!(failed["error"], "No such file or directory");

    let end = rs.last().unwrap();
    assert_eq!(end["reason"], "client closed");
    assert_eq!(end["files_uploaded"], 1);
    assert_eq!(end["files_downloaded"], 2);
    assert_eq!(end["bytes_written"], 300_000);
    assert_eq!(end["bytes_read"], 500_000);
    assert_eq!(end["forced_closes"], 0);
    assert!(end["errors"].as_u64().unwrap() >= 1);
    assert!(end["requests"].as_u64().unwrap() > 10);
}

#[test]
fn audit_sftp_session_field_by_field() {
    sftp_session(false);
}

#[test]
fn audit_sftp_session_under_root_with_the_sandbox() {
    sftp_session(true);
}

/// Requests refused by `-R` and `-P` are `denied` records, with the request's name.
#[test]
fn audit_denied_requests() {
    if testing_openssh() {
        return;
    }
    let ws = Workspace::new("audit-denied");
    let log = ws.root().join("audit.jsonl");
    std::fs::write(ws.remote.join("f"), b"x").unwrap();
    let src = ws.local.join("src");
    std::fs::write(&src, b"data").unwrap();
    let batch = Batch::new()
        .cmd(format!("-put {} up", sftp_quote(&src)))
        .cmd("-mkdir d")
        .cmd("-rm f");
    client(&ws, &log, "-R -P remove").run(&batch).ok();
    let rs = records(&log);
    check_common(&rs);
    let denied = of(&rs, "denied");
    let summary: Vec<(&str, &str, &str)> = denied
        .iter()
        .map(|r| {
            (
                r["request"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["sftp_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("open", "read-only", "PERMISSION_DENIED"),
            ("mkdir", "read-only", "PERMISSION_DENIED"),
            ("remove", "read-only", "PERMISSION_DENIED"),
        ]
    );
    assert!(denied.iter().all(|r| r["status"] == "error"));
    assert!(ws.remote.join("f").exists() && !ws.remote.join("up").exists());
}

/// A client that goes away mid-upload: its handle is closed by the session's end,
/// with the bytes that were acknowledged.
#[test]
fn audit_client_gone_mid_upload() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-gone");
    let log = scratch.path().join("audit.jsonl");
    let mut s = audited(&scratch, &log);
    let h = upload(&mut s);
    let chunk = pseudo_random(2, 32768);
    for i in 0..5 {
        s.write(&h, i * 32768, &chunk);
    }
    assert!(s.finish().success());
    let rs = records(&log);
    check_common(&rs);
    let t = of(&rs, "transfer");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["close"], "session_end");
    assert_eq!(t[0]["bytes_written"], 5 * 32768);
    assert_eq!(t[0]["size"], 5 * 32768);
    let end = rs.last().unwrap();
    assert_eq!(end["forced_closes"], 1);
    assert_eq!(end["reason"], "client closed");
}

/// 16 sessions at once append 1,000 records each to one file: every line is whole
/// JSON, and every session's `seq` runs from 1 without a gap.
#[test]
fn audit_many_sessions_one_file() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-many");
    let log = scratch.path().join("audit.jsonl");
    std::thread::scope(|t| {
        for _ in 0..16 {
            t.spawn(|| {
                let mut s = audited(&scratch, &log);
                // 1,000 failing MKDIRs, 100 in flight at a time: 1,000 records.
                for _ in 0..10 {
                    let mut bytes = Vec::new();
                    for i in 0..100 {
                        let path = format!("missing/dir-{i}");
                        bytes.extend(
                            Request::Mkdir {
                                path: path.as_bytes(),
                                attrs: Attrs::none(),
                            }
                            .encode(i + 1),
                        );
                    }
                    s.c.send_raw(&bytes);
                    for _ in 0..100 {
                        s.c.recv().expect("MKDIR reply");
                    }
                }
                assert!(s.finish().success());
            });
        }
    });
    let rs = records(&log);
    let mut sessions: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &rs {
        sessions
            .entry(r["sid"].as_str().unwrap().to_string())
            .or_default()
            .push(r["seq"].as_u64().unwrap());
    }
    assert_eq!(sessions.len(), 16);
    for (sid, seqs) in sessions {
        // session_start, 1,000 mkdir, session_end.
        assert_eq!(seqs, (1..=1002).collect::<Vec<_>>(), "session {sid}");
    }
}

/// `fd:N`: a descriptor the parent opened in append mode; one without O_APPEND on a
/// regular file is refused before serving.
#[test]
fn audit_inherited_descriptor() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-fd");
    let log = scratch.path().join("audit.jsonl");
    let server = crate::support::server_bin();
    let start = |redirect: &str| {
        Spawn::new(scratch.path())
            .bin(Path::new("/bin/bash"))
            .args(&[
                "-c",
                &format!("exec 3{redirect}\"$0\"; exec \"$1\" -e --audit-log fd:3"),
                log.to_str().unwrap(),
                server.to_str().unwrap(),
            ])
            .stderr(Stdio::piped())
    };
    let mut s = Session::init(start(">>").start());
    s.ok(Request::Mkdir {
        path: b"d",
        attrs: Attrs::none(),
    });
    assert!(s.finish().success());
    let rs = records(&log);
    check_common(&rs);
    assert_eq!(of(&rs, "mkdir").len(), 1);

    // Truncating, not appending: refused.
    let (mut child, sock) = start(">").start_parts();
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    drop(sock);
    assert_eq!(status.code(), Some(255));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("not opened for appending"), "{err}");
}

/// The journal's native protocol, on a datagram socket of the test's own.
#[test]
fn audit_journal_fields() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-journal");
    let path = scratch.path().join("journal.socket");
    let journal = UnixDatagram::bind(&path).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dest = format!("journal:{}", path.display());
    let mut s = Session::init(
        Spawn::new(scratch.path())
            .args(&["--audit-log", &dest])
            .start(),
    );
    let h = s.handle(Request::Open {
        path: b"a\nb",
        pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
        attrs: Attrs::none(),
    });
    s.write(&h, 0, b"12345");
    s.close(&h);
    s.status(Request::Remove { path: b"missing" }, SSH_FX_NO_SUCH_FILE);
    assert!(s.finish().success());
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < 4 {
        let n = journal.recv(&mut buf).expect("a datagram");
        got.push(parse_journal(&buf[..n]));
    }
    let events: Vec<&str> = got.iter().map(|f| f["SFTP_EVENT"].as_str()).collect();
    assert_eq!(
        events,
        ["session_start", "transfer", "remove", "session_end"]
    );
    let t = &got[1];
    assert_eq!(t["SYSLOG_IDENTIFIER"], "sftp-server");
    assert_eq!(t["PRIORITY"], "6");
    assert_eq!(t["MESSAGE_ID"].len(), 32);
    assert_eq!(t["SFTP_BYTES_WRITTEN"], "5");
    assert!(
        t["SFTP_PATH"].ends_with("/a\nb"),
        "a value with a newline, exactly"
    );
    assert!(t["MESSAGE"].starts_with("close \""));
    assert_eq!(t["SFTP_SEQ"], "2");
    let r = &got[2];
    assert_eq!(r["PRIORITY"], "4");
    assert_eq!(r["SFTP_STATUS"], "error");
    assert_eq!(r["SFTP_SFTP_STATUS"], "NO_SUCH_FILE");
    assert_ne!(
        t["MESSAGE_ID"], r["MESSAGE_ID"],
        "one id per kind of record"
    );
}

/// journald's native protocol: `KEY=value\n`, or `KEY\n`, a 64-bit little-endian
/// length, the value and `\n`.
fn parse_journal(mut d: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n').expect("field end");
        let line = &d[..nl];
        match line.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let key = String::from_utf8(line[..eq].to_vec()).unwrap();
                fields.insert(key, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
                d = &d[nl + 1..];
            }
            None => {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let rest = &d[nl + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                let value = &rest[8..8 + len];
                assert_eq!(rest[8 + len], b'\n');
                fields.insert(key, String::from_utf8_lossy(value).into_owned());
                d = &rest[9 + len..];
            }
        }
    }
    fields
}

/// Fail closed: a record that cannot be written ends the session before the reply
/// it would acknowledge; a sink that cannot be opened stops the server before it
/// serves.
#[test]
fn audit_fails_closed() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-closed");
    // /dev/full: the first record (session_start, at INIT) fails, so no VERSION.
    let (mut child, sock) = Spawn::new(scratch.path())
        .args(&["-e", "--audit-log", "/dev/full"])
        .stderr(Stdio::piped())
        .start_parts();
    let mut c = Client::new(sock);
    c.send_init(3);
    c.expect_eof();
    assert_eq!(
        wait_bounded(&mut child, Duration::from_secs(10)).code(),
        Some(1)
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("audit log: write: No space left on device"),
        "{err}"
    );

    // A path that cannot be opened, and a symlink where the log should be.
    std::os::unix::fs::symlink("elsewhere", scratch.path().join("link.jsonl")).unwrap();
    for (dest, why) in [
        ("/nonexistent/dir/audit.jsonl", "No such file or directory"),
        ("link.jsonl", "Too many levels of symbolic links"),
    ] {
        let (mut child, sock) = Spawn::new(scratch.path())
            .args(&["-e", "--audit-log", dest])
            .stderr(Stdio::piped())
            .start_parts();
        let mut c = Client::new(sock);
        let _ = c.try_send_raw(&frame(SSH_FXP_INIT, &3u32.to_be_bytes()));
        c.expect_eof();
        assert_eq!(
            wait_bounded(&mut child, Duration::from_secs(10)).code(),
            Some(255)
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains(why), "{dest}: {err}");
    }
    assert!(!scratch.path().join("elsewhere").exists());
}

/// copy-data and copy-file are `copy` records, each with its request's name.
#[test]
fn audit_copy_records() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-copy");
    let log = scratch.path().join("audit.jsonl");
    std::fs::write(scratch.path().join("src"), pseudo_random(3, 5000)).unwrap();
    let mut s = audited(&scratch, &log);
    let body = Buf::new().str(b"src").str(b"dup").u8(0).into_vec();
    s.ok(Request::Extended {
        name: b"copy-file",
        data: &body,
    });
    let hs = s.handle(Request::Open {
        path: b"src",
        pflags: SSH_FXF_READ,
        attrs: Attrs::none(),
    });
    let hd = s.handle(Request::Open {
        path: b"part",
        pflags: SSH_FXF_WRITE | SSH_FXF_CREAT,
        attrs: Attrs::none(),
    });
    let body = Buf::new()
        .str(&hs)
        .u64(1000)
        .u64(2000)
        .str(&hd)
        .u64(0)
        .into_vec();
    s.ok(Request::Extended {
        name: b"copy-data",
        data: &body,
    });
    assert!(s.finish().success());
    let rs = records(&log);
    check_common(&rs);
    let copies = of(&rs, "copy");
    assert_eq!(copies.len(), 2);
    let dir = std::fs::canonicalize(scratch.path()).unwrap();
    let at = |n: &str| dir.join(n).to_str().unwrap().to_string();
    assert_eq!(copies[0]["request"], "copy-file");
    assert_eq!(
        (&copies[0]["from"], &copies[0]["to"]),
        (&at("src").into(), &at("dup").into())
    );
    assert_eq!(copies[0]["overwrite"], false);
    assert_eq!(copies[1]["request"], "copy-data");
    assert_eq!(
        (&copies[1]["from"], &copies[1]["to"]),
        (&at("src").into(), &at("part").into())
    );
    assert_eq!(
        (
            &copies[1]["from_offset"],
            &copies[1]["length"],
            &copies[1]["bytes_copied"]
        ),
        (&1000.into(), &2000.into(), &2000.into())
    );
    // Both handles were closed by the session's end.
    assert_eq!(of(&rs, "transfer").len(), 2);
    assert!(
        of(&rs, "transfer")
            .iter()
            .all(|t| t["close"] == "session_end")
    );
}

/// SIGTERM (sshd's way of ending a session): the open transfer and `session_end` are
/// recorded, then the process dies of the signal as it would have.
#[test]
fn audit_signal_ends_the_session_on_the_record() {
    use std::os::unix::process::ExitStatusExt;
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-signal");
    let log = scratch.path().join("audit.jsonl");
    let mut s = audited(&scratch, &log);
    let h = upload(&mut s);
    s.write(&h, 0, b"partial");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.signal(), Some(15), "{status:?}");
    let rs = records(&log);
    check_common(&rs);
    let t = of(&rs, "transfer");
    assert_eq!(
        (&t[0]["close"], &t[0]["bytes_written"]),
        (&"session_end".into(), &7.into())
    );
    let end = rs.last().unwrap();
    assert_eq!(end["reason"], "signal");
    assert_eq!(end["forced_closes"], 1);
}

/// A run of requests read together: a symlinked directory replaced in the middle of
/// it. Each record names the directory its request went through.
#[test]
fn audit_paths_follow_a_replaced_symlink_within_a_run() {
    if testing_openssh() {
        return;
    }
    let scratch = Scratch::new("audit-swap");
    let log = scratch.path().join("audit.jsonl");
    for d in ["a", "b"] {
        std::fs::create_dir(scratch.path().join(d)).unwrap();
    }
    std::os::unix::fs::symlink("a", scratch.path().join("s")).unwrap();
    let mut s = audited(&scratch, &log);
    let mkdir = |path: &'static [u8]| Request::Mkdir {
        path,
        attrs: Attrs::none(),
    };
    let mut run = Vec::new();
    run.extend(mkdir(b"s/x").encode(1));
    run.extend(Request::Remove { path: b"s" }.encode(2));
    run.extend(
        Request::Symlink {
            target: b"b",
            link: b"s",
        }
        .encode(3),
    );
    run.extend(mkdir(b"s/y").encode(4));
    s.c.send_raw(&run);
    for _ in 0..4 {
        assert_status(&s.c.recv().unwrap(), SSH_FX_OK);
    }
    assert!(s.finish().success());
    let rs = records(&log);
    let dir = std::fs::canonicalize(scratch.path()).unwrap();
    let at = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let made: Vec<&Value> = of(&rs, "mkdir").iter().map(|r| &r["path"]).collect();
    assert_eq!(made, [&Value::from(at("a/x")), &Value::from(at("b/y"))]);
}
