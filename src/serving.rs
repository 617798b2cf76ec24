//! A serving process's threads, from start to graceful stop: the single
//! process and every cluster worker run the same steps (Puma's
//! `Runner#start_server`). Boot the app, start the pool and the reactor
//! (the first threads of the process: nothing may fork after), count the
//! pool's load, and stop: stop the reactor (no more accepts, idle
//! connections closed), let the requests in flight and the upgraded
//! connections (told of the stop) finish within `shutdown_timeout`, shut
//! down the upgraded ones still open then, and before a hot restart's
//! exec, wait for the pool threads to let go of the engine.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::connection::Limits;
use crate::control::PoolStats;
use crate::engine::Engine;
use crate::listeners::Listener;
use crate::log;
use crate::notify::Notifier;
use crate::pool::{self, Pool};
use crate::reactor::{Reactor, Timeouts};
use crate::supervisor::{second_signal, wait_signal, StopDeadline};
use crate::{Config, Handler};

/// Before a hot restart execs, the longest wait for the pool threads to
/// exit (they do once idle, within `pool::FOLLOWER_IDLE_POLL`; a handler
/// still running past `shutdown_timeout` may hold one longer).
pub(crate) const RESTART_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The threads serving requests, and how to reach them.
pub(crate) struct Serving {
    pub(crate) engine: Arc<Engine>,
    reactor: JoinHandle<(Vec<Listener>, Pool)>,
}

impl Serving {
    /// This process's pool as `/stats`, STATUS= and a worker's report
    /// count it.
    pub(crate) fn pool_stats(&self, config: &Config) -> PoolStats {
        let stats = self.engine.stats();
        PoolStats {
            backlog: self.engine.backlog() as u64,
            running: stats.threads() as u64,
            busy: stats.busy() as u64,
            max_threads: config.max_threads as u64,
            requests: stats.requests(),
            connections: crate::connection::open_connections() as u64,
        }
    }
}

/// Runs the app's `Handler::boot` for this serving process.
pub(crate) fn boot(handler: &dyn Handler) -> Result<(), String> {
    handler
        .boot()
        .map_err(|e| format!("the application failed to boot: {e}"))
}

/// Starts the reactor and the pool for a booted `handler`.
pub(crate) fn start_serving(
    config: &Config,
    handler: Box<dyn Handler>,
    listeners: Vec<Listener>,
) -> Result<Serving, String> {
    let engine = Arc::new(Engine::new(
        handler,
        Limits::from_config(config),
        config.max_threads.max(1) * pool::QUEUE_PER_THREAD,
    )?);
    let timeouts = Timeouts {
        first_data: config.first_data_timeout,
        persistent: config.persistent_timeout,
        shutdown: config.shutdown_timeout,
    };
    let pool = Pool::start(
        Arc::clone(&engine),
        config.min_threads,
        config.max_threads,
        pool::epoll_waiters(config.workers),
    )
    .map_err(|e| format!("cannot start the thread pool: {e}"))?;
    let reactor = Reactor::new(listeners, pool, Arc::clone(&engine), timeouts)
        .map_err(|e| format!("cannot start the reactor: {e}"))?;
    let reactor = std::thread::Builder::new()
        .name("catamount-reactor".into())
        .spawn(move || reactor.run())
        .map_err(|e| format!("cannot start the reactor thread: {e}"))?;
    Ok(Serving { engine, reactor })
}

/// What is left to wait for once the reactor has stopped.
pub(crate) struct Draining {
    pub(crate) engine: Arc<Engine>,
    pool: Pool,
    deadline: StopDeadline,
}

/// Stops accepting, closes idle connections, hands requests already
/// received to the pool; returns the listeners, still open. `Err` when a
/// second TERM/INT asked to exit at once.
pub(crate) fn stop_reactor(
    config: &Config,
    serving: Serving,
    signals: &OwnedFd,
) -> Result<(Vec<Listener>, Draining), ()> {
    let deadline = StopDeadline::new(config.shutdown_timeout);
    let engine = serving.engine;
    engine.begin_stop();
    while !serving.reactor.is_finished() {
        if second_signal(signals) {
            return Err(());
        }
        wait_signal(signals);
    }
    match serving.reactor.join() {
        Ok((listeners, pool)) => Ok((
            listeners,
            Draining {
                engine,
                pool,
                deadline,
            },
        )),
        Err(_) => {
            log::error("! the reactor thread panicked");
            Err(())
        }
    }
}

/// Lets in-flight requests finish, bounded by `shutdown_timeout`. `Err`
/// when a second TERM/INT asked to exit at once. `notifier` is `None` in a
/// cluster worker: only the master talks to systemd.
pub(crate) fn wait_in_flight(
    config: &Config,
    mut d: Draining,
    signals: &OwnedFd,
    notifier: Option<&Notifier>,
) -> Result<(), ()> {
    let stats = d.engine.stats();
    let upgrades = d.engine.upgrades();
    let mut last_done = u64::MAX;
    // Responses the pool finishes from its epoll (clients reading
    // slowly) are in flight too, and so are upgraded connections (told
    // of the stop by `Engine::begin_stop`, they finish on their own
    // threads).
    while stats.busy() > 0
        || stats.reading() > 0
        || d.engine.parking().writers() > 0
        || d.pool.queued() > 0
        || upgrades.open() > 0
    {
        // While requests keep completing, ask systemd for more time, so a
        // long but healthy drain is not killed by TimeoutStopSec=.
        let done = stats.requests();
        if let Some(notifier) = notifier.filter(|_| done != last_done) {
            if d.deadline.extend(notifier) {
                last_done = done;
            }
        }
        if second_signal(signals) {
            return Err(());
        }
        // The reactor, which closes writers past write_timeout, has
        // stopped: close them here, so a client that takes nothing holds
        // a stop (and a hot restart's accept queue) no longer than it
        // would hold a running server.
        let mut expired = Vec::new();
        d.engine.parking().expire(Instant::now(), &mut expired);
        drop(expired);
        if d.deadline.passed() {
            log::warn(&format!(
                "! Shutdown timeout ({}s) reached with {} request(s) in flight and {} response(s) \
                 still being sent; going on without them",
                crate::log::Seconds::exact(config.shutdown_timeout),
                stats.busy(),
                d.engine.parking().writers()
            ));
            // Whatever their threads do, the clients see the end now and
            // the apps' reads and writes fail: nothing hangs the stop.
            let ended = upgrades.shut_down_all();
            if ended > 0 {
                log::warn(&format!(
                    "! Shut down {ended} upgraded connection(s) still open at the shutdown timeout"
                ));
            }
            break;
        }
        wait_signal(signals);
    }
    Ok(())
}

/// Before a hot restart moves the listeners to fds 3, 4, ...: waits until
/// the pool threads have let go of the engine, then drops it here, so the
/// descriptors it owns (the app's docroot, its cached files, parked
/// connections) are closed now. Dropped later by an exiting pool thread,
/// one of them would close its number after `dup2` had given that number
/// to a listener, and the new image would find the fd gone (seen in
/// tests/control.rs: the docroot, opened first, holds fd 3). `Err` when a
/// second TERM/INT asked to exit at once.
pub(crate) fn release_engine(engine: Arc<Engine>, signals: &OwnedFd) -> Result<(), ()> {
    // Upgraded connections live on threads of the app's function, which
    // may give them back at any time: from here on none closes a
    // descriptor (the exec does), and any still open are shut down.
    engine.upgrades().seal();
    let deadline = Instant::now() + RESTART_RELEASE_TIMEOUT;
    // The reactor is joined and the pool dropped: only the pool threads
    // (through `pool::Shared` and their `ThreadSlot`) still hold the
    // engine besides this clone.
    while Arc::strong_count(&engine) > 1 {
        if second_signal(signals) {
            return Err(());
        }
        if Instant::now() >= deadline {
            log::warn(&format!(
                "! pool threads still running {}s after the drain; restarting anyway",
                crate::log::Seconds::exact(RESTART_RELEASE_TIMEOUT)
            ));
            return Ok(());
        }
        wait_signal(signals);
    }
    drop(engine);
    Ok(())
}
