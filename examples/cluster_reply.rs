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

use clap::{Parser, ValueEnum};
use mpactor::nats::Cluster;
use mpactor::{
    loops, slog, Actor, ActorError, Addr, Context, Recv, Registry, System, SystemConfig,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A request: a number, and where to send its square.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    n: u64,
    reply_to: Addr<AskerMsg>,
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
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    asked: u64,
    answered: u64,
    wrong: u64,
}

/// ANSWERER: answers each request through the address it carries.
struct Answerer;

impl Actor for Answerer {
    type Args = ();
    type Msg = Request;
    type Event = Done;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Answerer)
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |_, ctx, req| {
            let answer = AskerMsg::Answer {
                n: req.n,
                square: req.n.wrapping_mul(req.n),
            };
            // Bounded like every send; an asker that is gone is the asker's loss.
            if let Err(e) = req.reply_to.send(answer) {
                slog::warn!(ctx.log(), "answer {} not sent: {e}", req.n);
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
        let mut me = None;
        let (mut asked, mut answered, mut wrong) = (0, 0, 0);
        let t0 = Instant::now();
        while answered < self.args.requests && t0.elapsed() < Duration::from_secs(60) {
            if let Some(me) = &me {
                while asked < self.args.requests && asked - answered < WINDOW {
                    let req = Request {
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
        })?;
        Ok(())
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
            let answerer = system.spawn::<Answerer>("ANSWERER", ())?;
            cluster.publish("answerer", &answerer)?;
            let summary = system.run(|_, _, _| {});
            let handled = summary.actor("ANSWERER").map(|a| a.handled).unwrap_or(0);
            println!("cluster_reply: role=answerer answered={handled}");
            Ok(summary.exit_code())
        }
        Role::Asker => {
            let answerer = cluster.lookup::<Request>("answerer", Duration::from_secs(30))?;
            let asker = system.spawn::<Asker>(
                "ASKER",
                AskerArgs {
                    answerer,
                    requests: cli.requests,
                },
            )?;
            // ASKER's address as another machine reaches it: published, then looked up.
            let name = format!("{node}-ASKER");
            cluster.publish(&name, &asker)?;
            let me = cluster.lookup::<AskerMsg>(&name, Duration::from_secs(10))?;
            asker.send(AskerMsg::ReplyTo(me))?;
            let mut done = None;
            let summary = system.run(|root, _from, event| {
                done = Some(event);
                root.request_stop("the asker is done");
            });
            let d = done.unwrap_or(Done {
                asked: 0,
                answered: 0,
                wrong: 0,
            });
            println!(
                "cluster_reply: role=asker asked={} answered={} wrong={}",
                d.asked, d.answered, d.wrong
            );
            Ok(summary.exit_code())
        }
    }
}
