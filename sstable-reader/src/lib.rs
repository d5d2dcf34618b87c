//! A zero-copy reader of Apache Cassandra SSTables (Cassandra 3.0 to 5.0: `ma` … `oa` big format and
//! `da` BTI; ScyllaDB's `mc` … `me` with `Scylla.db`), proved on files real Cassandra wrote, and a writer
//! of them (`nb`, `oa`, and `me` in ScyllaDB's layout) for bulk loading and test data. A node's schema
//! is read from its own `system_schema` ([`NodeSchema`]) when no `schema.cql` names the key columns.
//!
//! # Reading
//!
//! Find the tables under what operators point at ([`discover`]: Data.db files, table, snapshot,
//! keyspace, data or node directories), open each table's SSTables as one [`MergeTable`] and scan it:
//! partitions come in ring order, each the reconciliation of every SSTable's (and node's) version, as
//! Cassandra answers `SELECT *` at a fixed `now`. Rows and cells borrow from a reused arena: nothing is
//! allocated per row.
//!
//! ```
//! use sstable_reader::writer::{
//!     schema_from_cql_text, Cell, ColumnContent, ColumnData, Compression, Partition, Row,
//!     SSTableWriter, Unfiltered, WriterOptions,
//! };
//! use sstable_reader::{discover, Columns, Selection};
//!
//! // A table directory with one SSTable, written by this crate (as `nodetool flush` would leave it).
//! let dir = tempfile::tempdir()?;
//! let table_dir = dir.path().join("shop/orders-5b4c2f0e8a3d11ef9a8c0242ac120002");
//! let cql = "CREATE TABLE shop.orders (customer text, at int, total int, PRIMARY KEY (customer, at));";
//! let schema = schema_from_cql_text(cql, "orders")?;
//! std::fs::create_dir_all(&table_dir)?;
//! let options = WriterOptions::new(sstable_reader::writer::writer_version("nb")?, Compression::Lz4);
//! let mut writer = SSTableWriter::create(&table_dir, 1, &schema, options)?;
//! let mut partition = Partition::new(b"ada".to_vec());
//! let mut row = Row::new(vec![Some(20_i32.to_be_bytes().to_vec())]);
//! row.columns = vec![ColumnData {
//!     column: 0,
//!     content: ColumnContent::Simple(Cell::live(1_700_000_000_000_000, 42_i32.to_be_bytes().to_vec())),
//! }];
//! partition.unfiltereds = vec![Unfiltered::Row(row)];
//! writer.append(&partition)?;
//! writer.finish()?;
//!
//! // Read it back: find the tables, merge each one's SSTables, scan the live rows.
//! let found = discover(&[dir.path().to_path_buf()], &Selection::default())?;
//! let orders = found.table("shop.orders").expect("the table");
//! let table = orders.open(None, Default::default())?;
//! let total = table.schema().column("total").expect("a column").index;
//! let now = 1_800_000_000; // seconds: TTLs are judged at this one instant
//! let mut scan = table.scan(&Columns::All, now)?;
//! let mut totals = Vec::new();
//! while let Some(partition) = scan.next_partition()? {
//!     for row in partition.rows() {
//!         // Borrowed from the scan's arena until the next partition.
//!         let value = row.value(total).expect("a live cell");
//!         totals.push(i32::from_be_bytes(value.try_into()?));
//!     }
//! }
//! assert_eq!(totals, [42]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One SSTable can also be read on its own, unfiltered by unfiltered, tombstones included
//! ([`SSTable::open`], [`SSTable::scanner`]); [`plan_ranges`] and [`for_each_ordered`] scan the ring in
//! parallel ranges; [`RowRenderer`] prints rows as JSON; [`Stats::describe`] counts what
//! `sstablemetadata` prints about one SSTable.
//!
//! # Layers, bottom up
//!
//! [`bytes`] (cursor, vints) → descriptors (file names, versions) → compression and the mapped Data.db
//! (chunk-verified uncompressed bytes) → Statistics.db → CQL types, values and schema → row decoding and
//! the [`Scanner`] → [`SSTable`] → Index.db / Summary.db and BTI Partitions.db → the merge
//! ([`MergeTable`]) → parallel ranges → discovery. Modules depend only downwards; `funnel`'s CI checks
//! that no two modules of a crate import each other (`tests/tests/module_cycles.rs`).
//!
//! Errors ([`Error`]) name the file, and for damaged bytes the offset and what was expected.

pub mod bytes;
mod cardinality;
mod clustering;
mod compression;
mod cql;
mod data;
mod descriptor;
mod discovery;
mod error;
mod index;
mod json;
mod merge;
mod meta;
mod node_schema;
mod parallel;
mod partitioner;
mod partitions;
mod progress;
mod promoted;
mod reconcile;
mod row;
mod rows_index;
mod scanner;
mod schema;
mod scylla;
mod sstable;
mod statistics;
mod stats;
pub mod token_ring;
mod types;
mod value;
mod verify;
pub mod writer;

pub use compression::{Algorithm, CompressionInfo};
pub use cql::{composite, split_composite, RenderError, RowRenderer};
pub use data::{DataFile, DataReader};
pub use descriptor::{Component, Descriptor, FormatKind, Version, SUPPORTED_VERSIONS};
pub use discovery::{discover, DiscoveredTable, Discovery, InvalidSnapshot, Selection, Snapshot};
pub use error::{Error, Result};
pub use json::{format_seconds, format_timestamp_ms, format_timestamp_us, write_value};
pub use merge::feed::{FeedCell, FeedCursor, FeedStage, PartitionFeed};
pub use merge::order::compare_values;
pub use merge::{
    Columns, MergeStats, MergeTable, MergedPartition, MergedRow, MergedScan, MetaItem, ScanTap,
};
pub use node_schema::{find_data_dir, system_schema_keys, DroppedColumn, NodeSchema};
pub use parallel::{for_each_ordered, plan_ranges, plan_ranges_in, TokenRange};
pub use partitioner::{murmur3_token, partition_order, OwnedPosition, Partitioner, RingPosition};
pub use progress::ScanCounters;
pub use reconcile::{resolve, OwnedCell, OwnedMarker, OwnedRow};
pub use row::{
    row_deletion, BoundKind, Cell, DeletionTime, LivenessInfo, MarkerRef, RowRef, Unfiltered,
};
pub use scanner::{PartitionHeader, Projection, Scanner};
pub use schema::{Column, ColumnKind, CqlSchema, CqlTable, TableSchema};
pub use scylla::ScyllaMetadata;
pub use sstable::{ReadOptions, SSTable};
pub use statistics::{
    SerializationHeader, Statistics, StatsMetadata, ValidationMetadata, NO_DELETION_TIME,
};
pub use stats::{Stats, StatsColumn};
pub use token_ring::TokenSpan;
pub use types::{CqlType, UserType};
pub use value::{counter_total, Value, ValueError};
pub use verify::{verify, Check, Verification};

/// Internals this crate's own integration tests check directly (index and trie readers) and test-data
/// helpers; built only with the `test_common` feature (the crate's dev-dependency on itself). Not an API.
#[cfg(feature = "test_common")]
#[doc(hidden)]
pub mod test_common {
    pub use crate::index::{PartitionIndex, Summary};
    pub use crate::merge::counter::global_context;
    pub use crate::partitions::{data_positions, PartitionTrie, Target};
    pub use crate::writer::filter::BloomFilter;
}
