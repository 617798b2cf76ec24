//! Connections that change protocol (issue 17 item 2): a handler answers
//! `101 Switching Protocols` (or a 2xx to `CONNECT`) with a
//! [`Body::Upgrade`](crate::Body::Upgrade), and once that head is written
//! the connection is the app's, as an [`Upgraded`] `Read + Write` stream.
//!
//! Who owns what:
//!
//! - The pool thread that ran the handler checks the answer, reserves a
//!   place among [`Upgrades`] (at most `max_upgraded` per process) and
//!   starts the connection's own thread ([`spawn`]); then it takes the
//!   `Conn` out of every epoll and hands it over ([`Handoff::start`]).
//!   From there the connection is in none of the pool's counts and the
//!   pool thread goes back to HTTP.
//! - The upgraded thread (`catamount-upgraded`) writes the 101 head, then
//!   runs the app's function with the [`Upgraded`], which owns the `Conn`:
//!   the bytes already buffered after the request come first, then the
//!   socket (plain, unix or TLS alike, through `Conn`'s own I/O).
//! - [`Upgrades`] (one per serving process, shared by the engine and
//!   every upgraded thread) holds a duplicate of each upgraded socket, so
//!   that a graceful stop can end them at its deadline whatever the app's
//!   thread is doing, and a "stopping" eventfd a blocked read watches.
//!
//! A stop (TERM, hot restart, a worker's recycling) first tells the
//! connections ([`Upgrades::begin_stop`]: [`Upgraded::stopping`] turns
//! true and a read that would wait returns the stop notice once), waits
//! for them within `shutdown_timeout` like requests in flight, then shuts
//! down the sockets still open ([`Upgrades::shut_down_all`]), so a stop
//! never hangs on them. Before a hot restart's exec the set is sealed
//! ([`Upgrades::seal`]): from then on no thread closes a descriptor (the
//! exec does), since a close after the exec's `dup2`s could close a number
//! that now names a listener.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::connection::Conn;
use crate::http::Head;
use crate::log;
use crate::sys::{self, EventFd};
use crate::TlsInfo;

/// The function an app gives [`Response::upgrade`](crate::Response::upgrade):
/// it gets the connection once the 101 head is written, on a thread of
/// its own.
pub type OnUpgrade = Box<dyn FnOnce(Upgraded) + Send + 'static>;

/// At most one warning per this long says that `max_upgraded` refused
/// connections (a client retrying in a loop must not flood the log).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The upgraded connections of one serving process: their bound, their
/// sockets (duplicates, to end them at a stop's deadline) and the stop
/// signal they watch.
pub struct Upgrades {
    /// `max_upgraded`: places, reserved or live, at once.
    max: usize,
    /// Readable once a stop began (written once, never drained): a read
    /// blocked in poll(2) wakes.
    stop: EventFd,
    stopping: AtomicBool,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    /// One entry per place taken: a duplicate of the connection's
    /// socket, closed when the place is given back.
    sockets: HashMap<u64, OwnedFd>,
    /// A hot restart is about to exec: nothing is closed any more.
    sealed: bool,
    /// When a refusal for `max_upgraded` was last logged.
    refusal_logged: Option<Instant>,
}

/// Why no place was reserved: each is answered 503.
#[derive(Debug)]
pub enum Refused {
    /// `max_upgraded` connections are open already.
    Full(usize),
    /// A graceful stop or a hot restart has begun.
    Stopping,
    /// The socket could not be duplicated (out of descriptors).
    Descriptor(io::Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Full(max) => write!(
                f,
                "{max} upgraded connections are open (max_upgraded); raise max_upgraded \
                 or add workers"
            ),
            Refused::Stopping => f.write_str("the server is stopping"),
            Refused::Descriptor(e) => write!(
                f,
                "cannot duplicate the socket: {e}; raise the descriptor limit (LimitNOFILE=)"
            ),
        }
    }
}

impl Upgrades {
    /// Room for `max` upgraded connections at once. Errors say what could
    /// not be made.
    pub fn new(max: usize) -> Result<Upgrades, String> {
        let stop = EventFd::new()
            .map_err(|e| format!("cannot create an eventfd (upgraded connections' stop): {e}"))?;
        Ok(Upgrades {
            max,
            stop,
            stopping: AtomicBool::new(false),
            live: Mutex::new(Live::default()),
        })
    }

    /// The set, locked. Nothing panics while holding it, but a poisoned
    /// lock still holds a consistent set: go on with it.
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for `conn` (the connection a handler answered with
    /// an upgrade), with a duplicate of its socket.
    pub fn reserve(self: &Arc<Self>, conn: &Conn) -> Result<Slot, Refused> {
        let mut live = self.lock();
        if self.is_stopping() || live.sealed {
            return Err(Refused::Stopping);
        }
        if live.sockets.len() >= self.max {
            return Err(Refused::Full(self.max));
        }
        let dup = conn.try_clone_fd().map_err(Refused::Descriptor)?;
        let id = live.next_id;
        live.next_id += 1;
        live.sockets.insert(id, dup);
        Ok(Slot {
            upgrades: Arc::clone(self),
            id,
            conn: None,
        })
    }

    /// Whether a refusal for `max_upgraded` should be logged now (at most
    /// once per [`REFUSAL_LOG_INTERVAL`]).
    pub fn log_refusal_now(&self) -> bool {
        let mut live = self.lock();
        let now = Instant::now();
        let due = live
            .refusal_logged
            .map_or(true, |at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL);
        if due {
            live.refusal_logged = Some(now);
        }
        due
    }

    /// Upgraded connections open (or being handed over) in this process.
    pub fn open(&self) -> usize {
        self.lock().sockets.len()
    }

    /// A stop began: every [`Upgraded::stopping`] turns true and every
    /// read waiting for its client wakes with the stop notice.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify();
    }

    /// See [`Upgrades::begin_stop`].
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The stop's deadline passed: shuts down every upgraded socket still
    /// open (the client sees the end; a read or write of the app's fails
    /// at once). Returns how many there were.
    pub fn shut_down_all(&self) -> usize {
        let live = self.lock();
        for dup in live.sockets.values() {
            let _ = sys::shutdown_both(dup.as_fd());
        }
        live.sockets.len()
    }

    /// Before a hot restart's exec renumbers descriptors: ends what is
    /// still open and makes sure that no thread closes a descriptor from
    /// now on. A connection given back later leaks its descriptors into
    /// the exec, which closes them (all are close-on-exec); this set (its
    /// duplicates and the stop eventfd) is never dropped.
    pub fn seal(self: &Arc<Self>) {
        self.begin_stop();
        let mut live = self.lock();
        live.sealed = true;
        for dup in live.sockets.values() {
            let _ = sys::shutdown_both(dup.as_fd());
        }
        drop(live);
        // Deliberately leaked: the last upgraded thread would otherwise
        // close the eventfd and the duplicates, perhaps after the dup2s.
        std::mem::forget(Arc::clone(self));
    }
}

/// A place among [`Upgrades`], held from the handler's answer until the
/// upgraded connection is dropped: given back in `Drop`, whatever ends
/// it (the app returns, panics, the thread never starts), closing the
/// connection under the set's lock (see [`Upgrades::seal`]).
#[must_use = "the place is given back when the slot drops"]
pub struct Slot {
    upgrades: Arc<Upgrades>,
    id: u64,
    /// The connection, once handed over.
    conn: Option<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.upgrades.lock();
        let dup = live.sockets.remove(&self.id);
        let conn = self.conn.take();
        if live.sealed {
            // The exec closes them: a close now could hit a listener's
            // new number.
            std::mem::forget(conn);
            std::mem::forget(dup);
        } else {
            // Closed while the lock is held, so never after a seal.
            drop(conn);
            drop(dup);
        }
    }
}

/// The pool thread's end of a hand-over: the upgraded thread is started
/// and waits for the connection.
pub struct Handoff {
    conn: crossbeam_channel::Sender<Conn>,
}

impl Handoff {
    /// Hands the connection (out of every epoll by now) to its thread.
    pub fn start(self, conn: Conn) {
        // The thread waits in recv() until this or the drop of `self`;
        // if it is gone, the connection is closed here.
        let _ = self.conn.send(conn);
    }
}

/// Starts the thread of an upgraded connection: it waits for the `Conn`
/// ([`Handoff::start`]), writes `head` (bounded by `write_timeout`),
/// then runs `on_upgrade`. `Err` when no thread could be started (the
/// place is given back; the caller answers 503).
pub fn spawn(
    slot: Slot,
    head: Vec<u8>,
    on_upgrade: OnUpgrade,
    write_timeout: Duration,
) -> io::Result<Handoff> {
    let (tx, rx) = crossbeam_channel::bounded::<Conn>(1);
    std::thread::Builder::new()
        .name("catamount-upgraded".into())
        .spawn(move || {
            let Ok(conn) = rx.recv() else {
                return; // the hand-over failed: the slot gives the place back
            };
            let mut slot = slot;
            slot.conn = Some(conn);
            let mut upgraded = Upgraded {
                slot,
                read_timeout: None,
                write_timeout,
                told: false,
            };
            if upgraded.write_all(&head).is_err() {
                return; // the client went away before the 101
            }
            if catch_unwind(AssertUnwindSafe(|| on_upgrade(upgraded))).is_err() {
                log::error(
                    "! an upgraded connection's function panicked; its connection is closed",
                );
            }
        })?;
    Ok(Handoff { conn: tx })
}

/// Whether an upgrade answer is one the engine may send: `Ok` or why
/// not (the handler's bug; the engine answers 500 and logs it).
pub fn check(head: &Head, status: u16, headers: &[(String, String)]) -> Result<(), &'static str> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let asked = head
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("upgrade"));
    match status {
        101 if head.minor == 0 => {
            Err("101 to an HTTP/1.0 request, which cannot upgrade (RFC 9110 §7.8)")
        }
        101 if !asked => Err("101 to a request without an Upgrade header (RFC 9110 §7.8)"),
        101 if !has("upgrade") => {
            Err("101 without an Upgrade header naming the protocol (RFC 9110 §15.2.2)")
        }
        101 => Ok(()),
        200..=299 if head.method == "CONNECT" => Ok(()),
        _ => Err("Body::Upgrade needs status 101, or a 2xx answer to CONNECT"),
    }
}

/// A connection that changed protocol: what a handler's
/// [`Response::upgrade`](crate::Response::upgrade) function gets once the
/// `101 Switching Protocols` head (or the 2xx to `CONNECT`) has been
/// written. It reads and writes the raw byte stream the client sends
/// after that head, over plain TCP, a unix socket or TLS alike (TLS
/// records are decrypted and encrypted underneath).
///
/// # Threads
///
/// Each upgraded connection runs its function on a thread of its own,
/// `catamount-upgraded`, started by the engine when the handler answers;
/// it does not hold a pool thread and does not count against `-t`, so
/// HTTP requests, slow clients' deadlines and keep-alive connections are
/// served as before however many are open. Why: a pool thread is sized
/// for a handler's short work, while an upgraded connection lasts as long
/// as its client wants; on pool threads, `-t` open WebSockets would stop
/// the server answering HTTP. A thread of its own keeps the API a plain
/// blocking `Read + Write`. The bound is `max_upgraded` per process
/// ([`Config::max_upgraded`](crate::Config::max_upgraded), default
/// [`DEFAULT_MAX_UPGRADED`](crate::config::DEFAULT_MAX_UPGRADED)): beyond
/// it the handler's answer is replaced by `503 Service Unavailable`, so a
/// client cannot make the process start threads without limit. Each costs
/// a thread (its stack is std's default) and two descriptors (the engine
/// keeps a duplicate to end it at a stop).
///
/// # Stopping
///
/// A graceful stop or a hot restart tells every upgraded connection:
/// [`stopping`](Self::stopping) turns true, and the first read that would
/// wait for the client returns the stop notice instead (an error for
/// which [`is_stop_notice`](Self::is_stop_notice) holds; later reads wait
/// as usual). Finish within `shutdown_timeout` (say goodbye in the
/// protocol, e.g. a WebSocket close frame, and return); the stop waits
/// for it as for a request in flight, then shuts the socket down: reads
/// return end of stream and writes fail, so a stop never hangs on an
/// upgraded connection. Until it is dropped the connection counts as
/// open for `idle_timeout`.
///
/// # What carries over
///
/// Bytes the client sent after the request (already buffered by the
/// engine) are read first. Nothing else does: no keep-alive, no
/// pipelining, no HTTP framing; the request's own body must have been
/// read (or fully received) before answering, or the engine answers 500.
///
/// ```no_run
/// use std::io::{Read, Write};
///
/// use catamount::{Request, Response, Server, Upgraded};
///
/// /// Echoes every byte back until the client closes or the server stops.
/// fn echo(mut conn: Upgraded) {
///     let mut buf = [0u8; 4096];
///     loop {
///         match conn.read(&mut buf) {
///             Ok(0) => return,
///             Ok(n) => {
///                 if conn.write_all(&buf[..n]).is_err() {
///                     return;
///                 }
///             }
///             Err(e) if Upgraded::is_stop_notice(&e) => {
///                 let _ = conn.write_all(b"server stopping, bye\n");
///                 return;
///             }
///             Err(_) => return,
///         }
///     }
/// }
///
/// fn handler(req: &mut Request<'_>) -> Response {
///     if req.header("upgrade") != Some("echo") {
///         return Response::text(426, "upgrade to echo\n").header("Upgrade", "echo");
///     }
///     Response::new(101).header("Upgrade", "echo").upgrade(echo)
/// }
///
/// fn main() {
///     let server = Server::from_args().unwrap_or_else(|e| e.exit());
///     server.serve(handler);
/// }
/// ```
pub struct Upgraded {
    /// The place, and the connection in it (`Some` for as long as the
    /// `Upgraded` lives).
    slot: Slot,
    read_timeout: Option<Duration>,
    write_timeout: Duration,
    /// The stop notice has been returned by a read.
    told: bool,
}

impl Upgraded {
    fn conn(&self) -> &Conn {
        self.slot
            .conn
            .as_ref()
            .expect("an Upgraded holds its connection until it is dropped")
    }

    fn conn_mut(&mut self) -> &mut Conn {
        self.slot
            .conn
            .as_mut()
            .expect("an Upgraded holds its connection until it is dropped")
    }

    /// A graceful stop or a hot restart has begun: finish within
    /// `shutdown_timeout`, after which the socket is shut down. For a
    /// function that does not sit in [`read`](Read::read) (one that
    /// mostly writes), look at this between writes.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// use catamount::Upgraded;
    ///
    /// fn ticker(mut conn: Upgraded) {
    ///     while !conn.stopping() {
    ///         if conn.write_all(b"tick\n").is_err() {
    ///             return;
    ///         }
    ///         std::thread::sleep(std::time::Duration::from_secs(1));
    ///     }
    ///     let _ = conn.write_all(b"bye\n");
    /// }
    /// # let _ = ticker;
    /// ```
    pub fn stopping(&self) -> bool {
        self.slot.upgrades.is_stopping()
    }

    /// Whether `e`, returned by a read, is the stop notice (see
    /// [`stopping`](Self::stopping)) rather than a failure of the
    /// connection: the connection still works, for a goodbye.
    ///
    /// ```
    /// use std::io;
    ///
    /// use catamount::Upgraded;
    ///
    /// let broken = io::Error::from(io::ErrorKind::ConnectionReset);
    /// assert!(!Upgraded::is_stop_notice(&broken));
    /// ```
    pub fn is_stop_notice(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<StopNotice>())
    }

    /// How long a read may wait for the client before it fails with
    /// `TimedOut` (the connection stays usable). `None`, the default,
    /// waits until data, the end of the stream or a stop.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use catamount::Upgraded;
    ///
    /// fn with_heartbeat(mut conn: Upgraded) {
    ///     // Wake every 30 s to send a ping of the app's protocol.
    ///     conn.set_read_timeout(Some(Duration::from_secs(30)));
    /// #   let _ = conn;
    /// }
    /// # let _ = with_heartbeat;
    /// ```
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// How long a write may wait for the client to take some bytes
    /// before it fails with `TimedOut` (then the connection is best
    /// dropped: part of the data may have been sent). Default: the
    /// server's `write_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use catamount::Upgraded;
    ///
    /// fn patient(mut conn: Upgraded) {
    ///     conn.set_write_timeout(Duration::from_secs(120));
    /// #   let _ = conn;
    /// }
    /// # let _ = patient;
    /// ```
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = timeout;
    }

    /// The client's address, as [`Request::peer_addr`](crate::Request::peer_addr)
    /// gave it; `None` on a unix socket.
    ///
    /// ```
    /// # use catamount::Upgraded;
    /// fn who(conn: &Upgraded) -> String {
    ///     conn.peer_addr().map_or("unix".to_string(), |a| a.to_string())
    /// }
    /// # let _ = who;
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn().info().peer()
    }

    /// The local address, as [`Request::local_addr`](crate::Request::local_addr)
    /// gives it; `None` on a unix socket.
    ///
    /// ```
    /// # use catamount::Upgraded;
    /// fn port(conn: &Upgraded) -> u16 {
    ///     conn.local_addr().map_or(0, |a| a.port())
    /// }
    /// # let _ = port;
    /// ```
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.conn().local_addr()
    }

    /// The listener it came in on, as [`Request::listener`](crate::Request::listener)
    /// names it.
    ///
    /// ```
    /// # use catamount::Upgraded;
    /// fn is_admin(conn: &Upgraded) -> bool {
    ///     conn.listener() == "fd://admin"
    /// }
    /// # let _ = is_admin;
    /// ```
    pub fn listener(&self) -> &str {
        self.conn().info().listener()
    }

    /// The TLS session, as [`Request::tls`](crate::Request::tls) gives
    /// it; `None` for plain TCP and unix sockets.
    ///
    /// ```
    /// # use catamount::Upgraded;
    /// fn secure(conn: &Upgraded) -> bool {
    ///     conn.tls().is_some()
    /// }
    /// # let _ = secure;
    /// ```
    pub fn tls(&self) -> Option<TlsInfo<'_>> {
        let tls = self.conn().tls()?;
        Some(TlsInfo { tls })
    }

    /// Waits until the socket is readable (or closed), the stop notice is
    /// due, or `deadline` passes.
    fn wait_readable(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let socket = self.conn().fd();
        // Raw numbers for one poll set over two owners' descriptors.
        let stop = self.slot.upgrades.stop.as_fd().as_raw_fd();
        let watch_stop = !self.told;
        let fds = [socket, stop];
        let fds = if watch_stop { &fds[..] } else { &fds[..1] };
        let mut ready = Vec::with_capacity(2);
        sys::poll_readable(fds, timeout, &mut ready)?;
        if watch_stop && ready.get(1) == Some(&true) {
            self.told = true;
            return Err(io::Error::other(StopNotice));
        }
        Ok(())
    }
}

impl Read for Upgraded {
    /// Bytes the client sent: first those the engine buffered after the
    /// request, then the socket's. Waits for at least one (see
    /// [`Upgraded::set_read_timeout`]); `Ok(0)` is the end of the stream.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = self.read_timeout.map(|t| Instant::now() + t);
        loop {
            let conn = self.conn_mut();
            let n = conn.take_buffered(out);
            if n > 0 {
                return Ok(n);
            }
            match conn.read_some() {
                Ok(0) => return Ok(0),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.wait_readable(deadline)?;
        }
    }
}

impl Write for Upgraded {
    /// Sends all of `data` (encrypted under TLS), waiting while the
    /// client is slow to take it, each wait bounded by the write timeout
    /// ([`Upgraded::set_write_timeout`]).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let timeout = self.write_timeout;
        self.conn_mut().send(data, false, timeout)?;
        Ok(data.len())
    }

    /// Nothing to do: [`write`](Self::write) returns once every byte,
    /// and every TLS record, has been handed to the kernel.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("peer_addr", &self.peer_addr())
            .field("listener", &self.listener())
            .field("tls", &self.conn().is_tls())
            .field("stopping", &self.stopping())
            .finish()
    }
}

/// What a read returns once when a stop begins (see [`Upgraded`]).
#[derive(Debug)]
struct StopNotice;

impl fmt::Display for StopNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the server is stopping: finish this upgraded connection within shutdown_timeout, \
             after which it is shut down",
        )
    }
}

impl std::error::Error for StopNotice {}

#[cfg(test)]
mod tests {
    //! The upgraded stream over socketpairs, driven from the test thread:
    //! buffered bytes first, the stop notice once, the bound, the
    //! shutdown at a stop's deadline, and the seal before an exec.

    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::connection::testing::{self, pair, EVENT_DEADLINE, REQUEST};
    use crate::connection::Progress;

    /// An upgraded connection whose client sent `REQUEST` then `extra`
    /// in one go (the request taken off, as the pool thread does).
    fn upgraded(upgrades: &Arc<Upgrades>, extra: &[u8]) -> (Upgraded, UnixStream) {
        let (mut conn, mut client) = pair();
        let sent = [REQUEST, extra].concat();
        assert_eq!(
            testing::receive(&mut conn, &mut client, &sent),
            Progress::Ready
        );
        assert!(conn.next_request().expect("parsed").is_some());
        let mut slot = upgrades.reserve(&conn).expect("a place");
        slot.conn = Some(conn);
        let up = Upgraded {
            slot,
            read_timeout: Some(EVENT_DEADLINE),
            write_timeout: EVENT_DEADLINE,
            told: false,
        };
        (up, client)
    }

    fn upgrades(max: usize) -> Arc<Upgrades> {
        Arc::new(Upgrades::new(max).expect("upgrades"))
    }

    #[test]
    fn bytes_sent_after_the_request_are_read_first_then_the_socket() {
        let u = upgrades(4);
        let (mut up, mut client) = upgraded(&u, b"early");
        let mut buf = [0u8; 64];
        let n = up.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"early");
        client.write_all(b"later").expect("client write");
        let n = up.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"later");
        up.write_all(b"back").expect("write");
        let mut got = [0u8; 4];
        client.read_exact(&mut got).expect("client read");
        assert_eq!(&got, b"back");
        drop(client);
        assert_eq!(up.read(&mut buf).expect("end"), 0, "end of stream");
    }

    #[test]
    fn a_stop_wakes_a_waiting_read_once_then_reads_go_on() {
        let u = upgrades(4);
        let (mut up, mut client) = upgraded(&u, b"");
        assert!(!up.stopping());
        u.begin_stop();
        assert!(up.stopping());
        let mut buf = [0u8; 16];
        let e = up.read(&mut buf).expect_err("the stop notice");
        assert!(Upgraded::is_stop_notice(&e), "{e}");
        // The connection still works, for a goodbye and its answer.
        up.write_all(b"bye").expect("write");
        client.write_all(b"ok").expect("client write");
        let n = up.read(&mut buf).expect("read after the notice");
        assert_eq!(&buf[..n], b"ok");
        // Told once: the next wait is an ordinary one.
        up.set_read_timeout(Some(Duration::from_millis(1)));
        let e = up.read(&mut buf).expect_err("nothing more came");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn data_already_there_comes_before_the_stop_notice() {
        let u = upgrades(4);
        let (mut up, _client) = upgraded(&u, b"queued");
        u.begin_stop();
        let mut buf = [0u8; 16];
        let n = up.read(&mut buf).expect("the buffered bytes");
        assert_eq!(&buf[..n], b"queued");
        assert!(Upgraded::is_stop_notice(
            &up.read(&mut buf).expect_err("then the notice")
        ));
    }

    #[test]
    fn places_are_bounded_refused_while_stopping_and_given_back_on_drop() {
        let u = upgrades(2);
        let (a, _ca) = upgraded(&u, b"");
        let (_b, _cb) = upgraded(&u, b"");
        assert_eq!(u.open(), 2);
        let (conn, _c) = pair();
        assert!(matches!(u.reserve(&conn), Err(Refused::Full(2))));
        drop(a);
        assert_eq!(u.open(), 1);
        let slot = u.reserve(&conn).expect("room again");
        assert_eq!(u.open(), 2);
        drop(slot); // never handed a connection: still given back
        assert_eq!(u.open(), 1);
        u.begin_stop();
        assert!(matches!(u.reserve(&conn), Err(Refused::Stopping)));
    }

    #[test]
    fn the_stop_deadline_shuts_down_what_the_app_still_holds() {
        let u = upgrades(4);
        let (mut up, mut client) = upgraded(&u, b"");
        up.set_read_timeout(None);
        // As if the app ignored the notice and read on.
        u.begin_stop();
        let mut buf = [0u8; 16];
        assert!(Upgraded::is_stop_notice(
            &up.read(&mut buf).expect_err("notice")
        ));
        assert_eq!(u.shut_down_all(), 1);
        assert_eq!(up.read(&mut buf).expect("EOF, not a hang"), 0);
        assert!(up.write_all(b"late").is_err(), "writes fail");
        assert!(testing::closed(&mut client), "the client sees the end");
        drop(up);
        assert_eq!(u.open(), 0);
    }

    #[test]
    fn after_the_seal_a_dropped_connection_closes_nothing() {
        let u = upgrades(4);
        let (up, _client) = upgraded(&u, b"");
        let fd = up.conn().fd();
        u.seal();
        drop(up);
        // Left for the exec to close: a close now could hit a listener
        // renumbered by dup2.
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).expect("still open");
        assert!(
            target.to_string_lossy().starts_with("socket:"),
            "{target:?}"
        );
        let (conn, _c) = pair();
        assert!(matches!(u.reserve(&conn), Err(Refused::Stopping)));
    }

    #[test]
    fn only_a_101_to_an_upgrade_request_or_a_2xx_to_connect_is_sent() {
        let parse = |raw: &[u8]| {
            crate::http::parse_head(raw)
                .expect("ok")
                .expect("complete")
                .0
        };
        let ws = parse(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        let upgrade = [("Upgrade".to_string(), "websocket".to_string())];
        assert_eq!(check(&ws, 101, &upgrade), Ok(()));
        assert!(check(&ws, 101, &[]).is_err(), "the 101 names no protocol");
        assert!(check(&ws, 200, &upgrade).is_err(), "200 to a GET");
        let plain = parse(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(check(&plain, 101, &upgrade).is_err(), "not asked for");
        let old = parse(b"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\n\r\n");
        assert!(check(&old, 101, &upgrade).is_err(), "HTTP/1.0");
        let connect = parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!(check(&connect, 200, &[]), Ok(()));
        assert!(check(&connect, 407, &[]).is_err());
    }
}
