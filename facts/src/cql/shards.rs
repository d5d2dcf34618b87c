//! [`ShardStore`] on CQL. A partial's body is written first, in chunks of at most
//! [`st::PARTIAL_CHUNK_BYTES`] under its attempt (one partition per chunk), then its head row — one
//! single-row upsert, so readers see the old attempt or the new one whole; then the chunks of the attempt
//! it replaced are deleted. Heads and chunks expire after [`st::PARTIAL_TTL_S`]. The identity check
//! reads the other shards' heads before writing (two shards of different runs started under one name at
//! the same instant can both pass it; finalizing then refuses their mix, as it checks the heads again).

use super::{CqlStore, Fut};
use crate::cql_statements as st;
use crate::error::{CqlError, FactsError};
use crate::model::RunId;
use crate::shards::{conflict, Finalized, PartialHead, ShardPartial, ShardStore};

/// The values of one [`st::INSERT_PARTIAL_CHUNK`]: run name, shard, attempt, chunk number, bytes, TTL.
type ChunkRow<'a> = (&'a str, i32, &'a str, i32, Vec<u8>, i32);

/// A row of [`st::SELECT_PARTIAL_HEADS`].
type HeadRow = (i32, i32, String, String, String, i64, i32, i64);

fn int(what: &'static str, v: u32) -> Result<i32, FactsError> {
    i32::try_from(v).map_err(|_| FactsError::Invalid {
        what,
        value: v.to_string(),
    })
}

fn head_of(run_name: &str, r: HeadRow) -> Result<PartialHead, FactsError> {
    let (shard, shards, identity, attempt, inputs, body_bytes, _, written_at_ms) = r;
    let nat = |what: &'static str, v: i32| {
        u32::try_from(v).map_err(|_| FactsError::Invalid {
            what,
            value: v.to_string(),
        })
    };
    Ok(PartialHead {
        run_name: run_name.to_string(),
        shard: nat("shard number", shard)?,
        shards: nat("shard count", shards)?,
        identity: serde_json::from_str(&identity)?,
        attempt,
        inputs: serde_json::from_str(&inputs)?,
        body_bytes: body_bytes.max(0) as u64,
        written_at_ms,
    })
}

impl ShardStore for CqlStore {
    fn put_partial(&self, p: &ShardPartial) -> Result<(), FactsError> {
        let partial = p.clone();
        self.block(move |inner| -> Fut<()> {
            Box::pin(async move {
                let h = &partial.head;
                let (name, shard) = (h.run_name.as_str(), int("shard number", h.shard)?);
                let rows: Vec<HeadRow> = inner.rows(st::SELECT_PARTIAL_HEADS, (name,)).await?;
                let mut previous = None;
                for r in rows {
                    let chunks = r.6;
                    let other = head_of(name, r)?;
                    if other.shard == h.shard {
                        previous = Some((other.attempt, chunks));
                    } else if let Some(e) = conflict(h, &other) {
                        return Err(e);
                    }
                }
                let chunks: Vec<ChunkRow<'_>> = partial
                    .body
                    .chunks(st::PARTIAL_CHUNK_BYTES)
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            name,
                            shard,
                            h.attempt.as_str(),
                            i as i32,
                            c.to_vec(),
                            st::PARTIAL_TTL_S,
                        )
                    })
                    .collect();
                let n = i32::try_from(chunks.len()).map_err(|_| FactsError::Invalid {
                    what: "partial size (chunks)",
                    value: chunks.len().to_string(),
                })?;
                inner.exec_all(st::INSERT_PARTIAL_CHUNK, chunks).await?;
                inner
                    .exec(
                        st::UPSERT_PARTIAL_HEAD,
                        (
                            name,
                            shard,
                            int("shard count", h.shards)?,
                            serde_json::to_string(&h.identity)?,
                            h.attempt.as_str(),
                            serde_json::to_string(&h.inputs)?,
                            partial.body.len() as i64,
                            n,
                            h.written_at_ms,
                            st::PARTIAL_TTL_S,
                        ),
                    )
                    .await?;
                if let Some((old, old_chunks)) = previous.filter(|(a, _)| *a != h.attempt) {
                    let keys: Vec<(&str, i32, &str, i32)> = (0..old_chunks)
                        .map(|i| (name, shard, old.as_str(), i))
                        .collect();
                    inner.exec_all(st::DELETE_PARTIAL_CHUNK, keys).await?;
                }
                Ok(())
            })
        })
    }

    fn partial_heads(&self, run_name: &str) -> Result<Vec<PartialHead>, FactsError> {
        let name = run_name.to_string();
        self.block(move |inner| -> Fut<Vec<PartialHead>> {
            Box::pin(async move {
                let rows: Vec<HeadRow> = inner
                    .rows(st::SELECT_PARTIAL_HEADS, (name.as_str(),))
                    .await?;
                let mut heads = rows
                    .into_iter()
                    .map(|r| head_of(&name, r))
                    .collect::<Result<Vec<_>, _>>()?;
                heads.sort_by_key(|h| h.shard);
                Ok(heads)
            })
        })
    }

    fn partial_body(
        &self,
        run_name: &str,
        shard: u32,
        attempt: &str,
    ) -> Result<Option<Vec<u8>>, FactsError> {
        let (name, attempt) = (run_name.to_string(), attempt.to_string());
        let shard = int("shard number", shard)?;
        self.block(move |inner| -> Fut<Option<Vec<u8>>> {
            Box::pin(async move {
                let head: Option<(String, i64, i32)> = inner
                    .first(st::SELECT_PARTIAL_HEAD, (name.as_str(), shard))
                    .await?;
                let Some((_, bytes, chunks)) = head.filter(|h| h.0 == attempt) else {
                    return Ok(None);
                };
                let mut body = Vec::with_capacity(bytes.max(0) as usize);
                for i in 0..chunks {
                    let chunk: Option<(Vec<u8>,)> = inner
                        .first(st::SELECT_PARTIAL_CHUNK, (name.as_str(), shard, attempt.as_str(), i))
                        .await?;
                    match chunk {
                        Some((data,)) => body.extend_from_slice(&data),
                        // Replaced (its chunks deleted) between reading the head and the chunk.
                        None => return Ok(None),
                    }
                }
                if body.len() as i64 != bytes {
                    return Err(CqlError::Decode {
                        reason: format!(
                            "partial of shard {shard} of {name:?} (attempt {attempt}): {} bytes in its chunks, {bytes} in its head",
                            body.len()
                        ),
                    }
                    .into());
                }
                Ok(Some(body))
            })
        })
    }

    fn finalized(&self, run_name: &str) -> Result<Option<Finalized>, FactsError> {
        let name = run_name.to_string();
        self.block(move |inner| -> Fut<Option<Finalized>> {
            Box::pin(async move {
                let row: Option<(i64, String, i64)> =
                    inner.first(st::SELECT_SHARD_RUN, (name.as_str(),)).await?;
                Ok(row.map(|(run, attempts, at_ms)| Finalized {
                    run: RunId(run),
                    attempts,
                    at_ms,
                }))
            })
        })
    }

    fn record_finalized(&self, run_name: &str, f: &Finalized) -> Result<(), FactsError> {
        let (name, f) = (run_name.to_string(), f.clone());
        self.block(move |inner| -> Fut<()> {
            Box::pin(async move {
                inner
                    .exec(
                        st::UPSERT_SHARD_RUN,
                        (name.as_str(), f.run.0, f.attempts.as_str(), f.at_ms),
                    )
                    .await
            })
        })
    }
}
