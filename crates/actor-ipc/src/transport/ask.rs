//! Request/reply: [`Addr::ask`](crate::Addr::ask) sends a request that carries a
//! [`ReplyTo`] and waits, up to a deadline, for the answer with the request's id.
//!
//! Where replies go: every thread that asks has its own reply inbox, a Unix datagram socket
//! bound to a random abstract name (created at its first ask, closed when the thread ends).
//! A [`ReplyTo`] is plain data: that name, a random token, and the question's id. So a
//! request stays a message without `Drop`, small, and takes `Addr`'s direct path (no writer
//! thread, no descriptor passed), and the reply handle goes wherever the request goes: into
//! another process, into a thread actor, forwarded to a third actor.
//!
//! The replier writes one datagram (the token, the id, the encoded value) with
//! `MSG_DONTWAIT` from an unbound socket of its process: it never blocks and never fails.
//! When the asker is gone (its socket closed) or not reading (its queue full), the reply is
//! a dead letter. The asker takes only the datagram with its current question's id and its
//! token; anything else waiting in its socket (a reply that came after its question gave up)
//! is dropped: a dead letter too, never the answer to a later question.
//!
//! Counting: every reply made is counted `replies_sent`, every reply taken as an answer
//! `replies_taken`, in the counter block of the root's report inbox, which every process of
//! a system holds; the summary's [`ReplySummary`](actor_core::ReplySummary) reads them, and
//! the dead letters are the difference.
//!
//! Across machines (a request sent through a remote `Addr`), a `ReplyTo` travels as the
//! route back to the asking machine plus that name, token and id; the answer goes back
//! through the transport and into the same socket (see `reply_route`, which also says how
//! each machine counts it).

use crate::transport::reply_route::{self, RouteRef};
use crate::transport::{Addr, RemoteLink};
use crate::wire::counters::Counters;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::io;
use std::marker::PhantomData;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The largest encoded reply value: one datagram. A larger reply is refused by the replier's
/// process (logged there, and a dead letter); answer with a message instead, whose large
/// payloads travel in shared memory.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The datagram's header: the inbox's token, then the question's id (little endian).
const HEADER: usize = 16;

/// The first bytes of every reply inbox's abstract name.
const NAME_PREFIX: &[u8; 12] = b"mpactor-ask/";

/// Why an [`Addr::ask`](crate::Addr::ask) gave no answer.
///
/// ```
/// use actor_ipc::AskError;
/// let e = AskError::Timeout;
/// assert_eq!(e.to_string(), "no reply before the deadline");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No reply came before the deadline: the actor is slow or busy, the request or the
    /// reply was lost (its process crashed), or the replier dropped the [`ReplyTo`] without
    /// answering. The request itself may still be handled later; its reply is then a dead
    /// letter.
    #[error("no reply before the deadline")]
    Timeout,
    /// The actor is gone for good: the request was not sent. For an actor on another
    /// machine: its node is down (the request was not sent), or went down while the question
    /// waited (the request may have been handled; its answer is lost with the node).
    #[error("the actor is gone")]
    Disconnected,
    /// A reply with this question's id came but could not be decoded as the expected type.
    #[error("the reply could not be decoded: {0}")]
    Decode(String),
    /// This thread's reply inbox could not be made (out of descriptors, no random source),
    /// or, for an actor on another machine, the route for its answers (the subscription to
    /// this process's reply subject) could not be made.
    #[error("no reply inbox")]
    Io(#[source] io::Error),
    /// The actor is on another machine, reached through a transport that carries no replies
    /// (a [`RemoteLink`](crate::RemoteLink) whose
    /// [`reply_route`](crate::RemoteLink::reply_route) is `None`): the request was not sent.
    /// `actor-nats` (feature `nats`) carries replies, so an address from its `Cluster` never
    /// says this; a transport of another crate might.
    #[error("ask does not reach {actor} on node {node}: its transport carries no replies")]
    AcrossMachines {
        /// The actor asked.
        actor: String,
        /// The node that runs it.
        node: String,
    },
}

/// Where the answer to one question goes: hand it to [`ReplyTo::send`] once.
///
/// Made by [`Addr::ask`](crate::Addr::ask) and put into the request by the caller's closure;
/// serializable and small, so it travels inside the request to an actor in any process (and
/// on, if that actor forwards the request), and to another machine through a remote `Addr`
/// (there it carries the route back to the asking machine, which the answering process
/// keeps in a small table: it stays plain data, without `Drop`). Answering never blocks and never fails: a reply
/// the asker no longer waits for (it timed out, or its thread or process is gone) is counted
/// as a dead letter in the summary ([`ReplySummary`](actor_core::ReplySummary)).
///
/// ```
/// use actor_ipc::ReplyTo;
/// use serde::{Deserialize, Serialize};
///
/// /// A key-value store's inbox: `Get` carries where its answer goes.
/// #[derive(Serialize, Deserialize)]
/// enum Kv {
///     Put { key: u64, value: u64 },
///     Get { key: u64, reply: ReplyTo<Option<u64>> },
/// }
///
/// fn handle(store: &mut std::collections::HashMap<u64, u64>, msg: Kv) {
///     match msg {
///         Kv::Put { key, value } => { store.insert(key, value); }
///         Kv::Get { key, reply } => { reply.send(store.get(&key).copied()); }
///     }
/// }
/// ```
pub struct ReplyTo<R> {
    pid: u32,
    key: u64,
    token: u64,
    id: u64,
    /// Set when the question came from another machine: the route its answer goes back
    /// through (a slot of this process's table, so that a `ReplyTo` stays without `Drop`).
    via: Option<RouteRef>,
    _r: PhantomData<fn(R)>,
}

/// How a [`ReplyTo`] crosses a process boundary: the asker's socket on this machine, or, on
/// another machine (or once it has been there), the route back to it as well.
#[derive(Serialize)]
enum WireRef<'a> {
    Local {
        pid: u32,
        key: u64,
        token: u64,
        id: u64,
    },
    Remote {
        scheme: &'a str,
        route: &'a [u8],
        pid: u32,
        key: u64,
        token: u64,
        id: u64,
    },
}

/// [`WireRef`], decoded: the same variants in the same order.
#[derive(Deserialize)]
enum Wire {
    Local {
        pid: u32,
        key: u64,
        token: u64,
        id: u64,
    },
    Remote {
        scheme: String,
        route: Vec<u8>,
        pid: u32,
        key: u64,
        token: u64,
        id: u64,
    },
}

impl<R> Serialize for ReplyTo<R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (pid, key, token, id) = (self.pid, self.key, self.token, self.id);
        let remote = |scheme: &str, route: &[u8], serializer: S| {
            WireRef::Remote {
                scheme,
                route,
                pid,
                key,
                token,
                id,
            }
            .serialize(serializer)
        };
        if let Some(via) = self.via {
            // It came from another machine: wherever it goes now, its answer goes back there.
            return match reply_route::with_route(via, |scheme, route| {
                remote(scheme, route, serializer)
            }) {
                Some(result) => result,
                None => Err(serde::ser::Error::custom(
                    "the route back to the machine that asked the question was forgotten (too \
                     many asking processes since)",
                )),
            };
        }
        match super::remote::encoding_reply_route() {
            // Into a message for another machine: the answer comes back through the link's
            // transport to this machine, and from there into the asker's socket.
            Some((scheme, Ok(route))) => remote(scheme, &route, serializer),
            Some((_, Err(why))) => {
                let why = format!("no route for answers from another machine: {why}");
                super::remote::refused_because(&why);
                Err(serde::ser::Error::custom(why))
            }
            None if super::remote::encoding_remote() => {
                let why = "a question cannot be sent to another machine through a transport \
                           that carries no replies";
                super::remote::refused_because(why);
                Err(serde::ser::Error::custom(why))
            }
            None => WireRef::Local {
                pid,
                key,
                token,
                id,
            }
            .serialize(serializer),
        }
    }
}

impl<'de, R> Deserialize<'de> for ReplyTo<R> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (pid, key, token, id, via) = match Wire::deserialize(deserializer)? {
            Wire::Local {
                pid,
                key,
                token,
                id,
            } => (pid, key, token, id, None),
            Wire::Remote {
                scheme,
                route,
                pid,
                key,
                token,
                id,
            } => {
                let via = reply_route::intern(&scheme, &route).map_err(serde::de::Error::custom)?;
                (pid, key, token, id, Some(via))
            }
        };
        Ok(ReplyTo {
            pid,
            key,
            token,
            id,
            via,
            _r: PhantomData,
        })
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.via {
            None => write!(f, "ReplyTo(pid {}, question {})", self.pid, self.id),
            Some(_) => write!(f, "ReplyTo(another machine, question {})", self.id),
        }
    }
}

impl<R: Serialize> ReplyTo<R> {
    /// Answers the question. Never blocks and never fails: returns true if the reply went
    /// into the asker's reply inbox, false if it is a dead letter (the asker is gone or not
    /// reading, or the value encodes to more than [`MAX_REPLY_BYTES`], which is logged).
    /// A reply that arrives after the asker gave up is also a dead letter, though this says
    /// true: only the asker can tell. Every reply is counted, so the summary's
    /// [`ReplySummary`](actor_core::ReplySummary) reconciles either way.
    ///
    /// To a question from another machine (asked through a remote `Addr`), the reply goes
    /// back through the transport (NATS): true once its connection took it, without waiting
    /// (false, a dead letter of this machine, if its buffer is full). It may still be lost
    /// with its node or the server (at most once; the asker's deadline bounds its wait).
    ///
    /// A reply must not hold an [`Addr`] (or another channel): it travels as plain bytes.
    ///
    /// See [`ReplyTo`] for an example.
    pub fn send(self, value: R) -> bool {
        let counters = reply_counters().get();
        Counters::add(&counters.replies_sent, 1);
        OUT_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            if self.via.is_some() {
                buf.extend_from_slice(&self.pid.to_le_bytes());
                buf.extend_from_slice(&self.key.to_le_bytes());
            }
            buf.extend_from_slice(&self.token.to_le_bytes());
            buf.extend_from_slice(&self.id.to_le_bytes());
            let head = buf.len();
            let encoded = {
                let _guard = EncodingReply::enter();
                postcard::to_extend(&value, std::mem::take(&mut *buf))
            };
            match encoded {
                Ok(bytes) => *buf = bytes,
                Err(e) => {
                    super::ipc::writer_says(
                        true,
                        &format!(
                            "a reply to question {} could not be encoded ({e}): dropped",
                            self.id
                        ),
                    );
                    return false;
                }
            }
            if buf.len() > head + MAX_REPLY_BYTES {
                super::ipc::writer_says(
                    true,
                    &format!(
                        "a reply of {} bytes is larger than MAX_REPLY_BYTES ({MAX_REPLY_BYTES}): \
                         dropped, a dead letter",
                        buf.len() - head
                    ),
                );
                return false;
            }
            if let Some(via) = self.via {
                let Some(route) = reply_route::route(via) else {
                    super::remote::say_once(
                        "a reply to another machine was dropped (a dead letter): the route back \
                         was forgotten (too many asking processes since its question came)",
                    );
                    return false;
                };
                // It left this machine: counted taken here, and sent again where it arrives.
                let sent = route.send(buf.clone());
                if sent {
                    Counters::add(&counters.replies_taken, 1);
                }
                return sent;
            }
            let Some(out) = out_socket() else {
                return false;
            };
            let Ok(to) = SocketAddr::from_abstract_name(inbox_name(self.pid, self.key)) else {
                return false;
            };
            // Non-blocking: a full or closed reply inbox is the asker's problem, never the
            // replier's (ECONNREFUSED, EAGAIN: a dead letter).
            out.send_to_addr(&buf, &to).is_ok()
        })
    }

    /// The question's id: unique among this asker thread's questions.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// The abstract socket name of a reply inbox.
pub(super) fn inbox_name(pid: u32, key: u64) -> [u8; 24] {
    let mut name = [0u8; 24];
    name[..12].copy_from_slice(NAME_PREFIX);
    name[12..16].copy_from_slice(&pid.to_le_bytes());
    name[16..].copy_from_slice(&key.to_le_bytes());
    name
}

thread_local! {
    /// The reply encoding buffer of this thread (replies are encoded without an allocation).
    static OUT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// This thread's reply inbox; `None` before its first ask, and while an ask runs (a
    /// closure that asks again gets an inbox of its own).
    static INBOX: RefCell<Option<ReplyInbox>> = const { RefCell::new(None) };
    /// Set while a reply is encoded: an `Addr` refuses to be encoded into one.
    static ENCODING_REPLY: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread encodes a reply (see [`ReplyTo::send`]).
pub(crate) fn encoding_reply() -> bool {
    ENCODING_REPLY.with(Cell::get)
}

struct EncodingReply;

impl EncodingReply {
    fn enter() -> Self {
        ENCODING_REPLY.with(|c| c.set(true));
        EncodingReply
    }
}

impl Drop for EncodingReply {
    fn drop(&mut self) {
        ENCODING_REPLY.with(|c| c.set(false));
    }
}

/// The unbound, non-blocking socket this process sends every reply from.
pub(super) fn out_socket() -> Option<&'static UnixDatagram> {
    static OUT: OnceLock<Option<UnixDatagram>> = OnceLock::new();
    OUT.get_or_init(|| {
        let made = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
        match made {
            Ok(s) => Some(s),
            Err(e) => {
                super::ipc::writer_says(true, &format!("no socket to send replies from: {e}"));
                None
            }
        }
    })
    .as_ref()
}

/// Where this process counts replies: the root's report inbox's block (see
/// [`set_reply_counters`]); outside a system, a block of its own.
pub(super) fn reply_counters() -> &'static Counters {
    static LOCAL: OnceLock<Counters> = OnceLock::new();
    REPLY_COUNTERS
        .get()
        .unwrap_or_else(|| LOCAL.get_or_init(Counters::new))
}

static REPLY_COUNTERS: OnceLock<Counters> = OnceLock::new();

/// Runtime use: this process counts replies in `counters` (the root's report inbox's block,
/// shared by every process of the system). The first call wins.
pub(crate) fn set_reply_counters(counters: &Counters) {
    let _ = REPLY_COUNTERS.set(counters.clone());
}

/// The replies counted so far: (sent, taken). The root reads them for the summary.
pub(crate) fn reply_counts(counters: &Counters) -> (u64, u64) {
    let b = counters.get();
    (
        Counters::load(&b.replies_sent),
        Counters::load(&b.replies_taken),
    )
}

/// One thread's reply inbox.
struct ReplyInbox {
    sock: UnixDatagram,
    key: u64,
    token: u64,
    next_id: u64,
    /// The receive timeout the socket has now (set only when a wait needs another).
    timeout: Option<Duration>,
    /// Until when late answers may still come (some question gave up): until then, each ask
    /// first drops what is waiting, so that the socket's queue (at most
    /// `net.unix.max_dgram_qlen` datagrams, 10 by default) has room for its own answer.
    stale_until: Option<Instant>,
    buf: Vec<u8>,
}

/// How long after a question gave up its answer is still expected (and dropped at once).
const STALE_FOR: Duration = Duration::from_secs(10);

/// How often a question to an actor on another machine looks whether its node went down
/// while it waits (the node's state is a flag of the link: cheap).
const NODE_CHECK: Duration = Duration::from_millis(100);

impl ReplyInbox {
    fn new() -> io::Result<Self> {
        let key = crate::sys::random::random_u64()?;
        let token = crate::sys::random::random_u64()?;
        let name = SocketAddr::from_abstract_name(inbox_name(std::process::id(), key))?;
        let sock = UnixDatagram::bind_addr(&name)?;
        Ok(Self {
            sock,
            key,
            token,
            next_id: 1,
            timeout: None,
            stale_until: None,
            buf: vec![0; HEADER + MAX_REPLY_BYTES],
        })
    }

    fn reply_to<R>(&mut self) -> ReplyTo<R> {
        let id = self.next_id;
        self.next_id += 1;
        ReplyTo {
            pid: std::process::id(),
            key: self.key,
            token: self.token,
            id,
            via: None,
            _r: PhantomData,
        }
    }

    /// Before a question: while late answers may be waiting, drops them (without blocking).
    fn drop_stale(&mut self) {
        let Some(until) = self.stale_until else {
            return;
        };
        if Instant::now() >= until {
            self.stale_until = None;
        }
        while rustix::net::recv(
            &self.sock,
            &mut self.buf[..],
            rustix::net::RecvFlags::DONTWAIT,
        )
        .is_ok()
        {}
    }

    /// Waits until `deadline` for the reply to question `id`; drops anything else.
    #[cfg(test)]
    fn wait<R: DeserializeOwned>(&mut self, id: u64, deadline: Instant) -> Result<R, AskError> {
        self.wait_on(id, deadline, None)
    }

    /// [`wait`](Self::wait) for a question to an actor on another machine through `link`:
    /// also ends, with `Disconnected`, once the link says the actor's node is down.
    fn wait_on<R: DeserializeOwned>(
        &mut self,
        id: u64,
        deadline: Instant,
        link: Option<&dyn RemoteLink>,
    ) -> Result<R, AskError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let down = link.is_some_and(|l| !l.is_up());
            if left.is_zero() || down {
                // Its answer may still come: the next questions make room for theirs.
                self.stale_until = Some(Instant::now() + STALE_FOR);
                return Err(if down {
                    AskError::Disconnected
                } else {
                    AskError::Timeout
                });
            }
            // Across machines, the node's state is looked at again every `NODE_CHECK`.
            self.set_timeout(if link.is_some() {
                left.min(NODE_CHECK)
            } else {
                left
            })?;
            let n = match self.sock.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(AskError::Io(e)),
            };
            if n < HEADER {
                continue;
            }
            let token = u64::from_le_bytes(self.buf[..8].try_into().unwrap_or_default());
            let got = u64::from_le_bytes(self.buf[8..16].try_into().unwrap_or_default());
            // A wrong token is not ours (the name is public in /proc/net/unix, the token only
            // travels inside requests); another id is a late reply: a dead letter.
            if token != self.token || got != id {
                continue;
            }
            let body = &self.buf[HEADER..n];
            // A reply holding a channel would make ipc-channel's decoder panic (it looks for
            // descriptors that never came): an error for this ask, not a panic of the caller.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                postcard::from_bytes::<R>(body)
            }));
            return match decoded {
                Ok(Ok(value)) => {
                    Counters::add(&reply_counters().get().replies_taken, 1);
                    Ok(value)
                }
                Ok(Err(e)) => Err(AskError::Decode(e.to_string())),
                Err(_) => Err(AskError::Decode(
                    "the reply holds a channel, which replies cannot carry".into(),
                )),
            };
        }
    }

    /// Gives the socket a receive timeout that ends no later than `left` from now. The
    /// usual ask sets it once: the next ask with the same timeout finds it in range (a
    /// setsockopt per ask would cost a tenth of a round trip). A wait that ends early is
    /// taken up again for what is left.
    fn set_timeout(&mut self, left: Duration) -> Result<(), AskError> {
        let slack = (left / 16).min(Duration::from_millis(1));
        if self
            .timeout
            .is_some_and(|t| t <= left && t + slack + slack >= left)
        {
            return Ok(());
        }
        let want = (left - slack).max(Duration::from_micros(1));
        self.sock
            .set_read_timeout(Some(want))
            .map_err(AskError::Io)?;
        self.timeout = Some(want);
        Ok(())
    }
}

impl<M> Addr<M>
where
    M: Serialize + Send + 'static,
{
    /// Asks the actor a question and waits at most `timeout` for its answer.
    ///
    /// `make` builds the request from a fresh [`ReplyTo`]; the actor answers with
    /// [`ReplyTo::send`]. The request is sent as [`send_timeout`](Addr::send_timeout) sends
    /// (the direct path when the actor is waiting), within the same deadline, and the reply
    /// is matched by the question's id: a late answer to an earlier question is dropped
    /// (a dead letter), never taken for this one.
    ///
    /// Works wherever an `Addr` is: in an actor's code (process or thread), in the root
    /// before [`System::run`](crate::System::run) and in its event handler (the root's loop
    /// waits while it asks), in a test with the [`testkit`](crate::testkit). It blocks the
    /// calling thread; an actor that asks itself gets [`AskError::Timeout`].
    ///
    /// Across machines too: on an address of an actor on another node (a cluster's
    /// `lookup`), the request goes through the cluster and the answer comes back through
    /// it, into the same reply inbox, with the same matching and the same deadline. The
    /// first such ask of a process subscribes to the process's reply subject (once). While
    /// it waits, an ask across machines also ends with [`AskError::Disconnected`] once the
    /// actor's node is noticed down (within 3 s of its death): the request may or may not
    /// have been handled, its answer is lost with the node. A transport that carries no
    /// replies says [`AskError::AcrossMachines`] at once and sends nothing.
    ///
    /// ```no_run
    /// use actor_ipc::{Addr, AskError, ReplyTo};
    /// use serde::{Deserialize, Serialize};
    /// use std::time::Duration;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// enum Kv {
    ///     Get { key: u64, reply: ReplyTo<Option<u64>> },
    /// }
    ///
    /// fn lookup(kv: &Addr<Kv>, key: u64) -> Result<Option<u64>, AskError> {
    ///     kv.ask(|reply| Kv::Get { key, reply }, Duration::from_millis(500))
    /// }
    /// ```
    pub fn ask<R, F>(&self, make: F, timeout: Duration) -> Result<R, AskError>
    where
        R: DeserializeOwned,
        F: FnOnce(ReplyTo<R>) -> M,
    {
        let link = self.remote_link().map(|l| &**l);
        if let Some(link) = link {
            // Made once per process and transport (a subscription), before the question goes.
            match link.reply_route() {
                Some(Ok(_)) => {}
                Some(Err(why)) => return Err(AskError::Io(io::Error::other(why))),
                None => {
                    return Err(AskError::AcrossMachines {
                        actor: link.name().to_string(),
                        node: link.node().to_string(),
                    })
                }
            }
        }
        let deadline = Instant::now().checked_add(timeout);
        // Out of the thread-local while the ask runs: `make` may ask, too.
        let mut inbox = match INBOX.with(|i| i.borrow_mut().take()) {
            Some(inbox) => inbox,
            None => ReplyInbox::new().map_err(AskError::Io)?,
        };
        inbox.drop_stale();
        let reply = inbox.reply_to::<R>();
        let id = reply.id;
        let result = match self.send_timeout(make(reply), timeout) {
            Ok(()) => {
                // A deadline beyond the clock's range waits as long as the clock can say.
                let deadline =
                    deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
                inbox.wait_on(id, deadline, link)
            }
            Err(e) if e.is_disconnected() => Err(AskError::Disconnected),
            Err(_) => Err(AskError::Timeout),
        };
        INBOX.with(|i| {
            let mut slot = i.borrow_mut();
            if slot.is_none() {
                *slot = Some(inbox);
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_reply_is_dropped_and_the_current_question_gets_its_own() {
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let first = inbox.reply_to::<u64>();
        let second = inbox.reply_to::<u64>();
        let second_id = second.id();
        assert_ne!(first.id(), second_id);
        // The answer to the first question comes after it gave up, before the second's.
        assert!(first.send(1));
        assert!(second.send(2));
        let got = inbox.wait::<u64>(second_id, Instant::now() + Duration::from_secs(5));
        assert_eq!(got.ok(), Some(2));
    }

    #[test]
    fn late_answers_that_fill_the_queue_do_not_crowd_out_the_next_one() {
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let gave_up = inbox.reply_to::<u64>();
        let gave_up_id = gave_up.id();
        let got = inbox.wait::<u64>(gave_up_id, Instant::now() + Duration::from_millis(5));
        assert!(matches!(got, Err(AskError::Timeout)), "{got:?}");
        // Its answer comes late, many times over (a slow replier answering a backlog), until
        // the socket's queue is full and refuses more.
        let copies = (0..64)
            .take_while(|_| {
                ReplyTo::<u64> {
                    _r: PhantomData,
                    ..gave_up
                }
                .send(1)
            })
            .count();
        assert!(
            copies < 64,
            "the queue is bounded (net.unix.max_dgram_qlen)"
        );
        // The next question makes room first: its answer is not refused.
        inbox.drop_stale();
        let next = inbox.reply_to::<u64>();
        let next_id = next.id();
        assert!(next.send(2), "room for the next answer");
        let got = inbox.wait::<u64>(next_id, Instant::now() + Duration::from_secs(5));
        assert_eq!(got.ok(), Some(2));
    }

    #[test]
    fn a_reply_with_a_wrong_token_is_not_taken() {
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let mut forged = inbox.reply_to::<u64>();
        let id = forged.id();
        forged.token ^= 1;
        assert!(forged.send(7), "written: only the asker can tell");
        let got = inbox.wait::<u64>(id, Instant::now() + Duration::from_millis(50));
        assert!(matches!(got, Err(AskError::Timeout)), "{got:?}");
    }

    #[test]
    fn a_reply_to_a_thread_that_is_gone_is_a_dead_letter_not_an_error() {
        let reply = std::thread::spawn(|| {
            let mut inbox = ReplyInbox::new().expect("reply inbox");
            inbox.reply_to::<String>()
        })
        .join()
        .expect("thread");
        let before = reply_counts(reply_counters());
        assert!(!reply.send("to nobody".into()));
        let after = reply_counts(reply_counters());
        assert_eq!(after.0, before.0 + 1, "counted as sent");
        assert_eq!(after.1, before.1, "and never taken");
    }

    #[test]
    fn a_reply_from_another_machine_is_delivered_and_matched_like_a_local_one() {
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let late = inbox.reply_to::<u64>();
        let asked = inbox.reply_to::<u64>();
        // What a transport carries back: the asker's socket name, token, id, then the value.
        let payload = |r: &ReplyTo<u64>, value: u64| {
            let mut p = Vec::new();
            p.extend_from_slice(&r.pid.to_le_bytes());
            p.extend_from_slice(&r.key.to_le_bytes());
            p.extend_from_slice(&r.token.to_le_bytes());
            p.extend_from_slice(&r.id.to_le_bytes());
            p.extend(postcard::to_allocvec(&value).expect("encode"));
            p
        };
        let before = reply_counts(reply_counters());
        // A late answer first, then the one asked for, then garbage: only the one asked for
        // is taken, and each arrival is counted sent on this machine.
        assert!(super::reply_route::deliver_remote_reply(&payload(&late, 1)));
        assert!(super::reply_route::deliver_remote_reply(&payload(
            &asked, 2
        )));
        assert!(!super::reply_route::deliver_remote_reply(&[1, 2, 3]));
        let got = inbox.wait::<u64>(asked.id(), Instant::now() + Duration::from_secs(5));
        assert_eq!(got.ok(), Some(2));
        // At least: other tests of this binary count in the same block at the same time
        // (tests/ask.rs in actor-nats checks the exact counts of a system).
        let after = reply_counts(reply_counters());
        assert!(after.0 - before.0 >= 3, "arrivals counted sent");
        assert!(after.1 > before.1, "the answer counted taken");
    }

    #[test]
    fn a_question_from_another_machine_needs_its_transport() {
        // The wire form of a ReplyTo that came from another machine, in a binary without
        // the "nats" transport (actor-ipc alone): a decode error naming the feature.
        let wire = WireRef::Remote {
            scheme: "nats",
            route: &[1, 2, 3],
            pid: 1,
            key: 2,
            token: 3,
            id: 4,
        };
        let bytes = postcard::to_allocvec(&wire).expect("encode");
        assert!(postcard::from_bytes::<ReplyTo<u64>>(&bytes).is_err());
        // A local one still round-trips as plain data.
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let r = inbox.reply_to::<u64>();
        let id = r.id();
        let back: ReplyTo<u64> =
            postcard::from_bytes(&postcard::to_allocvec(&r).expect("encode")).expect("decode");
        assert_eq!(back.id(), id);
        assert!(back.via.is_none());
        assert!(
            !std::mem::needs_drop::<ReplyTo<u64>>(),
            "keeps the direct path"
        );
    }

    #[test]
    fn a_reply_too_large_is_refused_without_blocking() {
        let mut inbox = ReplyInbox::new().expect("reply inbox");
        let reply = inbox.reply_to::<Vec<u8>>();
        assert!(!reply.send(vec![0u8; MAX_REPLY_BYTES + 1]));
    }
}
