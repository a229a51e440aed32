//! Processes as `/proc` shows them, and signals to them.

use std::os::fd::AsFd;

/// The state letter and the parent of a process, if it exists.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    proc_stat(pid).map(|(_, state, ppid)| (state, ppid))
}

/// `(comm, state, ppid)` of a process, from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(String, char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// True while `pid` is a live (not zombie) process named `name` (its `comm`).
pub fn alive_as(pid: u32, name: &str) -> bool {
    matches!(proc_stat(pid), Some((comm, state, _)) if comm == name && state != 'Z')
}

/// True if process `pid` has `entry` (`KEY=value`) in its environment.
pub fn has_env(pid: u32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
        .unwrap_or(false)
}

/// Every live (not zombie) process with `entry` in its environment, except this one: the
/// processes of one test's run, whose TMPDIR is that test's own folder (pids alone are not
/// enough: they wrap around quickly, and another test's may be reused).
pub fn processes_of(entry: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| proc_state(*pid).is_some_and(|(state, _)| state != 'Z'))
        .filter(|pid| has_env(*pid, entry))
        .collect()
}

/// SIGKILLs every process with `entry` in its environment (SIGCONT first, so that a stopped
/// one goes at once too): what a test's guard does so that nothing of its run outlives it.
pub fn kill_all_of(entry: &str) {
    for pid in processes_of(entry) {
        kill(pid, rustix::process::Signal::CONT.as_raw());
        kill(pid, rustix::process::Signal::KILL.as_raw());
    }
}

/// CPU time (user + system, in clock ticks of 10 ms) a process has used; 0 if it is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let rest: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let get = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Sends `signal` (a number, as `libc::SIGTERM`) to `pid`. A pid that is gone, or a signal
/// number that is not a named one, is ignored.
pub fn kill(pid: u32, signal: i32) {
    if let Some((pid, signal)) = pid_and_signal(pid, signal) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// True while any process of the group `pgid` is alive (zombies included: reap first).
pub fn group_alive(pgid: u32) -> bool {
    rustix::process::Pid::from_raw(pgid as i32)
        .is_some_and(|pgid| rustix::process::test_kill_process_group(pgid).is_ok())
}

/// Sends `signal` to the process group `pgid` (what a terminal's Ctrl-C does to its job).
pub fn kill_group(pgid: u32, signal: i32) {
    if let Some((pgid, signal)) = pid_and_signal(pgid, signal) {
        let _ = rustix::process::kill_process_group(pgid, signal);
    }
}

/// A pid and a signal number as rustix takes them (`None` for pid 0 or an unnamed signal).
fn pid_and_signal(
    pid: u32,
    signal: i32,
) -> Option<(rustix::process::Pid, rustix::process::Signal)> {
    Some((
        rustix::process::Pid::from_raw(pid as i32)?,
        rustix::process::Signal::from_named_raw(signal)?,
    ))
}

/// Bytes waiting unread in a pipe (`FIONREAD`); 0 if the kernel cannot say.
pub fn pipe_unread_bytes(pipe: impl AsFd) -> usize {
    rustix::io::ioctl_fionread(pipe).map_or(0, |n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen_in_proc() {
        let me = std::process::id();
        let (comm, state, ppid) = proc_stat(me).expect("our own stat");
        assert!(!comm.is_empty());
        assert_ne!(state, 'Z');
        assert!(ppid > 0);
        assert!(alive_as(me, &comm));
        assert!(cpu_ticks(me) < u64::MAX);
        assert!(proc_state(u32::MAX).is_none());
    }

    #[test]
    fn a_child_is_found_by_its_environment_and_killed() {
        let entry = format!("MPACTOR_TEST_SUPPORT_MARK={}", std::process::id());
        let (key, value) = entry.split_once('=').expect("KEY=value");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(key, value)
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let found = crate::wait_until(std::time::Duration::from_secs(10), crate::POLL, || {
            processes_of(&entry).contains(&pid).then_some(())
        });
        assert!(found.is_some(), "the child carries the entry");
        kill(pid, 9);
        let status = crate::wait_exit(&mut child, std::time::Duration::from_secs(10));
        assert!(status.is_some(), "SIGKILL ends it");
        assert!(!processes_of(&entry).contains(&pid));
    }
}
