//! Crashes and restarts: every way a child can die is noticed quickly and logged with its
//! cause; restart types, strategies and the restart intensity; Addr handles that keep working
//! across a restart; messages lost with a crashed process counted and logged.

mod common;

use common::{kill, number_after, stamp_ms, Root, PATIENCE};
use std::time::{Duration, Instant};

/// The `at_ms=` of W's fault in the record file (the application clock, as in the logs).
fn fault_at_ms(root: &Root, name: &str) -> f64 {
    let line = root.wait_record(&format!("{name} fault "), PATIENCE);
    number_after(&line, "at_ms=")
}

/// W (the default restart type, StopSystemOnFailure) dies by `fault`; the root must log "W (pid N) ended: <status>[: cause]"
/// within 100 ms of the death, and stop the system with exit 2.
///
/// The time is read from the logs, on the application clock that root and child share: the
/// child's last words (written synchronously just before the fault, or its own last log line
/// for a panic, which it writes just before exiting) against the root's "ended" line. Both
/// stamps have a resolution of 1 ms, hence the extra millisecond.
fn crash_is_noticed(test: &str, fault: &str, status: &str, cause: Option<&str>) {
    let mut root = Root::testbed_recording(
        test,
        "run",
        &[
            "--child",
            "OK",
            "--child",
            &format!("W:fault={fault},after=30"),
        ],
    );
    let pid = root.pid_of("W");
    let ended = root.wait_log(&[&format!("W (pid {pid}) ended: {status}")], PATIENCE);
    if let Some(cause) = cause {
        assert!(ended.contains(cause), "the cause is logged: {ended}");
    }
    let died_at = if fault == "panic" || fault == "error" {
        stamp_ms(&root.wait_log(&["W", "Failed:", &format!("pid={pid}")], PATIENCE))
    } else {
        fault_at_ms(&root, "W")
    };
    let noticed_after = stamp_ms(&ended) - died_at;
    assert!(
        noticed_after <= 101.0,
        "the root noticed the death {noticed_after:.1} ms after it\n{}",
        root.dump()
    );
    eprintln!("{fault}: noticed {noticed_after:.1} ms after the death");
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    assert_eq!(root.summary("OK").exit, "0");
    root.assert_nothing_left();
}

#[test]
fn a_panic_is_noticed_and_logged_with_its_message() {
    crash_is_noticed(
        "crash-panic",
        "panic",
        "exit 2",
        Some("panicked: injected panic in W"),
    );
}

#[test]
fn an_error_from_main_loop_is_noticed_and_logged_with_its_cause() {
    crash_is_noticed(
        "crash-error",
        "error",
        "exit 2",
        Some("injected error in W: the disk is on fire"),
    );
}

/// W's main loop fails with `?` on a library's error whose source is an I/O error: the whole
/// chain is in W's own log line, in the root's, and in the summary's stop reason.
#[test]
fn an_error_through_question_mark_keeps_its_cause_chain_in_the_logs_and_the_summary() {
    let chain = "injected error in W: the disk is on fire";
    let mut root =
        Root::testbed_recording("error-chain", "run", &["--child", "W:fault=error,after=30"]);
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    root.wait_log(&["W", &format!("main_loop failed: {chain}")], PATIENCE);
    root.wait_log(
        &["ROOT", &format!("stopping the system: W failed: {chain}")],
        PATIENCE,
    );
    root.wait_out(&[&format!("reason W failed: {chain}")], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn a_non_zero_exit_is_noticed_and_logged() {
    crash_is_noticed("crash-exit", "exit:7", "exit 7", None);
}

#[test]
fn an_abort_is_noticed_and_logged() {
    crash_is_noticed("crash-abort", "abort", "killed by SIGABRT", None);
}

#[test]
fn a_segfault_is_noticed_and_logged() {
    crash_is_noticed("crash-segv", "segv", "killed by SIGSEGV", None);
}

#[test]
fn a_child_killed_from_outside_is_noticed_and_logged() {
    killed_from_outside("crash-kill", libc::SIGKILL, "SIGKILL");
}

#[test]
fn a_child_sent_sigsegv_from_outside_is_noticed_and_logged() {
    // Rust's standard library catches SIGSEGV to report stack overflows and lets one that was
    // only sent (not a fault) pass; a child restores the default action so it always ends.
    killed_from_outside("crash-segv", libc::SIGSEGV, "SIGSEGV");
}

fn killed_from_outside(test: &str, signal: i32, name: &str) {
    let mut root = Root::testbed(test, &["run", "--child", "OK", "--child", "W"]);
    let pid = root.pid_of("W");
    let t0 = Instant::now();
    kill(pid, signal);
    root.wait_log(
        &[&format!("W (pid {pid}) ended: killed by {name}")],
        PATIENCE,
    );
    // Measured by the test, so with a wide margin (the contract, 100 ms, is proven from the
    // logs above; here it is the same watch, seen from a busy test process).
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1000), "noticed after {took:?}");
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    assert!(root
        .stdout
        .text()
        .contains(&format!("reason W failed: killed by {name}")));
    root.assert_nothing_left();
}

#[test]
fn restart_types_after_a_clean_exit() {
    // Each child leaves its main loop by itself once, 50 ms after its start.
    let mut root = Root::testbed_recording(
        "types-clean",
        "run",
        &[
            "--child",
            "P:restart=permanent,fault=return,after=50,once",
            "--child",
            "T:restart=transient,fault=return,after=50,once",
            "--child",
            "M:restart=temporary,fault=return,after=50,once",
            "--child",
            "S:restart=stop_system,fault=return,after=50,once",
        ],
    );
    root.wait_log(&["restarting P (restart 1)"], PATIENCE);
    root.wait_log_nth(&[" P started"], 2, PATIENCE);
    root.wait_log(
        &["T finished; its restart type (Transient) does not restart it"],
        PATIENCE,
    );
    root.wait_log(
        &["M finished; its restart type (Temporary) does not restart it"],
        PATIENCE,
    );
    root.wait_log(
        &["S finished; its restart type (StopSystemOnFailure) does not restart it"],
        PATIENCE,
    );
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(root.summary("P").restarts, 1);
    assert_eq!(root.summary("T").restarts, 0);
    assert_eq!(root.summary("M").restarts, 0);
    root.assert_nothing_left();
}

#[test]
fn restarted_children_run_in_a_new_process_with_the_same_args() {
    let mut root = Root::testbed_recording(
        "types-crash",
        "run",
        &[
            "--child",
            "P:restart=permanent,tag=p-args",
            "--child",
            "T:restart=transient,tag=t-args",
        ],
    );
    for name in ["P", "T"] {
        let old = root.pid_of(name);
        kill(old, libc::SIGKILL);
        root.wait_log(&[&format!("restarting {name} (restart 1)")], PATIENCE);
        root.wait_log_nth(&[&format!(" {name} started")], 2, PATIENCE);
        let new = root.pid_of(name);
        assert_ne!(old, new, "a new process");
        // Same Args in both incarnations: the record carries the tag they were given.
        let tag = format!("tag={}-args", name.to_lowercase());
        for pid in [old, new] {
            assert!(
                root.record()
                    .iter()
                    .any(|l| l.starts_with(&format!("{name} init_args pid={pid} {tag}"))),
                "{}",
                root.dump()
            );
        }
    }
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.assert_nothing_left();
}

/// mptools' rule, by name and as the default: a failure of the child stops the system with
/// exit 2, nothing is restarted.
#[test]
fn a_stop_system_child_that_fails_stops_the_system_with_exit_2() {
    for (test, restart) in [
        ("types-stop-system", ",restart=stop_system"),
        ("types-default", ""),
    ] {
        let mut root = Root::testbed(
            test,
            &[
                "run",
                "--child",
                "A",
                "--child",
                &format!("M:fault=exit:3,after=50{restart}"),
            ],
        );
        assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
        assert!(
            root.log_lines(&["restarting"]).is_empty(),
            "{}",
            root.dump()
        );
        assert!(root.stdout.text().contains("reason M failed: exit 3"));
        assert_eq!(root.summary("A").exit, "0");
        root.assert_nothing_left();
    }
}

/// OTP's temporary: the failure is logged with its cause and shows in the summary, the child
/// is not restarted, and the system runs on until asked to stop (exit 0).
#[test]
fn a_temporary_child_that_fails_is_logged_and_the_system_runs_on() {
    let mut root = Root::testbed_recording(
        "types-temporary",
        "run",
        &[
            "--child",
            "A",
            "--child",
            "M:restart=temporary,fault=error,after=50",
        ],
    );
    let pid = root.pid_of("M");
    let ended = root.wait_log(&[&format!("M (pid {pid}) ended: exit 2")], PATIENCE);
    assert!(ended.contains("injected error in M"), "{ended}");
    root.wait_log(
        &["M failed; its restart type (Temporary) neither restarts it nor stops the system"],
        PATIENCE,
    );
    // Still running: A is alive and the root obeys a signal as usual.
    let a = root.pid_of("A");
    assert!(!root.is_gone(a), "A runs on\n{}", root.dump());
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert!(
        root.log_lines(&["restarting"]).is_empty(),
        "{}",
        root.dump()
    );
    let m = root.summary("M");
    assert_eq!((m.exit.as_str(), m.restarts), ("2", 0), "{}", root.dump());
    assert_eq!(root.summary("A").exit, "0");
    root.assert_nothing_left();
}

/// Kills B of A, B, C (all permanent) under `strategy`; returns the root after the restart
/// settled (the last restarted child started again) and the system stopped.
fn strategy_run(test: &str, strategy: &str, last_restarted: &str) -> Root {
    let mut root = Root::testbed_recording(
        test,
        "run",
        &[
            "--strategy",
            strategy,
            "--child",
            "A:restart=permanent",
            "--child",
            "B:restart=permanent",
            "--child",
            "C:restart=permanent",
        ],
    );
    root.pid_of("C");
    let b = root.pid_of("B");
    kill(b, libc::SIGKILL);
    root.wait_log_nth(&[&format!(" {last_restarted} started")], 2, PATIENCE);
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.assert_nothing_left();
    root
}

fn incarnations(root: &Root, name: &str) -> usize {
    root.record()
        .iter()
        .filter(|l| l.starts_with(&format!("{name} init_args ")))
        .count()
}

/// The record lines from B's restart on, as "NAME step".
/// The stops and starts after the kill, in order: `C shutdown`, `A init_args`...
fn after_kill(root: &Root) -> Vec<String> {
    let record = root.record();
    let first_c_main = record
        .iter()
        .position(|l| l.starts_with("C main_loop "))
        .expect("C started");
    record[first_c_main + 1..]
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .filter(|s| s.ends_with(" shutdown") || s.ends_with(" init_args"))
        .collect()
}

#[test]
fn one_for_one_restarts_only_the_child_that_died() {
    let root = strategy_run("one-for-one", "one_for_one", "B");
    assert_eq!(incarnations(&root, "A"), 1);
    assert_eq!(incarnations(&root, "B"), 2);
    assert_eq!(incarnations(&root, "C"), 1);
    assert_eq!(root.summary("B").restarts, 1);
}

#[test]
fn one_for_all_restarts_every_child_stopping_in_reverse_and_starting_in_order() {
    let root = strategy_run("one-for-all", "one_for_all", "C");
    for name in ["A", "B", "C"] {
        assert_eq!(incarnations(&root, name), 2, "{name}\n{}", root.dump());
        assert_eq!(root.summary(name).restarts, 1);
    }
    let order = after_kill(&root);
    // B was killed (no shutdown); C then A are stopped, then A, B, C start in order.
    assert_eq!(
        &order[..5],
        [
            "C shutdown",
            "A shutdown",
            "A init_args",
            "B init_args",
            "C init_args"
        ],
        "{order:#?}"
    );
}

#[test]
fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    let root = strategy_run("rest-for-one", "rest_for_one", "C");
    assert_eq!(incarnations(&root, "A"), 1);
    assert_eq!(incarnations(&root, "B"), 2);
    assert_eq!(incarnations(&root, "C"), 2);
    let order = after_kill(&root);
    assert_eq!(
        &order[..3],
        ["C shutdown", "B init_args", "C init_args"],
        "{order:#?}"
    );
}

#[test]
fn a_crash_loop_past_the_intensity_stops_everything_with_exit_3() {
    let mut root = Root::testbed(
        "intensity-exceeded",
        &[
            "run",
            "--intensity",
            "3/5000",
            "--child",
            "A",
            "--child",
            "W:restart=permanent,fault=exit:1,after=20",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 3, "{}", root.dump());
    root.wait_log(
        &["W ended again: more than 3 restarts in 5s; stopping the system"],
        PATIENCE,
    );
    assert_eq!(root.summary("W").restarts, 3);
    assert_eq!(root.summary("A").exit, "0", "the others stop cleanly");
    assert!(root
        .stdout
        .text()
        .contains("reason restart intensity exceeded (W kept failing)"));
    root.assert_nothing_left();
}

#[test]
fn a_crash_loop_under_the_intensity_keeps_running() {
    // At most 1 restart in 300 ms, and W lives 400 ms each time: never too many.
    let mut root = Root::testbed(
        "intensity-under",
        &[
            "run",
            "--intensity",
            "1/300",
            "--child",
            "W:restart=permanent,fault=exit:1,after=400",
        ],
    );
    root.wait_log_nth(&[" W started"], 5, PATIENCE);
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert!(root.log_lines(&["more than"]).is_empty(), "{}", root.dump());
    assert!(root.summary("W").restarts >= 4);
    root.assert_nothing_left();
}

#[test]
fn kills_spaced_wider_than_the_period_never_escalate() {
    let mut root = Root::testbed(
        "intensity-spaced",
        &[
            "run",
            "--intensity",
            "1/300",
            "--child",
            "A",
            "--child",
            "W:restart=permanent",
        ],
    );
    let mut last_kill: Option<Instant> = None;
    for n in 1..=4 {
        root.wait_log_nth(&[" W started"], n, PATIENCE);
        // The fault schedule itself, not a synchronisation: the kills are spaced wider than
        // the 300 ms period.
        if let Some(t) = last_kill {
            while t.elapsed() < Duration::from_millis(450) {
                std::thread::sleep(common::POLL);
            }
        }
        last_kill = Some(Instant::now());
        kill(root.pid_of("W"), libc::SIGKILL);
    }
    root.wait_log_nth(&[" W started"], 5, PATIENCE);
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(root.summary("W").restarts, 4);
    assert!(root.log_lines(&["more than"]).is_empty(), "{}", root.dump());
    root.assert_nothing_left();
}

#[test]
fn addr_handles_keep_working_across_a_restart() {
    // F holds W's Addr (handed over in its Args) and sends every 5 ms; W is killed.
    let mut root = Root::testbed_recording(
        "addr-restart",
        "run",
        &[
            "--child",
            "W:restart=permanent",
            "--child",
            "F:kind=flood,to=W,every_ms=5",
        ],
    );
    let old = root.pid_of("W");
    root.pid_of("F");
    kill(old, libc::SIGKILL);
    root.wait_log_nth(&[" W started"], 2, PATIENCE);
    let new = root.pid_of("W");
    // The new incarnation gets F's messages through the Addr F had all along.
    root.wait_record(&format!("W first_message pid={new} "), PATIENCE);
    root.signal(libc::SIGTERM);
    // F never saw a send fail (it would have failed and stopped the system with exit 2).
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(root.summary("F").exit, "0");
    let sent: u64 = root
        .wait_out(&["sent F="], PATIENCE)
        .trim_start_matches("sent F=")
        .parse()
        .expect("a count");
    let w = root.summary("W");
    assert_eq!(w.accepted, sent, "{w:?}");
    assert!(w.reconciles(), "{w:?}\n{}", root.dump());
    root.assert_nothing_left();
}

#[test]
fn messages_in_a_killed_childs_inbox_are_counted_and_logged_as_lost() {
    // F sends 2000 messages at once; W takes 1 ms for each. Once the inbox socket is full
    // (a few hundred small frames), F's writer ships frames of up to 512 messages, so when W
    // is killed at its 400th message it holds most of such a frame, received but unhandled.
    // (Not at its first: small messages to an idle actor go out one by one.)
    let mut root = Root::testbed_recording(
        "lost",
        "run",
        &[
            "--stop-timeout-ms",
            "10000",
            "--child",
            "W:restart=permanent,handle_ms=1,note_at=400",
            "--child",
            "F:kind=flood,to=W,count=2000",
        ],
    );
    let old = root.pid_of("W");
    root.wait_record(&format!("W message_400 pid={old} "), PATIENCE);
    kill(old, libc::SIGKILL);
    let line = root.wait_log(&["messages were lost with W's process"], PATIENCE);
    let lost: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    assert!(lost > 0);
    root.wait_log_nth(&[" W started"], 2, PATIENCE);
    root.wait_out(&["sent F=2000"], PATIENCE);
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let w = root.summary("W");
    assert_eq!(w.accepted, 2000, "{w:?}");
    assert_eq!(w.lost, lost, "{w:?}");
    assert!(w.dead_letters >= lost, "{w:?}");
    assert!(
        w.reconciles(),
        "none vanish silently: {w:?}\n{}",
        root.dump()
    );
    root.assert_gone(&[old], Duration::from_secs(5));
    root.assert_nothing_left();
}
