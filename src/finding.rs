//! Findings: what the diff says about each subject, with the evidence that decided it.

use std::fmt;

use lapse_sdk::{ActionKind, Cloud, CredentialKind, PrincipalId, ScopeId, Timestamp, Usage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::Origin;

/// What kind of drift a finding is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A privileged grant that is not declared and has no expiry.
    StandingPrivilege,
    /// A grant that is not declared (and not privileged).
    UndeclaredGrant,
    /// A declared grant past its `expires`.
    DeclaredGrantExpired,
    /// A grant older than the time-to-live of its rule or declaration.
    TtlExceeded,
    /// A key or secret older than its `max_age`.
    CredentialTooOld,
    /// A key or secret unused for longer than its `max_idle`.
    CredentialIdle,
    /// An identity with no activity for longer than its limit.
    PrincipalIdle,
    /// A non-human identity with no owner in tags or policy.
    Unowned,
    /// A long-lived secret on a workload that could use federation.
    StaticCredential,
    /// A waiver past its `until`.
    ExceptionExpired,
    /// A declared grant not found in a completely read scope.
    DeclaredMissing,
    /// A grant whose own expiry has passed but which is still present.
    ExpiredBinding,
}

impl FindingKind {
    /// Every kind, in report order.
    pub const ALL: [FindingKind; 12] = [
        FindingKind::StandingPrivilege,
        FindingKind::ExpiredBinding,
        FindingKind::DeclaredGrantExpired,
        FindingKind::TtlExceeded,
        FindingKind::UndeclaredGrant,
        FindingKind::CredentialTooOld,
        FindingKind::CredentialIdle,
        FindingKind::StaticCredential,
        FindingKind::PrincipalIdle,
        FindingKind::Unowned,
        FindingKind::DeclaredMissing,
        FindingKind::ExceptionExpired,
    ];

    /// The kebab-case name used in files, reports and exceptions.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::StandingPrivilege => "standing-privilege",
            FindingKind::UndeclaredGrant => "undeclared-grant",
            FindingKind::DeclaredGrantExpired => "declared-grant-expired",
            FindingKind::TtlExceeded => "ttl-exceeded",
            FindingKind::CredentialTooOld => "credential-too-old",
            FindingKind::CredentialIdle => "credential-idle",
            FindingKind::PrincipalIdle => "principal-idle",
            FindingKind::Unowned => "unowned",
            FindingKind::StaticCredential => "static-credential",
            FindingKind::ExceptionExpired => "exception-expired",
            FindingKind::DeclaredMissing => "declared-missing",
            FindingKind::ExpiredBinding => "expired-binding",
        }
    }

    /// One line on what it means and what to do, for reports and SARIF rule help.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            FindingKind::StandingPrivilege => {
                "Privileged access that no policy entry declares and that never expires. Declare it with an owner and an expiry, move it to just-in-time access, or revoke it."
            }
            FindingKind::UndeclaredGrant => {
                "Access that no policy entry declares. Declare it with an owner and a reason, or remove it."
            }
            FindingKind::DeclaredGrantExpired => {
                "Declared access whose approval has run out. Renew the declaration or let lapse revoke it."
            }
            FindingKind::TtlExceeded => {
                "Access held longer than its time-to-live. Access under a TTL is meant to be short-lived; it is revoked."
            }
            FindingKind::CredentialTooOld => {
                "A key or secret older than its maximum age. Rotate it; the old one is deactivated."
            }
            FindingKind::CredentialIdle => {
                "A key or secret not used for longer than its idle limit. Unused secrets are deactivated."
            }
            FindingKind::PrincipalIdle => {
                "An identity with no activity for longer than its idle limit. Offboard it or record why it stays."
            }
            FindingKind::Unowned => {
                "A non-human identity with no owner tag and no owner in the policy. Tag it with its owner."
            }
            FindingKind::StaticCredential => {
                "A long-lived secret on a workload that can authenticate by federation. Switch to federation and remove the secret."
            }
            FindingKind::ExceptionExpired => {
                "A waiver past its date. The finding it waived is back; renew the waiver with an approver or fix the finding."
            }
            FindingKind::DeclaredMissing => {
                "Declared access that does not exist. Remove the declaration or find out why the access was removed."
            }
            FindingKind::ExpiredBinding => {
                "A grant whose own expiry has passed but which is still present: dead weight that a rewrite of the policy can make permanent. It is removed."
            }
        }
    }

    /// The default severity.
    #[must_use]
    pub fn default_severity(self) -> Severity {
        match self {
            FindingKind::StandingPrivilege | FindingKind::ExpiredBinding => Severity::High,
            FindingKind::DeclaredGrantExpired
            | FindingKind::TtlExceeded
            | FindingKind::CredentialTooOld
            | FindingKind::CredentialIdle
            | FindingKind::StaticCredential => Severity::Medium,
            FindingKind::UndeclaredGrant
            | FindingKind::PrincipalIdle
            | FindingKind::Unowned
            | FindingKind::ExceptionExpired
            | FindingKind::DeclaredMissing => Severity::Low,
        }
    }

    /// The frameworks auditors ask for: OWASP Non-Human Identities Top 10 (2025) and NIST CSF 2.0.
    #[must_use]
    pub fn frameworks(self) -> &'static [&'static str] {
        const NHI1: &str = "OWASP-NHI1:2025 Improper Offboarding";
        const NHI4: &str = "OWASP-NHI4:2025 Insecure Authentication";
        const NHI5: &str = "OWASP-NHI5:2025 Overprivileged NHI";
        const NHI7: &str = "OWASP-NHI7:2025 Long-Lived Secrets";
        const AA01: &str = "NIST-CSF-2.0 PR.AA-01";
        const AA05: &str = "NIST-CSF-2.0 PR.AA-05";
        match self {
            FindingKind::StandingPrivilege
            | FindingKind::UndeclaredGrant
            | FindingKind::TtlExceeded => &[NHI5, AA05],
            FindingKind::DeclaredGrantExpired | FindingKind::ExpiredBinding => &[NHI1, NHI5, AA05],
            FindingKind::CredentialTooOld => &[NHI7, AA01],
            FindingKind::CredentialIdle => &[NHI1, NHI7, AA01],
            FindingKind::PrincipalIdle | FindingKind::Unowned => &[NHI1, AA01],
            FindingKind::StaticCredential => &[NHI7, NHI4, AA01],
            FindingKind::ExceptionExpired | FindingKind::DeclaredMissing => &[AA05],
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How much a finding matters; `--fail-on` compares against it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Hygiene.
    Low,
    /// Should be fixed.
    Medium,
    /// Standing or stale privileged access.
    High,
    /// Set by rules for what must never exist.
    Critical,
}

impl Severity {
    /// Every severity, highest first: the order reports list them in.
    pub const DESCENDING: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What a finding is about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectType {
    /// A grant.
    Grant,
    /// A credential.
    Credential,
    /// A principal.
    Principal,
    /// A policy entry (declared grant, exception).
    PolicyEntry,
}

/// The subject of a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// Grant, credential, principal or policy entry.
    #[serde(rename = "type")]
    pub subject_type: SubjectType,
    /// The subject's own id (grant id, credential id, principal id, or the policy entry path).
    pub id: String,
    /// The principal concerned (a glob for policy entries).
    pub principal: PrincipalId,
    /// The principal's display name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_name: Option<String>,
    /// The principal's owner or team (from the cloud, its owner tags, the policy's `owners`, or a
    /// declared grant's `owner`), when known: reports group by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Cloud, when the subject is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// Scope, when the subject is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeId>,
    /// Grants: the entitlement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    /// Grants: the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Credentials: the kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<CredentialKind>,
}

/// Where an age was measured from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgeSource {
    /// The cloud's own creation time.
    Cloud,
    /// The first time lapse saw it (state store).
    FirstSeen,
    /// Nobody knows.
    Unknown,
}

/// An age, with where it came from. Unknown ages are said as unknown, never guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Age {
    /// Seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
    /// The instant it is measured from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Where it came from.
    pub source: AgeSource,
}

impl Age {
    /// An unknown age.
    #[must_use]
    pub fn unknown() -> Self {
        Age {
            seconds: None,
            since: None,
            source: AgeSource::Unknown,
        }
    }

    /// An age measured from `since` to `now`.
    #[must_use]
    pub fn between(since: Timestamp, now: Timestamp, source: AgeSource) -> Self {
        Age {
            seconds: Some(now.seconds_since(since)),
            since: Some(since),
            source,
        }
    }
}

/// What part of the policy (or lapse itself) decided a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum Decider {
    /// A rule.
    Rule {
        /// Its id.
        id: String,
        /// Where it is written.
        origin: Origin,
    },
    /// A declared grant entry.
    Declared {
        /// Where it is written.
        origin: Origin,
    },
    /// A `defaults` key.
    Default {
        /// The key (`credential_max_age`).
        key: String,
        /// Where it is written, when the policy sets it.
        #[serde(skip_serializing_if = "Option::is_none")]
        origin: Option<Origin>,
    },
    /// An exception entry.
    Exception {
        /// Where it is written.
        origin: Origin,
    },
    /// lapse's built-in behaviour (no declaration, own expiry passed).
    Builtin {
        /// What it was.
        reason: String,
    },
}

impl Decider {
    /// A short name for tables: the rule id, `declared`, `defaults.<key>`, `exception`, `lapse`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Decider::Rule { id, .. } => id.clone(),
            Decider::Declared { origin } => format!("declared {}", origin.path),
            Decider::Default { key, .. } => format!("defaults.{key}"),
            Decider::Exception { origin } => format!("exception {}", origin.path),
            Decider::Builtin { .. } => "lapse".to_owned(),
        }
    }

    /// The policy location, where there is one.
    #[must_use]
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Decider::Rule { origin, .. }
            | Decider::Declared { origin }
            | Decider::Exception { origin } => Some(origin),
            Decider::Default { origin, .. } => origin.as_ref(),
            Decider::Builtin { .. } => None,
        }
    }

    /// The id an exception's `rule:` refers to.
    #[must_use]
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            Decider::Rule { id, .. } => Some(id),
            Decider::Default { .. } => Some("defaults"),
            Decider::Declared { .. } | Decider::Exception { .. } | Decider::Builtin { .. } => None,
        }
    }
}

/// The facts behind a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// What decided it.
    pub decided_by: Decider,
    /// Age of the subject (grants: since granted; credentials: since created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<Age>,
    /// Credentials and principals: last use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Usage>,
    /// Seconds without use (never used counts from creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_seconds: Option<i64>,
    /// The limit that was passed, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_seconds: Option<i64>,
    /// The expiry that passed (declared `expires`, the grant's own end, an exception's `until`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Timestamp>,
    /// Whether the entitlement counts as privileged.
    pub privileged: bool,
    /// How the grant is held, when not direct (`group:<id>`, `inherited:<scope>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The sentence a person reads.
    pub summary: String,
}

/// The action a finding leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedAction {
    /// What would be done; `None` means report only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ActionKind>,
    /// Why it is not in the plan although a change is called for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl PlannedAction {
    /// Report only.
    #[must_use]
    pub fn report() -> Self {
        PlannedAction {
            kind: None,
            held: None,
        }
    }

    /// An action to plan.
    #[must_use]
    pub fn act(kind: ActionKind) -> Self {
        PlannedAction {
            kind: Some(kind),
            held: None,
        }
    }

    /// An action called for but held back, and why.
    #[must_use]
    pub fn held(kind: ActionKind, reason: impl Into<String>) -> Self {
        PlannedAction {
            kind: Some(kind),
            held: Some(reason.into()),
        }
    }

    /// The label shown in tables: `revoke-grant`, `report`, `held: revoke-grant`.
    #[must_use]
    pub fn label(&self) -> String {
        match (&self.kind, &self.held) {
            (None, _) => "report".to_owned(),
            (Some(kind), None) => kind.as_str().to_owned(),
            (Some(kind), Some(_)) => format!("held: {}", kind.as_str()),
        }
    }

    /// True when the plan will carry it out.
    #[must_use]
    pub fn is_planned(&self) -> bool {
        self.kind.is_some() && self.held.is_none()
    }
}

/// A waiver applied to a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Waiver {
    /// Who approved it.
    pub approved_by: String,
    /// Until when.
    pub until: Timestamp,
    /// Why.
    pub reason: String,
    /// Ticket, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Where it is written.
    pub origin: Origin,
}

/// One finding of the diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Stable id: the same drift gets the same id on every run.
    pub id: String,
    /// Kind.
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// What it is about.
    pub subject: Subject,
    /// Why.
    pub evidence: Evidence,
    /// What would be done.
    pub action: PlannedAction,
    /// Set when a valid exception waives it: a waived finding is never planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waiver>,
}

impl Finding {
    /// True when not waived: it counts as drift.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.waived.is_none()
    }
}

/// The stable id of a finding: a short digest of what it is about, not of when it was seen.
#[must_use]
pub fn finding_id(kind: FindingKind, subject_id: &str, decider: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [kind.as_str(), subject_id, decider] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    format!("LPS-{}", hex::encode(&digest[..6]))
}
