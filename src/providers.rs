//! Live snapshots from the providers compiled into this build, each behind its cargo feature.
//! The engine never comes here: commands take a snapshot, then plan over it like over a file.

use lapse_sdk::{Cloud, Snapshot};

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

/// What to scan.
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    /// The clouds to read; empty means those the policy's scopes name.
    pub clouds: Vec<Cloud>,
    /// AWS settings.
    pub aws: AwsOptions,
}

/// The clouds a live run reads: those asked for, else those the policy names scopes in, else
/// AWS when account flags are given.
fn clouds(options: &LiveOptions, scopes: &ScopesDocument) -> Vec<Cloud> {
    if !options.clouds.is_empty() {
        return options.clouds.clone();
    }
    let mut clouds = Vec::new();
    if !scopes.aws.is_empty() || !options.aws.accounts.is_empty() {
        clouds.push(Cloud::Aws);
    }
    if !scopes.azure.is_empty() {
        clouds.push(Cloud::Azure);
    }
    if !scopes.gcp.is_empty() {
        clouds.push(Cloud::Gcp);
    }
    clouds
}

/// Takes a live snapshot of every cloud in scope and merges them.
///
/// # Errors
/// [`Error::NoScopes`] when nothing says what to read, [`Error::ProviderUnavailable`] for a
/// cloud this build cannot read. Failed reads are not errors: they mark their scope incomplete.
// Built without any provider, every cloud is unavailable and the loop never pushes.
#[cfg_attr(
    not(feature = "aws"),
    allow(unreachable_code, unused_mut, unused_variables)
)]
pub async fn snapshot(options: &LiveOptions, scopes: &ScopesDocument) -> Result<Snapshot> {
    let clouds = clouds(options, scopes);
    if clouds.is_empty() {
        return Err(Error::NoScopes);
    }
    let mut snapshots = Vec::new();
    for cloud in clouds {
        let snapshot = match cloud {
            #[cfg(feature = "aws")]
            Cloud::Aws => aws(&options.aws, scopes).await,
            other => return Err(Error::ProviderUnavailable { cloud: other }),
        };
        snapshots.push(snapshot);
    }
    Ok(Snapshot::merge(snapshots))
}

#[cfg(feature = "aws")]
async fn aws(options: &AwsOptions, scopes: &ScopesDocument) -> Snapshot {
    aws_provider(options, scopes)
        .take_snapshot(&lapse_sdk::SnapshotRequest::default())
        .await
}

/// The AWS provider for these flags and scopes: accounts from `--account` when given (with
/// `--assume-role`, where `{account}` is replaced by each account id), else the policy's.
#[cfg(feature = "aws")]
#[must_use]
pub fn aws_provider(
    options: &AwsOptions,
    scopes: &ScopesDocument,
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
    })
}
