//! What the process tests of actor-ipc share: run an example binary as the root in a temp
//! folder of its own, collect its output, wait for its exit under a deadline, and check that
//! nothing of the run is left (no process, no bootstrap directory). The general pieces are in
//! `mpactor-test-support`; the bootstrap socket's lookup and the raw connections to it are
//! actor-ipc's own.

#![allow(dead_code)]

pub use mpactor_test_support::example;
use mpactor_test_support::{collect, processes_of, Lines, POLL};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A root process under test.
pub struct Root {
    pub child: Child,
    pub tmp: PathBuf,
    pub stderr: Arc<Lines>,
    pub stdout: Arc<Lines>,
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
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        collect(child.stdout.take().expect("stdout"), stdout.clone());
        Root {
            child,
            tmp,
            stderr,
            stdout,
        }
    }

    /// The bootstrap socket, once it exists.
    pub fn wait_socket(&self) -> (PathBuf, PathBuf) {
        mpactor_test_support::wait_until(Duration::from_secs(10), POLL, || find_socket(&self.tmp))
            .unwrap_or_else(|| panic!("no bootstrap socket appeared in {}", self.tmp.display()))
    }

    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        match mpactor_test_support::wait_exit(&mut self.child, within) {
            Some(status) => status.code().unwrap_or(-1),
            None => panic!(
                "the root did not exit within {within:?}; log:\n{}",
                self.stderr.text()
            ),
        }
    }

    /// The environment entry every process of this run carries.
    fn marker(&self) -> String {
        format!("TMPDIR={}", self.tmp.display())
    }

    /// Nothing of this run is left: no process that has our temp folder in its environment,
    /// and no bootstrap directory.
    pub fn assert_clean(&self) {
        let gone = mpactor_test_support::wait_until(Duration::from_secs(3), POLL, || {
            processes_of(&self.marker()).is_empty().then_some(())
        });
        if gone.is_none() {
            let left = processes_of(&self.marker());
            assert!(left.is_empty(), "processes left behind: {left:?}");
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
        mpactor_test_support::kill_all_of(&self.marker());
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
