//! The rebalance race, made deterministic: while the stream (in-process, real broker, real SQLite) owns a
//! partition, "another consumer" applies batches of the same partition to the store ahead of it. The
//! stream's next batch is refused by the store, the partition rewinds to the store's offset, and in the end
//! every message counts exactly once.

mod stream_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stream::synth::{generate, TrafficSpec};
use stream::{AttributionConfig, BatchBuilder, DeadLetterSink, Metrics, StreamOptions};
use stream_support::*;

#[test]
fn a_batch_applied_by_another_consumer_rewinds_the_partition() {
    let Some(tansu) = tansu_or_skip("stream_rewind") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let (topic, group) = ("tracking", "speed");
    broker.create_topic(topic, 1);
    let brokers = broker.addr();
    let traffic = generate(&TrafficSpec::new(5, 150));
    produce(&brokers, topic, &traffic);
    let contents = read_topic(&brokers, topic, 1);
    let total = contents[0].len() as i64;

    let dir = tempfile::tempdir().unwrap();
    let facts_url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let store: Arc<dyn facts::StreamStore> = Arc::new(facts::open_store(&facts_url).unwrap());
    let cfg = AttributionConfig::default();

    // The intruder: on the stream's 2nd and 4th applied batch, apply the next `len` messages itself
    // (short and long runs, so the stream's own batch is a replay of a different span both ways).
    let calls = Arc::new(AtomicUsize::new(0));
    let intrusions = Arc::new(Mutex::new(Vec::new()));
    let observer = {
        let (store, contents, calls, intrusions) = (
            store.clone(),
            contents.clone(),
            calls.clone(),
            intrusions.clone(),
        );
        Arc::new(move |b: &stream::AppliedBatch| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let len = match n {
                2 => 3,
                4 => 60,
                _ => return,
            };
            let cfg = AttributionConfig::default();
            let mut builder = BatchBuilder::new(&*store, &cfg, topic, 0, b.next_offset);
            for (o, p) in contents[0]
                .iter()
                .filter(|(o, _)| *o >= b.next_offset)
                .take(len)
            {
                builder.push(*o, p.as_deref(), None).unwrap();
            }
            let (batch, _) = builder.finish(group, chrono_now()).unwrap();
            if batch.next_offset > batch.first_offset {
                assert!(
                    store.apply_speed_batch(&batch).unwrap(),
                    "the intruder's batch applies"
                );
                intrusions
                    .lock()
                    .unwrap()
                    .push((batch.first_offset, batch.next_offset));
            }
        })
    };
    let mut opts = StreamOptions::new(&brokers, topic, group);
    opts.batch_max_messages = 10;
    opts.batch_max_wait = Duration::from_millis(20);
    opts.attribution = cfg.clone();
    opts.kafka
        .push(("session.timeout.ms".into(), "6000".into()));
    let metrics = Arc::new(Metrics::new().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(stream::run(
        opts,
        store.clone(),
        Arc::new(DeadLetterSink::LogOnly),
        metrics.clone(),
        Some(observer),
        async {
            let _ = stop_rx.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .committed_offsets(group, topic)
        .unwrap()
        .first()
        .map(|o| o.1)
        .unwrap_or(0)
        < total
    {
        assert!(Instant::now() < deadline, "not caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stop_tx.send(());
    rt.block_on(handle).unwrap().unwrap();

    assert_eq!(
        intrusions.lock().unwrap().len(),
        2,
        "both intrusions happened"
    );
    let refused = metrics.batches.with_label_values(&["replayed"]).get()
        + metrics.batches.with_label_values(&["conflict"]).get();
    assert!(
        refused >= 2,
        "the stream's batches at the intruded offsets were refused: {refused}"
    );
    assert_store_matches_reference(&facts_url, &brokers, group, topic, 1, &["a1", "a2"]);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
