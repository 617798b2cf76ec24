//! A certificate's validity dates, read from the leaf's DER with a small
//! bounds-checked walker (rustls does not check our own certificate's
//! dates), and their display in error messages.

/// A certificate's validity period, in seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Validity {
    pub(super) not_before: i64,
    pub(super) not_after: i64,
}

/// DER tags used on the way to `validity` (X.690 8.1.2, RFC 5280 4.1).
pub(super) const TAG_INTEGER: u8 = 0x02;
pub(super) const TAG_SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT Version`, context-specific and constructed.
pub(super) const TAG_VERSION: u8 = 0xA0;
pub(super) const TAG_UTC_TIME: u8 = 0x17;
pub(super) const TAG_GENERALIZED_TIME: u8 = 0x18;
/// Longest long-form length accepted: 4 octets (4 GiB) is far beyond any
/// certificate, and keeps the length within `usize` on every target.
pub(super) const MAX_LENGTH_OCTETS: usize = 4;
/// RFC 5280 4.1.2.5.1: a UTCTime year `YY` >= 50 is 19YY, otherwise 20YY.
pub(super) const UTC_TIME_PIVOT: i64 = 50;

/// Reads `notBefore`/`notAfter` of a DER certificate:
/// Certificate → tbsCertificate → skip `[0]` version, serial, signature
/// algorithm, issuer → validity `SEQUENCE { Time, Time }`. `None` on
/// anything malformed; never panics.
pub(super) fn cert_validity(der: &[u8]) -> Option<Validity> {
    let (certificate, _) = der_expect(der, TAG_SEQUENCE)?;
    let (mut tbs, _) = der_expect(certificate, TAG_SEQUENCE)?;
    if tbs.first() == Some(&TAG_VERSION) {
        tbs = der_element(tbs)?.2;
    }
    let (_serial, tbs) = der_expect(tbs, TAG_INTEGER)?;
    let (_signature, tbs) = der_expect(tbs, TAG_SEQUENCE)?;
    let (_issuer, tbs) = der_expect(tbs, TAG_SEQUENCE)?;
    let (validity, _) = der_expect(tbs, TAG_SEQUENCE)?;
    let (not_before, rest) = der_time(validity)?;
    let (not_after, rest) = der_time(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Validity {
        not_before,
        not_after,
    })
}

/// Splits one DER element off `input`: (tag, contents, rest). Only the
/// single-octet tag form and definite lengths exist in DER certificates at
/// the depth we read.
pub(super) fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high-tag-number form
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > MAX_LENGTH_OCTETS || rest.len() < octets {
            return None; // indefinite length (BER only), too long, or cut
        }
        let (bytes, rest) = rest.split_at(octets);
        let len = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        (usize::try_from(len).ok()?, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

pub(super) fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = der_element(input)?;
    (found == tag).then_some((contents, rest))
}

/// One `Time` (UTCTime or GeneralizedTime) as Unix seconds.
pub(super) fn der_time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, contents, rest) = der_element(input)?;
    let secs = match tag {
        TAG_UTC_TIME => parse_time(contents, false)?,
        TAG_GENERALIZED_TIME => parse_time(contents, true)?,
        _ => return None,
    };
    Some((secs, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime), the
/// only forms RFC 5280 4.1.2.5 allows in certificates.
pub(super) fn parse_time(s: &[u8], four_digit_year: bool) -> Option<i64> {
    let (year, rest) = if four_digit_year {
        (digits(s.get(..4)?)?, s.get(4..)?)
    } else {
        let yy = digits(s.get(..2)?)?;
        let year = if yy >= UTC_TIME_PIVOT {
            1900 + yy
        } else {
            2000 + yy
        };
        (year, s.get(2..)?)
    };
    if rest.len() != 11 || rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

pub(super) fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

pub(super) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

use crate::date::days_from_civil;

/// (year, month, day) of a day number, from the calendar code in date.rs.
pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::date::civil_from_days(z);
    (y, i64::from(m), i64::from(d))
}

/// `2020-01-02 00:00:00 UTC`, for error messages.
pub(super) fn format_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}
