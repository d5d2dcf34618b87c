//! The stream's seen-id state: the hit and event ids it applied, remembered for a dedupe window so copies
//! of a message (producer retries, at-least-once delivery) are dropped. Written with each speed batch
//! ([`crate::SpeedBatch::seen_ids`]), read back a batch at a time ([`crate::StateReader::seen_by`]).
//!
//! Stored compactly, in a table of its own (not as generic `stream_state` rows): the id as 17 bytes (a
//! kind byte and the UUID's 16 bytes; an id that is not a canonical UUID keeps its text after the kind
//! byte), the expiry, and the batch that applied it.

use serde::{Deserialize, Serialize};

/// Which id space an id belongs to (a hit id and an event id may be equal without being copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    Hit,
    Event,
}

impl IdKind {
    /// As the legacy `stream_state` keys spelled it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Hit => "hit",
            IdKind::Event => "event",
        }
    }
}

/// One id of one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeenId {
    pub app_id: String,
    pub kind: IdKind,
    /// The id as text (the stream lower-cases UUIDs before they get here).
    pub id: String,
}

impl SeenId {
    pub fn new(app_id: &str, kind: IdKind, id: &str) -> SeenId {
        SeenId {
            app_id: app_id.to_string(),
            kind,
            id: id.to_string(),
        }
    }

    /// The stored form of the id (without the app): a kind byte, then the 16 bytes of a canonical
    /// lower-case UUID, or else the id's text. The kind bytes of the two forms differ, so a text id never
    /// collides with a UUID.
    pub fn key_bytes(&self) -> Vec<u8> {
        let uuid = uuid_bytes(&self.id);
        let kind = match (self.kind, uuid.is_some()) {
            (IdKind::Hit, true) => 1,
            (IdKind::Event, true) => 2,
            (IdKind::Hit, false) => 3,
            (IdKind::Event, false) => 4,
        };
        let mut out = Vec::with_capacity(17);
        out.push(kind);
        match uuid {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(self.id.as_bytes()),
        }
        out
    }
}

/// The 16 bytes of a canonical lower-case hyphenated UUID (`8-4-4-4-12` hex digits), else `None`.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        out[nibbles / 2] |= if nibbles.is_multiple_of(2) { v << 4 } else { v };
        nibbles += 1;
    }
    Some(out)
}

/// An id a batch applies and until when (wall-clock Unix ms) it is remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenEntry {
    pub id: SeenId,
    pub expires_at_ms: i64,
    /// Kafka offset of the message that applied the id (in the batch's partition).
    pub offset: i64,
}

/// Where a remembered id was applied: its topic, partition and the message's offset.
///
/// Why it is kept: CQL writes a batch's ids before the batch's commit (another partition than the commit
/// point's), so a crash, a timeout or a lost race in between leaves ids of an attempt that never committed.
/// Any retry starts at the partition's committed offset, so an id recorded at an offset of the same
/// partition at or past it is such a leftover, not a copy; one recorded below it was applied (whoever
/// committed that offset applied the same message, hence the same id). Rows are keyed by the id, so a
/// retry rewrites the leftovers with the same offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenBy {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Hash buckets of an app's ids on CQL: one partition per (app, bucket), so an app's ids spread over this
/// many partitions (rows per partition ≈ the app's ids per dedupe window / `SEEN_BUCKETS`).
pub const SEEN_BUCKETS: i32 = 1024;

/// The CQL bucket of an id: FNV-1a of its stored form, so the same id always lands in the same partition.
pub fn seen_bucket(key_bytes: &[u8]) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key_bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // SEEN_BUCKETS is a small positive constant: the remainder fits an i32.
    (h % SEEN_BUCKETS as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_stored_in_17_bytes_and_other_ids_as_text() {
        let id = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
        let hit = SeenId::new("shop", IdKind::Hit, id).key_bytes();
        assert_eq!(hit.len(), 17);
        assert_eq!(hit[0], 1);
        assert_eq!(
            &hit[1..],
            &[
                0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71, 0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7,
                0xe8, 0xf9
            ]
        );
        let event = SeenId::new("shop", IdKind::Event, id).key_bytes();
        assert_ne!(hit, event, "a hit and an event with one id are two ids");
        // Not canonical (upper case, no hyphens, too short): kept as text, under other kind bytes.
        for text in [
            "0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9",
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "abc",
        ] {
            let k = SeenId::new("shop", IdKind::Hit, text).key_bytes();
            assert_eq!(k[0], 3);
            assert_eq!(&k[1..], text.as_bytes());
        }
        assert_eq!(
            SeenId::new("shop", IdKind::Event, "x").key_bytes(),
            b"\x04x"
        );
    }

    #[test]
    fn buckets_spread_and_stay_in_range() {
        let mut used = std::collections::BTreeSet::new();
        for i in 0..20_000u32 {
            let id = format!("00000000-0000-0000-0000-{i:012x}");
            let b = seen_bucket(&SeenId::new("a", IdKind::Hit, &id).key_bytes());
            assert!((0..SEEN_BUCKETS).contains(&b));
            used.insert(b);
        }
        assert!(
            used.len() > SEEN_BUCKETS as usize * 9 / 10,
            "{}",
            used.len()
        );
    }
}
