//! Bind URIs (`tcp://`, `unix://`) and the listening sockets made from
//! them. Listeners are built as one list before any thread exists, so the
//! process-wide umask can be set around a unix bind safely.

use std::fmt;
use std::path::PathBuf;

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
    pub fn parse(uri: &str) -> Result<BindSpec, String> {
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| format!("bind {uri:?}: expected tcp://HOST:PORT or unix:///ABSOLUTE/PATH"))?;
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = parse_query(uri, query)?;
        match scheme {
            "tcp" => {
                let (host, port) = split_host_port(addr)
                    .ok_or_else(|| format!("bind {uri:?}: expected tcp://HOST:PORT (IPv6 as [::1]:PORT)"))?;
                let mut backlog = DEFAULT_BACKLOG;
                for (k, v) in params {
                    match k {
                        "backlog" => backlog = parse_backlog(uri, v)?,
                        // Puma's flag; catamount always sets TCP_NODELAY.
                        "low_latency" => {}
                        _ => return Err(format!("bind {uri:?}: unknown option {k:?}; tcp binds take backlog")),
                    }
                }
                Ok(BindSpec::Tcp { host, port, backlog })
            }
            "unix" => {
                if !addr.starts_with('/') {
                    return Err(format!("bind {uri:?}: expected an absolute path, as in unix:///run/app.sock"));
                }
                let mut spec_umask = None;
                let mut mode = None;
                let mut backlog = DEFAULT_BACKLOG;
                for (k, v) in params {
                    match k {
                        "umask" => spec_umask = Some(parse_octal(uri, k, v, 0o777)?),
                        "mode" => mode = Some(parse_octal(uri, k, v, 0o7777)?),
                        "backlog" => backlog = parse_backlog(uri, v)?,
                        _ => {
                            return Err(format!(
                                "bind {uri:?}: unknown option {k:?}; unix binds take umask, mode, backlog"
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
            "ssl" => Err(format!("bind {uri:?}: ssl:// binds are not supported yet")),
            "fd" => Err(format!("bind {uri:?}: fd:// binds are not supported yet")),
            _ => Err(format!("bind {uri:?}: unknown scheme {scheme:?}; expected tcp:// or unix://")),
        }
    }
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::Tcp { host, port, .. } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            BindSpec::Tcp { host, port, .. } => write!(f, "tcp://{host}:{port}"),
            BindSpec::Unix { path, .. } => write!(f, "unix://{}", path.display()),
        }
    }
}

fn parse_query<'a>(uri: &str, query: &'a str) -> Result<Vec<(&'a str, &'a str)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some(kv) => Ok(kv),
            None if p == "low_latency" => Ok((p, "")),
            None => Err(format!("bind {uri:?}: option {p:?} needs a value, as in {p}=...")),
        })
        .collect()
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

fn parse_backlog(uri: &str, v: &str) -> Result<i32, String> {
    match v.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("bind {uri:?}: backlog {v:?} is not a positive integer")),
    }
}

fn parse_octal(uri: &str, key: &str, v: &str, max: u32) -> Result<u32, String> {
    match u32::from_str_radix(v, 8) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("bind {uri:?}: {key} {v:?} is not an octal mode such as 0660")),
    }
}
