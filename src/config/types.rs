//! What a configuration is: [`Config`] and its defaults and limits, one
//! layer of settings ([`Overrides`]) and how a layer is written over a
//! `Config`, the [`Command`] the command line asks for, and
//! [`ConfigError`]. No parsing happens here.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::bind::BindSpec;

/// Default minimum pool threads (Puma's).
pub const DEFAULT_MIN_THREADS: usize = 0;
/// Default maximum pool threads (Puma's).
pub const DEFAULT_MAX_THREADS: usize = 5;
/// Bind used when none is given (Puma's).
pub const DEFAULT_BIND: &str = "tcp://0.0.0.0:9292";
/// Directory served when none is given: the current directory.
pub const DEFAULT_DIR: &str = ".";
/// Environment name when none is given.
pub const DEFAULT_ENVIRONMENT: &str = "production";
/// Seconds a new connection has to send a complete request head.
pub const DEFAULT_FIRST_DATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds a request body has to arrive in full, counted from the end of
/// its head (an absolute deadline, so a trickle cannot stretch it).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds a client may take none of a response before it is closed
/// (nginx's send_timeout).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds an idle keep-alive connection is kept.
pub const DEFAULT_PERSISTENT_TIMEOUT: Duration = Duration::from_secs(65);
/// Seconds a graceful stop waits for in-flight requests.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served on one connection before it is closed.
pub const DEFAULT_MAX_KEEP_ALIVE: u32 = 999;
/// Largest request body accepted (10 MiB); larger gets 413.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
/// Upgraded connections (WebSocket and other `101 Switching Protocols`
/// or `CONNECT` takeovers) open at once per serving process; each has a
/// thread of its own, and one more is answered 503.
pub const DEFAULT_MAX_UPGRADED: usize = 256;
/// Worker processes when none are asked for: 0, single mode (Puma's).
pub const DEFAULT_WORKERS: usize = 0;
/// Seconds a worker may go without checking in before it is replaced
/// (Puma's).
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(60);
/// Seconds a new worker has to finish booting (Puma's).
pub const DEFAULT_WORKER_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest `MAX` accepted for threads. A typo guard, not a tuning value:
/// a thousand-odd threads already means something else is wrong.
pub const MAX_THREADS_LIMIT: usize = 4096;
/// Longest timeout accepted (one day). Longer is almost surely a typo,
/// and the bound keeps every timeout far inside the `i32` milliseconds
/// that poll(2) takes.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest config file read. `-C /dev/zero` must fail, not eat memory; a
/// real file of directives is a few hundred bytes.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Largest `control_token_file` read. A token is a line; the bound keeps
/// a wrong path (a log, a device) from being read whole.
pub const MAX_CONTROL_TOKEN_FILE_BYTES: u64 = 4096;
/// Largest `max_upgraded` accepted. A typo guard like
/// [`MAX_THREADS_LIMIT`]: each upgraded connection is a thread.
pub const MAX_UPGRADED_LIMIT: usize = 65536;
/// Most worker processes accepted. A typo guard like
/// [`MAX_THREADS_LIMIT`]: each worker is a whole process.
pub const MAX_WORKERS: usize = 256;
/// Largest `worker_max_rss` accepted, in MiB (16 TiB). A typo guard that
/// also keeps the limit in bytes far inside a `u64`.
pub const MAX_WORKER_MAX_RSS_MIB: u64 = 1 << 24;

/// Whether catamount listens on the sockets systemd passes
/// (`--bind-to-activated-sockets`, Puma's `bind_to_activated_sockets`).
///
/// ```
/// use catamount::config::ActivatedMode;
/// use catamount::Config;
///
/// let config = Config { activated: ActivatedMode::Only, ..Config::default() };
/// assert_ne!(config.activated, Config::default().activated);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivatedMode {
    /// Only the passed sockets that a bind names (by `fd://`, or by the
    /// same address) are listened on. The default.
    #[default]
    Off,
    /// Listen on every passed socket, as well as on the configured binds.
    On,
    /// Listen on the passed sockets alone: when systemd passed any, the
    /// configured binds are ignored; when it passed none, they are used.
    Only,
}

/// What an embedder's app needs under Landlock besides what catamount
/// allows itself: filled by [`Server::confine`](crate::Server::confine),
/// kept across a reload.
///
/// ```
/// use std::path::PathBuf;
///
/// use catamount::{Config, Server};
///
/// let server = Server::new(Config::default()).confine(&[PathBuf::from("/srv/templates")], &[]);
/// let extra = &server.config().landlock_extra;
/// assert_eq!(extra.read, [PathBuf::from("/srv/templates")]);
/// assert!(extra.write.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtraAccess {
    /// Files and directories the app reads (beneath each).
    pub read: Vec<PathBuf>,
    /// Directories the app creates, writes and removes files in.
    pub write: Vec<PathBuf>,
}

/// Everything catamount needs to run, validated.
///
/// [`Config::default`] is the built-in defaults (serving the current
/// directory on [`DEFAULT_BIND`]); embedders may start from it, or get one
/// from [`parse_args`](super::parse_args) or
/// [`load_file`](super::load_file), which also check it. Every limit is a
/// field with a documented default (the `DEFAULT_*` constants) and bounds
/// (the `MAX_*` ones).
///
/// ```
/// use std::time::Duration;
///
/// use catamount::config::{DEFAULT_MAX_BODY, DEFAULT_SHUTDOWN_TIMEOUT};
/// use catamount::Config;
///
/// let defaults = Config::default();
/// assert_eq!(defaults.binds[0].to_string(), "tcp://0.0.0.0:9292");
/// assert_eq!(defaults.max_body, DEFAULT_MAX_BODY);
/// assert_eq!(defaults.workers, 0); // single mode
///
/// let quick = Config {
///     shutdown_timeout: Duration::from_secs(5),
///     ..Config::default()
/// };
/// assert!(quick.shutdown_timeout < DEFAULT_SHUTDOWN_TIMEOUT);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listeners to bind, in order; never empty after parsing. Each
    /// displays as its bind URI (`tcp://0.0.0.0:9292`,
    /// `unix:///run/app.sock`, `fd://web`); they are made by parsing
    /// (`-b`/`--bind`, or `bind` in the config file), see
    /// [`parse_args`](super::parse_args).
    pub binds: Vec<BindSpec>,
    /// Directory served by the static-file app (relative to the working
    /// directory when relative). Checked when parsed to be a directory
    /// this process can read, and not `/` when it is the default.
    pub dir: PathBuf,
    /// Pool threads kept even when idle. Default [`DEFAULT_MIN_THREADS`].
    pub min_threads: usize,
    /// Most pool threads started; 1 to [`MAX_THREADS_LIMIT`], at least
    /// `min_threads`. Default [`DEFAULT_MAX_THREADS`].
    pub max_threads: usize,
    /// Environment name, for the log. Default [`DEFAULT_ENVIRONMENT`].
    pub environment: String,
    /// Name for the process title and the log; `None` when not given.
    pub tag: Option<String>,
    /// File the process id is written to; `None` writes none.
    pub pidfile: Option<PathBuf>,
    /// See [`DEFAULT_FIRST_DATA_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub first_data_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub body_timeout: Duration,
    /// See [`DEFAULT_WRITE_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub write_timeout: Duration,
    /// See [`DEFAULT_PERSISTENT_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub persistent_timeout: Duration,
    /// See [`DEFAULT_SHUTDOWN_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    /// Single mode and cluster mode share it: in cluster mode it is how
    /// long each worker's graceful stop may take (Puma's
    /// `worker_shutdown_timeout`, which is accepted as another name for
    /// it, as `--worker-shutdown-timeout` is for `--shutdown-timeout`).
    pub shutdown_timeout: Duration,
    /// See [`DEFAULT_MAX_KEEP_ALIVE`]; at least 1.
    pub max_keep_alive: u32,
    /// See [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
    /// Upgraded connections open at once in each serving process (each
    /// runs on a thread of its own, outside the pool; see
    /// [`Upgraded`](crate::Upgraded)); one more is answered 503, and 0
    /// refuses every upgrade. At most [`MAX_UPGRADED_LIMIT`]. Default
    /// [`DEFAULT_MAX_UPGRADED`].
    pub max_upgraded: usize,
    /// Log one line per request. Default off.
    pub log_requests: bool,
    /// Log only warnings and errors. Default off.
    pub quiet: bool,
    /// Static app: HTML directory listings when a directory has no index.html.
    pub dir_listing: bool,
    /// Static app: serve files and directories whose name starts with `.`.
    pub serve_dotfiles: bool,
    /// Static app: `Cache-Control` value for every file answer (printable
    /// ASCII only, so it is safe to write into a header).
    pub cache_control: Option<String>,
    /// systemd socket activation. Default [`ActivatedMode::Off`].
    pub activated: ActivatedMode,
    /// Hand the sockets catamount bound itself to systemd's fd store
    /// (needs `FileDescriptorStoreMax=` in the unit). Default off.
    pub fd_store: bool,
    /// Landlock self-confinement: `Some(false)` (`landlock false`,
    /// `--no-landlock`) never; `Some(true)` on; `None` (not set) is on for
    /// the `catamount` binary and off for an embedder's app unless it
    /// calls `Server::confine`.
    pub landlock: Option<bool>,
    /// Paths an embedder's app needs under Landlock besides catamount's
    /// own (`Server::confine`); empty for the binary.
    pub landlock_extra: ExtraAccess,
    /// Exit 0 after this long with no connection open and no request in
    /// flight, for systemd to start catamount again on the next
    /// connection (Puma's `idle_timeout`). Needs every listener to come
    /// from a socket unit. Default `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Worker processes; 0 (the default, [`DEFAULT_WORKERS`]) is single
    /// mode. At most [`MAX_WORKERS`].
    pub workers: usize,
    /// Load the app in the main process before forking the workers
    /// (Puma's `preload_app!`). Default off; no effect in single mode.
    pub preload: bool,
    /// A worker that does not check in for this long is replaced. See
    /// [`DEFAULT_WORKER_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub worker_timeout: Duration,
    /// How long a new worker has to boot. See
    /// [`DEFAULT_WORKER_BOOT_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub worker_boot_timeout: Duration,
    /// A worker is replaced after about this many requests; at least 1.
    /// `None` (the default) sets no limit.
    pub max_requests: Option<u64>,
    /// A worker whose resident set exceeds this many MiB is replaced;
    /// 1 to [`MAX_WORKER_MAX_RSS_MIB`]. `None` (the default) sets no limit.
    pub worker_max_rss: Option<u64>,
    /// Where the control app listens: only `BindSpec::Unix`, or
    /// `BindSpec::Tcp` on a loopback host (`127.0.0.0/8`, `::1` or
    /// `localhost`), since the control app can stop the server. Never
    /// equal to one of `binds`. `None` (the default) runs no control app.
    pub control_url: Option<BindSpec>,
    /// The token control requests must carry: visible ASCII, non-empty.
    /// When `control_url` is set, `None` means the operator explicitly
    /// asked for no token (`no_token: true`), so any client that can
    /// connect may control the server; without that, a control URL
    /// without a token is refused when parsed.
    pub control_token: Option<String>,
    /// File the server state (pid, control URL and token) is written
    /// to; `None` (the default) writes none.
    pub state_path: Option<PathBuf>,
    /// The config file read, if any (re-read on reload).
    pub config_file: Option<PathBuf>,
    /// What the command line set, kept so that [`reload`](super::reload) can apply it
    /// again over the re-read file. Empty (`Overrides::default()`) for a
    /// config not made from a command line.
    pub cli: Overrides,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            binds: vec![default_bind()],
            dir: PathBuf::from(DEFAULT_DIR),
            min_threads: DEFAULT_MIN_THREADS,
            max_threads: DEFAULT_MAX_THREADS,
            environment: DEFAULT_ENVIRONMENT.to_string(),
            tag: None,
            pidfile: None,
            first_data_timeout: DEFAULT_FIRST_DATA_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            persistent_timeout: DEFAULT_PERSISTENT_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_keep_alive: DEFAULT_MAX_KEEP_ALIVE,
            max_body: DEFAULT_MAX_BODY,
            max_upgraded: DEFAULT_MAX_UPGRADED,
            log_requests: false,
            quiet: false,
            dir_listing: false,
            serve_dotfiles: false,
            cache_control: None,
            activated: ActivatedMode::Off,
            fd_store: false,
            landlock: None,
            landlock_extra: ExtraAccess::default(),
            idle_timeout: None,
            workers: DEFAULT_WORKERS,
            preload: false,
            worker_timeout: DEFAULT_WORKER_TIMEOUT,
            worker_boot_timeout: DEFAULT_WORKER_BOOT_TIMEOUT,
            max_requests: None,
            worker_max_rss: None,
            control_url: None,
            control_token: None,
            state_path: None,
            config_file: None,
            cli: Overrides::default(),
        }
    }
}

/// One layer of settings (the config file's, or the command line's):
/// each field is `None`/empty when the layer does not set it. Fields are
/// private to `config`: a layer is only made by parsing, so it is always
/// valid.
///
/// For `tag`, `pidfile`, `cache_control` and `state_path` an empty value
/// is kept as `Some("")` and means "turn it off", so `--tag ""` can undo
/// the file; `Some(None)` does the same for `max_requests`,
/// `worker_max_rss` and `control_url`.
///
/// An app meets it only as [`Config::cli`]: the command line's layer,
/// kept so that [`reload`](super::reload) can apply it again.
///
/// ```
/// use catamount::config::Overrides;
/// use catamount::Config;
///
/// // A `Config` not made from a command line has an empty layer.
/// assert_eq!(Config::default().cli, Overrides::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Non-empty replaces every bind below it.
    pub(super) binds: Vec<BindSpec>,
    pub(super) dir: Option<PathBuf>,
    pub(super) threads: Option<(usize, usize)>,
    pub(super) environment: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) pidfile: Option<PathBuf>,
    pub(super) first_data_timeout: Option<Duration>,
    pub(super) body_timeout: Option<Duration>,
    pub(super) write_timeout: Option<Duration>,
    pub(super) persistent_timeout: Option<Duration>,
    pub(super) shutdown_timeout: Option<Duration>,
    pub(super) max_keep_alive: Option<u32>,
    pub(super) max_body: Option<u64>,
    pub(super) max_upgraded: Option<usize>,
    pub(super) log_requests: Option<bool>,
    pub(super) quiet: Option<bool>,
    pub(super) dir_listing: Option<bool>,
    pub(super) serve_dotfiles: Option<bool>,
    pub(super) cache_control: Option<String>,
    pub(super) activated: Option<ActivatedMode>,
    pub(super) fd_store: Option<bool>,
    pub(super) landlock: Option<bool>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) workers: Option<usize>,
    pub(super) preload: Option<bool>,
    pub(super) worker_timeout: Option<Duration>,
    pub(super) worker_boot_timeout: Option<Duration>,
    pub(super) max_requests: Option<Option<u64>>,
    pub(super) worker_max_rss: Option<Option<u64>>,
    pub(super) control_url: Option<Option<BindSpec>>,
    pub(super) control_token: Option<ControlToken>,
    pub(super) state_path: Option<PathBuf>,
}

/// What a layer says about the control app's token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ControlToken {
    /// Requests must carry this token.
    Token(String),
    /// `no_token: true`: no token is checked, on purpose.
    NoToken,
    /// The token is read from this file when the configuration loads
    /// (`control_token_file`), so it need not sit in the config file or
    /// the command line; systemd's `LoadCredential=` provides such files.
    File(PathBuf),
}

/// What the command line asked for: [`parse_args`](super::parse_args)'s
/// answer. ([`Server::from_args`](crate::Server::from_args) carries out
/// all four itself.)
///
/// ```
/// use catamount::config::{parse_args, Command};
///
/// match parse_args(vec!["--version".into()]) {
///     Ok(Command::Version) => println!("my-app {}", env!("CARGO_PKG_VERSION")),
///     Ok(Command::Help) => print!("{}", catamount::config::help()),
///     Ok(Command::Run(config) | Command::Check(config)) => println!("serving {:?}", config.dir),
///     Err(e) => e.exit(),
/// }
/// ```
#[derive(Debug)]
pub enum Command {
    /// Serve with this configuration.
    Run(Box<Config>),
    /// `--check`: this configuration loaded; check what else a start
    /// needs (certificates, the control socket's directory), serve nothing.
    Check(Box<Config>),
    /// Print [`help`](super::help) and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// A command-line or config-file error: one line, saying what was found
/// and what was expected. Config-file errors start with `FILE:LINE:`.
///
/// ```
/// use catamount::config::parse_args;
///
/// let err = parse_args(vec!["--threads".into(), "many".into()]).unwrap_err();
/// assert!(err.to_string().starts_with("--threads \"many\""), "{err}");
/// ```
#[derive(Debug)]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    /// Prints the error on stderr and exits with status 2.
    ///
    /// ```no_run
    /// use catamount::Server;
    ///
    /// // catamount: --threads "many"; expected ...   (exit status 2)
    /// let server = Server::from_args().unwrap_or_else(|e| e.exit());
    /// # let _ = server;
    /// ```
    pub fn exit(&self) -> ! {
        crate::log::error(&format!("catamount: {self}"));
        std::process::exit(2)
    }
}

impl Overrides {
    /// Writes every setting this layer has over `config`. A token file
    /// leaves no token here: [`super::load`] reads the file of the layer
    /// that wins.
    pub(super) fn apply(&self, config: &mut Config) {
        if !self.binds.is_empty() {
            config.binds = self.binds.clone();
        }
        if let Some(dir) = &self.dir {
            config.dir = dir.clone();
        }
        if let Some((min, max)) = self.threads {
            config.min_threads = min;
            config.max_threads = max;
        }
        if let Some(env) = &self.environment {
            config.environment = env.clone();
        }
        if let Some(tag) = &self.tag {
            config.tag = (!tag.is_empty()).then(|| tag.clone());
        }
        if let Some(pidfile) = &self.pidfile {
            config.pidfile = (!pidfile.as_os_str().is_empty()).then(|| pidfile.clone());
        }
        if let Some(cache_control) = &self.cache_control {
            config.cache_control = (!cache_control.is_empty()).then(|| cache_control.clone());
        }
        let set = |to: &mut Duration, from: Option<Duration>| {
            if let Some(d) = from {
                *to = d;
            }
        };
        set(&mut config.first_data_timeout, self.first_data_timeout);
        set(&mut config.body_timeout, self.body_timeout);
        set(&mut config.write_timeout, self.write_timeout);
        set(&mut config.persistent_timeout, self.persistent_timeout);
        set(&mut config.shutdown_timeout, self.shutdown_timeout);
        if let Some(n) = self.max_keep_alive {
            config.max_keep_alive = n;
        }
        if let Some(n) = self.max_body {
            config.max_body = n;
        }
        if let Some(n) = self.max_upgraded {
            config.max_upgraded = n;
        }
        let set = |to: &mut bool, from: Option<bool>| {
            if let Some(b) = from {
                *to = b;
            }
        };
        set(&mut config.log_requests, self.log_requests);
        set(&mut config.quiet, self.quiet);
        set(&mut config.dir_listing, self.dir_listing);
        set(&mut config.serve_dotfiles, self.serve_dotfiles);
        set(&mut config.fd_store, self.fd_store);
        if let Some(b) = self.landlock {
            config.landlock = Some(b);
        }
        if let Some(d) = self.idle_timeout {
            config.idle_timeout = Some(d);
        }
        set(&mut config.preload, self.preload);

        if let Some(mode) = self.activated {
            config.activated = mode;
        }
        if let Some(n) = self.workers {
            config.workers = n;
        }
        if let Some(d) = self.worker_timeout {
            config.worker_timeout = d;
        }
        if let Some(d) = self.worker_boot_timeout {
            config.worker_boot_timeout = d;
        }
        if let Some(limit) = self.max_requests {
            config.max_requests = limit;
        }
        if let Some(limit) = self.worker_max_rss {
            config.worker_max_rss = limit;
        }
        if let Some(url) = &self.control_url {
            config.control_url = url.clone();
        }
        match &self.control_token {
            Some(ControlToken::Token(token)) => config.control_token = Some(token.clone()),
            Some(ControlToken::NoToken | ControlToken::File(_)) => config.control_token = None,
            None => {}
        }
        if let Some(path) = &self.state_path {
            config.state_path = (!path.as_os_str().is_empty()).then(|| path.clone());
        }
    }
}

/// [`DEFAULT_BIND`], parsed.
pub(super) fn default_bind() -> BindSpec {
    BindSpec::parse(DEFAULT_BIND).expect("DEFAULT_BIND is a valid bind URI (tested)")
}
