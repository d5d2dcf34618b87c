//! `funnel export` end to end: the real binary exports tables to Parquet and Arrow IPC files, DuckDB and
//! chdb (ClickHouse) read them back (tests/oracle/export_compare.py), and every row and value must equal
//! `funnel dump`'s JSON lines — for testdata's events, hits and conversions, and for real Cassandra 3.11
//! SSTables holding one table per CQL type; Spark reads the Parquet files of events. Then the errors: unknown table and column, an output directory
//! inside the data or not a directory, files of an earlier export (refused unless --overwrite).
//! Under `CI` a missing venv fails the tests; otherwise they are skipped with a reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_tests::{funnel_bin, shared_sstables, tools_dir, workspace_root};

const NOW: &str = "2026-11-02T00:00:00Z";

fn python() -> Option<PathBuf> {
    let py = tools_dir().join("venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import duckdb, chdb, pyarrow"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if ok {
        return Some(py);
    }
    let reason = format!(
        "{} with duckdb, chdb and pyarrow is missing (run .ci/setup-python.sh)",
        py.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn funnel(args: &[&str]) -> Output {
    Command::new(funnel_bin())
        .args(args)
        .output()
        .expect("run funnel")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exports `table` from `data` as `format` into `out`; returns the files it listed on stdout.
fn export(data: &Path, table: &str, format: &str, out: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec![
        "export",
        "--table",
        table,
        "--data",
        data.to_str().unwrap(),
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
        "--now",
        NOW,
    ];
    args.extend_from_slice(extra);
    let o = funnel(&args);
    assert!(
        o.status.success(),
        "export {table} {format}: {}",
        text(&o.stderr)
    );
    let files: Vec<PathBuf> = text(&o.stdout).lines().map(PathBuf::from).collect();
    assert!(!files.is_empty(), "export {table} {format} listed no file");
    for f in &files {
        assert!(f.is_file(), "{} listed but missing", f.display());
        assert_eq!(f.extension().unwrap(), format);
    }
    files
}

/// `funnel dump`'s JSON lines of `table` at NOW, written to `path`; returns the row count.
fn dump(data: &Path, table: &str, path: &Path) -> usize {
    let o = funnel(&[
        "dump",
        data.to_str().unwrap(),
        "--table",
        table,
        "--now",
        NOW,
    ]);
    assert!(o.status.success(), "dump {table}: {}", text(&o.stderr));
    std::fs::write(path, &o.stdout).unwrap();
    text(&o.stdout).lines().count()
}

/// One export to read back: its format, directory, the dump it must equal and a label.
struct Check {
    format: &'static str,
    out: PathBuf,
    dump: PathBuf,
    rows: u64,
    label: String,
}

/// Reads every check's files with each reader (`duckdb`, `chdb`, `spark`; one oracle process per reader)
/// and compares them with their dumps: every value, and the row count.
fn compare_all(py: &Path, checks: &[Check], readers: &[&str]) {
    let oracle = workspace_root().join("tests/oracle/export_compare.py");
    for &reader in readers {
        let mut cmd = Command::new(py);
        cmd.arg(&oracle).arg(reader);
        for c in checks {
            cmd.arg(c.format).arg(&c.out).arg(&c.dump);
        }
        let o = cmd.output().unwrap();
        let summaries: Vec<serde_json::Value> = text(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            summaries.len(),
            checks.len(),
            "{reader}: {} {}",
            text(&o.stdout),
            text(&o.stderr)
        );
        for (c, s) in checks.iter().zip(&summaries) {
            assert_eq!(
                s["same"], true,
                "{reader} reading {} differs from funnel dump: {s}",
                c.label
            );
            assert_eq!(s["rows"].as_u64(), Some(c.rows), "{reader}: {}", c.label);
        }
        assert!(o.status.success(), "{reader}: {}", text(&o.stderr));
    }
}

#[test]
fn duckdb_and_chdb_read_every_row_and_value_funnel_dump_prints() {
    let Some(py) = python() else { return };
    let data = workspace_root().join("testdata/snapshot");
    let dir = tempfile::tempdir().unwrap();
    let mut checks = Vec::new();
    for table in ["events", "hits", "conversions"] {
        let qualified = format!("tracking.{table}");
        let dumped = dir.path().join(format!("{table}.jsonl"));
        let rows = dump(&data, &qualified, &dumped);
        assert!(rows > 1000, "{table}: only {rows} rows in testdata");
        for format in ["parquet", "arrow"] {
            let out = dir.path().join(format!("{table}-{format}"));
            let files = export(&data, &qualified, format, &out, &["--threads", "2"]);
            // Two threads: the ring is cut into several ranges, each with its own file.
            assert!(files.len() > 1, "{table} {format}: {files:?}");
            checks.push(Check {
                format,
                out,
                dump: dumped.clone(),
                rows: rows as u64,
                label: format!("{table} {format}"),
            });
            // Uuids as 16 bytes (Parquet UUID / arrow.uuid) too.
            let out = dir.path().join(format!("{table}-{format}-binary-uuids"));
            export(&data, &qualified, format, &out, &["--uuid", "binary"]);
            checks.push(Check {
                format,
                out,
                dump: dumped.clone(),
                rows: rows as u64,
                label: format!("{table} {format} with binary uuids"),
            });
        }
    }
    compare_all(&py, &checks, &["duckdb", "chdb"]);
}

#[test]
fn real_cassandra_sstables_of_every_cql_type_round_trip() {
    let Some(py) = python() else { return };
    let types = shared_sstables().join("cassandra-3.11-types/data");
    let mut tables: Vec<(PathBuf, String)> = std::fs::read_dir(types.join("testtypes1"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let table = name.split('-').next().unwrap().to_string();
            (types.join("testtypes1"), format!("testtypes1.{table}"))
        })
        .collect();
    tables.sort();
    assert!(tables.len() >= 24, "{tables:?}");
    tables.push((types.join("testalltypes"), "testalltypes.alltypes".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut checks = Vec::new();
    for (data, table) in &tables {
        let dumped = dir.path().join(format!("{table}.jsonl"));
        let rows = dump(data, table, &dumped);
        assert_eq!(rows, 1, "{table}: one row each");
        for format in ["parquet", "arrow"] {
            let out = dir.path().join(format!("{table}-{format}"));
            export(data, table, format, &out, &[]);
            checks.push(Check {
                format,
                out,
                dump: dumped.clone(),
                rows: 1,
                label: format!("{table} {format}"),
            });
        }
    }
    compare_all(&py, &checks, &["duckdb", "chdb"]);
}

#[test]
fn columns_and_files_per_rows() {
    let Some(py) = python() else { return };
    let data = workspace_root().join("testdata/snapshot");
    let dir = tempfile::tempdir().unwrap();
    let dumped = dir.path().join("hits.jsonl");
    let o = funnel(&[
        "dump",
        data.to_str().unwrap(),
        "--table",
        "tracking.hits",
        "--now",
        NOW,
        "--columns",
        "props,fingerprint,ts",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::write(&dumped, &o.stdout).unwrap();
    let rows = text(&o.stdout).lines().count() as u64;
    let out = dir.path().join("hits");
    let files = export(
        &data,
        "tracking.hits",
        "parquet",
        &out,
        &[
            "--columns",
            "props,fingerprint,ts",
            "--rows-per-file",
            "1000",
            "--threads",
            "1",
        ],
    );
    // One range (one thread), a new file at the first partition boundary past 1000 rows.
    let per_file: Vec<u64> = files.iter().map(|f| parquet_rows(&py, f)).collect();
    assert_eq!(per_file.iter().sum::<u64>(), rows);
    let (last, full) = per_file.split_last().unwrap();
    assert!(!full.is_empty() && *last > 0, "{per_file:?}");
    // A hits partition (one fingerprint) holds a few rows at most.
    assert!(
        full.iter().all(|&n| (1000..1050).contains(&n)),
        "{per_file:?}"
    );
    let check = Check {
        format: "parquet",
        out: out.clone(),
        dump: dumped,
        rows,
        label: "hits' props, fingerprint and ts".into(),
    };
    compare_all(&py, &[check], &["duckdb", "chdb"]);
    let schema = Command::new(&py)
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq; print(','.join(pq.read_schema(sys.argv[1]).names))",
        ])
        .arg(&files[0])
        .output()
        .unwrap();
    // SELECT * order: partition key, clustering, then the other columns by name.
    assert_eq!(text(&schema.stdout).trim(), "fingerprint,ts,props");
}

/// With `--cache`, the second export reads every SSTable from its extract, and still equals the dump.
#[test]
fn export_through_the_extract_cache() {
    let Some(py) = python() else { return };
    let data = workspace_root().join("testdata/snapshot");
    let dir = tempfile::tempdir().unwrap();
    let dumped = dir.path().join("conversions.jsonl");
    let rows = dump(&data, "tracking.conversions", &dumped) as u64;
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let mut checks = Vec::new();
    for (i, format) in ["parquet", "arrow"].into_iter().enumerate() {
        let out = dir.path().join(format!("conversions-{format}"));
        let o = Command::new(funnel_bin())
            .args(["export", "--table", "tracking.conversions", "--data"])
            .arg(&data)
            .args(["--format", format, "--out"])
            .arg(&out)
            .args(["--now", NOW])
            .args(["--cache", c])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        // The first export fills the cache, the second reads from it alone.
        let want = if i == 0 {
            "0 SSTables read from extracts"
        } else {
            "3 SSTables read from extracts, 0 extracted"
        };
        assert!(text(&o.stderr).contains(want), "{}", text(&o.stderr));
        checks.push(Check {
            format,
            out,
            dump: dumped.clone(),
            rows,
            label: format!("conversions {format} through the cache"),
        });
    }
    compare_all(&py, &checks, &["duckdb"]);
}

/// Spark (pyspark, local[1]) reads the Parquet export of events — uuids as text, since Spark 4 refuses
/// Parquet's UUID type — and every value equals `funnel dump`'s.
#[test]
fn spark_reads_the_parquet_export() {
    let Some(py) = python() else { return };
    let spark = Command::new(&py)
        .args(["-c", "import pyspark"])
        .output()
        .is_ok_and(|o| o.status.success());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(spark && java) {
        let reason = "pyspark in the venv and java are needed (.ci/test installs both)";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let data = workspace_root().join("testdata/snapshot");
    let dir = tempfile::tempdir().unwrap();
    let dumped = dir.path().join("events.jsonl");
    let rows = dump(&data, "tracking.events", &dumped) as u64;
    let out = dir.path().join("events");
    export(
        &data,
        "tracking.events",
        "parquet",
        &out,
        &["--threads", "2"],
    );
    let check = Check {
        format: "parquet",
        out,
        dump: dumped,
        rows,
        label: "events".into(),
    };
    compare_all(&py, &[check], &["spark"]);
}

fn parquet_rows(py: &Path, file: &Path) -> u64 {
    let o = Command::new(py)
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)",
        ])
        .arg(file)
        .output()
        .unwrap();
    text(&o.stdout).trim().parse().unwrap()
}

fn export_error(args: &[&str]) -> String {
    let o = funnel(args);
    assert!(!o.status.success(), "funnel {args:?} succeeded");
    assert_eq!(o.status.code(), Some(1), "funnel {args:?}");
    text(&o.stderr)
}

#[test]
fn errors_name_what_is_wrong_and_leave_nothing_behind() {
    let data = workspace_root().join("testdata/snapshot");
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let base = |table: &'static str| {
        vec![
            "export", "--table", table, "--data", d, "--format", "parquet", "--out", o, "--now",
            NOW,
        ]
    };

    let err = export_error(&base("tracking.nope"));
    assert!(err.contains("tracking.nope"), "{err}");

    let mut args = base("tracking.events");
    args.extend(["--columns", "name,colour"]);
    let err = export_error(&args);
    assert!(
        err.contains("no column \"colour\"") && err.contains("actor_id"),
        "{err}"
    );
    assert!(!out.join("part-00000-0000.parquet").exists());

    // Inside a data directory (a copy, so nothing is ever written into testdata).
    let copy = dir.path().join("data");
    std::fs::create_dir_all(&copy).unwrap();
    let inside = copy.join("exports");
    let c = copy.to_str().unwrap();
    let i = inside.to_str().unwrap();
    let err = export_error(&[
        "export",
        "--table",
        "tracking.events",
        "--data",
        c,
        d,
        "--format",
        "arrow",
        "--out",
        i,
    ]);
    assert!(err.contains("outside the data directories"), "{err}");
    assert!(
        !inside.exists(),
        "a refused output directory must not be created"
    );

    // Not a directory.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    let err = export_error(&[
        "export",
        "--table",
        "tracking.events",
        "--data",
        d,
        "--format",
        "arrow",
        "--out",
        f,
    ]);
    assert!(err.contains("not a directory"), "{err}");

    // An earlier export is refused, then replaced with --overwrite (also when it had more files).
    let first = export(
        &data,
        "tracking.events",
        "parquet",
        &out,
        &["--threads", "2"],
    );
    let err = export_error(&base("tracking.events"));
    assert!(
        err.contains("--overwrite") && err.contains("earlier export"),
        "{err}"
    );
    let second = export(
        &data,
        "tracking.events",
        "parquet",
        &out,
        &["--threads", "1", "--overwrite"],
    );
    assert!(first.len() > second.len(), "{first:?} vs {second:?}");
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["part-00000-0000.parquet"],
        "no stale part, no temporary file"
    );

    // A file of the format that no export wrote is never replaced.
    std::fs::write(out.join("mine.parquet"), b"x").unwrap();
    let mut args = base("tracking.events");
    args.push("--overwrite");
    let err = export_error(&args);
    assert!(err.contains("mine.parquet"), "{err}");
}
