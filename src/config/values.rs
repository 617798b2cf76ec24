//! The rules for values that the command line and the config file share
//! (seconds, thread counts, names, tokens, control URLs...), each a
//! function over `&str` that returns the value or `None`; the callers
//! word the errors, as each spells the setting its own way. Also the
//! "did you mean" matcher both use for unknown names.

use std::time::Duration;

use super::types::{
    ActivatedMode, MAX_THREADS_LIMIT, MAX_TIMEOUT, MAX_UPGRADED_LIMIT, MAX_WORKERS,
};
use crate::bind::{loopback_ip, BindSpec};

/// `MIN:MAX` or `N` (meaning `N:N`).
pub(super) fn parse_threads(s: &str) -> Option<(usize, usize)> {
    match s.split_once(':') {
        Some((min, max)) => check_threads(min.parse().ok()?, max.parse().ok()?),
        None => {
            let n = s.parse().ok()?;
            check_threads(n, n)
        }
    }
}

pub(super) fn check_threads(min: usize, max: usize) -> Option<(usize, usize)> {
    (min <= max && (1..=MAX_THREADS_LIMIT).contains(&max)).then_some((min, max))
}

/// Seconds, fraction allowed (`30`, `0.5`, `1e1`): above zero after
/// rounding to whole nanoseconds, at most [`MAX_TIMEOUT`]. Decimal digits
/// are read as such, not through a float (no rounding on the way in, and
/// no float parsing in the binary: issue 15's size).
pub(super) fn parse_secs(s: &str) -> Option<Duration> {
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || int.bytes().chain(frac.bytes());
    if int.len() + frac.len() == 0 || !digits().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // nanoseconds = DIGITS x 10^shift, DIGITS without leading zeros
    let shift = i64::from(exp) + 9 - frac.len() as i64;
    let significant: Vec<u8> = digits().skip_while(|&b| b == b'0').collect();
    let max_digits = i64::from(MAX_TIMEOUT.as_nanos().ilog10()) + 1;
    if significant.len() as i64 + shift > max_digits {
        return None; // 10^max_digits ns and more
    }
    // Whole nanoseconds: the digits above 10^0, rounded by the next one.
    let whole = (significant.len() as i64 + shift).max(0) as usize;
    let mut ns: u64 = 0;
    for &b in significant.iter().take(whole) {
        ns = ns * 10 + u64::from(b - b'0');
    }
    for _ in significant.len()..whole {
        ns *= 10;
    }
    if significant.get(whole).is_some_and(|&b| b >= b'5') {
        ns += 1;
    }
    let d = Duration::from_nanos(ns);
    (ns > 0 && d <= MAX_TIMEOUT).then_some(d)
}

/// `true`, `false` or `only` (a bare `--bind-to-activated-sockets`
/// arrives as `true`).
pub(super) fn parse_activated(s: &str) -> Option<ActivatedMode> {
    match s {
        "true" => Some(ActivatedMode::On),
        "false" => Some(ActivatedMode::Off),
        "only" => Some(ActivatedMode::Only),
        _ => None,
    }
}

pub(super) fn parse_workers(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n <= MAX_WORKERS)
}

/// A whole number from 0 to [`MAX_UPGRADED_LIMIT`] (`max_upgraded`).
pub(super) fn parse_upgraded(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n <= MAX_UPGRADED_LIMIT)
}

/// A whole number from 1 to `max`.
pub(super) fn parse_limit(s: &str, max: u64) -> Option<u64> {
    s.parse().ok().filter(|n| (1..=max).contains(n))
}

/// `Some(None)` for "" (turn the setting off), else `parse`'s result.
pub(super) fn optional<T>(s: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if s.is_empty() {
        Some(None)
    } else {
        parse(s).map(Some)
    }
}

/// A control token: non-empty, visible ASCII only, so it can travel in a
/// header or a query string and cannot split either.
pub(super) fn parse_token(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// A control URL: a bind URI (see [`BindSpec::parse`]) that is `unix://`,
/// or `tcp://` on a loopback host, since the control app can stop the
/// server. The error is the message after `"URI": `.
pub(super) fn parse_control_url(uri: &str) -> Result<BindSpec, String> {
    // Name only the schemes a control URL takes, not every bind's.
    match uri.split_once("://") {
        Some(("tcp" | "unix" | "fd", _)) => {}
        // Refused by its scheme, before its options are read: neither a
        // missing cert= nor a build without TLS is the reason.
        Some(("ssl", _)) => {
            return Err(
                "the control app speaks plain HTTP; expected unix:// or tcp://, not ssl://"
                    .to_string(),
            )
        }
        Some((scheme, _)) => {
            return Err(format!(
                "unknown scheme {scheme:?}; expected tcp:// or unix://"
            ))
        }
        None => return Err("expected tcp://HOST:PORT or unix:///ABSOLUTE/PATH".to_string()),
    }
    // The caller names the URI: only the problem.
    let spec = BindSpec::parse(uri).map_err(|e| e.problem().to_string())?;
    match &spec {
        BindSpec::Unix { .. } => Ok(spec),
        BindSpec::Tcp { host, .. } if loopback_ip(host).is_some() => Ok(spec),
        BindSpec::Tcp { host, .. } => Err(format!(
            "host {host:?} is not a loopback address; expected 127.0.0.1, [::1] or localhost, \
             since the control app can stop the server"
        )),
        _ => Err(
            "expected unix:///PATH or tcp://HOST:PORT; the control app listens on a socket \
             of its own"
                .to_string(),
        ),
    }
}

pub(super) fn parse_keep_alive(s: &str) -> Option<u32> {
    s.parse().ok().filter(|&n| n >= 1)
}

/// A non-empty name without control characters.
pub(super) fn parse_name(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s).and_then(parse_optional_name)
}

/// A name without control characters; empty means "off".
pub(super) fn parse_optional_name(s: &str) -> Option<&str> {
    (!s.chars().any(char::is_control)).then_some(s)
}

/// A header value catamount can write as is: visible ASCII, space and
/// tab (RFC 9110 section 5.5, without obs-text); empty means "off".
/// Refusing CR and LF here is what keeps the value from splitting the
/// response head.
pub(super) fn parse_header_value(s: &str) -> Option<&str> {
    s.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        .then_some(s)
}

/// The candidate within edit distance 2 of `typed`, for "did you mean".
pub(super) fn closest<'a>(
    typed: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(typed, c), c))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The first bind that names the same listener as an earlier one (same
/// text once normalised, whatever the backlog), with that earlier one.
pub(super) fn first_repeat(binds: &[BindSpec]) -> Option<(&BindSpec, usize)> {
    binds.iter().enumerate().find_map(|(i, b)| {
        let name = b.to_string();
        binds[..i]
            .iter()
            .position(|a| a.to_string() == name)
            .map(|j| (b, j))
    })
}
