//! Every AWS error code is interpreted here, once: what kind of failure it is, whether it is
//! worth retrying, and which permission was missing.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lapse_sdk::{ProviderError, ProviderErrorKind};

/// Errors of the AWS provider that are not a single API call's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// The role assumed for a scope lives in another account.
    #[error(
        "assuming a role for account {expected} landed in account {actual}: check `assume_role` for that account in the policy's scopes"
    )]
    WrongAccount {
        /// The account the scope names.
        expected: String,
        /// The account the credentials belong to.
        actual: String,
    },
    /// A successful answer that is not a whole document, or a page that does not say whether
    /// more follow.
    #[error(
        "the answer to iam:{operation} was not whole: {reason}; nothing from it was used. If this persists, check what stands between lapse and AWS (a proxy or gateway that cuts or rewrites answers)"
    )]
    NotWhole {
        /// The API operation.
        operation: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A list whose pages do not end.
    #[error(
        "iam:{operation} kept paging: {reason}; the list was not read to its end, so nothing is taken as absent"
    )]
    EndlessPaging {
        /// The API operation.
        operation: String,
        /// What repeated.
        reason: String,
    },
}

/// Codes that mean "slow down or try again": retried with backoff. IAM's `LimitExceeded` and
/// `ConcurrentModification` are not in the SDK's own throttling list.
const RETRYABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceeded",
    "ConcurrentModification",
    "EntityTemporarilyUnmodifiable",
    "ServiceFailure",
];

/// What an SDK error says, read once: its code (from the parsed error, else from the raw body:
/// emulators and proxies sometimes wrap errors in shapes the SDK does not parse), its message
/// and its HTTP status.
pub(crate) struct Failure {
    code: Option<String>,
    message: String,
    status: Option<u16>,
    retry_after: Option<std::time::Duration>,
    /// How the call failed when no service error came back.
    transport: Transport,
    /// The message is lapse's own and already says what to check.
    explained: bool,
}

/// Failures below the service's own error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// A service answered (an error code, or at least a status).
    Answered,
    /// An attempt ran out of time (connect or attempt timeout, or loading credentials).
    TimedOut,
    /// The connection failed or was reset, or the answer was not whole: nothing was read, and
    /// asking again may work.
    Broken,
    /// Anything else before an answer (credentials that cannot be loaded, a bad request).
    Other,
}

impl Failure {
    pub(crate) fn of<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let raw = error.raw_response();
        let body = raw
            .and_then(|response| response.body().bytes())
            .map(String::from_utf8_lossy);
        let between = |open: &str, close: &str| -> Option<String> {
            let body = body.as_deref()?;
            let start = body.find(open)? + open.len();
            let end = body[start..].find(close)? + start;
            Some(body[start..end].to_owned())
        };
        let code = error
            .code()
            .map(str::to_owned)
            .or_else(|| between("<Code>", "</Code>"));
        let message = error
            .message()
            .map(str::to_owned)
            .or_else(|| between("<Message>", "</Message>"))
            .unwrap_or_else(|| describe(error));
        let retry_after = raw
            .and_then(|response| response.headers().get("retry-after"))
            .and_then(|value| lapse_sdk::parse_retry_after(value, time::OffsetDateTime::now_utc()));
        let chain = describe(error);
        let timed_out_text = chain.contains("timed out") || chain.contains("timeout");
        let transport = match error {
            SdkError::TimeoutError(_) => Transport::TimedOut,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => Transport::TimedOut,
            SdkError::DispatchFailure(failure)
                if failure.is_io()
                    || failure.as_other()
                        == Some(aws_smithy_types::retry::ErrorKind::TransientError) =>
            {
                Transport::Broken
            }
            // Loading credentials (an AssumeRole that hung) fails as a dispatch failure whose
            // cause says it timed out.
            SdkError::DispatchFailure(_) if timed_out_text => Transport::TimedOut,
            SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => Transport::Other,
            SdkError::ResponseError(_) => Transport::Broken,
            _ => Transport::Answered,
        };
        // A rejected answer says why in its own words, not the SDK's wrapping.
        let not_whole = std::error::Error::source(error).and_then(|source| {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
            while let Some(current) = cause {
                if let Some(own) = current.downcast_ref::<AwsError>() {
                    return Some(own.to_string());
                }
                cause = current.source();
            }
            None
        });
        Failure {
            code: if transport == Transport::Answered {
                code
            } else {
                None
            },
            explained: not_whole.is_some(),
            message: not_whole.unwrap_or(message),
            status: raw.map(|response| response.status().as_u16()),
            retry_after,
            transport,
        }
    }

    /// True when an attempt ran out of time.
    pub(crate) fn is_timeout(&self) -> bool {
        self.transport == Transport::TimedOut
    }

    /// How long the server asked to wait before trying again, when it said.
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// True when the error is worth another attempt: IAM said to slow down or that it did not
    /// act; or, for a call that is safe to repeat, the transport broke, the answer was not
    /// whole, or the server failed (5xx).
    pub(crate) fn is_retryable(&self, safe_to_repeat: bool) -> bool {
        if self
            .code
            .as_deref()
            .is_some_and(|code| RETRYABLE.contains(&code))
        {
            return true;
        }
        safe_to_repeat
            && (self.transport == Transport::Broken
                || (self.transport == Transport::Answered
                    && self.status.is_some_and(|status| status >= 500)))
    }

    /// The failure as the engine sees it. `operation` is the API action name.
    pub(crate) fn into_provider_error(self, service: &str, operation: &str) -> ProviderError {
        let code = self.code.unwrap_or_default();
        let kind = match code.as_str() {
            "NoSuchEntity" => ProviderErrorKind::NotFound,
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "SignatureDoesNotMatch" => ProviderErrorKind::Denied,
            code if RETRYABLE.contains(&code) => ProviderErrorKind::Throttled,
            "UnmodifiableEntity" => ProviderErrorKind::Unsupported,
            _ if self.status == Some(403) => ProviderErrorKind::Denied,
            _ if self.status == Some(404) => ProviderErrorKind::NotFound,
            _ => ProviderErrorKind::Other,
        };
        let permission = format!("{service}:{operation}");
        let message = match kind {
            ProviderErrorKind::Denied => format!(
                "{code}: {} (grant `{permission}` to the identity lapse runs as)",
                self.message
            ),
            ProviderErrorKind::Throttled => format!(
                "{code}: {} (IAM limits requests per account: run again later, or read fewer accounts at once)",
                self.message
            ),
            _ if !code.is_empty() => format!("{code}: {}", self.message),
            _ if self.explained => self.message,
            _ => match (self.transport, self.status) {
                (Transport::Answered, Some(status)) if status >= 500 => format!(
                    "HTTP {status} with no AWS error code ({}): AWS or a proxy in front of it failed; run again later",
                    self.message
                ),
                (Transport::Broken, _) => format!(
                    "{}: check the network path to AWS (proxy, firewall) and run again",
                    self.message
                ),
                _ => self.message,
            },
        };
        ProviderError {
            kind,
            operation: permission.clone(),
            message,
            missing_permission: (kind == ProviderErrorKind::Denied).then_some(permission),
        }
    }
}

/// The whole error chain on one line (the SDK's top-level message is often just "service error").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
