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
