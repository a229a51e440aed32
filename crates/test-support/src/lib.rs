//! What the process tests of mpactor's crates share (`actor-ipc`, `actor-hvac` and the
//! testbed each start real roots from built binaries): a child's output collected line by
//! line ([`Lines`]), waits that poll under a deadline ([`wait_until`], [`wait_exit`]), the
//! processes of a run found in `/proc` by their environment ([`processes_of`]) and signalled
//! ([`kill`], [`kill_group`]), the built examples ([`example`]), fresh folders
//! ([`fresh_dir`]), leftover checks ([`assert_no_bootstrap_dir`]) and the numbers tests read
//! out of log lines ([`pid_in`], [`number_after`]).
//!
//! No sleep here is synchronisation: every wait looks again at an event (a line, an exit, a
//! process gone) until its deadline. What only one crate's tests need (the testbed's record
//! file, hvac's TCP client, actor-ipc's raw bootstrap connections) stays in that crate's
//! `tests/common`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod lines;
mod procs;

pub use lines::{collect, Lines};
pub use procs::{
    alive_as, cpu_ticks, group_alive, has_env, kill, kill_all_of, kill_group, pipe_unread_bytes,
    proc_stat, proc_state, processes_of,
};

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How often the polling waits look again.
pub const POLL: Duration = Duration::from_millis(5);

/// The built example `name`: `<target>/<profile>/examples/<name>` next to the running test's
/// `<target>/<profile>/deps/<test>`. `cargo test` builds a package's examples before it runs
/// its tests; the panic says so when one is missing.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "the example {} is missing: run the tests with `cargo test`, which builds the \
         examples first (or `cargo build --examples`)",
        path.display()
    );
    path
}

/// A fresh, empty folder `$TMPDIR/<prefix>-<pid>-<n>[-<name>]`, unique within this test
/// binary (`n` counts), with the subfolders `subdirs` made in it.
pub fn fresh_dir(prefix: &str, name: &str, subdirs: &[&str]) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let leaf = if name.is_empty() {
        format!("{prefix}-{pid}-{n}")
    } else {
        format!("{prefix}-{pid}-{n}-{name}")
    };
    let dir = std::env::temp_dir().join(leaf);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's folder");
    for sub in subdirs {
        std::fs::create_dir_all(dir.join(sub)).expect("create the test's subfolder");
    }
    dir
}

/// Calls `look` every `every` until it gives something or `within` has passed (then `None`;
/// `look` is always called at least once).
pub fn wait_until<T>(
    within: Duration,
    every: Duration,
    mut look: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = look() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Waits for `child`'s exit (and reaps it), at most `within`: `None` if it still runs.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    wait_until(within, POLL, || child.try_wait().ok().flatten())
}

/// Asserts that no `mpactor-<root pid>-*` bootstrap folder is left in `tmp` (the root's
/// TMPDIR).
pub fn assert_no_bootstrap_dir(tmp: &Path, root_pid: u32) {
    let prefix = format!("mpactor-{root_pid}-");
    let left: Vec<PathBuf> = std::fs::read_dir(tmp)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "bootstrap folders left behind: {left:?}");
}

/// The number after `pid=` in a log line (or after `(pid ` in "X (pid N) ...").
pub fn pid_in(line: &str) -> Option<u32> {
    let rest = line
        .split("pid=")
        .nth(1)
        .or_else(|| line.split("(pid ").nth(1))?;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// The number right after the first `key` in `line` (`after_ms=503:` gives 503,
/// `at_ms=12.5 ` 12.5, `seq=7,` 7); `None` when there is none.
pub fn number_after<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    line.split(key)
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
        })
        .map(|n| n.trim_end_matches('.'))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_out_of_lines() {
        assert_eq!(pid_in("MAIN W started pid=42 x"), Some(42));
        assert_eq!(pid_in("W (pid 7) exited"), Some(7));
        assert_eq!(pid_in("nothing"), None);
        assert_eq!(
            number_after::<u64>("stopped in 503 ms.", "stopped in "),
            Some(503)
        );
        assert_eq!(
            number_after::<u64>("a after_ms=503: b", "after_ms="),
            Some(503)
        );
        assert_eq!(number_after::<f64>("at_ms=12.5 x", "at_ms="), Some(12.5));
        assert_eq!(number_after::<u64>("seq=7.", "seq="), Some(7));
        assert_eq!(number_after::<u64>("seq=", "seq="), None);
    }

    #[test]
    fn a_wait_gives_up_at_its_deadline() {
        let t0 = Instant::now();
        assert_eq!(
            wait_until(Duration::from_millis(20), POLL, || None::<()>),
            None
        );
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(wait_until(Duration::ZERO, POLL, || Some(3)), Some(3));
    }
}
