//! The ring of a generated cluster: `nodes` equal slices of the Murmur3 token range, each replicated on
//! the next `rf` nodes (SimpleStrategy), so every node directory holds exactly its replicas.

use sstable_reader::writer::WriterError;

/// Token ranges of `nodes` equal slices of the Murmur3 ring and their replicas.
#[derive(Debug, Clone)]
pub struct Ring {
    nodes: u32,
    rf: u32,
}

impl Ring {
    pub fn new(nodes: u32, rf: u32) -> Result<Self, WriterError> {
        if nodes == 0 || rf == 0 || rf > nodes {
            return Err(WriterError::InvalidOption(format!(
                "need 1 <= rf <= nodes, got nodes {nodes}, rf {rf}"
            )));
        }
        Ok(Ring { nodes, rf })
    }

    /// The range (0..nodes) a token falls in.
    pub fn range_of(&self, token: i64) -> u32 {
        let offset = (token as i128 - i64::MIN as i128) as u128;
        ((offset * self.nodes as u128) >> 64) as u32
    }

    /// Nodes holding a replica of `token`: the range's node and the next `rf - 1`.
    pub fn replicas(&self, token: i64) -> impl Iterator<Item = u32> + '_ {
        let r = self.range_of(token);
        (0..self.rf).map(move |i| (r + i) % self.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_splits_evenly_and_replicates() {
        let ring = Ring::new(4, 2).unwrap();
        assert_eq!(ring.range_of(i64::MIN), 0);
        assert_eq!(ring.range_of(-1), 1);
        assert_eq!(ring.range_of(0), 2);
        assert_eq!(ring.range_of(i64::MAX), 3);
        assert_eq!(ring.replicas(i64::MAX).collect::<Vec<_>>(), vec![3, 0]);
        assert!(Ring::new(2, 3).is_err());
    }
}
