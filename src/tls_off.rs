//! What stands in for `tls/` in a build without the `tls` cargo feature
//! (`cargo build --no-default-features`, issue 15: plain HTTP for edge
//! boxes, without rustls and ring).
//!
//! It has the names the rest of the crate uses from `tls/`, so nothing
//! outside this file and the `mod tls` line of `lib.rs` knows which build
//! it is in. The one door in is [`TlsOptions::parse_query`], which refuses
//! every `ssl://` bind and every `fd://NAME?cert=...` with
//! [`NO_TLS`]: the command line, the config file, `--check` and a reload
//! all parse binds through it, so each stops there with a config error
//! (exit 2) that says how to get a build with TLS. The types that would
//! hold TLS state, [`ServerConfig`] and [`TlsConn`], are enums without
//! variants: no value of them can exist, so every method on them is
//! `match *self {}` and a listener's or connection's `Option` of them is
//! always `None`; the compiler, not a comment, checks that no TLS session
//! runs here. [`TlsOptions`] has a private field that nothing fills, and
//! [`TlsError`] is the refusal itself.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

/// Why an `ssl://` bind is refused, and what to do.
pub(crate) const NO_TLS: &str = "TLS binds (ssl://, fd://NAME?cert=) need the cargo \
     feature \"tls\", which this catamount was built without; rebuild with it (a default \
     feature: cargo build --release, without --no-default-features) or bind tcp:// or unix://";

/// The TLS options of one `ssl://` bind; none is made in this build. Its
/// field is private and [`TlsOptions::parse_query`], the one constructor,
/// refuses.
// Not an empty enum like the types below: listeners.rs clones the options
// before it loads them, and a clone of an empty type would make the
// compiler call the load unreachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    refused: (),
}

impl TlsOptions {
    /// The files it names: none can exist in this build.
    pub fn paths(&self) -> impl Iterator<Item = &std::path::Path> {
        std::iter::empty()
    }

    /// Refuses: this build has no TLS (see [`NO_TLS`]).
    pub fn parse_query(_params: &[(&str, &str)]) -> Result<TlsOptions, String> {
        Err(TlsError.to_string())
    }
}

/// A loaded server configuration; none can exist in this build.
#[derive(Debug)]
pub enum ServerConfig {}

/// Why TLS could not be set up: in this build, always that it is not built
/// in. (A value of it exists, unlike the empty types around it, so that the
/// `Result`s below can exist too: a `Result` of two empty types would make
/// the compiler call its callers' code unreachable.)
#[derive(Debug)]
pub struct TlsError;

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NO_TLS)
    }
}

impl std::error::Error for TlsError {}

/// Refuses, as `parse_query` did (nothing calls it: no options exist).
pub fn load(_opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    Err(TlsError)
}

/// Where a [`TlsConn`] handshake stands (the reactor matches on it).
// Never built: only a TlsConn's handshake_step would return one.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeState {
    Done,
    WantRead,
    WantWrite,
}

/// A server-side TLS session; none can exist in this build.
pub enum TlsConn {}

/// The methods of `tls/conn.rs`'s `TlsConn` that other modules call (see there),
/// each unreachable.
impl TlsConn {
    pub fn new(config: &Arc<ServerConfig>) -> Result<TlsConn, TlsError> {
        match **config {}
    }

    pub fn handshake_step(&mut self, _fd: BorrowedFd<'_>) -> io::Result<HandshakeState> {
        match *self {}
    }

    pub fn read_plain(&mut self, _fd: BorrowedFd<'_>, _out: &mut Vec<u8>) -> io::Result<usize> {
        match *self {}
    }

    pub fn write_plain(&mut self, _: BorrowedFd<'_>, _: &[u8], _: Duration) -> io::Result<()> {
        match *self {}
    }

    pub fn write_some(
        &mut self,
        _fd: BorrowedFd<'_>,
        _data: &[io::IoSlice<'_>],
    ) -> io::Result<usize> {
        match *self {}
    }

    pub fn flush_now(&mut self, _fd: BorrowedFd<'_>) -> io::Result<bool> {
        match *self {}
    }

    pub fn close_notify(&mut self, _fd: BorrowedFd<'_>) {
        match *self {}
    }

    pub fn is_handshaking(&self) -> bool {
        match *self {}
    }

    pub fn alpn(&self) -> Option<&[u8]> {
        match *self {}
    }

    pub fn protocol_version(&self) -> Option<&'static str> {
        match *self {}
    }

    pub fn cipher_suite(&self) -> Option<&'static str> {
        match *self {}
    }

    pub fn sni(&self) -> Option<&str> {
        match *self {}
    }

    pub fn peer_certificate_der(&self) -> Option<&[u8]> {
        match *self {}
    }
}

/// No handshake runs, so no handshake error is a plain-HTTP one.
pub fn is_plain_http(_e: &io::Error) -> bool {
    false
}

/// Never called: [`is_plain_http`] never holds.
pub fn answer_plain_http(_fd: BorrowedFd<'_>) {}

#[cfg(test)]
mod tests {
    use crate::bind::BindSpec;

    #[test]
    fn ssl_binds_are_refused_with_how_to_get_tls() {
        for uri in [
            "ssl://127.0.0.1:443?cert=/etc/c.pem&key=/etc/k.pem",
            "ssl://[::1]:8443?cert=c&key=k&verify_mode=peer&ca=ca",
            "fd://https?cert=c&key=k",
        ] {
            let e = BindSpec::parse(uri).expect_err(uri);
            assert_eq!(
                e.to_string(),
                format!("bind {uri:?}: {}", super::NO_TLS),
                "{uri}"
            );
        }
        assert!(super::NO_TLS.contains("cargo feature \"tls\""));
    }

    #[test]
    fn plain_binds_still_parse() {
        for uri in ["tcp://127.0.0.1:9292", "unix:///run/app.sock", "fd://http"] {
            let spec = BindSpec::parse(uri).expect(uri);
            assert!(spec.tls().is_none(), "{uri}");
        }
    }
}
