//! Serving one connection on a pool thread: parse the buffered head, read
//! the body (with `Expect: 100-continue` and limits), call the handler,
//! write the response (sendfile for large files), then serve the next pipelined
//! request inline or park the connection in the pool's epoll until its
//! next request (see `parking`).
//!
//! No client behaviour keeps a pool thread beyond the handler's own work
//! (issue 11): a connection reaches a thread only once its head and a body
//! of up to [`BUFFERED_BODY_MAX`] are buffered ([`Conn::request_ready`]);
//! a larger body is read by the handler under the absolute `body_timeout`;
//! a response the client does not take at once is finished from the
//! pool's epoll ([`Outgoing`]), under `write_timeout`. The one exception
//! is a `Body::Stream` a handler chose to stream: each wait for the client
//! is bounded by `write_timeout`.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::http::{self, ChunkedDecoder, Framing, Head, HeadScan, HttpError};
use crate::log;
use crate::parking::{Arrived, Parked, Parking};
use crate::pool::Stats;
use crate::sys::{self, Epoll, EventFd, Interest, EPOLL_READ_ONESHOT, EPOLL_WRITE_ONESHOT};
use crate::tls::TlsConn;
use crate::{Body, Config, Handler, Request, Response};

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
/// Bytes of a response body read from a `Body::Stream` per chunk.
const STREAM_CHUNK: usize = 16 * 1024;
/// Largest body (`Body::Bytes`, or a `Body::File` read with pread) copied
/// into the head's buffer so head and body leave in one send.
const COALESCE_LIMIT: usize = 16 * 1024;
/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Bytes reserved for a response head (the static app's heads are about
/// 300 bytes; a longer one grows the buffer).
const HEAD_RESERVE: usize = 512;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// A client connection and the bytes received but not yet consumed.
/// Owned by one thread at a time (reactor or pool), TLS state included:
/// it moves, it is never shared.
pub struct Conn {
    pub fd: OwnedFd,
    pub buf: Vec<u8>,
    /// Requests answered on this connection.
    pub served: u32,
    /// TLS session of an `ssl://` connection.
    pub tls: Option<Box<TlsConn>>,
    /// Registered in the pool's epoll (parked there once already), not
    /// the reactor's.
    pub pooled: bool,
    /// Its token in the pool's epoll: the fd and a generation number, so
    /// a stale event for a closed connection cannot take a new one that
    /// got the same fd number.
    pub token: u64,
    /// Who is asking and where: the client's address, the local one and
    /// the listener, for [`Request::peer_addr`] and friends and for
    /// `--log-requests` (issue 17). Boxed: a `Conn` moves by value
    /// through the pool's queue; one allocation per connection.
    pub info: Box<ConnInfo>,
    /// How far the request at the front of `buf` has arrived.
    incoming: Incoming,
}

/// What a connection is, fixed at accept: read by handlers through
/// [`Request`] and by the access log, never per request unless asked.
pub struct ConnInfo {
    /// The client's address as accept4(2) gave it; `None` on a unix socket.
    pub peer: Option<SocketAddr>,
    /// The local address, asked of getsockname(2) the first time a handler
    /// wants it (most never do); `None` inside on a unix socket.
    local: OnceLock<Option<SocketAddr>>,
    /// The listener's name for handlers (`tcp://0.0.0.0:9292`, `fd://web`),
    /// shared by all its connections.
    pub listener: Arc<str>,
}

impl ConnInfo {
    pub fn new(peer: Option<SocketAddr>, listener: Arc<str>) -> ConnInfo {
        ConnInfo {
            peer,
            local: OnceLock::new(),
            listener,
        }
    }

    /// The local address of `fd` (this connection's socket), looked up once.
    pub fn local(&self, fd: &OwnedFd) -> Option<SocketAddr> {
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

impl Conn {
    pub fn new(fd: OwnedFd, info: ConnInfo, tls: Option<Box<TlsConn>>) -> Conn {
        Conn {
            fd,
            buf: Vec::new(),
            served: 0,
            tls,
            pooled: false,
            token: 0,
            info: Box::new(info),
            incoming: Incoming::default(),
        }
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
    fn reset_incoming(&mut self) {
        self.incoming = Incoming::default();
    }

    /// One non-blocking read appended to `buf` (plaintext for TLS):
    /// `Ok(0)` is end of stream.
    pub fn read_some(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
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
                    if !sys::wait_fd(self.fd.as_raw_fd(), Interest::Read, timeout)? {
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
        let fd = self.fd.as_raw_fd();
        match &mut self.tls {
            Some(tls) => tls.write_plain(fd, data, timeout),
            None => send_all(fd, data, more, timeout),
        }
    }

    /// Sends what the socket takes of `data` now; `WouldBlock` when it
    /// takes nothing.
    fn send_some(&mut self, data: &[u8], more: bool) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        match &mut self.tls {
            Some(tls) => tls.write_some(fd, data),
            None => sys::send(fd, data, more),
        }
    }

    /// Sends what the socket takes now of `part` (sendfile(2) on plain
    /// sockets, read and encrypted under TLS) and advances it.
    fn send_file_some(&mut self, part: &mut FilePart) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let want = (part.end - part.offset).min(1 << 30) as usize;
        let Some(tls) = &mut self.tls else {
            return match sys::sendfile(fd, &part.file, &mut part.offset, want)? {
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
            let n = part.file.read_at(&mut chunk[..want], part.offset)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // rustls may take less than was read: the rest is read again.
            let took = tls.write_some(fd, &chunk[..n])?;
            part.offset += took as u64;
            Ok(())
        })
    }

    /// Every byte handed to TLS has left (always true on plain TCP).
    fn flushed(&mut self) -> io::Result<bool> {
        let fd = self.fd.as_raw_fd();
        match &mut self.tls {
            Some(tls) => tls.flush_now(fd),
            None => Ok(true),
        }
    }

    /// One attempt to send `data` without waiting (an answer from the
    /// reactor, which must never block).
    pub fn send_now(&mut self, data: &[u8]) {
        let fd = self.fd.as_raw_fd();
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

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
            // Best effort, never waits: tells the peer the end is deliberate
            // (only once a session exists to end).
            tls.close_notify(self.fd.as_raw_fd());
        }
    }
}

/// What every pool thread of a process shares.
pub struct Engine {
    pub handler: Box<dyn Handler>,
    pub stats: Stats,
    pub limits: Limits,
    /// The pool's bounded queue: connections with a complete request head.
    pub queue: Sender<Conn>,
    pub jobs: Receiver<Conn>,
    /// Rung once per queued connection while pool threads wait in
    /// `pool_epoll` (a counting eventfd registered there).
    pub doorbell: EventFd,
    /// The reactor's wake-up (room in the queue again, stop).
    pub wake: EventFd,
    /// Set by the reactor while it holds connections the full queue
    /// refused; a thread taking a job then wakes it.
    pub backlogged: AtomicBool,
    /// A wake-up is on its way to the reactor (see `wake_reactor`).
    pub wake_pending: AtomicBool,
    /// The reactor's epoll: listeners, new connections, TLS handshakes.
    pub epoll: Epoll,
    /// The pool's epoll: parked keep-alive connections and the doorbell.
    pub pool_epoll: Epoll,
    /// The connections registered in `pool_epoll`, between requests.
    pub parking: Parking,
    /// Set when the pool is dropped: idle threads exit.
    pub retired: AtomicBool,
    /// Generation numbers for `Conn::token`.
    pub generation: AtomicU32,
    /// Pool threads reading a parked connection's request (not yet
    /// `Stats::busy`): a graceful stop waits for them too.
    pub reading: AtomicUsize,
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
        }
    }
}

/// What to do with a connection after serving what it had buffered.
enum Next {
    /// Wait for its next request in the pool's epoll.
    Park,
    /// Wait in the pool's epoll until the client takes the rest of a
    /// response.
    Send(Box<Outgoing>),
    /// A complete request is buffered but others are queued: queue it
    /// behind them.
    Requeue,
    Close,
}

impl Engine {
    /// Queues a connection with a complete head for the pool; gives it
    /// back when the queue is full.
    pub fn enqueue(&self, conn: Conn) -> Result<(), Conn> {
        match self.queue.try_send(conn) {
            Ok(()) => {
                self.ring();
                Ok(())
            }
            Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => Err(c),
        }
    }

    /// After queueing: wakes a pool thread if one waits. Pairs with the
    /// fence in the pool's wait: either the thread sees the queued
    /// connection, or this sees the thread waiting.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.stats.waiting.load(Ordering::SeqCst) > 0 {
            self.doorbell.notify();
        }
    }

    /// Called by a pool thread when it takes a connection off the queue.
    pub fn on_dequeue(&self) {
        if self.backlogged.load(Ordering::Acquire) {
            self.wake_reactor();
        }
    }

    /// Parks a connection that has just been served until its next
    /// request (or the rest of a pipelined one).
    fn park_keep_alive(&self, mut conn: Conn) {
        let partial = !conn.buf.is_empty();
        if !partial && conn.buf.capacity() > IDLE_BUFFER_MAX {
            // An idle connection does not keep the room a large head or
            // body needed (up to ~128 KiB) for persistent_timeout.
            conn.buf = Vec::new();
        }
        let now = Instant::now();
        let deadline = match conn.request_ready(self.limits.max_body) {
            Progress::Body if conn.start_body_wait() => now + self.limits.body_timeout,
            _ if partial => now + self.limits.first_data_timeout,
            _ => now + self.limits.persistent_timeout,
        };
        self.park(Parked::waiting(conn, deadline, partial));
    }

    /// Parks a connection until the client takes more of `out`, under
    /// the write deadline.
    fn park_writer(&self, conn: Conn, out: Box<Outgoing>) {
        let mut p = Parked::waiting(conn, Instant::now() + self.limits.write_timeout, false);
        p.outgoing = Some(out);
        self.park(p);
    }

    /// Puts `p` in the parking, then arms its one-shot registration in
    /// the pool's epoll (moving it out of the reactor's the first time):
    /// for reading, or for writing when it has a response to finish.
    fn park(&self, mut p: Parked) {
        let writer = p.outgoing.is_some();
        if !writer && self.stats.stopping.load(Ordering::Acquire) {
            return; // dropped: closed (the reactor closed the idle ones)
        }
        let fd = p.conn.fd.as_raw_fd();
        let first = !p.conn.pooled;
        if first {
            // Served first from the reactor: its one-shot fired, so the
            // registration there is disarmed; remove it for good.
            let _ = self.epoll.delete(fd);
            p.conn.pooled = true;
            let generation = self.generation.fetch_add(1, Ordering::Relaxed);
            p.conn.token = (u64::from(generation) << 32) | fd as u64;
        }
        let token = p.conn.token;
        let interest = if writer {
            EPOLL_WRITE_ONESHOT
        } else {
            EPOLL_READ_ONESHOT
        };
        self.parking.put(p);
        let armed = if first {
            self.pool_epoll.add(fd, interest, token)
        } else {
            self.pool_epoll.modify(fd, interest, token)
        };
        if armed.is_err() {
            drop(self.parking.take(fd, token)); // closed: nothing would wake it
        } else if !writer && self.stats.stopping.load(Ordering::Acquire) {
            // The stop began meanwhile and may have taken the parked
            // connections back already: close this one too.
            drop(self.parking.take(fd, token));
        }
    }

    /// Wakes the reactor once per turn of its loop: wake-ups between two
    /// turns coalesce into one eventfd write (the reactor clears
    /// `wake_pending` before it looks at the queue again).
    fn wake_reactor(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake.notify();
        }
    }
}

/// A parked connection's registration fired: send more of its response,
/// or read what came and serve it when a request is ready (park it again
/// otherwise).
pub fn on_parked_ready(engine: &Engine, token: u64) {
    let fd = (token & u64::from(u32::MAX)) as RawFd;
    // Counted before it leaves the parking: a graceful stop never sees a
    // moment with the connection in neither count.
    let _reading = Counted::new(&engine.reading);
    let Some(mut p) = engine.parking.take(fd, token) else {
        return; // expired by the reactor since, or a stale event
    };
    match p.outgoing.take() {
        Some(out) => continue_sending(engine, p.conn, out),
        None => read_parked(engine, p),
    }
}

/// One unit of a counter a graceful stop waits on, held for a scope: the
/// count goes down in `Drop`, so no return or panic leaves it up.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn read_parked(engine: &Engine, mut p: Parked) {
    match p.read_available(&engine.limits) {
        Arrived::Request => serve(engine, p.conn),
        Arrived::Waiting => engine.park(p),
        Arrived::Gone => {} // dropped: closed
    }
}

/// The client can take more of a response: send what it takes, then
/// serve its next request (or park it, or close it).
fn continue_sending(engine: &Engine, mut conn: Conn, mut out: Box<Outgoing>) {
    // A client slow to read may have sent more meanwhile, unread: closing
    // over it would reset the end of the response away (plain TCP).
    out.linger |= conn.tls.is_none();
    match send_out(&mut conn, &mut out) {
        None => engine.park_writer(conn, out),
        Some(Answered::Open) if !engine.stats.stopping.load(Ordering::Acquire) => {
            serve(engine, conn)
        }
        Some(Answered::Open) => {
            if conn.tls.is_none() {
                linger(&mut conn);
            }
        }
        Some(_) => {} // dropped: closed
    }
}

/// Serves `conn` until it must wait for the client again, then parks it
/// (or queues it behind others, or closes it).
pub fn serve(engine: &Engine, mut conn: Conn) {
    // Busy until the connection is parked, queued or closed, so a graceful
    // stop never sees a moment with it in none of its counts.
    let _busy = Counted::new(&engine.stats.busy);
    loop {
        let next = serve_requests(engine, &mut conn);
        match next {
            Next::Park => return engine.park_keep_alive(conn),
            Next::Send(out) => return engine.park_writer(conn, out),
            Next::Close => return,
            Next::Requeue => match engine.enqueue(conn) {
                Ok(()) => return,
                Err(c) => conn = c, // the queue is full: go on here
            },
        }
    }
}

fn serve_requests(engine: &Engine, conn: &mut Conn) -> Next {
    let max_body = engine.limits.max_body;
    loop {
        if conn.served > 0 {
            if let Some(next) = tls_read_ahead(conn) {
                return next;
            }
        }
        if conn.request_ready(max_body) != Progress::Ready {
            return Next::Park; // wait for the rest of the request
        }
        let (head, n) = match conn.take_head() {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Next::Park,
            Err(e) => return respond_error(engine, conn, e, None).into(),
        };
        let continue_sent = conn.incoming.continue_sent;
        conn.buf.drain(..n);
        conn.reset_incoming();
        conn.served += 1;
        match serve_one(engine, conn, &head, continue_sent) {
            Answered::Open => {}
            answered => return answered.into(),
        }
        if engine.stats.stopping.load(Ordering::Acquire) {
            // Stopping: answer what is already here (with Connection:
            // close), wait for nothing more.
            if conn.request_ready(max_body) == Progress::Ready {
                continue;
            }
            return Next::Close;
        }
        if let Some(next) = tls_read_ahead(conn) {
            return next;
        }
        // A pipelined request is served inline unless others are waiting.
        if conn.request_ready(max_body) != Progress::Ready {
            return Next::Park;
        }
        if !engine.jobs.is_empty() {
            return Next::Requeue;
        }
    }
}

/// After a request on a TLS connection with nothing buffered: rustls may
/// hold decrypted bytes of the next request that no socket event will
/// announce, so read once. `Some`: what to do instead of going on.
fn tls_read_ahead(conn: &mut Conn) -> Option<Next> {
    if !conn.buf.is_empty() || conn.tls.is_none() {
        return None;
    }
    match conn.read_some() {
        Ok(0) => Some(Next::Close),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Next::Park),
        Err(_) => Some(Next::Close),
    }
}

/// How far answering a request got.
enum Answered {
    /// Sent in full; the connection may carry another request.
    Open,
    /// Sent (or failed); the connection is closed when dropped.
    Closed,
    /// The client has not taken all of it yet.
    Sending(Box<Outgoing>),
}

impl From<Answered> for Next {
    fn from(a: Answered) -> Next {
        match a {
            Answered::Open => Next::Park,
            Answered::Closed => Next::Close,
            Answered::Sending(out) => Next::Send(out),
        }
    }
}

/// Answers one request.
fn serve_one(engine: &Engine, conn: &mut Conn, head: &Head, continue_sent: bool) -> Answered {
    let started = Instant::now();
    let limits = &engine.limits;
    if let Framing::Length(n) = head.framing {
        if n > limits.max_body {
            return respond_error(engine, conn, HttpError::PayloadTooLarge, Some(head));
        }
    }
    let mut body = BodyReader::new(conn, head, limits, continue_sent);
    let response = {
        let mut req = Request::new(head, &mut body);
        catch_unwind(AssertUnwindSafe(|| engine.handler.handle(&mut req)))
    };
    let response = response.unwrap_or_else(|_| {
        log::error(&format!(
            "! handler panicked on {} {}; answered 500",
            head.method, head.target
        ));
        Response::text(500, "500 Internal Server Error\n")
    });
    // Consume what the handler left unread of what has arrived, so the
    // next request starts at the right byte; a body error replaces the
    // handler's answer. A body still on its way is not waited for: the
    // connection closes after this answer (a 405 or 413 does not drain a
    // large body).
    let body_done = match body.finish() {
        Ok(done) => done,
        Err(Some(e)) => return respond_error(engine, conn, e, Some(head)),
        Err(None) => return Answered::Closed, // the client went away
    };
    conn.reset_incoming();
    let keep_alive = body_done
        && head.keep_alive
        && conn.served < limits.max_keep_alive
        && !engine.stats.stopping.load(Ordering::Acquire);
    let status = response.status;
    let (answered, sent) = match write_response(conn, head, response, keep_alive, limits) {
        Ok((mut out, sent)) => {
            // Unread body bytes may follow: end our side first, so the
            // kernel does not reset the answer away.
            out.linger = !body_done && conn.tls.is_none();
            (deliver(conn, out), sent)
        }
        Err(_) => (Answered::Closed, 0),
    };
    engine.stats.requests.fetch_add(1, Ordering::Relaxed);
    if limits.log_requests {
        let request = http::LoggedLine::of_head(head).to_string();
        log_request(conn, &request, status, sent, started);
    }
    answered
}

/// The unsent rest of a response: bytes (head, and a body held in
/// memory), then part of a file. Written without ever waiting: by the pool
/// thread that made it, then, if the client does not take it all at once,
/// by whichever pool thread the connection's EPOLLOUT wakes.
pub struct Outgoing {
    /// The head, and a body small enough to leave with it.
    bytes: Vec<u8>,
    /// Of `bytes`, how many have been sent.
    at: usize,
    /// A larger in-memory body, the handler's own buffer (not copied).
    body: Vec<u8>,
    /// Of `body`, how many have been sent.
    body_at: usize,
    file: Option<FilePart>,
    /// After the last byte, the connection waits for its next request.
    keep_alive: bool,
    /// After the last byte, end our side and discard what the client has
    /// sent before closing (see [`linger`]).
    linger: bool,
}

/// The bytes `offset..end` of a file still to send.
struct FilePart {
    file: std::sync::Arc<std::fs::File>,
    offset: u64,
    end: u64,
}

impl Outgoing {
    fn new(bytes: Vec<u8>, keep_alive: bool) -> Outgoing {
        Outgoing {
            bytes,
            at: 0,
            body: Vec::new(),
            body_at: 0,
            file: None,
            keep_alive,
            linger: false,
        }
    }

    /// Sends what the socket takes now; `Ok(true)` once all has left.
    fn write(&mut self, conn: &mut Conn) -> io::Result<bool> {
        loop {
            let sent = if self.at < self.bytes.len() {
                let more = !self.body.is_empty() || self.file.is_some();
                conn.send_some(&self.bytes[self.at..], more)
                    .map(|n| self.at += n)
            } else if self.body_at < self.body.len() {
                let more = self.file.is_some();
                conn.send_some(&self.body[self.body_at..], more)
                    .map(|n| self.body_at += n)
            } else if let Some(part) = self.file.as_mut().filter(|p| p.offset < p.end) {
                conn.send_file_some(part)
            } else {
                return conn.flushed();
            };
            match sent {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends what the client takes of `out` now and says what comes next
/// (boxed only when it must wait: most responses leave at once).
fn deliver(conn: &mut Conn, mut out: Outgoing) -> Answered {
    send_out(conn, &mut out).unwrap_or_else(|| Answered::Sending(Box::new(out)))
}

/// Sends what the client takes of `out` now; `None` while some is left.
fn send_out(conn: &mut Conn, out: &mut Outgoing) -> Option<Answered> {
    match out.write(conn) {
        Ok(true) if out.keep_alive => Some(Answered::Open),
        Ok(true) => {
            if out.linger {
                linger(conn);
            }
            Some(Answered::Closed)
        }
        Ok(false) => None,
        Err(_) => Some(Answered::Closed),
    }
}

/// Before closing a plain connection whose client may still be sending:
/// closing with unread bytes queued makes the kernel send a reset, which
/// can destroy the answer in flight. End our side, then discard what has
/// already arrived (without waiting for more).
fn linger(conn: &mut Conn) {
    let _ = sys::shutdown_write(conn.fd.as_raw_fd());
    conn.buf.clear();
    while matches!(conn.read_some(), Ok(n) if n > 0) {
        conn.buf.clear();
    }
}

/// Reads a request body from the buffered bytes, then the socket.
struct BodyReader<'a> {
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
    fn new(
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
    fn finish(mut self) -> Result<bool, Option<HttpError>> {
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

/// Builds the response as an [`Outgoing`] to deliver, with its body bytes
/// (a `Body::Stream` is sent here, waiting for the client as it streams).
fn write_response(
    conn: &mut Conn,
    head: &Head,
    resp: Response,
    mut keep_alive: bool,
    limits: &Limits,
) -> io::Result<(Outgoing, u64)> {
    let status = resp.status;
    let bodyless =
        head.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let length = match &resp.body {
        Body::Empty => Some(0),
        Body::Bytes(b) => Some(b.len() as u64),
        Body::File { len, .. } => Some(*len),
        Body::Stream(_) => None,
    };
    let chunked = length.is_none() && head.minor >= 1;
    if length.is_none() && !chunked {
        keep_alive = false; // HTTP/1.0: the end of the body is the close
    }
    // Room for the head and a body small enough to join it, so the buffer
    // is allocated once per response, not grown.
    let joined = match (bodyless, length) {
        (false, Some(n)) if n <= COALESCE_LIMIT as u64 => n as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(HEAD_RESERVE + joined);
    write_head(
        &mut out,
        status,
        &resp.headers,
        head.minor,
        keep_alive,
        |out| {
            if status == 204 || status == 304 || (100..200).contains(&status) {
                return;
            }
            match length {
                Some(n) => push_header(out, "Content-Length", itoa(n).as_bytes()),
                None if chunked => push_header(out, "Transfer-Encoding", b"chunked"),
                None => {}
            }
        },
    );
    if bodyless {
        return Ok((Outgoing::new(out, keep_alive), 0));
    }
    let mut file = None;
    let mut large = Vec::new();
    let sent = match resp.body {
        Body::Empty => 0,
        Body::Bytes(b) => {
            let len = b.len() as u64;
            if b.len() <= COALESCE_LIMIT {
                out.extend_from_slice(&b); // one send with the head
            } else {
                large = b; // sent after the head, not copied
            }
            len
        }
        Body::File {
            file: f,
            offset,
            len,
        } if len <= COALESCE_LIMIT as u64 => {
            // A small file costs less read into the head's buffer and sent
            // once than sent as a corked head plus sendfile (one pread and
            // one send against a send and a sendfile: 10.5 -> 9.2 us per
            // request in the cluster benchmark). Under TLS the file is
            // read and encrypted anyway, and leaves as one record.
            append_file(&mut out, &f, offset, len)?;
            len
        }
        Body::File {
            file: f,
            offset,
            len,
        } => {
            file = Some(FilePart {
                file: f,
                offset,
                end: offset + len,
            });
            len
        }
        Body::Stream(mut reader) => {
            // The one response that holds its thread while the client is
            // slow: the handler chose to stream (each wait is bounded by
            // write_timeout).
            let wait = limits.write_timeout;
            conn.send(&out, true, wait)?;
            out.clear();
            send_stream(conn, &mut *reader, chunked, wait)?
        }
    };
    let mut outgoing = Outgoing::new(out, keep_alive);
    outgoing.body = large;
    outgoing.file = file;
    Ok((outgoing, sent))
}

/// Appends `len` bytes of `file` from `offset` to `out`.
fn append_file(out: &mut Vec<u8>, file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let start = out.len();
    out.resize(start + len as usize, 0);
    file.read_exact_at(&mut out[start..], offset)
}

/// Status line, engine headers, the handler's headers (minus the framing
/// ones the engine owns), framing headers from `framing`, blank line.
fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    minor: u8,
    keep_alive: bool,
    framing: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa(u64::from(status)).as_bytes());
    out.push(b' ');
    out.extend_from_slice(http::reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: catamount\r\n");
    crate::date::with_now(|d| push_header(out, "Date", d.as_bytes()));
    for (name, value) in headers {
        let engine_owned = [
            "content-length",
            "transfer-encoding",
            "connection",
            "date",
            "server",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        // A CR or LF in a handler's header would split the response.
        let unsafe_bytes = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if !engine_owned && !unsafe_bytes(name) && !unsafe_bytes(value) {
            push_header(out, name, value.as_bytes());
        }
    }
    framing(out);
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn itoa(n: u64) -> String {
    n.to_string()
}

/// The bytes of a complete answer to a refused request: its status, a
/// one-line text body, `Connection: close`.
pub fn error_response(e: HttpError) -> Vec<u8> {
    let status = e.status();
    let body = format!("{status} {}\n", http::reason(status));
    let mut out = Vec::with_capacity(256);
    let headers = [(
        "Content-Type".to_string(),
        "text/plain; charset=utf-8".to_string(),
    )];
    write_head(&mut out, status, &headers, 1, false, |out| {
        push_header(out, "Content-Length", itoa(body.len() as u64).as_bytes());
    });
    out.extend_from_slice(body.as_bytes());
    out
}

/// Answers a refused request and counts and logs it; the connection
/// closes after the answer.
fn respond_error(engine: &Engine, conn: &mut Conn, e: HttpError, head: Option<&Head>) -> Answered {
    let mut bytes = error_response(e);
    if head.is_some_and(|h| h.method == "HEAD") {
        if let Some(end) = http::head_end(&bytes) {
            bytes.truncate(end);
        }
    }
    // A refused head was not parsed: log what its request line shows
    // (the method of a 414, the whole line of a 431). Read before the
    // answer goes: delivering it may drop the buffered bytes.
    let request = engine.limits.log_requests.then(|| {
        match head {
            Some(h) => http::LoggedLine::of_head(h),
            None => http::LoggedLine::from_refused(&conn.buf),
        }
        .to_string()
    });
    let mut out = Outgoing::new(bytes, false);
    out.linger = conn.tls.is_none();
    let answered = deliver(conn, out);
    engine.stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(request) = request {
        log_request(conn, &request, e.status(), 0, Instant::now());
    }
    answered
}

/// Sends all of `data`, waiting (each wait bounded by `timeout`) while
/// the socket buffer is full. `more`: more data follows at once
/// (MSG_MORE).
fn send_all(fd: RawFd, mut data: &[u8], more: bool, timeout: Duration) -> io::Result<()> {
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

fn send_stream(
    conn: &mut Conn,
    reader: &mut dyn Read,
    chunked: bool,
    wait: Duration,
) -> io::Result<u64> {
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // No terminating chunk: the client sees a truncated body.
            Err(e) => return Err(e),
        };
        if n == 0 {
            if chunked {
                conn.send(b"0\r\n\r\n", false, wait)?;
            }
            return Ok(total);
        }
        total += n as u64;
        if chunked {
            let mut frame = format!("{n:x}\r\n").into_bytes();
            frame.extend_from_slice(&buf[..n]);
            frame.extend_from_slice(b"\r\n");
            conn.send(&frame, true, wait)?;
        } else {
            conn.send(&buf[..n], true, wait)?;
        }
    }
}

/// The error a head that reached `MAX_HEAD` without ending is refused
/// with (431, or 414 for an overlong request line).
fn parse_error(buf: &[u8]) -> HttpError {
    match http::parse_head(buf) {
        Err(e) => e,
        Ok(_) => HttpError::HeadersTooLarge,
    }
}

/// One `--log-requests` line, in the Common Log Format as Puma and nginx
/// write it, with the seconds taken at the end: `127.0.0.1 - -
/// [04/Dec/2026:15:11:30 +0000] "GET /a HTTP/1.1" 200 12 0.0003`.
/// `request` is the quoted part, escaped ([`http::LoggedLine`]).
fn log_request(conn: &Conn, request: &str, status: u16, bytes: u64, started: Instant) {
    let peer = conn
        .info
        .peer
        .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
    let line = crate::date::with_now_clf(|d| {
        format!(
            "{peer} - - [{d}] \"{request}\" {status} {bytes} {:.4}",
            started.elapsed().as_secs_f64()
        )
    });
    log::info(&line);
}
