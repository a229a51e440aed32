//! [`Addr`]: the sending side of an actor's inbox, and the per-process writer behind it.
//!
//! A send puts the message on a bounded queue in the sending process (that bound is what
//! `try_send` and `send_timeout` mean). One writer thread per destination and process takes
//! everything pending and ships it as one frame, so under load sends batch by themselves; a
//! stuck receiver blocks only that writer, never the caller. The writer encodes each message
//! on its own into the frame (see [`crate::frame`]): one over the receiver's size limit, or
//! that fails to encode, is refused alone, logged and counted; frames close at
//! [`FRAME_BYTES`], so large messages are not piled into huge frames.
//!
//! When the actor is waiting (it has read everything sent to it) and nothing of this process
//! is on its way, a small message of a type without `Drop` skips the writer: the caller
//! writes it into the socket itself, without blocking (see `Addr::send_direct`). That keeps
//! a round trip at the transport's cost instead of adding a thread hop each way.

use crate::counters::Counters;
use crate::frame::{encode_single, Frame, FrameBuf, OutBatch, FRAME_BYTES};
use crate::shm::{ShmPool, MAX_IN_FLIGHT};
use actor_core::supervision::{
    DEFAULT_MAILBOX_BYTES, DEFAULT_SEND_TIMEOUT,
    MAX_MESSAGE_BYTES_CEILING as MAX_MESSAGE_BYTES_LIMIT,
};
use actor_core::SendError;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use ipc_channel::ipc::IpcSender;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The most messages one frame carries (ANCHORS.md: 512 per send is near the socket's rate).
pub const MAX_BATCH: usize = 512;

/// A frame as the writer sends it: the batch's entries are encoded by the writer into a
/// buffer shared with the frame, so that the buffer is reused for the next frame and, when
/// ipc-channel panics on a frame (more than 64 channels or shared-memory regions in it), the
/// writer still has it. Encodes exactly like [`Frame`].
enum Out {
    Batch(Rc<FrameBuf>),
    Stop(u32),
}

impl Serialize for Out {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Batch(buf) => OutBatch(buf.bytes()).serialize(serializer),
            Out::Stop(incarnation) => crate::frame::stop_variant(serializer, *incarnation),
        }
    }
}

/// Only so that ipc-channel lets a sender of this type be made (`OpaqueIpcSender::to`):
/// frames are always received as [`Frame`], never as `Out`.
impl<'de> Deserialize<'de> for Out {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "Out is the sending side's view of a Frame; receive a Frame",
        ))
    }
}

/// The largest encoded frame the direct path writes (on the caller's stack). Latency
/// matters for small messages; large ones go through the writer.
const DIRECT_MAX: usize = 512;

/// Set (to anything) to turn the direct path off: every send then goes through the writer
/// thread. For comparisons (the benchmarks) and as an escape hatch.
pub const ENV_NO_DIRECT: &str = "MPACTOR_NO_DIRECT_SEND";

/// What sits in a sending queue: a message or the stop request for one incarnation.
pub(crate) enum Item<M> {
    Msg(M),
    Stop(u32),
}

/// The address of an actor: sends messages of type `M` to its inbox.
///
/// Cheap to clone; serializable, so it can be handed to another actor in its `Args` or in a
/// message. Sends are bounded: [`try_send`](Addr::try_send) says `Full` at once,
/// [`send_timeout`](Addr::send_timeout) gives up at its deadline, and [`send`](Addr::send)
/// waits at most [`DEFAULT_SEND_TIMEOUT`]. A send to an actor that is gone for good says
/// `Disconnected`. While an actor is being restarted its inbox stays open: sends queue up
/// for the next incarnation, within the bound.
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
    Ipc(SharedSender<M>),
    /// Straight into the bounded queue of an actor running as a thread of this process.
    Local(Sender<Item<M>>),
}

/// An `IpcSender` that may be shared between threads whatever `M` is.
struct SharedSender<M>(IpcSender<Frame<M>>);

// SAFETY: `IpcSender<T>` holds an `Arc` of a socket descriptor and a `PhantomData<T>`; it
// never holds a `T`, so sharing it between threads cannot share a `T`. It is only `!Sync` for
// `!Sync` messages because of the marker.
unsafe impl<M: Send> Sync for SharedSender<M> {}

struct Outbox<M> {
    queue: Sender<Item<M>>,
    state: Arc<OutboxState>,
    /// The inbox socket, when the direct path may be used for this message type.
    direct: Option<std::os::raw::c_int>,
}

/// What the writer and the flush at exit share.
struct OutboxState {
    name: String,
    counters: Counters,
    /// Messages accepted in this process and neither shipped nor counted undelivered yet.
    pending: AtomicU64,
    /// The receiver is gone: everything still pending is undelivered.
    dead: AtomicBool,
    /// The shared-memory regions of large messages, and the byte budget.
    shm: ShmPool,
}

/// Every outbox of this process, for [`flush_all`].
static OUTBOXES: Mutex<Vec<Weak<OutboxState>>> = Mutex::new(Vec::new());

impl<M: Send + 'static> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Send + 'static> std::fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Addr({})", self.inner.name)
    }
}

impl<M> Addr<M>
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
                route: Route::Ipc(SharedSender(tx)),
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

    /// The name of the actor this address points to.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The largest message, encoded, that this actor takes: its
    /// [`ChildOptions::max_message_bytes`](actor_core::ChildOptions::max_message_bytes).
    /// A larger one is refused by the sending process's writer: not shipped, logged by that
    /// process (an error naming the actor and the limit), and counted as a dead letter
    /// (`refused` in the summary). `usize::MAX` for an actor running as a thread, whose
    /// messages are moved, not encoded.
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
        self.inner.max_bytes
    }

    /// The inbox's socket sender, for an address of an actor in another process (or this one)
    /// over ipc-channel: the wake-up of the actor's own receive writes to it.
    pub(crate) fn ipc_sender(&self) -> Option<&IpcSender<Frame<M>>> {
        match &self.inner.route {
            Route::Ipc(tx) => Some(&tx.0),
            Route::Local(_) => None,
        }
    }

    /// True once the actor is gone for good (stopped, or ended and not restarted).
    pub fn is_gone(&self) -> bool {
        self.inner.counters.is_gone()
    }

    /// Queues `msg` if there is room now; says [`SendError::Full`] at once otherwise.
    pub fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        let Ok((queue, state)) = self.queue() else {
            return Err(SendError::Disconnected(msg));
        };
        let Err(msg) = self.send_direct(msg) else {
            return Ok(());
        };
        if !self.admits(queue, state) {
            return Err(SendError::Full(msg));
        }
        self.before_send(state);
        let result = queue.try_send(Item::Msg(msg)).map_err(|e| match e {
            TrySendError::Full(Item::Msg(m)) => SendError::Full(m),
            TrySendError::Disconnected(Item::Msg(m)) => SendError::Disconnected(m),
            _ => unreachable!("only messages are sent here"),
        });
        self.after_send(state, result)
    }

    /// Queues `msg`, waiting at most `timeout` for room.
    pub fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendError<M>> {
        let Ok((queue, state)) = self.queue() else {
            return Err(SendError::Disconnected(msg));
        };
        let Err(msg) = self.send_direct(msg) else {
            return Ok(());
        };
        let timeout = match self.wait_for_budget(queue, state, timeout) {
            Ok(left) => left,
            Err(()) if self.is_gone() => return Err(SendError::Disconnected(msg)),
            Err(()) => return Err(SendError::Timeout(msg)),
        };
        self.before_send(state);
        let result = queue
            .send_timeout(Item::Msg(msg), timeout)
            .map_err(|e| match e {
                crossbeam_channel::SendTimeoutError::Timeout(Item::Msg(m)) if self.is_gone() => {
                    SendError::Disconnected(m)
                }
                crossbeam_channel::SendTimeoutError::Timeout(Item::Msg(m)) => SendError::Timeout(m),
                crossbeam_channel::SendTimeoutError::Disconnected(Item::Msg(m)) => {
                    SendError::Disconnected(m)
                }
                _ => unreachable!("only messages are sent here"),
            });
        self.after_send(state, result)
    }

    /// Queues `msg`, waiting at most [`DEFAULT_SEND_TIMEOUT`] for room.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_timeout(msg, DEFAULT_SEND_TIMEOUT)
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
    fn send_direct(&self, msg: M) -> Result<(), M> {
        let Some(Ok(outbox)) = self.inner.outbox.get() else {
            return Err(msg);
        };
        let Some(fd) = outbox.direct else {
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
        let sent = match encode_single(&msg, &mut buf) {
            // Near the limit, the writer decides (and says why when it refuses).
            Some(frame) if frame.len() <= self.inner.max_bytes => {
                crate::fd::try_send_frame(fd, frame)
            }
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
        let each = state.shm.typical().max(std::mem::size_of::<M>() as u64);
        // Accepted and not yet encoded: in the queue, and in the writer's batch (it takes up
        // to MAX_BATCH at once and encodes them one by one).
        let queued = || queue.len() + state.shm.unencoded() as usize;
        state.shm.admits(queued, self.inner.capacity, each)
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
        if self.admits(queue, state) {
            return Ok(timeout);
        }
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(50);
        while !self.admits(queue, state) {
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
            state.pending.fetch_add(1, Ordering::SeqCst);
            Counters::add(&self.inner.counters.get().accepted, 1);
        }
    }

    fn after_send(
        &self,
        state: Option<&OutboxState>,
        result: Result<(), SendError<M>>,
    ) -> Result<(), SendError<M>> {
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

    /// Ships `msgs` on the caller's thread with a writer of its own, as the writer thread
    /// would ship them had they all been queued at once. For tests of framing.
    #[cfg(test)]
    pub(crate) fn ship_now(&self, msgs: Vec<M>) -> u64 {
        let Route::Ipc(tx) = &self.inner.route else {
            return 0;
        };
        let mut writer = Writer {
            tx: tx.0.clone().to_opaque().to(),
            state: Arc::new(OutboxState {
                name: self.inner.name.clone(),
                counters: self.inner.counters.clone(),
                pending: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                shm: ShmPool::new(self.inner.budget, crate::fd::sender_fd(&tx.0)),
            }),
            max_bytes: self.inner.max_bytes,
            max_batch: MAX_BATCH,
            frame: FrameBuf::default(),
            in_frame: Vec::new(),
            refused: 0,
            typical: 0,
            unencoded: 0,
        };
        writer.ship(msgs.into_iter())
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
                    &tx.0,
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

fn start_writer<M: Serialize + Send + 'static>(
    name: &str,
    tx: &IpcSender<Frame<M>>,
    counters: &Counters,
    capacity: usize,
    max_bytes: usize,
    budget: u64,
) -> Result<Outbox<M>, String> {
    let (queue, rx) = bounded(capacity);
    let state = Arc::new(OutboxState {
        name: name.to_string(),
        counters: counters.clone(),
        pending: AtomicU64::new(0),
        dead: AtomicBool::new(false),
        shm: ShmPool::new(budget, crate::fd::sender_fd(tx)),
    });
    let direct = (!std::mem::needs_drop::<M>() && std::env::var_os(ENV_NO_DIRECT).is_none())
        .then(|| crate::fd::sender_fd(tx))
        .flatten();
    let tx = tx.clone();
    let writer_state = state.clone();
    std::thread::Builder::new()
        .name(format!("mpactor-to-{name}"))
        // The writer's sender is typed for `Out` (not `Send`: it holds an `Rc`), so it is made
        // inside the thread.
        .spawn(move || {
            let mut writer = Writer {
                tx: tx.to_opaque().to(),
                state: writer_state,
                max_bytes,
                max_batch: MAX_BATCH,
                frame: FrameBuf::default(),
                in_frame: Vec::new(),
                refused: 0,
                typical: 0,
                unencoded: 0,
            };
            writer.run(rx)
        })
        .map_err(|e| format!("cannot start the writer thread: {e}"))?;
    let mut all = OUTBOXES.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&state));
    Ok(Outbox {
        queue,
        state,
        direct,
    })
}

/// How long a writer whose receiver is gone keeps counting what callers that raced with the
/// failure still put in.
const WRITER_IDLE: Duration = Duration::from_secs(1);

/// One destination's writer, on its own thread: ships what the process's senders queued.
struct Writer<M> {
    tx: IpcSender<Out>,
    state: Arc<OutboxState>,
    /// The receiver's limit on one encoded message.
    max_bytes: usize,
    /// Shrinks when a frame turns out to carry too many channels (messages holding `Addr`s).
    max_batch: usize,
    /// The frame being built, reused.
    frame: FrameBuf,
    /// The messages encoded into `frame`, kept until it is sent: if ipc-channel refuses the
    /// frame (too many channels) they are split and encoded again.
    in_frame: Vec<M>,
    /// Messages this writer refused.
    refused: u64,
    /// The largest recent message, encoded (decaying by 1/8 per message): published to the
    /// senders, who charge it for each message still queued (see `Addr::admits`).
    typical: u64,
    /// Messages of the batch being shipped that are not encoded yet (published likewise).
    unencoded: u64,
}

impl<M: Serialize> Writer<M> {
    fn run(&mut self, rx: Receiver<Item<M>>) {
        let mut batch: Vec<M> = Vec::with_capacity(64);
        loop {
            // Idle, the writer sleeps until something is queued: no deadline, because the
            // wait ends by itself when the last copy of the address in this process is
            // dropped (the queue disconnects). Only while it holds shared memory does it
            // look again after WRITER_IDLE, to close what idle traffic no longer needs.
            let first = if self.state.shm.holds_any() {
                match rx.recv_timeout(WRITER_IDLE) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => {
                        self.state.shm.trim();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(item) => item,
                    Err(_) => return,
                }
            };
            let mut stop_after = None;
            match first {
                Item::Msg(m) => batch.push(m),
                Item::Stop(incarnation) => stop_after = Some(incarnation),
            }
            while stop_after.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Item::Msg(m)) => batch.push(m),
                    Ok(Item::Stop(incarnation)) => stop_after = Some(incarnation),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let n = batch.len() as u64;
                self.unencoded = n;
                if self.typical >= crate::SHM_THRESHOLD as u64 {
                    self.state.shm.set_unencoded(n);
                }
                // `ship` counts what it shipped frame by frame as each goes out (see
                // `send_frame`); the rest was refused or the receiver is gone: undelivered.
                let shipped = self.ship(batch.drain(..));
                Counters::add(&self.state.counters.get().undelivered, n - shipped);
                self.state.pending.fetch_sub(n, Ordering::SeqCst);
            }
            if let Some(incarnation) = stop_after {
                if !self.state.dead.load(Ordering::SeqCst) {
                    let _ = self.send(Out::Stop(incarnation));
                }
            }
            if self.state.dead.load(Ordering::SeqCst) {
                self.state.shm.clear();
                // Everything queued behind is undeliverable: count it and keep counting what
                // callers that raced with the failure still put in.
                while let Ok(item) = rx.recv_timeout(WRITER_IDLE) {
                    if let Item::Msg(_) = item {
                        Counters::add(&self.state.counters.get().undelivered, 1);
                        self.state.pending.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                return;
            }
        }
    }

    /// Encodes `msgs` into as few frames as [`FRAME_BYTES`], [`MAX_BATCH`] and the
    /// transport's channel limit allow, and sends them. A message larger than
    /// [`SHM_THRESHOLD`](crate::SHM_THRESHOLD) goes into a shared-memory region that its
    /// frame refers to, and counts for its full size towards the frame's [`FRAME_BYTES`]:
    /// every frame fits one packet of the socket. Returns how many were shipped; the others
    /// were refused (each logged and counted) or the receiver is gone.
    fn ship(&mut self, msgs: impl Iterator<Item = M>) -> u64 {
        let mut shipped = 0;
        for msg in msgs {
            match self.frame.push_large(&msg, self.max_bytes, &self.state.shm) {
                Ok(len) => {
                    let typical = (len as u64).max(self.typical - self.typical / 8);
                    self.unencoded = self.unencoded.saturating_sub(1);
                    // Published at once, for the senders' byte budget (they charge `typical`
                    // for every message still queued), but only when it changes or matters:
                    // a store per small message would bounce the cache line the senders read
                    // on every send between their CPU and this one.
                    if typical != self.typical {
                        self.typical = typical;
                        self.state.shm.set_typical(typical);
                    }
                    if len >= crate::SHM_THRESHOLD || self.unencoded == 0 {
                        self.state.shm.set_unencoded(self.unencoded);
                    }
                    self.in_frame.push(msg)
                }
                Err(why) => {
                    self.refuse(&why);
                    if std::mem::needs_drop::<M>() {
                        // It may have left channels on ipc-channel's list (encoding an `Addr`
                        // puts one there): they go now, behind those of the frame so far
                        // (whose indices they do not move), not in front of the next
                        // message's, where they would count against its frame's 64.
                        shipped += self.send_frame();
                    }
                }
            }
            if self.frame.weight() >= FRAME_BYTES || self.in_frame.len() >= self.max_batch {
                shipped += self.send_frame();
            }
        }
        if !self.frame.is_empty() {
            shipped += self.send_frame();
        }
        shipped
    }

    /// Before a frame with regions goes out: waits while [`MAX_IN_FLIGHT`] regions of this
    /// writer are in the socket (each is a descriptor in flight, which the kernel limits per
    /// user), as a send waits on a full socket. A receiver that is gone empties the socket,
    /// which gives them all back.
    fn wait_for_regions(&self, adding: usize) {
        let shm = &self.state.shm;
        let mut nap = Duration::from_micros(50);
        while adding > 0 && shm.in_flight() + adding > MAX_IN_FLIGHT {
            shm.reclaim();
            if shm.in_flight() + adding <= MAX_IN_FLIGHT || self.state.dead.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    /// Sends the frame built so far; returns how many of its messages were shipped.
    ///
    /// They are counted shipped *before* the send and taken back if it fails: this process
    /// may end at any moment (its stop deadline passed, a SIGKILL), and a frame the socket
    /// took must never be missing from `shipped` (the receiver would handle messages that
    /// the accounting still holds as unsent: counted twice). A frame counted but never sent
    /// shows as shipped and never received: a dead letter, counted once.
    fn send_frame(&mut self) -> u64 {
        let n = self.in_frame.len();
        self.wait_for_regions(self.frame.region_count());
        let shared = Rc::new(std::mem::take(&mut self.frame));
        let shipped = &self.state.counters.get().shipped;
        Counters::add(shipped, n as u64);
        let sent = self.send(Out::Batch(shared.clone()));
        if !matches!(sent, Sent::Ok) {
            Counters::sub(shipped, n as u64);
        }
        // The frame handed to `send` is dropped by now, even when it panicked: ours is the
        // last handle, and its buffer is kept for the next frame.
        self.frame = Rc::try_unwrap(shared).unwrap_or_default();
        let regions = self.frame.take_regions();
        self.frame.clear();
        match &sent {
            Sent::Ok => self.state.shm.shipped(regions),
            // Not shipped: a frame that is split is encoded again into other regions.
            Sent::TooManyChannels => regions
                .into_iter()
                .for_each(|(r, _)| self.state.shm.give_back(r)),
            Sent::Gone => drop(regions),
        }
        match sent {
            // Cleared, not replaced: the vector's room is kept for the next frame.
            Sent::Ok => {
                // Counted frame by frame (above): a sender killed in the middle of a batch
                // has counted what it shipped, and the summary counts the rest of what it
                // accepted as lost with it (`Counters::unsent`).
                self.in_frame.clear();
                n as u64
            }
            Sent::Gone => {
                self.in_frame.clear();
                0
            }
            // An empty frame that only took away channels a refused message left behind:
            // they are gone with it, and no message was in it.
            Sent::TooManyChannels if n == 0 => 0,
            Sent::TooManyChannels if n == 1 => {
                self.in_frame.clear();
                self.refuse(&"it carries more channels than one send can (64)");
                0
            }
            Sent::TooManyChannels => {
                // Split and encode again: the channels were taken off ipc-channel's list by
                // the send that panicked, so the halves start from an empty list.
                let msgs = std::mem::take(&mut self.in_frame);
                self.max_batch = (n / 2).max(1);
                self.ship(msgs.into_iter())
            }
        }
    }

    fn send(&self, frame: Out) -> Sent {
        match catch_unwind(AssertUnwindSafe(|| self.tx.send(frame))) {
            Ok(Ok(())) => Sent::Ok,
            Ok(Err(e)) => {
                // Said before it is marked: `flush_all` returns once it is, and the process's
                // logger is flushed right after that.
                if !self.state.dead.load(Ordering::SeqCst) {
                    writer_says(
                        false,
                        &format!("the inbox of {} is gone ({e})", self.state.name),
                    );
                }
                self.state.dead.store(true, Ordering::SeqCst);
                Sent::Gone
            }
            Err(_) => Sent::TooManyChannels,
        }
    }

    /// A message that is not shipped, and why: logged and counted (the caller counts
    /// it undelivered too, so it is a dead letter). Said for the 1st, 2nd, 4th, 8th... of
    /// this writer, so that a flood of them does not flood the log.
    fn refuse(&mut self, why: &dyn std::fmt::Display) {
        Counters::add(&self.state.counters.get().refused, 1);
        self.refused += 1;
        if self.refused.is_power_of_two() {
            writer_says(
                true,
                &format!(
                    "a message for {} was refused and not sent: {why} ({} refused by this process)",
                    self.state.name, self.refused
                ),
            );
        }
    }
}

/// What became of one frame.
enum Sent {
    Ok,
    /// The receiver is gone.
    Gone,
    /// ipc-channel refused the frame by panicking: more channels than one send carries.
    TooManyChannels,
}

/// The logger of this process (the actor's, or the root's) for what writers have to say.
static WRITER_LOG: OnceLock<slog::Logger> = OnceLock::new();

/// Gives this process's writers a logger: their lines then carry the clock, the level and the
/// name of the process's actor like every other line. The first call wins.
pub(crate) fn set_writer_log(log: &slog::Logger) {
    let _ = WRITER_LOG.set(log.clone());
}

/// What a writer has to say: an error when it refused a message, a warning when the inbox is
/// gone. Through the process's logger; without one (an `Addr` used outside a runtime), on
/// stderr, the one place that always exists.
fn writer_says(error: bool, text: &str) {
    match WRITER_LOG.get() {
        Some(log) if error => slog::error!(log, "{text}"),
        Some(log) => slog::warn!(log, "{text}"),
        None => actor_core::log::stderr_line(&format!(
            "mpactor ({}): {text}",
            crate::process::process_label()
        )),
    }
}

/// Waits until every outbox of this process has shipped what it accepted, at most until
/// `deadline`, and returns how many messages were still on their way then.
///
/// Those are not counted here: the writer that holds them may still ship them (this process
/// goes on), or not (it ends). Either way each is counted once: shipped by the writer, or, if
/// this process ends first, as accepted and never shipped, which the root's summary counts as
/// a dead letter (`unsent`).
pub fn flush_all(deadline: Instant) -> u64 {
    let states: Vec<Arc<OutboxState>> = OUTBOXES.lock().iter().filter_map(Weak::upgrade).collect();
    let mut left = 0;
    for state in states {
        loop {
            let pending = state.pending.load(Ordering::SeqCst);
            if pending == 0 || state.dead.load(Ordering::SeqCst) {
                break;
            }
            if Instant::now() >= deadline {
                left += pending;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    left
}

#[derive(Serialize)]
struct WireRef<'a, M> {
    name: &'a str,
    tx: &'a IpcSender<Frame<M>>,
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

impl<M: Serialize + Send + 'static> Serialize for Addr<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Route::Ipc(tx) = &self.inner.route else {
            return Err(serde::ser::Error::custom(format!(
                "the address of {} (an actor running as a thread) cannot cross a process boundary",
                self.inner.name
            )));
        };
        WireRef {
            name: &self.inner.name,
            tx: &tx.0,
            counters: &self.inner.counters,
            capacity: self.inner.capacity.min(u32::MAX as usize) as u32,
            max_bytes: self.inner.max_bytes.min(MAX_MESSAGE_BYTES_LIMIT) as u32,
            budget: self.inner.budget,
        }
        .serialize(serializer)
    }
}

impl<'de, M: Serialize + Send + 'static> Deserialize<'de> for Addr<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::<M>::deserialize(deserializer)?;
        Ok(Addr::new_bounded(
            w.name,
            w.tx,
            w.counters,
            w.capacity as usize,
            w.max_bytes as usize,
            w.budget,
        ))
    }
}
