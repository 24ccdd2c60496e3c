//! The Google Cloud provider: service accounts, keys and IAM policies (IAM and Resource Manager).
//!
//! Skeleton: the settings and the provider type that the lapse binary builds; reading and
//! revoking are filled in behind this interface.

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, BoxFuture, Cloud, Provider, ProviderError,
    ProviderErrorKind, Snapshot, SnapshotRequest, SnapshotResponse, TargetState,
};

/// How to reach Google Cloud.
#[derive(Clone, Debug)]
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
    /// Projects read at once.
    pub concurrency: usize,
}

impl Default for GcpSettings {
    fn default() -> Self {
        GcpSettings {
            projects: Vec::new(),
            folders: Vec::new(),
            organizations: Vec::new(),
            iam_url: "https://iam.googleapis.com".to_owned(),
            resource_manager_url: "https://cloudresourcemanager.googleapis.com".to_owned(),
            policy_analyzer_url: "https://policyanalyzer.googleapis.com".to_owned(),
            concurrency: 4,
        }
    }
}

/// The Google Cloud provider.
#[derive(Clone, Debug)]
pub struct GcpProvider {
    settings: GcpSettings,
}

impl GcpProvider {
    /// A provider with these settings. No call is made until a snapshot or an action.
    #[must_use]
    pub fn new(settings: GcpSettings) -> Self {
        GcpProvider { settings }
    }

    /// Reads every requested project, folder and organization.
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
