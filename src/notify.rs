//! The systemd notify socket (sd_notify(3)): READY, STATUS, RELOADING with
//! MONOTONIC_USEC, STOPPING, WATCHDOG, EXTEND_TIMEOUT_USEC, ERRNO, and the
//! fd store (FDSTORE / FDSTOREREMOVE with SCM_RIGHTS).
//!
//! Only the main process notifies (`NotifyAccess=main`): the variables are
//! read once and removed from the environment, so nothing catamount spawns
//! inherits them; a hot restart passes them to the new image explicitly.
//! A failure to notify is logged once and never fatal.

use std::cell::Cell;
use std::ffi::OsString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::log;
use crate::sys;

/// sd_notify messages must stay under this size.
pub const MAX_MESSAGE: usize = 4096;
/// The watchdog is pinged this many times per `WATCHDOG_USEC` period.
pub const WATCHDOG_PINGS_PER_PERIOD: u32 = 2;

const VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The notify socket, or nothing when not run by systemd.
pub struct Notifier {
    sock: Option<OwnedFd>,
    /// The address; a leading NUL byte for an abstract name.
    dest: Vec<u8>,
    /// The raw variables, to hand to our own re-exec.
    saved: Vec<(&'static str, OsString)>,
    watchdog: Option<Duration>,
    warned: Cell<bool>,
}

impl Notifier {
    /// Reads and removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
    /// Call before any thread exists (it changes the environment).
    pub fn take_from_env() -> Notifier {
        let saved: Vec<(&'static str, OsString)> = VARS
            .iter()
            .filter_map(|&k| std::env::var_os(k).map(|v| (k, v)))
            .collect();
        // Refused (and said so) if an embedder started a thread first:
        // then the variables stay, which NotifyAccess=main makes harmless.
        if let Err(e) = sys::remove_env(&VARS) {
            log::warn(&format!("! {e}"));
        }
        let get = |k: &str| saved.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let dest = get("NOTIFY_SOCKET").and_then(|v| {
            let mut b = v.as_bytes().to_vec();
            match b.first() {
                Some(b'@') => {
                    b[0] = 0; // abstract namespace
                    Some(b)
                }
                Some(b'/') => Some(b),
                _ => {
                    log::warn(&format!("! NOTIFY_SOCKET={v:?} is neither a path nor an @abstract name; not notifying systemd"));
                    None
                }
            }
        });
        let watchdog = watchdog_period(
            get("WATCHDOG_USEC")
                .and_then(|v| v.into_string().ok())
                .as_deref(),
            get("WATCHDOG_PID")
                .and_then(|v| v.into_string().ok())
                .as_deref(),
            std::process::id(),
        );
        let sock = dest.as_ref().and_then(|_| match sys::datagram_socket() {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn(&format!(
                    "! cannot create the notify socket: {e}; not notifying systemd"
                ));
                None
            }
        });
        Notifier {
            sock,
            dest: dest.unwrap_or_default(),
            saved,
            watchdog,
            warned: Cell::new(false),
        }
    }

    /// True when a notify socket is configured.
    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// The watchdog period, when systemd asked for pings.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The variables to set again for our own re-exec (same pid).
    pub fn env_for_exec(&self) -> &[(&'static str, OsString)] {
        &self.saved
    }

    /// Sends one message (lines `KEY=VALUE`); failures are logged once.
    pub fn send(&self, msg: &str) {
        self.send_with_fds(msg, &[]);
    }

    /// Sends one message with descriptors attached (fd store).
    pub fn send_with_fds(&self, msg: &str, fds: &[BorrowedFd<'_>]) -> bool {
        let Some(sock) = &self.sock else { return false };
        let msg = truncate(msg);
        match sys::send_datagram(sock, &self.dest, msg.as_bytes(), fds) {
            Ok(_) => true,
            Err(e) => {
                if !self.warned.replace(true) {
                    log::warn(&format!(
                        "! cannot notify systemd: {e} (further failures are not logged)"
                    ));
                }
                false
            }
        }
    }

    /// `READY=1`, with the first watchdog ping in the same message: the
    /// watchdog starts counting when start-up completes.
    pub fn ready(&self, status: &str) {
        let mut msg = format!(
            "READY=1\nSTATUS={}\nMAINPID={}",
            one_line(status),
            std::process::id()
        );
        if self.watchdog.is_some() {
            msg.push_str("\nWATCHDOG=1");
        }
        self.send(&msg);
    }

    /// `RELOADING=1` with the monotonic clock read now (after the signal).
    pub fn reloading(&self, status: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            sys::monotonic_usec(),
            one_line(status)
        ));
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog_ping(&self) {
        self.send("WATCHDOG=1");
    }

    /// Asks systemd for more time (a slow boot or drain making progress).
    pub fn extend_timeout(&self, by: Duration) {
        self.send(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()));
    }

    /// A failed start: the errno and a reason `systemctl status` shows.
    pub fn failed(&self, errno: i32, reason: &str) {
        self.send(&format!("ERRNO={errno}\nSTATUS={}", one_line(reason)));
    }

    /// Hands a listening socket to the fd store under `name`, replacing
    /// any earlier entry of that name so copies never pile up.
    pub fn store_fd(&self, name: &str, fd: BorrowedFd<'_>) -> bool {
        self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"));
        self.send_with_fds(&format!("FDSTORE=1\nFDNAME={name}"), &[fd])
    }
}

/// `WATCHDOG_USEC` as a period, if set, positive, and meant for `pid`.
fn watchdog_period(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn truncate(msg: &str) -> &str {
    if msg.len() < MAX_MESSAGE {
        return msg;
    }
    let mut end = MAX_MESSAGE - 1;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_rules() {
        assert_eq!(
            watchdog_period(Some("2000000"), None, 5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_period(Some("2000000"), Some("5"), 5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_period(Some("2000000"), Some("6"), 5), None);
        assert_eq!(watchdog_period(Some("0"), None, 5), None);
        assert_eq!(watchdog_period(Some("x"), None, 5), None);
        assert_eq!(watchdog_period(None, Some("5"), 5), None);
    }

    #[test]
    fn messages_stay_small_and_one_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
        let long = "é".repeat(5000);
        assert!(truncate(&long).len() < MAX_MESSAGE);
    }
}
