//! Rendered answers — funnel pages and documents, counts, the index — kept per request and per the
//! state they were computed from ([`Stamp`]: the fact store's data version, the funnels file's identity
//! and the day). Any commit to the store (a publish flipping pointers, a stream batch, a run starting)
//! or any change of the funnels file gives a new stamp, so a kept answer is never served once something
//! it shows may have changed. Concurrent requests for the same answer compute it once (the others wait
//! for it), so the moment after a publish costs one computation per answer, not one per client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use tokio::sync::OnceCell;

/// Answers kept at most; past it, those of older stamps are dropped first, then all.
const KEPT: usize = 512;

/// What the funnels file is at one moment, as its metadata tells (a save replaces the file, so its
/// inode changes; an edit in place changes its size or modification time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64, i64, i64),
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The state an answer was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The fact store's data version (`FactReader::data_version`).
    pub data: u64,
    /// The funnels file.
    pub file: FileStamp,
    /// Today (answers without `to` end today).
    pub day: facts::Day,
}

/// One rendered answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: Bytes,
}

struct Entry {
    stamp: Stamp,
    answer: Arc<OnceCell<Answer>>,
}

/// The kept answers of a server, by request key.
#[derive(Default)]
pub struct Answers {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Answers {
    /// The slot of `key`'s answer at `stamp`: filled when it was computed at this stamp, or being
    /// filled by another request, or empty (the caller computes it).
    pub fn slot(&self, key: &str, stamp: &Stamp) -> Arc<OnceCell<Answer>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get(key) {
            if e.stamp == *stamp {
                return e.answer.clone();
            }
        }
        if entries.len() >= KEPT && !entries.contains_key(key) {
            entries.retain(|_, e| e.stamp == *stamp);
            if entries.len() >= KEPT {
                entries.clear();
            }
        }
        let answer = Arc::new(OnceCell::new());
        entries.insert(
            key.to_string(),
            Entry {
                stamp: stamp.clone(),
                answer: answer.clone(),
            },
        );
        answer
    }

    /// How many answers are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(data: u64) -> Stamp {
        let dir = std::env::temp_dir();
        Stamp {
            data,
            file: FileStamp::of(&std::fs::metadata(dir).unwrap()),
            day: facts::Day(1),
        }
    }

    #[tokio::test]
    async fn an_answer_is_kept_until_the_stamp_changes() {
        let answers = Answers::default();
        let a = Answer {
            content_type: "text/plain",
            body: Bytes::from_static(b"one"),
        };
        let slot = answers.slot("k", &stamp(1));
        slot.get_or_init(|| async { a.clone() }).await;
        assert!(answers.slot("k", &stamp(1)).get().is_some());
        assert!(answers.slot("other", &stamp(1)).get().is_none());
        assert!(answers.slot("k", &stamp(2)).get().is_none(), "served stale");
    }

    #[test]
    fn the_number_kept_is_bounded() {
        let answers = Answers::default();
        for i in 0..(3 * KEPT) {
            answers.slot(&i.to_string(), &stamp(1));
        }
        assert!(answers.len() <= KEPT);
    }
}
