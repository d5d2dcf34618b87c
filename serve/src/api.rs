//! The JSON API (`docs/API.md`): funnels (list, read, define), counts, runs, jobs. A funnel or a count
//! is the very document `funnel query --format json` prints (`facts::FunnelAnswer`,
//! `facts::CountsAnswer`, serialized the same way), or its CSV (`funnelizer::text`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facts::{CountsAnswer, FactReader};
use funnelizer::text::{counts_csv, csv_field, funnel_csv};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::params::{self, Format, Params};
use crate::state::Shared;

/// The daily-count metrics the stream writes.
pub const METRICS: [&str; 3] = ["hits", "events", "conversions"];

fn csv(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
}

fn write_csv(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    f(&mut out).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(out)
}

/// `GET /api/funnels`.
pub async fn list_funnels(State(state): State<Shared>) -> Result<Response, ApiError> {
    let catalog = state.blocking(Catalog::read).await?;
    let mut response = Json(catalog.to_json()).into_response();
    if let Ok(f) = &catalog.file {
        if let Ok(v) = format!("\"{}\"", f.version).parse() {
            response.headers_mut().insert(header::ETAG, v);
        }
    }
    Ok(response)
}

/// `GET /api/funnels/{id}?app=A[&from&to&breakdown&version][&format=csv]`.
pub async fn read_funnel(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params::only(&p, &["app", "from", "to", "breakdown", "version", "format"])?;
    let q = params::funnel_query(&id, &p)?;
    let format = params::format(&p, &headers)?;
    state
        .answer(key(&uri, format), content_type(format), move |s| {
            let answer = s.store.read_funnel(&q)?;
            if answer.days.is_empty() && !Catalog::read(s)?.knows(&q.funnel_id, &q.app_id) {
                return Err(ApiError::not_found(format!(
                    "no funnel `{}`: it is neither in the funnels file nor published for app `{}`",
                    q.funnel_id, q.app_id
                )));
            }
            match format {
                Format::Json => json_bytes(&answer),
                Format::Csv => write_csv(|out| funnel_csv(out, &answer)),
            }
        })
        .await
}

/// The key of a kept answer: the request's path and query, and the format answered.
pub fn key(uri: &Uri, format: Format) -> String {
    format!("{format:?} {uri}")
}

/// The `Content-Type` of a format.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
    }
}

fn json_bytes(v: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /api/counts?app=A[&metric=M&dimension&from&to&breakdown][&format=csv]`: one metric as
/// `funnel query --counts M --format json` prints it; without `metric`, every metric.
pub async fn read_counts(
    State(state): State<Shared>,
    Query(p): Query<Params>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params::only(
        &p,
        &[
            "app",
            "metric",
            "dimension",
            "from",
            "to",
            "breakdown",
            "format",
        ],
    )?;
    let format = params::format(&p, &headers)?;
    let metric = params::optional(&p, "metric").map(str::to_string);
    let metrics: Vec<String> = match &metric {
        Some(m) => vec![m.clone()],
        None => METRICS.iter().map(|m| m.to_string()).collect(),
    };
    let queries = metrics
        .iter()
        .map(|m| params::counts_query(m, &p))
        .collect::<Result<Vec<_>, _>>()?;
    let app = params::required(&p, "app")?.to_string();
    state
        .answer(key(&uri, format), content_type(format), move |s| {
            let answers: Vec<CountsAnswer> = queries
                .iter()
                .map(|q| s.store.read_counts(q))
                .collect::<Result<_, _>>()?;
            match (format, metric.is_some()) {
                (Format::Json, true) => json_bytes(&answers[0]),
                (Format::Json, false) => json_bytes(&json!({
                    "app_id": app,
                    "metrics": answers,
                })),
                (Format::Csv, true) => write_csv(|out| counts_csv(out, &answers[0])),
                (Format::Csv, false) => {
                    // Every metric in one table: `funnel query`'s CSV with the metric in front.
                    let mut out = String::from("metric,day,layer,dimension,value,count\n");
                    for a in &answers {
                        let one = write_csv(|o| counts_csv(o, a))?;
                        for line in String::from_utf8_lossy(&one).lines().skip(1) {
                            out.push_str(&format!("{},{line}\n", a.metric));
                        }
                    }
                    Ok(out.into_bytes())
                }
            }
        })
        .await
}

/// `GET /api/runs`: what `funnel status --json` shows of the scheduler, the runs and the watermarks.
pub async fn runs(
    State(state): State<Shared>,
    Query(p): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params::only(&p, &["limit", "format"])?;
    let limit = match params::optional(&p, "limit") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "parameter `limit`: {v:?} is not a number from 1 to 1000"
                ))
            })?,
        None => 20,
    };
    let format = params::format(&p, &headers)?;
    let status = state.blocking(move |s| status(s, limit)).await?;
    match format {
        Format::Json => Ok(Json(status.to_json(limit)).into_response()),
        Format::Csv => {
            let mut out =
                String::from("run,started_at_ms,finished_at_ms,status,rows,funnels,error\n");
            for r in &status.runs {
                let funnels: Vec<String> =
                    r.funnels.iter().map(|(i, v)| format!("{i}@{v}")).collect();
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    r.run_id.0,
                    r.started_at_ms,
                    r.finished_at_ms.map(|t| t.to_string()).unwrap_or_default(),
                    r.status.as_str(),
                    r.rows,
                    csv_field(&funnels.join(" ")),
                    csv_field(r.error.as_deref().unwrap_or(""))
                ));
            }
            Ok(csv(out.into_bytes()))
        }
    }
}

/// The scheduler's status as `funnel status` reads it (blocking).
pub fn status(s: &crate::state::AppState, limit: usize) -> Result<scheduler::Status, ApiError> {
    let apps: Vec<String> = Vec::new();
    Ok(scheduler::Status::read(
        &*s.store,
        &s.config.facts,
        s.config.state.as_deref(),
        &apps,
        limit,
    )
    .map_err(crate::error::Error::from)?)
}

/// The body of `POST /api/funnels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Define {
    /// One or more `[[funnel]]` tables.
    pub toml: String,
    /// The funnels file's version the definition is based on (else the `If-Match` header).
    pub version: Option<String>,
}

/// `POST /api/funnels`: validates, saves (409 when the file changed since `version`) and starts the
/// background job; answers 202 with the job.
pub async fn define(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let define: Define = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"toml\": \"[[funnel]] …\", \"version\": \"…\"}}: {e}"
        ))
    })?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        });
    let version = define.version.or(if_match).ok_or_else(|| {
        ApiError::bad_request(
            "the funnels file's version is missing: send the `version` that GET /api/funnels returned (or an If-Match header), so a concurrent edit is not overwritten",
        )
    })?;
    let (saved, job) = state
        .blocking(move |s| {
            let saved = s.funnels.save(&version, &define.toml)?;
            let job = s
                .jobs
                .start(saved.posted.clone(), s.job_options(), s.store.clone());
            Ok((saved, job))
        })
        .await?;
    let location = format!("/api/jobs/{}", job.id);
    let body: Value = json!({
        "version": saved.version,
        "funnels": job.funnels,
        "job": job,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = format!("\"{}\"", saved.version).parse() {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

/// `GET /api/jobs/{id}`.
pub async fn job(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = id.parse::<u64>().ok().and_then(|n| state.jobs.get(n));
    match found {
        Some(j) => Ok(Json(j).into_response()),
        None => Err(ApiError::not_found(format!("no job {id:?}"))),
    }
}
