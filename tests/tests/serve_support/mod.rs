//! A real `funnel serve` for the serve_* tests: a fact store computed by `funnel run` over testdata (the
//! README's main job, `--now 2026-11-02`), a copy of testdata/funnels.toml the server may rewrite, and the
//! server itself on a free loopback port, stopped when dropped.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{funnel_bin, run_funnel, workspace_root};

/// The `--now` of every run and server here (testdata ends 2026-11-01).
pub const NOW: &str = "2026-11-02";

/// A fact store computed over testdata, with its funnels file.
pub struct Store {
    pub dir: tempfile::TempDir,
    /// `sqlite:…/facts.db`.
    pub url: String,
    /// The copy of testdata/funnels.toml.
    pub funnels: PathBuf,
    /// The data the run read and the server's jobs read (`--data`).
    pub data: PathBuf,
}

pub fn testdata() -> PathBuf {
    workspace_root().join("testdata")
}

/// `funnel run` of testdata/funnels.toml over testdata/snapshot into a new store.
pub fn store() -> Store {
    store_of(&std::fs::read_to_string(testdata().join("funnels.toml")).unwrap())
}

/// `funnel run` of the funnels `toml` over testdata/snapshot into a new store.
pub fn store_of(toml: &str) -> Store {
    store_over(&testdata().join("snapshot"), toml)
}

/// `funnel run` of the funnels `toml` over `data` into a new store.
pub fn store_over(data: &std::path::Path, toml: &str) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let funnels = dir.path().join("funnels.toml");
    std::fs::write(&funnels, toml).unwrap();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let data = data.to_path_buf();
    run_funnel(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--funnels",
        funnels.to_str().unwrap(),
        "--facts",
        &url,
        "--now",
        NOW,
        "--quiet",
    ]);
    Store {
        dir,
        url,
        funnels,
        data,
    }
}

/// A running `funnel serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `funnel serve` command for `store`, on a free loopback port, with `extra` arguments.
pub fn command(store: &Store, extra: &[&str]) -> Command {
    let mut cmd = Command::new(funnel_bin());
    cmd.args(["serve", "--facts", &store.url, "--funnels"])
        .arg(&store.funnels)
        .arg("--data")
        .arg(&store.data)
        .args(["--now", NOW, "--threads", "2"])
        .args(extra)
        .env_remove("FUNNEL_TOKEN")
        .env_remove("FUNNEL_FACTS");
    cmd
}

/// Starts `funnel serve` for `store` and waits for its `listening on` line.
pub fn serve(store: &Store, extra: &[&str]) -> Server {
    let mut child = command(store, &["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start funnel serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("funnel serve printed {line:?}"))
        .to_string();
    Server { child, base }
}

/// An HTTP client that does not follow redirects (the tests look at them).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GET `path`; returns status and body.
pub fn get(base: &str, path: &str) -> (u16, String) {
    let r = client().get(format!("{base}{path}")).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// GET `path` as JSON, which must answer 200.
pub fn get_json(base: &str, path: &str) -> serde_json::Value {
    let (status, body) = get(base, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until job `id` is done (or failed: panics); returns its status.
pub fn wait_job(base: &str, id: u64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let job = get_json(base, &format!("/api/jobs/{id}"));
        match job["state"].as_str() {
            Some("done") => return job,
            Some("failed") => panic!("job failed: {job}"),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "job {id} still {job} after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `funnel query --format json` of a funnel.
pub fn query_json(store: &Store, app: &str, funnel: &str, extra: &[&str]) -> serde_json::Value {
    let base = [
        "query", "--facts", &store.url, "--app", app, "--funnel", funnel, "--format", "json",
    ];
    let (out, _) = run_funnel(&[&base[..], extra].concat());
    serde_json::from_str(&out).unwrap()
}
