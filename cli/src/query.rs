//! `funnel query`: read a funnel or a daily-count metric from the fact store, batch and speed layers
//! merged at the watermark, showing which layer answered each day.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use facts::{
    CountsAnswer, CountsQuery, Day, FactReader, Freshness, FunnelAnswer, FunnelQuery, Layer,
};

/// Read a funnel or a daily count from the fact tables.
///
/// Days before the batch watermark come from the last published batch run (authoritative); later days
/// from the real-time speed layer, its partial aggregates summed. Every day says which layer answered,
/// and the header says how fresh each layer is. A day with no values had no rows in its layer (zero actors,
/// or the stream has not covered it yet).
///
/// Time-to-convert (median, p90) is exact on batch days and empty on speed days (medians of partial
/// aggregates cannot be merged).
///
/// Formats: `table` (default, for people); `json` (one JSON document: the answer with `freshness` and one
/// entry per day — stable field names, machine-readable); `csv` (long format, one line per
/// day/breakdown/step or day/dimension/value; a day with no values is one line with empty value columns).
///
/// Examples:
///
///   funnel query --facts sqlite:facts.db --app shop --funnel signup
///
///   funnel query --facts sqlite:facts.db --app shop --funnel signup --from 2024-05-01 --to 2024-05-31 --breakdown
///
///   funnel query --facts sqlite:facts.db --app shop --counts hits --breakdown --format csv
///
///   funnel query --facts cql://10.0.0.5:9042/funnel --app shop --counts conversions --format json
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["funnel", "counts"])))]
pub struct Args {
    /// Fact store: `sqlite:PATH` or `cql://host:port[,host…]/keyspace[?user=U&password=P&tls=true]`.
    #[arg(long, env = "FUNNEL_FACTS", value_name = "URL")]
    pub facts: String,
    /// Application id.
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// Funnel id to read.
    #[arg(long, value_name = "FUNNEL")]
    pub funnel: Option<String>,
    /// Funnel version (default: the most recently published one).
    #[arg(long, value_name = "VERSION", requires = "funnel")]
    pub funnel_version: Option<String>,
    /// Daily-count metric to read: hits, events or conversions.
    #[arg(long, value_name = "METRIC")]
    pub counts: Option<String>,
    /// Only this dimension of the metric (tracker, name).
    #[arg(long, value_name = "DIMENSION", requires = "counts")]
    pub dimension: Option<String>,
    /// First day (YYYY-MM-DD, UTC); default: the first day with data.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub from: Option<Day>,
    /// Last day, included (YYYY-MM-DD, UTC); default: the last day with data.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub to: Option<Day>,
    /// One line per breakdown value (funnels) or per dimension value (counts) instead of totals.
    #[arg(long)]
    pub breakdown: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `funnel query` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn parse_day(s: &str) -> Result<Day, String> {
    s.parse::<Day>().map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = facts::open_store(&args.facts)
        .with_context(|| format!("opening fact store {}", facts::url::redact(&args.facts)))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(funnel) = &args.funnel {
        let q = FunnelQuery {
            app_id: args.app.clone(),
            funnel_id: funnel.clone(),
            funnel_version: args.funnel_version.clone(),
            from: args.from,
            to: args.to,
            breakdown: args.breakdown,
        };
        let answer = store.read_funnel(&q).context("reading the funnel")?;
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &answer)?;
                writeln!(out)?;
            }
            Format::Csv => funnel_csv(&mut out, &answer)?,
            Format::Table => funnel_table(&mut out, &answer, args.breakdown)?,
        }
    } else if let Some(metric) = &args.counts {
        let q = CountsQuery {
            app_id: args.app.clone(),
            metric: metric.clone(),
            dimension: args.dimension.clone(),
            from: args.from,
            to: args.to,
            breakdown: args.breakdown,
        };
        let answer = store.read_counts(&q).context("reading the counts")?;
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &answer)?;
                writeln!(out)?;
            }
            Format::Csv => counts_csv(&mut out, &answer)?,
            Format::Table => counts_table(&mut out, &answer)?,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn funnel_csv(out: &mut impl Write, a: &FunnelAnswer) -> std::io::Result<()> {
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

fn counts_csv(out: &mut impl Write, a: &CountsAnswer) -> std::io::Result<()> {
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

fn funnel_table(out: &mut impl Write, a: &FunnelAnswer, breakdown: bool) -> std::io::Result<()> {
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
    header.extend((1..=max_step).map(|s| format!("step{s}")));
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

fn counts_table(out: &mut impl Write, a: &CountsAnswer) -> std::io::Result<()> {
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
