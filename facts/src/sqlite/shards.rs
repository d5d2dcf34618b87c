//! [`ShardStore`] on SQLite: `shard_partials` (one row per run name and shard, replaced by a retry in one
//! transaction that first checks the other shards' identity) and `shard_runs` (the last finalization).

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{now_ms, to_i64, SqliteStore};
use crate::error::FactsError;
use crate::model::RunId;
use crate::shards::{conflict, Finalized, PartialHead, ShardPartial, ShardStore};

const HEAD_COLUMNS: &str =
    "run_name, shard, shards, identity, attempt, inputs, length(body), written_at_ms";

fn head(r: &rusqlite::Row<'_>) -> rusqlite::Result<(PartialHead, String, String)> {
    Ok((
        PartialHead {
            run_name: r.get(0)?,
            shard: r.get(1)?,
            shards: r.get(2)?,
            identity: serde_json::Value::Null,
            attempt: r.get(4)?,
            inputs: serde_json::Value::Null,
            body_bytes: r.get::<_, i64>(6)?.max(0) as u64,
            written_at_ms: r.get(7)?,
        },
        r.get(3)?,
        r.get(5)?,
    ))
}

fn heads(conn: &rusqlite::Connection, run_name: &str) -> Result<Vec<PartialHead>, FactsError> {
    let rows = conn
        .prepare(&format!(
            "SELECT {HEAD_COLUMNS} FROM shard_partials WHERE run_name = ?1 ORDER BY shard"
        ))?
        .query_map([run_name], head)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut h, identity, inputs)| {
            h.identity = serde_json::from_str(&identity)?;
            h.inputs = serde_json::from_str(&inputs)?;
            Ok(h)
        })
        .collect()
}

impl ShardStore for SqliteStore {
    fn put_partial(&self, p: &ShardPartial) -> Result<(), FactsError> {
        let h = &p.head;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(e) = heads(&tx, &h.run_name)?
            .iter()
            .filter(|o| o.shard != h.shard)
            .find_map(|o| conflict(h, o))
        {
            return Err(e);
        }
        tx.execute(
            "INSERT OR REPLACE INTO shard_partials
             (run_name, shard, shards, identity, attempt, inputs, body, written_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                h.run_name,
                h.shard,
                h.shards,
                serde_json::to_string(&h.identity)?,
                h.attempt,
                serde_json::to_string(&h.inputs)?,
                p.body,
                if h.written_at_ms > 0 {
                    h.written_at_ms
                } else {
                    now_ms()
                },
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn partial_heads(&self, run_name: &str) -> Result<Vec<PartialHead>, FactsError> {
        heads(&self.lock(), run_name)
    }

    fn partial_body(
        &self,
        run_name: &str,
        shard: u32,
        attempt: &str,
    ) -> Result<Option<Vec<u8>>, FactsError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT body FROM shard_partials WHERE run_name = ?1 AND shard = ?2 AND attempt = ?3",
                params![run_name, shard, attempt],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn finalized(&self, run_name: &str) -> Result<Option<Finalized>, FactsError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT run_id, attempts, finalized_at_ms FROM shard_runs WHERE run_name = ?1",
                [run_name],
                |r| {
                    Ok(Finalized {
                        run: RunId(r.get(0)?),
                        attempts: r.get(1)?,
                        at_ms: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn record_finalized(&self, run_name: &str, f: &Finalized) -> Result<(), FactsError> {
        self.lock().execute(
            "INSERT OR REPLACE INTO shard_runs (run_name, run_id, attempts, finalized_at_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                run_name,
                f.run.0,
                f.attempts,
                to_i64("time", f.at_ms.max(0) as u64)?
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn partial(shard: u32, shards: u32, now: i64, body: &[u8]) -> ShardPartial {
        ShardPartial {
            head: PartialHead {
                run_name: "nightly".into(),
                shard,
                shards,
                identity: json!({"funnels": [["f", "v1"]], "now_s": now}),
                attempt: format!("a{shard}-{}", body.len()),
                inputs: json!({"spans": [["0", "10"]]}),
                body_bytes: 0,
                written_at_ms: 5,
            },
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_retry_replaces_its_partial_and_a_different_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db")).unwrap();
        store.put_partial(&partial(1, 2, 100, b"one")).unwrap();
        store.put_partial(&partial(2, 2, 100, b"two")).unwrap();
        store
            .put_partial(&partial(1, 2, 100, b"one again"))
            .unwrap();
        let heads = store.partial_heads("nightly").unwrap();
        let got: Vec<_> = heads
            .iter()
            .map(|h| (h.shard, h.attempt.as_str(), h.body_bytes))
            .collect();
        assert_eq!(got, [(1, "a1-9", 9), (2, "a2-3", 3)]);
        assert_eq!(heads[0].inputs, json!({"spans": [["0", "10"]]}));
        assert_eq!(
            store.partial_body("nightly", 1, "a1-9").unwrap().as_deref(),
            Some(&b"one again"[..])
        );
        // The replaced attempt is gone.
        assert_eq!(store.partial_body("nightly", 1, "a1-3").unwrap(), None);

        let err = store.put_partial(&partial(2, 2, 200, b"x")).unwrap_err();
        // Shard 2 itself may change (its own retry), but not against shard 1.
        let msg = err.to_string();
        assert!(msg.contains("now_s (200 here, 100 there)"), "{msg}");
        let err = store.put_partial(&partial(3, 3, 100, b"x")).unwrap_err();
        assert!(
            err.to_string().contains("shard count (3 here, 2 there)"),
            "{err}"
        );
        assert_eq!(store.partial_heads("nightly").unwrap().len(), 2);
        assert!(store.partial_heads("other").unwrap().is_empty());

        assert_eq!(store.finalized("nightly").unwrap(), None);
        let f = Finalized {
            run: RunId(7),
            attempts: "a1-9,a2-3".into(),
            at_ms: 9,
        };
        store.record_finalized("nightly", &f).unwrap();
        assert_eq!(store.finalized("nightly").unwrap(), Some(f));
    }
}
