//! Arrow array builders fed with decoded CQL values ([`Value`]), one per exported column, nested for
//! collections, tuples and UDTs. The builder's shape follows the field [`crate::mapping`] chose, so the
//! arrays it finishes always match the file's schema.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder,
    Time64NanosecondBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, NullArray, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields};
use sstable_reader::{write_value, CqlType, Value};

use crate::mapping::UTC;

/// Appends values of one CQL type and finishes them as one Arrow array.
pub enum Builder {
    Null(usize),
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    /// Text, and the text forms of uuids, inet, decimal and varint.
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Timestamp(TimestampMillisecondBuilder),
    Date(Date32Builder),
    Time(Time64NanosecondBuilder),
    /// Lists and sets.
    List {
        item: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<Builder>,
    },
    Map {
        entries: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        keys: Box<Builder>,
        values: Box<Builder>,
    },
    /// Tuples, UDTs and durations (as `Value::Tuple` of months, days, nanoseconds).
    Struct {
        fields: Fields,
        nulls: NullBufferBuilder,
        children: Vec<Builder>,
    },
}

/// Why a value could not be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendError(pub String);

impl Builder {
    /// A builder for values of `ty`, exported as `data_type` (from [`crate::mapping::arrow_field`]).
    pub fn new(ty: &CqlType, data_type: &DataType) -> Builder {
        use CqlType as T;
        let n = 1024;
        match (ty.base(), data_type) {
            (T::Empty, _) => Builder::Null(0),
            (T::Boolean, _) => Builder::Boolean(BooleanBuilder::with_capacity(n)),
            (T::TinyInt, _) => Builder::Int8(Int8Builder::with_capacity(n)),
            (T::SmallInt, _) => Builder::Int16(Int16Builder::with_capacity(n)),
            (T::Int, _) => Builder::Int32(Int32Builder::with_capacity(n)),
            (T::BigInt | T::Counter, _) => Builder::Int64(Int64Builder::with_capacity(n)),
            (T::Float, _) => Builder::Float32(Float32Builder::with_capacity(n)),
            (T::Double, _) => Builder::Float64(Float64Builder::with_capacity(n)),
            (T::Blob | T::Custom(_), _) => Builder::Binary(BinaryBuilder::new()),
            (T::Uuid | T::TimeUuid, DataType::FixedSizeBinary(_)) => {
                Builder::Uuid(FixedSizeBinaryBuilder::new(16))
            }
            (T::Timestamp, _) => {
                Builder::Timestamp(TimestampMillisecondBuilder::new().with_timezone(UTC))
            }
            (T::Date, _) => Builder::Date(Date32Builder::with_capacity(n)),
            (T::Time, _) => Builder::Time(Time64NanosecondBuilder::with_capacity(n)),
            (T::List(e) | T::Set(e), DataType::List(item)) => Builder::List {
                item: item.clone(),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(n),
                child: Box::new(Builder::new(e, item.data_type())),
            },
            (T::Map(k, v), DataType::Map(entries, _)) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    unreachable!("mapping makes map entries a struct")
                };
                Builder::Map {
                    entries: entries.clone(),
                    offsets: vec![0],
                    nulls: NullBufferBuilder::new(n),
                    keys: Box::new(Builder::new(k, kv[0].data_type())),
                    values: Box::new(Builder::new(v, kv[1].data_type())),
                }
            }
            (base, DataType::Struct(fields)) => {
                let types: Vec<CqlType> = match base {
                    T::Tuple(ts) => ts.clone(),
                    T::Udt(u) => u.fields.iter().map(|(_, t)| t.clone()).collect(),
                    _ => vec![T::Int, T::Int, T::BigInt], // duration
                };
                Builder::Struct {
                    fields: fields.clone(),
                    nulls: NullBufferBuilder::new(n),
                    children: types
                        .iter()
                        .zip(fields.iter())
                        .map(|(t, f)| Builder::new(t, f.data_type()))
                        .collect(),
                }
            }
            // Text, inet, decimal, varint, uuids as text (mapping gives every other type above).
            _ => Builder::Utf8(StringBuilder::new()),
        }
    }

    /// Appends a null.
    pub fn append_null(&mut self) {
        match self {
            Builder::Null(n) => *n += 1,
            Builder::Boolean(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::List { offsets, nulls, .. } | Builder::Map { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
            Builder::Struct {
                nulls, children, ..
            } => {
                for c in children {
                    c.append_null();
                }
                nulls.append_null();
            }
        }
    }

    /// Appends `v`. A zero-length value of a type that is not text or blob (`Value::Empty`, which CQL
    /// drivers read as null) becomes null and is counted in `empties`.
    pub fn append(&mut self, v: &Value<'_>, empties: &mut u64) -> Result<(), AppendError> {
        let mismatch =
            |b: &Builder| AppendError(format!("a {v:?} value where {} was expected", b.kind()));
        match (&mut *self, v) {
            (b, Value::Null) => b.append_null(),
            (b, Value::Empty) => {
                *empties += 1;
                b.append_null()
            }
            (Builder::Boolean(b), Value::Boolean(x)) => b.append_value(*x),
            (Builder::Int8(b), Value::TinyInt(x)) => b.append_value(*x),
            (Builder::Int16(b), Value::SmallInt(x)) => b.append_value(*x),
            (Builder::Int32(b), Value::Int(x)) => b.append_value(*x),
            (Builder::Int64(b), Value::BigInt(x) | Value::Counter(x)) => b.append_value(*x),
            (Builder::Float32(b), Value::Float(x)) => b.append_value(*x),
            (Builder::Float64(b), Value::Double(x)) => b.append_value(*x),
            (Builder::Utf8(b), Value::Text(s)) => b.append_value(s),
            (Builder::Utf8(b), Value::Uuid(u)) => {
                for (i, x) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        let _ = b.write_char('-');
                    }
                    let _ = write!(b, "{x:02x}");
                }
                b.append_value("");
            }
            (Builder::Utf8(b), Value::Inet(ip)) => {
                let _ = write!(b, "{ip}");
                b.append_value("");
            }
            (Builder::Utf8(b), v @ Value::Decimal { .. }) => {
                let mut s = String::new();
                write_value(&mut s, v, &CqlType::Decimal);
                b.append_value(s);
            }
            (Builder::Utf8(b), v @ Value::Varint(_)) => {
                let mut s = String::new();
                write_value(&mut s, v, &CqlType::Varint);
                b.append_value(s);
            }
            (Builder::Binary(b), Value::Blob(x)) => b.append_value(x),
            (Builder::Uuid(b), Value::Uuid(u)) => {
                b.append_value(u).map_err(|e| AppendError(e.to_string()))?
            }
            (Builder::Timestamp(b), Value::Timestamp(ms)) => b.append_value(*ms),
            (Builder::Date(b), Value::Date(d)) => b.append_value(
                i32::try_from(*d).map_err(|_| AppendError(format!("date {d} out of range")))?,
            ),
            (Builder::Time(b), Value::Time(ns)) => b.append_value(*ns),
            (
                Builder::List {
                    offsets,
                    nulls,
                    child,
                    ..
                },
                Value::List(items) | Value::Set(items),
            ) => {
                for item in items {
                    child.append(item, empties)?;
                }
                push_offset(offsets, items.len())?;
                nulls.append_non_null();
            }
            (
                Builder::Map {
                    offsets,
                    nulls,
                    keys,
                    values,
                    ..
                },
                Value::Map(pairs),
            ) => {
                for (k, val) in pairs {
                    if matches!(k, Value::Null | Value::Empty) {
                        return Err(AppendError(
                            "a map key is empty (Arrow map keys cannot be null)".into(),
                        ));
                    }
                    keys.append(k, empties)?;
                    values.append(val, empties)?;
                }
                push_offset(offsets, pairs.len())?;
                nulls.append_non_null();
            }
            (
                Builder::Struct {
                    nulls, children, ..
                },
                Value::Tuple(items),
            ) => {
                for (i, c) in children.iter_mut().enumerate() {
                    c.append(items.get(i).unwrap_or(&Value::Null), empties)?;
                }
                nulls.append_non_null();
            }
            (
                Builder::Struct {
                    nulls, children, ..
                },
                Value::Duration {
                    months,
                    days,
                    nanos,
                },
            ) if children.len() == 3 => {
                let parts = [
                    Value::Int(*months),
                    Value::Int(*days),
                    Value::BigInt(*nanos),
                ];
                for (c, p) in children.iter_mut().zip(&parts) {
                    c.append(p, empties)?;
                }
                nulls.append_non_null();
            }
            (b, _) => return Err(mismatch(b)),
        }
        Ok(())
    }

    /// What the builder holds, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Builder::Null(_) => "an empty-type value",
            Builder::Boolean(_) => "a boolean",
            Builder::Int8(_) | Builder::Int16(_) | Builder::Int32(_) | Builder::Int64(_) => {
                "an integer"
            }
            Builder::Float32(_) | Builder::Float64(_) => "a floating-point number",
            Builder::Utf8(_) => "text, uuid, inet, decimal or varint",
            Builder::Binary(_) => "a blob",
            Builder::Uuid(_) => "a uuid",
            Builder::Timestamp(_) => "a timestamp",
            Builder::Date(_) => "a date",
            Builder::Time(_) => "a time",
            Builder::List { .. } => "a list or set",
            Builder::Map { .. } => "a map",
            Builder::Struct { .. } => "a tuple, UDT or duration",
        }
    }

    /// The values appended since the last call, as one array (the builder is left empty).
    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Null(n) => Arc::new(NullArray::new(std::mem::take(n))),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::List {
                item,
                offsets,
                nulls,
                child,
            } => Arc::new(ListArray::try_new(
                item.clone(),
                take_offsets(offsets),
                child.finish()?,
                nulls.finish(),
            )?),
            Builder::Map {
                entries,
                offsets,
                nulls,
                keys,
                values,
            } => {
                let DataType::Struct(kv) = entries.data_type() else {
                    unreachable!("mapping makes map entries a struct")
                };
                let pairs =
                    StructArray::try_new(kv.clone(), vec![keys.finish()?, values.finish()?], None)?;
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    take_offsets(offsets),
                    pairs,
                    nulls.finish(),
                    false,
                )?)
            }
            Builder::Struct {
                fields,
                nulls,
                children,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(Builder::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(
                    fields.clone(),
                    arrays,
                    nulls.finish(),
                )?)
            }
        })
    }
}

fn push_offset(offsets: &mut Vec<i32>, added: usize) -> Result<(), AppendError> {
    let last = offsets.last().copied().unwrap_or(0) as usize;
    let next = i32::try_from(last + added)
        .map_err(|_| AppendError("more than 2^31 collection elements in one batch".into()))?;
    offsets.push(next);
    Ok(())
}

fn take_offsets(offsets: &mut Vec<i32>) -> OffsetBuffer<i32> {
    let done = std::mem::replace(offsets, vec![0]);
    OffsetBuffer::new(ScalarBuffer::from(done))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::Array;
    use sstable_reader::UserType;

    use super::*;
    use crate::mapping::{arrow_field, Uuids};

    fn builder(ty: &CqlType) -> Builder {
        Builder::new(
            ty,
            arrow_field("c", ty, true, Uuids::Text).unwrap().data_type(),
        )
    }

    #[test]
    fn udts_tuples_and_durations_become_structs_with_nulls_where_absent() {
        let udt = CqlType::Udt(Box::new(UserType {
            keyspace: "ks".into(),
            name: "address".into(),
            fields: vec![
                ("street".into(), CqlType::Text),
                ("zip".into(), CqlType::Int),
            ],
        }));
        let mut b = builder(&udt);
        let mut empties = 0;
        b.append(
            &Value::Tuple(vec![Value::Text("Main St"), Value::Int(1234)]),
            &mut empties,
        )
        .unwrap();
        // A UDT value missing its trailing field (written before the field was added).
        b.append(&Value::Tuple(vec![Value::Text("Elm St")]), &mut empties)
            .unwrap();
        b.append_null();
        let a = b.finish().unwrap();
        let s = a.as_struct();
        assert_eq!(s.len(), 3);
        assert!(s.is_null(2) && s.is_valid(1));
        assert_eq!(s.column(0).as_string::<i32>().value(1), "Elm St");
        let zip = s.column(1).as_primitive::<Int32Type>();
        assert_eq!(zip.value(0), 1234);
        assert!(zip.is_null(1));

        let mut d = builder(&CqlType::Duration);
        let v = Value::Duration {
            months: 1,
            days: -2,
            nanos: 45_050_000_000_000,
        };
        d.append(&v, &mut empties).unwrap();
        let a = d.finish().unwrap();
        let s = a.as_struct();
        assert_eq!(s.column(1).as_primitive::<Int32Type>().value(0), -2);
        assert_eq!(
            s.column(2).as_primitive::<Int64Type>().value(0),
            45_050_000_000_000
        );
        assert_eq!(empties, 0);
    }

    #[test]
    fn nested_collections_keep_their_offsets_across_batches() {
        let ty = CqlType::from_cql("map<text, frozen<list<int>>>", &|_| None).unwrap();
        let mut b = builder(&ty);
        let mut empties = 0;
        let list = |xs: &[i32]| Value::List(xs.iter().map(|&x| Value::Int(x)).collect());
        b.append(
            &Value::Map(vec![
                (Value::Text("a"), list(&[1, 2])),
                (Value::Text("b"), list(&[])),
            ]),
            &mut empties,
        )
        .unwrap();
        b.append_null();
        b.append(
            &Value::Map(vec![(Value::Text("c"), list(&[3]))]),
            &mut empties,
        )
        .unwrap();
        let first = b.finish().unwrap();
        let m = first.as_map();
        assert_eq!(m.len(), 3);
        assert_eq!(m.value_offsets(), &[0, 2, 2, 3]);
        assert!(m.is_null(1));
        let lists = m.values().as_list::<i32>();
        assert_eq!(lists.value_offsets(), &[0, 2, 2, 3]);
        // The next batch starts from zero again.
        b.append(
            &Value::Map(vec![(Value::Text("d"), list(&[4, 5, 6]))]),
            &mut empties,
        )
        .unwrap();
        let second = b.finish().unwrap();
        assert_eq!(second.as_map().value_offsets(), &[0, 1]);
        assert_eq!(
            second.as_map().values().as_list::<i32>().value_offsets(),
            &[0, 3]
        );
    }

    #[test]
    fn empty_values_become_counted_nulls_and_an_empty_map_key_is_refused() {
        let mut empties = 0;
        let mut b = builder(&CqlType::Int);
        b.append(&Value::Empty, &mut empties).unwrap();
        b.append(&Value::Int(7), &mut empties).unwrap();
        let a = b.finish().unwrap();
        assert!(a.is_null(0) && a.is_valid(1));
        assert_eq!(empties, 1);

        let ty = CqlType::Map(Box::new(CqlType::Int), Box::new(CqlType::Text));
        let mut m = builder(&ty);
        let err = m
            .append(
                &Value::Map(vec![(Value::Empty, Value::Text("x"))]),
                &mut empties,
            )
            .unwrap_err();
        assert!(err.0.contains("map key"), "{err:?}");
    }

    #[test]
    fn text_forms_and_a_mismatch() {
        let mut empties = 0;
        let mut b = builder(&CqlType::Decimal);
        b.append(
            &Value::Decimal {
                scale: 5,
                unscaled: &[0x04, 0x25, 0xdc],
            },
            &mut empties,
        )
        .unwrap();
        let a = b.finish().unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "2.71836");
        let mut b = builder(&CqlType::Inet);
        b.append(&Value::Inet([127, 0, 0, 1].into()), &mut empties)
            .unwrap();
        b.append(
            &Value::Inet(std::net::Ipv6Addr::LOCALHOST.into()),
            &mut empties,
        )
        .unwrap();
        let a = b.finish().unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "127.0.0.1");
        assert_eq!(a.as_string::<i32>().value(1), "::1");
        let mut b = builder(&CqlType::TimeUuid);
        let u = [
            0x06, 0x61, 0x58, 0xf8, 0xcb, 0xc9, 0x11, 0xf1, 0x91, 0xd3, 0x29, 0x30, 0x83, 0x4b,
            0x1e, 0x9b,
        ];
        b.append(&Value::Uuid(u), &mut empties).unwrap();
        let a = b.finish().unwrap();
        assert_eq!(
            a.as_string::<i32>().value(0),
            "066158f8-cbc9-11f1-91d3-2930834b1e9b"
        );
        let err = builder(&CqlType::BigInt)
            .append(&Value::Text("x"), &mut empties)
            .unwrap_err();
        assert!(err.0.contains("an integer"), "{err:?}");
    }
}
