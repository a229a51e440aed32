//! What the hvac integration tests share: run the real `hvac` binary as a root in its own
//! process group, on port 0 (the kernel picks; LISTEN logs it), with its send file and TMPDIR
//! in a fresh folder; collect its log; talk to it over TCP; wait for log lines and exits
//! under deadlines; and afterwards check that no process of the run is left. A guard SIGKILLs
//! the whole group if a test panics. The general pieces (output lines, `/proc`, signals,
//! deadlines) are in `mpactor-test-support`; what reads hvac's own output and talks to it is
//! here.

#![allow(dead_code)]

pub use mpactor_test_support::{alive_as, pid_in, proc_stat};
use mpactor_test_support::{collect, kill, kill_group, Lines};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The four actors, in start order.
pub const ACTORS: [&str; 4] = ["SEND", "LISTEN", "STATUS", "OBSERVATION"];

/// Generous bounds for a loaded 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An `hvac` root under test.
pub struct Hvac {
    child: Child,
    pub pid: u32,
    pub port: u16,
    /// Started with port 0: the port is read from LISTEN's log line (see `listening_port`).
    dynamic_port: bool,
    pub dir: PathBuf,
    pub send_file: PathBuf,
    log: Arc<Lines>,
    exit: Option<ExitStatus>,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

impl Hvac {
    /// Starts `hvac` on `port` with `extra` arguments, without waiting for anything.
    pub fn spawn_on(port: u16, extra: &[&str]) -> Hvac {
        Hvac::spawn_with(port, extra, |_| {})
    }

    /// As [`Hvac::spawn_on`], with `setup` applied to the command last (environment,
    /// resource limits).
    pub fn spawn_with(port: u16, extra: &[&str], setup: impl FnOnce(&mut Command)) -> Hvac {
        let dir = std::env::temp_dir().join(format!(
            "hvac-test-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the run's folder");
        // A test may name its own send file.
        let send_file = match extra.iter().position(|a| *a == "--send-file") {
            Some(i) => PathBuf::from(extra[i + 1]),
            None => dir.join("send_file.txt"),
        };
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hvac"));
        cmd.arg("--listen").arg(&listen);
        if !extra.contains(&"--send-file") {
            cmd.arg("--send-file").arg(&send_file);
        }
        // A test may choose its own level.
        if !extra.contains(&"--log-level") {
            cmd.args(["--log-level", "debug"]);
        }
        cmd.args(extra)
            .env("TMPDIR", &dir)
            .env_remove("MPACTOR_LOG")
            // The lines are read as text unless a test asks for JSON itself.
            .env_remove("MPACTOR_LOG_FORMAT")
            .env_remove("HVAC_CONTROL_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a signal to the group is the terminal's Ctrl-C, and the
            // guard can kill everything the run started at once.
            .process_group(0);
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn hvac");
        let pid = child.id();
        let log = Arc::new(Lines::default());
        collect(child.stderr.take().expect("stderr is piped"), log.clone());
        Hvac {
            child,
            pid,
            port,
            dynamic_port: port == 0,
            dir,
            send_file,
            log,
            exit: None,
        }
    }

    /// Starts `hvac` on port 0 (the kernel picks a free one: no probing, no race with another
    /// test), waits until all four actors have started and reads the port LISTEN bound from
    /// its "listening on 127.0.0.1:PORT" line.
    pub fn start(extra: &[&str]) -> Hvac {
        Hvac::start_with(extra, |_| {})
    }

    /// As [`Hvac::start`], with `setup` applied to the command (see [`Hvac::spawn_with`]).
    pub fn start_with(extra: &[&str], setup: impl Fn(&mut Command)) -> Hvac {
        let mut h = Hvac::spawn_with(0, extra, &setup);
        let ready = h.wait_line(START_DEADLINE, |l| root_says(l, "OBSERVATION started"));
        assert!(ready.is_some(), "hvac did not start:\n{}", h.log_text());
        h.port = h.listening_port();
        h
    }

    /// The port LISTEN's latest incarnation bound (with `--listen 127.0.0.1:0`, a restarted
    /// LISTEN binds another): from its "listening on 127.0.0.1:PORT" line, waiting (bounded)
    /// until there is one for every time the root logged "LISTEN started".
    pub fn listening_port(&self) -> u16 {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let lines = self.lines();
            let starts = lines
                .iter()
                .filter(|l| root_says(l, "LISTEN started"))
                .count();
            let said: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains(" LISTEN ") && l.contains("listening on 127.0.0.1:"))
                .collect();
            if starts > 0 && said.len() >= starts {
                let last = said[said.len() - 1];
                return last
                    .split("listening on 127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                            .parse()
                            .ok()
                    })
                    .unwrap_or_else(|| panic!("no port in {last:?}"));
            }
            assert!(
                Instant::now() < deadline,
                "LISTEN did not say its port:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.all()
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits until a log line matches `pred`; returns it, or None at the deadline.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_lines(timeout, 1, pred).and_then(|mut v| v.pop())
    }

    /// Waits until `n` log lines match `pred`; returns them.
    pub fn wait_lines(
        &self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        self.log.wait_for(timeout, n, pred)
    }

    /// Sends `message` as one write, like the mptools client, and reads the reply until the
    /// server closes the connection.
    pub fn request(&self, message: &[u8]) -> String {
        let mut s = self.connect();
        s.write_all(message).expect("send the request");
        read_all(&mut s)
    }

    /// Connects to the listener.
    pub fn connect(&self) -> TcpStream {
        // Started on port 0, a restarted LISTEN has a port of its own.
        let port = if self.port == 0 || self.dynamic_port {
            self.listening_port()
        } else {
            self.port
        };
        let addr = format!("127.0.0.1:{port}").parse().expect("an address");
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to hvac");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        s.set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        s
    }

    /// The pid of each incarnation of each actor, from the log's "started pid=N" lines (the
    /// root's and the actors' own), in order.
    pub fn actor_pids(&self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        for line in self.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.len() < 5 || !line.contains("started") {
                continue;
            }
            let name = if t[2] == "MAIN" && t[4] == "started" {
                t[3]
            } else if t[3] == "started" && ACTORS.contains(&t[2]) {
                t[2]
            } else {
                continue;
            };
            if let Some(pid) = pid_in(&line) {
                if ACTORS.contains(&name) && !pids.contains(&(name.to_string(), pid)) {
                    pids.push((name.to_string(), pid));
                }
            }
        }
        pids
    }

    /// The pid of `actor`'s latest incarnation, as the root logged it.
    pub fn pid_of(&self, actor: &str) -> u32 {
        self.lines()
            .iter()
            .rev()
            .find(|l| root_says(l, &format!("{actor} started")))
            .and_then(|l| pid_in(l))
            .unwrap_or_else(|| panic!("no start of {actor} in the log:\n{}", self.log_text()))
    }

    /// The pid of the process of this root named `actor` in `/proc/<pid>/comm`.
    pub fn find_in_proc(&self, actor: &str) -> Option<u32> {
        let entries = std::fs::read_dir("/proc").ok()?;
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((comm, state, ppid)) = proc_stat(pid) {
                if comm == actor && ppid == self.pid && state != 'Z' {
                    return Some(pid);
                }
            }
        }
        None
    }

    /// Sends `signal` to the root only.
    pub fn signal_root(&self, signal: i32) {
        kill(self.pid, signal);
    }

    /// Sends `signal` to the whole process group (what a terminal's Ctrl-C does).
    pub fn signal_group(&self, signal: i32) {
        // The group was made for this run (process_group(0)).
        kill_group(self.pid, signal);
    }

    /// Waits for the root's exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let status = mpactor_test_support::wait_exit(&mut self.child, timeout)?;
        self.exit = Some(status);
        // The log reader ends with the pipe: let it take the last lines.
        let _ = self.wait_line(Duration::from_secs(2), |l| l.contains("stopped in"));
        self.exit
    }

    /// Waits for the root's exit and returns its code; panics with the log if it does not
    /// exit by the deadline or is killed by a signal.
    pub fn exit_code(&mut self, timeout: Duration) -> i32 {
        match self.wait_exit(timeout) {
            Some(status) => status.code().unwrap_or_else(|| {
                panic!("hvac ended by a signal ({status:?}):\n{}", self.log_text())
            }),
            None => panic!("hvac did not exit within {timeout:?}:\n{}", self.log_text()),
        }
    }

    /// Checks that no process of this run is left (every actor incarnation, the root) and
    /// that the runtime removed its bootstrap folder, within a deadline.
    pub fn assert_nothing_left(&mut self) {
        let exit = self.wait_exit(STOP_DEADLINE);
        assert!(
            exit.is_some(),
            "the root is still running:\n{}",
            self.log_text()
        );
        let deadline = Instant::now() + STOP_DEADLINE;
        for (name, pid) in self.actor_pids() {
            while alive_as(pid, &name) {
                assert!(
                    Instant::now() < deadline,
                    "{name} (pid {pid}) is still running after the root exited:\n{}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let leftovers: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("mpactor"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "left in TMPDIR: {leftovers:?}");
    }

    /// The send file's lines.
    pub fn send_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.send_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the send file holds a line matching `pred` among those from index `from`.
    pub fn wait_send_line(
        &self,
        timeout: Duration,
        from: usize,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.send_lines().into_iter().skip(from).find(|l| pred(l)) {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hvac {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // A failed test: nothing of the run may outlive it.
            self.signal_group(libc::SIGKILL);
            kill(self.pid, libc::SIGKILL);
            let _ = self.child.wait();
            // Pids from this run; at worst they are already gone.
            for (_, pid) in self.actor_pids() {
                kill(pid, libc::SIGKILL);
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- hvac log ----\n{}\n------------------",
                self.log_text()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True for a line the root (MAIN) logged that starts with `text` after the name column.
pub fn root_says(line: &str, text: &str) -> bool {
    let t: Vec<&str> = line.split_whitespace().collect();
    t.len() > 3 && t[2] == "MAIN" && t[3..].join(" ").starts_with(text)
}

/// Reads until the peer closes (or the read timeout).
pub fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `message`, half-closes, and reads the reply (a client that says "that is all").
pub fn request_then_close_write(s: &mut TcpStream, message: &[u8]) -> String {
    s.write_all(message).expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    read_all(s)
}

/// The whole number right after `key` in a line.
pub fn number_after(line: &str, key: &str) -> Option<u64> {
    mpactor_test_support::number_after(line, key)
}
