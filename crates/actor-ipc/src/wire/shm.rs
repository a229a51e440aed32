//! Large messages through shared memory: the regions a writer encodes large messages into,
//! the pool that reuses them, and the receiver's view of one.
//!
//! A message whose encoding passes [`SHM_THRESHOLD`] is not put into its frame: the writer
//! encodes it into a region (an `IpcSharedMemory`, that is an anonymous memfd mapped in both
//! processes) and the frame carries a reference to the region (ipc-channel passes its
//! descriptor with the frame). So every frame stays within one packet of the inbox socket,
//! and nothing on any path reads ipc-channel's fragments (which are read blocking, without a
//! deadline: a sender killed or stopped mid-message used to block its receiver forever).
//!
//! Fresh shared memory is slow (the kernel allocates, zeroes and later frees every page: a new
//! memfd per 1 MiB message runs at ~2 GB/s here, below the plain socket), so a writer keeps its
//! regions and reuses them. A region goes around:
//!
//! 1. **free** in the writer's pool;
//! 2. **filled** by the writer with one message, then shipped in a frame: **in flight**. Its
//!    bytes count against the actor's byte budget ([`ChildOptions::mailbox_bytes`]);
//! 3. **received**: the process that takes the frame out of the socket (the actor, or the root
//!    draining the inbox) sets [`RECEIVED`] in the region's header. The budget is given back;
//! 4. **released**: when that process no longer reads it (the message is decoded, or the last
//!    [`SharedBytes`](crate::SharedBytes) pointing into it is dropped) it sets [`RELEASED`].
//!    Only then may the writer fill it again.
//!
//! The receiving side keeps its mappings too ([`Mappings`], one per actor's inbox): ipc-channel
//! maps every region a frame carries when it receives the frame, and a fresh mapping of 1 MiB
//! costs its page faults (and the unmapping) on every message. Every region has a random id in
//! its header, which its frame entries repeat; an inbox that already maps a region of that id
//! drops ipc-channel's fresh mapping untouched (no page of it was faulted in) and reads the
//! one it has, whose pages are in place. A new incarnation starts with none: every frame still
//! carries the region's descriptor, so it maps the region the first time it sees it. An inbox
//! drops a mapping once its writer has closed the region (the writer sets [`RETIRED`] when it
//! drops one: trimmed when idle, forgotten, or the writer ended), once unused for
//! [`KEPT_IDLE`] (a writer killed never retires its regions), and all of them when the actor
//! stops. While it keeps any, its idle waits end after at most 1 s to look.
//!
//! A receiver killed between 3 and 4 never releases: the writer forgets such a region after
//! [`MAX_HELD`] others (it closes its own descriptor and mapping; the memory goes with the
//! last one, the dead process's). A receiver killed between taking a frame out of the socket
//! and marking it (a few microseconds) never marks it received: when the writer finds the
//! socket empty (`SIOCOUTQ` of its end is 0) every region still unmarked has left the socket,
//! and its bytes are given back too. An idle writer closes every region it keeps
//! ([`ShmPool::trim`]) and marks them retired, so the receiver drops its mappings of them too:
//! no memfd or mapping outlives the traffic that needed it.
//!
//! [`ChildOptions::mailbox_bytes`]: actor_core::ChildOptions::mailbox_bytes

use crate::sys::fd::FrameSocket;
use crate::sys::shared_map::SharedMap;
use ipc_channel::ipc::IpcSharedMemory;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message whose encoding is larger than this travels in shared memory. A frame closes
/// once it holds [`FRAME_BYTES`](crate::FRAME_BYTES) of messages, so the largest frame is
/// 128 KiB plus one message of at most this: within the ~208 KiB that ipc-channel sends as
/// one packet.
pub const SHM_THRESHOLD: usize = 64 * 1024;

/// The region's header, before the message: the state word and the region's id (the first
/// two of 8), on a cache line of their own.
pub(crate) const HEADER: usize = HEADER_WORDS * 8;
const HEADER_WORDS: usize = 8;

/// A region's mapping: the header's words, then the message.
type RegionMap = SharedMap<HEADER_WORDS>;

/// Set in a region's state by the process that took its frame out of the socket.
pub(crate) const RECEIVED: u64 = 1;
/// Set by that process once nothing reads the region any more: the writer may fill it again.
pub(crate) const RELEASED: u64 = 2;
/// Set by the writer when it closes the region for good: a receiver that keeps a mapping of
/// it drops that mapping.
pub(crate) const RETIRED: u64 = 4;

/// The header word that holds the region's id: random, set once by the writer that made it
/// (0: no id could be drawn; such a region is mapped afresh for every message).
const ID_WORD: usize = 1;

/// The most regions one writer has in flight (shipped, not yet received) at once: every one is
/// a descriptor in the socket, and the kernel limits those per user. A writer at this limit
/// waits before it ships another (as it waits on a full socket).
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// Free regions a writer keeps for the next large messages (and at most the byte budget of
/// them): as many as can be in flight, so that a stream of large messages reuses its regions
/// instead of making new ones (a fresh region costs its pages, allocated and zeroed).
const MAX_FREE: usize = MAX_IN_FLIGHT;
/// Received regions a writer keeps waiting for their release (to reuse them); beyond this it
/// forgets the oldest (a receiver that keeps `SharedBytes`, or one that was killed).
const MAX_HELD: usize = 2 * MAX_IN_FLIGHT;

/// The smallest region made: a fresh one is zero-filled (its pages are allocated once).
const MIN_REGION: usize = 4 * SHM_THRESHOLD;

/// One region on the sending side: our mapping of it (with its descriptor).
pub(crate) struct Region(RegionMap);

impl Region {
    /// A fresh zero-filled region with room for a message of `capacity` bytes. ipc-channel
    /// asserts on a failed memfd_create/ftruncate/mmap (no descriptors left, no memory):
    /// that is an error for this message, not the end of the writer.
    fn new(capacity: usize) -> Result<Region, String> {
        let map = RegionMap::zeroed(capacity)?;
        // Random, so that no two regions a receiver may see share one (a counter would repeat
        // in the next process with the same pid); without one, the receiver keeps no mapping.
        let id = crate::sys::random::random_u64().unwrap_or(0);
        map.words()[ID_WORD].store(id, Ordering::SeqCst);
        Ok(Region(map))
    }

    /// The region's id (see the module doc), which its frame entries carry.
    pub fn id(&self) -> u64 {
        self.0.words()[ID_WORD].load(Ordering::Relaxed)
    }

    /// Room for a message.
    pub fn capacity(&self) -> usize {
        self.0.body().len()
    }

    fn state(&self) -> &AtomicU64 {
        &self.0.words()[0]
    }

    /// The message area, to fill: the region is ours until it is shipped, and again once
    /// the receiver released it.
    pub fn body_mut(&mut self) -> &mut [u8] {
        self.0.body_mut()
    }

    /// The handle that goes into the frame (encoding it hands a copy of the descriptor to
    /// ipc-channel for the frame's send).
    pub fn shm(&self) -> &IpcSharedMemory {
        self.0.shm()
    }

    /// Marks it as about to be shipped (neither received nor released).
    fn arm(&self) {
        self.state().store(0, Ordering::SeqCst);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Closed for good (trimmed, forgotten, or the writer is gone): a receiver that keeps a
        // mapping of it lets it go, so the memory goes with the last one.
        self.state().fetch_or(RETIRED, Ordering::SeqCst);
    }
}

/// A region shipped in a frame, with the bytes it charges to the budget.
struct InFlight {
    region: Region,
    bytes: u64,
}

/// A writer's regions and the byte budget of its destination. Shared between the writer
/// (which fills and ships) and the senders of this process (which look at the budget, and
/// give back what was received when they find it full).
pub(crate) struct ShmPool {
    inner: Mutex<PoolInner>,
    /// Bytes of shipped regions not yet received.
    in_flight_bytes: AtomicU64,
    /// How many regions are shipped and not yet received.
    in_flight: AtomicU64,
    /// The largest recent message to this destination, encoded (it decays by 1/8 per
    /// smaller message): what a message still in the queue is charged.
    typical: AtomicU64,
    /// Messages the writer took out of its queue and has not encoded yet (its batch).
    unencoded: AtomicU64,
    /// The byte budget (`ChildOptions::mailbox_bytes`).
    limit: u64,
    /// The inbox socket (our end), for `SIOCOUTQ`.
    sock: Option<FrameSocket>,
}

#[derive(Default)]
struct PoolInner {
    free: Vec<Region>,
    in_flight: Vec<InFlight>,
    held: VecDeque<Region>,
    /// The size class of the last large message: the first region taken for the next one.
    hint: usize,
}

impl ShmPool {
    pub fn new(limit: u64, sock: Option<FrameSocket>) -> Self {
        ShmPool {
            inner: Mutex::new(PoolInner::default()),
            in_flight_bytes: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            typical: AtomicU64::new(0),
            unencoded: AtomicU64::new(0),
            limit: limit.max(1),
            sock,
        }
    }

    /// A region with room for at least `need` bytes (at least the last large message's size):
    /// a free one if one fits, else a new one.
    pub fn take(&self, need: usize) -> Result<Region, String> {
        let mut inner = self.inner.lock();
        let need = need.max(inner.hint).max(MIN_REGION);
        inner.collect(self);
        // The smallest that fits; of those, the one freed last (`rev`: `min_by_key` keeps the
        // first of equals), whose pages are likeliest still in the caches.
        let best = inner
            .free
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, r)| r.capacity() >= need)
            .min_by_key(|(_, r)| r.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            return Ok(inner.free.remove(i));
        }
        drop(inner);
        Region::new(size_class(need))
    }

    /// A region that was taken but not shipped (the message grew out of it, or was refused).
    pub fn give_back(&self, region: Region) {
        self.inner.lock().keep_free(region, self.limit);
    }

    /// Remembers the size of a large message, for the first region of the next one.
    pub fn note_large(&self, len: usize) {
        self.inner.lock().hint = size_class(len);
    }

    /// Regions shipped in a frame, each with the size of its message: charged until received.
    pub fn shipped(&self, regions: Vec<(Region, usize)>) {
        if regions.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        for (region, len) in regions {
            self.in_flight_bytes.fetch_add(len as u64, Ordering::SeqCst);
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            inner.in_flight.push(InFlight {
                region,
                bytes: len as u64,
            });
        }
    }

    /// Prepares a region to be shipped.
    pub fn arm(&self, region: &Region) {
        region.arm();
    }

    /// How many regions are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst) as usize
    }

    /// Gives back the budget of every region received since the last look, and keeps the
    /// released ones for reuse.
    pub fn reclaim(&self) {
        self.inner.lock().collect(self);
    }

    /// True while the pool keeps any region (free, in flight or held by a receiver): then an
    /// idle writer looks again after a while to close what is no longer needed.
    pub fn holds_any(&self) -> bool {
        let inner = self.inner.lock();
        !inner.free.is_empty() || !inner.in_flight.is_empty() || !inner.held.is_empty()
    }

    /// Closes every region not in flight: the writer is idle.
    pub fn trim(&self) {
        let mut inner = self.inner.lock();
        inner.collect(self);
        inner.free.clear();
        // A region a receiver still holds (a `SharedBytes` it keeps, or one killed holding
        // it) stays alive through the receiver's own mapping, and goes with it.
        inner.held.clear();
    }

    /// Closes everything: the receiver is gone (its socket too, so nothing is in flight).
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        let bytes: u64 = inner.in_flight.iter().map(|f| f.bytes).sum();
        let n = inner.in_flight.len() as u64;
        inner.in_flight.clear();
        inner.free.clear();
        inner.held.clear();
        self.in_flight_bytes.fetch_sub(bytes, Ordering::SeqCst);
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
    }

    /// Publishes the size of the largest recent message (see `typical`).
    pub fn set_typical(&self, bytes: u64) {
        self.typical.store(bytes, Ordering::Relaxed);
    }

    /// Publishes how many messages the writer holds unencoded (see `unencoded`).
    pub fn set_unencoded(&self, n: u64) {
        // Not stored when unchanged: the store would take the line from the senders' CPUs.
        if self.unencoded.load(Ordering::Relaxed) != n {
            self.unencoded.store(n, Ordering::Relaxed);
        }
    }

    /// How many messages the writer holds unencoded.
    pub fn unencoded(&self) -> u64 {
        self.unencoded.load(Ordering::Relaxed)
    }

    /// The current `typical`.
    pub fn typical(&self) -> u64 {
        self.typical.load(Ordering::Relaxed)
    }

    /// Whether one more message, charged `each` bytes, fits the budget with `queued` messages
    /// accepted and not yet shipped (each charged `each` too) and the regions in flight.
    /// A message always fits when nothing is queued or in flight, so that one larger than the
    /// whole budget still goes (alone).
    pub fn admits(&self, queued: impl FnOnce() -> usize, capacity: usize, each: u64) -> bool {
        let flying = self.in_flight_bytes.load(Ordering::SeqCst);
        // The usual case, small messages: the queue's capacity bounds the bytes already.
        if flying == 0 && each.saturating_mul(capacity as u64 + 1) <= self.limit {
            return true;
        }
        let queued = queued();
        if queued == 0 && flying == 0 {
            return true;
        }
        let want = flying.saturating_add(each.saturating_mul(queued as u64 + 1));
        if want <= self.limit {
            return true;
        }
        if flying > 0 {
            // Perhaps some were received since the writer last looked.
            self.reclaim();
            let flying = self.in_flight_bytes.load(Ordering::SeqCst);
            return (queued == 0 && flying == 0)
                || flying.saturating_add(each.saturating_mul(queued as u64 + 1)) <= self.limit;
        }
        false
    }

    /// Bytes shipped in regions and not yet received (for tests and the docs' examples).
    #[cfg(test)]
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes.load(Ordering::SeqCst)
    }

    /// True when nothing this process sent is left in the inbox socket.
    fn socket_drained(&self) -> bool {
        self.sock.as_ref().and_then(FrameSocket::unread_bytes) == Some(0)
    }
}

impl PoolInner {
    /// Keeps `region` for reuse, within [`MAX_FREE`] regions and `max_bytes` of them (but two
    /// in any case); the smallest go first (they are the cheapest to make again).
    fn keep_free(&mut self, region: Region, max_bytes: u64) {
        let size = region.capacity() as u64;
        loop {
            let total: u64 = self.free.iter().map(|r| r.capacity() as u64).sum();
            // Two regions are kept whatever their size: a stream of messages larger than the
            // budget (each goes alone) still reuses its regions.
            if self.free.len() < 2 || (self.free.len() < MAX_FREE && total + size <= max_bytes) {
                self.free.push(region);
                return;
            }
            let Some((i, smallest)) = self
                .free
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.capacity() as u64))
                .min_by_key(|(_, c)| *c)
            else {
                return;
            };
            if smallest >= size {
                return;
            }
            self.free.swap_remove(i);
        }
    }

    fn collect(&mut self, pool: &ShmPool) {
        if !self.in_flight.is_empty() {
            let drained = pool.socket_drained();
            let mut i = 0;
            while i < self.in_flight.len() {
                let state = self.in_flight[i].region.state().load(Ordering::SeqCst);
                if state & RECEIVED != 0 || drained {
                    let f = self.in_flight.swap_remove(i);
                    pool.in_flight_bytes.fetch_sub(f.bytes, Ordering::SeqCst);
                    pool.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.held.push_back(f.region);
                } else {
                    i += 1;
                }
            }
        }
        let mut kept = VecDeque::with_capacity(self.held.len());
        while let Some(region) = self.held.pop_front() {
            if region.state().load(Ordering::SeqCst) & RELEASED != 0 {
                self.keep_free(region, pool.limit);
            } else {
                kept.push_back(region);
            }
        }
        while kept.len() > MAX_HELD {
            kept.pop_front();
        }
        self.held = kept;
    }
}

/// The capacity of a region for a message of `len` bytes: rounded up to a sixteenth of the
/// next power of two, so that a stream of messages of one size reuses its regions while a
/// region wastes at most an eighth.
fn size_class(len: usize) -> usize {
    let len = len.max(MIN_REGION);
    let step = (len.next_power_of_two() / 16).max(4096);
    len.div_ceil(step) * step
}

// ---------------------------------------------------------------------------------------
// The receiving side.
// ---------------------------------------------------------------------------------------

/// A received region while anything reads it: released (for the writer to reuse) when the
/// last handle goes. The mapping itself may outlive it (kept by the inbox's [`Mappings`]).
pub(crate) struct Held(Arc<RegionMap>);

impl Held {
    /// The message area.
    pub fn bytes(&self) -> &[u8] {
        self.0.body()
    }

    fn state(&self) -> &AtomicU64 {
        &self.0.words()[0]
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // After every read of it: the writer may overwrite it from now on.
        self.state().fetch_or(RELEASED, Ordering::SeqCst);
    }
}

/// How long an inbox keeps the mapping of a region that no message used.
pub(crate) const KEPT_IDLE: Duration = Duration::from_secs(2);

/// The most mappings an inbox keeps (a writer keeps at most 32 regions: free, in flight and
/// held; several sending processes each have their own).
const MAX_KEPT: usize = 64;

/// The regions an inbox keeps mapped between messages (see the module doc), by id.
#[derive(Default)]
pub(crate) struct Mappings {
    kept: Vec<Kept>,
}

struct Kept {
    id: u64,
    map: Arc<RegionMap>,
    used: Instant,
}

thread_local! {
    /// The mappings of the inbox receiving on this thread, while it receives (see
    /// [`Mappings::during`]).
    static KEPT: RefCell<Option<Mappings>> = const { RefCell::new(None) };
}

impl Mappings {
    /// Runs `f` (a receive from the inbox) with these as the mappings that the regions of the
    /// frames it decodes are looked up in and added to. Outside of it, every region is
    /// mapped for its message only (the root draining an inbox, tests).
    pub fn during<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Back<'a>(&'a mut Mappings);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Some(kept) = KEPT.with(|k| k.borrow_mut().take()) {
                    *self.0 = kept;
                }
            }
        }
        let mine = std::mem::take(self);
        KEPT.with(|k| *k.borrow_mut() = Some(mine));
        let _back = Back(self);
        f()
    }

    /// True when it keeps no mapping.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// How many mappings it keeps.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Drops the mappings of regions their writer closed, and those unused for [`KEPT_IDLE`].
    pub fn sweep(&mut self) {
        let now = Instant::now();
        self.kept.retain(|k| {
            k.map.words()[0].load(Ordering::SeqCst) & RETIRED == 0
                && now.saturating_duration_since(k.used) < KEPT_IDLE
        });
    }

    /// Drops every mapping (the actor stops: nothing more is received).
    pub fn clear(&mut self) {
        self.kept.clear();
    }

    /// The mapping of a received region: the one kept for its id if there is one (the fresh
    /// `shm` is then dropped before any page of it was touched), else `shm`'s, kept for next
    /// time.
    fn map(&mut self, shm: IpcSharedMemory, id: u64) -> Result<Arc<RegionMap>, String> {
        if id != 0 {
            if let Some(k) = self.kept.iter_mut().find(|k| {
                k.id == id
                    && k.map.body().len() + HEADER == shm.len()
                    && k.map.words()[ID_WORD].load(Ordering::Relaxed) == id
            }) {
                k.used = Instant::now();
                return Ok(k.map.clone());
            }
        }
        let map = Arc::new(RegionMap::from_shm(shm)?);
        if id != 0 && map.words()[ID_WORD].load(Ordering::Relaxed) == id {
            if self.kept.len() >= MAX_KEPT {
                if let Some(oldest) = (0..self.kept.len()).min_by_key(|i| self.kept[*i].used) {
                    self.kept.swap_remove(oldest);
                }
            }
            self.kept.push(Kept {
                id,
                map: map.clone(),
                used: Instant::now(),
            });
        }
        Ok(map)
    }
}

/// The mapping of a received region: through the receiving inbox's [`Mappings`] when one is
/// receiving on this thread, else a mapping of its own.
fn map_received(shm: IpcSharedMemory, id: u64) -> Result<Arc<RegionMap>, String> {
    KEPT.with(|k| match k.borrow_mut().as_mut() {
        Some(kept) => kept.map(shm, id),
        None => RegionMap::from_shm(shm).map(Arc::new),
    })
}

thread_local! {
    /// The region a message is being decoded from, so that a `SharedBytes` in it can point
    /// into the region instead of copying.
    static DECODING: RefCell<Option<Arc<Held>>> = const { RefCell::new(None) };
}

/// The region being decoded on this thread, if `bytes` lies inside it: a handle on it and the
/// offset of `bytes` in its message area.
pub(crate) fn region_of(bytes: &[u8]) -> Option<(Arc<Held>, usize)> {
    DECODING.with(|d| {
        let d = d.borrow();
        let held = d.as_ref()?;
        let area = held.bytes();
        let start = (bytes.as_ptr() as usize).checked_sub(area.as_ptr() as usize)?;
        (start + bytes.len() <= area.len()).then(|| (held.clone(), start))
    })
}

/// Decodes a message of `len` bytes from a received region (whose id its entry named): marks
/// it received, decodes it with the region as the place `SharedBytes` may point into, and
/// releases it when nothing points into it any more.
pub(crate) fn decode_region<M: serde::de::DeserializeOwned>(
    shm: IpcSharedMemory,
    len: usize,
    id: u64,
) -> Result<M, String> {
    if shm.len() < HEADER || shm.len() - HEADER < len {
        return Err(format!(
            "a shared-memory reference of {len} bytes to a region of {} bytes",
            shm.len()
        ));
    }
    let held = Arc::new(Held(map_received(shm, id)?));
    held.state().fetch_or(RECEIVED, Ordering::SeqCst);
    struct Reset(Option<Arc<Held>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            DECODING.with(|d| *d.borrow_mut() = self.0.take());
        }
    }
    let previous = DECODING.with(|d| d.borrow_mut().replace(held.clone()));
    let _reset = Reset(previous);
    postcard::from_bytes::<M>(&held.bytes()[..len]).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_an_eighth() {
        for len in [
            1usize,
            70_000,
            1 << 20,
            (1 << 20) + 67,
            64 << 20,
            (64 << 20) + 9,
        ] {
            let c = size_class(len);
            assert!(c >= len.max(MIN_REGION), "{len} -> {c}");
            assert!(
                c - len.max(MIN_REGION) <= len.max(MIN_REGION) / 8 + 4096,
                "{len} -> {c}"
            );
        }
    }

    #[test]
    fn a_region_is_reused_only_once_released() {
        let _one = crate::shm_tests::ONE_AT_A_TIME.lock();
        let pool = ShmPool::new(u64::MAX, None);
        let region = pool.take(1000).expect("a region");
        let cap = region.capacity();
        let ptr = region.0.body().as_ptr();
        pool.arm(&region);
        // "Ship" it: the receiver side is a second handle on the same memfd.
        let theirs = region.shm().clone();
        pool.shipped(vec![(region, 1000)]);
        assert_eq!(pool.in_flight_bytes(), 1000);
        let got: Result<Vec<u8>, String> = decode_region(theirs.clone(), 1, 0);
        assert!(got.is_ok(), "{got:?}");
        pool.reclaim();
        assert_eq!(pool.in_flight_bytes(), 0, "received: the budget is back");
        // Released (the decode above is over): the next take reuses it.
        let again = pool.take(cap).expect("a region");
        assert_eq!(again.0.body().as_ptr(), ptr, "the same mapping, reused");
    }

    #[test]
    fn an_unreleased_region_is_not_reused() {
        let _one = crate::shm_tests::ONE_AT_A_TIME.lock();
        let pool = ShmPool::new(u64::MAX, None);
        let region = pool.take(1000).expect("a region");
        let ptr = region.0.body().as_ptr();
        // The receiver marks it received but still holds it.
        region.state().store(RECEIVED, Ordering::SeqCst);
        pool.shipped(vec![(region, 1000)]);
        pool.reclaim();
        assert_eq!(pool.in_flight_bytes(), 0);
        let other = pool.take(1000).expect("a region");
        assert_ne!(other.0.body().as_ptr(), ptr);
    }

    #[test]
    fn the_budget_admits_one_large_message_alone() {
        let pool = ShmPool::new(100, None);
        assert!(pool.admits(|| 0, 10, 1000), "alone, even over the budget");
        assert!(!pool.admits(|| 1, 10, 1000), "not with one queued");
        assert!(pool.admits(|| 5, 10, 10), "small ones fit");
        assert!(!pool.admits(|| 10, 20, 10));
    }
}
