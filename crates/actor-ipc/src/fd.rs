//! Duplicating an inbox's receiving end, so the root can keep an inbox alive while its
//! actor's process dies and restarts.
//!
//! ipc-channel moves a receiver when it is sent (its descriptor is consumed), and offers no
//! way to duplicate one. The root needs a second handle on every inbox: with it, messages
//! queued in the socket survive the death of the child, the next incarnation receives them,
//! the `Addr`s that other actors hold keep working, and the root can drain and count what is
//! left at the end. `IpcReceiver<T>` in ipc-channel 0.23.1 (pinned exactly in the workspace)
//! is a single `Cell<c_int>` plus `PhantomData`; the size check below fails the build if
//! that ever changes.

use ipc_channel::ipc::IpcReceiver;
use std::io;
use std::mem::{size_of, transmute_copy, ManuallyDrop};
use std::os::raw::c_int;

const _: () = assert!(size_of::<IpcReceiver<()>>() == size_of::<c_int>());

/// The descriptor inside a receiver (still owned by it).
pub(crate) fn raw_fd<T>(rx: &IpcReceiver<T>) -> c_int {
    assert_eq!(size_of::<IpcReceiver<T>>(), size_of::<c_int>());
    // SAFETY: see the module doc: the receiver's bytes are its descriptor.
    unsafe { transmute_copy(rx) }
}

/// Wraps a connected `SOCK_SEQPACKET` socket (one we accepted ourselves) as an ipc-channel
/// receiver, which then owns it.
pub(crate) fn receiver_from_fd<T>(fd: c_int) -> IpcReceiver<T> {
    assert_eq!(size_of::<IpcReceiver<T>>(), size_of::<c_int>());
    let fd = ManuallyDrop::new(fd);
    // SAFETY: the layout argument of the module doc; the descriptor is open and ours.
    unsafe { transmute_copy::<c_int, IpcReceiver<T>>(&fd) }
}

/// Returns a second receiver on the same socket (`F_DUPFD_CLOEXEC`). Both receive from one
/// queue; the runtime never reads from both at once.
pub(crate) fn duplicate<T>(rx: &IpcReceiver<T>) -> io::Result<IpcReceiver<T>> {
    let fd = raw_fd(rx);
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "receiver already moved",
        ));
    }
    // SAFETY: plain fcntl on a descriptor we own a handle to.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(receiver_from_fd(dup))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_duplicate_receives_after_the_original_is_gone() {
        let (tx, rx) = ipc_channel::ipc::channel::<u32>().expect("channel");
        let dup = duplicate(&rx).expect("dup");
        tx.send(1).expect("send");
        assert_eq!(rx.recv().expect("recv"), 1);
        drop(rx);
        tx.send(2).expect("send after the original closed");
        assert_eq!(
            dup.try_recv_timeout(Duration::from_secs(1)).expect("recv"),
            2
        );
    }
}
