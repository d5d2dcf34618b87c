//! The run log on CQL: `runs` partitioned by month (`bucket` = `yyyymm` of the run id), so no partition
//! grows without bound (an hourly schedule writes ~744 rows a month). Keyspaces written before the buckets
//! kept every run in bucket 0; it is read last, as the oldest month.

use chrono::{Datelike, TimeZone};

use super::Inner;
use crate::cql_statements as st;
use crate::error::FactsError;
use crate::model::{RunId, RunStatus};

/// Months the run log is read back over (besides the legacy bucket 0).
pub const RUN_MONTHS: i32 = 24;

/// The bucket of the legacy run log (every run before the buckets).
const LEGACY_BUCKET: i32 = 0;

/// A row of [`st::SELECT_RUNS`]: bucket, run id, started, finished, status, inputs, funnels, rows, error.
pub(super) type RunsRow = (
    i32,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

/// `yyyymm` of a run id (microseconds since the epoch, UTC).
pub fn bucket_of(run_id: i64) -> i32 {
    let t = chrono::Utc
        .timestamp_micros(run_id)
        .single()
        .unwrap_or_default();
    t.year() * 100 + t.month() as i32
}

/// The month before a `yyyymm` bucket.
fn previous(bucket: i32) -> i32 {
    if bucket % 100 == 1 {
        (bucket / 100 - 1) * 100 + 12
    } else {
        bucket - 1
    }
}

impl Inner {
    /// The newest `limit` runs (newest first), reading month after month back from `now_run`'s.
    pub(super) async fn recent_runs(
        &self,
        now_run: i64,
        limit: i32,
    ) -> Result<Vec<RunsRow>, FactsError> {
        let mut out: Vec<RunsRow> = Vec::new();
        let mut bucket = bucket_of(now_run);
        let buckets = (0..RUN_MONTHS)
            .map(|_| {
                let b = bucket;
                bucket = previous(bucket);
                b
            })
            .chain([LEGACY_BUCKET]);
        for b in buckets {
            let left = limit.saturating_sub(i32::try_from(out.len()).unwrap_or(i32::MAX));
            if left <= 0 {
                break;
            }
            out.extend(self.rows::<RunsRow>(st::SELECT_RUNS, (b, left)).await?);
        }
        Ok(out)
    }

    pub(super) async fn run_status(&self, run: RunId) -> Result<RunStatus, FactsError> {
        let s: Option<(String,)> = self
            .first(st::SELECT_RUN_STATUS, (bucket_of(run.0), run.0))
            .await?;
        s.ok_or(FactsError::UnknownRun(run.0))?.0.parse()
    }

    /// Set a run's status, end time, error and row count.
    pub(super) async fn finish_run(
        &self,
        run: i64,
        status: RunStatus,
        error: Option<String>,
        rows: Option<i64>,
    ) -> Result<(), FactsError> {
        self.finish_run_in(bucket_of(run), run, status, error, rows)
            .await
    }

    /// [`Inner::finish_run`] for a run found in `bucket` (the legacy bucket holds older runs).
    pub(super) async fn finish_run_in(
        &self,
        bucket: i32,
        run: i64,
        status: RunStatus,
        error: Option<String>,
        rows: Option<i64>,
    ) -> Result<(), FactsError> {
        let values = (status.as_str(), super::now_ms(), error, rows, bucket, run);
        self.exec(st::FINISH_RUN, values).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_months() {
        // 2024-05-01T00:00:00Z and the microsecond before it.
        let may = 1_714_521_600_000_000;
        assert_eq!(bucket_of(may), 202405);
        assert_eq!(bucket_of(may - 1), 202404);
        assert_eq!(previous(202401), 202312);
        assert_eq!(previous(202405), 202404);
    }
}
