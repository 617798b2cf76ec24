//! The config module's unit tests: every option, directive, message
//! and layering rule, through `parse_args` as the binary calls it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::cli::{option, options};
use super::file::{setting_named, NOT_YET_DIRECTIVES, PUMA_ONLY_DIRECTIVES};
use super::lexer::{arguments, lex, Arg};
use super::load::{check_dir, DirOrigin};
use super::options::OptionKind;
use super::settings::{directives, SETTINGS};
use super::values::{closest, edit_distance, parse_control_url};
use super::*;
use crate::bind::BindSpec;

/// A directory under the system temp dir, unique to this process and
/// call, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "catamount-config-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside the dir; returns its path.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).expect("write a temp file");
        path
    }

    fn subdir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::create_dir_all(&path).expect("create a temp subdir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn run(args: &[&str]) -> Config {
    match parse_args(os_args(args)) {
        Ok(Command::Run(config)) => *config,
        Ok(other) => panic!("{args:?}: expected Run, got {other:?}"),
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// The error for `args`, checked to be one line.
fn error(args: &[&str]) -> String {
    match parse_args(os_args(args)) {
        Ok(other) => panic!("{args:?}: expected an error, got {other:?}"),
        Err(e) => one_line(e),
    }
}

fn one_line(e: ConfigError) -> String {
    let message = e.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    message
}

/// Runs with config file `contents` (and `extra` arguments) in a
/// fresh temp dir.
fn with_file(contents: &str, extra: &[&str]) -> Result<Config, String> {
    let tmp = TempDir::new();
    let file = tmp.file("app.rb", contents);
    let mut args = vec!["-C", file.to_str().expect("temp paths are UTF-8")];
    args.extend_from_slice(extra);
    match parse_args(os_args(&args)) {
        Ok(Command::Run(config)) => Ok(*config),
        Ok(other) => panic!("expected Run, got {other:?}"),
        Err(e) => Err(one_line(e)),
    }
}

/// The error for a config file, with the temp path replaced by
/// `app.rb` so tests can compare whole messages.
fn file_error(contents: &str) -> String {
    let tmp = TempDir::new();
    let file = tmp.file("app.rb", contents);
    let args = vec![OsString::from("-C"), file.clone().into_os_string()];
    match parse_args(args) {
        Ok(other) => panic!("expected an error, got {other:?}"),
        Err(e) => one_line(e).replace(&file.display().to_string(), "app.rb"),
    }
}

fn tcp(host: &str, port: u16) -> BindSpec {
    BindSpec::parse(&format!("tcp://{host}:{port}")).expect("test bind")
}

fn unix(path: &str) -> BindSpec {
    BindSpec::parse(&format!("unix://{path}")).expect("test bind")
}

#[test]
fn defaults() {
    let c = run(&[]);
    assert_eq!(c, Config::default());
    assert_eq!(c.binds, vec![BindSpec::parse(DEFAULT_BIND).unwrap()]);
    assert_eq!(c.dir, PathBuf::from("."));
    assert_eq!((c.min_threads, c.max_threads), (0, 5));
    assert_eq!(c.environment, "production");
    assert_eq!(c.tag, None);
    assert_eq!(c.pidfile, None);
    assert_eq!(c.first_data_timeout, Duration::from_secs(30));
    assert_eq!(c.persistent_timeout, Duration::from_secs(65));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.max_keep_alive, 999);
    assert_eq!(c.max_body, 10_485_760);
    assert!(!c.log_requests && !c.quiet && !c.dir_listing && !c.serve_dotfiles);
    assert_eq!(c.cache_control, None);
    assert_eq!(c.activated, ActivatedMode::Off);
    assert!(!c.fd_store && !c.preload);
    assert_eq!(c.workers, 0);
    assert_eq!(c.worker_timeout, Duration::from_secs(60));
    assert_eq!(c.worker_boot_timeout, Duration::from_secs(60));
    assert_eq!((c.max_requests, c.worker_max_rss), (None, None));
    assert_eq!((c.control_url, c.control_token), (None, None));
    assert_eq!(c.state_path, None);
    assert_eq!(c.config_file, None);
    assert_eq!(c.cli, Overrides::default());
}

#[test]
fn every_option() {
    let tmp = TempDir::new();
    let dir = tmp.subdir("www");
    let file = tmp.file("app.rb", "");
    let c = run(&[
        "-b",
        "tcp://127.0.0.1:8080",
        "--bind",
        "unix:///run/app.sock",
        "-t",
        "2:8",
        "-C",
        file.to_str().unwrap(),
        "-e",
        "staging",
        "--tag",
        "app",
        "--pidfile",
        "/run/app.pid",
        "--first-data-timeout",
        "0.5",
        "--persistent-timeout",
        "10",
        "--shutdown-timeout",
        "2.25",
        "--max-keep-alive",
        "7",
        "--max-body",
        "1024",
        "--log-requests",
        "-q",
        "--dir-listing",
        "--serve-dotfiles",
        "--cache-control",
        "public, max-age=60",
        "--bind-to-activated-sockets=only",
        "--fd-store",
        "-w",
        "4",
        "--preload",
        "--worker-timeout",
        "20",
        "--worker-boot-timeout",
        "30.5",
        "--max-requests",
        "1000",
        "--worker-max-rss",
        "512",
        "--control-url",
        "unix:///run/ctl.sock",
        "--control-token",
        "s3cr3t",
        "-S",
        "/run/app.state",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        c.binds,
        vec![
            tcp("127.0.0.1", 8080),
            BindSpec::parse("unix:///run/app.sock").unwrap()
        ]
    );
    assert_eq!((c.min_threads, c.max_threads), (2, 8));
    assert_eq!(c.config_file, Some(file));
    assert_eq!(c.environment, "staging");
    assert_eq!(c.tag.as_deref(), Some("app"));
    assert_eq!(c.pidfile, Some(PathBuf::from("/run/app.pid")));
    assert_eq!(c.first_data_timeout, Duration::from_millis(500));
    assert_eq!(c.persistent_timeout, Duration::from_secs(10));
    assert_eq!(c.shutdown_timeout, Duration::from_millis(2250));
    assert_eq!(c.max_keep_alive, 7);
    assert_eq!(c.max_body, 1024);
    assert!(c.log_requests && c.quiet && c.dir_listing && c.serve_dotfiles);
    assert_eq!(c.cache_control.as_deref(), Some("public, max-age=60"));
    assert_eq!(c.activated, ActivatedMode::Only);
    assert!(c.fd_store && c.preload);
    assert_eq!(c.workers, 4);
    assert_eq!(c.worker_timeout, Duration::from_secs(20));
    assert_eq!(c.worker_boot_timeout, Duration::from_millis(30_500));
    assert_eq!((c.max_requests, c.worker_max_rss), (Some(1000), Some(512)));
    assert_eq!(c.control_url, Some(unix("/run/ctl.sock")));
    assert_eq!(c.control_token.as_deref(), Some("s3cr3t"));
    assert_eq!(c.state_path, Some(PathBuf::from("/run/app.state")));
    assert_eq!(c.dir, dir);
}

#[test]
fn long_forms_short_forms_and_separators() {
    let tmp = TempDir::new();
    let dir = tmp.subdir("-odd");
    let c = run(&[
        "--bind=tcp://127.0.0.1:1",
        "-btcp://127.0.0.1:2",
        "--threads=3:4",
        "--environment=dev",
        "--",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(c.binds, vec![tcp("127.0.0.1", 1), tcp("127.0.0.1", 2)]);
    assert_eq!((c.min_threads, c.max_threads), (3, 4));
    assert_eq!(c.environment, "dev");
    assert_eq!(c.dir, dir);
    // A value may start with a dash.
    assert_eq!(run(&["--tag", "-x-"]).tag.as_deref(), Some("-x-"));
}

#[test]
fn binds_keep_their_order_across_spellings() {
    let c = run(&[
        "--bind",
        "tcp://127.0.0.1:1",
        "-b",
        "tcp://127.0.0.1:2",
        "--bind",
        "tcp://127.0.0.1:3",
    ]);
    let want: Vec<_> = (1..=3).map(|p| tcp("127.0.0.1", p)).collect();
    assert_eq!(c.binds, want);
}

#[test]
fn repeated_single_options_last_wins_and_flags_repeat() {
    let c = run(&[
        "-t",
        "1:2",
        "--threads",
        "3:4",
        "-q",
        "--quiet",
        "--log-requests",
    ]);
    assert_eq!((c.min_threads, c.max_threads), (3, 4));
    assert!(c.quiet && c.log_requests);
}

#[test]
fn threads_forms() {
    let threads = |v: &str| {
        let c = run(&["-t", v]);
        (c.min_threads, c.max_threads)
    };
    assert_eq!(threads("0:16"), (0, 16));
    assert_eq!(threads("8"), (8, 8));
    assert_eq!(threads("1:1"), (1, 1));
    assert_eq!(threads("0:4096"), (0, MAX_THREADS_LIMIT));
    for bad in [
        "5:2", "0", "0:0", "a", "1:", ":4", "-1:2", "1:4097", "1:2:3", "", "1.5",
    ] {
        let e = error(&["--threads", bad]);
        assert_eq!(
            e,
            format!(
                "--threads {bad:?}; expected MIN:MAX or N, with MIN <= MAX and \
                 1 <= MAX <= 4096, as in --threads 0:16"
            )
        );
    }
}

#[test]
fn empty_values_turn_optional_settings_off() {
    let c = with_file(
        "tag \"app\"\npidfile \"/run/a.pid\"\ncache_control \"no-store\"\n",
        &["--tag", "", "--pidfile", "", "--cache-control", ""],
    )
    .unwrap();
    assert_eq!((c.tag, c.pidfile, c.cache_control), (None, None, None));
}

#[test]
fn help_and_version() {
    for a in ["-h", "--help"] {
        assert!(matches!(parse_args(os_args(&[a])), Ok(Command::Help)));
    }
    for a in ["-V", "--version"] {
        assert!(matches!(parse_args(os_args(&[a])), Ok(Command::Version)));
    }
    // Help wins over bad values and a missing DIR.
    assert!(matches!(
        parse_args(os_args(&["-t", "oops", "/no/such/dir", "--help"])),
        Ok(Command::Help)
    ));
}

#[test]
fn refused_options_say_not_supported_yet() {
    assert_eq!(
        error(&["--fork-worker"]),
        "option --fork-worker is not supported yet (workers are forked from the main \
         process only); remove it"
    );
    assert!(error(&["--fork-worker=1000"]).contains("not supported yet"));
    assert_eq!(
        error(&["-p", "9292"]),
        "option -p is not a catamount option; use --bind tcp://0.0.0.0:PORT"
    );
    for o in options() {
        if let OptionKind::NotYet(_) = o.kind {
            assert!(
                error(&[o.long]).contains("is not supported yet ("),
                "{}",
                o.long
            );
        }
    }
}

#[test]
fn unknown_options_and_extra_arguments() {
    assert_eq!(
        error(&["--frobnicate"]),
        "unknown option \"--frobnicate\"; run catamount --help for the list of options"
    );
    assert_eq!(
        error(&["--thread=4"]),
        "unknown option \"--thread\" (did you mean --threads?); \
         run catamount --help for the list of options"
    );
    assert!(error(&["-x"]).starts_with("unknown option \"-x\";"));
    // Refused options are not suggested; aliases and new options are.
    assert!(!error(&["--fork-wroker"]).contains("did you mean"));
    assert!(error(&["--wokers"]).contains("(did you mean --workers?)"));
    assert!(
        error(&["--worker-shutdown-timout"]).contains("(did you mean --worker-shutdown-timeout?)")
    );
    assert_eq!(
        error(&[".", "src"]),
        "unexpected argument \"src\"; expected at most one DIR to serve \
         (options start with -; run catamount --help)"
    );
}

#[test]
fn missing_and_misplaced_values() {
    assert_eq!(
        error(&["--bind"]),
        "option --bind is missing its value; expected a bind URI (tcp://, unix://, \
         ssl:// or fd://), as in --bind tcp://0.0.0.0:9292 or --bind unix:///run/app.sock"
    );
    assert!(error(&["--tag", "--quiet"])
        .starts_with("option --tag is followed by option --quiet, not by a value;"));
    // A short option, or one with its value, is refused the same way:
    // `--tag -b URI` would otherwise serve a DIR named after the bind.
    assert_eq!(
        error(&["--tag", "-b", "tcp://127.0.0.1:1"]),
        "option --tag is followed by option -b, not by a value; expected a name without \
         control characters, as in --tag app (a value that starts with - is written \
         --tag=VALUE)"
    );
    for next in [
        "-btcp://127.0.0.1:1",
        "--bind=tcp://127.0.0.1:1",
        "-q",
        "-h",
        "--help",
    ] {
        let e = error(&["--pidfile", next, "."]);
        assert!(
            e.starts_with(&format!("option --pidfile is followed by option {next}, ")),
            "{e}"
        );
    }
    assert!(error(&["-e", "-w", "2"])
        .starts_with("option -e is followed by option -w, not by a value;"));
    assert!(error(&["-e", "-w"]).ends_with("(a value that starts with - is written -eVALUE)"));
    // Attached, such a value is the operator's choice; and a value
    // that only starts with "-" is judged as a value.
    assert_eq!(run(&["--tag=-b"]).tag.as_deref(), Some("-b"));
    assert!(error(&["--max-body", "-1"]).starts_with("--max-body \"-1\"; expected"));
    assert_eq!(
        error(&["--quiet=yes"]),
        "\"--quiet=yes\": option --quiet takes no value; expected --quiet alone \
         (give each flag separately)"
    );
    assert!(error(&["-qh"]).contains("option -q takes no value"));
    assert!(error(&["--config="]).starts_with("--config \"\"; expected"));
}

#[test]
fn bind_errors_list_every_scheme() {
    assert_eq!(
        error(&["-b", "0.0.0.0:9292"]),
        "--bind \"0.0.0.0:9292\": expected tcp://HOST:PORT, unix:///ABSOLUTE/PATH, \
         ssl://HOST:PORT?cert=PATH&key=PATH or fd://NAME"
    );
    assert_eq!(
        error(&["-b", "http://0.0.0.0:9292"]),
        "--bind \"http://0.0.0.0:9292\": unknown scheme \"http\"; expected tcp://, \
         unix://, ssl:// or fd://"
    );
    assert!(file_error("bind \"https://0.0.0.0:443\"")
        .ends_with("unknown scheme \"https\"; expected tcp://, unix://, ssl:// or fd://"));
    // A control URL names only the schemes it takes.
    assert!(error(&["--control-url", "http://127.0.0.1:1"])
        .ends_with("unknown scheme \"http\"; expected tcp:// or unix://"));
}

/// What an ssl:// bind without options is told: by tls/, its first
/// missing option; built without TLS, by tls_off.rs, that TLS is not built
/// in. These tests check where config puts the words; tls/'s and
/// tls_off.rs's tests check the words.
fn ssl_without_options() -> String {
    crate::tls::TlsOptions::parse_query(&[]).expect_err("an ssl:// bind without cert= is refused")
}

#[test]
fn bad_bind_on_the_command_line() {
    assert_eq!(
        error(&["-b", "ssl://0.0.0.0:443"]),
        format!("--bind \"ssl://0.0.0.0:443\": {}", ssl_without_options())
    );
    assert_eq!(
        error(&[
            "-b",
            "tcp://127.0.0.1:1",
            "--bind",
            "tcp://127.0.0.1:1?backlog=5"
        ]),
        "--bind \"tcp://127.0.0.1:1\" is given twice; expected each listener once"
    );
}

#[test]
fn seconds() {
    let secs = |v: &str| run(&["--shutdown-timeout", v]).shutdown_timeout;
    assert_eq!(secs("0.5"), Duration::from_millis(500));
    assert_eq!(secs("86400"), MAX_TIMEOUT);
    assert_eq!(secs("1e1"), Duration::from_secs(10));
    // Read as decimal digits, rounded to whole nanoseconds at the end.
    assert_eq!(secs("5."), Duration::from_secs(5));
    assert_eq!(secs(".25"), Duration::from_millis(250));
    assert_eq!(secs("0.1"), Duration::from_millis(100));
    assert_eq!(secs("0000.0000000015"), Duration::from_nanos(2));
    assert_eq!(secs("0.0000000014"), Duration::from_nanos(1));
    assert_eq!(secs("2.5E-3"), Duration::from_micros(2500));
    assert_eq!(secs("8.64e4"), MAX_TIMEOUT);
    assert_eq!(
        secs("86399.999999999"),
        MAX_TIMEOUT - Duration::from_nanos(1)
    );
    for opt in [
        "--first-data-timeout",
        "--persistent-timeout",
        "--shutdown-timeout",
    ] {
        for bad in [
            "0",
            "-1",
            "NaN",
            "abc",
            "inf",
            "",
            "0.0",
            "1e-12",
            "86400.5",
            " 5",
            ".",
            "1e",
            "e1",
            "1.2.3",
            "0x10",
            "1e99999999999",
            "9".repeat(40).as_str(),
            "86400.0000000005",
            "0.0000000004",
            "+5",
            "5s",
        ] {
            assert_eq!(
                error(&[opt, bad]),
                format!(
                    "{opt} {bad:?}; expected a number of seconds above 0 and at most \
                     86400, as in 30 or 0.5"
                )
            );
        }
    }
}

#[test]
fn counts_and_header_values() {
    assert_eq!(run(&["--max-keep-alive", "1"]).max_keep_alive, 1);
    assert_eq!(Config::default().max_upgraded, DEFAULT_MAX_UPGRADED);
    assert_eq!(run(&["--max-upgraded", "0"]).max_upgraded, 0);
    assert_eq!(run(&["--max-upgraded", "65536"]).max_upgraded, 65536);
    assert!(error(&["--max-upgraded", "65537"]).starts_with("--max-upgraded \"65537\"; expected"));
    assert_eq!(run(&["--max-body", "0"]).max_body, 0);
    assert!(error(&["--max-keep-alive", "0"]).starts_with("--max-keep-alive \"0\"; expected"));
    assert!(error(&["--max-keep-alive", "4294967296"]).starts_with("--max-keep-alive"));
    assert!(error(&["--max-body", "-1"]).starts_with("--max-body \"-1\"; expected"));
    assert!(error(&["--max-body", "10M"]).starts_with("--max-body \"10M\"; expected"));
    assert!(error(&["--cache-control", "a\r\nSet-Cookie: x"]).starts_with("--cache-control"));
    assert!(error(&["--cache-control", "caf\u{e9}"]).starts_with("--cache-control"));
    assert!(error(&["-e", ""]).starts_with("--environment \"\"; expected a non-empty name"));
    assert!(error(&["--tag", "a\x1bb"]).starts_with("--tag"));
}

#[test]
fn bad_dir() {
    let tmp = TempDir::new();
    let missing = tmp.path().join("missing");
    let e = error(&[missing.to_str().unwrap()]);
    assert!(
        e.starts_with(&format!("DIR {missing:?} does not exist; expected")),
        "{e}"
    );
    assert!(e.ends_with("; expected a directory to serve, as in catamount /srv/www"));
    let file = tmp.file("plain", "x");
    assert_eq!(
        error(&[file.to_str().unwrap()]),
        format!(
            "DIR {file:?} is not a directory; expected a directory to serve, \
             as in catamount /srv/www"
        )
    );
}

#[test]
fn check_is_run_with_the_same_configuration() {
    let tmp = TempDir::new();
    let dir = tmp.path().to_str().unwrap();
    let args = ["-t", "2:4", "-b", "tcp://127.0.0.1:8080", dir];
    let Ok(Command::Check(checked)) = parse_args(os_args(&[&["--check"][..], &args].concat()))
    else {
        panic!("--check gives Command::Check");
    };
    assert_eq!(*checked, run(&args));
    assert!(matches!(
        parse_args(os_args(&[dir, "--check"])),
        Ok(Command::Check(_))
    ));
    assert_eq!(
        error(&["--check=yes"]),
        "\"--check=yes\": option --check takes no value; expected --check alone (give each \
         flag separately)"
    );
}

#[test]
fn slash_is_served_only_when_named() {
    let refused = "no directory to serve was given, and the default, the current \
                   directory, is / (where systemd starts services): catamount would serve \
                   the whole file system; expected DIR, as in catamount /srv/www, or \
                   directory \"/srv/www\" in the config file (name / itself to serve it on \
                   purpose)";
    for default in ["/", "/tmp/..", "/."] {
        let e = check_dir(Path::new(default), DirOrigin::Default).unwrap_err();
        assert_eq!(e.to_string(), refused, "{default}");
    }
    let file = Path::new("app.rb");
    for origin in [DirOrigin::CommandLine, DirOrigin::File(file, 1)] {
        assert!(check_dir(Path::new("/"), origin).is_ok());
    }
    assert!(check_dir(Path::new("/tmp"), DirOrigin::Default).is_ok());
    // The file's `directory` and the DIR argument name it on purpose.
    assert_eq!(run(&["/"]).dir, PathBuf::from("/"));
    assert_eq!(
        with_file("directory \"/\"\n", &[]).unwrap().dir,
        PathBuf::from("/")
    );
}

#[test]
fn non_utf8_paths_are_fine() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = TempDir::new();
    let name = OsStr::from_bytes(b"caf\xe9");
    let dir = tmp.path().join(name);
    fs::create_dir(&dir).unwrap();
    let args = vec![
        OsString::from("--pidfile"),
        dir.join("pid").into_os_string(),
        dir.clone().into_os_string(),
    ];
    let Ok(Command::Run(c)) = parse_args(args) else {
        panic!("non-UTF-8 DIR and pidfile should be accepted");
    };
    assert_eq!(c.dir, dir);
    assert_eq!(c.pidfile, Some(dir.join("pid")));
    let e = parse_args(vec![OsString::from("--tag"), name.to_os_string()]).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("--tag with a value that is not UTF-8"));
}

#[test]
fn every_directive() {
    let tmp = TempDir::new();
    let www = tmp.subdir("www");
    let text = format!(
        r#"# A catamount config.

bind "tcp://127.0.0.1:9000"   # trailing comment
bind 'unix:///run/app.sock'
port 9001
port 9002, "::1"
threads 2, 32
directory "{}"
environment "staging"
tag "app # not a comment"
pidfile "/run/app.pid"
first_data_timeout 0.5
persistent_timeout 20
shutdown_timeout 3
max_keep_alive 50
max_body 1_048_576
max_upgraded 7
log_requests true
quiet
dir_listing true
serve_dotfiles false
cache_control "public, max-age=60"
"#,
        www.display()
    );
    let c = with_file(&text, &[]).unwrap();
    assert_eq!(
        c.binds,
        vec![
            tcp("127.0.0.1", 9000),
            BindSpec::parse("unix:///run/app.sock").unwrap(),
            tcp("0.0.0.0", 9001),
            tcp("[::1]", 9002),
        ]
    );
    assert_eq!((c.min_threads, c.max_threads), (2, 32));
    assert_eq!(c.dir, www);
    assert_eq!(c.environment, "staging");
    assert_eq!(c.tag.as_deref(), Some("app # not a comment"));
    assert_eq!(c.pidfile, Some(PathBuf::from("/run/app.pid")));
    assert_eq!(c.first_data_timeout, Duration::from_millis(500));
    assert_eq!(c.persistent_timeout, Duration::from_secs(20));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
    assert_eq!(c.max_keep_alive, 50);
    assert_eq!(c.max_body, 1_048_576);
    assert_eq!(c.max_upgraded, 7);
    assert!(c.log_requests && c.quiet && c.dir_listing && !c.serve_dotfiles);
    assert_eq!(c.cache_control.as_deref(), Some("public, max-age=60"));
    assert_eq!(c.cli, Overrides::default());
}

#[test]
fn file_syntax_variants() {
    let c = with_file(
        "\u{feff}threads 0,16\r\n\
         \t  environment(\"a \\\"b\\\" \\\\ c\")  \r\n\
         tag 'it\\'s \\n'\n\
         log_requests(true)\n\
         quiet false # off\n\
         max_keep_alive 1_000\n\
         persistent_timeout 1_0.5\n\
         tag \"last wins\"\n",
        &[],
    )
    .unwrap();
    assert_eq!((c.min_threads, c.max_threads), (0, 16));
    assert_eq!(c.environment, "a \"b\" \\ c");
    assert_eq!(c.tag.as_deref(), Some("last wins"));
    assert!(c.log_requests && !c.quiet);
    assert_eq!(c.max_keep_alive, 1000);
    assert_eq!(c.persistent_timeout, Duration::from_millis(10_500));
    let c = with_file("tag 'it\\'s \\n'", &[]).unwrap();
    assert_eq!(c.tag.as_deref(), Some("it's \\n"));
}

#[test]
fn command_line_overrides_file() {
    let tmp = TempDir::new();
    let file_dir = tmp.subdir("from-file");
    let cli_dir = tmp.subdir("from-cli");
    let text = format!(
        "bind \"tcp://127.0.0.1:9000\"\nthreads 1, 2\ndirectory \"{}\"\n\
         log_requests false\nmax_body 5\nenvironment \"file\"\n",
        file_dir.display()
    );
    let c = with_file(
        &text,
        &[
            "-b",
            "tcp://127.0.0.1:9999",
            "-t",
            "3:4",
            "--log-requests",
            cli_dir.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(c.binds, vec![tcp("127.0.0.1", 9999)]);
    assert_eq!((c.min_threads, c.max_threads), (3, 4));
    assert_eq!(c.dir, cli_dir);
    assert!(c.log_requests);
    // What the command line does not say, the file does.
    assert_eq!(c.max_body, 5);
    assert_eq!(c.environment, "file");
    // The file's binds stand when the command line gives none.
    assert_eq!(
        with_file(&text, &[]).unwrap().binds,
        vec![tcp("127.0.0.1", 9000)]
    );
}

#[test]
fn file_errors_name_file_and_line() {
    assert_eq!(
        file_error("# comment\n\ntreads 0, 16\n"),
        "app.rb:3: unknown directive \"treads\" (did you mean threads?)"
    );
    // Short, as `systemctl status` shows it: no list of every directive.
    assert_eq!(
        file_error("frobnicate 1\n"),
        "app.rb:1: unknown directive \"frobnicate\"; see CONFIG FILE in catamount --help \
         for the directives"
    );
    assert_eq!(
        file_error("bind \"tcp://127.0.0.1:1\"\n\n\nthreads a, 5\n"),
        "app.rb:4: threads a, 5; expected two integers MIN, MAX with MIN <= MAX and \
         1 <= MAX <= 4096, as in threads 0, 16"
    );
    assert_eq!(
        file_error("threads 5, 2"),
        "app.rb:1: threads 5, 2; expected two integers MIN, MAX with MIN <= MAX and \
         1 <= MAX <= 4096, as in threads 0, 16"
    );
    assert_eq!(
        file_error("tag \"app\"\nbind \"tcp://0.0.0.0:9292  # oops\n"),
        "app.rb:2: unterminated string \"tcp://0.0.0.0:9292  # oops; expected a closing \" \
         on the same line"
    );
    assert_eq!(
        file_error("\nfork_worker 1000\n"),
        "app.rb:2: directive \"fork_worker\" is not supported yet (workers are forked from \
         the main process only); expected the line removed"
    );
    assert_eq!(
        file_error("ssl_bind \"0.0.0.0\", \"443\", { cert: \"c\", key: \"k\" }\n"),
        "app.rb:1: directive \"ssl_bind\" is Puma's, not catamount's; write an ssl:// \
         bind instead, as in bind \"ssl://0.0.0.0:443?cert=PATH&key=PATH\" (see TLS in \
         catamount --help)"
    );
    assert_eq!(
        file_error("bind \"ssl://0.0.0.0:443\"\n"),
        format!(
            "app.rb:1: bind \"ssl://0.0.0.0:443\": {}",
            ssl_without_options()
        )
    );
    assert_eq!(
        file_error("bind \"tcp://0.0.0.0:9292\"\nbind \"tcp://[::1]:1\"\nport 9292\n"),
        "app.rb:3: bind \"tcp://0.0.0.0:9292\" repeats the bind of line 1; \
         expected each listener once"
    );
    assert_eq!(
        file_error("environment production"),
        "app.rb:1: environment production; expected a quoted name without control \
         characters, as in environment \"production\""
    );
    assert_eq!(
        file_error("bind"),
        "app.rb:1: bind without a value; expected one quoted URI, as in \
         bind \"tcp://0.0.0.0:9292\""
    );
}

#[test]
fn every_not_yet_directive_is_refused() {
    for (name, _) in NOT_YET_DIRECTIVES {
        let e = file_error(&format!("{name} 1\n"));
        assert!(
            e.starts_with(&format!(
                "app.rb:1: directive {name:?} is not supported yet ("
            )),
            "{e}"
        );
    }
    // The name is judged before the (Ruby) value.
    assert!(file_error("fork_worker ENV.fetch(\"N\") { 2 }").contains("not supported yet"));
    assert_eq!(
        file_error("on_worker_boot do"),
        "app.rb:1: directive \"on_worker_boot\" is Puma's, not catamount's; Ruby hooks \
         have no equivalent in catamount; remove the hook and its block"
    );
    for (name, what) in PUMA_ONLY_DIRECTIVES {
        let e = file_error(&format!("{name} do |x|\n  x\nend\n"));
        assert_eq!(
            e,
            format!("app.rb:1: directive {name:?} is Puma's, not catamount's; {what}")
        );
    }
    // A Ruby value for a supported directive is a syntax error.
    assert_eq!(
        file_error("workers ENV.fetch(\"N\") { 2 }"),
        "app.rb:1: workers ENV.fetch(\"N\") { 2 }; expected literal values separated by \
         commas, as in threads 0, 16"
    );
    assert_eq!(
        file_error("force_shutdown_after 5"),
        "app.rb:1: directive \"force_shutdown_after\" is Puma's, not catamount's; \
         use shutdown_timeout SECS"
    );
}

#[test]
fn bad_file_values() {
    let cases = [
        (
            "bind tcp://0.0.0.0:1",
            "bind tcp://0.0.0.0:1; expected one quoted URI",
        ),
        (
            "bind \"a\", \"b\"",
            "bind \"a\", \"b\"; expected one quoted URI",
        ),
        ("port 99999", "port 99999; expected a port"),
        ("port \"80\"", "port \"80\"; expected a port"),
        ("threads 4", "threads 4; expected two integers"),
        (
            "threads 0, 16, 32",
            "threads 0, 16, 32; expected two integers",
        ),
        (
            "threads 0 16",
            "threads 0 16; expected literal values separated by commas",
        ),
        (
            "threads 0,",
            "threads 0,; expected literal values separated by commas",
        ),
        (
            "threads (0, 16",
            "threads (0, 16; expected literal values separated by commas",
        ),
        (
            "threads 1__0, 16",
            "threads 1__0, 16; expected two integers",
        ),
        (
            "directory \"\"",
            "directory \"\"; expected a quoted directory",
        ),
        (
            "first_data_timeout 0",
            "first_data_timeout 0; expected a number of seconds",
        ),
        (
            "persistent_timeout -1",
            "persistent_timeout -1; expected a number of seconds",
        ),
        (
            "shutdown_timeout NaN",
            "shutdown_timeout NaN; expected a number of seconds",
        ),
        (
            "shutdown_timeout \"5\"",
            "shutdown_timeout \"5\"; expected a number of seconds",
        ),
        (
            "max_keep_alive 0",
            "max_keep_alive 0; expected a whole number from 1",
        ),
        (
            "max_upgraded -1",
            "max_upgraded -1; expected a whole number from 0 to 65536",
        ),
        (
            "max_body 1.5",
            "max_body 1.5; expected a whole number of bytes",
        ),
        (
            "log_requests yes",
            "log_requests yes; expected true or false, as in log_requests true",
        ),
        (
            "cache_control \"a\tb\x01\"",
            "cache_control \"a\tb\x01\"; expected a quoted value",
        ),
        (
            "tag \"a\\nb\"",
            "escape \\n in string \"a\\nb\"; expected only \\\" or \\\\",
        ),
        (
            "tag \"#{x}\"",
            "interpolation #{...} in string \"#{x}\"; expected a literal string",
        ),
        (
            "threads=5",
            "\"threads=5\"; expected a directive followed by its values",
        ),
        (
            "\"bind\"",
            "\"\\\"bind\\\"\"; expected a directive followed by its values",
        ),
    ];
    for (line, want) in cases {
        let e = file_error(&format!("# first\n{line}  # comment\n"));
        assert!(
            e.starts_with(&format!("app.rb:2: {want}")),
            "{line:?} gave {e}"
        );
    }
}

#[test]
fn directory_in_file_is_checked_with_its_line() {
    let e = file_error("tag \"x\"\ndirectory \"/no/such/catamount/dir\"\n");
    assert!(
        e.starts_with("app.rb:2: directory \"/no/such/catamount/dir\" does not exist;"),
        "{e}"
    );
    // A DIR argument replaces it, so the file's one is not checked.
    let tmp = TempDir::new();
    let c = with_file(
        "directory \"/no/such/catamount/dir\"\n",
        &[tmp.path().to_str().unwrap()],
    )
    .unwrap();
    assert_eq!(c.dir, tmp.path());
}

#[test]
fn unreadable_files() {
    let tmp = TempDir::new();
    let missing = tmp.path().join("missing.rb");
    let e = error(&["-C", missing.to_str().unwrap()]);
    assert_eq!(
        e,
        format!(
            "cannot read config file {missing:?}: No such file or directory (os error 2); \
             check the path given to -C/--config"
        )
    );
    let e = error(&["-C", tmp.path().to_str().unwrap()]);
    assert!(e.contains("Is a directory (os error 21)"), "{e}");

    let big = tmp.file("big.rb", &"#".repeat(MAX_CONFIG_FILE_BYTES as usize + 1));
    assert!(error(&["-C", big.to_str().unwrap()]).contains("is larger than 1048576 bytes"));

    let latin1 = tmp.path().join("latin1.rb");
    fs::write(&latin1, b"tag \"a\"\ntag \"caf\xe9\"\n").unwrap();
    assert_eq!(
        error(&["-C", latin1.to_str().unwrap()]),
        format!(
            "{}:2: bytes that are not UTF-8; expected UTF-8 text",
            latin1.display()
        )
    );
}

#[test]
fn reload_rereads_the_file_and_keeps_the_command_line() {
    let tmp = TempDir::new();
    let file = tmp.file(
        "app.rb",
        "threads 1, 2\nmax_body 10\nbind \"tcp://127.0.0.1:9000\"\n",
    );
    let path = file.to_str().unwrap();
    let first = run(&["-C", path, "--max-body", "99", "--quiet"]);
    assert_eq!((first.max_threads, first.max_body), (2, 99));
    assert_eq!(reload(&first).unwrap(), first);

    fs::write(&file, "threads 3, 4\nmax_body 20\nquiet false\nport 9100\n").unwrap();
    let second = reload(&first).unwrap();
    assert_eq!((second.min_threads, second.max_threads), (3, 4));
    assert_eq!(second.binds, vec![tcp("0.0.0.0", 9100)]);
    assert_eq!(second.max_body, 99, "the command line still wins");
    assert!(second.quiet, "the command line still wins");
    assert_eq!(second.cli, first.cli);

    fs::write(&file, "threads 9, 1\n").unwrap();
    assert!(reload(&second).unwrap_err().to_string().ends_with(
        ":1: threads 9, 1; \
         expected two integers MIN, MAX with MIN <= MAX and 1 <= MAX <= 4096, as in threads 0, 16"
    ));

    // Without a file, reload rebuilds the same config.
    let plain = run(&["-t", "2"]);
    assert_eq!(reload(&plain).unwrap(), plain);
}

#[test]
fn load_file_applies_no_command_line() {
    let tmp = TempDir::new();
    let file = tmp.file("app.rb", "threads 1, 7\n");
    let c = load_file(&file).unwrap();
    assert_eq!((c.min_threads, c.max_threads), (1, 7));
    assert_eq!(c.config_file, Some(file));
}

#[test]
fn help_lists_every_option_directive_and_default() {
    let text = help();
    for o in options().filter(|o| !matches!(o.kind, OptionKind::Instead(_))) {
        assert!(text.contains(o.long), "help misses {}", o.long);
        assert!(
            o.short.is_empty() || text.contains(o.short),
            "help misses {}",
            o.short
        );
    }
    for d in directives() {
        assert!(
            text.contains(&format!("\n        {d} ")),
            "help misses directive {d}"
        );
    }
    for (d, _) in NOT_YET_DIRECTIVES {
        assert!(text.contains(d), "help misses {d}");
    }
    // Everything that works is documented: TLS binds and their
    // options, the ctl client and its commands, signals, exit codes.
    for needle in [
        "ssl://HOST:PORT?cert=PATH&key=PATH",
        "fd://NAME or fd://N[?cert=PATH&key=PATH...]",
        "\nTLS\n",
        "cert=PATH",
        "key=PATH",
        "ca=PATH",
        "verify_mode=MODE",
        "none:",
        "peer:",
        "force_peer:",
        "min_version=VERSION",
        "TLSv1.2 or TLSv1.3",
        "ssl_bind",
        "\nCONTROL CLIENT\n",
        "catamount ctl [--control-url URL] [--control-token TOKEN | -S FILE]",
        "\nSIGNALS\n",
        "\n    TERM, INT ",
        "\n    USR2 ",
        "\n    HUP ",
        "\n    USR1 ",
        "\n    TTIN, TTOU ",
        "\nEXIT STATUS\n",
        "\n    0   ",
        "\n    1   ",
        "\n    2   ",
    ] {
        assert!(text.contains(needle), "help misses {needle:?}");
    }
    for command in crate::control::CTL_COMMANDS {
        assert!(
            text.contains(&format!("\n            {command} ")),
            "help misses ctl {command}"
        );
    }
    for default in [
        format!("[default: {DEFAULT_BIND}]"),
        format!("[default: {DEFAULT_MIN_THREADS}:{DEFAULT_MAX_THREADS}]"),
        format!("[default: {DEFAULT_ENVIRONMENT}]"),
        format!("[default: {}]", DEFAULT_FIRST_DATA_TIMEOUT.as_secs()),
        format!("[default: {}]", DEFAULT_BODY_TIMEOUT.as_secs()),
        format!("[default: {}]", DEFAULT_WRITE_TIMEOUT.as_secs()),
        format!("[default: {}]", DEFAULT_PERSISTENT_TIMEOUT.as_secs()),
        format!("[default: {}]", DEFAULT_SHUTDOWN_TIMEOUT.as_secs()),
        format!("[default: {DEFAULT_MAX_KEEP_ALIVE}]"),
        format!("[default: {DEFAULT_MAX_BODY}]"),
        format!("[default: {DEFAULT_WORKERS}]"),
        format!("[default: {}]", DEFAULT_WORKER_TIMEOUT.as_secs()),
        format!("<= N <= {MAX_WORKERS}"),
        format!("<= MIB <= {MAX_WORKER_MAX_RSS_MIB}"),
        "\nSYSTEMD\n".to_string(),
        "\nCLUSTER\n".to_string(),
        format!("<= {MAX_THREADS_LIMIT}"),
        format!("at most {}", MAX_TIMEOUT.as_secs()),
    ] {
        assert!(text.contains(&default), "help misses {default}");
    }
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "help line over 80 columns: {line:?}"
        );
    }
}

// The list of ssl:// options lives in tls/, which a build without the
// `tls` feature does not compile; the help text is the same in both.
#[cfg(feature = "tls")]
#[test]
fn help_lists_every_ssl_option() {
    let text = help();
    for param in crate::tls::KNOWN_PARAMS.split(", ") {
        assert!(
            text.contains(&format!("\n        {param}=")),
            "help misses ssl:// option {param}="
        );
    }
}

#[test]
fn tables_are_consistent() {
    assert!(BindSpec::parse(DEFAULT_BIND).is_ok());
    for o in options() {
        assert!(o.long.starts_with("--"));
        assert!(o.short.is_empty() || (o.short.len() == 2 && o.short.starts_with('-')));
        assert_eq!(option(o.long).map(|p| p.long), Some(o.long));
        assert_eq!(
            options()
                .filter(|p| p.long == o.long || (!o.short.is_empty() && p.short == o.short))
                .count(),
            1,
            "{} is among the options twice",
            o.long
        );
        if let OptionKind::Alias(of) = o.kind {
            assert!(
                matches!(
                    option(of).map(|o| &o.kind),
                    Some(OptionKind::Value { .. } | OptionKind::Flag)
                ),
                "{} is an alias of {of}, which takes no value of its own",
                o.long
            );
        }
    }
    for d in directives() {
        assert!(setting_named(d).is_ok());
        assert_eq!(directives().filter(|e| *e == d).count(), 1, "{d} twice");
    }
    for (name, _) in NOT_YET_DIRECTIVES.iter().chain(PUMA_ONLY_DIRECTIVES) {
        assert!(directives().all(|d| d != *name));
    }
    assert!(parse_control_url(DEFAULT_BIND).is_err());
}

#[test]
fn activated_sockets_on_the_command_line() {
    let mode = |args: &[&str]| run(args).activated;
    assert_eq!(mode(&[]), ActivatedMode::Off);
    assert_eq!(mode(&["--bind-to-activated-sockets"]), ActivatedMode::On);
    assert_eq!(
        mode(&["--bind-to-activated-sockets=true"]),
        ActivatedMode::On
    );
    assert_eq!(
        mode(&["--bind-to-activated-sockets=only"]),
        ActivatedMode::Only
    );
    assert_eq!(
        mode(&[
            "--bind-to-activated-sockets=only",
            "--bind-to-activated-sockets=false"
        ]),
        ActivatedMode::Off
    );
    assert_eq!(
        mode(&[
            "--bind-to-activated-sockets=false",
            "--bind-to-activated-sockets"
        ]),
        ActivatedMode::On
    );
    for bad in ["yes", "", "ONLY", "--quiet"] {
        let e = error(&[&format!("--bind-to-activated-sockets={bad}")]);
        let want = if bad == "--quiet" {
            "option --bind-to-activated-sockets is followed by option --quiet, not by a \
             value; expected true, false or only"
                .to_string()
        } else {
            format!(
                "--bind-to-activated-sockets {bad:?}; expected true, false or only, as in \
                 --bind-to-activated-sockets=only (the option alone means true)"
            )
        };
        assert!(e.starts_with(&want), "{e}");
    }
    // The option alone never takes the next argument: here "only" is
    // the DIR, and the error says how to give the option its value.
    for word in ["only", "true", "false"] {
        assert_eq!(
            error(&["--bind-to-activated-sockets", word]),
            format!(
                "DIR \"{word}\": no such directory to serve; to set \
                 --bind-to-activated-sockets, write --bind-to-activated-sockets={word} \
                 (its value follows \"=\"; the option alone means true)"
            )
        );
    }
    let tmp = TempDir::new();
    let c = run(&["--bind-to-activated-sockets", tmp.path().to_str().unwrap()]);
    assert_eq!(
        (c.activated, c.dir.as_path()),
        (ActivatedMode::On, tmp.path())
    );
    assert!(run(&["--fd-store", "--fd-store"]).fd_store);
    assert!(error(&["--fd-store=true"]).contains("option --fd-store takes no value"));
}

#[test]
fn activated_sockets_and_fd_store_in_the_file() {
    let mode = |text: &str| with_file(text, &[]).unwrap().activated;
    assert_eq!(mode("bind_to_activated_sockets"), ActivatedMode::On);
    assert_eq!(mode("bind_to_activated_sockets true"), ActivatedMode::On);
    assert_eq!(mode("bind_to_activated_sockets false"), ActivatedMode::Off);
    assert_eq!(
        mode("bind_to_activated_sockets \"only\""),
        ActivatedMode::Only
    );
    assert_eq!(
        mode("bind_to_activated_sockets('only')"),
        ActivatedMode::Only
    );
    for bad in ["only", "\"true\"", "\"on\"", "1", "true, true"] {
        assert_eq!(
            file_error(&format!("quiet\nbind_to_activated_sockets {bad}\n")),
            format!(
                "app.rb:2: bind_to_activated_sockets {bad}; expected true, false or \
                 \"only\", as in bind_to_activated_sockets \"only\""
            )
        );
    }
    assert!(with_file("fd_store", &[]).unwrap().fd_store);
    assert!(with_file("fd_store true", &[]).unwrap().fd_store);
    assert!(
        !with_file("fd_store true\nfd_store false", &[])
            .unwrap()
            .fd_store
    );
    assert_eq!(
        file_error("fd_store yes"),
        "app.rb:1: fd_store yes; expected true or false, as in fd_store true"
    );
    // The command line wins over the file.
    let c = with_file(
        "bind_to_activated_sockets \"only\"\nfd_store false\n",
        &["--bind-to-activated-sockets=false", "--fd-store"],
    )
    .unwrap();
    assert_eq!((c.activated, c.fd_store), (ActivatedMode::Off, true));
}

#[test]
fn fd_binds() {
    let c = run(&[
        "-b",
        "fd://3",
        "--bind",
        "fd://web",
        "-b",
        "tcp://127.0.0.1:1",
    ]);
    assert_eq!(
        c.binds,
        vec![
            BindSpec::Fd {
                name: "3".into(),
                tls: None
            },
            BindSpec::Fd {
                name: "web".into(),
                tls: None
            },
            tcp("127.0.0.1", 1),
        ]
    );
    assert_eq!(
        error(&["-b", "fd://web", "-b", "fd://web"]),
        "--bind \"fd://web\" is given twice; expected each listener once"
    );
    assert!(error(&["-b", "fd://"]).starts_with("--bind \"fd://\": expected fd://NAME"));
    assert!(error(&["-b", "fd://3?backlog=5"]).starts_with("--bind \"fd://3?backlog=5\":"));
    let c = with_file("bind \"fd://web\"\nbind 'fd://3'\n", &[]).unwrap();
    assert_eq!(
        c.binds,
        vec![
            BindSpec::Fd {
                name: "web".into(),
                tls: None
            },
            BindSpec::Fd {
                name: "3".into(),
                tls: None
            }
        ]
    );
    assert_eq!(
        file_error("bind \"fd://3\"\nport 1\nbind \"fd://3\"\n"),
        "app.rb:3: bind \"fd://3\" repeats the bind of line 1; expected each listener once"
    );
}

#[test]
fn workers_and_preload() {
    assert_eq!(run(&["-w", "4"]).workers, 4);
    assert_eq!(run(&["-w4"]).workers, 4);
    assert_eq!(run(&["--workers=0"]).workers, 0);
    assert_eq!(run(&["--workers", "256"]).workers, MAX_WORKERS);
    for bad in ["257", "-1", "", "two", "1.5"] {
        assert_eq!(
            error(&["--workers", bad]),
            format!(
                "--workers {bad:?}; expected a whole number from 0 to 256 (0 is single \
                 mode), as in --workers 4"
            )
        );
    }
    assert!(run(&["--preload"]).preload);
    assert!(error(&["--preload=false"]).contains("takes no value"));

    let c = with_file("workers 1_6\npreload_app!\n", &[]).unwrap();
    assert_eq!((c.workers, c.preload), (16, true));
    assert!(with_file("preload_app! true", &[]).unwrap().preload);
    assert!(with_file("preload_app!(true)", &[]).unwrap().preload);
    assert!(
        !with_file("preload_app!\npreload_app! false", &[])
            .unwrap()
            .preload
    );
    assert_eq!(
        file_error("\nworkers 257"),
        "app.rb:2: workers 257; expected a whole number from 0 to 256 (0 is single mode), \
         as in workers 4"
    );
    assert_eq!(
        file_error("workers \"4\""),
        "app.rb:1: workers \"4\"; expected a whole number from 0 to 256 (0 is single \
         mode), as in workers 4"
    );
    assert_eq!(
        file_error("preload_app! 1"),
        "app.rb:1: preload_app! 1; expected true or false, as in preload_app! true"
    );
    assert!(file_error("preload_app")
        .starts_with("app.rb:1: unknown directive \"preload_app\" (did you mean preload_app!?)"));
    // The command line wins.
    let c = with_file("workers 8\n", &["-w", "2"]).unwrap();
    assert_eq!(c.workers, 2);
}

#[test]
fn worker_timeouts_and_the_shutdown_alias() {
    let c = run(&["--worker-timeout", "5", "--worker-boot-timeout=0.5"]);
    assert_eq!(c.worker_timeout, Duration::from_secs(5));
    assert_eq!(c.worker_boot_timeout, Duration::from_millis(500));
    for opt in ["--worker-timeout", "--worker-boot-timeout"] {
        assert_eq!(
            error(&[opt, "0"]),
            format!(
                "{opt} \"0\"; expected a number of seconds above 0 and at most 86400, as \
                 in 30 or 0.5"
            )
        );
    }
    // Either name sets the one setting; the last given wins.
    let shutdown = |args: &[&str]| run(args).shutdown_timeout;
    assert_eq!(
        shutdown(&["--worker-shutdown-timeout", "7"]),
        Duration::from_secs(7)
    );
    assert_eq!(
        shutdown(&["--shutdown-timeout", "5", "--worker-shutdown-timeout=7"]),
        Duration::from_secs(7)
    );
    assert_eq!(
        shutdown(&["--worker-shutdown-timeout", "7", "--shutdown-timeout", "5"]),
        Duration::from_secs(5)
    );
    // A bad value is reported under the canonical name.
    assert!(error(&["--worker-shutdown-timeout", "x"])
        .starts_with("--shutdown-timeout \"x\"; expected a number of seconds"));
    assert!(error(&["--worker-shutdown-timeout"])
        .starts_with("option --worker-shutdown-timeout is missing its value; expected a number"));

    let c = with_file(
        "worker_timeout 1_0\nworker_boot_timeout 0.25\nshutdown_timeout 3\n\
         worker_shutdown_timeout 9\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.worker_timeout, Duration::from_secs(10));
    assert_eq!(c.worker_boot_timeout, Duration::from_millis(250));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(9));
    let c = with_file("worker_shutdown_timeout 9\nshutdown_timeout 3\n", &[]).unwrap();
    assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
    for name in [
        "worker_timeout",
        "worker_boot_timeout",
        "worker_shutdown_timeout",
    ] {
        assert_eq!(
            file_error(&format!("tag \"x\"\n{name} 86401\n")),
            format!(
                "app.rb:2: {name} 86401; expected a number of seconds above 0 and at most \
                 86400, as in 30 or 0.5, as in {name} 30"
            )
        );
    }
    let c = with_file(
        "worker_timeout 10\nworker_shutdown_timeout 9\n",
        &["--worker-timeout", "11", "--shutdown-timeout", "12"],
    )
    .unwrap();
    assert_eq!(c.worker_timeout, Duration::from_secs(11));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(12));
}

#[test]
fn worker_limits() {
    let c = run(&["--max-requests", "1", "--worker-max-rss", "16777216"]);
    assert_eq!(c.max_requests, Some(1));
    assert_eq!(c.worker_max_rss, Some(MAX_WORKER_MAX_RSS_MIB));
    assert_eq!(
        run(&["--max-requests", "18446744073709551615"]).max_requests,
        Some(u64::MAX)
    );
    for bad in ["0", "-1", "1e3", "18446744073709551616", " 1"] {
        assert!(
            error(&["--max-requests", bad]).starts_with(&format!(
                "--max-requests {bad:?}; expected a whole number from 1 to \
                 18446744073709551615, or \"\" for no limit"
            )),
            "{bad}"
        );
    }
    for bad in ["0", "16777217", "512M"] {
        assert!(
            error(&["--worker-max-rss", bad]).starts_with(&format!(
                "--worker-max-rss {bad:?}; expected a whole number of MiB from 1 to 16777216"
            )),
            "{bad}"
        );
    }

    let c = with_file("max_requests 10_000\nworker_max_rss 512\n", &[]).unwrap();
    assert_eq!(
        (c.max_requests, c.worker_max_rss),
        (Some(10_000), Some(512))
    );
    assert_eq!(
        file_error("max_requests 0"),
        "app.rb:1: max_requests 0; expected a whole number from 1 to \
         18446744073709551615, as in max_requests 10_000"
    );
    assert_eq!(
        file_error("\nworker_max_rss 16_777_217"),
        "app.rb:2: worker_max_rss 16_777_217; expected a whole number from 1 to \
         16777216, as in worker_max_rss 512"
    );
    assert!(file_error("max_requests \"5\"").starts_with("app.rb:1: max_requests \"5\";"));
    // The command line overrides, or turns the limit off with "".
    let text = "max_requests 100\nworker_max_rss 64\n";
    let c = with_file(text, &["--max-requests", "5"]).unwrap();
    assert_eq!((c.max_requests, c.worker_max_rss), (Some(5), Some(64)));
    let c = with_file(text, &["--max-requests=", "--worker-max-rss", ""]).unwrap();
    assert_eq!((c.max_requests, c.worker_max_rss), (None, None));
}

#[test]
fn control_url_on_the_command_line() {
    let url = |uri: &str| run(&["--control-url", uri, "--control-token", "t"]).control_url;
    assert_eq!(url("unix:///run/ctl.sock"), Some(unix("/run/ctl.sock")));
    assert_eq!(
        url("unix:///run/ctl.sock?mode=0600"),
        BindSpec::parse("unix:///run/ctl.sock?mode=0600").ok()
    );
    for host in ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"] {
        let uri = format!("tcp://{host}:9293");
        assert_eq!(url(&uri), BindSpec::parse(&uri).ok(), "{uri}");
    }
    for (host, shown) in [
        ("0.0.0.0", "0.0.0.0"),
        ("10.0.0.1", "10.0.0.1"),
        ("[::]", "::"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("example.com", "example.com"),
    ] {
        let uri = format!("tcp://{host}:9293");
        assert_eq!(
            error(&["--control-url", &uri, "--control-token", "t"]),
            format!(
                "--control-url {uri:?}: host {shown:?} is not a loopback address; \
                 expected 127.0.0.1, [::1] or localhost, since the control app can stop \
                 the server"
            )
        );
    }
    assert_eq!(
        error(&["--control-url", "fd://3"]),
        "--control-url \"fd://3\": expected unix:///PATH or tcp://HOST:PORT; the control \
         app listens on a socket of its own"
    );
    assert_eq!(
        error(&["--control-url", "ssl://127.0.0.1:1"]),
        "--control-url \"ssl://127.0.0.1:1\": the control app speaks plain HTTP; expected \
         unix:// or tcp://, not ssl://"
    );
    assert_eq!(
        error(&["--control-url", "auto"]),
        "--control-url \"auto\": expected tcp://HOST:PORT or unix:///ABSOLUTE/PATH"
    );
    assert_eq!(
        error(&["--control-url", "unix:///run/ctl.sock"]),
        "control URL \"unix:///run/ctl.sock\" has no token; expected a token \
         (--control-token TOKEN, control_token \"TOKEN\", or activate_control_app \"URI\", \
         { auth_token: \"TOKEN\" }), or { no_token: true } to let anyone who can connect \
         control the server"
    );
    assert_eq!(
        error(&[
            "-b",
            "unix:///run/ctl.sock",
            "--control-url",
            "unix:///run/ctl.sock?mode=0600",
            "--control-token",
            "t"
        ]),
        "control URL \"unix:///run/ctl.sock\" is also a bind; expected a listener of its \
         own for the control app"
    );
    // A token without a URL is harmless, and kept.
    let c = run(&["--control-token", "t"]);
    assert_eq!(
        (c.control_url, c.control_token.as_deref()),
        (None, Some("t"))
    );
}

#[test]
fn control_tokens_are_checked_and_never_echoed() {
    for bad in ["", "two words", "tab\there", "caf\u{e9}", "nl\n"] {
        let e = error(&["--control-token", bad]);
        assert_eq!(
            e,
            "--control-token (value not shown, as it may be a token); expected a non-empty \
             token of visible ASCII (no spaces), as in --control-token s3cr3t"
        );
    }
    let e = parse_args(vec![
        OsString::from("--control-token"),
        OsStr::from_bytes(b"s3cr\xe9t").to_os_string(),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("--control-token (value not shown"), "{e}");
    assert_eq!(
        run(&["--control-token=!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"])
            .control_token
            .as_deref(),
        Some("!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    );
    for line in [
        "control_token \"hunter2 secret\"",
        "control_token hunter2",
        "control_token \"hunter2",
        "control_token \"hunter2\\n\"",
        "control_token \"hunter2#{x}\"",
        "control_token \"hunter2\" \"x\"",
        "activate_control_app \"unix:///c\", auth_token: \"hunter2\", \"x\"",
        "activate_control_app \"unix:///c\", { auth_token: \"hunter2",
        "activate_control_app \"unix:///c\", { auth_token: \"hunter2 secret\" }",
        "activate_control_app \"unix:///c\", { auth_token: hunter2 }",
        "activate_control_app \"unix:///c\", \"hunter2\"",
        "activate_control_app \"hunter2\", \"hunter2\"",
    ] {
        let e = file_error(line);
        assert!(!e.contains("hunter2"), "{line:?} gave {e}");
        assert!(e.contains("(value not shown, as it may be a token)"), "{e}");
    }
}

#[test]
fn control_app_in_the_file() {
    let control = |text: &str| {
        let c = with_file(text, &[]).unwrap();
        (c.control_url.map(|u| u.to_string()), c.control_token)
    };
    let want = |token: Option<&str>| {
        (
            Some("unix:///run/ctl.sock".to_string()),
            token.map(str::to_string),
        )
    };
    for text in [
        "activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"t\" }",
        "activate_control_app 'unix:///run/ctl.sock', {auth_token: 't'}",
        "activate_control_app \"unix:///run/ctl.sock\", auth_token: \"t\"",
        "activate_control_app(\"unix:///run/ctl.sock\", auth_token: \"t\")",
        "activate_control_app \"unix:///run/ctl.sock\", { :auth_token => \"t\" }",
        "activate_control_app \"unix:///run/ctl.sock\", {:auth_token=>\"t\"}",
        "activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"t\", no_token: false }",
        "activate_control_app \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
        "control_token \"t\"\nactivate_control_app \"unix:///run/ctl.sock\"",
        "control_url \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
        "control_token \"old\"\ncontrol_url \"unix:///run/ctl.sock\"\ncontrol_token \"t\"",
    ] {
        assert_eq!(control(text), want(Some("t")), "{text}");
    }
    for text in [
        "activate_control_app \"unix:///run/ctl.sock\", { no_token: true }",
        "activate_control_app \"unix:///run/ctl.sock\", no_token: true",
        // A later no_token: true drops an earlier token.
        "control_token \"t\"\nactivate_control_app \"unix:///run/ctl.sock\", no_token: true",
    ] {
        assert_eq!(control(text), want(None), "{text}");
    }
    // control_url "" turns it off again.
    assert_eq!(
        control("control_url \"unix:///run/ctl.sock\"\ncontrol_url \"\"\n"),
        (None, None)
    );
    let c = with_file("state_path \"/run/app.state\"", &[]).unwrap();
    assert_eq!(c.state_path, Some(PathBuf::from("/run/app.state")));
    assert_eq!(with_file("state_path \"\"", &[]).unwrap().state_path, None);
}

#[test]
fn control_app_file_errors() {
    let expect = "expected a quoted URI and optional { auth_token: \"TOKEN\" } or \
                  { no_token: true }, as in activate_control_app \
                  \"unix:///run/app-control.sock\", { auth_token: \"s3cr3t\" }";
    for line in [
        "activate_control_app",
        "activate_control_app unix:///c",
        "activate_control_app \"unix:///c\", { auth_token: \"t\" }, 1",
        "activate_control_app \"unix:///c\", \"t\"",
    ] {
        assert_eq!(
            file_error(&format!("tag \"x\"\n{line}\n")),
            format!(
                "app.rb:2: activate_control_app (value not shown, as it may be a token); \
                 {expect}"
            ),
            "{line:?}"
        );
    }
    for line in [
        "activate_control_app \"unix:///c\", auth_token: \"t\", \"x\"",
        "activate_control_app \"unix:///c\", { auth_token: { x: 1 } }",
        "activate_control_app \"unix:///c\", { auth_token: \"t\", }",
    ] {
        assert_eq!(
            file_error(line),
            "app.rb:1: activate_control_app (value not shown, as it may be a token); \
             expected literal values separated by commas, as in threads 0, 16",
            "{line:?}"
        );
    }
    assert_eq!(
        file_error("control_token \"a\\n\""),
        "app.rb:1: control_token (value not shown, as it may be a token); expected strings \
         closed on the same line, with no escape but \\\" and \\\\ and no #{...}"
    );
    assert_eq!(
        file_error("activate_control_app \"tcp://0.0.0.0:9293\", { auth_token: \"t\" }"),
        "app.rb:1: activate_control_app \"tcp://0.0.0.0:9293\": host \"0.0.0.0\" is not a \
         loopback address; expected 127.0.0.1, [::1] or localhost, since the control app \
         can stop the server"
    );
    assert_eq!(
        file_error("\ncontrol_url \"tcp://192.168.1.1:9293\"\n"),
        "app.rb:2: control_url \"tcp://192.168.1.1:9293\": host \"192.168.1.1\" is not a \
         loopback address; expected 127.0.0.1, [::1] or localhost, since the control app \
         can stop the server"
    );
    assert_eq!(
        file_error("activate_control_app \"auto\""),
        "app.rb:1: activate_control_app \"auto\": expected tcp://HOST:PORT or \
         unix:///ABSOLUTE/PATH"
    );
    assert_eq!(
        file_error("activate_control_app \"unix:///c\", { auth_token: \"t\", no_token: true }"),
        "app.rb:1: activate_control_app \"unix:///c\": both auth_token: and no_token: true; \
         expected one of them"
    );
    assert_eq!(
        file_error("activate_control_app \"unix:///c\", { token: \"t\" }"),
        "app.rb:1: activate_control_app \"unix:///c\": unknown option \"token\"; expected \
         auth_token: \"TOKEN\" or no_token: true"
    );
    assert_eq!(
        file_error("activate_control_app \"unix:///c\", { no_token: 1 }"),
        "app.rb:1: activate_control_app \"unix:///c\": no_token with a value other than \
         true or false; expected no_token: true"
    );
    assert_eq!(
        file_error("control_url unix:///c"),
        "app.rb:1: control_url unix:///c; expected a quoted URI, as in control_url \
         \"unix:///run/app-control.sock\""
    );
    assert_eq!(
        file_error("state_path /run/x"),
        "app.rb:1: state_path /run/x; expected a quoted path, as in state_path \
         \"/run/app.state\""
    );
    // Checks on the merged settings name the control line.
    assert_eq!(
        file_error("tag \"x\"\nactivate_control_app \"unix:///run/ctl.sock\"\n"),
        "app.rb:2: control URL \"unix:///run/ctl.sock\" has no token; expected a token \
         (--control-token TOKEN, control_token \"TOKEN\", or activate_control_app \"URI\", \
         { auth_token: \"TOKEN\" }), or { no_token: true } to let anyone who can connect \
         control the server"
    );
    assert_eq!(
        file_error(
            "bind \"tcp://127.0.0.1:9293\"\n\
             control_url \"tcp://127.0.0.1:9293\"\ncontrol_token \"t\"\n"
        ),
        "app.rb:2: control URL \"tcp://127.0.0.1:9293\" is also a bind; expected a \
         listener of its own for the control app"
    );
}

#[test]
fn control_app_command_line_over_file() {
    let text = "activate_control_app \"unix:///run/ctl.sock\", { no_token: true }\n\
                state_path \"/run/file.state\"\n";
    let c = with_file(text, &[]).unwrap();
    assert_eq!(c.control_token, None);
    // A token on the command line replaces no_token.
    let c = with_file(text, &["--control-token", "t"]).unwrap();
    assert_eq!(c.control_token.as_deref(), Some("t"));
    // The command line's URL replaces the file's; its errors name no line.
    let c = with_file(text, &["--control-url", "tcp://localhost:9293"]).unwrap();
    assert_eq!(c.control_url, Some(tcp("localhost", 9293)));
    assert_eq!(c.control_token, None, "no_token: true still applies");
    let e = with_file(
        "control_token \"t\"\nbind \"tcp://127.0.0.1:9\"\n",
        &["--control-url", "tcp://127.0.0.1:9"],
    )
    .unwrap_err();
    assert!(
        e.starts_with("control URL \"tcp://127.0.0.1:9\" is also a bind;"),
        "{e}"
    );
    // "" turns the file's control app and state file off.
    let c = with_file(text, &["--control-url", "", "--state", ""]).unwrap();
    assert_eq!((c.control_url, c.state_path), (None, None));
    let c = with_file(text, &["-S", "/run/cli.state"]).unwrap();
    assert_eq!(c.state_path, Some(PathBuf::from("/run/cli.state")));
    // A file token with a command-line URL.
    let c = with_file("control_token \"t\"\n", &["--control-url", "unix:///c"]).unwrap();
    assert_eq!(
        (c.control_url, c.control_token.as_deref()),
        (Some(unix("/c")), Some("t"))
    );
}

#[test]
fn reload_reapplies_cluster_and_systemd_settings() {
    let tmp = TempDir::new();
    let file = tmp.file(
        "app.rb",
        "workers 2\nbind_to_activated_sockets\nmax_requests 100\n\
         activate_control_app \"unix:///run/ctl.sock\", { auth_token: \"a\" }\n",
    );
    let path = file.to_str().unwrap();
    let first = run(&["-C", path, "--fd-store", "--worker-timeout", "9", "-w", "3"]);
    assert_eq!(first.workers, 3);
    assert_eq!(first.activated, ActivatedMode::On);
    assert!(first.fd_store);
    assert_eq!(first.control_token.as_deref(), Some("a"));
    assert_eq!(reload(&first).unwrap(), first);

    fs::write(
        &file,
        "workers 5\nbind_to_activated_sockets \"only\"\npreload_app!\nfd_store false\n\
         worker_timeout 1\nworker_max_rss 256\nstate_path \"/run/app.state\"\n\
         control_url \"tcp://127.0.0.1:9293\"\ncontrol_token \"b\"\n",
    )
    .unwrap();
    let second = reload(&first).unwrap();
    assert_eq!(second.workers, 3, "the command line still wins");
    assert!(second.fd_store, "the command line still wins");
    assert_eq!(
        second.worker_timeout,
        Duration::from_secs(9),
        "the command line still wins"
    );
    assert_eq!(second.activated, ActivatedMode::Only);
    assert!(second.preload);
    assert_eq!(
        (second.max_requests, second.worker_max_rss),
        (None, Some(256))
    );
    assert_eq!(second.control_url, Some(tcp("127.0.0.1", 9293)));
    assert_eq!(second.control_token.as_deref(), Some("b"));
    assert_eq!(second.state_path, Some(PathBuf::from("/run/app.state")));

    fs::write(&file, "control_url \"tcp://0.0.0.0:9293\"\n").unwrap();
    let e = reload(&second).unwrap_err().to_string();
    assert!(
        e.ends_with(
            ":1: control_url \"tcp://0.0.0.0:9293\": host \"0.0.0.0\" is not a \
             loopback address; expected 127.0.0.1, [::1] or localhost, since the control \
             app can stop the server"
        ),
        "{e}"
    );
    fs::write(&file, "\ncontrol_url \"unix:///run/ctl.sock\"\n").unwrap();
    let e = reload(&second).unwrap_err().to_string();
    assert!(
        e.contains(":2: control URL \"unix:///run/ctl.sock\" has no token;"),
        "{e}"
    );
}

#[test]
fn hashes_in_arguments() {
    let args = |text: &str| {
        let (tokens, _) = lex(text).unwrap();
        arguments(&tokens)
    };
    let s = |v: &str| Arg::Str(v.to_string());
    let w = |v: &str| Arg::Word(v.to_string());
    let hash = |pairs: &[(&str, Arg)]| {
        Arg::Hash(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    };
    assert_eq!(args("").unwrap(), vec![]);
    assert_eq!(args("()").unwrap(), vec![]);
    assert_eq!(args("{}").unwrap(), vec![hash(&[])]);
    assert_eq!(
        args("\"u\", { a: \"x\", b: true }").unwrap(),
        vec![s("u"), hash(&[("a", s("x")), ("b", w("true"))])]
    );
    assert_eq!(
        args("(\"u\", a: 1, :b => 2, :c=> 3)").unwrap(),
        vec![s("u"), hash(&[("a", w("1")), ("b", w("2")), ("c", w("3"))])]
    );
    assert_eq!(
        args("{ a: 1 }, \"u\"").unwrap(),
        vec![hash(&[("a", w("1"))]), s("u")]
    );
    for bad in [
        "a: 1, \"u\"",
        "{ a: 1",
        "{ a: 1, }",
        "{ a: }",
        "{ \"a\" }",
        "{ a: 1 } }",
        "a:: 1",
        ": 1",
        "{ a: 1 b: 2 }",
        "(a: 1",
        "a: 1, :c=>3",
    ] {
        assert_eq!(args(bad), None, "{bad:?}");
    }
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("treads", "threads"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("abc", "abc"), 0);
    assert_eq!(closest("zzzzzz", directives()), None);
}

#[test]
fn every_setting_has_its_handlers_and_its_help() {
    let text = help();
    for s in SETTINGS {
        let name = s.option.as_ref().map_or(s.directive, |o| o.long);
        assert!(
            s.option.is_some() || !s.directive.is_empty(),
            "a setting with neither an option nor a directive"
        );
        assert_eq!(
            s.option.is_some(),
            s.has_cli(),
            "{name}: an option needs a command-line handler, and a handler an option"
        );
        assert_eq!(
            !s.directive.is_empty(),
            s.has_file(),
            "{name}: a directive needs a file handler, and a handler a directive"
        );
        if let Some(o) = &s.option {
            assert!(
                o.is_accepted(),
                "{name}: a setting's option is never a refused one"
            );
            assert!(
                text.contains(&format!("\n    {}", o.long))
                    || text.contains(&format!(", {}", o.long)),
                "help misses {}",
                o.long
            );
        }
        if !s.directive.is_empty() {
            assert!(
                text.contains(&format!("\n        {} ", s.directive)),
                "help misses directive {}",
                s.directive
            );
        }
    }
}

/// Each option and directive gets to its handler: whatever the value,
/// the answer is a configuration or an error about that setting, never
/// "internal error" or an unknown name.
#[test]
fn every_option_and_directive_reaches_its_handler() {
    for o in options().filter(|o| !matches!(o.kind, OptionKind::NotYet(_) | OptionKind::Instead(_)))
    {
        let args: Vec<&str> = match o.kind {
            OptionKind::Value { .. } => vec![o.long, "1"],
            _ => vec![o.long],
        };
        if let Err(e) = parse_args(os_args(&args)) {
            let e = e.to_string();
            assert!(
                !e.contains("internal error") && !e.contains("unknown"),
                "{args:?}: {e}"
            );
        }
    }
    for d in directives() {
        for line in [d.to_string(), format!("{d} 1"), format!("{d} \"1\"")] {
            if let Err(e) = with_file(&line, &[]) {
                assert!(
                    e.starts_with(&format!("app.rb:1: {d}")) || e.contains(&format!(":1: {d}")),
                    "{line:?}: {e}"
                );
                assert!(
                    !e.contains("internal error") && !e.contains("unknown directive"),
                    "{line:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn control_token_file_is_read_at_load() {
    let tmp = TempDir::new();
    for (contents, want) in [
        ("s3cr3t\n", "s3cr3t"),
        ("s3cr3t\r\n", "s3cr3t"),
        ("s3cr3t", "s3cr3t"),
        (
            "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n",
            "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        ),
    ] {
        let token = tmp.file("control-token", contents);
        let token = token.to_str().unwrap();
        let c = run(&["--control-token-file", token]);
        assert_eq!(c.control_token.as_deref(), Some(want), "{contents:?}");
        let c = with_file(&format!("control_token_file \"{token}\"\n"), &[]).unwrap();
        assert_eq!(c.control_token.as_deref(), Some(want), "{contents:?}");
    }
    // It satisfies a control URL's need for a token, and --check reads it.
    let token = tmp.file("control-token", "s3cr3t\n");
    let token = token.to_str().unwrap();
    let c = with_file(
        &format!("activate_control_app \"unix:///run/ctl.sock\"\ncontrol_token_file \"{token}\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.control_token.as_deref(), Some("s3cr3t"));
    match parse_args(os_args(&[
        "--check",
        "--control-url",
        "unix:///c",
        "--control-token-file",
        token,
    ])) {
        Ok(Command::Check(c)) => assert_eq!(c.control_token.as_deref(), Some("s3cr3t")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn control_token_file_errors_name_the_path_and_never_the_token() {
    let tmp = TempDir::new();
    let expect_token = "expected a non-empty token of visible ASCII (no spaces), followed by \
                        at most one newline";
    for (contents, problem) in [
        (
            "",
            "is empty; expected the control token in it, on one line".to_string(),
        ),
        (
            "\n",
            "is empty; expected the control token in it, on one line".to_string(),
        ),
        (
            "\r\n",
            "is empty; expected the control token in it, on one line".to_string(),
        ),
        (
            "hunter2\n\n",
            format!("does not hold a valid token {NOT_SHOWN_TEXT}; {expect_token}"),
        ),
        (
            "hunter2 secret\n",
            format!("does not hold a valid token {NOT_SHOWN_TEXT}; {expect_token}"),
        ),
        (
            "hunter2\tx",
            format!("does not hold a valid token {NOT_SHOWN_TEXT}; {expect_token}"),
        ),
        (
            "hunter2\u{e9}",
            format!("does not hold a valid token {NOT_SHOWN_TEXT}; {expect_token}"),
        ),
        (
            "\nhunter2",
            format!("does not hold a valid token {NOT_SHOWN_TEXT}; {expect_token}"),
        ),
    ] {
        let path = tmp.file("control-token", contents);
        let shown = path.to_str().unwrap();
        let e = error(&["--control-token-file", shown]);
        assert_eq!(
            e,
            format!("--control-token-file {path:?} {problem}"),
            "{contents:?}"
        );
        let e = file_error(&format!("tag \"x\"\ncontrol_token_file \"{shown}\"\n"));
        assert_eq!(
            e,
            format!("app.rb:2: control_token_file {path:?} {problem}"),
            "{contents:?}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
    let big = "x".repeat(MAX_CONTROL_TOKEN_FILE_BYTES as usize + 1);
    let path = tmp.file("control-token", &big);
    assert_eq!(
        error(&["--control-token-file", path.to_str().unwrap()]),
        format!(
            "--control-token-file {path:?} is larger than 4096 bytes; expected a file that \
             holds one token"
        )
    );
    let missing = tmp.path().join("missing");
    let e = error(&["--control-token-file", missing.to_str().unwrap()]);
    assert!(
        e.starts_with(&format!(
            "--control-token-file {missing:?} cannot be read ("
        )),
        "{e}"
    );
    assert!(
        e.ends_with(
            "); expected a file this process can read that holds the control token (under \
             systemd, LoadCredential=control-token:PATH provides one as %d/control-token)"
        ),
        "{e}"
    );
    // A directory is not a token file either.
    let e = error(&["--control-token-file", tmp.path().to_str().unwrap()]);
    assert!(e.contains(" cannot be read ("), "{e}");
    // An empty path is not "off": there is no token file to turn off.
    assert_eq!(
        error(&["--control-token-file", ""]),
        "--control-token-file \"\"; expected a file path, as in --control-token-file \
         /run/credentials/catamount.service/control-token"
    );
    assert_eq!(
        file_error("control_token_file \"\""),
        "app.rb:1: control_token_file \"\"; expected a quoted path to the file holding the \
         token, as in control_token_file \"/run/credentials/catamount.service/control-token\""
    );
}

#[test]
fn control_token_and_its_file_in_one_layer_are_refused() {
    let tmp = TempDir::new();
    let token = tmp.file("control-token", "fromfile\n");
    let token = token.to_str().unwrap();
    for args in [
        ["--control-token", "hunter2", "--control-token-file", token],
        ["--control-token-file", token, "--control-token", "hunter2"],
    ] {
        let e = error(&args);
        assert_eq!(
            e,
            "--control-token and --control-token-file both give the control token; expected \
             one of them (--control-token-file keeps the token out of ps)"
        );
    }
    let clash = "this file gives the control token both with control_token_file and with \
                 control_token or auth_token:; expected one of them (control_token_file keeps \
                 the token out of this file)";
    for (text, name) in [
        (
            format!("control_token \"hunter2\"\ncontrol_token_file \"{token}\""),
            "control_token_file",
        ),
        (
            format!("control_token_file \"{token}\"\ncontrol_token \"hunter2\""),
            "control_token",
        ),
        (
            format!(
                "control_token_file \"{token}\"\n\
                 activate_control_app \"unix:///c\", {{ auth_token: \"hunter2\" }}"
            ),
            "activate_control_app",
        ),
    ] {
        assert_eq!(
            file_error(&text),
            format!("app.rb:2: {name}: {clash}"),
            "{text}"
        );
    }
    // A later no_token: true gives way as it does to a token, and the
    // file then goes unread.
    let text = "control_token_file \"/nonexistent/token\"\n\
                activate_control_app \"unix:///c\", { no_token: true }\n";
    assert_eq!(with_file(text, &[]).unwrap().control_token, None);
}

#[test]
fn control_token_file_layers() {
    let tmp = TempDir::new();
    let token = tmp.file("control-token", "fromfile\n");
    let token = token.to_str().unwrap();
    // The command line's token wins over the file's token file, which is
    // then not read at all.
    let c = with_file(
        "control_token_file \"/nonexistent/token\"\n",
        &["--control-token", "fromcli"],
    )
    .unwrap();
    assert_eq!(c.control_token.as_deref(), Some("fromcli"));
    // The command line's token file wins over the file's token.
    let c = with_file(
        "control_token \"intext\"\n",
        &["--control-token-file", token],
    )
    .unwrap();
    assert_eq!(c.control_token.as_deref(), Some("fromfile"));
    // And over the file's no_token: true.
    let c = with_file(
        "activate_control_app \"unix:///c\", { no_token: true }\n",
        &["--control-token-file", token],
    )
    .unwrap();
    assert_eq!(c.control_token.as_deref(), Some("fromfile"));
    // An error reading the command line's file names the option, not a line.
    let e = with_file(
        "tag \"x\"\n",
        &["--control-token-file", "/nonexistent/token"],
    )
    .unwrap_err();
    assert!(
        e.starts_with("--control-token-file \"/nonexistent/token\" cannot be read ("),
        "{e}"
    );
}

#[test]
fn reload_reads_the_control_token_file_again() {
    let tmp = TempDir::new();
    let token = tmp.file("control-token", "first\n");
    let first = run(&["--control-token-file", token.to_str().unwrap()]);
    assert_eq!(first.control_token.as_deref(), Some("first"));
    fs::write(&token, "second\n").unwrap();
    let second = reload(&first).unwrap();
    assert_eq!(second.control_token.as_deref(), Some("second"));
    fs::write(&token, "").unwrap();
    let e = reload(&second).unwrap_err().to_string();
    assert!(
        e.ends_with(" is empty; expected the control token in it, on one line"),
        "{e}"
    );
}

#[test]
fn a_token_file_layer_keeps_the_path_not_the_token() {
    // The token read from the file lands in Config::control_token, as a
    // --control-token would; the layer keeps only the path, so a reload
    // reads the file again rather than reusing an old token.
    let tmp = TempDir::new();
    let token = tmp.file("control-token", "hunter2\n");
    let c = run(&["--control-token-file", token.to_str().unwrap()]);
    assert!(!format!("{:?}", c.cli).contains("hunter2"));
}

const NOT_SHOWN_TEXT: &str = "(value not shown, as it may be a token)";
