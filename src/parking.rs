//! Keep-alive connections between requests, shared by the pool threads.
//!
//! After a pool thread answers a request it parks the connection here and
//! re-arms its one-shot registration in the pool's epoll; the next request
//! wakes whichever pool thread waits there, which takes the connection out
//! and serves it. No other thread sits between two requests of a
//! keep-alive connection (the hand-off to and from the reactor cost two
//! wake-ups per request). The reactor enforces the deadlines: it scans the
//! parked connections when the earliest deadline can have passed.
//!
//! A response the client does not take at once waits here too, with its
//! unsent rest (`Parked::outgoing`) and an EPOLLOUT registration: the
//! next pool thread its event wakes sends more, without waiting, so a
//! client that reads slowly holds no thread (issue 11).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::connection::{Conn, Limits, Progress};
use crate::response::Outgoing;

/// Independent locks, so pool threads parking and taking different
/// connections rarely wait for each other.
const SHARDS: usize = 16;

/// A connection waiting for bytes, wherever it waits.
pub struct Parked {
    pub conn: Conn,
    pub deadline: Instant,
    /// Part of a request has arrived (the first-data or body deadline
    /// applies).
    pub partial: bool,
    /// The unsent rest of a response: the connection waits to be
    /// writable, under the write deadline.
    pub outgoing: Option<Box<Outgoing>>,
}

/// What [`Parked::read_available`] found.
pub enum Arrived {
    /// A request the pool can serve without waiting for the client is
    /// buffered: its head and a body of up to
    /// `connection::BUFFERED_BODY_MAX` (or a head to refuse).
    Request,
    /// Wait for more bytes.
    Waiting,
    /// The client closed, or reading failed: drop the connection.
    Gone,
}

impl Parked {
    /// A connection waiting for its next request (`partial`: part of one
    /// is buffered already).
    pub fn waiting(conn: Conn, deadline: Instant, partial: bool) -> Parked {
        Parked {
            conn,
            deadline,
            partial,
            outgoing: None,
        }
    }

    /// Reads what the socket has, until a request is ready (see
    /// [`Arrived::Request`]) or nothing more is there. A head that starts
    /// on a kept-alive connection gets `first_data_timeout` from now to
    /// arrive in full (a new connection keeps the deadline set at
    /// accept); a body buffered before dispatch gets `body_timeout` from
    /// the end of its head.
    pub fn read_available(&mut self, limits: &Limits) -> Arrived {
        let mut progress = Progress::Head;
        loop {
            match self.conn.read_some() {
                Ok(0) => return Arrived::Gone,
                Ok(_) => {
                    progress = self.conn.request_ready(limits.max_body);
                    if progress == Progress::Ready {
                        return Arrived::Request;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Arrived::Gone,
            }
        }
        if progress == Progress::Body && self.conn.start_body_wait() {
            self.partial = true;
            self.deadline = Instant::now() + limits.body_timeout;
        } else if !self.partial && !self.conn.buffered().is_empty() {
            self.partial = true;
            if self.conn.served() > 0 {
                self.deadline = Instant::now() + limits.first_data_timeout;
            }
        }
        Arrived::Waiting
    }
}

/// The parked connections, by file descriptor.
pub struct Parking {
    /// Keyed by descriptor number, as the pool's epoll tokens name them
    /// (`engine::token_fd`): the `Conn` in the value owns the socket, and
    /// the token's generation tells a reused number from the parked one.
    shards: Vec<Mutex<HashMap<RawFd, Parked>>>,
    count: AtomicUsize,
    /// Of `count`, the connections with a response to finish.
    writers: AtomicUsize,
    /// The earliest deadline parked since the last scan, in nanoseconds
    /// after `base` (u64::MAX: none): a connection re-parked with an old
    /// deadline while a scan was under way is not overlooked.
    hint: AtomicU64,
    base: Instant,
}

impl Default for Parking {
    fn default() -> Parking {
        Parking {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            count: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            hint: AtomicU64::new(u64::MAX),
            base: Instant::now(),
        }
    }
}

impl Parking {
    fn shard(&self, fd: RawFd) -> MutexGuard<'_, HashMap<RawFd, Parked>> {
        // A panic while holding a shard leaves a consistent map (every
        // operation is one insert or remove): keep using it.
        self.shards[fd as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a connection whose epoll registration is armed already (or
    /// that nothing wakes: the tests').
    #[cfg(test)]
    pub fn put(&self, p: Parked) {
        let parked = self.put_armed(p, |_| Ok(()));
        assert!(parked.is_ok(), "arming nothing cannot fail");
    }

    /// Parks a connection, then arms its epoll registration with `arm`,
    /// holding its shard's lock: the thread the event wakes finds it (it
    /// waits for the lock), and no other thread can take it (and close
    /// it, and a new connection get its number) before `arm` ran on its
    /// socket. When `arm` fails the connection is dropped (closed: nothing
    /// would wake it) and the error returned.
    pub fn put_armed(
        &self,
        p: Parked,
        arm: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let fd = p.conn.fd();
        let at = p.deadline.saturating_duration_since(self.base).as_nanos();
        if p.outgoing.is_some() {
            self.writers.fetch_add(1, Ordering::AcqRel);
        }
        self.count.fetch_add(1, Ordering::AcqRel);
        let mut map = self.shard(fd);
        // An fd is parked once: it is taken out before it is parked again.
        if let Some(old) = map.insert(fd, p) {
            self.forget(&old);
        }
        let armed = map.get(&fd).map_or(Ok(()), |p| arm(p.conn.as_fd()));
        if let Err(e) = armed {
            if let Some(p) = map.remove(&fd) {
                self.forget(&p);
            }
            return Err(e);
        }
        drop(map);
        let at = u64::try_from(at).unwrap_or(u64::MAX - 1);
        // Usually later than the hint: read, do not write, the shared line.
        if at < self.hint.load(Ordering::Acquire) {
            self.hint.fetch_min(at, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Takes the connection an event announced (`token`: its
    /// `Conn::token`); `None` when the reactor expired it meanwhile, or
    /// when the event was stale and the fd number now belongs to another
    /// connection.
    pub fn take(&self, fd: RawFd, token: u64) -> Option<Parked> {
        let mut map = self.shard(fd);
        if map.get(&fd)?.conn.token() != token {
            return None;
        }
        let p = map.remove(&fd)?;
        self.forget(&p);
        Some(p)
    }

    /// Moves the connections of one shard's `map` that `pick` chooses
    /// into `out`.
    fn remove_where(
        &self,
        map: &mut HashMap<RawFd, Parked>,
        pick: impl Fn(&Parked) -> bool,
        out: &mut Vec<Parked>,
    ) {
        let fds: Vec<RawFd> = map
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(&fd, _)| fd)
            .collect();
        for fd in fds {
            if let Some(p) = map.remove(&fd) {
                self.forget(&p);
                out.push(p);
            }
        }
    }

    /// Counts `p` out, as it leaves the map.
    fn forget(&self, p: &Parked) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        if p.outgoing.is_some() {
            self.writers.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Connections parked with a response to finish (a graceful stop
    /// waits for them, bounded by shutdown_timeout).
    pub fn writers(&self) -> usize {
        self.writers.load(Ordering::Acquire)
    }

    /// The earliest deadline parked since the last [`Parking::expire`].
    pub fn hint(&self) -> Option<Instant> {
        match self.hint.load(Ordering::Acquire) {
            u64::MAX => None,
            n => Some(self.base + std::time::Duration::from_nanos(n)),
        }
    }

    /// Connections parked right now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Removes the connections whose deadline is at or before `now` into
    /// `out`; returns the earliest deadline of those that stay.
    pub fn expire(&self, now: Instant, out: &mut Vec<Parked>) -> Option<Instant> {
        // Cleared first: what is parked from now on sets it again.
        self.hint.store(u64::MAX, Ordering::Release);
        let mut earliest: Option<Instant> = None;
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            self.remove_where(&mut map, |p| p.deadline <= now, out);
            if let Some(d) = map.values().map(|p| p.deadline).min() {
                earliest = Some(earliest.map_or(d, |e| e.min(d)));
            }
        }
        earliest
    }

    /// Removes every parked connection that waits for a request (at a
    /// stop); those finishing a response stay, for the pool to finish.
    pub fn take_all(&self) -> Vec<Parked> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            self.remove_where(&mut map, |p| p.outgoing.is_none(), &mut all);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    //! The parking's bookkeeping (tokens, deadlines, the hint, writers) and
    //! what a parked connection's read finds, over socketpairs.

    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::*;
    use crate::connection::testing::{self, pair, served_once, REQUEST};
    use crate::response::Outgoing;

    const SECOND: Duration = Duration::from_secs(1);

    /// Parks a kept-alive connection under `generation` with `deadline`.
    /// Returns its fd, its token, and the client's end.
    fn park(parking: &Parking, generation: u64, deadline: Instant) -> (RawFd, u64, UnixStream) {
        let (mut conn, client) = served_once();
        let fd = conn.fd();
        let token = (generation << 32) | fd as u64;
        conn.enter_pool(token);
        parking.put(Parked::waiting(conn, deadline, false));
        (fd, token, client)
    }

    #[test]
    fn a_stale_token_cannot_take_a_newer_connection_on_the_same_fd() {
        let parking = Parking::default();
        let (fd, token, _client) = park(&parking, 7, Instant::now() + SECOND);
        let stale = (6 << 32) | fd as u64;
        assert!(parking.take(fd, stale).is_none());
        assert_eq!(parking.len(), 1, "still parked");
        assert!(parking.take(fd, token).is_some());
        assert!(parking.take(fd, token).is_none(), "taken once");
        assert_eq!(parking.len(), 0);
    }

    #[test]
    fn expire_takes_what_is_due_and_names_the_next_deadline() {
        let parking = Parking::default();
        let now = Instant::now();
        let _clients: Vec<_> = [
            (1, now + SECOND),
            (2, now + 2 * SECOND),
            (3, now + 3 * SECOND),
        ]
        .into_iter()
        .map(|(g, at)| park(&parking, g, at).2)
        .collect();
        let mut out = Vec::new();
        let next = parking.expire(now + SECOND, &mut out);
        assert_eq!(out.len(), 1, "a deadline at `now` is due");
        assert_eq!(next, Some(now + 2 * SECOND));
        assert_eq!(parking.len(), 2);
        out.clear();
        assert_eq!(parking.expire(now + 10 * SECOND, &mut out), None);
        assert_eq!((out.len(), parking.len()), (2, 0));
    }

    #[test]
    fn the_hint_is_the_earliest_deadline_parked_since_the_last_scan() {
        let parking = Parking::default();
        let now = Instant::now();
        assert_eq!(parking.hint(), None);
        let _a = park(&parking, 1, now + 5 * SECOND);
        let near = |h: Option<Instant>, want: Instant| {
            let h = h.expect("a hint");
            h.max(want) - h.min(want) < Duration::from_micros(1)
        };
        assert!(near(parking.hint(), now + 5 * SECOND));
        let _b = park(&parking, 2, now + 9 * SECOND);
        assert!(
            near(parking.hint(), now + 5 * SECOND),
            "a later one leaves it"
        );
        let _c = park(&parking, 3, now + 2 * SECOND);
        assert!(
            near(parking.hint(), now + 2 * SECOND),
            "an earlier one lowers it"
        );
        // A scan clears it: what stays is reported by expire itself.
        let mut out = Vec::new();
        parking.expire(now, &mut out);
        assert_eq!(parking.hint(), None);
        // A connection re-parked with an old deadline after the scan is
        // not overlooked.
        let _d = park(&parking, 4, now);
        assert!(near(parking.hint(), now));
    }

    #[test]
    fn writers_are_counted_and_stay_when_a_stop_takes_the_waiting_ones() {
        let parking = Parking::default();
        let _waiting = park(&parking, 1, Instant::now() + SECOND);
        let (mut conn, _client) = served_once();
        let fd = conn.fd();
        conn.enter_pool(fd as u64);
        let mut p = Parked::waiting(conn, Instant::now() + SECOND, false);
        p.outgoing = Some(Box::new(Outgoing::new(b"rest".to_vec(), true)));
        parking.put(p);
        assert_eq!((parking.len(), parking.writers()), (2, 1));
        let taken = parking.take_all();
        assert_eq!(taken.len(), 1);
        assert!(taken[0].outgoing.is_none());
        assert_eq!((parking.len(), parking.writers()), (1, 1));
        assert!(parking.take(fd, fd as u64).is_some());
        assert_eq!((parking.len(), parking.writers()), (0, 0));
    }

    #[test]
    fn a_head_arriving_in_pieces_waits_then_is_a_request() {
        let limits = testing::limits();
        let (conn, mut client) = served_once();
        let idle_deadline = Instant::now() + limits.persistent_timeout;
        let mut p = Parked::waiting(conn, idle_deadline, false);
        client.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
        assert!(matches!(p.read_available(&limits), Arrived::Waiting));
        // Its head has first_data_timeout (10 s) from now, not the idle
        // deadline (1000 s).
        assert!(p.partial);
        assert!(p.deadline < Instant::now() + limits.first_data_timeout + SECOND);
        client.write_all(b"st: t\r\n\r\n").expect("write");
        assert!(matches!(p.read_available(&limits), Arrived::Request));
    }

    #[test]
    fn a_small_body_is_awaited_under_the_body_deadline() {
        let limits = testing::limits();
        let (conn, mut client) = pair();
        let first_data = Instant::now() + limits.first_data_timeout;
        let mut p = Parked::waiting(conn, first_data, false);
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
            .expect("write");
        assert!(matches!(p.read_available(&limits), Arrived::Waiting));
        let left = p.deadline.saturating_duration_since(Instant::now());
        assert!(left > 90 * SECOND, "body_timeout (100 s) applies: {left:?}");
        client.write_all(b"cd").expect("write");
        assert!(matches!(p.read_available(&limits), Arrived::Request));
    }

    #[test]
    fn a_closed_client_is_gone_and_an_idle_one_waits() {
        let limits = testing::limits();
        let (conn, client) = served_once();
        let mut p = Parked::waiting(conn, Instant::now() + SECOND, false);
        assert!(matches!(p.read_available(&limits), Arrived::Waiting));
        assert!(!p.partial, "nothing came: still idle");
        drop(client);
        assert!(matches!(p.read_available(&limits), Arrived::Gone));
        let (conn, mut client) = pair();
        let mut p = Parked::waiting(conn, Instant::now() + SECOND, false);
        client.write_all(REQUEST).expect("write");
        assert!(matches!(p.read_available(&limits), Arrived::Request));
    }
}
