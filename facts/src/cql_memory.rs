//! An in-memory statement executor behind the session seam ([`crate::cql_session::CqlSession`]), for tests:
//! a model of the subset of CQL semantics the store relies on, executing the store's own prepared
//! statements ([`crate::cql_statements`]) on the tables its DDL creates. Not a server and not Cassandra:
//! what it models, it models the way Cassandra defines it, and it refuses what it does not model.
//!
//! Modelled:
//! - **Last write wins by timestamp**, per cell: every request gets a timestamp from a monotonic clock
//!   (one for all statements of a batch); a deletion shadows cells with a timestamp at or below its own
//!   (partition, range and row deletions); between two cells of one timestamp the greater value wins.
//! - **TTL**: a cell (and an `INSERT`'s row marker) written `USING TTL n` is gone `n` seconds after the
//!   write, by the executor's clock ([`MemorySession::advance`] moves it). A row with no live cell and no
//!   live marker does not exist; static columns live beside the rows of their partition.
//! - **Batches** are applied atomically (all statements or none) and in isolation; a conditional batch
//!   must span one partition of one table (as Cassandra requires) and is applied only if every condition
//!   holds against the state before it (`IF NOT EXISTS`, `IF col = ?`, on regular or static columns; an
//!   absent value equals `null`). The reply is `[applied]`, and when not applied the conditions' current
//!   values, as Cassandra answers a lightweight transaction.
//! - **Reads**: partition key by `=`, clustering restrictions by `=` on a prefix then one range, `ALLOW
//!   FILTERING` on regular columns, `DISTINCT` partition keys, `LIMIT`, clustering order (`DESC` where the
//!   DDL says so); a partition with live static columns and no row reads as one row of its statics.
//!
//! Linearizable by construction (one lock), so `LOCAL_SERIAL` and `LOCAL_QUORUM` read the same. Faults
//! (timeouts, crashes, a lost answer) are injected by wrapping it ([`Faulty`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use crate::cql_contract::schema_with;
use crate::cql_session::{CqlSession, Reply, Request, RowSet, Value};
use crate::cql_statements::{Stmt, TABLES};
use crate::error::{CqlError, FactsError};

/// A value as a key: ordered as Cassandra orders the types the store uses.
#[derive(Debug, Clone, PartialEq)]
struct Key(Value);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

/// Cassandra's order: numbers by value, text (UTF-8) and blobs by bytes; `null` first.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::BigInt(x), Value::BigInt(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        // `TimeUUIDType`: by the UUID's time, then its bytes.
        (Value::Timeuuid(x), Value::Timeuuid(y)) => {
            (uuid_time(x), x.as_slice()).cmp(&(uuid_time(y), y.as_slice()))
        }
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

/// The 60-bit timestamp of a version-1 UUID (`time_hi` without the version, `time_mid`, `time_low`).
fn uuid_time(b: &[u8; 16]) -> u64 {
    let hi = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    hi << 48 | mid << 32 | low
}

/// The cell name of one entry of a non-frozen map: each entry is a cell of its own (its path is the key),
/// so an append writes the entries' cells and leaves the others.
const ENTRY: char = '\u{0}';

/// One cell: its value (`None`: a cell tombstone, as an `INSERT` of `null` writes), timestamp and expiry.
#[derive(Debug, Clone)]
struct Cell {
    value: Option<Value>,
    ts: i64,
    expires_at_ms: Option<i64>,
}

impl Cell {
    /// Whether `self` wins over `old` (last write wins; a tombstone, then the greater value, on a tie).
    fn wins_over(&self, old: &Cell) -> bool {
        match self.ts.cmp(&old.ts) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match (&self.value, &old.value) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => compare(a, b) != Ordering::Less,
            },
        }
    }

    fn live(&self, now_ms: i64, shadow: i64) -> Option<&Value> {
        if self.ts <= shadow || self.expires_at_ms.is_some_and(|e| e <= now_ms) {
            return None;
        }
        self.value.as_ref()
    }
}

#[derive(Debug, Clone, Default)]
struct Row {
    /// The row marker an `INSERT` writes (timestamp, expiry).
    marker: Option<(i64, Option<i64>)>,
    deleted: Option<i64>,
    cells: HashMap<String, Cell>,
}

#[derive(Debug, Clone, Default)]
struct Partition {
    deleted: Option<i64>,
    /// Range deletions: a clustering prefix and the deletion's timestamp.
    ranges: Vec<(Vec<Key>, i64)>,
    statics: HashMap<String, Cell>,
    rows: BTreeMap<Vec<Key>, Row>,
}

fn put(cells: &mut HashMap<String, Cell>, col: &str, cell: Cell) {
    match cells.get(col) {
        Some(old) if !cell.wins_over(old) => {}
        _ => {
            cells.insert(col.to_string(), cell);
        }
    }
}

impl Partition {
    fn shadow(&self, ck: &[Key], row: Option<&Row>) -> i64 {
        let mut s = self.deleted.unwrap_or(i64::MIN);
        for (prefix, ts) in &self.ranges {
            if ck.starts_with(prefix) {
                s = s.max(*ts);
            }
        }
        if let Some(d) = row.and_then(|r| r.deleted) {
            s = s.max(d);
        }
        s
    }

    fn static_value(&self, col: &str, now_ms: i64) -> Option<Value> {
        let shadow = self.deleted.unwrap_or(i64::MIN);
        self.statics
            .get(col)
            .and_then(|c| c.live(now_ms, shadow))
            .cloned()
    }

    fn has_live_statics(&self, now_ms: i64) -> bool {
        let shadow = self.deleted.unwrap_or(i64::MIN);
        self.statics
            .values()
            .any(|c| c.live(now_ms, shadow).is_some())
    }

    /// The row's live cells, if the row exists.
    fn live_row(&self, ck: &[Key], now_ms: i64) -> Option<HashMap<String, Value>> {
        let row = self.rows.get(ck)?;
        let shadow = self.shadow(ck, Some(row));
        let marker = row
            .marker
            .is_some_and(|(ts, exp)| ts > shadow && exp.is_none_or(|e| e > now_ms));
        let mut cells: HashMap<String, Value> = HashMap::new();
        for (c, cell) in &row.cells {
            let Some(v) = cell.live(now_ms, shadow) else {
                continue;
            };
            match (c.split_once(ENTRY), v) {
                (Some((col, key)), Value::Text(v)) => {
                    let map = cells
                        .entry(col.to_string())
                        .or_insert_with(|| Value::TextMap(BTreeMap::new()));
                    if let Value::TextMap(m) = map {
                        m.insert(key.to_string(), v.clone());
                    }
                }
                _ => {
                    cells.insert(c.clone(), v.clone());
                }
            }
        }
        (marker || !cells.is_empty()).then_some(cells)
    }
}

/// A table as its DDL defines it.
#[derive(Debug, Clone)]
struct TableDef {
    partition_key: Vec<String>,
    clustering: Vec<String>,
    statics: Vec<String>,
    /// Column names in DDL order.
    columns: Vec<String>,
    desc: bool,
    /// `default_time_to_live` (seconds; 0: none).
    default_ttl_s: i64,
}

fn table_defs(extra: &[&str]) -> HashMap<String, TableDef> {
    let parsed = schema_with(extra);
    let mut out = HashMap::new();
    for ddl in TABLES.iter().chain(extra) {
        let Some(name) = ddl
            .split("{ks}.")
            .nth(1)
            .and_then(|r| r.split([' ', '(']).next())
        else {
            continue;
        };
        let Some(t) = parsed.get(name) else {
            continue;
        };
        let body = ddl.split_once('(').map_or("", |x| x.1);
        let columns: Vec<String> = body
            .split(", ")
            .take_while(|c| !c.starts_with("PRIMARY KEY"))
            .filter_map(|c| c.split_whitespace().next().map(str::to_string))
            .collect();
        let statics = t
            .columns
            .iter()
            .filter(|(_, ty)| ty.ends_with(" static"))
            .map(|(c, _)| c.clone())
            .collect();
        out.insert(
            name.to_string(),
            TableDef {
                partition_key: t.partition_key.clone(),
                clustering: t.clustering.clone(),
                statics,
                columns,
                desc: ddl.contains(" DESC)"),
                default_ttl_s: t.default_ttl_s,
            },
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A statement operand: a bind marker or a literal.
#[derive(Debug, Clone)]
enum Operand {
    Bind,
    Literal(String),
}

#[derive(Debug, Clone)]
enum Kind {
    Insert,
    Update,
    Delete,
    Select {
        columns: Vec<String>,
        distinct: bool,
        limit: bool,
    },
}

/// A statement taken apart, in bind-marker order where it matters.
#[derive(Debug, Clone)]
struct Parsed {
    table: String,
    kind: Kind,
    /// INSERT columns / UPDATE assignments.
    sets: Vec<(String, Operand)>,
    /// Columns assigned `col = col + ?`: a collection appended to.
    appends: Vec<String>,
    restrictions: Vec<(String, Op, Operand)>,
    conditions: Vec<(String, Operand)>,
    if_not_exists: bool,
    ttl: bool,
    /// A literal `LIMIT n`.
    limit: Option<usize>,
    /// Markers in text order: which list and index each `?` fills.
    order: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Set(usize),
    Restriction(usize),
    Condition(usize),
    Ttl,
    Timestamp,
    Limit,
}

fn operand(s: &str) -> Operand {
    if s == "?" {
        Operand::Bind
    } else {
        Operand::Literal(s.to_string())
    }
}

fn parse_op(s: &str) -> Option<Op> {
    Some(match s {
        "=" => Op::Eq,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        _ => return None,
    })
}

fn unsupported(what: &str, stmt: &str) -> FactsError {
    CqlError::Decode {
        reason: format!("in-memory executor: {what} not modelled ({stmt})"),
    }
    .into()
}

fn parse(s: &Stmt) -> Result<Parsed, FactsError> {
    let t = s.template;
    let table = t
        .split("{ks}.")
        .nth(1)
        .and_then(|r| r.split([' ', '(']).next())
        .ok_or_else(|| unsupported("a statement without a table", s.name))?
        .to_string();
    let mut p = Parsed {
        table,
        kind: Kind::Insert,
        sets: Vec::new(),
        appends: Vec::new(),
        restrictions: Vec::new(),
        conditions: Vec::new(),
        if_not_exists: false,
        ttl: false,
        limit: None,
        order: Vec::new(),
    };
    let where_and_if = |p: &mut Parsed, rest: &str| -> Result<(), FactsError> {
        let rest = rest.trim_end_matches(" ALLOW FILTERING");
        let (conds, ifs) = match rest.split_once(" IF ") {
            Some((c, i)) => (c, Some(i)),
            None => (rest, None),
        };
        let conds = match conds.split_once(" LIMIT ") {
            Some((c, n)) if n.trim() == "?" => {
                if let Kind::Select { limit, .. } = &mut p.kind {
                    *limit = true;
                }
                c
            }
            Some((c, n)) => {
                p.limit = Some(
                    n.trim()
                        .parse()
                        .map_err(|_| unsupported("a LIMIT", s.name))?,
                );
                c
            }
            None => conds,
        };
        for c in conds.split(" AND ").filter(|c| !c.trim().is_empty()) {
            let w: Vec<&str> = c.split_whitespace().collect();
            let [col, op, v] = w[..] else {
                return Err(unsupported("a restriction", s.name));
            };
            let op = parse_op(op).ok_or_else(|| unsupported("an operator", s.name))?;
            if v == "?" {
                p.order.push(Slot::Restriction(p.restrictions.len()));
            }
            p.restrictions.push((col.to_string(), op, operand(v)));
        }
        if let Some(ifs) = ifs {
            if ifs.trim() == "NOT EXISTS" {
                p.if_not_exists = true;
            } else {
                for c in ifs.split(" AND ") {
                    let w: Vec<&str> = c.split_whitespace().collect();
                    let [col, "=", v] = w[..] else {
                        return Err(unsupported("a condition", s.name));
                    };
                    if v == "?" {
                        p.order.push(Slot::Condition(p.conditions.len()));
                    }
                    p.conditions.push((col.to_string(), operand(v)));
                }
            }
        }
        if matches!(p.kind, Kind::Select { limit: true, .. }) {
            p.order.push(Slot::Limit);
        }
        Ok(())
    };
    if let Some(rest) = t.strip_prefix("INSERT INTO ") {
        let (_, rest) = rest
            .split_once(" (")
            .ok_or_else(|| unsupported("INSERT", s.name))?;
        let (cols, rest) = rest
            .split_once(") VALUES (")
            .ok_or_else(|| unsupported("INSERT", s.name))?;
        let (vals, tail) = rest
            .split_once(')')
            .ok_or_else(|| unsupported("INSERT", s.name))?;
        for (c, v) in cols.split(", ").zip(vals.split(", ")) {
            if v.trim() == "?" {
                p.order.push(Slot::Set(p.sets.len()));
            }
            p.sets.push((c.trim().to_string(), operand(v.trim())));
        }
        p.if_not_exists = tail.contains("IF NOT EXISTS");
        if tail.contains("USING TTL ?") {
            p.ttl = true;
            p.order.push(Slot::Ttl);
        }
        if tail.contains("TIMESTAMP ?") {
            p.order.push(Slot::Timestamp);
        }
        return Ok(p);
    }
    if let Some(rest) = t.strip_prefix("UPDATE ") {
        p.kind = Kind::Update;
        let (head, rest) = rest
            .split_once(" SET ")
            .ok_or_else(|| unsupported("UPDATE", s.name))?;
        if head.contains("USING TTL ?") {
            p.ttl = true;
            p.order.push(Slot::Ttl);
        }
        let (sets, rest) = rest
            .split_once(" WHERE ")
            .ok_or_else(|| unsupported("UPDATE", s.name))?;
        for a in sets.split(", ") {
            let (c, v) = a
                .split_once(" = ")
                .ok_or_else(|| unsupported("an assignment", s.name))?;
            let v = match v.strip_prefix(c).map(str::trim) {
                Some("+ ?") => {
                    p.appends.push(c.trim().to_string());
                    "?"
                }
                _ => v,
            };
            if v.contains(' ') {
                return Err(unsupported(
                    "an assignment other than `col = value`",
                    s.name,
                ));
            }
            if v.trim() == "?" {
                p.order.push(Slot::Set(p.sets.len()));
            }
            p.sets.push((c.trim().to_string(), operand(v.trim())));
        }
        where_and_if(&mut p, rest)?;
        return Ok(p);
    }
    if let Some(rest) = t.strip_prefix("DELETE FROM ") {
        p.kind = Kind::Delete;
        let (_, rest) = rest
            .split_once(" WHERE ")
            .ok_or_else(|| unsupported("DELETE", s.name))?;
        where_and_if(&mut p, rest)?;
        return Ok(p);
    }
    if let Some(rest) = t.strip_prefix("SELECT ") {
        let (distinct, rest) = match rest.strip_prefix("DISTINCT ") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (cols, rest) = rest
            .split_once(" FROM ")
            .ok_or_else(|| unsupported("SELECT", s.name))?;
        p.kind = Kind::Select {
            columns: cols.split(", ").map(|c| c.trim().to_string()).collect(),
            distinct,
            limit: false,
        };
        if let Some((_, rest)) = rest.split_once(" WHERE ") {
            where_and_if(&mut p, rest)?;
        } else if rest.contains(" LIMIT ") {
            return Err(unsupported("LIMIT without WHERE", s.name));
        }
        return Ok(p);
    }
    Err(unsupported("this statement kind", s.name))
}

/// A statement with its values in place.
struct Bound {
    parsed: Parsed,
    sets: Vec<(String, Value)>,
    restrictions: Vec<(String, Op, Value)>,
    conditions: Vec<(String, Value)>,
    ttl_s: i64,
    /// A client-chosen write timestamp (`USING … TIMESTAMP ?`).
    timestamp: Option<i64>,
    limit: Option<usize>,
}

fn literal(text: &str, ty: &str) -> Value {
    if let Some(s) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Value::Text(s.to_string());
    }
    match ty.split_whitespace().next().unwrap_or("") {
        "int" => Value::Int(text.parse().unwrap_or(0)),
        "boolean" => Value::Bool(text == "true"),
        _ => Value::BigInt(text.parse().unwrap_or(0)),
    }
}

/// The value a statement gives a key column: an `INSERT`'s, or a `WHERE col = …` restriction's.
fn named(b: &Bound, col: &str) -> Option<Key> {
    let v = match b.parsed.kind {
        Kind::Insert => b.sets.iter().find(|(c, _)| c == col).map(|(_, v)| v),
        _ => b
            .restrictions
            .iter()
            .find(|(c, op, _)| c == col && *op == Op::Eq)
            .map(|(_, _, v)| v),
    };
    v.map(|v| Key(v.clone()))
}

/// The in-memory executor (see the module docs). Share it (`Arc`) between stores to model several
/// clients of one cluster.
pub struct MemorySession {
    tables: HashMap<String, TableDef>,
    types: BTreeMap<String, crate::cql_contract::Table>,
    parsed: Mutex<HashMap<&'static str, Parsed>>,
    data: Mutex<Db>,
    /// Added to the wall clock (ms): tests move time forward to expire TTLs.
    skew_ms: AtomicI64,
}

#[derive(Default)]
struct Db {
    tables: HashMap<String, BTreeMap<Vec<Key>, Partition>>,
    last_ts: i64,
}

impl MemorySession {
    pub fn new() -> Arc<MemorySession> {
        MemorySession::with_tables(&[])
    }

    /// An executor that also knows the tables of `extra` DDL (another client's, such as the stream's raw
    /// rows; `CREATE TABLE … {ks}.name (…)`).
    pub fn with_tables(extra: &[&str]) -> Arc<MemorySession> {
        Arc::new(MemorySession {
            tables: table_defs(extra),
            types: schema_with(extra),
            parsed: Mutex::new(HashMap::new()),
            data: Mutex::new(Db::default()),
            skew_ms: AtomicI64::new(0),
        })
    }

    /// Move the executor's clock forward by `ms` (TTLs expire by it).
    pub fn advance(&self, ms: i64) {
        self.skew_ms.fetch_add(ms, AtomicOrdering::SeqCst);
    }

    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.skew_ms.load(AtomicOrdering::SeqCst)
    }

    /// Rows the model holds in a table (live or shadowed, not yet purged), for size checks.
    pub fn rows(&self, table: &str) -> usize {
        let db = self.data.lock().unwrap_or_else(|e| e.into_inner());
        db.tables
            .get(table)
            .map_or(0, |t| t.values().map(|p| p.rows.len()).sum())
    }

    fn parsed(&self, s: &Stmt) -> Result<Parsed, FactsError> {
        let mut cache = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(s.name) {
            return Ok(p.clone());
        }
        let p = parse(s)?;
        cache.insert(s.name, p.clone());
        Ok(p)
    }

    fn ty(&self, table: &str, col: &str) -> String {
        self.types
            .get(table)
            .and_then(|t| t.columns.get(col))
            .cloned()
            .unwrap_or_default()
    }

    fn bind(&self, s: &Stmt, values: &[Value]) -> Result<Bound, FactsError> {
        let parsed = self.parsed(s)?;
        if values.len() != parsed.order.len() {
            return Err(CqlError::Decode {
                reason: format!(
                    "{}: {} values for {} bind markers",
                    s.name,
                    values.len(),
                    parsed.order.len()
                ),
            }
            .into());
        }
        let table = parsed.table.clone();
        let lit = |col: &str, o: &Operand| match o {
            Operand::Literal(l) => Some(literal(l, &self.ty(&table, col))),
            Operand::Bind => None,
        };
        let mut sets: Vec<(String, Value)> = parsed
            .sets
            .iter()
            .map(|(c, o)| (c.clone(), lit(c, o).unwrap_or(Value::Null)))
            .collect();
        let mut restrictions: Vec<(String, Op, Value)> = parsed
            .restrictions
            .iter()
            .map(|(c, op, o)| (c.clone(), *op, lit(c, o).unwrap_or(Value::Null)))
            .collect();
        let mut conditions: Vec<(String, Value)> = parsed
            .conditions
            .iter()
            .map(|(c, o)| (c.clone(), lit(c, o).unwrap_or(Value::Null)))
            .collect();
        let (mut ttl_s, mut limit, mut timestamp) = (0, parsed.limit, None);
        for (slot, v) in parsed.order.iter().zip(values) {
            match *slot {
                Slot::Set(i) => sets[i].1 = v.clone(),
                Slot::Restriction(i) => restrictions[i].2 = v.clone(),
                Slot::Condition(i) => conditions[i].1 = v.clone(),
                Slot::Ttl => {
                    ttl_s = match v {
                        Value::Int(n) => i64::from(*n),
                        Value::BigInt(n) => *n,
                        _ => 0,
                    }
                }
                Slot::Timestamp => {
                    timestamp = match v {
                        Value::BigInt(n) => Some(*n),
                        _ => None,
                    }
                }
                Slot::Limit => {
                    limit = match v {
                        Value::Int(n) => usize::try_from(*n).ok(),
                        Value::BigInt(n) => usize::try_from(*n).ok(),
                        _ => None,
                    }
                }
            }
        }
        if ttl_s < 0 {
            return Err(CqlError::Decode {
                reason: format!("{}: negative TTL {ttl_s}", s.name),
            }
            .into());
        }
        Ok(Bound {
            parsed,
            sets,
            restrictions,
            conditions,
            ttl_s,
            timestamp,
            limit,
        })
    }

    fn def(&self, table: &str) -> Result<&TableDef, FactsError> {
        self.tables.get(table).ok_or_else(|| {
            CqlError::Decode {
                reason: format!("in-memory executor: unknown table {table}"),
            }
            .into()
        })
    }

    /// The partition key a statement names with `=` (all of it, or `None`).
    fn partition_of(&self, b: &Bound) -> Result<Option<Vec<Key>>, FactsError> {
        let def = self.def(&b.parsed.table)?;
        Ok(def.partition_key.iter().map(|k| named(b, k)).collect())
    }

    /// The clustering prefix a statement names with `=`.
    fn clustering_of(&self, b: &Bound) -> Result<Vec<Key>, FactsError> {
        let def = self.def(&b.parsed.table)?;
        Ok(def.clustering.iter().map_while(|k| named(b, k)).collect())
    }

    /// Whether the conditions of a write hold, and the `[applied]` reply's extra columns if not.
    fn check(&self, db: &Db, b: &Bound, now_ms: i64) -> Result<(bool, Vec<Value>), FactsError> {
        let def = self.def(&b.parsed.table)?;
        let pk = self
            .partition_of(b)?
            .ok_or_else(|| unsupported("a condition without a partition key", "LWT"))?;
        let ck = self.clustering_of(b)?;
        let partition = db.tables.get(&b.parsed.table).and_then(|t| t.get(&pk));
        let row = partition.and_then(|p| p.live_row(&ck, now_ms));
        if b.parsed.if_not_exists {
            return Ok(match row {
                None => (true, Vec::new()),
                Some(cells) => (
                    false,
                    def.columns
                        .iter()
                        .map(|c| cells.get(c).cloned().unwrap_or(Value::Null))
                        .collect(),
                ),
            });
        }
        let mut ok = true;
        let mut current = Vec::new();
        for (col, want) in &b.conditions {
            let got = if def.statics.contains(col) {
                partition.and_then(|p| p.static_value(col, now_ms))
            } else {
                row.as_ref().and_then(|r| r.get(col).cloned())
            }
            .unwrap_or(Value::Null);
            ok &= compare(&got, want) == Ordering::Equal;
            current.push(got);
        }
        Ok((ok, current))
    }

    fn write(&self, db: &mut Db, b: &Bound, ts: i64, now_ms: i64) -> Result<(), FactsError> {
        let def = self.def(&b.parsed.table)?.clone();
        let pk = self
            .partition_of(b)?
            .ok_or_else(|| unsupported("a write without a whole partition key", "write"))?;
        let ck = self.clustering_of(b)?;
        // Without `USING TTL`, a write expires by the table's `default_time_to_live`.
        let ttl_s = if b.parsed.ttl {
            b.ttl_s
        } else {
            def.default_ttl_s
        };
        let expires = (ttl_s > 0).then(|| now_ms + ttl_s * 1000);
        let ts = b.timestamp.unwrap_or(ts);
        let p = db
            .tables
            .entry(b.parsed.table.clone())
            .or_default()
            .entry(pk)
            .or_default();
        let is_key = |c: &str| {
            def.partition_key
                .iter()
                .chain(&def.clustering)
                .any(|k| k == c)
        };
        match b.parsed.kind {
            Kind::Insert | Kind::Update => {
                let full = ck.len() == def.clustering.len();
                let writes_row = b
                    .sets
                    .iter()
                    .any(|(c, _)| !is_key(c) && !def.statics.contains(c));
                if writes_row && !full {
                    return Err(unsupported(
                        "a row write without its whole clustering key",
                        "write",
                    ));
                }
                for (c, v) in b.sets.iter().filter(|(c, _)| !is_key(c)) {
                    if let Value::TextMap(entries) = v {
                        if !b.parsed.appends.contains(c) {
                            // Assigning a non-frozen collection first deletes it (a tombstone).
                            return Err(unsupported("assigning a whole collection", "write"));
                        }
                        let row = p.rows.entry(ck.clone()).or_default();
                        for (k, e) in entries {
                            let cell = Cell {
                                value: Some(Value::Text(e.clone())),
                                ts,
                                expires_at_ms: expires,
                            };
                            put(&mut row.cells, &format!("{c}{ENTRY}{k}"), cell);
                        }
                        continue;
                    }
                    let cell = Cell {
                        value: (*v != Value::Null).then(|| v.clone()),
                        ts,
                        expires_at_ms: expires,
                    };
                    if def.statics.contains(c) {
                        put(&mut p.statics, c, cell);
                    } else {
                        put(&mut p.rows.entry(ck.clone()).or_default().cells, c, cell);
                    }
                }
                if matches!(b.parsed.kind, Kind::Insert) && full {
                    let row = p.rows.entry(ck).or_default();
                    if row.marker.is_none_or(|(old, _)| ts >= old) {
                        row.marker = Some((ts, expires));
                    }
                }
            }
            Kind::Delete => {
                if ck.is_empty() {
                    p.deleted = Some(p.deleted.unwrap_or(i64::MIN).max(ts));
                } else if ck.len() == def.clustering.len() {
                    let row = p.rows.entry(ck).or_default();
                    row.deleted = Some(row.deleted.unwrap_or(i64::MIN).max(ts));
                } else {
                    p.ranges.push((ck, ts));
                }
            }
            Kind::Select { .. } => {}
        }
        Ok(())
    }

    fn select(&self, db: &Db, b: &Bound, now_ms: i64) -> Result<RowSet, FactsError> {
        let Kind::Select {
            columns, distinct, ..
        } = &b.parsed.kind
        else {
            return Ok(Vec::new());
        };
        let def = self.def(&b.parsed.table)?;
        let empty = BTreeMap::new();
        let table = db.tables.get(&b.parsed.table).unwrap_or(&empty);
        let pk = self.partition_of(b)?;
        let partitions: Vec<(&Vec<Key>, &Partition)> = match &pk {
            Some(pk) => table.get_key_value(pk).into_iter().collect(),
            None if b.restrictions.is_empty() => table.iter().collect(),
            None => {
                return Err(unsupported(
                    "a read across partitions with restrictions",
                    "SELECT",
                ))
            }
        };
        let mut out = Vec::new();
        for (pk_vals, p) in partitions {
            let key_value = |c: &str| {
                def.partition_key
                    .iter()
                    .position(|k| k == c)
                    .map(|i| pk_vals[i].0.clone())
            };
            let mut matched: Vec<HashMap<String, Value>> = Vec::new();
            for ck in p.rows.keys() {
                let Some(mut cells) = p.live_row(ck, now_ms) else {
                    continue;
                };
                for (i, c) in def.clustering.iter().enumerate() {
                    cells.insert(c.clone(), ck[i].0.clone());
                }
                let keep = b.restrictions.iter().all(|(c, op, want)| {
                    if def.partition_key.contains(c) {
                        return true;
                    }
                    let got = cells.get(c).cloned().unwrap_or(Value::Null);
                    if got == Value::Null {
                        return false;
                    }
                    let o = compare(&got, want);
                    match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        Op::Ge => o != Ordering::Less,
                    }
                });
                if keep {
                    matched.push(cells);
                }
            }
            let only_partition_restricted = b
                .restrictions
                .iter()
                .all(|(c, ..)| def.partition_key.contains(c));
            if matched.is_empty() && only_partition_restricted && p.has_live_statics(now_ms) {
                matched.push(HashMap::new());
            }
            if def.desc {
                matched.reverse();
            }
            if *distinct {
                if !matched.is_empty() {
                    out.push(
                        columns
                            .iter()
                            .map(|c| key_value(c).unwrap_or(Value::Null))
                            .collect(),
                    );
                }
                continue;
            }
            for cells in matched {
                out.push(
                    columns
                        .iter()
                        .map(|c| {
                            key_value(c)
                                .or_else(|| {
                                    if def.statics.contains(c) {
                                        p.static_value(c, now_ms)
                                    } else {
                                        cells.get(c).cloned()
                                    }
                                })
                                .unwrap_or(Value::Null)
                        })
                        .collect(),
                );
            }
        }
        if let Some(n) = b.limit {
            out.truncate(n);
        }
        Ok(out)
    }

    fn next_ts(db: &mut Db, now_ms: i64) -> i64 {
        db.last_ts = (now_ms * 1000).max(db.last_ts + 1);
        db.last_ts
    }

    /// Execute one request against the model.
    pub fn execute(&self, request: &Request) -> Result<RowSet, FactsError> {
        let now_ms = self.now_ms();
        let mut db = self.data.lock().unwrap_or_else(|e| e.into_inner());
        match request {
            Request::Ddl { .. } => Ok(Vec::new()),
            Request::Execute { stmt, values } => {
                let b = self.bind(stmt, values)?;
                if matches!(b.parsed.kind, Kind::Select { .. }) {
                    return self.select(&db, &b, now_ms);
                }
                let conditional = b.parsed.if_not_exists || !b.conditions.is_empty();
                if conditional {
                    let (ok, current) = self.check(&db, &b, now_ms)?;
                    if !ok {
                        let mut row = vec![Value::Bool(false)];
                        row.extend(current);
                        return Ok(vec![row]);
                    }
                }
                let ts = Self::next_ts(&mut db, now_ms);
                self.write(&mut db, &b, ts, now_ms)?;
                Ok(if conditional {
                    vec![vec![Value::Bool(true)]]
                } else {
                    Vec::new()
                })
            }
            Request::Batch { statements, .. } => {
                let bound: Vec<Bound> = statements
                    .iter()
                    .map(|(s, v)| self.bind(s, v))
                    .collect::<Result<_, _>>()?;
                if bound
                    .iter()
                    .any(|b| matches!(b.parsed.kind, Kind::Select { .. }))
                {
                    return Err(unsupported("a read in a batch", "BATCH"));
                }
                let conditional = bound
                    .iter()
                    .any(|b| b.parsed.if_not_exists || !b.conditions.is_empty());
                if conditional {
                    let mut targets = std::collections::BTreeSet::new();
                    for b in &bound {
                        targets.insert((b.parsed.table.clone(), self.partition_of(b)?));
                    }
                    if targets.len() > 1 {
                        return Err(CqlError::Decode {
                            reason:
                                "Batch with conditions cannot span multiple tables or partitions"
                                    .into(),
                        }
                        .into());
                    }
                    let mut ok = true;
                    let mut current = Vec::new();
                    for b in bound
                        .iter()
                        .filter(|b| b.parsed.if_not_exists || !b.conditions.is_empty())
                    {
                        let (holds, cur) = self.check(&db, b, now_ms)?;
                        ok &= holds;
                        current.extend(cur);
                    }
                    if !ok {
                        let mut row = vec![Value::Bool(false)];
                        row.extend(current);
                        return Ok(vec![row]);
                    }
                }
                // Validate every statement before writing any: all or nothing.
                for b in &bound {
                    if self.partition_of(b)?.is_none() {
                        return Err(unsupported(
                            "a write without a whole partition key",
                            "BATCH",
                        ));
                    }
                }
                let ts = Self::next_ts(&mut db, now_ms);
                for b in &bound {
                    self.write(&mut db, b, ts, now_ms)?;
                }
                Ok(if conditional {
                    vec![vec![Value::Bool(true)]]
                } else {
                    Vec::new()
                })
            }
        }
    }
}

impl CqlSession for MemorySession {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        let out = self.execute(request);
        Box::pin(async move { out })
    }
}

/// What [`Faulty`] does to the next requests it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request is applied, then its answer is lost: an ambiguous timeout.
    TimeoutAfter,
    /// The request never reaches the cluster, and the client cannot tell: an ambiguous timeout.
    TimeoutBefore,
    /// The process dies before the request: it and every later request fail (the client is gone).
    Crash,
}

/// Which requests a planned fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `n`-th request from now (0: the next).
    Nth(usize),
    /// The next conditional (lightweight-transaction) request.
    NextConditional,
}

#[derive(Default)]
struct Plan {
    fault: Option<(Target, Fault)>,
    crashed: bool,
    seen: usize,
}

/// Wraps a session and injects one planned [`Fault`] at a time.
pub struct Faulty<S> {
    inner: S,
    plan: Mutex<Plan>,
}

impl<S: CqlSession> Faulty<S> {
    pub fn new(inner: S) -> Arc<Faulty<S>> {
        Arc::new(Faulty {
            inner,
            plan: Mutex::new(Plan::default()),
        })
    }

    /// Arm a fault (replacing any armed one, counting `Target::Nth` from now).
    pub fn arm(&self, target: Target, fault: Fault) {
        let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        p.fault = Some((target, fault));
        p.seen = 0;
    }

    /// Whether the armed fault has fired (or none is armed).
    pub fn fired(&self) -> bool {
        self.plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fault
            .is_none()
    }

    /// Whether a crash fault fired.
    pub fn crashed(&self) -> bool {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).crashed
    }

    fn decide(&self, r: &Request) -> Option<Fault> {
        let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if p.crashed {
            return Some(Fault::Crash);
        }
        let (target, fault) = p.fault?;
        let hit = match target {
            Target::Nth(n) => {
                p.seen += 1;
                p.seen == n + 1
            }
            Target::NextConditional => r.is_conditional(),
        };
        if !hit {
            return None;
        }
        p.fault = None;
        if fault == Fault::Crash {
            p.crashed = true;
        }
        Some(fault)
    }
}

fn injected(r: &Request, what: &str) -> FactsError {
    CqlError::OutcomeUnknown {
        request: r.name(),
        reason: format!("{what} (injected)"),
    }
    .into()
}

impl<S: CqlSession> CqlSession for Faulty<S> {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        let fault = self.decide(request);
        Box::pin(async move {
            match fault {
                None => self.inner.send(request).await,
                Some(Fault::TimeoutAfter) => {
                    self.inner.send(request).await?;
                    Err(injected(request, "timeout after the write applied"))
                }
                Some(Fault::TimeoutBefore) => Err(injected(request, "timeout, never applied")),
                Some(Fault::Crash) => Err(CqlError::Decode {
                    reason: format!("{}: the process crashed (injected)", request.name()),
                }
                .into()),
            }
        })
    }
}

/// A CQL store over `session`, on its own small runtime.
pub fn store_over(session: Arc<dyn CqlSession>) -> crate::CqlStore {
    let Ok(crate::StoreUrl::Cql(url)) = "cql://127.0.0.1/funnel_memory".parse() else {
        unreachable!("a constant, valid URL")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime for a test store: {e}"));
    crate::CqlStore::with_session(&url, session, rt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cql_statements as st;

    fn run(m: &MemorySession, s: Stmt, v: impl crate::cql_session::BindRow) -> RowSet {
        m.execute(&Request::execute(s, v)).unwrap()
    }

    #[test]
    fn last_write_wins_deletes_shadow_and_ttls_expire() {
        let m = MemorySession::new();
        run(&m, st::UPSERT_META, ("k", "1"));
        run(&m, st::UPSERT_META, ("k", "2"));
        assert_eq!(
            run(&m, st::SELECT_META, ("k",)),
            vec![vec![Value::Text("2".into())]]
        );
        // A put and a delete of one row in one batch share a timestamp: the delete wins.
        let both = Request::Batch {
            kind: crate::cql_session::BatchKind::Logged,
            statements: vec![
                (st::ENQUEUE_GC, vec![Value::BigInt(5), Value::BigInt(1)]),
                (st::DELETE_GC, vec![Value::BigInt(5), Value::BigInt(1)]),
            ],
        };
        m.execute(&both).unwrap();
        assert!(run(&m, st::SELECT_GC_DUE, (10i64,)).is_empty());
        run(&m, st::ENQUEUE_GC, (5i64, 1i64));
        assert_eq!(
            run(&m, st::SELECT_GC_DUE, (10i64,)).len(),
            1,
            "a later write lives"
        );
        // Leases: IF NOT EXISTS with a TTL; a second taker sees the holder; expiry frees it.
        let take = |holder: i64| run(&m, st::ACQUIRE_LEASE, (holder, 0i64, 60i32));
        assert_eq!(take(1), vec![vec![Value::Bool(true)]]);
        let lost = take(2);
        assert_eq!(lost[0][0], Value::Bool(false));
        assert!(lost[0].contains(&Value::BigInt(1)), "{lost:?}");
        let renew = run(&m, st::RENEW_LEASE, (60i32, 2i64, 0i64, 2i64));
        assert_eq!(renew, vec![vec![Value::Bool(false), Value::BigInt(1)]]);
        m.advance(61_000);
        assert_eq!(take(2), vec![vec![Value::Bool(true)]]);
        assert_eq!(run(&m, st::SELECT_LEASE, ()), vec![vec![Value::BigInt(2)]]);
    }

    /// Timestamps order by value and timeuuids by their time first (`TimeUUIDType`), not by their bytes:
    /// the raw rows' clustering (`ts`, id).
    #[test]
    fn timestamps_and_timeuuids_order_as_cassandra_orders_them() {
        assert_eq!(
            compare(&Value::Timestamp(-1), &Value::Timestamp(2)),
            Ordering::Less
        );
        // 6a1d2f10-3b1a-11ef-… (2024) against 00000001-0000-1fff-… (later: a larger time_hi), whose
        // bytes sort first.
        let early = [
            0x6a, 0x1d, 0x2f, 0x10, 0x3b, 0x1a, 0x11, 0xef, 0x9a, 0x8c, 0, 0, 0, 0, 0, 2,
        ];
        let late = [0, 0, 0, 1, 0, 0, 0x1f, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert!(late < early);
        assert_eq!(
            compare(&Value::Timeuuid(early), &Value::Timeuuid(late)),
            Ordering::Less
        );
        assert_eq!(uuid_time(&late), 0x0fff_0000_0000_0001);
        // Same time: by bytes.
        let mut other = early;
        other[15] = 3;
        assert_eq!(
            compare(&Value::Timeuuid(early), &Value::Timeuuid(other)),
            Ordering::Less
        );
    }

    #[test]
    fn reads_follow_clustering_order_ranges_and_limits() {
        let m = MemorySession::new();
        for run_id in [3i64, 1, 2] {
            run(&m, st::INSERT_RUN, (0i32, run_id, 0i64, "{}", "[]"));
        }
        let ids: Vec<Value> = run(&m, st::SELECT_RUNS, (0i32, 2i32))
            .into_iter()
            .map(|r| r[1].clone())
            .collect();
        assert_eq!(ids, [Value::BigInt(3), Value::BigInt(2)], "newest first");
        for (day, n) in [("2024-01-01", 1i64), ("2024-01-02", 2), ("2024-01-03", 3)] {
            run(&m, st::INSERT_COUNT, ("a", "hits", 7i64, day, "d", "v", n));
        }
        let mid = run(
            &m,
            st::SELECT_COUNTS,
            ("a", "hits", 7i64, "2024-01-02", "2024-01-09"),
        );
        assert_eq!(mid.len(), 2);
        assert_eq!(mid[0][3], Value::BigInt(2));
        let apps = run(&m, st::SELECT_WATERMARK_APPS, ());
        assert!(apps.is_empty());
        run(&m, st::DELETE_COUNTS_RUN, ("a", "hits", 7i64));
        assert!(run(
            &m,
            st::SELECT_COUNTS,
            ("a", "hits", 7i64, "2024-01-01", "2024-12-31")
        )
        .is_empty());
    }

    #[test]
    fn a_conditional_batch_applies_whole_or_not_at_all_and_stays_in_one_partition() {
        let m = MemorySession::new();
        // Two lease statements on one partition, the second's condition false: nothing applies.
        run(&m, st::ACQUIRE_LEASE, (1i64, 0i64, 600i32));
        let batch = |holder: i64| Request::Batch {
            kind: crate::cql_session::BatchKind::Logged,
            statements: vec![(
                st::RENEW_LEASE,
                vec![
                    Value::Int(600),
                    Value::BigInt(9),
                    Value::BigInt(0),
                    Value::BigInt(holder),
                ],
            )],
        };
        let r = m.execute(&batch(5)).unwrap();
        assert_eq!(r[0][0], Value::Bool(false));
        assert_eq!(run(&m, st::SELECT_LEASE, ()), vec![vec![Value::BigInt(1)]]);
        let r = m.execute(&batch(1)).unwrap();
        assert_eq!(r, vec![vec![Value::Bool(true)]]);
        assert_eq!(run(&m, st::SELECT_LEASE, ()), vec![vec![Value::BigInt(9)]]);
        let across = Request::Batch {
            kind: crate::cql_session::BatchKind::Logged,
            statements: vec![
                (
                    st::RENEW_LEASE,
                    vec![
                        Value::Int(600),
                        Value::BigInt(9),
                        Value::BigInt(0),
                        Value::BigInt(9),
                    ],
                ),
                (
                    st::UPSERT_META,
                    vec![Value::Text("k".into()), Value::Text("v".into())],
                ),
            ],
        };
        assert!(m.execute(&across).is_err());
        assert!(run(&m, st::SELECT_META, ("k",)).is_empty());
    }

    #[test]
    fn every_statement_of_the_store_is_modelled() {
        let m = MemorySession::new();
        for s in st::ALL {
            let p = m.parsed(s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(p.order.len(), s.arity, "{}", s.name);
            assert!(m.tables.contains_key(&p.table), "{}", s.name);
        }
    }
}
