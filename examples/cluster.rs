//! cluster: two roots, as if on two machines, through a NATS server.
//!
//! The consumer's root publishes its CONSUMER actor as `consumer`; the producer's root looks
//! it up by name and message type, which gives an ordinary `Addr<u64>`, and hands it to its
//! PRODUCER actor (in its own process) like any address. PRODUCER sends N numbers through
//! it, waits until they are all confirmed, and reports what became of them. Start a server (`nats-server -p 4222`), then:
//!
//! ```text
//! cargo run --release --features nats --example cluster -- --nats nats://127.0.0.1:4222 --role consumer
//! cargo run --release --features nats --example cluster -- --nats nats://127.0.0.1:4222 --role producer --messages 100000
//! ```
//!
//! The last line on stdout of each:
//!
//! ```text
//! cluster: role=consumer handled=H
//! cluster: role=producer sent=S delivered=D dead_letters=X in_doubt=U
//! ```
//!
//! With the server and the consumer up, S = D = N and H = N. Always S = D + X + U: a message
//! is delivered (its handling confirmed), a dead letter (known not handled), or in doubt
//! (published, unconfirmed when the consumer's node went away, or when the producer was
//! stopped). The consumer runs until Ctrl-C (or `--run-for SECS`); the producer stops when
//! everything it sent is accounted for. `--retry-secs` keeps the producer trying while the
//! consumer's node (or the server) is away.
//!
//! A message that does not decode at the actor: with `--checked` on both nodes, CONSUMER
//! takes [`Checked`] numbers instead of `u64`, and `--bad-every N` makes the producer send
//! every Nth as a kind of message the consumer's build does not decode (as a newer build of
//! a sender may send what an older receiver's type lacks). The producer's node hands it on
//! like any other and counts it delivered (handed to the actor's inbox); CONSUMER's process
//! fails to decode it, logs and drops it, and handles the rest; the consumer node's summary
//! counts it as a decode failure and a dead letter. So with `--messages N --bad-every K`,
//! S = D = N and H = N - N/K.

use clap::{Parser, ValueEnum};
use mpactor::nats::{Cluster, ClusterEvent, RemoteExt, RemoteStats};
use mpactor::{
    loops, slog, Actor, ActorError, Addr, ChildOptions, Context, Registry, System, SystemConfig,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// What the actors and the cluster report to the root.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// The producer is done: what became of what it sent.
    Produced(RemoteStats),
    /// A node went down or came back.
    Cluster(ClusterEvent),
}

/// What CONSUMER takes with `--checked`: a number, or a kind of message that this build
/// sends but does not decode.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Checked {
    /// A number, as `u64` without `--checked`.
    Number(u64),
    /// What a newer build of the sender might send and this one does not know: it encodes,
    /// and its decoding fails ("invalid value ... expected variant index"), in the actor's
    /// process.
    #[serde(skip_deserializing)]
    FromNewerBuild(u64),
}

/// A message type PRODUCER sends: the `n`th number, or (`bad`) one the consumer cannot
/// decode, where the type has such a value.
trait Numbered: Serialize + DeserializeOwned + Clone + Send + 'static {
    /// Message number `n`; `bad`: one the consumer cannot decode, if the type has such.
    fn nth(n: u64, bad: bool) -> Self;
}

impl Numbered for u64 {
    fn nth(n: u64, _bad: bool) -> u64 {
        n
    }
}

impl Numbered for Checked {
    fn nth(n: u64, bad: bool) -> Checked {
        if bad {
            Checked::FromNewerBuild(n)
        } else {
            Checked::Number(n)
        }
    }
}

/// CONSUMER: counts the numbers it gets (slowly with `--handle-us`).
struct Consumer<M> {
    handle: Duration,
    takes: PhantomData<M>,
}

impl<M: Numbered> Actor for Consumer<M> {
    type Args = u64;
    type Msg = M;
    type Event = Event;

    fn init_args(handle_us: u64) -> Result<Self, ActorError> {
        Ok(Consumer {
            handle: Duration::from_micros(handle_us),
            takes: PhantomData,
        })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |this, ctx, _n| {
            if !this.handle.is_zero() {
                std::thread::sleep(this.handle);
            }
            // Progress at 1000, 10 000, 100 000, ...: a sign of life without a line each.
            let n = ctx.handled();
            if n >= 1000
                && n.to_string()
                    .trim_start_matches('1')
                    .bytes()
                    .all(|b| b == b'0')
            {
                slog::info!(ctx.log(), "handled {n} messages so far");
            }
            Ok(())
        })
    }
}

/// PRODUCER: sends `count` numbers to a remote actor, then reports.
struct Producer<M: Numbered> {
    args: ProducerArgs<M>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(bound = "M: Numbered")]
struct ProducerArgs<M: Numbered> {
    /// The consumer on the other node: an ordinary address, found by the root and handed
    /// over like any other.
    to: Addr<M>,
    count: u64,
    /// How long to keep trying while the consumer's node is down (0: stop at once).
    retry: Duration,
    /// Every `bad_every`th message is one the consumer cannot decode (0: none).
    bad_every: u64,
}

impl<M: Numbered> Actor for Producer<M> {
    type Args = ProducerArgs<M>;
    type Msg = ();
    type Event = Event;

    fn init_args(args: ProducerArgs<M>) -> Result<Self, ActorError> {
        Ok(Producer { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let to = &self.args.to;
        let mut n = 0;
        let mut down_since: Option<Instant> = None;
        while n < self.args.count && !ctx.should_stop() {
            // Bounded: a consumer that does not keep up makes this wait, never a buffer grow.
            let bad = self.args.bad_every > 0 && (n + 1) % self.args.bad_every == 0;
            match to.send_timeout(M::nth(n, bad), Duration::from_millis(100)) {
                Ok(()) => {
                    n += 1;
                    down_since = None;
                }
                Err(e) if e.is_timeout() => continue,
                Err(e) if down_since.is_none_or(|t| t.elapsed() < self.args.retry) => {
                    if down_since.is_none() {
                        slog::warn!(
                            ctx.log(),
                            "{e} after {n}: trying again for {:?}",
                            self.args.retry
                        );
                        down_since = Some(Instant::now());
                    }
                    // The node is down: look again in a while (the stop flag too).
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    slog::warn!(ctx.log(), "stopped sending after {n}: {e}");
                    break;
                }
            }
        }
        // Wait until every message is accounted for (delivered, dead or in doubt): at most
        // until the node is noticed gone, or the stop request.
        let t0 = Instant::now();
        while !to.flush_remote(Duration::from_millis(100)) && !ctx.should_stop() {
            if t0.elapsed() > Duration::from_secs(60) {
                slog::warn!(ctx.log(), "not everything confirmed after 60 s");
                break;
            }
        }
        let stats = to.remote_stats().unwrap_or_else(|| no_stats(to.name()));
        slog::info!(ctx.log(), "done"; "sent" => stats.sent, "delivered" => stats.delivered,
            "dead_letters" => stats.dead_letters, "in_doubt" => stats.in_doubt);
        ctx.emit(Event::Produced(stats))?;
        Ok(())
    }
}

/// The statistics of nothing sent (the producer did not report).
fn no_stats(actor: &str) -> RemoteStats {
    RemoteStats {
        actor: actor.into(),
        node: String::new(),
        sent: 0,
        delivered: 0,
        dead_letters: 0,
        in_doubt: 0,
        pending: 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Consumer,
    Producer,
}

#[derive(Parser)]
#[command(about = "Two roots, as if on two machines, through a NATS server")]
struct Cli {
    /// The NATS server, e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    nats: String,
    /// Which side this root is.
    #[arg(long, value_enum)]
    role: Role,
    /// Producer: how many messages to send.
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// Stop after this many seconds (0: until Ctrl-C or, for the producer, until done).
    #[arg(long, default_value_t = 0)]
    run_for: u64,
    /// The cluster's name.
    #[arg(long, default_value = "demo")]
    cluster: String,
    /// This node's name (default: `consumer`, or `producer-<pid>`).
    #[arg(long)]
    node: Option<String>,
    /// Consumer: how long handling one message takes, in microseconds (a slow consumer).
    #[arg(long, default_value_t = 0)]
    handle_us: u64,
    /// Consumer: its mailbox capacity (the most any sender may have on its way to it).
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Producer: how long to look for the consumer.
    #[arg(long, default_value_t = 30)]
    lookup_secs: u64,
    /// Producer: how long to keep trying while the consumer's node is down (0: stop sending
    /// at the first `Disconnected`).
    #[arg(long, default_value_t = 0)]
    retry_secs: u64,
    /// Both roles: CONSUMER takes `Checked` messages (a number, or a kind that this build
    /// encodes but does not decode) instead of `u64`. Give it to both nodes: the lookup asks
    /// for the message type the consumer was published with.
    #[arg(long)]
    checked: bool,
    /// Producer, with `--checked`: make every Nth message one that the consumer's build
    /// does not decode (it is dropped, logged and counted as a decode failure in the
    /// consumer's process; the producer counts it delivered). 0: none.
    #[arg(long, default_value_t = 0, requires = "checked")]
    bad_every: u64,
}

fn main() {
    let registry = Registry::new()
        .register::<Consumer<u64>>()
        .register::<Consumer<Checked>>()
        .register::<Producer<u64>>()
        .register::<Producer<Checked>>()
        .run_if_child();
    let cli = Cli::parse();
    let node = cli.node.clone().unwrap_or_else(|| match cli.role {
        Role::Consumer => "consumer".to_string(),
        Role::Producer => format!("producer-{}", std::process::id()),
    });
    let config = SystemConfig::new(node.to_uppercase())
        .run_for(Duration::from_secs(cli.run_for))
        .cluster(&cli.nats, &cli.cluster, &node);
    let run = if cli.checked {
        run::<Checked>
    } else {
        run::<u64>
    };
    let code = match run(registry, config, &cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cluster: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// This root's part, with CONSUMER taking messages of type `M`.
fn run<M: Numbered>(
    registry: Registry,
    config: SystemConfig,
    cli: &Cli,
) -> Result<i32, Box<dyn std::error::Error>> {
    let mut system = System::<Event>::new(registry, config)?;
    let cluster = Cluster::join_from(system.config())?;
    cluster.forward_events(system.report_addr(), |e| Some(Event::Cluster(e)))?;
    match cli.role {
        Role::Consumer => {
            let consumer = system.spawn_with::<Consumer<M>>(
                "CONSUMER",
                cli.handle_us,
                ChildOptions::default().mailbox_capacity(cli.capacity),
            )?;
            cluster.publish("consumer", &consumer)?;
            let summary = system.run(|root, _from, event| {
                if let Event::Cluster(e) = event {
                    slog::info!(root.log(), "cluster: {e}");
                }
            });
            let handled = summary.actor("CONSUMER").map(|a| a.handled).unwrap_or(0);
            println!("cluster: role=consumer handled={handled}");
            Ok(summary.exit_code())
        }
        Role::Producer => {
            let to = cluster.lookup::<M>("consumer", Duration::from_secs(cli.lookup_secs))?;
            system.spawn::<Producer<M>>(
                "PRODUCER",
                ProducerArgs {
                    to,
                    count: cli.messages,
                    retry: Duration::from_secs(cli.retry_secs),
                    bad_every: cli.bad_every,
                },
            )?;
            let mut produced = None;
            let summary = system.run(|root, _from, event| match event {
                Event::Produced(stats) => {
                    produced = Some(stats);
                    root.request_stop("the producer is done");
                }
                Event::Cluster(e) => slog::info!(root.log(), "cluster: {e}"),
            });
            let s = produced.unwrap_or_else(|| no_stats("consumer"));
            // Stopped before everything was confirmed (Ctrl-C): what is still on its way is
            // in doubt too, so that the line always adds up.
            println!(
                "cluster: role=producer sent={} delivered={} dead_letters={} in_doubt={}",
                s.sent,
                s.delivered,
                s.dead_letters,
                s.in_doubt + s.pending
            );
            Ok(summary.exit_code())
        }
    }
}
