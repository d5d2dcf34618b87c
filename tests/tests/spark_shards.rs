//! The PySpark job of `deploy/spark/` on a real Spark standalone cluster (a master and 2 workers of one
//! core each, on 127.0.0.1; pyspark from the project's venv, Java from the system): 4 shards of
//! `funnel run` fan out as Spark tasks over both workers and publish exactly the facts of one `funnel run`
//! (compared row for row in the SQLite file) — with the first attempt of one shard killed (SIGKILL) while
//! it runs, so Spark retries it. Under `CI` a missing pyspark or Java fails the test; otherwise it is
//! skipped with a reason.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{funnel_bin, run_funnel, tools_dir, workspace_root};

/// Python of the venv with pyspark, and Spark's home (the pyspark package holds its jars).
fn spark() -> Option<(PathBuf, PathBuf)> {
    let py = tools_dir().join("venv/bin/python");
    let home = Command::new(&py)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let reason = match (&home, java) {
        (Some(h), true) => return Some((py, h.clone())),
        (None, _) => format!(
            "{} with pyspark is missing (run .ci/setup-python.sh)",
            py.display()
        ),
        (_, false) => "java is missing (apt-get install openjdk-17-jre-headless)".to_string(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The processes this test started, stopped by their PIDs when it ends (also on a failed assertion).
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // TERM first: a worker stops its executors on the way down.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a Spark daemon class (master or worker) as one JVM, its output to `log`.
fn daemon(home: &Path, class: &str, args: &[&str], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new("java")
        .args(["-Xmx256m", "-cp"])
        .arg(format!("{}/jars/*", home.display()))
        .arg(class)
        .args(args)
        .env("SPARK_HOME", home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        // What `spark-class` sets: a worker's executor command is built from it (pip's pyspark has no
        // RELEASE file to tell the Scala version).
        .env("SPARK_SCALA_VERSION", "2.13")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn wait_for(log: &Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let _ = f.read_to_string(&mut text);
        }
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The published facts of a SQLite file as rows of text (no run ids or times).
fn published(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT s.app_id, s.funnel_id, s.funnel_version, s.day, s.breakdown, s.step, s.actors,
                quote(s.ttc_median_s), quote(s.ttc_p90_s)
         FROM funnel_steps s JOIN watermarks w USING (app_id, funnel_id, funnel_version, run_id)
         ORDER BY 1, 2, 3, 4, 5, 6",
        "SELECT t.app_id, t.funnel_id, t.funnel_version, t.day, 'total', t.step, t.actors,
                quote(t.ttc_median_s), quote(t.ttc_p90_s)
         FROM funnel_totals t JOIN watermarks w USING (app_id, funnel_id, funnel_version, run_id)
         ORDER BY 1, 2, 3, 4, 6",
        "SELECT app_id, funnel_id, funnel_version, batch_until, '', 0, 0, '', '' FROM watermarks ORDER BY 1, 2, 3",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                (0..9)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        out.extend(rows);
    }
    out
}

#[test]
fn four_shards_on_two_spark_workers_publish_the_single_runs_facts_with_a_killed_task_retried() {
    let Some((python, home)) = spark() else {
        return;
    };
    let started = Instant::now();
    let root = workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (data, funnels) = (
        root.join("testdata/snapshot"),
        root.join("testdata/funnels.toml"),
    );
    let now = "2026-11-01";

    let single = dir.join("single.db");
    run_funnel(&[
        "run",
        "--quiet",
        "--data",
        &data.display().to_string(),
        "--funnels",
        &funnels.display().to_string(),
        "--facts",
        &format!("sqlite:{}", single.display()),
        "--now",
        now,
    ]);
    let expected = published(&single);
    assert!(expected.len() > 100, "the single run must publish facts");

    // A `funnel` that logs where each attempt runs, and SIGKILLs the first attempt of shard 2 mid-run.
    let wrapper = dir.join("funnel-wrapper.sh");
    let (log, marker) = (dir.join("attempts.log"), dir.join("killed-once"));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\
             echo \"$PWD $*\" >> '{log}'\n\
             case \"$*\" in *'--shard 2/4'*)\n\
               if [ ! -e '{marker}' ]; then\n\
                 touch '{marker}'\n\
                 '{bin}' \"$@\" & pid=$!\n\
                 sleep 0.05; kill -9 $pid; wait $pid; exit $?\n\
               fi;;\n\
             esac\n\
             exec '{bin}' \"$@\"\n",
            log = log.display(),
            marker = marker.display(),
            bin = funnel_bin().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let port = free_port();
    let master_url = format!("spark://127.0.0.1:{port}");
    let mut daemons = Daemons(Vec::new());
    let master_log = dir.join("master.log");
    let (port_s, ui) = (port.to_string(), free_port().to_string());
    daemons.0.push(daemon(
        &home,
        "org.apache.spark.deploy.master.Master",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--webui-port",
            &ui,
        ],
        &master_log,
    ));
    // Both workers start at once (they retry registering until the master is up).
    let mut worker_logs = Vec::new();
    for w in 1..=2 {
        let work = dir.join(format!("worker{w}"));
        std::fs::create_dir_all(&work).unwrap();
        let log = dir.join(format!("worker{w}.log"));
        let ui = free_port().to_string();
        daemons.0.push(daemon(
            &home,
            "org.apache.spark.deploy.worker.Worker",
            &[
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--webui-port",
                &ui,
                "--work-dir",
                &work.display().to_string(),
                &master_url,
            ],
            &log,
        ));
        worker_logs.push(log);
    }
    wait_for(
        &master_log,
        "I have been elected leader",
        Duration::from_secs(60),
    );
    for log in &worker_logs {
        wait_for(
            log,
            "Successfully registered with master",
            Duration::from_secs(60),
        );
    }

    let facts = dir.join("sharded.db");
    let job = Command::new(&python)
        .arg(root.join("deploy/spark/funnel_shards.py"))
        .args([
            "--master",
            &master_url,
            "--funnel",
            &wrapper.display().to_string(),
        ])
        .args(["--shards", "4", "--run-name", "e2e", "--now", now])
        .args(["--funnels", &funnels.display().to_string()])
        .args(["--facts", &format!("sqlite:{}", facts.display())])
        .args(["--data", &data.display().to_string()])
        .args(["--", "--threads", "1"])
        .env("SPARK_HOME", &home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_SCALA_VERSION", "2.13")
        .env("PYSPARK_PYTHON", &python)
        .env(
            "PYSPARK_SUBMIT_ARGS",
            "--conf spark.executor.memory=512m --conf spark.executor.cores=1 \
             --conf spark.task.maxFailures=4 --conf spark.ui.enabled=false \
             --driver-memory 512m pyspark-shell",
        )
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&job.stderr);
    assert!(job.status.success(), "the Spark job failed:\n{stderr}");
    drop(daemons);

    assert_eq!(
        published(&facts),
        expected,
        "sharded facts differ from the single run's"
    );
    let attempts = std::fs::read_to_string(&log).unwrap();
    let of = |shard: &str| {
        attempts
            .lines()
            .filter(|l| l.contains(&format!("--shard {shard}")))
            .count()
    };
    assert_eq!(
        (of("1/4"), of("2/4"), of("3/4"), of("4/4")),
        (1, 2, 1, 1),
        "shard 2 was killed once and retried:\n{attempts}"
    );
    // Both workers ran shards (each executor runs in its worker's work directory).
    let mut workers: Vec<&str> = attempts
        .lines()
        .filter(|l| l.contains("--shard"))
        .filter_map(|l| {
            ["worker1", "worker2"]
                .into_iter()
                .find(|w| l.contains(&format!("/{w}/")))
        })
        .collect();
    workers.sort();
    workers.dedup();
    assert_eq!(workers, ["worker1", "worker2"], "{attempts}");
    assert!(marker.exists());
    eprintln!("spark e2e took {:.1}s", started.elapsed().as_secs_f64());
}
