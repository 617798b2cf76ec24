//! `catamount --check` (nginx's `-t`).
//!
//! `--check` answers "would a start with these arguments work?" without
//! serving and without binding. config.rs has already parsed the options
//! and the config file and checked DIR (errors there exit 2); [`run`]
//! checks what else a start loads or creates besides its listeners: every
//! certificate and key, and the directories of a unix control socket, of
//! the state file and of the pidfile (errors here exit 1). The listeners
//! are not bound: the server already running holds the ports, and the
//! point is to ask before replacing it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::listeners::{self, BindSpec};
use crate::sys;
use crate::Config;

/// `catamount --check` once the configuration has loaded: checks the
/// rest, prints one line, returns the exit status (0, or 1 with one
/// `catamount: error:` line on stderr).
pub(crate) fn run(config: &Config) -> i32 {
    match check(config) {
        Ok(summary) => {
            println!("catamount: configuration OK: {summary}");
            0
        }
        Err(e) => {
            eprintln!("catamount: error: {e}");
            1
        }
    }
}

fn check(config: &Config) -> Result<String, String> {
    let tls = certificates(config)?;
    if let Some(BindSpec::Unix { path, .. }) = &config.control_url {
        let what = format!("control URL unix://{}", path.display());
        writable_dir_of(path, &what)?;
    }
    if let Some(path) = &config.state_path {
        // Written to a temporary file that is renamed over it.
        writable_dir_of(path, &format!("state file {}", path.display()))?;
    }
    if let Some(path) = &config.pidfile {
        let what = format!("pidfile {}", path.display());
        if fs::symlink_metadata(path).is_ok() {
            sys::may_write(path).map_err(|e| {
                format!("{what} is not writable by this process ({e}); fix its permissions")
            })?;
        } else {
            writable_dir_of(path, &what)?;
        }
    }
    let dir = fs::canonicalize(&config.dir).unwrap_or_else(|_| config.dir.clone());
    let file = config.config_file.as_ref().map_or_else(
        || "no config file".to_string(),
        |f| format!("config file {}", f.display()),
    );
    Ok(format!(
        "{file}, serving {}, {} bind(s) ({tls} with TLS: certificate and key loaded); \
         nothing was bound",
        dir.display(),
        config.binds.len()
    ))
}

/// Loads every certificate and key the binds name, as a start would;
/// returns how many binds have TLS.
pub(crate) fn certificates(config: &Config) -> Result<usize, String> {
    let mut n = 0;
    for spec in &config.binds {
        if let Some(o) = spec.tls() {
            listeners::Tls::load(o).map_err(|e| format!("bind {spec}: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The directory `path` goes in exists and this process may create files
/// in it.
fn writable_dir_of(path: &Path, what: &str) -> Result<(), String> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let shown = dir.display();
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "{what}: {shown} is not a directory; choose another path"
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{what}: directory {shown} does not exist; create it (in a systemd unit: \
                 RuntimeDirectory=) or choose another path"
            ))
        }
        Err(e) => return Err(format!("{what}: directory {shown} cannot be opened: {e}")),
    }
    sys::may_write_dir(&dir).map_err(|e| {
        format!(
            "{what}: directory {shown} is not writable by this process ({e}); make it \
             writable for the user catamount runs as, or choose another path"
        )
    })
}
