//! The guards an apply passes before its first mutation (and again on every resume). Each
//! one that refuses says why and what to do; all of them are checked, so one run lists every
//! reason at once.
//!
//! They never decide policy: protection is the diff's own test ([`crate::diff::protection_of`])
//! run against the policy as it is *now* and the live inventory, so a plan file edited by hand
//! cannot reach a principal the policy or lapse protects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use lapse_sdk::{
    Action, ActionKind, Cloud, Grant, GrantKind, Principal, ScopeId, Snapshot, Timestamp, Via,
};

use crate::catalog::{Classifier, HeldRole, holder_slot, is_last_holder_guarded};
use crate::diff::{OwnIdentities, PrincipalRef, grant_protected_by, human_duration, protection_of};
use crate::plan::{Plan, target_digest};
use crate::policy::{Policy, RuleAction, RuleSubject, Target};

/// How far a plan's `now` may lie ahead of this run's clock (clock skew between machines).
const FUTURE_SKEW_SECONDS: i64 = 300;

/// Which guard refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guard {
    /// The plan file does not hold together (a record edited without its digest).
    PlanIntegrity,
    /// The plan is older than `--max-plan-age`, or made for a future instant.
    PlanAge,
    /// The policy changed since the plan was made.
    PolicyChanged,
    /// The policy declares nothing.
    EmptyPolicy,
    /// More actions than `--max-revocations`.
    Cap,
    /// A scope the policy does not name, or that cannot be read now.
    Account,
    /// A protected principal or grant.
    Protected,
    /// A principal or a scope would lose all of its access.
    StripsAll,
    /// The last holder of an entitlement that must keep one.
    LastHolder,
    /// An irreversible action the policy does not opt in to.
    Irreversible,
    /// No provider for a cloud in the plan.
    Provider,
    /// The operator did not confirm.
    Confirmation,
}

impl Guard {
    /// A short name for messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::PlanIntegrity => "plan integrity",
            Guard::PlanAge => "plan age",
            Guard::PolicyChanged => "policy changed",
            Guard::EmptyPolicy => "empty policy",
            Guard::Cap => "revocation cap",
            Guard::Account => "account guard",
            Guard::Protected => "protected",
            Guard::StripsAll => "strips all access",
            Guard::LastHolder => "last holder",
            Guard::Irreversible => "irreversible",
            Guard::Provider => "provider",
            Guard::Confirmation => "confirmation",
        }
    }
}

/// One guard's refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The guard.
    pub guard: Guard,
    /// Why, and what to do.
    pub message: String,
}

/// Every refusal of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusals(pub Vec<Refusal>);

impl fmt::Display for Refusals {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, refusal) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str("\n")?;
            }
            write!(
                formatter,
                "  {}: {}",
                refusal.guard.as_str(),
                refusal.message
            )?;
        }
        Ok(())
    }
}

/// The limits an operator sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    /// The most actions a plan may hold (`0`: none at all).
    pub max_revocations: usize,
    /// The oldest a plan may be, in seconds, measured from its `now`.
    pub max_plan_age_seconds: i64,
    /// Allow a plan that leaves a principal or a scope with no access at all.
    pub allow_strip_all: bool,
    /// Allow a plan from a policy that declares nothing.
    pub allow_empty_policy: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_revocations: 10,
            max_plan_age_seconds: 24 * 3_600,
            allow_strip_all: false,
            allow_empty_policy: false,
        }
    }
}

/// Everything the guards look at.
#[derive(Clone, Copy, Debug)]
pub struct GuardInput<'a> {
    /// The plan to carry out.
    pub plan: &'a Plan,
    /// The policy as it is now.
    pub policy: &'a Policy,
    /// The scopes the plan changes, read live just now.
    pub live: &'a Snapshot,
    /// The limits.
    pub settings: &'a GuardSettings,
    /// This run's time: `--now`, else the clock.
    pub now: Timestamp,
    /// The clock when this run started, whatever `--now` says: a plan's real age is measured
    /// against it, so `--now` cannot make an old plan young.
    pub wall_clock: Timestamp,
}

/// Runs every guard. An empty result means the plan may be carried out.
#[must_use]
pub fn check(input: &GuardInput<'_>) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    integrity(input, &mut refusals);
    age(input, &mut refusals);
    if input.plan.actions.is_empty() {
        return refusals;
    }
    policy_changed(input, &mut refusals);
    empty_policy(input, &mut refusals);
    cap(input, &mut refusals);
    account(input, &mut refusals);
    protection(input, &mut refusals);
    strips_all(input, &mut refusals);
    last_holder(input, &mut refusals);
    irreversible(input, &mut refusals);
    refusals
}

fn refuse(refusals: &mut Vec<Refusal>, guard: Guard, message: String) {
    refusals.push(Refusal { guard, message });
}

/// The principal an action changes.
#[must_use]
pub fn principal_of(action: &Action) -> &str {
    match action {
        Action::RevokeGrant { grant } => grant.principal.as_str(),
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            credential.principal.as_str()
        }
        Action::DisablePrincipal { principal } => principal.id.as_str(),
    }
}

fn integrity(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let mut sequences = HashSet::new();
    for change in &input.plan.actions {
        if !sequences.insert(change.sequence) {
            refuse(
                refusals,
                Guard::PlanIntegrity,
                format!(
                    "sequence number {} appears twice: the plan file was edited; plan again",
                    change.sequence
                ),
            );
        }
        if target_digest(&change.action, change.principal_unique_id.as_deref())
            != change.target_digest
        {
            refuse(
                refusals,
                Guard::PlanIntegrity,
                format!(
                    "action #{} ({}) does not match its target digest: the plan file was edited after it was made; plan again",
                    change.sequence,
                    change.action.target_id()
                ),
            );
        }
        if change.reversible != change.action.kind().is_reversible() {
            refuse(
                refusals,
                Guard::PlanIntegrity,
                format!(
                    "action #{} is marked {} but a {} is {}: the plan file was edited; plan again",
                    change.sequence,
                    if change.reversible {
                        "reversible"
                    } else {
                        "irreversible"
                    },
                    change.action.kind().as_str(),
                    if change.action.kind().is_reversible() {
                        "reversible"
                    } else {
                        "not"
                    }
                ),
            );
        }
    }
}

fn age(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let before = refusals.len();
    judged_instant(input, refusals);
    // One reason is enough: a plan judging a stale instant is also an old plan.
    if refusals.len() == before {
        real_age(input, refusals);
    }
}

/// The plan's real age, by the clock: from when it was made (`made.at`, the clock of the run
/// that made it), else from the instant it judged. `--now` moves the instant a run judges, and
/// `apply --now` is given the plan's own, so without this an old plan replayed with its `--now`
/// would always look fresh.
fn real_age(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let (made, source) = match &input.plan.made {
        Some(made) => (made.at, "made"),
        None => (input.plan.now, "made for"),
    };
    // Without --now and without provenance this is the judged-instant check again.
    if made == input.plan.now && input.wall_clock == input.now {
        return;
    }
    let age = input.wall_clock.seconds_since(made);
    let limit = input.settings.max_plan_age_seconds;
    if age > limit {
        refuse(
            refusals,
            Guard::PlanAge,
            format!(
                "the plan was {source} {made}, {} ago by the clock, older than the {} limit (--now sets the instant a run judges, not the plan's age): what it saw may have changed; plan again, or pass --max-plan-age {} after reviewing it",
                human_duration(age),
                human_duration(limit),
                human_duration(age + 3_600)
            ),
        );
    } else if age < -FUTURE_SKEW_SECONDS {
        refuse(
            refusals,
            Guard::PlanAge,
            format!(
                "the plan was {source} {made}, after this run's clock {} (--now sets the instant a run judges, not the clock): a plan made with --now carries when it was made only when saved with `plan --out`; save it that way, or plan again",
                input.wall_clock
            ),
        );
    }
}

/// The instant the plan judged, against this run's (`--now`, else the clock).
fn judged_instant(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let age = input.now.seconds_since(input.plan.now);
    let limit = input.settings.max_plan_age_seconds;
    if age > limit {
        refuse(
            refusals,
            Guard::PlanAge,
            format!(
                "the plan was made for {} ({} ago), older than the {} limit: what it saw may have changed; plan again, or pass --max-plan-age {} after reviewing it",
                input.plan.now,
                human_duration(age),
                human_duration(limit),
                human_duration(age + 3_600)
            ),
        );
    } else if age < -FUTURE_SKEW_SECONDS {
        refuse(
            refusals,
            Guard::PlanAge,
            format!(
                "the plan judges the estate as of {}, after this run's time {}: a plan for a future instant revokes what is still allowed today; plan without --now, or give apply the same --now",
                input.plan.now, input.now
            ),
        );
    }
}

/// A plan is a set of decisions the policy made; if the policy has changed since (a grant
/// declared, a rule relaxed), those decisions were not reviewed against it.
fn policy_changed(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    if input.plan.policy.digest != input.policy.digest {
        refuse(
            refusals,
            Guard::PolicyChanged,
            format!(
                "the policy changed since the plan was made (plan {}, now {}): a grant declared or a rule changed since would not be honoured; plan again with the current policy",
                input.plan.policy.digest, input.policy.digest
            ),
        );
    }
}

fn empty_policy(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    if input.policy.is_empty() && !input.settings.allow_empty_policy {
        refuse(
            refusals,
            Guard::EmptyPolicy,
            "the policy declares no grants and has no rules or protect entries, so every undeclared privilege would be revoked: declare today's estate first (`lapse init`), or pass --allow-empty-policy if that is really meant".to_owned(),
        );
    }
}

fn cap(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let count = input.plan.actions.len();
    let limit = input.settings.max_revocations;
    if count > limit {
        refuse(
            refusals,
            Guard::Cap,
            format!(
                "the plan holds {count} revocation(s), more than --max-revocations {limit}; nothing is truncated: review the plan, then raise the cap with --max-revocations {count}"
            ),
        );
    }
}

/// True when the policy's `scopes` name this scope.
#[must_use]
pub fn scope_is_named(policy: &Policy, scope: &ScopeId) -> bool {
    let id = scope.as_str();
    if let Some(account) = id.strip_prefix("aws:") {
        return policy
            .scopes
            .aws
            .iter()
            .any(|entry| entry.account == account);
    }
    if let Some(path) = id.strip_prefix("azure:") {
        let path = path.trim_start_matches('/');
        return policy.scopes.azure.iter().any(|entry| {
            if let Some(subscription) = path.strip_prefix("subscriptions/") {
                let subscription = subscription.split('/').next().unwrap_or(subscription);
                entry
                    .subscriptions
                    .iter()
                    .any(|named| named == "*" || named.eq_ignore_ascii_case(subscription))
            } else {
                path.strip_prefix("tenants/")
                    .is_some_and(|tenant| tenant.eq_ignore_ascii_case(&entry.tenant))
            }
        });
    }
    if let Some(path) = id.strip_prefix("gcp:") {
        return policy.scopes.gcp.iter().any(|entry| {
            let named = [
                entry.project.as_ref().map(|id| format!("projects/{id}")),
                entry.folder.as_ref().map(|id| format!("folders/{id}")),
                entry
                    .organization
                    .as_ref()
                    .map(|id| format!("organizations/{id}")),
            ];
            named.iter().flatten().any(|named| named == path)
        });
    }
    false
}

fn account(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let scopes: BTreeSet<&ScopeId> = input
        .plan
        .actions
        .iter()
        .map(|change| change.action.scope())
        .collect();
    for scope in scopes {
        if !scope_is_named(input.policy, scope) {
            refuse(
                refusals,
                Guard::Account,
                format!(
                    "the plan changes {scope}, which the policy's `scopes` do not name: lapse acts only in scopes the policy names; add it there if it is meant"
                ),
            );
            continue;
        }
        match input.live.scopes.iter().find(|live| &live.id == scope) {
            None => refuse(
                refusals,
                Guard::Account,
                format!(
                    "{scope} could not be read with the credentials of this run: check they belong to that account, subscription or project"
                ),
            ),
            Some(live) if !live.complete || live.caller.is_none() => {
                let errors: Vec<String> = live
                    .errors
                    .iter()
                    .map(|error| format!("{}: {}", error.operation, error.message))
                    .collect();
                refuse(
                    refusals,
                    Guard::Account,
                    format!(
                        "{scope} could not be read completely with the credentials of this run ({}): lapse changes only what it can see whole",
                        if errors.is_empty() {
                            "no caller identity".to_owned()
                        } else {
                            errors.join("; ")
                        }
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

fn protection(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    // lapse's own identity in all its forms, as the plan saw it and as it is now (apply often
    // runs as another role than plan).
    let own = OwnIdentities::of_scopes(input.plan.scopes.iter().chain(&input.live.scopes));
    let principals: HashMap<&str, &Principal> = input
        .live
        .principals
        .iter()
        .map(|principal| (principal.id.as_str(), principal))
        .collect();
    let classifier = Classifier::new(input.policy);
    for change in &input.plan.actions {
        let action = &change.action;
        let id = principal_of(action);
        let record = principals.get(id).copied().or(match action {
            Action::DisablePrincipal { principal } => Some(principal),
            _ => None,
        });
        let mut reasons = Vec::new();
        if let Some(found) = protection_of(
            input.policy,
            &own,
            PrincipalRef {
                id,
                cloud: action.cloud(),
                scope: action.scope(),
                principal: record,
            },
        ) {
            reasons.push(match found.origin {
                Some(origin) => format!("{} ({}:{})", found.reason, origin.file, origin.line),
                None => found.reason,
            });
        }
        match action {
            Action::RevokeGrant { grant } => {
                let target = Target::grant(grant, record, classifier.is_privileged(grant));
                if let Some(entry) = grant_protected_by(input.policy, &target) {
                    reasons.push(format!(
                        "grant protected by policy ({}:{})",
                        entry.origin.file, entry.origin.line
                    ));
                }
            }
            Action::DeactivateCredential { credential }
            | Action::DeleteCredential { credential } => {
                let live_managed = input
                    .live
                    .credentials
                    .iter()
                    .any(|live| live.id == credential.id && live.cloud_managed);
                if credential.cloud_managed || live_managed {
                    reasons.push("built-in: a key managed by the cloud provider".to_owned());
                }
            }
            Action::DisablePrincipal { .. } => {}
        }
        if !reasons.is_empty() {
            refuse(
                refusals,
                Guard::Protected,
                format!(
                    "action #{} ({} of {}) targets a protected principal: {}; a plan never holds one, so the plan file was edited or the policy changed since: plan again",
                    change.sequence,
                    action.kind().as_str(),
                    id,
                    reasons.join(", ")
                ),
            );
        }
    }
}

/// The grants that would survive the plan, per principal and per scope, judged on the live
/// inventory: a principal keeps access while any grant of its own survives (a grant inherited
/// through a group survives while its membership does; one inherited from a parent scope always
/// does).
fn strips_all(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    if input.settings.allow_strip_all {
        return;
    }
    let revoked: HashSet<&str> = input
        .plan
        .actions
        .iter()
        .filter_map(|change| match &change.action {
            Action::RevokeGrant { grant } => Some(grant.id.as_str()),
            _ => None,
        })
        .collect();
    if revoked.is_empty() {
        return;
    }
    let membership_kept = |principal: &str, group: &str| {
        input.live.grants.iter().any(|grant| {
            grant.kind == GrantKind::GroupMembership
                && grant.principal.as_str() == principal
                && grant.entitlement == group
                && !revoked.contains(grant.id.as_str())
        })
    };
    let survives = |grant: &Grant| match &grant.via {
        Via::Direct => !revoked.contains(grant.id.as_str()),
        Via::Group(group) => membership_kept(grant.principal.as_str(), group.as_str()),
        Via::Inherited(_) => true,
    };
    let touched_principals: BTreeSet<&str> = input
        .plan
        .actions
        .iter()
        .filter_map(|change| match &change.action {
            Action::RevokeGrant { grant } => Some(grant.principal.as_str()),
            _ => None,
        })
        .collect();
    for principal in touched_principals {
        let held: Vec<&Grant> = input
            .live
            .grants
            .iter()
            .filter(|grant| grant.principal.as_str() == principal)
            .collect();
        if !held.is_empty() && !held.iter().any(|grant| survives(grant)) {
            refuse(
                refusals,
                Guard::StripsAll,
                format!(
                    "the plan revokes every grant {principal} holds ({}): an identity left with no access at all is offboarding, not hygiene; do that on purpose, or pass --allow-strip-all after review",
                    held.len()
                ),
            );
        }
    }
    let mut by_scope: BTreeMap<&ScopeId, (usize, usize)> = BTreeMap::new();
    for grant in &input.live.grants {
        let entry = by_scope.entry(&grant.scope).or_default();
        entry.0 += 1;
        if survives(grant) {
            entry.1 += 1;
        }
    }
    let touched_scopes: BTreeSet<&ScopeId> = input
        .plan
        .actions
        .iter()
        .filter(|change| change.action.kind() == ActionKind::RevokeGrant)
        .map(|change| change.action.scope())
        .collect();
    for scope in touched_scopes {
        if let Some((total, 0)) = by_scope.get(scope).copied() {
            refuse(
                refusals,
                Guard::StripsAll,
                format!(
                    "the plan revokes all {total} grant(s) of {scope}: nobody would be left with access to it; pass --allow-strip-all after review if that is really meant"
                ),
            );
        }
    }
}

/// The plan already holds these back; a hand-edited plan might not, and the live inventory
/// may have lost a holder since. Holders are counted per role definition id and resource; a
/// revocation whose grant carries no role id cannot be counted against the others and is
/// refused.
fn last_holder(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let revoking: Vec<&Grant> = input
        .plan
        .actions
        .iter()
        .filter_map(|change| match &change.action {
            Action::RevokeGrant { grant } if is_last_holder_guarded(grant) => Some(grant),
            _ => None,
        })
        .collect();
    let revoked: HashSet<&str> = revoking.iter().map(|grant| grant.id.as_str()).collect();
    let mut reported = HashSet::new();
    for grant in revoking {
        let slot = holder_slot(grant);
        if let HeldRole::Name(name) = &slot.role {
            refuse(
                refusals,
                Guard::LastHolder,
                format!(
                    "{} revokes {name} on {}, which must keep a holder, and carries no role definition id to count the other holders by: plan again from a reading that has it",
                    grant.id, grant.resource
                ),
            );
            continue;
        }
        let remaining = input
            .live
            .grants
            .iter()
            .filter(|live| {
                is_last_holder_guarded(live)
                    && live.kind != GrantKind::PimEligible
                    && holder_slot(live) == slot
                    && !revoked.contains(live.id.as_str())
            })
            .count();
        if remaining == 0 && reported.insert(slot) {
            refuse(
                refusals,
                Guard::LastHolder,
                format!(
                    "the plan would leave {} with no {}: declare a holder first",
                    grant.resource, grant.entitlement
                ),
            );
        }
    }
}

/// True when a credential rule of the policy opts this credential in to deletion (`action:
/// delete`, or `delete_after` for a deactivated key).
#[must_use]
pub fn deletion_opted_in(
    policy: &Policy,
    credential: &lapse_sdk::Credential,
    principal: Option<&Principal>,
) -> bool {
    let target = Target::credential(credential, principal);
    policy.rules.iter().any(|rule| {
        rule.subject == RuleSubject::Credentials
            && (rule.action == RuleAction::Delete
                || (rule.delete_after.is_some() && rule.action != RuleAction::Report))
            && rule.selector.matches(&target)
    })
}

fn irreversible(input: &GuardInput<'_>, refusals: &mut Vec<Refusal>) {
    let principals: HashMap<&str, &Principal> = input
        .live
        .principals
        .iter()
        .map(|principal| (principal.id.as_str(), principal))
        .collect();
    for change in &input.plan.actions {
        if let Action::DeleteCredential { credential } = &change.action
            && !deletion_opted_in(
                input.policy,
                credential,
                principals.get(credential.principal.as_str()).copied(),
            )
        {
            refuse(
                refusals,
                Guard::Irreversible,
                format!(
                    "action #{} deletes {} ({}), which cannot be undone, and no credential rule of the policy opts in to deletion (`action: delete`, or `delete_after`)",
                    change.sequence,
                    credential.id,
                    credential.kind.as_str()
                ),
            );
        }
    }
}

/// The cloud of every action, for looking up providers.
#[must_use]
pub fn clouds(plan: &Plan) -> BTreeSet<Cloud> {
    plan.actions
        .iter()
        .map(|change| change.action.cloud())
        .collect()
}
