//! Replies across machines: how the answer to an [`Addr::ask`](crate::Addr::ask) made on this
//! machine comes back from another one, through a transport crate (`actor-nats`) that this
//! floor never names.
//!
//! * Asking side: when a request that holds a [`ReplyTo`](crate::ReplyTo) is encoded for
//!   another machine (sent through a remote `Addr`), the `ReplyTo` is written as the link's
//!   reply route ([`RemoteLink::reply_route`](super::RemoteLink::reply_route): for NATS, a
//!   subject of this process, subscribed at its first such ask) with the asker's socket name,
//!   token and question id.
//! * Answering side: decoding it rebuilds the route with its scheme's [`ReplyScheme`]
//!   (registered with [`inventory`], as [`RemoteScheme`](super::RemoteScheme) is) and keeps
//!   it in a small table of the process, so that a `ReplyTo` stays plain data without `Drop`
//!   (a table slot is its handle; a request without `Drop` keeps `Addr`'s direct path).
//!   [`ReplyTo::send`](crate::ReplyTo::send) hands the route one payload (the asker's socket
//!   name, token, id, then the encoded value) and never blocks.
//! * Back on the asking machine, the transport hands each payload that arrives to
//!   [`deliver_remote_reply`], which writes it into the asker's reply socket as a local
//!   reply: the asker matches token and id as it does for every answer, so a late answer is
//!   dropped (a dead letter), never taken for a later question.
//!
//! Counting, so that each machine's summary reconciles on its own: the answering process
//! counts a reply `sent` when it is made and `taken` once the transport took it (it left the
//! machine); the asking machine counts it `sent` when it arrives and `taken` when the asker
//! takes it. A reply lost between the two (a node or the server dying) is counted by
//! neither: delivery is at most once, and the asker's deadline bounds its wait.

use super::ask::{inbox_name, out_socket, reply_counters};
use crate::wire::counters::Counters;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::sync::Arc;

/// The head of a reply payload across machines: the asker's process id and socket key, then
/// the token and the question's id (all little endian). The last 16 bytes and the value that
/// follows are exactly a local reply's datagram.
pub(super) const REMOTE_HEADER: usize = 4 + 8 + 16;

/// Where the answers to questions asked on another machine go, as a transport crate carries
/// them: rebuilt on the answering machine by the scheme's [`ReplyScheme::resolve`].
pub trait ReplyRoute: Send + Sync + 'static {
    /// Hands one reply payload (opaque bytes of `actor-ipc`'s making) to the transport
    /// towards the asking process. Never blocks: false if the transport did not take it now
    /// (the reply is then a dead letter of this machine).
    fn send(&self, payload: Vec<u8>) -> bool;
}

/// How a process rebuilds the reply routes of one scheme: registered by the transport crate
/// with [`inventory::submit!`], so that every process of the binary has it.
///
/// ```ignore
/// inventory::submit! {
///     actor_ipc::ReplyScheme { scheme: "nats", resolve: my_resolve_route }
/// }
/// ```
pub struct ReplyScheme {
    /// The scheme, as [`RemoteLink::scheme`](super::RemoteLink::scheme) says it.
    pub scheme: &'static str,
    /// Rebuilds a route from the bytes [`RemoteLink::reply_route`](super::RemoteLink::reply_route)
    /// gave on the asking machine; an error says why not.
    pub resolve: ResolveRoute,
}

/// [`ReplyScheme::resolve`]: a route's identity in, the route (or why not) out.
pub type ResolveRoute = fn(identity: &[u8]) -> Result<Arc<dyn ReplyRoute>, String>;

inventory::collect!(ReplyScheme);

/// A route as a decoded `ReplyTo` holds it: a slot of this process's table and the slot's
/// generation (a slot reused for another route makes the old handle stale).
#[derive(Clone, Copy, Debug)]
pub(super) struct RouteRef {
    slot: u32,
    generation: u32,
}

/// The most routes a process keeps: one per asking process it has answered recently. Past
/// that the oldest is forgotten; a `ReplyTo` still holding it answers into a dead letter
/// (logged).
const ROUTES: usize = 4096;

struct Entry {
    scheme: String,
    identity: Vec<u8>,
    route: Arc<dyn ReplyRoute>,
    generation: u32,
}

#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    by_identity: HashMap<Vec<u8>, u32>,
    /// The slot the next new route replaces once the table is full.
    next: usize,
    generation: u32,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: std::sync::OnceLock<Mutex<Table>> = std::sync::OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// The route of `scheme` with `identity` if the table keeps one.
fn kept(t: &Table, scheme: &str, identity: &[u8]) -> Option<RouteRef> {
    let &slot = t.by_identity.get(identity)?;
    let e = &t.entries[slot as usize];
    (e.scheme == scheme).then_some(RouteRef {
        slot,
        generation: e.generation,
    })
}

/// The route of `scheme` with `identity` in this process: the one kept, or a new one.
pub(super) fn intern(scheme: &str, identity: &[u8]) -> Result<RouteRef, String> {
    if let Some(kept) = kept(&table().lock(), scheme, identity) {
        return Ok(kept);
    }
    // Resolved outside the lock: it may open a connection (once per server and process).
    let route = resolve(scheme, identity)?;
    let mut t = table().lock();
    if let Some(kept) = kept(&t, scheme, identity) {
        // Another thread got there first.
        return Ok(kept);
    }
    t.generation = t.generation.wrapping_add(1);
    let entry = Entry {
        scheme: scheme.to_string(),
        identity: identity.to_vec(),
        route,
        generation: t.generation,
    };
    let slot = if t.entries.len() < ROUTES {
        t.entries.push(entry);
        t.entries.len() - 1
    } else {
        let slot = t.next;
        t.next = (t.next + 1) % ROUTES;
        let old = std::mem::replace(&mut t.entries[slot], entry);
        t.by_identity.remove(&old.identity);
        slot
    };
    t.by_identity.insert(identity.to_vec(), slot as u32);
    Ok(RouteRef {
        slot: slot as u32,
        generation: t.generation,
    })
}

/// Runs `f` with the scheme and identity of `r`; `None` if this process forgot the route.
pub(super) fn with_route<T>(r: RouteRef, f: impl FnOnce(&str, &[u8]) -> T) -> Option<T> {
    let t = table().lock();
    let e = t.entries.get(r.slot as usize)?;
    (e.generation == r.generation).then(|| f(&e.scheme, &e.identity))
}

/// The route of `r`; `None` if this process forgot it.
pub(super) fn route(r: RouteRef) -> Option<Arc<dyn ReplyRoute>> {
    let t = table().lock();
    let e = t.entries.get(r.slot as usize)?;
    (e.generation == r.generation).then(|| e.route.clone())
}

fn resolve(scheme: &str, identity: &[u8]) -> Result<Arc<dyn ReplyRoute>, String> {
    let result = match inventory::iter::<ReplyScheme>
        .into_iter()
        .find(|s| s.scheme == scheme)
    {
        Some(s) => (s.resolve)(identity),
        None => Err(format!(
            "a question from another machine (scheme {scheme:?}) arrived, but this binary has \
             no {scheme:?} transport to answer through: build it with mpactor's `{scheme}` \
             feature (or link the crate that provides it)"
        )),
    };
    if let Err(why) = &result {
        super::remote::say_once(why);
    }
    result
}

/// Hands a reply that came from another machine (a payload a [`ReplyRoute`] carried) to its
/// asker on this machine: what a transport crate calls for every reply that arrives. Never
/// blocks. Counted as a reply `sent` on this machine; true if it went into the asker's reply
/// socket, where the asker takes it (counted `taken`) if it is the answer it waits for, and
/// drops it (a dead letter) if it is late. False (a dead letter) if it is malformed, or the
/// asker is gone or not reading.
pub fn deliver_remote_reply(payload: &[u8]) -> bool {
    Counters::add(&reply_counters().get().replies_sent, 1);
    if payload.len() < REMOTE_HEADER {
        return false;
    }
    let (Some(pid), Some(key), Some(datagram)) = (
        payload.get(..4).and_then(|b| b.try_into().ok()),
        payload.get(4..12).and_then(|b| b.try_into().ok()),
        payload.get(12..),
    ) else {
        return false;
    };
    let (pid, key) = (u32::from_le_bytes(pid), u64::from_le_bytes(key));
    let Some(out) = out_socket() else {
        return false;
    };
    let Ok(to) = SocketAddr::from_abstract_name(inbox_name(pid, key)) else {
        return false;
    };
    out.send_to_addr(datagram, &to).is_ok()
}
