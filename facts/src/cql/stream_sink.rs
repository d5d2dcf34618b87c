//! The stream's side of the CQL store: one atomic, fenced commit per Kafka batch.
//!
//! Each (consumer group, topic, Kafka partition) owns one `stream_partitions` partition: its commit point
//! (static columns `next_offset`, the last batch's `batch_first`/`batch_next`, `commit_ts`, `last_cells`),
//! its cumulative counts and funnel partials (rows `count` / `step`, one per value, with the commit
//! timestamp that last changed them) and its owned state (rows `s:<namespace>`: pending buckets,
//! dead-letter counters). A batch is applied as:
//!
//! 1. **Head**: the commit point, read at `LOCAL_SERIAL` the first time (and after any error or refusal);
//!    afterwards this store's own last commit is the head. The last commit's cells are copied to the
//!    readers' tables again when the head is read (its writer may have died before copying them).
//! 2. **Decide**: a batch whose offsets are the last batch's, or below the head, is not applied (`false`);
//!    one overlapping it is [`FactsError::OffsetOverlap`].
//! 3. **Before the commit**, idempotent upserts outside the partition: seen ids (each keyed by its id,
//!    carrying its message's offset, so a retry rewrites them and a leftover of an attempt that never
//!    committed is recognised — [`crate::SeenBy`]) and shared state (conversion records: keyed by the
//!    conversion, the same record whoever applies the message; one partition per app and day,
//!    [`super::shared_state`]).
//! 4. **Commit**: ONE conditional batch on the partition, `IF next_offset = <head>`: the new commit point,
//!    the changed cumulative values and the owned state. Paxos makes it atomic and isolated; a consumer
//!    whose partition was taken over finds the offset moved and is refused — nothing of its batch lands.
//! 5. **After the commit**: the changed cumulative values are copied to `daily_counts_speed` /
//!    `funnel_steps_speed` (one row per Kafka partition and value) with the commit's timestamp as write
//!    timestamp — a late copy from an earlier owner never overwrites a newer value — plus `speed_days` and
//!    the partition list (`stream_offsets`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::{now_ms, Inner, CONCURRENCY};
use crate::cql_session::{BatchKind, BindRow, RowSet, Value};
use crate::cql_statements::{self as st, Stmt};
use crate::error::{CqlError, FactsError};
use crate::fault;
use crate::model::{SpeedBatch, StreamPartition, COUNTS_WATERMARK_ID};
use crate::seen::seen_bucket;

/// Kind of a partition row holding a cumulative daily count (key `[app, metric, day, dimension, value]`).
const KIND_COUNT: &str = "count";
/// Kind of a partition row holding cumulative funnel actors (key `[app, funnel, version, day, breakdown,
/// step]`).
const KIND_STEP: &str = "step";
/// Kind prefix of owned state rows (`s:` + namespace).
const KIND_STATE: &str = "s:";

/// A changed cell: `(kind, key)`.
type CellKey = (String, String);

/// What this store knows of a partition it committed to; dropped on any error or refusal.
#[derive(Debug, Clone, Default)]
pub(super) struct Head {
    /// The commit point's offset (`None`: never committed in this layout).
    next_offset: Option<i64>,
    /// An offset carried over from `stream_offsets` (a keyspace written by the per-batch layout).
    legacy_offset: Option<i64>,
    /// The last committed batch's offsets.
    batch: Option<(i64, i64)>,
    commit_ts: i64,
    /// Cumulative values of cells read or written since.
    cells: HashMap<CellKey, i64>,
}

impl Head {
    fn committed(&self) -> Option<i64> {
        self.next_offset.or(self.legacy_offset)
    }
}

/// The commit point as `SELECT_PARTITION_HEAD` returns it.
type HeadRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// A partition cell as `SELECT_PARTITION_CELL` returns it.
type CellRow = (Option<i64>, Option<i64>, Option<Vec<u8>>, Option<i64>);

fn owner_values(o: &StreamPartition) -> (String, String, i32) {
    (o.group.clone(), o.topic.clone(), o.partition)
}

fn cell_key(parts: &[&str]) -> String {
    serde_json::to_string(parts).unwrap_or_default()
}

fn invalid(what: &'static str, value: impl ToString) -> FactsError {
    FactsError::Invalid {
        what,
        value: value.to_string(),
    }
}

/// `[applied]` of a conditional reply.
fn applied(rows: &RowSet) -> bool {
    rows.first().and_then(|r| r.first()) == Some(&Value::Bool(true))
}

impl Inner {
    fn cached_head(&self, o: &StreamPartition) -> Option<Head> {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(o)
            .cloned()
    }

    fn set_head(&self, o: &StreamPartition, head: Option<Head>) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        match head {
            Some(h) => heads.insert(o.clone(), h),
            None => heads.remove(o),
        };
    }

    /// The commit point at `LOCAL_SERIAL` (an unfinished commit is finished or dropped first).
    async fn read_head(&self, o: &StreamPartition) -> Result<(Head, Vec<CellKey>), FactsError> {
        let row: Option<HeadRow> = self
            .first(st::SELECT_PARTITION_HEAD, owner_values(o))
            .await?;
        let (next, first, last, ts, cells) = row.unwrap_or((None, None, None, None, None));
        let mut head = Head {
            next_offset: next,
            batch: first.zip(last),
            commit_ts: ts.unwrap_or(0),
            ..Head::default()
        };
        if next.is_none() {
            let legacy: Option<(Option<i64>,)> =
                self.first(st::SELECT_OFFSET, owner_values(o)).await?;
            head.legacy_offset = legacy.and_then(|l| l.0);
        }
        let cells: Vec<CellKey> = match cells {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| invalid("stream partition last_cells", e))?,
            None => Vec::new(),
        };
        Ok((head, cells))
    }

    /// Read the head fresh: register the partition for `committed_offsets` and copy the last commit's
    /// cells again (idempotent: same values, same write timestamps).
    async fn load_head(&self, o: &StreamPartition) -> Result<Head, FactsError> {
        let (mut head, last_cells) = self.read_head(o).await?;
        let (g, t, p) = owner_values(o);
        self.exec(st::UPSERT_OFFSET, (g, t, p, head.committed(), now_ms()))
            .await?;
        if !last_cells.is_empty() {
            let values = self.read_cells(o, &last_cells).await?;
            let mut copies = Vec::new();
            for (k, row) in last_cells.into_iter().zip(values) {
                if let Some((Some(count), at_ts, _, _)) = row {
                    head.cells.insert(k.clone(), count);
                    copies.push((k, count, at_ts.unwrap_or(head.commit_ts)));
                }
            }
            self.copy_cells(o, &copies).await?;
        }
        Ok(head)
    }

    /// Rows of the partition, [`CONCURRENCY`] single-row reads at a time, in order.
    async fn read_cells(
        &self,
        o: &StreamPartition,
        cells: &[CellKey],
    ) -> Result<Vec<Option<CellRow>>, FactsError> {
        let keys: Vec<_> = cells
            .iter()
            .map(|(kind, key)| {
                (
                    o.group.clone(),
                    o.topic.clone(),
                    o.partition,
                    kind.clone(),
                    key.clone(),
                )
            })
            .collect();
        stream::iter(keys)
            .map(|k| async move { self.first::<CellRow>(st::SELECT_PARTITION_CELL, k).await })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// Owned state of a partition, by key, unless missing or expired at `now_ms`.
    pub(super) async fn owned_states(
        &self,
        o: &StreamPartition,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let kind = format!("{KIND_STATE}{namespace}");
        let cells: Vec<CellKey> = keys.iter().map(|k| (kind.clone(), k.clone())).collect();
        Ok(self
            .read_cells(o, &cells)
            .await?
            .into_iter()
            .map(|row| match row {
                Some((_, _, Some(v), exp)) if exp.is_none_or(|e| e > now_ms) => Some(v),
                _ => None,
            })
            .collect())
    }

    /// Owned state of a partition whose key starts with `prefix`, sorted by key.
    pub(super) async fn scan_owned(
        &self,
        o: &StreamPartition,
        namespace: &str,
        prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let upper = format!("{prefix}\u{10FFFF}");
        let rows: Vec<(String, Option<Vec<u8>>, Option<i64>)> = self
            .rows(
                st::SCAN_PARTITION_KIND,
                (
                    &o.group,
                    &o.topic,
                    o.partition,
                    format!("{KIND_STATE}{namespace}"),
                    prefix,
                    upper,
                ),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|(k, _, exp)| k.starts_with(prefix) && exp.is_none_or(|e| e > now_ms))
            .filter_map(|(k, v, _)| v.map(|v| (k, v)))
            .collect())
    }

    /// `(partition, next offset)` of every partition a group committed on a topic.
    pub(super) async fn committed(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, FactsError> {
        let listed: Vec<(i32, Option<i64>)> = self.rows(st::SELECT_OFFSETS, (group, topic)).await?;
        let mut out = Vec::new();
        for (partition, _) in listed {
            let (head, _) = self
                .read_head(&StreamPartition::new(group, topic, partition))
                .await?;
            if let Some(next) = head.committed() {
                out.push((partition, next));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Apply one Kafka batch (see the module docs).
    pub(super) async fn apply_speed(&self, b: &SpeedBatch) -> Result<bool, FactsError> {
        let o = b.owner();
        let mut head = match self.cached_head(&o) {
            Some(h) => h,
            None => self.load_head(&o).await?,
        };
        let replay = head.batch == Some((b.first_offset, b.next_offset));
        if !b.should_apply(replay, head.committed())? {
            self.set_head(&o, Some(head));
            return Ok(false);
        }
        // Whatever happens from here on, only a commit this store saw applied is cached again.
        self.set_head(&o, None);
        let deltas = deltas(b)?;
        let missing: Vec<CellKey> = deltas
            .keys()
            .filter(|k| !head.cells.contains_key(*k))
            .cloned()
            .collect();
        for (k, row) in missing.iter().zip(self.read_cells(&o, &missing).await?) {
            head.cells
                .insert(k.clone(), row.and_then(|r| r.0).unwrap_or(0));
        }
        let changed: Vec<(CellKey, i64)> = deltas
            .iter()
            .map(|(k, d)| (k.clone(), head.cells.get(k).copied().unwrap_or(0) + d))
            .collect();
        let commit_ts = (now_ms() * 1000).max(head.commit_ts + 1);
        self.write_unowned(b).await?;
        fault::point("speed");
        let statements = commit_statements(b, &head, &changed, commit_ts)?;
        let reply = self.batch(BatchKind::Logged, statements).await?;
        if !applied(&reply) {
            return self.refused(b, &head).await;
        }
        head.next_offset = Some(b.next_offset);
        head.batch = Some((b.first_offset, b.next_offset));
        head.commit_ts = commit_ts;
        for (k, v) in &changed {
            head.cells.insert(k.clone(), *v);
        }
        let copies: Vec<(CellKey, i64, i64)> = changed
            .into_iter()
            .map(|(k, v)| (k, v, commit_ts))
            .collect();
        self.copy_cells(&o, &copies).await?;
        let now = now_ms();
        self.exec(
            st::UPSERT_OFFSET,
            (&b.group, &b.topic, b.partition, b.next_offset, now),
        )
        .await?;
        self.exec(st::UPSERT_META, ("speed_applied_at_ms", now.to_string()))
            .await?;
        self.set_head(&o, Some(head));
        Ok(true)
    }

    /// The commit was refused: the partition's commit point is not where this store thought. Re-read it:
    /// the batch may have been applied by an earlier attempt whose answer was lost; otherwise another
    /// consumer moved the offset.
    async fn refused(&self, b: &SpeedBatch, expected: &Head) -> Result<bool, FactsError> {
        let (now, _) = self.read_head(&b.owner()).await?;
        if now.batch == Some((b.first_offset, b.next_offset)) {
            return Ok(false);
        }
        if now.committed() != expected.committed() && !b.should_apply(false, now.committed())? {
            return Ok(false);
        }
        Err(FactsError::PartitionTakenOver {
            group: b.group.clone(),
            topic: b.topic.clone(),
            partition: b.partition,
            first_offset: b.first_offset,
            expected: expected.next_offset,
            found: now.next_offset,
        })
    }

    /// Seen ids and shared (not owned) state: idempotent upserts before the commit.
    async fn write_unowned(&self, b: &SpeedBatch) -> Result<(), FactsError> {
        let now = now_ms();
        let seen: Vec<_> = b
            .seen_ids
            .iter()
            .map(|e| {
                let id = e.id.key_bytes();
                (
                    e.id.app_id.clone(),
                    seen_bucket(&id),
                    id,
                    e.expires_at_ms,
                    b.topic.clone(),
                    b.partition,
                    e.offset,
                    st::state_ttl_s(e.expires_at_ms, now),
                )
            })
            .collect();
        self.exec_all(st::INSERT_SEEN, seen).await?;
        let puts = b.state_puts.iter().filter(|s| !b.owns(&s.namespace));
        let deletes = b.state_deletes.iter().filter(|(ns, _)| !b.owns(ns));
        self.write_records(puts.collect(), deletes.collect(), now)
            .await
    }

    /// Copy cumulative values to the readers' tables, each with the commit timestamp that set it.
    async fn copy_cells(
        &self,
        o: &StreamPartition,
        cells: &[(CellKey, i64, i64)],
    ) -> Result<(), FactsError> {
        let key = st::batch_key(&o.group, &o.topic, o.partition);
        let ttl = st::SPEED_TTL_S;
        let mut counts = Vec::new();
        let mut steps = Vec::new();
        let mut days = BTreeSet::new();
        for ((kind, cell), value, ts) in cells {
            let parts: Vec<String> =
                serde_json::from_str(cell).map_err(|e| invalid("stream partition cell key", e))?;
            match (kind.as_str(), parts.as_slice()) {
                (KIND_COUNT, [app, metric, day, dim, val]) => {
                    days.insert((
                        app.clone(),
                        COUNTS_WATERMARK_ID.to_string(),
                        metric.clone(),
                        day.clone(),
                    ));
                    counts.push((app, metric, day, dim, val, &key, *value, ttl, *ts).bind_row());
                }
                (KIND_STEP, [app, fid, ver, day, breakdown, step]) => {
                    let step: i32 = step.parse().map_err(|_| invalid("step", step))?;
                    days.insert((app.clone(), fid.clone(), ver.clone(), day.clone()));
                    steps.push(
                        (app, fid, ver, day, breakdown, step, &key, *value, ttl, *ts).bind_row(),
                    );
                }
                _ => return Err(invalid("stream partition cell", cell)),
            }
        }
        self.exec_all(st::INSERT_COUNT_SPEED, counts).await?;
        self.exec_all(st::INSERT_STEP_SPEED, steps).await?;
        let days: Vec<_> = days
            .into_iter()
            .map(|(a, f, v, d)| (a, f, v, d, ttl))
            .collect();
        self.exec_all(st::UPSERT_SPEED_DAY, days).await
    }
}

/// The batch's count and funnel increments per cell.
fn deltas(b: &SpeedBatch) -> Result<BTreeMap<CellKey, i64>, FactsError> {
    let mut out: BTreeMap<CellKey, i64> = BTreeMap::new();
    for r in &b.daily_counts {
        let day = r.day.to_string();
        let k = cell_key(&[&r.app_id, &r.metric, &day, &r.dimension, &r.value]);
        *out.entry((KIND_COUNT.to_string(), k)).or_default() += r.count;
    }
    for r in &b.funnel_steps {
        let day = r.day.to_string();
        let step = i32::try_from(r.step).map_err(|_| invalid("step", r.step))?;
        let actors = i64::try_from(r.actors).map_err(|_| invalid("actors", r.actors))?;
        let k = cell_key(&[
            &r.app_id,
            &r.funnel_id,
            &r.funnel_version,
            &day,
            &r.breakdown,
            &step.to_string(),
        ]);
        *out.entry((KIND_STEP.to_string(), k)).or_default() += actors;
    }
    Ok(out)
}

/// The conditional batch of one commit: the commit point (conditioned on the head), the changed
/// cumulative values and the owned state — all in the partition of `(group, topic, partition)`.
fn commit_statements(
    b: &SpeedBatch,
    head: &Head,
    changed: &[(CellKey, i64)],
    commit_ts: i64,
) -> Result<Vec<(Stmt, Vec<Value>)>, FactsError> {
    let (g, t, p) = (&b.group, &b.topic, b.partition);
    let cells: Vec<&CellKey> = changed.iter().map(|(k, _)| k).collect();
    let last_cells = serde_json::to_string(&cells).map_err(|e| invalid("last_cells", e))?;
    let mut out = vec![(
        st::COMMIT_PARTITION,
        (
            b.next_offset,
            b.first_offset,
            b.next_offset,
            commit_ts,
            last_cells,
            g,
            t,
            p,
            head.next_offset,
        )
            .bind_row(),
    )];
    for ((kind, key), value) in changed {
        out.push((
            st::UPSERT_PARTITION_COUNT,
            (st::SPEED_TTL_S, *value, commit_ts, g, t, p, kind, key).bind_row(),
        ));
    }
    let now = now_ms();
    for s in b.state_puts.iter().filter(|s| b.owns(&s.namespace)) {
        out.push((
            st::UPSERT_PARTITION_STATE,
            (
                st::state_ttl_s(s.expires_at_ms, now),
                &s.value,
                s.expires_at_ms,
                g,
                t,
                p,
                format!("{KIND_STATE}{}", s.namespace),
                &s.key,
            )
                .bind_row(),
        ));
    }
    for (ns, key) in b.state_deletes.iter().filter(|(ns, _)| b.owns(ns)) {
        out.push((
            st::DELETE_PARTITION_STATE,
            (g, t, p, format!("{KIND_STATE}{ns}"), key).bind_row(),
        ));
    }
    if out.len() > u16::MAX as usize {
        return Err(CqlError::Decode {
            reason: format!("a stream commit of {} statements", out.len()),
        }
        .into());
    }
    Ok(out)
}
