//! Summary.db (`IndexSummaryBuilder`, `IndexSummary.IndexSummarySerializer`, `SSTableReader.saveSummary`).
//!
//! Every `min_index_interval`-th partition (starting with the first) is sampled with its Index.db
//! position. Layout: `int min_index_interval`, `int entry count`, `long offheap size` (offsets + entries),
//! `int sampling level` (128 = full), `int size at full sampling`; then the entry offsets and the entries
//! (key bytes + `long` Index.db position) — both in *native* (little-endian) byte order, offsets counted
//! from the start of the offsets block; then the first and last partition keys (`int` length + bytes).

use super::encode::{put_i32, put_i64, put_int_bytes};

/// Cassandra's default `min_index_interval`.
pub const DEFAULT_MIN_INDEX_INTERVAL: u32 = 128;
const BASE_SAMPLING_LEVEL: i32 = 128;

/// Accumulates samples while partitions are written.
#[derive(Debug)]
pub struct SummaryBuilder {
    interval: u32,
    keys_written: u64,
    offsets: Vec<u32>,
    entries: Vec<u8>,
    first: Option<Vec<u8>>,
    last: Vec<u8>,
}

impl SummaryBuilder {
    pub fn new(min_index_interval: u32) -> Self {
        SummaryBuilder {
            interval: min_index_interval.max(1),
            keys_written: 0,
            offsets: Vec::new(),
            entries: Vec::new(),
            first: None,
            last: Vec::new(),
        }
    }

    /// Records a partition whose Index.db entry starts at `index_position`.
    pub fn add(&mut self, key: &[u8], index_position: u64) {
        if self.keys_written.is_multiple_of(self.interval as u64) {
            self.offsets.push(self.entries.len() as u32);
            self.entries.extend_from_slice(key);
            self.entries
                .extend_from_slice(&index_position.to_le_bytes());
        }
        if self.first.is_none() {
            self.first = Some(key.to_vec());
        }
        self.last.clear();
        self.last.extend_from_slice(key);
        self.keys_written += 1;
    }

    /// The Summary.db bytes.
    pub fn serialize(&self) -> Vec<u8> {
        let count = self.offsets.len();
        let base = count * 4;
        let mut out = Vec::with_capacity(24 + base + self.entries.len() + 2 * self.last.len() + 8);
        put_i32(&mut out, self.interval as i32);
        put_i32(&mut out, count as i32);
        put_i64(&mut out, (base + self.entries.len()) as i64);
        put_i32(&mut out, BASE_SAMPLING_LEVEL);
        put_i32(
            &mut out,
            self.keys_written.div_ceil(self.interval as u64) as i32,
        );
        for off in &self.offsets {
            out.extend_from_slice(&(off + base as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.entries);
        put_int_bytes(&mut out, self.first.as_deref().unwrap_or(&[]));
        put_int_bytes(&mut out, &self.last);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_real_nb_summary() {
        // legacy_nb_simple: keys "0".."4", Index.db positions 0, 5, 10, ...; one sample at position 0.
        let mut b = SummaryBuilder::new(128);
        for (i, k) in [b"0", b"1", b"2", b"3", b"4"].iter().enumerate() {
            b.add(&k[..], i as u64 * 5);
        }
        let want: Vec<u8> = vec![
            0, 0, 0, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0, 0x80, 0, 0, 0, 1, 4, 0,
            0, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x30, 0, 0, 0, 1, 0x34,
        ];
        assert_eq!(b.serialize(), want);
    }

    #[test]
    fn samples_every_interval() {
        let mut b = SummaryBuilder::new(2);
        for i in 0..5u8 {
            b.add(&[i], i as u64 * 10);
        }
        let s = b.serialize();
        assert_eq!(&s[4..8], &3i32.to_be_bytes());
        assert_eq!(&s[20..24], &3i32.to_be_bytes());
        // offsets 12, 21, 30 (after 3 offsets), entries [0]+0, [2]+20, [4]+40
        assert_eq!(&s[24..28], &12u32.to_le_bytes());
        assert_eq!(&s[28..32], &21u32.to_le_bytes());
        assert_eq!(s[36 + 9], 2);
        assert_eq!(&s[36 + 10..36 + 18], &20u64.to_le_bytes());
    }
}
