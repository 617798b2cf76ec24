//! Response heads, written into a buffer (no I/O): the status line, the
//! engine's headers (`Server`, `Date`), the caller's, framing and
//! `Connection`. The one writer of a response head in catamount: the
//! request path (`response.rs`), the answers to refused requests, the
//! control app and the plain-HTTP answer on a TLS port all use it.

use super::reason;

/// Header names the engine writes itself; a caller's are dropped.
const ENGINE_OWNED: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "server",
];

/// Status line, engine headers, `headers` (minus the framing ones the
/// engine owns, and any with a CR or LF), framing headers from `framing`,
/// the `Connection` header with `connection`'s value if any (see
/// [`connection_value`]; `Upgrade` for a 101), blank line.
pub(crate) fn write_head<'h>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    connection: Option<&[u8]>,
    framing: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa(u64::from(status)).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: catamount\r\n");
    crate::date::with_now(|d| push_header(out, "Date", d.as_bytes()));
    for (name, value) in headers {
        let engine_owned = ENGINE_OWNED.iter().any(|h| name.eq_ignore_ascii_case(h));
        // A CR or LF in a handler's header would split the response.
        let unsafe_bytes = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if !engine_owned && !unsafe_bytes(name) && !unsafe_bytes(value) {
            push_header(out, name, value.as_bytes());
        }
    }
    framing(out);
    if let Some(value) = connection {
        push_header(out, "Connection", value);
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Connection` header's value for a response: `close` unless the
/// connection is kept alive, `keep-alive` for an HTTP/1.0 client (`minor`
/// 0) that keeps it, none for HTTP/1.1 (keep-alive is its default).
pub(crate) fn connection_value(minor: u8, keep_alive: bool) -> Option<&'static [u8]> {
    if !keep_alive {
        Some(b"close")
    } else if minor == 0 {
        Some(b"keep-alive")
    } else {
        None
    }
}

/// One header line.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The bytes of a complete answer after which the connection closes:
/// the head with `Content-Length` and `Connection: close`, then `body`.
pub(crate) fn complete_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    write_head(
        &mut out,
        status,
        headers.iter().copied(),
        Some(b"close"),
        |out| {
            push_header(out, "Content-Length", itoa(body.len() as u64).as_bytes());
        },
    );
    out.extend_from_slice(body);
    out
}

/// A number's decimal digits.
pub(crate) fn itoa(n: u64) -> String {
    n.to_string()
}
