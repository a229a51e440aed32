//! [`RemoteExt`]: what only an address of an actor on another machine has.

use crate::link::{LinkInner, RemoteStats};
use actor_ipc::Addr;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What an [`Addr`] of an actor on another node (from [`Cluster::lookup`](crate::Cluster::lookup),
/// or received in `Args` or a message) says beyond the sends: what became of this process's
/// messages to it, a wait until they are all accounted for, and the node that runs it. On an
/// address of an actor on this machine each says so (`None`, or nothing to wait for).
///
/// ```no_run
/// # fn demo(consumer: actor_ipc::Addr<u64>) -> Result<(), Box<dyn std::error::Error>> {
/// use actor_nats::RemoteExt;
/// use std::time::Duration;
/// consumer.send(1)?;
/// if consumer.flush_remote(Duration::from_secs(5)) {
///     let stats = consumer.remote_stats().expect("a remote address");
///     assert_eq!(stats.sent, stats.delivered + stats.dead_letters + stats.in_doubt);
/// }
/// # Ok(()) }
/// ```
pub trait RemoteExt {
    /// What became of what this process sent to the actor so far; `None` for an actor on
    /// this machine (its root's summary counts those).
    fn remote_stats(&self) -> Option<RemoteStats>;

    /// Waits at most `timeout` until nothing this process sent to the actor is pending
    /// (every message delivered, dead-lettered or in doubt). True if so; true at once for an
    /// actor on this machine.
    fn flush_remote(&self, timeout: Duration) -> bool;

    /// The node that runs the actor; `None` for an actor on this machine.
    fn remote_node(&self) -> Option<&str>;
}

impl<M: Serialize + Send + 'static> RemoteExt for Addr<M> {
    fn remote_stats(&self) -> Option<RemoteStats> {
        link_of(self).map(LinkInner::stats)
    }

    fn flush_remote(&self, timeout: Duration) -> bool {
        let Some(link) = link_of(self) else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if link.stats().pending == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // A wait on another machine's progress: short naps, bounded by the deadline.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn remote_node(&self) -> Option<&str> {
        self.remote_link().map(|l| l.node())
    }
}

/// This crate's link behind `addr`, if it is a remote address of this crate's scheme.
fn link_of<M: Serialize + Send + 'static>(addr: &Addr<M>) -> Option<&LinkInner> {
    addr.remote_link()?.as_any().downcast_ref::<LinkInner>()
}
