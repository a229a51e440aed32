//! What the cluster tells a root: nodes going down and coming back.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A change in the cluster as this process saw it. A root gets these through
/// [`Cluster::forward_events`](crate::Cluster::forward_events) (as its own application
/// events) or [`Cluster::events`](crate::Cluster::events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterEvent {
    /// A node was silent for longer than [`DEAD_AFTER`](crate::DEAD_AFTER): its actors'
    /// addresses say `Disconnected`, and what was on its way to it is counted in doubt.
    /// Also what every node looks like while this process has lost the server.
    NodeDown {
        /// The node's name.
        node: String,
        /// How long it had been silent when this process noticed.
        silent_ms: u64,
    },
    /// A node that was down (or restarted under the same name) is heard from again: its
    /// actors are reachable again through the same addresses.
    NodeUp {
        /// The node's name.
        node: String,
        /// True if it is a new incarnation (its process was restarted), false if only the
        /// connection came back.
        restarted: bool,
    },
}

impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterEvent::NodeDown { node, silent_ms } => {
                write!(f, "node {node} is down (silent for {silent_ms} ms)")
            }
            ClusterEvent::NodeUp { node, restarted } => write!(
                f,
                "node {node} is up again ({})",
                if *restarted {
                    "restarted"
                } else {
                    "reconnected"
                }
            ),
        }
    }
}
