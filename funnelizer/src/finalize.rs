//! Sharded runs in the fact store: a shard stores its partial aggregate ([`put_partial`], atomic; a retry
//! replaces it), and once every shard of the run has one, they are merged and published as one ordinary
//! batch run ([`finalize`]) — by the shard that completes the set, or explicitly (`funnel run --finalize
//! R`). The merge is exact (the partials are lossless, [`Aggregator::encode_partial`]): the published
//! facts equal those of one process reading everything, whatever the order and retries of the shards.
//!
//! Before merging, the partials' token spans must cover the ring exactly once (no gap, no overlap) and
//! their identity (funnels, `--now`, partitioner, …) must match the funnel set given. A finalization
//! records which attempts it merged: finalizing the same attempts again publishes nothing new.

use facts::{BatchPublisher, FactsError, Finalized, PartialHead, RunId, ShardPartial, ShardStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sstable_reader::token_ring::{self, TokenSpan};
use sstable_reader::Partitioner;

use crate::aggregate::Aggregator;
use crate::batch::{publish, Published};
use crate::definition::FunnelSet;
use crate::error::Error;
use crate::inputs::{FunnelLevels, RunInputs};
use crate::shard::ShardSpec;

/// What every shard of one run must share (stored with each partial; see [`facts::PartialHead`]).
pub fn identity(
    set: &FunnelSet,
    spec: &ShardSpec,
    p: Partitioner,
    now_s: i64,
    snapshot: &str,
    data: &[String],
) -> Value {
    let funnels: Vec<(&str, &str)> = set
        .funnels
        .iter()
        .map(|f| (f.id.as_str(), f.version.as_str()))
        .collect();
    let mut id = serde_json::json!({
        "funnels": funnels,
        "now_s": now_s,
        "partitioner": p.name(),
        "snapshot": snapshot,
        "ranges": if spec.token_ranges.is_some() { "file" } else { "equal" },
    });
    // Equal parts of the ring read the same inputs; shards of explicit ranges (co-located, one node's
    // data each) read each their own, and the ring coverage is checked when they are merged.
    if spec.token_ranges.is_none() {
        id["data"] = serde_json::json!(data);
    }
    id
}

/// What a shard records of itself with its partial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardInputs {
    /// Its token spans (`[lo, hi)` of unsigned tokens, as decimal strings).
    pub spans: Vec<(String, String)>,
    /// What it read.
    pub run: RunInputs,
    /// Actors it evaluated.
    pub actors: u64,
    /// On-disk bytes it read.
    pub disk_bytes_read: u64,
}

impl ShardInputs {
    /// The spans as numbers (`None`: not numbers).
    fn token_spans(&self) -> Option<Vec<TokenSpan>> {
        self.spans
            .iter()
            .map(|(lo, hi)| {
                Some(TokenSpan {
                    lo: lo.parse().ok()?,
                    hi: hi.parse().ok()?,
                })
            })
            .collect()
    }
}

/// The spans in their stored form.
pub fn span_strings(spans: &[TokenSpan]) -> Vec<(String, String)> {
    spans
        .iter()
        .map(|s| (s.lo.to_string(), s.hi.to_string()))
        .collect()
}

/// What a shard's run did with its partial.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardOutcome {
    /// The sharded run.
    pub run_name: String,
    /// This shard.
    pub shard: u32,
    /// Shards of the run.
    pub shards: u32,
    /// Its token spans.
    pub spans: Vec<TokenSpan>,
    /// Bytes of the partial it stored.
    pub partial_bytes: u64,
    /// Whether the run was finalized, and how.
    pub finalize: Finalize,
}

/// The result of trying to finalize a sharded run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Finalize {
    /// Shards without a partial yet.
    Incomplete {
        /// Their numbers.
        missing: Vec<u32>,
    },
    /// Merged and published as a new batch run.
    Published(Published),
    /// These very partials were published before, as this run.
    AlreadyPublished(RunId),
    /// A newer run was published for the keys meanwhile (e.g. another shard finalizing the same set at
    /// the same moment): this merge was not published over it.
    Superseded {
        /// The run that was not published.
        run: i64,
        /// The newer run.
        current: i64,
    },
    /// A retry of this shard replaced its partial while this finalization read the partials: not
    /// published here — the retry finalizes with its own partial.
    Overtaken {
        /// The shard that was run again.
        shard: u32,
    },
}

fn shard_store(store: &dyn BatchPublisher) -> Result<&dyn ShardStore, Error> {
    store.shard_store().ok_or_else(|| Error::Shard {
        message: "this fact store cannot keep the partial facts of sharded runs".into(),
    })
}

/// Stores one shard's partial aggregate (replacing an earlier attempt of the same shard), then finalizes
/// the run if every shard's partial is present.
pub fn put_partial(
    store: &dyn BatchPublisher,
    set: &FunnelSet,
    spec: &ShardSpec,
    identity: Value,
    aggregate: &Aggregator,
    inputs: &ShardInputs,
) -> Result<(u64, Finalize), Error> {
    let shards = shard_store(store)?;
    let body = aggregate.encode_partial(set);
    let written_at_ms = chrono::Utc::now().timestamp_millis();
    let attempt = format!(
        "{}-{}-{}",
        written_at_ms,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let bytes = body.len() as u64;
    shards.put_partial(&ShardPartial {
        head: PartialHead {
            run_name: spec.run_name.clone(),
            shard: spec.index,
            shards: spec.count,
            identity,
            attempt,
            inputs: serde_json::to_value(inputs).map_err(FactsError::from)?,
            body_bytes: bytes,
            written_at_ms,
        },
        body,
    })?;
    Ok((bytes, finalize(store, set, &spec.run_name)?))
}

/// Merges the partials of `run_name` and publishes them as one batch run, when every shard has one.
pub fn finalize(
    store: &dyn BatchPublisher,
    set: &FunnelSet,
    run_name: &str,
) -> Result<Finalize, Error> {
    let shards = shard_store(store)?;
    let heads = shards.partial_heads(run_name)?;
    let partial = |message: String| Error::Partial {
        run_name: run_name.to_string(),
        message,
    };
    let Some(first) = heads.first() else {
        return Err(partial(
            "no shard has stored partial facts under this run name".into(),
        ));
    };
    let count = first.shards;
    let missing: Vec<u32> = (1..=count)
        .filter(|i| !heads.iter().any(|h| h.shard == *i))
        .collect();
    if !missing.is_empty() {
        return Ok(Finalize::Incomplete { missing });
    }
    let funnels: Vec<(String, String)> = set
        .funnels
        .iter()
        .map(|f| (f.id.clone(), f.version.clone()))
        .collect();
    let theirs: Option<Vec<(String, String)>> =
        serde_json::from_value(first.identity["funnels"].clone()).ok();
    if theirs.as_ref() != Some(&funnels) {
        return Err(partial(format!(
            "the shards computed the funnels {}, not those of the funnel set given ({})",
            first.identity["funnels"],
            serde_json::json!(funnels)
        )));
    }
    let partitioner = first.identity["partitioner"]
        .as_str()
        .and_then(Partitioner::from_class)
        .ok_or_else(|| {
            partial(format!(
                "unknown partitioner {}",
                first.identity["partitioner"]
            ))
        })?;
    let inputs: Vec<ShardInputs> = heads
        .iter()
        .map(|h| {
            serde_json::from_value(h.inputs.clone())
                .map_err(|e| partial(format!("shard {}: inputs: {e}", h.shard)))
        })
        .collect::<Result<_, _>>()?;
    let mut spans = Vec::new();
    for (h, i) in heads.iter().zip(&inputs) {
        let s = i
            .token_spans()
            .ok_or_else(|| partial(format!("shard {}: token spans are not numbers", h.shard)))?;
        spans.extend(s.into_iter().map(|s| (s, h.shard)));
    }
    spans.sort();
    if let Some(w) = spans.windows(2).find(|w| w[1].0.lo < w[0].0.hi) {
        return Err(partial(format!(
            "the token ranges of shards {} and {} overlap (tokens {}..{} and {}..{}): their actors would count twice",
            w[0].1, w[1].1, w[0].0.lo, w[0].0.hi, w[1].0.lo, w[1].0.hi
        )));
    }
    let joined = token_ring::normalize(spans.iter().map(|s| s.0).collect())
        .map_err(|(a, b)| partial(format!("token ranges {a:?} and {b:?} overlap")))?;
    if !token_ring::covers_ring(partitioner, &joined) {
        return Err(partial(format!(
            "the shards' token ranges leave parts of the ring unread (they cover {}): their actors would be missing",
            joined
                .iter()
                .map(|s| format!("{}..{}", s.lo, s.hi))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let attempts = heads
        .iter()
        .map(|h| h.attempt.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(done) = shards.finalized(run_name)? {
        if done.attempts == attempts {
            return Ok(Finalize::AlreadyPublished(done.run));
        }
    }
    let mut merged = Aggregator::new();
    for h in &heads {
        let Some(body) = shards.partial_body(run_name, h.shard, &h.attempt)? else {
            return Ok(Finalize::Overtaken { shard: h.shard });
        };
        merged
            .merge_partial(set, &body)
            .map_err(|e| partial(format!("shard {} (attempt {}): {e}", h.shard, h.attempt)))?;
    }
    let run_inputs = merged_inputs(set, &inputs, &merged, run_name, &heads);
    let now_s = inputs.first().map_or(0, |i| i.run.now_s);
    let json = serde_json::to_value(&run_inputs).unwrap_or_default();
    match publish(store, set, &merged, now_s * 1000, json) {
        Ok(published) => {
            shards.record_finalized(
                run_name,
                &Finalized {
                    run: published.run,
                    attempts,
                    at_ms: chrono::Utc::now().timestamp_millis(),
                },
            )?;
            Ok(Finalize::Published(published))
        }
        Err(Error::Store(FactsError::StaleRun { run, current, .. })) => {
            Ok(Finalize::Superseded { run, current })
        }
        Err(e) => Err(e),
    }
}

/// The inputs recorded with the finalized run: every shard's SSTables and paths, and per shard what it
/// read.
fn merged_inputs(
    set: &FunnelSet,
    shards: &[ShardInputs],
    merged: &Aggregator,
    run_name: &str,
    heads: &[PartialHead],
) -> RunInputs {
    let union = |f: &dyn Fn(&RunInputs) -> &Vec<String>| {
        let mut v: Vec<String> = shards.iter().flat_map(|s| f(&s.run).clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut inputs = RunInputs {
        data: union(&|r| &r.data),
        events: union(&|r| &r.events),
        conversions: union(&|r| &r.conversions),
        now_s: shards.first().map_or(0, |s| s.run.now_s),
        apps: merged.apps(),
        levels: FunnelLevels::of_set(set),
        ..RunInputs::default()
    };
    inputs.sharded = Some(serde_json::json!({
        "run_name": run_name,
        "shards": heads.iter().zip(shards).map(|(h, s)| serde_json::json!({
            "shard": h.shard,
            "attempt": h.attempt,
            "spans": s.spans,
            "data": s.run.data,
            "actors": s.actors,
            "disk_bytes_read": s.disk_bytes_read,
            "partial_bytes": h.body_bytes,
            "written_at_ms": h.written_at_ms,
        })).collect::<Vec<_>>(),
    }));
    inputs
}
