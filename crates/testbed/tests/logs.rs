//! Logs from the outside: records of a dependency that logs with the `log` or `tracing` crate,
//! inside an actor's process (and the root's, and a thread actor's), come out on stderr with
//! the actor's name, as text and as JSON; the JSON format reaches every process whether the
//! environment (`MPACTOR_LOG_FORMAT`) or the command line (`SystemConfig::log_format`) chose
//! it; `--log-level` and `--log-format` are listed in `--help` and check their values.

mod common;

use common::{example, test_dir, testbed, Root, PATIENCE};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// The testbed's stand-in for a library: its records' target.
const TARGET: &str = "mpactor_testbed::dependency";

fn log_warning(caller: &str) -> String {
    format!("log warning from a dependency, called by {caller}")
}

fn tracing_warning(caller: &str) -> String {
    format!("tracing warning from a dependency, called by {caller}")
}

/// A root with a DEPENDENT child `DEP` (its startup calls the dependency), the root calling it
/// too, stopping once DEP started; `env` is added to the environment of every process.
fn run_dependent(name: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Root {
    let mut args = vec![
        "run",
        "--stop-when-started",
        "--root-dependency",
        "--child",
        "DEP:kind=dependent",
    ];
    args.extend_from_slice(extra_args);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut root = Root::start(testbed(), test_dir(name), &args, move |cmd| {
        cmd.envs(env);
    });
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root
}

/// Every stderr line, each of which must be one JSON object with the fixed keys.
fn json_lines(root: &Root) -> Vec<Value> {
    let lines = root.stderr.all();
    assert!(!lines.is_empty(), "no log at all\n{}", root.dump());
    lines
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}\n{}", root.dump()));
            for key in ["time", "elapsed", "level", "actor", "pid", "msg"] {
                assert!(v.get(key).is_some(), "no {key:?} in {line}");
            }
            // `time` is the text column's M:SS.mmm of `elapsed` (seconds).
            let micros = (v["elapsed"].as_f64().expect("elapsed: seconds") * 1e6).round() as u64;
            let ms = micros / 1000;
            let time = format!("{}:{:02}.{:03}", ms / 60_000, (ms / 1000) % 60, ms % 1000);
            assert_eq!(v["time"], time.as_str(), "{line}");
            assert!(v["pid"].is_u64(), "{line}");
            v
        })
        .collect()
}

/// The one JSON record whose message is `msg`.
fn json_record<'a>(records: &'a [Value], msg: &str, root: &Root) -> &'a Value {
    let found: Vec<&Value> = records.iter().filter(|v| v["msg"] == msg).collect();
    assert_eq!(found.len(), 1, "{msg:?}\n{}", root.dump());
    found[0]
}

/// The pid a JSON record of the root gives for `name` ("NAME started", its `kv_pid`).
fn json_child_pid(records: &[Value], name: &str, root: &Root) -> u32 {
    let started = json_record(records, &format!("{name} started"), root);
    started["kv_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no kv_pid in {started}")) as u32
}

#[test]
fn a_dependencys_log_and_tracing_records_come_out_as_text_with_the_actors_name() {
    let mut root = run_dependent("logs-text", &[], &[]);
    for (caller, actor) in [("DEP", "DEP"), ("the root", "ROOT")] {
        // `WARN  0:00.007 DEP        log warning ... target=mpactor_testbed::dependency`
        let line = root.wait_log(&[&log_warning(caller)], PATIENCE);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "WARN", "{line}");
        assert_eq!(words[2], actor, "{line}");
        assert!(line.ends_with(&format!(" target={TARGET}")), "{line}");

        let line = root.wait_log(&[&tracing_warning(caller)], PATIENCE);
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "WARN", "{line}");
        assert_eq!(words[2], actor, "{line}");
        // The event's target, its span and its fields, with their values.
        assert!(
            line.ends_with(&format!(
                " target={TARGET} span=dependency_work attempt=3 cold=true"
            )),
            "{line}"
        );
    }
    // The level (info) filters the bridged records too.
    assert!(
        root.log_lines(&["debug line from a dependency"]).is_empty(),
        "{}",
        root.dump()
    );
    root.assert_nothing_left();
}

#[test]
fn a_dependencys_log_and_tracing_records_come_out_as_json_with_the_actors_name_and_pid() {
    let mut root = run_dependent("logs-json", &[], &[("MPACTOR_LOG_FORMAT", "json")]);
    let records = json_lines(&root);
    let dep = json_child_pid(&records, "DEP", &root);
    assert_ne!(dep, root.pid);

    for (caller, actor, pid) in [("DEP", "DEP", dep), ("the root", "ROOT", root.pid)] {
        let log = json_record(&records, &log_warning(caller), &root);
        assert_eq!(log["level"], "WARN", "{log}");
        assert_eq!(log["actor"], actor, "{log}");
        assert_eq!(log["pid"], pid, "{log}");
        assert_eq!(log["target"], TARGET, "{log}");

        let ev = json_record(&records, &tracing_warning(caller), &root);
        assert_eq!(ev["level"], "WARN", "{ev}");
        assert_eq!(ev["actor"], actor, "{ev}");
        assert_eq!(ev["pid"], pid, "{ev}");
        assert_eq!(ev["target"], TARGET, "{ev}");
        assert_eq!(ev["span"], "dependency_work", "{ev}");
        // Typed: a number stays a number, a bool a bool.
        assert_eq!(ev["attempt"], 3, "{ev}");
        assert_eq!(ev["cold"], true, "{ev}");
    }
    // The runtime's own records of the child are JSON from the child's process too.
    let started = json_record(&records, "started", &root);
    assert_eq!(started["actor"], "DEP");
    assert_eq!(started["pid"], dep);
    assert!(
        !records
            .iter()
            .any(|v| v["msg"].as_str().is_some_and(|m| m.contains("debug line"))),
        "{}",
        root.dump()
    );
    root.assert_gone(&[dep], Duration::from_secs(5));
    root.assert_nothing_left();
}

#[test]
fn the_level_lets_a_dependencys_debug_records_through_when_asked() {
    let mut root = run_dependent(
        "logs-debug",
        &[],
        &[("MPACTOR_LOG", "debug"), ("MPACTOR_LOG_FORMAT", "json")],
    );
    let records = json_lines(&root);
    for caller in ["DEP", "the root"] {
        for which in ["log", "tracing"] {
            let msg = format!("{which} debug line from a dependency, called by {caller}");
            let rec = json_record(&records, &msg, &root);
            assert_eq!(rec["level"], "DEBUG", "{rec}");
        }
    }
    root.assert_nothing_left();
}

#[test]
fn a_thread_actors_dependency_records_carry_the_thread_actors_name() {
    let mut root = run_dependent(
        "logs-threads",
        &["--threads"],
        &[("MPACTOR_LOG_FORMAT", "json")],
    );
    let records = json_lines(&root);
    for (caller, actor) in [("DEP", "DEP"), ("the root", "ROOT")] {
        for msg in [log_warning(caller), tracing_warning(caller)] {
            let rec = json_record(&records, &msg, &root);
            assert_eq!(rec["actor"], actor, "{rec}");
            // One process: the root's.
            assert_eq!(rec["pid"], root.pid, "{rec}");
        }
    }
    root.assert_nothing_left();
}

#[test]
fn the_quickstarts_log_format_option_reaches_every_process() {
    // No MPACTOR_LOG_FORMAT: the command line sets SystemConfig::log_format, and the children
    // get the format in their setup.
    let mut root = Root::start(
        example("quickstart"),
        test_dir("logs-quickstart-json"),
        &["--messages", "1000", "--log-format", "JSON"],
        |_| {},
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert_eq!(common::quickstart_counts(&root), (1000, 1000, 0));
    let records = json_lines(&root);
    let mut pids = Vec::new();
    for actor in ["MAIN", "PRODUCER", "CONSUMER"] {
        let rec = records
            .iter()
            .find(|v| v["actor"] == actor)
            .unwrap_or_else(|| panic!("no record of {actor}\n{}", root.dump()));
        pids.push(rec["pid"].as_u64().expect("a pid"));
    }
    // Three processes: the root's and one per child.
    assert_eq!(pids[0], u64::from(root.pid), "{pids:?}");
    assert!(
        pids[1] != pids[0] && pids[2] != pids[0] && pids[1] != pids[2],
        "{pids:?}"
    );
    let children: Vec<u32> = pids[1..].iter().map(|p| *p as u32).collect();
    root.assert_gone(&children, Duration::from_secs(5));
    root.assert_nothing_left();
}

#[test]
fn help_lists_the_levels_the_formats_and_their_variables_and_bad_values_are_refused() {
    let out = Command::new(example("quickstart"))
        .arg("--help")
        .output()
        .expect("run quickstart --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--log-level <LOG_LEVEL>",
        "error",
        "warn",
        "info",
        "debug",
        "trace",
        "[env: MPACTOR_LOG=",
        "--log-format <LOG_FORMAT>",
        "json",
        "[env: MPACTOR_LOG_FORMAT=",
    ] {
        assert!(help.contains(word), "{word:?} not in --help:\n{help}");
    }
    // A bad level, from the command line or the environment, is a clear error: nothing starts.
    for (args, env, bad) in [
        (&["--log-level", "loud"][..], None, "loud"),
        (&[][..], Some(("MPACTOR_LOG", "loud")), "loud"),
        (&["--log-format", "xml"][..], None, "xml"),
        (&[][..], Some(("MPACTOR_LOG_FORMAT", "xml")), "xml"),
    ] {
        let dir = test_dir("logs-bad-value");
        let mut cmd = Command::new(example("quickstart"));
        cmd.args(["--messages", "10"])
            .args(args)
            .env("TMPDIR", dir.join("tmp"))
            .env_remove("MPACTOR_LOG")
            .env_remove("MPACTOR_LOG_FORMAT")
            .stdin(std::process::Stdio::null());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        // clap refuses before anything starts, so the run cannot hang; the wait is bounded
        // all the same.
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run quickstart");
        let deadline = std::time::Instant::now() + PATIENCE;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("quickstart {args:?} {env:?} did not exit");
            }
            std::thread::sleep(common::POLL);
        };
        let out = child.wait_with_output().expect("its output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(bad), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("possible values"), "{stderr}");
        assert!(!stderr.contains("started"), "{args:?} {env:?}: {stderr}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
