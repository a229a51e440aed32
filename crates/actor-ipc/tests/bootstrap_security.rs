//! The bootstrap from outside: its socket directory is private whatever the umask, only the
//! spawned child is accepted, garbage from anyone else never reaches the decoder, and nothing
//! is left in the temp folder afterwards. Each test runs the `slow_child` example as the root,
//! in a temp folder of its own, with the child's connection delayed to open a window.

mod common;

use common::{raw_connect, raw_send, Root};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[test]
fn the_bootstrap_directory_is_private_under_umask_000_and_gone_afterwards() {
    let mut root = Root::start(
        "slow_child",
        "umask",
        &[("SLOW_CHILD_DELAY_MS", "700")],
        &[],
        true,
    );
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
    let mut root = Root::start(
        "slow_child",
        "impostor",
        &[("SLOW_CHILD_DELAY_MS", "700")],
        &[],
        false,
    );
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
    let mut root = Root::start(
        "slow_child",
        "garbage",
        &[("SLOW_CHILD_DELAY_MS", "900")],
        &[],
        false,
    );
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
    let mut root = Root::start(
        "slow_child",
        "dies",
        &[("SLOW_CHILD_EXIT", "3")],
        &[],
        false,
    );
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
        "slow_child",
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
