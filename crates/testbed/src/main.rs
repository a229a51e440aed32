//! mpactor-testbed: the scenario actors of the integration tests in `tests/`.
//!
//! Every test starts this binary as a real root process and injects faults from the outside
//! (signals, kills) or through the actors' `Args`. It also reads as an example of writing
//! actors: a queue worker with a recorded lifecycle, a flooding sender with a custom loop, a
//! timer actor, and a root that routes their events.
//!
//! ```text
//! mpactor-testbed <scenario> [options] [--child NAME[:key=value,...]]...
//!
//! scenarios
//!   run           start the --child actors in order and run until a signal, a failure,
//!                 exhausted restarts or a --stop-* condition
//!   send-stopped  a worker W with a mailbox of 8 is SIGSTOPped; the root sends to it until a
//!                 send_timeout (200 ms) fails, tries a try_send, then SIGCONTs it and stops
//!   decode        TEXT (an inbox of String) gets three u64s through a mistyped Addr, then
//!                 five good strings; then the system stops
//!
//! options
//!   --dir DIR               record file DIR/record.txt (lifecycle steps, faults) and markers
//!   --stop-timeout-ms N     the shared stop deadline          --kill-grace-ms N
//!   --start-timeout-ms N    the start deadline of every child
//!   --strategy S            one_for_one | one_for_all | rest_for_one
//!   --intensity N/MS        at most N restarts in MS milliseconds
//!   --stop-when-started     request the stop as soon as every child started
//!   --stop-when-sent        request the stop when a flood actor reports it is done
//!   --stop-after-ticks N    request the stop after N ticks of ticker actors
//!   --sample-at R           (repeatable) when a worker with `alive` starts its main loop after
//!                           R restarts or more, print the root's open fds and zombie children
//!                           (once per R); the stop is requested at the largest R
//!   --ignore-sigchld        set SIGCHLD to SIG_IGN once the children started (the kernel
//!                           then reaps them: the root must still see every end)
//!   --spawn-in-thread       build the system and start the children in a thread that then
//!                           exits, and run it from the main thread
//!   --threads               run every actor as a thread of the root (Isolation::Threads)
//!   --root-dependency       the root calls the `log`/`tracing` dependency too (see DEPENDENT)
//!   --spawn-at-tick N=CHILD (repeatable) at the N-th tick of a ticker, the root's handler
//!                           starts CHILD (the --child syntax): `spawned NAME pid=P`
//!   --stop-child-at-tick N=NAME  (repeatable) at the N-th tick, the handler stops NAME by
//!                           name: `stopped NAME exit=E accepted=A handled=H dead_letters=D`
//!                           or `stop failed: NAME: ERROR`
//!
//! child keys (kind=worker unless said otherwise)
//!   kind=worker|flood|ticker|text|chatter|dependent    restart=permanent|transient|temporary|stop_system
//!   capacity=N   start_timeout_ms=N   max_bytes=N (the largest message it takes, encoded)
//!   root_sends=N (worker: the root sends it N messages once it started: `root sent NAME=N`)
//!   worker: startup=ok|fail|panic|hang|exit:N|sleep:MS
//!           fault=return|error|panic|exit:N|abort|segv|ignore-stop  after=MS  once
//!           handle_ms=N  shutdown_ms=N  alive  tag=T  note_at=N (record `message_N`)
//!   flood:  to=NAME (an earlier worker)  count=N (0: until stopped)  every_ms=N
//!   ticker: every_ms=N          chatter: every_ms=N (an INFO line every tick)
//!   dependent: calls a dependency that logs with `log` and `tracing` in its startup
//!   kind=sink      payloads of bytes (large messages, in large.rs): note_every=N handle_ms=N
//!   kind=bigflood  to=NAME (an earlier sink)  size=N (bytes per payload)  count=N (0: until
//!                  stopped)  every_ms=N  mailbox_bytes=N (any kind: the byte budget)
//!   --sample-memfds         print the root's memfd descriptors and mappings once the children
//!                           started and again after the summary (`memfds root when=...`)
//! ```
//!
//! stdout, for the tests to read: `spawn failed: NAME after_ms=N: ERROR`, `sent NAME=N`,
//! `sample at=R restarts=N fds=N zombies=Z`, one `summary NAME pid=P exit=E accepted=A handled=H
//! dead_letters=D lost=L unsent=U decode_failures=F refused=X restarts=R` per actor, then `reason TEXT` and
//! `exit_code N stop_ms N`.

use mpactor::{
    flush_all, loops, slog, Actor, ActorError, Addr, ChildOptions, Context, ExitStatus, Recv,
    Registry, Restart, RootCtx, StartError, Strategy, Summary, System, SystemConfig,
};
use rustix::process::{getpid, kill_process, Signal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod large;

/// What the actors report to the root.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    /// A flood actor is done: this many of its sends were accepted.
    Sent(u64),
    /// A ticker's tick.
    Tick(u64),
    /// A worker with `alive` entered its main loop.
    Alive,
}

// ---------------------------------------------------------------------------------------------
// The record file: lifecycle steps and faults, from every process, in the order they happened.

/// Appends `line` to the record file. One `write` on an `O_APPEND` file: lines written by
/// different processes never interleave.
fn record(path: &Option<PathBuf>, line: &str) {
    let Some(path) = path else { return };
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    match opened {
        Ok(mut f) => {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        Err(e) => eprintln!("testbed: cannot record to {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// WORKER: a queue actor whose misbehaviour is chosen by its Args.

/// How `startup` behaves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Startup {
    #[default]
    Ok,
    /// Returns an error.
    Fail,
    Panic,
    /// Never returns (ignores everything).
    Hang,
    /// Ends the process with this code.
    Exit(i32),
    /// Takes this many milliseconds (a slow start, for signals during a spawn).
    Sleep(u64),
}

/// What the worker does `after` milliseconds in its main loop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum Fault {
    #[default]
    None,
    /// Leaves `main_loop` with Ok: a clean exit that nobody asked for.
    Return,
    /// Leaves `main_loop` with an error.
    Error,
    Panic,
    /// `std::process::exit(N)`.
    Exit(i32),
    /// `std::process::abort()`: killed by SIGABRT.
    Abort,
    /// A real segmentation fault: killed by SIGSEGV.
    Segv,
    /// Never looks at its inbox or the stop flag again (sleeps in short naps rather than
    /// spinning, not to starve the other tests of the 2-core machine; to the runtime it is the
    /// same: a process that does not stop when asked).
    IgnoreStop,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WorkerArgs {
    /// The actor's name (the record lines carry it; `init_args` has no context yet).
    name: String,
    /// A value that must be the same in every incarnation.
    tag: String,
    record: Option<PathBuf>,
    startup: Startup,
    fault: Fault,
    fault_after_ms: u64,
    /// Fault in the first incarnation only (a marker file beside the record file says so).
    once: bool,
    /// Time spent on each message.
    handle_ms: u64,
    /// Record `message_N` when the N-th message arrives (0: never).
    note_at: u64,
    /// Time spent in `shutdown`.
    shutdown_ms: u64,
    /// Report `Event::Alive` when entering the main loop.
    alive: bool,
}

struct Worker {
    args: WorkerArgs,
    /// Messages this incarnation got.
    seen: u64,
}

impl Worker {
    fn note(&self, step: &str) {
        record(
            &self.args.record,
            &format!(
                "{} {step} pid={} tag={}",
                self.args.name,
                std::process::id(),
                self.args.tag
            ),
        );
    }

    /// False once the fault happened in an earlier incarnation of a `once` worker.
    fn fault_armed(&self) -> bool {
        if self.args.fault == Fault::None {
            return false;
        }
        if !self.args.once {
            return true;
        }
        let Some(dir) = self.args.record.as_deref().and_then(Path::parent) else {
            return true;
        };
        let marker = dir.join(format!("{}.faulted", self.args.name));
        // create_new: exactly one incarnation wins.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(marker)
            .is_ok()
    }

    fn fault(&self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        // The time of the fault on the application clock, written synchronously (the log is
        // asynchronous and would lose its last lines to an abort): the tests compare it with
        // the root's "ended" line to see how fast the root noticed.
        let at_ms = ctx.clock().elapsed().as_secs_f64() * 1000.0;
        self.note(&format!("fault {:?} at_ms={at_ms:.3}", self.args.fault));
        match &self.args.fault {
            Fault::None => Ok(()),
            Fault::Return => Ok(()),
            // Through `?`, as actor code meets a library's error: its source chain is kept.
            Fault::Error => Err(Injected {
                actor: self.args.name.clone(),
                source: std::io::Error::other("the disk is on fire"),
            })?,
            Fault::Panic => panic!("injected panic in {}", self.args.name),
            Fault::Exit(code) => std::process::exit(*code),
            Fault::Abort => {
                no_core_dump();
                std::process::abort()
            }
            Fault::Segv => {
                no_core_dump();
                // Rust's own SIGSEGV handler (stack-overflow detection) is replaced by the
                // default action first, so the process dies exactly as on a wild pointer.
                // (An actor's process has it already; an actor running as a thread of the
                // root, with --threads, does not.)
                // SAFETY: signal(2) with the default disposition: no handler runs.
                unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
                let _ = kill_process(getpid(), Signal::SEGV);
                Err(ActorError::new("SIGSEGV did not end the process"))
            }
            Fault::IgnoreStop => {
                // Tests wait for this line before they ask for the stop: one that arrives
                // before the main loop is reached is honoured (the loop is never entered).
                slog::info!(ctx.log(), "ignoring stop requests from now on");
                loop {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// A crash must not leave a core file behind (nor spend time writing it).
fn no_core_dump() {
    let zero = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, zero);
}

impl Actor for Worker {
    type Args = WorkerArgs;
    type Msg = u64;
    type Event = Event;

    fn init_args(args: WorkerArgs) -> Result<Self, ActorError> {
        let worker = Worker { args, seen: 0 };
        worker.note("init_args");
        Ok(worker)
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.note("startup");
        match self.args.startup {
            Startup::Ok => Ok(()),
            Startup::Fail => Err(ActorError::new("no configuration").with_cause(
                std::io::Error::new(std::io::ErrorKind::NotFound, "worker.toml not found"),
            )),
            Startup::Panic => panic!("startup panicked in {}", self.args.name),
            Startup::Hang => loop {
                std::thread::sleep(Duration::from_millis(10));
            },
            Startup::Exit(code) => std::process::exit(code),
            Startup::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            }
        }
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.note("main_loop");
        if self.args.alive {
            ctx.emit(Event::Alive)?;
            // Events leave through a writer thread: make sure this one is out before a fault
            // that ends the process without running anything (exit, abort).
            flush_all(Instant::now() + Duration::from_secs(1));
        }
        let fault_at = self
            .fault_armed()
            .then(|| Instant::now() + Duration::from_millis(self.args.fault_after_ms));
        loop {
            let now = Instant::now();
            if fault_at.is_some_and(|at| now >= at) {
                return self.fault(ctx);
            }
            let wait = fault_at
                .map(|at| at - now)
                .unwrap_or(loops::QUEUE_POLL)
                .min(loops::QUEUE_POLL);
            match ctx.recv(wait) {
                Recv::Msg(_) => {
                    self.seen += 1;
                    if self.seen == 1 {
                        self.note("first_message");
                    }
                    if self.seen == self.args.note_at {
                        self.note(&format!("message_{}", self.seen));
                    }
                    if self.args.handle_ms > 0 {
                        std::thread::sleep(Duration::from_millis(self.args.handle_ms));
                    }
                }
                Recv::Timeout => {}
                Recv::Stop => {
                    self.note("stop");
                    return Ok(());
                }
            }
        }
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.args.shutdown_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.args.shutdown_ms));
        }
        slog::debug!(ctx.log(), "handled {}", ctx.handled());
        self.note("shutdown");
    }
}

// ---------------------------------------------------------------------------------------------
// FLOOD: a custom loop that sends numbers to a worker until done or asked to stop.

#[derive(Clone, Serialize, Deserialize)]
struct FloodArgs {
    to: Addr<u64>,
    /// 0: until stopped.
    count: u64,
    /// Pause between sends (0: as fast as the mailbox takes them).
    every_ms: u64,
}

struct Flood {
    args: FloodArgs,
}

impl Actor for Flood {
    type Args = FloodArgs;
    type Msg = ();
    type Event = Event;

    fn init_args(args: FloodArgs) -> Result<Self, ActorError> {
        Ok(Flood { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let mut sent = 0;
        while !ctx.should_stop() && (self.args.count == 0 || sent < self.args.count) {
            // Bounded: a full mailbox (its actor down or slow) brings us back here to look at
            // the stop flag; any other error (the actor gone for good) ends this actor.
            match self.args.to.send_timeout(sent, Duration::from_millis(100)) {
                Ok(()) => sent += 1,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(e.into()),
            }
            if self.args.every_ms > 0 {
                // Waits on the (empty) inbox rather than sleeping: a stop is seen at once.
                if let Recv::Stop = ctx.recv(Duration::from_millis(self.args.every_ms)) {
                    break;
                }
            }
        }
        slog::info!(ctx.log(), "sent {sent} messages");
        ctx.emit(Event::Sent(sent))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// TICKER: a timer actor; as a chatter, it logs a line at INFO every tick instead of reporting
// it (a log-heavy actor).

struct Ticker {
    every: Duration,
    ticks: u64,
    chatty: bool,
}

impl Actor for Ticker {
    /// The interval in milliseconds, and whether it chatters.
    type Args = (u64, bool);
    type Msg = ();
    type Event = Event;

    fn init_args((every_ms, chatty): (u64, bool)) -> Result<Self, ActorError> {
        Ok(Ticker {
            every: Duration::from_millis(every_ms.max(1)),
            ticks: 0,
            chatty,
        })
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.every)
    }

    fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.ticks += 1;
        if self.chatty {
            slog::info!(
                ctx.log(),
                "chatter line {} with some words to make it as long as a real log line",
                self.ticks
            );
            Ok(())
        } else {
            Ok(ctx.emit(Event::Tick(self.ticks))?)
        }
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// TEXT: a queue actor of strings (the target of the mistyped Addr in `decode`).

struct Text;

impl Actor for Text {
    type Args = ();
    type Msg = String;
    type Event = Event;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Text)
    }

    fn handle(&mut self, ctx: &mut Context<Self>, line: Self::Msg) -> Result<(), ActorError> {
        slog::debug!(ctx.log(), "got {line:?}");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// DEPENDENT: an actor whose dependency logs through the `log` and `tracing` crates, not slog.

/// Stands for a library that knows nothing of mpactor: it logs with `log` and `tracing` (its
/// records' target is this module's path, `mpactor_testbed::dependency`).
mod dependency {
    /// One warning and one debug line through each crate, the `tracing` event inside a span.
    pub fn work(caller: &str) {
        log::warn!("log warning from a dependency, called by {caller}");
        log::debug!("log debug line from a dependency, called by {caller}");
        let span = tracing::info_span!("dependency_work", caller);
        let _entered = span.enter();
        tracing::warn!(
            attempt = 3u64,
            cold = true,
            "tracing warning from a dependency, called by {caller}"
        );
        tracing::debug!("tracing debug line from a dependency, called by {caller}");
    }
}

struct Dependent;

impl Actor for Dependent {
    type Args = String;
    type Msg = ();
    type Event = Event;

    fn init_args(_: String) -> Result<Self, ActorError> {
        Ok(Dependent)
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        dependency::work(ctx.name());
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Worker,
    Flood,
    Ticker,
    Text,
    Chatter,
    Dependent,
    Sink,
    BigFlood,
}

#[derive(Debug, Clone)]
struct ChildSpec {
    name: String,
    kind: Kind,
    options: ChildOptions,
    worker: WorkerArgs,
    to: Option<String>,
    count: u64,
    every_ms: u64,
    size: usize,
    note_every: u64,
    /// Messages the root sends a worker as soon as it started.
    root_sends: u64,
}

#[derive(Debug, Default)]
struct Opts {
    scenario: String,
    dir: Option<PathBuf>,
    stop_timeout_ms: Option<u64>,
    kill_grace_ms: Option<u64>,
    start_timeout_ms: Option<u64>,
    strategy: Strategy,
    intensity: Option<(u32, u64)>,
    stop_when_started: bool,
    stop_when_sent: bool,
    stop_after_ticks: Option<u64>,
    sample_at: Vec<u32>,
    /// Children started at run time: (tick, child), in the order given.
    spawn_at: Vec<(u64, ChildSpec)>,
    /// Children stopped by name at run time: (tick, name).
    stop_child_at: Vec<(u64, String)>,
    sample_memfds: bool,
    spawn_in_thread: bool,
    ignore_sigchld: bool,
    threads: bool,
    root_dependency: bool,
    children: Vec<ChildSpec>,
}

impl Opts {
    fn record_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("record.txt"))
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not a number"))
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts {
        scenario: argv
            .next()
            .ok_or("no scenario (run, send-stopped, decode)")?,
        ..Opts::default()
    };
    let mut specs = Vec::new();
    let mut spawn_specs = Vec::new();
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => opts.dir = Some(PathBuf::from(value()?)),
            "--stop-timeout-ms" => opts.stop_timeout_ms = Some(number(&flag, &value()?)?),
            "--kill-grace-ms" => opts.kill_grace_ms = Some(number(&flag, &value()?)?),
            "--start-timeout-ms" => opts.start_timeout_ms = Some(number(&flag, &value()?)?),
            "--strategy" => {
                opts.strategy = match value()?.as_str() {
                    "one_for_one" => Strategy::OneForOne,
                    "one_for_all" => Strategy::OneForAll,
                    "rest_for_one" => Strategy::RestForOne,
                    other => return Err(format!("unknown strategy {other:?}")),
                }
            }
            "--intensity" => {
                let v = value()?;
                let (n, ms) = v.split_once('/').ok_or("--intensity N/MS")?;
                opts.intensity = Some((number(&flag, n)?, number(&flag, ms)?));
            }
            "--stop-when-started" => opts.stop_when_started = true,
            "--stop-when-sent" => opts.stop_when_sent = true,
            "--stop-after-ticks" => opts.stop_after_ticks = Some(number(&flag, &value()?)?),
            "--sample-at" => opts.sample_at.push(number(&flag, &value()?)?),
            "--spawn-in-thread" => opts.spawn_in_thread = true,
            "--ignore-sigchld" => opts.ignore_sigchld = true,
            "--threads" => opts.threads = true,
            "--root-dependency" => opts.root_dependency = true,
            "--sample-memfds" => opts.sample_memfds = true,
            "--child" => specs.push(value()?),
            "--spawn-at-tick" => {
                let v = value()?;
                let (tick, spec) = v.split_once('=').ok_or("--spawn-at-tick N=CHILD")?;
                spawn_specs.push((number(&flag, tick)?, spec.to_string()));
            }
            "--stop-child-at-tick" => {
                let v = value()?;
                let (tick, name) = v.split_once('=').ok_or("--stop-child-at-tick N=NAME")?;
                opts.stop_child_at
                    .push((number(&flag, tick)?, name.to_string()));
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    for spec in specs {
        let child = parse_child(&spec, &opts)?;
        opts.children.push(child);
    }
    for (tick, spec) in spawn_specs {
        let child = parse_child(&spec, &opts)?;
        opts.spawn_at.push((tick, child));
    }
    Ok(opts)
}

fn parse_child(spec: &str, opts: &Opts) -> Result<ChildSpec, String> {
    let (name, keys) = spec.split_once(':').unwrap_or((spec, ""));
    let mut options = ChildOptions::default();
    if let Some(ms) = opts.start_timeout_ms {
        options = options.start_timeout(Duration::from_millis(ms));
    }
    let mut child = ChildSpec {
        name: name.to_string(),
        kind: Kind::Worker,
        options,
        worker: WorkerArgs {
            name: name.to_string(),
            record: opts.record_file(),
            ..WorkerArgs::default()
        },
        to: None,
        count: 0,
        every_ms: 0,
        size: 0,
        note_every: 0,
        root_sends: 0,
    };
    for key in keys.split(',').filter(|k| !k.is_empty()) {
        let (k, v) = key.split_once('=').unwrap_or((key, ""));
        let w = &mut child.worker;
        match k {
            "kind" => {
                child.kind = match v {
                    "worker" => Kind::Worker,
                    "flood" => Kind::Flood,
                    "ticker" => Kind::Ticker,
                    "text" => Kind::Text,
                    "chatter" => Kind::Chatter,
                    "dependent" => Kind::Dependent,
                    "sink" => Kind::Sink,
                    "bigflood" => Kind::BigFlood,
                    other => return Err(format!("unknown kind {other:?}")),
                }
            }
            "restart" => {
                child.options = child.options.restart(match v {
                    "permanent" => Restart::Permanent,
                    "transient" => Restart::Transient,
                    "temporary" => Restart::Temporary,
                    "stop_system" => Restart::StopSystemOnFailure,
                    other => return Err(format!("unknown restart type {other:?}")),
                })
            }
            "capacity" => child.options = child.options.mailbox_capacity(number(k, v)?),
            "max_bytes" => child.options = child.options.max_message_bytes(number(k, v)?),
            "start_timeout_ms" => {
                child.options = child
                    .options
                    .start_timeout(Duration::from_millis(number(k, v)?))
            }
            "startup" => {
                w.startup = match v.split_once(':') {
                    Some(("exit", code)) => Startup::Exit(number(k, code)?),
                    Some(("sleep", ms)) => Startup::Sleep(number(k, ms)?),
                    _ => match v {
                        "ok" => Startup::Ok,
                        "fail" => Startup::Fail,
                        "panic" => Startup::Panic,
                        "hang" => Startup::Hang,
                        other => return Err(format!("unknown startup {other:?}")),
                    },
                }
            }
            "fault" => {
                w.fault = match v.split_once(':') {
                    Some(("exit", code)) => Fault::Exit(number(k, code)?),
                    _ => match v {
                        "return" => Fault::Return,
                        "error" => Fault::Error,
                        "panic" => Fault::Panic,
                        "abort" => Fault::Abort,
                        "segv" => Fault::Segv,
                        "ignore-stop" => Fault::IgnoreStop,
                        other => return Err(format!("unknown fault {other:?}")),
                    },
                }
            }
            "after" => w.fault_after_ms = number(k, v)?,
            "once" => w.once = true,
            "handle_ms" => w.handle_ms = number(k, v)?,
            "note_at" => w.note_at = number(k, v)?,
            "shutdown_ms" => w.shutdown_ms = number(k, v)?,
            "alive" => w.alive = true,
            "tag" => w.tag = v.to_string(),
            "to" => child.to = Some(v.to_string()),
            "count" => child.count = number(k, v)?,
            "every_ms" => child.every_ms = number(k, v)?,
            "size" => child.size = number(k, v)?,
            "note_every" => child.note_every = number(k, v)?,
            "root_sends" => child.root_sends = number(k, v)?,
            "mailbox_bytes" => child.options = child.options.mailbox_bytes(number(k, v)?),
            other => return Err(format!("unknown child key {other:?} in {spec:?}")),
        }
    }
    Ok(child)
}

// ---------------------------------------------------------------------------------------------
// The root.

fn config(opts: &Opts) -> SystemConfig {
    let mut config = SystemConfig::new("ROOT").strategy(opts.strategy);
    if let Some(ms) = opts.stop_timeout_ms {
        config = config.stop_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = opts.kill_grace_ms {
        config = config.kill_grace(Duration::from_millis(ms));
    }
    if let Some((n, ms)) = opts.intensity {
        config = config.intensity(n, Duration::from_millis(ms));
    }
    if opts.threads {
        config = config.isolation(mpactor::Isolation::Threads);
    }
    config
}

/// A start failure, printed for the tests with the time the failed start took.
fn spawn_failed(name: &str, t0: Instant, e: &StartError) {
    println!(
        "spawn failed: {name} after_ms={}: {e}",
        t0.elapsed().as_millis()
    );
}

/// The addresses of the children started so far, by name: a flood's or a bigflood's `to=`
/// names an earlier worker or sink, and the root sends to workers (`root_sends`).
#[derive(Default)]
struct Known {
    workers: HashMap<String, Addr<u64>>,
    sinks: HashMap<String, Addr<large::Payload>>,
}

/// What starts a child: the system before `run`, or the root's context during it (both
/// offer the same `spawn_with`).
trait Spawner {
    fn spawn_with<A: Actor<Event = Event>>(
        &mut self,
        name: &str,
        args: A::Args,
        options: ChildOptions,
    ) -> Result<Addr<A::Msg>, StartError>;
}

impl Spawner for System<Event> {
    fn spawn_with<A: Actor<Event = Event>>(
        &mut self,
        name: &str,
        args: A::Args,
        options: ChildOptions,
    ) -> Result<Addr<A::Msg>, StartError> {
        System::spawn_with::<A>(self, name, args, options)
    }
}

impl Spawner for RootCtx<'_, Event> {
    fn spawn_with<A: Actor<Event = Event>>(
        &mut self,
        name: &str,
        args: A::Args,
        options: ChildOptions,
    ) -> Result<Addr<A::Msg>, StartError> {
        RootCtx::spawn_with::<A>(self, name, args, options)
    }
}

/// Starts every child of `opts` in order. On a failed start the system is handed back too,
/// so that dropping it stops the children that did start.
fn start_children(system: &mut System<Event>, opts: &Opts) -> Result<Known, StartError> {
    let mut known = Known::default();
    for child in &opts.children {
        start_child(system, child, &mut known)?;
    }
    Ok(known)
}

/// Starts one child (printing a failure), then sends it its `root_sends` messages.
fn start_child(
    spawner: &mut impl Spawner,
    child: &ChildSpec,
    known: &mut Known,
) -> Result<(), StartError> {
    let t0 = Instant::now();
    let name = child.name.as_str();
    let started = match child.kind {
        Kind::Worker => spawner
            .spawn_with::<Worker>(name, child.worker.clone(), child.options)
            .map(|addr| {
                known.workers.insert(name.to_string(), addr);
            }),
        Kind::Flood => {
            let target = child.to.as_deref().unwrap_or_default();
            let Some(to) = known.workers.get(target).cloned() else {
                return Err(StartError::Bootstrap {
                    actor: name.to_string(),
                    source: format!("to={target:?} names no earlier worker").into(),
                });
            };
            let args = FloodArgs {
                to,
                count: child.count,
                every_ms: child.every_ms,
            };
            spawner
                .spawn_with::<Flood>(name, args, child.options)
                .map(|_| ())
        }
        Kind::Ticker => spawner
            .spawn_with::<Ticker>(name, (child.every_ms, false), child.options)
            .map(|_| ()),
        Kind::Text => spawner
            .spawn_with::<Text>(name, (), child.options)
            .map(|_| ()),
        Kind::Chatter => spawner
            .spawn_with::<Ticker>(name, (child.every_ms, true), child.options)
            .map(|_| ()),
        Kind::Dependent => spawner
            .spawn_with::<Dependent>(name, String::new(), child.options)
            .map(|_| ()),
        Kind::Sink => {
            let args = large::SinkArgs {
                name: name.to_string(),
                record: child.worker.record.clone(),
                note_every: child.note_every,
                handle_ms: child.worker.handle_ms,
            };
            spawner
                .spawn_with::<large::Sink>(name, args, child.options)
                .map(|addr| {
                    known.sinks.insert(name.to_string(), addr);
                })
        }
        Kind::BigFlood => {
            let target = child.to.as_deref().unwrap_or_default();
            let Some(to) = known.sinks.get(target).cloned() else {
                return Err(StartError::Bootstrap {
                    actor: name.to_string(),
                    source: format!("to={target:?} names no earlier sink").into(),
                });
            };
            let args = large::BigFloodArgs {
                name: name.to_string(),
                record: child.worker.record.clone(),
                to,
                size: child.size,
                count: child.count,
                every_ms: child.every_ms,
            };
            spawner
                .spawn_with::<large::BigFlood>(name, args, child.options)
                .map(|_| ())
        }
    };
    if let Err(e) = started {
        spawn_failed(name, t0, &e);
        return Err(e);
    }
    if child.root_sends > 0 {
        let mut sent = 0;
        if let Some(to) = known.workers.get(name) {
            for n in 0..child.root_sends {
                match to.send(n) {
                    Ok(()) => sent += 1,
                    Err(e) => println!("root send to {name} failed: {e}"),
                }
            }
        }
        println!("root sent {name}={sent}");
    }
    Ok(())
}

/// The root's open descriptors and its zombie children (other than `current`, which may be
/// between its death and the next watch), for the crash-loop scenario.
fn sample_process(at: u32, restarts: u32, current: u32) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let me = std::process::id().to_string();
    let mut zombies = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == current.to_string() {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the comm may hold spaces, so split after its ')'.
        let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        if rest.next() == Some("Z") && rest.next() == Some(me.as_str()) {
            zombies += 1;
        }
    }
    println!("sample at={at} restarts={restarts} fds={fds} zombies={zombies}");
}

fn exit_word(exit: &ExitStatus) -> String {
    match exit {
        ExitStatus::Code(c) => c.to_string(),
        ExitStatus::Signal(s) => mpactor::signals::signal_name(*s),
        ExitStatus::Running => "running".into(),
        ExitStatus::NotStarted => "not-started".into(),
        ExitStatus::Unknown => "unknown".into(),
    }
}

fn print_summary(summary: &Summary) {
    for a in &summary.actors {
        println!(
            "summary {} pid={} exit={} accepted={} handled={} dead_letters={} lost={} unsent={} decode_failures={} refused={} restarts={}",
            a.name,
            a.pid,
            exit_word(&a.exit),
            a.accepted,
            a.handled,
            a.dead_letters,
            a.lost_in_crash,
            a.unsent,
            a.decode_failures,
            a.refused,
            a.restarts
        );
    }
    println!("reason {}", summary.reason);
    println!(
        "exit_code {} stop_ms {}",
        summary.exit_code(),
        summary.stop_millis
    );
}

/// Runs the system, routing the actors' events by the options.
fn run(mut system: System<Event>, opts: &Opts, mut known: Known) -> i32 {
    if opts.ignore_sigchld {
        // What an application may do behind the runtime's back: the kernel then reaps every
        // child itself, and waitpid cannot say how one ended.
        // SAFETY: signal(2) with SIG_IGN, no handler involved.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        println!("sigchld ignored");
    }
    if opts.root_dependency {
        dependency::work("the root");
    }
    let sample_memfds = |when: &str| {
        if opts.sample_memfds {
            let (fds, maps) = large::memfds();
            println!("memfds root when={when} fds={fds} maps={maps}");
        }
    };
    sample_memfds("started");
    if opts.stop_when_started {
        system.request_stop("every child started");
    }
    let mut ticks = 0;
    let mut sampled = std::collections::HashSet::new();
    let last_sample = opts.sample_at.iter().copied().max();
    let summary = system.run(|root, from, event| match event {
        Event::Sent(n) => {
            println!("sent {from}={n}");
            if opts.stop_when_sent {
                root.request_stop(format!("{from} sent {n}"));
            }
        }
        Event::Tick(_) => {
            ticks += 1;
            for (_, child) in opts.spawn_at.iter().filter(|(at, _)| *at == ticks) {
                if start_child(root, child, &mut known).is_ok() {
                    let pid = root
                        .status()
                        .iter()
                        .find(|s| s.name == child.name)
                        .map_or(0, |s| s.pid);
                    println!("spawned {} pid={pid}", child.name);
                }
            }
            for (_, name) in opts.stop_child_at.iter().filter(|(at, _)| *at == ticks) {
                match root.stop_child(name) {
                    Ok(a) => println!(
                        "stopped {name} exit={} accepted={} handled={} dead_letters={}",
                        exit_word(&a.exit),
                        a.accepted,
                        a.handled,
                        a.dead_letters
                    ),
                    Err(e) => println!("stop failed: {name}: {e}"),
                }
            }
            if opts.stop_after_ticks.is_some_and(|n| ticks >= n) {
                root.request_stop(format!("{ticks} ticks"));
            }
        }
        Event::Alive => {
            let status = root.status();
            let Some(me) = status.iter().find(|s| s.name == from) else {
                return;
            };
            for at in &opts.sample_at {
                if me.restarts >= *at && sampled.insert(*at) {
                    sample_process(*at, me.restarts, me.pid);
                }
            }
            if last_sample.is_some_and(|last| me.restarts >= last) {
                root.request_stop(format!("{from} restarted {} times", me.restarts));
            }
        }
    });
    print_summary(&summary);
    sample_memfds("stopped");
    summary.exit_code()
}

fn scenario_run(registry: Registry, opts: &Opts) -> i32 {
    let build = {
        let config = config(opts);
        move |opts: &Opts| -> Result<(System<Event>, Known), i32> {
            let mut system = System::<Event>::new(registry, config).map_err(|e| {
                eprintln!("testbed: cannot start the root: {e}");
                2
            })?;
            // On a failed start the system is dropped here, which stops whatever did start; a
            // start cut short by a signal is no failure: the system runs, and stops in order.
            match start_children(&mut system, opts) {
                Ok(known) => Ok((system, known)),
                Err(e) if e.is_interrupted() => Ok((system, Known::default())),
                Err(_) => Err(2),
            }
        }
    };
    let built = if opts.spawn_in_thread {
        // The children are started from a thread that ends before the system runs: they must
        // not be signalled when it ends (PR_SET_PDEATHSIG follows the thread that forked).
        std::thread::scope(|s| {
            let handle = s.spawn(|| build(opts));
            handle.join().unwrap_or(Err(2))
        })
        .inspect(|_| println!("spawning thread exited"))
    } else {
        build(opts)
    };
    match built {
        Ok((system, known)) => run(system, opts, known),
        Err(code) => code,
    }
}

/// Moves a value through an ipc-channel as another type with the same encoding: how an
/// `Addr<String>` becomes an `Addr<u64>` pointing at the same inbox (Addr's serde form does
/// not carry the message type).
fn retype<A, B>(value: A) -> Result<B, String>
where
    A: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    let (tx, rx) = ipc_channel::ipc::channel::<A>().map_err(|e| e.to_string())?;
    tx.send(value).map_err(|e| e.to_string())?;
    let rx: ipc_channel::ipc::IpcReceiver<B> = rx.to_opaque().to();
    rx.try_recv_timeout(Duration::from_secs(2))
        .map_err(|e| format!("{e:?}"))
}

fn scenario_decode(registry: Registry, opts: &Opts) -> i32 {
    let mut system = match System::<Event>::new(registry, config(opts)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testbed: cannot start the root: {e}");
            return 2;
        }
    };
    let t0 = Instant::now();
    let text = match system.spawn::<Text>("TEXT", ()) {
        Ok(a) => a,
        Err(e) => {
            spawn_failed("TEXT", t0, &e);
            return 2;
        }
    };
    let wrong: Addr<u64> = match retype(text.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("testbed: cannot retype the address: {e}");
            return 2;
        }
    };
    for _ in 0..3 {
        if let Err(e) = wrong.send(1000) {
            println!("wrong send failed: {e}");
        }
    }
    // Into the socket before the good ones, so TEXT itself meets the bad frames.
    flush_all(Instant::now() + Duration::from_secs(2));
    for word in ["one", "two", "three", "four", "five"] {
        if let Err(e) = text.send(word.to_string()) {
            println!("good send failed: {e}");
        }
    }
    system.request_stop("sent everything");
    run(system, opts, Known::default())
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn scenario_send_stopped(registry: Registry, opts: &Opts) -> i32 {
    let mut system = match System::<Event>::new(registry, config(opts)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testbed: cannot start the root: {e}");
            return 2;
        }
    };
    let t0 = Instant::now();
    let args = WorkerArgs {
        name: "W".into(),
        ..WorkerArgs::default()
    };
    let w =
        match system.spawn_with::<Worker>("W", args, ChildOptions::default().mailbox_capacity(8)) {
            Ok(a) => a,
            Err(e) => {
                spawn_failed("W", t0, &e);
                return 2;
            }
        };
    let pid = system.status()[0].pid;
    let child = rustix::process::Pid::from_raw(pid as i32);
    if let Some(child) = child {
        let _ = kill_process(child, Signal::STOP);
    }
    let until = Instant::now() + Duration::from_secs(5);
    while proc_state(pid) != Some('T') && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("stopped W pid={pid} state={:?}", proc_state(pid));
    let timeout = Duration::from_millis(200);
    let mut accepted = 0u64;
    loop {
        let t = Instant::now();
        match w.send_timeout(accepted, timeout) {
            Ok(()) => accepted += 1,
            Err(e) => {
                println!(
                    "send_timeout error={e:?} after_ms={} accepted={accepted}",
                    t.elapsed().as_millis()
                );
                break;
            }
        }
        if accepted >= 10_000_000 {
            println!("send_timeout never failed");
            break;
        }
    }
    let t = Instant::now();
    let full = w.try_send(0);
    println!(
        "try_send error={:?} after_us={}",
        full.err(),
        t.elapsed().as_micros()
    );
    if let Some(child) = child {
        let _ = kill_process(child, Signal::CONT);
    }
    system.request_stop("sent to a stopped actor");
    run(system, opts, Known::default())
}

/// The error `fault=error` fails with: a library's error type, whose source is an I/O
/// error, so that the chain `injected error in W: the disk is on fire` must reach the logs
/// and the summary.
#[derive(Debug)]
struct Injected {
    actor: String,
    source: std::io::Error,
}

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected error in {}", self.actor)
    }
}

impl std::error::Error for Injected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn main() {
    // First: in a child process this runs the actor it was started for, and exits.
    let registry = Registry::new()
        .register::<Worker>()
        .register::<Flood>()
        .register::<Ticker>()
        .register::<Text>()
        .register::<Dependent>()
        .register::<large::Sink>()
        .register::<large::BigFlood>()
        .run_if_child();

    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("testbed: {e}");
            std::process::exit(64);
        }
    };
    let code = match opts.scenario.as_str() {
        "run" => scenario_run(registry, &opts),
        "send-stopped" => scenario_send_stopped(registry, &opts),
        "decode" => scenario_decode(registry, &opts),
        other => {
            eprintln!("testbed: unknown scenario {other:?}");
            64
        }
    };
    // Everything the root printed goes out before the exit.
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
