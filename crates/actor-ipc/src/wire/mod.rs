//! The second floor: what travels between processes. Frames and their encoding, the shared
//! counters of an inbox, shared-memory regions for large messages, and the bootstrap's
//! messages. It builds on `crate::sys` only.

pub(crate) mod boot;
pub(crate) mod counters;
pub(crate) mod frame;
pub(crate) mod shared_bytes;
pub(crate) mod shm;
