//! epoll(7) and eventfd(2): the reactor's and the pool's waits and
//! their wake-ups.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{cvt, owned, timeout_ms};

/// An epoll instance. Registrations carry a `u64` token.
pub struct Epoll {
    fd: OwnedFd,
}

/// Level-triggered readability.
pub const EPOLL_READ: u32 = libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
/// Writability reported once (a TLS handshake waiting to send).
pub const EPOLL_WRITE_ONESHOT: u32 = libc::EPOLLOUT as u32 | libc::EPOLLONESHOT as u32;
/// Readability reported once, then disarmed until re-armed with `modify`.
pub const EPOLL_READ_ONESHOT: u32 = EPOLL_READ | libc::EPOLLONESHOT as u32;

impl Epoll {
    /// A new close-on-exec epoll instance.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd: owned(fd) })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: ev is a live local; epoll_ctl copies it. epoll_ctl only
        // (de)registers the number: on one that is not open it fails with
        // EBADF.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Registers `fd`.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), events, token)
    }

    /// Changes (or re-arms) a registration.
    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), events, token)
    }

    /// Removes a registration.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0)
    }

    /// Waits for events (at most `events.capacity()`), up to `timeout`
    /// (`None`: forever). Readable, hung up or in error alike: the owner of
    /// a token finds out which by reading.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout_ms(timeout);
        events.len = 0;
        // SAFETY: raw holds raw.len() initialised events and the kernel
        // writes at most that many.
        let r = cvt(unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.raw.as_mut_ptr(),
                events.raw.len() as libc::c_int,
                ms,
            )
        });
        match r {
            Ok(n) => events.len = n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// A reusable buffer for [`Epoll::wait`] (allocated once per waiting
/// thread, not per wait).
pub struct Events {
    raw: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    /// Room for `max` events per wait (at least one).
    pub fn with_capacity(max: usize) -> Events {
        Events {
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)],
            len: 0,
        }
    }

    /// The tokens of the events the last wait returned.
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        self.raw[..self.len].iter().map(|e| e.u64)
    }
}

/// An eventfd used to wake a thread blocked in epoll.
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<EventFd> {
        EventFd::with_flags(0)
    }

    /// A counting eventfd: every [`EventFd::notify`] adds one and every
    /// [`EventFd::take`] removes one, so n notifications wake n takers.
    pub fn semaphore() -> io::Result<EventFd> {
        EventFd::with_flags(libc::EFD_SEMAPHORE)
    }

    fn with_flags(flags: libc::c_int) -> io::Result<EventFd> {
        // SAFETY: eventfd takes integers and returns a new descriptor.
        let fd = cvt(unsafe { libc::eventfd(0, flags | libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(EventFd { fd: owned(fd) })
    }

    /// Takes one notification of a [`EventFd::semaphore`]; false when none
    /// was pending (another thread took it).
    pub fn take(&self) -> bool {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN means nothing pending.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        r == 8
    }

    /// Wakes the waiter (coalesces with other wake-ups).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN)
        // already means "wake up", so the result is deliberately ignored.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN means nothing pending.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
