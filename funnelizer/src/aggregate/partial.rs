//! The lossless, mergeable form of an [`Aggregator`] that a shard of a sharded run stores: per cell
//! (app, funnel, entry day, breakdown) and step, the actors and the exact histogram of their times to
//! convert (millisecond value → count). Merging the decoded partials of all shards gives the very
//! aggregate one process would have built, so counts and the median / p90 are the same to the bit.
//!
//! Layout (all integers LEB128 varints, signed ones zigzag): `FNLP`, version byte 1; the funnels
//! (`id`, `version`), the apps and the breakdown values as counted string lists; then the cells, each
//! `app, funnel, day, breakdown, steps` indexes and per step `actors, entries` and the histogram as
//! (value delta from the previous entry, count) pairs. Cells are sorted, so equal aggregates encode
//! to equal bytes. Size: about 2–4 bytes per distinct time per cell and step, plus the strings.

use facts::Day;
use rustc_hash::FxHashMap;

use super::{Aggregator, CellKey, StepAgg};
use crate::definition::FunnelSet;

const MAGIC: &[u8; 4] = b"FNLP";
const VERSION: u8 = 1;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader; every failure names the byte offset.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, what: &str) -> String {
        format!("byte {}: expected {what}", self.at)
    }

    fn uvarint(&mut self, what: &str) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or_else(|| self.fail(what))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail(what))
    }

    fn ivarint(&mut self, what: &str) -> Result<i64, String> {
        let u = self.uvarint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A count of items that each take at least one byte (so a corrupt count cannot allocate much).
    fn count(&mut self, what: &str) -> Result<usize, String> {
        let n = self.uvarint(what)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at.min(self.bytes.len()))
            .ok_or_else(|| self.fail(what))
    }

    fn index(&mut self, len: usize, what: &str) -> Result<usize, String> {
        let i = self.uvarint(what)?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| self.fail(what))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.count(what)?;
        let b = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| self.fail(what))?;
        let s = std::str::from_utf8(b).map_err(|_| self.fail(what))?;
        self.at += n;
        Ok(s.to_string())
    }

    fn strings(&mut self, what: &str) -> Result<Vec<String>, String> {
        let n = self.count(what)?;
        (0..n).map(|_| self.string(what)).collect()
    }
}

impl Aggregator {
    /// The lossless encoding of this aggregate (see the module doc) for the funnels of `set`.
    pub fn encode_partial(&self, set: &FunnelSet) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_uvarint(&mut out, set.funnels.len() as u64);
        for f in &set.funnels {
            put_str(&mut out, &f.id);
            put_str(&mut out, &f.version);
        }
        for names in [&self.apps.names, &self.breakdowns.names] {
            put_uvarint(&mut out, names.len() as u64);
            for n in names {
                put_str(&mut out, n);
            }
        }
        let mut cells: Vec<(&CellKey, &Vec<StepAgg>)> = self.cells.iter().collect();
        cells.sort_by(|a, b| {
            let k = |c: &CellKey| (c.app, c.funnel, c.day, c.breakdown);
            k(a.0).cmp(&k(b.0))
        });
        put_uvarint(&mut out, cells.len() as u64);
        for (key, steps) in cells {
            put_uvarint(&mut out, key.app.into());
            put_uvarint(&mut out, key.funnel.into());
            put_ivarint(&mut out, key.day.into());
            put_uvarint(&mut out, key.breakdown.into());
            put_uvarint(&mut out, steps.len() as u64);
            for s in steps {
                let hist = s.histogram();
                put_uvarint(&mut out, s.actors);
                put_uvarint(&mut out, hist.len() as u64);
                let mut prev = 0i64;
                for (v, c) in hist {
                    put_ivarint(&mut out, v.wrapping_sub(prev));
                    put_uvarint(&mut out, c);
                    prev = v;
                }
            }
        }
        out
    }

    /// Adds an [`Aggregator::encode_partial`] of the same funnel set to this aggregate. Fails (naming the
    /// byte offset) on bytes that do not decode, and on funnels that `set` does not hold.
    pub fn merge_partial(&mut self, set: &FunnelSet, bytes: &[u8]) -> Result<(), String> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.get(..4) != Some(MAGIC.as_slice()) || bytes.get(4) != Some(&VERSION) {
            return Err(format!(
                "not a partial aggregate of version {VERSION} (no FNLP header)"
            ));
        }
        r.at = 5;
        let funnels = r.count("a funnel count")?;
        let mut funnel_index = Vec::with_capacity(funnels);
        for _ in 0..funnels {
            let (id, version) = (r.string("a funnel id")?, r.string("a funnel version")?);
            let i = set
                .funnels
                .iter()
                .position(|f| f.id == id && f.version == version)
                .ok_or_else(|| {
                    format!("funnel {id} version {version} is not in the funnel set given")
                })?;
            funnel_index.push(i as u32);
        }
        let apps: Vec<u32> = r
            .strings("the app names")?
            .iter()
            .map(|a| self.apps.id(a))
            .collect();
        let breakdowns: Vec<u32> = r
            .strings("the breakdown values")?
            .iter()
            .map(|b| self.breakdowns.id(b))
            .collect();
        let cells = r.count("a cell count")?;
        let mut add: FxHashMap<CellKey, Vec<StepAgg>> = FxHashMap::default();
        for _ in 0..cells {
            let key = CellKey {
                app: apps[r.index(apps.len(), "an app index")?],
                funnel: funnel_index[r.index(funnel_index.len(), "a funnel index")?],
                day: i32::try_from(r.ivarint("a day")?).map_err(|_| r.fail("a day"))?,
                breakdown: breakdowns[r.index(breakdowns.len(), "a breakdown index")?],
            };
            let n = r.count("a step count")?;
            let mut steps = Vec::with_capacity(n);
            for _ in 0..n {
                let actors = r.uvarint("an actor count")?;
                let entries = r.count("a histogram length")?;
                let (mut step, mut prev, mut total) = (StepAgg::default(), 0i64, 0u64);
                for _ in 0..entries {
                    let v = prev.wrapping_add(r.ivarint("a time to convert")?);
                    let c = r.uvarint("a count")?;
                    total = total.saturating_add(c);
                    if total > actors {
                        return Err(r.fail("no more times than actors"));
                    }
                    if v == 0 {
                        step.zeros += c;
                    } else {
                        step.ttc_ms.extend(std::iter::repeat_n(v, c as usize));
                    }
                    prev = v;
                }
                if total != actors {
                    return Err(r.fail("one time per actor"));
                }
                step.actors = actors;
                steps.push(step);
            }
            add.insert(key, steps);
        }
        if r.at != bytes.len() {
            return Err(r.fail("the end of the partial"));
        }
        // Days are checked like the aggregate's own (an entry day the facts can hold).
        if let Some(k) = add
            .keys()
            .find(|k| Day(k.day) < Day::FIRST || Day(k.day) > Day::LAST)
        {
            return Err(format!("day {} out of range", k.day));
        }
        for (key, steps) in add {
            let mine = self.cells.entry(key).or_default();
            if mine.len() < steps.len() {
                mine.resize_with(steps.len(), StepAgg::default);
            }
            for (m, s) in mine.iter_mut().zip(&steps) {
                m.merge(s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Outcome;

    fn set() -> FunnelSet {
        FunnelSet::parse(
            "[[funnel]]\nid = \"f\"\nwindow = \"1d\"\nbreakdown = \"props.os\"\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n\
             [[funnel]]\nid = \"g\"\nwindow = \"1d\"\nsteps = [ { event = \"a\" } ]\n",
            "t",
        )
        .unwrap()
    }

    fn outcome(entry: i64, steps: &[i64]) -> Outcome {
        Outcome {
            level: steps.len(),
            entry_ts_ms: entry,
            step_ts_ms: steps.to_vec(),
            breakdown_row: 0,
        }
    }

    #[test]
    fn decoded_partials_merge_to_the_single_aggregate() {
        let set = set();
        let (mut one, mut parts) = (Aggregator::new(), vec![Aggregator::new(); 3]);
        for i in 0..500i64 {
            let o = outcome(
                i * 7_919_000 % 400_000_000,
                &[0, (i * 37) % 50 * 1000 + i % 3],
            );
            let o = Outcome {
                step_ts_ms: o.step_ts_ms.iter().map(|t| t + o.entry_ts_ms).collect(),
                level: 1 + (i % 4 != 0) as usize,
                ..o
            };
            let (app, os) = (
                ["a1", "a2"][(i % 2) as usize],
                ["ios", "web", ""][(i % 3) as usize],
            );
            one.add(app, (i % 2) as usize, &o, os);
            parts[(i % 3) as usize].add(app, (i % 2) as usize, &o, os);
        }
        parts[2].see_app("a3");
        one.see_app("a3");
        let mut merged = Aggregator::new();
        for p in &parts {
            let bytes = p.encode_partial(&set);
            merged.merge_partial(&set, &bytes).unwrap();
        }
        assert_eq!(merged.facts(&set), one.facts(&set));
        assert_eq!(merged.breakdown_totals(&set), one.breakdown_totals(&set));
        assert_eq!(merged.apps(), one.apps());
        // Equal aggregates encode to equal bytes.
        assert_eq!(merged.encode_partial(&set), one.encode_partial(&set));
    }

    #[test]
    fn bad_bytes_are_refused_with_their_offset() {
        let set = set();
        let mut a = Aggregator::new();
        a.add("app", 0, &outcome(0, &[0, 5000]), "ios");
        let bytes = a.encode_partial(&set);
        for cut in 0..bytes.len() {
            let err = Aggregator::new()
                .merge_partial(&set, &bytes[..cut])
                .unwrap_err();
            assert!(err.contains("byte") || err.contains("FNLP"), "{cut}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Aggregator::new().merge_partial(&set, &longer).unwrap_err();
        assert!(err.contains("the end of the partial"), "{err}");
        let other = FunnelSet::parse(
            "[[funnel]]\nid = \"h\"\nwindow = \"1d\"\nsteps = [ { event = \"a\" } ]\n",
            "t",
        )
        .unwrap();
        let err = Aggregator::new().merge_partial(&other, &bytes).unwrap_err();
        assert!(err.contains("funnel f version"), "{err}");
    }
}
