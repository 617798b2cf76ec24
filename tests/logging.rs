//! Log lines (issue 12): the access log of `--log-requests` in the Common
//! Log Format with the client's address and what a refused request sent.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::{deadline_in, get, request, Server};

/// How long a test waits for a log line.
const LOG_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------
// The Common Log Format
// ---------------------------------------------------------------------

/// One parsed `--log-requests` line.
#[derive(Debug)]
struct Access {
    peer: String,
    date: String,
    method: String,
    target: String,
    version: String,
    status: u16,
}

/// `PEER - - [DATE] "METHOD TARGET VERSION" STATUS BYTES SECS`, whole and
/// nothing else; `None` for anything else (two lines run together too).
fn parse_access(line: &str) -> Option<Access> {
    let (peer, rest) = line.split_once(" - - [")?;
    let (date, rest) = rest.split_once("] \"")?;
    let (req, rest) = rest.split_once("\" ")?;
    let mut parts = req.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut tail = rest.split(' ');
    let status = tail.next()?.parse().ok()?;
    tail.next()?.parse::<u64>().ok()?;
    tail.next()?.parse::<f64>().ok()?;
    let whole = parts.next().is_none()
        && tail.next().is_none()
        && !peer.is_empty()
        && !peer.contains(' ')
        && is_clf_date(date);
    whole.then(|| Access {
        peer: peer.into(),
        date: date.into(),
        method: method.into(),
        target: target.into(),
        version: version.into(),
        status,
    })
}

/// `04/Dec/2026:15:11:30 +0000`, as nginx and Puma write it.
fn is_clf_date(d: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&d[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && &d[20..] == " +0000"
}

/// The `--log-requests` lines in `out` whose request contains `part`.
fn access_lines(out: &str, part: &str) -> Vec<(String, Option<Access>)> {
    out.lines()
        .filter(|l| l.contains(part))
        .map(|l| (l.to_string(), parse_access(l)))
        .collect()
}

/// The current UTC minute as the log writes it, `04/Dec/2026:15:11`.
fn utc_minute() -> String {
    let out = Command::new("date")
        .args(["-u", "+%d/%b/%Y:%H:%M"])
        .env("LC_ALL", "C")
        .output()
        .expect("date(1)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn access_log_lines_are_in_the_common_log_format() {
    let s = Server::start(&["--log-requests"]);
    let before = utc_minute();
    let r = get(s.addr(), "/hello.txt");
    assert_eq!(r.status, 200, "{r:?}");
    let want = "\"GET /hello.txt HTTP/1.1\" 200 ";
    assert!(
        s.wait_for_line(want, deadline_in(LOG_DEADLINE)),
        "no line with {want:?} in:\n{}",
        s.stdout()
    );
    let after = utc_minute();
    let lines = access_lines(&s.stdout(), want);
    let (line, parsed) = &lines[0];
    let a = parsed
        .as_ref()
        .unwrap_or_else(|| panic!("not a Common Log Format line: {line:?}"));
    assert_eq!(a.peer, "127.0.0.1", "{line}");
    assert!(
        a.date.starts_with(&before) || a.date.starts_with(&after),
        "{line}: the date is not now ({before} to {after})"
    );
    assert_eq!(
        (a.method.as_str(), a.target.as_str()),
        ("GET", "/hello.txt")
    );
    assert!(
        line.contains(&format!("\" 200 {} ", support::HELLO.len())),
        "{line}"
    );
}

#[test]
fn a_refused_request_logs_what_its_request_line_showed() {
    let s = Server::start(&["--log-requests"]);
    // 414: refused before the line ends; its method is known.
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9 * 1024));
    assert_eq!(request(s.addr(), long.as_bytes()).status, 414);
    // 431 and a bad header: the request line was whole.
    let mut many = String::from("GET /many?x=1 HTTP/1.1\r\nHost: t\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(request(s.addr(), many.as_bytes()).status, 431);
    let bad = "POST /bad HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n";
    assert_eq!(request(s.addr(), bad.as_bytes()).status, 400);
    for (want, status) in [
        ("\"GET - -\" 414 0 ", 414),
        ("\"GET /many?x=1 HTTP/1.1\" 431 0 ", 431),
        ("\"POST /bad HTTP/1.1\" 400 0 ", 400),
    ] {
        assert!(
            s.wait_for_line(want, deadline_in(LOG_DEADLINE)),
            "no line with {want:?} in:\n{}",
            s.stdout()
        );
        let lines = access_lines(&s.stdout(), want);
        let (line, parsed) = &lines[0];
        let a = parsed
            .as_ref()
            .unwrap_or_else(|| panic!("not a Common Log Format line: {line:?}"));
        assert_eq!((a.peer.as_str(), a.status), ("127.0.0.1", status), "{line}");
    }
}

#[test]
fn a_client_that_leaves_at_once_is_logged_with_its_address() {
    // The address comes from accept: a client gone before its answer is
    // written (reset by then) has none left to ask for.
    const GONE: usize = 20;
    let s = Server::start(&["--log-requests"]);
    for i in 0..GONE {
        let mut c = TcpStream::connect(s.addr()).expect("connect");
        c.write_all(format!("GET /gone/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .expect("send");
        drop(c);
    }
    assert!(
        s.wait_for_nth_line("\"GET /gone/", GONE, deadline_in(LOG_DEADLINE)),
        "not every request was logged:\n{}",
        s.stdout()
    );
    for (line, parsed) in access_lines(&s.stdout(), "\"GET /gone/") {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        let a = parsed.unwrap_or_else(|| panic!("not a Common Log Format line: {line:?}"));
        assert_eq!((a.method.as_str(), a.version.as_str()), ("GET", "HTTP/1.1"));
        assert!(a.target.starts_with("/gone/"), "{line}");
    }
}
