//! Single mode's runner (Puma's `single.rb`): this process serves, with
//! its reactor and pool, while the supervisor's loop (supervisor.rs)
//! watches it from the main thread. The watchdog is fed only while the
//! reactor turns; a stop drains in this process; a hot restart drains,
//! waits for the pool threads to let go, and hands the listeners to the
//! exec.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use crate::listeners::Listener;
use crate::notify::Notifier;
use crate::serving::{self, Serving};
use crate::supervisor::{cleanup, load_words, After, MasterOnly, Mode, Process, Progress, Runner};
use crate::{Config, Handler};

/// The serving process, as the supervisor sees it.
pub(crate) struct Single<'a> {
    config: &'a Config,
    serving: Serving,
    notifier: &'a Notifier,
    signals: &'a OwnedFd,
    /// The reactor's heartbeat at the last watchdog check.
    last_beat: u64,
    /// The listeners' descriptor numbers (the reactor owns them), for
    /// the idle exit's look at their backlogs.
    listener_fds: Vec<RawFd>,
}

impl<'a> Single<'a> {
    /// Starts the reactor and the pool for a booted `handler`. From here
    /// on threads exist: nothing may fork.
    pub(crate) fn start(
        config: &'a Config,
        handler: Box<dyn Handler>,
        listeners: Vec<Listener>,
        process: Process<'a>,
    ) -> Result<Single<'a>, String> {
        let listener_fds = listeners.iter().map(|l| l.fd.as_raw_fd()).collect();
        let serving = serving::start_serving(config, handler, listeners)?;
        let last_beat = serving.engine.stats().heartbeat();
        // Make a healthy reactor turn before the first check, even when
        // idle; otherwise the first ping after READY would come a whole
        // period late.
        serving.engine.nudge_reactor();
        Ok(Single {
            config,
            serving,
            notifier: process.notifier,
            signals: process.signals,
            last_beat,
            listener_fds,
        })
    }
}

impl Runner for Single<'_> {
    const MODE: Mode = Mode::Single;

    fn config(&self) -> &Config {
        self.config
    }

    /// Serving from the start: the app booted before the banner.
    fn turn(&mut self, _: &mut MasterOnly<'_>) -> Progress {
        Progress::Serving { reloaded: false }
    }

    /// Whether the reactor turned since the last look; then nudges it, so
    /// a healthy one has turned again by the next.
    fn alive(&mut self, _now: Instant) -> bool {
        let beat = self.serving.engine.stats().heartbeat();
        let turned = beat != self.last_beat;
        self.last_beat = beat;
        self.serving.engine.nudge_reactor();
        turned
    }

    /// Quiet: no connection open, none served or queued.
    fn quiet(&self) -> Option<u64> {
        let pool = self.serving.pool_stats(self.config);
        (pool.connections == 0 && pool.busy == 0 && pool.backlog == 0).then_some(pool.requests)
    }

    fn listener_fds(&self) -> Vec<RawFd> {
        self.listener_fds.clone()
    }

    /// `single, 3/5 threads busy, 0 queued, 1523 requests`.
    fn status(&self) -> String {
        format!(
            "{}, {}",
            Self::MODE.name(),
            load_words(&self.serving.pool_stats(self.config))
        )
    }

    /// Puma's fields (single.rb and server.rb `stats`), then catamount's.
    fn stats(&self) -> String {
        let pool = self.serving.pool_stats(self.config);
        format!(
            r#"{},"mode":"{}","phase":0,"busy":{},"queued":{},"requests":{}"#,
            pool.puma_members(),
            Self::MODE.name(),
            pool.busy,
            pool.backlog,
            pool.requests
        )
    }

    fn stop(self, after: After) -> Result<Vec<Listener>, ()> {
        let Single {
            config,
            serving,
            notifier,
            signals,
            ..
        } = self;
        let (listeners, draining) = serving::stop_reactor(config, serving, signals)?;
        match after {
            After::Exit => {
                // Refuse new connections now (sockets systemd or its fd
                // store also hold stay open there, for the next start).
                cleanup(config, &listeners);
                drop(listeners);
                serving::wait_in_flight(config, draining, signals, Some(notifier))?;
                Ok(Vec::new())
            }
            After::Exec => {
                let engine = Arc::clone(&draining.engine);
                serving::wait_in_flight(config, draining, signals, Some(notifier))?;
                serving::release_engine(engine, signals)?;
                Ok(listeners)
            }
        }
    }

    /// The listeners are the reactor's: only the pidfile goes.
    fn kill(self) {
        cleanup(self.config, &[]);
    }
}
