//! [`SharedBytes`]: a byte payload that a receiving actor reads in place, without a copy.

use crate::wire::shm::{region_of, Held};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;
use std::sync::Arc;

/// Bytes for large payloads (images, blobs, file chunks): cheap to clone, read by the
/// receiving actor straight out of the shared memory they arrived in.
///
/// A message whose encoding is larger than [`SHM_THRESHOLD`](crate::wire::shm::SHM_THRESHOLD) (64 KiB)
/// travels in shared memory whatever its type: the sending process's writer encodes it once
/// into a memfd region that both processes map, and the frame on the socket only refers to
/// it. Plain `Vec<u8>`, `serde_bytes::ByteBuf` or a large struct work that way unchanged; the
/// receiver then decodes them out of the region (one copy). `SharedBytes` goes one step
/// further: decoded from a region, it *is* a view into the region, so the receiver reads the
/// sender's bytes where the writer put them. The region is handed back to its writer when the
/// last clone of every `SharedBytes` pointing into it is dropped, so keep them only as long as
/// you need them (each region held is one descriptor and one mapping in the process).
///
/// On the sending side it wraps a `Vec<u8>` without copying; the writer copies it once, into
/// the region. It serializes as a byte string (like `serde_bytes`), so it also works in other
/// serde formats and between actors running as threads (where it is moved, not encoded).
///
/// ```
/// use actor_ipc::SharedBytes; // `mpactor::SharedBytes` in an application
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Frame {
///     camera: u8,
///     pixels: SharedBytes,
/// }
///
/// let frame = Frame { camera: 1, pixels: SharedBytes::from(vec![0u8; 4 << 20]) };
/// // ... `addr.send(frame)` to an actor whose Msg is `Frame`; in its handler:
/// let pixels: &[u8] = &frame.pixels; // derefs to the bytes, no copy
/// assert_eq!(pixels.len(), 4 << 20);
/// ```
#[derive(Clone, Default)]
pub struct SharedBytes(Repr);

#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// Built by the sender (or decoded from a small frame): a vector of its own.
    Owned(Arc<Vec<u8>>),
    /// Decoded from a shared-memory region: `len` bytes at `start` of its message area.
    Mapped {
        region: Arc<Held>,
        start: usize,
        len: usize,
    },
}

impl SharedBytes {
    /// Empty bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when these bytes are read in place from the shared memory they arrived in (false
    /// on the sending side, and for small payloads that arrived inside their frame).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }

    /// The bytes as a vector of their own (a copy, unless this is the only handle on bytes the
    /// sender built).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Empty => Vec::new(),
            Repr::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|v| v.to_vec()),
            Repr::Mapped { .. } => self.to_vec(),
        }
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::Owned(v) => v,
            Repr::Mapped { region, start, len } => &region.bytes()[*start..*start + *len],
        }
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        if v.is_empty() {
            return Self::new();
        }
        SharedBytes(Repr::Owned(Arc::new(v)))
    }
}

impl From<&[u8]> for SharedBytes {
    fn from(v: &[u8]) -> Self {
        Self::from(v.to_vec())
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedBytes {}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedBytes({} bytes{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = SharedBytes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<SharedBytes, E> {
        // Decoded out of a shared-memory region: point into it instead of copying.
        if let Some((region, start)) = region_of(v) {
            return Ok(SharedBytes(Repr::Mapped {
                region,
                start,
                len: v.len(),
            }));
        }
        self.visit_bytes(v)
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<SharedBytes, E> {
        Ok(SharedBytes::from(v))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<SharedBytes, E> {
        Ok(SharedBytes::from(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SharedBytes, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(SharedBytes::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_encodes_as_a_byte_string() {
        let b = SharedBytes::from(vec![1u8, 2, 3]);
        let enc = postcard::to_stdvec(&b).expect("encode");
        assert_eq!(
            enc,
            postcard::to_stdvec(&serde_bytes::ByteBuf::from(vec![1u8, 2, 3])).expect("encode")
        );
        let back: SharedBytes = postcard::from_bytes(&enc).expect("decode");
        assert_eq!(back, b);
        assert!(!back.is_mapped(), "decoded outside a region: a copy");
        assert_eq!(back.into_vec(), vec![1, 2, 3]);
    }

    #[test]
    fn decoded_from_a_region_it_points_into_it() {
        let _one = crate::shm_tests::ONE_AT_A_TIME.lock();
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let enc = postcard::to_stdvec(&(7u8, SharedBytes::from(payload.clone()))).expect("enc");
        let mut region = vec![0u8; crate::wire::shm::HEADER];
        region.extend_from_slice(&enc);
        let shm = ipc_channel::ipc::IpcSharedMemory::from_bytes(&region);
        let (n, got): (u8, SharedBytes) =
            crate::wire::shm::decode_region(shm.clone(), enc.len(), 0).expect("decode");
        assert_eq!(n, 7);
        assert!(got.is_mapped());
        assert_eq!(&got[..], &payload[..]);
        let state = shm[0];
        assert_eq!(
            state,
            crate::wire::shm::RECEIVED as u8,
            "received, still held"
        );
        drop(got);
        assert_eq!(
            shm[0],
            (crate::wire::shm::RECEIVED | crate::wire::shm::RELEASED) as u8,
            "released with its last handle"
        );
    }
}
