//! Adopting inherited listening sockets. Sockets reach a catamount process
//! three ways — systemd socket activation, systemd's fd store after a
//! restart, and catamount's own hot restart (exec in place) — and all three
//! use the sd_listen_fds protocol (sd_listen_fds(3)): `LISTEN_PID`,
//! `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from 3. This module is the
//! only code that reads them.
//!
//! Names tell who owns a socket: a name given by systemd (a socket unit's
//! `FileDescriptorName=`, `unknown`, `stored`, …) means systemd owns it —
//! never unlink it, never shut it down, never put it in the fd store.
//! Sockets catamount bound itself are passed on under
//! [`OWN_NAME_PREFIX`] + their bind URI, so the next process knows they
//! are its own (their unix socket files are its to remove).
//!
//! Not every inherited descriptor is a socket: systemd's `OpenFile=`
//! (254+) passes open files among them, after the sockets. Those are kept
//! apart ([`files`]) and read by name ([`read_file`], for `key=fd://NAME`),
//! so the service needs no access to the file's path.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

// MAX_LISTEN_FDS lives in sys, whose record before `main` reads as many.
use crate::sys::{self, FdKind, SockName, MAX_LISTEN_FDS};
/// Names of sockets catamount bound itself start with this.
pub const OWN_NAME_PREFIX: &str = "catamount+";
/// Longest name systemd accepts (FDNAME_MAX).
pub const FDNAME_MAX: usize = 255;
/// Largest inherited file [`read_file`] reads (keys and certificates are
/// a few KiB; a CA bundle a few hundred).
#[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS reads them by name
pub const INHERITED_FILE_MAX: usize = 1024 * 1024;
/// The buffer [`read_file`] reads an inherited file through.
#[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS reads them by name
const READ_CHUNK: usize = 64 * 1024;

/// The environment variables of the protocol; all are removed once read.
const VARS: [&str; 4] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
];

/// One inherited listening socket, validated.
#[derive(Debug)]
pub struct Inherited {
    pub fd: OwnedFd,
    /// Its name from LISTEN_FDNAMES (`unknown` when none was given).
    pub name: String,
    /// Where it listens.
    pub addr: SockName,
}

impl Inherited {
    /// True for sockets a previous catamount bound itself.
    pub fn is_own(&self) -> bool {
        self.name.starts_with(OWN_NAME_PREFIX)
    }

    /// The bind URI a previous catamount recorded in the name, if own.
    pub fn own_uri(&self) -> Option<String> {
        self.name.strip_prefix(OWN_NAME_PREFIX).map(decode_name)
    }

    /// How logs name it: `tcp://127.0.0.1:9292`, `unix:///run/x.sock`.
    pub fn uri(&self) -> String {
        sock_uri(&self.addr)
    }
}

/// A URI for a socket address, as logs show it.
pub fn sock_uri(addr: &SockName) -> String {
    match addr {
        SockName::Inet(a) => format!("tcp://{a}"),
        SockName::UnixPath(Some(p)) => format!("unix://{}", p.display()),
        SockName::UnixPath(None) => "unix://(unnamed)".to_string(),
        SockName::UnixAbstract(n) => format!("unix://@{}", String::from_utf8_lossy(n)),
        SockName::Other(f) => format!("(address family {f})"),
    }
}

/// A malformed or unusable activation environment.
#[derive(Debug)]
pub struct ActivationError(pub String);

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One inherited descriptor that is not a socket: what systemd's
/// `OpenFile=` passes (a key, a certificate, a data file), among
/// LISTEN_FDS after the sockets. Read with [`read_file`] by its name
/// (`fd://NAME` in `cert=`, `key=`, `ca=`); never listened on, never put
/// in the fd store; passed on to a hot restart's new image.
#[derive(Debug)]
pub struct InheritedFile {
    pub fd: OwnedFd,
    /// Its name from LISTEN_FDNAMES (OpenFile='s FD-NAME).
    pub name: String,
}

/// The files adopted by [`take_from_env`], kept for the life of the
/// process (a hot restart passes them on).
static FILES: OnceLock<Vec<InheritedFile>> = OnceLock::new();

/// A `cert=`, `key=` or `ca=` value starting with this names a file
/// systemd passed open (`OpenFile=PATH:NAME`) instead of a path.
pub const INHERITED_PREFIX: &str = "fd://";

/// `NAME` for a value `fd://NAME` (see [`INHERITED_PREFIX`]).
pub fn inherited_name(path: &std::path::Path) -> Option<&str> {
    path.to_str()?.strip_prefix(INHERITED_PREFIX)
}

/// The files systemd passed (`OpenFile=`), in LISTEN_FDS order; empty
/// before [`take_from_env`] or when none was passed.
pub fn files() -> &'static [InheritedFile] {
    FILES.get().map_or(&[], Vec::as_slice)
}

/// The whole content of the inherited file `name` (read from offset 0
/// with pread(2), so reading twice, as a certificate reload does, gives
/// the same bytes and moves no shared offset). At most
/// [`INHERITED_FILE_MAX`] bytes.
#[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS reads them by name
pub fn read_file(name: &str) -> io::Result<Vec<u8>> {
    let Some(f) = files().iter().find(|f| f.name == name) else {
        let passed: Vec<&str> = files().iter().map(|f| f.name.as_str()).collect();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no file named {name:?} was passed to this process (passed: {}); \
                 add OpenFile=PATH:{name} to the service",
                if passed.is_empty() {
                    "none".to_string()
                } else {
                    passed.join(", ")
                }
            ),
        ));
    };
    // A duplicate of our own descriptor as a File, for read_at; dropping
    // it closes only the duplicate.
    let file = std::fs::File::from(f.fd.try_clone()?);
    let mut out = Vec::new();
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let n = file.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > INHERITED_FILE_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the file passed as {name:?} is larger than {INHERITED_FILE_MAX} bytes; \
                     pass a key, certificate or CA file"
                ),
            ));
        }
    }
}

/// Reads the protocol's variables once, removes them from the environment
/// (also on error; refused when the process already has a second thread,
/// see [`sys::remove_env`]), and adopts and validates the descriptors:
/// listening stream sockets are returned, other files are kept for
/// [`read_file`]. Call it before the process opens any descriptor of its
/// own: `main` does, through `Server::from_args` (a number opened since
/// the process started is refused as not passed, see
/// [`sys::inspect_inherited`]).
pub fn take_from_env() -> Result<Vec<Inherited>, ActivationError> {
    let get = |k: &str| std::env::var(k).ok();
    let (pid, fds, names) = (get("LISTEN_PID"), get("LISTEN_FDS"), get("LISTEN_FDNAMES"));
    sys::remove_env(&VARS).map_err(|e| ActivationError(e.to_string()))?;
    let count = match parse_env(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )? {
        None => return Ok(Vec::new()),
        Some(c) => c,
    };
    let (n, names) = count;
    // Every number is looked at before any is owned: one nobody passed,
    // or one the process reused since it started, is refused by number
    // instead of adopting (and later closing) a descriptor something else
    // owns.
    let mut kinds = Vec::with_capacity(n);
    for fd in (3..).take(n) {
        match sys::inspect_inherited(fd) {
            Ok(FdKind::NotOpen) => {
                return Err(ActivationError(format!(
                    "LISTEN_FDS={n} but fd {fd} is not open: nothing was passed there; \
                     check the socket unit, or the wrapper script that set LISTEN_FDS"
                )))
            }
            Ok(FdKind::Replaced) => {
                return Err(ActivationError(format!(
                    "LISTEN_FDS={n} but fd {fd} no longer holds what was passed at start: \
                     this process closed it and opened something else there; make the \
                     Server (Server::from_args or Server::new) before opening files"
                )))
            }
            Ok(kind) => kinds.push(kind),
            Err(e) => {
                return Err(ActivationError(format!(
                    "LISTEN_FDS={n} but fd {fd} cannot be inspected: {e}"
                )))
            }
        }
    }
    // Close-on-exec first, for every descriptor, before anything can fail:
    // nothing catamount spawns may inherit them (sd_listen_fds(3)).
    let fds = sys::take_listen_fds(n).map_err(|e| {
        ActivationError(format!(
            "LISTEN_FDS={n} but {e}; check the socket unit or the wrapper script"
        ))
    })?;
    let mut out = Vec::with_capacity(n);
    let mut files = Vec::new();
    for ((fd, name), kind) in fds.into_iter().zip(names).zip(kinds) {
        let raw = fd.as_raw_fd(); // only to name it in messages
        if kind == FdKind::NotSocket {
            files.push(InheritedFile { fd, name });
            continue;
        }
        let addr = validate(&fd, kind).map_err(|why| {
            ActivationError(format!(
                "inherited fd {raw} (name {name:?}) {why}; catamount needs listening stream sockets (ListenStream=)"
            ))
        })?;
        sys::set_nonblocking(&fd).map_err(|e| {
            ActivationError(format!(
                "inherited fd {raw} (name {name:?}): cannot make it non-blocking: {e}"
            ))
        })?;
        out.push(Inherited { fd, name, addr });
    }
    // Once per process (take_listen_fds refuses a second adoption).
    let _ = FILES.set(files);
    Ok(out)
}

/// The protocol's rules on the raw values: `Ok(None)` when the fds are not
/// for this process, else the count and one name per fd.
fn parse_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    my_pid: u32,
) -> Result<Option<(usize, Vec<String>)>, ActivationError> {
    let Some(pid) = pid else { return Ok(None) };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| ActivationError(format!("LISTEN_PID={pid:?} is not a process id")))?;
    if pid != my_pid {
        return Ok(None); // meant for another process (e.g. a wrapper that did not exec)
    }
    let Some(fds) = fds else { return Ok(None) };
    let n: usize = match fds.trim().parse::<i64>() {
        Ok(n) if n > 0 && n as usize <= MAX_LISTEN_FDS => n as usize,
        _ => {
            return Err(ActivationError(format!(
                "LISTEN_FDS={fds:?} is not a count between 1 and {MAX_LISTEN_FDS}"
            )))
        }
    };
    let names: Vec<String> = match names {
        None => vec!["unknown".to_string(); n],
        Some(s) => {
            let v: Vec<String> = s.split(':').map(str::to_string).collect();
            if v.len() != n {
                return Err(ActivationError(format!(
                    "LISTEN_FDNAMES has {} name(s) but LISTEN_FDS={n}; they must match",
                    v.len()
                )));
            }
            v
        }
    };
    Ok(Some((n, names)))
}

/// A listening stream socket of family inet, inet6 or unix (as
/// [`sys::inspect_inherited`] found it), or why not.
fn validate(fd: &OwnedFd, kind: FdKind) -> Result<SockName, String> {
    match kind {
        FdKind::Socket {
            stream: true,
            listening: true,
        } => {}
        FdKind::Socket { stream: false, .. } => {
            return Err("is not a stream socket (a datagram socket? use ListenStream=)".into())
        }
        FdKind::Socket {
            listening: false, ..
        } => {
            return Err(
                "is a connection, not a listening socket (Accept=yes passes connections; \
                 use Accept=no)"
                    .into(),
            )
        }
        FdKind::NotSocket | FdKind::NotOpen | FdKind::Replaced => {
            return Err("is not a socket".into())
        }
    }
    match sys::sock_name_any(fd) {
        Ok(SockName::Other(f)) => Err(format!("has address family {f}, not inet, inet6 or unix")),
        Ok(addr) => Ok(addr),
        Err(e) => Err(format!("cannot be inspected: {e}")),
    }
}

/// The name a socket catamount bound itself travels under. LISTEN_FDNAMES
/// separates names with `:`, so `%` and `:` are percent-encoded.
pub fn own_name(bind_uri: &str) -> String {
    let mut s = String::from(OWN_NAME_PREFIX);
    for c in bind_uri.chars() {
        match c {
            '%' => s.push_str("%25"),
            ':' => s.push_str("%3A"),
            c if c.is_ascii_graphic() => s.push(c),
            c => {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    s.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    if s.len() > FDNAME_MAX {
        // Still unique enough to mark ownership; matching then falls back
        // to the address.
        s.truncate(FDNAME_MAX);
        while !s.is_char_boundary(s.len()) {
            s.pop();
        }
    }
    s
}

/// The inverse of [`own_name`], by the one percent-decoder
/// (`http::percent_decode`); a name it cannot decode (one cut at
/// `FDNAME_MAX` mid-escape, or not made by catamount) is shown as it is.
fn decode_name(s: &str) -> String {
    match crate::http::percent_decode(s) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_rules() {
        assert!(parse_env(None, Some("2"), None, 7).unwrap().is_none());
        assert!(parse_env(Some("8"), Some("2"), None, 7).unwrap().is_none());
        assert!(parse_env(Some("x"), Some("2"), None, 7).is_err());
        assert!(parse_env(Some("7"), None, None, 7).unwrap().is_none());
    }

    #[test]
    fn count_rules() {
        let (n, names) = parse_env(Some("7"), Some("2"), None, 7).unwrap().unwrap();
        assert_eq!(
            (n, names),
            (2, vec!["unknown".to_string(), "unknown".to_string()])
        );
        for bad in ["0", "-1", "abc", "99999999999999999999", "100000"] {
            assert!(parse_env(Some("7"), Some(bad), None, 7).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_must_match_count_and_may_be_empty() {
        let (_, names) = parse_env(Some("7"), Some("3"), Some("web::stored"), 7)
            .unwrap()
            .unwrap();
        assert_eq!(names, vec!["web", "", "stored"]);
        let e = parse_env(Some("7"), Some("2"), Some("web"), 7).unwrap_err();
        assert!(
            e.0.contains("LISTEN_FDNAMES has 1 name(s) but LISTEN_FDS=2"),
            "{e}"
        );
    }

    #[test]
    fn own_names_roundtrip_without_colons() {
        for uri in [
            "tcp://127.0.0.1:9292",
            "tcp://[::1]:80",
            "unix:///run/a%b:c.sock",
        ] {
            let n = own_name(uri);
            assert!(!n.contains(':'), "{n}");
            assert!(n.len() <= FDNAME_MAX);
            let inh = Inherited {
                fd: sys::datagram_socket().unwrap(),
                name: n,
                addr: SockName::UnixPath(None),
            };
            assert!(inh.is_own());
            assert_eq!(inh.own_uri().as_deref(), Some(uri));
        }
        assert!(own_name(&"x".repeat(400)).len() <= FDNAME_MAX);
    }

    #[test]
    fn names_not_made_by_catamount_decode_without_panicking() {
        // LISTEN_FDNAMES comes from outside: a broken escape before a
        // multi-byte character once sliced inside it.
        assert_eq!(decode_name("unix:///a%\u{e9}"), "unix:///a%\u{e9}");
        assert_eq!(decode_name("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(decode_name("tcp%3A//x%3"), "tcp%3A//x%3");
        assert_eq!(decode_name("tcp%3A//x"), "tcp://x");
    }
}
