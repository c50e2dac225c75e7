//! Times as people type them: `2h` ago, a date, or an RFC 3339 timestamp; and back again as
//! "5 min ago".

use jiff::{SignedDuration, Timestamp};

use crate::error::OpError;

/// A length such as `90s`, `15m`, `2h`, `7d` or `1w`.
pub fn parse_duration(field: &str, text: &str) -> Result<SignedDuration, OpError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: i64 = digits.parse().map_err(|_| bad_duration(field, text))?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return Err(bad_duration(field, text)),
    };
    n.checked_mul(secs)
        .map(SignedDuration::from_secs)
        .ok_or_else(|| bad_duration(field, text))
}

fn bad_duration(field: &str, text: &str) -> OpError {
    OpError::field(
        field,
        format!("{field}: {text:?} is not a duration such as 90s, 15m, 2h, 7d or 1w"),
    )
}

/// A point in time: `now`, a duration ago (`2h`), a date (`2026-11-20`, midnight UTC) or an
/// RFC 3339 timestamp (`2026-11-20T08:00:00Z`).
pub fn parse_time(field: &str, text: &str, now: Timestamp) -> Result<Timestamp, OpError> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>()
        && let Ok(z) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp());
    }
    if t.starts_with(|c: char| c.is_ascii_digit())
        && let Ok(ago) = parse_duration(field, t)
    {
        return now
            .checked_sub(ago)
            .map_err(|_| OpError::field(field, format!("{field}: {text:?} is too far back")));
    }
    Err(OpError::field(
        field,
        format!(
            "{field}: {text:?} is not a time: give a duration ago (2h, 7d), a date (2026-11-20) \
             or an RFC 3339 timestamp (2026-11-20T08:00:00Z)"
        ),
    ))
}

/// "just now", "5 min ago", "3 h ago", "2 d ago"; "in 10 min" for times ahead.
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second() - at.as_second();
    let (ahead, secs) = (secs < 0, secs.unsigned_abs());
    let text = match secs {
        0..=9 => return "just now".to_owned(),
        10..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_people_type() {
        let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let at = |s: &str| parse_time("since", s, now).unwrap().to_string();
        assert_eq!(at("2h"), "2026-11-21T10:00:00Z");
        assert_eq!(at("7d"), "2026-11-14T12:00:00Z");
        assert_eq!(at("2026-11-20"), "2026-11-20T00:00:00Z");
        assert_eq!(at("2026-11-20T08:30:00+01:00"), "2026-11-20T07:30:00Z");
        assert_eq!(at("now"), "2026-11-21T12:00:00Z");
        let e = parse_time("since", "yesterday", now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("since"));
        assert!(
            e.message.starts_with("since: \"yesterday\""),
            "{}",
            e.message
        );
        assert!(parse_duration("duration", "5x").is_err());
        assert!(parse_duration("duration", "h").is_err());
    }

    #[test]
    fn says_how_long_ago() {
        let now: Timestamp = "2026-11-21T12:00:00Z".parse().unwrap();
        let ago = |s: i64| relative(now - SignedDuration::from_secs(s), now);
        assert_eq!(ago(3), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(7200), "2 h ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
        assert_eq!(ago(-600), "in 10 min");
    }
}
