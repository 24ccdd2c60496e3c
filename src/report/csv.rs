//! CSV for spreadsheets: a header row, then one row per finding (open and waived) with every
//! evidence field in its own column. Dates are RFC 3339, durations in whole seconds and in days,
//! so a sheet can sort and sum them. Versioned by the `report_format` column (`lapse-csv/1`):
//! within a version, columns are only ever added at the end.

use crate::finding::{AgeSource, Decider, Finding, SubjectType};
use crate::plan::Plan;

const REPORT_FORMAT: &str = "lapse-csv/1";

const HEADER: [&str; 45] = [
    "id",
    "kind",
    "severity",
    "status",
    "subject_type",
    "subject_id",
    "principal",
    "principal_name",
    "owner",
    "cloud",
    "scope",
    "entitlement",
    "resource",
    "credential_kind",
    "privileged",
    "via",
    "summary",
    "decided_by",
    "decided_by_rule",
    "decided_by_reason",
    "policy_file",
    "policy_line",
    "policy_column",
    "policy_entry",
    "age_seconds",
    "age_days",
    "age_since",
    "age_source",
    "last_used",
    "idle_seconds",
    "idle_days",
    "limit_seconds",
    "limit_days",
    "expired_at",
    "action",
    "action_held",
    "waiver_approved_by",
    "waiver_until",
    "waiver_reason",
    "waiver_ticket",
    "waiver_entry",
    "frameworks",
    "evaluated_at",
    "snapshot_digest",
    "report_format",
];

pub(super) fn render(plan: &Plan) -> csv::Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER)?;
    let evaluated_at = plan.now.to_string();
    for finding in &plan.findings {
        let row = row(finding, &evaluated_at, &plan.snapshot.digest);
        writer.write_record(&row)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn row(finding: &Finding, evaluated_at: &str, snapshot_digest: &str) -> Vec<String> {
    let subject = &finding.subject;
    let evidence = &finding.evidence;
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    let number = |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
    let days = |value: Option<i64>| {
        value
            .map(|seconds| format!("{:.1}", seconds as f64 / 86_400.0))
            .unwrap_or_default()
    };
    let origin = evidence.decided_by.origin();
    let (rule, reason) = match &evidence.decided_by {
        Decider::Rule { id, .. } => (id.clone(), String::new()),
        Decider::Default { key, .. } => (format!("defaults.{key}"), String::new()),
        Decider::Builtin { reason } => (String::new(), reason.clone()),
        Decider::Declared { .. } | Decider::Exception { .. } => (String::new(), String::new()),
    };
    let age = evidence.age.as_ref();
    let waiver = finding.waived.as_ref();
    let columns = [
        finding.id.clone(),
        finding.kind.as_str().to_owned(),
        finding.severity.as_str().to_owned(),
        super::status_label(finding).to_owned(),
        match subject.subject_type {
            SubjectType::Grant => "grant",
            SubjectType::Credential => "credential",
            SubjectType::Principal => "principal",
            SubjectType::PolicyEntry => "policy-entry",
        }
        .to_owned(),
        subject.id.clone(),
        subject.principal.as_str().to_owned(),
        text(subject.principal_name.as_deref()),
        text(subject.owner.as_deref()),
        subject
            .cloud
            .map(|cloud| cloud.as_str().to_owned())
            .unwrap_or_default(),
        subject
            .scope
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        text(subject.entitlement.as_deref()),
        text(subject.resource.as_deref()),
        subject
            .credential_kind
            .map(|kind| kind.as_str().to_owned())
            .unwrap_or_default(),
        evidence.privileged.to_string(),
        text(evidence.via.as_deref()),
        evidence.summary.clone(),
        evidence.decided_by.label(),
        rule,
        reason,
        origin.map(|origin| origin.file.clone()).unwrap_or_default(),
        origin
            .map(|origin| origin.line.to_string())
            .unwrap_or_default(),
        origin
            .map(|origin| origin.column.to_string())
            .unwrap_or_default(),
        origin.map(|origin| origin.path.clone()).unwrap_or_default(),
        number(age.and_then(|age| age.seconds)),
        days(age.and_then(|age| age.seconds)),
        age.and_then(|age| age.since)
            .map(|since| since.to_string())
            .unwrap_or_default(),
        age.map(|age| match age.source {
            AgeSource::Cloud => "cloud",
            AgeSource::FirstSeen => "first-seen",
            AgeSource::Unknown => "unknown",
        })
        .unwrap_or_default()
        .to_owned(),
        evidence
            .last_used
            .map(|usage| match usage {
                lapse_sdk::Usage::Unknown => "unknown".to_owned(),
                lapse_sdk::Usage::Never => "never".to_owned(),
                lapse_sdk::Usage::At(at) => at.to_string(),
            })
            .unwrap_or_default(),
        number(evidence.idle_seconds),
        days(evidence.idle_seconds),
        number(evidence.limit_seconds),
        days(evidence.limit_seconds),
        evidence
            .expired_at
            .map(|at| at.to_string())
            .unwrap_or_default(),
        finding
            .action
            .kind
            .map(|kind| kind.as_str().to_owned())
            .unwrap_or_else(|| "report".to_owned()),
        text(finding.action.held.as_deref()),
        text(waiver.map(|waiver| waiver.approved_by.as_str())),
        waiver
            .map(|waiver| waiver.until.to_string())
            .unwrap_or_default(),
        text(waiver.map(|waiver| waiver.reason.as_str())),
        text(waiver.and_then(|waiver| waiver.ticket.as_deref())),
        waiver
            .map(|waiver| format!("{}#{}", waiver.origin.file, waiver.origin.path))
            .unwrap_or_default(),
        finding.kind.frameworks().join("; "),
        evaluated_at.to_owned(),
        snapshot_digest.to_owned(),
        REPORT_FORMAT.to_owned(),
    ];
    columns.into_iter().map(|column| defuse(&column)).collect()
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula. A principal name
/// is attacker-chosen, so such cells get a leading apostrophe (the OWASP advice for CSV
/// injection). A negative number (an age from a clock running behind) reads as text then, which
/// is the safer error.
fn defuse(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("alice"), "alice");
    }
}
