//! Columnar extracts of Cassandra SSTables: everything an exact merge needs of one SSTable — partition
//! keys and tokens, clustering, every cell's write timestamp, TTL and local deletion time, partition,
//! row, range, cell and complex (collection) deletions — in an Arrow IPC file, built once per SSTable
//! (SSTables are immutable) and read instead of its Data.db on every later run.
//!
//! ```no_run
//! use std::sync::Arc;
//! use extract::{write_extract_file, Extract, WriteOptions};
//! use sstable_reader::{Columns, MergeTable, ReadOptions, SSTable};
//! # let data = std::path::Path::new("nb-1-big-Data.db");
//! let sst = SSTable::open(data, None, ReadOptions::default())?;
//! let identity = extract::identity(&sst)?;
//! write_extract_file(&sst, "/cache/nb-1.arrow".as_ref(), identity.clone(), &WriteOptions::lz4())?;
//! let ext = Extract::open("/cache/nb-1.arrow".as_ref(), &sst, Some(&identity))?;
//! let mut table = MergeTable::new(vec![sst])?;
//! table.attach_feed(0, Arc::new(ext))?; // the merge now reads the extract, not Data.db
//! let mut scan = table.scan(&Columns::All, 1_800_000_000)?;
//! while let Some(p) = scan.next_partition()? { let _ = p.row_count(); }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`layout`]: the columns (one Arrow row per partition header, row or marker; text as dictionaries,
//!   multi-cell columns as maps; cell metadata stored only where it differs from the row's liveness).
//! - [`ExtractWriter`] / [`write_extract`]: one pass over an SSTable's Data.db.
//! - [`Extract`]: an opened, checksum-verified extract; a [`sstable_reader::PartitionFeed`], so the
//!   reader's merge ([`sstable_reader::MergeTable::attach_feed`]) runs over it unchanged, and TTL
//!   expiry is decided at the scan's `now`, never at extraction.
//! - [`ColdBuild`]: the entries a run builds from its own scan (one pass over each SSTable), a
//!   [`Chunk`] per range of the ring fed by a [`sstable_reader::ScanTap`].
//! - [`Cache`]: a directory of extracts keyed by the SSTable's identity ([`Identity`]), written
//!   atomically, verified on every open, dropped and rebuilt when damaged.

mod builders;
mod cache;
mod chunk;
mod cold;
mod container;
mod entry;
mod error;
mod identity;
mod ipc;
pub mod layout;
mod reader;
mod summary;
mod writer;

pub use builders::{WriteOptions, BATCH_ENTRIES, DICTIONARY_LIMIT};
pub use cache::{AttachReport, BuildProgress, Cache, CacheStats, GcReport, Missing};
pub use chunk::Chunk;
pub use cold::{ColdBuild, Tapped};
pub use error::{Error, Result};
pub use identity::{identity, identity_at};
pub use layout::FORMAT_VERSION;
pub use reader::Extract;
pub use summary::{Identity, Summary};
pub use writer::{write_extract, ExtractWriter};

use std::io::BufWriter;
use std::path::Path;

/// Writes the extract of `sst` to the file `path` (created or truncated; not atomic: the cache writes to
/// a temporary name and renames). A text column with too many distinct values for a dictionary is
/// written plain (a second pass). Returns the extract's summary.
pub fn write_extract_file(
    sst: &sstable_reader::SSTable,
    path: &Path,
    identity: Identity,
    options: &WriteOptions,
) -> Result<Summary> {
    let mut options = options.clone();
    loop {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        match write_extract(
            sst,
            BufWriter::with_capacity(1 << 20, file),
            path,
            identity.clone(),
            &options,
        ) {
            Ok((out, summary)) => {
                let file = out
                    .into_inner()
                    .map_err(|e| Error::io(path, e.into_error()))?;
                file.sync_all().map_err(|e| Error::io(path, e))?;
                return Ok(summary);
            }
            Err(Error::Replan { column, .. }) if !options.plain.contains(&column) => {
                options.plain.push(column);
            }
            Err(e) => return Err(e),
        }
    }
}
