//! pending
use crate::config::ConfigError;
use crate::{Config, Handler};

/// A configured server, ready to serve a [`Handler`].
pub struct Server {
    config: Config,
}

impl Server {
    /// Parses the process's command line (and config file).
    pub fn from_args() -> Result<Server, ConfigError> {
        todo!()
    }
    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Serves `handler` until stopped; exits the process.
    pub fn serve(self, handler: impl Handler) -> ! {
        let _ = handler;
        todo!()
    }
}
