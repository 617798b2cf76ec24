//! Log lines (issue 12): every line written whole, by every process; the
//! syslog priority first when the output is systemd's journal
//! (`JOURNAL_STREAM`); the access log of `--log-requests` in the Common
//! Log Format with the client's address and what a refused request sent;
//! signals by name.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::{
    deadline_in, get, request, send_signal, with_defaults, without_priority, Client, Output,
    Server, TempDir,
};

/// How long a test waits for a log line.
const LOG_DEADLINE: Duration = Duration::from_secs(10);
/// Client threads of the interleaving test: more connections than the
/// workers' threads, so both workers log at the same time.
const CLIENTS: usize = 8;
/// Requests each client sends; every other one makes the handler panic.
const REQUESTS_PER_CLIENT: usize = 300;
/// A client opens a new connection after this many requests, so the
/// kernel spreads the load over both workers.
const REQUESTS_PER_CONNECTION: usize = 20;

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

// ---------------------------------------------------------------------
// Whole lines from every process
// ---------------------------------------------------------------------

/// A start-up or lifecycle line on stdout.
fn is_lifecycle(line: &str) -> bool {
    ["catamount ", "*", "- ", "Use Ctrl-C to stop"]
        .iter()
        .any(|p| line.starts_with(p))
        && !line.contains(" - - [")
}

/// What the hello example's panics and the engine write on stderr: the
/// engine's line, and Rust's own panic message (a line of its own after
/// an empty one; a note after the first panic of a process).
fn is_panic_output(line: &str) -> bool {
    line.is_empty()
        || line == "asked to panic"
        || (line.starts_with("thread '") && line.contains(" panicked at ") && line.ends_with(':'))
        || line.starts_with("note: run with `RUST_BACKTRACE=1`")
}

#[test]
fn workers_write_whole_lines_when_both_log_at_once() {
    // Two workers, each with threads, log request lines on stdout and a
    // line per panicking request on stderr, all at once. eprintln! wrote
    // a line in five writes: lines of the two processes ran together.
    let Some(hello) = support::example("hello") else {
        return;
    };
    let (args, _docroot) = with_defaults(&["-w", "2", "-t", "4:4", "--log-requests"]);
    let mut cmd = Command::new(hello);
    // Rust's panic message is one write; a backtrace would be many.
    cmd.args(&args).env("RUST_BACKTRACE", "0");
    let s = Server::start_command(cmd);
    assert!(
        s.wait_for_nth_line(") booted in ", 2, deadline_in(LOG_DEADLINE)),
        "two workers did not boot:\n{}",
        s.stdout()
    );
    let addr = s.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| std::thread::spawn(move || load(addr, i)))
        .collect();
    for c in clients {
        c.join().expect("a client thread failed");
    }
    s.signal("TERM");
    let out = s.finish(&["hello", "-w", "2"]);
    assert!(out.status.success(), "{out:?}");

    let mut panics = 0;
    for line in out.stderr.lines() {
        if line == "! handler panicked on GET /panic; answered 500" {
            panics += 1;
        } else {
            assert!(is_panic_output(line), "a broken line on stderr: {line:?}");
        }
    }
    assert_eq!(
        panics,
        CLIENTS * REQUESTS_PER_CLIENT / 2,
        "one line per panic"
    );
    let mut logged = 0;
    for line in out.stdout.lines() {
        if parse_access(line).is_some() {
            logged += 1;
        } else {
            assert!(is_lifecycle(line), "a broken line on stdout: {line:?}");
        }
    }
    assert_eq!(
        logged,
        CLIENTS * REQUESTS_PER_CLIENT,
        "one access line per request"
    );
}

/// Client `i`'s requests: every other one panics (500), the others are
/// answered 200.
fn load(addr: SocketAddr, i: usize) {
    let mut c = Client::connect(addr);
    for n in 0..REQUESTS_PER_CLIENT {
        if n > 0 && n % REQUESTS_PER_CONNECTION == 0 {
            c = Client::connect(addr);
        }
        let path = if n % 2 == 0 {
            "/panic".to_string()
        } else {
            format!("/client-{i}/request-{n}")
        };
        c.send(&support::get_bytes(&path));
        let r = c.expect_response("GET");
        let want = if n % 2 == 0 { 500 } else { 200 };
        assert_eq!(r.status, want, "{path}: {r:?}");
    }
}

// ---------------------------------------------------------------------
// The journal's priorities
// ---------------------------------------------------------------------

/// catamount with `args` (defaults added) and `envs`, its stdout and
/// stderr on `stdout` and `stderr` (`None`: both on `stdout`).
fn spawn(
    args: &[&str],
    envs: &[(&str, &str)],
    stdout: Output,
    stderr: Option<Output>,
) -> (Server, Option<TempDir>) {
    let (full, docroot) = with_defaults(args);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catamount"));
    cmd.args(&full).envs(envs.iter().copied());
    (Server::spawn_with_output(cmd, stdout, stderr), docroot)
}

/// Starts a server that logs info lines (start-up, a request, the
/// stop), warnings (fd_store without NOTIFY_SOCKET, a refused reload)
/// and, in a second run, an error (a port in use); returns what each run
/// wrote on stdout and stderr, `journal` naming the stream
/// `JOURNAL_STREAM` should match: "stdout", "stderr" or "both" (one
/// stream), or "elsewhere" (the variable names another socket), or
/// "unset".
fn logs_with(journal: &str) -> Vec<(String, String)> {
    let dir = TempDir::new("journal");
    let conf = dir.write("app.rb", "threads 1, 2\n");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let in_use = format!("tcp://{}", taken.local_addr().expect("addr"));
    let runs: [&[&str]; 2] = [
        &["-C", &conf, "--fd-store", "--log-requests"],
        &["-b", &in_use],
    ];
    let mut outputs = Vec::new();
    for (run, args) in runs.iter().enumerate() {
        let (out, out_id) = Output::socket_pair();
        let (err, err_id) = Output::socket_pair();
        // Alive while the server runs: its inode is not reused meanwhile.
        let (_other, other_id) = Output::socket_pair();
        let (stream, err) = match journal {
            "stdout" => (Some(out_id), Some(err)),
            "stderr" => (Some(err_id), Some(err)),
            "both" => (Some(out_id), None),
            "elsewhere" => (Some(other_id), None),
            _ => (None, None),
        };
        let envs: Vec<(&str, &str)> = stream
            .as_deref()
            .map(|s| ("JOURNAL_STREAM", s))
            .into_iter()
            .collect();
        let (mut s, _docroot) = spawn(args, &envs, out, err);
        if run == 0 {
            s.wait_started();
            assert_eq!(get(s.addr(), "/hello.txt").status, 200);
            std::fs::write(&conf, "treads 1, 2\n").expect("break the config");
            s.signal("HUP");
            let d = deadline_in(LOG_DEADLINE);
            let refused = "refused, still serving with the old configuration";
            assert!(
                s.wait_for_stderr(refused, d) || s.wait_for_line(refused, d),
                "no refused reload:\n{}\n{}",
                s.stdout(),
                s.stderr()
            );
            s.signal("TERM");
        }
        let done = s.finish(args);
        outputs.push((done.stdout, done.stderr));
    }
    outputs
}

/// Every line of `text` starts with a syslog priority.
fn assert_prefixed(text: &str, what: &str) {
    for line in text.lines() {
        assert!(
            ["<3>", "<4>", "<6>"].iter().any(|p| line.starts_with(p)),
            "{what}: a journal line without its priority: {line:?}\n{text}"
        );
    }
}

/// No line of `text` starts with a syslog priority.
fn assert_unprefixed(text: &str, what: &str) {
    for line in text.lines() {
        assert_eq!(
            without_priority(line),
            line,
            "{what}: a priority outside the journal\n{text}"
        );
    }
}

#[test]
fn journal_lines_carry_their_syslog_priority() {
    // Both streams on one socket, as journald connects them.
    let runs = logs_with("both");
    let (run, failed) = (&runs[0].0, &runs[1].0);
    assert_prefixed(run, "both");
    assert_prefixed(failed, "both");
    for want in [
        "<6>* Listening on http://127.0.0.1:",
        "<6>Use Ctrl-C to stop",
        "<6>127.0.0.1 - - [",
        "<4>! fd_store is on but NOTIFY_SOCKET is not set",
        "<4>! reload (SIGHUP) refused, still serving with the old configuration: ",
        "<6>- Goodbye!",
    ] {
        assert!(run.contains(want), "no {want:?} in:\n{run}");
    }
    assert!(failed.contains("<3>catamount: error: bind "), "{failed}");

    // Only stderr is the journal: stdout's lines carry nothing.
    let runs = logs_with("stderr");
    assert_unprefixed(&runs[0].0, "stdout");
    assert_prefixed(&runs[0].1, "stderr");
    assert!(
        runs[0].1.contains("<4>! reload (SIGHUP) refused"),
        "{}",
        runs[0].1
    );
    assert!(
        runs[1].1.contains("<3>catamount: error: bind "),
        "{}",
        runs[1].1
    );
    // Only stdout.
    let runs = logs_with("stdout");
    assert_prefixed(&runs[0].0, "stdout");
    assert!(runs[0].0.contains("<6>- Goodbye!"), "{}", runs[0].0);
    assert_unprefixed(&runs[0].1, "stderr");
}

#[test]
fn lines_outside_the_journal_carry_no_priority() {
    for journal in ["unset", "elsewhere"] {
        let runs = logs_with(journal);
        for (stdout, stderr) in &runs {
            assert_unprefixed(stdout, journal);
            assert_unprefixed(stderr, journal);
        }
        assert!(runs[0].0.contains("\n- Goodbye!\n"), "{}", runs[0].0);
        assert!(
            runs[0]
                .0
                .contains("\n! fd_store is on but NOTIFY_SOCKET is not set"),
            "{}",
            runs[0].0
        );
        assert!(
            runs[1].0.contains("catamount: error: bind "),
            "{}",
            runs[1].0
        );
    }
}

// ---------------------------------------------------------------------
// Signals by name
// ---------------------------------------------------------------------

#[test]
fn signals_are_logged_by_name() {
    let mut s = Server::start(&[]);
    s.signal("USR1");
    assert!(
        s.wait_for_stderr(
            "! SIGUSR1 ignored: phased restarts and workers need cluster mode",
            deadline_in(LOG_DEADLINE)
        ),
        "stdout:\n{}\nstderr:\n{}",
        s.stdout(),
        s.stderr()
    );
    assert!(s.stop().success());

    let mut s = Server::start(&["-w", "1"]);
    assert!(s.wait_for_line(") booted in ", deadline_in(LOG_DEADLINE)));
    let out = s.stdout();
    let pid: u32 = out
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("- Worker 0 (PID: ")?;
            rest.split_once(')')?.0.parse().ok()
        })
        .unwrap_or_else(|| panic!("no worker pid in:\n{out}"));
    send_signal(pid, "KILL");
    let want = format!("! Worker 0 (PID: {pid}) exited unexpectedly (killed by SIGKILL)");
    assert!(
        s.wait_for_stderr(&want, deadline_in(LOG_DEADLINE)),
        "no {want:?} in:\n{}",
        s.stderr()
    );
    // Stopped once the replacement has booted: a worker still booting
    // when its master is killed can miss its parent-death signal.
    assert!(s.wait_for_nth_line(") booted in ", 2, deadline_in(LOG_DEADLINE)));
    assert!(s.stop().success());
}
