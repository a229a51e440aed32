//! Logging: slog through slog-async, one line per record, as text (the default)
//!
//! ```text
//! DEBUG  0:00.013 SEND       Entering startup
//! INFO   0:03.128 STATUS     Normal shutdown pid=4242
//! ```
//!
//! (level, elapsed time on the [`AppClock`], the process's actor name, the message, then the
//! record's key-value pairs) or as JSON, one object per line ([`LogFormat`], chosen by
//! [`SystemConfig::log_format`](crate::SystemConfig::log_format) or [`FORMAT_ENV`]):
//!
//! ```text
//! {"time":"0:03.128","elapsed":3.128554,"level":"INFO","actor":"STATUS","pid":4242,"msg":"Normal shutdown","kv_pid":4242}
//! ```
//!
//! Each line is written with a single `write` to stderr (colours included, on a terminal) so
//! lines of different processes sharing one terminal or pipe do not interleave.
//!
//! Records of libraries that log through the `log` crate or emit `tracing` events come out in
//! the same stream, with the name of the actor they were logged in ([`bridge`]).
//!
//! The log never stalls the program. Records go through a bounded queue to a writer thread;
//! when stderr does not take lines (a pipe nobody reads, a terminal paused with Ctrl-S) the
//! queue fills and further records are dropped at once, counted, and a line says how many
//! once lines flow again. The writer thread only writes what stderr can take without blocking
//! (it waits for room in bounded slices), and the final flush of a process has a deadline
//! ([`FLUSH_DEADLINE`]): an actor, the root, the signal path and exit never wait on the log.

pub mod bridge;
mod choice;
mod json;

pub use choice::{
    format_from, level_from, parse_level, LogFormat, LogLevel, UnknownName, DEFAULT_LEVEL,
    FORMAT_ENV, LOG_ENV,
};

use crate::clock::{AppClock, Stamp};
use parking_lot::Mutex;
use slog::{Drain, Level, OwnedKVList, Record, KV};
use slog_term::{Decorator, RecordDecorator};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a process's final [`LogHandle::flush`] waits for stderr to take the lines
/// still queued; what it cannot write by then is dropped.
pub const FLUSH_DEADLINE: Duration = Duration::from_millis(300);

/// A running logger and the guard that flushes it.
///
/// Drop (or [`LogHandle::flush`]) before the process exits, or the last lines are lost in the
/// async queue.
pub struct LogHandle {
    /// The logger to clone into whatever logs.
    pub logger: slog::Logger,
    guard: Option<slog_async::AsyncGuard>,
    out: Arc<Output>,
}

impl LogHandle {
    /// Flushes every queued line and stops the writer thread, within [`FLUSH_DEADLINE`]: a
    /// stderr that takes nothing (a pipe nobody reads) costs that long, never more. The logger
    /// then drops records.
    pub fn flush(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        // A stderr that took nothing for a while (a pipe nobody reads) will not take the
        // rest either: drop it at once rather than make every process's exit wait.
        let no_room = matches!(room_on_stderr(Duration::ZERO), Room::None);
        let deadline = if no_room || self.out.stalled.load(Ordering::SeqCst) {
            Instant::now()
        } else {
            Instant::now() + FLUSH_DEADLINE
        };
        *self.out.closing.lock() = Some(deadline);
        // The guard's drop joins the writer thread, which may be inside a write that stderr
        // does not take (a terminal paused with Ctrl-S blocks even a small write): dropped
        // on a thread of its own and waited for under the deadline.
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let dropper = std::thread::Builder::new()
            .name("mpactor-log-flush".into())
            .spawn(move || {
                drop(guard);
                let _ = done_tx.send(());
            });
        if dropper.is_ok() {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = done_rx.recv_timeout(left + Duration::from_millis(50));
        }
    }

    /// Lines the writer thread dropped because stderr did not take them by the flush
    /// deadline (the queue's own drops are reported in the log itself).
    pub fn dropped_at_exit(&self) -> u64 {
        self.out.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Builds this process's logger in the format [`FORMAT_ENV`] names (text by default): see
/// [`init_with`].
pub fn init(actor: &str, clock: AppClock, level: Level) -> LogHandle {
    init_with(actor, clock, level, format_from(None))
}

/// Builds this process's logger: lines in `format` carry `actor` as the actor's name and the
/// elapsed time on `clock`; records below `level` are dropped. Records of the `log` and
/// `tracing` crates logged in this process go to it too ([`bridge`]).
///
/// ```
/// use actor_core::log::{init_with, LogFormat};
/// use actor_core::AppClock;
///
/// let mut handle = init_with("MAIN", AppClock::start(), slog::Level::Info, LogFormat::Json);
/// slog::info!(handle.logger, "ready"; "port" => 9999);
/// // Before the process exits: write what is queued, within FLUSH_DEADLINE.
/// handle.flush();
/// ```
pub fn init_with(actor: &str, clock: AppClock, level: Level, format: LogFormat) -> LogHandle {
    let out = Arc::new(Output::default());
    let (drain, guard) = match format {
        LogFormat::Text => {
            let colours = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let decorator = LineDecorator::new(out.clone(), colours);
            build_async(LineFormat::new(actor, clock, decorator), level)
        }
        LogFormat::Json => build_async(json::JsonFormat::new(actor, clock, out.clone()), level),
    };
    // Filtered here too, before the async queue: a record below the level is dropped at
    // the call site instead of being serialised and sent to the writer thread.
    let logger = slog::Logger::root(
        Stamped {
            inner: drain.filter_level(level).fuse(),
            clock,
        }
        .fuse(),
        slog::o!(),
    );
    bridge::install(&logger, level);
    LogHandle {
        out,
        logger,
        guard: Some(guard),
    }
}

/// The record key that carries the time of the logging call (microseconds on the
/// [`AppClock`]) to the writer thread.
const STAMP_KEY: &str = "mpactor_elapsed_us";

/// Stamps each record with the application time at the logging call: the async writer
/// formats lines later, and a line must show when it was logged, not when it was written
/// (else lines of one process could appear out of order against another's).
struct Stamped<D> {
    inner: D,
    clock: AppClock,
}

impl<D: Drain> Drain for Stamped<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<D::Ok, D::Err> {
        let stamp = self.clock.elapsed().as_micros() as u64;
        let kv = (slog::SingleKV(STAMP_KEY, stamp), record.kv());
        let rstatic = slog::RecordStatic {
            location: record.location(),
            tag: record.tag(),
            level: record.level(),
        };
        let stamped = Record::new(&rstatic, record.msg(), slog::BorrowedKV(&kv));
        self.inner.log(&stamped, values)
    }
}

/// Lines the async logger holds before a logging thread waits (see [`init`]).
const LOG_QUEUE: usize = 1024;

fn build_async<F>(
    fmt: F,
    level: Level,
) -> (
    slog::IgnoreResult<slog_async::Async>,
    slog_async::AsyncGuard,
)
where
    F: Drain<Ok = ()> + Send + 'static,
{
    // Errors ignored, not fused: a line that cannot be formatted (a key-value whose own
    // serialisation fails) is lost alone; fused, it would end the writer thread with a panic.
    let drain = fmt.filter_level(level).ignore_res();
    let (async_drain, guard) = slog_async::Async::new(drain)
        // The queue is preallocated and touched in full (~106 bytes a slot): 8192 slots were
        // 0.85 MiB resident in every process, a fifth of an idle actor. 1024 lines of backlog
        // still absorb any burst a terminal or pipe can take.
        .chan_size(LOG_QUEUE)
        // A full queue (stderr not taking lines) drops the record at once rather than
        // blocking the thread that logs: the log must never stall an actor, the root or the
        // signal path. The drops are counted, and a line says how many once the queue has
        // room again.
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .build_with_guard();
    // Errors ignored, not fused: once the guard has flushed and stopped the writer thread
    // (the end of a process), a line logged by a thread still running is dropped; fused, that
    // logging call panicked.
    (async_drain.ignore_res(), guard)
}

/// A logger that discards everything: for code paths and tests that need a `Logger` only.
pub fn discard() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The line format, on top of any slog-term decorator (colours on a terminal, plain elsewhere).
struct LineFormat<D> {
    actor: String,
    clock: AppClock,
    decorator: D,
}

impl<D: Decorator> LineFormat<D> {
    fn new(actor: &str, clock: AppClock, decorator: D) -> Self {
        Self {
            actor: actor.to_string(),
            clock,
            decorator,
        }
    }
}

impl<D: Decorator> Drain for LineFormat<D> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        self.decorator.with_record(record, values, |d| {
            d.start_level()?;
            write!(d, "{:<6}", level_name(record.level()))?;
            d.start_timestamp()?;
            let found = Found::of(record, values);
            let stamp = found.stamp.map(Stamp).unwrap_or_else(|| self.clock.stamp());
            write!(d, "{:>8}", stamp.to_string())?;
            d.start_whitespace()?;
            write!(d, " ")?;
            d.reset()?;
            // An actor running as a thread logs through its root's drain: its logger carries
            // its name as `actor`, which takes the name column.
            let actor = found.actor.as_deref().unwrap_or(&self.actor);
            write!(d, "{actor:<11} ")?;
            d.start_msg()?;
            write!(d, "{}", record.msg())?;
            let mut kv = KvWriter { out: d };
            record.kv().serialize(record, &mut kv)?;
            values.serialize(record, &mut kv)?;
            d.reset()?;
            writeln!(d)?;
            d.flush()
        })
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Critical => "CRIT",
        Level::Error => "ERROR",
        Level::Warning => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

struct KvWriter<'a> {
    out: &'a mut dyn RecordDecorator,
}

impl slog::Serializer for KvWriter<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        if key != ACTOR_KEY && key != STAMP_KEY {
            write!(self.out, " {key}={val}")?;
        }
        Ok(())
    }
}

/// The logger key that overrides the name column (see [`for_actor`]).
pub const ACTOR_KEY: &str = "actor";

/// A logger whose lines show `name` in the name column: for an actor that runs as a thread
/// of a process whose logger shows another name.
pub fn for_actor(log: &slog::Logger, name: &str) -> slog::Logger {
    log.new(slog::o!(ACTOR_KEY => name.to_string()))
}

/// The keys the line formats take for their columns rather than printing them as pairs.
#[derive(Default)]
struct Found {
    actor: Option<String>,
    stamp: Option<Duration>,
}

impl Found {
    /// The columns `record` and its logger's `values` carry (the record's first).
    fn of(record: &Record<'_>, values: &OwnedKVList) -> Found {
        let mut found = Found::default();
        let _ = record.kv().serialize(record, &mut found);
        let _ = values.serialize(record, &mut found);
        found
    }
}

impl slog::Serializer for Found {
    fn emit_u64(&mut self, key: slog::Key, val: u64) -> slog::Result {
        if key == STAMP_KEY && self.stamp.is_none() {
            self.stamp = Some(Duration::from_micros(val));
        }
        Ok(())
    }

    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        // The most specific logger's name wins (a thread actor's over its process's).
        if key == ACTOR_KEY && self.actor.is_none() {
            self.actor = Some(val.to_string());
        }
        Ok(())
    }
}

/// Where lines go: stderr, with what the final flush decided.
#[derive(Default)]
struct Output {
    /// Set by the final flush: lines stderr cannot take by then are dropped.
    closing: Mutex<Option<Instant>>,
    /// Lines dropped that way.
    dropped: AtomicU64,
    /// stderr took nothing for a whole [`ROOM_SLICE`] (cleared by the next write).
    stalled: std::sync::atomic::AtomicBool,
}

/// How long one wait for room on stderr lasts before the writer looks whether the process is
/// flushing for exit: it bounds how long a process's exit waits on a stderr that takes
/// nothing. (Only a writer with a line to write waits at all: an idle log costs no wake-up.)
const ROOM_SLICE: Duration = Duration::from_millis(10);

/// The most bytes written at once: a pipe with any room takes that much without blocking.
const CHUNK: usize = 4096;

impl Output {
    /// Writes `line` to stderr without ever blocking in `write`: it waits for room in
    /// slices, and after the final flush's deadline drops what is left.
    fn write_line(&self, line: &[u8]) {
        let mut rest = line;
        while !rest.is_empty() {
            let closing = *self.closing.lock();
            let wait = match closing {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => ROOM_SLICE,
            };
            match room_on_stderr(wait) {
                Room::Ready => {
                    match rustix::io::write(rustix::stdio::stderr(), &rest[..rest.len().min(CHUNK)])
                    {
                        Ok(n) => {
                            rest = &rest[n..];
                            self.stalled.store(false, Ordering::SeqCst);
                        }
                        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                        // A closed or broken stderr must not take the process down.
                        Err(_) => return,
                    }
                }
                Room::Gone => return,
                Room::None if closing.is_some_and(|d| Instant::now() >= d) => {
                    self.dropped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Room::None => self.stalled.store(true, Ordering::SeqCst),
            }
        }
    }
}

enum Room {
    Ready,
    None,
    /// stderr is closed or broken: nothing will ever be written.
    Gone,
}

fn room_on_stderr(wait: Duration) -> Room {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stderr = rustix::stdio::stderr();
    let mut fds = [PollFd::new(&stderr, PollFlags::OUT)];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => Room::None,
        Ok(_) => {
            let got = fds[0].revents();
            if got.contains(PollFlags::OUT) {
                Room::Ready
            } else if got.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                Room::Gone
            } else {
                Room::None
            }
        }
        Err(_) => Room::Gone,
    }
}

/// Writes one line to stderr now if stderr can take it now, else drops it: for the few lines
/// written outside a logger (the third signal's notice, a failed bootstrap), which must not
/// block a process that is on its way out.
pub fn stderr_line(text: &str) {
    if let Room::Ready = room_on_stderr(Duration::ZERO) {
        let mut line = text.as_bytes().to_vec();
        line.push(b'\n');
        let _ = rustix::io::write(rustix::stdio::stderr(), &line[..line.len().min(CHUNK)]);
    }
}

/// The decorator of every line: builds the line (with ANSI colours on a terminal) in one
/// buffer and hands it to [`Output`] whole, so each line is a single write.
struct LineDecorator {
    out: Arc<Output>,
    colours: bool,
}

impl LineDecorator {
    fn new(out: Arc<Output>, colours: bool) -> Self {
        Self { out, colours }
    }
}

impl Decorator for LineDecorator {
    fn with_record<F>(&self, record: &Record<'_>, _: &OwnedKVList, f: F) -> io::Result<()>
    where
        F: FnOnce(&mut dyn RecordDecorator) -> io::Result<()>,
    {
        let mut line = LineBuf {
            buf: Vec::with_capacity(160),
            level: record.level(),
            colours: self.colours,
        };
        f(&mut line)?;
        self.out.write_line(&line.buf);
        Ok(())
    }
}

/// One line being built.
struct LineBuf {
    buf: Vec<u8>,
    level: Level,
    colours: bool,
}

impl LineBuf {
    fn code(&mut self, code: &str) -> io::Result<()> {
        if self.colours {
            self.buf.extend_from_slice(code.as_bytes());
        }
        Ok(())
    }
}

impl Write for LineBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl RecordDecorator for LineBuf {
    fn reset(&mut self) -> io::Result<()> {
        self.code("\x1b[0m")
    }

    fn start_level(&mut self) -> io::Result<()> {
        let colour = match self.level {
            Level::Critical => "\x1b[1;35m",
            Level::Error => "\x1b[1;31m",
            Level::Warning => "\x1b[1;33m",
            Level::Info => "\x1b[32m",
            Level::Debug => "\x1b[36m",
            Level::Trace => "\x1b[34m",
        };
        self.code(colour)
    }

    fn start_timestamp(&mut self) -> io::Result<()> {
        self.code("\x1b[0m\x1b[2m")
    }

    fn start_msg(&mut self) -> io::Result<()> {
        self.code("\x1b[1m")
    }

    fn start_whitespace(&mut self) -> io::Result<()> {
        self.reset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_after_the_flush_is_dropped_without_a_panic() {
        // Threads of a process (its writers, its signal thread) may log while it exits.
        let mut h = init("T", AppClock::start(), Level::Info);
        let log = h.logger.clone();
        slog::info!(log, "before");
        h.flush();
        slog::error!(log, "after the flush");
    }
}
