//! The request head: parsed once from the bytes buffered so far into a
//! [`Head`] or a typed [`HttpError`] (one status code each), where its
//! end is ([`head_end`], [`HeadScan`] for a head that trickles in), the
//! request-target forms, the Host rule, and body framing with the
//! request-smuggling rules of RFC 9112 §6.

use std::fmt;

use super::{find_byte, skip_empty_lines, MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE, MAX_URI};

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method as sent (a token; case-sensitive).
    pub method: String,
    /// Origin-form (`/path?query`) as sent; an absolute-form target is
    /// reduced to its origin-form (its authority is then the Host field);
    /// `*` for OPTIONS; anything for CONNECT. See `request_target`.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and HTTP/1.2 to 1.9, served as 1.1).
    pub minor: u8,
    /// Names as sent, values as raw bytes, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// How the body that follows the head is delimited.
    pub framing: Framing,
    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: true only with
    /// `Connection: keep-alive`. (Connection is a comma list, case-insensitive.)
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub expect_continue: bool,
}

/// Why a request is refused; each maps to exactly one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed request line or header, smuggling attempt, bad chunk.
    BadRequest(&'static str),
    /// 408: the head or body stopped arriving.
    Timeout,
    /// 413: body larger than `max_body`.
    PayloadTooLarge,
    /// 414: request-target over [`MAX_URI`].
    UriTooLong,
    /// 431: head over [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields.
    HeadersTooLarge,
    /// 501: a Transfer-Encoding other than `chunked`.
    NotImplemented,
    /// 505: a major version other than 1, such as HTTP/2.0 (its preface
    /// too) or HTTP/0.9.
    VersionNotSupported,
}

impl HttpError {
    /// The status code answered for this error.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout => 408,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::Timeout => f.write_str(
                "request timed out: the client stopped sending the head or body; \
                 raise the read timeout if clients are slow",
            ),
            HttpError::PayloadTooLarge => {
                f.write_str("request body is larger than max_body; raise max_body to accept it")
            }
            HttpError::UriTooLong => write!(
                f,
                "request-target is longer than {MAX_URI} bytes (or the request line \
                 longer than {MAX_REQUEST_LINE}); send a shorter URI"
            ),
            HttpError::HeadersTooLarge => write!(
                f,
                "request head is larger than {MAX_HEAD} bytes or has more than \
                 {MAX_HEADERS} header fields; send fewer or smaller headers"
            ),
            HttpError::NotImplemented => {
                f.write_str("unsupported Transfer-Encoding: only `chunked` alone is implemented")
            }
            HttpError::VersionNotSupported => f.write_str(
                "HTTP version not supported: only HTTP/1.x is served, higher minors \
                 as HTTP/1.1 (no HTTP/2 prior knowledge)",
            ),
        }
    }
}

impl std::error::Error for HttpError {}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: incomplete, no limit exceeded yet; read more.
/// `Ok(Some((head, n)))`: the head occupies `buf[..n]`, the body (if any)
/// starts at `n`. `Err(e)`: answer `e.status()` and close.
///
/// Empty lines before the request line are skipped (RFC 9112 §2.2) and
/// count in `n` and against [`MAX_HEAD`]. An incomplete head that already
/// fills [`MAX_HEAD`] bytes is 431 at once: its end can only lie beyond the
/// limit, and a reader whose buffer stops at the limit must not wait for it.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    // Before httparse, which would report a megabyte URI as merely
    // incomplete.
    check_request_line(buf)?;

    // Never tokenize past the limit: a head that does not end inside the
    // window is too large whatever follows.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let parsed = parse_window(window, buf.len());
    if parsed == Err(HttpError::VersionNotSupported) {
        // RFC 9110 §2.5: a higher minor of our major version is served
        // as the highest minor we conform to, and answered with
        // HTTP/1.1. httparse knows only 1.0 and 1.1, so it reads a copy
        // with the minor lowered (rare, so the copy costs nothing).
        if let Some(at) = higher_minor_at(window) {
            let mut copy = window.to_vec();
            copy[at] = b'1';
            return parse_window(&copy, buf.len());
        }
    }
    parsed
}

/// [`parse_head`] on `window`, the first [`MAX_HEAD`] bytes of a buffer of
/// `buffered` bytes.
fn parse_window(window: &[u8], buffered: usize) -> Result<Option<(Head, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let n = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buffered >= MAX_HEAD => {
            return Err(HttpError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(tokenizer_error(e, window)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        // httparse fills all three before it reports Complete.
        return Err(HttpError::BadRequest("malformed request line"));
    };
    let fields: &[httparse::Header<'_>] = req.headers;

    let (target, authority) = request_target(method, target)?;
    check_host(fields, minor)?;
    let framing = framing(fields, minor)?;

    let mut close = false;
    let mut keep_alive_token = false;
    for token in list_elements(fields, "connection") {
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    // `close` wins over `keep-alive` when a confused client sends both.
    let keep_alive = !close && (minor == 1 || keep_alive_token);

    // RFC 9110 §10.1.1: a server ignores 100-continue from HTTP/1.0.
    let expect_continue = minor == 1
        && fields.iter().any(|f| {
            f.name.eq_ignore_ascii_case("expect")
                && trim_ows(f.value).eq_ignore_ascii_case(b"100-continue")
        });

    let mut headers: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|f| (f.name.to_owned(), f.value.to_vec()))
        .collect();
    if let Some(authority) = authority {
        set_host(&mut headers, authority);
    }
    let head = Head {
        method: method.to_owned(),
        target,
        minor,
        headers,
        framing,
        keep_alive,
        expect_continue,
    };
    Ok(Some((head, n)))
}

/// Where the head in `buf` ends (index just past the blank line), if it
/// is complete, scanning the whole buffer: for a head that arrives in
/// pieces use [`HeadScan`], which looks only at the new bytes.
///
/// Accepts the same line endings as [`parse_head`] (CRLF or bare LF, mixed)
/// and skips the same leading empty lines, so for a well-formed head the
/// two agree on the end. The scan looks for LF a word at a time.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut at = skip_empty_lines(buf);
    loop {
        let lf = at + find_byte(b'\n', &buf[at..])?;
        match buf.get(lf + 1)? {
            b'\n' => return Some(lf + 2),
            b'\r' => match buf.get(lf + 2)? {
                b'\n' => return Some(lf + 3),
                _ => at = lf + 1,
            },
            _ => at = lf + 1,
        }
    }
}

/// An incremental [`head_end`]: remembers where the search stopped, so
/// that a head arriving a byte at a time costs a scan linear in its
/// length, not one rescan of everything buffered per read (issue 11: 100
/// connections trickling 60 KB heads cost 15x nginx's CPU with rescans).
///
/// Call [`HeadScan::find`] with the same buffer, only ever appended to;
/// start a new `HeadScan` when bytes are taken off its front.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadScan {
    /// Where the request line starts (past leading empty lines), once a
    /// byte other than CR or LF has arrived.
    start: Option<usize>,
    /// Bytes before this index hold no end of the head; the search resumes
    /// here.
    at: usize,
    /// The request line's LF has arrived. (A flag, not its index: a
    /// `Conn` carries this by value and has no bytes to spare.)
    line_seen: bool,
}

impl HeadScan {
    /// Where the head in `buf` ends, as [`head_end`] says, looking only at
    /// bytes not looked at before (and at most two before them).
    pub fn find(&mut self, buf: &[u8]) -> Option<usize> {
        let start = match self.start {
            Some(s) => s,
            None => {
                let s = self.at + skip_empty_lines(&buf[self.at.min(buf.len())..]);
                if s >= buf.len() {
                    self.at = buf.len();
                    return None;
                }
                self.start = Some(s);
                self.at = s;
                s
            }
        };
        let mut at = self.at.max(start);
        loop {
            let Some(i) = find_byte(b'\n', &buf[at..]) else {
                self.at = buf.len();
                return None;
            };
            let lf = at + i;
            self.line_seen = true;
            let end = match (buf.get(lf + 1), buf.get(lf + 2)) {
                (Some(b'\n'), _) => Some(lf + 2),
                (Some(b'\r'), Some(b'\n')) => Some(lf + 3),
                // Not enough bytes after this LF yet: resume at it.
                (None, _) | (Some(b'\r'), None) => {
                    self.at = lf;
                    return None;
                }
                _ => None,
            };
            if end.is_some() {
                return end;
            }
            at = lf + 1;
        }
    }

    /// The request line has arrived in full (its LF was seen).
    pub fn line_complete(&self) -> bool {
        self.line_seen
    }
}

/// 414 for a request-target over [`MAX_URI`] or a request line over
/// [`MAX_REQUEST_LINE`], whether or not the line is complete yet. Only
/// lengths are checked here; httparse judges the syntax afterwards.
fn check_request_line(buf: &[u8]) -> Result<(), HttpError> {
    let rest = &buf[skip_empty_lines(buf)..];
    // One byte past the limit is enough to know.
    let scan = &rest[..rest.len().min(MAX_REQUEST_LINE + 2)];
    let line = match find_byte(b'\n', scan) {
        Some(lf) => &scan[..lf],
        None => scan,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LINE {
        return Err(HttpError::UriTooLong);
    }
    if let Some(sp) = find_byte(b' ', line) {
        let after = &line[sp + 1..];
        let target_len = find_byte(b' ', after).unwrap_or(after.len());
        if target_len > MAX_URI {
            return Err(HttpError::UriTooLong);
        }
    }
    Ok(())
}

/// Maps an httparse error to ours. A version token shaped like
/// `HTTP/x.y` that httparse refused (anything but 1.0 and 1.1) is 505;
/// every other tokenizer error is a malformed request, 400.
fn tokenizer_error(e: httparse::Error, buf: &[u8]) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::HeadersTooLarge,
        httparse::Error::Version if looks_like_http_version(version_token(buf)) => {
            HttpError::VersionNotSupported
        }
        httparse::Error::Version => HttpError::BadRequest("malformed HTTP version"),
        httparse::Error::HeaderName => HttpError::BadRequest("invalid header field name"),
        httparse::Error::HeaderValue => HttpError::BadRequest("invalid header field value"),
        httparse::Error::NewLine => HttpError::BadRequest("invalid line ending"),
        _ => HttpError::BadRequest("malformed request line"),
    }
}

/// The third space-separated token of the request line (possibly cut
/// short if the line has not fully arrived), or `b""`.
fn version_token(buf: &[u8]) -> &[u8] {
    let rest = &buf[skip_empty_lines(buf)..];
    let line = match find_byte(b'\n', rest) {
        Some(lf) => &rest[..lf],
        None => rest,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.split(|&b| b == b' ').nth(2).unwrap_or(b"")
}

/// Where the minor digit of a version token `HTTP/1.2` to `HTTP/1.9` is
/// in `buf` (its request line may still be arriving).
fn higher_minor_at(buf: &[u8]) -> Option<usize> {
    let token = version_token(buf);
    match token {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] => {
            // `token` is a subslice of `buf`.
            let start = token.as_ptr() as usize - buf.as_ptr() as usize;
            Some(start + token.len() - 1)
        }
        _ => None,
    }
}

/// `HTTP/` then a digit, then digits with at most one `.`: `HTTP/2.0`,
/// `HTTP/0.9`, or `HTTP/2` of a line still arriving.
fn looks_like_http_version(token: &[u8]) -> bool {
    let Some(number) = token.strip_prefix(b"HTTP/") else {
        return false;
    };
    number.first().is_some_and(u8::is_ascii_digit)
        && number.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && number.iter().filter(|&&b| b == b'.').count() <= 1
}

/// The request-target as a handler sees it, and the authority of an
/// absolute-form target (RFC 9112 §3.2).
///
/// Origin-form (`/path?query`) is kept as sent. Absolute-form with an
/// `http` or `https` scheme (any case, any host and port: a client may
/// reach us under any name) becomes the origin-form of its path and query,
/// `/` when it has no path (§3.2.2); OPTIONS with an empty path means `*`
/// (§3.2.4). Asterisk-form is only for OPTIONS. CONNECT's authority-form
/// is passed on as sent: tunnels are the handler's business. A `#`
/// anywhere, or any other form, is 400.
fn request_target<'a>(
    method: &str,
    target: &'a str,
) -> Result<(String, Option<&'a str>), HttpError> {
    // No form has a fragment (RFC 9112 §3.2; clients strip it): parsers
    // in a chain that disagree on where a target ends differ in which
    // resource they check and which they serve.
    if target.contains('#') {
        return Err(HttpError::BadRequest("`#` in the request-target"));
    }
    if target.starts_with('/') || method == "CONNECT" {
        return Ok((target.to_owned(), None));
    }
    if target == "*" {
        return match method {
            "OPTIONS" => Ok((target.to_owned(), None)),
            _ => Err(HttpError::BadRequest(
                "asterisk-form target is only for OPTIONS",
            )),
        };
    }
    let Some((authority, rest)) = split_absolute(target) else {
        return Err(HttpError::BadRequest(
            "request-target is neither origin-form nor http(s) absolute-form",
        ));
    };
    // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid; a
    // userinfo `@` (deprecated, §4.2.4) fails the byte check.
    let host_empty = authority.is_empty() || authority.starts_with(':');
    if host_empty || !authority.bytes().all(is_host_byte) {
        return Err(HttpError::BadRequest(
            "invalid authority in absolute-form target",
        ));
    }
    let origin = match rest {
        "" if method == "OPTIONS" => "*".to_owned(),
        "" => "/".to_owned(),
        _ if rest.starts_with('?') => format!("/{rest}"),
        _ => rest.to_owned(),
    };
    Ok((origin, Some(authority)))
}

/// Splits an `http://` or `https://` target (scheme in any case) into its
/// authority and the rest (path and query, possibly empty).
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(rest.split_at(end))
}

/// Gives the Host field the authority of an absolute-form target, which
/// a server must use instead of whatever Host says (RFC 9112 §3.2.2):
/// replaced in place, or added for an HTTP/1.0 request without one.
fn set_host(headers: &mut Vec<(String, Vec<u8>)>, authority: &str) {
    match headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
    {
        Some((_, value)) => *value = authority.as_bytes().to_vec(),
        None => headers.push(("Host".to_owned(), authority.as_bytes().to_vec())),
    }
}

/// RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0,
/// and its value must look like `uri-host [":" port]`.
fn check_host(fields: &[httparse::Header<'_>], minor: u8) -> Result<(), HttpError> {
    let mut hosts = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(HttpError::BadRequest("more than one Host header")),
        (None, _) if minor == 1 => Err(HttpError::BadRequest(
            "missing Host header (required in HTTP/1.1)",
        )),
        (Some(host), None) if !host.value.iter().all(|&b| is_host_byte(b)) => {
            Err(HttpError::BadRequest("invalid Host header"))
        }
        _ => Ok(()),
    }
}

/// Bytes of RFC 3986 `host [":" port]`: unreserved, pct-encoded,
/// sub-delims, and `:[]` for ports and IPv6 literals. An empty Host is
/// allowed (RFC 9112 §3.2, for a target without authority).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

/// Body framing from Content-Length and Transfer-Encoding (RFC 9112 §6).
fn framing(fields: &[httparse::Header<'_>], minor: u8) -> Result<Framing, HttpError> {
    let has = |name: &str| fields.iter().any(|f| f.name.eq_ignore_ascii_case(name));
    match (has("transfer-encoding"), has("content-length")) {
        // RFC 9112 §6.1: an HTTP/1.0 recipient "MUST treat the message as
        // if the framing is faulty": HTTP/1.0 has no transfer codings, so a
        // proxy in front may have framed this body differently.
        (true, _) if minor == 0 => Err(HttpError::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request (faulty framing)",
        )),
        // RFC 9112 §6.1: "ought to be handled as an error"; a proxy that
        // believed the other header would see a different body.
        (true, true) => Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding (request smuggling)",
        )),
        (true, false) => transfer_coding(fields),
        (false, true) => content_length(fields).map(Framing::Length),
        (false, false) => Ok(Framing::None),
    }
}

/// Only `chunked`, alone and once, is implemented; empty list elements
/// are ignored (RFC 9110 §5.6.1), an empty list is malformed.
fn transfer_coding(fields: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    let mut codings = list_elements(fields, "transfer-encoding");
    match (codings.next(), codings.next()) {
        (None, _) => Err(HttpError::BadRequest("empty Transfer-Encoding")),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        _ => Err(HttpError::NotImplemented),
    }
}

/// Every Content-Length value, comma-separated elements included, must be
/// the same string of digits that fits a u64 (RFC 9110 §8.6).
fn content_length(fields: &[httparse::Header<'_>]) -> Result<u64, HttpError> {
    let mut length = None;
    for field in fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
    {
        for element in field.value.split(|&b| b == b',').map(trim_ows) {
            let value = parse_decimal(element)?;
            if length.is_some_and(|l| l != value) {
                return Err(HttpError::BadRequest("conflicting Content-Length values"));
            }
            length = Some(value);
        }
    }
    length.ok_or(HttpError::BadRequest("empty Content-Length"))
}

/// A non-empty string of ASCII digits as a u64: no sign, no spaces.
fn parse_decimal(digits: &[u8]) -> Result<u64, HttpError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("Content-Length is not a number"));
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(HttpError::BadRequest("Content-Length overflows 64 bits"))
    })
}

/// The non-empty, trimmed elements of every field named `name` read as a
/// comma-separated list.
fn list_elements<'a>(
    fields: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |f| f.name.eq_ignore_ascii_case(name))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Strips optional whitespace (SP, HTAB) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
