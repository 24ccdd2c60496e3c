//! The Azure provider: Entra ID (Microsoft Graph) and Azure RBAC (Azure Resource Manager).
//!
//! Skeleton: the settings and the provider type that the lapse binary builds; reading and
//! revoking are filled in behind this interface.

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Provider, ProviderError,
    ProviderErrorKind, Snapshot, SnapshotRequest, SnapshotResponse, TargetState,
};

/// One Entra tenant and the subscriptions to read in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantScope {
    /// Tenant id or primary domain.
    pub tenant: String,
    /// Subscription ids; `"*"` means every subscription the caller can see.
    pub subscriptions: Vec<String>,
}

/// How to reach Azure.
#[derive(Clone, Debug)]
pub struct AzureSettings {
    /// Tenants to read.
    pub tenants: Vec<TenantScope>,
    /// Microsoft Graph base URL.
    pub graph_url: String,
    /// Azure Resource Manager base URL.
    pub arm_url: String,
    /// Subscriptions read at once.
    pub concurrency: usize,
}

impl Default for AzureSettings {
    fn default() -> Self {
        AzureSettings {
            tenants: Vec::new(),
            graph_url: "https://graph.microsoft.com".to_owned(),
            arm_url: "https://management.azure.com".to_owned(),
            concurrency: 4,
        }
    }
}

/// The Azure provider.
#[derive(Clone, Debug)]
pub struct AzureProvider {
    settings: AzureSettings,
}

impl AzureProvider {
    /// A provider with these settings. No call is made until a snapshot or an action.
    #[must_use]
    pub fn new(settings: AzureSettings) -> Self {
        AzureProvider { settings }
    }

    /// Reads every requested tenant and subscription.
    pub async fn take_snapshot(&self, _request: &SnapshotRequest) -> Snapshot {
        let _ = &self.settings;
        Snapshot::merge(Vec::new())
    }
}

fn unsupported(operation: &str) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Unsupported,
        operation: operation.to_owned(),
        message: "not implemented yet".to_owned(),
        missing_permission: None,
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
        _action: &'a Action,
    ) -> BoxFuture<'a, Result<TargetState, ProviderError>> {
        Box::pin(async move { Err(unsupported("read")) })
    }

    fn apply<'a>(
        &'a self,
        _action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move { Err(unsupported("apply")) })
    }

    fn undo<'a>(
        &'a self,
        _action: &'a Action,
        _before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>> {
        Box::pin(async move { Err(unsupported("undo")) })
    }

    fn permissions(&self, _kind: ActionKind) -> &'static [&'static str] {
        &[]
    }
}
