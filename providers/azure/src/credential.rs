//! lapse's own credential chain. `azure_identity` 1.x has no default chain, so the order is
//! written down here: the one for CI (workload identity federation), then a service principal
//! from the environment (secret, then certificate), then a managed identity, then the developer's
//! Azure CLI login. The choice is a pure function of the environment, made once, and named to the
//! user: no silent fall-through from one identity to another.
//!
//! The credentials that call a token endpoint over HTTP do so under lapse's call bounds: the
//! same connect and per-attempt timeouts as Graph and ARM, and azure_core's own retry limited to
//! the bounds' attempts, backoff and operation time ([`client_options`]). That retry is the only
//! one around a token request: lapse's own loop never sends a token request again. The whole
//! fetch (the Azure CLI's too) is bounded once more where it is awaited (`http::Client::token`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret, SecretBytes, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientCertificateCredential, ClientCertificateCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use lapse_sdk::CallBounds;

use crate::AzureError;

/// Opt-in for a managed identity where the platform sets no variable (a virtual machine's
/// instance metadata service).
pub const MANAGED_IDENTITY_OPT_IN: &str = "LAPSE_AZURE_MANAGED_IDENTITY";

/// The credential lapse authenticates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// A credential handed to the provider by its caller.
    Injected,
    /// Workload identity federation: `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID`.
    WorkloadIdentity,
    /// A service principal's client secret: `AZURE_CLIENT_SECRET` with `AZURE_CLIENT_ID`.
    ClientSecret,
    /// A service principal's certificate: `AZURE_CLIENT_CERTIFICATE_PATH` with `AZURE_CLIENT_ID`.
    ClientCertificate,
    /// A managed identity (App Service, Functions, Arc, or a VM when opted in).
    ManagedIdentity,
    /// The Azure CLI's signed-in account (`az login`).
    AzureCli,
}

impl CredentialSource {
    /// The name lapse prints.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Injected => "injected credential",
            CredentialSource::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            CredentialSource::ClientSecret => "client secret (AZURE_CLIENT_SECRET)",
            CredentialSource::ClientCertificate => {
                "client certificate (AZURE_CLIENT_CERTIFICATE_PATH)"
            }
            CredentialSource::ManagedIdentity => "managed identity",
            CredentialSource::AzureCli => "Azure CLI (az login)",
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The variables the chain reads, taken from the process once.
#[must_use]
pub fn process_environment() -> HashMap<String, String> {
    [
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
        MANAGED_IDENTITY_OPT_IN,
    ]
    .into_iter()
    .filter_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .map(|value| (name.to_owned(), value))
    })
    .collect()
}

/// Picks the credential from environment variables, in lapse's fixed order.
#[must_use]
pub fn choose(environment: &HashMap<String, String>) -> CredentialSource {
    let set = |name: &str| environment.get(name).is_some_and(|value| !value.is_empty());
    if set("AZURE_FEDERATED_TOKEN_FILE") && set("AZURE_CLIENT_ID") {
        CredentialSource::WorkloadIdentity
    } else if set("AZURE_CLIENT_SECRET") && set("AZURE_CLIENT_ID") {
        CredentialSource::ClientSecret
    } else if set("AZURE_CLIENT_CERTIFICATE_PATH") && set("AZURE_CLIENT_ID") {
        CredentialSource::ClientCertificate
    } else if set("IDENTITY_ENDPOINT")
        || set("MSI_ENDPOINT")
        || environment
            .get(MANAGED_IDENTITY_OPT_IN)
            .is_some_and(|value| matches!(value.as_str(), "1" | "true" | "yes"))
    {
        CredentialSource::ManagedIdentity
    } else {
        CredentialSource::AzureCli
    }
}

/// The HTTP pipeline options of a credential that fetches tokens over HTTP: lapse's connect and
/// per-attempt timeouts, and azure_core's retry held to the bounds (its default is 8 retries
/// within a minute, on top of whatever a hung connection takes).
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn client_options(bounds: &CallBounds) -> Result<ClientOptions, AzureError> {
    let duration = |value: std::time::Duration| {
        azure_core::time::Duration::try_from(value).unwrap_or(azure_core::time::Duration::MAX)
    };
    Ok(ClientOptions {
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: duration(bounds.first_backoff),
            max_retries: bounds.attempts.saturating_sub(1),
            max_total_elapsed: duration(bounds.operation),
            max_delay: duration(bounds.max_backoff),
        }),
        transport: Some(Transport::new(Arc::new(crate::http::http_client(bounds)?))),
        ..ClientOptions::default()
    })
}

/// Builds the chosen credential for a tenant (`tenant` empty: `AZURE_TENANT_ID`, or the CLI's
/// default), its token requests held to `bounds`.
///
/// # Errors
/// When the variables the source needs are missing or unusable.
pub fn build(
    source: CredentialSource,
    tenant: &str,
    bounds: &CallBounds,
) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let environment = process_environment();
    let variable = |name: &str| environment.get(name).cloned();
    let tenant = if tenant.is_empty() {
        variable("AZURE_TENANT_ID")
    } else {
        Some(tenant.to_owned())
    };
    let failed = |error: azure_core::Error| AzureError::Credential {
        source_name: source.as_str(),
        message: error.to_string(),
    };
    let need_tenant = || {
        tenant.clone().ok_or(AzureError::Credential {
            source_name: source.as_str(),
            message: "no tenant: pass --tenant, set AZURE_TENANT_ID, or name it in the policy's scopes.azure".to_owned(),
        })
    };
    let client_id = variable("AZURE_CLIENT_ID").unwrap_or_default();
    let credential: Arc<dyn TokenCredential> = match source {
        CredentialSource::Injected => {
            return Err(AzureError::Credential {
                source_name: source.as_str(),
                message: "no credential was injected".to_owned(),
            });
        }
        CredentialSource::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options(bounds)?,
                },
                client_id: Some(client_id),
                tenant_id: Some(need_tenant()?),
                token_file_path: variable("AZURE_FEDERATED_TOKEN_FILE").map(Into::into),
            }))
            .map_err(failed)?
        }
        CredentialSource::ClientSecret => ClientSecretCredential::new(
            &need_tenant()?,
            client_id,
            Secret::new(variable("AZURE_CLIENT_SECRET").unwrap_or_default()),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(bounds)?,
            }),
        )
        .map_err(failed)?,
        CredentialSource::ClientCertificate => {
            let path = variable("AZURE_CLIENT_CERTIFICATE_PATH").unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(|error| AzureError::Credential {
                source_name: source.as_str(),
                message: format!(
                    "cannot read the certificate file {path}: {error}; AZURE_CLIENT_CERTIFICATE_PATH must name a PKCS#12 file"
                ),
            })?;
            ClientCertificateCredential::new(
                need_tenant()?,
                client_id,
                SecretBytes::new(bytes),
                Some(ClientCertificateCredentialOptions {
                    client_options: client_options(bounds)?,
                    password: variable("AZURE_CLIENT_CERTIFICATE_PASSWORD").map(Secret::new),
                }),
            )
            .map_err(failed)?
        }
        CredentialSource::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: variable("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                client_options: client_options(bounds)?,
            }))
            .map_err(failed)?
        }
        CredentialSource::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: tenant,
            ..AzureCliCredentialOptions::default()
        }))
        .map_err(failed)?,
    };
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn nothing_set_means_the_developer_cli() {
        assert_eq!(choose(&environment(&[])), CredentialSource::AzureCli);
    }

    #[test]
    fn ci_federation_comes_before_a_secret_in_the_same_environment() {
        let both = environment(&[
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        assert_eq!(choose(&both), CredentialSource::WorkloadIdentity);
    }

    #[test]
    fn a_secret_comes_before_a_certificate_and_a_managed_identity() {
        let env = environment(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pfx"),
            ("IDENTITY_ENDPOINT", "http://169.254.169.254"),
        ]);
        assert_eq!(choose(&env), CredentialSource::ClientSecret);
        let env = environment(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pfx"),
            ("IDENTITY_ENDPOINT", "http://169.254.169.254"),
        ]);
        assert_eq!(choose(&env), CredentialSource::ClientCertificate);
    }

    #[test]
    fn a_secret_without_a_client_id_is_not_a_service_principal() {
        let env = environment(&[("AZURE_CLIENT_SECRET", "s"), ("MSI_ENDPOINT", "http://x")]);
        assert_eq!(choose(&env), CredentialSource::ManagedIdentity);
    }

    #[test]
    fn a_vm_managed_identity_needs_the_opt_in() {
        assert_eq!(
            choose(&environment(&[(MANAGED_IDENTITY_OPT_IN, "1")])),
            CredentialSource::ManagedIdentity
        );
        assert_eq!(
            choose(&environment(&[(MANAGED_IDENTITY_OPT_IN, "0")])),
            CredentialSource::AzureCli
        );
        // A client id alone selects a user-assigned identity only with an endpoint or opt-in.
        assert_eq!(
            choose(&environment(&[("AZURE_CLIENT_ID", "app")])),
            CredentialSource::AzureCli
        );
    }

    #[test]
    fn the_cli_credential_is_built_without_calling_az() {
        let credential = build(
            CredentialSource::AzureCli,
            "contoso.onmicrosoft.com",
            &CallBounds::default(),
        );
        assert!(credential.is_ok(), "{:?}", credential.err());
    }

    #[test]
    fn a_missing_certificate_file_says_which_variable_to_fix() {
        // Built directly: the process environment has no certificate path, so the read fails.
        let error = build(
            CredentialSource::ClientCertificate,
            "t",
            &CallBounds::default(),
        )
        .expect_err("no file");
        assert!(
            error.to_string().contains("AZURE_CLIENT_CERTIFICATE_PATH"),
            "{error}"
        );
    }
}
