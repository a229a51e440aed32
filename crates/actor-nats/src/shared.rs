//! What one process shares across its cluster work: the connection, the table of nodes seen
//! alive (from their heartbeats), the links to remote actors, a task on the client's
//! runtime that routes acknowledgements to links, and one watch thread that turns silence
//! into "node down".

use crate::conn::Conn;
use crate::event::ClusterEvent;
use crate::link::LinkInner;
use crate::proto::{self, Ack, Heartbeat};
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often a joined node publishes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// How long a node may stay silent before it counts as down. With the watch looking every
/// 100 ms, a node that dies is noticed within `DEAD_AFTER + WATCH_TICK` (2.1 s) of
/// its last heartbeat, so within 2.6 s of its death: the documented bound is 3 s.
pub const DEAD_AFTER: Duration = Duration::from_secs(2);
/// How often the watch looks for silent nodes.
pub(crate) const WATCH_TICK: Duration = Duration::from_millis(100);

/// A node as this process last heard of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeState {
    pub boot: u64,
    pub last_seen: Instant,
    pub alive: bool,
}

/// The cluster state of one process (one per server URL and cluster name).
pub(crate) struct Shared {
    pub conn: Arc<Conn>,
    pub url: String,
    pub cluster: String,
    /// This process's unique token: acknowledgements come to `ack.<process>`.
    pub process: String,
    pub ack_subject: String,
    /// This process's own node name, when it joined as a node (not merely a sender).
    pub own_node: Option<String>,
    pub nodes: Mutex<HashMap<String, NodeState>>,
    /// Links by actor name, so that every address of one actor in this process shares one
    /// queue and one sequence: order is kept per sending process.
    pub links: Mutex<HashMap<String, Arc<LinkInner>>>,
    /// Links by link id (it changes with each session), for routing acknowledgements.
    pub by_id: Mutex<HashMap<String, AckRoute>>,
    pub listeners: Mutex<Vec<Sender<ClusterEvent>>>,
    pub closed: AtomicBool,
}

/// Where the acknowledgements of one link session go.
pub(crate) struct AckRoute {
    /// Applied by the router itself when the link's pump is not waiting for credit: the pump
    /// is not woken for them (see `LinkInner::on_ack`).
    pub link: Weak<LinkInner>,
    /// Else handed to the pump.
    pub pump: Sender<Ack>,
}

type Key = (String, String);

/// Every process's states, by URL and cluster: an address that arrives in a message reuses
/// its process's connection, or opens one.
fn registry() -> &'static Mutex<HashMap<Key, Weak<Shared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Weak<Shared>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Shared {
    /// This process's state for `url` and `cluster`: the existing one, or a new connection.
    /// `node` is set when the process joins as a node.
    pub fn get_or_connect(url: &str, cluster: &str, node: Option<&str>) -> io::Result<Arc<Shared>> {
        let key = (url.to_string(), cluster.to_string());
        let mut registry = registry().lock();
        if let Some(shared) = registry.get(&key).and_then(Weak::upgrade) {
            if node.is_none() || shared.own_node.as_deref() == node {
                return Ok(shared);
            }
        }
        let process = format!(
            "{}-{}-{:x}",
            node.unwrap_or("p"),
            std::process::id(),
            crate::random()
        );
        let conn = Conn::connect(url, &process)?;
        let ack_subject = proto::subject(cluster, "ack", &process);
        let acks = conn.subscriber(ack_subject.clone())?;
        let beats = conn.subscribe(proto::subject(cluster, "hb", "*"))?;
        let shared = Arc::new(Shared {
            conn,
            url: url.to_string(),
            cluster: cluster.to_string(),
            process,
            ack_subject,
            own_node: node.map(str::to_string),
            nodes: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            by_id: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("mpactor-nats-watch".into())
            .spawn(move || watch(weak, beats))?;
        shared.conn.spawn(route_acks(Arc::downgrade(&shared), acks));
        registry.insert(key, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// A state of this process for `cluster`, if it has one: the one for `url`, else one
    /// for another name of the server (the answers to another node's questions go back
    /// through the connection their questions came by, whatever name the asker used).
    pub fn of_cluster(url: &str, cluster: &str) -> Option<Arc<Shared>> {
        let registry = registry().lock();
        let mut same_cluster = registry.iter().filter(|((_, c), _)| c == cluster);
        same_cluster
            .clone()
            .filter(|((u, _), _)| u == url)
            .chain(same_cluster.by_ref())
            .find_map(|(_, weak)| weak.upgrade())
    }

    /// The node's state as this process knows it.
    pub fn node(&self, name: &str) -> Option<NodeState> {
        self.nodes.lock().get(name).copied()
    }

    /// Records a sign of life of `node` (a heartbeat, or a lookup's answer).
    pub fn seen(&self, node: &str, boot: u64) {
        let event = {
            let mut nodes = self.nodes.lock();
            let now = Instant::now();
            match nodes.get_mut(node) {
                Some(state) => {
                    let restarted = state.boot != boot;
                    let was_alive = state.alive;
                    *state = NodeState {
                        boot,
                        last_seen: now,
                        alive: true,
                    };
                    (!was_alive || restarted).then(|| ClusterEvent::NodeUp {
                        node: node.to_string(),
                        restarted,
                    })
                }
                None => {
                    nodes.insert(
                        node.to_string(),
                        NodeState {
                            boot,
                            last_seen: now,
                            alive: true,
                        },
                    );
                    None
                }
            }
        };
        if let Some(event) = event {
            log::info!("{event}");
            self.notify(event);
        }
    }

    /// Hands `event` to every listener (a root's forwarding thread, a test).
    pub fn notify(&self, event: ClusterEvent) {
        self.listeners
            .lock()
            .retain(|tx| tx.send(event.clone()).is_ok());
    }

    /// Marks nodes silent for longer than [`DEAD_AFTER`] as down.
    fn reap_silent(&self) {
        let mut gone = Vec::new();
        {
            let mut nodes = self.nodes.lock();
            for (name, state) in nodes.iter_mut() {
                let silent = state.last_seen.elapsed();
                if state.alive && silent > DEAD_AFTER {
                    state.alive = false;
                    gone.push(ClusterEvent::NodeDown {
                        node: name.clone(),
                        silent_ms: silent.as_millis() as u64,
                    });
                }
            }
        }
        for event in gone {
            log::warn!("{event}");
            self.notify(event);
        }
    }
}

/// Routes acknowledgements as the client hands them over, on its runtime thread: each is
/// applied to its link there ([`LinkInner::on_ack`] never waits) or handed to the link's
/// pump. A thread hop less for every acknowledgement than through the watch thread. Ends
/// when the process's state is dropped or closed (holding it only while routing one).
async fn route_acks(shared: Weak<Shared>, mut acks: async_nats::Subscriber) {
    while let Some(m) = acks.next().await {
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(ack) = postcard::from_bytes::<Ack>(&m.payload) else {
            continue;
        };
        let route = s
            .by_id
            .lock()
            .get(&ack.link)
            .map(|r| (r.link.clone(), r.pump.clone()));
        if let Some((link, pump)) = route {
            let left = match link.upgrade() {
                Some(link) => link.on_ack(ack),
                None => Some(ack),
            };
            if let Some(ack) = left {
                let _ = pump.send(ack);
            }
        }
    }
}

/// The watch thread: records heartbeats, reaps silent nodes. Ends when the process's state
/// is dropped or closed.
fn watch(shared: Weak<Shared>, beats: Receiver<crate::conn::Incoming>) {
    let mut last_reap = Instant::now();
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::SeqCst) {
            return;
        }
        match beats.recv_timeout(WATCH_TICK) {
            Ok(m) => {
                if let Ok(beat) = postcard::from_bytes::<Heartbeat>(&m.payload) {
                    if s.own_node.as_deref() != Some(beat.node.as_str()) {
                        s.seen(&beat.node, beat.boot);
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        if last_reap.elapsed() >= WATCH_TICK {
            s.reap_silent();
            last_reap = Instant::now();
        }
    }
}
