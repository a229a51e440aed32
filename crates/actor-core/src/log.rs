//! Logging: slog through slog-async, one line per record, formatted like
//!
//! ```text
//! DEBUG  0:00.013 SEND       Entering startup
//! INFO   0:03.128 STATUS     Normal shutdown pid=4242
//! ```
//!
//! Level, elapsed time on the [`AppClock`], the process's actor name, the message, then the
//! record's key-value pairs. Each line is written with a single `write` to stderr so lines of
//! different processes sharing one terminal or pipe do not interleave.

use crate::clock::AppClock;
use slog::{Drain, Level, OwnedKVList, Record, KV};
use slog_term::{Decorator, RecordDecorator};
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;

/// The environment variable that sets the log level (`error`, `warn`, `info`, `debug`, `trace`).
pub const LOG_ENV: &str = "MPACTOR_LOG";

/// The level used when neither a flag nor [`LOG_ENV`] says otherwise.
pub const DEFAULT_LEVEL: Level = Level::Info;

/// Parses a level name (`error`, `warn`/`warning`, `info`, `debug`, `trace`, `critical`),
/// case-insensitively.
///
/// ```
/// use actor_core::log::parse_level;
/// assert_eq!(parse_level("DEBUG"), Some(slog::Level::Debug));
/// assert_eq!(parse_level("loud"), None);
/// ```
pub fn parse_level(text: &str) -> Option<Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "warn" | "warning" => Some(Level::Warning),
        other => Level::from_str(other).ok(),
    }
}

/// The level from the command line if given, else from [`LOG_ENV`], else [`DEFAULT_LEVEL`].
/// An unreadable value is reported on stderr and the default is used.
pub fn level_from(flag: Option<&str>) -> Level {
    let env = std::env::var(LOG_ENV).ok();
    let (text, source) = match (flag, env.as_deref()) {
        (Some(f), _) => (f, "--log-level"),
        (None, Some(e)) => (e, LOG_ENV),
        (None, None) => return DEFAULT_LEVEL,
    };
    parse_level(text).unwrap_or_else(|| {
        eprintln!("mpactor: {source}={text:?} is not a log level (error, warn, info, debug, trace); using info");
        DEFAULT_LEVEL
    })
}

/// A running logger and the guard that flushes it.
///
/// Drop (or [`LogHandle::flush`]) before the process exits, or the last lines are lost in the
/// async queue.
pub struct LogHandle {
    /// The logger to clone into whatever logs.
    pub logger: slog::Logger,
    guard: Option<slog_async::AsyncGuard>,
}

impl LogHandle {
    /// Flushes every queued line and stops the writer thread. The logger then drops records.
    pub fn flush(&mut self) {
        self.guard.take();
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Builds this process's logger: lines carry `actor` as the name column and the elapsed time on
/// `clock`; records below `level` are dropped.
pub fn init(actor: &str, clock: AppClock, level: Level) -> LogHandle {
    let stderr = io::stderr();
    let (drain, guard) = if stderr.is_terminal() {
        let fmt = LineFormat::new(
            actor,
            clock,
            slog_term::TermDecorator::new().stderr().build(),
        );
        build_async(fmt, level)
    } else {
        let fmt = LineFormat::new(
            actor,
            clock,
            slog_term::PlainDecorator::new(LineSink::new()),
        );
        build_async(fmt, level)
    };
    LogHandle {
        // Filtered here too, before the async queue: a record below the level is dropped at
        // the call site instead of being serialised and sent to the writer thread.
        logger: slog::Logger::root(
            Stamped {
                inner: drain.filter_level(level).fuse(),
                clock,
            }
            .fuse(),
            slog::o!(),
        ),
        guard: Some(guard),
    }
}

/// The record key that carries the time of the logging call to the writer thread.
const STAMP_KEY: &str = "mpactor_elapsed";

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
        let stamp = self.clock.stamp().to_string();
        let kv = (slog::SingleKV(STAMP_KEY, stamp.as_str()), record.kv());
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

fn build_async<D>(
    fmt: LineFormat<D>,
    level: Level,
) -> (
    slog::IgnoreResult<slog_async::Async>,
    slog_async::AsyncGuard,
)
where
    D: Decorator + Send + 'static,
{
    let drain = fmt.filter_level(level).fuse();
    let (async_drain, guard) = slog_async::Async::new(drain)
        // The queue is preallocated and touched in full (~106 bytes a slot): 8192 slots were
        // 0.85 MiB resident in every process, a fifth of an idle actor. 1024 lines of backlog
        // still absorb any burst a terminal or pipe can take.
        .chan_size(LOG_QUEUE)
        // A full log queue blocks the logging thread rather than losing lines silently.
        .overflow_strategy(slog_async::OverflowStrategy::Block)
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
            let mut found = Found::default();
            let _ = record.kv().serialize(record, &mut found);
            let _ = values.serialize(record, &mut found);
            match &found.stamp {
                Some(stamp) => write!(d, "{stamp:>8}")?,
                None => write!(d, "{:>8}", self.clock.stamp())?,
            }
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

/// The keys the line format takes for its columns rather than printing them as pairs.
#[derive(Default)]
struct Found {
    actor: Option<String>,
    stamp: Option<String>,
}

impl slog::Serializer for Found {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        if key == ACTOR_KEY {
            self.actor = Some(val.to_string());
        } else if key == STAMP_KEY {
            self.stamp = Some(val.to_string());
        }
        Ok(())
    }
}

/// Collects one line and writes it to stderr in one `write` when the line is flushed.
struct LineSink {
    buf: Vec<u8>,
}

impl LineSink {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(256),
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // A closed stderr must not take the process down: the line is dropped.
        let _ = io::stderr().lock().write_all(&self.buf);
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(parse_level("Info"), Some(Level::Info));
        assert_eq!(parse_level("warn"), Some(Level::Warning));
        assert_eq!(parse_level("trace"), Some(Level::Trace));
        assert_eq!(parse_level(""), None);
    }

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
