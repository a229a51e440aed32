//! Property tests of every decode path the runtime defines: arbitrary bytes pushed through a
//! real socket into the receivers the runtime uses must give a counted error or a value,
//! never a panic that escapes. And the limits of one frame and one message, from the sending
//! side.

use crate::transport::inbox::{recv_contained, IpcInbox};
use crate::transport::Addr;
use crate::wire::boot::Boot;
use crate::wire::counters::Counters;
use crate::wire::frame::{Frame, FrameBuf, OutBatch, FRAME_BYTES};
use actor_core::{InboxPort, Recv, Report};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use proptest::prelude::*;
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{Duration, Instant};

/// Bytes that postcard writes as they are (a tuple of `u8`s), so the receiver decodes exactly
/// these bytes as whatever type it expects.
struct Raw(Vec<u8>);

impl Serialize for Raw {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(self.0.len())?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("send-only"))
    }
}

/// A channel whose receiver expects `T` and whose sender writes raw bytes.
fn raw_channel<T: Serialize + for<'de> Deserialize<'de>>() -> (IpcSender<Raw>, IpcReceiver<T>) {
    let (tx, rx) = ipc::channel::<T>().expect("channel");
    (tx.to_opaque().to::<Raw>(), rx)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    a: u64,
    b: String,
    c: Option<(i32, f64)>,
}

fn inbox_survives<M>(bytes: Vec<u8>) -> Result<(), TestCaseError>
where
    M: Serialize + for<'de> Deserialize<'de> + Send + 'static,
{
    let (tx, rx) = raw_channel::<Frame<M>>();
    let counters = Counters::new();
    let mut inbox = IpcInbox::new(rx, counters.clone(), "FUZZ", actor_core::log::discard());
    tx.send(Raw(bytes)).expect("send");
    // Whatever the bytes, the receive returns (a message, a stop, or nothing) without panicking.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match inbox.recv_timeout(Duration::from_millis(5)) {
            Recv::Msg(_) => continue,
            Recv::Stop => break,
            Recv::Timeout => {
                let b = counters.get();
                if Counters::load(&b.decode_failed) + Counters::load(&b.received) > 0
                    || Instant::now() > deadline
                {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn receiver_survives<T>(bytes: Vec<u8>) -> Result<(), TestCaseError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let (tx, rx) = raw_channel::<T>();
    tx.send(Raw(bytes)).expect("send");
    // Either decodes, or is an error: the point is that this line returns.
    let _ = recv_contained(&rx, Duration::from_secs(2));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn frames_of_plain_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        inbox_survives::<Small>(bytes)?;
    }

    #[test]
    fn frames_of_messages_with_addresses_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        headed in any::<bool>(),
    ) {
        // Addresses carry channel indices, which ipc-channel reads without a bounds check.
        // Half the cases start like a real frame (Batch, the batch's length, one entry's
        // length, name "A") so that the arbitrary bytes land exactly where a channel index
        // is read.
        let bytes = if headed {
            let entry = 2 + tail.len();
            let mut bytes = vec![0, (4 + entry) as u8];
            bytes.extend_from_slice(&(entry as u32).to_le_bytes());
            bytes.extend_from_slice(&[1, b'A']);
            bytes.extend(tail);
            bytes
        } else {
            tail
        };
        inbox_survives::<Addr<u8>>(bytes)?;
    }

    #[test]
    fn a_bad_entry_never_costs_a_good_one(
        entries in proptest::collection::vec(
            prop_oneof![
                any::<(u64, String)>().prop_map(|(a, b)| Ok(Small { a, b, c: None })),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(Err),
            ],
            0..40,
        ),
    ) {
        // A frame of good messages and arbitrary entries: every good one comes out, in order,
        // and every entry is either a message or a counted failure.
        let mut buf = FrameBuf::default();
        for e in &entries {
            match e {
                Ok(m) => buf.push(m, usize::MAX).map(|_| ()),
                Err(bytes) => buf.push(&Raw(bytes.clone()), usize::MAX).map(|_| ()),
            }
            .expect("fits");
        }
        let bytes = postcard::to_stdvec(&OutBatch(buf.bytes())).expect("encode");
        let Ok(Frame::Batch(got)) = postcard::from_bytes::<Frame<Small>>(&bytes) else {
            return Err(TestCaseError::fail("the frame itself must decode"));
        };
        prop_assert_eq!(got.msgs.len() as u64 + got.failed, entries.len() as u64);
        let mut decoded = got.msgs.iter();
        for good in entries.iter().filter_map(|e| e.as_ref().ok()) {
            // Garbage may happen to decode as a Small: skip those, never a good one.
            prop_assert!(decoded.any(|m| m == good), "{:?} lost", good);
        }
    }

    #[test]
    fn reports_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        inbox_survives::<Report<String>>(bytes)?;
    }

    #[test]
    fn bootstrap_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        receiver_survives::<Boot>(bytes)?;
    }

    #[test]
    fn setups_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        receiver_survives::<crate::handshake::Setup<Small, Small, String>>(bytes)?;
    }
}

#[test]
fn a_message_of_the_wrong_type_is_counted_not_fatal() {
    let (tx, rx) = ipc::channel::<Frame<String>>().expect("channel");
    let counters = Counters::new();
    let mut inbox = IpcInbox::new(rx, counters.clone(), "TYPED", actor_core::log::discard());
    // An address of the wrong type pointing at this inbox: postcard cannot read the u64s as
    // the strings this inbox expects (a length far beyond the frame).
    let wrong: IpcSender<Frame<Vec<u64>>> = tx.to_opaque().to();
    wrong
        .send(Frame::Batch(vec![vec![u64::MAX; 4]].into()))
        .expect("send");
    let right: IpcSender<Frame<String>> = wrong.to_opaque().to();
    right
        .send(Frame::Batch(vec!["after".to_string()].into()))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Recv::Msg(m) => break m,
            _ if Instant::now() > deadline => panic!("the good message never came"),
            _ => continue,
        }
    };
    assert_eq!(got, "after");
    assert_eq!(Counters::load(&counters.get().decode_failed), 1);
}

#[test]
fn a_bad_message_costs_only_itself_not_its_frame() {
    let (tx, rx) = raw_channel::<Frame<String>>();
    let counters = Counters::new();
    let mut inbox = IpcInbox::new(rx, counters.clone(), "MIXED", actor_core::log::discard());
    // One frame: a string, an entry that is not one (invalid UTF-8), another string.
    let mut buf = FrameBuf::default();
    buf.push(&"first".to_string(), usize::MAX).expect("fits");
    buf.push(&(3u8, [0xffu8; 3]), usize::MAX).expect("fits");
    buf.push(&"third".to_string(), usize::MAX).expect("fits");
    let bytes = postcard::to_stdvec(&OutBatch(buf.bytes())).expect("encode");
    tx.send(Raw(bytes)).expect("send");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "got only {got:?}");
        if let Recv::Msg(m) = inbox.recv_timeout(Duration::from_millis(50)) {
            got.push(m);
        }
    }
    assert_eq!(got, ["first", "third"]);
    let b = counters.get();
    assert_eq!(Counters::load(&b.decode_failed), 1);
    assert_eq!(Counters::load(&b.received), 2);
}

/// Waits until `cond` holds, under a deadline.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn frames_split_when_messages_carry_many_channels_and_none_is_lost() {
    // Each message carries 40 channels: two in one frame would be 80, over ipc-channel's 64.
    type Handles = Vec<IpcSender<u8>>;
    let (tx, rx) = ipc::channel::<Frame<Handles>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("HANDLES".into(), tx, counters.clone(), 64, usize::MAX);
    let (one, _keep) = ipc::channel::<u8>().expect("channel");
    for _ in 0..10 {
        addr.try_send(vec![one.clone(); 40])
            .expect("room in the mailbox");
    }
    let mut received = 0;
    wait_for("10 messages", || {
        while let Ok(Frame::Batch(batch)) = rx.try_recv() {
            received += batch.msgs.len();
        }
        received == 10
    });
    let b = counters.get();
    assert_eq!(Counters::load(&b.shipped), 10);
    assert_eq!(Counters::load(&b.undelivered), 0);

    // One message that alone carries too many is refused and counted, and the next one goes.
    addr.try_send(vec![one.clone(); 70]).expect("accepted");
    addr.try_send(vec![one.clone(); 1]).expect("accepted");
    wait_for(
        "the small message after the refused one",
        || matches!(rx.try_recv(), Ok(Frame::Batch(m)) if m.msgs.len() == 1),
    );
    assert_eq!(Counters::load(&b.undelivered), 1);
    assert_eq!(Counters::load(&b.refused), 1);
    assert_eq!(Counters::load(&b.accepted), 12);
}

/// Takes every message that arrives in `rx` until `n` have, under a deadline; returns them
/// frame by frame.
fn frames_of<M>(rx: &IpcReceiver<Frame<M>>, n: usize) -> Vec<Vec<M>>
where
    M: Serialize + for<'de> Deserialize<'de>,
{
    let mut frames = Vec::new();
    let mut count = 0;
    wait_for(&format!("{n} messages"), || {
        while let Ok(Frame::Batch(batch)) = rx.try_recv() {
            count += batch.msgs.len();
            frames.push(batch.msgs);
        }
        count >= n
    });
    frames
}

#[test]
fn a_message_over_the_limit_is_refused_counted_and_the_next_one_goes() {
    let (tx, rx) = ipc::channel::<Frame<Vec<u8>>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("SMALL".into(), tx, counters.clone(), 64, 1000);
    assert_eq!(addr.max_message_bytes(), 1000);
    addr.try_send(vec![1; 2000])
        .expect("accepted: the size is known only when encoded");
    addr.try_send(vec![2; 998]).expect("accepted");
    // 998 bytes and a 2-byte length: exactly the limit.
    let frames = frames_of(&rx, 1);
    assert_eq!(frames.concat(), vec![vec![2; 998]]);
    let b = counters.get();
    wait_for("the counts", || Counters::load(&b.shipped) == 1);
    assert_eq!(Counters::load(&b.accepted), 2);
    assert_eq!(Counters::load(&b.refused), 1);
    assert_eq!(
        Counters::load(&b.undelivered),
        1,
        "a refused message is a dead letter"
    );
    assert!(rx.try_recv().is_err(), "nothing of the refused one arrives");
}

#[test]
fn the_direct_path_keeps_the_limit() {
    // A Drop-free message type goes straight into the socket when the actor waits: its
    // size must be checked there too.
    let (tx, rx) = ipc::channel::<Frame<[u64; 8]>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("ARRAYS".into(), tx, counters.clone(), 64, 32);
    // 80 bytes encoded (ten per u64::MAX).
    addr.try_send([u64::MAX; 8]).expect("accepted");
    let b = counters.get();
    wait_for("the refusal", || Counters::load(&b.refused) == 1);
    assert_eq!(Counters::load(&b.shipped), 0);
    assert!(rx.try_recv().is_err());
}

#[test]
fn frames_close_at_their_byte_size() {
    // 20 messages of 100 KiB handed to a writer at once: frames of at most three (the third
    // crosses FRAME_BYTES and is the last in), never one frame of 2 MiB.
    let (tx, rx) = ipc::channel::<Frame<Vec<u8>>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("BIG".into(), tx, counters.clone(), 64, usize::MAX);
    let payload = 40 * 1024;
    // Read while shipping: a few frames fill the socket's buffer.
    let reader = std::thread::spawn(move || frames_of(&rx, 20));
    let shipped = addr.ship_now((0..20u8).map(|i| vec![i; payload]).collect());
    assert_eq!(shipped, 20);
    let frames = reader.join().expect("the reader");
    let per_frame = FRAME_BYTES / payload + 1;
    assert!(
        frames.iter().all(|f| f.len() <= per_frame),
        "frame sizes {:?}",
        frames.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(frames.len(), 20usize.div_ceil(per_frame));
    let order: Vec<u8> = frames.concat().iter().map(|m| m[0]).collect();
    assert_eq!(order, (0..20).collect::<Vec<u8>>(), "in order");
}

#[test]
fn an_address_with_a_channel_index_out_of_range_is_counted_not_fatal() {
    // ipc-channel indexes the channels a frame carries by a number read from the frame,
    // without a bounds check: here index 5 of a frame that carries none. The panic is
    // contained to that message.
    let (tx, rx) = raw_channel::<Frame<Addr<u8>>>();
    let counters = Counters::new();
    let mut inbox = IpcInbox::new(rx, counters.clone(), "ADDRS", actor_core::log::discard());
    let entry = [1, b'A', 5];
    let mut bytes = vec![0, (4 + entry.len()) as u8];
    bytes.extend_from_slice(&(entry.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&entry);
    tx.send(Raw(bytes)).expect("send");
    wait_for("the failure to be counted", || {
        let _ = inbox.recv_timeout(Duration::from_millis(20));
        Counters::load(&counters.get().decode_failed) == 1
    });
    assert_eq!(Counters::load(&counters.get().received), 0);
}

#[test]
fn a_refused_message_that_left_many_channels_behind_is_counted_once() {
    // Refused at the limit after ~70 of its channels were encoded: ipc-channel's list holds
    // them, the empty frame that takes them away is itself too many for one send.
    type Handles = Vec<IpcSender<u8>>;
    let (tx, rx) = ipc::channel::<Frame<Handles>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("HANDLES".into(), tx, counters.clone(), 64, 70);
    let (one, _keep) = ipc::channel::<u8>().expect("channel");
    addr.try_send(vec![one.clone(); 100]).expect("accepted");
    addr.try_send(vec![one.clone(); 2]).expect("accepted");
    let frames = frames_of(&rx, 1);
    assert_eq!(frames.concat().len(), 1);
    let b = counters.get();
    wait_for("the counts", || Counters::load(&b.shipped) == 1);
    assert_eq!(Counters::load(&b.refused), 1);
    assert_eq!(Counters::load(&b.undelivered), 1);
}

/// A message whose `Serialize` fails, panics, or works, by its number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Fragile(u8);

impl Serialize for Fragile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => Err(serde::ser::Error::custom("refuses to encode")),
            1 => panic!("panics while encoding"),
            n => s.serialize_newtype_struct("Fragile", &n),
        }
    }
}

#[test]
fn messages_whose_serialize_fails_or_panics_are_refused_alone() {
    let (tx, rx) = ipc::channel::<Frame<Fragile>>().expect("channel");
    let counters = Counters::new();
    let addr = Addr::new("FRAGILE".into(), tx, counters.clone(), 64, usize::MAX);
    for n in [0, 2, 1, 3] {
        addr.try_send(Fragile(n)).expect("accepted");
    }
    // The writer goes on after both, and the inbox is not taken for gone.
    let got = frames_of(&rx, 2).concat();
    assert_eq!(got, vec![Fragile(2), Fragile(3)]);
    let b = counters.get();
    wait_for("the counts", || Counters::load(&b.shipped) == 2);
    assert_eq!(Counters::load(&b.refused), 2);
    assert_eq!(Counters::load(&b.undelivered), 2);
    assert!(!addr.is_gone());
    addr.try_send(Fragile(4)).expect("still open");
    assert_eq!(frames_of(&rx, 1).concat(), vec![Fragile(4)]);
}

#[test]
fn encoded_messages_get_the_checks_of_typed_ones_and_fail_to_decode_in_the_receiver() {
    let (tx, rx) = ipc::channel::<Frame<String>>().expect("channel");
    let counters = Counters::new();
    let mut inbox = IpcInbox::new(rx, counters.clone(), "RELAYED", actor_core::log::discard());
    let addr = Addr::new("RELAYED".into(), tx, counters.clone(), 64, 100);
    assert!(addr.takes_encoded());
    let encoded = |s: &str| bytes::Bytes::from(postcard::to_allocvec(s).expect("encodes"));
    addr.try_send_encoded(encoded("first")).expect("accepted");
    // Over the actor's limit of 100 bytes: refused by the writer, as a typed one would be.
    addr.try_send_encoded(encoded(&"x".repeat(200)))
        .expect("accepted: the writer checks the size");
    // A length and invalid UTF-8: not a String, found out only by the receiver.
    addr.try_send_encoded(bytes::Bytes::from_static(&[2, 0xff, 0xfe]))
        .expect("accepted");
    addr.try_send("typed".to_string()).expect("accepted");
    addr.send_encoded_timeout(encoded("last"), Duration::from_secs(5))
        .expect("accepted");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 3 {
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Recv::Msg(m) => got.push(m),
            _ if Instant::now() > deadline => panic!("only {got:?} came"),
            _ => continue,
        }
    }
    assert_eq!(got, ["first", "typed", "last"]);
    let b = counters.get();
    // The writer counts its batch's refusals once the batch is shipped.
    wait_for("the refusal", || Counters::load(&b.undelivered) == 1);
    assert_eq!(Counters::load(&b.accepted), 5);
    assert_eq!(Counters::load(&b.refused), 1);
    assert_eq!(Counters::load(&b.decode_failed), 1);
    assert_eq!(addr.decode_failed_count(), 1);
}
