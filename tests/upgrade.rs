//! Connections that change protocol (issue 17 item 2), through
//! `examples/websocket_echo.rs` over real sockets: a real WebSocket
//! client (Python's `websockets`, from PyPI; scripts/install-deps
//! installs it) echoes over plain TCP, a unix socket and TLS; raw sockets
//! check the bytes of the handshake. Then the engine's promises with
//! upgraded connections open: a graceful stop closes them cleanly within
//! shutdown_timeout (and cuts a client that ignores the close at its
//! deadline), HTTP and slow clients' 408 are still served with more
//! upgraded connections open than pool threads, max_upgraded answers 503,
//! a hot restart completes, and idle_timeout counts them as open.
//! Every wait is for an event (a line, an exit, bytes) with a deadline.

mod support;

#[path = "support/pki.rs"]
#[allow(dead_code)] // pki::dated serves tests/tls.rs only
mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{deadline_in, example, free_port, skip, Server, TempDir};

/// The client script (see its docstring).
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ws_client.py");
/// Upper bound for one client step, a response, or a process to end.
const STEP: Duration = Duration::from_secs(10);
/// Cargo's scratch directory, for the certificates.
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");
/// RFC 6455 §1.3's example key and the accept value it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A Python with `websockets` (its sync client, >= 11), or `None` after a
/// "skipped:" line saying how to get one.
fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some("python3")
    } else {
        skip(
            "python3 with the websockets package (>= 11) is missing: pip install websockets \
             (scripts/install-deps does)",
        );
        None
    }
}

/// The echo example with `args` (a docroot and a bind are added when
/// missing, as for the binary).
fn start_echo(args: &[&str]) -> Option<Server> {
    Server::start_example("websocket_echo", args)
}

/// A running `ws_client.py`, its stdout read line by line.
struct WsClient {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl WsClient {
    fn spawn(python: &str, mode: &str, target: &str, cafile: Option<&str>) -> WsClient {
        let mut child = Command::new(python)
            .arg(CLIENT)
            .args([mode, target])
            .args(cafile)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        WsClient {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; panics with what the
    /// client said at the deadline.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = deadline_in(STEP);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "no {prefix:?} line from the client; it said {:?}\n{err}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Waits for the client to exit; panics unless it succeeded.
    fn succeeds(mut self) {
        let status = wait_child(&mut self.child, STEP);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(
            status.is_some_and(|s| s.success()),
            "client: {status:?}\n{err}"
        );
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = deadline_in(timeout);
    support::wait_until(deadline, || matches!(child.try_wait(), Ok(Some(_))));
    child.try_wait().ok().flatten()
}

/// Opens `n` WebSockets that wait for the server to close them, each
/// known open (one echo done).
fn hold(python: &str, target: &str, n: usize) -> Vec<WsClient> {
    (0..n)
        .map(|_| {
            let mut c = WsClient::spawn(python, "hold", target, None);
            c.wait_line("open");
            c
        })
        .collect()
}

/// A WebSocket handshake written by hand.
fn handshake_bytes() -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads a response head, byte by byte (what follows it is the new
/// protocol's, left in the socket).
fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "head cut short ({other:?}): {}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).expect("an ASCII head")
}

/// Connects to `addr` and upgrades; returns the stream after the 101.
fn raw_websocket(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    s.write_all(handshake_bytes().as_bytes()).expect("send");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    s
}

/// A client frame (FIN set), masked as RFC 6455 §5.3 requires.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

/// Reads one short server frame (unmasked, under 126 bytes): opcode and
/// payload.
fn read_frame(s: &mut impl Read) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("a frame head");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    assert!(h[1] < 126, "a short frame");
    let mut payload = vec![0u8; usize::from(h[1])];
    s.read_exact(&mut payload).expect("the payload");
    (h[0] & 0x0F, payload)
}

#[test]
fn text_binary_fragments_ping_and_close_echo_over_plain_tcp() {
    let Some(py) = python() else { return };
    let Some(mut server) = start_echo(&[]) else {
        return;
    };
    let target = format!("ws://{}/", server.addr());
    WsClient::spawn(py, "echo", &target, None).succeeds();
    assert!(server.stop().success());
}

#[test]
fn echo_over_a_unix_socket() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("ws-unix");
    let path = dir.join("ws.sock");
    let Some(mut server) = start_echo(&["-b", &format!("unix://{path}")]) else {
        return;
    };
    WsClient::spawn(py, "echo", &format!("unix:{path}"), None).succeeds();
    assert!(server.stop().success());
}

#[test]
fn echo_over_tls() {
    if !cfg!(feature = "tls") {
        skip("catamount was built without the tls feature");
        return;
    }
    let Some(py) = python() else { return };
    let openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !openssl {
        skip("openssl is not installed (scripts/install-deps installs it)");
        return;
    }
    let dir = TempDir::new_in(Path::new(TARGET_TMPDIR), "ws-pki");
    pki::init(dir.path(), &["ca"]);
    pki::p256_key(dir.path(), "a");
    pki::leaf(dir.path(), "a", "server_ext", "ca", 1001);
    let bind = format!(
        "ssl://127.0.0.1:0?cert={}&key={}",
        dir.join("a.pem"),
        dir.join("a.key")
    );
    let Some(mut server) = start_echo(&["-b", &bind]) else {
        return;
    };
    let addr = server
        .listening()
        .iter()
        .find_map(|u| u.strip_prefix("ssl://")?.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no ssl:// listener in:\n{}", server.stdout()));
    // The certificate names 127.0.0.1 as well as localhost.
    let target = format!("wss://{addr}/");
    let ca = dir.join("ca.pem");
    WsClient::spawn(py, "echo", &target, Some(&ca)).succeeds();
    // And a stop with one open over TLS: close 1001 through rustls.
    let mut held = WsClient::spawn(py, "hold", &target, Some(&ca));
    held.wait_line("open");
    server.signal("TERM");
    assert_eq!(held.wait_line("closed"), "closed 1001 server stopping");
    assert!(server.wait_exit(STEP).is_some_and(|s| s.success()));
}

#[test]
fn the_101_is_exact_and_bytes_sent_with_the_handshake_reach_the_app_first() {
    let Some(mut server) = start_echo(&[]) else {
        return;
    };
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    // The handshake and a first frame in one write: the engine buffers
    // the frame with the head, and it belongs to the upgraded stream.
    let mut first = handshake_bytes().into_bytes();
    first.extend(masked(0x1, b"early"));
    s.write_all(&first).expect("send");
    let head = read_head(&mut s);
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{head}"
    );
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
    assert_eq!(read_frame(&mut s), (0x1, b"early".to_vec()));
    s.write_all(&masked(0x9, b"hb")).expect("ping");
    assert_eq!(read_frame(&mut s), (0xA, b"hb".to_vec()), "pong");
    s.write_all(&masked(0x8, &1000u16.to_be_bytes()))
        .expect("close");
    assert_eq!(read_frame(&mut s), (0x8, 1000u16.to_be_bytes().to_vec()));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the server closes");
    assert!(rest.is_empty(), "nothing after the close: {rest:?}");
    // A plain request to the same app: no upgrade asked, none given.
    let mut http = TcpStream::connect(server.addr()).expect("connect");
    http.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    http.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    assert!(read_head(&mut http).starts_with("HTTP/1.1 426 "));
    assert!(server.stop().success());
}

#[test]
fn a_graceful_stop_closes_open_websockets_within_shutdown_timeout() {
    let Some(py) = python() else { return };
    let shutdown = Duration::from_secs(5);
    let Some(mut server) = start_echo(&["--shutdown-timeout", "5"]) else {
        return;
    };
    let target = format!("ws://{}/", server.addr());
    let mut held = hold(py, &target, 2);
    let asked = Instant::now();
    server.signal("TERM");
    for c in &mut held {
        assert_eq!(c.wait_line("closed"), "closed 1001 server stopping");
    }
    let status = server.wait_exit(STEP).expect("exited");
    assert!(status.success(), "{status:?}\n{}", server.stdout());
    assert!(
        asked.elapsed() < shutdown,
        "took {:?}: the clients answered the close at once",
        asked.elapsed()
    );
    assert!(
        server.stdout().contains("- Goodbye!"),
        "{}",
        server.stdout()
    );
    for c in held {
        c.succeeds();
    }
}

#[test]
fn in_cluster_mode_a_phased_restart_and_a_stop_close_websockets_in_the_workers() {
    let Some(py) = python() else { return };
    let Some(mut server) = start_echo(&["-w", "2", "--shutdown-timeout", "5"]) else {
        return;
    };
    let target = format!("ws://{}/", server.addr());
    // USR1: each worker in turn is told to stop (a worker's own drain).
    let mut held = hold(py, &target, 1);
    server.signal("USR1");
    assert_eq!(held[0].wait_line("closed"), "closed 1001 server stopping");
    assert!(
        server.wait_for_line("- Phased restart complete", deadline_in(STEP)),
        "{}",
        server.stdout()
    );
    // TERM to the master: its workers drain theirs, then it exits 0.
    let mut held = hold(py, &target, 2);
    server.signal("TERM");
    for c in &mut held {
        assert_eq!(c.wait_line("closed"), "closed 1001 server stopping");
    }
    let status = server.wait_exit(STEP).expect("exited");
    assert!(status.success(), "{status:?}\n{}", server.stdout());
}

#[test]
fn a_client_that_never_answers_the_close_is_cut_at_shutdown_timeout() {
    // The example waits 2 s for the client's close; the engine's 1 s
    // deadline comes first and shuts the socket down.
    let Some(mut server) = start_echo(&["--shutdown-timeout", "1"]) else {
        return;
    };
    let mut s = raw_websocket(server.addr());
    let asked = Instant::now();
    server.signal("TERM");
    let (opcode, payload) = read_frame(&mut s);
    assert_eq!(opcode, 0x8, "a close frame");
    assert_eq!(&payload[..2], &1001u16.to_be_bytes(), "going away");
    // Never answered: the end of the stream comes at the deadline.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("EOF, not a reset or a hang");
    let status = server.wait_exit(STEP).expect("exited");
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", server.stdout());
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        server.wait_for_stderr(
            "Shut down 1 upgraded connection(s) still open at the shutdown timeout",
            deadline_in(STEP)
        ),
        "{}",
        server.stderr()
    );
}

#[test]
fn with_more_websockets_open_than_pool_threads_http_and_408_are_served() {
    let Some(py) = python() else { return };
    let Some(mut server) = start_echo(&["-t", "1:1", "--first-data-timeout", "1"]) else {
        return;
    };
    let addr = server.addr();
    let target = format!("ws://{addr}/");
    let mut held = hold(py, &target, 3);
    // One pool thread and three upgraded connections: none holds it.
    for _ in 0..3 {
        let mut http = TcpStream::connect(addr).expect("connect");
        http.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
        http.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("send");
        assert!(read_head(&mut http).starts_with("HTTP/1.1 426 "));
    }
    // A head sent a byte at a time, never finished: 408 at
    // first_data_timeout, from the reactor, as without upgrades.
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    for b in b"GET /slow HTTP/1.1\r\nHost:" {
        slow.write_all(&[*b]).expect("one byte");
    }
    let mut answer = String::new();
    slow.read_to_string(&mut answer)
        .expect("answered, then closed");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    // And the three were open all along.
    server.signal("TERM");
    for c in &mut held {
        assert_eq!(c.wait_line("closed"), "closed 1001 server stopping");
    }
    assert!(server.wait_exit(STEP).is_some_and(|s| s.success()));
}

#[test]
fn beyond_max_upgraded_the_answer_is_503_and_http_goes_on() {
    let Some(mut server) = start_echo(&["--max-upgraded", "1"]) else {
        return;
    };
    let addr = server.addr();
    let first = raw_websocket(addr);
    let mut second = TcpStream::connect(addr).expect("connect");
    second.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    second
        .write_all(handshake_bytes().as_bytes())
        .expect("send");
    let mut answer = String::new();
    second
        .read_to_string(&mut answer)
        .expect("answered, then closed");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(
        server.wait_for_stderr(
            "upgrade refused with 503: 1 upgraded connections are open (max_upgraded)",
            deadline_in(STEP)
        ),
        "{}",
        server.stderr()
    );
    // The place comes back when the first one ends.
    drop(first);
    let deadline = deadline_in(STEP);
    let again = loop {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
        s.write_all(handshake_bytes().as_bytes()).expect("send");
        let head = read_head(&mut s);
        if head.starts_with("HTTP/1.1 101 ") {
            break s;
        }
        // The first one's thread may not have seen its EOF yet.
        assert!(Instant::now() < deadline, "no place came back: {head}");
    };
    drop(again);
    assert!(server.stop().success());
}

#[test]
fn a_hot_restart_with_a_websocket_open_completes() {
    let Some(py) = python() else { return };
    let Some(mut server) = start_echo(&["--shutdown-timeout", "5"]) else {
        return;
    };
    let target = format!("ws://{}/", server.addr());
    let mut held = WsClient::spawn(py, "hold", &target, None);
    held.wait_line("open");
    server.signal("USR2");
    // The old image says goodbye in the protocol, then execs.
    assert_eq!(held.wait_line("closed"), "closed 1001 server stopping");
    held.succeeds();
    assert!(
        server.wait_for_line_count("Use Ctrl-C to stop", 2, deadline_in(STEP)),
        "no new image:\n{}\n{}",
        server.stdout(),
        server.stderr()
    );
    // The same listener, the same pid, a new image: WebSockets work.
    WsClient::spawn(py, "echo", &target, None).succeeds();
    assert!(server.stop().success());
}

#[test]
fn idle_timeout_counts_an_open_websocket_as_a_connection() {
    let Some(bin) = example("websocket_echo") else {
        return;
    };
    let activate = Command::new("systemd-socket-activate")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !activate {
        skip("systemd-socket-activate is not installed (scripts/install-deps installs it)");
        return;
    }
    let port = free_port();
    let first = std::thread::spawn(move || {
        support::connect_by(port, deadline_in(STEP)) // starts the app
    });
    let docroot = TempDir::docroot();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}"), "--"])
        .arg(bin)
        .args(["--bind-to-activated-sockets=only", "--idle-timeout", "0.2"])
        .arg(docroot.path());
    let mut server = Server::start_command(cmd);
    let mut s = first.join().expect("the connecting thread");
    s.set_read_timeout(Some(STEP)).expect("SO_RCVTIMEO");
    s.write_all(handshake_bytes().as_bytes()).expect("send");
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101 "));
    // Five idle timeouts with the WebSocket open and silent: no exit.
    assert!(
        server.wait_exit(Duration::from_secs(1)).is_none(),
        "exited with a WebSocket open:\n{}",
        server.stdout()
    );
    s.write_all(&masked(0x1, b"still here")).expect("send");
    assert_eq!(read_frame(&mut s), (0x1, b"still here".to_vec()));
    // Closed: the process is idle, and exits 0.
    drop(s);
    let status = server.wait_exit(STEP).expect("the idle exit");
    assert!(status.success(), "{status:?}");
    assert!(
        server.stdout().contains("exiting (idle_timeout)"),
        "{}",
        server.stdout()
    );
}
