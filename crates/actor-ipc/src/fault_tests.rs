//! Faults at the level of one inbox and one writer: what a dead incarnation leaves behind
//! (its stop request, its socket's blocking mode) never reaches the next one, and a flush that
//! gives up at its deadline counts nothing twice.

use crate::transport::inbox::IpcInbox;
use crate::transport::{flush_all, Addr};
use crate::wire::counters::{self, Counters};
use crate::wire::frame::Frame;
use actor_core::{InboxPort, Recv};
use ipc_channel::ipc;
use std::time::{Duration, Instant};

/// Waits for `what` under a deadline (no sleep as synchronisation).
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn nonblocking(fd: &std::os::fd::OwnedFd) -> bool {
    let flags = rustix::fs::fcntl_getfl(fd).expect("F_GETFL");
    flags.contains(rustix::fs::OFlags::NONBLOCK)
}

#[test]
fn a_stop_request_for_a_dead_incarnation_does_not_stop_the_next() {
    let (tx, rx) = ipc::channel::<Frame<u64>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("W".into(), tx, counters.clone(), 64, 1 << 20);
    // Incarnation 1 is asked to stop, and dies before it reads the request.
    counters::next_incarnation(&counters);
    let first = counters::ask_stop(&counters);
    assert_eq!(first, 1);
    assert!(addr.send_stop(Instant::now() + Duration::from_secs(5), first));
    // Incarnation 2 starts on the same inbox; messages are sent to it.
    counters::next_incarnation(&counters);
    let mut inbox = IpcInbox::new(rx, counters.clone(), "W", actor_core::log::discard());
    addr.send(7).expect("accepted");
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        assert!(Instant::now() < deadline, "no message for incarnation 2");
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Recv::Timeout => continue,
            other => break other,
        }
    };
    assert_eq!(
        got,
        Recv::Msg(7),
        "the old stop request was taken as this one's"
    );
    // Its own stop request does stop it.
    let second = counters::ask_stop(&counters);
    assert_eq!(second, 2);
    assert!(addr.send_stop(Instant::now() + Duration::from_secs(5), second));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "incarnation 2 was never stopped");
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Recv::Stop => break,
            Recv::Timeout => continue,
            Recv::Msg(m) => panic!("unexpected message {m}"),
        }
    }
}

#[test]
fn each_incarnation_gets_a_blocking_inbox_whatever_the_last_one_left() {
    let (_tx, rx) = ipc::channel::<Frame<u64>>().expect("channel");
    // A second descriptor of the same file description, which holds `O_NONBLOCK`.
    let fd = rustix::io::fcntl_dupfd_cloexec(crate::sys::fd::borrow(&rx), 0).expect("dup");
    // What a process killed inside ipc-channel's `try_recv` leaves on the shared description.
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK).expect("F_SETFL");
    assert!(nonblocking(&fd));
    let mut inbox = IpcInbox::new(rx, Counters::new(), "W", actor_core::log::discard());
    assert!(
        !nonblocking(&fd),
        "the next incarnation inherited O_NONBLOCK"
    );
    // Receives and drains never set it again (a kill at any moment leaves nothing behind).
    assert_eq!(inbox.recv_timeout(Duration::ZERO), Recv::Timeout);
    assert_eq!(inbox.recv_timeout(Duration::from_millis(2)), Recv::Timeout);
    assert_eq!(inbox.drain(Instant::now() + Duration::from_millis(5)), 0);
    assert!(!nonblocking(&fd));
}

#[test]
fn a_flush_that_gives_up_counts_nothing_twice() {
    // The receiver reads nothing at first: the socket fills and the writer blocks with
    // messages in hand. The flush gives up at its deadline; then the receiver reads
    // everything, and the writer ships what it held. Every message is counted once.
    // 20 MB: many times what an inbox socket holds (`INBOX_SOCKET_BYTES`, doubled).
    let (tx, rx) = ipc::channel::<Frame<Vec<u8>>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("SLOW".into(), tx, counters.clone(), 100_000, 1 << 20);
    let b = counters.get();
    let mut accepted = 0u64;
    for i in 0..20_000u64 {
        if addr.try_send(vec![i as u8; 1024]).is_ok() {
            accepted += 1;
        }
    }
    wait_for("the writer to block", || {
        let before = Counters::load(&b.shipped);
        std::thread::sleep(Duration::from_millis(20));
        Counters::load(&b.shipped) == before && before < accepted
    });
    let left = flush_all(Instant::now() + Duration::from_millis(30));
    assert!(
        left > 0,
        "the flush should have given up with messages on their way"
    );
    let mut received = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while received < accepted && Instant::now() < deadline {
        if let Ok(Frame::Batch(batch)) = rx.try_recv_timeout(Duration::from_millis(100)) {
            received += batch.msgs.len() as u64;
        }
    }
    assert_eq!(received, accepted, "every accepted message arrives");
    wait_for("the writer's counts", || {
        Counters::load(&b.shipped) == accepted
    });
    assert_eq!(Counters::load(&b.accepted), accepted);
    assert_eq!(
        Counters::load(&b.undelivered),
        0,
        "messages shipped after the flush gave up were also counted undelivered"
    );
    assert_eq!(counters.unsent(), 0);
}
