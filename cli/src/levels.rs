//! The summary `funnel run` prints on stdout: actors per level of each funnel.

use funnelizer::{FunnelSet, RunReport};

/// Actors per level of each funnel (all apps, days and breakdowns), with the conversion from level 1;
/// levels are named as `Funnel::level_label` names them (`≥ 2 steps` in unordered funnels).
pub fn print_summary(set: &FunnelSet, r: &RunReport) {
    println!(
        "{:<24} {:>4}  {:<28} {:>12} {:>8}",
        "funnel", "step", "name", "actors", "of step 1"
    );
    for f in &set.funnels {
        let per_level = r.actors_per_level(f);
        for (i, n) in per_level.iter().enumerate() {
            let pct = match per_level[0] {
                0 => "–".into(),
                first => format!("{:.1}%", *n as f64 * 100.0 / first as f64),
            };
            let id = if i == 0 { f.id.as_str() } else { "" };
            let label = f.level_label(i + 1);
            println!("{id:<24} {:>4}  {label:<28} {n:>12} {pct:>8}", i + 1);
        }
    }
}
