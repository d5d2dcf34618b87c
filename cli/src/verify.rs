//! `funnel verify`: every component of every SSTable checked (what `nodetool verify` / `sstableverify`
//! do), one line per SSTable, a non-zero exit when any is damaged.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sstable_reader::{discover, verify, Error, Selection};

/// Check SSTables whole: TOC.txt lists exactly the SSTable's files; Statistics checksums (before
/// `na`: its counts, timestamps and histograms against Data.db) and its key cardinality estimate
/// (recomputed from Data.db's keys), CompressionInfo, CRC.db, Digest.crc32, every chunk's checksum
/// and every row; Index.db (with the promoted row index of wide partitions) and Summary.db, or BTI
/// Partitions.db (with its keys) and Rows.db (with its row indexes: block offsets, open deletions,
/// separators), list exactly Data.db's partitions; Filter.db is exactly the bloom filter of
/// Data.db's keys.
///
/// Prints `ok PATH` per intact SSTable, `DAMAGED PATH` with each failed check (naming the
/// component, and the offset of damaged bytes) per damaged one, and `UNSUPPORTED PATH` for a
/// version or feature the reader does not decode; exits 1 when any is damaged.
///
/// Examples:
///   funnel verify /var/lib/cassandra/data/tracking
///   funnel verify nb-1-big-Data.db
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut damaged = 0usize;
    let found = discover(&args.paths, &Selection::default())?;
    for file in found.files() {
        let v = verify(file);
        if v.is_ok() {
            println!("ok {}", v.data_path.display());
            continue;
        }
        // A version or feature the reader does not decode cannot be verified, but is not damage.
        if let [only] = v.checks.as_slice() {
            if let Some(e @ Error::Unsupported { .. }) = &only.error {
                println!("UNSUPPORTED {}: {e}", v.data_path.display());
                continue;
            }
        }
        damaged += 1;
        println!("DAMAGED {}", v.data_path.display());
        for c in &v.checks {
            if let Some(e) = &c.error {
                println!("  {}: {e}", c.what);
            }
        }
    }
    if damaged > 0 {
        eprintln!("error: {damaged} damaged SSTable(s)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
