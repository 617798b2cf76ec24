//! Signals: the self-pipe their handler writes to, and their names.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use super::{cvt, owned};

/// Write end of the self-pipe; the signal handler's only state.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; byte is a live local. A
        // full pipe drops the byte, which is fine: one pending byte of each
        // kind is enough to wake the loop.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes `signals` into a self-pipe; returns its non-blocking read end.
/// Each delivered signal becomes one byte (its number).
pub fn signal_pipe(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a live array of two ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    let (read, write) = (owned(fds[0]), owned(fds[1]));
    // The write end lives for the whole process: the handler may run at any time.
    SIGNAL_PIPE.store(
        std::os::fd::IntoRawFd::into_raw_fd(write),
        Ordering::Relaxed,
    );
    for &sig in signals {
        // SAFETY: sigaction is plain old data; all-zero is a valid start.
        let mut sa: libc::sigaction = unsafe { mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        if sig == libc::SIGCHLD {
            // Exits only: a stopped (SIGSTOPped) worker is found by its
            // missing check-ins, not by a signal.
            sa.sa_flags |= libc::SA_NOCLDSTOP;
        }
        // SAFETY: sa.sa_mask is a live sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: sa is initialised; the handler only calls write(2).
        cvt(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) })?;
    }
    Ok(read)
}

/// The signals by name, as log lines show them (signal(7), x86_64 and
/// aarch64 numbering through libc's constants).
const SIGNAL_NAMES: [(libc::c_int, &str); 31] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

/// `SIGUSR1` for 10: log lines name signals rather than number them
/// (issue 12); a number without a name (a real-time signal) stays a
/// number.
pub fn signal_name(sig: libc::c_int) -> std::borrow::Cow<'static, str> {
    match SIGNAL_NAMES.iter().find(|(n, _)| *n == sig) {
        Some((_, name)) => std::borrow::Cow::Borrowed(name),
        None => std::borrow::Cow::Owned(format!("signal {sig}")),
    }
}

/// Reads pending signal numbers from the self-pipe.
pub fn read_signals(pipe: &impl AsFd, out: &mut Vec<libc::c_int>) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: buf is a live, writable array of the length passed.
        let n = unsafe { libc::read(pipe.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        out.extend(buf[..n as usize].iter().map(|&b| b as libc::c_int));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ChildExit;

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGTTOU), "SIGTTOU");
        assert_eq!(signal_name(40), "signal 40"); // real-time: no name
        assert_eq!(
            ChildExit::Signaled(libc::SIGKILL).to_string(),
            "killed by SIGKILL"
        );
    }
}
