//! Starting and ending child processes: re-execution of the current binary from one
//! long-lived thread, the parent-death signal, the process name, and kills.

use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Pids of this process's live children, for the third signal's SIGKILL.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` from the runtime's spawner thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process:
/// spawning from one thread that lives as long as the process means a child is never
/// signalled early because the user's thread that started the system has exited.
pub(crate) fn spawn(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Result<Sender<SpawnRequest>, String>> = OnceLock::new();
    let spawner = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = bounded::<SpawnRequest>(16);
            std::thread::Builder::new()
                .name("mpactor-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .map(|_| tx)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("spawner thread: {e}")))?;
    let (reply_tx, reply_rx) = bounded(1);
    spawner
        .send_timeout((cmd, reply_tx), Duration::from_secs(10))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    let child = reply_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| io::Error::other("the spawner thread did not answer within 10 s"))??;
    LIVE.lock().push(child.id());
    Ok(child)
}

/// The command that starts a child as `name` (its `argv[0]`), with `env` added to its
/// environment (what the bootstrap tells it).
pub(crate) fn child_command(name: &str, env: &[(&str, &str)]) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg0(name)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let parent = rustix::process::Pid::from_raw(std::process::id() as i32);
    // The parent-death signal is SIGCONT, not SIGTERM: the root's death is seen at once
    // by the child's lifeline (its socket closes), which stops the actor cleanly. What the
    // lifeline cannot do is run in a process that is stopped (SIGSTOP, Ctrl-Z): SIGCONT, the
    // one signal that resumes a stopped process whatever its handlers, makes sure it runs,
    // sees the root gone and ends, instead of staying stopped forever.
    let between_fork_and_exec = move || {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        set_parent_process_death_signal(Some(Signal::CONT))?;
        // The parent may have died between fork and prctl: then nobody would signal us. The
        // error ends the child before exec (and allocates nothing, as this place demands).
        if getppid() != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the closure makes only async-signal-safe calls between fork and exec (two
    // system calls, prctl and getppid) and allocates nothing.
    unsafe {
        cmd.pre_exec(between_fork_and_exec);
    }
    Ok(cmd)
}

/// This process's parent's pid (0 when it has none any more).
pub(crate) fn parent_pid() -> i32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

/// Restores SIGSEGV's default action. Rust's standard library handles SIGSEGV to report
/// stack overflows, and a SIGSEGV that is only sent (`kill -SEGV`), not a fault, then passes
/// without effect; an actor's process must end on it like on any fatal signal (a real stack
/// overflow still ends the process by SIGSEGV). Called before any other thread exists.
pub(crate) fn default_segv() {
    // SAFETY: signal(2) with the default disposition: no handler runs, nothing is shared.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
    }
}

/// Ends this process at once with `code`, running no destructor and no exit handler (they
/// may be stuck: this is the orphan's last resort).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Forgets a reaped child.
pub(crate) fn forget(pid: u32) {
    LIVE.lock().retain(|p| *p != pid);
}

/// Sends `signal` to `pid` (ignoring a pid that is already gone). Only for the third signal's
/// hard stop, which must not take locks a child's handle may hold; everything else signals
/// through [`ChildProc::signal`].
fn kill(pid: u32, signal: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        if let Some(signal) = signal_of(signal) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

/// The signals the runtime sends, as rustix names them.
fn signal_of(signal: i32) -> Option<rustix::process::Signal> {
    use rustix::process::Signal;
    Some(match signal {
        libc::SIGTERM => Signal::TERM,
        libc::SIGKILL => Signal::KILL,
        libc::SIGCONT => Signal::CONT,
        libc::SIGINT => Signal::INT,
        libc::SIGHUP => Signal::HUP,
        libc::SIGSTOP => Signal::STOP,
        _ => return None,
    })
}

/// SIGKILLs every live child: the third signal's hard stop.
pub(crate) fn kill_all_now() {
    for pid in LIVE.lock().iter() {
        kill(*pid, libc::SIGKILL);
    }
}

/// A child process of this one, with a pidfd where the kernel has them (Linux 5.3 and
/// later): signals go through the pidfd, so a pid that the system recycled after the child
/// was reaped is never hit, and the child's end is seen on the pidfd even when `waitpid`
/// cannot report it (the application set SIGCHLD to `SIG_IGN`, so the kernel reaped it).
pub(crate) struct ChildProc {
    child: Child,
    pidfd: Option<std::os::fd::OwnedFd>,
    /// How it ended, once known.
    ended: Option<std::process::ExitStatus>,
    /// It ended, but nobody could tell how (reaped by the kernel).
    ended_unknown: bool,
}

/// How a child's end was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Reaped, with its status.
    Status(std::process::ExitStatus),
    /// Gone, but its status was reaped by someone else (SIGCHLD ignored).
    Unknown,
}

impl ChildProc {
    /// Wraps a child just spawned (not reaped yet, so its pid is still its own).
    pub fn new(child: Child) -> Self {
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        Self {
            child,
            pidfd,
            ended: None,
            ended_unknown: false,
        }
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child if it has not been reaped. False if it could not be sent
    /// (the child is gone, or the signal is not one the runtime sends).
    pub fn signal(&self, signal: i32) -> bool {
        if self.ended.is_some() || self.ended_unknown {
            return false;
        }
        let Some(sig) = signal_of(signal) else {
            return false;
        };
        match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, sig).is_ok(),
            // No pidfds (an old kernel): the pid is still ours, since only this handle
            // reaps it and it has not.
            None => match rustix::process::Pid::from_raw(self.child.id() as i32) {
                Some(pid) => rustix::process::kill_process(pid, sig).is_ok(),
                None => false,
            },
        }
    }

    /// How it ended, without waiting: `None` while it runs.
    pub fn try_wait(&mut self) -> Option<Ended> {
        if let Some(status) = self.ended {
            return Some(Ended::Status(status));
        }
        if self.ended_unknown {
            return Some(Ended::Unknown);
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.ended = Some(status);
                forget(self.child.id());
                Some(Ended::Status(status))
            }
            Ok(None) => None,
            // waitpid failed (ECHILD: SIGCHLD is ignored and the kernel reaped it, or
            // someone else waited for it): the pidfd still says whether it is gone.
            Err(_) => {
                if self.pidfd_says_gone() {
                    self.ended_unknown = true;
                    forget(self.child.id());
                    Some(Ended::Unknown)
                } else {
                    None
                }
            }
        }
    }

    /// The pidfd, while the child has not been reaped: it becomes readable when the child
    /// ends, so the root sleeps in `poll` until then. `None` on kernels without pidfds.
    pub fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        if self.ended.is_some() || self.ended_unknown {
            return None;
        }
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// True when the pidfd is readable: the process has ended.
    fn pidfd_says_gone(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(fd) = &self.pidfd else {
            // Without a pidfd, a process that cannot be waited for and does not take a
            // null signal is gone.
            return rustix::process::Pid::from_raw(self.child.id() as i32)
                .is_none_or(|pid| rustix::process::test_kill_process(pid).is_err());
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// Waits `grace` for it to end; then SIGKILLs it and waits (bounded: SIGKILL cannot be
    /// ignored). `None` only if it is still there 2 s after SIGKILL.
    pub fn reap(&mut self, grace: Duration) -> Option<Ended> {
        if let Some(ended) = self.wait_until(std::time::Instant::now() + grace) {
            return Some(ended);
        }
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGKILL);
        self.wait_until(std::time::Instant::now() + Duration::from_secs(2))
    }

    /// Waits until the child has ended, at most until `deadline`: woken by its pidfd when it
    /// ends; without a pidfd, looking every 2 ms.
    fn wait_until(&mut self, deadline: std::time::Instant) -> Option<Ended> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            if let Some(ended) = self.try_wait() {
                return Some(ended);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match &self.pidfd {
                Some(fd) => {
                    let mut fds = [PollFd::new(fd, PollFlags::IN)];
                    let timeout = Timespec::try_from(left).unwrap_or(Timespec {
                        tv_sec: 2,
                        tv_nsec: 0,
                    });
                    // Readable once it has ended; EINTR or the deadline: look again.
                    let _ = poll(&mut fds, Some(&timeout));
                }
                None => std::thread::sleep(left.min(Duration::from_millis(2))),
            }
        }
    }
}

/// Sets this process's name as `ps` and `/proc/<pid>/comm` show it (15 bytes at most).
pub(crate) fn set_process_name(name: &str) {
    let _ = PROCESS_NAME.set(name.to_string());
    let bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    if let Ok(name) = std::ffi::CString::new(bytes) {
        let _ = rustix::thread::set_name(&name);
    }
}

/// The actor this process runs, once [`set_process_name`] said it.
static PROCESS_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Who this process is, for lines written without a logger: `NAME pid N`, or `root pid N`.
pub(crate) fn process_label() -> String {
    let name = PROCESS_NAME.get().map_or("root", String::as_str);
    format!("{name} pid {}", std::process::id())
}

/// The exit status as the runtime reports it.
pub(crate) fn exit_status(ended: Ended) -> actor_core::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let Ended::Status(status) = ended else {
        return actor_core::ExitStatus::Unknown;
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => actor_core::ExitStatus::Code(code),
        (None, Some(sig)) => actor_core::ExitStatus::Signal(sig),
        _ => actor_core::ExitStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_reaped_child_is_never_signalled_again() {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let mut proc = ChildProc::new(child);
        assert!(proc.signal(libc::SIGKILL), "a live child takes the signal");
        let ended = proc.reap(Duration::from_secs(5)).expect("reaped");
        assert!(matches!(ended, Ended::Status(_)));
        // Its pid may belong to another process by now: nothing is sent.
        assert!(!proc.signal(libc::SIGTERM));
    }
}
