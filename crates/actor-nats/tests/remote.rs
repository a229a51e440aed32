//! A remote address from outside, through a real `nats-server` (ignored by default: it needs
//! one; `.ci/run` runs it with `--include-ignored`). Both nodes live in this test process
//! (two connections, as two roots would have); the actor is a thread of node `a`'s system.

use actor_core::SystemConfig;
use actor_core::{loops, Actor, ActorError, ChildOptions, ClusterConfig, Context, Isolation};
use actor_ipc::{Registry, System};
use actor_nats::testkit::NatsServer;
use actor_nats::{Cluster, LookupError, RemoteExt};
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

fn node(url: &str, name: &str) -> ClusterConfig {
    ClusterConfig {
        url: url.into(),
        cluster: "t".into(),
        node: name.into(),
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
    let a = Cluster::join(&node(&url, "a")).expect("joined");
    a.publish("blocked", &blocked).expect("published");
    let b = Cluster::join(&node(&url, "b")).expect("joined");

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
