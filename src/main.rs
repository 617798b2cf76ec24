//! The `catamount` binary: parse the command line, serve a directory.
//! Everything else lives in the library so embedders get the same engine.
//! `catamount ctl ...` is the control app's client instead (see
//! `catamount::control`).

fn main() {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "ctl") {
        std::process::exit(catamount::control::ctl_main(args.collect()));
    }
    // The binary confines itself with Landlock unless told not to.
    let server = catamount::Server::from_args()
        .unwrap_or_else(|e| e.exit())
        .confine(&[], &[]);
    let dir = server.config().dir.clone();
    let app = catamount::static_files::StaticFiles::new(dir, server.config());
    server.serve(app);
}
