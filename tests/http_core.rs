//! The HTTP/1.1 core, end to end: the real binary serving a temporary
//! docroot, spoken to over TCP with hand-written requests so that every
//! byte on the wire is the test's choice. Covers responses and their
//! engine headers, keep-alive, pipelining, request bodies, and the
//! connection-level timeouts.
//!
//! The error statuses (400 to 505) live in `http_errors.rs`; process
//! life (signals, unix sockets, config) in `lifecycle.rs`.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{assert_serves, deadline_in, get, get_bytes, Client, Closed, Server, HELLO, OTHER};

/// Checks an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`
/// (RFC 9110 §5.6.7).
fn assert_http_date(value: Option<&str>) {
    let v = value.expect("a Date header");
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = v.split(' ').collect();
    assert_eq!(parts.len(), 6, "Date {v:?} is not an IMF-fixdate");
    assert!(
        parts[0].len() == 4 && days.contains(&&parts[0][..3]) && parts[0].ends_with(','),
        "Date {v:?}: day name"
    );
    assert!(
        parts[1].len() == 2 && parts[1].bytes().all(|b| b.is_ascii_digit()),
        "Date {v:?}: day"
    );
    assert!(months.contains(&parts[2]), "Date {v:?}: month");
    let year: u32 = parts[3].parse().expect("Date year");
    assert!(year >= 2024, "Date {v:?}: year");
    assert!(
        parts[4].len() == 8 && parts[4].as_bytes()[2] == b':' && parts[4].as_bytes()[5] == b':',
        "Date {v:?}: time"
    );
    assert_eq!(parts[5], "GMT", "Date {v:?}: zone");
}

fn assert_engine_headers(r: &support::Response) {
    assert_http_date(r.header("Date"));
    assert_eq!(r.header_count("Date"), 1, "{r:?}");
    let server = r.header("Server").expect("a Server header");
    assert!(server.starts_with("catamount"), "Server: {server:?}");
}

// ---------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------

#[test]
fn get_serves_a_file_with_date_and_server_headers() {
    let s = Server::start(&[]);
    let r = get(s.addr(), "/hello.txt");
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), HELLO);
    assert_eq!(
        r.header("Content-Length"),
        Some(HELLO.len().to_string().as_str())
    );
    let ct = r.header("Content-Type").expect("a Content-Type header");
    assert!(ct.starts_with("text/plain"), "Content-Type: {ct:?}");
    assert_engine_headers(&r);
}

#[test]
fn head_has_content_length_but_no_body() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    // A GET pipelined behind the HEAD: if the HEAD answer carried body
    // bytes, they would be parsed as the start of the second response.
    let mut req = b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n".to_vec();
    req.extend_from_slice(&get_bytes("/other.txt"));
    c.send(&req);
    let head = c.expect_response("HEAD");
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("Content-Length"),
        Some(HELLO.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
    assert_engine_headers(&head);
    let next = c.expect_response("GET");
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.text(), OTHER);
}

#[test]
fn missing_file_is_404_with_engine_headers() {
    let s = Server::start(&[]);
    let r = get(s.addr(), "/no-such-file.txt");
    assert_eq!(r.status, 404, "{r:?}");
    assert_engine_headers(&r);
    assert_serves(s.addr());
}

/// The instant of an IMF-fixdate (`Fri, 04 Dec 2026 17:00:55 GMT`) in the
/// two obsolete forms RFC 9110 §5.6.7 also makes recipients accept:
/// rfc850-date (`Friday, 04-Dec-26 17:00:55 GMT`) and asctime-date
/// (`Fri Dec  4 17:00:55 2026`).
fn obsolete_date_forms(imf: &str) -> (String, String) {
    let p: Vec<&str> = imf.split(' ').collect();
    assert_eq!(p.len(), 6, "not an IMF-fixdate: {imf:?}");
    let short = &p[0][..3];
    let long = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
        .split(' ')
        .find(|d| d.starts_with(short))
        .expect("a day name");
    let rfc850 = format!("{long}, {}-{}-{} {} GMT", p[1], p[2], &p[3][2..], p[4]);
    let day: u32 = p[1].parse().expect("day of month");
    let asctime = format!("{short} {} {day:>2} {} {}", p[2], p[4], p[3]);
    (rfc850, asctime)
}

#[test]
fn if_modified_since_takes_all_three_http_date_forms() {
    let s = Server::start(&[]);
    let first = get(s.addr(), "/hello.txt");
    let modified = first.header("Last-Modified").expect("Last-Modified");
    let (rfc850, asctime) = obsolete_date_forms(modified);
    for since in [modified, rfc850.as_str(), asctime.as_str()] {
        let r = support::request(
            s.addr(),
            format!(
                "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                 If-Modified-Since: {since}\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 304, "If-Modified-Since: {since}: {r:?}");
    }
    // Long before the file: 1994, not 2094 (the two-digit-year rule).
    let r = support::request(
        s.addr(),
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
          If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
}

#[test]
fn absolute_form_targets_are_served_from_their_path() {
    // RFC 9112 §3.2.2: a server accepts absolute-form and uses its path
    // and query; the scheme, host and port need not be ours.
    let docroot = support::TempDir::docroot();
    docroot.write("index.html", "<p>index</p>\n");
    let s = Server::start(&[docroot.path().to_str().expect("UTF-8 path")]);
    for target in [
        "http://x/hello.txt",
        "HTTP://example.com:8080/hello.txt?q=1",
        "https://127.0.0.1:443/hello.txt",
    ] {
        let r = get(s.addr(), target);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, HELLO),
            "{target}: {r:?}"
        );
    }
    // No path means `/`.
    let r = get(s.addr(), "http://x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "<p>index</p>\n"),
        "{r:?}"
    );
    // A directory's redirect keeps the query and goes to the origin-form path.
    std::fs::create_dir(docroot.path().join("d")).expect("mkdir d");
    let r = get(s.addr(), "http://x/d?q=1");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("Location"), Some("/d/?q=1"), "{r:?}");
}

#[test]
fn log_requests_escapes_the_method_and_target() {
    // A `"` in the target must not end the quoted request in the log line
    // (a reader would take what follows for the status and a new field);
    // nginx's escaping: `\x22`, `\x5C`, and `\xHH` for other bytes below
    // 0x20 or from 0x7f.
    let s = Server::start(&["--log-requests"]);
    let r = support::request(
        s.addr(),
        "GET /x\"y\\z/\u{e9}\" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".as_bytes(),
    );
    assert_eq!(r.status, 404, "{r:?}");
    let want = r#""GET /x\x22y\x5Cz/\xC3\xA9\x22 HTTP/1.1" 404 "#;
    assert!(
        s.wait_for_line(want, deadline_in(Duration::from_secs(5))),
        "no log line with {want:?} in:\n{}",
        s.stdout()
    );
    let line = s
        .stdout()
        .lines()
        .find(|l| l.contains(want))
        .map(str::to_owned)
        .expect("the line just seen");
    assert_eq!(line.matches('"').count(), 2, "{line}");
    assert!(line.is_ascii(), "{line}");
}

// ---------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------

#[test]
fn http11_keeps_the_connection_alive() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/hello.txt"));
    let a = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO));
    assert!(!a.connection_has("close"), "{a:?}");
    c.send(&get_bytes("/other.txt"));
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER));
    assert!(!b.connection_has("close"), "{b:?}");
}

#[test]
fn http_1_2_is_served_as_http_1_1() {
    // RFC 9110 §2.5: a higher minor of our major version is answered with
    // HTTP/1.1 and its rules (keep-alive by default).
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"GET /hello.txt HTTP/1.2\r\nHost: test\r\n\r\n");
    let a = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO), "{a:?}");
    assert_eq!(a.version, "HTTP/1.1");
    assert!(!a.connection_has("close"), "{a:?}");
    c.send(b"GET /other.txt HTTP/1.9\r\nHost: test\r\n\r\n");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

#[test]
fn http10_closes_by_default() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"GET /hello.txt HTTP/1.0\r\n\r\n");
    let r = c.expect_response("GET");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO));
    assert!(!r.connection_has("keep-alive"), "{r:?}");
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
}

#[test]
fn http10_keep_alive_is_honoured() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    let req = b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    c.send(req);
    let a = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO));
    assert!(a.connection_has("keep-alive"), "{a:?}");
    c.send(req);
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, HELLO));
    assert!(b.connection_has("keep-alive"), "{b:?}");
}

#[test]
fn connection_close_is_honoured() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.expect_response("GET");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO));
    assert!(r.connection_has("close"), "{r:?}");
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
}

#[test]
fn max_keep_alive_closes_after_the_last_allowed_request() {
    let s = Server::start(&["--max-keep-alive", "2"]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/hello.txt"));
    let a = c.expect_response("GET");
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!a.connection_has("close"), "first response: {a:?}");
    c.send(&get_bytes("/hello.txt"));
    let b = c.expect_response("GET");
    assert_eq!(b.status, 200, "{b:?}");
    assert!(b.connection_has("close"), "second response: {b:?}");
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
    assert_serves(s.addr());
}

// ---------------------------------------------------------------------
// Pipelining
// ---------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    let mut req = get_bytes("/hello.txt");
    req.extend_from_slice(&get_bytes("/missing.txt"));
    req.extend_from_slice(&get_bytes("/other.txt"));
    c.send(&req); // one write
    let a = c.expect_response("GET");
    let b = c.expect_response("GET");
    let d = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO), "{a:?}");
    assert_eq!(b.status, 404, "{b:?}");
    assert_eq!((d.status, d.text().as_str()), (200, OTHER), "{d:?}");
    for r in [&a, &b, &d] {
        assert!(!r.connection_has("close"), "{r:?}");
    }
    // Still open and usable.
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
}

// ---------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------

#[test]
fn content_length_body_is_consumed_before_the_next_request() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    // The body looks like a request: if it were not consumed as a body,
    // it would be answered as one (with a 404).
    let body = "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut req = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&get_bytes("/other.txt"));
    c.send(&req);
    let a = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO), "{a:?}");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

#[test]
fn content_length_body_sent_after_the_head_is_read_from_the_socket() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n");
    c.send(b"0123456789");
    c.send(&get_bytes("/other.txt"));
    let a = c.expect_response("POST");
    // The static app does not take POST; the point is the framing.
    assert!((400..500).contains(&a.status), "{a:?}");
    assert!(!a.connection_has("close"), "{a:?}");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

#[test]
fn chunked_body_is_consumed_before_the_next_request() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    let mut req = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n\
        6;name=value\r\n world\r\n\
        15\r\nGET /missing HTTP/1.1\r\n\
        0\r\nX-Trailer: yes\r\n\r\n"
        .to_vec();
    req.extend_from_slice(&get_bytes("/other.txt"));
    c.send(&req);
    let a = c.expect_response("GET");
    assert_eq!((a.status, a.text().as_str()), (200, HELLO), "{a:?}");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

#[test]
fn chunked_body_in_several_writes() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"3\r\nabc\r\n");
    c.send(b"4\r\ndefg\r\n");
    c.send(b"0\r\n\r\n");
    c.send(&get_bytes("/hello.txt"));
    let a = c.expect_response("POST");
    assert!((400..500).contains(&a.status), "{a:?}");
    assert!(!a.connection_has("close"), "{a:?}");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, HELLO), "{b:?}");
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(
        b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.expect_response("GET");
    assert_eq!(
        interim.status, 100,
        "expected `HTTP/1.1 100 Continue` while the body is withheld, got {interim:?}"
    );
    c.send(b"hello");
    let r = c.expect_response("GET");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
    // The connection is still in step.
    c.send(&get_bytes("/other.txt"));
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

#[test]
fn expect_100_continue_with_the_body_already_sent_stays_in_step() {
    let s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    let mut req = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
        .to_vec();
    req.extend_from_slice(&get_bytes("/other.txt"));
    c.send(&req);
    let mut a = c.expect_response("GET");
    if a.status == 100 {
        a = c.expect_response("GET"); // allowed, though not needed here
    }
    assert_eq!((a.status, a.text().as_str()), (200, HELLO), "{a:?}");
    let b = c.expect_response("GET");
    assert_eq!((b.status, b.text().as_str()), (200, OTHER), "{b:?}");
}

// ---------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------

#[test]
fn body_that_stops_arriving_gets_408() {
    let s = Server::start(&["--body-timeout", "1"]);
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc");
    let r = c
        .response_by("GET", t0 + Duration::from_secs(4))
        .unwrap_or_else(|e| panic!("no 408 within 4 s: {e}"));
    let waited = t0.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.connection_has("close"), "{r:?}");
    assert!(
        waited >= Duration::from_millis(800),
        "408 after only {waited:?}; body_timeout is 1 s"
    );
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(2))),
        Ok(Closed::Eof)
    );
    assert_serves(s.addr());
}

#[test]
fn slow_header_client_is_cut_off_while_others_are_served() {
    let s = Server::start(&["--first-data-timeout", "1"]);
    let addr = s.addr();
    let slow = TcpStream::connect(addr).expect("connect");
    slow.set_nodelay(true).expect("TCP_NODELAY");
    let mut writer = slow.try_clone().expect("clone the stream");
    let t0 = Instant::now();
    let (started_tx, started_rx) = mpsc::channel();
    // Slowloris: one byte every 200 ms; the whole head would take ~14 s.
    let head = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nX-Slow: zzzzzzzzzzzzzzzzzzzzzzzz\r\n\r\n";
    let trickle = std::thread::spawn(move || {
        for (i, b) in head.iter().enumerate() {
            if writer.write_all(&[*b]).is_err() {
                return i;
            }
            if i == 1 {
                let _ = started_tx.send(());
            }
            std::thread::sleep(Duration::from_millis(200)); // the client's pace
        }
        head.len()
    });
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the slow client started sending");

    // Meanwhile another connection is served at once.
    let t = Instant::now();
    assert_serves(addr);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a normal request took {:?} next to a slow client",
        t.elapsed()
    );

    // The slow client gets a 408 (or just a close) at the deadline.
    let mut c = Client::new(slow);
    match c.response_by("GET", t0 + Duration::from_secs(4)) {
        Ok(r) => {
            assert_eq!(r.status, 408, "{r:?}");
            let closed = c.wait_closed(deadline_in(Duration::from_secs(2)));
            assert!(closed.is_ok(), "{closed:?}");
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "the slow client was neither answered 408 nor closed: {e}"
        ),
    }
    let cut = t0.elapsed();
    assert!(
        cut >= Duration::from_millis(800) && cut <= Duration::from_secs(3),
        "the slow client was cut off after {cut:?}; expected about 1 s"
    );
    let sent = trickle.join().expect("trickle thread");
    assert!(sent < head.len(), "the whole slow head was accepted");
    assert_serves(addr);
}

#[test]
fn silent_connection_is_closed_after_first_data_timeout() {
    let s = Server::start(&["--first-data-timeout", "1"]);
    let mut c = Client::connect(s.addr());
    let t0 = Instant::now();
    let closed = c.wait_closed(t0 + Duration::from_secs(4));
    assert!(closed.is_ok(), "{closed:?}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(3),
        "closed after {waited:?}; expected about 1 s"
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_after_persistent_timeout() {
    let s = Server::start(&["--persistent-timeout", "1"]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/hello.txt"));
    let r = c.expect_response("GET");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.connection_has("close"), "{r:?}");
    let t0 = Instant::now();
    assert_eq!(c.wait_closed(t0 + Duration::from_secs(4)), Ok(Closed::Eof));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(3),
        "idle connection closed after {waited:?}; expected about 1 s"
    );
    assert_serves(s.addr());
}

#[test]
fn second_request_that_stalls_on_a_keep_alive_connection_gets_408() {
    // Between requests the connection waits in the pool's epoll; a head
    // that starts there and stops arriving has first_data_timeout, not
    // persistent_timeout.
    let s = Server::start(&["--first-data-timeout", "1", "--persistent-timeout", "20"]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
    c.send(b"GET /hello.txt HTTP/1.1\r\nHost: te");
    let t0 = Instant::now();
    let r = c
        .response_by("GET", t0 + Duration::from_secs(5))
        .expect("an answer to the stalled request");
    assert_eq!(r.status, 408, "{r:?}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(3),
        "408 after {waited:?}; expected about 1 s"
    );
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
    assert_serves(s.addr());
}

#[test]
fn many_keep_alive_connections_take_turns_on_one_thread() {
    // -t 1:1: every connection parks between requests and the single pool
    // thread serves whichever is ready; none is starved.
    let s = Server::start(&["-t", "1:1"]);
    let mut clients: Vec<_> = (0..20).map(|_| Client::connect(s.addr())).collect();
    for round in 0..5 {
        for c in &mut clients {
            c.send(&get_bytes("/hello.txt"));
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c
                .response_by("GET", deadline_in(Duration::from_secs(5)))
                .unwrap_or_else(|e| panic!("round {round}, connection {i}: {e}"));
            assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
        }
    }
}

#[test]
fn small_and_large_files_and_their_ranges_arrive_byte_for_byte() {
    // A small file (up to 16 KiB) leaves with its head in one send, from
    // the lookup cache; a larger one goes out with sendfile. Both, whole
    // and in ranges, on one keep-alive connection.
    let s = Server::start(&[]);
    let root = s.docroot().expect("the test docroot");
    let pattern = |n: u32| -> Vec<u8> { (0..n).map(|i| (i % 251) as u8).collect() };
    let small = pattern(16 * 1024);
    let large = pattern(100_000);
    std::fs::write(root.join("small.bin"), &small).expect("write small.bin");
    std::fs::write(root.join("large.bin"), &large).expect("write large.bin");
    let mut c = Client::connect(s.addr());
    for (name, body) in [("small.bin", &small), ("large.bin", &large)] {
        for _ in 0..2 {
            c.send(&get_bytes(&format!("/{name}")));
            let r = c.expect_response("GET");
            assert_eq!(r.status, 200, "{name}: {r:?}");
            assert!(
                r.body == *body,
                "{name} arrived changed ({} bytes)",
                r.body.len()
            );
        }
        for (first, last) in [(0, 0), (2, 5), (1000, body.len() - 1)] {
            c.send(
                format!(
                    "GET /{name} HTTP/1.1\r\nHost: test\r\nRange: bytes={first}-{last}\r\n\r\n"
                )
                .as_bytes(),
            );
            let r = c.expect_response("GET");
            assert_eq!(r.status, 206, "{name} {first}-{last}: {r:?}");
            assert!(
                r.body == body[first..=last],
                "{name} {first}-{last} arrived changed"
            );
        }
    }
    c.send(b"HEAD /small.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = c.expect_response("HEAD");
    assert_eq!(r.header("Content-Length"), Some("16384"), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").text(), HELLO, "still in step");
}
