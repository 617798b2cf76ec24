//! The one door to the kernel: every `libc` call in catamount lives here,
//! wrapped in a small safe function that returns `io::Result` (`-1` becomes
//! `io::Error::last_os_error()`, `EINTR` is retried where the call is
//! restartable). The rest of the crate uses these wrappers and std types.
//!
//! By role: [`net`] sockets and poll, [`inherit`] the descriptors
//! sd_listen_fds passes and the exec that passes them on, [`fs`] files
//! beneath a root, [`process`] fork, environment, children and pipes,
//! [`epoll`] epoll and eventfd, [`signals`] the signal self-pipe,
//! [`landlock`] self-confinement. Every item is re-exported here, so the
//! crate names `sys::accept`, not `sys::net::accept`.
//!
//! The only module of the crate allowed `unsafe` (Cargo.toml denies it
//! elsewhere): this file and each submodule opt in with `#![allow]` at
//! the top, and every `unsafe` block says on the line above why it is
//! sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

mod epoll;
mod fs;
mod inherit;
mod landlock;
mod net;
mod process;
mod signals;

pub use epoll::*;
pub use fs::*;
pub use inherit::*;
pub use landlock::*;
pub use net::*;
pub use process::*;
pub use signals::*;

/// `-1` → the thread's last OS error.
fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call was interrupted by a signal.
fn cvt_r<T: PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes a descriptor the kernel has just created
    // for this process (socket, accept4, epoll_create1, eventfd, pipe2,
    // openat, fcntl(F_DUPFD_CLOEXEC)), so no other object owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A poll(2)/epoll_wait(2) timeout in milliseconds: rounded up to the
/// next millisecond (as mio does), so a deadline 0.3 ms away waits 1 ms
/// instead of returning at once and spinning until it passes; `None` is
/// -1 (forever); capped at `i32::MAX`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvt_maps_minus_one_to_last_error() {
        assert!(cvt(-1i32).is_err());
        assert_eq!(cvt(5i32).unwrap(), 5);
    }

    #[test]
    fn timeouts_round_up_to_the_next_millisecond() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::from_micros(5_001))), 6);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }
}
