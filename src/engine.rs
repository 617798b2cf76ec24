//! The state a serving process's threads share (the reactor, the pool
//! threads, and the main loop that watches and stops them), split by
//! owner:
//!
//! - the reactor's side: its epoll and its wake-up ([`Engine::nudge_reactor`],
//!   and the coalesced wake a pool thread sends when the queue has room
//!   again, or when it hands over a new connection whose request has not
//!   all arrived: [`Engine::hand_to_reactor`]);
//! - the pool's side: the bounded queue of ready connections and its
//!   doorbell, the pool's epoll where connections wait between requests,
//!   and the generation numbers of their tokens;
//! - the listeners the pool threads accept on themselves (plain tcp and
//!   unix ones: [`Engine::share_listener`]), one-shot in the pool's epoll,
//!   and the lock a stop takes to end every accept in progress
//!   ([`Engine::unshare_listeners`]);
//! - the upgraded connections ([`Upgrades`]): out of the pool's
//!   accounting, each on a thread of its own, but told of a stop and
//!   waited for by it;
//! - [`Stats`], whose counters a graceful stop waits on (`busy`,
//!   `reading`, `threads`): they move only through RAII guards
//!   ([`Counted`], [`ThreadSlot`]), so a return or a panic cannot leave
//!   one raised (tiny_http's task pool `Registration`).
//!
//! The fields are private: each protocol (the doorbell, the reactor's
//! wake-up, parking a connection in the pool's epoll) is a method here,
//! next to the state it touches, and is unit tested below.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::connection::{Conn, Limits, Progress};
use crate::listeners::Listener;
use crate::parking::{Parked, Parking};
use crate::response::Outgoing;
use crate::sys::{
    self, Epoll, EventFd, Events, EPOLL_READ, EPOLL_READ_ONESHOT, EPOLL_WRITE_ONESHOT,
};
use crate::upgrade::Upgrades;
use crate::Handler;

/// What every thread of a serving process shares.
pub struct Engine {
    handler: Box<dyn Handler>,
    limits: Limits,
    stats: Stats,
    /// The connections registered in the pool's epoll, between requests.
    parking: Parking,
    /// Connections that changed protocol: shared with their threads,
    /// which outlive nothing of the engine but this.
    upgrades: Arc<Upgrades>,
    reactor: ReactorSide,
    pool: PoolSide,
}

/// What the reactor owns; the other threads only wake it.
struct ReactorSide {
    /// The reactor's epoll: listeners, new connections, TLS handshakes.
    epoll: Epoll,
    /// The reactor's wake-up (room in the queue again, stop, watchdog).
    wake: EventFd,
    /// A wake-up is on its way to the reactor (see `wake_reactor`).
    wake_pending: AtomicBool,
    /// Set by the reactor while it holds connections the full queue
    /// refused; a thread taking a job then wakes it.
    backlogged: AtomicBool,
    /// New connections a pool thread accepted whose request had not all
    /// arrived: the reactor registers them (see [`Engine::hand_to_reactor`]).
    handed: Mutex<Handed>,
    /// A pool thread's accept ran out of a resource (EMFILE...): the
    /// reactor re-arms the shared listeners after its back-off.
    accept_paused: AtomicBool,
}

/// What the pool threads share.
struct PoolSide {
    /// The bounded queue: connections with a ready request, and the
    /// offer of a turn at taking events ([`Engine::lend_turn`]).
    queue: Sender<Job>,
    jobs: Receiver<Job>,
    /// A [`Job::TakeEvents`] is in the queue (at most one is).
    turn_offered: AtomicBool,
    /// Rung once per queued connection while pool threads wait in
    /// `epoll` (a counting eventfd registered there).
    doorbell: EventFd,
    /// The pool's epoll: parked keep-alive connections and the doorbell.
    epoll: Epoll,
    /// Set when the pool is dropped: idle threads exit.
    retired: AtomicBool,
    /// Generation numbers for `Conn::token`.
    generation: AtomicU32,
    /// The listeners pool threads accept on (see [`Engine::share_listener`]).
    /// An accept holds the read lock from `accept4` until the connection
    /// is served, handed to the reactor or closed; a stop takes the write
    /// lock, so once it has, no accept is under way and none can start.
    listeners: RwLock<Vec<SharedListener>>,
}

/// What the pool's queue carries.
enum Job {
    /// A connection with a ready request.
    Serve(Conn),
    /// A thread taking events went off to a long send, or left, and none
    /// sleeps in the pool's epoll: the follower that takes this goes to
    /// take events in its place ([`Engine::offer_turn`]).
    TakeEvents,
}

/// What [`Engine::take_timeout`] got.
pub enum Taken {
    /// A connection to serve.
    Conn(Conn),
    /// An offer to take events ([`Engine::offer_turn`]): the taker looks at
    /// joining those that take events next, and must not count the
    /// offer as idle time (trimmed then, it would drop the offer).
    Turn,
    /// Nothing within the timeout.
    Nothing,
}

thread_local! {
    /// This pool thread holds a [`Turn`].
    static TAKING_EVENTS: Cell<bool> = const { Cell::new(false) };
}

/// New connections handed to the reactor, until it takes them.
#[derive(Default)]
struct Handed {
    conns: Vec<Parked>,
    /// The reactor has stopped and takes no more: a connection handed
    /// over now is closed.
    closed: bool,
}

/// A listener the pool threads accept on (the reactor's, shared until a
/// stop takes it back), registered one-shot in the pool's epoll.
struct SharedListener {
    listener: Arc<Listener>,
    /// `Listener::label`, shared with its connections.
    label: Arc<str>,
    token: u64,
}

/// The highest token a shared listener has in the pool's epoll; the
/// listener at index `i` has `LISTENER_TOKEN_TOP - i`. The doorbell has
/// `u64::MAX`, and a connection's token (a generation above a
/// non-negative fd) has its low 32 bits at most `i32::MAX`, so neither
/// can fall in `LISTENER_TOKEN_TOP - MAX_SHARED_LISTENERS ..`.
const LISTENER_TOKEN_TOP: u64 = u64::MAX - 1;
/// How many listeners the pool threads can accept on (the rest stay
/// with the reactor): far more than anyone binds.
const MAX_SHARED_LISTENERS: usize = 1 << 16;

/// The index of the shared listener a pool-epoll token names, if it
/// names one.
#[inline]
pub fn listener_index(token: u64) -> Option<usize> {
    let i = LISTENER_TOKEN_TOP.checked_sub(token)?;
    (i < MAX_SHARED_LISTENERS as u64).then_some(i as usize)
}

/// How an `accept4` on a listener went wrong.
pub enum AcceptFailure {
    /// Nothing to accept (EAGAIN): another thread or process took it.
    Empty,
    /// The peer gave up before we accepted (ECONNABORTED, EPROTO), or a
    /// firewall said no (EPERM): the next one may be fine.
    Transient,
    /// Out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): pause, then
    /// try again; never stop for good.
    Exhausted(io::Error),
}

impl AcceptFailure {
    /// Sorts an error of `accept4`.
    pub fn of(e: io::Error) -> AcceptFailure {
        if e.kind() == io::ErrorKind::WouldBlock {
            return AcceptFailure::Empty;
        }
        match e.raw_os_error() {
            Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => AcceptFailure::Transient,
            _ => AcceptFailure::Exhausted(e),
        }
    }
}

/// A shared listener, borrowed by a pool thread for one accept: holds
/// the listeners' read lock, so a stop waits until the connection is
/// served, handed over or closed ([`Engine::listener`]).
pub struct Accepting<'a> {
    listeners: RwLockReadGuard<'a, Vec<SharedListener>>,
    index: usize,
    engine: &'a Engine,
}

impl Accepting<'_> {
    fn listener(&self) -> &SharedListener {
        &self.listeners[self.index]
    }

    /// One `accept4` (non-blocking, close-on-exec), with the peer's address.
    pub fn accept(&self) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
        sys::accept_with_peer(&self.listener().listener.fd)
    }

    /// Arms the listener's one-shot registration again, so that the next
    /// connection wakes a thread waiting in the pool's epoll (at once if
    /// one is already waiting in the backlog). Fails harmlessly once a
    /// stop has removed it.
    pub fn rearm(&self) {
        let l = self.listener();
        let _ = self
            .engine
            .pool
            .epoll
            .modify(l.listener.fd.as_fd(), EPOLL_READ_ONESHOT, l.token);
    }

    /// TCP (its connections get TCP_NODELAY).
    pub fn is_tcp(&self) -> bool {
        self.listener().listener.is_tcp
    }

    /// `Listener::label`, for the connection's `ConnInfo`.
    pub fn label(&self) -> Arc<str> {
        Arc::clone(&self.listener().label)
    }

    /// How the log names the listener.
    pub fn url(&self) -> &str {
        &self.listener().listener.url
    }
}

/// Counters shared by the pool, the reactor and the main loop. Those a
/// graceful stop waits on (`threads`, `busy`, `reading`) and `waiting`
/// move only through guards.
#[derive(Debug, Default)]
pub struct Stats {
    /// Pool threads alive ([`ThreadSlot`]).
    threads: AtomicUsize,
    /// Threads waiting in the pool's epoll ([`Waiting`]).
    waiting: AtomicUsize,
    /// Threads taking events from the pool's epoll: the one sleeping
    /// there, and those serving what they took or looking for more
    /// without sleeping ([`Stats::join_active`]).
    active: AtomicUsize,
    /// Of `active`, those away in a long send, which others may take
    /// events for meanwhile ([`Engine::lend_turn`]).
    lent: AtomicUsize,
    /// Threads serving a request right now ([`Stats::serving`]).
    busy: AtomicUsize,
    /// Pool threads reading a parked connection's request (not yet
    /// `busy`): a graceful stop waits for them too ([`Stats::reading_one`]).
    reading: AtomicUsize,
    /// Requests answered since start.
    requests: AtomicU64,
    /// Bumped by the reactor on every loop turn; the main loop pings the
    /// systemd watchdog only while it moves.
    heartbeat: AtomicU64,
    /// Connections with a complete request that the reactor holds
    /// because the pool's queue was full (stored each reactor turn).
    /// [`Engine::backlog`] counts every connection waiting for a thread.
    held: AtomicUsize,
    /// Set at the start of a graceful stop: answer in-flight requests with
    /// `Connection: close`, hand nothing back to the reactor.
    stopping: AtomicBool,
}

impl Stats {
    /// Pool threads alive.
    #[inline]
    pub fn threads(&self) -> usize {
        self.threads.load(Ordering::Acquire)
    }

    /// Threads serving a request.
    #[inline]
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Threads reading a parked connection's request.
    #[inline]
    pub fn reading(&self) -> usize {
        self.reading.load(Ordering::Acquire)
    }

    /// Threads waiting in the pool's epoll.
    #[inline]
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests answered since start.
    #[inline]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The reactor's loop count (see [`Stats::beat`]).
    #[inline]
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// A graceful stop has begun.
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// One more request answered.
    #[inline]
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One more turn of the reactor's loop.
    #[inline]
    pub fn beat(&self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
    }

    /// How many ready connections the reactor holds for a full queue.
    #[inline]
    pub fn set_held(&self, n: usize) {
        self.held.store(n, Ordering::Relaxed);
    }

    /// Counts this thread `busy` until the guard drops.
    #[inline]
    pub fn serving(&self) -> Counted<'_> {
        Counted::new(&self.busy)
    }

    /// Counts this thread `reading` until the guard drops.
    #[inline]
    pub fn reading_one(&self) -> Counted<'_> {
        Counted::new(&self.reading)
    }

    /// Threads taking events from the pool's epoll, less those away in a
    /// long send ([`Engine::lend_turn`]).
    #[inline]
    pub fn active(&self) -> usize {
        let lent = self.lent.load(Ordering::Acquire);
        self.active.load(Ordering::Acquire).saturating_sub(lent)
    }

    /// Counts this thread among those taking events from the pool's
    /// epoll if fewer than `limit` are (see [`Stats::active`]), or
    /// whatever their number when `anyway` (the others are held up);
    /// `None` otherwise.
    pub fn join_active(&self, limit: usize, anyway: bool) -> Option<Turn<'_>> {
        if !anyway {
            let lent = self.lent.load(Ordering::Acquire);
            self.active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n.saturating_sub(lent) < limit).then_some(n + 1)
                })
                .ok()?;
        } else {
            self.active.fetch_add(1, Ordering::AcqRel);
        }
        TAKING_EVENTS.set(true);
        Some(Turn(&self.active))
    }
}

/// A pool thread's place among those taking events from the pool's
/// epoll ([`Stats::join_active`]), given up when dropped.
#[must_use = "the thread stops taking events when the turn drops"]
pub struct Turn<'a>(&'a AtomicUsize);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        TAKING_EVENTS.set(false);
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A thread taking events is away in a long send until this drops
/// ([`Engine::lend_turn`]).
#[must_use = "the turn comes back when this drops"]
pub struct Lent<'a>(&'a AtomicUsize);

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        TAKING_EVENTS.set(true);
    }
}

/// One unit of a counter a graceful stop waits on, held for a scope: the
/// count goes down in `Drop`, so no return or panic leaves it up.
#[must_use = "the count goes down when the guard drops"]
pub struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A pool thread counted in `Stats::threads` for as long as it lives:
/// taken before the thread is spawned, moved into it, dropped when it
/// leaves (or when the spawn fails, or the thread panics).
#[must_use = "the thread count goes down when the slot drops"]
pub struct ThreadSlot {
    engine: Arc<Engine>,
    /// Still counted ([`ThreadSlot::leave_above`] gives the unit up early).
    counted: bool,
}

impl ThreadSlot {
    /// Gives up this thread's unit if more than `min` threads are counted
    /// (in one atomic step, so two trimming threads cannot both go below
    /// `min`); true when given up.
    pub fn leave_above(&mut self, min: usize) -> bool {
        if !self.counted {
            return true;
        }
        let left = self
            .engine
            .stats
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > min).then(|| n - 1)
            })
            .is_ok();
        self.counted = !left;
        left
    }

    /// Counts this thread again after [`ThreadSlot::leave_above`].
    pub fn rejoin(&mut self) {
        if !self.counted {
            self.engine.stats.threads.fetch_add(1, Ordering::AcqRel);
            self.counted = true;
        }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        if self.counted {
            self.engine.stats.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A pool thread registered as waiting in the pool's epoll, from before
/// it looks at the queue a last time until it has woken: while one is
/// registered, every queued connection rings the doorbell.
#[must_use = "the thread stops being counted when the guard drops"]
pub struct Waiting<'a>(&'a AtomicUsize);

impl Waiting<'_> {
    /// Stops waiting; returns how many threads still wait.
    pub fn leave(self) -> usize {
        let still = self.0.fetch_sub(1, Ordering::SeqCst) - 1;
        std::mem::forget(self);
        still
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Engine {
    /// The engine for `handler`, with a queue of `queue_capacity` ready
    /// connections. Errors say which descriptor could not be made.
    pub fn new(
        handler: Box<dyn Handler>,
        limits: Limits,
        queue_capacity: usize,
    ) -> Result<Engine, String> {
        let (queue, jobs) = crossbeam_channel::bounded(queue_capacity);
        let eventfd = |what: &str| {
            EventFd::new().map_err(|e| format!("cannot create an eventfd ({what}): {e}"))
        };
        let epoll = |what: &str| {
            Epoll::new().map_err(|e| format!("cannot create an epoll instance ({what}): {e}"))
        };
        let doorbell = EventFd::semaphore()
            .map_err(|e| format!("cannot create an eventfd (pool doorbell): {e}"))?;
        let wake = eventfd("reactor wake-up")?;
        let upgrades = Arc::new(Upgrades::new(limits.max_upgraded)?);
        Ok(Engine {
            handler,
            limits,
            stats: Stats::default(),
            parking: Parking::default(),
            upgrades,
            reactor: ReactorSide {
                epoll: epoll("reactor")?,
                wake,
                wake_pending: AtomicBool::new(false),
                backlogged: AtomicBool::new(false),
                handed: Mutex::new(Handed::default()),
                accept_paused: AtomicBool::new(false),
            },
            pool: PoolSide {
                queue,
                jobs,
                turn_offered: AtomicBool::new(false),
                doorbell,
                epoll: epoll("pool")?,
                retired: AtomicBool::new(false),
                generation: AtomicU32::new(0),
                listeners: RwLock::new(Vec::new()),
            },
        })
    }

    /// The application.
    #[inline]
    pub fn handler(&self) -> &dyn Handler {
        &*self.handler
    }

    /// The per-request limits.
    #[inline]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The counters.
    #[inline]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The connections parked in the pool's epoll.
    #[inline]
    pub fn parking(&self) -> &Parking {
        &self.parking
    }

    /// The connections that changed protocol.
    #[inline]
    pub fn upgrades(&self) -> &Arc<Upgrades> {
        &self.upgrades
    }

    /// Connections with a complete request waiting for a thread (Puma's
    /// `backlog`): those in the pool's queue now, plus those the reactor
    /// holds while the queue is full. Read live, not stored by the
    /// reactor: it may sleep for seconds after queueing a connection,
    /// and a stored count would still show it after a thread took it.
    pub fn backlog(&self) -> usize {
        self.pool.queue.len() + self.stats.held.load(Ordering::Relaxed)
    }

    // ---- the reactor's side ----

    /// The reactor's epoll (only the reactor thread waits on it).
    #[inline]
    pub fn reactor_epoll(&self) -> &Epoll {
        &self.reactor.epoll
    }

    /// Registers the reactor's wake-up in its epoll under `token`.
    pub fn watch_wake(&self, token: u64) -> io::Result<()> {
        let fd = self.reactor.wake.as_fd();
        self.reactor.epoll.add(fd, EPOLL_READ, token)
    }

    /// The reactor saw its wake-up: drain it first, then clear
    /// `wake_pending` (a wake-up that lands after the clear is a fresh
    /// eventfd write).
    pub fn on_wake(&self) {
        self.reactor.wake.drain();
        self.reactor.wake_pending.store(false, Ordering::Release);
    }

    /// Drains the reactor's wake-up without re-arming the coalescing (the
    /// stopping reactor, which nobody needs to wake any more).
    pub fn drain_wake(&self) {
        self.reactor.wake.drain();
    }

    /// Set while the reactor holds connections the full queue refused.
    pub fn set_backlogged(&self, on: bool) {
        self.reactor.backlogged.store(on, Ordering::Release);
    }

    /// Makes the reactor turn its loop now (the watchdog's check).
    pub fn nudge_reactor(&self) {
        self.reactor.wake.notify();
    }

    /// Starts a graceful stop: in-flight requests are answered with
    /// `Connection: close`, and the reactor is woken to stop accepting.
    pub fn begin_stop(&self) {
        self.stats.stopping.store(true, Ordering::Release);
        self.upgrades.begin_stop();
        self.reactor.wake.notify();
    }

    /// Called by a pool thread when it takes a connection off the queue.
    pub fn on_dequeue(&self) {
        if self.reactor.backlogged.load(Ordering::Acquire) {
            self.wake_reactor();
        }
    }

    /// Hands a new connection a pool thread accepted, whose request has
    /// not all arrived, to the reactor, which waits for the rest (a slow
    /// client never holds a pool thread): queued here, and the reactor
    /// woken (coalesced) to register it. `p.deadline` is its first-data
    /// (or body) deadline, counted from the accept. Registered in no
    /// epoll. Once the reactor has stopped, dropped (closed), as a
    /// parked connection is when a stop finds it mid-request.
    pub fn hand_to_reactor(&self, p: Parked) {
        {
            let mut handed = self.handed();
            if handed.closed {
                return;
            }
            handed.conns.push(p);
        }
        self.wake_reactor();
    }

    /// The connections handed over since the last call (the reactor,
    /// after [`Engine::on_wake`], so that one handed over later wakes it
    /// again). `last`: the reactor is stopping and takes no more.
    pub fn take_handed(&self, last: bool) -> Vec<Parked> {
        let mut handed = self.handed();
        handed.closed |= last;
        std::mem::take(&mut handed.conns)
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, Handed> {
        // Every operation on it is one push or take: usable after a panic.
        self.reactor
            .handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// True once after a pool thread asked for an accept pause
    /// ([`Engine::pause_accepting`]).
    pub fn take_accept_pause(&self) -> bool {
        self.reactor.accept_paused.swap(false, Ordering::AcqRel)
    }

    /// Wakes the reactor once per turn of its loop: wake-ups between two
    /// turns coalesce into one eventfd write (the reactor clears
    /// `wake_pending` before it looks at the queue again).
    fn wake_reactor(&self) {
        if !self.reactor.wake_pending.swap(true, Ordering::AcqRel) {
            self.reactor.wake.notify();
        }
    }

    // ---- the pool's side: the queue and its doorbell ----

    /// Queues a connection with a ready request for the pool; gives it
    /// back when the queue is full.
    pub fn enqueue(&self, conn: Conn) -> Result<(), Conn> {
        match self.pool.queue.try_send(Job::Serve(conn)) {
            Ok(()) => {
                self.ring();
                Ok(())
            }
            Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => match job {
                Job::Serve(c) => Err(c),
                Job::TakeEvents => unreachable!("sent a connection"),
            },
        }
    }

    /// Queues a connection, waiting up to `timeout` for room (used while
    /// stopping, to hand over requests already received); dropped
    /// (closed) when there is none.
    pub fn enqueue_wait(&self, conn: Conn, timeout: Duration) {
        if self
            .pool
            .queue
            .send_timeout(Job::Serve(conn), timeout)
            .is_ok()
        {
            self.ring();
        }
    }

    /// After queueing: wakes a pool thread if one waits. Pairs with the
    /// fence in [`Engine::start_waiting`]: either the thread sees the
    /// queued connection, or this sees the thread waiting.
    fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.stats.waiting.load(Ordering::SeqCst) > 0 {
            self.pool.doorbell.notify();
        }
    }

    /// Connections queued and not yet taken by a thread.
    #[inline]
    pub fn queued(&self) -> usize {
        self.pool.queue.len()
    }

    /// Nothing is queued.
    #[inline]
    pub fn queue_is_empty(&self) -> bool {
        self.pool.jobs.is_empty()
    }

    /// Takes a queued connection, without waiting (passing over an offer
    /// of a turn: the caller is about to look at taking events anyway).
    pub fn try_take(&self) -> Option<Conn> {
        loop {
            match self.pool.jobs.try_recv().ok()? {
                Job::Serve(conn) => return Some(conn),
                Job::TakeEvents => self.took_offer(),
            }
        }
    }

    /// Takes a queued connection, waiting up to `timeout` for one, or
    /// returns at once with an offer of a turn ([`Engine::offer_turn`]).
    pub fn take_timeout(&self, timeout: Duration) -> Taken {
        match self.pool.jobs.recv_timeout(timeout) {
            Ok(Job::Serve(conn)) => Taken::Conn(conn),
            Ok(Job::TakeEvents) => {
                self.took_offer();
                Taken::Turn
            }
            Err(_) => Taken::Nothing,
        }
    }

    fn took_offer(&self) {
        self.pool.turn_offered.store(false, Ordering::Release);
        self.on_dequeue();
    }

    /// Called before a send long enough that the thread would rather not
    /// hold up the events meanwhile (a large file: `serve::LONG_SEND`):
    /// if this thread takes events from the pool's epoll, it stops
    /// counting among those that do until the guard drops, and when
    /// none sleeps there a follower is woken to take them in its place
    /// (the queue carries it a [`Job::TakeEvents`]). Two threads then
    /// send large files at once where one took every event; for small
    /// responses one thread taking events is cheaper (see
    /// `pool::epoll_waiters`). `None` on a thread that does not take
    /// events (it serves a queued connection).
    pub fn lend_turn(&self) -> Option<Lent<'_>> {
        if !TAKING_EVENTS.get() {
            return None; // not taking events, or lent already
        }
        TAKING_EVENTS.set(false);
        self.stats.lent.fetch_add(1, Ordering::AcqRel);
        let lent = Lent(&self.stats.lent);
        self.offer_turn();
        Some(lent)
    }

    /// A thread taking events stops for a while (a long send) or for good
    /// (trimmed): when none sleeps in the pool's epoll, the queue carries
    /// a [`Job::TakeEvents`] to wake a follower, which then joins those
    /// taking events if there is room ([`Stats::join_active`]). At most
    /// one offer is queued at a time; a full queue gets none (followers
    /// are coming back to it anyway).
    pub fn offer_turn(&self) {
        if self.stats.waiting() == 0
            && !self.pool.turn_offered.swap(true, Ordering::AcqRel)
            && self.pool.queue.try_send(Job::TakeEvents).is_err()
        {
            self.pool.turn_offered.store(false, Ordering::Release);
        }
    }

    /// Registers the calling pool thread as waiting in the pool's epoll.
    /// Look at the queue once more after this and before waiting (the
    /// fence pairs with [`Engine::enqueue`]'s ring): a connection queued
    /// after that look rings the doorbell.
    pub fn start_waiting(&self) -> Waiting<'_> {
        self.stats.waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Waiting(&self.stats.waiting)
    }

    /// Registers the doorbell in the pool's epoll under `token`.
    pub fn watch_doorbell(&self, token: u64) -> io::Result<()> {
        let fd = self.pool.doorbell.as_fd();
        self.pool.epoll.add(fd, EPOLL_READ, token)
    }

    /// Waits in the pool's epoll (for a parked connection or the doorbell).
    #[inline]
    pub fn pool_wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.pool.epoll.wait(events, timeout)
    }

    /// The doorbell woke this thread: take one ring (a semaphore eventfd:
    /// one ring wakes one thread).
    pub fn answer_doorbell(&self) {
        self.pool.doorbell.take();
    }

    /// The pool is being dropped: idle threads exit. Rings once per
    /// thread, so each waiting in epoll wakes.
    pub fn retire(&self) {
        self.pool.retired.store(true, Ordering::Release);
        for _ in 0..self.stats.threads() {
            self.pool.doorbell.notify();
        }
    }

    /// See [`Engine::retire`].
    #[inline]
    pub fn is_retired(&self) -> bool {
        self.pool.retired.load(Ordering::Acquire)
    }

    // ---- the pool's side: accepting ----

    /// Lets the pool threads accept on a listener themselves: it is kept
    /// (until [`Engine::unshare_listeners`]) and registered one-shot in
    /// the pool's epoll, under a token [`listener_index`] maps back.
    pub fn share_listener(&self, listener: Arc<Listener>, label: Arc<str>) -> io::Result<()> {
        let mut listeners = self
            .pool
            .listeners
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if listeners.len() >= MAX_SHARED_LISTENERS {
            return Err(io::Error::other("too many listeners to share"));
        }
        let token = LISTENER_TOKEN_TOP - listeners.len() as u64;
        self.pool
            .epoll
            .add(listener.fd.as_fd(), EPOLL_READ_ONESHOT, token)?;
        listeners.push(SharedListener {
            listener,
            label,
            token,
        });
        Ok(())
    }

    /// Pool threads accept on some listener.
    pub fn shares_listeners(&self) -> bool {
        !self
            .pool
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The shared listener at `index`, for one accept; `None` once a stop
    /// has taken them back (a stale event).
    pub fn listener(&self, index: usize) -> Option<Accepting<'_>> {
        let listeners = self
            .pool
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner());
        (index < listeners.len()).then_some(Accepting {
            listeners,
            index,
            engine: self,
        })
    }

    /// A pool thread's accept ran out of a resource and left its listener
    /// disarmed: the reactor re-arms the shared listeners after its
    /// back-off ([`Engine::rearm_listeners`]).
    pub fn pause_accepting(&self) {
        self.reactor.accept_paused.store(true, Ordering::Release);
        self.wake_reactor();
    }

    /// Arms every shared listener again (the end of an accept pause).
    pub fn rearm_listeners(&self) {
        let listeners = self
            .pool
            .listeners
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for l in listeners.iter() {
            let _ = self
                .pool
                .epoll
                .modify(l.listener.fd.as_fd(), EPOLL_READ_ONESHOT, l.token);
        }
    }

    /// Stops the pool threads accepting (a stop or hot restart): each
    /// shared listener leaves the pool's epoll (before its descriptor is
    /// passed on or closed), then the write lock waits for the accepts
    /// under way, which serve their connection or hand it to the reactor
    /// first, and the listeners are let go of (the reactor owns them
    /// alone again). Afterwards nothing more is handed to the reactor.
    pub fn unshare_listeners(&self) {
        let taken = {
            // Deregistered first: no new event; an accept that already
            // has one holds the read lock, which the write lock waits for.
            let listeners = self
                .pool
                .listeners
                .read()
                .unwrap_or_else(|e| e.into_inner());
            for l in listeners.iter() {
                let _ = self.pool.epoll.delete(l.listener.fd.as_fd());
            }
            drop(listeners);
            let mut listeners = self
                .pool
                .listeners
                .write()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *listeners)
        };
        drop(taken); // the reactor's references are the only ones left
    }

    /// Counts one more pool thread unless `max` are running; the slot
    /// goes with the thread.
    pub fn add_thread(self: &Arc<Engine>, max: usize) -> Option<ThreadSlot> {
        self.stats
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(ThreadSlot {
            engine: Arc::clone(self),
            counted: true,
        })
    }

    // ---- the pool's side: parking ----

    /// Parks a connection that has just been served until its next
    /// request (or the rest of a pipelined one).
    pub fn park_keep_alive(&self, mut conn: Conn) {
        let partial = !conn.buffered().is_empty();
        if !partial {
            conn.shrink_idle_buffer();
        }
        let now = Instant::now();
        let deadline = match conn.request_ready(self.limits.max_body) {
            Progress::Body if conn.start_body_wait() => now + self.limits.body_timeout,
            _ if partial => now + self.limits.first_data_timeout,
            _ => now + self.limits.persistent_timeout,
        };
        self.park(Parked::waiting(conn, deadline, partial));
    }

    /// Parks a connection until the client takes more of `out`, under
    /// the write deadline.
    pub fn park_writer(&self, conn: Conn, out: Box<Outgoing>) {
        let mut p = Parked::waiting(conn, Instant::now() + self.limits.write_timeout, false);
        p.outgoing = Some(out);
        self.park(p);
    }

    /// Puts `p` in the parking, then arms its one-shot registration in
    /// the pool's epoll (moving it out of the reactor's the first time):
    /// for reading, or for writing when it has a response to finish.
    pub fn park(&self, mut p: Parked) {
        let writer = p.outgoing.is_some();
        if !writer && self.stats.is_stopping() {
            // Dropped: closed (the reactor closed the idle ones), unless
            // it is new (the stopping reactor gives those a grace).
            return self.hand_new_to_reactor(p);
        }
        let fd = p.conn.fd();
        let first = !p.conn.pooled();
        if first {
            if p.conn.in_reactor() {
                // Served first from the reactor: its one-shot fired, so
                // the registration there is disarmed; remove it for good.
                let _ = self.reactor.epoll.delete(p.conn.as_fd());
                p.conn.set_in_reactor(false);
            }
            let generation = self.pool.generation.fetch_add(1, Ordering::Relaxed);
            p.conn.enter_pool((u64::from(generation) << 32) | fd as u64);
        }
        let token = p.conn.token();
        let interest = if writer {
            EPOLL_WRITE_ONESHOT
        } else {
            EPOLL_READ_ONESHOT
        };
        let epoll = &self.pool.epoll;
        let armed = self.parking.put_armed(p, |sock| {
            if first {
                epoll.add(sock, interest, token)
            } else {
                epoll.modify(sock, interest, token)
            }
        });
        // One that could not be armed is closed already (nothing would
        // wake it).
        if armed.is_ok() && !writer && self.stats.is_stopping() {
            // The stop began meanwhile and may have taken the parked
            // connections back already: close this one too (or hand it
            // over, if new).
            if let Some(p) = self.parking.take(fd, token) {
                self.hand_new_to_reactor(p);
            }
        }
    }

    /// At a stop: a new connection (no request served yet) goes to the
    /// reactor, which gives it a grace to send its request; any other is
    /// dropped (closed).
    fn hand_new_to_reactor(&self, mut p: Parked) {
        if p.conn.served() == 0 {
            if p.conn.pooled() {
                self.unpool(&mut p.conn);
            }
            self.hand_to_reactor(p);
        }
    }

    /// A connection leaves HTTP for a protocol of its own (an upgrade):
    /// out of whichever epoll it was registered in (disarmed there, as it
    /// was being served), so no event of it ever reaches the reactor or
    /// the pool again.
    pub fn release_for_upgrade(&self, conn: &mut Conn) {
        if conn.pooled() {
            let _ = self.pool.epoll.delete(conn.as_fd());
            conn.leave_pool();
        } else if conn.in_reactor() {
            let _ = self.reactor.epoll.delete(conn.as_fd());
            conn.set_in_reactor(false);
        }
    }

    /// Takes a connection the pool parked back for the reactor: out of
    /// the pool's epoll (the caller registers it in the reactor's).
    pub fn unpool(&self, conn: &mut Conn) {
        let _ = self.pool.epoll.delete(conn.as_fd());
        conn.leave_pool();
    }
}

/// The fd a pool-epoll token names (its low 32 bits; the high ones are
/// the generation).
#[inline]
pub fn token_fd(token: u64) -> RawFd {
    (token & u64::from(u32::MAX)) as RawFd
}

/// An engine for unit tests: a handler that answers `200 ok`, the test
/// limits, and a queue of `queue` connections.
#[cfg(test)]
pub fn test_engine(queue: usize) -> Arc<Engine> {
    let handler = |_: &mut crate::Request<'_>| crate::Response::text(200, "ok\n");
    let limits = crate::connection::testing::limits();
    Arc::new(Engine::new(Box::new(handler), limits, queue).expect("engine"))
}

#[cfg(test)]
mod tests {
    //! The doorbell, the reactor's wake-up, the guards and parking, driven
    //! step by step from the test thread: each pool thread's step is a
    //! call, so every interleaving of two threads is written out, and an
    //! epoll wait with a zero timeout says whether a sleeping thread would
    //! wake now (never a sleep).

    use std::io::Write;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::*;
    use crate::connection::testing::{self, pair, served_once};

    const DOORBELL: u64 = u64::MAX;
    const WAKE: u64 = u64::MAX - 1;

    fn engine(queue: usize) -> Arc<Engine> {
        let e = test_engine(queue);
        e.watch_doorbell(DOORBELL).expect("doorbell");
        e.watch_wake(WAKE).expect("wake");
        e
    }

    /// What a pool thread sleeping in the pool's epoll would wake for
    /// now (a zero-timeout wait).
    fn pool_ready(e: &Engine) -> Option<u64> {
        let mut events = Events::with_capacity(8);
        e.pool_wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        let token = events.tokens().next();
        token
    }

    fn reactor_woken(e: &Engine) -> bool {
        let mut events = Events::with_capacity(8);
        e.reactor_epoll()
            .wait(&mut events, Some(Duration::ZERO))
            .expect("wait");
        let woken = events.tokens().any(|t| t == WAKE);
        woken
    }

    #[test]
    fn a_connection_queued_before_a_thread_waits_is_found_by_its_last_look() {
        let e = engine(4);
        e.enqueue(pair().0).map_err(drop).expect("queued");
        // No thread waited: nobody to ring for (a follower on the queue
        // takes it).
        assert_eq!(pool_ready(&e), None);
        let waiting = e.start_waiting();
        assert!(e.try_take().is_some(), "the look after registering");
        assert_eq!(waiting.leave(), 0);
    }

    #[test]
    fn a_connection_queued_after_the_last_look_rings_the_sleeping_thread() {
        // The window that once left a connection queued for
        // IDLE_THREAD_TIMEOUT (30 s): the thread has looked at the queue
        // and is about to sleep in epoll when the connection is queued.
        let e = engine(4);
        let waiting = e.start_waiting();
        assert!(e.try_take().is_none());
        e.enqueue(pair().0).map_err(drop).expect("queued");
        assert_eq!(pool_ready(&e), Some(DOORBELL), "the sleep ends at once");
        assert_eq!(waiting.leave(), 0);
        e.answer_doorbell();
        assert!(e.try_take().is_some());
        assert_eq!(pool_ready(&e), None, "one ring, one wake");
    }

    #[test]
    fn every_queued_connection_rings_once_so_none_is_stranded() {
        // Two threads asleep in epoll, two connections queued: each ring
        // wakes one thread (a semaphore eventfd), so the second connection
        // does not wait for a timeout while a thread sleeps.
        let e = engine(4);
        let first = e.start_waiting();
        let second = e.start_waiting();
        assert!(e.try_take().is_none() && e.try_take().is_none());
        e.enqueue(pair().0).map_err(drop).expect("queued");
        e.enqueue(pair().0).map_err(drop).expect("queued");
        for waiter in [first, second] {
            assert_eq!(pool_ready(&e), Some(DOORBELL));
            waiter.leave();
            e.answer_doorbell();
            assert!(e.try_take().is_some());
        }
        assert_eq!(pool_ready(&e), None);
        assert_eq!(e.queued(), 0);
    }

    #[test]
    fn a_ring_for_a_connection_the_last_look_took_costs_one_spurious_wake() {
        // Queued between registering and the look: the look takes it and
        // the ring stays. The next sleep wakes once for nothing, then
        // sleeps: harmless, and nothing is lost.
        let e = engine(4);
        let waiting = e.start_waiting();
        e.enqueue(pair().0).map_err(drop).expect("queued");
        assert!(e.try_take().is_some());
        waiting.leave();
        let again = e.start_waiting();
        assert!(e.try_take().is_none());
        assert_eq!(pool_ready(&e), Some(DOORBELL));
        again.leave();
        e.answer_doorbell();
        assert!(e.try_take().is_none());
        assert_eq!(pool_ready(&e), None);
    }

    #[test]
    fn a_full_queue_gives_the_connection_back() {
        let e = engine(1);
        e.enqueue(pair().0).map_err(drop).expect("queued");
        assert!(e.enqueue(pair().0).is_err(), "given back, not dropped");
        assert_eq!(e.backlog(), 1);
        e.stats().set_held(1);
        assert_eq!(e.backlog(), 2, "held by the reactor counts too");
    }

    #[test]
    fn a_dequeue_wakes_a_backlogged_reactor_once_per_turn() {
        let e = engine(4);
        e.on_dequeue();
        assert!(!reactor_woken(&e), "not backlogged: no wake-up");
        e.set_backlogged(true);
        e.on_dequeue();
        e.on_dequeue();
        assert!(reactor_woken(&e));
        assert!(e.reactor.wake_pending.load(Ordering::Acquire));
        // The reactor's turn: drained, then the next dequeue wakes again.
        e.on_wake();
        assert!(!reactor_woken(&e));
        e.on_dequeue();
        assert!(reactor_woken(&e));
    }

    #[test]
    fn a_stop_wakes_the_reactor_and_is_seen_by_all() {
        let e = engine(4);
        assert!(!e.stats().is_stopping());
        e.begin_stop();
        assert!(e.stats().is_stopping());
        assert!(reactor_woken(&e));
    }

    #[test]
    fn busy_and_reading_fall_when_a_handler_panics() {
        let e = engine(4);
        let stats = e.stats();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let _busy = stats.serving();
            let _reading = stats.reading_one();
            assert_eq!((stats.busy(), stats.reading()), (1, 1));
            panic!("in the handler");
        }));
        assert!(panicked.is_err());
        assert_eq!((stats.busy(), stats.reading()), (0, 0));
    }

    #[test]
    fn a_waiter_dropped_without_leaving_is_counted_out() {
        let e = engine(4);
        let one = e.start_waiting();
        let two = e.start_waiting();
        assert_eq!(e.stats().waiting(), 2);
        drop(one);
        assert_eq!(two.leave(), 0);
    }

    #[test]
    fn thread_slots_stop_at_max_and_fall_with_their_thread() {
        let e = engine(4);
        let a = e.add_thread(2).expect("first");
        let b = e.add_thread(2).expect("second");
        assert!(e.add_thread(2).is_none(), "max is 2");
        assert_eq!(e.stats().threads(), 2);
        drop(a);
        assert_eq!(e.stats().threads(), 1);
        // A thread that panics still counts itself out.
        let dying = std::thread::spawn(move || {
            let _slot = b;
            panic!("in a pool thread");
        });
        assert!(dying.join().is_err());
        assert_eq!(e.stats().threads(), 0);
    }

    #[test]
    fn trimming_never_goes_below_min_and_a_rejoin_counts_again() {
        let e = engine(4);
        let mut a = e.add_thread(4).expect("a");
        let mut b = e.add_thread(4).expect("b");
        assert!(a.leave_above(1), "2 > min 1: a may go");
        assert!(!b.leave_above(1), "1 = min: b stays");
        assert_eq!(e.stats().threads(), 1);
        a.rejoin(); // a connection was queued meanwhile: a stays
        assert_eq!(e.stats().threads(), 2);
        assert!(a.leave_above(1));
        drop(a); // already counted out: not twice
        assert_eq!(e.stats().threads(), 1);
        drop(b);
        assert_eq!(e.stats().threads(), 0);
    }

    #[test]
    fn retiring_rings_once_per_thread() {
        let e = engine(4);
        let slots: Vec<_> = (0..3).map(|_| e.add_thread(3).expect("slot")).collect();
        e.retire();
        assert!(e.is_retired());
        for _ in 0..3 {
            assert_eq!(pool_ready(&e), Some(DOORBELL));
            e.answer_doorbell();
        }
        assert_eq!(pool_ready(&e), None);
        drop(slots);
    }

    #[test]
    fn a_parked_connection_gets_a_fresh_generation_and_its_bytes_wake_the_pool() {
        let e = engine(4);
        let (conn, mut client) = served_once();
        let (conn2, _client2) = served_once();
        let fd = conn.fd();
        e.park_keep_alive(conn);
        e.park_keep_alive(conn2);
        assert_eq!(e.parking().len(), 2);
        assert_eq!(pool_ready(&e), None, "idle: nothing to wake for");
        client.write_all(b"GET /next").expect("write");
        let token = pool_ready(&e).expect("the bytes wake a pool thread");
        assert_eq!(token_fd(token), fd);
        let p = e.parking().take(fd, token).expect("the event finds it");
        assert!(p.conn.pooled());
        assert_eq!(p.conn.token(), token);
        // Idle, so the persistent deadline (1000 s) applies.
        let left = p.deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(900), "{left:?}");
        // Parked again (the same token, re-armed): one shot per park.
        e.park(p);
        assert_eq!(pool_ready(&e), Some(token));
        assert!(e.parking().take(fd, token).is_some());
        assert_eq!(pool_ready(&e), None, "one-shot: disarmed until re-parked");
    }

    #[test]
    fn generations_differ_between_connections() {
        let e = engine(4);
        let (a, _ca) = served_once();
        let (b, _cb) = served_once();
        let (fa, fb) = (a.fd(), b.fd());
        e.park_keep_alive(a);
        e.park_keep_alive(b);
        let ta = e.parking().take(fa, u64::MAX).map(|_| ());
        assert!(ta.is_none(), "a wrong token takes nothing");
        let (pa, pb) = (take_any(&e, fa), take_any(&e, fb));
        assert_ne!(pa.conn.token() >> 32, pb.conn.token() >> 32);
    }

    /// Takes the connection parked under `fd`, whatever its token.
    fn take_any(e: &Engine, fd: RawFd) -> Parked {
        (0..64)
            .find_map(|g| e.parking().take(fd, (g << 32) | fd as u64))
            .expect("parked")
    }

    #[test]
    fn a_connection_parked_while_stopping_is_closed() {
        let e = engine(4);
        let (conn, mut client) = served_once();
        e.begin_stop();
        e.park_keep_alive(conn);
        assert_eq!(e.parking().len(), 0);
        assert!(testing::closed(&mut client));
    }

    #[test]
    fn a_writer_is_parked_for_writability_and_counted_for_the_stop() {
        let e = engine(4);
        let (conn, _client) = served_once();
        let fd = conn.fd();
        let out = Box::new(Outgoing::new(b"rest".to_vec(), true));
        e.begin_stop(); // writers are parked even while stopping
        e.park_writer(conn, out);
        assert_eq!(e.parking().writers(), 1);
        let token = pool_ready(&e).expect("writable at once");
        let p = e.parking().take(fd, token).expect("parked");
        assert!(p.outgoing.is_some());
        assert_eq!(e.parking().writers(), 0);
        let left = p.deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(15) && left <= Duration::from_secs(20));
    }

    #[test]
    fn listener_tokens_name_no_connection_and_not_the_doorbell() {
        assert_eq!(listener_index(LISTENER_TOKEN_TOP), Some(0));
        assert_eq!(listener_index(LISTENER_TOKEN_TOP - 5), Some(5));
        assert_eq!(listener_index(DOORBELL), None);
        // A connection's token: any generation above a non-negative fd.
        let newest = (u64::from(u32::MAX) << 32) | i32::MAX as u64;
        for token in [0, (7 << 32) | 3, newest] {
            assert_eq!(listener_index(token), None, "{token:x}");
        }
    }

    #[test]
    fn taking_the_listeners_back_waits_for_an_accept_under_way() {
        let e = engine(4);
        let (listener, _file) = crate::listeners::testing::unix();
        e.share_listener(Arc::new(listener), Arc::from("unix:///test"))
            .expect("shared");
        assert!(e.shares_listeners());
        // A pool thread between its event and its hand-over holds this.
        let accepting = e.listener(0).expect("shared");
        let stop = {
            let e = Arc::clone(&e);
            std::thread::spawn(move || e.unshare_listeners())
        };
        assert!(!stop.is_finished(), "the stop waits for the accept");
        drop(accepting);
        stop.join().expect("the stop");
        assert!(e.listener(0).is_none() && !e.shares_listeners());
    }

    #[test]
    fn a_new_connection_parked_as_a_stop_begins_goes_to_the_reactor() {
        let e = engine(4);
        let (conn, _client) = pair();
        e.begin_stop();
        // Its first request may be on its way: the stopping reactor gives
        // it a grace (a kept-alive one would be closed).
        e.park(Parked::waiting(conn, Instant::now(), false));
        assert_eq!(e.parking().len(), 0);
        assert_eq!(e.take_handed(true).len(), 1);
        // Once the reactor has stopped, one handed over is closed.
        let (conn, mut client) = pair();
        e.hand_to_reactor(Parked::waiting(conn, Instant::now(), false));
        assert!(e.take_handed(false).is_empty());
        assert!(testing::closed(&mut client));
    }

    #[test]
    fn a_long_send_lends_the_turn_and_a_follower_is_offered_it() {
        let e = engine(4);
        let stats = e.stats();
        assert!(e.lend_turn().is_none(), "a thread not taking events");
        let turn = stats.join_active(1, false).expect("the first taker");
        assert!(stats.join_active(1, false).is_none(), "one is the limit");
        {
            let lent = e.lend_turn().expect("this thread takes events");
            assert!(e.lend_turn().is_none(), "lent once, not twice");
            assert_eq!(stats.active(), 0, "away in its send");
            // Nobody sleeps in the pool's epoll: a follower is offered
            // the turn through the queue, once however many lend.
            assert_eq!(e.queued(), 1);
            assert!(
                matches!(e.take_timeout(Duration::from_secs(60)), Taken::Turn),
                "offer, not a connection"
            );
            assert_eq!(e.queued(), 0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let taken = stats.join_active(1, false);
                    assert!(taken.is_some(), "the follower takes the lent turn");
                });
            });
            drop(lent);
        }
        assert_eq!(stats.active(), 1, "back, and the other has left");
        // With a thread asleep in the pool's epoll, nothing is offered.
        let waiting = e.start_waiting();
        let lent = e.lend_turn().expect("taking events again");
        assert_eq!(e.queued(), 0);
        drop((lent, waiting, turn));
        assert_eq!(stats.active(), 0);
        assert!(e.lend_turn().is_none(), "the turn is gone");
        // An offer left in the queue is passed over by try_take.
        let turn = stats.join_active(1, false).expect("a taker");
        let lent = e.lend_turn().expect("lent");
        e.enqueue(pair().0).map_err(drop).expect("queued");
        assert!(e.try_take().is_some(), "the connection behind the offer");
        assert_eq!(e.queued(), 0);
        drop((lent, turn));
    }
}
