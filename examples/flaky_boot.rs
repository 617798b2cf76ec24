//! An app whose per-process boot can fail, as when its database is down:
//! `Handler::boot` runs in every cluster worker after fork.
//!
//! ```sh
//! # every worker fails to boot: the master backs off (0.5 s, 1 s, 2 s …
//! # up to 10 s) instead of respawning hundreds of times a second
//! FLAKY_BOOT_FAIL=1 cargo run --example flaky_boot -- -w 2
//! ```

use catamount::{Handler, Request, Response, Server};

struct App;

impl Handler for App {
    fn boot(&self) -> Result<(), String> {
        match std::env::var_os("FLAKY_BOOT_FAIL") {
            Some(_) => Err("FLAKY_BOOT_FAIL is set: pretending the database is down".into()),
            None => Ok(()),
        }
    }

    fn handle(&self, _req: &mut Request<'_>) -> Response {
        Response::text(200, "booted fine\n")
    }
}

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(App);
}
