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
    pub stop_timeout_ms: u64,
}

/// A secret for one spawn: 128 random bits, hex.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Fall back to something unguessable enough from outside: time and pid mixed.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t ^ ((std::process::id() as u128) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let path = dir.join(format!("boot-{}.sock", &new_secret()[..12]));
        let bytes = path.as_os_str().as_bytes();
        // SAFETY: plain socket calls on a descriptor we own; the address is built within the
        // bounds of sockaddr_un.sun_path (checked below).
        unsafe {
            let fd = libc::socket(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            if bytes.len() >= addr.sun_path.len() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("bootstrap socket path too long: {}", path.display()),
                ));
            }
            for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
                *dst = *src as libc::c_char;
            }
            let len =
                (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
            use std::os::fd::AsRawFd;
            if libc::bind(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                len,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let listener = Listener { fd, path };
            if libc::listen(listener.fd.as_raw_fd(), 8) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(listener)
        }
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
        use std::os::fd::AsRawFd;
        loop {
            if let Err(e) = check() {
                return Err(AcceptError::Stopped(e));
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, 10) };
            if ready < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(AcceptError::Io(e));
            }
            if ready == 0 {
                continue;
            }
            // SAFETY: accept4 on our listening socket; the new descriptor is owned below.
            let conn = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if conn < 0 {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => continue,
                    _ => match e.raw_os_error() {
                        Some(libc::ECONNABORTED) => continue,
                        _ => return Err(AcceptError::Io(e)),
                    },
                }
            }
            match peer_credentials(conn) {
                Ok(cred) if cred.pid as u32 == pid => return Ok(crate::fd::receiver_from_fd(conn)),
                Ok(cred) => {
                    slog::warn!(
                        log,
                        "refused a bootstrap connection from pid {} (uid {}): not the spawned child (pid {pid})",
                        cred.pid,
                        cred.uid
                    );
                }
                Err(e) => slog::warn!(
                    log,
                    "refused a bootstrap connection: no peer credentials: {e}"
                ),
            }
            // SAFETY: closing the refused connection, which we own and never read.
            unsafe { libc::close(conn) };
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The peer's pid, uid and gid as the kernel recorded them at connect time.
fn peer_credentials(fd: libc::c_int) -> std::io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}
