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
//!
//! By role: here the options and loading a configuration; [`conn`] the
//! session ([`TlsConn`]) and the plain-HTTP answer; [`validity`] the
//! certificate's dates. Items are re-exported here (`tls::TlsConn`), the
//! names tls_off.rs mirrors.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, SupportedProtocolVersion};
// Named by listeners.rs; tls_off.rs has a ServerConfig of its own.
pub use rustls::ServerConfig;

mod conn;
mod validity;

pub use conn::*;
use validity::{cert_validity, format_utc};

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

/// The test PKI the integration tests use too (openssl CLI).
#[cfg(test)]
#[path = "../../tests/support/pki.rs"]
mod test_pki;

#[cfg(test)]
mod tests;
