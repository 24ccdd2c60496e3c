//! The decision order for a grant (first match wins):
//!
//! 1. protected: no finding;
//! 2. its own expiry has passed: `expired-binding`;
//! 3. declared: `declared-grant-expired`, `ttl-exceeded` or compliant;
//! 4. undeclared under a TTL rule: compliant, `ttl-exceeded`, or held when the age is unknown;
//! 5. undeclared, no TTL rule: `standing-privilege` (privileged) or `undeclared-grant`.

use std::sync::atomic::Ordering;

use lapse_sdk::{ActionKind, Cloud, Grant, GrantKind, Snapshot, Via};

use super::{Context, finding, human_duration, policy_time};
use crate::finding::{
    Age, AgeSource, Decider, Evidence, Finding, FindingKind, PlannedAction, Severity, Subject,
    SubjectType,
};
use crate::policy::{DeclaredGrant, RuleAction, RuleSubject, Target, UnknownAge};

/// What became of one grant.
pub(crate) enum Verdict {
    Protected,
    Compliant,
    Finding(Box<Finding>),
}

pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) privileged: bool,
}

/// Judges one grant.
pub(crate) fn evaluate(context: &Context<'_>, grant: &Grant) -> Outcome {
    let principal = context.principal(grant.principal.as_str());
    let privileged = context.classifier.is_privileged(grant)
        || (grant.kind == GrantKind::GroupMembership
            && context
                .privileged_groups
                .contains(grant.entitlement.as_str()));
    let verdict = decide(context, grant, principal, privileged);
    Outcome {
        verdict,
        privileged,
    }
}

fn decide(
    context: &Context<'_>,
    grant: &Grant,
    principal: Option<&lapse_sdk::Principal>,
    privileged: bool,
) -> Verdict {
    let now = context.now;
    let target = Target::grant(grant, principal, privileged);

    let declared = declared_match(context, grant, &target);

    // 1. Protected principal, or a protect entry that names this grant. (Its declaration, if
    // any, was still found above: a protected grant is not missing.)
    if context.protection.contains_key(grant.principal.as_str())
        || super::grant_protected_by(context.policy, &target).is_some()
    {
        return Verdict::Protected;
    }

    let age = grant_age(context, grant);
    let draft = Draft {
        grant,
        principal_name: principal.and_then(|principal| principal.display_name.clone()),
        privileged,
        age,
    };

    // 2. Its own expiry has passed but it is still there.
    if let Some(expired_at) = grant.expires_at
        && expired_at <= now
    {
        let source = grant
            .expiry_source
            .map_or("its expiry", |source| match source {
                lapse_sdk::ExpirySource::Pim => "its PIM schedule",
                lapse_sdk::ExpirySource::Condition => "its IAM condition",
                lapse_sdk::ExpirySource::Tag => "its expiry tag",
            });
        let summary = format!(
            "{} ended {} ago ({expired_at}) by {source}, but the grant is still present",
            grant.entitlement,
            human_duration(now.seconds_since(expired_at))
        );
        return draft.finish(
            FindingKind::ExpiredBinding,
            FindingKind::ExpiredBinding.default_severity(),
            Decider::Builtin {
                reason: "own expiry passed".to_owned(),
            },
            draft.revoke(),
            Some(expired_at),
            None,
            summary,
        );
    }

    // 3. Declared.
    if let Some(declared) = declared {
        let decider = Decider::Declared {
            origin: declared.origin.clone(),
        };
        if let Some(expires) = declared.expires
            && expires <= now
        {
            let summary = format!(
                "declared until {}{}, expired {} ago",
                policy_time(expires),
                evidence_suffix(declared),
                human_duration(now.seconds_since(expires))
            );
            let severity = if privileged {
                Severity::High
            } else {
                FindingKind::DeclaredGrantExpired.default_severity()
            };
            return draft.finish(
                FindingKind::DeclaredGrantExpired,
                severity,
                decider,
                draft.revoke(),
                Some(expires),
                None,
                summary,
            );
        }
        // An eligibility is not access: "at most 8h at a time" measures its activations.
        if let Some(max_ttl) = declared.max_ttl
            && grant.kind != GrantKind::PimEligible
            && let Some(seconds) = age.seconds
            && seconds > max_ttl.seconds()
        {
            let summary = format!(
                "declared with max_ttl {max_ttl}, held for {} ({})",
                human_duration(seconds),
                age_source_text(&age)
            );
            let severity = if privileged {
                Severity::High
            } else {
                Severity::Medium
            };
            return draft.finish(
                FindingKind::TtlExceeded,
                severity,
                decider,
                draft.revoke(),
                None,
                Some(max_ttl.seconds()),
                summary,
            );
        }
        return Verdict::Compliant;
    }

    // 4. Undeclared under a TTL rule. Eligibilities are not active access and have no TTL.
    let ttl_rule = context
        .policy
        .rules
        .iter()
        .filter(|_| grant.kind != GrantKind::PimEligible)
        .find(|rule| rule.subject == RuleSubject::Grants && rule.selector.matches(&target));
    if let Some(rule) = ttl_rule
        && let Some(max_ttl) = rule.max_ttl
    {
        let decider = Decider::Rule {
            id: rule.id.clone(),
            origin: rule.origin.clone(),
        };
        let action = match rule.action {
            RuleAction::Report => PlannedAction::report(),
            _ => draft.revoke(),
        };
        // A grant that ends by itself within the window needs no age to be within it.
        let ends_within_window = grant
            .expires_at
            .is_some_and(|expires_at| expires_at.seconds_since(now) <= max_ttl.seconds());
        return match age.seconds {
            Some(seconds) if seconds <= max_ttl.seconds() => Verdict::Compliant,
            None if ends_within_window => Verdict::Compliant,
            Some(seconds) => {
                let summary = format!(
                    "not declared; held for {} ({}), rule `{}` allows {max_ttl}",
                    human_duration(seconds),
                    age_source_text(&age),
                    rule.id
                );
                let severity = rule.severity.unwrap_or(if privileged {
                    Severity::High
                } else {
                    Severity::Medium
                });
                draft.finish(
                    FindingKind::TtlExceeded,
                    severity,
                    decider,
                    action,
                    None,
                    Some(max_ttl.seconds()),
                    summary,
                )
            }
            None => {
                let unknown_age = rule
                    .unknown_age
                    .unwrap_or(context.policy.defaults.unknown_age);
                draft.unknown_age(
                    context,
                    decider,
                    rule.severity,
                    Some(max_ttl.seconds()),
                    unknown_age,
                    action,
                )
            }
        };
    }

    // 5. Undeclared, no TTL rule.
    if privileged && grant.kind != GrantKind::PimEligible {
        let standing_action = match context.policy.defaults.standing_privilege {
            RuleAction::Report => PlannedAction::report(),
            _ => draft.revoke(),
        };
        let window = context.policy.defaults.grant_max_ttl.as_ref();
        let decider = match window {
            Some(window) => Decider::Default {
                key: "grant_max_ttl".to_owned(),
                origin: Some(window.origin.clone()),
            },
            None => Decider::Builtin {
                reason: "privileged and not declared".to_owned(),
            },
        };
        // A grant with its own future expiry is time-bound, not standing, unless it outlives
        // the just-in-time window.
        if let Some(expires_at) = grant.expires_at {
            let outlives_window = window.is_some_and(|window| {
                let start = grant.created_at.unwrap_or(context.now);
                expires_at.seconds_since(start) > window.value.seconds()
            });
            if !outlives_window {
                return Verdict::Compliant;
            }
            let summary = format!(
                "privileged, not declared, and time-bound only until {expires_at}, longer than the {} window",
                window
                    .map(|window| window.value.to_string())
                    .unwrap_or_default()
            );
            return draft.finish(
                FindingKind::StandingPrivilege,
                Severity::High,
                decider,
                standing_action.clone(),
                None,
                window.map(|window| window.value.seconds()),
                summary,
            );
        }
        if let Some(window) = window {
            return match age.seconds {
                Some(seconds) if seconds <= window.value.seconds() => Verdict::Compliant,
                Some(seconds) => {
                    let summary = format!(
                        "privileged, not declared, no expiry; held for {} ({}), beyond the {} just-in-time window",
                        human_duration(seconds),
                        age_source_text(&age),
                        window.value
                    );
                    draft.finish(
                        FindingKind::StandingPrivilege,
                        Severity::High,
                        decider,
                        standing_action.clone(),
                        None,
                        Some(window.value.seconds()),
                        summary,
                    )
                }
                None => draft.unknown_age(
                    context,
                    decider,
                    None,
                    Some(window.value.seconds()),
                    context.policy.defaults.unknown_age,
                    standing_action.clone(),
                ),
            };
        }
        let summary = format!("privileged, not declared, no expiry{}", age_clause(&age));
        return draft.finish(
            FindingKind::StandingPrivilege,
            Severity::High,
            decider,
            standing_action.clone(),
            None,
            None,
            summary,
        );
    }
    let summary = if grant.kind == GrantKind::PimEligible {
        format!("eligible (not active) and not declared{}", age_clause(&age))
    } else {
        format!("not declared{}", age_clause(&age))
    };
    draft.finish(
        FindingKind::UndeclaredGrant,
        FindingKind::UndeclaredGrant.default_severity(),
        Decider::Builtin {
            reason: "not declared".to_owned(),
        },
        PlannedAction::report(),
        None,
        None,
        summary,
    )
}

/// The declaration that decides the grant: the first current one that covers it, else the
/// first expired one.
fn declared_match<'p>(
    context: &'p Context<'_>,
    grant: &Grant,
    target: &Target<'_>,
) -> Option<&'p DeclaredGrant> {
    let mut candidates: Vec<usize> = Vec::new();
    let mut add = |key: &str| {
        if let Some(indexes) = context.declared_by_principal.get(key) {
            candidates.extend_from_slice(indexes);
        }
    };
    add(grant.principal.as_str());
    if let Some((_, bare)) = grant.principal.as_str().split_once(':')
        && grant.cloud == Cloud::Gcp
    {
        add(bare);
    }
    if let Some(name) = target
        .principal
        .and_then(|principal| principal.display_name.as_deref())
    {
        add(name);
    }
    if let Some(indexes) = context
        .declared_globs_by_principal
        .get(grant.principal.as_str())
    {
        candidates.extend_from_slice(indexes);
    }
    candidates.sort_unstable();
    candidates.dedup();
    // A renewal is often a new entry beside the lapsed one: a current declaration wins over an
    // expired one, whatever their order. Every covering declaration counts as found.
    let mut chosen: Option<&DeclaredGrant> = None;
    for index in candidates {
        let declared = &context.policy.grants[index];
        if !declared_covers(declared, grant, target) {
            continue;
        }
        context.mark_declared_used(index);
        let current = declared.expires.is_none_or(|expires| expires > context.now);
        let chosen_is_current =
            chosen.is_some_and(|chosen| chosen.expires.is_none_or(|expires| expires > context.now));
        if chosen.is_none() || (current && !chosen_is_current) {
            chosen = Some(declared);
        }
    }
    chosen
}

fn declared_covers(declared: &DeclaredGrant, grant: &Grant, target: &Target<'_>) -> bool {
    let display_name = target
        .principal
        .and_then(|principal| principal.display_name.as_deref());
    declared.cloud.is_none_or(|cloud| cloud == grant.cloud)
        && declared
            .principal
            .matches_principal(grant.principal.as_str(), display_name)
        && (declared.entitlement.is_match(&grant.entitlement)
            || grant
                .entitlement_id
                .as_deref()
                .is_some_and(|id| declared.entitlement.is_match(id)))
        && declared
            .scope
            .as_ref()
            .is_none_or(|scope| scope.matches_scope(&grant.scope))
        && declared
            .resource
            .as_ref()
            .is_none_or(|resource| resource.is_match(&grant.resource))
}

/// Age from the cloud's own timestamp, else from first sight, else unknown.
fn grant_age(context: &Context<'_>, grant: &Grant) -> Age {
    if let Some(created_at) = grant.created_at {
        return Age::between(created_at, context.now, AgeSource::Cloud);
    }
    if let Some(first_seen) = context.memory.first_seen.get(&grant.id) {
        return Age::between(*first_seen, context.now, AgeSource::FirstSeen);
    }
    Age::unknown()
}

fn age_source_text(age: &Age) -> &'static str {
    match age.source {
        AgeSource::Cloud => "age from the cloud",
        AgeSource::FirstSeen => "age since first seen",
        AgeSource::Unknown => "age unknown",
    }
}

fn age_clause(age: &Age) -> String {
    match age.seconds {
        Some(seconds) => format!(
            "; held for {} ({})",
            human_duration(seconds),
            age_source_text(age)
        ),
        None => "; age unknown".to_owned(),
    }
}

fn evidence_suffix(declared: &DeclaredGrant) -> String {
    let mut parts = Vec::new();
    if let Some(ticket) = &declared.ticket {
        parts.push(format!("ticket {ticket}"));
    }
    if let Some(approved_by) = &declared.approved_by {
        parts.push(format!("approved by {approved_by}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// The parts of a grant finding known before the decision.
struct Draft<'g> {
    grant: &'g Grant,
    principal_name: Option<String>,
    privileged: bool,
    age: Age,
}

impl Draft<'_> {
    /// Revoke, unless the grant is inherited: then the change belongs to its source.
    fn revoke(&self) -> PlannedAction {
        match &self.grant.via {
            Via::Direct => PlannedAction::act(ActionKind::RevokeGrant),
            Via::Group(group) => PlannedAction::held(
                ActionKind::RevokeGrant,
                format!("inherited from group {group}: revoke the group's grant or the membership"),
            ),
            Via::Inherited(from) => PlannedAction::held(
                ActionKind::RevokeGrant,
                format!("inherited from {from}: revoke it where it is granted"),
            ),
        }
    }

    /// A TTL applies but nobody knows how old the grant is: report it, and hold the revocation
    /// unless the policy says `unknown_age: revoke`.
    fn unknown_age(
        &self,
        context: &Context<'_>,
        decider: Decider,
        severity: Option<Severity>,
        limit: Option<i64>,
        unknown_age: UnknownAge,
        action: PlannedAction,
    ) -> Verdict {
        let kind = if self.privileged {
            FindingKind::StandingPrivilege
        } else {
            FindingKind::UndeclaredGrant
        };
        let summary = match context.memory.first_seen.get(&self.grant.id) {
            Some(first_seen) => format!("not declared; age unknown, first seen {first_seen}"),
            None => format!(
                "not declared; age unknown, first seen now ({}): no earlier record",
                context.now
            ),
        };
        let action = match (unknown_age, action.kind) {
            (UnknownAge::Revoke, _) | (_, None) => action,
            (UnknownAge::Hold, Some(kind)) => PlannedAction::held(
                kind,
                "age unknown: revocation waits until a later run knows the age (or set `unknown_age: revoke`)",
            ),
        };
        let severity = severity.unwrap_or_else(|| kind.default_severity());
        self.finish(kind, severity, decider, action, None, limit, summary)
    }

    #[allow(clippy::too_many_arguments)] // one call shape for every grant finding
    fn finish(
        &self,
        kind: FindingKind,
        severity: Severity,
        decided_by: Decider,
        action: PlannedAction,
        expired_at: Option<lapse_sdk::Timestamp>,
        limit_seconds: Option<i64>,
        summary: String,
    ) -> Verdict {
        let grant = self.grant;
        let via = match &grant.via {
            Via::Direct => None,
            Via::Group(group) => Some(format!("group:{group}")),
            Via::Inherited(from) => Some(format!("inherited:{from}")),
        };
        let subject = Subject {
            subject_type: SubjectType::Grant,
            id: grant.id.0.clone(),
            principal: grant.principal.clone(),
            principal_name: self.principal_name.clone(),
            owner: None,
            cloud: Some(grant.cloud),
            scope: Some(grant.scope.clone()),
            entitlement: Some(grant.entitlement.clone()),
            resource: Some(grant.resource.clone()),
            credential_kind: None,
        };
        let evidence = Evidence {
            decided_by,
            age: Some(self.age),
            last_used: None,
            idle_seconds: None,
            limit_seconds,
            expired_at,
            privileged: self.privileged,
            via,
            summary,
        };
        Verdict::Finding(Box::new(finding(kind, severity, subject, evidence, action)))
    }
}

/// Declarations that matched no live grant, judged only where every scope they could live in
/// was read completely: an unreadable scope proves nothing missing.
pub(crate) fn declared_missing(context: &Context<'_>, snapshot: &Snapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, declared) in context.policy.grants.iter().enumerate() {
        if context.declared_used[index].load(Ordering::Relaxed) {
            continue;
        }
        let scopes: Vec<_> = snapshot
            .scopes
            .iter()
            .filter(|scope| declared.cloud.is_none_or(|cloud| cloud == scope.cloud))
            .filter(|scope| {
                declared
                    .scope
                    .as_ref()
                    .is_none_or(|pattern| pattern.matches_scope(&scope.id))
            })
            .collect();
        if scopes.is_empty() || scopes.iter().any(|scope| !scope.complete) {
            continue;
        }
        let subject = Subject {
            subject_type: SubjectType::PolicyEntry,
            id: format!(
                "{} -> {}",
                declared.principal_text, declared.entitlement_text
            ),
            principal: declared.principal_text.as_str().into(),
            principal_name: None,
            owner: declared.owner.clone(),
            cloud: declared.cloud,
            scope: None,
            entitlement: Some(declared.entitlement_text.clone()),
            resource: None,
            credential_kind: None,
        };
        let evidence = Evidence {
            decided_by: Decider::Declared {
                origin: declared.origin.clone(),
            },
            age: None,
            last_used: None,
            idle_seconds: None,
            limit_seconds: None,
            expired_at: None,
            privileged: false,
            via: None,
            summary: format!(
                "declared at {}:{} but not found in {} completely read scope(s)",
                declared.origin.file,
                declared.origin.line,
                scopes.len()
            ),
        };
        findings.push(finding(
            FindingKind::DeclaredMissing,
            FindingKind::DeclaredMissing.default_severity(),
            subject,
            evidence,
            PlannedAction::report(),
        ));
    }
    findings
}
