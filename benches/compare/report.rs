//! Medians over the rounds, ratios, and the markdown table.

use crate::workloads::{Amount, Sample, Workload};
use std::fmt::Write;

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// Throughput of one run: MiB/s, or units per second.
pub fn rate(amount: Amount, s: &Sample) -> f64 {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    match amount {
        Amount::Bytes(b) => b as f64 / MIB / secs,
        Amount::Count(n, _) => n as f64 / secs,
    }
}

/// Server CPU seconds per GiB, or per 10,000 units.
pub fn cpu(amount: Amount, s: &Sample) -> f64 {
    let secs = s.usage.cpu.as_secs_f64();
    match amount {
        Amount::Bytes(b) => secs / (b as f64 / GIB),
        Amount::Count(n, _) => secs / n as f64 * 10_000.0,
    }
}

pub fn rate_unit(amount: Amount) -> String {
    match amount {
        Amount::Bytes(_) => "MiB/s".into(),
        Amount::Count(_, unit) => format!("{unit}/s"),
    }
}

pub fn cpu_unit(amount: Amount) -> String {
    match amount {
        Amount::Bytes(_) => "s/GiB".into(),
        Amount::Count(_, unit) => format!("s/10k {unit}"),
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Half the range as a percentage of the median: how far the rounds spread.
fn spread(values: &[f64]) -> f64 {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max - min) / 2.0 / median(values) * 100.0
}

/// A number with about four significant digits.
fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 100.0 {
        format!("{x:.1}")
    } else if x >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// One run, for the log.
pub fn run_line(workload: &Workload, label: &str, s: &Sample) -> String {
    let amount = workload.amount;
    let pss = match s.pss_kib {
        0 => String::new(),
        kib => format!("  pss {kib} KiB/session"),
    };
    format!(
        "{:18} {:8} {:>10} {:10} cpu {:6.3} s  rss {:6.1} MiB{pss}  ({:.2} s, client cpu {:.2} s)",
        workload.name,
        label,
        format!("{:.1}", rate(amount, s)),
        rate_unit(amount),
        s.usage.cpu.as_secs_f64(),
        s.usage.maxrss_kib as f64 / 1024.0,
        s.elapsed.as_secs_f64(),
        s.client_cpu.as_secs_f64(),
    )
}

/// The samples of one workload: `[ours, openssh]`.
pub struct Row<'a> {
    pub workload: &'a Workload,
    pub samples: [Vec<Sample>; 2],
}

struct Summary {
    rate: f64,
    spread: f64,
    cpu: f64,
    rss_mib: f64,
    pss_kib: f64,
}

fn summarize(amount: Amount, samples: &[Sample]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let rates: Vec<f64> = samples.iter().map(|s| rate(amount, s)).collect();
    let cpus: Vec<f64> = samples.iter().map(|s| cpu(amount, s)).collect();
    let rss = samples
        .iter()
        .map(|s| s.usage.maxrss_kib)
        .max()
        .unwrap_or(0);
    let pss: Vec<f64> = samples.iter().map(|s| s.pss_kib as f64).collect();
    Some(Summary {
        rate: median(&rates),
        spread: spread(&rates),
        cpu: median(&cpus),
        rss_mib: rss as f64 / 1024.0,
        pss_kib: median(&pss),
    })
}

/// The results table in markdown, then a legend of the workloads. With `sessions`
/// (`--sessions N`), throughput is the aggregate of N sessions, CPU the servers'
/// total, and Pss per session is added.
pub fn table(rows: &[Row<'_>], labels: [&str; 2], sessions: Option<usize>) -> String {
    let [a, b] = labels;
    let mut t = String::new();
    let (pss_head, pss_align) = match sessions {
        Some(_) => (
            format!(" Pss/session {a} | Pss/session {b} | Pss {a}/{b} |"),
            "--:|--:|--:|",
        ),
        None => (String::new(), ""),
    };
    let _ = writeln!(
        t,
        "| workload | unit | {a} | {b} | {a}/{b} | CPU unit | CPU {a} | CPU {b} | CPU {a}/{b} |{pss_head} peak RSS {a} | peak RSS {b} |"
    );
    let _ = writeln!(
        t,
        "|:--|:--|--:|--:|--:|:--|--:|--:|--:|{pss_align}--:|--:|"
    );
    for row in rows {
        let amount = row.workload.amount;
        let (Some(x), Some(y)) = (
            summarize(amount, &row.samples[0]),
            summarize(amount, &row.samples[1]),
        ) else {
            continue;
        };
        let pss = match sessions {
            Some(_) => format!(
                " {:.0} KiB | {:.0} KiB | **{:.2}** |",
                x.pss_kib,
                y.pss_kib,
                x.pss_kib / y.pss_kib
            ),
            None => String::new(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} ±{:.0}% | {} ±{:.0}% | **{:.2}** | {} | {} | {} | **{:.2}** |{pss} {:.1} MiB | {:.1} MiB |",
            row.workload.name,
            rate_unit(amount),
            num(x.rate),
            x.spread,
            num(y.rate),
            y.spread,
            x.rate / y.rate,
            cpu_unit(amount),
            num(x.cpu),
            num(y.cpu),
            x.cpu / y.cpu,
            x.rss_mib,
            y.rss_mib,
        );
    }
    let _ = writeln!(
        t,
        "\nThroughput: median over the rounds, ± half the range between rounds. \
         {a}/{b} above 1: {a} is faster. CPU: the server's user+system time (median); \
         CPU {a}/{b} below 1: {a} uses less. Peak RSS: the server's largest VmHWM over the rounds.\n"
    );
    if let Some(n) = sessions {
        let _ = writeln!(
            t,
            "{n} sessions at once, each its own server process doing its share of the work \
             (see below): throughput is the sum over the time from the first start to the last finish, \
             CPU the servers' time added up, Pss/session the mean proportional set size of \
             the servers once all are done (median over the rounds), peak RSS the largest \
             of any one server.\n"
        );
    }
    for row in rows {
        let _ = writeln!(t, "- `{}`: {}", row.workload.name, row.workload.description);
    }
    t
}
