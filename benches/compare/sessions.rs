//! Many sessions at once, as sshd runs them: `--sessions N` runs N server processes
//! side by side, each on its own socketpair with its own client (a thread here), and
//! `--idle N` measures what N sessions cost in memory while they wait for requests.

use crate::client::Result;
use crate::report;
use crate::server::{self, Memory, Server, Transport, Usage};
use crate::workloads::{Ctx, Plan, Sample, Workload, settle, thread_cpu};
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// What one session of a concurrent run did.
struct Outcome {
    start: Instant,
    end: Instant,
    usage: Usage,
    pss_kib: u64,
    client_cpu: Duration,
}

/// Runs `workload` in `n` concurrent sessions of `server`, all starting their
/// requests at once. The sample is the aggregate: everything the sessions moved over
/// the time from the first start to the last finish, the servers' CPU time added up,
/// the largest peak RSS of any of them, and their mean Pss once all are done.
pub fn run(ctx: &Ctx, workload: &Workload, server: &Server, n: usize) -> Result<Sample> {
    let plans = (0..n)
        .map(|i| ctx.plan(workload, i))
        .collect::<Result<Vec<_>>>()?;
    settle();
    let start_line = Barrier::new(n);
    let finish_line = Barrier::new(n);
    // Ctx is not shared with the threads (it is not Sync); they need only this.
    let how = How {
        dir: &ctx.dir,
        transport: ctx.transport,
        window: ctx.window,
    };
    let outcomes: Vec<Result<Outcome>> = std::thread::scope(|scope| {
        let threads: Vec<_> = plans
            .iter()
            .map(|plan| {
                let (how, start_line, finish_line) = (&how, &start_line, &finish_line);
                scope.spawn(move || one(how, plan, server, start_line, finish_line))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a session thread panicked".into()))
            })
            .collect()
    });
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
    for plan in &plans {
        ctx.check(plan)?;
    }
    let start = outcomes.iter().map(|o| o.start).min().expect("n > 0");
    let end = outcomes.iter().map(|o| o.end).max().expect("n > 0");
    Ok(Sample {
        elapsed: end - start,
        usage: Usage {
            cpu: outcomes.iter().map(|o| o.usage.cpu).sum(),
            maxrss_kib: outcomes
                .iter()
                .map(|o| o.usage.maxrss_kib)
                .max()
                .unwrap_or(0),
        },
        client_cpu: outcomes.iter().map(|o| o.client_cpu).sum(),
        pss_kib: outcomes.iter().map(|o| o.pss_kib).sum::<u64>() / n as u64,
    })
}

/// Where and how a session's server runs and its client sends.
struct How<'a> {
    dir: &'a Path,
    transport: Transport,
    window: usize,
}

/// One session of a concurrent run, in its own thread. Every thread passes both
/// barriers whatever happens, so that one failure cannot leave the others waiting.
fn one(
    how: &How<'_>,
    plan: &Plan,
    server: &Server,
    start_line: &Barrier,
    finish_line: &Barrier,
) -> Result<Outcome> {
    // Start-up, INIT and the job's data are made before the clock starts.
    let session =
        server::start(server, how.dir, how.transport).and_then(|mut s| match s.conn.handshake() {
            Ok(()) => Ok(s),
            Err(e) => {
                s.abort();
                Err(e)
            }
        });
    let mut job = plan.job();
    start_line.wait();
    let (start, cpu) = (Instant::now(), thread_cpu());
    let mut session = session;
    let ran = match &mut session {
        Ok(s) => job.run(&mut s.conn, how.window),
        Err(e) => Err(e.clone()),
    };
    let (end, client_cpu) = (Instant::now(), thread_cpu() - cpu);
    drop(job);
    // Memory is read with every session done and still there, as a server sees it
    // among others.
    finish_line.wait();
    let session = session?;
    let pss_kib = session.memory().map_or(0, |m| m.pss);
    if let Err(e) = ran {
        session.abort();
        return Err(e);
    }
    Ok(Outcome {
        start,
        end,
        usage: session.finish()?,
        pss_kib,
        client_cpu,
    })
}

/// Sessions started for `--idle`; any still here when it is dropped (a run that
/// failed half-way) are killed and reaped.
struct Fleet(Vec<server::Session>);

impl Fleet {
    /// Ends every session normally (EOF); each server must exit with status 0.
    fn finish(mut self) -> Result<()> {
        while let Some(s) = self.0.pop() {
            s.finish()?;
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            s.abort();
        }
    }
}

/// Raises the descriptor limit to what `n` sessions need (two descriptors each on
/// the client side), or says why that cannot be done.
fn check_limits(n: usize) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = 2 * n as u64 + 64;
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    if soft < need {
        if hard < need {
            return Err(format!(
                "{n} sessions need {need} descriptors; RLIMIT_NOFILE allows {hard}"
            ));
        }
        setrlimit(Resource::RLIMIT_NOFILE, need, hard)
            .map_err(|e| format!("raising RLIMIT_NOFILE to {need}: {e}"))?;
    }
    let (procs, _) = getrlimit(Resource::RLIMIT_NPROC).map_err(|e| format!("RLIMIT_NPROC: {e}"))?;
    if procs < n as u64 + 64 && !nix::unistd::getuid().is_root() {
        return Err(format!(
            "{n} sessions need {n} processes; RLIMIT_NPROC allows {procs} in all"
        ));
    }
    Ok(())
}

/// Starts `n` sessions of `server`, each through INIT, and returns their mean memory
/// once all of them wait for requests; then ends them all.
fn idle_run(server: &Server, dir: &Path, transport: Transport, n: usize) -> Result<Memory> {
    let mut fleet = Fleet(Vec::with_capacity(n));
    for _ in 0..n {
        let mut s = server::start(server, dir, transport)?;
        if let Err(e) = s.conn.handshake() {
            s.abort();
            return Err(e);
        }
        fleet.0.push(s);
    }
    // Each has answered INIT; let the last ones get back to waiting in read(2).
    std::thread::sleep(Duration::from_millis(200));
    let mut total = Memory::default();
    for s in &fleet.0 {
        let m = s
            .memory()
            .ok_or("a server's smaps_rollup could not be read")?;
        total.rss += m.rss;
        total.pss += m.pss;
        total.pss_anon += m.pss_anon;
        total.pss_file += m.pss_file;
    }
    fleet.finish()?;
    let n = n as u64;
    Ok(Memory {
        rss: total.rss / n,
        pss: total.pss / n,
        pss_anon: total.pss_anon / n,
        pss_file: total.pss_file / n,
    })
}

/// One figure of [`Memory`].
type Field = fn(&Memory) -> u64;

/// `--idle N`: N idle sessions of each server in turn, every round; returns the
/// markdown table of the medians per session.
pub fn idle(
    servers: &[Server; 2],
    dir: &Path,
    transport: Transport,
    n: usize,
    rounds: usize,
) -> Result<String> {
    check_limits(n)?;
    let mut samples: [Vec<Memory>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for i in order {
            let server = &servers[i];
            let m = idle_run(server, dir, transport, n)
                .map_err(|e| format!("{n} idle sessions of {}: {e}", server.label))?;
            eprintln!(
                "round {round}/{rounds}  idle x{n} {:8} Pss {} KiB (anon {}, file {}), Rss {} KiB per session",
                server.label, m.pss, m.pss_anon, m.pss_file, m.rss
            );
            samples[i].push(m);
        }
    }
    let med = |i: usize, f: Field| {
        report::median(&samples[i].iter().map(|m| f(m) as f64).collect::<Vec<_>>())
    };
    let columns: [(&str, Field); 4] = [
        ("Pss", |m| m.pss),
        ("Pss anonymous", |m| m.pss_anon),
        ("Pss file-backed", |m| m.pss_file),
        ("Rss", |m| m.rss),
    ];
    let [a, b] = [servers[0].label, servers[1].label];
    let mut t = format!(
        "{n} idle sessions (INIT, then nothing), memory per session from /proc/PID/smaps_rollup, median of {rounds} rounds:\n\n\
         | per session | {a} | {b} | {a}/{b} |\n|:--|--:|--:|--:|\n"
    );
    for (name, f) in columns {
        let (x, y) = (med(0, f), med(1, f));
        t += &format!("| {name} | {x:.0} KiB | {y:.0} KiB | **{:.2}** |\n", x / y);
    }
    Ok(t)
}
