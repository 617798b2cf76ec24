//! What not to do, kept as a test fixture: this app starts a thread of
//! its own before `Server::serve`. In single mode that is fine; in cluster
//! mode (`-w N`) catamount refuses to fork, with an error saying why and
//! where to start threads instead (`Handler::boot`, which runs in each
//! worker): fork(2) copies only the calling thread, so a lock the other
//! thread held would stay locked forever in a worker.

use std::time::Duration;

use catamount::{Request, Response, Server};

/// How often the background thread wakes (it does nothing else).
const TICK: Duration = Duration::from_secs(3600);

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    // A background thread, as a metrics flusher or a cache warmer would be.
    std::thread::spawn(|| loop {
        std::thread::sleep(TICK);
    });
    server.serve(|_req: &mut Request<'_>| Response::text(200, "hello\n"));
}
