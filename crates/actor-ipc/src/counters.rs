//! Per-inbox counters in memory shared by every process that holds the inbox's address.
//!
//! Senders in any process count what they accepted and shipped, the actor's process counts
//! what it received and handled, and the root reads them all, even after the actor's process
//! was killed: so the summary reconciles (`accepted = handled + dead letters`) across
//! processes and crashes.

use ipc_channel::ipc::IpcSharedMemory;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The counters of one inbox. Every field only grows, except `gone` and `stop_requested`.
///
/// Grouped by who writes them, one cache line per group: a flooding sender bumps
/// `accepted` for every message while the actor's process bumps `handled` for every
/// message, and sharing one line made the two processes fight over it (false sharing),
/// while every send also reads `gone`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct Block {
    /// Messages a sender accepted (`try_send`/`send` returned Ok).
    pub accepted: AtomicU64,
    /// Messages written into the inbox's socket by a sender's writer.
    pub shipped: AtomicU64,
    /// Messages a sender accepted but could not deliver (the actor gone, or the sender's
    /// process stopping past its deadline).
    pub undelivered: AtomicU64,
    /// Of the undelivered, messages a sender refused to ship: over the actor's size limit,
    /// failing to encode, or carrying more channels than one send can.
    pub refused: AtomicU64,
    _senders: CacheLinePad<4>,
    /// Messages the actor's process took out of the socket.
    pub received: AtomicU64,
    /// Messages handed to the actor's code.
    pub handled: AtomicU64,
    /// Messages the actor's process received but drained without handling when it stopped.
    pub drained_child: AtomicU64,
    /// Messages that failed to decode (a frame that fails as a whole counts as one).
    pub decode_failed: AtomicU64,
    _receiver: CacheLinePad<4>,
    /// Messages the root drained from the socket after the actor's last process ended.
    pub drained_root: AtomicU64,
    /// 1 once the actor is gone for good: sends fail at once.
    pub gone: AtomicU64,
    /// 1 while the root asks the current incarnation to stop.
    pub stop_requested: AtomicU64,
}

/// `N` unused words that fill a 64-byte line after `8 - N` counters.
#[repr(C)]
struct CacheLinePad<const N: usize>([u64; N]);

impl<const N: usize> Default for CacheLinePad<N> {
    fn default() -> Self {
        CacheLinePad([0; N])
    }
}

// The groups start on line boundaries (the mapping itself is page-aligned).
const _: () = assert!(std::mem::offset_of!(Block, received) == 64);
const _: () = assert!(std::mem::offset_of!(Block, drained_root) == 128);

struct Mapping {
    // Keeps the mapping alive; `block` points into it.
    _shm: IpcSharedMemory,
    block: NonNull<Block>,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// A handle on one inbox's shared counters: cheap to clone, serializable (the mapping goes
/// along with an `Addr`).
#[derive(Clone)]
pub(crate) struct Counters(Arc<Mapping>);

impl Counters {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        let shm = IpcSharedMemory::from_byte(0, std::mem::size_of::<Block>());
        Self::from_shm(shm).expect("a fresh mapping has the size of a Block")
    }

    fn from_shm(mut shm: IpcSharedMemory) -> Result<Self, String> {
        if shm.len() < std::mem::size_of::<Block>() {
            return Err(format!(
                "counter mapping of {} bytes, expected {}",
                shm.len(),
                std::mem::size_of::<Block>()
            ));
        }
        // SAFETY: the mapping is MAP_SHARED and page-aligned; it is only ever touched through
        // the atomics of `Block`, in every process, so no `&mut` aliasing is observed.
        let ptr = unsafe { shm.deref_mut() }.as_mut_ptr() as *mut Block;
        let block = NonNull::new(ptr).ok_or("null counter mapping")?;
        Ok(Counters(Arc::new(Mapping { _shm: shm, block })))
    }

    pub fn get(&self) -> &Block {
        // SAFETY: the pointer stays valid while the mapping lives, which `self` ensures.
        unsafe { self.0.block.as_ref() }
    }

    pub fn load(field: &AtomicU64) -> u64 {
        field.load(Ordering::SeqCst)
    }

    pub fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::SeqCst);
    }

    pub fn set(field: &AtomicU64, value: u64) {
        field.store(value, Ordering::SeqCst);
    }

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

    /// Messages a sending process accepted and had neither shipped nor counted undelivered
    /// when it ended: lost with a sender that was killed (SIGKILL) with messages in its queue.
    /// Final only once every sender still alive has flushed (the summary reads it after the
    /// stop); before that, messages still queued in live senders count here too. At most
    /// the sender's mailbox bounds (`mailbox_capacity`, `mailbox_bytes`) per killed sender.
    pub fn lost_in_senders(&self) -> u64 {
        let b = self.get();
        Self::load(&b.accepted)
            .saturating_sub(Self::load(&b.shipped))
            .saturating_sub(Self::load(&b.undelivered))
    }

    /// Everything accepted but never handed to the actor. Read it once the inbox is drained
    /// for good (the summary does).
    pub fn dead_letters(&self) -> u64 {
        let b = self.get();
        Self::load(&b.undelivered)
            + Self::load(&b.drained_child)
            + Self::load(&b.drained_root)
            + self.lost()
            + self.unreadable()
            + self.lost_in_senders()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0._shm.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shm = IpcSharedMemory::deserialize(deserializer)?;
        Counters::from_shm(shm).map_err(serde::de::Error::custom)
    }
}
