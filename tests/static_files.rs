//! The static-file app over real sockets against the real binary: what a
//! client sees on the wire for ranges, preconditions and content types,
//! and which descriptors the lookup cache keeps open.

mod support;

use support::{request, Server, HELLO};

/// The raw bytes of `METHOD target` with `headers`, on a closing connection.
fn raw(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn range_is_ignored_on_head() {
    // RFC 9110 §14.2: Range is for GET; a HEAD gets the whole 200 head.
    let s = Server::start(&[]);
    let len = HELLO.len().to_string();
    for range in ["bytes=0-4", "bytes=-3", "bytes=1000-"] {
        let r = request(s.addr(), &raw("HEAD", "/hello.txt", &[("Range", range)]));
        assert_eq!(r.status, 200, "HEAD {range}: {r:?}");
        assert_eq!(r.header("Content-Length"), Some(len.as_str()), "{range}");
        assert_eq!(r.header("Content-Range"), None, "{range}");
        assert!(r.body.is_empty(), "{r:?}");
    }
    // GET still gets its range.
    let r = request(
        s.addr(),
        &raw("GET", "/hello.txt", &[("Range", "bytes=0-4")]),
    );
    assert_eq!((r.status, r.text().as_str()), (206, &HELLO[..5]), "{r:?}");
}
