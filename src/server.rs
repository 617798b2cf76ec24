//! [`Server`]: start-up (bind, log, pidfile, signals), then the
//! single-threaded main loop that waits for signals while the reactor and
//! the pool serve, and the graceful stop.
//!
//! Order matters: everything that must happen before any thread exists
//! (binding with a umask, and later forking workers) happens before the
//! pool and the reactor start.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, Command, ConfigError};
use crate::connection::{Engine, Limits};
use crate::listeners::{self, Listener};
use crate::pool::{Pool, Stats};
use crate::reactor::{Reactor, Timeouts};
use crate::sys::{self, EventFd};
use crate::{Config, Handler};

/// The version printed by `-V` and the startup log.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How often the main loop looks at the in-flight count while stopping.
const STOP_POLL: Duration = Duration::from_millis(20);

/// A configured server, ready to serve a [`Handler`].
pub struct Server {
    config: Config,
}

impl Server {
    /// Parses the process's command line (and the config file it names).
    /// `--help` and `--version` print and exit 0 here.
    pub fn from_args() -> Result<Server, ConfigError> {
        match config::parse_args(std::env::args_os().skip(1).collect())? {
            Command::Run(c) => Ok(Server { config: *c }),
            Command::Help => {
                print!("{}", config::help());
                std::process::exit(0)
            }
            Command::Version => {
                println!("catamount {VERSION}");
                std::process::exit(0)
            }
        }
    }

    /// A server for an already validated configuration.
    pub fn new(config: Config) -> Server {
        Server { config }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves `handler` until stopped, then exits the process: 0 after a
    /// graceful stop, 1 when start-up failed or a second signal forced
    /// the stop.
    pub fn serve(self, handler: impl Handler) -> ! {
        let code = run(&self.config, Box::new(handler));
        std::process::exit(code)
    }
}

/// Startup and status lines on stdout, silenced by `--quiet`.
struct Log {
    quiet: bool,
}

impl Log {
    fn say(&self, line: &str) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

fn run(config: &Config, handler: Box<dyn Handler>) -> i32 {
    let log = Log {
        quiet: config.quiet,
    };
    // Thousands of keep-alive connections need descriptors; the soft
    // limit is often 1024 while the hard limit allows far more.
    let _ = sys::raise_nofile_limit();

    let listeners = match listeners::bind_all(&config.binds) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("catamount: error: {e}");
            return 1;
        }
    };
    let signals = match sys::signal_pipe(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ]) {
        Ok(s) => s,
        Err(e) => return fail_start(&listeners, &format!("cannot install signal handlers: {e}")),
    };
    if let Some(path) = &config.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            return fail_start(
                &listeners,
                &format!(
                    "cannot write pidfile {}: {e}; check the directory exists and is writable",
                    path.display()
                ),
            );
        }
    }

    log.say(&format!("catamount {VERSION} starting in single mode..."));
    log.say(&format!("*  Min threads: {}", config.min_threads));
    log.say(&format!("*  Max threads: {}", config.max_threads));
    log.say(&format!("*  Environment: {}", config.environment));
    log.say(&format!("*          PID: {}", std::process::id()));
    for l in &listeners {
        log.say(&format!("* Listening on {}", l.url));
    }
    log.say("Use Ctrl-C to stop");

    // From here on threads exist: nothing below may fork.
    let (back_tx, back_rx) = crossbeam_channel::unbounded();
    let wake = match EventFd::new() {
        Ok(w) => w,
        Err(e) => return fail_start(&listeners, &format!("cannot create an eventfd: {e}")),
    };
    let engine = Arc::new(Engine {
        handler,
        stats: Stats::default(),
        limits: Limits::from_config(config),
        back: back_tx,
        wake,
        backlogged: AtomicBool::new(false),
    });
    let timeouts = Timeouts {
        first_data: config.first_data_timeout,
        persistent: config.persistent_timeout,
        shutdown: config.shutdown_timeout,
    };
    let pool = Pool::start(Arc::clone(&engine), config.min_threads, config.max_threads);
    let reactor = match Reactor::new(listeners, pool, Arc::clone(&engine), back_rx, timeouts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("catamount: error: cannot start the reactor: {e}");
            return 1;
        }
    };
    let reactor = match std::thread::Builder::new()
        .name("catamount-reactor".into())
        .spawn(move || reactor.run())
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("catamount: error: cannot start the reactor thread: {e}");
            return 1;
        }
    };

    // The main loop: single-threaded, waits on the signal self-pipe.
    let mut got = Vec::new();
    loop {
        let mut ready = Vec::new();
        if let Err(e) = sys::poll_readable(
            &[std::os::fd::AsRawFd::as_raw_fd(&signals)],
            None,
            &mut ready,
        ) {
            eprintln!("! poll failed: {e}");
            std::thread::sleep(STOP_POLL);
        }
        got.clear();
        sys::read_signals(&signals, &mut got);
        for &sig in &got {
            match sig {
                libc::SIGTERM | libc::SIGINT => {
                    return graceful_stop(config, &log, &engine, reactor, &signals);
                }
                libc::SIGHUP => {
                    log.say("- SIGHUP received: no log files to reopen (logs go to stdout/stderr)")
                }
                libc::SIGUSR1 | libc::SIGUSR2 | libc::SIGTTIN | libc::SIGTTOU => log.say(&format!(
                    "! signal {sig} ignored: restarts and workers are not supported yet"
                )),
                _ => {}
            }
        }
    }
}

/// A start-up failure after binding: clean up what we created, explain.
fn fail_start(listeners: &[Listener], message: &str) -> i32 {
    for l in listeners {
        l.remove_socket_file();
    }
    eprintln!("catamount: error: {message}");
    1
}

/// Stops accepting, lets in-flight requests finish (bounded by
/// `shutdown_timeout`), closes idle connections, exits 0. A second
/// TERM/INT meanwhile exits at once with status 1.
fn graceful_stop(
    config: &Config,
    log: &Log,
    engine: &Engine,
    reactor: std::thread::JoinHandle<(Vec<Listener>, Pool)>,
    signals: &std::os::fd::OwnedFd,
) -> i32 {
    log.say("- Gracefully stopping, waiting for requests to finish");
    let deadline = Instant::now() + config.shutdown_timeout;
    engine.stats.stopping.store(true, Ordering::Release);
    engine.wake.notify();
    let forced = || {
        let mut got = Vec::new();
        sys::read_signals(signals, &mut got);
        got.iter().any(|&s| s == libc::SIGTERM || s == libc::SIGINT)
    };
    let cleanup = |listeners: &[Listener]| {
        for l in listeners {
            l.remove_socket_file();
        }
        if let Some(p) = &config.pidfile {
            let _ = std::fs::remove_file(p);
        }
    };
    // The reactor stops accepting, closes idle connections and hands the
    // requests it already holds to the pool.
    while !reactor.is_finished() {
        if forced() {
            eprintln!("! Second signal: exiting at once");
            cleanup(&[]);
            return 1;
        }
        wait_signal(signals, STOP_POLL);
    }
    let (listeners, pool) = match reactor.join() {
        Ok(r) => r,
        Err(_) => {
            eprintln!("! the reactor thread panicked; exiting");
            cleanup(&[]);
            return 1;
        }
    };
    cleanup(&listeners);
    drop(listeners); // closing refuses new connections
    while engine.stats.busy.load(Ordering::Acquire) > 0 || pool.queued() > 0 {
        if forced() {
            eprintln!("! Second signal: exiting at once");
            return 1;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "! Shutdown timeout ({}s) reached with {} request(s) in flight; exiting",
                config.shutdown_timeout.as_secs_f64(),
                engine.stats.busy.load(Ordering::Acquire)
            );
            break;
        }
        wait_signal(signals, STOP_POLL);
    }
    log.say("- Goodbye!");
    0
}

fn wait_signal(signals: &std::os::fd::OwnedFd, timeout: Duration) {
    let mut ready = Vec::new();
    let _ = sys::poll_readable(
        &[std::os::fd::AsRawFd::as_raw_fd(signals)],
        Some(timeout),
        &mut ready,
    );
}
