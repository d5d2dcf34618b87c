//! A progress bar on stderr for long scans: on-disk bytes read (with rate and ETA) and rows decoded,
//! fed by the shared counters of the scan workers. Hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sstable_reader::parallel::ScanCounters;

/// Runs `f` while a progress bar (total = on-disk bytes) follows `counters`.
pub fn with_progress<T>(
    total_disk_bytes: u64,
    counters: &ScanCounters,
    quiet: bool,
    f: impl FnOnce() -> T,
) -> T {
    if quiet || !std::io::stderr().is_terminal() {
        return f();
    }
    let bar = ProgressBar::with_draw_target(Some(total_disk_bytes), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} on disk · {binary_bytes_per_sec} · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let done = AtomicBool::new(false);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let (disk, rows, _) = counters.get();
                bar.set_position(disk.min(total_disk_bytes));
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{} rows ({:.1} M rows/s)",
                    rows,
                    rows as f64 / secs / 1e6
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.finish_and_clear();
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        out
    })
}
