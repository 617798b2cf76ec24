//! [`Server`]: start-up (environment, listeners, fd store, pidfile,
//! signals), the single-threaded main loop (signals, systemd watchdog and
//! STATUS) while the reactor and the pool serve, the graceful stop, and
//! the hot restart (exec in place).
//!
//! Order matters: everything that must happen before any thread exists
//! (reading and removing LISTEN_* and NOTIFY_SOCKET, binding with a umask,
//! and later forking workers) happens before the pool and the reactor start.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::activation::{self, ActivationError, Inherited};
use crate::check;
use crate::config::{self, Command, ConfigError};
use crate::connection::Limits;
use crate::control::{self, ControlCommand, ControlServer, PoolStats};
use crate::date;
use crate::engine::Engine;
use crate::landlock;
use crate::listeners::{self, Listener};
use crate::log;
use crate::notify::{Notifier, WATCHDOG_PINGS_PER_PERIOD};
use crate::pool::{self, Pool};
use crate::reactor::{Reactor, Timeouts};
use crate::sys;
use crate::{Config, Handler};

/// The version printed by `-V` and the startup log.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How often the main loop looks at the in-flight count while draining.
pub(crate) const DRAIN_POLL: Duration = Duration::from_millis(20);
/// STATUS= is sent at most this often, and only when it changed.
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Before a hot restart execs, the longest wait for the pool threads to
/// exit (they do once idle, within `pool::FOLLOWER_IDLE_POLL`; a handler
/// still running past `shutdown_timeout` may hold one longer).
pub(crate) const RESTART_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// A configured server, ready to serve a [`Handler`].
///
/// Make it first thing in `main` (it adopts the sockets systemd passed),
/// optionally [`confine`](Server::confine) it, then
/// [`serve`](Server::serve) the app, which never returns:
///
/// ```no_run
/// use catamount::{Request, Response, Server};
///
/// fn main() {
///     let server = Server::from_args().unwrap_or_else(|e| e.exit());
///     let env = server.config().environment.clone();
///     server.serve(move |_req: &mut Request<'_>| Response::text(200, format!("{env}\n")));
/// }
/// ```
pub struct Server {
    config: Config,
    /// The sockets passed with LISTEN_FDS, adopted when the `Server` was
    /// made (an error is reported by [`Server::serve`]).
    inherited: Result<Vec<Inherited>, ActivationError>,
}

impl Server {
    /// Adopts the sockets systemd passed (LISTEN_FDS), then parses the
    /// process's command line (and the config file it names).
    /// `--help` and `--version` print and exit 0 here. A bad configuration
    /// is also reported to systemd (STATUS/ERRNO) when run by it.
    ///
    /// The passed descriptors are taken first, before the config file is
    /// read or the app opens its files: the numbers LISTEN_FDS names must
    /// still be the ones systemd filled, so a number it left empty is
    /// refused ("fd 3 is not open") instead of adopting whatever the
    /// process opened there itself.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a bad option or config file: one line that
    /// [`ConfigError::exit`] prints before exiting with status 2.
    ///
    /// ```no_run
    /// use catamount::{Response, Server};
    ///
    /// // `my-app -b tcp://127.0.0.1:8080 -t 2:16 -w 2` works as for the binary.
    /// let server = Server::from_args().unwrap_or_else(|e| e.exit());
    /// server.serve(|_req: &mut catamount::Request<'_>| Response::new(204));
    /// ```
    pub fn from_args() -> Result<Server, ConfigError> {
        let inherited = activation::take_from_env();
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        // `--check` (by hand, from ExecReload=, or a hot restart's
        // preflight) is not the service: it never reports to systemd.
        let checking = args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--check");
        match config::parse_args(args) {
            Ok(Command::Run(c)) => Ok(Server {
                config: *c,
                inherited,
            }),
            Ok(Command::Check(c)) => std::process::exit(check::run(&c)),
            Ok(Command::Help) => {
                print!("{}", config::help());
                std::process::exit(0)
            }
            Ok(Command::Version) => {
                println!("catamount {VERSION}");
                std::process::exit(0)
            }
            Err(e) => {
                if !checking {
                    Notifier::take_from_env()
                        .failed(libc::EINVAL, &format!("bad configuration: {e}"));
                }
                Err(e)
            }
        }
    }

    /// A server for an already validated configuration. Adopts the
    /// sockets systemd passed (LISTEN_FDS) now: make it before opening
    /// files of your own (see [`Server::from_args`]).
    ///
    /// Start from [`Config::default`], or from what
    /// [`config::parse_args`](crate::config::parse_args) or
    /// [`config::load_file`](crate::config::load_file) made of arguments or
    /// a file of the app's choosing; a `Config` changed by hand is not
    /// checked again, so keep to the ranges its fields document.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use catamount::{Config, Request, Response, Server};
    ///
    /// let config = Config {
    ///     max_threads: 16,
    ///     shutdown_timeout: Duration::from_secs(10),
    ///     ..Config::default()
    /// };
    /// Server::new(config).serve(|_req: &mut Request<'_>| Response::text(200, "hi\n"));
    /// ```
    pub fn new(config: Config) -> Server {
        Server {
            inherited: activation::take_from_env(),
            config,
        }
    }

    /// The validated configuration.
    ///
    /// ```
    /// use catamount::{Config, Server};
    ///
    /// let server = Server::new(Config::default());
    /// assert_eq!(server.config().max_threads, catamount::config::DEFAULT_MAX_THREADS);
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Confines the server with Landlock (landlock(7)) once its listeners
    /// are open, in single mode and in every cluster worker, unless the
    /// configuration turned it off (`landlock false`, `--no-landlock`):
    /// it may then read only DIR (and, in single mode, what a reload or
    /// hot restart needs: its config file's and certificates'
    /// directories, its binary), write only its pidfile's and state
    /// file's directories, bind only its configured ports, connect
    /// nowhere. `read` and `write` add what the app needs: files or
    /// directories it reads, directories it writes files in. Applied
    /// before `Handler::boot`, which is then confined too. The
    /// `catamount` binary calls this with nothing added; an embedder's
    /// server is unconfined unless it does. On a kernel without Landlock
    /// one warning is logged and the server runs unconfined.
    ///
    /// ```no_run
    /// use std::path::PathBuf;
    ///
    /// use catamount::{Request, Response, Server};
    ///
    /// // The app reads its templates and writes uploads.
    /// let read = [PathBuf::from("/srv/app/templates")];
    /// let write = [PathBuf::from("/var/lib/app/uploads")];
    /// let server = Server::from_args()
    ///     .unwrap_or_else(|e| e.exit())
    ///     .confine(&read, &write);
    /// server.serve(|_req: &mut Request<'_>| Response::text(200, "confined\n"));
    /// ```
    pub fn confine(mut self, read: &[PathBuf], write: &[PathBuf]) -> Server {
        if self.config.landlock.is_none() {
            self.config.landlock = Some(true);
        }
        self.config.landlock_extra.read.extend_from_slice(read);
        self.config.landlock_extra.write.extend_from_slice(write);
        self
    }

    /// Serves `handler` until stopped, then exits the process: 0 after a
    /// graceful stop, 1 when start-up failed or a second signal forced the
    /// stop. Call it before starting threads of your own: it reads and
    /// removes systemd's variables from the environment.
    ///
    /// ```no_run
    /// use catamount::static_files::StaticFiles;
    /// use catamount::Server;
    ///
    /// let server = Server::from_args().unwrap_or_else(|e| e.exit());
    /// let app = StaticFiles::new(server.config().dir.clone(), server.config());
    /// server.serve(app)
    /// ```
    pub fn serve(self, handler: impl Handler) -> ! {
        let code = run(&self.config, self.inherited, Box::new(handler));
        std::process::exit(code)
    }
}

/// Startup and status lines on stdout, silenced by `--quiet`.
pub(crate) struct Log {
    pub(crate) quiet: bool,
}

impl Log {
    pub(crate) fn say(&self, line: &str) {
        if !self.quiet {
            log::info(line);
        }
    }
}

/// What the main loop was asked to do.
enum Exit {
    Stop,
    Restart,
    /// `/halt` from the control app: exit now, requests in flight dropped.
    Halt,
}

fn run(
    config: &Config,
    inherited: Result<Vec<Inherited>, ActivationError>,
    handler: Box<dyn Handler>,
) -> i32 {
    // `/stats` says `started_at`: when this process image started.
    let started_at = SystemTime::now();
    // Whether stdout and stderr are the journal, before anything forks.
    log::init();
    let log = Log {
        quiet: config.quiet,
    };
    // Read once, before any thread: these change the environment.
    let notifier = Notifier::take_from_env();
    // What a hot restart execs: saved before the process title overwrites
    // the argument area.
    let exe = Reexec {
        exe: std::env::current_exe().ok(),
        args: std::env::args_os().skip(1).collect(),
    };
    let fail = |msg: &str, errno: i32| {
        log::error(&format!("catamount: error: {msg}"));
        notifier.failed(errno, &format!("failed to start: {msg}"));
        1
    };
    let inherited = match inherited {
        Ok(i) => i,
        Err(e) => return fail(&e.to_string(), libc::EBADF),
    };
    // Thousands of keep-alive connections need descriptors; the soft
    // limit is often 1024 while the hard limit allows far more.
    let _ = sys::raise_nofile_limit();

    let cluster = config.workers > 0;
    let mode = if cluster { "cluster" } else { "single" };
    log.say(&format!("catamount {VERSION} starting in {mode} mode..."));
    log.say(&format!("*  Min threads: {}", config.min_threads));
    log.say(&format!("*  Max threads: {}", config.max_threads));
    log.say(&format!("*  Environment: {}", config.environment));
    if cluster {
        log.say(&format!("*   Master PID: {}", std::process::id()));
        log.say(&format!("*      Workers: {}", config.workers));
        let phased = if config.preload {
            "(✖) phased (--preload)"
        } else {
            "(✔) phased"
        };
        log.say(&format!("*     Restarts: (✔) hot {phased}"));
    } else {
        log.say(&format!("*          PID: {}", std::process::id()));
    }
    // What is served, resolved (issue 12): under systemd the working
    // directory is `/`, so a relative DIR is worth seeing in full.
    let served = std::fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone());
    log.say(&format!("* Serving {}", served.display()));
    // fork(2) in a process with a second thread (an embedder's, started
    // in a Handler's constructor) could leave a lock held forever in a
    // worker: refused before anything is bound (sys::fork checks again).
    if cluster {
        if let Err(e) = sys::single_threaded() {
            return fail(&e.to_string(), libc::EPERM);
        }
    }
    let mut say = |line: String| log.say(&line);
    let listeners = match listeners::open_all(&config.binds, inherited, config.activated, &mut say)
    {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string(), e.errno().unwrap_or(libc::EADDRNOTAVAIL)),
    };
    for f in activation::files() {
        log.say(&format!("* Inherited file {} (OpenFile=)", f.name));
    }
    // The control app's socket: bound before any thread or fork, like
    // the listeners (a unix bind sets the process-wide umask).
    let mut control = match &config.control_url {
        None => None,
        Some(spec) => match ControlServer::bind(spec, config.control_token.clone()) {
            Ok(mut c) => {
                if !cluster {
                    c.set_phased_restart(false);
                }
                Some(c)
            }
            Err(e) => {
                cleanup(config, &listeners);
                return fail(&e.to_string(), e.errno().unwrap_or(libc::EADDRNOTAVAIL));
            }
        },
    };
    if config.fd_store {
        store_listeners(&notifier, &listeners, &log);
    }
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
            cleanup(config, &listeners);
            return fail(
                &format!("cannot install signal handlers: {e}"),
                e.raw_os_error().unwrap_or(libc::EIO),
            );
        }
    };
    if let Some(path) = &config.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            cleanup(config, &listeners);
            let msg = format!(
                "cannot write pidfile {}: {e}; check the directory exists and is writable",
                path.display()
            );
            return fail(&msg, e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
    if let Some(path) = &config.state_path {
        let url = control.as_ref().map(ControlServer::url);
        if let Err(e) = control::write_state(
            path,
            std::process::id(),
            url.as_deref(),
            config.control_token.as_deref(),
        ) {
            cleanup(config, &listeners);
            if let Some(c) = &control {
                c.remove_socket_file();
            }
            let msg = format!(
                "cannot write state file {}: {e}; check the directory exists and is writable",
                path.display()
            );
            return fail(&msg, e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
    // Confined once everything it binds or writes at start is done, while
    // this is the only thread, before the app boots: in single mode this
    // process; in cluster mode each worker (the banner lists their rules).
    if landlock::wanted(config) {
        if cluster {
            log_worker_confinement(config, &log);
        } else {
            match landlock::confine(config, landlock::Role::Single) {
                Ok(o @ landlock::Outcome::Confined { .. }) => log.say(&o.banner()),
                Ok(o) => log::warn(&o.banner()),
                Err(e) => {
                    cleanup(config, &listeners);
                    return fail(&e, libc::EPERM);
                }
            }
        }
    }
    if !cluster {
        // Booted before the banner says "Listening": a single-mode app
        // that cannot boot exits 1 without claiming it served (cluster
        // workers boot after fork, with retries).
        if let Err(e) = boot(&*handler) {
            return fail(&e, libc::EIO);
        }
    }
    for l in &listeners {
        log.say(&format!("* Listening on {}", l.url));
    }
    if let Some(c) = &control {
        log.say(&format!("* Control app listening on {}", c.url()));
    }
    // Still one thread, arguments saved: safe to retitle.
    let _ = sys::set_process_title(&title(&listeners, config.tag.as_deref(), None));
    log.say("Use Ctrl-C to stop");

    if cluster {
        // The master never starts a thread: workers are forked from it.
        let master = crate::fork::Master::new(
            config.clone(),
            handler,
            listeners,
            &notifier,
            &log,
            &signals,
            exe,
        )
        .with_control(control);
        return master.run();
    }
    // From here on threads exist: nothing below may fork.
    let serving = match start_serving(config, handler, listeners) {
        Ok(s) => s,
        Err(e) => return fail(&e, libc::EIO),
    };
    notifier.ready(&status_line(&serving.engine, config));

    let exit = main_loop(
        config,
        &notifier,
        &serving,
        &signals,
        control.as_mut(),
        Image {
            started_at,
            exe: &exe,
        },
    );
    // Not driven from here on. The file goes now; the socket with the
    // process (or the exec: it is close-on-exec; the new image rebinds).
    if let Some(c) = control.take() {
        c.remove_socket_file();
    }
    match exit {
        Exit::Halt => {
            log.say("- Halting (control app): exiting without waiting for requests in flight");
            cleanup(config, &[]);
            0
        }
        Exit::Stop => {
            notifier.stopping("stopping: finishing requests in flight");
            log.say("- Gracefully stopping, waiting for requests to finish");
            let stopped =
                stop_reactor(config, serving, &signals).and_then(|(listeners, draining)| {
                    // Refuse new connections now (sockets systemd or its fd
                    // store also hold stay open there, for the next start).
                    cleanup(config, &listeners);
                    drop(listeners);
                    wait_in_flight(config, draining, &signals, Some(&notifier))
                });
            match stopped {
                Ok(()) => {
                    log.say("- Goodbye!");
                    0
                }
                Err(()) => {
                    log::error("! Second signal: exiting at once");
                    1
                }
            }
        }
        Exit::Restart => {
            log.say("- Restarting (hot: exec in place, same pid, listeners kept)...");
            let drained =
                stop_reactor(config, serving, &signals).and_then(|(listeners, draining)| {
                    let engine = Arc::clone(&draining.engine);
                    wait_in_flight(config, draining, &signals, Some(&notifier))?;
                    release_engine(engine, &signals)?;
                    Ok(listeners)
                });
            match drained {
                Ok(listeners) => hot_restart(exe, &listeners, &notifier),
                Err(()) => {
                    log::error("! Second signal during restart: exiting at once");
                    1
                }
            }
        }
    }
}

/// The binary and arguments a hot restart execs.
pub(crate) struct Reexec {
    pub(crate) exe: Option<PathBuf>,
    pub(crate) args: Vec<std::ffi::OsString>,
}

/// `catamount 0.1.0 (tcp://127.0.0.1:9292) [tag]`: what `ps` shows.
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

/// The threads serving requests, and how to reach them.
pub(crate) struct Serving {
    pub(crate) engine: Arc<Engine>,
    reactor: JoinHandle<(Vec<Listener>, Pool)>,
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

/// What the running process image knows of itself: when it started (for
/// `/stats`) and the file a hot restart execs (for the preflight).
struct Image<'a> {
    started_at: SystemTime,
    exe: &'a Reexec,
}

/// The main loop: single-threaded; waits on the signal self-pipe, pings
/// the watchdog while the reactor turns, sends STATUS when it changes.
fn main_loop(
    config: &Config,
    notifier: &Notifier,
    serving: &Serving,
    signals: &OwnedFd,
    mut control: Option<&mut ControlServer>,
    image: Image<'_>,
) -> Exit {
    let Image { started_at, exe } = image;
    let stats = serving.engine.stats();
    let ping_every = notifier.watchdog().map(|p| p / WATCHDOG_PINGS_PER_PERIOD);
    let mut next_ping = ping_every.map(|p| Instant::now() + p);
    let mut last_beat = stats.heartbeat();
    // Make a healthy reactor turn before the first check, even when idle;
    // otherwise the first ping after READY would come a whole period late.
    serving.engine.nudge_reactor();
    let mut next_status = Instant::now() + STATUS_INTERVAL;
    let mut last_status = String::new();
    // Why the last reload was refused: it stays in STATUS (a reload that
    // passes the check execs a new image, which starts without it).
    let mut refused: Option<String> = None;
    let mut got = Vec::new();
    let mut ready = Vec::new();
    loop {
        let now = Instant::now();
        let mut wake_at = if notifier.enabled() {
            Some(next_status)
        } else {
            None
        };
        if let Some(p) = next_ping {
            wake_at = Some(wake_at.map_or(p, |w| w.min(p)));
        }
        if let Some(d) = control.as_deref().and_then(ControlServer::next_deadline) {
            wake_at = Some(wake_at.map_or(d, |w| w.min(d)));
        }
        let timeout = wake_at.map(|w| w.saturating_duration_since(now));
        let mut fds = vec![signals.as_raw_fd()];
        if let Some(c) = control.as_deref() {
            fds.extend(c.fds());
        }
        if let Err(e) = sys::poll_readable(&fds, timeout, &mut ready) {
            log::warn(&format!("! poll failed: {e}"));
            std::thread::sleep(DRAIN_POLL);
        }
        let mut refusal_now = false;
        got.clear();
        sys::read_signals(signals, &mut got);
        for &sig in &got {
            match sig {
                libc::SIGTERM | libc::SIGINT => return Exit::Stop,
                libc::SIGUSR2 | libc::SIGHUP => {
                    let what = if sig == libc::SIGHUP {
                        "reload (SIGHUP)"
                    } else {
                        "hot restart (SIGUSR2)"
                    };
                    match restart_allowed(config, notifier, what, exe) {
                        Ok(()) => return Exit::Restart,
                        Err(e) => {
                            refused = Some(e);
                            refusal_now = true;
                        }
                    }
                }
                libc::SIGUSR1 | libc::SIGTTIN | libc::SIGTTOU => log::warn(&format!(
                    "! {} ignored: phased restarts and workers need cluster mode",
                    sys::signal_name(sig)
                )),
                _ => {}
            }
        }
        if let Some(c) = control.as_deref_mut() {
            for cmd in c.handle_ready(&|| stats_json(&serving.engine, config, started_at)) {
                match cmd {
                    ControlCommand::Stop => return Exit::Stop,
                    ControlCommand::Halt => return Exit::Halt,
                    ControlCommand::Restart => {
                        match restart_allowed(config, notifier, "hot restart (control app)", exe) {
                            Ok(()) => return Exit::Restart,
                            Err(e) => {
                                refused = Some(e);
                                refusal_now = true;
                            }
                        }
                    }
                    // Answered 409 (set_phased_restart(false)): never yielded.
                    ControlCommand::PhasedRestart => {}
                }
            }
        }
        if refusal_now {
            // READY=1 ends the refused reload (systemd waits for it after
            // RELOADING=1); the refusal is in the status from now on.
            let s = with_refusal(status_line(&serving.engine, config), refused.as_deref());
            notifier.ready(&s);
            last_status = s;
        }
        let now = Instant::now();
        if let (Some(every), Some(at)) = (ping_every, next_ping) {
            if now >= at {
                // Ping only while the reactor turns; then nudge it so a
                // healthy one has turned again by the next check.
                let beat = stats.heartbeat();
                if beat != last_beat {
                    notifier.watchdog_ping();
                    last_beat = beat;
                }
                serving.engine.nudge_reactor();
                next_ping = Some(now + every);
            }
        }
        if notifier.enabled() && now >= next_status {
            let s = with_refusal(status_line(&serving.engine, config), refused.as_deref());
            if s != last_status {
                notifier.status(&s);
                last_status = s;
            }
            next_status = now + STATUS_INTERVAL;
        }
    }
}

/// Re-reads the config file and every certificate it names, as the
/// restarted server will: a reload that would fail is refused up front, so
/// it never takes the service down.
pub(crate) fn check_reload(config: &Config) -> Result<Config, String> {
    let new = config::reload(config).map_err(|e| e.to_string())?;
    landlock::check_reload(&new)?;
    check::certificates(&new)?;
    Ok(new)
}

/// Checks the configuration a restart would load, then runs the binary
/// the restart would exec with `--check` (the preflight; it blocks this
/// loop for at most `check::preflight_timeout`, while the reactor and the
/// pool go on serving). A restart the new image would not survive must
/// not take the service down: keep serving, say why. `Err`: why it was
/// refused; the caller ends the reload with READY=1.
fn restart_allowed(
    config: &Config,
    notifier: &Notifier,
    what: &str,
    exe: &Reexec,
) -> Result<(), String> {
    notifier.reloading(&format!("{what}: checking the configuration"));
    let checked = check_reload(config).and_then(|_| {
        let timeout = check::preflight_timeout(notifier.watchdog());
        check::preflight(exe, timeout).map_err(|e| format!("the new image would not start: {e}"))
    });
    checked.map(|_| ()).map_err(|e| {
        log::warn(&format!(
            "! {what} refused, still serving with the old configuration: {e}"
        ));
        e
    })
}

/// `status` and, after a refused reload, why it was refused: systemd
/// shows it (`systemctl status`) until a reload succeeds, instead of
/// losing it to the next periodic STATUS= (issue 12).
pub(crate) fn with_refusal(status: String, refused: Option<&str>) -> String {
    match refused {
        Some(why) => format!("{status}; last reload refused: {why}"),
        None => status,
    }
}

/// The control app's `/stats` in single mode: Puma's fields (single.rb
/// and server.rb `stats`), then catamount's own.
fn stats_json(engine: &Engine, config: &Config, started_at: SystemTime) -> String {
    let stats = engine.stats();
    let pool = PoolStats {
        backlog: engine.backlog() as u64,
        running: stats.threads() as u64,
        busy: stats.busy() as u64,
        max_threads: config.max_threads as u64,
        requests: stats.requests(),
    };
    format!(
        r#"{{"started_at":"{}",{},"mode":"single","phase":0,"busy":{},"queued":{},"requests":{}}}"#,
        date::iso8601(started_at),
        pool.puma_members(),
        pool.busy,
        pool.backlog,
        pool.requests
    )
}

/// `catamount 0.1.0: single, 3/5 threads busy, 0 queued, 1523 requests`.
fn status_line(engine: &Engine, config: &Config) -> String {
    let stats = engine.stats();
    format!(
        "catamount {VERSION}: single, {}/{} threads busy, {} queued, {} requests",
        stats.busy(),
        config.max_threads,
        engine.backlog(),
        stats.requests()
    )
}

/// What is left to wait for once the reactor has stopped.
pub(crate) struct Draining {
    engine: Arc<Engine>,
    pool: Pool,
    deadline: Instant,
}

/// Stops accepting, closes idle connections, hands requests already
/// received to the pool; returns the listeners, still open. `Err` when a
/// second TERM/INT asked to exit at once.
pub(crate) fn stop_reactor(
    config: &Config,
    serving: Serving,
    signals: &OwnedFd,
) -> Result<(Vec<Listener>, Draining), ()> {
    let deadline = Instant::now() + config.shutdown_timeout;
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
    d: Draining,
    signals: &OwnedFd,
    notifier: Option<&Notifier>,
) -> Result<(), ()> {
    let stats = d.engine.stats();
    let mut next_extend = Instant::now();
    let mut last_done = u64::MAX;
    // Responses the pool finishes from its epoll (clients reading
    // slowly) are in flight too.
    while stats.busy() > 0
        || stats.reading() > 0
        || d.engine.parking().writers() > 0
        || d.pool.queued() > 0
    {
        // While requests keep completing, ask systemd for more time, so a
        // long but healthy drain is not killed by TimeoutStopSec=.
        let done = stats.requests();
        if let Some(notifier) =
            notifier.filter(|_| Instant::now() >= next_extend && done != last_done)
        {
            notifier.extend_timeout(
                d.deadline.saturating_duration_since(Instant::now()) + STATUS_INTERVAL * 5,
            );
            last_done = done;
            next_extend = Instant::now() + STATUS_INTERVAL;
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
        if Instant::now() >= d.deadline {
            log::warn(&format!(
                "! Shutdown timeout ({}s) reached with {} request(s) in flight and {} response(s) \
                 still being sent; going on without them",
                config.shutdown_timeout.as_secs_f64(),
                stats.busy(),
                d.engine.parking().writers()
            ));
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
fn release_engine(engine: Arc<Engine>, signals: &OwnedFd) -> Result<(), ()> {
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
                RESTART_RELEASE_TIMEOUT.as_secs_f64()
            ));
            return Ok(());
        }
        wait_signal(signals);
    }
    drop(engine);
    Ok(())
}

pub(crate) fn second_signal(signals: &OwnedFd) -> bool {
    let mut got = Vec::new();
    sys::read_signals(signals, &mut got);
    got.iter().any(|&s| s == libc::SIGTERM || s == libc::SIGINT)
}

pub(crate) fn wait_signal(signals: &OwnedFd) {
    let mut ready = Vec::new();
    let _ = sys::poll_readable(&[signals.as_raw_fd()], Some(DRAIN_POLL), &mut ready);
}

/// The cluster banner's Landlock line: what each worker will be confined
/// to (the master stays unconfined: it forks workers with each new
/// configuration).
fn log_worker_confinement(config: &Config, log: &Log) {
    match sys::landlock_abi() {
        Ok(abi) => log.say(&format!(
            "* Workers confined by Landlock ABI {abi}: {}",
            landlock::rules(config, landlock::Role::Worker).describe(abi)
        )),
        Err(e) => log::warn(&landlock::Outcome::Unavailable(e.to_string()).banner()),
    }
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

/// Hands the sockets catamount bound itself to systemd's fd store, so a
/// `systemctl restart` (or a crash) refuses no connection. systemd's own
/// sockets are never stored: it holds them already.
fn store_listeners(notifier: &Notifier, listeners: &[Listener], log: &Log) {
    if !notifier.enabled() {
        log::warn("! fd_store is on but NOTIFY_SOCKET is not set: run under systemd with Type=notify and FileDescriptorStoreMax=");
        return;
    }
    for l in listeners.iter().filter(|l| !l.systemd_owned) {
        if notifier.store_fd(&l.name, l.fd.as_fd()) {
            log.say(&format!("* Stored {} in the systemd fd store", l.url));
        }
    }
}

/// Execs our own binary in place (same pid, so systemd's MAINPID holds),
/// passing the listeners through the sd_listen_fds protocol with their
/// names. Returns only on failure.
pub(crate) fn hot_restart(exe: Reexec, listeners: &[Listener], notifier: &Notifier) -> i32 {
    let Reexec { exe, args } = exe;
    let Some(exe) = exe else {
        log::error("! hot restart failed: the path of the running binary is unknown");
        notifier.ready("hot restart failed: binary path unknown; exiting for systemd to restart");
        return 1;
    };
    // The listeners, then the files systemd passed (OpenFile=), each
    // under its name: the new image sorts them out again.
    let files = activation::files();
    let fds: Vec<BorrowedFd<'_>> = listeners
        .iter()
        .map(|l| l.fd.as_fd())
        .chain(files.iter().map(|f| f.fd.as_fd()))
        .collect();
    let names: Vec<&str> = listeners
        .iter()
        .map(|l| l.name.as_str())
        .chain(files.iter().map(|f| f.name.as_str()))
        .collect();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(args)
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"));
    for (k, v) in notifier.env_for_exec() {
        cmd.env(k, v);
    }
    let err = sys::exec_passing(&mut cmd, &fds);
    // The descriptors may have been renumbered; this image cannot go on
    // serving.
    log::error(&format!(
        "! hot restart failed: cannot pass the listeners on and exec {}: {err}",
        exe.display()
    ));
    notifier.ready(&format!(
        "hot restart failed: {err}; exiting for systemd to restart"
    ));
    1
}
