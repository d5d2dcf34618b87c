//! What every request handler shares: the settings, the open fact store, the funnels file, the
//! background jobs, the kept answers, and how to call the (blocking) store from async handlers.

use std::sync::Arc;

use funnelizer::JobOptions;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use facts::FactReader;

use crate::answers::{Answer, Answers, FileStamp, Stamp};
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
    /// Rendered answers, per request and state.
    pub answers: Answers,
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

    /// The state answers are computed from now (blocking); `None` when it cannot be told (a store
    /// without a data version, an unreadable funnels file): then nothing is kept.
    pub fn stamp(&self) -> Result<Option<Stamp>, ApiError> {
        let Some(data) = self.store.data_version()? else {
            return Ok(None);
        };
        let Ok(meta) = std::fs::metadata(self.funnels.path()) else {
            return Ok(None);
        };
        Ok(Some(Stamp {
            data,
            file: FileStamp::of(&meta),
            day: facts::Day::today(),
        }))
    }

    /// The answer to the request `key`: kept from an earlier request at the same [`Stamp`], else
    /// rendered by `render` on the blocking pool (once, however many requests wait for it).
    pub async fn answer<F>(
        self: &Arc<Self>,
        key: String,
        content_type: &'static str,
        render: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce(&AppState) -> Result<Vec<u8>, ApiError> + Send + 'static,
    {
        let render = |me: Arc<Self>| async move {
            let body = me.blocking(render).await?;
            Ok::<_, ApiError>(Answer {
                content_type,
                body: Bytes::from(body),
            })
        };
        let answer = match self.blocking(AppState::stamp).await? {
            Some(stamp) => {
                let slot = self.answers.slot(&key, &stamp);
                slot.get_or_try_init(|| render(self.clone())).await?.clone()
            }
            None => render(self.clone()).await?,
        };
        Ok(([(header::CONTENT_TYPE, answer.content_type)], answer.body).into_response())
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
