//! What the testbed's integration tests share: start a root (the testbed or the quickstart
//! example) as a real process in a temp folder of its own, collect its output, wait for log
//! lines and its exit under deadlines, and make sure nothing it started is left behind, even
//! when a test fails (the guard SIGKILLs every process it learned of). The pieces every
//! crate's process tests use (output lines, `/proc`, signals, deadlines) are in
//! `mpactor-test-support`; what is here reads the testbed's own output (its record file, its
//! summary lines, the quickstart's counts).
//!
//! No sleep is used as synchronisation: every wait polls for an event (a line, a file, an
//! exit, a process gone) under a deadline.

#![allow(dead_code)]

pub use mpactor_test_support::{
    assert_no_bootstrap_dir, example, kill, pid_in, proc_state, processes_of, Lines, POLL,
};
use mpactor_test_support::{collect, cpu_ticks, has_env};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous default deadline for things that take milliseconds on an idle machine.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The testbed binary.
pub fn testbed() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mpactor-testbed"))
}

/// A fresh, empty folder for one test: `$TMPDIR/mpactor-it-<pid>-<n>-<name>`.
pub fn test_dir(name: &str) -> PathBuf {
    mpactor_test_support::fresh_dir("mpactor-it", name, &["tmp"])
}

/// A root process under test, with the guard that leaves nothing behind.
pub struct Root {
    child: Child,
    pub pid: u32,
    /// The test's own folder; the root's TMPDIR is `dir/tmp`.
    pub dir: PathBuf,
    pub stderr: Arc<Lines>,
    pub stdout: Arc<Lines>,
    readers: Vec<std::thread::JoinHandle<()>>,
    exit: Option<ExitStatus>,
    exe: PathBuf,
    started: Instant,
    /// The reading end of a stderr pipe that the test holds open and never reads.
    pub unread: Option<std::io::PipeReader>,
}

impl Root {
    /// Starts the testbed with `args` in a fresh test folder.
    pub fn testbed(name: &str, args: &[&str]) -> Root {
        let dir = test_dir(name);
        Root::start(testbed(), dir, args, |_| {})
    }

    /// Starts the testbed with `--dir <test folder>` before `args`.
    pub fn testbed_recording(name: &str, scenario: &str, args: &[&str]) -> Root {
        let dir = test_dir(name);
        let d = dir.to_string_lossy().into_owned();
        let mut all = vec![scenario, "--dir", d.as_str()];
        all.extend_from_slice(args);
        Root::start(testbed(), dir.clone(), &all, |_| {})
    }

    /// Starts `exe` with `args`, its TMPDIR `dir/tmp`, stdout and stderr collected; `extra`
    /// may adjust the command (a process group, the environment).
    pub fn start(
        exe: PathBuf,
        dir: PathBuf,
        args: &[&str],
        extra: impl FnOnce(&mut Command),
    ) -> Root {
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env("TMPDIR", dir.join("tmp"))
            .env_remove("MPACTOR_LOG")
            // The lines are read as text unless a test asks for JSON itself.
            .env_remove("MPACTOR_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        extra(&mut cmd);
        let mut child = cmd.spawn().expect("start the root");
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        let mut readers = vec![collect(
            child.stdout.take().expect("stdout"),
            stdout.clone(),
        )];
        // `extra` may have sent stderr elsewhere (a pipe nobody reads).
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, stderr.clone()));
        }
        Root {
            pid: child.id(),
            child,
            dir,
            stderr,
            stdout,
            readers,
            exit: None,
            exe,
            started: Instant::now(),
            unread: None,
        }
    }

    /// Starts the testbed like [`Root::testbed_recording`], with its stderr (and so every
    /// process's log) a pipe that the test holds open and never reads: a stuck log collector.
    pub fn testbed_stderr_unread(name: &str, scenario: &str, args: &[&str]) -> Root {
        let dir = test_dir(name);
        let d = dir.to_string_lossy().into_owned();
        let mut all = vec![scenario, "--dir", d.as_str()];
        all.extend_from_slice(args);
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let mut root = Root::start(testbed(), dir.clone(), &all, move |cmd| {
            cmd.stderr(writer);
        });
        root.unread = Some(reader);
        root
    }

    /// Bytes waiting unread in the [`Root::unread`] pipe.
    pub fn unread_bytes(&self) -> usize {
        self.unread
            .as_ref()
            .map_or(0, mpactor_test_support::pipe_unread_bytes)
    }

    /// Both outputs, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "--- stderr of {} (pid {}):\n{}\n--- stdout:\n{}\n--- record:\n{}",
            self.exe.display(),
            self.pid,
            self.stderr.text(),
            self.stdout.text(),
            self.record().join("\n")
        )
    }

    /// The lines of the testbed's record file (lifecycle steps, faults).
    pub fn record(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("record.txt"))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Waits for the first line of the record file that starts with `prefix`.
    pub fn wait_record(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.record().into_iter().find(|l| l.starts_with(prefix)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no record line starting {prefix:?} within {within:?}\n{}",
                self.dump()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the first stderr line containing every one of `parts`.
    pub fn wait_log(&self, parts: &[&str], within: Duration) -> String {
        self.wait_log_nth(parts, 1, within)
    }

    /// Waits for the `n`th stderr line containing every one of `parts`.
    pub fn wait_log_nth(&self, parts: &[&str], n: usize, within: Duration) -> String {
        self.wait_in(&self.stderr, "log", parts, n, within)
    }

    /// Waits for the first stdout line containing every one of `parts`.
    pub fn wait_out(&self, parts: &[&str], within: Duration) -> String {
        self.wait_in(&self.stdout, "stdout", parts, 1, within)
    }

    fn wait_in(
        &self,
        lines: &Lines,
        what: &str,
        parts: &[&str],
        n: usize,
        within: Duration,
    ) -> String {
        let found = lines.wait_for(within, n, |l| parts.iter().all(|p| l.contains(p)));
        match found {
            Some(found) => found[n - 1].clone(),
            None => panic!(
                "no {what} line #{n} with {parts:?} within {within:?}\n{}",
                self.dump()
            ),
        }
    }

    /// Stderr lines containing every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.stderr
            .all()
            .into_iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .collect()
    }

    /// The pid of actor `name`'s latest incarnation, from the root's "NAME started" line.
    pub fn pid_of(&self, name: &str) -> u32 {
        let line = self.wait_log(&[&format!(" {name} started")], PATIENCE);
        let all = self.log_lines(&[&format!(" {name} started"), "pid="]);
        pid_in(all.last().unwrap_or(&line)).unwrap_or_else(|| panic!("no pid in {line:?}"))
    }

    /// Every pid the log named as started (all incarnations of all actors).
    pub fn child_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .stderr
            .all()
            .iter()
            .filter(|l| l.contains(" started") && l.contains("pid="))
            .filter_map(|l| pid_in(l))
            .filter(|p| *p != self.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends `signal` to the root.
    pub fn signal(&self, signal: i32) {
        kill(self.pid, signal);
    }

    /// Waits for the root's exit (and reaps it), at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(st) = self.exit {
            return st;
        }
        let Some(st) = mpactor_test_support::wait_exit(&mut self.child, within) else {
            panic!("the root did not exit within {within:?}\n{}", self.dump());
        };
        self.exit = Some(st);
        self.finish_readers();
        st
    }

    /// Waits for the exit and returns its code (panics if the root was killed by a signal).
    pub fn wait_code(&mut self, within: Duration) -> i32 {
        let st = self.wait_exit(within);
        st.code()
            .unwrap_or_else(|| panic!("the root ended without a code: {st:?}\n{}", self.dump()))
    }

    /// The pipes close when every process holding them is gone: read to the end, bounded.
    fn finish_readers(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }

    /// How long since the root was started.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// The root's stdout line starting with `summary NAME `, as key=value pairs.
    pub fn summary(&self, name: &str) -> Summary {
        let prefix = format!("summary {name} ");
        let line = self
            .stdout
            .all()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no summary for {name}\n{}", self.dump()));
        Summary::parse(&line)
    }

    /// The environment entry every process of this root carries: `TMPDIR=<dir>/tmp`.
    pub fn marker(&self) -> String {
        format!("TMPDIR={}", self.dir.join("tmp").display())
    }

    /// True once `pid` (a process of this root) has ended. A pid now held by a process that is
    /// not of this root (reused) has ended too. A zombie whose parent is init counts as ended
    /// (init reaps it, here every couple of seconds); a zombie of this root while it lives
    /// does not: reaping is the root's job.
    pub fn is_gone(&self, pid: u32) -> bool {
        match proc_state(pid) {
            None => true,
            Some(('Z', ppid)) => ppid != self.pid || self.exit.is_some(),
            Some(_) => !has_env(pid, &self.marker()),
        }
    }

    /// Waits until every one of `pids` is gone, at most `within`; returns how long it took.
    pub fn assert_gone(&self, pids: &[u32], within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            let left: Vec<(u32, Option<(char, u32)>)> = pids
                .iter()
                .filter(|p| !self.is_gone(**p))
                .map(|p| (*p, proc_state(*p)))
                .collect();
            if left.is_empty() {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "processes still there after {within:?}: {left:?} (pid, (state, ppid))\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Asserts that no process of this root is left (the ones its log named, and any other
    /// that carries its environment) and that its bootstrap folder is gone.
    pub fn assert_nothing_left(&mut self) {
        if self.exit.is_none() {
            self.wait_exit(PATIENCE);
        }
        let mut pids = self.child_pids();
        pids.extend(processes_of(&self.marker()));
        self.assert_gone(&pids, Duration::from_secs(5));
        assert_no_bootstrap_dir(&self.dir.join("tmp"), self.pid);
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Whatever happened, nothing of this test may be left: the root and every child it
        // reported, each only if it still runs our binary (a pid may have been reused).
        if self.exit.is_none() {
            let _ = self.child.kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        // Identified by their environment (TMPDIR is this test's own folder), not by pid alone:
        // pids wrap around quickly here (pid_max 32768) and another test's may be reused.
        mpactor_test_support::kill_all_of(&self.marker());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One `summary` line of the testbed.
#[derive(Debug)]
pub struct Summary {
    pub pid: u32,
    pub exit: String,
    pub accepted: u64,
    pub handled: u64,
    pub dead_letters: u64,
    pub lost: u64,
    /// Accepted by a sending process and never shipped: lost with a killed sender.
    pub unsent: u64,
    pub decode_failures: u64,
    pub refused: u64,
    pub restarts: u64,
}

impl Summary {
    pub fn parse(line: &str) -> Summary {
        let get = |key: &str| -> String {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        };
        let num = |key: &str| -> u64 { get(key).parse().expect("a number") };
        Summary {
            pid: num("pid") as u32,
            exit: get("exit"),
            accepted: num("accepted"),
            handled: num("handled"),
            dead_letters: num("dead_letters"),
            lost: num("lost"),
            unsent: num("unsent"),
            decode_failures: num("decode_failures"),
            refused: num("refused"),
            restarts: num("restarts"),
        }
    }

    /// accepted = handled + dead letters.
    pub fn reconciles(&self) -> bool {
        self.accepted == self.handled + self.dead_letters
    }
}

/// The application-clock stamp (`M:SS.mmm`) of a log line, in milliseconds.
pub fn stamp_ms(line: &str) -> f64 {
    let word = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no stamp in {line:?}"));
    let (min, rest) = word.split_once(':').expect("M:SS.mmm");
    let min: f64 = min.parse().expect("minutes");
    let secs: f64 = rest.parse().expect("seconds");
    min * 60_000.0 + secs * 1000.0
}

/// Puts the command in a process group of its own (a terminal's job), so a test can signal
/// the whole group as a Ctrl-C does.
pub fn own_process_group(cmd: &mut Command) {
    cmd.process_group(0);
}

// ---------------------------------------------------------------------------------------------
// The quickstart example.

/// `sent=S handled=H dead_letters=D` from the quickstart's last stdout line, which must have
/// exactly this shape.
pub fn quickstart_counts(root: &Root) -> (u64, u64, u64) {
    let out = root.stdout.all();
    let last = out
        .last()
        .unwrap_or_else(|| panic!("no stdout\n{}", root.dump()))
        .clone();
    let words: Vec<&str> = last.split(' ').collect();
    let field = |i: usize, key: &str| -> u64 {
        words
            .get(i)
            .and_then(|w| w.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("last line is not `quickstart: sent=S handled=H dead_letters=D`: {last:?}")
            })
    };
    assert_eq!(words.len(), 4, "{last:?}");
    assert_eq!(words[0], "quickstart:", "{last:?}");
    (
        field(1, "sent="),
        field(2, "handled="),
        field(3, "dead_letters="),
    )
}

/// Starts the quickstart with a flood that cannot finish soon, and returns once the producer
/// is demonstrably mid-flood (it has used 50 ms of CPU sending).
pub fn quickstart_mid_flood(name: &str, group: bool) -> Root {
    let root = Root::start(
        example("quickstart"),
        test_dir(name),
        &["--messages", "50000000"],
        |cmd| {
            if group {
                own_process_group(cmd);
            }
        },
    );
    let producer = root.pid_of("PRODUCER");
    let deadline = Instant::now() + PATIENCE;
    while cpu_ticks(producer) < 5 {
        assert!(
            Instant::now() < deadline,
            "the producer never got going\n{}",
            root.dump()
        );
        std::thread::sleep(POLL);
    }
    root
}

/// The root's "stopped in N ms" figure.
pub fn stopped_in_ms(root: &Root) -> u64 {
    let line = root.wait_log(&["stopped in "], PATIENCE);
    number_after(&line, "stopped in ")
}

/// The number right after `key` in `line` (`after_ms=503:` gives 503, `at_ms=12.5 ` 12.5);
/// panics, showing the line, when there is none.
pub fn number_after<T: std::str::FromStr>(line: &str, key: &str) -> T {
    mpactor_test_support::number_after(line, key)
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}
