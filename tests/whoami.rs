//! Who is asking and over what (issue 17), through `examples/whoami.rs`:
//! a handler sees the client's address and port, the local address, the
//! listener (its bind URI or systemd name) and the TLS session (version,
//! SNI). Real clients over real sockets: std's TcpStream and UnixStream,
//! curl for TLS, systemd-socket-activate for an activated socket.

mod support;

#[path = "support/pki.rs"]
#[allow(dead_code)] // pki::dated serves tests/tls.rs only
mod pki;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{deadline_in, example, free_port, skip, Server, TempDir};

/// Upper bound for one response or one curl run.
const CLIENT_DEADLINE: Duration = Duration::from_secs(10);
const CLIENT_MAX_SECS: &str = "10";
/// Cargo's scratch directory, for the certificates.
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");
const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// The `key: value` lines of a whoami answer (the body after the head).
fn facts(response: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(response);
    let body = text.split_once("\r\n\r\n").map_or(&*text, |(_, b)| b);
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Sends one request on `stream` and reads the answer to its end.
fn ask(mut stream: impl Read + Write) -> HashMap<String, String> {
    stream.write_all(REQUEST).expect("send the request");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read the answer");
    assert!(
        out.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    facts(&out)
}

fn start_whoami(args: &[&str]) -> Option<Server> {
    let bin = example("whoami")?;
    let mut cmd = Command::new(bin);
    cmd.args(args);
    Some(Server::start_command(cmd))
}

#[test]
fn tcp_request_sees_the_client_port_local_address_and_listener() {
    let Some(mut server) = start_whoami(&["-b", "tcp://127.0.0.1:0"]) else {
        return;
    };
    let addr = server.addr();
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .expect("SO_RCVTIMEO");
    let ours = stream.local_addr().expect("our address");
    let f = ask(stream);
    assert_eq!(f["client"], ours.to_string(), "{f:?}");
    assert_eq!(f["local"], addr.to_string(), "{f:?}");
    assert_eq!(f["listener"], format!("tcp://{addr}"), "{f:?}");
    assert_eq!(f["tls"], "none", "{f:?}");
    assert!(server.stop().success());
}

#[test]
fn access_log_names_the_client_address() {
    let Some(mut server) = start_whoami(&["-b", "tcp://127.0.0.1:0", "--log-requests"]) else {
        return;
    };
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .expect("SO_RCVTIMEO");
    ask(stream);
    assert!(
        server.wait_for_line("127.0.0.1 - - [", deadline_in(CLIENT_DEADLINE)),
        "{}",
        server.stdout()
    );
    assert!(server.stop().success());
}

#[test]
fn unix_socket_request_has_no_addresses_but_names_its_listener() {
    let dir = TempDir::new("whoami");
    let path = dir.join("app.sock");
    let bind = format!("unix://{path}");
    let Some(mut server) = start_whoami(&["-b", &bind]) else {
        return;
    };
    let stream = UnixStream::connect(&path).expect("connect the unix socket");
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .expect("SO_RCVTIMEO");
    let f = ask(stream);
    assert_eq!(f["client"], "unix", "{f:?}");
    assert_eq!(f["local"], "unix", "{f:?}");
    assert_eq!(f["listener"], bind, "{f:?}");
    assert!(server.stop().success());
}

#[test]
fn tls_request_sees_version_sni_alpn_and_client_certificate() {
    if !cfg!(feature = "tls") {
        skip("catamount was built without the tls feature");
        return;
    }
    if !runs("openssl") || !runs("curl") {
        skip("openssl/curl not installed");
        return;
    }
    let dir = TempDir::new_in(Path::new(TARGET_TMPDIR), "whoami-pki");
    pki::init(dir.path(), &["ca"]);
    pki::p256_key(dir.path(), "a");
    pki::leaf(dir.path(), "a", "server_ext", "ca", 1001);
    pki::p256_key(dir.path(), "client");
    pki::leaf(dir.path(), "client", "client_ext", "ca", 5005);
    pki::openssl(
        dir.path(),
        "x509 -in client.pem -outform DER -out client.der",
    );
    let bind = format!(
        "ssl://127.0.0.1:0?cert={}&key={}&ca={}&verify_mode=peer",
        dir.join("a.pem"),
        dir.join("a.key"),
        dir.join("ca.pem")
    );
    let Some(mut server) = start_whoami(&["-b", &bind]) else {
        return;
    };
    let addr = server
        .listening()
        .iter()
        .find_map(|u| {
            u.strip_prefix("ssl://")?
                .parse::<std::net::SocketAddr>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no ssl:// listener in:\n{}", server.stdout()));
    let port = addr.port();
    let curl = |extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", CLIENT_MAX_SECS])
            .args(["--cacert", &dir.join("ca.pem")])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(extra)
            .arg(format!("https://localhost:{port}/who"))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "curl {extra:?}: {out:?}");
        facts(format!("\r\n\r\n{text}").as_bytes())
    };
    let f = curl(&["--http1.1"]);
    assert_eq!(f["tls"], "TLSv1.3", "{f:?}");
    assert_eq!(f["sni"], "localhost", "{f:?}");
    assert_eq!(f["alpn"], "http/1.1", "{f:?}");
    assert!(f["cipher"].starts_with("TLS13_"), "{f:?}");
    assert_eq!(f["local"], addr.to_string(), "{f:?}");
    assert_eq!(f["listener"], format!("ssl://{addr}"), "{f:?}");
    assert!(f["client"].starts_with("127.0.0.1:"), "{f:?}");
    let f = curl(&["--http1.1", "--tls-max", "1.2"]);
    assert_eq!(f["tls"], "TLSv1.2", "{f:?}");
    assert_eq!(f["sni"], "localhost", "{f:?}");
    assert!(!f.contains_key("client-cert"), "{f:?}");
    // verify_mode=peer: the certificate the client sent, as DER.
    let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
    let f = curl(&["--http1.1", "--cert", &cert, "--key", &key]);
    let der = std::fs::metadata(dir.join("client.der"))
        .expect("client.der")
        .len();
    assert_eq!(f["client-cert"], format!("{der} bytes of DER"), "{f:?}");
    assert!(server.stop().success());
}

#[test]
fn activated_socket_is_named_by_its_systemd_name() {
    let Some(bin) = example("whoami") else {
        return;
    };
    if !runs("systemd-socket-activate") {
        skip("systemd-socket-activate is not installed (scripts/install-deps installs it)");
        return;
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // systemd-socket-activate starts the app at the first connection.
    let first = std::thread::spawn(move || first_connection(port));
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &listen, "--fdname=web", "--"])
        .arg(bin)
        .args(["-b", "fd://web"]);
    let mut server = Server::start_command(cmd);
    let stream = first.join().expect("the connecting thread");
    stream
        .set_read_timeout(Some(CLIENT_DEADLINE))
        .expect("SO_RCVTIMEO");
    let f = ask(stream);
    assert_eq!(f["listener"], "fd://web", "{f:?}");
    assert_eq!(f["local"], listen, "{f:?}");
    assert!(server.stop().success());
}

/// Connects to `port` until systemd-socket-activate listens (deadline).
fn first_connection(port: u16) -> TcpStream {
    support::connect_by(port, deadline_in(CLIENT_DEADLINE))
}

/// `program --version` runs and succeeds.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg(if program == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}
