//! Children at run time: a child started by the root's event handler (`RootCtx::spawn_with`)
//! gets what a child started before `run` gets (the start handshake and its deadline, its
//! restart type, its place in the reverse-order stop, its mailbox drained and counted), and a
//! child stopped by name (`RootCtx::stop_child`) is stopped, drained and counted while the
//! rest of the system runs on. Each in both isolations where the difference matters.
//!
//! The root counts the ticks of a ticker T (every 20 ms) and acts at given ticks
//! (`--spawn-at-tick N=CHILD`, `--stop-child-at-tick N=NAME`, `--stop-after-ticks N`).

mod common;

use common::{Root, Summary, PATIENCE};

/// Every `summary NAME ...` line of the root, in order (a name given again to a new child
/// has two).
fn summaries(root: &Root, name: &str) -> Vec<Summary> {
    let prefix = format!("summary {name} ");
    root.stdout
        .all()
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| Summary::parse(l))
        .collect()
}

/// Where `line` first appears in the record file.
fn record_index(root: &Root, prefix: &str) -> usize {
    root.record()
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no record line {prefix:?}\n{}", root.dump()))
}

fn spawned_at_run_time_is_a_child_like_the_others(test: &str, threads: bool) {
    let mut args = vec![
        "--child",
        "A:root_sends=50",
        "--child",
        "T:kind=ticker,every_ms=20",
        "--spawn-at-tick",
        "3=D:root_sends=100",
        "--stop-after-ticks",
        "15",
    ];
    if threads {
        args.push("--threads");
    }
    let mut root = Root::testbed_recording(test, "run", &args);
    root.wait_out(&["spawned D"], PATIENCE);
    root.wait_log(&["D started"], PATIENCE);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let d = root.summary("D");
    assert_eq!(d.exit, "0", "{}", root.dump());
    assert_eq!(d.accepted, 100, "{}", root.dump());
    assert!(d.reconciles(), "{d:?}\n{}", root.dump());
    assert_eq!(d.handled, 100, "D handled its backlog before it stopped");
    assert!(root.summary("A").reconciles());
    // The reverse start order: D, started last, stops before A.
    assert!(
        record_index(&root, "D shutdown") < record_index(&root, "A shutdown"),
        "D stops first\n{}",
        root.dump()
    );
    root.assert_nothing_left();
}

#[test]
fn a_process_spawned_at_run_time_is_a_child_like_the_others() {
    spawned_at_run_time_is_a_child_like_the_others("dyn-spawn-proc", false);
}

#[test]
fn a_thread_spawned_at_run_time_is_a_child_like_the_others() {
    spawned_at_run_time_is_a_child_like_the_others("dyn-spawn-thread", true);
}

#[test]
fn a_child_spawned_at_run_time_is_restarted_by_its_restart_type() {
    let mut root = Root::testbed_recording(
        "dyn-restart",
        "run",
        &[
            "--child",
            "T:kind=ticker,every_ms=20",
            "--spawn-at-tick",
            "2=D:restart=permanent,fault=panic,after=20,once,alive",
            // The stop is requested when D's second incarnation reaches its main loop.
            "--sample-at",
            "1",
        ],
    );
    root.wait_log(&["restarting D (restart 1)"], PATIENCE);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_out(&["reason requested: D restarted 1 times"], PATIENCE);
    let d = root.summary("D");
    assert_eq!(d.restarts, 1, "{}", root.dump());
    assert_eq!(d.exit, "0");
    root.assert_nothing_left();
}

#[test]
fn a_child_spawned_at_run_time_that_fails_stops_the_system_by_default() {
    let mut root = Root::testbed_recording(
        "dyn-fatal",
        "run",
        &[
            "--child",
            "T:kind=ticker,every_ms=20",
            "--spawn-at-tick",
            "2=D:fault=error,after=20",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    root.wait_out(&["reason D failed: injected error in D"], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn a_failed_start_at_run_time_is_reported_and_the_system_runs_on() {
    let mut root = Root::testbed_recording(
        "dyn-failed-start",
        "run",
        &[
            "--child",
            "T:kind=ticker,every_ms=20",
            "--spawn-at-tick",
            "2=D:startup=fail",
            "--spawn-at-tick",
            "4=H:startup=hang,start_timeout_ms=300",
            "--stop-after-ticks",
            "10",
        ],
    );
    let d = root.wait_out(&["spawn failed: D"], PATIENCE);
    assert!(d.contains("worker.toml not found"), "{d}");
    let h = root.wait_out(&["spawn failed: H"], PATIENCE);
    assert!(
        h.contains("did not start within 300ms and was killed"),
        "{h}"
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert!(summaries(&root, "D").is_empty() && summaries(&root, "H").is_empty());
    root.assert_nothing_left();
}

/// A (20 ms a message, 100 of them) is stopped by name at tick 3 with a 200 ms stop
/// deadline: it handles what it can, the rest is drained and counted; T runs on, a new A
/// takes the name, a name that is no child is refused, and the final summary has both As.
fn stopped_by_name_is_drained_and_counted(test: &str, threads: bool) {
    let mut args = vec![
        "--stop-timeout-ms",
        "200",
        "--child",
        "A:handle_ms=20,root_sends=100",
        "--child",
        "T:kind=ticker,every_ms=20",
        "--stop-child-at-tick",
        "3=A",
        "--spawn-at-tick",
        "5=A:root_sends=10",
        "--stop-child-at-tick",
        "6=NOPE",
        "--stop-after-ticks",
        "12",
    ];
    if threads {
        args.push("--threads");
    }
    let mut root = Root::testbed_recording(test, "run", &args);
    let stopped = root.wait_out(&["stopped A "], PATIENCE);
    root.wait_out(&["spawned A"], PATIENCE);
    let nope = root.wait_out(&["stop failed: NOPE"], PATIENCE);
    assert!(nope.contains("no child has this name"), "{nope}");
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let all = summaries(&root, "A");
    assert_eq!(all.len(), 2, "both As are in the summary\n{}", root.dump());
    let (old, new) = (&all[0], &all[1]);
    assert_eq!(old.accepted, 100, "{}", root.dump());
    assert!(old.reconciles(), "{old:?}\n{}", root.dump());
    assert!(
        old.dead_letters > 0 && old.handled > 0,
        "A was stopped mid-backlog: {old:?}\n{}",
        root.dump()
    );
    // What stop_child returned is what the summary says.
    assert!(
        stopped.contains(&format!("handled={} ", old.handled))
            && stopped.contains(&format!("dead_letters={}", old.dead_letters)),
        "{stopped}\n{}",
        root.dump()
    );
    assert_eq!((new.accepted, new.handled, new.dead_letters), (10, 10, 0));
    // The system ran on: the ticker kept ticking until the requested stop.
    root.wait_out(&["reason requested: 12 ticks"], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn a_process_stopped_by_name_is_drained_and_counted() {
    stopped_by_name_is_drained_and_counted("dyn-stop-proc", false);
}

#[test]
fn a_thread_stopped_by_name_is_drained_and_counted() {
    stopped_by_name_is_drained_and_counted("dyn-stop-thread", true);
}

/// The pool example grows to its peak and shrinks back to nothing, with every job counted.
fn pool_grows_and_shrinks(test: &str, threads: bool) {
    let mut args = vec!["--peak", "3"];
    if threads {
        args.push("--threads");
    }
    let mut root = Root::start(
        common::example("pool"),
        common::test_dir(test),
        &args,
        |_| {},
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let line = root.wait_out(&["pool: "], PATIENCE);
    let n = |key: &str| common::number_after::<u64>(&line, key);
    assert_eq!(
        (n("spawned="), n("stopped="), n("peak=")),
        (3, 3, 3),
        "{line}"
    );
    assert_eq!(n("jobs="), n("handled=") + n("dead_letters="), "{line}");
    assert!(n("jobs=") > 0 && n("failed=") == 0, "{line}");
    // Each worker was stopped on its own by the handler, cleanly.
    for w in 1..=3 {
        root.wait_log(&[&format!("WORKER-{w} stopped: exit 0")], PATIENCE);
    }
    root.assert_nothing_left();
}

#[test]
fn the_pool_example_grows_and_shrinks_in_processes() {
    pool_grows_and_shrinks("dyn-pool-proc", false);
}

#[test]
fn the_pool_example_grows_and_shrinks_in_threads() {
    pool_grows_and_shrinks("dyn-pool-thread", true);
}

/// The strategy counts a child started at run time: with one_for_all, its crash restarts the
/// children started before `run` too, stopped in reverse order (it first) and started again
/// in order.
#[test]
fn one_for_all_restarts_the_children_started_before_with_one_started_at_run_time() {
    let mut root = Root::testbed_recording(
        "dyn-one-for-all",
        "run",
        &[
            "--strategy",
            "one_for_all",
            "--child",
            "A:restart=permanent",
            "--child",
            "T:kind=ticker,every_ms=20,restart=permanent",
            "--spawn-at-tick",
            "2=D:restart=permanent,fault=panic,after=20,once,alive",
            "--sample-at",
            "1",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_log(&["stopping A to restart it with D"], PATIENCE);
    for name in ["A", "T", "D"] {
        assert_eq!(root.summary(name).restarts, 1, "{name}\n{}", root.dump());
    }
    // Started again in order: A's second incarnation before D's.
    let record = root.record();
    let second = |name: &str| {
        record
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(&format!("{name} startup")))
            .nth(1)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no second start of {name}\n{}", root.dump()))
    };
    assert!(second("A") < second("D"), "{}", root.dump());
    root.assert_nothing_left();
}
