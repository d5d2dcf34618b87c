//! Dead letters: refused messages with their reason and origin, written to a Kafka topic or a JSON-lines
//! file *before* their batch is applied (at least once: a crash between the two writes them again; the
//! `(topic, partition, offset)` they carry identifies duplicates). Their counts per reason are kept exactly
//! once in the store with the batch (see [`crate::batch::NS_DEADLETTER`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use crate::message::Poison;
use crate::StreamError;

/// One refused message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub detail: String,
    /// The original value, as text (invalid UTF-8 replaced); `null` when the message had no value.
    pub payload: Option<String>,
}

impl DeadLetter {
    pub fn new(
        topic: &str,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        poison: &Poison,
    ) -> DeadLetter {
        DeadLetter {
            topic: topic.to_string(),
            partition,
            offset,
            reason: poison.reason.as_str().to_string(),
            detail: poison.detail.clone(),
            payload: payload.map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }
}

/// Where dead letters go.
pub enum DeadLetterSink {
    /// Only counted (store + metrics) and logged.
    LogOnly,
    /// Appended as JSON lines, flushed and synced before the batch is applied.
    File {
        path: PathBuf,
        file: Mutex<std::fs::File>,
    },
    /// Produced to a Kafka topic (key `topic/partition/offset`), delivery awaited before the batch is applied.
    Topic {
        producer: FutureProducer,
        topic: String,
    },
}

impl DeadLetterSink {
    pub fn file(path: &Path) -> Result<DeadLetterSink, StreamError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StreamError::DeadLetter(format!("{}: {e}", path.display())))?;
        Ok(DeadLetterSink::File {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn topic(brokers: &str, topic: &str) -> Result<DeadLetterSink, StreamError> {
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|e| StreamError::Kafka(format!("dead-letter producer: {e}")))?;
        Ok(DeadLetterSink::Topic {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Writes `letters`; returns once they are durable (file synced, or acknowledged by the broker).
    pub async fn write(&self, letters: &[DeadLetter]) -> Result<(), StreamError> {
        if letters.is_empty() {
            return Ok(());
        }
        for l in letters {
            tracing::warn!(topic = %l.topic, partition = l.partition, offset = l.offset, reason = %l.reason, detail = %l.detail, "dead letter");
        }
        match self {
            DeadLetterSink::LogOnly => Ok(()),
            DeadLetterSink::File { path, file } => {
                let mut buf = Vec::new();
                for l in letters {
                    serde_json::to_writer(&mut buf, l).map_err(StreamError::Encode)?;
                    buf.push(b'\n');
                }
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                f.write_all(&buf)
                    .and_then(|_| f.sync_data())
                    .map_err(|e| StreamError::DeadLetter(format!("{}: {e}", path.display())))
            }
            DeadLetterSink::Topic { producer, topic } => {
                let mut encoded = Vec::with_capacity(letters.len());
                for l in letters {
                    let key = format!("{}/{}/{}", l.topic, l.partition, l.offset);
                    encoded.push((key, serde_json::to_vec(l).map_err(StreamError::Encode)?));
                }
                let mut pending = Vec::with_capacity(letters.len());
                for (key, value) in &encoded {
                    let record = FutureRecord::to(topic).key(key).payload(value);
                    pending.push(producer.send(record, Duration::from_secs(30)));
                }
                for p in pending {
                    p.await
                        .map_err(|(e, _)| StreamError::DeadLetter(format!("topic {topic}: {e}")))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, PoisonReason};

    #[tokio::test]
    async fn file_sink_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let sink = DeadLetterSink::file(&path).unwrap();
        let poison = Message::parse(Some(b"\xff{")).unwrap_err();
        assert_eq!(poison.reason, PoisonReason::BadJson);
        sink.write(&[DeadLetter::new("t", 3, 42, Some(b"\xff{"), &poison)])
            .await
            .unwrap();
        sink.write(&[DeadLetter::new(
            "t",
            3,
            43,
            None,
            &Message::parse(None).unwrap_err(),
        )])
        .await
        .unwrap();
        let lines: Vec<DeadLetter> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].offset, lines[0].reason.as_str()),
            (42, "bad_json")
        );
        assert_eq!(lines[0].payload.as_deref(), Some("\u{fffd}{"));
        assert_eq!(
            (lines[1].reason.as_str(), lines[1].payload.as_deref()),
            ("empty_payload", None)
        );
    }
}
