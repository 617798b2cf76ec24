//! The default app: serves the files of one directory.

// IMPLEMENTATION PENDING (helper).

use std::path::PathBuf;

use crate::{Config, Handler, Request, Response};

/// Serves the files under one directory.
pub struct StaticFiles {
    root: PathBuf,
}

impl StaticFiles {
    /// Serves `root` with the static-app options of `config`.
    pub fn new(root: PathBuf, config: &Config) -> Self {
        let _ = config;
        StaticFiles { root }
    }
}

impl Handler for StaticFiles {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let _ = (req, &self.root);
        Response::text(404, "Not Found\n")
    }
}
