//! The intended answer, by brute force: what the stream must have written after consuming a sequence of
//! messages, computed with none of the stream's machinery (no buckets, no pruning, no batches, no store).
//! Tests and the benchmark compare the real pipeline's facts against this.
//!
//! Input is the messages in arrival order. Conversions only depend on the order *within* one
//! (app, fingerprint) key, so partitions may be concatenated in any order provided producers keyed their
//! messages with [`crate::fingerprint::partition_key`].
//!
//! A valid message whose (app, hit id) or (app, event id) came before is a copy and is left out entirely
//! (the spec assumes every copy arrives within the dedupe window of its original).

use std::collections::{BTreeMap, BTreeSet};

use crate::attribution::{Conversion, MatchKind};
use crate::config::{AttributionConfig, Policy};
use crate::fingerprint::fingerprint;
use crate::message::{Message, PoisonReason, DAY_MS};

/// Everything the stream should have produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// `(app_id, day, metric, dimension, value)` → count.
    pub counts: BTreeMap<(String, i32, String, String, String), i64>,
    pub conversions: BTreeSet<Conversion>,
    pub poison: BTreeMap<PoisonReason, u64>,
    /// Valid messages, copies included.
    pub valid: u64,
    /// Valid messages left out as copies of an earlier id.
    pub duplicates: u64,
}

/// Computes [`Expected`] from raw payloads in arrival order.
pub fn expected<'a>(
    payloads: impl IntoIterator<Item = Option<&'a [u8]>>,
    cfg: &AttributionConfig,
) -> Expected {
    let mut out = Expected::default();
    let mut messages = Vec::new();
    let mut ids = BTreeSet::new();
    for p in payloads {
        match Message::parse(p) {
            Ok(m) => {
                out.valid += 1;
                let id = match &m {
                    Message::Hit(h) => (h.app_id.clone(), "hit", h.hit_id.clone()),
                    Message::Event(e) => (e.app_id.clone(), "event", e.event_id.clone()),
                };
                if ids.insert(id) {
                    messages.push(m);
                } else {
                    out.duplicates += 1;
                }
            }
            Err(poison) => *out.poison.entry(poison.reason).or_default() += 1,
        }
    }
    let day = |ts: i64| ts.div_euclid(DAY_MS) as i32;
    for m in &messages {
        let key = match m {
            Message::Hit(h) => (
                h.app_id.clone(),
                day(h.ts_ms),
                "hits".into(),
                "tracker".into(),
                h.tracker.clone(),
            ),
            Message::Event(e) => (
                e.app_id.clone(),
                day(e.ts_ms),
                "events".into(),
                "name".into(),
                e.name.clone(),
            ),
        };
        *out.counts.entry(key).or_default() += 1;
    }
    out.conversions = conversions(&messages, cfg);
    for c in &out.conversions {
        let key = (
            c.app_id.clone(),
            day(c.event_ts_ms),
            "conversions".into(),
            "tracker".into(),
            c.tracker.clone(),
        );
        *out.counts.entry(key).or_default() += 1;
    }
    out
}

/// All conversions of `messages` (arrival order), by the literal rule of [`crate::attribution`].
pub fn conversions(messages: &[Message], cfg: &AttributionConfig) -> BTreeSet<Conversion> {
    // The messages that touch each key, in arrival order.
    let mut keys: BTreeMap<(String, String), Vec<&Message>> = BTreeMap::new();
    for m in messages {
        let touches = match m {
            Message::Hit(_) => true,
            Message::Event(e) => cfg.for_app(&e.app_id).conversion_events.contains(&e.name),
        };
        if touches {
            keys.entry((m.app_id().to_string(), fingerprint(m.ip(), m.user_agent())))
                .or_default()
                .push(m);
        }
    }
    let mut out = BTreeSet::new();
    for ((app, _), seq) in keys {
        let app_cfg = cfg.for_app(&app);
        let horizon = |m: &Message| match m {
            Message::Hit(_) => {
                app_cfg.device_window_ms.max(app_cfg.fingerprint_window_ms)
                    + app_cfg.late_arrival_ms
            }
            Message::Event(_) => app_cfg.late_arrival_ms,
        };
        // Rule 2, written out again.
        let kind_of = |h: &Message, e: &Message| -> Option<MatchKind> {
            let (Message::Hit(h), Message::Event(e)) = (h, e) else {
                return None;
            };
            let (kind, w) = match (&h.device_id, &e.device_id) {
                (Some(a), Some(b)) if a != b => return None,
                (Some(_), Some(_)) => (MatchKind::Device, app_cfg.device_window_ms),
                _ => (MatchKind::Fingerprint, app_cfg.fingerprint_window_ms),
            };
            (h.ts_ms <= e.ts_ms && e.ts_ms <= h.ts_ms + w).then_some(kind)
        };
        let mut pending = vec![false; seq.len()];
        for now in 0..seq.len() {
            // An earlier item is still known at `now` if no message after it, up to and including this
            // one, is beyond its horizon.
            let alive = |i: usize, pending: &[bool]| {
                pending[i]
                    && seq[i + 1..=now]
                        .iter()
                        .all(|m| m.ts_ms() <= seq[i].ts_ms() + horizon(seq[i]))
            };
            let cur = seq[now];
            let is_hit = matches!(cur, Message::Hit(_));
            let mut candidates: Vec<(MatchKind, usize)> = Vec::new();
            for (i, item) in seq.iter().enumerate().take(now) {
                if !alive(i, &pending) {
                    continue;
                }
                let kind = if is_hit {
                    kind_of(cur, item)
                } else {
                    kind_of(item, cur)
                };
                if let Some(k) = kind {
                    candidates.push((k, i));
                }
            }
            let id = |m: &Message| match m {
                Message::Hit(h) => (h.ts_ms, h.hit_id.clone()),
                Message::Event(e) => (e.ts_ms, e.event_id.clone()),
            };
            let best_kind = candidates.iter().map(|(k, _)| *k).min();
            let mut best: Vec<usize> = candidates
                .iter()
                .filter(|(k, _)| Some(*k) == best_kind)
                .map(|(_, i)| *i)
                .collect();
            best.sort_by_key(|&i| id(seq[i]));
            let take_latest = !is_hit && app_cfg.policy == Policy::LastClick;
            let chosen = if take_latest {
                best.last()
            } else {
                best.first()
            };
            match chosen {
                Some(&i) => {
                    pending[i] = false;
                    let (h, e) = if is_hit { (cur, seq[i]) } else { (seq[i], cur) };
                    if let (Message::Hit(h), Message::Event(e)) = (h, e) {
                        out.insert(Conversion {
                            app_id: app.clone(),
                            actor_id: e.actor_id.clone(),
                            hit_ts_ms: h.ts_ms,
                            hit_id: h.hit_id.clone(),
                            event_id: e.event_id.clone(),
                            event_ts_ms: e.ts_ms,
                            event_name: e.name.clone(),
                            tracker: h.tracker.clone(),
                            referrer: h.referrer.clone(),
                            matched_by: best_kind.unwrap_or(MatchKind::Fingerprint),
                        });
                    }
                }
                None => pending[now] = true,
            }
        }
    }
    out
}
