//! The README's program, exactly as it is written there (tests/readme.rs checks that every
//! Rust block of the README is the text between its markers here or there, so the README
//! cannot rot): an actor that adds up readings in its own process, and the root that
//! starts it.
//!
//! `cargo run --release --example readme`

// README block 1 begins
use mpactor::{Actor, ActorError, Context};

/// Adds up the readings it is sent, in its own process.
struct Totaliser {
    total: f64,
}

impl Actor for Totaliser {
    type Args = f64; // what the root hands over at spawn (and at every restart)
    type Msg = f64; // the one message type of its inbox
    type Event = (); // what it reports to the root (`ctx.emit`): nothing here

    fn init_args(start: f64) -> Result<Self, ActorError> {
        Ok(Totaliser { total: start })
    }

    // startup() and shutdown() have defaults; shutdown() always runs. main_loop() too:
    // one call of handle() per message until the root asks this actor to stop (a timer
    // actor adds tick_interval() and tick(); an actor with a loop of its own writes
    // main_loop() instead).

    fn handle(&mut self, _ctx: &mut Context<Self>, reading: f64) -> Result<(), ActorError> {
        self.total += reading;
        Ok(())
    }
}
// README block 1 ends

// README block 2 begins
// The system's event type: what its actors report to the root (`Actor::Event`); every actor
// of one system reports the same type. `()` here: nothing.
type Event = ();

fn main() -> Result<mpactor::Summary, Box<dyn std::error::Error>> {
    // First thing: in a child process, this runs the actor it was started for and exits.
    let registry = mpactor::Registry::new()
        .register::<Totaliser>()
        .run_if_child();

    let mut system = mpactor::System::<Event>::new(registry, mpactor::SystemConfig::new("MAIN"))?;
    let totaliser = system.spawn::<Totaliser>("TOTALISER", 0.0)?; // an Addr<f64>, once started
    totaliser.send(21.5)?; // bounded: Full / Timeout / Disconnected
    system.request_stop("done");
    // Until a signal, a request, a failure; then everything stopped, drained and counted.
    // Returned from main: the process exits with the summary's code (0, 2 or 3).
    Ok(system.run(|_root, _from, ()| {}))
}
// README block 2 ends
