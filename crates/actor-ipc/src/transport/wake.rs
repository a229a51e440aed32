//! Waking a sleeping actor or root when something happens that is not a message.
//!
//! Nothing in an idle mpactor process polls: an actor sleeps in its inbox's receive, the root
//! in one `poll` over its report inbox, its children's pidfds and [`RootWake`]. Whatever
//! must get their attention otherwise wakes them here:
//!
//! * an actor's stop flag being set (its third-party reasons: a signal to its process when
//!   the stop must be at once, its root's death) writes a wake frame into the actor's own
//!   inbox ([`wake_inbox`], registered with [`StopFlag::on_set`](actor_core::StopFlag::on_set));
//! * the root's signal thread, and an actor thread that ends, write to the root's eventfd
//!   ([`RootWake`]).
//!
//! The wake frame is a stop frame for incarnation [`WAKE`] (0), which no incarnation has
//! (the first is 1): every receiver already drops stop frames that are not its own, so the
//! wake frame needs no new frame kind, changes nothing on the wire, and a wake frame left in
//! the inbox (the actor saw the flag before it read the frame) is dropped harmlessly by the
//! next incarnation or by the root's drain.

use crate::wire::frame::Frame;
use ipc_channel::ipc::IpcSender;
use rustix::event::{eventfd, EventfdFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The incarnation number of a wake frame: none has it (see [`crate::wire::counters`]: the root
/// numbers incarnations from 1).
pub(crate) const WAKE: u32 = 0;

/// Returns a wake-up for the actor that receives on the inbox `tx` sends to: it writes a wake
/// frame into the socket without ever blocking (`MSG_DONTWAIT`). A full socket needs no
/// wake frame: the actor has messages to read, and looks at its stop flag before each.
/// `None` if the sender is not the socket kind the runtime writes to directly.
pub(crate) fn wake_inbox<T: serde::Serialize>(
    tx: &IpcSender<T>,
) -> Option<impl Fn() + Send + Sync> {
    let socket = crate::sys::fd::FrameSocket::of(tx)?;
    let mut buf = [0u8; 16];
    let len = postcard::to_slice(&Frame::<()>::Stop(WAKE), &mut buf)
        .ok()?
        .len();
    // The socket keeps the descriptor open as long as the wake-up exists.
    Some(move || {
        socket.try_send_frame(&buf[..len]);
    })
}

/// The root's own wake-up: an eventfd in the root's poll set, written by its signal thread
/// and by actor threads that end. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RootWake(std::sync::Arc<OwnedFd>);

impl RootWake {
    /// A new eventfd (non-blocking, close-on-exec).
    pub fn new() -> std::io::Result<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Self(std::sync::Arc::new(fd)))
    }

    /// Wakes the root's wait. Never blocks (a counter at its limit is already "awake").
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }

    /// Takes the wake-ups that came, so the next wait sleeps again.
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&*self.0, &mut buf);
    }

    /// For the root's poll set.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::inbox::IpcInbox;
    use crate::wire::counters::Counters;
    use actor_core::{InboxPort, Recv};
    use std::time::{Duration, Instant};

    #[test]
    fn a_wake_frame_ends_a_long_receive_and_is_no_message() {
        let (tx, rx) = ipc_channel::ipc::channel::<Frame<u32>>().expect("channel");
        let counters = Counters::new();
        crate::wire::counters::next_incarnation(&counters);
        let mut inbox = IpcInbox::new(rx, counters, "T", actor_core::log::discard());
        let wake = wake_inbox(&tx).expect("a seqpacket socket");
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            wake();
        });
        let t0 = Instant::now();
        let got = inbox.recv_timeout(Duration::from_secs(30));
        assert_eq!(got, Recv::Timeout, "woken, with nothing to hand out");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the wake frame ended the wait early: {:?}",
            t0.elapsed()
        );
        waker.join().expect("waker");
        // The inbox still works: a real message after the wake frame is received.
        tx.send(Frame::Batch(vec![7].into())).expect("send");
        assert_eq!(inbox.recv_timeout(Duration::from_secs(5)), Recv::Msg(7));
    }

    #[test]
    fn the_root_wake_makes_its_fd_readable_until_cleared() {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let wake = RootWake::new().expect("eventfd");
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let ready = |w: &RootWake| {
            let mut fds = [PollFd::new(&w.0, PollFlags::IN)];
            poll(&mut fds, Some(&zero)).unwrap_or(0)
        };
        assert_eq!(ready(&wake), 0);
        wake.wake();
        wake.clone().wake();
        assert_eq!(ready(&wake), 1);
        wake.clear();
        assert_eq!(ready(&wake), 0);
    }
}
