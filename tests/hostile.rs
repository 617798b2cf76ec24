//! Hostile clients (issue 11): no slow client holds a pool thread. Each
//! test fills every pool thread's worth of connections with one kind of
//! slow client, then checks that an ordinary request is still answered
//! at once. On the engine before issue 11 each of them timed out.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{deadline_in, get_bytes, Client, Closed, Server, TempDir};

/// Pool threads in these tests: as many slow clients as threads would
/// have stopped the old engine.
const THREADS: &str = "2:2";
const SLOW_CLIENTS: usize = 2;
/// How long an ordinary request may take while the slow clients wait.
const PROMPT: Duration = Duration::from_secs(2);

/// A file bigger than loopback's socket buffers, so a client that reads
/// nothing leaves the server unable to finish it.
const BIG: usize = 32 * 1024 * 1024;

fn docroot_with_big_file() -> TempDir {
    let docroot = TempDir::docroot();
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(docroot.path().join("big.bin"), big).expect("write big.bin");
    docroot
}

/// Waits until the response to `c`'s request has begun arriving.
fn wait_response_begins(c: &Client<TcpStream>) {
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut first = [0u8; 1];
    assert_eq!(c.stream().peek(&mut first).expect("the response begins"), 1);
}

/// Opens three times as many connections as threads, each sending
/// `first` (a request whose body stalls), checks that ordinary requests
/// are answered meanwhile, then sends `rest` on each and expects `status`.
fn stalled_requests_hold_no_thread(first: &[u8], rest: &[u8], status: u16) {
    let s = Server::start(&["-t", THREADS]);
    let mut slow: Vec<_> = (0..SLOW_CLIENTS * 3)
        .map(|_| {
            let mut c = Client::connect(s.addr());
            c.send(first);
            c
        })
        .collect();
    for round in 0..3 {
        Client::connect(s.addr())
            .get_hello_within(PROMPT, &format!("round {round}, stalled requests waiting"));
    }
    // The stalled requests are still answered once their bodies come.
    for c in &mut slow {
        c.send(rest);
        assert_eq!(c.expect_response("POST").status, status);
    }
}

#[test]
fn heads_sent_in_pieces_on_new_connections_are_answered_and_hold_no_thread() {
    // Half a head at accept: the accepting pool thread hands each to the
    // reactor, which waits for the rest (issue 15).
    let s = Server::start(&["-t", THREADS]);
    let mut slow: Vec<_> = (0..SLOW_CLIENTS * 3)
        .map(|_| {
            let mut c = Client::connect(s.addr());
            c.send(b"GET /hello.txt HTTP/1.1\r\nHo");
            c
        })
        .collect();
    for round in 0..3 {
        Client::connect(s.addr())
            .get_hello_within(PROMPT, &format!("round {round}, half heads waiting"));
    }
    for c in &mut slow {
        c.send(b"st: test\r\n\r\n");
        assert_eq!(c.expect_response("GET").status, 200);
    }
}

#[test]
fn stalled_small_bodies_hold_no_thread() {
    stalled_requests_hold_no_thread(
        b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nA",
        &[b'A'; 99],
        405,
    );
}

#[test]
fn stalled_chunked_bodies_hold_no_thread() {
    stalled_requests_hold_no_thread(
        b"POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"lo\r\n0\r\n\r\n",
        405,
    );
}

#[test]
fn a_trickled_large_body_cannot_stretch_body_timeout() {
    // A body over 64 KiB reaches the handler (the upload example reads
    // it) before it has arrived; a byte every 100 ms is progress, but the
    // deadline is absolute: 408 after body_timeout all the same.
    let Some(s) = Server::start_example("upload", &["--body-timeout", "1"]) else {
        return;
    };
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    c.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\nAB");
    let mut trickle = c.stream().try_clone().expect("clone the stream");
    std::thread::spawn(move || {
        // Until the server closes (the write then fails) or 10 s pass.
        for _ in 0..100 {
            if std::io::Write::write_all(&mut trickle, b"C").is_err() {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
    });
    let r = c
        .response_by("POST", t0 + Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("no 408 while the body trickles: {e}"));
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "408 after only {:?}; body_timeout is 1 s",
        t0.elapsed()
    );
}

#[test]
fn expect_continue_gets_100_before_a_small_body_is_buffered() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"PUT /x HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.expect_response("PUT");
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send(b"hello");
    assert_eq!(c.expect_response("PUT").status, 405);
    c.get_hello_within(PROMPT, "the connection stays usable");
}

#[test]
fn a_refused_large_body_is_answered_at_once_not_drained() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    c.send(b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\nsome");
    let r = c
        .response_by("POST", t0 + PROMPT)
        .unwrap_or_else(|e| panic!("no answer while the body is on its way: {e}"));
    assert_eq!(r.status, 405, "{r:?}");
    assert!(r.connection_has("close"), "{r:?}");
    let closed = c.wait_closed(deadline_in(Duration::from_secs(3)));
    assert!(closed.is_ok(), "{closed:?}");
}

#[test]
fn clients_that_do_not_read_hold_no_thread() {
    let docroot = docroot_with_big_file();
    let s = Server::start(&["-t", THREADS, &docroot.path().to_string_lossy()]);
    let readers: Vec<_> = (0..SLOW_CLIENTS * 2)
        .map(|_| {
            let mut c = Client::connect(s.addr());
            c.send(&get_bytes("/big.bin"));
            wait_response_begins(&c);
            c
        })
        .collect();
    for round in 0..3 {
        Client::connect(s.addr())
            .get_hello_within(PROMPT, &format!("round {round}, readers stalled"));
    }
    // A stalled download still completes once its client reads.
    let mut c = readers.into_iter().next().expect("one reader");
    c.stream()
        .set_read_timeout(None)
        .expect("clear the timeout");
    let r = c
        .response_by("GET", deadline_in(Duration::from_secs(20)))
        .expect("the download completes");
    assert_eq!((r.status, r.body.len()), (200, BIG));
    // The connection then carries its next request as usual.
    c.get_hello_within(PROMPT, "after the stalled download");
}

#[test]
fn a_client_that_takes_nothing_for_write_timeout_is_closed() {
    let docroot = docroot_with_big_file();
    let s = Server::start(&["--write-timeout", "1", &docroot.path().to_string_lossy()]);
    let before = sockets_of(s.pid());
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/big.bin"));
    wait_response_begins(&c);
    // The event: the server closes its side of the connection once the
    // client has taken nothing for write_timeout.
    assert!(
        support::wait_until(deadline_in(Duration::from_secs(10)), || {
            sockets_of(s.pid()) <= before
        }),
        "the connection is still open on the server's side"
    );
    let mut stream = c.stream().try_clone().expect("clone the stream");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    let ended = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Closed::Eof,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Closed::Reset,
            Err(e) => panic!("read: {e} after {total} bytes"),
        }
    };
    assert!(
        total < BIG,
        "all {total} bytes arrived ({ended:?}): the server waited past write_timeout"
    );
    support::assert_serves(s.addr());
}

/// How many sockets process `pid` has open.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_request_line_without_a_version_is_answered_at_once() {
    let s = Server::start(&["--first-data-timeout", "30"]);
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    c.send(b"GET /hello.txt\r\n");
    let r = c
        .response_by("GET", t0 + PROMPT)
        .unwrap_or_else(|e| panic!("no answer before first_data_timeout: {e}"));
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_slow_download_closed_after_its_last_byte_is_not_reset_away() {
    // The client sent another request while its download was still being
    // sent, and the response says Connection: close (max_keep_alive 1):
    // closing over the unread request made the kernel reset the
    // connection and drop the end of the file still queued.
    let docroot = docroot_with_big_file();
    let s = Server::start(&["--max-keep-alive", "1", &docroot.path().to_string_lossy()]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/big.bin"));
    wait_response_begins(&c);
    c.send(&get_bytes("/hello.txt"));
    c.stream()
        .set_read_timeout(None)
        .expect("clear the timeout");
    let r = c
        .response_by("GET", deadline_in(Duration::from_secs(20)))
        .expect("the whole download, not a reset");
    assert_eq!((r.status, r.body.len()), (200, BIG));
    assert!(r.connection_has("close"), "{:?}", r.headers);
}

#[test]
fn a_graceful_stop_closes_a_client_that_takes_nothing_after_write_timeout() {
    // The reactor, which enforces write_timeout, has stopped during a
    // drain: the stop itself closes such a client, instead of waiting
    // for it until shutdown_timeout.
    let docroot = docroot_with_big_file();
    let mut s = Server::start(&[
        "--write-timeout",
        "1",
        "--shutdown-timeout",
        "30",
        &docroot.path().to_string_lossy(),
    ]);
    let c = Client::connect(s.addr());
    let mut c = c;
    c.send(&get_bytes("/big.bin"));
    wait_response_begins(&c);
    let t0 = Instant::now();
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("the stop ends once write_timeout closed the reader, not at shutdown_timeout");
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        t0.elapsed()
    );
}
