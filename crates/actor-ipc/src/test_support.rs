//! Process actors in `#[test]`s: [`enable_test_support!`](crate::enable_test_support).
//!
//! A child process re-executes the current binary; in a test binary that binary is libtest's
//! harness, whose `main` knows nothing of mpactor. The macro adds a test that is the child's
//! entry (it calls [`Registry::run_if_child`](crate::Registry::run_if_child)) and a registry
//! that starts children with a filter running only that test: what procspawn's
//! `enable_test_support!` does for its processes.

/// One line in a test file, and its `#[test]`s can run real process actors.
///
/// `enable_test_support!(A, B, ...)` registers the actor types and defines, in the module
/// where it is written:
///
/// * `fn test_registry() -> Registry`: the registry to hand to
///   [`System::new`](crate::System::new) in the tests;
/// * `#[test] fn mpactor_test_child()`: in a child process it runs the actor (the children
///   start the test binary with a filter that runs only this test); in the test run itself it
///   passes at once.
///
/// ```no_run
/// use actor_core::{Actor, ActorError, Context, SystemConfig};
/// use actor_ipc::System;
///
/// struct Counter;
/// impl Actor for Counter {
///     type Args = ();
///     type Msg = u64;
///     type Event = ();
///     fn init_args(_: ()) -> Result<Self, ActorError> { Ok(Counter) }
///     fn handle(&mut self, _ctx: &mut Context<Self>, _n: u64) -> Result<(), ActorError> {
///         Ok(())
///     }
/// }
///
/// actor_ipc::enable_test_support!(Counter);
///
/// #[test]
/// fn counts_in_a_process() {
///     let mut system = System::<()>::new(test_registry(), SystemConfig::new("TEST")).unwrap();
///     let counter = system.spawn::<Counter>("COUNTER", ()).unwrap();
///     counter.send(1).unwrap();
///     system.request_stop("sent");
///     let summary = system.run(|_, _, ()| {});
///     assert_eq!(summary.actor("COUNTER").unwrap().handled, 1);
/// }
/// ```
#[macro_export]
macro_rules! enable_test_support {
    ($($actor:ty),+ $(,)?) => {
        /// The registry of this test file's actors (see `enable_test_support!`).
        #[allow(dead_code)]
        fn test_registry() -> $crate::Registry {
            $crate::Registry::new()
                $(.register::<$actor>())+
                .__test_entry(::core::concat!(::core::module_path!(), "::mpactor_test_child"))
                .run_if_child()
        }

        /// The child processes' entry: runs the actor it was started for, then exits.
        #[test]
        fn mpactor_test_child() {
            let _ = test_registry();
        }
    };
}
