//! The listening sockets made from bind URIs (`crate::bind`): inherited
//! ones adopted by name or address, the rest bound (tcp, unix with its
//! umask and mode), and the socket files catamount created, removed only
//! while they are still the same file. Listeners are built as one list
//! before any thread exists, so the process-wide umask can be set around
//! a unix bind safely.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::activation::{self, Inherited};
use crate::bind::{is_localhost, resolve, BindSpec};
use crate::config::ActivatedMode;
use crate::sys::{self, SockName};
use crate::tls::TlsOptions;

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
    /// A socket file catamount created, unlinked at final exit.
    created: Option<SocketFile>,
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
                .find(|(spec, _)| spec_matches(spec, &i))
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
                    match tcp_listener(&addr, *backlog, &name) {
                        Ok(l) => out.push(l.with_tls(tls.clone())),
                        // `localhost` on a host without IPv6: the v4 socket is enough.
                        Err(e)
                            if is_localhost(host)
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
                    None => out.push(unix_listener(path, *umask, *perm, *backlog, &name)?),
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

/// Does this bind name the inherited socket `i` (by name, or by
/// resolved address / unix path)?
fn spec_matches(spec: &BindSpec, i: &Inherited) -> bool {
    match spec {
        BindSpec::Fd { name, .. } => &i.name == name,
        BindSpec::Tcp { host, port, .. } => {
            resolve(host, *port).is_ok_and(|addrs| addrs.iter().any(|a| same_inet(&i.addr, a)))
        }
        BindSpec::Unix { path, .. } => same_unix_path(&i.addr, path),
    }
}

fn same_inet(addr: &SockName, want: &SocketAddr) -> bool {
    matches!(addr, SockName::Inet(a) if a.ip() == want.ip() && a.port() == want.port())
}

/// `fd://3`: the inherited socket with that descriptor number (compared
/// as a number: the user wrote one).
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
        (SockName::UnixPath(Some(p)), false) => SocketFile::of(p),
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
        if let Some(f) = &self.created {
            f.remove();
        }
    }
}

/// A unix socket file catamount created (a listener's or the control
/// app's): its path and the inode it had, so that only that file is ever
/// unlinked, never one another server has put at the same path since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket file at `path` as it is now; `None` if there is none.
    pub(crate) fn of(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.file_type().is_socket().then(|| SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Unlinks the file if it is still the one recorded. Call at final
    /// exit only: never in a forked worker.
    pub(crate) fn remove(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// What to do after a failed bind(2): shared by listeners and the
/// control app.
pub(crate) fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "; another process listens there: stop it or choose another port",
        Some(libc::EACCES) => "; ports below 1024 need root or CAP_NET_BIND_SERVICE",
        Some(libc::EADDRNOTAVAIL) => "; that address is not on any interface of this machine",
        _ => "",
    }
}

fn tcp_listener(addr: &SocketAddr, backlog: i32, name: &str) -> io::Result<Listener> {
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

fn unix_listener(
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
/// file, so only this file is ever unlinked.
pub(crate) fn bind_unix_socket(
    path: &Path,
    mask: Option<u32>,
    mode: Option<u32>,
    backlog: i32,
) -> io::Result<(OwnedFd, SocketFile)> {
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
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((fd, file))
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
