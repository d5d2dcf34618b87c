//! `serve`: the funnel dashboard and its JSON API (`funnel serve`). Server-rendered pages — the apps
//! and funnels, a funnel's steps, conversion, trend, breakdown, time to convert and which layer answered
//! each day, the daily counts, the runs — and the API of `docs/API.md`, which returns the same documents
//! as `funnel query --format json`. A funnel defined in the browser is validated (`line:column`), saved
//! into the funnels file atomically (a concurrent edit is a 409, not a lost update) and computed over all
//! history in the background by the batch job (`funnelizer::Job`), which publishes its run atomically.
//!
//! Security: loopback by default, and a token is required on any other address ([`Config::check`]);
//! with a token every request carries it (bearer header or the login form's HttpOnly cookie);
//! state-changing requests must come from the server's own origin; everything from data or definitions
//! is escaped; bodies are size-limited; no request path reaches the filesystem.
//!
//! ```no_run
//! # async fn f() -> Result<(), serve::Error> {
//! let config = serve::Config::new("sqlite:facts.db".into(), "funnels.toml".into(), vec!["snapshots/".into()]);
//! let server = serve::Server::bind(config).await?;
//! println!("listening on http://{}", server.local_addr()?);
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Modules: `config`, `error`, `answers` → `funnels_file`, `jobs`, `params`, `state` → `catalog` → `api`,
//! `pages` → `auth` → `server`.

mod answers;
mod api;
mod auth;
mod catalog;
mod config;
mod error;
mod funnels_file;
mod jobs;
mod pages;
mod params;
mod server;
mod state;

pub use config::Config;
pub use error::{ApiError, Error};
pub use funnels_file::version_of;
pub use jobs::{JobStatus, State as JobPhase};
pub use server::Server;
