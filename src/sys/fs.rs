//! Files: opening beneath a root without leaving it (openat2(2), or one
//! name at a time), symlinks, directory listings, access checks, and a
//! descriptor's identity.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::mem;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::{cvt, cvt_r, owned};

/// Whether [`open_beneath`] may follow symlinks on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Any symlink on the path fails the open with `ELOOP`
    /// (`RESOLVE_NO_SYMLINKS`).
    Refuse,
    /// Relative symlinks are followed as long as every step stays beneath
    /// `dir`; an absolute symlink or a `..` above `dir` fails with `EXDEV`.
    FollowBeneath,
}

/// Flags of every descriptor a static-file lookup opens for reading:
/// `O_NONBLOCK` so a FIFO planted in the root cannot block the open,
/// `O_NOCTTY` so a terminal device cannot become ours.
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Opens `rel` beneath the directory `dir` for reading in one openat2(2)
/// call (Linux 5.6+) with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (and
/// `RESOLVE_NO_SYMLINKS` for [`Symlinks::Refuse`]): the kernel checks every
/// step of the resolution against `dir` while it resolves, so no rename
/// between a check and the open can lead outside. `EXDEV` when the path
/// would leave `dir`, `EAGAIN` when a concurrent rename anywhere kept the
/// kernel from proving a `..` safe (callers may retry), `ENOSYS` on older
/// kernels (and `EPERM` under some container seccomp profiles).
pub fn open_beneath(dir: &impl AsFd, rel: &Path, symlinks: Symlinks) -> io::Result<File> {
    let path = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    /// `struct open_how` of openat2(2) (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    if symlinks == Symlinks::Refuse {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    let how = OpenHow {
        flags: READ_FLAGS as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: path is a NUL-terminated string and how a live open_how whose
    // size is passed, as openat2(2) requires; the result is a new descriptor.
    let fd = cvt_r(|| unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            mem::size_of::<OpenHow>(),
        )
    })?;
    Ok(File::from(owned(fd as RawFd)))
}

/// A handle on the directory entry `name` of `dir` itself: openat(2) with
/// `O_PATH | O_NOFOLLOW`, so a symlink is not followed but opened, and
/// nothing is opened for I/O (no device is touched, no read permission is
/// needed). Good for `fstat`, [`read_link`] and as the `dir` of further
/// calls here.
pub fn open_entry(dir: &impl AsFd, name: &OsStr) -> io::Result<File> {
    openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
}

/// Opens the entry `name` of `dir` for reading without following a
/// symlink (`ELOOP` if it is one). `name` may be `"."` to open `dir`
/// itself (e.g. a handle from [`open_entry`]) for reading.
pub fn open_read_nofollow(dir: &impl AsFd, name: &OsStr) -> io::Result<File> {
    openat(dir, name, READ_FLAGS | libc::O_NOFOLLOW)
}

fn openat(dir: &impl AsFd, name: &OsStr, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    // SAFETY: name is a NUL-terminated string that outlives the call; the
    // result is a new descriptor.
    let fd = cvt_r(|| unsafe { libc::openat(dir.as_fd().as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(File::from(owned(fd)))
}

/// Whether this process, by its effective user and groups, may list and
/// search the directory `dir` (read and search permission), as serving it
/// needs: faccessat(2) with `AT_EACCESS`. A check for a clear message at
/// start, not a security decision (the answer can change right after).
pub fn may_read_dir(dir: &Path) -> io::Result<()> {
    access(dir, libc::R_OK | libc::X_OK)
}

/// Whether this process may create and remove entries in the directory
/// `dir` (write and search permission; `EROFS` on a read-only mount), as
/// binding a unix socket or renaming a file into it needs. See
/// [`may_read_dir`].
pub fn may_write_dir(dir: &Path) -> io::Result<()> {
    access(dir, libc::W_OK | libc::X_OK)
}

/// Whether this process may open the existing file `path` for writing.
/// See [`may_read_dir`].
pub fn may_write(path: &Path) -> io::Result<()> {
    access(path, libc::W_OK)
}

fn access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: path is a NUL-terminated string that outlives the call.
    cvt_r(|| unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), mode, libc::AT_EACCESS) })?;
    Ok(())
}

/// Most bytes a symlink target may have (`PATH_MAX`); a longer one is
/// `ENAMETOOLONG`.
const LINK_TARGET_MAX: usize = libc::PATH_MAX as usize;

/// The target of the symlink `link` is a handle on (from [`open_entry`]):
/// readlinkat(2) with an empty path reads the link the handle holds, not
/// whatever has that name by now. `EINVAL` if `link` is not a symlink.
pub fn read_link(link: &impl AsFd) -> io::Result<OsString> {
    let mut buf = vec![0u8; LINK_TARGET_MAX];
    // SAFETY: the path is an empty NUL-terminated string and buf a live,
    // writable buffer of the length passed.
    let n = cvt_r(|| unsafe {
        libc::readlinkat(
            link.as_fd().as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    let n = n as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// What a directory entry is, from `d_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
    /// The filesystem does not say (`DT_UNKNOWN`): look at the entry.
    Unknown,
}

/// Calls `f` with each entry of the directory `dir` (an open directory or
/// an [`open_entry`] handle on one), except `.` and `..`, until `f` breaks.
/// Reads through a new open file description of its own (openat(dir, "."))
/// so concurrent listings of one cached directory share no offset.
pub fn for_each_entry(
    dir: &impl AsFd,
    mut f: impl FnMut(&OsStr, EntryKind) -> ControlFlow<()>,
) -> io::Result<()> {
    let fresh = openat(
        dir,
        OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    /// Closes the stream (and its descriptor) however the loop ends.
    struct Stream(*mut libc::DIR);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: self.0 came from a successful fdopendir and is closed
            // only here, once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let fd = OwnedFd::from(fresh);
    // SAFETY: fd is an open directory descriptor; fdopendir takes it over
    // only when it succeeds.
    let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error()); // fd is closed on return
    }
    // The stream owns the descriptor now and closes it in closedir.
    let _ = fd.into_raw_fd();
    let stream = Stream(dirp);
    loop {
        // readdir(3) returns NULL both at the end and on error; only errno
        // tells them apart.
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: stream.0 is a live stream owned by this function.
        let entry = unsafe { libc::readdir(stream.0) };
        if entry.is_null() {
            // SAFETY: __errno_location returns this thread's errno slot,
            // which readdir set (or left at 0) just now.
            let errno = unsafe { *libc::__errno_location() };
            return if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(errno))
            };
        }
        // SAFETY: a non-NULL readdir result points to a dirent whose d_name
        // is NUL-terminated and stays valid until the next readdir or
        // closedir on this stream, both after the last use of name.
        let (name, d_type) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
        let name = OsStr::from_bytes(name.to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match d_type {
            libc::DT_REG => EntryKind::File,
            libc::DT_DIR => EntryKind::Dir,
            libc::DT_LNK => EntryKind::Symlink,
            libc::DT_UNKNOWN => EntryKind::Unknown,
            _ => EntryKind::Other,
        };
        if f(name, kind).is_break() {
            return Ok(());
        }
    }
}

/// The (device, inode) of an open descriptor, as fstat(2) gives them:
/// what `JOURNAL_STREAM` names (systemd.exec(5)).
pub fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: st is a live local; fstat writes at most its size; the
    // borrow keeps fd open for the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((st.st_dev, st.st_ino))
}
