//! Writing a response: the head (status line, engine headers, the
//! handler's headers, framing), the body as an [`Outgoing`] that is sent
//! without ever waiting (bytes, then a file range with sendfile), and the
//! complete answers to refused requests ([`error_response`]).
//!
//! A response the client does not take at once is finished from the
//! pool's epoll (the connection is parked with its `Outgoing`, under
//! `write_timeout`). The one exception is a `Body::Stream` a handler
//! chose to stream: each wait for the client is bounded by
//! `write_timeout`.

use std::io::{self, Read};
use std::time::Duration;

use crate::connection::{Conn, Limits};
use crate::http::{self, itoa, push_header, write_head, Head, HttpError};
use crate::{Body, Response};

/// Bytes of a response body read from a `Body::Stream` per chunk.
const STREAM_CHUNK: usize = 16 * 1024;
/// Largest `Body::File` read (pread) into the head's buffer so head and
/// body leave in one send. An in-memory body is never copied: it leaves
/// from its own buffer with the head (one sendmsg; under TLS one write
/// into rustls).
const COALESCE_LIMIT: usize = 16 * 1024;
/// Bytes reserved for a response head (the static app's heads are about
/// 300 bytes; a longer one grows the buffer).
const HEAD_RESERVE: usize = 512;

/// How far answering a request got.
pub enum Answered {
    /// Sent in full; the connection may carry another request.
    Open,
    /// Sent (or failed); the connection is closed when dropped.
    Closed,
    /// The client has not taken all of it yet.
    Sending(Box<Outgoing>),
}

/// The unsent rest of a response: bytes (head, and a body held in
/// memory), then part of a file. Written without ever waiting: by the pool
/// thread that made it, then, if the client does not take it all at once,
/// by whichever pool thread the connection's EPOLLOUT wakes.
pub struct Outgoing {
    /// The head, and a body small enough to leave with it.
    bytes: Vec<u8>,
    /// Of `bytes`, how many have been sent.
    at: usize,
    /// An in-memory body not copied into `bytes`: the handler's own
    /// buffer, or shared bytes (a cached file's).
    body: InMemory,
    /// Of `body`, how many have been sent.
    body_at: usize,
    file: Option<FilePart>,
    /// After the last byte, the connection waits for its next request.
    keep_alive: bool,
    /// After the last byte, end our side and discard what the client has
    /// sent before closing (see [`Conn::linger`]).
    linger: bool,
    /// Bytes the last [`Outgoing::write`] moved (`u64::MAX` before the
    /// first): how much the client takes per wake-up.
    last_moved: u64,
}

/// A body held in memory, sent from where it is.
enum InMemory {
    Owned(Vec<u8>),
    Shared(crate::SharedBytes),
}

impl InMemory {
    fn as_slice(&self) -> &[u8] {
        match self {
            InMemory::Owned(v) => v,
            InMemory::Shared(b) => b,
        }
    }
}

/// The bytes `offset..end` of a file still to send.
struct FilePart {
    file: std::sync::Arc<std::fs::File>,
    offset: u64,
    end: u64,
}

impl Outgoing {
    pub fn new(bytes: Vec<u8>, keep_alive: bool) -> Outgoing {
        Outgoing {
            bytes,
            at: 0,
            body: InMemory::Owned(Vec::new()),
            body_at: 0,
            file: None,
            keep_alive,
            linger: false,
            last_moved: u64::MAX,
        }
    }

    /// After the last byte, end our side and discard what the client has
    /// sent before closing, instead of closing at once.
    pub fn set_linger(&mut self, on: bool) {
        self.linger = on;
    }

    /// Bytes the next write may move at most: what is left, or, once a
    /// write has taken less than all, what the last write moved (a client
    /// that reads slowly takes little per wake-up however much is left).
    pub fn next_write(&self) -> u64 {
        self.left().min(self.last_moved)
    }

    /// Bytes still to send.
    fn left(&self) -> u64 {
        let file = self
            .file
            .as_ref()
            .map_or(0, |p| p.end.saturating_sub(p.offset));
        let in_memory = self.bytes.len() - self.at + self.body.as_slice().len() - self.body_at;
        in_memory as u64 + file
    }

    /// Sends what the socket takes now; `Ok(true)` once all has left.
    fn write(&mut self, conn: &mut Conn) -> io::Result<bool> {
        let before = self.left();
        let done = self.write_some(conn);
        self.last_moved = before - self.left();
        done
    }

    fn write_some(&mut self, conn: &mut Conn) -> io::Result<bool> {
        loop {
            let body = &self.body.as_slice()[self.body_at..];
            let sent = if self.at < self.bytes.len() {
                let more = self.file.is_some();
                let head = &self.bytes[self.at..];
                conn.send_some_pair(head, body, more).map(|n| {
                    let from_head = n.min(head.len());
                    self.at += from_head;
                    self.body_at += n - from_head;
                })
            } else if !body.is_empty() {
                let more = self.file.is_some();
                conn.send_some(body, more).map(|n| self.body_at += n)
            } else if let Some(part) = self.file.as_mut().filter(|p| p.offset < p.end) {
                conn.send_file_some(&part.file, &mut part.offset, part.end)
            } else {
                return conn.flushed();
            };
            match sent {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sends what the client takes of `out` now and says what comes next
/// (boxed only when it must wait: most responses leave at once).
pub fn deliver(conn: &mut Conn, mut out: Outgoing) -> Answered {
    send_out(conn, &mut out).unwrap_or_else(|| Answered::Sending(Box::new(out)))
}

/// Sends what the client takes of `out` now; `None` while some is left.
pub fn send_out(conn: &mut Conn, out: &mut Outgoing) -> Option<Answered> {
    match out.write(conn) {
        Ok(true) if out.keep_alive => Some(Answered::Open),
        Ok(true) => {
            if out.linger {
                conn.linger();
            }
            Some(Answered::Closed)
        }
        Ok(false) => None,
        Err(_) => Some(Answered::Closed),
    }
}

/// Builds the response as an [`Outgoing`] to deliver, with its body bytes
/// (a `Body::Stream` is sent here, waiting for the client as it streams).
pub fn write_response(
    conn: &mut Conn,
    head: &Head,
    resp: Response,
    mut keep_alive: bool,
    limits: &Limits,
) -> io::Result<(Outgoing, u64)> {
    let status = resp.status;
    let bodyless =
        head.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let length = match &resp.body {
        Body::Empty => Some(0),
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Shared(b) => Some(b.len() as u64),
        Body::File { len, .. } => Some(*len),
        Body::Stream(_) => None,
        // serve.rs takes an upgrade's own path (`upgrade_head`) before
        // this; one that came here would be sent as an empty body.
        Body::Upgrade(_) => Some(0),
    };
    let chunked = length.is_none() && head.minor >= 1;
    if length.is_none() && !chunked {
        keep_alive = false; // HTTP/1.0: the end of the body is the close
    }
    // Room for the head and a small file read in after it (below), so
    // the buffer is allocated once per response, not grown.
    let joined = match (bodyless, &resp.body) {
        (false, Body::File { len, .. }) if *len <= COALESCE_LIMIT as u64 => *len as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(HEAD_RESERVE + joined);
    write_head(
        &mut out,
        status,
        resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        http::connection_value(head.minor, keep_alive),
        |out| {
            if status == 204 || status == 304 || (100..200).contains(&status) {
                return;
            }
            match length {
                Some(n) => push_header(out, "Content-Length", itoa(n).as_bytes()),
                None if chunked => push_header(out, "Transfer-Encoding", b"chunked"),
                None => {}
            }
        },
    );
    if bodyless {
        return Ok((Outgoing::new(out, keep_alive), 0));
    }
    let mut file = None;
    let mut in_memory = InMemory::Owned(Vec::new());
    // An in-memory body leaves with the head from its own buffer, never
    // copied here: on a plain connection in one sendmsg, under TLS handed
    // to rustls with the head in one write (`Conn::send_some_pair`), so a
    // small one leaves in the head's record.
    let sent = match resp.body {
        Body::Empty | Body::Upgrade(_) => 0,
        Body::Bytes(b) => {
            in_memory = InMemory::Owned(b);
            in_memory.as_slice().len() as u64
        }
        Body::Shared(b) => {
            in_memory = InMemory::Shared(b);
            in_memory.as_slice().len() as u64
        }
        Body::File {
            file: f,
            offset,
            len,
        } if len <= COALESCE_LIMIT as u64 => {
            // A small file costs less read into the head's buffer and sent
            // once than sent as a corked head plus sendfile (one pread and
            // one send against a send and a sendfile: 10.5 -> 9.2 us per
            // request in the cluster benchmark). Under TLS the file is
            // read and encrypted anyway, and leaves as one record.
            append_file(&mut out, &f, offset, len)?;
            len
        }
        Body::File {
            file: f,
            offset,
            len,
        } => {
            file = Some(FilePart {
                file: f,
                offset,
                end: offset + len,
            });
            len
        }
        Body::Stream(mut reader) => {
            // The one response that holds its thread while the client is
            // slow: the handler chose to stream (each wait is bounded by
            // write_timeout).
            let wait = limits.write_timeout;
            conn.send(&out, true, wait)?;
            out.clear();
            send_stream(conn, &mut *reader, chunked, wait)?
        }
    };
    let mut outgoing = Outgoing::new(out, keep_alive);
    outgoing.body = in_memory;
    outgoing.file = file;
    Ok((outgoing, sent))
}

/// Appends `len` bytes of `file` from `offset` to `out`.
fn append_file(out: &mut Vec<u8>, file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let start = out.len();
    out.resize(start + len as usize, 0);
    file.read_exact_at(&mut out[start..], offset)
}

/// The head of an answer that changes protocol (`Body::Upgrade`): the
/// handler's headers, `Connection: Upgrade` with a 101 (RFC 9110 §7.8),
/// and no framing headers (none may go with a 101, nor with a 2xx to
/// CONNECT: RFC 9110 §9.3.6).
pub fn upgrade_head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_RESERVE);
    let connection = (status == 101).then_some(&b"Upgrade"[..]);
    let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    write_head(&mut out, status, headers, connection, |_| {});
    out
}

/// The bytes of a complete answer to a refused request: its status, a
/// one-line text body, `Connection: close`.
pub fn error_response(e: HttpError) -> Vec<u8> {
    let status = e.status();
    let body = format!("{status} {}\n", http::reason(status));
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    http::complete_response(status, &headers, body.as_bytes())
}

fn send_stream(
    conn: &mut Conn,
    reader: &mut dyn Read,
    chunked: bool,
    wait: Duration,
) -> io::Result<u64> {
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // No terminating chunk: the client sees a truncated body.
            Err(e) => return Err(e),
        };
        if n == 0 {
            if chunked {
                conn.send(b"0\r\n\r\n", false, wait)?;
            }
            return Ok(total);
        }
        total += n as u64;
        if chunked {
            let mut frame = format!("{n:x}\r\n").into_bytes();
            frame.extend_from_slice(&buf[..n]);
            frame.extend_from_slice(b"\r\n");
            conn.send(&frame, true, wait)?;
        } else {
            conn.send(&buf[..n], true, wait)?;
        }
    }
}
