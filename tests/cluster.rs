//! Cluster mode end to end: the real binary with `-w N`, its master and
//! workers seen through their log lines and /proc, under continuous load
//! from real clients. Hot and phased restarts, reloads and resizing must
//! drop no request; a killed, hung or crash-looping worker is replaced
//! (with a backoff for the crash loop); workers die with their master; the
//! master never starts a thread.
//!
//! Every wait ends on an event (a log line, a /proc change, a number of
//! answered requests) or a deadline.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{
    assert_serves, deadline_in, example, get, request, send_signal, wait_until, Client, Server,
    TempDir, HELLO,
};

/// Client threads of the continuous load.
const LOAD_THREADS: usize = 4;
/// Each load thread pauses this long between requests, so that on a
/// two-CPU machine the server under test (and its log reader) still get
/// the CPU. It shapes the load; no test waits on it.
const LOAD_PACE: Duration = Duration::from_millis(2);
/// One load request's connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One load request's deadline for its whole response.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Requests that must succeed after an event before a test stops its load.
const AFTER_EVENT: u64 = 200;
/// How long a test waits for a restart, a replacement or a resize.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);
/// How long processes get to vanish.
const GONE_DEADLINE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------
// Continuous load
// ---------------------------------------------------------------------

/// A request of the load that did not get a full 200 with `hello.txt`.
#[derive(Debug, Clone)]
struct Failure {
    started: Instant,
    reason: String,
}

/// What the load saw.
#[derive(Debug)]
struct LoadReport {
    ok: u64,
    failures: Vec<Failure>,
}

impl LoadReport {
    /// Failures of requests started at or after `t`.
    fn failures_since(&self, t: Instant) -> Vec<&Failure> {
        self.failures.iter().filter(|f| f.started >= t).collect()
    }
}

/// Threads that each send `GET /hello.txt` on a new connection with
/// `Connection: close`, over and over, until stopped. New connections,
/// because a keep-alive connection that a draining worker closes between
/// two requests is a legitimate close that real clients retry; here every
/// failure counts.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Vec<Failure>>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match one_request(addr) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(reason) => {
                                failures.push(Failure { started, reason });
                            }
                        }
                        std::thread::sleep(LOAD_PACE);
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `n` requests started after this call have succeeded
    /// (the requests in flight now may count too, so it waits for that
    /// many more); false at the deadline.
    fn wait_more_ok(&self, n: u64, timeout: Duration) -> bool {
        let target = self.ok() + n + LOAD_THREADS as u64;
        wait_until(deadline_in(timeout), || self.ok() >= target)
    }

    /// Stops the threads (each finishes its request) and reports.
    fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures: Vec<Failure> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("a load thread panicked"))
            .collect();
        failures.sort_by_key(|f| f.started);
        LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            failures,
        }
    }
}

/// One request on a new connection; `Err` says what went wrong.
fn one_request(addr: SocketAddr) -> Result<(), String> {
    let s =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_write_timeout(Some(REQUEST_DEADLINE))
        .map_err(|e| format!("SO_SNDTIMEO: {e}"))?;
    let mut c = Client::new(s);
    c.try_send(b"GET /hello.txt HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let r = c
        .response_by("GET", deadline_in(REQUEST_DEADLINE))
        .map_err(|e| format!("read: {e}"))?;
    if r.status != 200 {
        return Err(format!("status {} {}", r.status, r.reason));
    }
    if r.text() != HELLO {
        return Err(format!("body {:?}", r.text()));
    }
    // The server closes first (Connection: close), so the TIME_WAIT
    // stays on its side and thousands of short connections do not use up
    // this side's ephemeral ports.
    c.wait_closed(deadline_in(REQUEST_DEADLINE))
        .map(|_| ())
        .map_err(|e| format!("after a full response: {e}"))
}

// ---------------------------------------------------------------------
// Processes, log lines, /proc
// ---------------------------------------------------------------------

/// Starts catamount with `-w workers`, `extra`, a default bind and a
/// fresh docroot (given explicitly: the harness would read the `2` of
/// `-w 2` as the DIR), and waits until every worker has booted.
fn start_cluster(workers: usize, extra: &[&str]) -> (Server, TempDir) {
    let docroot = TempDir::docroot();
    let n = workers.to_string();
    let root = docroot.path().to_string_lossy().into_owned();
    let mut args = vec!["-w", n.as_str()];
    args.extend_from_slice(extra);
    args.push(&root);
    let server = Server::start(&args);
    assert!(
        server.wait_for_line_count(" booted in ", workers, deadline_in(EVENT_DEADLINE)),
        "not every worker booted{}",
        logs(&server)
    );
    assert!(
        server
            .stdout()
            .contains(&format!("*   Master PID: {}\n", server.pid())),
        "no Master PID line with the master's pid{}",
        logs(&server)
    );
    (server, docroot)
}

/// The server's output, for assertion messages.
fn logs(s: &Server) -> String {
    format!("\n--- stdout:\n{}--- stderr:\n{}", s.stdout(), s.stderr())
}

/// `(index, pid)` of every `- Worker i (PID: n) booted` line, in order.
fn booted(log: &str) -> Vec<(usize, u32)> {
    log.lines()
        .filter(|l| l.contains(") booted in "))
        .filter_map(|l| {
            let rest = l.strip_prefix("- Worker ")?;
            let (index, rest) = rest.split_once(" (PID: ")?;
            let (pid, _) = rest.split_once(')')?;
            Some((index.parse().ok()?, pid.parse().ok()?))
        })
        .collect()
}

/// The newest booted worker of each index.
fn newest_workers(log: &str) -> BTreeMap<usize, u32> {
    booted(log).into_iter().collect()
}

/// How many times worker `index` has booted.
fn boots_of(log: &str, index: usize) -> usize {
    booted(log).iter().filter(|(i, _)| *i == index).count()
}

/// The children of `pid` (its single thread's), from
/// /proc/PID/task/PID/children. Zombies are listed until reaped.
fn children(pid: u32) -> BTreeSet<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The state letter of /proc/PID/stat (`R`, `S`, `T`, `Z`...), or None
/// when the process is gone (reaped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Gone entirely: exited and reaped.
fn gone(pid: u32) -> bool {
    proc_state(pid).is_none()
}

/// Exited, reaped or not (an orphan is reaped by whatever adopted it,
/// which in a container may be an init that never reaps).
fn dead(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// `Threads:` of /proc/PID/status.
fn threads_of(pid: u32) -> u64 {
    support::proc_status(pid).threads
}

/// Waits until `pid`'s children are exactly `want`; the last seen set on
/// failure.
fn wait_children(pid: u32, want: &BTreeSet<u32>, timeout: Duration) -> Result<(), BTreeSet<u32>> {
    let mut seen = BTreeSet::new();
    if wait_until(deadline_in(timeout), || {
        seen = children(pid);
        &seen == want
    }) {
        Ok(())
    } else {
        Err(seen)
    }
}

/// Waits until `pid` has no signal pending (neither its own nor its
/// thread group's): its handler has run, so a signal sent next reaches
/// the master's self-pipe after this one. Two standard signals pending
/// at once are delivered lowest number first, not in sending order.
fn wait_signal_taken(pid: u32) {
    let taken = wait_until(deadline_in(GONE_DEADLINE), || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
            .all(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|m| m.trim_start_matches('0').is_empty())
            })
    });
    assert!(taken, "process {pid} did not take its pending signal");
}

/// Stops the load, prints what it saw, and asserts that nothing failed.
fn assert_no_failures(load: Load, s: &Server, what: &str) -> LoadReport {
    let report = load.stop();
    eprintln!(
        "{what}: {} requests answered, {} failed",
        report.ok,
        report.failures.len()
    );
    assert!(
        report.failures.is_empty(),
        "{what}: {} of {} requests failed, e.g. {:#?}{}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        &report.failures[..report.failures.len().min(5)],
        logs(s)
    );
    report
}

// ---------------------------------------------------------------------
// Restarts and resizing under load: zero failed requests
// ---------------------------------------------------------------------

#[test]
fn hot_restart_under_load_keeps_the_master_pid_and_drops_nothing() {
    let (mut s, _root) = start_cluster(2, &[]);
    let master = s.pid();
    let old: BTreeSet<u32> = newest_workers(&s.stdout()).into_values().collect();
    assert_eq!(wait_children(master, &old, GONE_DEADLINE), Ok(()));

    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load before the restart{}",
        logs(&s)
    );
    s.signal("USR2");
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_line("* Inherited tcp://", d),
        "no `* Inherited` line{}",
        logs(&s)
    );
    assert!(
        s.wait_for_line_count(" booted in ", 4, d),
        "no new workers{}",
        logs(&s)
    );
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the restart{}",
        logs(&s)
    );
    assert_no_failures(load, &s, "hot restart");

    // Same master (exec in place), two new workers, the old ones reaped.
    let out = s.stdout();
    assert_eq!(
        out.matches(&format!("*   Master PID: {master}\n")).count(),
        2,
        "the re-executed master logs the same pid{}",
        logs(&s)
    );
    let new: BTreeSet<u32> = newest_workers(&out).into_values().collect();
    assert_eq!(new.len(), 2);
    assert!(new.is_disjoint(&old), "old {old:?}, new {new:?}");
    assert_eq!(
        wait_children(master, &new, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(
        old.iter().all(|&p| gone(p)),
        "old workers {old:?} not reaped"
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

/// USR1 (and HUP, which re-reads the config file) replace every worker,
/// one at a time, under load.
fn phased_restart_under_load(
    signal: &str,
    extra: &[&str],
    before: &dyn Fn(&Server),
) -> (Server, TempDir) {
    let (s, root) = start_cluster(2, extra);
    let master = s.pid();
    let old: BTreeSet<u32> = newest_workers(&s.stdout()).into_values().collect();
    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load before the restart{}",
        logs(&s)
    );
    before(&s);
    s.signal(signal);
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_line("- Starting phased worker restart, phase: 1\n", d),
        "no phased restart{}",
        logs(&s)
    );
    assert!(
        s.wait_for_line("- Phased restart complete, phase: 1\n", d),
        "the phased restart did not complete{}",
        logs(&s)
    );
    let out = s.stdout();
    let new: BTreeSet<u32> = newest_workers(&out).into_values().collect();
    let phase1 = out
        .lines()
        .filter(|l| l.contains(") booted in ") && l.ends_with(", phase: 1"))
        .count();
    assert_eq!(phase1, 2, "two workers booted in phase 1{}", logs(&s));
    assert!(
        new.is_disjoint(&old),
        "old {old:?}, new {new:?}{}",
        logs(&s)
    );
    assert_eq!(
        wait_children(master, &new, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the restart{}",
        logs(&s)
    );
    assert_no_failures(load, &s, &format!("phased restart ({signal})"));
    assert_eq!(s.pid(), master);
    assert!(
        old.iter().all(|&p| gone(p)),
        "old workers {old:?} not reaped"
    );
    (s, root)
}

#[test]
fn phased_restart_usr1_under_load_replaces_every_worker_and_drops_nothing() {
    let (mut s, _root) = phased_restart_under_load("USR1", &[], &|_| {});
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn hup_rereads_the_config_file_and_restarts_phased_under_load() {
    let dir = TempDir::new("cluster-hup");
    let file = dir.write("catamount.rb", "max_body 10\ncache_control \"max-age=1\"\n");
    let post = b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 20\r\n\r\n01234567890123456789";
    let (mut s, _root) = phased_restart_under_load("HUP", &["-C", &file], &|s| {
        assert_eq!(request(s.addr(), post).status, 413, "max_body 10 applies");
        assert_eq!(
            get(s.addr(), "/hello.txt").header("cache-control"),
            Some("max-age=1")
        );
        dir.write(
            "catamount.rb",
            "max_body 100\ncache_control \"max-age=2\"\n",
        );
    });
    // The new workers serve with the file as it is now: the server's
    // limits, and the static-file settings.
    let r = request(s.addr(), post);
    assert_eq!(
        r.status,
        405,
        "max_body 100 applies after HUP: {r:?}{}",
        logs(&s)
    );
    let r = get(s.addr(), "/hello.txt");
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=2"),
        "cache_control after HUP: {r:?}{}",
        logs(&s)
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn hup_after_ttin_replaces_every_worker_and_keeps_the_count() {
    let (mut s, _root) = start_cluster(2, &[]);
    let master = s.pid();
    s.signal("TTIN");
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_line("- Worker 2 (PID: ", d),
        "no worker 2{}",
        logs(&s)
    );
    let old: BTreeSet<u32> = newest_workers(&s.stdout()).into_values().collect();
    assert_eq!(
        wait_children(master, &old, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );

    // A reload keeps the count TTIN set (the file does not change it),
    // and a phased restart leaves no worker of the old phase behind.
    s.signal("HUP");
    assert!(
        s.wait_for_line("- Phased restart complete, phase: 1\n", d),
        "{}",
        logs(&s)
    );
    let now = newest_workers(&s.stdout());
    let stale: Vec<(usize, u32)> = now
        .iter()
        .filter(|(_, p)| old.contains(p))
        .map(|(i, p)| (*i, *p))
        .collect();
    assert!(
        stale.is_empty(),
        "workers (index, pid) {stale:?} were not replaced by the phased restart{}",
        logs(&s)
    );
    let new: BTreeSet<u32> = now.values().copied().collect();
    assert_eq!(new.len(), 3, "{}", logs(&s));
    assert_eq!(
        wait_children(master, &new, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn hup_that_changes_the_control_url_says_it_needs_a_hot_restart() {
    // A phased restart keeps the master's sockets: a changed control_url
    // (or bind) is not applied, and the log says so rather than nothing.
    let conf_dir = TempDir::new("phased-conf");
    let file = conf_dir.write("app.rb", "threads 1, 2\n");
    let (mut s, _root) = start_cluster(1, &["-C", &file]);
    let sock = conf_dir.path().join("ctl.sock");
    conf_dir.write(
        "app.rb",
        &format!(
            "threads 1, 2\ncontrol_url \"unix://{}\"\ncontrol_token \"t\"\n",
            sock.display()
        ),
    );
    s.signal("HUP");
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_stderr(
            "! reload (SIGHUP): control_url changed, which a phased restart cannot apply",
            d
        ),
        "{}",
        logs(&s)
    );
    assert!(
        s.wait_for_line("- Phased restart complete, phase: 1\n", d),
        "{}",
        logs(&s)
    );
    assert!(
        !sock.exists(),
        "the control socket was created by a phased restart"
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn ttin_adds_a_worker_and_ttou_removes_one_under_load_never_below_one() {
    let (mut s, _root) = start_cluster(2, &[]);
    let master = s.pid();
    let at_start = newest_workers(&s.stdout());
    let two: BTreeSet<u32> = at_start.values().copied().collect();
    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load{}",
        logs(&s)
    );

    s.signal("TTIN");
    let d = deadline_in(EVENT_DEADLINE);
    assert!(s.wait_for_line("- Worker count now 3\n", d), "{}", logs(&s));
    assert!(
        s.wait_for_line("- Worker 2 (PID: ", d),
        "no worker 2{}",
        logs(&s)
    );
    let third = newest_workers(&s.stdout())[&2];
    let three: BTreeSet<u32> = two.iter().copied().chain([third]).collect();
    assert_eq!(
        wait_children(master, &three, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load with 3 workers{}",
        logs(&s)
    );

    s.signal("TTOU");
    assert!(
        s.wait_for_line("- Worker count now 2\n", deadline_in(EVENT_DEADLINE)),
        "{}",
        logs(&s)
    );
    // The newest index goes; the two first workers stay as they were.
    assert_eq!(
        wait_children(master, &two, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(gone(third), "worker 2 ({third}) not reaped");
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load back at 2 workers{}",
        logs(&s)
    );
    assert_no_failures(load, &s, "TTIN/TTOU");

    // Down to 1, then a TTOU too many: nothing happens. The TTIN after
    // it is sent only once the TTOU was taken, so its line comes after
    // whatever the TTOU did.
    s.signal("TTOU");
    assert!(
        s.wait_for_line("- Worker count now 1\n", deadline_in(EVENT_DEADLINE)),
        "{}",
        logs(&s)
    );
    wait_signal_taken(master);
    s.signal("TTOU");
    assert!(
        s.wait_for_line(
            "- SIGTTOU: 1 worker is the least; none stopped\n",
            deadline_in(EVENT_DEADLINE)
        ),
        "a TTOU at one worker says why nothing happened{}",
        logs(&s)
    );
    wait_signal_taken(master);
    s.signal("TTIN");
    assert!(
        s.wait_for_line_count("- Worker count now 2\n", 2, deadline_in(EVENT_DEADLINE)),
        "{}",
        logs(&s)
    );
    assert!(!s.stdout().contains("- Worker count now 0"), "{}", logs(&s));
    // Worker 0 throughout, and a new worker 1.
    assert!(
        wait_until(deadline_in(EVENT_DEADLINE), || boots_of(&s.stdout(), 1)
            >= 2),
        "no new worker 1{}",
        logs(&s)
    );
    let now = newest_workers(&s.stdout());
    assert_eq!(now[&0], at_start[&0], "worker 0 was replaced");
    let want = BTreeSet::from([now[&0], now[&1]]);
    assert_eq!(
        wait_children(master, &want, GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert_serves(s.addr());
    assert!(s.stop().success(), "{}", logs(&s));
}

// ---------------------------------------------------------------------
// Workers that die, hang or cannot boot
// ---------------------------------------------------------------------

#[test]
fn a_killed_worker_loses_only_its_own_requests_and_is_replaced() {
    let (mut s, _root) = start_cluster(2, &["-t", "5:5"]);
    let master = s.pid();
    let before = newest_workers(&s.stdout());
    let (victim, other) = (before[&0], before[&1]);
    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load{}",
        logs(&s)
    );

    send_signal(victim, "KILL");
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_stderr(
            &format!("! Worker 0 (PID: {victim}) exited unexpectedly"),
            d
        ),
        "the master did not notice{}",
        logs(&s)
    );
    assert!(
        wait_until(d, || boots_of(&s.stdout(), 0) >= 2),
        "worker 0 was not replaced{}",
        logs(&s)
    );
    let replaced_at = Instant::now();
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the replacement{}",
        logs(&s)
    );
    let report = load.stop();
    eprintln!(
        "killed worker: {} answered, {} failed: {:?}",
        report.ok,
        report.failures.len(),
        report
            .failures
            .iter()
            .map(|f| &f.reason)
            .collect::<Vec<_>>()
    );
    // Only what the dead worker had accepted may fail: 5 threads plus
    // what its reactor held.
    assert!(
        report.failures.len() <= 10,
        "{:#?}{}",
        report.failures,
        logs(&s)
    );
    assert!(
        report.failures_since(replaced_at).is_empty(),
        "requests failed after the replacement booted: {:#?}{}",
        report.failures_since(replaced_at),
        logs(&s)
    );
    let new = newest_workers(&s.stdout())[&0];
    assert_ne!(new, victim);
    assert_eq!(
        wait_children(master, &BTreeSet::from([new, other]), GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(gone(victim), "the killed worker {victim} was not reaped");
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn a_hung_worker_is_killed_after_worker_timeout_and_replaced() {
    let (mut s, _root) = start_cluster(2, &["-t", "5:5", "--worker-timeout", "2"]);
    let master = s.pid();
    let before = newest_workers(&s.stdout());
    let (hung, healthy) = (before[&0], before[&1]);
    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load{}",
        logs(&s)
    );

    send_signal(hung, "STOP");
    let stopped_at = Instant::now();
    let d = deadline_in(EVENT_DEADLINE);
    assert!(
        s.wait_for_stderr(
            &format!(
                "! Terminating timed out worker (Worker 0 failed to check in within 2s): {hung}"
            ),
            d
        ),
        "the hung worker was not terminated{}",
        logs(&s)
    );
    eprintln!(
        "hung worker terminated {:?} after SIGSTOP",
        stopped_at.elapsed()
    );
    assert!(
        wait_until(d, || boots_of(&s.stdout(), 0) >= 2),
        "worker 0 was not replaced{}",
        logs(&s)
    );
    let replaced_at = Instant::now();
    let answered_by_then = load.ok();
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the replacement{}",
        logs(&s)
    );
    let report = load.stop();
    eprintln!(
        "hung worker: {} answered ({answered_by_then} when the replacement booted), {} failed: {:?}",
        report.ok,
        report.failures.len(),
        report.failures.iter().map(|f| &f.reason).collect::<Vec<_>>()
    );
    // Only connections the stopped worker had accepted may fail.
    assert!(
        report.failures.len() <= 10,
        "{:#?}{}",
        report.failures,
        logs(&s)
    );
    assert!(
        report.failures_since(replaced_at).is_empty(),
        "requests failed after the replacement booted: {:#?}{}",
        report.failures_since(replaced_at),
        logs(&s)
    );
    assert!(
        wait_until(deadline_in(GONE_DEADLINE), || gone(hung)),
        "the hung worker {hung} was not killed and reaped"
    );
    // A healthy worker checks in and must not be taken for a hung one.
    assert!(
        !s.stderr().contains("(Worker 1 failed to check in"),
        "the healthy worker 1 was terminated as timed out{}",
        logs(&s)
    );
    assert_eq!(newest_workers(&s.stdout())[&1], healthy, "{}", logs(&s));
    let new = newest_workers(&s.stdout())[&0];
    assert_eq!(
        wait_children(master, &BTreeSet::from([new, healthy]), GONE_DEADLINE),
        Ok(()),
        "{}",
        logs(&s)
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

/// One worker of the flaky_boot example whose boot always fails, with
/// `--worker-boot-timeout SECS`; `None` (skipped) when it was not built.
fn start_failing_boot(boot_timeout: &str) -> Option<Server> {
    let mut cmd = Command::new(example("flaky_boot")?);
    cmd.args([
        "-b",
        "tcp://127.0.0.1:0",
        "-w",
        "1",
        "--worker-boot-timeout",
        boot_timeout,
    ])
    .env("FLAKY_BOOT_FAIL", "1");
    Some(Server::start_command(cmd))
}

#[test]
fn a_worker_failing_at_boot_is_respawned_with_backoff() {
    let Some(mut s) = start_failing_boot("30") else {
        return;
    };
    let started = Instant::now();
    // Failures at about 0, 0.5, 1.5 and 3.5 s.
    let d = deadline_in(Duration::from_secs(6));
    assert!(
        s.wait_for_stderr("failed to boot 3 time(s) in a row", d),
        "{}",
        logs(&s)
    );
    let third = Instant::now();
    assert!(
        s.wait_for_stderr("failed to boot 4 time(s) in a row", d),
        "{}",
        logs(&s)
    );
    let fourth = Instant::now();
    let err = s.stderr();
    let forks = err.matches("died while booting").count();
    eprintln!(
        "boot failures: {forks} forks in {:?}; 3rd to 4th failure {:?}",
        started.elapsed(),
        fourth - third
    );
    assert!(
        (4..10).contains(&forks),
        "{forks} forks: a crash loop{}",
        logs(&s)
    );
    assert!(err.contains("next try in 2.0s"), "{}", logs(&s));
    assert!(
        err.contains("FLAKY_BOOT_FAIL is set"),
        "the worker says why{}",
        logs(&s)
    );
    // The 3rd failure waits 2 s before the 4th try.
    assert!(
        fourth - third >= Duration::from_millis(1800),
        "only {:?} between the 3rd and 4th failure{}",
        fourth - third,
        logs(&s)
    );
    assert_eq!(
        s.exit_status_now(),
        None,
        "the master gave up too early{}",
        logs(&s)
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn no_worker_booting_within_worker_boot_timeout_fails_the_start() {
    let Some(mut s) = start_failing_boot("1") else {
        return;
    };
    let status = s.wait_exit(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("still running 5 s later{}", logs(&s)));
    assert!(!status.success(), "{status}{}", logs(&s));
    assert!(
        s.wait_for_stderr(
            "no worker booted within worker_boot_timeout",
            deadline_in(GONE_DEADLINE)
        ),
        "{}",
        logs(&s)
    );
}

// ---------------------------------------------------------------------
// Process model
// ---------------------------------------------------------------------

#[test]
fn workers_exit_when_the_master_is_killed() {
    let (mut s, _root) = start_cluster(2, &[]);
    let workers: BTreeSet<u32> = newest_workers(&s.stdout()).into_values().collect();
    assert_eq!(wait_children(s.pid(), &workers, GONE_DEADLINE), Ok(()));
    assert_serves(s.addr());
    s.signal("KILL");
    assert!(
        s.wait_exit(GONE_DEADLINE).is_some(),
        "the master survived SIGKILL"
    );
    let orphans_exit = wait_until(deadline_in(GONE_DEADLINE), || {
        workers.iter().all(|&p| dead(p))
    });
    let left: Vec<(u32, Option<char>)> = workers.iter().map(|&p| (p, proc_state(p))).collect();
    // Do not leave them serving on the test machine if they survived.
    for &(p, state) in &left {
        if !matches!(state, None | Some('Z')) {
            send_signal(p, "KILL");
        }
    }
    assert!(
        orphans_exit,
        "workers still running after the master died: {left:?}{}",
        logs(&s)
    );
}

#[test]
fn the_master_never_has_a_thread_and_workers_do() {
    let (mut s, _root) = start_cluster(2, &[]);
    let master = s.pid();
    assert_eq!(threads_of(master), 1, "after start-up");
    for (i, pid) in newest_workers(&s.stdout()) {
        assert!(
            threads_of(pid) > 1,
            "worker {i} ({pid}) has no thread of its own"
        );
    }
    let load = Load::start(s.addr(), LOAD_THREADS);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load{}",
        logs(&s)
    );
    assert_eq!(threads_of(master), 1, "under load");
    // Through a phased restart (forks while serving), sampled all along.
    s.signal("USR1");
    let d = deadline_in(EVENT_DEADLINE);
    let (mut samples, mut most) = (0, 0);
    loop {
        most = most.max(threads_of(master));
        samples += 1;
        if s.stdout().contains("- Phased restart complete, phase: 1") || Instant::now() >= d {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        s.stdout().contains("- Phased restart complete, phase: 1"),
        "{}",
        logs(&s)
    );
    assert_eq!(
        most, 1,
        "the master had {most} threads during the phased restart ({samples} samples)"
    );
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the restart{}",
        logs(&s)
    );
    assert_eq!(threads_of(master), 1, "after the phased restart");
    for (i, pid) in newest_workers(&s.stdout()) {
        assert!(
            threads_of(pid) > 1,
            "new worker {i} ({pid}) has no thread of its own"
        );
    }
    // Failed requests are the business of the restart tests; this one
    // only needed the load to run.
    let report = load.stop();
    eprintln!(
        "thread check: {} answered, {} failed",
        report.ok,
        report.failures.len()
    );
    assert!(s.stop().success(), "{}", logs(&s));
}

#[test]
fn term_stops_the_cluster_and_leaves_no_process_behind() {
    let (mut s, _root) = start_cluster(2, &[]);
    let workers: BTreeSet<u32> = newest_workers(&s.stdout()).into_values().collect();
    assert_eq!(wait_children(s.pid(), &workers, GONE_DEADLINE), Ok(()));
    assert_serves(s.addr());
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{}", logs(&s));
    assert!(
        s.wait_for_line("- Gracefully stopping", deadline_in(GONE_DEADLINE)),
        "{}",
        logs(&s)
    );
    assert!(
        s.wait_for_line("- Goodbye!\n", deadline_in(GONE_DEADLINE)),
        "{}",
        logs(&s)
    );
    // The master reaped every worker before it exited: none is left,
    // not even as a zombie handed to init.
    let left: Vec<(u32, Option<char>)> = workers
        .iter()
        .map(|&p| (p, proc_state(p)))
        .filter(|(_, st)| st.is_some())
        .collect();
    assert!(left.is_empty(), "workers left behind: {left:?}{}", logs(&s));
    assert!(
        TcpStream::connect(s.addr()).is_err(),
        "the port still answers"
    );
}

#[test]
fn max_requests_recycles_a_worker_without_failing_a_request() {
    let (mut s, _root) = start_cluster(1, &["--max-requests", "20"]);
    let master = s.pid();
    let first = newest_workers(&s.stdout())[&0];
    for _ in 0..30 {
        assert_serves(s.addr());
    }
    // Counts reach the master with the worker's check-in (every 5 s).
    let load = Load::start(s.addr(), 1);
    let ending = "(max_requests 20); replacing it";
    assert_recycled(&s, load, first, "served ", ending, |second| {
        // The old worker is reaped before the next recycling.
        assert_eq!(
            wait_children(master, &BTreeSet::from([second]), GONE_DEADLINE),
            Ok(()),
            "{}",
            logs(&s)
        );
    });
    assert!(s.stop().success(), "{}", logs(&s));
}

/// Under `load`, waits for worker 0 (pid `first`) to be recycled: its log
/// line `- Worker 0 (PID: first) <says>... <ending>`, then its replacement,
/// with no failed request. `then` gets the replacement's pid at once.
fn assert_recycled(
    s: &Server,
    load: Load,
    first: u32,
    says: &str,
    ending: &str,
    then: impl FnOnce(u32),
) {
    let d = deadline_in(EVENT_DEADLINE);
    let start = format!("- Worker 0 (PID: {first}) {says}");
    assert!(
        s.wait_for_line(&start, d),
        "no recycling ({ending}){}",
        logs(s)
    );
    let line = s
        .stdout()
        .lines()
        .find(|l| l.contains(&start))
        .map(str::to_string);
    assert!(
        line.as_deref().is_some_and(|l| l.ends_with(ending)),
        "{line:?}"
    );
    eprintln!("recycled: {}", line.unwrap_or_default());
    assert!(
        wait_until(d, || boots_of(&s.stdout(), 0) >= 2),
        "no replacement{}",
        logs(s)
    );
    let second = newest_workers(&s.stdout())[&0];
    assert_ne!(second, first);
    then(second);
    assert!(
        load.wait_more_ok(AFTER_EVENT, EVENT_DEADLINE),
        "no load after the replacement{}",
        logs(s)
    );
    assert_no_failures(load, s, ending);
}

#[test]
fn worker_max_rss_recycles_a_worker_over_the_limit_without_failing_a_request() {
    // A worker uses a few MiB; a 1 MiB limit makes every check-in (every
    // second with --worker-timeout 3) find it over the limit.
    let (mut s, _root) = start_cluster(1, &["--worker-max-rss", "1", "--worker-timeout", "3"]);
    let first = newest_workers(&s.stdout())[&0];
    let load = Load::start(s.addr(), 1);
    assert_recycled(
        &s,
        load,
        first,
        "uses ",
        "(worker_max_rss 1); replacing it",
        |_| {},
    );
    assert!(s.stop().success(), "{}", logs(&s));
}
