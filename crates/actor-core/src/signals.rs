//! The signal policy: every process handles SIGINT, SIGTERM and SIGHUP with one counter.
//! The first and second ask for a clean stop; the third ends the process at once.
//!
//! Every delivery counts. signal-hook's iterator reports a signal once however often it
//! arrived since the last look, so three Ctrl-Cs in quick succession (a script, an impatient
//! user) would count as one; here each delivery writes one byte into a socket of its own
//! signal (signal-hook's async-signal-safe pipe registration), and the signal thread counts
//! bytes.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

/// The signals every mpactor process handles.
pub const HANDLED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The count at which a signal ends the process at once.
pub const HARD_STOP_AT: u32 = 3;

/// The signal whose hard stop (the third) is under way in this process, 0 if none.
static HARD_STOP: AtomicI32 = AtomicI32::new(0);

/// The signal whose hard stop is under way in this process (the third of them arrived, and
/// the signal thread is ending the process with `128 + signal`), if any.
pub fn hard_stop() -> Option<i32> {
    match HARD_STOP.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// For code about to end the process its own way (a root whose run just ended, a child
/// about to exit): if a hard stop is under way, the process ends with its `128 + signal`,
/// never with the ordinary code. The hard stop kills the children first, so the root's run
/// may well end on its own in that moment, and without this the first of the two exits
/// would win. Waits (at most a second) for the signal thread to end the process, then ends
/// it itself. Returns at once otherwise.
pub fn yield_to_hard_stop() {
    if let Some(signal) = hard_stop() {
        std::thread::sleep(std::time::Duration::from_secs(1));
        std::process::exit(128 + signal);
    }
}

/// What the process has seen of signals so far.
#[derive(Debug, Default)]
pub struct SignalState {
    count: AtomicU32,
    last: AtomicI32,
    /// Set by the signal handler itself, not by the signal thread: see [`arrived`](Self::arrived).
    arrived: Arc<AtomicBool>,
}

impl SignalState {
    /// How many handled signals arrived.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }
    /// The last one (0 if none).
    pub fn last(&self) -> i32 {
        self.last.load(Ordering::SeqCst)
    }
    /// True once a handled signal was delivered to this process, even if the signal thread
    /// has not counted it yet (on a loaded machine it may not run for a while). A signal sent
    /// to a process group is pending in every member at once and handled as soon as any
    /// thread of the process returns to user mode: code that learns of another member's copy
    /// (the root, from a child's report) finds this set if its own process got one too.
    pub fn arrived(&self) -> bool {
        self.arrived.load(Ordering::SeqCst)
    }
}

/// Installs the process's handler. `soft(signal, count)` runs (on a dedicated thread, so it
/// may log and send, but it must not block: the next signal waits for it) for the first and
/// second signal; `hard(signal)` for the third and later, and the process then exits with
/// `128 + signal` if `hard` returned.
pub fn install<S, H>(mut soft: S, hard: H) -> io::Result<Arc<SignalState>>
where
    S: FnMut(i32, u32) + Send + 'static,
    H: Fn(i32) + Send + 'static,
{
    let state = Arc::new(SignalState::default());
    let mut readers = Vec::with_capacity(HANDLED.len());
    for signal in HANDLED {
        let (read, write) = UnixStream::pair()?;
        // Read until empty, then wait in poll: the reading end never blocks.
        read.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(signal, write)?;
        signal_hook::flag::register(signal, state.arrived.clone())?;
        readers.push((signal, read));
    }
    let seen = state.clone();
    std::thread::Builder::new()
        .name("mpactor-signals".into())
        .spawn(move || {
            // This thread exists only to wait for signals; it ends with the process.
            let mut buf = [0u8; 64];
            loop {
                let mut fds: Vec<rustix::event::PollFd<'_>> = readers
                    .iter()
                    .map(|(_, r)| rustix::event::PollFd::new(r, rustix::event::PollFlags::IN))
                    .collect();
                // No timeout: a signal is the only thing this thread waits for. EINTR (a
                // signal landing on this very thread) just looks again.
                if rustix::event::poll(&mut fds, None).is_err() {
                    continue;
                }
                drop(fds);
                for (signal, reader) in readers.iter_mut() {
                    // One byte per delivery.
                    while let Ok(n) = reader.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        for _ in 0..n {
                            let count = seen.count.fetch_add(1, Ordering::SeqCst) + 1;
                            seen.last.store(*signal, Ordering::SeqCst);
                            if count >= HARD_STOP_AT {
                                HARD_STOP.store(*signal, Ordering::SeqCst);
                                hard(*signal);
                                std::process::exit(128 + *signal);
                            }
                            soft(*signal, count);
                        }
                    }
                }
            }
        })?;
    Ok(state)
}

/// The conventional name of a signal number (`SIGTERM`), or `signal N`.
///
/// ```
/// assert_eq!(actor_core::signals::signal_name(15), "SIGTERM");
/// ```
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGCONT => "SIGCONT",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}
