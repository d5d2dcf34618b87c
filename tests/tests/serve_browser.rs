//! `funnel serve` in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven over
//! WebDriver with fantoccini): the index, a funnel page with testdata's numbers, a funnel defined in the
//! form and computed in the background (equal to `funnel run` of that funnel alone), a bad definition's
//! `line:column`, and XSS payloads in data and in a step name rendered as text. Screenshots are kept in
//! `target/serve-screenshots/`. Without Chromium the tests are skipped, except under `CI` (`.ci/test`
//! installs it).

mod serve_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::workspace_root;
use facts::{BatchPublisher, Day, FunnelStepFact, RunMeta, Watermark};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use serve_support::{query_json, serve, store, testdata, Store};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} and {CHROMEDRIVER} are missing: .ci/test installs chromium and chromium-driver"
        );
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
    }
    present
}

fn driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1100"],
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// A store over testdata (changed by `prepare`), `funnel serve` on it, chromedriver and a browser
/// session; `None` when Chromium is missing outside CI.
struct Session {
    c: Client,
    /// (Keep these alive while the browser runs: the server reads the store.)
    srv: serve_support::Server,
    s: Store,
    driver: Driver,
}

async fn session(prepare: impl FnOnce(&Store)) -> Option<Session> {
    if !available() {
        return None;
    }
    let s = store();
    prepare(&s);
    let srv = serve(&s, &[]);
    let driver = driver();
    let c = browser(&driver).await;
    Some(Session { c, srv, s, driver })
}

fn screenshots() -> PathBuf {
    let dir = workspace_root().join("target/serve-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Actors per level of a funnel answer, all days summed.
fn per_level(answer: &Value) -> Vec<u64> {
    let mut levels = Vec::new();
    for s in answer["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["steps"].as_array().unwrap())
    {
        let k = s["step"].as_u64().unwrap() as usize;
        if levels.len() < k {
            levels.resize(k, 0);
        }
        levels[k - 1] += s["actors"].as_u64().unwrap();
    }
    levels
}

/// The actors column of the page's steps table.
async fn page_levels(c: &Client) -> Vec<u64> {
    let mut out = Vec::new();
    for cell in c.find_all(Locator::Css("#steps td.actors")).await.unwrap() {
        out.push(cell.text().await.unwrap().trim().parse().unwrap());
    }
    out
}

/// Replaces the text of the field at `css` with `text`, typed.
async fn type_into(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks the element at `css`.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of the element at `css`.
async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until the browser's URL contains `part`.
async fn wait_url(c: &Client, part: &str) {
    let started = Instant::now();
    while !c.current_url().await.unwrap().as_str().contains(part) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never reached {part}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_and_a_funnel_page_show_testdata_numbers() {
    let Some(Session {
        c,
        srv,
        s,
        driver: _d,
    }) = session(|_| {}).await
    else {
        return;
    };
    c.goto(&format!("{}/", srv.base)).await.unwrap();
    let table = c
        .find(Locator::Id("funnels"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for part in [
        "install_to_purchase",
        "clicked an ad → install → purchase",
        "app-001",
        "app-003",
        "batch before 2026-11-02",
    ] {
        assert!(table.contains(part), "{part} in {table}");
    }
    assert!(c
        .find(Locator::Id("last-run"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("Last run: 1 published"));
    screenshot(&c, "index").await;
    c.find(Locator::Css(
        "a[href='/funnels/install_to_purchase?app=app-001']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_url(&c, "/funnels/install_to_purchase?app=app-001").await;
    let expected = per_level(&query_json(&s, "app-001", "install_to_purchase", &[]));
    assert_eq!(page_levels(&c).await, expected);
    assert!(expected[0] > expected[2] && expected[2] > 0, "{expected:?}");
    let steps = text(&c, "#steps").await;
    assert!(
        steps.contains("1. install") && steps.contains("3. purchase"),
        "{steps}"
    );
    assert!(steps.contains("100.0%"), "{steps}");
    let days = c
        .find(Locator::Id("days"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(days.contains("2026-10-18 batch"), "{days}");
    // The breakdown by props.os and the trend chart are there.
    let breakdown = c
        .find(Locator::Id("breakdown"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        breakdown.contains("android") || breakdown.contains("ios"),
        "{breakdown}"
    );
    assert_eq!(
        c.find_all(Locator::Css("svg.trend polyline"))
            .await
            .unwrap()
            .len(),
        2
    );
    screenshot(&c, "funnel").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_funnel_defined_in_the_form_is_computed_and_shown() {
    let Some(Session {
        c,
        srv,
        s: _store,
        driver: _d,
    }) = session(|_| {}).await
    else {
        return;
    };
    c.goto(&format!("{}/define", srv.base)).await.unwrap();
    type_into(&c, "#builder input[name=id]", "browser_funnel").await;
    type_into(&c, "#builder input[name=window]", "3d").await;
    type_into(
        &c,
        "#builder textarea[name=steps]",
        "install\nsignup\npurchase",
    )
    .await;
    click(&c, "#fill").await;
    let toml = c
        .find(Locator::Id("toml"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        toml.contains("id = \"browser_funnel\"") && toml.contains("{ event = \"signup\" }"),
        "{toml}"
    );
    click(&c, "#app option[value='app-002']").await;
    screenshot(&c, "define").await;
    click(&c, "#save").await;
    wait_url(&c, "/funnels/browser_funnel?app=app-002").await;
    let alone = serve_support::store_of(&toml);
    let expected = per_level(&query_json(&alone, "app-002", "browser_funnel", &[]));
    assert_eq!(page_levels(&c).await, expected);
    assert_eq!(expected.len(), 3);
    // (reqwest's blocking client runs its own runtime: off this one's threads)
    let base = srv.base.clone();
    let api = tokio::task::spawn_blocking(move || {
        serve_support::get_json(&base, "/api/funnels/browser_funnel?app=app-002")
    })
    .await
    .unwrap();
    assert_eq!(
        api["days"],
        query_json(&alone, "app-002", "browser_funnel", &[])["days"]
    );
    screenshot(&c, "defined").await;
    c.close().await.unwrap();
}

/// Actors of the generated data of the progress test: enough that the job runs for several of the
/// page's 200 ms polls in a debug build (about a second on a 2-core machine).
const PROGRESS_ACTORS: &str = "6000";

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_shown_while_the_job_runs_before_the_results() {
    if !available() {
        return;
    }
    // A dataset larger than testdata, so the computation takes a while.
    let gen = tempfile::tempdir().unwrap();
    let data = gen.path().join("data");
    e2e_tests::run_funnel(&[
        "gen",
        "--out",
        data.to_str().unwrap(),
        "--actors",
        PROGRESS_ACTORS,
        "--days",
        "40",
        "--apps",
        "2",
        "--seed",
        "5",
        "--end-date",
        "2026-11-01",
        "--ttl",
        "0",
        "--quiet",
    ]);
    let s = serve_support::store_over(
        &data,
        "[[funnel]]\nid = \"first\"\nwindow = \"1d\"\nsteps = [{ event = \"install\" }, { event = \"open\" }]\n",
    );
    let srv = serve(&s, &[]);
    let driver = driver();
    let c = browser(&driver).await;
    c.goto(&format!("{}/define", srv.base)).await.unwrap();
    let toml = "[[funnel]]\nid = \"watched\"\nwindow = \"7d\"\nsteps = [{ event = \"install\" }, { event = \"purchase\" }]\n";
    type_into(&c, "#toml", toml).await;
    click(&c, "#app option[value='app-002']").await;
    click(&c, "#save").await;
    // What the page shows while the job runs, read until the results open.
    let mut seen: Vec<String> = Vec::new();
    let started = Instant::now();
    while !c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains("/funnels/watched")
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never finished: {seen:?}"
        );
        if let Ok(p) = c.find(Locator::Id("progress")).await {
            if let (Ok(None), Ok(t)) = (p.attr("hidden").await, p.text().await) {
                if !t.is_empty() && seen.last() != Some(&t) {
                    seen.push(t);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything the page showed, as it kept it: the job running (its phase and share done), then
    // done — before the results opened.
    let shown = c
        .execute("return sessionStorage.getItem('funnel-progress')", vec![])
        .await
        .unwrap();
    let shown: Vec<Value> = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    let (last, before) = shown.split_last().unwrap();
    assert_eq!(last["state"], "done", "{shown:?}");
    assert_eq!(last["progress"], 1.0, "{shown:?}");
    let running: Vec<f64> = before
        .iter()
        .filter(|s| s["state"] == "running")
        .map(|s| s["progress"].as_f64().unwrap())
        .collect();
    assert!(
        !running.is_empty(),
        "the page never showed the job running: {shown:?} (seen by the driver: {seen:?})"
    );
    assert!(running.iter().all(|f| (0.0..=1.0).contains(f)), "{shown:?}");
    // And the results are those of `funnel run` of that funnel alone.
    let alone = serve_support::store_over(&data, toml);
    let expected = per_level(&query_json(&alone, "app-002", "watched", &[]));
    assert_eq!(page_levels(&c).await, expected);
    screenshot(&c, "progress-done").await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_definition_shows_its_line_and_column() {
    let Some(Session {
        c,
        srv,
        s,
        driver: _d,
    }) = session(|_| {}).await
    else {
        return;
    };
    c.goto(&format!("{}/define", srv.base)).await.unwrap();
    type_into(
        &c,
        "#toml",
        "[[funnel]]\nid = \"bad\"\nwindow = \"1d\"\nsteps = [{ evnt = \"signup\" }]\n",
    )
    .await;
    click(&c, "#save").await;
    let error = c.find(Locator::Id("error")).await.unwrap();
    let started = Instant::now();
    while !error.is_displayed().await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no error shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = error.text().await.unwrap();
    assert!(text.starts_with("definition:4:12: "), "{text}");
    assert!(text.contains("evnt"), "{text}");
    screenshot(&c, "bad-definition").await;
    // Nothing was saved.
    let file = std::fs::read_to_string(&s.funnels).unwrap();
    assert_eq!(
        file,
        std::fs::read_to_string(testdata().join("funnels.toml")).unwrap()
    );
    c.close().await.unwrap();
}

const XSS_APP: &str = "<script>window.__xss = 'app'</script>";
const XSS_STEP: &str = "<img src=x onerror=\"window.__xss = 'step'\">";
const XSS_VALUE: &str = "<img src=y onerror=\"window.__xss = 'value'\">";

/// Facts of funnel `xss` (its step 1 named with a payload, in the funnels file) for an app whose id is a
/// payload, with a payload as breakdown value — published as a batch run would.
fn xss_data(s: &Store) {
    let mut file = std::fs::read_to_string(&s.funnels).unwrap();
    file.push_str(&format!(
        "\n[[funnel]]\nid = \"xss\"\nwindow = \"1d\"\nbreakdown = \"props.os\"\nsteps = [{{ name = {}, event = \"install\" }}, {{ event = \"open\" }}]\n",
        serde_json::to_string(XSS_STEP).unwrap()
    ));
    std::fs::write(&s.funnels, &file).unwrap();
    let set = funnelizer::FunnelSet::load(&s.funnels).unwrap();
    let version = set.funnel("xss").unwrap().version.clone();
    let store = facts::open_store(&s.url).unwrap();
    let run = store
        .begin_run(&RunMeta {
            started_at_ms: 1_796_000_000_000,
            inputs: json!({"data": [], "events": [], "conversions": [], "now_s": 0, "apps": [XSS_APP]}),
            funnels: vec![("xss".into(), version.clone())],
        })
        .unwrap();
    let day: Day = "2026-10-20".parse().unwrap();
    let fact = |breakdown: &str, step: u32, actors: u64| FunnelStepFact {
        app_id: XSS_APP.into(),
        funnel_id: "xss".into(),
        funnel_version: version.clone(),
        day,
        breakdown: breakdown.into(),
        step,
        actors,
        ttc_median_s: Some(60.0),
        ttc_p90_s: Some(120.0),
    };
    store
        .write_funnel_steps(
            run,
            &[
                fact(XSS_VALUE, 1, 7),
                fact(XSS_VALUE, 2, 3),
                fact("ios", 1, 5),
            ],
        )
        .unwrap();
    store
        .publish(
            run,
            &[Watermark::funnel(XSS_APP, "xss", &version, day.plus(1))],
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn xss_payloads_in_data_and_step_names_render_as_text() {
    let Some(Session {
        c,
        srv,
        s: _store,
        driver: _d,
    }) = session(xss_data).await
    else {
        return;
    };
    let not_run = |c: &Client| {
        let c = c.clone();
        async move {
            let v = c
                .execute("return window.__xss === undefined", vec![])
                .await
                .unwrap();
            assert_eq!(v, Value::Bool(true), "a payload ran");
        }
    };
    c.goto(&format!("{}/", srv.base)).await.unwrap();
    let index = c
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(XSS_APP), "{index}");
    assert!(index.contains(XSS_STEP), "{index}");
    not_run(&c).await;
    let page = format!("{}/funnels/xss?app={}", srv.base, serve_pct(XSS_APP));
    c.goto(&page).await.unwrap();
    let body = c
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&format!("1. {XSS_STEP}")), "{body}");
    assert!(body.contains(XSS_VALUE), "{body}");
    assert!(body.contains(XSS_APP), "{body}");
    assert_eq!(page_levels(&c).await, [12, 3]);
    assert!(c
        .find_all(Locator::Css("main img, main script"))
        .await
        .unwrap()
        .is_empty());
    not_run(&c).await;
    screenshot(&c, "xss").await;
    // A payload typed into the form as a step name is text too, after the save.
    c.goto(&format!("{}/define", srv.base)).await.unwrap();
    let typed = format!(
            "[[funnel]]\nid = \"typed\"\nwindow = \"1d\"\nsteps = [{{ name = {}, event = \"install\" }}]\n",
            serde_json::to_string(XSS_STEP).unwrap()
    );
    type_into(&c, "#toml", &typed).await;
    click(&c, "#app option[value='app-001']").await;
    click(&c, "#save").await;
    wait_url(&c, "/funnels/typed?app=app-001").await;
    let steps = text(&c, "#steps").await;
    assert!(steps.contains(&format!("1. {XSS_STEP}")), "{steps}");
    not_run(&c).await;
    c.close().await.unwrap();
}

/// Percent-encoding for a query value.
fn serve_pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
