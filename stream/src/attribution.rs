//! Hit→event attribution, incrementally: the pending clicks and pending conversion events of one
//! (app, fingerprint) key — a [`Bucket`], kept in the store between batches — and the rule that pairs them.
//!
//! The rule (the brute-force form is [`crate::reference`]); messages of one key are taken in arrival order,
//! which is the order of their Kafka partition because producers key messages by
//! [`crate::fingerprint::partition_key`]:
//! 1. A message of the key with timestamp `t` first forgets pending hits with `ts + hit_horizon < t` and
//!    pending events with `ts + event_horizon < t` (see [`AppAttribution`]). Only hits and conversion
//!    events touch a key; other events are counted and nothing more.
//! 2. A hit `h` and a conversion event `e` are *eligible* when `h.ts <= e.ts <= h.ts + W`, where both
//!    carry a device id: the ids must be equal and `W` is the device window (a *device* match); otherwise
//!    `W` is the fingerprint window (a *fingerprint* match).
//! 3. An arriving conversion event takes one eligible pending hit: device matches before fingerprint
//!    matches, then the earliest (first click) or latest (last click) by `(ts, hit_id)`. With none, it
//!    waits as a pending event.
//! 4. An arriving hit takes one eligible pending event: device matches first, then the earliest by
//!    `(ts, event_id)`. With none, it waits as a pending hit.
//! 5. A matched hit or event leaves the key: each click converts at most once, each event at most once.

use serde::{Deserialize, Serialize};

use crate::config::{AppAttribution, Policy};
use crate::message::{Event, Hit};

/// How a conversion was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Device,
    Fingerprint,
}

/// A click waiting for its conversion event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHit {
    pub hit_id: String,
    pub ts_ms: i64,
    pub tracker: String,
    pub referrer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// A conversion event waiting for a late click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEvent {
    pub event_id: String,
    pub actor_id: String,
    pub ts_ms: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// A hit→event pair: one row of `tracking.conversions`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conversion {
    pub app_id: String,
    pub actor_id: String,
    pub hit_ts_ms: i64,
    pub hit_id: String,
    pub event_id: String,
    pub event_ts_ms: i64,
    pub event_name: String,
    pub tracker: String,
    pub referrer: String,
    pub matched_by: MatchKind,
}

impl PendingHit {
    pub fn of(hit: &Hit) -> PendingHit {
        PendingHit {
            hit_id: hit.hit_id.clone(),
            ts_ms: hit.ts_ms,
            tracker: hit.tracker.clone(),
            referrer: hit.referrer.clone(),
            device_id: hit.device_id.clone(),
        }
    }
}

impl PendingEvent {
    pub fn of(event: &Event) -> PendingEvent {
        PendingEvent {
            event_id: event.event_id.clone(),
            actor_id: event.actor_id.clone(),
            ts_ms: event.ts_ms,
            name: event.name.clone(),
            device_id: event.device_id.clone(),
        }
    }
}

/// Whether a hit and an event are eligible (rule 2), and how.
pub fn eligible(
    cfg: &AppAttribution,
    hit_ts: i64,
    hit_device: Option<&str>,
    event_ts: i64,
    event_device: Option<&str>,
) -> Option<MatchKind> {
    let (kind, window) = match (hit_device, event_device) {
        (Some(a), Some(b)) if a == b => (MatchKind::Device, cfg.device_window_ms),
        (Some(_), Some(_)) => return None,
        _ => (MatchKind::Fingerprint, cfg.fingerprint_window_ms),
    };
    (hit_ts <= event_ts && event_ts - hit_ts <= window).then_some(kind)
}

/// The pending hits and events of one (app, fingerprint) key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    #[serde(default)]
    pub hits: Vec<PendingHit>,
    #[serde(default)]
    pub events: Vec<PendingEvent>,
}

impl Bucket {
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty() && self.events.is_empty()
    }

    /// Rule 1: forget what a message at `now_ms` makes too old.
    pub fn forget_before(&mut self, cfg: &AppAttribution, now_ms: i64) {
        let (hh, eh) = (cfg.hit_horizon_ms(), cfg.event_horizon_ms());
        self.hits.retain(|h| h.ts_ms.saturating_add(hh) >= now_ms);
        self.events.retain(|e| e.ts_ms.saturating_add(eh) >= now_ms);
    }

    /// The store expiry of this bucket: one past the last instant a message could still find any of its
    /// items (rule 1), so a store read at a message's timestamp hides exactly what rule 1 forgets.
    pub fn expires_at_ms(&self, cfg: &AppAttribution) -> i64 {
        let h = self
            .hits
            .iter()
            .map(|h| h.ts_ms.saturating_add(cfg.hit_horizon_ms()));
        let e = self
            .events
            .iter()
            .map(|e| e.ts_ms.saturating_add(cfg.event_horizon_ms()));
        h.chain(e).max().unwrap_or(0).saturating_add(1)
    }

    /// Rules 1, 3 and 5 for an arriving conversion event.
    pub fn on_conversion_event(
        &mut self,
        cfg: &AppAttribution,
        event: &Event,
    ) -> Option<Conversion> {
        self.forget_before(cfg, event.ts_ms);
        let mut best: Option<(usize, MatchKind)> = None;
        for (i, h) in self.hits.iter().enumerate() {
            let Some(kind) = eligible(
                cfg,
                h.ts_ms,
                h.device_id.as_deref(),
                event.ts_ms,
                event.device_id.as_deref(),
            ) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((j, best_kind)) => {
                    let b = &self.hits[j];
                    let ord = (h.ts_ms, &h.hit_id).cmp(&(b.ts_ms, &b.hit_id));
                    kind < best_kind
                        || (kind == best_kind
                            && match cfg.policy {
                                Policy::FirstClick => ord.is_lt(),
                                Policy::LastClick => ord.is_gt(),
                            })
                }
            };
            if better {
                best = Some((i, kind));
            }
        }
        match best {
            Some((i, kind)) => {
                let hit = self.hits.remove(i);
                Some(conversion(
                    &event.app_id,
                    &hit,
                    &PendingEvent::of(event),
                    kind,
                ))
            }
            None => {
                self.events.push(PendingEvent::of(event));
                None
            }
        }
    }

    /// Rules 1, 4 and 5 for an arriving hit.
    pub fn on_hit(&mut self, cfg: &AppAttribution, hit: &Hit) -> Option<Conversion> {
        self.forget_before(cfg, hit.ts_ms);
        let mut best: Option<(usize, MatchKind)> = None;
        for (i, e) in self.events.iter().enumerate() {
            let Some(kind) = eligible(
                cfg,
                hit.ts_ms,
                hit.device_id.as_deref(),
                e.ts_ms,
                e.device_id.as_deref(),
            ) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((j, best_kind)) => {
                    let b = &self.events[j];
                    kind < best_kind
                        || (kind == best_kind && (e.ts_ms, &e.event_id) < (b.ts_ms, &b.event_id))
                }
            };
            if better {
                best = Some((i, kind));
            }
        }
        match best {
            Some((i, kind)) => {
                let event = self.events.remove(i);
                Some(conversion(&hit.app_id, &PendingHit::of(hit), &event, kind))
            }
            None => {
                self.hits.push(PendingHit::of(hit));
                None
            }
        }
    }
}

fn conversion(app_id: &str, hit: &PendingHit, event: &PendingEvent, kind: MatchKind) -> Conversion {
    Conversion {
        app_id: app_id.to_string(),
        actor_id: event.actor_id.clone(),
        hit_ts_ms: hit.ts_ms,
        hit_id: hit.hit_id.clone(),
        event_id: event.event_id.clone(),
        event_ts_ms: event.ts_ms,
        event_name: event.name.clone(),
        tracker: hit.tracker.clone(),
        referrer: hit.referrer.clone(),
        matched_by: kind,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const H: i64 = 3_600_000;

    fn hit(id: u8, ts: i64, device: Option<&str>) -> Hit {
        Hit {
            app_id: "a".into(),
            hit_id: format!("00000000-0000-0000-0000-0000000000{id:02x}"),
            ts_ms: ts,
            tracker: format!("t{id}"),
            referrer: String::new(),
            ip: "1.2.3.4".parse().unwrap(),
            user_agent: "ua".into(),
            device_id: device.map(str::to_string),
            props: BTreeMap::new(),
        }
    }

    fn install(id: u8, ts: i64, device: Option<&str>) -> Event {
        Event {
            app_id: "a".into(),
            actor_id: format!("u{id}"),
            event_id: format!("00000000-0000-0000-0000-0000000001{id:02x}"),
            ts_ms: ts,
            name: "install".into(),
            ip: "1.2.3.4".parse().unwrap(),
            user_agent: "ua".into(),
            device_id: device.map(str::to_string),
            props: BTreeMap::new(),
        }
    }

    #[test]
    fn first_and_last_click() {
        for (policy, want) in [(Policy::FirstClick, "t1"), (Policy::LastClick, "t2")] {
            let cfg = AppAttribution {
                policy,
                ..AppAttribution::default()
            };
            let mut b = Bucket::default();
            assert!(b.on_hit(&cfg, &hit(1, 10 * H, None)).is_none());
            assert!(b.on_hit(&cfg, &hit(2, 12 * H, None)).is_none());
            let c = b
                .on_conversion_event(&cfg, &install(1, 20 * H, None))
                .unwrap();
            assert_eq!(c.tracker, want);
            assert_eq!(c.matched_by, MatchKind::Fingerprint);
            assert_eq!(b.hits.len(), 1, "the other click stays pending");
        }
    }

    #[test]
    fn windows_and_device_ids() {
        let cfg = AppAttribution::default();
        // fingerprint-only: 24 h
        assert_eq!(
            eligible(&cfg, 0, None, 24 * H, None),
            Some(MatchKind::Fingerprint)
        );
        assert_eq!(eligible(&cfg, 0, None, 24 * H + 1, None), None);
        assert_eq!(eligible(&cfg, 0, Some("d"), 24 * H + 1, None), None);
        // same device id: 7 days
        assert_eq!(
            eligible(&cfg, 0, Some("d"), 7 * 24 * H, Some("d")),
            Some(MatchKind::Device)
        );
        assert_eq!(
            eligible(&cfg, 0, Some("d"), 7 * 24 * H + 1, Some("d")),
            None
        );
        // different device ids never match; the click must come first
        assert_eq!(eligible(&cfg, 0, Some("d"), 1, Some("e")), None);
        assert_eq!(eligible(&cfg, 1, None, 0, None), None);
        // a device match beats an earlier fingerprint match
        let mut b = Bucket::default();
        b.on_hit(&cfg, &hit(1, 0, None));
        b.on_hit(&cfg, &hit(2, H, Some("d")));
        let c = b
            .on_conversion_event(&cfg, &install(1, 2 * H, Some("d")))
            .unwrap();
        assert_eq!(
            (c.tracker.as_str(), c.matched_by),
            ("t2", MatchKind::Device)
        );
    }

    #[test]
    fn event_before_hit_waits_then_matches() {
        let cfg = AppAttribution::default();
        let mut b = Bucket::default();
        assert!(b
            .on_conversion_event(&cfg, &install(1, 10 * H, None))
            .is_none());
        assert_eq!(b.events.len(), 1);
        // a click after the event in event time does not convert it
        assert!(b.on_hit(&cfg, &hit(9, 11 * H, None)).is_none());
        let c = b.on_hit(&cfg, &hit(1, 9 * H, None)).unwrap();
        assert_eq!((c.actor_id.as_str(), c.tracker.as_str()), ("u1", "t1"));
        assert!(b.events.is_empty());
        assert_eq!(b.hits.len(), 1);
    }

    #[test]
    fn forgetting_follows_the_horizons() {
        let cfg = AppAttribution {
            late_arrival_ms: H,
            ..AppAttribution::default()
        };
        let mut b = Bucket::default();
        b.on_conversion_event(&cfg, &install(1, 0, None));
        b.on_hit(&cfg, &hit(1, 0, None)); // matches, bucket empty again
        assert!(b.is_empty());
        b.on_conversion_event(&cfg, &install(2, 0, None));
        assert_eq!(b.expires_at_ms(&cfg), H + 1);
        // a message at H + 1 forgets the pending event: the late click no longer converts it
        b.on_hit(&cfg, &hit(3, H + 1, None));
        assert!(b.events.is_empty());
        assert!(b.on_hit(&cfg, &hit(4, 0, None)).is_none());
    }

    #[test]
    fn horizons_are_inclusive() {
        let cfg = AppAttribution {
            late_arrival_ms: H,
            ..AppAttribution::default()
        };
        // A pending event survives a message exactly `late_arrival` later, and a late click still converts it.
        let mut b = Bucket::default();
        b.on_conversion_event(&cfg, &install(1, 0, None));
        assert!(b.on_hit(&cfg, &hit(2, H, None)).is_none());
        assert_eq!(b.events.len(), 1);
        assert!(b.on_hit(&cfg, &hit(3, 0, None)).is_some());
        // A pending click survives a message exactly one hit horizon later, so an out-of-order event
        // inside its window still converts it.
        let mut b = Bucket::default();
        b.on_hit(&cfg, &hit(1, 0, Some("d")));
        b.on_hit(&cfg, &hit(2, cfg.hit_horizon_ms(), None));
        assert_eq!(b.hits.len(), 2);
        let c = b
            .on_conversion_event(&cfg, &install(1, 3 * 24 * H, Some("d")))
            .unwrap();
        assert_eq!(c.tracker, "t1");
    }

    #[test]
    fn bucket_round_trips_through_json() {
        let cfg = AppAttribution::default();
        let mut b = Bucket::default();
        b.on_hit(&cfg, &hit(1, 5, Some("d")));
        b.on_conversion_event(&cfg, &install(2, 1, None));
        let bytes = serde_json::to_vec(&b).unwrap();
        assert_eq!(serde_json::from_slice::<Bucket>(&bytes).unwrap(), b);
    }
}
