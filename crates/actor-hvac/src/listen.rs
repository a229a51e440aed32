//! LISTEN: a custom-loop actor, the device's TCP server.
//!
//! * It binds in `startup`, so a port in use fails the start (and the root's spawn says so).
//!   There too it raises its soft descriptor limit to the hard limit and lengthens the
//!   listening socket's backlog to [`BACKLOG`].
//! * One thread serves every client at once: a poll loop ([mio]) over non-blocking sockets.
//!   Each connection carries its own deadline for the stage it is in: the request within
//!   the client timeout, the root's answer within the reply timeout, the write within
//!   [`WRITE_TIMEOUT`], then a short [`LINGER`]. A silent or slow client costs a descriptor
//!   and a few hundred bytes until its deadline, never anyone else's time.
//! * A request is complete as soon as the bytes read form one ([`protocol::judge`]): at a
//!   newline, at the client's end of stream, or when what came is a whole request (the
//!   mptools client sends one and waits). No quiet gap is waited out.
//! * At most `max_connections` are open at once; a client beyond that gets `ERROR busy` and
//!   is closed at once (so does one that arrives when the process is out of descriptors: a
//!   spare descriptor is kept for that, and accepting pauses for [`ACCEPT_BACKOFF`]).
//! * Requests go to the root as [`HvacEvent::Request`]; the root's answer comes back into
//!   LISTEN's inbox as [`ListenMsg::Reply`], matched to its connection by incarnation and
//!   request id, so a late answer to an earlier request is never sent to the wrong client.
//! * Waits are bounded: the poll waits at most [`IDLE_POLL`] when nothing is pending (the
//!   stop flag is looked at between waits); while requests are with the root, LISTEN waits
//!   on its inbox for at most [`REPLY_WAIT`] at a time and polls the sockets in between, so
//!   an answer goes out as soon as it arrives.
//! * With a control token ([`crate::token`]), `END` and `SET` without it get `ERROR` here
//!   and never reach the root.
//! * Logs stay quiet under load: one DEBUG line per connection, and at INFO one line per
//!   interval that saw traffic, with the counts of how connections ended ([`stats`]).

mod conn;
mod fds;
pub mod stats;

use crate::messages::{HvacEvent, ListenMsg};
use crate::protocol::{self, answer_line, error_line, Command, Framing, ProtocolError};
use crate::token::ControlToken;
use actor_core::{Actor, ActorError, Context, Recv};
use conn::{Conn, Drained, Stage};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};
use stats::{End, Stats};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// The longest the poll waits when no request is with the root: how late a stop set by a
/// signal is seen at most (the root's own stop request is seen the same way).
pub const IDLE_POLL: Duration = Duration::from_millis(25);
/// While requests are with the root: the longest single wait on the inbox for an answer
/// before the sockets are polled again (an answer ends the wait as soon as it arrives).
pub const REPLY_WAIT: Duration = Duration::from_millis(1);
/// How long a client has to send its request, by default.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long LISTEN waits for the root's reply, by default.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long writing a reply may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the reply, how long unread input is taken before closing, so that the close does
/// not turn into a reset that could destroy the reply before the client read it.
pub const LINGER: Duration = Duration::from_millis(200);
/// The cap on open connections, by default: above the 1,000 idle clients the device is
/// meant to hold while it still answers at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The most requests LISTEN has with the root at once; a request beyond it gets
/// `ERROR busy`. Below the root's event inbox capacity (4096 per sender), so handing a request
/// over never waits for room, and equal to LISTEN's own mailbox capacity (policy), so the
/// root never waits to hand an answer back.
pub const MAX_IN_FLIGHT: usize = 1024;
/// How often, at most, LISTEN logs its counts at INFO (only for intervals with traffic).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// The listening socket's backlog (capped by the kernel at `net.core.somaxconn`).
pub const BACKLOG: i32 = 4096;
/// How long accepting pauses when the process is out of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Descriptors the process needs besides its connections (inbox, logging, the spare...):
/// a cap above the limit minus these is warned about at start.
const RESERVED_DESCRIPTORS: u64 = 32;
/// Connections accepted in one go before the other sockets get their turn.
const ACCEPT_BATCH: usize = 128;
/// On a stop, how long LISTEN still waits for the answers to requests with the root (the
/// answer to `REQUEST END` is queued just before the stop).
const STOP_FLUSH: Duration = Duration::from_millis(100);
/// The poll token of the listening socket; connections count up from 1, never reused.
const LISTENER: Token = Token(0);

/// LISTEN's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenArgs {
    /// The address to bind (port 0: any free port, logged as "listening on ...").
    pub addr: SocketAddr,
    /// How long a client has to send its request.
    pub client_timeout: Duration,
    /// How long to wait for the root's reply.
    pub reply_timeout: Duration,
    /// The most connections open at once; beyond it, `ERROR busy`.
    pub max_connections: usize,
    /// When set, `END` and `SET` must carry it.
    pub control_token: Option<ControlToken>,
    /// How often, at most, the counts are logged at INFO.
    pub stats_interval: Duration,
}

impl ListenArgs {
    /// The defaults on `addr`: 2 s to send a request, 2 s for the root's reply,
    /// [`DEFAULT_MAX_CONNECTIONS`], no control token, counts every [`STATS_INTERVAL`].
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            control_token: None,
            stats_interval: STATS_INTERVAL,
        }
    }
}

/// The LISTEN actor.
pub struct ListenActor {
    args: ListenArgs,
    listener: Option<std::net::TcpListener>,
    summary: Option<String>,
}

impl Actor for ListenActor {
    type Args = ListenArgs;
    type Msg = ListenMsg;
    type Event = HvacEvent;

    fn init_args(args: ListenArgs) -> Result<Self, ActorError> {
        Ok(Self {
            args,
            listener: None,
            summary: None,
        })
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        match fds::raise_limit() {
            Ok(lim) => {
                if lim.now > lim.before {
                    slog::debug!(
                        ctx.log(),
                        "descriptor limit raised from {} to {}",
                        lim.before,
                        lim.now
                    );
                }
                let cap = self.args.max_connections as u64;
                if cap + RESERVED_DESCRIPTORS > lim.now {
                    slog::warn!(
                        ctx.log(),
                        "the descriptor limit ({}) is below the cap of {cap} connections: \
                         past about {} clients, new ones get ERROR busy",
                        lim.now,
                        lim.now.saturating_sub(RESERVED_DESCRIPTORS)
                    );
                }
            }
            Err(e) => slog::warn!(ctx.log(), "cannot raise the descriptor limit: {e}"),
        }
        let addr = self.args.addr;
        let cannot =
            |e: io::Error| ActorError::new(format!("cannot listen on {addr}")).with_cause(e);
        let listener = std::net::TcpListener::bind(addr).map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        if let Err(e) = fds::set_backlog(&listener, BACKLOG) {
            slog::warn!(ctx.log(), "cannot lengthen the backlog to {BACKLOG}: {e}");
        }
        let local = listener.local_addr().map_err(cannot)?;
        slog::info!(
            ctx.log(),
            "listening on {local}: at most {} connections, control {}",
            self.args.max_connections,
            if self.args.control_token.is_some() {
                "needs the token"
            } else {
                "open"
            }
        );
        self.listener = Some(listener);
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let Some(listener) = self.listener.take() else {
            return Err(ActorError::new("the listening socket is not open"));
        };
        let mut server = Server::new(self.args.clone(), TcpListener::from_std(listener))
            .map_err(|e| ActorError::new("cannot set up polling").with_cause(e))?;
        let result = server.run(ctx);
        self.summary = Some(format!(
            "served {} connections: {}",
            server.stats.total.connections(),
            server.stats.total.breakdown()
        ));
        result
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.listener = None;
        if let Some(summary) = &self.summary {
            slog::info!(ctx.log(), "{summary}");
        }
    }
}

/// What taking the answers from the inbox found: the inbox is open, or its stop request came.
enum Inbox {
    /// Go on: more answers may come.
    Open,
    /// The stop request was received (everything queued before it was handled).
    Stopped,
}

/// The poll loop's state: the sockets, each connection's stage, the timers, the requests
/// with the root.
struct Server {
    args: ListenArgs,
    poll: Poll,
    events: Events,
    ready: Vec<Token>,
    listener: TcpListener,
    conns: HashMap<Token, Conn>,
    /// (deadline, connection, epoch): a min-heap; entries of an earlier epoch are stale.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Request id → the connection waiting for its answer.
    awaiting: HashMap<u64, Token>,
    next_token: usize,
    next_id: u64,
    incarnation: u32,
    /// The listening socket may have connections waiting (it is edge-triggered).
    accept_ready: bool,
    /// Out of descriptors: no accept before then.
    accept_paused_until: Option<Instant>,
    out_of_descriptors: bool,
    spare: Option<File>,
    last_inbox_check: Instant,
    stats: Stats,
}

impl Server {
    fn new(args: ListenArgs, mut listener: TcpListener) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        Ok(Self {
            stats: Stats::new(args.stats_interval, now),
            args,
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            listener,
            conns: HashMap::new(),
            timers: BinaryHeap::new(),
            awaiting: HashMap::new(),
            next_token: 1,
            next_id: 1,
            incarnation: std::process::id(),
            accept_ready: true,
            accept_paused_until: None,
            out_of_descriptors: false,
            spare: fds::spare(),
            last_inbox_check: now,
        })
    }

    fn run(&mut self, ctx: &mut Context<ListenActor>) -> Result<(), ActorError> {
        loop {
            if ctx.should_stop() {
                self.stop(ctx, Inbox::Open);
                return Ok(());
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept_ready = true;
            }
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ActorError::new("polling the sockets failed").with_cause(e)),
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            for event in self.events.iter() {
                if event.token() == LISTENER {
                    self.accept_ready = true;
                } else {
                    ready.push(event.token());
                }
            }
            for token in ready.drain(..) {
                self.on_ready(ctx, token);
            }
            self.ready = ready;
            if self.accept_ready && self.accept_paused_until.is_none() {
                self.accept_all(ctx)?;
            }
            if let Inbox::Stopped = self.take_answers(ctx) {
                self.stop(ctx, Inbox::Stopped);
                return Ok(());
            }
            let now = Instant::now();
            self.expire(ctx, now);
            if let Some(line) = self.stats.tick(now, self.conns.len()) {
                slog::info!(ctx.log(), "{line}");
            }
        }
    }

    /// No wait while there is work (connections to accept, answers to wait for on the
    /// inbox instead); else until the next deadline, at most [`IDLE_POLL`].
    fn poll_timeout(&self, now: Instant) -> Duration {
        if !self.awaiting.is_empty() || (self.accept_ready && self.accept_paused_until.is_none()) {
            return Duration::ZERO;
        }
        let mut wait = IDLE_POLL;
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        if let Some(until) = self.accept_paused_until {
            wait = wait.min(until.saturating_duration_since(now));
        }
        wait
    }

    fn set_timer(&mut self, token: Token, stage: Stage, timeout: Duration) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let deadline = Instant::now() + timeout;
        let epoch = conn.enter(stage, deadline);
        self.timers.push(Reverse((deadline, token.0, epoch)));
    }

    fn accept_all(&mut self, ctx: &mut Context<ListenActor>) -> Result<(), ActorError> {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if self.out_of_descriptors {
                        self.out_of_descriptors = false;
                        slog::info!(ctx.log(), "accepting connections again");
                        if self.spare.is_none() {
                            self.spare = fds::spare();
                        }
                    }
                    self.open(ctx, stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if fds::is_out_of_resources(&e) => {
                    self.on_out_of_resources(ctx, e);
                    return Ok(());
                }
                Err(e) if fds::is_transient(&e) => {
                    slog::debug!(ctx.log(), "accept failed for one connection: {e}");
                }
                Err(e) => {
                    // The listening socket itself is broken: a restart binds a new one.
                    return Err(
                        ActorError::new(format!("accept failed on {}", self.args.addr))
                            .with_cause(e),
                    );
                }
            }
        }
        // A full batch: more may be waiting; the other sockets get their turn first.
        Ok(())
    }

    /// Out of descriptors (or memory): the waiting client that the spare descriptor makes
    /// room for gets `ERROR busy`; accepting pauses for [`ACCEPT_BACKOFF`], and a warning
    /// is logged once per episode (the INFO counts say how often it happened).
    fn on_out_of_resources(&mut self, ctx: &mut Context<ListenActor>, e: io::Error) {
        self.stats.count_out_of_descriptors();
        if let Some(spare) = self.spare.take() {
            drop(spare);
            if let Ok((stream, peer)) = self.listener.accept() {
                self.refuse_busy(ctx, stream, peer);
            }
            self.spare = fds::spare();
        }
        self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
        if !self.out_of_descriptors {
            self.out_of_descriptors = true;
            let why = format!(
                "accept failed: {e}: new clients get ERROR busy while {} connections are open",
                self.conns.len()
            );
            slog::warn!(ctx.log(), "{why}");
            let _ = ctx.emit(HvacEvent::Error(format!("LISTEN: {why}")));
        }
    }

    fn open(&mut self, ctx: &mut Context<ListenActor>, mut stream: TcpStream, peer: SocketAddr) {
        if self.conns.len() >= self.args.max_connections {
            self.refuse_busy(ctx, stream, peer);
            return;
        }
        // Replies are one small write: send it at once.
        let _ = stream.set_nodelay(true);
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            slog::debug!(ctx.log(), "cannot serve {peer}: {e}");
            self.stats.count(End::Failed);
            return;
        }
        let now = Instant::now();
        self.conns.insert(token, Conn::new(stream, peer, now, now));
        self.set_timer(token, Stage::Reading, self.args.client_timeout);
        // The request may be there already.
        self.read_request(ctx, token);
    }

    /// `ERROR busy`, without waiting: a write into an empty socket buffer, the write side
    /// closed, what the client sent so far taken (so the close is no reset), and closed.
    fn refuse_busy(&mut self, ctx: &mut Context<ListenActor>, stream: TcpStream, peer: SocketAddr) {
        let line = error_line(format!(
            "busy: {} connections open, the most this device serves; try again later",
            self.conns.len()
        ));
        let _ = (&stream).write(line.as_bytes());
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 2048];
        let _ = io::Read::read(&mut &stream, &mut sink);
        self.stats.count(End::Busy);
        slog::debug!(ctx.log(), "{peer}: refused: {}", line.trim_end());
    }

    fn on_ready(&mut self, ctx: &mut Context<ListenActor>, token: Token) {
        let Some(conn) = self.conns.get(&token) else {
            return;
        };
        match conn.stage {
            Stage::Reading => self.read_request(ctx, token),
            // What it sends meanwhile is taken while lingering.
            Stage::AwaitingRoot(_) => {}
            Stage::Writing => self.write_reply(ctx, token),
            Stage::Lingering => self.linger(ctx, token),
        }
    }

    fn read_request(&mut self, ctx: &mut Context<ListenActor>, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let Err(e) = conn.fill() {
            conn.request = Some(format!("(reading failed: {e})"));
            conn.end = Some(End::Failed);
            self.close(ctx, token);
            return;
        }
        if conn.input.is_empty() {
            if conn.eof {
                conn.end = Some(End::ClosedEarly);
                self.close(ctx, token);
            }
            return;
        }
        match protocol::judge(&conn.input, conn.eof, self.args.control_token.as_ref()) {
            Framing::Incomplete => {}
            Framing::Complete(parsed) => self.on_message(ctx, token, parsed),
        }
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<ListenActor>,
        token: Token,
        parsed: Result<Command, ProtocolError>,
    ) {
        match parsed {
            Ok(command) => self.ask_root(ctx, token, command),
            Err(e) => {
                let end = match e {
                    ProtocolError::TokenRequired(_) | ProtocolError::BadToken => End::Denied,
                    _ => End::Refused,
                };
                self.reply(ctx, token, error_line(e), end);
            }
        }
    }

    /// Hands a request to the root; the answer comes back through the inbox.
    fn ask_root(&mut self, ctx: &mut Context<ListenActor>, token: Token, command: Command) {
        if self.awaiting.len() >= MAX_IN_FLIGHT {
            let line = error_line(format!(
                "busy: {MAX_IN_FLIGHT} requests are with the device; try again later"
            ));
            self.reply(ctx, token, line, End::Busy);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.request = Some(format!("request {id}: {command}"));
        }
        let request = HvacEvent::Request {
            incarnation: self.incarnation,
            id,
            command,
        };
        if let Err(e) = ctx.emit(request) {
            if self.stats.first_warning() {
                slog::warn!(ctx.log(), "cannot hand request {id} to the root: {e}");
            }
            let line = error_line("the device cannot take requests now");
            self.reply(ctx, token, line, End::NoAnswer);
            return;
        }
        self.awaiting.insert(id, token);
        self.set_timer(token, Stage::AwaitingRoot(id), self.args.reply_timeout);
    }

    /// Takes the root's answers from the inbox: waits up to [`REPLY_WAIT`] for the first
    /// while requests are with the root, then takes what else is there without waiting.
    /// With none pending, looks only every [`IDLE_POLL`] (for late answers, dropped).
    fn take_answers(&mut self, ctx: &mut Context<ListenActor>) -> Inbox {
        let now = Instant::now();
        let mut wait = if self.awaiting.is_empty() {
            if now.saturating_duration_since(self.last_inbox_check) < IDLE_POLL {
                return Inbox::Open;
            }
            Duration::ZERO
        } else {
            REPLY_WAIT
        };
        self.last_inbox_check = now;
        loop {
            match ctx.recv(wait) {
                Recv::Msg(ListenMsg::Reply {
                    incarnation,
                    id,
                    answer,
                }) => {
                    wait = Duration::ZERO;
                    let waiting = if incarnation == self.incarnation {
                        self.awaiting.remove(&id)
                    } else {
                        None
                    };
                    match waiting {
                        Some(token) => {
                            self.reply(ctx, token, answer_line(id, &answer), End::Answered)
                        }
                        None => slog::debug!(ctx.log(), "dropping a late reply to request {id}"),
                    }
                }
                Recv::Timeout => return Inbox::Open,
                Recv::Stop => return Inbox::Stopped,
            }
        }
    }

    fn reply(&mut self, ctx: &mut Context<ListenActor>, token: Token, line: String, end: End) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        conn.output = line.into_bytes();
        conn.written = 0;
        conn.end = Some(end);
        self.set_timer(token, Stage::Writing, WRITE_TIMEOUT);
        self.write_reply(ctx, token);
    }

    fn write_reply(&mut self, ctx: &mut Context<ListenActor>, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        match conn.flush() {
            Ok(true) => {
                let _ = conn.stream.shutdown(Shutdown::Write);
                self.set_timer(token, Stage::Lingering, LINGER);
                self.linger(ctx, token);
            }
            Ok(false) => {}
            Err(e) => {
                conn.request = Some(format!(
                    "{} (writing the reply failed: {e})",
                    conn.request.as_deref().unwrap_or("-")
                ));
                conn.end = Some(End::Failed);
                self.close(ctx, token);
            }
        }
    }

    fn linger(&mut self, ctx: &mut Context<ListenActor>, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        match conn.discard_input() {
            Ok(Drained::More) => {}
            Ok(Drained::Eof) | Err(_) => self.close(ctx, token),
        }
    }

    /// Acts on the deadlines that passed.
    fn expire(&mut self, ctx: &mut Context<ListenActor>, now: Instant) {
        while let Some(&Reverse((at, t, epoch))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let token = Token(t);
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if conn.epoch != epoch {
                continue;
            }
            match conn.stage {
                Stage::Reading if conn.input.is_empty() => {
                    let line =
                        error_line(format!("no request within {:?}", self.args.client_timeout));
                    self.reply(ctx, token, line, End::Silent);
                }
                Stage::Reading => {
                    // A trickling client is judged on what it sent by its deadline.
                    let parsed =
                        protocol::parse_request(&conn.input, self.args.control_token.as_ref());
                    match parsed {
                        Ok(command) => self.ask_root(ctx, token, command),
                        Err(e) => self.reply(ctx, token, error_line(e), End::Refused),
                    }
                }
                Stage::AwaitingRoot(id) => {
                    self.awaiting.remove(&id);
                    let why = format!(
                        "no reply from the root to request {id} within {:?}",
                        self.args.reply_timeout
                    );
                    if self.stats.first_warning() {
                        slog::warn!(ctx.log(), "{why}");
                        let _ = ctx.emit(HvacEvent::Error(format!("LISTEN: {why}")));
                    }
                    let line = error_line(format!(
                        "timeout: no reply within {:?}",
                        self.args.reply_timeout
                    ));
                    self.reply(ctx, token, line, End::NoAnswer);
                }
                Stage::Writing => {
                    conn.end = Some(End::Failed);
                    conn.request = Some(format!(
                        "{} (the reply could not be written within {WRITE_TIMEOUT:?})",
                        conn.request.as_deref().unwrap_or("-")
                    ));
                    self.close(ctx, token);
                }
                Stage::Lingering => self.close(ctx, token),
            }
        }
    }

    /// Closes a connection: counts how it ended and logs one DEBUG line for it.
    fn close(&mut self, ctx: &mut Context<ListenActor>, token: Token) {
        let Some(conn) = self.conns.remove(&token) else {
            return;
        };
        if let Stage::AwaitingRoot(id) = conn.stage {
            self.awaiting.remove(&id);
        }
        let end = conn.end.unwrap_or(End::ClosedEarly);
        self.stats.count(end);
        slog::debug!(
            ctx.log(),
            "{}: {} -> {} ({}, {:.2} ms)",
            conn.peer,
            conn.request.as_deref().unwrap_or("-"),
            if conn.output.is_empty() {
                "-".to_string()
            } else {
                conn.reply_text()
            },
            end.label(),
            conn.opened.elapsed().as_secs_f64() * 1e3
        );
        // Dropping the stream closes it, which also takes it out of the poll set.
    }

    /// The stop: answers still coming from the root are awaited briefly (unless the
    /// inbox already said stop), every other client gets `ERROR shutting down` where a
    /// write goes through at once, and every connection is closed.
    fn stop(&mut self, ctx: &mut Context<ListenActor>, inbox: Inbox) {
        if let Inbox::Open = inbox {
            let until = Instant::now() + STOP_FLUSH;
            while !self.awaiting.is_empty() {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match ctx.recv(left.min(Duration::from_millis(5))) {
                    Recv::Msg(ListenMsg::Reply {
                        incarnation,
                        id,
                        answer,
                    }) if incarnation == self.incarnation => {
                        if let Some(token) = self.awaiting.remove(&id) {
                            self.reply(ctx, token, answer_line(id, &answer), End::Answered);
                        }
                    }
                    Recv::Msg(_) | Recv::Timeout => {}
                    Recv::Stop => break,
                }
            }
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        let open = tokens.len();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if matches!(conn.stage, Stage::Reading | Stage::AwaitingRoot(_)) {
                conn.output = error_line("shutting down").into_bytes();
                conn.written = 0;
                conn.end = Some(End::Stopped);
            }
            if conn.flush().is_err() {
                conn.end = Some(End::Failed);
            }
            let _ = conn.stream.shutdown(Shutdown::Write);
            let _ = conn.discard_input();
            self.close(ctx, token);
        }
        if open > 0 {
            slog::debug!(ctx.log(), "stopping: closed {open} open connections");
        }
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;
    use crate::protocol::Answer;
    use actor_core::Outcome;
    use actor_ipc::testkit::TestKit;
    use std::io::Read;

    fn start(token: Option<&str>) -> (TestKit<ListenActor>, SocketAddr) {
        // A port free a moment ago; retried if another test took it meanwhile.
        for _ in 0..3 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let args = ListenArgs {
                client_timeout: Duration::from_millis(300),
                reply_timeout: Duration::from_millis(300),
                control_token: token.map(|t| ControlToken::new(t).expect("valid")),
                ..ListenArgs::new(addr)
            };
            if let Ok(kit) = TestKit::<ListenActor>::start(args) {
                return (kit, addr);
            }
        }
        panic!("no free port");
    }

    fn ask(addr: SocketAddr, msg: &[u8]) -> std::thread::JoinHandle<String> {
        let msg = msg.to_vec();
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(&msg).expect("send");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            reply
        })
    }

    #[test]
    fn a_request_goes_to_the_root_and_its_reply_to_the_client() {
        let (kit, addr) = start(None);
        let client = ask(addr, b"REQUEST STATUS");
        let Some(HvacEvent::Request {
            incarnation,
            id,
            command,
        }) = kit.next_event(Duration::from_secs(5))
        else {
            panic!("no request reached the root");
        };
        assert_eq!((id, command), (1, Command::Status));
        // A stale reply first (another incarnation): never sent to this client.
        kit.send(ListenMsg::Reply {
            incarnation: incarnation.wrapping_add(1),
            id: 1,
            answer: Answer::Reply("wrong".into()),
        })
        .expect("sent");
        kit.send(ListenMsg::Reply {
            incarnation,
            id: 1,
            answer: Answer::Reply("all fine".into()),
        })
        .expect("sent");
        assert_eq!(client.join().expect("client"), "REPLY 1 all fine\n");
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    #[test]
    fn answers_go_to_their_own_connections_whatever_the_order() {
        let (kit, addr) = start(None);
        let first = ask(addr, b"REQUEST one");
        let Some(HvacEvent::Request { incarnation, .. }) = kit.next_event(Duration::from_secs(5))
        else {
            panic!("no first request");
        };
        let second = ask(addr, b"REQUEST two\n");
        assert!(matches!(
            kit.next_event(Duration::from_secs(5)),
            Some(HvacEvent::Request { id: 2, .. })
        ));
        // Answered in the reverse order.
        for (id, text) in [(2, "for two"), (1, "for one")] {
            kit.send(ListenMsg::Reply {
                incarnation,
                id,
                answer: Answer::Reply(text.into()),
            })
            .expect("sent");
        }
        assert_eq!(second.join().expect("client"), "REPLY 2 for two\n");
        assert_eq!(first.join().expect("client"), "REPLY 1 for one\n");
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    #[test]
    fn no_reply_from_the_root_is_a_timeout_error() {
        let (kit, addr) = start(None);
        let reply = ask(addr, b"REQUEST anyone").join().expect("client");
        assert_eq!(reply, "ERROR timeout: no reply within 300ms\n");
        let events = {
            let mut v = Vec::new();
            while let Some(e) = kit.next_event(Duration::from_millis(200)) {
                v.push(e);
            }
            v
        };
        assert!(matches!(events[0], HvacEvent::Request { .. }), "{events:?}");
        assert!(
            matches!(&events[1], HvacEvent::Error(e) if e.contains("no reply from the root to request 1")),
            "{events:?}"
        );
        // A bad request never reaches the root.
        let reply = ask(addr, b"GET / HTTP/1.0\r\n\r\n").join().expect("client");
        assert!(reply.starts_with("ERROR not a request"), "{reply}");
        assert_eq!(kit.next_event(Duration::from_millis(100)), None);
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    #[test]
    fn control_without_the_token_never_reaches_the_root() {
        let (kit, addr) = start(Some("s3cret"));
        let reply = ask(addr, b"REQUEST END").join().expect("client");
        assert!(
            reply.starts_with("ERROR END needs the control token"),
            "{reply}"
        );
        let reply = ask(addr, b"REQUEST TOKEN nope SET 22")
            .join()
            .expect("client");
        assert_eq!(reply, "ERROR wrong control token\n");
        assert_eq!(kit.next_event(Duration::from_millis(200)), None);
        let _client = ask(addr, b"REQUEST TOKEN s3cret END");
        assert!(matches!(
            kit.next_event(Duration::from_secs(5)),
            Some(HvacEvent::Request {
                command: Command::End,
                ..
            })
        ));
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    #[test]
    fn a_silent_client_gets_an_error_at_its_deadline_and_a_trickler_is_judged() {
        let (kit, addr) = start(None);
        let silent = ask(addr, b"");
        let trickler = ask(addr, b"REQ");
        assert_eq!(
            silent.join().expect("client"),
            "ERROR no request within 300ms\n"
        );
        let reply = trickler.join().expect("client");
        assert!(reply.starts_with("ERROR not a request"), "{reply}");
        assert_eq!(kit.next_event(Duration::from_millis(100)), None);
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    #[test]
    fn a_stop_is_seen_within_the_idle_poll() {
        let (kit, _addr) = start(None);
        let t0 = Instant::now();
        assert_eq!(kit.stop(), Outcome::Clean);
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
    }
}
