//! Progress of scans: counters the workers of a (parallel) merged scan add to, and a display reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the workers of a parallel scan, for progress displays.
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Compressed (on-disk) Data.db bytes read.
    pub disk_bytes: AtomicU64,
    /// Rows read (every version in every SSTable).
    pub rows: AtomicU64,
    /// Merged partitions.
    pub partitions: AtomicU64,
}

impl ScanCounters {
    pub fn add(&self, disk_bytes: u64, rows: u64, partitions: u64) {
        self.disk_bytes.fetch_add(disk_bytes, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.partitions.fetch_add(partitions, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.disk_bytes.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
            self.partitions.load(Ordering::Relaxed),
        )
    }
}
