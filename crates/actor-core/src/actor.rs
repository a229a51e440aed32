//! The [`Actor`] trait and the [`Context`] an actor works through.

use crate::clock::AppClock;
use crate::error::{ActorError, SendTimeoutError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An actor: one process (or thread) with one inbox of one message type.
///
/// The lifecycle is mptools' worker lifecycle: [`init_args`](Actor::init_args) builds the
/// actor from what the root handed over, [`startup`](Actor::startup) must succeed before the
/// root hears "started", [`main_loop`](Actor::main_loop) runs until the actor is asked to stop,
/// and [`shutdown`](Actor::shutdown) always runs: after `main_loop` returned, failed or
/// panicked, and after a failed `startup`.
///
/// An actor that only handles messages writes [`handle`](Actor::handle): the default
/// `main_loop` calls it once per message until the actor is asked to stop (mptools'
/// `QueueProcWorker`):
///
/// ```
/// use actor_core::{Actor, ActorError, Context};
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
///     fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) -> Result<(), ActorError> {
///         self.total += n;
///         Ok(())
///     }
/// }
/// ```
///
/// An actor that also does something every interval says how often with
/// [`tick_interval`](Actor::tick_interval) and what with [`tick`](Actor::tick) (mptools'
/// `TimerProcWorker`); an actor with a loop of its own (a socket listener, a producer)
/// writes [`main_loop`](Actor::main_loop) instead.
pub trait Actor: Sized + 'static {
    /// What the root hands over at spawn (and again at every restart).
    type Args: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// The one message type of this actor's inbox.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// The application's own event type, reported to the root with [`Context::emit`]. It is
    /// the system's: every actor of one `System<E>` has `type Event = E` (an enum when
    /// several actors report different things; `()` when none reports anything). A `spawn`
    /// of an actor with another event type does not compile ("type mismatch resolving
    /// `<A as Actor>::Event == E`").
    type Event: Serialize + DeserializeOwned + Send + 'static;

    /// The key that names this actor type between the root and the processes it starts
    /// (both run the same binary): `None` (the default) for its Rust type name
    /// ([`std::any::type_name`]), or a name of your own that stays the same whatever the
    /// type is called or where it moves. Two registered types with the same key are refused
    /// by the registry.
    ///
    /// ```
    /// # use actor_core::{Actor, ActorError, Context};
    /// struct Billing;
    /// impl Actor for Billing {
    ///     type Args = (); type Msg = u64; type Event = ();
    ///     const KEY: Option<&'static str> = Some("billing-v1");
    ///     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Billing) }
    ///     fn handle(&mut self, _: &mut Context<Self>, _cents: u64) -> Result<(), ActorError> {
    ///         Ok(())
    ///     }
    /// }
    /// ```
    const KEY: Option<&'static str> = None;

    /// Builds the actor from its arguments, in its own process.
    fn init_args(args: Self::Args) -> Result<Self, ActorError>;

    /// Prepares the actor (open files, bind sockets). An error here is a failed start: the
    /// root's start of this actor fails at once with this error.
    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }

    /// The actor's work. Returns when [`Context::should_stop`] says so (the ready-made loops
    /// do this for you), or with an error that is reported to the root as fatal.
    ///
    /// The default runs [`handle`](Actor::handle) once per message
    /// ([`loops::queue`](crate::loops::queue)) or, when
    /// [`tick_interval`](Actor::tick_interval) gives an interval, [`tick`](Actor::tick) every
    /// interval with `handle` for the messages in between
    /// ([`loops::timer`](crate::loops::timer)), until the actor is asked to stop.
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        match self.tick_interval() {
            Some(every) => crate::loops::timer(self, ctx, every, Self::tick, Self::handle),
            None => crate::loops::queue(self, ctx, Self::handle),
        }
    }

    /// Handles one message: what the default [`main_loop`](Actor::main_loop) calls for each.
    /// An error ends the actor with that error (a failure for its supervisor).
    ///
    /// An actor that writes its own `main_loop` need not write this. One that writes neither
    /// fails at its first message, with an error that says so.
    fn handle(&mut self, ctx: &mut Context<Self>, _msg: Self::Msg) -> Result<(), ActorError> {
        Err(ActorError::new(format!(
            "{} got a message but implements neither Actor::handle nor Actor::main_loop",
            ctx.name()
        )))
    }

    /// How often the default [`main_loop`](Actor::main_loop) calls [`tick`](Actor::tick):
    /// `None` (the default) for never.
    ///
    /// ```
    /// use actor_core::{Actor, ActorError, Context};
    /// use std::time::Duration;
    ///
    /// /// Reports a heartbeat every second, and takes no messages.
    /// struct Heartbeat { beats: u64 }
    ///
    /// impl Actor for Heartbeat {
    ///     type Args = ();
    ///     type Msg = ();
    ///     type Event = u64;
    ///     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Heartbeat { beats: 0 }) }
    ///     fn tick_interval(&self) -> Option<Duration> { Some(Duration::from_secs(1)) }
    ///     fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
    ///         self.beats += 1;
    ///         Ok(ctx.emit(self.beats)?)
    ///     }
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Called every [`tick_interval`](Actor::tick_interval) by the default `main_loop` (the
    /// first one interval after the start; ticks that fall behind are skipped, not bunched).
    fn tick(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }

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
#[doc(hidden)]
pub trait InboxPort<M>: Send {
    /// Waits at most `timeout` for the next message or the stop request.
    fn recv_timeout(&mut self, timeout: Duration) -> Recv<M>;
    /// The next message or the stop request if the inbox can hand it out at once, without
    /// waiting (a message it already holds); `None` when only a wait could tell.
    /// [`Context::recv`] asks this first, so a message already at hand costs no clock read.
    fn ready(&mut self) -> Option<Recv<M>> {
        None
    }
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
#[doc(hidden)]
pub trait EventPort<E>: Send {
    /// Sends an application event to the supervisor.
    fn emit(&self, event: E) -> Result<(), SendTimeoutError<E>>;
}

/// A stop flag set by the runtime (a signal, the root going away) and read by the actor.
///
/// Setting it also wakes the actor if it is blocked in [`Context::recv`]: the runtime
/// registers a wake-up with [`StopFlag::on_set`], so a receive waits for as long as its
/// caller asked and still sees a stop at once.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<FlagInner>);

/// A wake-up registered with [`StopFlag::on_set`].
type Wake = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct FlagInner {
    set: AtomicBool,
    wakes: Mutex<Vec<Wake>>,
}

impl std::fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StopFlag").field(&self.is_set()).finish()
    }
}

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the flag and runs every wake-up registered with [`StopFlag::on_set`].
    pub fn set(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        for wake in self.wakes().iter() {
            wake();
        }
    }
    /// True once set.
    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }
    #[doc(hidden)]
    /// Runtime use: runs `wake` each time the flag is set (at once if it is set already).
    /// A runtime wakes the actor's blocked receive with it (a control frame into its own
    /// inbox), so that nothing needs to poll the flag. `wake` must not block: it runs on
    /// whatever thread sets the flag (a signal thread, the lifeline watch).
    pub fn on_set(&self, wake: impl Fn() + Send + Sync + 'static) {
        let mut wakes = self.wakes();
        if self.is_set() {
            wake();
        }
        wakes.push(Box::new(wake));
    }
    fn wakes(&self) -> std::sync::MutexGuard<'_, Vec<Wake>> {
        // A wake-up that panicked leaves the list as it was: still usable.
        self.0.wakes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an actor works through: its name, its inbox, the stop flag, the way to the root,
/// the logger and the application clock.
pub struct Context<A: Actor> {
    name: String,
    log: slog::Logger,
    clock: AppClock,
    stop: StopFlag,
    inbox: Box<dyn InboxPort<A::Msg>>,
    events: Box<dyn EventPort<A::Event>>,
    /// What the runtime adds of its own (see [`Context::set_extension`]).
    extensions: Vec<Box<dyn Any + Send>>,
}

impl<A: Actor> Context<A> {
    /// Assembles a context. Runtimes call this; actors receive it.
    #[doc(hidden)]
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
            extensions: Vec::new(),
        }
    }

    #[doc(hidden)]
    /// Runtime use: attaches a value of the runtime's own to this context (one per type; a
    /// second value of a type replaces the first). `actor-core` knows nothing of transports:
    /// this is how a runtime hands the actor what only it can make, such as the actor's own
    /// address (`actor_ipc::ContextExt::myself`).
    pub fn set_extension<T: Any + Send>(&mut self, value: T) {
        self.extensions.retain(|e| !e.is::<T>());
        self.extensions.push(Box::new(value));
    }

    /// The value of type `T` the runtime attached with [`Context::set_extension`], if any.
    pub fn extension<T: Any>(&self) -> Option<&T> {
        self.extensions.iter().find_map(|e| e.downcast_ref::<T>())
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
    ///
    /// The wait is event-driven: it sleeps until a message, the stop request, or the stop
    /// flag being set (a signal, the root's death: the runtime then wakes the receive), or
    /// until `timeout`. An idle actor costs no wake-ups however long it waits.
    pub fn recv(&mut self, timeout: Duration) -> Recv<A::Msg> {
        if self.stop.is_set() {
            return Recv::Stop;
        }
        // What the inbox already holds goes out without reading the clock: the two reads
        // below cost a receiver of small messages a third of its time per message.
        if let Some(ready) = self.inbox.ready() {
            return ready;
        }
        // A timeout too long to add to the clock waits as long as the clock can say.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.stop.is_set() {
                return Recv::Stop;
            }
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            match self.inbox.recv_timeout(left) {
                // Woken before the deadline (by a wake-up for the flag, a signal, the
                // inbox's own longest wait): look at the flag and wait for the rest.
                Recv::Timeout if deadline.is_none_or(|d| Instant::now() < d) => continue,
                other => return other,
            }
        }
    }

    /// Reports an application event to the root (routed by the root's event handler).
    pub fn emit(&self, event: A::Event) -> Result<(), SendTimeoutError<A::Event>> {
        self.events.emit(event)
    }

    /// Messages handed to this actor so far (by this incarnation).
    pub fn handled(&self) -> u64 {
        self.inbox.handled()
    }

    #[doc(hidden)]
    /// Runtime use: drains what is left in the inbox after the actor stopped, as dead letters.
    pub fn drain_inbox(&mut self, deadline: Instant) -> u64 {
        self.inbox.drain(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn setting_the_flag_runs_every_wake_up_and_a_late_one_at_once() {
        let flag = StopFlag::new();
        let woken = Arc::new(AtomicU32::new(0));
        let w = woken.clone();
        flag.on_set(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(woken.load(Ordering::SeqCst), 0, "not set yet: nobody woken");
        flag.clone().set();
        assert!(flag.is_set());
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // Registered after the flag was set: runs at once, or the wait it guards would sleep.
        let w = woken.clone();
        flag.on_set(move || {
            w.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(woken.load(Ordering::SeqCst), 11);
    }

    /// An inbox that holds messages at hand and counts the waits asked of it.
    struct Held {
        at_hand: std::collections::VecDeque<u32>,
        waits: Arc<AtomicU32>,
    }

    impl InboxPort<u32> for Held {
        fn recv_timeout(&mut self, _timeout: Duration) -> Recv<u32> {
            self.waits.fetch_add(1, Ordering::SeqCst);
            match self.at_hand.pop_front() {
                Some(m) => Recv::Msg(m),
                None => Recv::Stop,
            }
        }
        fn ready(&mut self) -> Option<Recv<u32>> {
            self.at_hand.pop_front().map(Recv::Msg)
        }
        fn stop_requested(&self) -> bool {
            false
        }
        fn drain(&mut self, _deadline: Instant) -> u64 {
            0
        }
        fn handled(&self) -> u64 {
            0
        }
    }

    struct Quiet;

    impl EventPort<()> for Quiet {
        fn emit(&self, _event: ()) -> Result<(), SendTimeoutError<()>> {
            Ok(())
        }
    }

    struct Counting;

    impl Actor for Counting {
        type Args = ();
        type Msg = u32;
        type Event = ();
        fn init_args(_: ()) -> Result<Self, ActorError> {
            Ok(Counting)
        }
    }

    #[test]
    fn messages_at_hand_are_handed_out_without_a_wait_and_the_stop_still_comes_first() {
        let waits = Arc::new(AtomicU32::new(0));
        let inbox = Held {
            at_hand: (1..=3).collect(),
            waits: waits.clone(),
        };
        let stop = StopFlag::new();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let mut ctx = Context::<Counting>::new(
            "C",
            log,
            AppClock::start(),
            stop.clone(),
            Box::new(inbox),
            Box::new(Quiet),
        );
        for want in 1..=2 {
            assert!(matches!(ctx.recv(Duration::from_secs(5)), Recv::Msg(m) if m == want));
        }
        // Neither took the wait (nor the clock reads around it).
        assert_eq!(waits.load(Ordering::SeqCst), 0);
        stop.set();
        assert!(matches!(ctx.recv(Duration::from_secs(5)), Recv::Stop));
    }
}
