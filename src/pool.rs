//! The thread pool: between `min` and `max` threads taking connections
//! (each with a complete request head buffered) from one bounded crossbeam
//! channel. Threads are spawned on demand up to `max` and trimmed back to
//! `min` after [`IDLE_THREAD_TIMEOUT`] without work. The channel's bound is
//! the backpressure: when it is full the reactor stops accepting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::connection::{self, Conn, Engine};

/// A thread above `min` that waited this long for work exits (Puma trims
/// idle threads every 30 s).
pub const IDLE_THREAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Queued connections (each with a complete request) allowed per pool
/// thread before the reactor stops accepting. Measured on 2 cores, small
/// keep-alive at 64 connections, -t 5:5: 1 → 55k req/s, 4 → 72k, 8 →
/// 89k, 16 → 90k; below 8 the reactor is woken for every dequeue. Deeper
/// queues delay the backpressure that lets sibling workers take load.
pub const QUEUE_PER_THREAD: usize = 8;

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
    /// Connections with a complete request waiting for a thread.
    pub queued: AtomicUsize,
    /// Set at the start of a graceful stop: answer in-flight requests with
    /// `Connection: close`, hand nothing back to the reactor.
    pub stopping: AtomicBool,
}

/// The sending side, owned by the reactor.
pub struct Pool {
    tx: Sender<Conn>,
    rx: Receiver<Conn>,
    engine: Arc<Engine>,
    min: usize,
    max: usize,
}

impl Pool {
    /// Starts `min` threads. Call only after every fork.
    pub fn start(engine: Arc<Engine>, min: usize, max: usize) -> Pool {
        let (tx, rx) = crossbeam_channel::bounded(max.max(1) * QUEUE_PER_THREAD);
        let pool = Pool {
            tx,
            rx,
            engine,
            min,
            max,
        };
        for _ in 0..min {
            pool.spawn();
        }
        pool
    }

    /// Queues a connection; gives it back when the queue is full.
    pub fn try_dispatch(&self, conn: Conn) -> Result<(), Conn> {
        match self.tx.try_send(conn) {
            Ok(()) => {
                self.grow_if_needed();
                Ok(())
            }
            Err(TrySendError::Full(c)) | Err(TrySendError::Disconnected(c)) => {
                self.grow_if_needed();
                Err(c)
            }
        }
    }

    /// Queues a connection, waiting up to `timeout` for room (used while
    /// stopping, to hand over requests already received).
    pub fn dispatch_wait(&self, conn: Conn, timeout: Duration) {
        self.grow_if_needed();
        let _ = self.tx.send_timeout(conn, timeout);
    }

    /// Connections queued and not yet taken by a thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    fn grow_if_needed(&self) {
        let stats = &self.engine.stats;
        let threads = stats.threads.load(Ordering::Acquire);
        if threads < self.max && self.tx.len() > stats.waiting.load(Ordering::Acquire) {
            self.spawn();
        }
    }

    fn spawn(&self) {
        let stats = &self.engine.stats;
        stats.threads.fetch_add(1, Ordering::AcqRel);
        let rx = self.rx.clone();
        let engine = Arc::clone(&self.engine);
        let min = self.min;
        let spawned = std::thread::Builder::new()
            .name("catamount-pool".into())
            .spawn(move || worker_loop(&engine, &rx, min));
        if let Err(e) = spawned {
            stats.threads.fetch_sub(1, Ordering::AcqRel);
            eprintln!("! could not start a pool thread: {e}; serving with the threads running");
        }
    }
}

fn worker_loop(engine: &Engine, rx: &Receiver<Conn>, min: usize) {
    let stats = &engine.stats;
    loop {
        stats.waiting.fetch_add(1, Ordering::AcqRel);
        let got = rx.recv_timeout(IDLE_THREAD_TIMEOUT);
        stats.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(conn) => {
                engine.on_dequeue();
                connection::serve(engine, conn, rx);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Trim: leave unless that would go below min.
                let left = stats
                    .threads
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n > min).then(|| n - 1)
                    });
                if left.is_ok() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                stats.threads.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }
}
