//! JSON rendering of decoded values, as `funnel dump` prints them: text as strings, integers and decimals
//! as numbers, blobs as `0x…`, uuids and inet addresses as strings, timestamps as ISO-8601 UTC, dates as
//! `YYYY-MM-DD`, collections as arrays/objects, tuples as arrays and UDTs as objects.

use std::fmt::Write;

use num_bigint::BigInt;

use crate::types::CqlType;
use crate::value::Value;

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `0x` + lowercase hex of `b` (no quotes).
pub fn write_hex(out: &mut String, b: &[u8]) {
    out.push_str("0x");
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

/// Formats a 16-byte UUID in its canonical 8-4-4-4-12 form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = |r: std::ops::Range<usize>| u[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// ISO-8601 UTC with milliseconds (`2021-07-02T20:47:23.000Z`); out-of-range values print as numbers.
pub fn format_timestamp_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// ISO-8601 UTC with microseconds, for write times (`2021-07-02T20:47:23.123456Z`).
pub fn format_timestamp_us(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// ISO-8601 UTC for seconds since the epoch (deletion and expiry times).
pub fn format_seconds(s: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(s, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn format_date(days: i64) -> Option<String> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    epoch
        .checked_add_signed(chrono::TimeDelta::try_days(days)?)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

fn format_time(nanos: i64) -> String {
    let (h, rem) = (nanos / 3_600_000_000_000, nanos % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let (s, n) = (rem / 1_000_000_000, rem % 1_000_000_000);
    format!("{h:02}:{m:02}:{s:02}.{n:09}")
}

/// Cassandra's `Duration.toString` (`12h30m50ms`, `1y2mo3d`).
pub fn format_duration(months: i32, days: i32, nanos: i64) -> String {
    let mut s = String::new();
    if months < 0 || days < 0 || nanos < 0 {
        s.push('-');
    }
    fn part(s: &mut String, value: u64, divisor: u64, unit: &str) -> u64 {
        if value == 0 || value < divisor {
            return value;
        }
        let _ = write!(s, "{}{unit}", value / divisor);
        value % divisor
    }
    let rem = part(&mut s, months.unsigned_abs() as u64, 12, "y");
    part(&mut s, rem, 1, "mo");
    part(&mut s, days.unsigned_abs() as u64, 1, "d");
    let mut rem = nanos.unsigned_abs();
    for (div, unit) in [
        (3_600_000_000_000u64, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ] {
        rem = part(&mut s, rem, div, unit);
    }
    s
}

/// Decimal string of a big-endian two's complement integer.
pub fn varint_string(b: &[u8]) -> String {
    BigInt::from_signed_bytes_be(b).to_string()
}

/// Decimal string of `unscaled × 10^-scale` (a JSON number).
pub fn decimal_string(scale: i32, unscaled: &[u8]) -> String {
    let digits = varint_string(unscaled);
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d.to_string()),
        None => (false, digits),
    };
    let sign = if neg { "-" } else { "" };
    if scale <= 0 {
        return if scale == 0 {
            format!("{sign}{digits}")
        } else {
            format!("{sign}{digits}e{}", -(scale as i64))
        };
    }
    // Java's BigDecimal.toString switches to scientific notation when the adjusted exponent is below
    // -6; so do we (a valid JSON number), which also keeps absurd scales from allocating zeros.
    let adjusted = digits.len() as i64 - 1 - scale as i64;
    if adjusted < -6 {
        return format!("{sign}{digits}e{}", -(scale as i64));
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

fn write_float(out: &mut String, v: f64, text: String) {
    if v.is_finite() {
        out.push_str(&text);
    } else {
        write_str(out, &text);
    }
}

/// Appends the JSON form of `v` (of type `ty`).
pub fn write_value(out: &mut String, v: &Value<'_>, ty: &CqlType) {
    let ty = match ty {
        CqlType::Reversed(t) | CqlType::Frozen(t) => return write_value(out, v, t),
        t => t,
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Empty => out.push_str("\"\""),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::TinyInt(x) => {
            let _ = write!(out, "{x}");
        }
        Value::SmallInt(x) => {
            let _ = write!(out, "{x}");
        }
        Value::Int(x) => {
            let _ = write!(out, "{x}");
        }
        Value::BigInt(x) | Value::Counter(x) => {
            let _ = write!(out, "{x}");
        }
        Value::Float(x) => write_float(out, *x as f64, x.to_string()),
        Value::Double(x) => write_float(out, *x, x.to_string()),
        Value::Text(s) => write_str(out, s),
        Value::Blob(b) => {
            out.push('"');
            write_hex(out, b);
            out.push('"');
        }
        Value::Uuid(u) => write_str(out, &format_uuid(u)),
        Value::Inet(ip) => write_str(out, &ip.to_string()),
        Value::Timestamp(ms) => match format_timestamp_ms(*ms) {
            Some(s) => write_str(out, &s),
            None => {
                let _ = write!(out, "{ms}");
            }
        },
        Value::Date(d) => match format_date(*d) {
            Some(s) => write_str(out, &s),
            None => {
                let _ = write!(out, "{d}");
            }
        },
        Value::Time(n) => write_str(out, &format_time(*n)),
        Value::Duration {
            months,
            days,
            nanos,
        } => write_str(out, &format_duration(*months, *days, *nanos)),
        Value::Decimal { scale, unscaled } => out.push_str(&decimal_string(*scale, unscaled)),
        Value::Varint(b) => out.push_str(&varint_string(b)),
        Value::List(items) | Value::Set(items) => {
            let elem = match ty {
                CqlType::List(e) | CqlType::Set(e) => e.as_ref(),
                _ => &CqlType::Blob,
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, elem);
            }
            out.push(']');
        }
        Value::Map(items) => {
            let (kt, vt) = match ty {
                CqlType::Map(k, v) => (k.as_ref(), v.as_ref()),
                _ => (&CqlType::Blob, &CqlType::Blob),
            };
            out.push('{');
            for (i, (k, val)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_key(out, k, kt);
                out.push(':');
                write_value(out, val, vt);
            }
            out.push('}');
        }
        Value::Tuple(items) => match ty {
            CqlType::Udt(u) => {
                out.push('{');
                for (i, ((name, t), item)) in u.fields.iter().zip(items).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, name);
                    out.push(':');
                    write_value(out, item, t);
                }
                out.push('}');
            }
            _ => {
                let types: &[CqlType] = match ty {
                    CqlType::Tuple(ts) | CqlType::Composite(ts) => ts,
                    _ => &[],
                };
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(out, item, types.get(i).unwrap_or(&CqlType::Blob));
                }
                out.push(']');
            }
        },
    }
}

/// A map key as a JSON object key: strings as they are, anything else as the text of its JSON form.
fn write_key(out: &mut String, k: &Value<'_>, ty: &CqlType) {
    if let Value::Text(s) = k {
        return write_str(out, s);
    }
    let mut tmp = String::new();
    write_value(&mut tmp, k, ty);
    match tmp.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => {
            out.push('"');
            out.push_str(inner);
            out.push('"');
        }
        None => write_str(out, &tmp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: Value<'_>, ty: &CqlType) -> String {
        let mut s = String::new();
        write_value(&mut s, &v, ty);
        s
    }

    #[test]
    fn renders_scalars_like_cassandra() {
        assert_eq!(
            json(Value::Timestamp(1625258843000), &CqlType::Timestamp),
            "\"2021-07-02T20:47:23.000Z\""
        );
        assert_eq!(json(Value::Date(18803), &CqlType::Date), "\"2021-06-25\"");
        assert_eq!(
            json(Value::Time(9_990_000_000_000), &CqlType::Time),
            "\"02:46:30.000000000\""
        );
        assert_eq!(format_duration(0, 0, 45_000_050_000_000), "12h30m50ms");
        assert_eq!(format_duration(14, 3, 0), "1y2mo3d");
        assert_eq!(decimal_string(5, &271828i32.to_be_bytes()), "2.71828");
        assert_eq!(decimal_string(3, &(-5i32).to_be_bytes()), "-0.005");
        assert_eq!(decimal_string(i32::MAX, &[1]), "1e-2147483647");
        assert_eq!(decimal_string(9, &[5]), "5e-9");
        assert_eq!(varint_string(&[0x00, 0xd4, 0x31]), "54321");
        assert_eq!(
            json(Value::Blob(&[0, 0, 4, 0xd2]), &CqlType::Blob),
            "\"0x000004d2\""
        );
        assert_eq!(json(Value::Text("a\"b\n"), &CqlType::Text), "\"a\\\"b\\n\"");
        assert_eq!(json(Value::Double(f64::NAN), &CqlType::Double), "\"NaN\"");
    }

    #[test]
    fn renders_collections() {
        let ty = CqlType::Map(Box::new(CqlType::Int), Box::new(CqlType::Int));
        assert_eq!(
            json(Value::Map(vec![(Value::Int(42), Value::Int(13))]), &ty),
            "{\"42\":13}"
        );
        let ty = CqlType::Tuple(vec![CqlType::Int, CqlType::Text]);
        assert_eq!(
            json(Value::Tuple(vec![Value::Int(1), Value::Null]), &ty),
            "[1,null]"
        );
    }
}
