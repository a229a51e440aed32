//! One client connection: its stage, its deadline, what it sent and what it is sent, and
//! the non-blocking reads and writes that move it along. The server loop decides; this only
//! does the I/O, without ever waiting.

use super::stats::End;
use crate::protocol::MAX_MESSAGE;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// Where a connection is in its one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the request, under the client timeout.
    Reading,
    /// The request (this id) is with the root, under the reply timeout.
    AwaitingRoot(u64),
    /// Writing the reply, under the write timeout.
    Writing,
    /// The reply is written and the write side closed: taking what the client still sends
    /// until it closes, for a short while, so that closing does not turn into a reset that
    /// could destroy the reply before the client read it.
    Lingering,
}

/// One open connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub opened: Instant,
    pub stage: Stage,
    /// When the current stage gives up.
    pub deadline: Instant,
    /// Bumped at every change of stage: a timer set for an earlier stage is stale.
    pub epoch: u64,
    /// What the client sent so far (at most a little over [`MAX_MESSAGE`] bytes are kept).
    pub input: Vec<u8>,
    /// The client closed its side.
    pub eof: bool,
    /// The reply line.
    pub output: Vec<u8>,
    pub written: usize,
    /// The request as parsed (never with its token), for the DEBUG line.
    pub request: Option<String>,
    /// How it ends, once that is known.
    pub end: Option<End>,
}

/// What reading gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Everything the client sent so far is taken; it may send more.
    More,
    /// The client closed its side.
    Eof,
}

impl Conn {
    /// A connection just accepted, reading its request until `deadline`.
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant, deadline: Instant) -> Self {
        Self {
            stream,
            peer,
            opened: now,
            stage: Stage::Reading,
            deadline,
            epoch: 0,
            input: Vec::new(),
            eof: false,
            output: Vec::new(),
            written: 0,
            request: None,
            end: None,
        }
    }

    /// Moves to `stage` until `deadline`; returns the new epoch (for the timer).
    pub fn enter(&mut self, stage: Stage, deadline: Instant) -> u64 {
        self.stage = stage;
        self.deadline = deadline;
        self.epoch += 1;
        self.epoch
    }

    /// Reads what the client sent, without waiting: until the socket has nothing more, the
    /// client's end of stream, or more than [`MAX_MESSAGE`] bytes (enough to call the message
    /// too long; the rest is taken while lingering).
    pub fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 2048];
        while self.input.len() <= MAX_MESSAGE {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads and drops what the client sends, without waiting.
    pub fn discard_input(&mut self) -> io::Result<Drained> {
        if self.eof {
            return Ok(Drained::Eof);
        }
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(Drained::Eof);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::More),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what is left of the reply, without waiting. True once all of it is written.
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The reply, for the DEBUG line: its first line, shortened.
    pub fn reply_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.output);
        let text = text.trim_end();
        match text.char_indices().nth(120) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A connected pair on loopback: (the server's non-blocking end, the client's end).
    fn pair() -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("non-blocking");
        let now = Instant::now();
        let conn = Conn::new(TcpStream::from_std(server), peer, now, now);
        (conn, client)
    }

    /// Waits (bounded) until `f` says the bytes arrived.
    fn until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "nothing arrived within 5 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn fill_takes_what_came_and_never_waits() {
        let (mut conn, mut client) = pair();
        let t0 = Instant::now();
        conn.fill().expect("read");
        assert!(conn.input.is_empty() && !conn.eof);
        assert!(t0.elapsed() < Duration::from_secs(1));
        client.write_all(b"REQUEST hi").expect("write");
        until(|| {
            conn.fill().expect("read");
            conn.input == b"REQUEST hi"
        });
        drop(client);
        until(|| {
            conn.fill().expect("read");
            conn.eof
        });
    }

    #[test]
    fn fill_stops_past_the_size_limit() {
        let (mut conn, mut client) = pair();
        client.write_all(&[b'x'; 3 * MAX_MESSAGE]).expect("write");
        until(|| {
            conn.fill().expect("read");
            conn.input.len() > MAX_MESSAGE
        });
        assert!(conn.input.len() < 2 * MAX_MESSAGE + 2048);
        // The rest is discarded while lingering, up to the client's close.
        drop(client);
        until(|| conn.discard_input().expect("read") == Drained::Eof);
    }

    #[test]
    fn flush_writes_the_reply() {
        let (mut conn, mut client) = pair();
        conn.output = b"REPLY 1 hi\n".to_vec();
        assert!(conn.flush().expect("write"));
        conn.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let mut got = String::new();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        client.read_to_string(&mut got).expect("read");
        assert_eq!(got, "REPLY 1 hi\n");
        assert_eq!(conn.reply_text(), "REPLY 1 hi");
    }
}
