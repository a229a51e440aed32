//! The bootstrap: how a freshly executed child finds its root and gets its inbox.
//!
//! 1. The root opens an `IpcOneShotServer` in a directory only its user can enter, and starts
//!    the child with the server's name, a per-spawn secret and the actor's type and name in its
//!    environment.
//! 2. The child connects and sends [`Boot::Hello`]: the secret, its pid, and a sender on
//!    which it wants its [`Setup`].
//! 3. The root checks the secret and the pid, and sends the `Setup`: the `Args`, the inbox,
//!    the shared counters, the root's report address, the lifeline and the clock's zero.
//! 4. The child runs `startup` and says [`Boot::Started`] (or [`Boot::StartFailed`]) on the
//!    same connection.
//!
//! Every wait in it has a deadline; `accept`, which has none in ipc-channel, runs on a thread
//! the root can abandon, and is unblocked by connecting to it.

use crate::addr::{Addr, Frame};
use crate::counters::Counters;
use actor_core::{AppClock, Report};
use ipc_channel::ipc::{IpcReceiver, OpaqueIpcSender};
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
    StartFailed(String),
    /// Sent by the root to itself to unblock an abandoned `accept`.
    Abort,
}

/// Everything a child needs, sent by the root after the hello.
#[derive(Serialize, Deserialize)]
#[serde(
    bound = "Args: Serialize + for<'a> Deserialize<'a>, Msg: Serialize + for<'a> Deserialize<'a> + Send + 'static, Event: Serialize + for<'a> Deserialize<'a> + Send + 'static"
)]
pub(crate) struct Setup<Args, Msg: Send + 'static, Event: Send + 'static> {
    pub name: String,
    pub args: Args,
    pub inbox: IpcReceiver<Frame<Msg>>,
    pub counters: Counters,
    pub root: Addr<Report<Event>>,
    pub lifeline: IpcReceiver<()>,
    pub clock: AppClock,
    pub log_level: String,
    pub stop_timeout_ms: u64,
}

/// A secret for one spawn: 128 random bits, hex.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Fall back to something unguessable enough from outside: time and pid mixed.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
