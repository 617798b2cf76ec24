//! Log lines: one function per level ([`info`], [`warn`], [`error`]),
//! each formatting the whole line into one buffer and writing it with one
//! write(2), so lines from the workers, the master and their threads never
//! interleave mid-line (issue 12: `eprintln!` wrote a line in pieces, one
//! write per formatted argument).
//!
//! Info lines go to stdout, warnings and errors to stderr, as before.
//! When a stream is systemd's journal (`JOURNAL_STREAM` names its device
//! and inode, systemd.exec(5)), each line starts with its syslog priority
//! (`<3>`, `<4>`, `<6>`, sd-daemon(3)), so `journalctl -p warning` finds
//! the warnings; anywhere else lines carry no prefix.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;

use crate::sys;

/// Longest line written, its newline included: `PIPE_BUF` (pipe(7)), the
/// most one write(2) to a pipe is guaranteed to deliver without another
/// process's bytes in the middle. A longer message is cut short with
/// [`CUT_MARK`].
pub const MAX_LINE: usize = 4096;
/// What ends a line cut at [`MAX_LINE`].
const CUT_MARK: &str = "...";

/// A duration in seconds, for log lines and messages that name a setting
/// given in seconds ("within 30s", "booted in 0.52s", the access log's
/// request time): integer arithmetic only, so the binary carries no float
/// formatting (issue 15's size).
#[derive(Clone, Copy)]
pub struct Seconds {
    d: std::time::Duration,
    /// Decimals, rounded to the nearest; `None`: as many as it has.
    places: Option<u32>,
}

impl Seconds {
    /// Every decimal it has, none when whole: `30`, `0.2`, `1.000000001`.
    pub fn exact(d: std::time::Duration) -> Seconds {
        Seconds { d, places: None }
    }

    /// Rounded to `places` decimals (at most 9): `0.52`.
    pub fn places(d: std::time::Duration, places: u32) -> Seconds {
        Seconds {
            d,
            places: Some(places.min(9)),
        }
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, nanos) = match self.places {
            None => (self.d.as_secs(), self.d.subsec_nanos()),
            Some(places) => {
                let unit = 10u128.pow(9 - places);
                let ns = (self.d.as_nanos() + unit / 2) / unit * unit;
                ((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
            }
        };
        let digits = format!("{nanos:09}");
        let shown = match self.places {
            None => digits.trim_end_matches('0'),
            Some(places) => &digits[..places as usize],
        };
        if shown.is_empty() {
            write!(f, "{whole}")
        } else {
            write!(f, "{whole}.{shown}")
        }
    }
}

/// A syslog priority (sd-daemon(3)'s `SD_ERR`, `SD_WARNING`, `SD_INFO`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// Something failed: start-up, a restart, a worker, the application.
    Error = 3,
    /// catamount goes on, maybe degraded: a refused reload, a retry.
    Warning = 4,
    /// Start-up, lifecycle and request lines.
    Info = 6,
}

/// Which of stdout and stderr are the journal, decided once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Journal {
    stdout: bool,
    stderr: bool,
}

static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// Looks at `JOURNAL_STREAM` and the descriptors of stdout and stderr
/// once. Called at start-up, before any thread or fork; the first line
/// logged would do it otherwise. A hot restart (exec) looks again.
pub fn init() {
    journal();
}

/// A start-up, lifecycle or request line, on stdout.
pub fn info(msg: &str) {
    let out = io::stdout();
    write_line(out.as_fd(), journal().stdout, Level::Info, msg);
}

/// catamount goes on, maybe degraded: on stderr.
pub fn warn(msg: &str) {
    let err = io::stderr();
    write_line(err.as_fd(), journal().stderr, Level::Warning, msg);
}

/// Something failed (a line before a non-zero exit, a panicking
/// handler): on stderr.
pub fn error(msg: &str) {
    let err = io::stderr();
    write_line(err.as_fd(), journal().stderr, Level::Error, msg);
}

fn journal() -> Journal {
    *JOURNAL.get_or_init(|| {
        // Not removed from the environment: a hot restart's new image
        // and anything spawned check it against their own descriptors.
        let Some(stream) = std::env::var("JOURNAL_STREAM")
            .ok()
            .and_then(|v| parse_journal_stream(&v))
        else {
            return Journal::default();
        };
        // Compared per descriptor: a service may have redirected one of
        // them (systemd.exec(5) warns that the variable alone says little).
        let is_journal = |fd: BorrowedFd<'_>| sys::file_id(fd).is_ok_and(|id| id == stream);
        Journal {
            stdout: is_journal(io::stdout().as_fd()),
            stderr: is_journal(io::stderr().as_fd()),
        }
    })
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE`, both decimal.
fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Writes the line with one write(2). Failures are ignored: there is
/// nowhere left to report them.
fn write_line(fd: BorrowedFd<'_>, journal: bool, level: Level, msg: &str) {
    let line = format_line(journal.then_some(level), msg);
    let mut rest = line.as_bytes();
    // A short write happens only when a signal interrupts a large one;
    // the rest follows rather than being lost.
    while !rest.is_empty() {
        match sys::write_fd(&fd, rest) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest = &rest[n..],
        }
    }
}

/// `msg` and a newline, at most [`MAX_LINE`] bytes; with a priority, each
/// of its lines starts with `<N>` (journald reads each line as an entry).
fn format_line(level: Option<Level>, msg: &str) -> String {
    let prefix = level.map(|l| format!("<{}>", l as u8)).unwrap_or_default();
    let mut line = String::with_capacity(msg.len().min(MAX_LINE) + prefix.len() + 1);
    for (i, part) in msg.split('\n').enumerate() {
        if i > 0 {
            line.push('\n');
        }
        line.push_str(&prefix);
        line.push_str(part);
    }
    if line.len() + 1 > MAX_LINE {
        let mut end = MAX_LINE - 1 - CUT_MARK.len();
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(CUT_MARK);
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_message_and_a_newline() {
        assert_eq!(format_line(None, "* Listening on x"), "* Listening on x\n");
        assert_eq!(
            format_line(Some(Level::Info), "- Goodbye!"),
            "<6>- Goodbye!\n"
        );
        assert_eq!(format_line(Some(Level::Warning), "! w"), "<4>! w\n");
        assert_eq!(format_line(Some(Level::Error), "e"), "<3>e\n");
    }

    #[test]
    fn every_line_of_a_message_gets_the_priority() {
        assert_eq!(format_line(Some(Level::Error), "a\nb"), "<3>a\n<3>b\n");
        assert_eq!(format_line(None, "a\nb"), "a\nb\n");
    }

    #[test]
    fn long_messages_are_cut_to_one_atomic_write() {
        let long = "é".repeat(MAX_LINE);
        let line = format_line(Some(Level::Info), &long);
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(line.starts_with("<6>é") && line.ends_with("...\n"));
        let exact = "x".repeat(MAX_LINE - 1);
        assert_eq!(format_line(None, &exact).len(), MAX_LINE);
        assert!(format_line(None, &exact).ends_with("xx\n"));
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn seconds_are_exact_or_rounded_to_their_places() {
        use std::time::Duration;
        let s = |ms: u64, places| Seconds::places(Duration::from_millis(ms), places).to_string();
        assert_eq!(s(1234, 2), "1.23");
        assert_eq!(s(1235, 2), "1.24");
        assert_eq!(s(999, 1), "1.0");
        assert_eq!(s(50, 4), "0.0500");
        assert_eq!(s(1500, 0), "2");
        let nanos = Duration::from_nanos(123_456_789);
        assert_eq!(Seconds::places(nanos, 9).to_string(), "0.123456789");
        let exact = |d: Duration| Seconds::exact(d).to_string();
        assert_eq!(exact(Duration::from_secs(30)), "30");
        assert_eq!(exact(Duration::from_millis(200)), "0.2");
        assert_eq!(exact(Duration::from_millis(1250)), "1.25");
        assert_eq!(exact(Duration::from_nanos(1_000_000_001)), "1.000000001");
        assert_eq!(exact(Duration::ZERO), "0");
    }
}
