//! Ready-made main loops, and the parts they are made of.
//!
//! * [`queue`]: one handler call per inbox message (mptools' `QueueProcWorker`).
//! * [`timer`]: a tick every interval, with messages handled between ticks (mptools'
//!   `TimerProcWorker`).
//!
//! The default [`Actor::main_loop`] runs one of them with the actor's own
//! [`handle`](Actor::handle) and [`tick`](Actor::tick): an actor needs them by name only
//! when it writes a `main_loop` of its own (to do something before the loop, say).
//!
//! A custom loop (a socket listener, a producer) polls [`Context::should_stop`] between
//! bounded waits and calls [`Context::recv`] with a short timeout when it wants messages.

use crate::actor::{Actor, Context, Recv};
use crate::error::ActorError;
use std::time::{Duration, Instant};

/// The longest single wait of [`queue`] for a message. Not how a stop is seen: the wait is
/// event-driven (a message, the stop request, a signal, the root's death each end it at
/// once); this only bounds one call to [`Context::recv`], so that the loop has a deadline
/// like every wait. Idle, it costs one wake-up a minute.
pub const QUEUE_POLL: Duration = Duration::from_secs(60);

/// Calls `handle` once per inbox message until the stop request arrives. The stop request is
/// queued behind every message accepted before it, so a clean stop handles all of them.
/// An error from `handle` ends the loop with that error (a fatal event for the root).
///
/// ```
/// # use actor_core::{loops, Actor, ActorError, Context};
/// struct Printer;
/// impl Actor for Printer {
///     type Args = ();
///     type Msg = String;
///     type Event = ();
///     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Printer) }
///     fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
///         loops::queue(self, ctx, |_this, ctx, line| {
///             slog::info!(ctx.log(), "{line}");
///             Ok(())
///         })
///     }
/// }
/// ```
pub fn queue<A, F>(actor: &mut A, ctx: &mut Context<A>, mut handle: F) -> Result<(), ActorError>
where
    A: Actor,
    F: FnMut(&mut A, &mut Context<A>, A::Msg) -> Result<(), ActorError>,
{
    loop {
        match ctx.recv(QUEUE_POLL) {
            Recv::Msg(msg) => handle(actor, ctx, msg)?,
            Recv::Timeout => continue,
            Recv::Stop => return Ok(()),
        }
    }
}

/// Calls `tick` every `interval` (the first tick one interval after the start) and `handle`
/// for each message that arrives in between, until the stop request arrives. The stop is
/// noticed at once, not at the next tick. Ticks that fall behind are skipped, not bunched.
///
/// ```
/// # use actor_core::{loops, Actor, ActorError, Context};
/// # use std::time::Duration;
/// struct Heartbeat { beats: u64 }
/// impl Actor for Heartbeat {
///     type Args = ();
///     type Msg = ();
///     type Event = u64;
///     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Heartbeat { beats: 0 }) }
///     fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
///         loops::timer(self, ctx, Duration::from_secs(1),
///             |this, ctx| { this.beats += 1; ctx.emit(this.beats).map_err(Into::into) },
///             |_this, _ctx, ()| Ok(()))
///     }
/// }
/// ```
pub fn timer<A, T, H>(
    actor: &mut A,
    ctx: &mut Context<A>,
    interval: Duration,
    mut tick: T,
    mut handle: H,
) -> Result<(), ActorError>
where
    A: Actor,
    T: FnMut(&mut A, &mut Context<A>) -> Result<(), ActorError>,
    H: FnMut(&mut A, &mut Context<A>, A::Msg) -> Result<(), ActorError>,
{
    let interval = interval.max(Duration::from_millis(1));
    let mut next = Instant::now() + interval;
    loop {
        let now = Instant::now();
        if now >= next {
            tick(actor, ctx)?;
            next += interval;
            let now = Instant::now();
            if next <= now {
                // Fell behind (a slow tick, a stopped process): skip the missed ticks.
                next = now + interval;
            }
            continue;
        }
        match ctx.recv(next - now) {
            Recv::Msg(msg) => handle(actor, ctx, msg)?,
            Recv::Timeout => {}
            Recv::Stop => return Ok(()),
        }
    }
}
