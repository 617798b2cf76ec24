//! The process around the HTTP core, end to end: unix sockets and their
//! files, the config file and its errors, the command line, the pidfile,
//! and the graceful stop on SIGTERM.

mod support;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use support::{
    assert_serves, deadline_in, free_port, get_bytes, Client, Closed, Server, TempDir, HELLO,
};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Waits until connecting to `addr` is refused.
fn wait_refused(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    let deadline = deadline_in(timeout);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            _ if std::time::Instant::now() >= deadline => return false,
            // Accepted by the kernel before the listener closed: retry.
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Size of the body [`in_flight`] announces: one byte over the engine's
/// `BUFFERED_BODY_MAX` (64 KiB), so the request reaches the handler
/// before its body has arrived, and the handler reads it as it comes.
const IN_FLIGHT_BODY: usize = 64 * 1024 + 1;

/// Starts the `upload` example (a handler that reads bodies, in front of
/// the static files) with `args`; `None` when it was not built.
fn start_upload(args: &[&str]) -> Option<Server> {
    Server::start_example("upload", args)
}

/// Opens a connection with a request in flight: a handler of the
/// `upload` example is reading a large body of which 2 bytes have come.
/// Returns once /proc shows that thread blocked (the event), so a signal
/// sent next cannot overtake the request. [`finish_in_flight`] sends the
/// rest.
fn in_flight(s: &Server) -> Client<TcpStream> {
    in_flight_nth(s, 1)
}

/// Like [`in_flight`], for the `n`-th request held at once: returns once
/// `n` pool threads are waiting for their bodies.
fn in_flight_nth(s: &Server, n: usize) -> Client<TcpStream> {
    let mut c = Client::connect(s.addr());
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {IN_FLIGHT_BODY}\r\n\r\nhe"
        )
        .as_bytes(),
    );
    assert!(
        support::wait_pool_serving_at_least(s.pid(), n, deadline_in(Duration::from_secs(5))),
        "no pool thread took request {n} (threads: {})",
        support::pool_threads(s.pid())
    );
    c
}

/// Sends the rest of an [`in_flight`] body; asserts the handler's answer.
fn finish_in_flight(c: &mut Client<TcpStream>) -> support::Response {
    c.send(&vec![b'x'; IN_FLIGHT_BODY - 2]);
    let r = c.expect_response("POST");
    assert_eq!(
        (r.status, r.text()),
        (200, format!("received {IN_FLIGHT_BODY} bytes\n")),
        "{r:?}"
    );
    r
}

/// After the last answer of a graceful stop: the connection is closed
/// (EOF, not reset) and the server exits 0.
fn closed_then_clean_exit(c: &mut Client<TcpStream>, s: &mut Server) {
    assert_eq!(
        c.wait_closed(deadline_in(Duration::from_secs(3))),
        Ok(Closed::Eof)
    );
    let status = s
        .wait_exit(support::EXIT_DEADLINE)
        .expect("exit after the last request");
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
}

/// Sends TERM and waits until the server says the graceful stop began.
fn begin_graceful_stop(s: &Server) {
    signal_and_wait(
        s,
        "TERM",
        "- Gracefully stopping, waiting for requests to finish",
        5,
    );
}

/// Sends `sig` and waits up to `secs` for a stdout line containing `line`.
fn signal_and_wait(s: &Server, sig: &str, line: &str, secs: u64) {
    s.signal(sig);
    let seen = s.wait_for_line(line, deadline_in(Duration::from_secs(secs)));
    assert!(seen, "no `{line}` after {sig}:\n{}", s.stdout());
}

// ---------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------

#[test]
fn unix_socket_with_umask_serves_http() {
    let dir = TempDir::new_in(Path::new("/tmp"), "unix");
    let sock = dir.path().join("s.sock");
    let bind = format!("unix://{}?umask=0077", sock.display());
    let s = Server::start(&["-b", &bind]);
    assert_eq!(s.listening(), [format!("unix://{}", sock.display())]);
    let meta = std::fs::symlink_metadata(&sock).expect("the socket file exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(mode_of(&sock), 0o700, "umask=0077 gives 0700");

    let mut c = Client::connect_unix(&sock);
    c.send(&get_bytes("/hello.txt"));
    let r = c.expect_response("GET");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
    // Keep-alive works on unix sockets too.
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
}

#[test]
fn unix_socket_mode_is_applied() {
    let dir = TempDir::new_in(Path::new("/tmp"), "unix");
    let sock = dir.path().join("s.sock");
    let bind = format!("unix://{}?mode=0660", sock.display());
    let s = Server::start(&["-b", &bind]);
    assert_eq!(mode_of(&sock), 0o660);
    let mut c = Client::connect_unix(&sock);
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
    drop(s);
}

#[test]
fn stale_unix_socket_file_is_replaced() {
    let dir = TempDir::new_in(Path::new("/tmp"), "unix");
    let sock = dir.path().join("s.sock");
    drop(UnixListener::bind(&sock).expect("bind a listener"));
    assert!(sock.exists(), "dropping a UnixListener leaves its file");
    let mut s = Server::start(&["-b", &format!("unix://{}", sock.display())]);
    let mut c = Client::connect_unix(&sock);
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
    drop(c);
    assert!(s.stop().success());
    assert!(!sock.exists(), "the socket file is removed at exit");
}

#[test]
fn live_unix_socket_is_refused() {
    let dir = TempDir::new_in(Path::new("/tmp"), "unix");
    let sock = dir.path().join("s.sock");
    let _live = UnixListener::bind(&sock).expect("bind a listener");
    let f = Server::run_with_defaults(&["-b", &format!("unix://{}", sock.display())]);
    assert!(!f.status.success(), "{f:?}");
    assert!(
        f.stderr.contains("There is already a server bound to:"),
        "{f:?}"
    );
    assert!(f.stderr.contains(&sock.display().to_string()), "{f:?}");
    assert_eq!(f.stderr.trim_end().lines().count(), 1, "one line: {f:?}");
    assert!(sock.exists(), "the live server's socket file is left alone");
    assert!(!f.stdout.contains("Use Ctrl-C to stop"), "{f:?}");
}

#[test]
fn unix_socket_file_is_removed_after_stop() {
    let dir = TempDir::new_in(Path::new("/tmp"), "unix");
    let sock = dir.path().join("s.sock");
    let mut s = Server::start(&["-b", &format!("unix://{}?umask=0077", sock.display())]);
    assert!(sock.exists());
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(!sock.exists(), "socket file left behind");
}

#[test]
fn tcp_port_in_use_is_a_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let f = Server::run_with_defaults(&["-b", &format!("tcp://127.0.0.1:{port}")]);
    assert_eq!(f.status.code(), Some(1), "{f:?}");
    assert!(f.stderr.contains(&port.to_string()), "{f:?}");
    assert_eq!(f.stderr.trim_end().lines().count(), 1, "one line: {f:?}");
}

// ---------------------------------------------------------------------
// Config file and command line
// ---------------------------------------------------------------------

#[test]
fn unknown_config_directive_names_file_and_line() {
    let dir = TempDir::new("conf");
    let conf = dir.write(
        "catamount.conf",
        "# a comment\nthreads 0, 2\nfrobnicate 12\n",
    );
    let f = Server::run_with_defaults(&["-C", &conf]);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert!(f.stderr.contains(&format!("{conf}:3")), "{f:?}");
    assert!(f.stderr.contains("frobnicate"), "{f:?}");
    assert!(!f.stdout.contains("Use Ctrl-C to stop"), "{f:?}");
}

#[test]
fn bad_config_value_names_file_and_line() {
    let dir = TempDir::new("conf");
    let conf = dir.write("catamount.conf", "\nfirst_data_timeout soon\n");
    let f = Server::run_with_defaults(&["-C", &conf]);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert!(f.stderr.contains(&format!("{conf}:2")), "{f:?}");
}

#[test]
fn bad_threads_value_is_a_config_error() {
    let dir = TempDir::new("conf");
    let conf = dir.write("catamount.conf", "threads 8, 2\n");
    let f = Server::run_with_defaults(&["-C", &conf]);
    assert_eq!(f.status.code(), Some(2), "min above max: {f:?}");
    assert!(f.stderr.contains(&format!("{conf}:1")), "{f:?}");
}

#[test]
fn puma_only_directive_is_refused_with_file_and_line() {
    let dir = TempDir::new("conf");
    let conf = dir.write("catamount.conf", "threads 1, 2\non_worker_boot do\nend\n");
    let f = Server::run_with_defaults(&["-C", &conf]);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert!(f.stderr.contains("no equivalent in catamount"), "{f:?}");
    assert!(f.stderr.contains(&format!("{conf}:2")), "{f:?}");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let dir = TempDir::new("conf");
    let f = Server::run_with_defaults(&["-C", &dir.join("nope.conf")]);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert!(f.stderr.contains("nope.conf"), "{f:?}");
}

#[test]
fn bad_command_line_is_exit_2() {
    for args in [
        &["--no-such-flag"][..],
        &["-t", "lots"],
        &["--first-data-timeout", "-1"],
        &["-b", "ftp://127.0.0.1:21"],
    ] {
        let f = Server::run_with_defaults(args);
        assert_eq!(f.status.code(), Some(2), "{args:?}: {f:?}");
        assert!(!f.stderr.trim().is_empty(), "{args:?}: {f:?}");
    }
}

#[test]
fn config_file_settings_are_used() {
    let dir = TempDir::new("conf");
    let docroot = TempDir::docroot();
    let conf = dir.write(
        "catamount.conf",
        "bind \"tcp://127.0.0.1:0\"\nthreads 1, 3\n",
    );
    let s = Server::start_exact(&["-C", &conf, &docroot.path().to_string_lossy()]);
    assert!(s.wait_for_line("*  Min threads: 1", deadline_in(Duration::from_secs(1))));
    assert!(s.wait_for_line("*  Max threads: 3", deadline_in(Duration::from_secs(1))));
    assert_eq!(s.listening().len(), 1, "{:?}", s.listening());
    assert_serves(s.addr());
}

#[test]
fn command_line_bind_overrides_the_file() {
    let dir = TempDir::new("conf");
    let docroot = TempDir::docroot();
    let file_port = free_port();
    let conf = dir.write(
        "catamount.conf",
        &format!("bind \"tcp://127.0.0.1:{file_port}\"\n"),
    );
    let s = Server::start_exact(&[
        "-C",
        &conf,
        "-b",
        "tcp://127.0.0.1:0",
        &docroot.path().to_string_lossy(),
    ]);
    assert_eq!(s.listening().len(), 1, "{:?}", s.listening());
    assert_ne!(s.addr().port(), file_port, "{:?}", s.listening());
    assert_serves(s.addr());
    let refused = TcpStream::connect(("127.0.0.1", file_port));
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "the file's bind listens too: {refused:?}"
    );
}

#[test]
fn command_line_threads_override_the_file() {
    let dir = TempDir::new("conf");
    let conf = dir.write("catamount.conf", "threads 0, 2\n");
    let s = Server::start(&["-C", &conf, "-t", "1:3"]);
    let out = s.stdout();
    assert!(out.contains("*  Min threads: 1"), "{out}");
    assert!(out.contains("*  Max threads: 3"), "{out}");
}

#[test]
fn version_flag_prints_the_version() {
    for flag in ["-V", "--version"] {
        let f = Server::run(&[flag]);
        assert_eq!(f.status.code(), Some(0), "{f:?}");
        assert_eq!(f.stdout.trim(), "catamount 0.1.0", "{f:?}");
    }
}

#[test]
fn help_flag_prints_usage() {
    for flag in ["-h", "--help"] {
        let f = Server::run(&[flag]);
        assert_eq!(f.status.code(), Some(0), "{f:?}");
        assert!(f.stdout.to_lowercase().contains("usage"), "{f:?}");
        for option in ["--bind", "--threads", "--config", "--pidfile"] {
            assert!(f.stdout.contains(option), "{option} missing from: {f:?}");
        }
    }
}

#[test]
fn startup_log_lines() {
    let s = Server::start(&["-t", "0:5"]);
    let out = s.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "catamount 0.1.0 starting in single mode...");
    assert!(lines.contains(&"*  Min threads: 0"), "{out}");
    assert!(lines.contains(&"*  Max threads: 5"), "{out}");
    assert!(lines.contains(&"*  Environment: production"), "{out}");
    assert!(
        lines.contains(&format!("*          PID: {}", s.pid()).as_str()),
        "{out}"
    );
    assert!(
        lines.contains(&format!("* Listening on http://{}", s.addr()).as_str()),
        "{out}"
    );
    assert_ne!(s.addr().port(), 0);
    assert_eq!(lines.last(), Some(&"Use Ctrl-C to stop"));
}

// ---------------------------------------------------------------------
// Pidfile
// ---------------------------------------------------------------------

#[test]
fn pidfile_is_written_and_removed_at_exit() {
    let dir = TempDir::new("pid");
    let pidfile = dir.join("catamount.pid");
    let mut s = Server::start(&["--pidfile", &pidfile]);
    let written = std::fs::read_to_string(&pidfile).expect("the pidfile exists");
    assert_eq!(written.trim(), s.pid().to_string());
    assert_eq!(s.stop().code(), Some(0), "{}", s.stderr());
    assert!(!Path::new(&pidfile).exists(), "pidfile left behind");
}

#[test]
fn unwritable_pidfile_is_a_startup_error() {
    let dir = TempDir::new("pid");
    let pidfile = dir.join("no-such-dir/catamount.pid");
    let f = Server::run_with_defaults(&["--pidfile", &pidfile]);
    assert_ne!(f.status.code(), Some(0), "{f:?}");
    assert!(f.stderr.contains("no-such-dir"), "{f:?}");
}

// ---------------------------------------------------------------------
// Graceful stop
// ---------------------------------------------------------------------

#[test]
fn sigterm_on_an_idle_server_says_goodbye_and_exits_0() {
    let mut s = Server::start(&[]);
    assert_serves(s.addr());
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    let out = s.stdout();
    assert!(
        out.contains("- Gracefully stopping, waiting for requests to finish"),
        "{out}"
    );
    assert!(out.contains("- Goodbye!"), "{out}");
}

#[test]
fn sigint_stops_gracefully_too() {
    let mut s = Server::start(&[]);
    s.signal("INT");
    let status = s
        .wait_exit(support::EXIT_DEADLINE)
        .expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(s.stdout().contains("- Goodbye!"));
}

#[test]
fn new_connections_are_accepted_while_the_other_thread_is_busy() {
    // Pool threads accept themselves (issue 15): with one of two held by a
    // handler, the other accepts and serves every new connection.
    let Some(s) = start_upload(&["-t", "2:2"]) else {
        return;
    };
    let mut c = in_flight(&s);
    for i in 0..20 {
        let mut next = Client::connect(s.addr());
        next.send(b"GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let r = next
            .response_by("GET", deadline_in(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("connection {i} while a thread is busy: {e}"));
        assert_eq!(r.status, 200, "{r:?}");
    }
    finish_in_flight(&mut c);
}

#[test]
fn in_flight_request_completes_during_graceful_stop() {
    let Some(mut s) = start_upload(&[]) else {
        return;
    };
    let addr = s.addr();
    // An idle keep-alive connection: closed by the stop, not waited for.
    let mut idle = Client::connect(addr);
    idle.send(&get_bytes("/hello.txt"));
    assert_eq!(idle.expect_response("GET").status, 200);
    let mut c = in_flight(&s);

    begin_graceful_stop(&s);
    // New connections are refused once the stop has begun...
    assert!(
        wait_refused(addr, Duration::from_secs(3)),
        "still accepting connections during the stop"
    );
    // ...idle ones are closed...
    let idle_closed = idle.wait_closed(deadline_in(Duration::from_secs(3)));
    assert!(idle_closed.is_ok(), "{idle_closed:?}");
    // ...and the in-flight one is answered, not reset.
    assert!(
        s.exit_status_now().is_none(),
        "exited with a request in flight"
    );
    let r = finish_in_flight(&mut c);
    assert!(r.connection_has("close"), "{r:?}");
    closed_then_clean_exit(&mut c, &mut s);
    assert!(s.stdout().contains("- Goodbye!"), "{}", s.stdout());
}

#[test]
fn request_started_on_a_keep_alive_connection_is_answered_during_graceful_stop() {
    let mut s = Server::start(&[]);
    let mut c = Client::connect(s.addr());
    c.send(&get_bytes("/hello.txt"));
    assert_eq!(c.expect_response("GET").status, 200);
    // The next request is on its way when the stop begins: not idle, so
    // it gets the stop's grace to arrive and is answered.
    c.send(b"GET /hello.txt HTTP/1.1\r\nHo");
    begin_graceful_stop(&s);
    c.send(b"st: test\r\n\r\n");
    let r = c.expect_response("GET");
    assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
    // Then closed (the log line may precede the stop flag by a moment,
    // so the answer itself may or may not say Connection: close).
    closed_then_clean_exit(&mut c, &mut s);
}

#[test]
fn a_thread_stuck_in_a_slow_request_does_not_hold_up_parked_connections() {
    // -t 2:2: one thread waits for a body that does not come; the other
    // serves every keep-alive connection meanwhile, whichever thread was
    // waiting for their events when the slow one arrived.
    let Some(s) = start_upload(&["-t", "2:2"]) else {
        return;
    };
    let mut parked: Vec<_> = (0..5).map(|_| Client::connect(s.addr())).collect();
    for c in &mut parked {
        c.send(&get_bytes("/hello.txt"));
        assert_eq!(c.expect_response("GET").status, 200);
    }
    let _slow = in_flight(&s);
    for round in 0..3 {
        for (i, c) in parked.iter_mut().enumerate() {
            c.get_hello_within(
                Duration::from_secs(2),
                &format!("round {round}, connection {i}"),
            );
        }
    }
}

#[test]
fn a_new_connection_is_answered_while_any_thread_is_free() {
    // Some idle threads wait in the pool's epoll, the others on the queue;
    // whichever are held by slow requests, a new connection must wake a
    // free one (not wait for a held one, or for the 30 s idle timeout).
    let Some(s) = start_upload(&["-t", "3:3"]) else {
        return;
    };
    let mut held = Vec::new();
    for busy in 0..3 {
        if busy > 0 {
            held.push(in_flight_nth(&s, busy));
        }
        for round in 0..5 {
            Client::connect(s.addr()).get_hello_within(
                Duration::from_secs(2),
                &format!("{busy} of 3 threads held, round {round}"),
            );
        }
    }
    for c in &mut held {
        finish_in_flight(c);
    }
}

#[test]
fn threads_started_under_load_are_trimmed_back_to_min_when_idle() {
    // -t 1:3: three requests held at once grow the pool to 3 threads; once
    // they are answered and the server is idle, the two extra threads
    // leave after the pool's IDLE_THREAD_TIMEOUT (30 s).
    const IDLE_THREAD_TIMEOUT: Duration = Duration::from_secs(30);
    let Some(s) = start_upload(&["-t", "1:3"]) else {
        return;
    };
    let pid = s.pid();
    let started = support::wait_pool_threads(pid, 1, deadline_in(Duration::from_secs(5)));
    assert!(
        started,
        "{} pool threads at start, min 1",
        support::pool_threads(pid)
    );
    let mut held: Vec<_> = (1..=3).map(|n| in_flight_nth(&s, n)).collect();
    assert_eq!(support::pool_threads(pid), 3, "grown to max under load");
    for c in &mut held {
        finish_in_flight(c);
    }
    drop(held);
    let patience = IDLE_THREAD_TIMEOUT + Duration::from_secs(15);
    assert!(
        support::wait_pool_threads(pid, 1, deadline_in(patience)),
        "still {} pool threads {} s after the load ended (min 1)",
        support::pool_threads(pid),
        patience.as_secs()
    );
    assert_serves(s.addr());
}

#[test]
fn request_on_a_parked_connection_waits_for_a_busy_pool_not_closed_as_idle() {
    // -t 1:1: the only thread's handler waits for a body that does not
    // come (until body_timeout, 3 s) while a parked connection's request
    // arrives and its persistent deadline (2 s) passes. It is not idle:
    // it is answered once the thread is free, not closed unread.
    let Some(s) = start_upload(&[
        "-t",
        "1:1",
        "--persistent-timeout",
        "2",
        "--body-timeout",
        "3",
    ]) else {
        return;
    };
    let mut parked = Client::connect(s.addr());
    parked.send(&get_bytes("/hello.txt"));
    assert_eq!(parked.expect_response("GET").status, 200);
    let _slow = in_flight(&s);
    parked.get_hello_within(Duration::from_secs(8), "answered once the thread was free");
}

#[test]
fn second_signal_during_the_stop_exits_at_once() {
    let Some(mut s) = start_upload(&["--shutdown-timeout", "30"]) else {
        return;
    };
    let _c = in_flight(&s);
    s.signal("TERM");
    assert!(s.wait_for_line("- Gracefully stopping", deadline_in(Duration::from_secs(5))));
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(3))
        .expect("a second SIGTERM exits at once");
    assert_eq!(status.code(), Some(1), "{}", s.stderr());
    assert!(!s.stdout().contains("- Goodbye!"), "{}", s.stdout());
}

#[test]
fn shutdown_timeout_bounds_the_wait() {
    let Some(mut s) = start_upload(&["--shutdown-timeout", "1"]) else {
        return;
    };
    let _c = in_flight(&s);
    let t0 = std::time::Instant::now();
    s.signal("TERM");
    let status = s
        .wait_exit(Duration::from_secs(5))
        .expect("exit once the shutdown timeout passed");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited <= Duration::from_secs(4),
        "exited {waited:?} after SIGTERM with shutdown_timeout 1 s"
    );
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
}

#[test]
fn download_in_progress_completes_during_graceful_stop() {
    // Bigger than the loopback socket buffers, so the server is still
    // sending when the signal comes.
    const SIZE: usize = 32 * 1024 * 1024;
    let docroot = TempDir::docroot();
    let big: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(docroot.path().join("big.bin"), &big).expect("write big.bin");
    let mut s = Server::start(&[&docroot.path().to_string_lossy()]);
    let addr = s.addr();
    let mut c = Client::connect(addr);
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    // The event: the response has begun (and cannot finish: the client
    // reads nothing, and the file is larger than the socket buffers). No
    // pool thread waits for this client: the rest is sent from the pool's
    // epoll as the client takes it, and the stop waits for it.
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    let mut first = [0u8; 1];
    assert_eq!(c.stream().peek(&mut first).expect("the response begins"), 1);
    c.stream()
        .set_read_timeout(None)
        .expect("clear the read timeout");
    s.signal("TERM");
    assert!(s.wait_for_line("- Gracefully stopping", deadline_in(Duration::from_secs(5))));
    assert!(
        wait_refused(addr, Duration::from_secs(3)),
        "still accepting connections during the stop"
    );
    let r = c
        .response_by("GET", deadline_in(Duration::from_secs(20)))
        .expect("the download completes");
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(r.body.len(), SIZE);
    assert!(r.body == big, "the body differs from the file");
    let closed = c.wait_closed(deadline_in(Duration::from_secs(3)));
    assert!(closed.is_ok(), "{closed:?}");
    let status = s.wait_exit(support::EXIT_DEADLINE).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(s.stdout().contains("- Goodbye!"), "{}", s.stdout());
}

#[test]
fn process_title_names_the_version_listeners_and_tag() {
    let mut s = Server::start(&["--tag", "shop"]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid())).expect("cmdline");
    let title = String::from_utf8_lossy(&cmdline);
    let title = title.trim_end_matches('\0');
    assert_eq!(
        title,
        format!("catamount 0.1.0 (tcp://{}) [shop]", s.addr())
    );
    // The original arguments were saved first: a hot restart still works.
    signal_and_wait(&s, "USR2", "* Inherited tcp://127.0.0.1:0", 10);
    assert_serves(s.addr());
    assert!(s.stop().success());
}

/// Hot restarts in a row, each after a request (so pool threads exist and
/// the docroot, opened first, holds fd 3, the number the first listener
/// is moved to for the exec).
const HOT_RESTART_ROUNDS: usize = 10;

/// The listener survives every hot restart. A pool thread used to exit
/// after the listener had been moved to fd 3 and drop the docroot's
/// descriptor, closing fd 3: the new image then found no listener there.
#[test]
fn hot_restarts_after_serving_keep_the_listener() {
    let mut s = Server::start(&[]);
    let pid = s.pid();
    for round in 1..=HOT_RESTART_ROUNDS {
        assert_serves(s.addr());
        s.signal("USR2");
        assert!(
            s.wait_for_line_count(
                "Use Ctrl-C to stop",
                round + 1,
                deadline_in(Duration::from_secs(10))
            ),
            "hot restart {round} did not come back (exit: {:?})\nstdout:\n{}\nstderr:\n{}",
            s.exit_status_now(),
            s.stdout(),
            s.stderr()
        );
        assert_eq!(s.pid(), pid);
    }
    assert_serves(s.addr());
    assert!(s.stop().success(), "{}", s.stderr());
}

// ---------------------------------------------------------------------
// DIR: what is served (issue 12)
// ---------------------------------------------------------------------

/// The catamount binary as a `Command`.
fn catamount() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_catamount"))
}

#[test]
fn default_dir_of_slash_is_refused_unless_given() {
    // systemd starts services in `/`: without a DIR argument or a
    // `directory` line, the default (the current directory) would serve
    // the whole file system.
    let conf_dir = TempDir::new("conf");
    let conf = conf_dir.write("catamount.rb", "threads 0, 2\n");
    for args in [
        &["-b", "tcp://127.0.0.1:0"][..],
        &["-b", "tcp://127.0.0.1:0", "-C", &conf],
    ] {
        let mut cmd = catamount();
        cmd.args(args).current_dir("/");
        let f = Server::run_command(cmd);
        assert_eq!(f.status.code(), Some(2), "{args:?}: {f:?}");
        assert_eq!(
            f.stderr.trim_end(),
            "catamount: no directory to serve was given, and the default, the current \
             directory, is / (where systemd starts services): catamount would serve the whole \
             file system; expected DIR, as in catamount /srv/www, or directory \"/srv/www\" in \
             the config file (name / itself to serve it on purpose)",
            "{args:?}"
        );
        assert!(!f.stdout.contains("Use Ctrl-C to stop"), "{f:?}");
    }
    // Named on purpose, by the argument or by the file, / is served.
    let conf_slash = conf_dir.write("slash.rb", "directory \"/\"\n");
    for args in [
        &["-b", "tcp://127.0.0.1:0", "/"][..],
        &["-b", "tcp://127.0.0.1:0", "-C", &conf_slash],
        &["-b", "tcp://127.0.0.1:0", "."],
    ] {
        let mut cmd = catamount();
        cmd.args(args).current_dir("/");
        let mut s = Server::start_command(cmd);
        assert!(
            s.stdout().lines().any(|l| l == "* Serving /"),
            "{args:?}: {}",
            s.stdout()
        );
        assert_eq!(s.stop().code(), Some(0), "{}", s.stderr());
    }
}

#[test]
fn the_banner_says_what_is_served_as_an_absolute_path() {
    let docroot = TempDir::docroot();
    let canonical = std::fs::canonicalize(docroot.path()).expect("canonicalize the docroot");
    let want = format!("* Serving {}", canonical.display());
    let s = Server::start(&[&docroot.path().to_string_lossy()]);
    let out = s.stdout();
    assert!(out.lines().any(|l| l == want), "{want:?} in:\n{out}");
    // A relative DIR is shown resolved.
    let parent = canonical.parent().expect("the docroot has a parent");
    let name = canonical.file_name().expect("the docroot has a name");
    let mut cmd = catamount();
    cmd.args(["-b", "tcp://127.0.0.1:0"])
        .arg(name)
        .current_dir(parent);
    let s = Server::start_command(cmd);
    let out = s.stdout();
    assert!(out.lines().any(|l| l == want), "{want:?} in:\n{out}");
    assert_serves(s.addr());
}

#[test]
fn a_dir_this_process_cannot_read_is_refused_with_exit_2() {
    let docroot = TempDir::docroot();
    let shown = docroot.path().display().to_string();
    std::fs::set_permissions(docroot.path(), std::fs::Permissions::from_mode(0o000))
        .expect("chmod 000 the docroot");
    let mut cmd = match support::unprivileged(Path::new(env!("CARGO_BIN_EXE_catamount"))) {
        Ok(cmd) => cmd,
        Err(reason) => return support::skip(&reason),
    };
    cmd.args(["-b", "tcp://127.0.0.1:0", &shown]);
    let f = Server::run_command(cmd);
    // Given back before the asserts, so the TempDir can remove it.
    std::fs::set_permissions(docroot.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 the docroot");
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert_eq!(
        f.stderr.trim_end(),
        format!(
            "catamount: DIR {shown:?} cannot be read by this process (Permission denied (os \
             error 13)), which needs to list and search it; expected a directory to serve, as \
             in catamount /srv/www"
        ),
        "{f:?}"
    );
    assert!(!f.stdout.contains("Use Ctrl-C to stop"), "{f:?}");
}
