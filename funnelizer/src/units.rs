//! How people write sizes and times on command lines and in config files: `8GiB`, `512MiB`, `500MB` or
//! bytes; `2026-11-20T10:00:00Z`, `2026-11-20` (midnight UTC) or seconds since the epoch.

use crate::error::Error;

/// Bytes of `"8GiB"`, `"512MiB"`, `"2G"`, `"500MB"`, `"1.5 KiB"` or `"100000"`; more than 0.
pub fn parse_bytes(s: &str) -> Result<u64, Error> {
    let bad = || Error::Size {
        value: s.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if v.is_finite() && v >= 1.0 && v < u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(bad())
    }
}

/// Seconds since the epoch of RFC 3339 (`2026-11-20T00:00:00Z`), a date (`2026-11-20`, midnight UTC) or
/// seconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, Error> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
        .ok_or_else(|| Error::Time {
            value: s.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_bytes_and_binary_or_decimal_units() {
        for (text, bytes) in [
            ("1048576", 1 << 20),
            ("512MiB", 512 << 20),
            ("2GiB", 2 << 30),
            ("2gib", 2 << 30),
            ("64KiB", 64 << 10),
            ("1.5GiB", 3 << 29),
            ("1.5 KiB", 1536),
            ("2G", 2_000_000_000),
            ("500MB", 500_000_000),
            ("10 KB", 10_000),
            ("100B", 100),
        ] {
            assert_eq!(parse_bytes(text).unwrap(), bytes, "{text}");
        }
    }

    #[test]
    fn bad_sizes_name_the_value() {
        for bad in [
            "",
            "GiB",
            "12XB",
            "1.2.3M",
            "-5M",
            "99999999999TiB",
            "1e3",
            "x",
        ] {
            let err = parse_bytes(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(parse_bytes("0")
            .unwrap_err()
            .to_string()
            .contains("more than 0"));
    }

    #[test]
    fn times_are_seconds_rfc3339_or_dates() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000);
        assert_eq!(parse_time("2026-11-20").unwrap(), 1_795_132_800);
        assert_eq!(parse_time("2026-11-20T00:00:01Z").unwrap(), 1_795_132_801);
        let err = parse_time("yesterday").unwrap_err();
        assert!(
            err.to_string().starts_with("\"yesterday\" is not a time"),
            "{err}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}
