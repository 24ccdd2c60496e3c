//! Actions a plan asks a provider to carry out, and what came of them.

use serde::{Deserialize, Serialize};

use crate::{Cloud, Credential, CredentialStatus, Grant, Principal, ScopeId, Usage};

/// What an action does, without its target: the unit that declares permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Remove a grant (detach a policy, delete a role assignment, remove a binding member).
    RevokeGrant,
    /// Deactivate or disable a credential; reversible.
    DeactivateCredential,
    /// Delete a credential; irreversible, planned only after a grace period of inactivity.
    DeleteCredential,
    /// Disable a principal (Entra `accountEnabled=false`, Google service-account disable);
    /// reversible.
    DisablePrincipal,
}

impl ActionKind {
    /// The kebab-case name used in plans and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RevokeGrant => "revoke-grant",
            ActionKind::DeactivateCredential => "deactivate-credential",
            ActionKind::DeleteCredential => "delete-credential",
            ActionKind::DisablePrincipal => "disable-principal",
        }
    }

    /// True when the provider can put things back as they were.
    #[must_use]
    pub fn is_reversible(self) -> bool {
        !matches!(self, ActionKind::DeleteCredential)
    }
}

/// One change to make, carrying the full record it was planned from, so that a provider can
/// check the live target still matches and journal what it replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Remove a grant.
    RevokeGrant {
        /// The grant as planned.
        grant: Grant,
    },
    /// Deactivate a credential.
    DeactivateCredential {
        /// The credential as planned.
        credential: Credential,
    },
    /// Delete a credential.
    DeleteCredential {
        /// The credential as planned.
        credential: Credential,
    },
    /// Disable a principal.
    DisablePrincipal {
        /// The principal as planned.
        principal: Principal,
    },
}

impl Action {
    /// The kind of the action.
    #[must_use]
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::RevokeGrant { .. } => ActionKind::RevokeGrant,
            Action::DeactivateCredential { .. } => ActionKind::DeactivateCredential,
            Action::DeleteCredential { .. } => ActionKind::DeleteCredential,
            Action::DisablePrincipal { .. } => ActionKind::DisablePrincipal,
        }
    }

    /// The cloud that carries it out.
    #[must_use]
    pub fn cloud(&self) -> Cloud {
        match self {
            Action::RevokeGrant { grant } => grant.cloud,
            Action::DeactivateCredential { credential }
            | Action::DeleteCredential { credential } => credential.cloud,
            Action::DisablePrincipal { principal } => principal.cloud,
        }
    }

    /// The scope it changes.
    #[must_use]
    pub fn scope(&self) -> &ScopeId {
        match self {
            Action::RevokeGrant { grant } => &grant.scope,
            Action::DeactivateCredential { credential }
            | Action::DeleteCredential { credential } => &credential.scope,
            Action::DisablePrincipal { principal } => &principal.scope,
        }
    }

    /// The id of the object it changes.
    #[must_use]
    pub fn target_id(&self) -> &str {
        match self {
            Action::RevokeGrant { grant } => grant.id.as_str(),
            Action::DeactivateCredential { credential }
            | Action::DeleteCredential { credential } => credential.id.as_str(),
            Action::DisablePrincipal { principal } => principal.id.as_str(),
        }
    }
}

/// A target as read live just before or after an action: what the journal keeps so that the
/// change can be verified and, where reversible, undone.
///
/// Besides presence, a provider reports the live attributes a plan's decision rests on, so the
/// engine can tell a target that changed since the plan (a key used again, a document rewritten)
/// from one that did not. Attributes a provider cannot read stay at their defaults, which the
/// engine reads as "no information", never as a change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TargetState {
    /// False when the target no longer exists.
    pub present: bool,
    /// True when the live state already shows the action's effect (key inactive, grant gone).
    pub revoked: bool,
    /// What a provider needs to restore the target (policy document, binding with condition,
    /// role assignment body). Never a secret value.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub restore: serde_json::Value,
    /// Credentials: the status the cloud reports now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CredentialStatus>,
    /// Credentials: the last use the cloud reports now.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub last_used: Usage,
    /// Grants whose content the provider reads (an inline policy document): whether that
    /// content is privileged now, judged as the snapshot judges it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// The immutable id ([`crate::Principal::unique_id`]) of the principal the target is or
    /// belongs to, as read now: a principal deleted and re-created under the same name shows a
    /// different one, and the action is stale, not aimed at the newcomer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
}

/// What came of one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ActionOutcome {
    /// The provider made the change.
    Done,
    /// The target was already in the requested state (or gone), confirmed by a read.
    AlreadyDone,
}
