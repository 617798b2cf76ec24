//! The one door to the kernel: every `libc` call in catamount lives here,
//! wrapped in a small safe function that returns `io::Result` (`-1` becomes
//! `io::Error::last_os_error()`, `EINTR` is retried where the call is
//! restartable). The rest of the crate uses these wrappers and std types.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// `-1` → the thread's last OS error.
fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call was interrupted by a signal.
fn cvt_r<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes a descriptor the kernel has just created
    // for this process (socket, accept4, epoll_create1, eventfd, pipe2,
    // openat, fcntl(F_DUPFD_CLOEXEC)), so no other object owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---------------------------------------------------------------- sockets

/// A new non-blocking, close-on-exec `SOCK_STREAM` socket of `family`
/// (for listeners: the reactor accepts until `WouldBlock`).
pub fn stream_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket(2) takes plain integers and returns a new descriptor.
    let fd = cvt(unsafe { libc::socket(family, ty, 0) })?;
    Ok(owned(fd))
}

/// Sets an integer socket option.
pub fn set_int_opt(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int whose size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Reads an integer socket option.
pub fn get_int_opt(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are live locals; len holds value's size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// `TCP_NODELAY` on an accepted TCP connection.
pub fn set_nodelay(fd: &impl AsFd) -> io::Result<()> {
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

/// Shuts down the sending side of a connection (never used on listeners:
/// an activated listening socket belongs to systemd).
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown(2) takes plain integers; the borrow keeps fd open.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) })?;
    Ok(())
}

/// Binds `fd` to an IP address.
pub fn bind_inet(fd: &impl AsFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_from_inet(addr);
    // SAFETY: storage is a properly initialised sockaddr of length len.
    cvt(unsafe {
        libc::bind(
            fd.as_fd().as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    Ok(())
}

/// Binds `fd` to a unix socket path.
pub fn bind_unix(fd: &impl AsFd, path: &Path) -> io::Result<()> {
    let (addr, len) = sockaddr_un(path.as_os_str().as_bytes())?;
    // SAFETY: addr is an initialised sockaddr_un of length len.
    cvt(unsafe {
        libc::bind(
            fd.as_fd().as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(())
}

/// Marks a bound socket as listening.
pub fn listen(fd: &impl AsFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) takes plain integers.
    cvt(unsafe { libc::listen(fd.as_fd().as_raw_fd(), backlog) })?;
    Ok(())
}

/// Accepts one connection, non-blocking and close-on-exec.
pub fn accept(fd: &impl AsFd) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed by accept4(2).
    let new = cvt_r(|| unsafe {
        libc::accept4(
            fd.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    Ok(owned(new))
}

/// [`accept`], with the peer's address as accept4(2) reports it (`None`
/// for a unix socket): a client that leaves at once is gone before
/// getpeername(2) could ask.
pub fn accept_with_peer(fd: &impl AsFd) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are live locals; len holds storage's size
    // and accept4 writes at most that many bytes.
    let new = cvt_r(|| unsafe {
        libc::accept4(
            fd.as_fd().as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    Ok((owned(new), inet_from_sockaddr(&storage)))
}

/// The local address of an inet socket (`None` for other families).
pub fn local_inet_addr(fd: &impl AsFd) -> io::Result<Option<SocketAddr>> {
    sock_name(fd, libc::getsockname)
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn sock_name(fd: &impl AsFd, f: NameFn) -> io::Result<Option<SocketAddr>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are live locals; len holds storage's size;
    // f is getsockname or getpeername, which write at most len bytes.
    cvt(unsafe {
        f(
            fd.as_fd().as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    Ok(inet_from_sockaddr(&storage))
}

/// Receives into `buf` (non-blocking sockets return `WouldBlock`).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    // SAFETY: buf is a live, writable slice of the length passed; the
    // borrow keeps fd open.
    let n = cvt_r(|| unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })?;
    Ok(n as usize)
}

/// Sends from `buf` without raising SIGPIPE; `more` sets MSG_MORE (more
/// data follows at once, so the kernel may merge it into one segment).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: buf is a live slice of the length passed; the borrow keeps
    // fd open.
    let n = cvt_r(|| unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) })?;
    Ok(n as usize)
}

/// Copies up to `count` bytes of `file` from `*offset` to the socket,
/// advancing `*offset`.
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: &impl AsFd,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let (sock, file) = (sock.as_raw_fd(), file.as_fd().as_raw_fd());
    let mut off = *offset as libc::off_t;
    // SAFETY: off is a live local; both descriptors are borrowed, so open.
    let n = cvt_r(|| unsafe { libc::sendfile(sock, file, &mut off, count) })?;
    *offset = off as u64;
    Ok(n as usize)
}

/// A poll(2)/epoll_wait(2) timeout in milliseconds: rounded up to the
/// next millisecond (as mio does), so a deadline 0.3 ms away waits 1 ms
/// instead of returning at once and spinning until it passes; `None` is
/// -1 (forever); capped at `i32::MAX`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    }
}

/// What [`wait_fd`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// Waits until `fd` is ready or `timeout` passes; `Ok(false)` on timeout.
pub fn wait_fd(fd: BorrowedFd<'_>, interest: Interest, timeout: Duration) -> io::Result<bool> {
    let events = match interest {
        Interest::Read => libc::POLLIN,
        Interest::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = timeout_ms(Some(timeout));
    // SAFETY: pfd is one live pollfd and we pass a count of 1.
    let n = cvt_r(|| unsafe { libc::poll(&mut pfd, 1, ms) })?;
    Ok(n > 0)
}

/// Polls several descriptors for readability; returns which are readable.
///
/// Takes descriptor numbers, not borrows: the supervisor polls listeners
/// that the serving threads own (`Runner::listener_fds`, only to see
/// whether a connection waits in a backlog) beside its own pipes, and a
/// number that was closed meanwhile only makes poll(2) report `POLLNVAL`
/// for it (counted as readable), never acts on another file.
pub fn poll_readable(
    fds: &[RawFd],
    timeout: Option<Duration>,
    ready: &mut Vec<bool>,
) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout_ms(timeout);
    // SAFETY: pfds is a live vector of pollfd and its length is passed.
    let r = cvt(unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) });
    ready.clear();
    match r {
        Ok(_) => {
            ready.extend(pfds.iter().map(|p| p.revents != 0));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            ready.resize(fds.len(), false);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn sockaddr_from_inet(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn inet_from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A `sockaddr_un` for `path` (a leading NUL makes an abstract name).
fn sockaddr_un(path: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.is_empty() || path.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unix socket path must be 1 to {} bytes long",
                addr.sun_path.len() - 1
            ),
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(path) {
        *dst = *src as libc::c_char;
    }
    let base = mem::size_of::<libc::sa_family_t>();
    // A path gets its trailing NUL counted; an abstract name does not.
    let len = if path[0] == 0 {
        base + path.len()
    } else {
        base + path.len() + 1
    };
    Ok((addr, len as libc::socklen_t))
}

/// The address a socket is bound to, by family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockName {
    Inet(SocketAddr),
    /// A unix socket path; `None` for an unnamed socket.
    UnixPath(Option<std::path::PathBuf>),
    /// An abstract unix name (without the leading NUL).
    UnixAbstract(Vec<u8>),
    /// Any other family (its number).
    Other(libc::c_int),
}

/// What `getsockname(2)` says about `fd`, for every family.
pub fn sock_name_any(fd: &impl AsFd) -> io::Result<SockName> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are live locals; len holds storage's size.
    cvt(unsafe {
        libc::getsockname(
            fd.as_fd().as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    let family = storage.ss_family as libc::c_int;
    if family != libc::AF_UNIX {
        return Ok(inet_from_sockaddr(&storage).map_or(SockName::Other(family), SockName::Inet));
    }
    // SAFETY: the family says the storage holds a sockaddr_un, which fits in it.
    let un: libc::sockaddr_un =
        unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
    let base = mem::size_of::<libc::sa_family_t>();
    let n = (len as usize).saturating_sub(base).min(un.sun_path.len());
    let bytes: Vec<u8> = un.sun_path[..n].iter().map(|&c| c as u8).collect();
    Ok(match bytes.first() {
        None => SockName::UnixPath(None),
        Some(0) => SockName::UnixAbstract(bytes[1..].to_vec()),
        Some(_) => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            SockName::UnixPath(Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
                &bytes[..end],
            ))))
        }
    })
}

/// What an inherited descriptor number holds, as [`inspect_inherited`]
/// finds it before anything owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Nothing is open under that number.
    NotOpen,
    /// A socket: its `SO_TYPE` is `SOCK_STREAM` or not, and its
    /// `SO_ACCEPTCONN` (listening) is set or not.
    Socket { stream: bool, listening: bool },
    /// Anything but a socket: a regular file, a directory, a pipe or a
    /// device (what systemd's `OpenFile=` passes).
    NotSocket,
    /// Open now, but not the descriptor this number held when the process
    /// started ([`AT_START`]): the process closed what was passed and
    /// opened something of its own there before adopting it.
    Replaced,
}

/// What the numbers LISTEN_FDS names held when this process image
/// started, recorded before `main` by [`record_at_start`]: one entry per
/// number from 3, `None` for a number that was not open, else its
/// (device, inode). Empty when LISTEN_PID does not name this process.
/// Unset only if the record did not run (then [`inspect_inherited`] can
/// look at the present alone).
static AT_START: std::sync::OnceLock<Vec<Option<(u64, u64)>>> = std::sync::OnceLock::new();

/// Records [`AT_START`]. It runs before `main`, so before std's runtime,
/// `Server::from_args`, or an embedder's code can open a descriptor: what
/// it sees at 3.. is what the exec passed. That turns "adopt before
/// opening anything" from a rule callers must follow into a check:
/// [`inspect_inherited`] compares the present with this record.
extern "C" fn record_at_start() {
    let var = |k: &str| std::env::var(k).ok();
    let mine =
        var("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    let n = if mine {
        var("LISTEN_FDS")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(crate::activation::MAX_LISTEN_FDS)
    } else {
        0
    };
    let ids = (3..)
        .take(n)
        .map(|fd| fd_identity(fd).ok().flatten())
        .collect();
    let _ = AT_START.set(ids);
}

// SAFETY: an entry of the ELF `.init_array` section is called by the
// dynamic loader (or libc's static start code) once, on the main thread,
// before `main`, with (argc, argv, envp), which an `extern "C" fn()`
// ignores. The function only reads the environment, calls fstat(2) and
// allocates, all usable at that point (libc is initialised; std's
// environment lock is a const-initialised static). `#[used]` keeps the
// entry although nothing refers to it.
#[used]
#[link_section = ".init_array"]
static RECORD_AT_START: extern "C" fn() = record_at_start;

/// What a number is, judged by what it held at start (`then`) and holds
/// now (`now`; `None`: not open); `None` when both agree on an open
/// descriptor, which is then inspected as it is.
fn compare_with_start(then: Option<(u64, u64)>, now: Option<(u64, u64)>) -> Option<FdKind> {
    match (then, now) {
        (None, _) | (_, None) => Some(FdKind::NotOpen),
        (Some(then), Some(now)) if then != now => Some(FdKind::Replaced),
        (Some(_), Some(_)) => None,
    }
}

/// The (device, inode) of descriptor number `fd`, `None` when it is not
/// open. Reads only.
fn fd_identity(fd: RawFd) -> io::Result<Option<(u64, u64)>> {
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size and only
    // reads the descriptor; an unused number fails with EBADF.
    match cvt(unsafe { libc::fstat(fd, &mut st) }) {
        Ok(_) => Ok(Some((st.st_dev, st.st_ino))),
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks at the descriptor number `fd` without taking it: open or not
/// (`fcntl(F_GETFD)`, `EBADF` is [`FdKind::NotOpen`]), the same as when
/// the process started or not ([`AT_START`]: a number that was empty then
/// is [`FdKind::NotOpen`] whatever holds it now, one that holds another
/// file now is [`FdKind::Replaced`]), socket or not (`fstat`), and for a
/// socket its type and whether it listens. Only reads the descriptor
/// table and the descriptor's state; changes nothing, so it is sound on a
/// number whatever owns it. A number, not a borrow: nothing owns these
/// descriptors yet (sd_listen_fds(3) passes them by number).
pub fn inspect_inherited(fd: RawFd) -> io::Result<FdKind> {
    let at_start = AT_START
        .get()
        .and_then(|ids| ids.get(usize::try_from(fd).ok()?.checked_sub(3)?));
    if let Some(then) = at_start {
        if let Some(kind) = compare_with_start(*then, fd_identity(fd)?) {
            return Ok(kind);
        }
    }
    // SAFETY: fcntl(F_GETFD) takes plain integers and only reads the
    // descriptor table; an unused number fails with EBADF.
    match cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(FdKind::NotOpen),
        Err(e) => return Err(e),
    }
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Ok(FdKind::NotSocket);
    }
    // SAFETY: the number is open (above) and stays so for these calls:
    // nothing in this process closes a number it does not own, and the
    // caller owns none of these yet. The borrow only names it for
    // getsockopt(2), which reads.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let ty = get_int_opt(&borrowed, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let listening = get_int_opt(&borrowed, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)?;
    Ok(FdKind::Socket {
        stream: ty == libc::SOCK_STREAM,
        listening: listening == 1,
    })
}

/// The (device, inode) of an open descriptor, as fstat(2) gives them:
/// what `JOURNAL_STREAM` names (systemd.exec(5)).
pub fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size; the
    // borrow keeps fd open for the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((st.st_dev, st.st_ino))
}

/// Sets or clears `FD_CLOEXEC` on a descriptor number (private: only
/// [`take_listen_fds`] and [`exec_passing`] use it, on numbers they
/// hold).
fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFD) takes plain integers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: fcntl(F_SETFD) takes plain integers.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    Ok(())
}

/// Sets `O_NONBLOCK` (adopted listeners may arrive blocking).
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) takes plain integers.
    let flags = cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: fcntl(F_SETFL) takes plain integers.
    cvt(unsafe {
        libc::fcntl(
            fd.as_fd().as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        )
    })?;
    Ok(())
}

static LISTEN_FDS_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes ownership of the `n` descriptors from 3 that sd_listen_fds(3)
/// passes, setting `FD_CLOEXEC` on each first (nothing catamount spawns
/// may inherit them). Works once per process (a second call fails), and
/// fails naming the first number that is not open.
///
/// What is checked here: each number is open, and no earlier call took
/// it. What the caller guarantees (`activation::take_from_env`, called by
/// `Server::from_args` and `Server::new` before the process opens a
/// descriptor of its own, and by `main` first of all): no other object of
/// this process owns one of these numbers, because none was opened yet
/// when it looks. [`inspect_inherited`] has already classified each
/// number, so a number systemd left empty is refused before this runs.
pub fn take_listen_fds(n: usize) -> io::Result<Vec<OwnedFd>> {
    if LISTEN_FDS_TAKEN.swap(true, Ordering::AcqRel) {
        return Err(io::Error::other(
            "the inherited descriptors were already taken",
        ));
    }
    let fds: Vec<RawFd> = (0..n as RawFd).map(|i| 3 + i).collect();
    for &fd in &fds {
        set_cloexec(fd, true).map_err(|e| io::Error::new(e.kind(), format!("fd {fd}: {e}")))?;
    }
    Ok(fds
        .into_iter()
        // SAFETY: each fd is open (fcntl above succeeded) and was passed
        // to this process by the sd_listen_fds protocol (LISTEN_PID is
        // ours). The flag above makes this the only place that ever wraps
        // these numbers, once. That no other object owns one rests on the
        // caller's order (see above): adoption is the process's first
        // open-or-own of any descriptor above stdio.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect())
}

/// Replaces this process's image with `cmd`, passing `fds` as the
/// descriptors 3, 4, … in order, without `FD_CLOEXEC` (the sd_listen_fds
/// layout). Returns only on failure.
///
/// Renumbering and exec are one function so that nothing runs between
/// them: the dup2(2)s close whatever held 3.. before, and any object
/// owning one of those numbers (a file the app opened, the docroot) would
/// otherwise act on a descriptor that is now a listener. Once the first
/// dup2 has run, this process cannot go on serving: a failure after it
/// is fatal for the caller (it says so and exits). The borrows keep the
/// sources open until the exec.
pub fn exec_passing(cmd: &mut std::process::Command, fds: &[BorrowedFd<'_>]) -> io::Error {
    use std::os::unix::process::CommandExt;
    if let Err(e) = renumber(fds) {
        return e;
    }
    cmd.exec()
}

fn renumber(fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let first = 3 as libc::c_int;
    let above = first + fds.len() as libc::c_int;
    // Copies above the target range first, so no dup2 clobbers a source
    // that is still to be moved.
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes plain integers and returns
        // a new descriptor; fd is borrowed, so open.
        let copy = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) })?;
        // The copies are this function's own; dropping them after the
        // dup2s (or on an error) closes only them.
        high.push(owned(copy));
    }
    for (i, fd) in high.iter().enumerate() {
        let target = first + i as libc::c_int;
        // SAFETY: dup2 takes plain integers; the kernel closes target
        // first. Whatever object owned target loses its descriptor: the
        // caller (exec_passing) execs right after, so no code of this
        // image uses such an object again.
        cvt_r(|| unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
        set_cloexec(target, false)?;
    }
    // `high` is close-on-exec: dropped here or by the exec, both fine.
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds (sd_notify's MONOTONIC_USEC).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live local; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// A new close-on-exec datagram socket for sd_notify.
pub fn datagram_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    Ok(owned(fd))
}

/// Sends one datagram to the unix address `dest` (a leading NUL byte makes
/// it abstract), passing `fds` with SCM_RIGHTS when not empty.
pub fn send_datagram(
    sock: &impl AsFd,
    dest: &[u8],
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let fds: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let (mut addr, addr_len) = sockaddr_un(dest)?;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of_val(fds.as_slice()) as u32) } as usize;
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = addr_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` zeroed, aligned bytes, so
        // CMSG_FIRSTHDR returns a header inside them and CMSG_DATA has room
        // for fds.len() descriptors (CMSG_SPACE above). The borrows keep
        // the descriptors open until sendmsg has copied them.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of_val(fds.as_slice()) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    // SAFETY: msg and everything it points to (addr, iov, data, control) live until the call returns.
    let n = cvt_r(|| unsafe { libc::sendmsg(sock.as_fd().as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })?;
    Ok(n as usize)
}

// ------------------------------------------------------- files beneath a root

/// Whether [`open_beneath`] may follow symlinks on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Any symlink on the path fails the open with `ELOOP`
    /// (`RESOLVE_NO_SYMLINKS`).
    Refuse,
    /// Relative symlinks are followed as long as every step stays beneath
    /// `dir`; an absolute symlink or a `..` above `dir` fails with `EXDEV`.
    FollowBeneath,
}

/// Flags of every descriptor a static-file lookup opens for reading:
/// `O_NONBLOCK` so a FIFO planted in the root cannot block the open,
/// `O_NOCTTY` so a terminal device cannot become ours.
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Opens `rel` beneath the directory `dir` for reading in one openat2(2)
/// call (Linux 5.6+) with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (and
/// `RESOLVE_NO_SYMLINKS` for [`Symlinks::Refuse`]): the kernel checks every
/// step of the resolution against `dir` while it resolves, so no rename
/// between a check and the open can lead outside. `EXDEV` when the path
/// would leave `dir`, `EAGAIN` when a concurrent rename anywhere kept the
/// kernel from proving a `..` safe (callers may retry), `ENOSYS` on older
/// kernels (and `EPERM` under some container seccomp profiles).
pub fn open_beneath(dir: &impl AsFd, rel: &Path, symlinks: Symlinks) -> io::Result<File> {
    let path = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    /// `struct open_how` of openat2(2) (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    if symlinks == Symlinks::Refuse {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    let how = OpenHow {
        flags: READ_FLAGS as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: path is a NUL-terminated string and how a live open_how whose
    // size is passed, as openat2(2) requires; the result is a new descriptor.
    let fd = cvt_r(|| unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            mem::size_of::<OpenHow>(),
        )
    })?;
    Ok(File::from(owned(fd as RawFd)))
}

/// A handle on the directory entry `name` of `dir` itself: openat(2) with
/// `O_PATH | O_NOFOLLOW`, so a symlink is not followed but opened, and
/// nothing is opened for I/O (no device is touched, no read permission is
/// needed). Good for `fstat`, [`read_link`] and as the `dir` of further
/// calls here.
pub fn open_entry(dir: &impl AsFd, name: &OsStr) -> io::Result<File> {
    openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

/// Opens the entry `name` of `dir` for reading without following a
/// symlink (`ELOOP` if it is one). `name` may be `"."` to open `dir`
/// itself (e.g. a handle from [`open_entry`]) for reading.
pub fn open_read_nofollow(dir: &impl AsFd, name: &OsStr) -> io::Result<File> {
    openat(dir, name, READ_FLAGS | libc::O_NOFOLLOW)
}

fn openat(dir: &impl AsFd, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    // SAFETY: name is a NUL-terminated string that outlives the call; the
    // result is a new descriptor.
    let fd = cvt_r(|| unsafe { libc::openat(dir.as_fd().as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(File::from(owned(fd)))
}

/// Whether this process, by its effective user and groups, may list and
/// search the directory `dir` (read and search permission), as serving it
/// needs: faccessat(2) with `AT_EACCESS`. A check for a clear message at
/// start, not a security decision (the answer can change right after).
pub fn may_read_dir(dir: &Path) -> io::Result<()> {
    access(dir, libc::R_OK | libc::X_OK)
}

/// Whether this process may create and remove entries in the directory
/// `dir` (write and search permission; `EROFS` on a read-only mount), as
/// binding a unix socket or renaming a file into it needs. See
/// [`may_read_dir`].
pub fn may_write_dir(dir: &Path) -> io::Result<()> {
    access(dir, libc::W_OK | libc::X_OK)
}

/// Whether this process may open the existing file `path` for writing.
/// See [`may_read_dir`].
pub fn may_write(path: &Path) -> io::Result<()> {
    access(path, libc::W_OK)
}

fn access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: path is a NUL-terminated string that outlives the call.
    cvt_r(|| unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), mode, libc::AT_EACCESS) })?;
    Ok(())
}

/// Most bytes a symlink target may have (`PATH_MAX`); a longer one is
/// `ENAMETOOLONG`.
const LINK_TARGET_MAX: usize = libc::PATH_MAX as usize;

/// The target of the symlink `link` is a handle on (from [`open_entry`]):
/// readlinkat(2) with an empty path reads the link the handle holds, not
/// whatever has that name by now. `EINVAL` if `link` is not a symlink.
pub fn read_link(link: &impl AsFd) -> io::Result<OsString> {
    let mut buf = vec![0u8; LINK_TARGET_MAX];
    // SAFETY: the path is an empty NUL-terminated string and buf a live,
    // writable buffer of the length passed.
    let n = cvt_r(|| unsafe {
        libc::readlinkat(
            link.as_fd().as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    let n = n as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// What a directory entry is, from `d_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
    /// The filesystem does not say (`DT_UNKNOWN`): look at the entry.
    Unknown,
}

/// Calls `f` with each entry of the directory `dir` (an open directory or
/// an [`open_entry`] handle on one), except `.` and `..`, until `f` breaks.
/// Reads through a new open file description of its own (openat(dir, "."))
/// so concurrent listings of one cached directory share no offset.
pub fn for_each_entry(
    dir: &impl AsFd,
    mut f: impl FnMut(&OsStr, EntryKind) -> ControlFlow<()>,
) -> io::Result<()> {
    let fresh = openat(
        dir,
        OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    /// Closes the stream (and its descriptor) however the loop ends.
    struct Stream(*mut libc::DIR);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: self.0 came from a successful fdopendir and is closed
            // only here, once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let fd = OwnedFd::from(fresh);
    // SAFETY: fd is an open directory descriptor; fdopendir takes it over
    // only when it succeeds.
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error()); // fd is closed on return
    }
    // The stream owns the descriptor now and closes it in closedir.
    let _ = fd.into_raw_fd();
    let stream = Stream(dirp);
    loop {
        // readdir(3) returns NULL both at the end and on error; only errno
        // tells them apart.
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: stream.0 is a live stream owned by this function.
        let entry = unsafe { libc::readdir(stream.0) };
        if entry.is_null() {
            // SAFETY: __errno_location returns this thread's errno slot,
            // which readdir set (or left at 0) just now.
            let errno = unsafe { *libc::__errno_location() };
            return if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(errno))
            };
        }
        // SAFETY: a non-NULL readdir result points to a dirent whose d_name
        // is NUL-terminated and stays valid until the next readdir or
        // closedir on this stream, both after the last use of name.
        let (name, d_type) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
        let name = OsStr::from_bytes(name.to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match d_type {
            libc::DT_REG => EntryKind::File,
            libc::DT_DIR => EntryKind::Dir,
            libc::DT_LNK => EntryKind::Symlink,
            libc::DT_UNKNOWN => EntryKind::Unknown,
            _ => EntryKind::Other,
        };
        if f(name, kind).is_break() {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------- process

/// Sets the process umask, returning the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a live local.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: lim is a live, initialised local.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// What `fork` returned in this process.
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks the process, after checking that it has a single thread (the
/// entries of `/proc/self/task`): fork(2) copies only the calling thread,
/// so a lock another thread held (the allocator's, stdout's, an app's
/// mutex) would stay locked forever in the child. With more than one
/// thread the error says so and what to do ([`single_threaded`]).
pub fn fork() -> io::Result<Forked> {
    single_threaded()?;
    // SAFETY: fork(2) takes no arguments. The process has one thread
    // (checked just above; the caller, the single-threaded master, starts
    // none between the check and this call), so the child gets a
    // consistent copy of every lock and allocator state and may run any
    // code.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// `Ok` when this process has exactly one thread (`/proc/self/task` has
/// one entry), else an error for whoever asked for cluster mode: which
/// threads, and to start them after fork (in `Handler::boot`, which runs
/// in each worker) or to use single mode. Puma warns the same way about
/// threads started while the app boots in the master.
pub fn single_threaded() -> io::Result<()> {
    let n = thread_count().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot count this process's threads in /proc/self/task ({e}); \
                 cluster mode forks only a single-threaded process: mount /proc, \
                 or use single mode (workers 0)"
            ),
        )
    })?;
    if n > 1 {
        return Err(io::Error::other(format!(
            "cluster mode cannot fork workers: this process has {n} threads, and fork(2) \
             copies only one, so a lock another thread holds could never be released in a \
             worker; start threads after fork, in Handler::boot (it runs in each worker), \
             not in the handler's constructor or before Server::serve, or use single mode \
             (workers 0)"
        )));
    }
    Ok(())
}

/// How many threads this process has: the entries of `/proc/self/task`.
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?
        .filter(|t| t.is_ok())
        .count())
}

/// Removes those of the environment variables `keys` that are set, only
/// while this process has one thread ([`thread_count`], checked here):
/// setenv(3)/unsetenv(3) race with a getenv(3) in another thread (std's
/// own accesses take a lock, C code's do not), which is why Rust 2024
/// makes `remove_var` unsafe. With a second thread the variables are left
/// as they are and the error says why; the callers
/// (`activation::take_from_env`, `Notifier::take_from_env`) run before
/// catamount starts any thread.
pub fn remove_env(keys: &[&str]) -> io::Result<()> {
    let set: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| std::env::var_os(k).is_some())
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    let threads = thread_count()?;
    if threads > 1 {
        return Err(io::Error::other(format!(
            "{} left in the environment: this process already has {threads} threads, and \
             changing the environment races with their getenv(3); make the Server \
             (Server::from_args or Server::new) before starting threads",
            set.join(", ")
        )));
    }
    for k in set {
        // One thread (checked just above): nothing reads the environment
        // concurrently.
        std::env::remove_var(k);
    }
    Ok(())
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Exited(c) => write!(f, "exit status {c}"),
            ChildExit::Signaled(s) => write!(f, "killed by {}", signal_name(*s)),
        }
    }
}

/// Reaps one exited child without waiting; `None` when none has exited.
pub fn reap_child() -> io::Result<Option<(libc::pid_t, ChildExit)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a live local.
    let pid = match cvt_r(|| unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) }) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
        Err(e) => return Err(e),
    };
    if pid == 0 {
        return Ok(None);
    }
    let exit = if libc::WIFEXITED(status) {
        ChildExit::Exited(libc::WEXITSTATUS(status))
    } else {
        ChildExit::Signaled(libc::WTERMSIG(status))
    };
    Ok(Some((pid, exit)))
}

/// Sends `sig` to `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// The parent's pid.
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid(2) cannot fail.
    unsafe { libc::getppid() }
}

/// Sets what `ps` shows for this process: overwrites the argument area
/// (`/proc/self/cmdline`) in place, as nginx and Ruby's `$0=` do,
/// truncating to its original length. The `comm` name stays `catamount`,
/// so `pgrep -x`, `ss -p` and systemd's journal keep naming it. Call only while the process has one thread, and after saving the
/// arguments (`std::env::args_os` reads this same memory).
pub fn set_process_title(title: &str) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised comm, which may contain spaces; the
    // state is field 3, arg_start field 48, arg_end field 49 (proc(5)).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<usize> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
    };
    let (start, end) = (field(48)?, field(49)?);
    if end <= start + 1 {
        return Err(io::Error::other("no argument area to write"));
    }
    let len = end - start;
    let mut bytes: Vec<u8> = title.bytes().filter(|&b| b != 0).take(len - 1).collect();
    bytes.resize(len, 0);
    // SAFETY: [start, end) is this process's argument area as the kernel
    // reports it: mapped, writable stack memory holding the argv strings,
    // `len` bytes long. The caller guarantees no other thread exists, so
    // nothing reads it concurrently; Rust's argument iterators only read
    // these bytes (they see the new title), and the caller saved the
    // original arguments before.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, len) };
    Ok(())
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// write(2) on any descriptor (pipes, eventfds).
pub fn write_fd(fd: &impl AsFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a live slice of the length passed.
    let n =
        cvt_r(|| unsafe { libc::write(fd.as_fd().as_raw_fd(), data.as_ptr().cast(), data.len()) })?;
    Ok(n as usize)
}

/// read(2) on any descriptor (pipes).
pub fn read_fd(fd: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, writable slice of the length passed.
    let n = cvt_r(|| unsafe {
        libc::read(fd.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    Ok(n as usize)
}

// ---------------------------------------------------------------- epoll

/// An epoll instance. Registrations carry a `u64` token.
pub struct Epoll {
    fd: OwnedFd,
}

/// Level-triggered readability.
pub const EPOLL_READ: u32 = libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
/// Writability reported once (a TLS handshake waiting to send).
pub const EPOLL_WRITE_ONESHOT: u32 = libc::EPOLLOUT as u32 | libc::EPOLLONESHOT as u32;
/// Readability reported once, then disarmed until re-armed with `modify`.
pub const EPOLL_READ_ONESHOT: u32 = EPOLL_READ | libc::EPOLLONESHOT as u32;

impl Epoll {
    /// A new close-on-exec epoll instance.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd: owned(fd) })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a live local; epoll_ctl copies it. epoll_ctl only
        // (de)registers the number: on one that is not open it fails with
        // EBADF.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Registers `fd`.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), events, token)
    }

    /// Changes (or re-arms) a registration.
    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), events, token)
    }

    /// Removes a registration.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0)
    }

    /// [`Epoll::add`] (`first`) or [`Epoll::modify`] by descriptor number,
    /// for a connection that was just put in the parking (`engine::park`):
    /// it is armed only after it is there, so the event it raises finds it,
    /// and by then the parking owns it and another thread may take it, so
    /// no borrow can be held. `token` carries a generation
    /// (`engine::token_fd`): if the number was closed and reused meanwhile,
    /// an event under this token matches no parked connection and is
    /// dropped.
    pub fn arm_parked(&self, first: bool, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let op = if first {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_MOD
        };
        self.ctl(op, fd, events, token)
    }

    /// Waits for events (at most `events.capacity()`), up to `timeout`
    /// (`None`: forever). Readable, hung up or in error alike: the owner of
    /// a token finds out which by reading.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout_ms(timeout);
        events.len = 0;
        // SAFETY: raw holds raw.len() initialised events and the kernel
        // writes at most that many.
        let r = cvt(unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.raw.as_mut_ptr(),
                events.raw.len() as libc::c_int,
                ms,
            )
        });
        match r {
            Ok(n) => events.len = n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// A reusable buffer for [`Epoll::wait`] (allocated once per waiting
/// thread, not per wait).
pub struct Events {
    raw: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    /// Room for `max` events per wait (at least one).
    pub fn with_capacity(max: usize) -> Events {
        Events {
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)],
            len: 0,
        }
    }

    /// The tokens of the events the last wait returned.
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.raw[..self.len].iter().map(|e| e.u64)
    }
}

/// An eventfd used to wake a thread blocked in epoll.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<EventFd> {
        EventFd::with_flags(0)
    }

    /// A counting eventfd: every [`EventFd::notify`] adds one and every
    /// [`EventFd::take`] removes one, so n notifications wake n takers.
    pub fn semaphore() -> io::Result<EventFd> {
        EventFd::with_flags(libc::EFD_SEMAPHORE)
    }

    fn with_flags(flags: libc::c_int) -> io::Result<EventFd> {
        // SAFETY: eventfd takes integers and returns a new descriptor.
        let fd = cvt(unsafe { libc::eventfd(0, flags | libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(EventFd { fd: owned(fd) })
    }

    /// Takes one notification of a [`EventFd::semaphore`]; false when none
    /// was pending (another thread took it).
    pub fn take(&self) -> bool {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN means nothing pending.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        r == 8
    }

    /// Wakes the waiter (coalesces with other wake-ups).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN)
        // already means "wake up", so the result is deliberately ignored.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN means nothing pending.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// ---------------------------------------------------------------- signals

/// Write end of the self-pipe; the signal handler's only state.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; byte is a live local. A
        // full pipe drops the byte, which is fine: one pending byte of each
        // kind is enough to wake the loop.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes `signals` into a self-pipe; returns its non-blocking read end.
/// Each delivered signal becomes one byte (its number).
pub fn signal_pipe(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    let (read, write) = (owned(fds[0]), owned(fds[1]));
    // The write end lives for the whole process: the handler may run at any time.
    SIGNAL_PIPE.store(
        std::os::fd::IntoRawFd::into_raw_fd(write),
        Ordering::Relaxed,
    );
    for &sig in signals {
        // SAFETY: sigaction is plain old data; all-zero is a valid start.
        let mut sa: libc::sigaction = unsafe { mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        if sig == libc::SIGCHLD {
            // Exits only: a stopped (SIGSTOPped) worker is found by its
            // missing check-ins, not by a signal.
            sa.sa_flags |= libc::SA_NOCLDSTOP;
        }
        // SAFETY: sa.sa_mask is a live sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: sa is initialised; the handler only calls write(2).
        cvt(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) })?;
    }
    Ok(read)
}

/// The signals by name, as log lines show them (signal(7), x86_64 and
/// aarch64 numbering through libc's constants).
const SIGNAL_NAMES: [(libc::c_int, &str); 31] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

/// `SIGUSR1` for 10: log lines name signals rather than number them
/// (issue 12); a number without a name (a real-time signal) stays a
/// number.
pub fn signal_name(sig: libc::c_int) -> std::borrow::Cow<'static, str> {
    match SIGNAL_NAMES.iter().find(|(n, _)| *n == sig) {
        Some((_, name)) => std::borrow::Cow::Borrowed(name),
        None => std::borrow::Cow::Owned(format!("signal {sig}")),
    }
}

/// Reads pending signal numbers from the self-pipe.
pub fn read_signals(pipe: &impl AsFd, out: &mut Vec<libc::c_int>) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: buf is a live, writable array of the length passed.
        let n = unsafe { libc::read(pipe.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        out.extend(buf[..n as usize].iter().map(|&b| b as libc::c_int));
    }
}

// ---------------------------------------------------------------------------
// Landlock (landlock(7)): the kernel's self-confinement. The policy (which
// paths, which rights) is `landlock.rs`'s; these wrap the three syscalls.

/// `struct landlock_ruleset_attr` (ABI 4+ layout; the size passed tells
/// the kernel which fields it may read).
#[repr(C)]
struct LandlockRulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct LandlockPathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct LandlockNetPortAttr {
    allowed_access: u64,
    port: u64,
}

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_RULE_NET_PORT: libc::c_int = 2;

/// The Landlock ABI version the kernel supports; an error (ENOSYS,
/// EOPNOTSUPP) when it has none or it is turned off.
pub fn landlock_abi() -> io::Result<u32> {
    // SAFETY: with the VERSION flag the kernel reads no attribute (NULL,
    // size 0) and returns the ABI version.
    let v = cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<LandlockRulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })?;
    Ok(v as u32)
}

/// A new ruleset handling `fs` and `net` access rights: what it does not
/// allow by a rule is denied once enforced. `net` must be 0 before ABI 4
/// (then the older, shorter attribute is passed).
pub fn landlock_ruleset(fs: u64, net: u64) -> io::Result<OwnedFd> {
    let attr = LandlockRulesetAttr {
        handled_access_fs: fs,
        handled_access_net: net,
    };
    let size = if net == 0 {
        mem::size_of::<u64>()
    } else {
        mem::size_of::<LandlockRulesetAttr>()
    };
    // SAFETY: attr is a live local of at least `size` bytes; the kernel
    // reads `size` bytes of it and returns a new descriptor.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const LandlockRulesetAttr,
            size,
            0 as libc::c_uint,
        )
    })?;
    Ok(owned(fd as RawFd))
}

/// Allows `access` beneath the file or directory `path` (opened O_PATH
/// by the caller) in `ruleset`.
pub fn landlock_allow_path(
    ruleset: BorrowedFd<'_>,
    path: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    let attr = LandlockPathBeneathAttr {
        allowed_access: access,
        parent_fd: path.as_raw_fd(),
    };
    // SAFETY: attr is a live local of the layout the rule type names; both
    // descriptors are borrowed, so open for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const LandlockPathBeneathAttr,
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Allows `access` on TCP `port` in `ruleset` (ABI 4+).
pub fn landlock_allow_port(ruleset: BorrowedFd<'_>, port: u16, access: u64) -> io::Result<()> {
    let attr = LandlockNetPortAttr {
        allowed_access: access,
        port: u64::from(port),
    };
    // SAFETY: attr is a live local of the layout the rule type names; the
    // ruleset is borrowed, so open for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_NET_PORT,
            &attr as *const LandlockNetPortAttr,
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Enforces `ruleset` on the calling thread and every thread and process
/// it starts from now on (threads that already exist are not confined:
/// call this before starting any), after setting no_new_privs, which
/// Landlock requires of an unprivileged process. Irreversible.
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes plain integers.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: the ruleset is borrowed, so open; flags 0.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset.as_raw_fd(),
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGTTOU), "SIGTTOU");
        assert_eq!(signal_name(40), "signal 40"); // real-time: no name
        assert_eq!(
            ChildExit::Signaled(libc::SIGKILL).to_string(),
            "killed by SIGKILL"
        );
    }

    #[test]
    fn cvt_maps_minus_one_to_last_error() {
        assert!(cvt(-1i32).is_err());
        assert_eq!(cvt(5i32).unwrap(), 5);
    }

    #[test]
    fn sockaddr_un_lengths() {
        let (_, len) = sockaddr_un(b"/a").unwrap();
        assert_eq!(len as usize, 2 + 2 + 1);
        let (_, len) = sockaddr_un(b"\0ab").unwrap();
        assert_eq!(len as usize, 2 + 3);
        assert!(sockaddr_un(&[b'a'; 200]).is_err());
    }

    #[test]
    fn inet_roundtrip() {
        for a in ["127.0.0.1:80", "[::1]:8080"] {
            let addr: SocketAddr = a.parse().unwrap();
            let (s, _) = sockaddr_from_inet(&addr);
            assert_eq!(inet_from_sockaddr(&s), Some(addr));
        }
    }

    #[test]
    fn inspect_tells_what_a_number_holds() {
        // A number far above anything this process opens cannot be
        // reused by another test thread meanwhile.
        assert_eq!(inspect_inherited(1 << 20).unwrap(), FdKind::NotOpen);
        assert_eq!(inspect_inherited(-1).unwrap(), FdKind::NotOpen);
        let file = File::open("/proc/self/stat").expect("a file");
        assert_eq!(
            inspect_inherited(file.as_raw_fd()).unwrap(),
            FdKind::NotSocket
        );
        let dgram = datagram_socket().expect("a socket");
        assert_eq!(
            inspect_inherited(dgram.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: false,
                listening: false
            }
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        assert_eq!(
            inspect_inherited(listener.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: true,
                listening: true
            }
        );
        let conn = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        assert_eq!(
            inspect_inherited(conn.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: true,
                listening: false
            }
        );
    }

    #[test]
    fn the_start_record_ran_before_main() {
        // This test binary runs without LISTEN_PID: an empty record, but
        // a record, so `.init_array` kept and ran record_at_start.
        assert_eq!(AT_START.get().map(Vec::len), Some(0));
    }

    #[test]
    fn a_number_is_judged_against_what_it_held_at_start() {
        let (a, b) = (Some((1, 10)), Some((1, 11)));
        // Empty at start: refused whatever the process opened there since.
        assert_eq!(compare_with_start(None, a), Some(FdKind::NotOpen));
        assert_eq!(compare_with_start(None, None), Some(FdKind::NotOpen));
        // Passed, then closed.
        assert_eq!(compare_with_start(a, None), Some(FdKind::NotOpen));
        // Passed, closed, and the number reused by something else.
        assert_eq!(compare_with_start(a, b), Some(FdKind::Replaced));
        // Still what was passed: inspect it.
        assert_eq!(compare_with_start(a, a), None);
    }

    #[test]
    fn timeouts_round_up_to_the_next_millisecond() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::from_micros(5_001))), 6);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }

    #[test]
    fn fork_is_refused_with_a_second_thread() {
        // A thread of our own, so the count is above one however the
        // harness runs tests; it ends when the channel's sender drops.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().expect("/proc/self/task") >= 2);
        let e = single_threaded().expect_err("two threads at least");
        let msg = e.to_string();
        assert!(msg.contains("cluster mode cannot fork workers"), "{msg}");
        assert!(msg.contains("Handler::boot"), "{msg}");
        assert!(fork().is_err(), "fork must refuse before forking");
        drop(tx);
        let _ = t.join();
    }
}
