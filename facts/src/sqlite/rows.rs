//! The SQLite [`RowSource`]: rows of one read transaction, so the pointer and the rows it points at come
//! from the same snapshot of the file.

use rusqlite::{params, Connection, OptionalExtension};

use crate::day::Day;
use crate::error::FactsError;
use crate::model::{DailyCountFact, FunnelStepFact, FunnelTotalFact, RunId};
use crate::query::CountsQuery;
use crate::read::{Key, Pointer, RowSource};

/// Speed rows live under this run id.
pub(super) const SPEED_RUN: i64 = 0;

/// A read view: a connection inside an open (deferred) transaction.
pub(super) struct View<'a>(pub &'a Connection);

pub(super) fn parse_day(s: &str) -> Result<Day, FactsError> {
    s.parse()
}

/// A decode error of a stored value, as rusqlite reports conversion failures.
fn bad_column(i: usize, e: FactsError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

fn day_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Day> {
    let s: String = r.get(i)?;
    parse_day(&s).map_err(|e| bad_column(i, e))
}

fn step_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u32> {
    let step: i64 = r.get(i)?;
    u32::try_from(step).map_err(|_| {
        bad_column(
            i,
            FactsError::Invalid {
                what: "stored step",
                value: step.to_string(),
            },
        )
    })
}

fn actors_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let actors: i64 = r.get(i)?;
    Ok(u64::try_from(actors).unwrap_or(0))
}

impl View<'_> {
    fn steps(
        &self,
        key: Key<'_>,
        run: i64,
        (lo, hi): (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT day, breakdown, step, actors, ttc_median_s, ttc_p90_s FROM funnel_steps
             WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4
               AND day BETWEEN ?5 AND ?6",
        )?;
        let rows = stmt.query_map(
            params![
                run,
                key.app_id,
                key.funnel_id,
                key.funnel_version,
                lo.to_string(),
                hi.to_string()
            ],
            |r| {
                Ok(FunnelStepFact {
                    app_id: key.app_id.to_string(),
                    funnel_id: key.funnel_id.to_string(),
                    funnel_version: key.funnel_version.to_string(),
                    day: day_at(r, 0)?,
                    breakdown: r.get(1)?,
                    step: step_at(r, 2)?,
                    actors: actors_at(r, 3)?,
                    ttc_median_s: r.get(4)?,
                    ttc_p90_s: r.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn counts(
        &self,
        q: &CountsQuery,
        run: i64,
        (lo, hi): (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT day, dimension, value, count FROM daily_counts
             WHERE run_id = ?1 AND app_id = ?2 AND metric = ?3 AND day BETWEEN ?4 AND ?5
               AND (?6 IS NULL OR dimension = ?6)",
        )?;
        let rows = stmt.query_map(
            params![
                run,
                q.app_id,
                q.metric,
                lo.to_string(),
                hi.to_string(),
                q.dimension
            ],
            |r| {
                Ok(DailyCountFact {
                    app_id: q.app_id.clone(),
                    day: day_at(r, 0)?,
                    metric: q.metric.clone(),
                    dimension: r.get(1)?,
                    value: r.get(2)?,
                    count: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `(batch_until, run_id, published_at_ms)` of one key.
pub(super) fn pointer(conn: &Connection, key: Key<'_>) -> Result<Option<Pointer>, FactsError> {
    let row: Option<(String, i64, i64)> = conn
        .prepare_cached(
            "SELECT batch_until, run_id, published_at_ms FROM watermarks
             WHERE app_id = ?1 AND funnel_id = ?2 AND funnel_version = ?3",
        )?
        .query_row(
            params![key.app_id, key.funnel_id, key.funnel_version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(d, run, at)| {
        Ok(Pointer {
            batch_until: parse_day(&d)?,
            run: RunId(run),
            published_at_ms: at,
        })
    })
    .transpose()
}

impl RowSource for View<'_> {
    fn pointer(&self, key: Key<'_>) -> Result<Option<Pointer>, FactsError> {
        pointer(self.0, key)
    }

    fn latest_published_version(
        &self,
        app_id: &str,
        funnel_id: &str,
    ) -> Result<Option<String>, FactsError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT funnel_version FROM watermarks WHERE app_id = ?1 AND funnel_id = ?2
                 ORDER BY published_at_ms DESC, run_id DESC LIMIT 1",
            )?
            .query_row(params![app_id, funnel_id], |r| r.get(0))
            .optional()?)
    }

    fn speed_versions(&self, app_id: &str, funnel_id: &str) -> Result<Vec<String>, FactsError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT DISTINCT funnel_version FROM funnel_steps
             WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 ORDER BY funnel_version",
        )?;
        let rows = stmt.query_map(params![SPEED_RUN, app_id, funnel_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn batch_steps(
        &self,
        key: Key<'_>,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError> {
        self.steps(key, run.0, days)
    }

    fn batch_totals(
        &self,
        key: Key<'_>,
        run: RunId,
        (lo, hi): (Day, Day),
    ) -> Result<Vec<FunnelTotalFact>, FactsError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT day, step, actors, ttc_median_s, ttc_p90_s FROM funnel_totals
             WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4
               AND day BETWEEN ?5 AND ?6",
        )?;
        let rows = stmt.query_map(
            params![
                run.0,
                key.app_id,
                key.funnel_id,
                key.funnel_version,
                lo.to_string(),
                hi.to_string()
            ],
            |r| {
                Ok(FunnelTotalFact {
                    app_id: key.app_id.to_string(),
                    funnel_id: key.funnel_id.to_string(),
                    funnel_version: key.funnel_version.to_string(),
                    day: day_at(r, 0)?,
                    step: step_at(r, 1)?,
                    actors: actors_at(r, 2)?,
                    ttc_median_s: r.get(3)?,
                    ttc_p90_s: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn speed_steps(
        &self,
        key: Key<'_>,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError> {
        self.steps(key, SPEED_RUN, days)
    }

    fn batch_counts(
        &self,
        q: &CountsQuery,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError> {
        self.counts(q, run.0, days)
    }

    fn speed_counts(
        &self,
        q: &CountsQuery,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError> {
        self.counts(q, SPEED_RUN, days)
    }

    fn speed_applied_at_ms(&self) -> Result<Option<i64>, FactsError> {
        let v: Option<String> = self
            .0
            .prepare_cached("SELECT value FROM meta WHERE key = 'speed_applied_at_ms'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(v.and_then(|s| s.parse().ok()))
    }
}
