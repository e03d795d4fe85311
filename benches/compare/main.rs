//! Compares this sftp-server with OpenSSH's on the same workloads, alternating the two
//! within each round, and prints throughput, server CPU time and peak RSS as a
//! markdown table. A measurement, not a test: it exits non-zero only when a reply is
//! wrong, a written file is wrong, or a server fails.
//!
//! `cargo bench --bench compare -- --help` lists the options.

mod client;
mod jobs;
mod pattern;
mod report;
mod server;
mod sessions;
mod workloads;

use report::Row;
use server::{Server, Transport};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use workloads::{Ctx, Sample, Sizes, Workload};

const HELP: &str = "\
usage: cargo bench --bench compare -- [options]

Runs each workload against this server (ours) and OpenSSH's, alternately, for several
rounds, and prints a markdown table of median throughput, server CPU time and peak RSS.

options:
  --ours PATH          our server (default: the sftp-server that cargo bench builds,
                       <target-dir>/release/sftp-server)
  --openssh PATH       OpenSSH's server (default: /usr/lib/openssh/sftp-server)
  --ours-args ARGS     extra arguments for our server, split on whitespace (e.g. -R)
  --openssh-args ARGS  extra arguments for OpenSSH's server
  --sftp PATH          OpenSSH's client for the sftp-* workloads (default: sftp)
  --rounds N           rounds (default: 3)
  --quick              sizes divided by 16, for a smoke run
  --only LIST          only the workloads whose names contain one of these
                       comma-separated substrings
  --dir DIR            scratch directory; kept, and its input files reused by later
                       runs (default: a fresh directory under /var/tmp, removed at
                       the end)
  --keep               keep the fresh scratch directory
  --pipes              stdin and stdout on two pipes instead of one socketpair
  --window N           requests in flight per session (default: 64)
  --sessions N         run each workload in N concurrent sessions (N server
                       processes, one client thread each) that together do four
                       times what one session does (4 GiB read, 400,000 STATs...);
                       reports aggregate throughput, total server CPU per unit,
                       and Pss per session (the sftp-* workloads are left out)
  --idle N             start N sessions of each server (INIT, then nothing) and
                       report their memory per session; no workloads are run
  --list               list the workloads and exit
";

/// How many times a single session's amounts N concurrent sessions do in all.
const SESSIONS_TOTAL: usize = 4;

struct Options {
    ours: PathBuf,
    openssh: PathBuf,
    ours_args: Vec<String>,
    openssh_args: Vec<String>,
    sftp: PathBuf,
    rounds: usize,
    quick: bool,
    only: Vec<String>,
    dir: Option<PathBuf>,
    keep: bool,
    transport: Transport,
    window: usize,
    sessions: Option<usize>,
    idle: Option<usize>,
    list: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            ours: PathBuf::from(env!("CARGO_BIN_EXE_sftp-server")),
            openssh: PathBuf::from("/usr/lib/openssh/sftp-server"),
            ours_args: Vec::new(),
            openssh_args: Vec::new(),
            sftp: PathBuf::from("sftp"),
            rounds: 3,
            quick: false,
            only: Vec::new(),
            dir: None,
            keep: false,
            transport: Transport::Socketpair,
            window: 64,
            sessions: None,
            idle: None,
            list: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |v: String| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name}: not a positive number: {v}"))
            };
            let words = |v: String| v.split_whitespace().map(String::from).collect();
            match name {
                "--ours" => o.ours = value()?.into(),
                "--openssh" => o.openssh = value()?.into(),
                "--ours-args" => o.ours_args = words(value()?),
                "--openssh-args" => o.openssh_args = words(value()?),
                "--sftp" => o.sftp = value()?.into(),
                "--rounds" => o.rounds = number(value()?)?,
                "--quick" => o.quick = true,
                "--only" => {
                    o.only.extend(
                        value()?
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    );
                }
                "--dir" => o.dir = Some(value()?.into()),
                "--keep" => o.keep = true,
                "--pipes" => o.transport = Transport::Pipes,
                "--window" => o.window = number(value()?)?,
                "--sessions" => o.sessions = Some(number(value()?)?),
                "--idle" => o.idle = Some(number(value()?)?),
                "--list" => o.list = true,
                // cargo bench passes --bench to every bench target.
                "--bench" => {}
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(o)
    }
}

/// Finds `program` as `execvp` would.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The scratch directory, removed on drop if it was made for this run.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(dir: Option<&Path>, keep: bool) -> Result<Scratch, String> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            mark_top_dir(&path);
            return Ok(Scratch {
                path,
                remove: false,
            });
        }
        // Not /tmp: it may be a tmpfs, which would measure memory, not a file system.
        let path = nix::unistd::mkdtemp("/var/tmp/sftp-server-bench.XXXXXX")
            .map_err(|e| format!("mkdtemp in /var/tmp: {e}"))?;
        mark_top_dir(&path);
        Ok(Scratch {
            path,
            remove: !keep,
        })
    }
}

/// Marks `dir` as the top of a directory hierarchy (`chattr +T`), so that ext4
/// places each new subdirectory in a block group of its own rather than next to its
/// parent: the workloads that create and remove many files each get a fresh
/// directory (see `Ctx::fresh_dir`). Other file systems ignore or refuse the flag;
/// either way nothing else changes.
fn mark_top_dir(dir: &Path) {
    use nix::libc;
    const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;
    let Ok(file) = std::fs::File::open(dir) else {
        return;
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut flags: libc::c_long = 0;
    // SAFETY: both ioctls read or write one c_long through a pointer to a local.
    unsafe {
        if libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) == 0 {
            flags |= FS_TOPDIR_FL;
            libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn describe_machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = kernel.trim();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {kernel}")
}

/// The 1, 5 and 15 minute load averages: other work on the machine makes the
/// throughput figures noisier (CPU times much less so).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn run(o: Options) -> Result<(), String> {
    let divisor = if o.quick { 16 } else { 1 };
    // N sessions together move SESSIONS_TOTAL times what one session does alone: a
    // run long enough that starting N servers is not part of the picture.
    let (sessions, total) = o.sessions.map_or((1, 1), |n| (n, SESSIONS_TOTAL));
    let sizes = Sizes::new(divisor).per_session(sessions, total);
    let selected: Vec<Workload> = workloads::all(&sizes)
        .into_iter()
        .filter(|w| o.only.is_empty() || o.only.iter().any(|s| w.name.contains(s.as_str())))
        // OpenSSH's sftp drives its own single session.
        .filter(|w| o.sessions.is_none() || !(w.kind.is_sftp() || w.kind.is_against_program()))
        .map(|w| w.times(sessions))
        .collect();
    if o.list {
        for w in &selected {
            println!("{:18} {}", w.name, w.description);
        }
        return Ok(());
    }
    if selected.is_empty() && o.idle.is_none() {
        return Err(format!("no workload matches {}", o.only.join(",")));
    }
    let mut servers = [
        Server {
            label: "ours",
            program: o.ours.clone(),
            args: o.ours_args.clone(),
        },
        Server {
            label: "OpenSSH",
            program: o.openssh.clone(),
            args: o.openssh_args.clone(),
        },
    ];
    for s in &mut servers {
        // Servers run in the scratch directory: a relative path is taken from here.
        s.program = std::path::absolute(&s.program).unwrap_or_else(|_| s.program.clone());
        if !s.program.is_file() {
            return Err(format!(
                "{} server not found: {}",
                s.label,
                s.program.display()
            ));
        }
    }
    if let Some(n) = o.idle {
        let scratch = Scratch::new(o.dir.as_deref(), o.keep)?;
        print_header(&o, &servers, &scratch.path);
        let table = sessions::idle(&servers, &scratch.path, o.transport, n, o.rounds)?;
        println!("{table}");
        println!("Load average at the end: {}.", load_average());
        return Ok(());
    }
    let sftp = if selected.iter().any(|w| w.name.starts_with("sftp-")) {
        find_program(&o.sftp).ok_or_else(|| format!("{} not found", o.sftp.display()))?
    } else {
        o.sftp.clone()
    };
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let scratch = Scratch::new(o.dir.as_deref(), o.keep)?;
    let ctx = Ctx::new(
        scratch.path.clone(),
        sizes,
        o.transport,
        o.window,
        exe,
        sftp,
    );

    let started = Instant::now();
    print_header(&o, &servers, &scratch.path);
    ctx.prepare(&selected)?;
    let mut rows: Vec<Row<'_>> = selected
        .iter()
        .map(|w| Row {
            workload: w,
            samples: [Vec::new(), Vec::new()],
        })
        .collect();
    match o.sessions {
        None => measure(&servers, &mut rows, o.rounds, |w, s| ctx.run(w, s))?,
        Some(n) => measure(&servers, &mut rows, o.rounds, |w, s| {
            sessions::run(&ctx, w, s, n)
        })?,
    }
    ctx.remove_outputs();
    println!(
        "{}",
        report::table(&rows, [servers[0].label, servers[1].label], o.sessions)
    );
    println!(
        "Total time: {:.0} s (including set-up and checks). Load average at the end: {}.",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

fn print_header(o: &Options, servers: &[Server; 2], scratch: &Path) {
    println!("# sftp-server vs OpenSSH sftp-server\n");
    for s in servers {
        let command = std::iter::once(s.program.display().to_string())
            .chain(s.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        println!("- {}: `{command}`", s.label);
    }
    let transport = match o.transport {
        Transport::Socketpair => "one Unix socketpair for stdin and stdout",
        Transport::Pipes => "two pipes",
    };
    let quick = if o.quick {
        "; --quick (sizes / 16)"
    } else {
        ""
    };
    let sessions = match (o.idle, o.sessions) {
        (Some(n), _) => format!("; {n} idle sessions"),
        (None, Some(n)) => {
            format!("; {n} concurrent sessions, each doing {SESSIONS_TOTAL}/{n} of every workload")
        }
        (None, None) => String::new(),
    };
    println!(
        "- transport: {transport}; {} requests in flight per session; {} rounds{quick}{sessions}",
        o.window, o.rounds
    );
    println!("- scratch: {}", scratch.display());
    println!("- machine: {}", describe_machine());
    println!("- load average at the start: {}\n", load_average());
}

/// Runs every workload against both servers in each round (one run is `run`),
/// logging each run.
fn measure(
    servers: &[Server; 2],
    rows: &mut [Row<'_>],
    rounds: usize,
    run: impl Fn(&Workload, &Server) -> Result<Sample, String>,
) -> Result<(), String> {
    for round in 1..=rounds {
        for row in rows.iter_mut() {
            // Alternate which server goes first, so neither always runs right after
            // the set-up or the other workload.
            let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
            for i in order {
                let server = &servers[i];
                let sample = run(row.workload, server).map_err(|e| {
                    format!(
                        "{} against {} ({}): {e}",
                        row.workload.name,
                        server.label,
                        server.program.display()
                    )
                })?;
                eprintln!(
                    "round {round}/{rounds}  {}",
                    report::run_line(row.workload, server.label, &sample)
                );
                row.samples[i].push(sample);
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--wrap-server") {
        server::wrapper_main(&args[2..]);
    }
    let options = match Options::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("compare: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}
