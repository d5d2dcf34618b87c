//! The realistic tracking-event generator behind `funnel gen`, the tests and the benchmarks: the canonical
//! `tracking.events`, `tracking.hits` and `tracking.conversions` tables as Cassandra snapshots, written with
//! `sstable-reader`'s SSTable writer, deterministic for a seed and an end time.
//!
//! Shape: each actor belongs to one app and has a Zipf-distributed (s = 2) number of events, scaled to the
//! requested mean, spread over the last `days` days as a funnel-like journey (install → open → signup →
//! purchase … uninstall, with view/add-to-cart filler). Most actors arrive through 1–3 clicks on a tracking
//! link (hits: tracker, referrer, campaign props); the install is attributed to the last click before it
//! (a conversions row). Hits are keyed by a fingerprint of (ip, user agent); ~15% of actors share a
//! fingerprint with another, and fingerprints also collect unattributed noise clicks, so matching hits to
//! events is plausibly ambiguous. Rows carry the table TTL (60 days by default); a few events get a short
//! TTL and are already expired; ~2% are overwritten and ~1% deleted in a later SSTable; ~0.2% of actors are
//! deleted whole (partition tombstone, GDPR-style). SSTable `k` holds what was flushed in the `k`-th time
//! slice, so partitions overlap across SSTables.
//!
//! Nothing is held in memory but per-actor indexes (tens of bytes per actor) and one partition at a time:
//! every SSTable pass regenerates each actor's timeline from its own seeded RNG.

use std::path::PathBuf;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use sstable_reader::writer::{
    schema_from_cql_text, snapshot_dir, table_id, write_snapshot_files, Cell, CellState,
    ColumnContent, ColumnData, Compression, EncodingStats, Expiry, Liveness, Partition, Row,
    SSTableWriter, Unfiltered, WriterError, WriterOptions,
};
use sstable_reader::{composite, murmur3_token, DeletionTime, TableSchema, Version};

mod ring;

use ring::Ring;

pub const KEYSPACE: &str = "tracking";
pub const TABLES: [&str; 3] = ["events", "hits", "conversions"];

const SCHEMA_EVENTS: &str = "CREATE TABLE IF NOT EXISTS tracking.events (
    app_id text, actor_id text, ts timestamp, event_id timeuuid,
    name text, ip inet, user_agent text, props map<text, text>,
    PRIMARY KEY ((app_id, actor_id), ts, event_id)
) WITH CLUSTERING ORDER BY (ts ASC, event_id ASC)
    AND default_time_to_live = 5184000
    AND compression = COMPRESSION;
";
const SCHEMA_HITS: &str = "CREATE TABLE IF NOT EXISTS tracking.hits (
    app_id text, fingerprint text, ts timestamp, hit_id timeuuid,
    tracker text, referrer text, ip inet, user_agent text, props map<text, text>,
    PRIMARY KEY ((app_id, fingerprint), ts, hit_id)
) WITH CLUSTERING ORDER BY (ts ASC, hit_id ASC)
    AND default_time_to_live = 5184000
    AND compression = COMPRESSION;
";
const SCHEMA_CONVERSIONS: &str = "CREATE TABLE IF NOT EXISTS tracking.conversions (
    app_id text, actor_id text, hit_ts timestamp, hit_id timeuuid, event_id timeuuid, event_ts timestamp,
    tracker text, referrer text,
    PRIMARY KEY ((app_id, actor_id), hit_ts, hit_id)
) WITH CLUSTERING ORDER BY (hit_ts ASC, hit_id ASC)
    AND compression = COMPRESSION;
";

/// The CREATE TABLE statement of a canonical table, as written to `schema.cql`.
pub fn table_cql(table: &str, compression: Compression) -> Option<String> {
    let s = match table {
        "events" => SCHEMA_EVENTS,
        "hits" => SCHEMA_HITS,
        "conversions" => SCHEMA_CONVERSIONS,
        _ => return None,
    };
    Some(s.replace("COMPRESSION", &compression.cql_option()))
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub out: PathBuf,
    pub actors: u64,
    pub days: u32,
    /// Mean events per actor.
    pub events_per_actor: f64,
    pub sstables: u32,
    pub compression: Compression,
    pub version: Version,
    pub nodes: u32,
    pub rf: u32,
    pub seed: u64,
    /// End of the generated period ("now"), milliseconds since the epoch.
    pub end_ms: i64,
    /// TTL of events and hits in seconds (0: none).
    pub ttl: u32,
    pub apps: u32,
    pub snapshot_tag: String,
}

/// What was generated for one table (summed over SSTables and nodes, except `live_*`, counted once).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableTally {
    pub table: String,
    pub sstables: u64,
    pub partitions_written: u64,
    /// Row entries written (live, updated and tombstoned; Statistics.db `totalRows`).
    pub rows_written: i64,
    /// Distinct rows alive at the end time after reconciliation (per replica set, i.e. counted once).
    pub live_rows: u64,
    pub live_partitions: u64,
    pub overwritten_rows: u64,
    pub deleted_rows: u64,
    pub expired_rows: u64,
    pub deleted_partitions: u64,
    /// Write timestamps (µs) over all cells, liveness and tombstones (Statistics.db min/max).
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    /// Range of the clustering timestamp (`ts` / `hit_ts`, ms) over live rows.
    pub min_row_ts_ms: Option<i64>,
    pub max_row_ts_ms: Option<i64>,
    pub uncompressed_bytes: u64,
    pub data_bytes: u64,
    pub snapshot_dirs: Vec<PathBuf>,
}

/// What `generate` wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenReport {
    pub tables: Vec<TableTally>,
    pub uncompressed_bytes: u64,
    pub data_bytes: u64,
    pub seconds: f64,
}

const TRACKERS: [(&str, &str); 6] = [
    ("fb-ads", "facebook.com"),
    ("google-uac", "google.com"),
    ("tiktok-spark", "tiktok.com"),
    ("email-spring", "mail.example.com"),
    ("influencer-kay", "instagram.com"),
    ("x-promo", "t.co"),
];
const CAMPAIGNS: [&str; 5] = [
    "spring_sale",
    "retarget_q2",
    "brand_awareness",
    "launch_v3",
    "black_friday",
];
const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 Chrome/123.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 12; moto g) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "Dalvik/2.1.0 (Linux; U; Android 11; Redmi Note 8)",
];
const FILLER: [&str; 3] = ["open", "view_item", "add_to_cart"];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn rng_for(seed: u64, stream: u64, id: u64) -> StdRng {
    StdRng::seed_from_u64(mix(
        seed ^ mix(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ mix(id))
    ))
}

/// A version-1 time UUID for `ts_ms` with random sub-millisecond ticks, clock sequence and node.
fn timeuuid(ts_ms: i64, rng: &mut StdRng) -> [u8; 16] {
    let t = (ts_ms as u64)
        .wrapping_mul(10_000)
        .wrapping_add(0x01B2_1DD2_1381_4000)
        + rng.random_range(0..10_000u64);
    let mut u = [0u8; 16];
    u[0..4].copy_from_slice(&((t & 0xffff_ffff) as u32).to_be_bytes());
    u[4..6].copy_from_slice(&(((t >> 32) & 0xffff) as u16).to_be_bytes());
    u[6..8].copy_from_slice(&((((t >> 48) & 0x0fff) as u16) | 0x1000).to_be_bytes());
    let tail: u64 = rng.random();
    u[8..16].copy_from_slice(&tail.to_be_bytes());
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Cassandra's `TimeUUIDType` order: timestamp, then the remaining bytes compared as signed bytes.
fn timeuuid_key(u: &[u8; 16]) -> (u64, [i8; 8]) {
    let msb = u64::from_be_bytes([u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7]]);
    let ts = (msb << 48) | ((msb << 16) & 0xffff_0000_0000) | (msb >> 32);
    let mut lsb = [0i8; 8];
    for (d, s) in lsb.iter_mut().zip(&u[8..]) {
        *d = *s as i8;
    }
    (ts, lsb)
}

/// How a row's story ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Live,
    /// Re-written with new props in SSTable slice `k` at `write_us`.
    Overwritten {
        k: u32,
        write_us: i64,
    },
    /// Deleted in slice `k` at `write_us`.
    Deleted {
        k: u32,
        write_us: i64,
    },
    /// Written with a short TTL that has passed.
    Expired,
}

#[derive(Debug, Clone)]
struct Event {
    ts_ms: i64,
    id: [u8; 16],
    name: &'static str,
    write_us: i64,
    props: Vec<(String, String)>,
    fate: Fate,
}

#[derive(Debug, Clone)]
struct Hit {
    ts_ms: i64,
    id: [u8; 16],
    tracker: usize,
    campaign: usize,
    write_us: i64,
    fate: Fate,
}

struct Conversion {
    hit_ts_ms: i64,
    hit_id: [u8; 16],
    event_id: [u8; 16],
    event_ts_ms: i64,
    tracker: usize,
    write_us: i64,
}

/// One actor's deterministic timeline.
struct Actor {
    app: u32,
    id: String,
    fingerprint: u32,
    events: Vec<Event>,
    hits: Vec<Hit>,
    conversions: Vec<Conversion>,
    /// Partition deletion (GDPR erase) at the end time.
    erased: bool,
}

/// Per-run constants shared by every pass.
struct World {
    o: GenOptions,
    start_ms: i64,
    span_ms: i64,
    fingerprints: u32,
    zipf: Zipf<f64>,
    zipf_scale: f64,
}

impl World {
    fn new(o: &GenOptions) -> Result<World, WriterError> {
        if o.actors == 0
            || o.days == 0
            || o.sstables == 0
            || o.apps == 0
            || o.events_per_actor <= 0.0
        {
            return Err(WriterError::InvalidOption(
                "actors, days, sstables, apps and events per actor must be positive".into(),
            ));
        }
        if o.actors > u32::MAX as u64 {
            return Err(WriterError::InvalidOption(format!(
                "at most {} actors",
                u32::MAX
            )));
        }
        let n = (o.events_per_actor * 50.0).max(2.0);
        let s = 2.0;
        let zipf = Zipf::new(n, s).map_err(|e| WriterError::InvalidOption(format!("zipf: {e}")))?;
        let (mut num, mut den) = (0.0, 0.0);
        for k in 1..=(n as u64) {
            let k = k as f64;
            num += k.powf(1.0 - s);
            den += k.powf(-s);
        }
        let span_ms = o.days as i64 * 86_400_000;
        Ok(World {
            start_ms: o.end_ms - span_ms,
            span_ms,
            fingerprints: ((o.actors * 85 / 100).max(1)) as u32,
            zipf,
            zipf_scale: o.events_per_actor / (num / den),
            o: o.clone(),
        })
    }

    fn slice_of(&self, ts_ms: i64) -> u32 {
        let k = ((ts_ms - self.start_ms).max(0) as i128 * self.o.sstables as i128
            / self.span_ms as i128) as u32;
        k.min(self.o.sstables - 1)
    }

    fn app_name(app: u32) -> String {
        format!("app-{:03}", app + 1)
    }

    fn fingerprint_name(&self, fp: u32) -> String {
        format!("{:016x}", mix(self.o.seed ^ 0xf1_0000_0000 ^ fp as u64))
    }

    fn fp_ip(&self, fp: u32) -> [u8; 4] {
        let h = mix(self.o.seed ^ 0x1b ^ fp as u64);
        [
            10 + (h % 200) as u8,
            (h >> 8) as u8,
            (h >> 16) as u8,
            1 + ((h >> 24) % 254) as u8,
        ]
    }

    fn fp_ua(&self, fp: u32) -> &'static str {
        USER_AGENTS[(mix(self.o.seed ^ 0x2c ^ fp as u64) % USER_AGENTS.len() as u64) as usize]
    }

    fn actor_app(&self, a: u64) -> u32 {
        (mix(self.o.seed ^ 0xa99 ^ a) % self.o.apps as u64) as u32
    }

    fn actor_fp(&self, a: u64) -> u32 {
        (mix(self.o.seed ^ 0xf9 ^ a) % self.fingerprints as u64) as u32
    }

    fn actor_id(&self, a: u64) -> String {
        format!("u-{:012x}", mix(self.o.seed ^ 0xac ^ a) & 0xffff_ffff_ffff)
    }

    /// Later slice for an overwrite/delete of a row first written in slice `k`.
    fn later(&self, k: u32, rng: &mut StdRng) -> u32 {
        (k + rng.random_range(1..=2)).min(self.o.sstables - 1)
    }

    fn fate(&self, ts_ms: i64, k: u32, ttl_applies: bool, rng: &mut StdRng) -> Fate {
        let r: f64 = rng.random();
        let end = self.o.end_ms;
        if r < 0.02 {
            let lk = self.later(k, rng);
            let when = (ts_ms + rng.random_range(60_000..86_400_000)).min(end - 1);
            Fate::Overwritten {
                k: lk,
                write_us: when.max(ts_ms + 1) * 1000 + 7,
            }
        } else if r < 0.03 {
            let lk = self.later(k, rng);
            let when = (ts_ms + rng.random_range(60_000..172_800_000)).min(end - 1);
            Fate::Deleted {
                k: lk,
                write_us: when.max(ts_ms + 1) * 1000 + 9,
            }
        } else if ttl_applies && r < 0.04 && ts_ms < end - 2 * 86_400_000 {
            Fate::Expired
        } else {
            Fate::Live
        }
    }

    fn actor(&self, a: u64) -> Actor {
        let mut rng = rng_for(self.o.seed, 1, a);
        let app = self.actor_app(a);
        let fingerprint = self.actor_fp(a);
        let n = ((self.zipf.sample(&mut rng) * self.zipf_scale).round() as usize)
            .clamp(1, (self.o.events_per_actor * 60.0) as usize + 1);
        let clicked = rng.random_bool(0.7);
        let ttl = self.o.ttl > 0;
        // first activity: anywhere in the period, leaving room for the journey
        let first = self.start_ms + rng.random_range(0..self.span_ms.max(1));
        let mut hits = Vec::new();
        if clicked {
            let count = rng.random_range(1..=3);
            let mut t = first - rng.random_range(60_000..172_800_000);
            let tracker = rng.random_range(0..TRACKERS.len());
            for _ in 0..count {
                let ts_ms = t.max(self.start_ms);
                let id = timeuuid(ts_ms, &mut rng);
                let k = self.slice_of(ts_ms);
                let fate = self.fate(ts_ms, k, ttl, &mut rng);
                hits.push(Hit {
                    ts_ms,
                    id,
                    tracker,
                    campaign: rng.random_range(0..CAMPAIGNS.len()),
                    write_us: ts_ms * 1000 + rng.random_range(0..5_000_000),
                    fate,
                });
                t += rng.random_range(1_000..3_600_000);
            }
            hits.sort_by_key(|h| h.ts_ms);
        }
        let mut events: Vec<Event> = Vec::with_capacity(n);
        let mut t = first;
        let signup = rng.random_bool(0.45);
        let purchases = if signup && rng.random_bool(0.45) {
            rng.random_range(1..=3)
        } else {
            0
        };
        let uninstall = rng.random_bool(0.08);
        let mut last_hit: Option<usize> = hits.len().checked_sub(1);
        for i in 0..n {
            if t >= self.o.end_ms {
                break;
            }
            let name: &'static str = if i == 0 {
                "install"
            } else if i == n - 1 && uninstall && n > 2 {
                "uninstall"
            } else if i == 2 && signup {
                "signup"
            } else if signup
                && purchases > 0
                && i > 2
                && i % 4 == 3
                && events.iter().filter(|e| e.name == "purchase").count() < purchases
            {
                "purchase"
            } else {
                FILLER[rng.random_range(0..FILLER.len())]
            };
            let id = timeuuid(t, &mut rng);
            let k = self.slice_of(t);
            let fate = self.fate(t, k, ttl, &mut rng);
            let mut props = vec![
                (
                    "app_version".to_string(),
                    format!("3.{}.{}", rng.random_range(0..9), rng.random_range(0..20)),
                ),
                (
                    "os".to_string(),
                    if self.fp_ua(fingerprint).contains("Android")
                        || self.fp_ua(fingerprint).contains("Dalvik")
                    {
                        "android".into()
                    } else {
                        "ios".into()
                    },
                ),
            ];
            if let (Some(h), "install") = (last_hit, name) {
                let h = &hits[h];
                props.push(("campaign".into(), CAMPAIGNS[h.campaign].into()));
                props.push(("tracker".into(), TRACKERS[h.tracker].0.into()));
            }
            if name == "purchase" {
                props.push((
                    "revenue".into(),
                    format!(
                        "{}.{:02}",
                        rng.random_range(1..200),
                        rng.random_range(0..100)
                    ),
                ));
                props.push(("currency".into(), "EUR".into()));
            }
            props.sort();
            events.push(Event {
                ts_ms: t,
                id,
                name,
                write_us: t * 1000 + rng.random_range(0..5_000_000),
                props,
                fate,
            });
            // gaps: exponential-ish, mean ~ a few hours, heavier for later steps
            let gap = (-(1.0 - rng.random::<f64>()).ln() * 4.0 * 3_600_000.0) as i64 + 1;
            t += gap;
        }
        let mut conversions = Vec::new();
        if let (Some(h), Some(install)) = (last_hit.take(), events.first()) {
            let h = &hits[h];
            if install.ts_ms - h.ts_ms <= 7 * 86_400_000 {
                conversions.push(Conversion {
                    hit_ts_ms: h.ts_ms,
                    hit_id: h.id,
                    event_id: install.id,
                    event_ts_ms: install.ts_ms,
                    tracker: h.tracker,
                    write_us: install.write_us + 1_000_000,
                });
            }
        }
        let erased = rng.random_bool(0.002);
        Actor {
            app,
            id: self.actor_id(a),
            fingerprint,
            events,
            hits,
            conversions,
            erased,
        }
    }

    /// Unattributed clicks a fingerprint collected in an app.
    fn noise_hits(&self, app: u32, fp: u32) -> Vec<Hit> {
        let mut rng = rng_for(self.o.seed, 2, ((app as u64) << 32) | fp as u64);
        let n = [0usize, 0, 1, 1, 2][rng.random_range(0..5)];
        let ttl = self.o.ttl > 0;
        (0..n)
            .map(|_| {
                let ts_ms = self.start_ms + rng.random_range(0..self.span_ms.max(1));
                let id = timeuuid(ts_ms, &mut rng);
                let k = self.slice_of(ts_ms);
                let fate = self.fate(ts_ms, k, ttl, &mut rng);
                Hit {
                    ts_ms,
                    id,
                    tracker: rng.random_range(0..TRACKERS.len()),
                    campaign: rng.random_range(0..CAMPAIGNS.len()),
                    write_us: ts_ms * 1000 + rng.random_range(0..5_000_000),
                    fate,
                }
            })
            .collect()
    }
}

/// Column index by name in a schema's regular columns.
fn col(schema: &TableSchema, name: &str) -> Result<usize, WriterError> {
    schema
        .regulars
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| WriterError::InvalidData(format!("no column {name}")))
}

struct RowBuilder {
    write_us: i64,
    expiry: Option<Expiry>,
    columns: Vec<ColumnData>,
}

impl RowBuilder {
    fn new(write_us: i64, ttl: u32) -> Self {
        let expiry = (ttl > 0).then(|| Expiry {
            ttl: ttl as i32,
            local_expiration_time: write_us / 1_000_000 + ttl as i64,
        });
        RowBuilder {
            write_us,
            expiry,
            columns: Vec::new(),
        }
    }
    fn state(&self) -> CellState {
        match self.expiry {
            Some(e) => CellState::Expiring(e),
            None => CellState::Live,
        }
    }
    fn simple(mut self, column: usize, value: Vec<u8>) -> Self {
        self.columns.push(ColumnData {
            column,
            content: ColumnContent::Simple(Cell {
                timestamp: self.write_us,
                state: self.state(),
                path: None,
                value,
            }),
        });
        self
    }
    /// A non-frozen map as an INSERT writes it: a collection tombstone at `ts - 1`, then one cell per entry.
    fn map(mut self, column: usize, entries: &[(String, String)]) -> Self {
        let state = self.state();
        let cells = entries
            .iter()
            .map(|(k, v)| Cell {
                timestamp: self.write_us,
                state,
                path: Some(k.as_bytes().to_vec()),
                value: v.as_bytes().to_vec(),
            })
            .collect();
        let deletion = DeletionTime {
            marked_for_delete_at: self.write_us - 1,
            local_deletion_time: self.write_us / 1_000_000,
        };
        self.columns.push(ColumnData {
            column,
            content: ColumnContent::Complex { deletion, cells },
        });
        self
    }
    fn build(mut self, clustering: Vec<Option<Vec<u8>>>) -> Row {
        self.columns.sort_by_key(|c| c.column);
        Row {
            clustering,
            liveness: Some(Liveness {
                timestamp: self.write_us,
                expiry: self.expiry,
            }),
            deletion: DeletionTime::LIVE,
            shadowable: DeletionTime::LIVE,
            columns: self.columns,
        }
    }
}

fn tombstone_row(clustering: Vec<Option<Vec<u8>>>, write_us: i64) -> Row {
    let mut r = Row::new(clustering);
    r.deletion = DeletionTime {
        marked_for_delete_at: write_us,
        local_deletion_time: write_us / 1_000_000,
    };
    r
}

/// What a row contributes to slice `k`: the original write (if in `k`), and/or its later version.
enum RowVersion {
    Original,
    Overwrite(i64),
    Delete(i64),
}

fn versions_in(first_k: u32, fate: Fate, k: u32) -> Option<RowVersion> {
    let later = match fate {
        Fate::Overwritten { k: lk, write_us } => Some((lk, RowVersion::Overwrite(write_us))),
        Fate::Deleted { k: lk, write_us } => Some((lk, RowVersion::Delete(write_us))),
        _ => None,
    };
    match later {
        // the later version supersedes the original within the same flush
        Some((lk, v)) if lk == k => Some(v),
        _ if first_k == k => Some(RowVersion::Original),
        _ => None,
    }
}

struct TableWriters<'s> {
    writers: Vec<Option<SSTableWriter<'s>>>,
    dirs: Vec<PathBuf>,
}

/// Generates the dataset; `progress` receives the uncompressed bytes written so far.
pub fn generate(o: &GenOptions, progress: &mut dyn FnMut(u64)) -> Result<GenReport, WriterError> {
    let started = Instant::now();
    let world = World::new(o)?;
    let ring = Ring::new(o.nodes, o.rf)?;
    let ttl_opt = o.ttl;
    let end_s = o.end_ms / 1000;
    let created_at = format!("{}", o.end_ms);

    // Actor order by token of (app, actor) — shared by events and conversions.
    let mut actor_order: Vec<(i64, u32)> = (0..o.actors)
        .map(|a| {
            let key = composite(&[
                World::app_name(world.actor_app(a)).as_bytes(),
                world.actor_id(a).as_bytes(),
            ]);
            (murmur3_token(&key), a as u32)
        })
        .collect();
    actor_order.sort_unstable();
    // Hits partitions: (app, fingerprint) → actors, in token order.
    let mut by_fp: Vec<(u64, u32)> = (0..o.actors)
        .map(|a| {
            (
                ((world.actor_app(a) as u64) << 32) | world.actor_fp(a) as u64,
                a as u32,
            )
        })
        .collect();
    by_fp.sort_unstable();
    let mut fp_keys: Vec<(i64, u64, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < by_fp.len() {
        let mut j = i;
        while j < by_fp.len() && by_fp[j].0 == by_fp[i].0 {
            j += 1;
        }
        let (app, fp) = ((by_fp[i].0 >> 32) as u32, by_fp[i].0 as u32);
        let key = composite(&[
            World::app_name(app).as_bytes(),
            world.fingerprint_name(fp).as_bytes(),
        ]);
        fp_keys.push((murmur3_token(&key), by_fp[i].0, i, j));
        i = j;
    }
    fp_keys.sort_unstable();

    let mut report = GenReport::default();
    let mut bytes_done = 0u64;
    for table in TABLES {
        let cql = table_cql(table, o.compression)
            .ok_or_else(|| WriterError::InvalidData(table.into()))?;
        let schema = schema_from_cql_text(&cql, table)?;
        let id = table_id(KEYSPACE, table, o.seed);
        let mut tally = TableTally {
            table: table.to_string(),
            ..Default::default()
        };
        let nodes: Vec<Option<u32>> = if o.nodes > 1 {
            (0..o.nodes).map(Some).collect()
        } else {
            vec![None]
        };
        let dirs: Vec<PathBuf> = nodes
            .iter()
            .map(|n| snapshot_dir(&o.out, *n, KEYSPACE, table, &id, &o.snapshot_tag))
            .collect();
        let mut data_files: Vec<Vec<PathBuf>> = vec![Vec::new(); dirs.len()];
        let expected = match table {
            "hits" => fp_keys.len() as u64,
            _ => o.actors,
        } * o.rf as u64
            / o.nodes as u64
            / o.sstables.max(1) as u64
            * 2;
        let (c_ip, c_name, c_ua, c_props, c_tracker, c_referrer, c_event_id, c_event_ts) =
            match table {
                "events" => (
                    col(&schema, "ip")?,
                    col(&schema, "name")?,
                    col(&schema, "user_agent")?,
                    col(&schema, "props")?,
                    0,
                    0,
                    0,
                    0,
                ),
                "hits" => (
                    col(&schema, "ip")?,
                    0,
                    col(&schema, "user_agent")?,
                    col(&schema, "props")?,
                    col(&schema, "tracker")?,
                    col(&schema, "referrer")?,
                    0,
                    0,
                ),
                _ => (
                    0,
                    0,
                    0,
                    0,
                    col(&schema, "tracker")?,
                    col(&schema, "referrer")?,
                    col(&schema, "event_id")?,
                    col(&schema, "event_ts")?,
                ),
            };
        let table_ttl = if table == "conversions" { 0 } else { ttl_opt };
        for k in 0..o.sstables {
            let mut tw = TableWriters {
                writers: Vec::new(),
                dirs: dirs.clone(),
            };
            for d in &tw.dirs {
                let mut opts = WriterOptions::new(o.version, o.compression);
                opts.expected_partitions = expected.max(16);
                // minimums: nothing is written before the period start (minus the click look-back)
                opts.encoding = EncodingStats {
                    min_timestamp: (world.start_ms - 3 * 86_400_000) * 1000,
                    min_local_deletion_time: (world.start_ms - 3 * 86_400_000) / 1000,
                    min_ttl: 1,
                };
                tw.writers
                    .push(Some(SSTableWriter::create(d, k + 1, &schema, opts)?));
            }
            let last_slice = k == o.sstables - 1;
            let mut emit =
                |p: &Partition, token: i64, tw: &mut TableWriters<'_>| -> Result<(), WriterError> {
                    for n in ring.replicas(token) {
                        let idx = if o.nodes > 1 { n as usize } else { 0 };
                        if let Some(w) = tw.writers[idx].as_mut() {
                            let before = w.data_position();
                            w.append(p)?;
                            bytes_done += w.data_position() - before;
                        }
                    }
                    progress(bytes_done);
                    Ok(())
                };
            match table {
                "events" | "conversions" => {
                    for &(token, a) in &actor_order {
                        let actor = world.actor(a as u64);
                        let key = composite(&[
                            World::app_name(actor.app).as_bytes(),
                            actor.id.as_bytes(),
                        ]);
                        let mut p = Partition::new(key);
                        if actor.erased && last_slice {
                            p.deletion = DeletionTime {
                                marked_for_delete_at: o.end_ms * 1000 - 1,
                                local_deletion_time: end_s - 1,
                            };
                        }
                        if table == "events" {
                            let ip = world.fp_ip(actor.fingerprint).to_vec();
                            let ua = world.fp_ua(actor.fingerprint).as_bytes().to_vec();
                            let mut evs: Vec<&Event> = actor.events.iter().collect();
                            evs.sort_by_key(|e| (e.ts_ms, timeuuid_key(&e.id)));
                            for e in evs {
                                let ck =
                                    vec![Some(e.ts_ms.to_be_bytes().to_vec()), Some(e.id.to_vec())];
                                let first_k = world.slice_of(e.ts_ms);
                                let row_ttl = if e.fate == Fate::Expired {
                                    3600
                                } else {
                                    table_ttl
                                };
                                let row = match versions_in(first_k, e.fate, k) {
                                    None => continue,
                                    Some(RowVersion::Original) => {
                                        RowBuilder::new(e.write_us, row_ttl)
                                            .simple(c_ip, ip.clone())
                                            .simple(c_name, e.name.as_bytes().to_vec())
                                            .simple(c_ua, ua.clone())
                                            .map(c_props, &e.props)
                                            .build(ck)
                                    }
                                    Some(RowVersion::Overwrite(w)) => {
                                        let mut props = e.props.clone();
                                        props.push(("corrected".into(), "true".into()));
                                        props.sort();
                                        RowBuilder::new(w, row_ttl)
                                            .simple(c_ip, ip.clone())
                                            .simple(c_name, e.name.as_bytes().to_vec())
                                            .simple(c_ua, ua.clone())
                                            .map(c_props, &props)
                                            .build(ck)
                                    }
                                    Some(RowVersion::Delete(w)) => tombstone_row(ck, w),
                                };
                                p.unfiltereds.push(Unfiltered::Row(row));
                            }
                        } else {
                            for c in &actor.conversions {
                                if world.slice_of(c.event_ts_ms) != k {
                                    continue;
                                }
                                let ck = vec![
                                    Some(c.hit_ts_ms.to_be_bytes().to_vec()),
                                    Some(c.hit_id.to_vec()),
                                ];
                                let (tracker, referrer) = TRACKERS[c.tracker];
                                p.unfiltereds.push(Unfiltered::Row(
                                    RowBuilder::new(c.write_us, 0)
                                        .simple(c_event_id, c.event_id.to_vec())
                                        .simple(c_event_ts, c.event_ts_ms.to_be_bytes().to_vec())
                                        .simple(c_tracker, tracker.as_bytes().to_vec())
                                        .simple(c_referrer, referrer.as_bytes().to_vec())
                                        .build(ck),
                                ));
                            }
                        }
                        if !p.unfiltereds.is_empty() || !p.deletion.is_live() {
                            emit(&p, token, &mut tw)?;
                        }
                    }
                }
                _ => {
                    for &(token, key, from, to) in &fp_keys {
                        let (app, fp) = ((key >> 32) as u32, key as u32);
                        let pk = composite(&[
                            World::app_name(app).as_bytes(),
                            world.fingerprint_name(fp).as_bytes(),
                        ]);
                        let mut hits: Vec<Hit> = world.noise_hits(app, fp);
                        for &(_, a) in &by_fp[from..to] {
                            hits.extend(world.actor(a as u64).hits);
                        }
                        hits.sort_by_key(|h| (h.ts_ms, timeuuid_key(&h.id)));
                        hits.dedup_by_key(|h| (h.ts_ms, h.id));
                        let ip = world.fp_ip(fp).to_vec();
                        let ua = world.fp_ua(fp).as_bytes().to_vec();
                        let mut p = Partition::new(pk);
                        for h in &hits {
                            let ck =
                                vec![Some(h.ts_ms.to_be_bytes().to_vec()), Some(h.id.to_vec())];
                            let (tracker, referrer) = TRACKERS[h.tracker];
                            let props = vec![
                                ("adgroup".to_string(), format!("ag-{}", h.campaign * 7 % 11)),
                                ("campaign".to_string(), CAMPAIGNS[h.campaign].to_string()),
                            ];
                            let row_ttl = if h.fate == Fate::Expired {
                                3600
                            } else {
                                table_ttl
                            };
                            let build = |w: i64, props: &[(String, String)]| {
                                RowBuilder::new(w, row_ttl)
                                    .simple(c_ip, ip.clone())
                                    .simple(c_tracker, tracker.as_bytes().to_vec())
                                    .simple(c_referrer, referrer.as_bytes().to_vec())
                                    .simple(c_ua, ua.clone())
                                    .map(c_props, props)
                                    .build(ck.clone())
                            };
                            let row = match versions_in(world.slice_of(h.ts_ms), h.fate, k) {
                                None => continue,
                                Some(RowVersion::Original) => build(h.write_us, &props),
                                Some(RowVersion::Overwrite(w)) => {
                                    let mut props = props.clone();
                                    props.push(("dedup".into(), "merged".into()));
                                    build(w, &props)
                                }
                                Some(RowVersion::Delete(w)) => tombstone_row(ck, w),
                            };
                            p.unfiltereds.push(Unfiltered::Row(row));
                        }
                        if !p.unfiltereds.is_empty() {
                            emit(&p, token, &mut tw)?;
                        }
                    }
                }
            }
            for (n, w) in tw.writers.iter_mut().enumerate() {
                let Some(w) = w.take() else { continue };
                if w.partitions() == 0 {
                    // an empty flush writes no SSTable: remove what was created
                    let written = w.finish()?;
                    for f in written.files {
                        let _ = std::fs::remove_file(f);
                    }
                    continue;
                }
                let written = w.finish()?;
                tally.sstables += 1;
                tally.partitions_written += written.partitions;
                tally.rows_written += written.rows;
                tally.uncompressed_bytes += written.uncompressed_bytes;
                tally.data_bytes += written.data_bytes;
                tally.min_timestamp = match (tally.min_timestamp, written.min_timestamp) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                tally.max_timestamp = match (tally.max_timestamp, written.max_timestamp) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                data_files[n].push(written.data_path);
            }
        }
        for (n, d) in dirs.iter().enumerate() {
            std::fs::create_dir_all(d).map_err(|source| WriterError::Io {
                path: d.to_path_buf(),
                source,
            })?;
            write_snapshot_files(d, &data_files[n], &created_at, &cql)?;
        }
        tally.snapshot_dirs = dirs;
        // Logical tally: rows alive at the end time, counted once.
        count_live(
            &world,
            table,
            &actor_order,
            &fp_keys,
            &by_fp,
            end_s,
            &mut tally,
        );
        report.uncompressed_bytes += tally.uncompressed_bytes;
        report.data_bytes += tally.data_bytes;
        report.tables.push(tally);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn count_live(
    world: &World,
    table: &str,
    actor_order: &[(i64, u32)],
    fp_keys: &[(i64, u64, usize, usize)],
    by_fp: &[(u64, u32)],
    end_s: i64,
    t: &mut TableTally,
) {
    let ttl = world.o.ttl as i64;
    let alive = |fate: Fate, write_us: i64, t: &mut TableTally| -> bool {
        match fate {
            Fate::Deleted { .. } => {
                t.deleted_rows += 1;
                false
            }
            Fate::Expired => {
                t.expired_rows += 1;
                false
            }
            Fate::Overwritten { write_us: w, .. } => {
                t.overwritten_rows += 1;
                ttl == 0 || w / 1_000_000 + ttl > end_s
            }
            Fate::Live => {
                let ok = ttl == 0 || write_us / 1_000_000 + ttl > end_s;
                if !ok {
                    t.expired_rows += 1;
                }
                ok
            }
        }
    };
    let note = |ts: i64, t: &mut TableTally| {
        t.min_row_ts_ms = Some(t.min_row_ts_ms.map_or(ts, |m| m.min(ts)));
        t.max_row_ts_ms = Some(t.max_row_ts_ms.map_or(ts, |m| m.max(ts)));
    };
    match table {
        "events" | "conversions" => {
            for &(_, a) in actor_order {
                let actor = world.actor(a as u64);
                if actor.erased {
                    t.deleted_partitions += 1;
                    continue;
                }
                let mut live = 0;
                if table == "events" {
                    for e in &actor.events {
                        if alive(e.fate, e.write_us, t) {
                            live += 1;
                            note(e.ts_ms, t);
                        }
                    }
                } else {
                    for c in &actor.conversions {
                        live += 1;
                        note(c.hit_ts_ms, t);
                    }
                }
                t.live_rows += live;
                t.live_partitions += u64::from(live > 0);
            }
        }
        _ => {
            for &(_, key, from, to) in fp_keys {
                let (app, fp) = ((key >> 32) as u32, key as u32);
                let mut hits = world.noise_hits(app, fp);
                for &(_, a) in &by_fp[from..to] {
                    hits.extend(world.actor(a as u64).hits);
                }
                hits.sort_by_key(|h| (h.ts_ms, timeuuid_key(&h.id)));
                hits.dedup_by_key(|h| (h.ts_ms, h.id));
                let mut live = 0;
                for h in &hits {
                    if alive(h.fate, h.write_us, t) {
                        live += 1;
                        note(h.ts_ms, t);
                    }
                }
                t.live_rows += live;
                t.live_partitions += u64::from(live > 0);
            }
        }
    }
}

/// One live event of [`live_timelines`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub ts_ms: i64,
    pub name: String,
    pub props: Vec<(String, String)>,
}

/// One live conversion (attributed hit) of [`live_timelines`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConversion {
    pub hit_ts_ms: i64,
    pub event_ts_ms: i64,
    pub tracker: String,
    pub referrer: String,
}

/// An actor's rows as Cassandra answers them at the end time (after overwrites, deletions, TTLs and erasure).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveActor {
    pub app: String,
    pub actor: String,
    /// The `ip` of all the actor's events (its device's), as CQL renders an inet: `10.1.2.3`.
    pub ip: String,
    pub events: Vec<LiveEvent>,
    pub conversions: Vec<LiveConversion>,
}

/// The generator's own truth for `events` and `conversions`: every actor's live rows at `end_ms`, computed
/// from the generator's timelines (not from the files), for end-to-end tests of readers and funnels.
pub fn live_timelines(o: &GenOptions) -> Result<Vec<LiveActor>, WriterError> {
    let world = World::new(o)?;
    let end_s = o.end_ms / 1000;
    let ttl = o.ttl as i64;
    let mut out = Vec::new();
    for a in 0..o.actors {
        let actor = world.actor(a);
        if actor.erased {
            continue;
        }
        let mut events = Vec::new();
        for e in &actor.events {
            let (alive, corrected) = match e.fate {
                Fate::Live => (ttl == 0 || e.write_us / 1_000_000 + ttl > end_s, false),
                Fate::Overwritten { write_us, .. } => {
                    (ttl == 0 || write_us / 1_000_000 + ttl > end_s, true)
                }
                Fate::Deleted { .. } | Fate::Expired => (false, false),
            };
            if !alive {
                continue;
            }
            let mut props = e.props.clone();
            if corrected {
                props.push(("corrected".into(), "true".into()));
                props.sort();
            }
            events.push(LiveEvent {
                ts_ms: e.ts_ms,
                name: e.name.to_string(),
                props,
            });
        }
        let conversions = actor
            .conversions
            .iter()
            .map(|c| LiveConversion {
                hit_ts_ms: c.hit_ts_ms,
                event_ts_ms: c.event_ts_ms,
                tracker: TRACKERS[c.tracker].0.to_string(),
                referrer: TRACKERS[c.tracker].1.to_string(),
            })
            .collect();
        let ip = world
            .fp_ip(actor.fingerprint)
            .map(|b| b.to_string())
            .join(".");
        out.push(LiveActor {
            app: World::app_name(actor.app),
            actor: actor.id,
            ip,
            events,
            conversions,
        });
    }
    Ok(out)
}

/// A rough uncompressed size estimate (for progress bars): ~300 bytes per event and hit row.
pub fn estimate_bytes(o: &GenOptions) -> u64 {
    let rows = o.actors as f64 * (o.events_per_actor + 2.0) * o.rf as f64;
    (rows * 300.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeuuid_order_follows_time() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = timeuuid(1_000, &mut rng);
        let b = timeuuid(2_000, &mut rng);
        assert!(timeuuid_key(&a) < timeuuid_key(&b));
        assert_eq!(a[6] >> 4, 1);
        assert_eq!(a[8] & 0xc0, 0x80);
    }

    #[test]
    fn versions_follow_the_fate() {
        assert!(matches!(
            versions_in(1, Fate::Live, 1),
            Some(RowVersion::Original)
        ));
        assert!(versions_in(1, Fate::Live, 2).is_none());
        let f = Fate::Deleted { k: 3, write_us: 5 };
        assert!(matches!(versions_in(1, f, 1), Some(RowVersion::Original)));
        assert!(matches!(versions_in(1, f, 3), Some(RowVersion::Delete(5))));
        let f = Fate::Overwritten { k: 1, write_us: 5 };
        assert!(matches!(
            versions_in(1, f, 1),
            Some(RowVersion::Overwrite(5))
        ));
    }
}
