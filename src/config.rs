//! The command line and the config file, turned into one validated
//! [`Config`]. CLI flags override the file. Errors name file:line, what was
//! found and what was expected (exit status 2, before anything is bound).

// IMPLEMENTATION PENDING (helper).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::listeners::BindSpec;

/// Default minimum pool threads (Puma's).
pub const DEFAULT_MIN_THREADS: usize = 0;
/// Default maximum pool threads (Puma's).
pub const DEFAULT_MAX_THREADS: usize = 5;
/// Bind used when none is given (Puma's).
pub const DEFAULT_BIND: &str = "tcp://0.0.0.0:9292";
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

/// Everything catamount needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners to bind, in order; never empty after parsing.
    pub binds: Vec<BindSpec>,
    /// Directory served by the static-file app.
    pub dir: PathBuf,
    pub min_threads: usize,
    pub max_threads: usize,
    pub environment: String,
    pub tag: Option<String>,
    pub pidfile: Option<PathBuf>,
    pub first_data_timeout: Duration,
    pub persistent_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_keep_alive: u32,
    pub max_body: u64,
    pub log_requests: bool,
    pub quiet: bool,
    /// Static app: HTML directory listings when a directory has no index.html.
    pub dir_listing: bool,
    /// Static app: serve files and directories whose name starts with `.`.
    pub serve_dotfiles: bool,
    /// Static app: `Cache-Control` value for every file answer.
    pub cache_control: Option<String>,
    /// The config file read, if any (re-read on reload).
    pub config_file: Option<PathBuf>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// A command-line or config-file error.
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
    /// Prints the error on stderr and exits with status 2.
    pub fn exit(&self) -> ! {
        eprintln!("catamount: {self}");
        std::process::exit(2)
    }
}

/// Parses `args` (without the program name).
pub fn parse_args(args: Vec<OsString>) -> Result<Command, ConfigError> {
    let _ = args;
    todo!()
}

/// The `--help` text.
pub fn help() -> &'static str {
    todo!()
}
