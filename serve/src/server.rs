//! The server: the routes, the guards around them (`auth`), the body limit, binding and serving until
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Error;
use crate::funnels_file::FunnelsFile;
use crate::jobs::Jobs;
use crate::state::{AppState, Shared};
use crate::{api, auth, pages};

/// The routes of a server over `state`. No route maps a request path to a file: pages and assets are
/// generated or compiled in, and ids only ever reach the fact store as query values.
pub(crate) fn router(state: Shared) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/", get(pages::index))
        .route("/funnels/{id}", get(pages::funnel::page))
        .route("/define", get(pages::define::page))
        .route("/counts", get(pages::counts))
        .route("/runs", get(pages::runs))
        .route("/login", get(pages::login).post(auth::login))
        .route("/static/style.css", get(pages::style))
        .route("/static/app.js", get(pages::script))
        .route("/api/funnels", get(api::list_funnels).post(api::define))
        .route("/api/funnels/{id}", get(api::read_funnel))
        .route("/api/counts", get(api::read_counts))
        .route("/api/runs", get(api::runs))
        .route("/api/jobs/{id}", get(api::job))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn(auth::headers))
        .with_state(state)
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    /// Checks the config ([`Config::check`]), opens the fact store, reads the funnels file (it must
    /// parse) and binds the listen address.
    pub async fn bind(config: Config) -> Result<Server, Error> {
        config.check()?;
        let funnels = FunnelsFile::new(config.funnels.clone());
        funnels.read()?;
        let url = config.facts.clone();
        let store = tokio::task::spawn_blocking(move || facts::open_store(&url))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                listen: config.listen,
                source,
            })?;
        let state = Arc::new(AppState {
            session: config.token.as_deref().map(auth::session_of),
            config,
            store: Arc::new(store),
            funnels,
            jobs: Jobs::default(),
            answers: Default::default(),
        });
        Ok(Server {
            listener,
            router: router(state),
        })
    }

    /// The address it listens on (the port chosen when the config asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)
    }
}
