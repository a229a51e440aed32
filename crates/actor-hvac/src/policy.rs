//! The device's supervision policy: what a real device wants when one of its actors dies.
//!
//! A device in the field has nobody at its console: it should heal itself from a crash, but a
//! crash that keeps coming back is a fault that a restart does not fix, and the device should
//! then stop cleanly with an exit code that says so, so that its service manager (systemd's
//! `Restart=on-failure`, say) can restart it whole, with its own back-off, and alert.
//!
//! | actor | restart type | why |
//! |---|---|---|
//! | SEND | [`Restart::Permanent`] | without it nothing is recorded; its inbox is kept by the root across the restart, so lines routed meanwhile are written by the next incarnation |
//! | LISTEN | [`Restart::Permanent`] | the device must stay reachable; the new incarnation binds the port again |
//! | STATUS | [`Restart::Permanent`] | health must be watched; the new incarnation reports the current status at once |
//! | OBSERVATION | [`Restart::Permanent`] | readings are the device's purpose; the root re-sends the setpoint asked for when a reading shows another |
//!
//! * Messages: at most [`MESSAGE_BYTES`] (64 KiB) encoded, a bound far above any message
//!   the device makes.
//! * Strategy [`Strategy::OneForOne`]: the actors hold no state of each other's (addresses
//!   survive restarts), so only the one that died is restarted.
//! * Intensity: at most [`MAX_RESTARTS`] restarts within [`RESTART_PERIOD`], all actors
//!   counted together. One more and the whole system stops cleanly with **exit code 3**
//!   (`StopReason::RestartIntensity`). An actor that crashes now and then (less often than
//!   that) is restarted forever.
//! * A restart that fails to start (say the port was taken meanwhile) stops the system
//!   with exit code 2, as does a fatal event ([`crate::messages::HvacEvent::Fatal`]: SEND
//!   cannot write the send file), because no restart fixes those.
//! * A SIGINT, SIGTERM or SIGHUP to the root or to any actor stops the whole system cleanly,
//!   exit 0; so do `REQUEST END` and `--run-for`.

use actor_core::{ChildOptions, Restart, Strategy, SystemConfig};
use std::time::Duration;

/// Restarts allowed within [`RESTART_PERIOD`] before the system gives up (exit 3).
pub const MAX_RESTARTS: u32 = 3;
/// The sliding window of the restart intensity.
pub const RESTART_PERIOD: Duration = Duration::from_secs(30);
/// How long each actor's start may take.
pub const START_TIMEOUT: Duration = Duration::from_secs(3);
/// The one deadline shared by all actors' stops.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest message any actor of the device takes, encoded. Its messages are a protocol
/// line (at most [`MAX_MESSAGE`](crate::protocol::MAX_MESSAGE) bytes) and what the root adds
/// to route it, or a reading: one far larger is a bug, refused by its sender (and logged)
/// rather than carried.
pub const MESSAGE_BYTES: usize = 64 * 1024;

/// Mailbox capacities: SEND takes every routed line; LISTEN the answers to every request it
/// has with the root at once (at most [`MAX_IN_FLIGHT`](crate::listen::MAX_IN_FLIGHT), so the
/// root never waits for room there); the others only a few messages.
fn mailbox_capacity(actor: &str) -> usize {
    match actor {
        crate::SEND => 4096,
        crate::LISTEN => crate::listen::MAX_IN_FLIGHT,
        _ => 64,
    }
}

/// The options of one of the four actors.
pub fn child_options(actor: &str) -> ChildOptions {
    ChildOptions::default()
        .restart(Restart::Permanent)
        .start_timeout(START_TIMEOUT)
        .mailbox_capacity(mailbox_capacity(actor))
        .max_message_bytes(MESSAGE_BYTES)
}

/// The root's configuration.
pub fn system_config(level: slog::Level, run_for: Duration) -> SystemConfig {
    SystemConfig::new(crate::ROOT)
        .log_level(level)
        .strategy(Strategy::OneForOne)
        .intensity(MAX_RESTARTS, RESTART_PERIOD)
        .stop_timeout(STOP_TIMEOUT)
        .run_for(run_for)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_actor_is_permanent_and_a_crash_loop_is_bounded() {
        for actor in crate::ACTORS {
            assert_eq!(child_options(actor).restart, Restart::Permanent);
            assert_eq!(child_options(actor).max_message_bytes, MESSAGE_BYTES);
        }
        let config = system_config(slog::Level::Info, Duration::ZERO);
        assert_eq!(config.intensity.max_restarts, 3);
        assert_eq!(config.intensity.period, Duration::from_secs(30));
        assert_eq!(config.strategy, Strategy::OneForOne);
        assert_eq!(config.run_for, None);
    }
}
