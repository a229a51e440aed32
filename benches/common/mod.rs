//! What the benchmarks share: the actors they run, the raw-transport reference children, and
//! the measurements themselves, each returning plain numbers.
//!
//! Every process of a benchmark is the bench binary itself: mpactor re-executes it for its
//! actors (`Registry::run_if_child`), and the raw references re-execute it with
//! [`raw::ENV_RAW`] set (`raw::run_raw_if_child`). Both calls come first in `main`.
//!
//! Timing across processes uses `CLOCK_MONOTONIC` ([`now_ns`]), which is one clock for the
//! whole machine: the root reads it when it says "go", the consumer when the last message
//! of the round arrived.

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use ipc_channel::ipc::{self, IpcReceiver, IpcSender};
use mpactor::{
    loops, Actor, ActorError, Addr, ChildOptions, Context, Isolation, Recv, Registry, ReplyTo,
    SharedBytes, System, SystemConfig,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::error::Error;
use std::time::{Duration, Instant};

pub mod raw;

/// Errors of the benchmark driver: anything, with its text.
pub type BenchResult<T> = Result<T, Box<dyn Error>>;

/// How long the root waits for a round's "done" before it gives up on the benchmark.
pub const ROUND_DEADLINE: Duration = Duration::from_secs(60);

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the machine.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The small message: 64 bytes in memory (57–59 bytes postcard-encoded: `seq` is a varint).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Small {
    /// Position in the round; [`Small::MARKER`] ends a producer's round.
    pub seq: u64,
    /// Payload.
    pub a: [u8; 32],
    /// Payload.
    pub b: [u8; 24],
}

impl Small {
    /// The `seq` of the message that closes one producer's round.
    pub const MARKER: u64 = u64::MAX;

    /// Message number `seq`.
    pub fn new(seq: u64) -> Self {
        Small {
            seq,
            a: [seq as u8; 32],
            b: [0x5a; 24],
        }
    }
}

const _: () = assert!(std::mem::size_of::<Small>() == 64);

/// Every actor type the benchmarks run.
pub fn registry() -> Registry {
    Registry::new()
        .register::<Consumer>()
        .register::<Producer>()
        .register::<PayloadConsumer<ByteBuf>>()
        .register::<PayloadProducer<ByteBuf>>()
        .register::<PayloadConsumer<SharedBytes>>()
        .register::<PayloadProducer<SharedBytes>>()
        .register::<Pinger>()
        .register::<Ponger>()
        .register::<PlainPinger>()
        .register::<PlainPonger>()
        .register::<AskPinger>()
        .register::<Answerer>()
        .register::<Idle>()
}

/// The benchmark systems' configuration: logs at `warn` unless `MPACTOR_LOG` says otherwise,
/// so that 64 actors starting do not flood the terminal.
pub fn config() -> SystemConfig {
    let level = std::env::var(mpactor::log::LOG_ENV).unwrap_or_else(|_| "warn".into());
    SystemConfig::new("BENCH").log_level(mpactor::log::level_from(Some(&level)))
}

// ---------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------

/// Counts small messages; when every producer's marker has arrived, tells the bench root
/// the time (a side channel, so the root needs no event loop between rounds).
pub struct Consumer {
    rounds: Rounds,
}

/// Counts the producers' end-of-round markers and reports the end of a round.
struct Rounds {
    args: ConsumerArgs,
    markers: u32,
}

impl Rounds {
    fn new(args: ConsumerArgs) -> Self {
        Rounds { args, markers: 0 }
    }

    /// One producer's marker arrived: once every producer's has, report the time.
    fn marker(&mut self) -> Result<(), ActorError> {
        self.markers += 1;
        if self.markers == self.args.producers {
            self.markers = 0;
            self.args
                .done
                .send(now_ns())
                .map_err(|e| ActorError::new(format!("reporting a round: {e}")))?;
        }
        Ok(())
    }
}

/// The consumer's arguments.
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsumerArgs {
    /// How many producers close each round.
    pub producers: u32,
    /// Where the end of a round is reported: `now_ns()` at the last marker.
    pub done: IpcSender<u64>,
}

impl Actor for Consumer {
    type Args = ConsumerArgs;
    type Msg = Small;
    type Event = ();

    fn init_args(args: ConsumerArgs) -> Result<Self, ActorError> {
        Ok(Consumer {
            rounds: Rounds::new(args),
        })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Self::Msg) -> Result<(), ActorError> {
        if msg.seq == Small::MARKER {
            self.rounds.marker()?;
        }
        Ok(())
    }
}

/// Sends `n` small messages and a marker to the consumer for every `n` it is sent.
pub struct Producer {
    to: Addr<Small>,
}

impl Actor for Producer {
    type Args = Addr<Small>;
    type Msg = u64;
    type Event = ();

    fn init_args(to: Addr<Small>) -> Result<Self, ActorError> {
        Ok(Producer { to })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, n: Self::Msg) -> Result<(), ActorError> {
        for seq in 0..n {
            send_patiently(&self.to, Small::new(seq))?;
        }
        send_patiently(&self.to, Small::new(Small::MARKER))
    }
}

/// `send_timeout` until accepted: a full mailbox is the normal state of a flood.
fn send_patiently<M: Serialize + Send + 'static>(to: &Addr<M>, msg: M) -> Result<(), ActorError> {
    let mut msg = msg;
    loop {
        match to.send_timeout(msg, Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_timeout() => msg = e.into_inner(),
            Err(e) => return Err(ActorError::new(format!("send: {e}"))),
        }
    }
}

/// Times `rounds` round trips after `warmup` untimed ones: `ping(i)` sends ping `i`, and the
/// round trip ends when the inbox yields a message that `pong` reads as number `i`. `None`
/// when the actor is asked to stop meanwhile.
fn time_round_trips<A: Actor>(
    ctx: &mut Context<A>,
    rounds: u64,
    warmup: u64,
    mut ping: impl FnMut(u64) -> Result<(), ActorError>,
    pong: impl Fn(&A::Msg) -> Option<u64>,
) -> Result<Option<Vec<u64>>, ActorError> {
    let mut times = Vec::with_capacity(rounds as usize);
    for i in 0..warmup + rounds {
        let t0 = Instant::now();
        ping(i)?;
        loop {
            match ctx.recv(Duration::from_secs(5)) {
                Recv::Msg(m) if pong(&m) == Some(i) => break,
                Recv::Msg(_) => continue,
                Recv::Timeout => return Err(ActorError::new("no pong within 5 s")),
                Recv::Stop => return Ok(None),
            }
        }
        if i >= warmup {
            times.push(t0.elapsed().as_nanos() as u64);
        }
    }
    Ok(Some(times))
}

/// A payload type of the byte benchmarks: `ByteBuf` (an ordinary message, encoded and
/// decoded) or `SharedBytes` (read in place, in shared memory).
pub trait Payload: Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// A payload of `size` bytes, the template of a round.
    fn of_size(size: usize) -> Self;
    /// The next message of a round, from its template: a fresh buffer for `ByteBuf` (as a
    /// user's would be), a clone sharing the bytes for `SharedBytes` (as the raw reference
    /// sends one buffer `n` times).
    fn next(template: &Self) -> Self;
    /// The empty marker that ends a round.
    fn marker() -> Self;
}

impl Payload for ByteBuf {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn of_size(size: usize) -> Self {
        ByteBuf::from(vec![0xa5u8; size])
    }
    fn next(template: &Self) -> Self {
        ByteBuf::from(template.bytes().to_vec())
    }
    fn marker() -> Self {
        ByteBuf::new()
    }
}

impl Payload for SharedBytes {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn of_size(size: usize) -> Self {
        SharedBytes::from(vec![0xa5u8; size])
    }
    fn next(template: &Self) -> Self {
        template.clone()
    }
    fn marker() -> Self {
        SharedBytes::new()
    }
}

/// Reads one byte of every 4 KiB page of a payload (so every page is really there, as a
/// consumer that uses the payload would find it); returns its length.
pub fn touch(bytes: &[u8]) -> u64 {
    let sum: u64 = bytes.iter().step_by(4096).map(|b| u64::from(*b)).sum();
    std::hint::black_box(sum);
    bytes.len() as u64
}

/// Counts payloads; an empty one is a producer's marker.
pub struct PayloadConsumer<P> {
    rounds: Rounds,
    bytes: u64,
    _payload: std::marker::PhantomData<P>,
}

impl<P: Payload> Actor for PayloadConsumer<P> {
    type Args = ConsumerArgs;
    type Msg = P;
    type Event = ();

    fn init_args(args: ConsumerArgs) -> Result<Self, ActorError> {
        Ok(PayloadConsumer {
            rounds: Rounds::new(args),
            bytes: 0,
            _payload: std::marker::PhantomData,
        })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Self::Msg) -> Result<(), ActorError> {
        self.bytes += touch(msg.bytes());
        if msg.bytes().is_empty() {
            self.rounds.marker()?;
        }
        Ok(())
    }
}

/// Sends `n` payloads of `size` bytes and an empty marker for every `(n, size)` it is sent.
pub struct PayloadProducer<P: Payload> {
    to: Addr<P>,
}

impl<P: Payload> Actor for PayloadProducer<P> {
    type Args = Addr<P>;
    type Msg = (u64, u64);
    type Event = ();

    fn init_args(to: Addr<P>) -> Result<Self, ActorError> {
        Ok(PayloadProducer { to })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, (n, size): Self::Msg) -> Result<(), ActorError> {
        let template = P::of_size(size as usize);
        for _ in 0..n {
            send_patiently(&self.to, P::next(&template))?;
        }
        send_patiently(&self.to, P::marker())
    }
}

/// What the pinger's inbox carries.
#[derive(Debug, Serialize, Deserialize)]
pub enum PingerMsg {
    /// Do `warmup` unrecorded, then `rounds` recorded round trips; report the recorded ones.
    Go {
        /// Round trips measured.
        rounds: u64,
        /// Round trips before the measured ones.
        warmup: u64,
    },
    /// The ponger's answer.
    Pong(u64),
}

/// What the ponger's inbox carries.
#[derive(Debug, Serialize, Deserialize)]
pub enum PongerMsg {
    /// Where to answer (sent once, before the pings).
    Hello(Addr<PingerMsg>),
    /// A ping: answered at once with the same number.
    Ping(u64),
}

/// Measures round trips to the ponger, one at a time, through both actors' `Addr`s.
pub struct Pinger {
    args: PingerArgs,
}

/// The pinger's (and the ask pinger's) arguments.
#[derive(Serialize, Deserialize)]
#[serde(bound = "M: Serialize + Send + 'static")]
pub struct PingerArgs<M: Serialize + Send + 'static = PongerMsg> {
    /// The ponger.
    pub ponger: Addr<M>,
    /// Where the round-trip times (ns) go.
    pub report: IpcSender<Vec<u64>>,
    /// Pin the whole process to this CPU.
    pub pin: Option<usize>,
}

// Derived `Clone` would ask `M: Clone`; an `Addr<M>` clones whatever `M` is.
impl<M: Serialize + Send + 'static> Clone for PingerArgs<M> {
    fn clone(&self) -> Self {
        Self {
            ponger: self.ponger.clone(),
            report: self.report.clone(),
            pin: self.pin,
        }
    }
}

impl Actor for Pinger {
    type Args = PingerArgs;
    type Msg = PingerMsg;
    type Event = ();

    fn init_args(args: PingerArgs) -> Result<Self, ActorError> {
        Ok(Pinger { args })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.args.pin)?;
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Self::Msg) -> Result<(), ActorError> {
        let PingerMsg::Go { rounds, warmup } = msg else {
            return Ok(());
        };
        let ponger = &self.args.ponger;
        let pong = |m: &PingerMsg| match m {
            PingerMsg::Pong(j) => Some(*j),
            _ => None,
        };
        let ping = |i| send_patiently(ponger, PongerMsg::Ping(i));
        let Some(times) = time_round_trips(ctx, rounds, warmup, ping, pong)? else {
            return Ok(());
        };
        self.args
            .report
            .send(times)
            .map_err(|e| ActorError::new(format!("report: {e}")))
    }
}

/// Answers every ping.
pub struct Ponger {
    pin: Option<usize>,
    pinger: Option<Addr<PingerMsg>>,
}

impl Actor for Ponger {
    type Args = Option<usize>;
    type Msg = PongerMsg;
    type Event = ();

    fn init_args(pin: Option<usize>) -> Result<Self, ActorError> {
        Ok(Ponger { pin, pinger: None })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.pin)?;
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Self::Msg) -> Result<(), ActorError> {
        match msg {
            PongerMsg::Hello(addr) => {
                self.pinger = Some(addr);
                Ok(())
            }
            PongerMsg::Ping(i) => match &self.pinger {
                Some(p) => send_patiently(p, PingerMsg::Pong(i)),
                None => Err(ActorError::new("a ping before the hello")),
            },
        }
    }
}

/// The plain pinger's inbox: numbers only, no `Drop`, so sends to it may take mpactor's
/// direct path.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum PlainPingerMsg {
    /// As [`PingerMsg::Go`].
    Go {
        /// Round trips measured.
        rounds: u64,
        /// Round trips before the measured ones.
        warmup: u64,
    },
    /// The ponger's answer.
    Pong(u64),
}

/// A pinger whose messages, both ways, are plain numbers. It learns the ponger's address
/// once, at the start, through a side channel (`hello`) instead of a message variant that
/// holds an `Addr`.
pub struct PlainPinger {
    args: PlainPingerArgs,
    ponger_rx: Option<IpcReceiver<Addr<u64>>>,
    ponger: Option<Addr<u64>>,
}

/// The plain pinger's arguments.
#[derive(Clone, Serialize, Deserialize)]
pub struct PlainPingerArgs {
    /// Where the round-trip times (ns) go.
    pub report: IpcSender<Vec<u64>>,
    /// Pin the whole process to this CPU.
    pub pin: Option<usize>,
    /// Where to send the sender on which the root then sends the ponger's address.
    pub hello: IpcSender<IpcSender<Addr<u64>>>,
}

impl Actor for PlainPinger {
    type Args = PlainPingerArgs;
    type Msg = PlainPingerMsg;
    type Event = ();

    fn init_args(args: PlainPingerArgs) -> Result<Self, ActorError> {
        Ok(PlainPinger {
            args,
            ponger_rx: None,
            ponger: None,
        })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.args.pin)?;
        let (tx, rx) = ipc::channel::<Addr<u64>>()?;
        self.args
            .hello
            .send(tx)
            .map_err(|e| ActorError::new(format!("hello: {e}")))?;
        self.ponger_rx = Some(rx);
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Self::Msg) -> Result<(), ActorError> {
        let PlainPingerMsg::Go { rounds, warmup } = msg else {
            return Ok(());
        };
        if self.ponger.is_none() {
            let rx = self.ponger_rx.take().ok_or("no way to learn the ponger")?;
            let addr = rx
                .try_recv_timeout(Duration::from_secs(5))
                .map_err(|e| ActorError::new(format!("the ponger's address: {e:?}")))?;
            self.ponger = Some(addr);
        }
        let Some(ponger) = self.ponger.clone() else {
            return Ok(());
        };
        let pong = |m: &PlainPingerMsg| match m {
            PlainPingerMsg::Pong(j) => Some(*j),
            _ => None,
        };
        let ping = |i| send_patiently(&ponger, i);
        let Some(times) = time_round_trips(ctx, rounds, warmup, ping, pong)? else {
            return Ok(());
        };
        self.args
            .report
            .send(times)
            .map_err(|e| ActorError::new(format!("report: {e}")))
    }
}

/// Answers every number with the same number, to the pinger given in its arguments.
pub struct PlainPonger {
    pin: Option<usize>,
    pinger: Addr<PlainPingerMsg>,
}

impl Actor for PlainPonger {
    type Args = (Option<usize>, Addr<PlainPingerMsg>);
    type Msg = u64;
    type Event = ();

    fn init_args((pin, pinger): Self::Args) -> Result<Self, ActorError> {
        Ok(PlainPonger { pin, pinger })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.pin)?;
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, i: Self::Msg) -> Result<(), ActorError> {
        send_patiently(&self.pinger, PlainPingerMsg::Pong(i))
    }
}

/// A question to the [`Answerer`]: a number, and where its answer goes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Question {
    /// Answered with the same number.
    pub i: u64,
    /// Where the answer goes.
    pub reply: ReplyTo<u64>,
}

/// Times round trips as `Addr::ask` makes them: one question at a time to the answerer.
pub struct AskPinger {
    args: PingerArgs<Question>,
}

impl Actor for AskPinger {
    type Args = PingerArgs<Question>;
    type Msg = PlainPingerMsg;
    type Event = ();

    fn init_args(args: PingerArgs<Question>) -> Result<Self, ActorError> {
        Ok(AskPinger { args })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.args.pin)?;
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |this, ctx, msg| {
            let PlainPingerMsg::Go { rounds, warmup } = msg else {
                return Ok(());
            };
            let mut times = Vec::with_capacity(rounds as usize);
            for i in 0..warmup + rounds {
                if ctx.should_stop() {
                    return Ok(());
                }
                let t0 = Instant::now();
                let answer = this
                    .args
                    .ponger
                    .ask(|reply| Question { i, reply }, Duration::from_secs(5))
                    .map_err(|e| ActorError::new("asking").with_cause(e))?;
                if answer != i {
                    return Err(format!("asked {i}, answered {answer}").into());
                }
                if i >= warmup {
                    times.push(t0.elapsed().as_nanos() as u64);
                }
            }
            this.args
                .report
                .send(times)
                .map_err(|e| ActorError::new(format!("report: {e}")))
        })
    }
}

/// Answers every question with its number.
pub struct Answerer {
    pin: Option<usize>,
}

impl Actor for Answerer {
    type Args = Option<usize>;
    type Msg = Question;
    type Event = ();

    fn init_args(pin: Option<usize>) -> Result<Self, ActorError> {
        Ok(Answerer { pin })
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        pin_to(self.pin)?;
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |_this, _ctx, q| {
            q.reply.send(q.i);
            Ok(())
        })
    }
}

/// Does nothing until asked to stop: the spawn, stop and memory benchmarks.
pub struct Idle;

impl Actor for Idle {
    type Args = ();
    type Msg = ();
    type Event = ();

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Idle)
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------------------

/// In an actor's `startup`: pins its process to `cpu`, if given.
fn pin_to(cpu: Option<usize>) -> Result<(), ActorError> {
    match cpu {
        Some(cpu) => pin_process(cpu).map_err(|e| ActorError::new(format!("pinning: {e}"))),
        None => Ok(()),
    }
}

/// Pins every thread of this process (and so every thread it starts later) to `cpu`.
pub fn pin_process(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes one bit of it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: sched_setaffinity reads `size` bytes of the set we pass.
        let rc =
            unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// VmRSS of a process in KiB (`/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> BenchResult<u64> {
    status_kib(pid, "VmRSS:")
}

/// RssAnon of a process in KiB: its private memory (heap, stacks), without the pages of the
/// binary and libraries that every process of the same binary shares.
pub fn anon_kib(pid: u32) -> BenchResult<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> BenchResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} line"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("no {field} value"))?
        .parse()?)
}

/// Ends the whole benchmark if it runs past `limit` (a stuck child must not hang the run):
/// its children die with it (parent-death signal).
pub fn watchdog(limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("bench-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!("bench: still running after {limit:?}: giving up");
            std::process::exit(3);
        });
    if let Err(e) = spawned {
        eprintln!("bench: no watchdog: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Measurements (root side). Each returns one figure per measured round.
// ---------------------------------------------------------------------------------------

/// Stops a system and checks that it reconciled: every accepted message handled.
fn stop_and_check(mut system: System<()>) -> BenchResult<u64> {
    system.request_stop("benchmark done");
    let summary = system.run(|_, _, ()| {});
    for a in &summary.actors {
        if a.dead_letters != 0 || a.accepted != a.handled {
            return Err(format!(
                "{}: accepted={} handled={} dead_letters={}",
                a.name, a.accepted, a.handled, a.dead_letters
            )
            .into());
        }
    }
    Ok(summary.stop_millis)
}

/// mpactor, small messages: producer actors sending to one consumer actor through ordinary
/// bounded `Addr`s, kept running between rounds.
pub struct MpactorSmall {
    system: System<()>,
    producers: Vec<Addr<u64>>,
    done: IpcReceiver<u64>,
}

impl MpactorSmall {
    /// Starts one consumer and `producers` producers, each in its own process.
    pub fn start(producers: u32) -> BenchResult<Self> {
        Self::start_isolated(producers, Isolation::Processes)
    }

    /// Starts one consumer and `producers` producers with the given isolation: the same
    /// actors as processes or as threads of this process.
    pub fn start_isolated(producers: u32, isolation: Isolation) -> BenchResult<Self> {
        let mut system = System::<()>::new(registry(), config().isolation(isolation))?;
        let (done_tx, done) = ipc::channel::<u64>()?;
        let consumer = system.spawn::<Consumer>(
            "CONSUMER",
            ConsumerArgs {
                producers,
                done: done_tx,
            },
        )?;
        let mut addrs = Vec::new();
        for i in 0..producers {
            addrs.push(system.spawn::<Producer>(&format!("PRODUCER{i}"), consumer.clone())?);
        }
        Ok(MpactorSmall {
            system,
            producers: addrs,
            done,
        })
    }

    /// One round: every producer sends `per_producer` messages and a marker. Returns the
    /// messages sent and the seconds from "go" until the consumer had them all.
    pub fn round(&self, per_producer: u64) -> BenchResult<(u64, f64)> {
        let t0 = now_ns();
        for a in &self.producers {
            a.send(per_producer)?;
        }
        let t1 = self.done.try_recv_timeout(ROUND_DEADLINE)?;
        Ok((
            self.producers.len() as u64 * (per_producer + 1),
            secs(t0, t1),
        ))
    }

    /// Stops the system; fails unless every message was handled.
    pub fn finish(self) -> BenchResult<()> {
        stop_and_check(self.system).map(|_| ())
    }
}

/// Runs `rounds` measured rounds after one warm-up round (page faults, writer threads,
/// socket buffers); returns `count / seconds` per measured round.
pub fn rates(
    rounds: usize,
    mut round: impl FnMut() -> BenchResult<(u64, f64)>,
) -> BenchResult<Vec<f64>> {
    round()?;
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let (count, secs) = round()?;
        rates.push(count as f64 / secs);
    }
    Ok(rates)
}

/// mpactor, small messages: messages per second, per round.
pub fn mpactor_small(producers: u32, per_producer: u64, rounds: usize) -> BenchResult<Vec<f64>> {
    mpactor_small_isolated(producers, per_producer, rounds, Isolation::Processes)
}

/// As [`mpactor_small`], with the actors as processes or as threads.
pub fn mpactor_small_isolated(
    producers: u32,
    per_producer: u64,
    rounds: usize,
    isolation: Isolation,
) -> BenchResult<Vec<f64>> {
    let rig = MpactorSmall::start_isolated(producers, isolation)?;
    let rates = rates(rounds, || rig.round(per_producer))?;
    rig.finish()?;
    Ok(rates)
}

/// Payloads of `size` bytes, `count` per round, from one producer process to one consumer,
/// as `P` (`ByteBuf` or `SharedBytes`): bytes per second of each round.
pub fn mpactor_payload<P: Payload>(
    size: u64,
    count: u64,
    rounds: usize,
    options: ChildOptions,
) -> BenchResult<Vec<f64>> {
    let mut system = System::<()>::new(registry(), config())?;
    let (done_tx, done_rx) = ipc::channel::<u64>()?;
    let consumer = system.spawn_with::<PayloadConsumer<P>>(
        "CONSUMER",
        ConsumerArgs {
            producers: 1,
            done: done_tx,
        },
        options,
    )?;
    let producer = system.spawn::<PayloadProducer<P>>("PRODUCER", consumer)?;
    let rates = rates(rounds, || {
        let t0 = now_ns();
        producer.send((count, size))?;
        let t1 = done_rx.try_recv_timeout(ROUND_DEADLINE)?;
        Ok((count * size, secs(t0, t1)))
    })?;
    stop_and_check(system)?;
    Ok(rates)
}

/// mpactor round trips between two actors (a pinger and a ponger), kept running.
pub struct MpactorPing {
    system: System<()>,
    go: Box<dyn Fn(u64, u64) -> BenchResult<()>>,
    report: IpcReceiver<Vec<u64>>,
}

impl MpactorPing {
    /// Starts both, the ponger's inbox typed with a `Hello(Addr)` variant (so its messages
    /// go through the writer thread); `pin`: both processes on this CPU.
    pub fn start(pin: Option<usize>) -> BenchResult<Self> {
        let mut system = System::<()>::new(registry(), config())?;
        let (report_tx, report) = ipc::channel::<Vec<u64>>()?;
        let ponger = system.spawn::<Ponger>("PONGER", pin)?;
        let pinger = system.spawn::<Pinger>(
            "PINGER",
            PingerArgs {
                ponger: ponger.clone(),
                report: report_tx,
                pin,
            },
        )?;
        ponger.send(PongerMsg::Hello(pinger.clone()))?;
        // The hello goes through this process's writer for PONGER, while `Go` may go to
        // PINGER by the direct path at once: without this, PINGER's first ping could reach
        // PONGER before the hello ("a ping before the hello", seen on a loaded machine).
        // Once shipped, the hello is ahead of every ping in PONGER's socket.
        if mpactor::flush_all(Instant::now() + ROUND_DEADLINE) > 0 {
            return Err("the hello to PONGER was not shipped in time".into());
        }
        Ok(MpactorPing {
            system,
            go: Box::new(move |rounds, warmup| Ok(pinger.send(PingerMsg::Go { rounds, warmup })?)),
            report,
        })
    }

    /// Starts both with plain-number messages both ways (the direct path applies).
    pub fn start_plain(pin: Option<usize>) -> BenchResult<Self> {
        let mut system = System::<()>::new(registry(), config())?;
        let (report_tx, report) = ipc::channel::<Vec<u64>>()?;
        let (hello_tx, hello_rx) = ipc::channel::<IpcSender<Addr<u64>>>()?;
        let pinger = system.spawn::<PlainPinger>(
            "PINGER",
            PlainPingerArgs {
                report: report_tx,
                pin,
                hello: hello_tx,
            },
        )?;
        let to_pinger = hello_rx.try_recv_timeout(ROUND_DEADLINE)?;
        let ponger = system.spawn::<PlainPonger>("PONGER", (pin, pinger.clone()))?;
        to_pinger.send(ponger)?;
        Ok(MpactorPing {
            system,
            go: Box::new(move |rounds, warmup| {
                Ok(pinger.send(PlainPingerMsg::Go { rounds, warmup })?)
            }),
            report,
        })
    }

    /// Starts an asker and an answerer: round trips as `Addr::ask` makes them.
    pub fn start_ask(pin: Option<usize>) -> BenchResult<Self> {
        let mut system = System::<()>::new(registry(), config())?;
        let (report_tx, report) = ipc::channel::<Vec<u64>>()?;
        let answerer = system.spawn::<Answerer>("ANSWERER", pin)?;
        let pinger = system.spawn::<AskPinger>(
            "ASKER",
            PingerArgs {
                ponger: answerer,
                report: report_tx,
                pin,
            },
        )?;
        Ok(MpactorPing {
            system,
            go: Box::new(move |rounds, warmup| {
                Ok(pinger.send(PlainPingerMsg::Go { rounds, warmup })?)
            }),
            report,
        })
    }

    /// `warmup` unrecorded, then `rounds` recorded round trips: their times in ns.
    pub fn run(&self, rounds: u64, warmup: u64) -> BenchResult<Vec<u64>> {
        (self.go)(rounds, warmup)?;
        Ok(self.report.try_recv_timeout(ROUND_DEADLINE)?)
    }

    /// Stops the system.
    pub fn finish(self) -> BenchResult<()> {
        stop_and_check(self.system).map(|_| ())
    }
}

/// Which round trip [`mpactor_round_trip`] measures.
#[derive(Clone, Copy)]
pub enum RoundTrip {
    /// Plain numbers both ways (`MpactorPing::start_plain`).
    Plain,
    /// A ponger whose message type has an `Addr` variant (`MpactorPing::start`).
    Hello,
    /// `Addr::ask` and `ReplyTo::send` (`MpactorPing::start_ask`).
    Ask,
}

/// mpactor round trips: nanoseconds, one per round trip.
pub fn mpactor_round_trip(
    kind: RoundTrip,
    pin: Option<usize>,
    rounds: u64,
    warmup: u64,
) -> BenchResult<Vec<u64>> {
    let rig = match kind {
        RoundTrip::Plain => MpactorPing::start_plain(pin)?,
        RoundTrip::Hello => MpactorPing::start(pin)?,
        RoundTrip::Ask => MpactorPing::start_ask(pin)?,
    };
    let times = rig.run(rounds, warmup)?;
    rig.finish()?;
    Ok(times)
}

/// Spawn and stop of `n` idle actors: (ms until all reported started, ms from the stop
/// request until all were reaped and the system stopped, RSS KiB of one idle actor and its
/// private part (RssAnon), RSS KiB of the root with them running).
pub fn mpactor_spawn_stop(n: usize) -> BenchResult<(f64, f64, (u64, u64), u64)> {
    let mut system = System::<()>::new(registry(), config())?;
    let t0 = Instant::now();
    for i in 0..n {
        system.spawn_with::<Idle>(&format!("IDLE{i}"), (), ChildOptions::default())?;
    }
    let spawn_ms = t0.elapsed().as_secs_f64() * 1e3;
    let pid = system.status().first().map(|s| s.pid).ok_or("no actor")?;
    let actor_rss = (rss_kib(pid)?, anon_kib(pid)?);
    if std::env::var_os("BENCH_DEBUG_SMAPS").is_some() {
        let _ = std::fs::copy(format!("/proc/{pid}/smaps"), "/tmp/actor.smaps");
        let _ = std::process::Command::new("sh").arg("-c").arg(format!("ls /proc/{pid}/task | wc -l > /tmp/actor.tasks; cat /proc/{pid}/task/*/comm >> /tmp/actor.tasks")).status();
    }
    let root_rss = rss_kib(std::process::id())?;
    let t1 = Instant::now();
    system.request_stop("benchmark done");
    let summary = system.run(|_, _, ()| {});
    let stop_ms = t1.elapsed().as_secs_f64() * 1e3;
    if summary.exit_code() != 0 {
        return Err(format!("the system stopped with {}", summary.reason).into());
    }
    Ok((spawn_ms, stop_ms, actor_rss, root_rss))
}

/// Seconds between two `now_ns` readings.
pub fn secs(t0: u64, t1: u64) -> f64 {
    t1.saturating_sub(t0).max(1) as f64 / 1e9
}

/// The median of some figures.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

/// The `p`-th percentile (0–100) of round-trip times, in µs.
pub fn percentile_us(v: &[u64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() as f64 * p / 100.0) as usize).min(s.len() - 1);
    s[i] as f64 / 1e3
}

/// A receiver for the raw references' done messages, when the root is not the consumer.
pub fn report_channel<T: Serialize + for<'de> Deserialize<'de>>(
) -> BenchResult<(IpcSender<T>, IpcReceiver<T>)> {
    Ok(ipc::channel()?)
}

// ---------------------------------------------------------------------------------------
// Idle cost: what a process tree of idle actors costs the machine, seen from outside
// ---------------------------------------------------------------------------------------

/// CPU time (utime + stime, in clock ticks) and context switches (voluntary + nonvoluntary,
/// summed over every thread) of one process, from `/proc`. Threads listed in `skip` (the
/// measuring thread itself) are left out of the switches.
fn proc_cost(pid: u32, skip: &[u32]) -> BenchResult<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'.
    let after = stat.rsplit_once(')').ok_or("no ')' in stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of stat(5) are the 12th and 13th after the name.
    let ticks: u64 = fields.get(11).ok_or("no utime")?.parse::<u64>()?
        + fields.get(12).ok_or("no stime")?.parse::<u64>()?;
    let mut switches = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let tid: u32 = entry
            .file_name()
            .to_str()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        if skip.contains(&tid) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += v.trim().parse::<u64>()?;
            }
        }
    }
    Ok((ticks, switches))
}

/// What an idle process tree cost over a measured window.
pub struct IdleCost {
    /// CPU time of the whole tree, in % of one core.
    pub cpu_percent: f64,
    /// Context switches per second of the root (the measuring thread left out).
    pub root_per_s: f64,
    /// Context switches per second of each actor process.
    pub actor_per_s: Vec<f64>,
}

impl IdleCost {
    /// Context switches per second of the whole tree.
    pub fn total_per_s(&self) -> f64 {
        self.root_per_s + self.actor_per_s.iter().sum::<f64>()
    }
}

/// Starts `n` idle queue actors, lets the start-up settle for `settle`, then measures the
/// root and every actor process over `window` while the root runs its ordinary loop
/// (`System::run`), which then stops the system at its run-for deadline.
pub fn mpactor_idle(n: usize, settle: Duration, window: Duration) -> BenchResult<IdleCost> {
    let config = config().run_for(settle + window + Duration::from_millis(300));
    let mut system = System::<()>::new(registry(), config)?;
    for i in 0..n {
        system.spawn_with::<Idle>(&format!("IDLE{i}"), (), ChildOptions::default())?;
    }
    let pids: Vec<u32> = system.status().iter().map(|s| s.pid).collect();
    let root = std::process::id();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let measurer = std::thread::Builder::new()
        .name("bench-idle".into())
        .spawn(move || -> Result<IdleCost, String> {
            // SAFETY: gettid has no preconditions.
            let me = [unsafe { libc::gettid() } as u32];
            std::thread::sleep(settle);
            let snap = || -> Result<Vec<(u64, u64)>, String> {
                std::iter::once(root)
                    .chain(pids.iter().copied())
                    .map(|p| proc_cost(p, &me).map_err(|e| format!("pid {p}: {e}")))
                    .collect()
            };
            let t0 = Instant::now();
            let before = snap()?;
            std::thread::sleep(window);
            let after = snap()?;
            let secs = t0.elapsed().as_secs_f64();
            let per_s = |i: usize| (after[i].1 - before[i].1) as f64 / secs;
            let ticks: u64 = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).sum();
            Ok(IdleCost {
                cpu_percent: ticks as f64 / tick / secs * 100.0,
                root_per_s: per_s(0),
                actor_per_s: (1..after.len()).map(per_s).collect(),
            })
        })?;
    let summary = system.run(|_, _, ()| {});
    let cost = measurer
        .join()
        .map_err(|_| "the measuring thread panicked")??;
    if summary.exit_code() != 0 {
        return Err(format!("the system stopped with {}", summary.reason).into());
    }
    Ok(cost)
}
