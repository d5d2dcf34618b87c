//! Cuts one partition's queue of fetched messages into batches: a batch closes at
//! `batch_max_messages`, or `batch_max_wait` after its first message was *received* from librdkafka — a
//! message that queued while the previous batch was being written does not wait the whole age limit again
//! — or when the queue closes (revocation) or a flush is asked for (shutdown). Messages below the
//! partition's resume offset (fetched before a seek) are skipped.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// A message copied out of librdkafka's buffer.
pub(crate) struct Owned {
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
    pub timestamp_ms: Option<i64>,
    /// When the poll loop received it (what a batch's age counts from).
    pub arrived: tokio::time::Instant,
}

/// What the poll loop sends a partition's task.
pub(crate) enum Item {
    Msg(Owned),
    /// Apply what you have, commit synchronously, then acknowledge and stop.
    Flush(oneshot::Sender<()>),
}

/// One cut batch, and why it ended.
pub(crate) struct Cut {
    pub msgs: Vec<Owned>,
    /// A flush was asked for: apply `msgs`, acknowledge, stop.
    pub flush: Option<oneshot::Sender<()>>,
    /// The queue closed (the partition was revoked): `msgs` belong to the next owner.
    pub closed: bool,
}

/// A partition's batch cutter: the limits and the next offset it accepts.
pub(crate) struct Cutter {
    pub partition: i32,
    pub max_messages: usize,
    pub max_wait: Duration,
    /// The next offset accepted; `None` until the first message when the store had no offset.
    pub next: Option<i64>,
    skipped_stale: u64,
}

impl Cutter {
    pub fn new(partition: i32, max_messages: usize, max_wait: Duration, next: Option<i64>) -> Self {
        Cutter {
            partition,
            max_messages: max_messages.max(1),
            max_wait,
            next,
            skipped_stale: 0,
        }
    }

    /// Waits for the next batch.
    pub async fn next_batch(&mut self, rx: &mut mpsc::Receiver<Item>) -> Cut {
        let mut cut = Cut {
            msgs: Vec::new(),
            flush: None,
            closed: false,
        };
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let item = match deadline {
                // Messages already queued join the batch even past its deadline (they cost no wait, and
                // fewer, larger store transactions keep up with a backlog); then the deadline closes it.
                Some(d) => tokio::select! {
                    biased;
                    i = rx.recv() => i,
                    _ = tokio::time::sleep_until(d) => return cut,
                },
                None => rx.recv().await,
            };
            match item {
                None => {
                    cut.closed = true;
                    return cut;
                }
                Some(Item::Flush(ack)) => {
                    cut.flush = Some(ack);
                    return cut;
                }
                Some(Item::Msg(m)) => {
                    if self.next.is_some_and(|n| m.offset < n) {
                        self.skipped_stale += 1;
                        let n = self.skipped_stale;
                        if n == 1 || n.is_power_of_two() {
                            tracing::debug!(partition = self.partition, offset = m.offset, expected = ?self.next, skipped_stale = n, "skipping a message below the resume offset");
                        }
                        continue;
                    }
                    self.next = Some(m.offset + 1);
                    deadline.get_or_insert(m.arrived + self.max_wait);
                    cut.msgs.push(m);
                    if cut.msgs.len() >= self.max_messages {
                        return cut;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(offset: i64, arrived: tokio::time::Instant) -> Item {
        Item::Msg(Owned {
            offset,
            payload: Some(b"{}".to_vec()),
            timestamp_ms: None,
            arrived,
        })
    }

    /// Messages that queued behind a slow store write (received long ago) are cut at once, not held for
    /// another `max_wait` counted from when the task took them.
    #[tokio::test]
    async fn a_batch_s_age_counts_from_its_first_message_s_receipt() {
        let (tx, mut rx) = mpsc::channel(16);
        let long_ago = tokio::time::Instant::now() - Duration::from_millis(400);
        for o in 0..3 {
            tx.send(msg(o, long_ago)).await.unwrap();
        }
        let mut cutter = Cutter::new(0, 100, Duration::from_millis(300), Some(0));
        let started = std::time::Instant::now();
        let cut = cutter.next_batch(&mut rx).await;
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "waited {:?} for messages already past the age limit",
            started.elapsed()
        );
        assert_eq!(cut.msgs.len(), 3, "everything queued joins the batch");
        assert_eq!(cutter.next, Some(3));
        drop(tx);
    }

    /// A fresh message waits for the age limit (more may come), a full batch does not, stale offsets are
    /// skipped, and a closed queue says so (its messages are the next owner's).
    #[tokio::test]
    async fn cuts_on_age_size_and_close() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut cutter = Cutter::new(0, 2, Duration::from_millis(100), Some(5));
        let now = tokio::time::Instant::now;
        tx.send(msg(4, now())).await.unwrap(); // below the resume offset
        tx.send(msg(5, now())).await.unwrap();
        let started = std::time::Instant::now();
        let cut = cutter.next_batch(&mut rx).await;
        assert!(started.elapsed() >= Duration::from_millis(90));
        assert_eq!(cut.msgs.iter().map(|m| m.offset).collect::<Vec<_>>(), [5]);
        for o in 6..9 {
            tx.send(msg(o, now())).await.unwrap();
        }
        let cut = cutter.next_batch(&mut rx).await;
        assert_eq!(
            cut.msgs.iter().map(|m| m.offset).collect::<Vec<_>>(),
            [6, 7]
        );
        drop(tx);
        let cut = cutter.next_batch(&mut rx).await;
        assert!(cut.closed, "a revoked partition's queue closes");
        assert_eq!(cut.msgs.iter().map(|m| m.offset).collect::<Vec<_>>(), [8]);
    }
}
