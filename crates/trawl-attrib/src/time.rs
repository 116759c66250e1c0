//! Event time: Unix seconds, read from RFC 3339 text (`2026-11-22T10:00:00Z`)
//! or a JSON number of seconds, written back as RFC 3339 UTC.
//!
//! Internally the index stores times as `u32` seconds (1970 to 2106), which
//! halves the size of every ownership mark; [`to_stored`] is the one checked
//! conversion.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Unix seconds.
pub type Secs = i64;

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {text:?}: expected RFC 3339 (2026-11-22T10:00:00Z) or epoch seconds between 1970 and 2106"
)]
pub struct TimeError {
    /// The text as given.
    pub text: String,
}

/// Parses RFC 3339 or decimal epoch seconds.
pub fn parse_time(text: &str) -> Result<Secs, TimeError> {
    let error = || TimeError {
        text: text.to_string(),
    };
    let trimmed = text.trim();
    let secs = match trimmed.parse::<i64>() {
        Ok(secs) => secs,
        Err(_) => trimmed
            .parse::<jiff::Timestamp>()
            .map_err(|_| error())?
            .as_second(),
    };
    to_stored(secs).map(Secs::from).ok_or_else(error)
}

/// The stored form of a time, if it fits (1970 to 2106).
pub fn to_stored(secs: Secs) -> Option<u32> {
    u32::try_from(secs).ok()
}

/// RFC 3339 UTC text of a time (`2026-11-22T10:00:00Z`).
pub fn format_time(secs: Secs) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// Deserializes a time from RFC 3339 text or a number of seconds.
pub fn deserialize_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secs, D::Error> {
    struct TimeVisitor;

    impl Visitor<'_> for TimeVisitor {
        type Value = Secs;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("RFC 3339 text or epoch seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Secs, E> {
            parse_time(text).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Secs, E> {
            self.visit_str(&secs.to_string())
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Secs, E> {
            self.visit_str(&secs.to_string())
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Secs, E> {
            self.visit_str(&(secs.floor() as i64).to_string())
        }
    }

    deserializer.deserialize_any(TimeVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_the_limits() {
        assert_eq!(parse_time("2026-11-22T10:00:00Z"), Ok(1_795_341_600));
        assert_eq!(parse_time("2026-11-22T11:00:00+01:00"), Ok(1_795_341_600));
        assert_eq!(parse_time("1795341600"), Ok(1_795_341_600));
        assert!(parse_time("-5").is_err());
        assert!(parse_time("5000000000").is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_795_341_600), "2026-11-22T10:00:00Z");
    }
}
