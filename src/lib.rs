//! # mpactor
//!
//! Actors that each run in their own OS process, supervised by a root actor: clean start-up,
//! clean shutdown, signals obeyed, nothing hanging, nothing lost, everything logged.
//!
//! This facade re-exports the two crates a program uses:
//! [`actor_core`] (the [`Actor`] trait, loops, events, policy, logging) and [`actor_ipc`]
//! (the process runtime: [`Registry`], [`System`], [`Addr`]).
//!
//! ```no_run
//! use mpactor::{Actor, ActorError, Context, Registry, System, SystemConfig};
//!
//! /// Counts the numbers it gets, in its own process.
//! struct Counter { seen: u64 }
//!
//! impl Actor for Counter {
//!     type Args = ();
//!     type Msg = u64;
//!     type Event = ();
//!     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Counter { seen: 0 }) }
//!     // One call per message, until the root asks it to stop.
//!     fn handle(&mut self, _ctx: &mut Context<Self>, _n: u64) -> Result<(), ActorError> {
//!         self.seen += 1;
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<mpactor::Summary, Box<dyn std::error::Error>> {
//!     // First thing: in a child process this runs the actor and never returns.
//!     let registry = Registry::new().register::<Counter>().run_if_child();
//!     let mut system = System::<()>::new(registry, SystemConfig::new("MAIN"))?;
//!     let counter = system.spawn::<Counter>("COUNTER", ())?;
//!     for n in 0..1000 { counter.send(n)?; }
//!     system.request_stop("sent everything");
//!     // The process exits with the summary's code (0, 2 or 3) once main returned.
//!     Ok(system.run(|_root, _from, ()| {}))
//! }
//! ```

#![forbid(unsafe_code)]

pub use actor_core::slog;
pub use actor_core::{
    self, lifecycle, log, loops, signals, supervision, Actor, ActorError, ActorSummary, AppClock,
    ChildOptions, ClusterConfig, Context, ErrorChain, ExitStatus, Intensity, Isolation, Outcome,
    Recv, ReplySummary, Restart, SendTimeoutError, StopFlag, StopReason, Strategy, Summary,
    SystemConfig, TrySendError,
};
pub use actor_ipc::enable_test_support;
pub use actor_ipc::{
    self, flush_all, testkit, ActorState, ActorStatus, Addr, AskError, ContextExt, Registry,
    ReplyTo, RootCtx, SharedBytes, StartError, StopChildError, System, MAX_REPLY_BYTES,
    SHM_THRESHOLD,
};

/// Several machines: roots on many hosts as one cluster through a NATS server (the
/// `actor-nats` crate, behind the `nats` feature). See the README's "Several machines".
#[cfg(feature = "nats")]
pub use actor_nats as nats;
