//! The progress bar of `funnel run` on stderr, drawn from the batch job's progress reports: on-disk bytes
//! read (with rate and ETA) and rows decoded; for a shuffled run, then its second phase (buckets sorted
//! and evaluated); before either, with `--cache`, the extraction of SSTables not in the cache yet. Only
//! drawn on a terminal and without `--quiet`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use funnelizer::{JobState, Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The bars of one run: the cache's extraction (bytes), the scan's (bytes), then a shuffle's second
/// phase (buckets).
#[derive(Default)]
pub struct Bars {
    bars: Mutex<(
        Option<ProgressBar>,
        Option<ProgressBar>,
        Option<ProgressBar>,
    )>,
}

impl Bars {
    /// A sink drawing bars on stderr, or `None` when stderr is no terminal or `quiet`.
    pub fn for_stderr(quiet: bool) -> Option<Arc<dyn Progress>> {
        (!quiet && std::io::stderr().is_terminal()).then(|| Arc::new(Bars::default()) as _)
    }
}

impl Progress for Bars {
    fn update(&self, now: &JobState) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let (scan, buckets, extract) = &mut *bars;
        if now.phase != Phase::Extracting {
            if let Some(bar) = extract.take() {
                bar.finish_and_clear();
            }
        }
        match now.phase {
            Phase::Extracting => {
                extract
                    .get_or_insert_with(|| {
                        ProgressBar::with_draw_target(
                            Some(now.disk_bytes_total),
                            ProgressDrawTarget::stderr(),
                        )
                        .with_style(style(
                            "extracting SSTables into the cache {bar:20} {bytes}/{total_bytes} · ETA {eta}",
                        ))
                    })
                    .set_position(now.disk_bytes_read.min(now.disk_bytes_total));
            }
            Phase::Streaming | Phase::Shuffling => {
                let bar = scan.get_or_insert_with(|| {
                    let stats = "{bytes}/{total_bytes} on disk · {binary_bytes_per_sec} · {msg} · ETA {eta}";
                    let template = match now.phase {
                        Phase::Shuffling => format!("1/2 scan+shuffle {{bar:20}} {stats}"),
                        _ => format!("{{bar:30}} {stats}"),
                    };
                    ProgressBar::with_draw_target(
                        Some(now.disk_bytes_total),
                        ProgressDrawTarget::stderr(),
                    )
                    .with_style(style(&template))
                });
                bar.set_position(now.disk_bytes_read.min(now.disk_bytes_total));
                let secs = now.elapsed.as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{} rows ({:.1} M rows/s)",
                    now.rows_read,
                    now.rows_read as f64 / secs / 1e6
                ));
            }
            Phase::Evaluating => {
                if let Some(bar) = scan.take() {
                    bar.finish_and_clear();
                }
                buckets
                    .get_or_insert_with(|| {
                        ProgressBar::with_draw_target(
                            Some(now.buckets_total),
                            ProgressDrawTarget::stderr(),
                        )
                        .with_style(style(
                            "2/2 funnels {bar:20} bucket {pos}/{len} (sorted and evaluated) · ETA {eta}",
                        ))
                    })
                    .set_position(now.buckets_done);
            }
            _ => {
                for bar in [scan.take(), buckets.take()].into_iter().flatten() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}
