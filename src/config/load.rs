//! Layering: the defaults, then the config file, then the command line
//! ([`load`]), and the checks that need the merged result: DIR, the
//! control app, and reading the control token's file. Also [`reload`]
//! and [`load_file`], the other two ways in.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::file::{parse_file, read_config_file};
use super::lexer::NOT_SHOWN;
use super::types::{Config, ConfigError, ControlToken, Overrides, MAX_CONTROL_TOKEN_FILE_BYTES};
use super::values::parse_token;

/// Re-reads `config.config_file` (when there is one) and applies the same
/// command-line settings (`config.cli`) on top: what the operator typed
/// still wins, what the file says is new. The returned `Config` is fully
/// checked again (binds, DIR, a token file read again); on error the
/// caller keeps the old one.
///
/// ```
/// use catamount::config::reload;
/// use catamount::Config;
///
/// // Without a config file, a reload gives the defaults under the same
/// // command-line layer.
/// let config = Config::default();
/// assert_eq!(reload(&config).unwrap(), config);
/// ```
pub fn reload(config: &Config) -> Result<Config, ConfigError> {
    let mut new = load(config.config_file.clone(), config.cli.clone())?;
    // Set by the program (`Server::confine`), neither by the file nor
    // the command line: kept, unless the file now turns Landlock off.
    new.landlock_extra = config.landlock_extra.clone();
    if new.landlock.is_none() {
        new.landlock = config.landlock;
    }
    Ok(new)
}

/// Reads a config file with no command line on top: defaults < file.
/// For embedders and tools that want catamount's file format.
///
/// ```
/// use catamount::config::load_file;
///
/// let path = std::env::temp_dir().join(format!("catamount-doc-{}.rb", std::process::id()));
/// std::fs::write(&path, "bind \"tcp://127.0.0.1:8080\"\nthreads 1, 4\n").unwrap();
/// let config = load_file(&path).unwrap();
/// std::fs::remove_file(&path).unwrap();
/// assert_eq!(config.binds[0].to_string(), "tcp://127.0.0.1:8080");
/// assert_eq!(config.max_threads, 4);
/// assert_eq!(config.config_file.as_deref(), Some(path.as_path()));
/// ```
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    load(Some(path.to_path_buf()), Overrides::default())
}

/// defaults < file < `cli`, then the checks that need the merged result.
pub(super) fn load(config_file: Option<PathBuf>, cli: Overrides) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut dir_line = None;
    let mut control_line = None;
    let mut token_file_line = None;
    let mut file_token = None;
    if let Some(path) = &config_file {
        let text = read_config_file(path)?;
        let file = parse_file(path, &text)?;
        file.layer.apply(&mut config);
        dir_line = file.directory_line;
        control_line = file.control_line;
        token_file_line = file.token_file_line;
        file_token = file.layer.control_token;
    }
    cli.apply(&mut config);
    if cli.dir.is_some() {
        dir_line = None;
    }
    if cli.control_url.is_some() {
        control_line = None;
    }
    // The layer that says anything about the token decides it whole.
    if cli.control_token.is_some() {
        token_file_line = None;
    }
    let at_line = |line: Option<usize>, message: String| match (&config_file, line) {
        (Some(path), Some(line)) => format!("{}:{line}: {message}", path.display()),
        _ => message,
    };

    let origin = match (&config_file, dir_line) {
        (Some(path), Some(line)) => DirOrigin::File(path, line),
        _ if cli.dir.is_some() => DirOrigin::CommandLine,
        _ => DirOrigin::Default,
    };
    check_dir(&config.dir, origin)?;

    let token = cli.control_token.as_ref().or(file_token.as_ref());
    if let Some(ControlToken::File(path)) = token {
        let token = read_token_file(path).map_err(|problem| {
            ConfigError::new(match token_file_line {
                Some(_) => at_line(
                    token_file_line,
                    format!("control_token_file {path:?} {problem}"),
                ),
                None => format!("--control-token-file {path:?} {problem}"),
            })
        })?;
        config.control_token = Some(token);
    }

    let no_token = token == Some(&ControlToken::NoToken);
    check_control(&config, no_token)
        .map_err(|message| ConfigError::new(at_line(control_line, message)))?;

    config.config_file = config_file;
    config.cli = cli;
    Ok(config)
}

/// The token in a `control_token_file`: the whole file but one trailing
/// newline (`\n` or `\r\n`), as `echo` or an editor leaves it, checked as
/// a `control_token` is. systemd's `LoadCredential=` hands a service such
/// a file under `$CREDENTIALS_DIRECTORY` (`%d` in the unit), readable by
/// the service alone and shown by no `ps`. The error completes
/// "control_token_file PATH ..."; it never shows the file's contents.
fn read_token_file(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_CONTROL_TOKEN_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| {
            format!(
                "cannot be read ({e}); expected a file this process can read that holds the \
                 control token (under systemd, LoadCredential=control-token:PATH provides one \
                 as %d/control-token)"
            )
        })?;
    if bytes.len() as u64 > MAX_CONTROL_TOKEN_FILE_BYTES {
        return Err(format!(
            "is larger than {MAX_CONTROL_TOKEN_FILE_BYTES} bytes; expected a file that holds \
             one token"
        ));
    }
    let token = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(&bytes);
    if token.is_empty() {
        return Err("is empty; expected the control token in it, on one line".to_string());
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(parse_token)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "does not hold a valid token {NOT_SHOWN}; expected a non-empty token of \
                 visible ASCII (no spaces), followed by at most one newline"
            )
        })
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
pub(super) enum DirOrigin<'a> {
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
pub(super) fn check_dir(dir: &Path, origin: DirOrigin<'_>) -> Result<(), ConfigError> {
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
