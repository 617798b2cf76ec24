//! TLS for `ssl://` binds: the bind's query options, loading the
//! certificate, key and client CA into a `rustls::ServerConfig` (with errors
//! that name the file and what to do), and [`TlsConn`], a non-blocking
//! server-side TLS session over a raw socket fd that the reactor and the
//! pool threads drive.
//!
//! Syntax (Puma's): `ssl://HOST:PORT?cert=PATH&key=PATH[&ca=PATH]
//! [&verify_mode=none|peer|force_peer][&min_version=TLSv1.2|TLSv1.3]`.
//!
//! A client that speaks plain HTTP to the port (its first byte is a letter,
//! not a TLS record type) is told so in plain HTTP, as nginx does, by
//! [`answer_plain_http`] rather than with an alert it cannot read.
//!
//! Socket I/O goes through `crate::sys::{recv, send, shutdown_write,
//! wait_fd}` only; rustls (ring provider) does the cryptography. rustls
//! does not check the validity dates of our own certificate, so [`load`]
//! reads `notBefore`/`notAfter` from the leaf with a small bounds-checked
//! DER walker and refuses an expired or not-yet-valid certificate at
//! start-up instead of letting every client fail later.
//!
//! Where decrypted bytes can hide: rustls keeps plaintext it has decrypted
//! but not yet handed out. A TLS 1.3 client may send its `Finished` and its
//! request in one flight, so the request can already sit inside rustls when
//! [`TlsConn::handshake_step`] returns `Done`; the socket then never becomes
//! readable again for it. Callers must therefore call
//! [`TlsConn::read_plain`] once after the handshake (or check
//! [`TlsConn::has_buffered_plaintext`]) before waiting for readability.
//! `read_plain` itself drains everything rustls has decrypted, so after it
//! returns nothing is left behind but an incomplete record, which needs more
//! bytes from the socket anyway.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConnection, SupportedProtocolVersion};
// Named by listeners.rs; tls_off.rs has a ServerConfig of its own.
pub use rustls::ServerConfig;

use crate::sys::{self, Interest};

/// The one application protocol offered through ALPN.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// [`TlsConn::read_plain`] stops pulling records from the socket once it has
/// returned this much plaintext in one call (it may overshoot by one TLS
/// record, at most 16 KiB): a fast client cannot keep one call busy forever,
/// and the rest waits in the kernel, where the fd stays readable.
pub const MAX_PLAIN_PER_READ: usize = 64 * 1024;
/// Bytes of plaintext copied out of rustls per step.
const PLAIN_CHUNK: usize = 16 * 1024;
/// The query parameters an `ssl://` bind accepts.
pub(crate) const KNOWN_PARAMS: &str = "cert, key, ca, verify_mode, min_version";
/// After answering plain HTTP on a TLS port, at most this many bytes of
/// the client's request still queued are read and dropped before the
/// close (unread bytes make the kernel reset the connection, which can
/// destroy the answer in flight).
const PLAIN_HTTP_DRAIN: usize = 64 * 1024;
/// The body of that answer (nginx says "The plain HTTP request was sent
/// to HTTPS port").
const PLAIN_HTTP_BODY: &str =
    "400 Bad Request: the plain HTTP request was sent to an HTTPS port; use https://\n";

/// How client certificates are treated (`verify_mode=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// No client certificate is requested (the default).
    #[default]
    None,
    /// A client certificate is requested and, if sent, must chain to `ca`.
    Peer,
    /// A client certificate chaining to `ca` is required.
    ForcePeer,
}

impl VerifyMode {
    /// The spelling used in the bind URI.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::None => "none",
            VerifyMode::Peer => "peer",
            VerifyMode::ForcePeer => "force_peer",
        }
    }
}

/// The oldest protocol version accepted (`min_version=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3 (the default). Older versions are never offered.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl MinVersion {
    /// The spelling used in the bind URI.
    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "TLSv1.2",
            MinVersion::Tls13 => "TLSv1.3",
        }
    }

    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        match self {
            MinVersion::Tls12 => &TLS12_AND_TLS13,
            MinVersion::Tls13 => &TLS13_ONLY,
        }
    }
}

static TLS12_AND_TLS13: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];
static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// The TLS options of one `ssl://` bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file: the server certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key: PathBuf,
    /// PEM file: the CA certificates that client certificates must chain to.
    pub ca: Option<PathBuf>,
    /// Whether client certificates are requested or required.
    pub verify: VerifyMode,
    /// The oldest TLS version accepted.
    pub min_version: MinVersion,
}

impl TlsOptions {
    /// The files it names: `cert=`, `key=`, and `ca=` when given.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// Builds the options from a bind URI's query parameters, already split
    /// at `&` and `=` and percent-decoded by the caller. Errors name the
    /// parameter and what is expected.
    pub fn parse_query(params: &[(&str, &str)]) -> Result<TlsOptions, String> {
        let mut cert = None;
        let mut key = None;
        let mut ca = None;
        let mut verify = None;
        let mut min_version = None;
        for &(name, value) in params {
            if value.is_empty() {
                return Err(format!("ssl:// option {name}= is empty; give it a value"));
            }
            let slot_taken = match name {
                "cert" => cert.replace(PathBuf::from(value)).is_some(),
                "key" => key.replace(PathBuf::from(value)).is_some(),
                "ca" => ca.replace(PathBuf::from(value)).is_some(),
                "verify_mode" => verify.replace(parse_verify_mode(value)?).is_some(),
                "min_version" => min_version.replace(parse_min_version(value)?).is_some(),
                _ => {
                    return Err(format!(
                        "unknown ssl:// option {name:?}; expected one of {KNOWN_PARAMS}"
                    ))
                }
            };
            if slot_taken {
                return Err(format!("ssl:// option {name}= is given twice; keep one"));
            }
        }
        let cert = cert.ok_or_else(|| {
            "ssl:// bind needs cert=PATH, a PEM file with the server certificate".to_string()
        })?;
        let key = key.ok_or_else(|| {
            "ssl:// bind needs key=PATH, a PEM file with the certificate's private key".to_string()
        })?;
        let verify = verify.unwrap_or_default();
        if verify != VerifyMode::None && ca.is_none() {
            return Err(TlsError::VerifyNeedsCa(verify).to_string());
        }
        Ok(TlsOptions {
            cert,
            key,
            ca,
            verify,
            min_version: min_version.unwrap_or_default(),
        })
    }
}

fn parse_verify_mode(value: &str) -> Result<VerifyMode, String> {
    match value {
        "none" => Ok(VerifyMode::None),
        "peer" => Ok(VerifyMode::Peer),
        "force_peer" => Ok(VerifyMode::ForcePeer),
        _ => Err(format!(
            "ssl:// option verify_mode={value:?} is not understood; \
             expected none, peer or force_peer"
        )),
    }
}

fn parse_min_version(value: &str) -> Result<MinVersion, String> {
    if value.eq_ignore_ascii_case("TLSv1.2") {
        Ok(MinVersion::Tls12)
    } else if value.eq_ignore_ascii_case("TLSv1.3") {
        Ok(MinVersion::Tls13)
    } else {
        Err(format!(
            "ssl:// option min_version={value:?} is not understood; \
             expected TLSv1.2 or TLSv1.3 (older versions are never offered)"
        ))
    }
}

/// Why the TLS configuration of a bind could not be loaded. Each message is
/// one line that names the file and says what to do.
#[derive(Debug)]
pub enum TlsError {
    /// A file named by `param=` cannot be read.
    Read {
        param: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file is not valid PEM.
    Pem {
        param: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The `cert=` file holds no `CERTIFICATE` block.
    NoCertificate(PathBuf),
    /// The `key=` file holds no private key block.
    NoKey(PathBuf),
    /// The `key=` file holds only an encrypted private key.
    EncryptedKey(PathBuf),
    /// rustls cannot use the key (unsupported algorithm or size, bad encoding).
    UnusableKey { path: PathBuf, detail: String },
    /// The key is not the one the leaf certificate was issued for.
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The leaf certificate cannot be parsed.
    BadCertificate { path: PathBuf, detail: String },
    /// The leaf certificate's `notAfter` is in the past.
    Expired { path: PathBuf, not_after: i64 },
    /// The leaf certificate's `notBefore` is in the future.
    NotYetValid { path: PathBuf, not_before: i64 },
    /// The `ca=` file holds no `CERTIFICATE` block.
    NoCaCertificate(PathBuf),
    /// The `ca=` certificates cannot be used as trust anchors.
    BadCa { path: PathBuf, detail: String },
    /// `verify_mode=peer|force_peer` without `ca=`.
    VerifyNeedsCa(VerifyMode),
    /// rustls refused the configuration or a new session.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read {
                param,
                path,
                source,
            } => write!(
                f,
                "cannot read {} ({source}); check the ssl:// option {param}=",
                path.display()
            ),
            TlsError::Pem {
                param,
                path,
                detail,
            } => write!(
                f,
                "{} is not a valid PEM file ({detail}); the ssl:// option {param}= \
                 must name a PEM file",
                path.display()
            ),
            TlsError::NoCertificate(path) => write!(
                f,
                "no certificate in {}; cert= must name a PEM file that starts with the \
                 server certificate (-----BEGIN CERTIFICATE-----), then its intermediates",
                path.display()
            ),
            TlsError::NoKey(path) => write!(
                f,
                "no private key in {}; key= must name a PEM file with a PKCS#8, \
                 PKCS#1 (RSA) or SEC1 (EC) private key",
                path.display()
            ),
            TlsError::EncryptedKey(path) => write!(
                f,
                "the private key in {0} is encrypted; store it decrypted \
                 (openssl pkey -in {0} -out PLAIN.key) and point key= at that file",
                path.display()
            ),
            TlsError::UnusableKey { path, detail } => write!(
                f,
                "cannot use the private key in {} ({detail}); use an RSA (2048 bits or \
                 more), ECDSA P-256/P-384 or Ed25519 key",
                path.display()
            ),
            TlsError::KeyMismatch { cert, key } => write!(
                f,
                "the private key in {} does not match the first certificate in {}; \
                 point key= at the key the certificate was issued for, and put the \
                 server certificate first in cert=",
                key.display(),
                cert.display()
            ),
            TlsError::BadCertificate { path, detail } => write!(
                f,
                "cannot parse the certificate in {} ({detail}); cert= must name a PEM \
                 X.509 certificate",
                path.display()
            ),
            TlsError::Expired { path, not_after } => write!(
                f,
                "the certificate in {} expired on {}; renew it and restart",
                path.display(),
                format_utc(*not_after)
            ),
            TlsError::NotYetValid { path, not_before } => write!(
                f,
                "the certificate in {} is not valid before {}; check the system clock \
                 or use a certificate that is valid now",
                path.display(),
                format_utc(*not_before)
            ),
            TlsError::NoCaCertificate(path) => write!(
                f,
                "no certificate in {}; ca= must name a PEM file with the CA \
                 certificate(s) that issue client certificates",
                path.display()
            ),
            TlsError::BadCa { path, detail } => write!(
                f,
                "cannot use the CA certificates in {} ({detail}); ca= must name PEM \
                 X.509 CA certificates",
                path.display()
            ),
            TlsError::VerifyNeedsCa(mode) => write!(
                f,
                "ssl:// option verify_mode={} needs ca=PATH, the CA that issues client \
                 certificates; add ca= or use verify_mode=none",
                mode.as_str()
            ),
            TlsError::Rustls(e) => write!(f, "TLS setup failed: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

/// Loads the certificate chain, key and (for client verification) CA of
/// `opts` into a server configuration: ring provider, ALPN `http/1.1`,
/// TLS 1.2+1.3 or 1.3 only. Checks that the key matches the leaf and that
/// the leaf is valid now.
pub fn load(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certificates(&opts.cert)?;
    let key = load_key(&opts.key)?;

    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnusableKey {
                path: opts.key.clone(),
                detail: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key type that cannot report its public key cannot be compared;
        // rustls's own `with_single_cert` accepts that case too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert: opts.cert.clone(),
                key: opts.key.clone(),
            })
        }
        Err(e) => {
            return Err(TlsError::BadCertificate {
                path: opts.cert.clone(),
                detail: e.to_string(),
            })
        }
    }
    let leaf = certified
        .cert
        .first()
        .expect("load_certificates returns at least one");
    check_validity(&opts.cert, leaf, unix_now())?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(opts.min_version.versions())
        .map_err(TlsError::Rustls)?;
    let builder = match (opts.verify, &opts.ca) {
        (VerifyMode::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(TlsError::VerifyNeedsCa(mode)),
        (mode, Some(ca)) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if mode == VerifyMode::Peer {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError::BadCa {
                path: ca.clone(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The bytes of `cert=`, `key=` or `ca=`: a path, or `fd://NAME`, a file
/// systemd passed open (`OpenFile=PATH:NAME`), so the service needs no
/// access to the path itself.
fn read_file(param: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = match crate::activation::inherited_name(path) {
        Some(name) => crate::activation::read_file(name),
        None => std::fs::read(path),
    };
    read.map_err(|source| TlsError::Read {
        param,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(param: &'static str, path: &Path, e: pem::Error) -> TlsError {
    TlsError::Pem {
        param,
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file("cert", path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("cert", path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file("key", path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            // rustls skips encrypted keys as an unknown block type; say why.
            if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
            {
                Err(TlsError::EncryptedKey(path.to_path_buf()))
            } else {
                Err(TlsError::NoKey(path.to_path_buf()))
            }
        }
        Err(e) => Err(pem_error("key", path, e)),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let bytes = read_file("ca", path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| pem_error("ca", path, e))?;
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCaCertificate(path.to_path_buf()));
    }
    Ok(roots)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn check_validity(path: &Path, leaf: &[u8], now: i64) -> Result<(), TlsError> {
    let validity = cert_validity(leaf).ok_or_else(|| TlsError::BadCertificate {
        path: path.to_path_buf(),
        detail: "cannot read its validity dates".to_string(),
    })?;
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_path_buf(),
            not_before: validity.not_before,
        });
    }
    if now > validity.not_after {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            not_after: validity.not_after,
        });
    }
    Ok(())
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Where a [`TlsConn`] handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeState {
    /// The handshake is complete (plaintext may already be buffered: see
    /// [`TlsConn::has_buffered_plaintext`]).
    Done,
    /// Call `handshake_step` again once the fd is readable.
    WantRead,
    /// Call `handshake_step` again once the fd is writable.
    WantWrite,
}

/// A server-side TLS session over a non-blocking socket the caller owns.
///
/// It owns no fd: every call is handed the socket's fd, so the session moves
/// with the `Conn` between the reactor and the pool threads and is never
/// shared. Errors from the peer's TLS (a bad handshake, a corrupt record)
/// come back as `io::ErrorKind::InvalidData` wrapping the `rustls::Error`.
pub struct TlsConn {
    conn: ServerConnection,
    /// Plaintext bytes decrypted by rustls and not yet returned.
    buffered: usize,
    /// The peer sent close_notify or closed TCP: no more plaintext comes.
    peer_closed: bool,
    /// The client's first byte has been looked at (see [`PlainHttp`]).
    sniffed: bool,
}

impl TlsConn {
    /// Starts a server session with `config` (from [`load`]).
    pub fn new(config: &Arc<ServerConfig>) -> Result<TlsConn, TlsError> {
        let conn = ServerConnection::new(Arc::clone(config)).map_err(TlsError::Rustls)?;
        Ok(TlsConn {
            conn,
            buffered: 0,
            peer_closed: false,
            sniffed: false,
        })
    }

    /// Advances the handshake as far as the socket allows without blocking:
    /// sends what is pending, reads what is available, processes it.
    /// `WantRead`/`WantWrite` say what to wait for before calling again.
    /// After `Done`, call [`read_plain`](Self::read_plain) before waiting for
    /// readability: the first request may have arrived with the handshake.
    /// A peer that closes mid-handshake gives `UnexpectedEof`; one that
    /// speaks plain HTTP an error for which [`is_plain_http`] holds (and no
    /// alert is sent: see [`answer_plain_http`]).
    pub fn handshake_step(&mut self, fd: BorrowedFd<'_>) -> io::Result<HandshakeState> {
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut FdIo(fd)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(HandshakeState::WantWrite)
                    }
                    Err(e) => return Err(e),
                }
            }
            if !self.conn.is_handshaking() {
                return Ok(HandshakeState::Done);
            }
            match self.read_tls_sniffing(fd) {
                Ok(0) => {
                    // The client may have sent an alert before closing: its
                    // error says more than "closed".
                    self.process(fd)?;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection during the TLS handshake",
                    ));
                }
                Ok(_) => self.process(fd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(HandshakeState::WantRead)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads without blocking: appends to `out` every byte of plaintext
    /// rustls holds plus what the socket has now (up to about
    /// [`MAX_PLAIN_PER_READ`]) and returns how many bytes it appended.
    /// `Ok(0)`: the peer closed (close_notify or TCP EOF; HTTP framing, not
    /// TLS, detects a truncated request). `WouldBlock`: nothing available.
    pub fn read_plain(&mut self, fd: BorrowedFd<'_>, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        loop {
            self.drain_plaintext(out)?;
            let got = out.len() - start;
            if self.peer_closed || got >= MAX_PLAIN_PER_READ {
                return Ok(got);
            }
            match self.conn.read_tls(&mut FdIo(fd)) {
                // EOF: the next drain reports the close.
                Ok(_) => self.process(fd)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => return Ok(got),
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypts and sends all of `data`, waiting for writability while the
    /// socket buffer is full; `timeout` bounds each wait (an inactivity
    /// limit, like the `write_timeout` setting), after which `TimedOut`.
    /// Only after the handshake is `Done`.
    pub fn write_plain(
        &mut self,
        fd: BorrowedFd<'_>,
        data: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        if self.conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write_plain called before the TLS handshake finished",
            ));
        }
        self.flush(fd, timeout)?;
        let mut rest = data;
        while !rest.is_empty() {
            // rustls takes at most its buffer limit (64 KiB) at a time; the
            // flush before made room, so 0 here would loop forever.
            let n = self.conn.writer().write(rest)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
            self.flush(fd, timeout)?;
        }
        Ok(())
    }

    /// Encrypts what rustls takes of `data` and sends what the socket
    /// takes, never waiting: `WouldBlock` while earlier records are still
    /// unsent. Returns the plaintext bytes taken (a response the client is
    /// slow to read continues from there on its next EPOLLOUT).
    pub fn write_some(&mut self, fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
        if self.conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write_some called before the TLS handshake finished",
            ));
        }
        self.try_flush(fd)?;
        if self.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // rustls takes at most its buffer limit (64 KiB); it was just
        // emptied, so 0 would mean no progress is possible.
        let n = self.conn.writer().write(data)?;
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.try_flush(fd)?;
        Ok(n)
    }

    /// Sends pending TLS records without waiting; true once none is left.
    pub fn flush_now(&mut self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        self.try_flush(fd)?;
        Ok(!self.conn.wants_write())
    }

    /// Sends every pending TLS record, waiting (each wait bounded by
    /// `timeout`) while the socket buffer is full.
    pub fn flush(&mut self, fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut FdIo(fd)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !sys::wait_fd(fd, Interest::Write, timeout)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS send timed out: the client stopped reading",
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Queues a close_notify alert and sends what the socket takes now,
    /// without waiting; errors are ignored (the connection is closing).
    pub fn close_notify(&mut self, fd: BorrowedFd<'_>) {
        self.conn.send_close_notify();
        let _ = self.try_flush(fd);
    }

    /// rustls holds decrypted plaintext that [`read_plain`](Self::read_plain)
    /// has not returned yet (only possible right after `handshake_step`).
    #[cfg_attr(not(test), allow(dead_code))] // inspected by the tests
    pub fn has_buffered_plaintext(&self) -> bool {
        self.buffered > 0
    }

    /// The peer has closed its side (close_notify or TCP EOF).
    #[cfg_attr(not(test), allow(dead_code))] // inspected by the tests
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The client presented a certificate that the verifier accepted.
    #[cfg_attr(not(test), allow(dead_code))] // inspected by the tests
    pub fn peer_has_certificate(&self) -> bool {
        self.conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }

    /// The protocol agreed through ALPN (`Some(b"http/1.1")`), or `None` if
    /// the client offered none.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated version as `"TLSv1.2"`/`"TLSv1.3"`, once known.
    pub fn protocol_version(&self) -> Option<&'static str> {
        match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
            rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
            _ => Some("TLS (other)"),
        }
    }

    /// The negotiated cipher suite's IANA name
    /// (`"TLS13_AES_256_GCM_SHA384"`), once known.
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.conn.negotiated_cipher_suite()?.suite().as_str()
    }

    /// The host name the client asked for with SNI, if it sent one.
    pub fn sni(&self) -> Option<&str> {
        self.conn.server_name()
    }

    /// The client's own certificate (DER), when it sent one that the
    /// verifier accepted (verify_mode=peer or force_peer).
    pub fn peer_certificate_der(&self) -> Option<&[u8]> {
        Some(self.conn.peer_certificates()?.first()?.as_ref())
    }

    /// `read_tls` that looks at the client's very first byte before rustls
    /// processes it: a TLS record starts with its content type (22, a
    /// handshake), never with a letter, so a letter means plain HTTP.
    fn read_tls_sniffing(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        if self.sniffed {
            return self.conn.read_tls(&mut FdIo(fd));
        }
        let mut io = FirstByte { fd, first: None };
        let read = self.conn.read_tls(&mut io);
        if let Some(first) = io.first {
            self.sniffed = true;
            if looks_like_plain_http(first) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, PlainHttp));
            }
        }
        read
    }

    /// Processes records read by `read_tls`, then sends without waiting what
    /// that produced (handshake messages, a KeyUpdate reply, an alert).
    fn process(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.buffered = state.plaintext_bytes_to_read();
                self.try_flush(fd)
            }
            Err(e) => {
                // rustls queued an alert that tells the client why; send it
                // if the socket takes it now.
                let _ = self.try_flush(fd);
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// Sends pending records until the socket would block.
    fn try_flush(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut FdIo(fd)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves every decrypted byte from rustls to `out`; notes a close.
    fn drain_plaintext(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let len = out.len();
            out.resize(len + PLAIN_CHUNK, 0);
            let res = self.conn.reader().read(&mut out[len..]);
            out.truncate(len + *res.as_ref().unwrap_or(&0));
            match res {
                // Reader::read gives Ok(0) only after close_notify.
                Ok(0) => self.peer_closed = true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP EOF without close_notify: a close all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.peer_closed = true,
                Err(e) => return Err(e),
            }
            self.buffered = 0;
            return Ok(());
        }
    }
}

/// A client spoke plain HTTP to a TLS port: the error of
/// [`TlsConn::handshake_step`] that [`is_plain_http`] recognizes.
#[derive(Debug)]
struct PlainHttp;

impl fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client sent plain HTTP to a TLS (ssl://) port")
    }
}

impl std::error::Error for PlainHttp {}

/// Whether a handshake failed because the client spoke plain HTTP.
pub fn is_plain_http(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<PlainHttp>())
}

/// Whether a connection's first byte starts plain HTTP rather than a TLS
/// record: a method's first letter, or the empty line RFC 9112 §2.2 lets
/// a client send before the request line. A record starts with its
/// content type (20 to 24) and an SSLv2-style hello with a byte >= 0x80.
fn looks_like_plain_http(first: u8) -> bool {
    first.is_ascii_alphabetic() || first == b'\r' || first == b'\n'
}

/// Answers a client that spoke plain HTTP to a TLS port the way nginx
/// does, in plain HTTP: `400 Bad Request` saying so, `Connection: close`.
/// Never waits (the reactor calls it): one send, which a fresh socket's
/// empty buffer takes whole, then the write side is shut and what the
/// client already sent is dropped (up to [`PLAIN_HTTP_DRAIN`]) so that the
/// close that follows is a FIN, not a reset that could destroy the answer.
pub fn answer_plain_http(fd: BorrowedFd<'_>) {
    let _ = sys::send(fd, &plain_http_answer(), false);
    let _ = sys::shutdown_write(fd);
    let mut scratch = [0u8; PLAIN_CHUNK];
    let mut dropped = 0;
    while dropped < PLAIN_HTTP_DRAIN {
        match sys::recv(fd, &mut scratch) {
            Ok(n) if n > 0 => dropped += n,
            _ => break,
        }
    }
}

/// The bytes of [`answer_plain_http`]'s response.
fn plain_http_answer() -> Vec<u8> {
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    crate::http::complete_response(400, &headers, PLAIN_HTTP_BODY.as_bytes())
}

/// [`FdIo`]'s reads, remembering the first byte received.
struct FirstByte<'a> {
    fd: BorrowedFd<'a>,
    first: Option<u8>,
}

impl Read for FirstByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = sys::recv(self.fd, buf)?;
        if n > 0 && self.first.is_none() {
            self.first = Some(buf[0]);
        }
        Ok(n)
    }
}

/// `io::Read`/`io::Write` over a non-blocking socket fd for rustls's
/// `read_tls`/`write_tls`, through the sys wrappers.
struct FdIo<'a>(BorrowedFd<'a>);

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.0, buf)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A certificate's validity period, in seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Validity {
    not_before: i64,
    not_after: i64,
}

/// DER tags used on the way to `validity` (X.690 8.1.2, RFC 5280 4.1).
const TAG_INTEGER: u8 = 0x02;
const TAG_SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT Version`, context-specific and constructed.
const TAG_VERSION: u8 = 0xA0;
const TAG_UTC_TIME: u8 = 0x17;
const TAG_GENERALIZED_TIME: u8 = 0x18;
/// Longest long-form length accepted: 4 octets (4 GiB) is far beyond any
/// certificate, and keeps the length within `usize` on every target.
const MAX_LENGTH_OCTETS: usize = 4;
/// RFC 5280 4.1.2.5.1: a UTCTime year `YY` >= 50 is 19YY, otherwise 20YY.
const UTC_TIME_PIVOT: i64 = 50;

/// Reads `notBefore`/`notAfter` of a DER certificate:
/// Certificate → tbsCertificate → skip `[0]` version, serial, signature
/// algorithm, issuer → validity `SEQUENCE { Time, Time }`. `None` on
/// anything malformed; never panics.
fn cert_validity(der: &[u8]) -> Option<Validity> {
    let (certificate, _) = der_expect(der, TAG_SEQUENCE)?;
    let (mut tbs, _) = der_expect(certificate, TAG_SEQUENCE)?;
    if tbs.first() == Some(&TAG_VERSION) {
        tbs = der_element(tbs)?.2;
    }
    let (_serial, tbs) = der_expect(tbs, TAG_INTEGER)?;
    let (_signature, tbs) = der_expect(tbs, TAG_SEQUENCE)?;
    let (_issuer, tbs) = der_expect(tbs, TAG_SEQUENCE)?;
    let (validity, _) = der_expect(tbs, TAG_SEQUENCE)?;
    let (not_before, rest) = der_time(validity)?;
    let (not_after, rest) = der_time(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Validity {
        not_before,
        not_after,
    })
}

/// Splits one DER element off `input`: (tag, contents, rest). Only the
/// single-octet tag form and definite lengths exist in DER certificates at
/// the depth we read.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high-tag-number form
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > MAX_LENGTH_OCTETS || rest.len() < octets {
            return None; // indefinite length (BER only), too long, or cut
        }
        let (bytes, rest) = rest.split_at(octets);
        let len = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        (usize::try_from(len).ok()?, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = der_element(input)?;
    (found == tag).then_some((contents, rest))
}

/// One `Time` (UTCTime or GeneralizedTime) as Unix seconds.
fn der_time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, contents, rest) = der_element(input)?;
    let secs = match tag {
        TAG_UTC_TIME => parse_time(contents, false)?,
        TAG_GENERALIZED_TIME => parse_time(contents, true)?,
        _ => return None,
    };
    Some((secs, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime), the
/// only forms RFC 5280 4.1.2.5 allows in certificates.
fn parse_time(s: &[u8], four_digit_year: bool) -> Option<i64> {
    let (year, rest) = if four_digit_year {
        (digits(s.get(..4)?)?, s.get(4..)?)
    } else {
        let yy = digits(s.get(..2)?)?;
        let year = if yy >= UTC_TIME_PIVOT {
            1900 + yy
        } else {
            2000 + yy
        };
        (year, s.get(2..)?)
    };
    if rest.len() != 11 || rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

use crate::date::days_from_civil;

/// (year, month, day) of a day number, from the calendar code in date.rs.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::date::civil_from_days(z);
    (y, i64::from(m), i64::from(d))
}

/// `2020-01-02 00:00:00 UTC`, for error messages.
fn format_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// The test PKI the integration tests use too (openssl CLI).
#[cfg(test)]
#[path = "../tests/support/pki.rs"]
mod test_pki;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::thread::JoinHandle;
    use std::time::Instant;

    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, StreamOwned};

    /// Every test's socket wait ends by then, so a bug fails instead of hanging.
    const TEST_DEADLINE: Duration = Duration::from_secs(10);
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(fd, Interest::Read, deadline)?
                }
                Err(e) => return Err(e),
            }
        }
        Ok((buf, largest))
    }

    /// Accepts one connection on a thread: handshake, read a head, answer
    /// `RESPONSE`, close_notify.
    fn serve_one(
        config: Arc<ServerConfig>,
        listener: TcpListener,
    ) -> JoinHandle<io::Result<Served>> {
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
            let mut client =
                TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
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

    /// A TLS 1.3 client's `Finished` and its request arrive in one read:
    /// the request is inside rustls when the handshake reports `Done`, and
    /// the socket is empty. read_plain must still return it.
    #[test]
    fn request_arriving_with_the_handshake_is_not_stranded() {
        let Some(dir) = fixtures() else { return };
        let (server_sock, mut client_sock) = UnixStream::pair().expect("socketpair");
        server_sock.set_nonblocking(true).expect("nonblocking");
        client_sock.set_nonblocking(true).expect("nonblocking");
        let fd = server_sock.as_fd();
        let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
        let mut tls = TlsConn::new(&config).expect("server session");
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

    #[test]
    fn tcp_eof_after_the_handshake_reads_as_a_close() {
        let Some(dir) = fixtures() else { return };
        let (server_sock, mut client_sock) = UnixStream::pair().expect("socketpair");
        server_sock.set_nonblocking(true).expect("nonblocking");
        client_sock.set_nonblocking(true).expect("nonblocking");
        let fd = server_sock.as_fd();
        let config = server_config(dir, VerifyMode::None, MinVersion::Tls12);
        let mut tls = TlsConn::new(&config).expect("server session");
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
}
