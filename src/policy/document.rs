//! The policy file as written: serde types with `deny_unknown_fields`, from which the JSON
//! Schema is generated. [`super::Policy`] is the checked, compiled form the engine uses.

use std::collections::BTreeMap;

use lapse_sdk::{Cloud, CredentialKind, GrantKind, PrincipalKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{Duration, OneOrMany, Pattern, PolicyTime, PolicyVersion};
use crate::finding::{FindingKind, Severity};

/// A lapse policy: which access may exist, who owns it and how long it may live.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The policy language version: 1.
    pub version: PolicyVersion,
    /// What to scan when no snapshot file is given.
    #[serde(default, skip_serializing_if = "ScopesDocument::is_empty")]
    pub scopes: ScopesDocument,
    /// Limits that apply where no rule says otherwise.
    #[serde(default, skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    /// Entitlements to treat as privileged, on top of the built-in catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileged: Vec<PrivilegedDocument>,
    /// Principals (or grants) that are never revoked and always reported as protected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protect: Vec<SelectorDocument>,
    /// Declared access: the allowlist, with its evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<DeclaredGrantDocument>,
    /// Hygiene and time-to-live rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDocument>,
    /// Time-boxed waivers, each with an approver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionDocument>,
    /// Owners of principals that carry no owner tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<OwnerDocument>,
}

/// Scopes to scan, per cloud.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopesDocument {
    /// AWS accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws: Vec<AwsScopeDocument>,
    /// Entra tenants and their subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub azure: Vec<AzureScopeDocument>,
    /// Google Cloud projects, folders or organizations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gcp: Vec<GcpScopeDocument>,
}

impl ScopesDocument {
    fn is_empty(&self) -> bool {
        self.aws.is_empty() && self.azure.is_empty() && self.gcp.is_empty()
    }
}

/// One AWS account.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsScopeDocument {
    /// The 12-digit account id.
    #[serde(deserialize_with = "super::values::text")]
    pub account: String,
    /// A role to assume in the account (read-only is enough for `plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<String>,
    /// External id the role's trust policy requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Session name for the assumed role (shows in CloudTrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
}

/// One Entra tenant.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureScopeDocument {
    /// Tenant id or primary domain.
    #[serde(deserialize_with = "super::values::text")]
    pub tenant: String,
    /// Subscription ids, or `"*"` for every subscription the caller can see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
}

/// One Google Cloud resource whose IAM policy is read.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpScopeDocument {
    /// A project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// A folder id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// An organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

/// What to do with a privileged grant whose age nobody knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownAge {
    /// Report it, and hold the revocation until a later run knows its age (the default).
    #[default]
    Hold,
    /// Revoke it now.
    Revoke,
}

/// Limits that apply where no rule says otherwise. In a folder of policy files, each key may be
/// set in one file only.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Credentials older than this are deactivated (unless a rule matches them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_max_age: Option<Duration>,
    /// Credentials unused for longer than this are deactivated; never used counts from creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_max_idle: Option<Duration>,
    /// The just-in-time window for undeclared privileged grants that no rule matches: younger
    /// ones are compliant, older ones are standing privilege.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_max_ttl: Option<Duration>,
    /// Principals with no activity for longer than this are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_max_idle: Option<Duration>,
    /// What to do when a TTL applies but the grant's age is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_age: Option<UnknownAge>,
    /// What to do with standing privilege that no rule matches: `revoke` (the default) or
    /// `report`, for a first, observe-only rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_privilege: Option<RuleAction>,
    /// Tag or label keys that name a principal's owner, in order of preference.
    /// Default: `lapse:owner`, `owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_tags: Option<Vec<String>>,
}

impl Defaults {
    fn is_empty(&self) -> bool {
        self.credential_max_age.is_none()
            && self.credential_max_idle.is_none()
            && self.grant_max_ttl.is_none()
            && self.principal_max_idle.is_none()
            && self.unknown_age.is_none()
            && self.standing_privilege.is_none()
            && self.owner_tags.is_none()
    }
}

/// An entitlement to treat as privileged.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivilegedDocument {
    /// Entitlement id or name, or a glob.
    pub entitlement: OneOrMany<Pattern>,
    /// Only in these clouds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<OneOrMany<Cloud>>,
}

/// Selects principals, grants or credentials. Every key given must match; an absent key matches
/// anything.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorDocument {
    /// Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<OneOrMany<Cloud>>,
    /// Scope id, with or without its cloud prefix (`111122223333`, `projects/acme-prod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<OneOrMany<Pattern>>,
    /// Principal id or display name (Google members also without their `type:` prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<OneOrMany<Pattern>>,
    /// Principal kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_kind: Option<OneOrMany<PrincipalKind>>,
    /// Entitlement (policy ARN, role name or id, Google role). Grants only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<OneOrMany<Pattern>>,
    /// Grant kind (`managed-policy`, `role-assignment`, `pim-active`, `iam-binding`...). Grants
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_kind: Option<OneOrMany<GrantKind>>,
    /// Credential kind. Credentials only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<OneOrMany<CredentialKind>>,
    /// Privileged or not (catalog, policy list, or the provider's reading of the document).
    /// Grants only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Principal tags or labels; values may be globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Pattern>>,
}

/// A declared grant: access that may exist, with its evidence.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredGrantDocument {
    /// Principal id or display name, or a glob.
    pub principal: Pattern,
    /// Entitlement, or a glob.
    pub entitlement: Pattern,
    /// Cloud, when the ids do not make it plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// Scope, when the grant is declared for some scopes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Pattern>,
    /// Resource the entitlement applies to, when declared narrower than the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Pattern>,
    /// Team or person answerable for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Change or access ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Who approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Why it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// After this the grant is drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<PolicyTime>,
    /// Eligible, but at most this long at a time: an older grant exceeds its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<Duration>,
}

/// What a rule's `max_*` limits are measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSubject {
    /// Grants (`max_ttl`).
    Grants,
    /// Credentials (`max_age`, `max_idle`).
    Credentials,
    /// Principals (`max_idle`).
    Principals,
}

/// What a rule does with what it flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Revoke the grant. Grants only.
    Revoke,
    /// Deactivate the credential (reversible). Credentials only.
    Deactivate,
    /// Disable the principal (reversible). Principals only.
    Disable,
    /// Delete the credential at once: irreversible, so only where it is written. Credentials
    /// only; for secrets that cannot be deactivated, such as AWS console passwords.
    Delete,
    /// Report only.
    Report,
}

/// A hygiene or time-to-live rule.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    /// Unique id; exceptions and reports refer to it.
    #[serde(deserialize_with = "super::values::text")]
    pub id: String,
    /// What the rule is for, shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the limits apply to. Inferred when plain: `max_ttl` means grants, `max_age` or a
    /// `credential` selector means credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<RuleSubject>,
    /// Which subjects the rule applies to (all when absent).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorDocument>,
    /// Grants: the longest a matching undeclared grant may live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<Duration>,
    /// Credentials: the oldest a matching credential may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Credentials or principals: the longest they may go unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle: Option<Duration>,
    /// Credentials: delete a credential this long after lapse deactivated it, if it stayed
    /// inactive (the grace period). Deletion cannot be undone: this key is the opt-in, and a
    /// later run plans it as its own action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<Duration>,
    /// Grants: what to do when the age is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_age: Option<UnknownAge>,
    /// What to do with a violation. Default: revoke for grants, deactivate for credentials,
    /// report for principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
    /// Severity of its findings, instead of the finding kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// A time-boxed waiver.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionDocument {
    /// The rule it waives (a rule id, or `defaults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The finding kind it waives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FindingKind>,
    /// Principal id or display name, or a glob.
    pub principal: Pattern,
    /// Only for this entitlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<Pattern>,
    /// Only for this credential id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Pattern>,
    /// Waived until this date; after it the finding is back and `exception-expired` is added.
    pub until: PolicyTime,
    /// Who approved the waiver.
    #[serde(deserialize_with = "super::values::text")]
    pub approved_by: String,
    /// Why.
    #[serde(deserialize_with = "super::values::text")]
    pub reason: String,
    /// Ticket, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// An owner for principals that carry no owner tag.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerDocument {
    /// Principal id or display name, or a glob.
    pub principal: Pattern,
    /// Team or person.
    #[serde(deserialize_with = "super::values::text")]
    pub owner: String,
}
