//! Serving one connection on a pool thread: parse the buffered head, read
//! the body (with `Expect: 100-continue` and limits), call the handler,
//! write the response (sendfile for large files), then serve the next pipelined
//! request inline or park the connection in the pool's epoll until its
//! next request (see `parking`).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::http::{self, ChunkedDecoder, Framing, Head, HttpError};
use crate::parking::{Arrived, Parked, Parking};
use crate::pool::Stats;
use crate::sys::{self, Epoll, EventFd, Interest, EPOLL_READ_ONESHOT};
use crate::tls::TlsConn;
use crate::{Body, Config, Handler, Request, Response};

/// A send that makes no progress for this long fails and closes the
/// connection (a client that stopped reading).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from a socket per call.
pub const READ_CHUNK: usize = 16 * 1024;
/// Bytes of a response body read from a `Body::Stream` per chunk.
const STREAM_CHUNK: usize = 16 * 1024;
/// Largest body (`Body::Bytes`, or a `Body::File` read with pread) copied
/// into the head's buffer so head and body leave in one send.
const COALESCE_LIMIT: usize = 16 * 1024;
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
}

impl Conn {
    pub fn new(fd: OwnedFd, tls: Option<Box<TlsConn>>) -> Conn {
        Conn {
            fd,
            buf: Vec::new(),
            served: 0,
            tls,
            pooled: false,
            token: 0,
        }
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

    /// Sends all of `data`, waiting (bounded by [`SEND_TIMEOUT`] per
    /// wait) while the socket buffer is full. `more`: more data follows
    /// at once (MSG_MORE; plain TCP only).
    pub fn send(&mut self, data: &[u8], more: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        match &mut self.tls {
            Some(tls) => tls.write_plain(fd, data, SEND_TIMEOUT),
            None => send_all(fd, data, more),
        }
    }

    /// `len` bytes of `file` from `offset`: sendfile(2) on plain
    /// sockets, read and encrypt in chunks under TLS.
    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let Some(tls) = &mut self.tls else {
            return send_file(fd, file, offset, len);
        };
        use std::os::unix::fs::FileExt;
        let mut chunk = vec![0u8; STREAM_CHUNK];
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let want = (end - at).min(chunk.len() as u64) as usize;
            let n = file.read_at(&mut chunk[..want], at)?;
            if n == 0 {
                // The file shrank under us: the promised length cannot be met.
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            tls.write_plain(fd, &chunk[..n], SEND_TIMEOUT)?;
            at += n as u64;
        }
        Ok(())
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
    /// first_data_timeout: for a request's head and body to arrive.
    pub body_timeout: Duration,
    /// persistent_timeout: for an idle keep-alive connection.
    pub persistent_timeout: Duration,
    pub max_keep_alive: u32,
    pub max_body: u64,
    pub log_requests: bool,
}

impl Limits {
    pub fn from_config(c: &Config) -> Limits {
        Limits {
            body_timeout: c.first_data_timeout,
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
    fn park_keep_alive(&self, conn: Conn) {
        let partial = !conn.buf.is_empty();
        let deadline = Instant::now()
            + if partial {
                self.limits.body_timeout
            } else {
                self.limits.persistent_timeout
            };
        self.park(Parked {
            conn,
            deadline,
            partial,
        });
    }

    /// Puts `p` in the parking, then arms its one-shot registration in
    /// the pool's epoll (moving it out of the reactor's the first time).
    fn park(&self, mut p: Parked) {
        if self.stats.stopping.load(Ordering::Acquire) {
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
        self.parking.put(p);
        let armed = if first {
            self.pool_epoll.add(fd, EPOLL_READ_ONESHOT, token)
        } else {
            self.pool_epoll.modify(fd, EPOLL_READ_ONESHOT, token)
        };
        if armed.is_err() {
            drop(self.parking.take(fd, token)); // closed: nothing would wake it
        } else if self.stats.stopping.load(Ordering::Acquire) {
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

/// A parked connection's registration fired: read what came, serve it
/// when a request head is complete, park it again otherwise.
pub fn on_parked_ready(engine: &Engine, token: u64) {
    let fd = (token & u64::from(u32::MAX)) as RawFd;
    let Some(p) = engine.parking.take(fd, token) else {
        return; // expired by the reactor since, or a stale event
    };
    engine.reading.fetch_add(1, Ordering::AcqRel);
    read_parked(engine, p);
    engine.reading.fetch_sub(1, Ordering::AcqRel);
}

fn read_parked(engine: &Engine, mut p: Parked) {
    match p.read_available(engine.limits.body_timeout) {
        Arrived::Request => serve(engine, p.conn),
        Arrived::Waiting => engine.park(p),
        Arrived::Gone => {} // dropped: closed
    }
}

/// Serves `conn` until it must wait for the client again, then parks it
/// (or queues it behind others, or closes it).
pub fn serve(engine: &Engine, mut conn: Conn) {
    loop {
        engine.stats.busy.fetch_add(1, Ordering::AcqRel);
        let next = serve_requests(engine, &mut conn);
        engine.stats.busy.fetch_sub(1, Ordering::AcqRel);
        match next {
            Next::Park => return engine.park_keep_alive(conn),
            Next::Close => return,
            Next::Requeue => match engine.enqueue(conn) {
                Ok(()) => return,
                Err(c) => conn = c, // the queue is full: go on here
            },
        }
    }
}

fn serve_requests(engine: &Engine, conn: &mut Conn) -> Next {
    loop {
        let (head, n) = match http::parse_head(&conn.buf) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Next::Park, // wait for the rest of the head
            Err(e) => {
                respond_error(engine, conn, e, None);
                return Next::Close;
            }
        };
        conn.buf.drain(..n);
        conn.served += 1;
        if !serve_one(engine, conn, &head) {
            return Next::Close;
        }
        if engine.stats.stopping.load(Ordering::Acquire) {
            // Stopping: answer what is already here (with Connection:
            // close), wait for nothing more.
            if http::head_end(&conn.buf).is_some() {
                continue;
            }
            return Next::Close;
        }
        if conn.buf.is_empty() && conn.tls.is_some() {
            // rustls may hold decrypted bytes of the next request that no
            // socket event will announce.
            match conn.read_some() {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Park,
                Err(_) => return Next::Close,
            }
        }
        // A pipelined request is served inline unless others are waiting.
        if http::head_end(&conn.buf).is_none() {
            return Next::Park;
        }
        if !engine.jobs.is_empty() {
            return Next::Requeue;
        }
    }
}

/// Answers one request; returns whether the connection stays open.
fn serve_one(engine: &Engine, conn: &mut Conn, head: &Head) -> bool {
    let started = Instant::now();
    let limits = &engine.limits;
    if let Framing::Length(n) = head.framing {
        if n > limits.max_body {
            respond_error(engine, conn, HttpError::PayloadTooLarge, Some(head));
            return false;
        }
    }
    if head.expect_continue && head.framing != Framing::None && conn.buf.is_empty() {
        // Ask for the body at once, as Puma does: the client may then send
        // it and the connection stays usable whether or not the handler
        // reads it (RFC 9110 §10.1.1).
        if conn.send(b"HTTP/1.1 100 Continue\r\n\r\n", false).is_err() {
            return false;
        }
    }
    let mut body = BodyReader::new(conn, head, limits);
    let response = {
        let mut req = Request::new(head, &mut body);
        catch_unwind(AssertUnwindSafe(|| engine.handler.handle(&mut req)))
    };
    let response = response.unwrap_or_else(|_| {
        eprintln!(
            "! handler panicked on {} {}; answered 500",
            head.method, head.target
        );
        Response::text(500, "500 Internal Server Error\n")
    });
    // Consume what the handler left unread so the next request starts at
    // the right byte; a body error replaces the handler's answer.
    let body_ok = match body.finish() {
        Ok(clean) => clean,
        Err(Some(e)) => {
            respond_error(engine, conn, e, Some(head));
            return false;
        }
        Err(None) => return false, // the client went away
    };
    let keep_alive = body_ok
        && head.keep_alive
        && conn.served < limits.max_keep_alive
        && !engine.stats.stopping.load(Ordering::Acquire);
    let status = response.status;
    let result = write_response(conn, head, response, keep_alive);
    engine.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (kept, sent) = result.unwrap_or_default();
    if limits.log_requests {
        log_request(conn, head, status, sent, started);
    }
    kept
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
    timeout: Duration,
    error: Option<HttpError>,
    gone: bool,
}

impl<'a> BodyReader<'a> {
    fn new(conn: &'a mut Conn, head: &Head, limits: &Limits) -> BodyReader<'a> {
        let remaining = match head.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        BodyReader {
            conn,
            framing: head.framing,
            remaining,
            decoder: ChunkedDecoder::with_limit(limits.max_body),
            received: 0,
            max_body: limits.max_body,
            timeout: limits.body_timeout,
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
        match self.conn.read_wait(self.timeout) {
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

    /// Discards the unread rest of the body. `Ok(true)`: the connection
    /// may carry another request; `Ok(false)`: it must close;
    /// `Err(Some(e))`: answer `e`; `Err(None)`: the client is gone.
    fn finish(mut self) -> Result<bool, Option<HttpError>> {
        let mut sink = [0u8; READ_CHUNK];
        while !self.is_complete() && self.error.is_none() && !self.gone {
            if self.read(&mut sink).is_err() || self.framing == Framing::None {
                break;
            }
        }
        match (self.error, self.gone) {
            (Some(e), _) => Err(Some(e)),
            (None, true) => Err(None),
            (None, false) => Ok(true),
        }
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

/// Writes the response; returns (connection stays open, body bytes sent).
fn write_response(
    conn: &mut Conn,
    head: &Head,
    resp: Response,
    mut keep_alive: bool,
) -> io::Result<(bool, u64)> {
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
        conn.send(&out, false)?;
        return Ok((keep_alive, 0));
    }
    let sent = match resp.body {
        Body::Empty => {
            conn.send(&out, false)?;
            0
        }
        Body::Bytes(b) => {
            if b.len() <= COALESCE_LIMIT {
                out.extend_from_slice(&b);
                conn.send(&out, false)?;
            } else {
                conn.send(&out, true)?;
                conn.send(&b, false)?;
            }
            b.len() as u64
        }
        Body::File { file, offset, len } if len <= COALESCE_LIMIT as u64 => {
            // A small file costs less read into the head's buffer and sent
            // once than sent as a corked head plus sendfile (one pread and
            // one send against a send and a sendfile: 10.5 -> 9.2 us per
            // request in the cluster benchmark). Under TLS the file is
            // read and encrypted anyway, and leaves as one record.
            append_file(&mut out, &file, offset, len)?;
            conn.send(&out, false)?;
            len
        }
        Body::File { file, offset, len } => {
            conn.send(&out, len > 0)?;
            conn.send_file(&file, offset, len)?;
            len
        }
        Body::Stream(mut reader) => {
            conn.send(&out, true)?;
            send_stream(conn, &mut *reader, chunked)?
        }
    };
    Ok((keep_alive, sent))
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

/// Answers a refused request and counts and logs it.
fn respond_error(engine: &Engine, conn: &mut Conn, e: HttpError, head: Option<&Head>) {
    let mut out = error_response(e);
    if head.is_some_and(|h| h.method == "HEAD") {
        if let Some(end) = http::head_end(&out) {
            out.truncate(end);
        }
    }
    let fd = conn.fd.as_raw_fd();
    if conn.send(&out, false).is_ok() && conn.tls.is_none() {
        // Closing with unread bytes queued makes the kernel send a reset,
        // which can destroy the answer in flight: end our side, then
        // discard what has already arrived (without waiting for more).
        let _ = sys::shutdown_write(fd);
        conn.buf.clear();
        while matches!(conn.read_some(), Ok(n) if n > 0) {
            conn.buf.clear();
        }
    }
    engine.stats.requests.fetch_add(1, Ordering::Relaxed);
    if engine.limits.log_requests {
        let placeholder = Head {
            method: "-".into(),
            target: "-".into(),
            minor: 1,
            headers: Vec::new(),
            framing: Framing::None,
            keep_alive: false,
            expect_continue: false,
        };
        log_request(
            conn,
            head.unwrap_or(&placeholder),
            e.status(),
            0,
            Instant::now(),
        );
    }
}

/// Sends all of `data`, waiting (bounded by [`SEND_TIMEOUT`]) while the
/// socket buffer is full. `more`: more data follows at once (MSG_MORE).
fn send_all(fd: RawFd, mut data: &[u8], more: bool) -> io::Result<()> {
    while !data.is_empty() {
        match sys::send(fd, data, more) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(fd)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn wait_writable(fd: RawFd) -> io::Result<()> {
    if sys::wait_fd(fd, Interest::Write, SEND_TIMEOUT)? {
        Ok(())
    } else {
        Err(io::ErrorKind::TimedOut.into())
    }
}

fn send_file(fd: RawFd, file: &std::fs::File, mut offset: u64, len: u64) -> io::Result<()> {
    let end = offset + len;
    while offset < end {
        let want = (end - offset).min(1 << 30) as usize;
        match sys::sendfile(fd, file, &mut offset, want) {
            // The file shrank under us: the promised length cannot be met.
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(fd)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_stream(conn: &mut Conn, reader: &mut dyn Read, chunked: bool) -> io::Result<u64> {
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
                conn.send(b"0\r\n\r\n", false)?;
            }
            return Ok(total);
        }
        total += n as u64;
        if chunked {
            let mut frame = format!("{n:x}\r\n").into_bytes();
            frame.extend_from_slice(&buf[..n]);
            frame.extend_from_slice(b"\r\n");
            conn.send(&frame, true)?;
        } else {
            conn.send(&buf[..n], true)?;
        }
    }
}

fn log_request(conn: &Conn, head: &Head, status: u16, bytes: u64, started: Instant) {
    let peer = match sys::peer_inet_addr(&conn.fd) {
        Ok(Some(a)) => a.ip().to_string(),
        _ => "-".to_string(),
    };
    let line = crate::date::with_now(|d| {
        format!(
            "{peer} - - [{d}] \"{} {} HTTP/1.{}\" {status} {bytes} {:.4}\n",
            http::log_escape(&head.method),
            http::log_escape(&head.target),
            head.minor,
            started.elapsed().as_secs_f64()
        )
    });
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}
