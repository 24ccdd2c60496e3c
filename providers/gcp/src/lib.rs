//! The Google Cloud provider: service accounts, their keys, and IAM policies with conditions,
//! over the IAM, Resource Manager and Policy Analyzer REST APIs.
//!
//! Credentials come from google-cloud-auth (application default credentials: a service-account
//! key, `gcloud auth application-default login`, impersonation, workload identity federation,
//! or the metadata server); requests go out with reqwest. The generated googleapis crates are
//! not used: they add minutes of build, and the read-modify-write of a policy needs its own
//! loop over etags and 409 `ABORTED` anyway.
//!
//! Each scope's `caller` is the IAM member lapse runs as, read from the credentials file, token
//! info or the metadata server by credential type (see `caller.rs`); left empty, never guessed,
//! when none of them says.
//!
//! Grants are read from the IAM policy of each project, folder and organization, and from each
//! service account's own policy (who may impersonate it: `roles/iam.serviceAccountTokenCreator`,
//! `roles/iam.serviceAccountUser`, …), whose grants have the account as their resource. A
//! `roles/iam.workloadIdentityUser` grant on an account to a workload identity pool
//! (`principal://`, `principalSet://`, or GKE's `<project>.svc.id.goog[…]` member) marks the
//! account `federation_available`.
//!
//! Requests per project: ⌈accounts/100⌉ account pages + one key list and one `getIamPolicy` per
//! account + the project's `getIamPolicy` + two Policy Analyzer queries, so
//! ⌈accounts/100⌉ + 2 × accounts + 3 (more when Policy Analyzer answers span pages); one per
//! folder or organization.
//!
//! Ids follow the demo estate: scope `gcp:projects/<id>`; principal = the IAM member string;
//! credential = the key's resource name; grant = `<resource>|<role>|<member>[|<condition title>]`,
//! where the resource is `projects/<id>`, `folders/<id>`, `organizations/<id>` or
//! `projects/<id>/serviceAccounts/<email>`.
//! When a conditional binding's title is empty, or another binding of the same role has the same
//! title with another expression, `#<first 8 hex digits of SHA-256(expression)>` follows the
//! title, so ids stay unique (and change if such a collision appears later).

mod actions;
mod caller;
mod client;
mod error;
#[cfg(feature = "fake")]
#[doc(hidden)]
pub mod fake;
mod policy;
mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Provider, ProviderError, ScopeError,
    ScopeKind, ScopeStatus, Snapshot, SnapshotRequest, SnapshotResponse, TargetState, Timestamp,
};
use tokio::sync::Semaphore;

pub use error::GcpError;
pub use google_cloud_auth::credentials::Credentials;

use snapshot::Container;

/// How to reach Google Cloud.
#[derive(Clone)]
pub struct GcpSettings {
    /// Project ids (explicit ids only: the `-` wildcard turns "not found" into "denied").
    pub projects: Vec<String>,
    /// Folder ids whose own IAM policy is read.
    pub folders: Vec<String>,
    /// Organization ids whose own IAM policy is read.
    pub organizations: Vec<String>,
    /// IAM API base URL.
    pub iam_url: String,
    /// Resource Manager API base URL.
    pub resource_manager_url: String,
    /// Policy Analyzer API base URL (last authentication of keys and service accounts).
    pub policy_analyzer_url: String,
    /// OAuth 2.0 base URL whose `tokeninfo` names the caller of user credentials and of
    /// federation without impersonation.
    pub oauth2_url: String,
    /// Projects read at once.
    pub concurrency: usize,
    /// Credentials to use instead of application default credentials (tests inject them).
    pub credentials: Option<Credentials>,
    /// Full read-modify-write cycles of an IAM policy tried when another writer keeps
    /// changing it (409 `ABORTED`).
    pub policy_write_attempts: u32,
    /// Time and attempt limits of every call ([`lapse_sdk::CallBounds`]): connect and attempt
    /// timeouts, attempts per call and the waits between them, and the deadline of one
    /// operation, after which its scope ends incomplete.
    pub bounds: lapse_sdk::CallBounds,
}

impl std::fmt::Debug for GcpSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GcpSettings")
            .field("projects", &self.projects)
            .field("folders", &self.folders)
            .field("organizations", &self.organizations)
            .field("iam_url", &self.iam_url)
            .field("resource_manager_url", &self.resource_manager_url)
            .field("policy_analyzer_url", &self.policy_analyzer_url)
            .field("oauth2_url", &self.oauth2_url)
            .field("concurrency", &self.concurrency)
            // Never the credentials themselves: they may hold a cached token.
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<injected>"),
            )
            .field("bounds", &self.bounds)
            .field("policy_write_attempts", &self.policy_write_attempts)
            .finish()
    }
}

impl Default for GcpSettings {
    fn default() -> Self {
        GcpSettings {
            bounds: lapse_sdk::CallBounds::default(),
            projects: Vec::new(),
            folders: Vec::new(),
            organizations: Vec::new(),
            iam_url: "https://iam.googleapis.com".to_owned(),
            resource_manager_url: "https://cloudresourcemanager.googleapis.com".to_owned(),
            policy_analyzer_url: "https://policyanalyzer.googleapis.com".to_owned(),
            oauth2_url: "https://oauth2.googleapis.com".to_owned(),
            concurrency: 4,
            credentials: None,
            policy_write_attempts: 5,
        }
    }
}

/// The Google Cloud provider.
#[derive(Clone, Debug)]
pub struct GcpProvider {
    settings: Arc<GcpSettings>,
    client: client::Client,
    requests: Arc<AtomicU64>,
    /// One lock per IAM policy: this process's own edits of one policy take turns, so they do
    /// not spend each other's read-modify-write attempts on 409s (other writers still can).
    policy_locks:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl GcpProvider {
    /// A provider with these settings. No call is made, and application default credentials
    /// are not looked up, until a snapshot or an action.
    #[must_use]
    pub fn new(settings: GcpSettings) -> Self {
        let requests = Arc::new(AtomicU64::new(0));
        let client = client::Client::new(&settings, Arc::clone(&requests));
        GcpProvider {
            settings: Arc::new(settings),
            client,
            requests,
            policy_locks: Arc::default(),
        }
    }

    /// Held while an action edits an IAM policy; `None` for other actions.
    async fn policy_turn(&self, action: &Action) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let Action::RevokeGrant { grant } = action else {
            return None;
        };
        let lock = {
            let mut locks = self
                .policy_locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(grant.resource.clone()).or_default())
        };
        Some(lock.lock_owned().await)
    }

    /// Requests this provider has sent so far (every attempt, retries included).
    #[must_use]
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The containers a request names: its scopes when given (`acme-prod`,
    /// `gcp:projects/acme-prod`, `folders/123`), else the settings'.
    fn containers(&self, request: &SnapshotRequest) -> Vec<(Container, String)> {
        if request.scopes.is_empty() {
            let settings = &self.settings;
            return settings
                .projects
                .iter()
                .map(|id| (Container::Project, id.clone()))
                .chain(
                    settings
                        .folders
                        .iter()
                        .map(|id| (Container::Folder, id.clone())),
                )
                .chain(
                    settings
                        .organizations
                        .iter()
                        .map(|id| (Container::Organization, id.clone())),
                )
                .collect();
        }
        request
            .scopes
            .iter()
            .map(|scope| {
                let name = scope.strip_prefix("gcp:").unwrap_or(scope);
                match name.split_once('/') {
                    Some(("folders", id)) => (Container::Folder, id.to_owned()),
                    Some(("organizations", id)) => (Container::Organization, id.to_owned()),
                    Some(("projects", id)) => (Container::Project, id.to_owned()),
                    _ => (Container::Project, name.to_owned()),
                }
            })
            .collect()
    }

    /// Reads every requested project, folder and organization, at most `concurrency` at once.
    pub async fn take_snapshot(&self, request: &SnapshotRequest) -> Snapshot {
        let mut containers = self.containers(request);
        containers.sort();
        containers.dedup();
        let limit = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut pending = HashMap::new();
        for (index, (container, id)) in containers.into_iter().enumerate() {
            let settings = Arc::clone(&self.settings);
            // Its own halt: a call of this container that times out ends this container's
            // read, not the others'.
            let client = self.client.for_scope();
            let limit = Arc::clone(&limit);
            let name = id.clone();
            let task = tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                if Container::of(&format!("{}/{id}", container.collection())).is_none() {
                    return refused(container, &id);
                }
                snapshot::scan(&client, &settings, container, &id).await
            });
            pending.insert(task.id(), (index, container, name));
        }
        combine(collect(tasks, pending).await)
    }
}

/// What one container's read gives: its snapshot, and which principals came from an account
/// list (see [`combine`]).
type Reading = (Snapshot, Vec<(String, bool)>);

/// The readings of every task, in the order the containers were spawned. A task that panicked
/// or was cancelled still gives its container a scope, incomplete and saying so: a scope that
/// vanished would read as "nothing there".
async fn collect(
    mut tasks: tokio::task::JoinSet<Reading>,
    mut pending: HashMap<tokio::task::Id, (usize, Container, String)>,
) -> Vec<Reading> {
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((task, reading)) => {
                let index = pending
                    .remove(&task)
                    .map_or(usize::MAX, |(index, ..)| index);
                results.push((index, reading));
            }
            Err(error) => {
                let Some((index, container, id)) = pending.remove(&error.id()) else {
                    continue;
                };
                let why = if error.is_cancelled() {
                    "was cancelled before it finished".to_owned()
                } else {
                    let payload = error.into_panic();
                    let text = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    format!("stopped on an internal error (a bug in lapse: {text})")
                };
                let message = format!(
                    "reading this scope {why}; what it holds is unknown: run lapse again, and report it if it repeats"
                );
                results.push((index, unread(container, &id, "snapshot", message)));
            }
        }
    }
    // A task the set never returned (not expected) is reported as unread all the same.
    for (_, (index, container, id)) in pending {
        let message = "reading this scope never finished; what it holds is unknown".to_owned();
        results.push((index, unread(container, &id, "snapshot", message)));
    }
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, reading)| reading).collect()
}

/// A scope lapse will not read: a wildcard or malformed id.
fn refused(container: Container, id: &str) -> Reading {
    let message = format!(
        "`{id}` is not an explicit {} id: name each one (the `-` wildcard turns a missing object into a denial)",
        container.collection().trim_end_matches('s')
    );
    unread(container, id, "scope", message)
}

/// A scope with nothing read, incomplete, with `message` as its one error.
fn unread(container: Container, id: &str, operation: &str, message: String) -> Reading {
    let now = Timestamp::from_offset(time::OffsetDateTime::now_utc());
    let mut snapshot = Snapshot::empty(now);
    snapshot.scopes.push(ScopeStatus {
        caller_identities: Vec::new(),
        id: format!("gcp:{}/{id}", container.collection()).into(),
        cloud: Cloud::Gcp,
        kind: match container {
            Container::Project => ScopeKind::Project,
            Container::Folder => ScopeKind::Folder,
            Container::Organization => ScopeKind::Organization,
        },
        taken_at: now,
        complete: false,
        caller: None,
        errors: vec![ScopeError {
            operation: operation.to_owned(),
            message,
            missing_permission: None,
        }],
    });
    (snapshot, Vec::new())
}

/// One snapshot of every container. A principal seen as a member of several policies keeps
/// the record read from its own project's account list when there is one.
fn combine(readings: Vec<Reading>) -> Snapshot {
    let mut principals: std::collections::BTreeMap<String, (lapse_sdk::Principal, bool)> =
        std::collections::BTreeMap::new();
    let taken_at = readings
        .iter()
        .map(|(snapshot, _)| snapshot.taken_at)
        .min()
        .unwrap_or_else(|| Timestamp::from_offset(time::OffsetDateTime::now_utc()));
    let mut combined = Snapshot::empty(taken_at);
    for (snapshot, fullness) in readings {
        let fullness: HashMap<String, bool> = fullness.into_iter().collect();
        for principal in snapshot.principals {
            let full = fullness
                .get(principal.id.as_str())
                .copied()
                .unwrap_or(false);
            match principals.get(principal.id.as_str()) {
                Some((_, true)) => {}
                Some((_, false)) if !full => {}
                _ => {
                    principals.insert(principal.id.0.clone(), (principal, full));
                }
            }
        }
        combined.scopes.extend(snapshot.scopes);
        combined.credentials.extend(snapshot.credentials);
        combined.grants.extend(snapshot.grants);
    }
    combined.principals = principals
        .into_values()
        .map(|(principal, _)| principal)
        .collect();
    combined.credentials.sort_by(|a, b| a.id.cmp(&b.id));
    combined.grants.sort_by(|a, b| a.id.cmp(&b.id));
    combined.scopes.sort_by(|a, b| a.id.cmp(&b.id));
    combined
}

impl Provider for GcpProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Gcp
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
        Box::pin(async move { actions::read_target(&self.client, &self.settings, action).await })
    }

    fn apply<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let _turn = self.policy_turn(action).await;
            actions::apply(&self.client, &self.settings, action).await
        })
    }

    fn undo<'a>(
        &'a self,
        action: &'a Action,
        before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let _turn = self.policy_turn(action).await;
            actions::undo(&self.client, &self.settings, action, before).await
        })
    }

    fn permissions(&self, kind: ActionKind) -> &'static [&'static str] {
        actions::permissions(kind)
    }

    fn describe_apply(&self, action: &Action, live: &TargetState) -> Vec<String> {
        actions::describe_apply(&self.settings, action, live)
    }

    fn describe_undo(&self, action: &Action, before: &TargetState) -> Vec<String> {
        actions::describe_undo(&self.settings, action, before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(container: Container, id: &str) -> Reading {
        let now = Timestamp::from_offset(time::OffsetDateTime::now_utc());
        let mut snapshot = Snapshot::empty(now);
        snapshot.scopes.push(ScopeStatus {
            caller_identities: Vec::new(),
            id: format!("gcp:{}/{id}", container.collection()).into(),
            cloud: Cloud::Gcp,
            kind: ScopeKind::Project,
            taken_at: now,
            complete: true,
            caller: None,
            errors: Vec::new(),
        });
        (snapshot, Vec::new())
    }

    fn explode() -> Reading {
        panic!("unexpected shape");
    }

    /// No honest answer from the fake makes the provider panic, so the collection is fed
    /// tasks that do.
    #[tokio::test]
    async fn a_task_that_panics_or_is_cancelled_leaves_an_incomplete_scope() {
        let mut tasks = tokio::task::JoinSet::new();
        let mut pending = HashMap::new();
        let fine = tasks.spawn(async { read(Container::Project, "acme-prod") });
        pending.insert(fine.id(), (0, Container::Project, "acme-prod".to_owned()));
        let panics = tasks.spawn(async { explode() });
        pending.insert(panics.id(), (1, Container::Project, "acme-dev".to_owned()));
        let stuck = tasks.spawn(std::future::pending::<Reading>());
        pending.insert(stuck.id(), (2, Container::Folder, "123".to_owned()));
        stuck.abort();

        let combined = combine(collect(tasks, pending).await);
        let scopes: Vec<(&str, bool)> = combined
            .scopes
            .iter()
            .map(|scope| (scope.id.as_str(), scope.complete))
            .collect();
        assert_eq!(
            scopes,
            vec![
                ("gcp:folders/123", false),
                ("gcp:projects/acme-dev", false),
                ("gcp:projects/acme-prod", true),
            ]
        );
        let error = |id: &str| {
            let scope = combined
                .scopes
                .iter()
                .find(|scope| scope.id.as_str() == id)
                .expect("scope");
            scope.errors[0].message.clone()
        };
        assert!(error("gcp:projects/acme-dev").contains("unexpected shape"));
        assert!(error("gcp:folders/123").contains("cancelled"));
    }
}
