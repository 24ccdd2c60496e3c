//! The contract between the engine and a cloud provider.
//!
//! Every call is a request struct in and a response out, as in Terraform's provider interface.
//! A provider builds and owns its own client; the engine never sees an SDK type.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::{Action, ActionKind, ActionOutcome, Cloud, Snapshot, TargetState};

/// A boxed, sendable future: keeps the trait object-safe without an extra dependency.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to scan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// Scope ids as the policy or the command line names them (account ids, subscription ids,
    /// project ids). Empty means "what the credentials can see", where the provider supports it.
    pub scopes: Vec<String>,
}

/// What a scan produced. Failures are inside: each scope says whether it is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The inventory.
    pub snapshot: Snapshot,
}

/// What kind of failure a provider call met; the engine decides retries and exit codes on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The target does not exist.
    NotFound,
    /// The caller lacks a permission.
    Denied,
    /// The cloud asked to slow down and retries ran out.
    Throttled,
    /// The provider cannot do this.
    Unsupported,
    /// No whole answer came within the call's time bound ([`crate::CallBounds`]).
    TimedOut,
    /// Anything else.
    Other,
}

/// A failed provider call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// The API operation.
    pub operation: String,
    /// The cloud's message and code, and what to do about it.
    pub message: String,
    /// The permission that was missing, when the cloud says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
}

/// A cloud provider: reads a snapshot and carries out actions on its own cloud.
pub trait Provider: Send + Sync {
    /// The cloud it serves.
    fn cloud(&self) -> Cloud;

    /// Reads the requested scopes. A scope that cannot be fully read is returned with
    /// `complete: false` and its errors; it is never left out or returned partially as if whole.
    fn snapshot<'a>(&'a self, request: &'a SnapshotRequest) -> BoxFuture<'a, SnapshotResponse>;

    /// Reads an action's target live, for the stale check before it and the verification after.
    fn read_target<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<TargetState, ProviderError>>;

    /// Carries out an action. "Already gone" is [`ActionOutcome::AlreadyDone`], not an error.
    fn apply<'a>(
        &'a self,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>>;

    /// Restores a target to the journaled state taken before a reversible action.
    fn undo<'a>(
        &'a self,
        action: &'a Action,
        before: &'a TargetState,
    ) -> BoxFuture<'a, Result<ActionOutcome, ProviderError>>;

    /// The cloud permissions an action kind needs, for documentation and preflight checks.
    fn permissions(&self, kind: ActionKind) -> &'static [&'static str];

    /// The calls [`Provider::apply`] would make for an action, one line each, as a dry run
    /// shows them: the API operation and its exact arguments. `live` is the target as just
    /// read (it may name what the record does not, such as a key id). Never a secret value.
    fn describe_apply(&self, action: &Action, live: &TargetState) -> Vec<String> {
        let _ = live;
        vec![format!("{} {}", action.kind().as_str(), action.target_id())]
    }

    /// The calls [`Provider::undo`] would make to restore `before`, one line each.
    fn describe_undo(&self, action: &Action, before: &TargetState) -> Vec<String> {
        let _ = before;
        vec![format!(
            "undo {} {}",
            action.kind().as_str(),
            action.target_id()
        )]
    }
}
