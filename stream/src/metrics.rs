//! Prometheus metrics of the stream (consumed, lag, batch latency, dead letters, conversions, duplicates,
//! backpressure)
//! and a minimal HTTP endpoint serving them at `GET /metrics` (`--metrics 127.0.0.1:PORT`).

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::StreamError;

/// All stream metrics, registered in their own [`Registry`].
pub struct Metrics {
    pub registry: Registry,
    /// Messages consumed from Kafka (valid and poison), counted when their batch is applied.
    pub consumed: IntCounter,
    /// Poison messages per reason.
    pub dead_letters: IntCounterVec,
    /// Hit→event conversions found.
    pub conversions: IntCounter,
    /// Valid messages dropped because their (app, id) was applied before within the dedupe window.
    pub duplicates: IntCounter,
    /// Hit and event ids the store remembers for dropping copies (the seen-id state), read periodically.
    pub dedupe_ids: IntGauge,
    /// Batches by outcome: `applied`, `replayed` (already in the store), `conflict` (another consumer
    /// applied first; the partition was rewound to the store's offset), `raw_failed` (raw rows could not
    /// be written; not applied, retried).
    pub batches: IntCounterVec,
    /// Seconds to apply one batch to the store (facts + state + offset transaction).
    pub batch_apply_seconds: Histogram,
    /// Seconds to fold one batch (parse, pending-state reads, matching) before it is applied.
    pub batch_build_seconds: Histogram,
    /// Seconds from a message's Kafka timestamp to its batch being applied.
    pub end_to_end_seconds: Histogram,
    /// Messages behind the partition's high watermark (librdkafka statistics), per partition.
    pub lag: IntGaugeVec,
    /// Times the poll loop waited because a partition's queue was full (the store is the bottleneck).
    pub backpressure_waits: IntCounter,
    /// Partitions currently assigned to this process.
    pub assigned_partitions: IntGauge,
    /// Batch sizes in messages.
    pub batch_messages: HistogramVec,
    /// Raw rows written to Cassandra (`--raw`), per table (`hits`, `events`); a retried batch counts again.
    pub raw_rows: IntCounterVec,
    /// Batches whose raw rows could not be written (the batch was not applied and is retried).
    pub raw_write_failures: IntCounter,
    /// Valid messages without a raw row, per reason (`not_timeuuid`); their facts still count.
    pub raw_skipped: IntCounterVec,
    /// Seconds to write one batch's raw rows.
    pub raw_write_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Metrics, StreamError> {
        Self::build().map_err(|e| StreamError::Metrics(e.to_string()))
    }

    fn build() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("funnel_stream".into()), None)?;
        let consumed = IntCounter::new(
            "messages_total",
            "Messages consumed and applied (valid and poison)",
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "dead_letters_total",
                "Poison messages sent to the dead-letter sink, per reason",
            ),
            &["reason"],
        )?;
        let conversions = IntCounter::new("conversions_total", "Hit to event conversions found")?;
        let duplicates = IntCounter::new(
            "duplicates_total",
            "Valid messages dropped as copies of an id applied within the dedupe window",
        )?;
        let dedupe_ids = IntGauge::new(
            "dedupe_ids",
            "Hit and event ids remembered in the store to drop copies",
        )?;
        let batches = IntCounterVec::new(
            Opts::new("batches_total", "Batches by outcome"),
            &["outcome"],
        )?;
        let batch_apply_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "batch_apply_seconds",
                "Seconds to apply one batch to the fact store",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        let batch_build_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "batch_build_seconds",
                "Seconds to fold one batch (parse, state reads, matching)",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        let end_to_end_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "end_to_end_seconds",
                "Seconds from a message's Kafka timestamp to its facts being applied",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 18)?),
        )?;
        let lag = IntGaugeVec::new(
            Opts::new("consumer_lag", "Messages behind the high watermark"),
            &["partition"],
        )?;
        let backpressure_waits = IntCounter::new(
            "backpressure_waits_total",
            "Times the poll loop waited on a full partition queue",
        )?;
        let assigned_partitions =
            IntGauge::new("assigned_partitions", "Partitions assigned to this process")?;
        let batch_messages = HistogramVec::new(
            HistogramOpts::new("batch_messages", "Messages per applied batch")
                .buckets(prometheus::exponential_buckets(1.0, 4.0, 9)?),
            &["partition"],
        )?;
        let raw_rows = IntCounterVec::new(
            Opts::new("raw_rows_total", "Raw rows written to Cassandra, per table"),
            &["table"],
        )?;
        let raw_write_failures = IntCounter::new(
            "raw_write_failures_total",
            "Batches whose raw rows could not be written (not applied; retried)",
        )?;
        let raw_skipped = IntCounterVec::new(
            Opts::new(
                "raw_skipped_total",
                "Valid messages without a raw row, per reason",
            ),
            &["reason"],
        )?;
        let raw_write_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "raw_write_seconds",
                "Seconds to write one batch's raw rows to Cassandra",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        let m = Metrics {
            registry,
            consumed,
            dead_letters,
            conversions,
            duplicates,
            dedupe_ids,
            batches,
            batch_apply_seconds,
            batch_build_seconds,
            end_to_end_seconds,
            lag,
            backpressure_waits,
            assigned_partitions,
            batch_messages,
            raw_rows,
            raw_write_failures,
            raw_skipped,
            raw_write_seconds,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.consumed.clone()),
            Box::new(m.dead_letters.clone()),
            Box::new(m.conversions.clone()),
            Box::new(m.duplicates.clone()),
            Box::new(m.dedupe_ids.clone()),
            Box::new(m.batches.clone()),
            Box::new(m.batch_apply_seconds.clone()),
            Box::new(m.batch_build_seconds.clone()),
            Box::new(m.end_to_end_seconds.clone()),
            Box::new(m.lag.clone()),
            Box::new(m.backpressure_waits.clone()),
            Box::new(m.assigned_partitions.clone()),
            Box::new(m.batch_messages.clone()),
            Box::new(m.raw_rows.clone()),
            Box::new(m.raw_write_failures.clone()),
            Box::new(m.raw_skipped.clone()),
            Box::new(m.raw_write_seconds.clone()),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        Ok(m)
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Binds `addr` and serves `GET /metrics` until the task is dropped/aborted. Returns the bound address
/// (port 0 picks a free one).
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StreamError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StreamError::Metrics(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| StreamError::Metrics(e.to_string()))?;
    tracing::info!(addr = %local, "metrics at http://{local}/metrics");
    let handle = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
                let (status, body) =
                    if first.starts_with(b"GET /metrics ") || first.starts_with(b"GET / ") {
                        ("200 OK", metrics.render())
                    } else {
                        ("404 Not Found", "try GET /metrics\n".to_string())
                    };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_text_format() {
        let m = Arc::new(Metrics::new().unwrap());
        m.consumed.inc_by(7);
        m.dead_letters.with_label_values(&["bad_json"]).inc();
        m.raw_write_failures.inc();
        m.duplicates.inc_by(3);
        let (addr, handle) = serve(m.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        sock.read_to_string(&mut resp).await.unwrap();
        handle.abort();
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.contains("funnel_stream_messages_total 7"), "{resp}");
        assert!(
            resp.contains(r#"funnel_stream_dead_letters_total{reason="bad_json"} 1"#),
            "{resp}"
        );
        assert!(
            resp.contains("funnel_stream_raw_write_failures_total 1"),
            "{resp}"
        );
        assert!(resp.contains("funnel_stream_duplicates_total 3"), "{resp}");
        assert!(resp.contains("funnel_stream_dedupe_ids 0"), "{resp}");
    }
}
