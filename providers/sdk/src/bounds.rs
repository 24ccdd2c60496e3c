//! How long a provider may wait on a cloud, and how often it may ask again: one policy for every
//! provider, so a hung or throttled endpoint ends a scope as incomplete within a known time.
//!
//! The numbers live here; each provider applies them to its own client (connect and attempt
//! timeouts on the HTTP client, one retry loop honouring the server's `Retry-After`, a deadline
//! around each operation with all its retries). A provider never nests another retry loop inside
//! its own.

use std::time::Duration;

use time::OffsetDateTime;

/// Time and attempt limits for every call a provider makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallBounds {
    /// Longest wait for a TCP and TLS connection.
    pub connect: Duration,
    /// Longest one attempt may take, from sending the request to the last byte of its answer.
    pub attempt: Duration,
    /// Longest one operation may take with all its attempts and the waits between them (one
    /// page of a list, one write). When it passes, the operation fails as timed out and the
    /// scope it belongs to is ended as incomplete: an endpoint that hung once would hang again.
    pub operation: Duration,
    /// Attempts per operation, the first included.
    pub attempts: u32,
    /// The first wait before a retry; later ones double, with jitter.
    pub first_backoff: Duration,
    /// The longest wait between attempts, a server's `Retry-After` included.
    pub max_backoff: Duration,
}

/// The documented defaults: a hung endpoint ends its scope within [`DEFAULT_OPERATION`], a
/// throttled one after at most [`DEFAULT_ATTEMPTS`] attempts within the same bound.
pub const DEFAULT_OPERATION: Duration = Duration::from_secs(120);
/// See [`CallBounds::attempts`].
pub const DEFAULT_ATTEMPTS: u32 = 5;

impl Default for CallBounds {
    fn default() -> Self {
        CallBounds {
            connect: Duration::from_secs(10),
            attempt: Duration::from_secs(30),
            operation: DEFAULT_OPERATION,
            attempts: DEFAULT_ATTEMPTS,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
        }
    }
}

impl CallBounds {
    /// The bounds with `operation` set to `limit` (the `--timeout` flag): one attempt and the
    /// connect wait never exceed the whole, so a short limit is a real limit.
    #[must_use]
    pub fn with_operation(self, limit: Duration) -> Self {
        CallBounds {
            operation: limit,
            attempt: self.attempt.min(limit),
            connect: self.connect.min(limit),
            ..self
        }
    }

    /// The wait a server asked for, believed up to [`CallBounds::max_backoff`].
    #[must_use]
    pub fn believe(&self, asked: Duration) -> Duration {
        asked.min(self.max_backoff)
    }
}

/// Reads an HTTP `Retry-After` value: delay seconds, or an HTTP date (a date already past means
/// now). `None` for anything else, so a garbled header falls back to the provider's backoff.
#[must_use]
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// What a timed-out operation says: that it timed out, after how long, and what to check.
#[must_use]
pub fn timed_out_message(after: Duration, endpoint: &str) -> String {
    format!(
        "timed out after {}s without a whole answer from {endpoint}; check that the endpoint is \
         reachable from here (proxy, firewall, DNS) and not degraded, or raise --timeout",
        after.as_secs_f64().round()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = time::macros::datetime!(2026-11-20 10:00:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Fri, 20 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn a_short_limit_shortens_every_wait_inside_it() {
        let bounds = CallBounds::default().with_operation(Duration::from_secs(5));
        assert_eq!(bounds.operation, Duration::from_secs(5));
        assert_eq!(bounds.attempt, Duration::from_secs(5));
        assert_eq!(bounds.connect, Duration::from_secs(5));
        assert_eq!(
            bounds.believe(Duration::from_secs(3600)),
            bounds.max_backoff
        );
    }

    #[test]
    fn a_timeout_says_so_and_what_to_check() {
        let message = timed_out_message(Duration::from_secs(120), "iam.amazonaws.com");
        assert!(message.contains("timed out after 120s"), "{message}");
        assert!(message.contains("--timeout"), "{message}");
    }
}
