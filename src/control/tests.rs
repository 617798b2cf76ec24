//! The control app and `ctl` driven from the test thread over real
//! sockets, and the state file.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ctl::{call, ctl_main, parse_response};
use super::state::{read_state, write_state};
use super::*;

const STATS: &str = r#"{"mode":"test","workers":[]}"#;
/// Every test ends well within this, or fails.
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// A fresh directory under /tmp (unix socket paths are short).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = PathBuf::from(format!(
            "/tmp/cm-ctl-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create a test directory under /tmp");
        Dir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn unix_server(dir: &Dir, token: Option<&str>) -> (ControlServer, PathBuf) {
    let path = dir.join("ctl.sock");
    let spec = BindSpec::parse(&format!("unix://{}", path.display())).expect("spec");
    let s = ControlServer::bind(&spec, token.map(str::to_string)).expect("bind unix");
    (s, path)
}

fn tcp_server(token: Option<&str>) -> (ControlServer, SocketAddr) {
    let spec = BindSpec::parse("tcp://127.0.0.1:0").expect("spec");
    let s = ControlServer::bind(&spec, token.map(str::to_string)).expect("bind tcp");
    let addr = s
        .url()
        .strip_prefix("tcp://")
        .and_then(|a| a.parse().ok())
        .expect("tcp url");
    (s, addr)
}

/// One poll + handle_ready turn, as an owner's loop does.
fn turn(s: &mut ControlServer, max_wait: Duration) -> Vec<ControlCommand> {
    let fds = s.fds();
    let wait = s.next_deadline().map_or(max_wait, |d| {
        d.saturating_duration_since(Instant::now()).min(max_wait)
    });
    let mut ready = Vec::new();
    sys::poll_readable(&fds, Some(wait), &mut ready).expect("poll");
    s.handle_ready(&|| STATS.to_string())
}

/// Drives `s` until `client` (run on a thread) returns.
fn drive<T: Send + 'static>(
    s: &mut ControlServer,
    client: impl FnOnce() -> T + Send + 'static,
) -> (T, Vec<ControlCommand>) {
    let h = std::thread::spawn(client);
    let deadline = Instant::now() + TEST_DEADLINE;
    let mut cmds = Vec::new();
    while !h.is_finished() {
        assert!(Instant::now() < deadline, "the client did not finish");
        cmds.extend(turn(s, Duration::from_millis(20)));
    }
    (h.join().expect("client thread"), cmds)
}

/// Drives `s` for `d`.
fn drive_for(s: &mut ControlServer, d: Duration) -> Vec<ControlCommand> {
    let end = Instant::now() + d;
    let mut cmds = Vec::new();
    while Instant::now() < end {
        cmds.extend(turn(s, end.saturating_duration_since(Instant::now())));
    }
    cmds
}

/// Status and body of a response read to EOF.
fn status_body(raw: &[u8]) -> (u16, String) {
    parse_response(raw).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(raw)))
}

fn read_all(mut s: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

fn unix_request(path: &Path, raw: &str) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let bytes = read_all(s);
    let (st, body) = status_body(&bytes);
    (st, body, bytes)
}

fn tcp_request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    status_body(&read_all(s))
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
}

#[test]
fn missing_or_wrong_token_is_403() {
    let dir = Dir::new("403");
    let (mut s, path) = unix_server(&dir, Some("s3cret"));
    for req in [
        get("/stats", ""),
        get("/stats?token=wrong", ""),
        get("/stats?token=s3cre", ""),
        get("/stats?token=s3crett", ""),
        get("/stop", "Authorization: Bearer wrong\r\n"),
        get("/stop", "Authorization: Basic s3cret\r\n"),
        get("/nope", ""),
    ] {
        let p = path.clone();
        let ((st, body, raw), cmds) = drive(&mut s, move || unix_request(&p, &req));
        assert_eq!(st, 403, "{body}");
        assert!(
            body.starts_with(r#"{"error":"missing or wrong token"#),
            "{body}"
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: application/json\r\n"),
            "{text}"
        );
        assert!(cmds.is_empty());
    }
}

#[test]
fn right_token_gets_stats_over_unix_and_tcp() {
    let dir = Dir::new("stats");
    let (mut s, path) = unix_server(&dir, Some("s3cret"));
    for req in [
        get("/stats?token=s3cret", ""),
        get("/stats?x=1&token=s3%63ret", ""),
        get("/stats", "Authorization: Bearer s3cret\r\n"),
        get("/stats", "authorization: bearer   s3cret\r\n"),
    ] {
        let p = path.clone();
        let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &req));
        assert_eq!((st, body.as_str()), (200, STATS));
        assert!(cmds.is_empty());
    }
    let (mut t, addr) = tcp_server(Some("tok+/=")); // `+` unencoded still matches
    let ((st, body), _) = drive(&mut t, move || {
        tcp_request(addr, &get("/stats?token=tok+%2F%3d", ""))
    });
    assert_eq!((st, body.as_str()), (200, STATS));
    assert!(t.url().starts_with("tcp://127.0.0.1:") && !t.url().ends_with(":0"));
}

#[test]
fn each_command_is_answered_then_yielded() {
    let dir = Dir::new("cmds");
    let (mut s, path) = unix_server(&dir, Some("t"));
    for cmd in [
        ControlCommand::Restart,
        ControlCommand::PhasedRestart,
        ControlCommand::Stop,
        ControlCommand::Halt,
    ] {
        let p = path.clone();
        let req = get(&format!("{}?token=t", cmd.path()), "");
        let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &req));
        assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
        assert_eq!(cmds, vec![cmd]);
    }
}

#[test]
fn the_answer_is_written_before_the_command_is_returned() {
    // The owner may exit as soon as it has the command: drop the
    // server at once, then read. The whole answer must be there.
    let dir = Dir::new("before");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let mut c = UnixStream::connect(&path).expect("connect");
    c.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
    c.write_all(get("/halt", "Authorization: Bearer t\r\n").as_bytes())
        .expect("write");
    let deadline = Instant::now() + TEST_DEADLINE;
    let cmds = loop {
        let cmds = turn(&mut s, Duration::from_millis(50));
        if !cmds.is_empty() {
            break cmds;
        }
        assert!(Instant::now() < deadline, "no command");
    };
    drop(s);
    assert_eq!(cmds, vec![ControlCommand::Halt]);
    let (st, body) = status_body(&read_all(c));
    assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
}

#[test]
fn unknown_path_404_wrong_method_405() {
    let dir = Dir::new("404");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let p = path.clone();
    let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &get("/gc?token=t", "")));
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("unknown path /gc"), "{body}");
    assert!(cmds.is_empty());
    let p = path.clone();
    let req = "POST /stop?token=t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let ((st, body, raw), cmds) = drive(&mut s, move || unix_request(&p, req));
    assert_eq!(st, 405, "{body}");
    assert!(String::from_utf8_lossy(&raw).contains("Allow: GET\r\n"));
    assert!(cmds.is_empty());
    // Without the token, nothing about paths or methods is revealed.
    let p = path.clone();
    let ((st, _, _), _) = drive(&mut s, move || {
        unix_request(&p, "POST /gc HTTP/1.1\r\nHost: x\r\n\r\n")
    });
    assert_eq!(st, 403);
}

#[test]
fn phased_restart_can_be_unavailable() {
    let dir = Dir::new("phased");
    let (mut s, path) = unix_server(&dir, None);
    s.set_phased_restart(false);
    let ((st, body, _), cmds) = drive(&mut s, move || {
        unix_request(&path, &get("/phased-restart", ""))
    });
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("cluster mode"), "{body}");
    assert!(cmds.is_empty());
}

#[test]
fn no_token_configured_allows_any_client() {
    let dir = Dir::new("notoken");
    let (mut s, path) = unix_server(&dir, None);
    let p = path.clone();
    let ((st, body, _), _) = drive(&mut s, move || unix_request(&p, &get("/stats", "")));
    assert_eq!((st, body.as_str()), (200, STATS));
    let ((st, _, _), cmds) = drive(&mut s, move || {
        unix_request(&path, &get("/stop?token=anything", ""))
    });
    assert_eq!(st, 200);
    assert_eq!(cmds, vec![ControlCommand::Stop]);
}

#[test]
fn slow_client_is_closed_at_its_deadline() {
    let dir = Dir::new("slow");
    let (mut s, path) = unix_server(&dir, Some("t"));
    s.set_timeout(Duration::from_millis(200));
    let mut half = UnixStream::connect(&path).expect("connect");
    half.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
    half.write_all(b"GET /stats?tok").expect("write");
    let mut idle = UnixStream::connect(&path).expect("connect");
    idle.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
    let started = Instant::now();
    drive_for(&mut s, Duration::from_millis(100));
    assert_eq!(s.conns.len(), 2, "closed before the deadline");
    assert!(s.next_deadline().is_some());
    drive_for(&mut s, Duration::from_millis(300));
    assert!(s.conns.is_empty(), "still open after the deadline");
    let (st, body) = status_body(&read_all(&mut half));
    assert_eq!(st, 408, "{body}");
    // A client that sent nothing is just closed.
    assert!(read_all(&mut idle).is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn open_connections_are_bounded() {
    let dir = Dir::new("many");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let idle: Vec<UnixStream> = (0..CONTROL_MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    drive_for(&mut s, Duration::from_millis(50));
    assert_eq!(s.conns.len(), CONTROL_MAX_CONNECTIONS);
    // The listener is out of the poll set while the table is full.
    assert_eq!(s.fds().len(), CONTROL_MAX_CONNECTIONS);
    let mut extra = UnixStream::connect(&path).expect("connect (kernel backlog)");
    extra
        .set_read_timeout(Some(TEST_DEADLINE))
        .expect("timeout");
    extra
        .write_all(get("/stats?token=t", "").as_bytes())
        .expect("write");
    drive_for(&mut s, Duration::from_millis(100));
    assert_eq!(s.conns.len(), CONTROL_MAX_CONNECTIONS, "over the bound");
    // One slot frees: the waiting connection is served.
    drop(idle);
    let (got, _) = drive(&mut s, move || status_body(&read_all(&mut extra)));
    assert_eq!(got, (200, STATS.to_string()));
}

#[test]
fn oversized_or_malformed_requests_are_refused_and_closed() {
    let dir = Dir::new("big");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let big = format!(
        "GET /stats?token=t HTTP/1.1\r\nX: {}\r\n",
        "a".repeat(CONTROL_MAX_REQUEST)
    );
    let p = path.clone();
    let ((st, body, _), cmds) = drive(&mut s, move || unix_request(&p, &big));
    assert_eq!(st, 431, "{body}");
    assert!(cmds.is_empty());
    let many: String = (0..=CONTROL_MAX_HEADERS)
        .map(|i| format!("H{i}: v\r\n"))
        .collect();
    let p = path.clone();
    let ((st, _, _), _) = drive(&mut s, move || {
        unix_request(&p, &get("/stats?token=t", &many))
    });
    assert_eq!(st, 431);
    let p = path.clone();
    let ((st, body, _), _) = drive(&mut s, move || {
        unix_request(&p, "GET /stats\x01 HTTP/1.1\r\n\r\n")
    });
    assert_eq!(st, 400, "{body}");
    assert!(s.conns.iter().all(|c| c.state == ConnState::Lingering));
    drive_for(&mut s, Duration::from_millis(50));
    assert!(s.conns.is_empty());
}

#[test]
fn a_head_of_exactly_the_limit_is_served() {
    let dir = Dir::new("exact");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let base = get("/stats?token=t", "X: \r\n");
    let pad = CONTROL_MAX_REQUEST - base.len();
    let req = get("/stats?token=t", &format!("X: {}\r\n", "a".repeat(pad)));
    assert_eq!(req.len(), CONTROL_MAX_REQUEST);
    let ((st, _, _), _) = drive(&mut s, move || unix_request(&path, &req));
    assert_eq!(st, 200);
}

#[test]
fn unix_socket_is_owner_only_and_removed_only_while_ours() {
    let dir = Dir::new("mode");
    let (s, path) = unix_server(&dir, Some("t"));
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(s.url(), format!("unix://{}", path.display()));
    // A live server on the path is not replaced.
    let spec = BindSpec::parse(&format!("unix://{}", path.display())).expect("spec");
    let e = ControlServer::bind(&spec, None).err().expect("refused");
    assert!(e.to_string().contains("another server answers"), "{e}");
    // A stale file (no listener behind it) is.
    drop(s);
    let s = ControlServer::bind(&spec, None).expect("rebind over a stale file");
    s.remove_socket_file();
    assert!(!path.exists());
    // mode= is honoured.
    let p2 = dir.join("g.sock");
    let spec = BindSpec::parse(&format!("unix://{}?mode=0660", p2.display())).expect("spec");
    let s2 = ControlServer::bind(&spec, None).expect("bind");
    assert_eq!(mode(&p2), 0o660);
    // Replaced by someone else: left alone.
    fs::remove_file(&p2).expect("rm");
    fs::write(&p2, "not ours").expect("write");
    s2.remove_socket_file();
    assert!(p2.exists());
}

#[test]
fn ctl_refuses_ssl_by_its_scheme_in_either_build() {
    // Before its options are read: a missing cert= or a build without
    // TLS would otherwise be blamed.
    for url in ["ssl://127.0.0.1:1", "ssl://127.0.0.1:1?cert=/c&key=/k"] {
        let e = call(url, None, "stats").expect_err(url);
        assert_eq!(
            e, "ssl:// is not supported; expected unix:///PATH or tcp://HOST:PORT",
            "{url}"
        );
    }
}

#[test]
fn tcp_control_url_must_be_loopback() {
    for uri in [
        "tcp://0.0.0.0:0",
        "tcp://192.0.2.1:0",
        "tcp://example.com:0",
    ] {
        let spec = BindSpec::parse(uri).expect("spec");
        let e = ControlServer::bind(&spec, None).err().expect("refused");
        assert!(e.to_string().contains("loopback"), "{uri}: {e}");
    }
    // ssl:// is refused here too (config refuses it first).
    if let Ok(spec) = BindSpec::parse("ssl://127.0.0.1:0?cert=/nonexistent&key=/nonexistent") {
        let e = ControlServer::bind(&spec, None).err().expect("refused");
        assert!(e.to_string().contains("ssl://"), "{e}");
    }
    let spec = BindSpec::parse("tcp://localhost:0").expect("spec");
    let s = ControlServer::bind(&spec, None).expect("localhost");
    assert!(s.url().starts_with("tcp://127.0.0.1:"));
}

#[test]
fn state_file_round_trip_mode_0600_atomic() {
    let dir = Dir::new("state");
    let path = dir.join("state");
    fs::write(&path, "old").expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    write_state(&path, 42, Some("unix:///tmp/a b.sock"), Some("t\"o#k\\en")).expect("write");
    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let st = read_state(&path).expect("read");
    assert_eq!(
        st,
        State {
            pid: 42,
            control_url: Some("unix:///tmp/a b.sock".into()),
            control_auth_token: Some("t\"o#k\\en".into()),
        }
    );
    write_state(&path, 7, Some("unix:///run/ctl.sock"), Some("abc123")).expect("write");
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(
        text,
        "---\npid: 7\ncontrol_url: unix:///run/ctl.sock\ncontrol_auth_token: abc123\n"
    );
    write_state(&path, 8, None, None).expect("write");
    assert_eq!(
        read_state(&path).expect("read"),
        State {
            pid: 8,
            control_url: None,
            control_auth_token: None
        }
    );
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(&dir.0).expect("ls").count(), 1);
    // Puma's own state file reads too.
    fs::write(
        &path,
        "---\npid: 99\ncontrol_url: tcp://127.0.0.1:9293\ncontrol_auth_token: ff\nrunning_from: \"/srv/app\"\n",
    )
    .expect("write");
    let st = read_state(&path).expect("puma state");
    assert_eq!(st.pid, 99);
    assert_eq!(st.control_url.as_deref(), Some("tcp://127.0.0.1:9293"));
    let e = read_state(&dir.join("missing")).expect_err("missing");
    assert!(e.contains("is the server running"), "{e}");
    fs::write(&path, "control_url: x\n").expect("write");
    assert!(read_state(&path).expect_err("no pid").contains("no pid"));
}

#[test]
fn helpers() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(!constant_time_eq(b"abc", b""));
    assert_eq!(
        crate::http::percent_decode("a%2Fb+c"),
        Some(b"a/b+c".to_vec())
    );
    assert_eq!(crate::http::percent_decode("%zz"), None);
    assert_eq!(crate::http::percent_decode("%4"), None);
    assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    assert_eq!(bearer("Bearer  x "), Some("x"));
    assert_eq!(bearer("Basic x"), None);
    assert_eq!(truncate("abcdef", 3), "abc...");
}

#[test]
fn pool_stats_in_pumas_names() {
    let p = PoolStats {
        backlog: 3,
        running: 4,
        busy: 2,
        max_threads: 5,
        requests: 9,
        connections: 0,
    };
    assert_eq!(
        p.puma_members(),
        r#""backlog":3,"running":4,"pool_capacity":3,"max_threads":5,"requests_count":9"#
    );
    // Never negative, whatever the counters say mid-update.
    let over = PoolStats { busy: 7, ..p };
    assert_eq!(over.pool_capacity(), 0);
}

fn ctl(args: &[&str]) -> i32 {
    ctl_main(args.iter().map(OsString::from).collect())
}

#[test]
fn ctl_usage_errors_exit_2() {
    assert_eq!(ctl(&["--control-url", "unix:///x", "reboot"]), 2);
    assert_eq!(ctl(&["stats"]), 2);
    assert_eq!(ctl(&["--control-url", "unix:///x"]), 2);
    assert_eq!(ctl(&["--control-url", "unix:///x", "--bogus", "stats"]), 2);
    assert_eq!(ctl(&["--control-url", "unix:///x", "stats", "stop"]), 2);
    assert_eq!(ctl(&["--help"]), 0);
}

#[test]
fn ctl_talks_to_a_control_server() {
    let dir = Dir::new("ctl");
    let (mut s, path) = unix_server(&dir, Some("t"));
    let url = s.url();
    let state = dir.join("state");
    write_state(&state, 1, Some(&url), Some("t")).expect("state");
    let u = url.clone();
    let (code, _) = drive(&mut s, move || {
        ctl(&["--control-url", &u, "--control-token", "t", "stats"])
    });
    assert_eq!(code, 0);
    let st = state.to_string_lossy().into_owned();
    let (code, cmds) = drive(&mut s, move || ctl(&["-S", &st, "restart"]));
    assert_eq!((code, cmds), (0, vec![ControlCommand::Restart]));
    let u = url.clone();
    let (code, cmds) = drive(&mut s, move || {
        ctl(&["--control-url", &u, "--control-token", "bad", "stop"])
    });
    assert_eq!((code, cmds), (1, vec![]));
    let (mut t, addr) = tcp_server(None);
    let (code, cmds) = drive(&mut t, move || {
        ctl(&["--control-url", &format!("tcp://{addr}"), "halt"])
    });
    assert_eq!((code, cmds), (0, vec![ControlCommand::Halt]));
    drop(s);
    fs::remove_file(&path).expect("rm");
    assert_eq!(ctl(&["--control-url", &url, "stats"]), 1, "no server");
    assert_eq!(ctl(&["-S", "/nonexistent/state", "stats"]), 1);
}
