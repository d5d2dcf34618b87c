//! The server-rendered pages: `/` (apps, funnels, last run, freshness), `/funnels/{id}` ([`funnel`]),
//! `/define` ([`define`]), `/counts`, `/runs` and `/login`. Everything that comes from data or
//! definitions goes through [`escape`] (text) or [`url`] (links); charts are inline SVG; the one script
//! and the style sheet are served by the server itself (`/static/…`, compiled in), so pages work offline.

pub mod define;
pub mod funnel;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{header, Uri};
use axum::response::{Html, IntoResponse, Response};
use facts::{CountsQuery, Day, FactReader};
pub use funnelizer::report::escape;

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::params::{self, Params};
use crate::state::Shared;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// `GET /static/style.css`.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `GET /static/app.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// Percent-encodes a query value or path segment.
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A link to a funnel's page for `app`.
pub fn funnel_href(id: &str, app: &str) -> String {
    format!("/funnels/{}?app={}", url(id), url(app))
}

/// Unix ms as `2026-11-01 13:04:05 UTC`.
pub fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "–".into())
}

/// A whole page: head, navigation, `body` (already escaped HTML).
pub fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{t} · funnel</title><link rel=\"stylesheet\" href=\"/static/style.css\"><script src=\"/static/app.js\" defer></script></head>\n\
<body><nav><a href=\"/\">Funnels</a> <a href=\"/define\">Define a funnel</a> <a href=\"/runs\">Runs</a></nav>\n<main>\n{body}</main></body></html>\n",
        t = escape(title)
    ))
}

/// A failed page: the status and the reason, escaped.
pub fn error_page(e: ApiError) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p>",
        e.status.as_u16(),
        escape(&e.reason)
    );
    (e.status, layout("error", &body)).into_response()
}

/// The login form (`GET /login`), with an error when the last token was wrong.
pub fn login_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    layout(
        "log in",
        &format!(
            "<h1>Log in</h1>{error}<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> <button type=\"submit\">Log in</button></form>"
        ),
    )
}

/// `GET /login`.
pub async fn login() -> Html<String> {
    login_page(None)
}

/// `/`: apps and funnels (of the file and of the store), the last run, freshness.
pub async fn index(State(state): State<Shared>, uri: Uri) -> Response {
    let page = state.answer(key(&uri), HTML, |s| {
        Ok(layout("funnels", &index_body(s)?).0.into_bytes())
    });
    page.await.unwrap_or_else(error_page)
}

/// The `Content-Type` of pages.
pub const HTML: &str = "text/html; charset=utf-8";

/// The key of a kept page: its path and query.
pub fn key(uri: &Uri) -> String {
    format!("page {uri}")
}

fn index_body(s: &crate::state::AppState) -> Result<String, ApiError> {
    let c = Catalog::read(s)?;
    let mut h = String::from("<h1>Funnels</h1>\n");
    match c.runs.first() {
        Some(r) => {
            let _ = writeln!(
                h,
                "<p class=\"meta\" id=\"last-run\">Last run: {} {}, started {}, finished {}{}. <a href=\"/runs\">All runs</a></p>",
                r.run_id,
                escape(r.status.as_str()),
                time(Some(r.started_at_ms)),
                time(r.finished_at_ms),
                r.error
                    .as_deref()
                    .map(|e| format!(": {}", escape(e)))
                    .unwrap_or_default()
            );
        }
        None => h.push_str("<p class=\"meta\" id=\"last-run\">No run yet.</p>\n"),
    }
    if let Some(app) = c.apps.first() {
        // The stream's freshness is one time per store.
        let mut q = CountsQuery::new(app, "hits");
        q.from = Some(Day::today());
        q.to = q.from;
        let f = s.store.read_counts(&q)?.freshness;
        let _ = writeln!(
            h,
            "<p class=\"meta\">Real time: the stream last applied a batch {}.</p>",
            time(f.speed_applied_at_ms)
        );
    }
    match &c.file {
        Ok(f) => {
            let _ = writeln!(
                h,
                "<p class=\"meta\">Funnels file {} (version <code>{}</code>), {} funnels. <a href=\"/define\">Define a funnel</a></p>",
                escape(&s.funnels.path().display().to_string()),
                escape(&f.version),
                f.set.funnels.len()
            );
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"error\">The funnels file does not parse: {}</p>",
                escape(e)
            );
        }
    }
    if c.apps.is_empty() {
        h.push_str(
            "<p>No app has results yet: run <code>funnel run</code> or define a funnel.</p>\n",
        );
    }
    h.push_str("<table id=\"funnels\"><tr><th>funnel</th><th>steps</th><th>mode, window</th>");
    for app in &c.apps {
        let _ = write!(h, "<th>{}</th>", escape(app));
    }
    h.push_str("</tr>\n");
    for id in c.funnel_ids() {
        let (steps, mode) = match c.file_funnel(&id) {
            Some(f) => (
                f.level_labels().join(" → "),
                format!(
                    "{}, {}",
                    f.mode.name(),
                    funnelizer::report::human_duration(f.window_s as f64)
                ),
            ),
            None => ("(not in the funnels file)".to_string(), String::new()),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"steps\">{}</td><td>{}</td>",
            escape(&id),
            escape(&steps),
            escape(&mode)
        );
        for app in &c.apps {
            match c.published.get(&id).and_then(|a| a.get(app)) {
                Some(w) => {
                    let _ = write!(
                        h,
                        "<td><a href=\"{}\">batch before {}</a></td>",
                        escape(&funnel_href(&id, app)),
                        w.batch_until
                    );
                }
                None => {
                    let _ = write!(
                        h,
                        "<td><a href=\"{}\">not computed</a></td>",
                        escape(&funnel_href(&id, app))
                    );
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    stream_only(s, &c, &mut h)?;
    h.push_str("<h2>Daily counts</h2><ul>");
    for app in c.apps.iter().chain(&c.stream_only) {
        let _ = write!(
            h,
            "<li><a href=\"/counts?app={}\">{}</a></li>",
            escape(&url(app)),
            escape(app)
        );
    }
    h.push_str("</ul>\n");
    Ok(h)
}

/// The apps only the stream has counted yet (no batch run saw them): per metric the total over the
/// days it holds and the last day's count, the days, and when the stream last applied a batch.
fn stream_only(s: &crate::state::AppState, c: &Catalog, h: &mut String) -> Result<(), ApiError> {
    if c.stream_only.is_empty() {
        return Ok(());
    }
    h.push_str("<h2>Real time only</h2>\n<p class=\"meta\">The stream counts these apps; no batch run has computed them yet.</p>\n<table id=\"stream-apps\"><tr><th>app</th>");
    for m in crate::api::METRICS {
        let _ = write!(h, "<th>{m}: total / last day</th>");
    }
    h.push_str("<th>days</th><th>last stream batch</th></tr>\n");
    for app in &c.stream_only {
        let _ = write!(
            h,
            "<tr><td><a href=\"/counts?app={}\">{}</a></td>",
            escape(&url(app)),
            escape(app)
        );
        let (mut days, mut applied) = (BTreeSet::<Day>::new(), None);
        for m in crate::api::METRICS {
            let a = s.store.read_counts(&CountsQuery::new(app, m))?;
            // Each dimension (tracker, name) sums to the same total; one missing values must not
            // lower it.
            let total = |days: &[facts::CountsDay]| -> i64 {
                let mut by_dimension: std::collections::BTreeMap<&str, i64> = Default::default();
                for v in days.iter().flat_map(|d| &d.values) {
                    *by_dimension.entry(&v.dimension).or_default() += v.count;
                }
                by_dimension.into_values().max().unwrap_or(0)
            };
            let last_day = a.days.iter().rev().find(|d| !d.values.is_empty());
            let _ = write!(
                h,
                "<td class=\"count\" data-metric=\"{m}\">{} / {}</td>",
                total(&a.days),
                last_day.map_or(0, |d| total(std::slice::from_ref(d)))
            );
            days.extend(
                a.days
                    .iter()
                    .filter(|d| !d.values.is_empty())
                    .map(|d| d.day),
            );
            applied = applied.max(a.freshness.speed_applied_at_ms);
        }
        let range = match (days.first(), days.last()) {
            (Some(f), Some(l)) => format!("{f} … {l}"),
            _ => "–".into(),
        };
        let _ = writeln!(h, "<td>{range}</td><td>{}</td></tr>", time(applied));
    }
    h.push_str("</table>\n");
    Ok(())
}

/// `/counts?app=A`: daily counts and conversions by dimension value, and which layer answered each day.
pub async fn counts(State(state): State<Shared>, Query(p): Query<Params>, uri: Uri) -> Response {
    let result = async {
        params::only(&p, &["app", "from", "to"])?;
        let queries = crate::api::METRICS
            .iter()
            .map(|m| {
                let mut q = params::counts_query(m, &p)?;
                q.breakdown = true;
                Ok(q)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let app = params::required(&p, "app")?.to_string();
        state
            .answer(key(&uri), HTML, move |s| {
                let mut h = format!("<h1>Daily counts of {}</h1>\n", escape(&app));
                for q in &queries {
                    let a = s.store.read_counts(q)?;
                    let _ = writeln!(
                        h,
                        "<h2>{}</h2><p class=\"meta\">batch complete before {}; the stream last applied a batch {}</p>",
                        escape(&a.metric),
                        a.freshness.watermark.map_or("–".to_string(), |w| w.to_string()),
                        time(a.freshness.speed_applied_at_ms)
                    );
                    let columns: BTreeSet<(String, String)> = a
                        .days
                        .iter()
                        .flat_map(|d| &d.values)
                        .map(|v| (v.dimension.clone(), v.value.clone().unwrap_or_default()))
                        .collect();
                    if a.days.is_empty() {
                        h.push_str("<p>No counts.</p>\n");
                        continue;
                    }
                    let _ = write!(h, "<table class=\"counts\" id=\"counts-{}\"><tr><th>day</th><th>layer</th>", escape(&a.metric));
                    for (dim, value) in &columns {
                        let _ = write!(h, "<th>{} {}</th>", escape(dim), escape(value));
                    }
                    h.push_str("</tr>\n");
                    for d in &a.days {
                        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", d.day, d.layer.as_str());
                        for (dim, value) in &columns {
                            let n = d
                                .values
                                .iter()
                                .find(|v| &v.dimension == dim && v.value.as_deref().unwrap_or("") == value)
                                .map_or(0, |v| v.count);
                            let _ = write!(h, "<td>{n}</td>");
                        }
                        h.push_str("</tr>\n");
                    }
                    h.push_str("</table>\n");
                }
                Ok(layout("daily counts", &h).0.into_bytes())
            })
            .await
    }
    .await;
    result.unwrap_or_else(error_page)
}

/// `/runs`: what `funnel status` shows — scheduler attempts, runs, watermarks, last errors.
pub async fn runs(State(state): State<Shared>) -> Response {
    let result = state
        .blocking(|s| {
            let status = crate::api::status(s, 20)?;
            let mut h = String::from("<h1>Runs</h1>\n");
            match (&status.state, status.state_file()) {
                (Some(st), Some(file)) => {
                    let _ = writeln!(
                        h,
                        "<h2>Scheduler</h2><p class=\"meta\">{}; lock {}</p>",
                        escape(&file.display().to_string()),
                        escape(status.lock_holder.as_deref().unwrap_or("free"))
                    );
                    h.push_str("<table id=\"attempts\"><tr><th>started</th><th>finished</th><th>outcome</th><th>exit</th><th>run</th><th>SSTables</th><th>detail</th></tr>\n");
                    for a in st.attempts.iter().take(20) {
                        let _ = writeln!(
                            h,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
                            time(Some(a.started_at_ms)),
                            time(a.finished_at_ms),
                            escape(a.outcome.as_str()),
                            a.exit_code,
                            a.run_id.map_or("–".into(), |r| r.to_string()),
                            a.sstables,
                            escape(a.error.as_deref().or(a.reason.as_deref()).unwrap_or(""))
                        );
                    }
                    h.push_str("</table>\n");
                }
                _ => h.push_str("<p class=\"meta\">Scheduler: no state file (not scheduled here).</p>\n"),
            }
            h.push_str("<h2>Batch runs</h2><table id=\"runs\"><tr><th>run</th><th>started</th><th>finished</th><th>status</th><th>rows</th><th>SSTables</th><th>funnels / error</th></tr>\n");
            for r in &status.runs {
                let detail = match &r.error {
                    Some(e) => format!("error: {e}"),
                    None => r.funnels.iter().map(|(i, v)| format!("{i}@{v}")).collect::<Vec<_>>().join(", "),
                };
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"detail\">{}</td></tr>",
                    r.run_id,
                    time(Some(r.started_at_ms)),
                    time(r.finished_at_ms),
                    escape(r.status.as_str()),
                    r.rows,
                    scheduler::sstables_read(r).len(),
                    escape(&detail)
                );
            }
            h.push_str("</table>\n<h2>Watermarks</h2><p class=\"meta\">Batch results are complete for days before <i>batch until</i>.</p><table id=\"watermarks\"><tr><th>app</th><th>funnel</th><th>version</th><th>batch until</th></tr>\n");
            for w in &status.watermarks {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&w.app_id),
                    escape(&w.funnel_id),
                    escape(&w.funnel_version),
                    w.batch_until
                );
            }
            h.push_str("</table>\n");
            Ok(h)
        })
        .await;
    match result {
        Ok(body) => layout("runs", &body).into_response(),
        Err(e) => error_page(e),
    }
}

/// Any other path.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let e = ApiError::not_found(format!("no page {}", uri.path()));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        error_page(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_encoded_and_text_escaped() {
        assert_eq!(url("a b&c/<d>"), "a%20b%26c%2F%3Cd%3E");
        assert_eq!(funnel_href("f/1", "app?"), "/funnels/f%2F1?app=app%3F");
        let page = layout("<script>", "").0;
        assert!(page.contains("&lt;script&gt; · funnel"), "{page}");
        assert!(!page.contains("http"), "no external asset: {page}");
    }
}
