//! Landlock self-confinement (issue 16 item 2), with the real binary and
//! the `confined_probe` example (a handler that opens whatever path it is
//! asked for, with no check of its own). Everything else catamount does
//! (static files, hot restart, phased restart, reload, TLS, unix sockets,
//! the control app, pidfile and state file) runs confined in the other
//! test files, since the binary confines itself by default.
//!
//! On a kernel without Landlock each test prints `skipped:`.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::{deadline_in, example, free_port, get, skip, Server, TempDir};

/// Upper bound for a reload's outcome to show in the log.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

/// Whether this kernel has Landlock: the banner says so either way.
fn landlock_available(server: &Server) -> bool {
    let out = server.stdout() + &server.stderr();
    if out.contains("Landlock is not available") {
        skip("this kernel has no Landlock");
        return false;
    }
    true
}

/// A secret outside the docroot, and a symlink to it inside.
struct Outside {
    dir: TempDir,
    secret: String,
}

fn outside(docroot: &Path) -> Outside {
    let dir = TempDir::new("outside");
    let secret = dir.write("secret.txt", "the secret\n");
    std::os::unix::fs::symlink(&secret, docroot.join("link.txt")).expect("symlink");
    Outside { dir, secret }
}

fn probe(server: &Server, path: &str) -> (u16, String) {
    let r = get(server.addr(), &format!("/?{path}"));
    (r.status, r.text())
}

#[test]
fn the_kernel_refuses_a_path_outside_the_rules_even_when_the_app_opens_it() {
    let Some(server) = Server::start_example("confined_probe", &[]) else {
        return;
    };
    if !landlock_available(&server) {
        return;
    }
    let docroot = server.docroot().expect("a docroot").to_path_buf();
    let out = outside(&docroot);
    let inside = docroot.join("hello.txt");
    assert_eq!(probe(&server, inside.to_str().unwrap()).0, 200);
    let (status, text) = probe(&server, &out.secret);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    // Through a symlink inside DIR: the kernel checks the target.
    let (status, text) = probe(&server, docroot.join("link.txt").to_str().unwrap());
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    let (status, text) = probe(&server, "/etc/passwd");
    assert_eq!(status, 403, "{text}");
    let banner = server.stdout();
    assert!(banner.contains("* Confined by Landlock ABI "), "{banner}");
    assert!(
        banner.contains(&format!("read /proc/{}", server.pid())),
        "{banner}"
    );
    drop(out.dir);
}

#[test]
fn an_app_adds_the_paths_it_needs_and_the_operator_can_turn_it_off() {
    let extra = TempDir::new("extra");
    let secret = extra.write("data.txt", "app data\n");
    // Added by the app (Server::confine): readable.
    let Some(bin) = example("confined_probe") else {
        return;
    };
    let (args, _docroot) = support::with_defaults(&[]);
    let mut cmd = std::process::Command::new(bin);
    cmd.args(&args).env("PROBE_EXTRA_READ", extra.path());
    let server = Server::start_command(cmd);
    if !landlock_available(&server) {
        return;
    }
    assert_eq!(probe(&server, &secret), (200, "app data\n".to_string()));
    drop(server);

    // --no-landlock: the operator's word wins over the app's call.
    let Some(server) = Server::start_example("confined_probe", &["--no-landlock"]) else {
        return;
    };
    assert_eq!(probe(&server, &secret), (200, "app data\n".to_string()));
    assert!(!server.stdout().contains("Landlock"), "{}", server.stdout());
}

#[test]
fn workers_are_confined_and_the_master_lists_their_rules() {
    let Some(server) = Server::start_example("confined_probe", &["--workers=2"]) else {
        return;
    };
    if !landlock_available(&server) {
        return;
    }
    let banner = server.stdout();
    assert!(
        banner.contains("* Workers confined by Landlock ABI "),
        "{banner}"
    );
    let docroot = server.docroot().expect("a docroot").to_path_buf();
    let out = outside(&docroot);
    // Whichever worker answers, the same: the first request may reach a
    // worker still booting, so wait for one answer first.
    let inside = docroot.join("hello.txt");
    assert!(support::wait_until(deadline_in(RELOAD_DEADLINE), || {
        probe(&server, inside.to_str().unwrap()).0 == 200
    }));
    for _ in 0..4 {
        let (status, text) = probe(&server, &out.secret);
        assert_eq!(status, 403, "{text}");
    }
}

#[test]
fn the_binary_lists_what_it_may_touch_and_serves_under_it() {
    let dir = TempDir::new("ll-bin");
    let www = dir.path().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("hello.txt"), support::HELLO).unwrap();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap();
    let sock = run.join("app.sock");
    let port = free_port();
    let pidfile = run.join("pid");
    let mut server = Server::start_exact(&[
        "-b",
        &format!("tcp://127.0.0.1:{port}"),
        "-b",
        &format!("unix://{}", sock.display()),
        "--pidfile",
        pidfile.to_str().unwrap(),
        www.to_str().unwrap(),
    ]);
    if !landlock_available(&server) {
        return;
    }
    let banner = server.stdout();
    let line = banner
        .lines()
        .find(|l| l.contains("* Confined by Landlock"))
        .unwrap_or_else(|| panic!("no Landlock line:\n{banner}"));
    let www = fs::canonicalize(&www).unwrap();
    let run = fs::canonicalize(&run).unwrap();
    for part in [
        format!("{}", www.display()),
        format!("write files in {}", run.display()),
        format!("unix sockets in {}", run.display()),
        format!("bind tcp {port}"),
        "no connect".to_string(),
    ] {
        assert!(line.contains(&part), "{part:?} missing from:\n{line}");
    }
    assert_eq!(get(server.addr(), "/hello.txt").status, 200);
    // The final exit removes the pidfile and the socket file: allowed.
    assert!(server.stop().success());
    assert!(!pidfile.exists() && !sock.exists(), "left behind");
}

#[test]
fn a_reload_that_needs_a_new_directory_is_refused_and_says_how_to_apply_it() {
    let dir = TempDir::new("ll-reload");
    let a = dir.path().join("a");
    let b = TempDir::new("ll-reload-b");
    fs::create_dir(&a).unwrap();
    fs::write(a.join("hello.txt"), support::HELLO).unwrap();
    fs::write(b.path().join("hello.txt"), "other\n").unwrap();
    let conf = dir.path().join("catamount.rb");
    let port = free_port();
    let write_conf = |root: &Path| {
        fs::write(
            &conf,
            format!(
                "bind \"tcp://127.0.0.1:{port}\"\ndirectory \"{}\"\n",
                root.display()
            ),
        )
        .unwrap();
    };
    write_conf(&a);
    let server = Server::start_exact(&["-C", conf.to_str().unwrap()]);
    if !landlock_available(&server) {
        return;
    }
    write_conf(b.path());
    server.signal("HUP");
    assert!(
        server.wait_for_stderr(
            "Landlock confinement does not allow",
            deadline_in(RELOAD_DEADLINE)
        ),
        "no refusal:\n{}\n{}",
        server.stdout(),
        server.stderr()
    );
    let err = server.stderr();
    let b_path = fs::canonicalize(b.path()).unwrap();
    assert!(err.contains(&format!("read {}", b_path.display())), "{err}");
    assert!(err.contains("systemctl restart"), "{err}");
    // Still serving the old directory, same process.
    let r = get(server.addr(), "/hello.txt");
    assert_eq!((r.status, r.text()), (200, support::HELLO.to_string()));
}
