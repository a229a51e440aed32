//! Supervision scenarios, each runnable under either isolation, for
//! `tests/supervision.rs`: the supervisor's behaviour is written once and tested against
//! processes and threads alike.
//!
//! `supervision_cases --isolation processes|threads --case NAME --trace FILE`
//!
//! Prints one `summary NAME handled=H dead=D accepted=A restarts=R exit=STATUS` line per
//! actor, then `reason TEXT`, and exits with the root's exit code (2 with a `start error`
//! line when a start failed). Actors append `startup NAME` / `shutdown NAME` to the trace file.

use actor_core::{
    loops, Actor, ActorError, ChildOptions, Context, Isolation, Restart, Strategy, SystemConfig,
};
use actor_ipc::{Addr, ContextExt, Registry, System};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What the root sends.
#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    /// Some work that takes `slow_ms`.
    Work,
    /// Panic now.
    Crash,
    /// Answer with a `Pong` event.
    Ping,
    /// Send `Remember` with this actor's own address (`ctx.myself()`) to `server`.
    Ask { server: Addr<Cmd> },
    /// Keep `reply_to` and send it `Reply(1)`.
    Remember { reply_to: Addr<Cmd> },
    /// Send `Reply(2)` to the address kept.
    Answer,
    /// A reply: traced and reported as `Replied`.
    Reply(u32),
}

/// What the actors report.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Started(String),
    Pong(String),
    Replied(String, u32),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Behaviour {
    trace: PathBuf,
    /// Each `Work` takes this long (the actor's own work, not a synchronisation).
    slow_ms: u64,
    /// `main_loop` panics at once.
    crash_at_once: bool,
    /// `startup` fails.
    fail_startup: bool,
    /// `startup` takes this long.
    hang_startup_ms: u64,
}

/// A queue actor that records its lifecycle and does what it is told.
struct Worker {
    b: Behaviour,
    /// The address a `Remember` handed over.
    reply_to: Option<Addr<Cmd>>,
}

fn trace(path: &PathBuf, line: &str) {
    // The trace is test evidence: a write failure must fail the test loudly.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the trace file");
    writeln!(f, "{line}").expect("write the trace file");
}

impl Actor for Worker {
    type Args = Behaviour;
    type Msg = Cmd;
    type Event = Event;

    fn init_args(b: Behaviour) -> Result<Self, ActorError> {
        Ok(Worker { b, reply_to: None })
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        trace(&self.b.trace, &format!("startup {}", ctx.name()));
        if self.b.hang_startup_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.b.hang_startup_ms));
        }
        if self.b.fail_startup {
            return Err(ActorError::new("the device is not there"));
        }
        ctx.emit(Event::Started(ctx.name().to_string()))?;
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        if self.b.crash_at_once {
            panic!("crashing at once, as configured");
        }
        // A loop of its own only for the crash above; then the queue loop, with `handle`.
        loops::queue(self, ctx, Self::handle)
    }

    fn handle(&mut self, ctx: &mut Context<Self>, cmd: Cmd) -> Result<(), ActorError> {
        match cmd {
            Cmd::Work => std::thread::sleep(Duration::from_millis(self.b.slow_ms)),
            Cmd::Crash => panic!("crash requested"),
            Cmd::Ping => ctx.emit(Event::Pong(ctx.name().to_string()))?,
            Cmd::Ask { server } => server.send(Cmd::Remember {
                reply_to: ctx.myself(),
            })?,
            Cmd::Remember { reply_to } => {
                reply_to.send(Cmd::Reply(1))?;
                self.reply_to = Some(reply_to);
            }
            Cmd::Answer => match &self.reply_to {
                Some(to) => to.send(Cmd::Reply(2))?,
                None => return Err(ActorError::new("Answer before Remember")),
            },
            Cmd::Reply(n) => {
                trace(&self.b.trace, &format!("{} got reply {n}", ctx.name()));
                ctx.emit(Event::Replied(ctx.name().to_string(), n))?;
            }
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        trace(&self.b.trace, &format!("shutdown {}", ctx.name()));
    }
}

struct Args {
    isolation: Isolation,
    case: String,
    trace: PathBuf,
}

fn parse() -> Args {
    let mut isolation = Isolation::Processes;
    let mut case = String::new();
    let mut trace = PathBuf::from("trace.txt");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--isolation" => {
                isolation = match args.next().as_deref() {
                    Some("threads") => Isolation::Threads,
                    _ => Isolation::Processes,
                }
            }
            "--case" => case = args.next().unwrap_or_default(),
            "--trace" => trace = PathBuf::from(args.next().unwrap_or_default()),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(64);
            }
        }
    }
    Args {
        isolation,
        case,
        trace,
    }
}

fn main() -> ExitCode {
    let registry = Registry::new().register::<Worker>().run_if_child();
    let args = parse();
    let b = Behaviour {
        trace: args.trace.clone(),
        ..Behaviour::default()
    };
    let mut config = SystemConfig::new("ROOT").isolation(args.isolation);
    let permanent = ChildOptions::default().restart(Restart::Permanent);
    config = match args.case.as_str() {
        "rest_for_one" => config.strategy(Strategy::RestForOne),
        "one_for_all" => config.strategy(Strategy::OneForAll),
        "intensity" => config.intensity(2, Duration::from_secs(30)),
        "drain" => config
            .stop_timeout(Duration::from_millis(300))
            .kill_grace(Duration::from_millis(200)),
        _ => config,
    };
    let mut system = match System::<Event>::new(registry, config) {
        Ok(s) => s,
        Err(e) => {
            println!("start error: {e}");
            return ExitCode::from(2);
        }
    };

    let mut addrs: Vec<(String, Addr<Cmd>)> = Vec::new();
    let started: Result<(), actor_ipc::StartError> = (|| {
        match args.case.as_str() {
            "order" => {
                for name in ["A", "B", "C"] {
                    addrs.push((name.into(), system.spawn::<Worker>(name, b.clone())?));
                }
            }
            "drain" => {
                let slow = Behaviour {
                    slow_ms: 5,
                    ..b.clone()
                };
                addrs.push(("SLOW".into(), system.spawn::<Worker>("SLOW", slow)?));
            }
            "restart" => {
                addrs.push((
                    "CRASHER".into(),
                    system.spawn_with::<Worker>("CRASHER", b.clone(), permanent)?,
                ));
            }
            "intensity" => {
                let crash = Behaviour {
                    crash_at_once: true,
                    ..b.clone()
                };
                addrs.push((
                    "LOOPER".into(),
                    system.spawn_with::<Worker>("LOOPER", crash, permanent)?,
                ));
            }
            "rest_for_one" | "one_for_all" => {
                for name in ["A", "B", "C"] {
                    addrs.push((
                        name.into(),
                        system.spawn_with::<Worker>(name, b.clone(), permanent)?,
                    ));
                }
            }
            "myself" => {
                addrs.push((
                    "SERVER".into(),
                    system.spawn::<Worker>("SERVER", b.clone())?,
                ));
                addrs.push((
                    "ASKER".into(),
                    system.spawn_with::<Worker>("ASKER", b.clone(), permanent)?,
                ));
            }
            "startup_fails" => {
                let failing = Behaviour {
                    fail_startup: true,
                    ..b.clone()
                };
                system.spawn::<Worker>("FAILS", failing)?;
            }
            "startup_hangs" => {
                let hanging = Behaviour {
                    hang_startup_ms: 30_000,
                    ..b.clone()
                };
                let opts = ChildOptions::default().start_timeout(Duration::from_millis(300));
                system.spawn_with::<Worker>("HANGS", hanging, opts)?;
            }
            other => {
                eprintln!("unknown case {other}");
                std::process::exit(64);
            }
        }
        Ok(())
    })();
    if let Err(e) = started {
        // The system, dropped on return, stops what did start.
        println!("start error: {e}");
        return ExitCode::from(2);
    }

    let addr_of = |name: &str| {
        addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
    };
    match args.case.as_str() {
        "order" => system.request_stop("order checked"),
        "drain" => {
            let slow = addr_of("SLOW").expect("spawned");
            for _ in 0..1000 {
                if slow.send(Cmd::Work).is_err() {
                    println!("send failed");
                    return ExitCode::from(70);
                }
            }
            system.request_stop("flood sent");
        }
        "restart" => {
            let _ = addr_of("CRASHER").expect("spawned").send(Cmd::Crash);
        }
        "rest_for_one" | "one_for_all" => {
            let _ = addr_of("B").expect("spawned").send(Cmd::Crash);
        }
        "myself" => {
            let server = addr_of("SERVER").expect("spawned");
            let _ = addr_of("ASKER").expect("spawned").send(Cmd::Ask { server });
        }
        _ => {}
    }

    // Counts "started" events per actor: the first is the initial start, more are restarts.
    let mut starts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let case = args.case.clone();
    let summary = system.run(|root, _from, event| match event {
        Event::Started(name) => {
            *starts.entry(name.clone()).or_default() += 1;
            let n = starts[&name];
            match case.as_str() {
                "restart" if name == "CRASHER" && n == 2 => {
                    // The new incarnation answers through the same address.
                    let _ = addr_of("CRASHER").expect("spawned").send(Cmd::Ping);
                }
                "myself" if name == "ASKER" && n == 2 => {
                    // The address the first incarnation handed out reaches the second.
                    let _ = addr_of("SERVER").expect("spawned").send(Cmd::Answer);
                }
                "rest_for_one" | "one_for_all" if starts.get("C").copied().unwrap_or(0) >= 2 => {
                    root.request_stop("the restarted children are back")
                }
                _ => {}
            }
        }
        Event::Pong(_) => root.request_stop("the restarted actor answered"),
        Event::Replied(name, 1) => {
            // Its first incarnation got the reply at its own address: now it crashes.
            let _ = addr_of(&name).expect("spawned").send(Cmd::Crash);
        }
        Event::Replied(..) => root.request_stop("the reply reached the next incarnation"),
    });
    for a in &summary.actors {
        println!(
            "summary {} handled={} dead={} accepted={} restarts={} exit={}",
            a.name, a.handled, a.dead_letters, a.accepted, a.restarts, a.exit
        );
    }
    println!("reason {}", summary.reason);
    ExitCode::from(&summary)
}
