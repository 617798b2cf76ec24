//! The request path on a pool thread: serve a connection's ready
//! requests (parse the buffered head, call the handler with the body
//! reader, write the response), serve the next pipelined request inline
//! or queue it behind others, then park the connection in the pool's
//! epoll until its next request ([`serve`]); take a parked connection
//! back when its event fires ([`on_parked_ready`]); and accept a new
//! connection on a shared listener, read at once and serve the request
//! already there, or hand the connection to the reactor to wait for the
//! rest ([`on_accept_ready`]).
//!
//! No client behaviour keeps a pool thread beyond the handler's own work
//! (issue 11): a connection reaches a thread only with a ready request
//! (`Conn::request_ready`), and a response the client does not take at
//! once is parked with its unsent rest (`response::Outgoing`).
//!
//! A handler's `Body::Upgrade` ends the connection's HTTP life here: it
//! is checked, given a place among the upgraded connections and a thread
//! of its own (`upgrade`), taken out of every epoll and handed over; the
//! pool thread goes back to HTTP at once (issue 17).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::connection::{BodyReader, Conn, ConnInfo, Progress};
use crate::engine::{self, AcceptFailure, Engine};
use crate::http::{self, Framing, Head, HttpError};
use crate::log;
use crate::parking::{Arrived, Parked};
use crate::response::{
    deliver, error_response, send_out, upgrade_head, write_response, Answered, Outgoing,
};
use crate::sys;
use crate::upgrade::{self, Handoff, OnUpgrade, Refused};
use crate::{Body, Request, Response};

/// Serves `conn` until it must wait for the client again, then parks it
/// (or queues it behind others, or closes it).
pub fn serve(engine: &Engine, mut conn: Conn) {
    // Busy until the connection is parked, queued or closed, so a graceful
    // stop never sees a moment with it in none of its counts.
    let _busy = engine.stats().serving();
    loop {
        let next = serve_requests(engine, &mut conn);
        match next {
            Next::Park => return engine.park_keep_alive(conn),
            Next::Send(out) => return engine.park_writer(conn, out),
            Next::Close => return,
            Next::Upgrade(handoff) => {
                // Out of the pool's accounting from here: no epoll event,
                // no count a stop waits on but the upgraded ones.
                engine.release_for_upgrade(&mut conn);
                return handoff.start(conn);
            }
            Next::Requeue => match engine.enqueue(conn) {
                Ok(()) => return,
                Err(c) => conn = c, // the queue is full: go on here
            },
        }
    }
}

/// Bytes a write of a response may move (what is left, at most what the
/// client took at its last wake-up: `Outgoing::next_write`) from which
/// the thread sending it, if it takes events from the pool's epoll, lets
/// another take them meanwhile ([`Engine::lend_turn`]); a slow reader of
/// a large file takes a few KiB per wake-up and lends nothing. Sendfile
/// of 1 MiB to a local client takes
/// about 300 µs here, waking a follower about 5 µs; 256 KiB is 70-80 µs.
/// Measured with bench/run's 1MiB row: one thread taking events sent
/// every file, 1,800 req/s against 3,300 when two sent at once.
const LONG_SEND: u64 = 256 * 1024;

/// See [`LONG_SEND`].
fn lend_for_long_send<'e>(engine: &'e Engine, out: &Outgoing) -> Option<engine::Lent<'e>> {
    (out.next_write() >= LONG_SEND)
        .then(|| engine.lend_turn())
        .flatten()
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
    /// The handler upgraded it: hand it to its thread.
    Upgrade(Handoff),
}

/// How answering one request ended.
enum Served {
    Answered(Answered),
    /// With an upgrade whose thread waits for the connection.
    Upgrade(Handoff),
}

/// A parked connection's registration fired: send more of its response,
/// or read what came and serve it when a request is ready (park it again
/// otherwise).
pub fn on_parked_ready(engine: &Engine, token: u64) {
    let fd = engine::token_fd(token);
    // Counted before it leaves the parking: a graceful stop never sees a
    // moment with the connection in neither count.
    let _reading = engine.stats().reading_one();
    let Some(mut p) = engine.parking().take(fd, token) else {
        return; // expired by the reactor since, or a stale event
    };
    match p.outgoing.take() {
        Some(out) => continue_sending(engine, p.conn, out),
        None => read_parked(engine, p),
    }
}

/// A shared listener's one-shot registration fired: accept one
/// connection, arm the listener again (so another thread can take the
/// next one meanwhile), and read at once, without waiting. A request
/// that is already there is served here, with no other thread involved;
/// a connection that has sent nothing yet is parked in the pool's epoll
/// like a kept-alive one; one with part of a request is handed to the
/// reactor, so a slow client never holds this thread.
pub fn on_accept_ready(engine: &Engine, index: usize) {
    // Counted from before the accept until `serve` counts it busy (or it
    // is handed over or closed): a graceful stop waits for it.
    let _reading = engine.stats().reading_one();
    let conn = {
        // Held until the connection is served, handed over or closed, so
        // that a stop (`Engine::unshare_listeners`) waits for this accept.
        let Some(listener) = engine.listener(index) else {
            return; // a stop took the listeners back: a stale event
        };
        let (fd, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                match AcceptFailure::of(e) {
                    // Another thread or worker took it, or the client
                    // gave up: wait for the next one.
                    AcceptFailure::Empty | AcceptFailure::Transient => listener.rearm(),
                    AcceptFailure::Exhausted(e) => {
                        // Left disarmed: the reactor re-arms it after its
                        // back-off, so a full descriptor table is not
                        // retried in a loop.
                        log::warn(&format!(
                            "! accept on {} failed: {e}; pausing (raise LimitNOFILE= or ulimit -n if this repeats)",
                            listener.url()
                        ));
                        engine.pause_accepting();
                    }
                }
                return;
            }
        };
        listener.rearm();
        if listener.is_tcp() {
            // Best effort: a connection reset already will fail later anyway.
            let _ = sys::set_nodelay(&fd);
        }
        let info = ConnInfo::new(peer, listener.label());
        let deadline = Instant::now() + engine.limits().first_data_timeout;
        let mut p = Parked::waiting(Conn::new(fd, info, None), deadline, false);
        match p.read_available(engine.limits()) {
            Arrived::Request => p.conn,
            Arrived::Gone => return, // dropped: closed
            // Part of a request: the reactor waits for the rest. (While
            // stopping too: the stopping reactor gives it a grace.)
            Arrived::Waiting if p.partial || engine.stats().is_stopping() => {
                return engine.hand_to_reactor(p)
            }
            // Nothing yet (on loopback the client has rarely written when
            // its connection is accepted): its first bytes wake a pool
            // thread, as a kept-alive connection's do, with no other
            // thread in between; if they are not a whole request, that
            // thread hands it to the reactor (`read_parked`).
            Arrived::Waiting => return engine.park(p),
        }
    };
    serve(engine, conn);
}

fn read_parked(engine: &Engine, mut p: Parked) {
    match p.read_available(engine.limits()) {
        Arrived::Request => serve(engine, p.conn),
        Arrived::Waiting if p.conn.served() == 0 => {
            // A new connection's first bytes are not a whole request: a
            // slow client, or a large head; the reactor waits for the
            // rest, so a trickle costs the pool this one read at most.
            engine.unpool(&mut p.conn);
            engine.hand_to_reactor(p);
        }
        Arrived::Waiting => engine.park(p),
        Arrived::Gone => {} // dropped: closed
    }
}

/// The client can take more of a response: send what it takes, then
/// serve its next request (or park it, or close it).
fn continue_sending(engine: &Engine, mut conn: Conn, mut out: Box<Outgoing>) {
    // A client slow to read may have sent more meanwhile, unread: closing
    // over it would reset the end of the response away (plain TCP).
    if !conn.is_tls() {
        out.set_linger(true);
    }
    let lent = lend_for_long_send(engine, &out);
    let sent = send_out(&mut conn, &mut out);
    drop(lent);
    match sent {
        None => engine.park_writer(conn, out),
        Some(Answered::Open) if !engine.stats().is_stopping() => serve(engine, conn),
        Some(Answered::Open) => {
            if !conn.is_tls() {
                conn.linger();
            }
        }
        Some(_) => {} // dropped: closed
    }
}

fn serve_requests(engine: &Engine, conn: &mut Conn) -> Next {
    let max_body = engine.limits().max_body;
    loop {
        if conn.served() > 0 {
            if let Some(next) = tls_read_ahead(conn) {
                return next;
            }
        }
        if conn.request_ready(max_body) != Progress::Ready {
            return Next::Park; // wait for the rest of the request
        }
        let (head, continue_sent) = match conn.next_request() {
            Ok(Some(request)) => request,
            Ok(None) => return Next::Park,
            Err(e) => return respond_error(engine, conn, e, None).into(),
        };
        match serve_one(engine, conn, &head, continue_sent) {
            Served::Answered(Answered::Open) => {}
            Served::Answered(answered) => return answered.into(),
            Served::Upgrade(handoff) => return Next::Upgrade(handoff),
        }
        if engine.stats().is_stopping() {
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
        if !engine.queue_is_empty() {
            return Next::Requeue;
        }
    }
}

/// After a request on a TLS connection with nothing buffered: rustls may
/// hold decrypted bytes of the next request that no socket event will
/// announce, so read once. `Some`: what to do instead of going on.
///
/// Also when the last read emptied both the socket and rustls (this read
/// then only returns EAGAIN): parking at once was measured (wrk -t2 -c64
/// over TLS as in bench/run's tls-keepalive, 2 cores shared with wrk,
/// fresh servers alternating) to lower req/s by 10-15%, the
/// machine idle 17-19% of the time against 8-12% with the read, though
/// it saves the server CPU; see bench/README "Known limits".
fn tls_read_ahead(conn: &mut Conn) -> Option<Next> {
    if !conn.buffered().is_empty() || !conn.is_tls() {
        return None;
    }
    match conn.read_some() {
        Ok(0) => Some(Next::Close),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Next::Park),
        Err(_) => Some(Next::Close),
    }
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
fn serve_one(engine: &Engine, conn: &mut Conn, head: &Head, continue_sent: bool) -> Served {
    let started = Instant::now();
    let limits = engine.limits();
    if let Framing::Length(n) = head.framing {
        if n > limits.max_body {
            let answered = respond_error(engine, conn, HttpError::PayloadTooLarge, Some(head));
            return Served::Answered(answered);
        }
    }
    let mut body = BodyReader::new(conn, head, limits, continue_sent);
    let response = {
        let mut req = Request::new(head, &mut body);
        catch_unwind(AssertUnwindSafe(|| engine.handler().handle(&mut req)))
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
        Err(Some(e)) => return Served::Answered(respond_error(engine, conn, e, Some(head))),
        Err(None) => return Served::Answered(Answered::Closed), // the client went away
    };
    conn.reset_incoming();
    let (response, refused) = match response {
        Response {
            status,
            headers,
            body: Body::Upgrade(on_upgrade),
        } => {
            let start = start_upgrade(engine, conn, head, status, &headers, on_upgrade, body_done);
            match start {
                Ok(handoff) => {
                    engine.stats().count_request();
                    if limits.log_requests {
                        let request = http::LoggedLine::of_head(head).to_string();
                        log_request(conn, &request, status, 0, started);
                    }
                    return Served::Upgrade(handoff);
                }
                Err(refusal) => (refusal, true),
            }
        }
        response => (response, false),
    };
    let keep_alive = !refused
        && body_done
        && head.keep_alive
        && conn.served() < limits.max_keep_alive
        && !engine.stats().is_stopping();
    let status = response.status;
    let (answered, sent) = match write_response(conn, head, response, keep_alive, limits) {
        Ok((mut out, sent)) => {
            // Unread body bytes may follow: end our side first, so the
            // kernel does not reset the answer away.
            out.set_linger(!body_done && !conn.is_tls());
            let _lent = lend_for_long_send(engine, &out);
            (deliver(conn, out), sent)
        }
        Err(_) => (Answered::Closed, 0),
    };
    engine.stats().count_request();
    if limits.log_requests {
        let request = http::LoggedLine::of_head(head).to_string();
        log_request(conn, &request, status, sent, started);
    }
    Served::Answered(answered)
}

/// A handler answered with `Body::Upgrade`: checks the answer, takes a
/// place among the upgraded connections and starts the connection's
/// thread. `Err` is the answer to send instead (500 for a handler's
/// mistake, 503 when no place or thread can be had), with the
/// connection closed after it.
fn start_upgrade(
    engine: &Engine,
    conn: &Conn,
    head: &Head,
    status: u16,
    headers: &[(String, String)],
    on_upgrade: OnUpgrade,
    body_done: bool,
) -> Result<Handoff, Response> {
    let request = || http::LoggedLine::of_head(head).to_string();
    let why = match upgrade::check(head, status, headers) {
        Err(why) => Some(why),
        // What the client sends next would be the rest of the body, not
        // the new protocol.
        Ok(()) if !body_done => Some(
            "the request body had not all arrived; read it (Request::read_body) before upgrading",
        ),
        Ok(()) => None,
    };
    if let Some(why) = why {
        log::error(&format!(
            "! handler answered {} with an upgrade: {why}; answered 500",
            request()
        ));
        return Err(Response::text(500, "500 Internal Server Error\n"));
    }
    let unavailable = || Response::text(503, "503 Service Unavailable\n");
    let upgrades = engine.upgrades();
    let slot = match upgrades.reserve(conn) {
        Ok(slot) => slot,
        Err(Refused::Stopping) => return Err(unavailable()),
        Err(e) => {
            if upgrades.log_refusal_now() {
                log::warn(&format!("! upgrade refused with 503: {e}"));
            }
            return Err(unavailable());
        }
    };
    let bytes = upgrade_head(status, headers);
    upgrade::spawn(slot, bytes, on_upgrade, engine.limits().write_timeout).map_err(|e| {
        log::error(&format!(
            "! cannot start a thread for an upgraded connection: {e}; answered 503"
        ));
        unavailable()
    })
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
    let request = engine.limits().log_requests.then(|| {
        match head {
            Some(h) => http::LoggedLine::of_head(h),
            None => http::LoggedLine::from_refused(conn.buffered()),
        }
        .to_string()
    });
    let mut out = Outgoing::new(bytes, false);
    out.set_linger(!conn.is_tls());
    let answered = deliver(conn, out);
    engine.stats().count_request();
    if let Some(request) = request {
        log_request(conn, &request, e.status(), 0, Instant::now());
    }
    answered
}

/// One `--log-requests` line, in the Common Log Format as Puma and nginx
/// write it, with the seconds taken at the end: `127.0.0.1 - -
/// [04/Dec/2026:15:11:30 +0000] "GET /a HTTP/1.1" 200 12 0.0003`.
/// `request` is the quoted part, escaped ([`http::LoggedLine`]).
fn log_request(conn: &Conn, request: &str, status: u16, bytes: u64, started: Instant) {
    let peer = conn
        .info()
        .peer()
        .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
    let line = crate::date::with_now_clf(|d| {
        format!(
            "{peer} - - [{d}] \"{request}\" {status} {bytes} {}",
            log::Seconds::places(started.elapsed(), 4)
        )
    });
    log::info(&line);
}

#[cfg(test)]
mod tests {
    //! The hand-offs of the request path, driven from the test thread:
    //! queue → serve → park (or requeue, or close), a parked writer's
    //! EPOLLOUT → `on_parked_ready` → the rest of its response, and a
    //! shared listener's event → `on_accept_ready` → served at once,
    //! parked until its first bytes, or handed to the reactor.

    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::connection::testing::{self, pair, read_response, EVENT_DEADLINE, REQUEST};
    use crate::sys::Events;

    const BIG: usize = 4 << 20;

    fn engine_with(
        handler: impl Fn(&mut Request<'_>) -> Response + Send + Sync + 'static,
    ) -> Arc<Engine> {
        let e = Engine::new(Box::new(handler), testing::limits(), 4).expect("engine");
        Arc::new(e)
    }

    /// A connection whose client sent `bytes`, read until ready.
    fn ready(bytes: &[u8]) -> (Conn, UnixStream) {
        let (mut conn, mut client) = pair();
        assert_eq!(
            testing::receive(&mut conn, &mut client, bytes),
            Progress::Ready
        );
        (conn, client)
    }

    #[test]
    fn a_served_connection_is_parked_for_its_next_request() {
        let e = engine::test_engine(4);
        let (conn, mut client) = ready(REQUEST);
        serve(&e, conn);
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        assert_eq!(e.parking().len(), 1);
        assert_eq!((e.stats().busy(), e.stats().requests()), (0, 1));
    }

    #[test]
    fn a_pipelined_request_queues_behind_others_instead_of_jumping_them() {
        let e = engine::test_engine(4);
        let (other, _other_client) = pair();
        e.enqueue(other).map_err(drop).expect("queued");
        let (conn, mut client) = ready(&[REQUEST, REQUEST].concat());
        serve(&e, conn);
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        assert_eq!(e.queued(), 2, "requeued behind the waiting one");
        assert_eq!(e.parking().len(), 0);
        // Served inline when nothing else waits.
        let _ = e.try_take();
        serve(&e, e.try_take().expect("the requeued one"));
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        assert_eq!(e.stats().requests(), 2);
    }

    #[test]
    fn while_stopping_the_answer_closes_the_connection() {
        let e = engine::test_engine(4);
        let (conn, mut client) = ready(&[REQUEST, REQUEST].concat());
        e.begin_stop();
        serve(&e, conn);
        // The answer says so; the pipelined request behind it is not
        // begun (the client retries it elsewhere).
        let r = read_response(&mut client);
        assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
        assert!(testing::closed(&mut client));
        assert_eq!(e.parking().len(), 0);
    }

    #[test]
    fn a_panicking_handler_answers_500_and_leaves_no_count_raised() {
        let e = engine_with(|_| panic!("handler bug"));
        let (conn, mut client) = ready(REQUEST);
        serve(&e, conn);
        assert!(read_response(&mut client).starts_with("HTTP/1.1 500"));
        assert_eq!(e.stats().busy(), 0);
    }

    /// Reads what `client` is sent until `want` bytes came, being the pool
    /// thread whenever the socket has room again.
    fn read_via_pool_epoll(e: &Engine, client: &mut UnixStream, want: usize) -> Vec<u8> {
        client.set_nonblocking(true).expect("non-blocking");
        let mut got = Vec::with_capacity(want);
        let mut chunk = vec![0u8; 1 << 16];
        let mut events = Events::with_capacity(4);
        let deadline = Instant::now() + EVENT_DEADLINE;
        while got.len() < want {
            assert!(Instant::now() < deadline, "stalled at {} bytes", got.len());
            match client.read(&mut chunk) {
                Ok(0) => panic!("closed at {} bytes", got.len()),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    // The socket has room again: the EPOLLOUT event is
                    // ready in the pool's epoll; be the pool thread.
                    e.pool_wait(&mut events, Some(Duration::from_millis(100)))
                        .expect("wait");
                    let tokens: Vec<u64> = events.tokens().collect();
                    for token in tokens {
                        on_parked_ready(e, token);
                    }
                }
            }
        }
        got
    }

    #[test]
    fn a_response_the_client_is_slow_to_take_is_finished_from_the_pool_epoll() {
        let e = engine_with(|_| Response::new(200).body(crate::Body::Bytes(vec![b'x'; BIG])));
        e.watch_doorbell(u64::MAX).expect("doorbell");
        let (conn, mut client) = ready(REQUEST);
        serve(&e, conn);
        assert_eq!(e.parking().writers(), 1, "parked with its unsent rest");
        assert_eq!(e.stats().busy(), 0, "no thread waits for the client");
        let got = read_via_pool_epoll(&e, &mut client, BIG);
        assert!(got.len() >= BIG, "the head and all of the body arrived");
        assert_eq!(e.parking().writers(), 0);
        assert_eq!(e.parking().len(), 1, "then parked for its next request");
        assert_eq!(e.stats().reading(), 0);
    }

    #[test]
    fn a_shared_body_arrives_byte_exact_after_its_head_however_the_sends_split() {
        // Head and body leave from two buffers in one sendmsg: a send that
        // ends inside the head, or inside the body, must resume at the
        // right byte of the right buffer.
        let pattern: std::sync::Arc<[u8]> = (0..BIG).map(|i| (i % 251) as u8).collect();
        let shared = std::sync::Arc::clone(&pattern);
        let e = engine_with(move |_| {
            let part = crate::SharedBytes::new(std::sync::Arc::clone(&shared), 7..BIG);
            Response::new(200).body(crate::Body::Shared(part.expect("in range")))
        });
        e.watch_doorbell(u64::MAX).expect("doorbell");
        let (conn, mut client) = ready(REQUEST);
        serve(&e, conn);
        let len = BIG - 7;
        let mut got = read_via_pool_epoll(&e, &mut client, len);
        let end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            got.extend(read_via_pool_epoll(&e, &mut client, 1));
        };
        while got.len() < end + len {
            let more = end + len - got.len();
            got.extend(read_via_pool_epoll(&e, &mut client, more));
        }
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        assert!(
            head.contains(&format!("content-length: {len}\r\n")),
            "{head}"
        );
        assert!(got[end..] == pattern[7..], "the body is the shared range");
        assert_eq!(e.parking().len(), 1, "then parked for its next request");
    }

    #[test]
    fn an_upgrade_leaves_every_count_and_its_thread_gets_the_early_bytes() {
        let e = engine_with(|_| {
            Response::new(101)
                .header("Upgrade", "echo")
                .upgrade(|mut conn| {
                    use std::io::Write;
                    let mut buf = [0u8; 16];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    let _ = conn.write_all(&buf[..n]);
                })
        });
        let head = b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n";
        let (conn, mut client) = ready(&[&head[..], b"early"].concat());
        serve(&e, conn);
        // Out of the pool's accounting at once: nothing parked, queued or
        // busy, while its own thread serves it.
        assert_eq!((e.stats().busy(), e.parking().len(), e.queued()), (0, 0, 0));
        let mut got = Vec::new();
        client
            .read_to_end(&mut got)
            .expect("the thread ends, closing it");
        let got = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(
            got.starts_with("http/1.1 101 switching protocols\r\n"),
            "{got}"
        );
        assert!(got.contains("\r\nconnection: upgrade\r\n"), "{got}");
        assert!(!got.contains("content-length"), "{got}");
        assert!(
            got.ends_with("\r\n\r\nearly"),
            "the bytes after the head: {got}"
        );
        assert_eq!(e.upgrades().open(), 0, "its place given back");
        assert_eq!(e.stats().requests(), 1);
    }

    #[test]
    fn an_upgrade_the_request_did_not_ask_for_is_answered_500() {
        let e = engine_with(|_| Response::new(101).header("Upgrade", "x").upgrade(|_| {}));
        let (conn, mut client) = ready(REQUEST);
        serve(&e, conn);
        let r = read_response(&mut client);
        assert!(r.starts_with("HTTP/1.1 500"), "{r}");
        assert!(r.to_ascii_lowercase().contains("connection: close"), "{r}");
        assert!(testing::closed(&mut client));
        assert_eq!(e.upgrades().open(), 0);
    }

    #[test]
    fn a_stale_event_takes_nothing_and_leaves_no_count_raised() {
        let e = engine::test_engine(4);
        let (conn, _client) = ready(REQUEST);
        serve(&e, conn);
        assert_eq!(e.parking().len(), 1);
        on_parked_ready(&e, (999 << 32) | 3);
        assert_eq!(e.parking().len(), 1);
        assert_eq!(e.stats().reading(), 0);
    }

    /// An engine sharing a unix listener with its (absent) pool threads:
    /// the test thread plays them. Returns the listener's path too.
    fn accepting() -> (
        Arc<Engine>,
        std::path::PathBuf,
        crate::listeners::testing::SocketFile,
    ) {
        let e = engine::test_engine(4);
        let (listener, file) = crate::listeners::testing::unix();
        e.share_listener(Arc::new(listener), Arc::from("unix:///test"))
            .expect("shared");
        (e, file.0.clone(), file)
    }

    fn connect(path: &std::path::Path) -> UnixStream {
        let c = UnixStream::connect(path).expect("connect");
        c.set_read_timeout(Some(EVENT_DEADLINE)).expect("timeout");
        c
    }

    /// What a pool thread asleep in the pool's epoll would wake for now.
    fn pool_ready(e: &Engine) -> Option<u64> {
        let mut events = Events::with_capacity(4);
        e.pool_wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        let token = events.tokens().next();
        token
    }

    #[test]
    fn a_request_already_there_at_accept_is_served_by_the_accepting_thread() {
        let (e, path, _file) = accepting();
        let mut client = connect(&path);
        client.write_all(REQUEST).expect("write");
        let token = pool_ready(&e).expect("the listener wakes a pool thread");
        assert_eq!(engine::listener_index(token), Some(0));
        on_accept_ready(&e, 0);
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        // No other thread was involved: nothing handed to the reactor or
        // queued; kept alive in the pool's epoll; no count left raised.
        assert!(e.take_handed(false).is_empty());
        assert_eq!((e.queued(), e.parking().len()), (0, 1));
        let stats = e.stats();
        assert_eq!((stats.busy(), stats.reading(), stats.requests()), (0, 0, 1));
        // The listener was armed again: the next connection wakes a thread.
        let _next = connect(&path);
        assert_eq!(pool_ready(&e).and_then(engine::listener_index), Some(0));
    }

    #[test]
    fn a_connection_that_sent_nothing_yet_waits_in_the_pool_epoll_for_its_request() {
        let (e, path, _file) = accepting();
        let mut client = connect(&path);
        assert!(pool_ready(&e).is_some());
        on_accept_ready(&e, 0);
        assert_eq!(e.parking().len(), 1, "parked, holding no thread");
        assert!(e.take_handed(false).is_empty());
        assert_eq!(pool_ready(&e), None, "nothing to read yet");
        client.write_all(REQUEST).expect("write");
        let token = pool_ready(&e).expect("its bytes wake a pool thread");
        assert_eq!(engine::listener_index(token), None);
        on_parked_ready(&e, token);
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        assert_eq!(e.stats().requests(), 1);
    }

    #[test]
    fn a_head_incomplete_at_accept_is_handed_to_the_reactor() {
        let (e, path, _file) = accepting();
        let mut client = connect(&path);
        client.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
        assert!(pool_ready(&e).is_some());
        on_accept_ready(&e, 0);
        let handed = e.take_handed(false);
        assert_eq!(handed.len(), 1, "the reactor waits for the rest");
        let p = &handed[0];
        assert!(p.partial && !p.conn.pooled() && !p.conn.in_reactor());
        assert_eq!(p.conn.buffered(), b"GET / HTTP/1.1\r\nHo");
        // The first-data deadline, counted from the accept.
        let left = p.deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        assert_eq!((e.parking().len(), e.stats().reading()), (0, 0));
    }

    #[test]
    fn first_bytes_that_are_not_a_whole_request_send_a_new_connection_to_the_reactor() {
        let (e, path, _file) = accepting();
        let mut client = connect(&path);
        assert!(pool_ready(&e).is_some());
        on_accept_ready(&e, 0);
        assert_eq!(e.parking().len(), 1);
        // A slow client: its first bytes cost the pool this one read, then
        // the reactor holds it.
        client.write_all(b"GET / HT").expect("write");
        let token = pool_ready(&e).expect("its bytes wake a pool thread");
        on_parked_ready(&e, token);
        let handed = e.take_handed(false);
        assert_eq!(handed.len(), 1);
        assert!(!handed[0].conn.pooled(), "out of the pool's epoll");
        assert_eq!(e.parking().len(), 0);
        client.write_all(b"TP/1.1\r\n").expect("write");
        assert_eq!(pool_ready(&e), None, "its bytes no longer wake the pool");
    }

    #[test]
    fn once_the_listeners_are_taken_back_no_accept_starts() {
        let (e, path, _file) = accepting();
        let _client = connect(&path);
        e.unshare_listeners();
        assert!(e.listener(0).is_none());
        // A stale event (taken before the stop) accepts nothing: the
        // connection stays in the backlog, for the next process.
        on_accept_ready(&e, 0);
        assert_eq!((e.parking().len(), e.queued()), (0, 0));
        assert!(e.take_handed(false).is_empty());
        assert_eq!(pool_ready(&e), None, "out of the pool's epoll");
        assert!(!e.shares_listeners());
    }

    #[test]
    fn what_a_write_may_move_next_follows_what_the_client_took() {
        // A socketpair's buffer takes a fraction of 1 MiB per write, as a
        // slow reader of a large file does per wake-up: the next write is
        // judged by that, not by all that is left.
        let (mut conn, mut client) = pair();
        client.set_nonblocking(true).expect("non-blocking");
        let mut out = Outgoing::new(vec![b'x'; 1 << 20], true);
        assert_eq!(out.next_write(), 1 << 20, "before any write: all of it");
        let drain = |client: &mut UnixStream| {
            let (mut buf, mut took) = (vec![0; 64 * 1024], 0);
            while let Ok(n @ 1..) = client.read(&mut buf) {
                took += n as u64;
            }
            took
        };
        for _ in 0..2 {
            assert!(
                send_out(&mut conn, &mut out).is_none(),
                "the client took part"
            );
            let took = drain(&mut client);
            assert!(took > 0 && took < 1 << 20, "{took}");
            assert_eq!(out.next_write(), took, "at most what it took last");
        }
    }
}
