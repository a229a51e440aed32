//! The sending side: the link behind the remote flavor of an [`Addr`](actor_ipc::Addr)
//! (one per remote actor and sending process): a bounded queue and a pump thread that
//! publishes batches as far as the receiving node's credit allows.

use crate::proto::{self, Ack, BatchHead, MAX_BATCH, MAX_BATCH_BYTES};
use crate::shared::{AckRoute, Shared, WATCH_TICK};
use actor_ipc::{LinkError, RemoteLink, RemoteScheme};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the pump waits for the client to take a batch (its buffer is bounded).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// The most unconfirmed messages a link may have for a send to take the direct path.
const DIRECT_UNCONFIRMED: u64 = 4;
/// How long the pump waits for credit before it asks again.
const POLL_AGAIN: Duration = Duration::from_millis(100);

/// What became of the messages this process sent to one remote actor.
///
/// `sent = delivered + dead_letters + in_doubt + pending` at every moment; `pending` is zero
/// once [`RemoteExt::flush_remote`](crate::RemoteExt::flush_remote) returned true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStats {
    /// The remote actor's published name.
    pub actor: String,
    /// The node that runs it.
    pub node: String,
    /// Messages accepted by `try_send`/`send_timeout`/`send`.
    pub sent: u64,
    /// Confirmed handed to the actor by its node.
    pub delivered: u64,
    /// Known not handled: refused by the actor's node (gone, undecodable, lost in transit),
    /// never published (the node was down, the client did not take them in time), over
    /// the size limit, or not encodable (an address of a local actor in it, say).
    pub dead_letters: u64,
    /// Published but never confirmed before the node went down or restarted: they may or
    /// may not have been handled.
    pub in_doubt: u64,
    /// Still on their way: queued here, or published and not yet confirmed.
    pub pending: u64,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    delivered: AtomicU64,
    dead: AtomicU64,
    in_doubt: AtomicU64,
}

/// One remote actor as this process sends to it.
pub(crate) struct LinkInner {
    actor: String,
    node: String,
    capacity: usize,
    shared: Arc<Shared>,
    queue: Sender<Vec<u8>>,
    /// False while the actor's node is down: sends say `Disconnected` at once.
    up: AtomicBool,
    counts: Counts,
    /// `in.<actor>`: where its batches go.
    subject: String,
    /// Messages accepted into the queue and not yet published or dropped: while it is not
    /// zero, a send queues behind them (order), never takes the direct path.
    queued: AtomicU64,
    session: Mutex<Session>,
    /// Whether a message that could not be encoded was logged (the first one is).
    refused_logged: AtomicBool,
}

impl LinkInner {
    /// The link to `actor` on `node` in this process: the existing one or a new one with its
    /// pump.
    pub fn get_or_start(
        shared: &Arc<Shared>,
        actor: &str,
        node: &str,
        capacity: usize,
    ) -> std::io::Result<Arc<LinkInner>> {
        let mut links = shared.links.lock();
        if let Some(link) = links.get(actor) {
            return Ok(link.clone());
        }
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let alive = shared.node(node).is_some_and(|n| n.alive);
        let link = Arc::new(LinkInner {
            actor: actor.to_string(),
            node: node.to_string(),
            capacity: capacity.max(1),
            shared: shared.clone(),
            queue: tx,
            up: AtomicBool::new(alive),
            counts: Counts::default(),
            subject: proto::subject(&shared.cluster, "in", actor),
            queued: AtomicU64::new(0),
            session: Mutex::new(Session::default()),
            refused_logged: AtomicBool::new(false),
        });
        let pump = Pump::new(link.clone(), rx);
        std::thread::Builder::new()
            .name(format!("mpactor-nats-{actor}"))
            .spawn(move || pump.run())?;
        links.insert(actor.to_string(), link.clone());
        Ok(link)
    }

    pub fn stats(&self) -> RemoteStats {
        let c = &self.counts;
        // Read in the order they are written (sent first), so pending never goes negative.
        let delivered = c.delivered.load(Ordering::SeqCst);
        let dead = c.dead.load(Ordering::SeqCst);
        let in_doubt = c.in_doubt.load(Ordering::SeqCst);
        let sent = c.sent.load(Ordering::SeqCst);
        RemoteStats {
            actor: self.actor.clone(),
            node: self.node.clone(),
            sent,
            delivered,
            dead_letters: dead,
            in_doubt,
            pending: sent.saturating_sub(delivered + dead + in_doubt),
        }
    }
}

impl LinkInner {
    /// Counts `bytes` as sent: false (and counted dead, logged) if it is over the size limit.
    fn admit(&self, bytes: &[u8]) -> bool {
        self.counts.sent.fetch_add(1, Ordering::SeqCst);
        if bytes.len() <= MAX_BATCH_BYTES {
            return true;
        }
        log::error!(
            "a message of {} bytes to {} is larger than {MAX_BATCH_BYTES}: not sent \
             (dead letter)",
            bytes.len(),
            self.actor
        );
        self.counts.dead.fetch_add(1, Ordering::SeqCst);
        false
    }

    /// Takes back a message counted sent and queued that the queue did not take.
    fn unqueue(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
        self.counts.sent.fetch_sub(1, Ordering::SeqCst);
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// What makes a link the remote flavor of an [`Addr`](actor_ipc::Addr) (see
/// [`Cluster::lookup`](crate::Cluster::lookup)): bounded by the queue (the actor's mailbox
/// capacity) and the receiving node's credit; `Disconnected` while the node is down; one
/// queue and one sequence per actor and process, so order is kept per sending process.
impl RemoteLink for LinkInner {
    fn name(&self) -> &str {
        &self.actor
    }

    fn node(&self) -> &str {
        &self.node
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn max_message_bytes(&self) -> usize {
        MAX_BATCH_BYTES
    }

    fn is_up(&self) -> bool {
        LinkInner::is_up(self)
    }

    fn try_send(&self, bytes: Vec<u8>) -> Result<(), LinkError> {
        if !self.is_up() {
            return Err(LinkError::Disconnected(bytes));
        }
        if !self.admit(&bytes) {
            return Ok(());
        }
        let Err(bytes) = self.send_direct(bytes) else {
            return Ok(());
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.queue.try_send(bytes).map_err(|e| {
            self.unqueue();
            LinkError::Full(e.into_inner())
        })
    }

    fn send_timeout(&self, bytes: Vec<u8>, timeout: Duration) -> Result<(), LinkError> {
        if !self.is_up() {
            return Err(LinkError::Disconnected(bytes));
        }
        if !self.admit(&bytes) {
            return Ok(());
        }
        let Err(bytes) = self.send_direct(bytes) else {
            return Ok(());
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        // With room now, no deadline is needed: the clock is read only when the send has to
        // wait (reading it for every message of a flood cost ~9 % of the flood's CPU here).
        let bytes = match self.queue.try_send(bytes) {
            Ok(()) => return Ok(()),
            Err(crossbeam_channel::TrySendError::Full(bytes))
            | Err(crossbeam_channel::TrySendError::Disconnected(bytes)) => bytes,
        };
        self.queue.send_timeout(bytes, timeout).map_err(|e| {
            self.unqueue();
            if self.is_up() {
                LinkError::Full(e.into_inner())
            } else {
                LinkError::Disconnected(e.into_inner())
            }
        })
    }

    fn refuse(&self, reason: &str) {
        self.counts.sent.fetch_add(1, Ordering::SeqCst);
        self.counts.dead.fetch_add(1, Ordering::SeqCst);
        if !self.refused_logged.swap(true, Ordering::SeqCst) {
            log::error!("{reason}: not sent (a dead letter; later ones are only counted)");
        }
    }

    fn scheme(&self) -> &'static str {
        SCHEME
    }

    fn identity(&self) -> Vec<u8> {
        let wire = Wire {
            url: self.shared.url.clone(),
            cluster: self.shared.cluster.clone(),
            actor: self.actor.clone(),
            node: self.node.clone(),
            boot: self.shared.node(&self.node).map(|n| n.boot).unwrap_or(0),
            capacity: self.capacity.min(u32::MAX as usize) as u32,
        };
        // A struct of strings and integers: postcard cannot fail on it.
        postcard::to_allocvec(&wire).unwrap_or_default()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn reply_route(&self) -> Option<Result<Vec<u8>, String>> {
        Some(crate::reply::route(&self.shared))
    }
}

/// The scheme of this crate's remote addresses.
pub(crate) const SCHEME: &str = "nats";

/// What crosses a process boundary: enough to find the server, the actor and its node.
#[derive(Serialize, Deserialize)]
struct Wire {
    url: String,
    cluster: String,
    actor: String,
    node: String,
    boot: u64,
    capacity: u32,
}

/// Rebuilds a link from its identity in a process that received its address (in `Args` or
/// a message): that process opens its own connection to the server, once.
fn resolve(identity: &[u8], _type_name: &str) -> Result<Arc<dyn RemoteLink>, String> {
    let w: Wire = postcard::from_bytes(identity)
        .map_err(|e| format!("a malformed address of a remote actor: {e}"))?;
    let shared = Shared::get_or_connect(&w.url, &w.cluster, None)
        .map_err(|e| format!("cannot reach the NATS server at {}: {e}", w.url))?;
    if shared.node(&w.node).is_none() {
        // Alive until its heartbeats say otherwise (within DEAD_AFTER).
        shared.seen(&w.node, w.boot);
    }
    let link = LinkInner::get_or_start(&shared, &w.actor, &w.node, w.capacity as usize)
        .map_err(|e| e.to_string())?;
    Ok(link)
}

// Every process of the binary can rebuild a remote address, a child actor's too (it runs
// nothing of the user's before it decodes its `Args`): registered statically.
inventory::submit! {
    RemoteScheme { scheme: SCHEME, resolve }
}

/// A link's session with the actor's current node incarnation: shared by the pump and the
/// direct path of a send (under the link's lock, so that sequence numbers and credit are
/// used once and in order).
#[derive(Default)]
pub(crate) struct Session {
    session: u64,
    id: String,
    /// The node incarnation of this session; `None` while the node is down.
    boot: Option<u64>,
    seq: u64,
    credit_upto: u64,
    acked_delivered: u64,
    acked_dead: u64,
    /// When credit was last asked for, if no answer came since.
    polled: Option<Instant>,
    /// A batch being put together (taken from the queue, not yet published).
    hand: Vec<Vec<u8>>,
    /// The pump has found no credit and waits for an acknowledgement: the ack router hands
    /// every one to it (see [`LinkInner::on_ack`]).
    starved: bool,
}

impl LinkInner {
    /// The direct path: with nothing of this process queued, in hand or unconfirmed for the
    /// actor and credit left, the caller publishes its message itself instead of waking the pump
    /// (which would add a thread hop to the latency of a lone message). Hands the encoded
    /// message back when it cannot.
    fn send_direct(&self, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        // Queued messages go first (order), and under a flood there are: looked at before
        // the session's lock, which the pump holds most of the time then.
        if self.queued.load(Ordering::SeqCst) != 0 {
            return Err(bytes);
        }
        // Never from inside an async runtime (`block_on` would panic there).
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(bytes);
        }
        let Some(mut s) = self.session.try_lock() else {
            return Err(bytes);
        };
        if self.queued.load(Ordering::SeqCst) != 0
            || !s.hand.is_empty()
            || s.boot.is_none()
            || s.credit_upto <= s.seq
            // Only when (nearly) everything published is confirmed: under a flood, one
            // message per publish would cost the batching its throughput. A request/reply
            // peer sends its next request before the last confirmation, hence "nearly".
            || s.seq - (s.acked_delivered + s.acked_dead).min(s.seq) > DIRECT_UNCONFIRMED
        {
            return Err(bytes);
        }
        let head = head(self, &s, 1, 0);
        let payload = proto::encode_batch(&head, std::slice::from_ref(&bytes));
        if !self
            .shared
            .conn
            .publish(self.subject.clone(), payload.into(), PUBLISH_TIMEOUT)
        {
            return Err(bytes);
        }
        s.seq += 1;
        Ok(())
    }
}

impl LinkInner {
    /// An acknowledgement as it arrived (on the client's runtime thread): applied here,
    /// without waking the pump (under request/reply the pump has nothing to do with it),
    /// unless the pump waits for credit or the session is busy (never waited for: the
    /// runtime thread must not block): then it is handed back, for the pump.
    pub(crate) fn on_ack(&self, ack: Ack) -> Option<Ack> {
        let Some(mut s) = self.session.try_lock() else {
            return Some(ack);
        };
        if s.starved {
            return Some(ack);
        }
        self.apply(&mut s, &ack);
        None
    }

    /// Counts what the acknowledgement confirms and takes its credit (each is cumulative:
    /// applying one twice or late changes nothing).
    fn apply(&self, s: &mut Session, ack: &Ack) {
        if ack.link != s.id || Some(ack.boot) != s.boot {
            return;
        }
        let c = &self.counts;
        if ack.delivered > s.acked_delivered {
            c.delivered
                .fetch_add(ack.delivered - s.acked_delivered, Ordering::SeqCst);
            s.acked_delivered = ack.delivered;
        }
        if ack.dead > s.acked_dead {
            c.dead.fetch_add(ack.dead - s.acked_dead, Ordering::SeqCst);
            s.acked_dead = ack.dead;
        }
        s.credit_upto = s.credit_upto.max(ack.credit_upto);
        s.polled = None;
    }
}

fn head(link: &LinkInner, s: &Session, count: u32, demand: usize) -> BatchHead {
    BatchHead {
        link: s.id.clone(),
        reply: link.shared.ack_subject.clone(),
        boot: s.boot.unwrap_or(0),
        seq: s.seq,
        count,
        demand: demand.min(u32::MAX as usize) as u32,
    }
}

/// The pump of one link: publishes what the queue holds as far as credit goes, follows the
/// node's state, applies acknowledgements.
struct Pump {
    link: Arc<LinkInner>,
    queue: Receiver<Vec<u8>>,
    acks: Receiver<Ack>,
    acks_tx: Sender<Ack>,
}

impl Pump {
    fn new(link: Arc<LinkInner>, queue: Receiver<Vec<u8>>) -> Self {
        let (acks_tx, acks) = crossbeam_channel::unbounded();
        Self {
            link,
            queue,
            acks,
            acks_tx,
        }
    }

    fn run(self) {
        let link = self.link.clone();
        loop {
            if link.shared.closed.load(Ordering::SeqCst) {
                self.end_session(&mut link.session.lock(), true);
                return;
            }
            let (up, credit, hand_empty) = {
                let mut s = link.session.lock();
                self.follow_node(&mut s);
                while let Ok(ack) = self.acks.try_recv() {
                    self.apply(&mut s, ack);
                }
                if s.boot.is_none() {
                    // Down: nothing can be sent; what is queued is dead.
                    self.drop_queued(&mut s);
                }
                // Decided under the same lock the router applies acknowledgements under: one
                // that brings credit after this reaches the pump.
                s.starved = s.boot.is_some() && s.credit_upto <= s.seq;
                (
                    s.boot.is_some(),
                    s.credit_upto.saturating_sub(s.seq),
                    s.hand.is_empty(),
                )
            };
            if !up {
                if let Ok(a) = self.acks.recv_timeout(WATCH_TICK) {
                    self.apply(&mut link.session.lock(), a);
                }
                continue;
            }
            if credit > 0 {
                if hand_empty {
                    crossbeam_channel::select! {
                        recv(self.queue) -> m => if let Ok(m) = m { link.session.lock().hand.push(m) },
                        recv(self.acks) -> a => if let Ok(a) = a { self.apply(&mut link.session.lock(), a) },
                        default(WATCH_TICK) => {}
                    }
                }
                let mut s = link.session.lock();
                if !s.hand.is_empty() {
                    self.publish_batch(&mut s);
                }
            } else {
                {
                    let mut s = link.session.lock();
                    let waiting = !self.queue.is_empty() || !s.hand.is_empty();
                    if waiting && s.polled.is_none_or(|t| t.elapsed() >= POLL_AGAIN) {
                        self.poll(&mut s);
                    }
                }
                if let Ok(a) = self.acks.recv_timeout(WATCH_TICK) {
                    self.apply(&mut link.session.lock(), a);
                }
            }
        }
    }

    /// Starts or ends the session as the node's state says.
    fn follow_node(&self, s: &mut Session) {
        let state = self.link.shared.node(&self.link.node);
        match (state, s.boot) {
            (Some(n), Some(b)) if n.alive && n.boot == b => {}
            (Some(n), _) if n.alive => {
                // Back, or a new incarnation: what was on its way to the old one is in doubt.
                self.end_session(s, false);
                self.start_session(s, n.boot);
            }
            (_, Some(_)) => self.end_session(s, true),
            (_, None) => self.link.up.store(false, Ordering::SeqCst),
        }
    }

    fn start_session(&self, s: &mut Session, boot: u64) {
        s.session += 1;
        s.id = format!(
            "{}.{}.{}",
            self.link.shared.process, self.link.actor, s.session
        );
        self.link.shared.by_id.lock().insert(
            s.id.clone(),
            AckRoute {
                link: Arc::downgrade(&self.link),
                pump: self.acks_tx.clone(),
            },
        );
        s.boot = Some(boot);
        s.seq = 0;
        s.credit_upto = 0;
        s.acked_delivered = 0;
        s.acked_dead = 0;
        self.link.up.store(true, Ordering::SeqCst);
        self.poll(s);
    }

    /// Ends the current session: published and unconfirmed messages are in doubt; with
    /// `down`, the link refuses sends and what is queued is dead.
    fn end_session(&self, s: &mut Session, down: bool) {
        if s.boot.take().is_some() {
            let unresolved = s.seq.saturating_sub(s.acked_delivered + s.acked_dead);
            if unresolved > 0 {
                self.link
                    .counts
                    .in_doubt
                    .fetch_add(unresolved, Ordering::SeqCst);
                log::warn!(
                    "{unresolved} messages to {} were published but not confirmed before its \
                     node {} went away: counted in doubt",
                    self.link.actor,
                    self.link.node
                );
            }
            self.link.shared.by_id.lock().remove(&s.id);
            s.seq = 0;
        }
        if down {
            self.link.up.store(false, Ordering::SeqCst);
            self.drop_queued(s);
        }
    }

    fn drop_queued(&self, s: &mut Session) {
        let mut dead = s.hand.len() as u64;
        s.hand.clear();
        while self.queue.try_recv().is_ok() {
            dead += 1;
        }
        if dead > 0 {
            self.link.queued.fetch_sub(dead, Ordering::SeqCst);
            self.link.counts.dead.fetch_add(dead, Ordering::SeqCst);
            log::warn!(
                "{dead} queued messages to {} dropped: its node {} is down (dead letters)",
                self.link.actor,
                self.link.node
            );
        }
    }

    fn apply(&self, s: &mut Session, ack: Ack) {
        self.link.apply(s, &ack);
    }

    /// Asks for credit (a batch of no messages).
    fn poll(&self, s: &mut Session) {
        let demand = self.queue.len() + s.hand.len();
        let payload = proto::encode_batch::<&[u8]>(&head(&self.link, s, 0, demand), &[]);
        self.link
            .shared
            .conn
            .publish(self.link.subject.clone(), payload.into(), PUBLISH_TIMEOUT);
        s.polled = Some(Instant::now());
    }

    /// Publishes what is in hand and more from the queue, within the credit left.
    fn publish_batch(&self, s: &mut Session) {
        let limit = (s.credit_upto.saturating_sub(s.seq) as usize).min(MAX_BATCH);
        let mut bytes: usize = s.hand.iter().map(Vec::len).sum();
        while s.hand.len() < limit && bytes < MAX_BATCH_BYTES {
            match self.queue.try_recv() {
                Ok(m) => {
                    bytes += m.len();
                    s.hand.push(m);
                }
                Err(_) => break,
            }
        }
        // Keep within both limits: what does not fit waits in hand for the next batch.
        let mut take = 0;
        let mut size = 0;
        for m in s.hand.iter().take(limit) {
            if take > 0 && size + m.len() > MAX_BATCH_BYTES {
                break;
            }
            size += m.len();
            take += 1;
        }
        let demand = self.queue.len() + s.hand.len() - take;
        let head = head(&self.link, s, take as u32, demand);
        let payload = proto::encode_batch(&head, &s.hand[..take]);
        if self
            .link
            .shared
            .conn
            .publish(self.link.subject.clone(), payload.into(), PUBLISH_TIMEOUT)
        {
            s.seq += take as u64;
        } else {
            // Not taken by the client (the server is away and its buffer full): never sent,
            // so dead, and their sequence numbers are used again.
            self.link
                .counts
                .dead
                .fetch_add(take as u64, Ordering::SeqCst);
            log::warn!(
                "{take} messages to {} not published within {PUBLISH_TIMEOUT:?}: dead letters",
                self.link.actor
            );
        }
        s.hand.drain(..take);
        self.link.queued.fetch_sub(take as u64, Ordering::SeqCst);
    }
}
