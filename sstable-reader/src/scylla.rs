//! ScyllaDB's own component, `Scylla.db` (ScyllaDB's `docs/dev/sstable-scylla-format.md`): a count, then
//! subcomponents, each a be32 tag, a be32 size and its bytes (so unknown ones can be skipped). Parsed
//! here: the sharding metadata (token ranges), the feature bits, the large-data statistics and the
//! run identifier. Of these only features change how Data.db is decoded: `ShadowableTombstones` says
//! that extended flag 0x80 of a row announces a shadowable deletion, and without
//! `CorrectUDTsInCollections` a ScyllaDB file names frozen UDTs inside collections without `FrozenType`
//! (ScyllaDB issue 6130). A feature bit this reader does not know is refused, naming it.

use std::path::Path;

use crate::bytes::Cursor;
use crate::error::{Error, Result};
use crate::types::CqlType;

/// Feature bits (`sstable_feature`) and their names.
const FEATURES: [(u32, &str); 7] = [
    (0, "NonCompoundPIEntries"),
    (1, "NonCompoundRangeTombstones"),
    (2, "ShadowableTombstones"),
    (3, "CorrectStaticCompact"),
    (4, "CorrectEmptyCounters"),
    (5, "CorrectUDTsInCollections"),
    (6, "CorrectLastPiBlockWidth"),
];
const SHADOWABLE_TOMBSTONES: u64 = 1 << 2;
const CORRECT_UDTS_IN_COLLECTIONS: u64 = 1 << 5;

/// What `Scylla.db` says about its SSTable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScyllaMetadata {
    /// Token ranges the SSTable's partitions lie in: (left, left exclusive, right, right exclusive),
    /// tokens as stored (8 big-endian bytes for Murmur3).
    pub sharding: Vec<(Vec<u8>, bool, Vec<u8>, bool)>,
    /// The feature bits (0 when the subcomponent is absent).
    pub features: u64,
    /// Large-data statistics: (kind: 1 partition size, 2 row size, 3 cell size, 4 rows in partition,
    /// 5 elements in collection; max value, threshold, count above the threshold).
    pub large_data: Vec<(u32, u64, u64, u32)>,
    /// The run the SSTable belongs to (compaction output of one run).
    pub run_identifier: Option<[u8; 16]>,
}

impl ScyllaMetadata {
    /// Parses `Scylla.db` (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ScyllaMetadata> {
        let mut c = Cursor::new(bytes);
        let short =
            |c: &Cursor<'_>, what: &str| Error::corrupt(path, c.pos() as u64, what.to_string());
        let count = c
            .u32()
            .map_err(|_| short(&c, "a be32 subcomponent count"))?;
        let mut meta = ScyllaMetadata::default();
        for _ in 0..count {
            let tag = c.u32().map_err(|_| short(&c, "a be32 subcomponent tag"))?;
            let size = c.u32().map_err(|_| short(&c, "a be32 subcomponent size"))? as usize;
            let body_at = c.pos();
            let body = c.take(size).map_err(|_| {
                Error::corrupt(
                    path,
                    body_at as u64,
                    format!("{size} bytes of subcomponent {tag} (the file ends first)"),
                )
            })?;
            let mut b = Cursor::new(body);
            let bad = |b: &Cursor<'_>, what: &str| {
                Error::corrupt(path, (body_at + b.pos()) as u64, what.to_string())
            };
            match tag {
                1 => {
                    let n = b.u32().map_err(|_| bad(&b, "a token range count"))?;
                    for _ in 0..n {
                        let mut bound = || -> Option<(Vec<u8>, bool)> {
                            let exclusive = b.u8().ok()? != 0;
                            let len = b.u16().ok()? as usize;
                            Some((b.take(len).ok()?.to_vec(), exclusive))
                        };
                        let (Some((left, le)), Some((right, re))) = (bound(), bound()) else {
                            return Err(bad(&b, "a token range of the sharding metadata"));
                        };
                        meta.sharding.push((left, le, right, re));
                    }
                }
                2 => {
                    meta.features = b.u64().map_err(|_| bad(&b, "the be64 feature bits"))?;
                    let known = FEATURES.iter().fold(0u64, |m, (bit, _)| m | 1 << bit);
                    let unknown = meta.features & !known;
                    if unknown != 0 {
                        return Err(Error::unsupported(
                            path,
                            format!(
                                "ScyllaDB feature bit {} (offset {body_at}, features {:#x}): not understood, so its files may not decode as this reader would; known: {}",
                                unknown.trailing_zeros(),
                                meta.features,
                                FEATURES.map(|(_, n)| n).join(", ")
                            ),
                        ));
                    }
                }
                4 => {
                    let id = b
                        .take(16)
                        .map_err(|_| bad(&b, "a 16-byte run identifier"))?;
                    meta.run_identifier = id.try_into().ok();
                }
                5 => {
                    let n = b.u32().map_err(|_| bad(&b, "a large-data entry count"))?;
                    for _ in 0..n {
                        let entry = (|| {
                            Some((b.u32().ok()?, b.u64().ok()?, b.u64().ok()?, b.u32().ok()?))
                        })();
                        meta.large_data
                            .push(entry.ok_or_else(|| bad(&b, "a large-data entry"))?);
                    }
                }
                // Extension attributes, origin, build id, version, timestamp statistics, the SSTable
                // identifier, the schema and component digests describe the file without changing how
                // it decodes; newer subcomponents are skippable by design (they carry their size).
                _ => {}
            }
        }
        Ok(meta)
    }

    /// Whether extended row flag 0x80 announces ScyllaDB's shadowable deletion.
    pub fn has_shadowable_tombstones(&self) -> bool {
        self.features & SHADOWABLE_TOMBSTONES != 0
    }

    /// Whether the header's types need ScyllaDB's issue-6130 correction: a ScyllaDB file (it sets
    /// features) written before the fix names UDTs inside collections without their `FrozenType`.
    pub fn freezes_udts_in_collections(&self) -> bool {
        self.features != 0 && self.features & CORRECT_UDTS_IN_COLLECTIONS == 0
    }

    /// The names of the feature bits set.
    pub fn feature_names(&self) -> Vec<&'static str> {
        FEATURES
            .iter()
            .filter(|(bit, _)| self.features & (1 << bit) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// ScyllaDB's issue-6130 correction: UDTs (and tuples) nested in a collection are frozen whatever the
/// header says (`freeze_types_in_collections`).
pub(crate) fn freeze_in_collections(ty: &CqlType) -> CqlType {
    fn frozen(t: &CqlType) -> CqlType {
        match t {
            CqlType::Udt(_) | CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..) => {
                CqlType::Frozen(Box::new(t.clone()))
            }
            t => t.clone(),
        }
    }
    match ty {
        CqlType::List(e) => CqlType::List(Box::new(frozen(e))),
        CqlType::Set(e) => CqlType::Set(Box::new(frozen(e))),
        CqlType::Map(k, v) => CqlType::Map(Box::new(frozen(k)), Box::new(frozen(v))),
        t => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(tag: u32, body: &[u8]) -> Vec<u8> {
        let mut out = tag.to_be_bytes().to_vec();
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn parses_subcomponents_and_skips_unknown_ones() {
        let mut file = 4u32.to_be_bytes().to_vec();
        let mut sharding = 1u32.to_be_bytes().to_vec();
        for (excl, token) in [(0u8, -5i64), (1, 9)] {
            sharding.push(excl);
            sharding.extend(8u16.to_be_bytes());
            sharding.extend(token.to_be_bytes());
        }
        file.extend(sub(1, &sharding));
        file.extend(sub(2, &(0b100101u64).to_be_bytes()));
        file.extend(sub(99, b"future"));
        let mut large = 1u32.to_be_bytes().to_vec();
        large.extend(1u32.to_be_bytes());
        large.extend(7u64.to_be_bytes());
        large.extend(1000u64.to_be_bytes());
        large.extend(0u32.to_be_bytes());
        file.extend(sub(5, &large));
        let m = ScyllaMetadata::parse(&file, Path::new("me-1-big-Scylla.db")).unwrap();
        assert_eq!(m.sharding.len(), 1);
        assert!(m.sharding[0].3 && !m.sharding[0].1);
        assert!(m.has_shadowable_tombstones() && !m.freezes_udts_in_collections());
        assert_eq!(
            m.feature_names(),
            [
                "NonCompoundPIEntries",
                "ShadowableTombstones",
                "CorrectUDTsInCollections"
            ]
        );
        assert_eq!(m.large_data, [(1, 7, 1000, 0)]);
    }

    #[test]
    fn unknown_features_and_damage_are_errors_naming_the_file() {
        let mut file = 1u32.to_be_bytes().to_vec();
        file.extend(sub(2, &(1u64 << 40).to_be_bytes()));
        let err = ScyllaMetadata::parse(&file, Path::new("me-1-big-Scylla.db")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Scylla.db")
                && msg.contains("feature bit 40")
                && msg.contains("offset 12"),
            "{msg}"
        );
        let err = ScyllaMetadata::parse(&file[..14], Path::new("me-1-big-Scylla.db")).unwrap_err();
        assert!(err.is_corruption() && err.offset() == Some(12), "{err}");
    }
}
