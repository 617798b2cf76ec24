//! HTTP/1.x wire format with no I/O: request-head parsing into a [`Head`]
//! or a typed [`HttpError`] (one status code each), a chunked-body decoder,
//! and status reason phrases. Everything here works on byte slices so it is
//! unit tested on byte strings and fuzzed (fuzz/).
//!
//! `httparse` tokenizes the head; this module adds what it leaves to the
//! caller: the size limits (checked before tokenizing, so that a huge URI is
//! 414 even while the head is still arriving), the 505 versus 400 choice,
//! the request-target forms (absolute-form reduced to origin-form), the
//! Host rule, and body framing with the request-smuggling rules of
//! RFC 9112 §6.

use std::borrow::Cow;
use std::fmt;

/// Longest request-target accepted; longer gets 414.
pub const MAX_URI: usize = 8 * 1024;
/// Largest request head (request line + headers + blank line); larger gets 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one request; more gets 431.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size + extensions) in a chunked body; longer gets 400.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Room a request line has beyond its target: method, two spaces and the
/// version. A request line (without its CRLF) longer than
/// `MAX_URI + REQUEST_LINE_SLACK` gets 414, even before its end arrives.
const REQUEST_LINE_SLACK: usize = 1024;
/// Longest request line accepted, without its line ending.
const MAX_REQUEST_LINE: usize = MAX_URI + REQUEST_LINE_SLACK;

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

/// Decodes a chunked body incrementally, with no I/O.
///
/// RFC 9112 §7.1: `chunk-size [chunk-ext] CRLF chunk-data CRLF`, repeated,
/// then `0 [chunk-ext] CRLF`, trailer fields (skipped) and a final CRLF.
/// Every line ending must be CRLF: a bare LF inside chunk framing is 400,
/// because line-ending leniency that differs between a proxy and this
/// server is how chunked bodies get smuggled. Each input byte is consumed
/// as it arrives (no look-ahead), so any split of the input makes progress.
///
/// [`with_limit`](Self::with_limit) refuses a body whose declared chunk
/// sizes add up to more than the limit with 413 while the size is being
/// read, before any of that chunk's data is waited for.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The chunk size being read, then the data bytes left in the chunk.
    size: u64,
    /// Sum of the sizes of the chunks before the current one.
    declared: u64,
    /// Most body bytes the chunk sizes may declare in all (`max_body`).
    limit: u64,
    /// Hex digits read in the current chunk-size.
    digits: usize,
    /// Bytes of the current chunk-size or trailer line, without CRLF.
    line: usize,
    /// Bytes of the trailer section so far, line endings included.
    trailers: usize,
    /// Set by the first error; every later call returns it again.
    failed: Option<HttpError>,
}

/// Where a [`ChunkedDecoder`] is in the chunked grammar.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Hex digits of a chunk-size.
    #[default]
    Size,
    /// Whitespace after the size (BWS); only `;` or CRLF may follow.
    SizeSpace,
    /// A chunk extension, ignored up to CRLF.
    Extension,
    /// The CR ending a chunk-size line has been read.
    SizeLf,
    /// `size` bytes of chunk data remain.
    Data,
    /// Chunk data is complete; its CR comes next.
    DataCr,
    /// The CR after chunk data has been read.
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// The CR ending a trailer field line has been read.
    TrailerLf,
    /// The CR of the final empty line has been read.
    EndLf,
    /// The body is complete; nothing more is consumed.
    Done,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder with no limit of its own on the body size (a caller that
    /// counts the decoded bytes itself).
    pub fn new() -> Self {
        Self::with_limit(u64::MAX)
    }

    /// A decoder that fails with [`HttpError::PayloadTooLarge`] as soon as
    /// one chunk-size, or the sum of the chunk-sizes so far, exceeds
    /// `limit` bytes.
    pub fn with_limit(limit: u64) -> Self {
        ChunkedDecoder {
            state: ChunkState::default(),
            size: 0,
            declared: 0,
            limit,
            digits: 0,
            line: 0,
            trailers: 0,
            failed: None,
        }
    }

    /// Decodes from `input` into `out`; returns (bytes of input consumed,
    /// bytes of `out` written).
    ///
    /// Consumes all of `input` unless the body ends inside it (the rest
    /// belongs to the next request) or `out` is full in the middle of chunk
    /// data. After an error every call returns that error.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), HttpError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut read = 0;
        let mut written = 0;
        while read < input.len() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data => {
                    let left = usize::try_from(self.size).unwrap_or(usize::MAX);
                    let n = left.min(input.len() - read).min(out.len() - written);
                    if n == 0 {
                        break; // `out` is full
                    }
                    out[written..written + n].copy_from_slice(&input[read..read + n]);
                    read += n;
                    written += n;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                _ => {
                    if let Err(e) = self.step(input[read]) {
                        self.failed = Some(e);
                        return Err(e);
                    }
                    read += 1;
                }
            }
        }
        Ok((read, written))
    }

    /// True once the last chunk and the trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Advances the grammar by one framing byte (any state but `Data` and
    /// `Done`, which [`decode`](Self::decode) handles).
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        use ChunkState as S;
        match self.state {
            S::Size => match hex_digit(b) {
                Some(d) => {
                    if self.size > u64::MAX >> 4 {
                        return Err(HttpError::BadRequest("chunk size overflows 64 bits"));
                    }
                    self.size = (self.size << 4) | d;
                    self.digits += 1;
                    self.size_line_byte()?;
                    // More digits only make it larger: refuse now, before
                    // the line ends and long before the data would.
                    if self.size > self.limit - self.declared {
                        return Err(HttpError::PayloadTooLarge);
                    }
                }
                None if self.digits == 0 => {
                    return Err(HttpError::BadRequest("chunk size is not hexadecimal"))
                }
                None => match b {
                    b' ' | b'\t' => {
                        self.state = S::SizeSpace;
                        self.size_line_byte()?;
                    }
                    b';' => {
                        self.state = S::Extension;
                        self.size_line_byte()?;
                    }
                    b'\r' => self.state = S::SizeLf,
                    _ => return Err(HttpError::BadRequest("invalid byte after chunk size")),
                },
            },
            S::SizeSpace => match b {
                b' ' | b'\t' => self.size_line_byte()?,
                b';' => {
                    self.state = S::Extension;
                    self.size_line_byte()?;
                }
                b'\r' => self.state = S::SizeLf,
                _ => return Err(HttpError::BadRequest("invalid byte after chunk size")),
            },
            S::Extension => match b {
                b'\r' => self.state = S::SizeLf,
                b'\t' | b' '..=b'~' | 0x80..=0xff => self.size_line_byte()?,
                _ => return Err(HttpError::BadRequest("invalid byte in chunk extension")),
            },
            S::SizeLf => {
                if b != b'\n' {
                    return Err(HttpError::BadRequest("chunk-size line must end with CRLF"));
                }
                self.digits = 0;
                self.line = 0;
                // Within the limit (checked per digit), so no overflow.
                self.declared += self.size;
                self.state = if self.size == 0 {
                    S::TrailerStart
                } else {
                    S::Data
                };
            }
            S::DataCr => {
                if b != b'\r' {
                    return Err(HttpError::BadRequest("chunk data must end with CRLF"));
                }
                self.state = S::DataLf;
            }
            S::DataLf => {
                if b != b'\n' {
                    return Err(HttpError::BadRequest("chunk data must end with CRLF"));
                }
                self.state = S::Size;
            }
            S::TrailerStart => {
                self.trailer_byte()?;
                if b == b'\r' {
                    self.state = S::EndLf;
                } else if is_token(b) {
                    self.line = 1;
                    self.state = S::Trailer;
                } else {
                    // Includes obs-fold (a line starting with SP or HTAB).
                    return Err(HttpError::BadRequest("invalid trailer field"));
                }
            }
            S::Trailer => {
                self.trailer_byte()?;
                match b {
                    b'\r' => self.state = S::TrailerLf,
                    b'\t' | b' '..=b'~' | 0x80..=0xff => {
                        self.line += 1;
                        if self.line > MAX_CHUNK_LINE {
                            return Err(HttpError::HeadersTooLarge);
                        }
                    }
                    _ => return Err(HttpError::BadRequest("invalid byte in trailer field")),
                }
            }
            S::TrailerLf => {
                self.trailer_byte()?;
                if b != b'\n' {
                    return Err(HttpError::BadRequest("trailer field must end with CRLF"));
                }
                self.line = 0;
                self.state = S::TrailerStart;
            }
            S::EndLf => {
                self.trailer_byte()?;
                if b != b'\n' {
                    return Err(HttpError::BadRequest("chunked body must end with CRLF"));
                }
                self.state = S::Done;
            }
            S::Data | S::Done => unreachable!("decode() handles Data and Done itself"),
        }
        Ok(())
    }

    /// Counts one byte of a chunk-size line against [`MAX_CHUNK_LINE`].
    fn size_line_byte(&mut self) -> Result<(), HttpError> {
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(HttpError::BadRequest("chunk-size line too long"));
        }
        Ok(())
    }

    /// Counts one byte of the trailer section against [`MAX_HEAD`].
    fn trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailers += 1;
        if self.trailers > MAX_HEAD {
            return Err(HttpError::HeadersTooLarge);
        }
        Ok(())
    }
}

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

/// Decodes `%XX` escapes (`+` stays `+`); `None` when a `%` is not
/// followed by two hex digits. Shared by the static app's paths, bind URI
/// options and the control app's query.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|&c| hex_value(c))?;
            let lo = b.get(i + 2).and_then(|&c| hex_value(c))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The reason phrase of a status code (`"Not Found"` for 404), or `""`.
///
/// Phrases are those of RFC 9110 §15 (so 413 is "Content Too Large"),
/// plus 428, 429 and 431 from RFC 6585.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
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

/// Index of the first byte that is not part of an empty line (CR, LF)
/// at the start of `buf`; httparse skips these before the request line.
fn skip_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// The first index of `needle` in `hay`, eight bytes at a time: a byte
/// loop with an early exit does not vectorize, and every request's head
/// is searched with it.
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Zero bytes of `x` are the matches. The classic has-zero test can
        // flag bytes above a real zero, never below one, so the lowest flag
        // (little-endian: first in memory) is exact.
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

/// The value of an ASCII hex digit.
fn hex_digit(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

/// RFC 9110 §5.6.2 `tchar`, the bytes of a field name.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a complete head or panics with the error.
    fn parse(buf: &[u8]) -> (Head, usize) {
        match parse_head(buf) {
            Ok(Some(done)) => done,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    /// The error a head gets, or panics.
    fn error(buf: &[u8]) -> HttpError {
        match parse_head(buf) {
            Err(e) => e,
            other => panic!(
                "{:?}: expected an error, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    /// A GET with the given extra header lines (each ending in CRLF).
    fn get(version: &str, extra: &str) -> Vec<u8> {
        format!("GET / {version}\r\nHost: h\r\n{extra}\r\n").into_bytes()
    }

    // ---- HttpError and reason ----

    #[test]
    fn head_scan_agrees_with_head_end_for_every_split() {
        let heads: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest",
            b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\nrest",
            b"GET / HTTP/1.1\r\nA: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\nC: d\r\n",
            b"\r\n\r\n\r\n",
        ];
        for head in heads {
            // Fed one byte at a time, and in two pieces split anywhere.
            let mut scan = HeadScan::default();
            let mut found = None;
            for n in 1..=head.len() {
                found = found.or(scan.find(&head[..n]));
            }
            assert_eq!(found, head_end(head), "{:?}", String::from_utf8_lossy(head));
            for split in 0..=head.len() {
                let mut scan = HeadScan::default();
                let first = scan.find(&head[..split]);
                let end = first.or_else(|| scan.find(head));
                assert_eq!(end, head_end(head), "split at {split}");
            }
        }
    }

    #[test]
    fn head_scan_notes_the_request_line() {
        let mut scan = HeadScan::default();
        assert_eq!(scan.find(b"\r\nGET /x"), None);
        assert!(!scan.line_complete());
        assert_eq!(scan.find(b"\r\nGET /x\r\nHo"), None);
        assert!(scan.line_complete());
    }

    #[test]
    fn every_error_has_its_status_and_a_message() {
        let all = [
            (HttpError::BadRequest("x"), 400),
            (HttpError::Timeout, 408),
            (HttpError::PayloadTooLarge, 413),
            (HttpError::UriTooLong, 414),
            (HttpError::HeadersTooLarge, 431),
            (HttpError::NotImplemented, 501),
            (HttpError::VersionNotSupported, 505),
        ];
        for (e, status) in all {
            assert_eq!(e.status(), status);
            assert!(!e.to_string().is_empty());
            assert!(!reason(status).is_empty(), "{status}");
        }
    }

    #[test]
    fn reason_phrases() {
        let known = [100, 101, 300, 305, 421, 422, 426, 428, 429, 431]
            .into_iter()
            .chain(200..=206)
            .chain([301, 302, 303, 304, 307, 308])
            .chain(400..=417)
            .chain(500..=505);
        for status in known {
            assert!(!reason(status).is_empty(), "{status}");
        }
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(404), "Not Found");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(505), "HTTP Version Not Supported");
        for unknown in [0, 99, 207, 306, 418, 430, 506, 999] {
            assert_eq!(reason(unknown), "", "{unknown}");
        }
    }

    // ---- request line ----

    #[test]
    fn simple_get() {
        let buf = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let (head, n) = parse(buf);
        assert_eq!(n, buf.len());
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a%20b?x=1");
        assert_eq!(head.minor, 1);
        assert_eq!(
            head.headers,
            vec![
                ("Host".to_owned(), b"example.com".to_vec()),
                ("Accept".to_owned(), b"*/*".to_vec()),
            ]
        );
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn http_1_0_without_host() {
        let (head, n) = parse(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((head.minor, n), (0, 18));
        assert!(!head.keep_alive);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse_head(&buf[..end]), Ok(None), "prefix of {end}");
        }
        assert_eq!(parse(buf).1, buf.len());
    }

    #[test]
    fn pipelined_requests_end_exactly() {
        let first = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n".to_vec();
        let second = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        let third = b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec();
        let mut buf = first.clone();
        buf.extend_from_slice(b"hello");
        buf.extend_from_slice(&second);
        buf.extend_from_slice(&third);

        let (head, n) = parse(&buf);
        assert_eq!(n, first.len());
        assert_eq!(head.framing, Framing::Length(5));
        assert_eq!(&buf[n..n + 5], b"hello");
        let rest = &buf[n + 5..];
        let (head, n) = parse(rest);
        assert_eq!((head.target.as_str(), n), ("/b", second.len()));
        let (head, n) = parse(&rest[n..]);
        assert_eq!((head.target.as_str(), n), ("/c", third.len()));
        assert!(!head.keep_alive);
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let buf = b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\nX";
        let (head, n) = parse(buf);
        assert_eq!(head.method, "GET");
        assert_eq!(n, buf.len() - 1);
        assert_eq!(head_end(buf), Some(n));
        assert_eq!(parse_head(b"\r\n\r\n"), Ok(None));
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let buf = b"GET / HTTP/1.1\nHost: h\n\nNEXT";
        let (_, n) = parse(buf);
        assert_eq!(n, buf.len() - 4);
        assert_eq!(head_end(buf), Some(n));
    }

    /// The target and Host values that `method target version` with
    /// `host_line` (a header line or "") is parsed into.
    fn target_and_host(
        method: &str,
        target: &str,
        version: &str,
        host_line: &str,
    ) -> (String, Vec<Vec<u8>>) {
        let (head, _) = parse(format!("{method} {target} {version}\r\n{host_line}\r\n").as_bytes());
        let hosts = head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .collect();
        (head.target, hosts)
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        // RFC 9112 §3.2.2: the path and query are taken from the target,
        // and its authority replaces whatever Host says.
        let cases = [
            ("http://x/a.txt", "/a.txt", "x"),
            ("HTTP://x/a.txt", "/a.txt", "x"),
            ("https://x/a.txt", "/a.txt", "x"),
            (
                "hTTpS://example.com:8443/a.txt?q=1&r",
                "/a.txt?q=1&r",
                "example.com:8443",
            ),
            ("http://x", "/", "x"),
            ("http://x:80", "/", "x:80"),
            ("http://x?q=1", "/?q=1", "x"),
            ("http://x/", "/", "x"),
            ("http://[::1]:8080/d/e%20f/", "/d/e%20f/", "[::1]:8080"),
            ("http://x//y", "//y", "x"),
        ];
        for (target, path, host) in cases {
            let (t, hosts) = target_and_host("GET", target, "HTTP/1.1", "Host: other\r\n");
            assert_eq!(t, path, "{target}");
            assert_eq!(hosts, vec![host.as_bytes().to_vec()], "{target}");
        }
        // HTTP/1.0 needs no Host: the target's authority becomes one.
        let (t, hosts) = target_and_host("HEAD", "http://x/a", "HTTP/1.0", "");
        assert_eq!((t.as_str(), hosts), ("/a", vec![b"x".to_vec()]));
        // HTTP/1.1 still needs its Host field (RFC 9112 §3.2).
        let no_host = b"GET http://x/a HTTP/1.1\r\n\r\n";
        assert!(matches!(error(no_host), HttpError::BadRequest(_)));
        // Any method but CONNECT; OPTIONS with an empty path means `*`
        // (RFC 9112 §3.2.4).
        assert_eq!(
            target_and_host("POST", "http://x/p", "HTTP/1.1", "Host: x\r\n").0,
            "/p"
        );
        assert_eq!(
            target_and_host("OPTIONS", "http://x", "HTTP/1.1", "Host: x\r\n").0,
            "*"
        );
        assert_eq!(
            target_and_host("OPTIONS", "http://x/", "HTTP/1.1", "Host: x\r\n").0,
            "/"
        );
    }

    #[test]
    fn other_target_forms() {
        // Origin-form as sent; asterisk-form for OPTIONS; CONNECT's
        // authority-form is left to the handler.
        for (method, target) in [
            ("GET", "/a%20b?x=1"),
            ("GET", "//x/a"),
            ("OPTIONS", "*"),
            ("CONNECT", "example.com:443"),
        ] {
            let (t, hosts) = target_and_host(method, target, "HTTP/1.1", "Host: h\r\n");
            assert_eq!((t.as_str(), hosts), (target, vec![b"h".to_vec()]));
        }
        for (method, target) in [
            ("GET", "*"),
            ("HEAD", "*"),
            ("GET", "a.txt"),
            ("GET", "example.com:443"),
            ("OPTIONS", "*x"),
            ("GET", "ftp://x/a.txt"),
            ("GET", "file:///etc/passwd"),
            ("GET", "http:/a.txt"),
            ("GET", "http:x/a.txt"),
            ("GET", "http:///a.txt"),
            ("GET", "http://:80/a.txt"),
            ("GET", "http://user@x/a.txt"),
            ("GET", "http://x\"y/a.txt"),
            ("GET", "http://x\\y/a.txt"),
            ("GET", "https://"),
        ] {
            let buf = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert!(
                matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn fragment_in_target_is_400() {
        // RFC 9112 §3.2: no request-target form has a fragment; a client
        // strips it. A `#` sent anyway would be read differently by
        // different parsers in a chain.
        for (method, target) in [
            ("GET", "/hello.txt#frag"),
            ("GET", "/#"),
            ("GET", "#"),
            ("GET", "/a?x=1#y"),
            ("GET", "/a?x=#"),
            ("GET", "http://x/a#b"),
            ("GET", "http://x#b"),
            ("OPTIONS", "*#"),
            ("CONNECT", "x:443#y"),
        ] {
            let buf = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert!(
                matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
                "{method} {target}"
            );
        }
        // Escaped, it is an ordinary byte of the path.
        assert_eq!(
            parse(b"GET /a%23b HTTP/1.1\r\nHost: h\r\n\r\n").0.target,
            "/a%23b"
        );
    }

    #[test]
    fn malformed_request_lines_are_400() {
        let bad: &[&[u8]] = &[
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",
            b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / FOO/1.1\r\nHost: h\r\n\r\n",
            b"GET / http/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n",
            b"GET / HTTP/2.0.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/\r\nHost: h\r\n\r\n",
            b"GET / HTTP/.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\rHost: h\r\n\r\n",
            b"\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        for buf in bad {
            assert!(
                matches!(error(buf), HttpError::BadRequest(_)),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn other_versions_are_505() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"GET / HTTP/3\r\n\r\n",
            // Known as soon as the token goes wrong, before the head ends.
            b"PRI * HTTP/2",
            b"GET / HTTP/1.23",
        ];
        for buf in bad {
            assert_eq!(
                error(buf),
                HttpError::VersionNotSupported,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn higher_1x_minors_are_served_as_1_1() {
        // RFC 9110 §2.5: a 1.x minor above ours is answered as HTTP/1.1,
        // the highest minor this server conforms to.
        for minor in 2..=9 {
            let buf = format!("GET /a HTTP/1.{minor}\r\nHost: h\r\nX: y\r\n\r\nNEXT");
            let (head, n) = parse(buf.as_bytes());
            assert_eq!(n, buf.len() - 4);
            assert_eq!((head.minor, head.target.as_str()), (1, "/a"));
            assert!(head.keep_alive);
            assert_eq!(head_end(buf.as_bytes()), Some(n));
        }
        // With HTTP/1.1's rules: Host is required, close is honoured.
        assert!(matches!(
            error(b"GET / HTTP/1.2\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        let (head, _) = parse(b"GET / HTTP/1.2\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert!(!head.keep_alive);
        // Still arriving: wait for the rest.
        let buf = b"GET / HTTP/1.2\r\nHost: h\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse_head(&buf[..end]), Ok(None), "{end}");
        }
        // Other errors after the version are still found.
        assert!(matches!(
            error(b"GET / HTTP/1.2\r\nBad Name: v\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    // ---- limits ----

    /// A GET whose target is `/` followed by `len - 1` letters.
    fn get_with_target(len: usize) -> Vec<u8> {
        let target = format!("/{}", "a".repeat(len - 1));
        format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
    }

    #[test]
    fn uri_at_the_limit_and_one_over() {
        let (head, _) = parse(&get_with_target(MAX_URI));
        assert_eq!(head.target.len(), MAX_URI);
        assert_eq!(error(&get_with_target(MAX_URI + 1)), HttpError::UriTooLong);
    }

    #[test]
    fn long_uri_is_414_before_the_head_ends() {
        let buf = get_with_target(MAX_URI + 1);
        // Only the method, a space and the target have arrived.
        assert_eq!(error(&buf[..4 + MAX_URI + 1]), HttpError::UriTooLong);
        assert_eq!(parse_head(&buf[..4 + MAX_URI]), Ok(None));
        // Huge and incomplete: still 414, not 431.
        let huge = format!("GET /{}", "a".repeat(MAX_HEAD * 2));
        assert_eq!(error(huge.as_bytes()), HttpError::UriTooLong);
    }

    #[test]
    fn long_request_line_is_414() {
        let method = "M".repeat(MAX_REQUEST_LINE + 1);
        assert_eq!(error(method.as_bytes()), HttpError::UriTooLong);
        let line = format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(error(line.as_bytes()), HttpError::UriTooLong);
        // Exactly at the limit (a long method makes up the slack), with
        // its CR waiting for its LF: not yet; whole: accepted.
        let method = "M".repeat(MAX_REQUEST_LINE - MAX_URI - " HTTP/1.1".len() - 1);
        let target = format!("/{}", "a".repeat(MAX_URI - 1));
        let line = format!("{method} {target} HTTP/1.1");
        assert_eq!(line.len(), MAX_REQUEST_LINE);
        assert_eq!(parse_head(format!("{line}\r").as_bytes()), Ok(None));
        parse(format!("{line}\r\nHost: h\r\n\r\n").as_bytes());
        let over = format!("M{line}\r\nHost: h\r\n\r\n");
        assert_eq!(error(over.as_bytes()), HttpError::UriTooLong);
    }

    /// A head of exactly `len` bytes: request line, Host, one filler
    /// header, blank line.
    fn head_of_len(len: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
        format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(len - fixed)
        )
        .into_bytes()
    }

    #[test]
    fn head_at_the_limit_and_one_over() {
        let buf = head_of_len(MAX_HEAD);
        assert_eq!(buf.len(), MAX_HEAD);
        assert_eq!(parse(&buf).1, MAX_HEAD);
        // With a pipelined request behind it, still fine.
        let mut more = buf.clone();
        more.extend_from_slice(&get("HTTP/1.1", ""));
        assert_eq!(parse(&more).1, MAX_HEAD);

        assert_eq!(
            error(&head_of_len(MAX_HEAD + 1)),
            HttpError::HeadersTooLarge
        );
    }

    #[test]
    fn incomplete_head_at_the_limit_is_431() {
        let buf = head_of_len(MAX_HEAD + 1);
        assert_eq!(parse_head(&buf[..MAX_HEAD - 1]), Ok(None));
        assert_eq!(error(&buf[..MAX_HEAD]), HttpError::HeadersTooLarge);
        let blank_lines = b"\r\n".repeat(MAX_HEAD / 2);
        assert_eq!(error(&blank_lines), HttpError::HeadersTooLarge);
    }

    /// A GET with Host and `count - 1` more fields.
    fn get_with_fields(count: usize) -> Vec<u8> {
        let extra: String = (1..count).map(|i| format!("X-{i}: {i}\r\n")).collect();
        get("HTTP/1.1", &extra)
    }

    #[test]
    fn header_count_at_the_limit_and_one_over() {
        assert_eq!(
            parse(&get_with_fields(MAX_HEADERS)).0.headers.len(),
            MAX_HEADERS
        );
        assert_eq!(
            error(&get_with_fields(MAX_HEADERS + 1)),
            HttpError::HeadersTooLarge
        );
        // Known before the head ends.
        let buf = get_with_fields(MAX_HEADERS + 1);
        assert_eq!(error(&buf[..buf.len() - 2]), HttpError::HeadersTooLarge);
    }

    // ---- header fields ----

    #[test]
    fn malformed_fields_are_400() {
        let bad: &[&str] = &[
            "X: a\r\n folded\r\n",  // obs-fold
            "X: a\r\n\tfolded\r\n", // obs-fold with HTAB
            "X : a\r\n",            // space before colon
            "X\t: a\r\n",           // HTAB before colon
            ": a\r\n",              // empty name
            "X a\r\n",              // no colon
            "X: a\rb\r\n",          // bare CR
            "X: a\0b\r\n",          // NUL
            "X: a\x7fb\r\n",        // DEL
            "X(: a\r\n",            // separator in name
        ];
        for extra in bad {
            assert!(
                matches!(error(&get("HTTP/1.1", extra)), HttpError::BadRequest(_)),
                "{extra:?}"
            );
        }
        // A space before the first field would hide it from some parsers.
        assert!(matches!(
            error(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    #[test]
    fn field_values_are_trimmed_and_kept_raw() {
        let (head, _) = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX:  \tv a\xff \t\r\nEmpty:\r\n\r\n");
        assert_eq!(head.headers[1], ("X".to_owned(), b"v a\xff".to_vec()));
        assert_eq!(head.headers[2], ("Empty".to_owned(), Vec::new()));
    }

    #[test]
    fn host_rules() {
        let missing = b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n";
        assert!(matches!(error(missing), HttpError::BadRequest(_)));
        let twice = get("HTTP/1.1", "host: h\r\n");
        assert!(matches!(error(&twice), HttpError::BadRequest(_)));
        let twice_1_0 = b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n";
        assert!(matches!(error(twice_1_0), HttpError::BadRequest(_)));
        for bad in ["a b", "a/b", "a@b", "a\"b", "\u{e9}"] {
            let buf = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert!(
                matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
                "{bad}"
            );
        }
        for good in [
            "",
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "xn--bcher-kva.de",
        ] {
            let buf = format!("GET / HTTP/1.1\r\nHOST: {good}\r\n\r\n");
            parse(buf.as_bytes());
        }
    }

    // ---- framing ----

    fn framing_of(extra: &str) -> Result<Framing, HttpError> {
        parse_head(&get("HTTP/1.1", extra)).map(|r| r.expect("complete head").0.framing)
    }

    #[test]
    fn content_length() {
        assert_eq!(framing_of(""), Ok(Framing::None));
        assert_eq!(framing_of("Content-Length: 0\r\n"), Ok(Framing::Length(0)));
        assert_eq!(
            framing_of("content-length: 42\r\n"),
            Ok(Framing::Length(42))
        );
        assert_eq!(
            framing_of("Content-Length: 007\r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            framing_of("Content-Length: 18446744073709551615\r\n"),
            Ok(Framing::Length(u64::MAX))
        );
        // Identical duplicates, as fields or as a list, are one value.
        assert_eq!(
            framing_of("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing_of("Content-Length: 5, 5\r\n"),
            Ok(Framing::Length(5))
        );
    }

    #[test]
    fn bad_content_length_is_400() {
        for value in [
            "",
            "-5",
            "+5",
            "5 5",
            "0x5",
            "5a",
            "5,",
            ",5",
            "1.0",
            "18446744073709551616",
            "99999999999999999999999",
            "\u{ff15}",
        ] {
            let extra = format!("Content-Length: {value}\r\n");
            assert!(
                matches!(framing_of(&extra), Err(HttpError::BadRequest(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn conflicting_content_lengths_are_400() {
        for extra in [
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5\r\nContent-Length: 5, 0\r\n",
        ] {
            assert!(
                matches!(framing_of(extra), Err(HttpError::BadRequest(_))),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn length_and_chunked_together_is_400() {
        for extra in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        ] {
            assert!(
                matches!(framing_of(extra), Err(HttpError::BadRequest(_))),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding() {
        for value in [
            "chunked",
            "Chunked",
            "CHUNKED",
            "chunked ",
            "chunked,",
            ", chunked",
        ] {
            let extra = format!("Transfer-Encoding: {value}\r\n");
            assert_eq!(framing_of(&extra), Ok(Framing::Chunked), "{value:?}");
        }
        for value in [
            "gzip",
            "gzip, chunked",
            "chunked, gzip",
            "identity",
            "chunked, chunked",
            "chunked;q=1",
            "chunk",
        ] {
            let extra = format!("Transfer-Encoding: {value}\r\n");
            assert_eq!(
                framing_of(&extra),
                Err(HttpError::NotImplemented),
                "{value:?}"
            );
        }
        assert_eq!(
            framing_of("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Err(HttpError::NotImplemented)
        );
        assert!(matches!(
            framing_of("Transfer-Encoding: \r\n"),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn transfer_encoding_in_http_1_0_is_400() {
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
        // faulty framing, whatever the coding and even with a length.
        for extra in [
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        ] {
            let buf = format!("POST / HTTP/1.0\r\n{extra}\r\n");
            assert!(
                matches!(error(buf.as_bytes()), HttpError::BadRequest(_)),
                "{extra:?}"
            );
        }
        // Content-Length alone is fine in HTTP/1.0.
        let (head, _) = parse(b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(head.framing, Framing::Length(5));
    }

    // ---- connection and expect ----

    #[test]
    fn keep_alive_matrix() {
        let cases = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: CLOSE\r\n", false),
            ("HTTP/1.1", "Connection: keep-alive\r\n", true),
            ("HTTP/1.1", "Connection: Upgrade, close\r\n", false),
            (
                "HTTP/1.1",
                "Connection: foo\r\nConnection: close\r\n",
                false,
            ),
            ("HTTP/1.1", "Connection: closed\r\n", true),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: keep-alive\r\n", true),
            ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
            ("HTTP/1.0", "Connection: foo , keep-alive \r\n", true),
            (
                "HTTP/1.0",
                "Connection: foo\r\nConnection: keep-alive\r\n",
                true,
            ),
            ("HTTP/1.0", "Connection: close\r\n", false),
            ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
            ("HTTP/1.0", "Connection: keep-alives\r\n", false),
        ];
        for (version, extra, want) in cases {
            let (head, _) = parse(&get(version, extra));
            assert_eq!(head.keep_alive, want, "{version} {extra:?}");
        }
    }

    #[test]
    fn expect_continue() {
        let cases = [
            ("HTTP/1.1", "Expect: 100-continue\r\n", true),
            ("HTTP/1.1", "expect: 100-Continue\r\n", true),
            ("HTTP/1.1", "", false),
            ("HTTP/1.1", "Expect: something\r\n", false),
            ("HTTP/1.0", "Expect: 100-continue\r\n", false),
        ];
        for (version, extra, want) in cases {
            let (head, _) = parse(&get(version, extra));
            assert_eq!(head.expect_continue, want, "{version} {extra:?}");
        }
    }

    // ---- log_escape ----

    #[test]
    fn log_escape_is_nginx_s() {
        assert!(matches!(log_escape("/a%20b?x=1&y='z'"), Cow::Borrowed(_)));
        let cases = [
            ("", ""),
            ("GET", "GET"),
            ("/a\"b", "/a\\x22b"),
            ("/a\\b", "/a\\x5Cb"),
            ("\\x22", "\\x5Cx22"),
            (
                "\0\x01\t\n\r\x1b\x1f",
                "\\x00\\x01\\x09\\x0A\\x0D\\x1B\\x1F",
            ),
            (" !~\x7f", " !~\\x7F"),
            ("/\u{e9}", "/\\xC3\\xA9"),
            ("/\u{1F600}", "/\\xF0\\x9F\\x98\\x80"),
            (
                "/\" 200 0 0.0001\n1.2.3.4 - - [x] \"GET /",
                "/\\x22 200 0 0.0001\\x0A1.2.3.4 - - [x] \\x22GET /",
            ),
        ];
        for (raw, escaped) in cases {
            assert_eq!(log_escape(raw), escaped, "{raw:?}");
        }
        assert_eq!(log_escape_bytes(b"/\xff\x80"), "/\\xFF\\x80");
    }

    // ---- LoggedLine ----

    fn logged(buf: &[u8]) -> (String, String, String) {
        let l = LoggedLine::from_refused(buf);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(l.method), text(l.target), text(l.version))
    }

    fn parts(m: &str, t: &str, v: &str) -> (String, String, String) {
        (m.into(), t.into(), v.into())
    }

    #[test]
    fn a_refused_request_logs_what_its_line_shows() {
        // 414: the line has not ended, the method is known.
        let mut long = b"GET /".to_vec();
        long.resize(MAX_REQUEST_LINE + 100, b'a');
        assert_eq!(parse_head(&long).err(), Some(HttpError::UriTooLong));
        assert_eq!(logged(&long), parts("GET", "-", "-"));
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(logged(&long), parts("GET", "-", "-"));
        // A complete line: all of it (431, a bad header).
        assert_eq!(
            logged(b"\r\nPOST /a?b HTTP/1.1\r\nX: \x01\r\n"),
            parts("POST", "/a?b", "HTTP/1.1")
        );
        assert_eq!(
            logged(b"GET /x HTTP/2.0\n\n"),
            parts("GET", "/x", "HTTP/2.0")
        );
        // Not a request line: what cannot be read stays `-`.
        assert_eq!(logged(b""), parts("-", "-", "-"));
        assert_eq!(logged(b"GET"), parts("-", "-", "-"));
        assert_eq!(logged(b" GET / HTTP/1.1\r\n"), parts("-", "-", "-"));
        assert_eq!(logged(b"G(T / HTTP/1.1\r\n"), parts("-", "-", "-"));
        assert_eq!(logged(&[b'A'; 64]), parts("-", "-", "-"));
        assert_eq!(logged(b"GET /a b HTTP/1.1\r\n"), parts("GET", "-", "-"));
        assert_eq!(logged(b"GET /a\r\n"), parts("GET", "-", "-"));
        assert_eq!(logged(b"GET /a FOO\r\n"), parts("GET", "-", "-"));
        assert_eq!(logged(b"\x16\x03\x01\x02\x00"), parts("-", "-", "-"));
        // Written escaped, three fields always.
        let line = LoggedLine::from_refused(b"GET /\"x\xff HTTP/1.1\r\n");
        assert_eq!(line.to_string(), "GET /\\x22x\\xFF HTTP/1.1");
        assert_eq!(LoggedLine::from_refused(b"").to_string(), "- - -");
    }

    // ---- head_end ----

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b""), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Some(27));
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nbody\r\n\r\n"),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: h\n\n"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\n\r\n"), Some(26));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n\n"), Some(26));
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
    }

    #[test]
    fn head_end_agrees_with_parse_head() {
        let heads: Vec<Vec<u8>> = vec![
            get("HTTP/1.1", ""),
            get("HTTP/1.0", "Connection: keep-alive\r\n"),
            get_with_fields(MAX_HEADERS),
            head_of_len(MAX_HEAD),
            get_with_target(MAX_URI),
            b"\nGET / HTTP/1.1\nHost: h\r\nX: y\n\r\n".to_vec(),
        ];
        for head in heads {
            let mut buf = head.clone();
            buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(head_end(&buf), Some(head.len()));
            assert_eq!(parse(&buf).1, head.len());
            // Every prefix is incomplete (sampled on the big heads).
            let step = 1 + head.len() / 2000;
            for end in (0..head.len())
                .step_by(step)
                .chain(head.len() - 2..head.len())
            {
                assert_eq!(head_end(&head[..end]), None);
            }
        }
    }

    #[test]
    fn find_byte_at_every_offset_and_alignment() {
        let hay: Vec<u8> = (0..64u8).map(|i| i | 0x80).collect();
        for start in 0..8 {
            for len in 0..40 {
                let slice = &hay[start..start + len];
                assert_eq!(find_byte(b'\n', slice), None);
                for at in 0..len {
                    let mut v = slice.to_vec();
                    v[at] = b'\n';
                    // A second match later must not win, nor a byte that
                    // differs from the needle by one bit or a borrow.
                    if at + 1 < len {
                        v[at + 1] = b'\n';
                    }
                    if at > 0 {
                        v[at - 1] = b'\x0b';
                    }
                    assert_eq!(find_byte(b'\n', &v), Some(at), "{start} {len} {at}");
                }
            }
        }
        assert_eq!(find_byte(0, &[1, 0, 0, 1, 1, 1, 1, 1, 0]), Some(1));
        assert_eq!(find_byte(0xff, &[0xfe; 9]), None);
    }

    // ---- chunked ----

    /// Feeds `input` in pieces cut at `cuts`, with an output buffer of
    /// `out_len` bytes; returns the body and the input consumed.
    fn decode_pieces(
        input: &[u8],
        cuts: &[usize],
        out_len: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut out = vec![0; out_len];
        let mut pos = 0;
        let mut bounds = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            // Keep calling while the piece makes progress.
            while pos < end && !decoder.is_done() {
                let (used, written) = decoder.decode(&input[pos..end], &mut out)?;
                assert!(used <= end - pos && written <= out.len());
                body.extend_from_slice(&out[..written]);
                pos += used;
                if used == 0 && written == 0 {
                    break;
                }
            }
        }
        if !decoder.is_done() {
            // Timeout, so that no BadRequest case passes by being cut short.
            return Err(HttpError::Timeout);
        }
        // Done: nothing more is consumed.
        assert_eq!(decoder.decode(&input[pos..], &mut out), Ok((0, 0)));
        Ok((body, pos))
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        decode_pieces(input, &[], 64)
    }

    const BODY: &[u8] =
        b"5\r\nhello\r\n1;name=value;quoted=\"a b\"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";

    #[test]
    fn chunked_basic() {
        let (body, used) = decode_all(BODY).expect("valid");
        assert_eq!(body, b"hello 0123456789");
        assert_eq!(used, BODY.len());
        assert_eq!(decode_all(b"0\r\n\r\n"), Ok((Vec::new(), 5)));
    }

    #[test]
    fn chunked_split_at_every_offset() {
        for cut in 0..=BODY.len() {
            let (body, used) = decode_pieces(BODY, &[cut], 64).expect("valid");
            assert_eq!(
                (body.as_slice(), used),
                (&b"hello 0123456789"[..], BODY.len())
            );
        }
        for a in 0..=BODY.len() {
            for b in a..=BODY.len() {
                let (body, _) = decode_pieces(BODY, &[a, b], 3).expect("valid");
                assert_eq!(body, b"hello 0123456789");
            }
        }
        let every: Vec<usize> = (1..BODY.len()).collect();
        let (body, _) = decode_pieces(BODY, &every, 1).expect("valid");
        assert_eq!(body, b"hello 0123456789");
    }

    #[test]
    fn chunked_leaves_the_next_request() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let mut decoder = ChunkedDecoder::new();
        let mut out = [0; 64];
        assert!(!decoder.is_done());
        let (used, written) = decoder.decode(&input, &mut out).expect("valid");
        assert_eq!((used, written), (BODY.len(), 16));
        assert!(decoder.is_done());
        assert_eq!(decoder.decode(&input[used..], &mut out), Ok((0, 0)));
    }

    #[test]
    fn chunked_waits_for_room() {
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(decoder.decode(b"5\r\nhello", &mut []), Ok((3, 0)));
        assert_eq!(
            decoder.decode(b"hello\r\n0\r\n\r\n", &mut [0; 2]),
            Ok((2, 2))
        );
        assert_eq!(
            decoder.decode(b"llo\r\n0\r\n\r\n", &mut [0; 9]),
            Ok((10, 3))
        );
        assert!(decoder.is_done());
    }

    #[test]
    fn chunk_sizes() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"0000000000000000000001\r\nx\r\n0\r\n\r\n", b"x"),
            (b"1 \t;ext\r\nx\r\n00\r\n\r\n", b"x"),
            (b"1 \r\nx\r\n0;last\r\n\r\n", b"x"),
        ];
        for (input, body) in ok {
            assert_eq!(decode_all(input).map(|r| r.0).as_deref(), Ok(*body));
        }
        // The largest size is accepted (the caller's max_body refuses it).
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(
            decoder.decode(b"ffffffffffffffff\r\nab", &mut [0; 8]),
            Ok((20, 2))
        );
    }

    /// Feeds `input` whole to a decoder limited to `limit` bytes.
    fn decode_limited(limit: u64, input: &[u8]) -> Result<(usize, usize), HttpError> {
        ChunkedDecoder::with_limit(limit).decode(input, &mut [0; 256])
    }

    #[test]
    fn chunk_size_over_the_limit_is_413_before_its_data() {
        let mut at_limit = b"64\r\n".to_vec();
        at_limit.extend_from_slice(&[b'x'; 100]);
        at_limit.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(decode_limited(100, &at_limit), Ok((at_limit.len(), 100)));
        // One over: refused on the size line, no data needed.
        assert_eq!(
            decode_limited(100, b"65\r\n"),
            Err(HttpError::PayloadTooLarge)
        );
        assert_eq!(decode_limited(100, b"65"), Err(HttpError::PayloadTooLarge));
        assert_eq!(decode_limited(0, b"1\r\n"), Err(HttpError::PayloadTooLarge));
        assert_eq!(decode_limited(0, b"0\r\n\r\n"), Ok((5, 0)));
        // Leading zeros are not a size.
        assert_eq!(decode_limited(100, b"000000064\r\n"), Ok((11, 0)));
        // Too large for the limit before it is too large for 64 bits.
        assert_eq!(
            decode_limited(100, b"fffffffffffffffffffff\r\n"),
            Err(HttpError::PayloadTooLarge)
        );
    }

    #[test]
    fn declared_chunk_sizes_add_up_against_the_limit() {
        let mut body = b"32\r\n".to_vec();
        body.extend_from_slice(&[b'x'; 50]);
        body.extend_from_slice(b"\r\n32\r\n");
        // 50 + 50: fine, waiting for the second chunk's data.
        assert_eq!(decode_limited(100, &body), Ok((body.len(), 50)));
        // 50 + 51: refused at the second size line.
        body.truncate(body.len() - 4);
        body.extend_from_slice(b"33\r\n");
        let mut decoder = ChunkedDecoder::with_limit(100);
        assert_eq!(
            decoder.decode(&body, &mut [0; 256]),
            Err(HttpError::PayloadTooLarge)
        );
        // The error sticks.
        assert_eq!(
            decoder.decode(b"0\r\n\r\n", &mut [0; 8]),
            Err(HttpError::PayloadTooLarge)
        );
        // Split anywhere, the same answer.
        for cut in 0..body.len() {
            let mut decoder = ChunkedDecoder::with_limit(100);
            let mut out = [0; 256];
            let result = decoder
                .decode(&body[..cut], &mut out)
                .and_then(|(used, _)| decoder.decode(&body[used..], &mut out));
            assert_eq!(result, Err(HttpError::PayloadTooLarge), "{cut}");
        }
    }

    #[test]
    fn bad_chunk_framing_is_400() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b";ext\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"g\r\n",
            b"5 5\r\n",
            b"10000000000000000\r\n",
            b"fffffffffffffffff\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\rhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r0\r\n\r\n",
            b"5\r\nhello0\r\n\r\n",
            b"1;a\0b\r\nx\r\n0\r\n\r\n",
            b"1;a\nx\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\n\rx",
            b"0\r\nX: a\n\r\n",
            b"0\r\nX: a\n\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\n X: folded\r\n\r\n",
            b"0\r\n: a\r\n\r\n",
            b"0\r\nX: a\0\r\n\r\n",
        ];
        for input in bad {
            assert!(
                matches!(decode_all(input), Err(HttpError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn errors_stick() {
        let mut decoder = ChunkedDecoder::new();
        let e = decoder.decode(b"z", &mut [0; 4]).expect_err("not hex");
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut [0; 4]), Err(e));
        assert!(!decoder.is_done());
    }

    #[test]
    fn chunk_line_at_the_limit_and_one_over() {
        let line = |len: usize| {
            let mut v = b"1;".to_vec();
            v.resize(len, b'x');
            v.extend_from_slice(b"\r\nA\r\n0\r\n\r\n");
            v
        };
        assert_eq!(
            decode_all(&line(MAX_CHUNK_LINE)).map(|r| r.0),
            Ok(b"A".to_vec())
        );
        assert!(matches!(
            decode_all(&line(MAX_CHUNK_LINE + 1)),
            Err(HttpError::BadRequest(_))
        ));
        // Known before the line ends.
        let mut decoder = ChunkedDecoder::new();
        let long = line(MAX_CHUNK_LINE + 1);
        assert!(decoder
            .decode(&long[..MAX_CHUNK_LINE + 1], &mut [])
            .is_err());
        // Leading zeros count too.
        let zeros = vec![b'0'; MAX_CHUNK_LINE + 1];
        assert!(decode_all(&zeros).is_err());
    }

    #[test]
    fn trailers_are_skipped() {
        let input = b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv\xff \r\n\r\nNEXT";
        let (body, used) = decode_all(input).expect("valid");
        assert_eq!(body, b"abc");
        assert_eq!(used, input.len() - 4);
        for cut in 0..=input.len() {
            assert_eq!(decode_pieces(input, &[cut], 2).map(|r| r.1), Ok(used));
        }
    }

    #[test]
    fn trailer_limits() {
        let line = |len: usize| {
            let mut v = b"0\r\nX:".to_vec();
            v.resize(3 + len, b'v');
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        assert!(decode_all(&line(MAX_CHUNK_LINE)).is_ok());
        assert_eq!(
            decode_all(&line(MAX_CHUNK_LINE + 1)),
            Err(HttpError::HeadersTooLarge)
        );

        // The whole trailer section, line endings included, at the limit.
        let section = |len: usize| {
            let field = format!("X:{}\r\n", "v".repeat(MAX_CHUNK_LINE - 2));
            let mut v = b"0\r\n".to_vec();
            let mut left = len - 2;
            while left > field.len() {
                v.extend_from_slice(field.as_bytes());
                left -= field.len();
            }
            // The last field fills what is left exactly (at least "X:\r\n").
            assert!(left >= 4);
            v.extend_from_slice(format!("X:{}\r\n", "v".repeat(left - 4)).as_bytes());
            v.extend_from_slice(b"\r\n");
            assert_eq!(v.len(), 3 + len);
            v
        };
        assert!(decode_all(&section(MAX_HEAD)).is_ok());
        assert_eq!(
            decode_all(&section(MAX_HEAD + 1)),
            Err(HttpError::HeadersTooLarge)
        );
    }
}
