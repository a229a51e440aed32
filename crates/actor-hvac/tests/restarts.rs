//! The supervision policy against the real binary: an actor killed with SIGKILL (found by
//! its name in /proc) is restarted and the device carries on; a crash loop past the restart
//! intensity stops the system with exit code 3. No hidden test hook: the kills come from
//! outside, as a real crash would.

mod common;

use common::*;
use std::time::Duration;

fn kill9(pid: u32) {
    // A pid of this run, found under its root in /proc.
    mpactor_test_support::kill(pid, libc::SIGKILL);
}

/// SIGKILLs `actor`'s current process and waits until the root has started a new one;
/// returns the new pid.
fn crash_and_wait_restart(h: &Hvac, actor: &str, restart: usize) -> u32 {
    let old = h.pid_of(actor);
    assert_eq!(
        h.find_in_proc(actor),
        Some(old),
        "{actor} in /proc under the root"
    );
    kill9(old);
    let started = h.wait_lines(Duration::from_secs(20), restart + 1, |l| {
        root_says(l, &format!("{actor} started"))
    });
    assert!(
        started.is_some(),
        "{actor} was not restarted:\n{}",
        h.log_text()
    );
    let new = h.pid_of(actor);
    assert_ne!(new, old);
    new
}

#[test]
fn a_killed_actor_is_restarted_and_the_device_carries_on() {
    let mut h = Hvac::start(&["--observation-interval", "0.1"]);
    assert_eq!(
        h.request(b"REQUEST SET 24"),
        "REPLY 1 SETPOINT 24.0C (was 21.0C)\n"
    );

    // OBSERVATION: restarted, and brought back to the setpoint asked for.
    let new = crash_and_wait_restart(&h, "OBSERVATION", 1);
    assert!(
        h.log_text().contains("OBSERVATION (pid"),
        "its end is logged"
    );
    assert!(h.log_text().contains("killed by SIGKILL"));
    let from = h.send_lines().len();
    let back = h.wait_send_line(Duration::from_secs(10), from, |l| {
        l.starts_with("OBSERVATION::seq=")
            && number_after(l, "seq=").is_some_and(|n| n < 50)
            && l.contains("setpoint=24.0C")
    });
    assert!(
        back.is_some(),
        "the new OBSERVATION did not get the setpoint back: {:?}",
        h.send_lines()
    );

    // LISTEN: restarted, binds the port again, serves (its request ids start again).
    crash_and_wait_restart(&h, "LISTEN", 1);
    assert_eq!(
        h.request(b"REQUEST after restart"),
        "REPLY 1 after restart\n"
    );

    let status = h.request(b"REQUEST STATUS");
    assert!(
        status.contains(&format!("OBSERVATION pid={new} running")),
        "{status}"
    );
    assert!(status.contains("restarts=1"), "{status}");

    assert_eq!(h.request(b"REQUEST END"), "REPLY 3 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    let log = h.log_text();
    assert!(
        log.contains("summary: OBSERVATION") && log.contains("restarts=1"),
        "{log}"
    );
    h.assert_nothing_left();
}

#[test]
fn a_crash_loop_stops_the_system_with_exit_3() {
    let mut h = Hvac::start(&[]);
    // Three restarts are allowed within 30 s; the fourth crash is one too many.
    for restart in 1..=3 {
        crash_and_wait_restart(&h, "STATUS", restart);
    }
    kill9(h.pid_of("STATUS"));
    assert_eq!(h.exit_code(Duration::from_secs(20)), 3);
    let log = h.log_text();
    assert!(
        log.contains("restart intensity exceeded (STATUS kept failing)"),
        "{log}"
    );
    // The other actors were stopped cleanly.
    for actor in ["SEND", "LISTEN", "OBSERVATION"] {
        let pid = h.pid_of(actor);
        assert!(
            log.contains(&format!("{actor} (pid {pid}) exited: exit 0")),
            "{actor} did not stop cleanly:\n{log}"
        );
    }
    h.assert_nothing_left();
}

#[test]
fn send_keeps_its_inbox_across_a_restart() {
    let mut h = Hvac::start(&["--observation-interval", "0.05"]);
    assert!(h
        .wait_send_line(Duration::from_secs(10), 0, |l| l
            .starts_with("OBSERVATION::"))
        .is_some());
    crash_and_wait_restart(&h, "SEND", 1);
    let from = h.send_lines().len();
    assert!(
        h.wait_send_line(Duration::from_secs(10), from, |l| l
            .starts_with("OBSERVATION::"))
            .is_some(),
        "the new SEND writes"
    );
    h.signal_group(libc::SIGINT);
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    // What was accepted for SEND is accounted for: handled, lost in the crash, or drained.
    let summary = h
        .lines()
        .into_iter()
        .find(|l| root_says(l, "summary: SEND "))
        .expect("SEND's summary");
    let handled = number_after(&summary, "handled=").expect("handled");
    let dead = number_after(&summary, "dead_letters=").expect("dead letters");
    let accepted = number_after(&summary, "accepted=").expect("accepted");
    assert_eq!(accepted, handled + dead, "{summary}");
    assert!(!h.log_text().contains("unaccounted"), "{}", h.log_text());
    h.assert_nothing_left();
}
