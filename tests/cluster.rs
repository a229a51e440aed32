//! The cluster example against a real `nats-server`, from outside: separate roots in
//! separate process groups (as if on separate machines), each test with its own server on a
//! free loopback port. Ignored by default (they need `nats-server`); `.ci/run` installs it
//! and runs them with `--include-ignored`.
//!
//! Build the examples first: `cargo build --features nats --examples`, then
//! `cargo test --features nats --test cluster -- --include-ignored`.

use mpactor::nats::testkit::NatsServer;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The built example `name`, next to this test's binary (`<target>/<profile>/examples/NAME`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --features nats --examples` first",
        path.display()
    );
    path
}

/// A line of a node's output, and which stream it came on.
struct Line {
    stdout: bool,
    text: String,
}

/// One root of the example, in a process group of its own.
struct Node {
    child: Child,
    lines: Receiver<Line>,
    seen: Vec<Line>,
}

impl Node {
    fn start(url: &str, args: &[&str]) -> Node {
        Node::start_example("cluster", url, args)
    }

    /// A root of the example `name` (`cluster`, `cluster_reply`).
    fn start_example(name: &str, url: &str, args: &[&str]) -> Node {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(example(name))
            .args(["--nats", url])
            .args(args)
            .env("MPACTOR_LOG", "info")
            .env_remove("MPACTOR_LOG_FORMAT")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cluster example");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        for (stream, stdout) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, true),
            (Box::new(err), false),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for text in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(Line { stdout, text }).is_err() {
                        break;
                    }
                }
            });
        }
        Node {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Waits at most `within` for a line containing `text`; returns it.
    fn wait_for(&mut self, text: &str, within: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.text.contains(text)) {
            return l.text.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.text.contains(text);
                    let copy = line.text.clone();
                    self.seen.push(line);
                    if hit {
                        return copy;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "no line with {text:?} within {within:?}; got:\n{}",
                    self.dump()
                ),
            }
        }
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|l| format!("{} {}", if l.stdout { "out" } else { "err" }, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn signal(&self, signal: i32) {
        mpactor_test_support::kill_group(self.pgid(), signal);
    }

    /// Waits at most `within` for the root to exit; returns its exit code and its last
    /// stdout line. Then checks that nothing of its process group is left.
    fn finish(&mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.code().unwrap_or(-1),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    self.signal(libc::SIGKILL);
                    panic!("the root did not exit within {within:?}:\n{}", self.dump());
                }
            }
        };
        // The readers end with the pipes; take what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.assert_group_gone();
        let last = self
            .seen
            .iter()
            .rfind(|l| l.stdout)
            .map(|l| l.text.clone())
            .unwrap_or_default();
        (code, last)
    }

    /// Ctrl-C to the root's process group, then [`finish`](Self::finish) within [`LONG`]:
    /// the root must exit 0. Returns its last stdout line.
    fn ctrl_c(&mut self) -> String {
        self.signal(libc::SIGINT);
        let (code, line) = self.finish(LONG);
        assert_eq!(code, 0, "{}", self.dump());
        line
    }

    /// No process of this root's group is left (its children end with it).
    fn assert_group_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while mpactor_test_support::group_alive(self.pgid()) {
            assert!(
                Instant::now() < deadline,
                "processes of group {} still running",
                self.pgid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed test leaves nothing behind either.
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The numbers of a `cluster: role=...` line, by key.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

const LONG: Duration = Duration::from_secs(60);

/// A consumer node (100 µs per message) and a producer node sending it `messages`, retrying
/// for `retry_secs` when the server is gone; returned once the consumer has handled 1000.
fn flooding(url: &str, messages: &str, retry_secs: &str) -> (Node, Node) {
    let mut consumer = Node::start(url, &["--role", "consumer", "--handle-us", "100"]);
    consumer.wait_for("published CONSUMER as consumer", LONG);
    let producer = Node::start(
        url,
        &[
            "--role",
            "producer",
            "--messages",
            messages,
            "--retry-secs",
            retry_secs,
        ],
    );
    consumer.wait_for("handled 1000 messages so far", LONG);
    (consumer, producer)
}

/// A server of this test's own on a free loopback port.
fn server() -> NatsServer {
    NatsServer::start().expect("a nats-server (apt-get install nats-server)")
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn the_examples_contract_holds() {
    let server = server();
    let mut consumer = Node::start(&server.url(), &["--role", "consumer"]);
    consumer.wait_for("published CONSUMER as consumer", LONG);
    let mut producer = Node::start(
        &server.url(),
        &["--role", "producer", "--messages", "20000"],
    );
    let (code, line) = producer.finish(LONG);
    assert_eq!(code, 0, "{}", producer.dump());
    assert_eq!(
        line,
        "cluster: role=producer sent=20000 delivered=20000 dead_letters=0 in_doubt=0",
        "{}",
        producer.dump()
    );
    let line = consumer.ctrl_c();
    assert_eq!(line, "cluster: role=consumer handled=20000");
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_slow_consumer_bounds_a_fast_producer_and_nothing_is_dropped() {
    let server = server();
    // 64 slots, 100 µs a message: the producer could go a hundred times faster.
    let mut consumer = Node::start(
        &server.url(),
        &[
            "--role",
            "consumer",
            "--capacity",
            "64",
            "--handle-us",
            "100",
        ],
    );
    consumer.wait_for("published CONSUMER as consumer", LONG);
    let mut producer = Node::start(&server.url(), &["--role", "producer", "--messages", "5000"]);
    let (code, line) = producer.finish(LONG);
    assert_eq!(code, 0, "{}", producer.dump());
    assert_eq!(
        line,
        "cluster: role=producer sent=5000 delivered=5000 dead_letters=0 in_doubt=0",
        "{}",
        producer.dump()
    );
    assert_eq!(consumer.ctrl_c(), "cluster: role=consumer handled=5000");
    for node in [&producer, &consumer] {
        let log = node.dump();
        for bad in [
            "slow subscription",
            "lost in transit",
            "dead letter",
            "in doubt",
        ] {
            assert!(!log.contains(bad), "{bad:?} in:\n{log}");
        }
    }
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_consumer_node_killed_mid_flood_is_noticed_and_the_accounting_reconciles() {
    let server = server();
    let mut consumer = Node::start(
        &server.url(),
        &[
            "--role",
            "consumer",
            "--capacity",
            "256",
            "--handle-us",
            "100",
        ],
    );
    consumer.wait_for("published CONSUMER as consumer", LONG);
    let mut producer = Node::start(
        &server.url(),
        &["--role", "producer", "--messages", "10000000"],
    );
    consumer.wait_for("handled 1000 messages so far", LONG);
    consumer.signal(libc::SIGKILL);
    let killed = Instant::now();
    let down = producer.wait_for("node consumer is down", Duration::from_secs(20));
    let noticed = killed.elapsed();
    // The documented bound (3 s) on the producer's own clock: how long the node had been
    // silent when it was declared down.
    let silent: u64 = down
        .split("silent for ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no silence in {down:?}"));
    assert!(
        silent <= 3000,
        "noticed after {silent} ms of silence: {down}"
    );
    // From outside, with a margin for a loaded machine.
    assert!(
        noticed < Duration::from_secs(10),
        "noticed {noticed:?} after the kill"
    );
    let (code, line) = producer.finish(LONG);
    assert_eq!(code, 0, "{}", producer.dump());
    let (sent, delivered, dead, in_doubt) = (
        field(&line, "sent"),
        field(&line, "delivered"),
        field(&line, "dead_letters"),
        field(&line, "in_doubt"),
    );
    assert_eq!(sent, delivered + dead + in_doubt, "{line}");
    // The consumer had handled 1000 when it was killed: each of those is either confirmed
    // or, if its confirmation had not left the dying node, in doubt; never a dead letter.
    assert!(delivered + in_doubt >= 1000, "{line}");
    assert!(sent < 10_000_000, "{line}");
    let _ = consumer.finish(LONG);
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn the_server_killed_and_restarted_mid_run_loses_nothing_silently() {
    let mut server = server();
    let url = server.url();
    let (mut consumer, mut producer) = flooding(&url, "60000", "60");
    server.kill();
    producer.wait_for("lost the NATS server", Duration::from_secs(20));
    producer.wait_for("node consumer is down", Duration::from_secs(20));
    consumer.wait_for("lost the NATS server", Duration::from_secs(20));
    let restarted = NatsServer::start_on(server.port()).expect("the same port again");
    producer.wait_for("is back", Duration::from_secs(20));
    producer.wait_for("node consumer is up again", Duration::from_secs(20));
    let (code, line) = producer.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{}", producer.dump());
    let (sent, delivered, dead, in_doubt) = (
        field(&line, "sent"),
        field(&line, "delivered"),
        field(&line, "dead_letters"),
        field(&line, "in_doubt"),
    );
    assert_eq!(sent, delivered + dead + in_doubt, "{line}");
    assert!(delivered > 1000, "traffic resumed: {line}");
    // The log says it once per outage and process (the root and its PRODUCER each have a
    // connection): `LEVEL time PROCESS text`.
    let mut who: Vec<String> = producer
        .seen
        .iter()
        .filter(|l| l.text.contains("lost the NATS server"))
        .filter_map(|l| l.text.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let lines = who.len();
    who.sort();
    who.dedup();
    assert_eq!(lines, who.len(), "{}", producer.dump());
    let cline = consumer.ctrl_c();
    // What the consumer handled: everything confirmed, and at most the in-doubt besides.
    let handled = field(&cline, "handled");
    assert!(
        handled >= delivered && handled <= delivered + in_doubt,
        "consumer {cline}; producer {line}"
    );
    drop(restarted);
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn ctrl_c_stops_each_node_while_the_server_is_down() {
    let mut server = server();
    let url = server.url();
    let (mut consumer, mut producer) = flooding(&url, "10000000", "600");
    server.kill();
    producer.wait_for("lost the NATS server", Duration::from_secs(20));
    consumer.wait_for("lost the NATS server", Duration::from_secs(20));
    for node in [&mut producer, &mut consumer] {
        node.signal(libc::SIGINT);
        let (code, line) = node.finish(Duration::from_secs(20));
        assert_eq!(code, 0, "{}", node.dump());
        assert!(line.starts_with("cluster: role="), "{}", node.dump());
    }
    let line = producer
        .seen
        .iter()
        .rev()
        .find(|l| l.stdout)
        .map(|l| l.text.clone())
        .unwrap_or_default();
    assert_eq!(
        field(&line, "sent"),
        field(&line, "delivered") + field(&line, "dead_letters") + field(&line, "in_doubt")
    );
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_consumer_node_that_comes_back_is_reachable_through_the_same_address() {
    let server = server();
    let url = server.url();
    let consumer_args = ["--role", "consumer", "--handle-us", "100", "--node", "back"];
    let mut first = Node::start(&url, &consumer_args);
    first.wait_for("published CONSUMER as consumer", LONG);
    let mut producer = Node::start(
        &url,
        &[
            "--role",
            "producer",
            "--messages",
            "30000",
            "--retry-secs",
            "60",
            "--node",
            "sender",
        ],
    );
    first.wait_for("handled 1000 messages so far", LONG);
    first.signal(libc::SIGKILL);
    // The root's own event handler hears of it (the example logs what it gets).
    producer.wait_for("cluster: node back is down", Duration::from_secs(20));
    let _ = first.finish(LONG);
    let mut second = Node::start(&url, &consumer_args);
    producer.wait_for(
        "cluster: node back is up again (restarted)",
        Duration::from_secs(30),
    );
    let (code, line) = producer.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{}", producer.dump());
    let (sent, delivered, dead, in_doubt) = (
        field(&line, "sent"),
        field(&line, "delivered"),
        field(&line, "dead_letters"),
        field(&line, "in_doubt"),
    );
    assert_eq!(
        sent, 30000,
        "it kept sending through the same address: {line}"
    );
    assert_eq!(sent, delivered + dead + in_doubt, "{line}");
    let cline = second.ctrl_c();
    // The second incarnation handled everything delivered after it came back.
    assert!(field(&cline, "handled") > 0, "{cline}");
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_reply_crosses_machines_through_the_address_in_the_request() {
    // Node A's ASKER sends requests carrying its address (as the cluster reaches it); node
    // B's ANSWERER, in a process of its own that decodes that address, answers through it;
    // ASKER checks every answer.
    let server = server();
    let mut answerer = Node::start_example("cluster_reply", &server.url(), &["--role", "answerer"]);
    answerer.wait_for("published ANSWERER as answerer", LONG);
    let mut asker = Node::start_example(
        "cluster_reply",
        &server.url(),
        &["--role", "asker", "--requests", "2000"],
    );
    let (code, line) = asker.finish(LONG);
    assert_eq!(code, 0, "{}", asker.dump());
    assert_eq!(
        line,
        "cluster_reply: role=asker asked=2000 answered=2000 wrong=0",
        "{}",
        asker.dump()
    );
    let line = answerer.ctrl_c();
    assert_eq!(line, "cluster_reply: role=answerer answered=2000");
}

/// The asker's `--ask` line, and the reply summary each root logs as it stops.
fn replies(node: &Node) -> (u64, u64, u64) {
    let dump = node.dump();
    let line = dump
        .lines()
        .rfind(|l| l.contains("summary: replies"))
        .unwrap_or_else(|| panic!("no reply summary:\n{dump}"));
    (
        field(line, "sent"),
        field(line, "taken"),
        field(line, "dead_letters"),
    )
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn ask_crosses_machines_from_an_actor_and_from_the_root() {
    // Node A's root, then its ASKER (in a process of its own), ask node B's ANSWERER with
    // `Addr::ask` on the address the lookup gave; every answer is checked.
    let server = server();
    let mut answerer = Node::start_example("cluster_reply", &server.url(), &["--role", "answerer"]);
    answerer.wait_for("published ANSWERER as answerer", LONG);
    let mut asker = Node::start_example(
        "cluster_reply",
        &server.url(),
        &["--role", "asker", "--ask", "--requests", "1000"],
    );
    let (code, line) = asker.finish(LONG);
    assert_eq!(code, 0, "{}", asker.dump());
    asker.wait_for("cluster_reply: root asked=10 answered=10", LONG);
    assert!(
        line.starts_with(
            "cluster_reply: role=asker mode=ask asked=1000 answered=1000 wrong=0 timeouts=0 gone=0 "
        ),
        "{}",
        asker.dump()
    );
    // Each side reconciles on its own: the asker's machine took every answer that arrived.
    assert_eq!(replies(&asker), (1010, 1010, 0), "{}", asker.dump());
    let line = answerer.ctrl_c();
    assert_eq!(line, "cluster_reply: role=answerer answered=1010");
    // ... and the answerer's machine handed every answer it made to the cluster.
    assert_eq!(replies(&answerer), (1010, 1010, 0), "{}", answerer.dump());
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_late_answer_across_machines_is_a_timeout_and_never_taken_for_the_next() {
    // Every 10th question is answered 750 ms late, each ask waits 500 ms: that ask times
    // out, the next one (queued behind it) gets its own answer, never the late one.
    let server = server();
    let mut answerer = Node::start_example(
        "cluster_reply",
        &server.url(),
        &[
            "--role",
            "answerer",
            "--late-every",
            "10",
            "--late-ms",
            "750",
        ],
    );
    answerer.wait_for("published ANSWERER as answerer", LONG);
    let mut asker = Node::start_example(
        "cluster_reply",
        &server.url(),
        &[
            "--role",
            "asker",
            "--ask",
            "--requests",
            "60",
            "--ask-timeout-ms",
            "500",
        ],
    );
    let (code, line) = asker.finish(LONG);
    assert_eq!(code, 0, "{}", asker.dump());
    let (answered, wrong, timeouts, gone, max_ms) = (
        field(&line, "answered"),
        field(&line, "wrong"),
        field(&line, "timeouts"),
        field(&line, "gone"),
        field(&line, "max_ms"),
    );
    assert_eq!((wrong, gone), (0, 0), "{line}");
    assert!(
        timeouts >= 6,
        "each of the 6 late answers is a timeout: {line}"
    );
    assert_eq!(answered + timeouts, 60, "{line}");
    // Loaded 2-core machine: a margin of 1.5 s over the deadline.
    assert!(max_ms < 500 + 1500, "an ask kept its deadline: {line}");
    // The late answers that arrived are dead letters of the asker's machine (the last may
    // come after it stopped): it reconciles, with at least one.
    // The root's 10 questions (0..10) have a late one too.
    let root = asker.wait_for("cluster_reply: root asked=10", LONG);
    let (sent, taken, dead) = replies(&asker);
    assert_eq!(
        taken,
        field(&root, "answered") + answered,
        "{}",
        asker.dump()
    );
    assert_eq!(sent, taken + dead);
    assert!(dead >= 1, "late answers counted: {}", asker.dump());
    answerer.ctrl_c();
    assert_eq!(replies(&answerer), (70, 70, 0), "{}", answerer.dump());
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn asks_to_a_node_killed_mid_run_end_within_their_deadline() {
    // Node A's ASKER asks without end; node B is SIGKILLed: the ask in flight times out,
    // the next ones time out or say Disconnected once B is noticed down, none hangs.
    let server = server();
    let mut answerer = Node::start_example("cluster_reply", &server.url(), &["--role", "answerer"]);
    answerer.wait_for("published ANSWERER as answerer", LONG);
    let mut asker = Node::start_example(
        "cluster_reply",
        &server.url(),
        &[
            "--role",
            "asker",
            "--ask",
            "--requests",
            "200000",
            "--ask-timeout-ms",
            "1000",
        ],
    );
    asker.wait_for("asked 1000 so far", LONG);
    answerer.signal(libc::SIGKILL);
    let _ = answerer.finish(LONG);
    let (code, line) = asker.finish(Duration::from_secs(120));
    assert_eq!(code, 0, "{}", asker.dump());
    let (asked, answered, wrong, timeouts, gone, max_ms) = (
        field(&line, "asked"),
        field(&line, "answered"),
        field(&line, "wrong"),
        field(&line, "timeouts"),
        field(&line, "gone"),
        field(&line, "max_ms"),
    );
    assert_eq!(asked, 200000, "{line}");
    assert_eq!(wrong, 0, "{line}");
    assert!(answered >= 1000, "{line}");
    assert!(gone > 0, "the node was noticed down: {line}");
    assert_eq!(answered + timeouts + gone, asked, "{line}");
    assert!(max_ms < 1000 + 1500, "no ask outlived its deadline: {line}");
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_message_that_fails_to_decode_in_the_actors_process_is_counted_and_the_actor_carries_on() {
    // Node B's CONSUMER runs in a process of its own, so node B hands each message's bytes
    // to its inbox undecoded and CONSUMER's process decodes them. Node A sends 20 050, every
    // 100th of a kind B's build does not decode (200, the last at 19 999, 50 good ones after
    // it): B's CONSUMER drops, logs and counts those and handles every other one.
    let server = server();
    // Named apart from its actor, so that the log tells the root's lines from CONSUMER's.
    let mut consumer = Node::start(
        &server.url(),
        &["--role", "consumer", "--checked", "--node", "receiver"],
    );
    let started = consumer.wait_for("CONSUMER started", LONG);
    consumer.wait_for("published CONSUMER as consumer", LONG);
    let mut producer = Node::start(
        &server.url(),
        &[
            "--role",
            "producer",
            "--checked",
            "--messages",
            "20050",
            "--bad-every",
            "100",
        ],
    );
    let (code, line) = producer.finish(LONG);
    assert_eq!(code, 0, "{}", producer.dump());
    // The sender sees every one delivered: handed to the actor's inbox (SEMANTICS.md,
    // "Across machines").
    assert_eq!(
        line,
        "cluster: role=producer sent=20050 delivered=20050 dead_letters=0 in_doubt=0",
        "{}",
        producer.dump()
    );
    // Nothing failed on the sending side: it is the actor's process that decodes.
    assert!(
        !producer.dump().contains("failed to decode"),
        "{}",
        producer.dump()
    );
    let line = consumer.ctrl_c();
    assert_eq!(
        line,
        "cluster: role=consumer handled=19850",
        "{}",
        consumer.dump()
    );
    let dump = consumer.dump();
    // The summary reconciles: accepted = handled + dead letters, the dead letters being the
    // decode failures; the same process ran throughout, never restarted.
    let summary = dump
        .lines()
        .rfind(|l| l.contains("summary: CONSUMER "))
        .unwrap_or_else(|| panic!("no summary line for CONSUMER:\n{dump}"));
    let counts = [
        "accepted",
        "handled",
        "dead_letters",
        "decode_failures",
        "restarts",
    ]
    .map(|key| field(summary, key));
    assert_eq!(counts, [20050, 19850, 200, 200, 0], "{summary}");
    assert_eq!(field(&started, "pid"), field(summary, "pid"), "{dump}");
    assert!(summary.contains(" exit 0 "), "{summary}");
    // CONSUMER's own process logged the failures, naming the actor, with the total so far,
    // for the 1st, 2nd, 4th... frame that held any (`LEVEL time PROCESS dropped a message|N
    // messages for CONSUMER that failed to decode: why (T failed to decode so far, in F
    // frames; ...)`): a few lines, not one per frame.
    let mut totals = Vec::new();
    for l in consumer
        .seen
        .iter()
        .map(|l| &l.text)
        .filter(|l| l.contains("that failed to decode"))
    {
        let words: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(words.get(2), Some(&"CONSUMER"), "logged by the actor: {l}");
        assert!(
            matches!(
                &words[3..],
                ["dropped", "a", "message", "for", "CONSUMER", ..]
                    | ["dropped", _, "messages", "for", "CONSUMER", ..]
            ),
            "unexpected line {l}"
        );
        let total = l
            .split(" failed to decode so far")
            .next()
            .and_then(|head| head.rsplit('(').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no total in {l}"));
        totals.push(total);
    }
    assert!(!totals.is_empty(), "no line logged the failures:\n{dump}");
    assert!(
        totals.len() <= 12,
        "{} lines for 200 bad messages: the log is flooded\n{dump}",
        totals.len()
    );
    assert!(
        totals.windows(2).all(|w| w[0] < w[1]) && totals.last() <= Some(&200),
        "totals {totals:?}"
    );
}
