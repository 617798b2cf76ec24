//! `catamount --check`, and the hot restart's preflight that runs it
//! (issue 12): a restart whose new image could not start is refused, and
//! the old process keeps serving with the same pid.

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{assert_serves, deadline_in, Finished, Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_catamount");
/// How long a signalled server has to log its answer.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(15);

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

    // 1: what the configuration names is not there. (Built without the
    // tls feature, the ssl:// bind itself is refused, with 2: see
    // without_the_tls_feature_a_tls_bind_is_a_config_error.)
    if cfg!(feature = "tls") {
        let cert = docroot.join("missing-cert.pem");
        let ssl = format!("ssl://127.0.0.1:0?cert={cert}&key={cert}");
        assert_fails(
            &check(&["-b", &ssl, www]),
            1,
            "catamount: error: bind ssl://127.0.0.1:0",
        );
        let f = check(&["-b", &ssl, www]);
        assert!(f.stderr.contains(&cert), "names the certificate: {f:?}");
    }
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

/// Built without the `tls` cargo feature (issue 15), every TLS bind is a
/// config error: exit 2 and one line that says how to get TLS, from the
/// command line or the config file, at --check or at a start.
#[cfg(not(feature = "tls"))]
#[test]
fn without_the_tls_feature_a_tls_bind_is_a_config_error() {
    const NO_TLS: &str = "TLS binds (ssl://, fd://NAME?cert=) need the cargo feature \"tls\", \
         which this catamount was built without; rebuild with it";
    let docroot = TempDir::docroot();
    let www = docroot.path().to_str().expect("UTF-8 temp path");
    let ssl = "ssl://127.0.0.1:0?cert=/c.pem&key=/k.pem";
    let fd = "fd://https?cert=/c.pem&key=/k.pem";
    let conf_dir = TempDir::new("no-tls");
    let conf = conf_dir.write("app.rb", &format!("bind \"{ssl}\"\n"));
    for (args, start) in [
        (
            vec!["--check", "-b", ssl, www],
            format!("catamount: --bind {ssl:?}: {NO_TLS}"),
        ),
        (
            vec!["-b", ssl, www],
            format!("catamount: --bind {ssl:?}: {NO_TLS}"),
        ),
        (
            vec!["-b", fd, www],
            format!("catamount: --bind {fd:?}: {NO_TLS}"),
        ),
        (
            vec!["-C", &conf, www],
            format!("catamount: {conf}:1: bind {ssl:?}: {NO_TLS}"),
        ),
    ] {
        assert_fails(&Server::run(&args), 2, &start);
    }
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

// ---------------------------------------------------------------------
// The preflight of a hot restart
// ---------------------------------------------------------------------

/// Copies the binary to `dir/catamount` (a package update or a deploy
/// replaces files like this one).
fn copy_binary(dir: &TempDir) -> PathBuf {
    let copy = dir.path().join("catamount");
    std::fs::copy(BIN, &copy).expect("copy the binary");
    copy
}

/// Waits until `bin`, just written, can be executed. Another test
/// thread that forked while the copy was open for writing holds a writable
/// descriptor of it until that child execs, and until then exec(2) fails
/// with ETXTBSY; no new writer can appear once one exec succeeded.
fn wait_executable(bin: &Path) {
    let deadline = deadline_in(Duration::from_secs(10));
    loop {
        match Command::new(bin).arg("--version").output() {
            Ok(out) if out.status.success() => return,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && Instant::now() < deadline => {
                std::thread::yield_now()
            }
            other => panic!("{} --version: {other:?}", bin.display()),
        }
    }
}

/// ETXTBSY: tests use no libc.
const ETXTBSY: i32 = 26;

/// Starts `bin` with `args` and `envs` and waits until it is ready.
fn start_binary(bin: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Server {
    wait_executable(bin);
    let mut cmd = Command::new(bin);
    cmd.args(args).envs(envs.iter().copied());
    Server::start_command(cmd)
}

/// The notify datagrams a server sent, as systemd would see them.
struct Notify {
    sock: UnixDatagram,
    _dir: TempDir,
    path: PathBuf,
}

impl Notify {
    fn new() -> Notify {
        let dir = TempDir::new_in(Path::new("/tmp"), "notify");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Notify {
            sock,
            _dir: dir,
            path,
        }
    }

    /// Waits for a datagram with all of `lines`; returns it.
    fn wait_for(&self, lines: &[&str], deadline: Instant) -> Option<String> {
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).expect("set timeout");
            let n = self.sock.recv(&mut buf).ok()?;
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if lines.iter().all(|l| msg.lines().any(|m| m.starts_with(l))) {
                return Some(msg);
            }
        }
    }
}

/// Sends USR2 and waits for the refusal line containing `reason`; then
/// the same process still serves, with no new image started, and it has
/// ended the reload with READY=1 and a STATUS= saying why.
fn assert_refused(s: &mut Server, notify: &Notify, reason: &str) {
    s.signal("USR2");
    let refused = "! hot restart (SIGUSR2) refused, still serving with the old configuration: \
                   the new image would not start: ";
    assert!(
        s.wait_for_stderr(&format!("{refused}{reason}"), deadline_in(SIGNAL_DEADLINE)),
        "no refusal with {reason:?}:\n{}",
        s.stderr()
    );
    // READY=1 ends the refused reload; STATUS= keeps the reason.
    // (The start's own READY=1 may come first: skip to the refusal's.)
    let deadline = deadline_in(SIGNAL_DEADLINE);
    let refusal =
        std::iter::from_fn(|| notify.wait_for(&["READY=1", "STATUS=catamount "], deadline))
            .find(|m| m.contains("; last reload refused: the new image would not start: "));
    assert!(
        refusal.is_some(),
        "no READY=1 with the reason after the refusal"
    );
    assert_eq!(s.exit_status_now(), None, "{}", s.stderr());
    assert_serves(s.addr());
    let out = s.stdout();
    assert_eq!(
        out.matches("starting in").count(),
        1,
        "a new image ran:\n{out}"
    );
    assert!(!out.contains("- Restarting"), "it drained:\n{out}");
}

#[test]
fn hot_restart_of_a_deleted_binary_is_refused_and_the_server_keeps_serving() {
    for workers in ["0", "1"] {
        let dir = TempDir::new("bin");
        let bin = copy_binary(&dir);
        let notify = Notify::new();
        let docroot = TempDir::docroot();
        let www = docroot.path().to_str().expect("UTF-8 temp path");
        let args = ["-w", workers, "-b", "tcp://127.0.0.1:0", www];
        let mut s = start_binary(&bin, &args, &[("NOTIFY_SOCKET", &notify.path)]);
        assert!(notify
            .wait_for(&["READY=1"], deadline_in(SIGNAL_DEADLINE))
            .is_some());
        let pid = s.pid();
        std::fs::remove_file(&bin).expect("delete the binary");
        assert_refused(
            &mut s,
            &notify,
            &format!(
                "cannot run {} --check: No such file or directory (os error 2)",
                bin.display()
            ),
        );
        // A binary back at the path: the next restart goes through, in
        // place (same pid), and the new image serves.
        std::fs::copy(BIN, &bin).expect("put a binary back");
        wait_executable(&bin);
        s.signal("USR2");
        assert!(
            s.wait_for_nth_line("Use Ctrl-C to stop", 2, deadline_in(SIGNAL_DEADLINE)),
            "workers {workers}: no second start:\n{}\n{}",
            s.stdout(),
            s.stderr()
        );
        assert_eq!(s.pid(), pid);
        assert_eq!(s.exit_status_now(), None);
        assert_serves(s.addr());
        assert_eq!(s.stop().code(), Some(0), "{}", s.stderr());
    }
}

#[test]
fn hot_restart_with_the_control_socket_directory_gone_is_refused() {
    for workers in ["0", "1"] {
        let ctl = TempDir::new_in(Path::new("/tmp"), "ctl");
        let ctl_dir = ctl.path().join("run");
        std::fs::create_dir(&ctl_dir).expect("create the control directory");
        let url = format!("unix://{}/ctl.sock", ctl_dir.display());
        let notify = Notify::new();
        // `--name=VALUE`: the harness adds a docroot unless it sees a DIR.
        let mut s = Server::start_env(
            &[
                &format!("--workers={workers}"),
                &format!("--control-url={url}"),
                "--control-token=x",
            ],
            &[("NOTIFY_SOCKET", notify.path.to_str().expect("UTF-8 path"))],
        );
        assert!(s
            .stdout()
            .contains(&format!("* Control app listening on {url}")));
        std::fs::remove_dir_all(&ctl_dir).expect("remove the control directory");
        assert_refused(
            &mut s,
            &notify,
            &format!(
                "{BIN} --check exited with status 1: catamount: error: control URL {url}: \
                 directory {} does not exist; create it (in a systemd unit: \
                 RuntimeDirectory=) or choose another path",
                ctl_dir.display()
            ),
        );
        assert_eq!(s.stop().code(), Some(0), "{}", s.stderr());
    }
}
