//! The bootstrap's wire: what a freshly executed child finds in its environment, the
//! messages it exchanges with the root on its bootstrap connection, and the per-spawn secret.
//! The handshake itself (and the `Setup` the child receives) is `crate::handshake`; the
//! root's listening socket is `crate::sys::listener`.
//!
//! 1. The root binds a listener (`crate::sys::listener`) in a directory only its user can enter (0700, whatever
//!    the umask), and starts the child with the socket's path, a per-spawn secret and the
//!    actor's type and name in its environment.
//! 2. The child connects and sends [`Boot::Hello`]: the secret, its pid, and a sender on
//!    which it wants its `Setup`.
//! 3. The root checks the secret and the pid, and sends the `Setup`: the `Args`, the inbox,
//!    the shared counters, the root's report address, the actor's own address, the lifeline and the clock's zero.
//! 4. The child runs `startup` and says [`Boot::Started`] (or [`Boot::StartFailed`]) on the
//!    same connection.
//!
//! Every wait in it has a deadline. The root accepts only the process it spawned (checked with
//! `SO_PEERCRED` before anything is read), so no other process can take the child's place or
//! feed ipc-channel's frame parser, which trusts its peer, garbage.

use ipc_channel::ipc::OpaqueIpcSender;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Environment: the actor type the child must run (set only in children).
pub(crate) const ENV_CHILD: &str = "MPACTOR_CHILD";
/// Environment: the bootstrap server's name.
pub(crate) const ENV_SERVER: &str = "MPACTOR_BOOTSTRAP";
/// Environment: the per-spawn secret.
pub(crate) const ENV_SECRET: &str = "MPACTOR_SECRET";
/// Environment: the actor's name.
pub(crate) const ENV_NAME: &str = "MPACTOR_ACTOR";

/// How long a child waits for its setup after saying hello.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages from the child on the bootstrap connection.
#[derive(Serialize, Deserialize)]
pub(crate) enum Boot {
    Hello {
        secret: String,
        pid: u32,
        setup: OpaqueIpcSender,
    },
    Started,
    /// Why, level by level: the root's `StartError` keeps it as its source.
    StartFailed(actor_core::ErrorChain),
}
