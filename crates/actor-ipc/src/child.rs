//! The child's side: the [`Registry`] that `main` hands control to first, and the entry
//! point that runs one actor in its own process.

use crate::handshake::Setup;
use crate::transport::inbox::IpcInbox;
use crate::transport::{flush_all, Addr};
use crate::wire::boot::{Boot, ENV_CHILD, ENV_NAME, ENV_SECRET, ENV_SERVER, SETUP_TIMEOUT};
use crate::wire::counters::Counters;
use actor_core::lifecycle::{self, Outcome};
use actor_core::{log, signals, Actor, Context, EventPort, Report, SendTimeoutError, StopFlag};
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a child whose root died may take to stop cleanly before it exits hard.
pub const ORPHAN_GRACE: Duration = Duration::from_millis(300);

type Entry = fn() -> i32;

/// The actor types a program can run as children.
///
/// Build it first thing in `main`, and call [`run_if_child`](Registry::run_if_child): in a
/// child process it runs the actor and exits, never returning to the rest of `main`.
///
/// ```no_run
/// use actor_ipc::Registry;
/// # use actor_core::{Actor, ActorError, Context};
/// # struct Worker;
/// # impl Actor for Worker {
/// #     type Args = (); type Msg = (); type Event = ();
/// #     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Worker) }
/// #     fn main_loop(&mut self, _: &mut Context<Self>) -> Result<(), ActorError> { Ok(()) }
/// # }
/// fn main() {
///     let registry = Registry::new().register::<Worker>().run_if_child();
///     // Only the root gets here.
/// # let _ = registry;
/// }
/// ```
#[derive(Default, Clone)]
pub struct Registry {
    /// By [`Actor::KEY`] (or the type's name): the type, to refuse two types with one key,
    /// and its child entry.
    entries: HashMap<&'static str, (std::any::TypeId, Entry)>,
    /// In a test binary: the path of the test that runs the child entry
    /// ([`crate::enable_test_support`]), without the crate's name.
    test_entry: Option<String>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds actor type `A`, under its key ([`Actor::KEY`], by default its type name).
    ///
    /// # Panics
    ///
    /// When another type was registered under the same key: the program could not tell
    /// which one a child process must run. Give one of them its own [`Actor::KEY`].
    pub fn register<A: Actor>(mut self) -> Self {
        let key = type_key::<A>();
        let id = std::any::TypeId::of::<A>();
        if let Some((other, _)) = self.entries.get(key) {
            assert!(
                *other == id,
                "two actor types are registered under the key {key:?}: give one of them its \
                 own `const KEY: Option<&'static str> = Some(\"...\")` in its impl Actor"
            );
        }
        self.entries.insert(key, (id, child_main::<A>));
        self
    }

    /// In a child process started by mpactor: runs the actor it was started for, then exits
    /// the process with the actor's exit code. In any other process: returns the registry.
    pub fn run_if_child(self) -> Self {
        let Ok(key) = std::env::var(ENV_CHILD) else {
            return self;
        };
        // Whatever this child starts itself must not take itself for an mpactor child.
        std::env::remove_var(ENV_CHILD);
        let code = match self.entries.get(key.as_str()) {
            Some((_, entry)) => entry(),
            None => {
                actor_core::log::stderr_line(&format!(
                    "mpactor: this binary has no actor type {key:?} registered"
                ));
                2
            }
        };
        // A third signal ends the child with 128 + signal, whatever its run came to.
        actor_core::signals::yield_to_hard_stop();
        std::process::exit(code)
    }

    /// Marks a registry built in a test binary by [`crate::enable_test_support`]: children
    /// re-execute the test binary with a filter that runs only the test at `entry` (its
    /// `module_path!()`-style path, crate name first), which hands control to the actor.
    #[doc(hidden)]
    pub fn __test_entry(mut self, entry: &str) -> Self {
        // libtest names a test by its path inside the crate.
        let path = entry.split_once("::").map_or(entry, |(_, rest)| rest);
        self.test_entry = Some(path.to_string());
        self
    }

    /// The arguments a child process is started with.
    pub(crate) fn child_args(&self) -> Vec<String> {
        match &self.test_entry {
            // Only the entry test runs (exactly that one, on the main thread's runner, with
            // the actor's output not captured by the harness).
            Some(path) => [
                path.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn contains<A: Actor>(&self) -> bool {
        self.entries
            .get(type_key::<A>())
            .is_some_and(|(id, _)| *id == std::any::TypeId::of::<A>())
    }
}

/// How the root names actor type `A` to a child process: [`Actor::KEY`], or its type name.
pub(crate) fn type_key<A: Actor>() -> &'static str {
    A::KEY.unwrap_or_else(std::any::type_name::<A>)
}

struct BootEnv {
    server: String,
    secret: String,
    name: String,
}

fn boot_env() -> Result<BootEnv, String> {
    let get = |key: &str| std::env::var(key).map_err(|_| format!("{key} is not set"));
    let env = BootEnv {
        server: get(ENV_SERVER)?,
        secret: get(ENV_SECRET)?,
        name: get(ENV_NAME)?,
    };
    for key in [ENV_SERVER, ENV_SECRET, ENV_NAME] {
        std::env::remove_var(key);
    }
    Ok(env)
}

/// Sends the actor's events to the root as [`Report::App`].
pub(crate) struct RootPort<E: Send + 'static> {
    pub root: Addr<Report<E>>,
    pub name: String,
}

impl<E: serde::Serialize + Send + 'static> EventPort<E> for RootPort<E> {
    fn emit(&self, event: E) -> Result<(), SendTimeoutError<E>> {
        let report = Report::App {
            actor: self.name.clone(),
            event,
        };
        self.root.send(report).map_err(|e| {
            let timeout = e.is_timeout();
            let Report::App { event, .. } = e.into_inner() else {
                unreachable!("an App report goes in, an App report comes back")
            };
            if timeout {
                SendTimeoutError::Timeout(event)
            } else {
                SendTimeoutError::Disconnected(event)
            }
        })
    }
}

fn child_main<A: Actor>() -> i32 {
    let boot = match boot_env() {
        Ok(b) => b,
        Err(e) => {
            actor_core::log::stderr_line(&format!("mpactor child: bad environment: {e}"));
            return 2;
        }
    };
    crate::sys::process::set_process_name(&boot.name);
    // Rust's standard library handles SIGSEGV to report stack overflows, and a SIGSEGV that
    // is only sent (`kill -SEGV`), not a fault, then passes without effect. An actor's process
    // must end on it like on any fatal signal, so the root sees "killed by SIGSEGV": restore
    // the default action (a real stack overflow still ends the process by SIGSEGV).
    crate::sys::process::default_segv();
    if let Err(e) = crate::sys::fd::check_layout() {
        actor_core::log::stderr_line(&format!("mpactor child {}: {e}", boot.name));
        return 2;
    }
    let setup = match handshake::<A>(&boot) {
        Ok(s) => s,
        Err(e) => {
            actor_core::log::stderr_line(&format!(
                "mpactor child {}: bootstrap failed: {e}",
                boot.name
            ));
            return 2;
        }
    };
    let (conn, setup) = setup;
    // The root's private bootstrap folder (mpactor-<root pid>-<random>): if the root dies
    // without its stop (SIGKILL), its orphans remove it, so that nothing is left in $TMPDIR.
    let root_dir = std::path::Path::new(&boot.server)
        .parent()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mpactor-"))
        })
        .map(std::path::Path::to_path_buf);
    run_actor::<A>(conn, setup, root_dir)
}

type SetupOf<A> = Setup<<A as Actor>::Args, <A as Actor>::Msg, <A as Actor>::Event>;

fn handshake<A: Actor>(boot: &BootEnv) -> Result<(IpcSender<Boot>, SetupOf<A>), String> {
    let conn: IpcSender<Boot> =
        IpcSender::connect(boot.server.clone()).map_err(|e| format!("connect: {e}"))?;
    let (setup_tx, setup_rx) = ipc::channel::<SetupOf<A>>().map_err(|e| format!("channel: {e}"))?;
    conn.send(Boot::Hello {
        secret: boot.secret.clone(),
        pid: std::process::id(),
        setup: setup_tx.to_opaque(),
    })
    .map_err(|e| format!("hello: {e}"))?;
    // A signal during the wait (a Ctrl-C while the system starts) only wakes it early.
    let setup = crate::transport::inbox::recv_until(&setup_rx, SETUP_TIMEOUT)
        .map_err(|e| format!("no setup from the root within {SETUP_TIMEOUT:?}: {e}"))?;
    Ok((conn, setup))
}

fn run_actor<A: Actor>(
    conn: IpcSender<Boot>,
    setup: SetupOf<A>,
    root_dir: Option<std::path::PathBuf>,
) -> i32 {
    let level = log::parse_level(&setup.log_level).unwrap_or(log::DEFAULT_LEVEL);
    let mut logh = log::init_with(&setup.name, setup.clock, level, setup.log_format);
    let logger = logh.logger.clone();
    crate::transport::set_writer_log(&logger);
    // Replies this process makes and takes are counted where the root reads them.
    if let Some(counters) = setup.root.counters() {
        crate::transport::ask::set_reply_counters(counters);
    }
    let pid = std::process::id();
    let name = setup.name.clone();
    let stop = StopFlag::new();
    // Whoever sets the stop flag (the signal thread when the stop must be at once, the
    // lifeline when the root died) wakes the actor's receive with a wake frame in its own
    // inbox: nothing in this process polls.
    match setup.myself.ipc_sender().and_then(crate::transport::wake::wake_inbox) {
        Some(wake) => stop.on_set(wake),
        None => slog::warn!(
            logger,
            "cannot wake the actor's own receive: a stop set by a signal or the root's death is seen at its next message or within 10 s"
        ),
    }
    let root_gone = Arc::new(AtomicBool::new(false));
    // Set once the actor's life is over: what happens to the root after that is no news.
    let finished = Arc::new(AtomicBool::new(false));
    let parent = crate::sys::process::parent_pid();

    // Signals: the first two are reported to the root, which stops the whole system in order;
    // the third ends this process at once.
    {
        let root = setup.root.clone();
        let name = name.clone();
        let log = logger.clone();
        let stop = stop.clone();
        let root_gone = root_gone.clone();
        let counters = setup.counters.clone();
        let installed = signals::install(
            move |signal, count| {
                slog::info!(
                    log,
                    "got {} ({count} of {})",
                    signals::signal_name(signal),
                    signals::HARD_STOP_AT
                );
                let report = Report::Signalled {
                    actor: name.clone(),
                    signal,
                    count,
                };
                // A signal that comes after the root died (its SIGTERM at the deadline raced its
                // death, a user's Ctrl-C): then the
                // parent has changed, and there is nobody to report to.
                if crate::sys::process::parent_pid() != parent {
                    root_gone.store(true, Ordering::SeqCst);
                }
                let asked = Counters::load(&counters.get().stop_requested);
                if asked == crate::wire::counters::STOP_NOW || root_gone.load(Ordering::SeqCst) {
                    // The root's stop deadline passed (it signals us now), or nobody is there
                    // to stop us in order: stop now.
                    stop.set();
                } else if asked == crate::wire::counters::STOP_ASKED {
                    // A clean stop is under way: every message accepted before the stop
                    // request is still handled, within the root's deadline (at which the root
                    // signals with STOP_NOW set). The root still hears of the signal: it may
                    // have asked for this stop only to restart us, and a signal to any actor
                    // stops the whole system.
                    slog::info!(log, "already stopping: the messages queued before the stop request are handled first");
                    let _ = root.try_send(report);
                } else if root.try_send(report).is_err() {
                    stop.set();
                }
            },
            |_| {},
        );
        if let Err(e) = installed {
            slog::error!(logger, "cannot install signal handlers: {e}");
        }
    }
    watch_lifeline(
        setup.lifeline,
        Orphaning {
            stop: stop.clone(),
            root_gone: root_gone.clone(),
            finished: finished.clone(),
            root_dir,
        },
        logger.clone(),
    );

    slog::info!(logger, "started"; "pid" => pid);
    let stop_timeout = Duration::from_millis(setup.stop_timeout_ms);
    let inbox = IpcInbox::new(setup.inbox, setup.counters, &name, logger.clone());
    let port = RootPort {
        root: setup.root.clone(),
        name: name.clone(),
    };
    let mut ctx: Context<A> = Context::new(
        name.clone(),
        logger.clone(),
        setup.clock,
        stop,
        Box::new(inbox),
        Box::new(port),
    );
    ctx.set_extension(crate::transport::myself::Myself(setup.myself));
    let outcome = lifecycle::run::<A>(setup.args, &mut ctx, |_| {
        let _ = conn.send(Boot::Started);
    });
    // A failed start makes the root drop the lifeline at once: that is no orphaning.
    finished.store(matches!(outcome, Outcome::StartFailed(_)), Ordering::SeqCst);
    if let Outcome::StartFailed(why) = &outcome {
        let _ = conn.send(Boot::StartFailed(why.clone()));
    }

    let deadline = Instant::now() + stop_timeout;
    // Messages this process took out of the inbox but did not hand to the actor: after a
    // clean end, dead letters drained here; after a failure, lost with the failed
    // incarnation (the root says how many). What is still queued in the inbox stays there
    // for the next incarnation, or for the root's drain at the stop.
    let drained = if matches!(outcome, Outcome::Failed(_)) {
        0
    } else {
        ctx.drain_inbox(deadline)
    };
    if drained > 0 {
        slog::warn!(
            logger,
            "{drained} messages received but not handled, counted as dead letters"
        );
    }
    let undelivered = flush_all(deadline);
    if undelivered > 0 {
        slog::warn!(
            logger,
            "{undelivered} messages could not be delivered by the stop deadline"
        );
    }
    if let Outcome::Failed(error) = &outcome {
        let _ = setup.root.try_send(Report::Fatal {
            actor: name.clone(),
            error: error.to_string(),
        });
    }
    let _ = setup.root.try_send(Report::Stopped {
        actor: name.clone(),
        drained,
        undelivered,
    });
    flush_all(Instant::now() + Duration::from_millis(500));

    let code = match (&outcome, root_gone.load(Ordering::SeqCst)) {
        (Outcome::Clean, false) => 0,
        (Outcome::Clean, true) => 1,
        (other, _) => other.exit_code(),
    };
    match &outcome {
        Outcome::Clean => {
            slog::info!(logger, "Normal shutdown"; "pid" => pid, "handled" => ctx.handled(), "exit" => code)
        }
        Outcome::StartFailed(why) | Outcome::Failed(why) => {
            slog::error!(logger, "Failed: {why}"; "pid" => pid, "handled" => ctx.handled(), "exit" => code)
        }
    }
    drop(ctx);
    logh.flush();
    code
}

/// What a child does when its root is gone.
struct Orphaning {
    stop: StopFlag,
    root_gone: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
    /// The dead root's private folder, removed (a root that was killed could not).
    root_dir: Option<std::path::PathBuf>,
}

/// Watches the link to the root: when it closes, the root is gone; the actor is asked to
/// stop (the stop flag wakes its receive) and, if it has not exited within
/// [`ORPHAN_GRACE`], the process exits hard. A root killed with SIGKILL thus leaves no actor
/// behind. Once `finished` is set (the actor's life is over, the process is on its way out),
/// a closing link is expected and says nothing.
fn watch_lifeline(lifeline: IpcReceiver<()>, orphaning: Orphaning, log: slog::Logger) {
    let Orphaning {
        stop,
        root_gone,
        finished,
        root_dir,
    } = orphaning;
    let spawned = std::thread::Builder::new()
        .name("mpactor-lifeline".into())
        .spawn(move || {
            // Blocks until the root's end of the lifeline closes: only the root holds it
            // (close-on-exec keeps it out of every other process), so it closes exactly when
            // the root exits, however it dies (the kernel closes a killed process's
            // descriptors). No deadline: this thread only waits for that, and ends with the
            // process. The root never sends on it; a signal landing on this thread
            // (EINTR) just waits again.
            loop {
                match lifeline.recv() {
                    Ok(()) => {}
                    Err(ipc_channel::IpcError::Io(e))
                        if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if finished.load(Ordering::SeqCst) {
                return;
            }
            root_gone.store(true, Ordering::SeqCst);
            slog::warn!(log, "the root is gone: stopping");
            stop.set();
            if let Some(dir) = &root_dir {
                // Every orphan tries; the first wins, the others find it gone.
                let _ = std::fs::remove_dir_all(dir);
            }
            std::thread::sleep(ORPHAN_GRACE);
            slog::error!(
                log,
                "still running {ORPHAN_GRACE:?} after the root died: exiting now"
            );
            crate::sys::process::exit_now(1);
        });
    if let Err(e) = spawned {
        actor_core::log::stderr_line(&format!("mpactor: cannot watch the root: {e}"));
    }
}
