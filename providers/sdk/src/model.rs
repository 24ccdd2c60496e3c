//! Principals, credentials and grants: one vocabulary for AWS, Azure and Google Cloud.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CredentialId, GrantId, PrincipalId, ScopeId, Timestamp};

/// The cloud a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure and Entra ID.
    Azure,
    /// Google Cloud.
    Gcp,
}

impl Cloud {
    /// All clouds, in display order.
    pub const ALL: [Cloud; 3] = [Cloud::Aws, Cloud::Azure, Cloud::Gcp];

    /// The lowercase name used in files and on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What sort of identity a principal is. Policies select on it; the engine never guesses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// A person: an AWS IAM user with a console password, an Entra user, a Google `user:`.
    Human,
    /// A workload identity: an IAM user used by software, an Entra service principal, app or
    /// managed identity, a Google service account.
    Workload,
    /// An assumable role (AWS IAM role).
    Role,
    /// A group whose members inherit its grants.
    Group,
}

impl PrincipalKind {
    /// The kebab-case name used in policies.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Human => "human",
            PrincipalKind::Workload => "workload",
            PrincipalKind::Role => "role",
            PrincipalKind::Group => "group",
        }
    }
}

/// When something was last used, with "we could not tell" kept apart from "never".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Usage {
    /// The cloud does not say (no sign-in report, feature not enabled, not tracked that far back).
    #[default]
    Unknown,
    /// The cloud says it was never used.
    Never,
    /// Last used at this instant.
    At(Timestamp),
}

impl Usage {
    /// The instant, when known.
    #[must_use]
    pub fn at(self) -> Option<Timestamp> {
        match self {
            Usage::At(at) => Some(at),
            Usage::Never | Usage::Unknown => None,
        }
    }

    /// True when the value is [`Usage::Unknown`]: serialization leaves it out.
    #[must_use]
    pub fn is_unknown(&self) -> bool {
        matches!(self, Usage::Unknown)
    }
}

impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Usage::Unknown => serializer.serialize_str("unknown"),
            Usage::Never => serializer.serialize_str("never"),
            Usage::At(at) => at.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Usage;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(r#""never", "unknown" or an RFC 3339 timestamp"#)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Usage, E> {
                match value {
                    "never" => Ok(Usage::Never),
                    "unknown" => Ok(Usage::Unknown),
                    other => Timestamp::parse_rfc3339(other)
                        .map(Usage::At)
                        .map_err(E::custom),
                }
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Usage {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Usage".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Last use: \"never\", \"unknown\" (the cloud does not say; the default) or an RFC 3339 timestamp.",
            "anyOf": [
                {"type": "string", "enum": ["never", "unknown"]},
                {"type": "string", "format": "date-time"}
            ]
        })
    }
}

/// An identity in a cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Native id: ARN, Entra object id, or Google IAM member string.
    pub id: PrincipalId,
    /// Cloud it lives in.
    pub cloud: Cloud,
    /// Scope it was read from.
    pub scope: ScopeId,
    /// Human, workload, role or group.
    pub kind: PrincipalKind,
    /// The cloud's own name for the object type (`iam-user`, `servicePrincipal`,
    /// `serviceAccount`), for display only: decisions use `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_type: Option<String>,
    /// Friendly name (user name, display name, email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The cloud's immutable identity of this object (AWS `UserId`/`RoleId`/`GroupId`, Google
    /// `uniqueId`; an Entra object id is already the `id`): a principal deleted and re-created
    /// under the same name gets a new one, so its history and its revocations do not carry over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// When the cloud created it, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Last sign-in or API activity.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub last_activity: Usage,
    /// Owner as recorded in the cloud (owner tag or label, app owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Tags or labels, verbatim.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::check::unique_tags"
    )]
    pub tags: BTreeMap<String, String>,
    /// False when the identity is disabled (Entra `accountEnabled=false`, Google `disabled`).
    #[serde(default = "enabled_by_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Managed by the cloud itself (AWS service-linked role, Google service agent, Microsoft
    /// first-party app). Such identities are never revoked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cloud_managed: bool,
    /// The workload could authenticate by federation (an Entra app with a federated
    /// credential, an AWS account with an OIDC provider trusting it, a Google workload identity
    /// pool binding), so a long-lived secret on it is avoidable.
    #[serde(default, skip_serializing_if = "is_false")]
    pub federation_available: bool,
}

/// The kind of secret or key a credential is. Policies select on these names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// AWS IAM access key.
    AwsAccessKey,
    /// AWS console password (login profile).
    AwsConsolePassword,
    /// AWS IAM signing certificate.
    AwsSigningCertificate,
    /// AWS IAM SSH public key (CodeCommit).
    AwsSshKey,
    /// Entra application or service-principal password credential (client secret).
    AzurePassword,
    /// Entra application or service-principal certificate credential.
    AzureCertificate,
    /// Entra federated identity credential (no secret: a trust of an external issuer).
    AzureFederated,
    /// Google service-account key.
    GcpSaKey,
}

impl CredentialKind {
    /// Every kind, in declaration order.
    pub const ALL: [CredentialKind; 8] = [
        CredentialKind::AwsAccessKey,
        CredentialKind::AwsConsolePassword,
        CredentialKind::AwsSigningCertificate,
        CredentialKind::AwsSshKey,
        CredentialKind::AzurePassword,
        CredentialKind::AzureCertificate,
        CredentialKind::AzureFederated,
        CredentialKind::GcpSaKey,
    ];

    /// The kebab-case name used in policies.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AwsAccessKey => "aws-access-key",
            CredentialKind::AwsConsolePassword => "aws-console-password",
            CredentialKind::AwsSigningCertificate => "aws-signing-certificate",
            CredentialKind::AwsSshKey => "aws-ssh-key",
            CredentialKind::AzurePassword => "azure-password",
            CredentialKind::AzureCertificate => "azure-certificate",
            CredentialKind::AzureFederated => "azure-federated",
            CredentialKind::GcpSaKey => "gcp-sa-key",
        }
    }

    /// True for long-lived secrets a workload could replace with federation.
    #[must_use]
    pub fn is_static_secret(self) -> bool {
        matches!(
            self,
            CredentialKind::AwsAccessKey
                | CredentialKind::AzurePassword
                | CredentialKind::AzureCertificate
                | CredentialKind::GcpSaKey
        )
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Whether a credential can be used right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Usable.
    Active,
    /// Deactivated or disabled but still present (reversible).
    Inactive,
}

/// A secret or key that belongs to a principal. Only ids and metadata: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Native id (access key id, Entra `keyId`, Google key resource name).
    pub id: CredentialId,
    /// The principal it belongs to.
    pub principal: PrincipalId,
    /// Cloud it lives in.
    pub cloud: Cloud,
    /// Scope it was read from.
    pub scope: ScopeId,
    /// What sort of credential it is.
    pub kind: CredentialKind,
    /// Friendly name (Entra `displayName`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When it was created (AWS `CreateDate`, Entra `startDateTime`, Google `validAfterTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When it stops working by itself, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Last use.
    #[serde(default, skip_serializing_if = "Usage::is_unknown")]
    pub last_used: Usage,
    /// Active or inactive.
    pub status: CredentialStatus,
    /// Managed by the cloud (Google `SYSTEM_MANAGED` keys): never revoked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cloud_managed: bool,
}

/// How a grant is expressed natively; decides which revocation applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum GrantKind {
    /// AWS managed policy attached to a user, role or group.
    ManagedPolicy,
    /// AWS inline policy embedded in a user, role or group.
    InlinePolicy,
    /// Membership of a group (AWS IAM group, Entra group).
    GroupMembership,
    /// A principal trusted by an AWS role's trust policy.
    RoleTrust,
    /// An active Azure RBAC role assignment.
    RoleAssignment,
    /// An Azure PIM eligibility (may be activated, not active).
    PimEligible,
    /// An activated Azure PIM assignment (time-bound).
    PimActive,
    /// An Entra directory role assignment.
    DirectoryRole,
    /// An Entra application permission (app role assignment).
    AppRole,
    /// A member of a Google IAM binding, with its condition if any.
    IamBinding,
}

impl GrantKind {
    /// The kebab-case name used in files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::ManagedPolicy => "managed-policy",
            GrantKind::InlinePolicy => "inline-policy",
            GrantKind::GroupMembership => "group-membership",
            GrantKind::RoleTrust => "role-trust",
            GrantKind::RoleAssignment => "role-assignment",
            GrantKind::PimEligible => "pim-eligible",
            GrantKind::PimActive => "pim-active",
            GrantKind::DirectoryRole => "directory-role",
            GrantKind::AppRole => "app-role",
            GrantKind::IamBinding => "iam-binding",
        }
    }
}

/// How the principal comes to hold a grant: `"direct"`, `{"group": "<group id>"}` or
/// `{"inherited": "<scope it is granted at>"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// Granted to the principal itself.
    #[default]
    Direct,
    /// Inherited from this group; revoking it means changing the group.
    Group(PrincipalId),
    /// Inherited from a parent scope (an Azure management group, a Google folder).
    Inherited(String),
}

impl Via {
    /// True for [`Via::Direct`]: serialization leaves it out.
    #[must_use]
    pub fn is_direct(&self) -> bool {
        matches!(self, Via::Direct)
    }
}

/// Where a grant's own expiry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ExpirySource {
    /// An Azure PIM schedule end.
    Pim,
    /// A Google IAM condition `request.time < timestamp(...)`.
    Condition,
    /// An expiry tag on the principal or resource.
    Tag,
}

/// A condition attached to a grant (Google IAM condition, Azure ABAC condition).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The condition expression, verbatim.
    pub expression: String,
    /// Its title, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A principal holding an entitlement at a scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Stable id (see [`GrantId`]).
    pub id: GrantId,
    /// Cloud it lives in.
    pub cloud: Cloud,
    /// Scope it was read from.
    pub scope: ScopeId,
    /// Who holds it.
    pub principal: PrincipalId,
    /// What is held, as a user names it: AWS policy ARN, Azure role name, Google role
    /// (`roles/owner`), group id for memberships.
    pub entitlement: String,
    /// The native id behind `entitlement` when they differ (Azure `roleDefinitionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement_id: Option<String>,
    /// The resource the entitlement applies to (`/subscriptions/…/resourceGroups/rg`,
    /// `projects/acme-prod`, an AWS account id).
    pub resource: String,
    /// How it is expressed natively.
    pub kind: GrantKind,
    /// Direct (the default) or inherited.
    #[serde(default, skip_serializing_if = "Via::is_direct")]
    pub via: Via,
    /// When it was made, if the cloud says (Azure `createdOn`, PIM start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When it ends by itself (PIM end, condition timestamp, expiry tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Where `expires_at` comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_source: Option<ExpirySource>,
    /// Condition attached to the grant, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The provider found the entitlement privileged by reading it (an inline document with
    /// `"Action": "*"` on `"Resource": "*"` under any name). The engine adds its catalog and
    /// the policy's list to this.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_true(value: &bool) -> bool {
    *value
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keeps_unknown_apart_from_never() {
        let never: Usage = serde_json::from_str(r#""never""#).expect("never");
        let unknown: Usage = serde_json::from_str(r#""unknown""#).expect("unknown");
        let at: Usage = serde_json::from_str(r#""2026-01-02T03:04:05Z""#).expect("instant");
        assert_eq!(never, Usage::Never);
        assert_eq!(unknown, Usage::Unknown);
        assert_eq!(
            at.at().map(|t| t.to_string()).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
    }

    #[test]
    fn a_misspelled_field_is_refused_not_ignored() {
        let text = r#"{"id":"k","principal":"p","cloud":"aws","scope":"aws:1","kind":"aws-access-key",
            "status":"active","expires":"2026-01-01T00:00:00Z"}"#;
        let error = serde_json::from_str::<Credential>(text).expect_err("unknown field");
        assert!(
            error.to_string().contains("unknown field `expires`"),
            "{error}"
        );
    }
}
