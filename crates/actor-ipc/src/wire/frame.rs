//! What travels through an inbox's socket: frames of messages, each message encoded on its own.
//!
//! A frame is [`Frame::Batch`] or [`Frame::Stop`], encoded by postcard as ipc-channel does
//! for any value. A batch's payload is a byte string of entries, `[u32 LE length][the
//! postcard encoding of one message]`, one after another. Encoding each message by itself
//! (one extra copy into the frame) buys three things:
//!
//! * its size is known exactly before anything is shipped: a message over the receiver's
//!   limit is refused on its own, with an error that names it, and the rest go;
//! * a message that fails to decode costs only itself: the receiver counts it and hands out
//!   the others of its frame (a whole frame used to be lost);
//! * frames close at a byte size ([`FRAME_BYTES`]), not at a guessed count.
//!
//! Channels and shared memory inside messages still travel the way ipc-channel carries them:
//! encoding one pushes it on ipc-channel's per-thread list, and the `send` of the frame takes
//! that list along. So messages are encoded on the writer's thread right before the frame's
//! `send`, and every message whose channels are on the list is in that frame.

use crate::wire::shm::{Region, ShmPool, SHM_THRESHOLD};
use ipc_channel::ipc::IpcSharedMemory;
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A frame closes once its encoded messages reach this size (the message that crosses it
/// is the last one in). A frame is thus at most this plus one message: small messages share
/// frames of up to [`MAX_BATCH`](crate::MAX_BATCH), large ones go one by one instead of as
/// frames of tens of MiB (which were slower: fresh pages to fault in, and all of it held
/// twice in both processes). 128 KiB plus a message of up to ~80 KiB still fits one packet
/// of the socket (ipc-channel splits a send over ~208 KiB into fragments over a channel it
/// makes for that send).
pub const FRAME_BYTES: usize = 128 * 1024;

/// The most memory a writer keeps for its next frame: after a larger message, its buffer
/// shrinks back to this.
const KEEP_BYTES: usize = 4 << 20;

/// The size of an entry's length prefix.
const LEN_BYTES: usize = 4;

/// Set in an entry's length prefix when the entry is not the message but a reference to the
/// shared-memory region that holds it ([`crate::wire::shm`]): `[u32 LE length of the
/// message][u64 LE the region's id]` then the region (its index among the frame's regions,
/// as ipc-channel encodes it). The id lets a receiver that keeps a mapping of the region
/// use that one. Inline
/// entries are never that long: larger messages always go to a region.
const SHM_ENTRY: u32 = 1 << 31;

/// What travels through an inbox's socket, as the receiving side reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "M: Serialize", deserialize = "M: DeserializeOwned"))]
pub(crate) enum Frame<M> {
    /// Messages, in the order they were accepted by one sending process.
    Batch(Batch<M>),
    /// The stop request for one incarnation (its number): everything this sender accepted
    /// before it is ahead of it.
    Stop(u32),
}

/// The messages of one received frame, and those of its entries that did not decode.
#[derive(Debug)]
pub(crate) struct Batch<M> {
    /// The messages that decoded, in order.
    pub msgs: Vec<M>,
    /// Entries that did not decode (or a truncated tail, counted as one).
    pub failed: u64,
    /// Why the first of those failed.
    pub first_error: Option<String>,
}

impl<M> From<Vec<M>> for Batch<M> {
    fn from(msgs: Vec<M>) -> Self {
        Self {
            msgs,
            failed: 0,
            first_error: None,
        }
    }
}

/// Encodes the messages as a sender would (with no size limit). The runtime's writers build
/// frames with [`FrameBuf`]; this is for tests and for ipc-channel's `Serialize` bound on a
/// sender's type.
impl<M: Serialize> Serialize for Batch<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = FrameBuf::default();
        for m in &self.msgs {
            buf.push(m, usize::MAX).map_err(serde::ser::Error::custom)?;
        }
        serializer.serialize_bytes(buf.bytes())
    }
}

impl<'de, M: DeserializeOwned> Deserialize<'de> for Batch<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BatchVisitor(PhantomData))
    }
}

struct BatchVisitor<M>(PhantomData<M>);

impl<M: DeserializeOwned> Visitor<'_> for BatchVisitor<M> {
    type Value = Batch<M>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the bytes of a batch of messages")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Batch<M>, E> {
        Ok(decode_entries(bytes))
    }
}

/// Decodes every entry of a batch. This runs inside ipc-channel's decoding of the frame, so
/// the channels the frame carried are there for the messages that hold some. Each entry is
/// decoded on its own, with its panics contained: ipc-channel reads a channel's index without
/// a bounds check, so a malformed entry could panic.
fn decode_entries<M: DeserializeOwned>(mut rest: &[u8]) -> Batch<M> {
    let mut batch = Batch::from(Vec::new());
    let fail = |batch: &mut Batch<M>, why: String| {
        batch.failed += 1;
        batch.first_error.get_or_insert(why);
    };
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<LEN_BYTES>() else {
            fail(
                &mut batch,
                format!("a truncated entry ({} bytes)", rest.len()),
            );
            break;
        };
        let raw = u32::from_le_bytes(*len);
        let len = (raw & !SHM_ENTRY) as usize;
        if len > tail.len() {
            // Where the next entry starts is unknown: the rest of the frame is lost (the
            // senders' counts say how many messages that was).
            fail(
                &mut batch,
                format!("an entry claims {len} bytes, {} are left", tail.len()),
            );
            break;
        }
        let (entry, tail) = tail.split_at(len);
        if raw & SHM_ENTRY != 0 {
            rest = tail;
            match catch_unwind(AssertUnwindSafe(|| decode_shm_entry::<M>(entry))) {
                Ok(Ok(msg)) => batch.msgs.push(msg),
                Ok(Err(e)) => fail(&mut batch, e),
                Err(payload) => fail(&mut batch, actor_core::lifecycle::panic_message(&*payload)),
            }
            continue;
        }
        if batch.msgs.capacity() == 0 {
            // Room for as many more entries of this size as the frame holds.
            batch.msgs.reserve(1 + tail.len() / (LEN_BYTES + len));
        }
        rest = tail;
        match catch_unwind(AssertUnwindSafe(|| postcard::from_bytes::<M>(entry))) {
            Ok(Ok(msg)) => batch.msgs.push(msg),
            // postcard's errors name no type ("Serde Deserialization Error"): the log line
            // says which type the bytes did not make, and how many there were.
            Ok(Err(e)) => fail(
                &mut batch,
                format!(
                    "{len} bytes that are not a `{}`: {e}",
                    std::any::type_name::<M>()
                ),
            ),
            Err(payload) => fail(&mut batch, actor_core::lifecycle::panic_message(&*payload)),
        }
    }
    batch
}

/// A reference entry: the message's length, its region's id, and the region (taken from the
/// frame's regions, which ipc-channel has mapped by now).
fn decode_shm_entry<M: DeserializeOwned>(entry: &[u8]) -> Result<M, String> {
    let truncated = || {
        format!(
            "a truncated shared-memory reference ({} bytes)",
            entry.len()
        )
    };
    let (len, rest) = entry.split_first_chunk::<4>().ok_or_else(truncated)?;
    let (id, region) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
    let len = u32::from_le_bytes(*len) as usize;
    let shm = postcard::from_bytes::<IpcSharedMemory>(region)
        .map_err(|e| format!("a shared-memory reference without its region: {e}"))?;
    crate::wire::shm::decode_region(shm, len, u64::from_le_bytes(*id))
}

/// Why a message was not put into a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its encoding is larger than the limit (it was encoded no further than that).
    TooLarge {
        /// The receiver's limit, in bytes.
        limit: usize,
    },
    /// Its `Serialize` failed.
    Encode(String),
    /// It needed shared memory (it is larger than [`SHM_THRESHOLD`]) and none could be had.
    NoSharedMemory(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLarge { limit } => write!(
                f,
                "its encoding is larger than the actor's limit of {limit} bytes \
                 (ChildOptions::max_message_bytes)"
            ),
            Refused::Encode(e) => write!(f, "it failed to encode: {e}"),
            Refused::NoSharedMemory(e) => write!(f, "{e}"),
        }
    }
}

/// The entries of a frame being built, in a buffer that is reused from frame to frame.
#[derive(Default)]
pub(crate) struct FrameBuf {
    bytes: Vec<u8>,
    count: usize,
    /// The regions of the messages that went to shared memory, with their lengths.
    regions: Vec<(Region, usize)>,
    /// Bytes of the messages in regions (the frame closes on these plus its own bytes).
    in_regions: usize,
}

/// Why an encoding that failed was refused: no shared memory for it, over the limit (the
/// output is full only when the limit is reached), or its `Serialize` failed.
fn refusal(e: postcard::Error, no_shared_memory: Option<String>, limit: usize) -> Refused {
    if let Some(why) = no_shared_memory {
        Refused::NoSharedMemory(why)
    } else if e == postcard::Error::SerializeBufferFull {
        Refused::TooLarge { limit }
    } else {
        Refused::Encode(e.to_string())
    }
}

/// A message whose `Serialize` panicked is the message's fault, not the writer's: refused
/// like one that fails, with the panic's text.
fn panicked(payload: &(dyn std::any::Any + Send)) -> Refused {
    Refused::Encode(format!(
        "its Serialize panicked: {}",
        actor_core::lifecycle::panic_message(payload)
    ))
}

impl FrameBuf {
    /// Encodes `msg` as the next entry. A message whose encoding would exceed `limit` bytes
    /// is refused as soon as its encoding passes the limit (a huge message is not encoded in
    /// full only to be thrown away), and leaves the buffer as it was. Returns the entry's
    /// size.
    pub fn push<M: Serialize>(&mut self, msg: &M, limit: usize) -> Result<usize, Refused> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&[0; LEN_BYTES]);
        let body = start + LEN_BYTES;
        // An entry's length must fit its prefix, whatever the limit.
        let limit = limit.min(u32::MAX as usize);
        let flavor = Capped {
            out: &mut self.bytes,
            end: body.saturating_add(limit),
        };
        // A `Serialize` that panics is the message's fault, not the writer's: it is refused
        // like one that fails, and the writer goes on with the next.
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            postcard::serialize_with_flavor::<M, _, ()>(msg, flavor)
        }));
        match encoded {
            Ok(Ok(())) => {
                let len = self.bytes.len() - body;
                self.bytes[start..body].copy_from_slice(&(len as u32).to_le_bytes());
                self.count += 1;
                Ok(len)
            }
            // Only the output can be full: it is full when the limit is reached.
            Ok(Err(e)) => Err(self.undo(start, refusal(e, None, limit))),
            Err(payload) => Err(self.undo(start, panicked(&*payload))),
        }
    }

    /// Takes a refused entry (from `start` on) back out of the frame; returns why.
    fn undo(&mut self, start: usize, why: Refused) -> Refused {
        self.bytes.truncate(start);
        why
    }

    /// Encodes `msg` as the next entry; if its encoding passes [`SHM_THRESHOLD`], into a
    /// region of `pool` instead, with a reference to it as the entry. Otherwise as
    /// [`push`](Self::push). Returns the message's encoded size.
    pub fn push_large<M: Serialize>(
        &mut self,
        msg: &M,
        limit: usize,
        pool: &ShmPool,
    ) -> Result<usize, Refused> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&[0; LEN_BYTES]);
        let body = start + LEN_BYTES;
        let limit = limit.min(u32::MAX as usize);
        let failed = std::cell::RefCell::new(None);
        let flavor = Spill {
            out: &mut self.bytes,
            body,
            inline_end: body.saturating_add(limit.min(SHM_THRESHOLD)),
            limit,
            region: None,
            pool,
            failed: &failed,
        };
        let encoded = catch_unwind(AssertUnwindSafe(|| {
            postcard::serialize_with_flavor::<M, _, Option<(Region, usize)>>(msg, flavor)
        }));
        match encoded {
            Ok(Ok(None)) => {
                let len = self.bytes.len() - body;
                self.bytes[start..body].copy_from_slice(&(len as u32).to_le_bytes());
                self.count += 1;
                Ok(len)
            }
            Ok(Ok(Some((region, len)))) => {
                self.bytes.truncate(body);
                self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
                self.bytes.extend_from_slice(&region.id().to_le_bytes());
                // Encoding the handle gives ipc-channel a copy of its descriptor for the
                // frame's send.
                let r = postcard::serialize_with_flavor::<IpcSharedMemory, _, ()>(
                    region.shm(),
                    Capped {
                        out: &mut self.bytes,
                        end: usize::MAX,
                    },
                );
                if let Err(e) = r {
                    self.bytes.truncate(start);
                    pool.give_back(region);
                    return Err(Refused::Encode(e.to_string()));
                }
                let entry = (self.bytes.len() - body) as u32 | SHM_ENTRY;
                self.bytes[start..body].copy_from_slice(&entry.to_le_bytes());
                pool.arm(&region);
                pool.note_large(len);
                self.regions.push((region, len));
                self.in_regions += len;
                self.count += 1;
                Ok(len)
            }
            Ok(Err(e)) => Err(self.undo(start, refusal(e, failed.into_inner(), limit))),
            Err(payload) => Err(self.undo(start, panicked(&*payload))),
        }
    }

    /// Appends a message that is already encoded (its postcard bytes) as the next entry,
    /// with the checks of [`push_large`](Self::push_large): refused if longer than `limit`,
    /// into a region of `pool` if it passes [`SHM_THRESHOLD`]. Returns its size.
    pub fn push_encoded(
        &mut self,
        bytes: &[u8],
        limit: usize,
        pool: &ShmPool,
    ) -> Result<usize, Refused> {
        let limit = limit.min(u32::MAX as usize);
        if bytes.len() > limit {
            return Err(Refused::TooLarge { limit });
        }
        if bytes.len() > SHM_THRESHOLD {
            // Rare (a relay forwards large messages decoded): through the same spilling
            // encoder, byte by byte.
            return self.push_large(&Raw(bytes), limit, pool);
        }
        self.bytes
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(bytes);
        self.count += 1;
        Ok(bytes.len())
    }

    /// How much the frame carries: its own bytes and those of its messages in regions.
    pub fn weight(&self) -> usize {
        self.bytes.len() + self.in_regions
    }

    /// How many of its messages are in regions.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Takes the regions of the frame (once it was sent, or to give them back).
    pub fn take_regions(&mut self) -> Vec<(Region, usize)> {
        self.in_regions = 0;
        std::mem::take(&mut self.regions)
    }

    /// The encoded entries.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True when it holds no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Empties it, keeping its memory for the next frame (up to [`KEEP_BYTES`], so that one
    /// huge message does not pin its size for the life of the writer, while a stream of 1 MiB
    /// messages does not fault in fresh pages for each).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
        self.regions.clear();
        self.in_regions = 0;
        if self.bytes.capacity() > KEEP_BYTES {
            self.bytes.shrink_to(KEEP_BYTES);
        }
    }
}

/// Bytes that encode as themselves: a tuple of `u8`s, which postcard writes without a
/// length, one byte each.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = serializer.serialize_tuple(self.0.len())?;
        for b in self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

/// A postcard output that appends to a `Vec` and fails once it would pass `end`.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    end: usize,
}

// Inlined: postcard calls `try_push` for every byte of a number or an array, and a call per
// byte cost a third of the small-message throughput.
impl postcard::ser_flavors::Flavor for Capped<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.out.len() + data.len() > self.end {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.out.len() >= self.end {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A postcard output that appends to a `Vec` until the message passes [`SHM_THRESHOLD`],
/// then moves what it wrote into a shared-memory region and goes on there (growing into a
/// larger region when needed), failing once the message would pass `limit`.
struct Spill<'a> {
    out: &'a mut Vec<u8>,
    /// Where the message starts in `out`.
    body: usize,
    /// Inline, the message may reach this (the threshold or the limit, the smaller); 0 once
    /// it went to a region, so that the fast paths below take one comparison, as `Capped`.
    inline_end: usize,
    limit: usize,
    /// The region and how much of it is written.
    region: Option<(Region, usize)>,
    pool: &'a ShmPool,
    /// Why no region could be had.
    failed: &'a std::cell::RefCell<Option<String>>,
}

impl Spill<'_> {
    #[cold]
    fn slow(&mut self, data: &[u8]) -> postcard::Result<()> {
        let (mut region, mut len) = match self.region.take() {
            Some(r) => r,
            None => {
                let inline = self.out.len() - self.body;
                if inline + data.len() > self.limit {
                    return Err(postcard::Error::SerializeBufferFull);
                }
                if self.out.len() + data.len() <= self.inline_end {
                    self.out.extend_from_slice(data);
                    return Ok(());
                }
                // Past the threshold (still within the limit): on to shared memory.
                let mut region = self.take((inline + data.len()).max(2 * inline))?;
                region.body_mut()[..inline].copy_from_slice(&self.out[self.body..]);
                self.out.truncate(self.body);
                self.inline_end = 0;
                (region, inline)
            }
        };
        if len + data.len() > self.limit {
            self.pool.give_back(region);
            return Err(postcard::Error::SerializeBufferFull);
        }
        if len + data.len() > region.capacity() {
            let mut bigger = match self.take((len + data.len()).max(2 * len)) {
                Ok(r) => r,
                Err(e) => {
                    self.pool.give_back(region);
                    return Err(e);
                }
            };
            bigger.body_mut()[..len].copy_from_slice(&region.body_mut()[..len]);
            self.pool.give_back(std::mem::replace(&mut region, bigger));
        }
        region.body_mut()[len..len + data.len()].copy_from_slice(data);
        len += data.len();
        self.region = Some((region, len));
        Ok(())
    }

    fn take(&self, need: usize) -> postcard::Result<Region> {
        self.pool.take(need.min(self.limit)).map_err(|e| {
            *self.failed.borrow_mut() = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl postcard::ser_flavors::Flavor for Spill<'_> {
    type Output = Option<(Region, usize)>;

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // `out` holds at least the entry's length prefix, so with `inline_end` 0 (in a region)
        // this is false.
        if self.out.len() + data.len() <= self.inline_end {
            self.out.extend_from_slice(data);
            return Ok(());
        }
        self.slow(data)
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.out.len() < self.inline_end {
            self.out.push(data);
            return Ok(());
        }
        self.slow(&[data])
    }

    fn finalize(self) -> postcard::Result<Self::Output> {
        Ok(self.region)
    }
}

/// The bytes of a batch frame as a writer sends them: encodes exactly like
/// `Frame::Batch` of those entries.
pub(crate) struct OutBatch<'a>(pub &'a [u8]);

impl Serialize for OutBatch<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("Frame", 0, "Batch", &AsBytes(self.0))
    }
}

/// The stop frame as a writer sends it: encodes exactly like `Frame::Stop(incarnation)`.
pub(crate) fn stop_variant<S: Serializer>(
    serializer: S,
    incarnation: u32,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_newtype_variant("Frame", 1, "Stop", &incarnation)
}

struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Encodes a frame of one message into `buf` (the direct path's stack buffer); `None` if it
/// does not fit. The same bytes as a [`FrameBuf`] of that message sent as a batch.
/// A `Serialize` that panics gives `None` too: the writer then refuses the message and says why.
pub(crate) fn encode_single<'b, M: Serialize>(msg: &M, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    single_frame(buf, |body| {
        catch_unwind(AssertUnwindSafe(|| {
            postcard::to_slice(msg, body).map(|b| b.len())
        }))
        .ok()?
        .ok()
    })
}

/// [`encode_single`] of a message already encoded (its postcard bytes).
pub(crate) fn encode_single_raw<'b>(bytes: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    single_frame(buf, |body| {
        body.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(bytes.len())
    })
}

/// A frame of one entry in `buf`, whose body `write` puts in the room it is given and says
/// how long it is.
fn single_frame(buf: &mut [u8], write: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<&[u8]> {
    // Room before the entry for the frame's header: the variant (1 byte), the byte string's
    // length (a varint of up to 5 bytes) and the entry's length prefix.
    const HEAD: usize = 1 + 5 + LEN_BYTES;
    let len = write(buf.get_mut(HEAD..)?)?;
    let mut head = [0u8; HEAD];
    let mut n = 0;
    head[n] = 0; // Frame::Batch
    n += 1;
    let mut payload = (LEN_BYTES + len) as u32;
    loop {
        let byte = (payload & 0x7f) as u8;
        payload >>= 7;
        if payload == 0 {
            head[n] = byte;
            n += 1;
            break;
        }
        head[n] = byte | 0x80;
        n += 1;
    }
    head[n..n + LEN_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
    n += LEN_BYTES;
    let from = HEAD - n;
    buf[from..HEAD].copy_from_slice(&head[..n]);
    Some(&buf[from..HEAD + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        value: f64,
    }

    fn reading(i: u32) -> Reading {
        Reading {
            sensor: format!("s{i}"),
            value: f64::from(i) / 2.0,
        }
    }

    #[test]
    fn a_batch_decodes_to_the_messages_encoded() {
        let msgs: Vec<Reading> = (0..100).map(reading).collect();
        let bytes = postcard::to_stdvec(&Frame::Batch(Batch::from(msgs))).expect("encode");
        let Frame::Batch(got) = postcard::from_bytes::<Frame<Reading>>(&bytes).expect("decode")
        else {
            panic!("not a batch")
        };
        assert_eq!(got.failed, 0);
        assert_eq!(got.msgs, (0..100).map(reading).collect::<Vec<_>>());
        let stop = postcard::to_stdvec(&Frame::<Reading>::Stop(7)).expect("encode");
        assert!(matches!(
            postcard::from_bytes::<Frame<Reading>>(&stop),
            Ok(Frame::Stop(7))
        ));
    }

    #[test]
    fn the_writers_encodings_are_the_frames_encodings() {
        let mut buf = FrameBuf::default();
        for i in 0..3 {
            buf.push(&reading(i), usize::MAX).expect("fits");
        }
        let frame = Frame::Batch(Batch::from((0..3).map(reading).collect::<Vec<_>>()));
        assert_eq!(
            postcard::to_stdvec(&OutBatch(buf.bytes())).expect("encode"),
            postcard::to_stdvec(&frame).expect("encode")
        );
        // The direct path's frame of one, for lengths around the varint's 1/2-byte boundary.
        for n in [0usize, 100, 119, 120, 121, 200, 400] {
            let msg = "x".repeat(n);
            let mut stack = [0u8; 512];
            let single = encode_single(&msg, &mut stack).expect("fits").to_vec();
            let frame = Frame::Batch(Batch::from(vec![msg]));
            assert_eq!(
                single,
                postcard::to_stdvec(&frame).expect("encode"),
                "n={n}"
            );
        }
        let mut stack = [0u8; 64];
        assert!(encode_single(&"x".repeat(100), &mut stack).is_none());
    }

    #[test]
    fn a_message_over_the_limit_is_refused_alone() {
        let mut buf = FrameBuf::default();
        buf.push(&vec![1u8; 10], 100).expect("fits");
        let before = buf.bytes().to_vec();
        assert_eq!(
            buf.push(&vec![2u8; 1000], 100),
            Err(Refused::TooLarge { limit: 100 })
        );
        assert_eq!(
            buf.bytes(),
            &before[..],
            "nothing of it is left in the frame"
        );
        // Exactly the limit fits: 99 bytes and their 1-byte length make 100.
        assert_eq!(buf.push(&vec![3u8; 99], 100), Ok(100));
        let Frame::Batch(got) = postcard::from_bytes::<Frame<Vec<u8>>>(
            &postcard::to_stdvec(&OutBatch(buf.bytes())).expect("encode"),
        )
        .expect("decode") else {
            panic!("not a batch")
        };
        assert_eq!(got.msgs, vec![vec![1u8; 10], vec![3u8; 99]]);
    }

    #[test]
    fn a_message_that_fails_to_encode_is_refused_with_why() {
        struct Broken;
        impl Serialize for Broken {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let mut buf = FrameBuf::default();
        assert!(matches!(
            buf.push(&Broken, usize::MAX),
            Err(Refused::Encode(_))
        ));
        assert!(buf.is_empty() && buf.bytes().is_empty());
    }

    #[test]
    fn a_message_whose_serialize_panics_is_refused_not_fatal() {
        struct Bomb;
        impl Serialize for Bomb {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(1)?;
                panic!("boom");
            }
        }
        let mut buf = FrameBuf::default();
        buf.push(&reading(1), usize::MAX).expect("fits");
        let before = buf.bytes().to_vec();
        let refused = buf.push(&Bomb, usize::MAX);
        assert!(
            matches!(&refused, Err(Refused::Encode(why)) if why.contains("boom")),
            "{refused:?}"
        );
        assert_eq!(buf.bytes(), &before[..]);
        let mut stack = [0u8; 64];
        assert!(encode_single(&Bomb, &mut stack).is_none());
    }

    #[test]
    fn an_encoded_message_is_the_entry_of_the_message() {
        let pool = ShmPool::new(u64::MAX, None);
        let msg = reading(3);
        let bytes = postcard::to_allocvec(&msg).unwrap();
        let mut typed = FrameBuf::default();
        typed.push_large(&msg, 1 << 20, &pool).unwrap();
        let mut raw = FrameBuf::default();
        assert_eq!(raw.push_encoded(&bytes, 1 << 20, &pool), Ok(bytes.len()));
        assert_eq!(raw.bytes(), typed.bytes());
        assert_eq!(
            raw.push_encoded(&bytes, bytes.len() - 1, &pool),
            Err(Refused::TooLarge {
                limit: bytes.len() - 1
            })
        );
        let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
        assert_eq!(
            encode_single_raw(&bytes, &mut a),
            encode_single(&msg, &mut b)
        );
    }

    #[test]
    fn a_bad_entry_costs_only_itself() {
        let mut buf = FrameBuf::default();
        buf.push(&reading(1), usize::MAX).expect("fits");
        // An entry that is not a Reading: a string length far beyond the entry.
        buf.push(&(u64::MAX, 0u8), usize::MAX).expect("fits");
        buf.push(&reading(2), usize::MAX).expect("fits");
        let bytes = postcard::to_stdvec(&OutBatch(buf.bytes())).expect("encode");
        let Frame::Batch(got) = postcard::from_bytes::<Frame<Reading>>(&bytes).expect("decode")
        else {
            panic!("not a batch")
        };
        assert_eq!(got.msgs, vec![reading(1), reading(2)]);
        assert_eq!(got.failed, 1);
        // The reason names the type the bytes did not make (postcard's own names none).
        let why = got.first_error.expect("why");
        assert!(
            why.contains("that are not a `") && why.contains("Reading`"),
            "{why}"
        );
    }

    #[test]
    fn a_truncated_or_lying_tail_is_one_failure_after_the_good_entries() {
        let mut buf = FrameBuf::default();
        buf.push(&reading(1), usize::MAX).expect("fits");
        let mut bytes = buf.bytes().to_vec();
        bytes.extend_from_slice(&[7, 0]);
        let got: Batch<Reading> = decode_entries(&bytes);
        assert_eq!((got.msgs.len(), got.failed), (1, 1));
        let mut bytes = buf.bytes().to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(b"short");
        let got: Batch<Reading> = decode_entries(&bytes);
        assert_eq!((got.msgs.len(), got.failed), (1, 1));
        assert!(got.first_error.expect("why").contains("claims"));
    }
}
