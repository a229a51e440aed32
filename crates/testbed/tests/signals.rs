//! Signals, in every process: the first and second ask for a clean stop, the third ends the
//! process at once (the root killing its children first); a signal to one child stops the
//! whole system; a terminal's Ctrl-C to the whole group gives one clean stop.

mod common;

use common::{kill, Root, PATIENCE};
use std::time::{Duration, Instant};

fn first_signal_stops_cleanly(test: &str, signal: i32, name: &str) {
    let mut root = Root::testbed(test, &["run", "--child", "A", "--child", "B"]);
    let pids = [root.pid_of("A"), root.pid_of("B")];
    root.signal(signal);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_log(&[&format!("got {name}: stopping")], PATIENCE);
    assert!(root
        .stdout
        .text()
        .contains(&format!("reason {name} to the root")));
    for actor in ["A", "B"] {
        assert_eq!(root.summary(actor).exit, "0", "{}", root.dump());
    }
    root.assert_gone(&pids, Duration::from_secs(5));
    root.assert_nothing_left();
}

#[test]
fn sigint_to_the_root_stops_cleanly() {
    first_signal_stops_cleanly("sigint", libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_to_the_root_stops_cleanly() {
    first_signal_stops_cleanly("sigterm", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sighup_to_the_root_stops_cleanly() {
    first_signal_stops_cleanly("sighup", libc::SIGHUP, "SIGHUP");
}

#[test]
fn a_second_signal_still_gives_a_clean_stop() {
    // SLOW takes 1.5 s in its shutdown: the second signal arrives while the system stops.
    let mut root = Root::testbed(
        "second-signal",
        &[
            "run",
            "--stop-timeout-ms",
            "10000",
            "--child",
            "A",
            "--child",
            "SLOW:shutdown_ms=1500",
        ],
    );
    root.pid_of("SLOW");
    root.signal(libc::SIGTERM);
    root.wait_log(&["stopping the system"], PATIENCE);
    root.signal(libc::SIGTERM);
    root.wait_log(&["got SIGTERM (2 of 3)"], PATIENCE);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    for actor in ["A", "SLOW"] {
        assert_eq!(root.summary(actor).exit, "0", "{}", root.dump());
    }
    assert_eq!(root.log_lines(&["stopping the system"]).len(), 1);
    root.assert_nothing_left();
}

fn third_signal_kills_everything(test: &str, signal: i32, name: &str) {
    // STUCK never stops by itself and the stop deadline is 10 s: only the third signal can
    // end this quickly.
    let mut root = Root::testbed(
        test,
        &[
            "run",
            "--stop-timeout-ms",
            "10000",
            "--child",
            "A",
            "--child",
            "STUCK:fault=ignore-stop,after=0",
        ],
    );
    let pids = vec![root.pid, root.pid_of("A"), root.pid_of("STUCK")];
    // Asked to stop before it reaches its main loop, it would stop after all.
    root.wait_log(&["STUCK", "ignoring stop requests from now on"], PATIENCE);
    root.signal(signal);
    root.wait_log(&["stopping the system"], PATIENCE);
    // Signals of one kind that arrive together count once: each is sent after the previous
    // one was seen.
    root.signal(signal);
    root.wait_log(&[&format!("got {name} (2 of 3)")], PATIENCE);
    let t0 = Instant::now();
    root.signal(signal);
    let status = root.wait_exit(PATIENCE);
    let gone = root.assert_gone(&pids, Duration::from_secs(5));
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(128 + signal), "{}", root.dump());
    // "Well under a second": it takes a few milliseconds; 1 s is the contract and the margin.
    assert!(
        took < Duration::from_secs(1),
        "from the third signal to no process left: {took:?} (last gone after {gone:?})"
    );
    eprintln!("third {name}: every process gone {took:?} after it");
    root.wait_log(&["third signal", "every child killed"], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn a_third_sigterm_kills_every_child_and_exits_143() {
    third_signal_kills_everything("third-sigterm", libc::SIGTERM, "SIGTERM");
}

#[test]
fn a_third_sigint_kills_every_child_and_exits_130() {
    third_signal_kills_everything("third-sigint", libc::SIGINT, "SIGINT");
}

#[test]
fn a_signal_to_one_child_stops_the_whole_system_cleanly() {
    let mut root = Root::testbed(
        "child-signal",
        &["run", "--child", "A", "--child", "B", "--child", "C"],
    );
    let b = root.pid_of("B");
    root.pid_of("C");
    kill(b, libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    // The child says it was signalled, and the root says which actor it was.
    root.wait_log(&["B", "got SIGTERM (1 of 3)"], PATIENCE);
    root.wait_log(&["B got SIGTERM: stopping the whole system"], PATIENCE);
    assert!(root.stdout.text().contains("reason SIGTERM to B"));
    for actor in ["A", "B", "C"] {
        assert_eq!(root.summary(actor).exit, "0", "{}", root.dump());
    }
    root.assert_nothing_left();
}

#[test]
fn a_third_signal_to_a_child_ends_it_at_once() {
    // W takes 5 s in its shutdown: the signals after the first arrive while it stops.
    let mut root = Root::testbed(
        "child-third",
        &[
            "run",
            "--stop-timeout-ms",
            "10000",
            "--child",
            "A",
            "--child",
            "W:shutdown_ms=5000",
        ],
    );
    let w = root.pid_of("W");
    kill(w, libc::SIGTERM);
    root.wait_log(&["W got SIGTERM: stopping the whole system"], PATIENCE);
    kill(w, libc::SIGTERM);
    root.wait_log(&["got SIGTERM (2 of 3)"], PATIENCE);
    let t0 = Instant::now();
    kill(w, libc::SIGTERM);
    root.wait_log(&[&format!("W (pid {w}) ended: exit 143")], PATIENCE);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "ended at once, not after its shutdown"
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(root.summary("A").exit, "0");
    root.assert_nothing_left();
}

#[test]
fn ctrl_c_to_the_whole_process_group_gives_one_clean_stop() {
    let mut root = common::quickstart_mid_flood("ctrl-c", true);
    // A terminal's Ctrl-C: SIGINT to every process of the foreground group at once.
    kill_group(root.pid, libc::SIGINT);
    assert_eq!(root.wait_code(Duration::from_secs(5)), 0, "{}", root.dump());
    let (sent, handled, dead) = common::quickstart_counts(&root);
    assert_eq!(handled + dead, sent, "{}", root.dump());
    // One stop, for the root's own signal, and no storm of errors.
    assert_eq!(
        root.log_lines(&["stopping the system"]).len(),
        1,
        "{}",
        root.dump()
    );
    root.wait_log(&["stopping the system: SIGINT to the root"], PATIENCE);
    let noise: Vec<String> = root
        .stderr
        .all()
        .into_iter()
        .filter(|l| l.starts_with("ERROR") || l.starts_with("WARN") || l.starts_with("mpactor:"))
        .collect();
    assert!(noise.is_empty(), "errors or warnings on Ctrl-C: {noise:#?}");
    root.assert_nothing_left();
}

fn kill_group(pgid: u32, signal: i32) {
    // The process group the test created for the root.
    mpactor_test_support::kill_group(pgid, signal);
}
