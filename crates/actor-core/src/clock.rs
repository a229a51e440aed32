//! The application clock: one zero for every process of an application.
//!
//! The root takes the zero when the system is created and hands it to every child at
//! bootstrap, so a log line's elapsed time means the same thing in every process.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    /// A clock with a zero taken elsewhere (in another process), in microseconds since the
    /// Unix epoch.
    pub fn from_zero_micros(zero_micros: u64) -> Self {
        Self { zero_micros }
    }

    /// The zero, in microseconds since the Unix epoch.
    pub fn zero_micros(&self) -> u64 {
        self.zero_micros
    }

    /// Time elapsed since the zero (zero if the wall clock stepped backwards).
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

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_formats_minutes_seconds_millis() {
        assert_eq!(Stamp(Duration::from_millis(13)).to_string(), "0:00.013");
        assert_eq!(Stamp(Duration::from_millis(3_128)).to_string(), "0:03.128");
        assert_eq!(Stamp(Duration::from_millis(61_005)).to_string(), "1:01.005");
    }
}
