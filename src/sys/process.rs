//! The process: umask and limits, fork (only with one thread), the
//! environment, children and signals to them, the process title, pipes
//! and the monotonic clock.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::signals::signal_name;
use super::{cvt, cvt_r, owned};

/// Sets the process umask, returning the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a live local.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: lim is a live, initialised local.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// What `fork` returned in this process.
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks the process, after checking that it has a single thread (the
/// entries of `/proc/self/task`): fork(2) copies only the calling thread,
/// so a lock another thread held (the allocator's, stdout's, an app's
/// mutex) would stay locked forever in the child. With more than one
/// thread the error says so and what to do ([`single_threaded`]).
pub fn fork() -> io::Result<Forked> {
    single_threaded()?;
    // SAFETY: fork(2) takes no arguments. The process has one thread
    // (checked just above; the caller, the single-threaded master, starts
    // none between the check and this call), so the child gets a
    // consistent copy of every lock and allocator state and may run any
    // code.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// `Ok` when this process has exactly one thread (`/proc/self/task` has
/// one entry), else an error for whoever asked for cluster mode: which
/// threads, and to start them after fork (in `Handler::boot`, which runs
/// in each worker) or to use single mode. Puma warns the same way about
/// threads started while the app boots in the master.
pub fn single_threaded() -> io::Result<()> {
    let n = thread_count().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot count this process's threads in /proc/self/task ({e}); \
                 cluster mode forks only a single-threaded process: mount /proc, \
                 or use single mode (workers 0)"
            ),
        )
    })?;
    if n > 1 {
        return Err(io::Error::other(format!(
            "cluster mode cannot fork workers: this process has {n} threads, and fork(2) \
             copies only one, so a lock another thread holds could never be released in a \
             worker; start threads after fork, in Handler::boot (it runs in each worker), \
             not in the handler's constructor or before Server::serve, or use single mode \
             (workers 0)"
        )));
    }
    Ok(())
}

/// How many threads this process has: the entries of `/proc/self/task`.
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?
        .filter(|t| t.is_ok())
        .count())
}

/// Removes those of the environment variables `keys` that are set, only
/// while this process has one thread ([`thread_count`], checked here):
/// setenv(3)/unsetenv(3) race with a getenv(3) in another thread (std's
/// own accesses take a lock, C code's do not), which is why Rust 2024
/// makes `remove_var` unsafe. With a second thread the variables are left
/// as they are and the error says why; the callers
/// (`activation::take_from_env`, `Notifier::take_from_env`) run before
/// catamount starts any thread.
pub fn remove_env(keys: &[&str]) -> io::Result<()> {
    let set: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| std::env::var_os(k).is_some())
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    let threads = thread_count()?;
    if threads > 1 {
        return Err(io::Error::other(format!(
            "{} left in the environment: this process already has {threads} threads, and \
             changing the environment races with their getenv(3); make the Server \
             (Server::from_args or Server::new) before starting threads",
            set.join(", ")
        )));
    }
    for k in set {
        // One thread (checked just above): nothing reads the environment
        // concurrently.
        std::env::remove_var(k);
    }
    Ok(())
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Exited(c) => write!(f, "exit status {c}"),
            ChildExit::Signaled(s) => write!(f, "killed by {}", signal_name(*s)),
        }
    }
}

/// Reaps one exited child without waiting; `None` when none has exited.
pub fn reap_child() -> io::Result<Option<(libc::pid_t, ChildExit)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a live local.
    let pid = match cvt_r(|| unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) }) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
        Err(e) => return Err(e),
    };
    if pid == 0 {
        return Ok(None);
    }
    let exit = if libc::WIFEXITED(status) {
        ChildExit::Exited(libc::WEXITSTATUS(status))
    } else {
        ChildExit::Signaled(libc::WTERMSIG(status))
    };
    Ok(Some((pid, exit)))
}

/// Sends `sig` to `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// The parent's pid.
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid(2) cannot fail.
    unsafe { libc::getppid() }
}

/// Sets what `ps` shows for this process: overwrites the argument area
/// (`/proc/self/cmdline`) in place, as nginx and Ruby's `$0=` do,
/// truncating to its original length. The `comm` name stays `catamount`,
/// so `pgrep -x`, `ss -p` and systemd's journal keep naming it. Call only while the process has one thread, and after saving the
/// arguments (`std::env::args_os` reads this same memory).
pub fn set_process_title(title: &str) -> io::Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised comm, which may contain spaces; the
    // state is field 3, arg_start field 48, arg_end field 49 (proc(5)).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<usize> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
    };
    let (start, end) = (field(48)?, field(49)?);
    if end <= start + 1 {
        return Err(io::Error::other("no argument area to write"));
    }
    let len = end - start;
    let mut bytes: Vec<u8> = title.bytes().filter(|&b| b != 0).take(len - 1).collect();
    bytes.resize(len, 0);
    // SAFETY: [start, end) is this process's argument area as the kernel
    // reports it: mapped, writable stack memory holding the argv strings,
    // `len` bytes long. The caller guarantees no other thread exists, so
    // nothing reads it concurrently; Rust's argument iterators only read
    // these bytes (they see the new title), and the caller saved the
    // original arguments before.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, len) };
    Ok(())
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// write(2) on any descriptor (pipes, eventfds).
pub fn write_fd(fd: &impl AsFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is a live slice of the length passed.
    let n =
        cvt_r(|| unsafe { libc::write(fd.as_fd().as_raw_fd(), data.as_ptr().cast(), data.len()) })?;
    Ok(n as usize)
}

/// read(2) on any descriptor (pipes).
pub fn read_fd(fd: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, writable slice of the length passed.
    let n = cvt_r(|| unsafe {
        libc::read(fd.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
    })?;
    Ok(n as usize)
}

/// CLOCK_MONOTONIC in microseconds (sd_notify's MONOTONIC_USEC).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live local; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_refused_with_a_second_thread() {
        // A thread of our own, so the count is above one however the
        // harness runs tests; it ends when the channel's sender drops.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count().expect("/proc/self/task") >= 2);
        let e = single_threaded().expect_err("two threads at least");
        let msg = e.to_string();
        assert!(msg.contains("cluster mode cannot fork workers"), "{msg}");
        assert!(msg.contains("Handler::boot"), "{msg}");
        assert!(fork().is_err(), "fork must refuse before forking");
        drop(tx);
        let _ = t.join();
    }
}
