//! HTTP/1.x wire format with no I/O: request-head parsing into a [`Head`]
//! or a typed [`HttpError`] (one status code each), a chunked-body decoder,
//! and status reason phrases. Everything here works on byte slices so it is
//! unit tested on byte strings and fuzzed (fuzz/).

// IMPLEMENTATION PENDING (helper): see the spec in each item's doc.

/// Longest request-target accepted; longer gets 414.
pub const MAX_URI: usize = 8 * 1024;
/// Largest request head (request line + headers + blank line); larger gets 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one request; more gets 431.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size + extensions) in a chunked body; longer gets 400.
pub const MAX_CHUNK_LINE: usize = 4096;

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
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Names as sent, values as raw bytes, in order.
    pub headers: Vec<(String, Vec<u8>)>,
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
    /// 505: a version other than HTTP/1.0 or HTTP/1.1 (HTTP/2 preface too).
    VersionNotSupported,
}

impl HttpError {
    /// The status code answered for this error.
    pub fn status(self) -> u16 {
        todo!()
    }
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: incomplete, no limit exceeded yet; read more.
/// `Ok(Some((head, n)))`: the head occupies `buf[..n]`, the body (if any)
/// starts at `n`. `Err(e)`: answer `e.status()` and close.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let _ = buf;
    todo!()
}

/// Where the head in `buf` ends (index just past the blank line), if it
/// is complete. Cheap enough for the reactor to call after every read.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let _ = buf;
    todo!()
}

/// Decodes a chunked body incrementally, with no I/O.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    _state: (),
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes from `input` into `out`; returns (bytes of input consumed,
    /// bytes of `out` written).
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), HttpError> {
        let _ = (input, out);
        todo!()
    }

    /// True once the last chunk and the trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        todo!()
    }
}

/// The reason phrase of a status code (`"Not Found"` for 404), or `""`.
pub fn reason(status: u16) -> &'static str {
    let _ = status;
    todo!()
}
