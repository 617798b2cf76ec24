//! `catamount --check` (issue 12): exit status 0, 2 or 1, nothing bound,
//! nothing sent to systemd.

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use support::{Finished, Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_catamount");

/// Runs `catamount --check ARGS` to its end.
fn check(args: &[&str]) -> Finished {
    let mut full = vec!["--check"];
    full.extend_from_slice(args);
    Server::run(&full)
}

/// Asserts exit status `code` with one line on stderr starting with
/// `start` and nothing on stdout.
fn assert_fails(f: &Finished, code: i32, start: &str) {
    assert_eq!(f.status.code(), Some(code), "{f:?}");
    assert_eq!(f.stderr.lines().count(), 1, "one line: {f:?}");
    assert!(f.stderr.starts_with(start), "{start:?}: {f:?}");
    assert_eq!(f.stdout, "", "{f:?}");
}

#[test]
fn check_exit_status_is_0_2_or_1_and_nothing_is_bound() {
    let docroot = TempDir::docroot();
    let www = docroot.path().to_str().expect("UTF-8 temp path");
    // The port is taken: --check must not try to bind it.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let bind = format!("tcp://{}", taken.local_addr().expect("local addr"));

    let ok = check(&["-b", &bind, www]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let canonical = std::fs::canonicalize(docroot.path()).expect("canonicalize");
    assert_eq!(
        ok.stdout,
        format!(
            "catamount: configuration OK: no config file, serving {}, 1 bind(s) (0 with TLS: \
             certificate and key loaded); nothing was bound\n",
            canonical.display()
        )
    );
    assert_eq!(ok.stderr, "", "{ok:?}");

    // 2: the command line, the config file, DIR.
    let conf_dir = TempDir::new("check");
    let typo = conf_dir.write("typo.rb", "thraeds 0, 16\n");
    assert_fails(
        &check(&["-C", &typo, "-b", &bind, www]),
        2,
        &format!("catamount: {typo}:1: unknown directive \"thraeds\""),
    );
    assert_fails(
        &check(&["-t", "lots", www]),
        2,
        "catamount: --threads \"lots\"",
    );
    let missing = docroot.join("missing");
    assert_fails(
        &check(&["-b", &bind, &missing]),
        2,
        &format!("catamount: DIR {missing:?} does not exist;"),
    );
    let mut in_slash = Command::new(BIN);
    in_slash.args(["--check", "-b", &bind]).current_dir("/");
    assert_fails(
        &Server::run_command(in_slash),
        2,
        "catamount: no directory to serve was given, and the default, the current directory, \
         is /",
    );

    // 1: what the configuration names is not there.
    let cert = docroot.join("missing-cert.pem");
    let ssl = format!("ssl://127.0.0.1:0?cert={cert}&key={cert}");
    assert_fails(
        &check(&["-b", &ssl, www]),
        1,
        "catamount: error: bind ssl://127.0.0.1:0",
    );
    let f = check(&["-b", &ssl, www]);
    assert!(f.stderr.contains(&cert), "names the certificate: {f:?}");
    let gone = TempDir::new_in(Path::new("/tmp"), "ctl");
    let ctl_dir = gone.join("no-such-dir");
    let url = format!("unix://{ctl_dir}/ctl.sock");
    assert_fails(
        &check(&[
            "--control-url",
            &url,
            "--control-token",
            "x",
            "-b",
            &bind,
            www,
        ]),
        1,
        &format!(
            "catamount: error: control URL {url}: directory {ctl_dir} does not exist; create \
             it (in a systemd unit: RuntimeDirectory=) or choose another path"
        ),
    );
    let pidfile = format!("{ctl_dir}/app.pid");
    assert_fails(
        &check(&["--pidfile", &pidfile, "-b", &bind, www]),
        1,
        &format!("catamount: error: pidfile {pidfile}: directory {ctl_dir} does not exist;"),
    );
    // Nothing was bound or created along the way.
    assert!(!Path::new(&ctl_dir).exists());
    drop(taken);
}

#[test]
fn check_never_reports_to_systemd() {
    // Run by ExecReload= it gets NOTIFY_SOCKET, but it is not the service:
    // its failure must not become the service's STATUS=/ERRNO=.
    let dir = TempDir::new_in(Path::new("/tmp"), "notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    sock.set_nonblocking(true).expect("non-blocking");
    let conf = dir.write("typo.rb", "thraeds 0, 16\n");
    let run = |check: bool| {
        let mut cmd = Command::new(BIN);
        if check {
            cmd.arg("--check");
        }
        cmd.args(["-C", &conf, "-b", "tcp://127.0.0.1:0", &dir.join(".")])
            .env("NOTIFY_SOCKET", &path);
        Server::run_command(cmd)
    };
    let f = run(true);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    let mut buf = [0u8; 4096];
    let got = sock.recv(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "--check sent {:?}",
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    // The same error without --check is the service's, and is reported.
    let f = run(false);
    assert_eq!(f.status.code(), Some(2), "{f:?}");
    let n = sock
        .recv(&mut buf)
        .expect("a start reports its config error");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("ERRNO=22"));
}
