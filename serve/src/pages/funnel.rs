//! `/funnels/{id}?app=A[&from&to&breakdown=1]`: one funnel of one app — steps named by their labels,
//! actors, conversion and drop-off per step, time to convert (median, p90), the trend by entry day
//! (inline SVG), the breakdown comparison, and which layer (batch or real time) answered each day. The
//! numbers are those of `GET /api/funnels/{id}` (the lambda read of the fact store).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use facts::{Day, FactReader, FunnelAnswer};
use funnelizer::report::{human_duration, trend_chart};

use super::{error_page, escape, funnel_href, key, layout, time, url, HTML};
use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::params::{self, Params};
use crate::state::{AppState, Shared};

/// Actors and time to convert of one level over the days shown.
#[derive(Default, Clone)]
struct Level {
    actors: u64,
    /// Σ actors · median, Σ actors · p90 and Σ actors of the days that have them.
    med: f64,
    p90: f64,
    timed: u64,
    timed_days: usize,
}

impl Level {
    fn ttc(&self) -> String {
        if self.timed == 0 {
            return "–".into();
        }
        // One day: the exact value; several: exact medians cannot be recombined, so the actor-weighted mean.
        let approx = if self.timed_days > 1 { "≈" } else { "" };
        format!(
            "{approx}{} / {approx}{}",
            human_duration(self.med / self.timed as f64),
            human_duration(self.p90 / self.timed as f64)
        )
    }
}

fn levels(a: &FunnelAnswer) -> Vec<Level> {
    let n = a
        .days
        .iter()
        .flat_map(|d| &d.steps)
        .map(|s| s.step as usize)
        .max()
        .unwrap_or(0);
    let mut out = vec![Level::default(); n];
    for s in a.days.iter().flat_map(|d| &d.steps) {
        let Some(l) = (s.step as usize)
            .checked_sub(1)
            .and_then(|i| out.get_mut(i))
        else {
            continue;
        };
        l.actors += s.actors;
        if let (Some(m), Some(p)) = (s.ttc_median_s, s.ttc_p90_s) {
            l.med += m * s.actors as f64;
            l.p90 += p * s.actors as f64;
            l.timed += s.actors;
            l.timed_days += 1;
        }
    }
    out
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

/// `GET /funnels/{id}`.
pub async fn page(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
    uri: Uri,
) -> Response {
    let result = async {
        params::only(&p, &["app", "from", "to", "breakdown", "version"])?;
        if params::optional(&p, "app").is_none() {
            let (title, body) = state.blocking(move |s| choose_app(s, &id)).await?;
            return Ok(layout(&title, &body).into_response());
        }
        let q = params::funnel_query(&id, &p)?;
        state
            .answer(key(&uri), HTML, move |s| {
                let (title, body) = body(s, q)?;
                Ok(layout(&title, &body).0.into_bytes())
            })
            .await
    }
    .await;
    result.unwrap_or_else(error_page)
}

/// Without `app`: the apps to choose from.
fn choose_app(s: &AppState, id: &str) -> Result<(String, String), ApiError> {
    let c = Catalog::read(s)?;
    let mut h = format!("<h1>{}</h1><p>Choose an app:</p><ul>", escape(id));
    for app in &c.apps {
        let _ = write!(
            h,
            "<li><a href=\"{}\">{}</a></li>",
            escape(&funnel_href(id, app)),
            escape(app)
        );
    }
    h.push_str("</ul>");
    Ok((id.to_string(), h))
}

fn body(s: &AppState, q: facts::FunnelQuery) -> Result<(String, String), ApiError> {
    let catalog = Catalog::read(s)?;
    let total = s.store.read_funnel(&facts::FunnelQuery {
        breakdown: false,
        ..q.clone()
    })?;
    if total.days.is_empty() && !catalog.knows(&q.funnel_id, &q.app_id) {
        return Err(ApiError::not_found(format!(
            "no funnel `{}`: it is neither in the funnels file nor published for app `{}`",
            q.funnel_id, q.app_id
        )));
    }
    let by_value = s.store.read_funnel(&facts::FunnelQuery {
        breakdown: true,
        funnel_version: Some(total.funnel_version.clone()),
        ..q.clone()
    })?;
    let per_level = levels(&total);
    let names = catalog.labels(&q.funnel_id, &total.funnel_version, per_level.len());
    let (id, app) = (escape(&q.funnel_id), escape(&q.app_id));
    let mut h = format!("<h1>{id} <span class=\"meta\">app {app}</span></h1>\n");
    freshness(&mut h, &total);
    filters(&mut h, &q);
    if per_level.is_empty() {
        h.push_str("<p id=\"empty\">No actor entered this funnel in these days (or it is not computed yet).</p>\n");
        return Ok((q.funnel_id.clone(), h));
    }
    steps(&mut h, &per_level, &names);
    trend(&mut h, &total, &names);
    days(&mut h, &total);
    breakdown(&mut h, &by_value, &names, q.breakdown);
    Ok((q.funnel_id.clone(), h))
}

fn freshness(h: &mut String, a: &FunnelAnswer) {
    let f = &a.freshness;
    let batch = match (f.watermark, f.batch_run) {
        (Some(w), Some(run)) => format!(
            "batch complete before <b id=\"watermark\">{w}</b> (run {run}, published {})",
            time(f.batch_published_at_ms)
        ),
        _ => "no batch run published yet".into(),
    };
    let _ = writeln!(
        h,
        "<p class=\"meta\" id=\"freshness\">version <code>{}</code> · {batch} · real time: last stream batch {}</p>",
        escape(&a.funnel_version),
        time(f.speed_applied_at_ms)
    );
}

fn filters(h: &mut String, q: &facts::FunnelQuery) {
    let day = |d: Option<Day>| d.map(|d| d.to_string()).unwrap_or_default();
    let _ = writeln!(
        h,
        "<form method=\"get\" class=\"filters\"><input type=\"hidden\" name=\"app\" value=\"{}\">\
<label>from <input type=\"date\" name=\"from\" value=\"{}\"></label> <label>to <input type=\"date\" name=\"to\" value=\"{}\"></label> \
<label><input type=\"checkbox\" name=\"breakdown\" value=\"1\"{}> breakdown</label> <button type=\"submit\">Show</button> \
<a href=\"/api/funnels/{}?app={}\">JSON</a> <a href=\"/api/funnels/{}?app={}&amp;format=csv\">CSV</a></form>",
        escape(&q.app_id),
        day(q.from),
        day(q.to),
        if q.breakdown { " checked" } else { "" },
        escape(&url(&q.funnel_id)),
        escape(&url(&q.app_id)),
        escape(&url(&q.funnel_id)),
        escape(&url(&q.app_id)),
    );
}

/// Bars and the steps table: actors, conversion from step 1, drop-off from the step before, time to
/// convert.
fn steps(h: &mut String, per_level: &[Level], names: &[String]) {
    let first = per_level.first().map_or(0, |l| l.actors);
    let row_h = 30;
    let height = per_level.len() * row_h + 6;
    let _ = writeln!(
        h,
        "<svg class=\"bars\" role=\"img\" width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\">"
    );
    for (i, l) in per_level.iter().enumerate() {
        let y = i * row_h + 3;
        let w = if first == 0 {
            1.0
        } else {
            (520.0 * l.actors as f64 / first as f64).max(1.0)
        };
        let name = escape(&names[i]);
        let _ = writeln!(
            h,
            "<text x=\"0\" y=\"{ty}\">{k}. {name}</text><rect x=\"220\" y=\"{y}\" width=\"{w:.1}\" height=\"22\" fill=\"#4e79a7\"><title>{name}: {a}</title></rect><text x=\"{tx:.1}\" y=\"{ty}\">{a} ({c})</text>",
            ty = y + 15,
            k = i + 1,
            a = l.actors,
            tx = 226.0 + w,
            c = pct(l.actors, first),
        );
    }
    h.push_str("</svg>\n<table id=\"steps\"><tr><th>step</th><th>actors</th><th>conversion</th><th>drop-off</th><th>time to convert (median / p90)</th></tr>\n");
    for (i, l) in per_level.iter().enumerate() {
        let drop = match i.checked_sub(1).and_then(|p| per_level.get(p)) {
            Some(prev) => pct(prev.actors.saturating_sub(l.actors), prev.actors),
            None => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}. {}</td><td class=\"actors\">{}</td><td>{}</td><td>{drop}</td><td>{}</td></tr>",
            i + 1,
            escape(&names[i]),
            l.actors,
            pct(l.actors, first),
            // Entering is step 1 itself: no time to convert.
            if i == 0 { "–".to_string() } else { escape(&l.ttc()) }
        );
    }
    h.push_str("</table>\n");
}

fn trend(h: &mut String, a: &FunnelAnswer, names: &[String]) {
    let mut per_day: BTreeMap<i32, BTreeMap<u32, u64>> = BTreeMap::new();
    for d in &a.days {
        let day = per_day.entry(d.day.0).or_default();
        for s in &d.steps {
            *day.entry(s.step).or_default() += s.actors;
        }
    }
    let (Some(first), Some(last_day)) = (a.days.first(), a.days.last()) else {
        return;
    };
    let last = names.len().max(1) as u32;
    trend_chart(
        h,
        &per_day,
        (first.day.0, last_day.day.0),
        last,
        names.first().map_or("step 1", String::as_str),
        names.last().map_or("step 1", String::as_str),
    );
}

/// One row per day: the layer that answered it, actors entering and converting, time to convert.
fn days(h: &mut String, a: &FunnelAnswer) {
    h.push_str("<h2>Per day</h2><table id=\"days\"><tr><th>entry day</th><th>answered by</th><th>entered</th><th>converted</th><th>conversion</th><th>time to convert (median / p90)</th></tr>\n");
    for d in &a.days {
        let last = d.steps.iter().map(|s| s.step).max().unwrap_or(0);
        let at = |k: u32| {
            d.steps
                .iter()
                .filter(|s| s.step == k)
                .map(|s| s.actors)
                .sum::<u64>()
        };
        let (entered, converted) = (at(1), at(last));
        let ttc = d
            .steps
            .iter()
            .find(|s| s.step == last && last > 1)
            .and_then(|s| Some((s.ttc_median_s?, s.ttc_p90_s?)))
            .map_or("–".to_string(), |(m, p)| {
                format!("{} / {}", human_duration(m), human_duration(p))
            });
        let layer = d.layer.as_str();
        let _ = writeln!(
            h,
            "<tr class=\"{layer}\"><td>{}</td><td>{}</td><td>{entered}</td><td>{converted}</td><td>{}</td><td>{}</td></tr>",
            d.day,
            if layer == "batch" { "batch" } else { "real time" },
            pct(converted, entered),
            escape(&ttc)
        );
    }
    h.push_str("</table>\n");
}

/// Breakdown values side by side (all days summed): actors per level and the conversion.
fn breakdown(h: &mut String, a: &FunnelAnswer, names: &[String], asked: bool) {
    let mut by: BTreeMap<&str, BTreeMap<u32, u64>> = BTreeMap::new();
    for s in a.days.iter().flat_map(|d| &d.steps) {
        *by.entry(&s.breakdown)
            .or_default()
            .entry(s.step)
            .or_default() += s.actors;
    }
    if by.is_empty() || (by.len() == 1 && by.contains_key("") && !asked) {
        return;
    }
    let n = names.len() as u32;
    h.push_str("<h2>Breakdown</h2><table id=\"breakdown\"><tr><th>value</th>");
    for name in names {
        let _ = write!(h, "<th>{}</th>", escape(name));
    }
    h.push_str("<th>conversion</th></tr>\n");
    for (value, counts) in &by {
        let label = if value.is_empty() { "(none)" } else { value };
        let _ = write!(h, "<tr><td class=\"name\">{}</td>", escape(label));
        for k in 1..=n {
            let _ = write!(h, "<td>{}</td>", counts.get(&k).copied().unwrap_or(0));
        }
        let first = counts.get(&1).copied().unwrap_or(0);
        let last = counts.get(&n).copied().unwrap_or(0);
        let _ = writeln!(h, "<td>{}</td></tr>", pct(last, first));
    }
    h.push_str("</table>\n");
}
