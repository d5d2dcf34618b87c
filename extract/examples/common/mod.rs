//! What the extract examples share: a merged scan of a table over every range, counting its live
//! rows and a checksum of their values (so that two scans can be compared).

use sstable_reader::{for_each_ordered, plan_ranges, Columns, MergeTable};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Scans `table` merged with `columns` at `now` on `threads` threads: its live rows and a checksum
/// of their cells' values.
pub fn scan(table: &MergeTable, columns: &Columns, now: i64, threads: usize) -> Res<(u64, u64)> {
    let ranges = plan_ranges(&[table], threads * 8)?;
    let (mut rows, mut sum) = (0u64, 0u64);
    for_each_ordered(
        &ranges,
        threads,
        |r| {
            let mut scan = table.scan_spans(columns, now, &r.spans[0])?;
            let (mut n, mut s) = (0u64, 0u64);
            while let Some(p) = scan.next_partition()? {
                for row in p.rows() {
                    n += 1;
                    for c in row.cells() {
                        s = s.wrapping_mul(31).wrapping_add(
                            c.value.len() as u64 + c.value.first().copied().unwrap_or(0) as u64,
                        );
                    }
                }
            }
            Ok((n, s))
        },
        |_, (n, s)| {
            rows += n;
            sum = sum.wrapping_add(s);
            Ok(true)
        },
    )?;
    Ok((rows, sum))
}
