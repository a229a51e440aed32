//! The README's test and its other blocks, as they are written there: two process actors started from a `#[test]`
//! (the one line `enable_test_support!` makes the test binary their entry), and the summary
//! asserted on.

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

// README block 3 begins
use mpactor::{System, SystemConfig};

// One line: the test binary becomes the entry of its child processes, and
// `test_registry()` the registry of these actor types.
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
    let summary = system.run(|_root, _from, ()| {});
    assert_eq!(summary.exit_code(), 0);
    for name in ["NORTH", "SOUTH"] {
        let actor = summary.actor(name).unwrap();
        assert_eq!((actor.handled, actor.dead_letters), (3, 0));
    }
}
// README block 3 ends

/// What the README's test leaves out: the children were real processes, and are gone.
#[test]
fn the_children_are_real_processes_and_gone_afterwards() {
    let mut system = System::<()>::new(test_registry(), SystemConfig::new("PIDS")).unwrap();
    system.spawn::<Totaliser>("EAST", 0.0).unwrap();
    system.spawn::<Totaliser>("WEST", 0.0).unwrap();
    let pids: Vec<u32> = system.status().iter().map(|s| s.pid).collect();
    system.request_stop("done");
    let summary = system.run(|_root, _from, ()| {});
    assert_eq!(summary.exit_code(), 0);
    assert!(pids.iter().all(|pid| *pid != std::process::id()));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains("EAST") && !s.contains("WEST")),
            "{pid} is gone"
        );
    }
}

/// The README's test-kit block.
#[test]
fn the_test_kit_block() {
    // README block 4 begins
    use mpactor::testkit::TestKit;
    use std::time::Duration;

    // Runs in a thread of the test: the same lifecycle as in a process.
    // (`testkit::probe` gives an Addr to hand an actor and the reader of what it sends there.)
    let kit = TestKit::<Totaliser>::start(0.0).expect("started");
    kit.send(21.5).expect("sent");
    assert!(kit.wait_handled(1, Duration::from_secs(5)));
    assert_eq!(kit.stop(), mpactor::Outcome::Clean);
    // README block 4 ends
}

/// The README's request/reply sketch (its comments show the two sides).
#[allow(unused_imports, dead_code)]
mod ask_block {
    // README block 5 begins
    use mpactor::{AskError, ReplyTo};
    #[derive(serde::Serialize, serde::Deserialize)]
    enum Kv {
        Put {
            key: u64,
            value: u64,
        },
        Get {
            key: u64,
            reply: ReplyTo<Option<u64>>,
        },
    }
    // the store:  Kv::Get { key, reply } => { reply.send(map.get(&key).copied()); }
    // an asker:   let v: Option<u64> = kv.ask(|reply| Kv::Get { key: 7, reply },
    //                                         Duration::from_millis(500))?;
    //             // Err(AskError::Timeout) by the deadline; Err(AskError::Disconnected) if gone
    // README block 5 ends
}

/// The README's shared-bytes sketch.
#[allow(dead_code)]
mod shared_bytes_block {
    // README block 6 begins
    use mpactor::SharedBytes;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Frame {
        camera: u8,
        pixels: SharedBytes,
    } // pixels: Deref<Target = [u8]>
      // sender:   encoder.send(Frame { camera: 1, pixels: SharedBytes::from(image) })?;
      // receiver: let first_row = &frame.pixels[..640];  // read in place, in shared memory
      // README block 6 ends
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

/// The text between the markers `README block N begins` and `ends` in this file or in
/// examples/readme.rs (indentation aside).
fn marked_blocks() -> Vec<(usize, Vec<String>)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut found = Vec::new();
    for path in ["tests/readme.rs", "examples/readme.rs"] {
        let text = std::fs::read_to_string(format!("{root}/{path}"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut current: Option<(usize, Vec<String>)> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(n) = line
                .strip_prefix("// README block ")
                .and_then(|rest| rest.strip_suffix(" begins"))
            {
                current = n.parse().ok().map(|n| (n, Vec::new()));
            } else if line.starts_with("// README block ") && line.ends_with(" ends") {
                found.extend(current.take());
            } else if let Some((_, lines)) = current.as_mut() {
                lines.push(line.to_string());
            }
        }
    }
    found
}

/// Every Rust block of the README is compiled, here or in examples/readme.rs: the README's
/// code cannot rot.
#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let marked = marked_blocks();
    let blocks: Vec<&str> = readme
        .split("```rust\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .collect();
    assert!(
        blocks.len() >= 6,
        "only {} Rust blocks in the README",
        blocks.len()
    );
    for (i, code) in blocks.iter().enumerate() {
        let want: Vec<String> = code.lines().map(|l| l.trim().to_string()).collect();
        let compiled = marked.iter().find(|(n, _)| *n == i + 1).map(|(_, l)| l);
        assert_eq!(
            compiled,
            Some(&want),
            "README block {} differs from its compiled copy (between the markers \
             `README block {}` in tests/readme.rs or examples/readme.rs)",
            i + 1,
            i + 1
        );
    }
}
