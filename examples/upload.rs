//! An upload endpoint in front of the static files: `POST /upload` reads
//! the whole request body and answers with its size; every other request
//! is served from DIR as by the `catamount` binary.
//!
//! ```sh
//! cargo run --example upload -- -b tcp://127.0.0.1:9292 /srv/www
//! curl --data-binary @big.iso http://127.0.0.1:9292/upload
//! ```
//!
//! A body of up to 64 KiB has arrived in full before the handler runs; a
//! larger one is read here as it arrives, under `body_timeout` (an
//! absolute deadline: a client that stops sending gets 408 then).

use catamount::static_files::StaticFiles;
use catamount::{Handler, Request, Response, Server};

struct Upload {
    files: StaticFiles,
}

impl Handler for Upload {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        if req.path() != "/upload" {
            return self.files.handle(req);
        }
        if req.method() != "POST" {
            return Response::text(405, "use POST\n").header("Allow", "POST");
        }
        let mut received = 0u64;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match req.body().read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => received += n as u64,
                // The engine answers the body's own error (408, 413, 400).
                Err(e) => return Response::text(400, format!("{e}\n")),
            }
        }
        Response::text(200, format!("received {received} bytes\n"))
    }
}

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    let files = StaticFiles::new(server.config().dir.clone(), server.config());
    server.serve(Upload { files });
}
