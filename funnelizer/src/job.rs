//! The batch job: one call that finds the events and conversions tables under the data paths (any mix of
//! snapshot, table, keyspace, data or node directories), merges each across all its SSTables and
//! replicas, brings every actor's timeline together, evaluates every funnel over all history on disk in
//! parallel and publishes the `funnel_steps` facts as one run, atomically, with the watermarks.
//!
//! Timelines come together one of two ways, chosen by the tables' layout: **streamed** (both tables
//! partitioned by (app, actor): a merge in ring order over ranges of the ring, one actor at a time) or
//! **shuffled** (any other layout: hash-partitioned by (app, actor) into buckets bounded by the memory
//! budget, spilled to disk past it; see [`crate::shuffle`]).
//!
//! `funnel run` (and so every attempt of `funnel schedule`), `funnel serve` and tests start it alike:
//!
//! ```no_run
//! use funnelizer::{FunnelSet, Job, JobOptions};
//! let set = FunnelSet::load("funnels.toml".as_ref())?;
//! let mut options = JobOptions::new(vec!["/backups/node1".into()], 1_795_132_800);
//! options.threads = Some(4);
//! let store = facts::open_store("sqlite:facts.db")?;
//! let report = Job::new(set, options).run(&store)?;
//! println!("run {} published {} facts", report.run, report.published.facts.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Progress`] sink (the job's callback trait) sees how far the job has come while it runs.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facts::{BatchPublisher, RunId};
use sstable_reader::{
    discover, plan_ranges_in, CqlSchema, DiscoveredTable, Discovery, Partitioner, ReadOptions,
    ScanCounters, Selection, Snapshot, TokenSpan,
};

use crate::batch::{evaluate_chunks, publish, thread_pool, Evaluation, Published};
use crate::definition::{Funnel, FunnelSet};
use crate::error::Error;
use crate::finalize::{self, Finalize, ShardInputs, ShardOutcome};
use crate::inputs::{FunnelLevels, RunInputs};
use crate::row::Table;
use crate::shard::ShardSpec;
use crate::shuffle::{self, BucketProgress, ShuffleOptions, ShuffleStats};
use crate::source::{scan_columns, Buffers, SstableSource};

/// What a job reads and how it runs. Build it with [`JobOptions::new`] and set the fields that differ
/// from the defaults; new options will come with defaults that keep a job as it was.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobOptions {
    /// Data.db files, table, snapshot, keyspace, data or node directories; all their copies of a table are
    /// merged.
    pub data: Vec<PathBuf>,
    /// Which copy of each table directory to read: the live SSTables (default), one snapshot tag, or the
    /// newest tag every directory of the two tables has.
    pub snapshot: Snapshot,
    /// CREATE TABLE statements naming the key columns (default: the `schema.cql` next to the files).
    pub schema: Option<PathBuf>,
    /// Seconds since the epoch at which TTLs are judged; its day is the watermark.
    pub now_s: i64,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// Ring ranges per thread (more: better balance and progress, more seeks).
    pub ranges_per_thread: usize,
    /// Bytes of shuffled rows held in memory before buckets spill to disk (shuffled runs only).
    pub memory_budget: u64,
    /// Where the shuffle's temporary spill directory is created (`None`: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// How often a [`Progress`] sink hears from a running scan.
    pub progress_interval: Duration,
    /// The directory of columnar extracts of the SSTables (`None`: no cache). SSTables with a valid
    /// extract are read from it; the others' extracts are built from the run's own scan of them (one
    /// pass; shuffled and sharded runs extract them first), so later runs decode only new SSTables.
    /// Results are the same with and without it.
    pub cache: Option<PathBuf>,
    /// Run as one shard of a sharded run (`None`: the whole ring, published as a run). A shard reads
    /// only its token ranges and stores its partial facts; the shard completing the set publishes the
    /// merged run ([`crate::finalize`]).
    pub shard: Option<ShardSpec>,
}

impl JobOptions {
    /// Default ring ranges per thread.
    pub const RANGES_PER_THREAD: usize = 8;
    /// Default memory budget of the shuffle: 1 GiB.
    pub const MEMORY_BUDGET: u64 = 1 << 30;

    /// Reads `data` (live SSTables, no schema file) at `now_s` on every core, with the default ranges per
    /// thread, memory budget and spill directory.
    pub fn new(data: Vec<PathBuf>, now_s: i64) -> JobOptions {
        JobOptions {
            data,
            snapshot: Snapshot::Live,
            schema: None,
            now_s,
            threads: None,
            ranges_per_thread: Self::RANGES_PER_THREAD,
            memory_budget: Self::MEMORY_BUDGET,
            spill_dir: None,
            progress_interval: Duration::from_millis(200),
            cache: None,
            shard: None,
        }
    }
}

/// The stage a running job is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Phase {
    /// Finding and opening the SSTables.
    #[default]
    Opening,
    /// Extracting the SSTables the cache has no extract of yet (bytes grow to the total of those).
    Extracting,
    /// Streaming the actors' timelines through the funnels (bytes and rows grow).
    Streaming,
    /// Shuffle phase 1: scanning the rows into buckets (bytes and rows grow).
    Shuffling,
    /// Shuffle phase 2: sorting each bucket and evaluating its actors (buckets grow).
    Evaluating,
    /// Writing and publishing the facts.
    Publishing,
    /// Published.
    Done,
}

/// How far a job has come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobState {
    /// The stage.
    pub phase: Phase,
    /// On-disk Data.db bytes of every SSTable the job reads (known from [`Phase::Streaming`] or
    /// [`Phase::Shuffling`] on).
    pub disk_bytes_total: u64,
    /// On-disk bytes read so far.
    pub disk_bytes_read: u64,
    /// Row versions read so far (every version in every SSTable).
    pub rows_read: u64,
    /// Merged partitions so far.
    pub partitions: u64,
    /// Shuffle buckets evaluated, of [`JobState::buckets_total`] (phase 2 of a shuffled run).
    pub buckets_done: u64,
    /// Shuffle buckets in all (0 until phase 2).
    pub buckets_total: u64,
    /// Since the job started.
    pub elapsed: Duration,
}

/// Where a running job reports how far it has come. The job calls it from its own threads, at every
/// change of [`Phase`] and about every [`JobOptions::progress_interval`] while it scans; an
/// implementation must be cheap and must not block (draw a bar, keep the latest snapshot for a page,
/// count).
pub trait Progress: Send + Sync {
    /// The job's state now.
    fn update(&self, now: &JobState);
}

/// How the actors' timelines were brought together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timelines {
    /// Both tables are partitioned by (app, actor): merged in ring order, one actor at a time.
    Streamed,
    /// A table is not partitioned by actor: hash-shuffled by (app, actor).
    Shuffled(ShuffleStats),
}

/// The time each stage of a job took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Finding and opening the SSTables.
    pub open: Duration,
    /// Scanning and evaluating (both shuffle phases).
    pub scan: Duration,
    /// Writing and publishing the facts.
    pub publish: Duration,
    /// The whole job.
    pub total: Duration,
}

/// Everything a finished job did, for its caller to print or show.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunReport {
    /// The published run.
    pub run: RunId,
    /// The facts, totals and watermarks it published.
    pub published: Published,
    /// What it read, as recorded with the run.
    pub inputs: RunInputs,
    /// Streamed or shuffled.
    pub timelines: Timelines,
    /// Actors evaluated.
    pub actors: u64,
    /// Rows of the actors' timelines.
    pub timeline_rows: u64,
    /// Row versions read (every version in every SSTable).
    pub rows_read: u64,
    /// Merged partitions.
    pub partitions: u64,
    /// On-disk bytes read.
    pub disk_bytes_read: u64,
    /// SSTables of the events table.
    pub events_sstables: usize,
    /// SSTables of the conversions table (0 when no funnel reads it).
    pub conversions_sstables: usize,
    /// On-disk Data.db bytes of those SSTables.
    pub bytes_on_disk: u64,
    /// Their uncompressed Data.db bytes.
    pub bytes_uncompressed: u64,
    /// Ring ranges scanned.
    pub ranges: usize,
    /// Worker threads.
    pub threads: usize,
    /// The shuffle's memory budget (bytes; used only when shuffled).
    pub memory_budget: u64,
    /// How long each stage took.
    pub timings: Timings,
    /// What the extract cache did (`None`: no cache).
    pub cache: Option<extract::AttachReport>,
    /// For a shard ([`JobOptions::shard`]): its partial and whether it finalized the run (then
    /// [`RunReport::published`] is the merged run; otherwise it is empty, under run 0).
    pub shard: Option<ShardOutcome>,
}

impl RunReport {
    /// Actors at each level of funnel `f` (level 1 first), over all apps, days and breakdowns.
    pub fn actors_per_level(&self, f: &Funnel) -> Vec<u64> {
        let mut per_level = vec![0u64; f.steps.len()];
        for x in self
            .published
            .facts
            .iter()
            .filter(|x| x.funnel_id == f.id && x.funnel_version == f.version)
        {
            if let Some(n) = (x.step as usize)
                .checked_sub(1)
                .and_then(|i| per_level.get_mut(i))
            {
                *n += x.actors;
            }
        }
        per_level
    }
}

/// One batch job: a funnel set and its [`JobOptions`].
pub struct Job {
    set: FunnelSet,
    options: JobOptions,
    progress: Option<Arc<dyn Progress>>,
}

impl Job {
    /// A job computing every funnel of `set`.
    pub fn new(set: FunnelSet, options: JobOptions) -> Job {
        Job {
            set,
            options,
            progress: None,
        }
    }

    /// Reports progress to `sink` while the job runs.
    pub fn with_progress(mut self, sink: Arc<dyn Progress>) -> Job {
        self.progress = Some(sink);
        self
    }

    /// The funnels it computes.
    pub fn funnels(&self) -> &FunnelSet {
        &self.set
    }

    /// Its options.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    /// Runs the job and publishes its facts (and, for funnels with a breakdown, their totals) into `store`
    /// as one run (on failure the run, if begun, is marked failed and readers keep the previous results).
    pub fn run(&self, store: &dyn BatchPublisher) -> Result<RunReport, Error> {
        let started = Instant::now();
        let (set, o) = (&self.set, &self.options);
        let tracker = Tracker {
            sink: self.progress.as_deref(),
            started,
            counters: ScanCounters::default(),
            buckets: BucketProgress::default(),
            build: extract::BuildProgress::default(),
        };
        tracker.phase(Phase::Opening, 0);
        let threads = o
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let Opened {
            mut source,
            events,
            conversions,
            cache,
        } = self.open(&tracker, threads)?;
        let sharding = match &o.shard {
            Some(spec) => Some(self.shard_spans(spec, &source)?),
            None => None,
        };
        let pool = thread_pool(Some(threads))?;
        let target_ranges = threads * o.ranges_per_thread.max(1);
        let (bytes_uncompressed, bytes_on_disk) = source.sizes();
        let (events_sstables, conversions_sstables) = source.sstable_counts();
        let open = started.elapsed();

        let scan_started = Instant::now();
        let (eval, ranges, timelines): (Evaluation, usize, Timelines) = if source.needs_shuffle() {
            let opts = ShuffleOptions {
                memory_budget: o.memory_budget,
                spill_dir: o.spill_dir.clone(),
                threads,
                ranges: target_ranges,
            };
            let (eval, stats) =
                tracker.ticking(Phase::Shuffling, o.progress_interval, bytes_on_disk, || {
                    shuffle::run(
                        set,
                        &source,
                        &opts,
                        &pool,
                        Some(&tracker.counters),
                        Some(&tracker.buckets),
                    )
                })?;
            (eval, stats.ranges, Timelines::Shuffled(stats))
        } else {
            let ranges = match &sharding {
                Some((_, spans)) => plan_ranges_in(&source.tables(), spans, target_ranges)?,
                None => source.plan(target_ranges)?,
            };
            let n = ranges.len();
            let eval =
                tracker.ticking(Phase::Streaming, o.progress_interval, bytes_on_disk, || {
                    evaluate_chunks(set, ranges, &pool, |range, worker| {
                        let mut bufs = Buffers::default();
                        source.scan_range(&range, worker, &mut bufs, Some(&tracker.counters))
                    })
                })?;
            (eval, n, Timelines::Streamed)
        };
        let scan = scan_started.elapsed();
        let mut cache = cache;
        let builds = std::mem::take(&mut source.cold);
        for (build, table) in builds.into_iter().zip(source.tables()) {
            let Some(build) = build else { continue };
            let built = build.finish(table)?;
            if let Some(c) = cache.as_mut() {
                *c += built;
            }
        }

        tracker.phase(Phase::Publishing, bytes_on_disk);
        let publish_started = Instant::now();
        let inputs = RunInputs {
            data: o.data.iter().map(|p| p.display().to_string()).collect(),
            events,
            conversions,
            now_s: o.now_s,
            apps: eval.aggregate.apps(),
            levels: FunnelLevels::of_set(set),
            sharded: None,
        };
        let (published, shard) = match (&o.shard, sharding) {
            (Some(spec), Some((p, spans))) => {
                let (published, outcome) =
                    self.store_partial(store, spec, p, spans, &eval, &inputs, &tracker)?;
                (published, Some(outcome))
            }
            _ => {
                let json = serde_json::to_value(&inputs).unwrap_or_default();
                let published = publish(store, set, &eval.aggregate, o.now_s * 1000, json)?;
                (published, None)
            }
        };
        let publish = publish_started.elapsed();
        tracker.phase(Phase::Done, bytes_on_disk);
        let (disk_bytes_read, rows_read, partitions) = tracker.counters.get();
        Ok(RunReport {
            run: published.run,
            published,
            inputs,
            timelines,
            actors: eval.actors,
            timeline_rows: eval.rows,
            rows_read,
            partitions,
            disk_bytes_read,
            events_sstables,
            conversions_sstables,
            bytes_on_disk,
            bytes_uncompressed,
            ranges,
            threads,
            memory_budget: o.memory_budget,
            timings: Timings {
                open,
                scan,
                publish,
                total: started.elapsed(),
            },
            cache,
            shard,
        })
    }

    /// The partitioner and token spans of a shard (refused for shuffled tables: their partitions do not
    /// hold whole actors, so a token range does not either).
    fn shard_spans(
        &self,
        spec: &ShardSpec,
        source: &SstableSource,
    ) -> Result<(Partitioner, Vec<TokenSpan>), Error> {
        if source.needs_shuffle() {
            return Err(Error::Shard {
                message: "a table the funnels read is not partitioned by (app, actor), so a token range does not hold whole actors: run it unsharded".into(),
            });
        }
        let p = source
            .tables()
            .first()
            .map_or(Partitioner::Murmur3, |t| t.partitioner());
        Ok((p, spec.spans(p)?))
    }

    /// Stores a shard's partial facts and finalizes the run when it completes the set.
    #[allow(clippy::too_many_arguments)]
    fn store_partial(
        &self,
        store: &dyn BatchPublisher,
        spec: &ShardSpec,
        p: Partitioner,
        spans: Vec<TokenSpan>,
        eval: &Evaluation,
        inputs: &RunInputs,
        tracker: &Tracker<'_>,
    ) -> Result<(Published, ShardOutcome), Error> {
        let (set, o) = (&self.set, &self.options);
        let snapshot = format!("{:?}", o.snapshot);
        let identity = finalize::identity(set, spec, p, o.now_s, &snapshot, &inputs.data);
        let shard_inputs = ShardInputs {
            spans: finalize::span_strings(&spans),
            run: inputs.clone(),
            actors: eval.actors,
            disk_bytes_read: tracker.counters.get().0,
        };
        let (partial_bytes, outcome) =
            finalize::put_partial(store, set, spec, identity, &eval.aggregate, &shard_inputs)?;
        let published = match &outcome {
            Finalize::Published(p) => p.clone(),
            _ => Published {
                run: RunId(0),
                facts: Vec::new(),
                totals: Vec::new(),
                watermarks: Vec::new(),
            },
        };
        Ok((
            published,
            ShardOutcome {
                run_name: spec.run_name.clone(),
                shard: spec.index,
                shards: spec.count,
                spans,
                partial_bytes,
                finalize: outcome,
            },
        ))
    }
}

/// The tables a job reads, opened.
struct Opened {
    source: SstableSource,
    /// The Data.db files of each table.
    events: Vec<String>,
    conversions: Vec<String>,
    cache: Option<extract::AttachReport>,
}

impl Job {
    /// Finds the events and conversions tables under the data paths and opens them.
    fn open(&self, tracker: &Tracker<'_>, threads: usize) -> Result<Opened, Error> {
        let (set, o) = (&self.set, &self.options);
        let schema = match &o.schema {
            Some(p) => Some(CqlSchema::read(p).map_err(Error::Schema)?),
            None => None,
        };
        let (events, conversions) = (&set.source.events.table, &set.source.conversions.table);
        let found = discover(
            &o.data,
            &Selection {
                tables: vec![events.clone(), conversions.clone()],
                snapshot: o.snapshot.clone(),
            },
        )?;
        let events = find(&found, events, &o.data, &o.snapshot)?;
        let conversions = found.table(conversions);
        let options = ReadOptions::default();
        let mut ev = events.open(schema.as_ref(), options)?;
        let mut cv = match conversions {
            Some(c) => Some(c.open(schema.as_ref(), options)?),
            None => None,
        };
        // A table no funnel reads is not scanned (`SstableSource::new`): not extracted either.
        let uses_conv = set.funnels.iter().any(|f| f.uses(Table::Conversions));
        // Valid cache entries are attached now; the others are built below.
        let mut planned = None;
        if let Some(dir) = &o.cache {
            let cache = extract::Cache::open(dir, &o.data)?;
            // Entries hold the columns the funnels read (and are widened when a later one reads more).
            let columns = scan_columns(set, Table::Events, ev.schema());
            let (mut report, ev_missing) = cache.plan_columns(&mut ev, &columns)?;
            let mut cv_missing = extract::Missing::default();
            if let Some(cv) = cv.as_mut().filter(|_| uses_conv) {
                let columns = scan_columns(set, Table::Conversions, cv.schema());
                let (r, m) = cache.plan_columns(cv, &columns)?;
                report += r;
                cv_missing = m;
            }
            planned = Some((cache, report, [ev_missing, cv_missing]));
        }
        // Without a schema file the key columns are only `pk0…`, `ck0…`.
        let named = |t: &DiscoveredTable| schema.is_some() || !t.schema_files.is_empty();
        let key_names = [named(events), conversions.is_some_and(named)];
        let mut source = SstableSource::new(set, ev, cv, o.now_s, key_names)?;
        let cache = match planned {
            None => None,
            Some((cache, mut report, [ev_missing, cv_missing])) => {
                // A streamed run over the whole ring builds the entries from its own scan (one pass);
                // a shuffled or sharded one extracts those SSTables first (a shard reads part of them).
                if !source.needs_shuffle() && o.shard.is_none() {
                    source.cold = [
                        Some(extract::ColdBuild::new(&cache, &source.events, ev_missing)),
                        source
                            .conversions
                            .as_ref()
                            .map(|cv| extract::ColdBuild::new(&cache, cv, cv_missing)),
                    ];
                } else {
                    let total = |t: &sstable_reader::MergeTable| {
                        t.sstables().iter().map(|s| s.data.file_len()).sum::<u64>()
                    };
                    let bytes =
                        total(&source.events) + source.conversions.as_ref().map_or(0, total);
                    let (ev, cv) = (&mut source.events, source.conversions.as_mut());
                    report +=
                        tracker.ticking(Phase::Extracting, o.progress_interval, bytes, || {
                            cache.build_missing(ev, ev_missing, threads, Some(&tracker.build))
                        })?;
                    if let Some(cv) = cv {
                        report += tracker.ticking(
                            Phase::Extracting,
                            o.progress_interval,
                            bytes,
                            || cache.build_missing(cv, cv_missing, threads, Some(&tracker.build)),
                        )?;
                    }
                }
                Some(report)
            }
        };
        Ok(Opened {
            source,
            events: paths(&events.files),
            conversions: conversions.map(|c| paths(&c.files)).unwrap_or_default(),
            cache,
        })
    }
}

fn paths(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|p| p.display().to_string()).collect()
}

/// The discovered table the `[source]` names (`keyspace.table`, or `table` in any keyspace). When it is
/// missing, the error lists every table under the data paths (not only those the funnels read), so a
/// misspelt name shows next to the right one.
fn find<'a>(
    found: &'a Discovery,
    name: &str,
    data: &[PathBuf],
    snapshot: &Snapshot,
) -> Result<&'a DiscoveredTable, Error> {
    if let Some(t) = found.table(name) {
        return Ok(t);
    }
    let all = discover(data, &Selection::snapshot(snapshot.clone()));
    let tables = all.as_ref().map_or(&found.tables, |a| &a.tables);
    let join = |v: Vec<String>| v.join(", ");
    Err(Error::NoTable {
        table: name.to_string(),
        data: join(data.iter().map(|p| p.display().to_string()).collect()),
        found: join(tables.iter().map(DiscoveredTable::qualified).collect()),
    })
}

/// The job's side of progress reporting: the counters the scan workers add to, and the sink.
struct Tracker<'s> {
    sink: Option<&'s dyn Progress>,
    started: Instant,
    counters: ScanCounters,
    buckets: BucketProgress,
    /// The extract cache's building ([`Phase::Extracting`]).
    build: extract::BuildProgress,
}

impl Tracker<'_> {
    fn state(&self, phase: Phase, disk_bytes_total: u64) -> JobState {
        let (mut disk_bytes_read, rows_read, partitions) = self.counters.get();
        let mut disk_bytes_total = disk_bytes_total;
        if phase == Phase::Extracting {
            use std::sync::atomic::Ordering::Relaxed;
            disk_bytes_total = self.build.bytes_total.load(Relaxed);
            disk_bytes_read = self.build.bytes_done.load(Relaxed);
        }
        let (buckets_done, buckets_total) = self.buckets.get();
        JobState {
            phase,
            disk_bytes_total,
            disk_bytes_read,
            rows_read,
            partitions,
            buckets_done,
            buckets_total,
            elapsed: self.started.elapsed(),
        }
    }

    fn phase(&self, phase: Phase, disk_bytes_total: u64) {
        if let Some(sink) = self.sink {
            sink.update(&self.state(phase, disk_bytes_total));
        }
    }

    /// Runs `work` while a thread tells the sink how far the scan has come every `interval` (a
    /// shuffle's second phase once its buckets are known). The scan workers only add to the counters.
    fn ticking<T>(
        &self,
        phase: Phase,
        interval: Duration,
        disk_bytes_total: u64,
        work: impl FnOnce() -> T,
    ) -> T {
        let Some(sink) = self.sink else {
            return work();
        };
        self.phase(phase, disk_bytes_total);
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let shuffle_evaluates = self.buckets.get().1 > 0;
                    let now = if shuffle_evaluates {
                        Phase::Evaluating
                    } else {
                        phase
                    };
                    sink.update(&self.state(now, disk_bytes_total));
                }
            });
            let out = work();
            drop(stop);
            out
        })
    }
}
