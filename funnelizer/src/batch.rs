//! The batch job over actor timelines: rayon workers (each with its own [`Worker`]: kernel
//! buffers + partial aggregate) evaluate every funnel for each actor of independent chunks
//! (e.g. token ranges of the merged SSTable scan); partials are merged at the end and the facts
//! are published atomically with one watermark per (app, funnel, version).
//!
//! The run recomputes every day present in the input (all history on disk), which covers at least the
//! `[watermark − W, watermark)` that chains crossing the watermark need; the fact store carries days
//! older than the first recomputed day forward from the previous run (their raw events may have expired).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use facts::{BatchPublisher, Day, FunnelStepFact, FunnelTotalFact, RunId, RunMeta, Watermark};
use rayon::prelude::*;

use crate::aggregate::Aggregator;
use crate::definition::FunnelSet;
use crate::error::Error;
use crate::kernel::{Kernel, Outcome};
use crate::row::{RowView, Value};

/// One worker's state: reused kernel buffers and a partial aggregate.
pub struct Worker<'s> {
    set: &'s FunnelSet,
    kernel: Kernel,
    agg: Aggregator,
    breakdown: String,
    /// Actors observed.
    pub actors: u64,
    /// Rows observed.
    pub rows: u64,
}

impl<'s> Worker<'s> {
    /// A worker for the funnels of `set`.
    pub fn new(set: &'s FunnelSet) -> Self {
        Worker {
            set,
            kernel: Kernel::new(set),
            agg: Aggregator::new(),
            breakdown: String::new(),
            actors: 0,
            rows: 0,
        }
    }

    /// Evaluates every funnel over one actor's whole timeline (its rows from events and
    /// conversions, in any order) and adds the outcomes to the partial aggregate.
    pub fn observe_actor<R: RowView>(&mut self, app_id: &str, rows: &[R]) {
        self.rows += rows.len() as u64;
        self.evaluate(app_id, rows, false);
    }

    /// Starts an actor whose rows are offered one at a time: [`Worker::offer`] each row, then
    /// [`Worker::observe_offered`] with the kept ones. Same outcomes as [`Worker::observe_actor`]
    /// over all of them, without holding the rows no funnel can use.
    pub fn begin_actor(&mut self) {
        self.kernel.begin();
    }

    /// Whether the actor's next row must be kept for [`Worker::observe_offered`] (see
    /// [`Kernel::offer`]).
    #[inline]
    pub fn offer<R: RowView>(&mut self, row: &R) -> bool {
        self.kernel.offer(row)
    }

    /// Evaluates every funnel over the rows kept since [`Worker::begin_actor`] (`offered`: how many
    /// rows were offered, kept or not).
    pub fn observe_offered<R: RowView>(&mut self, app_id: &str, kept: &[R], offered: u64) {
        self.rows += offered;
        self.evaluate(app_id, kept, true);
    }

    fn evaluate<R: RowView>(&mut self, app_id: &str, rows: &[R], offered: bool) {
        self.actors += 1;
        let app = self.agg.app(app_id);
        let Worker {
            set,
            kernel,
            agg,
            breakdown,
            ..
        } = self;
        let sink = |f: usize, outcome: &Outcome| {
            breakdown.clear();
            if let (Some(fields), Some(row)) =
                (&set.funnels[f].breakdown, rows.get(outcome.breakdown_row))
            {
                match fields[row.table().index()].get(row) {
                    Value::Null => {}
                    Value::Str(s) => breakdown.push_str(s),
                    Value::Int(i) => {
                        let _ = write!(breakdown, "{i}");
                    }
                    Value::Float(x) => {
                        let _ = write!(breakdown, "{x}");
                    }
                }
            }
            agg.add_for(app, f, outcome, breakdown);
        };
        if offered {
            kernel.finish(rows, sink);
        } else {
            kernel.evaluate(rows, sink);
        }
    }

    /// The partial aggregate.
    pub fn into_aggregator(self) -> Aggregator {
        self.agg
    }
}

/// What the parallel evaluation produced.
#[derive(Debug)]
pub struct Evaluation {
    /// The merged aggregate.
    pub aggregate: Aggregator,
    /// Actors observed.
    pub actors: u64,
    /// Rows observed.
    pub rows: u64,
}

/// Evaluates all funnels over independent `chunks` in parallel on `pool`. `scan(chunk, worker)` streams
/// the chunk's actors into the worker ([`Worker::observe_actor`] or [`Worker::offer`]); a failing chunk
/// fails the whole evaluation with its error. Chunks are taken in their order, each by the next free
/// worker: ranges of the ring complete roughly in ring order (a cold cache run writes its entries in
/// that order, holding only the ranges completed ahead of the next one).
pub fn evaluate_chunks<C, F, E>(
    set: &FunnelSet,
    chunks: Vec<C>,
    pool: &rayon::ThreadPool,
    scan: F,
) -> Result<Evaluation, E>
where
    C: Send,
    F: Fn(C, &mut Worker<'_>) -> Result<(), E> + Sync,
    E: Send,
{
    type Partial = (Aggregator, u64, u64);
    let merge = |mut a: Partial, b: Partial| {
        a.0.merge(b.0);
        (a.0, a.1 + b.1, a.2 + b.2)
    };
    let workers = pool.current_num_threads().min(chunks.len()).max(1);
    let queue = Mutex::new(chunks.into_iter());
    let failed = AtomicBool::new(false);
    let (aggregate, actors, rows) = pool.install(|| {
        (0..workers)
            .into_par_iter()
            .map(|_| {
                let mut w = Worker::new(set);
                while !failed.load(Ordering::Relaxed) {
                    let next = queue.lock().map(|mut q| q.next());
                    let Ok(Some(chunk)) = next else { break };
                    if let Err(e) = scan(chunk, &mut w) {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                let (actors, rows) = (w.actors, w.rows);
                Ok::<Partial, E>((w.into_aggregator(), actors, rows))
            })
            .try_reduce(|| (Aggregator::new(), 0, 0), |a, b| Ok(merge(a, b)))
    })?;
    Ok(Evaluation {
        aggregate,
        actors,
        rows,
    })
}

/// A pool of `threads` workers (`None`: rayon's default, one per core).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, Error> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    Ok(builder.build()?)
}

/// What [`publish`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The run.
    pub run: RunId,
    /// The facts written, per breakdown value.
    pub facts: Vec<FunnelStepFact>,
    /// Also written: the all-breakdowns totals of funnels with a breakdown (`funnel_totals`).
    pub totals: Vec<FunnelTotalFact>,
    /// The watermarks published.
    pub watermarks: Vec<Watermark>,
}

/// Writes the facts of `aggregate` as one run and publishes it atomically with a watermark
/// `batch_until = day(now_ms)` for every (app seen, funnel), with the all-breakdowns totals of funnels
/// with a breakdown. On failure the run is marked failed.
///
/// `now_ms` (`--now`) only decides the watermark; the run's `started_at_ms` is the wall clock.
pub fn publish(
    store: &dyn BatchPublisher,
    set: &FunnelSet,
    aggregate: &Aggregator,
    now_ms: i64,
    inputs: serde_json::Value,
) -> Result<Published, Error> {
    let started_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let meta = RunMeta {
        started_at_ms,
        inputs,
        funnels: set
            .funnels
            .iter()
            .map(|f| (f.id.clone(), f.version.clone()))
            .collect(),
    };
    let run = store.begin_run(&meta)?;
    let facts = aggregate.facts(set);
    let totals = aggregate.breakdown_totals(set);
    let until = Day::from_unix_ms(now_ms);
    let watermarks: Vec<Watermark> = aggregate
        .apps()
        .iter()
        .flat_map(|app| {
            set.funnels
                .iter()
                .map(move |f| Watermark::funnel(app, &f.id, &f.version, until))
        })
        .collect();
    let result = store
        .write_funnel_steps(run, &facts)
        .and_then(|()| store.write_funnel_totals(run, &totals))
        .and_then(|()| store.publish(run, &watermarks));
    if let Err(e) = result {
        let _ = store.fail_run(run, &e.to_string());
        return Err(e.into());
    }
    Ok(Published {
        run,
        facts,
        totals,
        watermarks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::OwnedRow;
    use crate::{reference, Outcome};

    const DEF: &str = r#"
[[funnel]]
id = "buy"
window = "1h"
breakdown = "props.country"
steps = [ { hit = { tracker = "fb" } }, { event = "install" }, { event = "purchase" } ]
"#;

    fn actors() -> Vec<(String, String, Vec<OwnedRow>)> {
        let mut out = Vec::new();
        for i in 0..200i64 {
            let base = (i % 3) * 86_400_000 + i * 1000;
            let mut rows = vec![OwnedRow::event(
                base + 2000,
                "install",
                &[("country", ["de", "fr"][(i % 2) as usize])],
            )];
            if i % 4 != 0 {
                rows.push(OwnedRow::hit(base, "fb", "r"));
            }
            if i % 5 == 0 {
                rows.push(OwnedRow::event(base + 5000 + i, "purchase", &[]));
            }
            out.push((format!("app{}", i % 2), format!("u{i}"), rows));
        }
        out
    }

    #[test]
    fn parallel_chunks_give_the_same_facts_as_one_sequential_pass() {
        let set = FunnelSet::parse(DEF, "t").unwrap();
        let all = actors();
        let chunks: Vec<Vec<(String, String, Vec<OwnedRow>)>> =
            all.chunks(17).map(|c| c.to_vec()).collect();
        let pool = thread_pool(Some(2)).unwrap();
        let par = evaluate_chunks(&set, chunks, &pool, |chunk, w| {
            for (app, _, rows) in &chunk {
                w.observe_actor(app, rows);
            }
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(
            (par.actors, par.rows),
            (200, all.iter().map(|a| a.2.len() as u64).sum())
        );

        // Independent expectation from the reference evaluator.
        let mut seq = Aggregator::new();
        for (app, _, rows) in &all {
            seq.see_app(app);
            let o: Outcome = reference::evaluate(&set.funnels[0], rows);
            // The hit row has no country: first touch is the hit, so the breakdown is "".
            seq.add(app, 0, &o, "");
        }
        assert_eq!(par.aggregate.facts(&set), seq.facts(&set));
        assert!(par.aggregate.facts(&set).iter().any(|f| f.step == 3));
    }

    #[test]
    fn a_failing_chunk_fails_the_evaluation() {
        let set = FunnelSet::parse(DEF, "t").unwrap();
        let pool = thread_pool(Some(2)).unwrap();
        let err = evaluate_chunks(&set, vec![1, 2, 3], &pool, |c, _| {
            if c == 2 {
                Err("disk on fire")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err, "disk on fire");
    }

    #[test]
    fn publishes_facts_and_watermarks_to_sqlite() {
        use facts::FactReader;
        let set = FunnelSet::parse(DEF, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("facts.db").display());
        let store = facts::open_store(&url).unwrap();
        let eval = evaluate_chunks(
            &set,
            vec![actors()],
            &thread_pool(None).unwrap(),
            |chunk, w| {
                for (app, _, rows) in &chunk {
                    w.observe_actor(app, rows);
                }
                Ok::<(), String>(())
            },
        )
        .unwrap();
        let now = 10 * 86_400_000;
        let before_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let published = publish(
            &store,
            &set,
            &eval.aggregate,
            now,
            serde_json::json!({"test": true}),
        )
        .unwrap();
        assert_eq!(published.watermarks.len(), 2);
        let wm = store.watermarks("app0").unwrap();
        assert_eq!(wm.len(), 1);
        assert_eq!(
            (wm[0].funnel_version.as_str(), wm[0].batch_until),
            (set.funnels[0].version.as_str(), Day(10))
        );
        assert!(!published.facts.is_empty());
        // The run started at the wall clock, not at `now` (which only decides the watermark).
        let runs = store.runs(1).unwrap();
        assert_eq!(runs[0].run_id, published.run);
        assert!(runs[0].started_at_ms >= before_ms, "{:?}", runs[0]);
    }
}
