//! Errors: [`Error`] (why a server cannot start or a save failed) and [`ApiError`] (what a request gets
//! back: a status code and a reason, as JSON for the API and as a page for browsers).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funnelizer::DefinitionError;

/// Why a server cannot start, or why an operation on its files or store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listen address other than loopback without a token.
    #[error("refusing to listen on {listen} without a token: any address other than loopback (127.0.0.1, ::1) is reachable by others, so every request must carry a token — pass --token T or set FUNNEL_TOKEN, or listen on 127.0.0.1")]
    TokenRequired {
        /// The address asked for.
        listen: SocketAddr,
    },
    /// `--token ""`.
    #[error("the token is empty: pass a non-empty --token or FUNNEL_TOKEN")]
    EmptyToken,
    /// The listen address cannot be bound.
    #[error("cannot listen on {listen}")]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed after the start.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
    /// The fact store failed.
    #[error(transparent)]
    Facts(#[from] facts::FactsError),
    /// The scheduler's status could not be read.
    #[error(transparent)]
    Status(#[from] scheduler::Error),
    /// The funnels file is not valid.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The funnels file could not be read or written.
    #[error("funnels file {path}")]
    FunnelsFile {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the server panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
}

/// What a failed request gets: a status and a reason for people. The API sends
/// `{"error": reason, "status": code}` (plus `line` and `column` for a bad definition, `version` for a
/// stale one); pages render the reason as escaped text.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why, for people.
    pub reason: String,
    /// More fields of the JSON body.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `status` and `reason`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// 400.
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    /// 404.
    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }

    /// Adds a field to the JSON body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = self.extra.clone();
        body.insert("error".into(), self.reason.clone().into());
        body.insert("status".into(), self.status.as_u16().into());
        serde_json::Value::Object(body)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Definition(d) => ApiError::bad_request(d.to_string())
                .with("line", d.line)
                .with("column", d.column),
            other => {
                tracing::error!(error = %funnelizer::chain(&other), "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, funnelizer::chain(&other))
            }
        }
    }
}

impl From<facts::FactsError> for ApiError {
    fn from(e: facts::FactsError) -> ApiError {
        match e {
            // The question is ambiguous, not the server broken: the caller names a version.
            facts::FactsError::AmbiguousVersion { .. } => ApiError::bad_request(e.to_string()),
            e => Error::Facts(e).into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
