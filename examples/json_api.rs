//! A small JSON API on catamount's engine, with no dependency but
//! catamount: an in-memory counter store.
//!
//! ```sh
//! cargo run --example json_api -- -b tcp://127.0.0.1:9292
//! curl -X POST --data 'apples' http://127.0.0.1:9292/counters
//! curl http://127.0.0.1:9292/counters
//! ```
//!
//! Handlers run on many pool threads at once, so shared state sits
//! behind a `Mutex`; the request body is read through `Request::body`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use catamount::{Handler, Request, Response, Server};

/// Counter names are at most this long.
const MAX_NAME: usize = 64;

struct Api {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Handler for Api {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        match (req.method(), req.path()) {
            ("GET", "/counters") => {
                let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
                let items: Vec<String> = counters
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json_string(k)))
                    .collect();
                json(200, &format!("{{{}}}", items.join(",")))
            }
            ("POST", "/counters") => {
                let body = match req.read_body() {
                    Ok(b) => b,
                    Err(e) => {
                        return json(
                            400,
                            &format!("{{\"error\":{}}}", json_string(&e.to_string())),
                        )
                    }
                };
                let name = String::from_utf8_lossy(&body).trim().to_string();
                if name.is_empty() || name.len() > MAX_NAME {
                    return json(
                        422,
                        "{\"error\":\"the body must be a counter name of 1 to 64 bytes\"}",
                    );
                }
                let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
                let n = counters.entry(name.clone()).or_insert(0);
                *n += 1;
                json(200, &format!("{{{}:{n}}}", json_string(&name)))
            }
            (_, "/counters") => {
                json(405, "{\"error\":\"use GET or POST\"}").header("Allow", "GET, POST")
            }
            _ => json(404, "{\"error\":\"not found\"}"),
        }
    }
}

fn json(status: u16, body: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "application/json")
        .body(catamount::Body::Bytes(body.as_bytes().to_vec()))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let server = Server::from_args().unwrap_or_else(|e| e.exit());
    server.serve(Api {
        counters: Mutex::new(BTreeMap::new()),
    });
}
