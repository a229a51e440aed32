//! The JSON format: one object per line,
//!
//! ```text
//! {"time":"0:03.128","elapsed":3.128554,"level":"INFO","actor":"STATUS","pid":4242,"msg":"Normal shutdown","handled":12}
//! ```
//!
//! slog-json turns the record (typed key-values included: numbers stay numbers) into JSON; it
//! writes into a buffer, and the buffer goes whole to the same non-blocking [`Output`] as the
//! text lines, so a JSON line too is one `write` and never blocks the writer thread.

use super::{Found, Output, ACTOR_KEY, STAMP_KEY};
use crate::clock::{AppClock, Stamp};
use parking_lot::Mutex;
use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};
use std::fmt;
use std::io;
use std::sync::Arc;

/// The keys every JSON line starts with, in this order.
const TIME: &str = "time";
const ELAPSED: &str = "elapsed";
const LEVEL: &str = "level";
const ACTOR: &str = "actor";
const PID: &str = "pid";
const MSG: &str = "msg";

/// A record key-value named like a fixed key is written under this name instead, so that no
/// line has a key twice (the root's `CONSUMER started pid=...` names the child's pid, not the
/// root's).
fn renamed(key: Key) -> Key {
    match key {
        TIME => "kv_time",
        ELAPSED => "kv_elapsed",
        LEVEL => "kv_level",
        PID => "kv_pid",
        MSG => "kv_msg",
        other => other,
    }
}

/// The drain that formats JSON lines (it runs on the async writer thread).
pub(super) struct JsonFormat<W: io::Write = LineWriter> {
    json: slog_json::Json<W>,
    /// The line being built, shared with the writer slog-json owns.
    line: Arc<Mutex<Vec<u8>>>,
    actor: String,
    pid: u32,
    clock: AppClock,
    /// The logger's values go into the record's key-values (see [`Line`]): slog-json is handed
    /// none of its own.
    no_values: OwnedKVList,
}

impl JsonFormat {
    pub(super) fn new(actor: &str, clock: AppClock, out: Arc<Output>) -> Self {
        let line = Arc::new(Mutex::new(Vec::with_capacity(256)));
        let writer = LineWriter {
            line: line.clone(),
            out,
        };
        Self {
            // A newline after the object, then a flush: the flush hands the line to the output.
            json: slog_json::Json::new(writer)
                .set_newlines(true)
                .set_flush(true)
                .build(),
            line,
            actor: actor.to_string(),
            pid: std::process::id(),
            clock,
            no_values: OwnedKVList::from(slog::o!()),
        }
    }
}

impl<W: io::Write> Drain for JsonFormat<W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        let found = Found::of(record, values);
        let elapsed = found.stamp.unwrap_or_else(|| self.clock.elapsed());
        let line = Line {
            time: Stamp(elapsed).to_string(),
            elapsed: elapsed.as_secs_f64(),
            actor: found.actor.as_deref().unwrap_or(&self.actor),
            pid: self.pid,
            record,
            values,
        };
        let rstatic = slog::RecordStatic {
            location: record.location(),
            tag: record.tag(),
            level: record.level(),
        };
        // Whatever a failed line left behind is not the start of the next one.
        self.line.lock().clear();
        let whole = Record::new(&rstatic, record.msg(), slog::BorrowedKV(&line));
        self.json.log(&whole, &self.no_values)
    }
}

/// One line's key-values: the fixed keys, then the record's own, then its logger's.
struct Line<'a> {
    time: String,
    elapsed: f64,
    actor: &'a str,
    pid: u32,
    record: &'a Record<'a>,
    values: &'a OwnedKVList,
}

impl KV for Line<'_> {
    fn serialize(&self, _: &Record<'_>, ser: &mut dyn Serializer) -> slog::Result {
        ser.emit_str(TIME, &self.time)?;
        ser.emit_f64(ELAPSED, self.elapsed)?;
        ser.emit_str(LEVEL, super::level_name(self.record.level()))?;
        ser.emit_str(ACTOR, self.actor)?;
        ser.emit_u32(PID, self.pid)?;
        ser.emit_arguments(MSG, self.record.msg())?;
        let mut rest = Rest { inner: ser };
        self.record.kv().serialize(self.record, &mut rest)?;
        self.values.serialize(self.record, &mut rest)
    }
}

/// Passes key-values on with their types, leaving out the ones the fixed keys took and
/// renaming the ones named like a fixed key.
struct Rest<'a> {
    inner: &'a mut dyn Serializer,
}

macro_rules! pass_on {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(&mut self, key: Key, val: $ty) -> slog::Result {
                self.inner.$method(renamed(key), val)
            }
        )*
    };
}

impl Serializer for Rest<'_> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        // The actor's name is the `actor` key already; the stamp is `time` and `elapsed`.
        if key == ACTOR_KEY || key == STAMP_KEY {
            return Ok(());
        }
        self.inner.emit_arguments(renamed(key), val)
    }

    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        if key == STAMP_KEY {
            return Ok(());
        }
        self.inner.emit_u64(renamed(key), val)
    }

    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        if key == ACTOR_KEY {
            return Ok(());
        }
        self.inner.emit_str(renamed(key), val)
    }

    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.inner.emit_unit(renamed(key))
    }

    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.inner.emit_none(renamed(key))
    }

    pass_on! {
        emit_usize: usize, emit_isize: isize, emit_bool: bool, emit_char: char,
        emit_u8: u8, emit_i8: i8, emit_u16: u16, emit_i16: i16, emit_u32: u32, emit_i32: i32,
        emit_f32: f32, emit_i64: i64, emit_f64: f64, emit_u128: u128, emit_i128: i128,
    }
}

/// The `io::Write` slog-json writes to: collects the line, and on `flush` (once per record)
/// hands it whole to the output.
pub(super) struct LineWriter {
    line: Arc<Mutex<Vec<u8>>>,
    out: Arc<Output>,
}

impl io::Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.line.lock().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut *self.line.lock());
        if !line.is_empty() {
            self.out.write_line(&line);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Formats one record through the JSON drain into a buffer instead of stderr.
    fn format(log: impl FnOnce(&slog::Logger)) -> serde_json::Value {
        let line = Arc::new(Mutex::new(Vec::new()));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let fmt = JsonFormat {
            json: slog_json::Json::new(Capture(captured.clone()))
                .set_newlines(true)
                .set_flush(true)
                .build(),
            line,
            actor: "PROC".into(),
            pid: 77,
            clock: AppClock::start(),
            no_values: OwnedKVList::from(slog::o!()),
        };
        let logger = slog::Logger::root(std::sync::Mutex::new(fmt).fuse(), slog::o!());
        log(&logger);
        let bytes = captured.lock().clone();
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        serde_json::from_str(text.trim_end()).expect("a JSON object")
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_has_the_fixed_keys_then_typed_key_values() {
        let v = format(
            |log| slog::warn!(log, "disk {} full", "/var"; "free" => 12u64, "ok" => false, "who" => "me"),
        );
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["actor"], "PROC");
        assert_eq!(v["pid"], 77);
        assert_eq!(v["msg"], "disk /var full");
        assert_eq!(v["free"], 12);
        assert_eq!(v["ok"], false);
        assert_eq!(v["who"], "me");
        assert!(v["time"].as_str().is_some_and(|t| t.starts_with("0:00.")));
        assert!(v["elapsed"].as_f64().is_some_and(|s| s < 5.0));
    }

    #[test]
    fn a_key_named_like_a_fixed_key_is_renamed_and_the_actor_key_is_the_column() {
        let v = format(|log| {
            let thread_actor = super::super::for_actor(log, "WORKER");
            slog::info!(thread_actor, "CHILD started"; "pid" => 4242, "msg" => "x")
        });
        assert_eq!(v["actor"], "WORKER");
        assert_eq!(v["pid"], 77);
        assert_eq!(v["kv_pid"], 4242);
        assert_eq!(v["kv_msg"], "x");
        assert_eq!(v["msg"], "CHILD started");
        let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
        assert_eq!(
            keys.iter().filter(|k| k.as_str() == "actor").count(),
            1,
            "{v}"
        );
    }

    #[test]
    fn a_message_with_quotes_and_newlines_stays_one_line() {
        let v = format(|log| slog::error!(log, "bad \"input\"\nsecond line"));
        assert_eq!(v["msg"], "bad \"input\"\nsecond line");
        assert_eq!(v["level"], "ERROR");
    }
}
