//! Landlock seen from inside, a test fixture (tests/landlock.rs): the
//! server confines itself (`Server::confine`, adding the directory named
//! by `PROBE_EXTRA_READ` when set) and the handler opens the path in the
//! query directly, with no check of its own, as a path-handling bug
//! would: `GET /?/etc/hostname`. It answers 200 with the first line of
//! the file, or 403 with what open(2) said. Under Landlock a path outside
//! the rules is refused by the kernel whatever the app does.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use catamount::{Request, Response, Server};

fn main() {
    let extra: Vec<PathBuf> = std::env::var_os("PROBE_EXTRA_READ")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let server = Server::from_args()
        .unwrap_or_else(|e| e.exit())
        .confine(&extra, &[]);
    server.serve(|req: &mut Request<'_>| {
        let path = req.query().unwrap_or("/");
        match std::fs::File::open(path) {
            Ok(f) => {
                let mut line = String::new();
                match BufReader::new(f).read_line(&mut line) {
                    Ok(_) => Response::text(200, line),
                    Err(e) => Response::text(403, format!("{e}\n")),
                }
            }
            Err(e) => Response::text(403, format!("{e}\n")),
        }
    });
}
