//! `Scylla.db` as ScyllaDB writes it (`docs/dev/sstable-scylla-format.md`): a be32 subcomponent count,
//! then tagged, sized subcomponents. Written here: the sharding metadata (one token range, from the
//! first partition's token to the last's, both inclusive), the feature bits of a current ScyllaDB (bits
//! 0–6, `ShadowableTombstones` among them) and a run identifier.

use std::path::Path;

use crate::partitioner::murmur3_token;

/// The features every ScyllaDB since 4.x sets (NonCompoundPIEntries … CorrectLastPiBlockWidth).
const FEATURES: u64 = 0x7f;

fn subcomponent(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// The bytes of `Scylla.db` for an SSTable whose first and last partition keys are `first`, `last`;
/// `prefix` (the SSTable's file prefix) seeds its run identifier.
pub fn serialize(first: &[u8], last: &[u8], prefix: &Path) -> Vec<u8> {
    let mut sharding = 1u32.to_be_bytes().to_vec();
    for key in [first, last] {
        sharding.push(0); // inclusive
        sharding.extend_from_slice(&8u16.to_be_bytes());
        sharding.extend_from_slice(&murmur3_token(key).to_be_bytes());
    }
    let seed = crc32fast::hash(prefix.to_string_lossy().as_bytes());
    let mut run = [0u8; 16];
    run[..4].copy_from_slice(&seed.to_be_bytes());
    run[6] = 0x40; // a version-4 UUID layout
    run[8] = 0x80;
    let mut out = 3u32.to_be_bytes().to_vec();
    subcomponent(&mut out, 1, &sharding);
    subcomponent(&mut out, 2, &FEATURES.to_be_bytes());
    subcomponent(&mut out, 4, &run);
    out
}
