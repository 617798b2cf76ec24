//! A client connection ([`Conn`]) and its incoming side: the bytes
//! received, whether the request at their front is ready to serve
//! ([`Conn::request_ready`], which parses the head once), the body as a
//! handler reads it ([`BodyReader`]), and the socket primitives the
//! response writer (`response`) and the parking use.
//!
//! No client behaviour keeps a pool thread beyond the handler's own work
//! (issue 11): a connection reaches a thread only once its head and a body
//! of up to [`BUFFERED_BODY_MAX`] are buffered ([`Conn::request_ready`]);
//! a larger body is read by the handler under the absolute `body_timeout`.
//!
//! A `Conn` is owned by one thread at a time and moved, never shared: its
//! fields are private, and what the reactor, the pool and the request
//! path need of it are methods here.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::http::{self, ChunkedDecoder, Framing, Head, HeadScan, HttpError};
use crate::sys::{self, Interest};
use crate::tls::TlsConn;
use crate::Config;

/// Largest request body read before the request reaches a pool thread
/// (Puma's reactor does the same): a client trickling a body this size
/// holds a few KiB of memory, never a thread. A larger body is read by the
/// handler, under the absolute `body_timeout`.
pub const BUFFERED_BODY_MAX: usize = 64 * 1024;
/// Capacity an idle keep-alive connection's buffer may keep; a larger one
/// is given back when the connection is parked empty.
const IDLE_BUFFER_MAX: usize = 2 * READ_CHUNK;
/// Bytes read from a socket per call.
pub const READ_CHUNK: usize = 16 * 1024;
/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// A client connection and the bytes received but not yet consumed.
/// Owned by one thread at a time (reactor or pool), TLS state included:
/// it moves, it is never shared.
pub struct Conn {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// Requests answered on this connection.
    served: u32,
    /// TLS session of an `ssl://` connection.
    tls: Option<Box<TlsConn>>,
    /// Registered in the pool's epoll (parked there once already), not
    /// the reactor's.
    pooled: bool,
    /// Registered in the reactor's epoll (it waited there for a request
    /// head or a TLS handshake). A connection a pool thread accepted and
    /// served at once never was: moving it to the pool's epoll then
    /// needs no `EPOLL_CTL_DEL` in the reactor's.
    in_reactor: bool,
    /// Its token in the pool's epoll: the fd and a generation number, so
    /// a stale event for a closed connection cannot take a new one that
    /// got the same fd number.
    token: u64,
    /// Who is asking and where: the client's address, the local one and
    /// the listener, for [`Request::peer_addr`] and friends and for
    /// `--log-requests` (issue 17). Boxed: a `Conn` moves by value
    /// through the pool's queue; one allocation per connection.
    info: Box<ConnInfo>,
    /// How far the request at the front of `buf` has arrived.
    incoming: Incoming,
}

/// What a connection is, fixed at accept: read by handlers through
/// [`Request`] and by the access log, never per request unless asked.
pub struct ConnInfo {
    /// The client's address as accept4(2) gave it; `None` on a unix socket.
    peer: Option<SocketAddr>,
    /// The local address, asked of getsockname(2) the first time a handler
    /// wants it (most never do); `None` inside on a unix socket.
    local: OnceLock<Option<SocketAddr>>,
    /// The listener's name for handlers (`tcp://0.0.0.0:9292`, `fd://web`),
    /// shared by all its connections.
    listener: Arc<str>,
}

impl ConnInfo {
    pub fn new(peer: Option<SocketAddr>, listener: Arc<str>) -> ConnInfo {
        ConnInfo {
            peer,
            local: OnceLock::new(),
            listener,
        }
    }

    /// The client's address as accept4(2) gave it; `None` on a unix socket.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The listener's name for handlers (`tcp://0.0.0.0:9292`, `fd://web`).
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The local address of `fd` (this connection's socket), looked up once.
    fn local(&self, fd: &OwnedFd) -> Option<SocketAddr> {
        *self
            .local
            .get_or_init(|| sys::local_inet_addr(fd).ok().flatten())
    }
}

/// How far the request at the front of a connection's buffer has come, so
/// that each read looks only at the new bytes.
#[derive(Default)]
struct Incoming {
    /// Where the search for the end of the head stopped.
    scan: HeadScan,
    /// The request line was checked on its own (a line such as `GET /x`
    /// with no version is refused at once, not at first_data_timeout).
    line_checked: bool,
    /// The parsed head and its length, or the error to answer (boxed:
    /// a `Conn` moves through the pool's queue by value).
    head: Option<Box<Result<(Head, usize), HttpError>>>,
    /// A chunked body being buffered: its decoder, and the index in `buf`
    /// it has consumed up to.
    chunked: Option<Box<(ChunkedDecoder, usize)>>,
    /// The body deadline has been set (see `Conn::start_body_wait`).
    body_wait: bool,
    /// `100 Continue` has been sent for this request.
    continue_sent: bool,
}

/// What [`Conn::request_ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the rest of the head.
    Head,
    /// The head is complete; waiting for a body of up to
    /// [`BUFFERED_BODY_MAX`].
    Body,
    /// A pool thread can serve it without waiting for the client: the
    /// head and any body up to [`BUFFERED_BODY_MAX`] are buffered, or the
    /// body is larger (the handler reads it), or the request is refused.
    Ready,
}

/// Connections this process holds open (made by [`Conn::new`], let go
/// by its drop): what `idle_timeout` waits to see at zero. One per
/// process (a worker counts its own), relaxed: it is read to decide
/// whether the process has been quiet, never to order other memory.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many connections this process holds open now.
pub fn open_connections() -> usize {
    OPEN.load(Ordering::Relaxed)
}

impl Conn {
    pub fn new(fd: OwnedFd, info: ConnInfo, tls: Option<Box<TlsConn>>) -> Conn {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Conn {
            fd,
            buf: Vec::new(),
            served: 0,
            tls,
            pooled: false,
            in_reactor: false,
            token: 0,
            info: Box::new(info),
            incoming: Incoming::default(),
        }
    }

    /// The socket's descriptor number, as a key: the reactor's and the
    /// parking's maps and the epoll tokens name a connection by it, also
    /// while another thread owns it (a number, not a borrow). To act on
    /// the socket, use [`AsFd`].
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// What the connection is: the client's address, the listener.
    #[inline]
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The local address the connection came in on (getsockname(2) the
    /// first time, then kept); `None` on a unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.info.local(&self.fd)
    }

    /// The TLS session of an `ssl://` connection.
    #[inline]
    pub fn tls(&self) -> Option<&TlsConn> {
        self.tls.as_deref()
    }

    /// An `ssl://` connection (handshaking or not).
    #[inline]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS session while its handshake is still under way (the
    /// reactor drives it), with the socket it runs over.
    pub fn handshaking_tls(&mut self) -> Option<(&mut TlsConn, BorrowedFd<'_>)> {
        let tls = self.tls.as_deref_mut().filter(|t| t.is_handshaking())?;
        Some((tls, self.fd.as_fd()))
    }

    /// The bytes received and not yet consumed.
    #[inline]
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Moves up to `out.len()` of the bytes received and not yet consumed
    /// into `out` (an upgraded connection's reads: what the client sent
    /// after the request comes first).
    pub fn take_buffered(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        n
    }

    /// A duplicate of the socket's descriptor (close-on-exec): the
    /// engine keeps one per upgraded connection, to shut it down at a
    /// stop's deadline whoever owns the `Conn` then.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Requests answered on this connection.
    #[inline]
    pub fn served(&self) -> u32 {
        self.served
    }

    /// Registered in the pool's epoll (parked there once already).
    #[inline]
    pub fn pooled(&self) -> bool {
        self.pooled
    }

    /// Its token in the pool's epoll (valid once [`pooled`](Self::pooled)).
    #[inline]
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Registered in the pool's epoll for the first time, under `token`.
    pub fn enter_pool(&mut self, token: u64) {
        self.pooled = true;
        self.token = token;
    }

    /// Taken back into the reactor's epoll (at a stop or a deadline).
    pub fn leave_pool(&mut self) {
        self.pooled = false;
    }

    /// Registered in the reactor's epoll (see [`Conn::set_in_reactor`]).
    #[inline]
    pub fn in_reactor(&self) -> bool {
        self.in_reactor
    }

    /// Registered in (`true`) or removed from the reactor's epoll.
    #[inline]
    pub fn set_in_reactor(&mut self, on: bool) {
        self.in_reactor = on;
    }

    /// Gives back the room a large head or body needed (up to ~128 KiB):
    /// an idle connection keeps at most [`IDLE_BUFFER_MAX`] for
    /// persistent_timeout.
    pub fn shrink_idle_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > IDLE_BUFFER_MAX {
            self.buf = Vec::new();
        }
    }

    /// Takes the ready request at the front of the buffer off it: its head
    /// and whether `100 Continue` was sent for it already. `Ok(None)`
    /// while the head is incomplete; `Err` (the buffer left as it is, for
    /// the access log) for a head to refuse.
    pub fn next_request(&mut self) -> Result<Option<(Head, bool)>, HttpError> {
        let Some((head, n)) = self.take_head()? else {
            return Ok(None);
        };
        let continue_sent = self.incoming.continue_sent;
        self.buf.drain(..n);
        self.reset_incoming();
        self.served += 1;
        Ok(Some((head, continue_sent)))
    }

    /// Whether the request at the front of `buf` can be served without
    /// waiting for the client. Looks only at bytes it has not seen
    /// (`HeadScan`), parses the head once, and sends `100 Continue` itself
    /// when a small body is awaited (RFC 9110 §10.1.1).
    pub fn request_ready(&mut self, max_body: u64) -> Progress {
        let inc = &mut self.incoming;
        if inc.head.is_none() {
            if inc.scan.find(&self.buf).is_none() {
                if self.buf.len() >= http::MAX_HEAD {
                    // Too large whatever follows: the pool answers 431 (or
                    // 414 for a request line over its limit).
                    inc.head = Some(Box::new(Err(parse_error(&self.buf))));
                    return Progress::Ready;
                }
                if !inc.line_checked && inc.scan.line_complete() {
                    // Checked once, when its line ending arrives: a line
                    // without a version (HTTP/0.9) or a bad method or
                    // target can be answered now.
                    inc.line_checked = true;
                    if let Err(e) = http::parse_head(&self.buf) {
                        inc.head = Some(Box::new(Err(e)));
                        return Progress::Ready;
                    }
                }
                return Progress::Head;
            }
            inc.head = Some(Box::new(match http::parse_head(&self.buf) {
                Ok(Some(parsed)) => Ok(parsed),
                Ok(None) => Err(HttpError::BadRequest("malformed request head")),
                Err(e) => Err(e),
            }));
        }
        let Some(Ok((head, n))) = inc.head.as_deref() else {
            return Progress::Ready;
        };
        let n = *n;
        let body = self.buf.len() - n;
        let complete = match head.framing {
            Framing::None => true,
            Framing::Length(len) if len > max_body || len > BUFFERED_BODY_MAX as u64 => true,
            Framing::Length(len) => body as u64 >= len,
            Framing::Chunked => {
                let (decoder, at) = &mut **inc
                    .chunked
                    .get_or_insert_with(|| Box::new((ChunkedDecoder::with_limit(max_body), n)));
                // The decoded bytes are not needed yet: into the thread's
                // scratch buffer (no zeroed array per call).
                let buf = &self.buf;
                let failed = SCRATCH.with(|cell| {
                    let mut sink = cell.borrow_mut();
                    while *at < buf.len() && !decoder.is_done() {
                        match decoder.decode(&buf[*at..], &mut sink[..]) {
                            Ok((used, _)) => *at += used,
                            // The pool decodes it again and answers.
                            Err(_) => return true,
                        }
                    }
                    false
                });
                failed || decoder.is_done() || *at - n > BUFFERED_BODY_MAX
            }
        };
        if complete {
            return Progress::Ready;
        }
        if head.expect_continue && body == 0 && !inc.continue_sent {
            inc.continue_sent = true;
            self.send_now(CONTINUE);
        }
        Progress::Body
    }

    /// True the first time it is called for a request whose body is
    /// awaited: the caller then sets the body deadline.
    pub fn start_body_wait(&mut self) -> bool {
        !std::mem::replace(&mut self.incoming.body_wait, true)
    }

    /// Takes the head [`request_ready`](Self::request_ready) parsed (or
    /// parses it now): `Ok(None)` while incomplete.
    fn take_head(&mut self) -> Result<Option<(Head, usize)>, HttpError> {
        match self.incoming.head.take() {
            Some(parsed) => (*parsed).map(Some),
            None => http::parse_head(&self.buf),
        }
    }

    /// Forgets what was learnt about the front of `buf`, after bytes were
    /// taken off it.
    pub fn reset_incoming(&mut self) {
        self.incoming = Incoming::default();
    }

    /// One non-blocking read appended to `buf` (plaintext for TLS):
    /// `Ok(0)` is end of stream.
    pub fn read_some(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        if let Some(tls) = &mut self.tls {
            return tls.read_plain(fd, &mut self.buf);
        }
        // A per-thread scratch buffer: zeroing 16 KiB on the stack for every
        // read showed up in the profile (memset, ~2%).
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let n = sys::recv(fd, &mut scratch[..])?;
            self.buf.extend_from_slice(&scratch[..n]);
            Ok(n)
        })
    }

    /// Reads at least one byte, waiting up to `timeout` for it.
    fn read_wait(&mut self, timeout: Duration) -> io::Result<usize> {
        loop {
            match self.read_some() {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !sys::wait_fd(self.fd.as_fd(), Interest::Read, timeout)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends all of `data`, waiting (each wait bounded by `timeout`, the
    /// write_timeout) while the socket buffer is full: only for a
    /// `Body::Stream` a handler chose, and `100 Continue` before a large
    /// body. `more`: more data follows at once (MSG_MORE; plain TCP only).
    pub fn send(&mut self, data: &[u8], more: bool, timeout: Duration) -> io::Result<()> {
        let fd = self.fd.as_fd();
        match &mut self.tls {
            Some(tls) => tls.write_plain(fd, data, timeout),
            None => send_all(fd, data, more, timeout),
        }
    }

    /// Sends what the socket takes of `data` now; `WouldBlock` when it
    /// takes nothing.
    pub fn send_some(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        match &mut self.tls {
            Some(tls) => tls.write_some(fd, &[io::IoSlice::new(data)]),
            None => sys::send(fd, data, more),
        }
    }

    /// Sends what the socket takes now of `first` and then `second`, in
    /// one system call (under TLS, in one record while both fit in one);
    /// `WouldBlock` when it takes nothing.
    pub fn send_some_pair(&mut self, first: &[u8], second: &[u8], more: bool) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        match &mut self.tls {
            Some(tls) => tls.write_some(fd, &[io::IoSlice::new(first), io::IoSlice::new(second)]),
            None => sys::send_pair(fd, first, second, more),
        }
    }

    /// Sends what the socket takes now of `file` from `*offset` up to
    /// `end` (sendfile(2) on plain sockets, read and encrypted under TLS)
    /// and advances `offset`.
    pub fn send_file_some(
        &mut self,
        file: &std::fs::File,
        offset: &mut u64,
        end: u64,
    ) -> io::Result<()> {
        let fd = self.fd.as_fd();
        let want = (end - *offset).min(1 << 30) as usize;
        let Some(tls) = &mut self.tls else {
            return match sys::sendfile(fd, file, offset, want)? {
                // The file shrank under us: the promised length cannot be met.
                0 => Err(io::ErrorKind::UnexpectedEof.into()),
                _ => Ok(()),
            };
        };
        use std::os::unix::fs::FileExt;
        if !tls.flush_now(fd)? {
            // Earlier records still wait for the client: reading more of
            // the file now would be read again later.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        SCRATCH.with(|cell| {
            let mut chunk = cell.borrow_mut();
            let want = want.min(chunk.len());
            let n = file.read_at(&mut chunk[..want], *offset)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // rustls may take less than was read: the rest is read again.
            let took = tls.write_some(fd, &[io::IoSlice::new(&chunk[..n])])?;
            *offset += took as u64;
            Ok(())
        })
    }

    /// Every byte handed to TLS has left (always true on plain TCP).
    pub fn flushed(&mut self) -> io::Result<bool> {
        let fd = self.fd.as_fd();
        match &mut self.tls {
            Some(tls) => tls.flush_now(fd),
            None => Ok(true),
        }
    }

    /// One attempt to send `data` without waiting (an answer from the
    /// reactor, which must never block).
    pub fn send_now(&mut self, data: &[u8]) {
        let fd = self.fd.as_fd();
        match &mut self.tls {
            Some(tls) if !tls.is_handshaking() => {
                let _ = tls.write_plain(fd, data, Duration::ZERO);
            }
            Some(_) => {}
            None => {
                let _ = sys::send(fd, data, false);
            }
        }
    }
}

impl Conn {
    /// Before closing a plain connection whose client may still be
    /// sending: closing with unread bytes queued makes the kernel send a
    /// reset, which can destroy the answer in flight. End our side, then
    /// discard what has already arrived (without waiting for more).
    pub fn linger(&mut self) {
        let _ = sys::shutdown_write(self.fd.as_fd());
        self.buf.clear();
        while matches!(self.read_some(), Ok(n) if n > 0) {
            self.buf.clear();
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
            // Best effort, never waits: tells the peer the end is deliberate
            // (only once a session exists to end).
            tls.close_notify(self.fd.as_fd());
        }
    }
}

/// The per-request limits, copied from the config.
#[derive(Clone, Debug)]
pub struct Limits {
    /// For a request's head to arrive, from its first byte.
    pub first_data_timeout: Duration,
    /// For a request's body to arrive in full, from the end of its head.
    pub body_timeout: Duration,
    /// For a client to take some of a response.
    pub write_timeout: Duration,
    /// For an idle keep-alive connection.
    pub persistent_timeout: Duration,
    pub max_keep_alive: u32,
    pub max_body: u64,
    pub log_requests: bool,
    /// Upgraded connections (WebSocket...) open at once in this process.
    pub max_upgraded: usize,
}

impl Limits {
    pub fn from_config(c: &Config) -> Limits {
        Limits {
            first_data_timeout: c.first_data_timeout,
            body_timeout: c.body_timeout,
            write_timeout: c.write_timeout,
            persistent_timeout: c.persistent_timeout,
            max_keep_alive: c.max_keep_alive,
            max_body: c.max_body,
            log_requests: c.log_requests,
            max_upgraded: c.max_upgraded,
        }
    }
}

/// Reads a request body from the buffered bytes, then the socket.
pub struct BodyReader<'a> {
    conn: &'a mut Conn,
    framing: Framing,
    /// Bytes left of a Content-Length body.
    remaining: u64,
    decoder: ChunkedDecoder,
    /// De-chunked bytes so far (checked against max_body).
    received: u64,
    max_body: u64,
    /// When the body must have arrived in full (body_timeout after the
    /// head: a trickle cannot stretch it).
    deadline: Instant,
    write_timeout: Duration,
    /// `100 Continue` is still owed before the first wait for body bytes.
    owe_continue: bool,
    /// Read only what has arrived: never wait (while finishing).
    no_wait: bool,
    error: Option<HttpError>,
    gone: bool,
}

impl<'a> BodyReader<'a> {
    pub fn new(
        conn: &'a mut Conn,
        head: &Head,
        limits: &Limits,
        continue_sent: bool,
    ) -> BodyReader<'a> {
        let remaining = match head.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let nothing_yet = conn.buf.is_empty();
        BodyReader {
            conn,
            framing: head.framing,
            remaining,
            decoder: ChunkedDecoder::with_limit(limits.max_body),
            received: 0,
            max_body: limits.max_body,
            deadline: Instant::now() + limits.body_timeout,
            write_timeout: limits.write_timeout,
            // Not owed when part of the body came with the head (RFC 9110
            // §10.1.1: the client is sending already).
            owe_continue: head.expect_continue
                && head.framing != Framing::None
                && !continue_sent
                && nothing_yet,
            no_wait: false,
            error: None,
            gone: false,
        }
    }

    fn is_complete(&self) -> bool {
        match self.framing {
            Framing::None => true,
            Framing::Length(_) => self.remaining == 0,
            Framing::Chunked => self.decoder.is_done(),
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.no_wait {
            return match self.conn.read_some() {
                Ok(0) => {
                    self.gone = true;
                    Err(io::ErrorKind::UnexpectedEof.into())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e), // WouldBlock: all that has arrived is read
            };
        }
        if std::mem::take(&mut self.owe_continue) {
            // Asked for only now that the handler reads the body: a
            // handler that answers without it is not sent the body.
            if let Err(e) = self.conn.send(CONTINUE, false, self.write_timeout) {
                self.gone = true;
                return Err(e);
            }
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        let waited = if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            self.conn.read_wait(left)
        };
        match waited {
            Ok(_) => Ok(()),
            Err(e) => {
                match e.kind() {
                    io::ErrorKind::TimedOut => self.error = Some(HttpError::Timeout),
                    _ => self.gone = true,
                }
                Err(e)
            }
        }
    }

    fn fail(&mut self, e: HttpError) -> io::Error {
        self.error = Some(e);
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request body: {}", e.status()),
        )
    }

    /// Discards the unread rest of the body as far as it has arrived,
    /// without waiting for more. `Ok(true)`: the body is consumed and the
    /// connection may carry another request; `Ok(false)`: part of it is
    /// still on its way, so the connection closes after the answer;
    /// `Err(Some(e))`: answer `e`; `Err(None)`: the client is gone.
    pub fn finish(mut self) -> Result<bool, Option<HttpError>> {
        self.no_wait = true;
        let mut sink = [0u8; READ_CHUNK];
        while !self.is_complete() && self.error.is_none() && !self.gone {
            if self.read(&mut sink).is_err() || self.framing == Framing::None {
                break;
            }
        }
        match (self.error, self.gone) {
            (Some(e), _) => Err(Some(e)),
            (None, true) => Err(None),
            (None, false) => Ok(self.is_complete()),
        }
    }
}

impl crate::Source for BodyReader<'_> {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }

    fn conn(&self) -> Option<&Conn> {
        Some(self.conn)
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.error {
            return Err(self.fail(e));
        }
        if out.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::None => Ok(0),
            Framing::Length(_) => {
                if self.remaining == 0 {
                    return Ok(0);
                }
                if self.conn.buf.is_empty() {
                    self.fill()?;
                }
                let n = out
                    .len()
                    .min(self.conn.buf.len())
                    .min(self.remaining.min(usize::MAX as u64) as usize);
                out[..n].copy_from_slice(&self.conn.buf[..n]);
                self.conn.buf.drain(..n);
                self.remaining -= n as u64;
                Ok(n)
            }
            Framing::Chunked => loop {
                if self.decoder.is_done() {
                    return Ok(0);
                }
                if !self.conn.buf.is_empty() {
                    let (used, wrote) = match self.decoder.decode(&self.conn.buf, out) {
                        Ok(r) => r,
                        Err(e) => return Err(self.fail(e)),
                    };
                    self.conn.buf.drain(..used);
                    self.received += wrote as u64;
                    if self.received > self.max_body {
                        return Err(self.fail(HttpError::PayloadTooLarge));
                    }
                    if wrote > 0 || self.decoder.is_done() {
                        return Ok(wrote);
                    }
                    if used > 0 {
                        continue;
                    }
                }
                self.fill()?;
            },
        }
    }
}

/// Sends all of `data`, waiting (each wait bounded by `timeout`) while
/// the socket buffer is full. `more`: more data follows at once
/// (MSG_MORE).
fn send_all(fd: BorrowedFd<'_>, mut data: &[u8], more: bool, timeout: Duration) -> io::Result<()> {
    while !data.is_empty() {
        match sys::send(fd, data, more) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !sys::wait_fd(fd, Interest::Write, timeout)? {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error a head that reached `MAX_HEAD` without ending is refused
/// with (431, or 414 for an overlong request line).
fn parse_error(buf: &[u8]) -> HttpError {
    match http::parse_head(buf) {
        Err(e) => e,
        Ok(_) => HttpError::HeadersTooLarge,
    }
}

/// Helpers for the unit tests of the engine, the parking, the pool and the
/// reactor: connections over socketpairs, driven from the test thread.
#[cfg(test)]
pub mod testing {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Conn, ConnInfo, Limits, Progress};

    /// A complete request.
    pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    /// How long a test waits for an event before it fails.
    pub const EVENT_DEADLINE: Duration = Duration::from_secs(5);

    /// Distinct timeouts, so a test can tell which deadline was set.
    pub fn limits() -> Limits {
        Limits {
            first_data_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(100),
            write_timeout: Duration::from_secs(20),
            persistent_timeout: Duration::from_secs(1000),
            max_keep_alive: 100,
            max_body: 1 << 20,
            log_requests: false,
            max_upgraded: 4,
        }
    }

    /// A connection over a socketpair (its end non-blocking, as accept4
    /// gives it) and the client's end, whose reads wait at most
    /// [`EVENT_DEADLINE`].
    pub fn pair() -> (Conn, UnixStream) {
        let (server, client) = UnixStream::pair().expect("socketpair");
        server.set_nonblocking(true).expect("non-blocking");
        client
            .set_read_timeout(Some(EVENT_DEADLINE))
            .expect("read timeout");
        let info = ConnInfo::new(None, Arc::from("unix:///test"));
        (Conn::new(server.into(), info, None), client)
    }

    /// The client sends `bytes`; the connection reads all that arrived
    /// (a socketpair delivers at once) and says how far its request got.
    pub fn receive(conn: &mut Conn, client: &mut UnixStream, bytes: &[u8]) -> Progress {
        client.write_all(bytes).expect("client write");
        while matches!(conn.read_some(), Ok(n) if n > 0) {}
        conn.request_ready(limits().max_body)
    }

    /// A connection that has answered one request (so it is a kept-alive
    /// one), with nothing buffered.
    pub fn served_once() -> (Conn, UnixStream) {
        let (mut conn, mut client) = pair();
        assert_eq!(receive(&mut conn, &mut client, REQUEST), Progress::Ready);
        assert!(conn.next_request().expect("parsed").is_some());
        assert_eq!(conn.served(), 1);
        (conn, client)
    }

    /// Reads one response (head and Content-Length body) from the
    /// client's end, failing after [`EVENT_DEADLINE`].
    pub fn read_response(client: &mut UnixStream) -> String {
        read_responses(client, 1).remove(0)
    }

    /// Reads `n` responses (heads and Content-Length bodies), failing
    /// after [`EVENT_DEADLINE`] without one.
    pub fn read_responses(client: &mut UnixStream, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        let mut responses = Vec::new();
        let mut chunk = [0u8; 4096];
        while responses.len() < n {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().expect("length"));
                if got.len() >= end + 4 + len {
                    let rest = got.split_off(end + 4 + len);
                    responses.push(String::from_utf8_lossy(&got).into_owned());
                    got = rest;
                    continue;
                }
            }
            match client.read(&mut chunk) {
                Ok(0) => panic!("closed after {:?}", String::from_utf8_lossy(&got)),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no response within {EVENT_DEADLINE:?}: {e}"),
            }
        }
        responses
    }

    /// True when the server closed its end (after what it sent).
    pub fn closed(client: &mut UnixStream) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match client.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}
