//! quickstart: a root, a PRODUCER and a CONSUMER, each in its own process.
//!
//! The producer sends N small messages to the consumer's address; when it has sent them all
//! it tells the root, which stops the system cleanly. The last line on stdout reconciles:
//!
//! ```text
//! quickstart: sent=100000 handled=100000 dead_letters=0
//! ```
//!
//! Run it: `cargo run --release --example quickstart -- --messages 100000`
//! Interrupt it with Ctrl-C mid-flood: it still stops cleanly and the line still adds up.
//! `--log-format json` (or `MPACTOR_LOG_FORMAT=json`) logs one JSON object per line from
//! every process; `--help` lists the levels and formats.

use clap::Parser;
use mpactor::log::{LogFormat, LogLevel};
use mpactor::{slog, Actor, ActorError, Addr, Context, Isolation, Registry, System, SystemConfig};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::Duration;

/// One small message (about 64 bytes in memory).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    seq: u64,
    celsius: f64,
    sensor: [u8; 16],
    flags: [u64; 4],
}

/// What the actors report to the root.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// The producer is done: it sent this many messages (all accepted by the mailbox).
    Sent(u64),
}

/// PRODUCER: a custom loop that sends until done or asked to stop.
struct Producer {
    to: Addr<Reading>,
    count: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct ProducerArgs {
    /// The consumer's address, handed over from the root.
    to: Addr<Reading>,
    count: u64,
}

impl Actor for Producer {
    type Args = ProducerArgs;
    type Msg = (); // nobody sends to the producer
    type Event = Event;

    fn init_args(args: ProducerArgs) -> Result<Self, ActorError> {
        Ok(Producer {
            to: args.to,
            count: args.count,
        })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let mut sent = 0;
        while sent < self.count && !ctx.should_stop() {
            let msg = Reading {
                seq: sent,
                celsius: 20.0 + (sent % 50) as f64 / 10.0,
                sensor: *b"living-room-0001",
                flags: [sent; 4],
            };
            // A bounded wait: a full mailbox returns here, and the stop flag is looked at again.
            match self.to.send_timeout(msg, Duration::from_millis(100)) {
                Ok(()) => sent += 1,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        slog::info!(ctx.log(), "sent {sent} messages");
        ctx.emit(Event::Sent(sent))?;
        Ok(())
    }
}

/// CONSUMER: a queue actor, one call per message.
struct Consumer {
    total: f64,
}

impl Actor for Consumer {
    type Args = ();
    type Msg = Reading;
    type Event = Event;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Consumer { total: 0.0 })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, reading: Self::Msg) -> Result<(), ActorError> {
        self.total += reading.celsius;
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        slog::info!(ctx.log(), "handled {} readings", ctx.handled());
    }
}

#[derive(Parser)]
#[command(about = "A producer and a consumer in their own processes, under a root")]
struct Cli {
    /// How many messages the producer sends.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// How much every process logs (any case).
    #[arg(long, value_enum, ignore_case = true, env = mpactor::log::LOG_ENV,
          default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    /// The format of every process's log lines on stderr: aligned text, or one JSON object per
    /// line.
    #[arg(long, value_enum, ignore_case = true, env = mpactor::log::FORMAT_ENV,
          default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run the same actors as threads of one process instead of one process each.
    #[arg(long)]
    threads: bool,
}

fn main() -> ExitCode {
    // First: in a child process this runs the actor it was started for and exits.
    let registry = Registry::new()
        .register::<Producer>()
        .register::<Consumer>()
        .run_if_child();

    let cli = Cli::parse();
    let isolation = if cli.threads {
        Isolation::Threads
    } else {
        Isolation::Processes
    };
    let config = SystemConfig::new("MAIN")
        .log_level(cli.log_level)
        .log_format(cli.log_format)
        .isolation(isolation);
    let mut system = match System::<Event>::new(registry, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quickstart: cannot start the root: {e}");
            return ExitCode::from(2);
        }
    };

    // Children start in order, each confirmed started before the next.
    let started = system
        .spawn::<Consumer>("CONSUMER", ())
        .and_then(|consumer| {
            system.spawn::<Producer>(
                "PRODUCER",
                ProducerArgs {
                    to: consumer,
                    count: cli.messages,
                },
            )
        });
    if let Err(e) = started {
        eprintln!("quickstart: {e}");
        return ExitCode::from(2); // the system, dropped here, stops whatever did start
    }

    let mut sent = None;
    let summary = system.run(|root, from, event| match event {
        Event::Sent(n) => {
            sent = Some(n);
            root.request_stop(format!("{from} sent all {n} messages"));
        }
    });

    // The consumer's line of the summary (it was spawned, so it has one).
    let (accepted, handled, dead_letters) = summary
        .actor("CONSUMER")
        .map_or((0, 0, 0), |c| (c.accepted, c.handled, c.dead_letters));
    println!(
        "quickstart: sent={} handled={handled} dead_letters={dead_letters}",
        sent.unwrap_or(accepted),
    );
    // Returned, not `process::exit`: 0, 2 or 3 as the summary says, after every destructor.
    ExitCode::from(&summary)
}
