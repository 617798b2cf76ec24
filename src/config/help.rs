//! The `--help` text. It lives in help.txt, as it is printed, so it reads
//! and diffs as text; the tests check that it names every setting's
//! option and directive, every default and every limit.

/// The `--help` text: every option and config-file directive, with its
/// default and limits.
///
/// ```
/// assert!(catamount::config::help().contains("--threads"));
/// ```
pub fn help() -> &'static str {
    HELP
}

const HELP: &str = include_str!("help.txt");
