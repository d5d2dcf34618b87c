//! Counter cells merged by their shards (`db/context/CounterContext.java` `merge`): a context is a header
//! of shard kinds (`index + Short.MIN_VALUE` for global shards, `index` for local ones, nothing for remote)
//! and 32-byte shards (counter id, clock, count) sorted by id. Two versions merge shard by shard: for one
//! id a global shard beats the others and the higher clock wins between globals; two local shards add up;
//! between remotes the higher clock wins. The counter's value is the sum of the merged shards' counts.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Global,
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy)]
struct Shard {
    id: [u8; 16],
    clock: i64,
    count: i64,
    kind: Kind,
}

fn parse(b: &[u8], out: &mut Vec<Shard>) -> Result<(), String> {
    out.clear();
    if b.len() < 2 {
        return Err(format!(
            "a counter context of at least 2 bytes, found {}",
            b.len()
        ));
    }
    let n = i16::from_be_bytes([b[0], b[1]]).unsigned_abs() as usize;
    let body = 2 + 2 * n;
    if body > b.len() || !(b.len() - body).is_multiple_of(32) {
        return Err(format!(
            "a counter context header of {n} elements followed by 32-byte shards ({} bytes)",
            b.len()
        ));
    }
    let header: Vec<i16> = (0..n)
        .map(|i| i16::from_be_bytes([b[2 + 2 * i], b[3 + 2 * i]]))
        .collect();
    for (i, s) in b[body..].chunks_exact(32).enumerate() {
        let mut id = [0u8; 16];
        id.copy_from_slice(&s[..16]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&s[16..24]);
        let clock = i64::from_be_bytes(c);
        c.copy_from_slice(&s[24..32]);
        let count = i64::from_be_bytes(c);
        let idx = i as i32;
        let kind = if header.iter().any(|&h| h as i32 == idx + i16::MIN as i32) {
            Kind::Global
        } else if header.iter().any(|&h| h as i32 == idx) {
            Kind::Local
        } else {
            Kind::Remote
        };
        out.push(Shard {
            id,
            clock,
            count,
            kind,
        });
    }
    Ok(())
}

/// `CounterContext.compare` for shards of one id: which to keep, or `None` to add them (two locals).
fn pick(l: &Shard, r: &Shard) -> Option<bool> {
    match (l.kind, r.kind) {
        (Kind::Global, Kind::Global) | (Kind::Remote, Kind::Remote) => {
            if l.clock == r.clock {
                Some(l.count >= r.count)
            } else if l.kind == Kind::Global {
                Some(l.clock > r.clock)
            } else {
                // remote shards: a negative clock marks a deleted shard (pre-2.1 semantics)
                let left_newer = if l.clock < 0 {
                    r.clock > 0 || l.clock < r.clock
                } else {
                    r.clock > 0 && l.clock >= r.clock
                };
                Some(left_newer)
            }
        }
        (Kind::Global, _) => Some(true),
        (_, Kind::Global) => Some(false),
        (Kind::Local, Kind::Local) => None,
        (Kind::Local, _) => Some(true),
        (_, Kind::Local) => Some(false),
    }
}

/// Merges counter contexts; reusable scratch buffers avoid allocation per cell.
#[derive(Debug, Default)]
pub struct CounterMerger {
    acc: Vec<Shard>,
    next: Vec<Shard>,
    merged: Vec<Shard>,
}

impl CounterMerger {
    /// Merges the contexts `parts` into `out` (a context). An error names the malformed part (its index
    /// in `parts`) and what a context must be.
    pub fn merge<'a>(
        &mut self,
        parts: impl IntoIterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), (usize, String)> {
        self.acc.clear();
        for (i, p) in parts.into_iter().enumerate() {
            if i == 0 {
                parse(p, &mut self.acc).map_err(|e| (i, e))?;
                continue;
            }
            parse(p, &mut self.next).map_err(|e| (i, e))?;
            self.merged.clear();
            let (mut a, mut b) = (0, 0);
            while a < self.acc.len() || b < self.next.len() {
                let ord = match (self.acc.get(a), self.next.get(b)) {
                    (Some(x), Some(y)) => x.id.cmp(&y.id),
                    (Some(_), None) => Ordering::Less,
                    _ => Ordering::Greater,
                };
                match ord {
                    Ordering::Less => {
                        self.merged.push(self.acc[a]);
                        a += 1;
                    }
                    Ordering::Greater => {
                        self.merged.push(self.next[b]);
                        b += 1;
                    }
                    Ordering::Equal => {
                        let (l, r) = (self.acc[a], self.next[b]);
                        self.merged.push(match pick(&l, &r) {
                            Some(true) => l,
                            Some(false) => r,
                            None => Shard {
                                clock: l.clock.wrapping_add(r.clock),
                                count: l.count.wrapping_add(r.count),
                                ..l
                            },
                        });
                        a += 1;
                        b += 1;
                    }
                }
            }
            std::mem::swap(&mut self.acc, &mut self.merged);
        }
        out.clear();
        let header: Vec<i16> = self
            .acc
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.kind {
                Kind::Global => Some((i as i32 + i16::MIN as i32) as i16),
                Kind::Local => Some(i as i16),
                Kind::Remote => None,
            })
            .collect();
        out.extend_from_slice(&(header.len() as i16).to_be_bytes());
        for h in header {
            out.extend_from_slice(&h.to_be_bytes());
        }
        for s in &self.acc {
            out.extend_from_slice(&s.id);
            out.extend_from_slice(&s.clock.to_be_bytes());
            out.extend_from_slice(&s.count.to_be_bytes());
        }
        Ok(())
    }
}

/// A context of global shards `(id byte, clock, count)` (tests).
#[cfg(any(test, feature = "test_common"))]
pub fn global_context(shards: &[(u8, i64, i64)]) -> Vec<u8> {
    let mut sorted = shards.to_vec();
    sorted.sort_by_key(|s| s.0);
    let mut out = Vec::new();
    out.extend_from_slice(&(sorted.len() as i16).to_be_bytes());
    for i in 0..sorted.len() {
        out.extend_from_slice(&((i as i32 + i16::MIN as i32) as i16).to_be_bytes());
    }
    for (id, clock, count) in sorted {
        let mut idb = [0u8; 16];
        idb[15] = id;
        out.extend_from_slice(&idb);
        out.extend_from_slice(&clock.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::counter_total;

    #[test]
    fn highest_clock_wins_per_shard_then_sum() {
        let a = global_context(&[(1, 5, 50), (2, 1, 7)]);
        let b = global_context(&[(1, 3, 30), (3, 2, 4)]);
        let mut out = Vec::new();
        CounterMerger::default()
            .merge([a.as_slice(), b.as_slice()], &mut out)
            .unwrap();
        assert_eq!(counter_total(&out).unwrap(), 50 + 7 + 4);
        // merging is idempotent: identical replicas do not double count
        let mut again = Vec::new();
        CounterMerger::default()
            .merge([out.as_slice(), a.as_slice(), b.as_slice()], &mut again)
            .unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn local_shards_add_up() {
        // one local shard (header element = its index 0), as Cassandra 2.0 wrote them
        let mut local = vec![0, 1, 0, 0];
        local.extend_from_slice(&[0u8; 15]);
        local.push(9);
        local.extend_from_slice(&1i64.to_be_bytes());
        local.extend_from_slice(&3i64.to_be_bytes());
        let mut out = Vec::new();
        CounterMerger::default()
            .merge([local.as_slice(), local.as_slice()], &mut out)
            .unwrap();
        assert_eq!(counter_total(&out).unwrap(), 6);
        assert!(CounterMerger::default()
            .merge([&local[..3]], &mut out)
            .is_err());
    }
}
