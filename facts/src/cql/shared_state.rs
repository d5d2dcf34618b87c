//! The stream's shared state on CQL — state no single Kafka partition owns: the conversion records, kept
//! forever — partitioned so that no partition grows with history, and found again without a scan.
//!
//! A key that is a JSON array `[app_id, _, ts_ms, …]` (a string, anything, then an integer of Unix
//! milliseconds; the stream's conversion records are keyed `[app, actor, hit_ts_ms, hit_id, event_id]`)
//! lives in the `stream_records` partition `(namespace, app_id, day of ts_ms)`: one app's records of one
//! day. Any other key lives in its namespace's partition `(namespace, "", "")` (the stream writes none).
//! The partition follows from the key alone, so every write, delete and point read names it.
//!
//! Readers enumerate the partitions from two small indexes written (idempotently, before the records) the
//! first time this process writes to an (app, day): `stream_record_apps` (one row per app of a namespace)
//! and `stream_record_days` (one row per day of an app). A scan reads the apps (or the one app its prefix
//! names), each app's days, then each (app, day) partition: single-partition reads only.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::{now_ms, Inner, CONCURRENCY};
use crate::cql_statements as st;
use crate::day::Day;
use crate::error::FactsError;
use crate::model::StateEntry;

/// App and day of the partition holding the keys that carry no (app, timestamp).
const UNDATED: &str = "";

/// `(namespace, app_id, day)` of a `stream_records` partition.
type RecordPartition = (String, String, String);

/// `(app_id, day)` of the partition holding `key` (see the module docs).
pub(super) fn partition_of(key: &str) -> (String, String) {
    dated(key).unwrap_or_else(|| (UNDATED.to_string(), UNDATED.to_string()))
}

fn dated(key: &str) -> Option<(String, String)> {
    if !key.starts_with('[') {
        return None;
    }
    let parts: Vec<serde_json::Value> = serde_json::from_str(key).ok()?;
    let app = parts.first()?.as_str()?;
    let day = Day::from_unix_ms(parts.get(2)?.as_i64()?);
    (Day::FIRST..=Day::LAST)
        .contains(&day)
        .then(|| (app.to_string(), day.to_string()))
}

/// The app a scan prefix names whole (`["shop",…`), if it does: the scan then reads that app only.
fn app_of_prefix(prefix: &str) -> Option<String> {
    let rest = prefix.strip_prefix('[')?;
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    let app = values.next()?.ok()?;
    rest[values.byte_offset()..].starts_with(',').then_some(app)
}

/// A row of [`st::SCAN_RECORDS`]: key, value, expiry.
type RecordRow = (String, Vec<u8>, i64);

impl Inner {
    /// A batch's shared state as idempotent upserts and deletes: the indexes first (a reader that finds
    /// nothing in an indexed partition finds nothing; one that could not find a written record would lose
    /// it), then the puts — the last put of a key wins, as applying them in order would — then the deletes
    /// (a put and a delete of one key in one batch leave it deleted).
    pub(super) async fn write_records(
        &self,
        puts: Vec<&StateEntry>,
        deletes: Vec<&(String, String)>,
        now_ms: i64,
    ) -> Result<(), FactsError> {
        let mut last: BTreeMap<(&str, &str), &StateEntry> = BTreeMap::new();
        for p in puts {
            last.insert((&p.namespace, &p.key), p);
        }
        let mut partitions = BTreeSet::new();
        let mut rows = Vec::with_capacity(last.len());
        for ((ns, key), p) in last {
            let (app, day) = partition_of(key);
            if day != UNDATED {
                partitions.insert((ns.to_string(), app.clone(), day.clone()));
            }
            let ttl = st::state_ttl_s(p.expires_at_ms, now_ms);
            let (ns, key, value) = (ns.to_string(), key.to_string(), p.value.clone());
            rows.push((ns, app, day, key, value, p.expires_at_ms, ttl));
        }
        self.index(partitions).await?;
        self.exec_all(st::UPSERT_RECORD, rows).await?;
        let deletes: Vec<_> = deletes
            .into_iter()
            .map(|(ns, key)| {
                let (app, day) = partition_of(key);
                (ns.clone(), app, day, key.clone())
            })
            .collect();
        self.exec_all(st::DELETE_RECORD, deletes).await
    }

    /// Index the partitions this process has not indexed yet (rows are never deleted: once is enough).
    async fn index(&self, partitions: BTreeSet<RecordPartition>) -> Result<(), FactsError> {
        let new: Vec<RecordPartition> = {
            let known = self.indexed.lock().unwrap_or_else(|e| e.into_inner());
            partitions
                .into_iter()
                .filter(|p| !known.contains(p))
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let apps: BTreeSet<(String, String)> = new
            .iter()
            .map(|(ns, app, _)| (ns.clone(), app.clone()))
            .collect();
        self.exec_all(st::UPSERT_RECORD_APP, apps.into_iter().collect())
            .await?;
        self.exec_all(st::UPSERT_RECORD_DAY, new.clone()).await?;
        self.indexed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(new);
        Ok(())
    }

    /// Shared state by key, in order, unless missing or expired at `now_ms`: one single-row read each,
    /// [`CONCURRENCY`] in flight.
    pub(super) async fn get_records(
        &self,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let values: Vec<_> = keys
            .iter()
            .map(|key| {
                let (app, day) = partition_of(key);
                (namespace.to_string(), app, day, key.clone())
            })
            .collect();
        let rows: Vec<Option<(Vec<u8>, i64)>> = stream::iter(values)
            .map(|v| self.first(st::SELECT_RECORD, v))
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.filter(|(_, exp)| *exp > now_ms).map(|(v, _)| v))
            .collect())
    }

    /// Unexpired shared state whose key starts with `prefix`, sorted by key: the partitions listed by the
    /// indexes (of the app the prefix names, or of every app) and the undated partition.
    pub(super) async fn scan_records(
        &self,
        namespace: &str,
        prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let apps: Vec<String> = match app_of_prefix(prefix) {
            Some(app) => vec![app],
            None => {
                let apps: Vec<(String,)> = self.rows(st::SELECT_RECORD_APPS, (namespace,)).await?;
                apps.into_iter().map(|(app,)| app).collect()
            }
        };
        let mut partitions = vec![(UNDATED.to_string(), UNDATED.to_string())];
        for app in apps {
            let days: Vec<(String,)> = self.rows(st::SELECT_RECORD_DAYS, (namespace, &app)).await?;
            partitions.extend(days.into_iter().map(|(day,)| (app.clone(), day)));
        }
        let upper = format!("{prefix}\u{10FFFF}");
        let read: Vec<Vec<RecordRow>> = stream::iter(partitions)
            .map(|(app, day)| {
                let values = (
                    namespace.to_string(),
                    app,
                    day,
                    prefix.to_string(),
                    upper.clone(),
                );
                self.rows(st::SCAN_RECORDS, values)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut out: Vec<(String, Vec<u8>)> = read
            .into_iter()
            .flatten()
            .filter(|(key, _, exp)| key.starts_with(prefix) && *exp > now_ms)
            .map(|(key, value, _)| (key, value))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `init`'s upgrade: copy the shared state a version before `stream_records` kept in `stream_state`
    /// (one partition per namespace) into `stream_records`, once. Returns the entries copied.
    pub(super) async fn migrate_legacy_state(&self) -> Result<usize, FactsError> {
        let done: Option<(Option<String>,)> = self
            .first(st::SELECT_META, (st::LEGACY_STATE_MOVED,))
            .await?;
        if done.is_some_and(|(at,)| at.is_some()) {
            return Ok(0);
        }
        let now = now_ms();
        let mut moved = 0;
        for ns in st::LEGACY_SHARED_NAMESPACES {
            let rows: Vec<(String, Option<Vec<u8>>, Option<i64>)> =
                self.rows(st::SELECT_LEGACY_STATE, (*ns,)).await?;
            let entries: Vec<StateEntry> = rows
                .into_iter()
                .filter_map(|(key, value, expires)| {
                    let expires_at_ms = expires.unwrap_or(i64::MAX);
                    (expires_at_ms > now).then_some(StateEntry {
                        namespace: ns.to_string(),
                        key,
                        value: value?,
                        expires_at_ms,
                    })
                })
                .collect();
            moved += entries.len();
            self.write_records(entries.iter().collect(), Vec::new(), now)
                .await?;
        }
        self.exec(st::UPSERT_META, (st::LEGACY_STATE_MOVED, now.to_string()))
            .await?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_partition() {
        // A conversion record: [app, actor, hit_ts_ms, hit_id, event_id], 2024-06-01T10:00:00Z.
        let key = r#"["shop","u1",1717236000000,"h1","e1"]"#;
        assert_eq!(
            partition_of(key),
            ("shop".to_string(), "2024-06-01".to_string())
        );
        // Anything else: the namespace's undated partition.
        for key in [
            "fp1/a",
            r#"["shop","fp"]"#,
            r#"["shop","u1","not a time"]"#,
            r#"[1,"u1",1717236000000]"#,
            "[\"broken",
            r#"["shop","u1",99999999999999999]"#,
        ] {
            assert_eq!(partition_of(key), (String::new(), String::new()), "{key}");
        }
    }

    #[test]
    fn a_prefix_names_an_app_only_when_whole() {
        assert_eq!(app_of_prefix(r#"["shop","#).as_deref(), Some("shop"));
        assert_eq!(app_of_prefix(r#"["a\"b","#).as_deref(), Some("a\"b"));
        assert_eq!(app_of_prefix(r#"["shop""#), None);
        assert_eq!(app_of_prefix(r#"["sh"#), None);
        assert_eq!(app_of_prefix(""), None);
        assert_eq!(app_of_prefix("fp1/"), None);
    }
}
