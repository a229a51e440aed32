//! The TCP protocol against the real binary: requests and replies over real sockets, the
//! live view, the setpoint, and every kind of bad input, after which the listener still
//! serves and no actor has died.

mod common;

use common::*;
use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

#[test]
fn requests_get_replies_with_increasing_ids() {
    let mut h = Hvac::start(&[]);
    // The mptools client: one message, no newline, read until the server closes.
    assert_eq!(
        h.request(b"REQUEST TEST REQUEST 1"),
        "REPLY 1 TEST REQUEST 1\n"
    );
    // nc style: a newline at the end.
    assert_eq!(h.request(b"REQUEST hello world\n"), "REPLY 2 hello world\n");
    // A client that half-closes after its message.
    let mut s = h.connect();
    assert_eq!(
        request_then_close_write(&mut s, b"REQUEST third"),
        "REPLY 3 third\n"
    );

    assert_eq!(h.request(b"REQUEST END"), "REPLY 4 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    assert!(h
        .log_text()
        .contains("requested: REQUEST END from a client"));
    h.assert_nothing_left();
}

#[test]
fn status_shows_every_actor_live() {
    let mut h = Hvac::start(&[]);
    let reply = h.request(b"REQUEST STATUS");
    assert!(reply.starts_with("REPLY 1 up="), "{reply}");
    assert_eq!(reply.lines().count(), 1, "one line: {reply}");
    for actor in ACTORS {
        let pid = h.pid_of(actor);
        let part = format!("{actor} pid={pid} running handled=");
        assert!(reply.contains(&part), "{part:?} not in {reply}");
    }
    assert!(reply.contains("restarts=0"), "{reply}");
    assert!(reply.contains("setpoint=21.0C"), "{reply}");

    h.signal_root(libc::SIGTERM);
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    h.assert_nothing_left();
}

#[test]
fn set_moves_the_setpoint_of_the_room_model() {
    let mut h = Hvac::start(&["--observation-interval", "0.1"]);
    assert_eq!(
        h.request(b"REQUEST SET 25.5"),
        "REPLY 1 SETPOINT 25.5C (was 21.0C)\n"
    );
    let line = h.wait_send_line(Duration::from_secs(10), 0, |l| {
        l.starts_with("OBSERVATION::") && l.contains("setpoint=25.5C")
    });
    assert!(
        line.is_some(),
        "no reading at the new setpoint: {:?}",
        h.send_lines()
    );
    let status = h.request(b"REQUEST STATUS");
    assert!(status.contains("setpoint=25.5C"), "{status}");
    assert!(h
        .wait_line(Duration::from_secs(5), |l| l.contains("OBSERVATION")
            && l.contains("setpoint now 25.5C (was 21.0C)"))
        .is_some());

    assert_eq!(h.request(b"REQUEST END\n"), "REPLY 3 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    h.assert_nothing_left();
}

#[test]
fn bad_input_gets_an_error_and_the_listener_keeps_serving() {
    let mut h = Hvac::start(&[]);
    let mut id = 0;
    let works = |h: &Hvac, id: &mut u64| {
        *id += 1;
        let reply = h.request(b"REQUEST still here");
        assert_eq!(reply, format!("REPLY {id} still here\n"));
    };

    // Not a request.
    let reply = h.request(b"HELLO");
    assert!(reply.starts_with("ERROR not a request"), "{reply}");
    works(&h, &mut id);

    // Over 1500 bytes (the reply must arrive intact, not be destroyed by a reset).
    let mut big = b"REQUEST ".to_vec();
    big.resize(4000, b'x');
    let reply = h.request(&big);
    assert!(reply.starts_with("ERROR message too long"), "{reply}");
    assert!(reply.contains("1500"), "{reply}");
    works(&h, &mut id);

    // Not UTF-8.
    let reply = h.request(b"REQUEST \xff\xfe\xfd");
    assert!(reply.starts_with("ERROR message is not UTF-8"), "{reply}");
    works(&h, &mut id);

    // Empty request, bad and out-of-range setpoints, control characters.
    for (msg, want) in [
        (&b"REQUEST"[..], "ERROR empty request"),
        (b"REQUEST SET warm", "ERROR bad setpoint"),
        (b"REQUEST SET 99", "ERROR setpoint 99C out of range"),
        (
            b"REQUEST \x1b[2J",
            "ERROR message holds a control character",
        ),
    ] {
        let reply = h.request(msg);
        assert!(reply.starts_with(want), "{msg:?}: {reply}");
    }
    works(&h, &mut id);

    // A client that disconnects at once, one that sends half a word and leaves, and one that
    // sends a request and leaves before the reply.
    drop(h.connect());
    let mut s = h.connect();
    s.write_all(b"REQ").expect("send");
    s.shutdown(Shutdown::Both).expect("close");
    drop(s);
    let mut s = h.connect();
    s.write_all(b"REQUEST gone before the reply").expect("send");
    drop(s);
    id += 1; // that request was taken and answered into a closed socket
    works(&h, &mut id);

    // A client that connects and sends nothing is dropped after a bounded wait, with a
    // reason; a client behind it is served as soon as it is dropped.
    let silent = h.connect();
    let t0 = Instant::now();
    let waiting = std::thread::spawn(move || {
        let mut silent = silent;
        read_all(&mut silent)
    });
    works(&h, &mut id);
    let served_after = t0.elapsed();
    let reply = waiting.join().expect("the silent client's thread");
    assert!(reply.starts_with("ERROR no request within 2s"), "{reply}");
    assert!(
        served_after < Duration::from_secs(8),
        "the next client waited {served_after:?}"
    );

    // Nothing died of any of it.
    let status = h.request(b"REQUEST STATUS");
    for actor in ACTORS {
        assert!(
            status.contains(&format!("{actor} pid={} running", h.pid_of(actor))),
            "{status}"
        );
    }
    assert!(!status.contains("restarts=1"), "{status}");
    assert_eq!(h.actor_pids().len(), 4, "no actor was restarted");

    h.signal_group(libc::SIGINT);
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    h.assert_nothing_left();
}

#[test]
fn many_clients_one_after_another() {
    let mut h = Hvac::start(&[]);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let port = h.port;
            std::thread::spawn(move || {
                let mut replies = Vec::new();
                for i in 0..10 {
                    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                    s.write_all(format!("REQUEST client {t} message {i}").as_bytes())
                        .expect("send");
                    replies.push(read_all(&mut s));
                }
                replies
            })
        })
        .collect();
    let mut ids = Vec::new();
    for (t, th) in threads.into_iter().enumerate() {
        for (i, reply) in th.join().expect("client thread").into_iter().enumerate() {
            let want = format!(" client {t} message {i}\n");
            assert!(
                reply.starts_with("REPLY ") && reply.ends_with(&want),
                "{reply}"
            );
            ids.push(number_after(&reply, "REPLY ").expect("an id"));
        }
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=40).collect::<Vec<u64>>(),
        "each request its own id"
    );
    assert_eq!(h.request(b"REQUEST END"), "REPLY 41 END\n");
    assert_eq!(h.exit_code(STOP_DEADLINE), 0);
    h.assert_nothing_left();
}
