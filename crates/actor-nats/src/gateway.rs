//! The receiving side: a published actor's gateway in its node's root. It answers lookups,
//! takes batches from sending processes, hands their messages to the local actor's
//! [`Addr`], grants credit from the actor's free mailbox slots, and confirms to each sender
//! what was handed over.
//!
//! Batches are taken on the connection's runtime thread itself, as the client hands them
//! over: decoded there and put into the actor's mailbox with the non-blocking send (which
//! writes a small message straight into the actor's socket when it waits), and acknowledged
//! from there. A thread hop at the receiving node costs a round trip more than the work
//! does. Only what a full mailbox refused goes to the gateway's own thread, which waits for
//! room (bounded); that thread also confirms what the actor handled while nothing arrives.
//!
//! A message for an actor in a process of its own is not decoded here: its bytes (the
//! batch carries each message's length) go on to the actor's inbox as they are, and the
//! actor's process decodes them, as it decodes every message. Only for an actor running as
//! a thread, a message type that may hold channels or addresses (one with `Drop`), and
//! messages of [`SHM_THRESHOLD`] bytes or more (which travel in shared memory) does the
//! gateway decode and send the message typed.

use crate::proto::{self, Ack, Published};
use crate::shared::Shared;
use actor_ipc::{Addr, SHM_THRESHOLD};
use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_util::future::{self, Either};
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Credit a link keeps even with nothing queued, so that a lone message (a request, a
/// reply) goes out at once instead of asking first.
const STANDING_CREDIT: u64 = 16;
/// A link not heard from for this long gives back the credit it did not use (a sending
/// process that died keeps none).
const RECLAIM_AFTER: Duration = Duration::from_secs(3);
/// How long a message may wait for room in a mailbox that credit said had room (a local
/// sender filled it meanwhile) before it is dead-lettered.
const FORWARD_TIMEOUT: Duration = Duration::from_millis(200);
/// How often the actor's progress is looked at while messages are unconfirmed.
const CONFIRM_TICK: Duration = Duration::from_millis(1);
/// How often the gateway's thread looks whether its node left, while nothing is pending.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How long an acknowledgement or a lookup's answer may wait for the client to take it
/// (its outgoing buffer is bounded); one that does not fit is skipped (the next carries
/// the same cumulative counts).
const ANSWER_TIMEOUT: Duration = Duration::from_millis(200);
/// The most NATS messages taken at once before acknowledging (one acknowledgement per link
/// for all of them).
const DRAIN: usize = 64;
/// Batches up to this size (a lone request or reply, a few messages) are handed over on the
/// runtime thread, where latency is won; larger ones (a flood) go to the gateway's thread,
/// so that decoding and forwarding run beside the client's reading of the socket instead of
/// after it.
const INLINE_BYTES: usize = 2048;
/// A sender with this many messages unconfirmed is told at once what became of them (its
/// direct path needs at most 4 unconfirmed); fewer wait up to [`ACK_LAG`] to be told with
/// the next ones: under request/reply, one acknowledgement for every second message instead
/// of one for each (each costs the sending process and the server a few thread switches).
const UNCONFIRMED_NOW: u64 = 3;
/// The longest a confirmation or a credit waits to be told when nothing makes it urgent.
const ACK_LAG: Duration = Duration::from_millis(5);

struct LinkState {
    id: String,
    reply: String,
    /// The next sequence number expected.
    next: u64,
    credit_upto: u64,
    want: u64,
    delivered: u64,
    dead: u64,
    last_heard: Instant,
    /// Must be answered now: a request for credit, a new link, dead letters.
    dirty: bool,
    /// What the last acknowledgement said: `delivered + dead`, `credit_upto`, and when.
    told_done: u64,
    told_credit: u64,
    told_at: Instant,
}

/// Starts the gateway of `addr`, published as `name`: a task on the connection's runtime
/// that takes batches and lookups as they arrive, and a thread for what must wait.
pub(crate) fn start<M>(
    shared: Arc<Shared>,
    boot: u64,
    name: &str,
    addr: Addr<M>,
) -> std::io::Result<()>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let data = shared
        .conn
        .subscriber(proto::subject(&shared.cluster, "in", name))?;
    let lookups = shared
        .conn
        .subscriber(proto::subject(&shared.cluster, "lookup", name))?;
    let published = postcard::to_allocvec(&Published {
        node: shared.own_node.clone().unwrap_or_default(),
        boot,
        type_name: std::any::type_name::<M>().to_string(),
        capacity: addr.capacity().min(u32::MAX as usize) as u32,
    })
    .map_err(std::io::Error::other)?;
    // Bytes handed on undecoded: only what cannot hold channels or addresses (encoding those
    // has effects a relay cannot reproduce), and only to an actor in a process of its own.
    let raw_upto = if addr.takes_encoded() && !std::mem::needs_drop::<M>() {
        addr.max_message_bytes().min(SHM_THRESHOLD - 1)
    } else {
        0
    };
    let gateway = Arc::new(Mutex::new(Gateway {
        boot,
        raw_upto,
        name: name.to_string(),
        capacity: addr.capacity() as u64,
        addr,
        links: Vec::new(),
        by_id: HashMap::new(),
        pending: VecDeque::new(),
        held: VecDeque::new(),
        forwarding: false,
        batches: VecDeque::new(),
        stale: 0,
        bad: 0,
    }));
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    // Dropped when the thread ends (the node left): that ends the task too, so that the task
    // never keeps the connection alive.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let receiving = Receiving {
        gateway: gateway.clone(),
        client: shared.conn.client(),
        published: published.into(),
        wake: wake_tx,
    };
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("mpactor-nats-gw-{name}"))
        .spawn(move || assist(thread_shared, gateway, wake_rx, stop_tx))?;
    shared.conn.spawn(receiving.run(data, lookups, stop_rx));
    Ok(())
}

/// What arrives for the gateway.
enum Arrival {
    Batch(Message),
    Lookup(Message),
}

/// The gateway's task on the connection's runtime.
struct Receiving<M: Send + 'static> {
    gateway: Arc<Mutex<Gateway<M>>>,
    client: Client,
    /// The answer to a lookup.
    published: Bytes,
    /// Wakes the gateway's thread when messages wait for room.
    wake: Sender<()>,
}

impl<M> Receiving<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    async fn run(
        self,
        data: Subscriber,
        lookups: Subscriber,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut arrivals =
            futures_util::stream::select(data.map(Arrival::Batch), lookups.map(Arrival::Lookup));
        let mut answers = Vec::new();
        let mut acks = Vec::new();
        loop {
            let first = match future::select(arrivals.next(), &mut stop).await {
                Either::Left((Some(arrival), _)) => arrival,
                // The subscription ended (the client closed), or the node left.
                _ => return,
            };
            {
                let mut gateway = self.gateway.lock();
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(arrival) = next.take() {
                    match arrival {
                        Arrival::Batch(m) => gateway.take(m.payload),
                        Arrival::Lookup(m) => answers.extend(m.reply),
                    }
                    taken += 1;
                    // Whatever else arrived already, before confirming and granting once for
                    // all of it.
                    if taken < DRAIN {
                        next = arrivals.next().now_or_never().flatten();
                    }
                }
                gateway.confirm();
                gateway.grant();
                gateway.answer(&mut acks);
                if gateway.has_work() {
                    let _ = self.wake.try_send(());
                }
            }
            for reply in answers.drain(..) {
                let publish = self.client.publish(reply, self.published.clone());
                let _ = tokio::time::timeout(ANSWER_TIMEOUT, publish).await;
            }
            for (subject, ack) in acks.drain(..) {
                let _ =
                    tokio::time::timeout(ANSWER_TIMEOUT, self.client.publish(subject, ack)).await;
            }
        }
    }
}

/// The gateway's thread: forwards what a full mailbox refused (waiting for room, bounded),
/// confirms what the actor handled while nothing arrives, takes back unused credit. Ends
/// when the node leaves; the task ends with it (`_stop`).
fn assist<M>(
    shared: Arc<Shared>,
    gateway: Arc<Mutex<Gateway<M>>>,
    wake: Receiver<()>,
    _stop: tokio::sync::oneshot::Sender<()>,
) where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let addr = gateway.lock().addr.clone();
    let mut acks = Vec::new();
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        // A batch the task left to this thread: taken and handed over in one hold of the
        // lock, so that the task's later batches come after it.
        let batch = {
            let mut gateway = gateway.lock();
            let batch = gateway.batches.pop_front();
            if let Some(batch) = &batch {
                gateway.on_batch(batch);
                gateway.confirm();
                gateway.grant();
                gateway.answer(&mut acks);
            }
            batch.is_some()
        };
        publish_all(&shared, &mut acks);
        // One held-back message at a time, outside the lock (the task must never wait for
        // it); the task holds back everything after it meanwhile (order).
        let held = gateway.lock().take_held();
        if let Some((link, msg)) = held {
            let sent = match msg {
                Payload::Typed(msg) => addr.send_timeout(msg, FORWARD_TIMEOUT).is_ok(),
                Payload::Encoded(bytes) => {
                    addr.send_encoded_timeout(bytes, FORWARD_TIMEOUT).is_ok()
                }
            };
            let more = {
                let mut gateway = gateway.lock();
                gateway.forwarded(link, sent);
                gateway.confirm();
                gateway.grant();
                gateway.answer(&mut acks);
                gateway.has_work()
            };
            publish_all(&shared, &mut acks);
            if more {
                continue;
            }
        }
        if batch {
            continue;
        }
        let idle = {
            let mut gateway = gateway.lock();
            gateway.confirm();
            gateway.grant();
            gateway.answer(&mut acks);
            gateway.pending.is_empty() && !gateway.has_work() && !gateway.untold()
        };
        publish_all(&shared, &mut acks);
        let wait = if idle { IDLE_TICK } else { CONFIRM_TICK };
        if let Err(crossbeam_channel::RecvTimeoutError::Disconnected) = wake.recv_timeout(wait) {
            return;
        }
    }
}

fn publish_all(shared: &Shared, acks: &mut Vec<(String, Bytes)>) {
    for (subject, ack) in acks.drain(..) {
        shared.conn.publish(subject, ack, ANSWER_TIMEOUT);
    }
}

/// A message on its way to the actor: decoded, or its bytes as they arrived.
enum Payload<M> {
    Typed(M),
    Encoded(Bytes),
}

/// A published actor's gateway state, shared by its task and its thread (each holds the
/// lock only for work that never waits).
struct Gateway<M: Send + 'static> {
    boot: u64,
    /// Messages up to this many bytes are handed on undecoded (0: none; see `start`).
    raw_upto: usize,
    name: String,
    capacity: u64,
    addr: Addr<M>,
    links: Vec<LinkState>,
    by_id: HashMap<String, usize>,
    /// Handed to the mailbox, not yet confirmed handled: (link, the actor's accepted count
    /// right after the send).
    pending: VecDeque<(usize, u64)>,
    /// Decoded, refused by a full mailbox (or behind one that was): the thread forwards them
    /// in order, waiting for room.
    held: VecDeque<(usize, Payload<M>)>,
    /// The thread is forwarding one taken from `held`: what arrives meanwhile is held too.
    forwarding: bool,
    /// Batches left to the thread (large ones, and every one behind them: order).
    batches: VecDeque<Bytes>,
    stale: u64,
    /// Messages that failed to decode here, and malformed batches: logged for the 1st, 2nd,
    /// 4th, 8th... with the total (a sender of garbage must not flood the log).
    bad: u64,
}

impl<M> Gateway<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    fn link(&mut self, id: &str, reply: &str, seq: u64) -> usize {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        self.links.push(LinkState {
            id: id.to_string(),
            reply: reply.to_string(),
            next: seq,
            credit_upto: seq,
            want: 0,
            delivered: 0,
            dead: 0,
            last_heard: Instant::now(),
            dirty: true,
            told_done: 0,
            told_credit: seq,
            told_at: Instant::now(),
        });
        self.by_id.insert(id.to_string(), self.links.len() - 1);
        self.links.len() - 1
    }

    /// Takes a batch as it arrives on the runtime thread: handed over at once if it is
    /// small and nothing is left to the thread, else left to the thread.
    fn take(&mut self, payload: Bytes) {
        if payload.len() > INLINE_BYTES || !self.batches.is_empty() {
            self.batches.push_back(payload);
        } else {
            self.on_batch(&payload);
        }
    }

    /// Logs a malformed batch or a message that failed to decode, at ERROR, for the 1st, 2nd,
    /// 4th, 8th... of this gateway, with the count so far (the senders count every such
    /// message as a dead letter, from the acknowledgements).
    fn say_bad(&mut self, what: &str) {
        self.bad += 1;
        if self.bad.is_power_of_two() {
            log::error!(
                "{what} ({} so far; said for the 1st, 2nd, 4th...)",
                self.bad
            );
        }
    }

    /// Whether the thread has batches or held-back messages to hand over.
    fn has_work(&self) -> bool {
        !self.batches.is_empty() || !self.held.is_empty()
    }

    fn on_batch(&mut self, payload: &Bytes) {
        let Some((head, mut body)) = proto::decode_batch(payload) else {
            self.say_bad(&format!(
                "{}: a malformed batch from the cluster (ignored)",
                self.name
            ));
            return;
        };
        if head.boot != self.boot {
            // Meant for an earlier incarnation of this node: its sender counts them in doubt
            // once it learns this node's new boot id (from its heartbeats).
            self.stale += head.count as u64;
            return;
        }
        let i = self.link(&head.link, &head.reply, head.seq);
        let link = &mut self.links[i];
        link.last_heard = Instant::now();
        link.want = head.demand as u64;
        if head.count == 0 {
            // A request for credit: always answered. Messages are answered when they change
            // something the sender counts (credit, confirmations, dead letters): one
            // acknowledgement less per message than answering every batch.
            link.dirty = true;
            return;
        }
        if head.seq > link.next {
            // NATS lost earlier batches of this link (at most once): counted, never silent.
            let lost = head.seq - link.next;
            link.dead += lost;
            link.dirty = true;
            log::error!(
                "{}: {lost} messages from {} were lost in transit (dead letters)",
                self.name,
                link.id
            );
            link.next = head.seq;
        }
        let mut skip = link.next.saturating_sub(head.seq);
        let mut left = head.count as u64;
        while left > 0 {
            left -= 1;
            let Some(bytes) = proto::next_message(&mut body) else {
                // Where the next message starts is unknown: the rest of the batch is lost.
                let dead = left + 1 - skip.min(left + 1);
                let link = &mut self.links[i];
                link.dead += dead;
                link.next += dead;
                link.dirty = true;
                log::error!("{}: {dead} messages of a truncated batch", self.name);
                return;
            };
            if skip > 0 {
                // Already seen (a duplicate): dropped.
                skip -= 1;
                continue;
            }
            self.links[i].next += 1;
            let msg = if bytes.len() <= self.raw_upto {
                Payload::Encoded(payload.slice_ref(bytes))
            } else {
                match postcard::from_bytes::<M>(bytes) {
                    Ok(msg) => Payload::Typed(msg),
                    Err(e) => {
                        // Costs only itself: the next message's start is known.
                        let link = &mut self.links[i];
                        link.dead += 1;
                        link.dirty = true;
                        let what = format!(
                            "{}: a message failed to decode as `{}`: {e}",
                            self.name,
                            std::any::type_name::<M>()
                        );
                        self.say_bad(&what);
                        continue;
                    }
                }
            };
            self.deliver(i, msg);
        }
    }

    /// Hands one decoded message of link `i` to the actor, without waiting: into its mailbox
    /// (straight into its socket when it waits), or, when the mailbox is full or something
    /// of this gateway is already held back, behind what is held for the thread.
    fn deliver(&mut self, i: usize, msg: Payload<M>) {
        if self.forwarding || !self.held.is_empty() {
            self.held.push_back((i, msg));
            return;
        }
        let sent = match msg {
            Payload::Typed(msg) => self
                .addr
                .try_send(msg)
                .map_err(|e| (e.is_full(), Payload::Typed(e.into_inner()))),
            Payload::Encoded(bytes) => self
                .addr
                .try_send_encoded(bytes)
                .map_err(|e| (e.is_full(), Payload::Encoded(e.into_inner()))),
        };
        match sent {
            Ok(()) => self.pending.push_back((i, self.addr.accepted_count())),
            Err((true, msg)) => self.held.push_back((i, msg)),
            Err((false, _)) => {
                let link = &mut self.links[i];
                link.dead += 1;
                link.dirty = true;
            }
        }
    }

    /// The next held-back message, for the thread to forward (it says how that went with
    /// [`forwarded`](Self::forwarded)).
    fn take_held(&mut self) -> Option<(usize, Payload<M>)> {
        let held = self.held.pop_front();
        self.forwarding = held.is_some();
        held
    }

    /// What became of the held-back message of link `i` the thread forwarded.
    fn forwarded(&mut self, i: usize, sent: bool) {
        self.forwarding = false;
        if sent {
            self.pending.push_back((i, self.addr.accepted_count()));
        } else {
            let link = &mut self.links[i];
            link.dead += 1;
            link.dirty = true;
        }
    }

    /// Confirms what the actor was handed. A message handed on undecoded that failed to
    /// decode in the actor's process is counted there (a dead letter of its summary) and is
    /// confirmed here like one handled: it reached the actor's inbox.
    fn confirm(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let handled = self.addr.handled_count() + self.addr.decode_failed_count();
        let gone = self.addr.is_gone();
        while let Some(&(i, position)) = self.pending.front() {
            let link = &mut self.links[i];
            if position <= handled {
                link.delivered += 1;
            } else if gone {
                link.dead += 1;
            } else {
                break;
            }
            self.pending.pop_front();
        }
    }

    /// Shares the actor's free mailbox slots among the links that want to send.
    fn grant(&mut self) {
        let now = Instant::now();
        let mut outstanding = 0;
        for link in &mut self.links {
            // A sender may have sent past a reclaimed credit (it did not know): what arrived
            // used it up.
            link.credit_upto = link.credit_upto.max(link.next);
            if link.credit_upto > link.next && now.duration_since(link.last_heard) > RECLAIM_AFTER {
                link.credit_upto = link.next;
            }
            outstanding += link.credit_upto.saturating_sub(link.next);
        }
        // Held-back messages (and the one being forwarded) will take mailbox slots too.
        let held = self.held.len() as u64 + u64::from(self.forwarding);
        let mut free = self
            .capacity
            .saturating_sub(self.pending.len() as u64 + held + outstanding);
        for link in &mut self.links {
            if free == 0 {
                break;
            }
            if now.duration_since(link.last_heard) > RECLAIM_AFTER {
                continue;
            }
            let has = link.credit_upto.saturating_sub(link.next);
            let need = link.want.max(STANDING_CREDIT).saturating_sub(has);
            let give = need.min(free);
            if give > 0 {
                link.credit_upto += give;
                free -= give;
            }
        }
    }

    /// The acknowledgement of each link with something to tell now, to publish (without the
    /// lock): what must be answered, credit the sender is running short of, confirmations
    /// when it has [`UNCONFIRMED_NOW`] unconfirmed, anything older than [`ACK_LAG`].
    fn answer(&mut self, acks: &mut Vec<(String, Bytes)>) {
        let now = Instant::now();
        for link in &mut self.links {
            let done = link.delivered + link.dead;
            if !link.dirty && done == link.told_done && link.credit_upto == link.told_credit {
                continue;
            }
            let known_credit = link.told_credit.saturating_sub(link.next);
            let short = link.credit_upto > link.told_credit
                && known_credit < link.want.max(STANDING_CREDIT) / 2;
            let unconfirmed = done > link.told_done
                && link.next.saturating_sub(link.told_done) >= UNCONFIRMED_NOW;
            if !(link.dirty || short || unconfirmed || now.duration_since(link.told_at) >= ACK_LAG)
            {
                continue;
            }
            link.dirty = false;
            link.told_done = done;
            link.told_credit = link.credit_upto;
            link.told_at = now;
            let ack = Ack {
                link: link.id.clone(),
                boot: self.boot,
                delivered: link.delivered,
                dead: link.dead,
                credit_upto: link.credit_upto,
            };
            if let Ok(bytes) = postcard::to_allocvec(&ack) {
                acks.push((link.reply.clone(), bytes.into()));
            }
        }
    }

    /// Whether some link has something not told yet (the thread keeps looking until it is).
    fn untold(&self) -> bool {
        self.links.iter().any(|l| {
            l.dirty || l.delivered + l.dead != l.told_done || l.credit_upto != l.told_credit
        })
    }
}
