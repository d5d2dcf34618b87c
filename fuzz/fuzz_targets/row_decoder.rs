//! Fuzzes the row decoder: arbitrary bytes become the (uncompressed, unchecksummed) Data.db of a real
//! Cassandra 3.11 table with every CQL type, and are scanned fully and rendered as `funnel dump` would.
//! Any outcome but a panic is fine; errors must carry file and offset.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sstable_reader::RowRenderer;
use sstable_reader::OwnedRow;
use sstable_reader::{Projection, ReadOptions, SSTable, Unfiltered};

fn table_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/sstables/cassandra-3.11-types/data/testalltypes/alltypes-b15935a0de6c11eb87f69116fc548b6b");
        let dir = std::env::temp_dir().join(format!("funnel-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["md-1-big-Statistics.db", "md-1-big-TOC.txt"] {
            std::fs::copy(src.join(name), dir.join(name)).unwrap();
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = table_dir().join("md-1-big-Data.db");
    std::fs::write(&path, data).unwrap();
    let Ok(sst) = SSTable::open(&path, None, ReadOptions::default()) else { return };
    let mut scan = sst.scanner(Projection::all(&sst.schema));
    let mut r = RowRenderer::new(&sst.schema, &[], 1_700_000_000, true);
    let mut lines = Vec::new();
    loop {
        match scan.next_partition() {
            Ok(Some(p)) => {
                let _ = r.start_partition(scan.key(), p.deletion, &mut lines);
            }
            _ => break,
        }
        loop {
            match scan.next_unfiltered() {
                Ok(Some(Unfiltered::Row(row))) => {
                    let _ = r.row(OwnedRow::from_row(&row), &mut lines);
                }
                Ok(Some(Unfiltered::Marker(m))) => {
                    let _ = r.marker(&m, &mut lines);
                }
                _ => break,
            }
        }
        let _ = r.end_partition(&mut lines);
        lines.clear();
    }
});
