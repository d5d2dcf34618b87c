//! `funnel report`: the self-contained HTML page (a funnel chart and the entry-day trend per funnel) of
//! what a fact store holds, for the apps and funnels of its most recent published batch run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use facts::{FactReader, FunnelQuery, FunnelStepFact, Layer, RunStatus};
use funnelizer::{FunnelLevels, RunInputs};

/// Write an HTML report (per app and funnel: a funnel chart, the trend by entry day and the breakdown
/// split) from a fact store.
///
/// The apps and funnels are those of the most recent published `funnel run` (or --app); days below
/// the watermark come from the batch layer, later days from the stream's speed layer.
///
/// Example:
///   funnel report --facts sqlite:facts.db --out report.html
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub facts: crate::common::FactsArg,
    /// Output file.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
    /// Only these apps (default: the apps of the last published run).
    #[arg(long, value_delimiter = ',')]
    pub app: Vec<String>,
    /// Funnel definitions naming the steps (default: the names the runs recorded).
    #[arg(long, value_name = "FILE")]
    pub funnels: Option<PathBuf>,
    /// Page title.
    #[arg(long, default_value = "Funnels")]
    pub title: String,
}

/// Every funnel_steps value the store answers for `apps` × `funnels` (id, version).
pub fn read_facts(
    store: &dyn FactReader,
    apps: &[String],
    funnels: &[(String, String)],
) -> Result<Vec<FunnelStepFact>> {
    let mut out = Vec::new();
    for app in apps {
        for (id, version) in funnels {
            let mut q = FunnelQuery::new(app, id);
            q.funnel_version = Some(version.clone());
            q.breakdown = true;
            let answer = store
                .read_funnel(&q)
                .with_context(|| format!("reading funnel {id} of app {app}"))?;
            for day in answer.days {
                if day.layer != Layer::Batch && day.steps.is_empty() {
                    continue;
                }
                for s in day.steps {
                    out.push(FunnelStepFact {
                        app_id: app.clone(),
                        funnel_id: id.clone(),
                        funnel_version: answer.funnel_version.clone(),
                        day: day.day,
                        breakdown: s.breakdown,
                        step: s.step,
                        actors: s.actors,
                        ttc_median_s: s.ttc_median_s,
                        ttc_p90_s: s.ttc_p90_s,
                    });
                }
            }
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let store = args.facts.open()?;
    let runs = store.runs(100)?;
    let last = runs
        .iter()
        .filter(|r| r.status == RunStatus::Published)
        .max_by_key(|r| r.run_id)
        .context("the store has no published batch run (run `funnel run` first, or name apps with --app)")?;
    let apps: Vec<String> = if args.app.is_empty() {
        RunInputs::of(last).map(|i| i.apps).unwrap_or_default()
    } else {
        args.app.clone()
    };
    let levels = match &args.funnels {
        Some(p) => FunnelLevels::of_set(&funnelizer::FunnelSet::load(p)?),
        None => last
            .funnels
            .iter()
            .filter_map(|(id, version)| {
                let labels = RunInputs::labels_in(&runs, id, version)?;
                Some(FunnelLevels {
                    id: id.clone(),
                    version: version.clone(),
                    labels,
                })
            })
            .collect(),
    };
    let facts = read_facts(&store, &apps, &last.funnels)?;
    let html = funnelizer::report::render(&facts, &levels, &args.title);
    std::fs::write(&args.out, html).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} apps, {} funnels, {} fact rows)",
        args.out.display(),
        apps.len(),
        last.funnels.len(),
        facts.len()
    );
    Ok(ExitCode::SUCCESS)
}
