//! Per-inbox counters in memory shared by every process that holds the inbox's address.
//!
//! Senders in any process count what they accepted and shipped, the actor's process counts
//! what it received and handled, and the root reads them all, even after the actor's process
//! was killed: so the summary reconciles (`accepted = handled + dead letters`) across
//! processes and crashes.

use crate::sys::shared_map::SharedMap;
use ipc_channel::ipc::IpcSharedMemory;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The counters of one inbox, as references into the shared mapping ([`Counters::get`]).
/// Every field only grows, except `gone` and `stop_requested`.
///
/// Grouped by who writes them, one cache line (8 words) per group: a flooding sender bumps
/// `accepted` for every message while the actor's process bumps `handled` for every
/// message, and sharing one line made the two processes fight over it (false sharing),
/// while every send also reads `gone`.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a> {
    /// Messages a sender accepted (`try_send`/`send` returned Ok).
    pub accepted: Counter<'a>,
    /// Messages written into the inbox's socket by a sender's writer.
    pub shipped: Counter<'a>,
    /// Messages a sender accepted but could not deliver (the actor gone, or the sender's
    /// process stopping past its deadline).
    pub undelivered: Counter<'a>,
    /// Of the undelivered, messages a sender refused to ship: over the actor's size limit,
    /// failing to encode, or carrying more channels than one send can.
    pub refused: Counter<'a>,
    /// The typical size of a large message to this actor (bytes, encoded), published by the
    /// writers that ship them: a sending process whose own writer has encoded nothing yet
    /// (a new process, a restarted producer) charges its first messages this much against
    /// the byte budget instead of the size of an empty message. 0 while only small messages
    /// were sent.
    pub typical: Counter<'a>,
    /// Messages the actor's process took out of the socket.
    pub received: Counter<'a>,
    /// Messages handed to the actor's code.
    pub handled: Counter<'a>,
    /// Messages the actor's process received but drained without handling when it stopped.
    pub drained_child: Counter<'a>,
    /// Messages that failed to decode (a frame that fails as a whole counts as one).
    pub decode_failed: Counter<'a>,
    /// Messages the root drained from the socket after the actor's last process ended.
    pub drained_root: Counter<'a>,
    /// 1 once the actor is gone for good: sends fail at once.
    pub gone: Counter<'a>,
    /// What the root asks of the current incarnation: 0 nothing, [`STOP_ASKED`] a clean stop
    /// (the stop frame is on its way), [`STOP_NOW`] the stop deadline passed.
    pub stop_requested: Counter<'a>,
    /// The number of the current incarnation (1 for the first start), set by the root before
    /// each start. Stop frames carry it: one meant for an incarnation that died before it read
    /// it is dropped by the next one, not taken as its own.
    pub incarnation: Counter<'a>,
    /// Replies to `Addr::ask` sent by any process of the system (used only in the root's
    /// report inbox's block, which every process of a system holds): each reply a replier
    /// made, delivered or not.
    pub replies_sent: Counter<'a>,
    /// Of the replies sent, those an asker took as the answer to its question. The rest
    /// (`replies_sent - replies_taken`) are dead letters: late, or to an asker that was gone.
    pub replies_taken: Counter<'a>,
}

/// One counter of the mapping (an atomic word in shared memory).
#[derive(Clone, Copy)]
pub(crate) struct Counter<'a>(&'a AtomicU64);

impl std::ops::Deref for Counter<'_> {
    type Target = AtomicU64;

    #[inline]
    fn deref(&self) -> &AtomicU64 {
        self.0
    }
}

/// The words of the mapping: the senders' line (0..8: `accepted`, `shipped`, `undelivered`,
/// `refused`, `typical`), the receiver's line (8..16: `received`, `handled`, `drained_child`,
/// `decode_failed`), the root's line (16..22: `drained_root`, `gone`, `stop_requested`,
/// `incarnation`, `replies_sent`, `replies_taken`). The unused words pad the lines; the
/// mapping itself is page-aligned.
const WORDS: usize = 22;

/// `stop_requested`: the root asked for a clean stop; every message accepted before the stop
/// frame is still handled, even if the process gets SIGINT/SIGTERM meanwhile.
pub(crate) const STOP_ASKED: u64 = 1;
/// `stop_requested`: the stop deadline passed; a signal now ends the actor's loop at once.
pub(crate) const STOP_NOW: u64 = 2;

/// Before a start: the next incarnation's number, and no stop asked of it yet.
pub(crate) fn next_incarnation(counters: &Counters) {
    let b = counters.get();
    Counters::set(&b.stop_requested, 0);
    Counters::add(&b.incarnation, 1);
}

/// Marks the current incarnation asked to stop (unless the deadline already passed) and
/// returns its number, for the stop frame.
pub(crate) fn ask_stop(counters: &Counters) -> u32 {
    let b = counters.get();
    let _ = b
        .stop_requested
        .compare_exchange(0, STOP_ASKED, Ordering::SeqCst, Ordering::SeqCst);
    Counters::load(&b.incarnation) as u32
}

/// A handle on one inbox's shared counters: cheap to clone, serializable (the mapping goes
/// along with an `Addr`).
#[derive(Clone)]
pub(crate) struct Counters(Arc<SharedMap<WORDS>>);

impl Counters {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        // 160 bytes: only a system out of descriptors or memory refuses them, and then
        // nothing else in the runtime would work either.
        let map = SharedMap::zeroed(0).expect("shared memory for an inbox's counters");
        Counters(Arc::new(map))
    }

    fn from_shm(shm: IpcSharedMemory) -> Result<Self, String> {
        Ok(Counters(Arc::new(SharedMap::from_shm(shm)?)))
    }

    /// The counters, as references into the mapping.
    #[inline(always)]
    pub fn get(&self) -> Block<'_> {
        let w = self.0.words();
        Block {
            accepted: Counter(&w[0]),
            shipped: Counter(&w[1]),
            undelivered: Counter(&w[2]),
            refused: Counter(&w[3]),
            typical: Counter(&w[4]),
            received: Counter(&w[8]),
            handled: Counter(&w[9]),
            drained_child: Counter(&w[10]),
            decode_failed: Counter(&w[11]),
            drained_root: Counter(&w[16]),
            gone: Counter(&w[17]),
            stop_requested: Counter(&w[18]),
            incarnation: Counter(&w[19]),
            replies_sent: Counter(&w[20]),
            replies_taken: Counter(&w[21]),
        }
    }

    #[inline]
    pub fn load(field: &Counter<'_>) -> u64 {
        field.load(Ordering::SeqCst)
    }

    #[inline]
    pub fn add(field: &Counter<'_>, n: u64) {
        field.fetch_add(n, Ordering::SeqCst);
    }

    #[inline]
    pub fn sub(field: &Counter<'_>, n: u64) {
        field.fetch_sub(n, Ordering::SeqCst);
    }

    #[inline]
    pub fn set(field: &Counter<'_>, value: u64) {
        field.store(value, Ordering::SeqCst);
    }

    #[inline]
    pub fn is_gone(&self) -> bool {
        Self::load(&self.get().gone) != 0
    }

    /// Messages received by incarnations that crashed but never handed to the actor nor
    /// drained: lost with the process.
    pub fn lost(&self) -> u64 {
        let b = self.get();
        Self::load(&b.received)
            .saturating_sub(Self::load(&b.handled))
            .saturating_sub(Self::load(&b.drained_child))
    }

    /// Messages shipped into the inbox that no process ever took out as messages: those in
    /// frames that failed to decode (the receiver cannot tell how many a bad frame held, the
    /// senders can). Final only once the inbox is drained for good; before that, messages in
    /// flight count here too.
    pub fn unreadable(&self) -> u64 {
        let b = self.get();
        Self::load(&b.shipped)
            .saturating_sub(Self::load(&b.received))
            .saturating_sub(Self::load(&b.drained_root))
    }

    /// Messages a sending process accepted and had neither shipped nor counted undelivered:
    /// those still on their way, and, once every sender has ended, those a sending process
    /// held when it ended (its stop deadline passed with its writer blocked, or it was killed
    /// with messages in its queue). Final only once every sender still alive has flushed (the
    /// summary reads it after the stop). At most the sender's mailbox bounds
    /// (`mailbox_capacity`, `mailbox_bytes`) per killed sender.
    pub fn unsent(&self) -> u64 {
        let b = self.get();
        Self::load(&b.accepted)
            .saturating_sub(Self::load(&b.shipped))
            .saturating_sub(Self::load(&b.undelivered))
    }

    /// Everything accepted but never handed to the actor. Read it once the inbox is drained
    /// for good and its senders have ended (the summary does).
    ///
    /// Each message accepted is in exactly one place: unsent, undelivered, or shipped; each
    /// shipped one received or drained by the root or unreadable; each received one handled,
    /// drained by the actor's process, or lost with it. So `accepted = handled + this`.
    pub fn dead_letters(&self) -> u64 {
        let b = self.get();
        self.unsent()
            + Self::load(&b.undelivered)
            + Self::load(&b.drained_child)
            + Self::load(&b.drained_root)
            + self.lost()
            + self.unreadable()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.shm().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shm = IpcSharedMemory::deserialize(deserializer)?;
        Counters::from_shm(shm).map_err(serde::de::Error::custom)
    }
}
