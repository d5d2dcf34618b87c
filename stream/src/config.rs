//! Per-app attribution settings (`--config F`, TOML): windows, first/last-click policy, which events
//! convert, and how late a message may arrive and still be matched.
//!
//! ```toml
//! [defaults]
//! policy = "first_click"          # or "last_click"
//! device_window = "7d"            # hit and event carry the same device id
//! fingerprint_window = "24h"      # matched on (IP, user agent) only
//! conversion_events = ["install", "open"]
//! late_arrival = "1d"             # how far behind the key's newest message a pending item is kept
//! dedupe_window = "1d"            # how long a hit/event id is remembered (default: late_arrival, >= 1d)
//!
//! [apps.a1]                       # overrides for one app; unset keys fall back to [defaults]
//! policy = "last_click"
//! fingerprint_window = "12h"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::StreamError;

/// Which of several eligible clicks gets the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The earliest eligible click (Tapstream).
    FirstClick,
    /// The latest eligible click before the event (most attribution products).
    LastClick,
}

/// Resolved settings of one app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppAttribution {
    pub policy: Policy,
    pub device_window_ms: i64,
    pub fingerprint_window_ms: i64,
    pub conversion_events: Vec<String>,
    pub late_arrival_ms: i64,
    /// How long an applied hit/event id is remembered to drop its copies; `None`: the default,
    /// [`AppAttribution::dedupe_window_ms`].
    pub dedupe_window_ms: Option<i64>,
}

impl Default for AppAttribution {
    fn default() -> Self {
        AppAttribution {
            policy: Policy::FirstClick,
            device_window_ms: 7 * 86_400_000,
            fingerprint_window_ms: 86_400_000,
            conversion_events: vec!["install".to_string(), "open".to_string()],
            late_arrival_ms: 86_400_000,
            dedupe_window_ms: None,
        }
    }
}

impl AppAttribution {
    pub fn converts(&self, event_name: &str) -> bool {
        self.conversion_events.iter().any(|n| n == event_name)
    }

    /// How long after its own timestamp (in the key's event time) a pending hit is kept.
    pub fn hit_horizon_ms(&self) -> i64 {
        self.device_window_ms.max(self.fingerprint_window_ms) + self.late_arrival_ms
    }

    /// How long after its own timestamp a pending conversion event waits for a late click.
    pub fn event_horizon_ms(&self) -> i64 {
        self.late_arrival_ms
    }

    /// How long (event time past the id's `ts`, and wall-clock time past when it was applied, whichever
    /// ends later) a hit or event id is remembered so that its copies are dropped: `dedupe_window` when
    /// set, else the late-arrival window but at least one day (a producer's retries arrive within seconds;
    /// a copy that is a late arrival itself must not count twice either).
    pub fn dedupe_window_ms(&self) -> i64 {
        self.dedupe_window_ms
            .unwrap_or(self.late_arrival_ms.max(MIN_DEFAULT_DEDUPE_MS))
    }
}

/// The default dedupe window is never shorter than this (one day).
pub const MIN_DEFAULT_DEDUPE_MS: i64 = 86_400_000;

/// Settings for all apps: defaults plus per-app overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributionConfig {
    pub defaults: AppAttribution,
    pub apps: BTreeMap<String, AppAttribution>,
}

impl AttributionConfig {
    pub fn for_app(&self, app_id: &str) -> &AppAttribution {
        self.apps.get(app_id).unwrap_or(&self.defaults)
    }

    pub fn load(path: &Path) -> Result<AttributionConfig, StreamError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StreamError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| StreamError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<AttributionConfig, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let defaults = file
            .defaults
            .unwrap_or_default()
            .resolve(&AppAttribution::default())?;
        let mut apps = BTreeMap::new();
        for (app, partial) in file.apps {
            let resolved = partial
                .resolve(&defaults)
                .map_err(|e| format!("apps.{app}: {e}"))?;
            apps.insert(app, resolved);
        }
        Ok(AttributionConfig { defaults, apps })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    defaults: Option<PartialApp>,
    #[serde(default)]
    apps: BTreeMap<String, PartialApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialApp {
    policy: Option<Policy>,
    device_window: Option<String>,
    fingerprint_window: Option<String>,
    conversion_events: Option<Vec<String>>,
    late_arrival: Option<String>,
    dedupe_window: Option<String>,
}

impl PartialApp {
    fn resolve(self, base: &AppAttribution) -> Result<AppAttribution, String> {
        let dur = |v: Option<String>, name: &str, fallback: i64| -> Result<i64, String> {
            match v {
                Some(s) => parse_duration_ms(&s).map_err(|e| format!("{name}: {e}")),
                None => Ok(fallback),
            }
        };
        Ok(AppAttribution {
            policy: self.policy.unwrap_or(base.policy),
            device_window_ms: dur(self.device_window, "device_window", base.device_window_ms)?,
            fingerprint_window_ms: dur(
                self.fingerprint_window,
                "fingerprint_window",
                base.fingerprint_window_ms,
            )?,
            conversion_events: self
                .conversion_events
                .unwrap_or_else(|| base.conversion_events.clone()),
            late_arrival_ms: dur(self.late_arrival, "late_arrival", base.late_arrival_ms)?,
            dedupe_window_ms: match self.dedupe_window {
                Some(s) => Some(parse_duration_ms(&s).map_err(|e| format!("dedupe_window: {e}"))?),
                None => base.dedupe_window_ms,
            },
        })
    }
}

/// `"7d"`, `"24h"`, `"90m"`, `"30s"`, `"1500ms"` → milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (d, h, m, s, ms)"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let scale = match unit.trim() {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        "ms" => 1,
        other => return Err(format!("unknown unit {other:?} in {s:?} (d, h, m, s, ms)")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = AttributionConfig::parse(
            r#"
            [defaults]
            policy = "last_click"
            fingerprint_window = "12h"
            [apps.a1]
            policy = "first_click"
            conversion_events = ["install"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.defaults.policy, Policy::LastClick);
        assert_eq!(cfg.defaults.fingerprint_window_ms, 12 * 3_600_000);
        assert_eq!(cfg.defaults.device_window_ms, 7 * 86_400_000);
        let a1 = cfg.for_app("a1");
        assert_eq!(a1.policy, Policy::FirstClick);
        assert_eq!(
            a1.fingerprint_window_ms,
            12 * 3_600_000,
            "inherits [defaults], not the built-in default"
        );
        assert!(a1.converts("install") && !a1.converts("open"));
        assert!(cfg.for_app("other").converts("open"));
    }

    #[test]
    fn dedupe_window_defaults_to_late_arrival_but_at_least_a_day() {
        let day = 86_400_000;
        let cfg = AttributionConfig::parse(
            r#"
            [apps.short]
            late_arrival = "2h"
            [apps.long]
            late_arrival = "3d"
            [apps.set]
            dedupe_window = "6h"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.defaults.dedupe_window_ms(), day);
        assert_eq!(cfg.for_app("short").dedupe_window_ms(), day);
        assert_eq!(cfg.for_app("long").dedupe_window_ms(), 3 * day);
        assert_eq!(cfg.for_app("set").dedupe_window_ms(), 6 * 3_600_000);
        let inherited = AttributionConfig::parse(
            "[defaults]\ndedupe_window = \"2d\"\n[apps.a1]\nlate_arrival = \"5d\"",
        )
        .unwrap();
        assert_eq!(inherited.for_app("a1").dedupe_window_ms(), 2 * day);
        assert!(AttributionConfig::parse("[defaults]\ndedupe_window = \"soon\"").is_err());
    }

    #[test]
    fn errors_are_reported() {
        assert!(AttributionConfig::parse("[defaults]\npolicy = \"middle_click\"").is_err());
        assert!(AttributionConfig::parse("[defaults]\ndevice_window = \"7 weeks\"").is_err());
        assert!(AttributionConfig::parse("[defaultz]").is_err());
        assert_eq!(parse_duration_ms("1500ms"), Ok(1500));
        assert_eq!(parse_duration_ms("90m"), Ok(5_400_000));
        assert!(parse_duration_ms("7").is_err());
    }
}
