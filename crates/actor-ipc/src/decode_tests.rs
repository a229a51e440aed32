//! Property tests of every decode path the runtime defines: arbitrary bytes pushed through a
//! real socket into the receivers the runtime uses must give a counted error or a value,
//! never a panic that escapes. And the channel limit of one frame, from the sending side.

use crate::addr::{Addr, Frame};
use crate::bootstrap::Boot;
use crate::counters::Counters;
use crate::inbox::{recv_contained, IpcInbox};
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
        // Half the cases start like a real frame (Batch, one message, name "A") so that the
        // arbitrary bytes land exactly where a channel index is read.
        let mut bytes = if headed { vec![0, 1, 1, b'A'] } else { Vec::new() };
        bytes.extend(tail);
        inbox_survives::<Addr<u8>>(bytes)?;
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
        receiver_survives::<crate::bootstrap::Setup<Small, Small, String>>(bytes)?;
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
        .send(Frame::Batch(vec![vec![u64::MAX; 4]]))
        .expect("send");
    let right: IpcSender<Frame<String>> = wrong.to_opaque().to();
    right
        .send(Frame::Batch(vec!["after".to_string()]))
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
    let addr = Addr::new("HANDLES".into(), tx, counters.clone(), 64);
    let (one, _keep) = ipc::channel::<u8>().expect("channel");
    for _ in 0..10 {
        addr.try_send(vec![one.clone(); 40])
            .expect("room in the mailbox");
    }
    let mut received = 0;
    wait_for("10 messages", || {
        while let Ok(Frame::Batch(msgs)) = rx.try_recv() {
            received += msgs.len();
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
        || matches!(rx.try_recv(), Ok(Frame::Batch(m)) if m.len() == 1),
    );
    assert_eq!(Counters::load(&b.undelivered), 1);
    assert_eq!(Counters::load(&b.accepted), 12);
}
