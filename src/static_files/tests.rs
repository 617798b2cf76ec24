//! The static app served over real requests to files in a temporary
//! root, and its header parsers.

use super::headers::*;
use super::lookup::*;
use super::*;
use crate::http::{Framing, Head};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
/// Tue, 14 Nov 2023 22:13:20 GMT.
const MTIME: i64 = 1_700_000_000;
const MTIME_TEXT: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

/// A directory tree under the system temp dir, removed on drop:
///
/// ```text
/// base/secret.txt            outside the root
/// base/root/alpha.txt        26 bytes a..z, mtime MTIME
/// base/root/empty.txt
/// base/root/page.HTML
/// base/root/.hidden          base/root/.git/config
/// base/root/site/index.html
/// base/root/sub/a.txt        base/root/sub/.dot  base/root/sub/nested/
/// base/root/list/<b>&"x".txt base/root/list/a b.txt  base/root/list/d/
/// base/root/app.js(.gz,.br)  base/root/style.css(.gz)
/// base/root/link.txt   -> alpha.txt
/// base/root/linkdir    -> sub
/// base/root/etc        -> /etc
/// base/root/outside.txt -> ../secret.txt
/// base/root/shown.txt  -> .hidden
/// ```
struct Tree {
    base: PathBuf,
    root: PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn tree() -> Tree {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("catamount-static-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let root = base.join("root");
    let w = |p: &str, data: &[u8]| {
        let path = root.join(p);
        fs::create_dir_all(path.parent().expect("fixture paths have parents"))
            .expect("create fixture dir");
        fs::write(path, data).expect("write fixture file");
    };
    fs::create_dir_all(&root).expect("create fixture root");
    fs::write(base.join("secret.txt"), "top secret").expect("write secret");
    w("alpha.txt", ALPHABET);
    w("empty.txt", b"");
    w("page.HTML", b"<p>hi</p>");
    w(".hidden", b"hidden");
    w(".git/config", b"[core]");
    w("site/index.html", b"<h1>site</h1>");
    w("sub/a.txt", b"a");
    w("sub/.dot", b"dot");
    fs::create_dir_all(root.join("sub/nested")).expect("mkdir nested");
    w("list/<b>&\"x\".txt", b"x");
    w("list/a b.txt", b"ab");
    fs::create_dir_all(root.join("list/d")).expect("mkdir list/d");
    w("app.js", b"console.log('identity');");
    w("app.js.gz", b"GZ-BYTES");
    w("app.js.br", b"BR-BYTES-LONGER");
    w("style.css", b"body{}");
    w("style.css.gz", b"GZCSS");
    symlink("alpha.txt", root.join("link.txt")).expect("symlink link.txt");
    symlink("sub", root.join("linkdir")).expect("symlink linkdir");
    symlink("/etc", root.join("etc")).expect("symlink etc");
    symlink("../secret.txt", root.join("outside.txt")).expect("symlink outside");
    symlink(".hidden", root.join("shown.txt")).expect("symlink shown");
    let f = File::options()
        .write(true)
        .open(root.join("alpha.txt"))
        .expect("open alpha");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME as u64))
        .expect("set mtime");
    Tree { base, root }
}

fn app(t: &Tree) -> StaticFiles {
    StaticFiles::with_options(t.root.clone(), false, false, None)
}

fn call(app: &StaticFiles, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let head = Head {
        method: method.to_string(),
        target: target.to_string(),
        minor: 1,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        framing: Framing::None,
        keep_alive: true,
        expect_continue: false,
    };
    let mut body: &[u8] = b"";
    let mut req = Request::new(&head, &mut body);
    app.handle(&mut req)
}

fn get(app: &StaticFiles, target: &str) -> Response {
    call(app, "GET", target, &[])
}

fn hdr<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// (offset, len, file length) of the part of a file an answer sends:
/// a `Body::File`, or a small file's cached bytes (`Body::Shared`, whose
/// place in the file a 206's `Content-Range` gives).
fn file_span(r: &Response) -> (u64, u64, u64) {
    match &r.body {
        Body::File { file, offset, len } => (
            *offset,
            *len,
            file.metadata().expect("fstat body file").len(),
        ),
        Body::Shared(b) if r.status == 200 => (0, b.len() as u64, b.len() as u64),
        Body::Shared(b) if r.status == 206 => {
            let range = hdr(r, "Content-Range").expect("206 has Content-Range");
            let (span, total) = range
                .strip_prefix("bytes ")
                .and_then(|s| s.split_once('/'))
                .expect("Content-Range: bytes a-b/total");
            let (first, last) = span.split_once('-').expect("a-b");
            let first: u64 = first.parse().expect("first byte");
            let last: u64 = last.parse().expect("last byte");
            assert_eq!(b.len() as u64, last - first + 1, "body is the range");
            (first, b.len() as u64, total.parse().expect("total"))
        }
        _ => panic!("expected a file's bytes for status {}", r.status),
    }
}

fn bytes(r: &Response) -> String {
    match &r.body {
        Body::Bytes(b) => String::from_utf8(b.clone()).expect("utf-8 body"),
        Body::Shared(b) => String::from_utf8(b.to_vec()).expect("utf-8 body"),
        _ => panic!("expected an in-memory body for status {}", r.status),
    }
}

fn is_empty(r: &Response) -> bool {
    matches!(r.body, Body::Empty)
}

#[test]
fn serves_a_file_with_representation_headers() {
    let t = tree();
    let r = get(&app(&t), "/alpha.txt");
    assert_eq!(r.status, 200);
    assert_eq!(file_span(&r), (0, 26, 26));
    assert_eq!(hdr(&r, "Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(hdr(&r, "Accept-Ranges"), Some("bytes"));
    assert_eq!(hdr(&r, "Vary"), Some("Accept-Encoding"));
    assert_eq!(hdr(&r, "Last-Modified"), Some(MTIME_TEXT));
    assert_eq!(hdr(&r, "Cache-Control"), None);
    assert_eq!(hdr(&r, "Content-Encoding"), None);
    let etag = hdr(&r, "ETag").expect("etag");
    assert!(etag.starts_with("\"1a-") && etag.ends_with('"'), "{etag}");
    assert!(!etag.starts_with("W/"));
}

#[test]
fn head_is_answered_like_get() {
    let t = tree();
    let a = app(&t);
    let g = get(&a, "/alpha.txt");
    let h = call(&a, "HEAD", "/alpha.txt", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(g.headers, h.headers);
    assert_eq!(file_span(&h), (0, 26, 26));
}

#[test]
fn query_string_is_not_part_of_the_path() {
    let t = tree();
    let r = get(&app(&t), "/alpha.txt?v=3");
    assert_eq!(r.status, 200);
    assert_eq!(file_span(&r), (0, 26, 26));
}

#[test]
fn empty_file_is_served() {
    let t = tree();
    let r = get(&app(&t), "/empty.txt");
    assert_eq!(r.status, 200);
    assert_eq!(file_span(&r), (0, 0, 0));
}

#[test]
fn other_methods_get_405_with_allow() {
    let t = tree();
    let a = app(&t);
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "TRACE"] {
        let r = call(&a, m, "/alpha.txt", &[]);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(hdr(&r, "Allow"), Some("GET, HEAD"), "{m}");
        assert_eq!(bytes(&r), "Method Not Allowed\n");
    }
}

#[test]
fn non_origin_targets_are_400() {
    let t = tree();
    let a = app(&t);
    for target in ["*", "http://example.com/alpha.txt", "alpha.txt", ""] {
        let r = get(&a, target);
        assert_eq!(r.status, 400, "{target:?}");
        assert_eq!(hdr(&r, "Content-Type"), Some("text/plain; charset=utf-8"));
    }
}

#[test]
fn broken_percent_escapes_are_400() {
    let t = tree();
    let a = app(&t);
    for target in ["/%", "/%4", "/%zz", "/alpha%2.txt", "/%g0", "/ok/%"] {
        assert_eq!(get(&a, target).status, 400, "{target}");
    }
}

#[test]
fn good_percent_escapes_are_decoded() {
    let t = tree();
    let a = app(&t);
    assert_eq!(get(&a, "/%61lpha.txt").status, 200);
    assert_eq!(get(&a, "/list/a%20b.txt").status, 200);
    assert_eq!(get(&a, "/list/%3Cb%3E%26%22x%22.txt").status, 200);
}

#[test]
fn traversal_never_escapes_the_root() {
    let t = tree();
    // Make sure a successful escape would have found something.
    assert!(t.root.join("../secret.txt").exists());
    let a = app(&t);
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2e/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/%2fetc/passwd",
        "/%2Fetc%2Fpasswd",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/..%5Csecret.txt",
        "/alpha.txt%00",
        "/alpha.txt%00.png",
        "/%00",
        "/./alpha.txt",
        "/sub/./a.txt",
        "/%ff%fe",
        "/etc/passwd",
        "/etc/",
        "/etc",
        "/outside.txt",
    ] {
        let r = get(&a, target);
        assert_eq!(r.status, 404, "{target}");
        assert_eq!(bytes(&r), "Not Found\n", "{target}");
    }
    // Even with dotfiles allowed, `..` stays refused.
    let dots = StaticFiles::with_options(t.root.clone(), true, true, None);
    for target in ["/../secret.txt", "/%2e%2e/secret.txt", "/.%2E/secret.txt"] {
        assert_eq!(get(&dots, target).status, 404, "{target}");
    }
}

#[test]
fn duplicate_slashes_collapse() {
    let t = tree();
    let a = app(&t);
    assert_eq!(get(&a, "//alpha.txt").status, 200);
    assert_eq!(get(&a, "/sub//a.txt").status, 200);
    assert_eq!(get(&a, "///sub///a.txt").status, 200);
}

#[test]
fn symlinks_inside_the_root_are_followed() {
    let t = tree();
    let a = app(&t);
    let r = get(&a, "/link.txt");
    assert_eq!(r.status, 200);
    assert_eq!(file_span(&r), (0, 26, 26));
    assert_eq!(get(&a, "/linkdir/a.txt").status, 200);
}

#[test]
fn dotfiles_are_hidden_by_default() {
    let t = tree();
    let a = app(&t);
    for target in [
        "/.hidden",
        "/.git/config",
        "/.git/",
        "/sub/.dot",
        "/%2ehidden",
        "/shown.txt",
    ] {
        assert_eq!(get(&a, target).status, 404, "{target}");
    }
}

#[test]
fn dotfiles_are_served_with_the_flag() {
    let t = tree();
    let a = StaticFiles::with_options(t.root.clone(), false, true, None);
    for target in [
        "/.hidden",
        "/.git/config",
        "/sub/.dot",
        "/%2ehidden",
        "/shown.txt",
    ] {
        assert_eq!(get(&a, target).status, 200, "{target}");
    }
}

#[test]
fn a_trailing_slash_on_a_file_is_404() {
    let t = tree();
    let a = app(&t);
    assert_eq!(get(&a, "/alpha.txt/").status, 404);
    assert_eq!(get(&a, "/alpha.txt/x").status, 404);
}

#[test]
fn missing_files_are_404() {
    let t = tree();
    let a = app(&t);
    assert_eq!(get(&a, "/nope.txt").status, 404);
    assert_eq!(get(&a, "/nope/deeper").status, 404);
}

#[test]
fn a_missing_root_answers_404() {
    let t = tree();
    let a = StaticFiles::with_options(t.base.join("no-such-root"), true, false, None);
    assert_eq!(get(&a, "/").status, 404);
    assert_eq!(get(&a, "/alpha.txt").status, 404);
}

#[test]
fn unreadable_file_is_403() {
    let t = tree();
    let path = t.root.join("locked.txt");
    fs::write(&path, "locked").expect("write locked");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
    if File::open(&path).is_ok() {
        eprintln!("skipped: unreadable_file_is_403: running with CAP_DAC_OVERRIDE (root)");
        return;
    }
    let r = get(&app(&t), "/locked.txt");
    assert_eq!(r.status, 403);
    assert_eq!(bytes(&r), "Forbidden\n");
}

#[test]
fn io_errors_map_to_statuses() {
    let kind = |k| StaticError::from_io(&io::Error::from(k));
    let os = |n| StaticError::from_io(&io::Error::from_raw_os_error(n));
    assert_eq!(kind(io::ErrorKind::NotFound), StaticError::NotFound);
    assert_eq!(
        kind(io::ErrorKind::PermissionDenied),
        StaticError::Forbidden
    );
    assert_eq!(os(libc::EACCES), StaticError::Forbidden);
    assert_eq!(os(libc::EPERM), StaticError::Forbidden);
    assert_eq!(os(libc::ENOTDIR), StaticError::NotFound);
    assert_eq!(os(libc::ELOOP), StaticError::NotFound);
    assert_eq!(os(libc::ENAMETOOLONG), StaticError::NotFound);
    assert_eq!(os(libc::EIO), StaticError::Internal);
    assert_eq!(os(libc::EMFILE), StaticError::Internal);
}

#[test]
fn fifo_is_404_and_does_not_block() {
    let t = tree();
    let fifo = t.root.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("skipped: fifo_is_404_and_does_not_block: mkfifo unavailable");
        return;
    }
    assert_eq!(get(&app(&t), "/pipe").status, 404);
}

#[test]
fn directory_without_slash_redirects() {
    let t = tree();
    let a = app(&t);
    let r = get(&a, "/sub");
    assert_eq!(r.status, 301);
    assert_eq!(hdr(&r, "Location"), Some("/sub/"));
    let r = get(&a, "/sub?x=1&y=2");
    assert_eq!(hdr(&r, "Location"), Some("/sub/?x=1&y=2"));
    let r = get(&a, "/sub/nested");
    assert_eq!(hdr(&r, "Location"), Some("/sub/nested/"));
    let r = get(&a, "/linkdir");
    assert_eq!(hdr(&r, "Location"), Some("/linkdir/"));
}

#[test]
fn redirect_location_is_never_scheme_relative() {
    let t = tree();
    let a = app(&t);
    let r = get(&a, "//sub");
    assert_eq!(r.status, 301);
    assert_eq!(hdr(&r, "Location"), Some("/sub/"));
    let r = get(&a, "/%73ub");
    assert_eq!(hdr(&r, "Location"), Some("/sub/"));
}

#[test]
fn directory_serves_index_html() {
    let t = tree();
    let r = get(&app(&t), "/site/");
    assert_eq!(r.status, 200);
    assert_eq!(hdr(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(file_span(&r), (0, 13, 13));
    assert!(hdr(&r, "ETag").is_some());
}

#[test]
fn directory_without_index_is_404_without_listing() {
    let t = tree();
    let a = app(&t);
    assert_eq!(get(&a, "/sub/").status, 404);
    assert_eq!(get(&a, "/").status, 404);
}

#[test]
fn index_html_symlinked_outside_is_not_served() {
    let t = tree();
    fs::create_dir(t.root.join("trap")).expect("mkdir trap");
    symlink("../../secret.txt", t.root.join("trap/index.html")).expect("symlink index");
    assert_eq!(get(&app(&t), "/trap/").status, 404);
    let listing = StaticFiles::with_options(t.root.clone(), true, false, None);
    let r = get(&listing, "/trap/");
    assert_eq!(r.status, 200);
    assert!(!bytes(&r).contains("top secret"));
}

#[test]
fn listing_is_sorted_escaped_and_hides_dotfiles() {
    let t = tree();
    let a = StaticFiles::with_options(t.root.clone(), true, false, None);
    let r = get(&a, "/list/");
    assert_eq!(r.status, 200);
    assert_eq!(hdr(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    let html = bytes(&r);
    assert!(html.contains("<title>Index of /list/</title>"), "{html}");
    assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
    assert!(
        html.contains("<a href=\"%3Cb%3E%26%22x%22.txt\">&lt;b&gt;&amp;&quot;x&quot;.txt</a>"),
        "{html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("<a href=\"a%20b.txt\">a b.txt</a>"), "{html}");
    assert!(html.contains("<a href=\"d/\">d/</a>"), "{html}");
    let lt = html.find("%3Cb").expect("escaped name present");
    let ab = html.find("a%20b").expect("a b present");
    let d = html.find("\"d/\"").expect("d present");
    assert!(lt < ab && ab < d, "sorted: {html}");

    let root = get(&a, "/");
    let html = bytes(&root);
    assert!(
        !html.contains(".hidden") && !html.contains(".git"),
        "{html}"
    );
    assert!(!html.contains("href=\"../\""), "{html}");
    assert!(html.contains("<a href=\"sub/\">sub/</a>"), "{html}");
    assert!(html.contains("<a href=\"linkdir/\">linkdir/</a>"), "{html}");
    assert!(
        html.contains("<a href=\"alpha.txt\">alpha.txt</a>"),
        "{html}"
    );
    let sub = bytes(&get(&a, "/sub/"));
    assert!(!sub.contains(".dot"), "{sub}");
    assert!(sub.contains("nested/"), "{sub}");
}

#[test]
fn listing_shows_dotfiles_with_the_flag() {
    let t = tree();
    let a = StaticFiles::with_options(t.root.clone(), true, true, None);
    let html = bytes(&get(&a, "/"));
    assert!(html.contains("<a href=\".hidden\">.hidden</a>"), "{html}");
    assert!(html.contains("<a href=\".git/\">.git/</a>"), "{html}");
}

/// `a` resolving paths with `resolver` (the walk is what kernels
/// without openat2 get; here it is chosen by hand).
fn with_resolver(mut a: StaticFiles, resolver: Resolver) -> StaticFiles {
    a.resolver = resolver;
    a
}

#[test]
fn the_walk_answers_like_openat2() {
    let t = tree();
    fs::create_dir(t.root.join("trap")).expect("mkdir trap");
    symlink("../../secret.txt", t.root.join("trap/index.html")).expect("symlink index");
    symlink("../alpha.txt", t.root.join("sub/up.txt")).expect("symlink up");
    symlink("nested/../a.txt", t.root.join("sub/round.txt")).expect("symlink round");
    symlink("loop2", t.root.join("loop1")).expect("symlink loop1");
    symlink("loop1", t.root.join("loop2")).expect("symlink loop2");
    symlink(t.root.join("alpha.txt"), t.root.join("abs-inside")).expect("symlink abs");
    symlink("sub/../.hidden", t.root.join("sneaky")).expect("symlink sneaky");
    let targets = [
        "/",
        "/alpha.txt",
        "/link.txt",
        "/linkdir",
        "/linkdir/",
        "/linkdir/a.txt",
        "/linkdir/nested/",
        "/sub/up.txt",
        "/sub/round.txt",
        "/etc/passwd",
        "/etc/",
        "/outside.txt",
        "/shown.txt",
        "/sneaky",
        "/.hidden",
        "/.git/config",
        "/trap/",
        "/loop1",
        "/abs-inside",
        "/alpha.txt/x",
        "/nope",
        "/list/",
        "/site/",
    ];
    for (listing, dotfiles) in [(false, false), (true, false), (true, true)] {
        let opts = |r| {
            with_resolver(
                StaticFiles::with_options(t.root.clone(), listing, dotfiles, None),
                r,
            )
        };
        let (kernel, walk) = (opts(Resolver::Openat2), opts(Resolver::Walk));
        for target in targets {
            let (k, w) = (get(&kernel, target), get(&walk, target));
            let what = format!("{target} listing={listing} dotfiles={dotfiles}");
            assert_eq!(k.status, w.status, "{what}");
            assert_eq!(k.headers, w.headers, "{what}");
            let body = |r: &Response| match &r.body {
                Body::Bytes(b) => b.clone(),
                Body::Shared(b) => b.to_vec(),
                Body::File { .. } => {
                    let (offset, len, _) = file_span(r);
                    format!("file {offset}+{len}").into_bytes()
                }
                _ => Vec::new(),
            };
            assert_eq!(body(&k), body(&w), "{what}");
        }
    }
    // The answers the two agree on are the right ones.
    let walk = with_resolver(app(&t), Resolver::Walk);
    assert_eq!(body_bytes(&get(&walk, "/sub/up.txt")), ALPHABET);
    assert_eq!(body_bytes(&get(&walk, "/sub/round.txt")), b"a");
    for target in [
        "/outside.txt",
        "/etc/passwd",
        "/loop1",
        "/abs-inside",
        "/sneaky",
    ] {
        assert_eq!(get(&walk, target).status, 404, "{target}");
    }
}

#[test]
fn the_walk_reports_where_it_went() {
    let t = tree();
    symlink("loop2", t.root.join("loop1")).expect("symlink loop1");
    symlink("loop1", t.root.join("loop2")).expect("symlink loop2");
    let root = File::open(&t.root).expect("open root");
    let names = |rel: &str| {
        walk_beneath(&root, Path::new(rel)).map(|(_, names)| {
            names
                .iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
    };
    assert_eq!(names("").expect("root"), "");
    assert_eq!(names("alpha.txt").expect("file"), "alpha.txt");
    assert_eq!(names("link.txt").expect("link"), "alpha.txt");
    assert_eq!(names("linkdir/a.txt").expect("via dir link"), "sub/a.txt");
    assert_eq!(names("linkdir").expect("dir link"), "sub");
    assert_eq!(names("shown.txt").expect("dot link"), ".hidden");
    let errno = |rel: &str| names(rel).expect_err(rel).raw_os_error();
    assert_eq!(errno("outside.txt"), Some(libc::EXDEV));
    assert_eq!(errno("etc/passwd"), Some(libc::EXDEV));
    assert_eq!(errno("loop1"), Some(libc::ELOOP));
    assert_eq!(errno("alpha.txt/x"), Some(libc::ENOTDIR));
    assert_eq!(errno("nope"), Some(libc::ENOENT));
}

#[test]
fn the_walk_never_leaves_the_root_while_a_directory_is_swapped() {
    // The race of issue 11, against the walk: `d` is exchanged for a
    // symlink to outside (four renames per round) while `lnk/file` is
    // resolved through `lnk -> d`.
    const ROUNDS: usize = 2000;
    let t = tree();
    let outside = t.base.join("outside");
    fs::create_dir(&outside).expect("mkdir outside");
    fs::write(outside.join("file"), "OUTSIDE").expect("write outside");
    let race = t.root.join("race");
    fs::create_dir_all(race.join("d")).expect("mkdir d");
    fs::write(race.join("d/file"), "inside").expect("write inside");
    symlink(&outside, race.join("dsym")).expect("symlink dsym");
    symlink("d", race.join("lnk")).expect("symlink lnk");
    let swapper = {
        let race = race.clone();
        std::thread::spawn(move || {
            let (d, dsym, tmp) = (race.join("d"), race.join("dsym"), race.join("tmp"));
            for _ in 0..ROUNDS {
                for (from, to) in [(&d, &tmp), (&dsym, &d), (&d, &dsym), (&tmp, &d)] {
                    fs::rename(from, to).expect("rename");
                }
            }
        })
    };
    let root = File::open(&t.root).expect("open root");
    let (mut inside, mut refused) = (0, 0);
    while !swapper.is_finished() {
        match walk_beneath(&root, Path::new("race/lnk/file")) {
            Ok((file, names)) => {
                let mut got = String::new();
                io::Read::read_to_string(&mut &file, &mut got).expect("read");
                assert_eq!(got, "inside", "reached via {names:?}");
                inside += 1;
            }
            Err(_) => refused += 1,
        }
    }
    swapper.join().expect("swapper");
    eprintln!("walk race: {inside} inside, {refused} refused");
}

#[test]
fn listing_prefers_index_html() {
    let t = tree();
    let a = StaticFiles::with_options(t.root.clone(), true, false, None);
    let r = get(&a, "/site/");
    assert_eq!(file_span(&r), (0, 13, 13));
}

#[test]
fn content_types() {
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("a.HTM", "text/html; charset=utf-8"),
        ("page.HTML", "text/html; charset=utf-8"),
        ("s.css", "text/css; charset=utf-8"),
        ("m.js", "text/javascript; charset=utf-8"),
        ("m.mjs", "text/javascript; charset=utf-8"),
        ("d.json", "application/json; charset=utf-8"),
        ("d.js.map", "application/json; charset=utf-8"),
        ("d.xml", "application/xml; charset=utf-8"),
        ("r.txt", "text/plain; charset=utf-8"),
        ("r.csv", "text/csv; charset=utf-8"),
        ("r.md", "text/markdown; charset=utf-8"),
        ("i.svg", "image/svg+xml; charset=utf-8"),
        ("i.png", "image/png"),
        ("i.JPG", "image/jpeg"),
        ("i.jpeg", "image/jpeg"),
        ("i.gif", "image/gif"),
        ("i.webp", "image/webp"),
        ("i.avif", "image/avif"),
        ("favicon.ico", "image/x-icon"),
        ("i.bmp", "image/bmp"),
        ("i.tif", "image/tiff"),
        ("f.woff", "font/woff"),
        ("f.woff2", "font/woff2"),
        ("f.ttf", "font/ttf"),
        ("f.otf", "font/otf"),
        ("f.eot", "application/vnd.ms-fontobject"),
        ("d.pdf", "application/pdf"),
        ("a.zip", "application/zip"),
        ("a.tar.gz", "application/gzip"),
        ("a.tar", "application/x-tar"),
        ("m.wasm", "application/wasm"),
        ("s.mp3", "audio/mpeg"),
        ("s.ogg", "audio/ogg"),
        ("s.wav", "audio/wav"),
        ("s.m4a", "audio/mp4"),
        ("s.flac", "audio/flac"),
        ("v.mp4", "video/mp4"),
        ("v.webm", "video/webm"),
        ("v.mov", "video/quicktime"),
        ("v.mkv", "video/x-matroska"),
        ("v.avi", "video/x-msvideo"),
        ("c.yaml", "application/yaml; charset=utf-8"),
        ("c.yml", "application/yaml; charset=utf-8"),
        ("c.toml", "application/toml; charset=utf-8"),
        (
            "site.webmanifest",
            "application/manifest+json; charset=utf-8",
        ),
        ("x.manifest", "text/cache-manifest; charset=utf-8"),
        ("e.ics", "text/calendar; charset=utf-8"),
        ("e.rtf", "application/rtf"),
        ("b.epub", "application/epub+zip"),
        ("w.doc", "application/msword"),
        (
            "w.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("x.xls", "application/vnd.ms-excel"),
        (
            "x.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("p.ppt", "application/vnd.ms-powerpoint"),
        (
            "p.pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        ("Makefile", "application/octet-stream"),
        ("x.unknownext", "application/octet-stream"),
        (".bashrc", "application/octet-stream"),
        ("trailing.", "application/octet-stream"),
    ];
    for (name, want) in cases {
        assert_eq!(content_type(Path::new(name)), want, "{name}");
    }
}

#[test]
fn textual_types_and_only_those_carry_utf8() {
    const UTF8: &str = "; charset=utf-8";
    let mut seen = std::collections::HashSet::new();
    for &(ext, ctype) in CONTENT_TYPES {
        assert!(seen.insert(ext), "{ext} listed twice");
        assert!(
            ext.len() <= MAX_EXTENSION_LEN && ext == ext.to_ascii_lowercase(),
            "{ext} cannot be looked up"
        );
        let essence = ctype.strip_suffix(UTF8).unwrap_or(ctype);
        let textual = essence.starts_with("text/")
            || essence.ends_with("+json")
            || essence.ends_with("+xml")
            || matches!(
                essence,
                "application/json" | "application/xml" | "application/yaml" | "application/toml"
            );
        assert_eq!(ctype.ends_with(UTF8), textual, "{ext}: {ctype}");
        assert!(!essence.contains(';'), "{ext}: {ctype}");
        assert_eq!(content_type(Path::new(&format!("f.{ext}"))), ctype);
    }
    for ext in [
        "json", "js", "css", "txt", "html", "svg", "xml", "gltf", "mpd",
    ] {
        assert!(seen.contains(ext), "{ext} is in the table");
    }
}

#[test]
fn served_content_type_follows_the_name() {
    let t = tree();
    let r = get(&app(&t), "/page.HTML");
    assert_eq!(hdr(&r, "Content-Type"), Some("text/html; charset=utf-8"));
}

#[test]
fn etag_is_stable_and_changes_with_the_file() {
    let t = tree();
    let a = app(&t);
    let e1 = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let e2 = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    assert_eq!(e1, e2);
    let other = hdr(&get(&a, "/sub/a.txt"), "ETag")
        .expect("etag")
        .to_string();
    assert_ne!(e1, other);
    fs::write(t.root.join("alpha.txt"), "changed").expect("rewrite");
    // Within OPEN_FILE_CACHE_VALID the cached lookup answers; once the
    // entry is older, the file is looked at again.
    let cached = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    assert_eq!(e1, cached);
    for entry in a.cache.lock().unwrap().entries.values_mut() {
        entry.at -= OPEN_FILE_CACHE_VALID + Duration::from_millis(1);
    }
    let e3 = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    assert_ne!(e1, e3);
    let fresh = app(&t);
    assert_eq!(hdr(&get(&fresh, "/alpha.txt"), "ETag").expect("etag"), e3);
}

/// The bytes an in-memory answer carries (a listing's own, or a cached
/// file's shared bytes).
fn body_bytes(r: &Response) -> &[u8] {
    match &r.body {
        Body::Bytes(b) => b,
        Body::Shared(b) => b,
        _ => panic!("expected an in-memory body for status {}", r.status),
    }
}

#[test]
fn small_files_are_answered_from_memory_and_refreshed() {
    let t = tree();
    let a = app(&t);
    let r = get(&a, "/alpha.txt");
    assert_eq!(body_bytes(&r), ALPHABET);
    for (range, want) in [
        ("bytes=2-4", &ALPHABET[2..5]),
        ("bytes=0-0", &ALPHABET[..1]),
        ("bytes=20-", &ALPHABET[20..]),
        ("bytes=-3", &ALPHABET[23..]),
        ("bytes=25-99", &ALPHABET[25..]),
    ] {
        let part = call(&a, "GET", "/alpha.txt", &[("Range", range)]);
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(body_bytes(&part), want, "{range}");
    }
    // Rewritten in place, same length: the cached bytes answer until the
    // entry is re-checked, then the new ones (with a new ETag).
    fs::write(t.root.join("alpha.txt"), ALPHABET.to_ascii_uppercase()).expect("rewrite");
    assert_eq!(body_bytes(&get(&a, "/alpha.txt")), ALPHABET);
    for entry in a.cache.lock().unwrap().entries.values_mut() {
        entry.at -= OPEN_FILE_CACHE_VALID + Duration::from_millis(1);
    }
    let fresh = get(&a, "/alpha.txt");
    assert_eq!(body_bytes(&fresh), ALPHABET.to_ascii_uppercase());
    assert_ne!(hdr(&fresh, "ETag"), hdr(&r, "ETag"));
}

#[test]
fn a_cached_file_is_answered_with_its_cached_bytes_not_a_copy() {
    let t = tree();
    let a = app(&t);
    let shared = |r: &Response| match &r.body {
        Body::Shared(b) => Arc::clone(&b.bytes),
        _ => panic!("expected Body::Shared for status {}", r.status),
    };
    let (first, second) = (get(&a, "/alpha.txt"), get(&a, "/alpha.txt"));
    let part = call(&a, "GET", "/alpha.txt", &[("Range", "bytes=2-4")]);
    let cached = {
        let cache = a.cache.lock().unwrap();
        let opened = cache.entries[Path::new("alpha.txt")]
            .result
            .as_ref()
            .expect("alpha.txt found");
        Arc::clone(opened.content.as_ref().expect("small: cached"))
    };
    for r in [&first, &second, &part] {
        assert!(Arc::ptr_eq(&shared(r), &cached), "the cache's own buffer");
    }
    assert_eq!(body_bytes(&part), &ALPHABET[2..5]);
}

#[test]
fn content_cache_keeps_to_its_budget() {
    let t = tree();
    let size = CACHED_CONTENT_MAX as usize;
    let fit = CACHED_CONTENT_BUDGET / size;
    for i in 0..fit + 3 {
        fs::write(t.root.join(format!("f{i}.bin")), vec![b'x'; size]).expect("write");
    }
    fs::write(t.root.join("big.bin"), vec![b'y'; size + 1]).expect("write big");
    let a = app(&t);
    let big = get(&a, "/big.bin");
    assert_eq!(file_span(&big), (0, size as u64 + 1, size as u64 + 1));
    assert!(
        matches!(big.body, Body::File { .. }),
        "over CACHED_CONTENT_MAX: from disk"
    );
    let mut in_memory = 0;
    for i in 0..fit + 3 {
        let r = get(&a, &format!("/f{i}.bin"));
        assert_eq!(file_span(&r), (0, size as u64, size as u64));
        in_memory += usize::from(matches!(r.body, Body::Shared(_)));
    }
    assert_eq!(in_memory, fit, "the budget holds {fit} such files");
    let counted = |a: &StaticFiles| {
        let cache = a.cache.lock().unwrap();
        let sum: usize = cache
            .entries
            .values()
            .map(|c| Cached::content_len(&c.result))
            .sum();
        assert_eq!(
            sum, cache.content_bytes,
            "content_bytes is the entries' sum"
        );
        sum
    };
    assert_eq!(counted(&a), fit * size);
    // Entries past their re-check give their room to a file that did
    // not fit.
    for entry in a.cache.lock().unwrap().entries.values_mut() {
        entry.at -= OPEN_FILE_CACHE_VALID + Duration::from_millis(1);
    }
    let late = get(&a, &format!("/f{}.bin", fit + 2));
    assert!(matches!(late.body, Body::Shared(_)), "room made for it");
    assert_eq!(counted(&a), size);
}

/// Makes every cache entry of `a` older than its re-check.
fn age_cache(a: &StaticFiles) {
    for entry in a.cache.lock().unwrap().entries.values_mut() {
        entry.at -= OPEN_FILE_CACHE_VALID + Duration::from_millis(1);
    }
}

fn cached_paths(a: &StaticFiles) -> Vec<String> {
    let mut paths: Vec<String> = a
        .cache
        .lock()
        .unwrap()
        .entries
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    paths
}

#[test]
fn expired_entries_are_let_go_by_a_lookup_of_any_path() {
    let t = tree();
    let a = app(&t);
    get(&a, "/alpha.txt");
    get(&a, "/nope");
    assert_eq!(cached_paths(&a), ["alpha.txt", "nope"]);
    // Within the sweep interval only the path looked up is re-checked.
    age_cache(&a);
    get(&a, "/empty.txt");
    assert_eq!(cached_paths(&a), ["alpha.txt", "empty.txt", "nope"]);
    // Once it has passed, any lookup drops every expired entry.
    a.cache.lock().unwrap().next_sweep = Some(Instant::now());
    get(&a, "/sub/a.txt");
    assert_eq!(cached_paths(&a), ["empty.txt", "sub/a.txt"]);
    let content: usize = a
        .cache
        .lock()
        .unwrap()
        .entries
        .values()
        .map(|c| Cached::content_len(&c.result))
        .sum();
    assert_eq!(content, a.cache.lock().unwrap().content_bytes);
}

#[test]
fn an_expired_entry_is_let_go_whatever_its_re_check_finds() {
    let t = tree();
    let a = app(&t);
    let path = t.root.join("alpha.txt");
    let weak = match &get(&a, "/alpha.txt").body {
        Body::Shared(_) => {
            let cache = a.cache.lock().unwrap();
            let opened = cache.entries[Path::new("alpha.txt")]
                .result
                .as_ref()
                .expect("alpha.txt found");
            Arc::downgrade(&opened.file)
        }
        _ => panic!("a small file is answered from memory"),
    };
    // Unreadable now: the re-check answers 403, which is not cached,
    // and the old entry's descriptor is closed all the same.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
    if File::open(&path).is_ok() {
        eprintln!("skipped: an_expired_entry_is_let_go...: running with CAP_DAC_OVERRIDE");
        return;
    }
    age_cache(&a);
    assert_eq!(get(&a, "/alpha.txt").status, 403);
    assert!(cached_paths(&a).is_empty());
    assert!(weak.upgrade().is_none(), "the old descriptor is closed");
}

#[test]
fn if_none_match_gives_304_with_validators() {
    let t = tree();
    let a = StaticFiles::with_options(t.root.clone(), false, false, Some("max-age=60".into()));
    let etag = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", \"a,b\" , {etag}");
    for inm in [etag.as_str(), weak.as_str(), listed.as_str(), "*", " * "] {
        for m in ["GET", "HEAD"] {
            let r = call(&a, m, "/alpha.txt", &[("If-None-Match", inm)]);
            assert_eq!(r.status, 304, "{m} {inm}");
            assert!(is_empty(&r), "{inm}");
            assert_eq!(hdr(&r, "ETag"), Some(etag.as_str()));
            assert_eq!(hdr(&r, "Last-Modified"), Some(MTIME_TEXT));
            assert_eq!(hdr(&r, "Cache-Control"), Some("max-age=60"));
            assert_eq!(hdr(&r, "Vary"), Some("Accept-Encoding"));
            assert_eq!(hdr(&r, "Content-Type"), None);
        }
    }
}

#[test]
fn if_none_match_mismatch_gives_200() {
    let t = tree();
    let a = app(&t);
    for inm in [
        "\"other\"",
        "W/\"other\", \"x\"",
        "garbage",
        "\"unterminated",
    ] {
        let r = call(&a, "GET", "/alpha.txt", &[("If-None-Match", inm)]);
        assert_eq!(r.status, 200, "{inm}");
        assert_eq!(file_span(&r), (0, 26, 26));
    }
}

#[test]
fn if_modified_since() {
    let t = tree();
    let a = app(&t);
    let later = http_date(MTIME + 3600);
    let earlier = http_date(MTIME - 1);
    let cases = [
        (MTIME_TEXT, 304),
        (later.as_str(), 304),
        (earlier.as_str(), 200),
        ("garbage", 200),
        ("Tuesday, 14-Nov-23 22:13:20 GMT", 304),
        ("Tue Nov 14 22:13:20 2023", 304),
    ];
    for (ims, want) in cases {
        let r = call(&a, "GET", "/alpha.txt", &[("If-Modified-Since", ims)]);
        assert_eq!(r.status, want, "{ims}");
        if want == 304 {
            assert!(is_empty(&r));
            assert_eq!(hdr(&r, "Last-Modified"), Some(MTIME_TEXT));
        }
    }
}

#[test]
fn if_match_uses_strong_comparison() {
    let t = tree();
    let a = app(&t);
    let etag = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let weak = format!("W/{etag}");
    let listed = format!("\"a\", {etag}");
    for (im, want) in [
        (etag.as_str(), 200),
        (listed.as_str(), 200),
        ("*", 200),
        (" * ", 200),
        (weak.as_str(), 412),
        ("\"other\"", 412),
        ("", 412),
        ("garbage", 412),
    ] {
        for m in ["GET", "HEAD"] {
            let r = call(&a, m, "/alpha.txt", &[("If-Match", im)]);
            assert_eq!(r.status, want, "{m} {im:?}");
            if want == 412 {
                assert_eq!(bytes(&r), "Precondition Failed\n");
                assert_eq!(hdr(&r, "ETag"), None);
            }
        }
    }
    // The tag of the variant sent is the one compared.
    let br = hdr(
        &call(&a, "GET", "/app.js", &[("Accept-Encoding", "br")]),
        "ETag",
    )
    .expect("br etag")
    .to_string();
    let with = |ae: &str| {
        call(
            &a,
            "GET",
            "/app.js",
            &[("Accept-Encoding", ae), ("If-Match", br.as_str())],
        )
        .status
    };
    assert_eq!((with("br"), with("identity")), (200, 412));
}

#[test]
fn if_unmodified_since() {
    let t = tree();
    let a = app(&t);
    let later = http_date(MTIME + 3600);
    let earlier = http_date(MTIME - 1);
    for (ius, want) in [
        (MTIME_TEXT, 200),
        (later.as_str(), 200),
        (earlier.as_str(), 412),
        ("garbage", 200),
        ("", 200),
    ] {
        let r = call(&a, "GET", "/alpha.txt", &[("If-Unmodified-Since", ius)]);
        assert_eq!(r.status, want, "{ius:?}");
    }
}

#[test]
fn preconditions_are_evaluated_in_rfc_order() {
    let t = tree();
    let a = app(&t);
    let etag = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let etag = etag.as_str();
    let earlier = http_date(MTIME - 1);
    let earlier = earlier.as_str();
    let cases: &[(&[(&str, &str)], u16)] = &[
        // If-Unmodified-Since counts only without If-Match.
        (&[("If-Match", etag), ("If-Unmodified-Since", earlier)], 200),
        (
            &[("If-Match", "\"x\""), ("If-Unmodified-Since", MTIME_TEXT)],
            412,
        ),
        // 412 comes before 304...
        (&[("If-Match", "\"x\""), ("If-None-Match", etag)], 412),
        (
            &[
                ("If-Unmodified-Since", earlier),
                ("If-Modified-Since", MTIME_TEXT),
            ],
            412,
        ),
        (&[("If-Match", etag), ("If-None-Match", etag)], 304),
        // ...and before ranges and 416.
        (&[("If-Match", "\"x\""), ("Range", "bytes=0-1")], 412),
        (&[("If-Match", "\"x\""), ("Range", "bytes=99-")], 412),
        (&[("If-Match", etag), ("Range", "bytes=0-1")], 206),
    ];
    for (headers, want) in cases {
        assert_eq!(
            call(&a, "GET", "/alpha.txt", headers).status,
            *want,
            "{headers:?}"
        );
    }
}

#[test]
fn if_none_match_overrides_if_modified_since() {
    let t = tree();
    let a = app(&t);
    let r = call(
        &a,
        "GET",
        "/alpha.txt",
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", MTIME_TEXT),
        ],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn future_mtime_is_clamped_to_now() {
    let t = tree();
    let path = t.root.join("future.txt");
    fs::write(&path, "f").expect("write future");
    let future = SystemTime::now() + Duration::from_secs(10 * 365 * 86_400);
    File::options()
        .write(true)
        .open(&path)
        .expect("open future")
        .set_modified(future)
        .expect("set future mtime");
    let r = get(&app(&t), "/future.txt");
    let lm = parse_http_date(hdr(&r, "Last-Modified").expect("lm")).expect("parse lm");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    assert!(lm <= now && lm > now - 60, "{lm} vs {now}");
}

fn range(a: &StaticFiles, target: &str, headers: &[(&str, &str)]) -> Response {
    call(a, "GET", target, headers)
}

#[test]
fn single_ranges_give_206() {
    let t = tree();
    let a = app(&t);
    let cases = [
        ("bytes=0-4", 0, 5, "bytes 0-4/26"),
        ("bytes=10-", 10, 16, "bytes 10-25/26"),
        ("bytes=-5", 21, 5, "bytes 21-25/26"),
        ("bytes=-100", 0, 26, "bytes 0-25/26"),
        ("bytes=20-100", 20, 6, "bytes 20-25/26"),
        ("bytes=25-25", 25, 1, "bytes 25-25/26"),
        ("bytes=0-99999999999999999999999", 0, 26, "bytes 0-25/26"),
        ("Bytes = 3-3", 3, 1, "bytes 3-3/26"),
        ("bytes=1-2,", 1, 2, "bytes 1-2/26"),
    ];
    for (h, offset, len, cr) in cases {
        let r = range(&a, "/alpha.txt", &[("Range", h)]);
        assert_eq!(r.status, 206, "{h}");
        assert_eq!(file_span(&r), (offset, len, 26), "{h}");
        assert_eq!(hdr(&r, "Content-Range"), Some(cr), "{h}");
        assert_eq!(hdr(&r, "Content-Type"), Some("text/plain; charset=utf-8"));
        assert_eq!(hdr(&r, "Accept-Ranges"), Some("bytes"));
        assert!(hdr(&r, "ETag").is_some());
    }
    // Range is for GET only (RFC 9110 §14.2): HEAD gets the whole 200.
    for h in ["bytes=0-4", "bytes=-5", "bytes=26-"] {
        let r = call(&a, "HEAD", "/alpha.txt", &[("Range", h)]);
        assert_eq!(r.status, 200, "{h}");
        assert_eq!(file_span(&r), (0, 26, 26), "{h}");
        assert_eq!(hdr(&r, "Content-Range"), None, "{h}");
    }
}

#[test]
fn unsatisfiable_ranges_give_416() {
    let t = tree();
    let a = app(&t);
    for h in ["bytes=26-", "bytes=26-30", "bytes=100-200", "bytes=-0"] {
        let r = range(&a, "/alpha.txt", &[("Range", h)]);
        assert_eq!(r.status, 416, "{h}");
        assert_eq!(hdr(&r, "Content-Range"), Some("bytes */26"), "{h}");
        assert_eq!(bytes(&r), "Range Not Satisfiable\n");
    }
    let r = range(&a, "/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 416);
    assert_eq!(hdr(&r, "Content-Range"), Some("bytes */0"));
    // A suffix range on an empty file is answered with the empty whole.
    let r = range(&a, "/empty.txt", &[("Range", "bytes=-5")]);
    assert_eq!(r.status, 200);
    assert_eq!(file_span(&r), (0, 0, 0));
}

#[test]
fn multiple_or_invalid_ranges_give_the_whole_file() {
    let t = tree();
    let a = app(&t);
    for h in [
        "bytes=0-1,5-6",
        "bytes=0-1, 30-40",
        "bytes=5-2",
        "bytes=abc",
        "bytes=1-x",
        "bytes=--1",
        "bytes=",
        "bytes=-",
        "items=0-4",
        "0-4",
        "bytes 0-4",
        "bytes=+1-2",
    ] {
        let r = range(&a, "/alpha.txt", &[("Range", h)]);
        assert_eq!(r.status, 200, "{h}");
        assert_eq!(file_span(&r), (0, 26, 26), "{h}");
        assert_eq!(hdr(&r, "Content-Range"), None, "{h}");
    }
}

#[test]
fn if_range() {
    let t = tree();
    let a = app(&t);
    let etag = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let weak = format!("W/{etag}");
    let earlier = http_date(MTIME - 10);
    let cases = [
        (etag.as_str(), 206),
        (MTIME_TEXT, 206),
        ("\"other\"", 200),
        (weak.as_str(), 200),
        (earlier.as_str(), 200),
        ("garbage", 200),
    ];
    for (ir, want) in cases {
        let r = range(
            &a,
            "/alpha.txt",
            &[("Range", "bytes=0-4"), ("If-Range", ir)],
        );
        assert_eq!(r.status, want, "{ir}");
        let span = if want == 206 { (0, 5, 26) } else { (0, 26, 26) };
        assert_eq!(file_span(&r), span, "{ir}");
    }
    // If-Range also keeps a stale client from getting a 416.
    let r = range(
        &a,
        "/alpha.txt",
        &[("Range", "bytes=100-"), ("If-Range", "\"old\"")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn conditionals_come_before_ranges() {
    let t = tree();
    let a = app(&t);
    let etag = hdr(&get(&a, "/alpha.txt"), "ETag")
        .expect("etag")
        .to_string();
    let r = range(
        &a,
        "/alpha.txt",
        &[("Range", "bytes=0-4"), ("If-None-Match", etag.as_str())],
    );
    assert_eq!(r.status, 304);
}

fn encoded(a: &StaticFiles, target: &str, ae: &str) -> Response {
    call(a, "GET", target, &[("Accept-Encoding", ae)])
}

#[test]
fn precompressed_siblings_follow_accept_encoding() {
    let t = tree();
    let a = app(&t);
    let id_len = 24;
    let gz_len = 8;
    let br_len = 15;
    let cases = [
        ("gzip, deflate, br", Some("br"), br_len),
        ("br", Some("br"), br_len),
        ("BR;q=0.5", Some("br"), br_len),
        ("gzip", Some("gzip"), gz_len),
        ("x-gzip", Some("gzip"), gz_len),
        ("br;q=0, gzip", Some("gzip"), gz_len),
        ("br;q=0.000, gzip;q=1.0", Some("gzip"), gz_len),
        ("gzip;q=0", None, id_len),
        ("gzip; q=0, br ; q=0", None, id_len),
        ("*", Some("br"), br_len),
        ("*;q=0", None, id_len),
        ("*;q=0, gzip", Some("gzip"), gz_len),
        ("br;q=0, *", Some("gzip"), gz_len),
        ("identity", None, id_len),
        ("", None, id_len),
        ("deflate", None, id_len),
        ("br;q=2", None, id_len),
        ("br;q=bogus, gzip", Some("gzip"), gz_len),
    ];
    let identity_etag = hdr(&get(&a, "/app.js"), "ETag").expect("etag").to_string();
    for (ae, coding, len) in cases {
        let r = encoded(&a, "/app.js", ae);
        assert_eq!(r.status, 200, "{ae}");
        assert_eq!(hdr(&r, "Content-Encoding"), coding, "{ae}");
        assert_eq!(
            hdr(&r, "Content-Type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(hdr(&r, "Vary"), Some("Accept-Encoding"), "{ae}");
        assert_eq!(file_span(&r), (0, len, len), "{ae}");
        let etag = hdr(&r, "ETag").expect("etag");
        match coding {
            Some("br") => assert!(etag.ends_with("-br\""), "{etag}"),
            Some(_) => assert!(etag.ends_with("-gz\""), "{etag}"),
            None => assert_eq!(etag, identity_etag),
        }
    }
    // No header: identity.
    assert_eq!(hdr(&get(&a, "/app.js"), "Content-Encoding"), None);
}

#[test]
fn only_existing_siblings_are_used() {
    let t = tree();
    let a = app(&t);
    // style.css has only a .gz sibling.
    let r = encoded(&a, "/style.css", "br");
    assert_eq!(hdr(&r, "Content-Encoding"), None);
    assert_eq!(file_span(&r), (0, 6, 6));
    let r = encoded(&a, "/style.css", "br, gzip");
    assert_eq!(hdr(&r, "Content-Encoding"), Some("gzip"));
    assert_eq!(hdr(&r, "Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(file_span(&r), (0, 5, 5));
    // alpha.txt has none.
    let r = encoded(&a, "/alpha.txt", "br, gzip");
    assert_eq!(hdr(&r, "Content-Encoding"), None);
    assert_eq!(hdr(&r, "Vary"), Some("Accept-Encoding"));
    // Asking for the .gz itself gives it as a gzip file, not an encoding.
    let r = get(&a, "/app.js.gz");
    assert_eq!(hdr(&r, "Content-Type"), Some("application/gzip"));
    assert_eq!(hdr(&r, "Content-Encoding"), None);
}

#[test]
fn sibling_symlinked_outside_is_ignored() {
    let t = tree();
    symlink("../secret.txt", t.root.join("alpha.txt.br")).expect("symlink sibling");
    let r = encoded(&app(&t), "/alpha.txt", "br");
    assert_eq!(hdr(&r, "Content-Encoding"), None);
    assert_eq!(file_span(&r), (0, 26, 26));
}

#[test]
fn ranges_and_conditionals_apply_to_the_compressed_variant() {
    let t = tree();
    let a = app(&t);
    let r = call(
        &a,
        "GET",
        "/app.js",
        &[("Accept-Encoding", "br"), ("Range", "bytes=-3")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(hdr(&r, "Content-Encoding"), Some("br"));
    assert_eq!(hdr(&r, "Content-Range"), Some("bytes 12-14/15"));
    assert_eq!(file_span(&r), (12, 3, 15));

    let br_etag = hdr(&r, "ETag").expect("etag").to_string();
    let r = call(
        &a,
        "GET",
        "/app.js",
        &[
            ("Accept-Encoding", "br"),
            ("If-None-Match", br_etag.as_str()),
        ],
    );
    assert_eq!(r.status, 304);
    assert_eq!(hdr(&r, "ETag"), Some(br_etag.as_str()));
    // The br tag does not validate the identity representation.
    let r = call(&a, "GET", "/app.js", &[("If-None-Match", br_etag.as_str())]);
    assert_eq!(r.status, 200);
}

#[test]
fn index_html_gets_precompressed_siblings() {
    let t = tree();
    fs::write(t.root.join("site/index.html.gz"), "GZ").expect("write index gz");
    let r = encoded(&app(&t), "/site/", "gzip");
    assert_eq!(hdr(&r, "Content-Encoding"), Some("gzip"));
    assert_eq!(hdr(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(file_span(&r), (0, 2, 2));
}

#[test]
fn cache_control_when_configured() {
    let t = tree();
    let a = StaticFiles::with_options(
        t.root.clone(),
        false,
        false,
        Some("public, max-age=3600".into()),
    );
    let r = get(&a, "/alpha.txt");
    assert_eq!(hdr(&r, "Cache-Control"), Some("public, max-age=3600"));
    let r = range(&a, "/alpha.txt", &[("Range", "bytes=0-0")]);
    assert_eq!(hdr(&r, "Cache-Control"), Some("public, max-age=3600"));
    let r = call(&a, "GET", "/alpha.txt", &[("If-None-Match", "*")]);
    assert_eq!(hdr(&r, "Cache-Control"), Some("public, max-age=3600"));
    // Not on errors or listings.
    assert_eq!(hdr(&get(&a, "/nope"), "Cache-Control"), None);
    let listing = StaticFiles::with_options(t.root.clone(), true, false, Some("x".into()));
    assert_eq!(hdr(&get(&listing, "/sub/"), "Cache-Control"), None);
}

#[test]
fn error_bodies_are_short_text() {
    let t = tree();
    let r = get(&app(&t), "/nope");
    assert_eq!(r.status, 404);
    assert_eq!(hdr(&r, "Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(bytes(&r), "Not Found\n");
    assert_eq!(hdr(&r, "ETag"), None);
}

#[test]
fn date_helpers_round_trip() {
    assert_eq!(http_date(MTIME), MTIME_TEXT);
    assert_eq!(parse_http_date(MTIME_TEXT), Some(MTIME));
    assert_eq!(
        parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT "),
        Some(784_111_777)
    );
    assert_eq!(
        parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(
        parse_http_date("Sun Nov  6 08:49:37 1994"),
        Some(784_111_777)
    );
}

#[test]
fn decode_path_shapes() {
    let d = decode_path("/a//b%20c/").expect("valid");
    assert_eq!(d.segments, vec!["a".to_string(), "b c".to_string()]);
    assert!(d.trailing_slash);
    assert_eq!(d.dir_url(), "/a/b%20c/");
    let d = decode_path("/").expect("root");
    assert!(d.segments.is_empty() && d.trailing_slash);
    assert_eq!(decode_path("/%2E%2E"), Err(StaticError::NotFound));
    assert_eq!(decode_path("/..%2"), Err(StaticError::BadRequest));
    // A broken escape is 400 even after a traversal attempt.
    assert_eq!(decode_path("/../%zz"), Err(StaticError::BadRequest));
}

#[test]
fn entity_tag_lists() {
    assert_eq!(
        entity_tags("\"a\", W/\"b\""),
        Some(vec!["\"a\"", "W/\"b\""])
    );
    assert_eq!(entity_tags("\"a,b\",\"c\""), Some(vec!["\"a,b\"", "\"c\""]));
    assert_eq!(entity_tags(""), Some(vec![]));
    assert_eq!(entity_tags("\"a\" \"b\""), None);
    assert_eq!(entity_tags("a"), None);
    assert_eq!(entity_tags("\"a"), None);
}

#[test]
fn qvalues() {
    assert_eq!(parse_qvalue("1"), Some(1000));
    assert_eq!(parse_qvalue("1.000"), Some(1000));
    assert_eq!(parse_qvalue("0"), Some(0));
    assert_eq!(parse_qvalue("0.5"), Some(500));
    assert_eq!(parse_qvalue("0.001"), Some(1));
    assert_eq!(parse_qvalue("1.5"), None);
    assert_eq!(parse_qvalue("0.0001"), None);
    assert_eq!(parse_qvalue("2"), None);
    assert_eq!(parse_qvalue(""), None);
    assert_eq!(parse_qvalue("0.a"), None);
}
