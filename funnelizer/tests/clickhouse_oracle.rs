//! ClickHouse as the outside oracle: generated events (deterministic seed, thousands of actors,
//! same-timestamp ties) are evaluated by `windowFunnel(W)` and `windowFunnel(W, 'strict_order')`
//! in chdb (`tests/oracle/window_funnel.py`) and by our kernel; per-actor levels and per-step
//! totals must be equal. Needs `.tools/venv` (made by `.ci/setup-python.sh`): with `CI` set a
//! missing venv fails the test, otherwise it is skipped with a message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use funnelizer::{FunnelSet, Kernel, OwnedRow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (id, mode, window seconds, TOML steps, ClickHouse conditions)
const FUNNELS: &[(&str, &str, i64, &str, &[&str])] = &[
    (
        "abc",
        "ordered",
        5,
        r#"{ event = "a" }, { event = ["b", "c"] }, { event = "c" }"#,
        &["name = 'a'", "name IN ('b','c')", "name = 'c'"],
    ),
    (
        "abc_strict",
        "strict_order",
        5,
        r#"{ event = "a" }, { event = ["b", "c"] }, { event = "c" }"#,
        &["name = 'a'", "name IN ('b','c')", "name = 'c'"],
    ),
    (
        "repeat",
        "ordered",
        8,
        r#"{ event = "a" }, { event = "b" }, { event = "a" }, { event = "d" }"#,
        &["name = 'a'", "name = 'b'", "name = 'a'", "name = 'd'"],
    ),
    (
        "repeat_strict",
        "strict_order",
        8,
        r#"{ event = "a" }, { event = "b" }, { event = "a" }, { event = "d" }"#,
        &["name = 'a'", "name = 'b'", "name = 'a'", "name = 'd'"],
    ),
    (
        "single",
        "ordered",
        1,
        r#"{ event = "a" }"#,
        &["name = 'a'"],
    ),
    (
        "single_strict",
        "strict_order",
        1,
        r#"{ event = "x" }"#,
        &["name = 'x'"],
    ),
    (
        "props",
        "ordered",
        3,
        r#"{ event = "b" }, { event = "c", where = { "props.k" = "1" } }, { where = { "props.k" = { in = ["2", "3"] } } }"#,
        &["name = 'b'", "name = 'c' AND k = '1'", "k IN ('2','3')"],
    ),
    (
        "props_strict",
        "strict_order",
        3,
        r#"{ event = "b" }, { event = "c", where = { "props.k" = "1" } }, { where = { "props.k" = { in = ["2", "3"] } } }"#,
        &["name = 'b'", "name = 'c' AND k = '1'", "k IN ('2','3')"],
    ),
];

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Option<PathBuf> {
    let py = workspace_root().join(".tools/venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import chdb"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if ok {
        return Some(py);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} with chdb is missing: run .ci/setup-python.sh",
            py.display()
        );
    }
    eprintln!(
        "SKIPPED: {} with chdb is missing (run .ci/setup-python.sh)",
        py.display()
    );
    None
}

#[test]
fn window_funnel_levels_and_totals_equal_clickhouse() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();

    // Events: 3000 actors, 1..10 events each, timestamps on a 1 s grid within 20 s (many ties).
    let mut rng = StdRng::seed_from_u64(0xF0_77E1);
    let names = ["a", "b", "c", "d", "x"];
    let mut actors: BTreeMap<String, Vec<OwnedRow>> = BTreeMap::new();
    let mut csv = String::new();
    for a in 0..3000 {
        let actor = format!("u{a:05}");
        let n = rng.random_range(1..=10);
        let base = rng.random_range(0..1_000_000i64) * 1000;
        let rows = actors.entry(actor.clone()).or_default();
        for _ in 0..n {
            let ts = base + rng.random_range(0..20i64) * 1000;
            let name = names[rng.random_range(0..names.len())];
            let k = ["1", "2", "3"][rng.random_range(0..3)];
            csv += &format!("{actor},{ts},{name},{k}\n");
            rows.push(OwnedRow::event(ts, name, &[("k", k)]));
        }
    }
    let events = dir.path().join("events.csv");
    std::fs::write(&events, csv).unwrap();

    let mut toml = String::new();
    let mut spec = Vec::new();
    for (id, mode, window, steps, conds) in FUNNELS {
        toml += &format!("[[funnel]]\nid = \"{id}\"\nmode = \"{mode}\"\nwindow = {window}\nsteps = [ {steps} ]\n");
        spec.push(
            serde_json::json!({"id": id, "mode": mode, "window_ms": window * 1000, "conds": conds}),
        );
    }
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_string(&spec).unwrap()).unwrap();
    let script = workspace_root().join("tests/oracle/window_funnel.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&events)
        .arg(&spec_path)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Ours.
    let set = FunnelSet::parse(&toml, "oracle.toml").unwrap();
    let mut kernel = Kernel::new(&set);
    let mut ours: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); set.funnels.len()];
    for (actor, rows) in &actors {
        for m in ours.iter_mut() {
            m.insert(actor.clone(), 0);
        }
        kernel.evaluate(rows, |f, o| {
            ours[f].insert(actor.clone(), o.level);
        });
    }

    for (f, funnel) in set.funnels.iter().enumerate() {
        let levels =
            std::fs::read_to_string(dir.path().join(format!("{}.levels.csv", funnel.id))).unwrap();
        let theirs: BTreeMap<String, usize> = levels
            .lines()
            .map(|l| {
                let (a, lv) = l.rsplit_once(',').unwrap();
                (a.trim_matches('"').to_string(), lv.parse().unwrap())
            })
            .collect();
        assert_eq!(theirs.len(), actors.len(), "{}", funnel.id);
        let diffs: Vec<_> = theirs
            .iter()
            .filter(|(a, lv)| ours[f][*a] != **lv)
            .map(|(a, lv)| (a.clone(), *lv, ours[f][a], actors[a].clone()))
            .take(3)
            .collect();
        assert!(
            diffs.is_empty(),
            "funnel {}: (actor, clickhouse, ours, rows): {diffs:#?}",
            funnel.id
        );

        let totals =
            std::fs::read_to_string(dir.path().join(format!("{}.totals.csv", funnel.id))).unwrap();
        let theirs: Vec<u64> = totals
            .lines()
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        let mine: Vec<u64> = (1..=funnel.steps.len())
            .map(|k| ours[f].values().filter(|&&lv| lv >= k).count() as u64)
            .collect();
        assert_eq!(mine, theirs, "per-step totals of {}", funnel.id);
        // The data must exercise the funnel, or the comparison proves little.
        assert!(
            mine[0] > 100,
            "{}: too few actors enter: {mine:?}",
            funnel.id
        );
        if mine.len() > 1 {
            assert!(
                *mine.last().unwrap() > 0,
                "{}: nobody completes: {mine:?}",
                funnel.id
            );
        }
    }
}
