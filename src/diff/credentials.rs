//! Credential hygiene. Every rule that matches a credential applies to it, and each credential
//! is its own subject: two keys of one user are judged apart. A never-used credential is idle
//! since its creation; a credential whose last use the cloud does not report is not judged idle.

use lapse_sdk::{ActionKind, Credential, CredentialKind, CredentialStatus, PrincipalKind, Usage};

use super::{Context, finding, human_duration};
use crate::finding::{
    Age, AgeSource, Decider, Evidence, Finding, FindingKind, PlannedAction, Severity, Subject,
    SubjectType,
};
use crate::policy::{RuleAction, RuleSubject, Target};

pub(crate) enum Outcome {
    Protected,
    Findings(Vec<Finding>),
}

/// One set of limits to check a credential against.
struct Limits {
    decider_age: Decider,
    decider_idle: Decider,
    max_age: Option<i64>,
    max_idle: Option<i64>,
    action: PlannedAction,
    severity: Option<Severity>,
}

/// Kinds the `defaults` apply to: secrets and keys. Console passwords and federated
/// credentials are only judged by rules that name them.
fn defaults_apply_to(kind: CredentialKind) -> bool {
    kind.is_static_secret()
        || matches!(
            kind,
            CredentialKind::AwsSigningCertificate | CredentialKind::AwsSshKey
        )
}

pub(crate) fn evaluate(context: &Context<'_>, credential: &Credential) -> Outcome {
    let principal = context.principal(credential.principal.as_str());
    if credential.cloud_managed
        || context
            .protection
            .contains_key(credential.principal.as_str())
    {
        return Outcome::Protected;
    }
    // Deactivated: only a deletion after its grace period is left to plan.
    if credential.status == CredentialStatus::Inactive {
        return Outcome::Findings(
            deletion(context, credential, principal)
                .into_iter()
                .collect(),
        );
    }
    // Expired by itself: nothing left to do with it now.
    if credential
        .expires_at
        .is_some_and(|expires_at| expires_at <= context.now)
    {
        return Outcome::Findings(Vec::new());
    }
    let target = Target::credential(credential, principal);
    let mut limits: Vec<Limits> = context
        .policy
        .rules
        .iter()
        .filter(|rule| rule.subject == RuleSubject::Credentials && rule.selector.matches(&target))
        .map(|rule| {
            let decider = Decider::Rule {
                id: rule.id.clone(),
                origin: rule.origin.clone(),
            };
            Limits {
                decider_age: decider.clone(),
                decider_idle: decider,
                max_age: rule.max_age.map(|limit| limit.seconds()),
                max_idle: rule.max_idle.map(|limit| limit.seconds()),
                action: match rule.action {
                    RuleAction::Report => PlannedAction::report(),
                    RuleAction::Delete => PlannedAction::act(ActionKind::DeleteCredential),
                    _ => deactivation(credential.kind),
                },
                severity: rule.severity,
            }
        })
        .collect();
    let defaults = &context.policy.defaults;
    if limits.is_empty() && defaults_apply_to(credential.kind) {
        let default_decider =
            |key: &str, origin: Option<&crate::policy::Origin>| Decider::Default {
                key: key.to_owned(),
                origin: origin.cloned(),
            };
        limits.push(Limits {
            decider_age: default_decider(
                "credential_max_age",
                defaults
                    .credential_max_age
                    .as_ref()
                    .map(|value| &value.origin),
            ),
            decider_idle: default_decider(
                "credential_max_idle",
                defaults
                    .credential_max_idle
                    .as_ref()
                    .map(|value| &value.origin),
            ),
            max_age: defaults
                .credential_max_age
                .as_ref()
                .map(|value| value.value.seconds()),
            max_idle: defaults
                .credential_max_idle
                .as_ref()
                .map(|value| value.value.seconds()),
            action: deactivation(credential.kind),
            severity: None,
        });
    }

    let draft = Draft {
        credential,
        principal_name: principal.and_then(|principal| principal.display_name.clone()),
        age: credential
            .created_at
            .map_or_else(Age::unknown, |created_at| {
                Age::between(created_at, context.now, AgeSource::Cloud)
            }),
    };
    let idle_since = match credential.last_used {
        Usage::At(at) => Some(at),
        Usage::Never => credential.created_at,
        Usage::Unknown => None,
    };
    let idle_seconds = idle_since.map(|since| context.now.seconds_since(since));

    let mut findings = Vec::new();
    for limit in limits {
        if let (Some(max_age), Some(age)) = (limit.max_age, draft.age.seconds)
            && age > max_age
        {
            findings.push(draft.finish(
                FindingKind::CredentialTooOld,
                limit.severity,
                limit.decider_age,
                limit.action.clone(),
                Some(max_age),
                idle_seconds,
                format!(
                    "created {} ago, limit {}",
                    human_duration(age),
                    human_duration(max_age)
                ),
            ));
        }
        if let (Some(max_idle), Some(idle)) = (limit.max_idle, idle_seconds)
            && idle > max_idle
        {
            let how = match credential.last_used {
                Usage::Never => format!(
                    "never used since it was created {} ago",
                    human_duration(idle)
                ),
                _ => format!("last used {} ago", human_duration(idle)),
            };
            findings.push(draft.finish(
                FindingKind::CredentialIdle,
                limit.severity,
                limit.decider_idle,
                limit.action,
                Some(max_idle),
                idle_seconds,
                format!("{how}, limit {}", human_duration(max_idle)),
            ));
        }
    }
    if credential.kind.is_static_secret()
        && principal.is_some_and(|principal| {
            principal.kind == PrincipalKind::Workload && principal.federation_available
        })
    {
        findings.push(draft.finish(
            FindingKind::StaticCredential,
            None,
            Decider::Builtin {
                reason: "long-lived secret where federation is available".to_owned(),
            },
            PlannedAction::report(),
            None,
            idle_seconds,
            format!(
                "a {} on a workload that can authenticate by federation",
                credential.kind
            ),
        ));
    }
    Outcome::Findings(findings)
}

/// Deactivation, where the credential kind has one. An AWS console password and an Entra
/// client secret or certificate have none (only removal, which cannot be undone): they are held
/// until a rule opts in with `action: delete`. An Entra federated credential is "deactivated" by
/// deleting it, which is reversible: its whole body is journaled and re-created on undo.
fn deactivation(kind: CredentialKind) -> PlannedAction {
    let held = match kind {
        CredentialKind::AwsConsolePassword => {
            "a console password cannot be deactivated, only deleted (irreversible): opt in with `action: delete` on a rule that matches it"
        }
        CredentialKind::AzurePassword => {
            "an Entra client secret cannot be deactivated, only removed (irreversible): opt in with `action: delete` on a rule that matches it"
        }
        CredentialKind::AzureCertificate => {
            "an Entra certificate credential cannot be deactivated, only removed (irreversible): opt in with `action: delete` on a rule that matches it"
        }
        _ => return PlannedAction::act(ActionKind::DeactivateCredential),
    };
    PlannedAction::held(ActionKind::DeactivateCredential, held)
}

/// A credential lapse deactivated that stayed inactive for a matching rule's `delete_after`:
/// its deletion is planned, as its own later step (irreversible; `delete_after` is the opt-in).
fn deletion(
    context: &Context<'_>,
    credential: &Credential,
    principal: Option<&lapse_sdk::Principal>,
) -> Option<Finding> {
    let deactivated_at = *context.memory.deactivated.get(&credential.id)?;
    let target = Target::credential(credential, principal);
    let (rule, grace) = context.policy.rules.iter().find_map(|rule| {
        let grace = rule.delete_after?;
        (rule.subject == RuleSubject::Credentials
            && rule.action != RuleAction::Report
            && rule.selector.matches(&target))
        .then_some((rule, grace.seconds()))
    })?;
    let inactive = context.now.seconds_since(deactivated_at);
    if inactive < grace {
        return None;
    }
    let draft = Draft {
        credential,
        principal_name: principal.and_then(|principal| principal.display_name.clone()),
        age: credential
            .created_at
            .map_or_else(Age::unknown, |created_at| {
                Age::between(created_at, context.now, AgeSource::Cloud)
            }),
    };
    Some(draft.finish(
        FindingKind::CredentialIdle,
        rule.severity,
        Decider::Rule {
            id: rule.id.clone(),
            origin: rule.origin.clone(),
        },
        PlannedAction::act(ActionKind::DeleteCredential),
        Some(grace),
        Some(inactive),
        format!(
            "deactivated by lapse {} ago ({deactivated_at}) and inactive since, past delete_after {}: delete",
            human_duration(inactive),
            human_duration(grace)
        ),
    ))
}

struct Draft<'c> {
    credential: &'c Credential,
    principal_name: Option<String>,
    age: Age,
}

impl Draft<'_> {
    #[allow(clippy::too_many_arguments)] // one call shape for every credential finding
    fn finish(
        &self,
        kind: FindingKind,
        severity: Option<Severity>,
        decided_by: Decider,
        action: PlannedAction,
        limit_seconds: Option<i64>,
        idle_seconds: Option<i64>,
        summary: String,
    ) -> Finding {
        let credential = self.credential;
        let subject = Subject {
            subject_type: SubjectType::Credential,
            id: credential.id.0.clone(),
            principal: credential.principal.clone(),
            principal_name: self.principal_name.clone(),
            owner: None,
            cloud: Some(credential.cloud),
            scope: Some(credential.scope.clone()),
            entitlement: None,
            resource: None,
            credential_kind: Some(credential.kind),
        };
        let evidence = Evidence {
            decided_by,
            age: Some(self.age),
            last_used: Some(credential.last_used),
            idle_seconds,
            limit_seconds,
            expired_at: None,
            privileged: false,
            via: None,
            summary,
        };
        finding(
            kind,
            severity.unwrap_or_else(|| kind.default_severity()),
            subject,
            evidence,
            action,
        )
    }
}
