//! Fuzzes the request-head parser and the chunked-body decoder with
//! arbitrary bytes: neither may panic, and both keep their contracts.
//!
//! For `parse_head`: a complete head ends where `head_end` says and within
//! `MAX_HEAD`; every error maps to one of its status codes. For
//! `ChunkedDecoder`: the input (after two bytes that choose the output
//! buffer size and how the input is split) is fed piece by piece; each call
//! consumes at most its piece, writes at most `out`, writes no more than it
//! consumed, and makes progress until the body is done.

#![no_main]

use catamount::http::{head_end, parse_head, reason, ChunkedDecoder, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Ok(Some((head, n))) => {
            assert!(n <= data.len() && n <= MAX_HEAD);
            assert_eq!(head_end(data), Some(n));
            assert!(head.minor <= 1);
        }
        Ok(None) => assert!(data.len() < MAX_HEAD),
        Err(e) => {
            assert!(matches!(e.status(), 400 | 414 | 431 | 501 | 505));
            assert!(!reason(e.status()).is_empty());
        }
    }

    let [out_len, step, body @ ..] = data else {
        return;
    };
    // Both at least 1, so every call can make progress.
    let mut out = vec![0u8; 1 + usize::from(*out_len)];
    let step = 1 + usize::from(*step);
    let mut decoder = ChunkedDecoder::new();
    let mut pos = 0;
    while pos < body.len() {
        let piece = &body[pos..body.len().min(pos + step)];
        match decoder.decode(piece, &mut out) {
            Ok((used, written)) => {
                assert!(used <= piece.len());
                assert!(written <= out.len());
                assert!(written <= used);
                if used == 0 {
                    // Only a finished body stops consuming.
                    assert!(decoder.is_done());
                    break;
                }
                pos += used;
            }
            Err(e) => {
                assert!(matches!(e.status(), 400 | 431));
                // The error sticks.
                assert_eq!(decoder.decode(piece, &mut out), Err(e));
                return;
            }
        }
    }
    if decoder.is_done() {
        assert_eq!(decoder.decode(&body[pos..], &mut out), Ok((0, 0)));
    }
});
