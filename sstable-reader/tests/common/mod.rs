//! Helpers for tests on real Cassandra files: where ../shared/sstables is, and dumping an SSTable's
//! live rows as JSON values through the library (the same path `funnel dump` takes).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sstable_reader::OwnedRow;
use sstable_reader::RowRenderer;
use sstable_reader::{
    discover, CqlSchema, Projection, ReadOptions, SSTable, Selection, Unfiltered,
};

pub fn shared(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/sstables")
        .join(p)
}

/// A fixed `now` (2024-01-01) so TTL judgements do not depend on the clock.
pub const NOW: i64 = 1_704_067_200;

pub fn dump_with(
    path: &Path,
    schema: Option<&CqlSchema>,
    options: ReadOptions,
    columns: &[String],
) -> sstable_reader::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for file in discover(&[path.to_path_buf()], &Selection::default())?.files() {
        let sst = SSTable::open(file, schema, options)?;
        let projection = if columns.is_empty() {
            Projection::all(&sst.schema)
        } else {
            Projection::columns(&sst.schema, columns).unwrap()
        };
        let mut r = RowRenderer::new(&sst.schema, columns, NOW, false);
        let mut scan = sst.scanner(projection);
        let mut lines = Vec::new();
        while let Some(p) = scan.next_partition()? {
            r.start_partition(scan.key(), p.deletion, &mut lines)
                .unwrap();
            while let Some(u) = scan.next_unfiltered()? {
                match u {
                    Unfiltered::Row(row) => r.row(OwnedRow::from_row(&row), &mut lines).unwrap(),
                    Unfiltered::Marker(m) => r.marker(&m, &mut lines).unwrap(),
                }
            }
            r.end_partition(&mut lines).unwrap();
        }
        for l in lines {
            out.push(serde_json::from_str(&l).expect("dump lines are JSON"));
        }
    }
    Ok(out)
}

pub fn dump(path: &Path) -> Vec<serde_json::Value> {
    dump_with(path, None, ReadOptions::default(), &[])
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Data.db files under `dir`, as every command finds them.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    discover(&[dir.to_path_buf()], &Selection::default())
        .unwrap()
        .files()
        .cloned()
        .collect()
}
