//! Orphans and leftovers: children of a root killed with SIGKILL are gone within a second;
//! children started from a thread that ends are not killed with it; no bootstrap folder is
//! left; no zombie and no descriptor leak over 100 crash-and-restart cycles.

mod common;

use common::{assert_no_bootstrap_dir, number_after, Root, PATIENCE};
use std::time::{Duration, Instant};

#[test]
fn children_are_gone_within_a_second_of_the_root_being_killed() {
    // A busy child that ignores its stop too: only the orphan watch ends it.
    let mut root = Root::testbed(
        "orphans",
        &[
            "run",
            "--child",
            "A",
            "--child",
            "BUSY:fault=ignore-stop,after=0",
            "--child",
            "F:kind=flood,to=A,every_ms=1",
        ],
    );
    let children = [root.pid_of("A"), root.pid_of("BUSY"), root.pid_of("F")];
    root.wait_log(&["BUSY", "ignoring stop requests from now on"], PATIENCE);
    let t0 = Instant::now();
    root.signal(libc::SIGKILL);
    root.wait_exit(PATIENCE);
    // One second is the contract: the children notice within 100 ms (lifeline poll), stop
    // cleanly if they can, and exit hard ORPHAN_GRACE (300 ms) after noticing if they cannot.
    let gone = root.assert_gone(&children, Duration::from_secs(5));
    let took = t0.elapsed();
    eprintln!("orphans gone {took:?} after the root's SIGKILL");
    assert!(
        took < Duration::from_secs(1),
        "the children outlived their root by {took:?}\n{}",
        root.dump()
    );
    let _ = gone;
    root.wait_log(&["BUSY", "the root is gone: stopping"], PATIENCE);
}

#[test]
fn children_started_from_a_thread_that_ends_are_not_killed_with_it() {
    // The system is built in a thread that ends before it runs; TICKER ticks every 50 ms and
    // the root stops after 10 ticks: the children live on for half a second after the thread
    // ended. A child signalled by the thread's end would stop the system early.
    let mut root = Root::testbed(
        "thread-spawn",
        &[
            "run",
            "--spawn-in-thread",
            "--stop-after-ticks",
            "10",
            "--child",
            "A",
            "--child",
            "TICKER:kind=ticker,every_ms=50",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_out(&["spawning thread exited"], PATIENCE);
    assert!(
        root.stdout.text().contains("reason requested: 10 ticks"),
        "{}",
        root.dump()
    );
    assert!(root.log_lines(&["got SIG"]).is_empty(), "{}", root.dump());
    assert_eq!(root.summary("A").exit, "0");
    assert_eq!(root.summary("TICKER").exit, "0");
    root.assert_nothing_left();
}

/// The root's temp folder is empty after the run: no `mpactor-<pid>-*` bootstrap folder.
fn assert_tmp_empty(root: &Root) {
    let tmp = root.dir.join("tmp");
    assert_no_bootstrap_dir(&tmp, root.pid);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("the test's TMPDIR")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

#[test]
fn no_bootstrap_folder_is_left_after_a_normal_run() {
    let mut root = Root::testbed(
        "tmp-normal",
        &["run", "--stop-when-started", "--child", "A", "--child", "B"],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.assert_nothing_left();
    assert_tmp_empty(&root);
}

#[test]
fn no_bootstrap_folder_is_left_after_a_failed_start() {
    let mut root = Root::testbed(
        "tmp-failed",
        &["run", "--child", "A", "--child", "W:startup=fail"],
    );
    assert_eq!(root.wait_code(PATIENCE), 2, "{}", root.dump());
    root.assert_nothing_left();
    assert_tmp_empty(&root);
}

#[test]
fn no_bootstrap_folder_is_left_after_a_restart() {
    let mut root = Root::testbed(
        "tmp-restart",
        &[
            "run",
            "--child",
            "W:restart=permanent,fault=exit:1,after=20,alive",
            "--sample-at",
            "2",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    assert!(root.summary("W").restarts >= 2);
    root.assert_nothing_left();
    assert_tmp_empty(&root);
}

#[test]
fn no_zombie_and_no_descriptor_growth_over_100_crash_restart_cycles() {
    // W dies as soon as it has reported itself alive; the root samples its own descriptors
    // and zombie children after 5 restarts (everything lazily created exists by then) and
    // after 105.
    let mut root = Root::testbed(
        "crash-loop-100",
        &[
            "run",
            "--intensity",
            "1000/60000",
            "--sample-at",
            "5",
            "--sample-at",
            "105",
            "--child",
            "W:restart=permanent,fault=exit:1,after=0,alive",
        ],
    );
    assert_eq!(
        root.wait_code(Duration::from_secs(120)),
        0,
        "{}",
        root.dump()
    );
    let sample = |r: u32| -> (u64, u64) {
        let line = root.wait_out(&[&format!("sample at={r} ")], PATIENCE);
        (number_after(&line, "fds="), number_after(&line, "zombies="))
    };
    let (fds_5, zombies_5) = sample(5);
    let (fds_105, zombies_105) = sample(105);
    eprintln!("root fds: {fds_5} after 5 restarts, {fds_105} after 105");
    assert_eq!(zombies_5, 0, "{}", root.dump());
    assert_eq!(zombies_105, 0, "{}", root.dump());
    assert!(
        fds_105 <= fds_5,
        "the root's descriptors grew from {fds_5} to {fds_105} over 100 restarts"
    );
    assert!(root.summary("W").restarts >= 105);
    root.assert_nothing_left();
    assert_tmp_empty(&root);
}

#[test]
fn an_idle_orphan_is_woken_and_stops_cleanly() {
    // A and B wait in their inboxes with nothing to do: no poll wakes them. The root's death
    // closes their lifelines, and the lifeline wakes the blocked receive (a wake frame into
    // the actor's own inbox), so each stops cleanly, its shutdown recorded, long before the
    // orphan's hard exit (ORPHAN_GRACE after noticing), which would skip it.
    let mut root = Root::testbed_recording("orphan-idle", "run", &["--child", "A", "--child", "B"]);
    let children = [root.pid_of("A"), root.pid_of("B")];
    root.wait_record("A main_loop", PATIENCE);
    root.wait_record("B main_loop", PATIENCE);
    let t0 = Instant::now();
    root.signal(libc::SIGKILL);
    root.wait_exit(PATIENCE);
    root.assert_gone(&children, Duration::from_secs(5));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the children outlived their root by {took:?}\n{}",
        root.dump()
    );
    for name in ["A", "B"] {
        root.wait_record(&format!("{name} shutdown"), PATIENCE);
        root.wait_log(&[name, "Normal shutdown"], PATIENCE);
    }
    assert!(
        root.log_lines(&["exiting now"]).is_empty(),
        "an idle orphan was not woken: it exited hard\n{}",
        root.dump()
    );
}
