//! Replies across machines: what makes [`Addr::ask`](actor_ipc::Addr::ask) work on a remote
//! address (see `actor_ipc`'s `reply_route` for the whole path).
//!
//! * The asking process subscribes, at its first ask across machines, to its own reply
//!   subject `mpactor.<cluster>.reply.<process>` (one subscription per process and cluster);
//!   a task on the connection's runtime hands every payload that arrives there to
//!   [`actor_ipc::deliver_remote_reply`], which writes it into the asking thread's reply
//!   socket (without blocking). A `ReplyTo` in a request to another node carries this
//!   route: the server, the cluster and the subject.
//! * The answering process rebuilds the route (on its connection to the cluster, or one of
//!   its own to the server the asker named, opened once, as for a remote address) and
//!   publishes each reply to that subject without waiting: if the client's outgoing buffer
//!   is full, the reply is a dead letter there.

use crate::conn::CONNECT_TIMEOUT;
use crate::proto;
use crate::shared::Shared;
use actor_ipc::{ReplyRoute, ReplyScheme};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What a `ReplyTo` carries to another node: where its answer is published.
#[derive(Serialize, Deserialize)]
struct RouteWire {
    url: String,
    cluster: String,
    subject: String,
}

/// This process's reply routes (their identity bytes), by the process token of the state
/// they were made for: a state made again (a new connection) gets a new subscription.
fn inbound() -> &'static Mutex<HashMap<String, Vec<u8>>> {
    static INBOUND: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    INBOUND.get_or_init(Default::default)
}

/// The route answers to this process's questions come back by (made, with its subscription,
/// the first time): what [`RemoteLink::reply_route`](actor_ipc::RemoteLink::reply_route)
/// says for every link of `shared`.
pub(crate) fn route(shared: &Shared) -> Result<Vec<u8>, String> {
    let mut inbound = inbound().lock();
    if let Some(identity) = inbound.get(&shared.process) {
        return Ok(identity.clone());
    }
    let subject = proto::subject(&shared.cluster, "reply", &shared.process);
    forward_replies(shared, subject.clone())?;
    let identity = postcard::to_allocvec(&RouteWire {
        url: shared.url.clone(),
        cluster: shared.cluster.clone(),
        subject,
    })
    .map_err(|e| e.to_string())?;
    inbound.insert(shared.process.clone(), identity.clone());
    Ok(identity)
}

/// Subscribes to `subject` and hands what arrives there to the asking threads, on the
/// connection's runtime. Returns once the subscription is on its way to the server (before
/// any question that relies on it is published on the same connection, so the server has it
/// before an answer can come), at most [`CONNECT_TIMEOUT`] later.
fn forward_replies(shared: &Shared, subject: String) -> Result<(), String> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // The task below could not run while this waits on the runtime's own thread.
        return Err("an ask across machines from inside the NATS runtime".into());
    }
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let client = shared.conn.client();
    let shown = subject.clone();
    shared.conn.spawn(async move {
        let mut replies = match client.subscribe(subject).await {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        // Ends with the connection (its runtime stops when this process's state goes).
        while let Some(reply) = replies.next().await {
            // Never blocks: a datagram into a local socket with MSG_DONTWAIT.
            actor_ipc::deliver_remote_reply(&reply.payload);
        }
    });
    match ready.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot subscribe to {shown}: {e}")),
        Err(_) => Err(format!(
            "cannot subscribe to {shown}: no answer from the NATS client within \
             {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// A route back to an asking process, on the answering side.
struct NatsRoute {
    shared: Arc<Shared>,
    subject: String,
}

impl ReplyRoute for NatsRoute {
    fn send(&self, payload: Vec<u8>) -> bool {
        if tokio::runtime::Handle::try_current().is_ok() {
            // On a runtime thread `block_on` would panic: hand it to the runtime instead.
            let client = self.shared.conn.client();
            let subject = self.subject.clone();
            self.shared.conn.spawn(async move {
                let _ = client.publish(subject, payload.into()).await;
            });
            return true;
        }
        // No wait: the client takes it now or the reply is a dead letter of this machine.
        self.shared
            .conn
            .publish(self.subject.clone(), payload.into(), Duration::ZERO)
    }
}

/// Rebuilds a route from its identity in a process that received a question from another
/// machine. The answer goes through this process's connection to the cluster when it has
/// one (the node's root: the connection the question came by, whatever name the asker gave
/// the server); a process without one (a child actor's) opens its own to the server the
/// asker named, once.
fn resolve_route(identity: &[u8]) -> Result<Arc<dyn ReplyRoute>, String> {
    let w: RouteWire = postcard::from_bytes(identity)
        .map_err(|e| format!("a malformed route for answers to another machine: {e}"))?;
    let shared = match Shared::of_cluster(&w.url, &w.cluster) {
        Some(shared) => shared,
        None => Shared::get_or_connect(&w.url, &w.cluster, None)
            .map_err(|e| format!("cannot reach the NATS server at {}: {e}", w.url))?,
    };
    Ok(Arc::new(NatsRoute {
        shared,
        subject: w.subject,
    }))
}

// Every process of the binary can answer a question from another machine, a child actor's
// too: registered statically.
inventory::submit! {
    ReplyScheme { scheme: crate::link::SCHEME, resolve: resolve_route }
}
