//! The command line and the config file, turned into one validated
//! [`Config`].
//!
//! Settings come in three layers, a later layer winning over an earlier one:
//!
//! 1. the built-in defaults (the `DEFAULT_*` constants);
//! 2. the config file named by `-C FILE`, a small subset of Puma's DSL
//!    (the directives are listed in [`help`]);
//! 3. the command line.
//!
//! Two settings do not simply "win": binds given on the command line
//! *replace* every bind of the file (Puma's behaviour, so `-b` can move a
//! server without editing its file), and when no layer gives a bind the
//! server listens on [`DEFAULT_BIND`].
//!
//! # Paths
//!
//! A relative `-C FILE`, and a relative `directory` or `pidfile` *inside*
//! the file, are relative to the current working directory, not to the
//! file (Puma's behaviour). They are kept relative: catamount does not
//! change its working directory (unlike Puma, `directory` only names what
//! is served), so [`reload`] resolves them the same way as startup did.
//! Code that ever calls `chdir` must make these paths absolute first.
//!
//! # Reload
//!
//! [`Config::cli`] keeps what the command line set, as an [`Overrides`]
//! layer; [`Config::config_file`] keeps the file. [`reload`] re-reads that
//! file and applies the same command-line layer on top, so a reload sees
//! the new file but never loses a flag the operator gave. It returns the
//! whole new `Config`; which fields can change in a running server (binds,
//! say) is the server's decision.
//!
//! # Errors
//!
//! Every error is one line saying what was found and what was expected:
//! options are named as `--threads "abc"; expected ...`, file errors start
//! with `FILE:LINE:`. [`ConfigError::exit`] prints it and exits with
//! status 2, before anything is bound. Options and directives that a
//! later release may implement (`fork_worker`, ...) are refused with "not
//! supported yet", and Puma's directives that catamount spells another
//! way (`ssl_bind`) or has no equivalent for (Ruby hooks) with what to
//! do: never silently ignored.
//!
//! # Checks across settings
//!
//! After the layers are merged, `load` checks what no single value can:
//! DIR is a directory this process can read, and not `/` unless a layer
//! named it (the default is the working directory, `/` under systemd), and
//! a control URL has a token (or the file said `no_token: true`) and is
//! not also a bind; and a `control_token_file` (`--control-token-file`)
//! is read, so the token need not sit in the file or the command line.
//! Each message names the `FILE:LINE` when the setting came from the
//! file. `--check` returns [`Command::Check`] instead of
//! [`Command::Run`]: the server then checks what else a start needs
//! (certificates, the control socket's directory) and exits.
//!
//! # Where things are
//!
//! One table, `settings.rs`, lists every setting once: its option, its
//! directive, and how a value is parsed into a layer. The rest of the
//! module walks that table:
//!
//! | file | owns |
//! |---|---|
//! | `types.rs` | [`Config`], its defaults and limits, one layer ([`Overrides`]) and how it is written over a `Config`, [`ConfigError`], [`Command`] |
//! | `options.rs` | how a command-line option is spelled, and reading its values with pico-args |
//! | `settings.rs` | the settings table |
//! | `values.rs` | value rules shared by both spellings (seconds, names, tokens, control URLs) |
//! | `cli.rs` | [`parse_args`]: the pre-pass in front of pico-args, the options that are not settings, the refused ones |
//! | `lexer.rs` | the config file's syntax: a line into a directive name and literal values |
//! | `file.rs` | reading the config file into a layer, with `FILE:LINE:`; the refused directives |
//! | `load.rs` | defaults < file < command line, the checks on the merged result, [`reload`], [`load_file`] |
//! | `help.rs`, `help.txt` | the `--help` text |
//!
//! Modules import only downwards in this order: `types`, `values`,
//! `lexer`, `options`, `settings`, `file`, `load`, `cli`; `help` imports nothing.
//! This file only declares them and re-exports the public API.

mod cli;
mod file;
mod help;
mod lexer;
mod load;
mod options;
mod settings;
mod types;
mod values;

#[cfg(test)]
mod tests;

pub use cli::parse_args;
pub use help::help;
pub use load::{load_file, reload};
pub use types::{
    ActivatedMode, Command, Config, ConfigError, ExtraAccess, Overrides, DEFAULT_BIND,
    DEFAULT_BODY_TIMEOUT, DEFAULT_DIR, DEFAULT_ENVIRONMENT, DEFAULT_FIRST_DATA_TIMEOUT,
    DEFAULT_MAX_BODY, DEFAULT_MAX_KEEP_ALIVE, DEFAULT_MAX_THREADS, DEFAULT_MAX_UPGRADED,
    DEFAULT_MIN_THREADS, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WORKERS,
    DEFAULT_WORKER_BOOT_TIMEOUT, DEFAULT_WORKER_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
    MAX_CONFIG_FILE_BYTES, MAX_CONTROL_TOKEN_FILE_BYTES, MAX_THREADS_LIMIT, MAX_TIMEOUT,
    MAX_UPGRADED_LIMIT, MAX_WORKERS, MAX_WORKER_MAX_RSS_MIB,
};
