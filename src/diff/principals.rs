//! Principal checks: idle identities and non-human identities without an owner.

use lapse_sdk::{ActionKind, Principal, PrincipalKind, Usage};

use super::{Context, finding, human_duration};
use crate::finding::{
    Age, AgeSource, Decider, Evidence, Finding, FindingKind, PlannedAction, Subject, SubjectType,
};
use crate::policy::{RuleAction, RuleSubject, Target};

pub(crate) fn evaluate(context: &Context<'_>, principal: &Principal) -> Vec<Finding> {
    if context.protection.contains_key(principal.id.as_str()) || principal.cloud_managed {
        return Vec::new();
    }
    let mut findings = Vec::new();
    if let Some(finding) = idle(context, principal) {
        findings.push(finding);
    }
    if let Some(finding) = unowned(context, principal) {
        findings.push(finding);
    }
    findings
}

fn idle(context: &Context<'_>, principal: &Principal) -> Option<Finding> {
    if !principal.enabled || principal.kind == PrincipalKind::Group {
        return None;
    }
    let idle_since = match principal.last_activity {
        Usage::At(at) => at,
        Usage::Never => principal.created_at?,
        // The cloud does not say: unknown is never read as idle.
        Usage::Unknown => return None,
    };
    let idle_seconds = context.now.seconds_since(idle_since);
    let target = Target::principal(principal);
    let (decider, max_idle, action, severity) = match context
        .policy
        .rules
        .iter()
        .find(|rule| rule.subject == RuleSubject::Principals && rule.selector.matches(&target))
    {
        Some(rule) => (
            Decider::Rule {
                id: rule.id.clone(),
                origin: rule.origin.clone(),
            },
            rule.max_idle?,
            match rule.action {
                RuleAction::Disable => PlannedAction::act(ActionKind::DisablePrincipal),
                _ => PlannedAction::report(),
            },
            rule.severity,
        ),
        None => {
            let default = context.policy.defaults.principal_max_idle.as_ref()?;
            (
                Decider::Default {
                    key: "principal_max_idle".to_owned(),
                    origin: Some(default.origin.clone()),
                },
                default.value,
                PlannedAction::report(),
                None,
            )
        }
    };
    if idle_seconds <= max_idle.seconds() {
        return None;
    }
    let how = match principal.last_activity {
        Usage::Never => format!(
            "no activity since it was created {} ago",
            human_duration(idle_seconds)
        ),
        _ => format!("last active {} ago", human_duration(idle_seconds)),
    };
    let evidence = Evidence {
        decided_by: decider,
        age: Some(
            principal
                .created_at
                .map_or_else(Age::unknown, |created_at| {
                    Age::between(created_at, context.now, AgeSource::Cloud)
                }),
        ),
        last_used: Some(principal.last_activity),
        idle_seconds: Some(idle_seconds),
        limit_seconds: Some(max_idle.seconds()),
        expired_at: None,
        privileged: false,
        via: None,
        summary: format!("{how}, limit {max_idle}"),
    };
    let kind = FindingKind::PrincipalIdle;
    Some(finding(
        kind,
        severity.unwrap_or_else(|| kind.default_severity()),
        subject(principal),
        evidence,
        action,
    ))
}

fn unowned(context: &Context<'_>, principal: &Principal) -> Option<Finding> {
    if !matches!(
        principal.kind,
        PrincipalKind::Workload | PrincipalKind::Role
    ) {
        return None;
    }
    if owner_of(context, principal).is_some() {
        return None;
    }
    let tags = context.policy.defaults.owner_tags.join(", ");
    let evidence = Evidence {
        decided_by: Decider::Builtin {
            reason: "no owner".to_owned(),
        },
        age: None,
        last_used: None,
        idle_seconds: None,
        limit_seconds: None,
        expired_at: None,
        privileged: false,
        via: None,
        summary: format!(
            "no owner: no tag ({tags}), no `owners` entry, no declared grant with an owner"
        ),
    };
    let kind = FindingKind::Unowned;
    Some(finding(
        kind,
        kind.default_severity(),
        subject(principal),
        evidence,
        PlannedAction::report(),
    ))
}

/// The owner from the cloud, its tags, the policy's `owners`, or a declared grant's `owner`.
pub(crate) fn owner_of<'a>(context: &'a Context<'_>, principal: &'a Principal) -> Option<&'a str> {
    if let Some(owner) = principal.owner.as_deref() {
        return Some(owner);
    }
    let policy = context.policy;
    if let Some(owner) = policy
        .defaults
        .owner_tags
        .iter()
        .find_map(|key| principal.tags.get(key))
    {
        return Some(owner);
    }
    let name = principal.display_name.as_deref();
    if let Some(entry) = policy.owners.iter().find(|entry| {
        entry
            .principal
            .matches_principal(principal.id.as_str(), name)
    }) {
        return Some(&entry.owner);
    }
    policy
        .grants
        .iter()
        .filter(|declared| {
            declared
                .principal
                .matches_principal(principal.id.as_str(), name)
        })
        .find_map(|declared| declared.owner.as_deref())
}

fn subject(principal: &Principal) -> Subject {
    Subject {
        subject_type: SubjectType::Principal,
        id: principal.id.0.clone(),
        principal: principal.id.clone(),
        principal_name: principal.display_name.clone(),
        owner: None,
        cloud: Some(principal.cloud),
        scope: Some(principal.scope.clone()),
        entitlement: None,
        resource: None,
        credential_kind: None,
    }
}
