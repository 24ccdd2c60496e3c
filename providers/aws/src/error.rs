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
        // `Retry-After` in seconds (the HTTP-date form is not worth a date parser here: AWS
        // and the proxies in front of it send seconds).
        let retry_after = raw
            .and_then(|response| response.headers().get("retry-after"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(std::time::Duration::from_secs);
        Failure {
            code,
            message,
            status: raw.map(|response| response.status().as_u16()),
            retry_after,
        }
    }

    /// How long the server asked to wait before trying again, when it said.
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// True when the error is worth another attempt.
    pub(crate) fn is_retryable(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|code| RETRYABLE.contains(&code))
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
            _ if code.is_empty() => self.message,
            _ => format!("{code}: {}", self.message),
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
