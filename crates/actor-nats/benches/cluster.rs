//! Cluster benchmark: mpactor through a NATS server against raw async-nats, same run.
//!
//! `cargo bench -p actor-nats --bench cluster -- [--messages N] [--rounds R]`
//!
//! Starts its own `nats-server` on a free loopback port (skips with a note when it is not
//! installed). Rows:
//!
//! * 64 B, node → node: a root (node `b`) floods a CONSUMER actor (its own process) that node
//!   `a` published, through the server, until every message is confirmed handled; against
//!   raw async-nats, one 64 B message per publish, publisher connection → subscriber
//!   connection, until the subscriber has them all.
//! * Round trip between two nodes' actors: PINGER (published by node `b`) sends to ECHO
//!   (published by node `a`), which answers through its own remote address of PINGER;
//!   against a raw NATS request/reply between two connections.
//!
//! Both nodes' NATS sides live in this one process (two connections, as two roots would
//! have), the actors in their own processes, each with its own connection.
//!
//! The raw references run twice, before and after mpactor's rows, and the ratios are taken
//! against both together (the mean rate; the p50 of both samples of round trips): on a
//! shared machine the load moves between phases of one run, and a reference taken at one
//! moment only said more about that moment than about the transports.

use actor_core::{Actor, ActorError, Context, Recv, SystemConfig};
use actor_ipc::{Addr, Registry, System};
use actor_nats::testkit::NatsServer;
use actor_nats::{Cluster, RemoteExt};
use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// 64 bytes in memory; 57–65 bytes encoded (`seq` is a varint).
#[derive(Clone, Serialize, Deserialize)]
struct Msg64 {
    seq: u64,
    pad: [u8; 32],
    pad2: [u8; 24],
}

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Handled(u64),
    Rtts(Vec<u64>),
}

/// Counts what it gets; reports when it has `expect`.
struct Consumer {
    expect: u64,
}

impl Actor for Consumer {
    type Args = u64;
    type Msg = Msg64;
    type Event = Event;
    fn init_args(expect: u64) -> Result<Self, ActorError> {
        Ok(Consumer { expect })
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        actor_core::loops::queue(self, ctx, |this, ctx, _m| {
            if ctx.handled() == this.expect {
                ctx.emit(Event::Handled(this.expect))?;
            }
            Ok(())
        })
    }
}

#[derive(Serialize, Deserialize)]
enum EchoMsg {
    /// Where to answer.
    Hello(Addr<u64>),
    Ping(u64),
}

/// Answers every ping to the address it was given.
struct Echo {
    back: Option<Addr<u64>>,
}

impl Actor for Echo {
    type Args = ();
    type Msg = EchoMsg;
    type Event = Event;
    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Echo { back: None })
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        actor_core::loops::queue(self, ctx, |this, _ctx, m| {
            match m {
                EchoMsg::Hello(back) => this.back = Some(back),
                EchoMsg::Ping(n) => {
                    if let Some(back) = &this.back {
                        back.send(n)?;
                    }
                }
            }
            Ok(())
        })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct PingerArgs {
    echo: Addr<EchoMsg>,
    rounds: u32,
}

/// Pings ECHO `rounds` times once told to go (any message), and reports the round trips.
struct Pinger {
    args: PingerArgs,
}

impl Actor for Pinger {
    type Args = PingerArgs;
    type Msg = u64;
    type Event = Event;
    fn init_args(args: PingerArgs) -> Result<Self, ActorError> {
        Ok(Pinger { args })
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        // The go.
        loop {
            match ctx.recv(Duration::from_millis(100)) {
                Recv::Msg(_) => break,
                Recv::Stop => return Ok(()),
                Recv::Timeout => {}
            }
        }
        let mut rtts = Vec::with_capacity(self.args.rounds as usize);
        for n in 0..(self.args.rounds as u64 + 200) {
            let t0 = Instant::now();
            self.args.echo.send(EchoMsg::Ping(n))?;
            match ctx.recv(Duration::from_secs(5)) {
                Recv::Msg(_) => {}
                Recv::Stop => return Ok(()),
                Recv::Timeout => return Err(ActorError::new("no answer within 5 s")),
            }
            // The first 200 warm up.
            if n >= 200 {
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
        }
        ctx.emit(Event::Rtts(rtts))?;
        Ok(())
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

fn main() {
    let registry = Registry::new()
        .register::<Consumer>()
        .register::<Echo>()
        .register::<Pinger>()
        .run_if_child();
    let server = match NatsServer::start() {
        Ok(server) => server,
        Err(e) => {
            println!("bench cluster: skipped: {e}");
            return;
        }
    };
    let url = server.url();
    let n = arg("--messages", 1_000_000);
    let rounds = arg("--rounds", 2000) as u32;
    let result = run(registry, &url, n, rounds);
    // `exit` skips destructors: the server goes first.
    drop(server);
    if let Err(e) = result {
        eprintln!("bench cluster: {e}");
        std::process::exit(1);
    }
}

fn run(
    registry: Registry,
    url: &str,
    n: u64,
    rounds: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    // Raw first, on a fresh server (and again at the end).
    let raw_before = raw_throughput(url, n)?;
    let raw_rtt_before = raw_round_trips(url, rounds)?;

    let config = SystemConfig::new("BENCH").log_level(slog::Level::Warning);
    let mut system = System::<Event>::new(registry, config)?;
    let a = Cluster::join(&actor_core::ClusterConfig::new(url, "bench", "a"))?;
    let b = Cluster::join(&actor_core::ClusterConfig::new(url, "bench", "b"))?;
    let consumer = system.spawn_with::<Consumer>(
        "CONSUMER",
        n,
        actor_core::ChildOptions::default().mailbox_capacity(16384),
    )?;
    a.publish("consumer", &consumer)?;
    let echo = system.spawn::<Echo>("ECHO", ())?;
    a.publish("echo", &echo)?;
    let to_echo = b.lookup::<EchoMsg>("echo", Duration::from_secs(10))?;
    let pinger = system.spawn::<Pinger>(
        "PINGER",
        PingerArgs {
            echo: to_echo.clone(),
            rounds,
        },
    )?;
    b.publish("pinger", &pinger)?;

    // Throughput: node b's root floods node a's CONSUMER.
    let to = b.lookup::<Msg64>("consumer", Duration::from_secs(10))?;
    let t0 = Instant::now();
    for seq in 0..n {
        to.send(Msg64 {
            seq,
            pad: [7; 32],
            pad2: [9; 24],
        })
        .map_err(|e| format!("send: {e}"))?;
    }
    let confirmed = to.flush_remote(Duration::from_secs(120));
    let took = t0.elapsed();
    let stats = to.remote_stats().ok_or("a remote address")?;
    let ours = stats.delivered as f64 / took.as_secs_f64();

    // Round trips: ECHO learns PINGER's remote address, then PINGER goes.
    let back = a.lookup::<u64>("pinger", Duration::from_secs(10))?;
    to_echo
        .send(EchoMsg::Hello(back))
        .map_err(|e| format!("hello: {e}"))?;
    to_echo.flush_remote(Duration::from_secs(10));
    pinger.send(0).map_err(|e| format!("go: {e}"))?;
    let mut rtts = Vec::new();
    system.run(|root, _from, event| {
        if let Event::Rtts(r) = event {
            rtts = r;
            root.request_stop("measured");
        }
    });
    rtts.sort_unstable();
    let raw_after = raw_throughput(url, n)?;
    let raw_rtt_after = raw_round_trips(url, rounds)?;
    let raw_rate = (raw_before.0 + raw_after.0) / 2.0;
    let mut raw_rtt = [raw_rtt_before.clone(), raw_rtt_after.clone()].concat();
    raw_rtt.sort_unstable();
    let raw_p50 = pct(&raw_rtt, 0.5);
    let our_p50 = pct(&rtts, 0.5);

    println!("| row | mpactor (nats) | raw async-nats | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| 64 B node → node, {n} msgs | {:.0} msg/s (delivered {} of {}, confirmed: {confirmed}) | {:.0} msg/s: {:.0} before, {:.0} after (received {} and {} of {n}) | {:.2}× | ≥ 1 M msg/s and ≥ 2× raw |",
        ours, stats.delivered, stats.sent, raw_rate, raw_before.0, raw_after.0, raw_before.1, raw_after.1, ours / raw_rate
    );
    println!(
        "| round trip p50 (p99), {} rounds | {:.1} µs ({:.1} µs) | {:.1} µs ({:.1} µs): p50 {:.1} before, {:.1} after | {:.2}× | ≤ 2× |",
        rtts.len(),
        our_p50,
        pct(&rtts, 0.99),
        raw_p50,
        pct(&raw_rtt, 0.99),
        pct(&raw_rtt_before, 0.5),
        pct(&raw_rtt_after, 0.5),
        our_p50 / raw_p50
    );
    println!(
        "| slow-consumer drops (a, b) | {}, {} | | | 0 |",
        a.slow_consumer_drops(),
        b.slow_consumer_drops()
    );
    Ok(())
}

/// Raw async-nats: one 64 B message per publish, publisher connection → subscriber
/// connection; the rate at which the subscriber gets them (NATS may drop some for a slow
/// subscriber: then the rate of what arrived, and how many).
fn raw_throughput(url: &str, n: u64) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = url.to_string();
    rt.block_on(async move {
        let publisher = async_nats::connect(&url).await?;
        let subscriber = async_nats::connect(&url).await?;
        let mut sub = subscriber.subscribe("raw.tp").await?;
        subscriber.flush().await?;
        let counter = tokio::spawn(async move {
            let mut got = 0u64;
            let mut last = Instant::now();
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
                got += 1;
                // The clock every 1024 messages, not each: the reference must not pay for
                // the measurement.
                if got.is_multiple_of(1024) || got == n {
                    last = Instant::now();
                }
                if got == n {
                    break;
                }
            }
            (got, last)
        });
        let payload = Bytes::from(vec![7u8; 64]);
        let t0 = Instant::now();
        for _ in 0..n {
            publisher.publish("raw.tp", payload.clone()).await?;
        }
        publisher.flush().await?;
        let (got, last) = counter.await?;
        let secs = last.duration_since(t0).as_secs_f64();
        Ok::<_, Box<dyn std::error::Error>>((got as f64 / secs, got))
    })
}

/// Raw NATS request/reply between two connections: the round trips, in ns, sorted.
fn raw_round_trips(url: &str, rounds: u32) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = url.to_string();
    rt.block_on(async move {
        let requester = async_nats::connect(&url).await?;
        let responder = async_nats::connect(&url).await?;
        let mut sub = responder.subscribe("raw.rr").await?;
        responder.flush().await?;
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = responder.publish(reply, m.payload).await;
                }
            }
        });
        let payload = Bytes::from(vec![1u8; 8]);
        let mut rtts = Vec::new();
        for i in 0..(rounds + 200) {
            let t0 = Instant::now();
            match requester.request("raw.rr", payload.clone()).await {
                Ok(_) => {}
                // Seen now and then (about one run in fifteen on a loaded machine, with
                // either build of mpactor), in the reference run after mpactor's rows: the
                // server answered "no responders" to an early request although the
                // responder's subscription was flushed. A warm-up round is tried again after
                // a pause; a measured one fails the bench.
                Err(e) if i < 200 && e.kind() == RequestErrorKind::NoResponders => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if i >= 200 {
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
        }
        rtts.sort_unstable();
        Ok::<_, Box<dyn std::error::Error>>(rtts)
    })
}
