//! Decoding of CQL values from their serialized bytes into [`Value`], borrowing text and blobs from the
//! buffer they were read from, and the inverse serialization (used by the writer and by tests).

use std::net::IpAddr;

use crate::bytes::{put_vint, Cursor};
use crate::types::CqlType;

/// A decoded CQL value. Text, blobs and big numbers borrow from the source buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    /// A zero-length value of a type that is not text or blob (`blobAsInt(0x)`): not null, but empty.
    Empty,
    Boolean(bool),
    TinyInt(i8),
    SmallInt(i16),
    Int(i32),
    BigInt(i64),
    /// A counter's total (the sum of its shards).
    Counter(i64),
    Float(f32),
    Double(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    Uuid([u8; 16]),
    Inet(IpAddr),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i64),
    /// Nanoseconds since midnight.
    Time(i64),
    Duration {
        months: i32,
        days: i32,
        nanos: i64,
    },
    /// `unscaled × 10^-scale`, `unscaled` a big-endian two's complement integer.
    Decimal {
        scale: i32,
        unscaled: &'a [u8],
    },
    /// Big-endian two's complement integer of any length.
    Varint(&'a [u8]),
    List(Vec<Value<'a>>),
    Set(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// Tuple or UDT components in declaration order (missing trailing components are `Null`).
    Tuple(Vec<Value<'a>>),
}

/// A value whose bytes do not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {ty} value ({len} bytes): {message}")]
pub struct ValueError {
    pub ty: String,
    pub len: usize,
    pub message: String,
}

fn bad(ty: &CqlType, b: &[u8], message: impl Into<String>) -> ValueError {
    ValueError {
        ty: ty.to_string(),
        len: b.len(),
        message: message.into(),
    }
}

fn exact<const N: usize>(ty: &CqlType, b: &[u8]) -> Result<[u8; N], ValueError> {
    b.try_into()
        .map_err(|_| bad(ty, b, format!("expected exactly {N} bytes")))
}

/// Sum of a counter context's shards (`db/context/CounterContext.java`: a header of
/// `abs(count)` shard indexes, then 32-byte shards of counter id, clock and count).
pub fn counter_total(b: &[u8]) -> Result<i64, ValueError> {
    let ty = CqlType::Counter;
    if b.len() < 2 {
        return Err(bad(&ty, b, "shorter than a counter context header"));
    }
    let header_elements = i16::from_be_bytes([b[0], b[1]]).unsigned_abs() as usize;
    let header = 2 + header_elements * 2;
    if header > b.len() || !(b.len() - header).is_multiple_of(32) {
        return Err(bad(
            &ty,
            b,
            "counter context is not a header followed by 32-byte shards",
        ));
    }
    let mut total: i64 = 0;
    for shard in b[header..].chunks_exact(32) {
        let mut count = [0u8; 8];
        count.copy_from_slice(&shard[24..32]);
        total = total.wrapping_add(i64::from_be_bytes(count));
    }
    Ok(total)
}

impl<'a> Value<'a> {
    /// Decodes one serialized value of type `ty`.
    pub fn decode(ty: &CqlType, b: &'a [u8]) -> Result<Value<'a>, ValueError> {
        use CqlType as T;
        let ty = match ty {
            T::Reversed(t) | T::Frozen(t) => return Value::decode(t, b),
            t => t,
        };
        if b.is_empty() && !matches!(ty, T::Text | T::Ascii | T::Blob | T::Custom(_) | T::Empty) {
            return Ok(Value::Empty);
        }
        Ok(match ty {
            T::Ascii | T::Text => {
                Value::Text(std::str::from_utf8(b).map_err(|e| bad(ty, b, e.to_string()))?)
            }
            T::Blob | T::Custom(_) => Value::Blob(b),
            T::Empty => Value::Empty,
            T::Boolean => Value::Boolean(exact::<1>(ty, b)?[0] != 0),
            T::TinyInt => Value::TinyInt(i8::from_be_bytes(exact(ty, b)?)),
            T::SmallInt => Value::SmallInt(i16::from_be_bytes(exact(ty, b)?)),
            T::Int => Value::Int(i32::from_be_bytes(exact(ty, b)?)),
            T::BigInt => Value::BigInt(i64::from_be_bytes(exact(ty, b)?)),
            T::Counter => match b.len() {
                8 => Value::Counter(i64::from_be_bytes(exact(ty, b)?)),
                _ => Value::Counter(counter_total(b)?),
            },
            T::Float => Value::Float(f32::from_be_bytes(exact(ty, b)?)),
            T::Double => Value::Double(f64::from_be_bytes(exact(ty, b)?)),
            T::Uuid | T::TimeUuid => Value::Uuid(exact(ty, b)?),
            T::Inet => match b.len() {
                4 => Value::Inet(IpAddr::from(exact::<4>(ty, b)?)),
                16 => Value::Inet(IpAddr::from(exact::<16>(ty, b)?)),
                _ => return Err(bad(ty, b, "an inet is 4 or 16 bytes")),
            },
            T::Timestamp => Value::Timestamp(i64::from_be_bytes(exact(ty, b)?)),
            T::Date => Value::Date(u32::from_be_bytes(exact(ty, b)?) as i64 - (1i64 << 31)),
            T::Time => Value::Time(i64::from_be_bytes(exact(ty, b)?)),
            T::Duration => {
                let mut c = Cursor::new(b);
                let mut next = || c.vint().map_err(|_| bad(ty, b, "truncated duration"));
                let (months, days, nanos) = (next()?, next()?, next()?);
                no_leftover(ty, b, &c)?;
                Value::Duration {
                    months: i32::try_from(months).map_err(|_| bad(ty, b, "months out of range"))?,
                    days: i32::try_from(days).map_err(|_| bad(ty, b, "days out of range"))?,
                    nanos,
                }
            }
            T::Decimal => {
                if b.len() < 5 {
                    return Err(bad(
                        ty,
                        b,
                        "a decimal is a 4-byte scale and at least one byte",
                    ));
                }
                Value::Decimal {
                    scale: i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    unscaled: &b[4..],
                }
            }
            T::Varint => Value::Varint(b),
            T::List(e) => Value::List(decode_elements(ty, b, e)?),
            T::Set(e) => Value::Set(decode_elements(ty, b, e)?),
            T::Map(k, v) => {
                let mut c = Cursor::new(b);
                let n = frozen_count(ty, b, &mut c)?;
                let mut out = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let kb = frozen_item(ty, b, &mut c)?;
                    let vb = frozen_item(ty, b, &mut c)?;
                    out.push((decode_opt(k, kb)?, decode_opt(v, vb)?));
                }
                no_leftover(ty, b, &c)?;
                Value::Map(out)
            }
            T::Tuple(ts) => Value::Tuple(decode_components(ty, b, ts.iter())?),
            T::Udt(u) => Value::Tuple(decode_components(ty, b, u.fields.iter().map(|(_, t)| t))?),
            T::Composite(ts) => {
                // u16 length, bytes, end-of-component byte, for each component.
                let mut c = Cursor::new(b);
                let mut out = Vec::with_capacity(ts.len());
                for t in ts {
                    let n = c
                        .u16()
                        .map_err(|_| bad(ty, b, "truncated composite component length"))?
                        as usize;
                    let item = c
                        .take(n)
                        .map_err(|_| bad(ty, b, "truncated composite component"))?;
                    c.u8()
                        .map_err(|_| bad(ty, b, "missing composite end-of-component byte"))?;
                    out.push(Value::decode(t, item)?);
                }
                no_leftover(ty, b, &c)?;
                Value::Tuple(out)
            }
            T::Reversed(_) | T::Frozen(_) => unreachable!("unwrapped above"),
        })
    }

    /// Text value, if this is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Integer value of any integer type (and timestamps, as milliseconds).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::TinyInt(v) => Some(v as i64),
            Value::SmallInt(v) => Some(v as i64),
            Value::Int(v) => Some(v as i64),
            Value::BigInt(v)
            | Value::Counter(v)
            | Value::Timestamp(v)
            | Value::Time(v)
            | Value::Date(v) => Some(v),
            _ => None,
        }
    }

    /// Serializes the value as Cassandra stores it for type `ty` (inverse of [`Value::decode`]).
    pub fn encode(&self, ty: &CqlType, out: &mut Vec<u8>) -> Result<(), ValueError> {
        use CqlType as T;
        let ty = ty.base();
        let mismatch = || bad(ty, &[], format!("cannot encode {self:?}"));
        match (ty, self) {
            (_, Value::Empty) | (_, Value::Null) => {}
            (T::Ascii | T::Text, Value::Text(s)) => out.extend_from_slice(s.as_bytes()),
            (T::Blob | T::Custom(_), Value::Blob(b)) => out.extend_from_slice(b),
            (T::Boolean, Value::Boolean(v)) => out.push(*v as u8),
            (T::TinyInt, Value::TinyInt(v)) => out.extend_from_slice(&v.to_be_bytes()),
            (T::SmallInt, Value::SmallInt(v)) => out.extend_from_slice(&v.to_be_bytes()),
            (T::Int, Value::Int(v)) => out.extend_from_slice(&v.to_be_bytes()),
            (T::BigInt, Value::BigInt(v)) | (T::Counter, Value::Counter(v)) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            (T::Timestamp, Value::Timestamp(v)) | (T::Time, Value::Time(v)) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            (T::Float, Value::Float(v)) => out.extend_from_slice(&v.to_be_bytes()),
            (T::Double, Value::Double(v)) => out.extend_from_slice(&v.to_be_bytes()),
            (T::Uuid | T::TimeUuid, Value::Uuid(v)) => out.extend_from_slice(v),
            (T::Inet, Value::Inet(IpAddr::V4(a))) => out.extend_from_slice(&a.octets()),
            (T::Inet, Value::Inet(IpAddr::V6(a))) => out.extend_from_slice(&a.octets()),
            (T::Date, Value::Date(d)) => {
                out.extend_from_slice(&((d + (1i64 << 31)) as u32).to_be_bytes())
            }
            (
                T::Duration,
                Value::Duration {
                    months,
                    days,
                    nanos,
                },
            ) => {
                put_vint(out, *months as i64);
                put_vint(out, *days as i64);
                put_vint(out, *nanos);
            }
            (T::Decimal, Value::Decimal { scale, unscaled }) => {
                out.extend_from_slice(&scale.to_be_bytes());
                out.extend_from_slice(unscaled);
            }
            (T::Varint, Value::Varint(b)) => out.extend_from_slice(b),
            (T::List(e), Value::List(items)) | (T::Set(e), Value::Set(items)) => {
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                for item in items {
                    encode_item(e, item, out)?;
                }
            }
            (T::Map(k, v), Value::Map(items)) => {
                out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                for (key, val) in items {
                    encode_item(k, key, out)?;
                    encode_item(v, val, out)?;
                }
            }
            (T::Tuple(ts), Value::Tuple(items)) => encode_components(ts.iter(), items, out)?,
            (T::Udt(u), Value::Tuple(items)) => {
                encode_components(u.fields.iter().map(|(_, t)| t), items, out)?
            }
            (T::Composite(ts), Value::Tuple(items)) => {
                for (t, item) in ts.iter().zip(items) {
                    let mut b = Vec::new();
                    item.encode(t, &mut b)?;
                    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
                    out.extend_from_slice(&b);
                    out.push(0);
                }
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

fn decode_opt<'a>(ty: &CqlType, b: Option<&'a [u8]>) -> Result<Value<'a>, ValueError> {
    match b {
        Some(b) => Value::decode(ty, b),
        None => Ok(Value::Null),
    }
}

fn frozen_count(ty: &CqlType, b: &[u8], c: &mut Cursor<'_>) -> Result<usize, ValueError> {
    let n = c.i32().map_err(|_| bad(ty, b, "truncated element count"))?;
    usize::try_from(n).map_err(|_| bad(ty, b, "negative element count"))
}

fn frozen_item<'a>(
    ty: &CqlType,
    b: &[u8],
    c: &mut Cursor<'a>,
) -> Result<Option<&'a [u8]>, ValueError> {
    let n = c
        .i32()
        .map_err(|_| bad(ty, b, "truncated element length"))?;
    if n < 0 {
        return Ok(None);
    }
    c.take(n as usize)
        .map(Some)
        .map_err(|_| bad(ty, b, "element longer than the value"))
}

fn decode_elements<'a>(
    ty: &CqlType,
    b: &'a [u8],
    elem: &CqlType,
) -> Result<Vec<Value<'a>>, ValueError> {
    let mut c = Cursor::new(b);
    let n = frozen_count(ty, b, &mut c)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(decode_opt(elem, frozen_item(ty, b, &mut c)?)?);
    }
    no_leftover(ty, b, &c)?;
    Ok(out)
}

fn decode_components<'a, 't>(
    ty: &CqlType,
    b: &'a [u8],
    types: impl Iterator<Item = &'t CqlType>,
) -> Result<Vec<Value<'a>>, ValueError> {
    let mut c = Cursor::new(b);
    let mut out = Vec::new();
    for t in types {
        if c.is_empty() {
            out.push(Value::Null);
            continue;
        }
        out.push(decode_opt(t, frozen_item(ty, b, &mut c)?)?);
    }
    no_leftover(ty, b, &c)?;
    Ok(out)
}

/// A value whose elements end before its bytes do is damaged (or of another type): the bytes left over
/// would otherwise be dropped without a word.
fn no_leftover(ty: &CqlType, b: &[u8], c: &Cursor<'_>) -> Result<(), ValueError> {
    if c.is_empty() {
        Ok(())
    } else {
        Err(bad(
            ty,
            b,
            format!(
                "{} byte(s) left over after its last element, at byte {}",
                c.remaining(),
                c.pos()
            ),
        ))
    }
}

fn encode_item(ty: &CqlType, v: &Value<'_>, out: &mut Vec<u8>) -> Result<(), ValueError> {
    if matches!(v, Value::Null) {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let mut b = Vec::new();
    v.encode(ty, &mut b)?;
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(&b);
    Ok(())
}

fn encode_components<'t>(
    types: impl Iterator<Item = &'t CqlType>,
    items: &[Value<'_>],
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    for (t, item) in types.zip(items) {
        encode_item(t, item, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        assert_eq!(
            Value::decode(&CqlType::Int, &420i32.to_be_bytes()).unwrap(),
            Value::Int(420)
        );
        assert_eq!(
            Value::decode(&CqlType::Text, b"abc").unwrap(),
            Value::Text("abc")
        );
        assert_eq!(
            Value::decode(&CqlType::Date, &[0x80, 0, 0, 0]).unwrap(),
            Value::Date(0)
        );
        assert_eq!(Value::decode(&CqlType::Int, &[]).unwrap(), Value::Empty);
        assert!(Value::decode(&CqlType::Int, &[1, 2]).is_err());
        assert!(Value::decode(&CqlType::Text, &[0xff]).is_err());
    }

    #[test]
    fn bytes_left_over_in_a_value_are_an_error() {
        let int = || Box::new(CqlType::Int);
        let mut list = 1i32.to_be_bytes().to_vec();
        list.extend(4i32.to_be_bytes());
        list.extend(7i32.to_be_bytes());
        assert!(Value::decode(&CqlType::List(int()), &list).is_ok());
        let mut map = 1i32.to_be_bytes().to_vec();
        map.extend(list[4..].iter().chain(&list[4..]));
        assert!(Value::decode(&CqlType::Map(int(), int()), &map).is_ok());
        let tuple = CqlType::Tuple(vec![CqlType::Int]);
        assert!(Value::decode(&tuple, &list[4..]).is_ok());
        for (ty, ok) in [
            (CqlType::List(int()), &list),
            (CqlType::Map(int(), int()), &map),
            (tuple, &list[4..].to_vec()),
            (CqlType::Duration, &vec![2, 4, 6]),
        ] {
            let mut long = ok.clone();
            long.push(9);
            let err = Value::decode(&ty, &long).unwrap_err();
            assert!(
                err.to_string().contains("1 byte(s) left over"),
                "{ty}: {err}"
            );
        }
    }

    #[test]
    fn counter_context_sums_shards() {
        let mut ctx = vec![0, 1, 0, 0]; // one header element (a local shard index)
        for count in [1i64, 2] {
            ctx.extend_from_slice(&[7u8; 16]);
            ctx.extend_from_slice(&5i64.to_be_bytes());
            ctx.extend_from_slice(&count.to_be_bytes());
        }
        assert_eq!(counter_total(&ctx).unwrap(), 3);
        assert!(counter_total(&ctx[..ctx.len() - 1]).is_err());
    }

    #[test]
    fn frozen_collections_round_trip() {
        let ty = CqlType::Map(
            Box::new(CqlType::Text),
            Box::new(CqlType::List(Box::new(CqlType::Int))),
        );
        let v = Value::Map(vec![(
            Value::Text("a"),
            Value::List(vec![Value::Int(1), Value::Int(2)]),
        )]);
        let mut b = Vec::new();
        v.encode(&ty, &mut b).unwrap();
        assert_eq!(Value::decode(&ty, &b).unwrap(), v);
        assert!(Value::decode(&ty, &b[..b.len() - 1]).is_err());
    }
}
