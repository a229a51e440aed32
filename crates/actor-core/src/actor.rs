//! The [`Actor`] trait and the [`Context`] an actor works through.

use crate::clock::AppClock;
use crate::error::{ActorError, SendError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An actor: one process (or thread) with one inbox of one message type.
///
/// The lifecycle is mptools' worker lifecycle: [`init_args`](Actor::init_args) builds the
/// actor from what the root handed over, [`startup`](Actor::startup) must succeed before the
/// root hears "started", [`main_loop`](Actor::main_loop) runs until the actor is asked to stop,
/// and [`shutdown`](Actor::shutdown) always runs: after `main_loop` returned, failed or
/// panicked, and after a failed `startup`.
///
/// Most actors write `main_loop` with a ready-made loop from [`crate::loops`]:
///
/// ```
/// use actor_core::{loops, Actor, ActorError, Context};
///
/// /// Adds up the numbers it is sent.
/// struct Adder { total: u64 }
///
/// impl Actor for Adder {
///     type Args = u64;           // the starting total
///     type Msg = u64;            // what its inbox carries
///     type Event = ();           // it reports nothing of its own to the root
///
///     fn init_args(start: u64) -> Result<Self, ActorError> {
///         Ok(Adder { total: start })
///     }
///
///     fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
///         // One call per message, until the root asks this actor to stop.
///         loops::queue(self, ctx, |this, _ctx, n| {
///             this.total += n;
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait Actor: Sized + 'static {
    /// What the root hands over at spawn (and again at every restart).
    type Args: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// The one message type of this actor's inbox.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// The application's own event type, reported to the root with [`Context::emit`].
    /// Every actor of one system shares it; use `()` when an actor reports nothing.
    type Event: Serialize + DeserializeOwned + Send + 'static;

    /// Builds the actor from its arguments, in its own process.
    fn init_args(args: Self::Args) -> Result<Self, ActorError>;

    /// Prepares the actor (open files, bind sockets). An error here is a failed start: the
    /// root's start of this actor fails at once with this error.
    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }

    /// The actor's work. Returns when [`Context::should_stop`] says so (the ready-made loops
    /// do this for you), or with an error that is reported to the root as fatal.
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError>;

    /// Cleans up. Always runs, whatever `main_loop` did.
    fn shutdown(&mut self, _ctx: &mut Context<Self>) {}
}

/// What a receive from the inbox gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<M> {
    /// A message.
    Msg(M),
    /// Nothing arrived before the wait's deadline.
    Timeout,
    /// The actor is asked to stop: every message accepted before the stop request has been
    /// received already.
    Stop,
}

/// The receiving side of an inbox, as a runtime provides it. Users call
/// [`Context::recv`]; runtimes implement this.
pub trait InboxPort<M>: Send {
    /// Waits at most `timeout` for the next message or the stop request.
    fn recv_timeout(&mut self, timeout: Duration) -> Recv<M>;
    /// True once the supervisor has asked this actor to stop (the stop request may still be
    /// queued behind messages).
    fn stop_requested(&self) -> bool;
    /// Counts as dead letters the messages this incarnation received but did not hand to the
    /// actor (taken out of the inbox in a batch), and returns how many. What is still queued
    /// in the inbox stays there for the next incarnation (the inbox outlives the actor); the
    /// supervisor drains and counts it when the actor is gone for good. Bounded by `deadline`.
    fn drain(&mut self, deadline: Instant) -> u64;
    /// How many messages this incarnation handed to the actor.
    fn handled(&self) -> u64;
}

/// The sending side towards the supervisor, as a runtime provides it.
pub trait EventPort<E>: Send {
    /// Sends an application event to the supervisor.
    fn emit(&self, event: E) -> Result<(), SendError<E>>;
}

/// A stop flag set by the runtime (a signal, the root going away) and read by the actor.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the flag.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once set.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The longest a single wait inside [`Context::recv`] lasts before the local stop flag is
/// looked at again: it bounds how late a stop set by a signal or by the root's death is seen.
pub const STOP_POLL: Duration = Duration::from_millis(20);

/// What an actor works through: its name, its inbox, the stop flag, the way to the root,
/// the logger and the application clock.
pub struct Context<A: Actor> {
    name: String,
    log: slog::Logger,
    clock: AppClock,
    stop: StopFlag,
    inbox: Box<dyn InboxPort<A::Msg>>,
    events: Box<dyn EventPort<A::Event>>,
}

impl<A: Actor> Context<A> {
    /// Assembles a context. Runtimes call this; actors receive it.
    pub fn new(
        name: impl Into<String>,
        log: slog::Logger,
        clock: AppClock,
        stop: StopFlag,
        inbox: Box<dyn InboxPort<A::Msg>>,
        events: Box<dyn EventPort<A::Event>>,
    ) -> Self {
        Self {
            name: name.into(),
            log,
            clock,
            stop,
            inbox,
            events,
        }
    }

    /// The actor's name, as given in its child spec (`"CONSUMER"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The logger: every line it writes carries this actor's name and the application time.
    pub fn log(&self) -> &slog::Logger {
        &self.log
    }

    /// The application clock (one zero for all processes).
    pub fn clock(&self) -> AppClock {
        self.clock
    }

    /// True when the actor should leave its main loop: the root asked it to stop, or the
    /// runtime set the stop flag (the root is gone). A custom loop polls this between
    /// bounded waits.
    pub fn should_stop(&self) -> bool {
        self.stop.is_set() || self.inbox.stop_requested()
    }

    /// The stop flag itself, to hand to a helper thread of the actor.
    pub fn stop_flag(&self) -> StopFlag {
        self.stop.clone()
    }

    /// Waits at most `timeout` for the next message. Returns [`Recv::Stop`] once the stop
    /// request has arrived (after every message accepted before it) or the runtime's stop flag
    /// is set.
    pub fn recv(&mut self, timeout: Duration) -> Recv<A::Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stop.is_set() {
                return Recv::Stop;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left.min(STOP_POLL)) {
                Recv::Timeout if Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    /// Reports an application event to the root (routed by the root's event handler).
    pub fn emit(&self, event: A::Event) -> Result<(), SendError<A::Event>> {
        self.events.emit(event)
    }

    /// Messages handed to this actor so far (by this incarnation).
    pub fn handled(&self) -> u64 {
        self.inbox.handled()
    }

    /// Runtime use: drains what is left in the inbox after the actor stopped, as dead letters.
    pub fn drain_inbox(&mut self, deadline: Instant) -> u64 {
        self.inbox.drain(deadline)
    }
}
