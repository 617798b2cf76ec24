//! Unit tests of the head parser, the chunked decoder and log escaping,
//! on byte strings.

use std::borrow::Cow;

use super::*;

/// Parses a complete head or panics with the error.
fn parse(buf: &[u8]) -> (Head, usize) {
    match parse_head(buf) {
        Ok(Some(done)) => done,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// The error a head gets, or panics.
fn error(buf: &[u8]) -> HttpError {
    match parse_head(buf) {
        Err(e) => e,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// A GET with the given extra header lines (each ending in CRLF).
fn get(version: &str, extra: &str) -> Vec<u8> {
    format!("GET / {version}\r\nHost: h\r\n{extra}\r\n").into_bytes()
}

// ---- HttpError and reason ----

#[test]
fn head_scan_agrees_with_head_end_for_every_split() {
    let heads: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest",
        b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\nrest",
        b"GET / HTTP/1.1\r\nA: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\nC: d\r\n",
        b"\r\n\r\n\r\n",
    ];
    for head in heads {
        // Fed one byte at a time, and in two pieces split anywhere.
        let mut scan = HeadScan::default();
        let mut found = None;
        for n in 1..=head.len() {
            found = found.or(scan.find(&head[..n]));
        }
        assert_eq!(found, head_end(head), "{:?}", String::from_utf8_lossy(head));
        for split in 0..=head.len() {
            let mut scan = HeadScan::default();
            let first = scan.find(&head[..split]);
            let end = first.or_else(|| scan.find(head));
            assert_eq!(end, head_end(head), "split at {split}");
        }
    }
}

#[test]
fn head_scan_notes_the_request_line() {
    let mut scan = HeadScan::default();
    assert_eq!(scan.find(b"\r\nGET /x"), None);
    assert!(!scan.line_complete());
    assert_eq!(scan.find(b"\r\nGET /x\r\nHo"), None);
    assert!(scan.line_complete());
}

#[test]
fn every_error_has_its_status_and_a_message() {
    let all = [
        (HttpError::BadRequest("x"), 400),
        (HttpError::Timeout, 408),
        (HttpError::PayloadTooLarge, 413),
        (HttpError::UriTooLong, 414),
        (HttpError::HeadersTooLarge, 431),
        (HttpError::NotImplemented, 501),
        (HttpError::VersionNotSupported, 505),
    ];
    for (e, status) in all {
        assert_eq!(e.status(), status);
        assert!(!e.to_string().is_empty());
        assert!(!reason(status).is_empty(), "{status}");
    }
}

#[test]
fn reason_phrases() {
    let known = [100, 101, 300, 305, 421, 422, 426, 428, 429, 431]
        .into_iter()
        .chain(200..=206)
        .chain([301, 302, 303, 304, 307, 308])
        .chain(400..=417)
        .chain(500..=505);
    for status in known {
        assert!(!reason(status).is_empty(), "{status}");
    }
    assert_eq!(reason(200), "OK");
    assert_eq!(reason(404), "Not Found");
    assert_eq!(reason(431), "Request Header Fields Too Large");
    assert_eq!(reason(505), "HTTP Version Not Supported");
    for unknown in [0, 99, 207, 306, 418, 430, 506, 999] {
        assert_eq!(reason(unknown), "", "{unknown}");
    }
}

// ---- request line ----

#[test]
fn simple_get() {
    let buf = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let (head, n) = parse(buf);
    assert_eq!(n, buf.len());
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/a%20b?x=1");
    assert_eq!(head.minor, 1);
    assert_eq!(
        head.headers,
        vec![
            ("Host".to_owned(), b"example.com".to_vec()),
            ("Accept".to_owned(), b"*/*".to_vec()),
        ]
    );
    assert_eq!(head.framing, Framing::None);
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
}

#[test]
fn http_1_0_without_host() {
    let (head, n) = parse(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!((head.minor, n), (0, 18));
    assert!(!head.keep_alive);
}

#[test]
fn every_prefix_is_incomplete() {
    let buf = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(parse_head(&buf[..end]), Ok(None), "prefix of {end}");
    }
    assert_eq!(parse(buf).1, buf.len());
}

#[test]
fn pipelined_requests_end_exactly() {
    let first = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n".to_vec();
    let second = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let third = b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec();
    let mut buf = first.clone();
    buf.extend_from_slice(b"hello");
    buf.extend_from_slice(&second);
    buf.extend_from_slice(&third);

    let (head, n) = parse(&buf);
    assert_eq!(n, first.len());
    assert_eq!(head.framing, Framing::Length(5));
    assert_eq!(&buf[n..n + 5], b"hello");
    let rest = &buf[n + 5..];
    let (head, n) = parse(rest);
    assert_eq!((head.target.as_str(), n), ("/b", second.len()));
    let (head, n) = parse(&rest[n..]);
    assert_eq!((head.target.as_str(), n), ("/c", third.len()));
    assert!(!head.keep_alive);
}

#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    let buf = b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\nX";
    let (head, n) = parse(buf);
    assert_eq!(head.method, "GET");
    assert_eq!(n, buf.len() - 1);
    assert_eq!(head_end(buf), Some(n));
    assert_eq!(parse_head(b"\r\n\r\n"), Ok(None));
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let buf = b"GET / HTTP/1.1\nHost: h\n\nNEXT";
    let (_, n) = parse(buf);
    assert_eq!(n, buf.len() - 4);
    assert_eq!(head_end(buf), Some(n));
}

/// The target and Host values that `method target version` with
/// `host_line` (a header line or "") is parsed into.
fn target_and_host(
    method: &str,
    target: &str,
    version: &str,
    host_line: &str,
) -> (String, Vec<Vec<u8>>) {
    let (head, _) = parse(format!("{method} {target} {version}\r\n{host_line}\r\n").as_bytes());
    let hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .collect();
    (head.target, hosts)
}

#[test]
fn absolute_form_becomes_origin_form() {
    // RFC 9112 §3.2.2: the path and query are taken from the target,
    // and its authority replaces whatever Host says.
    let cases = [
        ("http://x/a.txt", "/a.txt", "x"),
        ("HTTP://x/a.txt", "/a.txt", "x"),
        ("https://x/a.txt", "/a.txt", "x"),
        (
            "hTTpS://example.com:8443/a.txt?q=1&r",
            "/a.txt?q=1&r",
            "example.com:8443",
        ),
        ("http://x", "/", "x"),
        ("http://x:80", "/", "x:80"),
        ("http://x?q=1", "/?q=1", "x"),
        ("http://x/", "/", "x"),
        ("http://[::1]:8080/d/e%20f/", "/d/e%20f/", "[::1]:8080"),
        ("http://x//y", "//y", "x"),
    ];
    for (target, path, host) in cases {
        let (t, hosts) = target_and_host("GET", target, "HTTP/1.1", "Host: other\r\n");
        assert_eq!(t, path, "{target}");
        assert_eq!(hosts, vec![host.as_bytes().to_vec()], "{target}");
    }
    // HTTP/1.0 needs no Host: the target's authority becomes one.
    let (t, hosts) = target_and_host("HEAD", "http://x/a", "HTTP/1.0", "");
    assert_eq!((t.as_str(), hosts), ("/a", vec![b"x".to_vec()]));
    // HTTP/1.1 still needs its Host field (RFC 9112 §3.2).
    let no_host = b"GET http://x/a HTTP/1.1\r\n\r\n";
    assert!(matches!(error(no_host), HttpError::BadRequest(_)));
    // Any method but CONNECT; OPTIONS with an empty path means `*`
    // (RFC 9112 §3.2.4).
    assert_eq!(
        target_and_host("POST", "http://x/p", "HTTP/1.1", "Host: x\r\n").0,
        "/p"
    );
    assert_eq!(
        target_and_host("OPTIONS", "http://x", "HTTP/1.1", "Host: x\r\n").0,
        "*"
    );
    assert_eq!(
        target_and_host("OPTIONS", "http://x/", "HTTP/1.1", "Host: x\r\n").0,
        "/"
    );
}

#[test]
fn other_target_forms() {
    // Origin-form as sent; asterisk-form for OPTIONS; CONNECT's
    // authority-form is left to the handler.
    for (method, target) in [
        ("GET", "/a%20b?x=1"),
        ("GET", "//x/a"),
        ("OPTIONS", "*"),
        ("CONNECT", "example.com:443"),
    ] {
        let (t, hosts) = target_and_host(method, target, "HTTP/1.1", "Host: h\r\n");
        assert_eq!((t.as_str(), hosts), (target, vec![b"h".to_vec()]));
    }
    for (method, target) in [
        ("GET", "*"),
        ("HEAD", "*"),
        ("GET", "a.txt"),
        ("GET", "example.com:443"),
        ("OPTIONS", "*x"),
        ("GET", "ftp://x/a.txt"),
        ("GET", "file:///etc/passwd"),
        ("GET", "http:/a.txt"),
        ("GET", "http:x/a.txt"),
        ("GET", "http:///a.txt"),
        ("GET", "http://:80/a.txt"),
        ("GET", "http://user@x/a.txt"),
        ("GET", "http://x\"y/a.txt"),
        ("GET", "http://x\\y/a.txt"),
        ("GET", "https://"),
    ] {
        let buf = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(
            matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
            "{method} {target}"
        );
    }
}

#[test]
fn fragment_in_target_is_400() {
    // RFC 9112 §3.2: no request-target form has a fragment; a client
    // strips it. A `#` sent anyway would be read differently by
    // different parsers in a chain.
    for (method, target) in [
        ("GET", "/hello.txt#frag"),
        ("GET", "/#"),
        ("GET", "#"),
        ("GET", "/a?x=1#y"),
        ("GET", "/a?x=#"),
        ("GET", "http://x/a#b"),
        ("GET", "http://x#b"),
        ("OPTIONS", "*#"),
        ("CONNECT", "x:443#y"),
    ] {
        let buf = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(
            matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
            "{method} {target}"
        );
    }
    // Escaped, it is an ordinary byte of the path.
    assert_eq!(
        parse(b"GET /a%23b HTTP/1.1\r\nHost: h\r\n\r\n").0.target,
        "/a%23b"
    );
}

#[test]
fn malformed_request_lines_are_400() {
    let bad: &[&[u8]] = &[
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / FOO/1.1\r\nHost: h\r\n\r\n",
        b"GET / http/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n",
        b"GET / HTTP/2.0.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/\r\nHost: h\r\n\r\n",
        b"GET / HTTP/.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\rHost: h\r\n\r\n",
        b"\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    ];
    for buf in bad {
        assert!(
            matches!(error(buf), HttpError::BadRequest(_)),
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn other_versions_are_505() {
    let bad: &[&[u8]] = &[
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET / HTTP/3\r\n\r\n",
        // Known as soon as the token goes wrong, before the head ends.
        b"PRI * HTTP/2",
        b"GET / HTTP/1.23",
    ];
    for buf in bad {
        assert_eq!(
            error(buf),
            HttpError::VersionNotSupported,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn higher_1x_minors_are_served_as_1_1() {
    // RFC 9110 §2.5: a 1.x minor above ours is answered as HTTP/1.1,
    // the highest minor this server conforms to.
    for minor in 2..=9 {
        let buf = format!("GET /a HTTP/1.{minor}\r\nHost: h\r\nX: y\r\n\r\nNEXT");
        let (head, n) = parse(buf.as_bytes());
        assert_eq!(n, buf.len() - 4);
        assert_eq!((head.minor, head.target.as_str()), (1, "/a"));
        assert!(head.keep_alive);
        assert_eq!(head_end(buf.as_bytes()), Some(n));
    }
    // With HTTP/1.1's rules: Host is required, close is honoured.
    assert!(matches!(
        error(b"GET / HTTP/1.2\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
    let (head, _) = parse(b"GET / HTTP/1.2\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert!(!head.keep_alive);
    // Still arriving: wait for the rest.
    let buf = b"GET / HTTP/1.2\r\nHost: h\r\n\r\n";
    for end in 0..buf.len() {
        assert_eq!(parse_head(&buf[..end]), Ok(None), "{end}");
    }
    // Other errors after the version are still found.
    assert!(matches!(
        error(b"GET / HTTP/1.2\r\nBad Name: v\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
}

// ---- limits ----

/// A GET whose target is `/` followed by `len - 1` letters.
fn get_with_target(len: usize) -> Vec<u8> {
    let target = format!("/{}", "a".repeat(len - 1));
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

#[test]
fn uri_at_the_limit_and_one_over() {
    let (head, _) = parse(&get_with_target(MAX_URI));
    assert_eq!(head.target.len(), MAX_URI);
    assert_eq!(error(&get_with_target(MAX_URI + 1)), HttpError::UriTooLong);
}

#[test]
fn long_uri_is_414_before_the_head_ends() {
    let buf = get_with_target(MAX_URI + 1);
    // Only the method, a space and the target have arrived.
    assert_eq!(error(&buf[..4 + MAX_URI + 1]), HttpError::UriTooLong);
    assert_eq!(parse_head(&buf[..4 + MAX_URI]), Ok(None));
    // Huge and incomplete: still 414, not 431.
    let huge = format!("GET /{}", "a".repeat(MAX_HEAD * 2));
    assert_eq!(error(huge.as_bytes()), HttpError::UriTooLong);
}

#[test]
fn long_request_line_is_414() {
    let method = "M".repeat(MAX_REQUEST_LINE + 1);
    assert_eq!(error(method.as_bytes()), HttpError::UriTooLong);
    let line = format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(error(line.as_bytes()), HttpError::UriTooLong);
    // Exactly at the limit (a long method makes up the slack), with
    // its CR waiting for its LF: not yet; whole: accepted.
    let method = "M".repeat(MAX_REQUEST_LINE - MAX_URI - " HTTP/1.1".len() - 1);
    let target = format!("/{}", "a".repeat(MAX_URI - 1));
    let line = format!("{method} {target} HTTP/1.1");
    assert_eq!(line.len(), MAX_REQUEST_LINE);
    assert_eq!(parse_head(format!("{line}\r").as_bytes()), Ok(None));
    parse(format!("{line}\r\nHost: h\r\n\r\n").as_bytes());
    let over = format!("M{line}\r\nHost: h\r\n\r\n");
    assert_eq!(error(over.as_bytes()), HttpError::UriTooLong);
}

/// A head of exactly `len` bytes: request line, Host, one filler
/// header, blank line.
fn head_of_len(len: usize) -> Vec<u8> {
    let fixed = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        "v".repeat(len - fixed)
    )
    .into_bytes()
}

#[test]
fn head_at_the_limit_and_one_over() {
    let buf = head_of_len(MAX_HEAD);
    assert_eq!(buf.len(), MAX_HEAD);
    assert_eq!(parse(&buf).1, MAX_HEAD);
    // With a pipelined request behind it, still fine.
    let mut more = buf.clone();
    more.extend_from_slice(&get("HTTP/1.1", ""));
    assert_eq!(parse(&more).1, MAX_HEAD);

    assert_eq!(
        error(&head_of_len(MAX_HEAD + 1)),
        HttpError::HeadersTooLarge
    );
}

#[test]
fn incomplete_head_at_the_limit_is_431() {
    let buf = head_of_len(MAX_HEAD + 1);
    assert_eq!(parse_head(&buf[..MAX_HEAD - 1]), Ok(None));
    assert_eq!(error(&buf[..MAX_HEAD]), HttpError::HeadersTooLarge);
    let blank_lines = b"\r\n".repeat(MAX_HEAD / 2);
    assert_eq!(error(&blank_lines), HttpError::HeadersTooLarge);
}

/// A GET with Host and `count - 1` more fields.
fn get_with_fields(count: usize) -> Vec<u8> {
    let extra: String = (1..count).map(|i| format!("X-{i}: {i}\r\n")).collect();
    get("HTTP/1.1", &extra)
}

#[test]
fn header_count_at_the_limit_and_one_over() {
    assert_eq!(
        parse(&get_with_fields(MAX_HEADERS)).0.headers.len(),
        MAX_HEADERS
    );
    assert_eq!(
        error(&get_with_fields(MAX_HEADERS + 1)),
        HttpError::HeadersTooLarge
    );
    // Known before the head ends.
    let buf = get_with_fields(MAX_HEADERS + 1);
    assert_eq!(error(&buf[..buf.len() - 2]), HttpError::HeadersTooLarge);
}

// ---- header fields ----

#[test]
fn malformed_fields_are_400() {
    let bad: &[&str] = &[
        "X: a\r\n folded\r\n",  // obs-fold
        "X: a\r\n\tfolded\r\n", // obs-fold with HTAB
        "X : a\r\n",            // space before colon
        "X\t: a\r\n",           // HTAB before colon
        ": a\r\n",              // empty name
        "X a\r\n",              // no colon
        "X: a\rb\r\n",          // bare CR
        "X: a\0b\r\n",          // NUL
        "X: a\x7fb\r\n",        // DEL
        "X(: a\r\n",            // separator in name
    ];
    for extra in bad {
        assert!(
            matches!(error(&get("HTTP/1.1", extra)), HttpError::BadRequest(_)),
            "{extra:?}"
        );
    }
    // A space before the first field would hide it from some parsers.
    assert!(matches!(
        error(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
        HttpError::BadRequest(_)
    ));
}

#[test]
fn field_values_are_trimmed_and_kept_raw() {
    let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX:  \tv a\xff \t\r\nEmpty:\r\n\r\n");
    assert_eq!(head.headers[1], ("X".to_owned(), b"v a\xff".to_vec()));
    assert_eq!(head.headers[2], ("Empty".to_owned(), Vec::new()));
}

#[test]
fn host_rules() {
    let missing = b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n";
    assert!(matches!(error(missing), HttpError::BadRequest(_)));
    let twice = get("HTTP/1.1", "host: h\r\n");
    assert!(matches!(error(&twice), HttpError::BadRequest(_)));
    let twice_1_0 = b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n";
    assert!(matches!(error(twice_1_0), HttpError::BadRequest(_)));
    for bad in ["a b", "a/b", "a@b", "a\"b", "\u{e9}"] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert!(
            matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
            "{bad}"
        );
    }
    for good in [
        "",
        "example.com",
        "example.com:8080",
        "[::1]:80",
        "xn--bcher-kva.de",
    ] {
        let buf = format!("GET / HTTP/1.1\r\nHOST: {good}\r\n\r\n");
        parse(buf.as_bytes());
    }
}

// ---- framing ----

fn framing_of(extra: &str) -> Result<Framing, HttpError> {
    parse_head(&get("HTTP/1.1", extra)).map(|r| r.expect("complete head").0.framing)
}

#[test]
fn content_length() {
    assert_eq!(framing_of(""), Ok(Framing::None));
    assert_eq!(framing_of("Content-Length: 0\r\n"), Ok(Framing::Length(0)));
    assert_eq!(
        framing_of("content-length: 42\r\n"),
        Ok(Framing::Length(42))
    );
    assert_eq!(
        framing_of("Content-Length: 007\r\n"),
        Ok(Framing::Length(7))
    );
    assert_eq!(
        framing_of("Content-Length: 18446744073709551615\r\n"),
        Ok(Framing::Length(u64::MAX))
    );
    // Identical duplicates, as fields or as a list, are one value.
    assert_eq!(
        framing_of("Content-Length: 5\r\nContent-Length: 5\r\n"),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        framing_of("Content-Length: 5, 5\r\n"),
        Ok(Framing::Length(5))
    );
}

#[test]
fn bad_content_length_is_400() {
    for value in [
        "",
        "-5",
        "+5",
        "5 5",
        "0x5",
        "5a",
        "5,",
        ",5",
        "1.0",
        "18446744073709551616",
        "99999999999999999999999",
        "\u{ff15}",
    ] {
        let extra = format!("Content-Length: {value}\r\n");
        assert!(
            matches!(framing_of(&extra), Err(HttpError::BadRequest(_))),
            "{value:?}"
        );
    }
}

#[test]
fn conflicting_content_lengths_are_400() {
    for extra in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5\r\nContent-Length: 5, 0\r\n",
    ] {
        assert!(
            matches!(framing_of(extra), Err(HttpError::BadRequest(_))),
            "{extra:?}"
        );
    }
}

#[test]
fn length_and_chunked_together_is_400() {
    for extra in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
    ] {
        assert!(
            matches!(framing_of(extra), Err(HttpError::BadRequest(_))),
            "{extra:?}"
        );
    }
}

#[test]
fn transfer_encoding() {
    for value in [
        "chunked",
        "Chunked",
        "CHUNKED",
        "chunked ",
        "chunked,",
        ", chunked",
    ] {
        let extra = format!("Transfer-Encoding: {value}\r\n");
        assert_eq!(framing_of(&extra), Ok(Framing::Chunked), "{value:?}");
    }
    for value in [
        "gzip",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "chunked, chunked",
        "chunked;q=1",
        "chunk",
    ] {
        let extra = format!("Transfer-Encoding: {value}\r\n");
        assert_eq!(
            framing_of(&extra),
            Err(HttpError::NotImplemented),
            "{value:?}"
        );
    }
    assert_eq!(
        framing_of("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        Err(HttpError::NotImplemented)
    );
    assert!(matches!(
        framing_of("Transfer-Encoding: \r\n"),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn transfer_encoding_in_http_1_0_is_400() {
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
    // faulty framing, whatever the coding and even with a length.
    for extra in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        let buf = format!("POST / HTTP/1.0\r\n{extra}\r\n");
        assert!(
            matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
            "{extra:?}"
        );
    }
    // Content-Length alone is fine in HTTP/1.0.
    let (head, _) = parse(b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(head.framing, Framing::Length(5));
}

// ---- connection and expect ----

#[test]
fn keep_alive_matrix() {
    let cases = [
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: CLOSE\r\n", false),
        ("HTTP/1.1", "Connection: keep-alive\r\n", true),
        ("HTTP/1.1", "Connection: Upgrade, close\r\n", false),
        (
            "HTTP/1.1",
            "Connection: foo\r\nConnection: close\r\n",
            false,
        ),
        ("HTTP/1.1", "Connection: closed\r\n", true),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
        ("HTTP/1.0", "Connection: foo , keep-alive \r\n", true),
        (
            "HTTP/1.0",
            "Connection: foo\r\nConnection: keep-alive\r\n",
            true,
        ),
        ("HTTP/1.0", "Connection: close\r\n", false),
        ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
        ("HTTP/1.0", "Connection: keep-alives\r\n", false),
    ];
    for (version, extra, want) in cases {
        let (head, _) = parse(&get(version, extra));
        assert_eq!(head.keep_alive, want, "{version} {extra:?}");
    }
}

#[test]
fn expect_continue() {
    let cases = [
        ("HTTP/1.1", "Expect: 100-continue\r\n", true),
        ("HTTP/1.1", "expect: 100-Continue\r\n", true),
        ("HTTP/1.1", "", false),
        ("HTTP/1.1", "Expect: something\r\n", false),
        ("HTTP/1.0", "Expect: 100-continue\r\n", false),
    ];
    for (version, extra, want) in cases {
        let (head, _) = parse(&get(version, extra));
        assert_eq!(head.expect_continue, want, "{version} {extra:?}");
    }
}

// ---- log_escape ----

#[test]
fn log_escape_is_nginx_s() {
    assert!(matches!(log_escape("/a%20b?x=1&y='z'"), Cow::Borrowed(_)));
    let cases = [
        ("", ""),
        ("GET", "GET"),
        ("/a\"b", "/a\\x22b"),
        ("/a\\b", "/a\\x5Cb"),
        ("\\x22", "\\x5Cx22"),
        (
            "\0\x01\t\n\r\x1b\x1f",
            "\\x00\\x01\\x09\\x0A\\x0D\\x1B\\x1F",
        ),
        (" !~\x7f", " !~\\x7F"),
        ("/\u{e9}", "/\\xC3\\xA9"),
        ("/\u{1F600}", "/\\xF0\\x9F\\x98\\x80"),
        (
            "/\" 200 0 0.0001\n1.2.3.4 - - [x] \"GET /",
            "/\\x22 200 0 0.0001\\x0A1.2.3.4 - - [x] \\x22GET /",
        ),
    ];
    for (raw, escaped) in cases {
        assert_eq!(log_escape(raw), escaped, "{raw:?}");
    }
    assert_eq!(log_escape_bytes(b"/\xff\x80"), "/\\xFF\\x80");
}

// ---- LoggedLine ----

fn logged(buf: &[u8]) -> (String, String, String) {
    let l = LoggedLine::from_refused(buf);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(l.method), text(l.target), text(l.version))
}

fn parts(m: &str, t: &str, v: &str) -> (String, String, String) {
    (m.into(), t.into(), v.into())
}

#[test]
fn a_refused_request_logs_what_its_line_shows() {
    // 414: the line has not ended, the method is known.
    let mut long = b"GET /".to_vec();
    long.resize(MAX_REQUEST_LINE + 100, b'a');
    assert_eq!(parse_head(&long).err(), Some(HttpError::UriTooLong));
    assert_eq!(logged(&long), parts("GET", "-", "-"));
    long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(logged(&long), parts("GET", "-", "-"));
    // A complete line: all of it (431, a bad header).
    assert_eq!(
        logged(b"\r\nPOST /a?b HTTP/1.1\r\nX: \x01\r\n"),
        parts("POST", "/a?b", "HTTP/1.1")
    );
    assert_eq!(
        logged(b"GET /x HTTP/2.0\n\n"),
        parts("GET", "/x", "HTTP/2.0")
    );
    // Not a request line: what cannot be read stays `-`.
    assert_eq!(logged(b""), parts("-", "-", "-"));
    assert_eq!(logged(b"GET"), parts("-", "-", "-"));
    assert_eq!(logged(b" GET / HTTP/1.1\r\n"), parts("-", "-", "-"));
    assert_eq!(logged(b"G(T / HTTP/1.1\r\n"), parts("-", "-", "-"));
    assert_eq!(logged(&[b'A'; 64]), parts("-", "-", "-"));
    assert_eq!(logged(b"GET /a b HTTP/1.1\r\n"), parts("GET", "-", "-"));
    assert_eq!(logged(b"GET /a\r\n"), parts("GET", "-", "-"));
    assert_eq!(logged(b"GET /a FOO\r\n"), parts("GET", "-", "-"));
    assert_eq!(logged(b"\x16\x03\x01\x02\x00"), parts("-", "-", "-"));
    // Written escaped, three fields always.
    let line = LoggedLine::from_refused(b"GET /\"x\xff HTTP/1.1\r\n");
    assert_eq!(line.to_string(), "GET /\\x22x\\xFF HTTP/1.1");
    assert_eq!(LoggedLine::from_refused(b"").to_string(), "- - -");
}

// ---- head_end ----

#[test]
fn head_end_finds_the_blank_line() {
    assert_eq!(head_end(b""), None);
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r"), None);
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Some(27));
    assert_eq!(
        head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nbody\r\n\r\n"),
        Some(27)
    );
    assert_eq!(head_end(b"GET / HTTP/1.1\nHost: h\n\n"), Some(24));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\n\r\n"), Some(26));
    assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\n"), Some(26));
    assert_eq!(head_end(b"\r\n\r\n"), None);
    assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
}

#[test]
fn head_end_agrees_with_parse_head() {
    let heads: Vec<Vec<u8>> = vec![
        get("HTTP/1.1", ""),
        get("HTTP/1.0", "Connection: keep-alive\r\n"),
        get_with_fields(MAX_HEADERS),
        head_of_len(MAX_HEAD),
        get_with_target(MAX_URI),
        b"\nGET / HTTP/1.1\nHost: h\r\nX: y\n\r\n".to_vec(),
    ];
    for head in heads {
        let mut buf = head.clone();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(head_end(&buf), Some(head.len()));
        assert_eq!(parse(&buf).1, head.len());
        // Every prefix is incomplete (sampled on the big heads).
        let step = 1 + head.len() / 2000;
        for end in (0..head.len())
            .step_by(step)
            .chain(head.len() - 2..head.len())
        {
            assert_eq!(head_end(&head[..end]), None);
        }
    }
}

#[test]
fn find_byte_at_every_offset_and_alignment() {
    let hay: Vec<u8> = (0..64u8).map(|i| i | 0x80).collect();
    for start in 0..8 {
        for len in 0..40 {
            let slice = &hay[start..start + len];
            assert_eq!(find_byte(b'\n', slice), None);
            for at in 0..len {
                let mut v = slice.to_vec();
                v[at] = b'\n';
                // A second match later must not win, nor a byte that
                // differs from the needle by one bit or a borrow.
                if at + 1 < len {
                    v[at + 1] = b'\n';
                }
                if at > 0 {
                    v[at - 1] = b'\x0b';
                }
                assert_eq!(find_byte(b'\n', &v), Some(at), "{start} {len} {at}");
            }
        }
    }
    assert_eq!(find_byte(0, &[1, 0, 0, 1, 1, 1, 1, 1, 0]), Some(1));
    assert_eq!(find_byte(0xff, &[0xfe; 9]), None);
}

// ---- chunked ----

/// Feeds `input` in pieces cut at `cuts`, with an output buffer of
/// `out_len` bytes; returns the body and the input consumed.
fn decode_pieces(
    input: &[u8],
    cuts: &[usize],
    out_len: usize,
) -> Result<(Vec<u8>, usize), HttpError> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut out = vec![0; out_len];
    let mut pos = 0;
    let mut bounds = cuts.to_vec();
    bounds.push(input.len());
    for end in bounds {
        // Keep calling while the piece makes progress.
        while pos < end && !decoder.is_done() {
            let (used, written) = decoder.decode(&input[pos..end], &mut out)?;
            assert!(used <= end - pos && written <= out.len());
            body.extend_from_slice(&out[..written]);
            pos += used;
            if used == 0 && written == 0 {
                break;
            }
        }
    }
    if !decoder.is_done() {
        // Timeout, so that no BadRequest case passes by being cut short.
        return Err(HttpError::Timeout);
    }
    // Done: nothing more is consumed.
    assert_eq!(decoder.decode(&input[pos..], &mut out), Ok((0, 0)));
    Ok((body, pos))
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
    decode_pieces(input, &[], 64)
}

const BODY: &[u8] =
    b"5\r\nhello\r\n1;name=value;quoted=\"a b\"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";

#[test]
fn chunked_basic() {
    let (body, used) = decode_all(BODY).expect("valid");
    assert_eq!(body, b"hello 0123456789");
    assert_eq!(used, BODY.len());
    assert_eq!(decode_all(b"0\r\n\r\n"), Ok((Vec::new(), 5)));
}

#[test]
fn chunked_split_at_every_offset() {
    for cut in 0..=BODY.len() {
        let (body, used) = decode_pieces(BODY, &[cut], 64).expect("valid");
        assert_eq!(
            (body.as_slice(), used),
            (&b"hello 0123456789"[..], BODY.len())
        );
    }
    for a in 0..=BODY.len() {
        for b in a..=BODY.len() {
            let (body, _) = decode_pieces(BODY, &[a, b], 3).expect("valid");
            assert_eq!(body, b"hello 0123456789");
        }
    }
    let every: Vec<usize> = (1..BODY.len()).collect();
    let (body, _) = decode_pieces(BODY, &every, 1).expect("valid");
    assert_eq!(body, b"hello 0123456789");
}

#[test]
fn chunked_leaves_the_next_request() {
    let mut input = BODY.to_vec();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let mut decoder = ChunkedDecoder::new();
    let mut out = [0; 64];
    assert!(!decoder.is_done());
    let (used, written) = decoder.decode(&input, &mut out).expect("valid");
    assert_eq!((used, written), (BODY.len(), 16));
    assert!(decoder.is_done());
    assert_eq!(decoder.decode(&input[used..], &mut out), Ok((0, 0)));
}

#[test]
fn chunked_waits_for_room() {
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(decoder.decode(b"5\r\nhello", &mut []), Ok((3, 0)));
    assert_eq!(
        decoder.decode(b"hello\r\n0\r\n\r\n", &mut [0; 2]),
        Ok((2, 2))
    );
    assert_eq!(
        decoder.decode(b"llo\r\n0\r\n\r\n", &mut [0; 9]),
        Ok((10, 3))
    );
    assert!(decoder.is_done());
}

#[test]
fn chunk_sizes() {
    let ok: &[(&[u8], &[u8])] = &[
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"0000000000000000000001\r\nx\r\n0\r\n\r\n", b"x"),
        (b"1 \t;ext\r\nx\r\n00\r\n\r\n", b"x"),
        (b"1 \r\nx\r\n0;last\r\n\r\n", b"x"),
    ];
    for (input, body) in ok {
        assert_eq!(decode_all(input).map(|r| r.0).as_deref(), Ok(*body));
    }
    // The largest size is accepted (the caller's max_body refuses it).
    let mut decoder = ChunkedDecoder::new();
    assert_eq!(
        decoder.decode(b"ffffffffffffffff\r\nab", &mut [0; 8]),
        Ok((20, 2))
    );
}

/// Feeds `input` whole to a decoder limited to `limit` bytes.
fn decode_limited(limit: u64, input: &[u8]) -> Result<(usize, usize), HttpError> {
    ChunkedDecoder::with_limit(limit).decode(input, &mut [0; 256])
}

#[test]
fn chunk_size_over_the_limit_is_413_before_its_data() {
    let mut at_limit = b"64\r\n".to_vec();
    at_limit.extend_from_slice(&[b'x'; 100]);
    at_limit.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(decode_limited(100, &at_limit), Ok((at_limit.len(), 100)));
    // One over: refused on the size line, no data needed.
    assert_eq!(
        decode_limited(100, b"65\r\n"),
        Err(HttpError::PayloadTooLarge)
    );
    assert_eq!(decode_limited(100, b"65"), Err(HttpError::PayloadTooLarge));
    assert_eq!(decode_limited(0, b"1\r\n"), Err(HttpError::PayloadTooLarge));
    assert_eq!(decode_limited(0, b"0\r\n\r\n"), Ok((5, 0)));
    // Leading zeros are not a size.
    assert_eq!(decode_limited(100, b"000000064\r\n"), Ok((11, 0)));
    // Too large for the limit before it is too large for 64 bits.
    assert_eq!(
        decode_limited(100, b"fffffffffffffffffffff\r\n"),
        Err(HttpError::PayloadTooLarge)
    );
}

#[test]
fn declared_chunk_sizes_add_up_against_the_limit() {
    let mut body = b"32\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 50]);
    body.extend_from_slice(b"\r\n32\r\n");
    // 50 + 50: fine, waiting for the second chunk's data.
    assert_eq!(decode_limited(100, &body), Ok((body.len(), 50)));
    // 50 + 51: refused at the second size line.
    body.truncate(body.len() - 4);
    body.extend_from_slice(b"33\r\n");
    let mut decoder = ChunkedDecoder::with_limit(100);
    assert_eq!(
        decoder.decode(&body, &mut [0; 256]),
        Err(HttpError::PayloadTooLarge)
    );
    // The error sticks.
    assert_eq!(
        decoder.decode(b"0\r\n\r\n", &mut [0; 8]),
        Err(HttpError::PayloadTooLarge)
    );
    // Split anywhere, the same answer.
    for cut in 0..body.len() {
        let mut decoder = ChunkedDecoder::with_limit(100);
        let mut out = [0; 256];
        let result = decoder
            .decode(&body[..cut], &mut out)
            .and_then(|(used, _)| decoder.decode(&body[used..], &mut out));
        assert_eq!(result, Err(HttpError::PayloadTooLarge), "{cut}");
    }
}

#[test]
fn bad_chunk_framing_is_400() {
    let bad: &[&[u8]] = &[
        b"\r\n",
        b";ext\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\n",
        b"0x5\r\n",
        b"g\r\n",
        b"5 5\r\n",
        b"10000000000000000\r\n",
        b"fffffffffffffffff\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\rhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r0\r\n\r\n",
        b"5\r\nhello0\r\n\r\n",
        b"1;a\0b\r\nx\r\n0\r\n\r\n",
        b"1;a\nx\r\n0\r\n\r\n",
        b"0\r\n\n",
        b"0\r\n\rx",
        b"0\r\nX: a\n\r\n",
        b"0\r\nX: a\n\n\r\n",
        b"0\r\nX: a\rb\r\n\r\n",
        b"0\r\n X: folded\r\n\r\n",
        b"0\r\n: a\r\n\r\n",
        b"0\r\nX: a\0\r\n\r\n",
    ];
    for input in bad {
        assert!(
            matches!(decode_all(input), Err(HttpError::BadRequest(_))),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn errors_stick() {
    let mut decoder = ChunkedDecoder::new();
    let e = decoder.decode(b"z", &mut [0; 4]).expect_err("not hex");
    assert_eq!(decoder.decode(b"0\r\n\r\n", &mut [0; 4]), Err(e));
    assert!(!decoder.is_done());
}

#[test]
fn chunk_line_at_the_limit_and_one_over() {
    let line = |len: usize| {
        let mut v = b"1;".to_vec();
        v.resize(len, b'x');
        v.extend_from_slice(b"\r\nA\r\n0\r\n\r\n");
        v
    };
    assert_eq!(
        decode_all(&line(MAX_CHUNK_LINE)).map(|r| r.0),
        Ok(b"A".to_vec())
    );
    assert!(matches!(
        decode_all(&line(MAX_CHUNK_LINE + 1)),
        Err(HttpError::BadRequest(_))
    ));
    // Known before the line ends.
    let mut decoder = ChunkedDecoder::new();
    let long = line(MAX_CHUNK_LINE + 1);
    assert!(decoder
        .decode(&long[..MAX_CHUNK_LINE + 1], &mut [])
        .is_err());
    // Leading zeros count too.
    let zeros = vec![b'0'; MAX_CHUNK_LINE + 1];
    assert!(decode_all(&zeros).is_err());
}

#[test]
fn trailers_are_skipped() {
    let input = b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv\xff \r\n\r\nNEXT";
    let (body, used) = decode_all(input).expect("valid");
    assert_eq!(body, b"abc");
    assert_eq!(used, input.len() - 4);
    for cut in 0..=input.len() {
        assert_eq!(decode_pieces(input, &[cut], 2).map(|r| r.1), Ok(used));
    }
}

#[test]
fn trailer_limits() {
    let line = |len: usize| {
        let mut v = b"0\r\nX:".to_vec();
        v.resize(3 + len, b'v');
        v.extend_from_slice(b"\r\n\r\n");
        v
    };
    assert!(decode_all(&line(MAX_CHUNK_LINE)).is_ok());
    assert_eq!(
        decode_all(&line(MAX_CHUNK_LINE + 1)),
        Err(HttpError::HeadersTooLarge)
    );

    // The whole trailer section, line endings included, at the limit.
    let section = |len: usize| {
        let field = format!("X:{}\r\n", "v".repeat(MAX_CHUNK_LINE - 2));
        let mut v = b"0\r\n".to_vec();
        let mut left = len - 2;
        while left > field.len() {
            v.extend_from_slice(field.as_bytes());
            left -= field.len();
        }
        // The last field fills what is left exactly (at least "X:\r\n").
        assert!(left >= 4);
        v.extend_from_slice(format!("X:{}\r\n", "v".repeat(left - 4)).as_bytes());
        v.extend_from_slice(b"\r\n");
        assert_eq!(v.len(), 3 + len);
        v
    };
    assert!(decode_all(&section(MAX_HEAD)).is_ok());
    assert_eq!(
        decode_all(&section(MAX_HEAD + 1)),
        Err(HttpError::HeadersTooLarge)
    );
}
