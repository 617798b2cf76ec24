//! The command line and the config file, turned into one validated
//! [`Config`].
//!
//! Settings come in three layers, a later layer winning over an earlier one:
//!
//! 1. the built-in defaults (the `DEFAULT_*` constants below);
//! 2. the config file named by `-C FILE`, a small subset of Puma's DSL
//!    (the directives are listed in [`help`]);
//! 3. the command line.
//!
//! Two settings do not simply "win": binds given on the command line
//! *replace* every bind of the file (Puma's behaviour, so `-b` can move a
//! server without editing its file), and when no layer gives a bind the
//! server listens on [`DEFAULT_BIND`].
//!
//! # Paths
//!
//! A relative `-C FILE`, and a relative `directory` or `pidfile` *inside*
//! the file, are relative to the current working directory, not to the
//! file (Puma's behaviour). They are kept relative: catamount does not
//! change its working directory (unlike Puma, `directory` only names what
//! is served), so [`reload`] resolves them the same way as startup did.
//! Code that ever calls `chdir` must make these paths absolute first.
//!
//! # Reload
//!
//! [`Config::cli`] keeps what the command line set, as an [`Overrides`]
//! layer; [`Config::config_file`] keeps the file. [`reload`] re-reads that
//! file and applies the same command-line layer on top, so a reload sees
//! the new file but never loses a flag the operator gave. It returns the
//! whole new `Config`; which fields can change in a running server (binds,
//! say) is the server's decision.
//!
//! # Errors
//!
//! Every error is one line saying what was found and what was expected:
//! options are named as `--threads "abc"; expected ...`, file errors start
//! with `FILE:LINE:`. [`ConfigError::exit`] prints it and exits with
//! status 2, before anything is bound. Options and directives that a
//! later release may implement (`fork_worker`, ...) are refused with "not
//! supported yet", and Puma's directives that catamount spells another
//! way (`ssl_bind`) or has no equivalent for (Ruby hooks) with what to
//! do: never silently ignored.
//!
//! # Checks across settings
//!
//! After the layers are merged, `load` checks what no single value can:
//! DIR is a directory this process can read, and not `/` unless a layer
//! named it (the default is the working directory, `/` under systemd), and
//! a control URL has a token (or the file said `no_token: true`) and is
//! not also a bind. Each message names the `FILE:LINE` when the setting
//! came from the file. `--check` returns [`Command::Check`] instead of
//! [`Command::Run`]: the server then checks what else a start needs
//! (certificates, the control socket's directory) and exits.
//!
//! # Why a pre-pass in front of pico-args
//!
//! pico-args looks options up by searching the whole argument list, so on
//! its own it would reorder `-b A --bind B` (all `-b` first), take a value
//! spelled like an option for that option, and leave unknown options
//! mixed with free arguments. `CommandLine::split` walks the arguments
//! once, left to right, knowing which options take a value: it refuses
//! unknown and unsupported options, splits `--name=VALUE` and `-tVALUE`,
//! rewrites short names to long ones, honours `--`, and separates the free
//! arguments. pico-args then extracts typed values from that canonical
//! list, where every value follows its option and no value is spelled
//! like an option, so its search is exact.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::listeners::BindSpec;

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
/// Most worker processes accepted. A typo guard like
/// [`MAX_THREADS_LIMIT`]: each worker is a whole process.
pub const MAX_WORKERS: usize = 256;
/// Largest `worker_max_rss` accepted, in MiB (16 TiB). A typo guard that
/// also keeps the limit in bytes far inside a `u64`.
pub const MAX_WORKER_MAX_RSS_MIB: u64 = 1 << 24;

/// Whether catamount listens on the sockets systemd passes
/// (`--bind-to-activated-sockets`, Puma's `bind_to_activated_sockets`).
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

/// Everything catamount needs to run, validated.
///
/// [`Config::default`] is the built-in defaults (serving the current
/// directory on [`DEFAULT_BIND`]); embedders may start from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listeners to bind, in order; never empty after parsing.
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
    /// What the command line set, kept so that [`reload`] can apply it
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
            log_requests: false,
            quiet: false,
            dir_listing: false,
            serve_dotfiles: false,
            cache_control: None,
            activated: ActivatedMode::Off,
            fd_store: false,
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
/// private: a layer is only made by parsing, so it is always valid.
///
/// For `tag`, `pidfile`, `cache_control` and `state_path` an empty value
/// is kept as `Some("")` and means "turn it off", so `--tag ""` can undo
/// the file; `Some(None)` does the same for `max_requests`,
/// `worker_max_rss` and `control_url`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Non-empty replaces every bind below it.
    binds: Vec<BindSpec>,
    dir: Option<PathBuf>,
    threads: Option<(usize, usize)>,
    environment: Option<String>,
    tag: Option<String>,
    pidfile: Option<PathBuf>,
    first_data_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    persistent_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    max_keep_alive: Option<u32>,
    max_body: Option<u64>,
    log_requests: Option<bool>,
    quiet: Option<bool>,
    dir_listing: Option<bool>,
    serve_dotfiles: Option<bool>,
    cache_control: Option<String>,
    activated: Option<ActivatedMode>,
    fd_store: Option<bool>,
    workers: Option<usize>,
    preload: Option<bool>,
    worker_timeout: Option<Duration>,
    worker_boot_timeout: Option<Duration>,
    max_requests: Option<Option<u64>>,
    worker_max_rss: Option<Option<u64>>,
    control_url: Option<Option<BindSpec>>,
    control_token: Option<ControlToken>,
    state_path: Option<PathBuf>,
}

/// What a layer says about the control app's token.
#[derive(Debug, Clone, PartialEq)]
enum ControlToken {
    /// Requests must carry this token.
    Token(String),
    /// `no_token: true`: no token is checked, on purpose.
    NoToken,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this configuration.
    Run(Box<Config>),
    /// `--check`: this configuration loaded; check what else a start
    /// needs (certificates, the control socket's directory), serve nothing.
    Check(Box<Config>),
    /// Print [`help`] and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// A command-line or config-file error: one line, saying what was found
/// and what was expected.
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
    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    /// Prints the error on stderr and exits with status 2.
    pub fn exit(&self) -> ! {
        crate::log::error(&format!("catamount: {self}"));
        std::process::exit(2)
    }
}

/// Parses `args` (without the program name), reads the config file it
/// names, and checks the result.
///
/// `-h` or `-V` anywhere among the options wins over everything but an
/// unknown or refused option, so `catamount -t oops --help` still prints
/// the help.
pub fn parse_args(args: Vec<OsString>) -> Result<Command, ConfigError> {
    let line = CommandLine::split(args)?;
    let mut args = pico_args::Arguments::from_vec(line.options);
    if args.contains("--help") {
        return Ok(Command::Help);
    }
    if args.contains("--version") {
        return Ok(Command::Version);
    }

    let mut cli = Overrides {
        binds: args
            .values_from_fn("--bind", BindSpec::parse)
            .map_err(|e| option_error("--bind", e))?,
        ..Overrides::default()
    };
    if let Some((a, _)) = first_repeat(&cli.binds) {
        return Err(ConfigError::new(format!(
            "--bind {:?} is given twice; expected each listener once",
            a.to_string()
        )));
    }
    cli.threads = last(&mut args, "--threads", |s| parse_threads(s).ok_or(INVALID))?;
    cli.environment = last(&mut args, "--environment", |s| {
        parse_name(s).map(str::to_string).ok_or(INVALID)
    })?;
    cli.tag = last(&mut args, "--tag", |s| {
        parse_optional_name(s).map(str::to_string).ok_or(INVALID)
    })?;
    cli.first_data_timeout = last(&mut args, "--first-data-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.body_timeout = last(&mut args, "--body-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.write_timeout = last(&mut args, "--write-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.persistent_timeout = last(&mut args, "--persistent-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.shutdown_timeout = last(&mut args, "--shutdown-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.max_keep_alive = last(&mut args, "--max-keep-alive", |s| {
        parse_keep_alive(s).ok_or(INVALID)
    })?;
    cli.max_body = last(&mut args, "--max-body", |s| s.parse().map_err(|_| INVALID))?;
    cli.cache_control = last(&mut args, "--cache-control", |s| {
        parse_header_value(s).map(str::to_string).ok_or(INVALID)
    })?;
    cli.pidfile = last_path(&mut args, "--pidfile")?;
    let config_file = last_path(&mut args, "--config")?;
    if config_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err(ConfigError::new(format!(
            "--config \"\"; expected {}",
            option("--config").expect_text()
        )));
    }
    cli.log_requests = flag(&mut args, "--log-requests");
    cli.quiet = flag(&mut args, "--quiet");
    cli.dir_listing = flag(&mut args, "--dir-listing");
    cli.serve_dotfiles = flag(&mut args, "--serve-dotfiles");
    let check = flag(&mut args, "--check").is_some();

    // systemd. A bare --bind-to-activated-sockets arrives as "true".
    cli.activated = last(&mut args, "--bind-to-activated-sockets", |s| {
        parse_activated(s).ok_or(INVALID)
    })?;
    cli.fd_store = flag(&mut args, "--fd-store");

    // Cluster. --worker-shutdown-timeout arrives as --shutdown-timeout.
    cli.workers = last(&mut args, "--workers", |s| parse_workers(s).ok_or(INVALID))?;
    cli.preload = flag(&mut args, "--preload");
    cli.worker_timeout = last(&mut args, "--worker-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.worker_boot_timeout = last(&mut args, "--worker-boot-timeout", |s| {
        parse_secs(s).ok_or(INVALID)
    })?;
    cli.max_requests = last(&mut args, "--max-requests", |s| {
        optional(s, |s| parse_limit(s, u64::MAX)).ok_or(INVALID)
    })?;
    cli.worker_max_rss = last(&mut args, "--worker-max-rss", |s| {
        optional(s, |s| parse_limit(s, MAX_WORKER_MAX_RSS_MIB)).ok_or(INVALID)
    })?;
    cli.control_url = last(&mut args, "--control-url", |s| {
        if s.is_empty() {
            Ok(None)
        } else {
            parse_control_url(s).map(Some)
        }
    })?;
    cli.control_token = last(&mut args, "--control-token", |s| {
        parse_token(s)
            .map(|t| ControlToken::Token(t.to_string()))
            .ok_or(INVALID)
    })?;
    cli.state_path = last_path(&mut args, "--state")?;

    let leftover = args.finish();
    if let Some(arg) = leftover.first() {
        // CommandLine::split only emits options extracted above.
        return Err(ConfigError::new(format!(
            "internal error: option {:?} was not handled; please report it",
            arg.to_string_lossy()
        )));
    }

    let mut free = line.free.into_iter();
    cli.dir = free.next().map(PathBuf::from);
    // `--bind-to-activated-sockets only` leaves `only` as DIR: that
    // option takes a value only after "=" (alone it means true).
    if let Some(word) = cli.dir.as_deref().and_then(Path::to_str) {
        if ["only", "true", "false"].contains(&word) && !Path::new(word).is_dir() {
            return Err(ConfigError::new(format!(
                "DIR {word:?}: no such directory to serve; to set --bind-to-activated-sockets, \
                 write --bind-to-activated-sockets={word} (its value follows \"=\"; \
                 the option alone means true)"
            )));
        }
    }
    if let Some(extra) = free.next() {
        return Err(ConfigError::new(format!(
            "unexpected argument {:?}; expected at most one DIR to serve \
             (options start with -; run catamount --help)",
            extra.to_string_lossy()
        )));
    }

    let config = Box::new(load(config_file, cli)?);
    Ok(if check {
        Command::Check(config)
    } else {
        Command::Run(config)
    })
}

/// Re-reads `config.config_file` (when there is one) and applies the same
/// command-line settings (`config.cli`) on top: what the operator typed
/// still wins, what the file says is new. The returned `Config` is fully
/// checked again (binds, DIR); on error the caller keeps the old one.
pub fn reload(config: &Config) -> Result<Config, ConfigError> {
    load(config.config_file.clone(), config.cli.clone())
}

/// Reads a config file with no command line on top: defaults < file.
/// For embedders and tools that want catamount's file format.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load(Some(path.to_path_buf()), Overrides::default())
}

/// The `--help` text.
pub fn help() -> &'static str {
    HELP
}

const HELP: &str = r##"catamount - a small, auditable HTTP/1.1 server

USAGE
    catamount [OPTIONS] [DIR]
    catamount ctl [CTL OPTIONS] COMMAND
    catamount -h | --help
    catamount -V | --version

    Serves the files under DIR (default: the current directory) over
    HTTP/1.1 until stopped. Settings come from the built-in defaults, then
    from the config file given with -C, then from the options below; a
    later source wins. Long options also take the form --name=VALUE, and
    "--" ends the options.

OPTIONS
    -b, --bind URI
        Listen on URI. Repeat for more listeners, which are bound in the
        order given. Binds given here replace every bind of the config
        file.                              [default: tcp://0.0.0.0:9292]
            tcp://HOST:PORT[?backlog=N]
                HOST is an IPv4 address, [IPv6 address], localhost
                (every loopback address) or a name from /etc/hosts.
            unix:///ABSOLUTE/PATH[?umask=0117&mode=0660&backlog=N]
            ssl://HOST:PORT?cert=PATH&key=PATH[&OPTION=VALUE...]
                HTTPS, with HOST as for tcp://; see TLS.
            fd://NAME or fd://N[?cert=PATH&key=PATH...]
                A socket systemd passed, by its FileDescriptorName= or
                its descriptor number (the first is 3); see SYSTEMD.
                With cert= and key=, HTTPS on it; see TLS.
        The listen backlog defaults to 1024.

    -t, --threads MIN:MAX
        Request threads: MIN kept ready, up to MAX under load. A single N
        means N:N. MIN <= MAX, 1 <= MAX <= 4096.         [default: 0:5]

    -C, --config FILE
        Read settings from FILE (see CONFIG FILE). A relative FILE is
        relative to the current directory.             [default: none]

    -e, --environment NAME
        Environment name, shown in the log.      [default: production]

    --tag NAME
        Name shown in the process title and the log.   [default: none]

    --pidfile FILE
        Write the process id to FILE.                  [default: none]

    --first-data-timeout SECS
        Seconds a new connection has to send its request head.
                                                         [default: 30]

    --body-timeout SECS
        Seconds a request body has to arrive in full once its head has
        (a deadline, not a pause between reads): 408 after it.
                                                         [default: 60]

    --write-timeout SECS
        Seconds a client may take none of a response before it is
        closed (nginx's send_timeout).                   [default: 30]

    --persistent-timeout SECS
        Seconds an idle keep-alive connection is kept open.
                                                         [default: 65]

    --shutdown-timeout SECS, --worker-shutdown-timeout SECS
        Seconds a graceful stop waits for requests in flight. Single
        mode and cluster mode share this setting: with workers, it is
        how long each worker's graceful stop may take. The two names are
        one option.                                      [default: 30]

    --max-keep-alive N
        Requests served on one connection before it is closed; N >= 1.
                                                        [default: 999]

    --max-body BYTES
        Largest request body accepted; a larger one gets 413 Payload Too
        Large.                                     [default: 10485760]

    --log-requests
        Log one line per request.                       [default: off]

    -q, --quiet
        Log only warnings and errors.                   [default: off]

    --dir-listing
        List a directory's files when it has no index.html.
                                                        [default: off]

    --serve-dotfiles
        Serve files and directories whose name starts with ".".
                                                        [default: off]

    --cache-control VALUE
        Send "Cache-Control: VALUE" with every file (printable ASCII).
                                                       [default: none]

    --check
        Check the configuration as a start would, then exit without
        serving or binding anything: the options, the config file, DIR,
        every certificate and key, and the directories of the control
        socket, the state file and the pidfile. Exit status 0 (with one
        line saying so), 2 for a bad command line, config file or DIR,
        1 for anything else. A hot restart runs the new binary with
        --check first.

    -V, --version
        Print the version and exit.

    -h, --help
        Print this help and exit.

    SECS is a number of seconds above 0 and at most 86400, and may have a
    fraction, as in 0.5. An empty value given to --tag, --pidfile,
    --cache-control, --state, --control-url, --max-requests or
    --worker-max-rss turns that setting off, which undoes the config
    file.

    Not supported yet, and refused rather than ignored: --fork-worker.

TLS
    An ssl:// bind, or an fd:// bind with cert= and key=, serves HTTPS
    (rustls: TLS 1.2 and 1.3, ALPN http/1.1). Its options follow "?",
    joined by "&"; in a value, write "&" as %26, "%" as %25.
        cert=PATH       PEM file: the server certificate, then its
                        intermediates. Required.
        key=PATH        PEM file: the certificate's private key (PKCS#8,
                        PKCS#1 or SEC1), unencrypted. Required.
        ca=PATH         PEM file: the CAs that client certificates must
                        chain to. Needed by verify_mode=peer and
                        force_peer.                    [default: none]
        verify_mode=MODE
                        none: ask for no client certificate; peer: ask
                        for one and check it if sent; force_peer:
                        require one.                   [default: none]
        min_version=VERSION
                        TLSv1.2 or TLSv1.3; older versions are never
                        offered.                    [default: TLSv1.2]
        backlog=N       As for tcp:// (ssl:// binds).
    The files are read at start-up and again by every restart, which is
    refused (the server keeps running) if they no longer load. Plain
    HTTP sent to an HTTPS port is answered 400 in plain text.

SYSTEMD
    --bind-to-activated-sockets[=true|false|only]
        Listen on the sockets systemd passes (socket activation). With
        =true (or the option alone) catamount also listens on every
        passed socket, besides its binds; with =only it listens on the
        passed sockets alone, and ignores the configured binds when any
        socket was passed. Without it, a passed socket is used only when
        a bind names it (fd://) or has its address.     [default: false]

    --fd-store
        Hand the sockets catamount bound itself to systemd's fd store,
        so that "systemctl restart" refuses no connection: the next
        start gets them back. Needs FileDescriptorStoreMax= in the
        service unit.                                   [default: off]

CLUSTER
    With --workers N above 0, a main process runs N worker processes
    that share the listeners, and replaces a worker that exits, hangs
    or outgrows the limits below. The control app, when asked for, lets
    a tool stop or restart the server through its own socket.

    -w, --workers N
        Worker processes; 0 is single mode. 0 <= N <= 256.
                                                          [default: 0]

    --preload
        Load the app in the main process before the workers are forked,
        not in each worker (Puma's preload_app!).       [default: off]

    --worker-timeout SECS
        A worker that does not check in for SECS is replaced.
                                                         [default: 60]

    --worker-boot-timeout SECS
        Seconds a new worker has to boot before it is replaced.
                                                         [default: 60]

    --max-requests N
        Replace a worker after it has served about N requests; N >= 1.
                                                       [default: none]

    --worker-max-rss MIB
        Replace a worker whose resident memory exceeds MIB mebibytes;
        1 <= MIB <= 16777216.                          [default: none]

    --control-url URI
        Serve the control app on URI, a socket of its own:
            unix:///ABSOLUTE/PATH[?umask=0177&mode=0600]
            tcp://HOST:PORT, with HOST 127.0.0.1, [::1] or localhost
        Other hosts are refused, since the control app can stop the
        server. It needs a token, unless the config file says
        no_token: true.                                [default: none]

    --control-token TOKEN
        Token the control app requires: visible ASCII, no spaces. Other
        users can see it in ps; prefer control_token in a file that
        only the service can read.                     [default: none]

    -S, --state FILE
        Write the server's state (pid, control URL and token) to FILE.
                                                       [default: none]

CONTROL CLIENT
    catamount ctl [--control-url URL] [--control-token TOKEN | -S FILE]
                  COMMAND
        Sends COMMAND to a running server's control app and prints its
        JSON answer. -S reads the URL and token from the server's
        --state file; --control-url and --control-token win over it.
        COMMAND is one of:
            stats           Puma's /stats: threads, backlog and request
                            counts, and each worker's in cluster mode
            restart         hot restart (as SIGUSR2)
            phased-restart  replace the workers one at a time (as
                            SIGUSR1; cluster mode only)
            stop            graceful stop (as SIGTERM)
            halt            exit at once, without waiting for requests
                            in flight
        It exits 0 when the command was accepted, 1 when it failed (no
        server, a wrong token, an HTTP error) and 2 on bad usage; see
        catamount ctl --help.

CONFIG FILE
    A subset of Puma's config DSL: one directive per line, literal values
    only, "#" starts a comment. Strings are in "double" or 'single'
    quotes, with \" (or \') and \\ as escapes. A later line wins, except
    that bind and port add a listener each. Relative paths are relative
    to the current directory, not to the file. Booleans are true or
    false; a boolean directive alone means true.

        bind "tcp://127.0.0.1:9292"     # repeatable; as --bind
        bind "ssl://0.0.0.0:443?cert=/etc/app/cert.pem&key=/etc/app/key.pem"
        port 9292                       # bind "tcp://0.0.0.0:9292"
        port 9292, "127.0.0.1"          # bind "tcp://127.0.0.1:9292"
        threads 0, 16                   # as --threads 0:16
        directory "/srv/www"            # DIR; a DIR argument wins
        environment "production"
        tag "app"
        pidfile "/run/app.pid"
        first_data_timeout 30
        body_timeout 60
        write_timeout 30
        persistent_timeout 65
        shutdown_timeout 30
        max_keep_alive 999
        max_body 10_485_760
        log_requests true
        quiet false
        dir_listing true
        serve_dotfiles false
        cache_control "public, max-age=60"

        # systemd
        bind_to_activated_sockets true  # or false, or "only"
        fd_store true

        # cluster
        workers 4                       # 0 is single mode
        preload_app!                    # or preload_app! false
        worker_timeout 60
        worker_boot_timeout 60
        worker_shutdown_timeout 30      # the same as shutdown_timeout
        max_requests 10_000
        worker_max_rss 512              # MiB
        activate_control_app "unix:///run/ctl.sock", { auth_token: "s3cr3t" }
        activate_control_app "unix:///run/ctl.sock", { no_token: true }
        control_url "unix:///run/ctl.sock"
        control_token "s3cr3t"
        state_path "/run/app.state"

    activate_control_app "URI" alone sets the URL only; its token then
    comes from control_token or --control-token. Errors never show a
    token.

    Not supported yet, and refused rather than ignored: fork_worker,
    worker_check_interval, worker_culling_strategy, state_permission.
    Puma's ssl_bind is refused too: write an ssl:// bind instead, as in
    bind "ssl://0.0.0.0:443?cert=PATH&key=PATH" (see TLS). Puma's Ruby
    hooks (on_worker_boot, before_fork, ...) have no equivalent in
    catamount and are refused.

SIGNALS
    TERM, INT   Graceful stop: stop accepting, let requests in flight
                finish (up to --shutdown-timeout), exit 0. A second
                TERM or INT exits at once, with 1.
    USR2        Hot restart: re-read the config file and certificates,
                let requests in flight finish, exec in place (same pid,
                listeners kept). A configuration that would not load is
                refused, and the server goes on with the old one.
    HUP         Reload: a hot restart in single mode; in cluster mode a
                phased restart with the config file re-read (a hot
                restart with --preload).
    USR1        Phased restart (cluster mode): replace the workers one at
                a time, each new one booted before the next old one
                stops. Logged and ignored in single mode.
    TTIN, TTOU  One worker more, one fewer (cluster mode; never below
                1). Logged and ignored in single mode.

EXIT STATUS
    0   A graceful stop (TERM, INT, ctl stop) or ctl halt; --help or
        --version; --check found nothing wrong.
    1   The server could not start after the configuration was read (a
        bind, a socket systemd passed, a certificate, the pidfile, no
        worker booted), a second TERM or INT cut a stop short, or a hot
        restart could not exec; with --check, a certificate, key or
        directory a start needs. The message says which, on stderr.
    2   The command line or the config file is invalid (DIR included),
        found before anything is bound: the one-line message names the
        option, or FILE:LINE, what was found and what was expected.
        The shipped units do not restart after it.
"##;

// ---------------------------------------------------------------------
// Building a Config from the layers.
// ---------------------------------------------------------------------

/// defaults < file < `cli`, then the checks that need the merged result.
fn load(config_file: Option<PathBuf>, cli: Overrides) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut dir_line = None;
    let mut control_line = None;
    let mut file_token = None;
    if let Some(path) = &config_file {
        let text = read_config_file(path)?;
        let file = parse_file(path, &text)?;
        file.layer.apply(&mut config);
        dir_line = file.directory_line;
        control_line = file.control_line;
        file_token = file.layer.control_token;
    }
    cli.apply(&mut config);
    if cli.dir.is_some() {
        dir_line = None;
    }
    if cli.control_url.is_some() {
        control_line = None;
    }

    let origin = match (&config_file, dir_line) {
        (Some(path), Some(line)) => DirOrigin::File(path, line),
        _ if cli.dir.is_some() => DirOrigin::CommandLine,
        _ => DirOrigin::Default,
    };
    check_dir(&config.dir, origin)?;

    let no_token =
        cli.control_token.as_ref().or(file_token.as_ref()) == Some(&ControlToken::NoToken);
    check_control(&config, no_token).map_err(|message| {
        ConfigError::new(match (&config_file, control_line) {
            (Some(path), Some(line)) => format!("{}:{line}: {message}", path.display()),
            _ => message,
        })
    })?;

    config.config_file = config_file;
    config.cli = cli;
    Ok(config)
}

impl Overrides {
    /// Writes every setting this layer has over `config`.
    fn apply(&self, config: &mut Config) {
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
            Some(ControlToken::NoToken) => config.control_token = None,
            None => {}
        }
        if let Some(path) = &self.state_path {
            config.state_path = (!path.as_os_str().is_empty()).then(|| path.clone());
        }
    }
}

/// The control app's checks on the merged settings: a token unless
/// `no_token` was asked for, and a listener of its own. The error is the
/// message, without `FILE:LINE: `.
fn check_control(config: &Config, no_token: bool) -> Result<(), String> {
    let Some(url) = &config.control_url else {
        return Ok(());
    };
    let url = url.to_string();
    if config.control_token.is_none() && !no_token {
        return Err(format!(
            "control URL {url:?} has no token; expected a token (--control-token TOKEN, \
             control_token \"TOKEN\", or activate_control_app \"URI\", {{ auth_token: \"TOKEN\" }}), \
             or {{ no_token: true }} to let anyone who can connect control the server"
        ));
    }
    if config.binds.iter().any(|b| b.to_string() == url) {
        return Err(format!(
            "control URL {url:?} is also a bind; expected a listener of its own for the \
             control app"
        ));
    }
    Ok(())
}

/// Where the served directory was named, for the error message.
#[derive(Clone, Copy)]
enum DirOrigin<'a> {
    /// The DIR argument.
    CommandLine,
    /// A `directory` line of the config file.
    File(&'a Path, usize),
    /// Neither: [`DEFAULT_DIR`], the current directory.
    Default,
}

/// DIR must be a directory this process can list and search (the static
/// app opens it once at start; without read and search permission every
/// request would be 404), and must not be `/` unless named on purpose
/// (issue 12: systemd starts services in `/`, so a config without
/// `directory` would serve the whole file system, config files with
/// control tokens included). All of these are exit status 2: the fix is
/// in the configuration or the file system, and a restart cannot help,
/// so the shipped units' `RestartPreventExitStatus=2` does not retry it.
fn check_dir(dir: &Path, origin: DirOrigin<'_>) -> Result<(), ConfigError> {
    let problem = match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => match crate::sys::may_read_dir(dir) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "cannot be read by this process ({e}), which needs to list and search it"
            )),
        },
        Ok(_) => Some("is not a directory".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".to_string()),
        Err(e) => Some(format!("cannot be opened: {e}")),
    };
    if let Some(problem) = problem {
        return Err(ConfigError::new(match origin {
            DirOrigin::CommandLine | DirOrigin::Default => format!(
                "DIR {dir:?} {problem}; expected a directory to serve, as in catamount /srv/www"
            ),
            DirOrigin::File(path, line) => format!(
                "{}:{line}: directory {dir:?} {problem}; expected a directory to serve",
                path.display()
            ),
        }));
    }
    if matches!(origin, DirOrigin::Default)
        && fs::canonicalize(dir).is_ok_and(|d| d == Path::new("/"))
    {
        return Err(ConfigError::new(
            "no directory to serve was given, and the default, the current directory, is / \
             (where systemd starts services): catamount would serve the whole file system; \
             expected DIR, as in catamount /srv/www, or directory \"/srv/www\" in the config \
             file (name / itself to serve it on purpose)",
        ));
    }
    Ok(())
}

fn default_bind() -> BindSpec {
    BindSpec::parse(DEFAULT_BIND).expect("DEFAULT_BIND is a valid bind URI (tested below)")
}

/// The first bind that names the same listener as an earlier one (same
/// text once normalised, whatever the backlog), with that earlier one.
fn first_repeat(binds: &[BindSpec]) -> Option<(&BindSpec, usize)> {
    binds.iter().enumerate().find_map(|(i, b)| {
        let name = b.to_string();
        binds[..i]
            .iter()
            .position(|a| a.to_string() == name)
            .map(|j| (b, j))
    })
}

// ---------------------------------------------------------------------
// The command line.
// ---------------------------------------------------------------------

/// How one command-line option is spelled and what it takes.
struct CliOption {
    /// `--name`, the canonical spelling.
    long: &'static str,
    /// `-x`, or "" when there is none.
    short: &'static str,
    kind: OptionKind,
}

enum OptionKind {
    Flag,
    /// Takes one value; `expect` completes "expected ..." in errors.
    Value {
        expect: &'static str,
    },
    /// Alone means `--name=true`; a value can only be attached with `=`,
    /// so the next argument is never taken for it.
    FlagOrValue {
        expect: &'static str,
    },
    /// Another name for the option with this long name, which reads its
    /// value: the pre-pass rewrites it, so the last of either wins.
    Alias(&'static str),
    /// Refused: a later issue implements it; the text says why.
    NotYet(&'static str),
    /// Refused: another tool's option; the text says what to use.
    Instead(&'static str),
}

const fn flag_option(long: &'static str, short: &'static str) -> CliOption {
    CliOption {
        long,
        short,
        kind: OptionKind::Flag,
    }
}

const fn value_option(long: &'static str, short: &'static str, expect: &'static str) -> CliOption {
    CliOption {
        long,
        short,
        kind: OptionKind::Value { expect },
    }
}

const fn refused(long: &'static str, short: &'static str, kind: OptionKind) -> CliOption {
    CliOption { long, short, kind }
}

const SECS_EXPECT: &str = "a number of seconds above 0 and at most 86400, as in 30 or 0.5";
const NO_REFORK: &str = "workers are forked from the main process only";
const TOKEN_EXPECT: &str = "non-empty token of visible ASCII (no spaces)";
/// Stands for a value left out of a message because it may be a token.
const NOT_SHOWN: &str = "(value not shown, as it may be a token)";

/// Every option catamount knows, including the ones it refuses.
const OPTIONS: &[CliOption] = &[
    value_option(
        "--bind",
        "-b",
        "a bind URI (tcp://, unix://, ssl:// or fd://), as in --bind tcp://0.0.0.0:9292 \
         or --bind unix:///run/app.sock",
    ),
    value_option(
        "--threads",
        "-t",
        "MIN:MAX or N, with MIN <= MAX and 1 <= MAX <= 4096, as in --threads 0:16",
    ),
    value_option(
        "--config",
        "-C",
        "a config file, as in --config /etc/catamount.rb",
    ),
    value_option(
        "--environment",
        "-e",
        "a non-empty name without control characters, as in --environment production",
    ),
    value_option(
        "--tag",
        "",
        "a name without control characters, as in --tag app",
    ),
    value_option("--pidfile", "", "a file path, as in --pidfile /run/app.pid"),
    value_option("--first-data-timeout", "", SECS_EXPECT),
    value_option("--body-timeout", "", SECS_EXPECT),
    value_option("--write-timeout", "", SECS_EXPECT),
    value_option("--persistent-timeout", "", SECS_EXPECT),
    value_option("--shutdown-timeout", "", SECS_EXPECT),
    value_option(
        "--max-keep-alive",
        "",
        "a whole number from 1 to 4294967295, as in --max-keep-alive 999",
    ),
    value_option(
        "--max-body",
        "",
        "a whole number of bytes, as in --max-body 10485760",
    ),
    value_option(
        "--cache-control",
        "",
        "printable ASCII, as in --cache-control \"public, max-age=60\"",
    ),
    flag_option("--log-requests", ""),
    flag_option("--quiet", "-q"),
    flag_option("--dir-listing", ""),
    flag_option("--serve-dotfiles", ""),
    flag_option("--check", ""),
    flag_option("--version", "-V"),
    flag_option("--help", "-h"),
    CliOption {
        long: "--bind-to-activated-sockets",
        short: "",
        kind: OptionKind::FlagOrValue {
            expect: "true, false or only, as in --bind-to-activated-sockets=only \
                     (the option alone means true)",
        },
    },
    flag_option("--fd-store", ""),
    value_option(
        "--workers",
        "-w",
        "a whole number from 0 to 256 (0 is single mode), as in --workers 4",
    ),
    flag_option("--preload", ""),
    value_option("--worker-timeout", "", SECS_EXPECT),
    value_option("--worker-boot-timeout", "", SECS_EXPECT),
    CliOption {
        long: "--worker-shutdown-timeout",
        short: "",
        kind: OptionKind::Alias("--shutdown-timeout"),
    },
    value_option(
        "--max-requests",
        "",
        "a whole number from 1 to 18446744073709551615, or \"\" for no limit, \
         as in --max-requests 10000",
    ),
    value_option(
        "--worker-max-rss",
        "",
        "a whole number of MiB from 1 to 16777216, or \"\" for no limit, \
         as in --worker-max-rss 512",
    ),
    value_option(
        "--control-url",
        "",
        "unix:///PATH or tcp://HOST:PORT on a loopback host, as in \
         --control-url unix:///run/app-control.sock",
    ),
    value_option(
        "--control-token",
        "",
        "a non-empty token of visible ASCII (no spaces), as in --control-token s3cr3t",
    ),
    value_option("--state", "-S", "a file path, as in --state /run/app.state"),
    refused("--fork-worker", "", OptionKind::NotYet(NO_REFORK)),
    refused(
        "--port",
        "-p",
        OptionKind::Instead("use --bind tcp://0.0.0.0:PORT"),
    ),
    refused(
        "--dir",
        "",
        OptionKind::Instead("give the directory as the last argument, as in catamount /srv/www"),
    ),
    refused(
        "--daemon",
        "-d",
        OptionKind::Instead("catamount stays in the foreground; let systemd supervise it"),
    ),
];

/// The error payload of value parsers handed to pico-args; the message
/// shown comes from the option's `expect` text instead.
const INVALID: &str = "invalid value";

impl CliOption {
    fn expect_text(&self) -> &'static str {
        match self.kind {
            OptionKind::Value { expect } | OptionKind::FlagOrValue { expect } => expect,
            OptionKind::Alias(long) => option(long).expect_text(),
            _ => "no value",
        }
    }
}

/// The table entry for a canonical long name used in this file.
fn option(long: &str) -> &'static CliOption {
    OPTIONS
        .iter()
        .find(|o| o.long == long)
        .expect("every long name used in config.rs is in OPTIONS (tested below)")
}

/// The command line after the pre-pass (see the module doc).
struct CommandLine {
    /// `--long` names, each option taking a value followed by it.
    options: Vec<OsString>,
    /// Free arguments, in order.
    free: Vec<OsString>,
}

impl CommandLine {
    fn split(args: Vec<OsString>) -> Result<CommandLine, ConfigError> {
        let mut line = CommandLine {
            options: Vec::new(),
            free: Vec::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let bytes = arg.as_bytes();
            if bytes == b"--" {
                line.free.extend(args);
                break;
            }
            if !bytes.starts_with(b"-") || bytes == b"-" {
                line.free.push(arg);
                continue;
            }
            // `--name=VALUE`, `-xVALUE`, or a bare name.
            let (name, attached) = if bytes.starts_with(b"--") {
                match bytes.iter().position(|&b| b == b'=') {
                    Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                    None => (bytes, None),
                }
            } else if bytes.len() > 2 && bytes[1].is_ascii() {
                (&bytes[..2], Some(&bytes[2..]))
            } else {
                (bytes, None)
            };
            let typed = String::from_utf8_lossy(name);
            let spec = OPTIONS
                .iter()
                .find(|o| {
                    o.long.as_bytes() == name || (!o.short.is_empty() && o.short.as_bytes() == name)
                })
                .ok_or_else(|| unknown_option(&arg))?;
            let spec = match spec.kind {
                OptionKind::Alias(long) => option(long),
                _ => spec,
            };
            match spec.kind {
                OptionKind::NotYet(why) => {
                    return Err(ConfigError::new(format!(
                        "option {typed} is not supported yet ({why}); remove it"
                    )))
                }
                OptionKind::Instead(what) => {
                    return Err(ConfigError::new(format!(
                        "option {typed} is not a catamount option; {what}"
                    )))
                }
                OptionKind::Flag => {
                    if attached.is_some() {
                        return Err(ConfigError::new(format!(
                            "{:?}: option {typed} takes no value; expected {typed} alone \
                             (give each flag separately)",
                            arg.to_string_lossy()
                        )));
                    }
                    line.options.push(spec.long.into());
                }
                OptionKind::Value { expect } => {
                    let value = match attached {
                        Some(v) => OsString::from_vec(v.to_vec()),
                        None => args.next().ok_or_else(|| {
                            ConfigError::new(format!(
                                "option {typed} is missing its value; expected {expect}"
                            ))
                        })?,
                    };
                    check_not_an_option(&typed, &value, expect, attached.is_some())?;
                    line.options.push(spec.long.into());
                    line.options.push(value);
                }
                OptionKind::FlagOrValue { expect } => {
                    let value = attached.map_or_else(
                        || OsString::from("true"),
                        |v| OsString::from_vec(v.to_vec()),
                    );
                    check_not_an_option(&typed, &value, expect, true)?;
                    line.options.push(spec.long.into());
                    line.options.push(value);
                }
                // An alias never names an alias (tested below).
                OptionKind::Alias(_) => {
                    return Err(ConfigError::new(format!(
                        "internal error: option {typed} is an alias of an alias; please report it"
                    )))
                }
            }
        }
        Ok(line)
    }
}

/// Refuses a value spelled like an option: it is almost surely a
/// forgotten value (`--tag -b tcp://...` would tag the server "-b" and
/// serve a directory named after the bind), and pico-args would take a
/// long name for the option it spells. A value after the option may not
/// start like any option (`-b`, `-btcp://...`, `--bind=...`); one
/// attached with `=` may, unless it is a whole long name.
fn check_not_an_option(
    typed: &str,
    value: &OsStr,
    expect: &str,
    attached: bool,
) -> Result<(), ConfigError> {
    let v = value.as_bytes();
    let is_option = if attached {
        OPTIONS.iter().any(|o| o.long.as_bytes() == v)
    } else {
        names_an_option(v)
    };
    if !is_option {
        return Ok(());
    }
    let hint = if attached {
        String::new()
    } else if typed.starts_with("--") {
        format!(" (a value that starts with - is written {typed}=VALUE)")
    } else {
        format!(" (a value that starts with - is written {typed}VALUE)")
    };
    Err(ConfigError::new(format!(
        "option {typed} is followed by option {}, not by a value; expected {expect}{hint}",
        value.to_string_lossy()
    )))
}

/// `arg` is spelled as one of [`OPTIONS`]: `--name`, `--name=VALUE`,
/// `-x` or `-xVALUE`.
fn names_an_option(arg: &[u8]) -> bool {
    OPTIONS.iter().any(|o| {
        let long = o.long.as_bytes();
        let short = o.short.as_bytes();
        arg == long
            || (arg.starts_with(long) && arg.get(long.len()) == Some(&b'='))
            || (!short.is_empty() && arg.starts_with(short))
    })
}

fn unknown_option(arg: &OsStr) -> ConfigError {
    let arg = arg.to_string_lossy();
    let name = arg.split('=').next().unwrap_or(&arg);
    let known = OPTIONS.iter().filter(|o| {
        matches!(
            o.kind,
            OptionKind::Flag
                | OptionKind::Value { .. }
                | OptionKind::FlagOrValue { .. }
                | OptionKind::Alias(_)
        )
    });
    let hint = closest(name, known.map(|o| o.long))
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    ConfigError::new(format!(
        "unknown option {name:?}{hint}; run catamount --help for the list of options"
    ))
}

/// The last value of option `long` (repeats are allowed; the last wins).
/// A parse error other than [`INVALID`] is shown after the value.
fn last<T, E: fmt::Display>(
    args: &mut pico_args::Arguments,
    long: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    let mut values = args
        .values_from_fn(long, parse)
        .map_err(|e| option_error(long, e))?;
    Ok(values.pop())
}

/// Like [`last`] for a path, which need not be UTF-8.
fn last_path(
    args: &mut pico_args::Arguments,
    long: &'static str,
) -> Result<Option<PathBuf>, ConfigError> {
    let mut values = args
        .values_from_os_str(long, |s| Ok::<_, &str>(PathBuf::from(s)))
        .map_err(|e| option_error(long, e))?;
    Ok(values.pop())
}

/// `Some(true)` when the flag is given (any number of times).
fn flag(args: &mut pico_args::Arguments, long: &'static str) -> Option<bool> {
    let mut seen = false;
    while args.contains(long) {
        seen = true;
    }
    seen.then_some(true)
}

fn option_error(long: &'static str, e: pico_args::Error) -> ConfigError {
    let expect = option(long).expect_text();
    ConfigError::new(match e {
        // BindSpec's message already reads `bind "URI": ...`.
        pico_args::Error::Utf8ArgumentParsingFailed { cause, .. }
            if long == "--bind" && cause.starts_with("bind ") =>
        {
            format!("--{cause}")
        }
        pico_args::Error::Utf8ArgumentParsingFailed { .. } | pico_args::Error::NonUtf8Argument
            if long == "--control-token" =>
        {
            format!("{long} {NOT_SHOWN}; expected {expect}")
        }
        pico_args::Error::Utf8ArgumentParsingFailed { value, cause } if cause != INVALID => {
            format!("{long} {value:?}: {cause}")
        }
        pico_args::Error::Utf8ArgumentParsingFailed { value, .. } => {
            format!("{long} {value:?}; expected {expect}")
        }
        pico_args::Error::NonUtf8Argument => {
            format!("{long} with a value that is not UTF-8; expected {expect}")
        }
        other => format!("{long}: {other}; expected {expect}"),
    })
}

// ---------------------------------------------------------------------
// The config file.
// ---------------------------------------------------------------------

/// Directives the file understands, in the order listed in errors.
const DIRECTIVES: &[&str] = &[
    "bind",
    "port",
    "threads",
    "directory",
    "environment",
    "tag",
    "pidfile",
    "first_data_timeout",
    "body_timeout",
    "write_timeout",
    "persistent_timeout",
    "shutdown_timeout",
    "max_keep_alive",
    "max_body",
    "log_requests",
    "quiet",
    "dir_listing",
    "serve_dotfiles",
    "cache_control",
    "bind_to_activated_sockets",
    "fd_store",
    "workers",
    "preload_app!",
    "worker_timeout",
    "worker_boot_timeout",
    "worker_shutdown_timeout",
    "max_requests",
    "worker_max_rss",
    "activate_control_app",
    "control_url",
    "control_token",
    "state_path",
];

/// Directives whose values may hold a token: their errors never show
/// the values (see [`NOT_SHOWN`]).
const SECRET_DIRECTIVES: &[&str] = &["control_token", "activate_control_app"];

/// Puma directives a later release may implement, with why they are
/// refused.
const NOT_YET_DIRECTIVES: &[(&str, &str)] = &[
    ("fork_worker", NO_REFORK),
    (
        "worker_check_interval",
        "the interval at which workers check in is fixed",
    ),
    (
        "worker_culling_strategy",
        "which workers stop first is fixed",
    ),
    ("state_permission", "the state file's mode is fixed"),
];

const RUBY_HOOK: &str = "Ruby hooks have no equivalent in catamount; remove the hook and its block";

/// Puma directives with a catamount equivalent or none, and what to do.
const PUMA_ONLY_DIRECTIVES: &[(&str, &str)] = &[
    ("force_shutdown_after", "use shutdown_timeout SECS"),
    ("http_content_length_limit", "use max_body BYTES"),
    ("max_fast_inline", "use max_keep_alive N"),
    (
        "rackup",
        "catamount serves a directory, not a Rack app; use directory \"PATH\"",
    ),
    (
        "app",
        "catamount serves a directory, not a Rack app; use directory \"PATH\"",
    ),
    (
        "stdout_redirect",
        "catamount logs to stdout and stderr; let systemd's journal keep them",
    ),
    (
        "daemonize",
        "catamount stays in the foreground; let systemd supervise it",
    ),
    ("plugin", "catamount has no plugins; remove the line"),
    (
        "ssl_bind",
        "write an ssl:// bind instead, as in bind \"ssl://0.0.0.0:443?cert=PATH&key=PATH\" \
         (see TLS in catamount --help)",
    ),
    // Hooks, in Puma 6 and Puma 7 spellings.
    ("before_fork", RUBY_HOOK),
    ("on_worker_boot", RUBY_HOOK),
    ("before_worker_boot", RUBY_HOOK),
    ("after_worker_boot", RUBY_HOOK),
    ("on_worker_shutdown", RUBY_HOOK),
    ("before_worker_shutdown", RUBY_HOOK),
    ("on_worker_fork", RUBY_HOOK),
    ("before_worker_fork", RUBY_HOOK),
    ("after_worker_fork", RUBY_HOOK),
    ("on_refork", RUBY_HOOK),
    ("before_refork", RUBY_HOOK),
    ("on_restart", RUBY_HOOK),
    ("before_restart", RUBY_HOOK),
    ("on_booted", RUBY_HOOK),
    ("after_booted", RUBY_HOOK),
    ("on_stopped", RUBY_HOOK),
    ("after_stopped", RUBY_HOOK),
    ("on_thread_start", RUBY_HOOK),
    ("before_thread_start", RUBY_HOOK),
    ("on_thread_exit", RUBY_HOOK),
    ("before_thread_exit", RUBY_HOOK),
    ("out_of_band", RUBY_HOOK),
    ("lowlevel_error_handler", RUBY_HOOK),
];

/// The file's layer, and the lines named by errors about the merged
/// settings.
struct FileSettings {
    layer: Overrides,
    /// The last `directory` line (for DIR errors).
    directory_line: Option<usize>,
    /// The last line that set the control URL (for control errors).
    control_line: Option<usize>,
}

fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let cannot = |e: std::io::Error| {
        ConfigError::new(format!(
            "cannot read config file {path:?}: {e}; check the path given to -C/--config"
        ))
    };
    let file = fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(ConfigError::new(format!(
            "config file {path:?} is larger than {MAX_CONFIG_FILE_BYTES} bytes; \
             expected a short text file of directives"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::new(format!(
            "{}:{line}: bytes that are not UTF-8; expected UTF-8 text",
            path.display()
        ))
    })
}

fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    let mut file = FileSettings {
        layer: Overrides::default(),
        directory_line: None,
        control_line: None,
    };
    // Line of each bind so far, for "repeats line N".
    let mut bind_lines: Vec<usize> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let at =
            |message: String| ConfigError::new(format!("{}:{number}: {message}", path.display()));
        let Some(directive) = Directive::parse(line).map_err(at)? else {
            continue;
        };
        let bind = directive.apply(&mut file.layer).map_err(at)?;
        if let Some(bind) = bind {
            let binds = &file.layer.binds;
            if let Some(earlier) = binds.iter().position(|b| b.to_string() == bind.to_string()) {
                return Err(at(format!(
                    "bind {:?} repeats the bind of line {}; expected each listener once",
                    bind.to_string(),
                    bind_lines[earlier]
                )));
            }
            file.layer.binds.push(bind);
            bind_lines.push(number);
        }
        match directive.name {
            "directory" => file.directory_line = Some(number),
            "activate_control_app" | "control_url" => file.control_line = Some(number),
            _ => {}
        }
    }
    Ok(file)
}

/// One literal argument of a directive.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A quoted string, escapes resolved.
    Str(String),
    /// Anything else: a number, `true`, a stray word.
    Word(String),
    /// `{ key: value, ... }`, or the same pairs without braces as the
    /// last argument (Ruby's trailing hash); `:key => value` also works.
    /// Values are literals, not hashes.
    Hash(Pairs),
}

/// A hash's `key: value` pairs, in order.
type Pairs = Vec<(String, Arg)>;

/// One non-blank, non-comment line: `name arg, arg  # comment`.
#[derive(Debug)]
struct Directive<'a> {
    name: &'a str,
    /// The arguments as written, without the comment, for messages.
    raw: &'a str,
    args: Vec<Arg>,
}

impl<'a> Directive<'a> {
    /// `Ok(None)` for a blank or comment line. The error is the message
    /// after `FILE:LINE: `.
    fn parse(line: &'a str) -> Result<Option<Directive<'a>>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let mut name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(line.len());
        if line[name_end..].starts_with(['!', '?']) {
            name_end += 1;
        }
        let (name, rest) = line.split_at(name_end);
        let separated = rest.is_empty()
            || rest.starts_with(|c: char| c.is_whitespace() || c == '(' || c == '#');
        if name.is_empty() || !separated {
            let word = line.split_whitespace().next().unwrap_or(line);
            return Err(format!(
                "{word:?}; expected a directive followed by its values, as in threads 0, 16"
            ));
        }
        check_directive_name(name)?;
        // A line that may hold a token is never echoed, not even in part.
        let secret = SECRET_DIRECTIVES.contains(&name);
        let (tokens, code_len) = lex(rest).map_err(|e| {
            if secret {
                format!(
                    "{name} {NOT_SHOWN}; expected strings closed on the same line, with no \
                     escape but \\\" and \\\\ and no #{{...}}"
                )
            } else {
                e
            }
        })?;
        let raw = rest[..code_len].trim();
        let args = arguments(&tokens).ok_or_else(|| {
            let shown = if secret { NOT_SHOWN } else { raw };
            format!(
                "{name} {shown}; expected literal values separated by commas, as in threads 0, 16"
            )
        })?;
        Ok(Some(Directive { name, raw, args }))
    }

    /// Writes this directive into `layer`. A bind (from `bind` or `port`)
    /// is returned instead, for the caller's repeat check.
    fn apply(&self, layer: &mut Overrides) -> Result<Option<BindSpec>, String> {
        let name = self.name;
        let bad = |expect: &str| {
            if self.raw.is_empty() {
                format!("{name} without a value; expected {expect}")
            } else {
                format!("{name} {}; expected {expect}", self.raw)
            }
        };
        let args = self.args.as_slice();
        match name {
            "bind" => {
                let [Arg::Str(uri)] = args else {
                    return Err(bad("one quoted URI, as in bind \"tcp://0.0.0.0:9292\""));
                };
                return BindSpec::parse(uri).map(Some);
            }
            "port" => {
                const EXPECT: &str = "a port and an optional quoted host, as in port 9292 or \
                                      port 9292, \"127.0.0.1\"";
                let (port, host) = match args {
                    [Arg::Word(port)] => (port, "0.0.0.0"),
                    [Arg::Word(port), Arg::Str(host)] => (port, host.as_str()),
                    _ => return Err(bad(EXPECT)),
                };
                let port: u16 = ruby_number(port)
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad(EXPECT))?;
                let uri = if host.contains(':') && !host.starts_with('[') {
                    format!("tcp://[{host}]:{port}")
                } else {
                    format!("tcp://{host}:{port}")
                };
                return BindSpec::parse(&uri)
                    .map(Some)
                    .map_err(|e| format!("{name} {}: {e}", self.raw));
            }
            "threads" => {
                const EXPECT: &str =
                    "two integers MIN, MAX with MIN <= MAX and 1 <= MAX <= 4096, as in threads 0, 16";
                let [Arg::Word(min), Arg::Word(max)] = args else {
                    return Err(bad(EXPECT));
                };
                let number = |w: &str| ruby_number(w).and_then(|n| n.parse::<usize>().ok());
                layer.threads = Some(
                    number(min)
                        .zip(number(max))
                        .and_then(|(min, max)| check_threads(min, max))
                        .ok_or_else(|| bad(EXPECT))?,
                );
            }
            "directory" => {
                let dir = non_empty_string(args)
                    .ok_or_else(|| bad("a quoted directory, as in directory \"/srv/www\""))?;
                layer.dir = Some(PathBuf::from(dir));
            }
            "environment" => {
                let env = string(args).and_then(parse_name).ok_or_else(|| {
                    bad("a quoted name without control characters, as in environment \"production\"")
                })?;
                layer.environment = Some(env.to_string());
            }
            "tag" => {
                let tag = string(args).and_then(parse_optional_name).ok_or_else(|| {
                    bad("a quoted name without control characters, as in tag \"app\"")
                })?;
                layer.tag = Some(tag.to_string());
            }
            "pidfile" => {
                let path = string(args)
                    .ok_or_else(|| bad("a quoted path, as in pidfile \"/run/app.pid\""))?;
                layer.pidfile = Some(PathBuf::from(path));
            }
            "first_data_timeout"
            | "body_timeout"
            | "write_timeout"
            | "persistent_timeout"
            | "shutdown_timeout"
            | "worker_timeout"
            | "worker_boot_timeout"
            | "worker_shutdown_timeout" => {
                let secs = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| parse_secs(&w))
                    .ok_or_else(|| bad(&format!("{SECS_EXPECT}, as in {name} 30")))?;
                match name {
                    "first_data_timeout" => layer.first_data_timeout = Some(secs),
                    "body_timeout" => layer.body_timeout = Some(secs),
                    "write_timeout" => layer.write_timeout = Some(secs),
                    "persistent_timeout" => layer.persistent_timeout = Some(secs),
                    "worker_timeout" => layer.worker_timeout = Some(secs),
                    "worker_boot_timeout" => layer.worker_boot_timeout = Some(secs),
                    // worker_shutdown_timeout is Puma's name for it in
                    // cluster mode; both modes share the one setting.
                    _ => layer.shutdown_timeout = Some(secs),
                }
            }
            "max_keep_alive" => {
                let n = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| parse_keep_alive(&w))
                    .ok_or_else(|| {
                        bad("a whole number from 1 to 4294967295, as in max_keep_alive 999")
                    })?;
                layer.max_keep_alive = Some(n);
            }
            "max_body" => {
                let n = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| w.parse().ok())
                    .ok_or_else(|| bad("a whole number of bytes, as in max_body 10_485_760"))?;
                layer.max_body = Some(n);
            }
            "log_requests" | "quiet" | "dir_listing" | "serve_dotfiles" | "fd_store"
            | "preload_app!" => {
                let on = boolean(args)
                    .ok_or_else(|| bad(&format!("true or false, as in {name} true")))?;
                match name {
                    "log_requests" => layer.log_requests = Some(on),
                    "quiet" => layer.quiet = Some(on),
                    "dir_listing" => layer.dir_listing = Some(on),
                    "fd_store" => layer.fd_store = Some(on),
                    "preload_app!" => layer.preload = Some(on),
                    _ => layer.serve_dotfiles = Some(on),
                }
            }
            "cache_control" => {
                let value = string(args).and_then(parse_header_value).ok_or_else(|| {
                    bad("a quoted value of printable ASCII, as in cache_control \"public, max-age=60\"")
                })?;
                layer.cache_control = Some(value.to_string());
            }
            "bind_to_activated_sockets" => {
                let mode = match args {
                    [Arg::Str(s)] if s == "only" => Some(ActivatedMode::Only),
                    _ => boolean(args).map(|on| {
                        if on {
                            ActivatedMode::On
                        } else {
                            ActivatedMode::Off
                        }
                    }),
                };
                layer.activated = Some(mode.ok_or_else(|| {
                    bad("true, false or \"only\", as in bind_to_activated_sockets \"only\"")
                })?);
            }
            "workers" => {
                let n = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| parse_workers(&w))
                    .ok_or_else(|| {
                        bad("a whole number from 0 to 256 (0 is single mode), as in workers 4")
                    })?;
                layer.workers = Some(n);
            }
            "max_requests" | "worker_max_rss" => {
                let (max, example) = match name {
                    "max_requests" => (u64::MAX, "max_requests 10_000"),
                    _ => (MAX_WORKER_MAX_RSS_MIB, "worker_max_rss 512"),
                };
                let n = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| parse_limit(&w, max))
                    .ok_or_else(|| {
                        bad(&format!("a whole number from 1 to {max}, as in {example}"))
                    })?;
                match name {
                    "max_requests" => layer.max_requests = Some(Some(n)),
                    _ => layer.worker_max_rss = Some(Some(n)),
                }
            }
            "activate_control_app" => {
                // Tokens are never echoed: an error shows the URI only.
                const EXPECT: &str = "a quoted URI and optional { auth_token: \"TOKEN\" } or \
                                      { no_token: true }, as in activate_control_app \
                                      \"unix:///run/app-control.sock\", { auth_token: \"s3cr3t\" }";
                let (uri, options) = match args {
                    [Arg::Str(uri)] => (uri, &[][..]),
                    [Arg::Str(uri), Arg::Hash(options)] => (uri, options.as_slice()),
                    _ => return Err(format!("{name} {NOT_SHOWN}; expected {EXPECT}")),
                };
                let at = |e: &str| format!("{name} {uri:?}: {e}");
                let url = parse_control_url(uri).map_err(|e| at(&e))?;
                let mut token = None;
                let mut no_token = false;
                for (key, value) in options {
                    match (key.as_str(), value) {
                        ("auth_token", value) => {
                            let t = match value {
                                Arg::Str(t) => parse_token(t),
                                _ => None,
                            };
                            token = Some(t.ok_or_else(|| at(&format!("auth_token {NOT_SHOWN}; expected {TOKEN_EXPECT}")))?.to_string());
                        }
                        ("no_token", Arg::Word(w)) if w == "true" || w == "false" => {
                            no_token = w == "true";
                        }
                        ("no_token", _) => return Err(at("no_token with a value other than true or false; expected no_token: true")),
                        (key, _) => {
                            return Err(at(&format!(
                                "unknown option {key:?}; expected auth_token: \"TOKEN\" or no_token: true"
                            )))
                        }
                    }
                }
                layer.control_url = Some(Some(url));
                // Alone, the URI leaves the token to other lines.
                match (token, no_token) {
                    (Some(_), true) => {
                        return Err(at(
                            "both auth_token: and no_token: true; expected one of them",
                        ))
                    }
                    (Some(t), false) => layer.control_token = Some(ControlToken::Token(t)),
                    (None, true) => layer.control_token = Some(ControlToken::NoToken),
                    (None, false) => {}
                }
            }
            "control_url" => {
                let uri = string(args).ok_or_else(|| {
                    bad("a quoted URI, as in control_url \"unix:///run/app-control.sock\"")
                })?;
                layer.control_url = Some(if uri.is_empty() {
                    None
                } else {
                    Some(parse_control_url(uri).map_err(|e| format!("{name} {uri:?}: {e}"))?)
                });
            }
            "control_token" => {
                let token = string(args).and_then(parse_token).ok_or_else(|| {
                    format!("{name} {NOT_SHOWN}; expected a quoted, {TOKEN_EXPECT}, as in control_token \"s3cr3t\"")
                })?;
                layer.control_token = Some(ControlToken::Token(token.to_string()));
            }
            "state_path" => {
                let path = string(args)
                    .ok_or_else(|| bad("a quoted path, as in state_path \"/run/app.state\""))?;
                layer.state_path = Some(PathBuf::from(path));
            }
            // Directive::parse let only DIRECTIVES through.
            _ => return check_directive_name(name).map(|()| None),
        }
        Ok(None)
    }
}

/// Refuses a directive name that is not in [`DIRECTIVES`], saying why.
/// Checked before the values, so `workers ENV.fetch("N")` is reported as
/// not supported rather than as a syntax error.
fn check_directive_name(name: &str) -> Result<(), String> {
    if DIRECTIVES.contains(&name) {
        return Ok(());
    }
    if let Some((_, why)) = NOT_YET_DIRECTIVES.iter().find(|(n, _)| *n == name) {
        return Err(format!(
            "directive {name:?} is not supported yet ({why}); expected the line removed"
        ));
    }
    if let Some((_, what)) = PUMA_ONLY_DIRECTIVES.iter().find(|(n, _)| *n == name) {
        return Err(format!(
            "directive {name:?} is Puma's, not catamount's; {what}"
        ));
    }
    // One short line: it is what `systemctl status` shows.
    Err(match closest(name, DIRECTIVES.iter().copied()) {
        Some(d) => format!("unknown directive {name:?} (did you mean {d}?)"),
        None => format!(
            "unknown directive {name:?}; see CONFIG FILE in catamount --help for the directives"
        ),
    })
}

/// A directive's tokens, before commas are checked.
#[derive(Debug)]
enum Token {
    /// A string or a word, never a hash.
    Arg(Arg),
    Comma,
    Open,
    Close,
    OpenBrace,
    CloseBrace,
}

/// Splits the text after a directive name into tokens, and returns how
/// many bytes of it are code (the rest is a `#` comment). The error is
/// the message after `FILE:LINE: `.
fn lex(text: &str) -> Result<(Vec<Token>, usize), String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            '#' => return Ok((tokens, start)),
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '{' | '}' => {
                chars.next();
                tokens.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '{' => Token::OpenBrace,
                    _ => Token::CloseBrace,
                });
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    if c == quote {
                        closed = true;
                        break;
                    }
                    match c {
                        '\\' => match chars.next() {
                            Some((_, e)) if e == '\\' || e == quote => value.push(e),
                            // Ruby keeps other escapes literally in '...'.
                            Some((_, e)) if quote == '\'' => {
                                value.push('\\');
                                value.push(e);
                            }
                            Some((_, e)) => {
                                return Err(format!(
                                    "escape \\{e} in string {}; expected only \\\" or \\\\ \
                                     (write other characters as they are)",
                                    literal(&text[start..])
                                ))
                            }
                            None => break,
                        },
                        '#' if quote == '"' && matches!(chars.peek(), Some((_, '{'))) => {
                            return Err(format!(
                                "interpolation #{{...}} in string {}; expected a literal string \
                                 (use single quotes for a literal #{{)",
                                literal(&text[start..])
                            ));
                        }
                        _ => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!(
                        "unterminated string {}; expected a closing {quote} on the same line",
                        text[start..].trim_end(),
                    ));
                }
                tokens.push(Token::Arg(Arg::Str(value)));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace()
                        || matches!(c, ',' | '(' | ')' | '{' | '}' | '#' | '"' | '\'')
                    {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Arg(Arg::Word(text[start..end].to_string())));
            }
        }
    }
    Ok((tokens, text.len()))
}

/// The string literal at the start of `text` (which begins with its
/// quote), for messages: up to the closing quote, else the whole rest.
fn literal(text: &str) -> &str {
    let mut chars = text.char_indices();
    let quote = chars.next().map_or('"', |(_, c)| c);
    let mut escaped = false;
    for (i, c) in chars {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if c == quote => return &text[..i + c.len_utf8()],
            _ => {}
        }
    }
    text.trim_end()
}

/// `a, b, c` or `(a, b, c)` → the values; `None` for any other shape.
/// A value may be a hash (see [`Arg::Hash`]).
fn arguments(tokens: &[Token]) -> Option<Vec<Arg>> {
    let inner = match tokens {
        [Token::Open, inner @ .., Token::Close] => inner,
        _ => tokens,
    };
    let mut args = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let braced = matches!(rest.first(), Some(Token::OpenBrace));
        let (arg, after) = argument(rest)?;
        let trailing_hash = matches!(arg, Arg::Hash(_)) && !braced;
        args.push(arg);
        rest = match after {
            [] => after,
            // Ruby allows nothing after a hash without braces.
            [Token::Comma, more @ ..] if !more.is_empty() && !trailing_hash => more,
            _ => return None,
        };
    }
    Some(args)
}

/// The value at the start of `tokens`, and what follows it.
fn argument(tokens: &[Token]) -> Option<(Arg, &[Token])> {
    match tokens {
        [Token::OpenBrace, Token::CloseBrace, rest @ ..] => Some((Arg::Hash(Vec::new()), rest)),
        [Token::OpenBrace, rest @ ..] => match pairs(rest)? {
            (pairs, [Token::CloseBrace, rest @ ..]) => Some((Arg::Hash(pairs), rest)),
            _ => None,
        },
        _ if key(tokens).is_some() => {
            let (pairs, rest) = pairs(tokens)?;
            Some((Arg::Hash(pairs), rest))
        }
        [Token::Arg(arg), rest @ ..] => Some((arg.clone(), rest)),
        _ => None,
    }
}

/// `key: value, ...` at the start of `tokens`, and what follows.
fn pairs(mut tokens: &[Token]) -> Option<(Pairs, &[Token])> {
    let mut pairs = Vec::new();
    loop {
        let (name, rest) = key(tokens)?;
        let [Token::Arg(value), rest @ ..] = rest else {
            return None;
        };
        pairs.push((name.to_string(), value.clone()));
        match rest {
            [Token::Comma, more @ ..] if key(more).is_some() => tokens = more,
            _ => return Some((pairs, rest)),
        }
    }
}

/// A hash key at the start of `tokens` (`key:`, `:key =>` or
/// `:key=>`), and what follows it.
fn key(tokens: &[Token]) -> Option<(&str, &[Token])> {
    let identifier =
        |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match tokens {
        [Token::Arg(Arg::Word(w)), Token::Arg(Arg::Word(arrow)), rest @ ..] if arrow == "=>" => w
            .strip_prefix(':')
            .filter(|k| identifier(k))
            .map(|k| (k, rest)),
        [Token::Arg(Arg::Word(w)), rest @ ..] => w
            .strip_suffix(':')
            .or_else(|| w.strip_prefix(':')?.strip_suffix("=>"))
            .filter(|k| identifier(k))
            .map(|k| (k, rest)),
        _ => None,
    }
}

fn string(args: &[Arg]) -> Option<&str> {
    match args {
        [Arg::Str(s)] => Some(s),
        _ => None,
    }
}

fn non_empty_string(args: &[Arg]) -> Option<&str> {
    string(args).filter(|s| !s.is_empty())
}

fn word(args: &[Arg]) -> Option<&str> {
    match args {
        [Arg::Word(w)] => Some(w),
        _ => None,
    }
}

/// `true`, `false`, or nothing (Puma's `quiet` alone means true).
fn boolean(args: &[Arg]) -> Option<bool> {
    match args {
        [] => Some(true),
        [Arg::Word(w)] if w == "true" => Some(true),
        [Arg::Word(w)] if w == "false" => Some(false),
        _ => None,
    }
}

/// A Ruby numeric literal with its `_` digit separators removed
/// (`10_485_760`); `None` when an underscore is not between two digits.
fn ruby_number(word: &str) -> Option<String> {
    let bytes = word.as_bytes();
    let separators_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    separators_ok.then(|| word.replace('_', ""))
}

// ---------------------------------------------------------------------
// Values shared by the command line and the file.
// ---------------------------------------------------------------------

/// `MIN:MAX` or `N` (meaning `N:N`).
fn parse_threads(s: &str) -> Option<(usize, usize)> {
    match s.split_once(':') {
        Some((min, max)) => check_threads(min.parse().ok()?, max.parse().ok()?),
        None => {
            let n = s.parse().ok()?;
            check_threads(n, n)
        }
    }
}

fn check_threads(min: usize, max: usize) -> Option<(usize, usize)> {
    (min <= max && (1..=MAX_THREADS_LIMIT).contains(&max)).then_some((min, max))
}

/// Seconds, fraction allowed: above zero (after rounding to whole
/// nanoseconds), finite, at most [`MAX_TIMEOUT`].
fn parse_secs(s: &str) -> Option<Duration> {
    let secs: f64 = s.parse().ok()?;
    // Written so that NaN fails too.
    if !(secs > 0.0 && secs <= MAX_TIMEOUT.as_secs_f64()) {
        return None;
    }
    Some(Duration::from_secs_f64(secs)).filter(|d| !d.is_zero())
}

/// `true`, `false` or `only` (a bare `--bind-to-activated-sockets`
/// arrives as `true`).
fn parse_activated(s: &str) -> Option<ActivatedMode> {
    match s {
        "true" => Some(ActivatedMode::On),
        "false" => Some(ActivatedMode::Off),
        "only" => Some(ActivatedMode::Only),
        _ => None,
    }
}

fn parse_workers(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n <= MAX_WORKERS)
}

/// A whole number from 1 to `max`.
fn parse_limit(s: &str, max: u64) -> Option<u64> {
    s.parse().ok().filter(|n| (1..=max).contains(n))
}

/// `Some(None)` for "" (turn the setting off), else `parse`'s result.
fn optional<T>(s: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if s.is_empty() {
        Some(None)
    } else {
        parse(s).map(Some)
    }
}

/// A control token: non-empty, visible ASCII only, so it can travel in a
/// header or a query string and cannot split either.
fn parse_token(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// A control URL: a bind URI (see [`BindSpec::parse`]) that is `unix://`,
/// or `tcp://` on a loopback host, since the control app can stop the
/// server. The error is the message after `"URI": `.
fn parse_control_url(uri: &str) -> Result<BindSpec, String> {
    // Name only the schemes a control URL takes, not every bind's.
    match uri.split_once("://") {
        Some(("tcp" | "unix" | "ssl" | "fd", _)) => {}
        Some((scheme, _)) => {
            return Err(format!(
                "unknown scheme {scheme:?}; expected tcp:// or unix://"
            ))
        }
        None => return Err("expected tcp://HOST:PORT or unix:///ABSOLUTE/PATH".to_string()),
    }
    let spec = BindSpec::parse(uri).map_err(|e| {
        // BindSpec's message starts `bind "URI": `; the caller names the URI.
        match e.strip_prefix(&format!("bind {uri:?}: ")) {
            Some(rest) => rest.to_string(),
            None => e,
        }
    })?;
    match &spec {
        BindSpec::Unix { .. } => Ok(spec),
        BindSpec::Tcp { tls: Some(_), .. } => Err(
            "the control app speaks plain HTTP; expected unix:// or tcp://, not ssl://".to_string(),
        ),
        BindSpec::Tcp { host, .. } if is_loopback_host(host) => Ok(spec),
        BindSpec::Tcp { host, .. } => Err(format!(
            "host {host:?} is not a loopback address; expected 127.0.0.1, [::1] or localhost, \
             since the control app can stop the server"
        )),
        _ => Err(
            "expected unix:///PATH or tcp://HOST:PORT; the control app listens on a socket \
             of its own"
                .to_string(),
        ),
    }
}

/// `localhost`, or an IP literal in 127.0.0.0/8 or `::1`.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_keep_alive(s: &str) -> Option<u32> {
    s.parse().ok().filter(|&n| n >= 1)
}

/// A non-empty name without control characters.
fn parse_name(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s).and_then(parse_optional_name)
}

/// A name without control characters; empty means "off".
fn parse_optional_name(s: &str) -> Option<&str> {
    (!s.chars().any(char::is_control)).then_some(s)
}

/// A header value catamount can write as is: visible ASCII, space and
/// tab (RFC 9110 section 5.5, without obs-text); empty means "off".
/// Refusing CR and LF here is what keeps the value from splitting the
/// response head.
fn parse_header_value(s: &str) -> Option<&str> {
    s.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        .then_some(s)
}

/// The candidate within edit distance 2 of `typed`, for "did you mean".
fn closest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(typed, c), c))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the system temp dir, unique to this process and
    /// call, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "catamount-config-test-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&path).expect("create a temp dir");
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `contents` to `name` inside the dir; returns its path.
        fn file(&self, name: &str, contents: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, contents).expect("write a temp file");
            path
        }

        fn subdir(&self, name: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::create_dir_all(&path).expect("create a temp subdir");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn os_args(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(args: &[&str]) -> Config {
        match parse_args(os_args(args)) {
            Ok(Command::Run(config)) => *config,
            Ok(other) => panic!("{args:?}: expected Run, got {other:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    /// The error for `args`, checked to be one line.
    fn error(args: &[&str]) -> String {
        match parse_args(os_args(args)) {
            Ok(other) => panic!("{args:?}: expected an error, got {other:?}"),
            Err(e) => one_line(e),
        }
    }

    fn one_line(e: ConfigError) -> String {
        let message = e.to_string();
        assert!(!message.contains('\n'), "not one line: {message}");
        message
    }

    /// Runs with config file `contents` (and `extra` arguments) in a
    /// fresh temp dir.
    fn with_file(contents: &str, extra: &[&str]) -> Result<Config, String> {
        let tmp = TempDir::new();
        let file = tmp.file("app.rb", contents);
        let mut args = vec!["-C", file.to_str().expect("temp paths are UTF-8")];
        args.extend_from_slice(extra);
        match parse_args(os_args(&args)) {
            Ok(Command::Run(config)) => Ok(*config),
            Ok(other) => panic!("expected Run, got {other:?}"),
            Err(e) => Err(one_line(e)),
        }
    }

    /// The error for a config file, with the temp path replaced by
    /// `app.rb` so tests can compare whole messages.
    fn file_error(contents: &str) -> String {
        let tmp = TempDir::new();
        let file = tmp.file("app.rb", contents);
        let args = vec![OsString::from("-C"), file.clone().into_os_string()];
        match parse_args(args) {
            Ok(other) => panic!("expected an error, got {other:?}"),
            Err(e) => one_line(e).replace(&file.display().to_string(), "app.rb"),
        }
    }

    fn tcp(host: &str, port: u16) -> BindSpec {
        BindSpec::parse(&format!("tcp://{host}:{port}")).expect("test bind")
    }

    fn unix(path: &str) -> BindSpec {
        BindSpec::parse(&format!("unix://{path}")).expect("test bind")
    }

    #[test]
    fn defaults() {
        let c = run(&[]);
        assert_eq!(c, Config::default());
        assert_eq!(c.binds, vec![BindSpec::parse(DEFAULT_BIND).unwrap()]);
        assert_eq!(c.dir, PathBuf::from("."));
        assert_eq!((c.min_threads, c.max_threads), (0, 5));
        assert_eq!(c.environment, "production");
        assert_eq!(c.tag, None);
        assert_eq!(c.pidfile, None);
        assert_eq!(c.first_data_timeout, Duration::from_secs(30));
        assert_eq!(c.persistent_timeout, Duration::from_secs(65));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.max_keep_alive, 999);
        assert_eq!(c.max_body, 10_485_760);
        assert!(!c.log_requests && !c.quiet && !c.dir_listing && !c.serve_dotfiles);
        assert_eq!(c.cache_control, None);
        assert_eq!(c.activated, ActivatedMode::Off);
        assert!(!c.fd_store && !c.preload);
        assert_eq!(c.workers, 0);
        assert_eq!(c.worker_timeout, Duration::from_secs(60));
        assert_eq!(c.worker_boot_timeout, Duration::from_secs(60));
        assert_eq!((c.max_requests, c.worker_max_rss), (None, None));
        assert_eq!((c.control_url, c.control_token), (None, None));
        assert_eq!(c.state_path, None);
        assert_eq!(c.config_file, None);
        assert_eq!(c.cli, Overrides::default());
    }

    #[test]
    fn every_option() {
        let tmp = TempDir::new();
        let dir = tmp.subdir("www");
        let file = tmp.file("app.rb", "");
        let c = run(&[
            "-b",
            "tcp://127.0.0.1:8080",
            "--bind",
            "unix:///run/app.sock",
            "-t",
            "2:8",
            "-C",
            file.to_str().unwrap(),
            "-e",
            "staging",
            "--tag",
            "app",
            "--pidfile",
            "/run/app.pid",
            "--first-data-timeout",
            "0.5",
            "--persistent-timeout",
            "10",
            "--shutdown-timeout",
            "2.25",
            "--max-keep-alive",
            "7",
            "--max-body",
            "1024",
            "--log-requests",
            "-q",
            "--dir-listing",
            "--serve-dotfiles",
            "--cache-control",
            "public, max-age=60",
            "--bind-to-activated-sockets=only",
            "--fd-store",
            "-w",
            "4",
            "--preload",
            "--worker-timeout",
            "20",
            "--worker-boot-timeout",
            "30.5",
            "--max-requests",
            "1000",
            "--worker-max-rss",
            "512",
            "--control-url",
            "unix:///run/ctl.sock",
            "--control-token",
            "s3cr3t",
            "-S",
            "/run/app.state",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(
            c.binds,
            vec![
                tcp("127.0.0.1", 8080),
                BindSpec::parse("unix:///run/app.sock").unwrap()
            ]
        );
        assert_eq!((c.min_threads, c.max_threads), (2, 8));
        assert_eq!(c.config_file, Some(file));
        assert_eq!(c.environment, "staging");
        assert_eq!(c.tag.as_deref(), Some("app"));
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/app.pid")));
        assert_eq!(c.first_data_timeout, Duration::from_millis(500));
        assert_eq!(c.persistent_timeout, Duration::from_secs(10));
        assert_eq!(c.shutdown_timeout, Duration::from_millis(2250));
        assert_eq!(c.max_keep_alive, 7);
        assert_eq!(c.max_body, 1024);
        assert!(c.log_requests && c.quiet && c.dir_listing && c.serve_dotfiles);
        assert_eq!(c.cache_control.as_deref(), Some("public, max-age=60"));
        assert_eq!(c.activated, ActivatedMode::Only);
        assert!(c.fd_store && c.preload);
        assert_eq!(c.workers, 4);
        assert_eq!(c.worker_timeout, Duration::from_secs(20));
        assert_eq!(c.worker_boot_timeout, Duration::from_millis(30_500));
        assert_eq!((c.max_requests, c.worker_max_rss), (Some(1000), Some(512)));
        assert_eq!(c.control_url, Some(unix("/run/ctl.sock")));
        assert_eq!(c.control_token.as_deref(), Some("s3cr3t"));
        assert_eq!(c.state_path, Some(PathBuf::from("/run/app.state")));
        assert_eq!(c.dir, dir);
    }

    #[test]
    fn long_forms_short_forms_and_separators() {
        let tmp = TempDir::new();
        let dir = tmp.subdir("-odd");
        let c = run(&[
            "--bind=tcp://127.0.0.1:1",
            "-btcp://127.0.0.1:2",
            "--threads=3:4",
            "--environment=dev",
            "--",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(c.binds, vec![tcp("127.0.0.1", 1), tcp("127.0.0.1", 2)]);
        assert_eq!((c.min_threads, c.max_threads), (3, 4));
        assert_eq!(c.environment, "dev");
        assert_eq!(c.dir, dir);
        // A value may start with a dash.
        assert_eq!(run(&["--tag", "-x-"]).tag.as_deref(), Some("-x-"));
    }

    #[test]
    fn binds_keep_their_order_across_spellings() {
        let c = run(&[
            "--bind",
            "tcp://127.0.0.1:1",
            "-b",
            "tcp://127.0.0.1:2",
            "--bind",
            "tcp://127.0.0.1:3",
        ]);
        let want: Vec<_> = (1..=3).map(|p| tcp("127.0.0.1", p)).collect();
        assert_eq!(c.binds, want);
    }

    #[test]
    fn repeated_single_options_last_wins_and_flags_repeat() {
        let c = run(&[
            "-t",
            "1:2",
            "--threads",
            "3:4",
            "-q",
            "--quiet",
            "--log-requests",
        ]);
        assert_eq!((c.min_threads, c.max_threads), (3, 4));
        assert!(c.quiet && c.log_requests);
    }

    #[test]
    fn threads_forms() {
        let threads = |v: &str| {
            let c = run(&["-t", v]);
            (c.min_threads, c.max_threads)
        };
        assert_eq!(threads("0:16"), (0, 16));
        assert_eq!(threads("8"), (8, 8));
        assert_eq!(threads("1:1"), (1, 1));
        assert_eq!(threads("0:4096"), (0, MAX_THREADS_LIMIT));
        for bad in [
            "5:2", "0", "0:0", "a", "1:", ":4", "-1:2", "1:4097", "1:2:3", "", "1.5",
        ] {
            let e = error(&["--threads", bad]);
            assert_eq!(
                e,
                format!(
                    "--threads {bad:?}; expected MIN:MAX or N, with MIN <= MAX and \
                     1 <= MAX <= 4096, as in --threads 0:16"
                )
            );
        }
    }

    #[test]
    fn empty_values_turn_optional_settings_off() {
        let c = with_file(
            "tag \"app\"\npidfile \"/run/a.pid\"\ncache_control \"no-store\"\n",
            &["--tag", "", "--pidfile", "", "--cache-control", ""],
        )
        .unwrap();
        assert_eq!((c.tag, c.pidfile, c.cache_control), (None, None, None));
    }

    #[test]
    fn help_and_version() {
        for a in ["-h", "--help"] {
            assert!(matches!(parse_args(os_args(&[a])), Ok(Command::Help)));
        }
        for a in ["-V", "--version"] {
            assert!(matches!(parse_args(os_args(&[a])), Ok(Command::Version)));
        }
        // Help wins over bad values and a missing DIR.
        assert!(matches!(
            parse_args(os_args(&["-t", "oops", "/no/such/dir", "--help"])),
            Ok(Command::Help)
        ));
    }

    #[test]
    fn refused_options_say_not_supported_yet() {
        assert_eq!(
            error(&["--fork-worker"]),
            "option --fork-worker is not supported yet (workers are forked from the main \
             process only); remove it"
        );
        assert!(error(&["--fork-worker=1000"]).contains("not supported yet"));
        assert_eq!(
            error(&["-p", "9292"]),
            "option -p is not a catamount option; use --bind tcp://0.0.0.0:PORT"
        );
        for o in OPTIONS {
            if let OptionKind::NotYet(_) = o.kind {
                assert!(
                    error(&[o.long]).contains("is not supported yet ("),
                    "{}",
                    o.long
                );
            }
        }
    }

    #[test]
    fn unknown_options_and_extra_arguments() {
        assert_eq!(
            error(&["--frobnicate"]),
            "unknown option \"--frobnicate\"; run catamount --help for the list of options"
        );
        assert_eq!(
            error(&["--thread=4"]),
            "unknown option \"--thread\" (did you mean --threads?); \
             run catamount --help for the list of options"
        );
        assert!(error(&["-x"]).starts_with("unknown option \"-x\";"));
        // Refused options are not suggested; aliases and new options are.
        assert!(!error(&["--fork-wroker"]).contains("did you mean"));
        assert!(error(&["--wokers"]).contains("(did you mean --workers?)"));
        assert!(error(&["--worker-shutdown-timout"])
            .contains("(did you mean --worker-shutdown-timeout?)"));
        assert_eq!(
            error(&[".", "src"]),
            "unexpected argument \"src\"; expected at most one DIR to serve \
             (options start with -; run catamount --help)"
        );
    }

    #[test]
    fn missing_and_misplaced_values() {
        assert_eq!(
            error(&["--bind"]),
            "option --bind is missing its value; expected a bind URI (tcp://, unix://, \
             ssl:// or fd://), as in --bind tcp://0.0.0.0:9292 or --bind unix:///run/app.sock"
        );
        assert!(error(&["--tag", "--quiet"])
            .starts_with("option --tag is followed by option --quiet, not by a value;"));
        // A short option, or one with its value, is refused the same way:
        // `--tag -b URI` would otherwise serve a DIR named after the bind.
        assert_eq!(
            error(&["--tag", "-b", "tcp://127.0.0.1:1"]),
            "option --tag is followed by option -b, not by a value; expected a name without \
             control characters, as in --tag app (a value that starts with - is written \
             --tag=VALUE)"
        );
        for next in [
            "-btcp://127.0.0.1:1",
            "--bind=tcp://127.0.0.1:1",
            "-q",
            "-h",
            "--help",
        ] {
            let e = error(&["--pidfile", next, "."]);
            assert!(
                e.starts_with(&format!("option --pidfile is followed by option {next}, ")),
                "{e}"
            );
        }
        assert!(error(&["-e", "-w", "2"])
            .starts_with("option -e is followed by option -w, not by a value;"));
        assert!(error(&["-e", "-w"]).ends_with("(a value that starts with - is written -eVALUE)"));
        // Attached, such a value is the operator's choice; and a value
        // that only starts with "-" is judged as a value.
        assert_eq!(run(&["--tag=-b"]).tag.as_deref(), Some("-b"));
        assert!(error(&["--max-body", "-1"]).starts_with("--max-body \"-1\"; expected"));
        assert_eq!(
            error(&["--quiet=yes"]),
            "\"--quiet=yes\": option --quiet takes no value; expected --quiet alone \
             (give each flag separately)"
        );
        assert!(error(&["-qh"]).contains("option -q takes no value"));
        assert!(error(&["--config="]).starts_with("--config \"\"; expected"));
    }

    #[test]
    fn bind_errors_list_every_scheme() {
        assert_eq!(
            error(&["-b", "0.0.0.0:9292"]),
            "--bind \"0.0.0.0:9292\": expected tcp://HOST:PORT, unix:///ABSOLUTE/PATH, \
             ssl://HOST:PORT?cert=PATH&key=PATH or fd://NAME"
        );
        assert_eq!(
            error(&["-b", "http://0.0.0.0:9292"]),
            "--bind \"http://0.0.0.0:9292\": unknown scheme \"http\"; expected tcp://, \
             unix://, ssl:// or fd://"
        );
        assert!(file_error("bind \"https://0.0.0.0:443\"")
            .ends_with("unknown scheme \"https\"; expected tcp://, unix://, ssl:// or fd://"));
        // A control URL names only the schemes it takes.
        assert!(error(&["--control-url", "http://127.0.0.1:1"])
            .ends_with("unknown scheme \"http\"; expected tcp:// or unix://"));
    }

    #[test]
    fn bad_bind_on_the_command_line() {
        assert_eq!(
            error(&["-b", "ssl://0.0.0.0:443"]),
            "--bind \"ssl://0.0.0.0:443\": ssl:// bind needs cert=PATH, a PEM file with the server certificate"
        );
        assert_eq!(
            error(&[
                "-b",
                "tcp://127.0.0.1:1",
                "--bind",
                "tcp://127.0.0.1:1?backlog=5"
            ]),
            "--bind \"tcp://127.0.0.1:1\" is given twice; expected each listener once"
        );
    }

    #[test]
    fn seconds() {
        let secs = |v: &str| run(&["--shutdown-timeout", v]).shutdown_timeout;
        assert_eq!(secs("0.5"), Duration::from_millis(500));
        assert_eq!(secs("86400"), MAX_TIMEOUT);
        assert_eq!(secs("1e1"), Duration::from_secs(10));
        for opt in [
            "--first-data-timeout",
            "--persistent-timeout",
            "--shutdown-timeout",
        ] {
            for bad in [
                "0", "-1", "NaN", "abc", "inf", "", "0.0", "1e-12", "86400.5", " 5",
            ] {
                assert_eq!(
                    error(&[opt, bad]),
                    format!(
                        "{opt} {bad:?}; expected a number of seconds above 0 and at most \
                         86400, as in 30 or 0.5"
                    )
                );
            }
        }
    }

    #[test]
    fn counts_and_header_values() {
        assert_eq!(run(&["--max-keep-alive", "1"]).max_keep_alive, 1);
        assert_eq!(run(&["--max-body", "0"]).max_body, 0);
        assert!(error(&["--max-keep-alive", "0"]).starts_with("--max-keep-alive \"0\"; expected"));
        assert!(error(&["--max-keep-alive", "4294967296"]).starts_with("--max-keep-alive"));
        assert!(error(&["--max-body", "-1"]).starts_with("--max-body \"-1\"; expected"));
        assert!(error(&["--max-body", "10M"]).starts_with("--max-body \"10M\"; expected"));
        assert!(error(&["--cache-control", "a\r\nSet-Cookie: x"]).starts_with("--cache-control"));
        assert!(error(&["--cache-control", "caf\u{e9}"]).starts_with("--cache-control"));
        assert!(error(&["-e", ""]).starts_with("--environment \"\"; expected a non-empty name"));
        assert!(error(&["--tag", "a\x1bb"]).starts_with("--tag"));
    }

    #[test]
    fn bad_dir() {
        let tmp = TempDir::new();
        let missing = tmp.path().join("missing");
        let e = error(&[missing.to_str().unwrap()]);
        assert!(
            e.starts_with(&format!("DIR {missing:?} does not exist; expected")),
            "{e}"
        );
        assert!(e.ends_with("; expected a directory to serve, as in catamount /srv/www"));
        let file = tmp.file("plain", "x");
        assert_eq!(
            error(&[file.to_str().unwrap()]),
            format!(
                "DIR {file:?} is not a directory; expected a directory to serve, \
                 as in catamount /srv/www"
            )
        );
    }

    #[test]
    fn check_is_run_with_the_same_configuration() {
        let tmp = TempDir::new();
        let dir = tmp.path().to_str().unwrap();
        let args = ["-t", "2:4", "-b", "tcp://127.0.0.1:8080", dir];
        let Ok(Command::Check(checked)) = parse_args(os_args(&[&["--check"][..], &args].concat()))
        else {
            panic!("--check gives Command::Check");
        };
        assert_eq!(*checked, run(&args));
        assert!(matches!(
            parse_args(os_args(&[dir, "--check"])),
            Ok(Command::Check(_))
        ));
        assert_eq!(
            error(&["--check=yes"]),
            "\"--check=yes\": option --check takes no value; expected --check alone (give each \
             flag separately)"
        );
    }

    #[test]
    fn slash_is_served_only_when_named() {
        let refused = "no directory to serve was given, and the default, the current \
                       directory, is / (where systemd starts services): catamount would serve \
                       the whole file system; expected DIR, as in catamount /srv/www, or \
                       directory \"/srv/www\" in the config file (name / itself to serve it on \
                       purpose)";
        for default in ["/", "/tmp/..", "/."] {
            let e = check_dir(Path::new(default), DirOrigin::Default).unwrap_err();
            assert_eq!(e.to_string(), refused, "{default}");
        }
        let file = Path::new("app.rb");
        for origin in [DirOrigin::CommandLine, DirOrigin::File(file, 1)] {
            assert!(check_dir(Path::new("/"), origin).is_ok());
        }
        assert!(check_dir(Path::new("/tmp"), DirOrigin::Default).is_ok());
        // The file's `directory` and the DIR argument name it on purpose.
        assert_eq!(run(&["/"]).dir, PathBuf::from("/"));
        assert_eq!(
            with_file("directory \"/\"\n", &[]).unwrap().dir,
            PathBuf::from("/")
        );
    }

    #[test]
    fn non_utf8_paths_are_fine() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = TempDir::new();
        let name = OsStr::from_bytes(b"caf\xe9");
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        let args = vec![
            OsString::from("--pidfile"),
            dir.join("pid").into_os_string(),
            dir.clone().into_os_string(),
        ];
        let Ok(Command::Run(c)) = parse_args(args) else {
            panic!("non-UTF-8 DIR and pidfile should be accepted");
        };
        assert_eq!(c.dir, dir);
        assert_eq!(c.pidfile, Some(dir.join("pid")));
        let e = parse_args(vec![OsString::from("--tag"), name.to_os_string()]).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("--tag with a value that is not UTF-8"));
    }

    #[test]
    fn every_directive() {
        let tmp = TempDir::new();
        let www = tmp.subdir("www");
        let text = format!(
            r#"# A catamount config.

bind "tcp://127.0.0.1:9000"   # trailing comment
bind 'unix:///run/app.sock'
port 9001
port 9002, "::1"
threads 2, 32
directory "{}"
environment "staging"
tag "app # not a comment"
pidfile "/run/app.pid"
first_data_timeout 0.5
persistent_timeout 20
shutdown_timeout 3
max_keep_alive 50
max_body 1_048_576
log_requests true
quiet
dir_listing true
serve_dotfiles false
cache_control "public, max-age=60"
"#,
            www.display()
        );
        let c = with_file(&text, &[]).unwrap();
        assert_eq!(
            c.binds,
            vec![
                tcp("127.0.0.1", 9000),
                BindSpec::parse("unix:///run/app.sock").unwrap(),
                tcp("0.0.0.0", 9001),
                tcp("[::1]", 9002),
            ]
        );
        assert_eq!((c.min_threads, c.max_threads), (2, 32));
        assert_eq!(c.dir, www);
        assert_eq!(c.environment, "staging");
        assert_eq!(c.tag.as_deref(), Some("app # not a comment"));
        assert_eq!(c.pidfile, Some(PathBuf::from("/run/app.pid")));
        assert_eq!(c.first_data_timeout, Duration::from_millis(500));
        assert_eq!(c.persistent_timeout, Duration::from_secs(20));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(c.max_keep_alive, 50);
        assert_eq!(c.max_body, 1_048_576);
        assert!(c.log_requests && c.quiet && c.dir_listing && !c.serve_dotfiles);
        assert_eq!(c.cache_control.as_deref(), Some("public, max-age=60"));
        assert_eq!(c.cli, Overrides::default());
    }

    #[test]
    fn file_syntax_variants() {
        let c = with_file(
            "\u{feff}threads 0,16\r\n\
             \t  environment(\"a \\\"b\\\" \\\\ c\")  \r\n\
             tag 'it\\'s \\n'\n\
             log_requests(true)\n\
             quiet false # off\n\
             max_keep_alive 1_000\n\
             persistent_timeout 1_0.5\n\
             tag \"last wins\"\n",
            &[],
        )
        .unwrap();
        assert_eq!((c.min_threads, c.max_threads), (0, 16));
        assert_eq!(c.environment, "a \"b\" \\ c");
        assert_eq!(c.tag.as_deref(), Some("last wins"));
        assert!(c.log_requests && !c.quiet);
        assert_eq!(c.max_keep_alive, 1000);
        assert_eq!(c.persistent_timeout, Duration::from_millis(10_500));
        let c = with_file("tag 'it\\'s \\n'", &[]).unwrap();
        assert_eq!(c.tag.as_deref(), Some("it's \\n"));
    }

    #[test]
    fn command_line_overrides_file() {
        let tmp = TempDir::new();
        let file_dir = tmp.subdir("from-file");
        let cli_dir = tmp.subdir("from-cli");
        let text = format!(
            "bind \"tcp://127.0.0.1:9000\"\nthreads 1, 2\ndirectory \"{}\"\n\
             log_requests false\nmax_body 5\nenvironment \"file\"\n",
            file_dir.display()
        );
        let c = with_file(
            &text,
            &[
                "-b",
                "tcp://127.0.0.1:9999",
                "-t",
                "3:4",
                "--log-requests",
                cli_dir.to_str().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(c.binds, vec![tcp("127.0.0.1", 9999)]);
        assert_eq!((c.min_threads, c.max_threads), (3, 4));
        assert_eq!(c.dir, cli_dir);
        assert!(c.log_requests);
        // What the command line does not say, the file does.
        assert_eq!(c.max_body, 5);
        assert_eq!(c.environment, "file");
        // The file's binds stand when the command line gives none.
        assert_eq!(
            with_file(&text, &[]).unwrap().binds,
            vec![tcp("127.0.0.1", 9000)]
        );
    }

    #[test]
    fn file_errors_name_file_and_line() {
        assert_eq!(
            file_error("# comment\n\ntreads 0, 16\n"),
            "app.rb:3: unknown directive \"treads\" (did you mean threads?)"
        );
        // Short, as `systemctl status` shows it: no list of every directive.
        assert_eq!(
            file_error("frobnicate 1\n"),
            "app.rb:1: unknown directive \"frobnicate\"; see CONFIG FILE in catamount --help \
             for the directives"
        );
        assert_eq!(
            file_error("bind \"tcp://127.0.0.1:1\"\n\n\nthreads a, 5\n"),
            "app.rb:4: threads a, 5; expected two integers MIN, MAX with MIN <= MAX and \
             1 <= MAX <= 4096, as in threads 0, 16"
        );
        assert_eq!(
            file_error("threads 5, 2"),
            "app.rb:1: threads 5, 2; expected two integers MIN, MAX with MIN <= MAX and \
             1 <= MAX <= 4096, as in threads 0, 16"
        );
        assert_eq!(
            file_error("tag \"app\"\nbind \"tcp://0.0.0.0:9292  # oops\n"),
            "app.rb:2: unterminated string \"tcp://0.0.0.0:9292  # oops; expected a closing \" \
             on the same line"
        );
        assert_eq!(
            file_error("\nfork_worker 1000\n"),
            "app.rb:2: directive \"fork_worker\" is not supported yet (workers are forked from \
             the main process only); expected the line removed"
        );
        assert_eq!(
            file_error("ssl_bind \"0.0.0.0\", \"443\", { cert: \"c\", key: \"k\" }\n"),
            "app.rb:1: directive \"ssl_bind\" is Puma's, not catamount's; write an ssl:// \
             bind instead, as in bind \"ssl://0.0.0.0:443?cert=PATH&key=PATH\" (see TLS in \
             catamount --help)"
        );
        assert_eq!(
            file_error("bind \"ssl://0.0.0.0:443\"\n"),
            "app.rb:1: bind \"ssl://0.0.0.0:443\": ssl:// bind needs cert=PATH, a PEM file with the server certificate"
        );
        assert_eq!(
            file_error("bind \"tcp://0.0.0.0:9292\"\nbind \"tcp://[::1]:1\"\nport 9292\n"),
            "app.rb:3: bind \"tcp://0.0.0.0:9292\" repeats the bind of line 1; \
             expected each listener once"
        );
        assert_eq!(
            file_error("environment production"),
            "app.rb:1: environment production; expected a quoted name without control \
             characters, as in environment \"production\""
        );
        assert_eq!(
            file_error("bind"),
            "app.rb:1: bind without a value; expected one quoted URI, as in \
             bind \"tcp://0.0.0.0:9292\""
        );
    }

    #[test]
    fn every_not_yet_directive_is_refused() {
        for (name, _) in NOT_YET_DIRECTIVES {
            let e = file_error(&format!("{name} 1\n"));
            assert!(
                e.starts_with(&format!(
                    "app.rb:1: directive {name:?} is not supported yet ("
                )),
                "{e}"
            );
        }
        // The name is judged before the (Ruby) value.
        assert!(file_error("fork_worker ENV.fetch(\"N\") { 2 }").contains("not supported yet"));
        assert_eq!(
            file_error("on_worker_boot do"),
            "app.rb:1: directive \"on_worker_boot\" is Puma's, not catamount's; Ruby hooks \
             have no equivalent in catamount; remove the hook and its block"
        );
        for (name, what) in PUMA_ONLY_DIRECTIVES {
            let e = file_error(&format!("{name} do |x|\n  x\nend\n"));
            assert_eq!(
                e,
                format!("app.rb:1: directive {name:?} is Puma's, not catamount's; {what}")
            );
        }
        // A Ruby value for a supported directive is a syntax error.
        assert_eq!(
            file_error("workers ENV.fetch(\"N\") { 2 }"),
            "app.rb:1: workers ENV.fetch(\"N\") { 2 }; expected literal values separated by \
             commas, as in threads 0, 16"
        );
        assert_eq!(
            file_error("force_shutdown_after 5"),
            "app.rb:1: directive \"force_shutdown_after\" is Puma's, not catamount's; \
             use shutdown_timeout SECS"
        );
    }

    #[test]
    fn bad_file_values() {
        let cases = [
            (
                "bind tcp://0.0.0.0:1",
                "bind tcp://0.0.0.0:1; expected one quoted URI",
            ),
            (
                "bind \"a\", \"b\"",
                "bind \"a\", \"b\"; expected one quoted URI",
            ),
            ("port 99999", "port 99999; expected a port"),
            ("port \"80\"", "port \"80\"; expected a port"),
            ("threads 4", "threads 4; expected two integers"),
            (
                "threads 0, 16, 32",
                "threads 0, 16, 32; expected two integers",
            ),
            (
                "threads 0 16",
                "threads 0 16; expected literal values separated by commas",
            ),
            (
                "threads 0,",
                "threads 0,; expected literal values separated by commas",
            ),
            (
                "threads (0, 16",
                "threads (0, 16; expected literal values separated by commas",
            ),
            (
                "threads 1__0, 16",
                "threads 1__0, 16; expected two integers",
            ),
            (
                "directory \"\"",
                "directory \"\"; expected a quoted directory",
            ),
            (
                "first_data_timeout 0",
                "first_data_timeout 0; expected a number of seconds",
            ),
            (
                "persistent_timeout -1",
                "persistent_timeout -1; expected a number of seconds",
            ),
            (
                "shutdown_timeout NaN",
                "shutdown_timeout NaN; expected a number of seconds",
            ),
            (
                "shutdown_timeout \"5\"",
                "shutdown_timeout \"5\"; expected a number of seconds",
            ),
            (
                "max_keep_alive 0",
                "max_keep_alive 0; expected a whole number from 1",
            ),
            (
                "max_body 1.5",
                "max_body 1.5; expected a whole number of bytes",
            ),
            (
                "log_requests yes",
                "log_requests yes; expected true or false, as in log_requests true",
            ),
            (
                "cache_control \"a\tb\x01\"",
                "cache_control \"a\tb\x01\"; expected a quoted value",
            ),
            (
                "tag \"a\\nb\"",
                "escape \\n in string \"a\\nb\"; expected only \\\" or \\\\",
            ),
            (
                "tag \"#{x}\"",
                "interpolation #{...} in string \"#{x}\"; expected a literal string",
            ),
            (
                "threads=5",
                "\"threads=5\"; expected a directive followed by its values",
            ),
            (
                "\"bind\"",
                "\"\\\"bind\\\"\"; expected a directive followed by its values",
            ),
        ];
        for (line, want) in cases {
            let e = file_error(&format!("# first\n{line}  # comment\n"));
            assert!(
                e.starts_with(&format!("app.rb:2: {want}")),
                "{line:?} gave {e}"
            );
        }
    }

    #[test]
    fn directory_in_file_is_checked_with_its_line() {
        let e = file_error("tag \"x\"\ndirectory \"/no/such/catamount/dir\"\n");
        assert!(
            e.starts_with("app.rb:2: directory \"/no/such/catamount/dir\" does not exist;"),
            "{e}"
        );
        // A DIR argument replaces it, so the file's one is not checked.
        let tmp = TempDir::new();
        let c = with_file(
            "directory \"/no/such/catamount/dir\"\n",
            &[tmp.path().to_str().unwrap()],
        )
        .unwrap();
        assert_eq!(c.dir, tmp.path());
    }

    #[test]
    fn unreadable_files() {
        let tmp = TempDir::new();
        let missing = tmp.path().join("missing.rb");
        let e = error(&["-C", missing.to_str().unwrap()]);
        assert_eq!(
            e,
            format!(
                "cannot read config file {missing:?}: No such file or directory (os error 2); \
                 check the path given to -C/--config"
            )
        );
        let e = error(&["-C", tmp.path().to_str().unwrap()]);
        assert!(e.contains("Is a directory (os error 21)"), "{e}");

        let big = tmp.file("big.rb", &"#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1));
        assert!(error(&["-C", big.to_str().unwrap()]).contains("is larger than 1048576 bytes"));

        let latin1 = tmp.path().join("latin1.rb");
        fs::write(&latin1, b"tag \"a\"\ntag \"caf\xe9\"\n").unwrap();
        assert_eq!(
            error(&["-C", latin1.to_str().unwrap()]),
            format!(
                "{}:2: bytes that are not UTF-8; expected UTF-8 text",
                latin1.display()
            )
        );
    }

    #[test]
    fn reload_rereads_the_file_and_keeps_the_command_line() {
        let tmp = TempDir::new();
        let file = tmp.file(
            "app.rb",
            "threads 1, 2\nmax_body 10\nbind \"tcp://127.0.0.1:9000\"\n",
        );
        let path = file.to_str().unwrap();
        let first = run(&["-C", path, "--max-body", "99", "--quiet"]);
        assert_eq!((first.max_threads, first.max_body), (2, 99));
        assert_eq!(reload(&first).unwrap(), first);

        fs::write(&file, "threads 3, 4\nmax_body 20\nquiet false\nport 9100\n").unwrap();
        let second = reload(&first).unwrap();
        assert_eq!((second.min_threads, second.max_threads), (3, 4));
        assert_eq!(second.binds, vec![tcp("0.0.0.0", 9100)]);
        assert_eq!(second.max_body, 99, "the command line still wins");
        assert!(second.quiet, "the command line still wins");
        assert_eq!(second.cli, first.cli);

        fs::write(&file, "threads 9, 1\n").unwrap();
        assert!(reload(&second).unwrap_err().to_string().ends_with(":1: threads 9, 1; \
             expected two integers MIN, MAX with MIN <= MAX and 1 <= MAX <= 4096, as in threads 0, 16"));

        // Without a file, reload rebuilds the same config.
        let plain = run(&["-t", "2"]);
        assert_eq!(reload(&plain).unwrap(), plain);
    }

    #[test]
    fn load_file_applies_no_command_line() {
        let tmp = TempDir::new();
        let file = tmp.file("app.rb", "threads 1, 7\n");
        let c = load_file(&file).unwrap();
        assert_eq!((c.min_threads, c.max_threads), (1, 7));
        assert_eq!(c.config_file, Some(file));
    }

    #[test]
    fn help_lists_every_option_directive_and_default() {
        let text = help();
        for o in OPTIONS
            .iter()
            .filter(|o| !matches!(o.kind, OptionKind::Instead(_)))
        {
            assert!(text.contains(o.long), "help misses {}", o.long);
            assert!(
                o.short.is_empty() || text.contains(o.short),
                "help misses {}",
                o.short
            );
        }
        for d in DIRECTIVES {
            assert!(
                text.contains(&format!("\n        {d} ")),
                "help misses directive {d}"
            );
        }
        for (d, _) in NOT_YET_DIRECTIVES {
            assert!(text.contains(d), "help misses {d}");
        }
        // Everything that works is documented: TLS binds and their
        // options, the ctl client and its commands, signals, exit codes.
        for needle in [
            "ssl://HOST:PORT?cert=PATH&key=PATH",
            "fd://NAME or fd://N[?cert=PATH&key=PATH...]",
            "\nTLS\n",
            "cert=PATH",
            "key=PATH",
            "ca=PATH",
            "verify_mode=MODE",
            "none:",
            "peer:",
            "force_peer:",
            "min_version=VERSION",
            "TLSv1.2 or TLSv1.3",
            "ssl_bind",
            "\nCONTROL CLIENT\n",
            "catamount ctl [--control-url URL] [--control-token TOKEN | -S FILE]",
            "\nSIGNALS\n",
            "\n    TERM, INT ",
            "\n    USR2 ",
            "\n    HUP ",
            "\n    USR1 ",
            "\n    TTIN, TTOU ",
            "\nEXIT STATUS\n",
            "\n    0   ",
            "\n    1   ",
            "\n    2   ",
        ] {
            assert!(text.contains(needle), "help misses {needle:?}");
        }
        for param in crate::tls::KNOWN_PARAMS.split(", ") {
            assert!(
                text.contains(&format!("\n        {param}=")),
                "help misses ssl:// option {param}="
            );
        }
        for command in crate::control::CTL_COMMANDS {
            assert!(
                text.contains(&format!("\n            {command} ")),
                "help misses ctl {command}"
            );
        }
        for default in [
            format!("[default: {DEFAULT_BIND}]"),
            format!("[default: {DEFAULT_MIN_THREADS}:{DEFAULT_MAX_THREADS}]"),
            format!("[default: {DEFAULT_ENVIRONMENT}]"),
            format!("[default: {}]", DEFAULT_FIRST_DATA_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_BODY_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_WRITE_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_PERSISTENT_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_SHUTDOWN_TIMEOUT.as_secs()),
            format!("[default: {DEFAULT_MAX_KEEP_ALIVE}]"),
            format!("[default: {DEFAULT_MAX_BODY}]"),
            format!("[default: {DEFAULT_WORKERS}]"),
            format!("[default: {}]", DEFAULT_WORKER_TIMEOUT.as_secs()),
            format!("<= N <= {MAX_WORKERS}"),
            format!("<= MIB <= {MAX_WORKER_MAX_RSS_MIB}"),
            "\nSYSTEMD\n".to_string(),
            "\nCLUSTER\n".to_string(),
            format!("<= {MAX_THREADS_LIMIT}"),
            format!("at most {}", MAX_TIMEOUT.as_secs()),
        ] {
            assert!(text.contains(&default), "help misses {default}");
        }
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "help line over 80 columns: {line:?}"
            );
        }
    }

    #[test]
    fn tables_are_consistent() {
        assert!(BindSpec::parse(DEFAULT_BIND).is_ok());
        for o in OPTIONS {
            assert!(o.long.starts_with("--"));
            assert!(o.short.is_empty() || (o.short.len() == 2 && o.short.starts_with('-')));
            assert_eq!(option(o.long).long, o.long);
            assert_eq!(
                OPTIONS
                    .iter()
                    .filter(|p| p.long == o.long || (!o.short.is_empty() && p.short == o.short))
                    .count(),
                1,
                "{} is in OPTIONS twice",
                o.long
            );
            if let OptionKind::Alias(of) = o.kind {
                assert!(
                    matches!(option(of).kind, OptionKind::Value { .. } | OptionKind::Flag),
                    "{} is an alias of {of}, which takes no value of its own",
                    o.long
                );
            }
        }
        for d in DIRECTIVES {
            assert!(check_directive_name(d).is_ok());
        }
        for (name, _) in NOT_YET_DIRECTIVES.iter().chain(PUMA_ONLY_DIRECTIVES) {
            assert!(!DIRECTIVES.contains(name));
        }
        assert!(parse_control_url(DEFAULT_BIND).is_err());
    }

    #[test]
    fn activated_sockets_on_the_command_line() {
        let mode = |args: &[&str]| run(args).activated;
        assert_eq!(mode(&[]), ActivatedMode::Off);
        assert_eq!(mode(&["--bind-to-activated-sockets"]), ActivatedMode::On);
        assert_eq!(
            mode(&["--bind-to-activated-sockets=true"]),
            ActivatedMode::On
        );
        assert_eq!(
            mode(&["--bind-to-activated-sockets=only"]),
            ActivatedMode::Only
        );
        assert_eq!(
            mode(&[
                "--bind-to-activated-sockets=only",
                "--bind-to-activated-sockets=false"
            ]),
            ActivatedMode::Off
        );
        assert_eq!(
            mode(&[
                "--bind-to-activated-sockets=false",
                "--bind-to-activated-sockets"
            ]),
            ActivatedMode::On
        );
        for bad in ["yes", "", "ONLY", "--quiet"] {
            let e = error(&[&format!("--bind-to-activated-sockets={bad}")]);
            let want = if bad == "--quiet" {
                "option --bind-to-activated-sockets is followed by option --quiet, not by a \
                 value; expected true, false or only"
                    .to_string()
            } else {
                format!(
                    "--bind-to-activated-sockets {bad:?}; expected true, false or only, as in \
                     --bind-to-activated-sockets=only (the option alone means true)"
                )
            };
            assert!(e.starts_with(&want), "{e}");
        }
        // The option alone never takes the next argument: here "only" is
        // the DIR, and the error says how to give the option its value.
        for word in ["only", "true", "false"] {
            assert_eq!(
                error(&["--bind-to-activated-sockets", word]),
                format!(
                    "DIR \"{word}\": no such directory to serve; to set \
                     --bind-to-activated-sockets, write --bind-to-activated-sockets={word} \
                     (its value follows \"=\"; the option alone means true)"
                )
            );
        }
        let tmp = TempDir::new();
        let c = run(&["--bind-to-activated-sockets", tmp.path().to_str().unwrap()]);
        assert_eq!(
            (c.activated, c.dir.as_path()),
            (ActivatedMode::On, tmp.path())
        );
        assert!(run(&["--fd-store", "--fd-store"]).fd_store);
        assert!(error(&["--fd-store=true"]).contains("option --fd-store takes no value"));
    }

    #[test]
    fn activated_sockets_and_fd_store_in_the_file() {
        let mode = |text: &str| with_file(text, &[]).unwrap().activated;
        assert_eq!(mode("bind_to_activated_sockets"), ActivatedMode::On);
        assert_eq!(mode("bind_to_activated_sockets true"), ActivatedMode::On);
        assert_eq!(mode("bind_to_activated_sockets false"), ActivatedMode::Off);
        assert_eq!(
            mode("bind_to_activated_sockets \"only\""),
            ActivatedMode::Only
        );
        assert_eq!(
            mode("bind_to_activated_sockets('only')"),
            ActivatedMode::Only
        );
        for bad in ["only", "\"true\"", "\"on\"", "1", "true, true"] {
            assert_eq!(
                file_error(&format!("quiet\nbind_to_activated_sockets {bad}\n")),
                format!(
                    "app.rb:2: bind_to_activated_sockets {bad}; expected true, false or \
                     \"only\", as in bind_to_activated_sockets \"only\""
                )
            );
        }
        assert!(with_file("fd_store", &[]).unwrap().fd_store);
        assert!(with_file("fd_store true", &[]).unwrap().fd_store);
        assert!(
            !with_file("fd_store true\nfd_store false", &[])
                .unwrap()
                .fd_store
        );
        assert_eq!(
            file_error("fd_store yes"),
            "app.rb:1: fd_store yes; expected true or false, as in fd_store true"
        );
        // The command line wins over the file.
        let c = with_file(
            "bind_to_activated_sockets \"only\"\nfd_store false\n",
            &["--bind-to-activated-sockets=false", "--fd-store"],
        )
        .unwrap();
        assert_eq!((c.activated, c.fd_store), (ActivatedMode::Off, true));
    }

    #[test]
    fn fd_binds() {
        let c = run(&[
            "-b",
            "fd://3",
            "--bind",
            "fd://web",
            "-b",
            "tcp://127.0.0.1:1",
        ]);
        assert_eq!(
            c.binds,
            vec![
                BindSpec::Fd {
                    name: "3".into(),
                    tls: None
                },
                BindSpec::Fd {
                    name: "web".into(),
                    tls: None
                },
                tcp("127.0.0.1", 1),
            ]
        );
        assert_eq!(
            error(&["-b", "fd://web", "-b", "fd://web"]),
            "--bind \"fd://web\" is given twice; expected each listener once"
        );
        assert!(error(&["-b", "fd://"]).starts_with("--bind \"fd://\": expected fd://NAME"));
        assert!(error(&["-b", "fd://3?backlog=5"]).starts_with("--bind \"fd://3?backlog=5\":"));
        let c = with_file("bind \"fd://web\"\nbind 'fd://3'\n", &[]).unwrap();
        assert_eq!(
            c.binds,
            vec![
                BindSpec::Fd {
                    name: "web".into(),
                    tls: None
                },
                BindSpec::Fd {
                    name: "3".into(),
                    tls: None
                }
            ]
        );
        assert_eq!(
            file_error("bind \"fd://3\"\nport 1\nbind \"fd://3\"\n"),
            "app.rb:3: bind \"fd://3\" repeats the bind of line 1; expected each listener once"
        );
    }

    #[test]
    fn workers_and_preload() {
        assert_eq!(run(&["-w", "4"]).workers, 4);
        assert_eq!(run(&["-w4"]).workers, 4);
        assert_eq!(run(&["--workers=0"]).workers, 0);
        assert_eq!(run(&["--workers", "256"]).workers, MAX_WORKERS);
        for bad in ["257", "-1", "", "two", "1.5"] {
            assert_eq!(
                error(&["--workers", bad]),
                format!(
                    "--workers {bad:?}; expected a whole number from 0 to 256 (0 is single \
                     mode), as in --workers 4"
                )
            );
        }
        assert!(run(&["--preload"]).preload);
        assert!(error(&["--preload=false"]).contains("takes no value"));

        let c = with_file("workers 1_6\npreload_app!\n", &[]).unwrap();
        assert_eq!((c.workers, c.preload), (16, true));
        assert!(with_file("preload_app! true", &[]).unwrap().preload);
        assert!(with_file("preload_app!(true)", &[]).unwrap().preload);
        assert!(
            !with_file("preload_app!\npreload_app! false", &[])
                .unwrap()
                .preload
        );
        assert_eq!(
            file_error("\nworkers 257"),
            "app.rb:2: workers 257; expected a whole number from 0 to 256 (0 is single mode), \
             as in workers 4"
        );
        assert_eq!(
            file_error("workers \"4\""),
            "app.rb:1: workers \"4\"; expected a whole number from 0 to 256 (0 is single \
             mode), as in workers 4"
        );
        assert_eq!(
            file_error("preload_app! 1"),
            "app.rb:1: preload_app! 1; expected true or false, as in preload_app! true"
        );
        assert!(file_error("preload_app").starts_with(
            "app.rb:1: unknown directive \"preload_app\" (did you mean preload_app!?)"
        ));
        // The command line wins.
        let c = with_file("workers 8\n", &["-w", "2"]).unwrap();
        assert_eq!(c.workers, 2);
    }

    #[test]
    fn worker_timeouts_and_the_shutdown_alias() {
        let c = run(&["--worker-timeout", "5", "--worker-boot-timeout=0.5"]);
        assert_eq!(c.worker_timeout, Duration::from_secs(5));
        assert_eq!(c.worker_boot_timeout, Duration::from_millis(500));
        for opt in ["--worker-timeout", "--worker-boot-timeout"] {
            assert_eq!(
                error(&[opt, "0"]),
                format!(
                    "{opt} \"0\"; expected a number of seconds above 0 and at most 86400, as \
                     in 30 or 0.5"
                )
            );
        }
        // Either name sets the one setting; the last given wins.
        let shutdown = |args: &[&str]| run(args).shutdown_timeout;
        assert_eq!(
            shutdown(&["--worker-shutdown-timeout", "7"]),
            Duration::from_secs(7)
        );
        assert_eq!(
            shutdown(&["--shutdown-timeout", "5", "--worker-shutdown-timeout=7"]),
            Duration::from_secs(7)
        );
        assert_eq!(
            shutdown(&["--worker-shutdown-timeout", "7", "--shutdown-timeout", "5"]),
            Duration::from_secs(5)
        );
        // A bad value is reported under the canonical name.
        assert!(error(&["--worker-shutdown-timeout", "x"])
            .starts_with("--shutdown-timeout \"x\"; expected a number of seconds"));
        assert!(error(&["--worker-shutdown-timeout"]).starts_with(
            "option --worker-shutdown-timeout is missing its value; expected a number"
        ));

        let c = with_file(
            "worker_timeout 1_0\nworker_boot_timeout 0.25\nshutdown_timeout 3\n\
             worker_shutdown_timeout 9\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.worker_timeout, Duration::from_secs(10));
        assert_eq!(c.worker_boot_timeout, Duration::from_millis(250));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(9));
        let c = with_file("worker_shutdown_timeout 9\nshutdown_timeout 3\n", &[]).unwrap();
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
        for name in [
            "worker_timeout",
            "worker_boot_timeout",
            "worker_shutdown_timeout",
        ] {
            assert_eq!(
                file_error(&format!("tag \"x\"\n{name} 86401\n")),
                format!(
                    "app.rb:2: {name} 86401; expected a number of seconds above 0 and at most \
                     86400, as in 30 or 0.5, as in {name} 30"
                )
            );
        }
        let c = with_file(
            "worker_timeout 10\nworker_shutdown_timeout 9\n",
            &["--worker-timeout", "11", "--shutdown-timeout", "12"],
        )
        .unwrap();
        assert_eq!(c.worker_timeout, Duration::from_secs(11));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(12));
    }

    #[test]
    fn worker_limits() {
        let c = run(&["--max-requests", "1", "--worker-max-rss", "16777216"]);
        assert_eq!(c.max_requests, Some(1));
        assert_eq!(c.worker_max_rss, Some(MAX_WORKER_MAX_RSS_MIB));
        assert_eq!(
            run(&["--max-requests", "18446744073709551615"]).max_requests,
            Some(u64::MAX)
        );
        for bad in ["0", "-1", "1e3", "18446744073709551616", " 1"] {
            assert!(
                error(&["--max-requests", bad]).starts_with(&format!(
                    "--max-requests {bad:?}; expected a whole number from 1 to \
                     18446744073709551615, or \"\" for no limit"
                )),
                "{bad}"
            );
        }
        for bad in ["0", "16777217", "512M"] {
            assert!(
                error(&["--worker-max-rss", bad]).starts_with(&format!(
                    "--worker-max-rss {bad:?}; expected a whole number of MiB from 1 to 16777216"
                )),
                "{bad}"
            );
        }

        let c = with_file("max_requests 10_000\nworker_max_rss 512\n", &[]).unwrap();
        assert_eq!(
            (c.max_requests, c.worker_max_rss),
            (Some(10_000), Some(512))
        );
        assert_eq!(
            file_error("max_requests 0"),
            "app.rb:1: max_requests 0; expected a whole number from 1 to \
             18446744073709551615, as in max_requests 10_000"
        );
        assert_eq!(
            file_error("\nworker_max_rss 16_777_217"),
            "app.rb:2: worker_max_rss 16_777_217; expected a whole number from 1 to \
             16777216, as in worker_max_rss 512"
        );
        assert!(file_error("max_requests \"5\"").starts_with("app.rb:1: max_requests \"5\";"));
        // The command line overrides, or turns the limit off with "".
        let text = "max_requests 100\nworker_max_rss 64\n";
        let c = with_file(text, &["--max-requests", "5"]).unwrap();
        assert_eq!((c.max_requests, c.worker_max_rss), (Some(5), Some(64)));
        let c = with_file(text, &["--max-requests=", "--worker-max-rss", ""]).unwrap();
        assert_eq!((c.max_requests, c.worker_max_rss), (None, None));
    }

    #[test]
    fn control_url_on_the_command_line() {
        let url = |uri: &str| run(&["--control-url", uri, "--control-token", "t"]).control_url;
        assert_eq!(url("unix:///run/ctl.sock"), Some(unix("/run/ctl.sock")));
        assert_eq!(
            url("unix:///run/ctl.sock?mode=0600"),
            BindSpec::parse("unix:///run/ctl.sock?mode=0600").ok()
        );
        for host in ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"] {
            let uri = format!("tcp://{host}:9293");
            assert_eq!(url(&uri), BindSpec::parse(&uri).ok(), "{uri}");
        }
        for (host, shown) in [
            ("0.0.0.0", "0.0.0.0"),
            ("10.0.0.1", "10.0.0.1"),
            ("[::]", "::"),
            ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
            ("example.com", "example.com"),
        ] {
            let uri = format!("tcp://{host}:9293");
            assert_eq!(
                error(&["--control-url", &uri, "--control-token", "t"]),
                format!(
                    "--control-url {uri:?}: host {shown:?} is not a loopback address; \
                     expected 127.0.0.1, [::1] or localhost, since the control app can stop \
                     the server"
                )
            );
        }
        assert_eq!(
            error(&["--control-url", "fd://3"]),
            "--control-url \"fd://3\": expected unix:///PATH or tcp://HOST:PORT; the control \
             app listens on a socket of its own"
        );
        assert_eq!(
            error(&["--control-url", "ssl://127.0.0.1:1"]),
            "--control-url \"ssl://127.0.0.1:1\": ssl:// bind needs cert=PATH, a PEM file with the server certificate"
        );
        assert_eq!(
            error(&["--control-url", "auto"]),
            "--control-url \"auto\": expected tcp://HOST:PORT or unix:///ABSOLUTE/PATH"
        );
        assert_eq!(
            error(&["--control-url", "unix:///run/ctl.sock"]),
            "control URL \"unix:///run/ctl.sock\" has no token; expected a token \
             (--control-token TOKEN, control_token \"TOKEN\", or activate_control_app \"URI\", \
             { auth_token: \"TOKEN\" }), or { no_token: true } to let anyone who can connect \
             control the server"
        );
        assert_eq!(
            error(&[
                "-b",
                "unix:///run/ctl.sock",
                "--control-url",
                "unix:///run/ctl.sock?mode=0600",
                "--control-token",
                "t"
            ]),
            "control URL \"unix:///run/ctl.sock\" is also a bind; expected a listener of its \
             own for the control app"
        );
        // A token without a URL is harmless, and kept.
        let c = run(&["--control-token", "t"]);
        assert_eq!(
            (c.control_url, c.control_token.as_deref()),
            (None, Some("t"))
        );
    }

    #[test]
    fn control_tokens_are_checked_and_never_echoed() {
        for bad in ["", "two words", "tab\there", "caf\u{e9}", "nl\n"] {
            let e = error(&["--control-token", bad]);
            assert_eq!(
                e,
                "--control-token (value not shown, as it may be a token); expected a non-empty \
                 token of visible ASCII (no spaces), as in --control-token s3cr3t"
            );
        }
        let e = parse_args(vec![
            OsString::from("--control-token"),
            OsStr::from_bytes(b"s3cr\xe9t").to_os_string(),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--control-token (value not shown"), "{e}");
        assert_eq!(
            run(&["--control-token=!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"])
                .control_token
                .as_deref(),
            Some("!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
        );
        for line in [
            "control_token \"hunter2 secret\"",
            "control_token hunter2",
            "control_token \"hunter2",
            "control_token \"hunter2\\n\"",
            "control_token \"hunter2#{x}\"",
            "control_token \"hunter2\" \"x\"",
            "activate_control_app \"unix:///c\", auth_token: \"hunter2\", \"x\"",
            "activate_control_app \"unix:///c\", { auth_token: \"hunter2",
            "activate_control_app \"unix:///c\", { auth_token: \"hunter2 secret\" }",
            "activate_control_app \"unix:///c\", { auth_token: hunter2 }",
            "activate_control_app \"unix:///c\", \"hunter2\"",
            "activate_control_app \"hunter2\", \"hunter2\"",
        ] {
            let e = file_error(line);
            assert!(!e.contains("hunter2"), "{line:?} gave {e}");
            assert!(e.contains("(value not shown, as it may be a token)"), "{e}");
        }
    }

    #[test]
    fn control_app_in_the_file() {
        let control = |text: &str| {
            let c = with_file(text, &[]).unwrap();
            (c.control_url.map(|u| u.to_string()), c.control_token)
        };
        let want = |token: Option<&str>| {
            (
                Some("unix:///run/ctl.sock".to_string()),
                token.map(str::to_string),
            )
        };
        for text in [
            "activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"t\" }",
            "activate_control_app 'unix:///run/ctl.sock', {auth_token: 't'}",
            "activate_control_app \"unix:///run/ctl.sock\", auth_token: \"t\"",
            "activate_control_app(\"unix:///run/ctl.sock\", auth_token: \"t\")",
            "activate_control_app \"unix:///run/ctl.sock\", { :auth_token => \"t\" }",
            "activate_control_app \"unix:///run/ctl.sock\", {:auth_token=>\"t\"}",
            "activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"t\", no_token: false }",
            "activate_control_app \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
            "control_token \"t\"\nactivate_control_app \"unix:///run/ctl.sock\"",
            "control_url \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
            "control_token \"old\"\ncontrol_url \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
        ] {
            assert_eq!(control(text), want(Some("t")), "{text}");
        }
        for text in [
            "activate_control_app \"unix:///run/ctl.sock\", { no_token: true }",
            "activate_control_app \"unix:///run/ctl.sock\", no_token: true",
            // A later no_token: true drops an earlier token.
            "control_token \"t\"\nactivate_control_app \"unix:///run/ctl.sock\", no_token: true",
        ] {
            assert_eq!(control(text), want(None), "{text}");
        }
        // control_url "" turns it off again.
        assert_eq!(
            control("control_url \"unix:///run/ctl.sock\"\ncontrol_url \"\"\n"),
            (None, None)
        );
        let c = with_file("state_path \"/run/app.state\"", &[]).unwrap();
        assert_eq!(c.state_path, Some(PathBuf::from("/run/app.state")));
        assert_eq!(with_file("state_path \"\"", &[]).unwrap().state_path, None);
    }

    #[test]
    fn control_app_file_errors() {
        let expect = "expected a quoted URI and optional { auth_token: \"TOKEN\" } or \
                      { no_token: true }, as in activate_control_app \
                      \"unix:///run/app-control.sock\", { auth_token: \"s3cr3t\" }";
        for line in [
            "activate_control_app",
            "activate_control_app unix:///c",
            "activate_control_app \"unix:///c\", { auth_token: \"t\" }, 1",
            "activate_control_app \"unix:///c\", \"t\"",
        ] {
            assert_eq!(
                file_error(&format!("tag \"x\"\n{line}\n")),
                format!(
                    "app.rb:2: activate_control_app (value not shown, as it may be a token); \
                     {expect}"
                ),
                "{line:?}"
            );
        }
        for line in [
            "activate_control_app \"unix:///c\", auth_token: \"t\", \"x\"",
            "activate_control_app \"unix:///c\", { auth_token: { x: 1 } }",
            "activate_control_app \"unix:///c\", { auth_token: \"t\", }",
        ] {
            assert_eq!(
                file_error(line),
                "app.rb:1: activate_control_app (value not shown, as it may be a token); \
                 expected literal values separated by commas, as in threads 0, 16",
                "{line:?}"
            );
        }
        assert_eq!(
            file_error("control_token \"a\\n\""),
            "app.rb:1: control_token (value not shown, as it may be a token); expected strings \
             closed on the same line, with no escape but \\\" and \\\\ and no #{...}"
        );
        assert_eq!(
            file_error("activate_control_app \"tcp://0.0.0.0:9293\", { auth_token: \"t\" }"),
            "app.rb:1: activate_control_app \"tcp://0.0.0.0:9293\": host \"0.0.0.0\" is not a \
             loopback address; expected 127.0.0.1, [::1] or localhost, since the control app \
             can stop the server"
        );
        assert_eq!(
            file_error("\ncontrol_url \"tcp://192.168.1.1:9293\"\n"),
            "app.rb:2: control_url \"tcp://192.168.1.1:9293\": host \"192.168.1.1\" is not a \
             loopback address; expected 127.0.0.1, [::1] or localhost, since the control app \
             can stop the server"
        );
        assert_eq!(
            file_error("activate_control_app \"auto\""),
            "app.rb:1: activate_control_app \"auto\": expected tcp://HOST:PORT or \
             unix:///ABSOLUTE/PATH"
        );
        assert_eq!(
            file_error("activate_control_app \"unix:///c\", { auth_token: \"t\", no_token: true }"),
            "app.rb:1: activate_control_app \"unix:///c\": both auth_token: and no_token: true; \
             expected one of them"
        );
        assert_eq!(
            file_error("activate_control_app \"unix:///c\", { token: \"t\" }"),
            "app.rb:1: activate_control_app \"unix:///c\": unknown option \"token\"; expected \
             auth_token: \"TOKEN\" or no_token: true"
        );
        assert_eq!(
            file_error("activate_control_app \"unix:///c\", { no_token: 1 }"),
            "app.rb:1: activate_control_app \"unix:///c\": no_token with a value other than \
             true or false; expected no_token: true"
        );
        assert_eq!(
            file_error("control_url unix:///c"),
            "app.rb:1: control_url unix:///c; expected a quoted URI, as in control_url \
             \"unix:///run/app-control.sock\""
        );
        assert_eq!(
            file_error("state_path /run/x"),
            "app.rb:1: state_path /run/x; expected a quoted path, as in state_path \
             \"/run/app.state\""
        );
        // Checks on the merged settings name the control line.
        assert_eq!(
            file_error("tag \"x\"\nactivate_control_app \"unix:///run/ctl.sock\"\n"),
            "app.rb:2: control URL \"unix:///run/ctl.sock\" has no token; expected a token \
             (--control-token TOKEN, control_token \"TOKEN\", or activate_control_app \"URI\", \
             { auth_token: \"TOKEN\" }), or { no_token: true } to let anyone who can connect \
             control the server"
        );
        assert_eq!(
            file_error(
                "bind \"tcp://127.0.0.1:9293\"\n\
                 control_url \"tcp://127.0.0.1:9293\"\ncontrol_token \"t\"\n"
            ),
            "app.rb:2: control URL \"tcp://127.0.0.1:9293\" is also a bind; expected a \
             listener of its own for the control app"
        );
    }

    #[test]
    fn control_app_command_line_over_file() {
        let text = "activate_control_app \"unix:///run/ctl.sock\", { no_token: true }\n\
                    state_path \"/run/file.state\"\n";
        let c = with_file(text, &[]).unwrap();
        assert_eq!(c.control_token, None);
        // A token on the command line replaces no_token.
        let c = with_file(text, &["--control-token", "t"]).unwrap();
        assert_eq!(c.control_token.as_deref(), Some("t"));
        // The command line's URL replaces the file's; its errors name no line.
        let c = with_file(text, &["--control-url", "tcp://localhost:9293"]).unwrap();
        assert_eq!(c.control_url, Some(tcp("localhost", 9293)));
        assert_eq!(c.control_token, None, "no_token: true still applies");
        let e = with_file(
            "control_token \"t\"\nbind \"tcp://127.0.0.1:9\"\n",
            &["--control-url", "tcp://127.0.0.1:9"],
        )
        .unwrap_err();
        assert!(
            e.starts_with("control URL \"tcp://127.0.0.1:9\" is also a bind;"),
            "{e}"
        );
        // "" turns the file's control app and state file off.
        let c = with_file(text, &["--control-url", "", "--state", ""]).unwrap();
        assert_eq!((c.control_url, c.state_path), (None, None));
        let c = with_file(text, &["-S", "/run/cli.state"]).unwrap();
        assert_eq!(c.state_path, Some(PathBuf::from("/run/cli.state")));
        // A file token with a command-line URL.
        let c = with_file("control_token \"t\"\n", &["--control-url", "unix:///c"]).unwrap();
        assert_eq!(
            (c.control_url, c.control_token.as_deref()),
            (Some(unix("/c")), Some("t"))
        );
    }

    #[test]
    fn reload_reapplies_cluster_and_systemd_settings() {
        let tmp = TempDir::new();
        let file = tmp.file(
            "app.rb",
            "workers 2\nbind_to_activated_sockets\nmax_requests 100\n\
             activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"a\" }\n",
        );
        let path = file.to_str().unwrap();
        let first = run(&["-C", path, "--fd-store", "--worker-timeout", "9", "-w", "3"]);
        assert_eq!(first.workers, 3);
        assert_eq!(first.activated, ActivatedMode::On);
        assert!(first.fd_store);
        assert_eq!(first.control_token.as_deref(), Some("a"));
        assert_eq!(reload(&first).unwrap(), first);

        fs::write(
            &file,
            "workers 5\nbind_to_activated_sockets \"only\"\npreload_app!\nfd_store false\n\
             worker_timeout 1\nworker_max_rss 256\nstate_path \"/run/app.state\"\n\
             control_url \"tcp://127.0.0.1:9293\"\ncontrol_token \"b\"\n",
        )
        .unwrap();
        let second = reload(&first).unwrap();
        assert_eq!(second.workers, 3, "the command line still wins");
        assert!(second.fd_store, "the command line still wins");
        assert_eq!(
            second.worker_timeout,
            Duration::from_secs(9),
            "the command line still wins"
        );
        assert_eq!(second.activated, ActivatedMode::Only);
        assert!(second.preload);
        assert_eq!(
            (second.max_requests, second.worker_max_rss),
            (None, Some(256))
        );
        assert_eq!(second.control_url, Some(tcp("127.0.0.1", 9293)));
        assert_eq!(second.control_token.as_deref(), Some("b"));
        assert_eq!(second.state_path, Some(PathBuf::from("/run/app.state")));

        fs::write(&file, "control_url \"tcp://0.0.0.0:9293\"\n").unwrap();
        let e = reload(&second).unwrap_err().to_string();
        assert!(
            e.ends_with(
                ":1: control_url \"tcp://0.0.0.0:9293\": host \"0.0.0.0\" is not a \
                 loopback address; expected 127.0.0.1, [::1] or localhost, since the control \
                 app can stop the server"
            ),
            "{e}"
        );
        fs::write(&file, "\ncontrol_url \"unix:///run/ctl.sock\"\n").unwrap();
        let e = reload(&second).unwrap_err().to_string();
        assert!(
            e.contains(":2: control URL \"unix:///run/ctl.sock\" has no token;"),
            "{e}"
        );
    }

    #[test]
    fn hashes_in_arguments() {
        let args = |text: &str| {
            let (tokens, _) = lex(text).unwrap();
            arguments(&tokens)
        };
        let s = |v: &str| Arg::Str(v.to_string());
        let w = |v: &str| Arg::Word(v.to_string());
        let hash = |pairs: &[(&str, Arg)]| {
            Arg::Hash(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            )
        };
        assert_eq!(args("").unwrap(), vec![]);
        assert_eq!(args("()").unwrap(), vec![]);
        assert_eq!(args("{}").unwrap(), vec![hash(&[])]);
        assert_eq!(
            args("\"u\", { a: \"x\", b: true }").unwrap(),
            vec![s("u"), hash(&[("a", s("x")), ("b", w("true"))])]
        );
        assert_eq!(
            args("(\"u\", a: 1, :b => 2, :c=> 3)").unwrap(),
            vec![s("u"), hash(&[("a", w("1")), ("b", w("2")), ("c", w("3"))])]
        );
        assert_eq!(
            args("{ a: 1 }, \"u\"").unwrap(),
            vec![hash(&[("a", w("1"))]), s("u")]
        );
        for bad in [
            "a: 1, \"u\"",
            "{ a: 1",
            "{ a: 1, }",
            "{ a: }",
            "{ \"a\" }",
            "{ a: 1 } }",
            "a:: 1",
            ": 1",
            "{ a: 1 b: 2 }",
            "(a: 1",
            "a: 1, :c=>3",
        ] {
            assert_eq!(args(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("treads", "threads"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(closest("zzzzzz", DIRECTIVES.iter().copied()), None);
    }
}
