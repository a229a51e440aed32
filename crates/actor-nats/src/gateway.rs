//! The receiving side: a published actor's gateway in its node's root. It answers lookups,
//! takes batches from sending processes, hands their messages to the local actor's
//! [`Addr`], grants credit from the actor's free mailbox slots, and confirms to each sender
//! what was handed over.

use crate::conn::Incoming;
use crate::proto::{self, Ack, Published};
use crate::shared::Shared;
use actor_ipc::Addr;
use crossbeam_channel::Receiver;
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
    dirty: bool,
}

/// Starts the gateway of `addr`, published as `name`, in a thread of its own.
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
        .subscribe(proto::subject(&shared.cluster, "in", name))?;
    let lookups = shared
        .conn
        .subscribe(proto::subject(&shared.cluster, "lookup", name))?;
    let published = postcard::to_allocvec(&Published {
        node: shared.own_node.clone().unwrap_or_default(),
        boot,
        type_name: std::any::type_name::<M>().to_string(),
        capacity: addr.capacity().min(u32::MAX as usize) as u32,
    })
    .map_err(std::io::Error::other)?;
    let gateway = Gateway {
        shared,
        boot,
        name: name.to_string(),
        capacity: addr.capacity() as u64,
        addr,
        links: Vec::new(),
        by_id: HashMap::new(),
        pending: VecDeque::new(),
        stale: 0,
    };
    std::thread::Builder::new()
        .name(format!("mpactor-nats-gw-{name}"))
        .spawn(move || gateway.run(data, lookups, published))?;
    Ok(())
}

struct Gateway<M: Send + 'static> {
    shared: Arc<Shared>,
    boot: u64,
    name: String,
    capacity: u64,
    addr: Addr<M>,
    links: Vec<LinkState>,
    by_id: HashMap<String, usize>,
    /// Handed to the mailbox, not yet confirmed handled: (link, the actor's accepted count
    /// right after the send).
    pending: VecDeque<(usize, u64)>,
    stale: u64,
}

impl<M> Gateway<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    fn run(mut self, data: Receiver<Incoming>, lookups: Receiver<Incoming>, published: Vec<u8>) {
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let wait = if self.pending.is_empty() {
                Duration::from_millis(100)
            } else {
                CONFIRM_TICK
            };
            crossbeam_channel::select! {
                recv(data) -> m => match m {
                    Ok(m) => self.on_batch(&m.payload),
                    Err(_) => return,
                },
                recv(lookups) -> m => match m {
                    Ok(Incoming { reply: Some(reply), .. }) => {
                        self.shared.conn.publish(reply, published.clone().into(), Duration::from_secs(1));
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                default(wait) => {}
            }
            // Take whatever else arrived before confirming and granting once for all of it.
            for _ in 0..64 {
                match data.try_recv() {
                    Ok(m) => self.on_batch(&m.payload),
                    Err(_) => break,
                }
            }
            self.confirm();
            self.grant();
            self.answer();
        }
    }

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
        });
        self.by_id.insert(id.to_string(), self.links.len() - 1);
        self.links.len() - 1
    }

    fn on_batch(&mut self, payload: &[u8]) {
        let Some((head, mut body)) = proto::decode_batch(payload) else {
            log::error!(
                "{}: a malformed batch from the cluster (ignored)",
                self.name
            );
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
        link.dirty = true;
        if head.count == 0 {
            return;
        }
        if head.seq > link.next {
            // NATS lost earlier batches of this link (at most once): counted, never silent.
            let lost = head.seq - link.next;
            link.dead += lost;
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
            let msg = match postcard::take_from_bytes::<M>(body) {
                Ok((msg, rest)) => {
                    body = rest;
                    msg
                }
                Err(e) => {
                    let dead = left + 1 - skip.min(left + 1);
                    let link = &mut self.links[i];
                    link.dead += dead;
                    link.next += dead;
                    log::error!("{}: {dead} messages failed to decode: {e}", self.name);
                    return;
                }
            };
            if skip > 0 {
                // Already seen (a duplicate): dropped.
                skip -= 1;
                continue;
            }
            self.links[i].next += 1;
            let sent = match self.addr.try_send(msg) {
                Ok(()) => true,
                Err(e) if e.is_full() => self
                    .addr
                    .send_timeout(e.into_inner(), FORWARD_TIMEOUT)
                    .is_ok(),
                Err(_) => false,
            };
            if sent {
                self.pending.push_back((i, self.addr.accepted_count()));
            } else {
                self.links[i].dead += 1;
            }
        }
    }

    /// Confirms what the actor was handed.
    fn confirm(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let handled = self.addr.handled_count();
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
            link.dirty = true;
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
        let mut free = self
            .capacity
            .saturating_sub(self.pending.len() as u64 + outstanding);
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
                link.dirty = true;
            }
        }
    }

    /// Sends each link whose state changed its acknowledgement.
    fn answer(&mut self) {
        for link in &mut self.links {
            if !link.dirty {
                continue;
            }
            link.dirty = false;
            let ack = Ack {
                link: link.id.clone(),
                boot: self.boot,
                delivered: link.delivered,
                dead: link.dead,
                credit_upto: link.credit_upto,
            };
            if let Ok(bytes) = postcard::to_allocvec(&ack) {
                self.shared.conn.publish(
                    link.reply.clone(),
                    bytes.into(),
                    Duration::from_millis(200),
                );
            }
        }
    }
}
