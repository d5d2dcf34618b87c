//! The Kafka side: a consumer group member (rdkafka, vendored librdkafka) that gives every assigned
//! partition its own task, cuts batches per partition (size or age), applies each batch to the fact store,
//! then commits the offset to Kafka.
//!
//! - **Assignment** (rebalance callback): every partition starts at the store's committed offset (the
//!   source of truth); without one, at `--start` (earliest by default). If the store cannot be read there,
//!   the Kafka-committed offset is used: it is never ahead of the store, so the first batch is at worst a
//!   replay the store refuses, which rewinds the partition (below).
//! - **Revocation**: the partition's task is dropped with whatever batch it had not applied yet (the next
//!   owner re-reads those messages from the store's offset).
//! - **Refused batch** (`apply_speed_batch` says it was applied before, overlaps another consumer's
//!   batch, or finds the partition's commit point moved under it — a rebalance race): the task ends, the poll loop seeks the partition to the store's offset and
//!   starts a fresh task for it. Messages fetched before the seek never reach the fresh task.
//! - **Backpressure**: each partition task has a bounded queue; when it is full (the store is slower than
//!   Kafka) the poll loop waits, and librdkafka stops fetching once its own queue is full.
//! - **Raw rows** (`StreamOptions::raw`): a batch's valid messages are written as raw rows
//!   ([`crate::raw`]) before the batch is applied to the store and before its offset is committed; if that
//!   fails, the batch is treated like a failed store write (nothing applied, rewind, retry).
//! - **Kafka's offsets and lag**: after every applied batch the partition's offset is committed to Kafka
//!   (asynchronously), and on every assignment the store's offsets of the assigned partitions are, so
//!   Kafka's committed offsets (what external lag tools read) catch up with the store after a crash. The
//!   lag gauge has a series per assigned partition from assignment on: the broker's high watermark minus
//!   the store's offset, refreshed after every batch (and by the statistics callback in between).
//! - **Shutdown**: the poll loop stops, every task applies its current batch and commits (synchronously),
//!   then the consumer closes and leaves the group.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facts::StreamStore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::batch::{BatchBuilder, BatchSummary};
use crate::config::AttributionConfig;
use crate::cutter::{Cut, Cutter, Item, Owned};
use crate::deadletter::DeadLetterSink;
use crate::metrics::Metrics;
use crate::StreamError;

/// Where a partition without an offset in the store starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
}

/// The default batch age limit (`--batch-max-ms`): at 8,000 msg/s over 4 partitions a batch is ~100
/// messages, 80 store transactions a second in all; under a backlog batches fill to their size limit
/// anyway. See docs/STREAM.md, "Speed".
pub const DEFAULT_BATCH_MAX_MS: u64 = 50;

/// Everything `run` needs besides the store and sinks.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub attribution: AttributionConfig,
    /// A batch is cut at this many messages…
    pub batch_max_messages: usize,
    /// …or this long after its first message arrived (its receipt from librdkafka, not when the partition's
    /// task took it from its queue). This bounds what batching adds to a message's latency.
    pub batch_max_wait: Duration,
    /// Per-partition queue between the poll loop and the partition's task.
    pub queue_capacity: usize,
    pub start: StartFrom,
    /// Extra librdkafka settings (`session.timeout.ms`, `security.protocol`, …); they win over defaults.
    pub kafka: Vec<(String, String)>,
    /// Write every valid message as a raw row (`tracking.hits` / `tracking.events`) before its batch is
    /// applied. `None`: no raw rows.
    #[cfg(feature = "cql")]
    pub raw: Option<Arc<crate::raw::RawWriter>>,
}

impl StreamOptions {
    pub fn new(brokers: &str, topic: &str, group: &str) -> StreamOptions {
        StreamOptions {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
            attribution: AttributionConfig::default(),
            batch_max_messages: 2_000,
            batch_max_wait: Duration::from_millis(DEFAULT_BATCH_MAX_MS),
            queue_capacity: 10_000,
            start: StartFrom::Earliest,
            kafka: Vec::new(),
            #[cfg(feature = "cql")]
            raw: None,
        }
    }
}

/// librdkafka settings that decide how fast a restarted stream resumes (see docs/STREAM.md, "Restarts");
/// `--kafka` overrides them. After a `kill -9` the broker keeps the dead member — and its partitions —
/// until its session expires: 6 s is the shortest session a stock Kafka broker accepts
/// (`group.min.session.timeout.ms`), instead of librdkafka's 45 s. A fetch waits at most 100 ms for data
/// (librdkafka: 500 ms), which is also what a partition's first batch after an assignment waits.
pub const RESTART_DEFAULTS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "1000"),
    ("fetch.wait.max.ms", "100"),
];

/// What an applied batch was, for observers (benchmarks, tests, logs).
#[derive(Debug, Clone)]
pub struct AppliedBatch {
    pub partition: i32,
    pub first_offset: i64,
    pub next_offset: i64,
    pub summary: BatchSummary,
    /// Wall-clock time the store transaction committed (epoch ms).
    pub applied_at_ms: i64,
}

/// Called after every applied batch.
pub type BatchObserver = Arc<dyn Fn(&AppliedBatch) + Send + Sync>;

enum RebalanceEvent {
    Assigned(Vec<(i32, Option<i64>)>),
    Revoked(Vec<i32>),
}

struct Ctx {
    store: Arc<dyn StreamStore>,
    group: String,
    topic: String,
    start: StartFrom,
    events: Mutex<Vec<RebalanceEvent>>,
    wake: Notify,
    metrics: Arc<Metrics>,
    /// Every assigned partition → the next offset the store has applied for it (`None` until known: a
    /// partition the store has no offset for starts at the broker's low or high watermark). The lag is
    /// the broker's high watermark minus this: what the store, not the fetcher, still has to apply.
    positions: Mutex<HashMap<i32, Option<i64>>>,
    /// Partitions whose high watermark is being fetched (one request at a time each).
    lag_fetching: Mutex<std::collections::HashSet<i32>>,
}

impl Ctx {
    /// Sets a partition's lag from the broker's watermarks, if it is still assigned.
    fn observe_watermarks(&self, partition: i32, low: i64, high: i64) {
        let mut positions = lock(&self.positions);
        let Some(pos) = positions.get_mut(&partition) else {
            return; // revoked meanwhile: no series
        };
        let at = *pos.get_or_insert(match self.start {
            StartFrom::Earliest => low,
            StartFrom::Latest => high,
        });
        self.metrics
            .lag
            .with_label_values(&[&partition.to_string()])
            .set((high - at).max(0));
    }

    /// Sets a partition's lag from a high watermark once the store's offset is known (after a batch).
    fn observe_high(&self, partition: i32, high: i64) {
        if let Some(Some(at)) = lock(&self.positions).get(&partition) {
            self.metrics
                .lag
                .with_label_values(&[&partition.to_string()])
                .set((high - at).max(0));
        }
    }

    /// A partition's store offset moved to `next` (a batch was applied).
    fn applied(&self, partition: i32, next: i64) {
        if let Some(pos) = lock(&self.positions).get_mut(&partition) {
            *pos = Some(next);
        }
    }

    fn assigned(&self, partition: i32, start: Option<i64>) {
        lock(&self.positions).insert(partition, start);
    }

    fn revoked(&self, partition: i32) {
        lock(&self.positions).remove(&partition);
        let _ = self
            .metrics
            .lag
            .remove_label_values(&[&partition.to_string()]);
    }
}

impl ClientContext for Ctx {
    /// Between batches (an idle or stuck partition), the statistics keep the lag current.
    fn stats(&self, stats: Statistics) {
        if let Some(t) = stats.topics.get(&self.topic) {
            for (p, s) in &t.partitions {
                // Both watermarks known (librdkafka reports -1001 until it has them).
                if *p >= 0 && s.hi_offset >= 0 && s.lo_offset >= 0 {
                    self.observe_watermarks(*p, s.lo_offset, s.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let stored = match self.store.committed_offsets(&self.group, &self.topic) {
                    Ok(v) => Some(v.into_iter().collect::<HashMap<i32, i64>>()),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read offsets from the store; resuming from Kafka's (the store will refuse replays)");
                        None
                    }
                };
                let mut assigned = Vec::new();
                for elem in tpl.elements() {
                    let p = elem.partition();
                    let start = stored.as_ref().and_then(|s| s.get(&p).copied());
                    assigned.push((elem.topic().to_string(), p, start));
                }
                for (topic, p, start) in &assigned {
                    let offset = match (start, &stored, self.start) {
                        (Some(o), _, _) => Offset::Offset(*o),
                        (None, None, _) => Offset::Stored,
                        (None, Some(_), StartFrom::Earliest) => Offset::Beginning,
                        (None, Some(_), StartFrom::Latest) => Offset::End,
                    };
                    if let Err(e) = tpl.set_partition_offset(topic, *p, offset) {
                        tracing::error!(partition = p, error = %e, "cannot set the start offset");
                    }
                }
                tracing::info!(partitions = ?assigned.iter().map(|a| (a.1, a.2)).collect::<Vec<_>>(), "assigned (partition, store offset)");
                self.metrics.assigned_partitions.set(assigned.len() as i64);
                lock(&self.events).push(RebalanceEvent::Assigned(
                    assigned.into_iter().map(|a| (a.1, a.2)).collect(),
                ));
                if let Err(e) = base.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?revoked, "revoked");
                self.metrics.assigned_partitions.set(0);
                lock(&self.events).push(RebalanceEvent::Revoked(revoked));
                if let Err(e) = base.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                lock(&self.events).push(RebalanceEvent::Revoked(revoked));
                let _ = base.unassign();
            }
        }
        self.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Kafka = StreamConsumer<Ctx>;

/// A partition task asks the poll loop to rewind it to the store's offset.
struct Rewind {
    partition: i32,
    generation: u64,
}

struct Task {
    tx: mpsc::Sender<Item>,
    generation: u64,
    join: tokio::task::JoinHandle<()>,
}

/// The live partition tasks, the revoked ones still finishing, and the generation counter that tells a
/// task's rewind request from a stale one.
#[derive(Default)]
struct Tasks {
    live: HashMap<i32, Task>,
    retired: Vec<tokio::task::JoinHandle<()>>,
    generation: u64,
}

impl Tasks {
    /// Ends a partition's task: dropping its queue makes it stop after its current store write, if any;
    /// its unapplied messages belong to the partition's next owner.
    fn retire(&mut self, partition: i32) {
        if let Some(t) = self.live.remove(&partition) {
            drop(t.tx);
            self.retired.push(t.join);
        }
        self.retired.retain(|j| !j.is_finished());
    }
}

struct Shared {
    opts: StreamOptions,
    store: Arc<dyn StreamStore>,
    cfg: Arc<AttributionConfig>,
    dead: Arc<DeadLetterSink>,
    metrics: Arc<Metrics>,
    consumer: Arc<Kafka>,
    rewind_tx: mpsc::UnboundedSender<Rewind>,
    observer: Option<BatchObserver>,
}

/// Consumes `opts.topic` as member of `opts.group` until `shutdown` completes, then finishes the current
/// batches, commits and leaves the group.
pub async fn run(
    opts: StreamOptions,
    store: Arc<dyn StreamStore>,
    dead: Arc<DeadLetterSink>,
    metrics: Arc<Metrics>,
    observer: Option<BatchObserver>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let ctx = Ctx {
        store: store.clone(),
        group: opts.group.clone(),
        topic: opts.topic.clone(),
        start: opts.start,
        events: Mutex::new(Vec::new()),
        wake: Notify::new(),
        metrics: metrics.clone(),
        positions: Mutex::new(HashMap::new()),
        lag_fetching: Mutex::new(std::collections::HashSet::new()),
    };
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .set("client.id", format!("funnel-stream-{}", std::process::id()));
    for (k, v) in RESTART_DEFAULTS {
        cc.set(*k, *v);
    }
    for (k, v) in &opts.kafka {
        cc.set(k, v);
    }
    let consumer: Arc<Kafka> = Arc::new(
        cc.create_with_context(ctx)
            .map_err(|e| StreamError::Kafka(format!("creating the consumer: {e}")))?,
    );
    consumer
        .subscribe(&[&opts.topic])
        .map_err(|e| StreamError::Kafka(format!("subscribe: {e}")))?;
    tracing::info!(brokers = %opts.brokers, topic = %opts.topic, group = %opts.group, "consuming");

    let (rewind_tx, mut rewind_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        cfg: Arc::new(opts.attribution.clone()),
        opts,
        store,
        dead,
        metrics,
        consumer: consumer.clone(),
        rewind_tx,
        observer,
    });
    let mut tasks = Tasks::default();
    let dedupe_size = tokio::spawn(report_dedupe_size(
        shared.store.clone(),
        shared.metrics.clone(),
    ));
    tokio::pin!(shutdown);
    let mut recv_errors = 0u32;

    loop {
        let item = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = rewind_rx.recv() => {
                if let Some(r) = r {
                    handle_rewind(&shared, &mut tasks, r).await;
                }
                continue;
            }
            _ = consumer.context().wake.notified() => None,
            m = consumer.recv() => Some(m),
        };
        handle_rebalance_events(&shared, &mut tasks);
        let Some(result) = item else { continue };
        let msg = match result {
            Ok(m) => {
                recv_errors = 0;
                m
            }
            Err(e) => {
                recv_errors = recv_errors.saturating_add(1);
                log_recv_error(&e, recv_errors);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let partition = msg.partition();
        let owned = Owned {
            offset: msg.offset(),
            payload: msg.payload().map(<[u8]>::to_vec),
            timestamp_ms: msg.timestamp().to_millis(),
            arrived: tokio::time::Instant::now(),
        };
        drop(msg);
        if !tasks.live.contains_key(&partition) {
            // Not announced by a rebalance (should not happen): start from the store's offset, and seek there.
            tracing::warn!(
                partition,
                "message for a partition without a task; starting one at the store's offset"
            );
            rewind_to_store(&shared, &mut tasks, partition).await;
            continue;
        }
        if let Some(task) = tasks.live.get(&partition) {
            let item = Item::Msg(owned);
            let item = match task.tx.try_send(item) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => continue,
                Err(mpsc::error::TrySendError::Full(item)) => item,
            };
            shared.metrics.backpressure_waits.inc();
            let _ = task.tx.send(item).await;
        }
    }

    // Graceful shutdown: every task applies what it has, commits, stops.
    tracing::info!("shutting down: applying the current batches");
    let mut acks = Vec::new();
    for (_, task) in tasks.live.drain() {
        let (ack_tx, ack_rx) = oneshot::channel();
        let _ = task.tx.send(Item::Flush(ack_tx)).await;
        acks.push((ack_rx, task.join));
    }
    for (ack, join) in acks {
        let _ = ack.await;
        let _ = join.await;
    }
    dedupe_size.abort();
    drop(shared);
    // Dropping the last handle closes the consumer: it leaves the group (the revoke callback runs). A
    // watermark request may still hold a handle for up to its timeout.
    let mut consumer = consumer;
    let deadline = Instant::now() + LAG_FETCH_TIMEOUT + Duration::from_secs(1);
    let consumer = loop {
        match Arc::try_unwrap(consumer) {
            Ok(c) => break c,
            Err(c) if Instant::now() < deadline => {
                consumer = c;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                return Err(StreamError::Task(
                    "consumer still shared at shutdown".into(),
                ))
            }
        }
    };
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!("left the group");
    Ok(())
}

/// How often the size of the seen-id state is counted (a scan of the store: too slow for every batch).
const DEDUPE_SIZE_EVERY: Duration = Duration::from_secs(10);

/// Keeps `funnel_stream_dedupe_ids` at the number of ids the store remembers, until aborted.
async fn report_dedupe_size(store: Arc<dyn StreamStore>, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(DEDUPE_SIZE_EVERY);
    loop {
        tick.tick().await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.count_seen(now_ms())).await {
            Ok(Ok(Some(n))) => metrics.dedupe_ids.set(i64::try_from(n).unwrap_or(i64::MAX)),
            // A store that cannot count them (CQL): the gauge stays unset rather than wrong.
            Ok(Ok(None)) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot count the remembered ids"),
            Err(_) => return,
        }
    }
}

fn log_recv_error(e: &KafkaError, n: u32) {
    if n == 1 || n.is_power_of_two() {
        tracing::warn!(error = %e, consecutive = n, "kafka receive error (librdkafka retries by itself)");
    }
}

fn handle_rebalance_events(shared: &Arc<Shared>, tasks: &mut Tasks) {
    let events = std::mem::take(&mut *lock(&shared.consumer.context().events));
    for ev in events {
        match ev {
            RebalanceEvent::Revoked(ps) => {
                for p in ps {
                    // Dropping the sender ends the task; its unapplied batch is dropped with it.
                    tasks.retire(p);
                    shared.consumer.context().revoked(p);
                }
            }
            RebalanceEvent::Assigned(ps) => {
                for &(p, start) in &ps {
                    shared.consumer.context().assigned(p, start);
                    spawn_task(shared, tasks, p, start);
                    refresh_lag(shared, p);
                }
                commit_store_offsets(shared, &ps);
            }
        }
    }
}

/// How long one high-watermark request may take.
const LAG_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the broker for a partition's high watermark and sets its lag (at most one request per partition
/// at a time; off the async threads).
fn refresh_lag(shared: &Arc<Shared>, partition: i32) {
    if !lock(&shared.consumer.context().lag_fetching).insert(partition) {
        return;
    }
    let consumer = shared.consumer.clone();
    let topic = shared.opts.topic.clone();
    tokio::task::spawn_blocking(move || {
        let ctx = consumer.context();
        match consumer.fetch_watermarks(&topic, partition, LAG_FETCH_TIMEOUT) {
            Ok((low, high)) => ctx.observe_watermarks(partition, low, high),
            Err(e) => tracing::debug!(partition, error = %e, "cannot read the high watermark"),
        }
        lock(&ctx.lag_fetching).remove(&partition);
    });
}

/// On assignment, Kafka's committed offsets are set to the store's: after a crash the last commit may
/// never have reached Kafka, and lag tools read Kafka's offsets. (The store stays the source of truth.)
fn commit_store_offsets(shared: &Arc<Shared>, assigned: &[(i32, Option<i64>)]) {
    let mut tpl = TopicPartitionList::new();
    for (p, start) in assigned {
        if let Some(o) = start {
            if let Err(e) = tpl.add_partition_offset(&shared.opts.topic, *p, Offset::Offset(*o)) {
                tracing::warn!(partition = p, error = %e, "cannot list the offset to commit");
            }
        }
    }
    if tpl.count() == 0 {
        return;
    }
    // Asynchronous: the poll loop must not wait for the coordinator. Lost to a crash, it is redone on the
    // next assignment.
    match shared.consumer.commit(&tpl, CommitMode::Async) {
        Ok(()) => tracing::info!(
            partitions = tpl.count(),
            "committing the store's offsets to Kafka"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot commit the store's offsets to Kafka on assignment")
        }
    }
}

fn spawn_task(shared: &Arc<Shared>, tasks: &mut Tasks, partition: i32, start: Option<i64>) {
    tasks.generation += 1;
    let generation = tasks.generation;
    let (tx, rx) = mpsc::channel(shared.opts.queue_capacity.max(1));
    let join = tokio::spawn(partition_task(
        shared.clone(),
        partition,
        generation,
        start,
        rx,
    ));
    tasks.live.insert(
        partition,
        Task {
            tx,
            generation,
            join,
        },
    );
}

async fn handle_rewind(shared: &Arc<Shared>, tasks: &mut Tasks, r: Rewind) {
    if tasks.live.get(&r.partition).map(|t| t.generation) != Some(r.generation) {
        return; // the partition moved on (revoked or already rewound)
    }
    rewind_to_store(shared, tasks, r.partition).await;
}

/// Seeks `partition` to the store's offset and gives it a fresh task starting there.
async fn rewind_to_store(shared: &Arc<Shared>, tasks: &mut Tasks, partition: i32) {
    tasks.retire(partition);
    let (store, group, topic) = (
        shared.store.clone(),
        shared.opts.group.clone(),
        shared.opts.topic.clone(),
    );
    let stored = tokio::task::spawn_blocking(move || store.committed_offsets(&group, &topic)).await;
    let start = match stored {
        Ok(Ok(v)) => v.into_iter().find(|(p, _)| *p == partition).map(|(_, o)| o),
        Ok(Err(e)) => {
            tracing::error!(partition, error = %e, "cannot read the store's offset; the partition waits for the next rebalance");
            return;
        }
        Err(e) => {
            tracing::error!(partition, error = %e, "offset lookup task failed");
            return;
        }
    };
    let offset = match (start, shared.opts.start) {
        (Some(o), _) => Offset::Offset(o),
        (None, StartFrom::Earliest) => Offset::Beginning,
        (None, StartFrom::Latest) => Offset::End,
    };
    let consumer = shared.consumer.clone();
    let topic = shared.opts.topic.clone();
    let seek = tokio::task::spawn_blocking(move || {
        consumer.seek(&topic, partition, offset, Duration::from_secs(10))
    })
    .await;
    match seek {
        Ok(Ok(())) => {
            tracing::info!(partition, offset = ?start, "rewound to the store's offset");
            spawn_task(shared, tasks, partition, start);
        }
        Ok(Err(e)) => {
            tracing::warn!(partition, error = %e, "seek failed (partition probably revoked)")
        }
        Err(e) => tracing::error!(partition, error = %e, "seek task failed"),
    }
}

enum Outcome {
    Applied(i64),
    Refused,
}

async fn partition_task(
    shared: Arc<Shared>,
    partition: i32,
    generation: u64,
    start: Option<i64>,
    mut rx: mpsc::Receiver<Item>,
) {
    let mut cutter = Cutter::new(
        partition,
        shared.opts.batch_max_messages,
        shared.opts.batch_max_wait,
        start,
    );
    loop {
        let batch_start = cutter.next;
        let Cut {
            msgs,
            flush,
            closed,
        } = cutter.next_batch(&mut rx).await;
        if closed {
            // Revoked: the unapplied messages belong to the next owner.
            return;
        }
        if !msgs.is_empty() {
            let first_offset = batch_start.unwrap_or(msgs[0].offset);
            match apply(&shared, partition, first_offset, msgs, flush.is_some()).await {
                Ok(Outcome::Applied(n)) => cutter.next = Some(n),
                Ok(Outcome::Refused) => {
                    let _ = shared.rewind_tx.send(Rewind {
                        partition,
                        generation,
                    });
                    if let Some(ack) = flush {
                        let _ = ack.send(());
                    }
                    return;
                }
                Err(e) => {
                    // The store or the dead-letter sink failed: nothing was applied. Rewind and retry from
                    // the store's offset after a pause, instead of skipping the batch.
                    tracing::error!(partition, error = %e, "batch failed; retrying from the store's offset");
                    if flush.is_none() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    let _ = shared.rewind_tx.send(Rewind {
                        partition,
                        generation,
                    });
                    if let Some(ack) = flush {
                        let _ = ack.send(());
                    }
                    return;
                }
            }
        }
        if let Some(ack) = flush {
            let _ = ack.send(());
            return;
        }
    }
}

/// Builds, dead-letters and applies one batch starting at `first_offset`, then commits its offset to Kafka.
async fn apply(
    shared: &Arc<Shared>,
    partition: i32,
    first_offset: i64,
    msgs: Vec<Owned>,
    final_commit: bool,
) -> Result<Outcome, StreamError> {
    let store = shared.store.clone();
    let cfg = shared.cfg.clone();
    let topic = shared.opts.topic.clone();
    let group = shared.opts.group.clone();
    let build_started = Instant::now();
    #[cfg(feature = "cql")]
    let keep = shared.opts.raw.is_some();
    #[cfg(not(feature = "cql"))]
    let keep = false;
    let (batch, mut summary) = tokio::task::spawn_blocking(move || {
        let mut b = BatchBuilder::new(&*store, &cfg, &topic, partition, first_offset);
        if keep {
            b.keep_messages();
        }
        for m in &msgs {
            b.push(m.offset, m.payload.as_deref(), m.timestamp_ms)?;
        }
        b.finish(&group, now_ms())
    })
    .await
    .map_err(|e| StreamError::Task(e.to_string()))??;
    shared
        .metrics
        .batch_build_seconds
        .observe(build_started.elapsed().as_secs_f64());
    shared.dead.write(&summary.dead_letters).await?;
    let kept = std::mem::take(&mut summary.kept);
    #[cfg(feature = "cql")]
    if let Some(raw) = &shared.opts.raw {
        // Before the store applies the batch and before any offset moves: a failure here leaves the batch
        // unapplied, and it is retried from the store's offset.
        write_raw(shared, raw, partition, first_offset, &kept).await?;
    }
    drop(kept);
    let store = shared.store.clone();
    let started = Instant::now();
    let (first, next) = (batch.first_offset, batch.next_offset);
    let result = tokio::task::spawn_blocking(move || store.apply_speed_batch(&batch))
        .await
        .map_err(|e| StreamError::Task(e.to_string()))?;
    let m = &shared.metrics;
    match result {
        Ok(true) => {}
        Ok(false) => {
            m.batches.with_label_values(&["replayed"]).inc();
            tracing::info!(
                partition,
                first_offset = first,
                "batch already applied (a replay); rewinding to the store's offset"
            );
            return Ok(Outcome::Refused);
        }
        Err(
            e @ (facts::FactsError::OffsetOverlap { .. }
            | facts::FactsError::PartitionTakenOver { .. }),
        ) => {
            m.batches.with_label_values(&["conflict"]).inc();
            tracing::info!(partition, error = %e, "batch overlaps another consumer's (the partition's commit point moved); rewinding to the store's offset");
            return Ok(Outcome::Refused);
        }
        Err(e) => return Err(e.into()),
    }
    let applied_at_ms = now_ms();
    m.batch_apply_seconds
        .observe(started.elapsed().as_secs_f64());
    m.batches.with_label_values(&["applied"]).inc();
    m.consumed.inc_by(summary.messages);
    m.conversions.inc_by(summary.conversions);
    m.duplicates.inc_by(summary.duplicates);
    m.batch_messages
        .with_label_values(&[&partition.to_string()])
        .observe(summary.messages as f64);
    for (reason, n) in &summary.poison {
        m.dead_letters
            .with_label_values(&[reason.as_str()])
            .inc_by(*n);
    }
    for ts in &summary.kafka_timestamps_ms {
        m.end_to_end_seconds
            .observe((applied_at_ms - ts).max(0) as f64 / 1000.0);
    }
    tracing::debug!(
        partition,
        first_offset = first,
        next_offset = next,
        messages = summary.messages,
        conversions = summary.conversions,
        duplicates = summary.duplicates,
        "batch applied"
    );
    let mut tpl = TopicPartitionList::new();
    let mode = if final_commit {
        CommitMode::Sync
    } else {
        CommitMode::Async
    };
    let committed = tpl
        .add_partition_offset(&shared.opts.topic, partition, Offset::Offset(next))
        .and_then(|_| shared.consumer.commit(&tpl, mode));
    if let Err(e) = committed {
        // Only lag tools read Kafka's offsets; the store has the real one.
        tracing::debug!(partition, error = %e, "kafka offset commit failed");
    }
    shared.consumer.context().applied(partition, next);
    // The high watermark of the last fetch response is in librdkafka's memory; the broker is asked only
    // while there is none.
    match crate::watermark::cached_high(&*shared.consumer, &shared.opts.topic, partition) {
        Some(high) => shared.consumer.context().observe_high(partition, high),
        None => refresh_lag(shared, partition),
    }
    if let Some(obs) = &shared.observer {
        obs(&AppliedBatch {
            partition,
            first_offset: first,
            next_offset: next,
            summary,
            applied_at_ms,
        });
    }
    Ok(Outcome::Applied(next))
}

/// Writes a batch's raw rows (all of them, or an error).
#[cfg(feature = "cql")]
async fn write_raw(
    shared: &Arc<Shared>,
    raw: &crate::raw::RawWriter,
    partition: i32,
    first_offset: i64,
    msgs: &[crate::message::Message],
) -> Result<(), StreamError> {
    let m = &shared.metrics;
    let rows = crate::raw::rows_of(msgs);
    for (id, reason) in &rows.skipped {
        m.raw_skipped.with_label_values(&[reason.as_str()]).inc();
        tracing::warn!(partition, id = %id, reason = reason.as_str(), "valid message without a raw row");
    }
    if rows.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    match raw.write(&rows).await {
        Ok(()) => {
            m.raw_write_seconds.observe(started.elapsed().as_secs_f64());
            m.raw_rows
                .with_label_values(&["hits"])
                .inc_by(rows.hits.len() as u64);
            m.raw_rows
                .with_label_values(&["events"])
                .inc_by(rows.events.len() as u64);
            Ok(())
        }
        Err(e) => {
            m.raw_write_failures.inc();
            m.batches.with_label_values(&["raw_failed"]).inc();
            tracing::error!(
                partition,
                first_offset,
                rows = rows.len(),
                error = %e,
                "raw rows not written; the batch is not applied and will be retried"
            );
            Err(e.into())
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
