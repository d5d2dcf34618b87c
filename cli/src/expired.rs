//! The note `funnel dump` prints when it printed nothing because every row had expired (TTL) at `--now`.

use sstable_reader::{format_seconds, SSTable, NO_DELETION_TIME};

/// Rows a dump left out because their TTL had expired at `--now`, and the earliest expiry of the SSTables
/// read: when nothing is printed, stderr says so and how to read as of an earlier time.
#[derive(Default)]
pub struct Expired {
    /// Rows left out as expired.
    pub rows: u64,
    earliest: Option<i64>,
}

impl Expired {
    /// Notes the earliest expiry `sst` records.
    pub fn see(&mut self, sst: &SSTable) {
        let Some(s) = sst.statistics.stats.as_ref() else {
            return;
        };
        let t = s.min_local_deletion_time;
        if t > 0 && t != NO_DELETION_TIME {
            self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
        }
    }

    /// On stderr, when nothing was printed and rows had expired: how many, and how to read them.
    pub fn note(&self, printed: u64, now: i64, now_given: bool) {
        if printed > 0 || self.rows == 0 {
            return;
        }
        let at = format_seconds(now).unwrap_or_else(|| now.to_string());
        let given = if now_given { "" } else { " (the current time)" };
        let before = self
            .earliest
            .filter(|&t| t <= now)
            .and_then(|t| format_seconds(t - 1))
            .map(|t| format!(", e.g. --now {t} (just before the first expiry)"))
            .unwrap_or_default();
        eprintln!(
            "note: no live rows: {} row(s) had expired (TTL) at --now {at}{given}; to read them as of an earlier time, pass --now TS{before}",
            self.rows
        );
    }
}
