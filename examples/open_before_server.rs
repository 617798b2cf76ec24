//! What not to do, kept as a test fixture: this app opens a file before
//! making its `Server`. Under socket activation the file may take a
//! descriptor number systemd was meant to fill (fd 3 when systemd passed
//! nothing there). catamount recorded what each number held when the
//! process started, so it refuses such a number ("fd 3 is not open")
//! instead of adopting the app's file as a listening socket and later
//! closing it under the app's feet. Make the `Server` first.

use catamount::{Request, Response, Server};

fn main() {
    // Opened first, and kept: the lowest free number, 3 when nothing was
    // passed there.
    let data = std::fs::File::open("/proc/self/stat").expect("open /proc/self/stat");
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(move |_req: &mut Request<'_>| {
        let _kept_open = &data;
        Response::text(200, "hello\n")
    });
}
