//! What Cassandra accepts, computed the way Cassandra computes it, for checking the store's requests
//! ([`crate::cql_session::Request`]) without a server. Each rule cites where Cassandra enforces it:
//!
//! - **Batch size** (`BatchStatement.verifyBatchSize`): a batch's mutations are grouped by partition key
//!   (one `Mutation` per keyspace and key, whatever the tables); a batch of one mutation is never checked
//!   (CASSANDRA-10876). Otherwise the sum of `PartitionUpdate.dataSize()` over its mutations is compared
//!   with `batch_size_warn_threshold` ([`BATCH_WARN_BYTES`], a client warning) and
//!   `batch_size_fail_threshold` ([`BATCH_FAIL_BYTES`], "Batch too large"). A row's data size is its
//!   clustering values, its liveness info (timestamp; TTL and expiry too when expiring) and, per cell,
//!   timestamp + TTL + local deletion time + the value (`AbstractCell.dataSize`); a deletion is 12 bytes.
//!   The partition key is not counted. The store keeps every batch under the warn threshold.
//! - **Unlogged batches** span one partition (`verifyBatchType` warns past one; the store allows none).
//!   A conditional batch must be one partition (`makeCasRequest` rejects others).
//! - **One mutation** must fit half a commit log segment ([`MAX_MUTATION_BYTES`], `max_mutation_size`).
//! - **TTL**: at most 20 years ([`MAX_TTL_S`], `Attributes.MAX_TTL`), and the expiry `now + ttl` at most
//!   2038-01-19T03:14:06Z ([`MAX_DELETION_TIME_S`], `Cell.MAX_DELETION_TIME`): Cassandra 4.1, and 5.0 in
//!   its default storage compatibility mode, reject later expiries (`ExpirationDateOverflowHandling`,
//!   policy `REJECT`). 0 means "never expires".
//! - **Reads** name a whole partition key with `=`; `ALLOW FILTERING` only filters inside one partition.
//!
//! [`Ledger`] follows the writes of a recorded load and keeps, per partition, the live rows, their bytes and
//! the tombstones a read of the partition would scan (`tombstone_warn_threshold`,
//! [`TOMBSTONE_WARN`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::cql_session::{BatchKind, Request, Value};
use crate::cql_statements::{Stmt, TABLES};
pub use crate::cql_statements::{MAX_DELETION_TIME_S, MAX_TTL_S};

/// `batch_size_warn_threshold` default: 5 KiB.
pub const BATCH_WARN_BYTES: usize = 5 * 1024;
/// `batch_size_fail_threshold` default: 50 KiB.
pub const BATCH_FAIL_BYTES: usize = 50 * 1024;
/// `max_mutation_size`: half the default 32 MiB commit log segment.
pub const MAX_MUTATION_BYTES: usize = 16 * 1024 * 1024;
/// `tombstone_warn_threshold` default.
pub const TOMBSTONE_WARN: usize = 1000;

/// Bytes of a cell beside its value: timestamp (8), TTL (4), local deletion time (4).
const CELL_OVERHEAD: usize = 16;
/// Bytes of a row's liveness info: its timestamp, plus TTL and expiry when it expires.
const LIVENESS: usize = 8;
const LIVENESS_EXPIRING: usize = 16;
/// Bytes of a deletion (a `DeletionTime`: timestamp and local deletion time).
const DELETION: usize = 12;

/// One table of the store's DDL.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// Column name → CQL type.
    pub columns: BTreeMap<String, String>,
    pub partition_key: Vec<String>,
    pub clustering: Vec<String>,
    /// `default_time_to_live` (seconds; 0: none): the TTL of a write without `USING TTL`.
    pub default_ttl_s: i64,
}

/// Tables by name, parsed from [`TABLES`].
pub fn schema() -> BTreeMap<String, Table> {
    schema_with(&[])
}

/// [`schema`] and the tables of `extra` DDL (`CREATE TABLE … {ks}.name (…)`): tables other clients create
/// in their own keyspace, such as the stream's raw rows.
pub fn schema_with(extra: &[&str]) -> BTreeMap<String, Table> {
    TABLES
        .iter()
        .chain(extra)
        .filter_map(|d| parse_table(d))
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// Split at commas outside `(…)` and `<…>`.
fn split_top(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0i32, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn names(list: &str) -> Vec<String> {
    list.trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_table(ddl: &str) -> Option<Table> {
    let rest = ddl.split("{ks}.").nth(1)?;
    let open = rest.find('(')?;
    let name = rest[..open].trim().to_string();
    // The column list ends at the parenthesis matching the first one.
    let mut depth = 0;
    let mut end = None;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let body = &rest[open + 1..end?];
    let mut t = Table {
        name,
        columns: BTreeMap::new(),
        partition_key: Vec::new(),
        clustering: Vec::new(),
        default_ttl_s: rest[end? + 1..]
            .split("default_time_to_live = ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
    };
    for part in split_top(body) {
        if let Some(pk) = part.strip_prefix("PRIMARY KEY") {
            let inner = pk.trim().strip_prefix('(')?.strip_suffix(')')?;
            let parts = split_top(inner);
            let (first, others) = parts.split_first()?;
            t.partition_key = names(first);
            t.clustering = others.to_vec();
            continue;
        }
        let (col, ty) = part.split_once(' ')?;
        let ty = ty.trim();
        if let Some(ty) = ty.strip_suffix("PRIMARY KEY") {
            t.partition_key = vec![col.to_string()];
            t.columns.insert(col.to_string(), ty.trim().to_string());
        } else {
            t.columns.insert(col.to_string(), ty.to_string());
        }
    }
    Some(t)
}

/// What one `?` (or literal) of a statement stands for.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// A column's value (INSERT / SET) or its `=` restriction (WHERE).
    Column(String),
    /// A range restriction of a clustering column.
    Range,
    /// `USING TTL ?`.
    Ttl,
    /// `AND TIMESTAMP ?` (a client-chosen write timestamp).
    Timestamp,
    /// `LIMIT ?`.
    Limit,
    /// `IF col = ?`.
    Condition,
}

/// A statement taken apart: its table, kind and what each bind marker means.
#[derive(Debug, Clone)]
struct Shape {
    table: String,
    kind: Kind,
    binds: Vec<Role>,
    /// Literal column values (`'batch'`, `bucket = 0`).
    literals: Vec<(String, Value)>,
    /// Columns a WHERE clause restricts with `=`.
    restricted: BTreeSet<String>,
    allow_filtering: bool,
    distinct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Delete,
    Select,
}

fn literal(text: &str, ty: &str) -> Value {
    if let Some(s) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Value::Text(s.to_string());
    }
    match ty {
        "int" => Value::Int(text.parse().unwrap_or(0)),
        "boolean" => Value::Bool(text == "true"),
        _ => Value::BigInt(text.parse().unwrap_or(0)),
    }
}

fn shape(s: &Stmt, tables: &BTreeMap<String, Table>) -> Shape {
    let t = s.template;
    let table = t
        .split("{ks}.")
        .nth(1)
        .and_then(|r| r.split([' ', '(']).next())
        .unwrap_or("")
        .to_string();
    let kind = match t.split(' ').next() {
        Some("INSERT") => Kind::Insert,
        Some("UPDATE") => Kind::Update,
        Some("DELETE") => Kind::Delete,
        _ => Kind::Select,
    };
    let ty = |col: &str| {
        tables
            .get(&table)
            .and_then(|tb| tb.columns.get(col))
            .cloned()
            .unwrap_or_default()
    };
    let mut sh = Shape {
        table: table.clone(),
        kind,
        binds: Vec::new(),
        literals: Vec::new(),
        restricted: BTreeSet::new(),
        allow_filtering: t.contains("ALLOW FILTERING"),
        distinct: t.contains("SELECT DISTINCT"),
    };
    let value = |sh: &mut Shape, col: &str, v: &str, role: Role| {
        if v == "?" {
            sh.binds.push(role);
        } else {
            sh.literals.push((col.to_string(), literal(v, &ty(col))));
        }
    };
    if kind == Kind::Insert {
        let cols = t.split_once(" (").map_or("", |x| x.1);
        let (cols, rest) = cols.split_once(") VALUES (").unwrap_or(("", ""));
        let (vals, tail) = rest.split_once(')').unwrap_or(("", ""));
        for (c, v) in cols.split(", ").zip(vals.split(", ")) {
            value(&mut sh, c, v.trim(), Role::Column(c.to_string()));
        }
        if tail.contains("USING TTL ?") {
            sh.binds.push(Role::Ttl);
        }
        if tail.contains("TIMESTAMP ?") {
            sh.binds.push(Role::Timestamp);
        }
        return sh;
    }
    if kind == Kind::Update {
        let head = t.split(" SET ").next().unwrap_or("");
        if head.contains("USING TTL ?") {
            sh.binds.push(Role::Ttl);
        }
        let sets = t
            .split(" SET ")
            .nth(1)
            .and_then(|r| r.split(" WHERE ").next())
            .unwrap_or("");
        for a in sets.split(", ") {
            if let Some((c, v)) = a.split_once(" = ") {
                let (c, v) = (c.trim(), v.trim());
                // `c = c + ?` appends to a collection: its bound value is the column's (new) cells.
                let v = match v.strip_prefix(c).map(str::trim) {
                    Some("+ ?") => "?",
                    _ => v,
                };
                value(&mut sh, c, v, Role::Column(c.to_string()));
            }
        }
    }
    let after_where = t.split(" WHERE ").nth(1).unwrap_or("");
    let (conds, tail) = match after_where.split_once(" IF ") {
        Some((c, rest)) => (c, format!("IF {rest}")),
        None => (after_where, String::new()),
    };
    let conds = conds
        .split(" LIMIT ")
        .next()
        .unwrap_or("")
        .trim_end_matches(" ALLOW FILTERING");
    for c in conds.split(" AND ").filter(|c| !c.is_empty()) {
        let mut it = c.split_whitespace();
        let (Some(col), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if op == "=" {
            sh.restricted.insert(col.to_string());
            value(&mut sh, col, v, Role::Column(col.to_string()));
        } else if v == "?" {
            sh.binds.push(Role::Range);
        }
    }
    if t.contains(" LIMIT ?") {
        sh.binds.push(Role::Limit);
    }
    for c in tail.trim_start_matches("IF ").split(" AND ") {
        if c.ends_with('?') {
            sh.binds.push(Role::Condition);
        }
    }
    sh
}

/// One statement of a request, as Cassandra would see it.
#[derive(Debug, Clone)]
pub struct Effect {
    pub statement: &'static str,
    pub table: String,
    /// The partition key's serialized values, when the statement names a whole partition key.
    pub partition: Option<Vec<u8>>,
    /// The clustering key's values (a row), when named whole.
    pub clustering: Option<Vec<Vec<u8>>>,
    /// Data size of the mutation it makes (0 for reads).
    pub data_size: usize,
    /// `USING TTL` value, or the table's `default_time_to_live` (0: none).
    pub ttl_s: i64,
    pub is_write: bool,
    pub is_delete: bool,
    pub allow_filtering: bool,
    pub distinct: bool,
}

fn bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        Value::Text(s) => s.as_bytes().to_vec(),
        Value::BigInt(n) => n.to_be_bytes().to_vec(),
        Value::Int(n) => n.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::Blob(b) => b.clone(),
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Timestamp(ms) => ms.to_be_bytes().to_vec(),
        Value::Timeuuid(b) => b.to_vec(),
        Value::Inet(std::net::IpAddr::V4(ip)) => ip.octets().to_vec(),
        Value::Inet(std::net::IpAddr::V6(ip)) => ip.octets().to_vec(),
        Value::TextMap(m) => m
            .iter()
            .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()].concat())
            .collect(),
    }
}

/// Data size of one column's cells: one cell, or for a non-frozen collection a cell per element (its
/// path — the map key — and value) and the column's deletion time (`ComplexColumnData.dataSize`).
fn cells_size(v: &Value) -> usize {
    match v {
        Value::TextMap(m) => {
            DELETION
                + m.iter()
                    .map(|(k, v)| CELL_OVERHEAD + k.len() + v.len())
                    .sum::<usize>()
        }
        v => CELL_OVERHEAD + v.size(),
    }
}

/// Checks requests against [`schema`].
pub struct Contract {
    tables: BTreeMap<String, Table>,
    shapes: std::sync::Mutex<HashMap<&'static str, Shape>>,
}

impl Default for Contract {
    fn default() -> Self {
        Contract::new()
    }
}

impl Contract {
    pub fn new() -> Contract {
        Contract::with_tables(&[])
    }

    /// Checks requests against [`schema_with`] `extra` tables (the stream's raw rows).
    pub fn with_tables(extra: &[&str]) -> Contract {
        Contract {
            tables: schema_with(extra),
            shapes: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn shape(&self, s: &Stmt) -> Shape {
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        shapes
            .entry(s.name)
            .or_insert_with(|| shape(s, &self.tables))
            .clone()
    }

    /// What one statement with its values does.
    pub fn effect(&self, s: &Stmt, values: &[Value]) -> Effect {
        let sh = self.shape(s);
        let mut cols: BTreeMap<String, Value> = sh.literals.iter().cloned().collect();
        let mut ttl = 0;
        for (role, v) in sh.binds.iter().zip(values) {
            match role {
                Role::Column(c) => {
                    cols.insert(c.clone(), v.clone());
                }
                Role::Ttl => {
                    ttl = match v {
                        Value::Int(n) => i64::from(*n),
                        Value::BigInt(n) => *n,
                        _ => 0,
                    }
                }
                _ => {}
            }
        }
        let table = self.tables.get(&sh.table);
        // A write without `USING TTL` expires by the table's `default_time_to_live`.
        if ttl == 0 && sh.kind != Kind::Select && sh.kind != Kind::Delete {
            ttl = table.map_or(0, |t| t.default_ttl_s);
        }
        let key_of = |names: &[String]| -> Option<Vec<Vec<u8>>> {
            names
                .iter()
                .map(|c| match sh.kind {
                    Kind::Insert => cols.get(c).map(bytes),
                    _ => sh
                        .restricted
                        .contains(c)
                        .then(|| cols.get(c).map(bytes))
                        .flatten(),
                })
                .collect()
        };
        let (partition, clustering) = match table {
            Some(tb) => (
                key_of(&tb.partition_key).map(|parts| {
                    parts
                        .iter()
                        .flat_map(|p| {
                            let mut e = (p.len() as u16).to_be_bytes().to_vec();
                            e.extend_from_slice(p);
                            e.push(0);
                            e
                        })
                        .collect()
                }),
                if tb.clustering.is_empty() {
                    Some(Vec::new())
                } else {
                    key_of(&tb.clustering)
                },
            ),
            None => (None, None),
        };
        let ck_bytes: usize = clustering
            .as_ref()
            .map_or(0, |c| c.iter().map(Vec::len).sum());
        let is_key = |c: &str| {
            table.is_some_and(|tb| {
                tb.partition_key
                    .iter()
                    .chain(&tb.clustering)
                    .any(|k| k == c)
            })
        };
        let cells: usize = cols
            .iter()
            .filter(|(c, _)| !is_key(c))
            .map(|(_, v)| cells_size(v))
            .sum();
        let data_size = match sh.kind {
            Kind::Insert => ck_bytes + if ttl > 0 { LIVENESS_EXPIRING } else { LIVENESS } + cells,
            Kind::Update => ck_bytes + cells,
            // A row deletion names the row; a partition deletion is one deletion time.
            Kind::Delete => ck_bytes + DELETION,
            Kind::Select => 0,
        };
        Effect {
            statement: s.name,
            table: sh.table.clone(),
            partition,
            clustering,
            data_size,
            ttl_s: ttl,
            is_write: sh.kind != Kind::Select,
            is_delete: sh.kind == Kind::Delete,
            allow_filtering: sh.allow_filtering,
            distinct: sh.distinct,
        }
    }

    /// Everything Cassandra would warn about or reject in `request`, sent at `now_s` (Unix seconds).
    /// Empty when the request is within every limit.
    pub fn violations(&self, request: &Request, now_s: i64) -> Vec<String> {
        let mut out = Vec::new();
        let name = request.name();
        let effects: Vec<Effect> = request
            .statements()
            .into_iter()
            .map(|(s, v)| self.effect(s, v))
            .collect();
        for e in &effects {
            if e.ttl_s > MAX_TTL_S {
                out.push(format!(
                    "{}: TTL {} s is over the 20-year maximum",
                    e.statement, e.ttl_s
                ));
            }
            if e.ttl_s > 0 && now_s + e.ttl_s > MAX_DELETION_TIME_S {
                out.push(format!(
                    "{}: TTL {} s expires after 2038-01-19T03:14:06Z (rejected by Cassandra 4.1)",
                    e.statement, e.ttl_s
                ));
            }
            if !e.is_write && e.partition.is_none() {
                out.push(format!(
                    "{}: reads across partitions{}",
                    e.statement,
                    if e.allow_filtering {
                        " with ALLOW FILTERING"
                    } else {
                        ""
                    }
                ));
            }
            if e.is_write && e.partition.is_none() {
                out.push(format!(
                    "{}: writes without a whole partition key",
                    e.statement
                ));
            }
        }
        // Mutations: one per partition key (Cassandra merges the tables of one key into one mutation).
        let mut mutations: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for e in effects.iter().filter(|e| e.is_write) {
            *mutations
                .entry(e.partition.clone().unwrap_or_default())
                .or_default() += e.data_size;
        }
        for (_, size) in mutations.iter().filter(|(_, s)| **s > MAX_MUTATION_BYTES) {
            out.push(format!(
                "{name}: mutation of {size} bytes is over max_mutation_size"
            ));
        }
        if let Request::Batch { kind, .. } = request {
            let size: usize = mutations.values().sum();
            if mutations.len() > 1 {
                if *kind == BatchKind::Unlogged {
                    out.push(format!(
                        "{name}: unlogged batch across {} partitions",
                        mutations.len()
                    ));
                }
                if request.is_conditional() {
                    out.push(format!(
                        "{name}: conditional batch across {} partitions",
                        mutations.len()
                    ));
                }
                if size > BATCH_FAIL_BYTES {
                    out.push(format!(
                        "{name}: batch of {size} bytes over {} partitions is over batch_size_fail_threshold ({BATCH_FAIL_BYTES})",
                        mutations.len()
                    ));
                } else if size > BATCH_WARN_BYTES {
                    out.push(format!(
                        "{name}: batch of {size} bytes over {} partitions is over batch_size_warn_threshold ({BATCH_WARN_BYTES})",
                        mutations.len()
                    ));
                }
            }
        }
        if request.is_conditional() && request.serial_consistency().is_none() {
            out.push(format!("{name}: conditional without a serial consistency"));
        }
        if request.is_conditional() && request.is_idempotent() {
            out.push(format!("{name}: conditional marked idempotent"));
        }
        out
    }
}

/// Per partition: live rows, their bytes, and tombstones, over a recorded load.
#[derive(Debug, Default, Clone)]
pub struct PartitionStats {
    pub rows: BTreeMap<Vec<Vec<u8>>, usize>,
    /// Row and range tombstones written since the partition was last deleted whole.
    pub tombstones: usize,
    /// Live rows' bytes.
    pub bytes: usize,
}

/// Follows the writes of a load, partition by partition.
#[derive(Default)]
pub struct Ledger {
    contract: Contract,
    pub partitions: BTreeMap<(String, Vec<u8>), PartitionStats>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A ledger of [`Contract::with_tables`] `extra` tables too.
    pub fn with_tables(extra: &[&str]) -> Ledger {
        Ledger {
            contract: Contract::with_tables(extra),
            partitions: BTreeMap::new(),
        }
    }

    /// Apply the writes of a request.
    pub fn observe(&mut self, request: &Request) {
        for (s, v) in request.statements() {
            let e = self.contract.effect(s, v);
            let Some(partition) = e.partition.filter(|_| e.is_write) else {
                continue;
            };
            let p = self.partitions.entry((e.table, partition)).or_default();
            match (e.is_delete, e.clustering) {
                (false, Some(ck)) => {
                    let old = p.rows.insert(ck, e.data_size).unwrap_or(0);
                    p.bytes = (p.bytes + e.data_size).saturating_sub(old);
                }
                (true, Some(ck)) if !ck.is_empty() => {
                    if let Some(old) = p.rows.remove(&ck) {
                        p.bytes = p.bytes.saturating_sub(old);
                    }
                    p.tombstones += 1;
                }
                // A partition deletion shadows everything older: what a read scans is one deletion.
                _ if e.is_delete => *p = PartitionStats::default(),
                _ => {}
            }
        }
    }

    /// The largest partition of a table: (rows, bytes, tombstones), each its own maximum.
    pub fn largest(&self, table: &str) -> (usize, usize, usize) {
        self.partitions
            .iter()
            .filter(|((t, _), _)| t == table)
            .fold((0, 0, 0), |(r, b, t), (_, p)| {
                (r.max(p.rows.len()), b.max(p.bytes), t.max(p.tombstones))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cql_statements as st;

    #[test]
    fn every_statement_parses_to_its_arity_and_a_created_table() {
        let tables = schema();
        assert_eq!(tables.len(), TABLES.len());
        for s in st::ALL {
            let sh = shape(s, &tables);
            assert_eq!(sh.binds.len(), s.arity, "{}: {:?}", s.name, sh.binds);
            assert!(tables.contains_key(&sh.table), "{}: {}", s.name, sh.table);
        }
        let w = &tables["watermarks"];
        assert_eq!(w.partition_key, ["app_id"]);
        assert_eq!(w.clustering, ["funnel_id", "funnel_version"]);
        assert_eq!(tables["meta"].partition_key, ["key"]);
    }

    /// Another client's table (the stream's raw rows): a map appended to is a cell per entry (path and
    /// value) plus the column's deletion time, and a write without `USING TTL` takes the table's
    /// `default_time_to_live`, which the TTL limits then check.
    #[test]
    fn appends_size_a_cell_per_entry_and_the_table_ttl_applies() {
        const DDL: &str =
            "CREATE TABLE IF NOT EXISTS {ks}.raw (a text, ts timestamp, id timeuuid, \
                           ip inet, props map<text,text>, PRIMARY KEY ((a), ts, id)) \
                           WITH default_time_to_live = 5184000";
        const UP: Stmt = Stmt {
            name: "TEST_RAW_UP",
            template:
                "UPDATE {ks}.raw SET ip = ?, props = props + ? WHERE a = ? AND ts = ? AND id = ?",
            arity: 5,
        };
        let c = Contract::with_tables(&[DDL]);
        assert_eq!(shape(&UP, &c.tables).binds.len(), 5);
        let values = [
            Value::Inet("203.0.113.9".parse().unwrap()),
            Value::TextMap(BTreeMap::from([
                ("k".to_string(), "vv".to_string()),
                ("kk".to_string(), "v".to_string()),
            ])),
            Value::Text("app".into()),
            Value::Timestamp(7),
            Value::Timeuuid([1; 16]),
        ];
        let e = c.effect(&UP, &values);
        // clustering 8 + 16; ip 16 + 4; props 12 + 2 × (16 + 3).
        assert_eq!(e.data_size, 24 + 20 + 12 + 38);
        assert_eq!(e.ttl_s, 5_184_000);
        assert_eq!(
            e.clustering,
            Some(vec![7i64.to_be_bytes().to_vec(), vec![1; 16]])
        );
        assert!(c
            .violations(&Request::execute(UP, values.to_vec()), 0)
            .is_empty());
        // The same table TTL written in 2038 would expire past Cassandra's limit.
        let late = MAX_DELETION_TIME_S - 86_400;
        let v = c.violations(&Request::execute(UP, values.to_vec()), late);
        assert!(v.iter().any(|m| m.contains("2038")), "{v:?}");
        // Without the extra DDL the table is unknown: no partition key, a violation.
        assert!(!Contract::new()
            .violations(&Request::execute(UP, values.to_vec()), 0)
            .is_empty());
    }

    #[test]
    fn data_size_follows_cassandra() {
        let c = Contract::new();
        // watermarks: clustering (funnel_id "f", funnel_version "1") + liveness 8 + three cells:
        // batch_until (16 + 10), run_id (16 + 8), published_at_ms (16 + 8).
        let e = c.effect(
            &st::UPSERT_WATERMARK,
            &[
                Value::Text("app".into()),
                Value::Text("f".into()),
                Value::Text("1".into()),
                Value::Text("2024-05-01".into()),
                Value::BigInt(1),
                Value::BigInt(2),
            ],
        );
        assert_eq!(e.data_size, 2 + 8 + 26 + 24 + 24);
        assert_eq!(
            e.partition.as_deref(),
            Some(&[0u8, 3, b'a', b'p', b'p', 0][..])
        );
    }

    #[test]
    fn limits_are_those_cassandra_enforces() {
        let c = Contract::new();
        let now = 1_700_000_000;
        let mark = |app: &str, fid: &str| {
            (
                st::UPSERT_WATERMARK,
                vec![
                    Value::Text(app.into()),
                    Value::Text(fid.into()),
                    Value::Text("v".repeat(16)),
                    Value::Text("2024-05-01".into()),
                    Value::BigInt(1),
                    Value::BigInt(2),
                ],
            )
        };
        // One partition: never size-checked, however large.
        let one = Request::Batch {
            kind: BatchKind::Logged,
            statements: (0..2000).map(|i| mark("a", &format!("f{i}"))).collect(),
        };
        assert!(c.violations(&one, now).is_empty());
        // Many partitions: warn over 5 KiB, fail over 50 KiB; unlogged across partitions is refused.
        let many = |n: usize, kind| Request::Batch {
            kind,
            statements: (0..n).map(|i| mark(&format!("a{i}"), "f")).collect(),
        };
        assert!(c.violations(&many(10, BatchKind::Logged), now).is_empty());
        let v = c.violations(&many(100, BatchKind::Logged), now);
        assert!(v[0].contains("batch_size_warn_threshold"), "{v:?}");
        let v = c.violations(&many(1000, BatchKind::Logged), now);
        assert!(v[0].contains("batch_size_fail_threshold"), "{v:?}");
        let v = c.violations(&many(2, BatchKind::Unlogged), now);
        assert!(v[0].contains("unlogged batch across 2 partitions"), "{v:?}");
        // TTLs: 20 years is the maximum, and the expiry must be before 2038-01-19T03:14:07Z.
        let state = |ttl: i32| {
            Request::execute(
                st::UPSERT_RECORD,
                (
                    "conversion",
                    "shop",
                    "2024-06-01",
                    "k",
                    vec![1u8],
                    i64::MAX,
                    ttl,
                ),
            )
        };
        assert!(c.violations(&state(0), now).is_empty());
        assert!(c.violations(&state(86_400), now).is_empty());
        let v = c.violations(&state(630_720_000), now);
        assert!(v[0].contains("after 2038-01-19"), "{v:?}");
        let last_ok = (MAX_DELETION_TIME_S - now) as i32;
        assert!(c.violations(&state(last_ok), now).is_empty());
        assert!(!c.violations(&state(last_ok + 1), now).is_empty());
        // Reads: one partition; DISTINCT over the table is a cross-partition scan.
        let v = c.violations(&Request::execute(st::SELECT_WATERMARK_APPS, ()), now);
        assert!(v[0].contains("across partitions"), "{v:?}");
        assert!(c
            .violations(&Request::execute(st::SELECT_WATERMARKS, ("a",)), now)
            .is_empty());
    }

    #[test]
    fn the_ledger_counts_rows_bytes_and_tombstones_per_partition() {
        let mut l = Ledger::new();
        for day in 0..3 {
            l.observe(&Request::execute(
                st::UPSERT_SPEED_DAY,
                ("a", "f", "1", format!("2024-05-0{day}"), 100i32),
            ));
        }
        l.observe(&Request::execute(
            st::DELETE_SPEED_DAY,
            ("a", "f", "1", "2024-05-00"),
        ));
        let (rows, bytes, tombstones) = l.largest("speed_days");
        assert_eq!((rows, tombstones), (2, 1));
        assert!(bytes > 0);
        l.observe(&Request::execute(
            st::DELETE_STEPS_RUN,
            ("a", "f", "1", 7i64),
        ));
        assert_eq!(l.largest("funnel_steps"), (0, 0, 0));
    }
}
