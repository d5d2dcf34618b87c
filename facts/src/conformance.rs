//! Store conformance suite: the same checks run against every backend (SQLite always; Cassandra/Scylla
//! when `FUNNEL_CQL_NODES` names a node). Includes the lambda scenarios, checked against a reference
//! computed over all synthetic events.

use std::collections::BTreeMap;

use crate::{
    BatchPublisher, CountsQuery, DailyCountFact, Day, FactReader, FactsError, FunnelQuery,
    FunnelStepFact, FunnelTotalFact, IdKind, Layer, RunMeta, RunStatus, SeenBy, SeenEntry, SeenId,
    SpeedBatch, StateEntry, StateReader, Store, StreamSink, Watermark,
};

/// Each test gets its own app id, so backends that share one keyspace across tests stay independent.
fn app(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn meta() -> RunMeta {
    RunMeta {
        started_at_ms: 1_700_000_000_000,
        inputs: serde_json::json!({"sstables": ["a-1-big-Data.db"]}),
        funnels: vec![("f".into(), "1".into())],
    }
}

fn step(app: &str, day: i32, bd: &str, step: u32, actors: u64, med: Option<f64>) -> FunnelStepFact {
    FunnelStepFact {
        app_id: app.into(),
        funnel_id: "f".into(),
        funnel_version: "1".into(),
        day: Day(day),
        breakdown: bd.into(),
        step,
        actors,
        ttc_median_s: med,
        ttc_p90_s: med.map(|m| m + 1.0),
    }
}

fn hits(app: &str, day: i32, tracker: &str, count: i64) -> DailyCountFact {
    DailyCountFact {
        app_id: app.into(),
        day: Day(day),
        metric: "hits".into(),
        dimension: "tracker".into(),
        value: tracker.into(),
        count,
    }
}

fn actors_by_day(store: &Store, app: &str) -> Vec<(i32, Layer, Vec<u64>)> {
    let a = store.read_funnel(&FunnelQuery::new(app, "f")).unwrap();
    a.days
        .iter()
        .map(|d| (d.day.0, d.layer, d.steps.iter().map(|s| s.actors).collect()))
        .collect()
}

pub fn init_is_idempotent(store: &Store) {
    store.init().unwrap();
    store.init().unwrap();
}

pub fn staged_rows_are_invisible_until_publish(store: &Store) {
    let app = app("stage");
    let r1 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(
            r1,
            &[
                step(&app, 10, "", 1, 5, Some(1.0)),
                step(&app, 10, "", 2, 3, Some(2.0)),
            ],
        )
        .unwrap();
    assert!(actors_by_day(store, &app).is_empty(), "staged rows leaked");
    store
        .publish(r1, &[Watermark::funnel(&app, "f", "1", Day(11))])
        .unwrap();
    assert_eq!(
        actors_by_day(store, &app),
        vec![(10, Layer::Batch, vec![5, 3])]
    );

    // Second run: staged rows invisible, the first run still answers; after publish, only the second.
    let r2 = store.begin_run(&meta()).unwrap();
    assert!(r2 > r1);
    store
        .write_funnel_steps(
            r2,
            &[
                step(&app, 10, "", 1, 6, None),
                step(&app, 11, "", 1, 2, None),
            ],
        )
        .unwrap();
    store
        .write_funnel_steps(r2, &[step(&app, 10, "", 2, 4, None)])
        .unwrap();
    assert_eq!(
        actors_by_day(store, &app),
        vec![(10, Layer::Batch, vec![5, 3])]
    );
    store
        .publish(r2, &[Watermark::funnel(&app, "f", "1", Day(12))])
        .unwrap();
    assert_eq!(
        actors_by_day(store, &app),
        vec![(10, Layer::Batch, vec![6, 4]), (11, Layer::Batch, vec![2])]
    );
    let wm = store.watermarks(&app).unwrap();
    assert_eq!(wm, vec![Watermark::funnel(&app, "f", "1", Day(12))]);
    // A published run cannot be written to or published again.
    assert!(matches!(
        store.write_funnel_steps(r2, &[step(&app, 10, "", 1, 1, None)]),
        Err(FactsError::RunNotRunning { .. })
    ));
}

pub fn failed_run_leaves_previous_results(store: &Store) {
    let app = app("fail");
    let r1 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(r1, &[step(&app, 3, "", 1, 9, None)])
        .unwrap();
    store
        .publish(r1, &[Watermark::funnel(&app, "f", "1", Day(4))])
        .unwrap();
    let r2 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(r2, &[step(&app, 3, "", 1, 1000, None)])
        .unwrap();
    store.fail_run(r2, "disk on fire").unwrap();
    assert_eq!(actors_by_day(store, &app), vec![(3, Layer::Batch, vec![9])]);
    assert!(store
        .publish(r2, &[Watermark::funnel(&app, "f", "1", Day(5))])
        .is_err());
    let runs = store.runs(1000).unwrap();
    let rec = runs.iter().find(|r| r.run_id == r2).unwrap();
    assert_eq!(rec.status, RunStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some("disk on fire"));
    let rec1 = runs.iter().find(|r| r.run_id == r1).unwrap();
    assert_eq!(rec1.status, RunStatus::Published);
    assert_eq!(rec1.rows, 1);
    assert_eq!(rec1.funnels, vec![("f".to_string(), "1".to_string())]);
    assert_eq!(rec1.inputs, meta().inputs);
}

pub fn stale_run_cannot_replace_newer(store: &Store) {
    let app = app("stale");
    let old = store.begin_run(&meta()).unwrap();
    let new = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(old, &[step(&app, 1, "", 1, 1, None)])
        .unwrap();
    store
        .write_funnel_steps(new, &[step(&app, 1, "", 1, 2, None)])
        .unwrap();
    store
        .publish(new, &[Watermark::funnel(&app, "f", "1", Day(2))])
        .unwrap();
    let err = store.publish(old, &[Watermark::funnel(&app, "f", "1", Day(2))]);
    assert!(matches!(err, Err(FactsError::StaleRun { .. })), "{err:?}");
    assert_eq!(actors_by_day(store, &app), vec![(1, Layer::Batch, vec![2])]);
}

pub fn publish_carries_forward_expired_history(store: &Store) {
    let app = app("carry");
    let r1 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(
            r1,
            &[
                step(&app, 1, "", 1, 1, None),
                step(&app, 2, "", 1, 2, None),
                step(&app, 3, "", 1, 3, None),
            ],
        )
        .unwrap();
    store
        .publish(r1, &[Watermark::funnel(&app, "f", "1", Day(4))])
        .unwrap();
    // The next snapshot no longer holds day 1: days 2.. are recomputed, day 1 is kept.
    let r2 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(
            r2,
            &[
                step(&app, 2, "", 1, 20, None),
                step(&app, 4, "", 1, 40, None),
            ],
        )
        .unwrap();
    store
        .publish(r2, &[Watermark::funnel(&app, "f", "1", Day(5))])
        .unwrap();
    assert_eq!(
        actors_by_day(store, &app),
        vec![
            (1, Layer::Batch, vec![1]),
            (2, Layer::Batch, vec![20]),
            (3, Layer::Batch, vec![]),
            (4, Layer::Batch, vec![40])
        ]
    );
}

fn total(app: &str, day: i32, step: u32, actors: u64, med: Option<f64>) -> FunnelTotalFact {
    FunnelTotalFact {
        app_id: app.into(),
        funnel_id: "f".into(),
        funnel_version: "1".into(),
        day: Day(day),
        step,
        actors,
        ttc_median_s: med,
        ttc_p90_s: med.map(|m| m + 1.0),
    }
}

/// `(day, breakdown, step, actors, median)` of an answer.
type Listed = Vec<(i32, String, u32, u64, Option<f64>)>;

fn listed(store: &Store, app: &str, breakdown: bool) -> Listed {
    let mut q = FunnelQuery::new(app, "f");
    q.breakdown = breakdown;
    let a = store.read_funnel(&q).unwrap();
    a.days
        .iter()
        .flat_map(|d| {
            d.steps.iter().map(move |s| {
                (
                    d.day.0,
                    s.breakdown.clone(),
                    s.step,
                    s.actors,
                    s.ttc_median_s,
                )
            })
        })
        .collect()
}

pub fn totals_answer_summed_breakdowns_and_travel_with_their_run(store: &Store) {
    let app = app("totals");
    let r1 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(
            r1,
            &[
                step(&app, 1, "ios", 1, 3, Some(0.0)),
                step(&app, 1, "web", 1, 4, Some(0.0)),
                step(&app, 1, "ios", 2, 1, Some(10.0)),
                step(&app, 1, "web", 2, 2, Some(30.0)),
                step(&app, 2, "ios", 1, 5, Some(0.0)),
            ],
        )
        .unwrap();
    store
        .write_funnel_totals(
            r1,
            &[
                total(&app, 1, 1, 7, Some(0.0)),
                total(&app, 1, 2, 3, Some(20.0)),
                total(&app, 2, 1, 5, Some(0.0)),
            ],
        )
        .unwrap();
    // Staged totals are as invisible as staged steps.
    assert!(listed(store, &app, false).is_empty());
    store
        .publish(r1, &[Watermark::funnel(&app, "f", "1", Day(3))])
        .unwrap();
    let s = |bd: &str| bd.to_string();
    // Without breakdown: the totals answer, with their exact medians.
    assert_eq!(
        listed(store, &app, false),
        vec![
            (1, s(""), 1, 7, Some(0.0)),
            (1, s(""), 2, 3, Some(20.0)),
            (2, s(""), 1, 5, Some(0.0)),
        ]
    );
    // With breakdown: the breakdown values only, never a total.
    assert_eq!(
        listed(store, &app, true),
        vec![
            (1, s("ios"), 1, 3, Some(0.0)),
            (1, s("ios"), 2, 1, Some(10.0)),
            (1, s("web"), 1, 4, Some(0.0)),
            (1, s("web"), 2, 2, Some(30.0)),
            (2, s("ios"), 1, 5, Some(0.0)),
        ]
    );
    // A failed run's totals never show.
    let failed = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_totals(failed, &[total(&app, 1, 1, 1000, None)])
        .unwrap();
    store.fail_run(failed, "no").unwrap();
    assert_eq!(listed(store, &app, false)[0].3, 7);
    // The next run recomputes day 2 on: day 1's totals are carried forward with its steps.
    let r2 = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(r2, &[step(&app, 2, "web", 1, 6, Some(0.0))])
        .unwrap();
    store
        .write_funnel_totals(r2, &[total(&app, 2, 1, 6, Some(0.0))])
        .unwrap();
    store
        .publish(r2, &[Watermark::funnel(&app, "f", "1", Day(4))])
        .unwrap();
    assert_eq!(
        listed(store, &app, false),
        vec![
            (1, s(""), 1, 7, Some(0.0)),
            (1, s(""), 2, 3, Some(20.0)),
            (2, s(""), 1, 6, Some(0.0)),
        ]
    );
}

pub fn an_open_range_ends_at_the_last_day_with_data(store: &Store) {
    let app = app("span");
    let r = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(
            r,
            &[
                step(&app, 10, "", 1, 1, None),
                step(&app, 12, "", 1, 2, None),
            ],
        )
        .unwrap();
    store
        .write_daily_counts(r, &[hits(&app, 11, "t", 5)])
        .unwrap();
    // Batch-complete for a month past the data (a run whose `now` is long after the last event).
    store
        .publish(
            r,
            &[
                Watermark::funnel(&app, "f", "1", Day(40)),
                Watermark::counts(&app, "hits", Day(40)),
            ],
        )
        .unwrap();
    let days = |a: &crate::FunnelAnswer| a.days.iter().map(|d| d.day.0).collect::<Vec<_>>();
    let a = store.read_funnel(&FunnelQuery::new(&app, "f")).unwrap();
    assert_eq!(days(&a), [10, 11, 12]);
    let c = store.read_counts(&CountsQuery::new(&app, "hits")).unwrap();
    assert_eq!(c.days.iter().map(|d| d.day.0).collect::<Vec<_>>(), [11]);
    // `to` asks for more: the empty batch-complete days are listed, and say so.
    let mut q = FunnelQuery::new(&app, "f");
    q.to = Some(Day(14));
    let a = store.read_funnel(&q).unwrap();
    assert_eq!(days(&a), [10, 11, 12, 13, 14]);
    assert!(a.days[3..]
        .iter()
        .all(|d| d.steps.is_empty() && d.layer == Layer::Batch));
}

pub fn counts_publish_under_their_own_watermark(store: &Store) {
    let app = app("counts");
    let r = store.begin_run(&meta()).unwrap();
    store
        .write_daily_counts(
            r,
            &[
                hits(&app, 5, "t1", 3),
                hits(&app, 5, "t2", 4),
                hits(&app, 6, "t1", 1),
            ],
        )
        .unwrap();
    // Publishing only the funnel watermark leaves the counts unpublished (and discards them).
    store
        .publish(r, &[Watermark::funnel(&app, "f", "1", Day(7))])
        .unwrap();
    let q = CountsQuery::new(&app, "hits");
    assert!(store.read_counts(&q).unwrap().days.is_empty());
    let r = store.begin_run(&meta()).unwrap();
    store
        .write_daily_counts(
            r,
            &[
                hits(&app, 5, "t1", 3),
                hits(&app, 5, "t2", 4),
                hits(&app, 6, "t1", 1),
            ],
        )
        .unwrap();
    store
        .publish(r, &[Watermark::counts(&app, "hits", Day(7))])
        .unwrap();
    let a = store.read_counts(&q).unwrap();
    assert_eq!(a.freshness.watermark, Some(Day(7)));
    let totals: Vec<_> = a
        .days
        .iter()
        .map(|d| (d.day.0, d.layer, d.values[0].count))
        .collect();
    assert_eq!(totals, vec![(5, Layer::Batch, 7), (6, Layer::Batch, 1)]);
    let mut qb = q.clone();
    qb.breakdown = true;
    qb.from = Some(Day(5));
    qb.to = Some(Day(5));
    let a = store.read_counts(&qb).unwrap();
    let v: Vec<_> = a.days[0]
        .values
        .iter()
        .map(|v| (v.value.clone().unwrap(), v.count))
        .collect();
    assert_eq!(v, vec![("t1".into(), 3), ("t2".into(), 4)]);
    assert!(store
        .watermarks(&app)
        .unwrap()
        .contains(&Watermark::counts(&app, "hits", Day(7))));
}

fn speed_batch(app: &str, partition: i32, first: i64, next: i64) -> SpeedBatch {
    SpeedBatch {
        group: "g".into(),
        topic: format!("events-{app}"),
        partition,
        first_offset: first,
        next_offset: next,
        daily_counts: vec![hits(app, 9, "t1", 2)],
        funnel_steps: vec![step(app, 9, "", 1, 1, Some(3.0))],
        state_puts: vec![],
        state_deletes: vec![],
        seen_ids: vec![],
        owned_namespaces: vec![],
    }
}

pub fn speed_batches_apply_exactly_once(store: &Store) {
    let app = app("speed");
    let topic = format!("events-{app}");
    assert!(store
        .apply_speed_batch(&speed_batch(&app, 0, 0, 10))
        .unwrap());
    assert!(store
        .apply_speed_batch(&speed_batch(&app, 1, 0, 5))
        .unwrap());
    assert!(
        !store
            .apply_speed_batch(&speed_batch(&app, 0, 0, 10))
            .unwrap(),
        "replay applied twice"
    );
    assert!(store
        .apply_speed_batch(&speed_batch(&app, 0, 10, 20))
        .unwrap());
    assert_eq!(
        store.committed_offsets("g", &topic).unwrap(),
        vec![(0, 20), (1, 5)]
    );
    assert!(store.committed_offsets("other", &topic).unwrap().is_empty());
    let overlap = store.apply_speed_batch(&speed_batch(&app, 0, 15, 25));
    assert!(
        matches!(overlap, Err(FactsError::OffsetOverlap { .. })),
        "{overlap:?}"
    );
    // A batch wholly below the committed offset was consumed before, even if its key is unknown.
    assert!(!store
        .apply_speed_batch(&speed_batch(&app, 0, 3, 7))
        .unwrap());
    let a = store.read_counts(&CountsQuery::new(&app, "hits")).unwrap();
    assert_eq!(a.days.len(), 1);
    assert_eq!(
        (a.days[0].layer, a.days[0].values[0].count),
        (Layer::Speed, 6)
    );
    assert!(a.freshness.speed_applied_at_ms.is_some());
    let f = store.read_funnel(&FunnelQuery::new(&app, "f")).unwrap();
    assert_eq!(f.funnel_version, "1");
    assert_eq!(f.days[0].steps[0].actors, 3);
    assert_eq!(f.days[0].steps[0].ttc_median_s, None);
}

/// The idempotency key is `(group, topic, partition, first_offset)`: two consumer groups reading the same
/// topic into one store both apply their batches (and each group's partials count), while each group's own
/// replay is refused.
pub fn speed_apps_are_the_apps_the_stream_wrote(store: &Store) {
    let counted = app("speedapps");
    let batch_only = app("batchonly");
    let mut b = speed_batch(&counted, 0, 0, 1);
    b.funnel_steps.clear();
    assert!(store.apply_speed_batch(&b).unwrap());
    let stepped = app("speedsteps");
    let mut b = speed_batch(&stepped, 0, 0, 1);
    b.daily_counts.clear();
    assert!(store.apply_speed_batch(&b).unwrap());
    let run = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(run, &[step(&batch_only, 9, "", 1, 1, None)])
        .unwrap();
    store
        .publish(run, &[Watermark::funnel(&batch_only, "f", "1", Day(10))])
        .unwrap();
    let apps = store.speed_apps().unwrap();
    assert!(apps.contains(&counted), "{apps:?}");
    assert!(apps.contains(&stepped), "{apps:?}");
    assert!(!apps.contains(&batch_only), "{apps:?}");
    assert!(apps.windows(2).all(|w| w[0] < w[1]), "sorted: {apps:?}");
}

pub fn speed_batch_key_includes_the_group(store: &Store) {
    let app = app("groups");
    let topic = format!("events-{app}");
    let of = |group: &str, first: i64, next: i64| {
        let mut b = SpeedBatch {
            group: group.into(),
            ..speed_batch(&app, 0, first, next)
        };
        if next == first {
            // An empty batch (e.g. only offsets moved) carries no facts.
            b.daily_counts.clear();
            b.funnel_steps.clear();
        }
        b
    };
    assert!(store.apply_speed_batch(&of("g1", 0, 10)).unwrap());
    assert!(
        store.apply_speed_batch(&of("g2", 0, 10)).unwrap(),
        "group g2 was refused because g1 applied the same (topic, partition, first_offset)"
    );
    assert!(
        !store.apply_speed_batch(&of("g1", 0, 10)).unwrap(),
        "g1 replay applied twice"
    );
    assert!(
        !store.apply_speed_batch(&of("g2", 0, 10)).unwrap(),
        "g2 replay applied twice"
    );
    // g2 moves on alone; g1's offset is its own.
    assert!(store.apply_speed_batch(&of("g2", 10, 15)).unwrap());
    assert_eq!(
        store.committed_offsets("g1", &topic).unwrap(),
        vec![(0, 10)]
    );
    assert_eq!(
        store.committed_offsets("g2", &topic).unwrap(),
        vec![(0, 15)]
    );
    // Empty batches (next == first) are refused on replay by their key alone: the committed-offset
    // shortcut does not cover them.
    assert!(store.apply_speed_batch(&of("g1", 20, 20)).unwrap());
    assert!(store.apply_speed_batch(&of("g2", 20, 20)).unwrap());
    assert!(!store.apply_speed_batch(&of("g1", 20, 20)).unwrap());
    assert!(!store.apply_speed_batch(&of("g2", 20, 20)).unwrap());
    // Each applied non-empty batch counted once, per group: g1 0..10, g2 0..10, g2 10..15, 2 hits each.
    let a = store.read_counts(&CountsQuery::new(&app, "hits")).unwrap();
    assert_eq!(a.days.len(), 1);
    assert_eq!(
        (a.days[0].layer, a.days[0].values[0].count),
        (Layer::Speed, 6)
    );
}

pub fn state_is_written_with_the_batch(store: &Store) {
    let app = app("state");
    let ns = format!("pending-{app}");
    let entry = |key: &str, v: &[u8], exp: i64| StateEntry {
        namespace: ns.clone(),
        key: key.into(),
        value: v.to_vec(),
        expires_at_ms: exp,
    };
    let far = i64::MAX / 2;
    let mut b = speed_batch(&app, 0, 0, 1);
    b.state_puts = vec![
        entry("fp1/a", b"1", far),
        entry("fp1/b", b"2", far),
        entry("fp2/a", b"3", far),
    ];
    assert!(store.apply_speed_batch(&b).unwrap());
    // Expiry is wall-clock Unix ms (stores may purge expired entries on any later batch).
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        store.get_state(&ns, "fp1/a", now).unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(store.get_state(&ns, "nope", now).unwrap(), None);
    let scanned = store.scan_state(&ns, "fp1/", now).unwrap();
    assert_eq!(
        scanned,
        vec![
            ("fp1/a".into(), b"1".to_vec()),
            ("fp1/b".into(), b"2".to_vec())
        ]
    );
    assert_eq!(store.scan_state(&ns, "", now).unwrap().len(), 3);
    let mut b = speed_batch(&app, 0, 1, 2);
    b.state_puts = vec![
        entry("fp1/b", b"22", far),
        entry("fp3/x", b"soon", now + 600_000),
    ];
    b.state_deletes = vec![(ns.clone(), "fp2/a".into())];
    assert!(store.apply_speed_batch(&b).unwrap());
    assert_eq!(
        store.get_state(&ns, "fp1/b", now).unwrap(),
        Some(b"22".to_vec())
    );
    assert_eq!(store.get_state(&ns, "fp2/a", now).unwrap(), None);
    assert_eq!(
        store.get_state(&ns, "fp3/x", now).unwrap(),
        Some(b"soon".to_vec())
    );
    assert_eq!(
        store.get_state(&ns, "fp3/x", now + 600_000).unwrap(),
        None,
        "expired entry visible"
    );
    assert_eq!(
        store.count_state(&ns, now).unwrap(),
        3,
        "fp1/a, fp1/b, fp3/x"
    );
    assert_eq!(
        store.count_state(&ns, now + 600_000).unwrap(),
        2,
        "an expired entry is not counted"
    );
    assert_eq!(
        store
            .get_states(&ns, &["fp3/x".into(), "nope".into(), "fp1/b".into()], now)
            .unwrap(),
        [Some(b"soon".to_vec()), None, Some(b"22".to_vec())]
    );
    // A replayed batch changes no state.
    let mut replay = speed_batch(&app, 0, 1, 2);
    replay.state_puts = vec![entry("fp1/b", b"replayed", far)];
    assert!(!store.apply_speed_batch(&replay).unwrap());
    assert_eq!(
        store.get_state(&ns, "fp1/b", now).unwrap(),
        Some(b"22".to_vec())
    );
}

/// State a Kafka partition owns ([`SpeedBatch::owned_namespaces`]) is written with the partition's batches
/// and read back through the owner.
pub fn owned_state_is_written_with_the_batch(store: &Store) {
    let app = app("owned");
    let ns = format!("owned-{app}");
    let put = |key: &str, v: &[u8], exp: i64| StateEntry {
        namespace: ns.clone(),
        key: key.into(),
        value: v.to_vec(),
        expires_at_ms: exp,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let far = i64::MAX / 2;
    let mut b = speed_batch(&app, 2, 0, 3);
    b.owned_namespaces = vec![ns.clone()];
    b.state_puts = vec![put("k1", b"1", far), put("k2", b"2", far)];
    assert!(store.apply_speed_batch(&b).unwrap());
    let owner = b.owner();
    let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .get_owned_states(&owner, &ns, &keys(&["k1", "nope", "k2"]), now)
            .unwrap(),
        [Some(b"1".to_vec()), None, Some(b"2".to_vec())]
    );
    let mut next = speed_batch(&app, 2, 3, 5);
    next.owned_namespaces = vec![ns.clone()];
    next.state_puts = vec![put("k2", b"22", far), put("k3", b"soon", now + 600_000)];
    next.state_deletes = vec![(ns.clone(), "k1".into())];
    assert!(store.apply_speed_batch(&next).unwrap());
    // A replay of the first batch changes nothing.
    assert!(!store.apply_speed_batch(&b).unwrap());
    assert_eq!(
        store.scan_owned_state(&owner, &ns, "k", now).unwrap(),
        [
            ("k2".into(), b"22".to_vec()),
            ("k3".into(), b"soon".to_vec())
        ]
    );
    assert_eq!(
        store
            .get_owned_states(&owner, &ns, &keys(&["k3"]), now + 600_000)
            .unwrap(),
        [None],
        "expired entry visible"
    );
    // The batch's counts landed with it: 2 hits per batch.
    let a = store.read_counts(&CountsQuery::new(&app, "hits")).unwrap();
    assert_eq!(a.days[0].values[0].count, 4);
}

pub fn seen_ids_are_written_with_the_batch(store: &Store) {
    let app = app("seen");
    let now = chrono::Utc::now().timestamp_millis();
    let uuid = |i: u32| format!("00000000-0000-4000-8000-{i:012x}");
    let id = |kind, i| SeenId::new(&app, kind, &uuid(i));
    // Each id's message sits at offset 40 + i of the batch's partition.
    let entry = |kind, i: u32, expires_at_ms| SeenEntry {
        id: id(kind, i),
        expires_at_ms,
        offset: 40 + i64::from(i),
    };
    let before = store.count_seen(now).unwrap();
    let mut b = speed_batch(&app, 3, 40, 45);
    b.seen_ids = vec![
        entry(IdKind::Hit, 1, now + 86_400_000),
        entry(IdKind::Event, 2, now + 86_400_000),
        entry(IdKind::Hit, 3, now + 600_000),
    ];
    assert!(store.apply_speed_batch(&b).unwrap());
    let by = |offset| SeenBy {
        topic: b.topic.clone(),
        partition: 3,
        offset,
    };
    let asked = [
        id(IdKind::Hit, 1),
        id(IdKind::Hit, 2),
        id(IdKind::Event, 2),
        id(IdKind::Hit, 3),
        SeenId::new("another-app", IdKind::Hit, &uuid(1)),
    ];
    // The event id 2 is not the hit id 2; another app's id 1 is not this app's.
    assert_eq!(
        store.seen_by(&asked, now).unwrap(),
        [Some(by(41)), None, Some(by(42)), Some(by(43)), None]
    );
    // Expired at its `expires_at_ms`, whatever the backend purged.
    assert_eq!(store.seen_by(&asked[3..4], now + 600_000).unwrap(), [None]);
    if let (Some(before), Some(after)) = (before, store.count_seen(now).unwrap()) {
        assert_eq!(after - before, 3);
    }
    // A replayed batch remembers nothing new.
    let mut replay = speed_batch(&app, 3, 40, 45);
    replay.seen_ids = vec![entry(IdKind::Hit, 9, now + 86_400_000)];
    assert!(!store.apply_speed_batch(&replay).unwrap());
    assert_eq!(store.seen_by(&[id(IdKind::Hit, 9)], now).unwrap(), [None]);
}

// ---- lambda scenarios against a reference over all events ----

/// A synthetic funnel chain: the actor entered on `day` with `breakdown` and reached `level` steps in
/// `seconds_to[level-1]` seconds; plus one hit on `tracker` that day.
#[derive(Clone)]
struct Chain {
    actor: u64,
    day: i32,
    breakdown: &'static str,
    level: u32,
    tracker: &'static str,
}

fn chains(days: std::ops::Range<i32>) -> Vec<Chain> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for day in days {
        for i in 0..(5 + (day as u64 * 7) % 11) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(Chain {
                actor: day as u64 * 1000 + i,
                day,
                breakdown: ["ios", "android", "web"][(x % 3) as usize],
                level: 1 + (x >> 8) as u32 % 3,
                tracker: ["t1", "t2"][((x >> 16) % 2) as usize],
            });
        }
    }
    out
}

/// The reference aggregate of a set of chains: actors per (day, breakdown, step), hits per (day, tracker),
/// and a deterministic "median" per (day, breakdown, step) standing in for the batch job's exact value.
fn funnel_facts(app: &str, cs: &[&Chain]) -> Vec<FunnelStepFact> {
    let mut m: BTreeMap<(i32, &str, u32), u64> = BTreeMap::new();
    for c in cs {
        for s in 1..=c.level {
            *m.entry((c.day, c.breakdown, s)).or_default() += 1;
        }
    }
    m.into_iter()
        .map(|((day, bd, s), n)| step(app, day, bd, s, n, Some((day as f64) * 10.0 + s as f64)))
        .collect()
}

fn count_facts(app: &str, cs: &[&Chain]) -> Vec<DailyCountFact> {
    let mut m: BTreeMap<(i32, &str), i64> = BTreeMap::new();
    for c in cs {
        *m.entry((c.day, c.tracker)).or_default() += 1;
    }
    m.into_iter()
        .map(|((d, t), n)| hits(app, d, t, n))
        .collect()
}

/// Speed partials: the chains of `days`, split by actor into 3 partitions and batches of 4 chains.
fn speed_batches(app: &str, all: &[Chain], days: std::ops::Range<i32>) -> Vec<SpeedBatch> {
    let mut out = Vec::new();
    for p in 0..3 {
        let mine: Vec<&Chain> = all
            .iter()
            .filter(|c| days.contains(&c.day) && c.actor % 3 == p)
            .collect();
        for (i, chunk) in mine.chunks(4).enumerate() {
            let first = (i * 4) as i64;
            let mut fs = funnel_facts(app, chunk);
            for f in &mut fs {
                f.ttc_median_s = None;
                f.ttc_p90_s = None;
            }
            out.push(SpeedBatch {
                group: "g".into(),
                topic: format!("lambda-{app}"),
                partition: p as i32,
                first_offset: first,
                next_offset: first + chunk.len() as i64,
                daily_counts: count_facts(app, chunk),
                funnel_steps: fs,
                state_puts: vec![],
                state_deletes: vec![],
                seen_ids: vec![],
                owned_namespaces: vec![],
            });
        }
    }
    out
}

fn publish_batch(store: &Store, app: &str, all: &[Chain], until: i32) {
    let cs: Vec<&Chain> = all.iter().filter(|c| c.day < until).collect();
    let run = store.begin_run(&meta()).unwrap();
    store
        .write_funnel_steps(run, &funnel_facts(app, &cs))
        .unwrap();
    store
        .write_daily_counts(run, &count_facts(app, &cs))
        .unwrap();
    store
        .publish(
            run,
            &[
                Watermark::funnel(app, "f", "1", Day(until)),
                Watermark::counts(app, "hits", Day(until)),
            ],
        )
        .unwrap();
}

/// Check the merged answers against the reference over `all` chains, per day and breakdown.
fn check_against_reference(store: &Store, app: &str, all: &[Chain], watermark: Option<i32>) {
    let refs: Vec<&Chain> = all.iter().collect();
    let want_steps = funnel_facts(app, &refs);
    let want_counts = count_facts(app, &refs);
    let mut q = FunnelQuery::new(app, "f");
    q.breakdown = true;
    let a = store.read_funnel(&q).unwrap();
    assert_eq!(a.freshness.watermark, watermark.map(Day));
    let mut got = Vec::new();
    for d in &a.days {
        let want_layer = match watermark {
            Some(w) if d.day.0 < w => Layer::Batch,
            _ => Layer::Speed,
        };
        assert_eq!(d.layer, want_layer, "layer of {}", d.day);
        for s in &d.steps {
            got.push((d.day, s.breakdown.clone(), s.step, s.actors, s.ttc_median_s));
        }
    }
    let want: Vec<_> = want_steps
        .iter()
        .map(|f| {
            let batch_day = watermark.is_some_and(|w| f.day.0 < w);
            (
                f.day,
                f.breakdown.clone(),
                f.step,
                f.actors,
                f.ttc_median_s.filter(|_| batch_day),
            )
        })
        .collect();
    assert_eq!(got, want, "funnel steps differ from the reference");

    let mut cq = CountsQuery::new(app, "hits");
    cq.breakdown = true;
    let c = store.read_counts(&cq).unwrap();
    let got: Vec<_> = c
        .days
        .iter()
        .flat_map(|d| {
            d.values
                .iter()
                .map(move |v| (d.day, v.value.clone().unwrap_or_default(), v.count))
        })
        .collect();
    let want: Vec<_> = want_counts
        .iter()
        .map(|f| (f.day, f.value.clone(), f.count))
        .collect();
    assert_eq!(got, want, "counts differ from the reference");
}

pub fn lambda_batch_only(store: &Store) {
    let app = app("l-batch");
    let all = chains(0..20);
    publish_batch(store, &app, &all, 20);
    check_against_reference(store, &app, &all, Some(20));
}

pub fn lambda_speed_only(store: &Store) {
    let app = app("l-speed");
    let all = chains(0..20);
    for b in speed_batches(&app, &all, 0..20) {
        assert!(store.apply_speed_batch(&b).unwrap());
    }
    check_against_reference(store, &app, &all, None);
}

pub fn lambda_overlap(store: &Store) {
    // Speed covers days 8..20, batch covers 0..14: days 8..13 are in both and must not be double counted.
    let app = app("l-overlap");
    let all = chains(0..20);
    let batches = speed_batches(&app, &all, 8..20);
    let (early, late) = batches.split_at(batches.len() / 2);
    for b in early {
        assert!(store.apply_speed_batch(b).unwrap());
    }
    publish_batch(store, &app, &all, 14);
    for b in late {
        assert!(store.apply_speed_batch(b).unwrap());
    }
    check_against_reference(store, &app, &all, Some(14));
}

pub fn lambda_late_batch(store: &Store) {
    // The batch side is late (complete only before day 5); the speed side covers from day 3 on.
    let app = app("l-late");
    let all = chains(0..20);
    publish_batch(store, &app, &all, 5);
    for b in speed_batches(&app, &all, 3..20) {
        assert!(store.apply_speed_batch(&b).unwrap());
    }
    check_against_reference(store, &app, &all, Some(5));
}

pub fn lambda_stale_speed(store: &Store) {
    // The stream died after day 10; the batch caught up to day 15: batch answers everything and says so.
    let app = app("l-stale");
    let all = chains(0..15);
    for b in speed_batches(&app, &all, 0..11) {
        assert!(store.apply_speed_batch(&b).unwrap());
    }
    publish_batch(store, &app, &all, 15);
    check_against_reference(store, &app, &all, Some(15));
    let a = store.read_funnel(&FunnelQuery::new(&app, "f")).unwrap();
    assert!(a.days.iter().all(|d| d.layer == Layer::Batch));
    assert!(a.freshness.batch_published_at_ms.is_some());
    // A reader asking past the watermark sees speed days with nothing in them: not covered, not zero-by-batch.
    let mut q = FunnelQuery::new(&app, "f");
    q.from = Some(Day(14));
    q.to = Some(Day(16));
    let a = store.read_funnel(&q).unwrap();
    let l: Vec<_> = a
        .days
        .iter()
        .map(|d| (d.day.0, d.layer, d.steps.is_empty()))
        .collect();
    assert_eq!(
        l,
        vec![
            (14, Layer::Batch, false),
            (15, Layer::Speed, true),
            (16, Layer::Speed, true)
        ]
    );
}

/// Any watermark `w`, any speed coverage `[s, 20)` with `s <= w` (no gap), any point at which the batch is
/// published among the speed batches: the merged answer equals the reference over all events.
pub fn lambda_any_mix(store: &Store, w: i32, s: i32, publish_after: usize) {
    let app = app("l-prop");
    let all = chains(0..20);
    let batches = speed_batches(&app, &all, s..20);
    let at = publish_after.min(batches.len());
    for b in &batches[..at] {
        assert!(store.apply_speed_batch(b).unwrap());
    }
    if w > 0 {
        publish_batch(store, &app, &all, w);
    }
    for b in &batches[at..] {
        assert!(store.apply_speed_batch(b).unwrap());
    }
    check_against_reference(store, &app, &all, (w > 0).then_some(w));
}

/// Runs every conformance check against one backend (instantiated per backend by the macro below).
macro_rules! conformance_suite {
    ($store:expr) => {
        conformance_suite!(@tests $store;
            init_is_idempotent,
            staged_rows_are_invisible_until_publish,
            failed_run_leaves_previous_results,
            stale_run_cannot_replace_newer,
            publish_carries_forward_expired_history,
            totals_answer_summed_breakdowns_and_travel_with_their_run,
            an_open_range_ends_at_the_last_day_with_data,
            counts_publish_under_their_own_watermark,
            speed_batches_apply_exactly_once,
            speed_batch_key_includes_the_group,
            speed_apps_are_the_apps_the_stream_wrote,
            state_is_written_with_the_batch,
            owned_state_is_written_with_the_batch,
            seen_ids_are_written_with_the_batch,
            lambda_batch_only,
            lambda_speed_only,
            lambda_overlap,
            lambda_late_batch,
            lambda_stale_speed
        );
    };
    (@tests $store:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                if let Some(store) = $store {
                    super::$name(&*store);
                }
            }
        )*
    };
}

mod sqlite {
    use proptest::prelude::*;

    fn store() -> Option<(tempfile::TempDir, crate::Store)> {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::SqliteStore::open(dir.path().join("facts.db")).unwrap();
        Some((dir, crate::Store::Sqlite(s)))
    }
    /// Keeps the temp dir alive as long as the store.
    struct Held(tempfile::TempDir, crate::Store);
    impl std::ops::Deref for Held {
        type Target = crate::Store;
        fn deref(&self) -> &crate::Store {
            let _ = &self.0;
            &self.1
        }
    }
    fn held() -> Option<Held> {
        store().map(|(d, s)| Held(d, s))
    }
    conformance_suite!(held());

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn lambda_any_mix((w, s) in (0i32..=21).prop_flat_map(|w| (Just(w), 0..=w.min(19))), publish_after in 0usize..60) {
            let h = held().unwrap();
            super::lambda_any_mix(&h, w, s, publish_after);
        }
    }
}

/// The CQL store over the in-memory statement executor ([`crate::cql_memory`]): the same suite, run on
/// every build. A model of Cassandra's semantics, not Cassandra (the suite below is the real-server run).
#[cfg(feature = "cql")]
mod cql_memory {
    fn store() -> Option<Box<crate::Store>> {
        let session = crate::cql_memory::MemorySession::new();
        Some(Box::new(crate::Store::Cql(crate::cql_memory::store_over(
            session,
        ))))
    }
    conformance_suite!(store());
}

/// Cassandra/Scylla: runs when `FUNNEL_CQL_NODES` names nodes (`host:port,host:port`); keyspace
/// `FUNNEL_CQL_KEYSPACE` (default `funnel_conformance`), `FUNNEL_CQL_RF` (default 1), optional
/// `FUNNEL_CQL_USER`/`FUNNEL_CQL_PASSWORD`. (Compiled in only when `FUNNEL_CQL_NODES` was set at build time:
/// see `build.rs`; `deploy/cassandra-test/` starts clusters for it.) Besides the suite, every
/// request of a store is checked against Cassandra's limits, and faults injected at the session seam of a
/// real session must leave the same facts as SQLite's on the same input.
#[cfg(all(feature = "cql", funnel_cql_nodes))]
mod cql {
    use std::sync::{Arc, Mutex};

    use super::{chains, count_facts, funnel_facts, meta, publish_batch, Chain};
    use crate::cql_contract::Contract;
    use crate::cql_session::{CqlSession, Recorder, Reply, Request};
    use crate::{
        BatchPublisher, CountsQuery, CqlError, CqlStore, Day, FactReader, FactsError, FunnelQuery,
        Store, StoreUrl, Watermark,
    };

    fn url() -> String {
        let nodes = std::env::var("FUNNEL_CQL_NODES")
            .expect("FUNNEL_CQL_NODES (set at build time) is unset");
        let ks =
            std::env::var("FUNNEL_CQL_KEYSPACE").unwrap_or_else(|_| "funnel_conformance".into());
        let rf = std::env::var("FUNNEL_CQL_RF").unwrap_or_else(|_| "1".into());
        let mut url = format!("cql://{nodes}/{ks}?rf={rf}");
        if let (Ok(u), Ok(p)) = (
            std::env::var("FUNNEL_CQL_USER"),
            std::env::var("FUNNEL_CQL_PASSWORD"),
        ) {
            url.push_str(&format!("&user={u}&password={p}"));
        }
        url
    }

    /// Boxed: the suite's macro takes `&*store`.
    fn store() -> Option<Box<crate::Store>> {
        let store = crate::open_store(&url()).expect("connect to FUNNEL_CQL_NODES");
        initialized();
        Some(Box::new(store))
    }

    /// `facts init` once per test process (DDL from concurrent tests would race, as it would from
    /// concurrent consumers).
    fn initialized() {
        static INIT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        INIT.get_or_init(|| {
            let store = crate::open_store(&url()).expect("connect to FUNNEL_CQL_NODES");
            store.init().expect("init keyspace");
        });
    }
    conformance_suite!(store());

    fn cql_url() -> crate::CqlUrl {
        match url().parse() {
            Ok(StoreUrl::Cql(u)) => u,
            other => panic!("{other:?}"),
        }
    }

    /// What to break at the seam.
    #[derive(Default)]
    struct Plan {
        /// Flip batches still to answer with an unknown outcome.
        flips_to_fail: usize,
        /// Send them to the cluster first (the write applied, its answer lost).
        apply_first: bool,
        /// Requests still allowed before the process "crashes" (every later one fails).
        crash_after: Option<usize>,
    }

    struct Faulty {
        inner: Arc<dyn CqlSession>,
        plan: Arc<Mutex<Plan>>,
    }

    impl CqlSession for Faulty {
        fn send<'a>(&'a self, r: &'a Request) -> Reply<'a> {
            Box::pin(async move {
                let (fail, apply) = {
                    let mut p = self.plan.lock().unwrap();
                    if let Some(n) = p.crash_after.as_mut() {
                        if *n == 0 {
                            return Err(CqlError::Decode {
                                reason: "process crashed (injected)".into(),
                            }
                            .into());
                        }
                        *n -= 1;
                    }
                    if matches!(r, Request::Batch { .. }) && p.flips_to_fail > 0 {
                        p.flips_to_fail -= 1;
                        (true, p.apply_first)
                    } else {
                        (false, false)
                    }
                };
                if fail {
                    if apply {
                        self.inner.send(r).await?;
                    }
                    return Err(CqlError::OutcomeUnknown {
                        request: r.name(),
                        reason: "timeout (injected)".into(),
                    }
                    .into());
                }
                self.inner.send(r).await
            })
        }
    }

    fn faulty() -> (Store, Arc<Mutex<Plan>>, Arc<dyn CqlSession>) {
        initialized();
        let plan = Arc::new(Mutex::new(Plan::default()));
        let p = plan.clone();
        let session = Arc::new(Mutex::new(None));
        let slot = session.clone();
        let s = CqlStore::connect_with(&cql_url(), move |d| {
            let inner: Arc<dyn CqlSession> = Arc::new(d);
            *slot.lock().unwrap() = Some(inner.clone());
            Arc::new(Faulty { inner, plan: p })
        })
        .expect("connect");
        let session = session.lock().unwrap().clone().expect("session");
        (Store::Cql(s), plan, session)
    }

    /// What waiting out the lease of a crashed publisher does (its TTL is minutes): remove it.
    fn expire_lease(session: &Arc<dyn CqlSession>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let rows = session
                .send(&Request::execute(crate::cql_statements::SELECT_LEASE, ()))
                .await
                .unwrap();
            if let Some(holder) = rows.first().and_then(|r| r.first()).cloned() {
                let release = Request::execute(crate::cql_statements::RELEASE_LEASE, (holder,));
                session.send(&release).await.unwrap();
            }
        });
    }

    fn sqlite() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::SqliteStore::open(dir.path().join("facts.db")).unwrap();
        (dir, Store::Sqlite(s))
    }

    fn answers(store: &Store, app: &str) -> (Vec<crate::FunnelDay>, Vec<crate::CountsDay>) {
        let mut q = FunnelQuery::new(app, "f");
        q.breakdown = true;
        let f = store.read_funnel(&q).unwrap().days;
        let c = store
            .read_counts(&CountsQuery::new(app, "hits"))
            .unwrap()
            .days;
        (f, c)
    }

    /// Stage the chains before `until` under a new run and publish them, with `plan` armed for the
    /// publish only.
    fn publish_with(
        store: &Store,
        app: &str,
        all: &[Chain],
        until: i32,
        plan: &Mutex<Plan>,
        arm: impl FnOnce(&mut Plan),
    ) -> Result<crate::RunId, FactsError> {
        let cs: Vec<&Chain> = all.iter().filter(|c| c.day < until).collect();
        let run = store.begin_run(&meta())?;
        store.write_funnel_steps(run, &funnel_facts(app, &cs))?;
        store.write_daily_counts(run, &count_facts(app, &cs))?;
        arm(&mut plan.lock().unwrap());
        let marks = [
            Watermark::funnel(app, "f", "1", Day(until)),
            Watermark::counts(app, "hits", Day(until)),
        ];
        let out = store.publish(run, &marks).map(|_| run);
        *plan.lock().unwrap() = Plan::default();
        out
    }

    /// Run history, a faulty publish and the job's recovery (fail the run, publish again), and compare
    /// with SQLite given the same runs without faults.
    fn after_fault_facts_equal_sqlite(tag: &str, arm: impl FnOnce(&mut Plan)) {
        let app = super::app(tag);
        let all = chains(0..10);
        let (_dir, lite) = sqlite();
        publish_batch(&lite, &app, &all, 5);
        publish_batch(&lite, &app, &all, 8);
        let (cql, plan, session) = faulty();
        publish_batch(&cql, &app, &all, 5);
        if let Err(e) = publish_with(&cql, &app, &all, 8, &plan, arm) {
            eprintln!("{tag}: publish failed as injected: {e}");
            expire_lease(&session);
            publish_batch(&cql, &app, &all, 8);
        }
        assert_eq!(answers(&cql, &app), answers(&lite, &app), "{tag}");
    }

    #[test]
    fn flip_timed_out_after_applying() {
        after_fault_facts_equal_sqlite("flip-applied", |p| {
            p.flips_to_fail = 100;
            p.apply_first = true;
        });
    }

    #[test]
    fn flip_timed_out_before_applying() {
        after_fault_facts_equal_sqlite("flip-lost", |p| p.flips_to_fail = 100);
    }

    #[test]
    fn crash_at_any_request_of_a_publish() {
        for k in 0..40 {
            after_fault_facts_equal_sqlite(&format!("crash-{k}"), |p| p.crash_after = Some(k));
        }
    }

    #[test]
    fn two_publishers_racing() {
        let app = super::app("race");
        let all = chains(0..10);
        let (_dir, lite) = sqlite();
        publish_batch(&lite, &app, &all, 8);
        let stores: Vec<_> = (0..2).map(|_| faulty()).collect();
        std::thread::scope(|s| {
            for (store, plan, _) in &stores {
                let (app, all) = (&app, &all);
                s.spawn(move || {
                    // The loser gets the lease error, a stale-run error or publishes second: any is fine
                    // as long as the facts end equal.
                    if let Err(e) = publish_with(store, app, all, 8, plan, |_| {}) {
                        eprintln!("racing publisher: {e}");
                    }
                });
            }
        });
        assert_eq!(answers(&stores[0].0, &app), answers(&lite, &app));
    }

    #[test]
    fn real_traffic_stays_within_cassandra_limits() {
        initialized();
        let recorder = Arc::new(Mutex::new(None));
        let slot = recorder.clone();
        let s = CqlStore::connect_with(&cql_url(), move |d| {
            let r = Recorder::new(d);
            *slot.lock().unwrap() = Some(r.clone());
            r
        })
        .expect("connect");
        let store = Store::Cql(s);
        super::lambda_overlap(&store);
        super::state_is_written_with_the_batch(&store);
        let rec = recorder.lock().unwrap().clone().expect("recorder");
        let c = Contract::new();
        let now = chrono::Utc::now().timestamp();
        let v: Vec<String> = rec
            .requests()
            .iter()
            .flat_map(|r| c.violations(r, now))
            .collect();
        assert!(v.is_empty(), "{v:#?}");
    }
}
