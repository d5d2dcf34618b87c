//! `Day`: a calendar day in UTC, counted in days since 1970-01-01, written `YYYY-MM-DD`.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, TimeDelta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FactsError;

/// A UTC calendar day: days since 1970-01-01. `Display`/`FromStr` use `YYYY-MM-DD`; stores keep it as that
/// text (which sorts like the number for years 0000–9999, the only years `FromStr` accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

const MS_PER_DAY: i64 = 86_400_000;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)
}

impl Day {
    /// 0001-01-01: the first day the stores accept as a range bound.
    pub const FIRST: Day = Day(-719_162);
    /// 9999-12-31: the last day the stores accept as a range bound.
    pub const LAST: Day = Day(2_932_896);

    /// The day holding a Unix timestamp in milliseconds (negative timestamps are days before 1970).
    pub fn from_unix_ms(ms: i64) -> Day {
        let days = ms.div_euclid(MS_PER_DAY);
        Day(days.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
    }

    /// Midnight UTC of this day, in Unix milliseconds.
    pub fn start_unix_ms(self) -> i64 {
        self.0 as i64 * MS_PER_DAY
    }

    /// Today (UTC) according to the system clock.
    pub fn today() -> Day {
        Day::from_unix_ms(chrono::Utc::now().timestamp_millis())
    }

    /// The day `n` days later (earlier when `n` is negative), saturating at the ends of `i32`.
    pub fn plus(self, n: i32) -> Day {
        Day(self.0.saturating_add(n))
    }

    /// Every day from `self` to `last`, both included (empty when `last < self`).
    pub fn through(self, last: Day) -> impl Iterator<Item = Day> {
        (self.0..=last.0).map(Day)
    }

    fn to_date(self) -> Option<NaiveDate> {
        epoch().checked_add_signed(TimeDelta::try_days(self.0 as i64)?)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_date() {
            Some(d) if (0..=9999).contains(&d.year()) => {
                write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
            }
            _ => write!(f, "day{}", self.0),
        }
    }
}

impl FromStr for Day {
    type Err = FactsError;

    fn from_str(s: &str) -> Result<Day, FactsError> {
        let bad = || FactsError::Invalid {
            what: "day (expected YYYY-MM-DD)",
            value: s.to_string(),
        };
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        // Hand-split (the format is fixed) and let chrono validate: much cheaper than a format-string parse,
        // and stores parse one of these per row read.
        let num = |r: std::ops::Range<usize>| -> Result<u32, FactsError> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let date =
            NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?).ok_or_else(bad)?;
        let days = date.signed_duration_since(epoch()).num_days();
        i32::try_from(days).map(Day).map_err(|_| bad())
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Day, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_days() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(Day::FIRST.to_string(), "0001-01-01");
        assert_eq!(Day::LAST.to_string(), "9999-12-31");
        assert_eq!(Day(-1).to_string(), "1969-12-31");
        assert_eq!(Day(19_723).to_string(), "2024-01-01");
        assert_eq!("2024-02-29".parse::<Day>().unwrap(), Day(19_782));
        assert!("2023-02-29".parse::<Day>().is_err());
        assert!("2024-1-01".parse::<Day>().is_err());
        assert!("yesterday".parse::<Day>().is_err());
        assert!("2024-0é-01".parse::<Day>().is_err());
        assert!("+024-01-01".parse::<Day>().is_err());
        assert!("2024-00-10".parse::<Day>().is_err());
    }

    #[test]
    fn unix_ms() {
        assert_eq!(Day::from_unix_ms(0), Day(0));
        assert_eq!(Day::from_unix_ms(86_399_999), Day(0));
        assert_eq!(Day::from_unix_ms(86_400_000), Day(1));
        assert_eq!(Day::from_unix_ms(-1), Day(-1));
        assert_eq!(Day(3).start_unix_ms(), 3 * 86_400_000);
    }

    #[test]
    fn serde_is_text() {
        let j = serde_json::to_string(&Day(1)).unwrap();
        assert_eq!(j, "\"1970-01-02\"");
        assert_eq!(serde_json::from_str::<Day>(&j).unwrap(), Day(1));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panicking(s in "\\PC{0,12}") {
            let _ = s.parse::<Day>();
        }

        #[test]
        fn near_dates_with_unicode_are_rejected(a in "[0-9é-]{10}") {
            if let Ok(d) = a.parse::<Day>() {
                prop_assert_eq!(d.to_string(), a);
            }
        }

        #[test]
        fn text_round_trips_and_sorts_like_numbers(a in -719_162i32..2_932_896, b in -719_162i32..2_932_896) {
            let (sa, sb) = (Day(a).to_string(), Day(b).to_string());
            prop_assert_eq!(sa.parse::<Day>().unwrap(), Day(a));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }
    }
}
