//! Synthetic traffic for tests and benchmarks: devices that click tracking links and then install, open
//! and use the app, some sharing an IP (so fingerprints collide), some with device ids, delivered a little
//! out of order (so events arrive before their clicks), with a sprinkling of poison messages. Every message
//! comes with the partition key producers must use. Deterministic for a seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::fingerprint::partition_key;

/// Knobs of the generator.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    pub seed: u64,
    pub apps: usize,
    pub devices: usize,
    /// Distinct IPs the devices share (fewer IPs than devices = fingerprint collisions).
    pub ips: usize,
    /// Timestamps start here (epoch ms) and spread over `span_ms`.
    pub start_ms: i64,
    pub span_ms: i64,
    /// Fraction of poison messages (0.0–1.0).
    pub poison: f64,
    /// Probability that a click is delivered late (up to 4 h after its timestamp).
    pub disorder: f64,
}

impl TrafficSpec {
    /// A small, busy mix starting two days ago.
    pub fn new(seed: u64, devices: usize) -> TrafficSpec {
        let now = chrono::Utc::now().timestamp_millis();
        TrafficSpec {
            seed,
            apps: 2,
            devices,
            ips: (devices / 3).max(1),
            start_ms: now - 2 * 86_400_000,
            span_ms: 2 * 86_400_000,
            poison: 0.02,
            disorder: 0.2,
        }
    }
}

/// One message to produce: Kafka key and JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    pub key: String,
    pub payload: Vec<u8>,
}

const TRACKERS: [&str; 4] = ["fb", "google", "tiktok", "newsletter"];
const EVENTS: [&str; 4] = ["install", "open", "purchase", "signup"];

/// Generates the traffic: for each device, 0–3 clicks and 0–4 events after them, delivered in order of
/// timestamp plus delivery delay.
pub fn generate(spec: &TrafficSpec) -> Vec<Produced> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut timeline: Vec<(i64, Produced)> = Vec::new();
    let mut uuid_counter: u64 = 0;
    let mut next_uuid = |rng: &mut StdRng| {
        uuid_counter += 1;
        let r: u32 = rng.random();
        format!("{r:08x}-0000-1000-8000-{uuid_counter:012x}")
    };
    for d in 0..spec.devices {
        let app = format!("a{}", d % spec.apps.max(1) + 1);
        let ip = format!(
            "10.{}.{}.{}",
            (d % spec.ips.max(1)) / 65_536,
            (d % spec.ips.max(1)) / 256 % 256,
            d % spec.ips.max(1) % 256
        );
        let ios = rng.random_bool(0.5);
        let ua_browser = if ios {
            format!(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{} like Mac OS X) Safari/604.1",
                d % 3
            )
        } else {
            format!(
                "Mozilla/5.0 (Linux; Android {}; Pixel) Chrome/120.0 Mobile",
                12 + d % 3
            )
        };
        let ua_sdk = if ios {
            format!("App/2.0 (iPhone; iOS 17.{})", d % 3)
        } else {
            format!("okhttp/4 (Android {})", 12 + d % 3)
        };
        let device_id = rng.random_bool(0.5).then(|| format!("dev-{d}"));
        let actor = format!("u{d}");
        let mut t = spec.start_ms + rng.random_range(0..spec.span_ms.max(1));
        for _ in 0..rng.random_range(0..=3) {
            let hit_device = if rng.random_bool(0.5) {
                device_id.clone()
            } else {
                None
            };
            let v = serde_json::json!({
                "type": "hit", "app_id": app, "hit_id": next_uuid(&mut rng), "ts": t,
                "tracker": TRACKERS[rng.random_range(0..TRACKERS.len())],
                "referrer": format!("https://ref.test/{}", rng.random_range(0..5)),
                "ip": ip, "user_agent": ua_browser, "device_id": hit_device,
                "props": {"campaign": format!("c{}", rng.random_range(0..3))},
            });
            // Click pipelines lag: some clicks are delivered hours late, after the app's events.
            let late = rng.random_bool(spec.disorder.clamp(0.0, 1.0));
            let deliver = t + if late {
                rng.random_range(0..4 * 3_600_000)
            } else {
                0
            };
            timeline.push((
                deliver,
                Produced {
                    key: partition_key(&app, parse_ip(&ip), &ua_browser),
                    payload: v.to_string().into_bytes(),
                },
            ));
            t += rng.random_range(0..6 * 3_600_000);
        }
        for _ in 0..rng.random_range(0..=4) {
            t += rng.random_range(0..30 * 3_600_000);
            let v = serde_json::json!({
                "type": "event", "app_id": app, "actor_id": actor, "event_id": next_uuid(&mut rng), "ts": t,
                "name": EVENTS[rng.random_range(0..EVENTS.len())],
                "ip": ip, "user_agent": ua_sdk, "device_id": device_id, "props": {"v": "1"},
            });
            timeline.push((
                t,
                Produced {
                    key: partition_key(&app, parse_ip(&ip), &ua_sdk),
                    payload: v.to_string().into_bytes(),
                },
            ));
        }
    }
    timeline.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.payload.cmp(&b.1.payload)));
    let mut out: Vec<Produced> = timeline.into_iter().map(|(_, p)| p).collect();
    let poison_n = (out.len() as f64 * spec.poison.clamp(0.0, 1.0)).round() as usize;
    let mut bad = poison_payloads();
    bad.shuffle(&mut rng);
    for i in 0..poison_n {
        let at = rng.random_range(0..=out.len());
        out.insert(
            at,
            Produced {
                key: format!("poison-{i}"),
                payload: bad[i % bad.len()].clone(),
            },
        );
    }
    out
}

fn parse_ip(s: &str) -> std::net::IpAddr {
    s.parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// One payload of each poison kind.
pub fn poison_payloads() -> Vec<Vec<u8>> {
    [
        "{not json".to_string(),
        r#"{"type":"click","app_id":"a1"}"#.to_string(),
        r#"{"type":"hit","app_id":"a1","hit_id":"00000000-0000-0000-0000-000000000001","ts":"yesterday","tracker":"fb","ip":"1.2.3.4","user_agent":"x"}"#.to_string(),
        r#"{"type":"event","app_id":"a1","event_id":"00000000-0000-0000-0000-000000000002","ts":1,"name":"install","ip":"1.2.3.4","user_agent":"x"}"#.to_string(),
        r#"{"type":"hit","app_id":"a1","hit_id":"00000000-0000-0000-0000-000000000003","ts":1,"tracker":"fb","ip":"999.1.1.1","user_agent":"x"}"#.to_string(),
        "\u{0}\u{1}binary".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// At-least-once delivery of `traffic`: every valid message is followed by 0 to `max_copies` copies (a
/// producer's retries), each inserted up to `max_gap` messages after the previous one and kept under the
/// original's Kafka key (so it lands on the same partition, as a retry does); every other copy spells its
/// id in upper case (the same id). Poison messages are not copied. Deterministic for a seed.
pub fn with_copies(
    traffic: &[Produced],
    seed: u64,
    max_copies: usize,
    max_gap: usize,
) -> Vec<Produced> {
    let mut rng = StdRng::seed_from_u64(seed);
    // (position, tie-breaker, message): sorting by position interleaves the copies with the originals.
    let mut slots: Vec<(usize, usize, Produced)> = Vec::new();
    for (i, m) in traffic.iter().enumerate() {
        slots.push((i * (max_gap + 1), slots.len(), m.clone()));
        if crate::message::Message::parse(Some(&m.payload)).is_err() {
            continue;
        }
        let mut at = i * (max_gap + 1);
        for c in 0..rng.random_range(0..=max_copies) {
            at += rng.random_range(1..=max_gap.max(1) * (max_gap + 1));
            let payload = if c % 2 == 0 {
                upper_case_id(&m.payload)
            } else {
                m.payload.clone()
            };
            slots.push((
                at,
                slots.len(),
                Produced {
                    key: m.key.clone(),
                    payload,
                },
            ));
        }
    }
    slots.sort_by_key(|s| (s.0, s.1));
    slots.into_iter().map(|s| s.2).collect()
}

/// The payload with its `hit_id` / `event_id` upper-cased (unchanged if it has none).
fn upper_case_id(payload: &[u8]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(payload) else {
        return payload.to_vec();
    };
    for field in ["hit_id", "event_id"] {
        if let Some(serde_json::Value::String(id)) = obj.get_mut(field) {
            *id = id.to_uppercase();
        }
    }
    serde_json::Value::Object(obj).to_string().into_bytes()
}
