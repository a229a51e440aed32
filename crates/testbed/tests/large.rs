//! Large messages (issue 12): 1 MiB payloads (`Vec<u8>` encoded as bytes) through real
//! processes while the consumer or the producer is killed (SIGKILL) or stopped (SIGSTOP)
//! mid-transfer; 10 000 payloads of 128 KiB leave no shared memory behind, also across
//! crashes, and none in the idle consumer either (its inbox keeps regions mapped between
//! messages only while their producer keeps them).

mod common;

use common::{kill, number_after, stopped_in_ms, Root, PATIENCE};
use std::time::{Duration, Instant};

/// The stop deadline of these runs (the default) and the margin a loaded machine needs on top.
const STOP_MS: u64 = 3000;

/// The record lines of `who` that start with `step`, in order.
fn records(root: &Root, who: &str, step: &str) -> Vec<String> {
    let prefix = format!("{who} {step}");
    root.record()
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

/// Waits until SINK recorded more than `n` "got" lines; returns how many there are then.
fn wait_sink_progress(root: &Root, n: usize) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = records(root, "SINK", "got ").len();
        if got > n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "SINK got nothing more after {n} notes\n{}",
            root.dump()
        );
        std::thread::sleep(common::POLL);
    }
}

/// The pid of the `n`th (1-based) incarnation of `name`, from the root's "started" lines.
fn nth_pid(root: &Root, name: &str, n: usize) -> u32 {
    let line = root.wait_log_nth(&[&format!(" {name} started"), "pid="], n, PATIENCE);
    common::pid_in(&line).unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// SIGTERM to the root, then: exit 0, the stop within its deadline, SINK's summary
/// reconciled, no payload corrupted, nothing left running. Returns SINK's summary.
fn stop_and_check(root: &mut Root) -> common::Summary {
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    let stop = stopped_in_ms(root);
    assert!(stop <= STOP_MS, "the stop took {stop} ms\n{}", root.dump());
    let sink = root.summary("SINK");
    assert!(sink.reconciles(), "{sink:?}\n{}", root.dump());
    assert!(
        root.log_lines(&["unaccounted"]).is_empty(),
        "{}",
        root.dump()
    );
    assert!(
        records(root, "SINK", "corrupt").is_empty(),
        "a payload was overwritten in flight\n{}",
        root.dump()
    );
    root.assert_nothing_left();
    sink
}

#[test]
fn a_consumer_killed_mid_transfer_receives_again_after_each_restart() {
    // The case of the issue: 1 MiB payloads to a Permanent consumer, killed six times. Before,
    // the sixth incarnation never received anything (the producer's writer stuck in a
    // fragmented send) and the stop ran into its deadline.
    let mut root = Root::testbed_recording(
        "large-consumer-kill",
        "run",
        &[
            "--intensity",
            "20/5000",
            "--child",
            "SINK:kind=sink,restart=permanent,note_every=10",
            "--child",
            "PRODUCER:kind=bigflood,to=SINK,size=1048576",
        ],
    );
    for i in 1..=6 {
        let pid = nth_pid(&root, "SINK", i);
        // Mid-transfer: this incarnation is receiving.
        root.wait_record(&format!("SINK first_message pid={pid}"), PATIENCE);
        kill(pid, libc::SIGKILL);
        root.assert_gone(&[pid], PATIENCE);
    }
    let last = nth_pid(&root, "SINK", 7);
    root.wait_record(&format!("SINK first_message pid={last}"), PATIENCE);
    let sink = stop_and_check(&mut root);
    assert_eq!(sink.restarts, 6, "{sink:?}");
    assert!(sink.handled > 0);
    // The producer was never killed: everything it sent is accounted for on the consumer's
    // side (handled, lost with a killed incarnation, or drained from the inbox).
    let sent: u64 = number_after(&root.wait_out(&["sent PRODUCER="], PATIENCE), "PRODUCER=");
    assert_eq!(sink.accepted, sent, "{sink:?}");
}

#[test]
fn a_producer_killed_mid_transfer_loses_at_most_its_queue_and_the_next_one_goes_on() {
    // The byte budget of 8 MiB bounds what a killed producer takes with it: its queue. It is
    // the SINK's (`mailbox_bytes` bounds what is queued towards an actor); until 2026-12-02
    // this test set it on the PRODUCER, so the SINK's default of 256 MiB applied and a kill
    // lost 1-31 payloads, however far behind the SINK was (over the bound below in 2 of 5
    // runs of a loaded machine).
    let mut root = Root::testbed_recording(
        "large-producer-kill",
        "run",
        &[
            "--intensity",
            "20/5000",
            "--child",
            "SINK:kind=sink,note_every=10,mailbox_bytes=8388608",
            "--child",
            "PRODUCER:kind=bigflood,to=SINK,size=1048576,restart=permanent",
        ],
    );
    let kills = 4;
    for i in 1..=kills {
        let pid = nth_pid(&root, "PRODUCER", i);
        root.wait_record(&format!("PRODUCER first_send pid={pid}"), PATIENCE);
        // Mid-transfer: the sink is receiving this incarnation's payloads.
        let before = records(&root, "SINK", "got ").len();
        wait_sink_progress(&root, before);
        kill(pid, libc::SIGKILL);
        root.assert_gone(&[pid], PATIENCE);
    }
    // The last incarnation's payloads arrive: nothing of the killed ones blocks the sink.
    let pid = nth_pid(&root, "PRODUCER", kills + 1);
    root.wait_record(&format!("PRODUCER first_send pid={pid}"), PATIENCE);
    let before = records(&root, "SINK", "got ").len();
    wait_sink_progress(&root, before + 1);
    let sink = stop_and_check(&mut root);
    assert!(sink.handled > 0);
    // What the killed producers took with them (`unsent`: accepted, never shipped) is at most
    // their queues: 8 MiB of budget and the payload its writer holds between the queue and the
    // socket. A restarted producer charges its first payloads at the size the actor's earlier
    // senders published (`Block::typical`); the very first incarnation lets one unsized
    // payload go at a time until its writer has measured one (before, it queued as many as
    // its writer took to encode the first). Measured over four kills with the budget on the
    // SINK: 8-23 in eight runs (one kill: 0-7). Without the byte budget, a killed
    // producer took ~300 payloads of 1 MiB with it (its 4096-message queue). Other dead
    // letters would be what was still in the sink's inbox at the stop: they depend on how far
    // behind the sink is, not on the kills.
    eprintln!("producer kills: {sink:?}");
    assert!(
        sink.unsent <= kills as u64 * 16,
        "a killed sender lost more than its queue: {sink:?}\n{}",
        root.stdout.text()
    );
}

#[test]
fn a_producer_stopped_mid_transfer_stalls_nothing() {
    // Two producers; one is SIGSTOPped in the middle of its flood. The sink goes on receiving
    // the other's payloads (a frame is never left half-read), and the system stops in order
    // with the stopped one still stopped.
    let mut root = Root::testbed_recording(
        "large-producer-stop",
        "run",
        &[
            "--stop-timeout-ms",
            "2000",
            "--child",
            "SINK:kind=sink,note_every=10",
            "--child",
            "P1:kind=bigflood,to=SINK,size=1048576",
            "--child",
            "P2:kind=bigflood,to=SINK,size=1048576",
        ],
    );
    let p1 = root.pid_of("P1");
    root.wait_record(&format!("P1 first_send pid={p1}"), PATIENCE);
    root.wait_record("P2 first_send", PATIENCE);
    kill(p1, libc::SIGSTOP);
    let deadline = Instant::now() + PATIENCE;
    while common::proc_state(p1).is_some_and(|(s, _)| s != 'T') {
        assert!(Instant::now() < deadline, "P1 never stopped");
        std::thread::sleep(common::POLL);
    }
    // Ten more notes (100 payloads) while P1 is stopped.
    let before = records(&root, "SINK", "got ").len();
    wait_sink_progress(&root, before + 10);
    root.signal(libc::SIGTERM);
    // The stop deadline (2 s) and the kill grace (300 ms), plus a margin for a loaded machine.
    let t0 = Instant::now();
    root.wait_exit(Duration::from_secs(10));
    assert!(t0.elapsed() < Duration::from_secs(6), "{}", root.dump());
    let sink = root.summary("SINK");
    assert!(sink.reconciles(), "{sink:?}\n{}", root.dump());
    assert!(
        records(&root, "SINK", "corrupt").is_empty(),
        "{}",
        root.dump()
    );
    assert!(
        root.log_lines(&["unaccounted"]).is_empty(),
        "{}",
        root.dump()
    );
    root.assert_nothing_left();
}

#[test]
fn a_consumer_stopped_mid_transfer_holds_the_producer_within_its_bounds() {
    // SINK is SIGSTOPped while 1 MiB payloads flow: the producer's sends time out at their
    // deadline once 8 MiB are on their way (the byte budget), nothing else gives; after
    // SIGCONT the sink receives again and the stop is orderly.
    let mut root = Root::testbed_recording(
        "large-consumer-stop",
        "run",
        &[
            "--child",
            "SINK:kind=sink,note_every=10,mailbox_bytes=8388608",
            "--child",
            "PRODUCER:kind=bigflood,to=SINK,size=1048576",
        ],
    );
    let sink = root.pid_of("SINK");
    root.wait_record(&format!("SINK first_message pid={sink}"), PATIENCE);
    kill(sink, libc::SIGSTOP);
    let line = root.wait_record("PRODUCER send_timeout", PATIENCE);
    let accepted_then: u64 = number_after(&line, "sent=");
    let received_then = records(&root, "SINK", "got ").len();
    kill(sink, libc::SIGCONT);
    wait_sink_progress(&root, received_then + 2);
    let summary = stop_and_check(&mut root);
    assert!(summary.accepted > accepted_then, "{summary:?}");
    // While the sink was stopped, the producer had at most the budget on its way: the sink
    // had received all but that much when the producer's send first timed out.
    let got_then = received_then as u64 * 10;
    assert!(
        accepted_then <= got_then + 8 + 8 + 10 + 2,
        "accepted {accepted_then} with only ~{got_then} received: the byte budget did not hold"
    );
}

/// `fds=N maps=M` of a record line.
fn memfds_of(line: &str) -> (u64, u64) {
    (number_after(line, "fds="), number_after(line, "maps="))
}

fn no_shared_memory_left(test: &str, kills: usize) {
    let mut root = Root::testbed_recording(
        test,
        "run",
        &[
            "--sample-memfds",
            "--intensity",
            "20/5000",
            "--child",
            "SINK:kind=sink,restart=permanent,note_every=500",
            "--child",
            "PRODUCER:kind=bigflood,to=SINK,size=131072,count=10000",
        ],
    );
    for i in 1..=kills {
        let pid = nth_pid(&root, "SINK", i);
        let before = records(&root, "SINK", "got ").len();
        wait_sink_progress(&root, before);
        kill(pid, libc::SIGKILL);
        root.assert_gone(&[pid], PATIENCE);
    }
    let last = nth_pid(&root, "SINK", kills + 1);
    // All 10 000 sent, and the producer's writer idle: what it holds then.
    let done = root.wait_record("PRODUCER memfds_done", Duration::from_secs(120));
    let start = root.wait_record("PRODUCER memfds_start", PATIENCE);
    assert_eq!(
        memfds_of(&done),
        memfds_of(&start),
        "the producer holds shared memory after the traffic ({done} / {start})\n{}",
        root.dump()
    );
    // Idle, without a stop: the producer's writer closed its regions, and the sink's inbox
    // let go of its mappings of them (it keeps a region mapped between messages): the sink
    // holds what it held when it started.
    let back = format!(" pid={last}");
    let deadline = Instant::now() + PATIENCE;
    while !records(&root, "SINK", "memfds_back")
        .iter()
        .any(|l| l.ends_with(&back))
    {
        assert!(
            Instant::now() < deadline,
            "SINK pid={last} still holds shared memory after the traffic\n{}",
            root.dump()
        );
        std::thread::sleep(common::POLL);
    }
    root.signal(libc::SIGTERM);
    assert_eq!(root.wait_code(PATIENCE), 0, "{}", root.dump());
    // The last sink incarnation, at its stop, holds what it held when it started.
    let of_last = |step: &str| {
        records(&root, "SINK", step)
            .into_iter()
            .find(|l| l.ends_with(&format!(" pid={last}")))
            .unwrap_or_else(|| panic!("no {step} of SINK pid={last}\n{}", root.dump()))
    };
    let (sink_start, sink_stop) = (of_last("memfds_start"), of_last("memfds_stop"));
    assert_eq!(
        memfds_of(&sink_start),
        memfds_of(&sink_stop),
        "{}",
        root.dump()
    );
    // The root drained what was left in the inbox: nothing of it is left mapped.
    let r0 = root.wait_out(&["memfds root when=started"], PATIENCE);
    let r1 = root.wait_out(&["memfds root when=stopped"], PATIENCE);
    let (f0, m0) = memfds_of(&r0);
    let (f1, m1) = memfds_of(&r1);
    assert!(f1 <= f0 && m1 <= m0, "{r0} / {r1}\n{}", root.dump());
    let sink = root.summary("SINK");
    assert_eq!(sink.accepted, 10_000, "{sink:?}");
    assert!(sink.reconciles(), "{sink:?}\n{}", root.dump());
    if kills == 0 {
        assert_eq!(sink.handled, 10_000, "{sink:?}");
    }
    assert!(
        records(&root, "SINK", "corrupt").is_empty(),
        "{}",
        root.dump()
    );
    root.assert_nothing_left();
}

#[test]
fn ten_thousand_large_messages_leave_no_shared_memory_behind() {
    no_shared_memory_left("large-memfds", 0);
}

#[test]
fn ten_thousand_large_messages_across_crashes_leave_no_shared_memory_behind() {
    no_shared_memory_left("large-memfds-crash", 3);
}
