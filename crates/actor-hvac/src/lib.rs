//! # actor-hvac
//!
//! The IoT HVAC monitoring device from the mptools talk ("Things I Wish They Told Me About
//! The Multiprocessing Module in Python 3"), as a real program on mpactor: a root that
//! supervises and routes, and four actors, each in its own process (its name in
//! `/proc/<pid>/comm`):
//!
//! | actor | kind | does |
//! |---|---|---|
//! | STATUS ([`status`]) | timer | checks the device's health, reports `OKAY` / `NOT-OKAY <reason>` when it changes |
//! | OBSERVATION ([`observation`]) | timer | reads a simulated room ([`thermal`]): temperature, humidity, heating/cooling against a setpoint |
//! | SEND ([`send`]) | queue | appends each line it gets to the send file, `TYPE::text`, flushed per line |
//! | LISTEN ([`listen`]) | custom loop | a TCP server: `REQUEST <text>` in, `REPLY <id> <text>` out ([`protocol`]) |
//!
//! The root ([`root`]) routes STATUS and OBSERVATION events and errors to SEND, and requests
//! from LISTEN to its request handler, whose answer goes back to LISTEN. `REQUEST END`, a
//! signal or `--run-for` stop everything cleanly; the supervision policy is in [`policy`].
//!
//! Run it: `cargo run --release -p actor-hvac`, then `printf 'REQUEST STATUS' | nc -q1
//! 127.0.0.1 9999` and `tail -f send_file.txt`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod listen;
pub mod messages;
pub mod observation;
pub mod policy;
pub mod protocol;
pub mod root;
pub mod send;
pub mod status;
pub mod thermal;
pub mod token;

use actor_ipc::{Registry, StartError, System};
use messages::HvacEvent;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The root's name in the logs.
pub const ROOT: &str = "MAIN";
/// SEND's name.
pub const SEND: &str = "SEND";
/// LISTEN's name.
pub const LISTEN: &str = "LISTEN";
/// STATUS's name.
pub const STATUS: &str = "STATUS";
/// OBSERVATION's name.
pub const OBSERVATION: &str = "OBSERVATION";
/// The actors in start order (they stop in the reverse order, SEND last, so it records
/// what the others report until the end).
pub const ACTORS: [&str; 4] = [SEND, LISTEN, STATUS, OBSERVATION];

/// The setpoint the room model starts with, °C.
pub const DEFAULT_SETPOINT: f64 = 21.0;

/// Exit code when the system could not start (a port in use, a send file that cannot be
/// opened), or stopped on a fatal event (mptools' convention for a failed process).
pub const EXIT_FAILED: i32 = 2;

/// Exit code for a command line that cannot be used (an unknown option, a bad value):
/// `EX_USAGE` of sysexits(3), apart from [`EXIT_FAILED`], so that a service manager or a
/// script can tell "started wrong" from "failed while running".
pub const EXIT_USAGE: i32 = 64;

/// The actor types of the `hvac` binary; `main` calls `run_if_child` on it first.
pub fn registry() -> Registry {
    Registry::new()
        .register::<send::SendActor>()
        .register::<listen::ListenActor>()
        .register::<status::StatusActor>()
        .register::<observation::ObservationActor>()
}

/// The directory the send file is in (its free space is what STATUS checks).
fn send_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Runs the device until it is stopped; returns the process's exit code: 0 after a clean
/// stop (signal, `REQUEST END`, `--run-for`), 2 when it could not start or stopped on a
/// fatal event, 3 after a crash loop (see [`policy`]).
pub fn run(registry: Registry, cli: &cli::Cli) -> ExitCode {
    let config = policy::system_config(cli.level(), cli.run_for).log_format(cli.log_format);
    let mut system = match System::<HvacEvent>::new(registry, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hvac: cannot start the root: {e}");
            return ExitCode::from(EXIT_FAILED as u8);
        }
    };
    slog::info!(
        system.log(),
        "HVAC device: listening on {}, send file {}, status every {:?}, a reading every {:?}",
        cli.listen,
        cli.send_file.display(),
        cli.status_interval,
        cli.observation_interval
    );

    let routes = match start(&mut system, cli) {
        Ok(routes) => routes,
        // A signal while the actors start: the same orderly stop as at any other moment.
        Err(e) if e.is_interrupted() => {
            return (&system.run(|_root, _from, _event| {})).into();
        }
        Err(e) => {
            let hint = match &e {
                StartError::StartupFailed { actor, .. } if actor == LISTEN => format!(
                    " (is another program, or another hvac, using {}? choose another with --listen)",
                    cli.listen
                ),
                _ => String::new(),
            };
            eprintln!("hvac: cannot start: {e}{hint}");
            // The system, dropped on the way out, stops the actors that did start.
            return ExitCode::from(EXIT_FAILED as u8);
        }
    };

    let mut router = root::Router::new(routes, system.clock(), DEFAULT_SETPOINT);
    let summary = system.run(|root, from, event| router.on_event(root, from, event));
    if let Some(why) = router.fatal() {
        eprintln!("hvac: stopped on a fatal event from {why}");
    }
    (&summary).into()
}

/// Starts the four actors in order, each confirmed started before the next.
fn start(system: &mut System<HvacEvent>, cli: &cli::Cli) -> Result<root::Routes, StartError> {
    use policy::child_options;
    let send = system.spawn_with::<send::SendActor>(
        SEND,
        send::SendArgs {
            path: cli.send_file.clone(),
        },
        child_options(SEND),
    )?;
    let listen = system.spawn_with::<listen::ListenActor>(
        LISTEN,
        listen::ListenArgs {
            client_timeout: cli.client_timeout,
            max_connections: cli.max_connections,
            control_token: cli.control_token.clone(),
            stats_interval: cli.stats_interval,
            ..listen::ListenArgs::new(cli.listen)
        },
        child_options(LISTEN),
    )?;
    system.spawn_with::<status::StatusActor>(
        STATUS,
        status::StatusArgs {
            interval: cli.status_interval,
            dir: send_dir(&cli.send_file),
            limits: status::Limits::default(),
        },
        child_options(STATUS),
    )?;
    let observation = system.spawn_with::<observation::ObservationActor>(
        OBSERVATION,
        observation::ObservationArgs {
            interval: cli.observation_interval,
            setpoint: DEFAULT_SETPOINT,
            params: thermal::Params::default(),
        },
        child_options(OBSERVATION),
    )?;
    Ok(root::Routes {
        send,
        listen,
        observation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_files_directory_is_checked() {
        assert_eq!(send_dir(Path::new("send_file.txt")), PathBuf::from("."));
        assert_eq!(send_dir(Path::new("./send_file.txt")), PathBuf::from("."));
        assert_eq!(
            send_dir(Path::new("/var/hvac/out.txt")),
            PathBuf::from("/var/hvac")
        );
    }

    #[test]
    fn actor_names_fit_in_proc_comm() {
        for name in ACTORS {
            assert!(name.len() <= 15, "{name} is cut in /proc/<pid>/comm");
        }
    }
}
