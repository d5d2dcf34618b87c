//! `funnel facts demo`: deterministic demo facts (a published batch run with per-breakdown steps and their
//! totals, daily counts, and speed-layer batches past its watermark) to try `funnel query` or a dashboard
//! without a cluster.

use std::process::ExitCode;

use anyhow::Context;
use facts::{
    BatchPublisher, DailyCountFact, Day, FunnelStepFact, FunnelTotalFact, RunMeta, SpeedBatch,
    StreamSink, Watermark,
};

use crate::common::FactsArg;

/// `funnel facts demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub facts: FactsArg,
    /// Application id to write under.
    #[arg(long, default_value = "demo")]
    pub app: String,
    /// Funnel id (three steps, breakdown by platform).
    #[arg(long, default_value = "signup")]
    pub funnel: String,
    /// Funnel version.
    #[arg(long, default_value = "1")]
    pub funnel_version: String,
    /// Batch watermark: the batch run is complete for days before it (default: today, UTC).
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub batch_until: Option<Day>,
    /// Days covered by the batch run.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Days the speed layer covers from the watermark on.
    #[arg(long, default_value_t = 2)]
    pub speed_days: u32,
    /// Seed of the numbers: the same seed writes the same facts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn parse_day(s: &str) -> Result<Day, String> {
    s.parse::<Day>().map_err(|e| e.to_string())
}

/// SplitMix64: deterministic demo numbers from (seed, coordinates).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn h(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |acc, p| mix(acc ^ p))
}

const PLATFORMS: [&str; 3] = ["android", "ios", "web"];
const TRACKERS: [&str; 3] = ["newsletter", "search", "social"];
const EVENTS: [&str; 3] = ["open", "purchase", "signup"];

fn demo_steps(a: &DemoArgs, day: Day, with_ttc: bool, salt: u64) -> Vec<FunnelStepFact> {
    let mut out = Vec::new();
    for (pi, platform) in PLATFORMS.iter().enumerate() {
        let r = h(a.seed, &[day.0 as u64, pi as u64, salt]);
        let s1 = 50 + r % 150;
        let s2 = s1 * (30 + (r >> 8) % 50) / 100;
        let s3 = s2 * (20 + (r >> 16) % 60) / 100;
        for (step, actors) in [(1u32, s1), (2, s2), (3, s3)] {
            // Step 1 converts in 0 s; later steps take longer. Speed partials carry no time-to-convert.
            let ttc = with_ttc.then_some((step as f64 - 1.0) * (300.0 + ((r >> 24) % 600) as f64));
            out.push(FunnelStepFact {
                app_id: a.app.clone(),
                funnel_id: a.funnel.clone(),
                funnel_version: a.funnel_version.clone(),
                day,
                breakdown: platform.to_string(),
                step,
                actors,
                ttc_median_s: ttc,
                ttc_p90_s: ttc.map(|t| t * 3.0),
            });
        }
    }
    out
}

/// The all-breakdowns rows of `steps`: actors summed over breakdowns. A batch run computes the total's
/// time-to-convert from every actor's times; the demo has no actors, so it takes the actor-weighted mean of
/// the breakdowns' figures (a plausible number, not a median).
fn demo_totals(steps: &[FunnelStepFact]) -> Vec<FunnelTotalFact> {
    let mut totals: Vec<FunnelTotalFact> = Vec::new();
    let mut weighted: Vec<(f64, f64)> = Vec::new();
    for s in steps {
        let i = match totals
            .iter()
            .position(|t| t.day == s.day && t.step == s.step)
        {
            Some(i) => i,
            None => {
                totals.push(FunnelTotalFact {
                    app_id: s.app_id.clone(),
                    funnel_id: s.funnel_id.clone(),
                    funnel_version: s.funnel_version.clone(),
                    day: s.day,
                    step: s.step,
                    actors: 0,
                    ttc_median_s: None,
                    ttc_p90_s: None,
                });
                weighted.push((0.0, 0.0));
                totals.len() - 1
            }
        };
        totals[i].actors += s.actors;
        if let (Some(m), Some(p)) = (s.ttc_median_s, s.ttc_p90_s) {
            weighted[i].0 += m * s.actors as f64;
            weighted[i].1 += p * s.actors as f64;
        }
    }
    for (t, (m, p)) in totals.iter_mut().zip(weighted) {
        if t.actors > 0 {
            t.ttc_median_s = Some(m / t.actors as f64);
            t.ttc_p90_s = Some(p / t.actors as f64);
        }
    }
    totals
}

fn demo_counts(a: &DemoArgs, day: Day, salt: u64) -> Vec<DailyCountFact> {
    let mut out = Vec::new();
    for (metric, dimension, values) in [("hits", "tracker", TRACKERS), ("events", "name", EVENTS)] {
        for (i, v) in values.iter().enumerate() {
            out.push(DailyCountFact {
                app_id: a.app.clone(),
                day,
                metric: metric.into(),
                dimension: dimension.into(),
                value: v.to_string(),
                count: (100 + h(a.seed, &[day.0 as u64, i as u64, metric.len() as u64, salt]) % 900)
                    as i64,
            });
        }
    }
    out
}

pub(crate) fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let store = a.facts.open()?;
    store.init().context("creating the fact tables")?;
    let until = a.batch_until.unwrap_or_else(Day::today);
    let first = until.plus(-(a.days.min(36_000) as i32));

    let run = store.begin_run(&RunMeta {
        started_at_ms: now_ms(),
        inputs: serde_json::json!({ "demo": { "seed": a.seed, "days": a.days } }),
        funnels: vec![(a.funnel.clone(), a.funnel_version.clone())],
    })?;
    let (mut steps_n, mut counts_n) = (0, 0);
    let days: Vec<Day> = first.through(until.plus(-1)).collect();
    for chunk in days.chunks(7) {
        let steps: Vec<_> = chunk
            .iter()
            .flat_map(|d| demo_steps(&a, *d, true, 0))
            .collect();
        let counts: Vec<_> = chunk.iter().flat_map(|d| demo_counts(&a, *d, 0)).collect();
        store.write_funnel_steps(run, &steps)?;
        store.write_funnel_totals(run, &demo_totals(&steps))?;
        store.write_daily_counts(run, &counts)?;
        steps_n += steps.len();
        counts_n += counts.len();
    }
    let watermarks = [
        Watermark::funnel(&a.app, &a.funnel, &a.funnel_version, until),
        Watermark::counts(&a.app, "hits", until),
        Watermark::counts(&a.app, "events", until),
    ];
    store
        .publish(run, &watermarks)
        .context("publishing the demo run")?;
    println!(
        "published run {run}: {steps_n} funnel step rows, {counts_n} count rows for {} .. {}, watermark {until}",
        first,
        until.plus(-1)
    );

    // Speed layer: two partitions, one batch per partition and day, continuing after committed offsets.
    let topic = format!("demo-{}", a.app);
    let committed = store.committed_offsets("demo", &topic)?;
    let mut applied = 0;
    for partition in 0..2i32 {
        let mut next = committed
            .iter()
            .find(|(p, _)| *p == partition)
            .map(|(_, o)| *o)
            .unwrap_or(0);
        for day in until.plus(-1).through(until.plus(a.speed_days as i32 - 1)) {
            let salt = 1 + partition as u64;
            let mut steps = demo_steps(&a, day, false, salt);
            for s in &mut steps {
                s.actors /= 2;
            }
            let mut counts = demo_counts(&a, day, salt);
            for c in &mut counts {
                c.count /= 2;
            }
            let n = 100;
            let batch = SpeedBatch {
                group: "demo".into(),
                topic: topic.clone(),
                partition,
                first_offset: next,
                next_offset: next + n,
                daily_counts: counts,
                funnel_steps: steps,
                state_puts: vec![],
                state_deletes: vec![],
                seen_ids: vec![],
                owned_namespaces: vec![],
            };
            if store.apply_speed_batch(&batch)? {
                applied += 1;
            }
            next += n;
        }
    }
    println!("applied {applied} speed batches to topic {topic} (group demo)");
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
