//! The smallest catamount app: `cargo run --example hello -- -b tcp://127.0.0.1:9292`
//! then `curl http://127.0.0.1:9292/`. Every option of the `catamount`
//! binary (threads, timeouts, config file, systemd) works here too.

use catamount::{Request, Response, Server};

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(|req: &mut Request<'_>| {
        if req.path() == "/panic" {
            // A panicking handler costs that one request a 500; the pool
            // thread and every other connection go on.
            panic!("asked to panic");
        }
        Response::text(
            200,
            format!("hello from catamount: {} {}\n", req.method(), req.path()),
        )
    });
}
