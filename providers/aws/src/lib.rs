//! The AWS provider: reads IAM users, roles, groups, keys and policies per account with bulk
//! calls, and carries out revocations one exact target at a time.
//!
//! IAM is global: one pass per account, never per region. The bulk reads are
//! `GetAccountAuthorizationDetails` (principals, groups, policies, tags, role last use) and the
//! credential report (passwords and keys with their last use), so requests grow with pages, not
//! with users. Per-user calls are made only where the report cannot answer: users absent from it,
//! and `exact` mode, which lists every user's access key ids.

mod actions;
mod clients;
mod documents;
mod error;
mod report;
mod snapshot;
mod whole;
// Always built (it is small and has no dependencies) so that tests of this crate and of the
// lapse binary share one moto launcher.
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Provider, ProviderError,
    ProviderErrorKind, Snapshot, SnapshotRequest, SnapshotResponse, TargetState,
};
use tokio::sync::Semaphore;

pub use error::AwsError;

/// One account to read, as the policy's `scopes.aws` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountScope {
    /// The 12-digit account id.
    pub account: String,
    /// Role to assume in the account.
    pub assume_role: Option<String>,
    /// External id the role requires.
    pub external_id: Option<String>,
    /// Session name for the assumed role.
    pub session_name: Option<String>,
}

/// How to reach AWS.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// A named profile instead of the default credential chain's choice.
    pub profile: Option<String>,
    /// Region for STS and request signing; IAM itself is global.
    pub region: String,
    /// An endpoint for IAM and STS (a local emulator in tests). `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// Accounts to read; empty means the caller's own account.
    pub accounts: Vec<AccountScope>,
    /// List every user's access keys for their exact ids (one call per user) instead of taking
    /// them from the credential report.
    pub exact: bool,
    /// Accounts read at once.
    pub concurrency: usize,
    /// Fixed credentials instead of the default chain: for emulators and tests. (Its `Debug`
    /// redacts the secret.)
    pub credentials: Option<aws_credential_types::Credentials>,
    /// Time and attempt limits of every call ([`lapse_sdk::CallBounds`]).
    pub bounds: lapse_sdk::CallBounds,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            profile: None,
            region: "us-east-1".to_owned(),
            endpoint_url: None,
            accounts: Vec::new(),
            exact: false,
            concurrency: 4,
            credentials: None,
            bounds: lapse_sdk::CallBounds::default(),
        }
    }
}

/// The AWS provider. It builds and owns its SDK clients, one set per account.
#[derive(Clone, Debug)]
pub struct AwsProvider {
    settings: Arc<AwsSettings>,
    requests: Arc<AtomicU64>,
    /// Clients per account whose identity was checked, reused by every action on it: one
    /// credential resolution (and `AssumeRole`) and one `GetCallerIdentity` per account and
    /// run, not per read.
    #[allow(clippy::type_complexity)]
    checked: Arc<
        tokio::sync::Mutex<
            std::collections::HashMap<String, (clients::Clients, clients::Identity)>,
        >,
    >,
}

impl AwsProvider {
    /// A provider with these settings. No call is made until a snapshot or an action.
    #[must_use]
    pub fn new(settings: AwsSettings) -> Self {
        AwsProvider {
            settings: Arc::new(settings),
            requests: Arc::new(AtomicU64::new(0)),
            checked: Arc::default(),
        }
    }

    /// Requests this provider has sent so far (every attempt, retries included).
    #[must_use]
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Reads every requested account concurrently (bounded) and merges the results.
    pub async fn take_snapshot(&self, request: &SnapshotRequest) -> Snapshot {
        let mut accounts: Vec<AccountScope> = if request.scopes.is_empty() {
            self.settings.accounts.clone()
        } else {
            request
                .scopes
                .iter()
                .map(|id| {
                    let account = id.trim_start_matches("aws:");
                    self.settings
                        .accounts
                        .iter()
                        .find(|scope| scope.account == account)
                        .cloned()
                        .unwrap_or_else(|| AccountScope {
                            account: account.to_owned(),
                            ..AccountScope::default()
                        })
                })
                .collect()
        };
        if accounts.is_empty() {
            // The caller's own account, whichever it is.
            accounts.push(AccountScope::default());
        }
        let limit = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut started = Vec::new();
        for account in accounts {
            let settings = Arc::clone(&self.settings);
            let limit = Arc::clone(&limit);
            let requests = Arc::clone(&self.requests);
            let name = account.account.clone();
            let handle = tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                snapshot::scan_account(&settings, &account, &requests).await
            });
            started.push((handle.id(), name));
        }
        Snapshot::merge(collect(tasks, &started).await)
    }
}

/// Waits for every account's scan and returns them in the order they were started. A scan that
/// panicked or was cancelled still shows, as an incomplete scope: an account never vanishes
/// from a snapshot.
async fn collect(
    mut tasks: tokio::task::JoinSet<Snapshot>,
    started: &[(tokio::task::Id, String)],
) -> Vec<Snapshot> {
    let mut results: Vec<Option<Snapshot>> = vec![None; started.len()];
    while let Some(joined) = tasks.join_next_with_id().await {
        let (id, snapshot) = match joined {
            Ok((id, snapshot)) => (id, Some(snapshot)),
            Err(error) => (error.id(), None),
        };
        if let Some(index) = started.iter().position(|(started, _)| *started == id) {
            results[index] = snapshot;
        }
    }
    results
        .into_iter()
        .zip(started)
        .map(|(snapshot, (_, account))| {
            snapshot.unwrap_or_else(|| {
                snapshot::failed_scan(
                    account,
                    "the scan of this account stopped before it finished (an internal error in lapse: please report it); nothing from it is in this snapshot",
                )
            })
        })
        .collect()
}

impl Provider for AwsProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Aws
    }

    fn snapshot<'a>(&'a self, request: &'a SnapshotRequest) -> BoxFuture<'a, SnapshotResponse> {
        Box::pin(async move {
            SnapshotResponse {
                snapshot: self.take_snapshot(request).await,
            }
        })
    }

    fn read_target<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<TargetState, ProviderError>> {
        Box::pin(async move {
            let (clients, identity) = self.clients_for(action).await?;
            actions::read_target(&clients, identity.acting(), action).await
        })
    }

    fn apply<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let (clients, identity) = self.clients_for(action).await?;
            actions::apply(&clients, identity.acting(), action).await
        })
    }

    fn undo<'a>(
        &'a self,
        action: &'a Action,
        before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let (clients, identity) = self.clients_for(action).await?;
            actions::undo(&clients, identity.acting(), action, before).await
        })
    }

    fn permissions(&self, kind: ActionKind) -> &'static [&'static str] {
        actions::permissions(kind)
    }

    fn describe_apply(&self, action: &Action, live: &TargetState) -> Vec<String> {
        actions::describe_apply(action, live)
    }

    fn describe_undo(&self, action: &Action, before: &TargetState) -> Vec<String> {
        actions::describe_undo(action, before)
    }
}

impl AwsProvider {
    /// Clients for the account an action targets, assuming its role when the policy names one.
    async fn clients_for(
        &self,
        action: &Action,
    ) -> Result<(clients::Clients, clients::Identity), ProviderError> {
        let account = action.scope().as_str().trim_start_matches("aws:");
        // Held while checking, so concurrent actions on one account check it once.
        let mut checked = self.checked.lock().await;
        if let Some(checked) = checked.get(account) {
            return Ok(checked.clone());
        }
        let scope = self
            .settings
            .accounts
            .iter()
            .find(|scope| scope.account == account)
            .cloned()
            .unwrap_or_else(|| AccountScope {
                account: account.to_owned(),
                ..AccountScope::default()
            });
        let clients = clients::Clients::for_account(&self.settings, &scope, &self.requests).await;
        let identity = clients.caller().await?;
        if identity.account != account {
            return Err(ProviderError {
                kind: ProviderErrorKind::Denied,
                operation: "sts:GetCallerIdentity".to_owned(),
                message: AwsError::WrongAccount {
                    expected: account.to_owned(),
                    actual: identity.account,
                }
                .to_string(),
                missing_permission: None,
            });
        }
        checked.insert(account.to_owned(), (clients.clone(), identity.clone()));
        Ok((clients, identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_whose_scan_panicked_is_an_incomplete_scope_not_a_missing_one() {
        let mut tasks = tokio::task::JoinSet::new();
        let good = tasks.spawn(async { snapshot::failed_scan("111122223333", "stand-in") });
        let bad = tasks.spawn(async {
            if true {
                panic!("a bug while reading 444455556666");
            }
            snapshot::failed_scan("444455556666", "never reached")
        });
        let started = [
            (good.id(), "111122223333".to_owned()),
            (bad.id(), "444455556666".to_owned()),
        ];
        let merged = Snapshot::merge(collect(tasks, &started).await);
        let scope = merged
            .scopes
            .iter()
            .find(|scope| scope.id.as_str() == "aws:444455556666")
            .expect("the account whose scan panicked is still in the snapshot");
        assert!(!scope.complete);
        assert!(
            scope.errors[0]
                .message
                .contains("stopped before it finished")
        );
        assert_eq!(merged.scopes.len(), 2);
    }
}
