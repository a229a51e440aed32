//! A root with one child whose bootstrap can be delayed or made to fail, for the bootstrap
//! security tests (`tests/bootstrap_security.rs`): while the child waits, the socket it will
//! connect to exists and a test can attack it.
//!
//! Environment (read by the child process only):
//! * `SLOW_CHILD_DELAY_MS`: sleep this long before connecting to the root.
//! * `SLOW_CHILD_EXIT`: exit with this code instead of connecting.
//!
//! Arguments: `[start_timeout_ms]` (default 3000). Prints `child pid N` when the child has
//! started; exits with the root's exit code (2 when the start failed).

use actor_core::{Actor, ActorError, ChildOptions, Context, SystemConfig};
use actor_ipc::{Registry, System};
use std::time::Duration;

/// Does nothing until asked to stop.
struct Idle;

impl Actor for Idle {
    type Args = ();
    type Msg = ();
    type Event = ();
    fn init_args(_: ()) -> Result<Self, ActorError> {
        Ok(Idle)
    }
    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    if std::env::var_os("MPACTOR_CHILD").is_some() {
        if let Some(code) = std::env::var("SLOW_CHILD_EXIT")
            .ok()
            .and_then(|c| c.parse().ok())
        {
            std::process::exit(code);
        }
        if let Some(ms) = std::env::var("SLOW_CHILD_DELAY_MS")
            .ok()
            .and_then(|m| m.parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    let registry = Registry::new().register::<Idle>().run_if_child();
    let timeout_ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3000);
    let mut system = match System::<()>::new(registry, SystemConfig::new("ROOT")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("slow_child: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let options = ChildOptions::default().start_timeout(Duration::from_millis(timeout_ms));
    match system.spawn_with::<Idle>("SLOW", (), options) {
        Ok(_) => {
            let pid = system.status().first().map(|s| s.pid).unwrap_or(0);
            println!("child pid {pid}");
            system.request_stop("started");
            let summary = system.run(|_, _, ()| {});
            std::process::ExitCode::from(&summary)
        }
        Err(e) => {
            // The system, dropped on return, stops what did start.
            eprintln!("slow_child: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
