//! STATUS: a timer actor that checks the device's health and reports a status event when it
//! changes: `OKAY`, or `NOT-OKAY` with the reasons.
//!
//! The checks are real: free space where the send file is written, memory available, and the
//! load per CPU. Measuring ([`probe`]) is kept apart from judging ([`evaluate`]) and from
//! noticing a change ([`StatusTracker`]), so the judging is unit-tested with made-up probes.
//! A reason names the limit, not the measured number, so a status does not "change" at every
//! check because a number moved; the numbers go to the log.

use crate::messages::HvacEvent;
use actor_core::{Actor, ActorError, Context};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The device's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Every check passed.
    Okay,
    /// At least one check failed; the reasons, joined with `; `.
    NotOkay(String),
}

impl fmt::Display for Status {
    /// `OKAY` or `NOT-OKAY <reasons>`: the text of a `STATUS::` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Okay => f.write_str("OKAY"),
            Status::NotOkay(why) => write!(f, "NOT-OKAY {why}"),
        }
    }
}

/// The limits a healthy device stays within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Free bytes needed where the send file is written.
    pub min_disk_free: u64,
    /// Memory available, in % of the total.
    pub min_memory_available: f64,
    /// One-minute load average per CPU.
    pub max_load_per_cpu: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_disk_free: 64 * 1024 * 1024,
            min_memory_available: 5.0,
            max_load_per_cpu: 4.0,
        }
    }
}

/// One round of measurements. `None` means "cannot be measured here" (no `/proc`): not a
/// failure; an `Err` means the measurement itself failed, which is.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The directory the send file is written to.
    pub dir: PathBuf,
    /// Free bytes there (for an unprivileged writer).
    pub disk_free: Result<u64, String>,
    /// Memory available, % of total.
    pub memory_available: Option<f64>,
    /// One-minute load average per CPU.
    pub load_per_cpu: Option<f64>,
}

/// Judges a probe against the limits.
///
/// ```
/// use actor_hvac::status::{evaluate, Limits, Probe, Status};
/// let probe = Probe { dir: ".".into(), disk_free: Ok(1 << 40),
///                     memory_available: Some(50.0), load_per_cpu: Some(0.3) };
/// assert_eq!(evaluate(&probe, &Limits::default()), Status::Okay);
/// ```
pub fn evaluate(probe: &Probe, limits: &Limits) -> Status {
    let mut reasons = Vec::new();
    match &probe.disk_free {
        Ok(free) if *free < limits.min_disk_free => reasons.push(format!(
            "disk space low at {} (under {} MiB free)",
            probe.dir.display(),
            limits.min_disk_free / (1024 * 1024)
        )),
        Ok(_) => {}
        Err(e) => reasons.push(format!(
            "cannot check disk space at {}: {e}",
            probe.dir.display()
        )),
    }
    if let Some(mem) = probe.memory_available {
        if mem < limits.min_memory_available {
            reasons.push(format!(
                "memory low (under {}% available)",
                limits.min_memory_available
            ));
        }
    }
    if let Some(load) = probe.load_per_cpu {
        if load > limits.max_load_per_cpu {
            reasons.push(format!(
                "overloaded (load over {} per CPU)",
                limits.max_load_per_cpu
            ));
        }
    }
    if reasons.is_empty() {
        Status::Okay
    } else {
        Status::NotOkay(reasons.join("; "))
    }
}

/// Remembers the last status and says when a new one differs.
#[derive(Debug, Default, Clone)]
pub struct StatusTracker {
    last: Option<Status>,
}

impl StatusTracker {
    /// A tracker that has seen nothing: the first status is a change.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(status)` if it differs from the last one (or is the first).
    pub fn update(&mut self, status: Status) -> Option<Status> {
        if self.last.as_ref() == Some(&status) {
            return None;
        }
        self.last = Some(status.clone());
        Some(status)
    }
}

/// Measures the device: free space in `dir`, memory and load from `/proc`.
pub fn probe(dir: &Path) -> Probe {
    Probe {
        dir: dir.to_path_buf(),
        disk_free: disk_free(dir),
        memory_available: memory_available(),
        load_per_cpu: load_per_cpu(),
    }
}

fn disk_free(dir: &Path) -> Result<u64, String> {
    let st = rustix::fs::statvfs(dir).map_err(|e| e.to_string())?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn memory_available() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// `MemAvailable` as a % of `MemTotal`, from the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| available / total * 100.0)
}

fn load_per_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(load / cpus as f64)
}

/// STATUS's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusArgs {
    /// How often to check.
    pub interval: Duration,
    /// Where the send file is written (its free space is checked).
    pub dir: PathBuf,
    /// What healthy means.
    pub limits: Limits,
}

/// The STATUS actor.
pub struct StatusActor {
    args: StatusArgs,
    tracker: StatusTracker,
}

impl StatusActor {
    fn check(&mut self, ctx: &mut Context<Self>) {
        let probe = probe(&self.args.dir);
        let status = evaluate(&probe, &self.args.limits);
        slog::trace!(ctx.log(), "health: {status}";
            "disk_free_mib" => probe.disk_free.as_ref().map(|b| b / (1024 * 1024)).unwrap_or(0),
            "memory_available_pct" => probe.memory_available.map(|m| format!("{m:.1}")).unwrap_or_default(),
            "load_per_cpu" => probe.load_per_cpu.map(|l| format!("{l:.2}")).unwrap_or_default());
        if let Some(changed) = self.tracker.update(status) {
            match &changed {
                Status::Okay => slog::info!(ctx.log(), "status: {changed}"),
                Status::NotOkay(_) => slog::warn!(ctx.log(), "status: {changed}"),
            }
            if let Err(e) = ctx.emit(HvacEvent::Status(changed)) {
                // The next change is reported anyway; a lost one is not worth a restart.
                slog::warn!(ctx.log(), "cannot report the status to the root: {e}");
            }
        }
    }
}

impl Actor for StatusActor {
    type Args = StatusArgs;
    type Msg = ();
    type Event = HvacEvent;

    fn init_args(args: StatusArgs) -> Result<Self, ActorError> {
        Ok(Self {
            args,
            tracker: StatusTracker::new(),
        })
    }

    /// The first status right away (it is a change from "unknown"), then every interval.
    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.check(ctx);
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.args.interval)
    }

    fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        self.check(ctx);
        Ok(())
    }

    /// It takes no messages of its own (its inbox only carries the stop).
    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), ActorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Probe {
        Probe {
            dir: "/data".into(),
            disk_free: Ok(10 << 30),
            memory_available: Some(40.0),
            load_per_cpu: Some(0.5),
        }
    }

    #[test]
    fn a_healthy_device_is_okay() {
        assert_eq!(evaluate(&healthy(), &Limits::default()), Status::Okay);
        assert_eq!(Status::Okay.to_string(), "OKAY");
    }

    #[test]
    fn each_failed_check_is_a_reason() {
        let limits = Limits::default();
        let low_disk = Probe {
            disk_free: Ok(1 << 20),
            ..healthy()
        };
        assert_eq!(
            evaluate(&low_disk, &limits).to_string(),
            "NOT-OKAY disk space low at /data (under 64 MiB free)"
        );
        let everything = Probe {
            disk_free: Err("Permission denied".into()),
            memory_available: Some(1.0),
            load_per_cpu: Some(9.0),
            ..healthy()
        };
        let Status::NotOkay(why) = evaluate(&everything, &limits) else {
            panic!("expected NOT-OKAY");
        };
        assert_eq!(
            why,
            "cannot check disk space at /data: Permission denied; memory low (under 5% available); overloaded (load over 4 per CPU)"
        );
    }

    #[test]
    fn what_cannot_be_measured_does_not_count() {
        let no_proc = Probe {
            memory_available: None,
            load_per_cpu: None,
            ..healthy()
        };
        assert_eq!(evaluate(&no_proc, &Limits::default()), Status::Okay);
    }

    #[test]
    fn only_changes_are_reported() {
        let mut t = StatusTracker::new();
        assert_eq!(t.update(Status::Okay), Some(Status::Okay));
        assert_eq!(t.update(Status::Okay), None);
        let bad = Status::NotOkay("memory low".into());
        assert_eq!(t.update(bad.clone()), Some(bad.clone()));
        assert_eq!(t.update(bad), None);
        let other = Status::NotOkay("overloaded".into());
        assert_eq!(t.update(other.clone()), Some(other));
        assert_eq!(t.update(Status::Okay), Some(Status::Okay));
    }

    #[test]
    fn meminfo_parses() {
        let text = "MemTotal:       8000000 kB\nMemFree:  100 kB\nMemAvailable:   2000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(25.0));
        assert_eq!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB"), None);
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn the_real_probe_measures_this_machine() {
        let p = probe(Path::new("."));
        assert!(p.disk_free.is_ok(), "{:?}", p.disk_free);
        let missing = probe(Path::new("/no/such/dir/anywhere"));
        assert!(missing.disk_free.is_err());
        assert!(matches!(
            evaluate(&missing, &Limits::default()),
            Status::NotOkay(_)
        ));
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;
    use actor_core::Outcome;
    use actor_ipc::testkit::TestKit;

    #[test]
    fn the_first_status_comes_at_once_and_unchanged_ones_do_not_repeat() {
        let kit = TestKit::<StatusActor>::start(StatusArgs {
            // Long: the first status must not wait for a tick.
            interval: Duration::from_secs(60),
            dir: "/no/such/dir".into(),
            limits: Limits::default(),
        })
        .expect("started");
        match kit.next_event(Duration::from_secs(5)) {
            Some(HvacEvent::Status(Status::NotOkay(why))) => {
                assert!(
                    why.starts_with("cannot check disk space at /no/such/dir"),
                    "{why}"
                )
            }
            other => panic!("expected NOT-OKAY, got {other:?}"),
        }
        assert_eq!(kit.stop(), Outcome::Clean);

        let kit = TestKit::<StatusActor>::start(StatusArgs {
            interval: Duration::from_millis(10),
            dir: ".".into(),
            // Limits nothing can break: always OKAY.
            limits: Limits {
                min_disk_free: 0,
                min_memory_available: 0.0,
                max_load_per_cpu: f64::INFINITY,
            },
        })
        .expect("started");
        assert_eq!(
            kit.next_event(Duration::from_secs(5)),
            Some(HvacEvent::Status(Status::Okay))
        );
        // Ten more checks, no change, no event.
        assert_eq!(kit.next_event(Duration::from_millis(100)), None);
        assert_eq!(kit.stop(), Outcome::Clean);
    }
}
