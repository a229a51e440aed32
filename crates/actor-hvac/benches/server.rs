//! The HVAC demo's TCP server, measured from outside: the real `hvac` binary (release
//! build) on a free loopback port, and plain blocking clients that do what mptools' example
//! client does (connect, send `REQUEST hi N` without a terminator, read the reply until the
//! server closes).
//!
//! ```text
//! cargo bench -p actor-hvac --bench server            # the three scenarios, a few seconds
//! HVAC_BENCH_SCALE=4 cargo bench -p actor-hvac --bench server   # 4× the requests
//! HVAC_BENCH_LEVEL=debug cargo bench -p actor-hvac --bench server  # hvac's default level
//! ```
//!
//! Scenarios (rows of BENCHMARKS.md, "HVAC server"):
//! 1. one client, requests one after another: requests/s and latency percentiles;
//! 2. 64 clients at once, each making requests one after another: total requests/s, and
//!    every request must be answered with its own `REPLY`;
//! 3. 1,000 connections held open and silent, then one client's requests: latency.
//!
//! mptools' own demo measured the same way on this kind of machine: 1,674 requests/s, p50
//! 0.47 ms (ANCHORS.md); the ratios are printed against those figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// mptools' demo, one client, requests one after another (ANCHORS.md).
const MPTOOLS_RATE: f64 = 1674.0;
/// Its latency p50, ms.
const MPTOOLS_P50_MS: f64 = 0.47;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Server {
    /// Starts `hvac` on a free port, at `level` (one line per connection is DEBUG), and waits
    /// (30 s at most) until it is listening and all four actors have started.
    fn start(level: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("hvac-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder for the run");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hvac"))
            .args(["--listen", "127.0.0.1:0", "--log-level", level])
            // The silent connections of scenario 3 must stay open while it measures.
            .args(["--client-timeout", "60"])
            .arg("--send-file")
            .arg(dir.join("send_file.txt"))
            .env("TMPDIR", &dir)
            .env_remove("HVAC_CONTROL_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start hvac");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on ") || root_says_started(&line) {
                    let _ = tx.send(line.clone());
                }
                // The rest is drained, so hvac never blocks on a full pipe; shown if asked.
                if std::env::var_os("HVAC_BENCH_LOG").is_some() {
                    eprintln!("{line}");
                }
            }
        });
        // The guard first: whatever fails from here on, Drop kills the run's process group.
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut addr = None;
        let mut started = false;
        while !(started && addr.is_some()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("hvac did not start within 30 s");
            // LISTEN's own line names the bound port ("listening on 127.0.0.1:43879: ...").
            if let (true, Some(at)) = (line.contains(" LISTEN "), line.find("listening on ")) {
                let rest = &line[at + "listening on ".len()..];
                let end = rest.find(": ").unwrap_or(rest.len());
                addr = Some(rest[..end].parse().expect("the bound address"));
            }
            started |= root_says_started(&line);
        }
        server.addr = addr.expect("an address");
        server
    }

    /// Ctrl-C to the whole group; the exit code (within 10 s).
    fn stop(mut self) -> Option<i32> {
        // SAFETY: the group was made for this run (process_group(0)).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in stop.
            unsafe {
                libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The root's "OBSERVATION started" line: the last actor is up.
fn root_says_started(line: &str) -> bool {
    let t: Vec<&str> = line.split_whitespace().collect();
    t.len() > 4 && t[2] == "MAIN" && t[3] == "OBSERVATION" && t[4] == "started"
}

/// One request the way mptools' client makes it; the reply and how long it took.
fn request(addr: SocketAddr, n: usize) -> (String, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(format!("REQUEST hi {n}").as_bytes())
        .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the reply");
    (reply, t0.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Sequential requests from one client: (requests/s, sorted latencies).
fn sequential(addr: SocketAddr, n: usize) -> (f64, Vec<Duration>) {
    for i in 0..n / 10 {
        request(addr, i); // warm-up
    }
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let (reply, took) = request(addr, i);
        assert!(reply.ends_with(&format!(" hi {i}\n")), "{reply}");
        lat.push(took);
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    (rate, lat)
}

/// `clients` threads, `each` requests one after another: (requests/s, sorted latencies).
fn concurrent(addr: SocketAddr, clients: usize, each: usize) -> (f64, Vec<Duration>) {
    let go = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                let mut lat = Vec::with_capacity(each);
                for i in 0..each {
                    let n = c * 1_000_000 + i;
                    let (reply, took) = request(addr, n);
                    assert!(
                        reply.starts_with("REPLY ") && reply.ends_with(&format!(" hi {n}\n")),
                        "client {c}: {reply:?}"
                    );
                    lat.push(took);
                }
                lat
            })
        })
        .collect();
    go.wait();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().expect("a client thread"));
    }
    let rate = lat.len() as f64 / t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    (rate, lat)
}

/// Opens `n` connections that send nothing; waits until the server has accepted them all
/// (each is then writable from our side and not reset) — a real request after them is the
/// measure.
fn silent_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("a silent connection"))
        .collect()
}

fn raise_own_descriptor_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    raise_own_descriptor_limit();
    let scale: usize = std::env::var("HVAC_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let level = std::env::var("HVAC_BENCH_LEVEL").unwrap_or_else(|_| "info".into());
    let server = Server::start(&level);
    let addr = server.addr;
    println!("hvac on {addr} (release build, --log-level {level}), scale {scale}");

    let (rate, lat) = sequential(addr, 2000 * scale);
    let p50 = percentile(&lat, 0.5);
    println!(
        "| one client, one request after another | {} | {rate:.0} req/s ({:.2}× mptools' {MPTOOLS_RATE:.0}) | p50 {p50:.3} ms ({:.2}× mptools' {MPTOOLS_P50_MS} ms), p90 {:.3} ms, p99 {:.3} ms |",
        lat.len(),
        rate / MPTOOLS_RATE,
        p50 / MPTOOLS_P50_MS,
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
    );

    let (rate, lat) = concurrent(addr, 64, 100 * scale);
    println!(
        "| 64 clients at once, each one request after another | {} (all answered) | {rate:.0} req/s ({:.2}× mptools' one-client rate) | p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms |",
        lat.len(),
        rate / MPTOOLS_RATE,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );

    let held = silent_connections(addr, 1000);
    let (rate, lat) = sequential(addr, 200 * scale);
    println!(
        "| 1,000 silent connections held open, then one client | {} | {rate:.0} req/s | p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
    // Still held (not dropped by the server) while measured: none was answered.
    let mut probe = [0u8; 1];
    let mut answered = 0;
    for s in &held {
        s.set_nonblocking(true).expect("non-blocking");
        // Ok: a reply or the server's close; WouldBlock: still held, unanswered.
        if s.peek(&mut probe).is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, 0, "silent connections were answered or closed");

    let t0 = Instant::now();
    let code = server.stop();
    println!(
        "Ctrl-C with {} connections open: exit {code:?} in {:.0} ms",
        held.len(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(code, Some(0), "hvac did not stop cleanly");
}
