//! What every request handler shares: the settings, the open fact store, the funnels file, the
//! background jobs, and how to call the (blocking) store from async handlers.

use std::sync::Arc;

use funnelizer::JobOptions;

use crate::config::Config;
use crate::error::ApiError;
use crate::funnels_file::FunnelsFile;
use crate::jobs::Jobs;

/// The shared state of a server.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// The fact store (SQLite and CQL calls block: use [`AppState::blocking`]).
    pub store: Arc<facts::Store>,
    /// The funnels file.
    pub funnels: FunnelsFile,
    /// Jobs started by saves.
    pub jobs: Jobs,
    /// The value of the session cookie the login form sets (derived from the token; `None`: no token).
    pub session: Option<String>,
}

/// The state as handlers get it.
pub type Shared = Arc<AppState>;

impl AppState {
    /// Runs `f` (which reads the store or a file) on tokio's blocking pool.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| crate::error::Error::Task(e.to_string()))?
    }

    /// The batch job's options, as `funnel run` with the server's `--data`, `--snapshot`, `--schema`,
    /// `--threads`, `--cache` and `--now` would build them.
    pub fn job_options(&self) -> JobOptions {
        let c = &self.config;
        let now = c.now_s.unwrap_or_else(|| chrono::Utc::now().timestamp());
        let mut o = JobOptions::new(c.data.clone(), now);
        o.snapshot = c.snapshot.clone();
        o.schema = c.schema.clone();
        o.threads = c.threads;
        o.cache = c.cache.clone();
        o
    }
}
