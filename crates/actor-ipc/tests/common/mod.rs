//! What the process tests of actor-ipc share: run an example binary as the root in a temp
//! folder of its own, collect its output, wait for its exit under a deadline, and check that
//! nothing of the run is left (no process, no bootstrap directory).

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The built example `name` (cargo test builds examples before it runs tests).
pub fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/examples/slow_child
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

/// A root process under test.
pub struct Root {
    pub child: Child,
    pub tmp: PathBuf,
    pub stderr: std::sync::Arc<parking_lot_free::Log>,
    pub stdout: std::sync::Arc<parking_lot_free::Log>,
}

/// A tiny log collector without extra dependencies.
pub mod parking_lot_free {
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
    /// Starts example `exe` with `args` and `env`, its TMPDIR a fresh folder named after `name`.
    pub fn start(
        exe: &str,
        name: &str,
        env: &[(&str, &str)],
        args: &[&str],
        umask_zero: bool,
    ) -> Root {
        let tmp = std::env::temp_dir().join(format!("mpactor-sec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp dir");
        let mut cmd = Command::new(example(exe));
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
        let stderr = collect(child.stderr.take().expect("stderr"));
        let stdout = collect(child.stdout.take().expect("stdout"));
        Root {
            child,
            tmp,
            stderr,
            stdout,
        }
    }

    /// The bootstrap socket, once it exists.
    pub fn wait_socket(&self) -> (PathBuf, PathBuf) {
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

    pub fn wait_exit(&mut self, within: Duration) -> i32 {
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
    pub fn assert_clean(&self) {
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

pub fn find_socket(tmp: &Path) -> Option<(PathBuf, PathBuf)> {
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

pub fn processes_with_env(needle: &str) -> Vec<i32> {
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
pub fn raw_connect(path: &Path) -> i32 {
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

pub fn raw_send(fd: i32, bytes: &[u8]) {
    // SAFETY: send(2) from a valid buffer on our socket; a refused peer may have closed it.
    unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
}

/// Reads a pipe to its end in a thread, into a shared text.
fn collect(mut pipe: impl Read + Send + 'static) -> std::sync::Arc<parking_lot_free::Log> {
    let log = std::sync::Arc::new(parking_lot_free::Log::default());
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.0.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    log
}
