//! The third floor: [`Addr`], the sending side of an actor's inbox, over its flavors (the
//! ipc route through this process's writer thread, `ipc`; the local route straight into a
//! thread actor's queue; the remote flavor, an actor on another machine through a transport
//! crate's [`RemoteLink`], see `remote`), and the receiving side (`inbox`, `wake`). It builds
//! on `crate::wire` and `crate::sys`.
//!
//! A send puts the message on a bounded queue in the sending process (that bound is what
//! `try_send` and `send_timeout` mean); the ipc flavor's writer ships it (see `ipc`).
//!
//! When the actor is waiting (it has read everything sent to it) and nothing of this process
//! is on its way, a small message of a type without `Drop` skips the writer: the caller
//! writes it into the socket itself, without blocking (see `Addr::send_direct`). That keeps
//! a round trip at the transport's cost instead of adding a thread hop each way.

pub(crate) mod ask;
pub(crate) mod inbox;
mod ipc;
pub(crate) mod myself;
pub(crate) mod remote;
pub(crate) mod reply_route;
pub(crate) mod wake;

pub(crate) use ipc::set_writer_log;
pub(crate) use ipc::Item;
pub use ipc::{flush_all, ENV_NO_DIRECT, MAX_BATCH};
use ipc::{start_writer, Outbox, OutboxState};
pub use remote::{LinkError, RemoteLink, RemoteScheme, Resolve};
use remote::{Remote, RemoteWire};
pub use reply_route::{deliver_remote_reply, ReplyRoute, ReplyScheme, ResolveRoute};

use crate::sys::fd::Untyped;
use crate::wire::counters::Counters;
use crate::wire::frame::{encode_single, encode_single_raw, Frame};
use actor_core::supervision::{
    DEFAULT_MAILBOX_BYTES, DEFAULT_SEND_TIMEOUT,
    MAX_MESSAGE_BYTES_CEILING as MAX_MESSAGE_BYTES_LIMIT,
};
use actor_core::{SendTimeoutError, TrySendError};
use crossbeam_channel::Sender;
use ipc_channel::ipc::IpcSender;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The largest encoded frame the direct path writes (on the caller's stack). Latency
/// matters for small messages; large ones go through the writer.
const DIRECT_MAX: usize = 512;

/// The address of an actor: sends messages of type `M` to its inbox.
///
/// Cheap to clone; serializable, so it can be handed to another actor in its `Args` or in a
/// message. Sends are bounded: [`try_send`](Addr::try_send) says `Full` at once,
/// [`send_timeout`](Addr::send_timeout) gives up at its deadline, and [`send`](Addr::send)
/// waits at most [`DEFAULT_SEND_TIMEOUT`]. A send to an actor that is gone for good says
/// `Disconnected`. While an actor is being restarted its inbox stays open: sends queue up
/// for the next incarnation, within the bound.
///
/// An actor on another machine (found through a cluster, feature `nats`) has an `Addr` too,
/// of the remote flavor: the same methods and errors, bounded the same way, `Disconnected`
/// while its node is down; code written against `Addr<M>` takes either. What differs is
/// said on each method ([`is_gone`](Addr::is_gone), [`ask`](Addr::ask), the counts).
///
/// ```no_run
/// # fn demo(consumer: mpactor_doc::Addr<u64>) -> Result<(), Box<dyn std::error::Error>> {
/// match consumer.try_send(7) {
///     Ok(()) => {}
///     Err(e) if e.is_full() => { /* back off, or use send_timeout */ }
///     Err(e) => return Err(e.into()),
/// }
/// consumer.send_timeout(8, std::time::Duration::from_millis(100))?;
/// # Ok(()) }
/// # mod mpactor_doc { pub use actor_ipc::Addr; }
/// ```
pub struct Addr<M: Send + 'static> {
    flavor: Flavor<M>,
}

/// Where an address's sends go: an inbox on this machine (through this process's writer, or
/// straight into a thread actor's queue), or a link to an actor on another machine.
enum Flavor<M: Send + 'static> {
    Inbox(InboxAddr<M>),
    Remote(Remote<M>),
}

impl<M: Send + 'static> Clone for Addr<M> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            Flavor::Inbox(a) => Flavor::Inbox(a.clone()),
            Flavor::Remote(r) => Flavor::Remote(r.clone()),
        };
        Addr { flavor }
    }
}

impl<M: Send + 'static> std::fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.flavor {
            Flavor::Inbox(a) => a.fmt(f),
            Flavor::Remote(r) => write!(f, "Addr({}@{})", r.link.name(), r.link.node()),
        }
    }
}

impl<M> Addr<M>
where
    M: Serialize + Send + 'static,
{
    fn inbox(a: InboxAddr<M>) -> Self {
        Addr {
            flavor: Flavor::Inbox(a),
        }
    }

    /// An address of the remote flavor: sends go through `link` (a transport crate's, such
    /// as `actor-nats`'s `Cluster::lookup`, which is where users get one).
    pub fn remote(link: Arc<dyn RemoteLink>) -> Self {
        Addr {
            flavor: Flavor::Remote(Remote::new(link)),
        }
    }

    pub(crate) fn new(
        name: String,
        tx: IpcSender<Frame<M>>,
        counters: Counters,
        capacity: usize,
        max_bytes: usize,
    ) -> Self {
        Self::inbox(InboxAddr::new(name, tx, counters, capacity, max_bytes))
    }

    /// As [`new`](Self::new), with a byte budget (`ChildOptions::mailbox_bytes`).
    pub(crate) fn new_bounded(
        name: String,
        tx: IpcSender<Frame<M>>,
        counters: Counters,
        capacity: usize,
        max_bytes: usize,
        budget: u64,
    ) -> Self {
        Self::inbox(InboxAddr::new_bounded(
            name, tx, counters, capacity, max_bytes, budget,
        ))
    }

    /// An address of an actor running as a thread: `queue` is its inbox (bounded).
    pub(crate) fn local(name: String, queue: Sender<Item<M>>, counters: Counters) -> Self {
        Self::inbox(InboxAddr::local(name, queue, counters))
    }

    /// The inbox flavor, for the runtime's own addresses (its slots', its root's).
    pub(crate) fn as_inbox(&self) -> Option<&InboxAddr<M>> {
        match &self.flavor {
            Flavor::Inbox(a) => Some(a),
            Flavor::Remote(_) => None,
        }
    }

    /// The shared counters of the inbox this address points to; `None` for an actor on
    /// another machine.
    pub(crate) fn counters(&self) -> Option<&Counters> {
        self.as_inbox().map(InboxAddr::counters)
    }

    /// The inbox's socket sender, for an address of an actor in another process (or this one)
    /// over ipc-channel: the wake-up of the actor's own receive writes to it.
    pub(crate) fn ipc_sender(&self) -> Option<&IpcSender<Untyped>> {
        self.as_inbox().and_then(InboxAddr::ipc_sender)
    }

    /// The link of an address of the remote flavor: what a transport crate reaches its own
    /// state through ([`RemoteLink::as_any`]). `None` for an actor on this machine.
    pub fn remote_link(&self) -> Option<&Arc<dyn RemoteLink>> {
        match &self.flavor {
            Flavor::Inbox(_) => None,
            Flavor::Remote(r) => Some(&r.link),
        }
    }

    /// The name of the actor this address points to (for an actor on another machine, the
    /// name it was published under).
    pub fn name(&self) -> &str {
        match &self.flavor {
            Flavor::Inbox(a) => a.name(),
            Flavor::Remote(r) => r.link.name(),
        }
    }

    /// The largest message, encoded, that this actor takes: its
    /// [`ChildOptions::max_message_bytes`](actor_core::ChildOptions::max_message_bytes).
    /// A larger one is refused by the sending process's writer: not shipped, logged by that
    /// process (an error naming the actor and the limit), and counted as a dead letter
    /// (`refused` in the summary). `usize::MAX` for an actor running as a thread, whose
    /// messages are moved, not encoded. For an actor on another machine, the most one
    /// message may take through the link (a larger one is refused at once and counted as a
    /// dead letter, logged).
    ///
    /// Sends cannot say it at once, because a message's size is only known once it is
    /// encoded, which happens on the writer; a sender that can tell its payload's size
    /// cheaply (a buffer's length) can check it here first.
    ///
    /// ```no_run
    /// # fn demo(store: mpactor_doc::Addr<Vec<u8>>, image: Vec<u8>) {
    /// // A Vec<u8> encodes as its bytes and a length of at most 10 bytes.
    /// if image.len() + 10 > store.max_message_bytes() {
    ///     eprintln!("image of {} bytes is too large for {}", image.len(), store.name());
    /// } else {
    ///     let _ = store.send(image);
    /// }
    /// # }
    /// # mod mpactor_doc { pub use actor_ipc::Addr; }
    /// ```
    pub fn max_message_bytes(&self) -> usize {
        match &self.flavor {
            Flavor::Inbox(a) => a.max_message_bytes(),
            Flavor::Remote(r) => r.link.max_message_bytes(),
        }
    }

    /// True once the actor is gone for good (stopped, or ended and not restarted). For an
    /// actor on another machine: while its node is down (sends say `Disconnected`); it turns
    /// false again when the node is back under the same name.
    pub fn is_gone(&self) -> bool {
        match &self.flavor {
            Flavor::Inbox(a) => a.is_gone(),
            Flavor::Remote(r) => !r.link.is_up(),
        }
    }

    /// Queues `msg` if there is room now; says [`TrySendError::Full`] at once otherwise, and
    /// [`TrySendError::Disconnected`] if the actor is gone for good. Either hands `msg` back.
    ///
    /// ```no_run
    /// # fn demo(worker: actor_ipc::Addr<u64>) {
    /// use actor_core::TrySendError;
    /// match worker.try_send(7) {
    ///     Ok(()) => {}
    ///     Err(TrySendError::Full(n)) => println!("busy: {n} kept for later"),
    ///     Err(TrySendError::Disconnected(_)) => println!("the worker is gone"),
    /// }
    /// # }
    /// ```
    pub fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        match &self.flavor {
            Flavor::Inbox(a) => a.try_send(msg),
            Flavor::Remote(r) => r.try_send(msg),
        }
    }

    /// Queues `msg`, waiting at most `timeout` for room: [`SendTimeoutError::Timeout`] if the
    /// mailbox stayed full, [`SendTimeoutError::Disconnected`] if the actor is gone for good.
    /// Either hands `msg` back.
    ///
    /// ```no_run
    /// # fn demo(worker: actor_ipc::Addr<u64>) -> Result<(), actor_core::ActorError> {
    /// use std::time::Duration;
    /// let mut n = 7;
    /// loop {
    ///     match worker.send_timeout(n, Duration::from_millis(100)) {
    ///         Ok(()) => break,
    ///         Err(e) if e.is_timeout() => n = e.into_inner(), // still full: try again
    ///         Err(e) => return Err(e.into()),                 // gone: the cause is kept
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendTimeoutError<M>> {
        match &self.flavor {
            Flavor::Inbox(a) => a.send_timeout(msg, timeout),
            Flavor::Remote(r) => r.send_timeout(msg, timeout),
        }
    }

    /// Queues `msg`, waiting at most [`DEFAULT_SEND_TIMEOUT`] for room: `send_timeout` with
    /// the default deadline, and its errors.
    pub fn send(&self, msg: M) -> Result<(), SendTimeoutError<M>> {
        self.send_timeout(msg, DEFAULT_SEND_TIMEOUT)
    }

    /// Whether [`try_send_encoded`](Self::try_send_encoded) can be used: the address is of
    /// an actor in a process of its own on this machine. For relays (`actor-nats`).
    #[doc(hidden)]
    pub fn takes_encoded(&self) -> bool {
        self.as_inbox().is_some_and(InboxAddr::takes_encoded)
    }

    /// Queues a message that is already encoded (`bytes` is its postcard encoding as `M`) if
    /// there is room now, as [`try_send`](Self::try_send) with the same accounting and the
    /// same size checks: a relay that received the message's bytes hands them on without
    /// decoding and encoding them again. The actor's process decodes them; bytes that do not
    /// decode as `M` are counted there as a decode failure (a dead letter). Says
    /// `Disconnected` when [`takes_encoded`](Self::takes_encoded) is false. For relays
    /// (`actor-nats`).
    #[doc(hidden)]
    pub fn try_send_encoded(&self, bytes: bytes::Bytes) -> Result<(), TrySendError<bytes::Bytes>> {
        match self.as_inbox() {
            Some(a) => a.try_send_encoded(bytes),
            None => Err(TrySendError::Disconnected(bytes)),
        }
    }

    /// [`try_send_encoded`](Self::try_send_encoded), waiting at most `timeout` for room, as
    /// [`send_timeout`](Self::send_timeout). For relays (`actor-nats`).
    #[doc(hidden)]
    pub fn send_encoded_timeout(
        &self,
        bytes: bytes::Bytes,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<bytes::Bytes>> {
        match self.as_inbox() {
            Some(a) => a.send_encoded_timeout(bytes, timeout),
            None => Err(SendTimeoutError::Disconnected(bytes)),
        }
    }

    /// Ships `msgs` on the caller's thread (see `InboxAddr::ship_now`). For tests of framing.
    #[cfg(test)]
    pub(crate) fn ship_now(&self, msgs: Vec<M>) -> u64 {
        self.as_inbox().map_or(0, |a| a.ship_now(msgs))
    }

    /// Queues the stop request for `incarnation` behind everything this process accepted for
    /// the actor. Returns false if it could not be queued by `deadline` (or the address is of
    /// an actor on another machine, which its own root supervises).
    pub(crate) fn send_stop(&self, deadline: Instant, incarnation: u32) -> bool {
        self.as_inbox()
            .is_some_and(|a| a.send_stop(deadline, incarnation))
    }
}

/// An address of an actor's inbox on this machine: the ipc and local flavors of [`Addr`].
pub(crate) struct InboxAddr<M: Send + 'static> {
    inner: Arc<Inner<M>>,
}

struct Inner<M: Send + 'static> {
    name: String,
    route: Route<M>,
    counters: Counters,
    capacity: usize,
    /// The largest encoded message the actor takes (the receiver's limit, carried by every
    /// copy of the address).
    max_bytes: usize,
    /// The byte budget of what this process has queued towards the actor
    /// (`ChildOptions::mailbox_bytes`).
    budget: u64,
    outbox: OnceLock<Result<Outbox<M>, String>>,
}

/// Where an address delivers.
enum Route<M> {
    /// To an inbox in another process (or this one) over ipc-channel, through this process's
    /// writer thread for that destination.
    Ipc(SharedSender),
    /// Straight into the bounded queue of an actor running as a thread of this process.
    Local(Sender<Item<M>>),
}

/// The inbox's sender, held untyped so that an `Addr<M>` is `Sync` whatever `M` is (see
/// [`Untyped`]).
type SharedSender = IpcSender<Untyped>;

impl<M: Send + 'static> Clone for InboxAddr<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Send + 'static> std::fmt::Debug for InboxAddr<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Addr({})", self.inner.name)
    }
}

impl<M> InboxAddr<M>
where
    M: Serialize + Send + 'static,
{
    pub(crate) fn new(
        name: String,
        tx: IpcSender<Frame<M>>,
        counters: Counters,
        capacity: usize,
        max_bytes: usize,
    ) -> Self {
        Self::new_bounded(
            name,
            tx,
            counters,
            capacity,
            max_bytes,
            DEFAULT_MAILBOX_BYTES as u64,
        )
    }

    /// As [`new`](Self::new), with a byte budget (`ChildOptions::mailbox_bytes`).
    pub(crate) fn new_bounded(
        name: String,
        tx: IpcSender<Frame<M>>,
        counters: Counters,
        capacity: usize,
        max_bytes: usize,
        budget: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                route: Route::Ipc(tx.to_opaque().to()),
                counters,
                capacity: capacity.max(1),
                max_bytes: max_bytes.min(MAX_MESSAGE_BYTES_LIMIT),
                budget: budget.max(1),
                outbox: OnceLock::new(),
            }),
        }
    }

    /// An address of an actor running as a thread: `queue` is its inbox (bounded).
    pub(crate) fn local(name: String, queue: Sender<Item<M>>, counters: Counters) -> Self {
        let capacity = queue.capacity().unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(Inner {
                name,
                route: Route::Local(queue),
                counters,
                capacity,
                // Messages to a thread are moved, never encoded: there is nothing to limit.
                max_bytes: usize::MAX,
                budget: u64::MAX,
                outbox: OnceLock::new(),
            }),
        }
    }

    /// The shared counters of the inbox this address points to.
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub(super) fn name(&self) -> &str {
        &self.inner.name
    }

    pub(super) fn max_message_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    /// The inbox's socket sender, for an address of an actor in another process (or this one)
    /// over ipc-channel: the wake-up of the actor's own receive writes to it.
    pub(crate) fn ipc_sender(&self) -> Option<&IpcSender<Untyped>> {
        match &self.inner.route {
            Route::Ipc(tx) => Some(tx),
            Route::Local(_) => None,
        }
    }

    pub(super) fn is_gone(&self) -> bool {
        self.inner.counters.is_gone()
    }

    pub(super) fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.try_send_item(Item::Msg(msg)).map_err(|e| match e {
            TrySendError::Full(item) => item.map(TrySendError::Full),
            TrySendError::Disconnected(item) => item.map(TrySendError::Disconnected),
        })
    }

    pub(super) fn send_timeout(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<M>> {
        self.send_item_timeout(Item::Msg(msg), timeout)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(item) => item.map(SendTimeoutError::Timeout),
                SendTimeoutError::Disconnected(item) => item.map(SendTimeoutError::Disconnected),
            })
    }

    /// `try_send` of a message already encoded; see [`Addr::try_send_encoded`].
    pub(super) fn try_send_encoded(
        &self,
        bytes: bytes::Bytes,
    ) -> Result<(), TrySendError<bytes::Bytes>> {
        self.try_send_item(Item::Encoded(bytes))
            .map_err(|e| match e {
                TrySendError::Full(item) => item.map_encoded(TrySendError::Full),
                TrySendError::Disconnected(item) => item.map_encoded(TrySendError::Disconnected),
            })
    }

    /// `send_timeout` of a message already encoded; see [`Addr::send_encoded_timeout`].
    pub(super) fn send_encoded_timeout(
        &self,
        bytes: bytes::Bytes,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<bytes::Bytes>> {
        self.send_item_timeout(Item::Encoded(bytes), timeout)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(item) => item.map_encoded(SendTimeoutError::Timeout),
                SendTimeoutError::Disconnected(item) => {
                    item.map_encoded(SendTimeoutError::Disconnected)
                }
            })
    }

    /// Whether this address takes messages already encoded: an actor in a process of its own
    /// (an ipc route). An actor running as a thread takes only typed messages.
    pub(super) fn takes_encoded(&self) -> bool {
        matches!(self.inner.route, Route::Ipc(_))
    }

    /// The queue for `item`: a local route has none for an encoded message (it would have to
    /// be decoded by the sender, whose type it is; see `takes_encoded`).
    fn queue_for(&self, item: &Item<M>) -> Result<(&Sender<Item<M>>, Option<&OutboxState>), ()> {
        match (item, &self.inner.route) {
            (Item::Encoded(_), Route::Local(_)) => Err(()),
            _ => self.queue(),
        }
    }

    fn try_send_item(&self, item: Item<M>) -> Result<(), TrySendError<Item<M>>> {
        let Ok((queue, state)) = self.queue_for(&item) else {
            return Err(TrySendError::Disconnected(item));
        };
        let Err(item) = self.send_direct(item) else {
            return Ok(());
        };
        if !self.admits(queue, state) {
            return Err(TrySendError::Full(item));
        }
        self.before_send(state);
        let result = queue.try_send(item).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(item) => TrySendError::Full(item),
            crossbeam_channel::TrySendError::Disconnected(item) => TrySendError::Disconnected(item),
        });
        self.after_send(state, result)
    }

    fn send_item_timeout(
        &self,
        item: Item<M>,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<Item<M>>> {
        let Ok((queue, state)) = self.queue_for(&item) else {
            return Err(SendTimeoutError::Disconnected(item));
        };
        let Err(item) = self.send_direct(item) else {
            return Ok(());
        };
        let timeout = match self.wait_for_budget(queue, state, timeout) {
            Ok(left) => left,
            Err(()) if self.is_gone() => return Err(SendTimeoutError::Disconnected(item)),
            Err(()) => return Err(SendTimeoutError::Timeout(item)),
        };
        self.before_send(state);
        // Room now (the usual case) takes no deadline: crossbeam's send_timeout reads the
        // clock on every call, a third of a 64-byte producer's time in a profile.
        let result = match queue.try_send(item) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(item)) => queue.send_timeout(item, timeout),
            Err(crossbeam_channel::TrySendError::Disconnected(item)) => {
                Err(crossbeam_channel::SendTimeoutError::Disconnected(item))
            }
        }
        .map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(item) if self.is_gone() => {
                SendTimeoutError::Disconnected(item)
            }
            crossbeam_channel::SendTimeoutError::Timeout(item) => SendTimeoutError::Timeout(item),
            crossbeam_channel::SendTimeoutError::Disconnected(item) => {
                SendTimeoutError::Disconnected(item)
            }
        });
        self.after_send(state, result)
    }

    /// Queues the stop request for `incarnation` behind everything this process accepted for
    /// the actor. Returns false if it could not be queued by `deadline`.
    pub(crate) fn send_stop(&self, deadline: Instant, incarnation: u32) -> bool {
        let queue = match &self.inner.route {
            Route::Local(queue) => queue,
            Route::Ipc(_) => match self.outbox() {
                Ok(outbox) => &outbox.queue,
                Err(()) => return false,
            },
        };
        let left = deadline.saturating_duration_since(Instant::now());
        queue.send_timeout(Item::Stop(incarnation), left).is_ok()
    }

    /// The queue a send goes into, and the writer's state for an ipc route.
    fn queue(&self) -> Result<(&Sender<Item<M>>, Option<&OutboxState>), ()> {
        if self.inner.counters.is_gone() {
            return Err(());
        }
        match &self.inner.route {
            Route::Local(queue) => Ok((queue, None)),
            Route::Ipc(_) => {
                let outbox = self.outbox()?;
                if outbox.state.dead.load(Ordering::SeqCst) {
                    return Err(());
                }
                Ok((&outbox.queue, Some(&outbox.state)))
            }
        }
    }

    /// The direct path: the caller writes the message into the inbox socket itself, without
    /// waking this process's writer thread, when all of these hold:
    ///
    /// * the message type has no `Drop`, so it cannot hold a channel or shared memory
    ///   (encoding those has side effects in ipc-channel that only its own `send` may
    ///   consume), and it encodes into [`DIRECT_MAX`] bytes;
    /// * nothing this process accepted for the actor is still on its way (order is kept);
    /// * the actor's process has taken every message shipped to it: it is waiting, so
    ///   batching has nothing to gain and the writer hop would only add latency (under
    ///   load this is false and sends batch as before);
    /// * the socket has room now (`MSG_DONTWAIT`): it never blocks.
    ///
    /// Hands the message back when any of that fails; the caller then queues it as usual.
    fn send_direct(&self, msg: Item<M>) -> Result<(), Item<M>> {
        let Some(Ok(outbox)) = self.inner.outbox.get() else {
            return Err(msg);
        };
        let Some(socket) = &outbox.direct else {
            return Err(msg);
        };
        let b = self.inner.counters.get();
        if outbox.state.pending.load(Ordering::SeqCst) != 0
            || Counters::load(&b.shipped) != Counters::load(&b.received)
        {
            return Err(msg);
        }
        let mut buf = [0u8; DIRECT_MAX];
        // Counted before the write and taken back if it fails: a process killed right after
        // the write has counted what the actor will receive (see `Writer::send_frame`).
        Counters::add(&b.accepted, 1);
        Counters::add(&b.shipped, 1);
        let frame = match &msg {
            Item::Msg(m) => encode_single(m, &mut buf),
            Item::Encoded(b) => encode_single_raw(b, &mut buf),
            Item::Stop(_) => None,
        };
        let sent = match frame {
            // Near the limit, the writer decides (and says why when it refuses).
            Some(frame) if frame.len() <= self.inner.max_bytes => socket.try_send_frame(frame),
            _ => false,
        };
        if !sent {
            b.accepted.fetch_sub(1, Ordering::SeqCst);
            b.shipped.fetch_sub(1, Ordering::SeqCst);
            return Err(msg);
        }
        Ok(())
    }

    /// Whether the byte budget takes one more message now. A message still in the queue is
    /// charged as much as the largest recent message to this actor (its size is known only
    /// once the writer encodes it; for a type without `Drop`, at least its size in memory),
    /// a large message shipped in shared memory its exact size until the actor's process
    /// has received it. See `ChildOptions::mailbox_bytes`.
    fn admits(&self, queue: &Sender<Item<M>>, state: Option<&OutboxState>) -> bool {
        let Some(state) = state else {
            return true;
        };
        let each = self.known_size(state).max(std::mem::size_of::<M>() as u64);
        // Accepted and not yet encoded: in the queue, and in the writer's batch (it takes up
        // to MAX_BATCH at once and encodes them one by one).
        let queued = || queue.len() + state.shm.unencoded() as usize;
        state.shm.admits(queued, self.inner.capacity, each)
    }

    /// The size charged per queued message: what this process's writer measured (at least
    /// 1 once it encoded one), or before that what the actor's other (or earlier) senders
    /// published, so that a restarted producer of large messages is bounded from its first
    /// message on. 0: nothing is known yet.
    fn known_size(&self, state: &OutboxState) -> u64 {
        match state.shm.typical() {
            0 => Counters::load(&self.inner.counters.get().typical),
            own => own,
        }
    }

    /// Whether a waiting send should hold its message back because its size cannot be known:
    /// a type with heap memory (`Drop`: a `Vec` may hold 1 byte or 64 MiB), nothing measured
    /// or published yet, and one message already on its way, which the writer is about to
    /// measure. Without this a new producer of large messages queued as many as the writer
    /// took to encode its first one (under load, dozens of 1 MiB payloads, past the byte
    /// budget). `try_send` never waits and still takes them by count.
    fn size_unknown(&self, state: Option<&OutboxState>) -> bool {
        std::mem::needs_drop::<M>()
            && state
                .is_some_and(|s| s.pending.load(Ordering::SeqCst) > 0 && self.known_size(s) == 0)
    }

    /// Waits until the byte budget takes one more message, at most `timeout`; returns the time
    /// left. The budget frees up as the actor's process receives what was shipped: that
    /// happens in another process, so this looks again in growing naps (50 µs to 2 ms).
    fn wait_for_budget(
        &self,
        queue: &Sender<Item<M>>,
        state: Option<&OutboxState>,
        timeout: Duration,
    ) -> Result<Duration, ()> {
        // The usual case: room at once, and no clock read (two per send cost small messages
        // a tenth of their throughput).
        if self.admits(queue, state) && !self.size_unknown(state) {
            return Ok(timeout);
        }
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(50);
        while !self.admits(queue, state) || self.size_unknown(state) {
            let now = Instant::now();
            if now >= deadline || state.is_some_and(|s| s.dead.load(Ordering::SeqCst)) {
                return Err(());
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(2));
        }
        Ok(deadline.saturating_duration_since(Instant::now()))
    }

    fn before_send(&self, state: Option<&OutboxState>) {
        // Counted as pending before it is queued, so the writer never sees it go below zero;
        // and as accepted, so that the writer never ships a message not yet counted accepted
        // (a sender killed in between would leave the summary one off).
        if let Some(state) = state {
            // What the writer shipped earlier is dropped here, on a sending thread (see
            // `ipc::Spent`): a queued message is never dropped on this path.
            if let Some(Ok(outbox)) = self.inner.outbox.get() {
                outbox.spent.drop_some();
            }
            state.pending.fetch_add(1, Ordering::SeqCst);
            Counters::add(&self.inner.counters.get().accepted, 1);
        }
    }

    fn after_send<E>(&self, state: Option<&OutboxState>, result: Result<(), E>) -> Result<(), E> {
        let b = self.inner.counters.get();
        match (&result, state) {
            (Ok(()), Some(_)) => {}
            (Ok(()), None) => {
                // A local route puts the message straight into the inbox.
                Counters::add(&b.accepted, 1);
                Counters::add(&b.shipped, 1);
            }
            (Err(_), Some(state)) => {
                b.accepted.fetch_sub(1, Ordering::SeqCst);
                state.pending.fetch_sub(1, Ordering::SeqCst);
            }
            (Err(_), None) => {}
        }
        result
    }

    fn outbox(&self) -> Result<&Outbox<M>, ()> {
        let Route::Ipc(tx) = &self.inner.route else {
            return Err(());
        };
        self.inner
            .outbox
            .get_or_init(|| {
                start_writer(
                    &self.inner.name,
                    tx,
                    &self.inner.counters,
                    self.inner.capacity,
                    self.inner.max_bytes,
                    self.inner.budget,
                )
            })
            .as_ref()
            .map_err(|_| ())
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    name: &'a str,
    /// Encodes exactly as the typed sender that [`Wire`] reads.
    tx: &'a IpcSender<Untyped>,
    counters: &'a Counters,
    capacity: u32,
    max_bytes: u32,
    budget: u64,
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct Wire<M> {
    name: String,
    tx: IpcSender<Frame<M>>,
    counters: Counters,
    capacity: u32,
    max_bytes: u32,
    budget: u64,
    #[serde(skip)]
    _m: PhantomData<M>,
}

/// How an [`Addr`] crosses a process boundary: the variants in the order of [`WireOf`].
#[derive(Serialize)]
enum WireRefOf<'a> {
    Inbox(WireRef<'a>),
    Remote(RemoteWire),
}

#[derive(Deserialize)]
#[serde(bound = "")]
enum WireOf<M> {
    Inbox(Wire<M>),
    Remote(RemoteWire),
}

impl<M: Serialize + Send + 'static> Serialize for Addr<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if ask::encoding_reply() {
            return Err(serde::ser::Error::custom(format!(
                "the address of {} cannot travel in a reply (replies are plain bytes): \
                 send it in a message",
                self.name()
            )));
        }
        match &self.flavor {
            Flavor::Remote(r) => WireRefOf::Remote(RemoteWire::of::<M>(&*r.link)),
            Flavor::Inbox(a) => WireRefOf::Inbox(a.wire()?),
        }
        .serialize(serializer)
    }
}

impl<M: Send + 'static> InboxAddr<M> {
    fn wire<E: serde::ser::Error>(&self) -> Result<WireRef<'_>, E> {
        if remote::encoding_remote() {
            let why = format!(
                "the address of {}, an actor on this machine, cannot travel to another machine \
                 (not yet): publish the actor in the cluster and send the address its lookup \
                 gives",
                self.inner.name
            );
            remote::refused_because(&why);
            return Err(E::custom(why));
        }
        let Route::Ipc(tx) = &self.inner.route else {
            return Err(E::custom(format!(
                "the address of {} (an actor running as a thread) cannot cross a process boundary",
                self.inner.name
            )));
        };
        Ok(WireRef {
            name: &self.inner.name,
            tx,
            counters: &self.inner.counters,
            capacity: self.inner.capacity.min(u32::MAX as usize) as u32,
            max_bytes: self.inner.max_bytes.min(MAX_MESSAGE_BYTES_LIMIT) as u32,
            budget: self.inner.budget,
        })
    }
}

impl<'de, M: Serialize + Send + 'static> Deserialize<'de> for Addr<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match WireOf::<M>::deserialize(deserializer)? {
            WireOf::Inbox(w) => Ok(Addr::new_bounded(
                w.name,
                w.tx,
                w.counters,
                w.capacity as usize,
                w.max_bytes as usize,
                w.budget,
            )),
            WireOf::Remote(w) => w.into_addr().map_err(serde::de::Error::custom),
        }
    }
}

/// What another transport needs to relay into an actor and confirm its messages (issue 17:
/// `actor-nats` forwards messages from other machines into a local actor and tells their
/// sender which ones were handled). Read-only views of the inbox's shared counters.
impl<M: Send + 'static> Addr<M> {
    /// The most messages this address queues towards the actor (its mailbox capacity; for an
    /// actor on another machine, the most this process may have on their way to it).
    pub fn capacity(&self) -> usize {
        match &self.flavor {
            Flavor::Inbox(a) => a.inner.capacity,
            Flavor::Remote(r) => r.link.capacity(),
        }
    }

    /// Messages accepted for the actor so far, by senders in every process. Always 0 for an
    /// actor on another machine: its node counts them (the transport's statistics say what
    /// became of this process's messages).
    pub fn accepted_count(&self) -> u64 {
        match &self.flavor {
            Flavor::Inbox(a) => Counters::load(&a.inner.counters.get().accepted),
            Flavor::Remote(_) => 0,
        }
    }

    /// Messages handed to the actor's code so far (every incarnation), counted by the
    /// actor's process. Inbox order is sending order within a process, so a relay that
    /// noted [`accepted_count`](Self::accepted_count) after its send knows that message was
    /// handed over once this count reaches that number. Always 0 for an actor on another
    /// machine, as `accepted_count`.
    pub fn handled_count(&self) -> u64 {
        match &self.flavor {
            Flavor::Inbox(a) => Counters::load(&a.inner.counters.get().handled),
            Flavor::Remote(_) => 0,
        }
    }

    /// Messages the actor's process received and could not decode (every incarnation): dead
    /// letters of its summary. With [`handled_count`](Self::handled_count), what became of
    /// the messages accepted so far, for a relay that hands on messages it did not decode
    /// ([`try_send_encoded`](Self::try_send_encoded)). Always 0 for an actor on another
    /// machine, as `accepted_count`.
    pub fn decode_failed_count(&self) -> u64 {
        match &self.flavor {
            Flavor::Inbox(a) => Counters::load(&a.inner.counters.get().decode_failed),
            Flavor::Remote(_) => 0,
        }
    }
}
