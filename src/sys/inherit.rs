//! Descriptors passed by the sd_listen_fds(3) protocol: what each number
//! held when the process image started (recorded before `main`), what it
//! holds now, taking ownership once, and the other direction: renumbering
//! descriptors from 3 and exec in one step for a hot restart.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;

use super::net::get_int_opt;
use super::{cvt, cvt_r, owned};

/// Most inherited descriptors accepted (a sanity bound on LISTEN_FDS):
/// [`record_at_start`] records at most this many, and
/// `activation::take_from_env` refuses a larger count.
pub const MAX_LISTEN_FDS: usize = 1024;

/// What an inherited descriptor number holds, as [`inspect_inherited`]
/// finds it before anything owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Nothing is open under that number.
    NotOpen,
    /// A socket: its `SO_TYPE` is `SOCK_STREAM` or not, and its
    /// `SO_ACCEPTCONN` (listening) is set or not.
    Socket { stream: bool, listening: bool },
    /// Anything but a socket: a regular file, a directory, a pipe or a
    /// device (what systemd's `OpenFile=` passes).
    NotSocket,
    /// Open now, but not the descriptor this number held when the process
    /// started ([`AT_START`]): the process closed what was passed and
    /// opened something of its own there before adopting it.
    Replaced,
}

/// What the numbers LISTEN_FDS names held when this process image
/// started, recorded before `main` by [`record_at_start`]: one entry per
/// number from 3, `None` for a number that was not open, else its
/// (device, inode). Empty when LISTEN_PID does not name this process.
/// Unset only if the record did not run (then [`inspect_inherited`] can
/// look at the present alone).
static AT_START: std::sync::OnceLock<Vec<Option<(u64, u64)>>> = std::sync::OnceLock::new();

/// Records [`AT_START`]. It runs before `main`, so before std's runtime,
/// `Server::from_args`, or an embedder's code can open a descriptor: what
/// it sees at 3.. is what the exec passed. That turns "adopt before
/// opening anything" from a rule callers must follow into a check:
/// [`inspect_inherited`] compares the present with this record.
extern "C" fn record_at_start() {
    let var = |k: &str| std::env::var(k).ok();
    let mine =
        var("LISTEN_PID").and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    let n = if mine {
        var("LISTEN_FDS")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_LISTEN_FDS)
    } else {
        0
    };
    let ids = (3..)
        .take(n)
        .map(|fd| fd_identity(fd).ok().flatten())
        .collect();
    let _ = AT_START.set(ids);
}

// SAFETY: an entry of the ELF `.init_array` section is called by the
// dynamic loader (or libc's static start code) once, on the main thread,
// before `main`, with (argc, argv, envp), which an `extern "C" fn()`
// ignores. The function only reads the environment, calls fstat(2) and
// allocates, all usable at that point (libc is initialised; std's
// environment lock is a const-initialised static). `#[used]` keeps the
// entry although nothing refers to it.
#[used]
#[link_section = ".init_array"]
static RECORD_AT_START: extern "C" fn() = record_at_start;

/// What a number is, judged by what it held at start (`then`) and holds
/// now (`now`; `None`: not open); `None` when both agree on an open
/// descriptor, which is then inspected as it is.
fn compare_with_start(then: Option<(u64, u64)>, now: Option<(u64, u64)>) -> Option<FdKind> {
    match (then, now) {
        (None, _) | (_, None) => Some(FdKind::NotOpen),
        (Some(then), Some(now)) if then != now => Some(FdKind::Replaced),
        (Some(_), Some(_)) => None,
    }
}

/// The (device, inode) of descriptor number `fd`, `None` when it is not
/// open. Reads only.
fn fd_identity(fd: RawFd) -> io::Result<Option<(u64, u64)>> {
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size and only
    // reads the descriptor; an unused number fails with EBADF.
    match cvt(unsafe { libc::fstat(fd, &mut st) }) {
        Ok(_) => Ok(Some((st.st_dev, st.st_ino))),
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks at the descriptor number `fd` without taking it: open or not
/// (`fcntl(F_GETFD)`, `EBADF` is [`FdKind::NotOpen`]), the same as when
/// the process started or not ([`AT_START`]: a number that was empty then
/// is [`FdKind::NotOpen`] whatever holds it now, one that holds another
/// file now is [`FdKind::Replaced`]), socket or not (`fstat`), and for a
/// socket its type and whether it listens. Only reads the descriptor
/// table and the descriptor's state; changes nothing, so it is sound on a
/// number whatever owns it. A number, not a borrow: nothing owns these
/// descriptors yet (sd_listen_fds(3) passes them by number).
pub fn inspect_inherited(fd: RawFd) -> io::Result<FdKind> {
    let at_start = AT_START
        .get()
        .and_then(|ids| ids.get(usize::try_from(fd).ok()?.checked_sub(3)?));
    if let Some(then) = at_start {
        if let Some(kind) = compare_with_start(*then, fd_identity(fd)?) {
            return Ok(kind);
        }
    }
    // SAFETY: fcntl(F_GETFD) takes plain integers and only reads the
    // descriptor table; an unused number fails with EBADF.
    match cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(FdKind::NotOpen),
        Err(e) => return Err(e),
    }
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Ok(FdKind::NotSocket);
    }
    // SAFETY: the number is open (above) and stays so for these calls:
    // nothing in this process closes a number it does not own, and the
    // caller owns none of these yet. The borrow only names it for
    // getsockopt(2), which reads.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let ty = get_int_opt(&borrowed, libc::SOL_SOCKET, libc::SO_TYPE)?;
    let listening = get_int_opt(&borrowed, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)?;
    Ok(FdKind::Socket {
        stream: ty == libc::SOCK_STREAM,
        listening: listening == 1,
    })
}

/// Sets or clears `FD_CLOEXEC` on a descriptor number (private: only
/// [`take_listen_fds`] and [`exec_passing`] use it, on numbers they
/// hold).
fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFD) takes plain integers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: fcntl(F_SETFD) takes plain integers.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    Ok(())
}

static LISTEN_FDS_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes ownership of the `n` descriptors from 3 that sd_listen_fds(3)
/// passes, setting `FD_CLOEXEC` on each first (nothing catamount spawns
/// may inherit them). Works once per process (a second call fails), and
/// fails naming the first number that is not open.
///
/// What is checked here: each number is open, and no earlier call took
/// it. What the caller guarantees (`activation::take_from_env`, called by
/// `Server::from_args` and `Server::new` before the process opens a
/// descriptor of its own, and by `main` first of all): no other object of
/// this process owns one of these numbers, because none was opened yet
/// when it looks. [`inspect_inherited`] has already classified each
/// number, so a number systemd left empty is refused before this runs.
pub fn take_listen_fds(n: usize) -> io::Result<Vec<OwnedFd>> {
    if LISTEN_FDS_TAKEN.swap(true, Ordering::AcqRel) {
        return Err(io::Error::other(
            "the inherited descriptors were already taken",
        ));
    }
    let fds: Vec<RawFd> = (0..n as RawFd).map(|i| 3 + i).collect();
    for &fd in &fds {
        set_cloexec(fd, true).map_err(|e| io::Error::new(e.kind(), format!("fd {fd}: {e}")))?;
    }
    Ok(fds
        .into_iter()
        // SAFETY: each fd is open (fcntl above succeeded) and was passed
        // to this process by the sd_listen_fds protocol (LISTEN_PID is
        // ours). The flag above makes this the only place that ever wraps
        // these numbers, once. That no other object owns one rests on the
        // caller's order (see above): adoption is the process's first
        // open-or-own of any descriptor above stdio.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect())
}

/// Replaces this process's image with `cmd`, passing `fds` as the
/// descriptors 3, 4, … in order, without `FD_CLOEXEC` (the sd_listen_fds
/// layout). Returns only on failure.
///
/// Renumbering and exec are one function so that nothing runs between
/// them: the dup2(2)s close whatever held 3.. before, and any object
/// owning one of those numbers (a file the app opened, the docroot) would
/// otherwise act on a descriptor that is now a listener. Once the first
/// dup2 has run, this process cannot go on serving: a failure after it
/// is fatal for the caller (it says so and exits). The borrows keep the
/// sources open until the exec.
pub fn exec_passing(cmd: &mut std::process::Command, fds: &[BorrowedFd<'_>]) -> io::Error {
    use std::os::unix::process::CommandExt;
    if let Err(e) = renumber(fds) {
        return e;
    }
    cmd.exec()
}

fn renumber(fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let first = 3 as libc::c_int;
    let above = first + fds.len() as libc::c_int;
    // Copies above the target range first, so no dup2 clobbers a source
    // that is still to be moved.
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes plain integers and returns
        // a new descriptor; fd is borrowed, so open.
        let copy = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) })?;
        // The copies are this function's own; dropping them after the
        // dup2s (or on an error) closes only them.
        high.push(owned(copy));
    }
    for (i, fd) in high.iter().enumerate() {
        let target = first + i as libc::c_int;
        // SAFETY: dup2 takes plain integers; the kernel closes target
        // first. Whatever object owned target loses its descriptor: the
        // caller (exec_passing) execs right after, so no code of this
        // image uses such an object again.
        cvt_r(|| unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
        set_cloexec(target, false)?;
    }
    // `high` is close-on-exec: dropped here or by the exec, both fine.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::datagram_socket;
    use std::fs::File;

    #[test]
    fn inspect_tells_what_a_number_holds() {
        // A number far above anything this process opens cannot be
        // reused by another test thread meanwhile.
        assert_eq!(inspect_inherited(1 << 20).unwrap(), FdKind::NotOpen);
        assert_eq!(inspect_inherited(-1).unwrap(), FdKind::NotOpen);
        let file = File::open("/proc/self/stat").expect("a file");
        assert_eq!(
            inspect_inherited(file.as_raw_fd()).unwrap(),
            FdKind::NotSocket
        );
        let dgram = datagram_socket().expect("a socket");
        assert_eq!(
            inspect_inherited(dgram.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: false,
                listening: false
            }
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        assert_eq!(
            inspect_inherited(listener.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: true,
                listening: true
            }
        );
        let conn = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        assert_eq!(
            inspect_inherited(conn.as_raw_fd()).unwrap(),
            FdKind::Socket {
                stream: true,
                listening: false
            }
        );
    }

    #[test]
    fn the_start_record_ran_before_main() {
        // This test binary runs without LISTEN_PID: an empty record, but
        // a record, so `.init_array` kept and ran record_at_start.
        assert_eq!(AT_START.get().map(Vec::len), Some(0));
    }

    #[test]
    fn a_number_is_judged_against_what_it_held_at_start() {
        let (a, b) = (Some((1, 10)), Some((1, 11)));
        // Empty at start: refused whatever the process opened there since.
        assert_eq!(compare_with_start(None, a), Some(FdKind::NotOpen));
        assert_eq!(compare_with_start(None, None), Some(FdKind::NotOpen));
        // Passed, then closed.
        assert_eq!(compare_with_start(a, None), Some(FdKind::NotOpen));
        // Passed, closed, and the number reused by something else.
        assert_eq!(compare_with_start(a, b), Some(FdKind::Replaced));
        // Still what was passed: inspect it.
        assert_eq!(compare_with_start(a, a), None);
    }
}
