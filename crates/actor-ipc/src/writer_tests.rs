//! The writer thread seen from its two ends: where shipped messages are dropped, and how much
//! an inbox socket holds before the writer has to wait for the actor.

use crate::sys::fd::FrameSocket;
use crate::transport::inbox::IpcInbox;
use crate::transport::Addr;
use crate::wire::counters::Counters;
use crate::wire::frame::Frame;
use actor_core::{InboxPort, Recv};
use ipc_channel::ipc::{self, IpcReceiver};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// A message that says on which thread it was dropped (only copies made by the sender count:
/// the receiver's decoded copies carry `sender_side: false`).
#[derive(Serialize, Deserialize)]
struct Tracked {
    payload: Vec<u8>,
    #[serde(skip)]
    sender_side: bool,
}

/// Threads on which the senders' copies were dropped (one test uses `Tracked`).
static DROPPED_ON: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());
static DROPPED: AtomicU64 = AtomicU64::new(0);

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.sender_side {
            DROPPED_ON.lock().push(std::thread::current().id());
            DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn inbox_of<M>(rx: IpcReceiver<Frame<M>>, counters: Counters) -> IpcInbox<M>
where
    M: Serialize + serde::de::DeserializeOwned + Send,
{
    let log = slog::Logger::root(slog::Discard, slog::o!());
    IpcInbox::new(rx, counters, "WRITER", log)
}

/// Receives `n` messages through `inbox`, within a deadline.
fn receive_all<M>(inbox: &mut IpcInbox<M>, n: u64)
where
    M: Serialize + serde::de::DeserializeOwned + Send,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < n {
        match inbox.recv_timeout(Duration::from_millis(100)) {
            Recv::Msg(_) => got += 1,
            Recv::Timeout => assert!(Instant::now() < deadline, "only {got} of {n} arrived"),
            Recv::Stop => panic!("stopped"),
        }
    }
}

/// A flood of messages with heap memory: frames of many messages, whose memory the sending
/// thread frees (its sends drop what the writer shipped before) as far as it keeps sending,
/// and once the traffic ends the idle writer drops the rest by itself, soon, without another
/// send. (A sender that outruns its writer waits on a full queue meanwhile, and the writer
/// drops what piles up: how many the sender frees depends on the pace, in a debug build
/// about a fifth; none before.)
#[test]
fn shipped_messages_are_dropped_by_the_sender_and_none_is_kept_once_idle() {
    const N: u64 = 20_000;
    let (tx, rx) = ipc::channel::<Frame<Tracked>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("WRITER".into(), tx, counters.clone(), 4096, usize::MAX);
    let mut inbox = inbox_of(rx, counters);
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let msg = Tracked {
                payload: vec![i as u8; 4096],
                sender_side: true,
            };
            addr.send_timeout(msg, Duration::from_secs(10))
                .expect("sent");
        }
        (std::thread::current().id(), addr)
    });
    receive_all(&mut inbox, N);
    let (sending_thread, addr) = sender.join().expect("the sender");
    // The address is still alive and nothing more is sent: the writer alone ends it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while DROPPED.load(Ordering::SeqCst) < N {
        assert!(
            Instant::now() < deadline,
            "{} of {N} shipped messages still held 10 s after the last send",
            DROPPED.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let on_sender = DROPPED_ON
        .lock()
        .iter()
        .filter(|t| **t == sending_thread)
        .count() as u64;
    assert!(
        on_sender >= N / 20,
        "only {on_sender} of {N} messages were freed by the thread that made them"
    );
    drop(addr);
}

/// An inbox socket holds several full frames (128 KiB each) before the writer waits: at the
/// default buffer (208 KiB) it held one, and writer and actor ran in lock-step.
#[test]
fn an_inbox_socket_holds_several_frames_once_written_to() {
    let (tx, rx) = ipc::channel::<Frame<u64>>().expect("channel");
    let socket = FrameSocket::of(&tx).expect("a seqpacket socket");
    let before = socket.send_buffer().expect("SO_SNDBUF");
    let addr = Addr::new("WRITER".into(), tx, Counters::new(), 64, usize::MAX);
    let mut inbox = inbox_of(rx, Counters::new());
    // The first send starts this process's writer for the inbox, which sizes the socket.
    addr.send_timeout(1, Duration::from_secs(5)).expect("sent");
    receive_all(&mut inbox, 1);
    let after = socket.send_buffer().expect("SO_SNDBUF");
    // The kernel reports twice what was set, and clamps what may be set to wmem_max (208 KiB
    // on a default Linux): at least 3 frames' worth anywhere. Never lowered (a machine whose
    // default is larger keeps it).
    assert!(
        after >= 3 * crate::wire::frame::FRAME_BYTES,
        "send buffer {before} -> {after} bytes"
    );
    assert!(after >= before, "send buffer {before} -> {after} bytes");
}
