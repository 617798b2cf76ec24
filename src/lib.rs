//! catamount: a small, auditable HTTP/1.1 server for Linux services run by
//! systemd.
//!
//! The binary serves a directory of static files; a Rust program embeds the
//! same engine by implementing [`Handler`] and calling [`Server::serve`]:
//!
//! ```no_run
//! use catamount::{Request, Response, Server};
//!
//! fn main() {
//!     let server = Server::from_args().unwrap_or_else(|e| e.exit());
//!     server.serve(|_req: &mut Request<'_>| Response::text(200, "hello\n"));
//! }
//! ```
//!
//! See ARCHITECTURE.md for how the pieces fit together.

mod activation;
mod check;
pub mod config;
mod connection;
pub mod control;
mod date;
mod fork;
pub mod http;
mod listeners;
mod log;
mod notify;
mod parking;
mod pool;
mod reactor;
mod server;
pub mod static_files;
mod sys;
mod tls;

use std::io::{self, Read};

pub use config::{Config, ConfigError};
pub use server::Server;

/// An application: turns one request into one response.
///
/// Handlers run on pool threads, many at once, so they are `Send + Sync`.
/// A panic inside `handle` becomes a `500 Internal Server Error` for that
/// request; the thread and the server go on.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. The request body, if any, is read through
    /// [`Request::body`]; whatever the handler leaves unread is discarded.
    fn handle(&self, req: &mut Request<'_>) -> Response;

    /// Called once in each process that serves (every cluster worker
    /// after its fork, or the single process) before it accepts requests:
    /// the place to open per-process resources such as database
    /// connections (Puma's `on_worker_boot`). An `Err` makes that process
    /// exit; in cluster mode the master retries it with an exponential
    /// backoff instead of a crash loop.
    fn boot(&self) -> Result<(), String> {
        Ok(())
    }

    /// Called in the cluster master when a reload (HUP, phased restart)
    /// re-read the configuration, before the new workers are forked, so
    /// they serve with the new settings. (A hot restart starts a new
    /// process, which reads everything afresh.)
    fn reconfigure(&mut self, config: &Config) {
        let _ = config;
    }
}

impl<F> Handler for F
where
    F: Fn(&mut Request<'_>) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &mut Request<'_>) -> Response {
        self(req)
    }
}

/// One parsed request, as a handler sees it.
pub struct Request<'a> {
    head: &'a http::Head,
    body: &'a mut dyn Read,
}

impl<'a> Request<'a> {
    pub(crate) fn new(head: &'a http::Head, body: &'a mut dyn Read) -> Self {
        Request { head, body }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The request-target as sent, e.g. `/a%20b?x=1`. An absolute-form
    /// target (`http://host:port/a?x=1`) arrives here in origin-form
    /// (`/a?x=1`, `/` for an empty path), and its authority is then the
    /// `Host` header (RFC 9112 §3.2.2). `*` only comes with OPTIONS.
    pub fn target(&self) -> &str {
        &self.head.target
    }

    /// The target without its query string (still percent-encoded).
    pub fn path(&self) -> &str {
        let t = &self.head.target;
        t.split_once('?').map_or(t.as_str(), |(p, _)| p)
    }

    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.head.target.split_once('?').map(|(_, q)| q)
    }

    /// The minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1 (and for
    /// HTTP/1.2 to 1.9, which are served as 1.1).
    pub fn http_minor(&self) -> u8 {
        self.head.minor
    }

    /// The first header named `name` (case-insensitive) whose value is
    /// UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header in the order received, values as raw bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The request body (already de-chunked). Reads return 0 at its end.
    pub fn body(&mut self) -> &mut dyn Read {
        self.body
    }

    /// Reads the whole body into memory. The engine has already refused
    /// bodies over `max_body` with 413.
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.body.read_to_end(&mut v)?;
        Ok(v)
    }
}

/// What a handler answers.
///
/// The engine owns the framing headers: `Content-Length`,
/// `Transfer-Encoding`, `Connection`, `Date` and `Server` are written by
/// catamount from the [`Body`] and the connection state; a handler's own
/// values for them are dropped.
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Headers other than the framing ones, in the order given.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// A response body.
pub enum Body {
    /// No body (`Content-Length: 0` where a length is allowed).
    Empty,
    /// An in-memory body, sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `offset`, sent with `sendfile(2)`; up to
    /// 16 KiB are read and sent with the head instead (one send).
    File {
        /// An open file (shared: the static app keeps hot files open).
        file: std::sync::Arc<std::fs::File>,
        /// First byte to send.
        offset: u64,
        /// Number of bytes to send.
        len: u64,
    },
    /// A body of unknown length, sent chunked to HTTP/1.1 clients and
    /// delimited by closing the connection for HTTP/1.0 clients.
    Stream(Box<dyn Read + Send>),
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Body::Bytes(text.into().into_bytes()))
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}
