//! TLS end to end: the real binary on `ssl://` binds and on activated
//! sockets, answered by real clients (curl, `openssl s_client`) over real
//! sockets. Certificates are made once per test run with the openssl CLI
//! (ECDSA P-256 CA, leaves with SAN IP:127.0.0.1 and DNS:localhost, client
//! certificates from that CA and from an unrelated one, an expired leaf, a
//! key that matches nothing).
//!
//! Without openssl or curl every test prints `skipped: openssl/curl not
//! installed` and passes; the activation tests need `systemd-socket-activate`
//! and the last one a real systemd (`support/sdsandbox.rs`), and say so when
//! missing.
//!
//! Only with the `tls` cargo feature (the default): a build without it
//! refuses every ssl:// bind (tests/preflight.rs checks how).
#![cfg(feature = "tls")]

mod support;

#[path = "support/sdsandbox.rs"]
#[macro_use]
mod sdsandbox;

#[path = "support/pki.rs"]
mod pki;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{deadline_in, free_port, wait_until, Server, TempDir, HELLO, OTHER};

/// Deadline for an event a test waits on (a restart, a log line).
const EVENT_DEADLINE: Duration = Duration::from_secs(10);
/// Upper bound for one curl or openssl run (passed to them, so a hung
/// client fails the test instead of hanging it).
const CLIENT_MAX_SECS: &str = "10";
/// Cargo's scratch directory: visible inside the systemd sandbox too.
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");
const BIN: &str = env!("CARGO_BIN_EXE_catamount");
/// The fixture directory of one test run is `<TARGET_TMPDIR>/<prefix><pid>`.
const FIXTURE_PREFIX: &str = "tls-fixtures-";

// ---------------------------------------------------------------------
// 1. Both protocol versions
// ---------------------------------------------------------------------

#[test]
fn curl_gets_a_file_over_tls12_and_tls13() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let server = Server::start(&["-b", &pki.bind("a", "")]);
    let port = ssl_port(&server);
    for (flags, version) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
        (&["--tlsv1.3"][..], "TLSv1.3"),
    ] {
        let mut args = flags.to_vec();
        args.push("-v");
        let out = pki.curl_get(port, "/hello.txt", &args);
        let err = text(&out.stderr);
        assert!(
            out.status.success(),
            "curl {flags:?}: {err}\n{}",
            logs(&server)
        );
        assert_eq!(text(&out.stdout), HELLO, "curl {flags:?}");
        assert!(err.contains("< HTTP/1.1 200 OK"), "curl {flags:?}: {err}");
        assert!(
            err.contains(&format!("SSL connection using {version} /")),
            "curl {flags:?} did not negotiate {version}: {err}"
        );
        assert!(
            err.contains("ALPN: server accepted http/1.1"),
            "curl {flags:?}: no ALPN http/1.1: {err}"
        );
    }

    // min_version=TLSv1.3: a client that stops at 1.2 is refused, 1.3 works.
    let strict = Server::start(&["-b", &pki.bind("a", "&min_version=TLSv1.3")]);
    let port = ssl_port(&strict);
    let out = pki.curl_get(port, "/hello.txt", &["--tlsv1.2", "--tls-max", "1.2"]);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "a TLS 1.2 client got through min_version=TLSv1.3: {out:?}"
    );
    let out = pki.curl_get(port, "/hello.txt", &["--tlsv1.3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), HELLO);
    timing("curl_gets_a_file_over_tls12_and_tls13", started);
}

// ---------------------------------------------------------------------
// 2. Keep-alive and pipelining
// ---------------------------------------------------------------------

#[test]
fn keep_alive_and_pipelined_requests_over_tls() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let server = Server::start(&["-b", &pki.bind("a", "")]);
    let port = ssl_port(&server);

    // Two URLs, one connection (for both protocol versions).
    for flags in [&["--tlsv1.2", "--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
        let second = format!("https://127.0.0.1:{port}/other.txt");
        let mut args = flags.to_vec();
        args.extend(["-v", second.as_str()]);
        let out = pki.curl_get(port, "/hello.txt", &args);
        let err = text(&out.stderr);
        assert!(out.status.success(), "curl {flags:?}: {err}");
        // curl fetches in command-line order: other.txt was given first.
        assert_eq!(text(&out.stdout), format!("{OTHER}{HELLO}"));
        assert!(
            err.contains("Re-using existing connection"),
            "curl {flags:?} opened a second connection: {err}"
        );
        assert_eq!(err.matches("< HTTP/1.1 200 OK").count(), 2, "{err}");
    }

    // Two requests in one write: both arrive in the same TLS record (and,
    // with TLS 1.3, possibly with the client's Finished), so the second
    // one sits decrypted in the server's TLS session, not in the socket.
    let requests = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\
                    GET /other.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client_quiet(port, version, requests.as_bytes());
        let body = text(&out.stdout);
        assert!(
            out.status.success(),
            "s_client {version}: {out:?}\n{}",
            logs(&server)
        );
        assert_eq!(body.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{body}");
        let first = body.find(HELLO).expect("hello.txt's body");
        let second = body.find(OTHER).expect("other.txt's body");
        assert!(first < second, "responses out of order: {body}");
        assert!(
            body.ends_with(OTHER),
            "bytes after the last response: {body:?}"
        );
    }
    timing("keep_alive_and_pipelined_requests_over_tls", started);
}

#[test]
fn small_ranges_and_large_files_over_tls() {
    // Small files leave with their head in one TLS record; larger ones
    // are read and encrypted in chunks: both must arrive byte for byte.
    let Some(pki) = pki() else { return };
    let server = Server::start(&["-b", &pki.bind("a", "")]);
    let port = ssl_port(&server);
    let root = server.docroot().expect("the test docroot");
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).expect("write big.bin");
    let out = pki.curl_get(port, "/big.bin", &[]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    assert!(
        out.stdout == big,
        "big.bin arrived changed ({} bytes)",
        out.stdout.len()
    );
    let out = pki.curl_get(port, "/hello.txt", &["-r", "2-5", "-v"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "curl: {err}");
    assert!(err.contains("< HTTP/1.1 206"), "{err}");
    assert_eq!(text(&out.stdout), &HELLO[2..6]);
}

#[test]
fn clients_that_do_not_read_hold_no_thread_over_tls() {
    // Issue 11: a TLS client that stops reading a large file used to hold
    // a pool thread for up to 30 s per stall. With -t 2:2, three of them
    // must not delay anyone: the rest of each response waits in the
    // pool's epoll for the client to take it.
    let Some(pki) = pki() else { return };
    let server = Server::start(&["-t", "2:2", "-b", &pki.bind("a", "")]);
    let port = ssl_port(&server);
    let root = server.docroot().expect("the test docroot");
    fs::write(root.join("big.bin"), vec![7u8; 32 << 20]).expect("write big.bin");
    let (began, began_rx) = mpsc::channel();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-CAfile",
                &pki.path("ca.pem"),
                "-connect",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        child
            .stdin
            .as_mut()
            .expect("stdin is piped")
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("send the request");
        // Read the status line, then nothing more: s_client blocks on its
        // full stdout pipe and stops reading the socket.
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let began = began.clone();
        std::thread::spawn(move || {
            let mut status = [0u8; 12];
            let _ = began.send(stdout.read_exact(&mut status).map(|()| status));
            // Keep the pipe open, unread, until the test ends.
            std::thread::park();
        });
        stalled.push(child);
    }
    for _ in 0..3 {
        let status = began_rx
            .recv_timeout(EVENT_DEADLINE)
            .expect("a stalled download began")
            .expect("read the status line");
        assert_eq!(&status, b"HTTP/1.1 200");
    }
    for round in 0..3 {
        let out = pki.curl_get(port, "/hello.txt", &["--max-time", "3"]);
        assert!(
            out.status.success(),
            "round {round}: curl while 3 TLS clients stall: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), HELLO);
    }
    for mut child in stalled {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn plain_http_to_the_ssl_port_gets_a_readable_400() {
    // As nginx does: a client that forgot https:// reads why, in plain
    // HTTP, rather than a TLS alert it cannot parse; then the close.
    let Some(pki) = pki() else { return };
    let server = Server::start(&["-b", &pki.bind("a", "")]);
    let port = ssl_port(&server);
    let large = format!(
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nX: {}\r\nContent-Length: 5\r\n\r\nhello",
        "a".repeat(20_000)
    );
    for request in ["GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", large.as_str()] {
        let mut c = support::Client::connect(([127, 0, 0, 1], port).into());
        c.send(request.as_bytes());
        let r = c.response("GET").unwrap_or_else(|e| {
            panic!(
                "no plain HTTP answer: {e} (got {:?}){}",
                c.buffered(),
                logs(&server)
            )
        });
        assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", 400), "{r:?}");
        assert!(r.connection_has("close"), "{r:?}");
        assert!(r.text().starts_with("400 "), "{:?}", r.text());
        assert!(r.text().contains("HTTPS port"), "{:?}", r.text());
        let closed = c.wait_closed(deadline_in(EVENT_DEADLINE));
        assert_eq!(closed, Ok(support::Closed::Eof), "{}", logs(&server));
    }
    // TLS on the same port is untouched.
    assert_https_serves(pki, port, &server);
}

// ---------------------------------------------------------------------
// 3. Client certificates
// ---------------------------------------------------------------------

#[test]
fn force_peer_requires_a_client_certificate_from_the_ca() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let ca = pki.path("ca.pem");
    let force = Server::start(&[
        "-b",
        &pki.bind("a", &format!("&ca={ca}&verify_mode=force_peer")),
    ]);
    let port = ssl_port(&force);
    let client = [
        "--cert",
        &pki.path("client.pem"),
        "--key",
        &pki.path("client.key"),
    ];
    let rogue = [
        "--cert",
        &pki.path("rogue.pem"),
        "--key",
        &pki.path("rogue.key"),
    ];
    for version in [&["--tlsv1.2", "--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
        let out = pki.curl_get(port, "/hello.txt", version);
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "force_peer served a client without a certificate ({version:?}): {out:?}"
        );
        let out = pki.curl_get(port, "/hello.txt", &[version, &rogue[..]].concat());
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "force_peer served a certificate from another CA ({version:?}): {out:?}"
        );
        let out = pki.curl_get(port, "/hello.txt", &[version, &client[..]].concat());
        assert!(
            out.status.success(),
            "force_peer refused the CA's client certificate ({version:?}): {}\n{}",
            text(&out.stderr),
            logs(&force)
        );
        assert_eq!(text(&out.stdout), HELLO);
    }

    // verify_mode=peer: no certificate is fine, a wrong one is not.
    let peer = Server::start(&["-b", &pki.bind("a", &format!("&ca={ca}&verify_mode=peer"))]);
    let port = ssl_port(&peer);
    let out = pki.curl_get(port, "/hello.txt", &[]);
    assert!(
        out.status.success(),
        "peer, no certificate: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), HELLO);
    let out = pki.curl_get(port, "/hello.txt", &client);
    assert!(
        out.status.success(),
        "peer, the CA's certificate: {}",
        text(&out.stderr)
    );
    let out = pki.curl_get(port, "/hello.txt", &rogue);
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "verify_mode=peer accepted a certificate from another CA: {out:?}"
    );
    timing(
        "force_peer_requires_a_client_certificate_from_the_ca",
        started,
    );
}

// ---------------------------------------------------------------------
// 4. Silent clients
// ---------------------------------------------------------------------

/// Handshakes run on the reactor under the first-data deadline, so clients
/// that send nothing (no ClientHello, or no request after the handshake)
/// hold no pool thread: with a single thread another client is still
/// answered at once, and the silent ones are closed at the deadline.
#[test]
fn silent_tls_clients_do_not_delay_others_and_are_closed_at_the_deadline() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let first_data = Duration::from_secs(2);
    let server = Server::start(&[
        "-t",
        "1:1",
        "--first-data-timeout",
        &first_data.as_secs().to_string(),
        "-b",
        &pki.bind("a", ""),
    ]);
    let port = ssl_port(&server);

    let connected = Instant::now();
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect to the ssl port"))
        .collect();
    // One more that completes the handshake, then says nothing.
    let mut idle = IdleTlsClient::start(port, &pki.path("ca.pem"));
    idle.wait_handshake(deadline_in(EVENT_DEADLINE));

    let asked = Instant::now();
    let out = pki.curl_get(port, "/hello.txt", &[]);
    let took = asked.elapsed();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        logs(&server)
    );
    assert_eq!(text(&out.stdout), HELLO);
    assert!(
        took < Duration::from_secs(2),
        "curl took {took:?} while silent clients were connected"
    );
    // Proof that curl did not just get the thread after they were dropped.
    for (i, s) in silent.iter().enumerate() {
        assert!(
            still_open(s),
            "silent connection {i} was closed before the deadline"
        );
    }
    assert!(
        idle.running(),
        "the idle TLS client was closed before the deadline"
    );

    // All of them closed by the server at the first-data deadline (the
    // slack only matters on a loaded machine: the wait ends at the close).
    let by = connected + first_data + Duration::from_secs(5);
    for (i, mut s) in silent.into_iter().enumerate() {
        let left = by
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).expect("SO_RCVTIMEO");
        // The server may say close_notify (an alert record) before its FIN.
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "silent connection {i} still open {:?} after connecting ({e}); got {got:?}{}",
                    connected.elapsed(),
                    logs(&server)
                ),
            }
        }
        assert!(
            got.is_empty() || is_tls_alert(&got),
            "silent connection {i} got bytes other than a TLS alert: {got:?}"
        );
        let closed_after = connected.elapsed();
        assert!(
            closed_after >= first_data - Duration::from_millis(100),
            "silent connection {i} closed after {closed_after:?}, before the {first_data:?} deadline"
        );
    }
    let status = idle.wait_exit(by);
    assert!(
        status.is_some(),
        "the idle TLS connection is still open {:?} after connecting",
        connected.elapsed()
    );
    // And the server still answers.
    let out = pki.curl_get(port, "/other.txt", &[]);
    assert_eq!(text(&out.stdout), OTHER, "{}", text(&out.stderr));
    timing(
        "silent_tls_clients_do_not_delay_others_and_are_closed_at_the_deadline",
        started,
    );
}

// ---------------------------------------------------------------------
// 5. Certificate rotation
// ---------------------------------------------------------------------

#[test]
fn certificates_rotate_on_usr2_and_hup_and_a_bad_one_keeps_the_old() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let live = LiveCert::new(pki, "a");
    let mut server = Server::start(&["-b", &live.bind()]);
    let port = ssl_port(&server);
    let pid = server.pid();
    assert_eq!(served_serial(port), pki.serial("a"));

    let mut images = 1;
    for (sig, name) in [("USR2", "b"), ("HUP", "c")] {
        live.install(name);
        server.signal(sig);
        images += 1;
        assert!(
            server.wait_for_nth_line("Use Ctrl-C to stop", images, deadline_in(EVENT_DEADLINE)),
            "no restart after SIG{sig}{}",
            logs(&server)
        );
        assert_eq!(
            served_serial(port),
            pki.serial(name),
            "SIG{sig} did not load the new certificate{}",
            logs(&server)
        );
        assert_same_process(&mut server, pid, images);
        assert_https_serves(pki, port, &server);
    }

    // An expired certificate at reload: refused, the old one still served.
    live.install("expired");
    server.signal("HUP");
    assert!(
        server.wait_for_stderr(
            "still serving with the old configuration",
            deadline_in(EVENT_DEADLINE)
        ),
        "no refusal of the expired certificate{}",
        logs(&server)
    );
    let err = server.stderr();
    assert!(
        err.lines().any(|l| l.contains("still serving")
            && l.contains(&live.cert)
            && l.contains("expired")),
        "the refusal does not name the expired certificate {}: {err}",
        live.cert
    );
    assert_eq!(served_serial(port), pki.serial("c"), "{}", logs(&server));
    assert_https_serves(pki, port, &server);
    assert_same_process(&mut server, pid, images);

    // Fixed: the next reload takes it.
    live.install("a");
    server.signal("HUP");
    images += 1;
    assert!(
        server.wait_for_nth_line("Use Ctrl-C to stop", images, deadline_in(EVENT_DEADLINE)),
        "no restart after the fixed certificate{}",
        logs(&server)
    );
    assert_eq!(served_serial(port), pki.serial("a"), "{}", logs(&server));
    assert_same_process(&mut server, pid, images);
    assert!(server.stop().success(), "{}", logs(&server));
    timing(
        "certificates_rotate_on_usr2_and_hup_and_a_bad_one_keeps_the_old",
        started,
    );
}

#[test]
fn cluster_phased_restart_serves_the_new_certificate() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let live = LiveCert::new(pki, "a");
    let docroot = TempDir::docroot();
    let root = docroot.path().to_string_lossy().into_owned();
    // `-w` takes a value the harness does not know: give DIR explicitly.
    let mut server = Server::start(&["-w", "2", "-b", &live.bind(), &root]);
    let port = ssl_port(&server);
    let master = server.pid();
    assert!(
        server.wait_for_nth_line(" booted in ", 2, deadline_in(EVENT_DEADLINE)),
        "the workers did not boot{}",
        logs(&server)
    );
    assert_all_serials(port, &pki.serial("a"), &server);

    for (phase, sig, name) in [(1, "USR1", "b"), (2, "HUP", "c")] {
        if phase == 2 {
            // First an expired certificate: refused, no phased restart.
            live.install("expired");
            server.signal("HUP");
            assert!(
                server.wait_for_stderr(
                    "still serving with the old configuration",
                    deadline_in(EVENT_DEADLINE)
                ),
                "no refusal of the expired certificate{}",
                logs(&server)
            );
            assert!(!server.stdout().contains("phase: 2"), "{}", logs(&server));
            assert_all_serials(port, &pki.serial("b"), &server);
        }
        live.install(name);
        server.signal(sig);
        let done = format!("- Phased restart complete, phase: {phase}\n");
        assert!(
            server.wait_for_line(&done, deadline_in(EVENT_DEADLINE)),
            "no phased restart after SIG{sig}{}",
            logs(&server)
        );
        // The old workers are told to stop once their replacements have
        // booted; wait until only this phase's workers are left.
        let want = workers_of_phase(&server.stdout(), phase);
        assert_eq!(want.len(), 2, "{}", logs(&server));
        let mut seen = Vec::new();
        let only_new = wait_until(deadline_in(EVENT_DEADLINE), || {
            seen = children(master);
            seen == want
        });
        assert!(
            only_new,
            "workers {seen:?}, expected {want:?}{}",
            logs(&server)
        );
        assert_all_serials(port, &pki.serial(name), &server);
    }
    assert_eq!(server.pid(), master);
    assert!(server.stop().success(), "{}", logs(&server));
    timing("cluster_phased_restart_serves_the_new_certificate", started);
}

// ---------------------------------------------------------------------
// 6. Start-up errors
// ---------------------------------------------------------------------

#[test]
fn startup_errors_name_the_file_and_exit_1() {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let docroot = TempDir::docroot();
    let root = docroot.path().to_string_lossy().into_owned();
    let missing = pki.path("no-such-cert.pem");
    let cases = [
        (
            "a missing cert file",
            missing.clone(),
            pki.path("a.key"),
            missing,
        ),
        (
            "a missing key file",
            pki.path("a.pem"),
            pki.path("no-such.key"),
            pki.path("no-such.key"),
        ),
        (
            "a key that does not match",
            pki.path("a.pem"),
            pki.path("stray.key"),
            pki.path("stray.key"),
        ),
        (
            "an expired certificate",
            pki.path("expired.pem"),
            pki.path("expired.key"),
            pki.path("expired.pem"),
        ),
    ];
    for (what, cert, key, named) in cases {
        let bind = format!("ssl://127.0.0.1:0?cert={cert}&key={key}");
        let run = Server::run(&["-b", &bind, &root]);
        assert_eq!(
            run.status.code(),
            Some(1),
            "{what}: exit status {:?}\nstderr:\n{}",
            run.status,
            run.stderr
        );
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: not one line on stderr: {:?}",
            run.stderr
        );
        assert!(
            lines[0].contains(&named),
            "{what}: the error does not name {named}: {}",
            lines[0]
        );
        assert!(
            !run.stdout.contains("Listening on") && !run.stdout.contains("Use Ctrl-C"),
            "{what}: it got as far as listening:\n{}",
            run.stdout
        );
    }
    timing("startup_errors_name_the_file_and_exit_1", started);
}

// ---------------------------------------------------------------------
// 7. Activated sockets (systemd-socket-activate)
// ---------------------------------------------------------------------

#[test]
fn tls_on_a_socket_activated_by_name() {
    let Some(pki) = pki() else { return };
    if !have_socket_activate() {
        return;
    }
    let started = Instant::now();
    let port = free_port();
    let live = LiveCert::new(pki, "a");
    let bind = format!("fd://web?cert={}&key={}", live.cert, live.key);
    let (mut server, _docroot) = activate(port, Some("web"), &["-b", &bind]);
    assert_tls_on_activated_port(pki, port, &server);
    assert_eq!(served_serial(port), pki.serial("a"));
    // A hot restart passes the socket on under its name, with TLS.
    rotate_by_usr2(&mut server, &live, port, "b");
    assert_tls_on_activated_port(pki, port, &server);
    assert!(server.stop().success(), "{}", logs(&server));
    timing("tls_on_a_socket_activated_by_name", started);
}

#[test]
fn only_mode_keeps_the_tls_options_of_a_matching_ssl_bind() {
    let Some(pki) = pki() else { return };
    if !have_socket_activate() {
        return;
    }
    let started = Instant::now();
    let port = free_port();
    let live = LiveCert::new(pki, "a");
    let bind = format!("ssl://127.0.0.1:{port}?cert={}&key={}", live.cert, live.key);
    let (mut server, _docroot) = activate(
        port,
        None,
        &["--bind-to-activated-sockets=only", "-b", &bind],
    );
    assert_tls_on_activated_port(pki, port, &server);
    assert_eq!(served_serial(port), pki.serial("a"));
    // Plain HTTP on it is not served, only told to use TLS: TLS really is
    // on that socket.
    let plain = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", CLIENT_MAX_SECS])
        .arg(format!("http://127.0.0.1:{port}/hello.txt"))
        .output()
        .expect("run curl");
    assert!(
        text(&plain.stdout).contains("sent to an HTTPS port"),
        "plain HTTP served on the TLS socket: {plain:?}"
    );
    // The restarted image matches the socket to the ssl:// bind again.
    rotate_by_usr2(&mut server, &live, port, "b");
    assert_tls_on_activated_port(pki, port, &server);
    assert!(server.stop().success(), "{}", logs(&server));
    timing(
        "only_mode_keeps_the_tls_options_of_a_matching_ssl_bind",
        started,
    );
}

/// The server adopted the activated socket on `port`, says it serves TLS
/// there, and curl gets hello.txt over it.
fn assert_tls_on_activated_port(pki: &Pki, port: u16, server: &Server) {
    let out = server.stdout();
    let images = out.matches("Use Ctrl-C to stop").count();
    for line in [
        format!("* Activated tcp://127.0.0.1:{port}\n"),
        format!("* Listening on ssl://127.0.0.1:{port}\n"),
    ] {
        assert_eq!(
            out.matches(&line).count(),
            images,
            "not once per image: {line:?}{}",
            logs(server)
        );
    }
    assert_https_serves(pki, port, server);
}

/// Installs leaf `name`, sends SIGUSR2, waits for the new image, and
/// checks that it serves leaf `name` on `port`.
fn rotate_by_usr2(server: &mut Server, live: &LiveCert, port: u16, name: &str) {
    let pid = server.pid();
    let images = server.stdout().matches("Use Ctrl-C to stop").count() + 1;
    live.install(name);
    server.signal("USR2");
    assert!(
        server.wait_for_nth_line("Use Ctrl-C to stop", images, deadline_in(EVENT_DEADLINE)),
        "no restart after SIGUSR2{}",
        logs(server)
    );
    assert_eq!(
        served_serial(port),
        live.pki.serial(name),
        "the hot restart did not load the new certificate{}",
        logs(server)
    );
    assert_same_process(server, pid, images);
}

// ---------------------------------------------------------------------
// 8. Real systemd
// ---------------------------------------------------------------------

fn tls_on_a_socket_activated_by_real_systemd_and_rotated_by_reload(systemd: sdsandbox::Systemd) {
    let Some(pki) = pki() else { return };
    let started = Instant::now();
    let dir = sdsandbox::TestDir::new("tls");
    let units = dir.path().join("units");
    let www = dir.path().join("www");
    fs::create_dir_all(&units).expect("create units dir");
    fs::create_dir_all(&www).expect("create docroot");
    fs::write(www.join("hello.txt"), HELLO).expect("write hello.txt");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let ca = dir.path().join("ca.pem");
    let copy = |from: &str, to: &Path| {
        fs::copy(pki.path(from), to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    };
    copy("a.pem", &cert);
    copy("a.key", &key);
    copy("ca.pem", &ca);
    let (cert_s, key_s) = (utf8(&cert), utf8(&key));
    fs::write(
        units.join("tlscat.socket"),
        "[Socket]\nListenStream=127.0.0.1:8443\n",
    )
    .expect("write socket unit");
    fs::write(
        units.join("tlscat.service"),
        format!(
            "[Unit]\n\
             Requires=tlscat.socket\n\
             After=tlscat.socket\n\
             \n\
             [Service]\n\
             Type=notify\n\
             ExecStart={} --bind-to-activated-sockets=only -b {} {}\n\
             ExecReload=/bin/kill -HUP $MAINPID\n",
            quoted(BIN),
            quoted(&format!("ssl://127.0.0.1:8443?cert={cert_s}&key={key_s}")),
            quoted(&utf8(&www)),
        ),
    )
    .expect("write service unit");
    let Some(sb) = sdsandbox::Sandbox::start_or_skip_with(&units, systemd) else {
        return;
    };
    let svc = "tlscat.service";
    sb.systemctl_ok(&["start", "tlscat.socket"]);
    // Type=notify: start returns once READY=1 came.
    sb.systemctl_ok(&["start", svc]);
    let pid = sb.main_pid(svc);
    assert_ne!(pid, 0);
    let url = "https://127.0.0.1:8443/hello.txt";
    let ca_s = utf8(&ca);
    let out = sb.run(&[
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "5",
        "--cacert",
        &ca_s,
        url,
    ]);
    assert!(
        out.status.success(),
        "curl {url} in the sandbox: {out:?}\n{}\n{}",
        sb.journal(svc),
        sb.diagnostics()
    );
    assert_eq!(text(&out.stdout), HELLO);
    let journal = sb.journal_of_pid(pid);
    assert!(
        journal.contains("* Activated tcp://127.0.0.1:8443"),
        "{journal}"
    );
    let serial_inside = || {
        let out = sb.run(&[
            "sh",
            "-c",
            "openssl s_client -connect 127.0.0.1:8443 </dev/null 2>/dev/null \
             | openssl x509 -noout -serial",
        ]);
        text(&out.stdout).trim().to_owned()
    };
    assert_eq!(serial_inside(), pki.serial("a"));

    // Rotation: new files, `systemctl reload` (kill -HUP, asynchronous on
    // systemd 252), the new certificate is served by the same process.
    replace_file(&pki.path("b.pem"), &cert_s);
    replace_file(&pki.path("b.key"), &key_s);
    sb.systemctl_ok(&["reload", svc]);
    let want = pki.serial("b");
    let mut last = String::new();
    sb.wait_for(
        &format!("serial {want} after systemctl reload"),
        sdsandbox::STATE_TIMEOUT,
        || {
            last = serial_inside();
            last == want
        },
    );
    assert_eq!(sb.main_pid(svc), pid, "the reload changed the MainPID");
    let out = sb.run(&[
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "5",
        "--cacert",
        &ca_s,
        url,
    ]);
    assert!(
        out.status.success(),
        "after the reload: {out:?}\n{}",
        sb.journal(svc)
    );
    sb.stop().expect("sandbox stops cleanly");
    timing(
        "tls_on_a_socket_activated_by_real_systemd_and_rotated_by_reload",
        started,
    );
}

// ---------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------

/// The certificates of this test run, made once with the openssl CLI.
///
/// | files                    | what                                          |
/// |--------------------------|-----------------------------------------------|
/// | ca.pem, ca.key           | the CA (ECDSA P-256)                          |
/// | other-ca.pem/.key        | an unrelated CA                               |
/// | a, b, c (.pem, .key)     | server leaves of `ca`, serials 1001/2002/3003 |
/// | expired.pem/.key         | a server leaf of `ca` valid only in Jan 2020  |
/// | client.pem/.key          | a client certificate of `ca`                  |
/// | rogue.pem/.key           | a client certificate of `other-ca`            |
/// | stray.key                | a key no certificate was issued for           |
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// `dir/name` as a string (for command lines and bind URIs).
    fn path(&self, name: &str) -> String {
        utf8(&self.dir.join(name))
    }

    /// An `ssl://127.0.0.1:0` bind serving leaf `name`, plus `extra`
    /// (`&ca=...`).
    fn bind(&self, name: &str, extra: &str) -> String {
        format!(
            "ssl://127.0.0.1:0?cert={}&key={}{extra}",
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key"))
        )
    }

    /// `serial=...` of leaf `name`, as `openssl x509 -serial` prints it.
    fn serial(&self, name: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(self.dir.join(format!("{name}.pem")))
            .output()
            .expect("run openssl x509");
        assert!(out.status.success(), "openssl x509: {out:?}");
        text(&out.stdout).trim().to_owned()
    }

    /// `curl --cacert ca.pem https://127.0.0.1:PORT/PATH` plus `args`.
    fn curl_get(&self, port: u16, path: &str, args: &[&str]) -> Output {
        Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", CLIENT_MAX_SECS])
            .args(["--cacert", &self.path("ca.pem")])
            .args(args)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .stdin(Stdio::null())
            .output()
            .expect("run curl")
    }
}

/// The certificates, or `None` (after saying `skipped:`) without the
/// openssl CLI or curl.
fn pki() -> Option<&'static Pki> {
    static PKI: OnceLock<Option<Pki>> = OnceLock::new();
    let pki = PKI.get_or_init(|| {
        if !runs("openssl", &["version"]) || !runs("curl", &["--version"]) {
            return None;
        }
        remove_stale_fixtures();
        let dir = Path::new(TARGET_TMPDIR).join(format!("{FIXTURE_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        make_certificates(&dir);
        Some(Pki { dir })
    });
    if pki.is_none() {
        skipped("openssl/curl not installed");
    }
    pki.as_ref()
}

/// Removes the fixture directories of earlier runs whose process is gone
/// (a static is never dropped, so a run cannot clean up after itself).
fn remove_stale_fixtures() {
    let Ok(entries) = fs::read_dir(TARGET_TMPDIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(FIXTURE_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn make_certificates(dir: &Path) {
    pki::init(dir, &["ca", "other-ca"]);
    for key in ["a", "b", "c", "expired", "client", "rogue", "stray"] {
        pki::p256_key(dir, key);
    }
    for (name, ext, ca, serial) in [
        ("a", "server_ext", "ca", 1001),
        ("b", "server_ext", "ca", 2002),
        ("c", "server_ext", "ca", 3003),
        ("client", "client_ext", "ca", 5005),
        ("rogue", "client_ext", "other-ca", 6006),
    ] {
        pki::leaf(dir, name, ext, ca, serial);
    }
    pki::openssl(
        dir,
        "req -new -config openssl.cnf -key expired.key -subj /CN=localhost -out expired.csr",
    );
    pki::dated(
        dir,
        "expired",
        "ca",
        "expired",
        "20200101000000Z",
        "20200102000000Z",
    );
}

/// A certificate and key at fixed paths whose contents a test replaces.
struct LiveCert {
    _dir: TempDir,
    pki: &'static Pki,
    cert: String,
    key: String,
}

impl LiveCert {
    fn new(pki: &'static Pki, name: &str) -> LiveCert {
        let dir = TempDir::new("tls-live");
        let live = LiveCert {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            _dir: dir,
            pki,
        };
        live.install(name);
        live
    }

    /// Puts leaf `name` (certificate and key) at the live paths.
    fn install(&self, name: &str) {
        replace_file(&self.pki.path(&format!("{name}.pem")), &self.cert);
        replace_file(&self.pki.path(&format!("{name}.key")), &self.key);
    }

    fn bind(&self) -> String {
        format!("ssl://127.0.0.1:0?cert={}&key={}", self.cert, self.key)
    }
}

/// Copies `from` over `to` atomically (a temporary file, then rename), as
/// certificate renewal tools do.
fn replace_file(from: &str, to: &str) {
    let tmp = format!("{to}.new");
    fs::copy(from, &tmp).unwrap_or_else(|e| panic!("copy {from} to {tmp}: {e}"));
    fs::rename(&tmp, to).unwrap_or_else(|e| panic!("rename {tmp} to {to}: {e}"));
}

// ---------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------

/// The serial of the certificate the server at `port` presents, as
/// `openssl s_client ... | openssl x509 -noout -serial` prints it.
fn served_serial(port: u16) -> String {
    let hello = Command::new("timeout")
        .args([CLIENT_MAX_SECS, "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    let mut input = x509.stdin.take().expect("stdin is piped");
    // x509 reads everything before it answers: no deadlock.
    let _ = input.write_all(&hello.stdout);
    drop(input);
    let out = x509.wait_with_output().expect("openssl x509");
    assert!(
        out.status.success(),
        "no certificate from 127.0.0.1:{port}: s_client {:?}\n{}",
        hello.status,
        text(&hello.stderr)
    );
    text(&out.stdout).trim().to_owned()
}

/// `openssl s_client -quiet` (no verification) sending `input`, then
/// reading until the server closes.
fn s_client_quiet(port: u16, version: &str, input: &[u8]) -> Output {
    let mut child = Command::new("timeout")
        .args([
            CLIENT_MAX_SECS,
            "openssl",
            "s_client",
            "-quiet",
            version,
            "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // s_client sends what it read once the handshake is done; -quiet
    // (which implies -ign_eof) keeps reading after our end of input.
    stdin.write_all(input).expect("write to s_client");
    drop(stdin);
    child.wait_with_output().expect("wait for s_client")
}

/// `openssl s_client` that completes the handshake and then sends nothing
/// (its stdin stays open) until the server closes.
struct IdleTlsClient {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    exited: Option<std::process::ExitStatus>,
}

impl IdleTlsClient {
    fn start(port: u16, ca: &str) -> IdleTlsClient {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-CAfile",
                ca,
                "-connect",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl s_client");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        IdleTlsClient {
            child,
            stderr_lines: rx,
            exited: None,
        }
    }

    /// Waits for s_client's report of the verified server certificate
    /// (`verify return:1` for depth 0), which comes with the handshake.
    fn wait_handshake(&mut self, deadline: Instant) {
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.trim() == "verify return:1"
                        && seen
                            .last()
                            .is_some_and(|l: &String| l.starts_with("depth=0"));
                    seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(e) => panic!("s_client did not complete a handshake ({e}): {seen:?}"),
            }
        }
    }

    fn running(&mut self) -> bool {
        self.exited.is_none() && self.child.try_wait().expect("waitpid").is_none()
    }

    fn wait_exit(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        wait_until(deadline, || {
            if self.exited.is_none() {
                self.exited = self.child.try_wait().expect("waitpid");
            }
            self.exited.is_some()
        });
        self.exited
    }
}

impl Drop for IdleTlsClient {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the server has not closed `s` (no EOF, no reset, no bytes).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("O_NONBLOCK");
    let mut buf = [0u8; 1];
    let open = matches!(s.peek(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).expect("blocking again");
    open
}

/// Whether `bytes` are exactly one TLS alert record (content type 21,
/// a two-byte alert: level and description).
fn is_tls_alert(bytes: &[u8]) -> bool {
    matches!(bytes, [21, 3, 1..=4, 0, 2, 1 | 2, _])
}

/// `curl --cacert` gets hello.txt from `port`.
fn assert_https_serves(pki: &Pki, port: u16, server: &Server) {
    let out = pki.curl_get(port, "/hello.txt", &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stderr),
        logs(server)
    );
    assert_eq!(text(&out.stdout), HELLO);
}

/// Several new connections all present the certificate with `serial`
/// (in cluster mode each may land on another worker).
fn assert_all_serials(port: u16, serial: &str, server: &Server) {
    for i in 0..6 {
        assert_eq!(
            served_serial(port),
            serial,
            "connection {i}{}",
            logs(server)
        );
    }
}

// ---------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------

/// The `ssl://` port the server printed in `* Listening on ssl://...`.
fn ssl_port(server: &Server) -> u16 {
    server
        .listening()
        .iter()
        .find_map(|u| u.strip_prefix("ssl://")?.rsplit_once(':')?.1.parse().ok())
        .unwrap_or_else(|| panic!("no `* Listening on ssl://...` line{}", logs(server)))
}

/// The process is still `pid`, alive, and each of its `images` printed
/// that pid (a hot restart execs in place).
fn assert_same_process(server: &mut Server, pid: u32, images: usize) {
    assert_eq!(server.pid(), pid);
    assert!(
        server.exit_status_now().is_none(),
        "the server exited{}",
        logs(server)
    );
    let out = server.stdout();
    assert_eq!(
        out.matches(&format!("*          PID: {pid}\n")).count(),
        images,
        "{}",
        logs(server)
    );
}

/// The pids of the workers booted in `phase`, sorted.
fn workers_of_phase(log: &str, phase: u32) -> Vec<u32> {
    let suffix = format!(", phase: {phase}");
    let mut pids: Vec<u32> = log
        .lines()
        .filter(|l| {
            l.starts_with("- Worker ") && l.contains(") booted in ") && l.ends_with(&suffix)
        })
        .filter_map(|l| l.split_once("(PID: ")?.1.split_once(')')?.0.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// The children of `pid`, sorted (zombies included until reaped).
fn children(pid: u32) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn have_socket_activate() -> bool {
    let ok = runs("systemd-socket-activate", &["--version"]);
    if !ok {
        skipped("systemd-socket-activate is not installed");
    }
    ok
}

/// `systemd-socket-activate -l 127.0.0.1:PORT [--fdname=NAME] -- catamount
/// ARGS DOCROOT`, started by a first connection (systemd-socket-activate
/// runs the service only once a client connects), and ready.
fn activate(port: u16, fdname: Option<&str>, args: &[&str]) -> (Server, TempDir) {
    let docroot = TempDir::docroot();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}")]);
    if let Some(n) = fdname {
        cmd.arg(format!("--fdname={n}"));
    }
    cmd.arg("--").arg(BIN).args(args).arg(docroot.path());
    let first = std::thread::spawn(move || {
        // It may not listen yet: retry until a deadline.
        support::connect_by(port, deadline_in(EVENT_DEADLINE))
    });
    let server = Server::start_command(cmd);
    // That first client sent no ClientHello; the server drops it on EOF.
    drop(first.join().expect("first connection"));
    (server, docroot)
}

// ---------------------------------------------------------------------
// Small things
// ---------------------------------------------------------------------

/// Whether `program args` runs and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Says `skipped: <reason> (<test>)` on the process's stderr directly, not
/// through `eprintln!`, which the test runner hides for a passing test.
fn skipped(reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let _ = writeln!(io::stderr(), "skipped: {reason} ({test})");
}

/// Reports how long a test took (shown with --nocapture).
fn timing(test: &str, started: Instant) {
    eprintln!("timing: {test}: {} ms", started.elapsed().as_millis());
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn utf8(p: &Path) -> String {
    p.to_str().expect("test paths are UTF-8").to_owned()
}

/// `s` quoted for a unit file's command line (systemd.service(5),
/// "Command lines").
fn quoted(s: &str) -> String {
    assert!(
        !s.contains(['"', '\\', '%', '$', '\n', '\'']),
        "test path needs more quoting than this helper does: {s:?}"
    );
    format!("\"{s}\"")
}

/// The server's output, for assertion messages.
fn logs(s: &Server) -> String {
    format!("\n--- stdout:\n{}--- stderr:\n{}", s.stdout(), s.stderr())
}

on_both_systemds!(tls_on_a_socket_activated_by_real_systemd_and_rotated_by_reload);
