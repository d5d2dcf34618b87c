//! What the writer writes: owned partitions, rows, cells and range tombstone markers, with values already
//! serialized in Cassandra's native format (see [`crate::value::Value::encode`]). Deletion times and bound
//! kinds are the reader's own types ([`crate::row::DeletionTime`], [`crate::row::BoundKind`]), so a
//! written partition and a read one speak the same vocabulary.

pub use crate::row::{BoundKind, DeletionTime};

/// One partition, its unfiltereds in clustering order.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Serialized partition key (`CompositeType` layout when the key has several columns).
    pub key: Vec<u8>,
    /// Partition-level deletion (`DeletionTime::LIVE` when none).
    pub deletion: DeletionTime,
    /// The static row, if the table has static columns and this partition sets any.
    pub static_row: Option<Row>,
    pub unfiltereds: Vec<Unfiltered>,
}

impl Partition {
    pub fn new(key: Vec<u8>) -> Self {
        Partition {
            key,
            deletion: DeletionTime::LIVE,
            static_row: None,
            unfiltereds: Vec::new(),
        }
    }
}

/// A row or a range tombstone marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Unfiltered {
    Row(Row),
    Marker(Marker),
}

/// A clustering value: `None` is a null component (only legal in bounds and COMPACT tables), an empty
/// vector is an empty value.
pub type ClusteringValue = Option<Vec<u8>>;

/// A row: clustering, primary key liveness, row deletion and its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// One value per clustering column (empty for the static row).
    pub clustering: Vec<ClusteringValue>,
    /// Primary key liveness (set by INSERT; `None` for rows only written by UPDATE or deleted).
    pub liveness: Option<Liveness>,
    /// Row tombstone (`DeletionTime::LIVE` when none).
    pub deletion: DeletionTime,
    /// Shadowable row tombstone (materialized views; `DeletionTime::LIVE` when none): written with
    /// ScyllaDB's extended flag 0x80 after `deletion` in ScyllaDB's layout, or as Cassandra's
    /// shadowable row deletion (flag 0x02, which then takes the place of `deletion`: one of the two).
    pub shadowable: DeletionTime,
    /// Columns present in the row, in ascending column index (Data.db order of the schema's columns).
    pub columns: Vec<ColumnData>,
}

impl Row {
    pub fn new(clustering: Vec<ClusteringValue>) -> Self {
        Row {
            clustering,
            liveness: None,
            deletion: DeletionTime::LIVE,
            shadowable: DeletionTime::LIVE,
            columns: Vec::new(),
        }
    }
}

/// Primary key liveness: write timestamp (µs) and optional TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub timestamp: i64,
    pub expiry: Option<Expiry>,
}

/// A TTL and the time (s) the data expires at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub ttl: i32,
    pub local_expiration_time: i64,
}

/// The data of one column in a row.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnData {
    /// Index into the schema's static or regular columns.
    pub column: usize,
    pub content: ColumnContent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnContent {
    /// A single cell (simple column or frozen value).
    Simple(Cell),
    /// A multi-cell collection or UDT: its own deletion (collection overwrite) and cells in path order.
    Complex {
        deletion: DeletionTime,
        cells: Vec<Cell>,
    },
}

/// A cell: timestamp (µs), live/expiring/tombstone state, cell path for complex columns, value bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub timestamp: i64,
    pub state: CellState,
    pub path: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

impl Cell {
    pub fn live(timestamp: i64, value: Vec<u8>) -> Self {
        Cell {
            timestamp,
            state: CellState::Live,
            path: None,
            value,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    Live,
    Expiring(Expiry),
    /// A tombstone written at `local_deletion_time` (s); its value is empty.
    Tombstone {
        local_deletion_time: i64,
    },
}

/// A range tombstone bound or boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Bound kind; never `Clustering` or `StaticClustering`.
    pub kind: BoundKind,
    /// Clustering prefix of the bound.
    pub values: Vec<ClusteringValue>,
    pub deletion: MarkerDeletion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerDeletion {
    /// Start or end bound: the deletion it opens or closes.
    Bound(DeletionTime),
    /// Boundary: closes `end` and opens `start` at the same clustering.
    Boundary {
        end: DeletionTime,
        start: DeletionTime,
    },
}
