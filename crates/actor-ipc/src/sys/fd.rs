//! ipc-channel's descriptors: duplicating an inbox's receiving end, wrapping a socket we
//! accepted as a receiver, and writing a small frame straight into a sender's socket.
//!
//! ipc-channel moves a receiver when it is sent (its descriptor is consumed), and offers no
//! way to duplicate one. The root needs a second handle on every inbox: with it, messages
//! queued in the socket survive the death of the child, the next incarnation receives them,
//! the `Addr`s that other actors hold keep working, and the root can drain and count what is
//! left at the end. And `Addr`'s direct path writes a frame into the inbox socket itself,
//! without blocking, which ipc-channel's `send` cannot do.
//!
//! Both need the descriptor inside ipc-channel's handles, which it does not expose. In
//! ipc-channel 0.23.1 (pinned exactly in the workspace): `IpcReceiver<T>` is a single
//! `Cell<c_int>` plus `PhantomData` (-1 once the receiver was sent away), and `IpcSender<T>`
//! one `Arc` of a `SharedFileDescriptor` (a `c_int`) plus `PhantomData`. The size checks
//! below fail the build if either changes size, and [`check_layout`] (run when a root or an
//! actor's process starts) refuses to start if the bytes read are not the expected sockets.
//! Two functions read or make that layout, [`descriptor`] and [`receiver_from_fd`]; all the
//! rest is safe code on top of them.

use ipc_channel::ipc::{IpcReceiver, IpcSender};
use serde::{Deserialize, Serialize};
use std::io;
use std::mem::{size_of, transmute_copy, ManuallyDrop};
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::Arc;

const _: () = assert!(size_of::<IpcReceiver<()>>() == size_of::<c_int>());
const _: () = assert!(size_of::<IpcSender<()>>() == size_of::<usize>());

/// One of ipc-channel's handles, whose descriptor [`descriptor`] reads.
enum Handle<'a, T> {
    Receiver(&'a IpcReceiver<T>),
    Sender(&'a IpcSender<T>),
}

/// The descriptor inside one of ipc-channel's handles, borrowed for as long as the handle
/// (which keeps it open: it closes it only when dropped, which the borrow prevents). `None`
/// for a receiver that was sent away (its descriptor is -1). The one place that reads
/// ipc-channel's private layout.
fn descriptor<T>(handle: Handle<'_, T>) -> Option<BorrowedFd<'_>> {
    // The marker does not change a handle's size, whatever `T` is.
    debug_assert_eq!(size_of::<IpcReceiver<T>>(), size_of::<c_int>());
    debug_assert_eq!(size_of::<IpcSender<T>>(), size_of::<usize>());
    // SAFETY: the layout of the module doc, checked in size at build time and in meaning at
    // start-up (`check_layout`). A receiver's bytes are its descriptor. A sender's bytes are
    // an `Arc` whose value is the descriptor: the copy is never dropped (`ManuallyDrop`), so
    // the count is untouched, and the handle keeps the `Arc` alive meanwhile. The descriptor
    // is open for as long as the handle lives, and not -1 (checked), as `borrow_raw` needs.
    unsafe {
        let fd: c_int = match handle {
            Handle::Receiver(rx) => transmute_copy(rx),
            Handle::Sender(tx) => **transmute_copy::<_, ManuallyDrop<Arc<c_int>>>(tx),
        };
        if fd < 0 {
            None
        } else {
            Some(BorrowedFd::borrow_raw(fd))
        }
    }
}

/// Wraps a connected `SOCK_SEQPACKET` socket (one we accepted ourselves) as an ipc-channel
/// receiver, which then owns it.
pub(crate) fn receiver_from_fd<T>(fd: OwnedFd) -> IpcReceiver<T> {
    debug_assert_eq!(size_of::<IpcReceiver<T>>(), size_of::<c_int>());
    let fd: c_int = fd.into_raw_fd();
    // SAFETY: the layout of the module doc: a receiver's bytes are its descriptor, which it
    // owns (and closes when dropped); `fd` is open and ours to give.
    unsafe { transmute_copy::<c_int, IpcReceiver<T>>(&fd) }
}

/// The descriptor inside a receiver, borrowed for as long as the receiver: for `poll`,
/// socket options and `fcntl`. The runtime never asks for it after the receiver was sent
/// away (its descriptor then is gone: that is a bug, and panics).
pub(crate) fn borrow<T>(rx: &IpcReceiver<T>) -> BorrowedFd<'_> {
    descriptor(Handle::Receiver(rx)).expect("the descriptor of a receiver that was sent away")
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
    let Some(fd) = descriptor(Handle::Receiver(&rx)) else {
        return Err(wrong("no receiver descriptor".into()));
    };
    match rustix::net::sockopt::socket_type(fd) {
        Ok(rustix::net::SocketType::SEQPACKET) => {}
        Ok(other) => return Err(wrong(format!("receiver is a {other:?} socket"))),
        Err(e) => {
            let fd = fd.as_raw_fd();
            return Err(wrong(format!("receiver descriptor {fd}: {e}")));
        }
    }
    // The sender's descriptor must be connected to that very socket: a frame written on it
    // arrives on the receiver.
    let Some(socket) = FrameSocket::of(&tx) else {
        return Err(wrong(
            "the sender's descriptor is no SEQPACKET Unix socket".into(),
        ));
    };
    if !socket.try_send_frame(&[7]) {
        return Err(wrong(
            "the sender's descriptor does not take a frame".into(),
        ));
    }
    match rx.try_recv_timeout(std::time::Duration::from_secs(1)) {
        Ok(7) => Ok(()),
        other => Err(wrong(format!(
            "a frame written directly came back as {other:?}"
        ))),
    }
}

/// Returns a second receiver on the same socket (`F_DUPFD_CLOEXEC`). Both receive from one
/// queue; the runtime never reads from both at once.
pub(crate) fn duplicate<T>(rx: &IpcReceiver<T>) -> io::Result<IpcReceiver<T>> {
    let Some(fd) = descriptor(Handle::Receiver(rx)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "receiver already moved",
        ));
    };
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
    Ok(receiver_from_fd(dup))
}

/// The message type of a sender held without its own: nothing is ever sent or received as
/// it. An `IpcSender<T>` is `Sync` only for a `Sync` `T` (through its marker, though it
/// never holds a `T`), so an `Addr<M>`, which must be `Sync` for every `M: Send`, keeps its
/// sender as `IpcSender<Untyped>` (it encodes exactly as the typed one); the writer types
/// it again for what it sends.
#[derive(Serialize, Deserialize)]
pub(crate) enum Untyped {}

/// A sender's socket, for the direct path: a small frame written by the caller itself with
/// `MSG_DONTWAIT`, in ipc-channel's own wire format, so that it never blocks (see
/// `transport`). A message of one fragment is `sendmsg(MSG_EOR)` of two `usize` (the
/// fragment's length with this header, the message's length) and the bytes. It holds the
/// sender, so the socket stays open as long as it lives, and is `Send + Sync`.
pub(crate) struct FrameSocket(IpcSender<Untyped>);

impl FrameSocket {
    /// The socket of `tx`, if it is the kind the runtime expects: a Unix `SOCK_SEQPACKET`
    /// socket. `None` turns the direct path off.
    pub fn of<T: Serialize>(tx: &IpcSender<T>) -> Option<Self> {
        let socket = FrameSocket(tx.clone().to_opaque().to());
        let fd = socket.fd()?;
        let kind = rustix::net::sockopt::socket_type(fd).ok()?;
        let domain = rustix::net::sockopt::socket_domain(fd).ok()?;
        (kind == rustix::net::SocketType::SEQPACKET && domain == rustix::net::AddressFamily::UNIX)
            .then_some(socket)
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        descriptor(Handle::Sender(&self.0))
    }

    /// Writes `data` (a postcard-encoded frame without channels or shared memory) as one
    /// ipc-channel message, without ever blocking. True if it was sent; false if the socket
    /// is full or anything else stood in the way (the caller then sends it the ordinary way).
    pub fn try_send_frame(&self, data: &[u8]) -> bool {
        use rustix::net::{sendmsg, SendAncillaryBuffer, SendFlags};
        let Some(fd) = self.fd() else { return false };
        let total = 2 * size_of::<usize>() + data.len();
        let mut header = [0u8; 2 * size_of::<usize>()];
        header[..size_of::<usize>()].copy_from_slice(&total.to_ne_bytes());
        header[size_of::<usize>()..].copy_from_slice(&data.len().to_ne_bytes());
        let iov = [io::IoSlice::new(&header), io::IoSlice::new(data)];
        let flags = SendFlags::EOR | SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        let sent = sendmsg(fd, &iov, &mut SendAncillaryBuffer::default(), flags);
        matches!(sent, Ok(n) if n == total)
    }

    /// Raises the socket's send buffer to `bytes` (the kernel clamps it to
    /// `net.core.wmem_max` and doubles it for its own bookkeeping); never lowers it. One buffer
    /// per inbox: every sending process holds a descriptor of the same socket.
    pub fn raise_send_buffer(&self, bytes: usize) -> io::Result<()> {
        use rustix::net::sockopt::{set_socket_send_buffer_size, socket_send_buffer_size};
        let fd = self.fd().ok_or_else(|| io::Error::other("no descriptor"))?;
        if socket_send_buffer_size(fd)? < bytes {
            set_socket_send_buffer_size(fd, bytes)?;
        }
        Ok(())
    }

    /// The socket's send buffer as the kernel reports it (`SO_SNDBUF`).
    #[cfg(test)]
    pub fn send_buffer(&self) -> io::Result<usize> {
        let fd = self.fd().ok_or_else(|| io::Error::other("no descriptor"))?;
        Ok(rustix::net::sockopt::socket_send_buffer_size(fd)?)
    }

    /// How many bytes this process sent on the socket that its peer has not read yet
    /// (`SIOCOUTQ`); `None` if the kernel cannot say.
    pub fn unread_bytes(&self) -> Option<usize> {
        let fd = self.fd()?.as_raw_fd();
        let mut queued: c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int, into `queued`; `fd` is open (borrowed
        // from the sender above). No safe wrapper covers this ioctl (rustix has none).
        let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        (r == 0).then_some(queued.max(0) as usize)
    }
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
        let socket = FrameSocket::of(&tx).expect("a seqpacket socket");
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&(7u64, *b"abc"), &mut buf).expect("encode");
        assert!(socket.try_send_frame(bytes));
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
        let socket = FrameSocket::of(&tx).expect("a seqpacket socket");
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&1u64, &mut buf).expect("encode");
        let t0 = std::time::Instant::now();
        let sent = (0..10_000)
            .take_while(|_| socket.try_send_frame(bytes))
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
