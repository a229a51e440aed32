//! mpactor beside the transports it stands on, measured in one run, printed as a markdown
//! table with ratios (BENCHMARKS.md explains every row).
//!
//! ```text
//! cargo bench --bench compare              # full: a few minutes
//! cargo bench --bench compare -- --quick   # under a minute
//! cargo bench --bench compare -- --only small,rt   # some sections: mem small fanin bytes rt spawn idle
//! cargo bench --bench compare -- --only idle       # 64 idle actors, 10 s (3 s with --quick)
//! cargo bench --bench compare -- --only bytes1m    # bytes4k bytes1m bytes64m: one payload size
//! ```
//!
//! Absolute figures on a shared machine move from run to run; the ratios measured side by
//! side in one run are what to compare.

#[path = "common/mod.rs"]
mod common;

use common::{median, percentile_us, raw, BenchResult, RoundTrip};
use mpactor::{ChildOptions, Isolation};
use std::time::{Duration, Instant};

/// The CPU both round-trip processes are pinned to in the pinned rows.
const PIN_CPU: usize = 0;

struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
}

impl Opts {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .map(|s| s.split(',').map(str::to_string).collect());
        // Anything else (cargo's `--bench`, a filter) is ignored.
        Opts { quick, only }
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }

    /// `quick` or `full`, whichever this run is.
    fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// One line of the table.
struct Row {
    what: String,
    mpactor: String,
    reference: String,
    ratio: String,
    target: String,
    anchor: String,
}

struct Table {
    rows: Vec<Row>,
    verdicts: Vec<String>,
}

impl Table {
    fn row(&mut self, what: &str, mpactor: String, reference: String, ratio: String) -> &mut Row {
        let index = self.rows.len();
        self.rows.push(Row {
            what: what.to_string(),
            mpactor,
            reference,
            ratio,
            target: String::new(),
            anchor: String::new(),
        });
        &mut self.rows[index]
    }

    fn verdict(&mut self, name: &str, met: bool, detail: String) {
        let mark = if met { "met" } else { "MISSED" };
        self.verdicts
            .push(format!("- {name}: **{mark}** ({detail})"));
    }
}

impl Row {
    fn target(&mut self, t: &str) -> &mut Self {
        self.target = t.to_string();
        self
    }
    fn anchor(&mut self, a: &str) -> &mut Self {
        self.anchor = a.to_string();
        self
    }
}

/// "12.3 M msg/s (11.9–12.8)": the median and the spread of the rounds.
fn rate(v: &[f64]) -> String {
    let (lo, hi) = spread(v);
    format!(
        "{:.2} M msg/s ({:.2}–{:.2})",
        median(v) / 1e6,
        lo / 1e6,
        hi / 1e6
    )
}

fn gbps(v: &[f64]) -> String {
    let (lo, hi) = spread(v);
    format!(
        "{:.2} GB/s ({:.2}–{:.2})",
        median(v) / 1e9,
        lo / 1e9,
        hi / 1e9
    )
}

fn ms(v: &[f64]) -> String {
    let (lo, hi) = spread(v);
    format!("{:.1} ms ({:.1}–{:.1})", median(v), lo, hi)
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn main() {
    // First: in an actor process this runs the actor, in a reference child its job.
    let _registry = common::registry().run_if_child();
    raw::run_raw_if_child();

    let opts = Opts::parse();
    common::watchdog(opts.pick(Duration::from_secs(120), Duration::from_secs(900)));
    let started = Instant::now();
    let mut table = Table {
        rows: Vec::new(),
        verdicts: Vec::new(),
    };
    if let Err(e) = run(&opts, &mut table) {
        eprintln!("bench compare: {e}");
        print_table(&opts, &table, started);
        std::process::exit(1);
    }
    print_table(&opts, &table, started);
}

fn run(opts: &Opts, t: &mut Table) -> BenchResult<()> {
    // Memory first, while the root process is as fresh as a real application's root.
    if opts.wants("mem") || opts.wants("spawn") {
        spawn_stop_mem(opts, t)?;
    }
    if opts.wants("small") {
        small(opts, t, 1)?;
    }
    if opts.wants("fanin") {
        small(opts, t, 8)?;
    }
    if ["bytes", "bytes4k", "bytes1m", "bytes64m"]
        .iter()
        .any(|b| opts.wants(b))
    {
        bytes(opts, t)?;
    }
    if opts.wants("rt") {
        round_trip(opts, t)?;
    }
    if opts.wants("idle") {
        idle(opts, t)?;
    }
    Ok(())
}

/// What idle actors cost: CPU and context switches (wake-ups) of the whole process tree,
/// measured from outside (`/proc`) after the start-up, while the root runs its loop.
fn idle(opts: &Opts, t: &mut Table) -> BenchResult<()> {
    const N: usize = 64;
    let window = opts.pick(Duration::from_secs(3), Duration::from_secs(10));
    eprintln!("bench: {N} idle queue actors, {window:?}…");
    let cost = common::mpactor_idle(N, Duration::from_secs(2), window)?;
    let worst = cost.actor_per_s.iter().copied().fold(0.0, f64::max);
    let mean = cost.actor_per_s.iter().sum::<f64>() / cost.actor_per_s.len().max(1) as f64;
    t.row(
        &format!(
            "idle: {N} queue actors, {} s: CPU of one core",
            window.as_secs()
        ),
        format!("{:.2} %", cost.cpu_percent),
        String::new(),
        String::new(),
    )
    .target("< 0.5 %")
    .anchor("before issue 13: 21 %; mptools 31.8 %");
    t.row(
        &format!(
            "idle: {N} queue actors, {} s: context switches per second",
            window.as_secs()
        ),
        format!(
            "{:.1}/s in all; root {:.1}/s; per actor process {mean:.2}/s (worst {worst:.2}/s)",
            cost.total_per_s(),
            cost.root_per_s
        ),
        String::new(),
        String::new(),
    )
    .target("≤ 1/s per actor, root ≤ 5/s")
    .anchor("before issue 13: 4,344/s; mptools 3,515/s");
    t.verdict(
        &format!("{N} idle actors < 0.5 % of a core"),
        cost.cpu_percent < 0.5,
        format!("{:.2} %", cost.cpu_percent),
    );
    t.verdict(
        "idle actor process ≤ 1 wake-up/s",
        worst <= 1.0,
        format!("worst {worst:.2}/s, mean {mean:.2}/s"),
    );
    t.verdict(
        "idle root ≤ 5 wake-ups/s",
        cost.root_per_s <= 5.0,
        format!("{:.1}/s", cost.root_per_s),
    );
    Ok(())
}

fn small(opts: &Opts, t: &mut Table, producers: u32) -> BenchResult<()> {
    let total: u64 = opts.pick(200_000, 800_000);
    let per = total / producers as u64;
    let rounds = opts.pick(3, 7);
    eprintln!("bench: small messages, {producers} producer(s), {total} per round…");
    let m = common::mpactor_small(producers, per, rounds)?;
    let ipc = raw::ipc_small(producers, per, rounds)?;
    let unix = raw::unix_small(producers, per, rounds)?;
    let cb = raw::crossbeam_small(producers, per, rounds)?;
    let threads = common::mpactor_small_isolated(producers, per, rounds, Isolation::Threads)?;
    let what = if producers == 1 {
        "64 B messages, 1 producer process → 1 consumer".to_string()
    } else {
        format!("64 B messages, {producers} producer processes → 1 consumer (fan-in)")
    };
    let (mm, mi) = (median(&m), median(&ipc));
    t.row(
        &what,
        rate(&m),
        format!("raw ipc-channel, 1 msg/send: {}", rate(&ipc)),
        ratio(mm, mi),
    )
    .target(if producers == 1 {
        "≥ 4× (aim 10×)"
    } else {
        ""
    })
    .anchor(if producers == 1 {
        "ipc-channel 1.13 M/s; 64 per send 17.0 M/s; mptools 0.109 M/s"
    } else {
        ""
    });
    t.row(
        "",
        String::new(),
        format!("raw Unix SOCK_SEQPACKET, 1 msg/send: {}", rate(&unix)),
        ratio(mm, median(&unix)),
    )
    .anchor(if producers == 1 { "1.37 M/s" } else { "" });
    t.row(
        "",
        String::new(),
        format!("crossbeam unbounded, threads of one process: {}", rate(&cb)),
        ratio(mm, median(&cb)),
    )
    .anchor(if producers == 1 { "5.6 M/s" } else { "" });
    t.row(
        &format!("{what}, the same actors as threads (`Isolation::Threads`)"),
        rate(&threads),
        format!("crossbeam unbounded, threads of one process: {}", rate(&cb)),
        ratio(median(&threads), median(&cb)),
    );
    if producers == 1 {
        t.verdict(
            "small-message throughput ≥ 4× raw ipc-channel",
            mm >= 4.0 * mi,
            format!("{:.2}×; aim 10×", mm / mi),
        );
    }
    Ok(())
}

fn bytes(opts: &Opts, t: &mut Table) -> BenchResult<()> {
    let rounds = opts.pick(3, 5);
    // Messages of 64 MiB and their encoding's few bytes of length: over the default limit.
    let big = ChildOptions::default().max_message_bytes(65 << 20);
    let sections = [
        ("bytes4k", 4096u64, opts.pick(20_000u64, 50_000), "4 KiB"),
        ("bytes1m", 1 << 20, opts.pick(200, 600), "1 MiB"),
        ("bytes64m", 64 << 20, opts.pick(4, 10), "64 MiB"),
    ];
    for (section, size, count, label) in sections {
        if !(opts.wants("bytes") || opts.wants(section)) {
            continue;
        }
        eprintln!("bench: {label} payloads, {count} per round…");
        let r = raw::ipc_bytes(size, count, rounds)?;
        let m = common::mpactor_payload::<serde_bytes::ByteBuf>(size, count, rounds, big)?;
        let sh = common::mpactor_payload::<mpactor::SharedBytes>(size, count, rounds, big)?;
        let (mm, mr, ms) = (median(&m), median(&r), median(&sh));
        let (target, anchor) = match size {
            4096 => ("≥ 1.5×", "IpcBytesSender 1.54 GB/s; ByteBuf 1.54 GB/s"),
            0x10_0000 => (
                "≥ 1.0× (aim 2×)",
                "IpcBytesSender 3.65 GB/s; ByteBuf 1.07 GB/s",
            ),
            _ => ("≥ 1 GB/s", ""),
        };
        t.row(
            &format!("{label} payloads (`ByteBuf` messages), 1 producer → 1 consumer"),
            gbps(&m),
            format!("raw `IpcBytesSender`: {}", gbps(&r)),
            ratio(mm, mr),
        )
        .target(target)
        .anchor(anchor);
        t.row(
            &format!("{label} payloads (`SharedBytes` messages), 1 producer → 1 consumer"),
            gbps(&sh),
            format!("raw `IpcBytesSender`: {}", gbps(&r)),
            ratio(ms, mr),
        )
        .target(target);
        // One verdict per payload type: `SharedBytes` is the one-copy path the targets are
        // about (the writer's copy into shared memory, read in place); a `ByteBuf` adds the
        // user's own allocation and copy at each end.
        for (kind, v) in [("ByteBuf", mm), ("SharedBytes", ms)] {
            match size {
                4096 => t.verdict(
                    &format!("4 KiB {kind} payloads ≥ 1.5× raw IpcBytesSender"),
                    v >= 1.5 * mr,
                    format!("{:.2}×", v / mr),
                ),
                0x10_0000 => t.verdict(
                    &format!("1 MiB {kind} payloads ≥ 1.0× raw IpcBytesSender (aim 2×)"),
                    v >= mr,
                    format!("{:.2}×", v / mr),
                ),
                _ => t.verdict(
                    &format!("64 MiB {kind} payloads ≥ 1 GB/s"),
                    v >= 1e9,
                    format!("{:.2} GB/s", v / 1e9),
                ),
            }
        }
    }
    Ok(())
}

fn round_trip(opts: &Opts, t: &mut Table) -> BenchResult<()> {
    let rounds = opts.pick(5_000, 40_000);
    let warmup = opts.pick(1_000, 5_000);
    for (pin, label) in [
        (Some(PIN_CPU), "both processes on one CPU"),
        (None, "unpinned"),
    ] {
        eprintln!("bench: round trips, {label}, {rounds}…");
        let plain = common::mpactor_round_trip(RoundTrip::Plain, pin, rounds, warmup)?;
        let hello = common::mpactor_round_trip(RoundTrip::Hello, pin, rounds, warmup)?;
        let ask = common::mpactor_round_trip(RoundTrip::Ask, pin, rounds, warmup)?;
        let r = raw::ipc_round_trip(pin, rounds, warmup)?;
        let (r50, r99) = (percentile_us(&r, 50.0), percentile_us(&r, 99.0));
        let mut first = true;
        for (m, kind) in [
            (&plain, "plain-number messages (direct path)"),
            (
                &hello,
                "message type with an `Addr` variant (writer thread)",
            ),
        ] {
            let (m50, m99) = (percentile_us(m, 50.0), percentile_us(m, 99.0));
            t.row(
                &format!("round trip between two actors, {label}, {kind}: p50 / p99"),
                format!("{m50:.1} / {m99:.1} µs"),
                format!("raw ipc-channel `IpcSender<u64>` each way: {r50:.1} / {r99:.1} µs"),
                format!("{:.2}× / {:.2}×", m50 / r50, m99 / r99),
            )
            .target(if pin.is_some() && first {
                "≤ 1.2× (p50)"
            } else {
                ""
            })
            .anchor(match (pin.is_some(), first) {
                (true, true) => "ipc-channel 3.7 µs (same core)",
                (false, true) => "ipc-channel 63 µs; mptools 105–113 µs",
                _ => "",
            });
            if pin.is_some() {
                t.verdict(
                    &format!("round trip ≤ 1.2× raw ipc-channel at the same pinning, {kind}"),
                    m50 <= 1.2 * r50,
                    format!("p50 {:.2}×, p99 {:.2}×", m50 / r50, m99 / r99),
                );
            }
            first = false;
        }
        // `Addr::ask`: the request on the direct path, the reply a datagram to the asker's
        // reply inbox, matched by id.
        let (m50, m99) = (percentile_us(&ask, 50.0), percentile_us(&ask, 99.0));
        t.row(
            &format!("ask round trip (`Addr::ask`, `ReplyTo::send`), {label}: p50 / p99"),
            format!("{m50:.1} / {m99:.1} µs"),
            format!("raw ipc-channel `IpcSender<u64>` each way: {r50:.1} / {r99:.1} µs"),
            format!("{:.2}× / {:.2}×", m50 / r50, m99 / r99),
        )
        .target(if pin.is_some() { "≤ 1.3× (p50)" } else { "" });
        if pin.is_some() {
            t.verdict(
                "ask round trip p50 ≤ 1.3× raw ipc-channel at the same pinning",
                m50 <= 1.3 * r50,
                format!("p50 {:.2}×, p99 {:.2}×", m50 / r50, m99 / r99),
            );
        }
    }
    Ok(())
}

fn spawn_stop_mem(opts: &Opts, t: &mut Table) -> BenchResult<()> {
    let mut idle_rss = (0, 0);
    let mut root_rss = 0;
    for (n, reps, spawn_target, stop_target) in [
        (4usize, opts.pick(3, 7), 15.0, 100.0),
        (64, opts.pick(2, 5), 250.0, 250.0),
    ] {
        eprintln!("bench: spawn and stop of {n} idle actors, {reps} times…");
        let mut spawns = Vec::new();
        let mut stops = Vec::new();
        for _ in 0..reps {
            let (s, p, a, r) = common::mpactor_spawn_stop(n)?;
            spawns.push(s);
            stops.push(p);
            if n == 4 && root_rss == 0 {
                idle_rss = a;
                root_rss = r;
            }
        }
        let (sm, pm) = (median(&spawns), median(&stops));
        t.row(
            &format!("spawn {n} actors, until all reported started"),
            ms(&spawns),
            String::new(),
            String::new(),
        )
        .target(&format!("< {spawn_target:.0} ms"))
        .anchor(if n == 4 {
            "mptools: 4 workers 12.7 ms"
        } else {
            ""
        });
        t.row(
            &format!("stop {n} idle actors, request → all reaped"),
            ms(&stops),
            String::new(),
            String::new(),
        )
        .target(&format!("< {stop_target:.0} ms"))
        .anchor(if n == 4 {
            "mptools: 4 workers 672 ms (271–1071)"
        } else {
            ""
        });
        t.verdict(
            &format!("spawn {n} < {spawn_target:.0} ms"),
            sm < spawn_target,
            format!("{sm:.1} ms"),
        );
        t.verdict(
            &format!("stop {n} < {stop_target:.0} ms"),
            pm < stop_target,
            format!("{pm:.1} ms"),
        );
    }
    let (floor, floor_anon) = raw::idle_rss()?;
    let (idle_rss, idle_anon) = idle_rss;
    // VmRSS counts the binary's code pages, shared by every process of the binary (and, with
    // the kernel's fault-around and large page-cache folios, most of its text once started):
    // it grows with the binary. What each actor process adds is its private memory (RssAnon).
    for (what, actor, bare, target) in [
        (
            "resident memory of an idle actor process (VmRSS)",
            idle_rss,
            floor,
            "< 4 MiB",
        ),
        (
            "private memory of an idle actor process (RssAnon: heap, stacks; no shared code)",
            idle_anon,
            floor_anon,
            "",
        ),
    ] {
        t.row(
            what,
            format!("{:.2} MiB", actor as f64 / 1024.0),
            format!(
                "same binary re-executed, ipc bootstrap only: {:.2} MiB",
                bare as f64 / 1024.0
            ),
            ratio(actor as f64, bare as f64),
        )
        .target(target);
    }
    t.row(
        "resident memory of the root, 4 actors running (VmRSS)",
        format!("{:.2} MiB", root_rss as f64 / 1024.0),
        String::new(),
        String::new(),
    );
    t.verdict(
        "idle actor < 4 MiB",
        idle_rss < 4 * 1024,
        format!("{:.2} MiB", idle_rss as f64 / 1024.0),
    );
    Ok(())
}

fn print_table(opts: &Opts, t: &Table, started: Instant) {
    println!();
    println!(
        "## mpactor vs raw transports ({} run, {:.0} s)",
        if opts.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| measurement | mpactor | reference, same run | mpactor ÷ reference | target | ANCHORS.md |");
    println!("|---|---|---|---|---|---|");
    for r in &t.rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.what, r.mpactor, r.reference, r.ratio, r.target, r.anchor
        );
    }
    println!();
    println!("Targets:");
    for v in &t.verdicts {
        println!("{v}");
    }
    println!();
    println!("Machine: {}", machine());
}

/// nproc, CPU model, kernel, load: what the figures were measured on.
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs, {model}, Linux {kernel}, load average at the end {load}")
}
