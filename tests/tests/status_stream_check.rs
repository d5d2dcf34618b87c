//! `funnel status` checks the stream's invariant — one conversion record per counted conversion — and
//! reports a difference (exit 1, the app, day and tracker), on a real SQLite store the stream's own batch
//! code wrote.

use std::process::Command;

use e2e_tests::funnel_bin;
use facts::{SpeedBatch, StateReader, StreamSink};
use stream::synth::{generate, with_copies, TrafficSpec};
use stream::{AttributionConfig, BatchBuilder};

fn status(url: &str, json: bool) -> (bool, String) {
    let mut cmd = Command::new(funnel_bin());
    cmd.args(["status", "--facts", url]);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("funnel status");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_reports_records_that_disagree_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let store = facts::open_store(&url).unwrap();
    let cfg = AttributionConfig::default();
    let traffic = with_copies(&generate(&TrafficSpec::new(3, 120)), 3, 2, 10);
    let mut offset = 0i64;
    for chunk in traffic.chunks(30) {
        let mut b = BatchBuilder::new(&store, &cfg, "tracking", 0, offset);
        for p in chunk {
            b.push(offset, Some(&p.payload), None).unwrap();
            offset += 1;
        }
        let (batch, _) = b.finish("g", chrono_now()).unwrap();
        assert!(store.apply_speed_batch(&batch).unwrap());
    }
    let records = stream::read_conversions(&store, None).unwrap();
    assert!(records.len() > 10, "the traffic must convert");

    let (ok, text) = status(&url, false);
    assert!(ok, "a consistent store: {text}");
    assert!(
        text.contains(&format!(
            "stream: {n} conversion records, {n} conversions counted (consistent)",
            n = records.len()
        )),
        "{text}"
    );

    // Lose one record: status names it and fails.
    let (key, _) = store
        .scan_state(stream::batch::NS_CONVERSION, "", 0)
        .unwrap()
        .remove(0);
    let lost = records[0].clone();
    let batch = SpeedBatch {
        group: "g".into(),
        topic: "tracking".into(),
        partition: 0,
        first_offset: offset,
        next_offset: offset + 1,
        state_deletes: vec![(stream::batch::NS_CONVERSION.into(), key)],
        ..Default::default()
    };
    assert!(store.apply_speed_batch(&batch).unwrap());
    let (ok, text) = status(&url, false);
    assert!(!ok, "a mismatch exits non-zero: {text}");
    assert!(text.contains("(MISMATCH)"), "{text}");
    assert!(
        text.contains(&format!("mismatch {} ", lost.app_id))
            && text.contains(&format!("tracker {:?}", lost.tracker)),
        "{text}"
    );
    let (ok, json) = status(&url, true);
    assert!(!ok);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let m = &doc["stream"]["mismatches"][0];
    assert_eq!(m["app_id"], lost.app_id.as_str());
    assert_eq!(
        m["counted"].as_i64().unwrap() - m["records"].as_i64().unwrap(),
        1
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
