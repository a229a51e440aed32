//! Request/reply from outside: the `ask` example run as a real root with its actors in their
//! own processes (and as threads), read back from its stdout and log.
//!
//! What an ask promises (docs/SEMANTICS.md): every question gets its own answer or an error
//! by its deadline; a late answer is a dead letter, never the answer to a later question;
//! a replier whose asker is gone carries on; the replies' counts reconcile in the summary.

mod common;

use common::{example, test_dir, Root, PATIENCE};
use std::collections::HashMap;

/// `key=value` words of the stdout line that starts with `prefix`.
fn fields(root: &Root, prefix: &str) -> HashMap<String, String> {
    let lines = root.stdout.all();
    let line = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no stdout line {prefix:?}\n{}", root.dump()));
    line.split(' ')
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number(f: &HashMap<String, String>, key: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {f:?}"))
}

fn asks_and_checks(name: &str, extra: &[&str]) {
    let mut args = vec!["--requests", "2000", "--checks"];
    args.extend_from_slice(extra);
    let mut root = Root::start(example("ask"), test_dir(name), &args, |_| {});
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());

    // The last line, exactly as documented.
    let out = root.stdout.all();
    let last = out.last().cloned().unwrap_or_default();
    let words: Vec<&str> = last.split(' ').collect();
    assert_eq!(words.len(), 5, "{last:?}");
    assert_eq!(words[0], "ask:", "{last:?}");
    let ask = fields(&root, "ask: ");
    assert_eq!(number(&ask, "requests"), 2000, "{last:?}");
    assert_eq!(number(&ask, "replies"), 2000, "{last:?}");
    assert!(number(&ask, "p50_us") <= number(&ask, "p99_us"), "{last:?}");

    // A question that times out says so, by its deadline (50 ms; the answer takes 300 ms).
    let timeout = fields(&root, "timeout: ");
    assert!(
        out.iter().any(|l| l.starts_with("timeout: ok")),
        "{}",
        root.dump()
    );
    assert!(number(&timeout, "after_ms") < 300, "{timeout:?}");
    // Its late answer (999) is not taken for the next question's.
    assert!(out.iter().any(|l| l == "late: ok"), "{}", root.dump());
    // The store answered an asker thread that was gone, and carried on answering.
    assert!(out.iter().any(|l| l == "gone: ok"), "{}", root.dump());

    // The replies reconcile: 2000 asks by the asker, 3 more taken by its checks, 2 by the
    // root; the late one and the one to the thread that was gone are the dead letters.
    let replies = fields(&root, "replies: ");
    let (sent, taken, dead) = (
        number(&replies, "sent"),
        number(&replies, "taken"),
        number(&replies, "dead_letters"),
    );
    assert_eq!(sent, taken + dead, "{replies:?}");
    assert_eq!(dead, 2, "{replies:?}");
    assert_eq!(taken, 2000 + 2 + 2, "{replies:?}");
    // The root's log says the same.
    root.wait_log(
        &[&format!(
            "summary: replies sent={sent} taken={taken} dead_letters={dead}"
        )],
        PATIENCE,
    );
    // And the store's own mailbox reconciles: every request handled, none lost.
    let kv = fields(&root, "kv: ");
    assert_eq!(
        number(&kv, "accepted"),
        number(&kv, "handled") + number(&kv, "dead_letters"),
        "{kv:?}"
    );
    assert_eq!(number(&kv, "dead_letters"), 0, "{kv:?}");
    root.assert_nothing_left();
}

#[test]
fn ask_between_process_actors_times_out_matches_ids_and_counts_dead_replies() {
    asks_and_checks("ask-processes", &[]);
}

#[test]
fn ask_between_thread_actors_behaves_the_same() {
    asks_and_checks("ask-threads", &["--threads"]);
}
