//! Cluster mode: a single-threaded master forks N workers that each run
//! their own reactor and pool on the shared listening sockets.
//!
//! The master never starts a thread (fork is sound only then); its loop
//! polls the signal self-pipe and one pipe on which every worker reports
//! boot and checks in with its stats every [`CHECKIN_INTERVAL`]. From those
//! it supervises: replaces workers that die, hang (`worker_timeout`) or
//! never boot (`worker_boot_timeout`, exponential backoff instead of a
//! crash loop), recycles workers over `max_requests` or `worker_max_rss`,
//! runs phased restarts one worker at a time, and is the only process that
//! talks to systemd. Workers exit when the master dies (PR_SET_PDEATHSIG).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use crate::check::Reexec;
use crate::control::{ControlCommand, ControlServer, PoolStats};
use crate::date;
use crate::listeners::{Listener, Tls};
use crate::log;
use crate::notify::{Notifier, WATCHDOG_PINGS_PER_PERIOD};
use crate::server::{self, Log, STATUS_INTERVAL, VERSION};
use crate::sys::{self, Forked};
use crate::{Config, Handler};

/// Workers report their stats this often (Puma's interval).
pub const CHECKIN_INTERVAL: Duration = Duration::from_secs(5);
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

/// One worker process, as the master sees it.
struct Worker {
    index: usize,
    pid: libc::pid_t,
    phase: u32,
    spawned: Instant,
    state: State,
    last_checkin: Instant,
    stats: WorkerStats,
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

#[derive(Clone, Copy, Debug, Default)]
struct WorkerStats {
    busy: u64,
    max: u64,
    queued: u64,
    requests: u64,
    /// Pool threads alive.
    running: u64,
}

impl WorkerStats {
    fn pool(&self) -> PoolStats {
        PoolStats {
            backlog: self.queued,
            running: self.running,
            busy: self.busy,
            max_threads: self.max,
            requests: self.requests,
        }
    }
}

/// Why the master loop ended.
enum Exit {
    Stop,
    Hot,
    /// `/halt` from the control app.
    Halt,
}

/// The cluster master.
pub struct Master<'a> {
    config: Config,
    /// Moved into each worker (the master's own copy is never called).
    handler: Option<Box<dyn Handler>>,
    listeners: Vec<Listener>,
    notifier: &'a Notifier,
    log: &'a Log,
    signals: &'a OwnedFd,
    exe: Option<Reexec>,
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
    /// A phased restart is running: READY=1 is sent when it ends.
    phased_running: bool,
    ready_sent: bool,
    /// The worker count set with TTIN/TTOU, kept across reloads.
    resized: Option<usize>,
    started: Instant,
    /// Wall-clock time of `started`, for `/stats`.
    started_at: SystemTime,
    recycled: u64,
    /// The control app, driven by this loop (no thread: see control.rs).
    control: Option<ControlServer>,
    /// Why the last reload was refused; in STATUS until one succeeds.
    refused: Option<String>,
}

impl<'a> Master<'a> {
    pub fn new(
        config: Config,
        handler: Box<dyn Handler>,
        listeners: Vec<Listener>,
        notifier: &'a Notifier,
        log: &'a Log,
        signals: &'a OwnedFd,
        exe: Reexec,
    ) -> Master<'a> {
        let (report_rd, report_wr) = sys::pipe().expect("a pipe at start-up (out of descriptors?)");
        let n = config.workers;
        Master {
            config,
            handler: Some(handler),
            listeners,
            notifier,
            log,
            signals,
            exe: Some(exe),
            workers: Vec::new(),
            phase: 0,
            report_rd,
            report_wr,
            report_buf: Vec::new(),
            failures: vec![(0, None); n],
            replace_queue: VecDeque::new(),
            replacing: None,
            phased_running: false,
            ready_sent: false,
            resized: None,
            started: Instant::now(),
            started_at: SystemTime::now(),
            recycled: 0,
            control: None,
            refused: None,
        }
    }

    /// The control app this master drives (bound by `server::run`).
    pub fn with_control(mut self, control: Option<ControlServer>) -> Master<'a> {
        self.control = control;
        self
    }

    /// Runs the cluster until stopped; returns the exit status.
    pub fn run(mut self) -> i32 {
        match self.main_loop() {
            Ok(Exit::Stop) => self.stop(),
            Ok(Exit::Halt) => {
                self.log
                    .say("- Halting (control app): killing workers without waiting for requests");
                self.kill_all(libc::SIGKILL);
                while !self.workers.is_empty() {
                    self.reap();
                    server::wait_signal(self.signals);
                }
                if let Some(c) = self.control.take() {
                    c.remove_socket_file();
                }
                server::cleanup(&self.config, &self.listeners);
                0
            }
            Ok(Exit::Hot) => {
                // The new image binds the control socket afresh.
                if let Some(c) = self.control.take() {
                    c.remove_socket_file();
                }
                self.log
                    .say("- Restarting (hot: stopping workers, then exec in place, same pid)...");
                if self.stop_workers().is_err() {
                    log::error("! Second signal during restart: exiting at once");
                    return 1;
                }
                match self.exe.take() {
                    Some(exe) => server::hot_restart(exe, &self.listeners, self.notifier),
                    None => 1,
                }
            }
            Err(code) => {
                self.kill_all(libc::SIGKILL);
                code
            }
        }
    }

    fn main_loop(&mut self) -> Result<Exit, i32> {
        let ping_every = self
            .notifier
            .watchdog()
            .map(|p| p / WATCHDOG_PINGS_PER_PERIOD);
        let mut next_ping = Instant::now();
        let mut next_status = Instant::now();
        let mut last_status = String::new();
        let mut ready = Vec::new();
        let mut got = Vec::new();
        loop {
            self.spawn_missing();
            self.advance_replacements();
            let mut fds = vec![self.signals.as_raw_fd(), self.report_rd.as_raw_fd()];
            let mut tick = MASTER_TICK;
            if let Some(c) = &self.control {
                fds.extend(c.fds());
                if let Some(d) = c.next_deadline() {
                    tick = tick.min(d.saturating_duration_since(Instant::now()));
                }
            }
            if let Err(e) = sys::poll_readable(&fds, Some(tick), &mut ready) {
                log::warn(&format!("! poll failed: {e}"));
            }
            self.read_reports();
            got.clear();
            sys::read_signals(self.signals, &mut got);
            for &sig in &got {
                match sig {
                    libc::SIGTERM | libc::SIGINT => return Ok(Exit::Stop),
                    libc::SIGCHLD => self.reap(),
                    libc::SIGUSR2 if self.reload_config("hot restart (SIGUSR2)", true) => {
                        return Ok(Exit::Hot)
                    }
                    libc::SIGUSR1 | libc::SIGHUP => {
                        let what = if sig == libc::SIGHUP {
                            "reload (SIGHUP)"
                        } else {
                            "phased restart (SIGUSR1)"
                        };
                        if self.phased_restart(what) {
                            return Ok(Exit::Hot);
                        }
                    }
                    libc::SIGTTIN => self.resize(self.config.workers + 1),
                    libc::SIGTTOU if self.config.workers <= 1 => self
                        .log
                        .say("- SIGTTOU: 1 worker is the least; none stopped"),
                    libc::SIGTTOU => self.resize(self.config.workers - 1),
                    _ => {}
                }
            }
            for cmd in self.control_commands() {
                match cmd {
                    ControlCommand::Stop => return Ok(Exit::Stop),
                    ControlCommand::Halt => return Ok(Exit::Halt),
                    ControlCommand::Restart => {
                        if self.reload_config("hot restart (control app)", true) {
                            return Ok(Exit::Hot);
                        }
                    }
                    ControlCommand::PhasedRestart => {
                        if self.phased_restart("phased restart (control app)") {
                            return Ok(Exit::Hot);
                        }
                    }
                }
            }
            self.reap();
            self.check_timeouts();
            let now = Instant::now();
            if !self.ready_sent {
                if self.all_slots_running() {
                    self.ready_sent = true;
                    self.notifier.ready(&self.status_line());
                    next_ping = now + ping_every.unwrap_or(STATUS_INTERVAL);
                } else if now.duration_since(self.started) > self.config.worker_boot_timeout
                    && !self.workers.iter().any(|w| w.state == State::Running)
                {
                    let msg = format!(
                        "no worker booted within worker_boot_timeout ({}s); see the errors above",
                        self.config.worker_boot_timeout.as_secs_f64()
                    );
                    log::error(&format!("catamount: error: {msg}"));
                    self.notifier
                        .failed(libc::ETIMEDOUT, &format!("failed to start: {msg}"));
                    return Err(1);
                }
            }
            if let Some(every) = ping_every {
                if self.ready_sent && now >= next_ping {
                    // Fed only while the loop turns and workers check in:
                    // a crash-looping or hung cluster starves the watchdog.
                    if self.healthy(now) {
                        self.notifier.watchdog_ping();
                    }
                    next_ping = now + every;
                }
            }
            if self.notifier.enabled() && now >= next_status {
                let s = self.status_line();
                if s != last_status {
                    self.notifier.status(&s);
                    last_status = s;
                }
                next_status = now + STATUS_INTERVAL;
            }
        }
    }

    /// Re-reads the config file for a restart. A bad one keeps the old
    /// configuration and still ends the reload with READY=1. For a `hot`
    /// restart (an exec) the binary the exec would run is first run with
    /// `--check` (the preflight: a child process, no thread; this loop
    /// waits for it, the workers go on serving), before anything changes.
    fn reload_config(&mut self, what: &str, hot: bool) -> bool {
        self.notifier
            .reloading(&format!("{what}: checking the configuration"));
        let checked = server::check_reload(&self.config).and_then(|new| {
            if hot {
                let timeout = crate::check::preflight_timeout(self.notifier.watchdog());
                let exe = self
                    .exe
                    .as_ref()
                    .ok_or_else(|| "the binary to exec is gone".to_string())?;
                crate::check::preflight(exe, timeout)
                    .map_err(|e| format!("the new image would not start: {e}"))?;
            }
            Ok(new)
        });
        match checked {
            Ok(new) => {
                let before = self.config.workers;
                self.config = new;
                // A count changed with TTIN/TTOU survives the reload.
                if let Some(n) = self.resized {
                    self.config.workers = n;
                }
                self.failures
                    .resize(self.config.workers.max(self.failures.len()), (0, None));
                if self.config.workers < before {
                    let n = self.config.workers;
                    let retire: Vec<libc::pid_t> = self
                        .workers
                        .iter()
                        .filter(|w| w.index >= n)
                        .map(|w| w.pid)
                        .collect();
                    for pid in retire {
                        self.retire(pid);
                    }
                }
                // New workers run the app with the new settings.
                if let Some(h) = self.handler.as_mut() {
                    h.reconfigure(&self.config);
                }
                self.refused = None;
                true
            }
            Err(e) => {
                log::warn(&format!(
                    "! {what} refused, still serving with the old configuration: {e}"
                ));
                // It stays in STATUS (status_line) until a reload passes.
                self.refused = Some(e);
                self.notifier.ready(&self.status_line());
                false
            }
        }
    }

    /// SIGUSR1, SIGHUP or `/phased-restart`: true when it must be a hot
    /// restart instead (`--preload`: workers share the old code).
    fn phased_restart(&mut self, what: &str) -> bool {
        if self.config.preload {
            self.log.say(&format!(
                "- {what}: phased restart is not possible with --preload; doing a hot restart"
            ));
            return self.reload_config(what, true);
        }
        let before = self.config.clone();
        if self.reload_config(what, false) {
            self.warn_unapplied(what, &before);
            self.start_phased_restart();
        }
        false
    }

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

    /// Serves the control app's ready connections; the commands asked.
    fn control_commands(&mut self) -> Vec<ControlCommand> {
        let Some(mut c) = self.control.take() else {
            return Vec::new();
        };
        let cmds = c.handle_ready(&|| self.stats_json());
        self.control = Some(c);
        cmds
    }

    /// The control app's `/stats`: Puma's cluster fields (cluster.rb
    /// `stats`), then catamount's own. Workers being retired are left
    /// out: they no longer accept connections.
    fn stats_json(&self) -> String {
        let now = Instant::now();
        let listed: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| !matches!(w.state, State::Retiring(_) | State::Killed))
            .collect();
        let status: Vec<String> = listed
            .iter()
            .map(|w| {
                let booted = w.state == State::Running;
                // As Puma: `{}` until the first check-in, which for a
                // catamount worker is the one that says it booted.
                let last_status = if booted {
                    format!("{{{}}}", w.stats.pool().puma_members())
                } else {
                    "{}".to_string()
                };
                format!(
                    r#"{{"started_at":"{}","pid":{},"index":{},"phase":{},"booted":{},"last_checkin":"{}","last_status":{},"last_checkin_secs_ago":{},"busy":{},"max_threads":{},"queued":{},"requests":{}}}"#,
                    date::iso8601(w.spawned_at),
                    w.pid,
                    w.index,
                    w.phase,
                    booted,
                    date::iso8601(w.last_checkin_at),
                    last_status,
                    now.duration_since(w.last_checkin).as_secs(),
                    w.stats.busy,
                    w.stats.max,
                    w.stats.queued,
                    w.stats.requests
                )
            })
            .collect();
        let booted = listed.iter().filter(|w| w.state == State::Running).count();
        let old = listed.iter().filter(|w| w.phase != self.phase).count();
        let requests: u64 = self.workers.iter().map(|w| w.stats.requests).sum();
        format!(
            r#"{{"started_at":"{}","workers":{},"phase":{},"booted_workers":{booted},"old_workers":{old},"worker_status":[{}],"mode":"cluster","requests":{requests}}}"#,
            date::iso8601(self.started_at),
            listed.len(),
            self.phase,
            status.join(",")
        )
    }

    fn start_phased_restart(&mut self) {
        // New workers get freshly read certificates (rotation without a
        // hot restart); check_reload has just proved they load.
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

    /// TTIN/TTOU: one worker more or less (never below 1).
    fn resize(&mut self, n: usize) {
        if n == self.config.workers {
            return;
        }
        self.resized = Some(n);
        self.log.say(&format!("- Worker count now {n}"));
        self.config.workers = n;
        if self.failures.len() < n {
            self.failures.resize(n, (0, None));
        }
        let retire: Vec<libc::pid_t> = self
            .workers
            .iter()
            .filter(|w| w.index >= n)
            .map(|w| w.pid)
            .collect();
        for pid in retire {
            self.retire(pid);
        }
    }

    fn all_slots_running(&self) -> bool {
        (0..self.config.workers).all(|i| {
            self.workers
                .iter()
                .any(|w| w.index == i && w.state == State::Running)
        })
    }

    fn healthy(&self, now: Instant) -> bool {
        let window = checkin_interval(&self.config) * 2;
        self.workers
            .iter()
            .any(|w| w.state == State::Running && now.duration_since(w.last_checkin) <= window)
    }

    /// Spawns a worker for every index that has none (respecting backoff).
    fn spawn_missing(&mut self) {
        let now = Instant::now();
        for i in 0..self.config.workers {
            let filled = self
                .workers
                .iter()
                .any(|w| w.index == i && !matches!(w.state, State::Retiring(_) | State::Killed));
            let waiting = self
                .failures
                .get(i)
                .and_then(|f| f.1)
                .is_some_and(|t| t > now);
            if !filled && !waiting {
                self.spawn(i);
            }
        }
    }

    fn spawn(&mut self, index: usize) -> Option<libc::pid_t> {
        // Taken here, not with getppid in the child: a master that died
        // before the child looks would leave it with init as its parent.
        let master = std::process::id() as libc::pid_t;
        match sys::fork() {
            Ok(Forked::Child) => {
                // The control app is the master's: close the worker's
                // copies of its sockets (dropping never unlinks the file).
                drop(self.control.take());
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
                    stats: WorkerStats::default(),
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
                "! Worker {index} failed to boot {} time(s) in a row; next try in {:.1}s",
                f.0,
                delay.as_secs_f64()
            ));
        }
    }

    /// Moves phased restarts and recycling forward: one replacement at a
    /// time; the old worker stops only once its replacement has booted.
    fn advance_replacements(&mut self) {
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
            let old: Vec<libc::pid_t> = self
                .workers
                .iter()
                .filter(|w| {
                    w.index == index
                        && w.pid != new_pid
                        && !matches!(w.state, State::Retiring(_) | State::Killed)
                })
                .map(|w| w.pid)
                .collect();
            for pid in old {
                self.retire(pid);
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
                    self.log
                        .say(&format!("- Phased restart complete, phase: {}", self.phase));
                    self.notifier.ready(&self.status_line());
                }
                return;
            };
            if index >= self.config.workers {
                continue;
            }
            if let Some(pid) = self.spawn(index) {
                self.replacing = Some((index, pid));
            }
        }
    }

    fn retire(&mut self, pid: libc::pid_t) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
            if !matches!(w.state, State::Retiring(_) | State::Killed) {
                w.state = State::Retiring(Instant::now());
                let _ = sys::kill(pid, libc::SIGTERM);
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
            let took = now.duration_since(w.spawned).as_secs_f64();
            if let Some(f) = self.failures.get_mut(index) {
                *f = (0, None);
            }
            self.log.say(&format!(
                "- Worker {index} (PID: {pid}) booted in {took:.2}s, phase: {phase}"
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

    fn check_timeouts(&mut self) {
        let now = Instant::now();
        let mut kill = Vec::new();
        for w in &self.workers {
            match w.state {
                State::Booting
                    if now.duration_since(w.spawned) > self.config.worker_boot_timeout =>
                {
                    log::warn(&format!(
                        "! Terminating timed out worker (Worker {} failed to boot within {}s): {}",
                        w.index,
                        self.config.worker_boot_timeout.as_secs_f64(),
                        w.pid
                    ));
                    kill.push(w.pid);
                }
                State::Running
                    if now.duration_since(w.last_checkin) > self.config.worker_timeout =>
                {
                    log::warn(&format!(
                        "! Terminating timed out worker (Worker {} failed to check in within {}s): {}",
                        w.index,
                        self.config.worker_timeout.as_secs_f64(),
                        w.pid
                    ));
                    kill.push(w.pid);
                }
                State::Retiring(since)
                    if now.duration_since(since) > self.config.shutdown_timeout =>
                {
                    log::warn(&format!(
                        "! Worker {} (PID: {}) did not stop within {}s; killing it",
                        w.index,
                        w.pid,
                        self.config.shutdown_timeout.as_secs_f64()
                    ));
                    kill.push(w.pid);
                }
                _ => {}
            }
        }
        for pid in kill {
            let _ = sys::kill(pid, libc::SIGKILL);
            // A hung worker is replaced now; the reaper removes the body.
            if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
                w.state = State::Killed;
            }
        }
    }

    /// `catamount 0.1.0: cluster 2/2 workers, 3/10 threads busy, 0 queued, 1523 requests, phase 0`.
    fn status_line(&self) -> String {
        let running: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.state == State::Running)
            .collect();
        let sum = |f: fn(&WorkerStats) -> u64| running.iter().map(|w| f(&w.stats)).sum::<u64>();
        let mut s = format!(
            "catamount {VERSION}: cluster {}/{} workers, {}/{} threads busy, {} queued, {} requests, phase {}",
            running.len(),
            self.config.workers,
            sum(|s| s.busy),
            sum(|s| s.max),
            sum(|s| s.queued),
            sum(|s| s.requests),
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
        server::with_refusal(s, self.refused.as_deref())
    }

    /// TERM to every worker, then wait for them (KILL after
    /// `shutdown_timeout`). `Err` when a second TERM/INT came.
    fn stop_workers(&mut self) -> Result<(), ()> {
        let pids: Vec<libc::pid_t> = self.workers.iter().map(|w| w.pid).collect();
        for pid in pids {
            self.retire(pid);
        }
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let mut extended = Instant::now();
        while !self.workers.is_empty() {
            self.reap();
            if self.workers.is_empty() {
                break;
            }
            if server::second_signal(self.signals) {
                self.kill_all(libc::SIGKILL);
                return Err(());
            }
            let now = Instant::now();
            if now >= deadline {
                log::warn(&format!(
                    "! Workers still running after {}s; killing them",
                    self.config.shutdown_timeout.as_secs_f64()
                ));
                self.kill_all(libc::SIGKILL);
                while !self.workers.is_empty() {
                    self.reap();
                    server::wait_signal(self.signals);
                }
                break;
            }
            if now >= extended {
                self.notifier
                    .extend_timeout(deadline.saturating_duration_since(now) + STATUS_INTERVAL * 5);
                extended = now + STATUS_INTERVAL;
            }
            server::wait_signal(self.signals);
        }
        Ok(())
    }

    fn stop(mut self) -> i32 {
        self.notifier
            .stopping("stopping: workers finishing requests in flight");
        self.log
            .say("- Gracefully stopping, waiting for requests to finish");
        let result = self.stop_workers();
        if let Some(c) = &self.control {
            c.remove_socket_file();
        }
        server::cleanup(&self.config, &self.listeners);
        match result {
            Ok(()) => {
                self.log.say("- Goodbye!");
                0
            }
            Err(()) => {
                log::error("! Second signal: exiting at once");
                1
            }
        }
    }

    fn kill_all(&mut self, sig: libc::c_int) {
        for w in &self.workers {
            let _ = sys::kill(w.pid, sig);
        }
    }
}

/// A worker's line on the report pipe:
/// `<pid> <busy> <max> <queued> <requests> <running>\n` (under PIPE_BUF,
/// so atomic).
struct Report {
    pid: libc::pid_t,
    stats: WorkerStats,
}

impl Report {
    fn parse(line: &str) -> Option<Report> {
        let mut it = line.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let mut n = || it.next()?.parse::<u64>().ok();
        let stats = WorkerStats {
            busy: n()?,
            max: n()?,
            queued: n()?,
            requests: n()?,
            running: n()?,
        };
        Some(Report { pid, stats })
    }
}

/// The request count at which worker `index` is recycled: `max` plus up
/// to a tenth, different per worker, so workers do not restart together.
fn recycle_limit(max: u64, index: usize) -> u64 {
    max + (index as u64 * 7919) % (max / MAX_REQUESTS_JITTER_DIV).max(1)
}

/// While `max_requests` is set, a worker looks at its count this often
/// and reports as soon as it crosses its limit.
const RECYCLE_CHECK: Duration = Duration::from_millis(100);

/// How often workers check in: [`CHECKIN_INTERVAL`], or more often when
/// `worker_timeout` is short, so a healthy worker is never taken for a
/// hung one.
fn checkin_interval(config: &Config) -> Duration {
    CHECKIN_INTERVAL.min(config.worker_timeout / 3)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The worker process: after fork, before any thread. Serves until TERM
/// (or the master's death), reporting to the master; returns the exit code.
/// Which worker a forked child is, and of which master.
struct Origin {
    index: usize,
    /// The master's pid, taken before the fork.
    master: libc::pid_t,
}

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
    let title = server::title(
        &listeners,
        config.tag.as_deref(),
        Some((index, master as u32)),
    );
    let _ = sys::set_process_title(&title);
    // Our own self-pipe: the master's is not ours to read. Signals meant
    // for the master (USR1, USR2, HUP, TTIN, TTOU) are read and ignored.
    let signals = match sys::signal_pipe(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCHLD,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!(
                "! worker {index}: cannot install signal handlers: {e}"
            ));
            return 1;
        }
    };
    // A master that died between the death-signal call and the pipe
    // above sent its SIGTERM to the master's handler, inherited with the
    // fork (written into the master's pipe, lost): look again.
    if sys::parent_pid() != master {
        return 0;
    }
    if let Err(e) = server::boot(&*handler) {
        log::error(&format!("! worker {index}: {e}"));
        return 1;
    }
    // Threads start here, in the worker only.
    let serving = match server::start_serving(config, handler, listeners) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!("! worker {index}: {e}"));
            return 1;
        }
    };
    let pid = std::process::id();
    let send = |serving: &server::Serving| {
        let st = serving.engine.stats();
        let line = format!(
            "{pid} {} {} {} {} {}\n",
            st.busy(),
            config.max_threads,
            serving.engine.backlog(),
            st.requests(),
            st.threads()
        );
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
    match server::stop_reactor(config, serving, &signals) {
        Ok((listeners, draining)) => {
            drop(listeners);
            match server::wait_in_flight(config, draining, &signals, None) {
                Ok(()) => 0,
                Err(()) => 1,
            }
        }
        Err(()) => 1,
    }
}
