//! The command line: [`parse_args`], the pre-pass in front of pico-args,
//! and the options that are not settings (`--config`, `--check`,
//! `--help`, `--version`) or are refused. The settings' own options come
//! from the settings table.
//!
//! # Why a pre-pass in front of pico-args
//!
//! pico-args looks options up by searching the whole argument list, so on
//! its own it would reorder `-b A --bind B` (all `-b` first), take a value
//! spelled like an option for that option, and leave unknown options
//! mixed with free arguments. `CommandLine::split` walks the arguments
//! once, left to right, knowing which options take a value: it refuses
//! unknown and unsupported options, splits `--name=VALUE` and `-tVALUE`,
//! rewrites short names to long ones, honours `--`, and separates the free
//! arguments. pico-args then extracts typed values from that canonical
//! list, where every value follows its option and no value is spelled
//! like an option, so its search is exact.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::load::load;
use super::options::{CliOption, OptionKind, Values};
use super::settings::{NO_REFORK, SETTINGS};
use super::types::{Command, ConfigError, Overrides};
use super::values::closest;

/// Parses `args` (without the program name), reads the config file it
/// names, and checks the result.
///
/// `-h` or `-V` anywhere among the options wins over everything but an
/// unknown or refused option, so `catamount -t oops --help` still prints
/// the help.
///
/// An app that takes its own arguments can hand catamount the rest, and
/// then [`Server::new`](crate::Server::new) the result:
///
/// ```
/// use catamount::config::{parse_args, Command};
///
/// let args = ["-b", "tcp://127.0.0.1:8080", "--threads", "2:16", "--workers", "2"];
/// let Ok(Command::Run(config)) = parse_args(args.iter().map(Into::into).collect()) else {
///     panic!("expected a configuration to run");
/// };
/// assert_eq!(config.binds[0].to_string(), "tcp://127.0.0.1:8080");
/// assert_eq!((config.min_threads, config.max_threads, config.workers), (2, 16, 2));
/// ```
pub fn parse_args(args: Vec<OsString>) -> Result<Command, ConfigError> {
    let line = CommandLine::split(args)?;
    let mut args = pico_args::Arguments::from_vec(line.options);
    if args.contains("--help") {
        return Ok(Command::Help);
    }
    if args.contains("--version") {
        return Ok(Command::Version);
    }

    let mut cli = Overrides::default();
    for setting in SETTINGS {
        let Some(option) = &setting.option else {
            continue;
        };
        // The pre-pass rewrote an alias to the name it stands for.
        if matches!(option.kind, OptionKind::Alias(_)) {
            continue;
        }
        let mut values = Values {
            args: &mut args,
            option,
            secret: setting.secret,
        };
        setting.read_option(&mut values, &mut cli)?;
    }
    let mut config = Values {
        args: &mut args,
        option: &CONFIG,
        secret: false,
    };
    let config_file = config.last_path()?;
    if config_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err(config.invalid("\"\""));
    }
    let check = Values {
        args: &mut args,
        option: &CHECK,
        secret: false,
    }
    .flag()
    .is_some();

    let leftover = args.finish();
    if let Some(arg) = leftover.first() {
        // CommandLine::split only emits options extracted above.
        return Err(ConfigError::new(format!(
            "internal error: option {:?} was not handled; please report it",
            arg.to_string_lossy()
        )));
    }

    let mut free = line.free.into_iter();
    cli.dir = free.next().map(PathBuf::from);
    // `--bind-to-activated-sockets only` leaves `only` as DIR: that
    // option takes a value only after "=" (alone it means true).
    if let Some(word) = cli.dir.as_deref().and_then(Path::to_str) {
        if ["only", "true", "false"].contains(&word) && !Path::new(word).is_dir() {
            return Err(ConfigError::new(format!(
                "DIR {word:?}: no such directory to serve; to set --bind-to-activated-sockets, \
                 write --bind-to-activated-sockets={word} (its value follows \"=\"; \
                 the option alone means true)"
            )));
        }
    }
    if let Some(extra) = free.next() {
        return Err(ConfigError::new(format!(
            "unexpected argument {:?}; expected at most one DIR to serve \
             (options start with -; run catamount --help)",
            extra.to_string_lossy()
        )));
    }

    let config = Box::new(load(config_file, cli)?);
    Ok(if check {
        Command::Check(config)
    } else {
        Command::Run(config)
    })
}

const fn command(long: &'static str, short: &'static str, kind: OptionKind) -> CliOption {
    CliOption { long, short, kind }
}

const CONFIG: CliOption = command(
    "--config",
    "-C",
    OptionKind::Value {
        expect: "a config file, as in --config /etc/catamount.rb",
    },
);
const CHECK: CliOption = command("--check", "", OptionKind::Flag);

/// The options that are not settings: they say what to do, not how to
/// serve.
const COMMAND_OPTIONS: &[CliOption] = &[
    CONFIG,
    CHECK,
    command("--version", "-V", OptionKind::Flag),
    command("--help", "-h", OptionKind::Flag),
];

/// Options catamount refuses, each saying what to do instead.
const REFUSED_OPTIONS: &[CliOption] = &[
    command("--fork-worker", "", OptionKind::NotYet(NO_REFORK)),
    command(
        "--port",
        "-p",
        OptionKind::Instead("use --bind tcp://0.0.0.0:PORT"),
    ),
    command(
        "--dir",
        "",
        OptionKind::Instead("give the directory as the last argument, as in catamount /srv/www"),
    ),
    command(
        "--daemon",
        "-d",
        OptionKind::Instead("catamount stays in the foreground; let systemd supervise it"),
    ),
];

/// Every option catamount knows, the refused ones included: the
/// settings' first, in the order of the help.
pub(super) fn options() -> impl Iterator<Item = &'static CliOption> {
    SETTINGS
        .iter()
        .filter_map(|s| s.option.as_ref())
        .chain(COMMAND_OPTIONS)
        .chain(REFUSED_OPTIONS)
}

/// The option with this canonical long name.
pub(super) fn option(long: &str) -> Option<&'static CliOption> {
    options().find(|o| o.long == long)
}

/// The command line after the pre-pass (see the module doc).
struct CommandLine {
    /// `--long` names, each option taking a value followed by it.
    options: Vec<OsString>,
    /// Free arguments, in order.
    free: Vec<OsString>,
}

impl CommandLine {
    fn split(args: Vec<OsString>) -> Result<CommandLine, ConfigError> {
        let mut line = CommandLine {
            options: Vec::new(),
            free: Vec::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let bytes = arg.as_bytes();
            if bytes == b"--" {
                line.free.extend(args);
                break;
            }
            if !bytes.starts_with(b"-") || bytes == b"-" {
                line.free.push(arg);
                continue;
            }
            // `--name=VALUE`, `-xVALUE`, or a bare name.
            let (name, attached) = if bytes.starts_with(b"--") {
                match bytes.iter().position(|&b| b == b'=') {
                    Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                    None => (bytes, None),
                }
            } else if bytes.len() > 2 && bytes[1].is_ascii() {
                (&bytes[..2], Some(&bytes[2..]))
            } else {
                (bytes, None)
            };
            let typed = String::from_utf8_lossy(name);
            let spec = options()
                .find(|o| {
                    o.long.as_bytes() == name || (!o.short.is_empty() && o.short.as_bytes() == name)
                })
                .ok_or_else(|| unknown_option(&arg))?;
            let spec = match spec.kind {
                OptionKind::Alias(long) => option(long).ok_or_else(|| unknown_option(&arg))?,
                _ => spec,
            };
            match spec.kind {
                OptionKind::NotYet(why) => {
                    return Err(ConfigError::new(format!(
                        "option {typed} is not supported yet ({why}); remove it"
                    )))
                }
                OptionKind::Instead(what) => {
                    return Err(ConfigError::new(format!(
                        "option {typed} is not a catamount option; {what}"
                    )))
                }
                OptionKind::Flag => {
                    if attached.is_some() {
                        return Err(ConfigError::new(format!(
                            "{:?}: option {typed} takes no value; expected {typed} alone \
                             (give each flag separately)",
                            arg.to_string_lossy()
                        )));
                    }
                    line.options.push(spec.long.into());
                }
                OptionKind::Value { expect } => {
                    let value = match attached {
                        Some(v) => OsString::from_vec(v.to_vec()),
                        None => args.next().ok_or_else(|| {
                            ConfigError::new(format!(
                                "option {typed} is missing its value; expected {expect}"
                            ))
                        })?,
                    };
                    check_not_an_option(&typed, &value, expect, attached.is_some())?;
                    line.options.push(spec.long.into());
                    line.options.push(value);
                }
                OptionKind::FlagOrValue { expect } => {
                    let value = attached.map_or_else(
                        || OsString::from("true"),
                        |v| OsString::from_vec(v.to_vec()),
                    );
                    check_not_an_option(&typed, &value, expect, true)?;
                    line.options.push(spec.long.into());
                    line.options.push(value);
                }
                // An alias never names an alias (tested below).
                OptionKind::Alias(_) => {
                    return Err(ConfigError::new(format!(
                        "internal error: option {typed} is an alias of an alias; please report it"
                    )))
                }
            }
        }
        Ok(line)
    }
}

/// Refuses a value spelled like an option: it is almost surely a
/// forgotten value (`--tag -b tcp://...` would tag the server "-b" and
/// serve a directory named after the bind), and pico-args would take a
/// long name for the option it spells. A value after the option may not
/// start like any option (`-b`, `-btcp://...`, `--bind=...`); one
/// attached with `=` may, unless it is a whole long name.
fn check_not_an_option(
    typed: &str,
    value: &OsStr,
    expect: &str,
    attached: bool,
) -> Result<(), ConfigError> {
    let v = value.as_bytes();
    let is_option = if attached {
        options().any(|o| o.long.as_bytes() == v)
    } else {
        names_an_option(v)
    };
    if !is_option {
        return Ok(());
    }
    let hint = if attached {
        String::new()
    } else if typed.starts_with("--") {
        format!(" (a value that starts with - is written {typed}=VALUE)")
    } else {
        format!(" (a value that starts with - is written {typed}VALUE)")
    };
    Err(ConfigError::new(format!(
        "option {typed} is followed by option {}, not by a value; expected {expect}{hint}",
        value.to_string_lossy()
    )))
}

/// `arg` is spelled as one of [`options`]: `--name`, `--name=VALUE`,
/// `-x` or `-xVALUE`.
fn names_an_option(arg: &[u8]) -> bool {
    options().any(|o| {
        let long = o.long.as_bytes();
        let short = o.short.as_bytes();
        arg == long
            || (arg.starts_with(long) && arg.get(long.len()) == Some(&b'='))
            || (!short.is_empty() && arg.starts_with(short))
    })
}

fn unknown_option(arg: &OsStr) -> ConfigError {
    let arg = arg.to_string_lossy();
    let name = arg.split('=').next().unwrap_or(&arg);
    let known = options().filter(|o| o.is_accepted());
    let hint = closest(name, known.map(|o| o.long))
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    ConfigError::new(format!(
        "unknown option {name:?}{hint}; run catamount --help for the list of options"
    ))
}
