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
//! status 2, before anything is bound. Options and directives that later
//! issues will implement (workers, preload, control app, ...) are refused
//! with "not supported yet", never silently ignored.
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
/// Seconds an idle keep-alive connection is kept.
pub const DEFAULT_PERSISTENT_TIMEOUT: Duration = Duration::from_secs(65);
/// Seconds a graceful stop waits for in-flight requests.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests served on one connection before it is closed.
pub const DEFAULT_MAX_KEEP_ALIVE: u32 = 999;
/// Largest request body accepted (10 MiB); larger gets 413.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

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

/// Everything catamount needs to run, validated.
///
/// [`Config::default`] is the built-in defaults (serving the current
/// directory on [`DEFAULT_BIND`]); embedders may start from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listeners to bind, in order; never empty after parsing.
    pub binds: Vec<BindSpec>,
    /// Directory served by the static-file app (relative to the working
    /// directory when relative). Checked to be a directory when parsed.
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
    /// See [`DEFAULT_PERSISTENT_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
    pub persistent_timeout: Duration,
    /// See [`DEFAULT_SHUTDOWN_TIMEOUT`]; above zero, at most [`MAX_TIMEOUT`].
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
            persistent_timeout: DEFAULT_PERSISTENT_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_keep_alive: DEFAULT_MAX_KEEP_ALIVE,
            max_body: DEFAULT_MAX_BODY,
            log_requests: false,
            quiet: false,
            dir_listing: false,
            serve_dotfiles: false,
            cache_control: None,
            config_file: None,
            cli: Overrides::default(),
        }
    }
}

/// One layer of settings (the config file's, or the command line's):
/// each field is `None`/empty when the layer does not set it. Fields are
/// private: a layer is only made by parsing, so it is always valid.
///
/// For `tag`, `pidfile` and `cache_control` an empty value is kept as
/// `Some("")` and means "turn it off", so `--tag ""` can undo the file.
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
    persistent_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    max_keep_alive: Option<u32>,
    max_body: Option<u64>,
    log_requests: Option<bool>,
    quiet: Option<bool>,
    dir_listing: Option<bool>,
    serve_dotfiles: Option<bool>,
    cache_control: Option<String>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this configuration.
    Run(Box<Config>),
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
        eprintln!("catamount: {self}");
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
    if let Some(extra) = free.next() {
        return Err(ConfigError::new(format!(
            "unexpected argument {:?}; expected at most one DIR to serve \
             (options start with -; run catamount --help)",
            extra.to_string_lossy()
        )));
    }

    load(config_file, cli).map(|c| Command::Run(Box::new(c)))
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

    --persistent-timeout SECS
        Seconds an idle keep-alive connection is kept open.
                                                         [default: 65]

    --shutdown-timeout SECS
        Seconds a graceful stop waits for requests in flight.
                                                         [default: 30]

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

    -V, --version
        Print the version and exit.

    -h, --help
        Print this help and exit.

    SECS is a number of seconds above 0 and at most 86400, and may have a
    fraction, as in 0.5. An empty NAME, FILE or VALUE given to --tag,
    --pidfile or --cache-control turns that setting off, which undoes the
    config file.

    Not supported yet, and refused rather than ignored: -w/--workers,
    --preload, --bind-to-activated-sockets, --fd-store, --control-url,
    --control-token, -S/--state, --worker-timeout.

CONFIG FILE
    A subset of Puma's config DSL: one directive per line, literal values
    only, "#" starts a comment. Strings are in "double" or 'single'
    quotes, with \" (or \') and \\ as escapes. A later line wins, except
    that bind and port add a listener each. Relative paths are relative
    to the current directory, not to the file. Booleans are true or
    false; a boolean directive alone means true.

        bind "tcp://127.0.0.1:9292"     # repeatable; as --bind
        port 9292                       # bind "tcp://0.0.0.0:9292"
        port 9292, "127.0.0.1"          # bind "tcp://127.0.0.1:9292"
        threads 0, 16                   # as --threads 0:16
        directory "/srv/www"            # DIR; a DIR argument wins
        environment "production"
        tag "app"
        pidfile "/run/app.pid"
        first_data_timeout 30
        persistent_timeout 65
        shutdown_timeout 30
        max_keep_alive 999
        max_body 10_485_760
        log_requests true
        quiet false
        dir_listing true
        serve_dotfiles false
        cache_control "public, max-age=60"

    Not supported yet, and refused rather than ignored: workers,
    preload_app!, bind_to_activated_sockets, fd_store, worker_timeout,
    worker_boot_timeout, worker_shutdown_timeout, control_url,
    activate_control_app, ssl_bind, state_path, max_requests,
    worker_max_rss, and the worker hooks (on_worker_boot, ...).

EXIT STATUS
    0 after --help or --version. 2 when the command line or the config
    file is invalid, before anything is bound: the one-line message names
    the option, or FILE:LINE, what was found and what was expected.
"##;

// ---------------------------------------------------------------------
// Building a Config from the layers.
// ---------------------------------------------------------------------

/// defaults < file < `cli`, then the checks that need the merged result.
fn load(config_file: Option<PathBuf>, cli: Overrides) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut dir_line = None;
    if let Some(path) = &config_file {
        let text = read_config_file(path)?;
        let file = parse_file(path, &text)?;
        file.layer.apply(&mut config);
        dir_line = file.directory_line;
    }
    cli.apply(&mut config);
    if cli.dir.is_some() {
        dir_line = None;
    }

    let origin = match (&config_file, dir_line) {
        (Some(path), Some(line)) => DirOrigin::File(path, line),
        _ => DirOrigin::CommandLine,
    };
    check_dir(&config.dir, origin)?;

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
    }
}

/// Where the served directory was named, for the error message.
enum DirOrigin<'a> {
    /// The DIR argument, or the default.
    CommandLine,
    /// A `directory` line of the config file.
    File(&'a Path, usize),
}

fn check_dir(dir: &Path, origin: DirOrigin<'_>) -> Result<(), ConfigError> {
    let problem = match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "is not a directory".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
        Err(e) => format!("cannot be opened: {e}"),
    };
    Err(ConfigError::new(match origin {
        DirOrigin::CommandLine => format!(
            "DIR {dir:?} {problem}; expected a directory to serve, as in catamount /srv/www"
        ),
        DirOrigin::File(path, line) => format!(
            "{}:{line}: directory {dir:?} {problem}; expected a directory to serve",
            path.display()
        ),
    }))
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
const NOT_CLUSTERED: &str = "catamount runs as one process for now";

/// Every option catamount knows, including the ones it refuses.
const OPTIONS: &[CliOption] = &[
    value_option(
        "--bind",
        "-b",
        "a bind URI, as in --bind tcp://0.0.0.0:9292 or --bind unix:///run/app.sock",
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
    flag_option("--version", "-V"),
    flag_option("--help", "-h"),
    refused("--workers", "-w", OptionKind::NotYet(NOT_CLUSTERED)),
    refused("--preload", "", OptionKind::NotYet(NOT_CLUSTERED)),
    refused(
        "--bind-to-activated-sockets",
        "",
        OptionKind::NotYet("systemd socket activation comes in a later release"),
    ),
    refused(
        "--fd-store",
        "",
        OptionKind::NotYet("the systemd fd store comes in a later release"),
    ),
    refused(
        "--control-url",
        "",
        OptionKind::NotYet("there is no control app yet"),
    ),
    refused(
        "--control-token",
        "",
        OptionKind::NotYet("there is no control app yet"),
    ),
    refused(
        "--state",
        "-S",
        OptionKind::NotYet("there is no state file yet"),
    ),
    refused("--worker-timeout", "", OptionKind::NotYet(NOT_CLUSTERED)),
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
            OptionKind::Value { expect } => expect,
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
                    // pico-args would take such a value for the option it
                    // spells; it is almost surely a forgotten value anyway.
                    if OPTIONS
                        .iter()
                        .any(|o| o.long.as_bytes() == value.as_bytes())
                    {
                        return Err(ConfigError::new(format!(
                            "option {typed} is followed by option {}, not by a value; \
                             expected {expect}",
                            value.to_string_lossy()
                        )));
                    }
                    line.options.push(spec.long.into());
                    line.options.push(value);
                }
            }
        }
        Ok(line)
    }
}

fn unknown_option(arg: &OsStr) -> ConfigError {
    let arg = arg.to_string_lossy();
    let name = arg.split('=').next().unwrap_or(&arg);
    let known = OPTIONS
        .iter()
        .filter(|o| matches!(o.kind, OptionKind::Flag | OptionKind::Value { .. }));
    let hint = closest(name, known.map(|o| o.long))
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    ConfigError::new(format!(
        "unknown option {name:?}{hint}; run catamount --help for the list of options"
    ))
}

/// The last value of option `long` (repeats are allowed; the last wins).
fn last<T>(
    args: &mut pico_args::Arguments,
    long: &'static str,
    parse: fn(&str) -> Result<T, &'static str>,
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
    "persistent_timeout",
    "shutdown_timeout",
    "max_keep_alive",
    "max_body",
    "log_requests",
    "quiet",
    "dir_listing",
    "serve_dotfiles",
    "cache_control",
];

/// Puma directives a later issue implements, with why they are refused.
const NOT_YET_DIRECTIVES: &[(&str, &str)] = &[
    ("workers", NOT_CLUSTERED),
    ("preload_app!", NOT_CLUSTERED),
    ("worker_timeout", NOT_CLUSTERED),
    ("worker_boot_timeout", NOT_CLUSTERED),
    ("worker_shutdown_timeout", NOT_CLUSTERED),
    ("worker_max_rss", NOT_CLUSTERED),
    ("worker_check_interval", NOT_CLUSTERED),
    ("worker_culling_strategy", NOT_CLUSTERED),
    ("fork_worker", NOT_CLUSTERED),
    ("before_fork", NOT_CLUSTERED),
    ("on_worker_boot", NOT_CLUSTERED),
    ("on_worker_shutdown", NOT_CLUSTERED),
    ("on_worker_fork", NOT_CLUSTERED),
    ("after_worker_fork", NOT_CLUSTERED),
    ("after_worker_boot", NOT_CLUSTERED),
    ("on_refork", NOT_CLUSTERED),
    ("on_restart", NOT_CLUSTERED),
    (
        "max_requests",
        "per-worker request limits come with workers",
    ),
    (
        "bind_to_activated_sockets",
        "systemd socket activation comes in a later release",
    ),
    ("fd_store", "the systemd fd store comes in a later release"),
    ("control_url", "there is no control app yet"),
    ("activate_control_app", "there is no control app yet"),
    ("ssl_bind", "TLS comes in a later release"),
    ("state_path", "there is no state file yet"),
    ("state_permission", "there is no state file yet"),
];

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
];

/// The file's layer, and the line of its `directory` (for DIR errors).
struct FileSettings {
    layer: Overrides,
    directory_line: Option<usize>,
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
        if directive.name == "directory" {
            file.directory_line = Some(number);
        }
    }
    Ok(file)
}

/// One literal argument of a directive.
#[derive(Debug, PartialEq)]
enum Arg {
    /// A quoted string, escapes resolved.
    Str(String),
    /// Anything else: a number, `true`, a stray word.
    Word(String),
}

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
        let (tokens, code_len) = lex(rest)?;
        let raw = rest[..code_len].trim();
        let args = arguments(tokens).ok_or_else(|| {
            format!(
                "{name} {raw}; expected literal values separated by commas, as in threads 0, 16"
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
            "first_data_timeout" | "persistent_timeout" | "shutdown_timeout" => {
                let secs = word(args)
                    .and_then(ruby_number)
                    .and_then(|w| parse_secs(&w))
                    .ok_or_else(|| bad(&format!("{SECS_EXPECT}, as in {name} 30")))?;
                match name {
                    "first_data_timeout" => layer.first_data_timeout = Some(secs),
                    "persistent_timeout" => layer.persistent_timeout = Some(secs),
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
            "log_requests" | "quiet" | "dir_listing" | "serve_dotfiles" => {
                let on = boolean(args)
                    .ok_or_else(|| bad(&format!("true or false, as in {name} true")))?;
                match name {
                    "log_requests" => layer.log_requests = Some(on),
                    "quiet" => layer.quiet = Some(on),
                    "dir_listing" => layer.dir_listing = Some(on),
                    _ => layer.serve_dotfiles = Some(on),
                }
            }
            "cache_control" => {
                let value = string(args).and_then(parse_header_value).ok_or_else(|| {
                    bad("a quoted value of printable ASCII, as in cache_control \"public, max-age=60\"")
                })?;
                layer.cache_control = Some(value.to_string());
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
    let hint = closest(name, DIRECTIVES.iter().copied())
        .map(|d| format!(" (did you mean {d}?)"))
        .unwrap_or_default();
    Err(format!(
        "unknown directive {name:?}{hint}; expected one of {}",
        DIRECTIVES.join(", ")
    ))
}

/// A directive's tokens, before commas are checked.
#[derive(Debug)]
enum Token {
    Arg(Arg),
    Comma,
    Open,
    Close,
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
            ',' | '(' | ')' => {
                chars.next();
                tokens.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    _ => Token::Close,
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
                    if c.is_whitespace() || matches!(c, ',' | '(' | ')' | '#' | '"' | '\'') {
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
fn arguments(tokens: Vec<Token>) -> Option<Vec<Arg>> {
    let mut tokens = tokens.into_iter().peekable();
    let parenthesised = matches!(tokens.peek(), Some(Token::Open));
    if parenthesised {
        tokens.next();
    }
    let mut args = Vec::new();
    let mut closed = false;
    while let Some(token) = tokens.next() {
        match token {
            Token::Arg(arg) => args.push(arg),
            Token::Close if parenthesised && args.is_empty() => {
                closed = true;
                break;
            }
            _ => return None,
        }
        match tokens.next() {
            Some(Token::Comma) if tokens.peek().is_some() => {}
            Some(Token::Close) if parenthesised => {
                closed = true;
                break;
            }
            None if !parenthesised => {}
            _ => return None,
        }
    }
    let complete = closed == parenthesised && tokens.next().is_none();
    complete.then_some(args)
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
        for opt in [
            "-w",
            "--workers",
            "--preload",
            "--bind-to-activated-sockets",
            "--fd-store",
            "--control-url",
            "--control-token",
            "--state",
            "-S",
            "--worker-timeout",
        ] {
            let e = error(&[opt, "4"]);
            assert!(
                e.starts_with(&format!("option {opt} is not supported yet (")),
                "{e}"
            );
        }
        assert_eq!(
            error(&["--workers=4"]),
            "option --workers is not supported yet (catamount runs as one process for now); \
             remove it"
        );
        assert_eq!(
            error(&["-p", "9292"]),
            "option -p is not a catamount option; use --bind tcp://0.0.0.0:PORT"
        );
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
        // Refused options are not suggested.
        assert!(!error(&["--wokers"]).contains("did you mean"));
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
            "option --bind is missing its value; expected a bind URI, as in \
             --bind tcp://0.0.0.0:9292 or --bind unix:///run/app.sock"
        );
        assert!(error(&["--tag", "--quiet"])
            .starts_with("option --tag is followed by option --quiet, not by a value;"));
        assert_eq!(
            error(&["--quiet=yes"]),
            "\"--quiet=yes\": option --quiet takes no value; expected --quiet alone \
             (give each flag separately)"
        );
        assert!(error(&["-qh"]).contains("option -q takes no value"));
        assert!(error(&["--config="]).starts_with("--config \"\"; expected"));
    }

    #[test]
    fn bad_bind_on_the_command_line() {
        assert_eq!(
            error(&["-b", "ssl://0.0.0.0:443"]),
            "--bind \"ssl://0.0.0.0:443\": ssl:// binds are not supported yet"
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
            "app.rb:3: unknown directive \"treads\" (did you mean threads?); expected one of \
             bind, port, threads, directory, environment, tag, pidfile, first_data_timeout, \
             persistent_timeout, shutdown_timeout, max_keep_alive, max_body, log_requests, \
             quiet, dir_listing, serve_dotfiles, cache_control"
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
            file_error("\nworkers 4\n"),
            "app.rb:2: directive \"workers\" is not supported yet (catamount runs as one process \
             for now); expected the line removed"
        );
        assert_eq!(
            file_error("bind \"ssl://0.0.0.0:443\"\n"),
            "app.rb:1: bind \"ssl://0.0.0.0:443\": ssl:// binds are not supported yet"
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
        assert!(file_error("workers ENV.fetch(\"N\") { 2 }").contains("not supported yet"));
        assert!(file_error("on_worker_boot do").contains("not supported yet"));
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
        for (d, _) in NOT_YET_DIRECTIVES.iter().take(3) {
            assert!(text.contains(d), "help misses {d}");
        }
        for default in [
            format!("[default: {DEFAULT_BIND}]"),
            format!("[default: {DEFAULT_MIN_THREADS}:{DEFAULT_MAX_THREADS}]"),
            format!("[default: {DEFAULT_ENVIRONMENT}]"),
            format!("[default: {}]", DEFAULT_FIRST_DATA_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_PERSISTENT_TIMEOUT.as_secs()),
            format!("[default: {}]", DEFAULT_SHUTDOWN_TIMEOUT.as_secs()),
            format!("[default: {DEFAULT_MAX_KEEP_ALIVE}]"),
            format!("[default: {DEFAULT_MAX_BODY}]"),
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
        }
        for d in DIRECTIVES {
            assert!(check_directive_name(d).is_ok());
        }
        for (name, _) in NOT_YET_DIRECTIVES.iter().chain(PUMA_ONLY_DIRECTIVES) {
            assert!(!DIRECTIVES.contains(name));
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
