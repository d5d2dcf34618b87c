//! Helpers of the `schedule_*` end-to-end tests: generated snapshots, a schedule config in a temp dir, the
//! real `funnel schedule` / `funnel status` processes, the scheduler's state file, and reading the facts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use datagen::{generate, GenOptions};
use e2e_tests::funnel_bin;
// Tests reading the store through `Env::store()` need the reader role in scope.
pub use facts::FactReader;
use facts::{FunnelDay, FunnelQuery, Store};
use sstable_reader::writer::{writer_version, Compression};

/// 2025-03-01T00:00:00Z, the end of every generated period.
pub const END_MS: i64 = 1_740_787_200_000;
pub const NOW: &str = "2025-03-01";
pub const APPS: [&str; 2] = ["app-001", "app-002"];

pub const FUNNELS_V1: &str = r#"
[[funnel]]
id = "activation"
window = "7d"
breakdown = "props.os"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase" } ]
"#;

pub const FUNNEL_ADDED: &str = r#"
[[funnel]]
id = "click_to_open"
window = "2d"
mode = "strict_order"
steps = [ { hit = true }, { event = "install" }, { event = "open" } ]
"#;

/// A temp dir with generated data, a funnels file and a schedule config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub funnels: PathBuf,
    pub config: PathBuf,
    pub facts: PathBuf,
}

impl Env {
    /// Generates `actors` actors over 10 days in `sstables` SSTables per table (snapshot tag `nightly`).
    pub fn new(actors: u64, sstables: u32) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        gen(&data, actors, sstables, "nightly");
        let funnels = dir.path().join("funnels.toml");
        std::fs::write(&funnels, FUNNELS_V1).unwrap();
        let env = Env {
            config: dir.path().join("schedule.toml"),
            facts: dir.path().join("facts.db"),
            data,
            funnels,
            dir,
        };
        env.write_config("");
        env
    }

    /// (Re)writes the config; `extra` lines are appended (they may override nothing already set). The
    /// extract cache is on, as by default, but inside the temp dir rather than the user's cache dir.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "facts = \"sqlite:facts.db\"\nfunnels = \"funnels.toml\"\ndata = [\"data\"]\nsnapshot = \"newest\"\nthreads = 1\ntimeout = \"2m\"\ncache = \"cache\"\n{extra}\n"
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Config with `now` fixed (so runs are reproducible) plus `extra`.
    pub fn config_at(&self, now: &str, extra: &str) {
        self.write_config(&format!("now = \"{now}\"\n{extra}"));
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("facts.db.schedule.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.path().join("facts.db.schedule.lock")
    }

    pub fn store(&self) -> Store {
        facts::open_store(&format!("sqlite:{}", self.facts.display())).unwrap()
    }

    /// `funnel schedule --config … --once` plus `args`, with extra environment.
    pub fn once(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.once_command(args, env).output().unwrap()
    }

    fn once_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(funnel_bin());
        c.args(["schedule", "--config"])
            .arg(&self.config)
            .arg("--once")
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Starts `funnel schedule --once` plus `args` without waiting.
    pub fn spawn_once(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.once_command(args, env);
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `funnel status --facts sqlite:… ` plus `args`.
    pub fn status(&self, args: &[&str]) -> String {
        let out = Command::new(funnel_bin())
            .arg("status")
            .arg("--facts")
            .arg(format!("sqlite:{}", self.facts.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state_path()).unwrap()).unwrap()
    }

    /// Waits for an attempt in progress with a child pid in the state file (`None` after `timeout`).
    pub fn wait_for_child(&self, since_ms: i64, timeout: Duration) -> Option<u32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(bytes) = std::fs::read(self.state_path()) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    let first = &v["attempts"][0];
                    if first["outcome"] == "running"
                        && first["started_at_ms"].as_i64() >= Some(since_ms)
                    {
                        if let Some(pid) = first["child_pid"].as_u64() {
                            return u32::try_from(pid).ok();
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// Every funnel answer of the test apps, as text (equal text = equal results and freshness).
    pub fn results(&self, funnel_ids: &[&str]) -> String {
        let store = self.store();
        let mut out = String::new();
        for app in APPS {
            for f in funnel_ids {
                let q = FunnelQuery::new(app, f);
                out.push_str(&format!("{app} {f}: {:?}\n", store.read_funnel(&q)));
            }
        }
        out
    }
}

/// Days and values of a funnel for every test app (freshness left out: run ids differ between stores).
pub fn funnel_days(store: &dyn FactReader, funnel: &str) -> Vec<(String, Vec<FunnelDay>)> {
    APPS.iter()
        .map(|app| {
            let a = store.read_funnel(&FunnelQuery::new(app, funnel)).unwrap();
            (app.to_string(), a.days)
        })
        .collect()
}

/// Generated snapshot of 10 days (2 apps) under `out`.
pub fn gen(out: &Path, actors: u64, sstables: u32, tag: &str) {
    let o = GenOptions {
        out: out.to_path_buf(),
        actors,
        days: 10,
        events_per_actor: 8.0,
        sstables,
        compression: Compression::Lz4,
        version: writer_version("nb").unwrap(),
        nodes: 1,
        rf: 1,
        seed: 7,
        end_ms: END_MS,
        ttl: 0,
        apps: APPS.len() as u32,
        snapshot_tag: tag.into(),
    };
    generate(&o, &mut |_| {}).unwrap();
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends a signal to a process this test started (directly or as `funnel schedule`'s child), by pid.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// All files of every SSTable of `table` under `dir` whose Data.db matches, grouped per SSTable.
/// Flips 64 bytes in the middle of the Data.db among one SSTable's `components` (a damaged file the
/// reader must reject); returns its path and its pristine bytes.
pub fn corrupt_data_db(components: &[PathBuf]) -> (PathBuf, Vec<u8>) {
    let data_db = components
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-Data.db"))
        .unwrap()
        .clone();
    let pristine = std::fs::read(&data_db).unwrap();
    let mut bytes = pristine.clone();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5A;
    }
    std::fs::write(&data_db, &bytes).unwrap();
    (data_db, pristine)
}

pub fn sstables_of(dir: &Path, table: &str) -> Vec<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in data_files(dir) {
        if !f.to_string_lossy().contains(&format!("/{table}-")) {
            continue;
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let prefix = name.trim_end_matches("Data.db").to_string();
        let parent = f.parent().unwrap();
        let mut comps: Vec<PathBuf> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect();
        comps.sort();
        out.push(comps);
    }
    out
}

/// Every Data.db under `dir` (live SSTables; a table directory without any: its only snapshot).
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    sstable_reader::discover(&[dir.to_path_buf()], &sstable_reader::Selection::default())
        .unwrap()
        .files()
        .cloned()
        .collect()
}
