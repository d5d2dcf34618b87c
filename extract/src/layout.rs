//! The columns of an extract: one Arrow row per entry of an SSTable's unfiltered stream (a partition
//! header, the static row, a row, a range tombstone marker), in Data.db order.
//!
//! | column | on | holds |
//! | --- | --- | --- |
//! | `kind` | all | [`KIND_PARTITION`], [`KIND_ROW`], [`KIND_STATIC`], [`KIND_MARKER`] |
//! | `key`, `position`, `token` | partitions | serialized key, Data.db position, token (16 bytes, big-endian) |
//! | `del_at`, `del_ldt` | partitions, rows, markers | partition / row deletion, the deletion a marker opens |
//! | `end_at`, `end_ldt` | markers | the deletion a marker closes |
//! | `shadow_at`, `shadow_ldt` | rows | shadowable row deletion |
//! | `lv_ts`, `lv_ttl`, `lv_exp` | rows | primary-key liveness (null: none); `lv_exp` null with a TTL: the timestamp's second plus the TTL |
//! | `bound`, `clen` | rows, markers | bound kind (markers), number of clustering values |
//! | `c:NAME` | rows, markers | clustering values (null: a null component, or past `clen`); fixed-size binary for fixed-length types |
//! | `s:NAME` / `r:NAME` | rows | (the columns the footer lists) a static / regular column's cell value; text as a dictionary; a multi-cell column (map, set, list, UDT) as a map from cell path to value |
//! | `s:NAME@meta` / `r:NAME@meta` | rows | null when every cell of the column was written with the row's liveness (timestamp, TTL, expiry); otherwise per cell 21 bytes: timestamp, TTL, local deletion time, tombstone flag |
//! | `r:NAME@del` | rows | a multi-cell column's deletion (16 bytes), null when none, empty when it is the one a collection literal writes (the row's liveness timestamp − 1, deleted at that timestamp's second) |
//!
//! Nothing is decided at extraction: tombstones, TTLs and expiry times are kept as written, so a merge
//! over extracts answers at any `now` what the merge over the SSTables answers.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use sstable_reader::{Column, CqlType, LivenessInfo, Projection, TableSchema};

/// Bumped whenever the columns or their meaning change: older entries are then foreign and rebuilt.
/// Version 3: an extract holds the static and regular columns its footer lists (not always all).
pub const FORMAT_VERSION: u32 = 3;

pub const KIND_PARTITION: u8 = 0;
pub const KIND_ROW: u8 = 1;
pub const KIND_STATIC: u8 = 2;
pub const KIND_MARKER: u8 = 3;

/// Bytes of one cell's metadata in a `@meta` blob.
pub const META_BYTES: usize = 21;

/// The footer metadata key of the extract's description ([`crate::Summary`]).
pub const METADATA_KEY: &str = "funnel.extract";

/// The fixed columns, in order, before the clustering columns.
pub const FIXED: [&str; 15] = [
    "kind",
    "bound",
    "key",
    "position",
    "token",
    "del_at",
    "del_ldt",
    "end_at",
    "end_ldt",
    "shadow_at",
    "shadow_ldt",
    "lv_ts",
    "lv_ttl",
    "lv_exp",
    "clen",
];

/// How a static or regular column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One cell: its value bytes.
    Plain,
    /// One cell of a fixed-length type (timestamps, uuids, ints): fixed-size binary of that length.
    Fixed(i32),
    /// One cell of text: dictionary-encoded.
    Dictionary,
    /// Cells of a multi-cell column: a map from cell path to value.
    Map,
}

/// How a static or regular column is stored: multi-cell columns as maps, text (names, app ids,
/// trackers) in a dictionary, fixed-length types at their width; `plain`: columns that turned out not to
/// fit that (too many distinct values, a value of another length) and are stored as they come.
pub fn storage(c: &Column, plain: &[String]) -> Storage {
    if c.ty.is_multi_cell() {
        Storage::Map
    } else if plain.contains(&c.name) {
        Storage::Plain
    } else if matches!(c.ty.base(), CqlType::Text | CqlType::Ascii) {
        Storage::Dictionary
    } else {
        fixed(c).map_or(Storage::Plain, Storage::Fixed)
    }
}

/// The width of a column's values when its type has one (and it is not 0).
fn fixed(c: &Column) -> Option<i32> {
    c.ty.fixed_length()
        .filter(|&n| n > 0)
        .and_then(|n| i32::try_from(n).ok())
}

/// The width of a clustering column's values in the extract (`None`: variable).
pub fn clustering_width(c: &Column, plain: &[String]) -> Option<i32> {
    if plain.contains(&c.name) {
        None
    } else {
        fixed(c)
    }
}

pub fn clustering_name(c: &Column) -> String {
    format!("c:{}", c.name)
}

pub fn column_name(c: &Column, is_static: bool) -> String {
    format!("{}:{}", if is_static { "s" } else { "r" }, c.name)
}

fn map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Binary, false),
            Field::new("values", DataType::Binary, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The names of the static and regular columns of `schema` that `held` includes (what an extract's
/// footer lists), in the SSTable's column order.
pub fn held_names(schema: &TableSchema, held: &Projection) -> Vec<String> {
    let statics = schema.statics.iter().enumerate();
    let statics = statics.filter(|(j, _)| held.includes_static(*j));
    let regulars = schema.regulars.iter().enumerate();
    let regulars = regulars.filter(|(j, _)| held.includes_regular(*j));
    statics
        .chain(regulars)
        .map(|(_, c)| c.name.clone())
        .collect()
}

/// The projection of the static and regular columns `names` of `schema` (names it lacks are ignored:
/// an extract lists only its SSTable's columns).
pub fn held_projection<S: AsRef<str>>(schema: &TableSchema, names: &[S]) -> Projection {
    let here: Vec<&str> = names
        .iter()
        .map(AsRef::as_ref)
        .filter(|n| schema.column(n).is_some())
        .collect();
    Projection::columns(schema, &here).unwrap_or_else(|_| Projection::none(schema))
}

/// Whether every static and regular column `wanted` includes is `held`.
pub fn covers(schema: &TableSchema, held: &Projection, wanted: &Projection) -> bool {
    (0..schema.statics.len()).all(|j| !wanted.includes_static(j) || held.includes_static(j))
        && (0..schema.regulars.len())
            .all(|j| !wanted.includes_regular(j) || held.includes_regular(j))
}

/// The Arrow schema of an extract of an SSTable with `schema` holding the static and regular columns
/// `held` includes (`plain_text`: text columns stored without a dictionary).
pub fn arrow_schema(schema: &TableSchema, plain_text: &[String], held: &Projection) -> Schema {
    let i64n = |n: &str| Field::new(n, DataType::Int64, true);
    let mut fields = vec![
        Field::new("kind", DataType::UInt8, false),
        Field::new("bound", DataType::UInt8, true),
        Field::new("key", DataType::Binary, true),
        Field::new("position", DataType::UInt64, true),
        Field::new("token", DataType::FixedSizeBinary(16), true),
        i64n("del_at"),
        i64n("del_ldt"),
        i64n("end_at"),
        i64n("end_ldt"),
        i64n("shadow_at"),
        i64n("shadow_ldt"),
        i64n("lv_ts"),
        Field::new("lv_ttl", DataType::Int32, true),
        i64n("lv_exp"),
        Field::new("clen", DataType::UInt16, true),
    ];
    for c in &schema.clustering {
        let ty =
            clustering_width(c, plain_text).map_or(DataType::Binary, DataType::FixedSizeBinary);
        fields.push(Field::new(clustering_name(c), ty, true));
    }
    for (cols, is_static) in [(&schema.statics, true), (&schema.regulars, false)] {
        for (j, c) in cols.iter().enumerate() {
            let holds = if is_static {
                held.includes_static(j)
            } else {
                held.includes_regular(j)
            };
            if !holds {
                continue;
            }
            let name = column_name(c, is_static);
            let ty = match storage(c, plain_text) {
                Storage::Plain => DataType::Binary,
                Storage::Fixed(n) => DataType::FixedSizeBinary(n),
                Storage::Dictionary => {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
                }
                Storage::Map => map_type(),
            };
            fields.push(Field::new(&name, ty, true));
            fields.push(Field::new(format!("{name}@meta"), DataType::Binary, true));
            if storage(c, plain_text) == Storage::Map {
                fields.push(Field::new(format!("{name}@del"), DataType::Binary, true));
            }
        }
    }
    Schema::new(fields)
}

/// The expiry a write at the liveness's timestamp with its TTL sets (its second plus the TTL).
pub fn derived_expiry(lv: &LivenessInfo) -> Option<i64> {
    lv.timestamp
        .div_euclid(1_000_000)
        .checked_add(i64::from(lv.ttl))
}
