//! SEND: a queue actor that appends each message it gets to the send file, one line each,
//! `TYPE::text`, written with one `write` per message so that `tail -f` shows every line as
//! it comes (this is what the device would upload).
//!
//! * A line is on disk whole or not at all: a write that the disk cuts short (it filled up
//!   in the middle of the line) is undone by truncating the file back to where it was.
//! * A full disk (`ENOSPC`, `EDQUOT`) is weathered: the lines that do not fit are dropped and
//!   counted, one ERROR line says when the disk filled up, one WARN line when writing
//!   resumes and how many lines were lost in between (a burst, not one line per lost line).
//! * Any other write error (a read-only file system, an I/O error) is not fixed by waiting
//!   or by a restart: SEND reports a [`HvacEvent::Fatal`] once, and the root stops the whole
//!   system cleanly (exit 2). It keeps taking its messages until then, so the stop still
//!   accounts for every one.

use crate::messages::{HvacEvent, LineKind, SendLine};
use actor_core::{Actor, ActorError, Context};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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

/// Where lines are appended: the send file, or a stand-in in tests.
pub trait AppendTarget {
    /// One `write` of `buf` at the end: how many bytes it took.
    fn write_once(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// The target's length now.
    fn size(&self) -> io::Result<u64>;
    /// Cuts the target back to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl AppendTarget for File {
    fn write_once(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// What became of one line.
#[derive(Debug)]
pub enum Appended {
    /// On disk, whole. `resumed_after` is how many lines the full disk cost before it, when
    /// this is the first line written after a burst of lost ones.
    Written {
        /// Lines lost in the burst that just ended.
        resumed_after: Option<u64>,
    },
    /// Not written (nothing of it is on disk): the disk is full. `first` is true for the
    /// first line of a burst.
    Dropped {
        /// The first loss of a burst: the moment to say so.
        first: bool,
        /// Why.
        why: io::Error,
    },
    /// Not written, and waiting will not help (not a full disk).
    Failed(io::Error),
}

/// True for the errors of a disk that has no room now but may later.
fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Appends whole lines to an [`AppendTarget`]: each line is there whole or not at all.
#[derive(Debug, Default)]
pub struct LineAppender {
    /// Lines written.
    pub written: u64,
    /// Lines lost to a full disk, over the whole run.
    pub lost: u64,
    /// Lines lost in the current burst (0 while writes succeed).
    lost_in_burst: u64,
}

impl LineAppender {
    /// Writes `line` with one `write`; a short write is undone, so no torn line is left.
    pub fn append(&mut self, target: &mut impl AppendTarget, line: &[u8]) -> Appended {
        let written = loop {
            match target.write_once(line) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let why = match written {
            Ok(n) if n == line.len() => {
                self.written += 1;
                let lost = std::mem::take(&mut self.lost_in_burst);
                return Appended::Written {
                    resumed_after: (lost > 0).then_some(lost),
                };
            }
            Ok(n) => {
                // Cut short: the disk filled up inside this line. Take its start back off.
                let undone = target
                    .size()
                    .and_then(|len| target.truncate(len.saturating_sub(n as u64)));
                if let Err(e) = undone {
                    return Appended::Failed(io::Error::other(format!(
                        "a line was cut short by a full disk and could not be undone: {e}"
                    )));
                }
                io::Error::from_raw_os_error(libc::ENOSPC)
            }
            Err(e) if is_full(&e) => e,
            Err(e) => return Appended::Failed(e),
        };
        self.lost += 1;
        self.lost_in_burst += 1;
        Appended::Dropped {
            first: self.lost_in_burst == 1,
            why,
        }
    }
}

/// The SEND actor.
pub struct SendActor {
    path: PathBuf,
    file: Option<File>,
    lines: LineAppender,
    /// Lines not written for another reason than a full disk (after the fatal report).
    failed: u64,
}

impl SendActor {
    fn write(&mut self, ctx: &mut Context<Self>, line: SendLine) {
        let text = format_line(line.kind, &line.text);
        let appended = match self.file.as_mut() {
            Some(file) => self.lines.append(file, text.as_bytes()),
            None => Appended::Failed(io::Error::other("the send file is not open")),
        };
        match appended {
            Appended::Written {
                resumed_after: None,
            } => {}
            Appended::Written {
                resumed_after: Some(lost),
            } => slog::warn!(
                ctx.log(),
                "writing to {} again: {lost} lines were lost while the disk was full",
                self.path.display();
                "lost_total" => self.lines.lost
            ),
            Appended::Dropped { first: true, why } => slog::error!(
                ctx.log(),
                "{} is full ({why}): lines are dropped and counted until there is room again",
                self.path.display()
            ),
            Appended::Dropped { first: false, .. } => {}
            Appended::Failed(e) => {
                self.failed += 1;
                slog::error!(ctx.log(), "cannot write to {}: {e}", self.path.display(); "failed_lines" => self.failed);
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
            lines: LineAppender::default(),
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

    fn handle(&mut self, ctx: &mut Context<Self>, line: SendLine) -> Result<(), ActorError> {
        self.write(ctx, line);
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        if let Some(file) = self.file.take() {
            // A clean stop leaves every line on disk, not only in the page cache.
            if let Err(e) = file.sync_all() {
                slog::warn!(ctx.log(), "cannot sync {}: {e}", self.path.display());
            }
        }
        slog::info!(ctx.log(), "wrote {} lines to {}", self.lines.written, self.path.display();
            "lost_to_full_disk" => self.lines.lost, "failed" => self.failed);
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
        // The cause chain, level by level: the actor's message over the I/O error.
        let actor_ipc::testkit::KitError::StartFailed(chain) = err else {
            panic!("not a failed start: {err}");
        };
        let levels = chain.messages();
        assert_eq!(levels.len(), 3, "{levels:?}");
        assert_eq!(levels[0], "startup failed");
        assert_eq!(
            levels[1],
            "cannot open the send file /no/such/dir/send_file.txt"
        );
        assert!(levels[2].contains("No such file"), "{levels:?}");
    }

    #[test]
    fn a_full_disk_drops_lines_without_stopping_the_device() {
        // /dev/full accepts the open and fails every write with ENOSPC: a full disk. That is
        // weathered (lines dropped and counted), not fatal.
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
        assert!(kit.events().is_empty(), "a full disk is not fatal");
        assert_eq!(kit.stop(), Outcome::Clean);
    }

    /// A disk with `room` bytes left, that can be given more room.
    struct SmallDisk {
        data: Vec<u8>,
        room: usize,
    }

    impl AppendTarget for SmallDisk {
        fn write_once(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn size(&self) -> io::Result<u64> {
            Ok(self.data.len() as u64)
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            let cut = self.data.len() - len as usize;
            self.data.truncate(len as usize);
            self.room += cut;
            Ok(())
        }
    }

    #[test]
    fn a_line_is_whole_or_absent_and_writing_resumes_when_room_returns() {
        let mut disk = SmallDisk {
            data: Vec::new(),
            room: 20,
        };
        let mut lines = LineAppender::default();
        let line = format_line(LineKind::Observation, "seq=1 temp=20.00C"); // 31 bytes
        let short = format_line(LineKind::Status, "OKAY"); // 13 bytes
                                                           // The first line does not fit: it is cut short by the disk, and undone.
        assert!(matches!(
            lines.append(&mut disk, line.as_bytes()),
            Appended::Dropped { first: true, .. }
        ));
        assert!(
            disk.data.is_empty(),
            "a torn line was left: {:?}",
            disk.data
        );
        // A shorter one fits; then the disk fills: later lines are lost, one burst.
        assert!(matches!(
            lines.append(&mut disk, short.as_bytes()),
            Appended::Written {
                resumed_after: Some(1)
            }
        ));
        assert!(matches!(
            lines.append(&mut disk, short.as_bytes()),
            Appended::Dropped { first: true, .. }
        ));
        for _ in 0..3 {
            assert!(matches!(
                lines.append(&mut disk, line.as_bytes()),
                Appended::Dropped { first: false, .. }
            ));
        }
        assert_eq!(disk.data, short.as_bytes(), "only whole lines on disk");
        // Room returns: writing resumes, and says how many the burst cost.
        disk.room = 1000;
        assert!(matches!(
            lines.append(&mut disk, line.as_bytes()),
            Appended::Written {
                resumed_after: Some(4)
            }
        ));
        assert!(matches!(
            lines.append(&mut disk, line.as_bytes()),
            Appended::Written {
                resumed_after: None
            }
        ));
        assert_eq!((lines.written, lines.lost), (3, 5));
        let text = String::from_utf8(disk.data.clone()).expect("text");
        assert!(text
            .lines()
            .all(|l| l == short.trim_end() || l == line.trim_end()));
    }

    #[test]
    fn another_write_error_is_fatal() {
        let mut lines = LineAppender::default();
        struct ReadOnly;
        impl AppendTarget for ReadOnly {
            fn write_once(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::EROFS))
            }
            fn size(&self) -> io::Result<u64> {
                Ok(0)
            }
            fn truncate(&mut self, _: u64) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            lines.append(&mut ReadOnly, b"STATUS::OKAY\n"),
            Appended::Failed(_)
        ));
    }
}
