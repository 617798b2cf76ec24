//! Landlock self-confinement (landlock(7)): once its listeners are open
//! and before it serves a request, a serving process (single mode, or
//! each cluster worker) restricts itself to the files, directories and
//! TCP ports its configuration names, so that a bug in path handling (a
//! symlink swap, a traversal the static app missed) cannot reach `/etc`.
//!
//! This module is the policy: which paths with which rights, for which
//! role ([`rules`]), the banner that lists them, and the check that a
//! reload needs nothing the confinement denies ([`check_reload`]). The
//! three syscalls are `sys`'s.
//!
//! What each role may do:
//! - a worker serves: it reads DIR and `/proc/self` (its own stats);
//! - the single-mode process also reloads, hot restarts and exits: it
//!   reads its config file's and certificates' directories (beneath the
//!   path and its resolved target, so a certificate renewed by rename or
//!   a symlink swap, as certbot does, is still readable), execs its binary
//!   (read and execute beneath the binary's and its libraries'
//!   directories, plus the loader's cache), writes in the directories of
//!   its pidfile and state file (create, write, truncate, remove: files
//!   there are replaced by rename), makes and removes its unix sockets'
//!   files, reads the name-service files a bind's host name needs, and
//!   opens `/dev/null` (the preflight check's stdin).
//! - both bind only the configured TCP ports (ABI 4+) and connect
//!   nowhere.
//!
//! Landlock applies to the calling thread and what it starts afterwards,
//! and survives exec: confinement happens while the process has one
//! thread, before `Handler::boot` (an app that needs more paths says so
//! with `Server::confine`). A hot restart's new image is confined by its
//! predecessor's rules and adds its own layer (the kernel allows 16; past
//! that the inherited ones are kept). The cluster master stays
//! unconfined: it forks new workers with the current configuration, so a
//! phased restart can widen what workers may do; a single process cannot
//! widen its own rules, so a reload that would need more is refused.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::activation;
use crate::bind::BindSpec;
use crate::config::ActivatedMode;
use crate::sys;
use crate::Config;

// Access rights, from <linux/landlock.h>.
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
/// Every filesystem right of ABI 1 (bits 0 to 12).
const FS_ABI1: u64 = (1 << 13) - 1;
/// ABI 2: linking or renaming a file to another directory.
const FS_REFER: u64 = 1 << 13;
/// ABI 3: truncate(2) and O_TRUNC.
const FS_TRUNCATE: u64 = 1 << 14;
/// ABI 5: ioctl(2) on devices.
const FS_IOCTL_DEV: u64 = 1 << 15;
/// ABI 4: bind(2) and connect(2) on TCP ports.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
/// The rights a rule on a file (not a directory) may carry.
const FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;

/// The first ABI that restricts TCP bind and connect.
const ABI_NET: u32 = 4;

/// The files the C library reads to resolve a host name in a bind.
const NAME_SERVICE_FILES: [&str; 5] = [
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/resolv.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
];
/// The dynamic loader's cache, read by every exec of a dynamic binary.
const LOADER_CACHE: &str = "/etc/ld.so.cache";

/// What a rule allows beneath its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// List directories and read files (DIR, /proc/self).
    Read,
    /// Read files (config and certificate directories).
    ReadFiles,
    /// Read and execute files (the binary, its libraries).
    ReadExec,
    /// Create, write, truncate, remove and read files (pidfile, state
    /// file; an embedder's write directories, which its app reads back).
    Write,
    /// Create and remove unix sockets' files.
    Sockets,
    /// Read and write one device file (/dev/null).
    ReadWrite,
}

impl Access {
    fn rights(self) -> u64 {
        match self {
            Access::Read => FS_READ_FILE | FS_READ_DIR,
            Access::ReadFiles => FS_READ_FILE,
            Access::ReadExec => FS_READ_FILE | FS_EXECUTE,
            Access::Write => {
                FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_MAKE_REG | FS_REMOVE_FILE
            }
            Access::Sockets => FS_MAKE_SOCK | FS_REMOVE_FILE,
            Access::ReadWrite => FS_READ_FILE | FS_WRITE_FILE,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadFiles => "read files",
            Access::ReadExec => "read+exec",
            Access::Write => "write files in",
            Access::Sockets => "unix sockets in",
            Access::ReadWrite => "read+write",
        }
    }
}

/// Which process is confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The single-mode process: serves, reloads, hot restarts, exits.
    Single,
    /// A cluster worker: serves.
    Worker,
}

/// What a confined process may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Paths (canonical) and what is allowed beneath each.
    pub paths: BTreeSet<(Access, PathBuf)>,
    /// TCP ports it may bind.
    pub bind_ports: BTreeSet<u16>,
}

impl Rules {
    fn add(&mut self, access: Access, path: &Path) {
        // Only what exists can carry a rule; canonical, so that a rule and
        // a later comparison agree on symlinked paths.
        if let Ok(p) = std::fs::canonicalize(path) {
            self.paths.insert((access, p));
        }
    }

    /// A path's directory, and the directory of what it resolves to.
    fn add_dirs_of(&mut self, access: Access, path: &Path) {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.add(access, parent);
        } else {
            self.add(access, Path::new("."));
        }
        if let Some(parent) = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            self.add(access, &parent);
        }
    }

    /// The rules of `self` that `granted` does not cover: a path is
    /// covered by a rule of the same access on it or on a directory above
    /// it.
    fn beyond(&self, granted: &Rules) -> Vec<String> {
        let mut out: Vec<String> = self
            .paths
            .iter()
            .filter(|(a, p)| {
                !granted
                    .paths
                    .iter()
                    .any(|(ga, gp)| ga.rights() & a.rights() == a.rights() && p.starts_with(gp))
            })
            .map(|(a, p)| format!("{} {}", a.word(), p.display()))
            .collect();
        out.extend(
            self.bind_ports
                .difference(&granted.bind_ports)
                .map(|p| format!("bind tcp {p}")),
        );
        out
    }

    /// The banner's list: each access with its paths, then the ports.
    pub fn describe(&self, abi: u32) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut access = None;
        for (a, p) in &self.paths {
            if access == Some(*a) {
                let last = parts.last_mut().expect("a part per access");
                last.push_str(&format!(", {}", p.display()));
            } else {
                parts.push(format!("{} {}", a.word(), p.display()));
                access = Some(*a);
            }
        }
        if abi >= ABI_NET {
            if self.bind_ports.is_empty() {
                parts.push("no bind".to_string());
            } else {
                let ports: Vec<String> = self.bind_ports.iter().map(u16::to_string).collect();
                parts.push(format!("bind tcp {}", ports.join(", ")));
            }
            parts.push("no connect".to_string());
        } else {
            parts.push(format!(
                "TCP bind and connect not restricted (needs ABI {ABI_NET})"
            ));
        }
        parts.join("; ")
    }
}

/// What `config` needs in `role`.
pub fn rules(config: &Config, role: Role) -> Rules {
    let mut r = Rules::default();
    r.add(Access::Read, &config.dir);
    r.add(Access::Read, Path::new("/proc/self"));
    for p in &config.landlock_extra.read {
        r.add(Access::Read, p);
    }
    for p in &config.landlock_extra.write {
        r.add(Access::Write, p);
    }
    // In `only` mode the configured binds are a fallback for a start
    // without systemd; the ports catamount serves on are systemd's.
    if config.activated != ActivatedMode::Only {
        for spec in &config.binds {
            if let BindSpec::Tcp { port, .. } = spec {
                if *port != 0 {
                    r.bind_ports.insert(*port);
                }
            }
        }
    }
    if role == Role::Worker {
        return r;
    }
    if let Some(f) = &config.config_file {
        r.add_dirs_of(Access::ReadFiles, f);
    }
    for spec in &config.binds {
        if let Some(t) = spec.tls() {
            for p in t
                .paths()
                .filter(|p| activation::inherited_name(p).is_none())
            {
                r.add_dirs_of(Access::ReadFiles, p);
            }
        }
        if let BindSpec::Unix { path, .. } = spec {
            r.add_dirs_of(Access::Sockets, path);
        }
    }
    match &config.control_url {
        Some(BindSpec::Unix { path, .. }) => r.add_dirs_of(Access::Sockets, path),
        Some(BindSpec::Tcp { port, .. }) if *port != 0 => {
            r.bind_ports.insert(*port);
        }
        _ => {}
    }
    for p in [&config.pidfile, &config.state_path].into_iter().flatten() {
        r.add_dirs_of(Access::Write, p);
    }
    if let Ok(exe) = std::env::current_exe() {
        r.add_dirs_of(Access::ReadExec, &exe);
    }
    for lib in mapped_executables() {
        r.add_dirs_of(Access::ReadExec, &lib);
    }
    r.add(Access::ReadFiles, Path::new(LOADER_CACHE));
    for f in NAME_SERVICE_FILES {
        r.add(Access::ReadFiles, Path::new(f));
    }
    r.add(Access::ReadWrite, Path::new("/dev/null"));
    r
}

/// The files mapped executable into this process (its binary, the loader,
/// libc...), from /proc/self/maps.
fn mapped_executables() -> BTreeSet<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let perms = f.nth(1)?;
            let path = f.nth(3)?;
            (perms.contains('x') && path.starts_with('/')).then(|| PathBuf::from(path))
        })
        .collect()
}

/// How confinement went.
#[derive(Debug)]
pub enum Outcome {
    /// Confined: the ABI and the rules (for the banner).
    Confined { abi: u32, rules: Rules },
    /// The kernel has no Landlock (or it is turned off): why, for one
    /// warning line.
    Unavailable(String),
}

impl Outcome {
    /// The banner's line.
    pub fn banner(&self) -> String {
        match self {
            Outcome::Confined { abi, rules } => {
                format!("* Confined by Landlock ABI {abi}: {}", rules.describe(*abi))
            }
            Outcome::Unavailable(why) => {
                format!("! Landlock is not available ({why}); serving unconfined")
            }
        }
    }
}

/// The rules this process is confined by, once [`confine`] succeeded.
static CONFINED: OnceLock<Rules> = OnceLock::new();

/// Largest number of Landlock layers on a process (the kernel's
/// LANDLOCK_MAX_NUM_LAYERS): past it, restrict_self fails with E2BIG.
const MAX_LAYERS_ERRNO: i32 = libc::E2BIG;

/// Confines the calling process (call while it has one thread) to what
/// `config` needs in `role`. An error only when the kernel has Landlock
/// and the ruleset could not be made or enforced: serving unconfined then
/// would hide a broken promise, so the caller fails.
pub fn confine(config: &Config, role: Role) -> Result<Outcome, String> {
    let abi = match sys::landlock_abi() {
        Ok(abi) => abi,
        Err(e) => return Ok(Outcome::Unavailable(e.to_string())),
    };
    let rules = rules(config, role);
    let mut handled = FS_ABI1;
    if abi >= 2 {
        handled |= FS_REFER;
    }
    if abi >= 3 {
        handled |= FS_TRUNCATE;
    }
    if abi >= 5 {
        handled |= FS_IOCTL_DEV;
    }
    let net = if abi >= ABI_NET {
        NET_BIND_TCP | NET_CONNECT_TCP
    } else {
        0
    };
    let fail = |what: &str, e: io::Error| {
        format!("cannot confine the server with Landlock ({what}: {e}); turn it off with --no-landlock (landlock false) if this kernel cannot do it")
    };
    let ruleset = sys::landlock_ruleset(handled, net).map_err(|e| fail("ruleset", e))?;
    for (access, path) in &rules.paths {
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
        else {
            continue;
        };
        let mut rights = access.rights() & handled;
        if !file.metadata().is_ok_and(|m| m.is_dir()) {
            rights &= FILE_RIGHTS;
        }
        sys::landlock_allow_path(ruleset.as_fd(), file.as_fd(), rights)
            .map_err(|e| fail(&path.display().to_string(), e))?;
    }
    if net != 0 {
        for &port in &rules.bind_ports {
            sys::landlock_allow_port(ruleset.as_fd(), port, NET_BIND_TCP)
                .map_err(|e| fail(&format!("tcp port {port}"), e))?;
        }
    }
    match sys::landlock_restrict_self(ruleset.as_fd()) {
        Ok(()) => {}
        // Already confined by as many layers as the kernel allows (a long
        // line of hot restarts): those stay, and they are at least as
        // narrow as these rules.
        Err(e) if e.raw_os_error() == Some(MAX_LAYERS_ERRNO) => {}
        Err(e) => return Err(fail("restrict_self", e)),
    }
    let _ = CONFINED.set(rules.clone());
    Ok(Outcome::Confined { abi, rules })
}

/// `Ok` unless this process is confined and `new` (a reloaded
/// configuration) would need a path or port its rules do not allow: a
/// reload keeps the confinement, so that reload is refused, saying what
/// it needs and what to do.
pub fn check_reload(new: &Config) -> Result<(), String> {
    let Some(granted) = CONFINED.get() else {
        return Ok(());
    };
    let needed = rules(new, Role::Single);
    let beyond = needed.beyond(granted);
    if beyond.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the new configuration needs what this process's Landlock confinement does not \
         allow ({}); a reload keeps the confinement: restart the service (systemctl restart) \
         to apply it, or turn Landlock off (landlock false)",
        beyond.join("; ")
    ))
}

/// Whether `config` asks for confinement: on unless turned off, for the
/// binary; only when asked for, for an embedder (see `Server::confine`).
pub fn wanted(config: &Config) -> bool {
    config.landlock == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(paths: &[(Access, &str)], ports: &[u16]) -> Rules {
        Rules {
            paths: paths.iter().map(|(a, p)| (*a, PathBuf::from(p))).collect(),
            bind_ports: ports.iter().copied().collect(),
        }
    }

    #[test]
    fn a_reload_is_covered_by_the_same_or_a_wider_rule() {
        let granted = rules_of(
            &[(Access::Read, "/srv/www"), (Access::Write, "/run/app")],
            &[80],
        );
        let same = rules_of(&[(Access::Read, "/srv/www/sub")], &[80]);
        assert!(same.beyond(&granted).is_empty());
        let wider = rules_of(
            &[(Access::Read, "/srv/other"), (Access::Write, "/srv/www")],
            &[80, 443],
        );
        assert_eq!(
            wider.beyond(&granted),
            vec![
                "read /srv/other".to_string(),
                "write files in /srv/www".to_string(),
                "bind tcp 443".to_string()
            ]
        );
    }

    #[test]
    fn the_banner_groups_paths_by_access() {
        let r = rules_of(
            &[
                (Access::Read, "/srv/www"),
                (Access::Read, "/proc/1"),
                (Access::Write, "/run/app"),
            ],
            &[9292],
        );
        assert_eq!(
            r.describe(7),
            "read /proc/1, /srv/www; write files in /run/app; bind tcp 9292; no connect"
        );
        assert_eq!(
            r.describe(3),
            "read /proc/1, /srv/www; write files in /run/app; \
             TCP bind and connect not restricted (needs ABI 4)"
        );
    }
}
