//! Sockets: creating, binding, listening and accepting, socket options,
//! send/recv/sendfile, waiting for readiness with poll(2), socket
//! addresses both ways, and the datagrams sd_notify sends.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use super::{cvt, cvt_r, owned, timeout_ms};

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

/// Shuts down both directions of a connection: a thread blocked reading
/// or writing it wakes (EOF, EPIPE), and the peer sees the end. Acts on
/// the socket, so any descriptor of it will do (the engine keeps a
/// duplicate of each upgraded connection's to end it at a stop's
/// deadline). Never used on listeners.
pub fn shutdown_both(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown(2) takes plain integers; the borrow keeps the
    // descriptor open for the call.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) })?;
    Ok(())
}

/// Binds `fd` to an IP address.
pub fn bind_inet(fd: &impl AsFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_from_inet(addr);
    bind_to(fd, &storage, len)
}

/// Binds `fd` to a unix socket path.
pub fn bind_unix(fd: &impl AsFd, path: &Path) -> io::Result<()> {
    let (addr, len) = sockaddr_un(path.as_os_str().as_bytes())?;
    bind_to(fd, &addr, len)
}

/// bind(2) to the first `len` bytes of `addr`, a socket address this
/// module built (`sockaddr_storage` or `sockaddr_un`).
fn bind_to<A>(fd: &impl AsFd, addr: &A, len: libc::socklen_t) -> io::Result<()> {
    if len as usize > mem::size_of::<A>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: addr is a live reference to at least len bytes (checked
    // above), initialised for its family by the caller's constructor; the
    // kernel only reads them. The borrow keeps fd open.
    cvt(unsafe { libc::bind(fd.as_fd().as_raw_fd(), (addr as *const A).cast(), len) })?;
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

/// Sends from `first`, then `second`, in one `sendmsg(2)` (so a head and
/// a body in separate buffers leave as one segment, neither copied),
/// without raising SIGPIPE; `more` sets MSG_MORE. Returns the bytes sent
/// from both together.
pub fn send_pair(fd: BorrowedFd<'_>, first: &[u8], second: &[u8], more: bool) -> io::Result<usize> {
    send_vectored(
        fd,
        &[io::IoSlice::new(first), io::IoSlice::new(second)],
        more,
    )
}

/// Sends from each of `bufs` in turn in one `sendmsg(2)`, without raising
/// SIGPIPE; `more` sets MSG_MORE. Returns the bytes sent from all together.
pub fn send_vectored(
    fd: BorrowedFd<'_>,
    bufs: &[io::IoSlice<'_>],
    more: bool,
) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // The kernel refuses more than UIO_MAXIOV entries (EMSGSIZE): send
    // from the first ones, the caller sends the rest next.
    let bufs = &bufs[..bufs.len().min(libc::UIO_MAXIOV as usize)];
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    // SAFETY: msg points at bufs, an array of IoSlice, which std
    // guarantees to be ABI-compatible with iovec on Unix; its entries
    // describe live slices of the lengths given, and sendmsg only reads
    // them; the borrow keeps fd open.
    let n = cvt_r(|| unsafe { libc::sendmsg(fd, &msg, flags) })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_un_lengths() {
        let (_, len) = sockaddr_un(b"/a").unwrap();
        assert_eq!(len as usize, 2 + 2 + 1);
        let (_, len) = sockaddr_un(b"\0ab").unwrap();
        assert_eq!(len as usize, 2 + 3);
        assert!(sockaddr_un(&[b'a'; 200]).is_err());
    }

    #[test]
    fn send_vectored_sends_the_slices_in_order_and_at_most_uio_maxiov() {
        use std::io::Read;
        use std::os::unix::net::UnixStream;
        let (a, mut b) = UnixStream::pair().expect("socketpair");
        let parts: Vec<[u8; 1]> = (0..1500u32).map(|i| [(i % 251) as u8]).collect();
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let limit = libc::UIO_MAXIOV as usize;
        assert_eq!(
            send_vectored(a.as_fd(), &slices, false).expect("send"),
            limit
        );
        let mut got = vec![0u8; limit];
        b.read_exact(&mut got).expect("receive");
        assert!(got.iter().zip(&parts).all(|(g, p)| *g == p[0]));
    }

    #[test]
    fn inet_roundtrip() {
        for a in ["127.0.0.1:80", "[::1]:8080"] {
            let addr: SocketAddr = a.parse().unwrap();
            let (s, _) = sockaddr_from_inet(&addr);
            assert_eq!(inet_from_sockaddr(&s), Some(addr));
        }
    }
}
