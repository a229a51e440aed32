//! How actor types are named to their processes: an explicit `Actor::KEY` works end to end,
//! two types under one key are refused at registration, and a type left out of the registry
//! fails at `spawn` with an error that names it and says how to fix it.

use mpactor::{Actor, ActorError, Context, Registry, StartError, System, SystemConfig};

/// Registered under a key of its own.
struct Keyed;

impl Actor for Keyed {
    type Args = ();
    type Msg = u32;
    type Event = ();
    const KEY: Option<&'static str> = Some("keyed-v1");

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Keyed)
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, _n: u32) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Claims the same key as `Keyed`.
struct Impostor;

impl Actor for Impostor {
    type Args = ();
    type Msg = ();
    type Event = ();
    const KEY: Option<&'static str> = Some("keyed-v1");

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Impostor)
    }
}

/// Never registered.
struct Forgotten;

impl Actor for Forgotten {
    type Args = ();
    type Msg = ();
    type Event = ();

    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Forgotten)
    }
}

mpactor::enable_test_support!(Keyed);

#[test]
fn an_actor_with_its_own_key_runs_in_its_process() {
    let mut system = System::<()>::new(test_registry(), SystemConfig::new("KEYS")).unwrap();
    let keyed = system.spawn::<Keyed>("KEYED", ()).unwrap();
    keyed.send(7).unwrap();
    system.request_stop("sent");
    let summary = system.run(|_, _, ()| {});
    let line = summary.actor("KEYED").unwrap();
    assert_eq!((line.handled, summary.exit_code()), (1, 0), "{line:?}");
}

#[test]
fn a_forgotten_register_fails_at_spawn_naming_the_type_and_the_fix() {
    let mut system = System::<()>::new(test_registry(), SystemConfig::new("FORGOT")).unwrap();
    let err = system.spawn::<Forgotten>("F", ()).unwrap_err();
    assert!(matches!(err, StartError::Unregistered { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("registry::Forgotten is not registered")
            && text.contains(".register::<registry::Forgotten>()"),
        "{text}"
    );
}

#[test]
#[should_panic(expected = "two actor types are registered under the key \"keyed-v1\"")]
fn two_types_under_one_key_are_refused() {
    let _ = Registry::new().register::<Keyed>().register::<Impostor>();
}
