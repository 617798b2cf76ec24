//! The thread pool: between `min` and `max` threads. A thread takes
//! connections with a complete request head from one bounded crossbeam
//! channel (filled by the reactor), and, when the channel is empty, waits
//! in the pool's epoll for the next request of a parked keep-alive
//! connection (see `parking`). Threads are spawned on demand up to `max`
//! and trimmed back to `min` after [`IDLE_THREAD_TIMEOUT`] without work.
//! The channel's bound is the backpressure: when it is full the reactor
//! stops accepting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Conn;
use crate::engine::{Engine, ThreadSlot};
use crate::log;
use crate::serve;
use crate::sys::Events;

/// A thread above `min` that waited this long for work exits (Puma trims
/// idle threads every 30 s).
pub const IDLE_THREAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Queued connections (each with a complete request) allowed per pool
/// thread before the reactor stops accepting. Measured on 2 cores, small
/// keep-alive at 64 connections, -t 5:5: 1 → 55k req/s, 4 → 72k, 8 →
/// 89k, 16 → 90k; below 8 the reactor is woken for every dequeue. Deeper
/// queues delay the backpressure that lets sibling workers take load.
pub const QUEUE_PER_THREAD: usize = 8;
/// The doorbell's token in the pool's epoll (connections use their
/// `Conn::token`, a generation above a non-negative fd: never all ones).
const DOORBELL_TOKEN: u64 = u64::MAX;
/// How many threads wait in the pool's epoll at once: the CPUs this
/// process may use, shared among the cluster's workers (at least one);
/// the other idle threads wait on the queue. With every idle thread
/// waiting there, each was woken for its own event: 0.85 task switches
/// per request, a third of the CPU on 2 cores. With fewer, events that
/// arrive while the waiters serve wait in epoll's ready list for the next
/// free thread. Measured on 2 cores (bench/run, 3 rounds): 1 waiter per
/// process is best for the cluster row, 2 for single mode.
pub fn epoll_waiters(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / workers.max(1)).max(1)
}
/// How often a thread waiting on the queue checks whether the epoll
/// waiter has left to serve (then it takes its place). Bounds the delay a
/// parked connection sees when the thread that would take its event is
/// busy with a slow request.
const FOLLOWER_POLL: Duration = Duration::from_millis(1);
/// The same while no request is being served: the longest such a delay
/// can be (a slow request arriving on an idle server, then another).
const FOLLOWER_IDLE_POLL: Duration = Duration::from_millis(50);
/// Pause after a failed epoll_wait before trying again.
const WAIT_RETRY: Duration = Duration::from_millis(100);

/// The reactor's handle on the pool.
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Arc<Engine>,
    min: usize,
    max: usize,
    /// See [`epoll_waiters`].
    epoll_waiters: usize,
}

impl Pool {
    /// Starts `min` threads. Call only after every fork.
    pub fn start(
        engine: Arc<Engine>,
        min: usize,
        max: usize,
        epoll_waiters: usize,
    ) -> std::io::Result<Pool> {
        engine.watch_doorbell(DOORBELL_TOKEN)?;
        let shared = Arc::new(Shared {
            engine,
            min,
            max,
            epoll_waiters,
        });
        for _ in 0..min {
            spawn(&shared);
        }
        Ok(Pool { shared })
    }

    /// Queues a connection; gives it back when the queue is full.
    pub fn try_dispatch(&self, conn: Conn) -> Result<(), Conn> {
        let r = self.shared.engine.enqueue(conn);
        self.grow_if_needed();
        r
    }

    /// Queues a connection, waiting up to `timeout` for room (used while
    /// stopping, to hand over requests already received).
    pub fn dispatch_wait(&self, conn: Conn, timeout: Duration) {
        self.grow_if_needed();
        self.shared.engine.enqueue_wait(conn, timeout);
    }

    /// Connections queued and not yet taken by a thread.
    pub fn queued(&self) -> usize {
        self.shared.engine.queued()
    }

    fn grow_if_needed(&self) {
        let stats = self.shared.engine.stats();
        let idle = stats.threads().saturating_sub(stats.busy());
        if self.shared.engine.queued() > idle {
            spawn(&self.shared);
        }
    }
}

impl Drop for Pool {
    /// The engine is done: threads exit once idle.
    fn drop(&mut self) {
        self.shared.engine.retire();
    }
}

/// Starts one more thread unless `max` are running.
fn spawn(shared: &Arc<Shared>) {
    let Some(mut slot) = shared.engine.add_thread(shared.max) else {
        return;
    };
    let mine = Arc::clone(shared);
    // The slot moves into the thread: the count goes down when the thread
    // leaves, panics, or (the closure dropped) never starts.
    let spawned = std::thread::Builder::new()
        .name("catamount-pool".into())
        .spawn(move || worker_loop(&mine, &mut slot));
    if let Err(e) = spawned {
        log::warn(&format!(
            "! could not start a pool thread: {e}; serving with the threads running"
        ));
    }
}

fn worker_loop(shared: &Arc<Shared>, slot: &mut ThreadSlot) {
    let engine = &*shared.engine;
    let stats = engine.stats();
    let mut events = Events::with_capacity(1);
    let mut idle_since = Instant::now();
    // After a queued connection, look at the parked ones first, so that
    // neither kind starves the other when the pool is saturated.
    let mut parked_first = false;
    loop {
        if std::mem::take(&mut parked_first) && serve_ready_now(shared, &mut events) {
            idle_since = Instant::now();
            continue;
        }
        if let Some(conn) = engine.try_take() {
            idle_since = Instant::now();
            serve_queued(engine, conn);
            parked_first = true;
            continue;
        }
        if engine.is_retired() {
            return; // the slot, dropped, counts this thread out
        }
        if stats.waiting() >= shared.epoll_waiters {
            // Enough threads wait in the pool's epoll. Take an event that
            // is ready without waiting for it (never sleep while work is
            // pending)...
            if serve_ready_now(shared, &mut events) {
                idle_since = Instant::now();
                continue;
            }
            // ...else wait for a queued connection here, and look again
            // every FOLLOWER_POLL (if the waiters took events and are still
            // serving them, this thread takes a place). While nothing is
            // being served nothing can hold the waiters: look rarely (an
            // idle server stays idle).
            let poll = if stats.busy() > 0 {
                FOLLOWER_POLL
            } else {
                FOLLOWER_IDLE_POLL
            };
            match engine.take_timeout(poll) {
                Some(conn) => {
                    idle_since = Instant::now();
                    serve_queued(engine, conn);
                    parked_first = true;
                }
                None if idle_since.elapsed() >= IDLE_THREAD_TIMEOUT => {
                    if trim(shared, slot) {
                        return;
                    }
                    idle_since = Instant::now();
                }
                None => {}
            }
            continue;
        }
        let waiting = engine.start_waiting();
        // A connection queued after the try_take above is either seen
        // here or rings the doorbell (see `Engine::start_waiting`).
        let queued = engine.try_take();
        let waited = if queued.is_none() {
            engine.pool_wait(&mut events, Some(IDLE_THREAD_TIMEOUT))
        } else {
            Ok(())
        };
        let still_waiting = waiting.leave();
        idle_since = Instant::now();
        if let Some(conn) = queued {
            serve_queued(engine, conn);
            parked_first = true;
            continue;
        }
        if let Err(e) = waited {
            log::warn(&format!(
                "! epoll_wait in a pool thread failed: {e}; retrying"
            ));
            std::thread::sleep(WAIT_RETRY);
            continue;
        }
        match events.tokens().next() {
            None => {
                if trim(shared, slot) {
                    return;
                }
            }
            Some(token) => on_event(shared, token, still_waiting),
        }
    }
}

fn serve_queued(engine: &Engine, conn: Conn) {
    engine.on_dequeue();
    serve::serve(engine, conn);
}

/// Handles an event the pool's epoll has ready now, without waiting;
/// false when none is.
fn serve_ready_now(shared: &Arc<Shared>, events: &mut Events) -> bool {
    let engine = &shared.engine;
    if engine.pool_wait(events, Some(Duration::ZERO)).is_err() {
        return false;
    }
    let Some(token) = events.tokens().next() else {
        return false;
    };
    on_event(shared, token, engine.stats().waiting());
    true
}

/// One event from the pool's epoll: the doorbell (the queue is looked at
/// next), or a parked connection's bytes. `still_waiting`: threads left
/// waiting in the pool's epoll.
fn on_event(shared: &Arc<Shared>, token: u64, still_waiting: usize) {
    let engine = &*shared.engine;
    let stats = engine.stats();
    if token == DOORBELL_TOKEN {
        engine.answer_doorbell();
        return;
    }
    let idle_others = stats.threads().saturating_sub(stats.busy() + 1);
    if still_waiting == 0 && idle_others == 0 {
        // Keep a thread free for the other parked connections while this
        // one serves.
        spawn(shared);
    }
    serve::on_parked_ready(engine, token);
}

/// After [`IDLE_THREAD_TIMEOUT`] without work: true when this thread may
/// leave: not below min, not while connections are queued (one queued as
/// this thread decided may have found no thread to start), and not when
/// connections are parked and no other thread waits in the pool's epoll.
fn trim(shared: &Shared, slot: &mut ThreadSlot) -> bool {
    let engine = &shared.engine;
    if !engine.queue_is_empty() {
        return false;
    }
    let unwatched = engine.parking().len() > 0 && engine.stats().waiting() == 0;
    if unwatched || !slot.leave_above(shared.min) {
        return false;
    }
    if !engine.queue_is_empty() {
        // Queued meanwhile: stay (the reactor may have seen no room to
        // start a thread for it).
        slot.rejoin();
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    //! The pool's threads against the doorbell and the parking, and its
    //! trimming rule, over socketpairs. Every wait ends on an event (a
    //! response, a counter reaching its value) or fails at a deadline far
    //! below IDLE_THREAD_TIMEOUT, the delay a lost doorbell ring costs.

    use std::io::Write;

    use super::*;
    use crate::connection::testing::{
        pair, read_response, read_responses, served_once, EVENT_DEADLINE, REQUEST,
    };
    use crate::connection::Progress;
    use crate::engine::test_engine;
    use crate::parking::Parked;

    /// Waits until `cond` holds, failing after `EVENT_DEADLINE`.
    fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + EVENT_DEADLINE;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_thread_asleep_in_the_pool_epoll_wakes_for_a_queued_connection() {
        let engine = test_engine(8);
        let pool = Pool::start(Arc::clone(&engine), 1, 1, 1).expect("pool");
        // The one thread goes to sleep in the pool's epoll (nothing queued,
        // nothing parked): only the doorbell can wake it in time.
        until("the thread to wait in epoll", || {
            engine.stats().waiting() == 1
        });
        let (mut conn, mut client) = pair();
        client.write_all(REQUEST).expect("write");
        while matches!(conn.read_some(), Ok(n) if n > 0) {}
        assert_eq!(conn.request_ready(1 << 20), Progress::Ready);
        assert!(pool.try_dispatch(conn).is_ok());
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        // Then parked in the pool's epoll: its next request wakes the
        // thread waiting there, with no other thread involved.
        until("the connection to be parked", || {
            engine.parking().len() == 1
        });
        client.write_all(REQUEST).expect("write");
        assert!(read_response(&mut client).starts_with("HTTP/1.1 200"));
        // Counted just after the answer leaves.
        until("two requests counted", || engine.stats().requests() == 2);
        drop(pool);
        until("the thread to leave", || engine.stats().threads() == 0);
    }

    #[test]
    fn a_pipelined_request_is_served_inline_and_the_busy_guard_falls() {
        let engine = test_engine(8);
        let pool = Pool::start(Arc::clone(&engine), 1, 1, 1).expect("pool");
        let (mut conn, mut client) = pair();
        client
            .write_all(&[REQUEST, REQUEST].concat())
            .expect("write");
        while matches!(conn.read_some(), Ok(n) if n > 0) {}
        assert_eq!(conn.request_ready(1 << 20), Progress::Ready);
        assert!(pool.try_dispatch(conn).is_ok());
        for response in read_responses(&mut client, 2) {
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
        until("the connection to be parked", || {
            engine.parking().len() == 1
        });
        // The guard falls just after the connection is parked.
        until("the busy guard to fall", || engine.stats().busy() == 0);
        assert_eq!(engine.stats().reading(), 0);
        drop(pool);
    }

    #[test]
    fn dropping_the_pool_lets_every_idle_thread_leave_and_the_engine_go() {
        let engine = test_engine(8);
        let pool = Pool::start(Arc::clone(&engine), 3, 3, 1).expect("pool");
        // One waits in epoll, two on the queue (followers).
        until("one epoll waiter", || engine.stats().waiting() == 1);
        assert_eq!(engine.stats().threads(), 3);
        drop(pool);
        until("the threads to leave", || engine.stats().threads() == 0);
        // A hot restart drops the engine in the main thread once the
        // threads let go of it (serving::release_engine).
        until("the threads to drop the engine", || {
            Arc::strong_count(&engine) == 1
        });
    }

    fn shared(min: usize) -> (Arc<Shared>, ThreadSlot, ThreadSlot) {
        let engine = test_engine(8);
        let a = engine.add_thread(4).expect("a");
        let b = engine.add_thread(4).expect("b");
        let shared = Arc::new(Shared {
            engine,
            min,
            max: 4,
            epoll_waiters: 1,
        });
        (shared, a, b)
    }

    #[test]
    fn an_idle_thread_above_min_is_trimmed_once() {
        let (shared, mut a, mut b) = shared(1);
        assert!(trim(&shared, &mut a));
        drop(a);
        assert!(!trim(&shared, &mut b), "the last one above min stays");
        assert_eq!(shared.engine.stats().threads(), 1);
    }

    #[test]
    fn no_thread_is_trimmed_while_a_connection_is_queued() {
        let (shared, mut a, _b) = shared(0);
        let (conn, _client) = pair();
        shared.engine.enqueue(conn).map_err(drop).expect("queued");
        assert!(!trim(&shared, &mut a));
        assert_eq!(shared.engine.stats().threads(), 2);
    }

    #[test]
    fn the_last_watcher_of_parked_connections_is_not_trimmed() {
        let (shared, mut a, _b) = shared(0);
        let (conn, _client) = served_once();
        let deadline = Instant::now() + Duration::from_secs(60);
        shared.engine.park(Parked::waiting(conn, deadline, false));
        assert_eq!(shared.engine.parking().len(), 1);
        assert!(!trim(&shared, &mut a), "nobody else waits in epoll");
        let waiting = shared.engine.start_waiting();
        assert!(trim(&shared, &mut a), "another thread watches them");
        waiting.leave();
    }
}
