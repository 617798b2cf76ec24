//! The static-file app never serves a file outside its root, over real
//! sockets against the real binary: symlinks that stay inside the root are
//! followed, symlinks that leave it are 404, and a directory swapped for a
//! symlink to outside while requests resolve through it cannot make a
//! response carry the outside file (issue 11: the old check-then-open
//! resolution served it in ~7% of responses under this attack).

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{deadline_in, get, Client, Server, TempDir};

/// What the file outside the root holds; no response may ever carry it.
const OUTSIDE: &str = "OUTSIDE-THE-ROOT\n";
/// What the file inside the root holds.
const INSIDE: &str = "inside the root\n";

/// Relative symlinks to `race/d`, so each has its own cache entry: more
/// fresh lookups per second, as an attacker would arrange.
const RACE_LINKS: usize = 1000;
/// The race test stops after this many responses...
const RACE_REQUESTS: usize = 3000;
/// ...or after this long, whichever comes first.
const RACE_DURATION: Duration = Duration::from_secs(5);
/// Client connections fetching while the tree is swapped.
const RACE_CLIENTS: usize = 2;

/// `base/root` (the docroot) next to `base/outside/file`.
struct Tree {
    base: TempDir,
}

impl Tree {
    fn new(tag: &str) -> Tree {
        let base = TempDir::new(tag);
        std::fs::create_dir_all(base.path().join("root")).expect("mkdir root");
        std::fs::create_dir_all(base.path().join("outside")).expect("mkdir outside");
        std::fs::write(base.path().join("outside/file"), OUTSIDE).expect("write outside file");
        Tree { base }
    }

    fn root(&self) -> std::path::PathBuf {
        self.base.path().join("root")
    }

    fn root_str(&self) -> String {
        self.root().to_string_lossy().into_owned()
    }

    /// Writes `root/rel`, creating its directories.
    fn write(&self, rel: &str, contents: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write");
    }

    /// `root/rel -> target`.
    fn link(&self, target: impl AsRef<Path>, rel: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        symlink(target, &p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_never_serves_outside_files() {
    let tree = Tree::new("race");
    let root = tree.root();
    let race = root.join("race");
    tree.write("race/d/file", INSIDE);
    symlink(tree.base.path().join("outside"), race.join("dsym")).expect("symlink dsym");
    for i in 0..RACE_LINKS {
        symlink("d", race.join(format!("lnk{i}"))).expect("symlink lnkN");
    }
    let server = Server::start(&["-t", "2:2", &tree.root_str()]);
    let addr = server.addr();

    // The swapper: `d` becomes the symlink to outside and back, over and
    // over, each step one atomic rename(2) (std has no RENAME_EXCHANGE,
    // and tests use no unsafe; the four renames give the same windows).
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps, race) = (Arc::clone(&stop), Arc::clone(&swaps), race.clone());
        std::thread::spawn(move || {
            let (d, dsym, tmp) = (race.join("d"), race.join("dsym"), race.join("tmp"));
            while !stop.load(Ordering::Relaxed) {
                for (from, to) in [(&d, &tmp), (&dsym, &d), (&d, &dsym), (&tmp, &d)] {
                    std::fs::rename(from, to).expect("rename in the race tree");
                }
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = deadline_in(RACE_DURATION);
    let clients: Vec<_> = (0..RACE_CLIENTS)
        .map(|k| {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                let (mut inside, mut escaped, mut not_found) = (0usize, 0usize, 0usize);
                let mut c = Client::connect(addr);
                let mut i = k;
                while sent.fetch_add(1, Ordering::Relaxed) < RACE_REQUESTS
                    && std::time::Instant::now() < deadline
                {
                    c.send(&support::get_bytes(&format!(
                        "/race/lnk{}/file",
                        i % RACE_LINKS
                    )));
                    i += RACE_CLIENTS;
                    let r = match c.response("GET") {
                        Ok(r) => r,
                        Err(e) => {
                            let n = inside + escaped + not_found;
                            return Err(format!("after {n} responses: {e}"));
                        }
                    };
                    if r.connection_has("close") {
                        // The server closes after `--max-keep-alive` requests.
                        c = Client::connect(addr);
                    }
                    if r.body
                        .windows(OUTSIDE.len())
                        .any(|w| w == OUTSIDE.as_bytes())
                    {
                        escaped += 1;
                    } else if r.status == 200 && r.text() == INSIDE {
                        inside += 1;
                    } else if r.status == 404 {
                        // `d` was missing or the symlink at that moment.
                        not_found += 1;
                    } else {
                        return Err(format!("unexpected answer in the race: {r:?}"));
                    }
                }
                Ok((inside, escaped, not_found))
            })
        })
        .collect();
    let (mut inside, mut escaped, mut not_found) = (0, 0, 0);
    for c in clients {
        let (i, e, o) = c.join().expect("client thread").unwrap_or_else(|e| {
            panic!(
                "{e}\nstdout:\n{}\nstderr:\n{}",
                server.stdout(),
                server.stderr()
            )
        });
        inside += i;
        escaped += e;
        not_found += o;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper thread");
    let total = inside + escaped + not_found;
    eprintln!(
        "race: {total} responses, {escaped} escaped, {inside} inside, {not_found} 404, {} swaps",
        swaps.load(Ordering::Relaxed)
    );
    assert!(
        swaps.load(Ordering::Relaxed) > 0,
        "the swapper never completed a swap"
    );
    assert_eq!(
        escaped, 0,
        "{escaped} of {total} responses carried the file outside the root"
    );
    assert!(
        inside > 0,
        "no response served the file through the in-root symlink during the race"
    );
}

/// `target` answers 200 with `body`.
fn assert_body(addr: std::net::SocketAddr, target: &str, body: &str) {
    let r = get(addr, target);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, body),
        "{target}: {r:?}"
    );
}

/// `target` answers 404, and not with the outside file.
fn assert_404(addr: std::net::SocketAddr, target: &str) {
    let r = get(addr, target);
    assert_eq!(r.status, 404, "{target}: {r:?}");
    assert!(!r.text().contains(OUTSIDE), "{target} escaped: {r:?}");
}

#[test]
fn symlinks_that_stay_inside_the_root_are_followed() {
    let tree = Tree::new("inlinks");
    tree.write("file.txt", INSIDE);
    tree.write("dir/a.txt", "a\n");
    tree.write("dir/sub/index.html", "<p>index</p>\n");
    tree.link("file.txt", "to-file");
    tree.link("dir", "to-dir");
    tree.link("to-file", "chain");
    tree.link("../file.txt", "dir/up");
    tree.link("sub/../a.txt", "dir/round-trip");
    tree.link("../dir/sub", "dir/to-sub");
    let server = Server::start(&["--dir-listing", &tree.root_str()]);
    let addr = server.addr();

    assert_body(addr, "/to-file", INSIDE);
    assert_body(addr, "/chain", INSIDE);
    assert_body(addr, "/to-dir/a.txt", "a\n");
    assert_body(addr, "/dir/up", INSIDE);
    assert_body(addr, "/dir/round-trip", "a\n");
    assert_body(addr, "/to-dir/to-sub/", "<p>index</p>\n");
    // A symlink to a directory is a directory: redirect, then list.
    let r = get(addr, "/to-dir");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("Location"), Some("/to-dir/"));
    let r = get(addr, "/to-dir/");
    assert_eq!(r.status, 200, "{r:?}");
    let html = r.text();
    assert!(html.contains("<a href=\"a.txt\">a.txt</a>"), "{html}");
    assert!(html.contains("<a href=\"up\">up</a>"), "{html}");
    assert!(html.contains("<a href=\"to-sub/\">to-sub/</a>"), "{html}");
}

#[test]
fn symlinks_that_leave_the_root_are_404() {
    let tree = Tree::new("outlinks");
    let outside = tree.base.path().join("outside");
    tree.write("file.txt", INSIDE);
    tree.write("dir/a.txt", "a\n");
    tree.write("app.js", "identity\n");
    tree.link("../outside/file", "relative");
    tree.link(outside.join("file"), "absolute");
    tree.link("../outside", "outdir");
    tree.link("../../outside/file", "dir/deep");
    tree.link("../../outside/file", "trap/index.html");
    tree.link("../outside/file", "app.js.br");
    tree.link("loop-b", "loop-a");
    tree.link("loop-a", "loop-b");
    // An absolute symlink is refused even when it names a place inside
    // the root (RESOLVE_BENEATH cannot tell; README.md says so).
    tree.link(tree.root().join("file.txt"), "absolute-inside");
    let server = Server::start(&["--dir-listing", &tree.root_str()]);
    let addr = server.addr();

    for target in [
        "/relative",
        "/absolute",
        "/outdir/file",
        "/outdir/",
        "/outdir",
        "/dir/deep",
        "/trap/index.html",
        "/app.js.br",
        "/loop-a",
        "/absolute-inside",
    ] {
        assert_404(addr, target);
    }
    // An index.html that leads outside is no index: the directory is
    // listed instead, and the listing does not show the link.
    let r = get(addr, "/trap/");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.text().contains(OUTSIDE), "{r:?}");
    assert!(!r.text().contains("index.html"), "{r:?}");
    // A .br sibling that leads outside is not used.
    let r = support::request(
        addr,
        b"GET /app.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "identity\n"), "{r:?}");
    assert_eq!(r.header("Content-Encoding"), None, "{r:?}");
    // The root's listing leaves out every link a request would get 404 for.
    let html = get(addr, "/").text();
    for name in [
        "relative",
        "absolute",
        "outdir",
        "loop-a",
        "absolute-inside",
    ] {
        assert!(
            !html.contains(&format!("\"{name}")),
            "{name} listed: {html}"
        );
    }
    assert!(html.contains("<a href=\"file.txt\">file.txt</a>"), "{html}");
    assert_body(addr, "/file.txt", INSIDE);
}

#[test]
fn symlinks_to_dotfiles_follow_the_dotfile_rule() {
    let tree = Tree::new("dotlinks");
    tree.write(".hidden", "hidden\n");
    tree.write(".git/config", "[core]\n");
    tree.link(".hidden", "shown");
    tree.link(".git", "git");
    tree.link("dir/../.hidden", "sneaky");
    tree.write("dir/a.txt", "a\n");
    let hidden = Server::start(&["--dir-listing", &tree.root_str()]);
    for target in ["/shown", "/git/config", "/sneaky", "/.hidden"] {
        assert_404(hidden.addr(), target);
    }
    let html = get(hidden.addr(), "/").text();
    assert!(
        !html.contains("shown") && !html.contains("git"),
        "links to dotfiles listed: {html}"
    );

    let shown = Server::start(&["--serve-dotfiles", &tree.root_str()]);
    assert_body(shown.addr(), "/shown", "hidden\n");
    assert_body(shown.addr(), "/git/config", "[core]\n");
    assert_body(shown.addr(), "/sneaky", "hidden\n");
}
