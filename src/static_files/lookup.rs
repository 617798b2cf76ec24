//! Finding a file beneath the root: openat2(`RESOLVE_BENEATH`) or, where
//! the kernel lacks it, a walk that opens one name at a time; what was
//! opened ([`Opened`], with a small file's bytes); and the open file cache.

use super::*;

impl StaticFiles {
    /// [`StaticFiles::open`] through the cache: a hot file costs no
    /// system call until its entry is older than [`OPEN_FILE_CACHE_VALID`];
    /// missing files (e.g. absent `.br`/`.gz` siblings) are cached too.
    pub(super) fn open_cached(&self, rel: &Path) -> Result<Arc<Opened>, StaticError> {
        let now = Instant::now();
        // Entries the cache lets go of. Declared before the lock guards, so
        // dropped after them: the last close of a deleted file frees its
        // blocks, which can take a while, and no lookup waits for it.
        let mut dropped = Vec::new();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.lookup(rel, now, &mut dropped) {
                return hit;
            }
        }
        let opened = self
            .open(rel)
            .map(|(file, meta)| Opened::new(rel, file, meta));
        // 403 and 500 may be passing conditions: only cache answers that
        // describe the tree. A small file that came up short when read is
        // changing under us: look again next time.
        let changing = matches!(&opened, Ok(o) if is_small_file(&o.meta) && o.content.is_none());
        if changing || !matches!(opened, Ok(_) | Err(StaticError::NotFound)) {
            return opened.map(Arc::new);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let result = opened.map(|mut o| {
            if !cache.admit(rel, o.content.as_deref(), now, &mut dropped) {
                o.content = None;
            }
            Arc::new(o)
        });
        cache.insert(rel.to_path_buf(), now, result.clone(), &mut dropped);
        result
    }

    /// Opens `rel` beneath the root and returns it with its metadata (taken
    /// from the open descriptor, so length and validators describe what is
    /// sent). Anything that is neither a regular file nor a directory is
    /// 404. The check that nothing leaves the root and the open are one
    /// kernel operation ([`Resolver::Openat2`]) or a walk that never
    /// resolves a name outside it ([`Resolver::Walk`]), so a rename racing
    /// the lookup cannot make it reach a file outside the root (issue 11).
    pub(super) fn open(&self, rel: &Path) -> Result<(File, Metadata), StaticError> {
        let root = self.root_dir.as_ref().ok_or(StaticError::NotFound)?;
        let mut attempts = 1;
        let file = loop {
            match self.open_beneath(root, rel) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && attempts < RESOLVE_ATTEMPTS => {
                    attempts += 1;
                }
                other => break other.map_err(|e| self.fs_error(rel, &e))?,
            }
        };
        let meta = file.metadata().map_err(|e| self.fs_error(rel, &e))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(StaticError::NotFound);
        }
        Ok((file, meta))
    }

    /// [`StaticError::from_io`], logging the process's first 403 with its
    /// reason: a docroot the service user cannot read otherwise shows only
    /// as 403s to clients.
    pub(super) fn fs_error(&self, rel: &Path, e: &io::Error) -> StaticError {
        let error = StaticError::from_io(e);
        if error == StaticError::Forbidden && !FORBIDDEN_LOGGED.swap(true, Ordering::Relaxed) {
            let path = Path::new("/").join(rel);
            crate::log::warn(&format!(
                "! 403 Forbidden for {path:?} under {}: the file system refused access ({e}); \
                 make the files under DIR readable, and its directories searchable, by the \
                 user catamount runs as (only the first 403 of a process is logged)",
                self.root.display()
            ));
        }
        error
    }

    /// One attempt of [`StaticFiles::open`], before the type check. The
    /// dotfile rule also holds for where symlinks lead: without
    /// `serve_dotfiles`, a symlink `a -> .git` is refused like `.git`.
    pub(super) fn open_beneath(&self, root: &File, rel: &Path) -> io::Result<File> {
        let refused = || io::Error::from(io::ErrorKind::NotFound);
        match self.resolver {
            Resolver::Openat2 => {
                let target = if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    rel
                };
                // The common case: no symlink on the way, so the request's
                // own segments (already checked for dot-names) are the
                // whole path.
                match sys::open_beneath(root, target, Symlinks::Refuse) {
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
                    other => return other,
                }
                let file = sys::open_beneath(root, target, Symlinks::FollowBeneath)?;
                if !self.serve_dotfiles && !self.reached_without_dot_names(&file) {
                    return Err(refused());
                }
                Ok(file)
            }
            Resolver::Walk => {
                let (file, names) = walk_beneath(root, rel)?;
                if !self.serve_dotfiles && names.iter().any(|n| is_dot_name(n)) {
                    return Err(refused());
                }
                Ok(file)
            }
        }
    }

    /// Whether `file`, opened through a symlink, lies where no component
    /// below the root is dot-named, by the path the kernel gives for its
    /// descriptor (`/proc/self/fd/N`, the file's place now). False when
    /// that cannot be told (no `/proc`; the root itself moved): the file
    /// is then refused, not served.
    pub(super) fn reached_without_dot_names(&self, file: &File) -> bool {
        let Ok(path) = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
            return false;
        };
        let Ok(inside) = path.strip_prefix(&self.root) else {
            return false;
        };
        !inside
            .components()
            .any(|c| matches!(c, Component::Normal(name) if is_dot_name(name)))
    }
}

/// How lookups resolve a path beneath the root's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolver {
    /// openat2(2) with `RESOLVE_BENEATH` (Linux 5.6+): the kernel resolves
    /// and checks in one call. Relative symlinks that stay beneath the root
    /// are followed; absolute symlinks are refused (`EXDEV`), even ones
    /// that name a place inside the root.
    Openat2,
    /// [`walk_beneath`], one openat(2) per component, where openat2 is
    /// missing: `ENOSYS` before Linux 5.6, `EPERM` under container seccomp
    /// profiles older than it. Same answers, more system calls.
    Walk,
}

impl Resolver {
    /// Openat2 if the kernel (and any seccomp filter) lets it open the
    /// root itself, else Walk.
    pub(super) fn probe(root: &File) -> Resolver {
        match sys::open_beneath(root, Path::new("."), Symlinks::Refuse) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                Resolver::Walk
            }
            _ => Resolver::Openat2,
        }
    }
}

/// Resolves `rel` beneath `root` one name at a time, for kernels without
/// openat2 ([`Resolver::Walk`]), with the answers of `RESOLVE_BENEATH`.
/// Each step opens one name relative to the directory reached so far with
/// `O_PATH | O_NOFOLLOW`, so the kernel never follows a symlink for us:
/// a symlink's target is read from the handle just opened (not by name
/// again) and walked the same way from the directory holding it. An
/// absolute target or a `..` above the root is `EXDEV`; `..` goes back to
/// the handle of the directory we came through, never to whatever the
/// parent is by then; more than [`MAX_SYMLINKS`] links is `ELOOP`.
/// Returns the file opened for reading and the names under the root it
/// was found at (for the dotfile rule).
pub(super) fn walk_beneath(root: &File, rel: &Path) -> io::Result<(File, Vec<OsString>)> {
    let os_err = io::Error::from_raw_os_error;
    let mut pending = VecDeque::new();
    prepend_names(&mut pending, rel.as_os_str());
    // The directories below the root we are in, with their names.
    let mut dirs: Vec<(File, OsString)> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        match name.as_bytes() {
            b"." => continue,
            b".." => {
                dirs.pop().ok_or_else(|| os_err(libc::EXDEV))?;
                continue;
            }
            _ => {}
        }
        let here = dirs.last().map_or(root, |(dir, _)| dir);
        let entry = sys::open_entry(here, &name)?;
        let meta = entry.metadata()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(os_err(libc::ELOOP));
            }
            let target = sys::read_link(&entry)?;
            if target.as_bytes().starts_with(b"/") {
                return Err(os_err(libc::EXDEV));
            }
            prepend_names(&mut pending, &target);
            continue;
        }
        if !pending.is_empty() {
            if !meta.is_dir() {
                return Err(os_err(libc::ENOTDIR));
            }
            dirs.push((entry, name));
            continue;
        }
        // The last name. Only files and directories are opened for
        // reading (opening a device can have effects), by name again but
        // without following, and only if it is still the entry we saw.
        if !meta.is_file() && !meta.is_dir() {
            return Err(os_err(libc::ENOENT));
        }
        let file = match sys::open_read_nofollow(here, &name) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(os_err(libc::EAGAIN)),
            other => other?,
        };
        let now = file.metadata()?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(os_err(libc::EAGAIN));
        }
        let mut names: Vec<OsString> = dirs.into_iter().map(|(_, n)| n).collect();
        names.push(name);
        return Ok((file, names));
    }
    // Every name was a directory, `.` or `..`: the answer is the directory
    // reached (the root itself for an empty path).
    let here = dirs.last().map_or(root, |(dir, _)| dir);
    let file = sys::open_read_nofollow(here, OsStr::new("."))?;
    Ok((file, dirs.into_iter().map(|(_, n)| n).collect()))
}

/// Puts the `/`-separated names of `path` in front of `pending`, in order
/// (empty names, from `//` or a trailing `/`, are dropped).
pub(super) fn prepend_names(pending: &mut VecDeque<OsString>, path: &OsStr) {
    for name in path.as_bytes().rsplit(|&b| b == b'/') {
        if !name.is_empty() {
            pending.push_front(OsStr::from_bytes(name).to_os_string());
        }
    }
}

/// A name the dotfile rule hides: it starts with `.`.
pub(super) fn is_dot_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".")
}

/// A file found under the root (shared by cache entries and answers), with
/// what every answer for it needs computed once at lookup.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) file: Arc<File>,
    pub(super) meta: Metadata,
    /// [`content_type`] of the path it was looked up by (once per lookup,
    /// not per answer).
    pub(super) ctype: &'static str,
    /// The identity representation's entity-tag.
    pub(super) etag: String,
    /// The mtime in seconds (never later than the lookup), and as sent.
    pub(super) last_modified: i64,
    pub(super) last_modified_text: String,
    /// All of a small regular file's bytes, read at lookup (dropped again
    /// when the cache's content budget is spent).
    pub(super) content: Option<Arc<[u8]>>,
}

impl Opened {
    pub(super) fn new(rel: &Path, file: File, meta: Metadata) -> Opened {
        let last_modified = last_modified_secs(&meta);
        let content = if is_small_file(&meta) {
            read_whole(&file, meta.len())
        } else {
            None
        };
        Opened {
            ctype: content_type(rel),
            etag: etag(&meta, Coding::Identity),
            last_modified,
            last_modified_text: http_date(last_modified),
            content,
            file: Arc::new(file),
            meta,
        }
    }

    /// Bytes `start..end` of the file: the cached bytes when it is cached
    /// (shared, not copied), else the open file for the engine to send.
    pub(super) fn body(&self, start: u64, end: u64) -> Body {
        let cached = self.content.as_ref().and_then(|c| {
            let range = usize::try_from(start).ok()?..usize::try_from(end).ok()?;
            SharedBytes::new(Arc::clone(c), range)
        });
        match cached {
            Some(bytes) => Body::Shared(bytes),
            None => Body::File {
                file: Arc::clone(&self.file),
                offset: start,
                len: end - start,
            },
        }
    }
}

/// A regular file small enough for its bytes to be cached.
pub(super) fn is_small_file(meta: &Metadata) -> bool {
    meta.is_file() && meta.len() <= CACHED_CONTENT_MAX
}

/// `len` bytes of `file` from its start, or `None` when it no longer has
/// them (it shrank since its metadata was read) or cannot be read.
pub(super) fn read_whole(file: &File, len: u64) -> Option<Arc<[u8]>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(bytes.into())
}

/// One cache entry: what a lookup found, and when.
pub(super) struct Cached {
    pub(super) at: Instant,
    pub(super) result: Result<Arc<Opened>, StaticError>,
}

/// The lookup cache: entries by relative path, and the file bytes they hold.
///
/// An entry (and the descriptor in it) is let go of when a lookup of its
/// path finds it past [`OPEN_FILE_CACHE_VALID`], whatever the new lookup
/// finds, and by the sweep the first lookup of any path makes once
/// [`OPEN_FILE_CACHE_SWEEP`] has passed since the last one: a file deleted
/// or replaced on disk is not held open (its blocks allocated) longer than
/// `OPEN_FILE_CACHE_VALID + OPEN_FILE_CACHE_SWEEP` after it was looked up,
/// on a server that answers requests (an idle one lets go at its next
/// request). Methods move what they drop into `dropped`, for the caller
/// to close after releasing the lock.
#[derive(Default)]
pub(super) struct OpenCache {
    pub(super) entries: HashMap<PathBuf, Cached>,
    /// Bytes of `Opened::content` held by `entries`.
    pub(super) content_bytes: usize,
    /// When a lookup next sweeps out every expired entry (`None`: the
    /// first lookup does).
    pub(super) next_sweep: Option<Instant>,
}

impl OpenCache {
    /// The entry for `rel` if it is still within its re-check. An expired
    /// one is dropped here, and every OPEN_FILE_CACHE_SWEEP all expired
    /// entries are.
    pub(super) fn lookup(
        &mut self,
        rel: &Path,
        now: Instant,
        dropped: &mut Vec<Cached>,
    ) -> Option<Result<Arc<Opened>, StaticError>> {
        if self.next_sweep.map_or(true, |at| now >= at) {
            self.next_sweep = Some(now + OPEN_FILE_CACHE_SWEEP);
            self.drop_expired(now, dropped);
        }
        let entry = self.entries.get(rel)?;
        if now.duration_since(entry.at) < OPEN_FILE_CACHE_VALID {
            return Some(entry.result.clone());
        }
        self.remove(rel, dropped);
        None
    }

    /// Whether `content` (the bytes a new lookup of `rel` read at `now`)
    /// fits the budget once `rel`'s old entry is gone; if so they are
    /// counted. When they do not fit, entries past their re-check (never
    /// answered from again: the next lookup re-opens) are dropped first, so
    /// files looked up once cannot hold the budget from hot ones.
    pub(super) fn admit(
        &mut self,
        rel: &Path,
        content: Option<&[u8]>,
        now: Instant,
        dropped: &mut Vec<Cached>,
    ) -> bool {
        let Some(content) = content else {
            return false;
        };
        let fits = |cache: &OpenCache| {
            let replaced = cache
                .entries
                .get(rel)
                .map_or(0, |c| Cached::content_len(&c.result));
            cache.content_bytes - replaced + content.len() <= CACHED_CONTENT_BUDGET
        };
        if !fits(self) {
            self.drop_expired(now, dropped);
            if !fits(self) {
                return false;
            }
        }
        self.content_bytes += content.len();
        true
    }

    /// Stores a lookup (its content already counted by `admit`), emptying
    /// the cache first when it is full.
    pub(super) fn insert(
        &mut self,
        rel: PathBuf,
        at: Instant,
        result: Result<Arc<Opened>, StaticError>,
        dropped: &mut Vec<Cached>,
    ) {
        let new = Cached::content_len(&result);
        self.remove(&rel, dropped);
        if self.entries.len() >= OPEN_FILE_CACHE_MAX {
            dropped.extend(self.entries.drain().map(|(_, c)| c));
            self.content_bytes = new;
        }
        self.entries.insert(rel, Cached { at, result });
    }

    /// Drops the entry for `rel`, if any, and its content from the count.
    pub(super) fn remove(&mut self, rel: &Path, dropped: &mut Vec<Cached>) {
        if let Some(old) = self.entries.remove(rel) {
            self.content_bytes -= Cached::content_len(&old.result);
            dropped.push(old);
        }
    }

    /// Drops every entry past its re-check.
    pub(super) fn drop_expired(&mut self, now: Instant, dropped: &mut Vec<Cached>) {
        let expired: Vec<PathBuf> = self
            .entries
            .iter()
            .filter(|(_, c)| now.duration_since(c.at) >= OPEN_FILE_CACHE_VALID)
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in expired {
            self.remove(&rel, dropped);
        }
    }
}

impl Cached {
    pub(super) fn content_len(result: &Result<Arc<Opened>, StaticError>) -> usize {
        result
            .as_ref()
            .ok()
            .and_then(|o| o.content.as_ref())
            .map_or(0, |c| c.len())
    }
}
