//! `funnel serve`'s JSON API over real HTTP against the real binary on loopback and a real SQLite store
//! computed by `funnel run` over testdata: every endpoint, its CSV, the error codes, and the token,
//! Origin and Host rules (docs/API.md).

mod serve_support;

use std::process::Command;

use e2e_tests::{funnel_bin, run_funnel};
use serde_json::{json, Value};
use serve_support::{client, get, get_json, query_json, serve, store, wait_job, NOW};

#[test]
fn a_funnel_is_the_document_funnel_query_prints_and_its_csv() {
    let s = store();
    let srv = serve(&s, &[]);
    for (app, funnel, params, args) in [
        ("app-001", "install_to_purchase", "", vec![]),
        (
            "app-001",
            "install_to_purchase",
            "&breakdown=1",
            vec!["--breakdown"],
        ),
        (
            "app-002",
            "paid_click_to_purchase",
            "&from=2026-10-20&to=2026-10-25",
            vec!["--from", "2026-10-20", "--to", "2026-10-25"],
        ),
        ("app-003", "any_order_engagement", "", vec![]),
    ] {
        let api = get_json(
            &srv.base,
            &format!("/api/funnels/{funnel}?app={app}{params}"),
        );
        let cli = query_json(&s, app, funnel, &args);
        assert_eq!(api, cli, "{funnel} of {app} {params}");
        assert!(!api["days"].as_array().unwrap().is_empty());
    }
    // CSV: by parameter and by Accept header, the bytes `funnel query --format csv` prints.
    let (cli_csv, _) = run_funnel(&[
        "query",
        "--facts",
        &s.url,
        "--app",
        "app-001",
        "--funnel",
        "install_to_purchase",
        "--format",
        "csv",
    ]);
    let (status, by_param) = get(
        &srv.base,
        "/api/funnels/install_to_purchase?app=app-001&format=csv",
    );
    assert_eq!(status, 200);
    assert_eq!(by_param, cli_csv);
    let r = client()
        .get(format!(
            "{}/api/funnels/install_to_purchase?app=app-001",
            srv.base
        ))
        .header("Accept", "text/csv")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.text().unwrap(), cli_csv);
}

#[test]
fn the_funnel_list_names_every_funnel_with_its_version_steps_mode_and_window() {
    let s = store();
    let srv = serve(&s, &[]);
    let r = client()
        .get(format!("{}/api/funnels", srv.base))
        .send()
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let list: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    let file = std::fs::read_to_string(&s.funnels).unwrap();
    assert_eq!(etag, format!("\"{}\"", serve::version_of(&file)));
    assert_eq!(list["version"], serve::version_of(&file));
    assert_eq!(list["apps"], json!(["app-001", "app-002", "app-003"]));
    let set = funnelizer::FunnelSet::load(&s.funnels).unwrap();
    let funnels = list["funnels"].as_array().unwrap();
    assert_eq!(funnels.len(), set.funnels.len());
    for (api, f) in funnels.iter().zip(&set.funnels) {
        assert_eq!(api["id"], f.id.as_str());
        assert_eq!(api["version"], f.version.as_str());
        assert_eq!(api["mode"], f.mode.name());
        assert_eq!(api["window_s"], f.window_s);
        let labels: Vec<&str> = api["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, f.level_labels());
        assert_eq!(api["published"].as_array().unwrap().len(), 3, "{api}");
        assert_eq!(api["published"][0]["batch_until"], NOW);
    }
    assert_eq!(funnels[1]["steps"][0]["label"], "clicked an ad");
}

#[test]
fn counts_and_runs_are_what_query_and_status_print() {
    let s = store();
    // Daily counts (the stream's and a batch run's) for app `demo`.
    run_funnel(&[
        "facts",
        "demo",
        "--facts",
        &s.url,
        "--days",
        "5",
        "--speed-days",
        "2",
    ]);
    let srv = serve(&s, &[]);
    let mut all = Vec::new();
    for metric in ["hits", "events", "conversions"] {
        let api = get_json(
            &srv.base,
            &format!("/api/counts?app=demo&metric={metric}&breakdown=1"),
        );
        let (cli, _) = run_funnel(&[
            "query",
            "--facts",
            &s.url,
            "--app",
            "demo",
            "--counts",
            metric,
            "--breakdown",
            "--format",
            "json",
        ]);
        assert_eq!(
            api,
            serde_json::from_str::<Value>(&cli).unwrap(),
            "{metric}"
        );
        all.push(get_json(
            &srv.base,
            &format!("/api/counts?app=demo&metric={metric}"),
        ));
    }
    assert!(!all[0]["days"].as_array().unwrap().is_empty());
    let every = get_json(&srv.base, "/api/counts?app=demo");
    assert_eq!(every["metrics"], Value::Array(all));
    let (status, csv) = get(&srv.base, "/api/counts?app=demo&metric=hits&format=csv");
    let (cli_csv, _) = run_funnel(&[
        "query", "--facts", &s.url, "--app", "demo", "--counts", "hits", "--format", "csv",
    ]);
    assert_eq!((status, csv), (200, cli_csv));
    let (_, every_csv) = get(&srv.base, "/api/counts?app=demo&format=csv");
    assert!(
        every_csv.starts_with("metric,day,layer,dimension,value,count\nhits,"),
        "{every_csv}"
    );
    // The demo writes hits and events; conversions have no day, so no line.
    assert!(every_csv.contains("\nevents,") && !every_csv.contains("\nconversions,"));

    // Runs: what `funnel status --json` shows (its exit code is about the stream check: not asserted).
    let out = Command::new(funnel_bin())
        .args(["status", "--facts", &s.url, "--json", "--limit", "10"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = get_json(&srv.base, "/api/runs?limit=10");
    for key in ["runs", "watermarks", "scheduler"] {
        assert_eq!(runs[key], status[key], "{key}");
    }
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let (_, runs_csv) = get(&srv.base, "/api/runs?format=csv");
    assert!(runs_csv.starts_with("run,started_at_ms"), "{runs_csv}");
    assert!(runs_csv.contains("install_to_purchase@"), "{runs_csv}");
}

fn post(base: &str, body: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{base}/api/funnels"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn errors_are_400_with_the_reason_404_and_409_on_a_stale_version() {
    let s = store();
    let srv = serve(&s, &[]);
    for (path, reason) in [
        (
            "/api/funnels/install_to_purchase",
            "parameter `app` is required",
        ),
        (
            "/api/funnels/install_to_purchase?app=app-001&from=2026-02-30",
            "parameter `from`",
        ),
        (
            "/api/funnels/install_to_purchase?app=app-001&breakdown=maybe",
            "parameter `breakdown`",
        ),
        (
            "/api/funnels/install_to_purchase?app=app-001&form=x",
            "unknown parameter `form`",
        ),
        (
            "/api/funnels/install_to_purchase?app=app-001&format=xml",
            "parameter `format`",
        ),
        ("/api/counts", "parameter `app` is required"),
        ("/api/runs?limit=0", "parameter `limit`"),
    ] {
        let (status, body) = get(&srv.base, path);
        assert_eq!(status, 400, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{path}: {body}"
        );
        assert_eq!(body["status"], 400);
    }
    for path in [
        "/api/funnels/nope?app=app-001",
        "/api/jobs/7",
        "/api/jobs/x",
        "/api/nope",
        "/nope",
    ] {
        assert_eq!(get(&srv.base, path).0, 404, "{path}");
    }
    let file = std::fs::read_to_string(&s.funnels).unwrap();
    let version = serve::version_of(&file);
    let funnel =
        "[[funnel]]\nid = \"signup_only\"\nwindow = \"1d\"\nsteps = [{ event = \"signup\" }]\n";
    let (status, body) = post(&srv.base, "not json");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&srv.base, &json!({ "toml": funnel }).to_string());
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("version is missing"),
        "{body}"
    );
    // A bad definition: its line and column in the posted text.
    let bad = "[[funnel]]\nid = \"b\"\nwindow = \"1d\"\nsteps = [{ evnt = \"signup\" }]\n";
    let (status, body) = post(
        &srv.base,
        &json!({ "toml": bad, "version": version }).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(4), Some(12)),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("definition:4:12: "),
        "{body}"
    );
    // A stale version: 409, the file as it was.
    let (status, body) = post(
        &srv.base,
        &json!({ "toml": funnel, "version": "0123456789abcdef" }).to_string(),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["version"], version.as_str());
    // Too large a body.
    let (status, _) = post(&srv.base, &"x".repeat(300 * 1024));
    assert_eq!(status, 413);
    assert_eq!(std::fs::read_to_string(&s.funnels).unwrap(), file);
    // The version in If-Match works as in the body.
    let r = client()
        .post(format!("{}/api/funnels", srv.base))
        .header("If-Match", "\"0123456789abcdef\"")
        .body(json!({ "toml": funnel }).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
}

#[test]
fn a_funnel_defined_over_the_api_equals_funnel_run_of_that_funnel_alone() {
    let s = store();
    // The job keeps extracts in a cache, so the results below also show that reading them is exact.
    let cache = s.dir.path().join("cache");
    let srv = serve(&s, &["--cache", cache.to_str().unwrap()]);
    let before = get_json(&srv.base, "/api/funnels/install_to_purchase?app=app-001");
    let version = get_json(&srv.base, "/api/funnels")["version"].clone();
    let posted = "# from the browser\n[[funnel]]\nid = \"install_to_open\"\nwindow = \"2d\"\nbreakdown = \"props.os\"\nsteps = [\n  { event = \"install\" },\n  { name = \"opened <the app>\", event = \"open\" },\n]\n";
    let (status, body) = post(
        &srv.base,
        &json!({ "toml": posted, "version": version }).to_string(),
    );
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&srv.base, body["job"]["id"].as_u64().unwrap());
    assert_eq!(job["progress"], 1.0);
    assert!(job["run"].as_i64().unwrap() > 1, "{job}");
    let extracts: usize = std::fs::read_dir(&cache)
        .unwrap()
        .map(|table| std::fs::read_dir(table.unwrap().path()).unwrap().count())
        .sum();
    assert!(
        extracts > 0,
        "the job wrote no extracts into {}",
        cache.display()
    );
    // The file: the old funnels and the new one; the version the answer gave.
    let file = std::fs::read_to_string(&s.funnels).unwrap();
    assert_eq!(body["version"], serve::version_of(&file).as_str());
    let set = funnelizer::FunnelSet::load(&s.funnels).unwrap();
    let ids: Vec<&str> = set.funnels.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "install_to_purchase",
            "paid_click_to_purchase",
            "strict_onboarding",
            "any_order_engagement",
            "install_to_open"
        ]
    );
    assert!(file.starts_with(
        &std::fs::read_to_string(serve_support::testdata().join("funnels.toml")).unwrap()
    ));

    // `funnel run` of that funnel alone, into a store of its own.
    let alone_store = serve_support::store_of(posted);
    for app in ["app-001", "app-002", "app-003"] {
        for (params, args) in [("", vec![]), ("&breakdown=1", vec!["--breakdown"])] {
            let api = get_json(
                &srv.base,
                &format!("/api/funnels/install_to_open?app={app}{params}"),
            );
            let cli = query_json(&alone_store, app, "install_to_open", &args);
            assert_eq!(api["funnel_version"], cli["funnel_version"]);
            assert_eq!(api["days"], cli["days"], "{app} {params}");
            assert_eq!(api["freshness"]["watermark"], NOW);
            assert!(!api["days"].as_array().unwrap().is_empty());
        }
    }
    // The other funnels still read their own run.
    assert_eq!(
        get_json(&srv.base, "/api/funnels/install_to_purchase?app=app-001"),
        before
    );
    // And the page names the new step, escaped.
    let (status, page) = get(&srv.base, "/funnels/install_to_open?app=app-001");
    assert_eq!(status, 200);
    assert!(
        page.contains("opened &lt;the app&gt;") && !page.contains("<the app>"),
        "{page}"
    );
}

#[test]
fn with_a_token_every_request_needs_it_as_bearer_or_login_cookie() {
    let s = store();
    let srv = serve(&s, &["--token", "s3cret"]);
    let c = client();
    let url = |p: &str| format!("{}{p}", srv.base);
    let r = c.get(url("/api/funnels")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    for token in ["wrong", "s3cre", "s3cret2"] {
        let r = c
            .get(url("/api/funnels"))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{token}");
    }
    assert_eq!(
        c.get(url("/api/funnels"))
            .bearer_auth("s3cret")
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Pages send a browser to the login form; the form itself and the assets are public.
    let r = c.get(url("/")).send().unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["location"].to_str().unwrap()
        ),
        (303, "/login")
    );
    assert_eq!(c.get(url("/login")).send().unwrap().status().as_u16(), 200);
    assert_eq!(
        c.get(url("/static/app.js"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let login = |token: &str| {
        c.post(url("/login"))
            .header("Origin", &srv.base)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .unwrap()
    };
    assert_eq!(login("nope").status().as_u16(), 401);
    let r = login("s3cret");
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("s3cret"),
        "the cookie does not hold the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    for path in [
        "/",
        "/api/funnels",
        "/funnels/install_to_purchase?app=app-001",
        "/runs",
    ] {
        let r = c.get(url(path)).header("Cookie", &session).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // A cookie-authenticated POST must come from this origin.
    let body =
        json!({"toml": "[[funnel]]\nid = \"x\"\nsteps = [{ event = \"open\" }]\n", "version": "0"})
            .to_string();
    let post_as_browser = |origin: Option<&str>| {
        let mut r = c
            .post(url("/api/funnels"))
            .header("Cookie", &session)
            .body(body.clone());
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post_as_browser(None), 403);
    assert_eq!(post_as_browser(Some("http://evil.example")), 403);
    assert_eq!(
        post_as_browser(Some(&srv.base)),
        409,
        "past the checks: the version is stale"
    );
}

#[test]
fn cross_origin_posts_and_foreign_host_names_are_refused() {
    let s = store();
    let srv = serve(&s, &[]);
    let file = std::fs::read_to_string(&s.funnels).unwrap();
    let body = json!({
        "toml": "[[funnel]]\nid = \"x\"\nsteps = [{ event = \"open\" }]\n",
        "version": serve::version_of(&file),
    })
    .to_string();
    let c = client();
    for (name, value) in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = c
            .post(format!("{}/api/funnels", srv.base))
            .header(name, value)
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{name}: {value}");
    }
    // A DNS-rebinding page reaches the loopback server under its own host name.
    let r = c
        .get(format!("{}/api/funnels", srv.base))
        .header("Host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(std::fs::read_to_string(&s.funnels).unwrap(), file);
    // Responses forbid inline scripts and framing.
    let r = c.get(format!("{}/", srv.base)).send().unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

#[test]
fn a_listen_address_others_can_reach_needs_a_token() {
    let s = store();
    let out = serve_support::command(&s, &["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--token") && stderr.contains("FUNNEL_TOKEN"),
        "{stderr}"
    );
    // An empty token is no token.
    let out = serve_support::command(&s, &["--listen", "127.0.0.1:0", "--token", ""])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn pages_show_the_numbers_of_the_api() {
    let s = store();
    let srv = serve(&s, &[]);
    let api = get_json(&srv.base, "/api/funnels/install_to_purchase?app=app-001");
    let entered: u64 = api["days"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["steps"].as_array().unwrap())
        .filter(|s| s["step"] == 1)
        .map(|s| s["actors"].as_u64().unwrap())
        .sum();
    let (status, page) = get(&srv.base, "/funnels/install_to_purchase?app=app-001");
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("<td class=\"actors\">{entered}</td>")),
        "{page}"
    );
    for part in [
        "<svg class=\"trend\"",
        "id=\"breakdown\"",
        "id=\"days\"",
        "1. install",
        "answered by",
    ] {
        assert!(page.contains(part), "{part}");
    }
    for path in [
        "/",
        "/runs",
        "/counts?app=app-001",
        "/define",
        "/funnels/install_to_purchase",
    ] {
        let (status, page) = get(&srv.base, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{path}: no external asset"
        );
    }
    let (status, page) = get(
        &srv.base,
        "/funnels/install_to_purchase?app=app-001&from=nope",
    );
    assert_eq!(status, 400);
    assert!(page.contains("parameter `from`"), "{page}");
}

/// Answers are kept between requests (`serve/src/answers.rs`), so this checks that none outlives what
/// it shows: a publish by another process, a speed batch, and an edit of the funnels file are each seen
/// by the very next request of a page and a document that were read (and kept) just before.
#[test]
fn kept_answers_are_replaced_after_a_publish_a_stream_batch_or_a_file_edit() {
    let s = store();
    let srv = serve(&s, &[]);
    let path = "/api/funnels/install_to_purchase?app=app-001";
    let page = "/funnels/install_to_purchase?app=app-001";
    let before = get_json(&srv.base, path);
    assert_eq!(before, get_json(&srv.base, path));
    assert_eq!(before["freshness"]["watermark"], NOW);
    assert!(get(&srv.base, page)
        .1
        .contains(&format!("<b id=\"watermark\">{NOW}</b>")));

    // Another process publishes a run with a later watermark.
    let data = serve_support::testdata().join("snapshot");
    run_funnel(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--funnels",
        s.funnels.to_str().unwrap(),
        "--facts",
        &s.url,
        "--now",
        "2026-11-03",
        "--quiet",
    ]);
    let after = get_json(&srv.base, path);
    assert_eq!(after["freshness"]["watermark"], "2026-11-03", "{after}");
    assert_eq!(after, query_json(&s, "app-001", "install_to_purchase", &[]));
    assert!(
        get(&srv.base, page)
            .1
            .contains("<b id=\"watermark\">2026-11-03</b>"),
        "the page kept the old run"
    );

    // A stream batch adds speed counts for a day past the watermark.
    let counts = "/api/counts?app=app-001&metric=hits&from=2026-11-04&to=2026-11-04";
    let empty = get_json(&srv.base, counts);
    let store = facts::open_store(&s.url).unwrap();
    let batch = facts::SpeedBatch {
        group: "g".into(),
        topic: "tracking".into(),
        partition: 0,
        first_offset: 0,
        next_offset: 1,
        daily_counts: vec![facts::DailyCountFact {
            app_id: "app-001".into(),
            day: "2026-11-04".parse().unwrap(),
            metric: "hits".into(),
            dimension: "tracker".into(),
            value: "t-1".into(),
            count: 7,
        }],
        ..Default::default()
    };
    assert!(facts::StreamSink::apply_speed_batch(&store, &batch).unwrap());
    let counted = get_json(&srv.base, counts);
    assert_ne!(counted, empty);
    assert!(counted.to_string().contains("\"count\":7"), "{counted}");

    // The funnels file gains a funnel: the index lists it at once.
    assert!(!get(&srv.base, "/").1.contains("added_by_hand"));
    let mut file = std::fs::read_to_string(&s.funnels).unwrap();
    file.push_str("\n[[funnel]]\nid = \"added_by_hand\"\nwindow = \"1d\"\nsteps = [{ event = \"install\" }, { event = \"open\" }]\n");
    std::fs::write(&s.funnels, file).unwrap();
    assert!(get(&srv.base, "/").1.contains("added_by_hand"));
}

/// An app the stream counts but no batch run has computed yet is on `/` with its counts (per metric the
/// total over its days and the last day's), its days and the stream's freshness; batch apps are not
/// in that list. The speed facts are written by the stream's own batch code.
#[test]
fn apps_only_the_stream_counts_are_listed_on_the_index() {
    use stream::synth::{generate, TrafficSpec};
    use stream::{AttributionConfig, BatchBuilder};
    let s = store();
    let srv = serve(&s, &[]);
    assert!(!get(&srv.base, "/").1.contains("id=\"stream-apps\""));

    let store = facts::open_store(&s.url).unwrap();
    let cfg = AttributionConfig::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut offset = 0i64;
    for chunk in generate(&TrafficSpec::new(5, 80)).chunks(40) {
        let mut b = BatchBuilder::new(&store, &cfg, "tracking", 0, offset);
        for p in chunk {
            b.push(offset, Some(&p.payload), None).unwrap();
            offset += 1;
        }
        let (batch, _) = b.finish("g", now_ms).unwrap();
        assert!(facts::StreamSink::apply_speed_batch(&store, &batch).unwrap());
    }
    let speed_apps = facts::FactReader::speed_apps(&store).unwrap();
    assert_eq!(speed_apps, ["a1", "a2"]);

    let (status, page) = get(&srv.base, "/");
    assert_eq!(status, 200);
    let table = page
        .split("id=\"stream-apps\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no stream-only apps on /: {page}"));
    for app in ["app-001", "app-002", "app-003"] {
        assert!(
            !table.contains(app),
            "batch app {app} listed as stream-only"
        );
    }
    for app in ["a1", "a2"] {
        let row = table
            .split("<tr>")
            .find(|r| r.contains(&format!(">{app}</a>")))
            .unwrap_or_else(|| panic!("{app} missing: {table}"));
        let counts = get_json(&srv.base, &format!("/api/counts?app={app}"));
        let mut days = std::collections::BTreeSet::new();
        for m in counts["metrics"].as_array().unwrap() {
            // total over all days and the last day's, as `funnel query --counts` answers them
            let day_total = |d: &Value| -> i64 {
                let mut by_dim = std::collections::BTreeMap::<String, i64>::new();
                for v in d["values"].as_array().unwrap() {
                    *by_dim.entry(v["dimension"].to_string()).or_default() +=
                        v["count"].as_i64().unwrap();
                }
                by_dim.into_values().max().unwrap_or(0)
            };
            let with_values: Vec<&Value> = m["days"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| !d["values"].as_array().unwrap().is_empty())
                .collect();
            days.extend(
                with_values
                    .iter()
                    .map(|d| d["day"].as_str().unwrap().to_string()),
            );
            let mut by_dim = std::collections::BTreeMap::<String, i64>::new();
            for v in with_values
                .iter()
                .flat_map(|d| d["values"].as_array().unwrap())
            {
                *by_dim.entry(v["dimension"].to_string()).or_default() +=
                    v["count"].as_i64().unwrap();
            }
            let total = by_dim.into_values().max().unwrap_or(0);
            let last = with_values.last().map_or(0, |d| day_total(d));
            let metric = m["metric"].as_str().unwrap();
            if metric == "hits" {
                assert!(total > 0, "{app} has no hits: {m}");
            }
            assert!(
                row.contains(&format!("data-metric=\"{metric}\">{total} / {last}</td>")),
                "{app} {metric}: expected {total} / {last} in {row}"
            );
        }
        let range = format!("{} … {}", days.first().unwrap(), days.last().unwrap());
        assert!(row.contains(&range), "{range} in {row}");
        assert!(!row.contains("<td>–</td>"), "no freshness: {row}");
    }
}
