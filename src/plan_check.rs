//! Whether a saved plan holds together, checked when it is read (by `apply` and by `report`),
//! before anything is read live or rendered: a plan file is an artifact people review and pass
//! around, and an edit that slipped past review must not reach a cloud or a report.
//!
//! Refused: an action whose record no longer matches its `target_digest` (the record was
//! edited), a `reversible` flag that lies, two actions with one sequence number or one target,
//! an action naming a finding the plan does not hold, an action whose record lies outside its
//! scope or in a scope the plan did not read (the rules of [`lapse_sdk::check`]), a finding id
//! used twice, and headline numbers that disagree with the findings (a plan that says its
//! snapshot was complete while a scope was not, or counts fewer findings than it holds).
//!
//! An action added with a correct digest and no finding passes here: it is a well-formed plan
//! entry, and every guard of `apply` (protection, scope, caps) judges it like any other.
//!
//! The guards of `apply` check the same things again on every run (a plan built in memory
//! never passes through here); this check is what keeps an edited file from being rendered as
//! if lapse had written it.

use std::collections::{HashMap, HashSet};

use lapse_sdk::check::{Problem, check_scopes, cut, duplicates};
use lapse_sdk::json_position::JsonPath;
use lapse_sdk::{Action, ActionKind};

use crate::plan::{Plan, target_digest};

/// Every way `plan` disagrees with itself; empty for a plan lapse wrote.
#[must_use]
pub fn check(plan: &Plan) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |path: JsonPath, message: String| {
        problems.push(Problem {
            path,
            message: cut(message),
        });
    };
    let mut scope_problems = Vec::new();
    let scopes = check_scopes(&plan.scopes, "scopes", &mut scope_problems);
    let incomplete = plan.scopes.iter().filter(|scope| !scope.complete).count();
    if plan.snapshot.complete && incomplete > 0 {
        problem(
            JsonPath(vec![]).key("snapshot").key("complete"),
            format!(
                "says the snapshot was complete, but {incomplete} of its scopes were not read completely"
            ),
        );
    }
    let summary = &plan.summary;
    let open = plan
        .findings
        .iter()
        .filter(|finding| finding.is_open())
        .count();
    for (key, said, held) in [
        ("findings", summary.findings, plan.findings.len()),
        ("open", summary.open, open),
        ("waived", summary.waived, plan.findings.len() - open),
    ] {
        if said != held {
            problem(
                JsonPath(vec![]).key("summary").key(key),
                format!("says {said} {key}, but the plan holds {held}"),
            );
        }
    }
    if summary.incomplete_scopes < incomplete {
        problem(
            JsonPath(vec![]).key("summary").key("incomplete_scopes"),
            format!(
                "says {} incomplete scopes, but {incomplete} of its scopes were not read completely",
                summary.incomplete_scopes
            ),
        );
    }

    let finding_ids: HashSet<&str> = plan
        .findings
        .iter()
        .map(|finding| finding.id.as_str())
        .collect();
    let mut sequences: HashMap<usize, usize> = HashMap::new();
    let mut targets: HashMap<(ActionKind, &str), usize> = HashMap::new();
    for (index, change) in plan.actions.iter().enumerate() {
        let path = || JsonPath::element("actions", index);
        let earlier = *sequences.entry(change.sequence).or_insert(index);
        if earlier != index {
            problem(
                path().key("sequence"),
                format!(
                    "sequence number {} is already used by actions[{earlier}]",
                    change.sequence
                ),
            );
        }
        let action = &change.action;
        let earlier = *targets
            .entry((action.kind(), action.target_id()))
            .or_insert(index);
        if earlier != index {
            problem(
                path(),
                format!(
                    "{} of `{}` is already planned by actions[{earlier}]",
                    action.kind().as_str(),
                    action.target_id()
                ),
            );
        }
        if target_digest(action, change.principal_unique_id.as_deref()) != change.target_digest {
            problem(
                path().key("target_digest"),
                format!(
                    "the record of `{}` does not match its target digest: it was edited after the plan was made",
                    action.target_id()
                ),
            );
        }
        if change.reversible != action.kind().is_reversible() {
            problem(
                path().key("reversible"),
                format!(
                    "says reversible: {}, but a {} is {}",
                    change.reversible,
                    action.kind().as_str(),
                    if action.kind().is_reversible() {
                        "reversible"
                    } else {
                        "not reversible"
                    }
                ),
            );
        }
        for finding in &change.finding_ids {
            if !finding_ids.contains(finding.as_str()) {
                problem(
                    path().key("finding_ids"),
                    format!("names finding {finding}, which the plan does not hold"),
                );
            }
        }
        let (key, checked) = match scopes.get(action.scope().as_str()) {
            None => (
                None,
                Err(format!(
                    "its scope `{}` is not among the plan's scopes",
                    action.scope()
                )),
            ),
            Some(shape) => match action {
                Action::RevokeGrant { grant } => (Some("grant"), shape.check_grant(grant)),
                Action::DeactivateCredential { credential }
                | Action::DeleteCredential { credential } => {
                    (Some("credential"), shape.check_credential(credential))
                }
                Action::DisablePrincipal { principal } => {
                    (Some("principal"), shape.check_principal(principal))
                }
            },
        };
        if let Err(message) = checked {
            let record = match key {
                Some(key) => path().key(key),
                None => path(),
            };
            problem(record, message);
        }
    }
    duplicates(
        &plan.findings,
        "findings",
        |finding| finding.id.as_str(),
        &mut problems,
    );
    scope_problems.append(&mut problems);
    scope_problems
}
