//! The integration-test harness: runs the real `catamount` binary, watches
//! its stdout and stderr, and talks HTTP/1.1 to it over real sockets with a
//! small hand-written client (so a test sees exactly the bytes on the wire).
//!
//! Every wait has a deadline and ends on an event (a log line, a response,
//! an end of stream, a process exit); nothing sleeps and hopes.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a server has to print `Use Ctrl-C to stop`.
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// Default deadline for one response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a stopped server has to exit.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// The contents of `hello.txt` in every temporary docroot.
pub const HELLO: &str = "hello, catamount\n";
/// The contents of `other.txt` in every temporary docroot.
pub const OTHER: &str = "another file\n";

/// Options that take a value, so that `start` can tell whether the
/// caller already gave a DIR.
const TAKES_VALUE: &[&str] = &[
    "-b",
    "--bind",
    "-t",
    "--threads",
    "-C",
    "--config",
    "-e",
    "--environment",
    "--tag",
    "--pidfile",
    "--first-data-timeout",
    "--body-timeout",
    "--write-timeout",
    "--persistent-timeout",
    "--shutdown-timeout",
    "--max-keep-alive",
    "--max-body",
];

/// `Instant::now() + d`, read as "by then".
pub fn deadline_in(d: Duration) -> Instant {
    Instant::now() + d
}

/// target/debug/examples/NAME, next to the catamount binary.
pub fn example(name: &str) -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_catamount"));
    let path = bin.parent()?.join("examples").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} was not built (run the tests with `cargo test`, which builds examples)",
            path.display()
        );
        None
    }
}

/// Connects to 127.0.0.1:`port`, retrying while nothing listens yet
/// (e.g. systemd-socket-activate starting up); panics at the deadline.
#[allow(dead_code)] // not every test file uses every helper
pub fn connect_by(port: u16, deadline: Instant) -> TcpStream {
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("127.0.0.1:{port} never accepted: {e}"),
        }
    }
}

/// Polls `f` every few milliseconds until it holds; false at the deadline.
pub fn wait_until(deadline: Instant, mut f: impl FnMut() -> bool) -> bool {
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

// ---------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------

/// A directory removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory under `std::env::temp_dir()`.
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A new empty directory under `parent` (unix socket paths must stay
    /// under 108 bytes, so socket tests use `/tmp`).
    pub fn new_in(parent: &Path, tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("cm-{tag}-{}-{n}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// A docroot holding `hello.txt` and `other.txt`.
    pub fn docroot() -> TempDir {
        let d = TempDir::new("docroot");
        d.write("hello.txt", HELLO);
        d.write("other.txt", OTHER);
        d
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/name` as a string (for command lines).
    pub fn join(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Writes `self/name`; returns its path as a string.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let p = self.path.join(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------

/// Text a child wrote to one of its pipes, and whether the pipe closed.
#[derive(Default)]
struct Captured {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Captured {
    /// Copies `pipe` line by line into a new `Captured`, on a thread.
    fn spawn(pipe: impl Read + Send + 'static) -> Arc<Captured> {
        let cap = Arc::new(Captured::default());
        let c = Arc::clone(&cap);
        std::thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line).unwrap_or(0);
                let mut st = c.state.lock().expect("log mutex poisoned");
                if n == 0 {
                    st.1 = true;
                } else {
                    st.0.push_str(&String::from_utf8_lossy(&line));
                }
                c.changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        cap
    }

    fn text(&self) -> String {
        self.state.lock().expect("log mutex poisoned").0.clone()
    }

    /// Waits until the pipe closed; false at the deadline.
    fn wait_eof(&self, deadline: Instant) -> bool {
        let mut st = self.state.lock().expect("log mutex poisoned");
        loop {
            let left = remaining(deadline);
            if st.1 || left.is_zero() {
                return st.1;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .expect("log mutex poisoned")
                .0;
        }
    }

    /// Waits until the text contains `needle`; false at the deadline or
    /// when the pipe closed without it.
    /// Waits until more than `len` bytes were captured (or EOF, or the deadline).
    fn wait_until_longer(&self, len: usize, deadline: Instant) -> bool {
        let mut st = self.state.lock().expect("log mutex poisoned");
        loop {
            if st.0.len() > len {
                return true;
            }
            let left = remaining(deadline);
            if st.1 || left.is_zero() {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .expect("log mutex poisoned")
                .0;
        }
    }

    fn wait_for(&self, needle: &str, deadline: Instant) -> bool {
        let mut st = self.state.lock().expect("log mutex poisoned");
        loop {
            if st.0.contains(needle) {
                return true;
            }
            let left = remaining(deadline);
            if st.1 || left.is_zero() {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .expect("log mutex poisoned")
                .0;
        }
    }
}

/// A running `catamount` process. Dropping it kills the process.
pub struct Server {
    child: Child,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    docroot: Option<TempDir>,
    listening: Vec<String>,
    exited: Option<ExitStatus>,
}

/// A process that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Server {
    /// Starts catamount with `args`, plus `-b tcp://127.0.0.1:0` when
    /// `args` bind nothing and a temporary docroot when `args` give no
    /// DIR, and waits until it is ready. Panics (with its output) if it
    /// is not ready within [`START_DEADLINE`].
    pub fn start(args: &[&str]) -> Server {
        let mut server = Server::spawn_with_defaults(args);
        server.wait_ready();
        server
    }

    /// Like [`Server::start`] with exactly `args`: nothing added.
    pub fn start_exact(args: &[&str]) -> Server {
        let mut server = Server::spawn(args, None);
        server.wait_ready();
        server
    }

    /// Runs catamount with `args` (nothing added) until it exits, e.g.
    /// for `-V` or a start-up error. Panics if it runs past the deadline.
    pub fn run(args: &[&str]) -> Finished {
        Server::spawn(args, None).finish(args)
    }

    /// Like [`Server::run`] for `cmd` (e.g. a `sh -c` wrapper that sets
    /// up descriptors, then execs catamount).
    #[allow(dead_code)] // not every test file uses every helper
    pub fn run_command(cmd: Command) -> Finished {
        let shown = format!("{cmd:?}");
        Server::spawn_command(cmd, None).finish(&[&shown])
    }

    /// [`Server::run`] with the defaults of [`Server::start`] added.
    pub fn run_with_defaults(args: &[&str]) -> Finished {
        let (full, docroot) = with_defaults(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let finished = Server::run(&refs);
        drop(docroot);
        finished
    }

    fn spawn_with_defaults(args: &[&str]) -> Server {
        let (full, docroot) = with_defaults(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        Server::spawn(&refs, docroot)
    }

    /// Like [`Server::start`], with extra environment variables.
    #[allow(dead_code)] // not every test file uses every helper
    pub fn start_env(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let (full, docroot) = with_defaults(args);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catamount"));
        cmd.args(&full).envs(envs.iter().copied());
        let mut server = Server::spawn_command(cmd, docroot);
        server.wait_ready();
        server
    }

    /// Runs catamount with `args` (nothing added) and `envs` until it
    /// exits, like [`Server::run`].
    pub fn run_env(args: &[&str], envs: &[(&str, &str)]) -> Finished {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catamount"));
        cmd.args(args).envs(envs.iter().copied());
        Server::run_command_named(cmd, args)
    }

    /// Runs `cmd` (e.g. catamount under setpriv(1)) until it exits, like
    /// [`Server::run`]; `what` names it in a failure.
    pub fn run_command_named(cmd: Command, what: &[&str]) -> Finished {
        Server::spawn_command(cmd, None).finish(what)
    }

    /// Spawns `cmd` with its stdout (and stderr, or with `None` stderr on
    /// the same stream) on descriptors the test chose, read back from
    /// their other ends: a unix stream socket, as systemd's journal hands
    /// a service. `stderr()` is empty when both share one stream. Call
    /// [`Server::wait_started`] or [`Server::finish`] next.
    pub fn spawn_with_output(mut cmd: Command, stdout: Output, stderr: Option<Output>) -> Server {
        let (err_stdio, err_reader) = match stderr {
            Some(o) => (o.stdio, Some(o.reader)),
            None => (stdout.stdio_again, None),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout.stdio)
            .stderr(err_stdio)
            .spawn()
            .expect("cannot spawn the catamount binary");
        // The child holds its copies; the test's go with `cmd`.
        drop(cmd);
        let closed = Arc::new(Captured::default());
        closed.state.lock().expect("log mutex poisoned").1 = true;
        Server {
            child,
            stdout: Captured::spawn(stdout.reader),
            stderr: err_reader.map_or(closed, Captured::spawn),
            docroot: None,
            listening: Vec::new(),
            exited: None,
        }
    }

    /// Waits until the server printed `Use Ctrl-C to stop` (panics at
    /// [`START_DEADLINE`] with its output).
    pub fn wait_started(&mut self) {
        self.wait_ready();
    }

    /// Waits until the process exited and its output streams closed;
    /// panics past [`EXIT_DEADLINE`] (`what` names it).
    pub fn finish(mut self, what: &[&str]) -> Finished {
        let status = self.wait_exit(EXIT_DEADLINE).unwrap_or_else(|| {
            panic!(
                "catamount {what:?} still running after {EXIT_DEADLINE:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            )
        });
        self.stdout.wait_eof(deadline_in(EXIT_DEADLINE));
        self.stderr.wait_eof(deadline_in(EXIT_DEADLINE));
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    /// Like [`Server::start`] with the example app `name` (built by
    /// `cargo test`) instead of the catamount binary; `None` (and a
    /// "skipped:" line) when it was not built.
    pub fn start_example(name: &str, args: &[&str]) -> Option<Server> {
        let bin = example(name)?;
        let (full, docroot) = with_defaults(args);
        let mut cmd = Command::new(bin);
        cmd.args(&full);
        let mut server = Server::spawn_command(cmd, docroot);
        server.wait_ready();
        Some(server)
    }

    /// Starts `cmd` (e.g. `systemd-socket-activate ... catamount ...`)
    /// and waits until catamount is ready.
    #[allow(dead_code)]
    pub fn start_command(cmd: Command) -> Server {
        let mut server = Server::spawn_command(cmd, None);
        server.wait_ready();
        server
    }

    fn spawn(args: &[&str], docroot: Option<TempDir>) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catamount"));
        cmd.args(args);
        Server::spawn_command(cmd, docroot)
    }

    fn spawn_command(mut cmd: Command, docroot: Option<TempDir>) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn the catamount binary");
        let stdout = Captured::spawn(child.stdout.take().expect("stdout is piped"));
        let stderr = Captured::spawn(child.stderr.take().expect("stderr is piped"));
        Server {
            child,
            stdout,
            stderr,
            docroot,
            listening: Vec::new(),
            exited: None,
        }
    }

    fn wait_ready(&mut self) {
        if !self
            .stdout
            .wait_for("Use Ctrl-C to stop", deadline_in(START_DEADLINE))
        {
            let status = self.wait_exit(Duration::from_millis(500));
            panic!(
                "catamount did not start within {START_DEADLINE:?} (exit status: {status:?})\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
        self.listening = self
            .stdout()
            .lines()
            .filter_map(|l| without_priority(l).strip_prefix("* Listening on "))
            .map(str::to_string)
            .collect();
    }

    /// The first TCP address the server listens on (the real port when
    /// port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.listening
            .iter()
            .find_map(|u| u.strip_prefix("http://")?.parse().ok())
            .unwrap_or_else(|| panic!("no `* Listening on http://...` line in:\n{}", self.stdout()))
    }

    /// Every `* Listening on` URL, in order.
    pub fn listening(&self) -> &[String] {
        &self.listening
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The docroot the harness created, if it created one.
    pub fn docroot(&self) -> Option<&Path> {
        self.docroot.as_ref().map(TempDir::path)
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits for `needle` on stdout.
    pub fn wait_for_line(&self, needle: &str, deadline: Instant) -> bool {
        self.stdout.wait_for(needle, deadline)
    }

    /// Waits until `needle` has appeared `count` times on stdout.
    #[allow(dead_code)]
    pub fn wait_for_line_count(&self, needle: &str, count: usize, deadline: Instant) -> bool {
        // Counted and waited on under one lock: a line arriving between a
        // count and the wait cannot be missed.
        self.stdout.wait_for_count(needle, count, deadline)
    }

    /// Waits for `needle` on stderr.
    pub fn wait_for_stderr(&self, needle: &str, deadline: Instant) -> bool {
        self.stderr.wait_for(needle, deadline)
    }

    /// Sends `sig` (a name such as `TERM`) with kill(1).
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let deadline = deadline_in(timeout);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.exited = Some(s);
                    return Some(s);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => return None,
                Err(e) => panic!("waitpid failed: {e}"),
            }
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exit_status_now(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("waitpid");
        }
        self.exited
    }

    /// SIGTERM, then waits for the exit; panics past [`EXIT_DEADLINE`].
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        match self.wait_exit(EXIT_DEADLINE) {
            Some(s) => s,
            None => panic!(
                "catamount did not exit within {EXIT_DEADLINE:?} of SIGTERM\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            ),
        }
    }

    /// Threads and resident memory of the server, from /proc.
    pub fn proc_status(&self) -> ProcStatus {
        proc_status(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A descriptor to give a child as stdout or stderr, and the stream to
/// read what it writes there.
pub struct Output {
    stdio: Stdio,
    /// A second copy, for stderr when it shares this stream.
    stdio_again: Stdio,
    reader: Box<dyn Read + Send>,
}

impl Output {
    /// One end of a new unix stream socket pair for the child, the other
    /// for the test, as journald connects a service's stdout and stderr;
    /// also `DEVICE:INODE` of the child's end, what systemd puts in
    /// `JOURNAL_STREAM` (systemd.exec(5)).
    pub fn socket_pair() -> (Output, String) {
        use std::os::unix::fs::MetadataExt;
        let (child, test) = UnixStream::pair().expect("socketpair");
        let meta = std::fs::File::from(std::os::fd::OwnedFd::from(
            child.try_clone().expect("dup the child's end"),
        ))
        .metadata()
        .expect("fstat the child's end");
        let again = child.try_clone().expect("dup the child's end");
        let out = Output {
            stdio: Stdio::from(std::os::fd::OwnedFd::from(child)),
            stdio_again: Stdio::from(std::os::fd::OwnedFd::from(again)),
            reader: Box::new(test),
        };
        (out, format!("{}:{}", meta.dev(), meta.ino()))
    }
}

/// `line` without the `<N>` syslog priority catamount puts first when its
/// output is the journal.
pub fn without_priority(line: &str) -> &str {
    match line.as_bytes() {
        [b'<', d, b'>', ..] if d.is_ascii_digit() => &line[3..],
        _ => line,
    }
}

/// `args` plus the default bind and a temporary docroot where missing.
pub fn with_defaults(args: &[&str]) -> (Vec<String>, Option<TempDir>) {
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let binds = args
        .iter()
        .any(|a| *a == "-b" || *a == "--bind" || a.starts_with("--bind="));
    if !binds {
        full.push("-b".into());
        full.push("tcp://127.0.0.1:0".into());
    }
    let mut docroot = None;
    if !has_positional(args) {
        let d = TempDir::docroot();
        full.push(d.path().to_string_lossy().into_owned());
        docroot = Some(d);
    }
    (full, docroot)
}

fn has_positional(args: &[&str]) -> bool {
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return i + 1 < args.len();
        }
        if !a.starts_with('-') {
            return true;
        }
        if TAKES_VALUE.contains(&a) {
            i += 1; // skip the value
        }
        i += 1;
    }
    false
}

/// Sends `sig` (e.g. `TERM`) to `pid` with kill(1): tests use no unsafe.
pub fn send_signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("cannot run kill(1)");
    assert!(status.success(), "kill -{sig} {pid} failed: {status}");
}

/// What /proc/PID/status says about a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcStatus {
    pub threads: u64,
    pub vm_rss_kib: u64,
}

pub fn proc_status(pid: u32) -> ProcStatus {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    ProcStatus {
        threads: field("Threads:"),
        vm_rss_kib: field("VmRSS:"),
    }
}

/// The calls an idle pool thread sleeps in: epoll_wait(2) and
/// epoll_pwait(2) (waiting for work in the pool's epoll), futex(2) (a
/// lock, briefly).
#[cfg(target_arch = "x86_64")]
const IDLE_SYSCALLS: [u64; 3] = [232, 281, 202];
#[cfg(target_arch = "aarch64")]
const IDLE_SYSCALLS: [u64; 3] = [22, 22, 98];

/// How many `catamount-pool` threads of `pid` are blocked in a system
/// call other than the idle ones above: serving a request (waiting for
/// its body in poll(2), or for the client to read in poll(2)/sendfile(2))
/// rather than waiting for work. This is how a test knows a request is in flight
/// before it acts, without sleeping. Reads /proc/PID/task/*/syscall.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn pool_threads_serving(pid: u32) -> usize {
    pool_tasks(pid)
        .iter()
        .filter(|task| {
            // "running" while on a CPU, else the call number and arguments.
            let syscall = std::fs::read_to_string(task.join("syscall")).unwrap_or_default();
            let nr = syscall
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            matches!(nr, Some(n) if !IDLE_SYSCALLS.contains(&n))
        })
        .count()
}

/// How many `catamount-pool` threads `pid` has (serving or idle).
pub fn pool_threads(pid: u32) -> usize {
    pool_tasks(pid).len()
}

/// The /proc/PID/task directories of `pid`'s `catamount-pool` threads.
fn pool_tasks(pid: u32) -> Vec<PathBuf> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| Some(t.ok()?.path()))
        .filter(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.starts_with("catamount-pool"))
        })
        .collect()
}

/// Waits until `pid` has exactly `n` pool threads; false at the deadline.
pub fn wait_pool_threads(pid: u32, n: usize, deadline: Instant) -> bool {
    wait_until(deadline, || pool_threads(pid) == n)
}

/// Waits until at least one pool thread is serving (see
/// [`pool_threads_serving`]); false at the deadline.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn wait_pool_serving(pid: u32, deadline: Instant) -> bool {
    wait_pool_serving_at_least(pid, 1, deadline)
}

/// Waits until at least `n` pool threads are serving; false at the
/// deadline.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn wait_pool_serving_at_least(pid: u32, n: usize, deadline: Instant) -> bool {
    wait_until(deadline, || pool_threads_serving(pid) >= n)
}

/// Raises this process's RLIMIT_NOFILE to `want` (soft and hard) with
/// prlimit(1), falling back to the hard limit; returns the soft limit
/// now in force. Children inherit it.
pub fn raise_nofile_limit(want: u64) -> u64 {
    let pid = std::process::id().to_string();
    let set = |n: u64| {
        Command::new("prlimit")
            .arg(format!("--nofile={n}:{n}"))
            .arg("--pid")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !set(want) {
        let (_, hard) = nofile_limits();
        set(hard);
    }
    nofile_limits().0
}

/// (soft, hard) RLIMIT_NOFILE of this process, from /proc/self/limits.
pub fn nofile_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("no `Max open files` in /proc/self/limits");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| {
            if w == "unlimited" {
                Some(u64::MAX)
            } else {
                w.parse().ok()
            }
        })
        .collect();
    (nums[0], nums[1])
}

/// A TCP port that was free a moment ago (bound to 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------
// The HTTP client
// ---------------------------------------------------------------------

/// A stream whose reads can be bounded in time.
pub trait Stream: Read + Write {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many headers are named `name`.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether a `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// read(2) returned 0: an orderly close.
    Eof,
    /// ECONNRESET: the server closed while bytes it had not read were
    /// still queued on its side (the kernel then sends RST instead of
    /// FIN). The response before it was still received.
    Reset,
}

/// A client connection that parses the responses as they come,
/// including several pipelined ones.
pub struct Client<S: Stream> {
    stream: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client<TcpStream> {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).expect("TCP_NODELAY");
        s.set_write_timeout(Some(RESPONSE_DEADLINE))
            .expect("SO_SNDTIMEO");
        Client::new(s)
    }
}

impl Client<UnixStream> {
    /// Connects to the unix socket at `path`.
    pub fn connect_unix(path: &Path) -> Client<UnixStream> {
        let s =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        s.set_write_timeout(Some(RESPONSE_DEADLINE))
            .expect("SO_SNDTIMEO");
        Client::new(s)
    }
}

impl<S: Stream> Client<S> {
    /// Sends `GET /hello.txt` and checks that HELLO comes back within
    /// `within`; `what` names the attempt in a failure.
    pub fn get_hello_within(&mut self, within: Duration, what: &str) {
        self.send(&get_bytes("/hello.txt"));
        let r = self
            .response_by("GET", deadline_in(within))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{what}: {r:?}");
    }

    pub fn new(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Writes all of `bytes` in one write call (if the kernel takes them).
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to the server: {e}"));
    }

    /// Writes `bytes`, returning the error instead of panicking (the
    /// server may have answered and closed already).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream,
    /// `TimedOut` at the deadline.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        loop {
            let left = remaining(deadline);
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_timeout(Some(left))?;
            let mut tmp = [0u8; 16 * 1024];
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next response to a request made with `method`, within
    /// [`RESPONSE_DEADLINE`]. Interim (1xx) responses are returned too.
    pub fn response(&mut self, method: &str) -> io::Result<Response> {
        self.response_by(method, deadline_in(RESPONSE_DEADLINE))
    }

    /// Reads the next response, panicking on any failure.
    pub fn expect_response(&mut self, method: &str) -> Response {
        self.response(method).unwrap_or_else(|e| {
            panic!(
                "no response to {method}: {e} (buffered: {:?})",
                self.buffered()
            )
        })
    }

    /// Reads the next response by `deadline`.
    pub fn response_by(&mut self, method: &str, deadline: Instant) -> io::Result<Response> {
        let head_len = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head (got {:?})",
                        self.buffered()
                    ),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_len - 4]).into_owned();
        self.buf.drain(..head_len);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for l in lines {
            let (n, v) = l
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header line {l:?}")))?;
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut resp = Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        let bodyless = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304;
        if bodyless {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = self.read_chunked(deadline)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
            while self.buf.len() < len {
                if self.fill(deadline)? == 0 {
                    return Err(bad(format!(
                        "connection closed after {} of {len} body bytes",
                        self.buf.len()
                    )));
                }
            }
            resp.body = self.buf.drain(..len).collect();
        } else {
            // Delimited by the end of the connection.
            while self.fill(deadline)? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    fn read_chunked(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.fill(deadline)? == 0 {
                    return Err(bad("connection closed inside a chunk size".into()));
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, then the final CRLF.
                loop {
                    let end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        if self.fill(deadline)? == 0 {
                            return Err(bad("connection closed inside trailers".into()));
                        }
                    };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill(deadline)? == 0 {
                    return Err(bad("connection closed inside a chunk".into()));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(bad("chunk data not followed by CRLF".into()));
            }
            self.buf.drain(..size + 2);
        }
    }

    /// Waits until the server closes the connection, by `deadline`.
    /// Errors if bytes arrive instead, or at the deadline.
    pub fn wait_closed(&mut self, deadline: Instant) -> Result<Closed, String> {
        if !self.buf.is_empty() {
            return Err(format!("unexpected bytes: {:?}", self.buffered()));
        }
        match self.fill(deadline) {
            Ok(0) => Ok(Closed::Eof),
            Ok(_) => Err(format!(
                "expected the server to close, got bytes: {:?}",
                self.buffered()
            )),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Closed::Reset),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err("the connection is still open at the deadline".into())
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// Bytes received but not parsed yet, lossily as text.
    pub fn buffered(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The method of a raw request (its first word).
fn method_of(raw: &[u8]) -> String {
    let first = raw.split(|&b| b == b' ').next().unwrap_or(b"GET");
    String::from_utf8_lossy(first).into_owned()
}

/// Sends `raw` on a new connection and reads one response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.expect_response(&method_of(raw))
}

/// `GET path` on a new connection, with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A keep-alive `GET path` request's bytes.
pub fn get_bytes(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// Asserts that a new connection gets `hello.txt`: the server still serves.
pub fn assert_serves(addr: SocketAddr) {
    let r = get(addr, "/hello.txt");
    assert_eq!(r.status, 200, "the server no longer serves: {r:?}");
    assert_eq!(r.text(), HELLO);
}

// ---------------------------------------------------------------------
// Counting log lines without a lost wake-up
// ---------------------------------------------------------------------

impl Captured {
    /// Waits until the text contains `needle` at least `count` times;
    /// false at the deadline or when the pipe closed short of it. Counts
    /// and waits under one lock, so output that arrives between the count
    /// and the wait still wakes it.
    fn wait_for_count(&self, needle: &str, count: usize, deadline: Instant) -> bool {
        let mut st = self.state.lock().expect("log mutex poisoned");
        loop {
            if st.0.matches(needle).count() >= count {
                return true;
            }
            let left = remaining(deadline);
            if st.1 || left.is_zero() {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .expect("log mutex poisoned")
                .0;
        }
    }
}

impl Server {
    /// Like [`Server::wait_for_line_count`], without its lost wake-up: that
    /// one reads the length after counting, so a line printed in between
    /// is only counted at the deadline (it then still returns true, late).
    pub fn wait_for_nth_line(&self, needle: &str, count: usize, deadline: Instant) -> bool {
        self.stdout.wait_for_count(needle, count, deadline)
    }
}

// ---------------------------------------------------------------------
// Running as an unprivileged user, and commands with a working directory
// ---------------------------------------------------------------------

/// The user [`unprivileged`] runs as when the tests run as root: nobody.
pub const UNPRIVILEGED_UID: u32 = 65534;

/// Whether this process runs as root (effective uid 0), from /proc.
pub fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// A command running `program` without root's power to read anything: as
/// is when the tests are not root, under `setpriv` as nobody when they
/// are (permission checks never fail for root). `Err` is the reason to
/// skip: setpriv missing, or `program` not executable by nobody.
pub fn unprivileged(program: &Path) -> Result<Command, String> {
    if !running_as_root() {
        return Ok(Command::new(program));
    }
    let id = UNPRIVILEGED_UID.to_string();
    let as_nobody = |cmd: &mut Command| {
        cmd.arg(format!("--reuid={id}"))
            .arg(format!("--regid={id}"))
            .arg("--clear-groups")
            .arg("--");
    };
    let mut probe = Command::new("setpriv");
    as_nobody(&mut probe);
    let probed = probe
        .arg("test")
        .arg("-x")
        .arg(program)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probed {
        Ok(s) if s.success() => {}
        Ok(_) => {
            return Err(format!(
                "running as root, and {} is not executable by uid {id}",
                program.display()
            ))
        }
        Err(e) => return Err(format!("running as root, and setpriv(1) cannot run: {e}")),
    }
    let mut cmd = Command::new("setpriv");
    as_nobody(&mut cmd);
    cmd.arg(program);
    Ok(cmd)
}

/// Prints `skipped: <reason>` where the test runner does not hide it.
pub fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let _ = writeln!(io::stderr().lock(), "skipped: {test}: {reason}");
}

impl Server {
    /// Waits until the process closed its stdout and stderr (it exited):
    /// from then on [`Server::stdout`] and [`Server::stderr`] hold all it
    /// wrote. False at the deadline.
    pub fn wait_output_closed(&self, deadline: Instant) -> bool {
        self.stdout.wait_eof(deadline) && self.stderr.wait_eof(deadline)
    }
}
