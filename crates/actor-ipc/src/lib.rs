//! # actor-ipc
//!
//! mpactor's process runtime: every actor runs in its own OS process, started by
//! re-executing the current binary, with one ipc-channel inbox; a root [`System`] supervises
//! them.
//!
//! * [`Registry`]: the actor types a binary can run; `main` calls
//!   [`Registry::run_if_child`] first.
//! * [`System`]: the root: [`System::spawn`] starts children in order, [`System::run`]
//!   watches them and routes events until a stop, then stops and drains everything and
//!   returns the [`Summary`](actor_core::Summary).
//! * [`Addr`]: an actor's address, bounded and serializable; [`ContextExt::myself`] gives an
//!   actor its own.
//! * [`SharedBytes`]: large payloads that the receiving actor reads in place; every message
//!   larger than [`SHM_THRESHOLD`] travels in shared memory.
//!
//! See `docs/SEMANTICS.md` at the repository root for every guarantee and deadline.

#![warn(missing_docs)]
// `unsafe` lives in `sys` only (ipc-channel's layout, shared-memory mappings, `pre_exec`,
// the few system calls without a safe wrapper); everywhere else it is refused, tests too.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "mpactor runs on Linux only: it relies on pidfds, SO_PEERCRED, PR_SET_PDEATHSIG and \
     ipc-channel's Linux layout (see the README's compatibility section)"
);

// Floors that only look down: `sys` (the operating system) → `wire` (what travels between
// processes) → `transport` (addresses and inboxes) → supervision (the rest: the handshake,
// the child's side, slots, the root, thread actors, the test kit).
#[allow(unsafe_code)]
mod sys;
mod transport;
mod wire;

mod child;
mod handshake;
mod slot;
mod system;
mod test_support;
pub mod testkit;
mod threads;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod shm_tests;
#[cfg(test)]
mod writer_tests;

pub use child::{Registry, ORPHAN_GRACE};
pub use slot::StartError;
pub use system::{ActorState, ActorStatus, RootCtx, StopChildError, System};
pub use transport::ask::{AskError, ReplyTo, MAX_REPLY_BYTES};
pub use transport::myself::ContextExt;
pub use transport::{
    deliver_remote_reply, flush_all, Addr, LinkError, RemoteLink, RemoteScheme, ReplyRoute,
    ReplyScheme, Resolve, ResolveRoute, ENV_NO_DIRECT, MAX_BATCH,
};
pub use wire::frame::FRAME_BYTES;
pub use wire::shared_bytes::SharedBytes;
pub use wire::shm::SHM_THRESHOLD;
