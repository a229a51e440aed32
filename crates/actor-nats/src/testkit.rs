//! For tests and benchmarks: a `nats-server` of their own on a free loopback port.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server has to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `nats-server` process (Debian: `apt-get install nats-server`) on a loopback port,
/// killed and reaped when dropped.
///
/// ```no_run
/// let server = actor_nats::testkit::NatsServer::start()?;
/// println!("connect to {}", server.url());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
}

impl NatsServer {
    /// Starts a server on a free port, ready to accept connections. The server wants a
    /// number: this takes one the kernel says is free (binding port 0) and releases it, and
    /// tries another if the server could not have it.
    pub fn start() -> io::Result<NatsServer> {
        let mut last = io::Error::other("no attempt");
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match NatsServer::start_on(port) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts a server on `port` (again on the port of one that was killed, say), ready
    /// within 10 s.
    pub fn start_on(port: u16) -> io::Result<NatsServer> {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("nats-server: {e} (install it: apt-get install nats-server)"),
                )
            })?;
        let mut server = NatsServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                server.child = None;
                return Err(io::Error::other(format!(
                    "nats-server on port {port} exited: {status}"
                )));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            // Waiting for another process to listen: short naps, bounded by the deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("nats-server on port {port} not ready within {READY_WITHIN:?}"),
        ))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (SIGKILL) and reaps it; dropping does the same.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
