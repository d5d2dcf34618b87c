//! Property tests: the kernel agrees with the brute-force reference on random timelines (all
//! modes, windows, exclusions, hit steps, breakdowns, many same-timestamp rows) — level, entry
//! time, per-step times and the first-touch row.

use funnelizer::{reference, FunnelSet, OwnedRow};
use funnelizer::{Kernel, Outcome};
use proptest::prelude::*;

const STEP_POOL: [&str; 8] = [
    r#"{ event = "a" }"#,
    r#"{ event = "b" }"#,
    r#"{ event = ["b", "c"] }"#,
    r#"{ event = "c" }"#,
    r#"{ event = "d", where = { "props.k" = { "!=" = "2" } } }"#,
    r#"{ hit = { tracker = "fb" } }"#,
    r#"{ hit = true }"#,
    r#"{ where = { or = [ { name = "a" }, { "props.k" = "1" } ] } }"#,
];
const EXCL_POOL: [&str; 3] = [
    r#"event = "x""#,
    r#"event = "d""#,
    r#"hit = { tracker = "g" }"#,
];
const MODES: [&str; 3] = ["ordered", "strict_order", "unordered"];

#[derive(Debug, Clone)]
struct FunnelSpec {
    steps: Vec<usize>,
    window: i64,
    mode: usize,
    exclusions: Vec<(usize, Option<(usize, usize)>)>,
    breakdown: bool,
}

fn funnel_spec() -> impl Strategy<Value = FunnelSpec> {
    (
        prop::collection::vec(0..STEP_POOL.len(), 1..=4),
        1i64..15,
        0..3usize,
        prop::collection::vec(
            (
                0..EXCL_POOL.len(),
                any::<bool>(),
                any::<prop::sample::Index>(),
            ),
            0..=2,
        ),
        any::<bool>(),
    )
        .prop_map(|(steps, window, mode, ex, breakdown)| {
            let n = steps.len();
            let exclusions = ex
                .into_iter()
                .map(|(x, ranged, idx)| {
                    let range = (ranged && n >= 2 && MODES[mode] != "unordered").then(|| {
                        let from = 1 + idx.index(n - 1);
                        (from, from + 1 + idx.index(n - from))
                    });
                    (x, range)
                })
                .collect();
            FunnelSpec {
                steps,
                window,
                mode,
                exclusions,
                breakdown,
            }
        })
}

fn toml_of(specs: &[FunnelSpec]) -> String {
    let mut s = String::new();
    for (i, f) in specs.iter().enumerate() {
        s += &format!(
            "[[funnel]]\nid = \"f{i}\"\nwindow = {}\nmode = \"{}\"\n",
            f.window, MODES[f.mode]
        );
        let steps: Vec<&str> = f.steps.iter().map(|&j| STEP_POOL[j]).collect();
        s += &format!("steps = [ {} ]\n", steps.join(", "));
        if !f.exclusions.is_empty() {
            let ex: Vec<String> = f
                .exclusions
                .iter()
                .map(|(x, r)| match r {
                    Some((a, b)) => format!("{{ {}, between = [{a}, {b}] }}", EXCL_POOL[*x]),
                    None => format!("{{ {} }}", EXCL_POOL[*x]),
                })
                .collect();
            s += &format!("exclude = [ {} ]\n", ex.join(", "));
        }
        if f.breakdown {
            s += "breakdown = \"props.k\"\n";
        }
    }
    s
}

fn row() -> impl Strategy<Value = OwnedRow> {
    // Timestamps on a coarse grid so ties are frequent.
    (0i64..12, 0..8usize, 0..3usize).prop_map(|(t, what, k)| {
        let ts = t * 1000;
        let kv = ["1", "2", "3"][k];
        match what {
            0 => OwnedRow::event(ts, "a", &[("k", kv)]),
            1 => OwnedRow::event(ts, "b", &[("k", kv)]),
            2 => OwnedRow::event(ts, "c", &[("k", kv)]),
            3 => OwnedRow::event(ts, "d", &[("k", kv)]),
            4 => OwnedRow::event(ts, "x", &[("k", kv)]),
            5 => OwnedRow::event(ts, "y", &[]),
            6 => OwnedRow::hit(ts, "fb", "r"),
            _ => OwnedRow::hit(ts, "g", "r"),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn kernel_matches_reference(
        specs in prop::collection::vec(funnel_spec(), 1..=3),
        rows in prop::collection::vec(row(), 0..=9),
    ) {
        let text = toml_of(&specs);
        let set = FunnelSet::parse(&text, "prop.toml").unwrap();
        let mut kernel = Kernel::new(&set);
        let mut got: Vec<Outcome> = vec![Outcome::default(); set.funnels.len()];
        kernel.evaluate(&rows, |f, o| got[f] = o.clone());
        for (f, funnel) in set.funnels.iter().enumerate() {
            let want = reference::evaluate(funnel, &rows);
            prop_assert_eq!(&got[f], &want, "funnel {}:\n{}", f, text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Rows offered one at a time, only the kept ones evaluated (what the SSTable source does): the
    /// reference's outcomes over all the rows, the first-touch row being the same row.
    #[test]
    fn offered_rows_match_the_reference_over_all_rows(
        specs in prop::collection::vec(funnel_spec(), 1..=3),
        rows in prop::collection::vec(row(), 0..=9),
    ) {
        let text = toml_of(&specs);
        let set = FunnelSet::parse(&text, "prop.toml").unwrap();
        let mut kernel = Kernel::new(&set);
        kernel.begin();
        let kept: Vec<usize> = (0..rows.len()).filter(|&i| kernel.offer(&rows[i])).collect();
        let kept_rows: Vec<OwnedRow> = kept.iter().map(|&i| rows[i].clone()).collect();
        let mut got: Vec<Outcome> = vec![Outcome::default(); set.funnels.len()];
        kernel.finish(&kept_rows, |f, o| {
            got[f] = o.clone();
            got[f].breakdown_row = kept[o.breakdown_row];
        });
        for (f, funnel) in set.funnels.iter().enumerate() {
            let want = reference::evaluate(funnel, &rows);
            prop_assert_eq!(&got[f], &want, "funnel {}:\n{}", f, text);
        }
    }
}
