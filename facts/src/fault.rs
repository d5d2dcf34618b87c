//! Fault injection for crash tests: `FUNNEL_FAULT=<point>` makes the process abort at that point.
//!
//! Points: `publish` (inside the publish transaction, after the first pointer flip, before commit),
//! `stage` (after a run's first staged write committed), `speed` (inside `apply_speed_batch`'s transaction,
//! after the facts were written). The abort is `std::process::abort()`: no destructor, no rollback code
//! runs — the same as a `kill -9`, so what survives is what the storage engine guarantees.

/// Environment variable naming the fault point.
pub const FAULT_ENV: &str = "FUNNEL_FAULT";

/// Abort the process if `FUNNEL_FAULT` names `point`.
pub fn point(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == point) {
        eprintln!("{FAULT_ENV}={point}: aborting the process here (fault injection)");
        std::process::abort();
    }
}
