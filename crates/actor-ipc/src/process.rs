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

/// The command that starts a child running actor type `key` as `name`.
pub(crate) fn child_command(
    key: &str,
    name: &str,
    server: &str,
    secret: &str,
) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg0(name)
        .env(crate::bootstrap::ENV_CHILD, key)
        .env(crate::bootstrap::ENV_SERVER, server)
        .env(crate::bootstrap::ENV_SECRET, secret)
        .env(crate::bootstrap::ENV_NAME, name)
        .stdin(Stdio::null());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Forgets a reaped child.
pub(crate) fn forget(pid: u32) {
    LIVE.lock().retain(|p| *p != pid);
}

/// Sends `signal` to `pid` (ignoring a pid that is already gone).
pub(crate) fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// SIGKILLs every live child: the third signal's hard stop.
pub(crate) fn kill_all_now() {
    for pid in LIVE.lock().iter() {
        kill(*pid, libc::SIGKILL);
    }
}

/// Sets this process's name as `ps` and `/proc/<pid>/comm` show it (15 bytes at most).
pub(crate) fn set_process_name(name: &str) {
    let _ = PROCESS_NAME.set(name.to_string());
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    bytes.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0);
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
pub(crate) fn exit_status(status: std::process::ExitStatus) -> actor_core::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => actor_core::ExitStatus::Code(code),
        (None, Some(sig)) => actor_core::ExitStatus::Signal(sig),
        _ => actor_core::ExitStatus::Code(-1),
    }
}
