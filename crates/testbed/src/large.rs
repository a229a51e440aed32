//! The testbed's large-message actors: SINK (`kind=sink`), a queue actor of byte payloads that
//! checks every payload it gets, and BIGFLOOD (`kind=bigflood`), which sends it payloads of
//! `size` bytes. Both record (in the record file) what the tests wait for, and the shared
//! memory their process holds (memfd descriptors and mappings) before and after.

use crate::{record, Event};
use mpactor::{slog, Actor, ActorError, Addr, Context, Recv};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A payload: `data` is `seq as u8` repeated, so the sink can tell a payload that was
/// overwritten in flight (a region reused too early) from a good one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub(crate) seq: u64,
    /// A plain `Vec<u8>` encoded as one byte string, as `serde_bytes` does.
    #[serde(with = "as_bytes")]
    pub(crate) data: Vec<u8>,
}

/// `Vec<u8>` as a byte string (what `#[serde(with = "serde_bytes")]` does), written out here
/// because the testbed binary takes no dependency that its crates do not already have.
mod as_bytes {
    use serde::de::{Deserializer, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// memfd descriptors and memfd mappings of this process (ipc-channel's shared memory: the
/// shared counters of every inbox it can reach, and the regions of large messages).
pub fn memfds() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:"))
                })
                .count()
        })
        .unwrap_or(0);
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().filter(|l| l.contains("/memfd:")).count())
        .unwrap_or(0);
    (fds, maps)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SinkArgs {
    pub(crate) name: String,
    pub(crate) record: Option<PathBuf>,
    /// Record `got N` every this many messages (0: never).
    pub(crate) note_every: u64,
    /// Time spent on each message.
    pub(crate) handle_ms: u64,
}

pub(crate) struct Sink {
    args: SinkArgs,
    seen: u64,
    /// The shared memory this process held when its main loop started.
    start: (usize, usize),
    /// `memfds_back` was recorded.
    back: bool,
}

impl Sink {
    fn note(&self, step: &str) {
        record(
            &self.args.record,
            &format!("{} {step} pid={}", self.args.name, std::process::id()),
        );
    }

    fn note_memfds(&self, when: &str) -> (usize, usize) {
        let (fds, maps) = memfds();
        self.note(&format!("memfds_{when} fds={fds} maps={maps}"));
        (fds, maps)
    }

    /// True if every page of the payload holds its number (one byte per 4 KiB, and the last).
    fn intact(p: &Payload) -> bool {
        let want = p.seq as u8;
        p.data.iter().step_by(4096).all(|b| *b == want) && p.data.last().is_none_or(|b| *b == want)
    }
}

impl Actor for Sink {
    type Args = SinkArgs;
    type Msg = Payload;
    type Event = Event;

    fn init_args(args: SinkArgs) -> Result<Self, ActorError> {
        Ok(Sink {
            args,
            seen: 0,
            start: (0, 0),
            back: false,
        })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.start = self.note_memfds("start");
        loop {
            match ctx.recv(Duration::from_millis(100)) {
                Recv::Msg(p) => {
                    self.seen += 1;
                    if self.seen == 1 {
                        self.note("first_message");
                    }
                    if !Self::intact(&p) {
                        self.note(&format!("corrupt seq={} len={}", p.seq, p.data.len()));
                    }
                    if self.args.note_every > 0 && self.seen.is_multiple_of(self.args.note_every) {
                        self.note(&format!("got {}", self.seen));
                    }
                    if self.args.handle_ms > 0 {
                        std::thread::sleep(Duration::from_millis(self.args.handle_ms));
                    }
                }
                Recv::Timeout => {
                    // Idle after traffic: once the process holds what it held at its start
                    // (the inbox let go of its mappings of the producer's regions), say so,
                    // once.
                    if self.seen > 0 && !self.back && memfds() == self.start {
                        self.back = true;
                        self.note_memfds("back");
                    }
                }
                Recv::Stop => {
                    self.note_memfds("stop");
                    return Ok(());
                }
            }
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct BigFloodArgs {
    pub(crate) name: String,
    pub(crate) record: Option<PathBuf>,
    pub(crate) to: Addr<Payload>,
    /// Bytes per payload.
    pub(crate) size: usize,
    /// 0: until stopped.
    pub(crate) count: u64,
    pub(crate) every_ms: u64,
}

pub(crate) struct BigFlood {
    args: BigFloodArgs,
}

impl BigFlood {
    fn note(&self, step: &str) {
        record(
            &self.args.record,
            &format!("{} {step} pid={}", self.args.name, std::process::id()),
        );
    }
}

impl Actor for BigFlood {
    type Args = BigFloodArgs;
    type Msg = ();
    type Event = Event;

    fn init_args(args: BigFloodArgs) -> Result<Self, ActorError> {
        Ok(BigFlood { args })
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let (fds0, maps0) = memfds();
        self.note(&format!("memfds_start fds={fds0} maps={maps0}"));
        let mut sent = 0u64;
        let mut next: Option<Payload> = None;
        let mut timed_out = false;
        while !ctx.should_stop() && (self.args.count == 0 || sent < self.args.count) {
            let p = next.take().unwrap_or_else(|| Payload {
                seq: sent,
                data: vec![sent as u8; self.args.size],
            });
            // Bounded: a full mailbox (in messages or in bytes) brings us back here to look
            // at the stop flag.
            match self.args.to.send_timeout(p, Duration::from_millis(100)) {
                Ok(()) => sent += 1,
                Err(e) if e.is_timeout() => {
                    if !timed_out {
                        // Once per incarnation: the mailbox's bounds held the producer back.
                        timed_out = true;
                        self.note(&format!("send_timeout sent={sent}"));
                    }
                    next = Some(e.into_inner())
                }
                Err(e) => return Err(e.into()),
            }
            if sent == 1 {
                self.note("first_send");
            }
            if self.args.every_ms > 0 {
                if let Recv::Stop = ctx.recv(Duration::from_millis(self.args.every_ms)) {
                    break;
                }
            }
        }
        slog::info!(ctx.log(), "sent {sent} payloads");
        ctx.emit(Event::Sent(sent))?;
        if self.args.count > 0 && sent == self.args.count {
            // Every payload delivered: the writer keeps no shared memory once idle. Wait for
            // it (bounded) and record what this process holds then.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut now = memfds();
            while now.0 > fds0 || now.1 > maps0 {
                if Instant::now() >= deadline || ctx.should_stop() {
                    break;
                }
                if let Recv::Stop = ctx.recv(Duration::from_millis(20)) {
                    break;
                }
                now = memfds();
            }
            self.note(&format!("memfds_done fds={} maps={}", now.0, now.1));
            // Stay until asked to stop, so the test reads this process as it is.
            while !matches!(ctx.recv(Duration::from_millis(100)), Recv::Stop) {}
        }
        Ok(())
    }
}
