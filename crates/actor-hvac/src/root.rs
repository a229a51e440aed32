//! The root's part of the application: the [`Router`] that the root's event handler runs
//! (STATUS and OBSERVATION events and errors to SEND, requests to the request handler and
//! its answer back to LISTEN), and the request handler itself, [`handle_request`], a pure
//! function.

use crate::messages::{HvacEvent, LineKind, ListenMsg, ObservationMsg, SendLine};
use crate::protocol::{Answer, Command};
use actor_core::clock::Stamp;
use actor_core::SendTimeoutError;
use actor_ipc::{ActorStatus, Addr, RootCtx};
use std::time::Duration;

/// How long the root waits for room in SEND's or LISTEN's mailbox: a short, bounded wait,
/// because the root also watches the children.
pub const ROUTE_TIMEOUT: Duration = Duration::from_millis(100);

/// What the root does besides answering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Stop the whole system cleanly.
    Stop,
    /// Tell OBSERVATION to work towards this setpoint.
    SetPoint(f64),
}

/// What the request handler sees of the system.
#[derive(Debug, Clone)]
pub struct SystemView {
    /// The root's uptime.
    pub uptime: Duration,
    /// The setpoint the root last asked for, °C.
    pub setpoint: f64,
    /// Each actor, in start order (`RootCtx::status`).
    pub actors: Vec<ActorStatus>,
}

/// Answers one request: the answer for the client, and what the root must do.
///
/// ```
/// use actor_hvac::protocol::{Answer, Command};
/// use actor_hvac::root::{handle_request, Action, SystemView};
/// let view = SystemView { uptime: Default::default(), setpoint: 21.0, actors: vec![] };
/// let (answer, action) = handle_request(&Command::End, &view);
/// assert_eq!(answer, Answer::Reply("END".into()));
/// assert_eq!(action, Some(Action::Stop));
/// ```
pub fn handle_request(command: &Command, view: &SystemView) -> (Answer, Option<Action>) {
    match command {
        Command::End => (Answer::Reply("END".into()), Some(Action::Stop)),
        Command::Status => (Answer::Reply(status_line(view)), None),
        Command::Set(t) => (
            Answer::Reply(format!("SETPOINT {t:.1}C (was {:.1}C)", view.setpoint)),
            Some(Action::SetPoint(*t)),
        ),
        Command::Echo(text) => (Answer::Reply(text.clone()), None),
    }
}

/// The one-line live view `REQUEST STATUS` answers with:
///
/// ```text
/// up=0:12.345 setpoint=21.0C | SEND pid=101 running handled=12 restarts=0 up=12.3s | LISTEN ...
/// ```
pub fn status_line(view: &SystemView) -> String {
    let mut line = format!("up={} setpoint={:.1}C", Stamp(view.uptime), view.setpoint);
    for a in &view.actors {
        line.push_str(&format!(
            " | {} pid={} {} handled={} restarts={} up={:.1}s",
            a.name,
            a.pid,
            a.state,
            a.handled,
            a.restarts,
            a.uptime.as_secs_f64()
        ));
    }
    line
}

/// The addresses the root routes to.
pub struct Routes {
    /// SEND's inbox.
    pub send: Addr<SendLine>,
    /// LISTEN's inbox.
    pub listen: Addr<ListenMsg>,
    /// OBSERVATION's inbox.
    pub observation: Addr<ObservationMsg>,
}

/// The root's event handler, with what it must remember between events.
pub struct Router {
    routes: Routes,
    clock: actor_core::AppClock,
    setpoint: f64,
    fatal: Option<String>,
    dropped: u64,
}

impl Router {
    /// A router for these addresses; `setpoint` is the one OBSERVATION started with.
    pub fn new(routes: Routes, clock: actor_core::AppClock, setpoint: f64) -> Self {
        Self {
            routes,
            clock,
            setpoint,
            fatal: None,
            dropped: 0,
        }
    }

    /// The fatal event that stopped the system, if one did.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Lines that could not be handed to SEND.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Handles one event from actor `from`.
    pub fn on_event(&mut self, root: &mut RootCtx<'_, HvacEvent>, from: &str, event: HvacEvent) {
        match event {
            HvacEvent::Status(status) => self.record(root, LineKind::Status, status.to_string()),
            HvacEvent::Observation(reading) => {
                // A restarted OBSERVATION starts from its first setpoint: bring it back to
                // the one last asked for (also repairs a lost SetPoint message).
                if (reading.setpoint - self.setpoint).abs() > 1e-9 {
                    let _ = self
                        .routes
                        .observation
                        .try_send(ObservationMsg::SetPoint(self.setpoint));
                }
                self.record(root, LineKind::Observation, reading.to_string());
            }
            HvacEvent::Error(text) => {
                slog::warn!(root.log(), "error reported by {from}: {text}");
                self.record(root, LineKind::Error, text);
            }
            HvacEvent::Fatal(text) => {
                slog::error!(
                    root.log(),
                    "fatal event from {from}: {text}: stopping the system"
                );
                if self.fatal.is_none() {
                    self.fatal = Some(format!("{from}: {text}"));
                }
                // An orderly stop, with exit code 2.
                root.request_fatal_stop(from, text);
            }
            HvacEvent::Request {
                incarnation,
                id,
                command,
            } => self.on_request(root, incarnation, id, command),
        }
    }

    fn on_request(
        &mut self,
        root: &mut RootCtx<'_, HvacEvent>,
        incarnation: u32,
        id: u64,
        command: Command,
    ) {
        let view = SystemView {
            uptime: self.clock.elapsed(),
            setpoint: self.setpoint,
            actors: root.status(),
        };
        let (mut answer, action) = handle_request(&command, &view);
        match action {
            Some(Action::SetPoint(t)) => {
                match self
                    .routes
                    .observation
                    .send_timeout(ObservationMsg::SetPoint(t), ROUTE_TIMEOUT)
                {
                    Ok(()) => {
                        slog::info!(root.log(), "setpoint {t:.1}C (was {:.1}C)", self.setpoint);
                        self.setpoint = t;
                    }
                    Err(e) => {
                        answer =
                            Answer::Error(format!("cannot pass the setpoint to OBSERVATION: {e}"));
                    }
                }
            }
            Some(Action::Stop) | None => {}
        }
        let reply = ListenMsg::Reply {
            incarnation,
            id,
            answer,
        };
        if let Err(e) = self.routes.listen.send_timeout(reply, ROUTE_TIMEOUT) {
            slog::warn!(
                root.log(),
                "cannot pass the reply to request {id} to LISTEN: {e}"
            );
        }
        // After the reply: it is queued ahead of LISTEN's stop request, so the client gets it.
        if action == Some(Action::Stop) {
            slog::info!(root.log(), "REQUEST END from a client: stopping");
            root.request_stop("REQUEST END from a client");
        }
    }

    fn record(&mut self, root: &mut RootCtx<'_, HvacEvent>, kind: LineKind, text: String) {
        match self
            .routes
            .send
            .send_timeout(SendLine { kind, text }, ROUTE_TIMEOUT)
        {
            Ok(()) => {}
            Err(SendTimeoutError::Disconnected(_)) => {
                // SEND is gone for good: the system is stopping.
                self.dropped += 1;
                slog::debug!(root.log(), "SEND is gone: a {kind} line is not recorded");
            }
            Err(e) => {
                self.dropped += 1;
                slog::warn!(root.log(), "a {kind} line is not recorded: SEND's {e}"; "dropped" => self.dropped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> SystemView {
        SystemView {
            uptime: Duration::from_millis(12_345),
            setpoint: 21.0,
            actors: vec![
                ActorStatus {
                    name: "SEND".into(),
                    pid: 101,
                    state: actor_ipc::ActorState::Running,
                    handled: 12,
                    restarts: 0,
                    uptime: Duration::from_millis(12_300),
                },
                ActorStatus {
                    name: "LISTEN".into(),
                    pid: 102,
                    state: actor_ipc::ActorState::Restarting,
                    handled: 3,
                    restarts: 1,
                    uptime: Duration::ZERO,
                },
            ],
        }
    }

    #[test]
    fn plain_requests_are_echoed() {
        let (answer, action) = handle_request(&Command::Echo("TEST REQUEST 1".into()), &view());
        assert_eq!(answer, Answer::Reply("TEST REQUEST 1".into()));
        assert_eq!(action, None);
    }

    #[test]
    fn end_replies_then_stops() {
        assert_eq!(
            handle_request(&Command::End, &view()),
            (Answer::Reply("END".into()), Some(Action::Stop))
        );
    }

    #[test]
    fn set_changes_the_setpoint_and_says_from_what() {
        assert_eq!(
            handle_request(&Command::Set(23.5), &view()),
            (
                Answer::Reply("SETPOINT 23.5C (was 21.0C)".into()),
                Some(Action::SetPoint(23.5))
            )
        );
    }

    #[test]
    fn status_is_one_line_with_every_actor() {
        let (answer, action) = handle_request(&Command::Status, &view());
        assert_eq!(action, None);
        assert_eq!(
            answer,
            Answer::Reply(
                "up=0:12.345 setpoint=21.0C | SEND pid=101 running handled=12 restarts=0 up=12.3s | LISTEN pid=102 restarting handled=3 restarts=1 up=0.0s".into()
            )
        );
    }
}
