//! What travels between the processes: the one event type every actor reports to the root
//! with, and the message type of each inbox.

use crate::protocol::{Answer, Command};
use crate::status::Status;
use crate::thermal::Reading;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The application's event: every actor of the system reports with it (`Actor::Event`), and
/// the root's router decides where each goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HvacEvent {
    /// STATUS: the device's health changed.
    Status(Status),
    /// OBSERVATION: a reading.
    Observation(Reading),
    /// LISTEN: a client's request, to answer with [`ListenMsg::Reply`].
    Request {
        /// The pid of the LISTEN process that asked: a reply meant for an earlier
        /// incarnation (before a restart) is never taken for a new request.
        incarnation: u32,
        /// The request's number within that incarnation (the `<id>` of `REPLY <id>`).
        id: u64,
        /// What the client asked for.
        command: Command,
    },
    /// Something worth recording in the send file (`ERROR::...`), but not worth a stop.
    Error(String),
    /// Something the actor cannot carry on from: the whole system stops cleanly, exit 2.
    Fatal(String),
}

/// The kind of a send-file line: its `TYPE` in `TYPE::text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    /// `STATUS::OKAY`, `STATUS::NOT-OKAY ...`
    Status,
    /// `OBSERVATION::seq=...`
    Observation,
    /// `ERROR::...`
    Error,
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineKind::Status => "STATUS",
            LineKind::Observation => "OBSERVATION",
            LineKind::Error => "ERROR",
        })
    }
}

/// SEND's message: one line for the send file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLine {
    /// Its type.
    pub kind: LineKind,
    /// Its text.
    pub text: String,
}

/// LISTEN's message: the root's answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListenMsg {
    /// The answer to request `id` of LISTEN incarnation `incarnation`.
    Reply {
        /// As in [`HvacEvent::Request`].
        incarnation: u32,
        /// As in [`HvacEvent::Request`].
        id: u64,
        /// What to tell the client.
        answer: Answer,
    },
}

/// OBSERVATION's message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ObservationMsg {
    /// Work towards this setpoint, °C.
    SetPoint(f64),
}
