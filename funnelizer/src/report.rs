//! The HTML report: one self-contained page (inline CSS and SVG, no script, no external asset)
//! with, per (app, funnel, version), a funnel chart (a bar per level, conversion from level 1,
//! drop-off from the previous level and time to convert), the trend by entry day (actors entering and
//! reaching the last level each day, and the conversion), and the per-breakdown split. Levels are
//! labelled as [`crate::Funnel::level_label`] labels them (given as [`FunnelLevels`]).
//!
//! Facts are per entry day; the funnel chart sums actors over all days. Exact medians cannot be
//! recombined from daily medians, so the time shown is the actor-weighted mean of the daily
//! medians / p90s, marked "≈" whenever more than one day or breakdown contributes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use facts::{Day, FunnelStepFact};

use crate::inputs::FunnelLevels;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Seconds as a short human duration.
pub fn human_duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

#[derive(Default)]
struct StepSum {
    actors: u64,
    med_weighted: f64,
    p90_weighted: f64,
    ttc_actors: u64,
    rows: usize,
}

impl StepSum {
    fn add(&mut self, f: &FunnelStepFact) {
        self.actors += f.actors;
        self.rows += 1;
        if let (Some(m), Some(p)) = (f.ttc_median_s, f.ttc_p90_s) {
            self.med_weighted += m * f.actors as f64;
            self.p90_weighted += p * f.actors as f64;
            self.ttc_actors += f.actors;
        }
    }
    fn ttc(&self) -> String {
        if self.ttc_actors == 0 {
            return "–".into();
        }
        let approx = if self.rows > 1 { "≈" } else { "" };
        format!(
            "{approx}{} (p90 {approx}{})",
            human_duration(self.med_weighted / self.ttc_actors as f64),
            human_duration(self.p90_weighted / self.ttc_actors as f64)
        )
    }
}

type Key = (String, String, String);

/// Renders the page. `levels` names the levels of the funnel versions it knows (others: `step k`);
/// `title` heads the page.
pub fn render(facts: &[FunnelStepFact], levels: &[FunnelLevels], title: &str) -> String {
    let mut funnels: BTreeMap<Key, BTreeMap<u32, StepSum>> = BTreeMap::new();
    // Per funnel, per entry day: actors per level.
    let mut trend: BTreeMap<Key, BTreeMap<i32, BTreeMap<u32, u64>>> = BTreeMap::new();
    let mut by_breakdown: BTreeMap<Key, BTreeMap<String, BTreeMap<u32, u64>>> = BTreeMap::new();
    let mut days: BTreeMap<Key, (i32, i32)> = BTreeMap::new();
    for f in facts {
        let key = (
            f.app_id.clone(),
            f.funnel_id.clone(),
            f.funnel_version.clone(),
        );
        funnels
            .entry(key.clone())
            .or_default()
            .entry(f.step)
            .or_default()
            .add(f);
        *by_breakdown
            .entry(key.clone())
            .or_default()
            .entry(f.breakdown.clone())
            .or_default()
            .entry(f.step)
            .or_default() += f.actors;
        *trend
            .entry(key.clone())
            .or_default()
            .entry(f.day.0)
            .or_default()
            .entry(f.step)
            .or_default() += f.actors;
        let d = days.entry(key).or_insert((f.day.0, f.day.0));
        d.0 = d.0.min(f.day.0);
        d.1 = d.1.max(f.day.0);
    }

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\n\
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:960px}}\n\
h1{{font-size:1.4em}} h2{{font-size:1.1em;margin-top:2em}} .meta{{color:#666}}\n\
table{{border-collapse:collapse;margin:.5em 0}} td,th{{padding:.2em .6em;text-align:right;border-bottom:1px solid #eee}}\n\
td:first-child,th:first-child{{text-align:left}} svg text{{font:12px system-ui,sans-serif}}\n\
</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    if funnels.is_empty() {
        h.push_str("<p>No funnel facts.</p>\n");
    }
    for (key, steps) in &funnels {
        let (app, id, version) = key;
        let names: &[String] = levels
            .iter()
            .find(|l| &l.id == id && &l.version == version)
            .map_or(&[], |l| l.labels.as_slice());
        let name_of = |k: u32| {
            names
                .get(k as usize - 1)
                .cloned()
                .unwrap_or_else(|| format!("step {k}"))
        };
        let (d0, d1) = days[key];
        let _ = writeln!(
            h,
            "<h2>{} <span class=\"meta\">— app {}, version {}, entry days {} … {}</span></h2>",
            escape(id),
            escape(app),
            escape(version),
            Day(d0),
            Day(d1)
        );
        let first = steps.get(&1).map_or(0, |s| s.actors).max(1);
        let bar_w = 520.0;
        let row_h = 34;
        let _ = writeln!(
            h,
            "<svg role=\"img\" width=\"900\" height=\"{}\" viewBox=\"0 0 900 {}\">",
            steps.len() * row_h + 10,
            steps.len() * row_h + 10
        );
        let mut prev: Option<u64> = None;
        let mut table = String::from(
            "<table><tr><th>step</th><th>actors</th><th>conversion</th><th>drop-off</th><th>time to convert</th></tr>\n",
        );
        for (i, (&k, s)) in steps.iter().enumerate() {
            let conv = 100.0 * s.actors as f64 / first as f64;
            let drop = prev.map(|p| {
                if p == 0 {
                    0.0
                } else {
                    100.0 * (p.saturating_sub(s.actors)) as f64 / p as f64
                }
            });
            let y = i * row_h + 5;
            let w = (bar_w * s.actors as f64 / first as f64).max(1.0);
            let _ = writeln!(
                h,
                "<text x=\"0\" y=\"{ty}\">{name}</text><rect x=\"180\" y=\"{y}\" width=\"{w:.1}\" height=\"24\" fill=\"#4e79a7\"><title>{name}: {a}</title></rect>\
<text x=\"{tx:.1}\" y=\"{ty}\">{a} ({conv:.1}%)</text>",
                ty = y + 16,
                name = escape(&name_of(k)),
                a = s.actors,
                tx = 186.0 + w,
            );
            let _ = writeln!(
                table,
                "<tr><td>{k}. {}</td><td>{}</td><td>{conv:.1}%</td><td>{}</td><td>{}</td></tr>",
                escape(&name_of(k)),
                s.actors,
                drop.map_or("–".into(), |d| format!("{d:.1}%")),
                escape(&s.ttc())
            );
            prev = Some(s.actors);
        }
        h.push_str("</svg>\n");
        h.push_str(&table);
        h.push_str("</table>\n");
        let last = steps.keys().copied().max().unwrap_or(1);
        trend_chart(
            &mut h,
            &trend[key],
            (d0, d1),
            last,
            &name_of(1),
            &name_of(last),
        );
        if let Some(bd) = by_breakdown
            .get(key)
            .filter(|b| b.len() > 1 || !b.contains_key(""))
        {
            let n = steps.keys().copied().max().unwrap_or(1);
            h.push_str("<table><tr><th>breakdown</th>");
            for k in 1..=n {
                let _ = write!(h, "<th>{}</th>", escape(&name_of(k)));
            }
            h.push_str("<th>conversion</th></tr>\n");
            for (value, counts) in bd {
                let label = if value.is_empty() {
                    "(none)".to_string()
                } else {
                    value.clone()
                };
                let _ = write!(h, "<tr><td>{}</td>", escape(&label));
                for k in 1..=n {
                    let _ = write!(h, "<td>{}</td>", counts.get(&k).copied().unwrap_or(0));
                }
                let c1 = counts.get(&1).copied().unwrap_or(0).max(1);
                let cn = counts.get(&n).copied().unwrap_or(0);
                let _ = writeln!(h, "<td>{:.1}%</td></tr>", 100.0 * cn as f64 / c1 as f64);
            }
            h.push_str("</table>\n");
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// The entry-day trend as an inline SVG line chart: actors entering (level 1) and reaching level `last`
/// per day from `d0` to `d1` (days without facts count 0), with the day's conversion in each point's
/// tooltip. `per_day` maps a day number ([`Day`]'s) to actors per level. Names are escaped here.
pub fn trend_chart(
    h: &mut String,
    per_day: &BTreeMap<i32, BTreeMap<u32, u64>>,
    (d0, d1): (i32, i32),
    last: u32,
    first_name: &str,
    last_name: &str,
) {
    const W: f64 = 900.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 24.0;
    const BOTTOM: f64 = 30.0;
    let at = |d: i32, k: u32| {
        per_day
            .get(&d)
            .and_then(|l| l.get(&k))
            .copied()
            .unwrap_or(0)
    };
    let max = (d0..=d1).map(|d| at(d, 1)).max().unwrap_or(0).max(1);
    let span = f64::from((d1 - d0).max(1));
    let x = |d: i32| LEFT + (W - LEFT - RIGHT) * f64::from(d - d0) / span;
    let y = |n: u64| TOP + (H - TOP - BOTTOM) * (1.0 - n as f64 / max as f64);
    let _ = writeln!(
        h,
        "<p class=\"meta\">Trend by entry day: actors entering (<b style=\"color:#4e79a7\">{}</b>) and reaching the last level (<b style=\"color:#e15759\">{}</b>)</p>\n\
<svg class=\"trend\" role=\"img\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n\
<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#999\"/>\n\
<text x=\"{tl}\" y=\"{ty}\" text-anchor=\"end\">{max}</text><text x=\"{tl}\" y=\"{b}\" text-anchor=\"end\">0</text>\n\
<text x=\"{LEFT}\" y=\"{H}\">{}</text><text x=\"{r}\" y=\"{H}\" text-anchor=\"end\">{}</text>",
        escape(first_name),
        escape(last_name),
        Day(d0),
        Day(d1),
        b = H - BOTTOM,
        r = W - RIGHT,
        tl = LEFT - 6.0,
        ty = TOP + 4.0,
    );
    let lines: &[(u32, &str)] = if last > 1 {
        &[(1, "#4e79a7"), (last, "#e15759")]
    } else {
        &[(1, "#4e79a7")]
    };
    for &(k, color) in lines {
        let points: Vec<String> = (d0..=d1)
            .map(|d| format!("{:.1},{:.1}", x(d), y(at(d, k))))
            .collect();
        let _ = writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    for d in d0..=d1 {
        let (entered, reached) = (at(d, 1), at(d, last));
        let conv = if entered == 0 {
            "–".to_string()
        } else {
            format!("{:.1}%", 100.0 * reached as f64 / entered as f64)
        };
        let _ = writeln!(
            h,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#4e79a7\"><title>{}: {entered} entered, {reached} reached the last level ({conv})</title></circle>",
            x(d),
            y(entered),
            Day(d)
        );
    }
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(step: u32, actors: u64, breakdown: &str, day: i32, ttc: Option<f64>) -> FunnelStepFact {
        FunnelStepFact {
            app_id: "app<1>".into(),
            funnel_id: "f&<script>".into(),
            funnel_version: "v1".into(),
            day: Day(day),
            breakdown: breakdown.into(),
            step,
            actors,
            ttc_median_s: ttc,
            ttc_p90_s: ttc.map(|t| t * 2.0),
        }
    }

    #[test]
    fn renders_bars_conversion_dropoff_and_escapes_names() {
        let facts = vec![
            fact(1, 100, "de", 0, Some(0.0)),
            fact(2, 40, "de", 0, Some(30.0)),
            fact(1, 100, "<b>fr</b>", 1, Some(0.0)),
            fact(2, 10, "<b>fr</b>", 1, Some(90.0)),
        ];
        let html = render(&facts, &[], "Funnels \"now\"");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>"), "names are escaped");
        assert!(html.contains("f&amp;&lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;fr&lt;/b&gt;"));
        assert!(html.contains("Funnels &quot;now&quot;"));
        assert_eq!(html.matches("<rect").count(), 2);
        assert!(
            html.contains("200 (100.0%)") && html.contains("50 (25.0%)"),
            "{html}"
        );
        assert!(html.contains("<td>75.0%</td>"), "drop-off 200 → 50: {html}");
        // actor-weighted: (40·30 + 10·90) / 50 = 42 s
        assert!(html.contains("≈42s"), "{html}");
        assert!(!html.contains("http"), "no external assets");
        assert!(html.contains("1970-01-01"));
    }

    #[test]
    fn levels_are_labelled_and_the_trend_has_a_point_per_entry_day() {
        let facts = vec![
            fact(1, 10, "", 0, None),
            fact(2, 4, "", 0, None),
            fact(1, 20, "", 2, None),
            fact(2, 5, "", 2, None),
        ];
        let levels = [FunnelLevels {
            id: "f&<script>".into(),
            version: "v1".into(),
            labels: vec!["install".into(), "≥ 2 steps".into()],
        }];
        let html = render(&facts, &levels, "t");
        assert!(!html.contains("step 1"), "{html}");
        assert!(html.contains("<td>1. install</td>") && html.contains("2. ≥ 2 steps"));
        // Days 0, 1 (no facts: 0 actors) and 2; a line for entering and one for the last level.
        assert_eq!(html.matches("<circle").count(), 3);
        assert_eq!(html.matches("<polyline").count(), 2);
        assert!(html.contains("1970-01-02: 0 entered, 0 reached"), "{html}");
        assert!(html.contains("1970-01-03: 20 entered, 5 reached the last level (25.0%)"));
        // Another version of the funnel is not named by these labels.
        let other: Vec<_> = facts
            .into_iter()
            .map(|f| FunnelStepFact {
                funnel_version: "v2".into(),
                ..f
            })
            .collect();
        assert!(render(&other, &levels, "t").contains("step 1"));
    }

    #[test]
    fn renders_an_empty_page() {
        assert!(render(&[], &[], "x").contains("No funnel facts"));
    }
}
