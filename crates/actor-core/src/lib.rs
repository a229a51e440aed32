//! # actor-core
//!
//! The transport-free heart of mpactor: what an actor is and how it lives, independent of
//! whether it runs in its own process (`actor-ipc`) or elsewhere.
//!
//! * [`Actor`]: the trait, with the lifecycle `init_args` → `startup` → `main_loop` →
//!   `shutdown` (always) and typed `Args`, `Msg` and `Event`.
//! * [`Context`]: what an actor works through: its name, its inbox ([`Context::recv`]), the
//!   stop flag ([`Context::should_stop`]), events to the root ([`Context::emit`]), the logger
//!   and the [`AppClock`].
//! * [`loops`]: the loops the default `main_loop` runs ([`loops::queue`] with
//!   [`Actor::handle`], [`loops::timer`] with [`Actor::tick`]), for a `main_loop` of one's own.
//! * [`lifecycle`]: runs an actor through its lifecycle, panics caught.
//! * [`supervision`]: restart types, strategies, intensity, and the default deadlines.
//! * [`events`]: reports from actors to the root, exit statuses and the final [`Summary`].
//! * [`log`]: the slog logger every process uses; [`signals`]: the signal policy.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mpactor runs on Linux only: it relies on pidfds, SO_PEERCRED, PR_SET_PDEATHSIG and \
     ipc-channel's Linux layout (see the README's compatibility section)"
);

pub mod actor;
pub mod clock;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod log;
pub mod loops;
pub mod signals;
pub mod supervision;

pub use actor::{Actor, Context, Recv, StopFlag};
// Runtime-only: what a runtime implements to host actors (actor-ipc does); not for actors.
#[doc(hidden)]
pub use actor::{EventPort, InboxPort};
pub use clock::AppClock;
pub use error::{ActorError, ErrorChain, SendTimeoutError, TrySendError};
pub use events::{ActorSummary, ExitStatus, ReplySummary, Report, StopReason, Summary};
pub use lifecycle::Outcome;
pub use supervision::{
    ChildOptions, ClusterConfig, Intensity, IntensityTracker, Isolation, Restart, Strategy,
    SystemConfig,
};

/// Re-exported so users name the logger type without a direct slog dependency.
pub use slog;
