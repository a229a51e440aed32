//! [`ContextExt`]: what the process runtime adds to an actor's [`Context`]: its own address.
//!
//! `actor-core`'s `Context` is transport-free and has no address type; the runtime attaches
//! the actor's [`Addr`] to the context when it builds it (`Context::set_extension`), and this
//! trait reads it back, typed. An extension trait rather than a method taking a type
//! parameter: `ctx.myself()` reads like ractor's `myself` and OTP's `self()`, its type is
//! `Addr<Self::Msg>` without annotations, and it is one `use` away (the `mpactor` facade
//! re-exports it).

use crate::transport::Addr;
use actor_core::{Actor, Context};

/// The actor's own address as the runtime attached it.
pub(crate) struct Myself<M: Send + 'static>(pub Addr<M>);

/// What the process runtime adds to [`Context`].
pub trait ContextExt<A: Actor> {
    /// The actor's own address: an ordinary [`Addr`] of its inbox, to hand to other actors
    /// (in a message, for their replies) or to send to itself. Like every `Addr`, it survives
    /// restarts: a copy handed out by one incarnation reaches the next. In a system of
    /// processes it is serializable; with [`Isolation::Threads`](actor_core::Isolation) it
    /// stays in the process, like every address there.
    ///
    /// ```
    /// use actor_ipc::{Addr, ContextExt};
    /// use actor_core::{Actor, ActorError, Context};
    /// use serde::{Deserialize, Serialize};
    ///
    /// /// Asks a clock for the time, with its own address for the answer.
    /// #[derive(Serialize, Deserialize)]
    /// enum Msg { Tick, Time(u64) }
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Ask { reply_to: Addr<Msg> }
    ///
    /// struct Asker { clock: Addr<Ask> }
    ///
    /// impl Actor for Asker {
    ///     type Args = Addr<Ask>;
    ///     type Msg = Msg;
    ///     type Event = u64;
    ///     fn init_args(clock: Addr<Ask>) -> Result<Self, ActorError> { Ok(Asker { clock }) }
    ///     fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) -> Result<(), ActorError> {
    ///         match msg {
    ///             Msg::Tick => Ok(self.clock.send(Ask { reply_to: ctx.myself() })?),
    ///             Msg::Time(t) => Ok(ctx.emit(t)?),
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// If the context was not built by `actor-ipc` (its `System` or its `testkit` build every
    /// context an actor gets; only a hand-made `Context::new` lacks it).
    fn myself(&self) -> Addr<A::Msg>;
}

impl<A: Actor> ContextExt<A> for Context<A> {
    fn myself(&self) -> Addr<A::Msg> {
        match self.extension::<Myself<A::Msg>>() {
            Some(Myself(addr)) => addr.clone(),
            None => panic!(
                "Context::myself: the context of {} was not built by the actor-ipc runtime",
                self.name()
            ),
        }
    }
}
