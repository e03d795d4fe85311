//! Plaintext SFTP through a super-server: the server under test started per connection
//! by `ncat -lk -e` (TCP, Unix socket, TLS) or by socat, and OpenSSH's sftp client
//! reaching it with `sftp -D "ncat ..."`. sftp splits the -D argument into words
//! itself and runs it without a shell, so no wrapper script is needed.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::clients::{Batch, SftpClient, Workspace, parse_ls_long, sftp_quote as q};
use crate::support::content::{MIB, assert_file_content, write_random_file};
use crate::support::procs::{
    Daemon, run_ok, start_on_free_port, tcp_connectable, unix_connectable,
};
use crate::support::server_bin;

/// The server under test as one word for `ncat -e` (which splits on spaces).
fn exec_arg() -> String {
    let bin = server_bin();
    let bin = bin.to_str().expect("UTF-8 server path").to_string();
    assert!(!bin.contains(' '), "ncat -e splits {bin:?} on spaces");
    bin
}

/// Puts, lists and gets back a few MiB through `sftp -D <client_command>`, and
/// checks the server ran in the workspace's `remote/` directory.
fn put_ls_get(ws: &Workspace, client_command: &str, seed: u64) {
    let src = ws.local.join("data.bin");
    let data = write_random_file(&src, seed, 3 * MIB + 11);
    let back = ws.local.join("back.bin");
    let run = SftpClient::new(&ws.local, &ws.ctl)
        .arg("-D")
        .arg(client_command)
        .run(
            &Batch::new()
                .cmd("pwd")
                .cmd(format!("put {} up.bin", q(&src)))
                .cmd("ls -l")
                .cmd(format!("get up.bin {}", q(&back))),
        )
        .ok();

    let cwd = fs::canonicalize(&ws.remote).unwrap();
    assert_eq!(
        run.output_of("pwd").trim(),
        format!("Remote working directory: {}", cwd.display()),
        "{run}"
    );
    let ls = parse_ls_long(&run.output_of("ls -l"));
    let names: Vec<(&str, u64)> = ls.iter().map(|e| (e.name.as_str(), e.size)).collect();
    assert_eq!(names, vec![("up.bin", data.len() as u64)], "{run}");
    assert_file_content(&ws.remote.join("up.bin"), &data);
    assert_file_content(&back, &data);
}

/// `ncat <args>` listening in the background, serving `remote/` (its working
/// directory, so the server's too).
fn ncat_listener(ws: &Workspace, args: &[&str]) -> Daemon {
    Daemon::spawn(
        "ncat",
        Command::new("ncat")
            .args(args)
            .current_dir(&ws.remote)
            .env("LC_ALL", "C"),
        &ws.ctl.join("ncat.log"),
    )
}

#[test]
fn ncat_tcp_put_get_ls() {
    let ws = Workspace::new("ncat-tcp");
    let exec = exec_arg();
    let (_ncat, port) = start_on_free_port(
        "ncat",
        |port| ncat_listener(&ws, &["-lk", "-e", &exec, "127.0.0.1", &port.to_string()]),
        |_, port| tcp_connectable(port),
    );
    put_ls_get(&ws, &format!("ncat 127.0.0.1 {port}"), 21);
}

#[test]
fn ncat_unix_socket_put_get_ls() {
    let ws = Workspace::new("ncat-unix");
    let sock = ws.ctl.join("sftp.sock");
    let mut ncat = ncat_listener(
        &ws,
        &[
            "-lkU",
            "-e",
            &exec_arg(),
            sock.to_str().expect("UTF-8 path"),
        ],
    );
    let limit = std::time::Duration::from_secs(20);
    assert!(
        ncat.wait_ready(limit, |_| unix_connectable(&sock)),
        "ncat never listened on {}\n{}",
        sock.display(),
        ncat.log()
    );
    put_ls_get(&ws, &format!("ncat -U {}", q(&sock)), 22);
}

#[test]
fn ncat_ssl_put_get_ls() {
    let ws = Workspace::new("ncat-ssl");
    let (cert, key) = (ws.ctl.join("cert.pem"), ws.ctl.join("key.pem"));
    make_certificate(&cert, &key);
    let exec = exec_arg();
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (_ncat, port) = start_on_free_port(
        "ncat --ssl",
        |port| {
            ncat_listener(
                &ws,
                &[
                    "-lk",
                    "--ssl",
                    "--ssl-cert",
                    cert_s,
                    "--ssl-key",
                    key_s,
                    "-e",
                    &exec,
                    "127.0.0.1",
                    &port.to_string(),
                ],
            )
        },
        |_, port| tcp_connectable(port),
    );
    // The client checks the certificate; ncat matches host names only, not IP
    // addresses, so it asks for the name the certificate carries.
    put_ls_get(
        &ws,
        &format!(
            "ncat --ssl --ssl-verify --ssl-trustfile {} --ssl-servername localhost 127.0.0.1 {port}",
            q(&cert)
        ),
        23,
    );
}

/// A self-signed certificate for `localhost` and its key, made with openssl.
pub fn make_certificate(cert: &Path, key: &Path) {
    run_ok(
        "openssl",
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
}

#[test]
fn ncat_client_to_socat_listener() {
    let ws = Workspace::new("ncat-socat");
    let exec = format!("EXEC:{}", exec_arg());
    let (_socat, port) = start_on_free_port(
        "socat",
        |port| {
            Daemon::spawn(
                "socat",
                Command::new("socat")
                    .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
                    .arg(&exec)
                    .current_dir(&ws.remote),
                &ws.ctl.join("socat.log"),
            )
        },
        |_, port| tcp_connectable(port),
    );
    put_ls_get(&ws, &format!("ncat 127.0.0.1 {port}"), 24);
}
