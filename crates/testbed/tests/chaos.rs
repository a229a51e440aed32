//! Chaos: actors flood each other while the test, at random moments, SIGKILLs, SIGSTOPs and
//! SIGCONTs random children (which the root restarts), then stops the system with a signal
//! to the root or to a random child. Every summary must reconcile exactly, nothing may hang
//! past its deadline, and no process may be left.
//!
//! Seeded: the seed is printed, and `MPACTOR_CHAOS_SEED=N` replays a run. `cargo test` runs a
//! short one; `MPACTOR_CHAOS_ROUNDS=20 cargo test -p mpactor-testbed --test chaos -- --nocapture` a
//! longer one (`MPACTOR_CHAOS_FAULTS` sets the faults per round).

mod common;

use common::{kill, Root, PATIENCE};
use std::time::{Duration, Instant};

/// xorshift64*: a small, seedable generator (the test needs no statistics, only replay).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const WORKERS: [&str; 2] = ["W1", "W2"];
const ACTORS: [&str; 5] = ["W1", "W2", "F1", "F2", "F3"];

/// What one round did.
#[derive(Default, Debug)]
struct Round {
    kills: u32,
    stops: u32,
    messages: u64,
    restarts: u64,
}

/// Signals `pid` only while it is still a process of this root (a pid is reused quickly).
fn signal_ours(root: &Root, pid: u32, signal: i32) -> bool {
    if root.is_gone(pid) {
        return false;
    }
    kill(pid, signal);
    true
}

fn one_round(seed: u64, faults: u32) -> Round {
    let mut rng = Rng(seed.max(1));
    let mut root = Root::testbed_recording(
        &format!("chaos-{seed}"),
        "run",
        &[
            "--intensity",
            "1000/60000",
            "--stop-timeout-ms",
            "2000",
            "--kill-grace-ms",
            "200",
            "--child",
            "W1:restart=permanent",
            "--child",
            "W2:restart=permanent,handle_ms=1",
            "--child",
            "F1:kind=flood,to=W1,restart=permanent",
            "--child",
            "F2:kind=flood,to=W2,restart=permanent",
            "--child",
            "F3:kind=flood,to=W1,restart=permanent,every_ms=1",
        ],
    );
    let context = |root: &Root| format!("seed={seed}\n{}", root.dump());
    for name in ACTORS {
        root.pid_of(name);
    }
    let mut round = Round::default();
    for _ in 0..faults {
        let name = ACTORS[rng.below(ACTORS.len() as u64) as usize];
        let started = root.log_lines(&[&format!(" {name} started")]).len();
        let pid = root.pid_of(name);
        // The fault schedule: random spacing is what the test injects, not a wait for an event.
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        match rng.below(10) {
            0..=4 => {
                if signal_ours(&root, pid, libc::SIGKILL) {
                    round.kills += 1;
                    root.wait_log_nth(&[&format!(" {name} started")], started + 1, PATIENCE);
                }
            }
            5..=7 => {
                if signal_ours(&root, pid, libc::SIGSTOP) {
                    round.stops += 1;
                    std::thread::sleep(Duration::from_millis(5 + rng.below(150)));
                    signal_ours(&root, pid, libc::SIGCONT);
                }
            }
            _ => {
                // Killed while stopped.
                if signal_ours(&root, pid, libc::SIGSTOP) {
                    round.stops += 1;
                    std::thread::sleep(Duration::from_millis(rng.below(50)));
                    if signal_ours(&root, pid, libc::SIGKILL) {
                        round.kills += 1;
                        root.wait_log_nth(&[&format!(" {name} started")], started + 1, PATIENCE);
                    }
                }
            }
        }
    }
    // The end: a signal to the root, or to any child (which stops the whole system).
    let t0 = Instant::now();
    match rng.below(4) {
        0 => root.signal(libc::SIGINT),
        1 => root.signal(libc::SIGTERM),
        2 => {
            root.signal(libc::SIGINT);
            root.signal(libc::SIGINT);
        }
        _ => {
            let name = ACTORS[rng.below(ACTORS.len() as u64) as usize];
            let pid = root.pid_of(name);
            if !signal_ours(&root, pid, libc::SIGTERM) {
                root.signal(libc::SIGTERM);
            }
        }
    }
    // The stop deadline is 2 s, the kill grace 0.2 s: the margin is for a loaded machine.
    let code = root.wait_code(Duration::from_secs(20));
    let took = t0.elapsed();
    assert_eq!(code, 0, "{}", context(&root));
    assert!(
        took < Duration::from_secs(10),
        "the stop took {took:?}\n{}",
        context(&root)
    );
    for name in ACTORS {
        let s = root.summary(name);
        assert!(s.reconciles(), "{name}: {s:?}\n{}", context(&root));
        round.messages += s.accepted;
        round.restarts += s.restarts;
    }
    assert!(
        root.log_lines(&["unaccounted"]).is_empty(),
        "{}",
        context(&root)
    );
    for name in WORKERS {
        assert!(root.summary(name).accepted > 0, "{}", context(&root));
    }
    root.assert_nothing_left();
    round
}

#[test]
fn chaos_every_summary_reconciles_and_nothing_is_left() {
    let rounds = env_number("MPACTOR_CHAOS_ROUNDS", 2);
    let faults = env_number("MPACTOR_CHAOS_FAULTS", 12) as u32;
    let first = env_number(
        "MPACTOR_CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let mut total = Round::default();
    for r in 0..rounds {
        let seed = first.wrapping_add(r);
        eprintln!("chaos round {r}: seed={seed}");
        let round = one_round(seed, faults);
        eprintln!("chaos round {r}: {round:?}, all reconciled");
        total.kills += round.kills;
        total.stops += round.stops;
        total.messages += round.messages;
        total.restarts += round.restarts;
    }
    eprintln!("chaos: rounds={rounds} first_seed={first} {total:?}: every summary reconciled, nothing left");
}
