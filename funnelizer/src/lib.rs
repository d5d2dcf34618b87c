//! funnelizer: funnel definitions (TOML, `docs/FUNNELS.md`), the per-actor evaluation kernel for every
//! mode with its brute-force reference, the mergeable aggregation into `funnel_steps` facts, the batch
//! [`Job`] over SSTables (timelines streamed in ring order, or hash-shuffled for tables not partitioned
//! by actor), and how results are shown: the HTML [`report`] and the text tables and CSV of [`text`].
//!
//! ```no_run
//! use funnelizer::{FunnelSet, Job, JobOptions};
//! let set = FunnelSet::load("funnels.toml".as_ref())?;
//! let store = facts::open_store("sqlite:facts.db")?;
//! let report = Job::new(set, JobOptions::new(vec!["snapshots/".into()], 1_795_132_800))
//!     .run(&store)?;
//! for f in report.published.facts.iter().filter(|f| f.step == 1) {
//!     println!("{} {} {}: {} actors entered", f.app_id, f.funnel_id, f.day, f.actors);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, bottom up: `row` (what the kernel reads) → `predicate` + `definition` (the file format) →
//! `classify` + `kernel` (one actor, every funnel) and [`reference`] (the same by brute force) →
//! `aggregate` (facts) → `batch` (workers, publishing) → `source` (timelines from SSTables) and
//! `shuffle` → `job`, with `shard` (which token ranges a shard reads) and `finalize` (partials
//! of sharded runs, merged and published exactly); `inputs` is what a run records; `units` parses sizes
//! and times.

mod aggregate;
mod batch;
mod classify;
mod definition;
mod error;
pub mod finalize;
mod inputs;
mod job;
mod kernel;
mod predicate;
pub mod reference;
pub mod report;
mod row;
pub mod shard;
mod shuffle;
mod source;
pub mod text;
mod units;

pub use aggregate::Aggregator;
pub use batch::{evaluate_chunks, publish, thread_pool, Evaluation, Published, Worker};
pub use definition::{
    Exclusion, Funnel, FunnelSet, Matcher, Mode, Source, Step, TableSource, MAX_STEPS,
};
pub use error::{chain, line_col, DefinitionError, Error, ErrorKind};
pub use finalize::{finalize, Finalize, ShardOutcome};
pub use inputs::{FunnelLevels, RunInputs};
pub use job::{Job, JobOptions, JobState, Phase, Progress, RunReport, Timelines, Timings};
pub use kernel::{Kernel, Outcome};
pub use predicate::{Columns, Field, Literal, Op, Predicate};
pub use row::{ColumnRef, OwnedRow, OwnedValue, RowView, Table, Value};
pub use shard::ShardSpec;
pub use shuffle::ShuffleStats;
pub use units::{parse_bytes, parse_time};
