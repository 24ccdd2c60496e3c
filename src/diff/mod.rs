//! The diff engine: a snapshot judged against a policy at an instant.
//!
//! [`evaluate`] is pure: the same snapshot, policy, memory and `now` give the same findings in
//! the same order. Grants follow the decision order of `ARCHITECTURE.md` (first match wins);
//! each credential is judged on its own against every rule that matches it; principals are
//! checked for idleness and ownership; exceptions are applied last.

mod credentials;
mod grants;
mod principals;
mod waivers;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use lapse_sdk::{GrantId, Principal, PrincipalId, Snapshot, Timestamp};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::{BuiltinProtection, Classifier};
use crate::finding::{
    Decider, Evidence, Finding, FindingKind, PlannedAction, Severity, Subject, finding_id,
};
use crate::policy::{Origin, Policy, Target};

/// What lapse remembers between runs (the state store fills it; empty without one).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// When each grant was first seen, for grants whose cloud gives no creation time.
    pub first_seen: HashMap<GrantId, Timestamp>,
    /// When lapse deactivated each credential that is still inactive: the start of its grace
    /// period before deletion (`delete_after`).
    pub deactivated: HashMap<lapse_sdk::CredentialId, Timestamp>,
}

/// A principal that nothing may touch, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Protected {
    /// The principal.
    pub principal: PrincipalId,
    /// Why it is protected.
    pub reason: String,
    /// The `protect` entry, when the policy protects it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// How many of its grants were left alone.
    pub grants: usize,
    /// How many of its credentials were left alone.
    pub credentials: usize,
}

/// Counts of what was judged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    /// Principals in the snapshot.
    pub principals: usize,
    /// Credentials in the snapshot.
    pub credentials: usize,
    /// Grants in the snapshot.
    pub grants: usize,
    /// Grants that are declared and current, or within a TTL window.
    pub compliant_grants: usize,
    /// Grants left alone because their principal (or the grant) is protected.
    pub protected_grants: usize,
    /// Privileged grants.
    pub privileged_grants: usize,
}

/// The result of a diff.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Findings, sorted by severity (highest first), kind and subject.
    pub findings: Vec<Finding>,
    /// Protected principals, sorted by id.
    pub protected: Vec<Protected>,
    /// Counts.
    pub counts: Counts,
}

/// Why a principal is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protection {
    /// The reason, as reports show it.
    pub reason: String,
    /// The policy's `protect` entry, when the policy is the reason.
    pub origin: Option<Origin>,
}

/// Everything the per-subject checks share, built once.
pub(crate) struct Context<'a> {
    pub(crate) policy: &'a Policy,
    pub(crate) memory: &'a Memory,
    pub(crate) now: Timestamp,
    pub(crate) classifier: Classifier<'a>,
    pub(crate) principals: HashMap<&'a str, &'a Principal>,
    pub(crate) protection: HashMap<&'a str, Protection>,
    pub(crate) privileged_groups: HashSet<&'a str>,
    pub(crate) declared_by_principal: HashMap<&'a str, Vec<usize>>,
    /// Glob declarations whose principal pattern matches, by principal id: matched once per
    /// principal, not once per grant.
    pub(crate) declared_globs_by_principal: HashMap<&'a str, Vec<usize>>,
    pub(crate) declared_used: Vec<AtomicBool>,
}

impl<'a> Context<'a> {
    fn new(snapshot: &'a Snapshot, policy: &'a Policy, memory: &'a Memory, now: Timestamp) -> Self {
        let principals: HashMap<&str, &Principal> = snapshot
            .principals
            .iter()
            .map(|principal| (principal.id.as_str(), principal))
            .collect();
        let classifier = Classifier::new(policy);
        let protection = protection_by_principal(snapshot, policy, &principals);
        let privileged_groups = snapshot
            .grants
            .iter()
            .filter(|grant| {
                principals
                    .get(grant.principal.as_str())
                    .is_some_and(|principal| principal.kind == lapse_sdk::PrincipalKind::Group)
                    && classifier.is_privileged(grant)
            })
            .map(|grant| grant.principal.as_str())
            .collect();
        let mut declared_by_principal: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut declared_with_globs = Vec::new();
        for (index, declared) in policy.grants.iter().enumerate() {
            if declared.principal_is_literal {
                declared_by_principal
                    .entry(declared.principal_text.as_str())
                    .or_default()
                    .push(index);
            } else {
                declared_with_globs.push(index);
            }
        }
        let declared_globs_by_principal = if declared_with_globs.is_empty() {
            HashMap::new()
        } else {
            let holders: HashSet<&str> = snapshot
                .grants
                .iter()
                .map(|grant| grant.principal.as_str())
                .collect();
            holders
                .into_par_iter()
                .filter_map(|id| {
                    let name = principals
                        .get(id)
                        .and_then(|principal| principal.display_name.as_deref());
                    let matched: Vec<usize> = declared_with_globs
                        .iter()
                        .copied()
                        .filter(|index| policy.grants[*index].principal.matches_principal(id, name))
                        .collect();
                    (!matched.is_empty()).then_some((id, matched))
                })
                .collect()
        };
        Context {
            policy,
            memory,
            now,
            classifier,
            principals,
            protection,
            privileged_groups,
            declared_by_principal,
            declared_globs_by_principal,
            declared_used: policy
                .grants
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }

    pub(crate) fn principal(&self, id: &str) -> Option<&'a Principal> {
        self.principals.get(id).copied()
    }

    pub(crate) fn mark_declared_used(&self, index: usize) {
        if let Some(flag) = self.declared_used.get(index) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Built-in protection first (it cannot be lifted), then the policy's principal-level entries.
fn protection_by_principal<'a>(
    snapshot: &'a Snapshot,
    policy: &'a Policy,
    principals: &HashMap<&'a str, &'a Principal>,
) -> HashMap<&'a str, Protection> {
    let builtin = BuiltinProtection::default();
    let own = OwnIdentities::of_scopes(&snapshot.scopes);
    let principal_entries: Vec<_> = policy
        .protect
        .iter()
        .filter(|entry| entry.selector.is_about_principals_only())
        .collect();
    // Every principal id the snapshot mentions, with a cloud and scope to match on: grants and
    // credentials may name principals the snapshot holds no record of (a Google `user:`).
    let mut ids: HashMap<&str, (lapse_sdk::Cloud, &lapse_sdk::ScopeId)> = HashMap::new();
    for principal in &snapshot.principals {
        ids.entry(principal.id.as_str())
            .or_insert((principal.cloud, &principal.scope));
    }
    for grant in &snapshot.grants {
        ids.entry(grant.principal.as_str())
            .or_insert((grant.cloud, &grant.scope));
    }
    for credential in &snapshot.credentials {
        ids.entry(credential.principal.as_str())
            .or_insert((credential.cloud, &credential.scope));
    }
    let mut protection = HashMap::new();
    for (id, (cloud, scope)) in ids {
        let principal = principals.get(id).copied();
        let found = protection_reason(
            &builtin,
            &own,
            &principal_entries,
            PrincipalRef {
                id,
                cloud,
                scope,
                principal,
            },
        );
        if let Some(found) = found {
            protection.insert(id, found);
        }
    }
    protection
}

/// A principal as protection looks at it: its id, where it was seen, and its record when known.
#[derive(Clone, Copy, Debug)]
pub struct PrincipalRef<'a> {
    /// The principal id.
    pub id: &'a str,
    /// Its cloud.
    pub cloud: lapse_sdk::Cloud,
    /// The scope it was seen in.
    pub scope: &'a lapse_sdk::ScopeId,
    /// Its record, when the inventory has one.
    pub principal: Option<&'a Principal>,
}

/// lapse's own identity in every form the scopes report, each with why it is protected: the
/// caller each scope was read as, and every other principal through which that caller holds its
/// access ([`lapse_sdk::ScopeStatus::caller_identities`]: the Entra application owning a
/// service principal's secrets, the groups the caller belongs to, the Google service accounts
/// it impersonated through). Revoking any of them would lock lapse out of its next run.
#[derive(Clone, Debug, Default)]
pub struct OwnIdentities<'a> {
    reasons: HashMap<&'a str, String>,
}

impl<'a> OwnIdentities<'a> {
    /// The identities the given scopes report. A caller keeps its own reason when it is also
    /// another scope's caller identity.
    #[must_use]
    pub fn of_scopes(scopes: impl IntoIterator<Item = &'a lapse_sdk::ScopeStatus>) -> Self {
        let scopes: Vec<&lapse_sdk::ScopeStatus> = scopes.into_iter().collect();
        let mut reasons: HashMap<&str, String> = HashMap::new();
        for caller in scopes.iter().filter_map(|scope| scope.caller.as_deref()) {
            reasons.insert(caller, "lapse's own caller identity".to_owned());
        }
        for scope in &scopes {
            for identity in &scope.caller_identities {
                reasons.entry(identity.as_str()).or_insert_with(|| {
                    format!(
                        "lapse's own identity: holds lapse's own access (caller {})",
                        scope.caller.as_deref().unwrap_or("unknown")
                    )
                });
            }
        }
        OwnIdentities { reasons }
    }

    /// Why `id` is lapse's own, if it is.
    #[must_use]
    pub fn reason(&self, id: &str) -> Option<&str> {
        self.reasons.get(id).map(String::as_str)
    }
}

/// Why a principal is protected, if it is: lapse's own identity in any of its forms (`own`),
/// then the built-in catalog (which no policy can lift), then the policy's principal-level
/// `protect` entries. The one test the diff and `apply`'s re-check share.
#[must_use]
pub fn protection_of(
    policy: &Policy,
    own: &OwnIdentities<'_>,
    principal: PrincipalRef<'_>,
) -> Option<Protection> {
    let entries: Vec<_> = policy
        .protect
        .iter()
        .filter(|entry| entry.selector.is_about_principals_only())
        .collect();
    protection_reason(&BuiltinProtection::default(), own, &entries, principal)
}

fn protection_reason(
    builtin: &BuiltinProtection,
    own: &OwnIdentities<'_>,
    principal_entries: &[&crate::policy::ProtectEntry],
    subject: PrincipalRef<'_>,
) -> Option<Protection> {
    let PrincipalRef {
        id,
        cloud,
        scope,
        principal,
    } = subject;
    if let Some(reason) = own.reason(id) {
        return Some(Protection {
            reason: reason.to_owned(),
            origin: None,
        });
    }
    if let Some(reason) = builtin.reason(id, principal, scope) {
        return Some(Protection {
            reason: format!("built-in: {reason}"),
            origin: None,
        });
    }
    let target = Target {
        cloud,
        scope,
        principal_id: id,
        principal,
        grant: None,
        privileged: false,
        credential: None,
    };
    principal_entries
        .iter()
        .find(|entry| entry.selector.matches(&target))
        .map(|entry| Protection {
            reason: "protected by policy".to_owned(),
            origin: Some(entry.origin.clone()),
        })
}

/// The policy's grant-level `protect` entry that names this grant, if any (a principal-level
/// entry is [`protection_of`]'s business).
#[must_use]
pub fn grant_protected_by<'p>(
    policy: &'p Policy,
    target: &Target<'_>,
) -> Option<&'p crate::policy::ProtectEntry> {
    policy
        .protect
        .iter()
        .find(|entry| entry.selector.is_about_grants() && entry.selector.matches(target))
}

/// Judges a snapshot against a policy as of `now`.
#[must_use]
pub fn evaluate(
    snapshot: &Snapshot,
    policy: &Policy,
    memory: &Memory,
    now: Timestamp,
) -> Evaluation {
    let context = Context::new(snapshot, policy, memory, now);

    let grant_outcomes: Vec<grants::Outcome> = snapshot
        .grants
        .par_iter()
        .map(|grant| grants::evaluate(&context, grant))
        .collect();
    let credential_outcomes: Vec<credentials::Outcome> = snapshot
        .credentials
        .par_iter()
        .map(|credential| credentials::evaluate(&context, credential))
        .collect();
    let mut findings: Vec<Finding> = snapshot
        .principals
        .par_iter()
        .flat_map_iter(|principal| principals::evaluate(&context, principal))
        .collect();

    let mut counts = Counts {
        principals: snapshot.principals.len(),
        credentials: snapshot.credentials.len(),
        grants: snapshot.grants.len(),
        ..Counts::default()
    };
    let mut protected_grants: HashMap<&str, usize> = HashMap::new();
    let mut protected_credentials: HashMap<&str, usize> = HashMap::new();
    for (grant, outcome) in snapshot.grants.iter().zip(grant_outcomes) {
        if outcome.privileged {
            counts.privileged_grants += 1;
        }
        match outcome.verdict {
            grants::Verdict::Protected => {
                counts.protected_grants += 1;
                *protected_grants
                    .entry(grant.principal.as_str())
                    .or_default() += 1;
            }
            grants::Verdict::Compliant => counts.compliant_grants += 1,
            grants::Verdict::Finding(finding) => findings.push(*finding),
        }
    }
    for (credential, outcome) in snapshot.credentials.iter().zip(credential_outcomes) {
        match outcome {
            credentials::Outcome::Protected => {
                *protected_credentials
                    .entry(credential.principal.as_str())
                    .or_default() += 1;
            }
            credentials::Outcome::Findings(found) => findings.extend(found),
        }
    }

    findings.extend(grants::declared_missing(&context, snapshot));
    waivers::apply(&context, &mut findings);
    findings.extend(waivers::expired_exceptions(&context));
    attach_owners(&context, &mut findings);

    findings.par_sort_unstable_by(|left, right| {
        right
            .severity
            .cmp(&left.severity)
            .then(left.kind.cmp(&right.kind))
            .then_with(|| left.subject.id.cmp(&right.subject.id))
            .then_with(|| left.id.cmp(&right.id))
    });

    let mut protected: Vec<Protected> = context
        .protection
        .iter()
        .map(|(id, protection)| Protected {
            principal: PrincipalId::from(*id),
            reason: protection.reason.clone(),
            origin: protection.origin.clone(),
            grants: protected_grants.get(id).copied().unwrap_or(0),
            credentials: protected_credentials.get(id).copied().unwrap_or(0),
        })
        .collect();
    protected.sort_by(|left, right| left.principal.cmp(&right.principal));

    Evaluation {
        findings,
        protected,
        counts,
    }
}

/// Names each live subject's owner, so that reports can group by team. Looked up once per
/// principal: `owner_of` walks the policy's owners and declarations.
fn attach_owners(context: &Context<'_>, findings: &mut [Finding]) {
    let mut owners: HashMap<&str, Option<String>> = HashMap::new();
    for finding in findings {
        if finding.subject.owner.is_some() {
            continue;
        }
        let Some(principal) = context.principals.get(finding.subject.principal.as_str()) else {
            continue;
        };
        finding.subject.owner = owners
            .entry(principal.id.as_str())
            .or_insert_with(|| principals::owner_of(context, principal).map(str::to_owned))
            .clone();
    }
}

/// Builds a finding with its stable id.
pub(crate) fn finding(
    kind: FindingKind,
    severity: Severity,
    subject: Subject,
    evidence: Evidence,
    action: PlannedAction,
) -> Finding {
    let decider_key = match &evidence.decided_by {
        Decider::Rule { id, .. } => id.clone(),
        Decider::Default { key, .. } => format!("defaults.{key}"),
        Decider::Declared { .. } => "declared".to_owned(),
        Decider::Exception { origin } => format!("exception:{}", origin.path),
        Decider::Builtin { .. } => "lapse".to_owned(),
    };
    Finding {
        id: finding_id(kind, &subject.id, &decider_key),
        kind,
        severity,
        subject,
        evidence,
        action,
        waived: None,
    }
}

/// A policy instant as the person wrote it: a bare date is stored as the next midnight, so a
/// midnight is shown as "end of <the day before>".
pub(crate) fn policy_time(instant: Timestamp) -> String {
    let value = instant.as_offset();
    if value.hour() == 0 && value.minute() == 0 && value.second() == 0 {
        format!("end of {}", instant.plus_seconds(-1).as_offset().date())
    } else {
        instant.to_string()
    }
}

/// A duration in the largest whole unit, for sentences: `412d`, `9h`, `45m`.
pub(crate) fn human_duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let seconds = seconds.unsigned_abs();
    if seconds >= 86_400 {
        format!("{sign}{}d", seconds / 86_400)
    } else if seconds >= 3_600 {
        format!("{sign}{}h", seconds / 3_600)
    } else if seconds >= 60 {
        format!("{sign}{}m", seconds / 60)
    } else {
        format!("{sign}{seconds}s")
    }
}

#[cfg(test)]
mod tests;
