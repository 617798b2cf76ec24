//! Every refusal status of the HTTP core, end to end: the request that
//! earns it, the status on the wire, `Connection: close`, the server
//! closing the connection, and a fresh connection still served (one bad
//! client does not disturb the server).

mod support;

use std::time::{Duration, Instant};

use support::{assert_serves, deadline_in, Client, Closed, Server};

/// Sends `raw` to a server started with `args` and checks the refusal.
/// `may_reset`: the server refuses before it has read all of `raw`, so
/// the kernel may end the connection with RST rather than FIN.
fn assert_refused(args: &[&str], raw: &[u8], status: u16, may_reset: bool) {
    let s = Server::start(args);
    let mut c = Client::connect(s.addr());
    // The server may answer and close before the last byte is written.
    let _ = c.try_send(raw);
    let r = c
        .response("GET")
        .unwrap_or_else(|e| panic!("no {status} response: {e}"));
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.connection_has("close"), "no `Connection: close`: {r:?}");
    assert!(
        r.text().starts_with(&status.to_string()),
        "body {:?}",
        r.text()
    );
    match c.wait_closed(deadline_in(Duration::from_secs(3))) {
        Ok(Closed::Eof) => {}
        Ok(Closed::Reset) if may_reset => {}
        other => {
            panic!("after {status}: expected the server to close the connection, got {other:?}")
        }
    }
    assert_serves(s.addr());
}

#[test]
fn malformed_request_line_is_400() {
    assert_refused(&[], b"THIS IS NOT HTTP\r\n\r\n", 400, false);
}

#[test]
fn request_line_without_version_is_400() {
    assert_refused(&[], b"GET /hello.txt\r\nHost: test\r\n\r\n", 400, false);
}

#[test]
fn bad_header_line_is_400() {
    assert_refused(
        &[],
        b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nBad Header Name: x\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn header_without_colon_is_400() {
    assert_refused(
        &[],
        b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nno-colon-here\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn fragment_in_target_is_400() {
    assert_refused(
        &[],
        b"GET /hello.txt#top HTTP/1.1\r\nHost: test\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn missing_host_in_http11_is_400() {
    assert_refused(&[], b"GET /hello.txt HTTP/1.1\r\n\r\n", 400, false);
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    assert_refused(
        &[],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn conflicting_content_lengths_are_400() {
    assert_refused(
        &[],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
        false,
    );
}

#[test]
fn invalid_content_length_is_400() {
    assert_refused(
        &[],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5x\r\n\r\nhello",
        400,
        false,
    );
}

#[test]
fn bad_chunk_size_is_400() {
    assert_refused(
        &[],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn transfer_encoding_in_http_1_0_is_400() {
    // RFC 9112 §6.1: faulty framing; the keep-alive asked for is refused.
    assert_refused(
        &[],
        b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        false,
    );
}

#[test]
fn transfer_encoding_gzip_is_501() {
    assert_refused(
        &[],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        false,
    );
}

#[test]
fn content_length_over_max_body_is_413() {
    // The body is not sent: the length alone is enough to refuse.
    assert_refused(
        &["--max-body", "100"],
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 101\r\n\r\n",
        413,
        false,
    );
}

#[test]
fn content_length_at_max_body_is_accepted() {
    let s = Server::start(&["--max-body", "100"]);
    let mut c = Client::connect(s.addr());
    let mut req = b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n".to_vec();
    req.extend_from_slice(&[b'x'; 100]);
    c.send(&req);
    let r = c.expect_response("GET");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.connection_has("close"), "{r:?}");
}

#[test]
fn chunked_body_over_max_body_is_413() {
    let mut req =
        b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"28\r\n");
        req.extend_from_slice(&[b'y'; 40]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_refused(&["--max-body", "100"], &req, 413, false);
}

#[test]
fn chunk_size_over_max_body_is_413_before_its_data() {
    // The client sends a size line and a little data, then waits: the
    // size alone (or the sum of the sizes so far) is enough to refuse, so
    // the 413 comes now, not after max_body bytes or first_data_timeout.
    let head = "GET /hello.txt HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";
    let one_chunk = format!("{head}65\r\n{}", "y".repeat(10));
    let two_chunks = format!("{head}28\r\n{}\r\n3d\r\nyyy", "y".repeat(40));
    for req in [one_chunk, two_chunks] {
        assert_refused(
            &["--max-body", "100", "--first-data-timeout", "60"],
            req.as_bytes(),
            413,
            false,
        );
    }
}

#[test]
fn uri_over_8_kib_is_414() {
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: test\r\n\r\n",
        "a".repeat(8 * 1024 + 1)
    );
    assert_refused(&[], req.as_bytes(), 414, false);
}

#[test]
fn uri_just_under_8_kib_is_not_414() {
    let s = Server::start(&[]);
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        "a".repeat(8 * 1024 - 1)
    );
    let r = support::request(s.addr(), req.as_bytes());
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn header_block_over_64_kib_is_431() {
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\n");
    for i in 0..70 {
        req.push_str(&format!("X-Filler-{i}: {}\r\n", "f".repeat(1000)));
    }
    req.push_str("\r\n");
    assert!(req.len() > 64 * 1024);
    // The server stops reading at 64 KiB, so the rest of the head is
    // still unread when it closes.
    assert_refused(&[], req.as_bytes(), 431, true);
}

#[test]
fn more_than_100_header_fields_is_431() {
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_refused(&[], req.as_bytes(), 431, false);
}

#[test]
fn exactly_100_header_fields_is_accepted() {
    let s = Server::start(&[]);
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..98 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let r = support::request(s.addr(), req.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn http2_preface_is_505() {
    assert_refused(&[], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, false);
}

#[test]
fn http_2_0_and_0_9_requests_are_505() {
    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let req = format!("GET /hello.txt {version}\r\nHost: test\r\n\r\n");
        assert_refused(&[], req.as_bytes(), 505, false);
    }
}

#[test]
fn error_answer_to_head_has_no_body() {
    let s = Server::start(&["--max-body", "10"]);
    let mut c = Client::connect(s.addr());
    c.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\n");
    let r = c.expect_response("HEAD");
    assert_eq!(r.status, 413, "{r:?}");
    // Nothing but the close follows the head.
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
}

#[test]
fn many_refusals_in_a_row_leave_the_server_serving() {
    let s = Server::start(&[]);
    let t0 = Instant::now();
    for _ in 0..50 {
        let mut c = Client::connect(s.addr());
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"); // a TLS hello, of sorts
        let r = c.expect_response("GET");
        assert_eq!(r.status, 400, "{r:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_serves(s.addr());
}
