//! LISTEN: a custom-loop actor, the device's TCP server.
//!
//! * It binds in `startup`, so a port in use fails the start (and the root's spawn says so).
//! * Its loop accepts without blocking and waits at most [`ACCEPT_POLL`] for a connection
//!   before it looks at its stop flag again: a stop is seen within that poll.
//! * It serves clients one after another, each under deadlines: the request must arrive
//!   within the client timeout (read in slices of [`READ_SLICE`], the stop flag looked at
//!   between them), the root's reply within the reply timeout, the write within
//!   [`WRITE_TIMEOUT`]. A client can cost it a few seconds at most, never stall it.
//! * Requests go to the root as [`HvacEvent::Request`]; the root's answer comes back into
//!   LISTEN's inbox as [`ListenMsg::Reply`], matched by incarnation and request id, so a
//!   late answer to an earlier request is never sent to the wrong client.
//! * Bad input gets an `ERROR <reason>` where a reply is possible, and costs nothing else.

use crate::messages::{HvacEvent, ListenMsg};
use crate::protocol::{self, answer_line, error_line, Command, ProtocolError, MAX_MESSAGE};
use actor_core::{Actor, ActorError, Context, Recv};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The longest wait for a connection before the stop flag is looked at again.
pub const ACCEPT_POLL: Duration = Duration::from_millis(25);
/// The longest single wait for a client's bytes before the stop flag is looked at again.
pub const READ_SLICE: Duration = Duration::from_millis(25);
/// Once some bytes of a message arrived without a newline, this much silence ends the
/// message: the mptools client sends one message and waits for the reply.
pub const QUIET_GAP: Duration = Duration::from_millis(30);
/// How long a client has to send its request, by default.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long LISTEN waits for the root's reply, by default.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long writing a reply may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the reply, how long unread input is drained before closing, so that the close does
/// not turn into a reset that could destroy the reply before the client read it.
pub const LINGER: Duration = Duration::from_millis(200);
/// How long to back off when accept fails for want of resources (file descriptors, memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// LISTEN's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenArgs {
    /// The address to bind.
    pub addr: SocketAddr,
    /// How long a client has to send its request.
    pub client_timeout: Duration,
    /// How long to wait for the root's reply.
    pub reply_timeout: Duration,
}

/// The LISTEN actor.
pub struct ListenActor {
    args: ListenArgs,
    listener: Option<TcpListener>,
    incarnation: u32,
    next_id: u64,
    clients: u64,
}

/// What reading a client's message gave.
#[derive(Debug)]
pub enum Incoming {
    /// A message: the bytes before the first newline, or all that came.
    Message(Vec<u8>),
    /// More than [`MAX_MESSAGE`] bytes before any newline.
    TooLong,
    /// The client closed the connection without sending anything.
    Closed,
    /// Nothing arrived by the deadline.
    Silent,
    /// The actor is asked to stop.
    Stopping,
    /// The connection failed (reset).
    Failed(io::Error),
}

/// Reads one message from `stream`: up to the first newline, the end of the stream, a quiet
/// gap of [`QUIET_GAP`] after some bytes, or `deadline`, whichever comes first. Each wait
/// lasts at most [`READ_SLICE`], and `should_stop` is asked between them.
pub fn read_message(
    stream: &mut TcpStream,
    deadline: Instant,
    should_stop: impl Fn() -> bool,
) -> Incoming {
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 2048];
    loop {
        if should_stop() {
            return Incoming::Stopping;
        }
        let now = Instant::now();
        if now >= deadline {
            // A client that trickles bytes gets judged on what it sent by the deadline.
            return if buf.is_empty() {
                Incoming::Silent
            } else {
                Incoming::Message(buf)
            };
        }
        let wait = if buf.is_empty() {
            READ_SLICE
        } else {
            QUIET_GAP
        };
        let wait = wait.min(deadline - now).max(Duration::from_millis(1));
        if let Err(e) = stream.set_read_timeout(Some(wait)) {
            return Incoming::Failed(e);
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Incoming::Closed,
            Ok(0) => return Incoming::Message(buf),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    if end > MAX_MESSAGE {
                        return Incoming::TooLong;
                    }
                    buf.truncate(end + 1);
                    return Incoming::Message(buf);
                }
                if buf.len() > MAX_MESSAGE {
                    return Incoming::TooLong;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if !buf.is_empty() {
                    return Incoming::Message(buf);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Incoming::Failed(e),
        }
    }
}

/// Reads and discards what the client still sends, for at most `limit`, until it closes or
/// goes quiet: closing a socket with unread input makes the kernel send a reset, which can
/// destroy the reply before the client has read it.
fn linger(stream: &mut TcpStream, limit: Duration) {
    let until = Instant::now() + limit;
    let mut sink = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left.min(QUIET_GAP))).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// Accept errors that say something about one connection or a passing shortage, not about
/// the listening socket (accept(2): treat the network errors like EAGAIN).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ETIMEDOUT
        )
    )
}

/// Waits until `listener` has a connection to accept, at most `timeout`.
fn wait_for_connection(listener: &TcpListener, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd that lives across the call. An error (EINTR) is an early
    // wake-up, which the caller's loop handles like a timeout.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}

impl ListenActor {
    fn serve(&mut self, ctx: &mut Context<Self>, mut stream: TcpStream, peer: SocketAddr) {
        self.clients += 1;
        let prepared = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
        if let Err(e) = prepared {
            slog::info!(ctx.log(), "cannot serve {peer}: {e}");
            return;
        }
        slog::debug!(ctx.log(), "accepted a connection from {peer}");
        let deadline = Instant::now() + self.args.client_timeout;
        let reply = match read_message(&mut stream, deadline, || ctx.should_stop()) {
            Incoming::Message(bytes) => match protocol::parse_message(&bytes) {
                Ok(command) => Some(self.ask_root(ctx, command, peer)),
                Err(e) => {
                    slog::warn!(ctx.log(), "bad request from {peer}: {e}");
                    Some(error_line(e))
                }
            },
            Incoming::TooLong => {
                slog::warn!(
                    ctx.log(),
                    "bad request from {peer}: {}",
                    ProtocolError::TooLong
                );
                Some(error_line(ProtocolError::TooLong))
            }
            Incoming::Closed => {
                slog::info!(ctx.log(), "{peer} closed the connection without a request");
                None
            }
            Incoming::Silent => {
                slog::warn!(
                    ctx.log(),
                    "{peer} sent nothing within {:?}: dropped",
                    self.args.client_timeout
                );
                Some(error_line(format!(
                    "no request within {:?}",
                    self.args.client_timeout
                )))
            }
            Incoming::Stopping => Some(error_line("shutting down")),
            Incoming::Failed(e) => {
                slog::info!(ctx.log(), "reading from {peer} failed: {e}");
                None
            }
        };
        if let Some(line) = reply {
            if let Err(e) = stream.write_all(line.as_bytes()) {
                slog::info!(ctx.log(), "cannot reply to {peer}: {e}");
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
        linger(&mut stream, LINGER);
    }

    /// Hands a request to the root and waits for its answer under the reply deadline.
    fn ask_root(&mut self, ctx: &mut Context<Self>, command: Command, peer: SocketAddr) -> String {
        let id = self.next_id;
        self.next_id += 1;
        slog::info!(ctx.log(), "request {id} from {peer}: {command}");
        let request = HvacEvent::Request {
            incarnation: self.incarnation,
            id,
            command,
        };
        if let Err(e) = ctx.emit(request) {
            slog::warn!(ctx.log(), "cannot hand request {id} to the root: {e}");
            return error_line("the device cannot take requests now");
        }
        let deadline = Instant::now() + self.args.reply_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!(
                    "no reply from the root to request {id} within {:?}",
                    self.args.reply_timeout
                );
                slog::warn!(ctx.log(), "{why}");
                let _ = ctx.emit(HvacEvent::Error(format!("LISTEN: {why}")));
                return error_line(format!(
                    "timeout: no reply within {:?}",
                    self.args.reply_timeout
                ));
            }
            match ctx.recv(left) {
                Recv::Msg(ListenMsg::Reply {
                    incarnation,
                    id: rid,
                    answer,
                }) => {
                    if incarnation == self.incarnation && rid == id {
                        let line = answer_line(id, &answer);
                        slog::debug!(ctx.log(), "reply {}", line.trim_end());
                        return line;
                    }
                    slog::debug!(ctx.log(), "dropping a late reply to request {rid}");
                }
                Recv::Timeout => {}
                Recv::Stop => return error_line("shutting down"),
            }
        }
    }

    /// Takes replies that came too late for their request, so they do not sit in the inbox.
    fn drop_late_replies(ctx: &mut Context<Self>) {
        while let Recv::Msg(ListenMsg::Reply { id, .. }) = ctx.recv(Duration::ZERO) {
            slog::debug!(ctx.log(), "dropping a late reply to request {id}");
        }
    }
}

impl Actor for ListenActor {
    type Args = ListenArgs;
    type Msg = ListenMsg;
    type Event = HvacEvent;

    fn init_args(args: ListenArgs) -> Result<Self, ActorError> {
        Ok(Self {
            args,
            listener: None,
            incarnation: std::process::id(),
            next_id: 1,
            clients: 0,
        })
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let addr = self.args.addr;
        let cannot =
            |e: io::Error| ActorError::new(format!("cannot listen on {addr}")).with_cause(e);
        let listener = TcpListener::bind(addr).map_err(cannot)?;
        listener.set_nonblocking(true).map_err(cannot)?;
        let local = listener.local_addr().map_err(cannot)?;
        slog::info!(ctx.log(), "listening on {local}");
        self.listener = Some(listener);
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let Some(listener) = self.listener.take() else {
            return Err(ActorError::new("the listening socket is not open"));
        };
        let result = loop {
            if ctx.should_stop() {
                break Ok(());
            }
            match listener.accept() {
                Ok((stream, peer)) => self.serve(ctx, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait_for_connection(&listener, ACCEPT_POLL);
                    Self::drop_late_replies(ctx);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient(&e) => {
                    slog::warn!(ctx.log(), "accept failed, backing off: {e}");
                    if e.raw_os_error() != Some(libc::ECONNABORTED) {
                        let _ = ctx.emit(HvacEvent::Error(format!("LISTEN: accept failed: {e}")));
                        // A bounded back-off: the stop flag is looked at again right after.
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                }
                Err(e) => {
                    // The listening socket itself is broken: a restart binds a new one.
                    break Err(
                        ActorError::new(format!("accept failed on {}", self.args.addr))
                            .with_cause(e),
                    );
                }
            }
        };
        self.listener = Some(listener);
        result
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        self.listener = None;
        slog::info!(ctx.log(), "served {} connections", self.clients);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair on loopback: (the server's end, the client's end).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (server, client)
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn a_message_without_newline_ends_at_a_quiet_gap() {
        let (mut server, mut client) = pair();
        client.write_all(b"REQUEST hi").expect("write");
        let t0 = Instant::now();
        match read_message(&mut server, soon(2000), || false) {
            Incoming::Message(m) => assert_eq!(m, b"REQUEST hi"),
            other => panic!("got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn a_newline_ends_the_message_at_once() {
        let (mut server, mut client) = pair();
        client.write_all(b"REQUEST a\nREQUEST b\n").expect("write");
        match read_message(&mut server, soon(2000), || false) {
            Incoming::Message(m) => assert_eq!(m, b"REQUEST a\n"),
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn a_silent_client_is_given_up_at_the_deadline() {
        let (mut server, _client) = pair();
        let t0 = Instant::now();
        assert!(matches!(
            read_message(&mut server, soon(150), || false),
            Incoming::Silent
        ));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(140) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_closed_client_is_noticed() {
        let (mut server, client) = pair();
        drop(client);
        assert!(matches!(
            read_message(&mut server, soon(2000), || false),
            Incoming::Closed
        ));
    }

    #[test]
    fn more_than_1500_bytes_is_too_long() {
        let (mut server, mut client) = pair();
        client.write_all(&[b'x'; 3000]).expect("write");
        assert!(matches!(
            read_message(&mut server, soon(2000), || false),
            Incoming::TooLong
        ));
    }

    #[test]
    fn a_stop_interrupts_the_wait() {
        let (mut server, _client) = pair();
        let t0 = Instant::now();
        assert!(matches!(
            read_message(&mut server, soon(5000), || t0.elapsed()
                > Duration::from_millis(50)),
            Incoming::Stopping
        ));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;
    use crate::protocol::Answer;
    use actor_core::Outcome;
    use actor_ipc::testkit::TestKit;

    fn start() -> (TestKit<ListenActor>, SocketAddr) {
        // A port free a moment ago; retried if another test took it meanwhile.
        for _ in 0..3 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let args = ListenArgs {
                addr,
                client_timeout: Duration::from_millis(300),
                reply_timeout: Duration::from_millis(300),
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
            let mut s = TcpStream::connect(addr).expect("connect");
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
        let (kit, addr) = start();
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
    fn no_reply_from_the_root_is_a_timeout_error() {
        let (kit, addr) = start();
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
    fn a_stop_is_seen_within_the_accept_poll() {
        let (kit, _addr) = start();
        let t0 = Instant::now();
        assert_eq!(kit.stop(), Outcome::Clean);
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
    }
}
