//! Access-log escaping: what a client chose (method, target, version)
//! shown so that it cannot forge a field or a line.

use std::borrow::Cow;
use std::fmt;

use super::{find_byte, is_token, skip_empty_lines, Head, MAX_REQUEST_LINE, MAX_URI};

/// Escapes text the client chose (method, target) for an access-log line
/// the way nginx's `log_format` does: `"` as `\x22`, `\` as `\x5C`, and
/// every byte below 0x20 or from 0x7f (DEL, and each byte of a non-ASCII
/// character) as `\xHH`. A request then cannot close the quoted field or
/// start a new line, so it cannot forge fields or whole lines. Borrows
/// when nothing needs escaping (the common case).
pub fn log_escape(s: &str) -> Cow<'_, str> {
    log_escape_bytes(s.as_bytes())
}

/// [`log_escape`] on bytes that need not be UTF-8 (a refused request's
/// line, see [`LoggedLine::from_refused`]).
pub fn log_escape_bytes(s: &[u8]) -> Cow<'_, str> {
    let needs = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b);
    if !s.iter().any(|&b| needs(b)) {
        // Printable ASCII only, so valid UTF-8.
        if let Ok(text) = std::str::from_utf8(s) {
            return Cow::Borrowed(text);
        }
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + 16);
    for &b in s {
        if needs(b) {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

/// Longest method or version a refused request's log line shows; a longer
/// one is logged as `-`.
const MAX_LOGGED_TOKEN: usize = 32;

/// What the access log shows of a request line; `-` for a part not known.
/// Displayed as `METHOD TARGET VERSION`, each part escaped with
/// [`log_escape_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedLine<'a> {
    /// The method, or `-`.
    pub method: &'a [u8],
    /// The request-target, or `-`.
    pub target: &'a [u8],
    /// The version as served (`HTTP/1.1`), or `-`.
    pub version: &'a [u8],
}

impl<'a> LoggedLine<'a> {
    /// A parsed request's: the version as it is served (HTTP/1.2 as 1.1).
    pub fn of_head(head: &'a Head) -> LoggedLine<'a> {
        LoggedLine {
            method: head.method.as_bytes(),
            target: head.target.as_bytes(),
            version: if head.minor == 0 {
                b"HTTP/1.0"
            } else {
                b"HTTP/1.1"
            },
        }
    }

    /// For a request refused before its head was parsed, from the bytes
    /// buffered: the method when they start with a token and a space (the
    /// line of a 414 does, long before it ends), and the target and
    /// version too when the whole request line arrived as `METHOD SP
    /// TARGET SP HTTP/x.y` with a target within [`MAX_URI`] (a 431, or a
    /// 400 for a header).
    pub fn from_refused(buf: &'a [u8]) -> LoggedLine<'a> {
        let mut out = LoggedLine {
            method: b"-",
            target: b"-",
            version: b"-",
        };
        let buf = &buf[skip_empty_lines(buf)..];
        let head = &buf[..buf.len().min(MAX_LOGGED_TOKEN + 1)];
        let Some(sp) = find_byte(b' ', head) else {
            return out;
        };
        let method = &buf[..sp];
        if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
            return out;
        }
        out.method = method;
        let rest = &buf[sp + 1..];
        let scan = &rest[..rest.len().min(MAX_REQUEST_LINE + 1)];
        let Some(lf) = find_byte(b'\n', scan) else {
            return out;
        };
        let line = scan[..lf].strip_suffix(b"\r").unwrap_or(&scan[..lf]);
        let Some(sp) = find_byte(b' ', line) else {
            return out;
        };
        let (target, version) = (&line[..sp], &line[sp + 1..]);
        let well_formed = !target.is_empty()
            && target.len() <= MAX_URI
            && !target.contains(&b' ')
            && version.len() <= MAX_LOGGED_TOKEN
            && version.starts_with(b"HTTP/");
        if well_formed {
            out.target = target;
            out.version = version;
        }
        out
    }
}

impl fmt::Display for LoggedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            log_escape_bytes(self.method),
            log_escape_bytes(self.target),
            log_escape_bytes(self.version)
        )
    }
}
