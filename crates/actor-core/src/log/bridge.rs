//! The bridges: records of libraries that log through the [`log`] crate, or emit events with
//! the `tracing` crate, go to this process's slog logger, so they come out in the same stream,
//! in the same format, with the name of the actor they were logged in and a `target` key (the
//! library's module, as `log` and `tracing` name it):
//!
//! ```text
//! WARN   0:00.412 DB         pool exhausted, waiting target=sqlx::pool
//! ```
//!
//! [`init_with`](super::init_with) installs both in every process (the root's and each
//! actor's), once per process, and sets their level filter to the logger's level: a library's
//! `debug!` below it costs a comparison. Within the root's process, an actor that runs as a
//! thread ([`Isolation::Threads`](crate::Isolation::Threads)) gets its own name on the
//! records of its thread through [`enter`].
//!
//! A program that set a `log` logger or a global `tracing` subscriber of its own before the
//! system started keeps it: the bridges only take a place that is free
//! ([`log_bridged`], [`tracing_bridged`] say which they took).

use parking_lot::RwLock;
use slog::{Level, Record, RecordLocation, RecordStatic, Serializer, KV};
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;
use tracing_core::field::{Field, Visit};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The process's logger, where bridged records go (set by each `init_with`).
static TARGET: RwLock<Option<slog::Logger>> = parking_lot::const_rwlock(None);
/// The process's level, as [`Level::as_usize`] (a smaller number is more severe).
static LEVEL: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
static LOG_BRIDGED: AtomicBool = AtomicBool::new(false);
static TRACING_BRIDGED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The logger of the actor that runs on this thread, when it is not the process's.
    static ACTOR: RefCell<Option<slog::Logger>> = const { RefCell::new(None) };
}

/// The key that names where a bridged record comes from (its `log` target or `tracing`
/// target: by default the module path of the library).
pub const TARGET_KEY: &str = "target";
/// The key that names the `tracing` spans a bridged event happened in, outermost first,
/// joined by `:`.
pub const SPAN_KEY: &str = "span";

/// Points the bridges at `logger` and filters them at `level`; installs them the first time.
pub(super) fn install(logger: &slog::Logger, level: Level) {
    *TARGET.write() = Some(logger.clone());
    let previous = LEVEL.swap(level.as_usize(), Ordering::SeqCst);
    INSTALL.call_once(|| {
        if log::set_boxed_logger(Box::new(LogBridge)).is_ok() {
            LOG_BRIDGED.store(true, Ordering::SeqCst);
        }
        let subscriber = tracing_subscriber::registry::Registry::default().with(TracingBridge);
        if tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
            .is_ok()
        {
            TRACING_BRIDGED.store(true, Ordering::SeqCst);
        }
    });
    if LOG_BRIDGED.load(Ordering::SeqCst) {
        log::set_max_level(log_filter(level));
    }
    if previous != level.as_usize() {
        // Callsites that were asked under another level (a second logger in one process,
        // as in tests) ask again.
        tracing_core::callsite::rebuild_interest_cache();
    }
}

/// True if this process's `log` records go to its slog logger: a logger was initialised and no
/// other `log` logger had been set before.
pub fn log_bridged() -> bool {
    LOG_BRIDGED.load(Ordering::SeqCst)
}

/// True if this process's `tracing` events go to its slog logger: a logger was initialised and
/// no other global `tracing` subscriber had been set before.
pub fn tracing_bridged() -> bool {
    TRACING_BRIDGED.load(Ordering::SeqCst)
}

/// Sends the `log` and `tracing` records of the current thread to `logger` until the returned
/// scope is dropped: for an actor that runs as a thread of a process whose logger shows
/// another name (the runtime does this for every thread actor).
///
/// ```
/// use actor_core::log::{bridge, for_actor, init_with, LogFormat};
/// use actor_core::AppClock;
///
/// let handle = init_with("MAIN", AppClock::start(), slog::Level::Info, LogFormat::Text);
/// let worker = for_actor(&handle.logger, "WORKER");
/// std::thread::spawn(move || {
///     let _scope = bridge::enter(&worker);
///     // A library's record, shown as WORKER's.
///     log::warn!("retrying");
/// })
/// .join()
/// .unwrap();
/// ```
pub fn enter(logger: &slog::Logger) -> ActorScope {
    let previous = ACTOR
        .try_with(|a| a.replace(Some(logger.clone())))
        .ok()
        .flatten();
    ActorScope {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// While it lives, the `log` and `tracing` records of its thread go to the logger given to
/// [`enter`]; dropped, they go where they went before.
#[must_use = "the records go to the actor's logger only while the scope lives"]
pub struct ActorScope {
    previous: Option<slog::Logger>,
    /// It belongs to the thread it was made on.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ActorScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = ACTOR.try_with(|a| a.replace(previous));
    }
}

impl fmt::Debug for ActorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActorScope")
    }
}

/// Where a record of this thread goes: its actor's logger, else the process's.
fn current() -> Option<slog::Logger> {
    ACTOR
        .try_with(|a| a.borrow().clone())
        .ok()
        .flatten()
        // Cloned out of the lock: logging under it could meet a writer waiting for it.
        .or_else(|| TARGET.read().clone())
}

fn enabled(level: Level) -> bool {
    level.as_usize() <= LEVEL.load(Ordering::Relaxed)
}

fn log_filter(level: Level) -> log::LevelFilter {
    match level {
        Level::Critical | Level::Error => log::LevelFilter::Error,
        Level::Warning => log::LevelFilter::Warn,
        Level::Info => log::LevelFilter::Info,
        Level::Debug => log::LevelFilter::Debug,
        Level::Trace => log::LevelFilter::Trace,
    }
}

fn from_log(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

fn from_tracing(level: &tracing_core::Level) -> Level {
    match *level {
        tracing_core::Level::ERROR => Level::Error,
        tracing_core::Level::WARN => Level::Warning,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

/// The `log` facade's logger of the process.
struct LogBridge;

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        enabled(from_log(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = from_log(record.level());
        if !enabled(level) {
            return;
        }
        let Some(logger) = current() else { return };
        let location = RecordLocation {
            file: record.file_static().unwrap_or(""),
            line: record.line().unwrap_or(0),
            column: 0,
            function: "",
            module: record.module_path_static().unwrap_or(""),
        };
        let rstatic = RecordStatic {
            location: &location,
            tag: "",
            level,
        };
        let kv = slog::SingleKV(TARGET_KEY, record.target());
        logger.log(&Record::new(&rstatic, record.args(), slog::BorrowedKV(&kv)));
    }

    fn flush(&self) {}
}

/// The `tracing` layer of the process: forwards events; the registry under it keeps the spans.
struct TracingBridge;

impl<S> Layer<S> for TracingBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if enabled(from_tracing(metadata.level())) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        enabled(from_tracing(metadata.level()))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match Level::from_usize(LEVEL.load(Ordering::Relaxed)) {
            None => LevelFilter::OFF,
            Some(Level::Critical | Level::Error) => LevelFilter::ERROR,
            Some(Level::Warning) => LevelFilter::WARN,
            Some(Level::Info) => LevelFilter::INFO,
            Some(Level::Debug) => LevelFilter::DEBUG,
            Some(Level::Trace) => LevelFilter::TRACE,
        })
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = from_tracing(meta.level());
        if !enabled(level) {
            return;
        }
        let Some(logger) = current() else { return };
        let mut fields = Fields {
            target: meta.target(),
            ..Fields::default()
        };
        event.record(&mut fields);
        fields.span = ctx.event_scope(event).map(|scope| {
            scope
                .from_root()
                .map(|span| span.name())
                .collect::<Vec<_>>()
                .join(":")
        });
        let location = RecordLocation {
            file: meta.file().unwrap_or(""),
            line: meta.line().unwrap_or(0),
            column: 0,
            function: "",
            module: meta.module_path().unwrap_or(""),
        };
        let rstatic = RecordStatic {
            location: &location,
            tag: "",
            level,
        };
        let message = std::mem::take(&mut fields.message);
        logger.log(&Record::new(
            &rstatic,
            &format_args!("{message}"),
            slog::BorrowedKV(&fields),
        ));
    }
}

/// An event's fields: its message, then the others with their types.
#[derive(Default)]
struct Fields<'a> {
    target: &'a str,
    span: Option<String>,
    message: String,
    pairs: Vec<(&'static str, FieldValue)>,
}

enum FieldValue {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: FieldValue) {
        self.pairs.push((field.name(), value));
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.push(field, FieldValue::Str(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.push(field, FieldValue::Str(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
}

impl KV for Fields<'_> {
    fn serialize(&self, _: &Record<'_>, ser: &mut dyn Serializer) -> slog::Result {
        ser.emit_str(TARGET_KEY, self.target)?;
        if let Some(span) = &self.span {
            ser.emit_str(SPAN_KEY, span)?;
        }
        for (key, value) in &self.pairs {
            match value {
                FieldValue::Str(v) => ser.emit_str(key, v)?,
                FieldValue::I64(v) => ser.emit_i64(key, *v)?,
                FieldValue::U64(v) => ser.emit_u64(key, *v)?,
                FieldValue::F64(v) => ser.emit_f64(key, *v)?,
                FieldValue::Bool(v) => ser.emit_bool(key, *v)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // std's Mutex: slog's loggers want drains that are unwind-safe.
    use std::sync::{Arc, Mutex};

    /// A drain that keeps each record as `LEVEL msg key=value...` (the actor key included).
    #[derive(Clone, Default)]
    struct Keep(Arc<Mutex<Vec<String>>>);

    struct Text(String);

    impl Serializer for Text {
        fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
            self.0.push_str(&format!(" {key}={val}"));
            Ok(())
        }
    }

    impl slog::Drain for Keep {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, record: &Record<'_>, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
            let mut text = Text(format!(
                "{} {}",
                record.level().as_short_str(),
                record.msg()
            ));
            let _ = record.kv().serialize(record, &mut text);
            let _ = values.serialize(record, &mut text);
            self.0.lock().expect("not poisoned").push(text.0);
            Ok(())
        }
    }

    #[test]
    fn log_and_tracing_records_reach_the_actor_of_their_thread() {
        // The process's logger (installs the bridges), then a thread that is an actor's.
        install(&crate::log::discard(), Level::Info);
        let keep = Keep::default();
        let actor = slog::Logger::root(keep.clone(), slog::o!("actor" => "WORKER"));
        std::thread::spawn(move || {
            let _scope = enter(&actor);
            log::warn!(target: "some_dependency", "cache {} is cold", "users");
            log::debug!("below the level: dropped");
            let span = tracing::info_span!("request", id = 7);
            let _in = span.enter();
            tracing::warn!(retries = 3u64, slow = true, "backing off");
            tracing::trace!("below the level: dropped");
        })
        .join()
        .expect("the actor thread");
        let got = keep.0.lock().expect("not poisoned").clone();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(
            got[0],
            "WARN cache users is cold target=some_dependency actor=WORKER"
        );
        assert!(got[1].starts_with("WARN backing off target="), "{got:#?}");
        assert!(got[1].contains(" span=request"), "{got:#?}");
        assert!(got[1].contains(" retries=3 slow=true"), "{got:#?}");
        assert!(got[1].ends_with(" actor=WORKER"), "{got:#?}");
    }

    #[test]
    fn the_scope_ends_with_its_drop() {
        install(&crate::log::discard(), Level::Info);
        let keep = Keep::default();
        let actor = slog::Logger::root(keep.clone(), slog::o!());
        std::thread::spawn(move || {
            {
                let _scope = enter(&actor);
                log::error!("in the scope");
            }
            log::error!("after it: the process's logger");
        })
        .join()
        .expect("the thread");
        let got = keep.0.lock().expect("not poisoned").clone();
        assert_eq!(
            got,
            ["ERRO in the scope target=actor_core::log::bridge::tests"]
        );
    }
}
