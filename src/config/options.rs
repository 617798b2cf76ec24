//! Command-line options: how one is spelled ([`CliOption`]) and reading
//! its values with pico-args ([`Values`]), with the error messages both
//! share. Which options exist is the settings table's business (and
//! `cli.rs`'s, for the few that are not settings).

use std::fmt;
use std::path::PathBuf;

use super::lexer::NOT_SHOWN;
use super::types::ConfigError;

/// How one command-line option is spelled and what it takes.
pub(super) struct CliOption {
    /// `--name`, the canonical spelling.
    pub(super) long: &'static str,
    /// `-x`, or "" when there is none.
    pub(super) short: &'static str,
    pub(super) kind: OptionKind,
}

pub(super) enum OptionKind {
    Flag,
    /// Takes one value; `expect` completes "expected ..." in errors.
    Value {
        expect: &'static str,
    },
    /// Alone means `--name=true`; a value can only be attached with `=`,
    /// so the next argument is never taken for it.
    FlagOrValue {
        expect: &'static str,
    },
    /// Another name for the option with this long name, which reads its
    /// value: the pre-pass rewrites it, so the last of either wins.
    Alias(&'static str),
    /// Refused: a later issue implements it; the text says why.
    NotYet(&'static str),
    /// Refused: another tool's option; the text says what to use.
    Instead(&'static str),
}

/// The error payload of value parsers handed to pico-args; the message
/// shown comes from the option's `expect` text instead.
pub(super) const INVALID: &str = "invalid value";

/// One option's values, read with pico-args from the canonical command
/// line the pre-pass in `cli.rs` built: every value right after its
/// option, none spelled like an option, so pico-args' search by name is
/// exact.
pub(super) struct Values<'a> {
    pub(super) args: &'a mut pico_args::Arguments,
    pub(super) option: &'static CliOption,
    /// The values may hold a token: errors do not show them.
    pub(super) secret: bool,
}

impl Values<'_> {
    /// Every value, parsed, in the order given.
    pub(super) fn all<T, E: fmt::Display>(
        &mut self,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<Vec<T>, ConfigError> {
        let long = self.option.long;
        self.args
            .values_from_fn(long, parse)
            .map_err(|e| self.error(e))
    }

    /// The last value (repeats are allowed; the last wins, but every one
    /// must parse). A parse error other than [`INVALID`] is shown after
    /// the value.
    pub(super) fn last<T, E: fmt::Display>(
        &mut self,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        Ok(self.all(parse)?.pop())
    }

    /// Like [`Values::last`] for a path, which need not be UTF-8.
    pub(super) fn last_path(&mut self) -> Result<Option<PathBuf>, ConfigError> {
        let long = self.option.long;
        let mut values = self
            .args
            .values_from_os_str(long, |s| Ok::<_, &str>(PathBuf::from(s)))
            .map_err(|e| self.error(e))?;
        Ok(values.pop())
    }

    /// `Some(true)` when the flag is given (any number of times).
    pub(super) fn flag(&mut self) -> Option<bool> {
        let mut seen = false;
        while self.args.contains(self.option.long) {
            seen = true;
        }
        seen.then_some(true)
    }

    /// "--name VALUE; expected ..." for a value the caller refuses.
    pub(super) fn invalid(&self, shown: &str) -> ConfigError {
        ConfigError::new(format!(
            "{} {shown}; expected {}",
            self.option.long,
            self.option.expect_text()
        ))
    }

    fn error(&self, e: pico_args::Error) -> ConfigError {
        let long = self.option.long;
        let expect = self.option.expect_text();
        ConfigError::new(match e {
            pico_args::Error::Utf8ArgumentParsingFailed { .. }
            | pico_args::Error::NonUtf8Argument
                if self.secret =>
            {
                format!("{long} {NOT_SHOWN}; expected {expect}")
            }
            pico_args::Error::Utf8ArgumentParsingFailed { value, cause } if cause != INVALID => {
                format!("{long} {value:?}: {cause}")
            }
            pico_args::Error::Utf8ArgumentParsingFailed { value, .. } => {
                format!("{long} {value:?}; expected {expect}")
            }
            pico_args::Error::NonUtf8Argument => {
                format!("{long} with a value that is not UTF-8; expected {expect}")
            }
            other => format!("{long}: {other}; expected {expect}"),
        })
    }
}

impl CliOption {
    /// Whether catamount takes this option (rather than refusing it).
    pub(super) fn is_accepted(&self) -> bool {
        matches!(
            self.kind,
            OptionKind::Flag
                | OptionKind::Value { .. }
                | OptionKind::FlagOrValue { .. }
                | OptionKind::Alias(_)
        )
    }

    /// What "expected ..." says about this option's value.
    pub(super) fn expect_text(&self) -> &'static str {
        match self.kind {
            OptionKind::Value { expect } | OptionKind::FlagOrValue { expect } => expect,
            // An alias has no text of its own: the pre-pass reads it
            // under the name it stands for.
            _ => "no value",
        }
    }
}
