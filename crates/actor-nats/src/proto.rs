//! What travels through the NATS server between nodes: subjects and payloads.
//!
//! Every subject starts with `mpactor.<cluster>.`, so clusters sharing a server never see
//! each other's traffic:
//!
//! | subject | from → to | payload |
//! |---|---|---|
//! | `hb.<node>` | every joined node → everyone, every heartbeat interval | [`Heartbeat`] |
//! | `lookup.<actor>` | a sender → the node that published the actor (request/reply) | [`Published`] |
//! | `in.<actor>` | a sending process → the actor's node | a batch: [`BatchHead`] + messages |
//! | `ack.<process>` | the actor's node → the sending process | [`Ack`] |

use serde::{Deserialize, Serialize};

/// The most messages one publish carries. Batching is what makes a message through the
/// server cheap (one NATS frame, one server routing decision for many messages).
pub(crate) const MAX_BATCH: usize = 1024;
/// The most bytes of messages one publish carries: well below NATS' default 1 MiB limit.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The subject of `kind` for `name` in `cluster`.
pub(crate) fn subject(cluster: &str, kind: &str, name: &str) -> String {
    format!("mpactor.{cluster}.{kind}.{name}")
}

/// Whether `name` can be one token of a NATS subject: not empty, no dots, wildcards or
/// white space.
pub(crate) fn valid_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && c != '.' && c != '*' && c != '>')
}

/// A node's sign of life.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// The node's name.
    pub node: String,
    /// Chosen at random when the node joined: a node that comes back under the same name
    /// has another, so its peers know that what was on its way to the old one is in doubt.
    pub boot: u64,
}

/// The answer to a lookup: where the actor is and what it takes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Published {
    /// The node that runs it.
    pub node: String,
    /// That node's boot id.
    pub boot: u64,
    /// `std::any::type_name` of its message type.
    pub type_name: String,
    /// Its mailbox capacity: the most a sender may have queued towards it.
    pub capacity: u32,
}

/// The head of a batch of messages (or, with `count == 0`, a request for credit).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchHead {
    /// The sending link: `<process>.<actor>.<session>`.
    pub link: String,
    /// Where to send acknowledgements (`ack.<process>`).
    pub reply: String,
    /// The receiving node's boot id as the sender knows it.
    pub boot: u64,
    /// The sequence number of the first message (per link session, from 0).
    pub seq: u64,
    /// How many messages follow.
    pub count: u32,
    /// How many more the sender has queued: what it would like credit for.
    pub demand: u32,
}

/// The receiving node's answer to a link: what became of its messages, and how far it may
/// send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ack {
    /// The link it answers.
    pub link: String,
    /// The receiving node's boot id.
    pub boot: u64,
    /// Of this link session's messages, how many the actor was handed (cumulative).
    pub delivered: u64,
    /// ... and how many were dead-lettered: lost in transit (a gap in the sequence), not
    /// decodable, or refused by a mailbox that stayed full or is gone (cumulative).
    pub dead: u64,
    /// The link may send messages with sequence numbers below this.
    pub credit_upto: u64,
}

/// Encodes a batch: the head's length (4 bytes, little endian), the head, then each message
/// as its length (a varint, as postcard encodes a `u32`) and the bytes it was encoded to,
/// copied once, straight into the payload. The lengths let the receiving node split the
/// batch without decoding it: each message's bytes go on to the actor's inbox as they are
/// (an inbox entry is exactly a message's postcard encoding).
pub(crate) fn encode_batch<B: AsRef<[u8]>>(head: &BatchHead, messages: &[B]) -> Vec<u8> {
    let head = postcard::to_allocvec(head).unwrap_or_default();
    let size: usize = messages.iter().map(|m| m.as_ref().len() + 5).sum();
    let mut out = Vec::with_capacity(4 + head.len() + size);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    for m in messages {
        let m = m.as_ref();
        push_varint(&mut out, m.len() as u32);
        out.extend_from_slice(m);
    }
    out
}

/// Appends `n` as a varint (7 bits a byte, low first): postcard's encoding of a `u32`.
fn push_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Splits a batch into its head and the messages' bytes; `None` if it is malformed.
pub(crate) fn decode_batch(payload: &[u8]) -> Option<(BatchHead, &[u8])> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let head = payload.get(4..4 + len)?;
    let head = postcard::from_bytes(head).ok()?;
    Some((head, payload.get(4 + len..)?))
}

/// Takes the next message's bytes off the front of a batch's body; `None` if the body is
/// truncated or its length is malformed (where the next message starts is then unknown).
pub(crate) fn next_message<'a>(body: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = postcard::take_from_bytes::<u32>(body).ok()?;
    let len = usize::try_from(len).ok()?;
    if len > rest.len() {
        return None;
    }
    let (msg, rest) = rest.split_at(len);
    *body = rest;
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_garbage_is_refused() {
        let head = BatchHead {
            link: "p.a.1".into(),
            reply: "mpactor.c.ack.p".into(),
            boot: 7,
            seq: 3,
            count: 2,
            demand: 5,
        };
        let body = [
            postcard::to_allocvec(&10u64).unwrap(),
            postcard::to_allocvec(&11u64).unwrap(),
        ];
        let bytes = encode_batch(&head, &body);
        let (back, rest) = decode_batch(&bytes).unwrap();
        assert_eq!((back.seq, back.count, back.demand), (3, 2, 5));
        let mut rest = rest;
        let a = next_message(&mut rest).unwrap();
        let b = next_message(&mut rest).unwrap();
        assert_eq!(postcard::from_bytes::<u64>(a).unwrap(), 10);
        assert_eq!(postcard::from_bytes::<u64>(b).unwrap(), 11);
        assert!(rest.is_empty() && next_message(&mut rest).is_none());
        assert!(decode_batch(&[1, 2]).is_none());
        assert!(decode_batch(&[200, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn long_messages_keep_their_length_and_a_lying_length_is_refused() {
        let head = BatchHead {
            link: "p.a.1".into(),
            reply: "r".into(),
            boot: 1,
            seq: 0,
            count: 2,
            demand: 0,
        };
        let long = vec![7u8; 300];
        let bytes = encode_batch(&head, &[long.clone(), vec![1u8]]);
        let (_, mut rest) = decode_batch(&bytes).unwrap();
        assert_eq!(next_message(&mut rest).unwrap(), &long[..]);
        assert_eq!(next_message(&mut rest).unwrap(), &[1u8][..]);
        // A length past the end of the body.
        let mut lying: &[u8] = &[5, 1, 2];
        assert!(next_message(&mut lying).is_none());
    }

    #[test]
    fn subject_tokens_are_checked() {
        assert!(valid_token("consumer-1"));
        assert!(!valid_token("a.b"));
        assert!(!valid_token("a*"));
        assert!(!valid_token(""));
        assert_eq!(subject("c", "in", "x"), "mpactor.c.in.x");
    }
}
