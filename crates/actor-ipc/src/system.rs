//! [`System`]: the root supervisor. It starts children in order, watches them, restarts or
//! stops them by policy, and on a stop closes and drains every mailbox.

use crate::child::Registry;
use crate::slot::{Running, SlotOps, StartEnv, StartError, TypedSlot, Watch};
use crate::sys::process;
use crate::threads::ThreadSlot;
use crate::transport::inbox::IpcInbox;
use crate::transport::wake::RootWake;
use crate::transport::{flush_all, Addr};
use crate::wire::counters::Counters;
use actor_core::signals::signal_name;
use actor_core::supervision::WATCH_POLL;
use actor_core::{
    log, signals, Actor, ActorSummary, AppClock, ChildOptions, ExitStatus, InboxPort,
    IntensityTracker, Isolation, Recv, Report, StopReason, Summary, SystemConfig,
};
use crossbeam_channel::Receiver;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A supervised child as the root keeps it.
struct Slot {
    name: String,
    options: ChildOptions,
    ops: Box<dyn SlotOps>,
    running: Option<Running>,
    last_pid: u32,
    last_exit: ExitStatus,
    last_error: Option<String>,
    restarts: u32,
    /// Ended and not restarted: its inbox is closed for senders.
    ended: bool,
    /// Stopped on its own ([`System::stop_child`]), or ended and its name taken again: its
    /// inbox is drained and closed, it is no longer a current child, only a summary line.
    retired: bool,
    lost_seen: u64,
    /// The supervisor itself is stopping this incarnation (to restart it with a sibling):
    /// its exit is expected and must not trigger its restart policy.
    stopping_for_restart: bool,
}

/// A child's state as the root's live view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorStatus {
    /// The actor's name.
    pub name: String,
    /// Its current (or last) pid.
    pub pid: u32,
    /// Running, being restarted, or ended for good.
    pub state: ActorState,
    /// Messages handed to it so far (all incarnations).
    pub handled: u64,
    /// How often it was restarted.
    pub restarts: u32,
    /// How long its current process has run.
    pub uptime: Duration,
}

/// Where a child is in its life, as [`ActorStatus`] shows it.
///
/// ```
/// use actor_ipc::ActorState;
/// assert_eq!(ActorState::Restarting.to_string(), "restarting");
/// assert_eq!(ActorState::Ended.as_str(), "ended");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorState {
    /// A process (or thread) of it is running.
    Running,
    /// Its last incarnation ended and its restart policy will start another.
    Restarting,
    /// Ended and not restarted: its inbox is closed for senders.
    Ended,
}

impl ActorState {
    /// `running`, `restarting` or `ended`: the word the logs and the HVAC status use.
    pub fn as_str(&self) -> &'static str {
        match self {
            ActorState::Running => "running",
            ActorState::Restarting => "restarting",
            ActorState::Ended => "ended",
        }
    }
}

impl std::fmt::Display for ActorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the root's event handler gets besides the event: a way to stop the system, the
/// logger, a live view of the children, and the children themselves: start one
/// ([`RootCtx::spawn`]) or stop one ([`RootCtx::stop_child`]) while the system runs.
///
/// `E` is the system's event type, the one every actor's [`Actor::Event`] must be.
///
/// The handler may ask an actor a question with [`Addr::ask`] on an address it holds (the
/// root's loop waits for the answer, at most the ask's deadline):
///
/// ```no_run
/// # use actor_ipc::{Addr, ReplyTo, System};
/// # use std::time::Duration;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # enum Kv { Len { reply: ReplyTo<usize> } }
/// # fn demo(system: System<()>, kv: Addr<Kv>) {
/// let summary = system.run(|root, from, ()| {
///     match kv.ask(|reply| Kv::Len { reply }, Duration::from_millis(500)) {
///         Ok(n) => slog::info!(root.log(), "{from} is done; the store holds {n} keys"),
///         Err(e) => slog::warn!(root.log(), "no answer from the store: {e}"),
///     }
///     root.request_stop("done");
/// });
/// # }
/// ```
pub struct RootCtx<'a, E: Send + 'static> {
    system: &'a mut System<E>,
}

impl<E> RootCtx<'_, E>
where
    E: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    /// Asks the system to stop cleanly (exit code 0).
    pub fn request_stop(&mut self, why: impl Into<String>) {
        self.system.request_stop(why);
    }

    /// Stops the system because `actor` reported a failure it cannot carry on from (mptools'
    /// FATAL event): the stop is as orderly as any other, but it is logged as a failure and
    /// the root's exit code is 2 ([`StopReason::Fatal`]).
    pub fn request_fatal_stop(&mut self, actor: impl Into<String>, error: impl Into<String>) {
        if self.system.stop.is_none() {
            self.system.stop = Some(StopReason::Fatal {
                actor: actor.into(),
                error: error.into(),
            });
        }
    }

    /// The root's logger.
    pub fn log(&self) -> &slog::Logger {
        &self.system.log
    }

    /// Each child, in start order, with its pid, state, counts and uptime (children stopped
    /// with [`RootCtx::stop_child`] are gone from it).
    pub fn status(&self) -> Vec<ActorStatus> {
        self.system.status()
    }

    /// Starts actor `A` as `name` while the system runs, with the default [`ChildOptions`];
    /// see [`RootCtx::spawn_with`].
    ///
    /// ```no_run
    /// # use actor_ipc::{Registry, System};
    /// # use actor_core::{Actor, ActorError, Context, SystemConfig};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # enum Event { Job(u64) }
    /// # struct Worker;
    /// # impl Actor for Worker {
    /// #     type Args = (); type Msg = u64; type Event = Event;
    /// #     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Worker) }
    /// #     fn handle(&mut self, _: &mut Context<Self>, _: u64) -> Result<(), ActorError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let registry = Registry::new().register::<Worker>().run_if_child();
    /// let system = System::<Event>::new(registry, SystemConfig::new("MAIN"))?;
    /// // One worker per job, started as the jobs arrive (a DynamicSupervisor's start_child).
    /// let summary = system.run(|root, _from, Event::Job(n)| {
    ///     match root.spawn::<Worker>(&format!("JOB-{n}"), ()) {
    ///         Ok(worker) => { let _ = worker.send(n); }
    ///         Err(e) => slog::error!(root.log(), "{e}"),
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub fn spawn<A: Actor<Event = E>>(
        &mut self,
        name: &str,
        args: A::Args,
    ) -> Result<Addr<A::Msg>, StartError> {
        self.system.spawn::<A>(name, args)
    }

    /// Starts actor `A` as `name` with these options while the system runs, and waits until
    /// its `startup` succeeded (the root's loop waits with it, at most the child's start
    /// deadline). From then on it is a child like those started before [`System::run`]: its
    /// restart type applies, it is stopped before every child started earlier (the reverse
    /// start order), and its mailbox is drained and counted in the summary.
    ///
    /// Fails like [`System::spawn_with`]; besides, once the system is stopping, with
    /// [`StartError::SystemStopping`]. A failed start leaves the system running: what to do
    /// is the caller's choice (log it, retry later, [`RootCtx::request_fatal_stop`]).
    pub fn spawn_with<A: Actor<Event = E>>(
        &mut self,
        name: &str,
        args: A::Args,
        options: ChildOptions,
    ) -> Result<Addr<A::Msg>, StartError> {
        self.system.spawn_with::<A>(name, args, options)
    }

    /// Stops the child called `name` while the system runs, and returns its summary line;
    /// see [`System::stop_child`].
    ///
    /// ```no_run
    /// # use actor_ipc::RootCtx;
    /// # fn shrink(root: &mut RootCtx<'_, ()>) {
    /// // The pool shrinks: the newest worker goes, with what it had not handled counted.
    /// if let Some(last) = root.status().last().map(|s| s.name.clone()) {
    ///     match root.stop_child(&last) {
    ///         Ok(gone) => slog::info!(root.log(), "{last} handled {}", gone.handled),
    ///         Err(e) => slog::warn!(root.log(), "{e}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn stop_child(&mut self, name: &str) -> Result<ActorSummary, StopChildError> {
        self.system.stop_child(name)
    }
}

/// Why [`System::stop_child`] (or [`RootCtx::stop_child`]) did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopChildError {
    /// No current child has this name (never started, or already stopped).
    #[error("cannot stop {actor}: no child has this name")]
    NoSuchChild {
        /// The name asked for.
        actor: String,
    },
    /// The whole system is stopping: every child is stopped anyway, in reverse start order.
    #[error("cannot stop {actor} on its own: the whole system is stopping")]
    SystemStopping {
        /// The name asked for.
        actor: String,
    },
}

fn status_of(slots: &[Slot]) -> Vec<ActorStatus> {
    slots
        .iter()
        .filter(|s| !s.retired)
        .map(|s| ActorStatus {
            name: s.name.clone(),
            pid: s.running.as_ref().map(|r| r.pid).unwrap_or(s.last_pid),
            state: match (&s.running, s.ended) {
                (Some(_), _) => ActorState::Running,
                (None, true) => ActorState::Ended,
                (None, false) => ActorState::Restarting,
            },
            handled: Counters::load(&s.ops.counters().get().handled),
            restarts: s.restarts,
            uptime: s
                .running
                .as_ref()
                .map(|r| r.since.elapsed())
                .unwrap_or_default(),
        })
        .collect()
}

/// The root supervisor of one application.
///
/// `E`, in `System<E>`, is the system's event type: what its actors report to the root with
/// [`Context::emit`](actor_core::Context::emit) and what the handler of [`System::run`] gets.
/// There is one per system: every actor spawned into it has `type Event = E` (use `()` when
/// none reports anything, an enum when several report different things). An actor with
/// another event type does not compile at `spawn`: the error reads "type mismatch resolving
/// `<Actor as Actor>::Event == E`" and points at the actor's `type Event`.
///
/// ```no_run
/// use actor_ipc::{Registry, System};
/// use actor_core::SystemConfig;
/// # use actor_core::{Actor, ActorError, Context};
/// # struct Worker;
/// # impl Actor for Worker {
/// #     type Args = (); type Msg = u32; type Event = ();
/// #     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Worker) }
/// #     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), ActorError> {
/// #         Ok(())
/// #     }
/// # }
/// fn main() -> Result<actor_core::Summary, Box<dyn std::error::Error>> {
///     let registry = Registry::new().register::<Worker>().run_if_child();
///     let mut system = System::<()>::new(registry, SystemConfig::new("MAIN"))?;
///     let worker = system.spawn::<Worker>("WORKER", ())?;   // waits until it started
///     worker.send(42)?;
///     system.request_stop("sent");
///     // Runs until the stop, then stops and drains everything; the process exits with the
///     // summary's code (0, 2 or 3) once main returned.
///     Ok(system.run(|_root, _from, ()| {}))
/// }
/// ```
pub struct System<E: Send + 'static> {
    registry: Registry,
    config: SystemConfig,
    logh: log::LogHandle,
    log: slog::Logger,
    env: StartEnv<E>,
    signals: Receiver<i32>,
    /// What the signal handler itself has seen (ahead of `signals`).
    signal_state: std::sync::Arc<signals::SignalState>,
    /// Wakes the root's wait: its signal thread, an actor thread that ends.
    wake: RootWake,
    reports: IpcInbox<Report<E>>,
    deferred: VecDeque<Report<E>>,
    slots: Vec<Slot>,
    tracker: IntensityTracker,
    stop: Option<StopReason>,
    finished: bool,
    private_dir: PathBuf,
}

// A system may be built (children spawned) in one thread and run in another: children are
// forked by the runtime's long-lived spawner thread, so the building thread may end.
const _: fn(System<()>) -> Box<dyn Send> = |system| Box::new(system);

impl<E> System<E>
where
    E: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    /// Creates the root: its logger, its clock, its signal handling and its report inbox.
    ///
    /// Fails in a process that was started as an mpactor child but whose `main` did not call
    /// [`Registry::run_if_child`] first: it would otherwise start children of its own, which
    /// would do the same, without end.
    pub fn new(registry: Registry, config: SystemConfig) -> std::io::Result<Self> {
        if std::env::var_os(crate::wire::boot::ENV_CHILD).is_some() {
            return Err(std::io::Error::other(
                "this process was started as an mpactor child, but main did not call \
                 Registry::run_if_child() before System::new",
            ));
        }
        // A build against an ipc-channel whose layout differs fails here, clearly.
        crate::sys::fd::check_layout()?;
        let clock = AppClock::start();
        let logh = log::init_with(&config.name, clock, config.log_level, config.log_format);
        let log = logh.logger.clone();
        crate::transport::set_writer_log(&log);
        let private_dir = private_bootstrap_dir()?;

        let (sig_tx, sig_rx) = crossbeam_channel::unbounded();
        let wake = RootWake::new()?;
        let sig_wake = wake.clone();
        let sig_log = log.clone();
        let signal_state = signals::install(
            move |signal, count| {
                if count > 1 {
                    // The first is logged by the loop that acts on it; later ones only here,
                    // so the log shows how close the process is to its hard stop.
                    slog::warn!(
                        sig_log,
                        "got {} ({count} of {}): already stopping; the next one kills every child",
                        signal_name(signal),
                        signals::HARD_STOP_AT
                    );
                }
                let _ = sig_tx.send(signal);
                sig_wake.wake();
            },
            {
                let dir = private_dir.clone();
                move |signal| {
                    // Children first: nothing here may wait (stderr may be a pipe nobody reads).
                    process::kill_all_now();
                    // Even a hard stop cleans up after itself: nothing is left in $TMPDIR.
                    let _ = std::fs::remove_dir_all(&dir);
                    actor_core::log::stderr_line(&format!(
                        "mpactor: third signal ({}): every child killed; exiting",
                        signal_name(signal)
                    ));
                }
            },
        )?;

        let (tx, rx) = ipc_channel::ipc::channel()?;
        let counters = Counters::new();
        let report_addr = Addr::new(
            format!("{} (root)", config.name),
            tx,
            counters.clone(),
            actor_core::supervision::DEFAULT_MAILBOX_CAPACITY,
            actor_core::supervision::DEFAULT_MAX_MESSAGE_BYTES,
        );
        // Every process of the system counts its replies to `ask` in this block.
        crate::transport::ask::set_reply_counters(&counters);
        let reports = IpcInbox::new(rx, counters, &config.name, log.clone());
        let env = StartEnv {
            report_addr,
            clock,
            log_level: config.log_level.as_str().to_string(),
            log_format: config.log_format,
            stop_timeout: config.stop_timeout,
            dir: private_dir.clone(),
            log: log.clone(),
            wake: wake.clone(),
            child_args: registry.child_args(),
        };
        slog::info!(log, "root started"; "pid" => std::process::id());
        Ok(Self {
            registry,
            tracker: IntensityTracker::new(config.intensity),
            config,
            logh,
            log,
            env,
            signals: sig_rx,
            signal_state,
            wake,
            reports,
            deferred: VecDeque::new(),
            slots: Vec::new(),
            stop: None,
            finished: false,
            private_dir,
        })
    }

    /// The root's logger.
    pub fn log(&self) -> &slog::Logger {
        &self.log
    }

    /// The application clock.
    pub fn clock(&self) -> AppClock {
        self.env.clock
    }

    /// Starts actor `A` as `name` with the default [`ChildOptions`], and waits until its
    /// `startup` succeeded. Children start in the order they are spawned.
    pub fn spawn<A: Actor<Event = E>>(
        &mut self,
        name: &str,
        args: A::Args,
    ) -> Result<Addr<A::Msg>, StartError> {
        self.spawn_with::<A>(name, args, ChildOptions::default())
    }

    /// Starts actor `A` as `name` with these options; see [`System::spawn`].
    ///
    /// Fails fast: a child that exits or fails its `startup` is reported at once, not at the
    /// start deadline. The error names the actor and the cause.
    pub fn spawn_with<A: Actor<Event = E>>(
        &mut self,
        name: &str,
        args: A::Args,
        options: ChildOptions,
    ) -> Result<Addr<A::Msg>, StartError> {
        if self.stop.is_some() {
            return Err(StartError::SystemStopping {
                actor: name.to_string(),
            });
        }
        if let Some(i) = self.current(name) {
            let slot = &self.slots[i];
            if !slot.ended || slot.running.is_some() {
                return Err(StartError::DuplicateName {
                    actor: name.to_string(),
                });
            }
            // A child that ended for good (a temporary one, say) gives its name to the new
            // one: the old one's mailbox is drained and closed, its line stays in the summary.
            self.retire(i);
        }
        let (mut ops, addr): (Box<dyn SlotOps>, Addr<A::Msg>) =
            match self.config.isolation {
                Isolation::Processes => {
                    if !self.registry.contains::<A>() {
                        return Err(StartError::Unregistered {
                            actor: name.to_string(),
                            type_name: std::any::type_name::<A>(),
                        });
                    }
                    let typed = TypedSlot::<A>::new(name, args, options, self.env.clone())
                        .map_err(|e| StartError::Bootstrap {
                            actor: name.to_string(),
                            source: Box::new(e),
                        })?;
                    let addr = typed.addr.clone();
                    (Box::new(typed), addr)
                }
                Isolation::Threads => {
                    let slot = ThreadSlot::<A>::new(name, args, options, self.env.clone());
                    let addr = slot.addr.clone();
                    (Box::new(slot), addr)
                }
            };
        let t0 = Instant::now();
        let signals = self.signals.clone();
        match ops.start(&|| !signals.is_empty()) {
            Ok(running) => {
                slog::info!(self.log, "{name} started"; "pid" => running.pid, "ms" => t0.elapsed().as_millis() as u64);
                self.slots.push(Slot {
                    name: name.to_string(),
                    options,
                    ops,
                    last_pid: running.pid,
                    running: Some(running),
                    last_exit: ExitStatus::Running,
                    last_error: None,
                    restarts: 0,
                    ended: false,
                    retired: false,
                    lost_seen: 0,
                    stopping_for_restart: false,
                });
                Ok(addr)
            }
            Err(e) => {
                if e.is_interrupted() {
                    slog::info!(self.log, "{e}");
                } else {
                    slog::error!(self.log, "{e}");
                }
                ops.close();
                Err(e)
            }
        }
    }

    /// Asks the system to stop; [`System::run`] then stops it and returns.
    pub fn request_stop(&mut self, why: impl Into<String>) {
        if self.stop.is_none() {
            self.stop = Some(StopReason::Requested(why.into()));
        }
    }

    /// Each child, in start order, with its pid, state, counts and uptime (children stopped
    /// with [`System::stop_child`] are gone from it).
    pub fn status(&self) -> Vec<ActorStatus> {
        status_of(&self.slots)
    }

    /// Stops the child called `name` on its own, whatever its restart type, and returns its
    /// summary line; the rest of the system runs on. Before [`System::run`] or inside it
    /// (through [`RootCtx::stop_child`]).
    ///
    /// The same stop as the system's own, for one child: it is asked to stop behind what
    /// was already sent to it and has until the system's stop timeout; past it, SIGTERM,
    /// then SIGKILL after the kill grace (a thread cannot be killed: it is reported and left
    /// running). Then its mailbox is closed (senders get `Disconnected`) and what is left in
    /// it is drained and counted as dead letters. Its line stays in the final
    /// [`Summary`], in start order; its name may be given to a new child.
    ///
    /// The root's loop waits for the stop: at most the stop timeout plus the kill grace, then
    /// at most 0.7 s to flush the root's own sends to it (200 ms) and drain its mailbox
    /// (500 ms).
    ///
    /// ```no_run
    /// # use actor_ipc::System;
    /// # fn demo(mut system: System<()>) {
    /// let gone = system.stop_child("WORKER-3").expect("WORKER-3 is a child");
    /// assert_eq!(gone.accepted, gone.handled + gone.dead_letters);
    /// # }
    /// ```
    pub fn stop_child(&mut self, name: &str) -> Result<ActorSummary, StopChildError> {
        if self.stop.is_some() {
            return Err(StopChildError::SystemStopping {
                actor: name.to_string(),
            });
        }
        let i = self
            .current(name)
            .ok_or_else(|| StopChildError::NoSuchChild {
                actor: name.to_string(),
            })?;
        if self.slots[i].running.is_some() {
            slog::info!(self.log, "stopping {name} on its own");
            let deadline = Instant::now() + self.config.stop_timeout;
            // Its exit is expected: no restart policy applies (the flag is the restart's).
            self.stop_one(i, deadline);
        }
        let summary = self.retire(i);
        slog::info!(
            self.log,
            "{name} stopped: {} handled={} dead_letters={}",
            summary.exit, summary.handled, summary.dead_letters;
            "accepted" => summary.accepted
        );
        Ok(summary)
    }

    /// The current child (not retired) called `name`.
    fn current(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| !s.retired && s.name == name)
    }

    /// Closes and drains the mailbox of child `i`, which no longer runs, for good: it keeps
    /// its line in the summary and nothing else. What the root had sent it is flushed into
    /// its socket first, so that it is drained (and counted) here, not lost in a writer.
    fn retire(&mut self, i: usize) -> ActorSummary {
        let slot = &mut self.slots[i];
        slot.ended = true;
        slot.retired = true;
        Counters::set(&slot.ops.counters().get().gone, 1);
        flush_all(Instant::now() + Duration::from_millis(200));
        drain_and_close(&self.log, slot, Instant::now() + Duration::from_millis(500));
        summarize(slot)
    }

    /// Runs the root's loop until a stop trigger (a signal, a request from `handler`, a
    /// fatal failure, exhausted restarts, the run-for deadline), then stops everything and
    /// returns the summary. `handler` gets every application event with the sender's name,
    /// and a [`RootCtx`] to stop the system or start and stop children.
    ///
    /// It takes the system: a system runs once. The [`Summary`] it returns can be returned
    /// from `main` (it implements [`Termination`](std::process::Termination)).
    pub fn run<H>(mut self, mut handler: H) -> Summary
    where
        H: FnMut(&mut RootCtx<'_, E>, &str, E),
    {
        let until = self.config.run_for.map(|d| Instant::now() + d);
        let mut last_watch = Instant::now();
        while self.stop.is_none() {
            if let Ok(signal) = self.signals.try_recv() {
                slog::info!(self.log, "got {}: stopping", signal_name(signal));
                self.stop = Some(StopReason::Signal(signal));
                break;
            }
            let report = match self.deferred.pop_front() {
                Some(r) => Some(r),
                None => match self.reports.recv_timeout(Duration::ZERO) {
                    Recv::Msg(r) => Some(r),
                    _ => None,
                },
            };
            let idle = report.is_none();
            if let Some(report) = report {
                self.on_report(report, &mut handler);
            }
            // Under a flood of reports, children are still looked at every 5 ms.
            if idle || last_watch.elapsed() >= Duration::from_millis(5) {
                self.watch_children();
                last_watch = Instant::now();
            }
            if until.is_some_and(|u| Instant::now() >= u) && self.stop.is_none() {
                self.stop = Some(StopReason::RunFor);
            }
            if idle && self.stop.is_none() {
                // Nothing left to do: sleep until a report, a child's end, a signal or the
                // run-for deadline.
                self.wait_for_event(None, until);
            }
        }
        let summary = self.shutdown();
        // Events that arrived while stopping (an actor's final count, say) still reach the
        // handler; a stop it requests now changes nothing.
        while let Some(report) = self.deferred.pop_front() {
            self.on_report(report, &mut handler);
        }
        summary
    }

    fn on_report<H>(&mut self, report: Report<E>, handler: &mut H)
    where
        H: FnMut(&mut RootCtx<'_, E>, &str, E),
    {
        match report {
            Report::App { actor, event } => {
                let mut ctx = RootCtx { system: self };
                handler(&mut ctx, &actor, event);
            }
            other => self.on_lifecycle_report(other),
        }
    }

    fn on_lifecycle_report(&mut self, report: Report<E>) {
        match report {
            Report::Signalled {
                actor,
                signal,
                count,
            } => {
                if self.stop.is_none() {
                    // A terminal's Ctrl-C reaches every process at once: if the root got it
                    // too, that is the reason, not a child's copy that happened to arrive first.
                    // Its handler has run by now (see `SignalState::arrived`); the signal
                    // thread that passes it on may lag behind on a loaded machine.
                    let wait = if self.signal_state.arrived() {
                        Duration::from_secs(1)
                    } else {
                        Duration::from_millis(20)
                    };
                    if let Ok(own) = self.signals.recv_timeout(wait) {
                        slog::info!(self.log, "got {}: stopping", signal_name(own));
                        self.stop = Some(StopReason::Signal(own));
                        return;
                    }
                    slog::warn!(
                        self.log,
                        "{actor} got {}: stopping the whole system",
                        signal_name(signal)
                    );
                    self.stop = Some(StopReason::ActorSignalled { actor, signal });
                } else {
                    slog::debug!(self.log, "{actor} got {} ({count})", signal_name(signal));
                }
            }
            Report::Fatal { actor, error } => {
                slog::error!(self.log, "{actor} failed: {error}");
                if let Some(i) = self.current(&actor) {
                    self.slots[i].last_error = Some(error);
                }
            }
            Report::Stopped {
                actor,
                drained,
                undelivered,
            } => {
                slog::debug!(self.log, "{actor} stopped"; "drained" => drained, "undelivered" => undelivered);
            }
            Report::App { actor, .. } => {
                slog::debug!(
                    self.log,
                    "an event from {actor} arrived while stopping; not routed"
                );
            }
        }
    }

    /// Sleeps until something happens: a report arrives, a child ends (its pidfd becomes
    /// readable; an actor thread wakes the root itself), the root gets a signal, or
    /// `deadline` passes. `which` limits the children watched (those a stop waits for:
    /// another child that ended stays readable until the main loop reaps it); `None` watches
    /// every running child. Nothing here polls, except on a kernel without pidfds
    /// ([`WATCH_POLL`]). EINTR only ends the wait early, as any event does: the callers look
    /// at everything again and wait again.
    fn wait_for_event(&self, which: Option<&[usize]>, deadline: Option<Instant>) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        if self.reports.has_buffered() {
            return;
        }
        let mut fds = vec![
            PollFd::from_borrowed_fd(self.reports.as_fd(), PollFlags::IN),
            PollFd::from_borrowed_fd(self.wake.as_fd(), PollFlags::IN),
        ];
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut look_within = |d: Duration| timeout = Some(timeout.map_or(d, |t| t.min(d)));
        let all: Vec<usize>;
        let which = match which {
            Some(w) => w,
            None => {
                all = (0..self.slots.len()).collect();
                &all
            }
        };
        for &i in which {
            let Some(running) = &self.slots[i].running else {
                continue;
            };
            match running.watch() {
                Watch::Fd(fd) => fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN)),
                Watch::Poll => look_within(WATCH_POLL),
                Watch::Soon => look_within(Duration::from_millis(1)),
                Watch::Woken => {}
            }
        }
        let timeout = timeout.map(|t| {
            Timespec::try_from(t).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let _ = poll(&mut fds, timeout.as_ref());
        // Taken now, after the wait: a wake-up that came before the wait ended it at once,
        // and what woke it is looked at by the caller next.
        self.wake.clear();
    }

    fn watch_children(&mut self) {
        for i in 0..self.slots.len() {
            let status = match &mut self.slots[i].running {
                Some(r) => r.try_wait(),
                None => None,
            };
            if let Some(status) = status {
                // What the child reported before it died (its Fatal report with the panic
                // message) is read first, so that its exit is logged with its cause.
                self.pump_pending_reports();
                self.on_exit(i, status);
            }
        }
    }

    /// Takes every report already waiting, without blocking: lifecycle reports are handled,
    /// application events kept for the handler.
    fn pump_pending_reports(&mut self) {
        while let Recv::Msg(r) = self.reports.recv_timeout(Duration::ZERO) {
            match r {
                Report::App { .. } => self.deferred.push_back(r),
                other => self.on_lifecycle_report(other),
            }
        }
    }

    /// Records an exit: logs it, counts what was lost, and decides on a restart.
    fn on_exit(&mut self, i: usize, status: ExitStatus) {
        let slot = &mut self.slots[i];
        let Some(run) = slot.running.take() else {
            return;
        };
        process::forget(run.pid);
        slot.last_exit = status;
        let failed = !status.is_clean();
        let lost = slot.ops.counters().lost().saturating_sub(slot.lost_seen);
        slot.lost_seen += lost;
        let name = slot.name.clone();
        if failed {
            let cause = slot
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            slog::error!(
                self.log,
                "{name} ({} {}) ended: {status}{cause}",
                run.id_kind(),
                run.pid
            );
        } else {
            slog::info!(
                self.log,
                "{name} ({} {}) exited: {status}",
                run.id_kind(),
                run.pid
            );
        }
        if lost > 0 {
            slog::error!(
                self.log,
                "{lost} messages were lost with {name}'s process (received, not yet handled)"
            );
        }
        if self.stop.is_some() || std::mem::take(&mut slot.stopping_for_restart) {
            return;
        }
        let restart = slot.options.restart;
        if restart.restarts_after(failed) {
            if !self.tracker.allow(Instant::now()) {
                let intensity = self.config.intensity;
                slog::error!(
                    self.log,
                    "{name} ended again: more than {} restarts in {:?}; stopping the system",
                    intensity.max_restarts,
                    intensity.period
                );
                self.stop = Some(StopReason::RestartIntensity { actor: name });
                return;
            }
            self.restart(i);
        } else if restart.stops_system_after(failed) {
            let error = slot
                .last_error
                .clone()
                .unwrap_or_else(|| status.to_string());
            self.stop = Some(StopReason::Fatal { actor: name, error });
        } else if failed {
            // OTP's temporary: the failure is logged above with its cause and shows in the
            // summary; nothing else changes.
            slog::warn!(
                self.log,
                "{name} failed; its restart type ({restart:?}) neither restarts it nor stops the system"
            );
            slot.ended = true;
            Counters::set(&slot.ops.counters().get().gone, 1);
        } else {
            slog::info!(
                self.log,
                "{name} finished; its restart type ({restart:?}) does not restart it"
            );
            slot.ended = true;
            Counters::set(&slot.ops.counters().get().gone, 1);
        }
    }

    /// Restarts child `i` and, by the strategy, its siblings.
    fn restart(&mut self, i: usize) {
        let affected: Vec<usize> = self
            .config
            .strategy
            .affected(i, self.slots.len())
            .into_iter()
            .filter(|j| !self.slots[*j].ended)
            .collect();
        let deadline = Instant::now() + self.config.stop_timeout;
        for &j in affected.iter().rev() {
            if j != i && self.slots[j].running.is_some() {
                slog::info!(
                    self.log,
                    "stopping {} to restart it with {}",
                    self.slots[j].name,
                    self.slots[i].name
                );
                self.stop_one(j, deadline);
            }
        }
        for &j in &affected {
            let signals = self.signals.clone();
            let slot = &mut self.slots[j];
            slot.restarts += 1;
            slog::warn!(
                self.log,
                "restarting {} (restart {})",
                slot.name,
                slot.restarts
            );
            slot.last_error = None;
            match slot.ops.start(&|| !signals.is_empty()) {
                Ok(running) => {
                    slog::info!(self.log, "{} started", slot.name; "pid" => running.pid);
                    slot.last_pid = running.pid;
                    slot.last_exit = ExitStatus::Running;
                    slot.running = Some(running);
                }
                Err(e) if e.is_interrupted() => {
                    // A signal came during the restart: the same orderly stop as at any
                    // other moment (the signal is still queued for the root's loop).
                    slog::info!(self.log, "{e}");
                    let signal = self.signals.try_recv().unwrap_or(libc::SIGTERM);
                    slog::info!(self.log, "got {}: stopping", signal_name(signal));
                    self.stop = Some(StopReason::Signal(signal));
                    return;
                }
                Err(e) => {
                    slog::error!(self.log, "restart failed: {e}");
                    self.stop = Some(StopReason::Fatal {
                        actor: slot.name.clone(),
                        error: e.to_string(),
                    });
                    return;
                }
            }
        }
    }

    /// Asks child `i` to stop and waits for it until `deadline`; past it, signals it.
    fn stop_one(&mut self, i: usize, deadline: Instant) {
        self.slots[i].stopping_for_restart = true;
        self.slots[i].ops.request_stop(deadline);
        self.wait_exits(&[i], deadline);
        self.escalate(&[i]);
    }

    /// Waits until every child in `which` has exited, at most until `deadline`.
    fn wait_exits(&mut self, which: &[usize], deadline: Instant) {
        loop {
            let mut alive = false;
            for &i in which {
                let status = match &mut self.slots[i].running {
                    Some(r) => r.try_wait(),
                    None => continue,
                };
                match status {
                    Some(st) => self.on_exit(i, st),
                    None => alive = true,
                }
            }
            if !alive || Instant::now() >= deadline {
                return;
            }
            self.wait_for_event(Some(which), Some(deadline));
            self.pump_pending_reports();
        }
    }

    /// SIGTERM (after SIGCONT, for a stopped process), then SIGKILL after the grace, to the
    /// children in `which` still running; reaps them all.
    fn escalate(&mut self, which: &[usize]) {
        let alive: Vec<usize> = which
            .iter()
            .copied()
            .filter(|i| self.slots[*i].running.is_some())
            .collect();
        if alive.is_empty() {
            return;
        }
        for &i in &alive {
            let slot = &self.slots[i];
            if let Some(r) = &slot.running {
                slog::warn!(
                    self.log,
                    "{} (pid {}) still running at the stop deadline: SIGTERM",
                    slot.name,
                    r.pid
                );
                // The deadline passed: the child's signal handler now ends its loop at once
                // (before it, a signal to a stopping child lets it finish its backlog).
                Counters::set(
                    &slot.ops.counters().get().stop_requested,
                    crate::wire::counters::STOP_NOW,
                );
                r.signal(libc::SIGCONT);
                r.signal(libc::SIGTERM);
            }
        }
        self.wait_exits(&alive, Instant::now() + self.config.kill_grace);
        for &i in &alive {
            let name = self.slots[i].name.clone();
            if let Some(mut r) = self.slots[i].running.take() {
                if r.is_thread() {
                    slog::error!(
                        self.log,
                        "{name} (thread {}) ignores its stop; a thread cannot be killed: it is left running until the process exits",
                        r.pid
                    );
                    self.slots[i].last_exit = ExitStatus::Running;
                    continue;
                }
                slog::warn!(
                    self.log,
                    "{name} (pid {}) still running after SIGTERM: SIGKILL",
                    r.pid
                );
                let status = r.reap(Duration::ZERO);
                match status {
                    Some(st) => {
                        self.slots[i].running = Some(r);
                        self.on_exit(i, st);
                    }
                    None => slog::error!(self.log, "{name} (pid {}) could not be reaped", r.pid),
                }
            }
        }
    }

    /// Stops everything: children in reverse start order under one shared deadline, then
    /// SIGTERM/SIGKILL for those still alive, then every mailbox closed, drained and counted.
    fn shutdown(&mut self) -> Summary {
        let t0 = Instant::now();
        let reason = self
            .stop
            .get_or_insert_with(|| StopReason::Requested("shutdown".into()))
            .clone();
        slog::info!(self.log, "stopping the system: {reason}");
        let deadline = t0 + self.config.stop_timeout;
        for i in (0..self.slots.len()).rev() {
            if self.slots[i].running.is_some() {
                slog::debug!(self.log, "asking {} to stop", self.slots[i].name);
                self.slots[i].ops.request_stop(deadline);
                self.wait_exits(&[i], deadline);
            }
        }
        // The deadline passed with someone still running (a stuck child used it up): the
        // children not reached yet are asked now, so that the SIGTERM below, which stops a
        // child that has been asked, ends them cleanly, not by surprise.
        for slot in &self.slots {
            if slot.running.is_some() {
                slot.ops.request_stop(Instant::now());
            }
        }
        let all: Vec<usize> = (0..self.slots.len()).collect();
        self.escalate(&all);

        // Mailboxes: no new accepts, the root's own sends flushed into the sockets, then
        // whatever is left drained and counted, then the inboxes closed.
        for slot in &self.slots {
            Counters::set(&slot.ops.counters().get().gone, 1);
        }
        let undelivered = flush_all(Instant::now() + Duration::from_millis(200));
        if undelivered > 0 {
            slog::warn!(
                self.log,
                "{undelivered} messages sent by the root could not be delivered"
            );
        }
        let drain_deadline = Instant::now() + Duration::from_millis(500);
        for slot in self.slots.iter_mut().filter(|s| !s.retired) {
            drain_and_close(&self.log, slot, drain_deadline);
        }
        // With the inboxes closed, a writer of the root still blocked on one of them fails
        // at once and counts what it held: let them settle before the counts are read.
        flush_all(Instant::now() + Duration::from_millis(100));
        self.pump_pending_reports();
        // A third signal kills every child: the stop may end here because of that, and the
        // process must then end with 128 + signal, not with this summary's code.
        signals::yield_to_hard_stop();

        let actors: Vec<ActorSummary> = self.slots.iter().map(summarize).collect();
        let stop_millis = t0.elapsed().as_millis() as u64;
        for a in &actors {
            slog::info!(
                self.log,
                "summary: {} pid={} {} handled={} dead_letters={} restarts={}",
                a.name, a.pid, a.exit, a.handled, a.dead_letters, a.restarts;
                "accepted" => a.accepted, "lost" => a.lost_in_crash, "unsent" => a.unsent,
                "decode_failures" => a.decode_failures, "refused" => a.refused
            );
            if a.refused > 0 {
                slog::warn!(
                    self.log,
                    "{}: {} messages were refused by their senders (too large, failing to encode, or too many channels): see the senders' logs",
                    a.name, a.refused
                );
            }
            let unaccounted = a.accepted as i128 - a.handled as i128 - a.dead_letters as i128;
            if unaccounted != 0 {
                slog::warn!(
                    self.log,
                    "{}: {unaccounted} messages unaccounted for",
                    a.name
                );
            }
        }
        let (sent, taken) = (self.env.report_addr.counters())
            .map(crate::transport::ask::reply_counts)
            .unwrap_or_default();
        let replies = actor_core::ReplySummary::new(sent, taken);
        if replies.sent > 0 {
            slog::info!(
                self.log,
                "summary: replies sent={} taken={} dead_letters={}",
                replies.sent,
                replies.taken,
                replies.dead_letters
            );
        }
        slog::info!(self.log, "stopped in {stop_millis} ms: {reason}"; "exit" => reason.exit_code());
        self.finished = true;
        // Empty by now: every bootstrap socket is removed when its start ends. Removed here
        // too, not only on drop, because programs often exit with the System still alive.
        let _ = std::fs::remove_dir(&self.private_dir);
        self.logh.flush();
        Summary {
            reason,
            actors,
            replies,
            stop_millis,
        }
    }
}

/// Takes what is left in the inbox of `slot`'s actor (counted as dead letters, and said in the
/// log) by `deadline`, then closes the inbox: the actor has ended for good.
fn drain_and_close(log: &slog::Logger, slot: &mut Slot, deadline: Instant) {
    let drained = slot.ops.drain(deadline);
    if drained > 0 {
        slog::warn!(
            log,
            "{drained} messages left in {}'s inbox, counted as dead letters",
            slot.name
        );
    }
    slot.ops.close();
}

fn summarize(slot: &Slot) -> ActorSummary {
    let c = slot.ops.counters();
    let b = c.get();
    ActorSummary {
        name: slot.name.clone(),
        pid: slot.last_pid,
        exit: slot.last_exit,
        accepted: Counters::load(&b.accepted),
        handled: Counters::load(&b.handled),
        dead_letters: c.dead_letters(),
        lost_in_crash: c.lost(),
        unsent: c.unsent(),
        decode_failures: Counters::load(&b.decode_failed),
        refused: Counters::load(&b.refused),
        restarts: slot.restarts,
    }
}

impl<E: Send + 'static> Drop for System<E> {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped without `run` (an early return after a failed spawn): still stop every
            // child, so none is left behind.
            let deadline = Instant::now() + self.config.stop_timeout;
            for slot in self.slots.iter_mut().rev() {
                if let Some(mut r) = slot.running.take() {
                    slot.ops.request_stop(deadline);
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Every child's end is logged, on this path too.
                    match r.reap(left) {
                        Some(status) if status.is_clean() => slog::info!(
                            self.log,
                            "{} ({} {}) exited: {status}",
                            slot.name,
                            r.id_kind(),
                            r.pid
                        ),
                        Some(status) => slog::warn!(
                            self.log,
                            "{} ({} {}) ended: {status}",
                            slot.name,
                            r.id_kind(),
                            r.pid
                        ),
                        None => slog::error!(
                            self.log,
                            "{} ({} {}) could not be reaped",
                            slot.name,
                            r.id_kind(),
                            r.pid
                        ),
                    }
                }
            }
            self.logh.flush();
        }
        // Empty by now: every bootstrap socket is removed when its start ends.
        let _ = std::fs::remove_dir(&self.private_dir);
    }
}

/// A directory only this user can enter, whatever the umask, for the bootstrap sockets:
/// `$TMPDIR/mpactor-<pid>-<random>`, mode 0700, removed when the system ends.
fn private_bootstrap_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let path = std::env::temp_dir().join(format!(
        "mpactor-{}-{}",
        std::process::id(),
        &crate::sys::random::new_secret()?[..8]
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    // The mode above is masked by the umask, which can only remove bits; set it exactly anyway.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    Ok(path)
}

/// What another transport needs to tell the root something (issue 17: `actor-nats` reports
/// a remote node going down or coming back as an application event).
impl<E> System<E>
where
    E: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    /// The root's own report inbox: a [`Report::App`] sent here reaches [`System::run`]'s
    /// handler like an event of a child, with the `actor` name it carries as the sender.
    pub fn report_addr(&self) -> Addr<Report<E>> {
        self.env.report_addr.clone()
    }

    /// The configuration this system was created with (its `cluster`, for one).
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }
}
