//! The representation's validators (`ETag`, `Last-Modified`) and the
//! request headers that refer to them: conditional requests, `Range` and
//! `If-Range`, `Accept-Encoding` for the precompressed siblings.

use super::*;

/// Which stored representation of a file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    /// The sibling's file-name suffix, the `Content-Encoding` value and the
    /// ETag suffix.
    pub(super) fn names(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Coding::Identity => None,
            Coding::Brotli => Some((".br", "br", "-br")),
            Coding::Gzip => Some((".gz", "gzip", "-gz")),
        }
    }
}

/// What the `Range` header asks of a representation of a known length.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeAnswer {
    /// No usable single range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// A strong validator: length, modification time in nanoseconds and inode,
/// in hex, plus the coding's suffix, quoted.
pub(super) fn etag(meta: &Metadata, coding: Coding) -> String {
    let nanos = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let suffix = coding.names().map_or("", |(_, _, s)| s);
    format!("\"{:x}-{:x}-{:x}{suffix}\"", meta.len(), nanos, meta.ino())
}

/// The file's mtime in whole seconds, but never later than now: RFC 9110
/// §8.8.2.1 forbids a `Last-Modified` in the future.
pub(super) fn last_modified_secs(meta: &Metadata) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(i64::MAX);
    meta.mtime().min(now)
}

/// `If-Match` with strong comparison (RFC 9110 §13.1.1): `*` (any file;
/// a missing one was 404 before preconditions are looked at) or a listed
/// entity-tag equal to ours, neither of them weak. A malformed list
/// matches nothing.
pub(super) fn if_match_matches(header: &str, etag: &str) -> bool {
    if header.trim() == "*" {
        return true;
    }
    !etag.starts_with("W/") && entity_tags(header).is_some_and(|tags| tags.contains(&etag))
}

/// `If-None-Match` with weak comparison (RFC 9110 §13.1.2): `*` or any
/// listed entity-tag whose opaque part equals ours. A malformed list
/// matches nothing.
pub(super) fn if_none_match_matches(header: &str, etag: &str) -> bool {
    if header.trim() == "*" {
        return true;
    }
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    entity_tags(header).is_some_and(|tags| {
        tags.iter()
            .any(|t| t.strip_prefix("W/").unwrap_or(t) == ours)
    })
}

/// Splits a comma-separated list of entity-tags (`"a", W/"b"`). Tags may
/// contain commas, so this scans quotes rather than splitting on `,`.
/// `None` when the list is malformed.
pub(super) fn entity_tags(header: &str) -> Option<Vec<&str>> {
    let mut tags = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let start = rest;
        let body = rest.strip_prefix("W/").unwrap_or(rest);
        let body = body.strip_prefix('"')?;
        let close = body.find('"')?;
        let taken = start.len() - body.len() + close + 1;
        tags.push(&start[..taken]);
        rest = &start[taken..];
        // Between tags only whitespace and a comma may appear.
        let after = rest.trim_start_matches([' ', '\t']);
        if !after.is_empty() && !after.starts_with(',') {
            return None;
        }
    }
}

/// Whether `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): no
/// `If-Range`, or an entity-tag that matches ours strongly, or a date equal
/// to our `Last-Modified`.
pub(super) fn if_range_allows(if_range: Option<&str>, etag: &str, last_modified: i64) -> bool {
    let Some(v) = if_range.map(str::trim) else {
        return true;
    };
    if v.starts_with('"') || v.starts_with("W/") {
        // A weak tag never matches strongly.
        v == etag
    } else {
        parse_http_date(v) == Some(last_modified)
    }
}

/// Interprets `Range` for a representation of `len` bytes. Only one range
/// is served; several are answered with the whole file (200), and a header
/// that is not a valid `bytes=` range set is ignored (RFC 9110 §14.2).
pub(super) fn parse_range(header: &str, len: u64) -> RangeAnswer {
    let header = header.trim();
    let Some((unit, set)) = header.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return RangeAnswer::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = parse_digits(last) else {
            return RangeAnswer::Full;
        };
        if n == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        if len == 0 {
            // RFC 9110 §14.1.3 calls this satisfiable, but there is no byte
            // to name in a Content-Range; the (empty) whole is the answer.
            return RangeAnswer::Full;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Some(start) = parse_digits(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end,
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// A non-empty run of ASCII digits; values too large for `u64` saturate,
/// which is what a byte position past any real file means.
pub(super) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Whether `Accept-Encoding` accepts `coding` with q > 0 (RFC 9110
/// §12.5.3): its own entry decides; without one, `*` decides; otherwise
/// no. An entry with an unparsable q-value accepts nothing.
pub(super) fn accepts_coding(header: &str, coding: Coding) -> bool {
    let names: &[&str] = match coding {
        Coding::Brotli => &["br"],
        Coding::Gzip => &["gzip", "x-gzip"],
        Coding::Identity => return true,
    };
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_qvalue(v.trim());
                }
            }
        }
        let accepted = q.is_some_and(|q| q > 0);
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return accepted;
        }
        if name == "*" {
            star = Some(accepted);
        }
    }
    star.unwrap_or(false)
}

/// A qvalue in thousandths: `0`, `0.5`, `1`, `1.000` (RFC 9110 §12.4.2).
pub(super) fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        let d = frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
        thousandths = thousandths * 10 + d;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `Last-Modified` text for seconds since the epoch (an IMF-fixdate, by
/// [`date::format`]).
pub(super) fn http_date(secs: i64) -> String {
    let secs = u64::try_from(secs).unwrap_or(0);
    date::format(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An IMF-fixdate as seconds since the epoch; `None` for anything else
/// (callers then ignore the header, RFC 9110 §13.1.3).
pub(super) fn parse_http_date(s: &str) -> Option<i64> {
    let t = date::parse(s)?.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(t.as_secs()).ok()
}
