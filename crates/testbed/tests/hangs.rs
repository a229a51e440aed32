//! Hangs: a child that does not stop when asked (busy, or SIGSTOPped) does not keep the system
//! from stopping; a child that hangs in its startup fails the start at the deadline.

mod common;

use common::{kill, number_after, proc_state, stopped_in_ms, Root, PATIENCE};
use std::time::{Duration, Instant};

const STOP_TIMEOUT_MS: u64 = 1000;

/// Stops a system whose child `stuck` will not stop by itself; checks the escalation and that
/// the whole stop took at most the deadline plus one second.
fn stop_escalates(root: &mut Root, stuck: &str, killed: bool) {
    let pid = root.pid_of(stuck);
    if killed {
        // Asked to stop before it reaches its main loop, it would stop after all.
        root.wait_log(&[stuck, "ignoring stop requests from now on"], PATIENCE);
    }
    let t0 = Instant::now();
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let took = t0.elapsed();
    root.wait_log(
        &[&format!(
            "{stuck} (pid {pid}) still running at the stop deadline: SIGTERM"
        )],
        PATIENCE,
    );
    if killed {
        root.wait_log(
            &[&format!(
                "{stuck} (pid {pid}) still running after SIGTERM: SIGKILL"
            )],
            PATIENCE,
        );
        root.wait_log(
            &[&format!("{stuck} (pid {pid}) ended: killed by SIGKILL")],
            PATIENCE,
        );
    }
    // The contract: deadline + 1 s, on the root's own clock from the trigger to every child
    // reaped.
    let stop_ms = stopped_in_ms(root);
    assert!(
        stop_ms <= STOP_TIMEOUT_MS + 1000,
        "the stop took {stop_ms} ms\n{}",
        root.dump()
    );
    eprintln!("{stuck}: stop took {stop_ms} ms (root), {took:?} (test)");
    root.assert_gone(&[pid], Duration::from_secs(2));
    root.assert_nothing_left();
}

#[test]
fn a_busy_child_that_ignores_its_stop_is_killed_at_the_deadline() {
    let mut root = Root::testbed(
        "hang-busy",
        &[
            "run",
            "--stop-timeout-ms",
            "1000",
            "--kill-grace-ms",
            "300",
            "--child",
            "A",
            "--child",
            "BUSY:fault=ignore-stop,after=0",
        ],
    );
    stop_escalates(&mut root, "BUSY", true);
    assert_eq!(root.summary("A").exit, "0", "the others still stop cleanly");
    assert_eq!(root.summary("BUSY").exit, "SIGKILL");
}

#[test]
fn a_sigstopped_child_is_continued_and_signalled_at_the_deadline() {
    // STOPPED is started first, so it is stopped last: the others stop cleanly before it.
    let mut root = Root::testbed(
        "hang-sigstop",
        &[
            "run",
            "--stop-timeout-ms",
            "1000",
            "--child",
            "STOPPED",
            "--child",
            "B",
        ],
    );
    let pid = root.pid_of("STOPPED");
    root.pid_of("B");
    kill(pid, libc::SIGSTOP);
    wait_state(pid, 'T');
    // SIGCONT then SIGTERM: it wakes up and stops (its stop request is waiting in its inbox).
    stop_escalates(&mut root, "STOPPED", false);
    assert_eq!(root.summary("B").exit, "0");
}

#[test]
fn a_sigstopped_busy_child_is_killed_at_the_deadline() {
    let mut root = Root::testbed(
        "hang-sigstop-busy",
        &[
            "run",
            "--stop-timeout-ms",
            "1000",
            "--child",
            "STUCK:fault=ignore-stop,after=0",
            "--child",
            "B",
        ],
    );
    let pid = root.pid_of("STUCK");
    root.pid_of("B");
    root.wait_log(&["STUCK", "ignoring stop requests from now on"], PATIENCE);
    kill(pid, libc::SIGSTOP);
    wait_state(pid, 'T');
    stop_escalates(&mut root, "STUCK", true);
    assert_eq!(root.summary("B").exit, "0");
}

#[test]
fn a_child_that_hangs_in_startup_fails_the_start_at_the_deadline_and_is_killed() {
    let mut root = Root::testbed_recording(
        "hang-startup",
        "run",
        &[
            "--child",
            "FIRST",
            "--child",
            "W:startup=hang,start_timeout_ms=500",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    let line = root.wait_out(&["spawn failed: W"], PATIENCE);
    assert!(
        line.contains("W did not start within 500ms and was killed"),
        "{line}"
    );
    let ms: u64 = number_after(&line, "after_ms=");
    // At the deadline, not before; the upper bound is a margin for a loaded machine.
    assert!((500..2000).contains(&ms), "{line}");
    // The hung process itself is gone (its pid is in its own "started" line).
    let hung = root
        .record()
        .iter()
        .find(|l| l.starts_with("W startup "))
        .and_then(|l| common::pid_in(l))
        .expect("W recorded its startup");
    root.assert_gone(&[hung], Duration::from_secs(2));
    root.assert_nothing_left();
}

fn wait_state(pid: u32, state: char) {
    let deadline = Instant::now() + PATIENCE;
    while proc_state(pid).map(|s| s.0) != Some(state) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {state}"
        );
        std::thread::sleep(common::POLL);
    }
}
