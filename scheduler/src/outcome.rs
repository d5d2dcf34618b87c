//! What one scheduled attempt came to ([`Outcome`]), and its documented process exit code: the codes of
//! `funnel schedule --once`, of which `funnel run` uses those a run can end with.

use std::fmt;

use funnelizer::ErrorKind;
use serde::{Deserialize, Serialize};

/// What one scheduled attempt came to. [`Outcome::exit_code`] is the exit code of `funnel schedule --once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The run published its results (exit 0).
    Published,
    /// Nothing changed since the last published run: inputs and funnel versions are the same (exit 3).
    Skipped,
    /// Another scheduler holds the lock on this store, or the run of a killed one still goes (exit 4).
    Busy,
    /// The schedule config or the funnels file is wrong (exit 5).
    ConfigError,
    /// The SSTables could not be listed, opened or read (exit 6).
    InputError,
    /// The fact store (or the scheduler's state next to it) failed (exit 7).
    StoreError,
    /// The run was killed: a signal, the timeout or the memory budget (exit 8).
    Crashed,
    /// The run exited with an error of no other kind (exit 9).
    Failed,
    /// The run is in progress (only seen in the state file while it runs).
    Running,
}

impl Outcome {
    /// Every outcome that ends an attempt, in exit-code order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Published,
        Outcome::Skipped,
        Outcome::Busy,
        Outcome::ConfigError,
        Outcome::InputError,
        Outcome::StoreError,
        Outcome::Crashed,
        Outcome::Failed,
    ];

    /// The process exit code of `funnel schedule --once` (and the code recorded in the state).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Published => 0,
            Outcome::Skipped => 3,
            Outcome::Busy => 4,
            Outcome::ConfigError => 5,
            Outcome::InputError => 6,
            Outcome::StoreError => 7,
            Outcome::Crashed => 8,
            Outcome::Failed => 9,
            Outcome::Running => 1,
        }
    }

    /// The kind of failure a `funnel run` child reports by its exit code: `funnel run` exits with the
    /// codes of [`Outcome::ConfigError`], [`Outcome::InputError`], [`Outcome::StoreError`] and
    /// [`Outcome::Failed`] (and 0 when it published). `None` for any other code (e.g. 2 for usage errors,
    /// 101 for a panic).
    pub fn from_run_exit_code(code: i32) -> Option<Outcome> {
        RUN_OUTCOMES
            .into_iter()
            .find(|o| i32::from(o.exit_code()) == code)
    }

    /// The outcome of a run that failed with an error of `kind`.
    pub fn of_error(kind: ErrorKind) -> Outcome {
        match kind {
            ErrorKind::Config => Outcome::ConfigError,
            ErrorKind::Input => Outcome::InputError,
            ErrorKind::Store => Outcome::StoreError,
            _ => Outcome::Failed,
        }
    }

    /// As written in logs and the state file.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Skipped => "skipped",
            Outcome::Busy => "busy",
            Outcome::ConfigError => "config_error",
            Outcome::InputError => "input_error",
            Outcome::StoreError => "store_error",
            Outcome::Crashed => "crashed",
            Outcome::Failed => "failed",
            Outcome::Running => "running",
        }
    }

    /// Whether the attempt is a success for operators (published or nothing to do).
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Published | Outcome::Skipped)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcomes `funnel run` exits with, in exit-code order (0, 5, 6, 7, 9).
pub const RUN_OUTCOMES: [Outcome; 5] = [
    Outcome::Published,
    Outcome::ConfigError,
    Outcome::InputError,
    Outcome::StoreError,
    Outcome::Failed,
];

/// The exit code table for `--help` texts, one line per outcome.
pub fn exit_code_help() -> String {
    Outcome::ALL
        .iter()
        .map(|o| {
            let what = match o {
                Outcome::Published => "ran and published",
                Outcome::Skipped => {
                    "skipped: inputs and funnel versions unchanged since the last published run"
                }
                Outcome::Busy => "another scheduler (or the run of a killed one) holds this store",
                Outcome::ConfigError => "config or funnel definition error",
                Outcome::InputError => "input (SSTable) error",
                Outcome::StoreError => "fact store (or scheduler state) error",
                Outcome::Crashed => "run crashed or was killed (signal, timeout, memory budget)",
                Outcome::Failed => "run failed with another error (see funnel status)",
                Outcome::Running => "",
            };
            format!("  {:>2}  {what}", o.exit_code())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_avoid_generic_failure_and_usage_codes() {
        let mut codes: Vec<u8> = Outcome::ALL.iter().map(|o| o.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Outcome::ALL.len());
        assert!(!codes.contains(&1) && !codes.contains(&2));
        assert_eq!(Outcome::Published.exit_code(), 0);
    }

    #[test]
    fn run_exit_codes_map_back_to_their_outcomes() {
        assert_eq!(Outcome::from_run_exit_code(5), Some(Outcome::ConfigError));
        assert_eq!(Outcome::from_run_exit_code(6), Some(Outcome::InputError));
        assert_eq!(Outcome::from_run_exit_code(7), Some(Outcome::StoreError));
        assert_eq!(Outcome::from_run_exit_code(9), Some(Outcome::Failed));
        for code in [1, 2, 3, 4, 8, 101] {
            assert_eq!(Outcome::from_run_exit_code(code), None, "{code}");
        }
    }

    #[test]
    fn outcomes_round_trip_through_json() {
        for o in Outcome::ALL {
            let s = serde_json::to_string(&o).unwrap();
            assert_eq!(s, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&s).unwrap(), o);
        }
    }
}
