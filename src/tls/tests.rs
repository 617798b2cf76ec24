//! TLS sessions against rustls clients over real sockets, certificate
//! loading and its errors, and the DER date walker.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::looks_like_plain_http;
use super::validity::*;
use super::*;
use crate::date::days_from_civil;
use crate::sys::{self, Interest};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Every test's socket wait ends by then, so a bug fails instead of hanging.
const TEST_DEADLINE: Duration = Duration::from_secs(10);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
type Versions = &'static [&'static SupportedProtocolVersion];
static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];

// ---- fixtures: certificates made with the openssl CLI, once per run ----

/// The directory of generated certificates, or `None` (the test then
/// prints "skipped" and returns) when the openssl CLI is missing.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        Command::new("openssl").arg("version").output().ok()?;
        remove_stale_fixtures();
        let dir = fixture_parent().join(format!("{FIXTURE_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fixture directory");
        make_certificates(&dir);
        Some(dir)
    });
    if dir.is_none() {
        eprintln!("skipped: the openssl CLI is not installed; the TLS tests need it");
    }
    dir.as_deref()
}

const FIXTURE_PREFIX: &str = "catamount-tls-";

/// Where the fixtures go: beside the test binary, in cargo's target
/// directory (issue 12: test runs leave nothing in /tmp); TMPDIR only
/// when the binary's directory is unknown.
fn fixture_parent() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
}

/// Removes the fixture directories of earlier test runs whose process
/// is gone (a static is never dropped, so a run cannot clean up after
/// itself).
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir(fixture_parent()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(FIXTURE_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

use super::test_pki as pki;

fn make_certificates(dir: &Path) {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).expect("write a fixture file");
    };
    write("empty.pem", "nothing to see here\n");
    write(
        "garbage-cert.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    write("unterminated.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    // The CA (PKCS#8 EC key) and a second, unrelated one.
    pki::init(dir, &["ca", "rogue-ca"]);
    let o = |args: &str| pki::openssl(dir, args);
    // Server keys in the three encodings rustls reads, client keys.
    o("ecparam -name prime256v1 -genkey -noout -out sec1.key");
    o("genrsa -traditional -out pkcs1.key 2048");
    for key in ["pkcs8", "client", "rogue-client"] {
        pki::p256_key(dir, key);
    }
    for (name, ext, ca) in [
        ("sec1", "server_ext", "ca"),
        ("pkcs1", "server_ext", "ca"),
        ("pkcs8", "server_ext", "ca"),
        ("client", "client_ext", "ca"),
        ("rogue-client", "client_ext", "rogue-ca"),
    ] {
        pki::leaf(dir, name, ext, ca, 7);
    }
    // 2099 is beyond UTCTime, so that certificate carries
    // GeneralizedTime.
    pki::dated(
        dir,
        "sec1",
        "ca",
        "expired",
        "20200101000000Z",
        "20200102000000Z",
    );
    pki::dated(
        dir,
        "sec1",
        "ca",
        "future",
        "20990101000000Z",
        "20991231235959Z",
    );
    o("pkcs8 -topk8 -in sec1.key -passout pass:secret -out encrypted.key");
}

fn opts(dir: &Path, cert: &str, key: &str) -> TlsOptions {
    TlsOptions {
        cert: dir.join(cert),
        key: dir.join(key),
        ca: None,
        verify: VerifyMode::None,
        min_version: MinVersion::Tls12,
    }
}

fn server_config(dir: &Path, verify: VerifyMode, min_version: MinVersion) -> Arc<ServerConfig> {
    let mut o = opts(dir, "sec1.pem", "sec1.key");
    o.verify = verify;
    o.min_version = min_version;
    if verify != VerifyMode::None {
        o.ca = Some(dir.join("ca.pem"));
    }
    load(&o).expect("load the server configuration")
}

fn load_err(o: &TlsOptions) -> String {
    match load(o) {
        Ok(_) => panic!("load({o:?}) succeeded"),
        Err(e) => e.to_string(),
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    let cert = CertificateDer::from_pem_file(path).expect("fixture certificate");
    cert.as_ref().to_vec()
}

// ---- a rustls client against a TlsConn server ----

/// A rustls client trusting `ca.pem`, offering ALPN h2 and http/1.1,
/// with `identity` (`NAME` for NAME.pem and NAME.key) as client
/// certificate if given.
fn client(dir: &Path, versions: Versions, identity: Option<&str>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).expect("ca.pem");
    roots.add(ca).expect("add the CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("client versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let cert = CertificateDer::from_pem_file(dir.join(format!("{name}.pem")));
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key")));
            builder
                .with_client_auth_cert(vec![cert.expect("client cert")], key.expect("key"))
                .expect("client auth config")
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

fn client_session(config: Arc<ClientConfig>) -> ClientConnection {
    let name = ServerName::try_from("localhost").expect("server name");
    ClientConnection::new(config, name).expect("client session")
}

/// What the server side saw of one exchange.
#[derive(Debug)]
struct Served {
    version: Option<&'static str>,
    alpn: Option<Vec<u8>>,
    peer_cert: bool,
    request: Vec<u8>,
}

fn wait(fd: BorrowedFd<'_>, interest: Interest, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if sys::wait_fd(fd, interest, left)? {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "test deadline passed",
        ))
    }
}

/// What the reactor does: step, wait for what the step asks, repeat.
fn drive_handshake(tls: &mut TlsConn, fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<()> {
    loop {
        match tls.handshake_step(fd)? {
            HandshakeState::Done => return Ok(()),
            HandshakeState::WantRead => wait(fd, Interest::Read, deadline)?,
            HandshakeState::WantWrite => wait(fd, Interest::Write, deadline)?,
        }
    }
}

/// What a pool thread does: read_plain until a head is complete, the
/// peer closes, or `want` bytes arrived; wait for readability between.
fn read_at_least(
    tls: &mut TlsConn,
    fd: BorrowedFd<'_>,
    want: usize,
) -> io::Result<(Vec<u8>, usize)> {
    let deadline = Instant::now() + TEST_DEADLINE;
    let mut buf = Vec::new();
    let mut largest = 0;
    while buf.len() < want && !contains(&buf, b"\r\n\r\n") {
        match tls.read_plain(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => largest = largest.max(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(fd, Interest::Read, deadline)?,
            Err(e) => return Err(e),
        }
    }
    Ok((buf, largest))
}

/// Accepts one connection on a thread: handshake, read a head, answer
/// `RESPONSE`, close_notify.
fn serve_one(config: Arc<ServerConfig>, listener: TcpListener) -> JoinHandle<io::Result<Served>> {
    std::thread::spawn(move || {
        let (sock, _) = listener.accept()?;
        sock.set_nonblocking(true)?;
        let fd = sock.as_fd();
        let mut tls = TlsConn::new(&config).map_err(io::Error::other)?;
        drive_handshake(&mut tls, fd, Instant::now() + TEST_DEADLINE)?;
        let (request, _) = read_at_least(&mut tls, fd, usize::MAX)?;
        tls.write_plain(fd, RESPONSE, TEST_DEADLINE)?;
        tls.close_notify(fd);
        Ok(Served {
            version: tls.protocol_version(),
            alpn: tls.alpn().map(<[u8]>::to_vec),
            peer_cert: tls.peer_has_certificate(),
            request,
        })
    })
}

/// One request over loopback TCP from a rustls client: both sides' results.
fn exchange(
    config: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> (io::Result<Served>, io::Result<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = serve_one(config, listener);
    let response = (|| {
        let sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(TEST_DEADLINE))?;
        let mut stream = StreamOwned::new(client_session(client), sock);
        stream.write_all(REQUEST)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    })();
    (server.join().expect("server thread"), response)
}

fn assert_round_trip(
    (served, response): (io::Result<Served>, io::Result<Vec<u8>>),
    version: &str,
    peer_cert: bool,
) {
    let served = served.expect("server side");
    assert_eq!(response.expect("client side"), RESPONSE);
    assert_eq!(served.version, Some(version));
    assert_eq!(served.alpn.as_deref(), Some(ALPN_HTTP11));
    assert_eq!(served.peer_cert, peer_cert);
    assert_eq!(served.request, REQUEST);
}

/// Both sides failed; returns the server's error text.
fn assert_refused((served, response): (io::Result<Served>, io::Result<Vec<u8>>)) -> String {
    let err = served.expect_err("the server must refuse");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    response.expect_err("the client must fail too");
    err.to_string()
}

// ---- parse_query ----

#[test]
fn parse_query_full_and_defaults() {
    let o = TlsOptions::parse_query(&[
        ("cert", "/c.pem"),
        ("key", "/k.pem"),
        ("ca", "/ca.pem"),
        ("verify_mode", "force_peer"),
        ("min_version", "TLSv1.3"),
    ])
    .expect("valid options");
    assert_eq!(o.cert, Path::new("/c.pem"));
    assert_eq!(o.key, Path::new("/k.pem"));
    assert_eq!(o.ca.as_deref(), Some(Path::new("/ca.pem")));
    assert_eq!(o.verify, VerifyMode::ForcePeer);
    assert_eq!(o.min_version, MinVersion::Tls13);

    let o = TlsOptions::parse_query(&[("key", "k"), ("cert", "c")]).expect("minimal");
    assert_eq!(
        (o.verify, o.min_version, o.ca),
        (VerifyMode::None, MinVersion::Tls12, None)
    );
    let o = TlsOptions::parse_query(&[("cert", "c"), ("key", "k"), ("min_version", "tlsv1.2")])
        .expect("versions are case-insensitive");
    assert_eq!(o.min_version, MinVersion::Tls12);
}

#[test]
fn parse_query_errors_name_the_parameter() {
    let err = |p: &[(&str, &str)]| TlsOptions::parse_query(p).expect_err("must fail");
    let ck = [("cert", "c"), ("key", "k")];
    let with = |extra: (&'static str, &'static str)| [ck[0], ck[1], extra];
    assert_eq!(
        err(&[("key", "k")]),
        "ssl:// bind needs cert=PATH, a PEM file with the server certificate"
    );
    assert_eq!(
        err(&[("cert", "c")]),
        "ssl:// bind needs key=PATH, a PEM file with the certificate's private key"
    );
    assert_eq!(
        err(&with(("verify", "peer"))),
        "unknown ssl:// option \"verify\"; expected one of cert, key, ca, verify_mode, \
         min_version"
    );
    assert_eq!(
        err(&with(("verify_mode", "strict"))),
        "ssl:// option verify_mode=\"strict\" is not understood; expected none, peer or \
         force_peer"
    );
    assert_eq!(
        err(&with(("min_version", "TLSv1.1"))),
        "ssl:// option min_version=\"TLSv1.1\" is not understood; expected TLSv1.2 or \
         TLSv1.3 (older versions are never offered)"
    );
    assert_eq!(
        err(&with(("cert", "d"))),
        "ssl:// option cert= is given twice; keep one"
    );
    assert_eq!(
        err(&with(("ca", ""))),
        "ssl:// option ca= is empty; give it a value"
    );
    for mode in ["peer", "force_peer"] {
        assert_eq!(
            err(&with(("verify_mode", mode))),
            format!(
                "ssl:// option verify_mode={mode} needs ca=PATH, the CA that issues client \
                 certificates; add ca= or use verify_mode=none"
            )
        );
    }
}

// ---- load ----

#[test]
fn loads_pkcs8_pkcs1_and_sec1_keys() {
    let Some(dir) = fixtures() else { return };
    for name in ["sec1", "pkcs1", "pkcs8"] {
        let config = load(&opts(dir, &format!("{name}.pem"), &format!("{name}.key")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.alpn_protocols, vec![ALPN_HTTP11.to_vec()]);
    }
    for verify in [VerifyMode::Peer, VerifyMode::ForcePeer] {
        server_config(dir, verify, MinVersion::Tls13);
    }
}

#[test]
fn load_errors_name_the_file_and_the_fix() {
    let Some(dir) = fixtures() else { return };
    let d = dir.display();
    let err = |cert: &str, key: &str| load_err(&opts(dir, cert, key));

    assert_eq!(
        err("missing.pem", "sec1.key"),
        format!(
            "cannot read {d}/missing.pem (No such file or directory (os error 2)); \
             check the ssl:// option cert="
        )
    );
    assert_eq!(
        err("sec1.pem", "missing.key"),
        format!(
            "cannot read {d}/missing.key (No such file or directory (os error 2)); \
             check the ssl:// option key="
        )
    );
    assert_eq!(
        err("empty.pem", "sec1.key"),
        format!(
            "no certificate in {d}/empty.pem; cert= must name a PEM file that starts with \
             the server certificate (-----BEGIN CERTIFICATE-----), then its intermediates"
        )
    );
    let msg = err("sec1.key", "sec1.key");
    assert!(
        msg.starts_with(&format!("no certificate in {d}/sec1.key;")),
        "{msg}"
    );
    assert_eq!(
        err("sec1.pem", "sec1.pem"),
        format!(
            "no private key in {d}/sec1.pem; key= must name a PEM file with a PKCS#8, \
             PKCS#1 (RSA) or SEC1 (EC) private key"
        )
    );
    assert_eq!(
        err("sec1.pem", "encrypted.key"),
        format!(
            "the private key in {d}/encrypted.key is encrypted; store it decrypted \
             (openssl pkey -in {d}/encrypted.key -out PLAIN.key) and point key= at that file"
        )
    );
    let msg = err("unterminated.pem", "sec1.key");
    assert!(msg.starts_with(&format!("{d}/unterminated.pem is not a valid PEM file (")));
    assert!(
        msg.ends_with("); the ssl:// option cert= must name a PEM file"),
        "{msg}"
    );
    // Another key of the same algorithm, and one of another algorithm.
    for key in ["pkcs8.key", "pkcs1.key"] {
        assert_eq!(
            err("sec1.pem", key),
            format!(
                "the private key in {d}/{key} does not match the first certificate in \
                 {d}/sec1.pem; point key= at the key the certificate was issued for, \
                 and put the server certificate first in cert="
            )
        );
    }
    let msg = err("garbage-cert.pem", "sec1.key");
    assert!(msg.starts_with(&format!(
        "cannot parse the certificate in {d}/garbage-cert.pem ("
    )));
    assert!(
        msg.ends_with("); cert= must name a PEM X.509 certificate"),
        "{msg}"
    );
    assert_eq!(
        err("expired.pem", "sec1.key"),
        format!(
            "the certificate in {d}/expired.pem expired on 2020-01-02 00:00:00 UTC; \
             renew it and restart"
        )
    );
    assert_eq!(
        err("future.pem", "sec1.key"),
        format!(
            "the certificate in {d}/future.pem is not valid before 2099-01-01 00:00:00 UTC; \
             check the system clock or use a certificate that is valid now"
        )
    );

    let mut o = opts(dir, "sec1.pem", "sec1.key");
    o.verify = VerifyMode::Peer;
    assert_eq!(
        load_err(&o),
        "ssl:// option verify_mode=peer needs ca=PATH, the CA that issues client \
         certificates; add ca= or use verify_mode=none"
    );
    o.ca = Some(dir.join("empty.pem"));
    assert_eq!(
        load_err(&o),
        format!(
            "no certificate in {d}/empty.pem; ca= must name a PEM file with the CA \
             certificate(s) that issue client certificates"
        )
    );
    o.ca = Some(dir.join("garbage-cert.pem"));
    let msg = load_err(&o);
    assert!(msg.starts_with(&format!(
        "cannot use the CA certificates in {d}/garbage-cert.pem ("
    )));
    assert!(
        msg.ends_with("); ca= must name PEM X.509 CA certificates"),
        "{msg}"
    );
    o.ca = Some(dir.join("missing-ca.pem"));
    assert!(load_err(&o).ends_with("; check the ssl:// option ca="));
}

// ---- plain HTTP on a TLS port ----

#[test]
fn first_bytes_of_plain_http_and_of_tls() {
    for b in b"GET POST OPTIONS PRI\r\nget"
        .iter()
        .filter(|b| **b != b' ')
    {
        assert!(looks_like_plain_http(*b), "{b:#x}");
    }
    // Record content types 20-24, an SSLv2 hello, other bytes.
    for b in [20u8, 21, 22, 23, 24, 0x80, 0x00, b' ', b'1', 0xff] {
        assert!(!looks_like_plain_http(b), "{b:#x}");
    }
}

#[test]
fn plain_http_is_told_from_a_bad_handshake_and_answered_in_plain() {
    let Some(dir) = fixtures() else { return };
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let cases: [(&[u8], bool); 3] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (b"\r\nPOST / HTTP/1.0\r\n\r\n", true),
        (b"\x00\x01 not TLS, not HTTP\r\n\r\n", false),
    ];
    for (sent, plain) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client
            .set_read_timeout(Some(TEST_DEADLINE))
            .expect("timeout");
        client.write_all(sent).expect("send");
        let (sock, _) = listener.accept().expect("accept");
        sock.set_nonblocking(true).expect("O_NONBLOCK");
        let fd = sock.as_fd();
        let mut tls = TlsConn::new(&config).expect("session");
        let err = drive_handshake(&mut tls, fd, Instant::now() + TEST_DEADLINE)
            .expect_err("not a TLS client");
        assert_eq!(is_plain_http(&err), plain, "{err}");
        if plain {
            answer_plain_http(fd);
        }
        drop((tls, sock));
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("the answer, then EOF");
        let got = String::from_utf8_lossy(&got);
        if plain {
            // Nothing from rustls before it: the answer alone.
            assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got:?}");
            assert!(got.contains("\r\nConnection: close\r\n"), "{got:?}");
            assert!(got.ends_with(PLAIN_HTTP_BODY), "{got:?}");
            let length = format!("\r\nContent-Length: {}\r\n", PLAIN_HTTP_BODY.len());
            assert!(got.contains(&length), "{got:?}");
        } else {
            assert!(!got.contains("HTTP/1.1"), "{got:?}");
        }
    }
}

// ---- handshakes and round trips ----

#[test]
fn tls12_and_tls13_round_trips() {
    let Some(dir) = fixtures() else { return };
    let config = || server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let (v12, v13): (Versions, Versions) = (&TLS12, &TLS13_ONLY);
    assert_round_trip(exchange(config(), client(dir, v12, None)), "TLSv1.2", false);
    assert_round_trip(exchange(config(), client(dir, v13, None)), "TLSv1.3", false);
    // An RSA (PKCS#1) server key with the TLS 1.2 RSA suites.
    let rsa = load(&opts(dir, "pkcs1.pem", "pkcs1.key")).expect("RSA configuration");
    assert_round_trip(exchange(rsa, client(dir, v12, None)), "TLSv1.2", false);
}

#[test]
fn min_version_tls13_refuses_a_tls12_only_client() {
    let Some(dir) = fixtures() else { return };
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls13);
    let msg = assert_refused(exchange(config, client(dir, &TLS12, None)));
    assert!(msg.contains("peer is incompatible"), "{msg}");
}

#[test]
fn force_peer_requires_a_certificate_from_the_ca() {
    let Some(dir) = fixtures() else { return };
    let config = || server_config(dir, VerifyMode::ForcePeer, MinVersion::Tls12);
    for (versions, name) in [(&TLS12[..], "TLSv1.2"), (&TLS13_ONLY[..], "TLSv1.3")] {
        let msg = assert_refused(exchange(config(), client(dir, versions, None)));
        assert!(msg.contains("peer sent no certificates"), "{name}: {msg}");
        let rogue = client(dir, versions, Some("rogue-client"));
        let msg = assert_refused(exchange(config(), rogue));
        assert!(msg.contains("UnknownIssuer"), "{name}: {msg}");
        let good = client(dir, versions, Some("client"));
        assert_round_trip(exchange(config(), good), name, true);
    }
}

#[test]
fn peer_accepts_clients_with_and_without_certificates() {
    let Some(dir) = fixtures() else { return };
    let config = || server_config(dir, VerifyMode::Peer, MinVersion::Tls12);
    let v13: Versions = &TLS13_ONLY;
    assert_round_trip(exchange(config(), client(dir, v13, None)), "TLSv1.3", false);
    let good = client(dir, v13, Some("client"));
    assert_round_trip(exchange(config(), good), "TLSv1.3", true);
    // Offered but from another CA: refused in peer mode too.
    let msg = assert_refused(exchange(
        config(),
        client(dir, &TLS12, Some("rogue-client")),
    ));
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    // verify_mode=none does not ask, so the client sends no certificate.
    let none = server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let good = client(dir, v13, Some("client"));
    assert_round_trip(exchange(none, good), "TLSv1.3", false);
}

/// Large bodies both ways: read_plain across many records and its
/// per-call cap; write_plain waiting for writability.
#[test]
fn large_transfers_both_ways() {
    let Some(dir) = fixtures() else { return };
    const UP: usize = 300 * 1024;
    const DOWN: usize = 2 * 1024 * 1024;
    let pattern = |len: usize, m: usize| (0..len).map(|i| (i % m) as u8).collect::<Vec<u8>>();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let server = std::thread::spawn(move || -> io::Result<(Vec<u8>, usize)> {
        let (sock, _) = listener.accept()?;
        sock.set_nonblocking(true)?;
        let fd = sock.as_fd();
        let mut tls = TlsConn::new(&config).map_err(io::Error::other)?;
        drive_handshake(&mut tls, fd, Instant::now() + TEST_DEADLINE)?;
        let upload = read_at_least(&mut tls, fd, UP)?;
        tls.write_plain(fd, &pattern(DOWN, 253), TEST_DEADLINE)?;
        tls.close_notify(fd);
        Ok(upload)
    });
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(TEST_DEADLINE))
        .expect("set a read timeout");
    let session = client_session(client(dir, &TLS13_ONLY, None));
    let mut stream = StreamOwned::new(session, sock);
    stream.write_all(&pattern(UP, 251)).expect("upload");
    let mut down = Vec::new();
    stream.read_to_end(&mut down).expect("download");
    let (up, largest_read) = server.join().expect("server thread").expect("server side");
    assert!(
        up == pattern(UP, 251),
        "upload corrupted ({} bytes)",
        up.len()
    );
    assert!(
        down == pattern(DOWN, 253),
        "download corrupted ({} bytes)",
        down.len()
    );
    assert!(
        largest_read <= MAX_PLAIN_PER_READ + PLAIN_CHUNK,
        "read_plain returned {largest_read} bytes in one call"
    );
}

/// Pumps a client session over a non-blocking socket: send what is
/// pending, read what is there, process, send again.
fn pump(client: &mut ClientConnection, sock: &mut UnixStream) {
    loop {
        match client.read_tls(sock) {
            Ok(0) => break,
            Ok(_) => {
                client
                    .process_new_packets()
                    .expect("client processes records");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("client read: {e}"),
        }
    }
    while client.wants_write() {
        client.write_tls(sock).expect("client write");
    }
}

/// A server session over one end of a non-blocking socket pair, the
/// other end for a client driven by [`pump`].
fn session_pair(dir: &Path) -> (UnixStream, UnixStream, TlsConn) {
    let (server_sock, client_sock) = UnixStream::pair().expect("socketpair");
    server_sock.set_nonblocking(true).expect("nonblocking");
    client_sock.set_nonblocking(true).expect("nonblocking");
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let tls = TlsConn::new(&config).expect("server session");
    (server_sock, client_sock, tls)
}

/// A TLS 1.3 client's `Finished` and its request arrive in one read:
/// the request is inside rustls when the handshake reports `Done`, and
/// the socket is empty. read_plain must still return it.
#[test]
fn request_arriving_with_the_handshake_is_not_stranded() {
    let Some(dir) = fixtures() else { return };
    let (server_sock, mut client_sock, mut tls) = session_pair(dir);
    let fd = server_sock.as_fd();
    let mut client = client_session(client(dir, &TLS13_ONLY, None));
    // rustls holds it until its handshake completes, then sends it right
    // after the client's Finished.
    client
        .writer()
        .write_all(REQUEST)
        .expect("queue the request");

    pump(&mut client, &mut client_sock); // ClientHello
    assert_eq!(
        tls.handshake_step(fd).expect("server flight"),
        HandshakeState::WantRead
    );
    pump(&mut client, &mut client_sock); // Finished + request
    assert!(!client.is_handshaking());
    assert_eq!(
        tls.handshake_step(fd).expect("finish"),
        HandshakeState::Done
    );
    assert!(
        tls.has_buffered_plaintext(),
        "the request came with Finished"
    );
    let readable = sys::wait_fd(fd, Interest::Read, Duration::ZERO).expect("poll");
    assert!(!readable, "the socket is empty: waiting for it would hang");

    let mut out = Vec::new();
    assert_eq!(
        tls.read_plain(fd, &mut out).expect("buffered request"),
        REQUEST.len()
    );
    assert_eq!(out, REQUEST);
    assert!(!tls.has_buffered_plaintext());
    let err = tls.read_plain(fd, &mut out).expect_err("nothing more");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    // close_notify reads as Ok(0), and stays so.
    client.send_close_notify();
    pump(&mut client, &mut client_sock);
    assert_eq!(tls.read_plain(fd, &mut out).expect("close_notify"), 0);
    assert!(tls.peer_closed());
    assert_eq!(tls.read_plain(fd, &mut out).expect("still closed"), 0);
}

/// A TLS 1.3 session over a socket pair with its handshake done and the
/// client's socket drained: server socket, client socket, server
/// session, client session.
fn handshaken(dir: &Path) -> (UnixStream, UnixStream, TlsConn, ClientConnection) {
    let (server_sock, mut client_sock, mut tls) = session_pair(dir);
    let mut client = client_session(client(dir, &TLS13_ONLY, None));
    pump(&mut client, &mut client_sock); // ClientHello
    tls.handshake_step(server_sock.as_fd())
        .expect("server flight");
    pump(&mut client, &mut client_sock); // Finished
    assert_eq!(
        tls.handshake_step(server_sock.as_fd()).expect("finish"),
        HandshakeState::Done
    );
    pump(&mut client, &mut client_sock); // session tickets, if any
    (server_sock, client_sock, tls, client)
}

/// The records a client session makes of `data`, not sent.
fn sealed(client: &mut ClientConnection, data: &[u8]) -> Vec<u8> {
    client.writer().write_all(data).expect("queue plaintext");
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).expect("encrypt");
    }
    wire
}

/// read_plain returns after a short read, without asking the socket
/// again: a record cut anywhere gives nothing (WouldBlock) until the rest
/// arrives, then the whole plaintext, once.
#[test]
fn a_record_cut_anywhere_is_read_whole_once_the_rest_arrives() {
    let Some(dir) = fixtures() else { return };
    let (server_sock, mut client_sock, mut tls, mut client) = handshaken(dir);
    let fd = server_sock.as_fd();
    let request = vec![b'a'; 9000];
    for cut in [1, 5, 4096, 4100, 8192, 9000] {
        let wire = sealed(&mut client, &request);
        client_sock.write_all(&wire[..cut]).expect("first part");
        let mut out = Vec::new();
        let err = tls
            .read_plain(fd, &mut out)
            .expect_err("a part of a record");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "cut at {cut}");
        client_sock.write_all(&wire[cut..]).expect("the rest");
        assert_eq!(tls.read_plain(fd, &mut out).expect("whole"), request.len());
        assert!(out == request, "cut at {cut}: plaintext differs");
        let err = tls.read_plain(fd, &mut out).expect_err("nothing more");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}

/// 200 KB of records fed in whatever pieces the socket takes arrive
/// intact, however the reads fall.
#[test]
fn many_records_arriving_in_pieces_read_intact() {
    let Some(dir) = fixtures() else { return };
    let (server_sock, mut client_sock, mut tls, mut client) = handshaken(dir);
    let fd = server_sock.as_fd();
    let data: Vec<u8> = (0..200_000).map(|i| (i % 251) as u8).collect();
    let wire: Vec<u8> = data
        .chunks(30_000)
        .flat_map(|c| sealed(&mut client, c))
        .collect();
    let (mut sent, mut got) = (0, Vec::new());
    let deadline = Instant::now() + TEST_DEADLINE;
    while got.len() < data.len() {
        assert!(Instant::now() < deadline, "stuck at {} bytes", got.len());
        match client_sock.write(&wire[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("client write: {e}"),
        }
        match tls.read_plain(fd, &mut got) {
            Ok(n) => assert!(n > 0, "no close was sent"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read_plain: {e}"),
        }
    }
    assert!(got == data, "plaintext differs");
}

/// Data and then a close (close_notify, or TCP EOF without one) read as
/// the data, then 0; after close_notify in the same read, the data comes
/// with the close already seen.
#[test]
fn data_then_a_close_reads_as_the_data_then_the_end() {
    let Some(dir) = fixtures() else { return };
    for notify in [true, false] {
        let (server_sock, mut client_sock, mut tls, mut client) = handshaken(dir);
        let fd = server_sock.as_fd();
        let mut wire = sealed(&mut client, b"last");
        if notify {
            client.send_close_notify();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("close_notify");
            }
        }
        client_sock.write_all(&wire).expect("send");
        client_sock
            .shutdown(std::net::Shutdown::Write)
            .expect("FIN");
        let mut out = Vec::new();
        assert_eq!(tls.read_plain(fd, &mut out).expect("data"), 4);
        assert_eq!(out, b"last");
        if notify {
            assert!(tls.peer_closed(), "close_notify came in the same read");
        }
        assert_eq!(tls.read_plain(fd, &mut out).expect("the end"), 0);
        assert!(tls.peer_closed());
    }
}

/// A response's head and small body handed over together leave as one
/// TLS record (one encryption, one send, one record for the client to
/// open), not a record each; a body past the record size is split.
#[test]
fn a_head_and_body_written_together_leave_as_one_record() {
    let Some(dir) = fixtures() else { return };
    let (server_sock, mut client_sock, mut tls, _client) = handshaken(dir);
    let fd = server_sock.as_fd();

    let mut records = |tls: &mut TlsConn, parts: &[&[u8]]| -> Vec<usize> {
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(tls.write_some(fd, &slices).expect("write_some"), total);
        let mut wire = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client_sock.read(&mut buf) {
                Ok(n) if n > 0 => wire.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                other => panic!("client read: {other:?}"),
            }
        }
        // Each record: type (1), version (2), length (2), then the body.
        let mut lengths = Vec::new();
        let mut at = 0;
        while at + 5 <= wire.len() {
            let len = u16::from_be_bytes([wire[at + 3], wire[at + 4]]) as usize;
            lengths.push(len);
            at += 5 + len;
        }
        assert_eq!(at, wire.len(), "whole records");
        lengths
    };
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n";
    let body = [b'x'; 600];
    // TLS 1.3 adds the inner content type (1 byte) and the AEAD tag (16).
    assert_eq!(
        records(&mut tls, &[head, &body]),
        [head.len() + body.len() + 17]
    );
    let big = vec![b'y'; 20_000];
    assert_eq!(
        records(&mut tls, &[head, &big]).len(),
        2,
        "16 KiB of plaintext per record at most"
    );
}

#[test]
fn tcp_eof_after_the_handshake_reads_as_a_close() {
    let Some(dir) = fixtures() else { return };
    let (server_sock, mut client_sock, mut tls) = session_pair(dir);
    let fd = server_sock.as_fd();
    let mut client = client_session(client(dir, &TLS12, None));
    client.writer().write_all(b"partial").expect("queue bytes");
    while tls.handshake_step(fd).expect("handshake") != HandshakeState::Done {
        pump(&mut client, &mut client_sock);
    }
    pump(&mut client, &mut client_sock);
    drop(client_sock); // no close_notify
    let mut out = Vec::new();
    let (got, _) = read_at_least(&mut tls, fd, usize::MAX).expect("read until EOF");
    assert_eq!(got, b"partial");
    assert_eq!(tls.read_plain(fd, &mut out).expect("EOF"), 0);
    assert!(tls.peer_closed());
}

#[test]
fn eof_and_garbage_during_the_handshake_are_errors() {
    let Some(dir) = fixtures() else { return };
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);

    let (server_sock, client_sock) = UnixStream::pair().expect("socketpair");
    server_sock.set_nonblocking(true).expect("nonblocking");
    let fd = server_sock.as_fd();
    let mut tls = TlsConn::new(&config).expect("session");
    assert_eq!(
        tls.handshake_step(fd).expect("nothing yet"),
        HandshakeState::WantRead
    );
    drop(client_sock);
    let err = tls.handshake_step(fd).expect_err("the peer closed");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        err.to_string(),
        "the client closed the connection during the TLS handshake"
    );

    // Plain HTTP sent to a TLS port.
    let (server_sock, mut client_sock) = UnixStream::pair().expect("socketpair");
    server_sock.set_nonblocking(true).expect("nonblocking");
    let fd = server_sock.as_fd();
    client_sock.write_all(REQUEST).expect("send plain HTTP");
    let mut tls = TlsConn::new(&config).expect("session");
    let err = tls.handshake_step(fd).expect_err("not TLS");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);

    // write_plain before the handshake is a caller bug, not a hang.
    let err = tls
        .write_plain(fd, b"x", Duration::ZERO)
        .expect_err("handshaking");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn write_plain_times_out_when_the_client_stops_reading() {
    let Some(dir) = fixtures() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let config = client(dir, &TLS13_ONLY, None);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let client_thread = std::thread::spawn(move || {
        let sock = TcpStream::connect(addr).expect("connect");
        let mut stream = StreamOwned::new(client_session(config), sock);
        stream.write_all(b"x").expect("handshake and one byte");
        // Then read nothing until the server has given up.
        let _ = done_rx.recv_timeout(TEST_DEADLINE);
    });
    let (sock, _) = listener.accept().expect("accept");
    sock.set_nonblocking(true).expect("nonblocking");
    let fd = sock.as_fd();
    let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
    let mut tls = TlsConn::new(&config).expect("session");
    drive_handshake(&mut tls, fd, Instant::now() + TEST_DEADLINE).expect("handshake");
    let started = Instant::now();
    let big = vec![0u8; 64 * 1024 * 1024];
    let err = tls
        .write_plain(fd, &big, Duration::from_millis(200))
        .expect_err("not read");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(started.elapsed() < TEST_DEADLINE);
    let _ = done_tx.send(());
    client_thread.join().expect("client thread");
}

/// curl (OpenSSL) as the client when installed: its ALPN offers h2 and
/// http/1.1, and catamount picks http/1.1.
#[test]
fn curl_round_trip() {
    let Some(dir) = fixtures() else { return };
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    for (flags, version) in [
        ("--tlsv1.2 --tls-max 1.2", "TLSv1.2"),
        ("--tlsv1.3", "TLSv1.3"),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
        let server = serve_one(config, listener);
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(dir.join("ca.pem"))
            .args(flags.split_whitespace())
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/"))
            .output()
            .expect("run curl");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl {flags}: {err}");
        assert_eq!(out.stdout, b"hello");
        let served = server.join().expect("server thread").expect("server side");
        assert_eq!(served.version, Some(version));
        assert_eq!(served.alpn.as_deref(), Some(ALPN_HTTP11));
        assert!(served.request.starts_with(b"GET / HTTP/1.1\r\n"));
    }
}

// ---- the DER validity walker ----

#[test]
fn validity_of_real_certificates() {
    let Some(dir) = fixtures() else { return };
    let expired = cert_validity(&pem_der(&dir.join("expired.pem"))).expect("UTCTime");
    let expected = Validity {
        not_before: 1_577_836_800,
        not_after: 1_577_923_200,
    };
    assert_eq!(expired, expected);
    let future = cert_validity(&pem_der(&dir.join("future.pem"))).expect("GeneralizedTime");
    assert_eq!(future.not_before, days_from_civil(2099, 1, 1) * 86_400);
    assert_eq!(format_utc(future.not_after), "2099-12-31 23:59:59 UTC");
    let now = unix_now();
    let good = cert_validity(&pem_der(&dir.join("sec1.pem"))).expect("leaf validity");
    assert!(good.not_before <= now && now < good.not_after, "{good:?}");
    // Every truncation fails cleanly: the outer length no longer fits.
    let der = pem_der(&dir.join("pkcs1.pem"));
    for len in 0..der.len() {
        assert_eq!(cert_validity(&der[..len]), None, "prefix of {len} bytes");
    }
    // Flipping any one byte never panics.
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0xff;
        let _ = cert_validity(&bad);
    }
}

/// A DER element with a definite length.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len().to_be_bytes();
    let skip = len.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![tag];
    if contents.len() < 0x80 {
        out.push(contents.len() as u8);
    } else {
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// A certificate shell with the given times inside `validity`.
fn minimal_cert(version: bool, times: &[u8]) -> Vec<u8> {
    let mut tbs = Vec::new();
    if version {
        tbs.extend(tlv(TAG_VERSION, &tlv(TAG_INTEGER, &[2])));
    }
    tbs.extend(tlv(TAG_INTEGER, &[1]));
    tbs.extend(tlv(TAG_SEQUENCE, &[0x06, 0x01, 0x2a]));
    tbs.extend(tlv(TAG_SEQUENCE, &[0u8; 200])); // issuer, long-form length
    tbs.extend(tlv(TAG_SEQUENCE, times));
    tbs.extend(tlv(TAG_SEQUENCE, &[])); // subject: not read
    tlv(
        TAG_SEQUENCE,
        &[tlv(TAG_SEQUENCE, &tbs), tlv(TAG_SEQUENCE, &[])].concat(),
    )
}

#[test]
fn validity_walker_on_built_input() {
    let utc = |s: &str| tlv(TAG_UTC_TIME, s.as_bytes());
    let gen = |s: &str| tlv(TAG_GENERALIZED_TIME, s.as_bytes());
    let v = |nb: Vec<u8>, na: Vec<u8>| cert_validity(&minimal_cert(true, &[nb, na].concat()));
    let later = || utc("300101000000Z");

    let epoch_to_2038 = Validity {
        not_before: 0,
        not_after: 2_147_483_648,
    };
    assert_eq!(
        v(utc("700101000000Z"), gen("20380119031408Z")),
        Some(epoch_to_2038)
    );
    // A v1 certificate (no version field); UTCTime 49 is 2049, 50 is 1950.
    let pivot = Validity {
        not_before: 2_524_607_999,
        not_after: -631_152_000,
    };
    let times = [utc("491231235959Z"), utc("500101000000Z")].concat();
    assert_eq!(cert_validity(&minimal_cert(false, &times)), Some(pivot));
    let leap_day = v(utc("240229120000Z"), later()).map(|x| x.not_before);
    assert_eq!(leap_day, Some(1_709_208_000));
    for bad in [
        "230229000000Z", // not a leap year
        "241301000000Z", // month 13
        "240100000000Z", // day 0
        "240101240000Z", // hour 24
        "240101006000Z", // minute 60
        "2401010000Z",   // no seconds
        "240101000000",  // no Z
        "240101000000+0100",
        "24010100000AZ",
        "",
    ] {
        assert_eq!(v(utc(bad), later()), None, "{bad:?}");
    }
    assert_eq!(
        v(gen("240101000000Z"), later()),
        None,
        "a 2-digit GeneralizedTime"
    );
    assert_eq!(
        v(gen("20240101000000.5Z"), later()),
        None,
        "fractional seconds"
    );
    assert_eq!(
        v(tlv(TAG_INTEGER, b"240101000000Z"), later()),
        None,
        "wrong tag"
    );
    assert_eq!(v(later(), Vec::new()), None, "one time only");
    assert_eq!(v(later(), [later(), later()].concat()), None, "three times");
}

#[test]
fn der_element_rejects_malformed_input() {
    assert_eq!(der_element(&[]), None);
    assert_eq!(der_element(&[0x30]), None);
    assert_eq!(der_element(&[0x30, 0x80, 0, 0]), None, "indefinite length");
    assert_eq!(
        der_element(&[0x30, 0x85, 1, 0, 0, 0, 0]),
        None,
        "5 length octets"
    );
    assert_eq!(
        der_element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
        None,
        "past the end"
    );
    assert_eq!(der_element(&[0x30, 0x82, 0x01]), None, "cut length");
    assert_eq!(der_element(&[0x1f, 0x01, 0x00]), None, "high tag number");
    let one: (u8, &[u8], &[u8]) = (0x02, &[0x05], &[0xaa]);
    assert_eq!(der_element(&[0x02, 0x01, 0x05, 0xaa]), Some(one));
    let long: (u8, &[u8], &[u8]) = (0x04, &[0x07], &[]);
    assert_eq!(der_element(&[0x04, 0x81, 0x01, 0x07]), Some(long));
    // Pseudo-random garbage (a fixed LCG) never panics.
    let mut x: u32 = 0x1234_5678;
    let mut next = || {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 24) as u8
    };
    for _ in 0..20_000 {
        let len = usize::from(next() % 64);
        let mut buf: Vec<u8> = (0..len).map(|_| next()).collect();
        if let Some(first) = buf.first_mut() {
            *first = TAG_SEQUENCE; // get past the first check more often
        }
        let _ = cert_validity(&buf);
        let _ = der_element(&buf);
    }
}

#[test]
fn civil_day_conversions_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
    for z in (-800_000..800_000).step_by(997) {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
        assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
    }
}
