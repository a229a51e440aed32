//! One NATS connection per process and cluster, on a private tokio runtime driven by a
//! thread of its own. Everything mpactor does with it is synchronous and bounded: a publish
//! or a request waits at most its deadline, a subscription feeds a crossbeam channel.

use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// How long a first connection may take before joining fails.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between two reconnection attempts while the server is away: traffic
/// resumes at most this long after it is back.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// A message as a subscription hands it over.
pub(crate) struct Incoming {
    pub payload: Bytes,
}

/// The connection's health, as its event callback saw it.
#[derive(Default)]
pub(crate) struct Health {
    /// False between a disconnection and the next connection.
    pub connected: AtomicBool,
    /// Messages the client dropped because a subscription fell behind (NATS' slow-consumer
    /// protection). Credits keep this at zero; anything here is counted, never silent.
    pub slow_consumer_drops: AtomicU64,
}

/// A NATS connection with its runtime.
pub(crate) struct Conn {
    client: Client,
    handle: Handle,
    pub health: Arc<Health>,
    /// Dropping it ends the runtime's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Conn {
    /// Connects to `url` (fails after [`CONNECT_TIMEOUT`]). `name` shows in the server's
    /// monitoring. Losing the server and getting it back is logged once each.
    pub fn connect(url: &str, name: &str) -> io::Result<Arc<Conn>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("mpactor-nats".into())
            .spawn(move || {
                // Runs every task of the connection until the `Conn` is dropped; the tasks
                // still running then are cancelled, not waited for (a stop must not hang on
                // a server that is away).
                let _ = runtime.block_on(stop_rx);
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        let health = Arc::new(Health::default());
        let events = health.clone();
        let shown_url = url.to_string();
        let options = ConnectOptions::new()
            .name(name)
            .connection_timeout(CONNECT_TIMEOUT)
            .ping_interval(Duration::from_secs(2))
            // Messages are bounded by credits, so this only has to hold what was granted
            // plus control traffic.
            .subscription_capacity(1 << 16)
            .reconnect_delay_callback(|attempts| {
                (Duration::from_millis(50) * attempts.min(10) as u32).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(move |event| {
                let health = events.clone();
                let url = shown_url.clone();
                async move { on_event(&health, &url, event) }
            });
        let url_owned = url.to_string();
        let client = handle
            .block_on(async move {
                tokio::time::timeout(CONNECT_TIMEOUT, options.connect(url_owned)).await
            })
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "NATS connect timed out"))?
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))?;
        health.connected.store(true, Ordering::SeqCst);
        Ok(Arc::new(Conn {
            client,
            handle,
            health,
            _stop: stop_tx,
        }))
    }

    /// Publishes `payload` to `subject`, waiting at most `timeout` for the client to take it
    /// (its outgoing buffer is bounded). False if it did not.
    pub fn publish(&self, subject: String, payload: Bytes, timeout: Duration) -> bool {
        let client = self.client.clone();
        self.handle.block_on(async move {
            matches!(
                tokio::time::timeout(timeout, client.publish(subject, payload)).await,
                Ok(Ok(()))
            )
        })
    }

    /// Sends a request and waits at most `timeout` for its reply.
    pub fn request(&self, subject: String, payload: Bytes, timeout: Duration) -> Option<Bytes> {
        let client = self.client.clone();
        self.handle.block_on(async move {
            match tokio::time::timeout(timeout, client.request(subject, payload)).await {
                Ok(Ok(message)) => Some(message.payload),
                _ => None,
            }
        })
    }

    /// Subscribes to `subject`: every message goes into the returned channel (unbounded:
    /// what arrives is bounded by the credits this node granted, or is small control
    /// traffic).
    pub fn subscribe(&self, subject: String) -> io::Result<Receiver<Incoming>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let subscriber = self.subscriber(subject)?;
        self.handle.spawn(forward(subscriber, tx));
        Ok(rx)
    }

    /// Subscribes to `subject` for a task on the runtime that takes the messages itself
    /// (no thread hop: see the gateway). Waits at most [`CONNECT_TIMEOUT`].
    pub fn subscriber(&self, subject: String) -> io::Result<async_nats::Subscriber> {
        let client = self.client.clone();
        self.handle
            .block_on(async move {
                tokio::time::timeout(CONNECT_TIMEOUT, client.subscribe(subject)).await
            })
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "NATS subscribe timed out"))?
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Runs `task` on the connection's runtime.
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, task: F) {
        self.handle.spawn(task);
    }

    /// The client, for tasks on the runtime.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Whether the connection is up now.
    pub fn connected(&self) -> bool {
        self.health.connected.load(Ordering::SeqCst)
    }
}

async fn forward(mut subscriber: async_nats::Subscriber, tx: Sender<Incoming>) {
    while let Some(message) = subscriber.next().await {
        let incoming = Incoming {
            payload: message.payload,
        };
        if tx.send(incoming).is_err() {
            break;
        }
    }
}

fn on_event(health: &Health, url: &str, event: Event) {
    match event {
        Event::Disconnected => {
            // Logged once per outage: the flag only falls once.
            if health.connected.swap(false, Ordering::SeqCst) {
                log::warn!(
                    "lost the NATS server at {url}: remote sends fail within their bounds \
                     until it is back; reconnecting"
                );
            }
        }
        Event::Connected => {
            if !health.connected.swap(true, Ordering::SeqCst) {
                log::info!("NATS server at {url} is back");
            }
        }
        Event::SlowConsumer(_) => {
            health.slow_consumer_drops.fetch_add(1, Ordering::SeqCst);
            log::error!("NATS dropped messages of a slow subscription (counted)");
        }
        other => log::debug!("NATS: {other}"),
    }
}
