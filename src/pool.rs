//! The thread pool: between `min` and `max` threads. A thread takes
//! connections with a complete request head from one bounded crossbeam
//! channel (filled by the reactor), and, when the channel is empty, waits
//! in the pool's epoll for the next request of a parked keep-alive
//! connection (see `parking`) or a new connection on a plain listener,
//! which it accepts and serves itself when its request is already there
//! (`serve::on_accept_ready`). Threads are spawned on demand up to `max`
//! and trimmed back to `min` after [`IDLE_THREAD_TIMEOUT`] without work
//! (but the last one stays while the pool accepts). The channel's bound
//! is the backpressure: when it is full the reactor stops accepting; a
//! pool thread accepts only when it is free to serve, so while all are
//! busy new connections wait in the kernel's backlog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Conn;
use crate::engine::{self, Engine, Stats, Taken, ThreadSlot, Turn};
use crate::listeners::Listener;
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
/// How many threads take events from the pool's epoll at once (one
/// sleeps there, the others take what is ready without sleeping): half
/// the CPUs this process may use, shared among the cluster's workers, at
/// least one; more join only while these are held up (see `Role`). The
/// other idle threads wait on the queue. Every thread taking events
/// beyond what the load needs costs a wake-up per event it takes while
/// the others serve, where they would take it later without sleeping:
/// measured on 2 cores (bench/run, wrk on the same cores, -t 5:5), with
/// two such threads close-churn cost 16-19 µs of CPU per connection and
/// small-keepalive reached 0.90× nginx; with one, 10.9 µs and 1.07×
/// (nginx 12.5 µs, one worker). With every idle thread waiting in epoll,
/// as once, keep-alive cost 0.85 task switches per request. Half the
/// CPUs on larger machines is a guess between that measured one and all
/// of them (CPU-bound work beyond it is what `-w` workers are for).
pub fn epoll_waiters(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / workers.max(1) / 2).max(1)
}
/// How often the watching follower (one thread waiting on the queue)
/// looks whether the threads taking events are held up (no request
/// answered since its last look while some are being served), and then
/// takes events too. Bounds the delay a parked or new connection sees
/// when the threads that would take its event are busy with slow
/// requests. Only one follower looks this often: each look is a wake-up
/// (and crossbeam's spin-and-yield before it sleeps again), and with
/// every follower looking, four idle followers at -t 5:5 woke 4,000 times
/// a second on cores the serving thread and the clients share.
const FOLLOWER_POLL: Duration = Duration::from_millis(1);
/// How often the other followers look, and the watching one while no
/// request is being served: the longest such a delay can be (a slow
/// request arriving on an idle server, then another), and how soon a
/// follower takes over watching from one that joined.
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
    /// A follower watches for held-up threads (see `FOLLOWER_POLL`).
    watching: AtomicBool,
}

/// A follower's claim on watching (`Shared::watching`): at most one
/// thread holds it; given up when the thread takes events or serves, or
/// leaves.
struct Watch<'a> {
    flag: &'a AtomicBool,
    held: bool,
}

impl<'a> Watch<'a> {
    fn new(flag: &'a AtomicBool) -> Watch<'a> {
        Watch { flag, held: false }
    }

    /// Holds the claim, taking it if no thread does; whether it is held.
    fn claim(&mut self) -> bool {
        if !self.held {
            self.held = self
                .flag
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        }
        self.held
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.flag.store(false, Ordering::Release);
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.release();
    }
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
            watching: AtomicBool::new(false),
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

    /// Lets the pool threads accept on the plain listeners of
    /// `listeners` themselves (each with its `labels` entry); a TLS
    /// listener stays with the reactor, which runs the handshakes. Says,
    /// per listener, whether the pool took it (one it could not share
    /// stays with the reactor, logged). Starts a thread if none runs:
    /// the last one is never trimmed while the pool accepts.
    pub fn accept_on(&self, listeners: &[Arc<Listener>], labels: &[Arc<str>]) -> Vec<bool> {
        let engine = &self.shared.engine;
        let taken = listeners
            .iter()
            .zip(labels)
            .map(|(l, label)| {
                if l.tls.is_some() {
                    return false;
                }
                let shared = engine.share_listener(Arc::clone(l), Arc::clone(label));
                if let Err(e) = &shared {
                    log::warn(&format!(
                        "! pool threads cannot accept on {}: {e}; the reactor accepts there",
                        l.url
                    ));
                }
                shared.is_ok()
            })
            .collect();
        if engine.stats().threads() == 0 && engine.shares_listeners() {
            spawn(&self.shared);
        }
        taken
    }

    /// The pool threads stop accepting (a stop or hot restart): when
    /// this returns, every connection they accepted is served or handed
    /// to the reactor, and the listeners are in no epoll of theirs.
    pub fn stop_accepting(&self) {
        self.shared.engine.unshare_listeners();
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
    let mut role = Role::new(stats);
    let mut watch = Watch::new(&shared.watching);
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
        if role.take_events(shared.epoll_waiters) {
            watch.release();
            if stats.waiting() == 0 {
                // Nobody sleeps in the pool's epoll: this thread does.
                match wait_for_event(shared, &mut events) {
                    Waited::Event(token, still_waiting) => {
                        idle_since = Instant::now();
                        on_event(shared, token, still_waiting);
                    }
                    Waited::Queued(conn) => {
                        idle_since = Instant::now();
                        serve_queued(engine, conn);
                        parked_first = true;
                    }
                    Waited::Timeout => {
                        if trim(shared, slot) {
                            return leave(engine, &mut role);
                        }
                        idle_since = Instant::now();
                    }
                    Waited::Failed => {}
                }
                continue;
            }
            // Another thread sleeps there: take what is ready without
            // waiting (never sleep while work is pending)...
            if serve_ready_now(shared, &mut events) {
                idle_since = Instant::now();
                continue;
            }
            // ...and when nothing is, step back: one sleeper is enough
            // (each more would be woken for an event of its own while the
            // others serve, where they take it later without sleeping).
            role.step_back();
        }
        // A follower: wait for a queued connection here, and look again
        // every FOLLOWER_POLL (to join, or take over from held-up threads).
        // While nothing is being served nothing can hold them up: look
        // rarely (an idle server stays idle).
        let watching = watch.claim();
        let poll = if watching && stats.busy() > 0 {
            FOLLOWER_POLL
        } else {
            FOLLOWER_IDLE_POLL
        };
        match engine.take_timeout(poll) {
            Taken::Conn(conn) => {
                watch.release();
                idle_since = Instant::now();
                serve_queued(engine, conn);
                parked_first = true;
            }
            // Offered a turn at taking events: take it at the top of the
            // loop, never leave with it.
            Taken::Turn => idle_since = Instant::now(),
            Taken::Nothing if idle_since.elapsed() >= IDLE_THREAD_TIMEOUT => {
                if trim(shared, slot) {
                    return leave(engine, &mut role);
                }
                idle_since = Instant::now();
            }
            Taken::Nothing => {}
        }
    }
}

/// Whether a pool thread takes events from the pool's epoll or follows
/// (sleeps on the queue, looking every `FOLLOWER_POLL`). Each thread
/// taking events beyond the first costs wake-ups (one sleeps in epoll;
/// the others take what is ready without sleeping and step back when
/// nothing is), so they are as few as do the work: at most
/// `epoll_waiters`, and one more whenever those are held up (no request
/// answered between two looks of a follower while some are being
/// served: slow handlers), which steps back once they are not.
struct Role<'a> {
    stats: &'a Stats,
    /// Held while this thread takes events ([`Stats::join_active`]).
    active: Option<Turn<'a>>,
    /// The request count at this thread's last look as a follower.
    progress: u64,
}

impl<'a> Role<'a> {
    fn new(stats: &'a Stats) -> Role<'a> {
        Role {
            stats,
            active: None,
            progress: stats.requests(),
        }
    }

    /// Decides, between two events, whether this thread takes the next
    /// one from the pool's epoll (joining or staying) or follows.
    fn take_events(&mut self, limit: usize) -> bool {
        let stats = self.stats;
        if self.active.is_some() && stats.active() > limit {
            // More threads take events than `limit` (one joined for
            // held-up ones, which are back): the first done steps back.
            self.active = None;
        }
        if self.active.is_none() {
            let now = stats.requests();
            let held_up = now == self.progress && stats.busy() > 0;
            self.progress = now;
            self.active = stats.join_active(limit, held_up);
        }
        self.active.is_some()
    }

    /// Stops taking events (nothing is ready and another thread sleeps
    /// in the pool's epoll, or the thread leaves); true if it was.
    fn step_back(&mut self) -> bool {
        self.active.take().is_some()
    }
}

/// What a sleep in the pool's epoll ended with.
enum Waited {
    /// An event, and how many threads still sleep there.
    Event(u64, usize),
    /// A connection queued just before the sleep.
    Queued(Conn),
    /// Nothing for [`IDLE_THREAD_TIMEOUT`].
    Timeout,
    /// epoll_wait failed (logged, after a pause).
    Failed,
}

/// Sleeps in the pool's epoll for one event (a parked connection's
/// bytes, a new connection, the doorbell), counted in `Stats::waiting`
/// so that a queued connection rings the doorbell.
fn wait_for_event(shared: &Shared, events: &mut Events) -> Waited {
    let engine = &*shared.engine;
    let waiting = engine.start_waiting();
    // A connection queued after the caller's try_take is either seen
    // here or rings the doorbell (see `Engine::start_waiting`).
    if let Some(conn) = engine.try_take() {
        waiting.leave();
        return Waited::Queued(conn);
    }
    let waited = engine.pool_wait(events, Some(IDLE_THREAD_TIMEOUT));
    let still_waiting = waiting.leave();
    if let Err(e) = waited {
        log::warn(&format!(
            "! epoll_wait in a pool thread failed: {e}; retrying"
        ));
        std::thread::sleep(WAIT_RETRY);
        return Waited::Failed;
    }
    match events.tokens().next() {
        None => Waited::Timeout,
        Some(token) => Waited::Event(token, still_waiting),
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
/// next), a new connection on a shared listener, or a parked
/// connection's bytes. `still_waiting`: threads left waiting in the
/// pool's epoll.
fn on_event(shared: &Arc<Shared>, token: u64, still_waiting: usize) {
    let engine = &*shared.engine;
    let stats = engine.stats();
    if token == DOORBELL_TOKEN {
        engine.answer_doorbell();
        return;
    }
    let idle_others = stats.threads().saturating_sub(stats.busy() + 1);
    if still_waiting == 0 && idle_others == 0 {
        // Keep a thread free for the other parked connections and the
        // listeners while this one serves.
        spawn(shared);
    }
    match engine::listener_index(token) {
        Some(index) => serve::on_accept_ready(engine, index),
        None => serve::on_parked_ready(engine, token),
    }
}

/// After [`IDLE_THREAD_TIMEOUT`] without work: true when this thread may
/// leave: not below min, not while connections are queued (one queued as
/// this thread decided may have found no thread to start), and not as the
/// last thread while connections are parked or the pool accepts on
/// listeners (nobody would take their events). Counted out in one atomic
/// step ([`ThreadSlot::leave_above`]), so two threads timing out together
/// cannot both leave the last; which of them was asleep in the pool's
/// epoll at that moment does not matter (once it did: the two idle
/// clocks of threads that went idle together ran out together, and each
/// stayed because the other was not in epoll just then): a thread taking
/// events that leaves offers its turn ([`leave`]).
fn trim(shared: &Shared, slot: &mut ThreadSlot) -> bool {
    let engine = &shared.engine;
    if !engine.queue_is_empty() {
        return false;
    }
    let watched = engine.parking().len() > 0 || engine.shares_listeners();
    let floor = if watched {
        shared.min.max(1)
    } else {
        shared.min
    };
    if !slot.leave_above(floor) {
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

/// A trimmed thread leaves: if it was taking events, it gives up its turn
/// and a follower is offered it at once through the queue
/// ([`Engine::offer_turn`]), so parked connections and listeners are not
/// left until a follower's next look.
fn leave(engine: &Engine, role: &mut Role<'_>) {
    if role.step_back() {
        engine.offer_turn();
    }
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

    /// A pool of `min..max` threads whose handler holds `/slow` until the
    /// returned sender says go, accepting on a unix listener (its path).
    fn accepting_pool(
        min: usize,
        max: usize,
    ) -> (
        Pool,
        Arc<Engine>,
        std::sync::mpsc::Sender<()>,
        std::path::PathBuf,
        crate::listeners::testing::SocketFile,
    ) {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Mutex::new(wait);
        let handler = move |req: &mut crate::Request<'_>| {
            if req.path() == "/slow" {
                let _ = wait
                    .lock()
                    .expect("one slow request at a time")
                    .recv_timeout(EVENT_DEADLINE);
            }
            crate::Response::text(200, "ok\n")
        };
        let limits = crate::connection::testing::limits();
        let engine = Arc::new(Engine::new(Box::new(handler), limits, 8).expect("engine"));
        let pool = Pool::start(Arc::clone(&engine), min, max, 1).expect("pool");
        let (listener, file) = crate::listeners::testing::unix();
        let taken = pool.accept_on(&[Arc::new(listener)], &[Arc::from("unix:///test")]);
        assert_eq!(taken, [true]);
        (pool, engine, go, file.0.clone(), file)
    }

    fn request(path: &std::path::Path, target: &str) -> std::os::unix::net::UnixStream {
        let mut c = std::os::unix::net::UnixStream::connect(path).expect("connect");
        c.set_read_timeout(Some(EVENT_DEADLINE)).expect("timeout");
        // One write: a request in pieces would go to the (absent) reactor.
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        c.write_all(request.as_bytes()).expect("write");
        c
    }

    #[test]
    fn a_new_connection_is_accepted_and_served_while_the_other_thread_is_held_up() {
        let (pool, engine, go, path, _file) = accepting_pool(2, 2);
        let mut slow = request(&path, "/slow");
        until("a thread to be held up in the handler", || {
            engine.stats().busy() == 1
        });
        // Only one thread took events; the other follows, sees no request
        // answered while one is served, and takes the listener's event.
        let mut fast = request(&path, "/fast");
        assert!(read_response(&mut fast).starts_with("HTTP/1.1 200"));
        until("the fast one's thread to be done", || {
            engine.stats().busy() == 1
        });
        go.send(()).expect("go");
        assert!(read_response(&mut slow).starts_with("HTTP/1.1 200"));
        assert!(engine.take_handed(false).is_empty(), "no reactor involved");
        drop(pool);
        until("the threads to leave", || engine.stats().threads() == 0);
    }

    #[test]
    fn with_min_0_a_thread_is_started_to_accept() {
        let (pool, engine, _go, path, _file) = accepting_pool(0, 2);
        assert_eq!(engine.stats().threads(), 1, "someone must accept");
        let mut c = request(&path, "/");
        assert!(read_response(&mut c).starts_with("HTTP/1.1 200"));
        drop(pool);
        until("the threads to leave", || engine.stats().threads() == 0);
    }

    #[test]
    fn the_last_thread_taking_a_listeners_events_is_not_trimmed() {
        let (shared, mut a, mut b) = shared(0);
        let (listener, _file) = crate::listeners::testing::unix();
        shared
            .engine
            .share_listener(Arc::new(listener), Arc::from("unix:///test"))
            .expect("shared");
        assert!(trim(&shared, &mut a), "b stays to take their events");
        drop(a);
        assert!(!trim(&shared, &mut b), "the last thread stays");
        assert_eq!(shared.engine.stats().threads(), 1);
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
            watching: AtomicBool::new(false),
        });
        (shared, a, b)
    }

    #[test]
    fn one_follower_at_a_time_watches_and_gives_it_up_when_it_serves_or_leaves() {
        let flag = AtomicBool::new(false);
        let (mut a, mut b) = (Watch::new(&flag), Watch::new(&flag));
        assert!(a.claim(), "the first to look watches");
        assert!(!b.claim(), "one watcher at a time");
        assert!(a.claim(), "and it keeps watching");
        a.release(); // it took events or served
        assert!(b.claim(), "another takes over");
        drop(b); // it left (trimmed)
        assert!(a.claim(), "a thread that leaves gives it up");
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
        let (shared, mut a, mut b) = shared(0);
        let (conn, _client) = served_once();
        let deadline = Instant::now() + Duration::from_secs(60);
        shared.engine.park(Parked::waiting(conn, deadline, false));
        assert_eq!(shared.engine.parking().len(), 1);
        assert!(trim(&shared, &mut a), "b stays to watch them");
        drop(a);
        assert!(!trim(&shared, &mut b), "the last watcher stays");
        // Nothing parked or accepted: min (0) is the floor.
        drop(shared.engine.parking().take_all());
        assert!(trim(&shared, &mut b), "no connection to watch");
    }

    #[test]
    fn a_thread_taking_events_that_leaves_offers_its_turn() {
        let (shared, _a, _b) = shared(0);
        let (engine, stats) = (&*shared.engine, shared.engine.stats());
        let mut role = Role::new(stats);
        assert!(role.take_events(1));
        leave(engine, &mut role);
        assert_eq!(stats.active(), 0);
        assert_eq!(engine.queued(), 1, "a follower is offered the turn");
        assert!(matches!(
            engine.take_timeout(Duration::from_secs(60)),
            Taken::Turn
        ));
        assert!(
            matches!(engine.take_timeout(Duration::ZERO), Taken::Nothing),
            "an offer is not idle time: told apart from nothing queued"
        );
        let mut follower = Role::new(stats);
        assert!(follower.take_events(1), "and takes it");
        // A follower that leaves has no turn to offer.
        let mut other = Role::new(stats);
        assert!(!other.take_events(1));
        leave(engine, &mut other);
        assert_eq!(engine.queued(), 0);
    }
}
