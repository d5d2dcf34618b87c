//! The scheduler's log on stderr: one line per event, plain (`funnel schedule: level: message`) or one
//! JSON object (`ts`, `level`, `event`, `msg` and the event's fields), as the config's `log` says.

use serde_json::{json, Value};

/// How `funnel schedule` logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Text,
    /// One JSON object per line on stderr.
    Json,
}

/// Writes log events in one format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log {
    pub(crate) format: LogFormat,
}

impl Log {
    pub(crate) fn event(&self, level: &str, event: &str, msg: &str, fields: Value) {
        match self.format {
            LogFormat::Json => {
                let mut obj = json!({
                    "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "level": level,
                    "event": event,
                    "msg": msg,
                });
                if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), fields) {
                    o.extend(extra);
                }
                eprintln!("{obj}");
            }
            LogFormat::Text => eprintln!("funnel schedule: {level}: {msg}"),
        }
    }

    /// A line of the `funnel run` child's output.
    pub(crate) fn child_line(&self, line: &str) {
        match self.format {
            LogFormat::Json => self.event("info", "run_output", line, json!({})),
            LogFormat::Text => eprintln!("  run| {line}"),
        }
    }
}
