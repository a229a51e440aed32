//! A remote address from outside, through a real `nats-server` (ignored by default: it needs
//! one; `.ci/run` runs it with `--include-ignored`). Both nodes live in this test process
//! (two connections, as two roots would have); the actor is a thread of node `a`'s system.

use actor_core::SystemConfig;
use actor_core::{loops, Actor, ActorError, ChildOptions, ClusterConfig, Context, Isolation};
use actor_ipc::{Addr, Registry, ReplyTo, System};
use actor_nats::testkit::NatsServer;
use actor_nats::{Cluster, LookupError, RemoteExt};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Holds every message until the test releases it: the mailbox fills up for certain.
static RELEASE: AtomicBool = AtomicBool::new(false);

struct Blocked;

impl Actor for Blocked {
    type Args = ();
    type Msg = u64;
    type Event = ();
    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Blocked)
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |_, _, _| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
    }
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_remote_address_is_bounded_typed_and_accounted() {
    let server = NatsServer::start().expect("a nats-server");
    let url = server.url();
    let registry = Registry::new().run_if_child();
    let config = SystemConfig::new("T").isolation(Isolation::Threads);
    let mut system = System::<()>::new(registry, config).expect("a system");
    let blocked = system
        .spawn_with::<Blocked>("BLOCKED", (), ChildOptions::default().mailbox_capacity(4))
        .expect("started");
    let a = Cluster::join(&ClusterConfig::new(&url, "t", "a")).expect("joined");
    a.publish("blocked", &blocked).expect("published");
    let b = Cluster::join(&ClusterConfig::new(&url, "t", "b")).expect("joined");

    // Typed: the name with another message type, or an unknown name, is refused.
    match b.lookup::<String>("blocked", Duration::from_secs(10)) {
        Err(LookupError::WrongType { takes, .. }) => assert_eq!(takes, "u64"),
        other => panic!("expected WrongType, got {other:?}"),
    }
    let t0 = Instant::now();
    assert!(matches!(
        b.lookup::<u64>("nobody", Duration::from_millis(300)),
        Err(LookupError::NotFound { .. })
    ));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the lookup kept its deadline"
    );

    // Bounded: with the actor holding its first message, try_send says Full after at most
    // the mailbox (4, all granted as credit) and the sender's queue (4) and the message in
    // hand.
    let remote = b
        .lookup::<u64>("blocked", Duration::from_secs(10))
        .expect("found");
    let mut accepted = 0;
    let full = loop {
        match remote.try_send(accepted) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 64, "try_send never said Full");
    };
    assert!(full.is_full(), "{full}");
    // The message the actor holds counts as handed over, so a slot or two may still free
    // up as its confirmation arrives; after that, send_timeout gives up at its deadline.
    let timeout = loop {
        match remote.send_timeout(accepted, Duration::from_millis(50)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 64, "send_timeout never timed out");
    };
    assert!(timeout.is_timeout(), "{timeout}");

    // Accounted: once released, everything accepted is delivered and confirmed.
    RELEASE.store(true, Ordering::SeqCst);
    assert!(
        remote.flush_remote(Duration::from_secs(30)),
        "{:?}",
        remote.remote_stats()
    );
    let stats = remote.remote_stats().expect("a remote address");
    assert_eq!(
        (stats.sent, stats.delivered),
        (accepted, accepted),
        "{stats:?}"
    );
    assert_eq!(
        (stats.dead_letters, stats.in_doubt, stats.pending),
        (0, 0, 0)
    );
    assert_eq!(b.summary(), vec![stats]);
    assert_eq!(b.slow_consumer_drops(), 0);

    system.request_stop("done");
    let summary = system.run(|_, _, ()| {});
    assert_eq!(summary.actor("BLOCKED").map(|s| s.handled), Some(accepted));
}

/// What NOTES takes: a number, and perhaps an address to pass on.
#[derive(Debug, Serialize, Deserialize)]
enum Note {
    N(u64),
    With(Addr<u64>),
    /// Answered at once with the square of the number.
    Ask(u64, ReplyTo<u64>),
}

struct Notes;

impl Actor for Notes {
    type Args = ();
    type Msg = Note;
    type Event = ();
    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Notes)
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |_, _, note| {
            match note {
                Note::Ask(n, reply) => {
                    reply.send(n * n);
                }
                Note::N(_) | Note::With(_) => {}
            }
            Ok(())
        })
    }
}

/// Code written against `Addr` only, as a library would be: it cannot tell a remote actor
/// from a local one.
fn send_numbers(to: &Addr<Note>, n: u64) -> u64 {
    (0..n).filter(|&i| to.send(Note::N(i)).is_ok()).count() as u64
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn a_remote_address_is_an_addr_that_code_written_for_addr_takes() {
    let server = NatsServer::start().expect("a nats-server");
    let url = server.url();
    let registry = Registry::new().run_if_child();
    let config = SystemConfig::new("T").isolation(Isolation::Threads);
    let mut system = System::<()>::new(registry, config).expect("a system");
    let notes = system.spawn::<Notes>("NOTES", ()).expect("started");
    let a = Cluster::join(&ClusterConfig::new(&url, "t", "a")).expect("joined");
    a.publish("notes", &notes).expect("published");
    let b = Cluster::join(&ClusterConfig::new(&url, "t", "b")).expect("joined");
    let remote: Addr<Note> = b.lookup("notes", Duration::from_secs(10)).expect("found");

    // The same function sends to the local actor and to the remote one.
    assert_eq!(send_numbers(&notes, 100), 100);
    assert_eq!(send_numbers(&remote, 1000), 1000);
    assert_eq!(remote.name(), "notes");
    assert_eq!(remote.remote_node(), Some("a"));
    assert_eq!(notes.remote_node(), None);
    assert!(!remote.is_gone());
    assert_eq!(format!("{remote:?}"), "Addr(notes@a)");
    // Only the node that runs an actor publishes it.
    assert!(b.publish("again", &remote).is_err());

    // It travels as data: decoded again (here in the same process) it is the same link,
    // and an Addr of another message type is refused.
    let bytes = postcard::to_allocvec(&remote).expect("encode");
    let again: Addr<Note> = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(send_numbers(&again, 10), 10);
    assert!(postcard::from_bytes::<Addr<String>>(&bytes).is_err());

    // Asked across machines, from this thread as from any: every answer is its own (the
    // timeouts, late answers and counts: tests/ask.rs).
    for n in 0..200u64 {
        match remote.ask(|r| Note::Ask(n, r), Duration::from_secs(10)) {
            Ok(square) => assert_eq!(square, n * n),
            Err(e) => panic!("ask {n}: {e}"),
        }
    }
    // An address of an actor of this machine in a message to another one: refused at the
    // sender (the send itself succeeds, as a refused message does on one machine) and
    // counted as a dead letter.
    let local: Addr<u64> = system.spawn::<Blocked>("LOCAL", ()).expect("started");
    assert!(remote.send(Note::With(local)).is_ok());

    // Accounted: sent = delivered + dead letters, nothing else left.
    assert!(
        remote.flush_remote(Duration::from_secs(30)),
        "{:?}",
        remote.remote_stats()
    );
    let stats = remote.remote_stats().expect("a remote address");
    assert_eq!(
        (
            stats.sent,
            stats.delivered,
            stats.dead_letters,
            stats.in_doubt,
            stats.pending
        ),
        (1211, 1210, 1, 0, 0),
        "{stats:?}"
    );

    system.request_stop("done");
    let summary = system.run(|_, _, ()| {});
    assert_eq!(summary.actor("NOTES").map(|s| s.handled), Some(1310));
}
