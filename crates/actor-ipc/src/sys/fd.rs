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

use ipc_channel::ipc::{IpcReceiver, IpcSender};
use std::io;
use std::mem::{size_of, size_of_val, transmute_copy, ManuallyDrop};
use std::os::raw::c_int;
use std::sync::Arc;

const _: () = assert!(size_of::<IpcReceiver<()>>() == size_of::<c_int>());

/// The descriptor inside a receiver (still owned by it).
pub(crate) fn raw_fd<T>(rx: &IpcReceiver<T>) -> c_int {
    assert_eq!(size_of::<IpcReceiver<T>>(), size_of::<c_int>());
    // SAFETY: see the module doc: the receiver's bytes are its descriptor.
    unsafe { transmute_copy(rx) }
}

/// Checks, on a fresh channel, that the layout this module reads is the one it expects: the
/// receiver's bytes must be an open `SOCK_SEQPACKET` Unix socket, and the sender's must be
/// its peer. A build against another ipc-channel (the pin in Cargo.toml is exact for this
/// reason) fails here, at start-up, with a clear error, instead of reading garbage later.
pub(crate) fn check_layout() -> io::Result<()> {
    let wrong = |what: String| {
        io::Error::other(format!(
            "ipc-channel's layout is not the one mpactor was built for ({what}): \
             mpactor needs ipc-channel =0.23.1 exactly"
        ))
    };
    let (tx, rx) = ipc_channel::ipc::channel::<u8>()?;
    let fd = raw_fd(&rx);
    if fd < 0 {
        return Err(wrong(format!("receiver descriptor {fd}")));
    }
    match rustix::net::sockopt::socket_type(borrow(&rx)) {
        Ok(rustix::net::SocketType::SEQPACKET) => {}
        Ok(other) => return Err(wrong(format!("receiver is a {other:?} socket"))),
        Err(e) => return Err(wrong(format!("receiver descriptor {fd}: {e}"))),
    }
    // The sender's descriptor must be connected to that very socket: a frame written on it
    // arrives on the receiver.
    let Some(sfd) = sender_fd(&tx) else {
        return Err(wrong("no sender descriptor".into()));
    };
    if !try_send_frame(sfd, &[7]) {
        return Err(wrong(format!(
            "sender descriptor {sfd} does not take a frame"
        )));
    }
    match rx.try_recv_timeout(std::time::Duration::from_secs(1)) {
        Ok(7) => Ok(()),
        other => Err(wrong(format!(
            "a frame written directly came back as {other:?}"
        ))),
    }
}

/// The descriptor inside a receiver, borrowed for as long as the receiver: for `poll`.
pub(crate) fn borrow<T>(rx: &IpcReceiver<T>) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: the receiver owns the descriptor and keeps it open for the borrow's lifetime
    // (it closes it only when dropped, which the borrow prevents).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw_fd(rx)) }
}

/// An `IpcSender` that may be shared between threads whatever `T` is.
pub(crate) struct SyncSender<T>(pub IpcSender<T>);

// SAFETY: `IpcSender<T>` in ipc-channel 0.23.1 holds an `Arc` of a socket descriptor and a
// `PhantomData<T>`; it never holds a `T`, so sharing it between threads cannot share a `T`.
// It is only `!Sync` for `!Sync` messages because of the marker.
unsafe impl<T: Send> Sync for SyncSender<T> {}

/// How many bytes this process sent on `fd` that its peer has not read yet (`SIOCOUTQ`);
/// `None` if the kernel cannot say.
pub(crate) fn unread_bytes(fd: c_int) -> Option<usize> {
    let mut queued: c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    (r == 0).then_some(queued.max(0) as usize)
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
    use std::os::fd::IntoRawFd;
    let dup = rustix::io::fcntl_dupfd_cloexec(borrow(rx), 0)?;
    Ok(receiver_from_fd(dup.into_raw_fd()))
}

// ---------------------------------------------------------------------------------------
// The sending side, for `Addr`'s direct path (see addr.rs): a small frame written by the
// caller itself with `MSG_DONTWAIT`, in ipc-channel's own wire format, so that it never
// blocks. `IpcSender<T>` in ipc-channel 0.23.1 is one `Arc` of a `SharedFileDescriptor`
// (a `c_int`) plus `PhantomData`; a message of one fragment is `sendmsg(MSG_EOR)` of two
// `usize` (the fragment's length with this header, the message's length) and the bytes.
// ---------------------------------------------------------------------------------------

const _: () = assert!(size_of::<IpcSender<()>>() == size_of::<usize>());

/// The descriptor of a sender's socket (still owned by the sender), if it is the kind the
/// runtime expects: a Unix `SOCK_SEQPACKET` socket. `None` turns the direct path off.
pub(crate) fn sender_fd<T>(tx: &IpcSender<T>) -> Option<c_int> {
    if size_of::<IpcSender<T>>() != size_of::<usize>() {
        return None;
    }
    // SAFETY: see above: the sender's bytes are an `Arc` whose value is the descriptor; the
    // copy is never dropped, so the count is untouched, and `tx` keeps it alive meanwhile.
    let arc: ManuallyDrop<Arc<c_int>> = unsafe { transmute_copy(tx) };
    let fd = **arc;
    let (mut kind, mut domain) = (0 as c_int, 0 as c_int);
    let mut len = size_of::<c_int>() as libc::socklen_t;
    let mut len2 = len;
    // SAFETY: getsockopt writes one c_int into each.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut c_int).cast(),
            &mut len,
        ) == 0
            && libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_DOMAIN,
                (&mut domain as *mut c_int).cast(),
                &mut len2,
            ) == 0
    };
    (ok && kind == libc::SOCK_SEQPACKET && domain == libc::AF_UNIX).then_some(fd)
}

/// Writes `data` (a postcard-encoded frame without channels or shared memory) as one
/// ipc-channel message, without ever blocking. True if it was sent; false if the socket is
/// full or anything else stood in the way (the caller then sends it the ordinary way).
pub(crate) fn try_send_frame(fd: c_int, data: &[u8]) -> bool {
    let header = [2 * size_of::<usize>() + data.len(), data.len()];
    let mut iov = [
        libc::iovec {
            iov_base: header.as_ptr() as *mut libc::c_void,
            iov_len: size_of_val(&header),
        },
        libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        },
    ];
    // SAFETY: a zeroed msghdr is "no address, no control data"; the iovecs point at live
    // buffers of the lengths given.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        libc::sendmsg(
            fd,
            &msg,
            libc::MSG_EOR | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    sent == header[0] as isize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_layout_is_the_one_this_module_reads() {
        check_layout().expect("ipc-channel 0.23.1's layout");
    }

    #[test]
    fn a_frame_written_directly_is_received_as_ipc_channel_sent_it() {
        let (tx, rx) = ipc_channel::ipc::channel::<(u64, [u8; 3])>().expect("channel");
        let fd = sender_fd(&tx).expect("a seqpacket socket");
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&(7u64, *b"abc"), &mut buf).expect("encode");
        assert!(try_send_frame(fd, bytes));
        tx.send((8, *b"def")).expect("send");
        let got = rx.try_recv_timeout(Duration::from_secs(1)).expect("recv");
        assert_eq!(got, (7, *b"abc"));
        let got = rx.try_recv_timeout(Duration::from_secs(1)).expect("recv");
        assert_eq!(
            got,
            (8, *b"def"),
            "the sender still works after the direct write"
        );
    }

    #[test]
    fn a_full_socket_refuses_at_once() {
        let (tx, _rx) = ipc_channel::ipc::channel::<u64>().expect("channel");
        let fd = sender_fd(&tx).expect("a seqpacket socket");
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&1u64, &mut buf).expect("encode");
        let t0 = std::time::Instant::now();
        let sent = (0..10_000)
            .take_while(|_| try_send_frame(fd, bytes))
            .count();
        assert!(sent < 10_000, "nobody reads: the socket fills up");
        assert!(t0.elapsed() < Duration::from_secs(2), "and never blocks");
    }

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
