//! `--control-token-file` end to end: the real binary reads the control
//! app's token from a file (as systemd's `LoadCredential=` provides one),
//! the control app then wants that token, and the token appears neither
//! in the process's command line nor in its output. A bad file is a
//! configuration error: exit status 2, naming the file, never the token.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{deadline_in, Server, TempDir};

/// What the file holds, as `echo` would write it.
const TOKEN: &str = "from-a-credential-4f1c";

/// Runs `catamount ctl ARGS`.
fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catamount"))
        .arg("ctl")
        .args(args)
        .output()
        .expect("cannot run catamount ctl")
}

#[test]
fn the_token_comes_from_the_file_and_stays_out_of_ps_and_the_log() {
    let dir = TempDir::new_in(Path::new("/tmp"), "ctl-token-file");
    let docroot = TempDir::docroot();
    let token_file = dir.write("control-token", &format!("{TOKEN}\n"));
    let sock = dir.join("ctl.sock");
    let url = format!("unix://{sock}");
    let mut s = Server::start_exact(&[
        "-b",
        "tcp://127.0.0.1:0",
        "--control-url",
        &url,
        "--control-token-file",
        &token_file,
        &docroot.path().to_string_lossy(),
    ]);
    assert!(
        s.wait_for_line_count(
            "* Control app listening on ",
            1,
            deadline_in(Duration::from_secs(10))
        ),
        "no control app line\nstdout:\n{}\nstderr:\n{}",
        s.stdout(),
        s.stderr()
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.pid())).expect("read cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(TOKEN),
        "the token is in the command line"
    );

    let wrong = ctl(&["--control-url", &url, "--control-token", "wrong", "stats"]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let right = ctl(&["--control-url", &url, "--control-token", TOKEN, "stop"]);
    assert!(right.status.success(), "{right:?}");
    let status = s
        .wait_exit(support::EXIT_DEADLINE)
        .expect("server did not exit");
    assert!(status.success(), "exit {status}\n{}", s.stderr());
    assert!(!s.stdout().contains(TOKEN) && !s.stderr().contains(TOKEN));
}

#[test]
fn a_bad_token_file_is_a_configuration_error() {
    let dir = TempDir::new("ctl-token-file");
    for (contents, problem) in [
        ("", "is empty"),
        ("two words\n", "does not hold a valid token"),
    ] {
        let token_file = dir.write("control-token", contents);
        let f = Server::run_with_defaults(&["--control-token-file", &token_file]);
        assert_eq!(f.status.code(), Some(2), "{f:?}");
        assert!(
            f.stderr
                .contains(&format!("--control-token-file {token_file:?} {problem}")),
            "{f:?}"
        );
        assert!(!f.stderr.contains("two words"), "{f:?}");
    }
    let conf = dir.write(
        "catamount.rb",
        "control_token \"a\"\ncontrol_token_file \"/run/credentials/x/control-token\"\n",
    );
    let f = Server::run_with_defaults(&["-C", &conf]);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    assert!(
        f.stderr
            .contains(&format!("{conf}:2: control_token_file: ")),
        "{f:?}"
    );
}
