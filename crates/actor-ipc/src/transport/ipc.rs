//! The ipc flavor of an [`Addr`](super::Addr): the per-process writer thread behind every
//! address of an actor in another process, the frames it ships, and the flush at exit.
//!
//! One writer thread per destination and process takes everything pending and ships it as
//! one frame, so under load sends batch by themselves; a stuck receiver blocks only that
//! writer, never the caller. The writer encodes each message on its own into the frame (see
//! `crate::wire::frame`): one over the receiver's size limit, or that fails to encode, is
//! refused alone, logged and counted; frames close at `FRAME_BYTES`, so large messages are
//! not piled into huge frames, and a message over `SHM_THRESHOLD` travels in shared memory.

use crate::sys::fd::{FrameSocket, Untyped};
use crate::wire::counters::Counters;
use crate::wire::frame::{FrameBuf, OutBatch, FRAME_BYTES};
use crate::wire::shm::{ShmPool, MAX_IN_FLIGHT};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use ipc_channel::ipc::IpcSender;
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The most messages one frame carries (ANCHORS.md: 512 per send is near the socket's rate).
pub const MAX_BATCH: usize = 512;

/// Set (to anything) to turn the direct path off: every send then goes through the writer
/// thread. For comparisons (the benchmarks) and as an escape hatch.
pub const ENV_NO_DIRECT: &str = "MPACTOR_NO_DIRECT_SEND";

/// What sits in a sending queue: a message, a message already encoded (its postcard bytes,
/// relayed by another transport: only ever in an ipc route's queue), or the stop request for
/// one incarnation.
pub(crate) enum Item<M> {
    Msg(M),
    Encoded(bytes::Bytes),
    Stop(u32),
}

impl<M> Item<M> {
    /// `f` of the message a failed send hands back. Sends put only `Item::Msg` in (the stop
    /// request goes through `Addr::send_stop`, which hands nothing back), so a send's error
    /// always holds one: this is the one place that says so.
    pub(crate) fn map<E>(self, f: impl FnOnce(M) -> E) -> E {
        match self {
            Item::Msg(m) => f(m),
            Item::Encoded(_) | Item::Stop(_) => {
                unreachable!("a typed send puts only typed messages in the queue")
            }
        }
    }

    /// The bytes a failed send of an encoded message hands back: as [`map`](Self::map), for
    /// `try_send_encoded` and `send_encoded_timeout`, which put only `Item::Encoded` in.
    pub(crate) fn map_encoded<E>(self, f: impl FnOnce(bytes::Bytes) -> E) -> E {
        match self {
            Item::Encoded(b) => f(b),
            Item::Msg(_) | Item::Stop(_) => {
                unreachable!("an encoded send puts only encoded messages in the queue")
            }
        }
    }
}

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
            Out::Stop(incarnation) => crate::wire::frame::stop_variant(serializer, *incarnation),
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

pub(super) struct Outbox<M> {
    pub(super) queue: Sender<Item<M>>,
    /// Messages the writer has shipped, for the senders to drop (see [`Spent`]).
    pub(super) spent: Spent<M>,
    pub(super) state: Arc<OutboxState>,
    /// The inbox socket, when the direct path may be used for this message type.
    pub(super) direct: Option<FrameSocket>,
}

/// What the writer and the flush at exit share.
pub(super) struct OutboxState {
    pub(super) name: String,
    pub(super) counters: Counters,
    /// Messages accepted in this process and neither shipped nor counted undelivered yet.
    pub(super) pending: AtomicU64,
    /// The receiver is gone: everything still pending is undelivered.
    pub(super) dead: AtomicBool,
    /// The shared-memory regions of large messages, and the byte budget.
    pub(super) shm: ShmPool,
}

/// Frames of shipped messages that wait for a sending thread to drop them (see [`Spent`]);
/// with more, the writer drops them itself.
const SPENT_FRAMES: usize = 4;

/// How long shipped messages wait for a sender before the idle writer drops them itself.
const SPENT_IDLE: Duration = Duration::from_millis(20);

/// Messages the writer has shipped, handed back so that a *sending* thread drops them: the
/// next send to the same actor drops one frame's worth (or the writer, idle for
/// [`SPENT_IDLE`], drops them all).
///
/// Why: a message's heap memory (a `Vec`, a `String`) was allocated by the thread that made
/// it, in that thread's malloc arena. Freed by the writer thread, every free takes that
/// arena's lock while the producer allocates the next message in it; glibc's lock does not
/// spin, so each collision put the writer to sleep. In a profile of 4 KiB `ByteBuf` messages
/// one writer context switch in eight was that lock, and the three threads ran in lock-step
/// (2.4 GB/s; 3.4 GB/s handed back). Only for types with drop glue, frames of more than one
/// message (a flood: a lone message is dropped by the writer at once, so occasional traffic
/// costs no wake-up after it) and frames without shared-memory regions (a large message's
/// memory is the user's own large block: `munmap`, no arena lock, and it should not wait).
pub(super) struct Spent<M> {
    tx: Sender<Vec<Item<M>>>,
    rx: Receiver<Vec<Item<M>>>,
}

impl<M> Clone for Spent<M> {
    fn clone(&self) -> Self {
        Spent {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
        }
    }
}

impl<M> Spent<M> {
    fn new() -> Self {
        let (tx, rx) = bounded(SPENT_FRAMES);
        Spent { tx, rx }
    }

    /// The writer's side: `msgs` were shipped. Dropped here when the senders are behind.
    fn hand_back(&self, msgs: Vec<Item<M>>) {
        drop(self.tx.try_send(msgs));
    }

    /// A sender's side: drops one frame's worth of shipped messages, if any wait.
    pub(super) fn drop_some(&self) {
        if std::mem::needs_drop::<M>() {
            drop(self.rx.try_recv());
        }
    }

    /// The idle writer's side: drops everything that waits.
    fn drop_all(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// Every outbox of this process, for [`flush_all`].
static OUTBOXES: Mutex<Vec<Weak<OutboxState>>> = Mutex::new(Vec::new());

#[cfg(test)]
impl<M> super::InboxAddr<M>
where
    M: Serialize + Send + 'static,
{
    /// Ships `msgs` on the caller's thread with a writer of its own, as the writer thread
    /// would ship them had they all been queued at once. For tests of framing.
    #[cfg(test)]
    pub(crate) fn ship_now(&self, msgs: Vec<M>) -> u64 {
        let super::Route::Ipc(tx) = &self.inner.route else {
            return 0;
        };
        let state = OutboxState::new(
            &self.inner.name,
            &self.inner.counters,
            self.inner.budget,
            tx,
        );
        let mut writer = Writer::new(
            tx.clone(),
            Arc::new(state),
            self.inner.max_bytes,
            Spent::new(),
        );
        writer.ship(msgs.into_iter().map(Item::Msg))
    }
}

pub(super) fn start_writer<M: Serialize + Send + 'static>(
    name: &str,
    tx: &IpcSender<Untyped>,
    counters: &Counters,
    capacity: usize,
    max_bytes: usize,
    budget: u64,
) -> Result<Outbox<M>, String> {
    let (queue, rx) = bounded(capacity);
    let state = Arc::new(OutboxState::new(name, counters, budget, tx));
    let socket = FrameSocket::of(tx);
    if let Some(socket) = &socket {
        // Best effort: a socket left at the default only runs slower.
        let _ = socket.raise_send_buffer(INBOX_SOCKET_BYTES);
    }
    let direct = socket
        .filter(|_| !std::mem::needs_drop::<M>() && std::env::var_os(ENV_NO_DIRECT).is_none());
    let spent = Spent::new();
    let writer_spent = spent.clone();
    let tx = tx.clone();
    let writer_state = state.clone();
    std::thread::Builder::new()
        .name(format!("mpactor-to-{name}"))
        // The writer's sender is typed for `Out` (not `Send`: it holds an `Rc`), so it is made
        // inside the thread.
        .spawn(move || Writer::new(tx, writer_state, max_bytes, writer_spent).run(rx))
        .map_err(|e| format!("cannot start the writer thread: {e}"))?;
    let mut all = OUTBOXES.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&state));
    Ok(Outbox {
        queue,
        spent,
        state,
        direct,
    })
}

/// The send buffer asked for an inbox socket (`SO_SNDBUF`; the kernel clamps it to
/// `net.core.wmem_max`, 208 KiB on a default Linux, and doubles it). At the default
/// buffer (208 KiB) one frame of up to [`FRAME_BYTES`] filled it: the writer waited in every
/// send for the actor to read the previous frame and the two ran in lock-step. With four or
/// more frames in the socket they overlap: 4 KiB `SharedBytes` messages 3.9 → 7.3 GB/s.
/// Kernel memory, charged to the senders, only while the actor lags.
pub(super) const INBOX_SOCKET_BYTES: usize = 1 << 20;

/// How long a writer whose receiver is gone keeps counting what callers that raced with the
/// failure still put in.
const WRITER_IDLE: Duration = Duration::from_secs(1);

/// From this size on, a writer publishes its typical message size in the actor's shared
/// counters (`Block::typical`): below it, `mailbox_capacity` bounds the bytes well before
/// the default byte budget would (4096 messages of 4 KiB are 16 MiB), and a store per change
/// of a small message's size would only cost the senders' cache line.
const LARGE_FOR_BUDGET: u64 = 4096;

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
    in_frame: Vec<Item<M>>,
    /// Messages this writer refused.
    refused: u64,
    /// The largest recent message, encoded (decaying by 1/8 per message): published to the
    /// senders, who charge it for each message still queued (see `Addr::admits`).
    typical: u64,
    /// Messages of the batch being shipped that are not encoded yet (published likewise).
    unencoded: u64,
    /// Shipped messages, handed back to the senders to drop.
    spent: Spent<M>,
    /// The pool may hold a region (this writer took one since the pool was last found
    /// empty). Known here, not asked of the pool: its lock, taken once per batch, cost small
    /// messages a tenth or more of their throughput (it bounced between the writer's CPU and
    /// the senders', who read the budget beside it on every send).
    holds_shm: bool,
}

impl OutboxState {
    fn new(name: &str, counters: &Counters, budget: u64, tx: &IpcSender<Untyped>) -> Self {
        OutboxState {
            name: name.to_string(),
            counters: counters.clone(),
            pending: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            shm: ShmPool::new(budget, FrameSocket::of(tx)),
        }
    }
}

impl<M> Writer<M> {
    /// A writer for the inbox `tx` sends to. Its sender is typed for `Out` (not `Send`: it
    /// holds an `Rc`), so a writer is made on the thread that runs it.
    fn new<T: Serialize>(
        tx: IpcSender<T>,
        state: Arc<OutboxState>,
        max_bytes: usize,
        spent: Spent<M>,
    ) -> Self {
        Writer {
            tx: tx.to_opaque().to(),
            state,
            max_bytes,
            max_batch: MAX_BATCH,
            frame: FrameBuf::default(),
            in_frame: Vec::new(),
            refused: 0,
            typical: 0,
            unencoded: 0,
            spent,
            holds_shm: false,
        }
    }
}

impl<M: Serialize> Writer<M> {
    fn run(&mut self, rx: Receiver<Item<M>>) {
        // Messages and encoded messages; never a stop (it ends the batch).
        let mut batch: Vec<Item<M>> = Vec::with_capacity(64);
        loop {
            // Idle, the writer sleeps until something is queued: no deadline, because the
            // wait ends by itself when the last copy of the address in this process is
            // dropped (the queue disconnects). Only while it holds shared memory does it
            // look again after WRITER_IDLE, to close what idle traffic no longer needs.
            let first = if !self.spent.is_empty() {
                // Shipped messages no sender came to drop: the writer does, once idle.
                match rx.recv_timeout(SPENT_IDLE) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => {
                        self.spent.drop_all();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else if self.holds_shm {
                match rx.recv_timeout(WRITER_IDLE) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => {
                        self.state.shm.trim();
                        // Regions still in flight stay until they are received.
                        self.holds_shm = self.state.shm.holds_any();
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
                Item::Stop(incarnation) => stop_after = Some(incarnation),
                msg => batch.push(msg),
            }
            while stop_after.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Item::Stop(incarnation)) => stop_after = Some(incarnation),
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let n = batch.len() as u64;
                self.unencoded = n;
                if self.typical >= crate::wire::shm::SHM_THRESHOLD as u64 {
                    self.state.shm.set_unencoded(n);
                }
                // `ship` counts what it shipped frame by frame as each goes out (see
                // `send_frame`); the rest was refused or the receiver is gone: undelivered.
                let shipped = self.ship(batch.drain(..));
                if shipped < n {
                    // Not an add of 0 per batch: the word shares the senders' line, which
                    // they write on every send.
                    Counters::add(&self.state.counters.get().undelivered, n - shipped);
                }
                self.state.pending.fetch_sub(n, Ordering::SeqCst);
            }
            if let Some(incarnation) = stop_after {
                if !self.state.dead.load(Ordering::SeqCst) {
                    let _ = self.send(Out::Stop(incarnation));
                }
            }
            if self.state.dead.load(Ordering::SeqCst) {
                self.state.shm.clear();
                self.spent.drop_all();
                // Everything queued behind is undeliverable: count it and keep counting what
                // callers that raced with the failure still put in.
                while let Ok(item) = rx.recv_timeout(WRITER_IDLE) {
                    if let Item::Msg(_) | Item::Encoded(_) = item {
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
    /// [`SHM_THRESHOLD`](crate::wire::shm::SHM_THRESHOLD) goes into a shared-memory region that its
    /// frame refers to, and counts for its full size towards the frame's [`FRAME_BYTES`]:
    /// every frame fits one packet of the socket. Returns how many were shipped; the others
    /// were refused (each logged and counted) or the receiver is gone.
    fn ship(&mut self, msgs: impl Iterator<Item = Item<M>>) -> u64 {
        let mut shipped = 0;
        for msg in msgs {
            let pushed = match &msg {
                Item::Msg(m) => self.frame.push_large(m, self.max_bytes, &self.state.shm),
                Item::Encoded(b) => self.frame.push_encoded(b, self.max_bytes, &self.state.shm),
                // A batch never holds one (see `run`).
                Item::Stop(_) => continue,
            };
            match pushed {
                Ok(len) => {
                    // At least 1 once one is encoded: 0 means "not measured yet" to the
                    // senders (`Addr::size_unknown`), even for messages that encode to nothing.
                    let typical = (len as u64).max(self.typical - self.typical / 8).max(1);
                    self.unencoded = self.unencoded.saturating_sub(1);
                    // Published at once, for the senders' byte budget (they charge `typical`
                    // for every message still queued), but only when it changes or matters:
                    // a store per small message would bounce the cache line the senders read
                    // on every send between their CPU and this one.
                    if typical != self.typical {
                        // Also for the next sending processes (see `Block::typical`), once it
                        // matters for the budget: large messages, or the end of them.
                        if typical >= LARGE_FOR_BUDGET || self.typical >= LARGE_FOR_BUDGET {
                            Counters::set(&self.state.counters.get().typical, typical);
                        }
                        self.typical = typical;
                        self.state.shm.set_typical(typical);
                    }
                    if len >= crate::wire::shm::SHM_THRESHOLD {
                        self.holds_shm = true;
                    }
                    if len >= crate::wire::shm::SHM_THRESHOLD || self.unencoded == 0 {
                        // A message in a region of the frame is not in flight until the frame
                        // is sent: counted with the unencoded until then, so the budget never
                        // loses sight of it (the frame may wait for room in the socket).
                        let held = self.frame.region_count() as u64;
                        self.state.shm.set_unencoded(self.unencoded + held);
                    }
                    self.in_frame.push(msg)
                }
                Err(why) => {
                    self.refuse(&why);
                    // Its encoding may have taken a region and given it back to the pool.
                    self.holds_shm = true;
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
        let in_memory_only = regions.is_empty();
        self.frame.clear();
        match &sent {
            Sent::Ok => self.state.shm.shipped(regions),
            // Not shipped: a frame that is split is encoded again into other regions.
            Sent::TooManyChannels => regions
                .into_iter()
                .for_each(|(r, _)| self.state.shm.give_back(r)),
            Sent::Gone => drop(regions),
        }
        if !in_memory_only {
            // In flight now (or given back): no longer counted as held (see `ship`).
            self.state.shm.set_unencoded(self.unencoded);
        }
        match sent {
            // Cleared, not replaced: the vector's room is kept for the next frame.
            Sent::Ok => {
                // Counted frame by frame (above): a sender killed in the middle of a batch
                // has counted what it shipped, and the summary counts the rest of what it
                // accepted as lost with it (`Counters::unsent`).
                // A frame of one message is not a flood: dropped here, so that occasional
                // traffic costs the writer no extra wake-up 20 ms later.
                if std::mem::needs_drop::<M>() && in_memory_only && n > 1 {
                    let shipped = std::mem::replace(&mut self.in_frame, Vec::with_capacity(n));
                    self.spent.hand_back(shipped);
                } else {
                    self.in_frame.clear();
                }
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
pub(super) fn writer_says(error: bool, text: &str) {
    match WRITER_LOG.get() {
        Some(log) if error => slog::error!(log, "{text}"),
        Some(log) => slog::warn!(log, "{text}"),
        None => actor_core::log::stderr_line(&format!(
            "mpactor ({}): {text}",
            crate::sys::process::process_label()
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
