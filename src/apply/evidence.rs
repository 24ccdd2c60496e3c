//! Evidence from a journal: for every revocation, the finding and the policy entry behind it,
//! the approver and ticket where the policy declares them, the state before, when it was done,
//! how it ended and whether the live state showed it. `lapse report --journal FILE` renders it
//! as versioned JSON (`lapse-evidence`, version 1) or Markdown.
//!
//! Built from the journal alone: no plan, policy or cloud is needed to prove what was done.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use lapse_sdk::{ActionKind, Cloud, ScopeId, TargetState, Timestamp};
use serde::Serialize;

use super::journal::{
    FindingEvidence, JournalCommand, JournalContents, Operator, ResultKind, UndoResult,
};
use crate::error::{Error, Result};
use crate::plan::Provenance;

/// The value of `format` in the JSON evidence.
pub const EVIDENCE_FORMAT: &str = "lapse-evidence";
/// Its version.
pub const EVIDENCE_VERSION: u32 = 1;

/// The plan a journal carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanEvidence {
    /// SHA-256 of the plan.
    pub digest: String,
    /// The plan file, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The instant it judged.
    pub now: Timestamp,
    /// Who made it, when and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub made: Option<Provenance>,
    /// The policy it was made with.
    pub policy_digest: String,
    /// The snapshot it was made from.
    pub snapshot_digest: String,
}

/// One run recorded in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunEvidence {
    /// Apply or undo.
    pub command: JournalCommand,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished (absent for a run that was interrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Who ran it.
    pub operator: Operator,
    /// The policy its guards checked against.
    pub policy_digest: String,
    /// The lapse version.
    pub lapse_version: String,
    /// Its results, when it finished.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, usize>,
}

/// What an undo did to a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UndoEvidence {
    /// How it ended.
    pub result: UndoResult,
    /// When.
    pub at: Timestamp,
    /// True when the live state showed the target restored.
    pub verified: bool,
    /// Why, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One action of the plan, as the journal proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    /// Its sequence number in the plan.
    pub sequence: usize,
    /// What it does.
    pub action: ActionKind,
    /// Its cloud.
    pub cloud: Cloud,
    /// Its scope.
    pub scope: ScopeId,
    /// The principal.
    pub principal: String,
    /// The exact target.
    pub target: String,
    /// Whether it can be undone.
    pub reversible: bool,
    /// The findings behind it, each with the policy entry that decided it.
    pub findings: Vec<FindingEvidence>,
    /// The live target before the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<TargetState>,
    /// The calls made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// Calls attempted (more than one only after a crash before the change reached the cloud).
    pub attempts: u32,
    /// When the call was announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_at: Option<Timestamp>,
    /// How it ended; absent while an interrupted run's intent awaits a re-run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultKind>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Why (stale reason, error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// True only when the live state, read again, showed the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// When it was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Timestamp>,
    /// The live target as verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<TargetState>,
    /// The undo, if one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoEvidence>,
}

/// The evidence of one journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Always [`EVIDENCE_FORMAT`].
    pub format: &'static str,
    /// [`EVIDENCE_VERSION`].
    pub version: u32,
    /// The journal it was read from.
    pub journal: String,
    /// The plan.
    pub plan: PlanEvidence,
    /// Every run, oldest first.
    pub runs: Vec<RunEvidence>,
    /// Every action, in plan order.
    pub revocations: Vec<Revocation>,
}

/// Builds the evidence of a journal.
///
/// # Errors
/// [`Error::Journal`] for a journal with no run.
pub fn build(contents: &JournalContents, path: &Path) -> Result<Evidence> {
    let Some(first) = contents.runs.first().map(|run| &run.begin) else {
        return Err(Error::Journal {
            path: path.to_owned(),
            line: 1,
            message: "the journal records no run".to_owned(),
        });
    };
    let runs = contents
        .runs
        .iter()
        .map(|run| RunEvidence {
            command: run.begin.command,
            started_at: run.begin.at,
            finished_at: run.end.as_ref().map(|end| end.at),
            operator: run.begin.operator.clone(),
            policy_digest: run.begin.policy_digest.clone(),
            lapse_version: run.begin.lapse_version.clone(),
            results: run
                .end
                .as_ref()
                .map(|end| end.results.clone())
                .unwrap_or_default(),
        })
        .collect();
    let revocations = contents
        .actions
        .iter()
        .filter_map(|(sequence, history)| {
            let planned = history.planned()?;
            let action = &planned.action;
            let outcome = history.outcome.as_ref();
            let verify = history.verify.as_ref();
            Some(Revocation {
                sequence: *sequence,
                action: action.kind(),
                cloud: action.cloud(),
                scope: action.scope().clone(),
                principal: super::guards::principal_of(action).to_owned(),
                target: action.target_id().to_owned(),
                reversible: planned.reversible,
                findings: planned.findings.clone(),
                before: history.before().cloned(),
                calls: history
                    .intents
                    .last()
                    .map(|intent| intent.calls.clone())
                    .unwrap_or_default(),
                attempts: history.intents.last().map_or(0, |intent| intent.attempt),
                intent_at: history.intents.first().map(|intent| intent.at),
                result: outcome
                    .filter(|_| !history.interrupted())
                    .map(|outcome| outcome.result),
                at: outcome.map(|outcome| outcome.at),
                message: outcome.and_then(|outcome| outcome.message.clone()),
                verified: verify.map(|verify| verify.verified),
                verified_at: verify.map(|verify| verify.at),
                after: verify.and_then(|verify| verify.after.clone()),
                undo: history.undo.as_ref().map(|undo| UndoEvidence {
                    result: undo.result,
                    at: undo.at,
                    verified: undo.verified,
                    message: undo.message.clone(),
                }),
            })
        })
        .collect();
    Ok(Evidence {
        format: EVIDENCE_FORMAT,
        version: EVIDENCE_VERSION,
        journal: path.display().to_string(),
        plan: PlanEvidence {
            digest: first.plan_digest.clone(),
            file: first.plan_file.clone(),
            now: first.plan_now,
            made: first.plan_made.clone(),
            policy_digest: first.plan_policy_digest.clone(),
            snapshot_digest: first.snapshot_digest.clone(),
        },
        runs,
        revocations,
    })
}

/// The evidence as pretty JSON, with a final newline.
///
/// # Errors
/// [`Error::Render`] when serialization fails.
pub fn render_json(evidence: &Evidence) -> Result<String> {
    let mut text = serde_json::to_string_pretty(evidence).map_err(|error| Error::Render {
        format: "json",
        message: error.to_string(),
    })?;
    text.push('\n');
    Ok(text)
}

/// Text safe in a Markdown table cell: on one line, Markdown and HTML characters escaped,
/// `@mentions` broken.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(character);
            }
            '@' if previous.is_none_or(|before| !before.is_alphanumeric()) => {
                out.push_str("@&#8203;");
            }
            '\n' | '\r' | '\t' => out.push(' '),
            _ => out.push(character),
        }
        previous = Some(character);
    }
    out
}

fn or_dash(value: Option<String>) -> String {
    value.map_or_else(|| "–".to_owned(), |text| cell(&text))
}

/// The evidence as Markdown: the plan and its runs, one table row per action, then the
/// details of each (findings, the policy entries, the state before and after).
#[must_use]
pub fn render_markdown(evidence: &Evidence) -> String {
    let mut out = String::new();
    let plan = &evidence.plan;
    let _ = writeln!(out, "# lapse evidence\n");
    let _ = writeln!(
        out,
        "Journal `{}`, plan `{}`{} judged as of {}.",
        cell(&evidence.journal),
        cell(&plan.digest),
        plan.file
            .as_ref()
            .map(|file| format!(" ({})", cell(file)))
            .unwrap_or_default(),
        plan.now
    );
    if let Some(made) = &plan.made {
        let _ = writeln!(
            out,
            "\nPlan made at {} by {} on {} with lapse {}.",
            made.at,
            or_dash(made.by.clone()),
            or_dash(made.host.clone()),
            cell(&made.lapse_version)
        );
    }
    let _ = writeln!(
        out,
        "\nPolicy `{}`, snapshot `{}`.\n",
        cell(&plan.policy_digest),
        cell(&plan.snapshot_digest)
    );
    let _ = writeln!(out, "## Runs\n");
    let _ = writeln!(
        out,
        "| command | started | finished | by | host | results |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for run in &evidence.runs {
        let results: Vec<String> = run
            .results
            .iter()
            .map(|(result, count)| format!("{count} {result}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            match run.command {
                JournalCommand::Apply => "apply",
                JournalCommand::Undo => "undo",
            },
            run.started_at,
            run.finished_at
                .map_or_else(|| "interrupted".to_owned(), |at| at.to_string()),
            or_dash(run.operator.user.clone()),
            or_dash(run.operator.host.clone()),
            if results.is_empty() {
                "–".to_owned()
            } else {
                cell(&results.join(", "))
            }
        );
    }
    let _ = writeln!(out, "\n## Revocations\n");
    let _ = writeln!(
        out,
        "| # | action | principal | target | finding | decided by | approved by / ticket | result | verified | at | undo |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for revocation in &evidence.revocations {
        let findings: Vec<String> = revocation
            .findings
            .iter()
            .map(|finding| format!("{} {}", finding.kind.as_str(), finding.id))
            .collect();
        let deciders: Vec<String> = revocation
            .findings
            .iter()
            .map(|finding| match &finding.origin {
                Some(origin) => format!("{} ({}:{})", finding.decided_by, origin.file, origin.line),
                None => finding.decided_by.clone(),
            })
            .collect();
        let approvals: Vec<String> = revocation
            .findings
            .iter()
            .filter(|finding| finding.approved_by.is_some() || finding.ticket.is_some())
            .map(|finding| {
                format!(
                    "{} / {}",
                    finding.approved_by.as_deref().unwrap_or("–"),
                    finding.ticket.as_deref().unwrap_or("–")
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            revocation.sequence,
            revocation.action.as_str(),
            cell(&revocation.principal),
            cell(&revocation.target),
            cell(&findings.join(", ")),
            cell(&deciders.join("; ")),
            if approvals.is_empty() {
                "–".to_owned()
            } else {
                cell(&approvals.join("; "))
            },
            revocation.result.map_or("interrupted", ResultKind::as_str),
            match revocation.verified {
                Some(true) => "verified",
                Some(false) => "NOT verified",
                None => "–",
            },
            revocation
                .at
                .map_or_else(|| "–".to_owned(), |at| at.to_string()),
            revocation.undo.as_ref().map_or_else(
                || "–".to_owned(),
                |undo| format!(
                    "{}{}",
                    undo.result.as_str(),
                    if undo.verified { ", verified" } else { "" }
                )
            ),
        );
    }
    for revocation in &evidence.revocations {
        let _ = writeln!(
            out,
            "\n### #{} {} {}\n",
            revocation.sequence,
            revocation.action.as_str(),
            cell(&revocation.target)
        );
        let _ = writeln!(
            out,
            "- principal: {} ({}, {})",
            cell(&revocation.principal),
            revocation.cloud,
            cell(revocation.scope.as_str())
        );
        for finding in &revocation.findings {
            let _ = writeln!(
                out,
                "- finding {} ({}, {}): {}",
                cell(&finding.id),
                finding.kind.as_str(),
                finding.severity.as_str(),
                cell(&finding.summary)
            );
            let _ = writeln!(
                out,
                "  - decided by {}{}",
                cell(&finding.decided_by),
                finding
                    .origin
                    .as_ref()
                    .map(|origin| format!(
                        " at {}:{} ({})",
                        cell(&origin.file),
                        origin.line,
                        cell(&origin.path)
                    ))
                    .unwrap_or_default()
            );
            if let Some(owner) = &finding.owner {
                let _ = writeln!(out, "  - owner {}", cell(owner));
            }
            if finding.approved_by.is_some() || finding.ticket.is_some() {
                let _ = writeln!(
                    out,
                    "  - approved by {}, ticket {}",
                    or_dash(finding.approved_by.clone()),
                    or_dash(finding.ticket.clone())
                );
            }
        }
        for call in &revocation.calls {
            let _ = writeln!(out, "- call: `{}`", call.replace('`', "'"));
        }
        let state = |state: &TargetState| {
            serde_json::to_string(state)
                .unwrap_or_default()
                .replace('`', "'")
        };
        if let Some(before) = &revocation.before {
            let _ = writeln!(out, "- before: `{}`", state(before));
        }
        if let Some(after) = &revocation.after {
            let _ = writeln!(out, "- after: `{}`", state(after));
        }
        if let Some(message) = &revocation.message {
            let _ = writeln!(out, "- note: {}", cell(message));
        }
    }
    out
}
