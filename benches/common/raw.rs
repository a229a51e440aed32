//! The raw references: the transports mpactor stands on, used directly, between two (or
//! more) processes of the same bench binary.
//!
//! A reference child is the bench binary re-executed with [`ENV_RAW`] set to the name of an
//! `IpcOneShotServer`; it connects, receives its [`RawJob`] (with the channel ends it needs),
//! runs it and exits. A Unix socket end goes to it as descriptor 3. Every child gets the
//! parent-death signal, so none outlives the benchmark.

use super::{now_ns, pin_process, rates, secs, BenchResult, Small, ROUND_DEADLINE};
use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment: set in a raw reference child, to the bootstrap server's name.
pub const ENV_RAW: &str = "MPACTOR_BENCH_RAW";

/// The descriptor a Unix socket end is handed over as.
const CHILD_FD: RawFd = 3;

/// Size of a message on the raw Unix socket.
const UNIX_MSG: usize = 64;

/// What a raw child does.
#[derive(Serialize, Deserialize)]
pub enum RawJob {
    /// For each `n` from `ctl`: `n` small messages and a marker, one `send` each. 0 ends.
    IpcProducer {
        /// The consumer's channel.
        data: IpcSender<Small>,
        /// Round requests.
        ctl: IpcReceiver<u64>,
    },
    /// For each `(n, size)` from `ctl`: `n` payloads of `size` bytes and an empty marker.
    IpcBytesProducer {
        /// The consumer's channel.
        data: IpcBytesSender,
        /// Round requests.
        ctl: IpcReceiver<(u64, u64)>,
    },
    /// Round trips with the ponger, timed one by one, reported on `report`.
    IpcPinger {
        /// To the ponger.
        to: IpcSender<u64>,
        /// From the ponger.
        from: IpcReceiver<u64>,
        /// `(rounds, warmup)`.
        ctl: IpcReceiver<(u64, u64)>,
        /// The times, in ns.
        report: IpcSender<Vec<u64>>,
        /// Pin to this CPU.
        pin: Option<usize>,
    },
    /// Echoes every number back until the pinger is gone.
    IpcPonger {
        /// To the pinger.
        to: IpcSender<u64>,
        /// From the pinger.
        from: IpcReceiver<u64>,
        /// Pin to this CPU.
        pin: Option<usize>,
    },
    /// On descriptor 3 (a SOCK_SEQPACKET end): for each 8-byte `n` read, `n` messages of 64
    /// bytes and a marker, one `send` each. 0 ends.
    UnixProducer,
    /// Waits until `ctl` closes: the memory floor of a process of this binary.
    Idle {
        /// Closed by the root when done.
        ctl: IpcReceiver<()>,
        /// Told once the child is idle.
        ready: IpcSender<()>,
    },
}

/// In a raw reference child: runs its job and exits. Otherwise returns.
pub fn run_raw_if_child() {
    let Ok(server) = std::env::var(ENV_RAW) else {
        return;
    };
    let code = match raw_child(server) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench raw child: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn raw_child(server: String) -> BenchResult<()> {
    let conn = IpcSender::<IpcSender<RawJob>>::connect(server)?;
    let (tx, rx) = ipc::channel::<RawJob>()?;
    conn.send(tx)?;
    let job = rx.try_recv_timeout(Duration::from_secs(10))?;
    match job {
        RawJob::IpcProducer { data, ctl } => {
            while let Ok(n) = ctl.recv() {
                if n == 0 {
                    break;
                }
                for seq in 0..n {
                    data.send(Small::new(seq))?;
                }
                data.send(Small::new(Small::MARKER))?;
            }
        }
        RawJob::IpcBytesProducer { data, ctl } => {
            while let Ok((n, size)) = ctl.recv() {
                if n == 0 {
                    break;
                }
                let payload = vec![0xa5u8; size as usize];
                for _ in 0..n {
                    data.send(&payload)?;
                }
                data.send(&[])?;
            }
        }
        RawJob::IpcPinger {
            to,
            from,
            ctl,
            report,
            pin,
        } => {
            if let Some(cpu) = pin {
                pin_process(cpu)?;
            }
            while let Ok((rounds, warmup)) = ctl.recv() {
                if rounds == 0 {
                    break;
                }
                let mut times = Vec::with_capacity(rounds as usize);
                for i in 0..warmup + rounds {
                    let t0 = Instant::now();
                    to.send(i)?;
                    let j = from.recv()?;
                    if j != i {
                        return Err(format!("pong {j} for ping {i}").into());
                    }
                    if i >= warmup {
                        times.push(t0.elapsed().as_nanos() as u64);
                    }
                }
                report.send(times)?;
            }
        }
        RawJob::IpcPonger { to, from, pin } => {
            if let Some(cpu) = pin {
                pin_process(cpu)?;
            }
            // Ends when the pinger is gone (its sender closed).
            while let Ok(i) = from.recv() {
                to.send(i)?;
            }
        }
        RawJob::UnixProducer => {
            let mut msg = [0x5au8; UNIX_MSG];
            loop {
                let mut go = [0u8; 8];
                // SAFETY: recv into a buffer of the size we pass.
                let r = unsafe { libc::recv(CHILD_FD, go.as_mut_ptr().cast(), go.len(), 0) };
                if r != go.len() as isize {
                    break;
                }
                let n = u64::from_le_bytes(go);
                if n == 0 {
                    break;
                }
                for seq in (0..n).chain([Small::MARKER]) {
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    // SAFETY: send from a buffer of the size we pass.
                    let w = unsafe { libc::send(CHILD_FD, msg.as_ptr().cast(), UNIX_MSG, 0) };
                    if w != UNIX_MSG as isize {
                        return Err(std::io::Error::last_os_error().into());
                    }
                }
            }
        }
        RawJob::Idle { ctl, ready } => {
            ready.send(())?;
            let _ = ctl.recv();
        }
    }
    Ok(())
}

/// A raw child: killed (if still running) and reaped on drop.
pub struct RawChild(Child);

impl RawChild {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for RawChild {
    fn drop(&mut self) {
        // Most have exited by now (their control channel closed first); give them a moment,
        // then make sure.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a raw child for `job`; `fd3` becomes its descriptor 3.
pub fn spawn_raw(job: RawJob, fd3: Option<RawFd>) -> BenchResult<RawChild> {
    let (server, name) = IpcOneShotServer::<IpcSender<RawJob>>::new()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg0("bench-raw")
        .env(ENV_RAW, &name)
        .stdin(Stdio::null());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, dup2, fcntl, _exit) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if let Some(fd) = fd3 {
                // dup2 clears close-on-exec on the copy; an fd already at 3 keeps its flag.
                let rc = if fd == CHILD_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, CHILD_FD)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = RawChild(cmd.spawn()?);
    // ipc-channel's accept has no deadline: run it where it can be abandoned.
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(server.accept());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok((_conn, job_tx))) => {
            job_tx.send(job)?;
            Ok(child)
        }
        Ok(Err(e)) => Err(format!("raw child bootstrap: {e}").into()),
        Err(_) => {
            // Unblock the abandoned accept by connecting ourselves.
            if let Ok(c) = IpcSender::<IpcSender<RawJob>>::connect(name) {
                if let Ok((tx, _rx)) = ipc::channel::<RawJob>() {
                    let _ = c.send(tx);
                }
            }
            Err("the raw child did not connect within 10 s".into())
        }
    }
}

/// Raw ipc-channel, one `IpcSender<Small>::send` per message: producer processes into one
/// receiver (the root, a plain `recv` loop), kept running between rounds.
pub struct IpcSmall {
    ctls: Vec<IpcSender<u64>>,
    data: IpcReceiver<Small>,
    _children: Vec<RawChild>,
}

impl IpcSmall {
    /// Starts `producers` producer processes.
    pub fn start(producers: u32) -> BenchResult<Self> {
        let (data_tx, data) = ipc::channel::<Small>()?;
        let mut ctls = Vec::new();
        let mut children = Vec::new();
        for _ in 0..producers {
            let (ctl_tx, ctl_rx) = ipc::channel::<u64>()?;
            children.push(spawn_raw(
                RawJob::IpcProducer {
                    data: data_tx.clone(),
                    ctl: ctl_rx,
                },
                None,
            )?);
            ctls.push(ctl_tx);
        }
        // The root keeps no sender: a dead producer then ends the receive with an error.
        drop(data_tx);
        Ok(IpcSmall {
            ctls,
            data,
            _children: children,
        })
    }

    /// One round: messages, and seconds from "go" until the last one was received.
    pub fn round(&self, per_producer: u64) -> BenchResult<(u64, f64)> {
        let t0 = now_ns();
        for c in &self.ctls {
            c.send(per_producer)?;
        }
        let mut markers = 0;
        while markers < self.ctls.len() {
            if self.data.recv()?.seq == Small::MARKER {
                markers += 1;
            }
        }
        let t1 = now_ns();
        Ok((self.ctls.len() as u64 * (per_producer + 1), secs(t0, t1)))
    }
}

impl Drop for IpcSmall {
    fn drop(&mut self) {
        for c in &self.ctls {
            let _ = c.send(0);
        }
    }
}

/// Raw ipc-channel small messages: messages per second, per round.
pub fn ipc_small(producers: u32, per_producer: u64, rounds: usize) -> BenchResult<Vec<f64>> {
    let rig = IpcSmall::start(producers)?;
    rates(rounds, || rig.round(per_producer))
}

/// Raw ipc-channel `IpcBytesSender`, payloads of `size`, one process to the root. Bytes per
/// second, per round.
pub fn ipc_bytes(size: u64, count: u64, rounds: usize) -> BenchResult<Vec<f64>> {
    let (data_tx, data_rx): (IpcBytesSender, IpcBytesReceiver) = ipc::bytes_channel()?;
    let (ctl_tx, ctl_rx) = ipc::channel::<(u64, u64)>()?;
    let child = spawn_raw(
        RawJob::IpcBytesProducer {
            data: data_tx,
            ctl: ctl_rx,
        },
        None,
    )?;
    let mut rates = Vec::new();
    for round in 0..=rounds {
        let t0 = now_ns();
        ctl_tx.send((count, size))?;
        loop {
            // Every page read, as the mpactor consumers do.
            if super::touch(&data_rx.recv()?) == 0 {
                break;
            }
        }
        let t1 = now_ns();
        if round > 0 {
            rates.push((count * size) as f64 / secs(t0, t1));
        }
    }
    ctl_tx.send((0, 0))?;
    drop(child);
    Ok(rates)
}

/// Raw ipc-channel round trips (`IpcSender<u64>` each way) between two processes, kept
/// running.
pub struct IpcPing {
    ctl: IpcSender<(u64, u64)>,
    report: IpcReceiver<Vec<u64>>,
    _children: [RawChild; 2],
}

impl IpcPing {
    /// Starts both; `pin`: both on this CPU.
    pub fn start(pin: Option<usize>) -> BenchResult<Self> {
        let (p2q_tx, p2q_rx) = ipc::channel::<u64>()?;
        let (q2p_tx, q2p_rx) = ipc::channel::<u64>()?;
        let (ctl, ctl_rx) = ipc::channel::<(u64, u64)>()?;
        let (report_tx, report) = ipc::channel::<Vec<u64>>()?;
        let ponger = spawn_raw(
            RawJob::IpcPonger {
                to: q2p_tx,
                from: p2q_rx,
                pin,
            },
            None,
        )?;
        let pinger = spawn_raw(
            RawJob::IpcPinger {
                to: p2q_tx,
                from: q2p_rx,
                ctl: ctl_rx,
                report: report_tx,
                pin,
            },
            None,
        )?;
        Ok(IpcPing {
            ctl,
            report,
            _children: [pinger, ponger],
        })
    }

    /// `warmup` unrecorded, then `rounds` recorded round trips: their times in ns.
    pub fn run(&self, rounds: u64, warmup: u64) -> BenchResult<Vec<u64>> {
        self.ctl.send((rounds, warmup))?;
        Ok(self.report.try_recv_timeout(ROUND_DEADLINE)?)
    }
}

impl Drop for IpcPing {
    fn drop(&mut self) {
        let _ = self.ctl.send((0, 0));
    }
}

/// Raw ipc-channel round trips: nanoseconds, one per round trip.
pub fn ipc_round_trip(pin: Option<usize>, rounds: u64, warmup: u64) -> BenchResult<Vec<u64>> {
    IpcPing::start(pin)?.run(rounds, warmup)
}

/// Raw Unix `SOCK_SEQPACKET`, one `send` of 64 bytes per message: `producers` processes
/// sharing one socket end into the root's end (a plain `recv` loop). Messages per second,
/// per round.
pub fn unix_small(producers: u32, per_producer: u64, rounds: usize) -> BenchResult<Vec<f64>> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two descriptors into the array we pass.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut children = Vec::new();
    for _ in 0..producers {
        children.push(spawn_raw(RawJob::UnixProducer, Some(theirs.as_raw_fd()))?);
    }
    drop(theirs);
    let fd = ours.as_raw_fd();
    let write_go = |n: u64| -> BenchResult<()> {
        let go = n.to_le_bytes();
        // SAFETY: send from a buffer of the size we pass.
        if unsafe { libc::send(fd, go.as_ptr().cast(), go.len(), 0) } != go.len() as isize {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    };
    let total = producers as u64 * (per_producer + 1);
    let mut rates = Vec::new();
    let mut buf = [0u8; UNIX_MSG];
    for round in 0..=rounds {
        let t0 = now_ns();
        for _ in 0..producers {
            write_go(per_producer)?;
        }
        let mut markers = 0;
        while markers < producers {
            // SAFETY: recv into a buffer of the size we pass.
            let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), UNIX_MSG, 0) };
            if r != UNIX_MSG as isize {
                return Err(format!("unix recv: {}", std::io::Error::last_os_error()).into());
            }
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&buf[..8]);
            if u64::from_le_bytes(seq) == Small::MARKER {
                markers += 1;
            }
        }
        let t1 = now_ns();
        if round > 0 {
            rates.push(total as f64 / secs(t0, t1));
        }
    }
    for _ in 0..producers {
        write_go(0)?;
    }
    drop(children);
    Ok(rates)
}

/// crossbeam unbounded channel, `producers` threads into the root's thread. Messages per
/// second, per round.
pub fn crossbeam_small(producers: u32, per_producer: u64, rounds: usize) -> BenchResult<Vec<f64>> {
    let (data_tx, data_rx) = crossbeam_channel::unbounded::<Small>();
    let mut ctls = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..producers {
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<u64>();
        let data = data_tx.clone();
        threads.push(std::thread::spawn(move || {
            while let Ok(n) = ctl_rx.recv() {
                for seq in (0..n).chain([Small::MARKER]) {
                    if data.send(Small::new(seq)).is_err() {
                        return;
                    }
                }
            }
        }));
        ctls.push(ctl_tx);
    }
    drop(data_tx);
    let total = producers as u64 * (per_producer + 1);
    let mut rates = Vec::new();
    for round in 0..=rounds {
        let t0 = now_ns();
        for c in &ctls {
            c.send(per_producer)?;
        }
        let mut markers = 0;
        while markers < producers {
            let msg = data_rx.recv_timeout(ROUND_DEADLINE)?;
            if msg.seq == Small::MARKER {
                markers += 1;
            }
        }
        let t1 = now_ns();
        if round > 0 {
            rates.push(total as f64 / secs(t0, t1));
        }
    }
    drop(ctls);
    for t in threads {
        let _ = t.join();
    }
    Ok(rates)
}

/// RSS (KiB) of an idle process of this binary that did only the ipc bootstrap: the floor
/// under an actor process.
pub fn idle_rss() -> BenchResult<(u64, u64)> {
    let (ctl_tx, ctl_rx) = ipc::channel::<()>()?;
    let (ready_tx, ready_rx) = ipc::channel::<()>()?;
    let child = spawn_raw(
        RawJob::Idle {
            ctl: ctl_rx,
            ready: ready_tx,
        },
        None,
    )?;
    ready_rx.try_recv_timeout(Duration::from_secs(10))?;
    let rss = (super::rss_kib(child.pid())?, super::anon_kib(child.pid())?);
    drop(ctl_tx);
    drop(child);
    Ok(rss)
}
