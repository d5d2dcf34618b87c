//! The row view predicates evaluate against: one row of an actor's timeline (an app event or an
//! attributed hit), borrowed from wherever it lives (an SSTable page, a test vector) without copying.

/// Which source table a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// App events (`tracking.events` by default).
    Events,
    /// Attributed hit→event pairs (`tracking.conversions` by default).
    Conversions,
}

impl Table {
    /// Both tables, in their index order.
    pub const ALL: [Table; 2] = [Table::Events, Table::Conversions];

    /// Stable index (0 = events, 1 = conversions).
    pub fn index(self) -> usize {
        match self {
            Table::Events => 0,
            Table::Conversions => 1,
        }
    }

    /// Lower-case name used in definitions and messages.
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Conversions => "conversions",
        }
    }
}

/// A column a compiled definition refers to. `id` indexes [`crate::FunnelSet::columns`] for the
/// row's table, so a row source can map it to its own column position once (a lookup vector) and
/// never compare names per row; `name` is there for sources that look columns up by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    /// Position in `FunnelSet::columns(table)`.
    pub id: u16,
    /// Column name as written in the definition / source mapping.
    pub name: String,
}

/// A borrowed cell value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Missing or null.
    Null,
    /// Text (text, varchar, inet rendered as text, uuid rendered as text…).
    Str(&'a str),
    /// Integer (int, bigint; timestamps as milliseconds since the epoch).
    Int(i64),
    /// Floating point.
    Float(f64),
}

/// One row of an actor's timeline, as the funnel predicates see it.
///
/// Implement this over the storage's borrowed rows. `ts_ms` is the source mapping's time column of
/// the row's table (`ts` for events, `hit_ts` for conversions by default), in milliseconds since
/// 1970-01-01 UTC.
pub trait RowView {
    /// The table the row belongs to.
    fn table(&self) -> Table;
    /// The row's time in milliseconds since the epoch.
    fn ts_ms(&self) -> i64;
    /// A column's value (`Value::Null` when absent).
    fn column(&self, col: &ColumnRef) -> Value<'_>;
    /// A text column's bytes, possibly not valid UTF-8 (then [`RowView::column`] says `Null`): what
    /// memoised matchers key on, so that a row costs no UTF-8 check. `None` when the column is
    /// absent or not text.
    fn column_bytes(&self, col: &ColumnRef) -> Option<&[u8]> {
        match self.column(col) {
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    /// A key of a `map<text,text>` column (`None` when the map or the key is absent).
    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str>;
}

impl<T: RowView + ?Sized> RowView for &T {
    fn table(&self) -> Table {
        (**self).table()
    }
    fn ts_ms(&self) -> i64 {
        (**self).ts_ms()
    }
    fn column(&self, col: &ColumnRef) -> Value<'_> {
        (**self).column(col)
    }
    fn column_bytes(&self, col: &ColumnRef) -> Option<&[u8]> {
        (**self).column_bytes(col)
    }
    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str> {
        (**self).property(map, key)
    }
}

/// An owned cell value, for [`OwnedRow`].
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Floating point.
    Float(f64),
    /// A `map<text,text>`.
    Map(Vec<(String, String)>),
}

/// A simple owned row (tests, generators, small inputs); columns are looked up by name.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRow {
    /// Source table.
    pub table: Table,
    /// Time in ms since the epoch.
    pub ts_ms: i64,
    /// Named cells.
    pub cells: Vec<(String, OwnedValue)>,
}

impl OwnedRow {
    /// An events row with a name column `name` and a `props` map.
    pub fn event(ts_ms: i64, name: &str, props: &[(&str, &str)]) -> Self {
        OwnedRow {
            table: Table::Events,
            ts_ms,
            cells: vec![
                ("ts".into(), OwnedValue::Int(ts_ms)),
                ("name".into(), OwnedValue::Str(name.into())),
                (
                    "props".into(),
                    OwnedValue::Map(
                        props
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                ),
            ],
        }
    }

    /// A conversions row (an attributed hit at `hit_ts_ms`) with a tracker and referrer.
    pub fn hit(hit_ts_ms: i64, tracker: &str, referrer: &str) -> Self {
        OwnedRow {
            table: Table::Conversions,
            ts_ms: hit_ts_ms,
            cells: vec![
                ("hit_ts".into(), OwnedValue::Int(hit_ts_ms)),
                ("tracker".into(), OwnedValue::Str(tracker.into())),
                ("referrer".into(), OwnedValue::Str(referrer.into())),
            ],
        }
    }

    fn cell(&self, name: &str) -> Option<&OwnedValue> {
        self.cells.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl RowView for OwnedRow {
    fn table(&self) -> Table {
        self.table
    }
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn column(&self, col: &ColumnRef) -> Value<'_> {
        match self.cell(&col.name) {
            Some(OwnedValue::Str(s)) => Value::Str(s),
            Some(OwnedValue::Int(i)) => Value::Int(*i),
            Some(OwnedValue::Float(f)) => Value::Float(*f),
            Some(OwnedValue::Map(_)) | None => Value::Null,
        }
    }
    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str> {
        match self.cell(&map.name) {
            Some(OwnedValue::Map(entries)) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}
