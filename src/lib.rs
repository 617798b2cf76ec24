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
//! # The library
//!
//! - [`Server`] reads the same command line and config file as the
//!   `catamount` binary ([`Server::from_args`]), or takes a [`Config`]
//!   ([`Server::new`]), and serves one [`Handler`] until stopped: single
//!   process or a cluster of forked workers, systemd socket activation,
//!   readiness and watchdog, TLS, graceful stop and hot restart included.
//! - A [`Handler`] (any `Fn(&mut Request) -> Response` is one) turns a
//!   [`Request`] into a [`Response`] on a pool thread; [`Handler::boot`]
//!   runs once per serving process.
//! - A [`Response`] carries a status, headers and a [`Body`]: bytes, a
//!   file range (sent with sendfile(2)) or a stream.
//! - [`Response::upgrade`] answers `101 Switching Protocols` (WebSocket,
//!   or a 2xx to `CONNECT`) and hands the connection, as an [`Upgraded`]
//!   `Read + Write`, to a function of the app's on a thread of its own.
//! - [`config`] holds [`Config`], its documented defaults and limits, and
//!   the parsers behind [`Server::from_args`].
//! - [`static_files::StaticFiles`] is the binary's app, a [`Handler`] an
//!   app can put behind its own routes.
//!
//! Start threads of your own in [`Handler::boot`], never before
//! [`Server::serve`]: in cluster mode the server forks, and it refuses to
//! fork a process that already has threads.
//!
//! The repository's `examples/` are complete apps (`hello`, `json_api`,
//! `upload`, `whoami`, `websocket_echo`, `flaky_boot`), run with
//! `cargo run --example NAME -- -b tcp://127.0.0.1:9292`. ARCHITECTURE.md
//! there tells how the pieces fit together.

mod activation;
mod bind;
mod check;
pub mod config;
mod connection;
// Public only for the `catamount` binary, whose `catamount ctl ...` runs
// `control::ctl_main`; nothing in it is meant for embedders, so it is
// hidden from the documentation and not part of the API.
#[doc(hidden)]
pub mod control;
mod date;
mod engine;
mod fork;
// Public only for the fuzz target (fuzz/fuzz_targets/parse_head.rs), which
// calls the head parser and the chunked decoder directly; embedders see a
// parsed request through `Request`, so it is hidden and not part of the API.
#[doc(hidden)]
pub mod http;
mod landlock;
mod listeners;
mod log;
mod notify;
mod parking;
mod pool;
mod reactor;
mod response;
mod serve;
mod server;
mod serving;
mod single;
pub mod static_files;
mod supervisor;
mod sys;
// TLS is the default cargo feature `tls` (issue 15). Without it, tls_off.rs
// takes the module's place: same names, ssl:// binds refused at parse time.
// This is the crate's one cfg on the feature (tests aside).
#[cfg(feature = "tls")]
mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
mod tls;
mod upgrade;

use std::io::{self, Read};
use std::net::SocketAddr;

pub use config::{Config, ConfigError};
pub use server::Server;
pub use upgrade::Upgraded;

/// An application: turns one request into one response.
///
/// Handlers run on pool threads, many at once, so they are `Send + Sync`.
/// A panic inside `handle` becomes a `500 Internal Server Error` for that
/// request; the thread and the server go on. Any
/// `Fn(&mut Request<'_>) -> Response + Send + Sync + 'static` closure is a
/// handler; a type of the app's own implements the trait to keep state or
/// to use [`boot`](Self::boot) and [`reconfigure`](Self::reconfigure):
///
/// ```no_run
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use catamount::{Handler, Request, Response, Server};
///
/// struct Hits(AtomicU64);
///
/// impl Handler for Hits {
///     fn handle(&self, _req: &mut Request<'_>) -> Response {
///         let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
///         Response::text(200, format!("hit {n} in this process\n"))
///     }
/// }
///
/// fn main() {
///     let server = Server::from_args().unwrap_or_else(|e| e.exit());
///     server.serve(Hits(AtomicU64::new(0)));
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. The request body, if any, is read through
    /// [`Request::body`]; whatever the handler leaves unread is discarded.
    ///
    /// ```
    /// use catamount::{Handler, Request, Response};
    ///
    /// struct NotFound;
    ///
    /// impl Handler for NotFound {
    ///     fn handle(&self, req: &mut Request<'_>) -> Response {
    ///         Response::text(404, format!("no {}\n", req.path()))
    ///     }
    /// }
    /// # let _ = NotFound;
    /// ```
    fn handle(&self, req: &mut Request<'_>) -> Response;

    /// Called once in each process that serves (every cluster worker
    /// after its fork, or the single process) before it accepts requests:
    /// the place to open per-process resources such as database
    /// connections (Puma's `on_worker_boot`). An `Err` makes that process
    /// exit; in cluster mode the master retries it with an exponential
    /// backoff instead of a crash loop.
    ///
    /// ```
    /// use std::sync::OnceLock;
    ///
    /// use catamount::{Handler, Request, Response};
    ///
    /// struct App {
    ///     // Opened in each process, after the fork.
    ///     motd: OnceLock<String>,
    /// }
    ///
    /// impl Handler for App {
    ///     fn boot(&self) -> Result<(), String> {
    ///         let text = std::fs::read_to_string("motd.txt")
    ///             .map_err(|e| format!("motd.txt: {e}"))?;
    ///         let _ = self.motd.set(text);
    ///         Ok(())
    ///     }
    ///
    ///     fn handle(&self, _req: &mut Request<'_>) -> Response {
    ///         Response::text(200, self.motd.get().cloned().unwrap_or_default())
    ///     }
    /// }
    /// # let _ = App { motd: OnceLock::new() };
    /// ```
    fn boot(&self) -> Result<(), String> {
        Ok(())
    }

    /// Called in the cluster master when a reload (HUP, phased restart)
    /// re-read the configuration, before the new workers are forked, so
    /// they serve with the new settings. (A hot restart starts a new
    /// process, which reads everything afresh.)
    ///
    /// ```
    /// use catamount::{Config, Handler, Request, Response};
    ///
    /// struct Banner {
    ///     environment: String,
    /// }
    ///
    /// impl Handler for Banner {
    ///     fn handle(&self, _req: &mut Request<'_>) -> Response {
    ///         Response::text(200, format!("{}\n", self.environment))
    ///     }
    ///
    ///     fn reconfigure(&mut self, config: &Config) {
    ///         self.environment = config.environment.clone();
    ///     }
    /// }
    ///
    /// let mut app = Banner { environment: String::new() };
    /// app.reconfigure(&Config::default());
    /// assert_eq!(app.environment, "production");
    /// ```
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
///
/// Besides the head and the body, it tells who is asking and over what
/// (issue 17; Rack's `REMOTE_ADDR`, `SERVER_PORT`, `HTTPS`): the client's
/// address ([`peer_addr`](Self::peer_addr)), the local address
/// ([`local_addr`](Self::local_addr)), the listener it came in on
/// ([`listener`](Self::listener)) and the TLS session
/// ([`tls`](Self::tls)). All are borrowed from the connection: nothing is
/// allocated for a request that does not ask.
///
/// A handler gets it as `&mut Request<'_>` (the body is read through it);
/// the engine makes it, an app never does.
///
/// ```
/// use catamount::{Request, Response};
///
/// fn route(req: &mut Request<'_>) -> Response {
///     match (req.method(), req.path()) {
///         ("GET", "/") => Response::text(200, "home\n"),
///         ("POST", "/echo") => match req.read_body() {
///             Ok(body) => Response::text(200, String::from_utf8_lossy(&body)),
///             Err(e) => Response::text(400, format!("{e}\n")),
///         },
///         _ => Response::text(404, "not found\n"),
///     }
/// }
/// # let _ = route;
/// ```
pub struct Request<'a> {
    head: &'a http::Head,
    body: &'a mut dyn Source,
}

/// Where a [`Request`] reads its body from, and the connection it came on
/// (`None` for a request built without one, as in unit tests).
pub(crate) trait Source: Read {
    fn as_read(&mut self) -> &mut dyn Read;
    fn conn(&self) -> Option<&connection::Conn> {
        None
    }
}

impl Source for &[u8] {
    fn as_read(&mut self) -> &mut dyn Read {
        self
    }
}

impl<'a> Request<'a> {
    pub(crate) fn new(head: &'a http::Head, body: &'a mut dyn Source) -> Self {
        Request { head, body }
    }

    /// The client's address and port, as accept(2) reported them; `None`
    /// on a unix socket, where the client has no address (see
    /// [`listener`](Self::listener) for which socket it was). Behind a
    /// proxy this is the proxy's address.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn handler(req: &mut Request<'_>) -> Response {
    ///     match req.peer_addr() {
    ///         Some(a) => Response::text(200, format!("you are {}:{}\n", a.ip(), a.port())),
    ///         None => Response::text(200, "you came over a unix socket\n"),
    ///     }
    /// }
    /// # let _ = handler;
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.body.conn()?.info().peer()
    }

    /// The local address and port the connection came in on (for a
    /// listener bound to `0.0.0.0`, the address the client dialled);
    /// `None` on a unix socket. Asked of getsockname(2) the first time
    /// per connection, then kept.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn handler(req: &mut Request<'_>) -> Response {
    ///     let port = req.local_addr().map_or(0, |a| a.port());
    ///     Response::text(200, format!("served on port {port}\n"))
    /// }
    /// # let _ = handler;
    /// ```
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.body.conn()?.local_addr()
    }

    /// The listener the request came in on: `fd://NAME` for a socket
    /// systemd passed (its `FileDescriptorName=`, or `unknown`), otherwise
    /// the bind URI with the address it got: `tcp://0.0.0.0:9292`,
    /// `ssl://127.0.0.1:9443`, `unix:///run/app.sock`. Empty for a request
    /// made without a connection.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn handler(req: &mut Request<'_>) -> Response {
    ///     if req.listener() == "fd://admin" {
    ///         return Response::text(200, "admin\n");
    ///     }
    ///     Response::text(404, "not here\n")
    /// }
    /// # let _ = handler;
    /// ```
    pub fn listener(&self) -> &str {
        self.body.conn().map_or("", |c| c.info().listener())
    }

    /// The TLS session, for a request that came over `ssl://`; `None` for
    /// plain HTTP (Rack's `HTTPS` is `tls().is_some()`), and always in a
    /// build without the `tls` cargo feature (the API is the same in both).
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn handler(req: &mut Request<'_>) -> Response {
    ///     match req.tls() {
    ///         Some(t) => Response::text(200, format!("{} {}\n", t.version(), t.sni().unwrap_or("-"))),
    ///         None => Response::text(200, "plain http\n"),
    ///     }
    /// }
    /// # let _ = handler;
    /// ```
    pub fn tls(&self) -> Option<TlsInfo<'_>> {
        let tls = self.body.conn()?.tls()?;
        Some(TlsInfo { tls })
    }

    /// The method, e.g. `GET`, as sent (methods are case-sensitive).
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn read_only(req: &mut Request<'_>) -> Response {
    ///     match req.method() {
    ///         "GET" | "HEAD" => Response::text(200, "ok\n"),
    ///         _ => Response::new(405).header("Allow", "GET, HEAD"),
    ///     }
    /// }
    /// # let _ = read_only;
    /// ```
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The request-target as sent, e.g. `/a%20b?x=1`. An absolute-form
    /// target (`http://host:port/a?x=1`) arrives here in origin-form
    /// (`/a?x=1`, `/` for an empty path), and its authority is then the
    /// `Host` header (RFC 9112 §3.2.2). `*` only comes with OPTIONS.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn echo_target(req: &mut Request<'_>) -> Response {
    ///     Response::text(200, format!("{}\n", req.target()))
    /// }
    /// # let _ = echo_target;
    /// ```
    pub fn target(&self) -> &str {
        &self.head.target
    }

    /// The target without its query string (still percent-encoded: `/a%20b`
    /// for `/a%20b?x=1`).
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn health(req: &mut Request<'_>) -> Response {
    ///     if req.path() == "/healthz" {
    ///         return Response::text(200, "ok\n");
    ///     }
    ///     Response::text(404, "not found\n")
    /// }
    /// # let _ = health;
    /// ```
    pub fn path(&self) -> &str {
        let t = &self.head.target;
        t.split_once('?').map_or(t.as_str(), |(p, _)| p)
    }

    /// The query string after `?`, if any (`Some("")` for a bare `?`),
    /// still percent-encoded.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn page(req: &mut Request<'_>) -> Response {
    ///     let page = req
    ///         .query()
    ///         .into_iter()
    ///         .flat_map(|q| q.split('&'))
    ///         .find_map(|kv| kv.strip_prefix("page="))
    ///         .unwrap_or("1");
    ///     Response::text(200, format!("page {page}\n"))
    /// }
    /// # let _ = page;
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.head.target.split_once('?').map(|(_, q)| q)
    }

    /// The minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1 (and for
    /// HTTP/1.2 to 1.9, which are served as 1.1).
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn version(req: &mut Request<'_>) -> Response {
    ///     Response::text(200, format!("HTTP/1.{}\n", req.http_minor()))
    /// }
    /// # let _ = version;
    /// ```
    pub fn http_minor(&self) -> u8 {
        self.head.minor
    }

    /// The first header named `name` (case-insensitive) whose value is
    /// UTF-8. Use [`headers`](Self::headers) for repeated fields and raw
    /// bytes.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn agent(req: &mut Request<'_>) -> Response {
    ///     let ua = req.header("user-agent").unwrap_or("unknown");
    ///     Response::text(200, format!("you use {ua}\n"))
    /// }
    /// # let _ = agent;
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header in the order received: names as sent, values as raw
    /// bytes.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn cookies(req: &mut Request<'_>) -> Response {
    ///     let n = req
    ///         .headers()
    ///         .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
    ///         .count();
    ///     Response::text(200, format!("{n} cookie fields\n"))
    /// }
    /// # let _ = cookies;
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The request body (already de-chunked). Reads return 0 at its end.
    /// A body of up to 64 KiB is already buffered when the handler runs;
    /// a larger one is read as it arrives, under `body_timeout` (an error
    /// then, and the engine answers it).
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// use catamount::{Request, Response};
    ///
    /// fn count_bytes(req: &mut Request<'_>) -> Response {
    ///     let mut total = 0u64;
    ///     let mut buf = [0u8; 8192];
    ///     loop {
    ///         match req.body().read(&mut buf) {
    ///             Ok(0) => break,
    ///             Ok(n) => total += n as u64,
    ///             Err(e) => return Response::text(400, format!("{e}\n")),
    ///         }
    ///     }
    ///     Response::text(200, format!("{total} bytes\n"))
    /// }
    /// # let _ = count_bytes;
    /// ```
    pub fn body(&mut self) -> &mut dyn Read {
        self.body.as_read()
    }

    /// Reads the whole body into memory. The engine has already refused
    /// bodies over `max_body` ([`Config::max_body`]) with 413.
    ///
    /// ```
    /// use catamount::{Request, Response};
    ///
    /// fn upper(req: &mut Request<'_>) -> Response {
    ///     match req.read_body() {
    ///         Ok(body) => Response::text(200, String::from_utf8_lossy(&body).to_uppercase()),
    ///         Err(e) => Response::text(400, format!("{e}\n")),
    ///     }
    /// }
    /// # let _ = upper;
    /// ```
    pub fn read_body(&mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.body.read_to_end(&mut v)?;
        Ok(v)
    }
}

/// The TLS session a request came over ([`Request::tls`]), borrowed
/// from its connection.
#[derive(Clone, Copy)]
pub struct TlsInfo<'a> {
    tls: &'a tls::TlsConn,
}

impl<'a> TlsInfo<'a> {
    /// The protocol version: `"TLSv1.2"` or `"TLSv1.3"`.
    ///
    /// ```
    /// # use catamount::Request;
    /// fn is_tls13(req: &Request<'_>) -> bool {
    ///     req.tls().is_some_and(|t| t.version() == "TLSv1.3")
    /// }
    /// # let _ = is_tls13;
    /// ```
    pub fn version(&self) -> &'static str {
        self.tls.protocol_version().unwrap_or("TLS")
    }

    /// The cipher suite's IANA name, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    ///
    /// ```
    /// # use catamount::Request;
    /// fn suite(req: &Request<'_>) -> &'static str {
    ///     req.tls().map_or("-", |t| t.cipher_suite())
    /// }
    /// # let _ = suite;
    /// ```
    pub fn cipher_suite(&self) -> &'static str {
        self.tls.cipher_suite().unwrap_or("unknown")
    }

    /// The protocol agreed with ALPN (`b"http/1.1"`), or `None` if the
    /// client offered none.
    ///
    /// ```
    /// # use catamount::Request;
    /// fn alpn(req: &Request<'_>) -> String {
    ///     let t = req.tls();
    ///     let p = t.as_ref().and_then(|t| t.alpn()).unwrap_or(b"-");
    ///     String::from_utf8_lossy(p).into_owned()
    /// }
    /// # let _ = alpn;
    /// ```
    pub fn alpn(&self) -> Option<&'a [u8]> {
        self.tls.alpn()
    }

    /// The server name the client asked for with SNI, if it sent one
    /// (clients send none for an IP address).
    ///
    /// ```
    /// # use catamount::Request;
    /// fn host(req: &Request<'_>) -> String {
    ///     req.tls().and_then(|t| t.sni()).unwrap_or("-").to_string()
    /// }
    /// # let _ = host;
    /// ```
    pub fn sni(&self) -> Option<&'a str> {
        self.tls.sni()
    }

    /// The client's certificate in DER, when it presented one the
    /// verifier accepted (`verify_mode=peer` or `force_peer`); `None`
    /// otherwise. The raw bytes, not the parsed subject: parse them with an
    /// X.509 crate if the app needs names (catamount adds no dependency
    /// for it).
    ///
    /// ```
    /// # use catamount::Request;
    /// fn has_client_cert(req: &Request<'_>) -> bool {
    ///     req.tls().is_some_and(|t| t.peer_certificate_der().is_some())
    /// }
    /// # let _ = has_client_cert;
    /// ```
    pub fn peer_certificate_der(&self) -> Option<&'a [u8]> {
        self.tls.peer_certificate_der()
    }
}

/// What a handler answers.
///
/// The engine owns the framing headers: `Content-Length`,
/// `Transfer-Encoding`, `Connection`, `Date` and `Server` are written by
/// catamount from the [`Body`] and the connection state; a handler's own
/// values for them are dropped. The body is not sent in answer to `HEAD`,
/// nor with a 1xx, 204 or 304 status.
///
/// ```
/// use catamount::{Body, Response};
///
/// let resp = Response::new(201)
///     .header("Location", "/items/7")
///     .body(Body::Bytes(b"{\"id\":7}".to_vec()));
/// assert_eq!(resp.status, 201);
/// assert_eq!(resp.headers, [("Location".to_string(), "/items/7".to_string())]);
/// assert!(matches!(resp.body, Body::Bytes(ref b) if b.len() == 8));
/// ```
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Headers other than the framing ones, in the order given.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// A response body.
///
/// ```
/// use std::fs::File;
/// use std::io::{self, Read};
/// use std::sync::Arc;
///
/// use catamount::{Body, Response};
///
/// fn download(path: &str) -> io::Result<Response> {
///     let file = File::open(path)?;
///     let len = file.metadata()?.len();
///     let body = Body::File { file: Arc::new(file), offset: 0, len };
///     Ok(Response::new(200)
///         .header("Content-Type", "application/octet-stream")
///         .body(body))
/// }
///
/// // A body whose length is not known in advance: sent chunked.
/// let zeros = Body::Stream(Box::new(io::repeat(0).take(1 << 20)));
/// let resp = Response::new(200).body(zeros);
/// # let _ = (download, resp);
/// ```
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
    /// Bytes shared with other responses (a cache's `Arc`), sent with
    /// `Content-Length`. Never copied by the engine: the head and these
    /// bytes leave together in one `sendmsg(2)` straight from the shared
    /// buffer (under TLS, rustls encrypts them from there into the head's
    /// record); the static app answers its cached small files so.
    Shared(SharedBytes),
    /// A body of unknown length, sent chunked to HTTP/1.1 clients and
    /// delimited by closing the connection for HTTP/1.0 clients.
    Stream(Box<dyn Read + Send>),
    /// No body: the connection changes protocol. Once the head is
    /// written, the function gets the connection as an [`Upgraded`], on
    /// a thread of its own (see there for the bound, `max_upgraded`, and
    /// what a stop does). Made by [`Response::upgrade`]; the status must
    /// be `101` (to an HTTP/1.1 request with an `Upgrade` header, and the
    /// response names the protocol in its own `Upgrade` header) or a 2xx
    /// answer to `CONNECT`, else the engine answers 500. The engine
    /// writes `Connection: Upgrade` with a 101 and no framing headers.
    Upgrade(Box<dyn FnOnce(Upgraded) + Send>),
}

/// A range of a shared, immutable buffer: the body of [`Body::Shared`].
/// Cloning it clones the `Arc`, not the bytes.
///
/// ```
/// use std::sync::Arc;
///
/// use catamount::{Body, Response, SharedBytes};
///
/// let page: Arc<[u8]> = Arc::from(&b"<h1>hello</h1>"[..]);
/// let whole = SharedBytes::from(Arc::clone(&page));
/// assert_eq!(&*whole, b"<h1>hello</h1>");
/// let part = SharedBytes::new(Arc::clone(&page), 4..9).expect("in range");
/// assert_eq!(&*part, b"hello");
/// assert!(SharedBytes::new(page, 4..99).is_none(), "past the end");
/// let resp = Response::new(200).body(Body::Shared(whole));
/// # let _ = resp;
/// ```
#[derive(Clone)]
pub struct SharedBytes {
    bytes: std::sync::Arc<[u8]>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    /// The bytes `range` of `bytes`; `None` when the range is not within
    /// them (or ends before it starts).
    pub fn new(bytes: std::sync::Arc<[u8]>, range: std::ops::Range<usize>) -> Option<Self> {
        (range.start <= range.end && range.end <= bytes.len()).then_some(SharedBytes {
            bytes,
            start: range.start,
            end: range.end,
        })
    }
}

impl From<std::sync::Arc<[u8]>> for SharedBytes {
    /// All of `bytes`.
    fn from(bytes: std::sync::Arc<[u8]>) -> Self {
        let end = bytes.len();
        SharedBytes {
            bytes,
            start: 0,
            end,
        }
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }
}

impl Response {
    /// A response with no headers and an empty body.
    ///
    /// ```
    /// use catamount::{Body, Response};
    ///
    /// let resp = Response::new(204);
    /// assert_eq!(resp.status, 204);
    /// assert!(resp.headers.is_empty());
    /// assert!(matches!(resp.body, Body::Empty));
    /// ```
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    ///
    /// ```
    /// use catamount::{Body, Response};
    ///
    /// let resp = Response::text(404, "no such page\n");
    /// assert_eq!(resp.status, 404);
    /// assert_eq!(resp.headers[0].1, "text/plain; charset=utf-8");
    /// assert!(matches!(resp.body, Body::Bytes(ref b) if b == b"no such page\n"));
    /// ```
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Body::Bytes(text.into().into_bytes()))
    }

    /// Adds a header, after those already there (a name may repeat, as
    /// `Set-Cookie` does). Framing headers are the engine's (see
    /// [`Response`]).
    ///
    /// ```
    /// use catamount::Response;
    ///
    /// let resp = Response::text(200, "hi\n")
    ///     .header("Cache-Control", "no-store")
    ///     .header("Set-Cookie", "a=1")
    ///     .header("Set-Cookie", "b=2");
    /// let cookies = resp.headers.iter().filter(|(n, _)| n == "Set-Cookie").count();
    /// assert_eq!(cookies, 2);
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Makes this response a protocol change: once its head is written,
    /// the connection goes to `on_upgrade` as an [`Upgraded`] stream, on
    /// a thread of its own (not a pool thread). Give the status (`101`,
    /// or a 2xx to `CONNECT`) and the protocol's headers (`Upgrade`,
    /// `Sec-WebSocket-Accept`...); see [`Body::Upgrade`] for what the
    /// engine checks and [`Upgraded`] for the threads, the bound and a
    /// graceful stop. examples/websocket_echo.rs is a complete WebSocket
    /// server on it.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// use catamount::{Body, Request, Response};
    ///
    /// fn handler(req: &mut Request<'_>) -> Response {
    ///     if !req.header("upgrade").is_some_and(|p| p.eq_ignore_ascii_case("shout")) {
    ///         return Response::text(426, "this path speaks shout\n").header("Upgrade", "shout");
    ///     }
    ///     Response::new(101).header("Upgrade", "shout").upgrade(|mut conn| {
    ///         let mut buf = [0u8; 1024];
    ///         while let Ok(n @ 1..) = conn.read(&mut buf) {
    ///             let loud = buf[..n].to_ascii_uppercase();
    ///             if conn.write_all(&loud).is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    /// }
    ///
    /// let resp = Response::new(101).header("Upgrade", "shout").upgrade(|_conn| {});
    /// assert_eq!(resp.status, 101);
    /// assert!(matches!(resp.body, Body::Upgrade(_)));
    /// # let _ = handler;
    /// ```
    pub fn upgrade(self, on_upgrade: impl FnOnce(Upgraded) + Send + 'static) -> Self {
        self.body(Body::Upgrade(Box::new(on_upgrade)))
    }

    /// Replaces the body.
    ///
    /// ```
    /// use catamount::{Body, Response};
    ///
    /// let resp = Response::new(200)
    ///     .header("Content-Type", "application/json")
    ///     .body(Body::Bytes(br#"{"ok":true}"#.to_vec()));
    /// assert!(matches!(resp.body, Body::Bytes(ref b) if b.starts_with(b"{")));
    /// ```
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}
