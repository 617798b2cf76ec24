//! Bind URIs (`tcp://`, `unix://`) and the listening sockets made from
//! them. Listeners are built as one list before any thread exists, so the
//! process-wide umask can be set around a unix bind safely.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::activation::{self, Inherited};
use crate::config::ActivatedMode;
use crate::sys::{self, SockName};
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
    pub fn parse(uri: &str) -> Result<BindSpec, String> {
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
            format!(
                "bind {uri:?}: expected tcp://HOST:PORT, unix:///ABSOLUTE/PATH, \
                 ssl://HOST:PORT?cert=PATH&key=PATH or fd://NAME"
            )
        })?;
        let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = parse_query(uri, query)?;
        match scheme {
            "tcp" | "ssl" => {
                let (host, port) = split_host_port(addr).ok_or_else(|| {
                    format!("bind {uri:?}: expected {scheme}://HOST:PORT (IPv6 as [::1]:PORT)")
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
                            return Err(format!(
                                "bind {uri:?}: unknown option {k:?}; tcp binds take backlog"
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
                    return Err(format!(
                        "bind {uri:?}: expected an absolute path, as in unix:///run/app.sock"
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
            "fd" => {
                if addr.is_empty() || addr.contains(':') {
                    return Err(format!(
                        "bind {uri:?}: expected fd://NAME (a socket unit's FileDescriptorName=) or fd://3"
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
            _ => Err(format!(
                "bind {uri:?}: unknown scheme {scheme:?}; expected tcp://, unix://, ssl:// or fd://"
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
fn parse_query<'a>(uri: &str, query: &'a str) -> Result<Vec<(&'a str, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => crate::http::percent_decode(v)
                .and_then(|b| String::from_utf8(b).ok())
                .map(|v| (k, v))
                .ok_or_else(|| format!("bind {uri:?}: option {k:?} has a bad %-escape")),
            None if p == "low_latency" => Ok((p, String::new())),
            None => Err(format!(
                "bind {uri:?}: option {p:?} needs a value, as in {p}=..."
            )),
        })
        .collect()
}

fn tls_options(uri: &str, params: &[(&str, String)]) -> Result<TlsOptions, String> {
    let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TlsOptions::parse_query(&refs).map_err(|e| format!("bind {uri:?}: {e}"))
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
        _ => Err(format!(
            "bind {uri:?}: backlog {v:?} is not a positive integer"
        )),
    }
}

fn parse_octal(uri: &str, key: &str, v: &str, max: u32) -> Result<u32, String> {
    match u32::from_str_radix(v, 8) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "bind {uri:?}: {key} {v:?} is not an octal mode such as 0660"
        )),
    }
}

/// A listening socket and what is needed to report, pass on and clean it up.
#[derive(Debug)]
pub struct Listener {
    /// The listening socket (non-blocking accepts come from `sys::accept`).
    pub fd: OwnedFd,
    /// True for TCP (TCP_NODELAY is set on its connections).
    pub is_tcp: bool,
    /// How the startup log names it: `http://127.0.0.1:9292` or `unix:///path`.
    pub url: String,
    /// The name it is passed on under (hot restart, fd store): systemd's
    /// name for a socket systemd owns, `catamount+<bind URI>` for our own.
    pub name: String,
    /// systemd owns it (socket activation): never unlink, never store.
    pub systemd_owned: bool,
    /// A socket file catamount created: (path, device, inode). Unlinked at
    /// final exit only while it is still the same file.
    created: Option<(PathBuf, u64, u64)>,
    /// `ssl://`: connections are TLS.
    pub tls: Option<Tls>,
}

/// Why a bind failed; the message names the bind and what to do.
#[derive(Debug)]
pub struct BindError {
    message: String,
    /// The errno of the system call that failed (EADDRINUSE, EACCES...),
    /// for systemd's `ERRNO=`; `None` when none failed (a socket name
    /// nothing was passed under, a certificate that does not load).
    errno: Option<i32>,
}

impl BindError {
    pub(crate) fn new(message: String) -> BindError {
        BindError {
            message,
            errno: None,
        }
    }

    /// A failed system call: keeps its errno.
    pub(crate) fn os(message: String, e: &io::Error) -> BindError {
        BindError {
            message,
            errno: e.raw_os_error(),
        }
    }

    /// A bind refused as bind(2) would refuse it, with `errno`.
    pub(crate) fn with_errno(message: String, errno: i32) -> BindError {
        BindError {
            message,
            errno: Some(errno),
        }
    }

    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Opens every listener: adopts the inherited sockets that match a bind
/// (by name for our own sockets, else by resolved address or unix path),
/// binds the rest, and applies `bind_to_activated_sockets` to the
/// inherited sockets left over. Call before any thread exists: a unix bind
/// with `umask=` changes the process-wide umask for the duration of
/// bind(2). `log` receives Puma's `* Activated ...` lines.
pub fn open_all(
    specs: &[BindSpec],
    mut inherited: Vec<Inherited>,
    mode: ActivatedMode,
    log: &mut dyn FnMut(String),
) -> Result<Vec<Listener>, BindError> {
    // Certificates are loaded before anything is bound: a bad one is a
    // start-up error naming the file.
    let mut tls_of = Vec::with_capacity(specs.len());
    for spec in specs {
        tls_of.push(match spec.tls() {
            Some(o) => Some(Tls::load(o).map_err(|e| BindError::new(format!("bind {spec}: {e}")))?),
            None => None,
        });
    }
    let mut out = Vec::new();
    let systemd_passed = inherited.iter().any(|i| !i.is_own());
    if mode == ActivatedMode::Only && systemd_passed {
        // `only`: the sockets systemd passed, alone; configured binds are
        // dropped (Puma's semantics) except that one matching a passed
        // socket lends it its TLS options. Names travel with the sockets,
        // so this survives hot restarts.
        for i in inherited.drain(..) {
            if i.is_own() {
                close_unused(i, log);
                continue;
            }
            let tls = specs
                .iter()
                .zip(&tls_of)
                .find(|(spec, _)| spec.matches(&i))
                .and_then(|(_, t)| t.clone());
            out.push(adopt(i, tls, log));
        }
        return Ok(out);
    }
    for (spec, tls) in specs.iter().zip(tls_of) {
        let name = activation::own_name(&spec.to_string());
        match spec {
            BindSpec::Fd { name: wanted, .. } => {
                let pos = inherited
                    .iter()
                    .position(|i| &i.name == wanted)
                    .or_else(|| fd_number_match(&inherited, wanted));
                match pos {
                    Some(p) => out.push(adopt(inherited.remove(p), tls, log)),
                    None => {
                        return Err(BindError::new(format!(
                            "bind {spec}: no inherited socket has that name or number (names passed: {}); \
                             check FileDescriptorName= in the .socket unit",
                            names_list(&inherited)
                        )))
                    }
                }
            }
            BindSpec::Tcp {
                host,
                port,
                backlog,
                ..
            } => {
                // Our own sockets from before a hot restart, by name: this
                // keeps port 0 and `localhost` binds on the same sockets.
                let mine = take_where(&mut inherited, |i| i.name == name);
                if !mine.is_empty() {
                    out.extend(mine.into_iter().map(|i| adopt(i, tls.clone(), log)));
                    continue;
                }
                for addr in resolve(host, *port)
                    .map_err(|e| BindError::os(format!("bind {spec}: {e}"), &e))?
                {
                    let found = inherited.iter().position(|i| same_inet(&i.addr, &addr));
                    if let Some(p) = found {
                        out.push(adopt(inherited.remove(p), tls.clone(), log));
                        continue;
                    }
                    match bind_tcp(&addr, *backlog, &name) {
                        Ok(l) => out.push(l.with_tls(tls.clone())),
                        // `localhost` on a host without IPv6: the v4 socket is enough.
                        Err(e)
                            if host == "localhost"
                                && addr.is_ipv6()
                                && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                        Err(e) => {
                            return Err(BindError::os(
                                format!("bind {spec} ({addr}): {e}{}", hint(&e)),
                                &e,
                            ))
                        }
                    }
                }
            }
            BindSpec::Unix {
                path,
                umask,
                mode: perm,
                backlog,
            } => {
                let found = inherited
                    .iter()
                    .position(|i| i.name == name || same_unix_path(&i.addr, path));
                match found {
                    Some(p) => out.push(adopt(inherited.remove(p), None, log)),
                    None => out.push(bind_unix(path, *umask, *perm, *backlog, &name)?),
                }
            }
        }
    }
    for i in inherited {
        if mode == ActivatedMode::On && !i.is_own() {
            out.push(adopt(i, None, log));
        } else {
            close_unused(i, log);
        }
    }
    Ok(out)
}

/// A listener's TLS: the options (to reload certificates) and the loaded
/// rustls configuration shared by its connections.
#[derive(Clone, Debug)]
pub struct Tls {
    pub options: TlsOptions,
    pub config: Arc<crate::tls::ServerConfig>,
}

impl Tls {
    /// Reads the certificate and key now (start-up and reloads).
    pub fn load(options: &TlsOptions) -> Result<Tls, crate::tls::TlsError> {
        Ok(Tls {
            options: options.clone(),
            config: crate::tls::load(options)?,
        })
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

    /// Does this bind name the inherited socket `i` (by name, or by
    /// resolved address / unix path)?
    fn matches(&self, i: &Inherited) -> bool {
        match self {
            BindSpec::Fd { name, .. } => &i.name == name,
            BindSpec::Tcp { host, port, .. } => {
                resolve(host, *port).is_ok_and(|addrs| addrs.iter().any(|a| same_inet(&i.addr, a)))
            }
            BindSpec::Unix { path, .. } => same_unix_path(&i.addr, path),
        }
    }
}

fn same_inet(addr: &SockName, want: &SocketAddr) -> bool {
    matches!(addr, SockName::Inet(a) if a.ip() == want.ip() && a.port() == want.port())
}

/// `fd://3`: the inherited socket with that descriptor number.
fn fd_number_match(inherited: &[Inherited], wanted: &str) -> Option<usize> {
    let n: i32 = wanted.parse().ok()?;
    inherited.iter().position(|i| i.fd.as_raw_fd() == n)
}

fn names_list(inherited: &[Inherited]) -> String {
    if inherited.is_empty() {
        return "none".to_string();
    }
    inherited
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn take_where(v: &mut Vec<Inherited>, f: impl Fn(&Inherited) -> bool) -> Vec<Inherited> {
    let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(v).into_iter().partition(|i| f(i));
    *v = kept;
    taken
}

/// A unix bind matches an inherited socket by its path, or by the path
/// with symlinked directories resolved (a release folder reached through
/// a `current` symlink, as in Puma's systemd docs).
fn same_unix_path(addr: &SockName, path: &Path) -> bool {
    let SockName::UnixPath(Some(p)) = addr else {
        return false;
    };
    if p == path {
        return true;
    }
    let canon = |x: &Path| -> Option<PathBuf> {
        let dir = std::fs::canonicalize(x.parent()?).ok()?;
        Some(dir.join(x.file_name()?))
    };
    matches!((canon(p), canon(path)), (Some(a), Some(b)) if a == b)
}

fn adopt(i: Inherited, tls: Option<Tls>, log: &mut dyn FnMut(String)) -> Listener {
    let systemd_owned = !i.is_own();
    let is_tcp = matches!(i.addr, SockName::Inet(_));
    let url = match &i.addr {
        SockName::Inet(a) => format!("http://{a}"),
        other => activation::sock_uri(other),
    };
    // Our own unix socket from before a hot restart stays ours to remove.
    let created = match (&i.addr, systemd_owned) {
        (SockName::UnixPath(Some(p)), false) => std::fs::symlink_metadata(p)
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(|m| (p.clone(), m.dev(), m.ino())),
        _ => None,
    };
    if systemd_owned {
        log(format!("* Activated {}", i.uri()));
    } else {
        log(format!(
            "* Inherited {}",
            i.own_uri().unwrap_or_else(|| i.uri())
        ));
    }
    Listener {
        fd: i.fd,
        is_tcp,
        url,
        name: i.name,
        systemd_owned,
        created,
        tls: None,
    }
    .with_tls(tls)
}

/// Closes an inherited socket no bind wants. systemd's are only closed
/// (never unlinked: systemd owns them); our own also lose their file.
fn close_unused(i: Inherited, log: &mut dyn FnMut(String)) {
    if i.is_own() {
        log(format!("* Closing unused inherited socket: {}", i.uri()));
        if let SockName::UnixPath(Some(p)) = &i.addr {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(p);
            }
        }
    } else {
        log(format!("* Closing unused activated socket: {}", i.uri()));
    }
}

impl Listener {
    /// How a handler names this listener ([`crate::Request::listener`]):
    /// `fd://NAME` for a socket systemd owns, otherwise its bind URI with
    /// the address it got (`tcp://127.0.0.1:9292`, `ssl://...`,
    /// `unix:///run/app.sock`).
    pub fn label(&self) -> String {
        if self.systemd_owned {
            return format!("fd://{}", self.name);
        }
        match self.url.strip_prefix("http://") {
            Some(rest) => format!("tcp://{rest}"),
            None => self.url.clone(),
        }
    }

    fn with_tls(mut self, tls: Option<Tls>) -> Listener {
        if tls.is_some() {
            if let Some(rest) = self.url.strip_prefix("http://") {
                self.url = format!("ssl://{rest}");
            }
        }
        self.tls = tls;
        self
    }

    /// Unlinks the socket file if catamount created it and it is still
    /// the same file (another server may have replaced it since).
    pub fn remove_socket_file(&self) {
        if let Some((path, dev, ino)) = &self.created {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.dev() == *dev && meta.ino() == *ino {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "; another process listens there: stop it or choose another port",
        Some(libc::EACCES) => "; ports below 1024 need root or CAP_NET_BIND_SERVICE",
        Some(libc::EADDRNOTAVAIL) => "; that address is not on any interface of this machine",
        _ => "",
    }
}

/// `localhost` means every loopback address (127.0.0.1 and ::1), as Puma.
fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if host == "localhost" {
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

fn bind_tcp(addr: &SocketAddr, backlog: i32, name: &str) -> io::Result<Listener> {
    let (fd, actual) = bind_inet_socket(addr, backlog)?;
    Ok(Listener {
        fd,
        is_tcp: true,
        url: format!("http://{actual}"),
        name: name.to_string(),
        systemd_owned: false,
        created: None,
        tls: None,
    })
}

/// A listening inet socket (SO_REUSEADDR; IPV6_V6ONLY for v6, so
/// tcp://0.0.0.0:P and tcp://[::]:P can both be bound, as nginx) and the
/// address it got (the real port when 0 was asked). Also used by the
/// control app.
pub(crate) fn bind_inet_socket(
    addr: &SocketAddr,
    backlog: i32,
) -> io::Result<(OwnedFd, SocketAddr)> {
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let fd = sys::stream_socket(family)?;
    sys::set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        sys::set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    sys::bind_inet(&fd, addr)?;
    sys::listen(&fd, backlog)?;
    let actual = sys::local_inet_addr(&fd)?.unwrap_or(*addr);
    Ok((fd, actual))
}

fn bind_unix(
    path: &Path,
    mask: Option<u32>,
    mode: Option<u32>,
    backlog: i32,
    name: &str,
) -> Result<Listener, BindError> {
    let shown = path.display();
    // A path in use is EADDRINUSE, as bind(2) itself says.
    clear_unix_path(path).map_err(|e| match e {
        UnixPathError::Live => BindError::with_errno(
            format!("There is already a server bound to: {shown}"),
            libc::EADDRINUSE,
        ),
        UnixPathError::NotSocket => BindError::with_errno(
            format!(
                "bind unix://{shown}: the path exists and is not a socket; remove it or choose another path"
            ),
            libc::EADDRINUSE,
        ),
        UnixPathError::Io(why) => BindError::new(format!("bind unix://{shown}: {why}")),
    })?;
    let (fd, created) = bind_unix_socket(path, mask, mode, backlog)
        .map_err(|e| BindError::os(format!("bind unix://{shown}: {e}"), &e))?;
    Ok(Listener {
        fd,
        is_tcp: false,
        url: format!("unix://{shown}"),
        name: name.to_string(),
        systemd_owned: false,
        tls: None,
        created: Some(created),
    })
}

/// Why a unix socket path cannot be bound.
pub(crate) enum UnixPathError {
    /// A live server answers on it.
    Live,
    /// Something other than a socket is there.
    NotSocket,
    /// It could not be checked or cleared (the reason).
    Io(String),
}

/// Makes `path` free for a bind: nothing there is fine, a stale socket
/// file (nobody answers) is removed, a live socket or another file is an
/// error. Also used by the control app.
pub(crate) fn clear_unix_path(path: &Path) -> Result<(), UnixPathError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => Err(UnixPathError::Live),
            // A stale socket file left by a process that died.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
                .map_err(|e| {
                    UnixPathError::Io(format!("cannot remove the stale socket file: {e}"))
                }),
            Err(e) => Err(UnixPathError::Io(format!(
                "cannot check the existing socket file: {e}"
            ))),
        },
        Ok(_) => Err(UnixPathError::NotSocket),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(UnixPathError::Io(e.to_string())),
    }
}

/// A listening unix socket at `path` (which [`clear_unix_path`] freed):
/// `mask` is the umask during bind(2) — process-wide, so call before any
/// thread exists — and `mode` is set after. Returns the socket and the
/// file's (path, device, inode), so only this file is ever unlinked.
pub(crate) fn bind_unix_socket(
    path: &Path,
    mask: Option<u32>,
    mode: Option<u32>,
    backlog: i32,
) -> io::Result<(OwnedFd, (PathBuf, u64, u64))> {
    let fd = sys::stream_socket(libc::AF_UNIX)?;
    let old = mask.map(sys::umask);
    let bound = sys::bind_unix(&fd, path);
    if let Some(old) = old {
        sys::umask(old);
    }
    bound?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    sys::listen(&fd, backlog)?;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((fd, (path.to_path_buf(), meta.dev(), meta.ino())))
}

/// Listeners for the request path's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Listener;
    use crate::sys;

    /// A socket file, removed when dropped.
    pub struct SocketFile(pub PathBuf);

    impl Drop for SocketFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A non-blocking unix listener in the temp directory: a client's
    /// bytes are in the server's socket as soon as its write returns,
    /// before any accept, so a test knows what an accept will find.
    pub fn unix() -> (Listener, SocketFile) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "catamount-listener-{}-{n}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind a unix listener");
        sys::set_nonblocking(&listener).expect("non-blocking");
        let l = Listener {
            fd: listener.into(),
            is_tcp: false,
            url: format!("unix://{}", path.display()),
            name: "test".to_string(),
            systemd_owned: false,
            created: None,
            tls: None,
        };
        (l, SocketFile(path))
    }
}
