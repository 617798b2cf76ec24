//! Real systemd for integration tests: boots systemd as PID 1 in private
//! namespaces (pid, mount, uts, ipc, net, cgroup) with `tests/support/sd-sandbox`,
//! then runs `systemctl`, `journalctl` and `curl` inside it. The host is never
//! touched: its files are read-only inside, /tmp /run /var are private, the
//! unit path is the sandbox's own (see the script's header for every mount).
//!
//! A test starts with
//!
//! ```ignore
//! let Some(sb) = Sandbox::start_or_skip(&units_dir) else { return };
//! ```
//!
//! which boots a sandbox with the unit files of `units_dir` installed (not
//! started), or says `skipped: <reason>` on stderr when this machine cannot
//! run one (not root, no systemd, no namespaces, no writable cgroup2). A boot
//! that fails although those preconditions hold is a test failure, not a skip.
//! `CATAMOUNT_SD_SANDBOX=require` turns skips into failures (for CI machines
//! that must run these tests); `CATAMOUNT_SD_SANDBOX=off` skips on purpose.
//!
//! Paths: everything under `CARGO_TARGET_TMPDIR` is bound in read-write at the
//! same path, and the directory of the `catamount` binary read-only, so a test
//! keeps its docroot, config and logs in a [`TestDir`] and names them in unit
//! files by their host paths. Anything else under /tmp is invisible inside.
//!
//! Two systemd builds: [`Systemd::V252`] is the host's own (Debian 12's
//! 252), [`Systemd::V254`] Debian's backport (254: `Type=notify-reload`,
//! `OpenFile=`, `FileDescriptorStorePreserve=`), extracted by
//! `scripts/fetch-systemd` into `target/systemd-254` (or the directory in
//! `CATAMOUNT_SYSTEMD_254`) and bound over the host's inside the sandbox
//! only; never installed. Without it the 254 tests say `skipped:`.
//!
//! Sandboxes are independent (own state directory, own cgroup, own network
//! namespace, so the same port can be used by parallel tests). A sandbox
//! lives until it is dropped, and never longer than the thread that started
//! it: the boot script runs under a parent-death signal, so a test binary that
//! is killed leaves no systemd behind.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long systemd has to boot (the script's own deadline; a boot here
/// takes well under a second).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for a unit to reach a state.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a condition is polled while waiting for it.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Upper bound for one command run inside the sandbox (`timeout` kills it),
/// so a hung command fails the test instead of hanging it.
const RUN_TIMEOUT_SECS: u32 = 60;
/// How long a stopped sandbox's holder process has to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The boot script, from the source tree.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sd-sandbox");
/// Cargo's scratch directory for integration tests (`<target>/tmp`). It is
/// bound in read-write, so test state put here is shared with the sandbox.
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");
/// The binary under test; its directory is bound in read-only.
const CATAMOUNT_BIN: &str = env!("CARGO_BIN_EXE_catamount");
/// The environment variable that forces (`require`) or refuses (`off`) the
/// sandbox.
const MODE_VAR: &str = "CATAMOUNT_SD_SANDBOX";
/// The exit status with which `sd-sandbox check` means "cannot run here".
const CHECK_SKIP: i32 = 77;
/// Where a test finds the extracted systemd 254 when `CATAMOUNT_SYSTEMD_254`
/// does not say (scripts/fetch-systemd's default, relative to the target
/// directory, which is `CARGO_TARGET_TMPDIR`'s parent).
const SYSTEMD_254_DIR: &str = "systemd-254";
/// The environment variable naming another directory for systemd 254.
const SYSTEMD_254_VAR: &str = "CATAMOUNT_SYSTEMD_254";

/// Which systemd a sandbox boots: the versions every real-systemd scenario
/// runs under (tests name them `v252::…` and `v254::…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Systemd {
    /// The host's own build (252 on Debian 12, the CI machine).
    V252,
    /// Debian 12's backport, extracted by scripts/fetch-systemd.
    V254,
}

impl Systemd {
    /// The version a sandbox of this kind must report; a mismatch (a build
    /// that silently fell back to the host's) fails the test.
    pub fn major(self) -> u32 {
        match self {
            Systemd::V252 => 252,
            Systemd::V254 => 254,
        }
    }

    /// The extracted tree to bind over the host's build (`None`: the host's).
    fn tree(self) -> Result<Option<PathBuf>, Skip> {
        if self == Systemd::V252 {
            return Ok(None);
        }
        let dir = match std::env::var_os(SYSTEMD_254_VAR) {
            Some(d) => PathBuf::from(d),
            None => Path::new(TARGET_TMPDIR)
                .parent()
                .expect("CARGO_TARGET_TMPDIR lies inside the target directory")
                .join(SYSTEMD_254_DIR),
        };
        if !dir.join("lib/systemd/systemd").is_file() {
            return Err(Skip {
                reason: format!(
                    "systemd 254 is not in {}: run scripts/fetch-systemd (downloads Debian's \
                     backport and extracts it there; installs nothing)",
                    dir.display()
                ),
            });
        }
        Ok(Some(fs::canonicalize(&dir).unwrap_or(dir)))
    }
}

/// Why a sandbox cannot run on this machine. The test that gets one reports
/// it (see [`Skip::report`]) and returns.
#[derive(Debug)]
pub struct Skip {
    pub reason: String,
}

impl Skip {
    /// Writes `skipped: <reason>` to the process's stderr directly: not
    /// through `eprintln!`, which the test runner captures and hides for a
    /// passing test. A skipped test passes, but never silently.
    pub fn report(&self, test: &str) {
        let _ = writeln!(io::stderr(), "skipped: {test}: {}", self.reason);
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A booted systemd in private namespaces; stopped (every process in it
/// killed, its cgroup removed) on drop.
pub struct Sandbox {
    state: PathBuf,
    holder: Option<Child>,
    pid: u32,
    boot_time: Duration,
}

impl Sandbox {
    /// Boots a sandbox with the unit files of `units_dir` preinstalled in
    /// its unit path (`/run/systemd/system`); none is started.
    ///
    /// `Err(Skip)` when this machine cannot run one; panics when it can but
    /// the boot fails, with the boot log in the message.
    pub fn start(units_dir: &Path) -> Result<Sandbox, Skip> {
        Sandbox::start_with(units_dir, Systemd::V252)
    }

    /// [`Sandbox::start`] with the systemd build `systemd`; `Err(Skip)` also
    /// when that build is not on this machine. Panics when the booted
    /// systemd reports another version than `systemd` stands for.
    pub fn start_with(units_dir: &Path, systemd: Systemd) -> Result<Sandbox, Skip> {
        match std::env::var(MODE_VAR).as_deref() {
            Ok("off") | Ok("0") => {
                return Err(Skip {
                    reason: format!("real-systemd tests disabled by {MODE_VAR}=off"),
                })
            }
            _ => check()?,
        }
        let tree = systemd.tree()?;
        let state = unique_dir("sandbox");
        let boot_err = state.join("boot.err");
        let stderr = fs::File::create(&boot_err)
            .unwrap_or_else(|e| panic!("sd-sandbox: create {}: {e}", boot_err.display()));
        let bin_dir = Path::new(CATAMOUNT_BIN)
            .parent()
            .expect("CARGO_BIN_EXE_catamount is a file path inside a directory");
        let started = Instant::now();
        // `setpriv --pdeathsig KILL`: the script dies with this thread, and
        // the sandbox with the script (see `boot` in the script).
        let mut holder = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "bash", SCRIPT, "boot"])
            .arg(&state)
            .current_dir(&state)
            .env("SD_SANDBOX_UNITS", units_dir)
            .env("SD_SANDBOX_BIND", TARGET_TMPDIR)
            .env("SD_SANDBOX_BIND_RO", bin_dir)
            .env("SD_SANDBOX_TIMEOUT", BOOT_TIMEOUT.as_secs().to_string())
            .env(
                "SD_SANDBOX_SYSTEMD",
                tree.as_deref().unwrap_or(Path::new("")),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("sd-sandbox: cannot run {SCRIPT} through setpriv: {e}"));
        // The script prints `ready PID` once systemd finished its startup
        // job, or exits (within its own boot deadline) after a failure.
        let stdout = holder.stdout.take().expect("stdout was piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let pid = match line.trim().strip_prefix("ready ").map(str::parse::<u32>) {
            Some(Ok(pid)) => pid,
            _ => {
                let status = holder.wait();
                panic!(
                    "sd-sandbox: boot failed although this machine can run a sandbox \
                     (read: {read:?}, exit: {status:?}, line: {line:?})\n--- boot.err:\n{}\n--- log:\n{}",
                    read_lossy(&boot_err),
                    read_lossy(&state.join("log")),
                );
            }
        };
        let sandbox = Sandbox {
            state,
            holder: Some(holder),
            pid,
            boot_time: started.elapsed(),
        };
        let booted = sandbox.systemd_version();
        assert_eq!(
            booted,
            systemd.major(),
            "sd-sandbox: asked for systemd {} but {booted} booted",
            systemd.major()
        );
        Ok(sandbox)
    }

    /// [`Sandbox::start`], reporting a skip on stderr (`None`: the test
    /// returns). With `CATAMOUNT_SD_SANDBOX=require` a skip panics instead.
    pub fn start_or_skip(units_dir: &Path) -> Option<Sandbox> {
        Sandbox::start_or_skip_with(units_dir, Systemd::V252)
    }

    /// [`Sandbox::start_or_skip`] with the systemd build `systemd`.
    pub fn start_or_skip_with(units_dir: &Path, systemd: Systemd) -> Option<Sandbox> {
        match Sandbox::start_with(units_dir, systemd) {
            Ok(sandbox) => Some(sandbox),
            Err(skip) if std::env::var(MODE_VAR).as_deref() == Ok("require") => {
                panic!("sd-sandbox required by {MODE_VAR}=require, but: {skip}")
            }
            Err(skip) => {
                let test = thread::current().name().unwrap_or("sd-sandbox").to_owned();
                skip.report(&test);
                None
            }
        }
    }

    /// From spawning the script to systemd's startup job being done.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// systemd's pid, as the host sees it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The sandbox's state directory (log, pid, cgroup name).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Runs `args` inside the sandbox (all its namespaces, its root), with a
    /// clean environment and an upper bound of [`RUN_TIMEOUT_SECS`].
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("sd-sandbox: run {args:?}: {e}"))
    }

    /// Starts `args` inside the sandbox in the background (a load client,
    /// say), stdout and stderr piped. It is bounded like [`Sandbox::run`],
    /// and dies with the sandbox at the latest.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("sd-sandbox: spawn {args:?}: {e}"))
    }

    /// The command that runs `args` inside: all the sandbox's namespaces,
    /// its root, a clean environment, at most [`RUN_TIMEOUT_SECS`].
    fn command(&self, args: &[&str]) -> Command {
        let timeout = RUN_TIMEOUT_SECS.to_string();
        let mut cmd = Command::new("bash");
        cmd.args([SCRIPT, "run"])
            .arg(&self.state)
            .args(["timeout", "--kill-after=5", &timeout])
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LC_ALL", "C")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .stdin(Stdio::null());
        cmd
    }

    /// The major version of the sandbox's systemd (`systemctl --version`),
    /// for tests whose expectations differ across versions.
    pub fn systemd_version(&self) -> u32 {
        let out = self.systemctl(&["--version"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the version in {text:?}"))
    }

    /// `systemctl ARGS...` inside the sandbox.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["systemctl", "--no-pager"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `systemctl ARGS...`, panicking with its output and the journal when
    /// it fails.
    pub fn systemctl_ok(&self, args: &[&str]) -> Output {
        let out = self.systemctl(args);
        if !out.status.success() {
            panic!(
                "systemctl {args:?} failed: {}\n{}",
                describe(&out),
                self.diagnostics()
            );
        }
        out
    }

    /// `systemctl show -p PROPERTY --value UNIT`, without the final newline.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    }

    /// Polls `cond` every few milliseconds until it holds; panics after
    /// `timeout` with `what` and the sandbox's units and journal.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
        if !poll_until(timeout, cond) {
            panic!(
                "sd-sandbox: timed out after {timeout:?} waiting for {what}\n{}",
                self.diagnostics()
            );
        }
    }

    /// Waits until `systemctl show -p PROPERTY --value UNIT` is `value`.
    pub fn wait_for_property(&self, unit: &str, property: &str, value: &str, timeout: Duration) {
        let mut last = String::new();
        self.wait_for(&format!("{unit} {property}={value}"), timeout, || {
            last = self.show(unit, property);
            last == value
        });
    }

    /// `curl URL` inside the sandbox's network namespace: the body on
    /// stdout; a failure (no answer, HTTP >= 400) as a non-zero status.
    pub fn curl(&self, url: &str) -> Output {
        self.run(&[
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--noproxy",
            "*",
            "--max-time",
            "5",
            url,
        ])
    }

    /// `curl` through the unix socket `socket` inside the sandbox (the
    /// host part of `url` only fills the Host header), as [`Sandbox::curl`].
    pub fn curl_unix(&self, socket: &str, url: &str) -> Output {
        self.run(&[
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "5",
            "--unix-socket",
            socket,
            url,
        ])
    }

    /// `MainPID` of `unit` (0 when it has no main process), as the sandbox
    /// numbers it.
    pub fn main_pid(&self, unit: &str) -> u32 {
        let text = self.show(unit, "MainPID");
        text.parse()
            .unwrap_or_else(|_| panic!("{unit} MainPID is not a number: {text:?}"))
    }

    /// What process `pid` (a sandbox pid) logged, one message per line. A
    /// hot restart keeps the pid, so this spans every image it executed.
    pub fn journal_of_pid(&self, pid: u32) -> String {
        let filter = format!("_PID={pid}");
        let out = self.run(&["journalctl", "--no-pager", "--output=cat", &filter]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What `unit` logged (its stdout and stderr, and systemd's lines about
    /// it), one message per line, from the sandbox's own journald.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.run(&["journalctl", "--no-pager", "--output=cat", "--unit", unit]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `unit`'s journal has a line containing `needle`.
    /// journald receives a service's output asynchronously, so a line is
    /// waited for, not expected at once.
    pub fn wait_for_journal(&self, unit: &str, needle: &str, timeout: Duration) {
        self.wait_for(
            &format!("{needle:?} in the journal of {unit}"),
            timeout,
            || self.journal(unit).lines().any(|l| l.contains(needle)),
        );
    }

    /// The state of every unit and the last journal lines, for a failure
    /// message.
    pub fn diagnostics(&self) -> String {
        let units = self.systemctl(&["list-units", "--all", "--no-legend"]);
        let journal = self.run(&["journalctl", "--no-pager", "--lines=60"]);
        format!(
            "--- units:\n{}--- journal:\n{}",
            String::from_utf8_lossy(&units.stdout),
            String::from_utf8_lossy(&journal.stdout)
        )
    }

    /// Stops the sandbox now, reporting a failure to clean up (drop does
    /// the same and ignores errors).
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let Some(mut holder) = self.holder.take() else {
            return Ok(());
        };
        let stop = Command::new("bash")
            .args([SCRIPT, "stop"])
            .arg(&self.state)
            .stdin(Stdio::null())
            .output();
        // The holder exits once its unshare is gone, which `stop` ensures.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while holder.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                holder.kill()?;
                holder.wait()?;
                return Err(io::Error::other("sd-sandbox: holder did not exit; killed"));
            }
            thread::sleep(POLL_INTERVAL);
        }
        let stop = stop?;
        if !stop.status.success() {
            return Err(io::Error::other(format!(
                "sd-sandbox stop: {}",
                describe(&stop)
            )));
        }
        if !thread::panicking() {
            // Kept after a failure: its log and boot.err explain it.
            fs::remove_dir_all(&self.state)?;
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            let _ = writeln!(
                io::stderr(),
                "sd-sandbox: stop {}: {e}",
                self.state.display()
            );
        }
    }
}

/// Polls `cond` every few milliseconds until it holds (`true`) or `timeout`
/// has passed (`false`).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A fresh, empty directory under `CARGO_TARGET_TMPDIR`, visible and
/// writable at the same path inside every sandbox. Removed on drop, except
/// when the test is failing: then its files stay for reading.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        TestDir {
            path: unique_dir(tag),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs `sd-sandbox check`: exit 0 means a sandbox can boot here, 77 a
/// reason not to on stdout.
fn check() -> Result<(), Skip> {
    let out = match Command::new("bash")
        .args([SCRIPT, "check"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            return Err(Skip {
                reason: format!("cannot run bash: {e}"),
            })
        }
    };
    match out.status.code() {
        Some(0) => Ok(()),
        Some(CHECK_SKIP) => Err(Skip {
            reason: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        }),
        _ => panic!("sd-sandbox check failed: {}", describe(&out)),
    }
}

fn unique_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = Path::new(TARGET_TMPDIR).join(format!("sd-{tag}-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map_or_else(
        |e| format!("({}: {e})", path.display()),
        |b| String::from_utf8_lossy(&b).into_owned(),
    )
}

/// Runs each scenario `fn NAME(systemd: Systemd)` of the calling test file
/// under both systemd builds, as the tests `v252::NAME` and `v254::NAME`,
/// so the test output counts the scenarios of each version; the names
/// after `254:` need systemd 254 (notify-reload, OpenFile=,
/// FileDescriptorStorePreserve=) and run as `v254::NAME` only. (`mod
/// sdsandbox` needs `#[macro_use]` for this.)
macro_rules! on_both_systemds {
    ($($name:ident),* $(,)? $(; 254: $($only:ident),* $(,)?)?) => {
        mod v252 {
            $( #[test] fn $name() { super::$name(super::sdsandbox::Systemd::V252) } )*
        }
        mod v254 {
            $( #[test] fn $name() { super::$name(super::sdsandbox::Systemd::V254) } )*
            $($( #[test] fn $only() { super::$only(super::sdsandbox::Systemd::V254) } )*)?
        }
    };
}
