//! [`Cluster`]: this root as a node of a cluster.

use crate::event::ClusterEvent;
use crate::link::{LinkInner, RemoteStats};
use crate::proto::{self, Heartbeat, Published};
use crate::shared::{Shared, HEARTBEAT_INTERVAL};
use actor_core::{ClusterConfig, Report, SystemConfig};
use actor_ipc::Addr;
use crossbeam_channel::Receiver;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No node answered for this name before the deadline.
    #[error("no node of cluster {cluster} published an actor named {actor} (waited {waited:?})")]
    NotFound {
        /// The cluster.
        cluster: String,
        /// The name looked up.
        actor: String,
        /// How long the lookup waited.
        waited: Duration,
    },
    /// The actor takes another message type.
    #[error("actor {actor} takes {takes}, not {asked}")]
    WrongType {
        /// The name looked up.
        actor: String,
        /// Its message type.
        takes: String,
        /// The type asked for.
        asked: String,
    },
    /// The name is not a valid subject token (dots, wildcards, spaces).
    #[error("{0:?} is not a valid actor name in a cluster (no dots, wildcards or spaces)")]
    BadName(String),
    /// A local failure (a thread that could not start).
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// This root as a node of a cluster of roots on several machines, through a NATS server.
///
/// Join from the [`SystemConfig`]'s `cluster` (see [`SystemConfig::cluster`]), publish local
/// actors under cluster-wide names, look up actors of other nodes by name and message type.
/// Each root still supervises only its own children; the cluster only carries messages and
/// tells who is alive.
///
/// ```no_run
/// use actor_core::SystemConfig;
/// use actor_nats::Cluster;
/// use std::time::Duration;
/// # fn demo(system: &actor_ipc::System<()>, worker: actor_ipc::Addr<u64>) -> Result<(), Box<dyn std::error::Error>> {
/// let config = SystemConfig::new("MAIN").cluster("nats://10.0.0.5:4222", "demo", "host-a");
/// let cluster = Cluster::join_from(&config)?;
/// cluster.publish("worker", &worker)?;                    // others find it by this name
/// let other = cluster.lookup::<u64>("counter", Duration::from_secs(5))?;
/// other.send(1)?;
/// # Ok(()) }
/// ```
pub struct Cluster {
    shared: Arc<Shared>,
    config: ClusterConfig,
    boot: u64,
}

impl Cluster {
    /// Joins the cluster named in `config.cluster`; fails if it names none.
    pub fn join_from(config: &SystemConfig) -> io::Result<Cluster> {
        match &config.cluster {
            Some(cluster) => Cluster::join(cluster),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the SystemConfig names no cluster (SystemConfig::cluster)",
            )),
        }
    }

    /// Connects to the server (within 5 s), and starts this node's heartbeats and its watch
    /// of the other nodes.
    pub fn join(config: &ClusterConfig) -> io::Result<Cluster> {
        for token in [&config.cluster, &config.node] {
            if !proto::valid_token(token) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{token:?}: cluster and node names are one subject token (no dots, wildcards or spaces)"),
                ));
            }
        }
        let shared = Shared::get_or_connect(&config.url, &config.cluster, Some(&config.node))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("joining {} at {}: {e}", config.cluster, config.url),
                )
            })?;
        let boot = crate::random();
        let beat = postcard::to_allocvec(&Heartbeat {
            node: config.node.clone(),
            boot,
        })
        .map_err(io::Error::other)?;
        let client = shared.conn.client();
        let subject = proto::subject(&config.cluster, "hb", &config.node);
        let weak = Arc::downgrade(&shared);
        shared.conn.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(s) if !s.closed.load(Ordering::SeqCst) => {}
                    _ => return,
                }
                // Bounded: a heartbeat the client cannot take now is skipped, not queued.
                let _ = tokio::time::timeout(
                    HEARTBEAT_INTERVAL,
                    client.publish(subject.clone(), beat.clone().into()),
                )
                .await;
            }
        });
        log::info!(
            "joined cluster {} at {} as node {}",
            config.cluster,
            config.url,
            config.node
        );
        Ok(Cluster {
            shared,
            config: config.clone(),
            boot,
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Publishes the local actor at `addr` under `name`, cluster-wide: other nodes find it
    /// with [`lookup`](Self::lookup) and send to it within credits this node grants from its
    /// mailbox's free slots. The actor must run as a process or thread of this root: an
    /// `Addr` of an actor on another machine is refused (its own node publishes it).
    pub fn publish<M>(&self, name: &str, addr: &Addr<M>) -> io::Result<()>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        if !proto::valid_token(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                LookupError::BadName(name.into()),
            ));
        }
        if let Some(link) = addr.remote_link() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} runs on node {}, not here: only the node that runs an actor publishes it",
                    link.name(),
                    link.node()
                ),
            ));
        }
        crate::gateway::start(self.shared.clone(), self.boot, name, addr.clone())?;
        log::info!(
            "published {} as {name} in cluster {}",
            addr.name(),
            self.config.cluster
        );
        Ok(())
    }

    /// Finds the actor published as `name` that takes messages of type `M`, asking again
    /// until `timeout` (the node that publishes it may not be up yet).
    ///
    /// The answer is an ordinary [`Addr<M>`](Addr), of the remote flavor: code written
    /// against `Addr` takes it as it is, and it behaves like a local one:
    ///
    /// * bounded: this process queues at most the actor's mailbox capacity towards it, and
    ///   publishes only as far as the actor's node granted credit (free mailbox slots), so
    ///   `try_send` says `Full` and `send_timeout` says `Timeout` when the actor does not
    ///   keep up;
    /// * `Disconnected` at once while the actor's node is down (silent for
    ///   [`DEAD_AFTER`](crate::DEAD_AFTER)), and usable again when it is back under the same
    ///   name (restarted or reconnected);
    /// * order is kept per sending process: every address of one actor in a process shares
    ///   one queue and one sequence;
    /// * accounted: [`RemoteExt::remote_stats`](crate::RemoteExt::remote_stats) says how
    ///   many were delivered, dead-lettered, in doubt, and
    ///   [`RemoteExt::flush_remote`](crate::RemoteExt::flush_remote) waits until nothing is
    ///   pending;
    /// * serializable: hand it to a local actor in its `Args` or in a message, to this node
    ///   or another one; the receiving process opens its own connection to the same server
    ///   (once per process).
    ///
    /// * asked: [`Addr::ask`] works on it as on a local address (same signature, same
    ///   deadline); the answer comes back through the cluster into the asking thread's reply
    ///   inbox, and the ask also ends with `Disconnected` once the node is noticed down.
    ///
    /// ```no_run
    /// # fn demo(cluster: &actor_nats::Cluster) -> Result<(), Box<dyn std::error::Error>> {
    /// use actor_nats::RemoteExt;
    /// use std::time::Duration;
    /// let consumer: actor_ipc::Addr<u64> = cluster.lookup("consumer", Duration::from_secs(5))?;
    /// consumer.send(42)?;
    /// consumer.flush_remote(Duration::from_secs(5));
    /// println!("{:?}", consumer.remote_stats());
    /// # Ok(()) }
    /// ```
    pub fn lookup<M>(&self, name: &str, timeout: Duration) -> Result<Addr<M>, LookupError>
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        if !proto::valid_token(name) {
            return Err(LookupError::BadName(name.into()));
        }
        let t0 = Instant::now();
        let subject = proto::subject(&self.config.cluster, "lookup", name);
        let published = loop {
            let left = timeout.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return Err(LookupError::NotFound {
                    cluster: self.config.cluster.clone(),
                    actor: name.into(),
                    waited: timeout,
                });
            }
            let answer = self.shared.conn.request(
                subject.clone(),
                Default::default(),
                left.min(Duration::from_millis(500)),
            );
            if let Some(p) = answer.and_then(|b| postcard::from_bytes::<Published>(&b).ok()) {
                break p;
            }
            // No responder answers at once; a timed-out request already waited.
            std::thread::sleep(Duration::from_millis(50).min(timeout.saturating_sub(t0.elapsed())));
        };
        if published.type_name != std::any::type_name::<M>() {
            return Err(LookupError::WrongType {
                actor: name.into(),
                takes: published.type_name,
                asked: std::any::type_name::<M>().into(),
            });
        }
        self.shared.seen(&published.node, published.boot);
        let link = LinkInner::get_or_start(
            &self.shared,
            name,
            &published.node,
            published.capacity as usize,
        )?;
        Ok(Addr::remote(link))
    }

    /// A channel of every [`ClusterEvent`] from now on.
    pub fn events(&self) -> Receiver<ClusterEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.shared.listeners.lock().push(tx);
        rx
    }

    /// Hands every [`ClusterEvent`] to the root's event handler (as the application event
    /// `map` makes of it, sent by `"cluster"`), through the root's report inbox
    /// ([`System::report_addr`](actor_ipc::System::report_addr)). `map` may return `None`
    /// to leave an event out.
    pub fn forward_events<E>(
        &self,
        root: Addr<Report<E>>,
        map: impl Fn(ClusterEvent) -> Option<E> + Send + 'static,
    ) -> io::Result<()>
    where
        E: Serialize + Send + 'static,
    {
        let events = self.events();
        std::thread::Builder::new()
            .name("mpactor-nats-events".into())
            .spawn(move || {
                for event in events {
                    if let Some(event) = map(event) {
                        let report = Report::App {
                            actor: "cluster".into(),
                            event,
                        };
                        if root.send(report).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// What became of what this process sent to each remote actor, by name.
    pub fn summary(&self) -> Vec<RemoteStats> {
        let mut all: Vec<_> = self
            .shared
            .links
            .lock()
            .values()
            .map(|l| l.stats())
            .collect();
        all.sort_by(|a, b| a.actor.cmp(&b.actor));
        all
    }

    /// Messages NATS dropped because a subscription of this process fell behind (its
    /// slow-consumer protection). Credits keep it at zero; it is counted, never silent.
    pub fn slow_consumer_drops(&self) -> u64 {
        self.shared
            .conn
            .health
            .slow_consumer_drops
            .load(Ordering::SeqCst)
    }

    /// Whether this process is connected to the server now.
    pub fn connected(&self) -> bool {
        self.shared.conn.connected()
    }
}

impl Drop for Cluster {
    /// Leaves: heartbeats, gateways and links stop (other nodes notice within their
    /// [`DEAD_AFTER`](crate::DEAD_AFTER)). Never waits on the server.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}
