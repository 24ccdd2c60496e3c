//! The Azure provider: Entra ID (Microsoft Graph) and Azure RBAC (Azure Resource Manager).
//!
//! Tokens come from `azure_identity` through lapse's own credential chain ([`credential`]);
//! Graph and ARM are called over reqwest with paging, `$select` and one retry and timeout
//! policy from [`lapse_sdk::CallBounds`] that honours the servers' retry headers (`http`). A
//! tenant is one scope (`azure:/tenants/<id>`: service principals, applications and their
//! credentials, directory roles, users and groups that hold something); each subscription is
//! another (`azure:/subscriptions/<id>`: role assignments and PIM instances).
//!
//! Requests per snapshot, without retries: one per page of eight tenant lists (service
//! principals with their app role assignments `$expand`ed, applications with their federated
//! credentials `$expand`ed, directory role definitions, assignments, active and eligible PIM
//! instances, two sign-in reports), one per page of users and of groups that hold something
//! (fifteen ids a request), one per page of the groups lapse's own identity is in
//! (`transitiveMemberOf`, for `caller_identities`), one per page of three lists per
//! subscription (role assignments, active and eligible PIM instances), one per distinct ARM
//! role definition, and the
//! subscription list's pages when every subscription is asked for. They grow with pages, not
//! with the number of applications or principals, with two exceptions that cost a request
//! each: a service principal whose expansion came back with 20 or more assignments (Graph
//! expands at most 20, with no next link, so its own `appRoleAssignments` list is read) or
//! without the expansion, and a resource service principal an assignment names that the list
//! did not hold.
//!
//! App role assignments (application permissions held by service principals) are `app-role`
//! grants named `<resource>/<permission value>` (`Microsoft Graph/User.Read.All`), the value
//! resolved through the resource's `appRoles`, which the list `$select`s; a role that cannot
//! be resolved keeps its app role id. The expansion was chosen over a read per service
//! principal because Graph documents `appRoleAssignments` as supporting `$expand`, which
//! keeps requests per page in tenants with thousands of service principals. Assignments to
//! users and groups are not read.

mod actions;
pub mod credential;
mod error;
#[cfg(feature = "fake")]
#[doc(hidden)]
pub mod fake;
mod http;
mod snapshot;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azure_core::credentials::TokenCredential;
use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Provider, ProviderError, Snapshot,
    SnapshotRequest, SnapshotResponse, TargetState,
};

pub use credential::CredentialSource;
pub use error::AzureError;

/// One Entra tenant and the subscriptions to read in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantScope {
    /// Tenant id or primary domain.
    pub tenant: String,
    /// Subscription ids; `"*"` means every subscription the caller can see.
    pub subscriptions: Vec<String>,
}

/// How to reach Azure.
#[derive(Clone)]
pub struct AzureSettings {
    /// Tenants to read.
    pub tenants: Vec<TenantScope>,
    /// Microsoft Graph base URL.
    pub graph_url: String,
    /// Azure Resource Manager base URL.
    pub arm_url: String,
    /// Subscriptions read at once.
    pub concurrency: usize,
    /// A credential to use instead of lapse's chain (tests inject one); `None` picks one from
    /// the environment (see [`credential::choose`]).
    pub credential: Option<Arc<dyn TokenCredential>>,
    /// Time and attempt limits of every call ([`lapse_sdk::CallBounds`]).
    pub bounds: lapse_sdk::CallBounds,
}

impl fmt::Debug for AzureSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AzureSettings")
            .field("tenants", &self.tenants)
            .field("graph_url", &self.graph_url)
            .field("arm_url", &self.arm_url)
            .field("concurrency", &self.concurrency)
            .field("credential", &self.credential.as_ref().map(|_| "injected"))
            .finish()
    }
}

impl Default for AzureSettings {
    fn default() -> Self {
        AzureSettings {
            bounds: lapse_sdk::CallBounds::default(),
            tenants: Vec::new(),
            graph_url: "https://graph.microsoft.com".to_owned(),
            arm_url: "https://management.azure.com".to_owned(),
            concurrency: 4,
            credential: None,
        }
    }
}

/// The Azure provider. It owns its HTTP client and one credential per tenant.
#[derive(Clone, Debug)]
pub struct AzureProvider {
    settings: Arc<AzureSettings>,
    requests: Arc<AtomicU64>,
    /// Clients per tenant, built once per run so tokens are fetched once per audience.
    clients: Arc<tokio::sync::Mutex<HashMap<String, http::Client>>>,
}

impl AzureProvider {
    /// A provider with these settings. No call is made until a snapshot or an action.
    #[must_use]
    pub fn new(settings: AzureSettings) -> Self {
        AzureProvider {
            settings: Arc::new(settings),
            requests: Arc::new(AtomicU64::new(0)),
            clients: Arc::default(),
        }
    }

    /// Requests this provider has sent to Graph and ARM so far (every attempt, retries
    /// included; token requests are not counted).
    #[must_use]
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Which credential this provider authenticates with: the injected one, or the one lapse's
    /// chain picks from the environment. Say it to the user so a wrong identity is noticed.
    #[must_use]
    pub fn credential_source(&self) -> CredentialSource {
        if self.settings.credential.is_some() {
            CredentialSource::Injected
        } else {
            credential::choose(&credential::process_environment())
        }
    }

    /// Reads every requested tenant and subscription.
    pub async fn take_snapshot(&self, request: &SnapshotRequest) -> Snapshot {
        let tenants = snapshot::requested_tenants(&self.settings.tenants, &request.scopes);
        let mut snapshots = Vec::new();
        for tenant in tenants {
            let client = self.client_for(&tenant.tenant).await;
            snapshots.push(snapshot::scan_tenant(&self.settings, client, &tenant).await);
        }
        Snapshot::merge(snapshots)
    }

    /// The client for a tenant (the one of the only configured tenant when `tenant` is empty).
    async fn client_for(&self, tenant: &str) -> Result<http::Client, ProviderError> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(tenant) {
            return Ok(client.clone());
        }
        let source = self.credential_source();
        let credential = match &self.settings.credential {
            Some(credential) => Arc::clone(credential),
            None => credential::build(source, tenant, &self.settings.bounds)
                .map_err(AzureError::into_provider_error)?,
        };
        let client = http::Client::new(
            &self.settings,
            credential,
            source,
            Arc::clone(&self.requests),
        )
        .map_err(|error| error.into_provider_error())?;
        clients.insert(tenant.to_owned(), client.clone());
        Ok(client)
    }

    /// The client for the tenant an action's scope belongs to.
    async fn client_for_action(&self, action: &Action) -> Result<http::Client, ProviderError> {
        let tenant = actions::tenant_of(&self.settings.tenants, action.scope().as_str());
        self.client_for(&tenant).await
    }
}

impl Provider for AzureProvider {
    fn cloud(&self) -> Cloud {
        Cloud::Azure
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
            let client = self.client_for_action(action).await?;
            actions::read_target(&client, action).await
        })
    }

    fn apply<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let client = self.client_for_action(action).await?;
            actions::apply(&client, action).await
        })
    }

    fn undo<'a>(
        &'a self,
        action: &'a Action,
        before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move {
            let client = self.client_for_action(action).await?;
            actions::undo(&client, action, before).await
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
