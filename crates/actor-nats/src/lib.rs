//! # actor-nats
//!
//! mpactor across machines: roots on several hosts form a cluster through a NATS server
//! (core NATS, no JetStream). A root joins with [`Cluster::join`], publishes local actors
//! under cluster-wide names, and finds other nodes' actors with [`Cluster::lookup`], which
//! gives an ordinary [`Addr<M>`](actor_ipc::Addr) of the remote flavor: bounded, accounted,
//! `Disconnected` while the actor's node is down, and taken as it is by code written against
//! `Addr` (hand it to local actors, put it in messages, to this node or another).
//! [`RemoteExt`] adds what only a remote address has: its statistics, a flush, its node.
//! [`Addr::ask`](actor_ipc::Addr::ask) works on it too: the answer comes back through the
//! server, to a reply subject of the asking process, and into the asking thread's reply
//! inbox (at most once; the ask's deadline bounds the wait).
//!
//! * Flow control end to end: the receiving node grants each sending process credit from
//!   the actor's free mailbox slots, so a fast producer never overruns a slow consumer and
//!   NATS' slow-consumer protection never has to drop anything (what is dropped anyway is
//!   counted: [`Cluster::slow_consumer_drops`], and gaps show as dead letters).
//! * Accounting: [`RemoteStats`] per remote actor: delivered (confirmed handed to the
//!   actor), dead letters, in doubt (published, unconfirmed when its node went away).
//! * Liveness: every node publishes a heartbeat every [`HEARTBEAT_INTERVAL`]; one silent for
//!   [`DEAD_AFTER`] is down (noticed within 3 s of its death), and the root hears of it as a
//!   [`ClusterEvent`].
//!
//! The client runs on a private tokio runtime thread per process; everything here is
//! synchronous and has a deadline. See `docs/SEMANTICS.md` ("Across machines").

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod cluster;
mod conn;
mod event;
mod ext;
mod gateway;
mod link;
mod proto;
mod reply;
mod shared;
pub mod testkit;

pub use cluster::{Cluster, LookupError};
pub use event::ClusterEvent;
pub use ext::RemoteExt;
pub use link::RemoteStats;
pub use shared::{DEAD_AFTER, HEARTBEAT_INTERVAL};

/// A random 64-bit number (boot ids, process tokens): the clock's nanoseconds mixed with
/// the pid through std's randomly seeded hasher.
pub(crate) fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}
