//! A WebSocket echo server (RFC 6455) on catamount's upgrade API
//! (issue 17): every text or binary message a client sends comes back to
//! it, over `ws://` or `wss://` (an `ssl://` bind), and over unix sockets.
//!
//! ```text
//! cargo run --example websocket_echo -- -b tcp://127.0.0.1:9292
//! python3 -m websockets ws://127.0.0.1:9292/
//! ```
//!
//! What it shows:
//!
//! - The handshake: the handler checks the request (`GET`, `Upgrade:
//!   websocket`, `Connection: upgrade`, `Sec-WebSocket-Version: 13`, a
//!   16-byte `Sec-WebSocket-Key`) and answers `101` with
//!   `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)) through
//!   [`Response::upgrade`]. A plain request gets `426 Upgrade Required`.
//! - The connection, as catamount's [`Upgraded`] (`Read + Write`), on a
//!   thread of its own (not a pool thread; at most `--max-upgraded` at
//!   once, 503 beyond): frames read into a buffer and parsed from it,
//!   masked as clients must; text (checked to be UTF-8, else close 1007)
//!   and binary messages echoed; fragmented messages reassembled up to
//!   [`MAX_MESSAGE`] bytes (1009 beyond); ping answered with pong; the
//!   close handshake, with the client's code echoed. Anything else the
//!   RFC forbids (a reserved bit or opcode, an unmasked frame, a control
//!   frame over 125 bytes or fragmented, a continuation with nothing to
//!   continue) is closed with 1002.
//! - A graceful stop (TERM, a hot restart): the first read that would wait
//!   returns catamount's stop notice; the server sends close 1001 ("going
//!   away"), waits up to [`CLOSE_WAIT`] for the client's close, and
//!   returns. catamount shuts down whatever is still open when
//!   `shutdown_timeout` runs out.
//!
//! SHA-1 and base64 are written out below (about 60 lines with their test
//! vectors, RFC 3174 and RFC 4648): the handshake is their only use, and
//! catamount adds no dependency for it. SHA-1 is broken for signatures;
//! RFC 6455 uses it only to show that the server understood the request.

use std::io::{self, Read, Write};
use std::time::Duration;

use catamount::{Request, Response, Server, Upgraded};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest message (all its fragments together) echoed; a larger one
/// is refused with close code 1009 ("message too big"). The whole
/// message is held in memory before it is sent back.
const MAX_MESSAGE: usize = 1 << 20;
/// A control frame's payload limit (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;
/// After sending a close frame (at a stop or for a protocol error), how
/// long to wait for the client's own close before closing the socket:
/// well inside catamount's default `shutdown_timeout` (30 s).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Bytes read from the connection per call.
const READ_CHUNK: usize = 16 * 1024;

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(handshake);
}

/// The opening handshake (RFC 6455 §4.2): a valid request is answered
/// `101 Switching Protocols` and the connection goes to [`session`].
fn handshake(req: &mut Request<'_>) -> Response {
    let token = |name: &str, want: &str| {
        req.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(want)))
    };
    if !token("upgrade", "websocket") {
        return Response::text(
            426,
            "426 Upgrade Required: this is a WebSocket echo server\n",
        )
        .header("Upgrade", "websocket");
    }
    if req.method() != "GET" || !token("connection", "upgrade") {
        return Response::text(
            400,
            "a WebSocket handshake is a GET with Connection: upgrade\n",
        );
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Response::text(426, "only WebSocket version 13 is spoken here\n")
            .header("Sec-WebSocket-Version", "13");
    }
    let Some(key) = req.header("sec-websocket-key").filter(|k| is_nonce(k)) else {
        return Response::text(400, "Sec-WebSocket-Key must be 16 bytes in base64\n");
    };
    Response::new(101)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept_key(key))
        .upgrade(session)
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{key}{GUID}").as_bytes()))
}

/// A key is 16 bytes in base64: 22 characters of the alphabet and `==`.
fn is_nonce(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24 && b.ends_with(b"==") && b[..22].iter().all(|c| ALPHABET.contains(c))
}

/// One WebSocket connection, until either side closes or the server stops.
fn session(conn: Upgraded) {
    let mut ws = WebSocket {
        conn,
        buf: Vec::new(),
    };
    // A message whose first fragment has come: its opcode and bytes.
    let mut message: Option<(u8, Vec<u8>)> = None;
    loop {
        let frame = match ws.next_frame() {
            Ok(frame) => frame,
            Err(End::Stopping) => return ws.close(1001, "server stopping"),
            Err(End::Protocol(code, why)) => return ws.close(code, why),
            Err(End::Gone) => return,
        };
        let result = match frame.opcode {
            OP_TEXT | OP_BINARY if message.is_some() => Err(End::Protocol(
                1002,
                "a new message before the last one ended",
            )),
            OP_TEXT | OP_BINARY if frame.fin => ws.echo(frame.opcode, &frame.payload),
            OP_TEXT | OP_BINARY => {
                message = Some((frame.opcode, frame.payload));
                Ok(())
            }
            OP_CONTINUATION => match message.as_mut() {
                None => Err(End::Protocol(
                    1002,
                    "a continuation with nothing to continue",
                )),
                Some((_, bytes)) if bytes.len() + frame.payload.len() > MAX_MESSAGE => {
                    Err(End::Protocol(1009, "message too big"))
                }
                Some((_, bytes)) => {
                    bytes.extend_from_slice(&frame.payload);
                    match message.take() {
                        Some((opcode, bytes)) if frame.fin => ws.echo(opcode, &bytes),
                        unfinished => {
                            message = unfinished;
                            Ok(())
                        }
                    }
                }
            },
            OP_PING => ws.send(OP_PONG, &frame.payload).map_err(|_| End::Gone),
            OP_PONG => Ok(()),
            // OP_CLOSE (parse_frame lets no other opcode through).
            _ => return ws.answer_close(&frame.payload),
        };
        match result {
            Ok(()) => {}
            Err(End::Protocol(code, why)) => return ws.close(code, why),
            Err(End::Stopping | End::Gone) => return,
        }
    }
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One frame from the client, unmasked.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// Why a session stops reading.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// catamount is stopping (its stop notice).
    Stopping,
    /// The client broke the protocol: close with this code and reason.
    Protocol(u16, &'static str),
    /// The connection ended or failed.
    Gone,
}

/// The connection and the bytes read from it but not yet parsed.
struct WebSocket {
    conn: Upgraded,
    buf: Vec<u8>,
}

impl WebSocket {
    /// The next complete frame; reads until one has arrived.
    fn next_frame(&mut self) -> Result<Frame, End> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let at = self.buf.len();
            self.buf.resize(at + READ_CHUNK, 0);
            let read = self.conn.read(&mut self.buf[at..]);
            self.buf.truncate(at + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Err(End::Gone),
                Ok(_) => {}
                Err(e) if Upgraded::is_stop_notice(&e) => return Err(End::Stopping),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::Gone),
            }
        }
    }

    /// Sends one unfragmented frame (servers do not mask, §5.1).
    fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        frame.push(0x80 | opcode);
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        self.conn.write_all(&frame)
    }

    /// Sends a message back as it came: text only if it is UTF-8 (§8.1).
    fn echo(&mut self, opcode: u8, payload: &[u8]) -> Result<(), End> {
        if opcode == OP_TEXT && std::str::from_utf8(payload).is_err() {
            return Err(End::Protocol(1007, "text that is not UTF-8"));
        }
        self.send(opcode, payload).map_err(|_| End::Gone)
    }

    /// The client closed: answer with its code (§5.5.1), then end.
    fn answer_close(mut self, payload: &[u8]) {
        let reply = match payload {
            [] => Ok(Vec::new()),
            [_] => Err((1002, "a close payload of one byte")),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_sendable_code(code) {
                    Err((1002, "a close code that may not be sent"))
                } else if std::str::from_utf8(reason).is_err() {
                    Err((1007, "a close reason that is not UTF-8"))
                } else {
                    Ok(code.to_be_bytes().to_vec())
                }
            }
        };
        match reply {
            Ok(echo) => {
                let _ = self.send(OP_CLOSE, &echo);
            }
            Err((code, why)) => {
                let _ = self.send(OP_CLOSE, &close_payload(code, why));
            }
        }
        // The server closes the TCP connection first (§7.1.1): by
        // returning, which drops the connection.
    }

    /// Starts the close handshake (§7.1.2) and waits up to [`CLOSE_WAIT`]
    /// for the client's close before dropping the connection.
    fn close(mut self, code: u16, why: &str) {
        if self.send(OP_CLOSE, &close_payload(code, why)).is_err() {
            return;
        }
        self.conn.set_read_timeout(Some(CLOSE_WAIT));
        loop {
            match self.next_frame() {
                Ok(frame) if frame.opcode == OP_CLOSE => return,
                Ok(_) => {} // data after our close is discarded (§5.5.1)
                // A second stop notice never comes; a protocol error or
                // the end: nothing more to wait for.
                Err(End::Stopping) => {}
                Err(End::Protocol(..) | End::Gone) => return,
            }
        }
    }
}

/// A close frame's payload: the code, then a UTF-8 reason.
fn close_payload(code: u16, why: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(why.as_bytes());
    p.truncate(MAX_CONTROL);
    p
}

/// Codes an endpoint may put in a close frame (§7.4): not 1004-1006 or
/// 1015, which mean something only locally, nor unassigned ones.
fn is_sendable_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses the frame at the start of `buf`: `Ok(None)` until all of it
/// has arrived; `Err` for what RFC 6455 §5.2 forbids, with the close code
/// to send. No I/O, so the unit tests feed it bytes.
fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, End> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(End::Protocol(
            1002,
            "a reserved bit is set (no extension agreed)",
        ));
    }
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(End::Protocol(1002, "a reserved opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(End::Protocol(1002, "a client frame must be masked"));
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                (u64::from_be_bytes(n), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= OP_CLOSE && (len > MAX_CONTROL as u64 || !fin) {
        return Err(End::Protocol(
            1002,
            "a control frame over 125 bytes or fragmented",
        ));
    }
    // Refused before its bytes are awaited: nothing this large is held.
    if len > MAX_MESSAGE as u64 {
        return Err(End::Protocol(1009, "message too big"));
    }
    let len = len as usize;
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [mask[0], mask[1], mask[2], mask[3]];
    at += 4;
    let Some(masked) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = masked
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    let frame = Frame {
        fin,
        opcode,
        payload,
    };
    Ok(Some((frame, at + len)))
}

/// SHA-1 (RFC 3174), for the handshake's accept key only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    // Padding (§4): a 1 bit, zeros to 56 bytes mod 64, the length in bits.
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in msg.chunks_exact(64) {
        // §6.1: the message schedule, then 80 rounds.
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, word) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, temp);
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// The base64 alphabet (RFC 4648 §4).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_rfc_3174_test_vectors() {
        // RFC 3174 §7.3, TEST1 to TEST4.
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
        assert_eq!(
            hex(&sha1(
                &b"0123456701234567012345670123456701234567012345670123456701234567".repeat(10)
            )),
            "dea356a2cddd90c7a7ecedc5ebb563934f460452"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(is_nonce("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_nonce("dGhlIHNhbXBsZSBub25jZQ"), "not 16 bytes");
        assert!(!is_nonce("dGhlIHNhbXBsZSBub25j!Q=="), "not base64");
    }

    /// A client frame: masked with a fixed key.
    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![b0];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        f
    }

    #[test]
    fn frames_are_unmasked_and_wait_for_all_their_bytes() {
        // RFC 6455 §5.7: a masked "Hello".
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        for cut in 0..hello.len() {
            assert_eq!(parse_frame(&hello[..cut]), Ok(None), "{cut} bytes");
        }
        let (frame, used) = parse_frame(&hello).expect("valid").expect("complete");
        assert_eq!(used, hello.len());
        assert_eq!((frame.fin, frame.opcode), (true, OP_TEXT));
        assert_eq!(frame.payload, b"Hello");
        // 16- and 64-bit lengths.
        for len in [126, 65_535, 65_536] {
            let bytes = masked(0x82, &vec![7u8; len]);
            let (frame, used) = parse_frame(&bytes).expect("valid").expect("complete");
            assert_eq!((frame.payload.len(), used), (len, bytes.len()));
            assert!(frame.payload.iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn what_rfc_6455_forbids_is_refused_with_its_close_code() {
        let code = |bytes: &[u8]| match parse_frame(bytes) {
            Err(End::Protocol(code, _)) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']),
            1002,
            "unmasked"
        );
        assert_eq!(code(&masked(0xC1, b"x")), 1002, "RSV1 without an extension");
        assert_eq!(code(&masked(0x83, b"x")), 1002, "reserved opcode");
        assert_eq!(code(&masked(0x09, b"x")), 1002, "fragmented ping");
        assert_eq!(code(&masked(0x89, &[0; 126])), 1002, "ping over 125 bytes");
        // Refused on the length alone, before the payload arrives.
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&(MAX_MESSAGE as u64 + 1).to_be_bytes());
        assert_eq!(code(&huge), 1009);
    }

    #[test]
    fn close_codes_that_may_be_sent() {
        for ok in [1000, 1001, 1003, 1007, 1011, 3000, 4999] {
            assert!(is_sendable_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!is_sendable_code(bad), "{bad}");
        }
        assert_eq!(close_payload(1001, "bye"), b"\x03\xe9bye");
    }
}
