//! The config file: reading it (bounded, UTF-8) and turning its lines
//! into a layer ([`Overrides`]) through the settings table, with
//! `FILE:LINE:` on every error. Directives that Puma has and catamount
//! refuses are listed here, each with what to do instead.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::lexer::Directive;
use super::settings::{by_directive, directives, Setting, NO_REFORK};
use super::types::{ConfigError, Overrides, MAX_CONFIG_FILE_BYTES};
use super::values::closest;

/// The file's layer, and the lines named by errors about the merged
/// settings.
pub(super) struct FileSettings {
    pub(super) layer: Overrides,
    /// The last `directory` line (for DIR errors).
    pub(super) directory_line: Option<usize>,
    /// The last line that set the control URL (for control errors).
    pub(super) control_line: Option<usize>,
    /// The last `control_token_file` line (for errors reading it).
    pub(super) token_file_line: Option<usize>,
}

pub(super) fn read_config_file(path: &Path) -> Result<String, ConfigError> {
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

pub(super) fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    let mut file = FileSettings {
        layer: Overrides::default(),
        directory_line: None,
        control_line: None,
        token_file_line: None,
    };
    // Line of each bind so far, for "repeats line N".
    let mut bind_lines: Vec<usize> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let at =
            |message: String| ConfigError::new(format!("{}:{number}: {message}", path.display()));
        let Some((name, rest)) = Directive::split(line).map_err(at)? else {
            continue;
        };
        // The name is judged before the values, so `workers
        // ENV.fetch("N")` is reported as not supported rather than as a
        // syntax error.
        let setting = setting_named(name).map_err(at)?;
        let directive = Directive::parse(name, rest, setting.secret).map_err(at)?;
        setting
            .read_directive(&directive, &mut file.layer)
            .map_err(at)?;
        let binds = &file.layer.binds;
        if binds.len() > bind_lines.len() {
            // A bind or port line added one.
            let (bind, earlier) = binds.split_last().expect("a bind was just added");
            if let Some(i) = earlier
                .iter()
                .position(|b| b.to_string() == bind.to_string())
            {
                return Err(at(format!(
                    "bind {:?} repeats the bind of line {}; expected each listener once",
                    bind.to_string(),
                    bind_lines[i]
                )));
            }
            bind_lines.push(number);
        }
        match name {
            "directory" => file.directory_line = Some(number),
            "activate_control_app" | "control_url" => file.control_line = Some(number),
            "control_token_file" => file.token_file_line = Some(number),
            _ => {}
        }
    }
    Ok(file)
}

/// The setting a directive name sets; for any other name, why it is
/// refused.
pub(super) fn setting_named(name: &str) -> Result<&'static Setting, String> {
    if let Some(setting) = by_directive(name) {
        return Ok(setting);
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
    Err(match closest(name, directives()) {
        Some(d) => format!("unknown directive {name:?} (did you mean {d}?)"),
        None => format!(
            "unknown directive {name:?}; see CONFIG FILE in catamount --help for the directives"
        ),
    })
}

/// Puma directives a later release may implement, with why they are
/// refused.
pub(super) const NOT_YET_DIRECTIVES: &[(&str, &str)] = &[
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
pub(super) const PUMA_ONLY_DIRECTIVES: &[(&str, &str)] = &[
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
