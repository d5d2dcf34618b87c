//! Sharded runs (`JobOptions::shard`): N shards, run in any order and some twice, publish exactly the
//! facts of one process reading everything — compared row for row in the SQLite file — on the project's
//! testdata and on a generated 3-node RF 3 dataset; each shard reads only its token ranges; shards that
//! disagree or whose ranges overlap or leave a gap are refused.

use std::path::{Path, PathBuf};

use funnelizer::{Finalize, FunnelSet, Job, JobOptions, RunReport, ShardSpec};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// 2026-11-01T00:00:00Z, the end of the testdata's history.
const NOW_S: i64 = 1_793_491_200;

fn testdata() -> (PathBuf, FunnelSet) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let set = FunnelSet::load(&root.join("funnels.toml")).unwrap();
    (root.join("snapshot"), set)
}

fn options(data: &Path, now: i64, shard: Option<ShardSpec>) -> JobOptions {
    let mut o = JobOptions::new(vec![data.to_path_buf()], now);
    o.threads = Some(2);
    o.shard = shard;
    o
}

/// The published facts of a SQLite file as text rows, without run ids and times: `funnel_steps` and
/// `funnel_totals` through the pointer, and the watermarks.
fn published_rows(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT 'step', s.app_id, s.funnel_id, s.funnel_version, s.day, s.breakdown, s.step, s.actors,
                quote(s.ttc_median_s), quote(s.ttc_p90_s), s.layer
         FROM funnel_steps s JOIN watermarks w ON w.app_id = s.app_id AND w.funnel_id = s.funnel_id
           AND w.funnel_version = s.funnel_version AND w.run_id = s.run_id
         ORDER BY 2, 3, 4, 5, 6, 7",
        "SELECT 'total', t.app_id, t.funnel_id, t.funnel_version, t.day, '', t.step, t.actors,
                quote(t.ttc_median_s), quote(t.ttc_p90_s), ''
         FROM funnel_totals t JOIN watermarks w ON w.app_id = t.app_id AND w.funnel_id = t.funnel_id
           AND w.funnel_version = t.funnel_version AND w.run_id = t.run_id
         ORDER BY 2, 3, 4, 5, 7",
        "SELECT 'mark', app_id, funnel_id, funnel_version, batch_until, '', 0, 0, '', '', ''
         FROM watermarks ORDER BY 2, 3, 4",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                (0..11)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        out.extend(rows);
    }
    out
}

fn single(data: &Path, set: &FunnelSet, now: i64) -> (Vec<String>, RunReport) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
    let report = Job::new(set.clone(), options(data, now, None))
        .run(&store)
        .unwrap();
    (published_rows(&db), report)
}

/// Runs shards `order` (1-based; repeats are retries) of `n` into a fresh store; the published rows and
/// the shards' reports.
fn sharded(
    data: &Path,
    set: &FunnelSet,
    now: i64,
    n: u32,
    order: &[u32],
) -> (Vec<String>, Vec<RunReport>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
    let mut reports = Vec::new();
    let mut complete = false;
    for &i in order {
        let spec = ShardSpec::parse("nightly", &format!("{i}/{n}")).unwrap();
        let r = Job::new(set.clone(), options(data, now, Some(spec)))
            .run(&store)
            .unwrap();
        let outcome = r.shard.clone().unwrap();
        assert!(outcome.partial_bytes > 0);
        // Until every shard has run once, nothing is published; from then on every shard (a retry)
        // publishes the merge again.
        complete |= order[..=reports.len()]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            == n as usize;
        match (&outcome.finalize, complete) {
            (Finalize::Incomplete { missing }, false) => assert!(!missing.contains(&i)),
            (Finalize::Published(p), true) => assert!(!p.facts.is_empty()),
            (other, c) => panic!("shard {i} (set complete: {c}): {other:?}"),
        }
        reports.push(r);
    }
    (published_rows(&db), reports)
}

/// A shuffled order of shards 1..=n with one of them run twice.
fn shuffled_with_retry(n: u32, rng: &mut impl Rng) -> Vec<u32> {
    let mut order: Vec<u32> = (1..=n).collect();
    order.shuffle(rng);
    let again = rng.random_range(1..=n);
    let at = rng.random_range(0..=order.len());
    order.insert(at, again);
    order
}

#[test]
fn shards_in_any_order_with_a_retry_publish_the_single_runs_facts_on_testdata() {
    let (data, set) = testdata();
    let (one, whole) = single(&data, &set, NOW_S);
    assert!(one.len() > 100, "the single run must publish facts");
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    for n in [2u32, 3, 7] {
        let order = shuffled_with_retry(n, &mut rng);
        let (rows, reports) = sharded(&data, &set, NOW_S, n, &order);
        assert_eq!(rows.len(), one.len(), "N = {n}, order {order:?}");
        assert_eq!(rows, one, "N = {n}, order {order:?}");
        // Each shard reads only its ranges: the shards of one pass together read about what the single
        // run read (range boundaries add a little), each of them much less.
        let mut firsts = std::collections::HashMap::new();
        for r in &reports {
            firsts.entry(r.shard.as_ref().unwrap().shard).or_insert(r);
        }
        let read: u64 = firsts.values().map(|r| r.rows_read).sum();
        assert_eq!(read, whole.rows_read, "N = {n}: rows read by all shards");
        let actors: u64 = firsts.values().map(|r| r.actors).sum();
        assert_eq!(
            actors, whole.actors,
            "N = {n}: every actor in exactly one shard"
        );
        for r in firsts.values() {
            assert!(
                r.rows_read < whole.rows_read,
                "N = {n}: a shard read everything"
            );
        }
    }
}

#[test]
fn shards_of_a_generated_three_node_rf3_dataset_publish_the_single_runs_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let gen = datagen::GenOptions {
        out: data.clone(),
        actors: 300,
        days: 10,
        events_per_actor: 8.0,
        sstables: 2,
        compression: sstable_reader::writer::Compression::Lz4,
        version: sstable_reader::writer::writer_version("nb").unwrap(),
        nodes: 3,
        rf: 3,
        seed: 11,
        end_ms: NOW_S * 1000,
        ttl: 8 * 86_400,
        apps: 2,
        snapshot_tag: "funnel-gen".into(),
    };
    datagen::generate(&gen, &mut |_| {}).unwrap();
    let (_, set) = testdata();
    let (one, _) = single(&data, &set, NOW_S);
    assert!(one.len() > 20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for n in [2u32, 3, 7] {
        let order = shuffled_with_retry(n, &mut rng);
        let (rows, _) = sharded(&data, &set, NOW_S, n, &order);
        assert_eq!(rows, one, "N = {n}, order {order:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn shards_of_token_range_files_publish_the_single_runs_facts_and_a_gap_or_overlap_is_refused() {
    let (data, set) = testdata();
    let (one, _) = single(&data, &set, NOW_S);
    let dir = tempfile::tempdir().unwrap();
    // Three "nodes'" primary ranges, one in nodetool's form, one wrapping past the ring's end.
    let a = write(
        dir.path(),
        "a.txt",
        "-9223372036854775808 -3000000000000000000\n",
    );
    let b = write(
        dir.path(),
        "b.txt",
        "\tTokenRange(start_token:-3000000000000000000, end_token:4000000000000000000, endpoints:[127.0.0.2])\n",
    );
    let c = write(
        dir.path(),
        "c.txt",
        "4000000000000000000 -9223372036854775808\n",
    );
    let overlap = write(
        dir.path(),
        "d.txt",
        "3000000000000000000 -9223372036854775808\n",
    );
    let gap = write(
        dir.path(),
        "e.txt",
        "5000000000000000000 -9223372036854775808\n",
    );
    let run = |db: &Path, i: u32, file: &Path| {
        let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
        let spec = ShardSpec::parse("ranges", &format!("{i}/3"))
            .unwrap()
            .with_token_ranges(file);
        Job::new(set.clone(), options(&data, NOW_S, Some(spec))).run(&store)
    };
    let db = dir.path().join("ok.db");
    for (i, f) in [(3, &c), (1, &a), (2, &b)] {
        run(&db, i, f).unwrap();
    }
    assert_eq!(published_rows(&db), one);

    let db = dir.path().join("overlap.db");
    run(&db, 1, &a).unwrap();
    run(&db, 2, &b).unwrap();
    let e = run(&db, 3, &overlap).unwrap_err().to_string();
    assert!(e.contains("of shards 2 and 3 overlap"), "{e}");
    assert!(published_rows(&db).is_empty(), "nothing may be published");

    let db = dir.path().join("gap.db");
    run(&db, 1, &a).unwrap();
    run(&db, 2, &b).unwrap();
    let e = run(&db, 3, &gap).unwrap_err().to_string();
    assert!(e.contains("leave parts of the ring unread"), "{e}");
    assert!(published_rows(&db).is_empty());
    // The right shard 3 (a retry) completes the set.
    run(&db, 3, &c).unwrap();
    assert_eq!(published_rows(&db), one);
}

#[test]
fn a_shard_of_a_different_run_is_refused_and_finalizing_again_publishes_nothing_new() {
    let (data, set) = testdata();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
    let shard = |i: u32, now: i64| {
        let spec = ShardSpec::parse("nightly", &format!("{i}/2")).unwrap();
        Job::new(set.clone(), options(&data, now, Some(spec))).run(&store)
    };
    shard(1, NOW_S).unwrap();
    let e = funnelizer::chain(&shard(2, NOW_S + 86_400).unwrap_err());
    assert!(
        e.contains("shard 2 of run \"nightly\" differs from its shard 1 in now_s (1793577600 here, 1793491200 there)"),
        "{e}"
    );
    // Another funnel set under the same name.
    let other = FunnelSet::parse(
        "[[funnel]]\nid = \"other\"\nwindow = \"1d\"\nsteps = [ { event = \"a\" } ]\n",
        "t",
    )
    .unwrap();
    let spec = ShardSpec::parse("nightly", "2/2").unwrap();
    let e = funnelizer::chain(
        &Job::new(other.clone(), options(&data, NOW_S, Some(spec)))
            .run(&store)
            .unwrap_err(),
    );
    assert!(e.contains("differs from its shard 1 in funnels"), "{e}");
    let e = funnelizer::finalize(&store, &set, "nightly").unwrap();
    assert!(
        matches!(&e, Finalize::Incomplete { missing } if missing == &[2]),
        "{e:?}"
    );

    let r = shard(2, NOW_S).unwrap();
    let Some(Finalize::Published(p)) = r.shard.map(|s| s.finalize) else {
        panic!("shard 2 completes the set")
    };
    let again = funnelizer::finalize(&store, &set, "nightly").unwrap();
    assert!(
        matches!(again, Finalize::AlreadyPublished(run) if run == p.run),
        "{again:?}"
    );
    let e = funnelizer::finalize(&store, &other, "nightly")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not those of the funnel set given"), "{e}");
    let e = funnelizer::finalize(&store, &set, "nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no shard has stored partial facts"), "{e}");
}

/// Shards retried at the same instant from separate connections (as separate processes would), each
/// replacing its partial and finalizing while the other does: every shard run succeeds, each
/// finalization publishes, is superseded, finds its partials published already or overtaken by the
/// other's retry — and the published facts stay the single run's.
#[test]
fn shards_finalizing_at_the_same_instant_publish_the_single_runs_facts() {
    let (data, set) = testdata();
    let one = single_cached(&data, &set);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("f.db").display());
    let run_shard = |i: u32| {
        let store = facts::open_store(&url).unwrap();
        let spec = ShardSpec::parse("nightly", &format!("{i}/2")).unwrap();
        Job::new(set.clone(), options(&data, NOW_S, Some(spec)))
            .run(&store)
            .map(|r| r.shard.unwrap().finalize)
    };
    run_shard(1).unwrap();
    run_shard(2).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run_shard(1));
            let b = s.spawn(|| run_shard(2));
            (a.join().unwrap(), b.join().unwrap())
        });
        for outcome in [a, b] {
            let outcome = outcome.unwrap();
            match &outcome {
                Finalize::Published(_)
                | Finalize::Superseded { .. }
                | Finalize::AlreadyPublished(_)
                | Finalize::Overtaken { .. } => {}
                other => panic!("{other:?}"),
            }
            seen.insert(
                format!("{outcome:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(published_rows(&dir.path().join("f.db")), one);
    }
    // Whatever the interleavings, the last partials are published (again, or already).
    let store = facts::open_store(&url).unwrap();
    let last = funnelizer::finalize(&store, &set, "nightly").unwrap();
    assert!(
        matches!(last, Finalize::AlreadyPublished(_) | Finalize::Published(_)),
        "{last:?}"
    );
    assert!(seen.contains("Published"), "{seen:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, ..Default::default() })]

    /// Any number of shards, any order, any shards retried (before or after the set completes): the
    /// published facts are the single run's.
    #[test]
    fn any_order_and_retries_publish_the_single_runs_facts(
        n in 2u32..=5,
        seed in proptest::prelude::any::<u64>(),
        retries in 0usize..=3,
    ) {
        let (data, set) = testdata();
        let one = single_cached(&data, &set);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut order: Vec<u32> = (1..=n).collect();
        order.shuffle(&mut rng);
        for _ in 0..retries {
            let again = rng.random_range(1..=n);
            let at = rng.random_range(0..=order.len());
            order.insert(at, again);
        }
        let (rows, _) = sharded(&data, &set, NOW_S, n, &order);
        proptest::prop_assert_eq!(rows, one, "N = {}, order {:?}", n, order);
    }
}

/// The single run's rows on the testdata, computed once for all proptest cases.
fn single_cached(data: &Path, set: &FunnelSet) -> Vec<String> {
    static ONE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ONE.get_or_init(|| single(data, set, NOW_S).0).clone()
}

#[test]
fn shards_reading_an_extract_cache_publish_the_single_runs_facts_cold_and_warm() {
    let (data, set) = testdata();
    let (one, _) = single(&data, &set, NOW_S);
    let cache = tempfile::tempdir().unwrap();
    for pass in ["cold", "warm"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
        for i in [2, 3, 1] {
            let mut o = options(&data, NOW_S, ShardSpec::parse("c", &format!("{i}/3")).ok());
            o.cache = Some(cache.path().to_path_buf());
            Job::new(set.clone(), o).run(&store).unwrap();
        }
        assert_eq!(published_rows(&db), one, "{pass} cache");
    }
}
