//! ask: request/reply between actors. A KV store and an ASKER, each in its own process (or,
//! with `--threads`, each a thread of the root).
//!
//! The root puts a few keys and asks the store for one before the system runs; the asker
//! asks the store for a key N times and reports how long each answer took; the root then asks
//! the store how many keys it holds, from its event handler, and stops. The last line on
//! stdout:
//!
//! ```text
//! ask: requests=10000 replies=10000 p50_us=4 p99_us=9
//! ```
//!
//! Run it: `cargo run --release --example ask -- --requests 10000`
//!
//! `--checks` also shows what an ask guarantees, one stdout line each before the last:
//! a question that times out (`timeout: ok`), its late answer not taken for the next
//! question (`late: ok`), an answer to an asker thread that is gone (the store carries on),
//! and the replies' summary, which reconciles: `replies: sent=S taken=T dead_letters=D`.

use clap::Parser;
use mpactor::{
    loops, slog, Actor, ActorError, Addr, AskError, Context, Isolation, Registry, ReplyTo, System,
    SystemConfig,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The key-value store's inbox. Keys and values are numbers, so that the message type has no
/// `Drop` and a request takes the direct path (see `Addr::send`).
#[derive(Debug, Serialize, Deserialize)]
enum Kv {
    Put {
        key: u64,
        value: u64,
    },
    Get {
        key: u64,
        reply: ReplyTo<Option<u64>>,
    },
    /// How many keys it holds.
    Len {
        reply: ReplyTo<usize>,
    },
    /// Answers `value` after `ms` milliseconds (a slow request, for `--checks`).
    Slow {
        ms: u64,
        value: u64,
        reply: ReplyTo<Option<u64>>,
    },
}

/// KV: answers every question; a reply nobody waits for any more is a dead letter, counted,
/// and never an error here.
struct Store {
    map: HashMap<u64, u64>,
}

impl Actor for Store {
    type Args = ();
    type Msg = Kv;
    type Event = Event;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Store {
            map: HashMap::new(),
        })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |this, _ctx, msg| {
            match msg {
                Kv::Put { key, value } => {
                    this.map.insert(key, value);
                }
                Kv::Get { key, reply } => {
                    reply.send(this.map.get(&key).copied());
                }
                Kv::Len { reply } => {
                    reply.send(this.map.len());
                }
                Kv::Slow { ms, value, reply } => {
                    std::thread::sleep(Duration::from_millis(ms));
                    reply.send(Some(value));
                }
            }
            Ok(())
        })
    }
}

/// What the asker reports to the root.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Done {
        requests: u64,
        replies: u64,
        p50_us: u64,
        p99_us: u64,
        /// `--checks`: one line per check, for stdout.
        checks: Vec<String>,
    },
}

#[derive(Clone, Serialize, Deserialize)]
struct AskerArgs {
    kv: Addr<Kv>,
    requests: u64,
    checks: bool,
}

/// ASKER: asks once per request and times each answer.
struct Asker {
    args: AskerArgs,
}

/// The key the root puts and the asker asks for.
const KEY: u64 = 7;
const VALUE: u64 = 49;

impl Actor for Asker {
    type Args = AskerArgs;
    type Msg = ();
    type Event = Event;

    fn init_args(args: AskerArgs) -> Result<Self, ActorError> {
        Ok(Asker { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let kv = &self.args.kv;
        let mut times = Vec::with_capacity(self.args.requests as usize);
        let mut replies = 0;
        for _ in 0..self.args.requests {
            if ctx.should_stop() {
                break;
            }
            let t0 = Instant::now();
            match kv.ask(|reply| Kv::Get { key: KEY, reply }, Duration::from_secs(2)) {
                Ok(Some(VALUE)) => replies += 1,
                Ok(other) => return Err(format!("asked for {KEY}, got {other:?}").into()),
                Err(AskError::Timeout) => {
                    slog::warn!(ctx.log(), "no answer within 2 s");
                    continue;
                }
                // Any other error ends the actor, its cause in the log and the summary.
                Err(e) => return Err(ActorError::new("asking the store").with_cause(e)),
            }
            times.push(t0.elapsed().as_nanos() as u64);
        }
        times.sort_unstable();
        let pct = |p: f64| {
            let i = ((times.len() as f64 - 1.0) * p).round() as usize;
            times.get(i).map_or(0, |ns| ns / 1000)
        };
        let checks = if self.args.checks {
            checks(kv)?
        } else {
            Vec::new()
        };
        ctx.emit(Event::Done {
            requests: self.args.requests,
            replies,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            checks,
        })?;
        // Done: wait to be stopped.
        loops::queue(self, ctx, |_, _, ()| Ok(()))
    }
}

/// What an ask guarantees, shown: a timeout, a late reply that is not taken for the next
/// question, and a reply to an asker that is gone.
fn checks(kv: &Addr<Kv>) -> Result<Vec<String>, ActorError> {
    let mut lines = Vec::new();
    // The store answers after 300 ms; this question gives up after 50 ms.
    let slow = |reply| Kv::Slow {
        ms: 300,
        value: 999,
        reply,
    };
    let t0 = Instant::now();
    match kv.ask(slow, Duration::from_millis(50)) {
        Err(AskError::Timeout) => {
            lines.push(format!("timeout: ok after_ms={}", t0.elapsed().as_millis()))
        }
        other => lines.push(format!("timeout: FAILED {other:?}")),
    }
    // Asked while the store still sleeps: the late 999 arrives first and must be dropped.
    match kv.ask(|reply| Kv::Get { key: KEY, reply }, Duration::from_secs(5)) {
        Ok(Some(VALUE)) => lines.push("late: ok".to_string()),
        other => lines.push(format!("late: FAILED {other:?}")),
    }
    // An asker thread that gives up and ends: the store's answer goes to a closed inbox.
    let kv2 = kv.clone();
    let gone = std::thread::spawn(move || kv2.ask(slow, Duration::from_millis(20)).is_err())
        .join()
        .map_err(|_| ActorError::new("the asker thread panicked"))?;
    // The store carries on: it answers the next question (after the slow one).
    match kv.ask(|reply| Kv::Get { key: KEY, reply }, Duration::from_secs(5)) {
        Ok(Some(VALUE)) if gone => lines.push("gone: ok".to_string()),
        other => lines.push(format!("gone: FAILED {other:?} gave_up={gone}")),
    }
    Ok(lines)
}

#[derive(Parser)]
#[command(about = "A key-value actor and an actor that asks it, with request/reply")]
struct Cli {
    /// How many questions the asker asks.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Run the actors as threads of one process instead of one process each.
    #[arg(long)]
    threads: bool,
    /// Also show a timeout, a late reply and an answer to an asker that is gone.
    #[arg(long)]
    checks: bool,
}

fn main() {
    // First: in a child process this runs the actor it was started for and exits.
    let registry = Registry::new()
        .register::<Store>()
        .register::<Asker>()
        .run_if_child();
    let cli = Cli::parse();
    let isolation = if cli.threads {
        Isolation::Threads
    } else {
        Isolation::Processes
    };
    let config = SystemConfig::new("MAIN").isolation(isolation);
    let mut system = match System::<Event>::new(registry, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ask: cannot start the root: {e}");
            std::process::exit(2);
        }
    };
    let kv = match system.spawn::<Store>("KV", ()) {
        Ok(kv) => kv,
        Err(e) => {
            eprintln!("ask: {e}");
            std::process::exit(2);
        }
    };
    // The root asks too: before the system runs...
    let asked = kv
        .send(Kv::Put {
            key: KEY,
            value: VALUE,
        })
        .map_err(|e| e.to_string())
        .and_then(|()| {
            kv.ask(|reply| Kv::Get { key: KEY, reply }, Duration::from_secs(2))
                .map_err(|e| e.to_string())
        });
    match asked {
        Ok(Some(VALUE)) => slog::info!(system.log(), "the store holds {KEY} = {VALUE}"),
        other => {
            eprintln!("ask: the root's question failed: {other:?}");
            std::process::exit(2);
        }
    }
    let args = AskerArgs {
        kv: kv.clone(),
        requests: cli.requests,
        checks: cli.checks,
    };
    if let Err(e) = system.spawn::<Asker>("ASKER", args) {
        eprintln!("ask: {e}");
        drop(system);
        std::process::exit(2);
    }

    let mut result = None;
    let summary = system.run(|root, from, event| {
        let Event::Done {
            requests,
            replies,
            p50_us,
            p99_us,
            checks,
        } = event;
        // ... and from its event handler (the root's loop waits meanwhile).
        match kv.ask(|reply| Kv::Len { reply }, Duration::from_secs(2)) {
            Ok(n) => slog::info!(root.log(), "the store holds {n} keys"),
            Err(e) => slog::warn!(root.log(), "the store did not say how many keys: {e}"),
        }
        result = Some((requests, replies, p50_us, p99_us, checks));
        root.request_stop(format!("{from} is done"));
    });

    let Some((requests, replies, p50_us, p99_us, checks)) = result else {
        eprintln!("ask: stopped before the asker was done: {}", summary.reason);
        std::process::exit(summary.exit_code().max(1));
    };
    for line in checks {
        println!("{line}");
    }
    if cli.checks {
        let r = summary.replies;
        println!(
            "replies: sent={} taken={} dead_letters={}",
            r.sent, r.taken, r.dead_letters
        );
        if let Some(kv) = summary.actor("KV") {
            println!(
                "kv: accepted={} handled={} dead_letters={}",
                kv.accepted, kv.handled, kv.dead_letters
            );
        }
    }
    println!("ask: requests={requests} replies={replies} p50_us={p50_us} p99_us={p99_us}");
    std::process::exit(summary.exit_code());
}
