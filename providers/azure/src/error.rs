//! Every Graph and ARM failure is interpreted here, once: what kind of failure it is and which
//! permission was missing.

use lapse_sdk::{ProviderError, ProviderErrorKind, ScopeError};

/// Errors of the Azure provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzureError {
    /// The credential could not be built or could not give a token.
    #[error(
        "cannot authenticate with {source_name}: {message} (lapse picks the credential from the environment: AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, IDENTITY_ENDPOINT/MSI_ENDPOINT, else `az login`)"
    )]
    Credential {
        /// The credential chosen.
        source_name: &'static str,
        /// What it said.
        message: String,
    },
    /// The HTTP client could not be built, or a request could not be sent.
    #[error(
        "{operation}: cannot reach {url}: {message}; check the network and --azure-graph-url / --azure-arm-url"
    )]
    Transport {
        /// The API operation.
        operation: String,
        /// Where it was sent (no query string).
        url: String,
        /// What failed.
        message: String,
    },
    /// The service answered with an error.
    #[error("{operation}: HTTP {status} {code}: {message}{hint}")]
    Service {
        /// The API operation.
        operation: String,
        /// HTTP status.
        status: u16,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
        /// What to do next (starts with a separator, or is empty).
        hint: String,
        /// The permission that would have allowed it.
        missing_permission: Option<String>,
    },
    /// No whole answer came within the call bounds ([`lapse_sdk::CallBounds`]).
    #[error("{operation}: {message}")]
    TimedOut {
        /// The API operation.
        operation: String,
        /// That it timed out, after how long, from where, and what to check.
        message: String,
    },
    /// Not sent: an earlier operation on the same service timed out, and this one would have
    /// waited as long again.
    #[error(
        "{operation}: not sent, because {reason}; lapse gave up on that service for this scope: check that it is reachable, or raise --timeout"
    )]
    NotSent {
        /// The API operation.
        operation: String,
        /// The earlier timeout.
        reason: String,
    },
    /// An answer that came back cut off, empty or garbled where the service documents a JSON
    /// object: what it would have held is unknown.
    #[error(
        "{operation}: the answer from {endpoint} was not whole: {message}; run again, and check any proxy between lapse and {endpoint}"
    )]
    Unreadable {
        /// The API operation.
        operation: String,
        /// Scheme, host and port it came from.
        endpoint: String,
        /// What was wrong with it.
        message: String,
    },
    /// A response that is not the documented shape.
    #[error(
        "{operation}: unexpected response: {message}; this is a lapse bug or an API change, please report it"
    )]
    Malformed {
        /// The API operation.
        operation: String,
        /// What was wrong.
        message: String,
    },
}

impl AzureError {
    /// The HTTP status, for a service error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            AzureError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the call ran out of time, or was not sent because an earlier one had.
    pub(crate) fn timed_out(&self) -> bool {
        matches!(
            self,
            AzureError::TimedOut { .. } | AzureError::NotSent { .. }
        )
    }

    /// The service's error code, for a service error.
    pub(crate) fn code(&self) -> &str {
        match self {
            AzureError::Service { code, .. } => code,
            _ => "",
        }
    }

    fn operation(&self) -> String {
        match self {
            AzureError::Credential { .. } => "authenticate".to_owned(),
            AzureError::Transport { operation, .. }
            | AzureError::Service { operation, .. }
            | AzureError::TimedOut { operation, .. }
            | AzureError::NotSent { operation, .. }
            | AzureError::Unreadable { operation, .. }
            | AzureError::Malformed { operation, .. } => operation.clone(),
        }
    }

    /// The text without its leading operation: a provider or scope error names the operation
    /// in its own field, and printing both said it twice.
    fn message(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix(&format!("{}: ", self.operation())) {
            Some(rest) => rest.to_owned(),
            None => text,
        }
    }

    fn missing_permission(&self) -> Option<String> {
        match self {
            AzureError::Service {
                missing_permission, ..
            } => missing_permission.clone(),
            _ => None,
        }
    }

    /// The failure as the engine sees it.
    #[must_use]
    pub fn into_provider_error(self) -> ProviderError {
        let kind = match (&self, self.status()) {
            (AzureError::TimedOut { .. } | AzureError::NotSent { .. }, _) => {
                ProviderErrorKind::TimedOut
            }
            (AzureError::Credential { .. }, _) | (_, Some(401 | 403)) => ProviderErrorKind::Denied,
            (_, Some(404)) => ProviderErrorKind::NotFound,
            (_, Some(429 | 503)) => ProviderErrorKind::Throttled,
            _ => ProviderErrorKind::Other,
        };
        ProviderError {
            kind,
            operation: self.operation(),
            missing_permission: self.missing_permission(),
            message: self.message(),
        }
    }

    /// The failure as a scope records it.
    #[must_use]
    pub(crate) fn into_scope_error(self) -> ScopeError {
        ScopeError {
            operation: self.operation(),
            missing_permission: self.missing_permission(),
            message: self.message(),
        }
    }
}

/// Builds a service error from a response, naming the missing permission on 403: ARM says it
/// in its message ("does not have authorization to perform action '…'"), Graph does not, so the
/// operation's documented permission is named instead.
pub(crate) fn service_error(
    operation: &str,
    permission: &str,
    status: u16,
    body: &serde_json::Value,
) -> AzureError {
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or("").to_owned();
    let message = error["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let denied = status == 403 || status == 401;
    let missing_permission = denied.then(|| {
        message
            .split("perform action '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .map_or_else(|| permission.to_owned(), str::to_owned)
    });
    let hint = match (status, &missing_permission) {
        (401, _) => {
            "; the token was refused: sign in again (az login) or check the credential's tenant"
                .to_owned()
        }
        (_, Some(permission)) => format!("; grant `{permission}` to the identity lapse runs as"),
        (429 | 503, _) => {
            "; the service kept throttling: run again later or lower the concurrency".to_owned()
        }
        _ => String::new(),
    };
    AzureError::Service {
        operation: operation.to_owned(),
        status,
        code,
        message,
        hint,
        missing_permission,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_names_the_action_it_denied() {
        let body = serde_json::json!({"error": {"code": "AuthorizationFailed", "message": "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/read' over scope '/subscriptions/s' or the scope is invalid."}});
        let error = service_error("arm:roleAssignments/list", "fallback", 403, &body);
        let scope_error = error.into_scope_error();
        assert_eq!(
            scope_error.missing_permission.as_deref(),
            Some("Microsoft.Authorization/roleAssignments/read")
        );
        assert!(
            scope_error
                .message
                .contains("grant `Microsoft.Authorization/roleAssignments/read`")
        );
    }

    #[test]
    fn graph_denials_name_the_documented_permission() {
        let body = serde_json::json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}});
        let error = service_error(
            "graph:servicePrincipals/list",
            "Application.Read.All",
            403,
            &body,
        );
        let provider_error = error.into_provider_error();
        assert_eq!(provider_error.kind, ProviderErrorKind::Denied);
        assert_eq!(
            provider_error.missing_permission.as_deref(),
            Some("Application.Read.All")
        );
    }
}
