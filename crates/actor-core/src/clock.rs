//! The application clock: one zero for every process of an application.
//!
//! The root takes the zero when the system is created and hands it to every child at
//! bootstrap, so a log line's elapsed time means the same thing in every process. The zero is
//! a reading of the machine's monotonic clock (`CLOCK_MONOTONIC`), which every process of the
//! machine shares and which never steps: an NTP correction of the wall clock does not bend
//! the elapsed column.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The application's clock: the elapsed time since the root started, the same in every process.
///
/// ```
/// use actor_core::AppClock;
/// let clock = AppClock::start();
/// assert!(clock.elapsed().as_secs() < 5);
/// // One clock for all processes: it crosses a process boundary as plain data.
/// let copy = AppClock::from_zero_micros(clock.zero_micros());
/// assert_eq!(copy.zero_micros(), clock.zero_micros());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppClock {
    zero_micros: u64,
}

impl AppClock {
    /// Starts a new clock whose zero is now.
    pub fn start() -> Self {
        Self {
            zero_micros: now_micros(),
        }
    }

    /// A clock with a zero taken elsewhere (in another process of this machine), in
    /// microseconds of the monotonic clock.
    pub fn from_zero_micros(zero_micros: u64) -> Self {
        Self { zero_micros }
    }

    /// The zero, in microseconds of the machine's monotonic clock (not wall time).
    pub fn zero_micros(&self) -> u64 {
        self.zero_micros
    }

    /// Time elapsed since the zero.
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(now_micros().saturating_sub(self.zero_micros))
    }

    /// The elapsed time formatted like the log lines: `M:SS.mmm`.
    pub fn stamp(&self) -> Stamp {
        Stamp(self.elapsed())
    }
}

/// An elapsed time that displays as `M:SS.mmm` (minutes are not capped at 59).
#[derive(Clone, Copy, Debug)]
pub struct Stamp(pub Duration);

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        write!(
            f,
            "{}:{:02}.{:03}",
            ms / 60_000,
            (ms / 1000) % 60,
            ms % 1000
        )
    }
}

/// The machine's monotonic clock, in microseconds: the same for every process, never stepped.
fn now_micros() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(t.tv_nsec as u64 / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_is_on_the_monotonic_clock_not_wall_time() {
        let clock = AppClock::start();
        let wall_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let zero_s = clock.zero_micros() as f64 / 1e6;
        // The monotonic clock counts from boot (at most years), wall time from 1970.
        assert!(
            zero_s < wall_s / 2.0,
            "the zero ({zero_s} s) reads like wall time ({wall_s} s)"
        );
        // Another process of the machine would read the same clock: a copy of the zero
        // gives the same elapsed time, and elapsed time never goes back.
        let copy = AppClock::from_zero_micros(clock.zero_micros());
        let a = clock.elapsed();
        let b = copy.elapsed();
        assert!(b >= a);
    }

    #[test]
    fn stamp_formats_minutes_seconds_millis() {
        assert_eq!(Stamp(Duration::from_millis(13)).to_string(), "0:00.013");
        assert_eq!(Stamp(Duration::from_millis(3_128)).to_string(), "0:03.128");
        assert_eq!(Stamp(Duration::from_millis(61_005)).to_string(), "1:01.005");
    }
}
