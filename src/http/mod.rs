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
//!
//! By role: `head.rs` the request head and its errors, `chunked.rs` the
//! chunked-body decoder, `escape.rs` access-log escaping, `write.rs`
//! response heads; here the limits, the byte helpers they share, status
//! reason phrases and percent-decoding. Every item is re-exported here
//! (`http::parse_head`), the paths the fuzz target uses.

mod chunked;
mod escape;
mod head;
mod write;

pub use chunked::*;
pub use escape::*;
pub use head::*;
pub(crate) use write::*;

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

/// Index of the first byte that is not part of an empty line (CR, LF)
/// at the start of `buf`; httparse skips these before the request line.
fn skip_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

#[cfg(test)]
mod tests;
