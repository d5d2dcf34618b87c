//! Clustering values as rows, markers and Statistics.db store them: a 2-bit presence header (null,
//! empty, value) per value, 32 values per header, each value fixed-length by its type or vint-prefixed
//! (`ClusteringPrefix.Serializer`).

use crate::bytes::{Cursor, ShortResult};
use crate::types::CqlType;

/// Skips `size` clustering values serialized with their 2-bit presence headers (32 values per header).
pub(crate) fn skip_clustering_values(
    c: &mut Cursor<'_>,
    types: &[CqlType],
    size: usize,
) -> ShortResult<()> {
    skip_values_with(c, size, |i| {
        types.get(i).unwrap_or(&CqlType::Blob).fixed_length()
    })
}

/// [`skip_clustering_values`] with the types' fixed lengths precomputed (`None`: variable length).
#[inline]
pub(crate) fn skip_clustering_fixed(
    c: &mut Cursor<'_>,
    fixed: &[Option<usize>],
    size: usize,
) -> ShortResult<()> {
    skip_values_with(c, size, |i| fixed.get(i).copied().flatten())
}

#[inline]
fn skip_values_with(
    c: &mut Cursor<'_>,
    size: usize,
    fixed: impl Fn(usize) -> Option<usize>,
) -> ShortResult<()> {
    let mut i = 0;
    while i < size {
        let header = c.uvint()?;
        let block_end = (i + 32).min(size);
        while i < block_end {
            let bits = (header >> ((i % 32) * 2)) & 3;
            if bits == 0 {
                let n = match fixed(i) {
                    Some(n) => n,
                    None => c.uvint_len()?,
                };
                c.skip(n)?;
            }
            i += 1;
        }
    }
    Ok(())
}
