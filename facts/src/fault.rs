//! Fault injection for crash tests, compiled in only with the `fault-injection` cargo feature (which only
//! the end-to-end tests enable): `FUNNEL_FAULT=<point>` then makes the process abort at that point.
//! Without the feature [`point`] is empty and no environment variable is read.
//!
//! Points: `publish` (inside the publish transaction, after the first pointer flip, before commit),
//! `stage` (after a run's first staged write committed), `speed` (inside `apply_speed_batch`'s transaction,
//! after the facts were written). The abort is `std::process::abort()`: no destructor, no rollback code
//! runs — the same as a `kill -9`, so what survives is what the storage engine guarantees.

/// Abort the process if `FUNNEL_FAULT` names `point`.
#[cfg(feature = "fault-injection")]
pub(crate) fn point(point: &str) {
    const FAULT_ENV: &str = "FUNNEL_FAULT";
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == point) {
        eprintln!("{FAULT_ENV}={point}: aborting the process here (fault injection)");
        std::process::abort();
    }
}

/// Fault injection is not compiled in.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn point(_point: &str) {}
