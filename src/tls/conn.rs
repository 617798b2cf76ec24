//! A non-blocking server-side TLS session over a socket the reactor and
//! the pool threads drive ([`TlsConn`]), and the plain-HTTP answer to a
//! client that spoke plain HTTP to a TLS port.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConnection;

use super::{
    ServerConfig, TlsError, MAX_PLAIN_PER_READ, PLAIN_CHUNK, PLAIN_HTTP_BODY, PLAIN_HTTP_DRAIN,
};
use crate::sys::{self, Interest};

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
                match self.conn.write_tls(&mut FdIo::new(fd)) {
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
        // The last read took less than rustls offered: the socket had no
        // more at that moment (epoll(7): a short read on a stream socket
        // means its data is exhausted), so asking again would only return
        // EAGAIN, one system call per request for nothing; what arrives
        // later raises a new readiness event.
        let mut short_read = false;
        loop {
            self.drain_plaintext(out)?;
            let got = out.len() - start;
            if self.peer_closed || got >= MAX_PLAIN_PER_READ {
                return Ok(got);
            }
            if short_read {
                return match got {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    _ => Ok(got),
                };
            }
            let mut io = FdIo::new(fd);
            match self.conn.read_tls(&mut io) {
                // EOF: the next drain reports the close.
                Ok(_) => {
                    short_read = io.short_read;
                    self.process(fd)?
                }
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

    /// Encrypts what rustls takes of `data` (its slices in turn, together
    /// in as few records as fit: a response's head and small body leave as
    /// one record, not two) and sends what the socket takes, never
    /// waiting: `WouldBlock` while earlier records are still unsent.
    /// Returns the plaintext bytes taken (a response the client is slow to
    /// read continues from there on its next EPOLLOUT).
    pub fn write_some(&mut self, fd: BorrowedFd<'_>, data: &[IoSlice<'_>]) -> io::Result<usize> {
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
        let n = self.conn.writer().write_vectored(data)?;
        if n == 0 && data.iter().any(|d| !d.is_empty()) {
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
            match self.conn.write_tls(&mut FdIo::new(fd)) {
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
            return self.conn.read_tls(&mut FdIo::new(fd));
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
            match self.conn.write_tls(&mut FdIo::new(fd)) {
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
            // Room for what rustls holds (process_new_packets counted it),
            // not a fixed chunk: a 16 KiB chunk was zeroed up to four
            // times per keep-alive request (with read_plain's second recv,
            // 15% of the CPU per TLS request: bench/README). At least one
            // byte, so that the read also reports a close once nothing is
            // held.
            out.resize(len + self.buffered.clamp(1, PLAIN_CHUNK), 0);
            let res = self.conn.reader().read(&mut out[len..]);
            out.truncate(len + *res.as_ref().unwrap_or(&0));
            match res {
                // Reader::read gives Ok(0) only after close_notify.
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    self.buffered = self.buffered.saturating_sub(n);
                    continue;
                }
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
pub(super) fn looks_like_plain_http(first: u8) -> bool {
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
struct FdIo<'a> {
    fd: BorrowedFd<'a>,
    /// The last read returned less than the room it was given.
    short_read: bool,
}

impl<'a> FdIo<'a> {
    fn new(fd: BorrowedFd<'a>) -> FdIo<'a> {
        FdIo {
            fd,
            short_read: false,
        }
    }
}

impl Read for FdIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = sys::recv(self.fd, buf)?;
        self.short_read = n < buf.len();
        Ok(n)
    }
}

impl Write for FdIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.fd, buf, false)
    }

    /// rustls hands every queued record at once: one sendmsg(2) for all.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::send_vectored(self.fd, bufs, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
