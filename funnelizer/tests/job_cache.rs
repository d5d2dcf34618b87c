//! The batch job with an extract cache (`JobOptions::cache`) on the project's generated snapshot: the
//! facts of a run without cache, a cold run (building every extract) and a warm run (reading them) are
//! byte-identical (on a generated multi-node dataset, at two `now`s between which TTLs expire, from one
//! cache), and stay so whatever happens to the cache —
//! truncated, damaged or foreign entries, a cache that cannot be written, two runs racing on one
//! cache, SSTables replaced between runs.

use std::path::{Path, PathBuf};

use funnelizer::{ErrorKind, FunnelSet, Job, JobOptions, RunReport};

/// 2026-11-01T00:00:00Z, the end of the testdata's history.
const NOW_S: i64 = 1_793_491_200;

fn testdata() -> (PathBuf, FunnelSet) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let set = FunnelSet::load(&root.join("funnels.toml")).unwrap();
    (root.join("snapshot"), set)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs the job over `data` at `now` into a fresh store; the facts as JSON bytes, and the report.
fn run(data: &Path, cache: Option<&Path>, now: i64) -> (Vec<u8>, RunReport) {
    run_set(testdata().1, data, cache, now)
}

/// [`run`] with the funnels of `set`.
fn run_set(set: FunnelSet, data: &Path, cache: Option<&Path>, now: i64) -> (Vec<u8>, RunReport) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
    let mut options = JobOptions::new(vec![data.to_path_buf()], now);
    options.threads = Some(2);
    options.cache = cache.map(Path::to_path_buf);
    let report = Job::new(set, options).run(&store).unwrap();
    let bytes = serde_json::to_vec(&report.published.facts).unwrap();
    (bytes, report)
}

/// Every entry file of a cache directory.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(cache).unwrap() {
        for e in std::fs::read_dir(t.unwrap().path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "arrow") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn facts_are_byte_identical_without_cache_cold_and_warm() {
    let (data, _) = testdata();
    let cache = tempfile::tempdir().unwrap();
    let (plain, r0) = run(&data, None, NOW_S);
    assert!(r0.cache.is_none());
    let (cold, r1) = run(&data, Some(cache.path()), NOW_S);
    let (warm, r2) = run(&data, Some(cache.path()), NOW_S);
    assert!(plain.len() > 100, "the runs must publish facts");
    assert_eq!(cold, plain, "cold cache");
    assert_eq!(warm, plain, "warm cache");
    let sstables = r2.events_sstables + r2.conversions_sstables;
    let (c1, c2) = (r1.cache.unwrap(), r2.cache.unwrap());
    assert_eq!((c1.hits, c1.built), (0, sstables), "{c1:?}");
    assert_eq!((c2.hits, c2.built, c2.dropped), (sstables, 0, 0), "{c2:?}");
    // One pass: the cold run built the entries from its own scan of every Data.db, range by range
    // (no extraction pass first, no reading of the fresh entries), and the warm run read only those.
    assert!(
        r1.ranges > 1,
        "the scan must run over several ranges ({})",
        r1.ranges
    );
    assert_eq!(
        r1.disk_bytes_read, r0.disk_bytes_read,
        "cold reads Data.db once"
    );
    assert_ne!(
        r2.disk_bytes_read, r0.disk_bytes_read,
        "warm reads the entries"
    );
}

/// Entries hold the columns the funnels read: a funnel set reading only event names builds narrow
/// entries of the events table (and none of the conversions table, which it does not read); a later
/// set reading properties and hits widens them and gets the facts of a run without cache.
#[test]
fn entries_hold_the_columns_read_and_are_widened_for_more() {
    let (data, full) = testdata();
    let names = FunnelSet::parse(
        "[[funnel]]\nid = \"names\"\nwindow = \"7d\"\n\
         steps = [{ event = \"install\" }, { event = \"purchase\" }]\n",
        "names.toml",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (plain_names, _) = run_set(names.clone(), &data, None, NOW_S);
    let (cold_names, r1) = run_set(names.clone(), &data, Some(cache.path()), NOW_S);
    assert_eq!(cold_names, plain_names);
    let c1 = r1.cache.unwrap();
    assert_eq!((c1.built, c1.widened), (r1.events_sstables, 0), "{c1:?}");
    let narrow: u64 = entries(cache.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let (plain, r0) = run_set(full.clone(), &data, None, NOW_S);
    let (widened, r2) = run_set(full.clone(), &data, Some(cache.path()), NOW_S);
    assert_eq!(widened, plain, "facts after widening");
    let c2 = r2.cache.unwrap();
    let all = r0.events_sstables + r0.conversions_sstables;
    assert_eq!(
        (c2.hits, c2.built, c2.widened),
        (0, all, r0.events_sstables),
        "{c2:?}"
    );
    let wide: u64 = entries(cache.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(wide > narrow, "{wide} vs {narrow}");
    // The wide entries serve both sets from now on.
    let (warm, r3) = run_set(full, &data, Some(cache.path()), NOW_S);
    let (warm_names, r4) = run_set(names, &data, Some(cache.path()), NOW_S);
    assert_eq!((warm, warm_names), (plain, plain_names));
    assert_eq!(r3.cache.unwrap().built + r4.cache.unwrap().built, 0);
}

/// 3 nodes (RF 2) of generated events with a 10-day TTL over 14 days (overwrites, deleted rows and
/// partitions included), read with one cache at two `now`s a few days apart.
#[test]
fn extracts_built_at_one_now_answer_at_another() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let options = datagen::GenOptions {
        out: data.clone(),
        actors: 300,
        days: 14,
        events_per_actor: 8.0,
        sstables: 2,
        compression: sstable_reader::writer::Compression::Lz4,
        version: sstable_reader::writer::writer_version("nb").unwrap(),
        nodes: 3,
        rf: 2,
        seed: 7,
        end_ms: NOW_S * 1000,
        ttl: 10 * 86_400,
        apps: 2,
        snapshot_tag: "funnel-gen".into(),
    };
    datagen::generate(&options, &mut |_| {}).unwrap();
    let cache = tmp.path().join("cache");
    let later = NOW_S + 3 * 86_400;
    let (plain_now, _) = run(&data, None, NOW_S);
    let (plain_later, _) = run(&data, None, later);
    assert_ne!(
        plain_now, plain_later,
        "TTLs must expire between the two nows"
    );
    let (cold, _) = run(&data, Some(&cache), NOW_S);
    let (warm_later, r) = run(&data, Some(&cache), later);
    let (warm_now, _) = run(&data, Some(&cache), NOW_S);
    assert_eq!(r.cache.unwrap().built, 0);
    assert_eq!(cold, plain_now);
    assert_eq!(warm_now, plain_now);
    assert_eq!(warm_later, plain_later);
}

#[test]
fn truncated_damaged_and_foreign_entries_are_dropped_and_rebuilt() {
    let (data, _) = testdata();
    let cache = tempfile::tempdir().unwrap();
    let (plain, _) = run(&data, None, NOW_S);
    run(&data, Some(cache.path()), NOW_S);
    let files = entries(cache.path());
    assert!(files.len() >= 4, "{files:?}");
    // Truncated.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    // A byte flipped in the middle.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&files[1], &bytes).unwrap();
    // Another SSTable's (valid) entry under this one's name.
    std::fs::copy(&files[3], &files[2]).unwrap();
    let (again, r) = run(&data, Some(cache.path()), NOW_S);
    assert_eq!(again, plain);
    let c = r.cache.unwrap();
    assert_eq!((c.dropped, c.built), (3, 3), "{c:?}");
    let (warm, r) = run(&data, Some(cache.path()), NOW_S);
    assert_eq!(warm, plain);
    assert_eq!(r.cache.unwrap().built, 0);
}

#[test]
fn a_cache_that_cannot_be_written_leaves_sstables_to_their_data_files() {
    let (data, _) = testdata();
    let cache = tempfile::tempdir().unwrap();
    let (plain, _) = run(&data, None, NOW_S);
    // Files where the table directories of the entries must go: no entry can be written (as in a
    // read-only or full cache directory; these tests may run as root, whom permissions do not stop).
    run(&data, Some(cache.path()), NOW_S);
    for t in std::fs::read_dir(cache.path()).unwrap() {
        let t = t.unwrap().path();
        std::fs::remove_dir_all(&t).unwrap();
        std::fs::write(&t, b"in the way").unwrap();
    }
    let (got, r) = run(&data, Some(cache.path()), NOW_S);
    assert_eq!(got, plain);
    let c = r.cache.unwrap();
    assert_eq!((c.hits, c.built), (0, 0), "{c:?}");
    assert_eq!(c.skipped.len(), r.events_sstables + r.conversions_sstables);
}

#[test]
fn two_runs_racing_on_one_cache_agree() {
    let (data, _) = testdata();
    let cache = tempfile::tempdir().unwrap();
    let (plain, _) = run(&data, None, NOW_S);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&data, Some(cache.path()), NOW_S).0);
        let b = s.spawn(|| run(&data, Some(cache.path()), NOW_S).0);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((&a, &b), (&plain, &plain));
    let (warm, r) = run(&data, Some(cache.path()), NOW_S);
    assert_eq!(warm, plain);
    assert_eq!(r.cache.unwrap().built, 0);
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flat_map(|t| std::fs::read_dir(t.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sstables_replaced_between_runs_are_read_afresh() {
    let (orig, _) = testdata();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_tree(&orig, &data);
    let cache = tmp.path().join("cache");
    run(&data, Some(&cache), NOW_S);
    // Compaction of the events table: generation 1 and 2 go, generation 2's number comes back with
    // generation 3's content (same generation, other size and digest), and a new generation 9 holds
    // what generation 1 held.
    let dir = std::fs::read_dir(data.join("tracking"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events-")
        })
        .unwrap()
        .join("snapshots/funnel-gen");
    let components = [
        "CompressionInfo.db",
        "Data.db",
        "Digest.crc32",
        "Filter.db",
        "Index.db",
        "Statistics.db",
        "Summary.db",
        "TOC.txt",
    ];
    for c in components {
        std::fs::rename(
            dir.join(format!("nb-1-big-{c}")),
            dir.join(format!("nb-9-big-{c}")),
        )
        .unwrap();
        std::fs::copy(
            dir.join(format!("nb-3-big-{c}")),
            dir.join(format!("nb-2-big-{c}")),
        )
        .unwrap();
    }
    let (plain, _) = run(&data, None, NOW_S);
    let (cached, r) = run(&data, Some(&cache), NOW_S);
    assert_eq!(cached, plain);
    let c = r.cache.unwrap();
    assert_eq!(c.built, 2, "{c:?}");
    // The entries of generations 1 and the old 2 are gone for good: gc finds them.
    let before = entries(&cache).len();
    let mut keep = Vec::new();
    for p in walk(&data) {
        if p.to_string_lossy().ends_with("-Data.db") {
            keep.push(extract::identity_at(&p).unwrap());
        }
    }
    let gc = extract::Cache::open(&cache, std::slice::from_ref(&data))
        .unwrap()
        .gc(Some(&keep), None)
        .unwrap();
    assert_eq!(gc.gone, 2, "{gc:?}");
    assert_eq!(entries(&cache).len(), before - 2);
    let (warm, r) = run(&data, Some(&cache), NOW_S);
    assert_eq!(warm, plain);
    assert_eq!(r.cache.unwrap().built, 0);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

#[test]
fn a_cache_inside_a_data_directory_is_refused() {
    let (orig, set) = testdata();
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&orig, tmp.path());
    let dir = tempfile::tempdir().unwrap();
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
    let mut options = JobOptions::new(vec![tmp.path().to_path_buf()], NOW_S);
    options.cache = Some(tmp.path().join("tracking/cache"));
    let err = Job::new(set, options).run(&store).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("outside the data directories"),
        "{err}"
    );
    assert!(!tmp.path().join("tracking/cache").exists());
}
