//! HTTP dates (RFC 9110 §5.6.7): formatting as IMF-fixdate, parsing all
//! three forms (IMF-fixdate, rfc850-date, asctime-date), and a per-thread
//! cache of "now" so the `Date` header costs one comparison per response;
//! also the access log's Common Log Format date, cached the same way, and
//! ISO 8601 UTC, for the control app's `/stats`.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `t` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn format(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Formats `t` as ISO 8601 in UTC to the second, e.g.
/// `2026-12-04T15:11:30Z` (Ruby's `Time#utc.iso8601`, which Puma's
/// `/stats` uses for `started_at` and `last_checkin`).
pub fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Formats `t` as the Common Log Format writes dates (nginx's
/// `$time_local`, Puma's CommonLogger), in UTC: `04/Dec/2026:15:11:30 +0000`.
pub fn format_clf(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an HTTP-date in any of its three forms (RFC 9110 §5.6.7):
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete rfc850-date
/// `Sunday, 06-Nov-94 08:49:37 GMT` and asctime-date
/// `Sun Nov  6 08:49:37 1994`, all in GMT. `None` for anything else, an
/// impossible date (30 Feb) or one before 1970; surrounding whitespace is
/// ignored. The day name is checked for its form, not against the date.
pub fn parse(s: &str) -> Option<SystemTime> {
    parse_at(s, SystemTime::now())
}

/// [`parse`] with the current time given: an rfc850-date's two-digit year
/// is read relative to `now`.
fn parse_at(s: &str, now: SystemTime) -> Option<SystemTime> {
    let b = s.trim().as_bytes();
    let (year, month, day, clock) = if let Some(rest) = after_day_name(b, &DAYS, b", ") {
        imf_fixdate(rest)?
    } else if let Some(rest) = after_day_name(b, &LONG_DAYS, b", ") {
        rfc850_date(rest, now)?
    } else {
        asctime_date(after_day_name(b, &DAYS, b" ")?)?
    };
    let days = days_from_civil(year, month, day);
    // An impossible day (31 Nov) comes back as another date.
    let real = civil_from_days(days) == (year, month as u32, day as u32);
    if !real || year < 1970 {
        return None;
    }
    let secs = u64::try_from(days * 86_400 + clock).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Day names as rfc850-date spells them (`day-name-l`).
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// How many years ahead an rfc850-date's two-digit year may point before
/// it is read as a past year instead (RFC 9110 §5.6.7).
const TWO_DIGIT_YEAR_AHEAD: i64 = 50;

/// A date as (year, month 1-12, day 1-31, seconds into the day).
type Civil = (i64, i64, i64, i64);

/// `06 Nov 1994 08:49:37 GMT`, what follows `Sun, ` in an IMF-fixdate.
fn imf_fixdate(b: &[u8]) -> Option<Civil> {
    let [day, mon, year, time, b"GMT"] = fields(b, b' ')? else {
        return None;
    };
    if day.len() != 2 || year.len() != 4 {
        return None;
    }
    Some((number(year)?, month(mon)?, number(day)?, clock(time)?))
}

/// `06-Nov-94 08:49:37 GMT`, what follows `Sunday, ` in an rfc850-date.
fn rfc850_date(b: &[u8], now: SystemTime) -> Option<Civil> {
    let [date, time, b"GMT"] = fields(b, b' ')? else {
        return None;
    };
    let [day, mon, yy] = fields(date, b'-')?;
    if day.len() != 2 || yy.len() != 2 {
        return None;
    }
    let (mon, day, clock) = (month(mon)?, number(day)?, clock(time)?);
    Some((
        full_year(number(yy)?, mon, day, clock, now),
        mon,
        day,
        clock,
    ))
}

/// `Nov  6 08:49:37 1994`, what follows `Sun ` in an asctime-date: the
/// day is two digits or a space and one digit.
fn asctime_date(b: &[u8]) -> Option<Civil> {
    if b.len() != 20 || b[3] != b' ' || b[6] != b' ' || b[15] != b' ' {
        return None;
    }
    let day = match &b[4..6] {
        [b' ', digit] => std::slice::from_ref(digit),
        two => two,
    };
    Some((
        number(&b[16..])?,
        month(&b[..3])?,
        number(day)?,
        clock(&b[7..15])?,
    ))
}

/// What follows one of `names` and `sep` at the start of `b`.
fn after_day_name<'a>(b: &'a [u8], names: &[&str], sep: &[u8]) -> Option<&'a [u8]> {
    names
        .iter()
        .find_map(|n| b.strip_prefix(n.as_bytes())?.strip_prefix(sep))
}

/// Exactly `N` fields separated by single `sep` bytes.
fn fields<const N: usize>(b: &[u8], sep: u8) -> Option<[&[u8]; N]> {
    let mut parts = b.split(move |&c| c == sep);
    let mut out = [&b[..0]; N];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    parts.next().is_none().then_some(out)
}

/// `hh:mm:ss` as seconds into the day. Second 60 (a leap second) is
/// accepted, as the grammar allows.
fn clock(t: &[u8]) -> Option<i64> {
    let [h, m, s] = fields(t, b':')?;
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    (h <= 23 && m <= 59 && s <= 60).then_some(h * 3600 + m * 60 + s)
}

/// A non-empty run of ASCII digits (at most four here) as a number.
fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0i64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

/// 1 to 12 for `Jan` to `Dec` (case-sensitive, as the grammar says).
fn month(name: &[u8]) -> Option<i64> {
    let i = MONTHS.iter().position(|m| m.as_bytes() == name)?;
    Some(i as i64 + 1)
}

/// The four-digit year of an rfc850-date's `yy`: the latest year ending in
/// `yy` whose instant is at most [`TWO_DIGIT_YEAR_AHEAD`] years after
/// `now` (RFC 9110 §5.6.7: a timestamp "that appears to be more than 50
/// years in the future" is "the most recent year in the past that had the
/// same last two digits").
fn full_year(yy: i64, month: i64, day: i64, clock: i64, now: SystemTime) -> i64 {
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (now_year, now_month, now_day) = civil_from_days(now_secs.div_euclid(86_400));
    let limit_year = now_year + TWO_DIGIT_YEAR_AHEAD;
    // The same day and time of day, fifty years on (29 Feb rolls to 1 Mar).
    let limit = days_from_civil(limit_year, i64::from(now_month), i64::from(now_day)) * 86_400
        + now_secs.rem_euclid(86_400);
    let year = limit_year - (limit_year - yy).rem_euclid(100);
    // An impossible day is refused afterwards; rolled over, it compares
    // well enough meanwhile.
    let at = days_from_civil(year, month, day) * 86_400 + clock;
    if at > limit {
        year - 100
    } else {
        year
    }
}

thread_local! {
    static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    static NOW_CLF: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `f` with the current time as an IMF-fixdate, formatted at most
/// once a second per thread.
pub fn with_now<R>(f: impl FnOnce(&str) -> R) -> R {
    cached_now(&NOW, format, f)
}

/// Calls `f` with the current time as [`format_clf`] writes it, formatted
/// at most once a second per thread.
pub fn with_now_clf<R>(f: impl FnOnce(&str) -> R) -> R {
    cached_now(&NOW_CLF, format_clf, f)
}

/// Calls `f` with the current time as `format` writes it, kept in
/// `cache` (this thread's) and formatted again only when the second
/// changes.
fn cached_now<R>(
    cache: &'static std::thread::LocalKey<RefCell<(u64, String)>>,
    format: fn(SystemTime) -> String,
    f: impl FnOnce(&str) -> R,
) -> R {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    cache.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != secs {
            *c = (secs, format(now));
        }
        f(&c.1)
    })
}

/// Howard Hinnant's days → (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc_example() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
    }

    #[test]
    fn formats_common_log_format_dates() {
        assert_eq!(format_clf(now_2026()), "04/Dec/2026:12:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(EXAMPLE);
        assert_eq!(format_clf(t), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(format_clf(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        with_now_clf(|d| {
            assert_eq!(d.len(), "04/Dec/2026:12:00:00 +0000".len(), "{d}");
            assert!(d.ends_with(" +0000"), "{d}");
        });
    }

    #[test]
    fn roundtrips_and_rejects() {
        for secs in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse(&format(t)), Some(t), "{secs}");
        }
        assert_eq!(parse("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn iso8601_utc() {
        let at = |secs: u64| iso8601(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(784_111_777), "1994-11-06T08:49:37Z");
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_397_090), "2026-12-04T15:11:30Z");
    }

    /// RFC 9110 §5.6.7's example instant, 784111777.
    const EXAMPLE: u64 = 784_111_777;

    /// 2026-12-04 12:00:00 UTC, the "now" of the two-digit-year tests.
    fn now_2026() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_385_600)
    }

    fn secs(t: Option<SystemTime>) -> Option<u64> {
        t.map(|t| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs())
    }

    #[test]
    fn all_three_forms_of_the_rfc_example() {
        assert_eq!(format(now_2026()), "Fri, 04 Dec 2026 12:00:00 GMT");
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            " Sunday, 06-Nov-94 08:49:37 GMT ",
        ] {
            assert_eq!(secs(parse(s)), Some(EXAMPLE), "{s:?}");
        }
        assert_eq!(secs(parse("Fri Dec 24 23:59:59 1999")), Some(946_079_999));
        assert_eq!(secs(parse("Thu Jan  1 00:00:00 1970")), Some(0));
        assert_eq!(secs(parse("Tue Feb 29 00:00:00 2000")), Some(951_782_400));
    }

    #[test]
    fn rfc850_two_digit_years() {
        // RFC 9110 §5.6.7: a year that would be more than 50 years in the
        // future is the most recent past year with the same last digits.
        let now = now_2026();
        let year = |yy: &str, rest: &str| {
            let s = format!("Monday, {rest}-{yy} 00:00:00 GMT");
            let t = parse_at(&s, now).unwrap_or_else(|| panic!("{s}"));
            let days = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() / 86_400;
            civil_from_days(days as i64).0
        };
        assert_eq!(year("94", "06-Nov"), 1994);
        assert_eq!(year("70", "01-Jan"), 2070);
        assert_eq!(year("77", "01-Jan"), 1977);
        assert_eq!(year("99", "31-Dec"), 1999);
        assert_eq!(year("00", "01-Jan"), 2000);
        assert_eq!(year("26", "04-Dec"), 2026);
        assert_eq!(year("27", "01-Jan"), 2027);
        // Fifty years ahead to the day is not more than fifty years.
        assert_eq!(year("76", "04-Dec"), 2076);
        assert_eq!(year("76", "05-Dec"), 1976);
    }

    #[test]
    fn malformed_dates_are_none() {
        for s in [
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov +994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 6-Nov-94 08:49:37 GMT",
            "Sunday, 06-nov-94 08:49:37 GMT",
            "Sunday 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 1994 GMT",
            "Sun Nov  x 08:49:37 1994",
            "Sunday Nov  6 08:49:37 1994",
            "Sun, Nov  6 08:49:37 1994",
            "Sun Nov  6 8:49:37 1994",
            "Sun Nov  6 08:49:37 -994",
            "Sun Nov  6 08:49:37 1994\u{e9}",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}
