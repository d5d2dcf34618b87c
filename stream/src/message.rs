//! The wire format of the stream: one JSON hit or event per Kafka message (schema and the reason of every
//! malformed case in `docs/STREAM.md`), parsed strictly. Anything that does not fit is a [`Poison`] with a stable reason, never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// Milliseconds in one day: the unit of fact-table days.
pub const DAY_MS: i64 = 86_400_000;

/// A click on a tracking link (`tracking.hits`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub app_id: String,
    pub hit_id: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub tracker: String,
    pub referrer: String,
    pub ip: IpAddr,
    pub user_agent: String,
    pub device_id: Option<String>,
    pub props: BTreeMap<String, String>,
}

/// An app event from the SDK (`tracking.events`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub app_id: String,
    pub actor_id: String,
    pub event_id: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    pub name: String,
    pub ip: IpAddr,
    pub user_agent: String,
    pub device_id: Option<String>,
    pub props: BTreeMap<String, String>,
}

/// One valid stream message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hit(Hit),
    Event(Event),
}

impl Message {
    pub fn app_id(&self) -> &str {
        match self {
            Message::Hit(h) => &h.app_id,
            Message::Event(e) => &e.app_id,
        }
    }

    pub fn ts_ms(&self) -> i64 {
        match self {
            Message::Hit(h) => h.ts_ms,
            Message::Event(e) => e.ts_ms,
        }
    }

    pub fn ip(&self) -> IpAddr {
        match self {
            Message::Hit(h) => h.ip,
            Message::Event(e) => e.ip,
        }
    }

    pub fn user_agent(&self) -> &str {
        match self {
            Message::Hit(h) => &h.user_agent,
            Message::Event(e) => &e.user_agent,
        }
    }

    /// Parses one message payload. `None` (a Kafka message without a value) is poison too.
    pub fn parse(payload: Option<&[u8]>) -> Result<Message, Poison> {
        let payload = payload
            .ok_or_else(|| Poison::new(PoisonReason::EmptyPayload, "message has no value"))?;
        if payload.is_empty() {
            // Not "bad JSON": an empty value is what a producer sends when it had nothing to send.
            return Err(Poison::new(
                PoisonReason::EmptyPayload,
                "message value has zero length",
            ));
        }
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| Poison::new(PoisonReason::BadJson, format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(Poison::new(PoisonReason::BadJson, "not a JSON object"));
        };
        let kind = obj
            .get("type")
            .ok_or_else(|| Poison::new(PoisonReason::MissingField, "missing field `type`"))?;
        match kind.as_str() {
            Some("hit") => parse_hit(&obj).map(Message::Hit),
            Some("event") => parse_event(&obj).map(Message::Event),
            _ => Err(Poison::new(
                PoisonReason::UnknownType,
                format!("unknown message type {kind}"),
            )),
        }
    }
}

fn parse_hit(obj: &Map<String, Value>) -> Result<Hit, Poison> {
    Ok(Hit {
        app_id: required_str(obj, "app_id")?,
        hit_id: required_uuid(obj, "hit_id")?,
        ts_ms: required_ts(obj)?,
        tracker: required_str(obj, "tracker")?,
        referrer: optional_str(obj, "referrer")?.unwrap_or_default(),
        ip: required_ip(obj)?,
        user_agent: required_str_allow_empty(obj, "user_agent")?,
        device_id: optional_str(obj, "device_id")?.filter(|d| !d.is_empty()),
        props: props(obj)?,
    })
}

fn parse_event(obj: &Map<String, Value>) -> Result<Event, Poison> {
    Ok(Event {
        app_id: required_str(obj, "app_id")?,
        actor_id: required_str(obj, "actor_id")?,
        event_id: required_uuid(obj, "event_id")?,
        ts_ms: required_ts(obj)?,
        name: required_str(obj, "name")?,
        ip: required_ip(obj)?,
        user_agent: required_str_allow_empty(obj, "user_agent")?,
        device_id: optional_str(obj, "device_id")?.filter(|d| !d.is_empty()),
        props: props(obj)?,
    })
}

fn required_str_allow_empty(obj: &Map<String, Value>, field: &str) -> Result<String, Poison> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(Poison::new(
            PoisonReason::MissingField,
            format!("missing field `{field}`"),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Poison::new(
            PoisonReason::BadFieldType,
            format!("field `{field}` must be a string, got {other}"),
        )),
    }
}

fn required_str(obj: &Map<String, Value>, field: &str) -> Result<String, Poison> {
    let s = required_str_allow_empty(obj, field)?;
    if s.is_empty() {
        return Err(Poison::new(
            PoisonReason::MissingField,
            format!("field `{field}` is empty"),
        ));
    }
    Ok(s)
}

fn optional_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, Poison> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Poison::new(
            PoisonReason::BadFieldType,
            format!("field `{field}` must be a string or null, got {other}"),
        )),
    }
}

fn required_uuid(obj: &Map<String, Value>, field: &str) -> Result<String, Poison> {
    let s = required_str(obj, field)?;
    let id = uuid::Uuid::parse_str(&s).map_err(|e| {
        Poison::new(
            PoisonReason::BadId,
            format!("field `{field}` is not a UUID ({s:?}): {e}"),
        )
    })?;
    // One spelling per id, whatever case or braces the producer used.
    Ok(id.hyphenated().to_string())
}

fn required_ip(obj: &Map<String, Value>) -> Result<IpAddr, Poison> {
    let s = required_str(obj, "ip")?;
    s.trim().parse().map_err(|_| {
        Poison::new(
            PoisonReason::BadIp,
            format!("field `ip` is not an IP address: {s:?}"),
        )
    })
}

fn required_ts(obj: &Map<String, Value>) -> Result<i64, Poison> {
    match obj.get("ts") {
        None | Some(Value::Null) => Err(Poison::new(
            PoisonReason::MissingField,
            "missing field `ts`",
        )),
        Some(Value::String(s)) => parse_ts(s),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ms| (0..MAX_TS_MS).contains(ms))
            .ok_or_else(|| {
                Poison::new(
                    PoisonReason::BadTimestamp,
                    format!("`ts` {n} is not epoch milliseconds in range"),
                )
            }),
        Some(other) => Err(Poison::new(
            PoisonReason::BadTimestamp,
            format!("`ts` must be an RFC 3339 string or epoch milliseconds, got {other}"),
        )),
    }
}

/// 9999-12-31T23:59:59.999Z + 1 ms: the range Cassandra's `timestamp` and our `Day` can show.
const MAX_TS_MS: i64 = 253_402_300_800_000;

/// Parses an RFC 3339 timestamp (`2026-11-20T10:00:00Z`, `2026-11-20T10:00:00.250+01:00`) to epoch ms.
pub fn parse_ts(s: &str) -> Result<i64, Poison> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).map_err(|e| {
        Poison::new(
            PoisonReason::BadTimestamp,
            format!("`ts` {s:?} is not RFC 3339: {e}"),
        )
    })?;
    let ms = t.timestamp_millis();
    if !(0..MAX_TS_MS).contains(&ms) {
        return Err(Poison::new(
            PoisonReason::BadTimestamp,
            format!("`ts` {s:?} is before 1970 or after 9999"),
        ));
    }
    Ok(ms)
}

fn props(obj: &Map<String, Value>) -> Result<BTreeMap<String, String>, Poison> {
    match obj.get("props") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                // map<text,text>: scalars are kept as their JSON text, nested values are refused.
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                _ => Err(Poison::new(
                    PoisonReason::BadFieldType,
                    format!("`props.{k}` must be a string, number or boolean"),
                )),
            })
            .collect(),
        Some(_) => Err(Poison::new(
            PoisonReason::BadFieldType,
            "`props` must be an object",
        )),
    }
}

/// Why a message was refused; the label of the dead-letter counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PoisonReason {
    EmptyPayload,
    BadJson,
    UnknownType,
    MissingField,
    BadFieldType,
    BadId,
    BadIp,
    BadTimestamp,
}

impl PoisonReason {
    pub const ALL: [PoisonReason; 8] = [
        PoisonReason::EmptyPayload,
        PoisonReason::BadJson,
        PoisonReason::UnknownType,
        PoisonReason::MissingField,
        PoisonReason::BadFieldType,
        PoisonReason::BadId,
        PoisonReason::BadIp,
        PoisonReason::BadTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoisonReason::EmptyPayload => "empty_payload",
            PoisonReason::BadJson => "bad_json",
            PoisonReason::UnknownType => "unknown_type",
            PoisonReason::MissingField => "missing_field",
            PoisonReason::BadFieldType => "bad_field_type",
            PoisonReason::BadId => "bad_id",
            PoisonReason::BadIp => "bad_ip",
            PoisonReason::BadTimestamp => "bad_timestamp",
        }
    }
}

impl fmt::Display for PoisonReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the reason (for counting) and a human-readable detail (for the dead letter).
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    pub reason: PoisonReason,
    pub detail: String,
}

impl Poison {
    pub fn new(reason: PoisonReason, detail: impl Into<String>) -> Poison {
        Poison {
            reason,
            detail: detail.into(),
        }
    }
}

/// The fact-table day (days since 1970-01-01 UTC) of an epoch-ms timestamp.
pub fn day_of(ts_ms: i64) -> i32 {
    // ts is validated to [0, year 9999], so the day fits an i32.
    i32::try_from(ts_ms.div_euclid(DAY_MS)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message, Poison> {
        Message::parse(Some(s.as_bytes()))
    }

    #[test]
    fn parses_a_hit_and_an_event() {
        let hit = parse(
            r#"{"type":"hit","app_id":"a1","hit_id":"5F0C6B2E-3B1A-11EF-9A8C-0242AC120002","ts":"2026-11-20T10:00:00Z",
                "tracker":"fb","referrer":"https://x.test/","ip":"1.2.3.4","user_agent":"UA","device_id":null,
                "props":{"campaign":"c1","n":3}}"#,
        )
        .unwrap();
        let Message::Hit(h) = hit else {
            panic!("not a hit")
        };
        assert_eq!(h.hit_id, "5f0c6b2e-3b1a-11ef-9a8c-0242ac120002");
        assert_eq!(h.ts_ms, 1_795_168_800_000);
        assert_eq!(h.props.get("n").map(String::as_str), Some("3"));
        assert_eq!(h.device_id, None);
        let ev = parse(
            r#"{"type":"event","app_id":"a1","actor_id":"u42","event_id":"5f0c6b2e-3b1a-11ef-9a8c-0242ac120003",
                "ts":1795168800250,"name":"install","ip":"::ffff:1.2.3.4","user_agent":"","device_id":"D1"}"#,
        )
        .unwrap();
        let Message::Event(e) = ev else {
            panic!("not an event")
        };
        assert_eq!(e.ts_ms, 1_795_168_800_250);
        assert_eq!(e.device_id.as_deref(), Some("D1"));
        assert_eq!(day_of(e.ts_ms), 20_777);
    }

    #[test]
    fn every_reason_is_reachable() {
        let ok_hit = r#""app_id":"a","hit_id":"5f0c6b2e-3b1a-11ef-9a8c-0242ac120002","tracker":"t","ip":"1.2.3.4","user_agent":"u""#;
        let hit_with = |extra: &str| Some(format!(r#"{{"type":"hit",{ok_hit},{extra}}}"#));
        let s = |x: &str| Some(x.to_string());
        let cases: Vec<(Option<String>, PoisonReason)> = vec![
            (None, PoisonReason::EmptyPayload),
            (s(""), PoisonReason::EmptyPayload),
            (s(" "), PoisonReason::BadJson),
            (s("null"), PoisonReason::BadJson),
            (s("{not json"), PoisonReason::BadJson),
            (s(r#"{"type":null}"#), PoisonReason::UnknownType),
            (s(r#"{"type":"Hit"}"#), PoisonReason::UnknownType),
            (
                s(r#"{"type":"hit","app_id":""}"#),
                PoisonReason::MissingField,
            ),
            (hit_with(r#""ts":true"#), PoisonReason::BadTimestamp),
            (hit_with(r#""ts":1.5"#), PoisonReason::BadTimestamp),
            (hit_with(r#""ts":"""#), PoisonReason::BadTimestamp),
            (hit_with(r#""ts":null"#), PoisonReason::MissingField),
            (
                hit_with(r#""ts":1,"props":{"a":null}"#),
                PoisonReason::BadFieldType,
            ),
            (
                s(r#"{"type":"hit","app_id":"a","hit_id":7}"#),
                PoisonReason::BadFieldType,
            ),
            (s("[1,2]"), PoisonReason::BadJson),
            (s(r#"{"type":"click"}"#), PoisonReason::UnknownType),
            (s(r#"{"app_id":"a"}"#), PoisonReason::MissingField),
            (
                s(r#"{"type":"hit","app_id":"a"}"#),
                PoisonReason::MissingField,
            ),
            (hit_with(r#""ts":"yesterday""#), PoisonReason::BadTimestamp),
            (hit_with(r#""ts":-5"#), PoisonReason::BadTimestamp),
            (
                hit_with(r#""ts":"2026-11-20T10:00:00Z","props":{"a":[1]}"#),
                PoisonReason::BadFieldType,
            ),
            (
                s(r#"{"type":"hit","app_id":7}"#),
                PoisonReason::BadFieldType,
            ),
            (
                s(r#"{"type":"hit","app_id":"a","hit_id":"nope"}"#),
                PoisonReason::BadId,
            ),
            (
                Some(format!(
                    r#"{{"type":"hit",{},"ts":"2026-11-20T10:00:00Z"}}"#,
                    ok_hit.replace("1.2.3.4", "1.2.3")
                )),
                PoisonReason::BadIp,
            ),
        ];
        for (payload, reason) in cases {
            let got = Message::parse(payload.as_deref().map(str::as_bytes))
                .expect_err(payload.as_deref().unwrap_or("<none>"));
            assert_eq!(got.reason, reason, "{payload:?}: {}", got.detail);
        }
        assert!(parse(&format!(
            r#"{{"type":"hit",{ok_hit},"ts":"2026-11-20T10:00:00Z"}}"#
        ))
        .is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let seed = br#"{"type":"event","app_id":"a1","actor_id":"u","event_id":"5f0c6b2e-3b1a-11ef-9a8c-0242ac120003","ts":"2026-11-20T10:00:00Z","name":"install","ip":"1.2.3.4","user_agent":"x"}"#;
        assert!(Message::parse(Some(seed)).is_ok());
        for _ in 0..5_000 {
            let mut bytes = seed.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            let _ = Message::parse(Some(&bytes));
        }
    }
}
