//! The one read path of every backend: a backend supplies rows through [`RowSource`] (from one consistent
//! view of its tables) and [`read_funnel`] / [`read_counts`] resolve the version, split the range at the
//! watermark, fetch each layer over its own days and merge them ([`crate::lambda`]).

use crate::day::Day;
use crate::error::FactsError;
use crate::lambda;
use crate::model::{DailyCountFact, FunnelStepFact, FunnelTotalFact, RunId, COUNTS_WATERMARK_ID};
use crate::query::{CountsAnswer, CountsQuery, Freshness, FunnelAnswer, FunnelQuery};

/// `(app_id, funnel_id, funnel_version)` of a funnel; for counts `(app_id, COUNTS_WATERMARK_ID, metric)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key<'a> {
    pub app_id: &'a str,
    pub funnel_id: &'a str,
    pub funnel_version: &'a str,
}

/// A key's watermark row: batch results complete before `batch_until`, from `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pointer {
    pub batch_until: Day,
    pub run: RunId,
    pub published_at_ms: i64,
}

/// Rows of one consistent view of a backend's tables. Day ranges are inclusive. A source may return rows
/// outside what was asked (another dimension, a day outside the range): the merge filters again.
pub(crate) trait RowSource {
    /// The watermark row of a key.
    fn pointer(&self, key: Key<'_>) -> Result<Option<Pointer>, FactsError>;

    /// The version of the funnel's most recently published watermark (latest `published_at_ms`, then run).
    fn latest_published_version(
        &self,
        app_id: &str,
        funnel_id: &str,
    ) -> Result<Option<String>, FactsError>;

    /// The versions of the funnel the speed layer has rows of.
    fn speed_versions(&self, app_id: &str, funnel_id: &str) -> Result<Vec<String>, FactsError>;

    /// `funnel_steps` rows of a run.
    fn batch_steps(
        &self,
        key: Key<'_>,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError>;

    /// `funnel_totals` rows of a run.
    fn batch_totals(
        &self,
        key: Key<'_>,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<FunnelTotalFact>, FactsError>;

    /// Speed partial `funnel_steps` rows (time-to-convert is not kept).
    fn speed_steps(
        &self,
        key: Key<'_>,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError>;

    /// `daily_counts` rows of a run.
    fn batch_counts(
        &self,
        q: &CountsQuery,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError>;

    /// Speed partial `daily_counts` rows.
    fn speed_counts(
        &self,
        q: &CountsQuery,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError>;

    /// When the stream last applied a batch (Unix ms).
    fn speed_applied_at_ms(&self) -> Result<Option<i64>, FactsError>;
}

fn resolve_version(src: &impl RowSource, q: &FunnelQuery) -> Result<String, FactsError> {
    if let Some(v) = &q.funnel_version {
        return Ok(v.clone());
    }
    if let Some(v) = src.latest_published_version(&q.app_id, &q.funnel_id)? {
        return Ok(v);
    }
    let mut versions = src.speed_versions(&q.app_id, &q.funnel_id)?;
    versions.sort();
    versions.dedup();
    match versions.len() {
        0 => Ok(String::new()),
        1 => Ok(versions.swap_remove(0)),
        _ => Err(FactsError::AmbiguousVersion {
            app_id: q.app_id.clone(),
            funnel_id: q.funnel_id.clone(),
            versions,
        }),
    }
}

fn freshness(src: &impl RowSource, pointer: Option<Pointer>) -> Result<Freshness, FactsError> {
    Ok(Freshness {
        watermark: pointer.map(|p| p.batch_until),
        batch_run: pointer.map(|p| p.run),
        batch_published_at_ms: pointer.map(|p| p.published_at_ms),
        speed_applied_at_ms: src.speed_applied_at_ms()?,
    })
}

/// Answer a funnel query from a backend's rows.
pub(crate) fn read_funnel(
    src: &impl RowSource,
    q: &FunnelQuery,
) -> Result<FunnelAnswer, FactsError> {
    let version = resolve_version(src, q)?;
    let key = Key {
        app_id: &q.app_id,
        funnel_id: &q.funnel_id,
        funnel_version: &version,
    };
    let pointer = src.pointer(key)?;
    let watermark = pointer.map(|p| p.batch_until);
    let split = lambda::split(q.from, q.to, watermark);
    let (mut batch, mut totals) = (Vec::new(), Vec::new());
    if let (Some(p), Some(days)) = (pointer, split.batch) {
        batch = src.batch_steps(key, p.run, days)?;
        // Totals only answer queries that sum the breakdowns.
        if !q.breakdown {
            totals = src.batch_totals(key, p.run, days)?;
        }
    }
    let speed = match split.speed {
        Some(days) => src.speed_steps(key, days)?,
        None => Vec::new(),
    };
    let freshness = freshness(src, pointer)?;
    let days = lambda::merge_funnel(q, watermark, batch, totals, speed)?;
    Ok(FunnelAnswer {
        app_id: q.app_id.clone(),
        funnel_id: q.funnel_id.clone(),
        funnel_version: version,
        freshness,
        days,
    })
}

/// Answer a counts query from a backend's rows.
pub(crate) fn read_counts(
    src: &impl RowSource,
    q: &CountsQuery,
) -> Result<CountsAnswer, FactsError> {
    let pointer = src.pointer(Key {
        app_id: &q.app_id,
        funnel_id: COUNTS_WATERMARK_ID,
        funnel_version: &q.metric,
    })?;
    let watermark = pointer.map(|p| p.batch_until);
    let split = lambda::split(q.from, q.to, watermark);
    let batch = match (pointer, split.batch) {
        (Some(p), Some(days)) => src.batch_counts(q, p.run, days)?,
        _ => Vec::new(),
    };
    let speed = match split.speed {
        Some(days) => src.speed_counts(q, days)?,
        None => Vec::new(),
    };
    let freshness = freshness(src, pointer)?;
    let days = lambda::merge_counts(q, watermark, batch, speed)?;
    Ok(CountsAnswer {
        app_id: q.app_id.clone(),
        metric: q.metric.clone(),
        freshness,
        days,
    })
}
