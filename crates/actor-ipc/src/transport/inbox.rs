//! The receiving side of an inbox in the actor's process.

use crate::wire::counters::Counters;
use crate::wire::frame::{Batch, Frame};
use crate::wire::shm::Mappings;
use actor_core::{InboxPort, Recv};
use ipc_channel::ipc::IpcReceiver;
use ipc_channel::{IpcError, TryRecvError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An ipc-channel inbox: unpacks batches, counts what it receives and hands out, logs and
/// counts frames that fail to decode, and turns the stop frame into [`Recv::Stop`].
pub(crate) struct IpcInbox<M> {
    rx: IpcReceiver<Frame<M>>,
    counters: Counters,
    local: VecDeque<M>,
    stopped: bool,
    handled: u64,
    log: slog::Logger,
    name: String,
    /// The receive timeout set on the socket now (`SO_RCVTIMEO`, one of [`RECV_SLICES`]);
    /// `None` if it cannot be set (every wait is then a `poll` and a `recvmsg`).
    slice: Option<Duration>,
    /// This incarnation's number: only a stop frame that carries it stops the actor.
    incarnation: u32,
    /// The large-message regions this inbox keeps mapped between messages (see `wire::shm`).
    mappings: Mappings,
    /// Frames that held something that failed to decode, and how many such messages (or
    /// unreadable frames) in all: the log says the 1st, 2nd, 4th, 8th... such frame, with the
    /// total, so that a sender of garbage cannot flood the log.
    failed_frames: u64,
    failed_total: u64,
}

/// While the inbox keeps mappings of regions, its waits end after at most this, so that an
/// idle actor lets go of the mappings its writers have closed (or that went unused).
const KEPT_LOOK: Duration = Duration::from_secs(1);

/// The receive timeouts an inbox socket is given (`SO_RCVTIMEO`), longest first. A wait of
/// at least one of them is one plain blocking `recvmsg` that the socket ends after the
/// longest slice not above the wait (an early "nothing yet":
/// [`Context::recv`](actor_core::Context::recv) waits again for the rest). ipc-channel's
/// timed receive is a `poll` and a `recvmsg`: one system call more per message that wakes a
/// waiting actor (~0.4 µs of a ~4 µs round trip on one CPU); only waits shorter than the
/// shortest slice take that way. The slice is set again only when a wait falls in another
/// class than the last one. Nothing needs the socket to give up sooner: a stop flag being set
/// wakes the receive with a wake frame (see `crate::transport::wake`), so an idle actor in
/// `loops::queue` wakes once per 10 s, not more, and one that waits 5 s at a time once per
/// second.
const RECV_SLICES: [Duration; 4] = [
    Duration::from_secs(10),
    Duration::from_secs(1),
    Duration::from_millis(100),
    Duration::from_millis(20),
];

/// Sets `SO_RCVTIMEO` on an inbox socket. False if it could not be set.
fn set_recv_timeout<T>(rx: &IpcReceiver<T>, timeout: Duration) -> bool {
    rustix::net::sockopt::set_socket_timeout(
        crate::sys::fd::borrow(rx),
        rustix::net::sockopt::Timeout::Recv,
        Some(timeout),
    )
    .is_ok()
}

impl<M> IpcInbox<M>
where
    M: Serialize + DeserializeOwned + Send,
{
    pub fn new(
        rx: IpcReceiver<Frame<M>>,
        counters: Counters,
        name: &str,
        log: slog::Logger,
    ) -> Self {
        if !make_blocking(&rx) {
            slog::warn!(log, "cannot make {name}'s inbox socket blocking again");
        }
        let slice = set_recv_timeout(&rx, RECV_SLICES[0]).then_some(RECV_SLICES[0]);
        let incarnation = Counters::load(&counters.get().incarnation) as u32;
        Self {
            rx,
            counters,
            local: VecDeque::new(),
            stopped: false,
            handled: 0,
            log,
            name: name.to_string(),
            slice,
            incarnation,
            mappings: Mappings::default(),
            failed_frames: 0,
            failed_total: 0,
        }
    }

    /// How many region mappings it keeps (see `wire::shm::Mappings`).
    #[cfg(test)]
    pub fn kept_mappings(&self) -> usize {
        self.mappings.len()
    }

    /// The inbox socket, for a poll set (the root waits on its report inbox with its
    /// children's pidfds).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        crate::sys::fd::borrow(&self.rx)
    }

    /// Messages already taken out of the socket and not handed out yet: a poll on the socket
    /// does not see them.
    pub fn has_buffered(&self) -> bool {
        !self.local.is_empty()
    }

    /// True when a wait of `timeout` can be one blocking receive: the socket's timeout is then
    /// the longest slice not above it (set again only when that changes).
    fn blocking_fits(&mut self, timeout: Duration) -> bool {
        let Some(current) = self.slice else {
            return false;
        };
        let Some(want) = RECV_SLICES.into_iter().find(|s| *s <= timeout) else {
            return false;
        };
        if want != current {
            if !set_recv_timeout(&self.rx, want) {
                return false;
            }
            self.slice = Some(want);
        }
        true
    }

    /// Reads one frame. `Some(true)` if messages arrived, `Some(false)` for a stop frame,
    /// `None` if nothing (or nothing usable) arrived.
    fn read_frame(&mut self, mut timeout: Duration) -> Option<bool> {
        if !self.mappings.is_empty() {
            // Look at the kept mappings at least every KEPT_LOOK (an early "nothing yet").
            timeout = timeout.min(KEPT_LOOK);
        }
        // A wait of at least a slice is a blocking receive that the socket ends after that
        // slice (an early "nothing yet": `Context::recv` waits again).
        let blocking = self.blocking_fits(timeout);
        let rx = &self.rx;
        // The regions of the frame are looked up in (and added to) the kept mappings.
        let received = self.mappings.during(|| {
            if blocking {
                recv_blocking_contained(rx)
            } else {
                recv_contained(rx, timeout)
            }
        });
        if !self.mappings.is_empty() {
            self.mappings.sweep();
        }
        match received {
            Err(Contained::Panicked(why)) => {
                Counters::add(&self.counters.get().decode_failed, 1);
                let what = format!("a malformed frame for {} was dropped: {why}", self.name);
                self.say_failed(1, &what);
                None
            }
            Ok(r) => self.on_frame(r),
        }
    }

    /// Counts and logs the messages of a frame that did not decode. They are not counted
    /// received: the senders' `shipped` minus what was received is what is unreadable.
    fn count_failed(&mut self, batch: &Batch<M>) {
        if batch.failed > 0 {
            Counters::add(&self.counters.get().decode_failed, batch.failed);
            let what = match batch.failed {
                1 => "a message".to_string(),
                n => format!("{n} messages"),
            };
            let what = format!(
                "dropped {what} for {} that failed to decode: {}",
                self.name,
                batch.first_error.as_deref().unwrap_or("?")
            );
            self.say_failed(batch.failed, &what);
        }
    }

    /// Logs a frame with `n` messages that failed to decode (or an unreadable frame, `n` = 1)
    /// at ERROR, for the 1st, 2nd, 4th, 8th... such frame of this incarnation, with the total
    /// so far. The counters (`decode_failures` in the summary) count every one.
    fn say_failed(&mut self, n: u64, what: &str) {
        self.failed_frames += 1;
        self.failed_total += n;
        if self.failed_frames.is_power_of_two() {
            slog::error!(
                self.log,
                "{what} ({} failed to decode so far, in {} frames; said for the 1st, 2nd, 4th... such frame)",
                self.failed_total,
                self.failed_frames
            );
        }
    }

    fn on_frame(&mut self, received: Result<Frame<M>, TryRecvError>) -> Option<bool> {
        match received {
            Ok(Frame::Batch(batch)) => {
                self.count_failed(&batch);
                Counters::add(&self.counters.get().received, batch.msgs.len() as u64);
                self.local.extend(batch.msgs);
                Some(true)
            }
            Ok(Frame::Stop(n)) if n == self.incarnation => Some(false),
            // A wake-up (the stop flag was set): nothing to hand out; the caller looks at the
            // flag.
            Ok(Frame::Stop(crate::transport::wake::WAKE)) => None,
            Ok(Frame::Stop(n)) => {
                // Queued for an incarnation that died before it read it: not ours.
                slog::debug!(
                    self.log,
                    "dropped a stop request meant for incarnation {n} of {} (this is {})",
                    self.name,
                    self.incarnation
                );
                None
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::IpcError(IpcError::SerializationError(e))) => {
                Counters::add(&self.counters.get().decode_failed, 1);
                let what = format!(
                    "a frame for {} failed to decode and was dropped: {e:?}",
                    self.name
                );
                self.say_failed(1, &what);
                None
            }
            Err(TryRecvError::IpcError(IpcError::Disconnected)) => {
                // Every sender is gone, the root's included: nobody can ask for a stop any more.
                slog::warn!(
                    self.log,
                    "every sender of {}'s inbox is gone: stopping",
                    self.name
                );
                Some(false)
            }
            Err(TryRecvError::IpcError(IpcError::Io(e)))
                if e.kind() == std::io::ErrorKind::Interrupted =>
            {
                // A signal arrived during the wait: an ordinary early wake-up.
                None
            }
            Err(TryRecvError::IpcError(IpcError::Io(e))) => {
                slog::error!(self.log, "receiving from {}'s inbox failed: {e}", self.name);
                // Do not spin on a broken socket.
                std::thread::sleep(Duration::from_millis(10));
                None
            }
        }
    }
}

impl<M> InboxPort<M> for IpcInbox<M>
where
    M: Serialize + DeserializeOwned + Send,
{
    fn recv_timeout(&mut self, timeout: Duration) -> Recv<M> {
        loop {
            if let Some(ready) = self.ready() {
                return ready;
            }
            match self.read_frame(timeout) {
                Some(true) => continue,
                Some(false) => {
                    self.stopped = true;
                    // Nothing more is received: no mapping is kept past the actor's stop.
                    self.mappings.clear();
                    return Recv::Stop;
                }
                None => return Recv::Timeout,
            }
        }
    }

    /// A message of the last frame not handed out yet, or the stop once it was read.
    fn ready(&mut self) -> Option<Recv<M>> {
        if let Some(msg) = self.local.pop_front() {
            self.handled += 1;
            Counters::add(&self.counters.get().handled, 1);
            return Some(Recv::Msg(msg));
        }
        self.stopped.then_some(Recv::Stop)
    }

    fn stop_requested(&self) -> bool {
        Counters::load(&self.counters.get().stop_requested) != 0
    }

    /// Counts as dead letters the messages this incarnation took out of the socket but did
    /// not hand to the actor. What is still in the socket stays there: the inbox outlives
    /// the process, so a restarted actor gets it, and at the system's stop the root drains
    /// and counts it.
    fn drain(&mut self, _deadline: Instant) -> u64 {
        let drained = self.local.len() as u64;
        self.local.clear();
        Counters::add(&self.counters.get().drained_child, drained);
        drained
    }

    fn handled(&self) -> u64 {
        self.handled
    }
}

/// Root side: takes every frame left in an inbox whose actor has ended for good, counting the
/// messages as dead letters. Returns how many.
pub(crate) fn drain_in_root<M>(
    rx: &IpcReceiver<Frame<M>>,
    counters: &Counters,
    deadline: Instant,
) -> u64
where
    M: Serialize + DeserializeOwned,
{
    let mut drained = 0;
    while Instant::now() < deadline {
        match recv_contained(rx, Duration::ZERO) {
            Ok(Ok(Frame::Batch(batch))) => {
                Counters::add(&counters.get().decode_failed, batch.failed);
                drained += batch.msgs.len() as u64;
            }
            Ok(Ok(Frame::Stop(_))) => {}
            Ok(Err(TryRecvError::IpcError(IpcError::SerializationError(_)))) | Err(_) => {
                Counters::add(&counters.get().decode_failed, 1);
            }
            Ok(Err(_)) => break,
        }
    }
    Counters::add(&counters.get().drained_root, drained);
    drained
}

/// A receive whose decoding panicked.
pub(crate) enum Contained {
    Panicked(String),
}

/// Receives one message, containing a panic of the decoder. ipc-channel indexes the channels
/// a message carries by a number read from the message without a bounds check: a malformed
/// message (one decoded as the wrong type, say) would panic the receiving process. Here it is
/// an error instead, which the callers drop, count and log.
/// As [`recv_contained`], with ipc-channel's blocking receive on a socket that has a receive
/// timeout: the timeout comes back as `Empty`.
fn recv_blocking_contained<T>(rx: &IpcReceiver<T>) -> Result<Result<T, TryRecvError>, Contained>
where
    T: Serialize + DeserializeOwned,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match rx.recv() {
        Ok(frame) => Ok(frame),
        Err(IpcError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Err(TryRecvError::Empty)
        }
        Err(e) => Err(TryRecvError::IpcError(e)),
    }))
    .map_err(|payload| Contained::Panicked(actor_core::lifecycle::panic_message(&*payload)))
}

pub(crate) fn recv_contained<T>(
    rx: &IpcReceiver<T>,
    timeout: Duration,
) -> Result<Result<T, TryRecvError>, Contained>
where
    T: Serialize + DeserializeOwned,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Never ipc-channel's `try_recv`: it sets O_NONBLOCK on the socket's file
        // description, which every incarnation of an inbox shares, and clears it after the
        // receive; a process killed between the two leaves the next incarnation with a
        // non-blocking socket. A timed receive with a zero timeout is a `poll` that returns
        // at once, then a `recvmsg` only when something is there.
        match rx.try_recv_timeout(timeout) {
            // A signal woke the wait early: an ordinary "nothing yet", never a failure.
            Err(TryRecvError::IpcError(IpcError::Io(e)))
                if e.kind() == std::io::ErrorKind::Interrupted =>
            {
                Err(TryRecvError::Empty)
            }
            other => other,
        }
    }))
    .map_err(|payload| Contained::Panicked(actor_core::lifecycle::panic_message(&*payload)))
}

/// Receives one message within `timeout`, waiting again when a signal cut the wait short:
/// EINTR is never a failure. `Empty` when nothing came in time.
pub(crate) fn recv_until<T>(rx: &IpcReceiver<T>, timeout: Duration) -> Result<T, TryRecvError>
where
    T: Serialize + DeserializeOwned,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv_contained(rx, left) {
            Ok(Err(TryRecvError::Empty)) if Instant::now() < deadline => continue,
            Ok(result) => return result,
            Err(Contained::Panicked(why)) => {
                return Err(TryRecvError::IpcError(IpcError::Io(std::io::Error::other(
                    format!("malformed message: {why}"),
                ))))
            }
        }
    }
}

/// Makes an inbox socket blocking again, whatever a previous incarnation of the actor left
/// behind: the file description (and so its `O_NONBLOCK`) is shared by every process that
/// holds the inbox. Returns false if it could not be read or set.
pub(crate) fn make_blocking<T>(rx: &IpcReceiver<T>) -> bool {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let fd = crate::sys::fd::borrow(rx);
    match fcntl_getfl(fd) {
        Ok(flags) if flags.contains(OFlags::NONBLOCK) => {
            fcntl_setfl(fd, flags - OFlags::NONBLOCK).is_ok()
        }
        Ok(_) => true,
        Err(_) => false,
    }
}
