//! A worker pool that grows and shrinks while the system runs: children started and stopped
//! by the root's event handler (`RootCtx::spawn_with`, `RootCtx::stop_child`), as OTP's
//! DynamicSupervisor starts workers as work arrives.
//!
//! ```sh
//! cargo run --release --example pool -- --peak 4
//! # ... logs on stderr ...
//! # pool: spawned=4 stopped=4 jobs=N handled=N dead_letters=0 failed=0 peak=4
//! ```
//!
//! A LOAD actor (a timer) reports how many workers the current load needs: it climbs from 1 to
//! `--peak` and falls back to 0. The root starts a worker for every one missing and stops the
//! newest when there are too many; every tick it hands each worker a batch of jobs. Workers
//! are `Restart::Temporary` (OTP's meaning): one that fails is logged and counted, and the
//! pool runs on without it. When the load is back to 0 the root stops the system; the summary
//! has one line per worker that ever ran, and the final line adds them up.

use clap::Parser;
use mpactor::{
    slog, Actor, ActorError, Addr, ChildOptions, Context, Isolation, Registry, Restart, RootCtx,
    System, SystemConfig,
};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::Duration;

/// What the actors report to the root: the one event type of this system.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// The load needs this many workers.
    Load(usize),
}

/// Reports the load every `interval`: 1, 2, ... up to the peak, then down to 0.
struct LoadMeter {
    peak: usize,
    tick: usize,
}

impl Actor for LoadMeter {
    /// The peak.
    type Args = usize;
    type Msg = ();
    type Event = Event;

    fn init_args(peak: usize) -> Result<Self, ActorError> {
        Ok(LoadMeter { peak, tick: 0 })
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }

    fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.tick += 1;
        // Up to the peak over `peak` ticks, held for as long, then down.
        let (up, held) = (self.peak, 2 * self.peak);
        let load = if self.tick <= up {
            self.tick
        } else if self.tick <= held {
            self.peak
        } else {
            self.peak.saturating_sub(self.tick - held)
        };
        Ok(ctx.emit(Event::Load(load))?)
    }

    /// It takes no messages of its own.
    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Handles jobs (numbers) in its own process.
struct Worker {
    done: u64,
}

impl Actor for Worker {
    type Args = ();
    type Msg = u64;
    type Event = Event;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Worker { done: 0 })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, job: Self::Msg) -> Result<(), ActorError> {
        // Stands for real work: a little arithmetic per job.
        std::hint::black_box((0..1000u64).fold(job, |a, b| a.wrapping_mul(31) ^ b));
        self.done += 1;
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        slog::info!(ctx.log(), "did {} jobs", self.done);
    }
}

/// The pool as the root keeps it: its workers, newest last.
#[derive(Default)]
struct Pool {
    workers: Vec<(String, Addr<u64>)>,
    next: usize,
    spawned: usize,
    stopped: usize,
    jobs: u64,
    peak: usize,
}

impl Pool {
    /// Grows or shrinks the pool to `want` workers, then hands each a batch of jobs.
    fn on_load(&mut self, root: &mut RootCtx<'_, Event>, want: usize) {
        while self.workers.len() < want {
            self.next += 1;
            let name = format!("WORKER-{}", self.next);
            let options = ChildOptions::default().restart(Restart::Temporary);
            match root.spawn_with::<Worker>(&name, (), options) {
                Ok(addr) => {
                    self.spawned += 1;
                    self.workers.push((name, addr));
                }
                Err(e) => {
                    slog::error!(root.log(), "the pool cannot grow: {e}");
                    break;
                }
            }
        }
        while self.workers.len() > want {
            let Some((name, _)) = self.workers.pop() else {
                break;
            };
            match root.stop_child(&name) {
                Ok(gone) => {
                    self.stopped += 1;
                    slog::info!(root.log(), "{name} left the pool"; "handled" => gone.handled);
                }
                Err(e) => slog::warn!(root.log(), "{e}"),
            }
        }
        self.peak = self.peak.max(self.workers.len());
        for (_, worker) in &self.workers {
            for _ in 0..100 {
                // try_send: a full worker's batch is simply smaller (the load is what it is).
                if worker.try_send(self.jobs).is_ok() {
                    self.jobs += 1;
                }
            }
        }
        if want == 0 && self.spawned > 0 {
            root.request_stop("the load is back to 0");
        }
    }
}

/// Command line.
#[derive(Parser)]
#[command(about = "A worker pool that grows and shrinks with the load")]
struct Cli {
    /// The most workers the load asks for.
    #[arg(long, default_value_t = 4)]
    peak: usize,
    /// Run the same actors as threads of one process.
    #[arg(long)]
    threads: bool,
}

fn main() -> ExitCode {
    // First: in a child process this runs the actor it was started for and exits.
    let registry = Registry::new()
        .register::<LoadMeter>()
        .register::<Worker>()
        .run_if_child();
    let cli = Cli::parse();
    let isolation = if cli.threads {
        Isolation::Threads
    } else {
        Isolation::Processes
    };
    let config = SystemConfig::new("POOL").isolation(isolation);
    let mut system = match System::<Event>::new(registry, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pool: cannot start the root: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = system.spawn::<LoadMeter>("LOAD", cli.peak.max(1)) {
        eprintln!("pool: {e}");
        return ExitCode::from(2);
    }
    let mut pool = Pool::default();
    let summary = system.run(|root, _from, Event::Load(want)| pool.on_load(root, want));

    let workers = summary
        .actors
        .iter()
        .filter(|a| a.name.starts_with("WORKER-"));
    let (handled, dead_letters) =
        workers.fold((0, 0), |(h, d), a| (h + a.handled, d + a.dead_letters));
    println!(
        "pool: spawned={} stopped={} jobs={} handled={handled} dead_letters={dead_letters} failed={} peak={}",
        pool.spawned,
        pool.stopped,
        pool.jobs,
        summary.failed().count(),
        pool.peak
    );
    ExitCode::from(&summary)
}
