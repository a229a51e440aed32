//! The root's listening socket for one child's bootstrap: a `SOCK_SEQPACKET` Unix socket in
//! a private directory, accepting only the process it was made for.

use ipc_channel::ipc::IpcReceiver;

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
pub(crate) enum AcceptError<E> {
    /// The deadline passed or the caller's check said to stop (its error is returned).
    Stopped(E),
    /// A system call failed.
    Io(std::io::Error),
}

impl Listener {
    /// Binds a fresh socket in `dir`.
    pub fn bind(dir: &std::path::Path) -> std::io::Result<Self> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let path = dir.join(format!(
            "boot-{}.sock",
            &crate::sys::random::new_secret()?[..12]
        ));
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
    pub fn accept_from<T, E>(
        &self,
        pid: u32,
        log: &slog::Logger,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> Result<IpcReceiver<T>, AcceptError<E>> {
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
                    return Ok(crate::sys::fd::receiver_from_fd(conn));
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
