//! The system's life against the real binary: start and stop logs, Ctrl-C, signals,
//! `--run-for`, the send file, process names, a port in use, `--help`.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits for the exit after a signal to the group and returns (exit code, wall time, the
/// stop time the root logged in ms).
fn stop_by(h: &mut Hvac, signal: impl FnOnce(&Hvac)) -> (i32, Duration, u64) {
    let t0 = Instant::now();
    signal(h);
    let code = h.exit_code(STOP_DEADLINE);
    let wall = t0.elapsed();
    let logged = h
        .lines()
        .iter()
        .find(|l| root_says(l, "stopped in "))
        .and_then(|l| number_after(l, "stopped in "))
        .unwrap_or_else(|| panic!("no stop time in the log:\n{}", h.log_text()));
    (code, wall, logged)
}

#[test]
fn ctrl_c_stops_everything_quickly_and_cleanly() {
    let mut h = Hvac::start(&[]);
    let (code, wall, logged) = stop_by(&mut h, |h| h.signal_group(libc::SIGINT));
    eprintln!("Ctrl-C (SIGINT to the group): exit {code}, {wall:?} wall, root logged {logged} ms");
    assert_eq!(code, 0);
    assert!(wall < Duration::from_secs(5), "took {wall:?}");
    // The listener's poll must not dominate: well under a second even on a loaded machine.
    assert!(logged < 1000, "the stop took {logged} ms");
    let log = h.log_text();
    assert!(log.contains("got SIGINT: stopping"), "{log}");
    h.assert_nothing_left();
}

#[test]
fn sigint_to_the_root_alone_stops_everything() {
    let mut h = Hvac::start(&[]);
    let (code, wall, logged) = stop_by(&mut h, |h| h.signal_root(libc::SIGINT));
    eprintln!("SIGINT to the root: exit {code}, {wall:?} wall, root logged {logged} ms");
    assert_eq!(code, 0);
    assert!(logged < 1000, "the stop took {logged} ms");
    h.assert_nothing_left();
}

#[test]
fn sigterm_to_one_actor_stops_the_whole_system() {
    let mut h = Hvac::start(&[]);
    let listen = h.pid_of("LISTEN");
    mpactor_test_support::kill(listen, libc::SIGTERM);
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    assert!(h
        .log_text()
        .contains("LISTEN got SIGTERM: stopping the whole system"));
    h.assert_nothing_left();
}

#[test]
fn start_and_stop_read_like_the_talk() {
    let mut h = Hvac::start(&[]);
    assert_eq!(h.request(b"REQUEST END"), "REPLY 1 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    let lines = h.lines();
    for actor in ACTORS {
        let has = |what: &str| {
            lines.iter().any(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                t.len() > 3 && t[2] == actor && l.contains(what)
            })
        };
        assert!(has("Entering startup"), "{actor}: no 'Entering startup'");
        assert!(has("Normal shutdown"), "{actor}: no 'Normal shutdown'");
        let pid = h.pid_of(actor);
        assert!(
            lines
                .iter()
                .any(|l| root_says(l, &format!("{actor} (pid {pid}) exited: exit 0"))),
            "{actor}: no exit status"
        );
        assert!(
            lines.iter().any(
                |l| root_says(l, &format!("summary: {actor} pid={pid} exit 0"))
                    && l.contains("dead_letters=0")
            ),
            "{actor}: no summary with its drain count"
        );
    }
    // Every line: LEVEL M:SS.mmm NAME message.
    for l in &lines {
        let t: Vec<&str> = l.split_whitespace().collect();
        if t.len() < 3 || !["DEBUG", "INFO", "WARN", "ERROR", "TRACE", "CRIT"].contains(&t[0]) {
            continue; // a line that is not from the logger (none expected)
        }
        assert!(
            t[1].len() >= 8 && t[1].as_bytes()[t[1].len() - 4] == b'.',
            "no app time in {l:?}"
        );
    }
    // Stopped in reverse start order: SEND last, so it records until the end.
    let exits: Vec<usize> = ACTORS
        .iter()
        .map(|a| {
            lines
                .iter()
                .position(|l| root_says(l, &format!("{a} (pid")) && l.contains("exited"))
                .expect("an exit line")
        })
        .collect();
    assert!(
        exits[0] > exits[1] && exits[1] > exits[2] && exits[2] > exits[3],
        "{exits:?}"
    );
    h.assert_nothing_left();
}

#[test]
fn the_send_file_holds_the_routed_lines() {
    let mut h = Hvac::start(&["--status-interval", "0.1", "--observation-interval", "0.1"]);
    let enough = h.wait_send_line(Duration::from_secs(15), 0, |_| {
        let lines = h.send_lines();
        lines.iter().any(|l| l.starts_with("STATUS::"))
            && lines
                .iter()
                .filter(|l| l.starts_with("OBSERVATION::"))
                .count()
                >= 5
    });
    assert!(enough.is_some(), "send file: {:?}", h.send_lines());
    assert_eq!(h.request(b"REQUEST END"), "REPLY 1 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);

    let lines = h.send_lines();
    let mut seq = 0;
    for l in &lines {
        if let Some(status) = l.strip_prefix("STATUS::") {
            assert!(
                status == "OKAY" || status.starts_with("NOT-OKAY "),
                "bad status line {l:?}"
            );
        } else if let Some(obs) = l.strip_prefix("OBSERVATION::") {
            for key in ["temp=", "humidity=", "setpoint=21.0C", "mode=", "outdoor="] {
                assert!(obs.contains(key), "{key} missing in {l:?}");
            }
            let n = number_after(obs, "seq=").expect("a seq");
            assert_eq!(n, seq + 1, "readings in order, none lost");
            seq = n;
        } else {
            assert!(l.starts_with("ERROR::"), "unexpected line {l:?}");
        }
    }
    // The file reconciles with SEND's count in the summary.
    let summary = h
        .lines()
        .into_iter()
        .find(|l| root_says(l, "summary: SEND "))
        .expect("SEND's summary");
    assert_eq!(
        number_after(&summary, "handled="),
        Some(lines.len() as u64),
        "{summary}"
    );
    assert_eq!(
        number_after(&summary, "dead_letters="),
        Some(0),
        "{summary}"
    );
    h.assert_nothing_left();
}

#[test]
fn each_actor_shows_its_name_in_proc() {
    let mut h = Hvac::start(&[]);
    for actor in ACTORS {
        let pid = h.pid_of(actor);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
        assert_eq!(comm.trim_end(), actor);
        assert_eq!(
            h.find_in_proc(actor),
            Some(pid),
            "{actor} is a child of the root"
        );
    }
    h.signal_group(libc::SIGINT);
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    h.assert_nothing_left();
}

#[test]
fn run_for_stops_by_itself() {
    let mut h = Hvac::start(&["--run-for", "1.5"]);
    assert_eq!(h.exit_code(Duration::from_secs(20)), 0);
    assert!(h.log_text().contains("run-for deadline"));
    h.assert_nothing_left();
}

#[test]
fn a_port_in_use_fails_clearly_and_leaves_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("take a port");
    let port = taken.local_addr().expect("address").port();
    let mut h = Hvac::spawn_on(port, &[]);
    let code = h.exit_code(Duration::from_secs(20));
    assert_ne!(code, 0);
    let log = h.log_text();
    let addr = format!("127.0.0.1:{port}");
    let clear = h
        .lines()
        .into_iter()
        .find(|l| l.starts_with("hvac: cannot start"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(
        clear.contains(&format!("cannot listen on {addr}")),
        "{clear}"
    );
    assert!(clear.contains("Address already in use"), "{clear}");
    assert!(clear.contains("LISTEN"), "{clear}");
    // SEND had started before LISTEN failed: it was stopped, not left behind.
    assert!(h.actor_pids().iter().any(|(n, _)| n == "SEND"), "{log}");
    h.assert_nothing_left();
    drop(taken);
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_hvac"))
        .arg("--help")
        .output()
        .expect("run hvac --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen <HOST:PORT>",
        "--send-file <PATH>",
        "--status-interval <SECS>",
        "--observation-interval <SECS>",
        "--run-for <SECS>",
        "--log-level <LEVEL>",
        "[env: MPACTOR_LOG=",
        "--log-format <FORMAT>",
        "[env: MPACTOR_LOG_FORMAT=",
        "--client-timeout <SECS>",
        "--max-connections <N>",
        "--control-token <TOKEN>",
        "HVAC_CONTROL_TOKEN",
        "REQUEST END",
        "REQUEST TOKEN <token> END",
        "64",
    ] {
        assert!(help.contains(flag), "{flag} not in --help:\n{help}");
    }
    // A bad command line exits with EX_USAGE (64), not with 2, the code of a failed device
    // (a_fatal_event_stops_the_whole_system_with_exit_2 below), and starts nothing.
    for (args, named) in [
        (&["--status-interval", "0"][..], "--status-interval"),
        (&["--no-such-option"][..], "--no-such-option"),
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--control-token", "two words"][..], "--control-token"),
        (&["--log-level", "loud"][..], "--log-level"),
        (&["--log-format", "xml"][..], "--log-format"),
    ] {
        // Were the command line taken, the run would end by itself (and the test fail).
        let bad = Command::new(env!("CARGO_BIN_EXE_hvac"))
            .args(["--listen", "127.0.0.1:0", "--run-for", "0.5"])
            .args(args)
            .env_remove("HVAC_CONTROL_TOKEN")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run hvac");
        assert_eq!(bad.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("started"), "{args:?}: {stderr}");
    }
    // So does a bad token in the environment.
    let bad = Command::new(env!("CARGO_BIN_EXE_hvac"))
        .args(["--listen", "127.0.0.1:0", "--run-for", "0.5"])
        .env("HVAC_CONTROL_TOKEN", "two words")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hvac");
    assert_eq!(bad.status.code(), Some(64));
    // --version succeeds.
    let version = Command::new(env!("CARGO_BIN_EXE_hvac"))
        .arg("--version")
        .output()
        .expect("run hvac --version");
    assert_eq!(version.status.code(), Some(0));
}

#[test]
fn a_full_disk_under_the_send_file_is_weathered_not_fatal() {
    // /dev/full opens, then fails every write with ENOSPC: a full disk. SEND drops the lines,
    // counts them and says so once per burst; the device goes on, and stops cleanly.
    let mut h = Hvac::start(&["--send-file", "/dev/full", "--observation-interval", "0.01"]);
    let full = h.wait_line(Duration::from_secs(15), |l| {
        l.contains("SEND") && l.contains("/dev/full is full")
    });
    assert!(full.is_some(), "{}", h.log_text());
    // More lines are lost while the disk stays full: still one line about it.
    let later = h.wait_line(Duration::from_secs(15), |l| {
        l.contains("OBSERVATION") && l.contains("reading seq=5 ")
    });
    assert!(later.is_some(), "{}", h.log_text());
    h.signal_group(libc::SIGINT);
    assert_eq!(h.exit_code(Duration::from_secs(30)), 0, "{}", h.log_text());
    let log = h.log_text();
    assert_eq!(log.matches("/dev/full is full").count(), 1, "{log}");
    assert!(!log.contains("fatal event"), "{log}");
    assert!(log.contains("lost_to_full_disk="), "{log}");
    h.assert_nothing_left();
}
