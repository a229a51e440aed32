//! Supervision policy, after Erlang/OTP: per child a restart type, per supervisor a strategy
//! and a restart intensity, and the deadlines of start and stop.
//!
//! | restart type | after a clean exit | after a failure (non-zero exit, signal) |
//! |---|---|---|
//! | [`Restart::Permanent`] | restarted | restarted |
//! | [`Restart::Transient`] | ends | restarted |
//! | [`Restart::Temporary`] | ends | ends: the failure is logged and shows in the summary; the system runs on (OTP's temporary) |
//! | [`Restart::StopSystemOnFailure`] (default) | ends | the whole system stops, exit code 2 (mptools' rule) |
//!
//! The default is mptools' rule: an actor nobody said how to restart is one the application
//! cannot run without, so its failure ends everything, cleanly and loudly, rather than leave
//! the system running without it. The other three are OTP's, with OTP's meaning.
//!
//! | strategy | when one child is restarted |
//! |---|---|
//! | [`Strategy::OneForOne`] (default) | only that child |
//! | [`Strategy::OneForAll`] | every child: all stopped in reverse order, all started again in order |
//! | [`Strategy::RestForOne`] | that child and every child started after it |
//!
//! More than [`Intensity::max_restarts`] restarts within [`Intensity::period`] stops the whole
//! system with exit code 3.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a child's start may take, from spawn until `startup` succeeded.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the whole stop may take before the children still alive are signalled.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a child has after SIGTERM before SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_millis(300);
/// The capacity of a mailbox, per sending process.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 4096;
/// The largest message an actor takes by default, encoded: 64 MiB. See
/// [`ChildOptions::max_message_bytes`].
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// The most [`ChildOptions::max_message_bytes`] can be: 4 GiB - 1 (the frame format gives a
/// message's length in 32 bits).
pub const MAX_MESSAGE_BYTES_CEILING: usize = u32::MAX as usize;
/// The byte budget of a mailbox, per sending process: 256 MiB. See
/// [`ChildOptions::mailbox_bytes`].
pub const DEFAULT_MAILBOX_BYTES: usize = 256 << 20;
/// How long a plain `send` waits for room in a full mailbox.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the root looks at its children's processes when no event arrives: bounds how
/// late a crash is noticed.
pub const WATCH_POLL: Duration = Duration::from_millis(10);

/// What happens when a child ends: restarted, ended, or the whole system stopped. The table
/// is in the [module docs](self).
///
/// ```
/// use actor_core::{ChildOptions, Restart};
/// // A job worker whose failure is logged and counted, while the pool runs on.
/// let job = ChildOptions::default().restart(Restart::Temporary);
/// assert!(!job.restart.restarts_after(true) && !job.restart.stops_system_after(true));
/// // By default a failure stops everything (mptools' rule).
/// assert_eq!(ChildOptions::default().restart, Restart::StopSystemOnFailure);
/// assert!(Restart::default().stops_system_after(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Restart {
    /// Always restarted (OTP's permanent).
    Permanent,
    /// Restarted only after a failure: a non-zero exit or killed by a signal (OTP's
    /// transient).
    Transient,
    /// Never restarted, and its end never stops the system (OTP's temporary): a failure is
    /// logged as an error and shows in the summary (its exit, [`Summary::failed`]); the other
    /// children run on.
    ///
    /// [`Summary::failed`]: crate::Summary::failed
    Temporary,
    /// Never restarted; its failure stops the whole system in order, with exit code 2
    /// (mptools' rule, the default); a clean exit just ends the child.
    #[default]
    StopSystemOnFailure,
}

impl Restart {
    /// Whether a child of this type is restarted after ending this way.
    pub fn restarts_after(&self, failed: bool) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary | Restart::StopSystemOnFailure => false,
        }
    }

    /// Whether the end of a child of this type, this way, stops the whole system.
    pub fn stops_system_after(&self, failed: bool) -> bool {
        failed && *self == Restart::StopSystemOnFailure
    }
}

/// Which children are restarted along with the one that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the child that ended.
    #[default]
    OneForOne,
    /// All children.
    OneForAll,
    /// The child that ended and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The indices (in start order) of the children to restart when child `failed` of `count`
    /// ended.
    ///
    /// ```
    /// use actor_core::Strategy;
    /// assert_eq!(Strategy::OneForOne.affected(1, 4), vec![1]);
    /// assert_eq!(Strategy::OneForAll.affected(1, 4), vec![0, 1, 2, 3]);
    /// assert_eq!(Strategy::RestForOne.affected(1, 4), vec![1, 2, 3]);
    /// ```
    pub fn affected(&self, failed: usize, count: usize) -> Vec<usize> {
        match self {
            Strategy::OneForOne => vec![failed],
            Strategy::OneForAll => (0..count).collect(),
            Strategy::RestForOne => (failed..count).collect(),
        }
    }
}

/// At most `max_restarts` restarts within `period`; one more stops the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intensity {
    /// Restarts allowed within the period.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Self {
            max_restarts: 3,
            period: Duration::from_secs(5),
        }
    }
}

/// Keeps the times of recent restarts and says whether one more is allowed.
///
/// ```
/// use actor_core::{Intensity, IntensityTracker};
/// use std::time::{Duration, Instant};
/// let mut t = IntensityTracker::new(Intensity { max_restarts: 2, period: Duration::from_secs(10) });
/// let now = Instant::now();
/// assert!(t.allow(now));
/// assert!(t.allow(now));
/// assert!(!t.allow(now));                              // the third within 10 s is one too many
/// assert!(t.allow(now + Duration::from_secs(11)));     // spaced wider than the period: fine
/// ```
#[derive(Debug, Clone)]
pub struct IntensityTracker {
    intensity: Intensity,
    recent: VecDeque<Instant>,
}

impl IntensityTracker {
    /// A tracker with no restarts yet.
    pub fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if it stays within the intensity; returns false (and
    /// records nothing) if it would exceed it.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(first) = self.recent.front() {
            if now.saturating_duration_since(*first) > self.intensity.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.intensity.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// Per-child options.
///
/// ```
/// use actor_core::{ChildOptions, Restart};
/// use std::time::Duration;
/// let opts = ChildOptions::default()
///     .restart(Restart::Permanent)
///     .start_timeout(Duration::from_secs(1))
///     .mailbox_capacity(128);
/// assert_eq!(opts.restart, Restart::Permanent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildOptions {
    /// When it is restarted.
    pub restart: Restart,
    /// How long its start may take.
    pub start_timeout: Duration,
    /// Its mailbox capacity per sending process.
    pub mailbox_capacity: usize,
    /// The largest message it takes, in encoded bytes.
    pub max_message_bytes: usize,
    /// Its mailbox's byte budget per sending process: see [`ChildOptions::mailbox_bytes`].
    pub mailbox_bytes: usize,
}

impl Default for ChildOptions {
    fn default() -> Self {
        Self {
            restart: Restart::default(),
            start_timeout: DEFAULT_START_TIMEOUT,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            mailbox_bytes: DEFAULT_MAILBOX_BYTES,
        }
    }
}

impl ChildOptions {
    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
    /// Sets the start deadline.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }
    /// Sets the mailbox capacity (at least 1).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox_capacity = capacity.max(1);
        self
    }
    /// Sets the largest message the actor takes, in bytes of its encoding (postcard's, as
    /// ipc-channel sends it), between 1 and [`MAX_MESSAGE_BYTES_CEILING`]; the default is
    /// [`DEFAULT_MAX_MESSAGE_BYTES`].
    ///
    /// A larger message is refused by the sending process (it is never shipped, so the
    /// receiver never has to allocate for it): the sending process logs an error with the
    /// actor's name and the limit, and it counts as a dead letter (`refused` in the summary). Only
    /// actors running as processes encode messages; one running as a thread
    /// ([`Isolation::Threads`]) takes messages of any size.
    ///
    /// ```
    /// use actor_core::ChildOptions;
    /// // An actor that takes camera frames of up to 8 MiB.
    /// let opts = ChildOptions::default().max_message_bytes(8 << 20);
    /// assert_eq!(opts.max_message_bytes, 8 << 20);
    /// ```
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes.clamp(1, MAX_MESSAGE_BYTES_CEILING);
        self
    }

    /// Sets the mailbox's byte budget (at least 1): how many bytes of messages each sending
    /// process may have on their way to the actor, beside the
    /// [`mailbox_capacity`](Self::mailbox_capacity) in messages. The default is
    /// [`DEFAULT_MAILBOX_BYTES`] (256 MiB).
    ///
    /// `try_send` says `Full` when either bound is reached, `send_timeout` waits for room
    /// in both. What counts: the messages still queued in the sending process, each charged
    /// as much as the largest recent message to this actor (a message's size is known only
    /// once it is encoded, which the sending process's writer does; a type without `Drop` is
    /// charged at least its size in memory), and the messages that travel in shared memory
    /// (those over 64 KiB encoded), at their exact size, from when they are shipped until the
    /// actor's process has taken them out of the inbox. Small messages that went out inside
    /// their frame are bounded by the socket itself. One message larger than the whole
    /// budget is still accepted when nothing else is on its way, and goes alone.
    ///
    /// The bound is only as good as the charge of a queued message: the first large messages
    /// after a run of small ones are charged the small size until the writer has encoded one
    /// of them (it takes the queue's messages as they come, so that is one or two). A sending
    /// process whose writer has encoded nothing yet (a new or restarted producer) charges the
    /// size the actor's earlier senders published, so a restarted producer of large messages
    /// is bounded from its first message on.
    ///
    /// Actors running as threads ([`Isolation::Threads`]) take messages by move, unencoded:
    /// only the message capacity bounds their mailboxes.
    ///
    /// ```
    /// use actor_core::ChildOptions;
    /// // A video encoder taking 64 MiB frames: at most 4 of them on their way per sender
    /// // (beyond the fourth, try_send says Full), and at most 4096 small messages.
    /// let opts = ChildOptions::default()
    ///     .max_message_bytes(65 << 20)
    ///     .mailbox_bytes(256 << 20);
    /// assert_eq!(opts.mailbox_bytes, 256 << 20);
    /// assert_eq!(opts.mailbox_capacity, 4096);
    /// ```
    pub fn mailbox_bytes(mut self, bytes: usize) -> Self {
        self.mailbox_bytes = bytes.max(1);
        self
    }
}

/// Where a system's actors run. The same actor code runs in either.
///
/// | | `Processes` (default) | `Threads` |
/// |---|---|---|
/// | a panic | contained | contained |
/// | a hang | killed at the stop deadline | reported, left running until the process exits |
/// | abort, memory corruption, a crashing C library | contained | ends the whole program |
/// | signals | every process obeys them | the root's process |
/// | `Addr` | crosses processes (in `Args`, in messages) | stays in the process |
/// | cost of a message | a socket write per batch | a queue push |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Isolation {
    /// Each actor in its own OS process.
    #[default]
    Processes,
    /// Each actor in a thread of the root's process, with crossbeam mailboxes.
    Threads,
}

/// Options of the whole system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Processes (default) or threads.
    pub isolation: Isolation,
    /// The root's name in the logs.
    pub name: String,
    /// The log level, handed to every child.
    pub log_level: slog::Level,
    /// The log format (text or JSON), handed to every child.
    pub log_format: crate::log::LogFormat,
    /// The one deadline shared by all children's stops.
    pub stop_timeout: Duration,
    /// How long a child has after SIGTERM (at the stop deadline) before SIGKILL.
    pub kill_grace: Duration,
    /// Which children restart with the one that ended.
    pub strategy: Strategy,
    /// How many restarts are too many.
    pub intensity: Intensity,
    /// Stop by itself after this long (`None`: until stopped).
    pub run_for: Option<Duration>,
    /// The cluster this root joins (several machines through a NATS server), if any: the
    /// `actor-nats` crate (the facade's `nats` feature) joins it with `Cluster::join`.
    pub cluster: Option<ClusterConfig>,
}

/// Where a root joins a cluster of roots on several machines: a NATS server, the cluster's
/// name (clusters on one server do not see each other) and this node's name (unique in the
/// cluster; a node that comes back under the same name is reachable through the same
/// addresses). Plain data: `actor-core` knows nothing of NATS.
///
/// ```
/// use actor_core::SystemConfig;
/// let config = SystemConfig::new("MAIN").cluster("nats://127.0.0.1:4222", "demo", "host-a");
/// assert_eq!(config.cluster.unwrap().node, "host-a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The NATS server, e.g. `nats://10.0.0.5:4222`.
    pub url: String,
    /// The cluster's name: one subject token (no dots, wildcards or spaces).
    pub cluster: String,
    /// This node's name: one subject token, unique in the cluster.
    pub node: String,
}

impl ClusterConfig {
    /// Node `node` of `cluster` at the NATS server `url`.
    ///
    /// ```
    /// let config = actor_core::ClusterConfig::new("nats://127.0.0.1:4222", "demo", "host-a");
    /// assert_eq!(config.node, "host-a");
    /// ```
    pub fn new(
        url: impl Into<String>,
        cluster: impl Into<String>,
        node: impl Into<String>,
    ) -> Self {
        ClusterConfig {
            url: url.into(),
            cluster: cluster.into(),
            node: node.into(),
        }
    }
}

impl SystemConfig {
    /// Defaults, with the level from `MPACTOR_LOG` (or info) and the format from
    /// `MPACTOR_LOG_FORMAT` (or text).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            isolation: Isolation::default(),
            name: name.into(),
            log_level: crate::log::level_from(None),
            log_format: crate::log::format_from(None),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            kill_grace: DEFAULT_KILL_GRACE,
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            run_for: None,
            cluster: None,
        }
    }
    /// Chooses processes (the default) or threads for every actor of the system.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }
    /// Sets the log level of the root and every child: a `slog::Level` or a
    /// [`LogLevel`](crate::log::LogLevel) (as a command line gives it).
    ///
    /// ```
    /// use actor_core::log::LogLevel;
    /// use actor_core::SystemConfig;
    /// let config = SystemConfig::new("MAIN").log_level(LogLevel::Debug);
    /// assert_eq!(config.log_level, slog::Level::Debug);
    /// ```
    pub fn log_level(mut self, level: impl Into<slog::Level>) -> Self {
        self.log_level = level.into();
        self
    }
    /// Sets the log format of the root and every child (by default `MPACTOR_LOG_FORMAT`'s, or
    /// text): see [`LogFormat`](crate::log::LogFormat).
    ///
    /// ```
    /// use actor_core::log::LogFormat;
    /// use actor_core::SystemConfig;
    /// // One JSON object per line, from every process of the system.
    /// let config = SystemConfig::new("MAIN").log_format(LogFormat::Json);
    /// assert_eq!(config.log_format, LogFormat::Json);
    /// ```
    pub fn log_format(mut self, format: crate::log::LogFormat) -> Self {
        self.log_format = format;
        self
    }
    /// Sets the shared stop deadline.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }
    /// Sets the grace between SIGTERM and SIGKILL.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }
    /// Sets the restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }
    /// Joins the cluster at the NATS server `url` as node `node` of `cluster` (see
    /// [`ClusterConfig`]).
    pub fn cluster(
        mut self,
        url: impl Into<String>,
        cluster: impl Into<String>,
        node: impl Into<String>,
    ) -> Self {
        self.cluster = Some(ClusterConfig::new(url, cluster, node));
        self
    }
    /// Stops the system by itself after `run_for` (zero: never).
    pub fn run_for(mut self, run_for: Duration) -> Self {
        self.run_for = (!run_for.is_zero()).then_some(run_for);
        self
    }
}
