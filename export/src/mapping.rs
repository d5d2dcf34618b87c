//! CQL types → Arrow types: the one mapping both output formats use (the table in docs/EXPORT.md).
//!
//! Choices where CQL and Arrow differ: uuid and timeuuid are their canonical text (36 characters, lower
//! case), which every engine reads — Spark 4 refuses Parquet's UUID type — or, with [`Uuids::Binary`],
//! 16 bytes with the `arrow.uuid` extension (Parquet's UUID logical type: DuckDB and ClickHouse read
//! it as UUID, in less than half the space); decimal and varint are their exact decimal
//! text, since a CQL decimal has a scale per value and a varint any length, and Arrow's decimals have
//! neither; inet is its text form; duration is a struct of months, days and nanoseconds (Parquet has no
//! month-day-nano interval); tuples are structs of fields `f0`, `f1`, …; UDTs structs of their fields.

use std::sync::Arc;

use arrow_schema::extension::Uuid;
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use sstable_reader::CqlType;

/// The time zone of exported timestamps (CQL timestamps are milliseconds since the epoch, UTC).
pub const UTC: &str = "UTC";

/// How uuid and timeuuid values are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uuids {
    /// The canonical text form (`066158f8-cbc9-11f1-91d3-2930834b1e9b`): every reader takes it.
    #[default]
    Text,
    /// 16 bytes, `arrow.uuid` (Parquet UUID): DuckDB and ClickHouse read UUIDs; Spark 4 cannot.
    Binary,
}

/// The Arrow field of a value of `ty` named `name`, or why the type cannot be exported.
pub fn arrow_field(
    name: &str,
    ty: &CqlType,
    nullable: bool,
    uuids: Uuids,
) -> Result<Field, String> {
    use CqlType as T;
    let data_type = match ty.base() {
        T::Uuid | T::TimeUuid if uuids == Uuids::Text => DataType::Utf8,
        T::Uuid | T::TimeUuid => {
            return Ok(
                Field::new(name, DataType::FixedSizeBinary(16), nullable).with_extension_type(Uuid)
            )
        }
        T::Ascii | T::Text | T::Inet | T::Decimal | T::Varint => DataType::Utf8,
        T::Blob | T::Custom(_) => DataType::Binary,
        T::Boolean => DataType::Boolean,
        T::TinyInt => DataType::Int8,
        T::SmallInt => DataType::Int16,
        T::Int => DataType::Int32,
        T::BigInt | T::Counter => DataType::Int64,
        T::Float => DataType::Float32,
        T::Double => DataType::Float64,
        T::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
        T::Date => DataType::Date32,
        T::Time => DataType::Time64(TimeUnit::Nanosecond),
        T::Empty => DataType::Null,
        T::Duration => DataType::Struct(duration_fields()),
        T::List(e) | T::Set(e) => DataType::List(Arc::new(arrow_field("item", e, true, uuids)?)),
        T::Map(k, v) => {
            let entries = Fields::from(vec![
                arrow_field("key", k, false, uuids)?,
                arrow_field("value", v, true, uuids)?,
            ]);
            let entries = Field::new("entries", DataType::Struct(entries), false);
            DataType::Map(Arc::new(entries), false)
        }
        T::Tuple(items) => {
            let fields = items
                .iter()
                .enumerate()
                .map(|(i, t)| arrow_field(&format!("f{i}"), t, true, uuids))
                .collect::<Result<Vec<_>, _>>()?;
            DataType::Struct(fields.into())
        }
        T::Udt(u) => {
            let fields = u
                .fields
                .iter()
                .map(|(n, t)| arrow_field(n, t, true, uuids))
                .collect::<Result<Vec<_>, _>>()?;
            DataType::Struct(fields.into())
        }
        T::Composite(_) => {
            return Err(
                "a composite (multi-component partition key) type holds no single value".into(),
            )
        }
        T::Frozen(_) | T::Reversed(_) => unreachable!("base() removes the wrappers"),
    };
    Ok(Field::new(name, data_type, nullable))
}

/// The fields of an exported duration (CQL's months, days and nanoseconds, each signed).
pub fn duration_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, true),
        Field::new("days", DataType::Int32, true),
        Field::new("nanoseconds", DataType::Int64, true),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sstable_reader::UserType;

    fn ty(cql: &str) -> CqlType {
        let address = UserType {
            keyspace: "ks".into(),
            name: "address".into(),
            fields: vec![
                ("street".into(), CqlType::Text),
                ("zip".into(), CqlType::Int),
            ],
        };
        CqlType::from_cql(cql, &|n| (n == "address").then(|| address.clone())).expect(cql)
    }

    fn mapped(cql: &str) -> DataType {
        arrow_field("c", &ty(cql), true, Uuids::Text)
            .expect(cql)
            .data_type()
            .clone()
    }

    #[test]
    fn simple_types() {
        let cases = [
            ("text", DataType::Utf8),
            ("ascii", DataType::Utf8),
            ("varchar", DataType::Utf8),
            ("inet", DataType::Utf8),
            ("decimal", DataType::Utf8),
            ("varint", DataType::Utf8),
            ("blob", DataType::Binary),
            ("boolean", DataType::Boolean),
            ("tinyint", DataType::Int8),
            ("smallint", DataType::Int16),
            ("int", DataType::Int32),
            ("bigint", DataType::Int64),
            ("counter", DataType::Int64),
            ("float", DataType::Float32),
            ("double", DataType::Float64),
            ("date", DataType::Date32),
            ("time", DataType::Time64(TimeUnit::Nanosecond)),
            (
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ),
            ("duration", DataType::Struct(duration_fields())),
        ];
        for (cql, want) in cases {
            assert_eq!(mapped(cql), want, "{cql}");
        }
    }

    #[test]
    fn uuids_are_text_or_carry_the_uuid_extension() {
        for cql in ["uuid", "timeuuid"] {
            let f = arrow_field("id", &ty(cql), false, Uuids::Text).unwrap();
            assert_eq!(f.data_type(), &DataType::Utf8);
            assert_eq!(f.extension_type_name(), None);
            let f = arrow_field("id", &ty(cql), false, Uuids::Binary).unwrap();
            assert_eq!(f.data_type(), &DataType::FixedSizeBinary(16));
            assert_eq!(f.extension_type_name(), Some("arrow.uuid"), "{cql}");
            assert!(!f.is_nullable());
        }
        // Also inside collections.
        let list = arrow_field("c", &ty("list<timeuuid>"), true, Uuids::Binary).unwrap();
        let DataType::List(item) = list.data_type() else {
            panic!("a list")
        };
        assert_eq!(item.extension_type_name(), Some("arrow.uuid"));
    }

    #[test]
    fn collections_tuples_and_udts() {
        let DataType::Map(entries, sorted) = mapped("map<text, frozen<list<int>>>") else {
            panic!("a map")
        };
        assert!(!sorted);
        let DataType::Struct(kv) = entries.data_type() else {
            panic!("map entries are a struct")
        };
        assert_eq!(kv[0].name(), "key");
        assert!(!kv[0].is_nullable(), "Arrow map keys are never null");
        assert_eq!(kv[0].data_type(), &DataType::Utf8);
        assert_eq!(
            kv[1].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
        );
        for cql in ["set<bigint>", "list<bigint>", "frozen<set<bigint>>"] {
            assert_eq!(
                mapped(cql),
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                "{cql}"
            );
        }
        let DataType::Struct(t) = mapped("tuple<int, text>") else {
            panic!("a struct")
        };
        let names: Vec<_> = t.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["f0", "f1"]);
        let DataType::Struct(u) = mapped("frozen<address>") else {
            panic!("a struct")
        };
        let names: Vec<_> = u.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["street", "zip"]);
        assert_eq!(u[1].data_type(), &DataType::Int32);
    }

    #[test]
    fn a_composite_type_is_refused_with_a_reason() {
        let t = CqlType::Composite(vec![CqlType::Text, CqlType::Int]);
        let err = arrow_field("k", &t, true, Uuids::Text).unwrap_err();
        assert!(err.contains("composite"), "{err}");
    }
}
