//! One partition's batch: messages folded in offset order into count increments, conversions, pending
//! state changes and dead letters, then turned into one [`facts::SpeedBatch`] that the store applies
//! atomically together with the next offset.
//!
//! Pending buckets of the keys a batch touches are read from the store once per batch (with the seen ids,
//! two reads in all) and written back (or deleted when empty) with the batch: the result does not depend
//! on where batch boundaries fall.
//!
//! Copies are dropped first: a valid message whose (app, hit id) or (app, event id) is in the store's
//! seen-id state ([`facts::StateReader::seen_by`]) or earlier in the same batch touches nothing — no count,
//! no attribution, no raw row — and is counted in [`BatchSummary::duplicates`]. The ids a batch applies are
//! written with it ([`SpeedBatch::seen_ids`], in the batch's own transaction on SQLite), so a crash or a
//! rebalance can neither forget an id that was counted nor remember one that was not.

use std::collections::{BTreeMap, HashMap, HashSet};

use facts::{
    DailyCountFact, Day, IdKind, SeenBy, SeenEntry, SeenId, SpeedBatch, StateEntry,
    StreamPartition, StreamStore,
};

use crate::attribution::{Bucket, Conversion};
use crate::config::AttributionConfig;
use crate::counts::{count_conversion, count_message, Counts};
use crate::deadletter::DeadLetter;
use crate::fingerprint::fingerprint;
use crate::message::{Message, PoisonReason};
use crate::StreamError;

/// State namespace of the pending hits/events buckets, keyed `["app_id","fingerprint"]`.
pub const NS_PENDING: &str = "pending";
/// State namespace of conversion records (`tracking.conversions` rows), keyed
/// `["app_id","actor_id",hit_ts_ms,"hit_id"]`, value: the [`Conversion`] as JSON. Kept forever.
pub const NS_CONVERSION: &str = "conversion";
/// State namespace of dead-letter counters, keyed `["topic",partition,"reason"]`, value: decimal count.
pub const NS_DEADLETTER: &str = "deadletter";
/// What a batch did, for metrics, logs and the dead-letter sink.
#[derive(Debug, Clone, Default)]
pub struct BatchSummary {
    pub messages: u64,
    pub valid: u64,
    pub conversions: u64,
    /// Valid messages dropped because their id was applied before (or earlier in this batch).
    pub duplicates: u64,
    pub poison: BTreeMap<PoisonReason, u64>,
    pub dead_letters: Vec<DeadLetter>,
    /// Kafka timestamps (ms) of the batch's messages that had one (end-to-end latency).
    pub kafka_timestamps_ms: Vec<i64>,
    /// The valid messages in offset order, kept only after [`BatchBuilder::keep_messages`] (raw rows).
    pub kept: Vec<Message>,
}

/// Accumulates one batch of one partition.
pub struct BatchBuilder<'a> {
    store: &'a dyn StreamStore,
    cfg: &'a AttributionConfig,
    topic: String,
    partition: i32,
    first_offset: i64,
    next_offset: i64,
    /// Key → (app_id, bucket). Only keys this batch touched.
    buckets: HashMap<String, (String, Bucket)>,
    counts: Counts,
    conversions: Vec<Conversion>,
    /// Valid messages pushed with their offsets, in offset order, not folded in yet.
    valid: Vec<(i64, Message)>,
    /// Ids this batch applies, with their `ts` (for the expiry) and offset, in arrival order…
    seen_new: Vec<(SeenId, i64, i64)>,
    /// …and the same ids for lookups.
    seen_in_batch: HashSet<SeenId>,
    /// Wall clock at the start of the batch: what the store's expiry of seen ids is compared with.
    wall_now_ms: i64,
    summary: BatchSummary,
    keep: bool,
}

impl<'a> BatchBuilder<'a> {
    /// A batch that resumes at `first_offset` (the store's committed offset, or the partition's first
    /// offset when the store has none).
    pub fn new(
        store: &'a dyn StreamStore,
        cfg: &'a AttributionConfig,
        topic: &str,
        partition: i32,
        first_offset: i64,
    ) -> Self {
        BatchBuilder {
            store,
            cfg,
            topic: topic.to_string(),
            partition,
            first_offset,
            next_offset: first_offset,
            buckets: HashMap::new(),
            counts: Counts::new(),
            conversions: Vec::new(),
            valid: Vec::new(),
            seen_new: Vec::new(),
            seen_in_batch: HashSet::new(),
            wall_now_ms: chrono::Utc::now().timestamp_millis(),
            summary: BatchSummary::default(),
            keep: false,
        }
    }

    /// Keep a copy of every valid message in [`BatchSummary::kept`] (for the raw-row writer).
    pub fn keep_messages(&mut self) {
        self.keep = true;
    }

    pub fn len(&self) -> u64 {
        self.summary.messages
    }

    pub fn is_empty(&self) -> bool {
        self.summary.messages == 0
    }

    pub fn first_offset(&self) -> i64 {
        self.first_offset
    }

    /// The offset after the last message pushed.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Takes the message at `offset` (offsets must increase). Poison is recorded, not returned: the only
    /// error is an offset out of order. Valid messages are folded in by [`BatchBuilder::finish`].
    pub fn push(
        &mut self,
        offset: i64,
        payload: Option<&[u8]>,
        kafka_timestamp_ms: Option<i64>,
    ) -> Result<(), StreamError> {
        if offset < self.next_offset {
            return Err(StreamError::OffsetOrder {
                partition: self.partition,
                offset,
                expected: self.next_offset,
            });
        }
        self.next_offset = offset + 1;
        self.summary.messages += 1;
        if let Some(ts) = kafka_timestamp_ms {
            self.summary.kafka_timestamps_ms.push(ts);
        }
        let msg = match Message::parse(payload) {
            Ok(m) => m,
            Err(poison) => {
                *self.summary.poison.entry(poison.reason).or_default() += 1;
                self.summary.dead_letters.push(DeadLetter::new(
                    &self.topic,
                    self.partition,
                    offset,
                    payload,
                    &poison,
                ));
                return Ok(());
            }
        };
        self.summary.valid += 1;
        // Folded in `finish`, after one store read for the seen ids of the whole batch.
        self.valid.push((offset, msg));
        Ok(())
    }

    /// Folds one valid message in: dropped when a copy, else counted and matched on its pending key's
    /// bucket (`pending`: `None` for events that do not convert), read from `stored_buckets` on first use.
    fn fold(
        &mut self,
        (offset, msg): (i64, Message),
        seen: SeenId,
        stored: Option<SeenBy>,
        pending: Option<String>,
        stored_buckets: &mut HashMap<String, Option<Vec<u8>>>,
    ) -> Result<(), StreamError> {
        let applied_before = stored.is_some_and(|by| self.applied_before(&by));
        if applied_before || self.seen_in_batch.contains(&seen) {
            self.summary.duplicates += 1;
            return Ok(());
        }
        self.seen_in_batch.insert(seen.clone());
        self.seen_new.push((seen, msg.ts_ms(), offset));
        if self.keep {
            self.summary.kept.push(msg.clone());
        }
        count_message(&mut self.counts, &msg);
        let app_cfg = self.cfg.for_app(msg.app_id());
        let Some(key) = pending else {
            return Ok(());
        };
        let bucket = match self.buckets.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => &mut o.into_mut().1,
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored = stored_buckets.remove(v.key()).flatten();
                let bucket = match stored {
                    Some(bytes) => {
                        serde_json::from_slice(&bytes).map_err(|e| StreamError::CorruptState {
                            namespace: NS_PENDING,
                            key: v.key().clone(),
                            reason: e.to_string(),
                        })?
                    }
                    None => Bucket::default(),
                };
                &mut v.insert((msg.app_id().to_string(), bucket)).1
            }
        };
        let conversion = match &msg {
            Message::Hit(h) => bucket.on_hit(app_cfg, h),
            Message::Event(e) => bucket.on_conversion_event(app_cfg, e),
        };
        if let Some(c) = conversion {
            count_conversion(&mut self.counts, &c);
            self.conversions.push(c);
        }
        Ok(())
    }

    /// Whether the message that recorded an id was applied (see [`SeenBy`]): not when it lies in this
    /// partition at or past this batch's first offset (the committed offset), i.e. it was recorded by an
    /// attempt whose commit never landed.
    fn applied_before(&self, by: &SeenBy) -> bool {
        let leftover = by.topic == self.topic
            && by.partition == self.partition
            && by.offset >= self.first_offset;
        !leftover
    }

    /// The batch for the store, and its summary. `wall_now_ms` only sets how long the store keeps state.
    pub fn finish(
        mut self,
        group: &str,
        wall_now_ms: i64,
    ) -> Result<(SpeedBatch, BatchSummary), StreamError> {
        // Two store reads for the whole batch (each a lock on SQLite, which other partitions' transactions
        // hold): the seen ids and the pending buckets. Buckets are read at the wall clock, not at their
        // first message's ts: rule 1 (`Bucket::forget_before`) forgets the same items either way.
        let valid = std::mem::take(&mut self.valid);
        let keys: Vec<SeenId> = valid.iter().map(|(_, m)| seen_id(m)).collect();
        let stored = self.store.seen_by(&keys, self.wall_now_ms)?;
        let pending: Vec<Option<String>> = valid
            .iter()
            .map(|(_, msg)| {
                let touches = match msg {
                    Message::Hit(_) => true,
                    Message::Event(e) => self.cfg.for_app(&e.app_id).converts(&e.name),
                };
                touches.then(|| pending_key(msg.app_id(), &fingerprint(msg.ip(), msg.user_agent())))
            })
            .collect();
        let bucket_keys: Vec<String> = pending
            .iter()
            .flatten()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let owner = StreamPartition::new(group, &self.topic, self.partition);
        let buckets =
            self.store
                .get_owned_states(&owner, NS_PENDING, &bucket_keys, self.wall_now_ms)?;
        let mut stored_buckets: HashMap<String, Option<Vec<u8>>> =
            bucket_keys.into_iter().zip(buckets).collect();
        for (((msg, key), stored), pending) in valid.into_iter().zip(keys).zip(stored).zip(pending)
        {
            self.fold(msg, key, stored, pending, &mut stored_buckets)?;
        }
        let mut summary = self.summary;
        summary.conversions = self.conversions.len() as u64;
        let mut state_puts = Vec::new();
        let mut state_deletes = Vec::new();
        let mut keys: Vec<_> = self.buckets.into_iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, (app_id, bucket)) in keys {
            if bucket.is_empty() {
                state_deletes.push((NS_PENDING.to_string(), key));
                continue;
            }
            let app_cfg = self.cfg.for_app(&app_id);
            // Rule 1 decides what is forgotten; the store expiry is only garbage collection, so it is kept
            // at least a hit horizon of wall-clock time too (replays of old backlogs keep their state).
            let expires_at_ms = bucket
                .expires_at_ms(app_cfg)
                .max(wall_now_ms.saturating_add(app_cfg.hit_horizon_ms()));
            state_puts.push(StateEntry {
                namespace: NS_PENDING.to_string(),
                key,
                value: serde_json::to_vec(&bucket).map_err(StreamError::Encode)?,
                expires_at_ms,
            });
        }
        for c in &self.conversions {
            state_puts.push(StateEntry {
                namespace: NS_CONVERSION.to_string(),
                key: conversion_key(c),
                value: serde_json::to_vec(c).map_err(StreamError::Encode)?,
                expires_at_ms: i64::MAX,
            });
        }
        // Remembered until the later of `ts + dedupe_window` and `applied + dedupe_window` (wall clock),
        // so replaying an old backlog still drops its copies.
        let seen_ids = self
            .seen_new
            .into_iter()
            .map(|(id, ts_ms, offset)| {
                let window = self.cfg.for_app(&id.app_id).dedupe_window_ms();
                SeenEntry {
                    id,
                    expires_at_ms: ts_ms.max(wall_now_ms).saturating_add(window),
                    offset,
                }
            })
            .collect();
        for (reason, n) in &summary.poison {
            let key = deadletter_key(&self.topic, self.partition, *reason);
            let stored = self.store.get_owned_states(
                &owner,
                NS_DEADLETTER,
                std::slice::from_ref(&key),
                0,
            )?;
            let before = match stored.into_iter().next().flatten() {
                Some(bytes) => parse_counter(&bytes).ok_or_else(|| StreamError::CorruptState {
                    namespace: NS_DEADLETTER,
                    key: key.clone(),
                    reason: "not a decimal counter".into(),
                })?,
                None => 0,
            };
            state_puts.push(StateEntry {
                namespace: NS_DEADLETTER.to_string(),
                key,
                value: (before + n).to_string().into_bytes(),
                expires_at_ms: i64::MAX,
            });
        }
        let daily_counts = self
            .counts
            .into_iter()
            .map(|(k, count)| DailyCountFact {
                app_id: k.app_id,
                day: Day(k.day),
                metric: k.metric.to_string(),
                dimension: k.dimension.to_string(),
                value: k.value,
                count,
            })
            .collect();
        let batch = SpeedBatch {
            group: group.to_string(),
            topic: self.topic,
            partition: self.partition,
            first_offset: self.first_offset,
            next_offset: self.next_offset,
            daily_counts,
            funnel_steps: Vec::new(),
            state_puts,
            state_deletes,
            seen_ids,
            // Only this partition's consumer touches its pending buckets (the Kafka key is the app and
            // fingerprint) and its dead-letter counters.
            owned_namespaces: vec![NS_PENDING.to_string(), NS_DEADLETTER.to_string()],
        };
        Ok((batch, summary))
    }
}

pub(crate) fn parse_counter(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

pub fn pending_key(app_id: &str, fingerprint: &str) -> String {
    serde_json::json!([app_id, fingerprint]).to_string()
}

/// One record per conversion: the event id is part of the key, so two conversions of one click (which the
/// rule never makes, but records written before copies were dropped did) can never overwrite each other.
pub fn conversion_key(c: &Conversion) -> String {
    serde_json::json!([c.app_id, c.actor_id, c.hit_ts_ms, c.hit_id, c.event_id]).to_string()
}

/// The seen id of a valid message: ids are already lower-case hyphenated ([`Message::parse`]), so copies
/// that spell an id differently share it.
pub fn seen_id(msg: &Message) -> SeenId {
    match msg {
        Message::Hit(h) => SeenId::new(&h.app_id, IdKind::Hit, &h.hit_id),
        Message::Event(e) => SeenId::new(&e.app_id, IdKind::Event, &e.event_id),
    }
}

pub fn deadletter_key(topic: &str, partition: i32, reason: PoisonReason) -> String {
    serde_json::json!([topic, partition, reason.as_str()]).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::readback::{read_conversions, read_dead_letter_counts};
    use crate::reference;
    use facts::{StateReader, StreamSink};

    fn hit(i: usize, ts: i64, ip: &str) -> String {
        format!(
            r#"{{"type":"hit","app_id":"a1","hit_id":"00000000-0000-0000-0000-{i:012}","ts":{ts},"tracker":"t{}","ip":"{ip}","user_agent":"UA"}}"#,
            i % 3
        )
    }

    fn install(i: usize, ts: i64, ip: &str) -> String {
        format!(
            r#"{{"type":"event","app_id":"a1","actor_id":"u{i}","event_id":"10000000-0000-0000-0000-{i:012}","ts":{ts},"name":"install","ip":"{ip}","user_agent":"UA"}}"#
        )
    }

    /// Applying the same messages cut into batches of any size gives the same facts as the reference,
    /// and re-applying a batch changes nothing.
    #[test]
    fn batch_boundaries_do_not_matter() {
        let base = 1_795_168_800_000i64;
        let mut payloads = Vec::new();
        for i in 0..60 {
            let ip = format!("10.0.0.{}", i % 7);
            let t = base + (i as i64) * 1_800_000;
            payloads.push(if i % 3 == 0 {
                install(i, t + 600_000, &ip)
            } else {
                hit(i, t, &ip)
            });
            if i % 11 == 0 {
                payloads.push("garbage".to_string());
            }
        }
        let cfg = AttributionConfig::default();
        let want = reference::expected(payloads.iter().map(|p| Some(p.as_bytes())), &cfg);
        assert!(
            want.conversions.len() > 5,
            "the data must convert something"
        );
        for size in [1usize, 4, 17, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let store = facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display()))
                .unwrap();
            let mut offset = 0i64;
            for chunk in payloads.chunks(size) {
                let mut b = BatchBuilder::new(&store, &cfg, "t", 0, offset);
                for p in chunk {
                    b.push(offset, Some(p.as_bytes()), None).unwrap();
                    offset += 1;
                }
                // The wall clock, not the data's time: state is garbage-collected by the store's
                // clock, so data older than one hit horizon would otherwise be forgotten between batches.
                let (batch, _) = b
                    .finish("g", chrono::Utc::now().timestamp_millis())
                    .unwrap();
                assert!(store.apply_speed_batch(&batch).unwrap());
                assert!(
                    !store.apply_speed_batch(&batch).unwrap(),
                    "a replay is refused"
                );
            }
            let got: std::collections::BTreeSet<_> = read_conversions(&store, Some("a1"))
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, want.conversions, "batch size {size}");
            let dl = read_dead_letter_counts(&store, "g", "t").unwrap();
            assert_eq!(
                dl.get("bad_json").copied(),
                want.poison.get(&PoisonReason::BadJson).copied()
            );
            assert_eq!(
                store.committed_offsets("g", "t").unwrap(),
                vec![(0, payloads.len() as i64)]
            );
        }
    }

    /// Applies `payloads` to a fresh store in random batch cuts; returns the store and the summed summary.
    fn apply_in_random_batches(
        dir: &std::path::Path,
        name: &str,
        payloads: &[crate::synth::Produced],
        cfg: &AttributionConfig,
        seed: u64,
    ) -> (facts::Store, u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let store = facts::open_store(&format!("sqlite:{}", dir.join(name).display())).unwrap();
        let (mut offset, mut duplicates) = (0i64, 0u64);
        let mut rest = payloads;
        while !rest.is_empty() {
            let n = rng.random_range(1..=rest.len().min(40));
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            duplicates += apply_batch(&store, cfg, chunk, &mut offset);
        }
        (store, duplicates)
    }

    /// Applies `chunk` to `store` as one batch of partition 0 of topic "t" from `*offset` on (advanced past
    /// it); returns the batch's duplicates.
    pub(crate) fn apply_batch(
        store: &facts::Store,
        cfg: &AttributionConfig,
        chunk: &[crate::synth::Produced],
        offset: &mut i64,
    ) -> u64 {
        let mut b = BatchBuilder::new(store, cfg, "t", 0, *offset);
        for p in chunk {
            b.push(*offset, Some(&p.payload), None).unwrap();
            *offset += 1;
        }
        let (batch, summary) = b
            .finish("g", chrono::Utc::now().timestamp_millis())
            .unwrap();
        assert!(store.apply_speed_batch(&batch).unwrap());
        summary.duplicates
    }

    /// Every valid message copied 0–3 times (some copies spelling the id in upper case, some in the same
    /// batch, some batches later): the store holds the same counts and conversion records as with each
    /// message once, and every copy is counted as a duplicate.
    #[test]
    fn copies_count_once() {
        use crate::readback::read_counts;
        use crate::synth::{generate, with_copies, TrafficSpec};
        let dir = tempfile::tempdir().unwrap();
        let cfg = AttributionConfig::default();
        for seed in 0..4u64 {
            let once = generate(&TrafficSpec::new(seed, 80));
            let copied = with_copies(&once, seed, 3, 30);
            let want = reference::expected(once.iter().map(|p| Some(p.payload.as_slice())), &cfg);
            let want_copied =
                reference::expected(copied.iter().map(|p| Some(p.payload.as_slice())), &cfg);
            assert!(want_copied.duplicates > 50, "the workload must have copies");
            assert_eq!(want_copied.conversions, want.conversions);
            let (store, duplicates) =
                apply_in_random_batches(dir.path(), &format!("{seed}.db"), &copied, &cfg, seed);
            assert_eq!(duplicates, want_copied.duplicates, "seed {seed}");
            let got: std::collections::BTreeSet<_> = read_conversions(&store, None)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, want.conversions, "seed {seed}");
            assert!(!got.is_empty());
            let mut counts = read_counts(&store, "a1").unwrap();
            counts.extend(read_counts(&store, "a2").unwrap());
            assert_eq!(counts, want.counts, "seed {seed}");
            let seen = store
                .count_seen(chrono::Utc::now().timestamp_millis())
                .unwrap();
            assert_eq!(
                seen,
                Some(want.valid),
                "one remembered id per distinct message"
            );
        }
    }

    /// A batch that was built but never applied (the process died before its transaction) remembers no
    /// id: its messages count when they are consumed again.
    #[test]
    fn an_unapplied_batch_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
        let cfg = AttributionConfig::default();
        let now = chrono::Utc::now().timestamp_millis();
        let msgs = [hit(1, now, "10.0.0.1"), install(1, now + 1000, "10.0.0.1")];
        let build = |store: &facts::Store| {
            let mut b = BatchBuilder::new(store, &cfg, "t", 0, 0);
            for (o, m) in msgs.iter().enumerate() {
                b.push(o as i64, Some(m.as_bytes()), None).unwrap();
            }
            b.finish("g", now).unwrap()
        };
        let (_lost, first) = build(&store);
        assert_eq!((first.duplicates, first.conversions), (0, 1));
        let (batch, again) = build(&store);
        assert_eq!((again.duplicates, again.conversions), (0, 1));
        assert!(store.apply_speed_batch(&batch).unwrap());
        // Applied: the same messages at later offsets are copies now.
        let mut b = BatchBuilder::new(&store, &cfg, "t", 0, 2);
        for (o, m) in msgs.iter().enumerate() {
            b.push(2 + o as i64, Some(m.as_bytes()), None).unwrap();
        }
        let (batch, summary) = b.finish("g", now).unwrap();
        assert_eq!((summary.duplicates, summary.conversions), (2, 0));
        assert!(batch.daily_counts.is_empty(), "a copy counts nothing");
    }

    /// A store without transactions (CQL) may keep the seen ids of a batch that crashed before its offset
    /// was written: the retry at the same offset applies those messages again instead of dropping them,
    /// while ids of an earlier, committed batch still make copies.
    #[test]
    fn ids_left_by_an_uncommitted_attempt_are_not_copies() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
        let cfg = AttributionConfig::default();
        let now = chrono::Utc::now().timestamp_millis();
        let (h1, h2) = (hit(1, now, "10.0.0.1"), hit(2, now, "10.0.0.2"));
        // Offsets 0..1 committed with h1.
        let mut b = BatchBuilder::new(&store, &cfg, "t", 0, 0);
        b.push(0, Some(h1.as_bytes()), None).unwrap();
        let (batch, _) = b.finish("g", now).unwrap();
        assert!(store.apply_speed_batch(&batch).unwrap());
        // An attempt at offsets 1..3 (h1 again, h2) whose seen ids reached the store but not its offset:
        // simulated by writing only its ids, as another consumer group's batch (group g's offset stays).
        let mut b = BatchBuilder::new(&store, &cfg, "t", 0, 1);
        b.push(1, Some(h1.as_bytes()), None).unwrap();
        b.push(2, Some(h2.as_bytes()), None).unwrap();
        let (partial, summary) = b.finish("g", now).unwrap();
        assert_eq!(summary.duplicates, 1);
        let partial = SpeedBatch {
            group: "crashed".into(),
            topic: partial.topic,
            partition: partial.partition,
            first_offset: partial.first_offset,
            next_offset: partial.next_offset,
            seen_ids: partial.seen_ids,
            ..SpeedBatch::default()
        };
        assert!(store.apply_speed_batch(&partial).unwrap());
        assert_eq!(store.committed_offsets("g", "t").unwrap(), vec![(0, 1)]);
        // The retry of offsets 1..3: h1 is still a copy (committed at offset 0), h2 is not.
        let mut b = BatchBuilder::new(&store, &cfg, "t", 0, 1);
        b.push(1, Some(h1.as_bytes()), None).unwrap();
        b.push(2, Some(h2.as_bytes()), None).unwrap();
        let (batch, summary) = b.finish("g", now).unwrap();
        assert_eq!((summary.duplicates, summary.valid), (1, 2));
        assert_eq!(batch.daily_counts.iter().map(|c| c.count).sum::<i64>(), 1);
        assert!(store.apply_speed_batch(&batch).unwrap());
        // Committed now: a later copy of h2 is dropped.
        let mut b = BatchBuilder::new(&store, &cfg, "t", 0, 3);
        b.push(3, Some(h2.as_bytes()), None).unwrap();
        assert_eq!(b.finish("g", now).unwrap().1.duplicates, 1);
    }

    /// The documented edge: a copy that arrives after its id's entry expired (the dedupe window past both
    /// the id's `ts` and when it was applied) is counted again.
    #[test]
    fn a_copy_after_the_window_counts_again() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
        let mut cfg = AttributionConfig::default();
        cfg.defaults.dedupe_window_ms = Some(1_000);
        let ts = chrono::Utc::now().timestamp_millis() - 3 * 86_400_000;
        let msg = hit(1, ts, "10.0.0.1");
        let apply = |offset: i64| {
            let mut b = BatchBuilder::new(&store, &cfg, "t", 0, offset);
            b.push(offset, Some(msg.as_bytes()), None).unwrap();
            let (batch, summary) = b
                .finish("g", chrono::Utc::now().timestamp_millis())
                .unwrap();
            assert!(store.apply_speed_batch(&batch).unwrap());
            summary.duplicates
        };
        assert_eq!(apply(0), 0);
        assert_eq!(apply(1), 1, "within the window (wall clock past an old ts)");
        std::thread::sleep(std::time::Duration::from_millis(1_200));
        assert_eq!(apply(2), 0, "after the window: counted again");
    }

    /// Random traffic (collisions, device ids, both arrival orders, poison), random windows and policy,
    /// random batch cuts: the store ends up with exactly the reference's conversions and counts.
    #[test]
    fn random_traffic_matches_the_brute_force_reference() {
        use crate::config::{AppAttribution, Policy};
        use crate::readback::read_counts;
        use crate::synth::{generate, TrafficSpec};
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let mut total_conversions = 0;
        let mut late_matches = 0;
        for seed in 0..12u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let h = 3_600_000;
            let app = |rng: &mut rand::rngs::StdRng| AppAttribution {
                policy: if rng.random_bool(0.5) {
                    Policy::FirstClick
                } else {
                    Policy::LastClick
                },
                device_window_ms: rng.random_range(6..48) * h,
                fingerprint_window_ms: rng.random_range(1..12) * h,
                conversion_events: vec!["install".into(), "open".into()],
                late_arrival_ms: rng.random_range(0..6) * h,
                dedupe_window_ms: None,
            };
            let mut cfg = AttributionConfig {
                defaults: app(&mut rng),
                ..Default::default()
            };
            cfg.apps.insert("a2".into(), app(&mut rng));
            let mut spec = TrafficSpec::new(seed, 60);
            spec.disorder = 0.4;
            let traffic = generate(&spec);
            let want =
                reference::expected(traffic.iter().map(|p| Some(p.payload.as_slice())), &cfg);
            let (store, _) =
                apply_in_random_batches(dir.path(), &format!("{seed}.db"), &traffic, &cfg, seed);
            let got: std::collections::BTreeSet<_> = read_conversions(&store, None)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(got, want.conversions, "seed {seed}");
            let mut counts = read_counts(&store, "a1").unwrap();
            counts.extend(read_counts(&store, "a2").unwrap());
            assert_eq!(counts, want.counts, "seed {seed}");
            let dl = read_dead_letter_counts(&store, "g", "t").unwrap();
            let want_dl: BTreeMap<String, u64> = want
                .poison
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect();
            assert_eq!(dl, want_dl, "seed {seed}");
            total_conversions += got.len();
            // A conversion whose click was delivered after its event.
            late_matches += got
                .iter()
                .filter(|c| {
                    let pos = |id: &str| {
                        traffic
                            .iter()
                            .position(|p| String::from_utf8_lossy(&p.payload).contains(id))
                    };
                    pos(&c.hit_id) > pos(&c.event_id)
                })
                .count();
        }
        assert!(
            total_conversions > 50,
            "the traffic must convert: {total_conversions}"
        );
        assert!(
            late_matches > 0,
            "some clicks must arrive after their event"
        );
    }
}
