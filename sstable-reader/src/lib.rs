//! A zero-copy reader of Apache Cassandra SSTables (Cassandra 3.0 to 5.0: `ma` … `oa` big format and
//! `da` BTI), proved on files real Cassandra wrote.
//!
//! ```no_run
//! use sstable_reader::{Projection, ReadOptions, SSTable, Unfiltered};
//! let sst = SSTable::open("nb-1-big-Data.db".as_ref(), None, ReadOptions::default())?;
//! let mut scan = sst.scanner(Projection::all(&sst.schema));
//! while let Some(_partition) = scan.next_partition()? {
//!     while let Some(u) = scan.next_unfiltered()? {
//!         if let Unfiltered::Row(row) = u {
//!             for cell in row.cells() {
//!                 let _ = (cell.column, cell.value); // borrowed from the map or chunk buffer
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), sstable_reader::Error>(())
//! ```
//!
//! Layers, bottom up: [`bytes`] (cursor, vints), [`descriptor`] (file names, versions),
//! [`compression`] + [`data`] (mapped Data.db as verified uncompressed bytes), [`statistics`]
//! (Statistics.db), [`types`] + [`value`] + [`json`] (CQL values), [`schema`] (columns, schema.cql),
//! [`row`] + [`scanner`] (the unfiltered format), [`index`] (Index.db, Summary.db), [`partitions`] (BTI Partitions.db), [`sstable`] (it all together).

pub mod bytes;
pub mod compression;
pub mod cql;
pub mod data;
pub mod descriptor;
pub mod discovery;
pub mod error;
pub mod index;
pub mod json;
pub mod merge;
pub mod parallel;
pub mod partitioner;
pub mod partitions;
pub mod reconcile;
pub mod row;
pub mod scanner;
pub mod schema;
pub mod sstable;
pub mod statistics;
pub mod types;
pub mod value;
pub mod writer;

pub use descriptor::{Component, Descriptor, FormatKind, Version};
pub use discovery::{discover, DiscoveredTable, Discovery, Selection, Snapshot};
pub use error::{Error, Result};
pub use row::{BoundKind, Cell, DeletionTime, LivenessInfo, MarkerRef, RowRef, Unfiltered};
pub use scanner::{PartitionHeader, Projection, Scanner};
pub use schema::{Column, ColumnKind, CqlSchema, TableSchema};
pub use sstable::{ReadOptions, SSTable};
pub use statistics::{Statistics, StatsMetadata};
pub use types::CqlType;
pub use value::Value;
