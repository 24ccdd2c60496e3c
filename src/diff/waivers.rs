//! Exceptions: a valid one waives the findings it names (they stay in the report, marked
//! waived, and are never planned); an expired one waives nothing and is reported itself.

use rayon::prelude::*;

use super::{Context, finding, human_duration, policy_time};
use crate::finding::{
    Decider, Evidence, Finding, FindingKind, PlannedAction, Subject, SubjectType, Waiver,
};
use crate::policy::Exception;

pub(crate) fn apply(context: &Context<'_>, findings: &mut [Finding]) {
    let live: Vec<&Exception> = context
        .policy
        .exceptions
        .iter()
        .filter(|exception| exception.until > context.now)
        .collect();
    if live.is_empty() {
        return;
    }
    findings.par_iter_mut().for_each(|finding| {
        if let Some(exception) = live.iter().find(|exception| covers(exception, finding)) {
            finding.waived = Some(Waiver {
                approved_by: exception.approved_by.clone(),
                until: exception.until,
                reason: exception.reason.clone(),
                ticket: exception.ticket.clone(),
                origin: exception.origin.clone(),
            });
        }
    });
}

fn covers(exception: &Exception, finding: &Finding) -> bool {
    if let Some(rule) = &exception.rule
        && finding.evidence.decided_by.rule_id() != Some(rule.as_str())
    {
        return false;
    }
    if let Some(kind) = exception.kind
        && finding.kind != kind
    {
        return false;
    }
    let subject = &finding.subject;
    if !exception.principal.matches_principal(
        subject.principal.as_str(),
        subject.principal_name.as_deref(),
    ) {
        return false;
    }
    if let Some(entitlement) = &exception.entitlement
        && !subject
            .entitlement
            .as_deref()
            .is_some_and(|value| entitlement.is_match(value))
    {
        return false;
    }
    if let Some(credential) = &exception.credential
        && !(subject.subject_type == SubjectType::Credential && credential.is_match(&subject.id))
    {
        return false;
    }
    true
}

pub(crate) fn expired_exceptions(context: &Context<'_>) -> Vec<Finding> {
    context
        .policy
        .exceptions
        .iter()
        .filter(|exception| exception.until <= context.now)
        .map(|exception| {
            let waived = exception
                .rule
                .as_deref()
                .map(|rule| format!("rule `{rule}`"))
                .or_else(|| exception.kind.map(|kind| format!("`{kind}`")))
                .unwrap_or_default();
            let subject = Subject {
                subject_type: SubjectType::PolicyEntry,
                id: format!("{}#{}", exception.origin.file, exception.origin.path),
                principal: exception.principal_text.as_str().into(),
                principal_name: None,
                owner: None,
                cloud: None,
                scope: None,
                entitlement: None,
                resource: None,
                credential_kind: None,
            };
            let evidence = Evidence {
                decided_by: Decider::Exception {
                    origin: exception.origin.clone(),
                },
                age: None,
                last_used: None,
                idle_seconds: None,
                limit_seconds: None,
                expired_at: Some(exception.until),
                privileged: false,
                via: None,
                summary: format!(
                    "waiver of {waived} approved by {} expired {} ago ({}); reason was: {}",
                    exception.approved_by,
                    human_duration(context.now.seconds_since(exception.until)),
                    policy_time(exception.until),
                    exception.reason
                ),
            };
            let kind = FindingKind::ExceptionExpired;
            finding(
                kind,
                kind.default_severity(),
                subject,
                evidence,
                PlannedAction::report(),
            )
        })
        .collect()
}
