//! OBSERVATION: a timer actor that takes a reading of the simulated room
//! ([`crate::thermal`]) every interval and reports it to the root. Its inbox takes new
//! setpoints ([`ObservationMsg::SetPoint`]) from the root's request handler.

use crate::messages::{HvacEvent, ObservationMsg};
use crate::thermal::{Params, RoomModel};
use actor_core::{Actor, ActorError, Context};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// OBSERVATION's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservationArgs {
    /// How often to take a reading.
    pub interval: Duration,
    /// The setpoint at the start, °C.
    pub setpoint: f64,
    /// The room model's constants.
    pub params: Params,
}

/// The OBSERVATION actor.
pub struct ObservationActor {
    interval: Duration,
    room: RoomModel,
    last: Instant,
}

impl Actor for ObservationActor {
    type Args = ObservationArgs;
    type Msg = ObservationMsg;
    type Event = HvacEvent;

    fn init_args(args: ObservationArgs) -> Result<Self, ActorError> {
        // Each incarnation gets its own noise; the physics is the same.
        let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
        Ok(Self {
            interval: args.interval,
            room: RoomModel::new(args.params, args.setpoint, seed),
            last: Instant::now(),
        })
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        slog::info!(
            ctx.log(),
            "room model: setpoint {:.1}C, a reading every {:?}",
            self.room.setpoint(),
            self.interval
        );
        self.last = Instant::now();
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    /// A reading: the room model advanced by the time that passed.
    fn tick(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let now = Instant::now();
        // The model advances by the time that really passed (a late tick is not lost), but
        // not by more than a few intervals after a stall.
        let elapsed = now.duration_since(self.last).min(self.interval * 5);
        self.last = now;
        let reading = self.room.step(elapsed);
        slog::debug!(ctx.log(), "reading {reading}");
        if let Err(e) = ctx.emit(HvacEvent::Observation(reading)) {
            // One reading lost is not worth a restart: the next comes an interval later.
            slog::warn!(ctx.log(), "cannot report reading {}: {e}", reading.seq);
        }
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: ObservationMsg) -> Result<(), ActorError> {
        match msg {
            ObservationMsg::SetPoint(setpoint) => {
                let old = self.room.set_setpoint(setpoint);
                if old != setpoint {
                    slog::info!(ctx.log(), "setpoint now {setpoint:.1}C (was {old:.1}C)");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actor_core::Outcome;
    use actor_ipc::testkit::TestKit;

    fn next_reading(kit: &TestKit<ObservationActor>) -> crate::thermal::Reading {
        match kit.next_event(Duration::from_secs(5)) {
            Some(HvacEvent::Observation(r)) => r,
            other => panic!("expected a reading, got {other:?}"),
        }
    }

    #[test]
    fn readings_come_every_interval_and_follow_the_setpoint() {
        let kit = TestKit::<ObservationActor>::start(ObservationArgs {
            interval: Duration::from_millis(20),
            setpoint: 21.0,
            params: Params::default(),
        })
        .expect("started");
        let first = next_reading(&kit);
        assert_eq!(first.seq, 1);
        assert_eq!(first.setpoint, 21.0);
        assert_eq!(next_reading(&kit).seq, 2);
        kit.send(ObservationMsg::SetPoint(16.0)).expect("sent");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = next_reading(&kit);
            if r.setpoint == 16.0 {
                break;
            }
            assert!(Instant::now() < deadline, "the setpoint never changed");
        }
        assert_eq!(kit.stop(), Outcome::Clean);
    }
}
