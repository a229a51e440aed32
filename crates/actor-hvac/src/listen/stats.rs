//! What LISTEN counts: how each connection ended, and the periodic INFO line that says so
//! while there is traffic (one line per interval, however many clients came), so that a
//! flood of connections does not flood the log.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The root's answer was sent (a `REPLY`, or the root's own `ERROR`).
    Answered,
    /// Not a request (bad syntax, too long, not UTF-8, a bad setpoint): `ERROR <reason>`.
    Refused,
    /// A control request without the right control token: `ERROR`.
    Denied,
    /// Nothing (or only the beginning of a request) within the client timeout.
    Silent,
    /// Refused at once: the cap on open connections was reached, or the process is out of
    /// descriptors: `ERROR busy`.
    Busy,
    /// No answer from the root within the reply timeout, or the root could not be asked.
    NoAnswer,
    /// The client closed the connection before sending a request.
    ClosedEarly,
    /// Reading or writing failed (a reset), or the reply could not be written in time.
    Failed,
    /// Cut by LISTEN's stop (`ERROR shutting down` where possible).
    Stopped,
}

impl End {
    const ALL: [End; 9] = [
        End::Answered,
        End::Refused,
        End::Denied,
        End::Silent,
        End::Busy,
        End::NoAnswer,
        End::ClosedEarly,
        End::Failed,
        End::Stopped,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The words of the INFO line and of the per-connection DEBUG line.
    pub fn label(self) -> &'static str {
        match self {
            End::Answered => "answered",
            End::Refused => "bad request",
            End::Denied => "denied (control token)",
            End::Silent => "silent",
            End::Busy => "busy",
            End::NoAnswer => "no answer from the root",
            End::ClosedEarly => "closed without a request",
            End::Failed => "failed",
            End::Stopped => "cut by the stop",
        }
    }
}

/// Counts of connections by how they ended, and of accept failures for want of
/// descriptors or memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    ends: [u64; End::ALL.len()],
    /// accept(2) failed for want of descriptors or memory (EMFILE and the like).
    pub out_of_descriptors: u64,
}

impl Counts {
    /// Connections counted, however they ended.
    pub fn connections(&self) -> u64 {
        self.ends.iter().sum()
    }

    /// Connections that ended as `end`.
    pub fn of(&self, end: End) -> u64 {
        self.ends[end.index()]
    }

    /// `"12 answered, 3 bad request, 1 busy"`: the kinds that occurred, in a fixed order.
    pub fn breakdown(&self) -> String {
        let mut text = String::new();
        for end in End::ALL {
            let n = self.of(end);
            if n > 0 {
                if !text.is_empty() {
                    text.push_str(", ");
                }
                let _ = write!(text, "{n} {}", end.label());
            }
        }
        if self.out_of_descriptors > 0 {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(
                text,
                "{} accepts out of descriptors",
                self.out_of_descriptors
            );
        }
        if text.is_empty() {
            text.push_str("none");
        }
        text
    }
}

/// Totals since the start and the counts of the current interval.
#[derive(Debug)]
pub struct Stats {
    /// Since LISTEN started.
    pub total: Counts,
    window: Counts,
    window_start: Instant,
    interval: Duration,
    warned: bool,
}

impl Stats {
    /// Counts from now on, with an INFO line every `interval` that saw traffic.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            total: Counts::default(),
            window: Counts::default(),
            window_start: now,
            interval,
            warned: false,
        }
    }

    /// Counts one connection.
    pub fn count(&mut self, end: End) {
        self.total.ends[end.index()] += 1;
        self.window.ends[end.index()] += 1;
    }

    /// Counts one accept that failed for want of descriptors.
    pub fn count_out_of_descriptors(&mut self) {
        self.total.out_of_descriptors += 1;
        self.window.out_of_descriptors += 1;
    }

    /// True the first time it is asked in each interval: a warning worth a line is logged
    /// (and reported to the root) once per interval, and counted always.
    pub fn first_warning(&mut self) -> bool {
        !std::mem::replace(&mut self.warned, true)
    }

    /// At the end of each interval: the INFO line, if anything happened in it.
    pub fn tick(&mut self, now: Instant, open: usize) -> Option<String> {
        let took = now.saturating_duration_since(self.window_start);
        if took < self.interval {
            return None;
        }
        let window = std::mem::take(&mut self.window);
        self.window_start = now;
        self.warned = false;
        if window == Counts::default() {
            return None;
        }
        Some(format!(
            "{} connections in {:.1}s: {} ({} since start, {open} open)",
            window.connections(),
            took.as_secs_f64(),
            window.breakdown(),
            self.total.connections()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_busy_interval_none_for_quiet_ones() {
        let t0 = Instant::now();
        let mut s = Stats::new(Duration::from_secs(5), t0);
        for _ in 0..1000 {
            s.count(End::Answered);
        }
        s.count(End::Busy);
        s.count(End::Busy);
        s.count_out_of_descriptors();
        assert_eq!(s.tick(t0 + Duration::from_secs(1), 3), None);
        let line = s.tick(t0 + Duration::from_secs(5), 3).expect("a line");
        assert_eq!(
            line,
            "1002 connections in 5.0s: 1000 answered, 2 busy, 1 accepts out of descriptors (1002 since start, 3 open)"
        );
        // A quiet interval: no line.
        assert_eq!(s.tick(t0 + Duration::from_secs(10), 0), None);
        s.count(End::Silent);
        let line = s.tick(t0 + Duration::from_secs(15), 0).expect("a line");
        assert!(
            line.starts_with("1 connections in 5.0s: 1 silent (1003 since start"),
            "{line}"
        );
        assert_eq!(s.total.of(End::Answered), 1000);
    }

    #[test]
    fn warnings_once_per_interval() {
        let t0 = Instant::now();
        let mut s = Stats::new(Duration::from_secs(1), t0);
        assert!(s.first_warning());
        assert!(!s.first_warning());
        s.count(End::Failed);
        assert!(s.tick(t0 + Duration::from_secs(1), 0).is_some());
        assert!(s.first_warning());
    }
}
