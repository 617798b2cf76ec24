//! Cluster mode's runner (Puma's `cluster.rb`, `cluster/worker_handle.rb`
//! and `cluster/worker.rb`): a single-threaded master forks N workers that
//! each run their own reactor and pool on the shared listening sockets.
//!
//! The master never starts a thread (fork is sound only then). The
//! supervisor's loop (supervisor.rs) runs in it and, besides the signal
//! self-pipe and the control app, polls one pipe on which every worker
//! reports boot and checks in with its stats every [`CHECKIN_INTERVAL`].
//! From those [`Master`] supervises the workers: replaces those that die,
//! hang (`worker_timeout`) or never boot (`worker_boot_timeout`,
//! exponential backoff instead of a crash loop), recycles workers over
//! `max_requests` or `worker_max_rss`, and runs phased restarts one
//! worker at a time. A [`Worker`] handle escalates a stop: TERM, then
//! KILL after `shutdown_timeout`. Only the master talks to systemd;
//! workers exit when the master dies (PR_SET_PDEATHSIG).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use crate::control::PoolStats;
use crate::date;
use crate::landlock;
use crate::listeners::{Listener, Tls};
use crate::log;
use crate::notify::Notifier;
use crate::serving::{self, Serving};
use crate::supervisor::{
    self, cleanup, load_words, stats_json, After, Log, MasterOnly, Mode, Process, Progress, Runner,
    StartFailure, StopDeadline,
};
use crate::sys::{self, Forked};
use crate::{Config, Handler};

/// Workers report their stats this often (Puma's interval).
pub const CHECKIN_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest check-in interval `idle_timeout` asks for.
const MIN_CHECKIN_INTERVAL: Duration = Duration::from_millis(10);
/// First delay before respawning a worker that died while booting; it
/// doubles with each failure in a row.
pub const RESPAWN_BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest delay between respawns of a worker that keeps failing to boot.
pub const RESPAWN_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The longest the master sleeps between looks at its timers.
const MASTER_TICK: Duration = Duration::from_millis(250);
/// `max_requests` is spread by up to this fraction per worker, so workers
/// do not all recycle at once.
const MAX_REQUESTS_JITTER_DIV: u64 = 10;
/// While `max_requests` is set, a worker looks at its count this often
/// and reports as soon as it crosses its limit.
const RECYCLE_CHECK: Duration = Duration::from_millis(100);

/// One worker process, as the master sees it (Puma's `WorkerHandle`).
struct Worker {
    index: usize,
    pid: libc::pid_t,
    phase: u32,
    spawned: Instant,
    state: State,
    last_checkin: Instant,
    stats: PoolStats,
    /// Wall-clock times of `spawned` and `last_checkin`, for `/stats`.
    spawned_at: SystemTime,
    last_checkin_at: SystemTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Booting,
    Running,
    /// Asked to stop (TERM) at this time.
    Retiring(Instant),
    /// Sent SIGKILL (hung, or not stopping): only reaping is left.
    Killed,
}

impl Worker {
    /// Neither retiring nor killed: it holds its slot.
    fn active(&self) -> bool {
        !matches!(self.state, State::Retiring(_) | State::Killed)
    }

    /// The first step of a stop: TERM, then it has `shutdown_timeout` to
    /// finish its requests and exit.
    fn retire(&mut self) {
        if self.active() {
            self.state = State::Retiring(Instant::now());
            let _ = sys::kill(self.pid, libc::SIGTERM);
        }
    }

    /// The last step: SIGKILL; the reaper removes the body.
    fn kill(&mut self) {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        self.state = State::Killed;
    }

    /// Why it must be killed now, if it must: it did not boot within
    /// `worker_boot_timeout`, did not check in within `worker_timeout`, or
    /// did not stop within `shutdown_timeout` of its TERM.
    fn overdue(&self, now: Instant, config: &Config) -> Option<String> {
        let (late, limit, since) = match self.state {
            State::Booting => ("boot", config.worker_boot_timeout, self.spawned),
            State::Running => ("check in", config.worker_timeout, self.last_checkin),
            State::Retiring(since) => {
                let limit = config.shutdown_timeout;
                return (now.duration_since(since) > limit).then(|| {
                    format!(
                        "! Worker {} (PID: {}) did not stop within {}s; killing it",
                        self.index,
                        self.pid,
                        log::Seconds::exact(limit)
                    )
                });
            }
            State::Killed => return None,
        };
        (now.duration_since(since) > limit).then(|| {
            format!(
                "! Terminating timed out worker (Worker {} failed to {late} within {}s): {}",
                self.index,
                log::Seconds::exact(limit),
                self.pid
            )
        })
    }
}

/// The cluster master: the workers and what replaces them.
pub struct Master<'a> {
    config: Config,
    /// Moved into each worker (the master's own copy is never called).
    handler: Option<Box<dyn Handler>>,
    listeners: Vec<Listener>,
    notifier: &'a Notifier,
    log: Log,
    signals: &'a OwnedFd,
    workers: Vec<Worker>,
    phase: u32,
    /// Worker pipe: workers write lines, the master reads.
    report_rd: OwnedFd,
    report_wr: OwnedFd,
    report_buf: Vec<u8>,
    /// Boot failures in a row per index, and when it may be spawned again.
    failures: Vec<(u32, Option<Instant>)>,
    /// Indexes waiting to be replaced one at a time (phased restart, recycling).
    replace_queue: VecDeque<usize>,
    /// A replacement in progress: (index, pid of the new worker).
    replacing: Option<(usize, libc::pid_t)>,
    /// A phased restart is running.
    phased_running: bool,
    /// A phased restart has ended since the last turn: READY=1 ends it.
    phased_done: bool,
    /// Every slot has had a running worker: the cluster has started.
    booted: bool,
    /// The worker count set with TTIN/TTOU, kept across reloads.
    resized: Option<usize>,
    started: Instant,
    recycled: u64,
}

impl<'a> Master<'a> {
    pub fn new(
        config: Config,
        handler: Box<dyn Handler>,
        listeners: Vec<Listener>,
        process: Process<'a>,
    ) -> Master<'a> {
        let (report_rd, report_wr) = sys::pipe().expect("a pipe at start-up (out of descriptors?)");
        let n = config.workers;
        Master {
            config,
            handler: Some(handler),
            listeners,
            notifier: process.notifier,
            log: process.log,
            signals: process.signals,
            workers: Vec::new(),
            phase: 0,
            report_rd,
            report_wr,
            report_buf: Vec::new(),
            failures: vec![(0, None); n],
            replace_queue: VecDeque::new(),
            replacing: None,
            phased_running: false,
            phased_done: false,
            booted: false,
            resized: None,
            started: Instant::now(),
            recycled: 0,
        }
    }
}

impl Runner for Master<'_> {
    const MODE: Mode = Mode::Cluster;

    fn config(&self) -> &Config {
        &self.config
    }

    fn turn(&mut self, master: &mut MasterOnly<'_>) -> Progress {
        self.read_reports();
        self.reap();
        self.check_timeouts();
        self.spawn_missing(master);
        self.advance_replacements(master);
        if !self.booted {
            if self.all_slots_running() {
                self.booted = true;
            } else if self.started.elapsed() > self.config.worker_boot_timeout
                && !self.workers.iter().any(|w| w.state == State::Running)
            {
                return Progress::Failed(StartFailure {
                    why: format!(
                        "no worker booted within worker_boot_timeout ({}s); see the errors above",
                        log::Seconds::exact(self.config.worker_boot_timeout)
                    ),
                    errno: libc::ETIMEDOUT,
                });
            } else {
                return Progress::Starting;
            }
        }
        Progress::Serving {
            reloaded: std::mem::take(&mut self.phased_done),
        }
    }

    fn wait(&self, fds: &mut Vec<RawFd>) -> Option<Duration> {
        fds.push(self.report_rd.as_raw_fd());
        Some(MASTER_TICK)
    }

    /// Fed only while workers check in: a crash-looping or hung cluster
    /// starves the watchdog.
    fn alive(&mut self, now: Instant) -> bool {
        let window = checkin_interval(&self.config) * 2;
        self.workers
            .iter()
            .any(|w| w.state == State::Running && now.duration_since(w.last_checkin) <= window)
    }

    /// Quiet: every worker running and, in its last report, with no
    /// connection open, none served or queued; the stamp is the workers'
    /// request total (a report arrives every check-in interval, so a
    /// request served between two reports still moves it).
    fn quiet(&self) -> Option<u64> {
        let running: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.state == State::Running)
            .collect();
        if running.len() < self.config.workers {
            return None;
        }
        let mut total = 0;
        for w in running {
            let s = &w.stats;
            if s.connections > 0 || s.busy > 0 || s.backlog > 0 {
                return None;
            }
            total += s.requests;
        }
        Some(total)
    }

    fn listener_fds(&self) -> Vec<RawFd> {
        self.listeners.iter().map(|l| l.fd.as_raw_fd()).collect()
    }

    /// `cluster 2/2 workers, 3/10 threads busy, 0 queued, 1523 requests, phase 0`.
    fn status(&self) -> String {
        let running: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.state == State::Running)
            .collect();
        let sum = |f: fn(&PoolStats) -> u64| running.iter().map(|w| f(&w.stats)).sum::<u64>();
        let total = PoolStats {
            backlog: sum(|s| s.backlog),
            running: sum(|s| s.running),
            busy: sum(|s| s.busy),
            max_threads: sum(|s| s.max_threads),
            requests: sum(|s| s.requests),
            connections: sum(|s| s.connections),
        };
        let mut s = format!(
            "{} {}/{} workers, {}, phase {}",
            Self::MODE.name(),
            running.len(),
            self.config.workers,
            load_words(&total),
            self.phase
        );
        let backing_off: Vec<String> = self
            .failures
            .iter()
            .enumerate()
            .filter(|(_, f)| f.1.is_some_and(|t| t > Instant::now()))
            .map(|(i, f)| format!("worker {i} failed to boot {}x", f.0))
            .collect();
        if !backing_off.is_empty() {
            s.push_str(&format!(", backing off: {}", backing_off.join(", ")));
        }
        if self.recycled > 0 {
            s.push_str(&format!(", {} recycled", self.recycled));
        }
        s
    }

    /// Puma's cluster fields (cluster.rb `stats`), then catamount's own.
    /// Workers being retired are left out: they no longer accept
    /// connections.
    fn stats(&self) -> String {
        let now = Instant::now();
        let listed: Vec<&Worker> = self.workers.iter().filter(|w| w.active()).collect();
        let status: Vec<String> = listed
            .iter()
            .map(|w| {
                let booted = w.state == State::Running;
                // As Puma: `{}` until the first check-in, which for a
                // catamount worker is the one that says it booted.
                let last_status = if booted {
                    format!("{{{}}}", w.stats.puma_members())
                } else {
                    "{}".to_string()
                };
                let members = format!(
                    r#""pid":{},"index":{},"phase":{},"booted":{},"last_checkin":"{}","last_status":{},"last_checkin_secs_ago":{},"busy":{},"max_threads":{},"queued":{},"requests":{}"#,
                    w.pid,
                    w.index,
                    w.phase,
                    booted,
                    date::iso8601(w.last_checkin_at),
                    last_status,
                    now.duration_since(w.last_checkin).as_secs(),
                    w.stats.busy,
                    w.stats.max_threads,
                    w.stats.backlog,
                    w.stats.requests
                );
                stats_json(w.spawned_at, &members)
            })
            .collect();
        let booted = listed.iter().filter(|w| w.state == State::Running).count();
        let old = listed.iter().filter(|w| w.phase != self.phase).count();
        let requests: u64 = self.workers.iter().map(|w| w.stats.requests).sum();
        format!(
            r#""workers":{},"phase":{},"booted_workers":{booted},"old_workers":{old},"worker_status":[{}],"mode":"{}","requests":{requests}"#,
            listed.len(),
            self.phase,
            status.join(","),
            Self::MODE.name()
        )
    }

    /// New workers run the app with `new`; a smaller count retires the
    /// workers above it. A count changed with TTIN/TTOU survives.
    fn reconfigure(&mut self, new: Config) {
        let before = self.config.workers;
        self.config = new;
        if let Some(n) = self.resized {
            self.config.workers = n;
        }
        self.failures
            .resize(self.config.workers.max(self.failures.len()), (0, None));
        if self.config.workers < before {
            self.retire_above(self.config.workers);
        }
        if let Some(h) = self.handler.as_mut() {
            h.reconfigure(&self.config);
        }
    }

    fn phased_restart(&mut self, what: &str, new: Config) {
        let before = self.config.clone();
        self.reconfigure(new);
        self.warn_unapplied(what, &before);
        // New workers get freshly read certificates (rotation without a
        // hot restart); the reload's check has just proved they load.
        for l in &mut self.listeners {
            if let Some(tls) = &mut l.tls {
                match Tls::load(&tls.options) {
                    Ok(fresh) => *tls = fresh,
                    Err(e) => log::warn(&format!("! {}: keeping the old certificate: {e}", l.url)),
                }
            }
        }
        self.phase += 1;
        self.log.say(&format!(
            "- Starting phased worker restart, phase: {}",
            self.phase
        ));
        self.phased_running = true;
        self.replace_queue.clear();
        self.replace_queue.extend(0..self.config.workers);
    }

    /// TTIN/TTOU: one worker more or fewer (never below 1).
    fn resize(&mut self, more: bool) {
        let n = match (more, self.config.workers) {
            (true, n) => n + 1,
            (false, n) if n <= 1 => {
                self.log
                    .say("- SIGTTOU: 1 worker is the least; none stopped");
                return;
            }
            (false, n) => n - 1,
        };
        self.resized = Some(n);
        self.log.say(&format!("- Worker count now {n}"));
        self.config.workers = n;
        if self.failures.len() < n {
            self.failures.resize(n, (0, None));
        }
        self.retire_above(n);
    }

    /// TERM to every worker, then waits for them (KILL after
    /// `shutdown_timeout`).
    fn stop(mut self, after: After) -> Result<Vec<Listener>, ()> {
        let stopped = self.stop_workers();
        if after == After::Exit {
            cleanup(&self.config, &self.listeners);
        }
        stopped.map(|()| self.listeners)
    }

    fn kill(mut self) {
        self.kill_all(libc::SIGKILL);
        while !self.workers.is_empty() {
            self.reap();
            supervisor::wait_signal(self.signals);
        }
        cleanup(&self.config, &self.listeners);
    }
}

impl Master<'_> {
    /// After a phased reload: says which changed settings it cannot apply
    /// (new workers inherit the master's listeners and control socket), so
    /// a changed `bind` is never silently ignored.
    fn warn_unapplied(&self, what: &str, before: &Config) {
        let new = &self.config;
        let changed: Vec<&str> = [
            ("bind", before.binds != new.binds),
            ("control_url", before.control_url != new.control_url),
            (
                "bind_to_activated_sockets",
                before.activated != new.activated,
            ),
            ("fd_store", before.fd_store != new.fd_store),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        if !changed.is_empty() {
            log::warn(&format!(
                "! {what}: {} changed, which a phased restart cannot apply (the workers keep \
                 the master's sockets); send SIGUSR2 for a hot restart to apply it",
                changed.join(", ")
            ));
        }
    }

    /// Retires the workers at index `n` and above.
    fn retire_above(&mut self, n: usize) {
        for w in self.workers.iter_mut().filter(|w| w.index >= n) {
            w.retire();
        }
    }

    fn all_slots_running(&self) -> bool {
        (0..self.config.workers).all(|i| {
            self.workers
                .iter()
                .any(|w| w.index == i && w.state == State::Running)
        })
    }

    /// Spawns a worker for every index that has none (respecting backoff).
    fn spawn_missing(&mut self, master: &mut MasterOnly<'_>) {
        let now = Instant::now();
        for i in 0..self.config.workers {
            let filled = self.workers.iter().any(|w| w.index == i && w.active());
            let waiting = self
                .failures
                .get(i)
                .and_then(|f| f.1)
                .is_some_and(|t| t > now);
            if !filled && !waiting {
                self.spawn(i, master);
            }
        }
    }

    fn spawn(&mut self, index: usize, master_only: &mut MasterOnly<'_>) -> Option<libc::pid_t> {
        // Taken here, not with getppid in the child: a master that died
        // before the child looks would leave it with init as its parent.
        let master = std::process::id() as libc::pid_t;
        match sys::fork() {
            Ok(Forked::Child) => {
                // The control app is the master's: close the worker's
                // copies of its sockets.
                master_only.close();
                // The child owns copies of everything; take what the worker needs.
                let listeners = std::mem::take(&mut self.listeners);
                let handler = self
                    .handler
                    .take()
                    .expect("the master keeps its handler for every fork");
                let code = worker_main(
                    &self.config,
                    Origin { index, master },
                    handler,
                    listeners,
                    &self.report_wr,
                );
                std::process::exit(code)
            }
            Ok(Forked::Parent(pid)) => {
                let now = Instant::now();
                let at = SystemTime::now();
                self.workers.push(Worker {
                    index,
                    pid,
                    phase: self.phase,
                    spawned: now,
                    state: State::Booting,
                    last_checkin: now,
                    stats: PoolStats::default(),
                    spawned_at: at,
                    last_checkin_at: at,
                });
                Some(pid)
            }
            Err(e) => {
                log::warn(&format!("! cannot fork worker {index}: {e}; retrying"));
                self.note_failure(index);
                None
            }
        }
    }

    fn note_failure(&mut self, index: usize) {
        if let Some(f) = self.failures.get_mut(index) {
            f.0 += 1;
            let delay = RESPAWN_BACKOFF_START
                .saturating_mul(1 << (f.0 - 1).min(16))
                .min(RESPAWN_BACKOFF_MAX);
            f.1 = Some(Instant::now() + delay);
            log::warn(&format!(
                "! Worker {index} failed to boot {} time(s) in a row; next try in {}s",
                f.0,
                log::Seconds::places(delay, 1)
            ));
        }
    }

    /// Moves phased restarts and recycling forward: one replacement at a
    /// time; the old worker stops only once its replacement has booted.
    fn advance_replacements(&mut self, master: &mut MasterOnly<'_>) {
        if let Some((index, new_pid)) = self.replacing {
            let Some(new) = self.workers.iter().find(|w| w.pid == new_pid) else {
                // The new worker died while booting: try again later.
                self.replacing = None;
                self.replace_queue.push_front(index);
                return;
            };
            if new.state != State::Running {
                return;
            }
            for w in self
                .workers
                .iter_mut()
                .filter(|w| w.index == index && w.pid != new_pid)
            {
                w.retire();
            }
            self.replacing = None;
        }
        let waiting = self
            .failures
            .iter()
            .any(|f| f.1.is_some_and(|t| t > Instant::now()));
        while self.replacing.is_none() && !waiting {
            let Some(index) = self.replace_queue.pop_front() else {
                if self.phased_running {
                    self.phased_running = false;
                    self.phased_done = true;
                    self.log
                        .say(&format!("- Phased restart complete, phase: {}", self.phase));
                }
                return;
            };
            if index >= self.config.workers {
                continue;
            }
            if let Some(pid) = self.spawn(index, master) {
                self.replacing = Some((index, pid));
            }
        }
    }

    fn read_reports(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sys::read_fd(&self.report_rd, &mut buf) {
            if n == 0 {
                break;
            }
            self.report_buf.extend_from_slice(&buf[..n]);
        }
        while let Some(nl) = self.report_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.report_buf.drain(..=nl).collect();
            if let Some(r) = Report::parse(&String::from_utf8_lossy(&line)) {
                self.on_report(r);
            }
        }
    }

    fn on_report(&mut self, r: Report) {
        let now = Instant::now();
        let Some(w) = self.workers.iter_mut().find(|w| w.pid == r.pid) else {
            return;
        };
        w.last_checkin = now;
        w.last_checkin_at = SystemTime::now();
        w.stats = r.stats;
        if w.state == State::Booting {
            w.state = State::Running;
            let (index, pid, phase) = (w.index, w.pid, w.phase);
            let took = log::Seconds::places(now.duration_since(w.spawned), 2);
            if let Some(f) = self.failures.get_mut(index) {
                *f = (0, None);
            }
            self.log.say(&format!(
                "- Worker {index} (PID: {pid}) booted in {took}s, phase: {phase}"
            ));
            return;
        }
        self.consider_recycling(r.pid);
    }

    /// `max_requests` and `worker_max_rss`: phase the worker out.
    fn consider_recycling(&mut self, pid: libc::pid_t) {
        let Some(w) = self.workers.iter().find(|w| w.pid == pid) else {
            return;
        };
        if w.state != State::Running
            || self.replace_queue.contains(&w.index)
            || self.replacing.is_some_and(|r| r.0 == w.index)
        {
            return;
        }
        let index = w.index;
        let mut why = None;
        if let Some(max) = self.config.max_requests {
            let limit = recycle_limit(max, index);
            if w.stats.requests >= limit {
                why = Some(format!(
                    "served {} requests (max_requests {max})",
                    w.stats.requests
                ));
            }
        }
        if let (Some(mib), Some(rss)) = (self.config.worker_max_rss, rss_kib(pid)) {
            if rss > mib * 1024 {
                why = Some(format!("uses {} MiB (worker_max_rss {mib})", rss / 1024));
            }
        }
        if let Some(why) = why {
            self.log.say(&format!(
                "- Worker {index} (PID: {pid}) {why}; replacing it"
            ));
            self.recycled += 1;
            self.replace_queue.push_back(index);
        }
    }

    /// Reaps exited workers; a worker that died booting backs off.
    fn reap(&mut self) {
        while let Ok(Some((pid, exit))) = sys::reap_child() {
            let Some(pos) = self.workers.iter().position(|w| w.pid == pid) else {
                continue;
            };
            let w = self.workers.remove(pos);
            match w.state {
                State::Retiring(_) | State::Killed => {}
                State::Booting => {
                    log::warn(&format!(
                        "! Worker {} (PID: {pid}) died while booting ({exit})",
                        w.index
                    ));
                    self.note_failure(w.index);
                }
                State::Running => {
                    log::warn(&format!(
                        "! Worker {} (PID: {pid}) exited unexpectedly ({exit}); replacing it",
                        w.index
                    ));
                }
            }
        }
    }

    /// Kills the workers that are overdue; a hung worker is replaced now.
    fn check_timeouts(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if let Some(why) = w.overdue(now, &self.config) {
                log::warn(&why);
                w.kill();
            }
        }
    }

    /// TERM to every worker, then wait for them (KILL after
    /// `shutdown_timeout`). `Err` when a second TERM/INT came.
    fn stop_workers(&mut self) -> Result<(), ()> {
        for w in &mut self.workers {
            w.retire();
        }
        let mut deadline = StopDeadline::new(self.config.shutdown_timeout);
        while !self.workers.is_empty() {
            self.reap();
            if self.workers.is_empty() {
                break;
            }
            if supervisor::second_signal(self.signals) {
                self.kill_all(libc::SIGKILL);
                return Err(());
            }
            if deadline.passed() {
                log::warn(&format!(
                    "! Workers still running after {}s; killing them",
                    log::Seconds::exact(self.config.shutdown_timeout)
                ));
                self.kill_all(libc::SIGKILL);
                while !self.workers.is_empty() {
                    self.reap();
                    supervisor::wait_signal(self.signals);
                }
                break;
            }
            deadline.extend(self.notifier);
            supervisor::wait_signal(self.signals);
        }
        Ok(())
    }

    fn kill_all(&mut self, sig: libc::c_int) {
        for w in &self.workers {
            let _ = sys::kill(w.pid, sig);
        }
    }
}

/// A worker's line on the report pipe:
/// `<pid> <busy> <max> <queued> <requests> <running> <connections>\n`
/// (under PIPE_BUF, so atomic).
struct Report {
    pid: libc::pid_t,
    stats: PoolStats,
}

impl Report {
    fn line(pid: u32, stats: &PoolStats) -> String {
        format!(
            "{pid} {} {} {} {} {} {}\n",
            stats.busy,
            stats.max_threads,
            stats.backlog,
            stats.requests,
            stats.running,
            stats.connections
        )
    }

    fn parse(line: &str) -> Option<Report> {
        let mut it = line.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let mut n = || it.next()?.parse::<u64>().ok();
        let (busy, max_threads, backlog, requests, running) = (n()?, n()?, n()?, n()?, n()?);
        let connections = n()?;
        let stats = PoolStats {
            backlog,
            running,
            busy,
            max_threads,
            requests,
            connections,
        };
        Some(Report { pid, stats })
    }
}

/// The request count at which worker `index` is recycled: `max` plus up
/// to a tenth, different per worker, so workers do not restart together.
fn recycle_limit(max: u64, index: usize) -> u64 {
    max + (index as u64 * 7919) % (max / MAX_REQUESTS_JITTER_DIV).max(1)
}

/// How often workers check in: [`CHECKIN_INTERVAL`], or more often when
/// `worker_timeout` is short, so a healthy worker is never taken for a
/// hung one, and with `idle_timeout` at least four times per timeout (at
/// most every [`MIN_CHECKIN_INTERVAL`]), so the master's view of open
/// connections is fresh when it decides the cluster is idle.
fn checkin_interval(config: &Config) -> Duration {
    let mut every = CHECKIN_INTERVAL.min(config.worker_timeout / 3);
    if let Some(idle) = config.idle_timeout {
        every = every.min((idle / 4).max(MIN_CHECKIN_INTERVAL));
    }
    every
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Which worker a forked child is, and of which master.
struct Origin {
    index: usize,
    /// The master's pid, taken before the fork.
    master: libc::pid_t,
}

/// The worker process: after fork, before any thread. Serves until TERM
/// (or the master's death), reporting to the master; returns the exit code.
fn worker_main(
    config: &Config,
    origin: Origin,
    handler: Box<dyn Handler>,
    listeners: Vec<Listener>,
    report: &OwnedFd,
) -> i32 {
    let Origin { index, master } = origin;
    // Exit with the master: the kernel signals us when it dies; the check
    // after covers a master that died before the call.
    if sys::set_parent_death_signal(libc::SIGTERM).is_err() || sys::parent_pid() != master {
        return 0;
    }
    let title = supervisor::title(
        &listeners,
        config.tag.as_deref(),
        Some((index, master as u32)),
    );
    let _ = sys::set_process_title(&title);
    // Our own self-pipe: the master's is not ours to read. Signals meant
    // for the master (USR1, USR2, HUP, TTIN, TTOU) are read and ignored.
    let signals = match supervisor::signal_pipe() {
        Ok(s) => s,
        Err(f) => {
            log::error(&format!("! worker {index}: {}", f.why));
            return 1;
        }
    };
    // A master that died between the death-signal call and the pipe
    // above sent its SIGTERM to the master's handler, inherited with the
    // fork (written into the master's pipe, lost): look again.
    if sys::parent_pid() != master {
        return 0;
    }
    // Confined before the app boots and before any thread starts (the
    // master's banner listed the rules; an unavailable Landlock was
    // warned about there).
    if landlock::wanted(config) {
        if let Err(e) = landlock::confine(config, landlock::Role::Worker) {
            log::error(&format!("! worker {index}: {e}"));
            return 1;
        }
    }
    if let Err(e) = serving::boot(&*handler) {
        log::error(&format!("! worker {index}: {e}"));
        return 1;
    }
    // Threads start here, in the worker only.
    let serving = match serving::start_serving(config, handler, listeners) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!("! worker {index}: {e}"));
            return 1;
        }
    };
    let pid = std::process::id();
    let send = |serving: &Serving| {
        let line = Report::line(pid, &serving.pool_stats(config));
        let _ = sys::write_fd(report, line.as_bytes());
    };
    send(&serving); // booted
    let every = checkin_interval(config);
    let mut next = Instant::now() + every;
    let mut ready = Vec::new();
    let mut got = Vec::new();
    let limit = config.max_requests.map(|max| recycle_limit(max, index));
    let mut limit_reported = false;
    loop {
        let mut timeout = next.saturating_duration_since(Instant::now());
        if limit.is_some() && !limit_reported {
            timeout = timeout.min(RECYCLE_CHECK);
        }
        let _ = sys::poll_readable(&[signals.as_raw_fd()], Some(timeout), &mut ready);
        got.clear();
        sys::read_signals(&signals, &mut got);
        if got.iter().any(|&s| s == libc::SIGTERM || s == libc::SIGINT) {
            break;
        }
        let crossed = limit.is_some_and(|l| serving.engine.stats().requests() >= l);
        if Instant::now() >= next || (crossed && !limit_reported) {
            // Crossing max_requests is reported at once, so the master
            // recycles after about max_requests, not 5 s later.
            limit_reported |= crossed;
            send(&serving);
            next = Instant::now() + every;
        }
    }
    // Graceful: stop accepting, finish in flight, exit. The master owns
    // the socket files and the pidfile.
    match serving::stop_reactor(config, serving, &signals) {
        Ok((listeners, draining)) => {
            drop(listeners);
            match serving::wait_in_flight(config, draining, &signals, None) {
                Ok(()) => 0,
                Err(()) => 1,
            }
        }
        Err(()) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_line_reads_back() {
        let stats = PoolStats {
            backlog: 3,
            running: 4,
            busy: 2,
            max_threads: 5,
            requests: 1523,
            connections: 7,
        };
        let line = Report::line(4321, &stats);
        assert_eq!(line, "4321 2 5 3 1523 4 7\n");
        let r = Report::parse(&line).expect("a line it wrote");
        assert_eq!((r.pid, r.stats), (4321, stats));
        assert!(Report::parse("4321 2 5 3\n").is_none());
    }

    #[test]
    fn recycle_limits_spread_by_worker() {
        assert_eq!(recycle_limit(1000, 0), 1000);
        assert_ne!(recycle_limit(1000, 1), recycle_limit(1000, 2));
        for i in 0..16 {
            let l = recycle_limit(1000, i);
            assert!((1000..1100).contains(&l), "{l}");
        }
        // A small max still spreads nothing below it.
        assert_eq!(recycle_limit(5, 3), 5);
    }
}
