//! A test kit for actors: run one actor in this process (a thread, the same lifecycle as in
//! a child process), send it messages, collect the events it emits and what it sends to probe
//! addresses, stop it, and assert on all of it, with deadlines and without sleeps.
//!
//! ```
//! use actor_core::{Actor, ActorError, Context, Outcome};
//! use actor_ipc::testkit::{probe, TestKit};
//! use actor_ipc::Addr;
//! use std::time::Duration;
//!
//! /// Doubles what it gets and passes it on; reports each value to the root.
//! struct Doubler { out: Addr<u32> }
//! impl Actor for Doubler {
//!     type Args = Addr<u32>;
//!     type Msg = u32;
//!     type Event = u32;
//!     fn init_args(out: Addr<u32>) -> Result<Self, ActorError> { Ok(Doubler { out }) }
//!     fn handle(&mut self, ctx: &mut Context<Self>, n: u32) -> Result<(), ActorError> {
//!         self.out.send(n * 2)?;
//!         ctx.emit(n)?;
//!         Ok(())
//!     }
//! }
//!
//! let (out, downstream) = probe::<u32>("DOWNSTREAM");
//! let kit = TestKit::<Doubler>::start(out).expect("started");
//! kit.send(21).expect("sent");
//! assert_eq!(downstream.recv(Duration::from_secs(5)), Some(42));
//! assert_eq!(kit.next_event(Duration::from_secs(5)), Some(21));
//! assert_eq!(kit.stop(), Outcome::Clean);
//! ```

use crate::threads::LocalInbox;
use crate::transport::{Addr, Item};
use crate::wire::counters::Counters;
use actor_core::lifecycle::{self, Outcome};
use actor_core::supervision::DEFAULT_MAILBOX_CAPACITY;
use actor_core::{
    log, Actor, AppClock, Context, ErrorChain, EventPort, SendTimeoutError, StopFlag,
};
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`TestKit::start`] waits for `startup`, and [`TestKit::stop`] for the actor to end.
pub const KIT_DEADLINE: Duration = Duration::from_secs(5);

/// One actor running in a thread of the test, with its inbox, its events and its outcome.
pub struct TestKit<A: Actor> {
    addr: Addr<A::Msg>,
    events: Receiver<A::Event>,
    counters: Counters,
    stop: StopFlag,
    handle: Option<JoinHandle<Outcome>>,
    _log: Option<log::LogHandle>,
}

struct KitEvents<E> {
    tx: Sender<E>,
}

impl<E: Send> EventPort<E> for KitEvents<E> {
    fn emit(&self, event: E) -> Result<(), SendTimeoutError<E>> {
        self.tx
            .send_timeout(event, actor_core::supervision::DEFAULT_SEND_TIMEOUT)
            .map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(ev) => SendTimeoutError::Timeout(ev),
                crossbeam_channel::SendTimeoutError::Disconnected(ev) => {
                    SendTimeoutError::Disconnected(ev)
                }
            })
    }
}

/// Why [`TestKit::start`] failed.
///
/// ```
/// use actor_ipc::testkit::{KitError, TestKit};
/// use actor_core::{Actor, ActorError, Context};
///
/// struct NeedsPort;
/// impl Actor for NeedsPort {
///     type Args = String;
///     type Msg = ();
///     type Event = ();
///     fn init_args(port: String) -> Result<Self, ActorError> {
///         port.parse::<u16>()?;               // fails: the cause is kept
///         Ok(NeedsPort)
///     }
///     fn main_loop(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> { Ok(()) }
/// }
///
/// match TestKit::<NeedsPort>::start("eighty".into()) {
///     Err(KitError::StartFailed(chain)) => {
///         assert_eq!(chain.messages(), ["init_args failed", "invalid digit found in string"]);
///     }
///     _ => panic!("expected a failed start"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// `init_args` or `startup` failed or panicked: the chain says why, level by level.
    #[error("the actor failed to start")]
    StartFailed(#[source] ErrorChain),
    /// The actor's thread could not be started.
    #[error("cannot start the actor's thread")]
    Thread(#[source] std::io::Error),
    /// `startup` did not finish within this deadline (the actor was asked to stop).
    #[error("the actor did not finish its startup within {0:?}")]
    Timeout(Duration),
}

impl<A: Actor> TestKit<A> {
    /// Starts the actor as `"TEST"` and waits until its `startup` succeeded. The error says
    /// why not: a failed `init_args`/`startup` with its chain of causes, or a start that did
    /// not finish in time (see [`KitError`]).
    pub fn start(args: A::Args) -> Result<Self, KitError> {
        Self::start_named("TEST", args)
    }

    /// Starts the actor under `name`. Logs go to stderr when `MPACTOR_LOG` is set, nowhere
    /// otherwise.
    pub fn start_named(name: &str, args: A::Args) -> Result<Self, KitError> {
        let (tx, rx) = bounded(DEFAULT_MAILBOX_CAPACITY);
        let counters = Counters::new();
        // Incarnation 1, as the root numbers them: stop frames for 0 are wake-ups.
        crate::wire::counters::next_incarnation(&counters);
        let addr = Addr::local(name.to_string(), tx.clone(), counters.clone());
        let (ev_tx, events) = bounded(DEFAULT_MAILBOX_CAPACITY);
        let logh = std::env::var_os(log::LOG_ENV)
            .map(|_| log::init(name, AppClock::start(), log::level_from(None)));
        let logger = logh
            .as_ref()
            .map(|h| h.logger.clone())
            .unwrap_or_else(log::discard);
        let stop = StopFlag::new();
        // Setting the flag (a dropped kit) wakes the actor's receive, as the runtime does.
        stop.on_set(move || {
            let _ = tx.try_send(Item::Stop(crate::transport::wake::WAKE));
        });
        let (ready_tx, ready_rx) = bounded::<Result<(), ErrorChain>>(1);
        let mut ctx: Context<A> = Context::new(
            name,
            logger,
            AppClock::start(),
            stop.clone(),
            Box::new(LocalInbox::new(rx, counters.clone())),
            Box::new(KitEvents { tx: ev_tx }),
        );
        ctx.set_extension(crate::transport::myself::Myself(addr.clone()));
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let ready = ready_tx;
                let outcome = lifecycle::run::<A>(args, &mut ctx, |_| {
                    let _ = ready.send(Ok(()));
                });
                if let Outcome::StartFailed(why) = &outcome {
                    let _ = ready.send(Err(why.clone()));
                }
                outcome
            })
            .map_err(KitError::Thread)?;
        match ready_rx.recv_timeout(KIT_DEADLINE) {
            Ok(Ok(())) => Ok(Self {
                addr,
                events,
                counters,
                stop,
                handle: Some(handle),
                _log: logh,
            }),
            Ok(Err(why)) => Err(KitError::StartFailed(why)),
            Err(_) => {
                stop.set();
                Err(KitError::Timeout(KIT_DEADLINE))
            }
        }
    }

    /// The actor's address: send to it, or hand it to other actors under test.
    pub fn addr(&self) -> Addr<A::Msg> {
        self.addr.clone()
    }

    /// Sends a message (bounded, like any [`Addr::send`]).
    pub fn send(&self, msg: A::Msg) -> Result<(), SendTimeoutError<A::Msg>>
    where
        A::Msg: Serialize,
    {
        self.addr.send(msg)
    }

    /// The next event the actor emitted, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<A::Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Every event emitted so far, without waiting.
    pub fn events(&self) -> Vec<A::Event> {
        self.events.try_iter().collect()
    }

    /// Messages handed to the actor so far.
    pub fn handled(&self) -> u64 {
        Counters::load(&self.counters.get().handled)
    }

    /// Waits until the actor has been handed at least `n` messages; false at the deadline.
    pub fn wait_handled(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.handled() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Asks the actor to stop (behind every message already sent), waits for it to finish
    /// and returns how its life ended. Panics if it does not end within [`KIT_DEADLINE`]:
    /// an actor that ignores its stop is a failing test.
    pub fn stop(mut self) -> Outcome {
        let deadline = Instant::now() + KIT_DEADLINE;
        let incarnation = crate::wire::counters::ask_stop(&self.counters);
        self.addr.send_stop(deadline, incarnation);
        let handle = self.handle.take().expect("stop is called once");
        while !handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the actor did not stop within {KIT_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        handle.join().unwrap_or_else(|_| {
            Outcome::Failed(ErrorChain::from_messages(["the actor's thread panicked"]))
        })
    }
}

impl<A: Actor> Drop for TestKit<A> {
    fn drop(&mut self) {
        // A test that panicked before `stop`: do not leave the actor looping.
        self.stop.set();
    }
}

/// The receiving end of a probe address: what an actor under test sent to it.
pub struct Probe<M> {
    rx: Receiver<Item<M>>,
}

/// An address for an actor under test to send to, and the probe that reads what arrives.
pub fn probe<M: Serialize + Send + 'static>(name: &str) -> (Addr<M>, Probe<M>) {
    let (tx, rx) = bounded(DEFAULT_MAILBOX_CAPACITY);
    (
        Addr::local(name.to_string(), tx, Counters::new()),
        Probe { rx },
    )
}

impl<M> Probe<M> {
    /// The next message, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<M> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Item::Msg(m)) => return Some(m),
                Ok(Item::Stop(_) | Item::Encoded(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Everything that arrived so far, without waiting.
    pub fn drain(&self) -> Vec<M> {
        self.rx
            .try_iter()
            .filter_map(|item| match item {
                Item::Msg(m) => Some(m),
                Item::Stop(_) | Item::Encoded(_) => None,
            })
            .collect()
    }
}
