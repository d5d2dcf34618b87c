//! What the server knows exists: the apps (those the runs saw, and those only the stream counts yet),
//! every funnel of the funnels file and of
//! the store (per app, its published version and watermark), and the recent runs — read once per
//! request for `/`, `/api/funnels` and the funnel pages.

use std::collections::{BTreeMap, BTreeSet};

use facts::{FactReader, RunRecord, Watermark, COUNTS_WATERMARK_ID};
use funnelizer::{Funnel, RunInputs};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::funnels_file::FileState;
use crate::state::AppState;

/// How many runs are read to find apps and level labels.
const RUNS: usize = 100;

/// The apps, funnels and runs of a server, read at one moment.
pub struct Catalog {
    /// The funnels file (its error, when it does not parse now).
    pub file: Result<FileState, String>,
    /// Every app a run saw, sorted.
    pub apps: Vec<String>,
    /// Apps with real-time facts from the stream that no run saw yet, sorted.
    pub stream_only: Vec<String>,
    /// Per funnel id, per app: the published watermark.
    pub published: BTreeMap<String, BTreeMap<String, Watermark>>,
    /// The newest runs first.
    pub runs: Vec<RunRecord>,
}

impl Catalog {
    /// Reads the file and the store (blocking).
    pub fn read(state: &AppState) -> Result<Catalog, ApiError> {
        let file = state.funnels.read().map_err(|e| funnelizer::chain(&e));
        let runs = state.store.runs(RUNS)?;
        let apps: BTreeSet<String> = runs
            .iter()
            .filter_map(RunInputs::of)
            .flat_map(|i| i.apps)
            .collect();
        let mut published: BTreeMap<String, BTreeMap<String, Watermark>> = BTreeMap::new();
        for app in &apps {
            for w in state.store.watermarks(app)? {
                if w.funnel_id != COUNTS_WATERMARK_ID {
                    published
                        .entry(w.funnel_id.clone())
                        .or_default()
                        .insert(app.clone(), w);
                }
            }
        }
        let stream_only = state
            .store
            .speed_apps()?
            .into_iter()
            .filter(|a| !apps.contains(a))
            .collect();
        Ok(Catalog {
            file,
            apps: apps.into_iter().collect(),
            stream_only,
            published,
            runs,
        })
    }

    /// The file's funnel with this id.
    pub fn file_funnel(&self, id: &str) -> Option<&Funnel> {
        self.file.as_ref().ok().and_then(|f| f.set.funnel(id))
    }

    /// Every funnel id: the file's in file order, then those only the store has.
    pub fn funnel_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = match &self.file {
            Ok(f) => f.set.funnels.iter().map(|f| f.id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        for id in self.published.keys() {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Whether the funnel is known (in the file, or published for `app`).
    pub fn knows(&self, id: &str, app: &str) -> bool {
        self.file_funnel(id).is_some()
            || self.published.get(id).is_some_and(|a| a.contains_key(app))
    }

    /// The labels of `id`'s `version` levels: the file's when it has that version, else as the newest run
    /// that computed it recorded them, else `step k`.
    pub fn labels(&self, id: &str, version: &str, levels: usize) -> Vec<String> {
        let labels = match self.file_funnel(id) {
            Some(f) if f.version == version => Some(f.level_labels()),
            _ => RunInputs::labels_in(&self.runs, id, version),
        };
        let mut labels = labels.unwrap_or_default();
        for k in labels.len()..levels {
            labels.push(format!("step {}", k + 1));
        }
        labels
    }

    /// `GET /api/funnels`: every funnel with id, version, mode, window, steps and where it is published.
    pub fn to_json(&self) -> Value {
        let funnels: Vec<Value> = self
            .funnel_ids()
            .iter()
            .map(|id| {
                let apps: Vec<Value> = self
                    .published
                    .get(id)
                    .into_iter()
                    .flatten()
                    .map(|(app, w)| {
                        json!({"app": app, "version": w.funnel_version, "batch_until": w.batch_until})
                    })
                    .collect();
                match self.file_funnel(id) {
                    Some(f) => json!({
                        "id": f.id,
                        "version": f.version,
                        "in_file": true,
                        "mode": f.mode.name(),
                        "window_s": f.window_s,
                        "steps": f.steps.iter().enumerate().map(|(i, s)| json!({
                            "step": i + 1,
                            "label": f.level_label(i + 1),
                            "name": s.name,
                            "matches": s.description,
                        })).collect::<Vec<_>>(),
                        "exclusions": f.exclusions.iter().map(|x| x.name.clone()).collect::<Vec<_>>(),
                        "breakdown": f.breakdown.is_some(),
                        "published": apps,
                    }),
                    None => {
                        // Only the store knows it: its newest published version, named as its run recorded.
                        let version = self
                            .published
                            .get(id)
                            .and_then(|a| a.values().next())
                            .map(|w| w.funnel_version.clone())
                            .unwrap_or_default();
                        let labels = RunInputs::labels_in(&self.runs, id, &version).unwrap_or_default();
                        json!({
                            "id": id,
                            "version": version,
                            "in_file": false,
                            "mode": null,
                            "window_s": null,
                            "steps": labels.iter().enumerate().map(|(i, l)| json!({
                                "step": i + 1, "label": l, "name": null, "matches": null,
                            })).collect::<Vec<_>>(),
                            "exclusions": [],
                            "breakdown": null,
                            "published": apps,
                        })
                    }
                }
            })
            .collect();
        json!({
            "version": self.file.as_ref().ok().map(|f| f.version.clone()),
            "file_error": self.file.as_ref().err(),
            "apps": self.apps,
            "funnels": funnels,
        })
    }
}
