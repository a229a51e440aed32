//! Messages that reconcile: 100 000 through the quickstart example with a clean stop and with a
//! SIGINT mid-flood, a bounded send to a stopped actor, and a frame that fails to decode.

mod common;

use common::{
    example, number_after, quickstart_counts, quickstart_mid_flood, stopped_in_ms, test_dir, Root,
    PATIENCE,
};
use std::time::{Duration, Instant};

#[test]
fn quickstart_reconciles_100k_messages_on_a_clean_stop() {
    let mut root = Root::start(
        example("quickstart"),
        test_dir("qs-clean"),
        &["--messages", "100000"],
        |_| {},
    );
    assert_eq!(
        root.wait_code(Duration::from_secs(60)),
        0,
        "{}",
        root.dump()
    );
    assert_eq!(
        root.stdout.all().last().map(String::as_str),
        Some("quickstart: sent=100000 handled=100000 dead_letters=0"),
        "{}",
        root.dump()
    );
    root.assert_nothing_left();
}

#[test]
fn quickstart_reconciles_when_interrupted_mid_flood() {
    let mut root = quickstart_mid_flood("qs-sigint", false);
    let t0 = Instant::now();
    root.signal(libc::SIGINT);
    // The stop deadline is 3 s; the bound adds 2 s for a loaded machine to schedule the exit.
    assert_eq!(root.wait_code(Duration::from_secs(5)), 0, "{}", root.dump());
    let took = t0.elapsed();
    let (sent, handled, dead) = quickstart_counts(&root);
    assert!(
        sent > 0 && sent < 50_000_000,
        "interrupted mid-flood: sent={sent}"
    );
    assert_eq!(handled + dead, sent, "{}", root.dump());
    assert!(
        stopped_in_ms(&root) <= 3000,
        "the stop took longer than its deadline\n{}",
        root.dump()
    );
    root.wait_log(&["got SIGINT: stopping"], PATIENCE);
    eprintln!(
        "interrupted: sent={sent} handled={handled} dead_letters={dead}, exit after {took:?}"
    );
    root.assert_nothing_left();
}

#[test]
fn a_send_to_a_stopped_actor_returns_at_its_deadline() {
    let mut root = Root::testbed("send-stopped", &["send-stopped"]);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_out(&["stopped W pid=", "state=Some('T')"], PATIENCE);
    // Sends are accepted until the socket and the 8-message mailbox are full; then a
    // send_timeout of 200 ms gives up at its deadline (the upper bound is a margin for a
    // loaded machine, far from "blocked forever").
    let line = root.wait_out(&["send_timeout error=Timeout"], PATIENCE);
    let ms: u64 = number_after(&line, "after_ms=");
    let accepted: u64 = number_after(&line, "accepted=");
    assert!((200..1000).contains(&ms), "{line}");
    let line = root.wait_out(&["try_send error=Some(Full(..))"], PATIENCE);
    assert!(
        number_after::<u64>(&line, "after_us=") < 50_000,
        "try_send is immediate: {line}"
    );
    // After SIGCONT, a clean stop handles every accepted message.
    let w = root.summary("W");
    assert_eq!(w.accepted, accepted, "{}", root.dump());
    assert_eq!(w.handled, accepted, "{}", root.dump());
    assert_eq!(w.dead_letters, 0);
    root.assert_nothing_left();
}

#[test]
fn a_message_over_the_receivers_limit_is_refused_with_a_clear_error() {
    // W takes messages of at most one byte, encoded. FLOOD sends the numbers 0..1000: 0..=127
    // encode in one byte and go; 128..=999 take two and are refused in FLOOD's process.
    let mut root = Root::testbed(
        "too-large",
        &[
            "run",
            "--stop-when-sent",
            "--child",
            "W:max_bytes=1",
            "--child",
            "FLOOD:kind=flood,to=W,count=1000",
        ],
    );
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let w = root.summary("W");
    assert_eq!(w.accepted, 1000, "{w:?}");
    assert_eq!(w.handled, 128, "{w:?}");
    assert_eq!(w.refused, 872, "{w:?}");
    assert_eq!(
        w.dead_letters, 872,
        "refused messages are dead letters: {w:?}"
    );
    assert!(w.reconciles(), "{w:?}");
    // The sending process logs which actor, and why, without a line per message.
    root.wait_log(
        &[
            "ERROR",
            "FLOOD",
            "a message for W was refused and not sent",
            "larger than the actor's limit of 1 bytes",
        ],
        PATIENCE,
    );
    let said = root.log_lines(&["a message for W was refused"]).len();
    assert!((1..=12).contains(&said), "{said} lines\n{}", root.dump());
    // And the root's summary points at it.
    root.wait_log(&["W: 872 messages were refused by their senders"], PATIENCE);
    root.assert_nothing_left();
}

#[test]
fn a_frame_that_fails_to_decode_is_counted_not_fatal() {
    let mut root = Root::testbed("decode", &["decode"]);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    root.wait_log(&["dropped", "for TEXT that failed to decode"], PATIENCE);
    let text = root.summary("TEXT");
    assert_eq!(text.exit, "0", "the actor carried on and stopped cleanly");
    assert_eq!(
        text.decode_failures, 3,
        "each bad message counted: {text:?}"
    );
    assert_eq!(
        text.handled, 5,
        "the good messages after the bad ones: {text:?}"
    );
    // The three mistyped messages were accepted by a sender and never handed to TEXT: they
    // are dead letters, so the counts still reconcile.
    assert_eq!(text.accepted, 8, "{text:?}");
    assert!(text.reconciles(), "{text:?}\n{}", root.dump());
    assert!(
        root.log_lines(&["unaccounted"]).is_empty(),
        "{}",
        root.dump()
    );
    root.assert_nothing_left();
}
