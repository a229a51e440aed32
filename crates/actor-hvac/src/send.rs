//! SEND: a queue actor that appends each message it gets to the send file, one line each,
//! `TYPE::text`, written with one `write` and flushed per message so that `tail -f` shows
//! every line as it comes (this is what the device would upload).
//!
//! A write that fails (disk full, read-only file system) is not fixed by a restart: SEND
//! reports a [`HvacEvent::Fatal`] once, and the root stops the whole system cleanly (exit 2).
//! It keeps taking its messages until then, so the stop still accounts for every one.

use crate::messages::{HvacEvent, LineKind, SendLine};
use actor_core::{loops, Actor, ActorError, Context};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// The line written for one message: `TYPE::text\n`, the text kept on one line.
///
/// ```
/// use actor_hvac::messages::LineKind;
/// use actor_hvac::send::format_line;
/// assert_eq!(format_line(LineKind::Status, "OKAY"), "STATUS::OKAY\n");
/// assert_eq!(format_line(LineKind::Error, "a\nb"), "ERROR::a b\n");
/// ```
pub fn format_line(kind: LineKind, text: &str) -> String {
    format!("{kind}::{}\n", crate::protocol::one_line(text))
}

/// SEND's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendArgs {
    /// The send file (appended to; created if missing).
    pub path: PathBuf,
}

/// The SEND actor.
pub struct SendActor {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    failed: u64,
}

impl SendActor {
    fn write(&mut self, ctx: &mut Context<Self>, line: SendLine) {
        let text = format_line(line.kind, &line.text);
        let result = match self.file.as_mut() {
            Some(file) => file.write_all(text.as_bytes()).and_then(|()| file.flush()),
            None => Err(std::io::Error::other("the send file is not open")),
        };
        match result {
            Ok(()) => self.written += 1,
            Err(e) => {
                self.failed += 1;
                slog::error!(ctx.log(), "cannot write to {}: {e}", self.path.display(); "lost_lines" => self.failed);
                if self.failed == 1 {
                    let why = format!("cannot write the send file {}: {e}", self.path.display());
                    if let Err(e) = ctx.emit(HvacEvent::Fatal(why)) {
                        slog::error!(ctx.log(), "cannot report the failure to the root: {e}");
                    }
                }
            }
        }
    }
}

impl Actor for SendActor {
    type Args = SendArgs;
    type Msg = SendLine;
    type Event = HvacEvent;

    fn init_args(args: SendArgs) -> Result<Self, ActorError> {
        Ok(Self {
            path: args.path,
            file: None,
            written: 0,
            failed: 0,
        })
    }

    fn startup(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                ActorError::new(format!("cannot open the send file {}", self.path.display()))
                    .with_cause(e)
            })?;
        self.file = Some(file);
        slog::info!(ctx.log(), "appending to {}", self.path.display());
        Ok(())
    }

    fn main_loop(&mut self, ctx: &mut Context<Self>) -> Result<(), ActorError> {
        loops::queue(self, ctx, |this, ctx, line| {
            this.write(ctx, line);
            Ok(())
        })
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        if let Some(file) = self.file.take() {
            // A clean stop leaves every line on disk, not only in the page cache.
            if let Err(e) = file.sync_all() {
                slog::warn!(ctx.log(), "cannot sync {}: {e}", self.path.display());
            }
        }
        slog::info!(ctx.log(), "wrote {} lines to {}", self.written, self.path.display(); "failed" => self.failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actor_core::Outcome;
    use actor_ipc::testkit::TestKit;
    use std::time::Duration;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hvac-send-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir.join("send_file.txt")
    }

    #[test]
    fn each_message_is_one_line_on_disk_at_once() {
        let path = temp_file("lines");
        std::fs::write(&path, "STATUS::OKAY\n").expect("an earlier run's line");
        let kit = TestKit::<SendActor>::start(SendArgs { path: path.clone() }).expect("started");
        kit.send(SendLine {
            kind: LineKind::Status,
            text: "NOT-OKAY memory low".into(),
        })
        .expect("sent");
        assert!(kit.wait_handled(1, Duration::from_secs(5)));
        // Written and flushed per message: visible before the actor stops.
        let now = std::fs::read_to_string(&path).expect("read");
        assert_eq!(now, "STATUS::OKAY\nSTATUS::NOT-OKAY memory low\n");
        kit.send(SendLine {
            kind: LineKind::Observation,
            text: "seq=1 temp=20.00C".into(),
        })
        .expect("sent");
        kit.send(SendLine {
            kind: LineKind::Error,
            text: "two\nlines".into(),
        })
        .expect("sent");
        assert_eq!(kit.stop(), Outcome::Clean);
        let all = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            all,
            "STATUS::OKAY\nSTATUS::NOT-OKAY memory low\nOBSERVATION::seq=1 temp=20.00C\nERROR::two lines\n"
        );
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn a_send_file_that_cannot_be_opened_fails_the_start() {
        let err = TestKit::<SendActor>::start(SendArgs {
            path: "/no/such/dir/send_file.txt".into(),
        })
        .err()
        .expect("the start fails");
        assert!(
            err.contains("cannot open the send file /no/such/dir/send_file.txt"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_write_is_reported_once_as_fatal() {
        // /dev/full accepts the open and fails every write with ENOSPC: a full disk.
        let kit = TestKit::<SendActor>::start(SendArgs {
            path: "/dev/full".into(),
        })
        .expect("started");
        for n in 0..3 {
            kit.send(SendLine {
                kind: LineKind::Status,
                text: format!("OKAY {n}"),
            })
            .expect("sent");
        }
        assert!(kit.wait_handled(3, Duration::from_secs(5)));
        match kit.next_event(Duration::from_secs(5)) {
            Some(HvacEvent::Fatal(why)) => {
                assert!(
                    why.contains("cannot write the send file /dev/full"),
                    "{why}"
                )
            }
            other => panic!("expected a fatal event, got {other:?}"),
        }
        assert!(kit.events().is_empty(), "reported once");
        assert_eq!(kit.stop(), Outcome::Clean);
    }
}
