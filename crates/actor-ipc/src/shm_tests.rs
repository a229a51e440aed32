//! Large messages from the sending side to the socket and back: every frame fits one packet,
//! the payload arrives intact (and in place for `SharedBytes`), the byte budget says `Full`,
//! and no region outlives its message.

use crate::sys::fd::borrow;
use crate::transport::inbox::IpcInbox;
use crate::transport::Addr;
use crate::wire::counters::Counters;
use crate::wire::frame::Frame;
use crate::SharedBytes;
use actor_core::{InboxPort, Recv};
use ipc_channel::ipc::{self, IpcReceiver};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::time::{Duration, Instant};

/// ipc-channel sends a message of up to this as one packet (212 992 bytes of socket buffer,
/// less its headers): larger ones in fragments.
const ONE_PACKET: usize = 200 * 1024;

/// The size of the next packet in the socket, without taking it; `None` if there is none.
fn next_packet_len(fd: std::os::fd::BorrowedFd<'_>) -> Option<usize> {
    use rustix::net::{recv, RecvFlags};
    // `recv` has no room for control data: a peek with room would install a copy of the
    // packet's descriptors in this process each time. With `TRUNC` it says the packet's
    // whole length.
    let mut byte = [0u8; 1];
    let flags = RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
    match recv(fd, &mut byte, flags) {
        Ok((_, n)) if n > 0 => Some(n),
        _ => None,
    }
}

/// Receives frames until `n` messages arrived, checking the size of every packet first.
fn receive<M>(rx: &IpcReceiver<Frame<M>>, n: usize) -> (Vec<M>, usize)
where
    M: Serialize + for<'de> Deserialize<'de>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let mut largest = 0;
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} arrived",
            got.len()
        );
        let Some(len) = next_packet_len(borrow(rx)) else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        largest = largest.max(len);
        assert!(len <= ONE_PACKET, "a frame of {len} bytes");
        match rx.try_recv_timeout(Duration::from_secs(5)) {
            Ok(Frame::Batch(b)) => {
                assert_eq!(b.failed, 0, "{:?}", b.first_error);
                got.extend(b.msgs);
            }
            Ok(Frame::Stop(_)) => {}
            Err(e) => panic!("receive: {e:?}"),
        }
    }
    (got, largest)
}

/// The most regions one writer keeps (free, in flight and held).
const MAX_REGIONS: usize = 32;

/// The tests that make regions run one at a time: one counts the regions of the process.
pub(crate) static ONE_AT_A_TIME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Descriptors of this process that are memfds of at least a region's size, and mappings of
/// such memfds (the shared counters of other tests are smaller).
fn regions() -> (usize, usize) {
    let big = |path: &std::path::Path| {
        std::fs::metadata(path).is_ok_and(|m| m.len() >= crate::wire::shm::SHM_THRESHOLD as u64)
    };
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:"))
                        && big(&e.path())
                })
                .count()
        })
        .unwrap_or(0);
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| {
            m.lines()
                .filter(|l| l.contains("/memfd:"))
                .filter(|l| {
                    let range = l.split_whitespace().next().unwrap_or("0-0");
                    let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
                    let len = usize::from_str_radix(b, 16).unwrap_or(0)
                        - usize::from_str_radix(a, 16).unwrap_or(0);
                    len >= crate::wire::shm::SHM_THRESHOLD
                })
                .count()
        })
        .unwrap_or(0);
    (fds, maps)
}

#[test]
fn large_messages_travel_as_small_frames_and_arrive_intact() {
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<ByteBuf>>().expect("channel");
    let addr = Addr::new("BIG".into(), tx, Counters::new(), 64, usize::MAX);
    // Small and large ones mixed, up to 3 MiB, in order.
    let sizes: Vec<usize> = (0..24)
        .map(|i| match i % 4 {
            0 => 10,
            1 => 70 * 1024,
            2 => 1 << 20,
            _ => (3 << 20) + i,
        })
        .collect();
    let msgs: Vec<ByteBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| ByteBuf::from(vec![i as u8; *n]))
        .collect();
    let n = msgs.len();
    let reader = std::thread::spawn(move || receive(&rx, n));
    assert_eq!(addr.ship_now(msgs), n as u64);
    let (got, largest) = reader.join().expect("the reader");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.len(), sizes[i], "message {i}");
        assert!(m.iter().all(|b| *b == i as u8), "message {i} intact");
    }
    assert!(
        largest < 64 * 1024,
        "frames of references are small: {largest}"
    );
}

#[derive(Serialize, Deserialize)]
struct Blob {
    seq: u32,
    data: SharedBytes,
}

#[test]
fn shared_bytes_arrive_in_place_and_go_back_when_dropped() {
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<Blob>>().expect("channel");
    let addr = Addr::new("BLOB".into(), tx, Counters::new(), 64, usize::MAX);
    let before = regions();
    assert_eq!(before, (0, 0));
    for round in 0..3u32 {
        let msgs: Vec<Blob> = (0..50u32)
            .map(|i| Blob {
                seq: i,
                data: SharedBytes::from(vec![(round + i) as u8; 256 * 1024]),
            })
            .collect();
        // The messages are shipped from another thread, as a writer does.
        let shipper = addr.clone();
        let sending = std::thread::spawn(move || shipper.ship_now(msgs));
        let got = receive(&rx, 50).0;
        assert_eq!(sending.join().expect("the shipper"), 50);
        for b in &got {
            assert!(b.data.is_mapped(), "read in place");
            assert!(b.data.iter().all(|x| *x == (round + b.seq) as u8));
        }
    }
    // Every region was released with its message; the writer of `ship_now` is gone. Nothing
    // of them is left open or mapped in this process.
    assert_eq!(regions(), (0, 0), "no region left open or mapped");
}

#[test]
fn the_byte_budget_says_full_and_frees_up_as_the_actor_receives() {
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<ByteBuf>>().expect("channel");
    // 4 MiB of budget, room for 1000 messages.
    let addr = Addr::new_bounded(
        "SLOW".into(),
        tx,
        Counters::new(),
        1000,
        usize::MAX,
        4 << 20,
    );
    let mb = || ByteBuf::from(vec![7u8; 1 << 20]);
    let mut accepted = 0;
    let full = loop {
        match addr.try_send(mb()) {
            Ok(()) => accepted += 1,
            Err(e) if e.is_full() => break true,
            Err(e) => panic!("{e}"),
        }
        if accepted > 100 {
            break false;
        }
        // Give the writer the time to encode and ship what was accepted.
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(full, "the byte budget never said Full");
    assert!(
        (3..=6).contains(&accepted),
        "accepted {accepted} MiB with a 4 MiB budget"
    );
    // Nothing reads: send_timeout waits out its deadline.
    let t0 = Instant::now();
    let e = addr
        .send_timeout(mb(), Duration::from_millis(100))
        .expect_err("no room");
    assert!(e.is_timeout(), "{e}");
    assert!(t0.elapsed() >= Duration::from_millis(100));
    // The actor takes what was shipped: room again.
    let (got, _) = receive(&rx, accepted);
    assert_eq!(got.len(), accepted);
    drop(got);
    addr.send_timeout(mb(), Duration::from_secs(5))
        .expect("room once received");
}

#[test]
fn a_large_message_over_the_limit_is_refused_alone_with_the_same_error() {
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<ByteBuf>>().expect("channel");
    let counters = Counters::new();
    // The actor takes at most 1 MiB: 2 MiB is refused part way into its region, the 512 KiB
    // after it goes (in shared memory too).
    let addr = Addr::new("LIMITED".into(), tx, counters.clone(), 64, 1 << 20);
    let msgs = vec![
        ByteBuf::from(vec![1u8; 2 << 20]),
        ByteBuf::from(vec![2u8; 512 << 10]),
    ];
    let reader = std::thread::spawn(move || receive(&rx, 1).0);
    assert_eq!(addr.ship_now(msgs), 1, "one shipped, one refused");
    let got = reader.join().expect("the reader");
    assert_eq!(got.len(), 1);
    assert!(got[0].len() == 512 << 10 && got[0].iter().all(|b| *b == 2));
    assert_eq!(Counters::load(&counters.get().refused), 1);
    assert_eq!(
        regions(),
        (0, 0),
        "the refused message's region is not left behind"
    );
}

/// Minor page faults of the calling thread so far (`/proc/thread-self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
    // Fields after the command (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')').expect("(comm)") + 2..];
    rest.split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt")
}

/// An inbox with a throw-away logger, as an actor's process has one.
fn inbox_of<M>(rx: IpcReceiver<Frame<M>>, counters: Counters) -> IpcInbox<M>
where
    M: Serialize + serde::de::DeserializeOwned + Send,
{
    let log = slog::Logger::root(slog::Discard, slog::o!());
    IpcInbox::new(rx, counters, "KEEP", log)
}

/// Receives one message through the inbox, within a deadline.
fn next<M>(inbox: &mut IpcInbox<M>) -> M
where
    M: Serialize + serde::de::DeserializeOwned + Send,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match inbox.recv_timeout(Duration::from_millis(100)) {
            Recv::Msg(m) => return m,
            Recv::Timeout => assert!(Instant::now() < deadline, "nothing arrived"),
            Recv::Stop => panic!("stopped"),
        }
    }
}

#[test]
fn an_inbox_maps_a_reused_region_once_not_per_message() {
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<Blob>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("KEEP".into(), tx, counters.clone(), 64, usize::MAX);
    let mut inbox = inbox_of(rx, counters);
    const N: u32 = 200;
    const MIB: usize = 1 << 20;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            let blob = Blob {
                seq: i,
                data: SharedBytes::from(vec![i as u8; MIB]),
            };
            addr.send_timeout(blob, Duration::from_secs(10))
                .expect("sent");
        }
        addr
    });
    // Every page of every payload is read, as a consumer would; from the 20th message on
    // (the writer's regions all made and mapped by then) the regions are ones the inbox has
    // mapped before: reading them faults nothing in. Mapped afresh, each message costs at
    // least 16 faults (the kernel maps 64 KiB around a read fault), 256 without that.
    let mut faults_from = 0;
    for i in 0..N {
        if i == 20 {
            faults_from = minor_faults();
        }
        let blob = next(&mut inbox);
        assert_eq!(blob.seq, i);
        assert!(blob.data.is_mapped(), "read in place");
        assert!(
            blob.data.iter().step_by(4096).all(|b| *b == i as u8),
            "message {i} intact"
        );
    }
    let faults = minor_faults() - faults_from;
    assert!(
        faults < u64::from(N - 20),
        "{faults} page faults over {} messages of 1 MiB: regions were mapped afresh",
        N - 20
    );
    let kept = inbox.kept_mappings();
    assert!(
        (1..=MAX_REGIONS).contains(&kept),
        "the inbox keeps the writer's regions mapped: {kept}"
    );
    // Idle: the writer closes its regions after 1 s, and the inbox lets go of its mappings
    // of them at its next look. The process holds no region then.
    let addr = sender.join().expect("the sender");
    let deadline = Instant::now() + Duration::from_secs(20);
    while regions() != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "regions left after the idle trim: {:?}, the inbox keeps {}",
            regions(),
            inbox.kept_mappings()
        );
        assert!(matches!(
            inbox.recv_timeout(Duration::from_millis(50)),
            Recv::Timeout
        ));
    }
    assert_eq!(inbox.kept_mappings(), 0);
    drop(addr);
}

#[test]
fn a_new_inbox_on_the_same_socket_maps_the_regions_it_has_not_seen() {
    // A restarted actor: a new inbox (no mappings) receives from regions the writer reuses
    // and that the previous inbox had mapped; each arrives with its descriptor, intact.
    let _one = ONE_AT_A_TIME.lock();
    let (tx, rx) = ipc::channel::<Frame<ByteBuf>>().expect("channel");
    let counters = Counters::new();
    let dup = crate::sys::fd::duplicate(&rx).expect("a second receiver");
    let addr = Addr::new("KEEP".into(), tx, counters.clone(), 64, usize::MAX);
    let msg = |i: u32| ByteBuf::from(vec![i as u8; 300 * 1024]);
    let mut first = inbox_of(rx, counters.clone());
    for i in 0..10 {
        addr.send_timeout(msg(i), Duration::from_secs(10))
            .expect("sent");
        assert!(next(&mut first).iter().all(|b| *b == i as u8));
    }
    assert!(first.kept_mappings() > 0);
    drop(first);
    let mut second = inbox_of(dup, counters);
    assert_eq!(second.kept_mappings(), 0);
    for i in 10..20 {
        addr.send_timeout(msg(i), Duration::from_secs(10))
            .expect("sent");
        let got = next(&mut second);
        assert!(got.len() == 300 * 1024 && got.iter().all(|b| *b == i as u8));
    }
    assert!(second.kept_mappings() > 0);
}

/// A payload whose encoding can be held up: the writer stays inside `serialize` of a gated
/// message until the test opens the gate (or 10 s pass), as a writer that has not been
/// scheduled yet would.
#[derive(Deserialize)]
struct Gated {
    data: ByteBuf,
    #[serde(skip)]
    gated: bool,
}

static GATE: parking_lot::Mutex<bool> = parking_lot::Mutex::new(false);
static GATE_OPENED: parking_lot::Condvar = parking_lot::Condvar::new();

impl Serialize for Gated {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.gated {
            let mut open = GATE.lock();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !*open && Instant::now() < deadline {
                GATE_OPENED.wait_until(&mut open, deadline);
            }
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Gated", 1)?;
        st.serialize_field("data", &self.data)?;
        st.end()
    }
}

/// A new producer of large messages (nothing measured by its writer, nothing published by
/// earlier senders): a waiting send lets one message of unknown size go at a time, until the
/// writer has measured it. Before, it queued as many as the writer took to encode the first,
/// each charged its size in memory (24 bytes for a 1 MiB `Vec`), far past the byte budget.
#[test]
fn a_new_producer_of_unknown_size_waits_for_the_first_size_before_it_queues_more() {
    let _one = ONE_AT_A_TIME.lock();
    *GATE.lock() = false;
    let (tx, rx) = ipc::channel::<Frame<Gated>>().expect("channel");
    // 4 MiB of budget: four of these messages at most.
    let addr = Addr::new_bounded("NEW".into(), tx, Counters::new(), 1000, usize::MAX, 4 << 20);
    let mb = |gated| Gated {
        data: ByteBuf::from(vec![7u8; 1 << 20]),
        gated,
    };
    // The first is taken; its writer is held inside its encoding.
    addr.send_timeout(mb(true), Duration::from_secs(5))
        .expect("the first is taken");
    let t0 = Instant::now();
    let mut queued = 0;
    while queued < 10 {
        match addr.send_timeout(mb(false), Duration::from_millis(50)) {
            Ok(()) => queued += 1,
            Err(e) if e.is_timeout() => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        queued, 0,
        "{queued} more of unknown size were queued while the first was being measured"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "it waited its timeout"
    );
    // Measured: the budget applies as usual (three of a little over 1 MiB fit in 4 MiB while
    // nothing reads), and all arrive.
    *GATE.lock() = true;
    GATE_OPENED.notify_all();
    for _ in 0..2 {
        addr.send_timeout(mb(false), Duration::from_secs(10))
            .expect("room within the budget once the size is known");
    }
    let e = addr
        .send_timeout(mb(false), Duration::from_millis(50))
        .expect_err("the budget is full");
    assert!(e.is_timeout(), "{e}");
    let (got, _) = receive(&rx, 3);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.data.len() == 1 << 20));
}
