//! Bind URIs (`tcp://`, `ssl://`, `unix://`, `fd://`): what a `--bind`,
//! a `bind` directive or a control URL says ([`BindSpec`]), parsed with
//! errors that name the URI ([`BindUriError`]); and what a host means:
//! the one place that says what `localhost` is ([`resolve`],
//! [`loopback_ip`]). No socket is made here: `listeners` binds and adopts.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::tls::TlsOptions;

/// Listen backlog when a bind gives none (Puma's).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// One validated bind URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// `tcp://HOST:PORT?backlog=N`; HOST is an IPv4 literal, `[IPv6]`,
    /// `localhost` (every loopback address) or a name from /etc/hosts.
    Tcp {
        host: String,
        port: u16,
        backlog: i32,
        /// `ssl://`: certificate, key and client-verification options.
        tls: Option<TlsOptions>,
    },
    /// `fd://NAME` or `fd://3`: an inherited socket, by its
    /// `FileDescriptorName=` or its descriptor number.
    Fd {
        name: String,
        tls: Option<TlsOptions>,
    },
    /// `unix:///abs/path?umask=0117&mode=0660&backlog=N`.
    Unix {
        path: PathBuf,
        umask: Option<u32>,
        mode: Option<u32>,
        backlog: i32,
    },
}

impl BindSpec {
    /// Parses a bind URI; the error says what was expected.
    pub fn parse(uri: &str) -> Result<BindSpec, BindUriError> {
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
            BindUriError::new(
                uri,
                "expected tcp://HOST:PORT, unix:///ABSOLUTE/PATH, \
                 ssl://HOST:PORT?cert=PATH&key=PATH or fd://NAME"
                    .to_string(),
            )
        })?;
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = parse_query(uri, query)?;
        match scheme {
            "tcp" | "ssl" => {
                let (host, port) = split_host_port(addr).ok_or_else(|| {
                    BindUriError::new(
                        uri,
                        format!("expected {scheme}://HOST:PORT (IPv6 as [::1]:PORT)"),
                    )
                })?;
                let mut backlog = DEFAULT_BACKLOG;
                let mut tls_params = Vec::new();
                for (k, v) in params {
                    match k {
                        "backlog" => backlog = parse_backlog(uri, &v)?,
                        // Puma's flag; catamount always sets TCP_NODELAY.
                        "low_latency" => {}
                        _ if scheme == "ssl" => tls_params.push((k, v)),
                        _ => {
                            return Err(BindUriError::new(
                                uri,
                                format!("unknown option {k:?}; tcp binds take backlog"),
                            ))
                        }
                    }
                }
                let tls = if scheme == "ssl" {
                    Some(tls_options(uri, &tls_params)?)
                } else {
                    None
                };
                Ok(BindSpec::Tcp {
                    host,
                    port,
                    backlog,
                    tls,
                })
            }
            "unix" => {
                if !addr.starts_with('/') {
                    return Err(BindUriError::new(
                        uri,
                        "expected an absolute path, as in unix:///run/app.sock".to_string(),
                    ));
                }
                let mut spec_umask = None;
                let mut mode = None;
                let mut backlog = DEFAULT_BACKLOG;
                for (k, v) in params {
                    match k {
                        "umask" => spec_umask = Some(parse_octal(uri, k, &v, 0o777)?),
                        "mode" => mode = Some(parse_octal(uri, k, &v, 0o7777)?),
                        "backlog" => backlog = parse_backlog(uri, &v)?,
                        _ => {
                            return Err(BindUriError::new(
                                uri,
                                format!(
                                    "unknown option {k:?}; unix binds take umask, mode, backlog"
                                ),
                            ))
                        }
                    }
                }
                Ok(BindSpec::Unix {
                    path: PathBuf::from(addr),
                    umask: spec_umask,
                    mode,
                    backlog,
                })
            }
            "fd" => {
                if addr.is_empty() || addr.contains(':') {
                    return Err(BindUriError::new(
                        uri,
                        "expected fd://NAME (a socket unit's FileDescriptorName=) or fd://3"
                            .to_string(),
                    ));
                }
                // fd://NAME?cert=...&key=...: TLS on an activated socket.
                let tls = if params.is_empty() {
                    None
                } else {
                    Some(tls_options(uri, &params)?)
                };
                Ok(BindSpec::Fd {
                    name: addr.to_string(),
                    tls,
                })
            }
            _ => Err(BindUriError::new(
                uri,
                format!("unknown scheme {scheme:?}; expected tcp://, unix://, ssl:// or fd://"),
            )),
        }
    }
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::Tcp {
                host, port, tls, ..
            } => {
                let scheme = if tls.is_some() { "ssl" } else { "tcp" };
                if host.contains(':') {
                    write!(f, "{scheme}://[{host}]:{port}")
                } else {
                    write!(f, "{scheme}://{host}:{port}")
                }
            }
            BindSpec::Unix { path, .. } => write!(f, "unix://{}", path.display()),
            BindSpec::Fd { name, .. } => write!(f, "fd://{name}"),
        }
    }
}

/// `k=v&k2=v2` with the values percent-decoded (certificate paths may
/// need `%20` and the like).
fn parse_query<'a>(uri: &str, query: &'a str) -> Result<Vec<(&'a str, String)>, BindUriError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => crate::http::percent_decode(v)
                .and_then(|b| String::from_utf8(b).ok())
                .map(|v| (k, v))
                .ok_or_else(|| BindUriError::new(uri, format!("option {k:?} has a bad %-escape"))),
            None if p == "low_latency" => Ok((p, String::new())),
            None => Err(BindUriError::new(
                uri,
                format!("option {p:?} needs a value, as in {p}=..."),
            )),
        })
        .collect()
}

fn tls_options(uri: &str, params: &[(&str, String)]) -> Result<TlsOptions, BindUriError> {
    let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TlsOptions::parse_query(&refs).map_err(|e| BindUriError::new(uri, e.to_string()))
}

/// `host:port` or `[v6]:port` → (host without brackets, port).
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        (h, p)
    } else {
        let (h, p) = addr.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

fn parse_backlog(uri: &str, v: &str) -> Result<i32, BindUriError> {
    match v.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BindUriError::new(
            uri,
            format!("backlog {v:?} is not a positive integer"),
        )),
    }
}

fn parse_octal(uri: &str, key: &str, v: &str, max: u32) -> Result<u32, BindUriError> {
    match u32::from_str_radix(v, 8) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(BindUriError::new(
            uri,
            format!("{key} {v:?} is not an octal mode such as 0660"),
        )),
    }
}

/// A bind URI that does not parse: which URI, and what is wrong with it
/// and what was expected. Shown as `bind "URI": PROBLEM`; a caller that
/// names the URI its own way (`--bind "URI": `, `control URL "URI": `)
/// uses [`BindUriError::problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindUriError {
    uri: String,
    problem: String,
}

impl BindUriError {
    fn new(uri: &str, problem: String) -> BindUriError {
        BindUriError {
            uri: uri.to_string(),
            problem,
        }
    }

    /// The URI as given.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// What is wrong and what was expected, without the URI.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for BindUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bind {:?}: {}", self.uri, self.problem)
    }
}

impl BindSpec {
    /// The TLS options of an `ssl://` or `fd://NAME?cert=` bind.
    pub fn tls(&self) -> Option<&TlsOptions> {
        match self {
            BindSpec::Tcp { tls, .. } | BindSpec::Fd { tls, .. } => tls.as_ref(),
            BindSpec::Unix { .. } => None,
        }
    }
}

/// The host name that means the loopback addresses, as Puma reads it:
/// every one for a bind ([`resolve`]), 127.0.0.1 for the control app
/// ([`loopback_ip`]). A bind still succeeds on a machine without IPv6
/// (`listeners` skips the `::1` that cannot be bound).
pub fn is_localhost(host: &str) -> bool {
    host == "localhost"
}

/// `localhost` means every loopback address (127.0.0.1 and ::1), as Puma.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if is_localhost(host) {
        return Ok(vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        ));
    }
    Ok(addrs)
}

/// A host a control URL may name, as an address to bind: `localhost`
/// (127.0.0.1: the control app binds one socket) or an IP literal in
/// 127.0.0.0/8 or `::1`; `None` for anything else, since whoever reaches
/// the control app can stop the server.
pub fn loopback_ip(host: &str) -> Option<IpAddr> {
    if is_localhost(host) {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse::<IpAddr>().ok().filter(IpAddr::is_loopback)
}
