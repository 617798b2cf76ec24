//! Inherited descriptors and the preconditions catamount enforces on them
//! (issue 14 item 1, issue 13's OpenFile=), without systemd: a shell sets
//! up descriptors from 3 and execs catamount (or an example app) with
//! LISTEN_PID set to its own pid, as systemd would.
//!
//! - a file among LISTEN_FDS (systemd's `OpenFile=`) is kept as a file,
//!   never taken for a listener, and `key=fd://NAME` reads a TLS key from
//!   it, across a certificate reload and a hot restart, with the key's
//!   path gone;
//! - a passed connection (`Accept=yes`) is refused, saying so;
//! - a number the app opened itself before making its `Server` is
//!   refused as "not open" instead of being adopted;
//! - cluster mode refuses to fork a process that has a second thread.

mod support;

#[cfg(feature = "tls")]
#[path = "support/pki.rs"]
#[allow(dead_code)] // pki::dated serves tests/tls.rs only
mod pki;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{example, get, Client, Server, TempDir};

/// Upper bound for one curl run, and for a restart to be ready again.
const CLIENT_DEADLINE: Duration = Duration::from_secs(10);
/// `sh -c SETUP; export LISTEN_PID=$$ LISTEN_FDS=N [LISTEN_FDNAMES=...];
/// exec BIN ARGS...`: the descriptors SETUP opens, passed as systemd
/// passes them (exec keeps the pid).
fn passing(setup: &str, n: usize, names: Option<&str>, bin: &Path, args: &[&str]) -> Command {
    let names = names.map_or(String::new(), |n| format!(" LISTEN_FDNAMES={n}"));
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "{setup}; export LISTEN_PID=$$ LISTEN_FDS={n}{names}; exec \"$0\" \"$@\""
        ))
        .arg(bin)
        .args(args);
    cmd
}

fn catamount() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_catamount"))
}

#[test]
fn a_file_among_listen_fds_is_kept_as_a_file_not_a_listener() {
    let docroot = TempDir::docroot();
    let data = docroot.write("data.txt", "passed open\n");
    let setup = format!("exec 3<'{data}'");
    let mut server = Server::start_command(passing(
        &setup,
        1,
        Some("data"),
        catamount(),
        &["-b", "tcp://127.0.0.1:0", docroot.path().to_str().unwrap()],
    ));
    let out = server.stdout();
    assert!(out.contains("* Inherited file data (OpenFile=)"), "{out}");
    assert!(!out.contains("* Activated"), "{out}");
    assert!(!out.contains("Closing unused"), "{out}");
    let mut client = Client::connect(server.addr());
    client.get_hello_within(CLIENT_DEADLINE, "served beside an inherited file");
    assert!(server.stop().success());
}

/// bash's /dev/tcp opens a connected TCP socket: what `Accept=yes` passes.
#[test]
fn a_passed_connection_is_refused_as_accept_yes() {
    let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = peer.local_addr().unwrap().port();
    let docroot = TempDir::docroot();
    let out = Server::run_command(passing(
        &format!("exec 3<>/dev/tcp/127.0.0.1/{port}"),
        1,
        None,
        catamount(),
        &["-b", "tcp://127.0.0.1:0", docroot.path().to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("inherited fd 3 (name \"unknown\") is a connection, not a listening socket (Accept=yes passes connections; use Accept=no)"),
        "{}",
        out.stderr
    );
}

/// The app opens a file before its `Server`: it lands on fd 3, which
/// LISTEN_FDS names but nothing was passed on. Refused by number: the
/// app's file is neither adopted nor closed.
#[test]
fn a_number_the_app_opened_before_its_server_is_not_adopted() {
    let Some(bin) = example("open_before_server") else {
        return;
    };
    let docroot = TempDir::docroot();
    let out = Server::run_command(passing(
        "exec 3<&-",
        1,
        None,
        &bin,
        &["-b", "tcp://127.0.0.1:0", docroot.path().to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("LISTEN_FDS=1 but fd 3 is not open"),
        "{}",
        out.stderr
    );
}

#[test]
fn cluster_mode_refuses_to_fork_a_process_with_a_second_thread() {
    let Some(bin) = example("thread_before_fork") else {
        return;
    };
    let docroot = TempDir::docroot();
    let mut cmd = Command::new(&bin);
    cmd.args(["-w", "2", "-b", "tcp://127.0.0.1:0"])
        .arg(docroot.path());
    let out = Server::run_command(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cluster mode cannot fork workers: this process has 2 threads"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Handler::boot"), "{}", out.stderr);
    assert!(!out.stdout.contains("Listening on"), "{}", out.stdout);
    // Single mode has no fork: the same app serves.
    let Some(mut server) = Server::start_example("thread_before_fork", &[]) else {
        return;
    };
    assert_eq!(get(server.addr(), "/").status, 200, "single mode");
    assert!(server.stop().success());
}

/// `key=fd://NAME` and friends: ssl:// binds need the `tls` feature.
#[cfg(feature = "tls")]
mod tls_files {
    use super::*;
    use support::{deadline_in, free_port, skip, HELLO};

    const CLIENT_MAX_SECS: &str = "10";
    /// Cargo's scratch directory, for the certificates.
    const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(tool)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// The certificate and key arrive open at fds 3 and 4; their files are
    /// then removed, so every later read (a reload, a hot restart's new image)
    /// can only come from the descriptors.
    #[test]
    fn a_tls_key_and_certificate_passed_open_serve_across_reload_and_hot_restart() {
        if !have("openssl") || !have("curl") {
            skip("openssl or curl is not installed (scripts/install-deps installs them)");
            return;
        }
        let dir = TempDir::new_in(Path::new(TARGET_TMPDIR), "fdkey");
        pki::init(dir.path(), &["ca"]);
        pki::p256_key(dir.path(), "tls");
        pki::leaf(dir.path(), "tls", "server_ext", "ca", 4242);
        let (key, crt, ca) = (dir.join("tls.key"), dir.join("tls.pem"), dir.join("ca.pem"));
        let docroot = TempDir::docroot();
        let port = free_port();
        let bind = format!("ssl://127.0.0.1:{port}?cert=fd://tls-crt&key=fd://tls-key");
        let setup = format!("exec 3<'{key}' 4<'{crt}'");
        let mut server = Server::start_command(passing(
            &setup,
            2,
            Some("tls-key:tls-crt"),
            catamount(),
            &["-b", &bind, docroot.path().to_str().unwrap()],
        ));
        std::fs::remove_file(&key).expect("remove the key's path");
        std::fs::remove_file(&crt).expect("remove the certificate's path");
        let get = || {
            let out = Command::new("curl")
                .args(["-sS", "--fail", "--noproxy", "*", "--max-time"])
                .arg(CLIENT_MAX_SECS)
                .args(["--cacert", &ca])
                .arg(format!("https://127.0.0.1:{port}/hello.txt"))
                .output()
                .expect("run curl");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        assert_eq!(get(), (true, HELLO.to_string()), "{}", server.stderr());
        let out = server.stdout();
        assert!(
            out.contains("* Inherited file tls-key (OpenFile=)"),
            "{out}"
        );
        assert!(
            out.contains("* Inherited file tls-crt (OpenFile=)"),
            "{out}"
        );

        // A reload reads the certificate and key again, from the descriptors.
        server.signal("HUP");
        assert!(
            server.wait_for_line_count("Use Ctrl-C to stop", 2, deadline_in(CLIENT_DEADLINE)),
            "no restart after HUP:\n{}\n{}",
            server.stdout(),
            server.stderr()
        );
        assert_eq!(get(), (true, HELLO.to_string()), "{}", server.stderr());
        // A hot restart passes the files on with the listener.
        server.signal("USR2");
        assert!(
            server.wait_for_line_count("Use Ctrl-C to stop", 3, deadline_in(CLIENT_DEADLINE)),
            "no hot restart:\n{}\n{}",
            server.stdout(),
            server.stderr()
        );
        assert_eq!(get(), (true, HELLO.to_string()), "{}", server.stderr());
        assert_eq!(
            server.stdout().matches("* Inherited file tls-key").count(),
            3,
            "{}",
            server.stdout()
        );
        assert!(server.stop().success());
    }

    #[test]
    fn a_key_named_but_not_passed_is_refused_with_the_fix() {
        let docroot = TempDir::docroot();
        let data = docroot.write("cert.pem", "not used\n");
        let bind = format!(
            "ssl://127.0.0.1:{}?cert=fd://tls-crt&key=fd://tls-key",
            free_port()
        );
        let out = Server::run_command(passing(
            &format!("exec 3<'{data}'"),
            1,
            Some("other"),
            catamount(),
            &["-b", &bind, docroot.path().to_str().unwrap()],
        ));
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("no file named \"tls-crt\" was passed to this process (passed: other)"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("OpenFile=PATH:tls-crt"),
            "{}",
            out.stderr
        );
    }
}
