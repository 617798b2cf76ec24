//! The static-file app over real sockets against the real binary: what a
//! client sees on the wire for ranges, preconditions and content types,
//! and which descriptors the lookup cache keeps open.

mod support;

use std::time::Duration;

use support::{deadline_in, get, request, wait_until, Server, HELLO};

/// The raw bytes of `METHOD target` with `headers`, on a closing connection.
fn raw(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        s.push_str(&format!("{name}: {value}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn range_is_ignored_on_head() {
    // RFC 9110 §14.2: Range is for GET; a HEAD gets the whole 200 head.
    let s = Server::start(&[]);
    let len = HELLO.len().to_string();
    for range in ["bytes=0-4", "bytes=-3", "bytes=1000-"] {
        let r = request(s.addr(), &raw("HEAD", "/hello.txt", &[("Range", range)]));
        assert_eq!(r.status, 200, "HEAD {range}: {r:?}");
        assert_eq!(r.header("Content-Length"), Some(len.as_str()), "{range}");
        assert_eq!(r.header("Content-Range"), None, "{range}");
        assert!(r.body.is_empty(), "{r:?}");
    }
    // GET still gets its range.
    let r = request(
        s.addr(),
        &raw("GET", "/hello.txt", &[("Range", "bytes=0-4")]),
    );
    assert_eq!((r.status, r.text().as_str()), (206, &HELLO[..5]), "{r:?}");
}

#[test]
fn if_match_and_if_unmodified_since_give_412_in_rfc_order() {
    let s = Server::start(&[]);
    let addr = s.addr();
    let first = request(addr, &raw("GET", "/hello.txt", &[]));
    let etag = first.header("ETag").expect("an ETag").to_string();
    let lm = first
        .header("Last-Modified")
        .expect("Last-Modified")
        .to_string();
    let weak = format!("W/{etag}");
    let listed = format!("\"nope\", {etag}");
    const LONG_AGO: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    let status = |method: &str, headers: &[(&str, &str)]| {
        let r = request(addr, &raw(method, "/hello.txt", headers));
        if r.status == 412 {
            assert!(
                r.header("Content-Range").is_none() && r.header("Last-Modified").is_none(),
                "{r:?}"
            );
        }
        r.status
    };
    let cases: &[(&[(&str, &str)], u16)] = &[
        // RFC 9110 §13.1.1: strong comparison; `*` matches any file.
        (&[("If-Match", &etag)], 200),
        (&[("If-Match", &listed)], 200),
        (&[("If-Match", "*")], 200),
        (&[("If-Match", "\"other\"")], 412),
        (&[("If-Match", &weak)], 412),
        (&[("If-Match", "garbage")], 412),
        // §13.1.4: unmodified since then passes; an invalid date is ignored.
        (&[("If-Unmodified-Since", &lm)], 200),
        (&[("If-Unmodified-Since", LONG_AGO)], 412),
        (&[("If-Unmodified-Since", "yesterday")], 200),
        // §13.2.2: If-Match decides, If-Unmodified-Since only without it...
        (
            &[("If-Match", &etag), ("If-Unmodified-Since", LONG_AGO)],
            200,
        ),
        (
            &[("If-Match", "\"other\""), ("If-Unmodified-Since", &lm)],
            412,
        ),
        // ...and both come before If-None-Match / If-Modified-Since.
        (&[("If-Match", "\"other\""), ("If-None-Match", &etag)], 412),
        (
            &[("If-Unmodified-Since", LONG_AGO), ("If-None-Match", &etag)],
            412,
        ),
        (
            &[
                ("If-Unmodified-Since", LONG_AGO),
                ("If-Modified-Since", &lm),
            ],
            412,
        ),
        (&[("If-Match", &etag), ("If-None-Match", &etag)], 304),
        (
            &[("If-Unmodified-Since", &lm), ("If-Modified-Since", &lm)],
            304,
        ),
        // ...and before Range.
        (&[("If-Match", "\"other\""), ("Range", "bytes=0-1")], 412),
        (&[("If-Match", &etag), ("Range", "bytes=0-1")], 206),
    ];
    for (headers, want) in cases {
        assert_eq!(status("GET", headers), *want, "GET {headers:?}");
    }
    assert_eq!(status("HEAD", &[("If-Match", "\"other\"")]), 412);
    // A file that does not exist is 404 whatever the preconditions.
    let r = request(addr, &raw("GET", "/missing", &[("If-Match", "*")]));
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn a_deleted_file_is_closed_after_the_cache_re_check() {
    // Issue 11: the lookup cache kept a deleted file open (its disk space
    // allocated) until that path was asked for again. Now any lookup past
    // the re-check drops expired entries: within OPEN_FILE_CACHE_VALID +
    // OPEN_FILE_CACHE_SWEEP (1 s + 1 s) of requests for other files.
    let s = Server::start(&[]);
    let addr = s.addr();
    let path = s.docroot().expect("the test docroot").join("doomed.bin");
    // Larger than CACHED_CONTENT_MAX: answered from the descriptor.
    std::fs::write(&path, vec![b'x'; 100_000]).expect("write doomed.bin");
    let fd_dir = format!("/proc/{}/fd", s.pid());
    let open_as = |link: &str| -> usize {
        std::fs::read_dir(&fd_dir)
            .map(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .filter(|target| target.as_os_str() == link)
                    .count()
            })
            .unwrap_or(0)
    };
    if std::fs::read_dir(&fd_dir).is_err() {
        eprintln!(
            "skipped: a_deleted_file_is_closed_after_the_cache_re_check: cannot read {fd_dir}"
        );
        return;
    }
    let name = path.to_string_lossy().into_owned();
    let r = get(addr, "/doomed.bin");
    assert_eq!((r.status, r.body.len()), (200, 100_000), "{:?}", r.headers);
    assert!(open_as(&name) >= 1, "the lookup cache holds {name} open");
    std::fs::remove_file(&path).expect("delete doomed.bin");
    let deleted = format!("{name} (deleted)");
    assert!(
        open_as(&deleted) >= 1,
        "still held within the re-check window"
    );

    let closed = wait_until(deadline_in(Duration::from_secs(10)), || {
        assert_eq!(get(addr, "/hello.txt").text(), HELLO);
        open_as(&deleted) == 0
    });
    assert!(closed, "{deleted} is still open 10 s after its lookup");
}

#[test]
fn textual_files_are_sent_with_charset_utf8() {
    let s = Server::start(&[]);
    let root = s.docroot().expect("the test docroot");
    let cases = [
        ("data.json", "application/json; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("feed.xml", "application/xml; charset=utf-8"),
        ("scene.gltf", "model/gltf+json; charset=utf-8"),
        ("stream.mpd", "application/dash+xml; charset=utf-8"),
        ("photo.png", "image/png"),
        ("blob.bin", "application/octet-stream"),
    ];
    for (name, _) in cases {
        std::fs::write(root.join(name), "{}").expect("write fixture");
    }
    for (name, want) in cases {
        let r = get(s.addr(), &format!("/{name}"));
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert_eq!(r.header("Content-Type"), Some(want), "{name}");
    }
}

#[test]
fn a_403_from_the_file_system_is_logged_once_with_its_reason() {
    use std::os::unix::fs::PermissionsExt;
    // Issue 12: a docroot the service user cannot read showed only as
    // 403s to clients. The first one of a process is logged, with why.
    let docroot = support::TempDir::docroot();
    for name in ["secret.txt", "also-secret.txt"] {
        let path = docroot.write(name, "not for you\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    }
    std::fs::set_permissions(docroot.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755 the docroot");
    let mut cmd = match support::unprivileged(std::path::Path::new(env!("CARGO_BIN_EXE_catamount")))
    {
        Ok(cmd) => cmd,
        Err(reason) => return support::skip(&reason),
    };
    cmd.args(["-b", "tcp://127.0.0.1:0"]).arg(docroot.path());
    let mut s = Server::start_command(cmd);
    for path in ["/secret.txt", "/also-secret.txt", "/secret.txt"] {
        assert_eq!(get(s.addr(), path).status, 403, "{path}");
    }
    assert_eq!(get(s.addr(), "/hello.txt").text(), HELLO);
    assert_eq!(s.stop().code(), Some(0), "{}", s.stderr());
    assert!(s.wait_output_closed(deadline_in(Duration::from_secs(5))));
    let root = std::fs::canonicalize(docroot.path()).expect("canonicalize the docroot");
    let want = format!(
        "! 403 Forbidden for \"/secret.txt\" under {}: the file system refused access \
         (Permission denied (os error 13)); make the files under DIR readable, and its \
         directories searchable, by the user catamount runs as (only the first 403 of a \
         process is logged)\n",
        root.display()
    );
    assert_eq!(s.stderr(), want);
}

#[test]
fn a_root_without_index_or_listing_logs_a_hint_once() {
    // Issue 12: a new operator's first request, `/`, on a directory with
    // no index.html was a bare 404. It still is (nothing is listed unasked),
    // but the log says why and what to do, once.
    let s = Server::start(&[]);
    for _ in 0..3 {
        assert_eq!(get(s.addr(), "/").status, 404);
    }
    let root = std::fs::canonicalize(s.docroot().expect("the test docroot"))
        .expect("canonicalize the docroot");
    let want = format!(
        "! 404 Not Found for /: {} has no index.html and directory listings are off; add an \
         index.html, or pass --dir-listing (dir_listing true) to list the files (logged once)",
        root.display()
    );
    assert!(
        s.wait_for_stderr(&want, deadline_in(Duration::from_secs(5))),
        "{}",
        s.stderr()
    );
    assert_eq!(
        s.stderr().matches("404 Not Found for /").count(),
        1,
        "{}",
        s.stderr()
    );
}
