//! The bootstrap: how a freshly executed child finds its root and gets its inbox.
//!
//! 1. The root binds a [`Listener`] in a directory only its user can enter (0700, whatever
//!    the umask), and starts the child with the socket's path, a per-spawn secret and the
//!    actor's type and name in its environment.
//! 2. The child connects and sends [`Boot::Hello`]: the secret, its pid, and a sender on
//!    which it wants its [`Setup`].
//! 3. The root checks the secret and the pid, and sends the `Setup`: the `Args`, the inbox,
//!    the shared counters, the root's report address, the actor's own address, the lifeline and the clock's zero.
//! 4. The child runs `startup` and says [`Boot::Started`] (or [`Boot::StartFailed`]) on the
//!    same connection.
//!
//! Every wait in it has a deadline. The root accepts only the process it spawned (checked with
//! `SO_PEERCRED` before anything is read), so no other process can take the child's place or
//! feed ipc-channel's frame parser, which trusts its peer, garbage.

use crate::addr::Addr;
use crate::counters::Counters;
use crate::frame::Frame;
use actor_core::{AppClock, Report};
use ipc_channel::ipc::{IpcReceiver, OpaqueIpcSender};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Environment: the actor type the child must run (set only in children).
pub(crate) const ENV_CHILD: &str = "MPACTOR_CHILD";
/// Environment: the bootstrap server's name.
pub(crate) const ENV_SERVER: &str = "MPACTOR_BOOTSTRAP";
/// Environment: the per-spawn secret.
pub(crate) const ENV_SECRET: &str = "MPACTOR_SECRET";
/// Environment: the actor's name.
pub(crate) const ENV_NAME: &str = "MPACTOR_ACTOR";

/// How long a child waits for its setup after saying hello.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages from the child on the bootstrap connection.
#[derive(Serialize, Deserialize)]
pub(crate) enum Boot {
    Hello {
        secret: String,
        pid: u32,
        setup: OpaqueIpcSender,
    },
    Started,
    StartFailed(String),
}

/// Everything a child needs, sent by the root after the hello.
#[derive(Serialize, Deserialize)]
#[serde(
    bound = "Args: Serialize + for<'a> Deserialize<'a>, Msg: Serialize + for<'a> Deserialize<'a> + Send + 'static, Event: Serialize + for<'a> Deserialize<'a> + Send + 'static"
)]
pub(crate) struct Setup<Args, Msg: Send + 'static, Event: Send + 'static> {
    pub name: String,
    pub args: Args,
    pub inbox: IpcReceiver<Frame<Msg>>,
    pub counters: Counters,
    pub root: Addr<Report<Event>>,
    /// The actor's own address: `ContextExt::myself`, and the way its process wakes its
    /// own blocked receive (`crate::wake`).
    pub myself: Addr<Msg>,
    pub lifeline: IpcReceiver<()>,
    pub clock: AppClock,
    pub log_level: String,
    /// The root's log format: every process of a system logs in one format.
    pub log_format: actor_core::log::LogFormat,
    pub stop_timeout_ms: u64,
}

/// A secret for one spawn: 128 random bits, hex.
pub(crate) fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    // The OS random source, or nothing: a secret guessable from the time and the pid would
    // let another process of this user pose as the child. If the source fails, the start
    // fails (with this error), rather than going on with a weak secret.
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "the OS random source failed ({e}): no bootstrap secret"
                )))
            }
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The root's bootstrap socket for one spawn: a listening `SOCK_SEQPACKET` Unix socket in the
/// system's private (0700) directory, removed when dropped — as soon as the child connected
/// or the start failed.
///
/// The root accepts only the spawned child: every peer's credentials (`SO_PEERCRED`) are
/// checked before a single byte of it is read, so a process that is not the child can neither
/// take its place nor feed ipc-channel's frame parser garbage.
pub(crate) struct Listener {
    fd: std::os::fd::OwnedFd,
    path: std::path::PathBuf,
}

/// Why no child connection was accepted.
pub(crate) enum AcceptError {
    /// The deadline passed or the caller's check said to stop (its error is returned).
    Stopped(crate::slot::StartError),
    /// A system call failed.
    Io(std::io::Error),
}

impl Listener {
    /// Binds a fresh socket in `dir`.
    pub fn bind(dir: &std::path::Path) -> std::io::Result<Self> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let path = dir.join(format!("boot-{}.sock", &new_secret()?[..12]));
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        let addr = SocketAddrUnix::new(&path).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bootstrap socket path {}: {e}", path.display()),
            )
        })?;
        rustix::net::bind(&fd, &addr)?;
        let listener = Listener { fd, path };
        rustix::net::listen(&listener.fd, 8)?;
        Ok(listener)
    }

    /// The name the child connects to.
    pub fn name(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Waits for the connection of process `pid`, refusing (and logging) every other peer.
    /// `check` runs every few milliseconds and ends the wait with its error (the child died,
    /// the deadline passed, a stop was requested).
    pub fn accept_from<T>(
        &self,
        pid: u32,
        log: &slog::Logger,
        mut check: impl FnMut() -> Result<(), crate::slot::StartError>,
    ) -> Result<IpcReceiver<T>, AcceptError> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        use rustix::io::Errno;
        let slice = Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        loop {
            if let Err(e) = check() {
                return Err(AcceptError::Stopped(e));
            }
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&slice)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(AcceptError::Io(e.into())),
            }
            let conn = match rustix::net::accept_with(&self.fd, rustix::net::SocketFlags::CLOEXEC) {
                Ok(conn) => conn,
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => return Err(AcceptError::Io(e.into())),
            };
            // The peer's pid, as the kernel recorded it at connect time, before any byte of
            // it is read.
            match rustix::net::sockopt::socket_peercred(&conn) {
                Ok(cred) if cred.pid.as_raw_nonzero().get() as u32 == pid => {
                    use std::os::fd::IntoRawFd;
                    return Ok(crate::fd::receiver_from_fd(conn.into_raw_fd()));
                }
                Ok(cred) => {
                    slog::warn!(
                        log,
                        "refused a bootstrap connection from pid {} (uid {}): not the spawned child (pid {pid})",
                        cred.pid.as_raw_nonzero(),
                        cred.uid.as_raw()
                    );
                }
                Err(e) => slog::warn!(
                    log,
                    "refused a bootstrap connection: no peer credentials: {e}"
                ),
            }
            // The refused connection is closed here (dropped), never read.
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
