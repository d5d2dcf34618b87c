//! What a run read, as recorded with it in the fact store ([`RunInputs`], `RunRecord::inputs`), and the
//! labels of every funnel's levels ([`FunnelLevels`]).

use facts::RunRecord;
use serde::{Deserialize, Serialize};

use crate::definition::FunnelSet;

/// What a run read, as recorded with it in the fact store (`RunRecord::inputs`): the data paths, the
/// SSTables of each table, `--now`, the apps seen, and the labels of every funnel's levels (so readers
/// can name the steps of what they show without the definition file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunInputs {
    /// The data paths given.
    pub data: Vec<String>,
    /// The events table's Data.db files.
    pub events: Vec<String>,
    /// The conversions table's Data.db files.
    pub conversions: Vec<String>,
    /// Seconds since the epoch at which TTLs were judged.
    pub now_s: i64,
    /// The apps the run saw.
    pub apps: Vec<String>,
    /// Per funnel, the labels of its levels ([`crate::Funnel::level_labels`]).
    #[serde(default)]
    pub levels: Vec<FunnelLevels>,
    /// For a run merged from shards: its name and, per shard, what it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharded: Option<serde_json::Value>,
}

/// The labels of one funnel version's levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelLevels {
    /// The funnel.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Level 1 first.
    pub labels: Vec<String>,
}

impl FunnelLevels {
    /// The labels of every funnel of `set`.
    pub fn of_set(set: &FunnelSet) -> Vec<FunnelLevels> {
        set.funnels
            .iter()
            .map(|f| FunnelLevels {
                id: f.id.clone(),
                version: f.version.clone(),
                labels: f.level_labels(),
            })
            .collect()
    }
}

impl RunInputs {
    /// The inputs of a run this job published (`None` for runs of other writers).
    pub fn of(run: &RunRecord) -> Option<RunInputs> {
        serde_json::from_value(run.inputs.clone()).ok()
    }

    /// Every Data.db the run read.
    pub fn sstables(&self) -> impl Iterator<Item = &str> {
        self.events
            .iter()
            .chain(&self.conversions)
            .map(String::as_str)
    }

    /// The labels of funnel `id`'s `version`, level 1 first.
    pub fn labels(&self, id: &str, version: &str) -> Option<&[String]> {
        self.levels
            .iter()
            .find(|l| l.id == id && l.version == version)
            .map(|l| l.labels.as_slice())
    }

    /// The labels of funnel `id`'s `version` recorded by the newest of `runs` that computed it.
    pub fn labels_in(runs: &[RunRecord], id: &str, version: &str) -> Option<Vec<String>> {
        let mut runs: Vec<&RunRecord> = runs.iter().collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.run_id));
        runs.iter()
            .filter_map(|r| RunInputs::of(r))
            .find_map(|i| i.labels(id, version).map(<[String]>::to_vec))
    }
}
