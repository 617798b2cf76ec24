//! The embedding API, through the examples (cargo builds them for
//! `cargo test`): a handler answers, a panic is one 500, and the JSON
//! example reads request bodies.

mod support;

use std::process::Command;

use support::{example, get, request, Server};

#[test]
fn hello_example_answers_and_survives_a_panicking_handler() {
    let Some(bin) = example("hello") else { return };
    let mut cmd = Command::new(bin);
    cmd.args(["-b", "tcp://127.0.0.1:0", "-t", "1:1"]);
    let mut server = Server::start_command(cmd);
    let r = get(server.addr(), "/x");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from catamount: GET /x\n");
    // An absolute-form target reaches the handler as its path.
    let r = get(server.addr(), "http://example.com:8080/a.txt?q=1");
    assert_eq!(r.text(), "hello from catamount: GET /a.txt\n", "{r:?}");
    // One pool thread: if the panic killed it, the next request would hang.
    assert_eq!(get(server.addr(), "/panic").status, 500);
    assert_eq!(get(server.addr(), "/after").status, 200);
    assert!(server.stop().success());
}

#[test]
fn json_example_reads_bodies() {
    let Some(bin) = example("json_api") else {
        return;
    };
    let mut cmd = Command::new(bin);
    cmd.args(["-b", "tcp://127.0.0.1:0"]);
    let mut server = Server::start_command(cmd);
    let post = b"POST /counters HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 6\r\n\r\napples";
    let r = request(server.addr(), post);
    assert_eq!((r.status, r.text()), (200, "{\"apples\":1}".to_string()));
    let chunked = b"POST /counters HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\napp\r\n3\r\nles\r\n0\r\n\r\n";
    let r = request(server.addr(), chunked);
    assert_eq!((r.status, r.text()), (200, "{\"apples\":2}".to_string()));
    let r = get(server.addr(), "/counters");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), "{\"apples\":2}");
    assert!(server.stop().success());
}

#[test]
fn single_mode_boot_failure_exits_1_before_claiming_to_listen() {
    // Issue 12: the banner said "Listening on ..." and "Use Ctrl-C to
    // stop", then the process exited: the boot runs first now.
    let Some(bin) = example("flaky_boot") else {
        return;
    };
    let mut cmd = Command::new(bin);
    cmd.args(["-b", "tcp://127.0.0.1:0"])
        .env("FLAKY_BOOT_FAIL", "1");
    let f = Server::run_command(cmd);
    assert_eq!(f.status.code(), Some(1), "{f:?}");
    assert!(
        f.stderr
            .contains("the application failed to boot: FLAKY_BOOT_FAIL is set"),
        "{f:?}"
    );
    assert!(!f.stdout.contains("Listening on"), "{f:?}");
    assert!(!f.stdout.contains("Use Ctrl-C to stop"), "{f:?}");
}
