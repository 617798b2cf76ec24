//! Who is asking and over what (issue 17): every request is answered with
//! one line per fact, e.g.
//!
//! ```text
//! client: 127.0.0.1:51234
//! local: 127.0.0.1:9292
//! listener: tcp://127.0.0.1:9292
//! tls: TLSv1.3
//! cipher: TLS13_AES_256_GCM_SHA384
//! alpn: http/1.1
//! sni: localhost
//! ```
//!
//! Over a unix socket the addresses read `unix`; over plain HTTP the `tls`
//! line reads `none` and the other TLS lines are left out.
//! `cargo run --example whoami -- -b tcp://127.0.0.1:9292`.

use std::fmt::Write;

use catamount::{Request, Response, Server};

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(|req: &mut Request<'_>| Response::text(200, whoami(req)));
}

fn whoami(req: &Request<'_>) -> String {
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("unix".to_string(), |a| a.to_string());
    let mut out = format!(
        "client: {}\nlocal: {}\nlistener: {}\n",
        addr(req.peer_addr()),
        addr(req.local_addr()),
        req.listener()
    );
    match req.tls() {
        None => out.push_str("tls: none\n"),
        Some(t) => {
            let alpn = t.alpn().map_or("-".into(), String::from_utf8_lossy);
            let _ = write!(
                out,
                "tls: {}\ncipher: {}\nalpn: {alpn}\nsni: {}\n",
                t.version(),
                t.cipher_suite(),
                t.sni().unwrap_or("-"),
            );
            if let Some(der) = t.peer_certificate_der() {
                let _ = writeln!(out, "client-cert: {} bytes of DER", der.len());
            }
        }
    }
    out
}
