//! The default `main_loop`: `handle` once per message, `tick` every `tick_interval` with
//! `handle` between ticks, and an actor that writes neither fails at its first message with
//! an error that says so. Run in a thread with the test kit (the same lifecycle as in a
//! process).

use mpactor::testkit::TestKit;
use mpactor::{Actor, ActorError, Context, Outcome};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Reports the running total of what it is sent.
struct Summer {
    total: u64,
}

impl Actor for Summer {
    type Args = ();
    type Msg = u64;
    type Event = u64;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Summer { total: 0 })
    }

    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) -> Result<(), ActorError> {
        self.total += n;
        Ok(ctx.emit(self.total)?)
    }
}

/// Ticks every 5 ms (reporting `0`) and reports each message it gets.
struct Ticking;

impl Actor for Ticking {
    type Args = ();
    type Msg = u64;
    type Event = u64;

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Ticking)
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }

    fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(ctx.emit(0)?)
    }

    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) -> Result<(), ActorError> {
        Ok(ctx.emit(n)?)
    }
}

/// Writes neither `handle` nor `main_loop`.
struct Forgetful;

impl Actor for Forgetful {
    type Args = ();
    type Msg = u64;
    type Event = ();

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Forgetful)
    }
}

#[test]
fn handle_is_called_once_per_message() {
    let kit = TestKit::<Summer>::start(()).unwrap();
    for n in [1, 2, 3] {
        kit.send(n).unwrap();
    }
    let totals: Vec<_> = (0..3).filter_map(|_| kit.next_event(WAIT)).collect();
    assert_eq!(totals, [1, 3, 6]);
    assert_eq!(kit.stop(), Outcome::Clean);
}

#[test]
fn tick_runs_every_interval_with_handle_between_ticks() {
    let kit = TestKit::<Ticking>::start(()).unwrap();
    // Two ticks first (they come by themselves), then a message among the ticks.
    assert_eq!(kit.next_event(WAIT), Some(0));
    assert_eq!(kit.next_event(WAIT), Some(0));
    kit.send(42).unwrap();
    let found = (0..1000).find_map(|_| kit.next_event(WAIT).filter(|e| *e == 42));
    assert_eq!(found, Some(42));
    assert_eq!(kit.stop(), Outcome::Clean);
}

#[test]
fn an_actor_without_handle_or_main_loop_fails_at_its_first_message_saying_so() {
    let kit = TestKit::<Forgetful>::start_named("FORGETFUL", ()).unwrap();
    kit.send(1).unwrap();
    match kit.stop() {
        Outcome::Failed(why) => assert!(
            why.to_string().contains(
                "FORGETFUL got a message but implements neither Actor::handle nor Actor::main_loop"
            ),
            "{why}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}
