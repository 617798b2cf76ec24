//! The systemd protocols without systemd: the notify socket (a datagram
//! listener in the test plays systemd) and socket activation
//! (`systemd-socket-activate` passes the sockets). Real systemd is
//! exercised in tests/systemd_sandbox.rs.

mod support;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{assert_serves, deadline_in, free_port, Server, TempDir};

/// Collects notify datagrams; each one is checked against sd_notify's rules.
struct NotifyListener {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl NotifyListener {
    fn at_path(path: &Path) -> NotifyListener {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        NotifyListener {
            sock,
            seen: Vec::new(),
        }
    }

    fn abstract_name(name: &str) -> NotifyListener {
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifyListener {
            sock,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram containing `needle` (a line `KEY=VALUE`).
    fn wait_for(&mut self, needle: &str, deadline: Instant) -> Option<String> {
        if let Some(m) = self.seen.iter().find(|m| m.lines().any(|l| l == needle)) {
            return Some(m.clone());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).expect("set timeout");
            let n = match self.sock.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => return None,
            };
            assert!(
                n < 4096,
                "a notify message of {n} bytes: sd_notify messages stay under 4096"
            );
            let msg = String::from_utf8(buf[..n].to_vec()).expect("notify messages are text");
            for line in msg.lines() {
                assert!(
                    line.contains('='),
                    "malformed notify line {line:?} in {msg:?}"
                );
            }
            self.seen.push(msg.clone());
            if msg.lines().any(|l| l == needle) {
                return Some(msg);
            }
        }
    }
}

fn value<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// CLOCK_MONOTONIC in µs, read by another process (the same clock).
fn monotonic_usec_now() -> u64 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)",
        ])
        .output()
        .expect("python3 reads CLOCK_MONOTONIC");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn ready_status_and_stopping_on_a_path_socket() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let mut server = Server::start_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let ready = systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1");
    assert_eq!(
        value(&ready, "MAINPID"),
        Some(server.pid().to_string().as_str())
    );
    assert!(
        value(&ready, "STATUS").is_some_and(|s| s.starts_with("catamount ")),
        "{ready}"
    );
    assert!(
        !ready.contains("WATCHDOG=1"),
        "no watchdog was asked for: {ready}"
    );
    // STATUS follows the requests served.
    assert_serves(server.addr());
    let status = systemd
        .wait_for_prefix("STATUS=", "1 requests", deadline_in(Duration::from_secs(5)))
        .expect("a STATUS update after a request");
    assert!(status.contains("threads busy"), "{status}");
    server.signal("TERM");
    systemd
        .wait_for("STOPPING=1", deadline_in(Duration::from_secs(5)))
        .expect("STOPPING=1");
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .expect("exits")
        .success());
}

impl NotifyListener {
    /// Waits for a `KEY=...` line whose value contains `part`.
    fn wait_for_prefix(&mut self, key: &str, part: &str, deadline: Instant) -> Option<String> {
        loop {
            if let Some(m) = self
                .seen
                .iter()
                .find(|m| m.lines().any(|l| l.starts_with(key) && l.contains(part)))
            {
                return Some(m.clone());
            }
            let before = self.seen.len();
            self.wait_for(
                "\u{0}never",
                deadline.min(Instant::now() + Duration::from_millis(200)),
            );
            if self.seen.len() == before && Instant::now() >= deadline {
                return None;
            }
        }
    }
}

#[test]
fn abstract_notify_socket_works() {
    let name = format!("catamount-test-{}-{}", std::process::id(), free_port());
    let mut systemd = NotifyListener::abstract_name(&name);
    let mut server = Server::start_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1 over an abstract socket");
    assert!(server.stop().success());
}

#[test]
fn first_watchdog_ping_comes_with_ready_then_every_half_period() {
    let dir = TempDir::new("notify-wd");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let mut server = Server::start_env(
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let ready = systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1");
    assert!(
        ready.lines().any(|l| l == "WATCHDOG=1"),
        "first ping rides with READY: {ready}"
    );
    let pings_before = systemd.seen.len();
    let ping = systemd.wait_for_new(
        "WATCHDOG=1",
        pings_before,
        deadline_in(Duration::from_secs(2)),
    );
    assert!(ping, "a later WATCHDOG=1 within two periods");
    assert!(server.stop().success());
}

impl NotifyListener {
    fn wait_for_new(&mut self, needle: &str, after: usize, deadline: Instant) -> bool {
        loop {
            if self.seen[after..]
                .iter()
                .any(|m| m.lines().any(|l| l == needle))
            {
                return true;
            }
            let before = self.seen.len();
            self.wait_for(
                "\u{0}never",
                deadline.min(Instant::now() + Duration::from_millis(200)),
            );
            if self.seen.len() == before && Instant::now() >= deadline {
                return false;
            }
        }
    }
}

#[test]
fn watchdog_for_another_pid_is_ignored() {
    let dir = TempDir::new("notify-wdpid");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let mut server = Server::start_env(
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let ready = systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1");
    assert!(!ready.contains("WATCHDOG=1"), "{ready}");
    let before = systemd.seen.len();
    assert!(
        !systemd.wait_for_new(
            "WATCHDOG=1",
            before,
            deadline_in(Duration::from_millis(600))
        ),
        "no ping for a watchdog meant for pid 1"
    );
    assert!(server.stop().success());
}

#[test]
fn hot_restart_sends_reloading_with_a_fresh_clock_then_ready_from_the_same_pid() {
    let dir = TempDir::new("notify-reload");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let mut server = Server::start_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let addr = server.addr();
    systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1");
    let first_ready = systemd.seen.len();
    let before = monotonic_usec_now();
    server.signal("USR2");
    let reloading = systemd
        .wait_for("RELOADING=1", deadline_in(Duration::from_secs(5)))
        .expect("RELOADING=1");
    let usec: u64 = value(&reloading, "MONOTONIC_USEC")
        .expect("MONOTONIC_USEC")
        .parse()
        .expect("a number");
    assert!(
        usec >= before,
        "MONOTONIC_USEC {usec} was read before the signal ({before})"
    );
    assert!(
        systemd.wait_for_new("READY=1", first_ready, deadline_in(Duration::from_secs(10))),
        "READY=1 after the restart"
    );
    let ready = systemd
        .seen
        .iter()
        .rev()
        .find(|m| m.contains("READY=1"))
        .unwrap()
        .clone();
    assert_eq!(
        value(&ready, "MAINPID"),
        Some(server.pid().to_string().as_str()),
        "same pid"
    );
    assert!(server.wait_for_line(
        "* Inherited tcp://127.0.0.1:0",
        deadline_in(Duration::from_secs(5))
    ));
    // Same socket, same port: still answering.
    assert_serves(addr);
    assert!(server.stop().success());
}

#[test]
fn a_bad_config_on_reload_keeps_serving_and_still_ends_with_ready() {
    let dir = TempDir::new("notify-badreload");
    let path = dir.path().join("notify.sock");
    let conf = dir.write("app.rb", "threads 1, 2\n");
    let mut systemd = NotifyListener::at_path(&path);
    let mut server =
        Server::start_env(&["-C", &conf], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(5)))
        .expect("READY=1");
    let n = systemd.seen.len();
    std::fs::write(&conf, "treads 1, 2\n").unwrap();
    server.signal("HUP");
    assert!(systemd.wait_for_new("RELOADING=1", n, deadline_in(Duration::from_secs(5))));
    assert!(systemd.wait_for_new("READY=1", n, deadline_in(Duration::from_secs(5))));
    assert!(server.wait_for_stderr(
        "still serving with the old configuration",
        deadline_in(Duration::from_secs(5))
    ));
    assert_serves(server.addr());
    assert!(server.stop().success());
}

/// The longest a refused reload's STATUS is watched for two updates after
/// READY=1 (one STATUS period is a second, and cluster mode with
/// `--worker-timeout 3` checks in every second: normally 2-3 s; a loaded
/// machine delays the check-ins).
const REFUSAL_WATCH: Duration = Duration::from_secs(20);

impl NotifyListener {
    /// The index of the first message from `from` on with the line `needle`.
    fn index_of(&self, needle: &str, from: usize) -> Option<usize> {
        (from..self.seen.len()).find(|&i| self.seen[i].lines().any(|l| l == needle))
    }

    /// Every `STATUS=` value from message `from` on.
    fn statuses(&self, from: usize) -> Vec<String> {
        self.seen[from..]
            .iter()
            .filter_map(|m| value(m, "STATUS"))
            .map(str::to_string)
            .collect()
    }

    /// Collects messages until `until`.
    fn collect_until(&mut self, until: Instant) {
        while Instant::now() < until {
            self.wait_for("\u{0}never", until);
        }
    }
}

/// A refused reload stays in STATUS while the status line changes, until
/// a reload passes (issue 12: the next STATUS= used to drop it within a
/// second). `extra`: the arguments of the mode under test; `then_pass`:
/// also check that a reload that passes ends it (cluster mode: a phased
/// restart; in single mode a reload that passes execs a new image, which
/// starts without it).
fn a_refused_reload_stays_in_status(extra: &[&str], then_pass: bool) {
    let dir = TempDir::new("notify-refused");
    let path = dir.path().join("notify.sock");
    let conf = dir.write("app.rb", "threads 1, 2\n");
    let docroot = TempDir::docroot();
    let mut systemd = NotifyListener::at_path(&path);
    let mut args = vec!["-C", conf.as_str()];
    args.extend_from_slice(extra);
    args.push(docroot.path().to_str().unwrap());
    let mut server = Server::start_env(&args, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let addr = server.addr();
    systemd
        .wait_for("READY=1", deadline_in(Duration::from_secs(10)))
        .expect("READY=1");

    let n = systemd.seen.len();
    std::fs::write(&conf, "treads 1, 2\n").unwrap();
    server.signal("HUP");
    assert!(systemd.wait_for_new("READY=1", n, deadline_in(Duration::from_secs(10))));
    let ready = systemd.index_of("READY=1", n).expect("just seen");
    // Requests change the status line meanwhile: each STATUS= is new.
    // Watched until two updates came (a loaded machine delays the
    // workers' check-ins that carry the counts), within a deadline.
    let until = Instant::now() + REFUSAL_WATCH;
    while Instant::now() < until && systemd.statuses(ready).len() < 3 {
        assert_serves(addr);
        systemd.collect_until(deadline_in(Duration::from_millis(100)).min(until));
    }
    let statuses = systemd.statuses(ready);
    assert!(
        statuses.len() >= 3,
        "READY=1's STATUS and at least two updates after the refusal: {statuses:#?}"
    );
    assert_ne!(statuses.first(), statuses.last(), "{statuses:#?}");
    let why = format!("{conf}:1: unknown directive");
    for st in &statuses {
        assert!(
            st.contains(&why),
            "a STATUS that lost the refusal: {st:?}\nall: {statuses:#?}"
        );
    }
    // The status line, then why.
    let refusal = format!("; last reload refused: {why}");
    for st in &statuses {
        assert!(
            st.starts_with("catamount ") && st.contains(&refusal),
            "{st:?}"
        );
    }

    if !then_pass {
        assert!(server.stop().success());
        return;
    }
    // A reload that passes ends it.
    std::fs::write(&conf, "threads 1, 2\n").unwrap();
    let m = systemd.seen.len();
    server.signal("HUP");
    assert!(
        systemd.wait_for_new("READY=1", m, deadline_in(Duration::from_secs(20))),
        "no READY=1 after a reload that passes: {:#?}\nstdout:\n{}\nstderr:\n{}",
        &systemd.seen[m..],
        server.stdout(),
        server.stderr()
    );
    let ready = systemd.index_of("READY=1", m).expect("just seen");
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_serves(addr);
        systemd.collect_until(deadline_in(Duration::from_millis(100)).min(until));
    }
    let statuses = systemd.statuses(ready);
    assert!(
        statuses.iter().all(|s| !s.contains("last reload refused")),
        "{statuses:#?}"
    );
    assert!(server.stop().success());
}

#[test]
fn a_refused_reload_stays_in_status_single() {
    a_refused_reload_stays_in_status(&[], true);
}

#[test]
fn a_refused_reload_stays_in_status_cluster() {
    a_refused_reload_stays_in_status(&["-w", "2", "--worker-timeout", "3"], true);
}

/// Runs `cmd` (a catamount start that fails) with systemd listening at
/// `notify`; returns its `ERRNO=` and `STATUS=`.
fn failed_start(
    systemd: &mut NotifyListener,
    notify: &Path,
    mut cmd: Command,
    what: &[&str],
) -> (String, String) {
    cmd.env("NOTIFY_SOCKET", notify);
    let n = systemd.seen.len();
    let out = Server::run_command_named(cmd, what);
    assert!(!out.status.success(), "{what:?} started: {out:?}");
    let deadline = deadline_in(Duration::from_secs(5));
    let msg = loop {
        if let Some(m) = systemd.seen[n..]
            .iter()
            .find(|m| value(m, "ERRNO").is_some())
        {
            break m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ERRNO= for {what:?}: {:?}\n{out:?}",
            &systemd.seen[n..]
        );
        systemd.collect_until(deadline_in(Duration::from_millis(100)));
    };
    let field = |k: &str| value(&msg, k).unwrap_or_default().to_string();
    (field("ERRNO"), field("STATUS"))
}

fn catamount(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catamount"));
    cmd.args(args);
    cmd
}

#[test]
fn a_failed_start_sends_the_real_errno() {
    let dir = TempDir::new("notify-errno");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let docroot = TempDir::docroot();
    let root = docroot.path().to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let in_use = format!("tcp://{}", taken.local_addr().expect("addr"));

    // EADDRINUSE (98): a port another process listens on, for a bind or
    // the control app; a unix path taken by a file.
    let file = dir.write("not-a-socket", "x");
    for args in [
        vec!["-b", &in_use, root],
        vec![
            "-b",
            "tcp://127.0.0.1:0",
            "--control-url",
            &in_use,
            "--control-token",
            "t",
            root,
        ],
        vec!["-b", &format!("unix://{file}"), root],
    ] {
        let (errno, status) = failed_start(&mut systemd, &path, catamount(&args), &args);
        assert_eq!(errno, "98", "{args:?}: {status}");
        assert!(status.starts_with("failed to start: "), "{status}");
    }

    // A config error stays EINVAL (22).
    let args = ["--threads", "oops", root];
    let (errno, status) = failed_start(&mut systemd, &path, catamount(&args), &args);
    assert_eq!(errno, "22", "{status}");

    // EACCES (13): a port below ip_unprivileged_port_start, bound by an
    // unprivileged user (root drops to nobody with setpriv(1)).
    let Some(cmd) = unprivileged(&path) else {
        return;
    };
    let mut cmd = cmd;
    cmd.args(["-b", "tcp://127.0.0.1:80", root]);
    let (errno, status) = failed_start(&mut systemd, &path, cmd, &["unprivileged", "-b", ":80"]);
    assert_eq!(errno, "13", "{status}");
}

/// A command that runs catamount unprivileged (as itself when not root,
/// else as nobody through setpriv(1), with the notify socket at
/// `notify` opened to it), or `None` and a "skipped:" line when port 80
/// is not privileged here or there is no way to drop privileges.
fn unprivileged(notify: &Path) -> Option<Command> {
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 80 {
        eprintln!("skipped: EACCES part: port 80 is unprivileged here (ip_unprivileged_port_start={start})");
        return None;
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root {
        return Some(catamount(&[]));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(notify, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let setpriv = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_catamount"))
            .args(args);
        cmd
    };
    let works = setpriv(&["-V"]).output().is_ok_and(|o| o.status.success());
    if !works {
        eprintln!("skipped: EACCES part: cannot run catamount as nobody with setpriv(1)");
        return None;
    }
    Some(setpriv(&[]))
}

// ------------------------------------------------------------ activation

fn activate(listen: &[&str], fdname: Option<&str>, args: &[&str], docroot: &TempDir) -> Server {
    let mut cmd = Command::new("systemd-socket-activate");
    for l in listen {
        cmd.args(["-l", l]);
    }
    if let Some(n) = fdname {
        cmd.arg(format!("--fdname={n}"));
    }
    cmd.arg("--")
        .arg(env!("CARGO_BIN_EXE_catamount"))
        .args(args)
        .arg(docroot.path());
    Server::start_command(cmd)
}

fn have_socket_activate() -> bool {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: systemd-socket-activate is not installed (scripts/install-deps installs it)"
        );
    }
    ok
}

/// systemd-socket-activate starts the service on the first connection;
/// this connects once so the server starts, and returns that client.
/// (systemd-socket-activate may not listen yet: retry until a deadline.)
fn first_connection(port: u16) -> std::net::TcpStream {
    let deadline = deadline_in(Duration::from_secs(10));
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the activated socket never accepted: {e}"),
        }
    }
}

#[test]
fn adopts_an_activated_tcp_socket_matched_by_address() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let docroot = TempDir::docroot();
    let listen = format!("127.0.0.1:{port}");
    let bind = format!("tcp://127.0.0.1:{port}");
    let conn = std::thread::spawn(move || first_connection(port));
    let mut server = activate(&[&listen], Some("web"), &["-b", &bind], &docroot);
    drop(conn.join());
    assert!(
        server
            .stdout()
            .contains(&format!("* Activated tcp://127.0.0.1:{port}")),
        "{}",
        server.stdout()
    );
    assert_serves(format!("127.0.0.1:{port}").parse().unwrap());
    // The inherited fd is close-on-exec (nothing spawned may inherit it).
    let flags =
        std::fs::read_to_string(format!("/proc/{}/fdinfo/3", server.pid())).expect("fdinfo");
    let flags = flags
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags line")
        .trim()
        .to_string();
    let flags = u32::from_str_radix(&flags, 8).expect("octal flags");
    assert_ne!(
        flags & 0o2000000,
        0,
        "fd 3 lacks O_CLOEXEC (flags {flags:o})"
    );
    assert!(server.stop().success());
}

#[test]
fn localhost_bind_matches_an_activated_loopback_socket() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let docroot = TempDir::docroot();
    let conn = std::thread::spawn(move || first_connection(port));
    let bind = format!("tcp://localhost:{port}");
    let mut server = activate(
        &[&format!("127.0.0.1:{port}")],
        None,
        &["-b", &bind],
        &docroot,
    );
    drop(conn.join());
    assert!(
        server
            .stdout()
            .contains(&format!("* Activated tcp://127.0.0.1:{port}")),
        "{}",
        server.stdout()
    );
    assert!(!server.stderr().contains("in use"), "{}", server.stderr());
    assert!(server.stop().success());
}

#[test]
fn fd_name_bind_and_only_mode_ignore_a_mismatching_configured_bind() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let other = free_port();
    let docroot = TempDir::docroot();
    let conn = std::thread::spawn(move || first_connection(port));
    let bind = format!("tcp://127.0.0.1:{other}");
    let mut server = activate(
        &[&format!("127.0.0.1:{port}")],
        Some("web"),
        &["-b", &bind, "--bind-to-activated-sockets=only"],
        &docroot,
    );
    drop(conn.join());
    let out = server.stdout();
    assert!(
        out.contains(&format!("* Activated tcp://127.0.0.1:{port}")),
        "{out}"
    );
    assert!(
        !out.contains(&format!(":{other}")),
        "the configured bind is dropped in only mode: {out}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", other)).is_err());
    // USR2: hot restart keeps the activated socket (Puma 5.6 loses it).
    let pid = server.pid();
    server.signal("USR2");
    assert!(server.wait_for_line("- Restarting", deadline_in(Duration::from_secs(5))));
    assert!(server.wait_for_line_count(
        "Use Ctrl-C to stop",
        2,
        deadline_in(Duration::from_secs(10))
    ));
    assert_eq!(server.pid(), pid);
    let out = server.stdout();
    assert_eq!(
        out.matches(&format!("* Activated tcp://127.0.0.1:{port}"))
            .count(),
        2,
        "{out}"
    );
    assert_serves(format!("127.0.0.1:{port}").parse().unwrap());
    assert!(server.stop().success());

    // fd://NAME picks the socket by its FileDescriptorName.
    let port = free_port();
    let conn = std::thread::spawn(move || first_connection(port));
    let mut server = activate(
        &[&format!("127.0.0.1:{port}")],
        Some("web"),
        &["-b", "fd://web"],
        &docroot,
    );
    drop(conn.join());
    assert!(server
        .stdout()
        .contains(&format!("* Activated tcp://127.0.0.1:{port}")));
    assert_serves(format!("127.0.0.1:{port}").parse().unwrap());
    assert!(server.stop().success());
}

#[test]
fn an_unmatched_activated_unix_socket_is_closed_and_its_file_kept() {
    if !have_socket_activate() {
        return;
    }
    let dir = TempDir::new("act-unix");
    let sock = dir.path().join("act.sock");
    let port = free_port();
    let docroot = TempDir::docroot();
    let conn = std::thread::spawn(move || first_connection(port));
    let mut server = activate(
        &[&format!("127.0.0.1:{port}"), sock.to_str().unwrap()],
        None,
        &["-b", &format!("tcp://127.0.0.1:{port}")],
        &docroot,
    );
    drop(conn.join());
    let out = server.stdout();
    assert!(
        out.contains(&format!(
            "* Closing unused activated socket: unix://{}",
            sock.display()
        )),
        "{out}"
    );
    assert!(server.stop().success());
    assert!(
        sock.exists(),
        "systemd's socket file must never be unlinked"
    );
}

/// Runs catamount through `sh`, which first runs `setup` (redirections of
/// fd 3), then execs catamount with LISTEN_PID set to its own pid (exec
/// keeps the pid) and LISTEN_FDS=1, as systemd would, without systemd.
fn run_with_listen_fds(setup: &str, docroot: &TempDir, env: &[(&str, &str)]) -> support::Finished {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "{setup}; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_catamount"))
        .args(["-b", "tcp://127.0.0.1:0"])
        .arg(docroot.path())
        .envs(env.iter().copied());
    Server::run_command(cmd)
}

/// LISTEN_FDS=1 with nothing on fd 3: refused by number. (catamount used
/// to open the docroot first, adopt it as fd 3, close it and report "not
/// a socket".)
#[test]
fn listen_fds_naming_a_descriptor_never_passed_is_refused() {
    let docroot = TempDir::docroot();
    let out = run_with_listen_fds("exec 3<&-", &docroot, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("LISTEN_FDS=1 but fd 3 is not open"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not a socket"), "{}", out.stderr);

    // With NOTIFY_SOCKET set too (the notify socket is opened at start-up).
    let dir = TempDir::new("fd3-notify");
    let path = dir.path().join("notify.sock");
    let _systemd = NotifyListener::at_path(&path);
    let out = run_with_listen_fds(
        "exec 3<&-",
        &docroot,
        &[("NOTIFY_SOCKET", path.to_str().expect("UTF-8 temp path"))],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("fd 3 is not open"), "{}", out.stderr);
    // A file on fd 3 is an OpenFile= file, not an error: see
    // tests/inherited_fds.rs.
}

/// Deadline for an idle exit to be reported and the process to end.
const IDLE_DEADLINE: Duration = Duration::from_secs(10);

/// idle_timeout without systemd: an activated socket, one request, then
/// the idle exit with STOPPING=1 and exit 0. (systemd-socket-activate
/// execs the server, so nothing starts it again here; the real-systemd
/// scenario `idle_exit_...` does.)
#[test]
fn idle_timeout_exits_0_with_stopping_once_the_last_connection_is_gone() {
    if !have_socket_activate() {
        return;
    }
    let dir = TempDir::new("idle-notify");
    let path = dir.path().join("notify.sock");
    let mut systemd = NotifyListener::at_path(&path);
    let port = free_port();
    let docroot = TempDir::docroot();
    let conn = std::thread::spawn(move || first_connection(port));
    let mut cmd = Command::new("systemd-socket-activate");
    // systemd-socket-activate passes only the variables -E names.
    cmd.args(["-l", &format!("127.0.0.1:{port}")])
        .arg(format!("-ENOTIFY_SOCKET={}", path.display()))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_catamount"))
        .args(["--bind-to-activated-sockets=only", "--idle-timeout", "0.2"])
        .arg(docroot.path());
    let mut server = Server::start_command(cmd);
    let mut client = support::Client::new(conn.join().expect("the connecting thread"));
    client.get_hello_within(IDLE_DEADLINE, "the first request");
    // Kept alive: no idle exit while it is open.
    assert!(systemd
        .wait_for("STOPPING=1", deadline_in(Duration::from_millis(600)))
        .is_none());
    drop(client);
    let stopping = systemd
        .wait_for("STOPPING=1", deadline_in(IDLE_DEADLINE))
        .unwrap_or_else(|| {
            panic!(
                "no STOPPING=1 after the idle timeout:\n{}\n{}",
                server.stdout(),
                server.stderr()
            )
        });
    assert!(stopping.contains("idle_timeout"), "{stopping}");
    let status = server.wait_exit(IDLE_DEADLINE).expect("the idle exit");
    assert!(status.success(), "{status:?}");
    let out = server.stdout();
    assert!(
        out.contains("- Idle for 0.2s: exiting (idle_timeout)"),
        "{out}"
    );
}

/// With a listener of its own nobody would start catamount again: the
/// start is refused, saying what to do.
#[test]
fn idle_timeout_is_refused_with_a_listener_of_its_own() {
    let docroot = TempDir::docroot();
    let out = Server::run(&[
        "--idle-timeout",
        "1",
        "-b",
        "tcp://127.0.0.1:0",
        docroot.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("idle_timeout needs every listener to come from a systemd socket unit"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ListenStream="), "{}", out.stderr);
}

/// Cluster mode counts every worker's connections: with one kept open the
/// cluster stays; once it closes, the master stops the workers and exits 0.
#[test]
fn idle_timeout_in_cluster_mode_waits_for_every_worker() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let docroot = TempDir::docroot();
    let conn = std::thread::spawn(move || first_connection(port));
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}"), "--"])
        .arg(env!("CARGO_BIN_EXE_catamount"))
        .args([
            "--bind-to-activated-sockets=only",
            "--idle-timeout",
            "0.3",
            "--workers=2",
        ])
        .arg(docroot.path());
    let mut server = Server::start_command(cmd);
    let mut client = support::Client::new(conn.join().expect("the connecting thread"));
    client.get_hello_within(IDLE_DEADLINE, "the first request");
    // Open and quiet for three idle timeouts: the cluster stays.
    assert!(server.wait_exit(Duration::from_millis(900)).is_none());
    client.get_hello_within(IDLE_DEADLINE, "a request on the kept connection");
    drop(client);
    let status = server.wait_exit(IDLE_DEADLINE).expect("the idle exit");
    assert!(status.success(), "{status:?}\n{}", server.stdout());
    assert!(
        server
            .stdout()
            .contains("- Idle for 0.3s: exiting (idle_timeout)"),
        "{}",
        server.stdout()
    );
}
