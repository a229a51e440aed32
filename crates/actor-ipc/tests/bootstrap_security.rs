//! The bootstrap from outside: its socket directory is private whatever the umask, only the
//! spawned child is accepted, garbage from anyone else never reaches the decoder, and nothing
//! is left in the temp folder afterwards. Each test runs the `slow_child` example as the root,
//! in a temp folder of its own, with the child's connection delayed to open a window.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/examples/slow_child
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("examples").join("slow_child");
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

struct Root {
    child: Child,
    tmp: PathBuf,
    stderr: std::sync::Arc<parking_lot_free::Log>,
}

/// A tiny log collector without extra dependencies.
mod parking_lot_free {
    use std::sync::Mutex;
    #[derive(Default)]
    pub struct Log(pub Mutex<String>);
    impl Log {
        pub fn text(&self) -> String {
            self.0.lock().map(|s| s.clone()).unwrap_or_default()
        }
    }
}

impl Root {
    fn start(name: &str, env: &[(&str, &str)], args: &[&str], umask_zero: bool) -> Root {
        let tmp = std::env::temp_dir().join(format!("mpactor-sec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp dir");
        let mut cmd = Command::new(example());
        cmd.args(args)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if umask_zero {
            // SAFETY: umask is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::umask(0);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn the root");
        let log = std::sync::Arc::new(parking_lot_free::Log::default());
        let mut err = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.0.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Root {
            child,
            tmp,
            stderr: log,
        }
    }

    /// The bootstrap socket, once it exists.
    fn wait_socket(&self) -> (PathBuf, PathBuf) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = find_socket(&self.tmp) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no bootstrap socket appeared in {}",
                self.tmp.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the root did not exit within {within:?}; log:\n{}",
                self.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Nothing of this run is left: no process that has our temp folder in its environment,
    /// and no bootstrap directory.
    fn assert_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left = processes_with_env(&format!("TMPDIR={}", self.tmp.display()));
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "processes left behind: {left:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let leftovers: Vec<_> = std::fs::read_dir(&self.tmp)
            .expect("read tmp")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            leftovers.is_empty(),
            "left in the temp folder: {leftovers:?}"
        );
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in processes_with_env(&format!("TMPDIR={}", self.tmp.display())) {
            // SAFETY: kill(2) on a process of this test run.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn find_socket(tmp: &Path) -> Option<(PathBuf, PathBuf)> {
    for dir in std::fs::read_dir(tmp).ok()?.flatten() {
        let dir = dir.path();
        if !dir.file_name()?.to_string_lossy().starts_with("mpactor-") {
            continue;
        }
        for f in std::fs::read_dir(&dir).ok()?.flatten() {
            if f.file_name().to_string_lossy().starts_with("boot-") {
                return Some((dir.clone(), f.path()));
            }
        }
    }
    None
}

fn processes_with_env(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let me = std::process::id() as i32;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Connects a raw SOCK_SEQPACKET socket to `path`; the caller owns the descriptor.
fn raw_connect(path: &Path) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain socket calls; the address fits sun_path (checked).
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len());
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        let rc = libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        fd
    }
}

fn raw_send(fd: i32, bytes: &[u8]) {
    // SAFETY: send(2) from a valid buffer on our socket; a refused peer may have closed it.
    unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
}

#[test]
fn the_bootstrap_directory_is_private_under_umask_000_and_gone_afterwards() {
    let mut root = Root::start("umask", &[("SLOW_CHILD_DELAY_MS", "700")], &[], true);
    let (dir, socket) = root.wait_socket();
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(
        mode,
        0o700,
        "bootstrap directory {} has mode {mode:o}",
        dir.display()
    );
    assert_eq!(
        root.wait_exit(Duration::from_secs(15)),
        0,
        "log:\n{}",
        root.stderr.text()
    );
    assert!(!socket.exists());
    root.assert_clean();
}

#[test]
fn an_impostor_is_refused_and_the_real_child_still_starts() {
    let mut root = Root::start("impostor", &[("SLOW_CHILD_DELAY_MS", "700")], &[], false);
    let (_, socket) = root.wait_socket();
    // A process of the same user, not the spawned child, speaking ipc-channel correctly.
    let impostor: ipc_channel::ipc::IpcSender<Vec<u8>> =
        ipc_channel::ipc::IpcSender::connect(socket.to_string_lossy().into_owned())
            .expect("connect");
    let _ = impostor.send(b"let me in".to_vec());
    assert_eq!(
        root.wait_exit(Duration::from_secs(15)),
        0,
        "log:\n{}",
        root.stderr.text()
    );
    let log = root.stderr.text();
    let me = std::process::id();
    assert!(
        log.contains(&format!("refused a bootstrap connection from pid {me}")),
        "the refusal is not logged:\n{log}"
    );
    assert!(
        log.contains("SLOW started"),
        "the real child did not start:\n{log}"
    );
    root.assert_clean();
}

#[test]
fn garbage_on_the_bootstrap_socket_never_reaches_the_root() {
    let mut root = Root::start("garbage", &[("SLOW_CHILD_DELAY_MS", "900")], &[], false);
    let (_, socket) = root.wait_socket();
    // Random bytes; a frame whose header claims a huge length; a connection that sends nothing.
    let random = raw_connect(&socket);
    let bytes: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    raw_send(random, &bytes);
    let huge = raw_connect(&socket);
    let mut frame = u64::MAX.to_le_bytes().to_vec();
    frame.extend_from_slice(&[0xff; 64]);
    raw_send(huge, &frame);
    let silent = raw_connect(&socket);
    let truncated = raw_connect(&socket);
    raw_send(truncated, &[0x01]);
    assert_eq!(
        root.wait_exit(Duration::from_secs(15)),
        0,
        "log:\n{}",
        root.stderr.text()
    );
    let log = root.stderr.text();
    assert!(
        log.matches("refused a bootstrap connection").count() >= 4,
        "refusals not logged:\n{log}"
    );
    assert!(
        log.contains("SLOW started"),
        "the real child did not start:\n{log}"
    );
    assert!(!log.contains("panicked"), "something panicked:\n{log}");
    for fd in [random, huge, silent, truncated] {
        // SAFETY: our own descriptors.
        unsafe { libc::close(fd) };
    }
    root.assert_clean();
}

#[test]
fn a_child_that_dies_before_connecting_fails_fast_and_leaves_nothing() {
    let mut root = Root::start("dies", &[("SLOW_CHILD_EXIT", "3")], &[], false);
    let t0 = Instant::now();
    assert_eq!(root.wait_exit(Duration::from_secs(10)), 2);
    // Fail fast: well before the 3 s start deadline (generous margin for a loaded machine).
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        t0.elapsed()
    );
    let log = root.stderr.text();
    assert!(
        log.contains("SLOW exited during its start (exit 3)"),
        "log:\n{log}"
    );
    root.assert_clean();
}

#[test]
fn a_child_that_never_connects_fails_at_the_start_deadline_and_is_killed() {
    let mut root = Root::start(
        "silent",
        &[("SLOW_CHILD_DELAY_MS", "60000")],
        &["400"],
        false,
    );
    assert_eq!(root.wait_exit(Duration::from_secs(10)), 2);
    let log = root.stderr.text();
    assert!(
        log.contains("SLOW did not start within 400ms and was killed"),
        "log:\n{log}"
    );
    root.assert_clean();
}
