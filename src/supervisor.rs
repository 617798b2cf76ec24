//! The supervisor: the one loop that runs while catamount serves, in the
//! single process and in the cluster master alike (Puma's `launcher.rb`
//! and `runner.rb`). It owns what both modes share: the signal self-pipe
//! and what each signal asks, the control app's commands, the checks a
//! reload must pass before anything changes (config file, certificates,
//! the preflight), systemd's READY=1, STATUS= (at most every
//! [`STATUS_INTERVAL`], only when it changed) and watchdog pings, and the
//! end: a graceful stop, a halt, or the stop before a hot restart's exec.
//!
//! What differs by mode sits behind [`Runner`]: `single.rs` serves in this
//! process, `fork.rs` forks workers and supervises them. The loop never
//! starts a thread: in the cluster master none may exist (ARCHITECTURE.md).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

use crate::check::{self, Reexec};
use crate::config::{self, Config};
use crate::control::{ControlCommand, ControlServer, PoolStats};
use crate::date;
use crate::landlock;
use crate::listeners::Listener;
use crate::log;
use crate::notify::{Notifier, WATCHDOG_PINGS_PER_PERIOD};
use crate::sys;

/// The version printed by `-V`, the startup log, STATUS= and the title.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// STATUS= is sent at most this often, and only when it changed.
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How often a stop looks at what it waits for between signals, and how
/// long the loop pauses after a failed poll.
pub(crate) const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Bounds of how often the loop looks whether the server is quiet, with
/// `idle_timeout` (see [`idle_check`]).
const IDLE_CHECK_MIN: Duration = Duration::from_millis(10);
const IDLE_CHECK_MAX: Duration = Duration::from_secs(1);
/// While a stop makes progress, systemd is asked for the time left before
/// its deadline plus this margin (`EXTEND_TIMEOUT_USEC`), so a long but
/// healthy stop is not killed by `TimeoutStopSec=`.
pub(crate) const STOP_TIMEOUT_MARGIN: Duration = STATUS_INTERVAL.saturating_mul(5);

/// The signals every catamount process takes through its self-pipe
/// (sys::signal_pipe). TERM, INT: graceful stop (a second one: at once);
/// USR2: hot restart; HUP: reload (hot in single mode, phased in cluster
/// mode); USR1: phased restart; TTIN, TTOU: one worker more or fewer;
/// CHLD: a worker exited. A worker takes the same set and ignores all
/// but TERM and INT: they are the master's to act on.
const SIGNALS: [libc::c_int; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGCHLD,
];

/// The two process models, and what the supervisor says of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// This process serves (single.rs).
    Single,
    /// A master forks workers that serve (fork.rs).
    Cluster,
}

impl Mode {
    /// As the banner, STATUS= and `/stats` say it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Cluster => "cluster",
        }
    }

    /// Phased restarts (USR1, HUP, `/phased-restart`) and TTIN/TTOU need
    /// workers.
    fn has_workers(self) -> bool {
        self == Mode::Cluster
    }

    /// What a graceful stop waits for (STOPPING=1's status).
    fn stopping(self) -> &'static str {
        match self {
            Mode::Single => "finishing requests in flight",
            Mode::Cluster => "workers finishing requests in flight",
        }
    }

    /// What `/halt` drops.
    fn halting(self) -> &'static str {
        match self {
            Mode::Single => "exiting without waiting for requests in flight",
            Mode::Cluster => "killing workers without waiting for requests",
        }
    }

    /// How a hot restart goes.
    fn restarting(self) -> &'static str {
        match self {
            Mode::Single => "exec in place, same pid, listeners kept",
            Mode::Cluster => "stopping workers, then exec in place, same pid",
        }
    }
}

/// What the supervisor and its runner share: systemd's notify socket, the
/// startup log and the signal self-pipe, all made by start-up.
#[derive(Clone, Copy)]
pub(crate) struct Process<'a> {
    pub(crate) notifier: &'a Notifier,
    pub(crate) log: Log,
    pub(crate) signals: &'a OwnedFd,
}

/// What differs between single mode and cluster mode; the supervisor
/// drives it (Puma: `single.rb` and `cluster.rb` under `runner.rb`).
pub(crate) trait Runner {
    /// Which model this runner is; what the supervisor says of it.
    const MODE: Mode;

    /// The configuration in force: a reload is checked against it.
    fn config(&self) -> &Config;
    /// The runner's own work, once per turn of the loop (cluster: read
    /// the workers' reports, reap, kill the hung, spawn the missing, move
    /// replacements on). `master` is what a forked child must close.
    fn turn(&mut self, master: &mut MasterOnly<'_>) -> Progress;
    /// Adds the descriptors the loop should also wait on; returns the
    /// longest the loop may wait before the next [`Runner::turn`].
    /// Numbers, not borrows: the poll set mixes descriptors of several
    /// owners (`sys::poll_readable`).
    fn wait(&self, _fds: &mut Vec<RawFd>) -> Option<Duration> {
        None
    }
    /// Whether the watchdog may be fed: the server is doing its work
    /// (single: the reactor turns; cluster: a worker checks in).
    fn alive(&mut self, now: Instant) -> bool;
    /// The status line after `catamount VERSION: `.
    fn status(&self) -> String;
    /// The control app's `/stats` members after `started_at`.
    fn stats(&self) -> String;
    /// What `idle_timeout` looks at: `None` while a connection is open or
    /// a request is in flight (cluster: in any worker, or while a worker
    /// is missing); else a count that moves with every request, so that
    /// activity between two looks is seen.
    fn quiet(&self) -> Option<u64>;
    /// The listening sockets' descriptors, to look for a connection
    /// waiting in a backlog before an idle exit: numbers, as the serving
    /// threads own the sockets in single mode.
    fn listener_fds(&self) -> Vec<RawFd>;
    /// A reload passed its checks: `new` is the configuration from now on
    /// (single mode: nothing to do, the exec that follows loads it).
    fn reconfigure(&mut self, _new: Config) {}
    /// Replaces the workers one at a time with `new` (called only in a
    /// mode with workers).
    fn phased_restart(&mut self, _what: &str, _new: Config) {}
    /// TTIN (`more`) or TTOU: one worker more or fewer (called only in a
    /// mode with workers).
    fn resize(&mut self, _more: bool) {}
    /// Stops serving gracefully, bounded by `shutdown_timeout`: with
    /// `After::Exec` returns the listeners, still open, for the exec;
    /// with `After::Exit` closes them and removes the files catamount
    /// created. `Err` when a second TERM/INT asked to exit at once.
    fn stop(self, after: After) -> Result<Vec<Listener>, ()>;
    /// Ends at once, dropping requests in flight (`/halt`, a failed start).
    fn kill(self);
}

/// What follows a graceful stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    Exit,
    /// A hot restart: the listeners stay open for the new image.
    Exec,
}

/// What a runner's turn found.
pub(crate) enum Progress {
    /// Not every worker has booted yet: no READY=1.
    Starting,
    /// Serving. `reloaded`: a phased restart has just ended (systemd waits
    /// for READY=1 after RELOADING=1).
    Serving { reloaded: bool },
    /// The start failed.
    Failed(StartFailure),
}

/// What the supervisor holds that a forked worker must close first: the
/// control app's sockets (a worker's copy would keep the control socket
/// listening after the master has gone).
pub(crate) struct MasterOnly<'a> {
    control: &'a mut Option<ControlServer>,
}

impl MasterOnly<'_> {
    /// In a forked child: closes the master's descriptors (dropping never
    /// unlinks the control socket's file).
    pub(crate) fn close(&mut self) {
        drop(self.control.take());
    }
}

/// How the supervisor ended.
pub(crate) enum Ended {
    /// Exit the process with this status.
    Exit(i32),
    /// Exec the new image (hot restart) with these listeners.
    Exec(Vec<Listener>),
}

/// Why a start failed: one line for the log and systemd's STATUS=, and
/// the errno for ERRNO=.
pub(crate) struct StartFailure {
    pub(crate) why: String,
    pub(crate) errno: i32,
}

impl StartFailure {
    /// Says why on stderr and to systemd; returns the exit status (1).
    pub(crate) fn report(&self, notifier: &Notifier) -> i32 {
        log::error(&format!("catamount: error: {}", self.why));
        notifier.failed(self.errno, &format!("failed to start: {}", self.why));
        1
    }
}

/// Startup and status lines on stdout, silenced by `--quiet`.
#[derive(Clone, Copy)]
pub(crate) struct Log {
    pub(crate) quiet: bool,
}

impl Log {
    pub(crate) fn say(&self, line: &str) {
        if !self.quiet {
            log::info(line);
        }
    }

    /// How a graceful stop ended: `- Goodbye!` and 0, or 1 when a second
    /// signal cut it short.
    fn stopped(&self, gracefully: bool) -> Ended {
        if gracefully {
            self.say("- Goodbye!");
            Ended::Exit(0)
        } else {
            log::error("! Second signal: exiting at once");
            Ended::Exit(1)
        }
    }
}

/// Installs the handlers for [`SIGNALS`]; the pipe they write to.
pub(crate) fn signal_pipe() -> Result<OwnedFd, StartFailure> {
    sys::signal_pipe(&SIGNALS).map_err(|e| StartFailure {
        why: format!("cannot install signal handlers: {e}"),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })
}

/// What one signal or control command asks of the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Stop,
    /// `/halt`: exit now, requests in flight dropped.
    Halt,
    /// Check, then drain and exec in place; the words name it in the log.
    HotRestart(&'static str),
    /// Check, then replace the workers one at a time.
    PhasedRestart(&'static str),
    /// TTIN (`true`) or TTOU.
    Resize(bool),
    /// A signal that needs workers, in single mode.
    NeedsWorkers(libc::c_int),
    Nothing,
}

impl Asked {
    /// What `sig` asks when the runner has `workers` or not.
    fn by_signal(sig: libc::c_int, workers: bool) -> Asked {
        match sig {
            libc::SIGTERM | libc::SIGINT => Asked::Stop,
            libc::SIGUSR2 => Asked::HotRestart("hot restart (SIGUSR2)"),
            libc::SIGHUP if workers => Asked::PhasedRestart("reload (SIGHUP)"),
            libc::SIGHUP => Asked::HotRestart("reload (SIGHUP)"),
            libc::SIGUSR1 | libc::SIGTTIN | libc::SIGTTOU if !workers => Asked::NeedsWorkers(sig),
            libc::SIGUSR1 => Asked::PhasedRestart("phased restart (SIGUSR1)"),
            libc::SIGTTIN => Asked::Resize(true),
            libc::SIGTTOU => Asked::Resize(false),
            // SIGCHLD: the runner reaps on every turn.
            _ => Asked::Nothing,
        }
    }

    fn by_control(cmd: ControlCommand) -> Asked {
        match cmd {
            ControlCommand::Stop => Asked::Stop,
            ControlCommand::Halt => Asked::Halt,
            ControlCommand::Restart => Asked::HotRestart("hot restart (control app)"),
            // Single mode answers it 409 (set_phased_restart): never here.
            ControlCommand::PhasedRestart => Asked::PhasedRestart("phased restart (control app)"),
        }
    }
}

/// Why the loop ended.
enum Ending {
    Stop,
    Halt,
    Restart,
    Failed,
    /// Quiet for `idle_timeout`: exit 0 for systemd to start again.
    Idle(Duration),
}

/// The loop and what it keeps between turns.
pub(crate) struct Supervisor<'a> {
    notifier: &'a Notifier,
    log: Log,
    signals: &'a OwnedFd,
    /// The control app, driven by this loop (no thread: see control/mod.rs).
    control: Option<ControlServer>,
    /// The file a hot restart would exec, for the preflight.
    exe: &'a Reexec,
    /// When this process image started, for `/stats`.
    started_at: SystemTime,
    told: Told,
}

/// What systemd has been told.
#[derive(Default)]
struct Told {
    /// READY=1, since start.
    ready: bool,
    /// The last STATUS= (with READY=1 or alone).
    status: String,
    /// Why the last reload was refused: it stays in STATUS until one
    /// passes (a passing reload in single mode execs a new image, which
    /// starts without it).
    refused: Option<String>,
}

impl<'a> Supervisor<'a> {
    /// The supervisor of a process that has bound its sockets and the
    /// control app's; `started_at`: when this process image started.
    pub(crate) fn new(
        process: Process<'a>,
        control: Option<ControlServer>,
        exe: &'a Reexec,
        started_at: SystemTime,
    ) -> Supervisor<'a> {
        let Process {
            notifier,
            log,
            signals,
        } = process;
        Supervisor {
            notifier,
            log,
            signals,
            control,
            exe,
            started_at,
            told: Told::default(),
        }
    }

    /// Supervises `runner` until asked to stop, halt or restart, then
    /// ends it that way.
    pub(crate) fn run<R: Runner>(mut self, mut runner: R) -> Ended {
        if let Some(c) = self.control.as_mut() {
            c.set_phased_restart(R::MODE.has_workers());
        }
        let ending = self.supervise(&mut runner);
        // Not driven from here on. The file goes now; the socket with the
        // process (or the exec: it is close-on-exec; the new image rebinds).
        if let Some(c) = self.control.take() {
            c.remove_socket_file();
        }
        match ending {
            Ending::Failed => {
                runner.kill();
                Ended::Exit(1)
            }
            Ending::Halt => {
                self.log
                    .say(&format!("- Halting (control app): {}", R::MODE.halting()));
                runner.kill();
                Ended::Exit(0)
            }
            Ending::Stop => {
                self.notifier
                    .stopping(&format!("stopping: {}", R::MODE.stopping()));
                self.log
                    .say("- Gracefully stopping, waiting for requests to finish");
                self.log.stopped(runner.stop(After::Exit).is_ok())
            }
            Ending::Idle(after) => {
                let secs = crate::log::Seconds::exact(after);
                self.notifier.stopping(&format!(
                    "stopping: idle for {secs}s (idle_timeout); the next connection starts it again"
                ));
                self.log.say(&format!(
                    "- Idle for {secs}s: exiting (idle_timeout); systemd starts catamount again on the next connection"
                ));
                self.log.stopped(runner.stop(After::Exit).is_ok())
            }
            Ending::Restart => {
                self.log
                    .say(&format!("- Restarting (hot: {})...", R::MODE.restarting()));
                match runner.stop(After::Exec) {
                    Ok(listeners) => Ended::Exec(listeners),
                    Err(()) => {
                        log::error("! Second signal during restart: exiting at once");
                        Ended::Exit(1)
                    }
                }
            }
        }
    }

    /// The loop: single-threaded; waits on the signal self-pipe, the
    /// control app and the runner's descriptors; sends READY=1 once the
    /// runner serves, pings the watchdog while it is alive, sends STATUS
    /// when it changes.
    fn supervise<R: Runner>(&mut self, runner: &mut R) -> Ending {
        let ping_every = self
            .notifier
            .watchdog()
            .map(|p| p / WATCHDOG_PINGS_PER_PERIOD);
        // Pings start with READY=1, which carries the first.
        let mut next_ping = None;
        let mut next_status = Instant::now();
        // idle_timeout: the quiet stamp last seen and since when.
        let mut quiet: Option<(u64, Instant)> = None;
        let mut fds = Vec::new();
        let mut ready = Vec::new();
        let mut got = Vec::new();
        loop {
            let progress = runner.turn(&mut MasterOnly {
                control: &mut self.control,
            });
            match progress {
                Progress::Starting => {}
                Progress::Serving { reloaded } => {
                    if !self.told.ready {
                        self.told.ready = true;
                        next_ping = ping_every.map(|p| Instant::now() + p);
                        self.send_ready(runner);
                    } else if reloaded {
                        self.send_ready(runner);
                    }
                }
                Progress::Failed(f) => {
                    f.report(self.notifier);
                    return Ending::Failed;
                }
            }
            let now = Instant::now();
            if let (Some(every), Some(at)) = (ping_every, next_ping) {
                if now >= at {
                    // Fed only while the server does its work: a hung
                    // reactor or a crash-looping cluster starves it.
                    if runner.alive(now) {
                        self.notifier.watchdog_ping();
                    }
                    next_ping = Some(now + every);
                }
            }
            if self.notifier.enabled() && now >= next_status {
                let s = self.status_line(runner);
                if s != self.told.status {
                    self.notifier.status(&s);
                    self.told.status = s;
                }
                next_status = now + STATUS_INTERVAL;
            }

            let idle_timeout = runner.config().idle_timeout.filter(|_| self.told.ready);
            let mut idle_wake = None;
            if let Some(after) = idle_timeout {
                quiet = match (runner.quiet(), quiet) {
                    (Some(stamp), Some((seen, since))) if stamp == seen => Some((seen, since)),
                    (Some(stamp), _) => Some((stamp, now)),
                    (None, _) => None,
                };
                if let Some((_, since)) = quiet {
                    if now.duration_since(since) >= after {
                        if !backlog_waiting(&runner.listener_fds()) {
                            return Ending::Idle(after);
                        }
                        // A connection waits: the server takes it; quiet
                        // again from the next look.
                        quiet = None;
                    }
                }
                idle_wake = Some(match quiet {
                    Some((_, since)) => (since + after).min(now + idle_check(after)),
                    None => now + idle_check(after),
                });
            }

            fds.clear();
            fds.push(self.signals.as_raw_fd());
            let mut wake_at = runner.wait(&mut fds).map(|d| now + d);
            wake_at = earliest(wake_at, idle_wake);
            if self.notifier.enabled() {
                wake_at = earliest(wake_at, Some(next_status));
            }
            wake_at = earliest(wake_at, next_ping);
            if let Some(c) = &self.control {
                fds.extend(c.fds());
                wake_at = earliest(wake_at, c.next_deadline());
            }
            let timeout = wake_at.map(|w| w.saturating_duration_since(Instant::now()));
            if let Err(e) = sys::poll_readable(&fds, timeout, &mut ready) {
                log::warn(&format!("! poll failed: {e}"));
                std::thread::sleep(DRAIN_POLL);
            }

            got.clear();
            sys::read_signals(self.signals, &mut got);
            for &sig in &got {
                if let Some(ending) = self.act(runner, Asked::by_signal(sig, R::MODE.has_workers()))
                {
                    return ending;
                }
            }
            let started_at = self.started_at;
            let cmds = match self.control.as_mut() {
                Some(c) => c.handle_ready(&|| stats_json(started_at, &runner.stats())),
                None => Vec::new(),
            };
            for cmd in cmds {
                if let Some(ending) = self.act(runner, Asked::by_control(cmd)) {
                    return ending;
                }
            }
        }
    }

    /// Does what was asked; `Some` ends the loop.
    fn act<R: Runner>(&mut self, runner: &mut R, asked: Asked) -> Option<Ending> {
        match asked {
            Asked::Stop => Some(Ending::Stop),
            Asked::Halt => Some(Ending::Halt),
            Asked::HotRestart(what) => self.hot_restart(runner, what),
            Asked::PhasedRestart(_) if !R::MODE.has_workers() => None,
            Asked::PhasedRestart(what) => {
                if runner.config().preload {
                    self.log.say(&format!(
                        "- {what}: phased restart is not possible with --preload; doing a hot restart"
                    ));
                    return self.hot_restart(runner, what);
                }
                let new = self.reload(runner, what, false)?;
                runner.phased_restart(what, new);
                None
            }
            Asked::Resize(more) => {
                runner.resize(more);
                None
            }
            Asked::NeedsWorkers(sig) => {
                log::warn(&format!(
                    "! {} ignored: phased restarts and workers need cluster mode",
                    sys::signal_name(sig)
                ));
                None
            }
            Asked::Nothing => None,
        }
    }

    fn hot_restart<R: Runner>(&mut self, runner: &mut R, what: &str) -> Option<Ending> {
        let new = self.reload(runner, what, true)?;
        runner.reconfigure(new);
        Some(Ending::Restart)
    }

    /// Re-reads the config file and every certificate it names, as the
    /// restarted server will, and for a restart that execs (`preflight`)
    /// runs the binary it would exec with `--check` (check.rs: a child
    /// process, no thread; this loop waits for it while the reactor and
    /// the pool, or the workers, go on serving). A restart that would fail
    /// must not take the service down: `None` keeps serving with the old
    /// configuration, says why, and ends the reload with READY=1.
    fn reload<R: Runner>(&mut self, runner: &R, what: &str, preflight: bool) -> Option<Config> {
        self.notifier
            .reloading(&format!("{what}: checking the configuration"));
        let checked = check_reload(runner.config()).and_then(|new| {
            if preflight {
                let timeout = check::preflight_timeout(self.notifier.watchdog());
                check::preflight(self.exe, timeout)
                    .map_err(|e| format!("the new image would not start: {e}"))?;
            }
            Ok(new)
        });
        match checked {
            Ok(new) => {
                self.told.refused = None;
                Some(new)
            }
            Err(e) => {
                log::warn(&format!(
                    "! {what} refused, still serving with the old configuration: {e}"
                ));
                // systemd waits for READY=1 after RELOADING=1; the refusal
                // is in the status from now on (issue 12).
                self.told.refused = Some(e);
                self.send_ready(runner);
                None
            }
        }
    }

    fn send_ready<R: Runner>(&mut self, runner: &R) {
        let s = self.status_line(runner);
        self.notifier.ready(&s);
        self.told.status = s;
    }

    /// `catamount 0.1.0: single, 3/5 threads busy, 0 queued, 1523
    /// requests` and, after a refused reload, why it was refused: systemd
    /// shows it (`systemctl status`) until a reload passes, instead of
    /// losing it to the next periodic STATUS= (issue 12).
    fn status_line<R: Runner>(&self, runner: &R) -> String {
        let status = format!("catamount {VERSION}: {}", runner.status());
        match &self.told.refused {
            Some(why) => format!("{status}; last reload refused: {why}"),
            None => status,
        }
    }
}

/// Re-reads the config file and loads every certificate it names: the
/// configuration a reload would run with, or why it cannot.
fn check_reload(config: &Config) -> Result<Config, String> {
    let new = config::reload(config).map_err(|e| e.to_string())?;
    landlock::check_reload(&new)?;
    check::certificates(&new)?;
    Ok(new)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `{"started_at":"…",MEMBERS}`: the control app's `/stats`, and a
/// cluster worker's entry in it.
pub(crate) fn stats_json(started_at: SystemTime, members: &str) -> String {
    format!(
        r#"{{"started_at":"{}",{members}}}"#,
        date::iso8601(started_at)
    )
}

/// `3/5 threads busy, 0 queued, 1523 requests`: a pool's load in a status
/// line (one process's, or the sum of the running workers').
pub(crate) fn load_words(pool: &PoolStats) -> String {
    format!(
        "{}/{} threads busy, {} queued, {} requests",
        pool.busy, pool.max_threads, pool.backlog, pool.requests
    )
}

/// The process title, what `ps` shows: `catamount 0.1.0
/// (tcp://127.0.0.1:9292) [tag]`, or for a worker `catamount: cluster
/// worker 1: 4321 [tag]` (`worker`: its index and its master's pid).
pub(crate) fn title(
    listeners: &[Listener],
    tag: Option<&str>,
    worker: Option<(usize, u32)>,
) -> String {
    let tag = tag.map(|t| format!(" [{t}]")).unwrap_or_default();
    match worker {
        Some((index, master)) => format!("catamount: cluster worker {index}: {master}{tag}"),
        None => {
            // Bind-style names, as Puma: tcp://, ssl://, unix://.
            let urls: Vec<String> = listeners
                .iter()
                .map(|l| l.url.replacen("http://", "tcp://", 1))
                .collect();
            format!("catamount {VERSION} ({}){tag}", urls.join(", "))
        }
    }
}

/// A graceful stop's deadline (`shutdown_timeout` from when it began),
/// and how it asks systemd for more time while it makes progress.
pub(crate) struct StopDeadline {
    at: Instant,
    next_extend: Instant,
}

impl StopDeadline {
    pub(crate) fn new(timeout: Duration) -> StopDeadline {
        let now = Instant::now();
        StopDeadline {
            at: now + timeout,
            next_extend: now,
        }
    }

    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// At most once a [`STATUS_INTERVAL`]: asks systemd for the time left
    /// plus [`STOP_TIMEOUT_MARGIN`]. True when it asked.
    pub(crate) fn extend(&mut self, notifier: &Notifier) -> bool {
        let now = Instant::now();
        if now < self.next_extend {
            return false;
        }
        notifier.extend_timeout(self.at.saturating_duration_since(now) + STOP_TIMEOUT_MARGIN);
        self.next_extend = now + STATUS_INTERVAL;
        true
    }
}

/// True when a TERM or INT came (a second one, during a stop: exit at once).
pub(crate) fn second_signal(signals: &OwnedFd) -> bool {
    let mut got = Vec::new();
    sys::read_signals(signals, &mut got);
    got.iter().any(|&s| s == libc::SIGTERM || s == libc::SIGINT)
}

/// Waits for a signal, at most [`DRAIN_POLL`].
pub(crate) fn wait_signal(signals: &OwnedFd) {
    let mut ready = Vec::new();
    let _ = sys::poll_readable(&[signals.as_raw_fd()], Some(DRAIN_POLL), &mut ready);
}

/// Final exit: remove the unix socket files catamount created (unless
/// the fd store keeps them alive for the next start) and the pidfile.
pub(crate) fn cleanup(config: &Config, listeners: &[Listener]) {
    if !config.fd_store {
        for l in listeners {
            l.remove_socket_file();
        }
    }
    if let Some(p) = &config.pidfile {
        let _ = std::fs::remove_file(p);
    }
}

/// How often the loop looks whether the server is quiet, for an
/// `idle_timeout` of `after`: a quarter of it, between
/// [`IDLE_CHECK_MIN`] and [`IDLE_CHECK_MAX`]. An idle exit comes between
/// `after` and `after` plus this.
fn idle_check(after: Duration) -> Duration {
    (after / 4).clamp(IDLE_CHECK_MIN, IDLE_CHECK_MAX)
}

/// Whether a connection waits in the backlog of one of `fds` (a
/// listening socket is readable then). Looks without waiting.
fn backlog_waiting(fds: &[RawFd]) -> bool {
    let mut ready = Vec::new();
    sys::poll_readable(fds, Some(Duration::ZERO), &mut ready).is_ok() && ready.contains(&true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hup_is_a_hot_restart_alone_and_a_phased_one_with_workers() {
        assert_eq!(
            Asked::by_signal(libc::SIGHUP, false),
            Asked::HotRestart("reload (SIGHUP)")
        );
        assert_eq!(
            Asked::by_signal(libc::SIGHUP, true),
            Asked::PhasedRestart("reload (SIGHUP)")
        );
        for workers in [false, true] {
            assert_eq!(
                Asked::by_signal(libc::SIGUSR2, workers),
                Asked::HotRestart("hot restart (SIGUSR2)")
            );
            assert_eq!(Asked::by_signal(libc::SIGTERM, workers), Asked::Stop);
            assert_eq!(Asked::by_signal(libc::SIGINT, workers), Asked::Stop);
            assert_eq!(Asked::by_signal(libc::SIGCHLD, workers), Asked::Nothing);
        }
    }

    #[test]
    fn worker_signals_need_workers() {
        for sig in [libc::SIGUSR1, libc::SIGTTIN, libc::SIGTTOU] {
            assert_eq!(Asked::by_signal(sig, false), Asked::NeedsWorkers(sig));
        }
        assert_eq!(
            Asked::by_signal(libc::SIGUSR1, true),
            Asked::PhasedRestart("phased restart (SIGUSR1)")
        );
        assert_eq!(Asked::by_signal(libc::SIGTTIN, true), Asked::Resize(true));
        assert_eq!(Asked::by_signal(libc::SIGTTOU, true), Asked::Resize(false));
    }

    #[test]
    fn every_signal_that_asks_something_is_caught() {
        for sig in 1..libc::SIGRTMIN() {
            for workers in [false, true] {
                if Asked::by_signal(sig, workers) != Asked::Nothing {
                    assert!(SIGNALS.contains(&sig), "{}", sys::signal_name(sig));
                }
            }
        }
    }

    #[test]
    fn control_commands_ask_what_their_signals_ask() {
        assert_eq!(Asked::by_control(ControlCommand::Stop), Asked::Stop);
        assert_eq!(Asked::by_control(ControlCommand::Halt), Asked::Halt);
        assert_eq!(
            Asked::by_control(ControlCommand::Restart),
            Asked::HotRestart("hot restart (control app)")
        );
        assert_eq!(
            Asked::by_control(ControlCommand::PhasedRestart),
            Asked::PhasedRestart("phased restart (control app)")
        );
    }

    #[test]
    fn load_words_and_stats_json() {
        let pool = PoolStats {
            backlog: 2,
            running: 4,
            busy: 3,
            max_threads: 5,
            requests: 1523,
            connections: 0,
        };
        assert_eq!(
            load_words(&pool),
            "3/5 threads busy, 2 queued, 1523 requests"
        );
        assert_eq!(
            stats_json(SystemTime::UNIX_EPOCH, r#""mode":"single""#),
            r#"{"started_at":"1970-01-01T00:00:00Z","mode":"single"}"#
        );
    }

    #[test]
    fn the_earliest_of_two_maybe_times() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(later), None), Some(later));
        assert_eq!(earliest(None, Some(now)), Some(now));
        assert_eq!(earliest(Some(later), Some(now)), Some(now));
    }
}
