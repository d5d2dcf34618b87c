//! Row classification: every distinct step/exclusion matcher of all funnels is evaluated once per
//! row, then each funnel reads its step bitmask (an event may match several steps) and its
//! exclusion pair mask from those results.

use crate::definition::{FunnelSet, Matcher};
use crate::row::RowView;

/// Per-funnel wiring from distinct matchers to step bits.
#[derive(Debug, Clone)]
struct FunnelSlots {
    /// Matcher index of step `j` (0-based).
    steps: Vec<usize>,
    /// Matcher index and pair mask of each exclusion. Bit `j-1` of a pair mask covers the pair
    /// (step j, step j+1).
    exclusions: Vec<(usize, u32)>,
}

/// Classifies rows for all funnels of a set.
#[derive(Debug, Clone)]
pub struct Classifier {
    matchers: Vec<Matcher>,
    funnels: Vec<FunnelSlots>,
    words: usize,
}

/// The classification of one row for one funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowClass {
    /// Bit `j` set when the row matches step `j+1`.
    pub steps: u32,
    /// Pairs this row excludes (bit `j-1`: between step j and j+1); 0 when not an exclusion.
    pub exclusion_pairs: u32,
}

/// Pair mask for an exclusion `between = [from, to]` (1-based): pairs from..to-1.
pub fn pair_mask(from: usize, to: usize) -> u32 {
    let mut m = 0u32;
    for j in from..to {
        m |= 1 << (j - 1);
    }
    m
}

impl Classifier {
    /// Deduplicates the matchers of all funnels.
    pub fn new(set: &FunnelSet) -> Self {
        let mut matchers: Vec<Matcher> = Vec::new();
        let mut index_of = |m: &Matcher| match matchers.iter().position(|x| x == m) {
            Some(i) => i,
            None => {
                matchers.push(m.clone());
                matchers.len() - 1
            }
        };
        let funnels = set
            .funnels
            .iter()
            .map(|f| FunnelSlots {
                steps: f.steps.iter().map(|s| index_of(&s.matcher)).collect(),
                exclusions: f
                    .exclusions
                    .iter()
                    .map(|x| (index_of(&x.matcher), pair_mask(x.between.0, x.between.1)))
                    .collect(),
            })
            .collect();
        let words = matchers.len().div_ceil(64).max(1);
        Classifier {
            matchers,
            funnels,
            words,
        }
    }

    /// Number of distinct matchers evaluated per row.
    pub fn distinct_matchers(&self) -> usize {
        self.matchers.len()
    }

    /// Evaluates every distinct matcher on every row into `bits` (reused; `words()` u64 per row).
    pub fn match_rows<R: RowView>(&self, rows: &[R], bits: &mut Vec<u64>) {
        bits.clear();
        bits.resize(rows.len() * self.words, 0);
        for (i, row) in rows.iter().enumerate() {
            let out = &mut bits[i * self.words..(i + 1) * self.words];
            for (m, matcher) in self.matchers.iter().enumerate() {
                if matcher.matches(row) {
                    out[m / 64] |= 1 << (m % 64);
                }
            }
        }
    }

    /// The classification of row `row` for funnel `funnel`, from `match_rows`' output.
    #[inline]
    pub fn class(&self, bits: &[u64], row: usize, funnel: usize) -> RowClass {
        let w = &bits[row * self.words..(row + 1) * self.words];
        let on = |m: usize| w[m / 64] & (1 << (m % 64)) != 0;
        let slots = &self.funnels[funnel];
        let mut c = RowClass::default();
        for (j, &m) in slots.steps.iter().enumerate() {
            if on(m) {
                c.steps |= 1 << j;
            }
        }
        for &(m, pairs) in &slots.exclusions {
            if on(m) {
                c.exclusion_pairs |= pairs;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::OwnedRow;

    #[test]
    fn shared_matchers_are_evaluated_once_and_rows_can_match_several_steps() {
        let set = FunnelSet::parse(
            r#"
[[funnel]]
id = "a"
window = 60
steps = [ { event = "x" }, { event = ["x", "y"] } ]
exclude = [ { event = "z" } ]
[[funnel]]
id = "b"
window = 60
steps = [ { event = "y" }, { event = "x" }, { event = "q" } ]
exclude = [ { event = "z", between = [2, 3] } ]
"#,
            "t",
        )
        .unwrap();
        let c = Classifier::new(&set);
        assert_eq!(c.distinct_matchers(), 5);
        let rows = [OwnedRow::event(1, "x", &[]), OwnedRow::event(2, "z", &[])];
        let mut bits = Vec::new();
        c.match_rows(&rows, &mut bits);
        assert_eq!(
            c.class(&bits, 0, 0),
            RowClass {
                steps: 0b11,
                exclusion_pairs: 0
            }
        );
        assert_eq!(
            c.class(&bits, 0, 1),
            RowClass {
                steps: 0b10,
                exclusion_pairs: 0
            }
        );
        assert_eq!(
            c.class(&bits, 1, 0),
            RowClass {
                steps: 0,
                exclusion_pairs: 0b1
            }
        );
        assert_eq!(
            c.class(&bits, 1, 1),
            RowClass {
                steps: 0,
                exclusion_pairs: 0b10
            }
        );
    }

    #[test]
    fn pair_masks_cover_the_range() {
        assert_eq!(pair_mask(1, 2), 0b1);
        assert_eq!(pair_mask(1, 4), 0b111);
        assert_eq!(pair_mask(2, 4), 0b110);
    }
}
