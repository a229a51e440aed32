//! The supervisor's behaviour, written once and proven against both isolations: each case of
//! the `supervision_cases` example runs as a real root process, once with every actor in its
//! own process and once with every actor in a thread.

mod common;

use common::Root;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One run of a case: exit code, the summary lines by actor, the trace, the logs.
struct Run {
    code: i32,
    actors: HashMap<String, HashMap<String, String>>,
    stdout: String,
    stderr: String,
    trace: Vec<String>,
    elapsed: Duration,
}

fn run_case(case: &str, isolation: &str) -> Run {
    let name = format!("{case}-{isolation}");
    let tmp = std::env::temp_dir().join(format!("mpactor-sup-trace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let trace_arg = tmp.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let mut root = Root::start(
        "supervision_cases",
        &name,
        &[],
        &[
            "--isolation",
            isolation,
            "--case",
            case,
            "--trace",
            &trace_arg,
        ],
        false,
    );
    let code = root.wait_exit(Duration::from_secs(30));
    let elapsed = t0.elapsed();
    root.assert_clean();
    // The pipes close when the process ends; give the readers a moment to finish, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !root.stdout.text().contains("reason ") && !root.stdout.text().contains("start error") {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stdout = root.stdout.text();
    let mut actors = HashMap::new();
    for line in stdout.lines().filter(|l| l.starts_with("summary ")) {
        let mut words = line.split_whitespace().skip(1);
        let actor = words.next().expect("actor name").to_string();
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        actors.insert(actor, fields);
    }
    let trace = std::fs::read_to_string(&tmp)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let _ = std::fs::remove_file(&tmp);
    Run {
        code,
        actors,
        stdout,
        stderr: root.stderr.text(),
        trace,
        elapsed,
    }
}

impl Run {
    fn field(&self, actor: &str, key: &str) -> u64 {
        self.actors
            .get(actor)
            .and_then(|f| f.get(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} for {actor} in:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Defines a test per isolation for one case.
macro_rules! both {
    ($case:ident, $check:expr) => {
        mod $case {
            use super::*;
            #[test]
            fn processes() {
                ($check)(run_case(stringify!($case), "processes"));
            }
            #[test]
            fn threads() {
                ($check)(run_case(stringify!($case), "threads"));
            }
        }
    };
}

both!(order, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.trace,
        [
            "startup A",
            "startup B",
            "startup C",
            "shutdown C",
            "shutdown B",
            "shutdown A"
        ],
        "children start in order and stop in reverse order"
    );
});

both!(drain, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (accepted, handled, dead) = (
        r.field("SLOW", "accepted"),
        r.field("SLOW", "handled"),
        r.field("SLOW", "dead"),
    );
    assert_eq!(accepted, 1000);
    assert_eq!(
        handled + dead,
        accepted,
        "every message is handled or a dead letter"
    );
    assert!(
        dead > 0,
        "a 5 ms handler cannot finish 1000 messages within a 300 ms stop deadline"
    );
    // The stop deadline (300 ms) plus the kill grace (200 ms), with a wide margin for a loaded machine.
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
});

both!(restart, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.field("CRASHER", "restarts"), 1);
    // The crash and the ping after the restart, both through the same address.
    assert_eq!(r.field("CRASHER", "handled"), 2);
    assert_eq!(r.field("CRASHER", "dead"), 0);
    assert!(
        r.stderr.contains("panicked: crash requested"),
        "the panic's message is logged:\n{}",
        r.stderr
    );
    assert_eq!(
        r.trace.iter().filter(|l| *l == "startup CRASHER").count(),
        2
    );
});

both!(intensity, |r: Run| {
    assert_eq!(
        r.code, 3,
        "past the intensity the root exits 3:\n{}",
        r.stderr
    );
    assert_eq!(r.field("LOOPER", "restarts"), 2);
    assert!(
        r.stdout.contains("reason restart intensity exceeded"),
        "{}",
        r.stdout
    );
});

both!(rest_for_one, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.field("A", "restarts"), 0, "started before B: untouched");
    assert_eq!(r.field("B", "restarts"), 1);
    assert_eq!(
        r.field("C", "restarts"),
        1,
        "started after B: restarted with it"
    );
});

both!(one_for_all, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    for actor in ["A", "B", "C"] {
        assert_eq!(r.field(actor, "restarts"), 1, "{actor}");
    }
});

both!(startup_fails, |r: Run| {
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains(
            "start error: FAILS failed to start: startup failed: the device is not there"
        ),
        "{}",
        r.stdout
    );
    // Fail fast: not at the 3 s start deadline (a wide margin for a loaded machine).
    assert!(
        r.elapsed < Duration::from_millis(2500),
        "took {:?}",
        r.elapsed
    );
    assert_eq!(
        r.trace,
        ["startup FAILS", "shutdown FAILS"],
        "shutdown runs after a failed startup"
    );
});

both!(startup_hangs, |r: Run| {
    assert_eq!(r.code, 2);
    assert!(
        r.stdout
            .contains("start error: HANGS did not start within 300ms"),
        "{}",
        r.stdout
    );
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
});

both!(myself, |r: Run| {
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.trace
            .iter()
            .filter(|l| l.contains("got reply"))
            .collect::<Vec<_>>(),
        ["ASKER got reply 1", "ASKER got reply 2"],
        "the server replied to the address the asker gave as its own, and the second reply, \
         sent to that same address after the asker crashed, reached its next incarnation"
    );
    assert_eq!(r.field("ASKER", "restarts"), 1);
    assert_eq!(
        r.field("ASKER", "accepted"),
        r.field("ASKER", "handled") + r.field("ASKER", "dead")
    );
});
