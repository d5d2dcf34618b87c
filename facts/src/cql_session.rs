//! The session seam of the CQL store: every request the store sends — each prepared statement, each batch,
//! each DDL of `init` — is one [`Request`] handed to a [`CqlSession`], and so is every upsert of the
//! stream's raw rows (`stream::raw`, its own statements and keyspace). The driver is one implementation
//! ([`DriverSession`]); [`Recorder`] wraps any other and keeps what was sent, so tests can check every
//! request against Cassandra's own limits ([`crate::cql_contract`]) and inject faults between requests.
//!
//! A request carries what a cluster judges it by: the statement (its CQL template and name), the bound
//! [`Value`]s (so their serialized sizes are known), the batch type and statements, and — derived from the
//! statement — its consistency, serial consistency and idempotency. Values are the store's own small enum,
//! not the driver's, so a request can be built, recorded and sized without a server.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::cql_statements::Stmt;
use crate::error::{CqlError, FactsError};

/// A bound value or a column read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    BigInt(i64),
    Int(i32),
    Double(f64),
    Blob(Vec<u8>),
    Bool(bool),
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// `timeuuid`: the 16 bytes of a version-1 UUID.
    Timeuuid([u8; 16]),
    /// `inet`.
    Inet(IpAddr),
    /// `map<text,text>`: as a bound value of `col = col + ?`, the entries appended.
    TextMap(BTreeMap<String, String>),
}

impl Value {
    /// Bytes of the value as serialized in a cell: what Cassandra counts as a cell's value size.
    pub fn size(&self) -> usize {
        match self {
            Value::Null => 0,
            Value::Text(s) => s.len(),
            Value::BigInt(_) | Value::Double(_) => 8,
            Value::Int(_) => 4,
            Value::Blob(b) => b.len(),
            Value::Bool(_) => 1,
            Value::Timestamp(_) => 8,
            Value::Timeuuid(_) => 16,
            Value::Inet(IpAddr::V4(_)) => 4,
            Value::Inet(IpAddr::V6(_)) => 16,
            // A non-frozen map is one cell per entry: key (the cell path) and value.
            Value::TextMap(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
        }
    }

    /// The CQL type the value binds to.
    pub fn cql_type(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Text(_) => "text",
            Value::BigInt(_) => "bigint",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Blob(_) => "blob",
            Value::Bool(_) => "boolean",
            Value::Timestamp(_) => "timestamp",
            Value::Timeuuid(_) => "timeuuid",
            Value::Inet(_) => "inet",
            Value::TextMap(_) => "map<text,text>",
        }
    }
}

/// A Rust value that binds to one `?` of a statement.
pub trait Bind {
    fn bind(self) -> Value;
}

macro_rules! bind {
    ($($t:ty => |$v:ident| $e:expr;)*) => {
        $(impl Bind for $t {
            fn bind(self) -> Value {
                let $v = self;
                $e
            }
        })*
    };
}

bind! {
    Value => |v| v;
    String => |v| Value::Text(v);
    &String => |v| Value::Text(v.clone());
    &str => |v| Value::Text(v.to_string());
    i64 => |v| Value::BigInt(v);
    &i64 => |v| Value::BigInt(*v);
    i32 => |v| Value::Int(v);
    f64 => |v| Value::Double(v);
    bool => |v| Value::Bool(v);
    Vec<u8> => |v| Value::Blob(v);
    &Vec<u8> => |v| Value::Blob(v.clone());
    IpAddr => |v| Value::Inet(v);
    BTreeMap<String, String> => |v| Value::TextMap(v);
    &BTreeMap<String, String> => |v| Value::TextMap(v.clone());
}

impl<T: Bind> Bind for Option<T> {
    fn bind(self) -> Value {
        self.map_or(Value::Null, Bind::bind)
    }
}

/// The values of one statement (a tuple of [`Bind`] values, or the values themselves).
pub trait BindRow {
    fn bind_row(self) -> Vec<Value>;
}

impl BindRow for Vec<Value> {
    fn bind_row(self) -> Vec<Value> {
        self
    }
}

macro_rules! bind_row {
    ($(($($t:ident),*))*) => {
        $(
            #[allow(non_snake_case)]
            impl<$($t: Bind),*> BindRow for ($($t,)*) {
                fn bind_row(self) -> Vec<Value> {
                    let ($($t,)*) = self;
                    vec![$($t.bind()),*]
                }
            }
        )*
    };
}

bind_row! {
    ()
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
    (A, B, C, D, E, F, G, H, I)
    (A, B, C, D, E, F, G, H, I, J)
    (A, B, C, D, E, F, G, H, I, J, K)
}

fn mismatch(expected: &'static str, got: &Value) -> FactsError {
    FactsError::from(CqlError::Decode {
        reason: format!("expected a {expected} column, got {}", got.cql_type()),
    })
}

/// A Rust value one column of a result row decodes into.
pub trait FromValue: Sized {
    fn from_value(v: Value) -> Result<Self, FactsError>;
}

macro_rules! from_value {
    ($($t:ty, $name:literal, $variant:ident;)*) => {
        $(impl FromValue for $t {
            fn from_value(v: Value) -> Result<Self, FactsError> {
                match v {
                    Value::$variant(x) => Ok(x),
                    other => Err(mismatch($name, &other)),
                }
            }
        })*
    };
}

from_value! {
    String, "text", Text;
    i64, "bigint", BigInt;
    i32, "int", Int;
    f64, "double", Double;
    Vec<u8>, "blob", Blob;
    bool, "boolean", Bool;
    IpAddr, "inet", Inet;
    BTreeMap<String, String>, "map<text,text>", TextMap;
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, FactsError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A result row decoded into a tuple.
pub trait FromRow: Sized {
    fn from_row(row: Vec<Value>) -> Result<Self, FactsError>;
}

macro_rules! from_row {
    ($(($n:literal; $($t:ident),*))*) => {
        $(
            impl<$($t: FromValue),*> FromRow for ($($t,)*) {
                fn from_row(row: Vec<Value>) -> Result<Self, FactsError> {
                    if row.len() != $n {
                        return Err(FactsError::from(CqlError::Decode {
                            reason: format!("expected {} columns, got {}", $n, row.len()),
                        }));
                    }
                    let mut it = row.into_iter();
                    Ok(($($t::from_value(it.next().unwrap_or(Value::Null))?,)*))
                }
            }
        )*
    };
}

from_row! {
    (1; A)
    (2; A, B)
    (3; A, B, C)
    (4; A, B, C, D)
    (5; A, B, C, D, E)
    (6; A, B, C, D, E, F)
    (7; A, B, C, D, E, F, G)
    (8; A, B, C, D, E, F, G, H)
    (9; A, B, C, D, E, F, G, H, I)
}

/// CQL batch types the store sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Atomic across partitions through the batchlog (a single-partition logged batch skips the batchlog).
    Logged,
    /// No batchlog: only ever one partition (the contract checks it).
    Unlogged,
}

/// Consistency levels the store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every read and write: a read after a write in the same datacenter sees it.
    LocalQuorum,
    /// The Paxos phase of a lightweight transaction (conditional statements only).
    LocalSerial,
}

/// One request to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// One prepared statement.
    Execute { stmt: Stmt, values: Vec<Value> },
    /// Prepared statements sent as one CQL batch.
    Batch {
        kind: BatchKind,
        statements: Vec<(Stmt, Vec<Value>)>,
    },
    /// Schema DDL, sent unprepared and followed by a wait for schema agreement (`funnel facts init` only).
    Ddl { cql: String },
}

impl Request {
    /// A prepared statement with its values.
    pub fn execute(stmt: Stmt, values: impl BindRow) -> Request {
        Request::Execute {
            stmt,
            values: values.bind_row(),
        }
    }

    /// The statements of the request (none for DDL).
    pub fn statements(&self) -> Vec<(&Stmt, &[Value])> {
        match self {
            Request::Execute { stmt, values } => vec![(stmt, values.as_slice())],
            Request::Batch { statements, .. } => {
                statements.iter().map(|(s, v)| (s, v.as_slice())).collect()
            }
            Request::Ddl { .. } => Vec::new(),
        }
    }

    /// Whether a statement of the request is conditional (`IF …`: a lightweight transaction).
    pub fn is_conditional(&self) -> bool {
        self.statements().iter().any(|(s, _)| s.is_conditional())
    }

    /// Whether the request only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Execute { stmt, .. } if stmt.is_read())
    }

    /// Consistency of the request: `LOCAL_SERIAL` for a serial read ([`Stmt::is_serial_read`]),
    /// `LOCAL_QUORUM` for everything else.
    pub fn consistency(&self) -> Consistency {
        match self {
            Request::Execute { stmt, .. } if stmt.is_serial_read() => Consistency::LocalSerial,
            _ => Consistency::LocalQuorum,
        }
    }

    /// Serial consistency: `LOCAL_SERIAL` for lightweight transactions, none otherwise.
    pub fn serial_consistency(&self) -> Option<Consistency> {
        self.is_conditional().then_some(Consistency::LocalSerial)
    }

    /// Whether sending it twice is the same as once, so the driver may retry or speculate: reads, upserts
    /// and deletes are; a lightweight transaction is not (a retry of an applied one reports "not applied").
    pub fn is_idempotent(&self) -> bool {
        !self.is_conditional() && !matches!(self, Request::Ddl { .. })
    }

    /// A short name for messages: the statement, or the batch's statements.
    pub fn name(&self) -> String {
        match self {
            Request::Execute { stmt, .. } => stmt.name.to_string(),
            Request::Batch { kind, statements } => format!(
                "{kind:?} batch of {} ({})",
                statements.len(),
                statements.first().map_or("", |s| s.0.name)
            ),
            Request::Ddl { cql } => cql.split(" (").next().unwrap_or(cql).to_string(),
        }
    }
}

/// RowSet a request returned (empty for writes; an LWT returns its `[applied]` row).
pub type RowSet = Vec<Vec<Value>>;

/// What sending a request returns.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<RowSet, FactsError>> + Send + 'a>>;

/// Where the store's requests go. Implementations: [`DriverSession`] (a cluster), [`Recorder`] (any other,
/// recorded).
pub trait CqlSession: Send + Sync {
    /// Send one request and return its rows (a paged read returns all its pages).
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a>;
}

/// Wraps a session and keeps every request sent through it, in order.
pub struct Recorder<S> {
    inner: S,
    log: Mutex<Vec<Request>>,
}

impl<S: CqlSession> Recorder<S> {
    pub fn new(inner: S) -> Arc<Recorder<S>> {
        Arc::new(Recorder {
            inner,
            log: Mutex::new(Vec::new()),
        })
    }

    /// Every request sent so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forget what was recorded.
    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The wrapped session.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: CqlSession> CqlSession for Recorder<S> {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        self.inner.send(request)
    }
}

impl<S: CqlSession + ?Sized> CqlSession for Arc<S> {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        (**self).send(request)
    }
}

pub use driver::DriverSession;

/// The real session: the `scylla` driver.
mod driver {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use futures::TryStreamExt;
    use scylla::client::execution_profile::ExecutionProfileHandle;
    use scylla::client::session::Session;
    use scylla::statement::batch::{Batch, BatchType};
    use scylla::statement::prepared::PreparedStatement;
    use scylla::statement::{Consistency as DriverConsistency, SerialConsistency};
    use scylla::value::{CqlTimestamp, CqlTimeuuid, CqlValue, Row};

    use super::{BatchKind, CqlSession, Reply, Request, RowSet, Value};
    use crate::cql_statements::Stmt;
    use crate::error::{CqlError, FactsError};

    /// A `scylla` session: statements are prepared on first use (per keyspace), with the request's
    /// consistency and idempotency; reads use the session's read profile (speculative execution).
    pub struct DriverSession {
        session: Session,
        keyspace: String,
        read_profile: ExecutionProfileHandle,
        prepared: Mutex<HashMap<&'static str, PreparedStatement>>,
    }

    impl DriverSession {
        pub fn new(
            session: Session,
            keyspace: &str,
            read_profile: ExecutionProfileHandle,
        ) -> DriverSession {
            DriverSession {
                session,
                keyspace: keyspace.to_string(),
                read_profile,
                prepared: Mutex::new(HashMap::new()),
            }
        }

        /// Prepares `s` now (it is otherwise prepared on first use), so a missing table fails at start.
        pub async fn prepare(&self, s: &Stmt) -> Result<(), FactsError> {
            self.prepared(s).await.map(|_| ())
        }

        /// The driver session (tests read rows back through it).
        pub fn session(&self) -> &Session {
            &self.session
        }

        async fn prepared(&self, s: &Stmt) -> Result<PreparedStatement, FactsError> {
            if let Some(p) = self.cached(s.name) {
                return Ok(p);
            }
            let mut p = self
                .session
                .prepare(s.cql(&self.keyspace))
                .await
                .map_err(|source| CqlError::Prepare {
                    statement: s.name,
                    source,
                })?;
            let one = Request::Execute {
                stmt: *s,
                values: Vec::new(),
            };
            p.set_is_idempotent(one.is_idempotent());
            p.set_consistency(match one.consistency() {
                super::Consistency::LocalSerial => DriverConsistency::LocalSerial,
                super::Consistency::LocalQuorum => DriverConsistency::LocalQuorum,
            });
            if one.is_conditional() {
                p.set_serial_consistency(Some(SerialConsistency::LocalSerial));
            }
            if one.is_read() {
                p.set_execution_profile_handle(Some(self.read_profile.clone()));
            }
            self.prepared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(s.name, p.clone());
            Ok(p)
        }

        fn cached(&self, name: &str) -> Option<PreparedStatement> {
            self.prepared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()
        }

        async fn run(&self, request: &Request) -> Result<RowSet, FactsError> {
            match request {
                Request::Ddl { cql } => {
                    self.session
                        .query_unpaged(cql.replace("{ks}", &self.keyspace), ())
                        .await?;
                    self.session.await_schema_agreement().await?;
                    Ok(Vec::new())
                }
                Request::Execute { stmt, values } if stmt.is_read() => {
                    let p = self.prepared(stmt).await?;
                    let pager = self.session.execute_iter(p, driver_row(values)).await?;
                    let rows: Vec<Row> = pager.rows_stream::<Row>()?.try_collect().await?;
                    rows.into_iter().map(from_driver_row).collect()
                }
                Request::Execute { stmt, values } => {
                    let p = self.prepared(stmt).await?;
                    let result = self.session.execute_unpaged(&p, driver_row(values)).await?;
                    result_rows(result)
                }
                Request::Batch { kind, statements } => {
                    let mut batch = Batch::new(match kind {
                        BatchKind::Logged => BatchType::Logged,
                        BatchKind::Unlogged => BatchType::Unlogged,
                    });
                    let mut values = Vec::with_capacity(statements.len());
                    for (s, v) in statements {
                        batch.append_statement(self.prepared(s).await?);
                        values.push(driver_row(v));
                    }
                    batch.set_is_idempotent(request.is_idempotent());
                    batch.set_consistency(DriverConsistency::LocalQuorum);
                    if request.is_conditional() {
                        batch.set_serial_consistency(Some(SerialConsistency::LocalSerial));
                    }
                    let result = self.session.batch(&batch, values).await?;
                    result_rows(result)
                }
            }
        }
    }

    impl CqlSession for DriverSession {
        fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
            Box::pin(self.run(request))
        }
    }

    fn result_rows(
        result: scylla::response::query_result::QueryResult,
    ) -> Result<RowSet, FactsError> {
        if !result.is_rows() {
            return Ok(Vec::new());
        }
        let rows = result.into_rows_result().map_err(CqlError::from)?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>().map_err(CqlError::from)? {
            out.push(from_driver_row(row.map_err(CqlError::from)?)?);
        }
        Ok(out)
    }

    pub(super) fn driver_row(values: &[Value]) -> Vec<Option<CqlValue>> {
        values
            .iter()
            .map(|v| match v {
                Value::Null => None,
                Value::Text(s) => Some(CqlValue::Text(s.clone())),
                Value::BigInt(n) => Some(CqlValue::BigInt(*n)),
                Value::Int(n) => Some(CqlValue::Int(*n)),
                Value::Double(d) => Some(CqlValue::Double(*d)),
                Value::Blob(b) => Some(CqlValue::Blob(b.clone())),
                Value::Bool(b) => Some(CqlValue::Boolean(*b)),
                Value::Timestamp(ms) => Some(CqlValue::Timestamp(CqlTimestamp(*ms))),
                Value::Timeuuid(b) => Some(CqlValue::Timeuuid(CqlTimeuuid::from_bytes(*b))),
                Value::Inet(ip) => Some(CqlValue::Inet(*ip)),
                Value::TextMap(m) => Some(CqlValue::Map(
                    m.iter()
                        .map(|(k, v)| (CqlValue::Text(k.clone()), CqlValue::Text(v.clone())))
                        .collect(),
                )),
            })
            .collect()
    }

    /// A `map<text,text>` read back (any other map is not a column the store reads).
    fn text_map(entries: Vec<(CqlValue, CqlValue)>) -> Result<Value, FactsError> {
        entries
            .into_iter()
            .map(|kv| match kv {
                (CqlValue::Text(k), CqlValue::Text(v)) => Ok((k, v)),
                other => Err(FactsError::from(CqlError::Decode {
                    reason: format!(
                        "unexpected map entry {other:?}, expected text keys and values"
                    ),
                })),
            })
            .collect::<Result<_, _>>()
            .map(Value::TextMap)
    }

    fn from_driver_row(row: Row) -> Result<Vec<Value>, FactsError> {
        row.columns
            .into_iter()
            .map(|c| match c {
                None => Ok(Value::Null),
                Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => Ok(Value::Text(s)),
                Some(CqlValue::BigInt(n)) => Ok(Value::BigInt(n)),
                Some(CqlValue::Int(n)) => Ok(Value::Int(n)),
                Some(CqlValue::Double(d)) => Ok(Value::Double(d)),
                Some(CqlValue::Blob(b)) => Ok(Value::Blob(b)),
                Some(CqlValue::Boolean(b)) => Ok(Value::Bool(b)),
                Some(CqlValue::Timestamp(t)) => Ok(Value::Timestamp(t.0)),
                Some(CqlValue::Timeuuid(u)) => Ok(Value::Timeuuid(*u.as_bytes())),
                Some(CqlValue::Inet(ip)) => Ok(Value::Inet(ip)),
                Some(CqlValue::Map(entries)) => text_map(entries),
                Some(other) => Err(FactsError::from(CqlError::Decode {
                    reason: format!("unexpected column value {other:?}"),
                })),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cql_statements as st;

    #[test]
    fn tuples_bind_and_decode() {
        let r = Request::execute(
            st::FINISH_RUN,
            ("failed", 5i64, Some("boom".to_string()), None::<i64>, 7i64),
        );
        let Request::Execute { values, .. } = &r else {
            panic!("{r:?}")
        };
        assert_eq!(
            values,
            &[
                Value::Text("failed".into()),
                Value::BigInt(5),
                Value::Text("boom".into()),
                Value::Null,
                Value::BigInt(7)
            ]
        );
        assert!(r.is_idempotent() && !r.is_read());
        let row: (String, Option<i64>) =
            FromRow::from_row(vec![Value::Text("x".into()), Value::Null]).unwrap();
        assert_eq!(row, ("x".to_string(), None));
        let bad = <(i64,)>::from_row(vec![Value::Text("x".into())]).unwrap_err();
        assert!(
            bad.to_string()
                .contains("expected a bigint column, got text"),
            "{bad}"
        );
        assert!(<(i64,)>::from_row(vec![]).is_err());
    }

    /// The raw rows' types reach the driver as the values their columns take: serialized the way the
    /// driver serializes a prepared statement's values against the server's column types.
    #[test]
    fn raw_row_types_serialize_as_their_cql_types() {
        use scylla::frame::response::result::{
            CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec,
        };
        use scylla::serialize::row::{RowSerializationContext, SerializeRow};
        use scylla::serialize::writers::RowWriter;
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let id = [
            0x5f, 0x0c, 0x6b, 0x2e, 0x3b, 0x1a, 0x11, 0xef, 0x9a, 0x8c, 0x02, 0x42, 0xac, 0x12, 0,
            2,
        ];
        let values = vec![
            Value::Timestamp(1_795_168_800_250),
            Value::Timeuuid(id),
            Value::Inet(ip),
            Value::TextMap(BTreeMap::from([("plan".to_string(), "free".to_string())])),
        ];
        let native = |t| ColumnType::Native(t);
        let types = [
            native(NativeType::Timestamp),
            native(NativeType::Timeuuid),
            native(NativeType::Inet),
            ColumnType::Collection {
                frozen: false,
                typ: CollectionType::Map(
                    Box::new(native(NativeType::Text)),
                    Box::new(native(NativeType::Text)),
                ),
            },
        ];
        let names = ["ts", "id", "ip", "props"];
        let specs: Vec<ColumnSpec<'static>> = names
            .iter()
            .zip(types.clone())
            .map(|(n, t)| ColumnSpec::borrowed(n, t, TableSpec::borrowed("ks", "t")))
            .collect();
        let mut buf = Vec::new();
        let mut w = RowWriter::new(&mut buf);
        driver::driver_row(&values)
            .serialize(&RowSerializationContext::from_specs(&specs), &mut w)
            .unwrap();
        assert_eq!(w.value_count(), 4);
        let mut expected = Vec::new();
        expected.extend(8i32.to_be_bytes());
        expected.extend(1_795_168_800_250i64.to_be_bytes());
        expected.extend(16i32.to_be_bytes());
        expected.extend(id);
        expected.extend(16i32.to_be_bytes());
        expected.extend(
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        // map: [bytes len][n][len key][key][len value][value]
        expected.extend(20i32.to_be_bytes());
        expected.extend(1i32.to_be_bytes());
        expected.extend(4i32.to_be_bytes());
        expected.extend(b"plan");
        expected.extend(4i32.to_be_bytes());
        expected.extend(b"free");
        assert_eq!(buf, expected);
        // And a value of the wrong type is refused before it is sent (text where a timestamp goes).
        let mut buf = Vec::new();
        let wrong = driver::driver_row(&[Value::Text("2026-11-20".into())]);
        let ts_only = &specs[..1];
        assert!(wrong
            .serialize(
                &RowSerializationContext::from_specs(ts_only),
                &mut RowWriter::new(&mut buf)
            )
            .is_err());
        assert_eq!(Value::Inet(ip).size(), 16);
        assert_eq!(values[3].size(), 8);
        assert_eq!(values[3].cql_type(), "map<text,text>");
    }
}
