//! A progress bar on stderr for long scans: on-disk bytes read (with rate and ETA) and rows decoded,
//! fed by the shared counters of the scan workers; for a shuffled run, then its second phase (buckets
//! sorted and evaluated). Hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use funnelizer::BucketProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sstable_reader::ScanCounters;

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Runs `f` while a progress bar (total = on-disk bytes) follows `counters`, then, once a shuffle's
/// second phase starts, `buckets`.
pub fn with_progress<T>(
    total_disk_bytes: u64,
    counters: &ScanCounters,
    buckets: Option<&BucketProgress>,
    quiet: bool,
    f: impl FnOnce() -> T,
) -> T {
    if quiet || !std::io::stderr().is_terminal() {
        return f();
    }
    let bar = ProgressBar::with_draw_target(Some(total_disk_bytes), ProgressDrawTarget::stderr());
    let scan = "{bytes}/{total_bytes} on disk · {binary_bytes_per_sec} · {msg} · ETA {eta}";
    bar.set_style(style(&match buckets {
        Some(_) => format!("1/2 scan+shuffle {{bar:20}} {scan}"),
        None => format!("{{bar:30}} {scan}"),
    }));
    let done = AtomicBool::new(false);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            // Phase 2 of a shuffle gets a bar of its own (buckets, not bytes).
            let mut phase2: Option<ProgressBar> = None;
            while !done.load(Ordering::Relaxed) {
                match buckets.map(BucketProgress::get) {
                    Some((evaluated, total)) if total > 0 => {
                        let b = phase2.get_or_insert_with(|| {
                            bar.finish_and_clear();
                            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                                .with_style(style(
                                    "2/2 funnels {bar:20} bucket {pos}/{len} (sorted and evaluated) · ETA {eta}",
                                ))
                        });
                        b.set_position(evaluated);
                    }
                    _ => {
                        let (disk, rows, _) = counters.get();
                        bar.set_position(disk.min(total_disk_bytes));
                        let secs = started.elapsed().as_secs_f64().max(1e-3);
                        bar.set_message(format!(
                            "{} rows ({:.1} M rows/s)",
                            rows,
                            rows as f64 / secs / 1e6
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            phase2.as_ref().unwrap_or(&bar).finish_and_clear();
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        out
    })
}
