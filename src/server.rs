//! [`Server`]: the public entry point, and start-up in the order that
//! matters: everything that must happen before any thread exists
//! (reading and removing LISTEN_* and NOTIFY_SOCKET, binding with a umask,
//! the control socket, the fd store, the signal self-pipe, the pidfile)
//! happens first; then the supervisor (supervisor.rs) takes over with the
//! single-mode runner (single.rs, which starts the reactor and the pool)
//! or the cluster runner (fork.rs, which forks the workers). When it ends
//! with a hot restart, [`hot_restart`] execs the new image in place.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::activation::{self, ActivationError, Inherited};
use crate::check::{self, Reexec};
use crate::config::{self, Command, ConfigError};
use crate::control::{self, ControlServer};
use crate::fork::Master;
use crate::landlock;
use crate::listeners::{self, Listener};
use crate::log;
use crate::notify::Notifier;
use crate::serving;
use crate::single::Single;
use crate::supervisor::{
    self, cleanup, Ended, Log, Mode, Process, StartFailure, Supervisor, VERSION,
};
use crate::sys;
use crate::{Config, Handler};

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
    let fail = |why: &str, errno: i32| {
        StartFailure {
            why: why.to_string(),
            errno,
        }
        .report(&notifier)
    };
    let inherited = match inherited {
        Ok(i) => i,
        Err(e) => return fail(&e.to_string(), libc::EBADF),
    };
    // Thousands of keep-alive connections need descriptors; the soft
    // limit is often 1024 while the hard limit allows far more.
    let _ = sys::raise_nofile_limit();

    let cluster = config.workers > 0;
    let mode = if cluster { Mode::Cluster } else { Mode::Single };
    log.say(&format!(
        "catamount {VERSION} starting in {} mode...",
        mode.name()
    ));
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
    // An idle exit is only safe when systemd holds every listener and
    // starts catamount again on the next connection.
    if config.idle_timeout.is_some() {
        if let Some(own) = listeners.iter().find(|l| !l.systemd_owned) {
            let msg = format!(
                "idle_timeout needs every listener to come from a systemd socket unit, which \
                 starts catamount again on the next connection; {} is catamount's own (nobody \
                 would start it again): serve it from a socket unit (ListenStream=) with \
                 --bind-to-activated-sockets=only, or drop idle_timeout",
                own.url
            );
            cleanup(config, &listeners);
            return fail(&msg, libc::EINVAL);
        }
    }
    for f in activation::files() {
        log.say(&format!("* Inherited file {} (OpenFile=)", f.name));
    }
    // The control app's socket: bound before any thread or fork, like
    // the listeners (a unix bind sets the process-wide umask).
    let control = match &config.control_url {
        None => None,
        Some(spec) => match ControlServer::bind(spec, config.control_token.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                cleanup(config, &listeners);
                return fail(&e.to_string(), e.errno().unwrap_or(libc::EADDRNOTAVAIL));
            }
        },
    };
    if config.fd_store {
        store_listeners(&notifier, &listeners, &log);
    }
    let signals = match supervisor::signal_pipe() {
        Ok(s) => s,
        Err(f) => {
            cleanup(config, &listeners);
            return f.report(&notifier);
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
        if let Err(e) = serving::boot(&*handler) {
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
    let _ = sys::set_process_title(&supervisor::title(&listeners, config.tag.as_deref(), None));
    log.say("Use Ctrl-C to stop");

    let process = Process {
        notifier: &notifier,
        log,
        signals: &signals,
    };
    let supervisor = Supervisor::new(process, control, &exe, started_at);
    let ended = if cluster {
        // The master never starts a thread: workers are forked from it.
        supervisor.run(Master::new(config.clone(), handler, listeners, process))
    } else {
        // From here on threads exist: nothing below may fork.
        match Single::start(config, handler, listeners, process) {
            Ok(single) => supervisor.run(single),
            Err(e) => return fail(&e, libc::EIO),
        }
    };
    match ended {
        Ended::Exit(code) => code,
        Ended::Exec(listeners) => hot_restart(exe, &listeners, &notifier),
    }
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
