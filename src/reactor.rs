//! The reactor: one thread with an epoll loop that accepts connections on
//! TLS listeners, drives TLS handshakes, buffers each new connection's
//! first request head until it is complete, and hands connections with a
//! complete head to the pool. Plain listeners are the pool threads' own:
//! a pool thread accepts, reads at once and serves a request that is
//! already there; a connection whose request has not all arrived is
//! handed here (`Engine::hand_to_reactor`) to wait for the rest. After its
//! first request a connection waits between requests in the pool's epoll
//! (`parking`); the reactor still enforces `first_data_timeout` and
//! `persistent_timeout` there. A slow or idle client therefore holds a few
//! bytes of memory, never a pool thread.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{Conn, ConnInfo, Progress};
use crate::engine::{AcceptFailure, Engine};
use crate::http::HttpError;
use crate::listeners::Listener;
use crate::log;
use crate::parking::{Arrived, Parked};
use crate::pool::Pool;
use crate::response;
use crate::sys::{self, Events, EPOLL_READ, EPOLL_READ_ONESHOT, EPOLL_WRITE_ONESHOT};
use crate::tls::{HandshakeState, TlsConn};

/// Connections accepted per listener wake-up before other work gets a turn.
const ACCEPT_BATCH: usize = 128;
/// Pause after an accept error such as EMFILE before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Events taken from epoll per wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Longest wait while connections are queued for a full pool (the pool
/// also wakes the reactor when it takes one; this is the safety net).
const BACKLOG_RECHECK: Duration = Duration::from_millis(50);

/// At a stop or hot restart, how long accepted connections may take to
/// deliver the request they are sending (bounded by first_data_timeout).
const STOP_GRACE: Duration = Duration::from_secs(1);

const WAKE_TOKEN: u64 = u64::MAX;
const LISTENER_BASE: u64 = 1 << 32;

/// Reactor settings taken from the config.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub first_data: Duration,
    pub persistent: Duration,
    pub shutdown: Duration,
}

/// A first head still incomplete this long after it began is a slow
/// client's (a head arrives in one segment, or a few within a round
/// trip): from then on its bytes are read in batches, see `SLOW_BATCH`.
const SLOW_AFTER: Duration = Duration::from_millis(50);
/// How long a slow client's connection waits before the reactor looks at
/// its bytes again. Hundreds of slowloris heads each sending a byte every
/// few ms would otherwise wake this thread for nearly every byte, each
/// wake-up taking a core from the pool threads; read in batches, they
/// cost one wake-up per batch for all of them, and each read takes
/// several bytes. Measured with 300 heads sending a byte every 10-20 ms
/// (bench/attackers.py), the reactor's wake-ups and CPU over 5 s:
/// unbatched 8,700/s and 0.35-0.38 s; 20 ms batches 130/s and 0.33-0.41 s;
/// 50 ms batches 100/s and 0.21 s. The price: a head that trickles in
/// over more than `SLOW_AFTER` completes up to this much later. Against
/// the normal clients' req/s (bench/run's hostile row, 5 rounds, same
/// run): 10 ms batches kept 0.75× of the unattacked rate, 50 ms 0.78×
/// (with the heads alone, 10 ms had looked 9% better; the whole attack
/// did not bear it out).
const SLOW_BATCH: Duration = Duration::from_millis(50);

/// Longest epoll wait: the loop turns (and bumps the heartbeat the
/// watchdog checks) at least this often.
const MAX_SLEEP: Duration = Duration::from_millis(100);

pub struct Reactor {
    /// Shared with the pool threads, which accept on the plain ones
    /// until `stop` takes them back (`Pool::stop_accepting`).
    listeners: Vec<Arc<Listener>>,
    /// `Listener::label` of each listener, shared with its connections.
    labels: Vec<Arc<str>>,
    /// Of `listeners`, those the pool threads accept on (the reactor
    /// does not watch them).
    by_pool: Vec<bool>,
    accepting: bool,
    accept_paused_until: Option<Instant>,
    /// Keyed by descriptor number, which is also the connection's token
    /// in the reactor's epoll (the `Conn` in the value owns the socket).
    conns: HashMap<RawFd, Parked>,
    deadlines: BTreeSet<(Instant, RawFd)>,
    pending: VecDeque<Conn>,
    pool: Pool,
    engine: Arc<Engine>,
    timeouts: Timeouts,
    /// When the pool's parked connections are next checked for deadlines.
    next_parking_scan: Instant,
    /// Slow clients' connections (with their deadline, which tells the
    /// connection from a later one given the same number), in `conns` but
    /// not armed in epoll until `slow_due` (see `SLOW_BATCH`); empty
    /// while stopping.
    slow: Vec<(RawFd, Instant)>,
    slow_due: Instant,
}

impl Reactor {
    pub fn new(
        listeners: Vec<Listener>,
        pool: Pool,
        engine: Arc<Engine>,
        timeouts: Timeouts,
    ) -> io::Result<Reactor> {
        engine.watch_wake(WAKE_TOKEN)?;
        let labels: Vec<Arc<str>> = listeners.iter().map(|l| Arc::from(l.label())).collect();
        let listeners: Vec<Arc<Listener>> = listeners.into_iter().map(Arc::new).collect();
        let by_pool = pool.accept_on(&listeners, &labels);
        let mut r = Reactor {
            listeners,
            labels,
            by_pool,
            accepting: false,
            accept_paused_until: None,
            conns: HashMap::new(),
            deadlines: BTreeSet::new(),
            pending: VecDeque::new(),
            pool,
            engine,
            timeouts,
            next_parking_scan: Instant::now(),
            slow: Vec::new(),
            slow_due: Instant::now(),
        };
        r.set_accepting(true);
        Ok(r)
    }

    /// Runs until the engine is stopping; returns the listeners (for the
    /// caller to clean up) and the pool (to wait for in-flight requests).
    pub fn run(mut self) -> (Vec<Listener>, Pool) {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        while !self.engine.stats().is_stopping() {
            let stats = self.engine.stats();
            stats.beat();
            stats.set_held(self.pending.len());
            let timeout = Some(self.next_timeout().map_or(MAX_SLEEP, |t| t.min(MAX_SLEEP)));
            if let Err(e) = self.engine.reactor_epoll().wait(&mut events, timeout) {
                log::warn(&format!("! epoll_wait failed: {e}; retrying"));
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            for token in events.tokens() {
                match token {
                    WAKE_TOKEN => self.on_wake(),
                    t if t >= LISTENER_BASE => self.accept((t - LISTENER_BASE) as usize),
                    t => self.on_ready(t as RawFd),
                }
            }
            self.flush_pending();
            self.expire();
            if !self.slow.is_empty() && Instant::now() >= self.slow_due {
                self.rearm_slow();
            }
        }
        self.stop()
    }

    /// The wake-up: room in the queue, connections a pool thread handed
    /// over, an accept pause a pool thread asked for, or a stop.
    fn on_wake(&mut self) {
        self.engine.on_wake();
        self.take_handed(false);
        if self.engine.take_accept_pause() {
            // The pool's listener stays disarmed until the back-off ends
            // (`flush_pending` re-arms it).
            self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
        }
    }

    /// Registers the new connections pool threads handed over: each waits
    /// here for the rest of its first request, under the deadline set at
    /// its accept.
    fn take_handed(&mut self, last: bool) {
        for p in self.engine.take_handed(last) {
            self.watch(p);
        }
    }

    fn stop(mut self) -> (Vec<Listener>, Pool) {
        self.set_accepting(false);
        // Every connection left gets its events from now on (nothing is
        // batched while stopping: see `is_slow`).
        self.rearm_slow();
        // The pool threads stop accepting too; once this returns, every
        // connection they accepted is served or handed over (taken next).
        self.pool.stop_accepting();
        self.take_handed(false);
        // Connections parked in the pool come back here: the idle ones are
        // closed below, the ones with part of a request, and the new ones
        // waiting for their first, get the grace.
        for p in self.engine.parking().take_all() {
            let new = p.conn.served() == 0;
            // Idle ones (given back) are dropped: closed.
            drop(self.reclaim(p.conn, p.partial || new));
        }
        // Idle keep-alive connections are not in flight: close them now.
        let idle: Vec<RawFd> = self
            .conns
            .iter()
            .filter(|(_, p)| p.conn.served() > 0 && !p.partial)
            .map(|(&fd, _)| fd)
            .collect();
        for fd in idle {
            if let Some(p) = self.conns.remove(&fd) {
                self.deadlines.remove(&(p.deadline, fd));
            }
        }
        // Connections already accepted whose request is on its way get a
        // short grace to deliver it, then are answered: closing them would
        // fail a request the client already sent (systemctl restart, a hot
        // restart).
        let grace = Instant::now() + self.timeouts.first_data.min(STOP_GRACE);
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        while !self.conns.is_empty() {
            let now = Instant::now();
            if now >= grace {
                break;
            }
            if self
                .engine
                .reactor_epoll()
                .wait(&mut events, Some(grace - now))
                .is_err()
            {
                break;
            }
            for token in events.tokens() {
                match token {
                    WAKE_TOKEN => {
                        self.engine.drain_wake();
                        self.take_handed(false);
                    }
                    t if t >= LISTENER_BASE => {}
                    t => self.on_ready(t as RawFd),
                }
            }
            self.flush_pending();
        }
        // Handed over from now on: closed (the grace is over).
        self.take_handed(true);
        self.conns.clear();
        self.deadlines.clear();
        // Requests already received are answered, as Puma does.
        while let Some(conn) = self.pending.pop_front() {
            self.pool.dispatch_wait(conn, self.timeouts.shutdown);
        }
        // The pool let go of them in `stop_accepting`, above.
        let listeners = self
            .listeners
            .into_iter()
            .map(|l| {
                Arc::try_unwrap(l).unwrap_or_else(|_| {
                    unreachable!("the pool threads hold no listener after stop_accepting")
                })
            })
            .collect();
        (listeners, self.pool)
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut next = self.deadlines.first().map(|(d, _)| *d);
        let scan = self.next_parking_scan();
        next = Some(next.map_or(scan, |n| n.min(scan)));
        if let Some(p) = self.accept_paused_until {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        if !self.slow.is_empty() {
            next = Some(next.map_or(self.slow_due, |n| n.min(self.slow_due)));
        }
        // sys rounds a timeout up to the next millisecond, so waking at `n`
        // never returns a little early and spins until it passes.
        let mut timeout = next.map(|n| n.saturating_duration_since(now));
        if !self.pending.is_empty() {
            timeout = Some(timeout.map_or(BACKLOG_RECHECK, |t| t.min(BACKLOG_RECHECK)));
        }
        timeout
    }

    fn set_accepting(&mut self, on: bool) {
        if on == self.accepting {
            return;
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if self.by_pool[i] {
                continue;
            }
            let fd = l.fd.as_fd();
            let r = if on {
                self.engine
                    .reactor_epoll()
                    .add(fd, EPOLL_READ, LISTENER_BASE + i as u64)
            } else {
                self.engine.reactor_epoll().delete(fd)
            };
            if let Err(e) = r {
                log::warn(&format!(
                    "! cannot {} {}: {e}",
                    if on { "watch" } else { "unwatch" },
                    l.url
                ));
            }
        }
        self.accepting = on;
    }

    fn accept(&mut self, index: usize) {
        let Some(listener) = self.listeners.get(index) else {
            return;
        };
        let is_tcp = listener.is_tcp;
        let tls = listener.tls.as_ref().map(|t| Arc::clone(&t.config));
        for _ in 0..ACCEPT_BATCH {
            match sys::accept_with_peer(&self.listeners[index].fd) {
                Ok((fd, peer)) => {
                    if is_tcp {
                        // Best effort: a connection reset already will fail later anyway.
                        let _ = sys::set_nodelay(&fd);
                    }
                    let tls = match &tls {
                        None => None,
                        Some(config) => match TlsConn::new(config) {
                            Ok(t) => Some(Box::new(t)),
                            Err(e) => {
                                log::warn(&format!("! cannot start a TLS session: {e}"));
                                continue;
                            }
                        },
                    };
                    // The address is kept only to be logged.
                    let info = ConnInfo::new(peer, Arc::clone(&self.labels[index]));
                    self.park(Conn::new(fd, info, tls));
                }

                Err(e) => match AcceptFailure::of(e) {
                    AcceptFailure::Empty => return,
                    AcceptFailure::Transient => {}
                    AcceptFailure::Exhausted(e) => {
                        // Never stop for good: pause, then try again.
                        log::warn(&format!(
                        "! accept on {} failed: {e}; pausing {} ms (raise LimitNOFILE= or ulimit -n if this repeats)",
                        self.listeners[index].url,
                            ACCEPT_BACKOFF.as_millis()
                        ));
                        self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                        self.set_accepting(false);
                        return;
                    }
                },
            }
        }
    }

    /// Registers `conn` to wait for its first request: a new connection,
    /// or (at a stop) one that was parked in the pool with part of one.
    fn park(&mut self, conn: Conn) {
        let partial = !conn.buffered().is_empty();
        let deadline = Instant::now()
            + if partial || conn.served() == 0 {
                self.timeouts.first_data
            } else {
                self.timeouts.persistent
            };
        self.watch(Parked::waiting(conn, deadline, partial));
    }

    /// Registers `p` in the reactor's epoll until its bytes come or its
    /// deadline passes.
    fn watch(&mut self, mut p: Parked) {
        let fd = p.conn.fd();
        if self
            .engine
            .reactor_epoll()
            .add(p.conn.as_fd(), EPOLL_READ_ONESHOT, fd as u64)
            .is_err()
        {
            return; // dropping the connection closes it
        }
        p.conn.set_in_reactor(true);
        self.deadlines.insert((p.deadline, fd));
        self.conns.insert(fd, p);
    }

    fn on_ready(&mut self, fd: RawFd) {
        let Some(mut p) = self.conns.remove(&fd) else {
            return;
        };
        self.deadlines.remove(&(p.deadline, fd));
        if let Some((tls, sock)) = p.conn.handshaking_tls() {
            // TLS handshakes run here, never on the acceptor or a pool
            // thread, under the connection's first-data deadline.
            let wait = match tls.handshake_step(sock) {
                Ok(HandshakeState::Done) => None,
                Ok(HandshakeState::WantRead) => Some(EPOLL_READ_ONESHOT),
                Ok(HandshakeState::WantWrite) => Some(EPOLL_WRITE_ONESHOT),
                Err(e) => {
                    // Plain HTTP gets a plain answer (sent without waiting),
                    // not a TLS alert; then, like a bad handshake, the close.
                    if crate::tls::is_plain_http(&e) {
                        crate::tls::answer_plain_http(sock);
                    }
                    return;
                }
            };
            if let Some(events) = wait {
                return self.rearm(fd, p, events);
            }
            // Done: the request may already sit decrypted inside rustls,
            // so read before waiting for the socket again.
        }
        match p.read_available(self.engine.limits()) {
            // Complete, or too large: the pool answers either way.
            Arrived::Request => return self.dispatch(p.conn),
            Arrived::Gone => return, // dropped: closed
            Arrived::Waiting => {}
        }
        if self.is_slow(&p) {
            // Kept, under its deadline, but not armed until the batch.
            if self.slow.is_empty() {
                self.slow_due = Instant::now() + SLOW_BATCH;
            }
            self.slow.push((fd, p.deadline));
            self.deadlines.insert((p.deadline, fd));
            self.conns.insert(fd, p);
            return;
        }
        self.rearm(fd, p, EPOLL_READ_ONESHOT);
    }

    /// Whether `p`, waiting for the rest of a request, is a slow client's
    /// (see `SLOW_AFTER`): its head began longer ago than that. Its
    /// deadline was set `first_data` after the head began (a body being
    /// buffered has `body_timeout` instead: then this guess may be off,
    /// which costs at most one `SLOW_BATCH`).
    fn is_slow(&self, p: &Parked) -> bool {
        if self.engine.stats().is_stopping() {
            return false;
        }
        let began = p.deadline.checked_sub(self.timeouts.first_data);
        began.is_some_and(|b| b.elapsed() > SLOW_AFTER)
    }

    /// Arms every slow client's connection again: each one with bytes
    /// waiting is in the next epoll wait's batch.
    fn rearm_slow(&mut self) {
        for (fd, deadline) in std::mem::take(&mut self.slow) {
            // Gone meanwhile (its deadline passed), perhaps replaced by a
            // new connection with the same number, armed already.
            let Some(p) = self.conns.get(&fd).filter(|p| p.deadline == deadline) else {
                continue;
            };
            let armed =
                self.engine
                    .reactor_epoll()
                    .modify(p.conn.as_fd(), EPOLL_READ_ONESHOT, fd as u64);
            if armed.is_err() {
                if let Some(p) = self.conns.remove(&fd) {
                    self.deadlines.remove(&(p.deadline, fd));
                }
            }
        }
    }

    /// Waits for `events` on a connection the reactor keeps, under its
    /// deadline; one that cannot be re-armed is dropped (closed).
    fn rearm(&mut self, fd: RawFd, p: Parked, events: u32) {
        let armed = self
            .engine
            .reactor_epoll()
            .modify(p.conn.as_fd(), events, fd as u64);
        if armed.is_ok() {
            self.deadlines.insert((p.deadline, fd));
            self.conns.insert(fd, p);
        }
    }

    fn dispatch(&mut self, conn: Conn) {
        if !self.pending.is_empty() {
            self.pending.push_back(conn);
            return;
        }
        if let Err(conn) = self.pool.try_dispatch(conn) {
            // All threads busy and the queue full: hold it, stop accepting
            // so the kernel backlog (and sibling workers) take the load.
            self.engine.set_backlogged(true);
            self.pending.push_back(conn);
            self.set_accepting(false);
        }
    }

    fn flush_pending(&mut self) {
        while let Some(conn) = self.pending.pop_front() {
            if let Err(conn) = self.pool.try_dispatch(conn) {
                self.pending.push_front(conn);
                return;
            }
        }
        self.engine.set_backlogged(false);
        let paused = self.accept_paused_until.is_some_and(|t| t > Instant::now());
        if !paused && !self.engine.stats().is_stopping() {
            if self.accept_paused_until.take().is_some() {
                // A pool thread's accept may have left its listener
                // disarmed for the pause.
                self.engine.rearm_listeners();
            }
            self.set_accepting(true);
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        while let Some(&(deadline, fd)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            expired.extend(self.conns.remove(&fd));
        }
        if now >= self.next_parking_scan() {
            // A connection parked after this scan has a deadline at least
            // the shorter timeout away (or lowers the parking's hint).
            let soonest = now + self.timeouts.first_data.min(self.timeouts.persistent);
            let earliest = self.engine.parking().expire(now, &mut expired);
            self.next_parking_scan = earliest.map_or(soonest, |e| e.min(soonest));
        }
        for mut p in expired {
            if p.outgoing.is_some() {
                // The client took none of its response for write_timeout:
                // dropping closes it.
                continue;
            }
            if p.conn.pooled() && !p.partial {
                // Idle by its deadline, unless a request came that no pool
                // thread has read yet (all busy): then it is not idle.
                match self.reclaim(p.conn, false) {
                    Some(idle) => p.conn = idle,
                    None => continue,
                }
            }
            if p.partial {
                // Part of a request came, the rest did not: say so.
                let bytes = response::error_response(HttpError::Timeout);
                p.conn.send_now(&bytes);
            }
            // Dropping closes; an idle keep-alive connection just closes.
        }
    }

    /// Takes a connection the pool parked back into the reactor when part
    /// or all of a request is there (`partial`, or read now: one may have
    /// just arrived unread); gives it back when it is idle, closed or
    /// failed.
    fn reclaim(&mut self, mut conn: Conn, partial: bool) -> Option<Conn> {
        if !partial && !matches!(conn.read_some(), Ok(n) if n > 0) {
            return Some(conn);
        }
        self.engine.unpool(&mut conn);
        if conn.request_ready(self.engine.limits().max_body) == Progress::Ready {
            self.dispatch(conn);
        } else {
            self.park(conn);
        }
        None
    }

    /// When the pool's parked connections must next be checked.
    fn next_parking_scan(&self) -> Instant {
        self.engine
            .parking()
            .hint()
            .map_or(self.next_parking_scan, |h| h.min(self.next_parking_scan))
    }
}

#[cfg(test)]
mod tests {
    //! The reactor's steps (`park`, `on_ready`, `dispatch`,
    //! `flush_pending`, `expire`, `stop`, taking what a pool thread handed
    //! over) driven one by one from the test thread, with a pool without
    //! threads (max 0): what it hands over stays in the queue for the
    //! test to see, and the test plays the pool threads' accepts.

    use std::io::Write;

    use super::*;
    use crate::connection::testing::{self, pair, served_once, REQUEST};
    use crate::engine::test_engine;
    use crate::response::Outgoing;

    /// A reactor whose new connections get `first_data` for their head.
    fn reactor(queue: usize, first_data: Duration) -> (Reactor, Arc<Engine>) {
        let engine = test_engine(queue);
        let pool = Pool::start(Arc::clone(&engine), 0, 0, 1).expect("pool");
        let timeouts = Timeouts {
            first_data,
            persistent: Duration::from_secs(1000),
            shutdown: Duration::from_secs(1),
        };
        let r = Reactor::new(Vec::new(), pool, Arc::clone(&engine), timeouts).expect("reactor");
        (r, engine)
    }

    fn accept(r: &mut Reactor) -> (RawFd, std::os::unix::net::UnixStream) {
        let (conn, client) = pair();
        let fd = conn.fd();
        r.park(conn);
        (fd, client)
    }

    #[test]
    fn a_head_completed_in_the_reactor_is_queued_for_the_pool() {
        let (mut r, engine) = reactor(4, Duration::from_secs(10));
        let (fd, mut client) = accept(&mut r);
        client.write_all(b"GET / HTTP/1.1\r\n").expect("write");
        r.on_ready(fd);
        assert_eq!(engine.queued(), 0, "half a head stays here");
        assert!(r.conns.contains_key(&fd));
        client.write_all(b"Host: t\r\n\r\n").expect("write");
        r.on_ready(fd);
        assert_eq!(engine.queued(), 1);
        assert!(r.conns.is_empty() && r.deadlines.is_empty());
    }

    #[test]
    fn a_slow_clients_bytes_are_read_in_batches_and_its_head_still_completes() {
        let (mut r, engine) = reactor(4, Duration::from_secs(10));
        let (fd, mut client) = accept(&mut r);
        let ready_in_epoll = |engine: &Engine| {
            let mut events = Events::with_capacity(8);
            engine
                .reactor_epoll()
                .wait(&mut events, Some(Duration::ZERO))
                .expect("wait");
            let ready = events.tokens().any(|t| t == fd as u64);
            ready
        };
        client.write_all(b"GET / HTTP/1.1\r\n").expect("write");
        r.on_ready(fd);
        assert!(r.slow.is_empty(), "a head just begun is not slow");
        // Its head began longer ago than SLOW_AFTER.
        let mut p = r.conns.remove(&fd).expect("kept");
        r.deadlines.remove(&(p.deadline, fd));
        p.deadline -= SLOW_AFTER * 2;
        r.deadlines.insert((p.deadline, fd));
        r.conns.insert(fd, p);
        client.write_all(b"X-a: b\r\n").expect("write");
        assert!(ready_in_epoll(&engine), "armed: its bytes are an event");
        r.on_ready(fd);
        assert_eq!(r.slow.len(), 1, "slow now: kept unarmed until the batch");
        assert!(r.next_timeout().expect("a timeout") <= SLOW_BATCH);
        client.write_all(b"Host: t\r\n\r\n").expect("write");
        assert!(!ready_in_epoll(&engine), "no wake-up for these bytes yet");
        r.rearm_slow();
        assert!(ready_in_epoll(&engine), "the batch's wait has them");
        r.on_ready(fd);
        assert_eq!(engine.queued(), 1, "the complete head goes to the pool");
        assert!(r.conns.is_empty() && r.deadlines.is_empty() && r.slow.is_empty());
    }

    #[test]
    fn a_half_sent_head_is_answered_408_at_its_deadline() {
        let (mut r, engine) = reactor(4, Duration::ZERO);
        let (fd, mut client) = accept(&mut r);
        client.write_all(b"GET / HT").expect("write");
        r.on_ready(fd);
        r.expire();
        assert!(r.conns.is_empty());
        let answer = testing::read_response(&mut client);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(testing::closed(&mut client));
        assert_eq!(engine.queued(), 0);
    }

    #[test]
    fn a_full_queue_holds_connections_and_pauses_accepting_until_a_thread_takes_one() {
        let (mut r, engine) = reactor(1, Duration::from_secs(10));
        let (a, mut ca) = accept(&mut r);
        let (b, mut cb) = accept(&mut r);
        ca.write_all(REQUEST).expect("write");
        cb.write_all(REQUEST).expect("write");
        r.on_ready(a);
        r.on_ready(b);
        assert_eq!((engine.queued(), r.pending.len()), (1, 1));
        assert!(!r.accepting, "the kernel backlog takes the load");
        // A pool thread takes one and, the reactor being backlogged,
        // wakes it.
        assert!(engine.try_take().is_some());
        engine.on_dequeue();
        let mut events = Events::with_capacity(8);
        engine
            .reactor_epoll()
            .wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        assert!(events.tokens().any(|t| t == WAKE_TOKEN), "woken");
        engine.on_wake();
        r.flush_pending();
        assert_eq!((engine.queued(), r.pending.len()), (1, 0));
        assert!(r.accepting);
    }

    #[test]
    fn an_idle_connection_past_its_deadline_is_read_once_before_it_is_closed() {
        let (mut r, engine) = reactor(4, Duration::from_secs(10));
        // Two kept-alive connections parked in the pool, both due.
        let (idle, mut idle_client) = served_once();
        let (busy, mut busy_client) = served_once();
        engine.park(Parked::waiting(idle, Instant::now(), false));
        engine.park(Parked::waiting(busy, Instant::now(), false));
        // A request came on one while every pool thread was busy: its
        // deadline is not idleness.
        busy_client.write_all(REQUEST).expect("write");
        r.expire();
        assert_eq!(engine.parking().len(), 0);
        assert!(testing::closed(&mut idle_client), "the idle one closes");
        assert_eq!(engine.queued(), 1, "the other is served");
        let queued = engine.try_take().expect("queued");
        assert!(!queued.pooled(), "taken out of the pool's epoll");
        drop(busy_client);
    }

    #[test]
    fn a_writer_the_client_does_not_read_is_closed_at_its_deadline() {
        let (mut r, engine) = reactor(4, Duration::from_secs(10));
        let (conn, mut client) = served_once();
        let mut p = Parked::waiting(conn, Instant::now(), false);
        p.outgoing = Some(Box::new(Outgoing::new(b"rest".to_vec(), true)));
        engine.park(p);
        assert_eq!(engine.parking().writers(), 1);
        r.expire();
        assert_eq!(engine.parking().writers(), 0);
        assert!(testing::closed(&mut client));
    }

    #[test]
    fn a_stop_closes_idle_connections_and_answers_requests_already_sent() {
        let (mut r, engine) = reactor(4, Duration::from_secs(10));
        let later = Instant::now() + Duration::from_secs(60);
        let (idle, mut idle_client) = served_once();
        let (sent, mut sent_client) = served_once();
        engine.park(Parked::waiting(idle, later, false));
        engine.park(Parked::waiting(sent, later, false));
        sent_client.write_all(REQUEST).expect("write");
        // A new connection that never sends: closed after the grace.
        let (_fresh, mut fresh_client) = accept(&mut r);
        engine.begin_stop();
        let started = Instant::now();
        let (_listeners, _pool) = r.stop();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "STOP_GRACE bounds it"
        );
        assert!(testing::closed(&mut idle_client));
        assert!(testing::closed(&mut fresh_client));
        assert_eq!(engine.queued(), 1, "the sent request is handed to the pool");
        assert_eq!(engine.parking().len(), 0);
    }

    /// A reactor with one plain unix listener, shared with the pool (the
    /// test thread plays its threads); `first_data` as in [`reactor`].
    fn with_listener(
        first_data: Duration,
    ) -> (
        Reactor,
        Arc<Engine>,
        std::path::PathBuf,
        crate::listeners::testing::SocketFile,
    ) {
        let engine = test_engine(4);
        let pool = Pool::start(Arc::clone(&engine), 0, 0, 1).expect("pool");
        let timeouts = Timeouts {
            first_data,
            persistent: Duration::from_secs(1000),
            shutdown: Duration::from_secs(1),
        };
        let (listener, file) = crate::listeners::testing::unix();
        let r = Reactor::new(vec![listener], pool, Arc::clone(&engine), timeouts).expect("reactor");
        assert_eq!(r.by_pool, [true], "a plain listener is the pool's");
        (r, engine, file.0.clone(), file)
    }

    fn connect(path: &std::path::Path) -> std::os::unix::net::UnixStream {
        let c = std::os::unix::net::UnixStream::connect(path).expect("connect");
        c.set_read_timeout(Some(testing::EVENT_DEADLINE))
            .expect("timeout");
        c
    }

    /// A pool thread's step: the listener's event, then its accept.
    fn pool_accepts(engine: &Engine) {
        let mut events = Events::with_capacity(4);
        engine
            .pool_wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        let token = events.tokens().next().expect("the listener is ready");
        let index = crate::engine::listener_index(token).expect("a listener's token");
        crate::serve::on_accept_ready(engine, index);
    }

    #[test]
    fn a_connection_a_pool_thread_handed_over_waits_here_and_is_queued_once_complete() {
        let (mut r, engine, path, _file) = with_listener(Duration::from_secs(10));
        let mut client = connect(&path);
        client.write_all(b"GET / HTTP/1.1\r\n").expect("write");
        pool_accepts(&engine);
        // Handed over: the reactor is woken and registers it.
        let mut events = Events::with_capacity(8);
        engine
            .reactor_epoll()
            .wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        assert!(events.tokens().any(|t| t == WAKE_TOKEN), "woken");
        r.on_wake();
        assert_eq!(r.conns.len(), 1);
        let (&fd, p) = r.conns.iter().next().expect("registered");
        assert!(p.conn.in_reactor() && p.partial);
        // The rest comes: queued for the pool, which answers it.
        client.write_all(b"Host: t\r\n\r\n").expect("write");
        r.on_ready(fd);
        assert_eq!(engine.queued(), 1);
        assert!(r.conns.is_empty() && r.deadlines.is_empty());
        crate::serve::serve(&engine, engine.try_take().expect("queued"));
        assert!(testing::read_response(&mut client).starts_with("HTTP/1.1 200"));
        // Kept alive: out of the reactor's epoll, into the pool's.
        assert_eq!(engine.parking().len(), 1);
    }

    #[test]
    fn a_stop_takes_the_listeners_back_and_gives_new_connections_the_grace() {
        let (r, engine, path, _file) = with_listener(Duration::from_millis(200));
        // Accepted by a pool thread before the stop: one whose request
        // came after the accept, one that has sent nothing yet, and one
        // with half a head (handed over, not yet taken by the reactor).
        let mut sent = connect(&path);
        pool_accepts(&engine);
        let mut silent = connect(&path);
        pool_accepts(&engine);
        let mut half = connect(&path);
        half.write_all(b"GET / HT").expect("write");
        pool_accepts(&engine);
        assert_eq!(engine.parking().len(), 2);
        sent.write_all(REQUEST).expect("write");
        // The silent one sends its request once the stop has taken the
        // parked connections back: during the grace.
        let watched = Arc::clone(&engine);
        let late_sender = std::thread::spawn(move || {
            let deadline = Instant::now() + testing::EVENT_DEADLINE;
            while watched.parking().len() > 0 {
                assert!(Instant::now() < deadline, "the stop never took them");
                std::thread::yield_now();
            }
            silent.write_all(REQUEST).expect("write");
            silent
        });
        engine.begin_stop();
        let (listeners, _pool) = r.stop();
        let _silent = late_sender.join().expect("the late sender");
        assert_eq!(listeners.len(), 1, "given back for the exec or the close");
        assert!(engine.listener(0).is_none(), "the pool let go of it");
        assert_eq!(engine.queued(), 2, "both requests are answered");
        assert_eq!(engine.parking().len(), 0);
        // The half head had the grace (min(first_data, STOP_GRACE)), then
        // was closed; the other two wait in the queue for the pool.
        assert!(testing::closed(&mut half));
        // A new connection is not accepted: it waits in the backlog.
        let _late = connect(&path);
        let mut events = Events::with_capacity(4);
        engine
            .pool_wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        assert_eq!(events.tokens().next(), None);
        // Handed over after the stop: closed, not kept.
        let (conn, mut client) = pair();
        engine.hand_to_reactor(Parked::waiting(conn, Instant::now(), false));
        assert!(engine.take_handed(false).is_empty());
        assert!(testing::closed(&mut client));
    }
}
