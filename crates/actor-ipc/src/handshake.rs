//! The handshake's payload: everything a child needs, sent by the root once the child has
//! proved itself on its bootstrap connection (see `crate::wire::boot` for the steps).

use crate::transport::Addr;
use crate::wire::counters::Counters;
use crate::wire::frame::Frame;
use actor_core::{AppClock, Report};
use ipc_channel::ipc::IpcReceiver;
use serde::{Deserialize, Serialize};

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
    /// The actor's own address: `ContextExt::myself`, and the way its process wakes its
    /// own blocked receive (`crate::transport::wake`).
    pub myself: Addr<Msg>,
    pub lifeline: IpcReceiver<()>,
    pub clock: AppClock,
    pub log_level: String,
    /// The root's log format: every process of a system logs in one format.
    pub log_format: actor_core::log::LogFormat,
    pub stop_timeout_ms: u64,
}
