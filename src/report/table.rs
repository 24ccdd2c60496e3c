//! The terminal table: a headline, incomplete scopes first and loud, then findings by severity,
//! then the planned actions. Readable at 100 columns; coloured only when asked.

use std::fmt::Write as _;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};

use super::{RenderOptions, subject_label};
use crate::finding::Severity;
use crate::plan::Plan;

pub(super) fn render(plan: &Plan, options: &RenderOptions) -> String {
    let mut out = String::new();
    let summary = &plan.summary;
    let _ = writeln!(
        out,
        "lapse plan as of {} ({} scope(s), {} principals, {} credentials, {} grants)",
        plan.now,
        plan.scopes.len(),
        summary.counts.principals,
        summary.counts.credentials,
        summary.counts.grants
    );
    for scope in plan.scopes.iter().filter(|scope| !scope.complete) {
        let _ = writeln!(
            out,
            "INCOMPLETE {}: findings below may be missing items; nothing absent is taken as gone",
            scope.id
        );
        for error in &scope.errors {
            let permission = error
                .missing_permission
                .as_deref()
                .map(|permission| format!(" (missing permission: {permission})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}: {}{}",
                error.operation,
                printable(&error.message),
                printable(&permission)
            );
        }
    }
    if let Some(narrowed) = &plan.narrowed {
        let _ = writeln!(out, "NOTE this run was {}", printable(&narrowed.sentence()));
    }
    if plan.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings.");
    } else {
        out.push('\n');
        out.push_str(&findings_table(plan, options));
        out.push('\n');
        let shown = if options.max_rows == 0 {
            plan.findings.len()
        } else {
            options.max_rows.min(plan.findings.len())
        };
        if shown < plan.findings.len() {
            let _ = writeln!(
                out,
                "... {} more finding(s); use --format json for all",
                plan.findings.len() - shown
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} open finding(s){}, {} waived; {} action(s) planned, {} held; {} principal(s) protected",
        summary.open,
        super::severity_counts(plan),
        summary.waived,
        summary.actions,
        summary.held,
        plan.protected.len()
    );
    if !plan.actions.is_empty() {
        let _ = writeln!(out, "\nPlanned actions (nothing is changed by `plan`):");
        let limit = if options.max_rows == 0 {
            plan.actions.len()
        } else {
            options.max_rows
        };
        for change in plan.actions.iter().take(limit) {
            let _ = writeln!(
                out,
                "  {:>3}. {} {}{}",
                change.sequence,
                change.action.kind().as_str(),
                printable(change.action.target_id()),
                if change.reversible {
                    ""
                } else {
                    " (irreversible)"
                }
            );
        }
        if plan.actions.len() > limit {
            let _ = writeln!(out, "  ... {} more", plan.actions.len() - limit);
        }
    }
    out
}

fn findings_table(plan: &Plan, options: &RenderOptions) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(options.width)
        .set_header(["SEV", "KIND", "SUBJECT", "WHY", "ACTION"]);
    if !options.color {
        table.force_no_tty();
    } else {
        table.enforce_styling();
    }
    let limit = if options.max_rows == 0 {
        usize::MAX
    } else {
        options.max_rows
    };
    for finding in plan.findings.iter().take(limit) {
        let severity = Cell::new(finding.severity.as_str());
        let severity = if options.color {
            severity.fg(color(finding.severity))
        } else {
            severity
        };
        let action = if let Some(waiver) = &finding.waived {
            format!(
                "waived by {} until {}",
                waiver.approved_by,
                waiver.until.as_offset().date()
            )
        } else {
            finding.action.label()
        };
        table.add_row(vec![
            severity,
            Cell::new(finding.kind.as_str()),
            Cell::new(printable(&subject_label(finding))),
            Cell::new(printable(&finding.evidence.summary)),
            Cell::new(printable(&action)),
        ]);
    }
    table.to_string()
}

/// Names come from the clouds: a control character in one must not move the cursor, recolour
/// or clear the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                '\u{fffd}'
            } else {
                character
            }
        })
        .collect()
}

fn color(severity: Severity) -> Color {
    match severity {
        Severity::Critical => Color::Magenta,
        Severity::High => Color::Red,
        Severity::Medium => Color::Yellow,
        Severity::Low => Color::Cyan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(printable("ana\u{1b}[2Jx\n"), "ana\u{fffd}[2Jx\u{fffd}");
    }
}
