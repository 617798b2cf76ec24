//! The thread pool: between `min` and `max` threads. A thread takes
//! connections with a complete request head from one bounded crossbeam
//! channel (filled by the reactor), and, when the channel is empty, waits
//! in the pool's epoll for the next request of a parked keep-alive
//! connection (see `parking`). Threads are spawned on demand up to `max`
//! and trimmed back to `min` after [`IDLE_THREAD_TIMEOUT`] without work.
//! The channel's bound is the backpressure: when it is full the reactor
//! stops accepting.

use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::{self, Conn, Engine};
use crate::log;
use crate::sys::{Events, EPOLL_READ};

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

/// Counters shared by the pool, the reactor and the main loop.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pool threads alive.
    pub threads: AtomicUsize,
    /// Threads blocked waiting for a connection.
    pub waiting: AtomicUsize,
    /// Threads serving a request right now.
    pub busy: AtomicUsize,
    /// Requests answered since start.
    pub requests: AtomicU64,
    /// Bumped by the reactor on every loop turn; the main loop pings the
    /// systemd watchdog only while it moves.
    pub heartbeat: AtomicU64,
    /// Connections with a complete request that the reactor holds
    /// because the pool's queue was full (stored each reactor turn).
    /// [`Engine::backlog`] counts every connection waiting for a thread.
    pub held: AtomicUsize,
    /// Set at the start of a graceful stop: answer in-flight requests with
    /// `Connection: close`, hand nothing back to the reactor.
    pub stopping: AtomicBool,
}

impl Engine {
    /// Connections with a complete request waiting for a thread (Puma's
    /// `backlog`): those in the pool's queue now, plus those the reactor
    /// holds while the queue is full. Read live, not stored by the
    /// reactor: it may sleep for seconds after queueing a connection,
    /// and a stored count would still show it after a thread took it.
    pub fn backlog(&self) -> usize {
        self.queue.len() + self.stats.held.load(Ordering::Relaxed)
    }
}

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
        engine
            .pool_epoll
            .add(engine.doorbell.as_raw_fd(), EPOLL_READ, DOORBELL_TOKEN)?;
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
        let engine = &self.shared.engine;
        if engine.queue.send_timeout(conn, timeout).is_ok() {
            engine.ring();
        }
    }

    /// Connections queued and not yet taken by a thread.
    pub fn queued(&self) -> usize {
        self.shared.engine.queue.len()
    }

    fn grow_if_needed(&self) {
        let stats = &self.shared.engine.stats;
        let idle = stats
            .threads
            .load(Ordering::Acquire)
            .saturating_sub(stats.busy.load(Ordering::Acquire));
        if self.shared.engine.queue.len() > idle {
            spawn(&self.shared);
        }
    }
}

impl Drop for Pool {
    /// The engine is done: threads exit once idle.
    fn drop(&mut self) {
        let engine = &self.shared.engine;
        engine.retired.store(true, Ordering::Release);
        for _ in 0..engine.stats.threads.load(Ordering::Acquire) {
            engine.doorbell.notify();
        }
    }
}

/// Starts one more thread unless `max` are running.
fn spawn(shared: &Arc<Shared>) {
    let stats = &shared.engine.stats;
    let max = shared.max;
    if stats
        .threads
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_err()
    {
        return;
    }
    let mine = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("catamount-pool".into())
        .spawn(move || worker_loop(&mine));
    if let Err(e) = spawned {
        stats.threads.fetch_sub(1, Ordering::AcqRel);
        log::warn(&format!(
            "! could not start a pool thread: {e}; serving with the threads running"
        ));
    }
}

fn worker_loop(shared: &Arc<Shared>) {
    let engine = &*shared.engine;
    let stats = &engine.stats;
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
        if let Ok(conn) = engine.jobs.try_recv() {
            idle_since = Instant::now();
            serve_queued(engine, conn);
            parked_first = true;
            continue;
        }
        if engine.retired.load(Ordering::Acquire) {
            stats.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        if stats.waiting.load(Ordering::SeqCst) >= shared.epoll_waiters {
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
            let poll = if stats.busy.load(Ordering::Acquire) > 0 {
                FOLLOWER_POLL
            } else {
                FOLLOWER_IDLE_POLL
            };
            match engine.jobs.recv_timeout(poll) {
                Ok(conn) => {
                    idle_since = Instant::now();
                    serve_queued(engine, conn);
                    parked_first = true;
                }
                Err(_) if idle_since.elapsed() >= IDLE_THREAD_TIMEOUT => {
                    if trim(shared) {
                        return;
                    }
                    idle_since = Instant::now();
                }
                Err(_) => {}
            }
            continue;
        }
        stats.waiting.fetch_add(1, Ordering::SeqCst);
        // Pairs with `Engine::ring`: a connection queued after the
        // try_recv above is either seen here or rings the doorbell.
        fence(Ordering::SeqCst);
        let queued = engine.jobs.try_recv().ok();
        let waited = if queued.is_none() {
            engine
                .pool_epoll
                .wait(&mut events, Some(IDLE_THREAD_TIMEOUT))
        } else {
            Ok(())
        };
        let still_waiting = stats.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
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
                if trim(shared) {
                    return;
                }
            }
            Some(token) => on_event(shared, token, still_waiting),
        }
    }
}

fn serve_queued(engine: &Engine, conn: Conn) {
    engine.on_dequeue();
    connection::serve(engine, conn);
}

/// Handles an event the pool's epoll has ready now, without waiting;
/// false when none is.
fn serve_ready_now(shared: &Arc<Shared>, events: &mut Events) -> bool {
    let engine = &shared.engine;
    if engine
        .pool_epoll
        .wait(events, Some(Duration::ZERO))
        .is_err()
    {
        return false;
    }
    let Some(token) = events.tokens().next() else {
        return false;
    };
    on_event(shared, token, engine.stats.waiting.load(Ordering::Acquire));
    true
}

/// One event from the pool's epoll: the doorbell (the queue is looked at
/// next), or a parked connection's bytes. `still_waiting`: threads left
/// waiting in the pool's epoll.
fn on_event(shared: &Arc<Shared>, token: u64, still_waiting: usize) {
    let engine = &*shared.engine;
    let stats = &engine.stats;
    if token == DOORBELL_TOKEN {
        engine.doorbell.take();
        return;
    }
    let idle_others = stats
        .threads
        .load(Ordering::Acquire)
        .saturating_sub(stats.busy.load(Ordering::Acquire) + 1);
    if still_waiting == 0 && idle_others == 0 {
        // Keep a thread free for the other parked connections while this
        // one serves.
        spawn(shared);
    }
    connection::on_parked_ready(engine, token);
}

/// After [`IDLE_THREAD_TIMEOUT`] without work: true when this thread may
/// leave: not below min, not while connections are queued (one queued as
/// this thread decided may have found no thread to start), and not when
/// connections are parked and no other thread waits in the pool's epoll.
fn trim(shared: &Shared) -> bool {
    let engine = &shared.engine;
    let threads = &engine.stats.threads;
    if !engine.jobs.is_empty() {
        return false;
    }
    let unwatched = engine.parking.len() > 0 && engine.stats.waiting.load(Ordering::SeqCst) == 0;
    if unwatched
        || threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > shared.min).then(|| n - 1)
            })
            .is_err()
    {
        return false;
    }
    if !engine.jobs.is_empty() {
        // Queued meanwhile: stay (the reactor may have seen no room to
        // start a thread for it).
        threads.fetch_add(1, Ordering::AcqRel);
        return false;
    }
    true
}
