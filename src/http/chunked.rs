//! The chunked transfer coding (RFC 9112 §7.1), decoded as bytes arrive.

use super::{hex_digit, is_token, HttpError, MAX_CHUNK_LINE, MAX_HEAD};

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
                None => self.after_size(b)?,
            },
            S::SizeSpace => self.after_size(b)?,
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
    /// A byte after the chunk size's digits (in `Size` past its last
    /// digit, or in `SizeSpace`): blanks, an extension's `;`, or the CR.
    fn after_size(&mut self, b: u8) -> Result<(), HttpError> {
        use ChunkState as S;
        match b {
            b' ' | b'\t' => {
                self.state = S::SizeSpace;
                self.size_line_byte()
            }
            b';' => {
                self.state = S::Extension;
                self.size_line_byte()
            }
            b'\r' => {
                self.state = S::SizeLf;
                Ok(())
            }
            _ => Err(HttpError::BadRequest("invalid byte after chunk size")),
        }
    }

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
