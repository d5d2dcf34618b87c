//! Nothing this reader does not understand is skipped without a word: unknown row, extended and cell
//! flag bits, unknown type classes in Statistics.db, and bytes left over in a row, marker or value are
//! errors naming the file and the offset. Each case damages one byte of an SSTable written by this
//! crate's writer (or of a real Cassandra file) whose layout the test checks first.

mod common;

use std::path::{Path, PathBuf};

use common::{dump_with, shared};
use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, ColumnContent, ColumnData, Compression, Liveness,
    Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{Columns, DeletionTime, Error, MergeTable, ReadOptions, SSTable};

const TS: i64 = 1_700_000_000_000_000;

/// A table `ks.t (k int, c int, s int static, v int, PRIMARY KEY (k, c))` with one partition: a static
/// row and two rows, written uncompressed (`nb`); returns the table directory.
fn write_table(root: &Path) -> PathBuf {
    let dir = root.join("ks/t-5b4c2f0e8a3d11ef9a8c0242ac120002");
    std::fs::create_dir_all(&dir).unwrap();
    let cql = "CREATE TABLE ks.t (k int, c int, s int static, v int, PRIMARY KEY (k, c));";
    let schema = schema_from_cql_text(cql, "t").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::None);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options).unwrap();
    let mut p = Partition::new(7_i32.to_be_bytes().to_vec());
    let mut st = Row::new(Vec::new());
    st.columns = vec![simple(0, 5)];
    p.static_row = Some(st);
    for c in [1_i32, 2] {
        let mut row = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
        row.liveness = Some(Liveness {
            timestamp: TS,
            expiry: None,
        });
        row.columns = vec![simple(0, 10 * c)];
        p.unfiltereds.push(Unfiltered::Row(row));
    }
    w.append(&p).unwrap();
    w.finish().unwrap();
    dir
}

fn simple(column: usize, v: i32) -> ColumnData {
    ColumnData {
        column,
        content: ColumnContent::Simple(Cell::live(TS, v.to_be_bytes().to_vec())),
    }
}

fn file(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap()
}

/// Positions of the static row and the regular rows, as the reader finds them.
fn row_positions(dir: &Path) -> Vec<u64> {
    let sst = SSTable::open(&file(dir, "Data.db"), None, ReadOptions::default()).unwrap();
    let mut scan = sst.scanner(sstable_reader::Projection::all(&sst.schema));
    let mut out = Vec::new();
    while scan.next_partition().unwrap().is_some() {
        while let Some(u) = scan.next_unfiltered().unwrap() {
            if let sstable_reader::Unfiltered::Row(r) = u {
                out.push(r.position());
            }
        }
    }
    out
}

/// Changes Data.db with `patch`, then rewrites CRC.db and Digest.crc32 to match, as a writer that
/// wrote those bytes would have: only the decoder can notice.
fn patch_data(dir: &Path, patch: impl FnOnce(&mut Vec<u8>)) {
    let path = file(dir, "Data.db");
    let mut data = std::fs::read(&path).unwrap();
    patch(&mut data);
    std::fs::write(&path, &data).unwrap();
    let crc_path = file(dir, "CRC.db");
    let chunk = 65536;
    let mut crc = (chunk as i32).to_be_bytes().to_vec();
    for c in data.chunks(chunk) {
        crc.extend(crc32fast::hash(c).to_be_bytes());
    }
    std::fs::write(crc_path, crc).unwrap();
    std::fs::write(
        file(dir, "Digest.crc32"),
        crc32fast::hash(&data).to_string(),
    )
    .unwrap();
}

/// Dumps through the single-SSTable scanner and through the merged scan (its fast path for plain rows
/// included): both must fail with a corruption error at `offset` whose message contains `expected`.
fn assert_corrupt(dir: &Path, offset: u64, expected: &str) {
    assert_corrupt_projected(dir, offset, expected, &[]);
}

/// [`assert_corrupt`] reading only the columns `columns` (all when empty).
fn assert_corrupt_projected(dir: &Path, offset: u64, expected: &str, columns: &[&str]) {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let err = dump_with(dir, None, ReadOptions::default(), &columns).unwrap_err();
    check(&err, offset, expected);
    let data = file(dir, "Data.db");
    let sst = SSTable::open(&data, None, ReadOptions::default()).unwrap();
    let table = MergeTable::new(vec![sst]).unwrap();
    let projection = if columns.is_empty() {
        Columns::All
    } else {
        Columns::Named(columns)
    };
    let mut scan = table.scan(&projection, common::NOW).unwrap();
    let err = loop {
        match scan.next_partition() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the merged scan read damaged data without an error"),
            Err(e) => break e,
        }
    };
    check(&err, offset, expected);
}

fn check(err: &Error, offset: u64, expected: &str) {
    let msg = err.to_string();
    assert!(
        err.is_corruption()
            && err.offset() == Some(offset)
            && msg.contains("nb-1-big-Data.db")
            && msg.contains(expected),
        "{msg}"
    );
}

#[test]
fn the_undamaged_table_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_table(tmp.path());
    let rows = common::dump(&dir);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[1]["s"].as_i64(), rows[1]["v"].as_i64()),
        (Some(5), Some(20))
    );
}

#[test]
fn unknown_extended_flag_bits_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_table(tmp.path());
    let static_row = row_positions(&dir)[0] as usize;
    patch_data(&dir, |d| {
        assert_eq!((d[static_row] & 0x80, d[static_row + 1]), (0x80, 0x01));
        d[static_row + 1] = 0x05;
    });
    assert_corrupt(&dir, static_row as u64 + 1, "found 0x05");
}

#[test]
fn unknown_cell_flag_bits_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_table(tmp.path());
    let row = row_positions(&dir)[1] as usize;
    // Flags, clustering header and value (1 + 4), row size; the row ends with its one cell: flags (it
    // takes the row's timestamp) and the 4-byte value.
    let size = row + 1 + 1 + 4;
    let cell = size + 1 + d_size(&dir, size) - 5;
    patch_data(&dir, |d| {
        assert_eq!(d[row], 0x24, "a row with a timestamp and all its columns");
        assert_eq!(d[cell], 0x08, "a cell taking the row's timestamp");
        d[cell] = 0x48;
    });
    assert_corrupt(&dir, cell as u64, "found 0x48");
}

#[test]
fn bytes_left_over_in_a_row_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_table(tmp.path());
    let row = row_positions(&dir)[1] as usize;
    let size = row + 1 + 1 + 4;
    let body_end = size + 1 + d_size(&dir, size);
    // The first row's size takes in one more byte (the second row's flags).
    patch_data(&dir, |d| d[size] += 1);
    assert_corrupt(&dir, body_end as u64, "1 byte(s) left over");
}

fn d_size(dir: &Path, at: usize) -> usize {
    let d = std::fs::read(file(dir, "Data.db")).unwrap();
    assert!(d[at] < 0x80, "a one-byte row size");
    d[at] as usize
}

#[test]
fn an_unknown_type_class_in_statistics_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("test_table");
    std::fs::create_dir_all(&dir).unwrap();
    let from = shared("cassandra-3.11-types/data/test_keyspace/test_table");
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    assert!(!common::dump(&dir).is_empty());
    // `md` has no Statistics.db checksums: the damaged name is all the reader sees.
    let stats = file(&dir, "Statistics.db");
    let bytes = std::fs::read(&stats).unwrap();
    let needle = b"marshal.Int32Type";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("an int column");
    let mut damaged = bytes.clone();
    damaged[at + needle.len() - 1] = b'd';
    std::fs::write(&stats, damaged).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        err.is_corruption()
            && msg.contains("md-1-big-Statistics.db")
            && msg.contains("org.apache.cassandra.db.marshal.Int32Typd"),
        "{msg}"
    );
}

/// A table `ks.p (k int, c int, v int, w int, m map<int, int>, PRIMARY KEY (k, c))` with one partition
/// of two rows, each with `v`, `w` and one element of `m` (the second also with a collection deletion,
/// as an INSERT writes it), written uncompressed (`nb`); returns the table directory.
fn write_projected_table(root: &Path) -> PathBuf {
    let dir = root.join("ks/p-5b4c2f0e8a3d11ef9a8c0242ac120003");
    std::fs::create_dir_all(&dir).unwrap();
    let cql =
        "CREATE TABLE ks.p (k int, c int, v int, w int, m map<int, int>, PRIMARY KEY (k, c));";
    let schema = schema_from_cql_text(cql, "p").unwrap();
    let index = |name: &str| schema.regulars.iter().position(|c| c.name == name).unwrap();
    assert_eq!(
        (index("v"), index("w"), index("m")),
        (0, 1, 2),
        "data order"
    );
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::None);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options).unwrap();
    let mut p = Partition::new(7_i32.to_be_bytes().to_vec());
    for c in [1_i32, 2] {
        let mut row = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
        row.liveness = Some(Liveness {
            timestamp: TS,
            expiry: None,
        });
        let mut element = Cell::live(TS, (100 * c).to_be_bytes().to_vec());
        element.path = Some(c.to_be_bytes().to_vec());
        let deletion = if c == 2 {
            DeletionTime {
                marked_for_delete_at: TS - 1,
                local_deletion_time: 1_700_000_000,
            }
        } else {
            DeletionTime::LIVE
        };
        row.columns = vec![
            simple(0, 10 * c),
            simple(1, 20 * c),
            ColumnData {
                column: 2,
                content: ColumnContent::Complex {
                    deletion,
                    cells: vec![element],
                },
            },
        ];
        p.unfiltereds.push(Unfiltered::Row(row));
    }
    w.append(&p).unwrap();
    w.finish().unwrap();
    dir
}

/// Where each row of [`write_projected_table`] ends, and where its `w` and map element flags are:
/// `w`'s cell is its flags (0x08: the row's timestamp) and its value `20 * c`; the element is the
/// row's last 11 bytes (flags, path size, path, value size and value: a collection's values have
/// their length written).
fn projected_layout(dir: &Path) -> Vec<(usize, usize, usize)> {
    let data = std::fs::read(file(dir, "Data.db")).unwrap();
    row_positions(dir)
        .into_iter()
        .zip([1_i32, 2])
        .map(|(row, c)| {
            let row = row as usize;
            let size = row + 1 + 1 + 4;
            let end = size + 1 + d_size(dir, size);
            let mut w_cell = vec![0x08];
            w_cell.extend((20 * c).to_be_bytes());
            let w = (size..end)
                .find(|&i| data[i..].starts_with(&w_cell))
                .expect("w's cell");
            (end, w, end - 11)
        })
        .collect()
}

/// `v` of each row, read with `--columns v` through the scanner and the merged scan.
fn projected_v(dir: &Path) -> (Vec<serde_json::Value>, Vec<Vec<u8>>) {
    let rows = dump_with(dir, None, ReadOptions::default(), &["v".to_string()]).unwrap();
    let sst = SSTable::open(&file(dir, "Data.db"), None, ReadOptions::default()).unwrap();
    let table = MergeTable::new(vec![sst]).unwrap();
    let mut scan = table
        .scan(&Columns::Named(vec!["v".into()]), common::NOW)
        .unwrap();
    let mut merged = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        for r in p.rows() {
            merged.extend(r.cells().map(|c| c.value.to_vec()));
        }
    }
    (rows, merged)
}

#[test]
fn the_undamaged_table_reads_under_a_projection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_projected_table(tmp.path());
    let all = common::dump(&dir);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["m"], serde_json::json!({"2": 200}), "{all:?}");
    let (rows, merged) = projected_v(&dir);
    assert_eq!(
        rows,
        vec![serde_json::json!({"v": 10}), serde_json::json!({"v": 20})]
    );
    assert_eq!(merged, vec![10_i32.to_be_bytes(), 20_i32.to_be_bytes()]);
}

#[test]
fn a_damaged_cell_outside_the_projection_is_an_error() {
    for (row, damaged) in [(0, "w"), (1, "w"), (0, "m"), (1, "m")] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_projected_table(tmp.path());
        let (_, w, m) = projected_layout(&dir)[row];
        let cell = if damaged == "w" { w } else { m };
        patch_data(&dir, |d| {
            assert_eq!(
                d[cell], 0x08,
                "row {row}, {damaged}: a cell taking the row's timestamp"
            );
            d[cell] = 0x48;
        });
        assert_corrupt_projected(&dir, cell as u64, "found 0x48", &["v"]);
    }
}

#[test]
fn bytes_left_over_in_a_row_are_an_error_under_a_projection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_projected_table(tmp.path());
    let row = row_positions(&dir)[0] as usize;
    let size = row + 1 + 1 + 4;
    let (end, _, _) = projected_layout(&dir)[0];
    // The first row's size takes in one more byte (the second row's flags).
    patch_data(&dir, |d| d[size] += 1);
    assert_corrupt_projected(&dir, end as u64, "1 byte(s) left over", &["v"]);
}
