//! Markdown for a CI job summary or a pull-request comment: the headline, counts by kind and
//! severity, the top findings, then everything else in collapsed sections. The whole text stays
//! within [`COMMENT_LIMIT`] characters however large the estate: sections are filled in order
//! until the budget runs out, and a note says what was left out and where to find it.
//!
//! Every cell is escaped: principal names come from the clouds and may hold Markdown, HTML or
//! `@mentions`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::finding::{Finding, FindingKind, Severity};
use crate::plan::Plan;

/// The most characters the Markdown report has: under GitHub's 65,536-character limit for a
/// comment, with room for a CI step to add a line.
pub const COMMENT_LIMIT: usize = 65_000;
/// How many findings the "top findings" table shows.
const TOP: usize = 10;
/// The longest a cell may be, in characters: one long id must not eat the budget.
const CELL_LIMIT: usize = 160;
/// Room kept for the truncation note and the closing lines.
const RESERVE: usize = 600;

pub(super) fn render(plan: &Plan) -> String {
    let mut head = String::new();
    headline(plan, &mut head);
    counts(plan, &mut head);
    top(plan, &mut head);

    let mut budget = Budget {
        left: COMMENT_LIMIT.saturating_sub(chars(&head) + RESERVE),
        omitted: Vec::new(),
    };
    let mut body = String::new();
    let rows: Vec<String> = plan.findings.iter().map(finding_row).collect();
    budget.section(
        &mut body,
        &format!("All findings ({})", plan.findings.len()),
        "| severity | kind | subject | owner | why | action | id |\n|---|---|---|---|---|---|---|\n",
        &rows,
        "finding(s)",
    );
    let rows: Vec<String> = plan
        .actions
        .iter()
        .map(|change| {
            format!(
                "| {} | {} | {} | {} |\n",
                change.sequence,
                change.action.kind().as_str(),
                cell(change.action.target_id()),
                if change.reversible { "yes" } else { "**no**" }
            )
        })
        .collect();
    budget.section(
        &mut body,
        &format!(
            "Planned actions ({}; nothing is changed by `plan`)",
            plan.actions.len()
        ),
        "| # | action | target | reversible |\n|--:|---|---|---|\n",
        &rows,
        "action(s)",
    );
    let rows: Vec<String> = plan
        .findings
        .iter()
        .filter_map(|finding| {
            let waiver = finding.waived.as_ref()?;
            Some(format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&super::subject_label(finding)),
                finding.kind,
                cell(&waiver.approved_by),
                waiver.until.as_offset().date(),
                cell(&waiver.reason)
            ))
        })
        .collect();
    budget.section(
        &mut body,
        &format!("Waived findings ({})", plan.summary.waived),
        "| subject | kind | approved by | until | reason |\n|---|---|---|---|---|\n",
        &rows,
        "waived finding(s)",
    );

    let mut out = head;
    out.push_str(&body);
    if !budget.omitted.is_empty() {
        let _ = writeln!(
            out,
            "\n> **Truncated** to stay under {COMMENT_LIMIT} characters: {} not shown. The JSON, CSV and HTML reports have everything.",
            budget.omitted.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n<sub>lapse {} · plan format {} v{} · snapshot {}</sub>",
        env!("CARGO_PKG_VERSION"),
        plan.format,
        plan.version,
        short_digest(&plan.snapshot.digest)
    );
    out
}

struct Budget {
    left: usize,
    omitted: Vec<String>,
}

impl Budget {
    /// A collapsed section with as many rows as fit; says how many did not.
    fn section(
        &mut self,
        out: &mut String,
        title: &str,
        header: &str,
        rows: &[String],
        noun: &str,
    ) {
        if rows.is_empty() {
            return;
        }
        let open = format!("\n<details><summary>{title}</summary>\n\n{header}");
        let close = "\n</details>\n";
        let fixed = chars(&open) + chars(close);
        if fixed >= self.left {
            self.omitted.push(format!("{} {noun}", rows.len()));
            return;
        }
        self.left -= fixed;
        out.push_str(&open);
        let mut shown = 0;
        for row in rows {
            let length = chars(row);
            if length > self.left {
                break;
            }
            self.left -= length;
            out.push_str(row);
            shown += 1;
        }
        out.push_str(close);
        if shown < rows.len() {
            self.omitted
                .push(format!("{} of {} {noun}", rows.len() - shown, rows.len()));
            // Later sections would only fit a few rows: keep the order of importance.
            self.left = 0;
        }
    }
}

fn headline(plan: &Plan, out: &mut String) {
    let summary = &plan.summary;
    let _ = writeln!(
        out,
        "## lapse: {} open finding(s){}\n",
        summary.open,
        super::severity_counts(plan)
    );
    for scope in plan.scopes.iter().filter(|scope| !scope.complete) {
        let _ = writeln!(
            out,
            "> **Incomplete snapshot**: `{}` could not be fully read ({}). Findings are a lower bound; nothing absent is taken as gone.\n",
            cell(&scope.id.to_string()).replace('`', "'"),
            cell(
                &scope
                    .errors
                    .iter()
                    .map(|error| match &error.missing_permission {
                        Some(permission) =>
                            format!("{}: missing permission {permission}", error.operation),
                        None => format!("{}: {}", error.operation, error.message),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        );
    }
    if let Some(narrowed) = &plan.narrowed {
        // Each id escaped on its own: the list may be longer than one cell may be.
        let list = |ids: Vec<String>| {
            ids.iter()
                .map(|id| format!("`{}`", cell(id).replace('`', "'")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let judged = list(
            narrowed
                .clouds
                .iter()
                .map(|cloud| format!("all of {cloud}"))
                .chain(narrowed.scopes.iter().map(ToString::to_string))
                .collect(),
        );
        let left_out = if narrowed.left_out.is_empty() {
            "nothing else was named".to_owned()
        } else {
            format!(
                "not judged: {}",
                list(narrowed.left_out.iter().map(ToString::to_string).collect())
            )
        };
        let _ = writeln!(
            out,
            "> **Narrowed run**: this run was narrowed on purpose (--provider/--scope) to {judged}; {left_out}. Findings cover only what it judged.\n"
        );
    }
    let _ = writeln!(
        out,
        "Evaluated at {} over {} scope(s): {} principals, {} credentials, {} grants. {} waived · {} action(s) planned · {} held · {} principal(s) protected.\n",
        plan.now,
        plan.scopes.len(),
        summary.counts.principals,
        summary.counts.credentials,
        summary.counts.grants,
        summary.waived,
        summary.actions,
        summary.held,
        plan.protected.len()
    );
}

fn counts(plan: &Plan, out: &mut String) {
    if plan.summary.open == 0 {
        let _ = writeln!(out, "No open findings.\n");
        return;
    }
    let mut table: BTreeMap<FindingKind, [usize; 4]> = BTreeMap::new();
    for finding in plan.findings.iter().filter(|finding| finding.is_open()) {
        let column = Severity::DESCENDING
            .iter()
            .position(|severity| *severity == finding.severity)
            .unwrap_or_default();
        table.entry(finding.kind).or_default()[column] += 1;
    }
    let _ = writeln!(
        out,
        "| open findings | critical | high | medium | low | total |\n|---|--:|--:|--:|--:|--:|"
    );
    let mut totals = [0_usize; 4];
    for kind in FindingKind::ALL {
        let Some(row) = table.get(&kind) else {
            continue;
        };
        for (total, count) in totals.iter_mut().zip(row) {
            *total += count;
        }
        let _ = writeln!(
            out,
            "| `{kind}` | {} | {} |",
            row.map(number).join(" | "),
            row.iter().sum::<usize>()
        );
    }
    let _ = writeln!(
        out,
        "| **total** | {} | **{}** |\n",
        totals.map(number).join(" | "),
        totals.iter().sum::<usize>()
    );
}

fn top(plan: &Plan, out: &mut String) {
    let open: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|finding| finding.is_open())
        .take(TOP)
        .collect();
    if open.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Top findings\n\n| severity | kind | subject | owner | why | action |\n|---|---|---|---|---|---|"
    );
    for finding in open {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            finding.severity,
            finding.kind,
            cell(&super::subject_label(finding)),
            cell(finding.subject.owner.as_deref().unwrap_or_default()),
            cell(&finding.evidence.summary),
            cell(&finding.action.label())
        );
    }
}

fn finding_row(finding: &Finding) -> String {
    let action = match &finding.waived {
        Some(waiver) => format!(
            "waived by {} until {}",
            waiver.approved_by,
            waiver.until.as_offset().date()
        ),
        None => finding.action.label(),
    };
    format!(
        "| {} | `{}` | {} | {} | {} | {} | `{}` |\n",
        finding.severity,
        finding.kind,
        cell(&super::subject_label(finding)),
        cell(finding.subject.owner.as_deref().unwrap_or_default()),
        cell(&finding.evidence.summary),
        cell(&action),
        finding.id
    )
}

fn number(count: usize) -> String {
    if count == 0 {
        String::new()
    } else {
        count.to_string()
    }
}

fn short_digest(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Text safe in a table cell: shortened, on one line, with Markdown and HTML characters escaped
/// and `@mentions` broken, so a principal name can neither change the layout, inject markup nor
/// notify anyone.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    for (index, character) in text.chars().enumerate() {
        if index == CELL_LIMIT {
            out.push('…');
            break;
        }
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(character);
            }
            '@' if previous.is_none_or(|before| !before.is_alphanumeric()) => {
                // A zero-width space after `@` keeps GitHub from reading a mention.
                out.push_str("@&#8203;");
            }
            '\n' | '\r' | '\t' => out.push(' '),
            _ => out.push(character),
        }
        previous = Some(character);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_inject_markup_or_mention() {
        assert_eq!(
            cell("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("@acme/admins"), "@&#8203;acme/admins");
        assert_eq!(cell("bob@acme.example"), "bob@acme.example");
        let long = "x".repeat(500);
        assert_eq!(chars(&cell(&long)), CELL_LIMIT + 1);
    }
}
