//! UTC instants, serialized as RFC 3339.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

/// An instant in UTC. Every timestamp in the model is one of these, so comparisons never mix
/// offsets and serialized output is the same whatever zone the input used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A timestamp string that is neither RFC 3339 nor a `YYYY-MM-DD` date.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{input}` is not a timestamp: expected RFC 3339 (2026-03-31T12:00:00Z) or a date (2026-03-31)"
)]
pub struct TimestampError {
    /// The text that failed to parse.
    pub input: String,
}

impl Timestamp {
    /// The Unix epoch, a neutral value for tests and defaults.
    pub const UNIX_EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    /// Wraps an instant, converting it to UTC.
    #[must_use]
    pub fn from_offset(value: OffsetDateTime) -> Self {
        Timestamp(value.to_offset(UtcOffset::UTC))
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Timestamp)
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The inner `time` value.
    #[must_use]
    pub fn as_offset(self) -> OffsetDateTime {
        self.0
    }

    /// Whole seconds from `earlier` to `self` (negative when `earlier` is later).
    #[must_use]
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.unix_seconds() - earlier.unix_seconds()
    }

    /// This instant moved by a number of seconds (saturating at the representable range).
    #[must_use]
    pub fn plus_seconds(self, seconds: i64) -> Self {
        // Past the range, the nearest end of it: returning the instant unmoved would make a
        // window of centuries read as already over.
        let edge = if seconds >= 0 {
            time::PrimitiveDateTime::MAX
        } else {
            time::PrimitiveDateTime::MIN
        };
        Timestamp(
            self.0
                .checked_add(time::Duration::seconds(seconds))
                .unwrap_or_else(|| edge.assume_utc()),
        )
    }

    /// Parses RFC 3339 only: what snapshots and other machine files carry.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        OffsetDateTime::parse(input, &Rfc3339)
            .map(Self::from_offset)
            .map_err(|_| TimestampError {
                input: input.to_owned(),
            })
    }

    /// Parses what a person writes: RFC 3339, or a bare `YYYY-MM-DD` date.
    ///
    /// A bare date means the *end* of that day in UTC (the next midnight), so `until: 2026-12-31`
    /// still holds on the 31st, as a person reading it expects.
    ///
    /// # Errors
    /// When the text is neither form.
    pub fn parse_human(input: &str) -> Result<Self, TimestampError> {
        let input = input.trim();
        if let Ok(value) = Self::parse_rfc3339(input) {
            return Ok(value);
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(input, &format)
            .ok()
            .and_then(|date| date.next_day())
            .map(|next| Timestamp(next.midnight().assume_utc()))
            .ok_or_else(|| TimestampError {
                input: input.to_owned(),
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Second precision keeps reports stable and readable; clouds rarely give more.
        let value = self.0.replace_nanosecond(0).unwrap_or(self.0);
        match value.format(&Rfc3339) {
            Ok(text) => formatter.write_str(&text),
            Err(_) => write!(formatter, "{}", value.unix_timestamp()),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse_human(input)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an RFC 3339 timestamp such as 2026-03-31T12:00:00Z")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 timestamp, stored in UTC."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_date_means_the_end_of_that_day() {
        let until = Timestamp::parse_human("2026-12-31").expect("date");
        assert_eq!(until.to_string(), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        let value = Timestamp::parse_rfc3339("2026-03-31T14:00:00+02:00").expect("rfc3339");
        assert_eq!(value.to_string(), "2026-03-31T12:00:00Z");
    }

    #[test]
    fn nonsense_is_refused_with_the_expected_forms() {
        let error = Timestamp::parse_human("next tuesday").expect_err("not a date");
        assert!(error.to_string().contains("RFC 3339"));
    }

    #[test]
    fn moving_past_the_range_stops_at_its_end_not_where_it_started() {
        let now = Timestamp::parse_rfc3339("2026-11-20T06:00:00Z").expect("rfc3339");
        assert!(now.plus_seconds(i64::MAX) > now.plus_seconds(86_400 * 365 * 100));
        assert!(now.plus_seconds(i64::MIN) < now.plus_seconds(-86_400 * 365 * 100));
        assert_eq!(now.plus_seconds(3_600).to_string(), "2026-11-20T07:00:00Z");
    }
}
