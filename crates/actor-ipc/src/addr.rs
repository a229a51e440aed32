//! [`Addr`]: the sending side of an actor's inbox, and the per-process writer behind it.
//!
//! A send never touches the socket: it puts the message on a bounded queue in the sending
//! process (that bound is what `try_send` and `send_timeout` mean). One writer thread per
//! destination and process takes everything pending and ships it as one frame, so under load
//! sends batch by themselves and idle they add no delay; a stuck receiver blocks only that
//! writer, never the caller.

use crate::counters::Counters;
use actor_core::supervision::DEFAULT_SEND_TIMEOUT;
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

/// What travels through an inbox's socket.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Frame<M> {
    /// Messages, in the order they were accepted by one sending process.
    Batch(Vec<M>),
    /// The stop request: everything this sender accepted before it is ahead of it.
    Stop,
}

/// The writer's view of a frame: the batch is shared, so that when ipc-channel panics on a
/// frame (more than 64 channels or shared-memory regions in it), the messages are still here to
/// be split and sent again. Encodes exactly like [`Frame`].
enum Out<M> {
    Batch(Rc<Vec<M>>),
    Stop,
}

impl<M: Serialize> Serialize for Out<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Batch(msgs) => {
                serializer.serialize_newtype_variant("Frame", 0, "Batch", &msgs[..])
            }
            Out::Stop => serializer.serialize_unit_variant("Frame", 1, "Stop"),
        }
    }
}

/// Only so that ipc-channel lets a sender of this type be made (`OpaqueIpcSender::to`):
/// frames are always received as [`Frame`], never as `Out`.
impl<'de, M> Deserialize<'de> for Out<M> {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "Out is the sending side's view of a Frame; receive a Frame",
        ))
    }
}

/// What sits in a sending queue: a message or the stop request.
pub(crate) enum Item<M> {
    Msg(M),
    Stop,
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
}

/// What the writer and the flush at exit share.
struct OutboxState {
    name: String,
    counters: Counters,
    /// Messages accepted in this process and neither shipped nor counted undelivered yet.
    pending: AtomicU64,
    /// The receiver is gone: everything still pending is undelivered.
    dead: AtomicBool,
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
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                route: Route::Ipc(SharedSender(tx)),
                counters,
                capacity: capacity.max(1),
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
                outbox: OnceLock::new(),
            }),
        }
    }

    /// The name of the actor this address points to.
    pub fn name(&self) -> &str {
        &self.inner.name
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

    /// Queues the stop request behind everything this process accepted for the actor.
    /// Returns false if it could not be queued by `deadline`.
    pub(crate) fn send_stop(&self, deadline: Instant) -> bool {
        let queue = match &self.inner.route {
            Route::Local(queue) => queue,
            Route::Ipc(_) => match self.outbox() {
                Ok(outbox) => &outbox.queue,
                Err(()) => return false,
            },
        };
        let left = deadline.saturating_duration_since(Instant::now());
        queue.send_timeout(Item::Stop, left).is_ok()
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

    fn before_send(&self, state: Option<&OutboxState>) {
        // Counted as pending before it is queued, so the writer never sees it go below zero.
        if let Some(state) = state {
            state.pending.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn after_send(
        &self,
        state: Option<&OutboxState>,
        result: Result<(), SendError<M>>,
    ) -> Result<(), SendError<M>> {
        let b = self.inner.counters.get();
        match (&result, state) {
            (Ok(()), Some(_)) => Counters::add(&b.accepted, 1),
            (Ok(()), None) => {
                // A local route puts the message straight into the inbox.
                Counters::add(&b.accepted, 1);
                Counters::add(&b.shipped, 1);
            }
            (Err(_), Some(state)) => {
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
                    &tx.0,
                    &self.inner.counters,
                    self.inner.capacity,
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
) -> Result<Outbox<M>, String> {
    let (queue, rx) = bounded(capacity);
    let state = Arc::new(OutboxState {
        name: name.to_string(),
        counters: counters.clone(),
        pending: AtomicU64::new(0),
        dead: AtomicBool::new(false),
    });
    let tx = tx.clone();
    let writer_state = state.clone();
    std::thread::Builder::new()
        .name(format!("mpactor-to-{name}"))
        // The writer's sender is typed for `Out` (not `Send`: it holds an `Rc`), so it is made
        // inside the thread.
        .spawn(move || write_loop(rx, tx.to_opaque().to(), writer_state))
        .map_err(|e| format!("cannot start the writer thread: {e}"))?;
    let mut all = OUTBOXES.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&state));
    Ok(Outbox { queue, state })
}

/// How long an idle writer waits before looking again whether its address is still held.
const WRITER_IDLE: Duration = Duration::from_secs(1);

fn write_loop<M: Serialize>(rx: Receiver<Item<M>>, tx: IpcSender<Out<M>>, state: Arc<OutboxState>) {
    // Shrinks when a frame turns out to carry too many channels (messages holding `Addr`s).
    let mut max_batch = MAX_BATCH;
    let mut batch: Vec<M> = Vec::with_capacity(64);
    loop {
        let first = match rx.recv_timeout(WRITER_IDLE) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut stop_after = false;
        match first {
            Item::Msg(m) => batch.push(m),
            Item::Stop => stop_after = true,
        }
        while !stop_after && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Item::Msg(m)) => batch.push(m),
                Ok(Item::Stop) => stop_after = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let msgs = std::mem::replace(&mut batch, Vec::with_capacity(64));
            let shipped = ship_batch(&tx, msgs, &state, &mut max_batch);
            Counters::add(&state.counters.get().shipped, shipped);
            Counters::add(&state.counters.get().undelivered, n - shipped);
            state.pending.fetch_sub(n, Ordering::SeqCst);
        }
        if stop_after && !state.dead.load(Ordering::SeqCst) {
            let _ = send_frame(&tx, Out::Stop, &state);
        }
        if state.dead.load(Ordering::SeqCst) {
            // Everything queued behind is undeliverable: count it and keep counting what
            // callers that raced with the failure still put in.
            while let Ok(item) = rx.recv_timeout(WRITER_IDLE) {
                if let Item::Msg(_) = item {
                    Counters::add(&state.counters.get().undelivered, 1);
                    state.pending.fetch_sub(1, Ordering::SeqCst);
                }
            }
            return;
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

fn send_frame<M: Serialize>(tx: &IpcSender<Out<M>>, frame: Out<M>, state: &OutboxState) -> Sent {
    match catch_unwind(AssertUnwindSafe(|| tx.send(frame))) {
        Ok(Ok(())) => Sent::Ok,
        Ok(Err(e)) => {
            if !state.dead.swap(true, Ordering::SeqCst) {
                log_stderr(&format!("the inbox of {} is gone ({e})", state.name));
            }
            Sent::Gone
        }
        Err(_) => Sent::TooManyChannels,
    }
}

/// Sends `msgs` as few frames as the transport allows; returns how many were shipped. A
/// frame refused for carrying too many channels is split in halves and sent again; a single
/// message that carries too many by itself is refused with a logged error (counted
/// undelivered by the caller).
fn ship_batch<M: Serialize>(
    tx: &IpcSender<Out<M>>,
    msgs: Vec<M>,
    state: &OutboxState,
    max_batch: &mut usize,
) -> u64 {
    let n = msgs.len();
    let shared = Rc::new(msgs);
    match send_frame(tx, Out::Batch(shared.clone()), state) {
        Sent::Ok => n as u64,
        Sent::Gone => 0,
        Sent::TooManyChannels => {
            // The frame given to `send` was dropped while unwinding: ours is the last handle.
            let Ok(mut msgs) = Rc::try_unwrap(shared) else {
                return 0;
            };
            if n == 1 {
                log_stderr(&format!(
                    "a message for {} carries more channels than one send can (64); it was not sent",
                    state.name
                ));
                return 0;
            }
            *max_batch = (n / 2).max(1);
            let second = msgs.split_off(n / 2);
            ship_batch(tx, msgs, state, max_batch) + ship_batch(tx, second, state, max_batch)
        }
    }
}

fn log_stderr(text: &str) {
    // Writers run without a logger (an Addr can live in any thread of any process): the
    // process's stderr is the one place that always exists.
    if std::env::var_os("MPACTOR_QUIET_WRITERS").is_none() {
        eprintln!("mpactor: {text}");
    }
}

/// Waits until every outbox of this process has shipped what it accepted, at most until
/// `deadline`. What is still pending then is counted as undelivered (dead letters) on its
/// destination's counters. Returns how many messages were undelivered that way.
pub fn flush_all(deadline: Instant) -> u64 {
    let states: Vec<Arc<OutboxState>> = OUTBOXES.lock().iter().filter_map(Weak::upgrade).collect();
    let mut abandoned = 0;
    for state in states {
        loop {
            let pending = state.pending.load(Ordering::SeqCst);
            if pending == 0 || state.dead.load(Ordering::SeqCst) {
                break;
            }
            if Instant::now() >= deadline {
                let left = state.pending.swap(0, Ordering::SeqCst);
                Counters::add(&state.counters.get().undelivered, left);
                abandoned += left;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    abandoned
}

#[derive(Serialize)]
struct WireRef<'a, M> {
    name: &'a str,
    tx: &'a IpcSender<Frame<M>>,
    counters: &'a Counters,
    capacity: u32,
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct Wire<M> {
    name: String,
    tx: IpcSender<Frame<M>>,
    counters: Counters,
    capacity: u32,
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
        }
        .serialize(serializer)
    }
}

impl<'de, M: Serialize + Send + 'static> Deserialize<'de> for Addr<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Wire::<M>::deserialize(deserializer)?;
        Ok(Addr::new(w.name, w.tx, w.counters, w.capacity as usize))
    }
}
