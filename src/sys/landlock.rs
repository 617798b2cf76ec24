//! Landlock (landlock(7)): the three syscalls of the kernel's
//! self-confinement. The policy (which paths, which rights) is
//! `crate::landlock`'s.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{cvt, owned};

/// `struct landlock_ruleset_attr` (ABI 4+ layout; the size passed tells
/// the kernel which fields it may read).
#[repr(C)]
struct LandlockRulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct LandlockPathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct LandlockNetPortAttr {
    allowed_access: u64,
    port: u64,
}

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_RULE_NET_PORT: libc::c_int = 2;

/// The Landlock ABI version the kernel supports; an error (ENOSYS,
/// EOPNOTSUPP) when it has none or it is turned off.
pub fn landlock_abi() -> io::Result<u32> {
    // SAFETY: with the VERSION flag the kernel reads no attribute (NULL,
    // size 0) and returns the ABI version.
    let v = cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<LandlockRulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })?;
    Ok(v as u32)
}

/// A new ruleset handling `fs` and `net` access rights: what it does not
/// allow by a rule is denied once enforced. `net` must be 0 before ABI 4
/// (then the older, shorter attribute is passed).
pub fn landlock_ruleset(fs: u64, net: u64) -> io::Result<OwnedFd> {
    let attr = LandlockRulesetAttr {
        handled_access_fs: fs,
        handled_access_net: net,
    };
    let size = if net == 0 {
        mem::size_of::<u64>()
    } else {
        mem::size_of::<LandlockRulesetAttr>()
    };
    // SAFETY: attr is a live local of at least `size` bytes; the kernel
    // reads `size` bytes of it and returns a new descriptor.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const LandlockRulesetAttr,
            size,
            0 as libc::c_uint,
        )
    })?;
    Ok(owned(fd as RawFd))
}

/// Allows `access` beneath the file or directory `path` (opened O_PATH
/// by the caller) in `ruleset`.
pub fn landlock_allow_path(
    ruleset: BorrowedFd<'_>,
    path: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    let attr = LandlockPathBeneathAttr {
        allowed_access: access,
        parent_fd: path.as_raw_fd(),
    };
    // SAFETY: attr is a live local of the layout the rule type names; both
    // descriptors are borrowed, so open for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const LandlockPathBeneathAttr,
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Allows `access` on TCP `port` in `ruleset` (ABI 4+).
pub fn landlock_allow_port(ruleset: BorrowedFd<'_>, port: u16, access: u64) -> io::Result<()> {
    let attr = LandlockNetPortAttr {
        allowed_access: access,
        port: u64::from(port),
    };
    // SAFETY: attr is a live local of the layout the rule type names; the
    // ruleset is borrowed, so open for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_NET_PORT,
            &attr as *const LandlockNetPortAttr,
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Enforces `ruleset` on the calling thread and every thread and process
/// it starts from now on (threads that already exist are not confined:
/// call this before starting any), after setting no_new_privs, which
/// Landlock requires of an unprivileged process. Irreversible.
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes plain integers.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: the ruleset is borrowed, so open; flags 0.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset.as_raw_fd(),
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}
