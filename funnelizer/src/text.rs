//! Facts as text: the aligned tables (for people) and the CSV (for tools) of `funnel query`'s funnel and
//! daily-count answers, with which layer answered each day and where the watermark lies. A funnel's
//! levels are headed by their labels when known ([`crate::Funnel::level_labels`]: `≥ 2 steps` in
//! unordered funnels), else `step1`, `step2` ….

use std::io::Write;

use facts::{CountsAnswer, Day, Freshness, FunnelAnswer, Layer};

/// `2024-05-01 13:04:05Z` from Unix milliseconds.
fn timestamp(ms: i64) -> String {
    let day = Day::from_unix_ms(ms);
    let secs = (ms - day.start_unix_ms()) / 1000;
    format!(
        "{day} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn freshness_lines(out: &mut impl Write, f: &Freshness) -> std::io::Result<()> {
    match (f.watermark, f.batch_run, f.batch_published_at_ms) {
        (Some(w), Some(run), Some(at)) => writeln!(
            out,
            "batch:  complete before {w} (run {run}, published {})",
            timestamp(at)
        )?,
        (Some(w), _, _) => writeln!(out, "batch:  complete before {w}")?,
        _ => writeln!(
            out,
            "batch:  no run published yet: every day comes from the speed layer"
        )?,
    }
    match f.speed_applied_at_ms {
        Some(at) => writeln!(out, "speed:  last batch applied {}", timestamp(at)),
        None => writeln!(out, "speed:  nothing applied yet"),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// A funnel answer as CSV, one line per day, breakdown and step (a day with no values: one line with
/// empty value columns).
pub fn funnel_csv(out: &mut impl Write, a: &FunnelAnswer) -> std::io::Result<()> {
    writeln!(
        out,
        "day,layer,breakdown,step,actors,ttc_median_s,ttc_p90_s"
    )?;
    for d in &a.days {
        if d.steps.is_empty() {
            writeln!(out, "{},{},,,,,", d.day, d.layer)?;
        }
        for s in &d.steps {
            writeln!(
                out,
                "{},{},{},{},{},{},{}",
                d.day,
                d.layer,
                csv_field(&s.breakdown),
                s.step,
                s.actors,
                opt(s.ttc_median_s),
                opt(s.ttc_p90_s)
            )?;
        }
    }
    Ok(())
}

/// A daily-count answer as CSV, one line per day, dimension and value.
pub fn counts_csv(out: &mut impl Write, a: &CountsAnswer) -> std::io::Result<()> {
    writeln!(out, "day,layer,dimension,value,count")?;
    for d in &a.days {
        if d.values.is_empty() {
            writeln!(out, "{},{},,,", d.day, d.layer)?;
        }
        for v in &d.values {
            writeln!(
                out,
                "{},{},{},{},{}",
                d.day,
                d.layer,
                csv_field(&v.dimension),
                csv_field(v.value.as_deref().unwrap_or("")),
                v.count
            )?;
        }
    }
    Ok(())
}

/// Print rows as aligned columns (a one-cell row is a rule line, printed as is).
fn aligned(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter(|r| r.len() > 1)
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        if r.len() == 1 {
            writeln!(out, "{}", r[0])?;
            continue;
        }
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

fn watermark_rule(
    w: Option<Day>,
    day: Day,
    layer: Layer,
    printed: &mut bool,
) -> Option<Vec<String>> {
    match w {
        Some(w) if layer == Layer::Speed && !*printed && day >= w => {
            *printed = true;
            Some(vec![format!("-- watermark {w} --")])
        }
        _ => None,
    }
}

/// A funnel answer as an aligned table with the layers' freshness: a column per level (headed by
/// `labels`, level 1 first, when given), the conversion from level 1 to the last and the last level's
/// median time to convert; one line per day, or per day and breakdown value with `breakdown`.
pub fn funnel_table(
    out: &mut impl Write,
    a: &FunnelAnswer,
    breakdown: bool,
    labels: Option<&[String]>,
) -> std::io::Result<()> {
    writeln!(
        out,
        "funnel {} version {:?} of app {}",
        a.funnel_id, a.funnel_version, a.app_id
    )?;
    freshness_lines(out, &a.freshness)?;
    if a.days.is_empty() {
        writeln!(out, "no data")?;
        return Ok(());
    }
    let max_step = a
        .days
        .iter()
        .flat_map(|d| d.steps.iter().map(|s| s.step))
        .max()
        .unwrap_or(0);
    let mut header = vec!["day".to_string(), "layer".to_string()];
    if breakdown {
        header.push("breakdown".into());
    }
    header.extend((1..=max_step).map(|s| {
        labels
            .and_then(|l| l.get(s as usize - 1))
            .cloned()
            .unwrap_or_else(|| format!("step{s}"))
    }));
    if max_step > 1 {
        header.push("conv%".into());
        header.push(format!("ttc{max_step}_median_s"));
    }
    let mut rows = vec![header];
    let mut printed = false;
    for d in &a.days {
        if let Some(rule) = watermark_rule(a.freshness.watermark, d.day, d.layer, &mut printed) {
            rows.push(rule);
        }
        let mut groups: Vec<&str> = d.steps.iter().map(|s| s.breakdown.as_str()).collect();
        groups.dedup();
        if groups.is_empty() {
            let mut r = vec![d.day.to_string(), d.layer.to_string()];
            if breakdown {
                r.push(String::new());
            }
            r.push("-".into());
            rows.push(r);
        }
        for g in groups {
            let mut r = vec![d.day.to_string(), d.layer.to_string()];
            if breakdown {
                r.push(g.to_string());
            }
            let of = |step: u32| d.steps.iter().find(|s| s.breakdown == g && s.step == step);
            for step in 1..=max_step {
                r.push(of(step).map(|s| s.actors).unwrap_or(0).to_string());
            }
            if max_step > 1 {
                let first = of(1).map(|s| s.actors).unwrap_or(0);
                let last = of(max_step).map(|s| s.actors).unwrap_or(0);
                r.push(if first == 0 {
                    "-".into()
                } else {
                    format!("{:.1}", 100.0 * last as f64 / first as f64)
                });
                r.push(
                    of(max_step)
                        .and_then(|s| s.ttc_median_s)
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            rows.push(r);
        }
    }
    aligned(out, &rows)
}

/// A daily-count answer as an aligned table with the layers' freshness.
pub fn counts_table(out: &mut impl Write, a: &CountsAnswer) -> std::io::Result<()> {
    writeln!(out, "{} of app {}", a.metric, a.app_id)?;
    freshness_lines(out, &a.freshness)?;
    if a.days.is_empty() {
        writeln!(out, "no data")?;
        return Ok(());
    }
    let mut rows = vec![vec![
        "day".to_string(),
        "layer".into(),
        "dimension".into(),
        "value".into(),
        "count".into(),
    ]];
    let mut printed = false;
    for d in &a.days {
        if let Some(rule) = watermark_rule(a.freshness.watermark, d.day, d.layer, &mut printed) {
            rows.push(rule);
        }
        if d.values.is_empty() {
            rows.push(vec![d.day.to_string(), d.layer.to_string(), "-".into()]);
        }
        for v in &d.values {
            rows.push(vec![
                d.day.to_string(),
                d.layer.to_string(),
                v.dimension.clone(),
                v.value.clone().unwrap_or_else(|| "(all)".into()),
                v.count.to_string(),
            ]);
        }
    }
    aligned(out, &rows)
}
