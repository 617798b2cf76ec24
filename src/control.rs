//! The control app (Puma's `activate_control_app`) and its client,
//! `catamount ctl`: `GET /stats`, `/restart`, `/phased-restart`, `/stop`
//! and `/halt`, guarded by a token, on a socket of its own (a unix path,
//! mode 0600 by default, or a loopback TCP port). Also the state file
//! (`--state`) that tells `ctl` where the control app is and its token.
//!
//! No thread: the cluster master never starts one (it forks workers), and
//! the supervisor's loop (supervisor.rs) is a poll loop in both modes. So
//! [`ControlServer`] is a non-blocking state machine its owner drives: put
//! [`ControlServer::fds`] in the owner's `poll(2)`, bound the poll timeout
//! by [`ControlServer::next_deadline`], and call
//! [`ControlServer::handle_ready`] after each wake. That call does a
//! bounded amount of work (at most [`CONTROL_MAX_CONNECTIONS`] accepts and
//! one pass over the open connections) and returns the commands the owner
//! must carry out, each already answered with `{"status":"ok"}`.
//!
//! Work per connection is bounded: a request head of at most
//! [`CONTROL_MAX_REQUEST`] bytes, a [`CONTROL_TIMEOUT`] deadline, at most
//! [`CONTROL_MAX_CONNECTIONS`] open at once (further connections wait in
//! the kernel backlog, as the reactor's do). Answers to clients without
//! the token are written with one non-blocking send, so an unauthenticated
//! client can never make the owner wait; an authorised answer may wait up
//! to [`CONTROL_WRITE_TIMEOUT`] for room in the socket buffer.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bind::{loopback_ip, BindSpec};
use crate::listeners::{
    bind_inet_socket, bind_unix_socket, clear_unix_path, hint, BindError, SocketFile, UnixPathError,
};
use crate::sys::{self, Interest};

/// Longest control request head (request line and headers) in bytes; a
/// longer one is answered 431.
pub const CONTROL_MAX_REQUEST: usize = 4096;
/// Most headers in a control request; more is answered 431.
pub const CONTROL_MAX_HEADERS: usize = 32;
/// A control connection must send its whole request head within this
/// time after it is accepted, or it is closed (408 if it sent part of one).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most control connections open at once; more wait in the kernel backlog
/// until one closes (at the latest [`CONTROL_TIMEOUT`] later).
pub const CONTROL_MAX_CONNECTIONS: usize = 16;
/// Listen backlog of the control socket (the bind URI's `backlog=` is not
/// used: the control app never needs more).
pub const CONTROL_BACKLOG: i32 = 16;
/// Longest wait for socket-buffer room while writing an authorised answer
/// (a large `/stats` body); the owner's loop is blocked meanwhile.
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After answering, the connection is half-closed and its unread input
/// drained for at most this long, so the client sees the answer rather
/// than a reset (closing with unread bytes makes the kernel send RST).
pub const CONTROL_LINGER: Duration = Duration::from_secs(1);
/// Bytes drained per lingering connection per [`ControlServer::handle_ready`].
pub const CONTROL_LINGER_READ: usize = 64 * 1024;
/// Buffer for one read of a lingering connection's input.
const DRAIN_CHUNK: usize = 4096;
/// After an accept error such as EMFILE the listener is left out of the
/// poll set this long, instead of waking the owner in a busy loop.
pub const CONTROL_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The umask around bind(2) of a unix control socket whose URI sets
/// neither `umask=` nor `mode=`: the file is created 0600, owner only,
/// since whoever can connect can stop the server.
pub const CONTROL_DEFAULT_UMASK: u32 = 0o177;
/// Random bytes in a token made by [`random_token`] (hex: twice as many chars).
pub const TOKEN_BYTES: usize = 16;
/// Longest state file [`read_state`] reads.
pub const STATE_MAX_BYTES: u64 = 64 * 1024;
/// `catamount ctl`: deadline to connect, and for the whole answer.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(15);
/// `catamount ctl`: longest answer read.
pub const CTL_MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// What a control request asks the owner to do, once answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlCommand {
    /// `/restart`: a hot restart (as SIGUSR2).
    Restart,
    /// `/phased-restart`: workers replaced one at a time (as SIGUSR1).
    PhasedRestart,
    /// `/stop`: a graceful stop (as SIGTERM).
    Stop,
    /// `/halt`: exit at once, without waiting for requests in flight.
    Halt,
}

impl ControlCommand {
    /// The request path that asks for it, e.g. `/phased-restart`.
    pub fn path(self) -> &'static str {
        match self {
            ControlCommand::Restart => "/restart",
            ControlCommand::PhasedRestart => "/phased-restart",
            ControlCommand::Stop => "/stop",
            ControlCommand::Halt => "/halt",
        }
    }

    fn from_path(path: &str) -> Option<ControlCommand> {
        [
            ControlCommand::Restart,
            ControlCommand::PhasedRestart,
            ControlCommand::Stop,
            ControlCommand::Halt,
        ]
        .into_iter()
        .find(|c| c.path() == path)
    }
}

/// The control app's listening socket and its open connections.
pub struct ControlServer {
    listener: OwnedFd,
    url: String,
    token: Option<String>,
    /// The unix socket file we created.
    created: Option<SocketFile>,
    conns: Vec<ControlConn>,
    timeout: Duration,
    phased_restart: bool,
    /// The listener is left out of the poll set until then (accept error).
    accept_paused_until: Option<Instant>,
}

/// One control connection.
struct ControlConn {
    fd: OwnedFd,
    buf: Vec<u8>,
    deadline: Instant,
    state: ConnState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    /// Waiting for a complete request head.
    Reading,
    /// Answered and half-closed; draining input until EOF or the deadline.
    Lingering,
}

/// What became of a connection after a look at it.
enum Verdict {
    Keep,
    Close,
}

impl ControlServer {
    /// Binds the control listener: a `unix://` path (mode 0600 unless the
    /// URI's `umask=`/`mode=` say otherwise: whoever can connect can stop
    /// the server) or `tcp://` on a loopback address. `token` `None`
    /// means the operator asked for no token. Call before any thread
    /// exists and before forking: a unix bind sets the process umask.
    pub fn bind(spec: &BindSpec, token: Option<String>) -> Result<ControlServer, BindError> {
        if spec.tls().is_some() {
            return Err(BindError::new(format!(
                "control URL {spec}: ssl:// is not supported for the control app; expected \
                 unix:///PATH or tcp://127.0.0.1:PORT"
            )));
        }
        let (listener, url, created) = match spec {
            BindSpec::Unix {
                path, umask, mode, ..
            } => control_unix(path, *umask, *mode)?,
            BindSpec::Tcp { host, port, .. } => control_tcp(host, *port)?,
            BindSpec::Fd { .. } => {
                return Err(BindError::new(format!(
                    "control URL {spec}: the control app binds a socket of its own; expected \
                     unix:///PATH or tcp://127.0.0.1:PORT"
                )))
            }
        };
        Ok(ControlServer {
            listener,
            url,
            token,
            created,
            conns: Vec::new(),
            timeout: CONTROL_TIMEOUT,
            phased_restart: true,
            accept_paused_until: None,
        })
    }

    /// Where it listens, for the log and the state file: `unix:///path`
    /// or `tcp://127.0.0.1:PORT` (the real port when port 0 was asked).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Whether `/phased-restart` is offered (the default). Single mode
    /// turns it off: the request is then answered 409 and yields nothing.
    pub fn set_phased_restart(&mut self, available: bool) {
        self.phased_restart = available;
    }

    /// The descriptors to poll for readability: the listener (unless
    /// [`CONTROL_MAX_CONNECTIONS`] are open or accepting is backing off)
    /// and every open control connection. Numbers, for the owner's poll
    /// set beside its own descriptors (`sys::poll_readable`).
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = Vec::with_capacity(self.conns.len() + 1);
        if self.accepting(Instant::now()) {
            fds.push(self.listener.as_raw_fd());
        }
        fds.extend(self.conns.iter().map(|c| c.fd.as_raw_fd()));
        fds
    }

    /// Accepts, reads and answers whatever is ready, without blocking
    /// (except for up to [`CONTROL_WRITE_TIMEOUT`] writing an authorised
    /// answer that does not fit the socket buffer), and closes connections
    /// past their deadline. Harmless to call when nothing is ready.
    /// `stats_json` is called only for an authorised `GET /stats`.
    ///
    /// Returns the commands to carry out, in the order asked. Each one's
    /// `{"status":"ok"}` answer has been written before it is returned,
    /// so the owner may act at once (even exit).
    pub fn handle_ready(&mut self, stats_json: &dyn Fn() -> String) -> Vec<ControlCommand> {
        let mut commands = Vec::new();
        self.accept_new();
        let mut i = 0;
        while i < self.conns.len() {
            let now = Instant::now();
            match self.drive(i, now, stats_json, &mut commands) {
                Verdict::Keep => i += 1,
                Verdict::Close => {
                    self.conns.swap_remove(i);
                }
            }
        }
        commands
    }

    /// The earliest time [`ControlServer::handle_ready`] must run again
    /// even if nothing becomes readable: a connection's deadline, or the
    /// end of an accept backoff. `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| c.deadline)
            .chain(self.accept_paused_until)
            .min()
    }

    /// Unlinks the unix socket file if we created it and it is still the
    /// same file. Call at final exit only: never in a forked worker, and
    /// dropping a `ControlServer` (as a worker must, right after fork)
    /// leaves the file alone.
    pub fn remove_socket_file(&self) {
        if let Some(f) = &self.created {
            f.remove();
        }
    }

    fn accepting(&self, now: Instant) -> bool {
        self.conns.len() < CONTROL_MAX_CONNECTIONS
            && !matches!(self.accept_paused_until, Some(t) if now < t)
    }

    /// Accepts until the listener has none left or the table is full.
    fn accept_new(&mut self) {
        let now = Instant::now();
        if !self.accepting(now) {
            return;
        }
        self.accept_paused_until = None;
        while self.conns.len() < CONTROL_MAX_CONNECTIONS {
            match sys::accept(&self.listener) {
                Ok(fd) => self.conns.push(ControlConn {
                    fd,
                    buf: Vec::new(),
                    deadline: Instant::now() + self.timeout,
                    state: ConnState::Reading,
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The peer gave up between SYN and accept: try the next.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    crate::log::warn(&format!(
                        "! control app: accept failed: {e}; retrying in {}ms",
                        CONTROL_ACCEPT_BACKOFF.as_millis()
                    ));
                    self.accept_paused_until = Some(Instant::now() + CONTROL_ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn drive(
        &mut self,
        i: usize,
        now: Instant,
        stats_json: &dyn Fn() -> String,
        commands: &mut Vec<ControlCommand>,
    ) -> Verdict {
        match self.conns[i].state {
            ConnState::Reading => self.drive_reading(i, now, stats_json, commands),
            ConnState::Lingering => drain(&mut self.conns[i], now),
        }
    }

    fn drive_reading(
        &mut self,
        i: usize,
        now: Instant,
        stats_json: &dyn Fn() -> String,
        commands: &mut Vec<ControlCommand>,
    ) -> Verdict {
        let conn = &mut self.conns[i];
        let fd = conn.fd.as_fd();
        // One byte more than the limit tells "too large" from "exactly full".
        let mut tmp = [0u8; CONTROL_MAX_REQUEST + 1];
        let mut eof = false;
        while conn.buf.len() <= CONTROL_MAX_REQUEST {
            let room = CONTROL_MAX_REQUEST + 1 - conn.buf.len();
            match sys::recv(fd, &mut tmp[..room]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => conn.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Verdict::Close,
            }
        }
        let reply = match parse_request(&conn.buf) {
            Parsed::Complete(req) => self.route(&req, stats_json),
            Parsed::Error(status, why) => Reply::error(status, why),
            Parsed::Partial if conn.buf.len() > CONTROL_MAX_REQUEST => Reply::error(
                431,
                format!(
                    "the request head is over {CONTROL_MAX_REQUEST} bytes; control requests \
                     need only a request line and an Authorization header"
                ),
            ),
            // The client gave up before a whole head: nothing to answer.
            Parsed::Partial if eof => return Verdict::Close,
            Parsed::Partial if now >= conn.deadline && conn.buf.is_empty() => {
                return Verdict::Close
            }
            Parsed::Partial if now >= conn.deadline => Reply::error(
                408,
                format!("no complete request within {}s", self.timeout.as_secs_f64()),
            ),
            Parsed::Partial => return Verdict::Keep,
        };
        let conn = &mut self.conns[i];
        let bytes = reply.to_bytes();
        // Unauthorised or malformed: one non-blocking try, never a wait.
        let wait = if reply.authorised {
            CONTROL_WRITE_TIMEOUT
        } else {
            Duration::ZERO
        };
        let written = send_within(conn.fd.as_fd(), &bytes, wait);
        if let Some(c) = reply.command {
            // Asked by a client holding the token: done even if it has
            // already gone away and missed the answer.
            commands.push(c);
        }
        // A client past its deadline has had its time: no lingering.
        if reply.status == 408 || written.is_err() || sys::shutdown_write(conn.fd.as_fd()).is_err()
        {
            return Verdict::Close;
        }
        conn.state = ConnState::Lingering;
        conn.buf = Vec::new();
        conn.deadline = Instant::now() + CONTROL_LINGER;
        if eof {
            return Verdict::Close;
        }
        drain(conn, now)
    }

    /// The answer to one complete, well-formed request.
    fn route(&self, req: &Request, stats_json: &dyn Fn() -> String) -> Reply {
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (req.target.as_str(), ""),
        };
        if !self.authorised(query, req.authorization.as_deref()) {
            return Reply::error(
                403,
                "missing or wrong token; send Authorization: Bearer TOKEN or ?token=TOKEN \
                 (the token is in the state file, control_auth_token)"
                    .to_string(),
            );
        }
        let command = ControlCommand::from_path(path);
        if path != "/stats" && command.is_none() {
            return Reply::error(
                404,
                format!(
                    "unknown path {}; expected /stats, /restart, /phased-restart, /stop or /halt",
                    truncate(path, 64)
                ),
            )
            .authorised();
        }
        if req.method != "GET" {
            let mut r = Reply::error(
                405,
                format!("method {} not allowed; use GET", truncate(&req.method, 16)),
            )
            .authorised();
            r.allow = Some("GET");
            return r;
        }
        match command {
            None => Reply::json(200, stats_json()).authorised(),
            Some(ControlCommand::PhasedRestart) if !self.phased_restart => Reply::error(
                409,
                "phased restart needs cluster mode (--workers N); use /restart for a hot restart"
                    .to_string(),
            )
            .authorised(),
            Some(c) => {
                let mut r = Reply::json(200, r#"{"status":"ok"}"#.to_string()).authorised();
                r.command = Some(c);
                r
            }
        }
    }

    /// True when no token is configured, or the query's `token=` or the
    /// `Authorization: Bearer` header carries it.
    fn authorised(&self, query: &str, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let expected = expected.as_bytes();
        let mut ok = false;
        for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
            if k == "token" {
                // `+` stays `+`: tokens have no spaces, and a token with `+` sent
                // unencoded must still match.
                if let Some(given) = crate::http::percent_decode(v) {
                    ok |= constant_time_eq(expected, &given);
                }
            }
        }
        if let Some(given) = authorization.and_then(bearer) {
            ok |= constant_time_eq(expected, given.as_bytes());
        }
        ok
    }

    /// Tests shorten the request deadline rather than wait 5 seconds.
    #[cfg(test)]
    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// Reads and discards what a lingering connection still sends; closes it
/// at EOF, on error or at its deadline.
fn drain(conn: &mut ControlConn, now: Instant) -> Verdict {
    if now >= conn.deadline {
        return Verdict::Close;
    }
    let mut tmp = [0u8; DRAIN_CHUNK];
    let mut left = CONTROL_LINGER_READ;
    while left > 0 {
        match sys::recv(conn.fd.as_fd(), &mut tmp[..left.min(DRAIN_CHUNK)]) {
            Ok(0) => return Verdict::Close,
            Ok(n) => left -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Verdict::Keep,
            Err(_) => return Verdict::Close,
        }
    }
    Verdict::Keep
}

/// Writes all of `buf` to a non-blocking socket, waiting at most `wait`
/// in total for buffer room (`Duration::ZERO`: no wait at all): the
/// owner's loop is blocked meanwhile, so the bound is on the whole write,
/// not on each wait as for a client connection.
fn send_within(fd: BorrowedFd<'_>, mut buf: &[u8], wait: Duration) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    while !buf.is_empty() {
        match sys::send(fd, buf, false) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !sys::wait_fd(fd, Interest::Write, left)? {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A well-formed control request: only what routing needs.
struct Request {
    method: String,
    target: String,
    authorization: Option<String>,
}

enum Parsed {
    Complete(Request),
    Partial,
    Error(u16, String),
}

fn parse_request(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; CONTROL_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > CONTROL_MAX_REQUEST => Parsed::Error(
            431,
            format!("the request head is over {CONTROL_MAX_REQUEST} bytes"),
        ),
        Ok(httparse::Status::Complete(_)) => {
            let authorization = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::to_string);
            Parsed::Complete(Request {
                method: req.method.unwrap_or("").to_string(),
                target: req.path.unwrap_or("").to_string(),
                authorization,
            })
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            Parsed::Error(431, format!("more than {CONTROL_MAX_HEADERS} headers"))
        }
        Err(e) => Parsed::Error(400, format!("malformed request: {e}")),
    }
}

/// One answer, always `Connection: close`.
struct Reply {
    status: u16,
    body: String,
    /// An `Allow` header's methods (a 405).
    allow: Option<&'static str>,
    /// The client showed the token (or none is needed): the write may wait.
    authorised: bool,
    command: Option<ControlCommand>,
}

impl Reply {
    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            body,
            allow: None,
            authorised: false,
            command: None,
        }
    }

    fn error(status: u16, message: String) -> Reply {
        Reply::json(status, format!("{{\"error\":{}}}", json_string(&message)))
    }

    fn authorised(mut self) -> Reply {
        self.authorised = true;
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ];
        headers.extend(self.allow.map(|methods| ("Allow", methods)));
        crate::http::complete_response(self.status, &headers, self.body.as_bytes())
    }
}

/// One serving process's pool, as `/stats` shows it in Puma's names (its
/// `Server#stats`): at the top level in single mode, as each worker's
/// `last_status` in cluster mode, so Puma's monitoring tools read both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolStats {
    /// Connections with a request waiting for a thread (`backlog`).
    pub(crate) backlog: u64,
    /// Threads spawned, serving or idle (`running`).
    pub(crate) running: u64,
    /// Threads serving a request now.
    pub(crate) busy: u64,
    /// The most threads the pool may have (`max_threads`).
    pub(crate) max_threads: u64,
    /// Requests answered since the process started (`requests_count`).
    pub(crate) requests: u64,
    /// Connections open now (kept alive, waiting for a request, or
    /// being served); not in `/stats` (Puma has no such member), read by
    /// `idle_timeout`.
    pub(crate) connections: u64,
}

impl PoolStats {
    /// Threads that could take a request now (`pool_capacity`): the idle
    /// ones plus those the pool may still spawn, which is Puma's
    /// `@waiting + (@max - @spawned)`, counted here as max minus busy.
    pub(crate) fn pool_capacity(&self) -> u64 {
        self.max_threads.saturating_sub(self.busy)
    }

    /// Puma's members, without braces:
    /// `"backlog":0,"running":2,"pool_capacity":5,"max_threads":5,"requests_count":9`.
    pub(crate) fn puma_members(&self) -> String {
        format!(
            r#""backlog":{},"running":{},"pool_capacity":{},"max_threads":{},"requests_count":{}"#,
            self.backlog,
            self.running,
            self.pool_capacity(),
            self.max_threads,
            self.requests
        )
    }
}

/// `s` as a JSON string literal, quotes included (for stats bodies too).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Compares in time that depends on `expected`'s length only, never on
/// where the first differing byte is (so the token cannot be guessed
/// byte by byte from response times).
fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, &e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// `Bearer TOKEN` (scheme case-insensitive, RFC 9110 §11.1) → TOKEN.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// At most `max` chars of `s`, for echoing client input in an error.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A bound control listener: its socket, its URL, the socket file made.
type Bound = (OwnedFd, String, Option<SocketFile>);

fn control_unix(path: &Path, mask: Option<u32>, mode: Option<u32>) -> Result<Bound, BindError> {
    let shown = path.display();
    // A path in use is EADDRINUSE for systemd's ERRNO=, as bind(2) says.
    clear_unix_path(path).map_err(|e| match e {
        UnixPathError::Live => BindError::with_errno(
            format!(
                "control URL unix://{shown}: another server answers on this socket; stop it \
                 or choose another path"
            ),
            libc::EADDRINUSE,
        ),
        UnixPathError::NotSocket => BindError::with_errno(
            format!(
                "control URL unix://{shown}: the path exists and is not a socket; remove it or \
                 choose another path"
            ),
            libc::EADDRINUSE,
        ),
        UnixPathError::Io(why) => BindError::new(format!("control URL unix://{shown}: {why}")),
    })?;
    // The file is created 0600 from the start (no window in which others
    // could connect); umask is process-wide, and no thread exists yet.
    let mask = Some(mask.unwrap_or(CONTROL_DEFAULT_UMASK));
    let (fd, created) = bind_unix_socket(path, mask, mode, CONTROL_BACKLOG)
        .map_err(|e| BindError::os(format!("control URL unix://{shown}: {e}"), &e))?;
    Ok((fd, format!("unix://{shown}"), Some(created)))
}

fn control_tcp(host: &str, port: u16) -> Result<Bound, BindError> {
    let ip = loopback_ip(host).ok_or_else(|| {
        BindError::new(format!(
            "control URL tcp://{host}:{port}: {host} is not a loopback address; expected \
             127.0.0.1, [::1] or localhost, since the control app can stop the server"
        ))
    })?;
    let addr = SocketAddr::new(ip, port);
    let (fd, actual) = bind_inet_socket(&addr, CONTROL_BACKLOG)
        .map_err(|e| BindError::os(format!("control URL tcp://{addr}: {e}{}", hint(&e)), &e))?;
    Ok((fd, format!("tcp://{actual}"), None))
}

// ---------------------------------------------------------------------
// Tokens and the state file
// ---------------------------------------------------------------------

/// A new random token: [`TOKEN_BYTES`] bytes of /dev/urandom, as hex.
pub fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut s = String::with_capacity(TOKEN_BYTES * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

/// What a state file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The server's pid (the master's in cluster mode).
    pub pid: u32,
    /// The control app's URL, if it runs one.
    pub control_url: Option<String>,
    /// The token the control app requires, if any.
    pub control_auth_token: Option<String>,
}

/// Writes the state file like Puma's (YAML):
/// `---\npid: N\ncontrol_url: URL\ncontrol_auth_token: T\n`, the last two
/// only when known. Mode 0600 (it holds the token), written to a
/// temporary file in the same directory and renamed over `path`, so a
/// reader sees the old file or the new one, never half of one.
pub fn write_state(
    path: &Path,
    pid: u32,
    control_url: Option<&str>,
    token: Option<&str>,
) -> io::Result<()> {
    let mut text = format!("---\npid: {pid}\n");
    if let Some(url) = control_url {
        let _ = writeln!(text, "control_url: {}", yaml_scalar(url));
    }
    if let Some(t) = token {
        let _ = writeln!(text, "control_auth_token: {}", yaml_scalar(t));
    }
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the state path names no file; expected a path such as /run/app/state",
        )
    })?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // Left over from a crash of a process with our pid: not ours to keep.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a state file written by [`write_state`] (or by Puma: keys it
/// does not know are skipped). The error names the file and what to do.
pub fn read_state(path: &Path) -> Result<State, String> {
    let shown = path.display();
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(STATE_MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| {
            format!(
                "cannot read state file {shown}: {e}; is the server running with --state {shown}?"
            )
        })?;
    if text.len() as u64 > STATE_MAX_BYTES {
        return Err(format!(
            "state file {shown} is over {STATE_MAX_BYTES} bytes; expected a file written by \
             catamount --state"
        ));
    }
    let mut pid = None;
    let mut control_url = None;
    let mut token = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line == "---" || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("{shown}:{}: {what}", n + 1);
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad("expected `key: value`"));
        };
        let value =
            unyaml(value.trim()).ok_or_else(|| bad("unterminated or malformed quoted value"))?;
        match key.trim() {
            "pid" => {
                pid = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| bad("pid is not a number"))?,
                )
            }
            "control_url" => control_url = Some(value),
            "control_auth_token" => token = Some(value),
            _ => {}
        }
    }
    let pid = pid.ok_or_else(|| {
        format!("state file {shown} has no pid line; expected a file written by catamount --state")
    })?;
    Ok(State {
        pid,
        control_url: control_url.filter(|u| !u.is_empty()),
        control_auth_token: token.filter(|t| !t.is_empty()),
    })
}

/// A YAML scalar: plain when every char is safe, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:~@%+=-".contains(c))
        && !s.starts_with(['%', '@', '-', ':']);
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The inverse of [`yaml_scalar`] (plus single quotes, as YAML allows).
fn unyaml(v: &str) -> Option<String> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?),
                '"' => return None,
                c => out.push(c),
            }
        }
        return Some(out);
    }
    if let Some(inner) = v.strip_prefix('\'') {
        return Some(inner.strip_suffix('\'')?.replace("''", "'"));
    }
    Some(v.to_string())
}

// ---------------------------------------------------------------------
// The client: `catamount ctl`
// ---------------------------------------------------------------------

/// `catamount ctl --help`.
pub const CTL_USAGE: &str = "\
Usage: catamount ctl [--control-url URL] [--control-token TOKEN | -S FILE] COMMAND

Talks to a running catamount's control app (--control-url) and prints
its JSON answer.

COMMANDS
    stats            workers, threads and request counts
    restart          hot restart (as SIGUSR2)
    phased-restart   replace workers one at a time (as SIGUSR1; cluster mode)
    stop             graceful stop (as SIGTERM)
    halt             exit at once, without waiting for requests in flight

OPTIONS
    --control-url URL      unix:///PATH or tcp://127.0.0.1:PORT
    --control-token TOKEN  the control app's token (visible in ps; prefer -S)
    -S, --state FILE       read the URL and token from the server's state file
    -h, --help             this text

EXIT STATUS
    0 the command was accepted; 1 it failed (no server, refused, HTTP
    error); 2 bad usage.
";

/// `catamount ctl ...` (the arguments after `ctl`): sends one command,
/// prints the JSON answer. Returns the exit status: 0 on success, 1 when
/// the server could not be reached or refused, 2 on bad usage.
pub fn ctl_main(args: Vec<OsString>) -> i32 {
    let parsed = match parse_ctl_args(args) {
        Ok(Some(p)) => p,
        Ok(None) => {
            print!("{CTL_USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("catamount ctl: {e}; run catamount ctl --help for usage");
            return 2;
        }
    };
    let (url, token) = match resolve_target(&parsed) {
        Ok(t) => t,
        Err((code, e)) => {
            eprintln!("catamount ctl: {e}");
            return code;
        }
    };
    match call(&url, token.as_deref(), parsed.command) {
        Ok((200, body)) => {
            println!("{body}");
            0
        }
        Ok((status, body)) => {
            let hint = if status == 403 {
                "; check --control-token, or pass -S with the server's state file"
            } else {
                ""
            };
            eprintln!(
                "catamount ctl: {}: HTTP {status} {}: {body}{hint}",
                parsed.command,
                crate::http::reason(status)
            );
            1
        }
        Err(e) => {
            eprintln!("catamount ctl: {}: {url}: {e}", parsed.command);
            1
        }
    }
}

/// The command line of `ctl`, validated.
struct CtlArgs {
    url: Option<String>,
    token: Option<String>,
    state: Option<PathBuf>,
    command: &'static str,
}

pub(crate) const CTL_COMMANDS: [&str; 5] = ["stats", "restart", "phased-restart", "stop", "halt"];

/// `Ok(None)` for `--help`.
fn parse_ctl_args(args: Vec<OsString>) -> Result<Option<CtlArgs>, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(None);
    }
    let url: Option<String> = args
        .opt_value_from_str("--control-url")
        .map_err(|e| format!("--control-url: {e}"))?;
    let token: Option<String> = args
        .opt_value_from_str("--control-token")
        // Never echo the value: it is a secret.
        .map_err(|_| "--control-token needs a value (visible ASCII)".to_string())?;
    let state: Option<PathBuf> = args
        .opt_value_from_os_str(["-S", "--state"], |s: &OsStr| {
            Ok::<_, &str>(PathBuf::from(s))
        })
        .map_err(|e| format!("--state: {e}"))?;
    let rest = args.finish();
    let mut free = Vec::new();
    for a in rest {
        let s = a
            .into_string()
            .map_err(|a| format!("unexpected argument {a:?}"))?;
        if s.starts_with('-') {
            return Err(format!("unknown option {s:?}"));
        }
        free.push(s);
    }
    let command = match free.as_slice() {
        [c] => CTL_COMMANDS
            .iter()
            .copied()
            .find(|k| k == c)
            .ok_or_else(|| {
                format!(
                    "unknown command {c:?}; expected stats, restart, phased-restart, stop or halt"
                )
            })?,
        [] => {
            return Err(
                "no command; expected stats, restart, phased-restart, stop or halt".to_string(),
            )
        }
        [_, extra, ..] => return Err(format!("unexpected argument {extra:?} after the command")),
    };
    Ok(Some(CtlArgs {
        url,
        token,
        state,
        command,
    }))
}

/// The URL and token: the options win over the state file. The error
/// carries the exit status.
fn resolve_target(a: &CtlArgs) -> Result<(String, Option<String>), (i32, String)> {
    let state = match &a.state {
        Some(p) => Some(read_state(p).map_err(|e| (1, e))?),
        None => None,
    };
    let url = a
        .url
        .clone()
        .or_else(|| state.as_ref().and_then(|s| s.control_url.clone()))
        .ok_or_else(|| match &a.state {
            Some(p) => (
                1,
                format!(
                    "state file {} has no control_url: start the server with --control-url",
                    p.display()
                ),
            ),
            None => (
                2,
                "no control URL; pass --control-url URL or -S STATE_FILE; run catamount ctl \
                 --help for usage"
                    .to_string(),
            ),
        })?;
    let token = a
        .token
        .clone()
        .or_else(|| state.and_then(|s| s.control_auth_token));
    Ok((url, token))
}

/// One request over a fresh connection; the status and body.
fn call(url: &str, token: Option<&str>, command: &str) -> Result<(u16, String), String> {
    let deadline = Instant::now() + CTL_TIMEOUT;
    // ssl:// by its scheme, before its options are read: neither a missing
    // cert= nor a build without TLS is the reason.
    if url.starts_with("ssl://") {
        return Err("ssl:// is not supported; expected unix:///PATH or tcp://HOST:PORT".into());
    }
    let spec =
        BindSpec::parse(url).map_err(|e| format!("control URL {:?}: {}", e.uri(), e.problem()))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET /{command} HTTP/1.1\r\nHost: catamount\r\n{auth}Connection: close\r\n\r\n");
    let raw = match spec {
        BindSpec::Unix { path, .. } => {
            let s = connect_unix(&path, CTL_TIMEOUT).map_err(|e| {
                format!("cannot connect: {e}; is the server running with --control-url {url}?")
            })?;
            exchange(s, request.as_bytes(), deadline)
        }
        BindSpec::Tcp { host, port, .. } => {
            let s = connect_tcp(&host, port).map_err(|e| {
                format!("cannot connect: {e}; is the server running with --control-url {url}?")
            })?;
            exchange(s, request.as_bytes(), deadline)
        }
        BindSpec::Fd { .. } => {
            return Err("expected unix:///PATH or tcp://HOST:PORT".to_string());
        }
    }
    .map_err(|e| format!("no answer: {e}"))?;
    parse_response(&raw)
}

/// connect(2) on a unix socket blocks while the server's backlog is full
/// and std offers no timeout for it, so it runs on a helper thread (this
/// is the short-lived `ctl` process, never the server).
fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("ctl-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(path));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {}s", timeout.as_secs()),
        )),
    }
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CTL_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A stream `ctl` can bound in time.
trait CtlStream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

impl CtlStream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl CtlStream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// Sends `request`, reads until the server closes, by `deadline`.
fn exchange(mut s: impl CtlStream, request: &[u8], deadline: Instant) -> io::Result<Vec<u8>> {
    let left = |d: Instant| {
        let l = d.saturating_duration_since(Instant::now());
        if l.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        } else {
            Ok(l)
        }
    };
    s.set_timeouts(left(deadline)?)?;
    s.write_all(request)?;
    let mut out = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        s.set_timeouts(left(deadline)?)?;
        match s.read(&mut tmp) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&tmp[..n]);
                if out.len() as u64 > CTL_MAX_RESPONSE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("answer over {CTL_MAX_RESPONSE} bytes"),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The whole answer arrived before the server closed with
            // bytes of ours unread: keep what we have.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !out.is_empty() => {
                return Ok(out)
            }
            Err(e) => return Err(e),
        }
    }
}

/// `HTTP/1.1 200 OK\r\n...\r\n\r\nBODY` → (200, BODY).
fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "the server closed before a complete answer".to_string())?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP answer: {:?}", truncate(status_line, 80)))?;
    let mut body = &raw[end + 4..];
    let length = head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = length {
        if body.len() < n {
            return Err(format!(
                "the answer was cut short ({} of {n} body bytes)",
                body.len()
            ));
        }
        body = &body[..n];
    }
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const STATS: &str = r#"{"mode":"test","workers":[]}"#;
    /// Every test ends well within this, or fails.
    const TEST_DEADLINE: Duration = Duration::from_secs(10);

    /// A fresh directory under /tmp (unix socket paths are short).
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = PathBuf::from(format!(
                "/tmp/cm-ctl-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("create a test directory under /tmp");
            Dir(p)
        }

        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn unix_server(dir: &Dir, token: Option<&str>) -> (ControlServer, PathBuf) {
        let path = dir.join("ctl.sock");
        let spec = BindSpec::parse(&format!("unix://{}", path.display())).expect("spec");
        let s = ControlServer::bind(&spec, token.map(str::to_string)).expect("bind unix");
        (s, path)
    }

    fn tcp_server(token: Option<&str>) -> (ControlServer, SocketAddr) {
        let spec = BindSpec::parse("tcp://127.0.0.1:0").expect("spec");
        let s = ControlServer::bind(&spec, token.map(str::to_string)).expect("bind tcp");
        let addr = s
            .url()
            .strip_prefix("tcp://")
            .and_then(|a| a.parse().ok())
            .expect("tcp url");
        (s, addr)
    }

    /// One poll + handle_ready turn, as an owner's loop does.
    fn turn(s: &mut ControlServer, max_wait: Duration) -> Vec<ControlCommand> {
        let fds = s.fds();
        let wait = s.next_deadline().map_or(max_wait, |d| {
            d.saturating_duration_since(Instant::now()).min(max_wait)
        });
        let mut ready = Vec::new();
        sys::poll_readable(&fds, Some(wait), &mut ready).expect("poll");
        s.handle_ready(&|| STATS.to_string())
    }

    /// Drives `s` until `client` (run on a thread) returns.
    fn drive<T: Send + 'static>(
        s: &mut ControlServer,
        client: impl FnOnce() -> T + Send + 'static,
    ) -> (T, Vec<ControlCommand>) {
        let h = std::thread::spawn(client);
        let deadline = Instant::now() + TEST_DEADLINE;
        let mut cmds = Vec::new();
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "the client did not finish");
            cmds.extend(turn(s, Duration::from_millis(20)));
        }
        (h.join().expect("client thread"), cmds)
    }

    /// Drives `s` for `d`.
    fn drive_for(s: &mut ControlServer, d: Duration) -> Vec<ControlCommand> {
        let end = Instant::now() + d;
        let mut cmds = Vec::new();
        while Instant::now() < end {
            cmds.extend(turn(s, end.saturating_duration_since(Instant::now())));
        }
        cmds
    }

    /// Status and body of a response read to EOF.
    fn status_body(raw: &[u8]) -> (u16, String) {
        parse_response(raw).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(raw)))
    }

    fn read_all(mut s: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            match s.read(&mut tmp) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
                Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
            }
        }
    }

    fn unix_request(path: &Path, raw: &str) -> (u16, String, Vec<u8>) {
        let mut s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        s.write_all(raw.as_bytes()).expect("write");
        let bytes = read_all(s);
        let (st, body) = status_body(&bytes);
        (st, body, bytes)
    }

    fn tcp_request(addr: SocketAddr, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        s.write_all(raw.as_bytes()).expect("write");
        status_body(&read_all(s))
    }

    fn get(path: &str, extra: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
    }

    #[test]
    fn missing_or_wrong_token_is_403() {
        let dir = Dir::new("403");
        let (mut s, path) = unix_server(&dir, Some("s3cret"));
        for req in [
            get("/stats", ""),
            get("/stats?token=wrong", ""),
            get("/stats?token=s3cre", ""),
            get("/stats?token=s3crett", ""),
            get("/stop", "Authorization: Bearer wrong\r\n"),
            get("/stop", "Authorization: Basic s3cret\r\n"),
            get("/nope", ""),
        ] {
            let p = path.clone();
            let ((st, body, raw), cmds) = drive(&mut s, move || unix_request(&p, &req));
            assert_eq!(st, 403, "{body}");
            assert!(
                body.starts_with(r#"{"error":"missing or wrong token"#),
                "{body}"
            );
            let text = String::from_utf8_lossy(&raw);
            assert!(text.contains("Connection: close\r\n"), "{text}");
            assert!(
                text.contains("Content-Type: application/json\r\n"),
                "{text}"
            );
            assert!(cmds.is_empty());
        }
    }

    #[test]
    fn right_token_gets_stats_over_unix_and_tcp() {
        let dir = Dir::new("stats");
        let (mut s, path) = unix_server(&dir, Some("s3cret"));
        for req in [
            get("/stats?token=s3cret", ""),
            get("/stats?x=1&token=s3%63ret", ""),
            get("/stats", "Authorization: Bearer s3cret\r\n"),
            get("/stats", "authorization: bearer   s3cret\r\n"),
        ] {
            let p = path.clone();
            let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &req));
            assert_eq!((st, body.as_str()), (200, STATS));
            assert!(cmds.is_empty());
        }
        let (mut t, addr) = tcp_server(Some("tok+/=")); // `+` unencoded still matches
        let ((st, body), _) = drive(&mut t, move || {
            tcp_request(addr, &get("/stats?token=tok+%2F%3d", ""))
        });
        assert_eq!((st, body.as_str()), (200, STATS));
        assert!(t.url().starts_with("tcp://127.0.0.1:") && !t.url().ends_with(":0"));
    }

    #[test]
    fn each_command_is_answered_then_yielded() {
        let dir = Dir::new("cmds");
        let (mut s, path) = unix_server(&dir, Some("t"));
        for cmd in [
            ControlCommand::Restart,
            ControlCommand::PhasedRestart,
            ControlCommand::Stop,
            ControlCommand::Halt,
        ] {
            let p = path.clone();
            let req = get(&format!("{}?token=t", cmd.path()), "");
            let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &req));
            assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
            assert_eq!(cmds, vec![cmd]);
        }
    }

    #[test]
    fn the_answer_is_written_before_the_command_is_returned() {
        // The owner may exit as soon as it has the command: drop the
        // server at once, then read. The whole answer must be there.
        let dir = Dir::new("before");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let mut c = UnixStream::connect(&path).expect("connect");
        c.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        c.write_all(get("/halt", "Authorization: Bearer t\r\n").as_bytes())
            .expect("write");
        let deadline = Instant::now() + TEST_DEADLINE;
        let cmds = loop {
            let cmds = turn(&mut s, Duration::from_millis(50));
            if !cmds.is_empty() {
                break cmds;
            }
            assert!(Instant::now() < deadline, "no command");
        };
        drop(s);
        assert_eq!(cmds, vec![ControlCommand::Halt]);
        let (st, body) = status_body(&read_all(c));
        assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
    }

    #[test]
    fn unknown_path_404_wrong_method_405() {
        let dir = Dir::new("404");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let p = path.clone();
        let ((st, body, _), cmds) =
            drive(&mut s, move || unix_request(&p, &get("/gc?token=t", "")));
        assert_eq!(st, 404, "{body}");
        assert!(body.contains("unknown path /gc"), "{body}");
        assert!(cmds.is_empty());
        let p = path.clone();
        let req = "POST /stop?token=t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let ((st, body, raw), cmds) = drive(&mut s, move || unix_request(&p, req));
        assert_eq!(st, 405, "{body}");
        assert!(String::from_utf8_lossy(&raw).contains("Allow: GET\r\n"));
        assert!(cmds.is_empty());
        // Without the token, nothing about paths or methods is revealed.
        let p = path.clone();
        let ((st, _, _), _) = drive(&mut s, move || {
            unix_request(&p, "POST /gc HTTP/1.1\r\nHost: x\r\n\r\n")
        });
        assert_eq!(st, 403);
    }

    #[test]
    fn phased_restart_can_be_unavailable() {
        let dir = Dir::new("phased");
        let (mut s, path) = unix_server(&dir, None);
        s.set_phased_restart(false);
        let ((st, body, _), cmds) = drive(&mut s, move || {
            unix_request(&path, &get("/phased-restart", ""))
        });
        assert_eq!(st, 409, "{body}");
        assert!(body.contains("cluster mode"), "{body}");
        assert!(cmds.is_empty());
    }

    #[test]
    fn no_token_configured_allows_any_client() {
        let dir = Dir::new("notoken");
        let (mut s, path) = unix_server(&dir, None);
        let p = path.clone();
        let ((st, body, _), _) = drive(&mut s, move || unix_request(&p, &get("/stats", "")));
        assert_eq!((st, body.as_str()), (200, STATS));
        let ((st, _, _), cmds) = drive(&mut s, move || {
            unix_request(&path, &get("/stop?token=anything", ""))
        });
        assert_eq!(st, 200);
        assert_eq!(cmds, vec![ControlCommand::Stop]);
    }

    #[test]
    fn slow_client_is_closed_at_its_deadline() {
        let dir = Dir::new("slow");
        let (mut s, path) = unix_server(&dir, Some("t"));
        s.set_timeout(Duration::from_millis(200));
        let mut half = UnixStream::connect(&path).expect("connect");
        half.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        half.write_all(b"GET /stats?tok").expect("write");
        let mut idle = UnixStream::connect(&path).expect("connect");
        idle.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        let started = Instant::now();
        drive_for(&mut s, Duration::from_millis(100));
        assert_eq!(s.conns.len(), 2, "closed before the deadline");
        assert!(s.next_deadline().is_some());
        drive_for(&mut s, Duration::from_millis(300));
        assert!(s.conns.is_empty(), "still open after the deadline");
        let (st, body) = status_body(&read_all(&mut half));
        assert_eq!(st, 408, "{body}");
        // A client that sent nothing is just closed.
        assert!(read_all(&mut idle).is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn open_connections_are_bounded() {
        let dir = Dir::new("many");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let idle: Vec<UnixStream> = (0..CONTROL_MAX_CONNECTIONS)
            .map(|_| UnixStream::connect(&path).expect("connect"))
            .collect();
        drive_for(&mut s, Duration::from_millis(50));
        assert_eq!(s.conns.len(), CONTROL_MAX_CONNECTIONS);
        // The listener is out of the poll set while the table is full.
        assert_eq!(s.fds().len(), CONTROL_MAX_CONNECTIONS);
        let mut extra = UnixStream::connect(&path).expect("connect (kernel backlog)");
        extra
            .set_read_timeout(Some(TEST_DEADLINE))
            .expect("timeout");
        extra
            .write_all(get("/stats?token=t", "").as_bytes())
            .expect("write");
        drive_for(&mut s, Duration::from_millis(100));
        assert_eq!(s.conns.len(), CONTROL_MAX_CONNECTIONS, "over the bound");
        // One slot frees: the waiting connection is served.
        drop(idle);
        let (got, _) = drive(&mut s, move || status_body(&read_all(&mut extra)));
        assert_eq!(got, (200, STATS.to_string()));
    }

    #[test]
    fn oversized_or_malformed_requests_are_refused_and_closed() {
        let dir = Dir::new("big");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let big = format!(
            "GET /stats?token=t HTTP/1.1\r\nX: {}\r\n",
            "a".repeat(CONTROL_MAX_REQUEST)
        );
        let p = path.clone();
        let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &big));
        assert_eq!(st, 431, "{body}");
        assert!(cmds.is_empty());
        let many: String = (0..=CONTROL_MAX_HEADERS)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        let p = path.clone();
        let ((st, _, _), _) = drive(&mut s, move || {
            unix_request(&p, &get("/stats?token=t", &many))
        });
        assert_eq!(st, 431);
        let p = path.clone();
        let ((st, body, _), _) = drive(&mut s, move || {
            unix_request(&p, "GET /stats\x01 HTTP/1.1\r\n\r\n")
        });
        assert_eq!(st, 400, "{body}");
        assert!(s.conns.iter().all(|c| c.state == ConnState::Lingering));
        drive_for(&mut s, Duration::from_millis(50));
        assert!(s.conns.is_empty());
    }

    #[test]
    fn a_head_of_exactly_the_limit_is_served() {
        let dir = Dir::new("exact");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let base = get("/stats?token=t", "X: \r\n");
        let pad = CONTROL_MAX_REQUEST - base.len();
        let req = get("/stats?token=t", &format!("X: {}\r\n", "a".repeat(pad)));
        assert_eq!(req.len(), CONTROL_MAX_REQUEST);
        let ((st, _, _), _) = drive(&mut s, move || unix_request(&path, &req));
        assert_eq!(st, 200);
    }

    #[test]
    fn unix_socket_is_owner_only_and_removed_only_while_ours() {
        let dir = Dir::new("mode");
        let (s, path) = unix_server(&dir, Some("t"));
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(s.url(), format!("unix://{}", path.display()));
        // A live server on the path is not replaced.
        let spec = BindSpec::parse(&format!("unix://{}", path.display())).expect("spec");
        let e = ControlServer::bind(&spec, None).err().expect("refused");
        assert!(e.to_string().contains("another server answers"), "{e}");
        // A stale file (no listener behind it) is.
        drop(s);
        let s = ControlServer::bind(&spec, None).expect("rebind over a stale file");
        s.remove_socket_file();
        assert!(!path.exists());
        // mode= is honoured.
        let p2 = dir.join("g.sock");
        let spec = BindSpec::parse(&format!("unix://{}?mode=0660", p2.display())).expect("spec");
        let s2 = ControlServer::bind(&spec, None).expect("bind");
        assert_eq!(mode(&p2), 0o660);
        // Replaced by someone else: left alone.
        fs::remove_file(&p2).expect("rm");
        fs::write(&p2, "not ours").expect("write");
        s2.remove_socket_file();
        assert!(p2.exists());
    }

    #[test]
    fn ctl_refuses_ssl_by_its_scheme_in_either_build() {
        // Before its options are read: a missing cert= or a build without
        // TLS would otherwise be blamed.
        for url in ["ssl://127.0.0.1:1", "ssl://127.0.0.1:1?cert=/c&key=/k"] {
            let e = call(url, None, "stats").expect_err(url);
            assert_eq!(
                e, "ssl:// is not supported; expected unix:///PATH or tcp://HOST:PORT",
                "{url}"
            );
        }
    }

    #[test]
    fn tcp_control_url_must_be_loopback() {
        for uri in [
            "tcp://0.0.0.0:0",
            "tcp://192.0.2.1:0",
            "tcp://example.com:0",
        ] {
            let spec = BindSpec::parse(uri).expect("spec");
            let e = ControlServer::bind(&spec, None).err().expect("refused");
            assert!(e.to_string().contains("loopback"), "{uri}: {e}");
        }
        // ssl:// is refused here too (config refuses it first).
        if let Ok(spec) = BindSpec::parse("ssl://127.0.0.1:0?cert=/nonexistent&key=/nonexistent") {
            let e = ControlServer::bind(&spec, None).err().expect("refused");
            assert!(e.to_string().contains("ssl://"), "{e}");
        }
        let spec = BindSpec::parse("tcp://localhost:0").expect("spec");
        let s = ControlServer::bind(&spec, None).expect("localhost");
        assert!(s.url().starts_with("tcp://127.0.0.1:"));
    }

    #[test]
    fn state_file_round_trip_mode_0600_atomic() {
        let dir = Dir::new("state");
        let path = dir.join("state");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_state(&path, 42, Some("unix:///tmp/a b.sock"), Some("t\"o#k\\en")).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let st = read_state(&path).expect("read");
        assert_eq!(
            st,
            State {
                pid: 42,
                control_url: Some("unix:///tmp/a b.sock".into()),
                control_auth_token: Some("t\"o#k\\en".into()),
            }
        );
        write_state(&path, 7, Some("unix:///run/ctl.sock"), Some("abc123")).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "---\npid: 7\ncontrol_url: unix:///run/ctl.sock\ncontrol_auth_token: abc123\n"
        );
        write_state(&path, 8, None, None).expect("write");
        assert_eq!(
            read_state(&path).expect("read"),
            State {
                pid: 8,
                control_url: None,
                control_auth_token: None
            }
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir.0).expect("ls").count(), 1);
        // Puma's own state file reads too.
        fs::write(
            &path,
            "---\npid: 99\ncontrol_url: tcp://127.0.0.1:9293\ncontrol_auth_token: ff\nrunning_from: \"/srv/app\"\n",
        )
        .expect("write");
        let st = read_state(&path).expect("puma state");
        assert_eq!(st.pid, 99);
        assert_eq!(st.control_url.as_deref(), Some("tcp://127.0.0.1:9293"));
        let e = read_state(&dir.join("missing")).expect_err("missing");
        assert!(e.contains("is the server running"), "{e}");
        fs::write(&path, "control_url: x\n").expect("write");
        assert!(read_state(&path).expect_err("no pid").contains("no pid"));
    }

    #[test]
    fn random_tokens_are_hex_and_differ() {
        let a = random_token().expect("urandom");
        let b = random_token().expect("urandom");
        assert_eq!(a.len(), TOKEN_BYTES * 2);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn helpers() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b""));
        assert_eq!(
            crate::http::percent_decode("a%2Fb+c"),
            Some(b"a/b+c".to_vec())
        );
        assert_eq!(crate::http::percent_decode("%zz"), None);
        assert_eq!(crate::http::percent_decode("%4"), None);
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        assert_eq!(bearer("Bearer  x "), Some("x"));
        assert_eq!(bearer("Basic x"), None);
        assert_eq!(truncate("abcdef", 3), "abc...");
    }

    #[test]
    fn pool_stats_in_pumas_names() {
        let p = PoolStats {
            backlog: 3,
            running: 4,
            busy: 2,
            max_threads: 5,
            requests: 9,
            connections: 0,
        };
        assert_eq!(
            p.puma_members(),
            r#""backlog":3,"running":4,"pool_capacity":3,"max_threads":5,"requests_count":9"#
        );
        // Never negative, whatever the counters say mid-update.
        let over = PoolStats { busy: 7, ..p };
        assert_eq!(over.pool_capacity(), 0);
    }

    fn ctl(args: &[&str]) -> i32 {
        ctl_main(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn ctl_usage_errors_exit_2() {
        assert_eq!(ctl(&["--control-url", "unix:///x", "reboot"]), 2);
        assert_eq!(ctl(&["stats"]), 2);
        assert_eq!(ctl(&["--control-url", "unix:///x"]), 2);
        assert_eq!(ctl(&["--control-url", "unix:///x", "--bogus", "stats"]), 2);
        assert_eq!(ctl(&["--control-url", "unix:///x", "stats", "stop"]), 2);
        assert_eq!(ctl(&["--help"]), 0);
    }

    #[test]
    fn ctl_talks_to_a_control_server() {
        let dir = Dir::new("ctl");
        let (mut s, path) = unix_server(&dir, Some("t"));
        let url = s.url();
        let state = dir.join("state");
        write_state(&state, 1, Some(&url), Some("t")).expect("state");
        let u = url.clone();
        let (code, _) = drive(&mut s, move || {
            ctl(&["--control-url", &u, "--control-token", "t", "stats"])
        });
        assert_eq!(code, 0);
        let st = state.to_string_lossy().into_owned();
        let (code, cmds) = drive(&mut s, move || ctl(&["-S", &st, "restart"]));
        assert_eq!((code, cmds), (0, vec![ControlCommand::Restart]));
        let u = url.clone();
        let (code, cmds) = drive(&mut s, move || {
            ctl(&["--control-url", &u, "--control-token", "bad", "stop"])
        });
        assert_eq!((code, cmds), (1, vec![]));
        let (mut t, addr) = tcp_server(None);
        let (code, cmds) = drive(&mut t, move || {
            ctl(&["--control-url", &format!("tcp://{addr}"), "halt"])
        });
        assert_eq!((code, cmds), (0, vec![ControlCommand::Halt]));
        drop(s);
        fs::remove_file(&path).expect("rm");
        assert_eq!(ctl(&["--control-url", &url, "stats"]), 1, "no server");
        assert_eq!(ctl(&["-S", "/nonexistent/state", "stats"]), 1);
    }
}
