//! Lifecycle, start and stop order, failed starts, exit statuses and process names, proven
//! with real processes (the `mpactor-testbed` binary as the root).

mod common;

use common::{number_after, Root, PATIENCE};
use std::time::Duration;

/// The record lines of `name` with `step`, in file order.
fn steps<'a>(record: &'a [String], step: &str) -> Vec<&'a str> {
    record
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some(step))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

fn position(record: &[String], name: &str, step: &str) -> usize {
    record
        .iter()
        .position(|l| l.starts_with(&format!("{name} {step} ")))
        .unwrap_or_else(|| panic!("no '{name} {step}' in {record:#?}"))
}

#[test]
fn lifecycle_runs_in_start_order_and_stops_in_reverse_order() {
    let mut root = Root::testbed_recording(
        "lifecycle-order",
        "run",
        &[
            "--stop-when-started",
            "--child",
            "A",
            "--child",
            "B",
            "--child",
            "C",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let record = root.record();

    // Each child: init_args, startup, main_loop, stop, shutdown, in that order.
    for name in ["A", "B", "C"] {
        let order: Vec<usize> = ["init_args", "startup", "main_loop", "stop", "shutdown"]
            .iter()
            .map(|step| position(&record, name, step))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}: {record:#?}");
    }
    // Start in order: a child's startup succeeded before the next one is even built.
    assert!(position(&record, "A", "startup") < position(&record, "B", "init_args"));
    assert!(position(&record, "B", "startup") < position(&record, "C", "init_args"));
    // Stop in reverse order: each shutdown finished before the previous child is asked.
    assert_eq!(steps(&record, "shutdown"), ["C", "B", "A"], "{record:#?}");
    assert!(position(&record, "C", "shutdown") < position(&record, "B", "stop"));
    assert!(position(&record, "B", "shutdown") < position(&record, "A", "stop"));

    // The root logs each exit with its pid and status, in the same reverse order.
    let exits = root.log_lines(&["exited: exit 0"]);
    let names: Vec<&str> = exits
        .iter()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(names, ["C", "B", "A"], "{}", root.dump());
    for name in ["A", "B", "C"] {
        let pid = root.pid_of(name);
        assert!(
            !root
                .log_lines(&[&format!("{name} (pid {pid}) exited: exit 0")])
                .is_empty(),
            "{}",
            root.dump()
        );
        assert_eq!(root.summary(name).exit, "0");
    }
    root.assert_nothing_left();
}

#[test]
fn shutdown_runs_after_a_panic_and_the_system_stops_with_exit_2() {
    let mut root = Root::testbed_recording(
        "lifecycle-panic",
        "run",
        &["--child", "OK", "--child", "W:fault=panic,after=50"],
    );
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    let record = root.record();
    assert!(position(&record, "W", "main_loop") < position(&record, "W", "fault"));
    assert!(
        position(&record, "W", "fault") < position(&record, "W", "shutdown"),
        "shutdown must run after the panic: {record:#?}"
    );
    let pid = root.pid_of("W");
    // The root names the actor, its pid, its exit status and the panic message.
    root.wait_log(
        &[
            &format!("W (pid {pid}) ended: exit 2"),
            "panicked: injected panic in W",
        ],
        PATIENCE,
    );
    assert!(root
        .stdout
        .text()
        .contains("reason W failed: panicked: injected panic in W"));
    // The other child is stopped cleanly.
    assert_eq!(root.summary("OK").exit, "0");
    root.assert_nothing_left();
}

/// Starts W with `startup`, expects the spawn to fail fast with an error that names W and
/// contains `cause`.
fn start_fails_fast(test: &str, startup: &str, cause: &str) {
    let mut root = Root::testbed_recording(
        test,
        "run",
        &[
            "--child",
            "FIRST",
            "--child",
            &format!("W:startup={startup}"),
            "--child",
            "NEVER",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    let line = root.wait_out(&["spawn failed: W"], PATIENCE);
    // The default start deadline is 3 s; a dead or failed child is reported at once. The
    // bound is in the root's own measure of the spawn call: a few milliseconds on an idle
    // machine, 1 s leaves room for a loaded one and is still far from the 3 s deadline.
    let ms: u64 = number_after(&line, "after_ms=");
    assert!(ms < 1000, "the failed start took {ms} ms: {line}");
    assert!(line.contains(": W "), "the error names the actor: {line}");
    assert!(
        line.contains(cause),
        "the error gives the cause {cause:?}: {line}"
    );
    // The start stops there: the next child is never started, the first one is stopped.
    assert!(root.log_lines(&["NEVER"]).is_empty(), "{}", root.dump());
    root.wait_log(&["FIRST (pid", "exited: exit 0"], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn start_fails_fast_when_the_child_exits_in_startup() {
    start_fails_fast("start-exit", "exit:7", "W exited during its start (exit 7)");
}

#[test]
fn start_fails_fast_when_startup_returns_an_error() {
    start_fails_fast(
        "start-error",
        "fail",
        "W failed to start: startup failed: no configuration: worker.toml not found",
    );
}

#[test]
fn start_fails_fast_when_startup_panics() {
    start_fails_fast(
        "start-panic",
        "panic",
        "W failed to start: startup failed: panicked: startup panicked in W",
    );
}

#[test]
fn each_actor_process_shows_its_name_in_proc_comm() {
    let mut root = Root::testbed(
        "comm",
        &[
            "run",
            "--child",
            "ALPHA",
            "--child",
            "BRAVO-2",
            "--child",
            "A-NAME-LONGER-THAN-15",
        ],
    );
    for name in ["ALPHA", "BRAVO-2", "A-NAME-LONGER-THAN-15"] {
        let pid = root.pid_of(name);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
        // The kernel keeps 15 bytes of a process name.
        let expected: String = name.chars().take(15).collect();
        assert_eq!(comm.trim_end(), expected, "comm of {name} (pid {pid})");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        assert_eq!(argv0, name.as_bytes(), "argv[0] of {name}");
    }
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.assert_nothing_left();
}

#[test]
fn a_child_that_finishes_by_itself_is_logged_and_not_restarted_by_default() {
    let mut root = Root::testbed_recording(
        "finish",
        "run",
        &["--child", "DONE:fault=return,after=20", "--child", "LIVE"],
    );
    let pid = root.pid_of("DONE");
    root.wait_log(&[&format!("DONE (pid {pid}) exited: exit 0")], PATIENCE);
    root.wait_log(
        &["DONE finished; its restart type (StopSystemOnFailure) does not restart it"],
        PATIENCE,
    );
    let live = root.pid_of("LIVE");
    assert!(!root.is_gone(live), "LIVE keeps running");
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(root.summary("DONE").restarts, 0);
    root.assert_gone(&[pid, live], Duration::from_secs(5));
    root.assert_nothing_left();
}

#[test]
fn idle_actors_stop_at_once_when_asked() {
    // Four idle actors sleep in their receive (no poll) until the stop frame wakes them: the
    // whole stop is quick (the contract, 100 ms, is measured by the compare bench; here with
    // a wide margin for a loaded machine), not a poll's length (loops::QUEUE_POLL is 60 s).
    let mut root = Root::testbed(
        "idle-stop",
        &[
            "run",
            "--stop-when-started",
            "--child",
            "A",
            "--child",
            "B",
            "--child",
            "C",
            "--child",
            "D",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let stop_ms: u64 = number_after(&root.wait_out(&["exit_code"], PATIENCE), "stop_ms ");
    assert!(
        stop_ms < 1000,
        "the stop took {stop_ms} ms\n{}",
        root.dump()
    );
    for name in ["A", "B", "C", "D"] {
        assert_eq!(root.summary(name).exit, "0", "{}", root.dump());
    }
}

#[test]
fn a_custom_loop_that_polls_should_stop_sees_the_stop_within_its_own_wait() {
    // F floods A in a loop of its own that never receives: `while !ctx.should_stop()` around
    // `send_timeout(100 ms)`. The stop request reaches it through the shared counters, so it
    // stops within one of its own waits, cleanly, not at the stop deadline (5 s here).
    let mut root = Root::testbed(
        "custom-loop-stop",
        &[
            "run",
            "--stop-timeout-ms",
            "5000",
            "--child",
            "A",
            "--child",
            "F:kind=flood,to=A",
        ],
    );
    root.pid_of("F");
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let stop_ms: u64 = number_after(&root.wait_out(&["exit_code"], PATIENCE), "stop_ms ");
    assert!(
        stop_ms < 3000,
        "the stop took {stop_ms} ms\n{}",
        root.dump()
    );
    assert_eq!(root.summary("F").exit, "0", "{}", root.dump());
    for name in ["A", "F"] {
        assert!(root.summary(name).reconciles(), "{}", root.dump());
    }
}
