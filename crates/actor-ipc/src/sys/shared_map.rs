//! Memory shared between processes, with safe access: a header of `WORDS` atomic words
//! followed by a body of plain bytes.
//!
//! An inbox's counters are one such mapping (header only), and so is every region a large
//! message travels in (a header holding its state word, then the message). Both are
//! `IpcSharedMemory` (an anonymous memfd mapped in each process that holds one; its clones
//! and the copies that travel in frames are mappings of their own). This is the one place
//! that turns such a mapping into references: [`SharedMap::words`] gives the header as
//! `&[AtomicU64; WORDS]` (a fixed size, so a field is an index the compiler checks, and
//! reading one costs what reading a struct field does), [`SharedMap::body`] and
//! [`SharedMap::body_mut`] the bytes after it.
//!
//! The header is only ever touched through atomics, in every process, so another process
//! writing it at the same time is an ordinary atomic access. The body is written only by the
//! one process that owns the region while no other process reads it (the writer fills it
//! before it ships the region, and takes it back only once the receiver has released it:
//! see `wire::shm`), and this process never makes a second mapping of its own alias it
//! (each handle maps the memfd anew).

use ipc_channel::ipc::IpcSharedMemory;
use std::sync::atomic::AtomicU64;

/// The bytes of one header word.
const WORD: usize = std::mem::size_of::<AtomicU64>();

/// One mapping of shared memory: `WORDS` atomic words, then the body.
pub(crate) struct SharedMap<const WORDS: usize> {
    /// The header, in the mapping. `'static` only inside this type: every accessor hands it
    /// out for as long as `self`, which keeps the mapping (`shm`) alive.
    words: &'static [AtomicU64; WORDS],
    /// The rest of the mapping, likewise.
    body: &'static mut [u8],
    /// Owns the mapping (unmapped when dropped, after the two views above, which never
    /// outlive `self`); the handle that goes into a frame or an `Addr`.
    shm: IpcSharedMemory,
}

impl<const WORDS: usize> SharedMap<WORDS> {
    /// A fresh mapping, all zero, with a body of `body_len` bytes. An error (not the panic
    /// ipc-channel raises) when the system has no memfd or memory left for it.
    pub fn zeroed(body_len: usize) -> Result<Self, String> {
        let len = WORDS * WORD + body_len;
        let shm = std::panic::catch_unwind(|| IpcSharedMemory::from_byte(0, len)).map_err(|p| {
            format!(
                "no shared memory of {len} bytes for it: {}",
                actor_core::lifecycle::panic_message(&*p)
            )
        })?;
        Self::from_shm(shm)
    }

    /// Takes over a mapping that was received (or made). An error if it is too short for
    /// the header, or not aligned for atomic words (a mapping is page-aligned, so only an
    /// empty one is refused that way).
    pub fn from_shm(mut shm: IpcSharedMemory) -> Result<Self, String> {
        let header = WORDS * WORD;
        if shm.len() < header {
            return Err(format!(
                "a shared mapping of {} bytes, expected at least {header}",
                shm.len()
            ));
        }
        // SAFETY: `deref_mut` hands out the whole mapping; it is the only `&mut` ever taken
        // of it in this process (`shm` is private, and its clones are mappings of their
        // own), so splitting it into the header and the body aliases nothing. The header is
        // `WORDS` words long (checked above) and 8-aligned (checked below: a mapping is
        // page-aligned), any bit pattern is a valid `AtomicU64`, and from here on the header
        // is only accessed through those atomics, in this process and in every other one
        // (see the module doc), so concurrent writes from elsewhere are atomic accesses too.
        // The body is plain bytes, written only under the protocol of the module doc. Both
        // views are `'static` only inside this type; the mapping lives until `self` drops.
        let (words, body) = unsafe {
            let all: &'static mut [u8] = std::mem::transmute::<&mut [u8], _>(shm.deref_mut());
            if all.as_ptr().align_offset(std::mem::align_of::<AtomicU64>()) != 0 {
                return Err("a shared mapping not aligned for atomic words".into());
            }
            let (head, body) = all.split_at_mut(header);
            (&*head.as_ptr().cast::<[AtomicU64; WORDS]>(), body)
        };
        Ok(SharedMap { words, body, shm })
    }

    /// The header's atomic words.
    #[inline]
    pub fn words(&self) -> &[AtomicU64; WORDS] {
        self.words
    }

    /// The body, to read.
    pub fn body(&self) -> &[u8] {
        &*self.body
    }

    /// The body, to fill: only by the process that owns the region, while no other process
    /// reads it (see the module doc).
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut *self.body
    }

    /// The handle on the mapping, to put into a frame or serialize with an `Addr` (the copy
    /// that travels is a mapping of its own).
    pub fn shm(&self) -> &IpcSharedMemory {
        &self.shm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_second_mapping_sees_the_words_and_the_body() {
        let mut mine = SharedMap::<2>::zeroed(100).expect("a mapping");
        assert_eq!(mine.body().len(), 100);
        mine.words()[1].store(7, Ordering::SeqCst);
        mine.body_mut()[3] = 9;
        let theirs = SharedMap::<2>::from_shm(mine.shm().clone()).expect("a second mapping");
        assert_ne!(theirs.body().as_ptr(), mine.body().as_ptr(), "mapped anew");
        assert_eq!(theirs.words()[1].load(Ordering::SeqCst), 7);
        assert_eq!(theirs.body()[3], 9);
        theirs.words()[0].fetch_add(5, Ordering::SeqCst);
        assert_eq!(mine.words()[0].load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_mapping_shorter_than_the_header_is_refused() {
        let shm = IpcSharedMemory::from_byte(0, 8);
        let err = SharedMap::<2>::from_shm(shm).err().expect("refused");
        assert!(err.contains("8 bytes"), "{err}");
    }
}
