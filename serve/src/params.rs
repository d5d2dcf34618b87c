//! Query parameters of the pages and the API, checked: a bad day, flag or format is a 400 naming the
//! parameter, an unknown parameter too (a typo must not silently change the answer).

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use facts::{CountsQuery, Day, FunnelQuery};

use crate::error::ApiError;

/// The raw parameters of a request.
pub type Params = BTreeMap<String, String>;

/// What a response is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (default).
    Json,
    /// `text/csv`: `?format=csv` or `Accept: text/csv`.
    Csv,
}

/// Refuses parameters other than `allowed`.
pub fn only(p: &Params, allowed: &[&str]) -> Result<(), ApiError> {
    match p.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown parameter `{k}` (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A required, non-empty parameter.
pub fn required<'p>(p: &'p Params, name: &str) -> Result<&'p str, ApiError> {
    match p.get(name).map(String::as_str) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "parameter `{name}` is required"
        ))),
    }
}

/// An optional parameter; empty counts as absent (an empty form field).
pub fn optional<'p>(p: &'p Params, name: &str) -> Option<&'p str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A day (`YYYY-MM-DD`).
pub fn day(p: &Params, name: &str) -> Result<Option<Day>, ApiError> {
    optional(p, name)
        .map(|v| {
            v.parse::<Day>().map_err(|e| {
                ApiError::bad_request(format!("parameter `{name}`: {v:?} is not a day: {e}"))
            })
        })
        .transpose()
}

/// A flag: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`; absent is false.
pub fn flag(p: &Params, name: &str) -> Result<bool, ApiError> {
    match optional(p, name) {
        None | Some("0" | "false" | "off" | "no") => Ok(false),
        Some("1" | "true" | "on" | "yes") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "parameter `{name}`: {v:?} is not a flag (use 1 or 0)"
        ))),
    }
}

/// `?format=json|csv`, else the `Accept` header (`text/csv` → CSV), else JSON.
pub fn format(p: &Params, headers: &HeaderMap) -> Result<Format, ApiError> {
    match optional(p, "format") {
        Some("json") => return Ok(Format::Json),
        Some("csv") => return Ok(Format::Csv),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "parameter `format`: {v:?} is not a format (use json or csv)"
            )))
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// The funnel query of `GET /api/funnels/{id}` and `/funnels/{id}`: `app` (required), `from`, `to`,
/// `breakdown`, `version` — what `funnel query --funnel ID` reads.
pub fn funnel_query(id: &str, p: &Params) -> Result<FunnelQuery, ApiError> {
    let q = FunnelQuery {
        app_id: required(p, "app")?.to_string(),
        funnel_id: id.to_string(),
        funnel_version: optional(p, "version").map(str::to_string),
        from: day(p, "from")?,
        to: day(p, "to")?,
        breakdown: flag(p, "breakdown")?,
    };
    check_range(q.from, q.to)?;
    Ok(q)
}

/// The counts query of `GET /api/counts` for `metric`: `app`, `dimension`, `from`, `to`, `breakdown`.
pub fn counts_query(metric: &str, p: &Params) -> Result<CountsQuery, ApiError> {
    let q = CountsQuery {
        app_id: required(p, "app")?.to_string(),
        metric: metric.to_string(),
        dimension: optional(p, "dimension").map(str::to_string),
        from: day(p, "from")?,
        to: day(p, "to")?,
        breakdown: flag(p, "breakdown")?,
    };
    check_range(q.from, q.to)?;
    Ok(q)
}

fn check_range(from: Option<Day>, to: Option<Day>) -> Result<(), ApiError> {
    match (from, to) {
        (Some(f), Some(t)) if f > t => Err(ApiError::bad_request(format!(
            "`from` ({f}) is after `to` ({t})"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = funnel_query("f", &params(&[])).unwrap_err();
        assert!(e.reason.contains("`app`"), "{}", e.reason);
        let e = funnel_query("f", &params(&[("app", "a"), ("from", "2024-13-01")])).unwrap_err();
        assert!(e.reason.contains("`from`"), "{}", e.reason);
        let e = funnel_query("f", &params(&[("app", "a"), ("breakdown", "maybe")])).unwrap_err();
        assert!(e.reason.contains("`breakdown`"), "{}", e.reason);
        let e = funnel_query(
            "f",
            &params(&[("app", "a"), ("from", "2024-02-02"), ("to", "2024-02-01")]),
        )
        .unwrap_err();
        assert!(e.reason.contains("after"), "{}", e.reason);
        let e = only(&params(&[("ap", "a")]), &["app"]).unwrap_err();
        assert!(e.reason.contains("`ap`"), "{}", e.reason);
        let q = funnel_query("f", &params(&[("app", "a"), ("breakdown", "1")])).unwrap();
        assert!(q.breakdown && q.from.is_none());
    }

    #[test]
    fn csv_is_asked_by_parameter_or_accept_header() {
        let mut h = HeaderMap::new();
        assert_eq!(format(&params(&[]), &h).unwrap(), Format::Json);
        h.insert(header::ACCEPT, "text/csv".parse().unwrap());
        assert_eq!(format(&params(&[]), &h).unwrap(), Format::Csv);
        assert_eq!(
            format(&params(&[("format", "json")]), &h).unwrap(),
            Format::Json
        );
        assert!(format(&params(&[("format", "xml")]), &h).is_err());
    }
}
