//! The `catamount` binary: parse the command line, serve a directory.
//! Everything else lives in the library so embedders get the same engine.

fn main() {
    let server = catamount::Server::from_args().unwrap_or_else(|e| e.exit());
    let dir = server.config().dir.clone();
    let app = catamount::static_files::StaticFiles::new(dir, server.config());
    server.serve(app);
}
