//! A failed start keeps its causes: `StartError`'s `std::error::Error::source` walks the
//! actor's error level by level, for an actor running as a thread of this test (the process
//! case crosses the same `ErrorChain` over the bootstrap connection; see the testbed's tests).

use actor_core::{Actor, ActorError, Context, Isolation, SystemConfig};
use actor_ipc::{Registry, StartError, System};
use std::error::Error;

/// Opens a file that is not there in its `startup`, through `?`.
struct Opener;

impl Actor for Opener {
    type Args = ();
    type Msg = ();
    type Event = ();

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Opener)
    }

    fn startup(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        std::fs::File::open("/no/such/dir/config.toml")
            .map_err(|e| ActorError::new("reading the config").with_cause(e))?;
        Ok(())
    }

    fn main_loop(&mut self, _ctx: &mut Context<Self>) -> Result<(), ActorError> {
        Ok(())
    }
}

#[test]
fn a_failed_start_keeps_the_actors_error_chain_as_its_source() {
    let config = SystemConfig::new("MAIN").isolation(Isolation::Threads);
    let mut system = System::<()>::new(Registry::new(), config).expect("a root");
    let err = system
        .spawn::<Opener>("OPENER", ())
        .expect_err("the start fails");
    assert!(
        matches!(&err, StartError::StartupFailed { actor, .. } if actor == "OPENER"),
        "{err:?}"
    );
    let mut levels = Vec::new();
    let mut next = err.source();
    while let Some(level) = next {
        levels.push(level.to_string());
        next = level.source();
    }
    assert_eq!(levels.len(), 3, "{levels:?}");
    assert!(
        levels[0].starts_with("startup failed: reading the config: "),
        "{levels:?}"
    );
    assert!(levels[1].starts_with("reading the config: "), "{levels:?}");
    assert!(levels[2].contains("No such file"), "{levels:?}");
    system.request_stop("done");
    let summary = system.run(|_, _, ()| {});
    assert_eq!(summary.exit_code(), 0);
}
