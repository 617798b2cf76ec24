//! `catamount ctl`: the control app's client, a short-lived process (it
//! may start a thread, unlike the server's master): one request over a
//! fresh connection, the answer read with a deadline and parsed with
//! httparse, its JSON printed.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::state::read_state;
use super::{truncate, CONTROL_MAX_HEADERS};
use crate::bind::{resolve, BindSpec};

/// `catamount ctl`: deadline to connect, and for the whole answer.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(15);
/// `catamount ctl`: longest answer read.
pub const CTL_MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// `catamount ctl --help`.
pub const CTL_USAGE: &str = "\
Usage: catamount ctl [--control-url URL] [--control-token TOKEN | -S FILE] COMMAND

Talks to a running catamount's control app (--control-url) and prints
its JSON answer.

COMMANDS
    stats            workers, threads and request counts
    restart          hot restart (as SIGUSR2)
    phased-restart   replace workers one at a time (as SIGUSR1; cluster mode)
    stop             graceful stop (as SIGTERM)
    halt             exit at once, without waiting for requests in flight

OPTIONS
    --control-url URL      unix:///PATH or tcp://127.0.0.1:PORT
    --control-token TOKEN  the control app's token (visible in ps; prefer -S)
    -S, --state FILE       read the URL and token from the server's state file
    -h, --help             this text

EXIT STATUS
    0 the command was accepted; 1 it failed (no server, refused, HTTP
    error); 2 bad usage.
";

/// `catamount ctl ...` (the arguments after `ctl`): sends one command,
/// prints the JSON answer. Returns the exit status: 0 on success, 1 when
/// the server could not be reached or refused, 2 on bad usage.
pub fn ctl_main(args: Vec<OsString>) -> i32 {
    let parsed = match parse_ctl_args(args) {
        Ok(Some(p)) => p,
        Ok(None) => {
            print!("{CTL_USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("catamount ctl: {e}; run catamount ctl --help for usage");
            return 2;
        }
    };
    let (url, token) = match resolve_target(&parsed) {
        Ok(t) => t,
        Err((code, e)) => {
            eprintln!("catamount ctl: {e}");
            return code;
        }
    };
    match call(&url, token.as_deref(), parsed.command) {
        Ok((200, body)) => {
            println!("{body}");
            0
        }
        Ok((status, body)) => {
            let hint = if status == 403 {
                "; check --control-token, or pass -S with the server's state file"
            } else {
                ""
            };
            eprintln!(
                "catamount ctl: {}: HTTP {status} {}: {body}{hint}",
                parsed.command,
                crate::http::reason(status)
            );
            1
        }
        Err(e) => {
            eprintln!("catamount ctl: {}: {url}: {e}", parsed.command);
            1
        }
    }
}

/// The command line of `ctl`, validated.
struct CtlArgs {
    url: Option<String>,
    token: Option<String>,
    state: Option<PathBuf>,
    command: &'static str,
}

pub(crate) const CTL_COMMANDS: [&str; 5] = ["stats", "restart", "phased-restart", "stop", "halt"];

/// `Ok(None)` for `--help`.
fn parse_ctl_args(args: Vec<OsString>) -> Result<Option<CtlArgs>, String> {
    let mut args = pico_args::Arguments::from_vec(args);
    if args.contains(["-h", "--help"]) {
        return Ok(None);
    }
    let url: Option<String> = args
        .opt_value_from_str("--control-url")
        .map_err(|e| format!("--control-url: {e}"))?;
    let token: Option<String> = args
        .opt_value_from_str("--control-token")
        // Never echo the value: it is a secret.
        .map_err(|_| "--control-token needs a value (visible ASCII)".to_string())?;
    let state: Option<PathBuf> = args
        .opt_value_from_os_str(["-S", "--state"], |s: &OsStr| {
            Ok::<_, &str>(PathBuf::from(s))
        })
        .map_err(|e| format!("--state: {e}"))?;
    let rest = args.finish();
    let mut free = Vec::new();
    for a in rest {
        let s = a
            .into_string()
            .map_err(|a| format!("unexpected argument {a:?}"))?;
        if s.starts_with('-') {
            return Err(format!("unknown option {s:?}"));
        }
        free.push(s);
    }
    let command = match free.as_slice() {
        [c] => CTL_COMMANDS
            .iter()
            .copied()
            .find(|k| k == c)
            .ok_or_else(|| {
                format!(
                    "unknown command {c:?}; expected stats, restart, phased-restart, stop or halt"
                )
            })?,
        [] => {
            return Err(
                "no command; expected stats, restart, phased-restart, stop or halt".to_string(),
            )
        }
        [_, extra, ..] => return Err(format!("unexpected argument {extra:?} after the command")),
    };
    Ok(Some(CtlArgs {
        url,
        token,
        state,
        command,
    }))
}

/// The URL and token: the options win over the state file. The error
/// carries the exit status.
fn resolve_target(a: &CtlArgs) -> Result<(String, Option<String>), (i32, String)> {
    let state = match &a.state {
        Some(p) => Some(read_state(p).map_err(|e| (1, e))?),
        None => None,
    };
    let url = a
        .url
        .clone()
        .or_else(|| state.as_ref().and_then(|s| s.control_url.clone()))
        .ok_or_else(|| match &a.state {
            Some(p) => (
                1,
                format!(
                    "state file {} has no control_url: start the server with --control-url",
                    p.display()
                ),
            ),
            None => (
                2,
                "no control URL; pass --control-url URL or -S STATE_FILE; run catamount ctl \
                 --help for usage"
                    .to_string(),
            ),
        })?;
    let token = a
        .token
        .clone()
        .or_else(|| state.and_then(|s| s.control_auth_token));
    Ok((url, token))
}

/// One request over a fresh connection; the status and body.
pub(super) fn call(url: &str, token: Option<&str>, command: &str) -> Result<(u16, String), String> {
    let deadline = Instant::now() + CTL_TIMEOUT;
    // ssl:// by its scheme, before its options are read: neither a missing
    // cert= nor a build without TLS is the reason.
    if url.starts_with("ssl://") {
        return Err("ssl:// is not supported; expected unix:///PATH or tcp://HOST:PORT".into());
    }
    let spec =
        BindSpec::parse(url).map_err(|e| format!("control URL {:?}: {}", e.uri(), e.problem()))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET /{command} HTTP/1.1\r\nHost: catamount\r\n{auth}Connection: close\r\n\r\n");
    let raw = match spec {
        BindSpec::Unix { path, .. } => {
            let s = connect_unix(&path, CTL_TIMEOUT).map_err(|e| {
                format!("cannot connect: {e}; is the server running with --control-url {url}?")
            })?;
            exchange(s, request.as_bytes(), deadline)
        }
        BindSpec::Tcp { host, port, .. } => {
            let s = connect_tcp(&host, port).map_err(|e| {
                format!("cannot connect: {e}; is the server running with --control-url {url}?")
            })?;
            exchange(s, request.as_bytes(), deadline)
        }
        BindSpec::Fd { .. } => {
            return Err("expected unix:///PATH or tcp://HOST:PORT".to_string());
        }
    }
    .map_err(|e| format!("no answer: {e}"))?;
    parse_response(&raw)
}

/// connect(2) on a unix socket blocks while the server's backlog is full
/// and std offers no timeout for it, so it runs on a helper thread (this
/// is the short-lived `ctl` process, never the server).
fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("ctl-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(path));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {}s", timeout.as_secs()),
        )),
    }
}

/// Tries each address `host` stands for (`localhost`: as for a bind,
/// 127.0.0.1 then ::1), as the server binds it.
fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in resolve(host, port)? {
        match TcpStream::connect_timeout(&addr, CTL_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A stream `ctl` can bound in time.
trait CtlStream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

impl CtlStream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl CtlStream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// Sends `request`, reads until the server closes, by `deadline`.
fn exchange(mut s: impl CtlStream, request: &[u8], deadline: Instant) -> io::Result<Vec<u8>> {
    let left = |d: Instant| {
        let l = d.saturating_duration_since(Instant::now());
        if l.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        } else {
            Ok(l)
        }
    };
    s.set_timeouts(left(deadline)?)?;
    s.write_all(request)?;
    let mut out = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        s.set_timeouts(left(deadline)?)?;
        match s.read(&mut tmp) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&tmp[..n]);
                if out.len() as u64 > CTL_MAX_RESPONSE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("answer over {CTL_MAX_RESPONSE} bytes"),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The whole answer arrived before the server closed with
            // bytes of ours unread: keep what we have.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !out.is_empty() => {
                return Ok(out)
            }
            Err(e) => return Err(e),
        }
    }
}

/// `HTTP/1.1 200 OK\r\n...\r\n\r\nBODY` → (200, BODY): the head parsed
/// by httparse, the body cut at its `Content-Length` (the server closes
/// after it).
pub(super) fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let mut headers = [httparse::EMPTY_HEADER; CONTROL_MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let end = match head.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("the server closed before a complete answer".to_string())
        }
        Err(e) => {
            let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            return Err(format!(
                "not an HTTP answer ({e}): {:?}",
                truncate(line.trim_end(), 80)
            ));
        }
    };
    // A complete response head always has its code.
    let status = head.code.unwrap_or_default();
    let length = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let mut body = &raw[end..];
    if let Some(n) = length {
        if body.len() < n {
            return Err(format!(
                "the answer was cut short ({} of {n} body bytes)",
                body.len()
            ));
        }
        body = &body[..n];
    }
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}
