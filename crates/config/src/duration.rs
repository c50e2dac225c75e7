//! Durations written as strings with a unit: `"250ms"`, `"10s"`, `"5m"`, `"7d"`, `"1h30m"`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A length of time from the configuration file.
///
/// Written as one or more whole numbers, each followed by a unit, largest unit first:
/// `ms`, `s`, `m`, `h`, `d` (a day is 24 hours). Parsing happens while deserializing, so a bad
/// value is reported with its line and column.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

/// Units from largest to smallest, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

const SYNTAX: &str = "expected whole numbers each followed by a unit (ms, s, m, h, d), \
                      largest unit first, such as \"250ms\", \"10s\" or \"1h30m\"";

impl Duration {
    /// No time at all; invalid for most fields.
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// `mins` minutes.
    pub const fn from_mins(mins: u64) -> Self {
        Duration::from_secs(mins * 60)
    }

    /// `days` days of 24 hours.
    pub const fn from_days(days: u64) -> Self {
        Duration::from_secs(days * 86_400)
    }

    /// The value as the standard library's type, which is what timers and clients take.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is no time at all.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid duration {text:?}: {SYNTAX}");
        if text.is_empty() {
            return Err(invalid());
        }
        let mut rest = text;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit seen, to insist on largest-first without repeats.
        let mut last: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| too_large(text))?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            rest = &rest[letters..];
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(invalid());
            };
            if last.is_some_and(|l| index <= l) {
                return Err(format!(
                    "invalid duration {text:?}: units must go from largest to smallest, \
                     each at most once (d, h, m, s, ms)"
                ));
            }
            last = Some(index);
            total = number
                .checked_mul(UNITS[index].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| too_large(text))?;
        }
        Ok(Duration::from_millis(total))
    }
}

fn too_large(text: &str) -> String {
    format!("invalid duration {text:?}: too large")
}

/// Prints the shortest form that parses back to the same value (`"1h30m"`, `"0s"`).
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, len) in UNITS {
            let len = u128::from(len);
            if ms >= len {
                write!(f, "{}{name}", ms / len)?;
                ms %= len;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                text.parse().map_err(E::custom)
            }

            // A bare number is the most likely mistake; say which unit to add rather than
            // serde's generic "invalid type".
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" (or ms, m, h, d), not {n}"
                )))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{n}s\" (or ms, m, h, d), not {n}"
                )))
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<std::time::Duration, String> {
        text.parse::<Duration>().map(Duration::get)
    }

    #[test]
    fn parses_each_unit_and_combinations() {
        use std::time::Duration as Std;
        assert_eq!(parse("250ms"), Ok(Std::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Std::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Std::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Std::from_secs(7200)));
        assert_eq!(parse("7d"), Ok(Std::from_secs(7 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Std::from_secs(5400)));
        assert_eq!(parse("1m5s"), Ok(Std::from_secs(65)));
        assert_eq!(parse("1s500ms"), Ok(Std::from_millis(1500)));
        assert_eq!(parse("0s"), Ok(Std::ZERO));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "s",
            "10 s",
            " 10s",
            "10s ",
            "10 parsecs",
            "1.5s",
            "-1s",
            "10S",
            "1y",
            "30m1h",
            "1m1m",
            "5ms3s",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(
            parse("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse("999999999999999d").unwrap_err().contains("too large"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["0s", "250ms", "10s", "5m", "1h30m", "7d", "1d2h3m4s5ms"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
    }
}
