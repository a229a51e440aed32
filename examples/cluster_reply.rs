//! cluster_reply: replies across machines. An actor on one node sends requests that carry
//! the address to answer to; an actor on another node answers through it.
//!
//! The answerer's root publishes its ANSWERER actor as `answerer`. The asker's root publishes
//! its ASKER actor as `<node>-ASKER`, looks that name up (which gives an `Addr` that reaches
//! ASKER through the cluster, from any machine) and hands it to ASKER. ASKER then sends N
//! requests to the answerer, each carrying that address, and counts the answers. Start a
//! server (`nats-server -p 4222`), then:
//!
//! ```text
//! cargo run --release --features nats --example cluster_reply -- --nats nats://127.0.0.1:4222 --role answerer
//! cargo run --release --features nats --example cluster_reply -- --nats nats://127.0.0.1:4222 --role asker --requests 1000
//! ```
//!
//! The last line on stdout of each:
//!
//! ```text
//! cluster_reply: role=answerer answered=H
//! cluster_reply: role=asker asked=N answered=A wrong=W
//! ```
//!
//! With the server and the answerer up, A = N and W = 0 (an answer is right when it is the
//! square of its request). An address of an actor on this machine (`ctx.myself()`) cannot be
//! put into a message to another machine (not yet): such a message is refused and counted
//! as a dead letter; publish the actor and send the address its lookup gives, as here.
//!
//! With `--ask`, the asker's root and then ASKER ask instead (`Addr::ask` on the address the
//! lookup gave, one question at a time, each within `--ask-timeout-ms`): no address to
//! publish, the answer comes back through the cluster into the asking thread. The asker's
//! lines are then
//!
//! ```text
//! cluster_reply: root asked=R answered=R
//! cluster_reply: role=asker mode=ask asked=N answered=A wrong=W timeouts=T gone=G max_ms=M p50_us=P
//! ```
//!
//! (T: asks that got no answer in time, G: asks that ended because the answerer's node was
//! down, M: the longest ask, P: the median round trip). `--late-every K --late-ms MS` makes
//! the answerer answer every K-th question late, to see timeouts.

use clap::{Parser, ValueEnum};
use mpactor::nats::Cluster;
use mpactor::{
    loops, slog, Actor, ActorError, Addr, AskError, Context, Recv, Registry, ReplyTo, System,
    SystemConfig,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A request: a number, and where to send its square.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// The square goes to an actor's address.
    Square { n: u64, reply_to: Addr<AskerMsg> },
    /// Asked with `Addr::ask`: the square goes back through `reply`.
    Ask { n: u64, reply: ReplyTo<u64> },
}

/// What ASKER takes: the address to give out for answers, then the answers.
#[derive(Debug, Serialize, Deserialize)]
enum AskerMsg {
    /// ASKER's own address as the other nodes reach it (from its root's lookup).
    ReplyTo(Addr<AskerMsg>),
    /// The answer to request `n`.
    Answer { n: u64, square: u64 },
}

/// What ASKER reports when it is done.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Done {
    asked: u64,
    answered: u64,
    wrong: u64,
    /// With `--ask`: asks without an answer in time, asks ended by the node being down, the
    /// longest ask, the median one.
    timeouts: u64,
    gone: u64,
    max_ms: u64,
    p50_us: u64,
}

/// ANSWERER: answers each request through the address (or the `ReplyTo`) it carries.
struct Answerer {
    args: AnswererArgs,
}

#[derive(Clone, Serialize, Deserialize)]
struct AnswererArgs {
    /// Answer every `late_every`-th asked question (0: none) after `late_ms`.
    late_every: u64,
    late_ms: u64,
}

impl Actor for Answerer {
    type Args = AnswererArgs;
    type Msg = Request;
    type Event = Done;

    fn init_args(args: AnswererArgs) -> Result<Self, ActorError> {
        Ok(Answerer { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |me, ctx, req| {
            match req {
                Request::Square { n, reply_to } => {
                    let answer = AskerMsg::Answer {
                        n,
                        square: n.wrapping_mul(n),
                    };
                    // Bounded like every send; an asker that is gone is the asker's loss.
                    if let Err(e) = reply_to.send(answer) {
                        slog::warn!(ctx.log(), "answer {n} not sent: {e}");
                    }
                }
                Request::Ask { n, reply } => {
                    let every = me.args.late_every;
                    if every > 0 && n % every == every - 1 {
                        std::thread::sleep(Duration::from_millis(me.args.late_ms));
                    }
                    // Never blocks; an answer nobody waits for any more is a dead letter.
                    reply.send(n.wrapping_mul(n));
                }
            }
            Ok(())
        })
    }
}

/// ASKER: sends `requests` requests to ANSWERER, at most 64 unanswered at a time, and counts
/// the answers.
struct Asker {
    args: AskerArgs,
}

#[derive(Clone, Serialize, Deserialize)]
struct AskerArgs {
    /// ANSWERER on the other node, found by the root.
    answerer: Addr<Request>,
    requests: u64,
    /// Ask (one question at a time, each within this many ms) instead of sending requests
    /// that carry ASKER's address; 0: send.
    ask_timeout_ms: u64,
}

/// The most requests ASKER has unanswered: its mailbox never holds more answers than this.
const WINDOW: u64 = 64;

impl Actor for Asker {
    type Args = AskerArgs;
    type Msg = AskerMsg;
    type Event = Done;

    fn init_args(args: AskerArgs) -> Result<Self, ActorError> {
        Ok(Asker { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        if self.args.ask_timeout_ms > 0 {
            let done = self.ask_all(ctx);
            slog::info!(ctx.log(), "done"; "asked" => done.asked, "answered" => done.answered, "timeouts" => done.timeouts, "gone" => done.gone);
            ctx.emit(done)?;
            return Ok(());
        }
        let mut me = None;
        let (mut asked, mut answered, mut wrong) = (0, 0, 0);
        let t0 = Instant::now();
        while answered < self.args.requests && t0.elapsed() < Duration::from_secs(60) {
            if let Some(me) = &me {
                while asked < self.args.requests && asked - answered < WINDOW {
                    let req = Request::Square {
                        n: asked,
                        reply_to: Addr::clone(me),
                    };
                    self.args.answerer.send(req)?;
                    asked += 1;
                }
            }
            match ctx.recv(Duration::from_millis(100)) {
                Recv::Msg(AskerMsg::ReplyTo(addr)) => me = Some(addr),
                Recv::Msg(AskerMsg::Answer { n, square }) => {
                    answered += 1;
                    if square != n.wrapping_mul(n) {
                        wrong += 1;
                    }
                }
                Recv::Stop => break,
                Recv::Timeout => {}
            }
        }
        slog::info!(ctx.log(), "done"; "asked" => asked, "answered" => answered, "wrong" => wrong);
        ctx.emit(Done {
            asked,
            answered,
            wrong,
            ..Done::default()
        })?;
        Ok(())
    }
}

impl Asker {
    /// `--ask`: asks ANSWERER `requests` questions, one at a time, and counts what became of
    /// each; stops early on a stop request.
    fn ask_all(&self, ctx: &mut Context<Self>) -> Done {
        let timeout = Duration::from_millis(self.args.ask_timeout_ms);
        let mut done = Done::default();
        let mut took = Vec::new();
        while done.asked < self.args.requests {
            let n = done.asked;
            let t0 = Instant::now();
            let answer = self
                .args
                .answerer
                .ask(|reply| Request::Ask { n, reply }, timeout);
            took.push(t0.elapsed());
            done.asked += 1;
            match answer {
                Ok(square) if square == n.wrapping_mul(n) => done.answered += 1,
                Ok(_) => done.wrong += 1,
                Err(AskError::Timeout) => done.timeouts += 1,
                Err(AskError::Disconnected) => done.gone += 1,
                Err(e) => {
                    slog::warn!(ctx.log(), "ask {n}: {e}");
                    done.wrong += 1;
                }
            }
            if done.asked % 1000 == 0 {
                slog::info!(ctx.log(), "asked {} so far", done.asked);
            }
            // A stop request is seen between two questions.
            if done.asked % 64 == 0 && matches!(ctx.recv(Duration::ZERO), Recv::Stop) {
                break;
            }
        }
        took.sort();
        done.max_ms = took.last().map_or(0, |d| d.as_millis() as u64);
        done.p50_us = took.get(took.len() / 2).map_or(0, |d| d.as_micros() as u64);
        done
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    Answerer,
    Asker,
}

#[derive(Parser)]
#[command(about = "Replies across machines through a NATS server")]
struct Cli {
    /// The NATS server, e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    nats: String,
    /// Which side this root is.
    #[arg(long, value_enum)]
    role: Role,
    /// Asker: how many requests to send.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Asker: ask (`Addr::ask`, from the root and then from ASKER) instead of sending
    /// requests that carry an address.
    #[arg(long)]
    ask: bool,
    /// Asker with `--ask`: the deadline of each ask.
    #[arg(long, default_value_t = 1000)]
    ask_timeout_ms: u64,
    /// Answerer: answer every K-th asked question late (0: never).
    #[arg(long, default_value_t = 0)]
    late_every: u64,
    /// Answerer: how late, in ms.
    #[arg(long, default_value_t = 0)]
    late_ms: u64,
    /// Stop after this many seconds (0: until Ctrl-C or, for the asker, until done).
    #[arg(long, default_value_t = 0)]
    run_for: u64,
    /// The cluster's name.
    #[arg(long, default_value = "demo")]
    cluster: String,
    /// This node's name (default: `answerer`, or `asker-<pid>`).
    #[arg(long)]
    node: Option<String>,
}

fn main() {
    let registry = Registry::new()
        .register::<Answerer>()
        .register::<Asker>()
        .run_if_child();
    let cli = Cli::parse();
    let node = cli.node.clone().unwrap_or_else(|| match cli.role {
        Role::Answerer => "answerer".to_string(),
        Role::Asker => format!("asker-{}", std::process::id()),
    });
    let config = SystemConfig::new(node.to_uppercase())
        .run_for(Duration::from_secs(cli.run_for))
        .cluster(&cli.nats, &cli.cluster, &node);
    let code = match run(registry, config, &cli, &node) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cluster_reply: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn run(
    registry: Registry,
    config: SystemConfig,
    cli: &Cli,
    node: &str,
) -> Result<i32, Box<dyn std::error::Error>> {
    let mut system = System::<Done>::new(registry, config)?;
    let cluster = Cluster::join_from(system.config())?;
    match cli.role {
        Role::Answerer => {
            let answerer = system.spawn::<Answerer>(
                "ANSWERER",
                AnswererArgs {
                    late_every: cli.late_every,
                    late_ms: cli.late_ms,
                },
            )?;
            cluster.publish("answerer", &answerer)?;
            let summary = system.run(|_, _, _| {});
            let handled = summary.actor("ANSWERER").map(|a| a.handled).unwrap_or(0);
            println!("cluster_reply: role=answerer answered={handled}");
            Ok(summary.exit_code())
        }
        Role::Asker => {
            let answerer = cluster.lookup::<Request>("answerer", Duration::from_secs(30))?;
            let ask_timeout_ms = if cli.ask {
                cli.ask_timeout_ms.max(1)
            } else {
                0
            };
            if cli.ask {
                // The root asks too, before its loop runs (it blocks only itself).
                let timeout = Duration::from_millis(ask_timeout_ms);
                let root_asks = 10;
                let answered = (0..root_asks)
                    .filter(|&n| {
                        let got = answerer.ask(|reply| Request::Ask { n, reply }, timeout);
                        matches!(got, Ok(square) if square == n * n)
                    })
                    .count();
                println!("cluster_reply: root asked={root_asks} answered={answered}");
            }
            let asker = system.spawn::<Asker>(
                "ASKER",
                AskerArgs {
                    answerer,
                    requests: cli.requests,
                    ask_timeout_ms,
                },
            )?;
            if !cli.ask {
                // ASKER's address as another machine reaches it: published, then looked up.
                let name = format!("{node}-ASKER");
                cluster.publish(&name, &asker)?;
                let me = cluster.lookup::<AskerMsg>(&name, Duration::from_secs(10))?;
                asker.send(AskerMsg::ReplyTo(me))?;
            }
            let mut done = None;
            let summary = system.run(|root, _from, event| {
                done = Some(event);
                root.request_stop("the asker is done");
            });
            let d = done.unwrap_or_default();
            if cli.ask {
                println!(
                    "cluster_reply: role=asker mode=ask asked={} answered={} wrong={} \
                     timeouts={} gone={} max_ms={} p50_us={}",
                    d.asked, d.answered, d.wrong, d.timeouts, d.gone, d.max_ms, d.p50_us
                );
            } else {
                println!(
                    "cluster_reply: role=asker asked={} answered={} wrong={}",
                    d.asked, d.answered, d.wrong
                );
            }
            Ok(summary.exit_code())
        }
    }
}
