//! The default app: serves the files under one directory, read-only.
//!
//! What this file owns:
//! - turning a request path into a file under the root without ever leaving
//!   it (strict percent-decoding, no `..`, no encoded `/` or `\`); every
//!   lookup, including index files, `.br`/`.gz` siblings and the entries of
//!   a listing, is opened relative to a descriptor of the root opened once,
//!   with openat2(`RESOLVE_BENEATH`), so the kernel checks and opens in one
//!   step and a rename racing the lookup cannot lead outside (issue 11);
//!   kernels without openat2 get `walk_beneath`, one name at a time;
//! - directory handling (redirect to the slash form, `index.html`, optional
//!   HTML listing);
//! - the representation headers (`Content-Type` from the extension table in
//!   [`content_type`], `ETag`, `Last-Modified`, `Cache-Control`, `Vary`);
//! - conditional requests (`If-Match`, `If-Unmodified-Since`,
//!   `If-None-Match`, `If-Modified-Since`, in the order of RFC 9110
//!   §13.2.2), single byte ranges (`Range`, `If-Range`) and precompressed
//!   `.br`/`.gz` siblings;
//!
//! Large files are never read into memory: an answer carries [`Body::File`]
//! and the engine sends it with `sendfile(2)`. A small file (up to
//! [`CACHED_CONTENT_MAX`]) is read once when it is looked up and kept with
//! its cache entry (within [`CACHED_CONTENT_BUDGET`] per app), so a hot
//! small file costs no system call but the send; it is answered as
//! [`Body::Shared`] (the cached bytes, not a copy) and leaves with its head in
//! one send. The engine also drops the body of
//! `HEAD` and `304` answers, so `HEAD` is answered like `GET`, except that
//! `Range` applies to `GET` only (RFC 9110 §14.2).
//!
//! By role: here the app, its errors and the request path from a target
//! to a response; `lookup.rs` opening files beneath the root and the open
//! file cache; `headers.rs` the validators, conditional requests, ranges
//! and content codings; `types.rs` the `Content-Type` table.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lookups are re-checked at most this often: a file changed on disk is
/// seen within this time (nginx's `open_file_cache_valid`, 60 s there).
pub const OPEN_FILE_CACHE_VALID: Duration = Duration::from_secs(1);
/// Cache entries kept before the cache is emptied and refilled.
pub const OPEN_FILE_CACHE_MAX: usize = 1024;
/// How often a lookup (of any path) drops every cache entry past its
/// re-check, closing the descriptors they hold: a file deleted on disk is
/// closed within `OPEN_FILE_CACHE_VALID + OPEN_FILE_CACHE_SWEEP` of its
/// lookup while the server answers requests, not kept open (its blocks
/// allocated) until its path is asked for again.
pub const OPEN_FILE_CACHE_SWEEP: Duration = Duration::from_secs(1);
/// Largest file whose bytes the cache keeps (read once at lookup; the same
/// bound as the engine's one-send coalescing of head and body).
pub const CACHED_CONTENT_MAX: u64 = 16 * 1024;
/// Most file bytes one app's cache holds at once (the binary has one app
/// per process, so per worker in cluster mode); entries past their
/// re-check make room first, and files that still do not fit are read
/// from disk per request.
pub const CACHED_CONTENT_BUDGET: usize = 1024 * 1024;
/// Longest file extension [`content_type`] looks up; longer ones are
/// `application/octet-stream`.
const MAX_EXTENSION_LEN: usize = 16;

use crate::sys::{self, EntryKind, Symlinks};
use crate::{date, Body, Config, Handler, Request, Response, SharedBytes};

mod headers;
mod lookup;
mod types;

use headers::*;
use lookup::*;
pub use types::{content_type, CONTENT_TYPES};

/// Most symlinks one lookup follows when paths are resolved one component
/// at a time, on kernels without openat2 (the kernel's own bound, which
/// openat2 applies, is `MAXSYMLINKS`, also 40); one more is `ELOOP`, a 404.
pub const MAX_SYMLINKS: usize = 40;
/// Tries one lookup gets when resolution answers `EAGAIN`: openat2 with
/// `RESOLVE_BENEATH` gives up on a `..` while any rename runs on the
/// system, and the component walk when a name changes under it. After the
/// last try the request gets 500.
pub const RESOLVE_ATTEMPTS: usize = 4;

/// Most entries shown in one directory listing; a larger directory is
/// listed partially with a note, so a huge directory cannot make one request
/// allocate without bound.
pub const MAX_LISTING_ENTRIES: usize = 10_000;

/// Set once a 403 from the file system has been logged: only the first of
/// the process is (issue 12), so a client cannot flood the log, and the
/// operator still learns why a file is refused.
static FORBIDDEN_LOGGED: AtomicBool = AtomicBool::new(false);

/// Set once a 404 for the root itself (no `index.html`, no listing) has
/// been logged with the hint to add one (issue 12): the first page a new
/// operator asks for should not be a bare 404 with no word why.
static EMPTY_ROOT_LOGGED: AtomicBool = AtomicBool::new(false);

/// The methods this app answers, as sent in `Allow` with a 405.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Serves the files under one directory: the `catamount` binary's app, and
/// a [`Handler`] an embedder can answer with behind routes of its own.
///
/// `GET` and `HEAD` only (others get 405); directories redirect to their
/// slash form and serve `index.html`; conditional and single-range
/// requests and precompressed `.br`/`.gz` siblings are answered; a path
/// never leads outside the root.
///
/// ```no_run
/// use catamount::static_files::StaticFiles;
/// use catamount::{Handler, Request, Response, Server};
///
/// struct App {
///     files: StaticFiles,
/// }
///
/// impl Handler for App {
///     fn handle(&self, req: &mut Request<'_>) -> Response {
///         match req.path() {
///             "/api/ping" => Response::text(200, "pong\n"),
///             _ => self.files.handle(req),
///         }
///     }
/// }
///
/// let server = Server::from_args().unwrap_or_else(|e| e.exit());
/// let files = StaticFiles::new(server.config().dir.clone(), server.config());
/// server.serve(App { files });
/// ```
pub struct StaticFiles {
    /// The canonical root (or the path as given when it could not be
    /// canonicalized), for telling where a file reached through a symlink
    /// lies under it (the dotfile rule).
    root: PathBuf,
    /// The root, opened once here: every lookup resolves beneath this
    /// descriptor, never by path name. `None` when it could not be opened;
    /// then every request answers 404.
    root_dir: Option<File>,
    /// How lookups resolve beneath `root_dir`.
    resolver: Resolver,
    /// Recent lookups (found or not), re-checked after
    /// [`OPEN_FILE_CACHE_VALID`], as nginx's `open_file_cache`.
    cache: Mutex<OpenCache>,
    dir_listing: bool,
    serve_dotfiles: bool,
    cache_control: Option<String>,
}

impl StaticFiles {
    /// Serves `root` with the static-app options of `config`
    /// ([`dir_listing`](Config::dir_listing),
    /// [`serve_dotfiles`](Config::serve_dotfiles),
    /// [`cache_control`](Config::cache_control)); see
    /// [`with_options`](Self::with_options) for when `root` cannot be
    /// opened.
    ///
    /// ```
    /// use std::path::PathBuf;
    ///
    /// use catamount::static_files::StaticFiles;
    /// use catamount::Config;
    ///
    /// let config = Config { dir_listing: true, ..Config::default() };
    /// let files = StaticFiles::new(PathBuf::from("."), &config);
    /// # let _ = files;
    /// ```
    pub fn new(root: PathBuf, config: &Config) -> Self {
        StaticFiles::with_options(
            root,
            config.dir_listing,
            config.serve_dotfiles,
            config.cache_control.clone(),
        )
    }

    /// Serves `root` with explicit options (what [`StaticFiles::new`] reads
    /// from the config).
    ///
    /// The root is canonicalized and opened once here, and whether the
    /// kernel has openat2(2) is found out (see `Resolver`). If the root
    /// cannot be opened (it does not exist yet, or is unreadable) every
    /// request answers 404.
    ///
    /// ```
    /// use std::path::PathBuf;
    ///
    /// use catamount::static_files::StaticFiles;
    ///
    /// let assets = StaticFiles::with_options(
    ///     PathBuf::from("/srv/app/assets"),
    ///     false, // no directory listings
    ///     false, // no dotfiles
    ///     Some("public, max-age=3600".to_string()),
    /// );
    /// # let _ = assets;
    /// ```
    pub fn with_options(
        root: PathBuf,
        dir_listing: bool,
        serve_dotfiles: bool,
        cache_control: Option<String>,
    ) -> Self {
        let root = fs::canonicalize(&root).unwrap_or(root);
        let root_dir = File::open(&root).ok();
        let resolver = match &root_dir {
            Some(dir) => Resolver::probe(dir),
            None => Resolver::Openat2,
        };
        StaticFiles {
            root,
            root_dir,
            resolver,
            cache: Mutex::new(OpenCache::default()),
            dir_listing,
            serve_dotfiles,
            cache_control,
        }
    }
}

impl Handler for StaticFiles {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        match self.serve(req) {
            Ok(resp) => resp,
            Err(e) => e.response(),
        }
    }

    /// A reload re-reads DIR and the static-app options.
    fn reconfigure(&mut self, config: &Config) {
        *self = StaticFiles::new(config.dir.clone(), config);
    }
}

/// Why a request gets no file. Each maps to one status code; the body is
/// the short text of [`fmt::Display`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StaticError {
    /// 400: the target is not origin-form or holds a broken `%`-escape.
    BadRequest,
    /// 403: the file or a directory on its path refused us (EACCES/EPERM).
    Forbidden,
    /// 404: no such file, or a path this app refuses to map (traversal,
    /// dotfile, outside the root, not a regular file).
    NotFound,
    /// 500: any other I/O error.
    Internal,
}

impl StaticError {
    fn status(self) -> u16 {
        match self {
            StaticError::BadRequest => 400,
            StaticError::Forbidden => 403,
            StaticError::NotFound => 404,
            StaticError::Internal => 500,
        }
    }

    fn response(self) -> Response {
        Response::text(self.status(), format!("{self}\n"))
    }

    /// Maps a filesystem error. `ENOTDIR` (`/file.txt/x`), `ELOOP` (a
    /// symlink cycle, or too many links), `ENAMETOOLONG` and `EXDEV` (a
    /// path that would leave the root) name no servable file, so they are
    /// 404 rather than 500. (Only errno constants are used here; no libc
    /// call.)
    fn from_io(e: &io::Error) -> StaticError {
        match e.kind() {
            io::ErrorKind::NotFound => StaticError::NotFound,
            io::ErrorKind::PermissionDenied => StaticError::Forbidden,
            _ => match e.raw_os_error() {
                Some(libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG | libc::EXDEV) => {
                    StaticError::NotFound
                }
                _ => StaticError::Internal,
            },
        }
    }
}

impl fmt::Display for StaticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StaticError::BadRequest => "Bad Request",
            StaticError::Forbidden => "Forbidden",
            StaticError::NotFound => "Not Found",
            StaticError::Internal => "Internal Server Error",
        })
    }
}

/// A request path after strict decoding: the segments to join under the
/// root (each valid UTF-8, none empty, `.` or `..`, none holding `/`, `\`
/// or NUL) and whether the path ended in `/`.
#[derive(Debug, PartialEq, Eq)]
struct DecodedPath {
    segments: Vec<String>,
    trailing_slash: bool,
}

impl DecodedPath {
    /// The relative filesystem path under the root.
    fn rel(&self) -> PathBuf {
        self.segments.iter().collect()
    }

    /// The canonical URL path of this directory with its trailing slash,
    /// re-encoded from the segments. Built from the decoded form, never from
    /// the raw target, so `//evil.example/` cannot become a
    /// scheme-relative `Location`.
    fn dir_url(&self) -> String {
        let mut url = String::from("/");
        for seg in &self.segments {
            url.push_str(&percent_encode(seg));
            url.push('/');
        }
        url
    }
}

impl StaticFiles {
    fn serve(&self, req: &Request<'_>) -> Result<Response, StaticError> {
        let method = req.method();
        if method != "GET" && method != "HEAD" {
            return Ok(Response::text(405, "Method Not Allowed\n").header("Allow", ALLOWED_METHODS));
        }
        // Only origin-form is meaningful here; `*` and absolute-form are not
        // paths under a root.
        if !req.target().starts_with('/') {
            return Err(StaticError::BadRequest);
        }
        let decoded = decode_path(req.path())?;
        if !self.serve_dotfiles && decoded.segments.iter().any(|s| s.starts_with('.')) {
            return Err(StaticError::NotFound);
        }
        let rel = decoded.rel();
        let found = self.open_cached(&rel)?;
        if found.meta.is_dir() {
            if !decoded.trailing_slash {
                let mut location = decoded.dir_url();
                if let Some(q) = req.query() {
                    location.push('?');
                    location.push_str(q);
                }
                return Ok(Response::text(301, "Moved Permanently\n").header("Location", location));
            }
            return self.directory(req, &decoded, &found);
        }
        // A file named like a directory (`/a.txt/`) is not that file.
        if decoded.trailing_slash {
            return Err(StaticError::NotFound);
        }
        Ok(self.file(req, &rel, found))
    }

    /// `/dir/`: its `index.html`, else a listing when enabled, else 404.
    fn directory(
        &self,
        req: &Request<'_>,
        decoded: &DecodedPath,
        dir: &Opened,
    ) -> Result<Response, StaticError> {
        let index_rel = decoded.rel().join("index.html");
        match self.open_cached(&index_rel) {
            Ok(found) if found.meta.is_file() => return Ok(self.file(req, &index_rel, found)),
            // No index (or an index that is a directory or a device).
            Ok(_) | Err(StaticError::NotFound) => {}
            Err(e) => return Err(e),
        }
        if !self.dir_listing {
            if decoded.rel().as_os_str().is_empty()
                && !EMPTY_ROOT_LOGGED.swap(true, Ordering::Relaxed)
            {
                crate::log::warn(&format!(
                    "! 404 Not Found for /: {} has no index.html and directory listings are \
                     off; add an index.html, or pass --dir-listing (dir_listing true) to list \
                     the files (logged once)",
                    self.root.display()
                ));
            }
            return Err(StaticError::NotFound);
        }
        let html = self.listing(decoded, &dir.file)?;
        Ok(Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .body(Body::Bytes(html.into_bytes())))
    }

    /// An HTML page listing the open directory `dir` (what `decoded` was
    /// resolved to), sorted by name, directories with a trailing `/`. Names
    /// no request could reach (non-UTF-8, holding `\`, dot-names without
    /// `serve_dotfiles`) are left out, and so are entries a request would
    /// get 404 for: symlinks that leave the root, dangle or lead to a
    /// dot-name, FIFOs, sockets and devices.
    fn listing(&self, decoded: &DecodedPath, dir: &File) -> Result<String, StaticError> {
        let rel = decoded.rel();
        let mut entries: Vec<(String, bool)> = Vec::new();
        let mut truncated = false;
        sys::for_each_entry(dir, |name, kind| {
            let Some(name) = name.to_str() else {
                return ControlFlow::Continue(());
            };
            if name.contains('\\') || (!self.serve_dotfiles && name.starts_with('.')) {
                return ControlFlow::Continue(());
            }
            let is_dir = match kind {
                EntryKind::File => false,
                EntryKind::Dir => true,
                EntryKind::Other => return ControlFlow::Continue(()),
                // Shown as what a request for it gets, by the same lookup.
                EntryKind::Symlink | EntryKind::Unknown => match self.open(&rel.join(name)) {
                    Ok((_, meta)) => meta.is_dir(),
                    Err(_) => return ControlFlow::Continue(()),
                },
            };
            if entries.len() == MAX_LISTING_ENTRIES {
                truncated = true;
                return ControlFlow::Break(());
            }
            entries.push((name.to_string(), is_dir));
            ControlFlow::Continue(())
        })
        .map_err(|e| StaticError::from_io(&e))?;
        entries.sort();

        let title = html_escape(&display_path(decoded));
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
             <body>\n<h1>Index of {title}</h1>\n<ul>\n"
        );
        if !decoded.segments.is_empty() {
            html.push_str("<li><a href=\"../\">../</a></li>\n");
        }
        for (name, is_dir) in &entries {
            let slash = if *is_dir { "/" } else { "" };
            html.push_str(&format!(
                "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
                percent_encode(name),
                html_escape(name)
            ));
        }
        html.push_str("</ul>\n");
        if truncated {
            html.push_str(&format!(
                "<p>Only the first {MAX_LISTING_ENTRIES} entries are listed.</p>\n"
            ));
        }
        html.push_str("</body></html>\n");
        Ok(html)
    }

    /// Answers for a regular file: picks the representation, then applies
    /// conditionals and ranges to it.
    fn file(&self, req: &Request<'_>, rel: &Path, found: Arc<Opened>) -> Response {
        // The type of what was asked for, also when a .br/.gz sibling is sent.
        let ctype = found.ctype;
        let (found, coding) = self
            .pick_coding(req, rel)
            .unwrap_or((found, Coding::Identity));

        let len = found.meta.len();
        let etag = match coding {
            Coding::Identity => found.etag.clone(),
            _ => etag(&found.meta, coding),
        };
        let last_modified = found.last_modified;

        // The order of RFC 9110 §13.2.2. First If-Match, else
        // If-Unmodified-Since: a failed one is 412, whatever follows.
        let precondition_failed = match req.header("If-Match") {
            Some(im) => !if_match_matches(im, &etag),
            None => req
                .header("If-Unmodified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| last_modified > since),
        };
        if precondition_failed {
            return Response::text(412, "Precondition Failed\n").header("Vary", "Accept-Encoding");
        }
        // Then If-None-Match, else If-Modified-Since (this app answers only
        // GET and HEAD, for which a match is 304); then If-Range.
        let not_modified = match req.header("If-None-Match") {
            Some(inm) => if_none_match_matches(inm, &etag),
            None => req
                .header("If-Modified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| last_modified <= since),
        };
        // RFC 9110 §14.2: Range is defined for GET only; a HEAD is answered
        // with the head of the whole (200) answer.
        let range = match req.header("Range") {
            Some(r)
                if req.method() == "GET"
                    && !not_modified
                    && if_range_allows(req.header("If-Range"), &etag, last_modified) =>
            {
                parse_range(r, len)
            }
            _ => RangeAnswer::Full,
        };
        if let RangeAnswer::Unsatisfiable = range {
            return Response::text(416, "Range Not Satisfiable\n")
                .header("Content-Range", format!("bytes */{len}"))
                .header("Accept-Ranges", "bytes")
                .header("Vary", "Accept-Encoding");
        }

        let mut resp = Response::new(if not_modified { 304 } else { 200 });
        resp.headers.reserve(8);
        if !not_modified {
            let (start, end) = match range {
                RangeAnswer::Partial { start, end } => {
                    resp.status = 206;
                    resp = resp.header("Content-Range", format!("bytes {start}-{end}/{len}"));
                    (start, end + 1)
                }
                _ => (0, len),
            };
            resp.body = found.body(start, end);
            resp = resp.header("Content-Type", ctype);
            if let Some((_, encoding, _)) = coding.names() {
                resp = resp.header("Content-Encoding", encoding);
            }
            resp = resp.header("Accept-Ranges", "bytes");
        }
        // Validator headers: on 200, 206 and 304 alike (RFC 9110 §15.4.5).
        resp = resp
            .header("ETag", etag)
            .header("Last-Modified", found.last_modified_text.as_str())
            .header("Vary", "Accept-Encoding");
        if let Some(cc) = &self.cache_control {
            resp = resp.header("Cache-Control", cc.as_str());
        }
        resp
    }

    /// The precompressed sibling to send instead of `rel`, if the client
    /// accepts its coding and it is a regular file under the root: `.br`
    /// first, then `.gz`. Any problem with a sibling just means "send the
    /// original".
    fn pick_coding(&self, req: &Request<'_>, rel: &Path) -> Option<(Arc<Opened>, Coding)> {
        let accept = req.header("Accept-Encoding")?;
        for coding in [Coding::Brotli, Coding::Gzip] {
            let Some((suffix, _, _)) = coding.names() else {
                continue;
            };
            if !accepts_coding(accept, coding) {
                continue;
            }
            let mut name = rel.as_os_str().to_owned();
            name.push(suffix);
            if let Ok(o) = self.open_cached(Path::new(&name)) {
                if o.meta.is_file() {
                    return Some((o, coding));
                }
            }
        }
        None
    }
}

/// Strictly decodes an origin-form path (without its query).
///
/// A broken `%`-escape is 400. A segment that decodes to `.` or `..`, or
/// holds NUL, `/` (only possible from `%2F`), `\` (raw or `%5C`), or is not
/// UTF-8 is 404. Empty segments (`//`) collapse.
fn decode_path(path: &str) -> Result<DecodedPath, StaticError> {
    let raw = path.strip_prefix('/').ok_or(StaticError::BadRequest)?;
    // Decode everything first so a malformed escape is always 400, wherever
    // it sits.
    let decoded = raw
        .split('/')
        .map(percent_decode)
        .collect::<Result<Vec<_>, _>>()?;
    let mut segments = Vec::with_capacity(decoded.len());
    for bytes in decoded {
        if bytes.is_empty() {
            continue;
        }
        if bytes.iter().any(|&b| b == 0 || b == b'/' || b == b'\\') {
            return Err(StaticError::NotFound);
        }
        let seg = String::from_utf8(bytes).map_err(|_| StaticError::NotFound)?;
        if seg == "." || seg == ".." {
            return Err(StaticError::NotFound);
        }
        segments.push(seg);
    }
    Ok(DecodedPath {
        segments,
        trailing_slash: path.ends_with('/'),
    })
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is 400.
fn percent_decode(s: &str) -> Result<Vec<u8>, StaticError> {
    crate::http::percent_decode(s).ok_or(StaticError::BadRequest)
}

/// Percent-encodes every byte outside RFC 3986 `unreserved`, so the result
/// is safe as a path segment and as a relative reference (`a:b` becomes
/// `a%3Ab`, not a URL with scheme `a`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The decoded directory path with its slashes, for a listing's title.
fn display_path(decoded: &DecodedPath) -> String {
    let mut s = String::from("/");
    for seg in &decoded.segments {
        s.push_str(seg);
        s.push('/');
    }
    s
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
