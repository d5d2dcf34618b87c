//! funnelizer: funnel definitions (TOML), the per-actor evaluation kernel for every mode, its
//! brute-force reference, the mergeable aggregation into `funnel_steps` facts, the batch job over
//! actor timelines (streamed in ring order, or through the hash shuffle of [`shuffle`] for tables not
//! partitioned by actor) and the HTML report.

pub mod aggregate;
pub mod batch;
pub mod classify;
pub mod definition;
pub mod error;
pub mod kernel;
pub mod predicate;
pub mod reference;
pub mod report;
pub mod row;
pub mod schedule;
pub mod shuffle;
pub mod source;

pub use aggregate::Aggregator;
pub use batch::{evaluate_chunks, publish, Evaluation, Published, Worker};
pub use definition::{
    Exclusion, Funnel, FunnelSet, Matcher, Mode, Source, Step, TableSource, MAX_STEPS,
};
pub use error::{BatchError, DefinitionError};
pub use kernel::{Kernel, Outcome};
pub use predicate::{Columns, Field, Literal, Op, Predicate};
pub use row::{ColumnRef, OwnedRow, OwnedValue, RowView, Table, Value};
pub use shuffle::{BucketProgress, ShuffleError, ShuffleOptions, ShuffleStats};
