//! Scalar values of the policy language, each parsed once at the edge with an error that says
//! what was expected. Parsing happens inside serde visitors so that serde_yaml attaches the
//! line and column of the offending scalar.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use lapse_sdk::Timestamp;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A length of time written as a number and a unit: `30m`, `8h`, `90d`, `2w`.
///
/// Hand-written rather than `humantime`: the grammar is one number and one unit, and we want to
/// refuse what humantime accepts (`90days 3h`, bare numbers with no unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: i64,
}

impl Duration {
    /// A duration of whole seconds.
    #[must_use]
    pub fn from_seconds(seconds: i64) -> Self {
        Duration { seconds }
    }

    /// Whole seconds.
    #[must_use]
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// Parses `<number><unit>` with unit one of s, m, h, d, w.
    ///
    /// # Errors
    /// A message saying what was expected.
    pub fn parse(input: &str) -> Result<Self, String> {
        let text = input.trim();
        let split = text
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let expected = "expected a number and a unit (s, m, h, d, w), such as 30m, 8h or 90d";
        if number.is_empty() || unit.is_empty() {
            return Err(format!("`{input}` is not a duration: {expected}"));
        }
        let multiplier = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => {
                return Err(format!(
                    "`{input}` has an unknown unit `{unit}`: {expected}"
                ));
            }
        };
        let seconds = number
            .parse::<i64>()
            .ok()
            .and_then(|value| value.checked_mul(multiplier))
            .ok_or_else(|| format!("`{input}` is too large for a duration"))?;
        if seconds > MAX_DURATION_SECONDS {
            return Err(format!(
                "`{input}` is longer than 100 years (36525d): write a shorter limit, or leave the key out for none"
            ));
        }
        Ok(Duration::from_seconds(seconds))
    }
}

/// The longest duration accepted: 100 years. Limits are added to instants (a grace period to
/// the time a key was deactivated); past the calendar's end the sum cannot be represented, and
/// such a deadline would read as already passed.
pub const MAX_DURATION_SECONDS: i64 = 36_525 * 86_400;

/// Deserializes text that must be present: YAML's null (`~`, `null`, or nothing after the
/// colon) is refused where it is written, rather than read as the text "~" or "null", which
/// would pass as an approver or a reason.
pub(crate) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct TextVisitor;
    impl<'de> Visitor<'de> for TextVisitor {
        type Value = String;
        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("text")
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Err(E::custom(NULL_TEXT))
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Err(E::custom(NULL_TEXT))
        }
        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
            String::deserialize(deserializer)
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_owned())
        }
    }
    deserializer.deserialize_option(TextVisitor)
}

const NULL_TEXT: &str = "no value here (YAML reads `~`, `null` and nothing as null): write the text, in quotes if it is literally \"null\"";

impl fmt::Display for Duration {
    /// The largest unit that divides the duration exactly, so `90d` prints as `90d`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(604_800, "w"), (86_400, "d"), (3_600, "h"), (60, "m")];
        for (size, unit) in units {
            if self.seconds != 0 && self.seconds % size == 0 {
                // Weeks only when they are the natural unit: 14d reads better than 2w in a policy.
                if unit == "w" && self.seconds % 86_400 == 0 {
                    continue;
                }
                return write!(formatter, "{}{unit}", self.seconds / size);
            }
        }
        write!(formatter, "{}s", self.seconds)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a duration such as 30m, 8h or 90d")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
                Duration::parse(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+[smhdw]$",
            "description": "A number and a unit: s, m, h, d or w (30m, 8h, 90d).",
            "examples": ["8h", "45d", "90d"]
        })
    }
}

/// A point in time as a person writes it in a policy: RFC 3339, or `YYYY-MM-DD` meaning the end
/// of that day in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyTime(pub Timestamp);

impl<'de> Deserialize<'de> for PolicyTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = PolicyTime;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a date (2026-12-31) or an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<PolicyTime, E> {
                Timestamp::parse_human(value)
                    .map(PolicyTime)
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_str(TimeVisitor)
    }
}

impl Serialize for PolicyTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl JsonSchema for PolicyTime {
    fn schema_name() -> Cow<'static, str> {
        "PolicyTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A date (YYYY-MM-DD, meaning the end of that day in UTC) or an RFC 3339 timestamp.",
            "anyOf": [
                {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                {"format": "date-time"}
            ]
        })
    }
}

/// A glob over ids and names: `*` matches any run of characters including `/` and `:`, so
/// `arn:aws:iam::*:role/admin-*` works across accounts. Checked when the policy is read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern(pub String);

impl Pattern {
    /// True when the pattern has no wildcard, so it can be looked up exactly.
    #[must_use]
    pub fn is_literal(&self) -> bool {
        !self.0.contains(['*', '?', '[', '{'])
    }

    /// The compiled glob.
    ///
    /// # Errors
    /// When the text is not a valid glob.
    pub fn glob(&self) -> Result<globset::Glob, globset::Error> {
        globset::GlobBuilder::new(&self.0)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;
        impl<'de> Visitor<'de> for PatternVisitor {
            type Value = Pattern;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an id or a glob such as arn:aws:iam::*:role/admin-*")
            }
            // A null is refused where it is written, not read as the pattern "~" or "null".
            fn visit_none<E: de::Error>(self) -> Result<Pattern, E> {
                Err(E::custom(NULL_TEXT))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Pattern, E> {
                Err(E::custom(NULL_TEXT))
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Pattern, D::Error> {
                deserializer.deserialize_str(PatternVisitor)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Pattern, E> {
                if value.trim().is_empty() {
                    return Err(E::custom(
                        "an empty pattern matches nothing: write an id or a glob",
                    ));
                }
                let pattern = Pattern(value.to_owned());
                pattern.glob().map_err(|error| {
                    E::custom(format!("`{value}` is not a valid glob: {}", error.kind()))
                })?;
                Ok(pattern)
            }
        }
        deserializer.deserialize_option(PatternVisitor)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "An exact id or name, or a glob (* ? [..] {a,b}); * also matches / and :."
        })
    }
}

/// One value or a list of them: `credential: aws-access-key` or `credential: [a, b]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> OneOrMany<T> {
    /// The values.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                T::deserialize(value.into_deserializer()).map(|one| OneOrMany(vec![one]))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
                T::deserialize(value.into_deserializer()).map(|one| OneOrMany(vec![one]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                if values.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list matches nothing: remove the key to match everything",
                    ));
                }
                Ok(OneOrMany(values))
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "anyOf": [one, {"type": "array", "items": one, "minItems": 1}]
        })
    }
}

/// The policy language version. Only 1 exists; anything else is refused with a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyVersion;

impl<'de> Deserialize<'de> for PolicyVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = PolicyVersion;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("the policy language version, 1")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<PolicyVersion, E> {
                if value == 1 {
                    Ok(PolicyVersion)
                } else {
                    Err(E::custom(format!(
                        "policy version {value} is not supported: this lapse reads `version: 1`"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<PolicyVersion, E> {
                self.visit_u64(u64::try_from(value).unwrap_or(u64::MAX))
            }
        }
        deserializer.deserialize_u64(VersionVisitor)
    }
}

impl Serialize for PolicyVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(1)
    }
}

impl JsonSchema for PolicyVersion {
    fn schema_name() -> Cow<'static, str> {
        "PolicyVersion".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"const": 1, "description": "The policy language version."})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_number_and_one_unit() {
        assert_eq!(
            Duration::parse("90d").map(Duration::seconds),
            Ok(90 * 86_400)
        );
        assert_eq!(Duration::parse("30m").map(Duration::seconds), Ok(1_800));
        assert_eq!(
            Duration::parse("2w").map(Duration::seconds),
            Ok(14 * 86_400)
        );
        for bad in ["90", "d", "90days", "1.5h", "-3d", "8 h x"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations_past_a_century_are_refused() {
        assert_eq!(
            Duration::parse("36525d").map(Duration::seconds),
            Ok(MAX_DURATION_SECONDS)
        );
        // Fits in an i64, but added to any instant it passes the calendar's end.
        let error = Duration::parse("9999999999999d").expect_err("too long");
        assert!(error.contains("longer than 100 years"), "{error}");
    }

    #[test]
    fn durations_print_in_their_natural_unit() {
        for text in ["90d", "8h", "30m", "45s", "14d"] {
            assert_eq!(
                Duration::parse(text).map(|d| d.to_string()).as_deref(),
                Ok(text)
            );
        }
    }

    #[test]
    fn literal_patterns_are_told_apart_from_globs() {
        assert!(Pattern("arn:aws:iam::1:role/a".into()).is_literal());
        assert!(!Pattern("arn:aws:iam::*:role/a".into()).is_literal());
    }
}
