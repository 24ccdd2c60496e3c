//! Every Google API error is interpreted here, once: what kind of failure it is, whether it is
//! worth retrying, and which permission was missing.
//!
//! Google's REST errors share one shape (<https://cloud.google.com/apis/design/errors>):
//! `{"error":{"code":403,"message":"…","status":"PERMISSION_DENIED","details":[…]}}`, where a
//! `google.rpc.ErrorInfo` detail may name the permission in `metadata.permission`.

use lapse_sdk::{ProviderError, ProviderErrorKind};
use serde_json::Value;

/// Errors of the Google Cloud provider that are not a single API call's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcpError {
    /// No usable credentials (application default credentials not set up, or a bad key file).
    #[error(
        "no usable Google credentials: {message}; set GOOGLE_APPLICATION_CREDENTIALS to a key or external-account file, or run `gcloud auth application-default login`"
    )]
    Credentials {
        /// What google-cloud-auth said.
        message: String,
    },
    /// The credentials could not produce an authorization header.
    #[error(
        "Google credentials could not produce a token: {message}; check the credentials file, impersonation target or workload identity settings"
    )]
    Token {
        /// What google-cloud-auth said.
        message: String,
    },
    /// A request could not be sent or its answer read. (The operation is not in the text: the
    /// engine's error names it already.)
    #[error("{message}; check the endpoint and the network, then run lapse again")]
    Transport {
        /// The API method.
        operation: String,
        /// What failed.
        message: String,
    },
    /// The service answered with something that is not the documented shape.
    #[error(
        "the answer is not the documented shape ({message}); check the endpoint lapse is pointed at, and run lapse again"
    )]
    Malformed {
        /// The API method.
        operation: String,
        /// The parse error.
        message: String,
    },
    /// No whole answer came within the operation's bound, all attempts and waits included.
    #[error("{}", lapse_sdk::timed_out_message(*after, endpoint))]
    TimedOut {
        /// The API method.
        operation: String,
        /// How long lapse waited.
        after: std::time::Duration,
        /// The host that did not answer.
        endpoint: String,
    },
    /// A call not sent (or a read given up on while in flight) because another call of the same
    /// scope, or to the same endpoint, timed out: it would only have hung again.
    #[error(
        "given up: {reason}, so lapse stopped calling it (this call was not sent, or no longer awaited); what it would have read is unknown"
    )]
    Abandoned {
        /// The API method.
        operation: String,
        /// Which earlier call timed out, and where.
        reason: String,
    },
    /// A read-modify-write of an IAM policy kept meeting concurrent writers.
    #[error(
        "{resource}: the IAM policy kept changing under lapse ({attempts} read-modify-write attempts met 409 ABORTED); run apply again when other writers are done"
    )]
    Contention {
        /// The resource whose policy was being changed.
        resource: String,
        /// How many full cycles were tried.
        attempts: u32,
    },
}

impl GcpError {
    /// The error as the engine sees it.
    pub(crate) fn into_provider_error(self, operation: &str) -> ProviderError {
        let kind = match &self {
            GcpError::Credentials { .. } | GcpError::Token { .. } => ProviderErrorKind::Denied,
            GcpError::Contention { .. } => ProviderErrorKind::Throttled,
            GcpError::TimedOut { .. } | GcpError::Abandoned { .. } => ProviderErrorKind::TimedOut,
            GcpError::Transport { .. } | GcpError::Malformed { .. } => ProviderErrorKind::Other,
        };
        ProviderError {
            kind,
            operation: operation.to_owned(),
            message: self.to_string(),
            missing_permission: None,
        }
    }
}

/// One API method as lapse calls it: its name in errors, and the IAM permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Method {
    /// The REST method (`iam.projects.serviceAccounts.list`).
    pub(crate) name: &'static str,
    /// The permission it needs (`iam.serviceAccounts.list`).
    pub(crate) permission: &'static str,
    /// True when the call only reads: it may be sent again when its answer was lost (a reset,
    /// an attempt that timed out, a 5xx), which a write may not.
    pub(crate) reads: bool,
}

/// A failed HTTP exchange with a Google API, read once.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The HTTP status.
    pub(crate) status: u16,
    /// `error.status` (`PERMISSION_DENIED`, `ABORTED`, …).
    pub(crate) code: String,
    /// `error.message`.
    pub(crate) message: String,
    /// The permission a `google.rpc.ErrorInfo` detail or the message names.
    pub(crate) permission: Option<String>,
    /// `Retry-After` in seconds, when sent.
    pub(crate) retry_after: Option<std::time::Duration>,
    /// Set when the API itself is not enabled for the project billed (`SERVICE_DISABLED`):
    /// no permission grant helps then.
    /// Boxed: it is rare, and every `Result` carrying a failure would grow by it.
    pub(crate) disabled: Option<Box<DisabledApi>>,
}

/// What a `SERVICE_DISABLED` answer names: a `google.rpc.ErrorInfo` detail's `metadata`
/// `{"service": "iam.googleapis.com", "consumer": "projects/123"}`, or its message
/// ("… API has not been used in project 123 before or it is disabled. Enable it by visiting
/// https://console.developers.google.com/apis/api/iam.googleapis.com/overview?project=123 …").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DisabledApi {
    /// The API to enable (`iam.googleapis.com`), when the answer says.
    pub(crate) service: Option<String>,
    /// The project it must be enabled in (`projects/123`): the one the request was billed to,
    /// which may be the credentials' quota project rather than the project read.
    pub(crate) consumer: Option<String>,
}

impl DisabledApi {
    fn read(error: &Value, message: &str) -> Option<Self> {
        let info = error["details"].as_array().and_then(|details| {
            details
                .iter()
                .find(|detail| detail["reason"].as_str() == Some("SERVICE_DISABLED"))
        });
        let said = message.contains("has not been used in project")
            && message.contains("or it is disabled");
        if info.is_none() && !said {
            return None;
        }
        let metadata = info.map(|info| &info["metadata"]);
        let field = |name: &str| {
            metadata
                .and_then(|metadata| metadata[name].as_str())
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let service = field("service").or_else(|| {
            // The activation link names it: `…/apis/api/<service>/overview?project=…`.
            let (_, rest) = message.split_once("/apis/api/")?;
            let service = rest.split(['/', '?', ' ']).next()?;
            service
                .ends_with(".googleapis.com")
                .then(|| service.to_owned())
        });
        let consumer = field("consumer").or_else(|| {
            let (_, rest) = message.split_once("has not been used in project ")?;
            let project = rest.split_whitespace().next()?;
            (!project.is_empty()).then(|| format!("projects/{project}"))
        });
        Some(DisabledApi { service, consumer })
    }
}

impl Failure {
    /// Reads a non-success answer's body.
    pub(crate) fn parse(
        status: u16,
        body: &[u8],
        retry_after: Option<std::time::Duration>,
    ) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = &json["error"];
        let message = error["message"].as_str().map_or_else(
            || {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text.chars().take(300).collect()
                }
            },
            str::to_owned,
        );
        let code = error["status"]
            .as_str()
            .map_or_else(|| default_code(status).to_owned(), str::to_owned);
        let from_details = error["details"].as_array().and_then(|details| {
            details.iter().find_map(|detail| {
                detail["metadata"]["permission"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| {
                        // `google.rpc.PreconditionFailure`-style violations name it too.
                        detail["violations"].as_array().and_then(|violations| {
                            violations
                                .iter()
                                .find_map(|violation| violation["subject"].as_str())
                                .filter(|subject| looks_like_permission(subject))
                                .map(str::to_owned)
                        })
                    })
            })
        });
        Failure {
            status,
            code,
            permission: from_details.or_else(|| permission_in(&message)),
            disabled: DisabledApi::read(error, &message).map(Box::new),
            message,
            retry_after,
        }
    }

    /// True when the call is worth another attempt after a pause: 429 `RESOURCE_EXHAUSTED`
    /// and 503 `UNAVAILABLE` (Google's default retry policy leaves 429 out; lapse does not),
    /// and for a read also 500, 502 and 504, whose write might have landed.
    pub(crate) fn is_retryable(&self, reads: bool) -> bool {
        matches!(self.status, 429 | 503) || (reads && matches!(self.status, 500 | 502 | 504))
    }

    /// True for 409 `ABORTED`: a stale etag on `setIamPolicy`.
    pub(crate) fn is_conflict(&self) -> bool {
        self.status == 409
    }

    /// The failure as the engine sees it.
    pub(crate) fn into_provider_error(self, method: Method) -> ProviderError {
        if self.status == 403
            && let Some(disabled) = &self.disabled
        {
            return self.api_disabled(disabled, method);
        }
        let kind = match self.status {
            404 => ProviderErrorKind::NotFound,
            401 | 403 => ProviderErrorKind::Denied,
            429 | 503 => ProviderErrorKind::Throttled,
            400 if self.code == "FAILED_PRECONDITION" => ProviderErrorKind::Unsupported,
            _ => ProviderErrorKind::Other,
        };
        let missing_permission =
            (kind == ProviderErrorKind::Denied && self.status == 403).then(|| {
                self.permission
                    .clone()
                    .unwrap_or_else(|| method.permission.to_owned())
            });
        let message = match (&kind, &missing_permission) {
            (ProviderErrorKind::Denied, Some(permission)) => format!(
                "{} {}: {} (grant `{permission}` to the identity lapse runs as, for example with a role that includes it)",
                self.status, self.code, self.message
            ),
            (ProviderErrorKind::Denied, None) => format!(
                "{} {}: {} (the credentials were refused: refresh or replace them)",
                self.status, self.code, self.message
            ),
            (ProviderErrorKind::Throttled, _) => format!(
                "{} {}: {} (retries ran out: run lapse again later, or lower the concurrency)",
                self.status, self.code, self.message
            ),
            (ProviderErrorKind::Other, _) if self.status >= 500 => format!(
                "{} {}: {} (Google's service failed: run lapse again later, and check the service's status if it persists)",
                self.status, self.code, self.message
            ),
            _ => format!("{} {}: {}", self.status, self.code, self.message),
        };
        ProviderError {
            kind,
            operation: method.name.to_owned(),
            message,
            missing_permission,
        }
    }
}

impl Failure {
    /// A call refused because its API is not enabled: what to enable, and where. Not a
    /// missing permission, so none is named.
    fn api_disabled(&self, disabled: &DisabledApi, method: Method) -> ProviderError {
        // Without a `service` in the answer, the method's own API (`iam.projects…` is
        // `iam.googleapis.com`).
        let service = disabled.service.clone().unwrap_or_else(|| {
            let api = method.name.split('.').next().unwrap_or(method.name);
            format!("{api}.googleapis.com")
        });
        let advice = match disabled
            .consumer
            .as_deref()
            .map(|consumer| consumer.strip_prefix("projects/").unwrap_or(consumer))
        {
            Some(project) => format!(
                "enable the `{service}` API in project {project} (`gcloud services enable {service} --project={project}`), then run lapse again"
            ),
            None => format!(
                "enable the `{service}` API in the project the request is billed to (`gcloud services enable {service}`), then run lapse again"
            ),
        };
        ProviderError {
            kind: ProviderErrorKind::Other,
            operation: method.name.to_owned(),
            message: format!(
                "{} {}: {} (the API is not enabled, so no permission grant helps: {advice})",
                self.status, self.code, self.message
            ),
            missing_permission: None,
        }
    }
}

/// The canonical status a bare HTTP code stands for (<https://cloud.google.com/apis/design/errors#handling_errors>).
fn default_code(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
}

fn looks_like_permission(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() >= 3
        && parts.iter().all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The permission a message names: "Permission 'iam.serviceAccounts.list' denied on …" or
/// "The caller does not have permission iam.serviceAccountKeys.disable".
fn permission_in(message: &str) -> Option<String> {
    message
        .split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | ',' | '(' | ')'))
        .map(|word| word.trim_end_matches(['.', ':', ';']))
        .find(|word| looks_like_permission(word) && !word.contains("googleapis"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHOD: Method = Method {
        name: "iam.projects.serviceAccounts.list",
        permission: "iam.serviceAccounts.list",
        reads: true,
    };

    #[test]
    fn the_permission_comes_from_error_info_first() {
        let body = br#"{"error":{"code":403,"message":"Permission denied on resource project acme.","status":"PERMISSION_DENIED",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED",
            "domain":"iam.googleapis.com","metadata":{"permission":"iam.serviceAccountKeys.list"}}]}}"#;
        let error = Failure::parse(403, body, None).into_provider_error(METHOD);
        assert_eq!(error.kind, ProviderErrorKind::Denied);
        assert_eq!(
            error.missing_permission.as_deref(),
            Some("iam.serviceAccountKeys.list")
        );
        assert!(
            error
                .message
                .contains("grant `iam.serviceAccountKeys.list`")
        );
    }

    #[test]
    fn the_permission_comes_from_the_message_then_the_method() {
        let body = br#"{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}"#;
        let error = Failure::parse(403, body, None).into_provider_error(METHOD);
        assert_eq!(
            error.missing_permission.as_deref(),
            Some("iam.serviceAccounts.get")
        );
        let error = Failure::parse(403, b"denied", None).into_provider_error(METHOD);
        assert_eq!(
            error.missing_permission.as_deref(),
            Some("iam.serviceAccounts.list")
        );
    }

    #[test]
    fn a_disabled_api_names_the_api_and_the_project_not_a_permission() {
        // The documented ErrorInfo (google.api.ErrorReason.SERVICE_DISABLED).
        let body = br#"{"error":{"code":403,"message":"Identity and Access Management (IAM) API has not been used in project 123456789012 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/iam.googleapis.com/overview?project=123456789012 then retry.","status":"PERMISSION_DENIED",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com",
            "metadata":{"service":"iam.googleapis.com","consumer":"projects/987"}}]}}"#;
        let error = Failure::parse(403, body, None).into_provider_error(METHOD);
        assert_eq!(error.missing_permission, None);
        assert!(!error.message.contains("grant `"), "{}", error.message);
        assert!(
            error
                .message
                .contains("gcloud services enable iam.googleapis.com --project=987"),
            "{}",
            error.message
        );

        // The message alone says it too: the link names the API, the text the project.
        let body = br#"{"error":{"code":403,"message":"Cloud Resource Manager API has not been used in project acme-ops before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/cloudresourcemanager.googleapis.com/overview?project=acme-ops then retry.","status":"PERMISSION_DENIED"}}"#;
        let error = Failure::parse(403, body, None).into_provider_error(METHOD);
        assert_eq!(error.missing_permission, None);
        assert!(
            error.message.contains(
                "gcloud services enable cloudresourcemanager.googleapis.com --project=acme-ops"
            ),
            "{}",
            error.message
        );

        // Neither names the API: the method's own.
        let body = br#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"denied",
            "details":[{"reason":"SERVICE_DISABLED"}]}}"#;
        let error = Failure::parse(403, body, None).into_provider_error(METHOD);
        assert!(
            error.message.contains("`iam.googleapis.com`"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_message_names_its_operation_once_and_says_what_to_do() {
        // The engine prints `<operation>: <message>`: the message must not repeat it.
        let error = GcpError::Malformed {
            operation: METHOD.name.to_owned(),
            message: "an empty body where a JSON object was due".to_owned(),
        }
        .into_provider_error(METHOD.name);
        assert!(!error.message.contains(METHOD.name), "{}", error.message);
        assert!(
            error.message.contains("run lapse again"),
            "{}",
            error.message
        );
        let error = GcpError::Transport {
            operation: METHOD.name.to_owned(),
            message: "connection reset".to_owned(),
        }
        .into_provider_error(METHOD.name);
        assert!(!error.message.contains(METHOD.name), "{}", error.message);
        let error = GcpError::TimedOut {
            operation: METHOD.name.to_owned(),
            after: std::time::Duration::from_secs(3),
            endpoint: "iam.googleapis.com".to_owned(),
        }
        .into_provider_error(METHOD.name);
        assert_eq!(error.kind, ProviderErrorKind::TimedOut);
        assert!(
            error.message.starts_with("timed out after 3s"),
            "{}",
            error.message
        );
        // A 5xx that outlived its retries says what to do next.
        let error = Failure::parse(500, b"{}", None).into_provider_error(METHOD);
        assert!(
            error.message.contains("run lapse again later"),
            "{}",
            error.message
        );
    }

    #[test]
    fn throttling_and_conflicts_are_told_apart() {
        assert!(Failure::parse(429, b"{}", None).is_retryable(false));
        assert!(Failure::parse(503, b"{}", None).is_retryable(false));
        assert!(!Failure::parse(500, b"{}", None).is_retryable(false));
        assert!(Failure::parse(500, b"{}", None).is_retryable(true));
        assert!(!Failure::parse(400, b"{}", None).is_retryable(true));
        assert!(Failure::parse(409, b"{}", None).is_conflict());
        let not_found = Failure::parse(404, b"{}", None).into_provider_error(METHOD);
        assert_eq!(not_found.kind, ProviderErrorKind::NotFound);
        assert_eq!(not_found.missing_permission, None);
    }
}
