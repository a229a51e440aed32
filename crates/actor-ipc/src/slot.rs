//! One supervised child, typed: its inbox (kept by the root across restarts), its
//! arguments, and how to start a process for it.

use crate::child::type_key;
use crate::handshake::Setup;
use crate::sys::listener::{AcceptError, Listener};
use crate::sys::process;
use crate::sys::process::ChildProc;
use crate::sys::random::new_secret;
use crate::transport::inbox::{recv_contained, Contained};
use crate::transport::Addr;
use crate::wire::boot::{Boot, ENV_CHILD, ENV_NAME, ENV_SECRET, ENV_SERVER};
use crate::wire::counters::Counters;
use crate::wire::frame::Frame;
use actor_core::supervision::WATCH_POLL;
use actor_core::{Actor, AppClock, ChildOptions, ExitStatus, Report};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use std::time::{Duration, Instant};

/// Why a child could not be started. Every variant names the actor.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The actor type was not added to the [`Registry`](crate::Registry).
    #[error(
        "cannot start {actor}: its actor type {type_name} is not registered: add \
         .register::<{type_name}>() to the Registry that main builds before run_if_child()"
    )]
    Unregistered {
        /// The actor's name.
        actor: String,
        /// The Rust type.
        type_name: &'static str,
    },
    /// Another child already has this name.
    #[error("cannot start {actor}: another child already has this name")]
    DuplicateName {
        /// The actor's name.
        actor: String,
    },
    /// The system is stopping (a stop was requested or triggered): no new child starts.
    /// What [`RootCtx::spawn`](crate::RootCtx::spawn) says when the handler starts a child
    /// after the stop began.
    #[error("cannot start {actor}: the system is stopping")]
    SystemStopping {
        /// The actor's name.
        actor: String,
    },
    /// `init_args` or `startup` failed: the actor's error, level by level (it may come from
    /// another process), is the [`source`](std::error::Error::source).
    #[error("{actor} failed to start: {source}")]
    StartupFailed {
        /// The actor's name.
        actor: String,
        /// Why: `init_args failed` or `startup failed`, over the actor's error and its causes.
        source: actor_core::ErrorChain,
    },
    /// The process ended before it reported started.
    #[error("{actor} exited during its start ({status})")]
    Exited {
        /// The actor's name.
        actor: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// It did not report started within its start deadline: a process is killed, a thread
    /// (which cannot be killed) is asked to stop.
    #[error("{actor} did not start within {timeout:?} and was {}", if *.killed { "killed" } else { "asked to stop (a thread cannot be killed)" })]
    Timeout {
        /// The actor's name.
        actor: String,
        /// The deadline it missed.
        timeout: Duration,
        /// True for a process (killed), false for a thread.
        killed: bool,
    },
    /// The bootstrap failed (process, socket, or a peer that did not prove itself); the
    /// error that stopped it is the [`source`](std::error::Error::source).
    #[error("cannot start {actor}: {source}")]
    Bootstrap {
        /// The actor's name.
        actor: String,
        /// What went wrong (an I/O error, or a text).
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A signal (SIGINT, SIGTERM, SIGHUP to the root) asked the system to stop while the
    /// child was starting: the child was stopped. Not a failure: call
    /// [`System::run`](crate::System::run) next, which stops the children that did start, in
    /// order, and returns the summary of a clean stop (exit code 0).
    ///
    /// ```no_run
    /// # use actor_ipc::{StartError, System};
    /// # fn demo(mut system: System<()>, start: impl FnOnce(&mut System<()>) -> Result<(), StartError>) -> i32 {
    /// match start(&mut system) {
    ///     Ok(()) => {}
    ///     // Ctrl-C while starting: the same orderly stop as at any other moment.
    ///     Err(e) if e.is_interrupted() => {}
    ///     Err(e) => {
    ///         eprintln!("cannot start: {e}");
    ///         return 2;
    ///     }
    /// }
    /// system.run(|_root, _from, ()| {}).exit_code()
    /// # }
    /// ```
    #[error("the start of {actor} was interrupted by a signal asking the system to stop")]
    Interrupted {
        /// The actor's name.
        actor: String,
    },
}

impl StartError {
    /// True when a signal cut the start short ([`StartError::Interrupted`]): not a failure,
    /// the system is asked to stop.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, StartError::Interrupted { .. })
    }
}

/// A running incarnation: a process, or a thread of the root.
pub(crate) struct Running {
    pub kind: Incarnation,
    /// The process id, or the thread's id (as `ps -L` shows it).
    pub pid: u32,
    pub since: Instant,
}

pub(crate) enum Incarnation {
    Process {
        child: ChildProc,
        /// The child's link to the root: dropping it (or the root dying) closes it.
        _lifeline: IpcSender<()>,
    },
    Thread {
        handle: Option<std::thread::JoinHandle<i32>>,
        stop: actor_core::StopFlag,
        /// Set by the thread as its last act (it wakes the root too): its end is a matter
        /// of microseconds from then on.
        ending: std::sync::Arc<std::sync::atomic::AtomicBool>,
    },
}

/// How the root learns that an incarnation ended, for its wait.
pub(crate) enum Watch<'a> {
    /// The process's pidfd becomes readable.
    Fd(std::os::fd::BorrowedFd<'a>),
    /// Nothing to sleep on (a kernel without pidfds): look every [`WATCH_POLL`].
    Poll,
    /// A thread that said it is ending: look again very soon.
    Soon,
    /// A running thread: it wakes the root when it ends.
    Woken,
}

impl Running {
    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        match &mut self.kind {
            Incarnation::Process { child, .. } => child.try_wait().map(process::exit_status),
            Incarnation::Thread { handle, .. } => {
                if !handle.as_ref().is_some_and(|h| h.is_finished()) {
                    return None;
                }
                let code = handle.take().map(|h| h.join().unwrap_or(2)).unwrap_or(2);
                Some(ExitStatus::Code(code))
            }
        }
    }

    /// How the root's wait learns of this incarnation's end.
    pub fn watch(&self) -> Watch<'_> {
        match &self.kind {
            Incarnation::Process { child, .. } => child.pidfd().map_or(Watch::Poll, Watch::Fd),
            Incarnation::Thread { ending, .. } => {
                if ending.load(std::sync::atomic::Ordering::SeqCst) {
                    Watch::Soon
                } else {
                    Watch::Woken
                }
            }
        }
    }

    /// Sends a signal to a process. A thread cannot be signalled: a stop signal sets its stop
    /// flag instead, which a cooperative actor notices.
    pub fn signal(&self, signal: i32) {
        match &self.kind {
            Incarnation::Process { child, .. } => {
                child.signal(signal);
            }
            Incarnation::Thread { stop, .. } => {
                if signal != libc::SIGCONT {
                    stop.set();
                }
            }
        }
    }

    /// Waits `grace` for it to end; a process still running then is killed and reaped. A thread
    /// cannot be killed: `None` if it is still running.
    pub fn reap(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Incarnation::Process { child, .. } = &mut self.kind {
            return child.reap(grace).map(process::exit_status);
        }
        let until = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// "pid" or "thread", for log lines.
    pub fn id_kind(&self) -> &'static str {
        if self.is_thread() {
            "thread"
        } else {
            "pid"
        }
    }

    /// True for a thread of the root.
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, Incarnation::Thread { .. })
    }
}

/// What the supervisor needs of a child, whatever its actor type.
pub(crate) trait SlotOps: Send {
    /// Starts a new process for this child and waits until it reported started.
    fn start(&mut self, interrupted: &dyn Fn() -> bool) -> Result<Running, StartError>;
    /// Asks the running incarnation to stop, behind everything the root already sent it.
    fn request_stop(&self, deadline: Instant);
    /// The inbox's shared counters.
    fn counters(&self) -> &Counters;
    /// Drains what is left in the inbox (root side), counting dead letters.
    fn drain(&mut self, deadline: Instant) -> u64;
    /// Closes the inbox for good: senders get `Disconnected`.
    fn close(&mut self);
}

/// The start parameters every child of a system shares.
pub(crate) struct StartEnv<E: Send + 'static> {
    pub report_addr: Addr<Report<E>>,
    pub clock: AppClock,
    pub log_level: String,
    pub log_format: actor_core::log::LogFormat,
    pub stop_timeout: Duration,
    /// The private (0700) directory for bootstrap sockets.
    pub dir: std::path::PathBuf,
    /// The root's logger (refused bootstrap connections are logged).
    pub log: slog::Logger,
    /// Wakes the root's wait (an actor thread that ends).
    pub wake: crate::transport::wake::RootWake,
    /// The arguments a child process is started with: none for a program, the test filter
    /// that runs only the child entry in a test binary (see [`crate::enable_test_support`]).
    pub child_args: Vec<String>,
}

impl<E: Send + 'static> Clone for StartEnv<E> {
    fn clone(&self) -> Self {
        Self {
            report_addr: self.report_addr.clone(),
            clock: self.clock,
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            stop_timeout: self.stop_timeout,
            dir: self.dir.clone(),
            log: self.log.clone(),
            wake: self.wake.clone(),
            child_args: self.child_args.clone(),
        }
    }
}

pub(crate) struct TypedSlot<A: Actor> {
    pub name: String,
    pub args: A::Args,
    pub options: ChildOptions,
    pub inbox: Option<IpcReceiver<Frame<A::Msg>>>,
    pub addr: Addr<A::Msg>,
    pub counters: Counters,
    pub env: StartEnv<A::Event>,
}

type SetupOf<A> = Setup<<A as Actor>::Args, <A as Actor>::Msg, <A as Actor>::Event>;

impl<A: Actor> TypedSlot<A> {
    pub fn new(
        name: &str,
        args: A::Args,
        options: ChildOptions,
        env: StartEnv<A::Event>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = ipc::channel::<Frame<A::Msg>>()?;
        let counters = Counters::new();
        let addr = Addr::new_bounded(
            name.to_string(),
            tx,
            counters.clone(),
            options.mailbox_capacity,
            options.max_message_bytes,
            options.mailbox_bytes as u64,
        );
        Ok(Self {
            name: name.to_string(),
            args,
            options,
            inbox: Some(rx),
            addr,
            counters,
            env,
        })
    }

    fn err(&self, why: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StartError {
        StartError::Bootstrap {
            actor: self.name.clone(),
            source: why.into(),
        }
    }

    fn handshake(
        &self,
        listener: crate::sys::listener::Listener,
        secret: &str,
        child: &mut ChildProc,
        deadline: Instant,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<IpcSender<()>, StartError> {
        let pid = child.id();
        let conn = listener
            .accept_from::<Boot, StartError>(pid, &self.env.log, || {
                self.check_alive(child, deadline, interrupted)
            })
            .map_err(|e| match e {
                AcceptError::Stopped(e) => e,
                AcceptError::Io(e) => self.err(format!("bootstrap accept: {e}")),
            })?;
        // The socket file goes now: the child is connected, nobody else may try.
        drop(listener);
        let hello = loop {
            match recv_contained(&conn, WATCH_POLL) {
                Ok(Ok(msg)) => break msg,
                Ok(Err(ipc_channel::TryRecvError::Empty)) => {
                    self.check_alive(child, deadline, interrupted)?
                }
                Ok(Err(e)) => return Err(self.closed_or(child, format!("bootstrap hello: {e}"))),
                Err(Contained::Panicked(why)) => {
                    return Err(self.err(format!("malformed bootstrap hello: {why}")))
                }
            }
        };
        let setup_tx = match hello {
            Boot::Hello {
                secret: s, setup, ..
            } if s == secret => setup.to::<SetupOf<A>>(),
            Boot::Hello { .. } => {
                return Err(self.err("the spawned child did not present its secret"))
            }
            _ => return Err(self.err("the bootstrap connection did not start with a hello")),
        };
        let inbox = self
            .inbox
            .as_ref()
            .ok_or_else(|| self.err("the inbox is closed"))?;
        let child_inbox =
            crate::sys::fd::duplicate(inbox).map_err(|e| self.err(format!("inbox: {e}")))?;
        let (lifeline_tx, lifeline_rx) =
            ipc::channel::<()>().map_err(|e| self.err(format!("lifeline: {e}")))?;
        setup_tx
            .send(Setup {
                name: self.name.clone(),
                args: self.args.clone(),
                inbox: child_inbox,
                counters: self.counters.clone(),
                root: self.env.report_addr.clone(),
                myself: self.addr.clone(),
                lifeline: lifeline_rx,
                clock: self.env.clock,
                log_level: self.env.log_level.clone(),
                log_format: self.env.log_format,
                stop_timeout_ms: self.env.stop_timeout.as_millis() as u64,
            })
            .map_err(|e| self.err(format!("sending the setup: {e}")))?;
        loop {
            match recv_contained(&conn, WATCH_POLL) {
                Ok(Ok(Boot::Started)) => return Ok(lifeline_tx),
                Ok(Ok(Boot::StartFailed(why))) => {
                    return Err(StartError::StartupFailed {
                        actor: self.name.clone(),
                        source: why,
                    })
                }
                Ok(Ok(_)) | Ok(Err(ipc_channel::TryRecvError::Empty)) => {}
                Ok(Err(e)) => {
                    return Err(self.closed_or(
                        child,
                        format!("the child closed its bootstrap connection: {e}"),
                    ))
                }
                Err(Contained::Panicked(why)) => {
                    return Err(self.err(format!("malformed bootstrap message: {why}")))
                }
            }
            self.check_alive(child, deadline, interrupted)?;
        }
    }

    /// The bootstrap connection closed: the child is gone or going. Its exit status if it
    /// comes within a second, else `why`.
    fn closed_or(&self, child: &mut ChildProc, why: String) -> StartError {
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Some(st) = child.try_wait() {
                return StartError::Exited {
                    actor: self.name.clone(),
                    status: process::exit_status(st),
                };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.err(why)
    }

    fn check_alive(
        &self,
        child: &mut ChildProc,
        deadline: Instant,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<(), StartError> {
        if let Some(st) = child.try_wait() {
            return Err(StartError::Exited {
                actor: self.name.clone(),
                status: process::exit_status(st),
            });
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout {
                actor: self.name.clone(),
                timeout: self.options.start_timeout,
                killed: true,
            });
        }
        if interrupted() {
            return Err(StartError::Interrupted {
                actor: self.name.clone(),
            });
        }
        Ok(())
    }
}

impl<A: Actor> SlotOps for TypedSlot<A> {
    fn start(&mut self, interrupted: &dyn Fn() -> bool) -> Result<Running, StartError> {
        let listener = Listener::bind(&self.env.dir)
            .map_err(|e| self.err(format!("bootstrap socket: {e}")))?;
        let secret = new_secret().map_err(|e| self.err(e))?;
        crate::wire::counters::next_incarnation(&self.counters);
        let server = listener.name();
        let mut cmd = process::child_command(
            &self.name,
            &[
                (ENV_CHILD, type_key::<A>()),
                (ENV_SERVER, &server),
                (ENV_SECRET, &secret),
                (ENV_NAME, &self.name),
            ],
        )
        .map_err(|e| self.err(format!("command: {e}")))?;
        cmd.args(&self.env.child_args);
        let mut child =
            ChildProc::new(process::spawn(cmd).map_err(|e| self.err(format!("spawn: {e}")))?);
        let deadline = Instant::now() + self.options.start_timeout;
        match self.handshake(listener, &secret, &mut child, deadline, interrupted) {
            Ok(lifeline) => Ok(Running {
                pid: child.id(),
                kind: Incarnation::Process {
                    child,
                    _lifeline: lifeline,
                },
                since: Instant::now(),
            }),
            Err(e) => {
                // A child that failed its startup exits by itself; one that hangs is killed.
                let grace = match e {
                    StartError::StartupFailed { .. } => Duration::from_secs(1),
                    _ => Duration::ZERO,
                };
                child.reap(grace);
                Err(e)
            }
        }
    }

    fn request_stop(&self, deadline: Instant) {
        let incarnation = crate::wire::counters::ask_stop(&self.counters);
        self.addr.send_stop(deadline, incarnation);
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn drain(&mut self, deadline: Instant) -> u64 {
        match &self.inbox {
            Some(rx) => crate::transport::inbox::drain_in_root(rx, &self.counters, deadline),
            None => 0,
        }
    }

    fn close(&mut self) {
        Counters::set(&self.counters.get().gone, 1);
        self.inbox = None;
    }
}
