//! The thread runtime: the same actors, each in a thread of the root's process, with a
//! bounded crossbeam inbox, under the same supervisor (order, deadlines, stop, drain, counts,
//! restarts). Chosen for a whole system with [`Isolation::Threads`](actor_core::Isolation).
//!
//! What differs from processes: a thread that panics is contained (its lifecycle catches the
//! panic, `shutdown` runs, the supervisor sees a failure), but a thread that hangs cannot be
//! killed (it is reported and left running until the process exits), one that aborts or
//! corrupts memory takes the whole process with it, and addresses cannot leave the process.
//! That is what processes are for.

use crate::child::RootPort;
use crate::slot::{Incarnation, Running, SlotOps, StartEnv, StartError};
use crate::transport::{Addr, Item};
use crate::wire::counters::Counters;
use actor_core::lifecycle::{self, Outcome};
use actor_core::supervision::WATCH_POLL;
use actor_core::{Actor, ChildOptions, Context, InboxPort, Recv, Report, StopFlag};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A thread actor's inbox: a bounded crossbeam queue shared with the root, which keeps its
/// own receiver so the inbox outlives a restart and can be drained at the end.
pub(crate) struct LocalInbox<M> {
    rx: Receiver<Item<M>>,
    counters: Counters,
    stopped: bool,
    handled: u64,
    /// This incarnation's number: a stop queued for an earlier one is dropped.
    incarnation: u32,
}

impl<M> LocalInbox<M> {
    pub fn new(rx: Receiver<Item<M>>, counters: Counters) -> Self {
        let incarnation = Counters::load(&counters.get().incarnation) as u32;
        Self {
            rx,
            counters,
            stopped: false,
            handled: 0,
            incarnation,
        }
    }
}

impl<M: Send> LocalInbox<M> {
    /// What one item taken from the queue means: a message (counted), the stop, or nothing
    /// (a stop meant for an earlier incarnation).
    fn on_item(&mut self, item: Item<M>) -> Recv<M> {
        match item {
            Item::Msg(m) => {
                let b = self.counters.get();
                Counters::add(&b.received, 1);
                Counters::add(&b.handled, 1);
                self.handled += 1;
                Recv::Msg(m)
            }
            // A local route refuses encoded messages (`InboxAddr::queue_item`): never queued.
            Item::Encoded(_) => Recv::Timeout,
            Item::Stop(n) if n != self.incarnation => Recv::Timeout,
            Item::Stop(_) => {
                self.stopped = true;
                Recv::Stop
            }
        }
    }
}

impl<M: Send> InboxPort<M> for LocalInbox<M> {
    fn recv_timeout(&mut self, timeout: Duration) -> Recv<M> {
        if self.stopped {
            return Recv::Stop;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(item) => self.on_item(item),
            Err(RecvTimeoutError::Disconnected) => {
                self.stopped = true;
                Recv::Stop
            }
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
        }
    }

    /// A message already queued (no clock read, no wait), or the stop.
    fn ready(&mut self) -> Option<Recv<M>> {
        if self.stopped {
            return Some(Recv::Stop);
        }
        match self.rx.try_recv() {
            Ok(item) => match self.on_item(item) {
                Recv::Timeout => None,
                other => Some(other),
            },
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.stopped = true;
                Some(Recv::Stop)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => None,
        }
    }

    fn stop_requested(&self) -> bool {
        Counters::load(&self.counters.get().stop_requested) != 0
    }

    /// Nothing to count: a thread takes messages from its queue one at a time, and what is
    /// still queued stays for the next incarnation, or for the root's drain at the stop.
    fn drain(&mut self, _deadline: Instant) -> u64 {
        0
    }

    fn handled(&self) -> u64 {
        self.handled
    }
}

/// Takes every message left in a queue, until `deadline`; returns how many.
fn drain_queue<M>(rx: &Receiver<Item<M>>, deadline: Instant) -> u64 {
    let mut drained = 0;
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(Item::Msg(_)) => drained += 1,
            Ok(Item::Stop(_) | Item::Encoded(_)) => {}
            Err(_) => break,
        }
    }
    drained
}

/// A supervised child that runs as a thread.
pub(crate) struct ThreadSlot<A: Actor> {
    pub name: String,
    pub args: A::Args,
    pub options: ChildOptions,
    pub rx: Receiver<Item<A::Msg>>,
    pub addr: Addr<A::Msg>,
    /// The inbox's sending side, for the wake-up of a thread whose stop flag is set.
    pub wake_tx: crossbeam_channel::Sender<Item<A::Msg>>,
    pub counters: Counters,
    pub env: StartEnv<A::Event>,
}

impl<A: Actor> ThreadSlot<A> {
    pub fn new(name: &str, args: A::Args, options: ChildOptions, env: StartEnv<A::Event>) -> Self {
        let (tx, rx) = bounded(options.mailbox_capacity);
        let counters = Counters::new();
        let addr = Addr::local(name.to_string(), tx.clone(), counters.clone());
        Self {
            name: name.to_string(),
            args,
            options,
            rx,
            addr,
            wake_tx: tx,
            counters,
            env,
        }
    }
}

/// Wakes the root when the actor's thread ends, however it ends: dropped as the thread's
/// last act.
struct EndingGuard {
    ending: Arc<AtomicBool>,
    wake: crate::transport::wake::RootWake,
}

impl Drop for EndingGuard {
    fn drop(&mut self) {
        self.ending.store(true, Ordering::SeqCst);
        self.wake.wake();
    }
}

impl<A: Actor> SlotOps for ThreadSlot<A> {
    fn start(&mut self, interrupted: &dyn Fn() -> bool) -> Result<Running, StartError> {
        crate::wire::counters::next_incarnation(&self.counters);
        let stop = StopFlag::new();
        // A stop flag set by the root (its stop deadline passed) wakes a thread blocked in
        // its receive with a wake item, as a wake frame wakes a process.
        let wake_tx = self.wake_tx.clone();
        stop.on_set(move || {
            let _ = wake_tx.try_send(Item::Stop(crate::transport::wake::WAKE));
        });
        let ending = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = bounded::<Result<u32, actor_core::ErrorChain>>(1);
        let body = ThreadBody::<A> {
            name: self.name.clone(),
            args: self.args.clone(),
            rx: self.rx.clone(),
            counters: self.counters.clone(),
            env: self.env.clone(),
            stop: stop.clone(),
            ready: ready_tx,
            myself: self.addr.clone(),
            ending: EndingGuard {
                ending: ending.clone(),
                wake: self.env.wake.clone(),
            },
        };
        let handle = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || body.run())
            .map_err(|e| StartError::Bootstrap {
                actor: self.name.clone(),
                source: Box::new(e),
            })?;
        let deadline = Instant::now() + self.options.start_timeout;
        let mut running = Running {
            kind: Incarnation::Thread {
                handle: Some(handle),
                stop: stop.clone(),
                ending,
            },
            pid: 0,
            since: Instant::now(),
        };
        loop {
            match ready_rx.recv_timeout(WATCH_POLL) {
                Ok(Ok(tid)) => {
                    running.pid = tid;
                    running.since = Instant::now();
                    return Ok(running);
                }
                Ok(Err(why)) => {
                    let _ = running.reap(Duration::from_secs(1));
                    return Err(StartError::StartupFailed {
                        actor: self.name.clone(),
                        source: why,
                    });
                }
                Err(_) => {
                    if let Some(status) = running.try_wait() {
                        return Err(StartError::Exited {
                            actor: self.name.clone(),
                            status,
                        });
                    }
                    if Instant::now() >= deadline || interrupted() {
                        // A thread cannot be killed: ask it to stop and leave it.
                        stop.set();
                        return Err(if interrupted() {
                            StartError::Interrupted {
                                actor: self.name.clone(),
                            }
                        } else {
                            StartError::Timeout {
                                actor: self.name.clone(),
                                timeout: self.options.start_timeout,
                                killed: false,
                            }
                        });
                    }
                }
            }
        }
    }

    fn request_stop(&self, deadline: Instant) {
        let incarnation = crate::wire::counters::ask_stop(&self.counters);
        self.addr.send_stop(deadline, incarnation);
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn drain(&mut self, deadline: Instant) -> u64 {
        let drained = drain_queue(&self.rx, deadline);
        Counters::add(&self.counters.get().drained_root, drained);
        drained
    }

    fn close(&mut self) {
        Counters::set(&self.counters.get().gone, 1);
    }
}

/// Everything the actor's thread takes with it.
struct ThreadBody<A: Actor> {
    name: String,
    args: A::Args,
    rx: Receiver<Item<A::Msg>>,
    counters: Counters,
    env: StartEnv<A::Event>,
    stop: StopFlag,
    ready: crossbeam_channel::Sender<Result<u32, actor_core::ErrorChain>>,
    myself: Addr<A::Msg>,
    /// Dropped last, when `run` returns.
    ending: EndingGuard,
}

impl<A: Actor> ThreadBody<A> {
    /// The thread's life: the same lifecycle as in a child process; returns the exit code a
    /// process would have.
    fn run(self) -> i32 {
        let _ending = self.ending;
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        let log = actor_core::log::for_actor(&self.env.log, &self.name);
        // Records of the `log` and `tracing` crates on this thread are this actor's.
        let _bridged = actor_core::log::bridge::enter(&log);
        slog::info!(log, "started"; "thread" => tid);
        let root = self.env.report_addr.clone();
        let mut ctx: Context<A> = Context::new(
            self.name.clone(),
            log.clone(),
            self.env.clock,
            self.stop,
            Box::new(LocalInbox::new(self.rx, self.counters)),
            Box::new(RootPort {
                root: root.clone(),
                name: self.name.clone(),
            }),
        );
        ctx.set_extension(crate::transport::myself::Myself(self.myself));
        let ready = self.ready;
        let outcome = lifecycle::run::<A>(self.args, &mut ctx, |_| {
            let _ = ready.send(Ok(tid));
        });
        if let Outcome::StartFailed(why) = &outcome {
            let _ = ready.send(Err(why.clone()));
        }
        let drained = ctx.drain_inbox(Instant::now() + self.env.stop_timeout);
        if drained > 0 {
            slog::warn!(
                log,
                "{drained} messages left in the inbox, counted as dead letters"
            );
        }
        if let Outcome::Failed(error) = &outcome {
            let _ = root.try_send(Report::Fatal {
                actor: self.name.clone(),
                error: error.to_string(),
            });
        }
        let _ = root.try_send(Report::Stopped {
            actor: self.name.clone(),
            drained,
            undelivered: 0,
        });
        let code = outcome.exit_code();
        match &outcome {
            Outcome::Clean => {
                slog::info!(log, "Normal shutdown"; "thread" => tid, "handled" => ctx.handled())
            }
            Outcome::StartFailed(why) | Outcome::Failed(why) => {
                slog::error!(log, "Failed: {why}"; "thread" => tid, "handled" => ctx.handled())
            }
        }
        code
    }
}
