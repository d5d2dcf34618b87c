//! Row classification: every distinct step/exclusion matcher of all funnels is evaluated once per
//! row, then each funnel reads its step bitmask (an event may match several steps) and its
//! exclusion pair mask from those results.
//!
//! Most matchers only test the table and one text column (the event name). For those, the bits
//! are a function of that column's text alone, so [`Classifier::match_rows_cached`] memoises them
//! per distinct text in a small per-worker [`MatchCache`]: a row then costs one hash lookup plus
//! the matchers that read anything else (properties, other columns), which are evaluated on every
//! row as before.

use std::collections::HashMap;

use crate::definition::{FunnelSet, Matcher, Mode};
use crate::predicate::{Field, Predicate};
use crate::row::{ColumnRef, RowView, Table};
use rustc_hash::FxBuildHasher;

/// Per-funnel wiring from distinct matchers to step bits.
#[derive(Debug, Clone)]
struct FunnelSlots {
    /// Matcher index of step `j` (0-based).
    steps: Vec<usize>,
    /// Matcher index and pair mask of each exclusion. Bit `j-1` of a pair mask covers the pair
    /// (step j, step j+1).
    exclusions: Vec<(usize, u32)>,
}

/// How the matchers of one table are evaluated on that table's rows (the matchers of the other
/// table never match them).
#[derive(Debug, Clone, Default)]
struct TablePlan {
    /// The column whose text keys the cache; `None` when no matcher of the table reads exactly
    /// one column (then nothing is cached).
    key: Option<ColumnRef>,
    /// Matchers of the table whose predicate reads only `key`: their bits come from the cache.
    cached: Vec<usize>,
    /// The other matchers of the table, evaluated on every row.
    direct: Vec<usize>,
}

/// Classifies rows for all funnels of a set.
#[derive(Debug, Clone)]
pub struct Classifier {
    matchers: Vec<Matcher>,
    funnels: Vec<FunnelSlots>,
    words: usize,
    plans: [TablePlan; 2],
    /// Per table: a `strict_order` funnel reads it (every row of it counts).
    every_row: [bool; 2],
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

/// Distinct texts remembered per table before the cache starts over (event names are few; this
/// only bounds memory when a key column turns out to be high-cardinality).
const CACHE_ENTRIES: usize = 4096;

/// The single column a predicate reads: `Some(Some(c))` for exactly one plain column,
/// `Some(None)` for no field at all, `None` otherwise (properties or several columns).
fn single_column(p: &Predicate) -> Option<Option<&ColumnRef>> {
    let mut fields: Vec<&Field> = Vec::new();
    p.for_each_field(&mut |f| {
        if !fields.contains(&f) {
            fields.push(f);
        }
    });
    match fields[..] {
        [] => Some(None),
        [Field::Column(c)] => Some(Some(c)),
        _ => None,
    }
}

impl TablePlan {
    fn new(matchers: &[Matcher], table: Table) -> Self {
        let of_table = || {
            matchers
                .iter()
                .enumerate()
                .filter(move |(_, m)| m.table == table)
        };
        // The key: the column most matchers read alone.
        let mut counts: Vec<(&ColumnRef, usize)> = Vec::new();
        for (_, m) in of_table() {
            if let Some(Some(c)) = single_column(&m.predicate) {
                match counts.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((c, 1)),
                }
            }
        }
        let key = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, &(_, n))| (n, std::cmp::Reverse(i)))
            .map(|(_, &(c, _))| c.clone());
        let mut plan = TablePlan {
            key,
            ..TablePlan::default()
        };
        for (i, m) in of_table() {
            let cacheable = plan.key.is_some()
                && match single_column(&m.predicate) {
                    Some(None) => true,
                    Some(Some(c)) => Some(c) == plan.key.as_ref(),
                    None => false,
                };
            if cacheable {
                plan.cached.push(i);
            } else {
                plan.direct.push(i);
            }
        }
        plan
    }
}

/// Per-worker memo of the cached matchers' bits per distinct key text, per table (see the module
/// doc). Bounded: it starts over after [`CACHE_ENTRIES`] distinct texts of a table.
#[derive(Debug, Default)]
pub struct MatchCache {
    tables: [TableCache; 2],
}

#[derive(Debug, Default)]
struct TableCache {
    /// Key text → offset of its words in `bits`.
    index: HashMap<Box<[u8]>, u32, FxBuildHasher>,
    bits: Vec<u64>,
    /// In front of `index`: texts of at most 16 bytes (event names), direct-mapped by their
    /// [`ShortKey`], so that most rows cost two word compares instead of hashing the text and a
    /// `memcmp` call.
    front: Vec<(ShortKey, u32)>,
}

/// A text of at most 16 bytes as two words and its length: equal keys are equal texts (for a
/// given length the two overlapping loads cover every byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortKey {
    lo: u64,
    hi: u64,
    /// Length + 1 (0: an empty slot).
    len: u64,
}

const FRONT_SLOTS: usize = 64;

impl ShortKey {
    const EMPTY: ShortKey = ShortKey {
        lo: 0,
        hi: 0,
        len: 0,
    };

    #[inline]
    fn of(s: &[u8]) -> Option<ShortKey> {
        let n = s.len();
        let word = |b: &[u8]| b.try_into().map_or(0, u64::from_le_bytes);
        let half = |b: &[u8]| b.try_into().map_or(0, u32::from_le_bytes) as u64;
        let (lo, hi) = match n {
            8..=16 => (word(&s[..8]), word(&s[n - 8..])),
            4..=7 => (half(&s[..4]), half(&s[n - 4..])),
            0..=3 => (s.iter().fold(0u64, |w, &b| (w << 8) | b as u64), 0),
            _ => return None,
        };
        Some(ShortKey {
            lo,
            hi,
            len: n as u64 + 1,
        })
    }

    #[inline]
    fn slot(&self) -> usize {
        let h = (self.lo ^ self.hi.rotate_left(29) ^ self.len).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 58) as usize % FRONT_SLOTS
    }
}

impl TableCache {
    /// The offset in `bits` of the words of a short text, if it is in front.
    #[inline]
    fn front(&self, k: ShortKey) -> Option<u32> {
        match self.front.get(k.slot()) {
            Some(&(key, at)) if key == k => Some(at),
            _ => None,
        }
    }

    /// Puts `s` (its words at `at` in `bits`) in front of the index.
    #[inline]
    fn remember(&mut self, short: Option<ShortKey>, at: u32) {
        if let Some(k) = short {
            if self.front.is_empty() {
                self.front.resize(FRONT_SLOTS, (ShortKey::EMPTY, 0));
            }
            self.front[k.slot()] = (k, at);
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.bits.clear();
        self.front.clear();
    }
}

impl MatchCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
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
        let plans = Table::ALL.map(|t| TablePlan::new(&matchers, t));
        let every_row = Table::ALL.map(|t| {
            set.funnels
                .iter()
                .any(|f| f.mode == Mode::StrictOrder && f.uses(t))
        });
        Classifier {
            matchers,
            funnels,
            words,
            plans,
            every_row,
        }
    }

    /// Number of distinct matchers evaluated per row.
    #[cfg(test)]
    pub fn distinct_matchers(&self) -> usize {
        self.matchers.len()
    }

    /// Number of `u64` words of `bits` per row.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Evaluates every distinct matcher on every row into `bits` (reused; `words()` u64 per row): the
    /// plain form [`Classifier::match_rows_cached`] is checked against.
    #[cfg(test)]
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

    /// Like [`Classifier::match_rows`] (same output), with the bits of the matchers that read only
    /// the key column memoised in `cache` per distinct key text.
    pub fn match_rows_cached<R: RowView>(
        &self,
        rows: &[R],
        bits: &mut Vec<u64>,
        cache: &mut MatchCache,
    ) {
        let words = self.words;
        bits.clear();
        bits.resize(rows.len() * words, 0);
        for (row, out) in rows.iter().zip(bits.chunks_exact_mut(words)) {
            self.match_row_cached(row, out, cache);
        }
    }

    /// One row's bits of [`Classifier::match_rows_cached`] into `out` (`words()` zeroed words).
    #[inline]
    pub fn match_row_cached<R: RowView>(&self, row: &R, out: &mut [u64], cache: &mut MatchCache) {
        let words = self.words;
        let t = row.table().index();
        let plan = &self.plans[t];
        let Some(key) = plan.key.as_ref() else {
            self.eval_into(&plan.direct, row, out);
            return;
        };
        match row.column_bytes(key) {
            Some(s) => {
                let tc = &mut cache.tables[t];
                let short = ShortKey::of(s);
                let at = match short.and_then(|k| tc.front(k)).or_else(|| {
                    let at = tc.index.get(s).copied()?;
                    tc.remember(short, at);
                    Some(at)
                }) {
                    Some(at) => at as usize,
                    None => {
                        if tc.index.len() >= CACHE_ENTRIES {
                            tc.clear();
                        }
                        let at = tc.bits.len();
                        tc.bits.resize(at + words, 0);
                        self.eval_into(&plan.cached, row, &mut tc.bits[at..at + words]);
                        tc.index.insert(s.into(), at as u32);
                        tc.remember(short, at as u32);
                        at
                    }
                };
                if words == 1 {
                    // (One word, the usual case: no `memcpy` call per row.)
                    out[0] = tc.bits[at];
                } else {
                    out.copy_from_slice(&tc.bits[at..at + words]);
                }
            }
            None => self.eval_into(&plan.cached, row, out),
        }
        self.eval_into(&plan.direct, row, out);
    }

    /// Whether a row of `table` with matcher bits `bits` (see [`Classifier::match_row_cached`])
    /// can change any funnel's outcome: it matches a step or an exclusion of some funnel, or a
    /// `strict_order` funnel reads the table (where a row matching nothing breaks the order).
    /// Every other row is skipped by every funnel.
    /// (Every matcher is a step or an exclusion of some funnel, so any bit set counts.)
    #[inline]
    pub fn relevant(&self, table: Table, bits: &[u64]) -> bool {
        self.every_row[table.index()] || bits.iter().any(|&b| b != 0)
    }

    #[inline]
    fn eval_into<R: RowView>(&self, which: &[usize], row: &R, out: &mut [u64]) {
        for &m in which {
            if self.matchers[m].matches(row) {
                out[m / 64] |= 1 << (m % 64);
            }
        }
    }

    /// The classification of row `row` for funnel `funnel`, from `match_rows`' output.
    #[inline]
    pub fn class(&self, bits: &[u64], row: usize, funnel: usize) -> RowClass {
        let w = &bits[row * self.words..(row + 1) * self.words];
        let on = |m: usize| w.get(m / 64).is_some_and(|x| x & (1 << (m % 64)) != 0);
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
    fn only_matchers_reading_just_the_key_column_are_cached() {
        let set = FunnelSet::parse(
            r#"
[[funnel]]
id = "a"
window = 60
steps = [
  { event = "x" },
  { where = { name = { "!=" = "x" } } },
  { event = "x", where = { "props.k" = "1" } },
  { where = { ts = { ">" = 5 } } },
  { hit = true },
  { hit = { tracker = "fb" } },
  { hit = { tracker = "fb", referrer = { prefix = "h" } } },
]
"#,
            "t",
        )
        .unwrap();
        let c = Classifier::new(&set);
        let [ev, hit] = &c.plans;
        assert_eq!(ev.key.as_ref().map(|k| k.name.as_str()), Some("name"));
        assert_eq!(
            (ev.cached.as_slice(), ev.direct.as_slice()),
            (&[0, 1][..], &[2, 3][..])
        );
        assert_eq!(hit.key.as_ref().map(|k| k.name.as_str()), Some("tracker"));
        assert_eq!(
            (hit.cached.as_slice(), hit.direct.as_slice()),
            (&[4, 5][..], &[6][..])
        );
    }

    #[test]
    fn the_cache_starts_over_when_full_and_stays_correct() {
        let set = FunnelSet::parse(
            "[[funnel]]\nid = \"a\"\nwindow = 60\nsteps = [ { event = \"n7\" }, { where = { name = { prefix = \"n1\" } } } ]\n",
            "t",
        )
        .unwrap();
        let c = Classifier::new(&set);
        let mut cache = MatchCache::new();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        for round in 0..2 {
            let rows: Vec<OwnedRow> = (0..CACHE_ENTRIES + 500)
                .map(|i| OwnedRow::event(i as i64, &format!("n{}", (i + round) % 5000), &[]))
                .collect();
            c.match_rows(&rows, &mut want);
            c.match_rows_cached(&rows, &mut got, &mut cache);
            assert_eq!(got, want);
            assert!(cache.tables[0].index.len() <= CACHE_ENTRIES);
        }
    }

    mod cached_equals_uncached {
        use super::*;
        use crate::row::{OwnedValue, Table};
        use proptest::prelude::*;

        const STEPS: [&str; 18] = [
            r#"{ event = "a" }"#,
            r#"{ event = ["a", "b"] }"#,
            r#"{ event = "b", where = { "props.k" = { "!=" = "1" } } }"#,
            r#"{ where = { name = { "!=" = "a" } } }"#,
            r#"{ where = { name = { not_in = ["a", "c"] } } }"#,
            r#"{ where = { name = { prefix = "a" } } }"#,
            r#"{ where = { name = { ">" = "ab", "<=" = "c" } } }"#,
            r#"{ where = { not = { name = "b" } } }"#,
            r#"{ where = { "props.k" = { prefix = "1" } } }"#,
            r#"{ where = { "props.k" = { not_in = ["1", "3"] } } }"#,
            r#"{ where = { or = [ { name = "a" }, { "props.k" = "1" } ] } }"#,
            r#"{ where = { name = "c", "props.k" = { "!=" = "2" } } }"#,
            r#"{ where = { ts = { ">" = 3000 } } }"#,
            r#"{ where = { name = { ">=" = 2 } } }"#,
            r#"{ hit = true }"#,
            r#"{ hit = { tracker = "fb" } }"#,
            r#"{ hit = { tracker = { "!=" = "fb" } } }"#,
            r#"{ hit = { referrer = { prefix = "https://" }, tracker = { not_in = ["g"] } } }"#,
        ];
        const EXCLUDE: [&str; 5] = [
            r#"{ event = "x" }"#,
            r#"{ where = { name = { prefix = "x" } } }"#,
            r#"{ event = "b", where = { "props.k" = "2" } }"#,
            r#"{ hit = { tracker = "g" } }"#,
            r#"{ where = { "props.k" = { "!=" = "3" } } }"#,
        ];
        const NAMES: [&str; 9] = ["a", "b", "c", "ab", "x", "xy", "", "3", "a b"];

        fn definition(funnels: &[(Vec<usize>, Vec<usize>)]) -> String {
            let mut s = String::new();
            for (i, (steps, excl)) in funnels.iter().enumerate() {
                let steps: Vec<&str> = steps.iter().map(|&j| STEPS[j]).collect();
                let excl: Vec<&str> = excl.iter().map(|&j| EXCLUDE[j]).collect();
                s += &format!(
                    "[[funnel]]\nid = \"f{i}\"\nwindow = 60\nsteps = [ {} ]\nexclude = [ {} ]\n",
                    steps.join(", "),
                    excl.join(", ")
                );
            }
            s
        }

        fn row() -> impl Strategy<Value = OwnedRow> {
            (0i64..6, 0..12usize, 0..4usize).prop_map(|(t, what, k)| {
                let ts = t * 1000;
                let props: &[(&str, &str)] = match k {
                    0 => &[],
                    1 => &[("k", "1")],
                    2 => &[("k", "2")],
                    _ => &[("k", "3"), ("j", "1")],
                };
                match what {
                    0..=8 => OwnedRow::event(ts, NAMES[what], props),
                    // The name column missing, or not text.
                    9 => OwnedRow {
                        table: Table::Events,
                        ts_ms: ts,
                        cells: vec![("ts".into(), OwnedValue::Int(ts))],
                    },
                    10 => OwnedRow {
                        table: Table::Events,
                        ts_ms: ts,
                        cells: vec![("name".into(), OwnedValue::Int(k as i64))],
                    },
                    _ => OwnedRow::hit(
                        ts,
                        ["fb", "g", "fbx"][k % 3],
                        ["https://a", "http://b"][k % 2],
                    ),
                }
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

            #[test]
            fn cached_classification_equals_uncached(
                funnels in prop::collection::vec(
                    (
                        prop::collection::vec(0..STEPS.len(), 1..=5),
                        prop::collection::vec(0..EXCLUDE.len(), 0..=2),
                    ),
                    1..=3,
                ),
                actors in prop::collection::vec(prop::collection::vec(row(), 0..=12), 1..=6),
            ) {
                let text = definition(&funnels);
                let set = FunnelSet::parse(&text, "prop.toml").unwrap();
                let c = Classifier::new(&set);
                // One cache across all actors, as a worker keeps it.
                let mut cache = MatchCache::new();
                let (mut want, mut got) = (Vec::new(), Vec::new());
                for rows in &actors {
                    c.match_rows(rows, &mut want);
                    c.match_rows_cached(rows, &mut got, &mut cache);
                    prop_assert_eq!(&got, &want, "{}\n{:?}", text, rows);
                    for f in 0..set.funnels.len() {
                        for i in 0..rows.len() {
                            prop_assert_eq!(c.class(&got, i, f), c.class(&want, i, f));
                        }
                    }
                }
            }

            /// The front of the cache tells texts apart exactly as byte equality does (bytes
            /// drawn from a small alphabet with NULs, so that near-equal texts are frequent).
            #[test]
            fn short_keys_are_equal_exactly_for_equal_texts(
                a in prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b']), 0..=17),
                b in prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b']), 0..=17),
            ) {
                match (ShortKey::of(&a), ShortKey::of(&b)) {
                    (Some(x), Some(y)) => prop_assert_eq!(x == y, a == b),
                    (x, y) => {
                        prop_assert!(a.len() > 16 || b.len() > 16);
                        prop_assert_eq!(x.is_none(), a.len() > 16);
                        prop_assert_eq!(y.is_none(), b.len() > 16);
                    }
                }
            }
        }
    }

    #[test]
    fn pair_masks_cover_the_range() {
        assert_eq!(pair_mask(1, 2), 0b1);
        assert_eq!(pair_mask(1, 4), 0b111);
        assert_eq!(pair_mask(2, 4), 0b110);
    }
}
