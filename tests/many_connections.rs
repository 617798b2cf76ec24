//! Thousands of idle keep-alive connections cost no pool threads: the
//! reactor parks them, and a new request is answered at once. Alone in
//! its own test binary because it needs thousands of descriptors.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{assert_serves, get_bytes, raise_nofile_limit, wait_until, Client, Server, HELLO};

/// Idle keep-alive connections held open at once.
const IDLE: usize = 3000;
/// Connections opened before their requests are written (each batch is
/// smaller than the listen backlog, so no SYN is dropped).
const BATCH: usize = 250;

fn open_idle(addr: SocketAddr, n: usize) -> Vec<Client<std::net::TcpStream>> {
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let mut batch: Vec<_> = (0..BATCH.min(n - all.len()))
            .map(|_| Client::connect(addr))
            .collect();
        for c in &mut batch {
            c.send(&get_bytes("/hello.txt"));
        }
        for c in &mut batch {
            let r = c.expect_response("GET");
            assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
            assert!(!r.connection_has("close"), "{r:?}");
        }
        all.extend(batch);
    }
    all
}

#[test]
fn thousands_of_idle_keep_alive_connections_need_no_threads() {
    let want = (IDLE as u64) * 2 + 200;
    let limit = raise_nofile_limit(65536);
    if limit < want {
        eprintln!(
            "skipped: RLIMIT_NOFILE is {limit} and cannot be raised to {want} (prlimit failed)"
        );
        return;
    }
    let s = Server::start(&["-t", "5:5"]);
    let addr = s.addr();
    assert_serves(addr);
    // The pool may serve before the main thread has started the reactor's
    // thread: count the threads once it runs.
    let reactor_runs = wait_until(Instant::now() + Duration::from_secs(10), || {
        thread_names(s.pid())
            .iter()
            .any(|n| n.starts_with("catamount-reac"))
    });
    assert!(
        reactor_runs,
        "no reactor thread: {:?}",
        thread_names(s.pid())
    );
    let before = s.proc_status();

    let t0 = Instant::now();
    let mut idle = open_idle(addr, IDLE);
    let opened = t0.elapsed();

    // A fresh connection is answered at once.
    let t = Instant::now();
    let mut fresh = Client::connect(addr);
    fresh.send(&get_bytes("/hello.txt"));
    let r = fresh
        .response_by("GET", t + Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("no answer within 2 s next to {IDLE} idle connections: {e}"));
    assert_eq!((r.status, r.text().as_str()), (200, HELLO), "{r:?}");
    let answered = t.elapsed();

    let after = s.proc_status();
    eprintln!(
        "{IDLE} idle connections opened in {opened:?}; fresh request answered in {answered:?}; \
         threads {} -> {}; VmRSS {} KiB -> {} KiB",
        before.threads, after.threads, before.vm_rss_kib, after.vm_rss_kib
    );
    assert!(
        after.threads <= before.threads,
        "threads grew from {} to {} with idle connections",
        before.threads,
        after.threads
    );
    // A parked connection is a descriptor and a small buffer; 16 KiB
    // each would already be 48 MiB.
    let grown = after.vm_rss_kib.saturating_sub(before.vm_rss_kib);
    assert!(
        grown < 48 * 1024,
        "VmRSS grew by {grown} KiB for {IDLE} idle connections"
    );

    // The idle connections are still open and usable.
    for c in idle.iter_mut().step_by(500) {
        c.send(&get_bytes("/hello.txt"));
        assert_eq!(c.expect_response("GET").status, 200);
    }
}

/// The names (`comm`) of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}
