//! The README's test, as it is written there: two process actors started from a `#[test]`
//! (the one line `enable_test_support!` makes the test binary their entry), and the summary
//! asserted on.

use mpactor::{Actor, ActorError, Context, System, SystemConfig};

/// Adds up the readings it is sent, in its own process.
struct Totaliser {
    total: f64,
}

impl Actor for Totaliser {
    type Args = f64;
    type Msg = f64;
    type Event = ();

    fn init_args(start: f64) -> Result<Self, ActorError> {
        Ok(Totaliser { total: start })
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, reading: Self::Msg) -> Result<(), ActorError> {
        self.total += reading;
        Ok(())
    }
}

mpactor::enable_test_support!(Totaliser);

#[test]
fn two_totalisers_in_their_own_processes() {
    let mut system = System::<()>::new(test_registry(), SystemConfig::new("TEST")).unwrap();
    let north = system.spawn::<Totaliser>("NORTH", 0.0).unwrap();
    let south = system.spawn::<Totaliser>("SOUTH", 0.0).unwrap();
    for reading in [21.5, 19.0, 22.5] {
        north.send(reading).unwrap();
        south.send(reading).unwrap();
    }
    system.request_stop("sent");
    let pids: Vec<u32> = system.status().iter().map(|s| s.pid).collect();
    let summary = system.run(|_root, _from, ()| {});

    assert_eq!(summary.exit_code(), 0);
    for name in ["NORTH", "SOUTH"] {
        let actor = summary.actor(name).unwrap();
        assert_eq!((actor.handled, actor.dead_letters), (3, 0), "{actor:?}");
        assert!(actor.exit.is_clean(), "{actor:?}");
    }
    // Real processes, other than the test's own, and gone by now.
    assert!(pids.iter().all(|pid| *pid != std::process::id()));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains("NORTH") && !s.contains("SOUTH")),
            "{pid} is gone"
        );
    }
}

/// A second system in the same test binary, at the same time as the first (libtest runs the
/// tests in parallel): each has its own children.
#[test]
fn a_second_system_in_the_same_test_binary() {
    let mut system = System::<()>::new(test_registry(), SystemConfig::new("TEST2")).unwrap();
    let one = system.spawn::<Totaliser>("ONE", 1.0).unwrap();
    one.send(2.0).unwrap();
    system.request_stop("sent");
    let summary = system.run(|_root, _from, ()| {});
    assert_eq!(summary.actor("ONE").unwrap().handled, 1);
    assert_eq!(summary.exit_code(), 0);
}
