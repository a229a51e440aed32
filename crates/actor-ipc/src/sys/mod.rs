//! The lowest floor: the operating system. Descriptors and sockets (including the two
//! functions that read and make ipc-channel's private layout), shared-memory mappings,
//! processes and signals, the bootstrap listener, the OS random source. Nothing here names a
//! type of a higher floor.
//!
//! The crate denies `unsafe` code everywhere else; what must stay `unsafe` lives in this
//! module, seven blocks each with its SAFETY comment: ipc-channel's layout (`fd`, 2), the
//! `SIOCOUTQ` ioctl (`fd`), a shared mapping taken apart into atomics and bytes
//! (`shared_map`), `pre_exec`, `SIGSEGV`'s default action and `_exit` (`process`). Each offers
//! a safe interface to the floors above.

pub(crate) mod fd;
pub(crate) mod listener;
pub(crate) mod process;
pub(crate) mod random;
pub(crate) mod shared_map;
