//! The plan: findings and the actions they lead to, as one versioned artifact.
//!
//! [`plan`] is the whole engine in one call: `fn plan(snapshot, policy, memory, now) -> Plan`.
//! Actions come only from open (not waived), not held findings on unprotected subjects; each
//! carries the full record it was planned from and a digest of it, so that `apply` can refuse a
//! target that changed since.

use std::collections::{BTreeMap, HashMap};

use lapse_sdk::{
    Action, ActionKind, Credential, CredentialStatus, Grant, GrantKind, Principal, PrincipalId,
    ScopeStatus, Snapshot, Timestamp,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{HeldRole, HolderSlot, holder_slot, is_last_holder_guarded};
use crate::diff::{self, Counts, Memory, Protected};
use crate::finding::{Finding, FindingKind, Severity, SubjectType};
use crate::policy::{Origin, Policy};

/// The value of the `format` field of a plan.
pub const PLAN_FORMAT: &str = "lapse-plan";
/// The plan format version.
pub const PLAN_VERSION: u32 = 1;

/// Where the snapshot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfo {
    /// Digest of the snapshot input.
    pub digest: String,
    /// When it was taken (the earliest scope).
    pub taken_at: Timestamp,
    /// False when any scope could not be fully read.
    pub complete: bool,
}

/// Which policy decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyInfo {
    /// Digest of the policy files.
    pub digest: String,
    /// The files.
    pub files: Vec<String>,
}

/// Headline numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// What was judged.
    #[serde(flatten)]
    pub counts: Counts,
    /// All findings.
    pub findings: usize,
    /// Findings not waived.
    pub open: usize,
    /// Findings waived by a valid exception.
    pub waived: usize,
    /// Open findings by kind.
    pub by_kind: BTreeMap<FindingKind, usize>,
    /// Open findings by severity.
    pub by_severity: BTreeMap<Severity, usize>,
    /// Actions in the plan.
    pub actions: usize,
    /// Open findings whose action is held back.
    pub held: usize,
    /// Scopes that could not be fully read.
    pub incomplete_scopes: usize,
}

/// One action of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedChange {
    /// Position in the plan, from 1: the order `apply` follows.
    pub sequence: usize,
    /// The findings that call for it.
    pub finding_ids: Vec<String>,
    /// Whether it can be undone.
    pub reversible: bool,
    /// SHA-256 of the target record as planned (and of `principal_unique_id`, when set): a
    /// plan edited after it was made is refused.
    pub target_digest: String,
    /// The immutable id ([`Principal::unique_id`]) of the principal the target is or belongs
    /// to, from the snapshot: `apply` skips the action as stale when the live principal's
    /// differs (deleted and re-created under the same name since the plan). Absent when the
    /// cloud gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_unique_id: Option<String>,
    /// The action, with the record it was planned from.
    #[serde(flatten)]
    pub action: Action,
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Always [`PLAN_FORMAT`].
    pub format: String,
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// The instant the policy was evaluated at.
    pub now: Timestamp,
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// The policy.
    pub policy: PolicyInfo,
    /// Headline numbers.
    pub summary: Summary,
    /// Every scope read, with its completeness and errors.
    pub scopes: Vec<ScopeStatus>,
    /// Findings, highest severity first.
    pub findings: Vec<Finding>,
    /// Actions, reversible ones first.
    pub actions: Vec<PlannedChange>,
    /// Principals nothing may touch.
    pub protected: Vec<Protected>,
    /// What ends by itself within [`EXPIRING_HORIZON_DAYS`] of `now`, soonest first: the
    /// forecast governance reports show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<Expiring>,
    /// Who made the plan, when and where: set on saved plans (`plan --out`), for the review
    /// trail `apply` and its journal carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made: Option<Provenance>,
    /// Set when a run over snapshot files was narrowed on purpose (`--provider`, `--scope`):
    /// what it judged and what it left out. Absent, the plan accounts for every scope the
    /// policy names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<crate::coverage::Narrowed>,
}

/// Who made a saved plan, when and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    /// The clock when the plan was made (`now` is the instant it judges, which `--now` sets).
    pub at: Timestamp,
    /// The operating-system user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The lapse version.
    pub lapse_version: String,
}

/// How far ahead [`Plan::expiring`] looks.
pub const EXPIRING_HORIZON_DAYS: i64 = 7;

/// What kind of thing is about to end.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiringKind {
    /// A live grant's own end (PIM end, IAM-condition timestamp, expiry tag); still present
    /// afterwards, it is `expired-binding`.
    Grant,
    /// A live credential's own expiry.
    Credential,
    /// A declared grant's `expires`: what it covers becomes `declared-grant-expired`.
    Declaration,
    /// An exception's `until`: what it waives is open again.
    Exception,
}

/// One thing that ends by itself soon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Expiring {
    /// What it is.
    pub kind: ExpiringKind,
    /// The grant or credential id, or the policy entry (`file#path`).
    pub id: String,
    /// The principal (a pattern, for policy entries).
    pub principal: PrincipalId,
    /// The principal's display name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_name: Option<String>,
    /// Grants and declarations: the entitlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    /// When it ends.
    pub expires_at: Timestamp,
    /// Declarations and exceptions: who approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Declarations and exceptions: where it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl Plan {
    /// Open findings at or above `threshold`.
    #[must_use]
    pub fn open_at_or_above(&self, threshold: Severity) -> usize {
        self.findings
            .iter()
            .filter(|finding| finding.is_open() && finding.severity >= threshold)
            .count()
    }
}

/// Judges `snapshot` against `policy` as of `now` and plans the actions.
#[must_use]
pub fn plan(
    snapshot: &Snapshot,
    snapshot_digest: &str,
    policy: &Policy,
    memory: &Memory,
    now: Timestamp,
) -> Plan {
    let mut evaluation = diff::evaluate(snapshot, policy, memory, now);
    hold_last_holders(snapshot, &mut evaluation.findings);
    let actions = actions(snapshot, &evaluation.findings, &evaluation.protected);

    let mut summary = Summary {
        counts: evaluation.counts,
        findings: evaluation.findings.len(),
        actions: actions.len(),
        incomplete_scopes: snapshot
            .scopes
            .iter()
            .filter(|scope| !scope.complete)
            .count(),
        ..Summary::default()
    };
    for finding in &evaluation.findings {
        if finding.is_open() {
            summary.open += 1;
            *summary.by_kind.entry(finding.kind).or_default() += 1;
            *summary.by_severity.entry(finding.severity).or_default() += 1;
            if finding.action.held.is_some() {
                summary.held += 1;
            }
        } else {
            summary.waived += 1;
        }
    }

    Plan {
        format: PLAN_FORMAT.to_owned(),
        version: PLAN_VERSION,
        now,
        snapshot: SnapshotInfo {
            digest: snapshot_digest.to_owned(),
            taken_at: snapshot.taken_at,
            complete: snapshot.is_complete(),
        },
        policy: PolicyInfo {
            digest: policy.digest.clone(),
            files: policy
                .files
                .iter()
                .map(|file| file.display().to_string())
                .collect(),
        },
        summary,
        scopes: snapshot.scopes.clone(),
        findings: evaluation.findings,
        actions,
        protected: evaluation.protected,
        expiring: expiring(snapshot, policy, now),
        made: None,
        narrowed: None,
    }
}

/// Grants, credentials, declarations and exceptions that end after `now` and within
/// [`EXPIRING_HORIZON_DAYS`]: read from their dates alone, so nothing is judged twice.
fn expiring(snapshot: &Snapshot, policy: &Policy, now: Timestamp) -> Vec<Expiring> {
    let horizon = now.plus_seconds(EXPIRING_HORIZON_DAYS * 86_400);
    let soon = |at: Option<Timestamp>| at.filter(|at| *at > now && *at <= horizon);
    let names: HashMap<&str, &str> = snapshot
        .principals
        .iter()
        .filter_map(|principal| Some((principal.id.as_str(), principal.display_name.as_deref()?)))
        .collect();
    let name_of =
        |principal: &PrincipalId| names.get(principal.as_str()).map(|name| (*name).to_owned());
    let mut items = Vec::new();
    for grant in &snapshot.grants {
        if let Some(expires_at) = soon(grant.expires_at) {
            items.push(Expiring {
                kind: ExpiringKind::Grant,
                id: grant.id.as_str().to_owned(),
                principal: grant.principal.clone(),
                principal_name: name_of(&grant.principal),
                entitlement: Some(grant.entitlement.clone()),
                expires_at,
                approved_by: None,
                origin: None,
            });
        }
    }
    for credential in &snapshot.credentials {
        if credential.status != CredentialStatus::Active {
            continue;
        }
        if let Some(expires_at) = soon(credential.expires_at) {
            items.push(Expiring {
                kind: ExpiringKind::Credential,
                id: credential.id.as_str().to_owned(),
                principal: credential.principal.clone(),
                principal_name: name_of(&credential.principal),
                entitlement: None,
                expires_at,
                approved_by: None,
                origin: None,
            });
        }
    }
    for declared in &policy.grants {
        if let Some(expires_at) = soon(declared.expires) {
            items.push(Expiring {
                kind: ExpiringKind::Declaration,
                id: format!("{}#{}", declared.origin.file, declared.origin.path),
                principal: declared.principal_text.as_str().into(),
                principal_name: None,
                entitlement: Some(declared.entitlement_text.clone()),
                expires_at,
                approved_by: declared.approved_by.clone(),
                origin: Some(declared.origin.clone()),
            });
        }
    }
    for exception in &policy.exceptions {
        if let Some(expires_at) = soon(Some(exception.until)) {
            items.push(Expiring {
                kind: ExpiringKind::Exception,
                id: format!("{}#{}", exception.origin.file, exception.origin.path),
                principal: exception.principal_text.as_str().into(),
                principal_name: None,
                entitlement: None,
                expires_at,
                approved_by: Some(exception.approved_by.clone()),
                origin: Some(exception.origin.clone()),
            });
        }
    }
    items.sort_by(|left, right| {
        left.expires_at
            .cmp(&right.expires_at)
            .then_with(|| left.id.cmp(&right.id))
    });
    items
}

/// Never plan away the last Owner (or User Access Administrator) of an Azure resource: when
/// every holder would be revoked, all of those revocations are held. Holders are counted per
/// role definition id and resource; a revocation whose grant carries no role id cannot be
/// matched to the other holders, so it is held too.
fn hold_last_holders(snapshot: &Snapshot, findings: &mut [Finding]) {
    let mut holders: HashMap<HolderSlot, usize> = HashMap::new();
    // Eligibilities are not holders: they grant nothing until activated.
    for grant in snapshot
        .grants
        .iter()
        .filter(|grant| is_last_holder_guarded(grant) && grant.kind != GrantKind::PimEligible)
    {
        *holders.entry(holder_slot(grant)).or_default() += 1;
    }
    if holders.is_empty() {
        return;
    }
    let grants: HashMap<&str, &Grant> = snapshot
        .grants
        .iter()
        .filter(|grant| is_last_holder_guarded(grant))
        .map(|grant| (grant.id.as_str(), grant))
        .collect();
    let revoking = |finding: &Finding| {
        finding.is_open()
            && finding.action.is_planned()
            && finding.action.kind == Some(ActionKind::RevokeGrant)
            && finding.subject.subject_type == SubjectType::Grant
    };
    let mut planned: HashMap<HolderSlot, usize> = HashMap::new();
    for finding in findings.iter().filter(|finding| revoking(finding)) {
        if let Some(grant) = grants.get(finding.subject.id.as_str()) {
            *planned.entry(holder_slot(grant)).or_default() += 1;
        }
    }
    for finding in findings.iter_mut().filter(|finding| revoking(finding)) {
        if let Some(grant) = grants.get(finding.subject.id.as_str()) {
            let slot = holder_slot(grant);
            if let HeldRole::Name(name) = &slot.role {
                finding.action.held = Some(format!(
                    "{name} on {} must keep a holder, and this grant carries no role definition id to count the others by: read it again so the snapshot has its id",
                    grant.resource
                ));
            } else if planned.get(&slot) >= holders.get(&slot) {
                finding.action.held = Some(format!(
                    "would leave {} with no {}: declare a holder first",
                    grant.resource, grant.entitlement
                ));
            }
        }
    }
}

/// Rank for "reversible actions first".
fn order(kind: ActionKind) -> u8 {
    match kind {
        ActionKind::DeactivateCredential => 0,
        ActionKind::DisablePrincipal => 1,
        ActionKind::RevokeGrant => 2,
        ActionKind::DeleteCredential => 3,
    }
}

fn actions(
    snapshot: &Snapshot,
    findings: &[Finding],
    protected: &[Protected],
) -> Vec<PlannedChange> {
    // Only the records an action targets are looked up: indexing the whole estate costs more
    // than the plan it serves.
    let targets: std::collections::HashSet<&str> = findings
        .iter()
        .filter(|finding| finding.is_open() && finding.action.is_planned())
        .map(|finding| finding.subject.id.as_str())
        .collect();
    let grants: HashMap<&str, &Grant> = snapshot
        .grants
        .iter()
        .filter(|grant| targets.contains(grant.id.as_str()))
        .map(|grant| (grant.id.as_str(), grant))
        .collect();
    let credentials: HashMap<&str, &Credential> = snapshot
        .credentials
        .iter()
        .filter(|credential| targets.contains(credential.id.as_str()))
        .map(|credential| (credential.id.as_str(), credential))
        .collect();
    let principals: HashMap<&str, &Principal> = snapshot
        .principals
        .iter()
        .filter(|principal| targets.contains(principal.id.as_str()))
        .map(|principal| (principal.id.as_str(), principal))
        .collect();
    let protected: std::collections::HashSet<&str> = protected
        .iter()
        .map(|entry| entry.principal.as_str())
        .collect();

    // One action per (kind, target), however many findings call for it.
    let mut by_target: BTreeMap<(u8, String), (Action, Vec<String>)> = BTreeMap::new();
    for finding in findings
        .iter()
        .filter(|finding| finding.is_open() && finding.action.is_planned())
    {
        let Some(kind) = finding.action.kind else {
            continue;
        };
        if protected.contains(finding.subject.principal.as_str()) {
            continue;
        }
        let id = finding.subject.id.as_str();
        let action = match kind {
            ActionKind::RevokeGrant => grants.get(id).map(|grant| Action::RevokeGrant {
                grant: (*grant).clone(),
            }),
            ActionKind::DeactivateCredential => {
                credentials
                    .get(id)
                    .map(|credential| Action::DeactivateCredential {
                        credential: (*credential).clone(),
                    })
            }
            ActionKind::DeleteCredential => {
                credentials
                    .get(id)
                    .map(|credential| Action::DeleteCredential {
                        credential: (*credential).clone(),
                    })
            }
            ActionKind::DisablePrincipal => {
                principals
                    .get(id)
                    .map(|principal| Action::DisablePrincipal {
                        principal: (*principal).clone(),
                    })
            }
        };
        let Some(action) = action else { continue };
        by_target
            .entry((order(kind), id.to_owned()))
            .or_insert_with(|| (action, Vec::new()))
            .1
            .push(finding.id.clone());
    }
    // The immutable id of each target's principal, as the snapshot read it.
    let holders: std::collections::HashSet<&str> = by_target
        .values()
        .map(|(action, _)| principal_of(action))
        .collect();
    let unique_ids: HashMap<&str, &str> = snapshot
        .principals
        .iter()
        .filter(|principal| holders.contains(principal.id.as_str()))
        .filter_map(|principal| Some((principal.id.as_str(), principal.unique_id.as_deref()?)))
        .collect();
    by_target
        .into_values()
        .enumerate()
        .map(|(index, (action, mut finding_ids))| {
            finding_ids.sort();
            let principal_unique_id = match &action {
                Action::DisablePrincipal { principal } => principal.unique_id.clone(),
                _ => unique_ids
                    .get(principal_of(&action))
                    .map(|id| (*id).to_owned()),
            };
            PlannedChange {
                sequence: index + 1,
                finding_ids,
                reversible: action.kind().is_reversible(),
                target_digest: target_digest(&action, principal_unique_id.as_deref()),
                principal_unique_id,
                action,
            }
        })
        .collect()
}

/// The principal an action changes, or whose grant or credential it changes.
fn principal_of(action: &Action) -> &str {
    match action {
        Action::RevokeGrant { grant } => grant.principal.as_str(),
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            credential.principal.as_str()
        }
        Action::DisablePrincipal { principal } => principal.id.as_str(),
    }
}

/// SHA-256 of the target record's JSON form, followed (when the plan carries one) by the
/// principal's immutable id: an edit of either is an edited plan. Without an immutable id the
/// digest is the record's alone, as plans made before the id was carried have it.
#[must_use]
pub fn target_digest(action: &Action, principal_unique_id: Option<&str>) -> String {
    let json = match action {
        Action::RevokeGrant { grant } => serde_json::to_vec(grant),
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            serde_json::to_vec(credential)
        }
        Action::DisablePrincipal { principal } => serde_json::to_vec(principal),
    }
    .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(json);
    if let Some(unique_id) = principal_unique_id {
        hasher.update(b"\n");
        hasher.update(unique_id.as_bytes());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use lapse_sdk::{Cloud, GrantKind, ScopeKind, Via};

    use super::*;

    const OWNER_ID: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    const SUBSCRIPTION: &str = "/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17";

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("instant")
    }

    /// A role assignment on the subscription, shown as `name`, of role `role_id` (if read).
    fn assignment(principal: &str, name: &str, role_id: Option<&str>) -> Grant {
        Grant {
            id: format!(
                "{SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments/{principal}"
            )
            .into(),
            cloud: Cloud::Azure,
            scope: format!("azure:{SUBSCRIPTION}").into(),
            principal: principal.into(),
            entitlement: name.to_owned(),
            entitlement_id: role_id.map(|id| {
                format!("{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{id}")
            }),
            resource: SUBSCRIPTION.to_owned(),
            kind: GrantKind::RoleAssignment,
            via: Via::Direct,
            created_at: Some(at("2025-01-01T00:00:00Z")),
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: true,
        }
    }

    /// Plans `grants` under a rule that revokes every privileged grant older than 8 hours
    /// unless declared; `declared` principals keep theirs.
    fn held(grants: Vec<Grant>, declared: &[&str]) -> Vec<(String, Option<String>)> {
        let mut snapshot = Snapshot::empty(at("2026-11-20T06:00:00Z"));
        snapshot.scopes.push(ScopeStatus {
            id: format!("azure:{SUBSCRIPTION}").into(),
            cloud: Cloud::Azure,
            kind: ScopeKind::Subscription,
            taken_at: snapshot.taken_at,
            complete: true,
            caller: None,
            caller_identities: Vec::new(),
            errors: Vec::new(),
        });
        snapshot.grants = grants;
        let mut text = "version: 1\nrules:\n  - {id: jit, match: {privileged: true}, max_ttl: 8h, action: revoke}\n".to_owned();
        if !declared.is_empty() {
            text.push_str("grants:\n");
            for principal in declared {
                text.push_str(&format!(
                    "  - {{principal: '{principal}', entitlement: '*', expires: 2099-01-01}}\n"
                ));
            }
        }
        let policy =
            crate::policy::from_sources(&[(PathBuf::from("policy.yaml"), text)]).expect("policy");
        let plan = plan(
            &snapshot,
            "sha256:x",
            &policy,
            &Memory::default(),
            snapshot.taken_at,
        );
        let mut found: Vec<(String, Option<String>)> = plan
            .findings
            .iter()
            .filter(|finding| finding.action.kind == Some(ActionKind::RevokeGrant))
            .map(|finding| {
                (
                    finding.subject.principal.as_str().to_owned(),
                    finding.action.held.clone(),
                )
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_sole_owner_is_held_even_when_its_role_name_could_not_be_read() {
        // A role definition read without `roleName` shows as its id.
        let found = held(vec![assignment("alice", OWNER_ID, Some(OWNER_ID))], &[]);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .1
                .as_deref()
                .is_some_and(|reason| reason.contains("with no")),
            "{found:?}"
        );
    }

    #[test]
    fn holders_are_counted_by_role_id_not_by_name() {
        // bob holds a custom role that happens to show as "Owner": he is no Owner, so alice's
        // revocation would leave the subscription with none.
        let found = held(
            vec![
                assignment("alice", "Owner", Some(OWNER_ID)),
                assignment("bob", "Owner", Some("0b5e8c1a-1111-4222-8333-944455556666")),
            ],
            &["bob"],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "alice");
        assert!(found[0].1.is_some(), "{found:?}");

        // The same role under its name and under its id is one role: carol, declared, remains.
        let found = held(
            vec![
                assignment("alice", "Owner", Some(OWNER_ID)),
                assignment(
                    "carol",
                    OWNER_ID,
                    Some(OWNER_ID.to_ascii_uppercase().as_str()),
                ),
            ],
            &["carol"],
        );
        assert_eq!(found, [("alice".to_owned(), None)]);
    }

    #[test]
    fn a_guarded_grant_without_a_role_id_is_held() {
        let found = held(
            vec![
                assignment("alice", "Owner", None),
                assignment("dave", "Owner", Some(OWNER_ID)),
            ],
            &["dave"],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .1
                .as_deref()
                .is_some_and(|reason| reason.contains("no role definition id")),
            "{found:?}"
        );
    }
}
