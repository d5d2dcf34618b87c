//! What an extract says about itself (in its footer): the SSTable it was made of, its format version,
//! where its record batches start and end in the SSTable's Data.db, and which columns it holds.

use serde::{Deserialize, Serialize};

/// The identity of an SSTable that survives hard links into snapshots and backups: a hard link has the
/// same table, generation, size and digest, a compaction's output has a new generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub keyspace: String,
    pub table: String,
    /// The table id of the table directory's name (`events-<id>`); empty when the files are not in one.
    pub table_id: String,
    /// The SSTable's generation (a number, or a ULID-like id for `uuid_sstable_identifiers`).
    pub generation: String,
    /// The format version and kind (`nb-big`), so a different writer's file never matches.
    pub version: String,
    pub data_size: u64,
    /// The value Digest.crc32 holds (`None`: the SSTable has none; its mtime is used instead).
    pub digest: Option<u32>,
    /// Data.db's modification time (ns; shared by hard links, new when the file is rewritten in place).
    pub mtime_ns: Option<u128>,
}

/// The description stored in an extract's footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// [`crate::FORMAT_VERSION`] of the writer.
    pub format: u32,
    pub identity: Identity,
    pub partitions: u64,
    /// Rows (static rows included).
    pub rows: u64,
    /// Per record batch: the Data.db positions of its first and last partitions.
    pub batches: Vec<(u64, u64)>,
    /// The static and regular columns the extract holds (by name, in the SSTable's column order); a
    /// scan needing another one reads the SSTable's Data.db instead.
    pub columns: Vec<String>,
}
