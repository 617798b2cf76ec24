//! catamount under a real systemd, 252 and 254, scenario by scenario (see
//! `support/sdsandbox.rs`: systemd is PID 1 in private namespaces, the host
//! is never touched). Every scenario asserts on what systemd reports
//! (`systemctl show`, the journal) AND on real requests made inside the
//! sandbox's network namespace: curl for single requests, a small load
//! client (Python's standard library, run inside) for "zero failed requests
//! across a restart".
//!
//! The load client opens a new connection per request, so every request
//! also exercises accept: a connection refused, reset or left unanswered
//! while the service restarts counts as a failure, as does any answer but
//! `200` with the expected body.
//!
//! These tests need root, /usr/lib/systemd/systemd, namespaces and a
//! writable cgroup2 (and python3 for the load scenarios); elsewhere each one
//! prints `skipped: <reason>` and passes (`CATAMOUNT_SD_SANDBOX=require`
//! makes that a failure).

#[path = "support/sdsandbox.rs"]
#[macro_use]
mod sdsandbox;

#[path = "support/pki.rs"]
#[allow(dead_code)] // pki::dated serves tests/tls.rs only
mod pki;

use sdsandbox::{Sandbox, Skip, Systemd, TestDir, STATE_TIMEOUT};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_catamount");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const HELLO: &str = "hello from inside the sandbox\n";

/// Connections the load client keeps going at once.
const LOAD_CONCURRENCY: u32 = 4;
/// Upper bound of one load run: the client stops by itself after this,
/// even if the test never tells it to.
const LOAD_MAX_SECS: u32 = 40;
/// How long one request of the load client may wait. A stopped service's
/// clients wait in the backlog until the next start, and on a loaded
/// machine the test's own steps between `stop` and `start` took 5.4 s (a
/// CI run): what these scenarios check is that no connection is refused
/// or reset, not how fast systemd and the test get through their steps
/// (the client reports the longest wait).
const LOAD_REQUEST_TIMEOUT_SECS: u32 = 30;
/// Requests that must succeed between two steps of a load scenario, so a
/// restart always happens under load and the new process serves some.
const LOAD_STEP: u64 = 200;
/// Deadline for the load client to reach a request count, or to exit.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Restarts per load scenario. The shipped units keep systemd's default
/// start limit (5 starts in 10 s): the first start and 3 restarts fit.
const RESTARTS: u32 = 3;

/// The load client: `load.py TARGETS PROGRESS STOP EXPECT CONCURRENCY
/// MAX_SECS REQUEST_TIMEOUT`. TARGETS is a comma-separated list of `tcp:HOST:PORT` and
/// `unix:PATH`, taken in turn. Every 20 ms it writes "OK FAILED" to
/// PROGRESS; it stops when the file STOP exists (or after MAX_SECS), then
/// prints `ok=N failed=M max_latency_ms=L` and the first failures, one a
/// line, with their CLOCK_MONOTONIC time.
const LOAD_CLIENT: &str = r#"
import os, socket, sys, threading, time

targets, progress, stop, expect_path = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
concurrency, max_secs = int(sys.argv[5]), float(sys.argv[6])
request_timeout = float(sys.argv[7])
expect = open(expect_path, "rb").read()
request = b"GET /hello.txt HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n"
lock = threading.Lock()
ok = 0
errors = []
max_latency = 0.0
end = time.monotonic() + max_secs
done = threading.Event()

def connect(target):
    if target.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(request_timeout)
        s.connect(target[5:])
        return s
    host, port = target[4:].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=request_timeout)

def one(target):
    with connect(target) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 ") or body != expect:
        raise ValueError("unexpected response %r" % data[:120])

def worker(n):
    global ok, max_latency
    i = n
    while time.monotonic() < end and not os.path.exists(stop):
        target = targets[i % len(targets)]
        i += 1
        t = time.monotonic()
        try:
            one(target)
        except Exception as e:
            with lock:
                errors.append("%.3f %s %s: %s" % (time.monotonic(), target, type(e).__name__, e))
            continue
        with lock:
            ok += 1
            max_latency = max(max_latency, time.monotonic() - t)

def report():
    while True:
        with lock:
            line = "%d %d\n" % (ok, len(errors))
        with open(progress + ".tmp", "w") as f:
            f.write(line)
        os.replace(progress + ".tmp", progress)
        if done.is_set():
            return
        done.wait(0.02)

threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
reporter = threading.Thread(target=report)
for t in threads:
    t.start()
reporter.start()
for t in threads:
    t.join()
done.set()
reporter.join()
print("ok=%d failed=%d max_latency_ms=%d" % (ok, len(errors), max_latency * 1000))
for e in errors[:20]:
    print(e)
"#;

/// `path` quoted for a unit file's command line (systemd.service(5),
/// "Command lines": double quotes, backslash escapes).
fn quoted(path: &Path) -> String {
    let s = path.to_str().expect("test paths are UTF-8");
    assert!(
        !s.contains(['"', '\\', '%', '$', '\n', '\'']),
        "test path needs more quoting than this helper does: {s:?}"
    );
    format!("\"{s}\"")
}

/// A test directory with `units/` (installed in the sandbox) and a docroot
/// `www/` holding hello.txt.
struct Fixture {
    dir: TestDir,
    units: PathBuf,
    www: PathBuf,
    started: Instant,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = TestDir::new(tag);
        let units = dir.path().join("units");
        let www = dir.path().join("www");
        fs::create_dir_all(&units).expect("create units dir");
        fs::create_dir_all(&www).expect("create docroot");
        fs::write(www.join("hello.txt"), HELLO).expect("write hello.txt");
        Fixture {
            dir,
            units,
            www,
            started: Instant::now(),
        }
    }

    /// Writes a unit file; `{BIN}` and `{WWW}` in `text` become the quoted
    /// binary and docroot.
    fn unit(&self, name: &str, text: &str) {
        let text = text
            .replace("{BIN}", &quoted(Path::new(BIN)))
            .replace("{WWW}", &quoted(&self.www));
        fs::write(self.units.join(name), text).expect("write unit");
    }

    /// Writes a file into the test directory (visible inside at the same
    /// path) and returns its path.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, text).expect("write test file");
        path
    }

    /// Installs a unit of `units/` as shipped, with `/usr/bin/catamount`
    /// and `/etc/catamount/catamount.rb` replaced by the binary under test
    /// and `config`.
    fn shipped(&self, name: &str, config: &Path) {
        self.shipped_with(name, config, Path::new(BIN));
    }

    /// [`Fixture::shipped`] with the binary at `bin`.
    fn shipped_with(&self, name: &str, config: &Path, bin: &Path) {
        self.shipped_as(name, name, config, bin);
    }

    /// Installs the shipped unit `name` under the name `installed` (as
    /// README says to install catamount-reload.service as catamount.service).
    fn shipped_as(&self, name: &str, installed: &str, config: &Path, bin: &Path) {
        self.shipped_edited(name, installed, config, bin, &[]);
    }

    /// [`Fixture::shipped_as`] with each `(from, to)` of `edits` replaced
    /// in the unit's text first (each must be there).
    fn shipped_edited(
        &self,
        name: &str,
        installed: &str,
        config: &Path,
        bin: &Path,
        edits: &[(&str, &str)],
    ) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("units")
            .join(name);
        let mut text = fs::read_to_string(&src).expect("read shipped unit");
        for (from, to) in edits {
            assert!(text.contains(from), "{name} has no {from:?}");
            text = text.replace(from, to);
        }
        let config = config.to_str().expect("test paths are UTF-8");
        // Other files under /etc/catamount (certificates, tokens) are the
        // fixture's files of the same name.
        let etc = format!("{}/", self.dir.path().display());
        let mut text = text
            .replace("/usr/bin/catamount", bin.to_str().expect("UTF-8 path"))
            .replace("/etc/catamount/catamount.rb", config)
            .replace("/etc/catamount/", &etc);
        // The hardened units hide /tmp (PrivateTmp=) and /root, /home
        // (ProtectHome=); a target dir or fixture there (CARGO_TARGET_DIR=
        // /tmp/..., a clone under /tmp) must be bound back in, read-only.
        if text.contains("[Service]") && name.ends_with(".service") {
            let binds = self.hidden_paths_bound_back(bin);
            if !binds.is_empty() {
                text.push_str("\n[Service]\n");
                text.push_str(&binds);
            }
        }
        fs::write(self.units.join(installed), text).expect("install shipped unit");
    }

    /// `BindReadOnlyPaths=` lines for the directories of `bin` and of the
    /// fixture where a sandboxed unit would not see them (`PrivateTmp=`,
    /// which `DynamicUser=` implies, and `ProtectHome=` hide /tmp, /root,
    /// /home).
    fn hidden_paths_bound_back(&self, bin: &Path) -> String {
        [bin.parent(), Some(self.dir.path())]
            .into_iter()
            .flatten()
            .filter(|p| {
                ["/tmp/", "/root/", "/home/", "/run/"]
                    .iter()
                    .any(|h| p.starts_with(h))
            })
            .map(|p| format!("BindReadOnlyPaths={}\n", p.display()))
            .collect()
    }

    fn boot(&self, systemd: Systemd) -> Option<Sandbox> {
        let sb = Sandbox::start_or_skip_with(&self.units, systemd)?;
        eprintln!(
            "sd-sandbox: systemd {} (pid {} on the host) booted in {} ms",
            systemd.major(),
            sb.pid(),
            sb.boot_time().as_millis()
        );
        Some(sb)
    }

    /// Ends a scenario: the time it took on stderr, the sandbox stopped.
    fn done(self, sb: Sandbox) {
        let test = thread::current().name().unwrap_or("?").to_owned();
        eprintln!(
            "timing: {test}: {} ms (sandbox boot {} ms)",
            self.started.elapsed().as_millis(),
            sb.boot_time().as_millis()
        );
        sb.stop().expect("sandbox stops cleanly");
    }
}

/// Reports a skip for a precondition of one scenario (not of the sandbox
/// itself); with `CATAMOUNT_SD_SANDBOX=require` it is a failure instead.
fn skip(reason: &str) {
    if std::env::var("CATAMOUNT_SD_SANDBOX").as_deref() == Ok("require") {
        panic!("CATAMOUNT_SD_SANDBOX=require, but: {reason}");
    }
    let test = thread::current().name().unwrap_or("?").to_owned();
    Skip {
        reason: reason.to_owned(),
    }
    .report(&test);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The last `n` lines of `s`, for failure messages.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn get_tcp(sb: &Sandbox, port: u16) -> Output {
    sb.curl(&format!("http://127.0.0.1:{port}/hello.txt"))
}

fn get_unix(sb: &Sandbox, path: &str) -> Output {
    sb.curl_unix(path, "http://sandbox/hello.txt")
}

/// `request` answers 200 with hello.txt (retried until STATE_TIMEOUT: a
/// service may still be coming up).
fn assert_serves(sb: &Sandbox, unit: &str, what: &str, request: impl Fn() -> Output) {
    let mut last = None;
    let ok = sdsandbox::poll_until(STATE_TIMEOUT, || {
        let out = request();
        let ok = out.status.success() && out.stdout == HELLO.as_bytes();
        last = Some(out);
        ok
    });
    assert!(
        ok,
        "GET /hello.txt on {what}: last try {}\n--- journal of {unit}:\n{}\n{}",
        last.map_or_else(String::new, |o| format!(
            "{}: {}{}",
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        )),
        tail(&sb.journal(unit), 40),
        sb.diagnostics()
    );
}

/// Nothing listens on 127.0.0.1:`port`: curl gets "connection refused"
/// (its exit status 7), and `ss` lists no listener there.
fn assert_refused(sb: &Sandbox, port: u16) {
    let out = get_tcp(sb, port);
    assert_eq!(
        out.status.code(),
        Some(7),
        "expected connection refused on 127.0.0.1:{port}, got {}: {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let filter = format!("sport = :{port}");
    let ss = sb.run(&["ss", "-Hltn", &filter]);
    assert!(
        ss.status.success() && ss.stdout.is_empty(),
        "ss lists a listener on port {port}: {}",
        text(&ss.stdout)
    );
}

/// Who holds a listening socket, as `ss -p` shows it: its socket inode
/// and the `("name",pid=N,fd=M)` entries.
#[derive(Debug, PartialEq)]
struct Holders {
    inode: String,
    users: Vec<String>,
}

impl Holders {
    /// How many of the entries are process `name` with `pid`.
    fn count(&self, name: &str, pid: u32) -> usize {
        let prefix = format!("(\"{name}\",pid={pid},");
        self.users.iter().filter(|u| u.starts_with(&prefix)).count()
    }
}

fn parse_users(line: &str) -> Vec<String> {
    let Some(start) = line.find("users:((") else {
        return Vec::new();
    };
    let rest = &line[start + "users:(".len()..];
    let end = rest.find("))").map_or(rest.len(), |e| e + 1);
    rest[..end]
        .split("),(")
        .map(|u| {
            let u = u.trim_start_matches('(').trim_end_matches(')');
            format!("({u})")
        })
        .collect()
}

/// The listener on 127.0.0.1:`port`.
fn tcp_holders(sb: &Sandbox, port: u16) -> Holders {
    let filter = format!("sport = :{port}");
    let out = sb.run(&["ss", "-Hltnpe", &filter]);
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "one listener on port {port}: {listing}");
    let inode = lines[0]
        .split_whitespace()
        .find_map(|t| t.strip_prefix("ino:"))
        .unwrap_or_else(|| panic!("no ino: in {listing}"))
        .to_owned();
    Holders {
        inode,
        users: parse_users(lines[0]),
    }
}

/// The listener on the unix socket `path`.
fn unix_holders(sb: &Sandbox, path: &str) -> Holders {
    let out = sb.run(&["ss", "-Hlxp"]);
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing
        .lines()
        .filter(|l| l.split_whitespace().any(|t| t == path))
        .collect();
    assert_eq!(lines.len(), 1, "one listener at {path}: {listing}");
    let mut tokens = lines[0].split_whitespace();
    tokens.find(|t| *t == path);
    Holders {
        inode: tokens.next().unwrap_or_default().to_owned(),
        users: parse_users(lines[0]),
    }
}

/// `systemctl show -p A,B,... --value`-like: the named properties at one
/// instant, in the order asked.
fn show_many(sb: &Sandbox, unit: &str, props: &[&str]) -> Vec<String> {
    let joined = props.join(",");
    let out = sb.systemctl(&["show", "-p", &joined, unit]);
    let listing = text(&out.stdout);
    props
        .iter()
        .map(|p| {
            listing
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{p}=")))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Waits until `unit` is active (running) with a main pid other than
/// `not`, and returns that pid.
fn wait_running_pid(sb: &Sandbox, unit: &str, not: u32) -> u32 {
    let mut pid = 0;
    sb.wait_for(
        &format!("{unit} running with a MainPID other than {not}"),
        STATE_TIMEOUT,
        || {
            let v = show_many(sb, unit, &["ActiveState", "SubState", "MainPID"]);
            pid = v[2].parse().unwrap_or(0);
            v[0] == "active" && v[1] == "running" && pid != 0 && pid != not
        },
    );
    pid
}

/// How many times `needle` occurs in what process `pid` logged.
fn count_in_journal(sb: &Sandbox, pid: u32, needle: &str) -> usize {
    sb.journal_of_pid(pid).matches(needle).count()
}

/// Waits until process `pid` logged `needle` at least `n` times.
fn wait_journal_count(sb: &Sandbox, pid: u32, needle: &str, n: usize) {
    sb.wait_for(
        &format!("{n} x {needle:?} in the journal of pid {pid}"),
        STATE_TIMEOUT,
        || count_in_journal(sb, pid, needle) >= n,
    );
}

/// A running load client (see [`LOAD_CLIENT`]).
struct Load {
    child: Child,
    progress: PathBuf,
    stop: PathBuf,
}

/// What the load client reported at its end.
#[derive(Debug)]
struct LoadReport {
    ok: u64,
    failed: u64,
    max_latency_ms: u64,
    /// The summary line and the first failures, as printed.
    output: String,
}

impl Load {
    /// Starts the load client inside the sandbox against `targets`; `None`
    /// (after a skip report) when the sandbox has no python3.
    fn start(sb: &Sandbox, fx: &Fixture, targets: &[&str]) -> Option<Load> {
        let probe = sb.run(&["python3", "-c", "import socket, threading"]);
        if !probe.status.success() {
            skip(&format!(
                "no python3 inside the sandbox for the load client: {}",
                text(&probe.stderr).trim()
            ));
            return None;
        }
        let script = fx.file("load.py", LOAD_CLIENT);
        let expect = fx.file("expect.txt", HELLO);
        let progress = fx.dir.path().join("load.progress");
        let stop = fx.dir.path().join("load.stop");
        let arg = |p: &Path| p.to_str().expect("test paths are UTF-8").to_owned();
        let (script, progress_s, stop_s, expect) =
            (arg(&script), arg(&progress), arg(&stop), arg(&expect));
        let concurrency = LOAD_CONCURRENCY.to_string();
        let max_secs = LOAD_MAX_SECS.to_string();
        let request_timeout = LOAD_REQUEST_TIMEOUT_SECS.to_string();
        let targets = targets.join(",");
        let child = sb.spawn(&[
            "python3",
            &script,
            &targets,
            &progress_s,
            &stop_s,
            &expect,
            &concurrency,
            &max_secs,
            &request_timeout,
        ]);
        Some(Load {
            child,
            progress,
            stop,
        })
    }

    /// (succeeded, failed) so far.
    fn progress(&self) -> (u64, u64) {
        let s = fs::read_to_string(&self.progress).unwrap_or_default();
        let mut it = s.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    /// Waits until at least `n` requests succeeded in total.
    fn wait_ok(&mut self, sb: &Sandbox, n: u64, what: &str) {
        let mut exited = None;
        let reached = sdsandbox::poll_until(LOAD_TIMEOUT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            self.progress().0 >= n
        });
        if let Some(status) = exited {
            panic!(
                "the load client exited early ({status}) {what}: {}",
                self.output()
            );
        }
        assert!(
            reached,
            "the load client did not reach {n} successful requests {what}: progress {:?}\n{}",
            self.progress(),
            sb.diagnostics()
        );
    }

    fn output(&mut self) -> String {
        let mut out = String::new();
        if let Some(s) = self.child.stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(s) = self.child.stderr.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }

    /// Tells the client to stop, waits for it, and returns its report.
    fn finish(mut self) -> LoadReport {
        fs::write(&self.stop, "").expect("create the load client's stop file");
        let exited = sdsandbox::poll_until(LOAD_TIMEOUT, || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("the load client did not stop within {LOAD_TIMEOUT:?}");
        }
        let output = self.output();
        let summary = output
            .lines()
            .find(|l| l.starts_with("ok="))
            .unwrap_or_else(|| panic!("no summary from the load client: {output}"));
        let field = |k: &str| -> u64 {
            summary
                .split_whitespace()
                .find_map(|t| t.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {summary:?}"))
        };
        LoadReport {
            ok: field("ok="),
            failed: field("failed="),
            max_latency_ms: field("max_latency_ms="),
            output,
        }
    }
}

/// The sandbox's CLOCK_MONOTONIC, in microseconds, to place the load
/// client's failures (printed in seconds of the same clock) in the journal.
fn sandbox_monotonic(sb: &Sandbox) -> String {
    let out = sb.run(&["cat", "/proc/uptime"]);
    text(&out.stdout)
}

/// Asserts that the load client saw no failure; on failure the message has
/// the client's failures (CLOCK_MONOTONIC seconds) and the unit's journal
/// with monotonic timestamps, to line them up.
fn assert_no_failed_requests(sb: &Sandbox, unit: &str, report: &LoadReport, what: &str) {
    eprintln!(
        "load during {what}: {} ok, {} failed, max latency {} ms",
        report.ok, report.failed, report.max_latency_ms
    );
    if report.failed == 0 {
        return;
    }
    let journal = sb.run(&[
        "journalctl",
        "--no-pager",
        "--output=short-monotonic",
        "--unit",
        unit,
    ]);
    panic!(
        "{} of {} requests failed during {what} (expected none)\n--- load client (time: CLOCK_MONOTONIC s):\n{}\n--- journal of {unit} (monotonic):\n{}\n--- uptime now: {}",
        report.failed,
        report.failed + report.ok,
        report.output,
        tail(&text(&journal.stdout), 80),
        sandbox_monotonic(sb)
    );
}

/// The status line catamount sends with READY=1 and every second after.
fn status_line(requests: u64) -> String {
    format!("catamount {VERSION}: single, 0/5 threads busy, 0 queued, {requests} requests")
}

// ---------------------------------------------------------------------------
// 1. Socket activation of tcp and unix sockets, Type=notify, STATUS, MainPID.

fn socket_activated_tcp_and_unix_with_notify_status_and_main_pid(systemd: Systemd) {
    let fx = Fixture::new("activate");
    fx.unit(
        "cat1.socket",
        "[Unit]\n\
         Description=catamount sockets (test 1)\n\
         \n\
         [Socket]\n\
         ListenStream=127.0.0.1:8080\n\
         ListenStream=/run/cat1/cat1.sock\n",
    );
    fx.unit(
        "cat1.service",
        "[Unit]\n\
         Description=catamount, socket-activated (test 1)\n\
         Requires=cat1.socket\n\
         After=cat1.socket\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart={BIN} -b tcp://127.0.0.1:8080 -b unix:///run/cat1/cat1.sock {WWW}\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let (sock, svc) = ("cat1.socket", "cat1.service");

    sb.systemctl_ok(&["start", sock]);
    sb.wait_for_property(sock, "SubState", "listening", STATE_TIMEOUT);
    assert_eq!(sb.show(svc, "ActiveState"), "inactive");

    // Type=notify: `systemctl start` returns once READY=1 arrived.
    sb.systemctl_ok(&["start", svc]);
    let v = show_many(&sb, svc, &["ActiveState", "SubState", "StatusText"]);
    assert_eq!(
        v,
        ["active", "running", &status_line(0)],
        "{}",
        sb.journal(svc)
    );
    let pid = sb.main_pid(svc);
    assert_ne!(pid, 0);
    // MainPID is the process that holds the sockets, and the one that says
    // so in its startup log.
    let tcp = tcp_holders(&sb, 8080);
    assert_eq!(
        (tcp.count("systemd", 1), tcp.count("catamount", pid)),
        (1, 1),
        "{tcp:?}"
    );
    let unix = unix_holders(&sb, "/run/cat1/cat1.sock");
    assert_eq!(
        (unix.count("systemd", 1), unix.count("catamount", pid)),
        (1, 1),
        "{unix:?}"
    );
    wait_journal_count(&sb, pid, "* Activated tcp://127.0.0.1:8080", 1);
    let log = sb.journal_of_pid(pid);
    assert!(log.contains(&format!("PID: {pid}\n")), "{log}");
    assert!(
        log.contains("* Activated unix:///run/cat1/cat1.sock"),
        "{log}"
    );
    assert!(!log.contains("Closing unused"), "{log}");

    assert_serves(&sb, svc, "the activated tcp socket", || get_tcp(&sb, 8080));
    assert_serves(&sb, svc, "the activated unix socket", || {
        get_unix(&sb, "/run/cat1/cat1.sock")
    });
    // STATUS= follows the request count (sent at most once a second).
    sb.wait_for_property(svc, "StatusText", &status_line(2), STATE_TIMEOUT);

    // A stop leaves systemd's sockets alone: the unix socket file stays,
    // the socket unit listens, and the next connection starts the service
    // again (socket activation on demand), answered by a new process.
    sb.systemctl_ok(&["stop", svc]);
    assert_eq!(sb.show(svc, "Result"), "success", "{}", sb.journal(svc));
    assert!(
        sb.run(&["test", "-S", "/run/cat1/cat1.sock"])
            .status
            .success(),
        "catamount removed systemd's socket file\n{}",
        sb.journal(svc)
    );
    assert_eq!(sb.show(sock, "SubState"), "listening");
    assert_serves(&sb, svc, "the unix socket, starting the service", || {
        get_unix(&sb, "/run/cat1/cat1.sock")
    });
    let again = wait_running_pid(&sb, svc, pid);
    assert_serves(&sb, svc, "the tcp socket after re-activation", || {
        get_tcp(&sb, 8080)
    });
    assert_eq!(sb.show(svc, "NRestarts"), "0");
    eprintln!("MainPID {pid}, after a stop and re-activation {again}");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 2. `only` mode: a mismatching configured bind is not listened on.

fn only_mode_answers_on_the_activated_address_and_not_the_configured_one(systemd: Systemd) {
    let fx = Fixture::new("only");
    fx.unit(
        "cat2.socket",
        "[Socket]\n\
         ListenStream=127.0.0.1:8080\n\
         FileDescriptorName=web\n",
    );
    fx.unit(
        "cat2.service",
        "[Unit]\n\
         Requires=cat2.socket\n\
         After=cat2.socket\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart={BIN} --bind-to-activated-sockets=only -b tcp://127.0.0.1:8081 {WWW}\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "cat2.service";

    sb.systemctl_ok(&["start", svc]);
    assert_eq!(sb.show(svc, "ActiveState"), "active");
    assert_serves(&sb, svc, "the activated 127.0.0.1:8080", || {
        get_tcp(&sb, 8080)
    });
    assert_refused(&sb, 8081);
    let pid = sb.main_pid(svc);
    wait_journal_count(&sb, pid, "Use Ctrl-C to stop", 1);
    let log = sb.journal_of_pid(pid);
    assert!(log.contains("* Activated tcp://127.0.0.1:8080"), "{log}");
    assert!(!log.contains("8081"), "{log}");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 3. An activated socket no bind wants is closed, and its file kept.

fn an_unmatched_activated_unix_socket_is_closed_and_its_file_stays(systemd: Systemd) {
    let fx = Fixture::new("unmatched");
    fx.unit(
        "cat3.socket",
        "[Socket]\n\
         ListenStream=127.0.0.1:8080\n\
         ListenStream=/run/cat3/extra.sock\n",
    );
    fx.unit(
        "cat3.service",
        "[Unit]\n\
         Requires=cat3.socket\n\
         After=cat3.socket\n\
         \n\
         [Service]\n\
         Type=notify\n\
         ExecStart={BIN} -b tcp://127.0.0.1:8080 {WWW}\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let (sock, svc) = ("cat3.socket", "cat3.service");

    sb.systemctl_ok(&["start", svc]);
    assert_serves(&sb, svc, "the activated tcp socket", || get_tcp(&sb, 8080));
    let pid = sb.main_pid(svc);
    wait_journal_count(
        &sb,
        pid,
        "* Closing unused activated socket: unix:///run/cat3/extra.sock",
        1,
    );
    // Closed in catamount (only systemd holds it), not unlinked, still
    // the socket unit's.
    let extra = unix_holders(&sb, "/run/cat3/extra.sock");
    assert_eq!(extra.count("catamount", pid), 0, "{extra:?}");
    assert_eq!(extra.count("systemd", 1), 1, "{extra:?}");
    assert!(
        sb.run(&["test", "-S", "/run/cat3/extra.sock"])
            .status
            .success(),
        "the socket file is gone\n{}",
        sb.journal(svc)
    );
    assert_eq!(
        sb.show(sock, "Listen"),
        "127.0.0.1:8080 (Stream)\n/run/cat3/extra.sock (Stream)"
    );
    assert_eq!(sb.show(sock, "ActiveState"), "active");

    // Nor does a stop remove it.
    sb.systemctl_ok(&["stop", svc]);
    assert!(sb
        .run(&["test", "-S", "/run/cat3/extra.sock"])
        .status
        .success());
    assert_eq!(sb.show(sock, "SubState"), "listening");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 4. The watchdog: pings while healthy, a kill and a restart when hung.

fn a_hung_service_is_killed_by_the_watchdog_and_restarted(systemd: Systemd) {
    let fx = Fixture::new("watchdog");
    // RestartSec=1 keeps the failed state (Result=watchdog) visible for a
    // second before the restart; LimitCORE=0: SIGABRT dumps no core.
    fx.unit(
        "cat4.service",
        "[Service]\n\
         Type=notify\n\
         ExecStart={BIN} -b tcp://127.0.0.1:8080 {WWW}\n\
         WatchdogSec=1\n\
         Restart=on-failure\n\
         RestartSec=1\n\
         LimitCORE=0\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "cat4.service";

    sb.systemctl_ok(&["start", svc]);
    let pid = wait_running_pid(&sb, svc, 0);
    assert_eq!(sb.show(svc, "WatchdogUSec"), "1s");
    // WatchdogTimestamp is the time of the last WATCHDOG=1: see it move
    // (the ping with READY=1 and two more) while the service stays up with
    // the same pid. (How far apart: the test above.)
    watchdog_pings(&sb, svc, pid, 3, Duration::from_secs(5));
    assert_eq!(sb.show(svc, "NRestarts"), "0");
    assert_serves(&sb, svc, "127.0.0.1:8080", || get_tcp(&sb, 8080));

    // Hang it: no more pings, and after 1 s systemd kills it.
    let stop = sb.run(&["kill", "-STOP", &pid.to_string()]);
    assert!(stop.status.success(), "kill -STOP: {stop:?}");
    sb.wait_for(
        "Result=watchdog while waiting to restart",
        STATE_TIMEOUT,
        || show_many(&sb, svc, &["SubState", "Result"]) == ["auto-restart", "watchdog"],
    );
    sb.wait_for_journal(svc, "Watchdog timeout (limit 1s)!", STATE_TIMEOUT);
    let journal = sb.journal(svc);
    assert!(
        journal.contains(&format!(
            "Killing process {pid} (catamount) with signal SIGABRT"
        )),
        "{journal}"
    );

    let new = wait_running_pid(&sb, svc, pid);
    assert_eq!(sb.show(svc, "NRestarts"), "1");
    assert_eq!(sb.show(svc, "Result"), "success");
    assert_serves(&sb, svc, "127.0.0.1:8080 after the restart", || {
        get_tcp(&sb, 8080)
    });
    eprintln!("watchdog: pid {pid} killed, pid {new} serving");
    fx.done(sb);
}

/// The monotonic times (µs) of the next `n` WATCHDOG=1 systemd receives
/// from `unit`, whose main pid must stay `pid` meanwhile; the first is the
/// last one received before the call.
fn watchdog_pings(sb: &Sandbox, unit: &str, pid: u32, n: usize, timeout: Duration) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    sb.wait_for(&format!("{n} watchdog pings from {unit}"), timeout, || {
        let v = show_many(sb, unit, &["WatchdogTimestampMonotonic", "MainPID"]);
        if v[1] != pid.to_string() {
            let journal = sb.run(&[
                "journalctl",
                "--no-pager",
                "--output=short-monotonic",
                "--unit",
                unit,
            ]);
            panic!(
                "{unit}: main pid {pid} gone (MainPID={}) while healthy, after pings at {seen:?} us\n{}",
                v[1],
                tail(&text(&journal.stdout), 30)
            );
        }
        let t: u64 = v[0].parse().unwrap_or(0);
        if t != 0 && seen.last() != Some(&t) {
            seen.push(t);
        }
        seen.len() >= n
    });
    seen
}

/// sd_watchdog_enabled(3): ping every half period, the first with READY=1.
/// systemd fires its watchdog timer up to 250 ms (sd-event's default
/// accuracy) after the period ends, so a gap of a whole period is killed
/// or not by chance; anything up to three quarters of it is safe.
fn watchdog_pings_come_every_half_period_from_the_start(systemd: Systemd) {
    let fx = Fixture::new("watchdog-pings");
    fx.unit(
        "pings.service",
        "[Service]\n\
         Type=notify\n\
         ExecStart={BIN} -b tcp://127.0.0.1:8080 {WWW}\n\
         WatchdogSec=1\n\
         LimitCORE=0\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "pings.service";

    sb.systemctl_ok(&["start", svc]);
    // `start` returned after READY=1 (with its WATCHDOG=1): the first ping
    // seen is that one, and the gaps after it are the ones that matter.
    let pid = wait_running_pid(&sb, svc, 0);
    let pings = watchdog_pings(&sb, svc, pid, 5, Duration::from_secs(5));
    let gaps: Vec<u64> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("watchdog pings {gaps:?} us apart (WatchdogSec=1)");
    assert!(
        gaps.iter().all(|&g| g <= 750_000),
        "a gap between watchdog pings exceeds 3/4 of WatchdogSec=1: {gaps:?} us \
         (the first is from READY=1 to the next ping)\n{}",
        sb.journal(svc)
    );
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 5. `systemctl restart` under load, with the shipped socket unit.

/// The config file used with the shipped units: the docroot, and a bind
/// that `--bind-to-activated-sockets=only` must ignore.
fn shipped_config(fx: &Fixture) -> PathBuf {
    fx.file(
        "catamount.rb",
        &format!(
            "directory \"{}\"\nbind \"tcp://127.0.0.1:7000\"\n",
            fx.www.display()
        ),
    )
}

const SHIPPED_TCP: &str = "tcp:127.0.0.1:9292";
const SHIPPED_UNIX: &str = "unix:/run/catamount/catamount.sock";

fn systemctl_restart_under_load_with_the_socket_unit_fails_no_request(systemd: Systemd) {
    let fx = Fixture::new("restart-socket");
    let config = shipped_config(&fx);
    fx.shipped("catamount.socket", &config);
    fx.shipped("catamount.service", &config);
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "catamount.service";

    sb.systemctl_ok(&["start", "catamount.socket", svc]);
    let mut pid = wait_running_pid(&sb, svc, 0);
    assert_serves(&sb, svc, "0.0.0.0:9292", || get_tcp(&sb, 9292));
    let Some(mut load) = Load::start(&sb, &fx, &[SHIPPED_TCP, SHIPPED_UNIX]) else {
        return;
    };
    load.wait_ok(&sb, LOAD_STEP, "before the first restart");
    for round in 1..=RESTARTS {
        let before = load.progress().0;
        sb.systemctl_ok(&["restart", svc]);
        let during = load.progress().0 - before;
        let new = wait_running_pid(&sb, svc, pid);
        let after = load.progress().0;
        load.wait_ok(&sb, after + LOAD_STEP, &format!("after restart {round}"));
        eprintln!("restart {round}: pid {pid} -> {new}, {during} requests served while systemctl restart ran");
        pid = new;
    }
    let report = load.finish();
    assert_eq!(sb.show(svc, "NRestarts"), "0");
    assert_serves(&sb, svc, "0.0.0.0:9292 after the restarts", || {
        get_tcp(&sb, 9292)
    });
    // Last, so that a failure here comes after every other check.
    assert_no_failed_requests(&sb, svc, &report, "systemctl restart (socket unit)");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 6. `systemctl restart` under load without a socket unit: the fd store.

fn systemctl_restart_under_load_with_the_fd_store_fails_no_request(systemd: Systemd) {
    let fx = Fixture::new("restart-fdstore");
    fx.unit(
        "cat6.service",
        "[Service]\n\
         Type=notify\n\
         ExecStart={BIN} --fd-store -b tcp://127.0.0.1:8080 -b unix:///run/cat6/cat6.sock {WWW}\n\
         FileDescriptorStoreMax=4\n\
         RuntimeDirectory=cat6\n\
         RuntimeDirectoryPreserve=restart\n",
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "cat6.service";
    let sock = "/run/cat6/cat6.sock";

    sb.systemctl_ok(&["start", svc]);
    let mut pid = wait_running_pid(&sb, svc, 0);
    wait_journal_count(&sb, pid, "in the systemd fd store", 2);
    let log = sb.journal_of_pid(pid);
    assert!(
        log.contains("* Stored http://127.0.0.1:8080 in the systemd fd store")
            && log.contains(&format!("* Stored unix://{sock} in the systemd fd store")),
        "{log}"
    );
    sb.wait_for_property(svc, "NFileDescriptorStore", "2", STATE_TIMEOUT);
    // One listener each, held by catamount and once by systemd's store.
    let tcp = tcp_holders(&sb, 8080);
    let unix = unix_holders(&sb, sock);
    for h in [&tcp, &unix] {
        assert_eq!(
            (
                h.count("systemd", 1),
                h.count("catamount", pid),
                h.users.len()
            ),
            (1, 1, 2),
            "{h:?}"
        );
    }
    assert_serves(&sb, svc, "127.0.0.1:8080", || get_tcp(&sb, 8080));
    assert_serves(&sb, svc, sock, || get_unix(&sb, sock));

    let Some(mut load) = Load::start(&sb, &fx, &["tcp:127.0.0.1:8080", &format!("unix:{sock}")])
    else {
        return;
    };
    load.wait_ok(&sb, LOAD_STEP, "before the first restart");
    for round in 1..=RESTARTS {
        sb.systemctl_ok(&["restart", svc]);
        let new = wait_running_pid(&sb, svc, pid);
        let after = load.progress().0;
        load.wait_ok(&sb, after + LOAD_STEP, &format!("after restart {round}"));
        // The same sockets came back from the store, once each, and went
        // back in without piling up copies.
        wait_journal_count(&sb, new, "in the systemd fd store", 2);
        let log = sb.journal_of_pid(new);
        assert_eq!(log.matches("* Inherited ").count(), 2, "{log}");
        assert!(
            log.contains("* Inherited tcp://127.0.0.1:8080")
                && log.contains(&format!("* Inherited unix://{sock}"))
                && !log.contains("Closing unused"),
            "{log}"
        );
        assert_eq!(sb.show(svc, "NFileDescriptorStore"), "2");
        let (t, u) = (tcp_holders(&sb, 8080), unix_holders(&sb, sock));
        for (h, first) in [(&t, &tcp), (&u, &unix)] {
            assert_eq!(h.inode, first.inode, "a new socket: {h:?} vs {first:?}");
            assert_eq!(
                (
                    h.count("systemd", 1),
                    h.count("catamount", new),
                    h.users.len()
                ),
                (1, 1, 2),
                "restart {round}: {h:?}"
            );
        }
        eprintln!("fd store restart {round}: pid {pid} -> {new}");
        pid = new;
    }
    let report = load.finish();

    // systemd 252 empties the store on a full stop (no restart job queued),
    // so a stop and start binds afresh (replacing the stale socket file).
    sb.systemctl_ok(&["stop", svc]);
    assert_eq!(sb.show(svc, "NFileDescriptorStore"), "0");
    sb.systemctl_ok(&["start", svc]);
    assert_serves(&sb, svc, "127.0.0.1:8080 after stop and start", || {
        get_tcp(&sb, 8080)
    });
    assert_serves(&sb, svc, "the unix socket after stop and start", || {
        get_unix(&sb, sock)
    });
    assert_eq!(sb.show(svc, "NFileDescriptorStore"), "2");
    // Last, so that a failure here comes after every other check.
    assert_no_failed_requests(&sb, svc, &report, "systemctl restart (fd store)");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 7. Hot restart (USR2) and `systemctl reload` (HUP) under load, `only` mode.

fn hot_restart_and_reload_under_load_in_only_mode_keep_pid_and_sockets(systemd: Systemd) {
    let fx = Fixture::new("hot-restart");
    let config = shipped_config(&fx);
    // A copy of the binary, to upgrade it in place (a package update
    // replaces the file: a new inode at the same path).
    let bin = fx.dir.path().join("catamount");
    fs::copy(BIN, &bin).expect("copy the binary");
    fx.shipped("catamount.socket", &config);
    fx.shipped_with("catamount.service", &config, &bin);
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "catamount.service";
    let starting = "starting in single mode";

    sb.systemctl_ok(&["start", "catamount.socket", svc]);
    let pid = wait_running_pid(&sb, svc, 0);
    assert_serves(&sb, svc, "0.0.0.0:9292", || get_tcp(&sb, 9292));
    assert_refused(&sb, 7000);
    let Some(mut load) = Load::start(&sb, &fx, &[SHIPPED_TCP, SHIPPED_UNIX]) else {
        return;
    };
    load.wait_ok(&sb, LOAD_STEP, "before the first hot restart");
    let mut images = 1;
    for round in 1..=RESTARTS + 1 {
        let exe = format!("/proc/{pid}/exe");
        if round == 2 {
            let new = fx.dir.path().join("catamount.new");
            fs::copy(BIN, &new).expect("copy the binary");
            fs::rename(&new, &bin).expect("replace the binary");
            let link = text(&sb.run(&["readlink", &exe]).stdout);
            assert!(link.trim_end().ends_with(" (deleted)"), "{link}");
        }
        let what = if round <= RESTARTS {
            sb.systemctl_ok(&["kill", "-s", "USR2", "--kill-who=main", svc]);
            "USR2"
        } else {
            // ExecReload=/bin/kill -HUP $MAINPID: the same restart.
            sb.systemctl_ok(&["reload", svc]);
            "reload"
        };
        images += 1;
        wait_journal_count(&sb, pid, starting, images);
        wait_journal_count(&sb, pid, "Use Ctrl-C to stop", images);
        // RELOADING=1 ... READY=1 brings the unit back to running.
        sb.wait_for(
            &format!("{svc} running after {what} {round}"),
            STATE_TIMEOUT,
            || show_many(&sb, svc, &["ActiveState", "SubState"]) == ["active", "running"],
        );
        assert_eq!(sb.main_pid(svc), pid, "{what} changed the MainPID");
        // The image running is the file now at the path (after round 2:
        // the upgraded binary, not the deleted one).
        let link = text(&sb.run(&["readlink", &exe]).stdout);
        assert_eq!(link.trim_end(), bin.to_str().unwrap(), "{what} {round}");
        let after = load.progress().0;
        load.wait_ok(&sb, after + LOAD_STEP, &format!("after {what} {round}"));
    }
    let report = load.finish();

    // Still the activated sockets alone, in every image.
    assert_eq!(sb.main_pid(svc), pid);
    assert_eq!(sb.show(svc, "NRestarts"), "0");
    assert_serves(&sb, svc, "0.0.0.0:9292", || get_tcp(&sb, 9292));
    assert_serves(&sb, svc, "the unix socket", || {
        get_unix(&sb, "/run/catamount/catamount.sock")
    });
    assert_refused(&sb, 7000);
    let log = sb.journal_of_pid(pid);
    assert_eq!(
        log.matches("* Activated tcp://0.0.0.0:9292").count(),
        images,
        "{log}"
    );
    assert!(
        !log.contains("7000") && !log.contains("Closing unused"),
        "{log}"
    );

    // A reload with a broken config file fails: ExecReload= runs
    // `catamount --check` first, which exits 2 with the reason, and the
    // server is not signalled.
    fs::write(&config, "directory \"/nonexistent\"\nthraeds 0, 16\n").expect("break config");
    let out = sb.systemctl(&["reload", svc]);
    assert!(!out.status.success(), "reload of a broken config: {out:?}");
    sb.wait_for_journal(svc, "unknown directive \"thraeds\"", STATE_TIMEOUT);
    assert_eq!(count_in_journal(&sb, pid, "refused"), 0);
    // A SIGHUP from elsewhere is refused by the server itself: the old
    // image keeps serving, and READY=1 ends the reload all the same.
    sb.systemctl_ok(&["kill", "-s", "HUP", "--kill-who=main", svc]);
    wait_journal_count(
        &sb,
        pid,
        "! reload (SIGHUP) refused, still serving with the old configuration:",
        1,
    );
    sb.wait_for(
        &format!("{svc} running after a refused reload"),
        STATE_TIMEOUT,
        || show_many(&sb, svc, &["ActiveState", "SubState"]) == ["active", "running"],
    );
    assert_eq!(sb.main_pid(svc), pid);
    assert_eq!(count_in_journal(&sb, pid, starting), images);
    let refused = sb.show(svc, "StatusText");
    assert_serves(&sb, svc, "0.0.0.0:9292 after a refused reload", || {
        get_tcp(&sb, 9292)
    });
    // The refusal stays in the status while it follows the requests.
    sb.wait_for("StatusText to count the request", STATE_TIMEOUT, || {
        sb.show(svc, "StatusText") != refused
    });
    let status = sb.show(svc, "StatusText");
    assert!(
        status.contains("; last reload refused: ") && status.contains("thraeds"),
        "{status}"
    );
    // journald read each line's priority (JOURNAL_STREAM): the warning is
    // there at -p warning, the info lines are not.
    let filter = format!("_PID={pid}");
    let warnings = sb.run(&[
        "journalctl",
        "--no-pager",
        "--output=cat",
        "--priority=warning",
        &filter,
    ]);
    let warnings = text(&warnings.stdout);
    assert!(
        warnings.contains("! reload (SIGHUP) refused, still serving with the old configuration:"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("* Activated") && !warnings.contains("Use Ctrl-C"),
        "{warnings}"
    );
    // The copy of the binary is of no use for a post-mortem.
    let _ = fs::remove_file(&bin);
    // Last, so that a failure here comes after every other check.
    assert_no_failed_requests(&sb, svc, &report, "hot restarts (USR2) and a reload");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 8. A bad config file: the start fails, and systemd shows why.

fn a_bad_config_fails_the_start_and_systemd_shows_the_reason(systemd: Systemd) {
    let fx = Fixture::new("bad-config");
    let config = fx.file(
        "bad.rb",
        "threads 0, 5\nbind \"tcp://127.0.0.1:8080\"\nthraeds 0, 16\n",
    );
    fx.unit(
        "cat8.service",
        &format!(
            "[Service]\n\
             Type=notify\n\
             ExecStart={{BIN}} -C {} {{WWW}}\n",
            quoted(&config)
        ),
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "cat8.service";

    let out = sb.systemctl(&["start", svc]);
    assert!(!out.status.success(), "start succeeded: {out:?}");
    let v = show_many(
        &sb,
        svc,
        &[
            "ActiveState",
            "Result",
            "ExecMainStatus",
            "StatusErrno",
            "StatusText",
        ],
    );
    assert_eq!(
        &v[..4],
        ["failed", "exit-code", "2", "22"],
        "{v:?}\n{}",
        sb.journal(svc)
    );
    let reason = format!(
        "bad configuration: {}:3: unknown directive \"thraeds\" (did you mean threads?)",
        config.display()
    );
    assert!(v[4].starts_with(&reason), "StatusText: {:?}", v[4]);
    let status = text(&sb.systemctl(&["status", svc]).stdout);
    assert!(
        status.contains(&format!("Status: \"{reason}")),
        "systemctl status:\n{status}"
    );
    sb.wait_for_journal(
        svc,
        &format!("catamount: {}:3:", config.display()),
        STATE_TIMEOUT,
    );
    assert_refused(&sb, 8080);
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 8b. A config typo, then `systemctl reload` and `systemctl restart`, with
// the shipped units (issue 12).

fn a_config_typo_fails_the_restart_once_and_the_socket_keeps_listening(systemd: Systemd) {
    let fx = Fixture::new("typo");
    let config = shipped_config(&fx);
    fx.shipped("catamount.socket", &config);
    fx.shipped("catamount.service", &config);
    let Some(sb) = fx.boot(systemd) else { return };
    let (svc, sock) = ("catamount.service", "catamount.socket");
    sb.systemctl_ok(&["start", sock, svc]);
    let pid = wait_running_pid(&sb, svc, 0);
    assert_serves(&sb, svc, "0.0.0.0:9292", || get_tcp(&sb, 9292));
    let good = fs::read_to_string(&config).expect("read the config");
    fs::write(&config, format!("{good}thraeds 0, 16\n")).expect("break the config");
    let typo = "unknown directive \"thraeds\"";

    // `systemctl reload`: ExecReload= checks first, fails with the reason,
    // and the server is not signalled.
    let out = sb.systemctl(&["reload", svc]);
    assert!(!out.status.success(), "reload with a typo: {out:?}");
    sb.wait_for_journal(svc, typo, STATE_TIMEOUT);
    assert_eq!(sb.main_pid(svc), pid);
    assert_eq!(count_in_journal(&sb, pid, "refused"), 0);
    assert_serves(&sb, svc, "0.0.0.0:9292 after the failed reload", || {
        get_tcp(&sb, 9292)
    });

    // `systemctl restart`: the new process exits 2, once. No restart
    // loop (RestartPreventExitStatus=2), so no start limit, and the socket
    // unit is listening again, ready for a fixed config.
    let out = sb.systemctl(&["restart", svc]);
    assert!(!out.status.success(), "restart with a typo: {out:?}");
    let v = show_many(
        &sb,
        svc,
        &[
            "ActiveState",
            "SubState",
            "Result",
            "ExecMainStatus",
            "NRestarts",
        ],
    );
    assert_eq!(
        v,
        ["failed", "failed", "exit-code", "2", "0"],
        "{}",
        tail(&sb.journal(svc), 20)
    );
    assert_eq!(
        show_many(&sb, sock, &["ActiveState", "SubState", "Result"]),
        ["active", "listening", "success"]
    );
    let status = text(&sb.systemctl(&["status", svc]).stdout);
    assert!(
        status.contains(&format!(
            "Status: \"bad configuration: {}:3: {typo}",
            config.display()
        )),
        "systemctl status:\n{status}"
    );

    // What systemd does with a client meanwhile (README, "A start that
    // fails"): the connection starts the service, which fails; the
    // connection still waits, so the socket starts it again, until the
    // start limit (5 in 10 s) fails the socket unit too. Then connections
    // are refused until the config is fixed and both units are reset.
    let out = get_tcp(&sb, 9292);
    assert!(
        !out.status.success(),
        "answered with a broken config: {out:?}"
    );
    sb.wait_for(
        "catamount.socket failed with service-start-limit-hit",
        STATE_TIMEOUT,
        || {
            show_many(&sb, sock, &["ActiveState", "Result"])
                == ["failed", "service-start-limit-hit"]
        },
    );
    assert_refused(&sb, 9292);

    fs::write(&config, &good).expect("fix the config");
    let check = sb.run(&[BIN, "--check", "-C", config.to_str().expect("UTF-8 path")]);
    assert!(check.status.success(), "{check:?}");
    sb.systemctl_ok(&["reset-failed", svc, sock]);
    // Requires=catamount.socket starts the socket unit again.
    sb.systemctl_ok(&["restart", svc]);
    assert_serves(&sb, svc, "0.0.0.0:9292 after the fix", || {
        get_tcp(&sb, 9292)
    });
    assert_eq!(
        show_many(&sb, sock, &["ActiveState", "SubState"]),
        ["active", "running"]
    );
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 9. Wrapper scripts must exec catamount (LISTEN_PID, NotifyAccess=main).

fn a_wrapper_script_must_exec_catamount(systemd: Systemd) {
    let fx = Fixture::new("wrapper");
    let script = |name: &str, exec: &str| {
        let path = fx.file(
            name,
            &format!(
                "#!/bin/sh\n# a wrapper, as a deployment might have\ncd /\n{exec}{} -b tcp://127.0.0.1:$1 {}\nexit $?\n",
                quoted(Path::new(BIN)),
                quoted(&fx.www)
            ),
        );
        let mut perm = fs::metadata(&path).expect("stat script").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&path, perm).expect("chmod script");
        path
    };
    let good = script("good-wrapper", "exec ");
    let bad = script("bad-wrapper", "");
    for (name, port, wrapper) in [("good", 8080, &good), ("bad", 8081, &bad)] {
        fx.unit(
            &format!("{name}.socket"),
            &format!("[Socket]\nListenStream=127.0.0.1:{port}\n"),
        );
        fx.unit(
            &format!("{name}.service"),
            &format!(
                "[Unit]\n\
                 Requires={name}.socket\n\
                 After={name}.socket\n\
                 \n\
                 [Service]\n\
                 Type=notify\n\
                 ExecStart={} {port}\n",
                quoted(wrapper)
            ),
        );
    }
    let Some(sb) = fx.boot(systemd) else { return };

    // exec: catamount is the main process, LISTEN_PID is its pid.
    sb.systemctl_ok(&["start", "good.service"]);
    assert_serves(&sb, "good.service", "the activated socket via exec", || {
        get_tcp(&sb, 8080)
    });
    let pid = sb.main_pid("good.service");
    wait_journal_count(&sb, pid, "* Activated tcp://127.0.0.1:8080", 1);

    // No exec: the shell is the main process; catamount, its child, sees
    // LISTEN_PID of the shell, ignores the sockets and binds the address
    // itself, which systemd holds: the start fails.
    let out = sb.systemctl(&["start", "bad.service"]);
    assert!(!out.status.success(), "start succeeded: {out:?}");
    assert_eq!(sb.show("bad.service", "Result"), "exit-code");
    sb.wait_for_journal(
        "bad.service",
        "catamount: error: bind tcp://127.0.0.1:8081",
        STATE_TIMEOUT,
    );
    let journal = sb.journal("bad.service");
    assert!(journal.contains("Address already in use"), "{journal}");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// systemd 254 only. 12. Type=notify-reload: `systemctl reload` waits for the
// reload, keeps the pid, and fails when catamount refuses the new config.

fn notify_reload_waits_keeps_the_pid_and_fails_a_refused_reload(systemd: Systemd) {
    let fx = Fixture::new("notify-reload");
    let www = fx.www.display().to_string();
    let config = fx.file(
        "catamount.rb",
        &format!("directory \"{www}\"\nthreads 0, 5\n"),
    );
    fx.shipped("catamount.socket", &config);
    // As README says: installed under the name the socket unit starts.
    fx.shipped_as(
        "catamount-reload.service",
        "catamount.service",
        &config,
        Path::new(BIN),
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "catamount.service";
    sb.systemctl_ok(&["start", "catamount.socket", svc]);
    let pid = wait_running_pid(&sb, svc, 0);
    assert_eq!(sb.show(svc, "Type"), "notify-reload");
    let Some(mut load) = Load::start(&sb, &fx, &[SHIPPED_TCP, SHIPPED_UNIX]) else {
        return;
    };
    load.wait_ok(&sb, LOAD_STEP, "before the reload");

    // A good change: when `systemctl reload` returns, the new process has
    // already said READY=1 with the new thread count (synchronous), and it
    // is the same process.
    fs::write(&config, format!("directory \"{www}\"\nthreads 0, 7\n")).expect("edit config");
    sb.systemctl_ok(&["reload", svc]);
    let v = show_many(
        &sb,
        svc,
        &["StatusText", "MainPID", "ReloadResult", "ActiveState"],
    );
    assert!(
        v[0].contains("/7 threads busy") && !v[0].contains("refused"),
        "status right after reload returned: {v:?}"
    );
    assert_eq!(
        (v[1].as_str(), v[2].as_str(), v[3].as_str()),
        (pid.to_string().as_str(), "success", "active")
    );
    let after = load.progress().0;
    load.wait_ok(&sb, after + LOAD_STEP, "after the reload");

    // A typo: catamount refuses and keeps serving the old config; the
    // reload fails where the operator sees it.
    fs::write(&config, format!("directory \"{www}\"\nthraeds 0, 9\n")).expect("edit config");
    let out = sb.systemctl(&["reload", svc]);
    assert!(
        !out.status.success(),
        "systemctl reload of a typo succeeded: {out:?}"
    );
    let v = show_many(
        &sb,
        svc,
        &["ReloadResult", "ActiveState", "SubState", "MainPID"],
    );
    assert_eq!(
        v,
        ["exit-code", "active", "running", &pid.to_string()],
        "after the refused reload"
    );
    sb.wait_for("the refusal in STATUS=", STATE_TIMEOUT, || {
        let status = sb.show(svc, "StatusText");
        status.contains("/7 threads busy")
            && status.contains("last reload refused:")
            && status.contains("thraeds")
    });
    let after = load.progress().0;
    load.wait_ok(&sb, after + LOAD_STEP, "after the refused reload");

    // Fixed: the next reload succeeds again and the refusal is gone.
    fs::write(&config, format!("directory \"{www}\"\nthreads 0, 5\n")).expect("edit config");
    sb.systemctl_ok(&["reload", svc]);
    let v = show_many(&sb, svc, &["StatusText", "MainPID", "ReloadResult"]);
    assert!(
        v[0].contains("/5 threads busy") && !v[0].contains("refused"),
        "{v:?}"
    );
    assert_eq!(
        (v[1].as_str(), v[2].as_str()),
        (pid.to_string().as_str(), "success")
    );
    assert_eq!(sb.show(svc, "NRestarts"), "0");
    let report = load.finish();
    assert_no_failed_requests(&sb, svc, &report, "notify-reload reloads");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// systemd 254 only. 13. FileDescriptorStorePreserve=yes: the shipped fd-store
// unit's listeners survive `systemctl stop` + `start`; connections made
// while it is stopped wait in the backlog and are answered after the start.

/// Connections waiting in the accept queues of the TCP listener on `port`
/// and the unix listener at `path` (`ss`'s Recv-Q for a listening socket,
/// the column after its state).
fn accept_queue(sb: &Sandbox, port: u16, path: &str) -> u32 {
    let tcp = format!("sport = :{port}");
    [
        sb.run(&["ss", "-Hltn", &tcp]),
        sb.run(&["ss", "-Hlx", "src", path]),
    ]
    .iter()
    .map(|out| {
        let line = text(&out.stdout);
        let mut words = line.split_whitespace();
        words.find(|w| *w == "LISTEN");
        words.next().and_then(|q| q.parse().ok()).unwrap_or(0)
    })
    .sum()
}

fn fd_store_preserve_keeps_the_listeners_across_stop_and_start(systemd: Systemd) {
    let fx = Fixture::new("fdstore-preserve");
    let sock = "/run/catamount-fdstore/catamount.sock";
    let config = fx.file(
        "catamount.rb",
        &format!(
            "directory \"{}\"\nbind \"tcp://127.0.0.1:9292\"\nbind \"unix://{sock}\"\n",
            fx.www.display()
        ),
    );
    fx.shipped("catamount-fdstore.service", &config);
    // Stands for multi-user.target wanting the enabled unit: systemd keeps
    // a preserved store only while the unit stays loaded, and unloads a
    // stopped unit that nothing references (measured: "Collecting",
    // "Releasing all stored fds").
    fx.unit("hold.target", "[Unit]\nWants=catamount-fdstore.service\n");
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "catamount-fdstore.service";
    sb.systemctl_ok(&["start", "hold.target"]);
    let pid = wait_running_pid(&sb, svc, 0);
    sb.wait_for_property(svc, "NFileDescriptorStore", "2", STATE_TIMEOUT);
    let (tcp, unix) = (tcp_holders(&sb, 9292), unix_holders(&sb, sock));
    let Some(mut load) = Load::start(&sb, &fx, &[SHIPPED_TCP, &format!("unix:{sock}")]) else {
        return;
    };
    load.wait_ok(&sb, LOAD_STEP, "before the stop");

    sb.systemctl_ok(&["stop", svc]);
    assert_eq!(
        show_many(&sb, svc, &["ActiveState", "SubState"]),
        ["inactive", "dead-resources-pinned"]
    );
    // The store kept both listeners: systemd is their only holder now.
    assert_eq!(sb.show(svc, "NFileDescriptorStore"), "2");
    for (h, first) in [
        (tcp_holders(&sb, 9292), &tcp),
        (unix_holders(&sb, sock), &unix),
    ] {
        assert_eq!(h.inode, first.inode, "{h:?} vs {first:?}");
        assert_eq!(
            (h.count("systemd", 1), h.users.len()),
            (1, 1),
            "while stopped: {h:?}"
        );
    }
    // Clients keep connecting: their connections queue in the backlogs
    // (either one: each of the load client's connections takes the TCP
    // and the unix listener in turn, and all may be waiting on the unix
    // one).
    sb.wait_for(
        "connections waiting in the backlog while stopped",
        STATE_TIMEOUT,
        || accept_queue(&sb, 9292, sock) > 0,
    );
    let served = load.progress().0;

    sb.systemctl_ok(&["start", svc]);
    let new = wait_running_pid(&sb, svc, pid);
    load.wait_ok(&sb, served + LOAD_STEP, "after the start");
    let log = sb.journal_of_pid(new);
    assert!(
        log.contains("* Inherited tcp://127.0.0.1:9292")
            && log.contains(&format!("* Inherited unix://{sock}")),
        "{log}"
    );
    let h = tcp_holders(&sb, 9292);
    assert_eq!(h.inode, tcp.inode, "the same socket after start: {h:?}");
    let report = load.finish();
    assert_no_failed_requests(
        &sb,
        svc,
        &report,
        "systemctl stop + start (fd store preserved)",
    );
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 14. Credentials: the shipped catamount-tls units serve HTTPS with a key
// and a control token that only root can read, given as LoadCredential=.

fn credentials_give_a_root_only_key_and_token_to_the_dynamic_user(systemd: Systemd) {
    if !cfg!(feature = "tls") {
        // The build's choice, not the machine's: reported, never a failure.
        let test = thread::current().name().unwrap_or("?").to_owned();
        let reason = "catamount was built without the tls feature".to_owned();
        Skip { reason }.report(&test);
        return;
    }
    let fx = Fixture::new("credentials");
    if !Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip("openssl is not installed (needed for the test certificate)");
        return;
    }
    let dir = fx.dir.path();
    pki::init(dir, &["ca"]);
    pki::p256_key(dir, "tls");
    pki::leaf(dir, "tls", "server_ext", "ca", 4242);
    fs::rename(dir.join("tls.pem"), dir.join("tls.crt")).expect("rename the certificate");
    fs::write(dir.join("control-token"), "t0ken-from-a-credential\n").expect("write the token");
    // Root's alone: the service's dynamic user could not open these paths.
    for f in ["tls.key", "control-token"] {
        fs::set_permissions(dir.join(f), fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    }
    let config = fx.file(
        "catamount.rb",
        &format!("directory \"{}\"\n", fx.www.display()),
    );
    fx.shipped("catamount-tls.socket", &config);
    fx.shipped("catamount-tls.service", &config);
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "catamount-tls.service";
    sb.systemctl_ok(&["start", "catamount-tls.socket", svc]);
    let pid = wait_running_pid(&sb, svc, 0);

    // HTTPS on 443 with the credential's certificate.
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().expect("UTF-8 path");
    let out = sb.run(&[
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "5",
        "--cacert",
        ca,
        "https://127.0.0.1/hello.txt",
    ]);
    assert!(
        out.status.success() && text(&out.stdout) == HELLO,
        "HTTPS with the key from a credential: {out:?}\n{}",
        sb.journal(svc)
    );
    // The service user cannot read the key's own path (the test's premise),
    // and the key reached it through its private credentials directory.
    let user = sb.show(svc, "User");
    let probe = sb.run(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "cat",
        &format!("{}/tls.key", dir.display()),
    ]);
    assert!(
        !probe.status.success(),
        "the key is readable by an unprivileged user"
    );
    let creds = sb.run(&["ls", &format!("/run/credentials/{svc}")]);
    assert_eq!(
        text(&creds.stdout),
        "control-token\ntls.crt\ntls.key\n",
        "user {user}"
    );

    // The control app takes the token from the credential, never shown.
    let ctl = "/run/catamount-tls/control.sock";
    let stats = sb.curl_unix(ctl, "http://localhost/stats?token=t0ken-from-a-credential");
    assert!(
        stats.status.success(),
        "control app with the credential's token: {stats:?}"
    );
    let wrong = sb.curl_unix(ctl, "http://localhost/stats?token=wrong");
    assert!(
        !wrong.status.success(),
        "a wrong token was accepted: {wrong:?}"
    );
    let journal = sb.journal(svc);
    assert!(
        !journal.contains("t0ken-from-a-credential"),
        "the token was logged:\n{journal}"
    );
    let cmdline = sb.run(&["cat", &format!("/proc/{pid}/cmdline")]);
    assert!(
        !text(&cmdline.stdout).contains("t0ken"),
        "the token is on the command line"
    );

    // A reload (check first, then HUP) reads the credentials again.
    sb.systemctl_ok(&["reload", svc]);
    assert_eq!(sb.main_pid(svc), pid);
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// systemd 254 only. 15. OpenFile=: the key and certificate arrive as open
// files among LISTEN_FDS (after the socket), are never taken for
// listeners, and serve TLS through `key=fd://NAME` without the service
// ever opening the key's path.

fn open_file_descriptors_are_files_and_carry_the_tls_key(systemd: Systemd) {
    if !cfg!(feature = "tls") {
        // The build's choice, not the machine's: reported, never a failure.
        let test = thread::current().name().unwrap_or("?").to_owned();
        let reason = "catamount was built without the tls feature".to_owned();
        Skip { reason }.report(&test);
        return;
    }
    let fx = Fixture::new("openfile");
    if !Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip("openssl is not installed (needed for the test certificate)");
        return;
    }
    let dir = fx.dir.path();
    pki::init(dir, &["ca"]);
    pki::p256_key(dir, "tls");
    pki::leaf(dir, "tls", "server_ext", "ca", 4343);
    fs::set_permissions(dir.join("tls.key"), fs::Permissions::from_mode(0o600))
        .expect("chmod 0600");
    let key = dir.join("tls.key");
    let crt = dir.join("tls.pem");
    fx.unit(
        "of.socket",
        "[Socket]\nListenStream=127.0.0.1:8443\nFileDescriptorName=https\n",
    );
    fx.unit(
        "of.service",
        &format!(
            "[Unit]\nRequires=of.socket\nAfter=of.socket\n\
             [Service]\nType=notify\nDynamicUser=yes\n\
             OpenFile={}:tls-key\nOpenFile={}:tls-crt\n\
             ExecStart={{BIN}} --bind-to-activated-sockets=only \
             -b \"fd://https?cert=fd://tls-crt&key=fd://tls-key\" {{WWW}}\n{}",
            key.display(),
            crt.display(),
            fx.hidden_paths_bound_back(Path::new(BIN))
        ),
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let svc = "of.service";
    sb.systemctl_ok(&["start", "of.socket", svc]);
    wait_running_pid(&sb, svc, 0);
    let ca = dir.join("ca.pem");
    let out = sb.run(&[
        "curl",
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "5",
        "--cacert",
        ca.to_str().expect("UTF-8 path"),
        "https://127.0.0.1:8443/hello.txt",
    ]);
    let journal = sb.journal(svc);
    assert!(
        out.status.success() && text(&out.stdout) == HELLO,
        "HTTPS with the key from OpenFile=: {out:?}\n{journal}"
    );
    // One listener adopted; the two files neither listened on nor closed
    // as unused sockets.
    assert_eq!(journal.matches("* Activated ").count(), 1, "{journal}");
    assert!(!journal.contains("Closing unused"), "{journal}");
    fx.done(sb);
}

// ---------------------------------------------------------------------------
// 16. Scale to zero: catamount-idle.service exits when idle and the socket
// unit starts it again; sparse traffic loses no request across the exits.

/// The sparse client: `sparse.py TARGETS N MIN_GAP MAX_GAP TIMEOUT`: N
/// requests, one at a time, each after a random gap, taking TARGETS in
/// turn; prints `ok=N failed=M p50_ms=A p99_ms=B max_ms=C` and the
/// failures.
const SPARSE_CLIENT: &str = r#"
import random, socket, sys, time
targets, n = sys.argv[1].split(","), int(sys.argv[2])
lo, hi, timeout = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
request = b"GET /hello.txt HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n"
ok, errors, lat = 0, [], []
for i in range(n):
    time.sleep(random.uniform(lo, hi))
    t = targets[i % len(targets)]
    start = time.monotonic()
    try:
        if t.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(t[5:])
        else:
            host, port = t[4:].rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=timeout)
        with s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200 "):
            raise ValueError("unexpected %r" % data[:80])
        ok += 1
        lat.append(time.monotonic() - start)
    except Exception as e:
        errors.append("%d %s %s: %s" % (i, t, type(e).__name__, e))
lat.sort()
q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0
print("ok=%d failed=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f" % (ok, len(errors), q(0.5), q(0.99), q(1.0)))
for e in errors[:10]:
    print(e)
"#;

/// Requests of the sparse run, and their gaps: every gap is longer than
/// the test's idle timeout, so many requests reach a service that has
/// just exited or is exiting.
const SPARSE_REQUESTS: u32 = 60;
const SPARSE_GAP: (&str, &str) = ("0.2", "1.0");
const IDLE_TIMEOUT_TEST: &str = "0.15";

fn idle_exit_scales_to_zero_and_sparse_traffic_loses_nothing(systemd: Systemd) {
    let fx = Fixture::new("idle");
    let config = shipped_config(&fx);
    fx.shipped("catamount.socket", &config);
    // The shipped unit with a short idle timeout; and a start limit the
    // test's dense traffic cannot reach (the shipped one is checked in
    // systemd_sandbox.rs).
    let idle = format!("--idle-timeout {IDLE_TIMEOUT_TEST}");
    fx.shipped_edited(
        "catamount-idle.service",
        "catamount.service",
        &config,
        Path::new(BIN),
        &[
            ("--idle-timeout 60", &idle),
            ("StartLimitBurst=20", "StartLimitBurst=10000"),
        ],
    );
    let Some(sb) = fx.boot(systemd) else { return };
    let (svc, sock) = ("catamount.service", "catamount.socket");
    sb.systemctl_ok(&["start", sock]);
    assert_eq!(sb.show(svc, "ActiveState"), "inactive");

    // The first connection starts it; once idle it exits 0 and is
    // inactive (not failed); the socket stays listening.
    assert_serves(&sb, svc, "0.0.0.0:9292", || get_tcp(&sb, 9292));
    sb.wait_for("the idle exit", STATE_TIMEOUT, || {
        show_many(&sb, svc, &["ActiveState", "Result"]) == ["inactive", "success"]
    });
    let journal = sb.journal(svc);
    assert!(
        journal.contains(&format!(
            "- Idle for {IDLE_TIMEOUT_TEST}s: exiting (idle_timeout)"
        )),
        "{journal}"
    );
    assert_eq!(sb.show(sock, "ActiveState"), "active");
    // The next one starts it again.
    assert_serves(&sb, svc, "0.0.0.0:9292 after the idle exit", || {
        get_tcp(&sb, 9292)
    });

    // Sparse traffic: no request lost across the exits and starts.
    let script = fx.file("sparse.py", SPARSE_CLIENT);
    let out = sb.run(&[
        "python3",
        script.to_str().expect("UTF-8 path"),
        &format!("{SHIPPED_TCP},{SHIPPED_UNIX}"),
        &SPARSE_REQUESTS.to_string(),
        SPARSE_GAP.0,
        SPARSE_GAP.1,
        "30",
    ]);
    let report = text(&out.stdout);
    eprintln!("systemd {systemd:?}: sparse traffic with idle exits: {report}");
    let journal = sb.journal(svc);
    assert!(
        out.status.success() && report.starts_with(&format!("ok={SPARSE_REQUESTS} failed=0 ")),
        "{report}{}\n{journal}",
        text(&out.stderr)
    );
    let exits = journal.matches("- Idle for ").count();
    eprintln!("systemd {systemd:?}: {exits} idle exits during {SPARSE_REQUESTS} sparse requests");
    assert!(
        exits >= 3,
        "the service never went idle in between: {exits}\n{journal}"
    );
    assert_eq!(sb.show(sock, "ActiveState"), "active");
    assert!(!journal.contains("start-limit"), "{journal}");
    fx.done(sb);
}

on_both_systemds!(
    socket_activated_tcp_and_unix_with_notify_status_and_main_pid,
    only_mode_answers_on_the_activated_address_and_not_the_configured_one,
    an_unmatched_activated_unix_socket_is_closed_and_its_file_stays,
    a_hung_service_is_killed_by_the_watchdog_and_restarted,
    watchdog_pings_come_every_half_period_from_the_start,
    systemctl_restart_under_load_with_the_socket_unit_fails_no_request,
    systemctl_restart_under_load_with_the_fd_store_fails_no_request,
    hot_restart_and_reload_under_load_in_only_mode_keep_pid_and_sockets,
    a_bad_config_fails_the_start_and_systemd_shows_the_reason,
    a_config_typo_fails_the_restart_once_and_the_socket_keeps_listening,
    a_wrapper_script_must_exec_catamount,
    credentials_give_a_root_only_key_and_token_to_the_dynamic_user,
    idle_exit_scales_to_zero_and_sparse_traffic_loses_nothing;
    254:
    notify_reload_waits_keeps_the_pid_and_fails_a_refused_reload,
    fd_store_preserve_keeps_the_listeners_across_stop_and_start,
    open_file_descriptors_are_files_and_carry_the_tls_key,
);
