//! What actors report to the root, and what the root reports back to the program.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A report from an actor's process to the root. The runtime sends the lifecycle reports
/// itself; [`Report::App`] carries what the actor sends with `Context::emit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Report<E> {
    /// The actor's process got SIGINT, SIGTERM or SIGHUP (counted in that process).
    Signalled {
        /// The actor's name.
        actor: String,
        /// The signal number.
        signal: i32,
        /// How many such signals that process has had.
        count: u32,
    },
    /// The actor's `main_loop` failed or panicked; the text carries the cause.
    Fatal {
        /// The actor's name.
        actor: String,
        /// The error, with its cause chain.
        error: String,
    },
    /// The actor has finished (its `shutdown` ran) and is about to exit.
    Stopped {
        /// The actor's name.
        actor: String,
        /// Messages left in its inbox when it stopped, counted as dead letters.
        drained: u64,
        /// Messages it had accepted for other actors but could not deliver by its deadline.
        undelivered: u64,
    },
    /// An application event.
    App {
        /// The actor's name.
        actor: String,
        /// The event.
        event: E,
    },
}

/// How a child process ended, as the root saw it (`waitpid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// Still running (or never reaped).
    Running,
    /// Exited with this code: 0 clean stop, 1 stopped by a signal without the root,
    /// 2 failed, 128 + N ended by its third signal N.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Never started (the start failed before a process existed).
    NotStarted,
    /// It ended, but how could not be learned: its status was reaped by someone else (the
    /// application set SIGCHLD to `SIG_IGN`, so the kernel reaped it). Counted as a failure.
    Unknown,
}

impl ExitStatus {
    /// True for an exit with code 0.
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// A non-zero exit or a signal: an end that was a failure (not running, not unknown).
    pub fn is_failure(&self) -> bool {
        matches!(self, ExitStatus::Code(c) if *c != 0) || matches!(self, ExitStatus::Signal(_))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Running => f.write_str("running"),
            ExitStatus::Code(c) => write!(f, "exit {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by {}", crate::signals::signal_name(*s)),
            ExitStatus::NotStarted => f.write_str("not started"),
            ExitStatus::Unknown => f.write_str("ended, status unknown (SIGCHLD ignored?)"),
        }
    }
}

/// One actor's line in the summary the root gives at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorSummary {
    /// The actor's name.
    pub name: String,
    /// The pid of its last process (0 if it never started).
    pub pid: u32,
    /// How its last process ended.
    pub exit: ExitStatus,
    /// Messages accepted into its mailbox by senders (`try_send`/`send` said Ok).
    pub accepted: u64,
    /// Messages handed to the actor's code, over all its incarnations.
    pub handled: u64,
    /// Messages accepted but never handed to the actor: left in the inbox at the stop,
    /// not delivered by a sender by its deadline, or lost in a crashed process. Always
    /// `accepted - handled`: every message accepted is counted once, in one of the two.
    pub dead_letters: u64,
    /// Of the dead letters, those lost inside a process that crashed (received from the
    /// socket but not yet handed to the actor).
    pub lost_in_crash: u64,
    /// Of the dead letters, those a sending process accepted but had not shipped when it
    /// ended (its stop deadline passed with the receiver not reading, or it was killed).
    pub unsent: u64,
    /// Messages that could not be decoded (each dropped, logged and counted; a frame that
    /// cannot be read at all counts as one). Of the dead letters.
    pub decode_failures: u64,
    /// Of the dead letters, messages their senders refused to ship: larger than the actor's
    /// [`max_message_bytes`](crate::ChildOptions::max_message_bytes), failing to encode, or
    /// carrying more channels than one send can.
    pub refused: u64,
    /// How many times it was restarted.
    pub restarts: u32,
}

/// Why the system stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The root got SIGINT, SIGTERM or SIGHUP.
    Signal(i32),
    /// An actor's process got a signal; the whole system stops (mptools' behaviour).
    ActorSignalled {
        /// Which actor.
        actor: String,
        /// Which signal.
        signal: i32,
    },
    /// The application asked (the root's event handler, or `System::request_stop`).
    Requested(String),
    /// An actor failed and its restart type is
    /// [`StopSystemOnFailure`](crate::Restart::StopSystemOnFailure) (the default), or its
    /// restart failed.
    Fatal {
        /// Which actor.
        actor: String,
        /// Why.
        error: String,
    },
    /// Restarts exceeded the supervisor's intensity.
    RestartIntensity {
        /// The actor whose failure crossed the limit.
        actor: String,
    },
    /// The run-for deadline passed.
    RunFor,
}

impl StopReason {
    /// The root's exit code for this reason: 0 for a clean stop (a signal, a request, the
    /// run-for deadline), 2 when an actor failed, 3 when restarts exceeded the intensity.
    pub fn exit_code(&self) -> i32 {
        match self {
            StopReason::Signal(_)
            | StopReason::ActorSignalled { .. }
            | StopReason::Requested(_)
            | StopReason::RunFor => 0,
            StopReason::Fatal { .. } => 2,
            StopReason::RestartIntensity { .. } => 3,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::signals::signal_name;
        match self {
            StopReason::Signal(s) => write!(f, "{} to the root", signal_name(*s)),
            StopReason::ActorSignalled { actor, signal } => {
                write!(f, "{} to {actor}", signal_name(*signal))
            }
            StopReason::Requested(why) => write!(f, "requested: {why}"),
            StopReason::Fatal { actor, error } => write!(f, "{actor} failed: {error}"),
            StopReason::RestartIntensity { actor } => {
                write!(f, "restart intensity exceeded ({actor} kept failing)")
            }
            StopReason::RunFor => f.write_str("run-for deadline"),
        }
    }
}

/// The replies to `ask` of a whole system (every process), in the final [`Summary`].
///
/// `sent = taken + dead_letters`: a reply is taken when the asker got it as the answer to
/// its question; every other reply (late, to an asker that gave up or is gone, too large) is
/// a dead letter.
///
/// ```
/// use actor_core::ReplySummary;
/// let r = ReplySummary::new(10, 9);
/// assert_eq!(r.dead_letters, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplySummary {
    /// Replies the repliers made (`ReplyTo::send`), delivered or not.
    pub sent: u64,
    /// Replies an asker took as its answer.
    pub taken: u64,
    /// Replies nobody took: `sent - taken`.
    pub dead_letters: u64,
}

impl ReplySummary {
    /// The summary of `sent` replies of which `taken` were taken.
    pub fn new(sent: u64, taken: u64) -> Self {
        Self {
            sent,
            taken,
            dead_letters: sent.saturating_sub(taken),
        }
    }
}

/// What the root hands back when the system has stopped.
///
/// `main` can return it: the process then exits with [`Summary::exit_code`] after every
/// destructor ran (`std::process::exit` would skip them).
///
/// ```no_run
/// # use actor_core::{StopReason, Summary};
/// # fn run_the_system() -> Summary {
/// #     Summary { reason: StopReason::RunFor, actors: vec![], stop_millis: 0,
/// #         replies: Default::default() }
/// # }
/// fn main() -> Summary {
///     // ... build the system and spawn its children, then:
///     run_the_system() // exit code 0, 2 or 3, as the summary says
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Why it stopped.
    pub reason: StopReason,
    /// One line per actor, in start order.
    pub actors: Vec<ActorSummary>,
    /// The replies to `ask` in every process of the system.
    pub replies: ReplySummary,
    /// How long the stop took, from the trigger until every child was reaped.
    pub stop_millis: u64,
}

impl Summary {
    /// The exit code the root process should end with (see [`StopReason::exit_code`]).
    pub fn exit_code(&self) -> i32 {
        self.reason.exit_code()
    }

    /// The summary line of the actor with this name (the latest, if the name was given to
    /// a new child after the first was stopped).
    pub fn actor(&self, name: &str) -> Option<&ActorSummary> {
        self.actors.iter().rfind(|a| a.name == name)
    }

    /// The actors whose last end was a failure (a non-zero exit, a signal): with
    /// [`Restart::Temporary`](crate::Restart::Temporary) children, the system may stop
    /// cleanly (exit code 0) with some of them failed.
    ///
    /// ```
    /// # use actor_core::{ActorSummary, ExitStatus, StopReason, Summary};
    /// # let line = |name: &str, exit| ActorSummary { name: name.into(), pid: 1, exit,
    /// #     accepted: 0, handled: 0, dead_letters: 0, lost_in_crash: 0, unsent: 0,
    /// #     decode_failures: 0, refused: 0, restarts: 0 };
    /// let summary = Summary {
    ///     reason: StopReason::Requested("done".into()),
    ///     actors: vec![line("JOB-1", ExitStatus::Code(0)), line("JOB-2", ExitStatus::Code(2))],
    ///     stop_millis: 3,
    ///     replies: Default::default(),
    /// };
    /// assert_eq!(summary.exit_code(), 0);
    /// assert_eq!(summary.failed().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["JOB-2"]);
    /// ```
    pub fn failed(&self) -> impl Iterator<Item = &ActorSummary> {
        self.actors.iter().filter(|a| a.exit.is_failure())
    }
}

/// The root process's exit code: [`Summary::exit_code`] (0, 2 or 3).
impl std::process::Termination for Summary {
    fn report(self) -> std::process::ExitCode {
        (&self).into()
    }
}

/// [`Summary::exit_code`] as the `ExitCode` a `main` returns.
///
/// ```
/// # use actor_core::{StopReason, Summary};
/// use std::process::ExitCode;
/// let summary = Summary {
///     reason: StopReason::RunFor,
///     actors: vec![],
///     stop_millis: 0,
///     replies: Default::default(),
/// };
/// assert_eq!(ExitCode::from(&summary), ExitCode::SUCCESS);
/// ```
impl From<&Summary> for std::process::ExitCode {
    fn from(summary: &Summary) -> Self {
        // Every code a reason gives fits in a byte; anything else would be a failure.
        u8::try_from(summary.exit_code()).map_or(std::process::ExitCode::FAILURE, Into::into)
    }
}
