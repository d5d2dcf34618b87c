//! Fault tests of the stream's commits on the CQL store, through its session seam: the store runs over the
//! in-memory statement executor (`facts::cql_memory`, a model of the CQL semantics the store relies on —
//! not a server, not Cassandra), faults are injected between the store and it, and the stream's own batch
//! builder consumes real synthetic traffic (copies, poison, late clicks) the way the consumer does: after any
//! error or refusal it re-reads the store's committed offsets and carries on from there.
//!
//! After every fault — a commit that timed out after it applied, one that timed out before, a crash
//! between any two requests of a batch, two consumers racing for a partition — the counts, the
//! conversion records and the dead-letter counters equal the SQLite store's on the same input.
#![cfg(feature = "cql")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use facts::cql_memory::{store_over, Fault, Faulty, MemorySession, Target};
use facts::cql_session::CqlSession;
use facts::{Store, StreamSink};
use rand::{Rng, SeedableRng};
use stream::synth::{generate, with_copies, Produced, TrafficSpec};
use stream::{read_conversions, read_counts, read_dead_letter_counts, AttributionConfig};
use stream::{BatchBuilder, Conversion};

const GROUP: &str = "g";
const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;

/// The workload: a busy mix with copies, split over the partitions by Kafka key (as a producer does).
fn workload(seed: u64) -> Vec<Vec<Produced>> {
    let traffic = with_copies(&generate(&TrafficSpec::new(seed, 60)), seed, 2, 20);
    let mut parts = vec![Vec::new(); PARTITIONS as usize];
    for p in traffic {
        let h = p
            .key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        parts[(h % PARTITIONS as u32) as usize].push(p);
    }
    parts
}

/// What the store holds: counts of both apps, conversion records, dead letters per reason.
type Facts = (
    stream::CountTable,
    BTreeSet<Conversion>,
    BTreeMap<String, u64>,
);

fn facts_of(store: &Store) -> Facts {
    let mut counts = read_counts(store, "a1").unwrap();
    counts.extend(read_counts(store, "a2").unwrap());
    let records = read_conversions(store, None).unwrap().into_iter().collect();
    let dead = read_dead_letter_counts(store, GROUP, TOPIC).unwrap();
    (counts, records, dead)
}

/// The store's committed offset of a partition (0 when none).
fn committed(store: &Store, partition: i32) -> i64 {
    store
        .committed_offsets(GROUP, TOPIC)
        .unwrap()
        .into_iter()
        .find(|(p, _)| *p == partition)
        .map_or(0, |(_, o)| o)
}

/// Build the batch of `msgs` from `first` on.
fn build(store: &Store, partition: i32, first: i64, msgs: &[Produced]) -> facts::SpeedBatch {
    let cfg = AttributionConfig::default();
    let mut b = BatchBuilder::new(store, &cfg, TOPIC, partition, first);
    for (i, m) in msgs.iter().enumerate() {
        b.push(first + i as i64, Some(&m.payload), None).unwrap();
    }
    b.finish(GROUP, chrono::Utc::now().timestamp_millis())
        .unwrap()
        .0
}

/// Consume one batch of up to `n` messages of `partition` from the store's offset, as the consumer does:
/// `true` when it applied, `false` on a refusal or an error (the next call re-reads the offset).
fn step(store: &Store, parts: &[Vec<Produced>], partition: i32, n: usize) -> bool {
    let Ok(offsets) = store.committed_offsets(GROUP, TOPIC) else {
        return false;
    };
    let first = offsets
        .into_iter()
        .find(|(p, _)| *p == partition)
        .map_or(0, |(_, o)| o);
    let msgs = &parts[partition as usize];
    let from = first as usize;
    if from >= msgs.len() {
        return false;
    }
    let to = (from + n).min(msgs.len());
    let cfg = AttributionConfig::default();
    let mut b = BatchBuilder::new(store, &cfg, TOPIC, partition, first);
    for (i, m) in msgs[from..to].iter().enumerate() {
        b.push(first + i as i64, Some(&m.payload), None).unwrap();
    }
    let Ok((batch, _)) = b.finish(GROUP, chrono::Utc::now().timestamp_millis()) else {
        return false;
    };
    matches!(store.apply_speed_batch(&batch), Ok(true))
}

/// Consume everything left, in random batch sizes, round robin over the partitions.
fn drain(store: &Store, parts: &[Vec<Produced>], rng: &mut rand::rngs::StdRng) {
    for _ in 0..10_000 {
        let done = (0..PARTITIONS).all(|p| committed(store, p) as usize >= parts[p as usize].len());
        if done {
            return;
        }
        for p in 0..PARTITIONS {
            step(store, parts, p, rng.random_range(1..=25));
        }
    }
    panic!("the stream made no progress");
}

/// The SQLite store after the workload, without faults.
fn reference(parts: &[Vec<Produced>], seed: u64) -> (tempfile::TempDir, Facts) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
    drain(&store, parts, &mut rand::rngs::StdRng::seed_from_u64(seed));
    let facts = facts_of(&store);
    assert!(facts.1.len() > 10, "the workload must convert");
    assert!(!facts.2.is_empty(), "the workload must have poison");
    (dir, facts)
}

/// A CQL store (one process) over the shared executor, behind a fault injector.
fn process(memory: &Arc<MemorySession>) -> (Store, Arc<Faulty<Arc<MemorySession>>>) {
    let faulty = Faulty::new(memory.clone());
    let session: Arc<dyn CqlSession> = faulty.clone();
    (Store::Cql(store_over(session)), faulty)
}

#[test]
fn a_commit_that_timed_out_after_or_before_it_applied_counts_once() {
    for (seed, fault) in [(1, Fault::TimeoutAfter), (2, Fault::TimeoutBefore)] {
        let parts = workload(seed);
        let (_dir, want) = reference(&parts, seed);
        let memory = MemorySession::new();
        let (store, faulty) = process(&memory);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 100);
        let mut fired = 0;
        while (0..PARTITIONS).any(|p| (committed(&store, p) as usize) < parts[p as usize].len()) {
            // Every third batch's commit loses its answer.
            for p in 0..PARTITIONS {
                if rng.random_bool(0.33) {
                    faulty.arm(Target::NextConditional, fault);
                }
                step(&store, &parts, p, rng.random_range(1..=25));
                fired += usize::from(faulty.fired());
            }
        }
        assert!(fired > 5, "{fault:?}: only {fired} faults fired");
        assert_eq!(facts_of(&store), want, "{fault:?}");
    }
}

#[test]
fn a_crash_between_any_two_requests_of_a_batch_counts_once() {
    let seed = 3;
    let parts = workload(seed);
    let (_dir, want) = reference(&parts, seed);
    // The requests one batch sends (after the first, which also reads the commit point): crash before
    // each of them in turn, in the middle of the stream, then restart a fresh process.
    let requests_per_batch = {
        let memory = MemorySession::new();
        let rec = facts::cql_session::Recorder::new(memory.clone());
        let store = Store::Cql(store_over(rec.clone()));
        assert!(step(&store, &parts, 0, 20));
        rec.clear();
        assert!(step(&store, &parts, 0, 20));
        rec.requests().len()
    };
    assert!(requests_per_batch > 5, "{requests_per_batch}");
    for crash_at in 0..requests_per_batch + 2 {
        let memory = MemorySession::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(crash_at as u64);
        let (store, faulty) = process(&memory);
        for _ in 0..4 {
            step(&store, &parts, 0, 20);
            step(&store, &parts, 1, 20);
        }
        faulty.arm(Target::Nth(crash_at), Fault::Crash);
        step(&store, &parts, 0, 20);
        step(&store, &parts, 1, 20);
        assert!(faulty.crashed(), "crash at request {crash_at}");
        // The process is gone; a new one resumes from what the store committed.
        let (store, _) = process(&memory);
        drain(&store, &parts, &mut rng);
        assert_eq!(facts_of(&store), want, "crash before request {crash_at}");
    }
}

#[test]
fn two_consumers_racing_for_a_partition_count_once_and_the_zombie_is_fenced() {
    let seed = 4;
    let parts = workload(seed);
    let (_dir, want) = reference(&parts, seed);
    let memory = MemorySession::new();
    let (old, _) = process(&memory);
    let (new, _) = process(&memory);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..3 {
        step(&old, &parts, 0, 15);
        step(&old, &parts, 1, 15);
    }
    let mut fenced = 0;
    for round in 0..6 {
        // A rebalance: both build a batch from the same commit point; the new owner commits first, the
        // old one (a zombie) sends its commit after — its ids and records were written before the commit.
        let p = round % PARTITIONS;
        let first = committed(&old, p);
        let msgs = &parts[p as usize];
        let from = first as usize;
        let zombie_to = (from + 30).min(msgs.len());
        let owner_to = (from + 12).min(msgs.len());
        if from >= owner_to {
            continue;
        }
        let zombie = build(&old, p, first, &msgs[from..zombie_to]);
        let owner = build(&new, p, first, &msgs[from..owner_to]);
        assert!(new.apply_speed_batch(&owner).unwrap());
        match old.apply_speed_batch(&zombie) {
            Ok(false) => {}
            Err(facts::FactsError::OffsetOverlap { .. })
            | Err(facts::FactsError::PartitionTakenOver { .. }) => fenced += 1,
            Ok(true) => panic!("the zombie's batch was applied over the new owner's"),
            Err(e) => panic!("{e}"),
        }
        // Both go on; the zombie keeps losing wherever its view is stale.
        step(&new, &parts, p, rng.random_range(1..=25));
    }
    assert!(fenced >= 3, "{fenced} zombie commits refused");
    drain(&new, &parts, &mut rng);
    assert_eq!(facts_of(&new), want);
    assert_eq!(facts_of(&old), want, "another process reads the same");
}
