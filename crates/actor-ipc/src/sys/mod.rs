//! The lowest floor: the operating system. Descriptors and sockets (including the few
//! places that read ipc-channel's private layout), processes and signals, the bootstrap
//! listener, the OS random source. Nothing here names a type of a higher floor.
//!
//! The crate denies `unsafe` code everywhere else; what must stay `unsafe` (system calls
//! that no safe wrapper covers, ipc-channel's layout, `pre_exec`) lives in this module, each
//! block with its SAFETY comment.

pub(crate) mod fd;
pub(crate) mod listener;
pub(crate) mod process;
pub(crate) mod random;
