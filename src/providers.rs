//! Live providers compiled into this build, each behind its cargo feature, configured from flags
//! and the policy's `scopes`. The engine never comes here: commands take a snapshot
//! ([`Configured::snapshot`]), then plan over it like over a file, and `apply`/`undo` hand
//! actions to [`Configured::providers`].

use lapse_sdk::{Cloud, Snapshot};

use crate::coverage::{self, NamedScope, Unread};
use crate::error::{Error, Result};
use crate::policy::ScopesDocument;

/// How to reach AWS, from flags; the policy's `scopes.aws` fills what flags leave open.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// A named profile.
    pub profile: Option<String>,
    /// Signing region (IAM is global).
    pub region: Option<String>,
    /// An IAM/STS endpoint (a local emulator).
    pub endpoint_url: Option<String>,
    /// Accounts to read, overriding the policy's.
    pub accounts: Vec<String>,
    /// A role to assume in each account given by `accounts`.
    pub assume_role: Option<String>,
    /// External id for `assume_role`.
    pub external_id: Option<String>,
    /// Session name for `assume_role`.
    pub session_name: Option<String>,
    /// List every user's access key ids.
    pub exact: bool,
}

/// How to reach Azure, from flags; the policy's `scopes.azure` fills what flags leave open.
#[derive(Clone, Debug, Default)]
pub struct AzureOptions {
    /// The Entra tenant (`--tenant`, else `AZURE_TENANT_ID`).
    pub tenant: Option<String>,
    /// Subscriptions to read, overriding the policy's; `*` is every one the caller can see.
    pub subscriptions: Vec<String>,
    /// Microsoft Graph base URL.
    pub graph_url: Option<String>,
    /// Azure Resource Manager base URL.
    pub arm_url: Option<String>,
}

/// How to reach Google Cloud, from flags; the policy's `scopes.gcp` fills what flags leave open.
#[derive(Clone, Debug, Default)]
pub struct GcpOptions {
    /// Project ids, overriding the policy's.
    pub projects: Vec<String>,
    /// Folder ids whose IAM policy is read.
    pub folders: Vec<String>,
    /// Organization ids whose IAM policy is read.
    pub organizations: Vec<String>,
    /// IAM API base URL.
    pub iam_url: Option<String>,
    /// Resource Manager API base URL.
    pub resource_manager_url: Option<String>,
    /// Policy Analyzer API base URL.
    pub policy_analyzer_url: Option<String>,
    /// OAuth 2.0 base URL (token info).
    pub oauth2_url: Option<String>,
}

impl GcpOptions {
    fn names_scopes(&self) -> bool {
        !(self.projects.is_empty() && self.folders.is_empty() && self.organizations.is_empty())
    }

    /// Projects, folders and organizations to read: the flags' when any is given, else the
    /// policy's.
    pub(crate) fn containers(
        &self,
        scopes: &ScopesDocument,
    ) -> (Vec<String>, Vec<String>, Vec<String>) {
        if self.names_scopes() {
            return (
                self.projects.clone(),
                self.folders.clone(),
                self.organizations.clone(),
            );
        }
        let pick = |field: fn(&crate::policy::GcpScopeDocument) -> &Option<String>| {
            scopes
                .gcp
                .iter()
                .filter_map(|scope| field(scope).clone())
                .collect()
        };
        (
            pick(|scope| &scope.project),
            pick(|scope| &scope.folder),
            pick(|scope| &scope.organization),
        )
    }
}

/// What to scan.
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    /// The clouds to read; empty means those the policy's scopes or the scope flags name.
    pub clouds: Vec<Cloud>,
    /// AWS settings.
    pub aws: AwsOptions,
    /// Azure settings.
    pub azure: AzureOptions,
    /// Google Cloud settings.
    pub gcp: GcpOptions,
    /// Time and attempt limits of every call, for every provider.
    pub bounds: lapse_sdk::CallBounds,
}

/// The clouds a live run reads: those asked for, else those the policy names scopes in or the
/// scope flags (`--account`, `--subscription`, `--project`...) point at.
///
/// # Errors
/// [`Error::NoScopes`] when nothing says what to read.
pub fn clouds(options: &LiveOptions, scopes: &ScopesDocument) -> Result<Vec<Cloud>> {
    if !options.clouds.is_empty() {
        return Ok(options.clouds.clone());
    }
    let mut clouds = Vec::new();
    if !scopes.aws.is_empty() || !options.aws.accounts.is_empty() {
        clouds.push(Cloud::Aws);
    }
    if !scopes.azure.is_empty() || !options.azure.subscriptions.is_empty() {
        clouds.push(Cloud::Azure);
    }
    if !scopes.gcp.is_empty() || options.gcp.names_scopes() {
        clouds.push(Cloud::Gcp);
    }
    if clouds.is_empty() {
        return Err(Error::NoScopes);
    }
    Ok(clouds)
}

/// Refuses an endpoint given as plain `http://` unless it names this machine: every request
/// to it carries a bearer token or a signature made with lapse's cloud credentials, which an
/// unencrypted connection would hand to anyone on the path. Loopback (127.0.0.0/8, `::1`,
/// `localhost`) is allowed, for local emulators and fakes. `endpoints` are (where it was set,
/// the URL).
///
/// # Errors
/// [`Error::InsecureEndpoint`] for the first endpoint refused.
pub fn refuse_plain_http<'a>(
    endpoints: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    for (setting, url) in endpoints {
        let text = url.trim();
        let Some(scheme_end) = text.find("://") else {
            continue;
        };
        if !text[..scheme_end].eq_ignore_ascii_case("http") {
            continue;
        }
        let rest = &text[scheme_end + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Credentials in the authority (`user:pass@host`) are not part of the host.
        let host_and_port = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(bracketed) = host_and_port.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or_default()
        } else {
            host_and_port.split(':').next().unwrap_or_default()
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        if !loopback {
            return Err(Error::InsecureEndpoint {
                setting: setting.to_owned(),
                url: url.to_owned(),
            });
        }
    }
    Ok(())
}

impl LiveOptions {
    /// Every endpoint these options override, with the flag (or the environment variable clap
    /// reads for it) that set it.
    #[must_use]
    pub fn endpoints(&self) -> Vec<(&'static str, &str)> {
        [
            ("--aws-endpoint-url", self.aws.endpoint_url.as_deref()),
            (
                "--azure-graph-url (or LAPSE_AZURE_GRAPH_URL)",
                self.azure.graph_url.as_deref(),
            ),
            (
                "--azure-arm-url (or LAPSE_AZURE_ARM_URL)",
                self.azure.arm_url.as_deref(),
            ),
            (
                "--gcp-iam-url (or LAPSE_GCP_IAM_URL)",
                self.gcp.iam_url.as_deref(),
            ),
            (
                "--gcp-resource-manager-url (or LAPSE_GCP_RESOURCE_MANAGER_URL)",
                self.gcp.resource_manager_url.as_deref(),
            ),
            (
                "--gcp-policy-analyzer-url (or LAPSE_GCP_POLICY_ANALYZER_URL)",
                self.gcp.policy_analyzer_url.as_deref(),
            ),
            (
                "--gcp-oauth2-url (or LAPSE_GCP_OAUTH2_URL)",
                self.gcp.oauth2_url.as_deref(),
            ),
        ]
        .into_iter()
        .filter_map(|(setting, url)| Some((setting, url?)))
        .collect()
    }
}

/// Every provider this build has, configured for one run.
#[derive(Debug)]
pub struct Configured {
    /// The scopes flags and policy name explicitly: each must come back from a snapshot,
    /// complete or not.
    named: Vec<NamedScope>,
    #[cfg(feature = "aws")]
    aws: lapse_provider_aws::AwsProvider,
    #[cfg(feature = "azure")]
    azure: lapse_provider_azure::AzureProvider,
    #[cfg(feature = "gcp")]
    gcp: lapse_provider_gcp::GcpProvider,
}

impl Configured {
    /// Builds each compiled-in provider from flags and scopes. No call is made yet.
    #[must_use]
    #[cfg_attr(
        not(all(feature = "aws", feature = "azure", feature = "gcp")),
        allow(unused_variables)
    )]
    pub fn new(options: &LiveOptions, scopes: &ScopesDocument) -> Self {
        Configured {
            named: coverage::named_scopes(options, scopes),
            #[cfg(feature = "aws")]
            aws: aws_provider(&options.aws, scopes, options.bounds),
            #[cfg(feature = "azure")]
            azure: azure_provider(&options.azure, scopes, options.bounds),
            #[cfg(feature = "gcp")]
            gcp: gcp_provider(&options.gcp, scopes, options.bounds),
        }
    }

    /// The provider for a cloud, when this build has it.
    #[must_use]
    pub fn get(&self, cloud: Cloud) -> Option<&dyn lapse_sdk::Provider> {
        match cloud {
            #[cfg(feature = "aws")]
            Cloud::Aws => Some(&self.aws),
            #[cfg(feature = "azure")]
            Cloud::Azure => Some(&self.azure),
            #[cfg(feature = "gcp")]
            Cloud::Gcp => Some(&self.gcp),
            #[allow(unreachable_patterns)] // reached only in builds without some provider
            _ => None,
        }
    }

    /// Takes a live snapshot of each cloud and merges them.
    ///
    /// # Errors
    /// [`Error::ProviderUnavailable`] for a cloud this build cannot read. Failed reads are not
    /// errors: they mark their scope incomplete.
    pub async fn snapshot(&self, clouds: &[Cloud]) -> Result<Snapshot> {
        let request = lapse_sdk::SnapshotRequest::default();
        let mut snapshots = Vec::new();
        for &cloud in clouds {
            let Some(provider) = self.get(cloud) else {
                return Err(Error::ProviderUnavailable { cloud });
            };
            snapshots.push(provider.snapshot(&request).await.snapshot);
        }
        let named: Vec<NamedScope> = self
            .named
            .iter()
            .filter(|scope| clouds.contains(&scope.cloud))
            .cloned()
            .collect();
        Ok(coverage::account_for_every_scope(
            Snapshot::merge(snapshots),
            &named,
            Unread::ProviderReturnedNothing,
        ))
    }

    /// Where a cloud's provider takes its credentials from, when it chooses among several
    /// (Azure's chain): shown before a run, so one made under the wrong identity is noticed.
    #[must_use]
    pub fn credential_source(&self, cloud: Cloud) -> Option<String> {
        match cloud {
            #[cfg(feature = "azure")]
            Cloud::Azure => Some(self.azure.credential_source().to_string()),
            _ => None,
        }
    }

    /// All of them, for `apply` and `undo`.
    #[must_use]
    pub fn providers(&self) -> crate::apply::Providers<'_> {
        Cloud::ALL
            .into_iter()
            .filter_map(|cloud| self.get(cloud))
            .fold(crate::apply::Providers::new(), |providers, provider| {
                providers.with(provider)
            })
    }
}

/// The AWS provider for these flags and scopes: accounts from `--account` when given (with
/// `--assume-role`, where `{account}` is replaced by each account id), else the policy's.
#[cfg(feature = "aws")]
#[must_use]
pub fn aws_provider(
    options: &AwsOptions,
    scopes: &ScopesDocument,
    bounds: lapse_sdk::CallBounds,
) -> lapse_provider_aws::AwsProvider {
    use lapse_provider_aws::{AccountScope, AwsProvider, AwsSettings};

    let accounts = if options.accounts.is_empty() {
        scopes
            .aws
            .iter()
            .map(|scope| AccountScope {
                account: scope.account.clone(),
                assume_role: scope.assume_role.clone(),
                external_id: scope.external_id.clone(),
                session_name: scope.session_name.clone(),
            })
            .collect()
    } else {
        options
            .accounts
            .iter()
            .map(|account| AccountScope {
                account: account.clone(),
                assume_role: options
                    .assume_role
                    .as_ref()
                    .map(|role| role.replace("{account}", account)),
                external_id: options.external_id.clone(),
                session_name: options.session_name.clone(),
            })
            .collect()
    };
    let defaults = AwsSettings::default();
    AwsProvider::new(AwsSettings {
        profile: options.profile.clone(),
        region: options.region.clone().unwrap_or(defaults.region),
        endpoint_url: options.endpoint_url.clone(),
        accounts,
        exact: options.exact,
        concurrency: defaults.concurrency,
        credentials: None,
        bounds,
    })
}

/// The Azure provider for these flags and scopes: `--tenant` with `--subscription` when given,
/// else the policy's tenants. A `--tenant` alone narrows the policy's tenants to that one.
#[cfg(feature = "azure")]
#[must_use]
pub fn azure_provider(
    options: &AzureOptions,
    scopes: &ScopesDocument,
    bounds: lapse_sdk::CallBounds,
) -> lapse_provider_azure::AzureProvider {
    use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};

    let from_policy = scopes.azure.iter().map(|scope| TenantScope {
        tenant: scope.tenant.clone(),
        subscriptions: scope.subscriptions.clone(),
    });
    let tenants: Vec<TenantScope> = match (&options.tenant, options.subscriptions.is_empty()) {
        (tenant, false) => vec![TenantScope {
            tenant: tenant
                .clone()
                .or_else(|| scopes.azure.first().map(|scope| scope.tenant.clone()))
                .or_else(|| std::env::var("AZURE_TENANT_ID").ok())
                .unwrap_or_default(),
            subscriptions: options.subscriptions.clone(),
        }],
        (Some(tenant), true) => {
            let named: Vec<TenantScope> = from_policy
                .filter(|scope| &scope.tenant == tenant)
                .collect();
            if named.is_empty() {
                vec![TenantScope {
                    tenant: tenant.clone(),
                    subscriptions: Vec::new(),
                }]
            } else {
                named
            }
        }
        (None, true) => from_policy.collect(),
    };
    let defaults = AzureSettings::default();
    AzureProvider::new(AzureSettings {
        tenants,
        graph_url: options.graph_url.clone().unwrap_or(defaults.graph_url),
        arm_url: options.arm_url.clone().unwrap_or(defaults.arm_url),
        bounds,
        ..AzureSettings::default()
    })
}

/// The Google Cloud provider for these flags and scopes: `--project`, `--folder` and
/// `--organization` when any is given, else the policy's.
#[cfg(feature = "gcp")]
#[must_use]
pub fn gcp_provider(
    options: &GcpOptions,
    scopes: &ScopesDocument,
    bounds: lapse_sdk::CallBounds,
) -> lapse_provider_gcp::GcpProvider {
    use lapse_provider_gcp::{GcpProvider, GcpSettings};

    let (projects, folders, organizations) = options.containers(scopes);
    let defaults = GcpSettings::default();
    GcpProvider::new(GcpSettings {
        projects,
        folders,
        organizations,
        iam_url: options.iam_url.clone().unwrap_or(defaults.iam_url),
        resource_manager_url: options
            .resource_manager_url
            .clone()
            .unwrap_or(defaults.resource_manager_url),
        policy_analyzer_url: options
            .policy_analyzer_url
            .clone()
            .unwrap_or(defaults.policy_analyzer_url),
        oauth2_url: options.oauth2_url.clone().unwrap_or(defaults.oauth2_url),
        bounds,
        ..GcpSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_to_this_machine() {
        for allowed in [
            "https://graph.microsoft.com",
            "https://10.0.0.5:8443/v1",
            "http://127.0.0.1:5000",
            "http://127.8.9.10",
            "HTTP://LOCALHOST:8080/path",
            "http://[::1]:9000/",
            "http://user:secret@127.0.0.1:5000",
        ] {
            assert!(
                refuse_plain_http([("--x", allowed)]).is_ok(),
                "{allowed} is allowed"
            );
        }
        for refused in [
            "http://10.0.0.5:5000",
            "http://iam.googleapis.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]:9000",
            "http://127.0.0.1@evil.example.com/",
            " http://192.0.2.1",
        ] {
            let error = refuse_plain_http([("--gcp-iam-url", refused)])
                .expect_err(refused)
                .to_string();
            assert!(
                error.contains("--gcp-iam-url") && error.contains("loopback"),
                "{error}"
            );
        }
    }
}
