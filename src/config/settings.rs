//! The settings table: every setting catamount has, written once.
//!
//! An entry ([`Setting`]) says how the command line spells the setting
//! (its option, short name and whether it takes a value), how the config
//! file spells it (its directive), and how a value from either is parsed
//! and written into a layer ([`Overrides`]). `cli.rs` and `file.rs` walk
//! this table and nothing else, so adding a setting is one entry here and
//! its lines in help.txt; neither walker has a fallback arm that could
//! swallow a known name, and the tests check that every entry can be
//! reached from the command line or the file and is in the help.
//!
//! The command line's values are read with pico-args, as designed: each
//! entry hands [`Values`] a typed parser and pico-args extracts every
//! value of that option. (What pico-args does not do, the pre-pass in
//! `cli.rs` does first; its module doc says why.)

use std::path::PathBuf;
use std::time::Duration;

use super::lexer::{
    boolean, non_empty_string, number, ruby_number, string, Arg, Directive, NOT_SHOWN,
};
use super::options::{CliOption, OptionKind, Values, INVALID};
use super::types::{ActivatedMode, ConfigError, ControlToken, Overrides, MAX_WORKER_MAX_RSS_MIB};
use super::values::{
    check_threads, first_repeat, optional, parse_activated, parse_control_url, parse_header_value,
    parse_keep_alive, parse_limit, parse_name, parse_optional_name, parse_secs, parse_threads,
    parse_token, parse_upgraded, parse_workers,
};
use crate::bind::BindSpec;

/// One setting, as the command line and the config file spell it.
pub(super) struct Setting {
    /// The config-file directive; "" when only the command line sets it.
    pub(super) directive: &'static str,
    /// The command-line option; `None` when only the file sets it.
    pub(super) option: Option<CliOption>,
    /// Its values may hold a token: no error shows them (see
    /// [`NOT_SHOWN`]).
    pub(super) secret: bool,
    /// How a value is parsed and written into a layer.
    pub(super) handler: Handler,
}

/// How a setting's value is parsed and written into a layer. The two
/// common shapes are written once here; the rest have their own code.
pub(super) enum Handler {
    /// Seconds (see [`parse_secs`]): the option's value, or the
    /// directive's one number.
    Secs(Field<Duration>),
    /// On or off: the option alone, or the directive's `true`/`false`
    /// (alone, true).
    Switch(Field<bool>),
    /// Written for this setting: `cli` reads the option's values, `file`
    /// one directive line. `None` where the setting has no such spelling.
    Own {
        cli: Option<FromCli>,
        file: Option<FromFile>,
    },
}

/// The layer's field that a [`Handler::Secs`] or [`Handler::Switch`]
/// writes.
pub(super) type Field<T> = fn(&mut Overrides) -> &mut Option<T>;
/// Reads every value of one option into the layer.
pub(super) type FromCli = fn(&mut Values<'_>, &mut Overrides) -> Result<(), ConfigError>;
/// Reads one directive line into the layer; the error is the message
/// after `FILE:LINE: `.
pub(super) type FromFile = fn(&Directive<'_>, &mut Overrides) -> Result<(), String>;

pub(super) const SECS_EXPECT: &str =
    "a number of seconds above 0 and at most 86400, as in 30 or 0.5";
pub(super) const NO_REFORK: &str = "workers are forked from the main process only";
const TOKEN_EXPECT: &str = "non-empty token of visible ASCII (no spaces)";

const fn flag(long: &'static str, short: &'static str) -> Option<CliOption> {
    Some(CliOption {
        long,
        short,
        kind: OptionKind::Flag,
    })
}

const fn value(long: &'static str, short: &'static str, expect: &'static str) -> Option<CliOption> {
    Some(CliOption {
        long,
        short,
        kind: OptionKind::Value { expect },
    })
}

/// A setting whose parsing is written for it alone.
const fn own(
    directive: &'static str,
    option: Option<CliOption>,
    cli: Option<FromCli>,
    file: Option<FromFile>,
) -> Setting {
    Setting {
        directive,
        option,
        secret: false,
        handler: Handler::Own { cli, file },
    }
}

const fn secs(directive: &'static str, long: &'static str, field: Field<Duration>) -> Setting {
    Setting {
        directive,
        option: value(long, "", SECS_EXPECT),
        secret: false,
        handler: Handler::Secs(field),
    }
}

const fn switch(
    directive: &'static str,
    long: &'static str,
    short: &'static str,
    field: Field<bool>,
) -> Setting {
    Setting {
        directive,
        option: flag(long, short),
        secret: false,
        handler: Handler::Switch(field),
    }
}

/// Every setting, in the order of the help text. The command-line
/// options that are not settings (`--config`, `--check`, `--help`,
/// `--version`) and the refused ones are in `cli.rs`; the refused
/// directives are in `file.rs`.
pub(super) const SETTINGS: &[Setting] = &[
    own(
        "bind",
        value(
            "--bind",
            "-b",
            "a bind URI (tcp://, unix://, ssl:// or fd://), as in --bind tcp://0.0.0.0:9292 \
             or --bind unix:///run/app.sock",
        ),
        Some(bind_from_cli),
        Some(bind_from_file),
    ),
    own("port", None, None, Some(port_from_file)),
    own(
        "threads",
        value(
            "--threads",
            "-t",
            "MIN:MAX or N, with MIN <= MAX and 1 <= MAX <= 4096, as in --threads 0:16",
        ),
        Some(|v, layer| {
            layer.threads = v.last(|s| parse_threads(s).ok_or(INVALID))?;
            Ok(())
        }),
        Some(threads_from_file),
    ),
    // The command line names DIR as its free argument (see cli.rs).
    own(
        "directory",
        None,
        None,
        Some(|d, layer| {
            let dir = non_empty_string(&d.args)
                .ok_or_else(|| d.bad("a quoted directory, as in directory \"/srv/www\""))?;
            layer.dir = Some(PathBuf::from(dir));
            Ok(())
        }),
    ),
    own(
        "environment",
        value(
            "--environment",
            "-e",
            "a non-empty name without control characters, as in --environment production",
        ),
        Some(|v, layer| {
            layer.environment = v.last(|s| parse_name(s).map(str::to_string).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let env = string(&d.args).and_then(parse_name).ok_or_else(|| {
                d.bad("a quoted name without control characters, as in environment \"production\"")
            })?;
            layer.environment = Some(env.to_string());
            Ok(())
        }),
    ),
    own(
        "tag",
        value(
            "--tag",
            "",
            "a name without control characters, as in --tag app",
        ),
        Some(|v, layer| {
            layer.tag = v.last(|s| parse_optional_name(s).map(str::to_string).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let tag = string(&d.args)
                .and_then(parse_optional_name)
                .ok_or_else(|| {
                    d.bad("a quoted name without control characters, as in tag \"app\"")
                })?;
            layer.tag = Some(tag.to_string());
            Ok(())
        }),
    ),
    own(
        "pidfile",
        value("--pidfile", "", "a file path, as in --pidfile /run/app.pid"),
        Some(|v, layer| {
            layer.pidfile = v.last_path()?;
            Ok(())
        }),
        Some(|d, layer| {
            let path = string(&d.args)
                .ok_or_else(|| d.bad("a quoted path, as in pidfile \"/run/app.pid\""))?;
            layer.pidfile = Some(PathBuf::from(path));
            Ok(())
        }),
    ),
    secs("first_data_timeout", "--first-data-timeout", |l| {
        &mut l.first_data_timeout
    }),
    secs("body_timeout", "--body-timeout", |l| &mut l.body_timeout),
    secs("write_timeout", "--write-timeout", |l| &mut l.write_timeout),
    secs("persistent_timeout", "--persistent-timeout", |l| {
        &mut l.persistent_timeout
    }),
    secs("shutdown_timeout", "--shutdown-timeout", |l| {
        &mut l.shutdown_timeout
    }),
    own(
        "max_keep_alive",
        value(
            "--max-keep-alive",
            "",
            "a whole number from 1 to 4294967295, as in --max-keep-alive 999",
        ),
        Some(|v, layer| {
            layer.max_keep_alive = v.last(|s| parse_keep_alive(s).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let n = number(&d.args, parse_keep_alive).ok_or_else(|| {
                d.bad("a whole number from 1 to 4294967295, as in max_keep_alive 999")
            })?;
            layer.max_keep_alive = Some(n);
            Ok(())
        }),
    ),
    own(
        "max_body",
        value(
            "--max-body",
            "",
            "a whole number of bytes, as in --max-body 10485760",
        ),
        Some(|v, layer| {
            layer.max_body = v.last(|s| s.parse().map_err(|_| INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let n = number(&d.args, |w| w.parse().ok())
                .ok_or_else(|| d.bad("a whole number of bytes, as in max_body 10_485_760"))?;
            layer.max_body = Some(n);
            Ok(())
        }),
    ),
    own(
        "max_upgraded",
        value(
            "--max-upgraded",
            "",
            "a whole number from 0 to 65536, as in --max-upgraded 256",
        ),
        Some(|v, layer| {
            layer.max_upgraded = v.last(|s| parse_upgraded(s).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let n = number(&d.args, parse_upgraded)
                .ok_or_else(|| d.bad("a whole number from 0 to 65536, as in max_upgraded 256"))?;
            layer.max_upgraded = Some(n);
            Ok(())
        }),
    ),
    switch("log_requests", "--log-requests", "", |l| {
        &mut l.log_requests
    }),
    switch("quiet", "--quiet", "-q", |l| &mut l.quiet),
    switch("dir_listing", "--dir-listing", "", |l| &mut l.dir_listing),
    switch("serve_dotfiles", "--serve-dotfiles", "", |l| {
        &mut l.serve_dotfiles
    }),
    own(
        "cache_control",
        value(
            "--cache-control",
            "",
            "printable ASCII, as in --cache-control \"public, max-age=60\"",
        ),
        Some(|v, layer| {
            layer.cache_control =
                v.last(|s| parse_header_value(s).map(str::to_string).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let value = string(&d.args).and_then(parse_header_value).ok_or_else(|| {
                d.bad("a quoted value of printable ASCII, as in cache_control \"public, max-age=60\"")
            })?;
            layer.cache_control = Some(value.to_string());
            Ok(())
        }),
    ),
    // systemd. A bare --bind-to-activated-sockets arrives as "true".
    own(
        "bind_to_activated_sockets",
        Some(CliOption {
            long: "--bind-to-activated-sockets",
            short: "",
            kind: OptionKind::FlagOrValue {
                expect: "true, false or only, as in --bind-to-activated-sockets=only \
                         (the option alone means true)",
            },
        }),
        Some(|v, layer| {
            layer.activated = v.last(|s| parse_activated(s).ok_or(INVALID))?;
            Ok(())
        }),
        Some(activated_from_file),
    ),
    switch("fd_store", "--fd-store", "", |l| &mut l.fd_store),
    secs("idle_timeout", "--idle-timeout", |l| &mut l.idle_timeout),
    // Landlock: on unless turned off; the option only turns it off.
    own(
        "landlock",
        flag("--no-landlock", ""),
        Some(|v, layer| {
            if v.flag().is_some() {
                layer.landlock = Some(false);
            }
            Ok(())
        }),
        Some(|d, layer| {
            layer.landlock =
                Some(boolean(&d.args).ok_or_else(|| d.bad("true or false, as in landlock false"))?);
            Ok(())
        }),
    ),
    // Cluster.
    own(
        "workers",
        value(
            "--workers",
            "-w",
            "a whole number from 0 to 256 (0 is single mode), as in --workers 4",
        ),
        Some(|v, layer| {
            layer.workers = v.last(|s| parse_workers(s).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let n = number(&d.args, parse_workers).ok_or_else(|| {
                d.bad("a whole number from 0 to 256 (0 is single mode), as in workers 4")
            })?;
            layer.workers = Some(n);
            Ok(())
        }),
    ),
    switch("preload_app!", "--preload", "", |l| &mut l.preload),
    secs("worker_timeout", "--worker-timeout", |l| {
        &mut l.worker_timeout
    }),
    secs("worker_boot_timeout", "--worker-boot-timeout", |l| {
        &mut l.worker_boot_timeout
    }),
    // Puma's name for shutdown_timeout in cluster mode; both modes share
    // the one setting.
    Setting {
        directive: "worker_shutdown_timeout",
        option: Some(CliOption {
            long: "--worker-shutdown-timeout",
            short: "",
            kind: OptionKind::Alias("--shutdown-timeout"),
        }),
        secret: false,
        handler: Handler::Secs(|l| &mut l.shutdown_timeout),
    },
    own(
        "max_requests",
        value(
            "--max-requests",
            "",
            "a whole number from 1 to 18446744073709551615, or \"\" for no limit, \
             as in --max-requests 10000",
        ),
        Some(|v, layer| {
            layer.max_requests =
                v.last(|s| optional(s, |s| parse_limit(s, u64::MAX)).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            layer.max_requests = Some(Some(limit_from_file(d, u64::MAX, "max_requests 10_000")?));
            Ok(())
        }),
    ),
    own(
        "worker_max_rss",
        value(
            "--worker-max-rss",
            "",
            "a whole number of MiB from 1 to 16777216, or \"\" for no limit, \
             as in --worker-max-rss 512",
        ),
        Some(|v, layer| {
            layer.worker_max_rss =
                v.last(|s| optional(s, |s| parse_limit(s, MAX_WORKER_MAX_RSS_MIB)).ok_or(INVALID))?;
            Ok(())
        }),
        Some(|d, layer| {
            let n = limit_from_file(d, MAX_WORKER_MAX_RSS_MIB, "worker_max_rss 512")?;
            layer.worker_max_rss = Some(Some(n));
            Ok(())
        }),
    ),
    // The control app.
    Setting {
        directive: "activate_control_app",
        option: None,
        secret: true,
        handler: Handler::Own {
            cli: None,
            file: Some(control_app_from_file),
        },
    },
    own(
        "control_url",
        value(
            "--control-url",
            "",
            "unix:///PATH or tcp://HOST:PORT on a loopback host, as in \
             --control-url unix:///run/app-control.sock",
        ),
        Some(|v, layer| {
            layer.control_url = v.last(|s| {
                if s.is_empty() {
                    Ok(None)
                } else {
                    parse_control_url(s).map(Some)
                }
            })?;
            Ok(())
        }),
        Some(|d, layer| {
            let uri = string(&d.args).ok_or_else(|| {
                d.bad("a quoted URI, as in control_url \"unix:///run/app-control.sock\"")
            })?;
            layer.control_url = Some(if uri.is_empty() {
                None
            } else {
                Some(parse_control_url(uri).map_err(|e| format!("{} {uri:?}: {e}", d.name))?)
            });
            Ok(())
        }),
    ),
    Setting {
        directive: "control_token",
        option: value(
            "--control-token",
            "",
            "a non-empty token of visible ASCII (no spaces), as in --control-token s3cr3t",
        ),
        secret: true,
        handler: Handler::Own {
            cli: Some(|v, layer| {
                if let Some(t) = v.last(|s| parse_token(s).map(str::to_string).ok_or(INVALID))? {
                    set_token(layer, ControlToken::Token(t)).map_err(|()| cli_token_clash())?;
                }
                Ok(())
            }),
            file: Some(|d, layer| {
                let token = string(&d.args).and_then(parse_token).ok_or_else(|| {
                    format!(
                        "{} {NOT_SHOWN}; expected a quoted, {TOKEN_EXPECT}, as in \
                         control_token \"s3cr3t\"",
                        d.name
                    )
                })?;
                set_token(layer, ControlToken::Token(token.to_string()))
                    .map_err(|()| file_token_clash(d.name))
            }),
        },
    },
    own(
        "control_token_file",
        value(
            "--control-token-file",
            "",
            "a file path, as in --control-token-file \
             /run/credentials/catamount.service/control-token",
        ),
        Some(|v, layer| {
            if let Some(path) = v.last_path()? {
                if path.as_os_str().is_empty() {
                    return Err(v.invalid("\"\""));
                }
                set_token(layer, ControlToken::File(path)).map_err(|()| cli_token_clash())?;
            }
            Ok(())
        }),
        Some(|d, layer| {
            let path = non_empty_string(&d.args).ok_or_else(|| {
                d.bad(
                    "a quoted path to the file holding the token, as in control_token_file \
                     \"/run/credentials/catamount.service/control-token\"",
                )
            })?;
            set_token(layer, ControlToken::File(PathBuf::from(path)))
                .map_err(|()| file_token_clash(d.name))
        }),
    ),
    own(
        "state_path",
        value("--state", "-S", "a file path, as in --state /run/app.state"),
        Some(|v, layer| {
            layer.state_path = v.last_path()?;
            Ok(())
        }),
        Some(|d, layer| {
            let path = string(&d.args)
                .ok_or_else(|| d.bad("a quoted path, as in state_path \"/run/app.state\""))?;
            layer.state_path = Some(PathBuf::from(path));
            Ok(())
        }),
    ),
];

impl Setting {
    /// Whether the command line can set it (an alias reads its values
    /// under the name it stands for).
    #[cfg(test)]
    pub(super) fn has_cli(&self) -> bool {
        match self.handler {
            Handler::Secs(_) | Handler::Switch(_) => true,
            Handler::Own { cli, .. } => cli.is_some(),
        }
    }

    /// Whether the config file can set it.
    #[cfg(test)]
    pub(super) fn has_file(&self) -> bool {
        match self.handler {
            Handler::Secs(_) | Handler::Switch(_) => true,
            Handler::Own { file, .. } => file.is_some(),
        }
    }

    /// Reads every value the command line gave this setting's option.
    pub(super) fn read_option(
        &self,
        values: &mut Values<'_>,
        layer: &mut Overrides,
    ) -> Result<(), ConfigError> {
        match self.handler {
            Handler::Secs(field) => {
                *field(layer) = values.last(|s| parse_secs(s).ok_or(INVALID))?
            }
            Handler::Switch(field) => *field(layer) = values.flag(),
            Handler::Own { cli: Some(cli), .. } => cli(values, layer)?,
            // Not reached: tests check that each option has a handler.
            Handler::Own { cli: None, .. } => {
                return Err(ConfigError::new(format!(
                    "internal error: option {} has no handler; please report it",
                    values.option.long
                )))
            }
        }
        Ok(())
    }

    /// Reads one directive line of this setting.
    pub(super) fn read_directive(
        &self,
        d: &Directive<'_>,
        layer: &mut Overrides,
    ) -> Result<(), String> {
        let name = d.name;
        match self.handler {
            Handler::Secs(field) => {
                let secs = number(&d.args, parse_secs)
                    .ok_or_else(|| d.bad(&format!("{SECS_EXPECT}, as in {name} 30")))?;
                *field(layer) = Some(secs);
            }
            Handler::Switch(field) => {
                let on = boolean(&d.args)
                    .ok_or_else(|| d.bad(&format!("true or false, as in {name} true")))?;
                *field(layer) = Some(on);
            }
            Handler::Own {
                file: Some(file), ..
            } => file(d, layer)?,
            // Not reached: tests check that each directive has a handler.
            Handler::Own { file: None, .. } => {
                return Err(format!(
                    "internal error: directive {name} has no handler; please report it"
                ))
            }
        }
        Ok(())
    }
}

/// The settings the config file can set, by directive name.
pub(super) fn by_directive(name: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| !s.directive.is_empty() && s.directive == name)
}

/// Every directive name, in table order.
pub(super) fn directives() -> impl Iterator<Item = &'static str> {
    SETTINGS
        .iter()
        .map(|s| s.directive)
        .filter(|d| !d.is_empty())
}

fn bind_from_cli(v: &mut Values<'_>, layer: &mut Overrides) -> Result<(), ConfigError> {
    // The problem alone: `Values` shows it as `--bind "URI": PROBLEM`.
    layer.binds = v.all(|uri| BindSpec::parse(uri).map_err(|e| e.problem().to_string()))?;
    if let Some((a, _)) = first_repeat(&layer.binds) {
        return Err(ConfigError::new(format!(
            "--bind {:?} is given twice; expected each listener once",
            a.to_string()
        )));
    }
    Ok(())
}

/// Adds the bind; `file.rs` refuses one that repeats an earlier line's.
fn bind_from_file(d: &Directive<'_>, layer: &mut Overrides) -> Result<(), String> {
    let [Arg::Str(uri)] = d.args.as_slice() else {
        return Err(d.bad("one quoted URI, as in bind \"tcp://0.0.0.0:9292\""));
    };
    layer
        .binds
        .push(BindSpec::parse(uri).map_err(|e| e.to_string())?);
    Ok(())
}

/// `port 9292` or `port 9292, "HOST"`: Puma's shorthand for a tcp:// bind.
fn port_from_file(d: &Directive<'_>, layer: &mut Overrides) -> Result<(), String> {
    const EXPECT: &str = "a port and an optional quoted host, as in port 9292 or \
                          port 9292, \"127.0.0.1\"";
    let (port, host) = match d.args.as_slice() {
        [Arg::Word(port)] => (port, "0.0.0.0"),
        [Arg::Word(port), Arg::Str(host)] => (port, host.as_str()),
        _ => return Err(d.bad(EXPECT)),
    };
    let port: u16 = ruby_number(port)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| d.bad(EXPECT))?;
    let uri = if host.contains(':') && !host.starts_with('[') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    };
    let bind = BindSpec::parse(&uri).map_err(|e| format!("{} {}: {e}", d.name, d.raw))?;
    layer.binds.push(bind);
    Ok(())
}

fn threads_from_file(d: &Directive<'_>, layer: &mut Overrides) -> Result<(), String> {
    const EXPECT: &str =
        "two integers MIN, MAX with MIN <= MAX and 1 <= MAX <= 4096, as in threads 0, 16";
    let [Arg::Word(min), Arg::Word(max)] = d.args.as_slice() else {
        return Err(d.bad(EXPECT));
    };
    let whole = |w: &str| ruby_number(w).and_then(|n| n.parse::<usize>().ok());
    layer.threads = Some(
        whole(min)
            .zip(whole(max))
            .and_then(|(min, max)| check_threads(min, max))
            .ok_or_else(|| d.bad(EXPECT))?,
    );
    Ok(())
}

fn activated_from_file(d: &Directive<'_>, layer: &mut Overrides) -> Result<(), String> {
    let mode = match d.args.as_slice() {
        [Arg::Str(s)] if s == "only" => Some(ActivatedMode::Only),
        args => boolean(args).map(|on| {
            if on {
                ActivatedMode::On
            } else {
                ActivatedMode::Off
            }
        }),
    };
    layer.activated = Some(mode.ok_or_else(|| {
        d.bad("true, false or \"only\", as in bind_to_activated_sockets \"only\"")
    })?);
    Ok(())
}

/// `max_requests N` and `worker_max_rss MIB`: a whole number from 1 to
/// `max`.
fn limit_from_file(d: &Directive<'_>, max: u64, example: &str) -> Result<u64, String> {
    number(&d.args, |w| parse_limit(w, max))
        .ok_or_else(|| d.bad(&format!("a whole number from 1 to {max}, as in {example}")))
}

/// `activate_control_app "URI"[, { auth_token: "T" } | { no_token: true }]`.
/// Tokens are never echoed: an error shows the URI only.
fn control_app_from_file(d: &Directive<'_>, layer: &mut Overrides) -> Result<(), String> {
    const EXPECT: &str = "a quoted URI and optional { auth_token: \"TOKEN\" } or \
                          { no_token: true }, as in activate_control_app \
                          \"unix:///run/app-control.sock\", { auth_token: \"s3cr3t\" }";
    let name = d.name;
    let (uri, options) = match d.args.as_slice() {
        [Arg::Str(uri)] => (uri, &[][..]),
        [Arg::Str(uri), Arg::Hash(options)] => (uri, options.as_slice()),
        _ => return Err(format!("{name} {NOT_SHOWN}; expected {EXPECT}")),
    };
    let at = |e: &str| format!("{name} {uri:?}: {e}");
    let url = parse_control_url(uri).map_err(|e| at(&e))?;
    let mut token = None;
    let mut no_token = false;
    for (key, value) in options {
        match (key.as_str(), value) {
            ("auth_token", value) => {
                let t = match value {
                    Arg::Str(t) => parse_token(t),
                    _ => None,
                };
                let t = t.ok_or_else(|| {
                    at(&format!("auth_token {NOT_SHOWN}; expected {TOKEN_EXPECT}"))
                })?;
                token = Some(t.to_string());
            }
            ("no_token", Arg::Word(w)) if w == "true" || w == "false" => {
                no_token = w == "true";
            }
            ("no_token", _) => {
                return Err(at(
                    "no_token with a value other than true or false; expected no_token: true",
                ))
            }
            (key, _) => {
                return Err(at(&format!(
                    "unknown option {key:?}; expected auth_token: \"TOKEN\" or no_token: true"
                )))
            }
        }
    }
    layer.control_url = Some(Some(url));
    // Alone, the URI leaves the token to other lines.
    match (token, no_token) {
        (Some(_), true) => Err(at(
            "both auth_token: and no_token: true; expected one of them",
        )),
        (Some(t), false) => {
            set_token(layer, ControlToken::Token(t)).map_err(|()| file_token_clash(name))
        }
        (None, true) => {
            layer.control_token = Some(ControlToken::NoToken);
            Ok(())
        }
        (None, false) => Ok(()),
    }
}

/// Writes where the layer's control token comes from. A token and a
/// token file in one layer contradict each other (which one was meant?),
/// so that is `Err`; `no_token: true` and either simply give way to the
/// later line, as a later line does everywhere in the file.
fn set_token(layer: &mut Overrides, token: ControlToken) -> Result<(), ()> {
    let clash = matches!(
        (&layer.control_token, &token),
        (Some(ControlToken::Token(_)), ControlToken::File(_))
            | (Some(ControlToken::File(_)), ControlToken::Token(_))
    );
    if clash {
        return Err(());
    }
    layer.control_token = Some(token);
    Ok(())
}

fn cli_token_clash() -> ConfigError {
    ConfigError::new(
        "--control-token and --control-token-file both give the control token; expected \
         one of them (--control-token-file keeps the token out of ps)",
    )
}

fn file_token_clash(name: &str) -> String {
    format!(
        "{name}: this file gives the control token both with control_token_file and with \
         control_token or auth_token:; expected one of them (control_token_file keeps the \
         token out of this file)"
    )
}
