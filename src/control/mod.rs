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

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::bind::{loopback_ip, BindSpec};

mod ctl;
mod state;

use crate::listeners::{
    bind_inet_socket, bind_unix_socket, clear_unix_path, hint, BindError, SocketFile, UnixPathError,
};
use crate::sys::{self, Interest};
pub use ctl::*;
pub use state::*;

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
            let verdict = match self.conns[i].state {
                ConnState::Reading => self.drive_reading(i, now, stats_json, &mut commands),
                ConnState::Lingering => drain(&mut self.conns[i], now),
            };
            match verdict {
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
                format!(
                    "no complete request within {}s",
                    crate::log::Seconds::exact(self.timeout)
                ),
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

#[cfg(test)]
mod tests;
