//! `Addr::ask` across machines, through a real `nats-server` (ignored by default: it needs
//! one; `.ci/run` runs it with `--include-ignored`). Both nodes live in this test process (two
//! connections, as two roots would have); the answering actor is a thread of node `a`'s
//! system. A file of its own: a process counts replies in the first system it runs, so this
//! test's system must be the only one (the cross-process cases are in the root's
//! tests/cluster.rs).

use actor_core::SystemConfig;
use actor_core::{loops, Actor, ActorError, ClusterConfig, Context, Isolation};
use actor_ipc::{AskError, Registry, ReplyTo, System};
use actor_nats::testkit::NatsServer;
use actor_nats::Cluster;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize, Deserialize)]
enum Question {
    /// Answered at once with the square.
    Square(u64, ReplyTo<u64>),
    /// Answered with the square after this many milliseconds.
    Late(u64, u64, ReplyTo<u64>),
}

struct Squares;

impl Actor for Squares {
    type Args = ();
    type Msg = Question;
    type Event = ();
    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Squares)
    }
    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |_, _, q| {
            match q {
                Question::Square(n, reply) => {
                    reply.send(n * n);
                }
                Question::Late(n, ms, reply) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    reply.send(n * n);
                }
            }
            Ok(())
        })
    }
}

#[test]
#[ignore = "needs nats-server: apt-get install nats-server; run with --include-ignored"]
fn ask_across_machines_answers_times_out_and_ends_when_the_node_goes() {
    let server = NatsServer::start().expect("a nats-server");
    let url = server.url();
    let registry = Registry::new().run_if_child();
    let config = SystemConfig::new("T").isolation(Isolation::Threads);
    let mut system = System::<()>::new(registry, config).expect("a system");
    let squares = system.spawn::<Squares>("SQUARES", ()).expect("started");
    let a = Cluster::join(&ClusterConfig::new(&url, "t", "a")).expect("joined");
    a.publish("squares", &squares).expect("published");
    let b = Cluster::join(&ClusterConfig::new(&url, "t", "b")).expect("joined");
    let remote = b
        .lookup::<Question>("squares", Duration::from_secs(10))
        .expect("found");

    // N questions, N right answers.
    for n in 0..300u64 {
        match remote.ask(|r| Question::Square(n, r), Duration::from_secs(10)) {
            Ok(square) => assert_eq!(square, n * n, "question {n}"),
            Err(e) => panic!("question {n}: {e}"),
        }
    }

    // An answer later than the deadline: Timeout within a margin...
    let t0 = Instant::now();
    match remote.ask(|r| Question::Late(3, 600, r), Duration::from_millis(200)) {
        Err(AskError::Timeout) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // ... and the late answer, which the actor makes before answering the next question,
    // is not taken for that question's.
    for n in [5u64, 6] {
        assert_eq!(
            remote
                .ask(|r| Question::Square(n, r), Duration::from_secs(10))
                .ok(),
            Some(n * n)
        );
    }

    // The node goes away while a question waits (its answer would come in 3 s, the deadline
    // is 30 s): the ask ends with Disconnected once the node is noticed down (silent 2 s).
    let asking = std::thread::spawn(move || {
        let t0 = Instant::now();
        let got = remote.ask(|r| Question::Late(7, 3000, r), Duration::from_secs(30));
        (got, t0.elapsed(), remote)
    });
    // Once the question is in the actor's mailbox, node a leaves: its heartbeats and its
    // gateway stop, and to b it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while squares.accepted_count() < 304 {
        assert!(Instant::now() < deadline, "the question never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(a);
    let (got, took, remote) = asking.join().expect("the asking thread");
    assert!(matches!(got, Err(AskError::Disconnected)), "{got:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // And while it is down, at once.
    let t0 = Instant::now();
    assert!(matches!(
        remote.ask(|r| Question::Square(1, r), Duration::from_secs(30)),
        Err(AskError::Disconnected)
    ));
    assert!(t0.elapsed() < Duration::from_secs(1));

    system.request_stop("done");
    let summary = system.run(|_, _, ()| {});
    assert_eq!(summary.actor("SQUARES").map(|s| s.handled), Some(304));
    // Both nodes live in this process, so its summary holds both sides: 304 answers made,
    // each taken by the transport (it left); 303 arrived before the summary (the last,
    // answered as the system stops, may come after it), each counted sent again, and all
    // taken by their askers but the two that came after their question ended.
    let r = summary.replies;
    assert_eq!(r.sent, r.taken + r.dead_letters, "{r:?}");
    assert_eq!(r.taken, 304 + 302, "{r:?}");
    assert!(r.sent == 304 + 303 || r.sent == 304 + 304, "{r:?}");
}
