//! `catamount --check` (nginx's `-t`) and the hot restart's preflight,
//! which runs it (issue 12).
//!
//! `--check` answers "would a start with these arguments work?" without
//! serving and without binding. config.rs has already parsed the options
//! and the config file and checked DIR (errors there exit 2); [`run`]
//! checks what else a start loads or creates besides its listeners: every
//! certificate and key, and the directories of a unix control socket, of
//! the state file and of the pidfile (errors here exit 1). The listeners
//! are not bound: the server already running holds the ports, and the
//! point is to ask before replacing it.
//!
//! A hot restart execs the file now at the binary's path (the path saved
//! at start, [`Reexec`]). [`preflight`] runs that same file with the same
//! arguments and `--check`, before anything is drained: a binary that was
//! deleted or replaced by one that cannot start, a control socket whose
//! directory went away, a certificate that no longer loads, all refuse the
//! restart while the old image keeps serving, instead of an exec that
//! fails with the listeners already renumbered, or a new image that exits.
//!
//! No thread: the cluster master runs the preflight too, and never starts
//! one (ARCHITECTURE.md). The child is spawned with `std::process::Command`
//! and waited for with `poll(2)` on its stderr and `try_wait`, within
//! [`PREFLIGHT_TIMEOUT`]. The caller's loop is blocked meanwhile (usually
//! for a few milliseconds); requests are still served by the reactor and
//! the pool (single mode) or by the workers (cluster mode).

use std::fs;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::activation;
use crate::bind::BindSpec;
use crate::listeners;
use crate::log;
use crate::sys::{self, Interest};
use crate::Config;

/// Longest a preflight `--check` may run before the restart is refused
/// (and the check killed). Loading a config file and a few certificates
/// takes milliseconds; this bounds a binary that hangs.
pub const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);
/// With a systemd watchdog, the preflight gets at most the period divided
/// by this, so a hung check cannot make the watchdog kill the server it is
/// meant to keep serving: pings come every half period, so the last one
/// is at most half a period old when the preflight starts.
pub const PREFLIGHT_WATCHDOG_DIVISOR: u32 = 4;
/// Bytes of the preflight's stderr kept for the log line; more is read
/// and dropped.
pub const PREFLIGHT_STDERR_MAX: usize = 4096;
/// How often the exit of a preflight that has closed its stderr is
/// looked for.
const PREFLIGHT_POLL: Duration = Duration::from_millis(5);

/// What the restart itself passes to the new image (or what systemd
/// passed to this one), never for the check: it must not adopt sockets
/// or talk to systemd as if it were the service.
const SYSTEMD_VARS: [&str; 7] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The binary and arguments a hot restart execs, saved at start (before
/// the process title overwrites the argument area): what [`preflight`]
/// runs with `--check`, and what the restart then execs.
pub(crate) struct Reexec {
    pub(crate) exe: Option<PathBuf>,
    pub(crate) args: Vec<std::ffi::OsString>,
}

/// `catamount --check` once the configuration has loaded: checks the
/// rest, prints one line, returns the exit status (0, or 1 with one
/// `catamount: error:` line on stderr).
pub(crate) fn run(config: &Config) -> i32 {
    match check(config) {
        Ok(summary) => {
            log::info(&format!("catamount: configuration OK: {summary}"));
            0
        }
        Err(e) => {
            log::error(&format!("catamount: error: {e}"));
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
    let deferred = match tls.deferred {
        0 => String::new(),
        n => format!(
            "; {n} with TLS from files systemd passes (fd://NAME), loaded when the service starts"
        ),
    };
    Ok(format!(
        "{file}, serving {}, {} bind(s) ({} with TLS: certificate and key loaded{deferred}); \
         nothing was bound",
        dir.display(),
        config.binds.len(),
        tls.loaded
    ))
}

/// Loads every certificate and key the binds name, as a start would;
/// returns how many binds have TLS. A `cert=`/`key=`/`ca=` of `fd://NAME`
/// is a file systemd passes to the service (`OpenFile=`); a process that
/// was passed no file (`catamount --check` by hand or from ExecReload=)
/// cannot read it, so such a bind is counted in `deferred` instead.
pub(crate) fn certificates(config: &Config) -> Result<Certificates, String> {
    let mut out = Certificates::default();
    for spec in &config.binds {
        if let Some(o) = spec.tls() {
            let inherited = o.paths().any(|p| activation::inherited_name(p).is_some());
            if inherited && activation::files().is_empty() {
                out.deferred += 1;
                continue;
            }
            listeners::Tls::load(o).map_err(|e| format!("bind {spec}: {e}"))?;
            out.loaded += 1;
        }
    }
    Ok(out)
}

/// What [`certificates`] did.
#[derive(Debug, Default)]
pub(crate) struct Certificates {
    /// Binds whose certificate and key were loaded.
    pub loaded: usize,
    /// Binds whose certificate or key is a file only the service is
    /// passed (`fd://NAME`): loaded when it starts.
    pub deferred: usize,
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

/// The timeout of one preflight: [`PREFLIGHT_TIMEOUT`], shortened to a
/// share of the watchdog period when there is one.
pub(crate) fn preflight_timeout(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(PREFLIGHT_TIMEOUT, |period| {
        PREFLIGHT_TIMEOUT.min(period / PREFLIGHT_WATCHDOG_DIVISOR)
    })
}

/// Runs the file a hot restart would exec, with the arguments it would
/// get and `--check` in front (so a `--` among them cannot turn it into a
/// DIR), in this process's environment without the systemd variables,
/// with no descriptor but stdio (everything else is close-on-exec), and
/// waits for it at most `timeout`. `Err` says why the restart must be
/// refused, ending with the check's own last stderr line.
pub(crate) fn preflight(exe: &Reexec, timeout: Duration) -> Result<(), String> {
    let Some(path) = &exe.exe else {
        return Err(
            "the path of the running binary is unknown (/proc/self/exe was not readable at \
             start), so there is nothing to exec; restart the service instead"
                .to_string(),
        );
    };
    let shown = format!("{} --check", path.display());
    let mut cmd = Command::new(path);
    cmd.arg("--check")
        .args(&exe.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SYSTEMD_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut said = Vec::new();
    if let Some(mut stderr) = child.stderr.take() {
        let mut chunk = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match sys::wait_fd(stderr.as_fd(), Interest::Read, left) {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            match stderr.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let room = PREFLIGHT_STDERR_MAX.saturating_sub(said.len());
                    said.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(PREFLIGHT_POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} did not finish within {}s (killed)",
                    crate::log::Seconds::exact(timeout)
                ));
            }
            Err(e) => return Err(format!("cannot wait for {shown}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("failed ({status})"),
    };
    Err(format!("{shown} {how}: {}", last_line(&said)))
}

/// The last non-empty line of `bytes`, control characters replaced, for
/// one log line.
fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => line
            .trim()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        None => "(it printed nothing on stderr)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_is_the_error_line() {
        assert_eq!(last_line(b"a\nb: error\n\n"), "b: error");
        assert_eq!(last_line(b"x\x1b[31my"), "x?[31my");
        assert_eq!(last_line(b""), "(it printed nothing on stderr)");
    }

    #[test]
    fn the_watchdog_shortens_the_preflight() {
        assert_eq!(preflight_timeout(None), PREFLIGHT_TIMEOUT);
        assert_eq!(
            preflight_timeout(Some(Duration::from_secs(10))),
            Duration::from_millis(2500)
        );
        assert_eq!(
            preflight_timeout(Some(Duration::from_secs(3600))),
            PREFLIGHT_TIMEOUT
        );
    }

    #[test]
    fn a_missing_binary_refuses() {
        let exe = Reexec {
            exe: Some(PathBuf::from("/nonexistent/catamount")),
            args: Vec::new(),
        };
        let e = preflight(&exe, PREFLIGHT_TIMEOUT).unwrap_err();
        assert!(
            e.starts_with("cannot run /nonexistent/catamount --check: No such file"),
            "{e}"
        );
        let e = preflight(
            &Reexec {
                exe: None,
                args: Vec::new(),
            },
            PREFLIGHT_TIMEOUT,
        )
        .unwrap_err();
        assert!(
            e.starts_with("the path of the running binary is unknown"),
            "{e}"
        );
    }

    #[test]
    fn a_failing_check_refuses_with_its_status() {
        // false(1) stands in for a binary whose check fails silently.
        let exe = Reexec {
            exe: Some(PathBuf::from("/bin/false")),
            args: Vec::new(),
        };
        let e = preflight(&exe, PREFLIGHT_TIMEOUT).unwrap_err();
        assert_eq!(
            e,
            "/bin/false --check exited with status 1: (it printed nothing on stderr)"
        );
    }
}
