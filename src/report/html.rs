//! HTML for governance teams and auditors: one self-contained page (inline CSS and script, no
//! fetch of any kind, enforced by its Content-Security-Policy) with headline counts, standing
//! privilege by owner, the oldest standing access, credentials by age, waivers with their
//! approvers, what ends within the next days, and a sortable, filterable table of every finding.
//!
//! The summaries are rendered here, escaped; the findings table is built in the browser from the
//! findings embedded as JSON, with `textContent` only, so no name from a cloud is ever parsed as
//! markup. `#filter=TEXT&sort=COLUMN` in the address pre-sets the table (`sort=-age` descends),
//! which makes a filtered view a link someone can send.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{duration_label, subject_label};
use crate::finding::{Finding, SubjectType};
use crate::plan::{EXPIRING_HORIZON_DAYS, ExpiringKind, Plan};

/// The version of the embedded data's shape (`#lapse-data`), for anyone who scrapes it.
const DATA_FORMAT: &str = "lapse-html-data/1";
/// Rows in the "oldest" lists.
const OLDEST: usize = 10;

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/script.js");

#[derive(Serialize)]
struct Data<'a> {
    format: &'static str,
    findings: Vec<Row<'a>>,
}

/// One finding as the table shows it.
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    severity: &'static str,
    rank: u8,
    kind: &'static str,
    status: &'static str,
    subject: String,
    /// The principal's id: searched, not shown (the subject shows its name).
    principal: &'a str,
    owner: &'a str,
    scope: String,
    why: &'a str,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    age: Option<i64>,
    decided_by: String,
}

pub(super) fn render(plan: &Plan) -> serde_json::Result<String> {
    let data = Data {
        format: DATA_FORMAT,
        findings: plan.findings.iter().map(row).collect(),
    };
    let data = script_safe(&serde_json::to_string(&data)?);
    let mut out = String::new();
    let title = format!("lapse drift report, {}", plan.now);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"lapse {version}\">\n<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        version = env!("CARGO_PKG_VERSION"),
        title = escape(&title),
    );
    header(plan, &mut out);
    headline(plan, &mut out);
    out.push_str("<div class=\"grid\">\n");
    by_owner(plan, &mut out);
    oldest_standing(plan, &mut out);
    credentials_by_age(plan, &mut out);
    expiring(plan, &mut out);
    out.push_str("</div>\n");
    waivers(plan, &mut out);
    findings(plan, &mut out);
    let _ = write!(
        out,
        "<footer>lapse {} · plan format {} v{} · snapshot {} · policy {}</footer>\n\
         <script type=\"application/json\" id=\"lapse-data\">{data}</script>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&plan.format),
        plan.version,
        escape(&plan.snapshot.digest),
        escape(&plan.policy.digest),
    );
    Ok(out)
}

fn row(finding: &Finding) -> Row<'_> {
    let action = match &finding.waived {
        Some(waiver) => format!(
            "waived by {} until {}",
            waiver.approved_by,
            waiver.until.as_offset().date()
        ),
        None => finding.action.label(),
    };
    Row {
        id: &finding.id,
        severity: finding.severity.as_str(),
        // Severity's declaration order is its order: low 0 up to critical 3.
        rank: finding.severity as u8,
        kind: finding.kind.as_str(),
        status: super::status_label(finding),
        subject: subject_label(finding),
        principal: finding.subject.principal.as_str(),
        owner: finding.subject.owner.as_deref().unwrap_or_default(),
        scope: finding
            .subject
            .scope
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        why: &finding.evidence.summary,
        action,
        age: finding.evidence.age.and_then(|age| age.seconds),
        decided_by: finding.evidence.decided_by.label(),
    }
}

fn header(plan: &Plan, out: &mut String) {
    let files: Vec<String> = plan.policy.files.iter().map(|file| escape(file)).collect();
    let _ = writeln!(
        out,
        "<header>\n<h1>lapse drift report</h1>\n<p class=\"meta\">Evaluated at <time>{}</time> against {} · {} scope(s) read</p>\n</header>",
        plan.now,
        if files.is_empty() {
            "no policy file".to_owned()
        } else {
            files.join(", ")
        },
        plan.scopes.len()
    );
    for scope in plan.scopes.iter().filter(|scope| !scope.complete) {
        let errors: Vec<String> = scope
            .errors
            .iter()
            .map(|error| {
                escape(&format!(
                    "{}: {}{}",
                    error.operation,
                    error.message,
                    error
                        .missing_permission
                        .as_deref()
                        .map(|permission| format!(" (missing permission: {permission})"))
                        .unwrap_or_default()
                ))
            })
            .collect();
        let _ = writeln!(
            out,
            "<p class=\"banner\" role=\"alert\"><strong>Incomplete snapshot:</strong> {} could not be fully read. Findings are a lower bound; nothing absent is taken as gone. {}</p>",
            escape(&scope.id.to_string()),
            errors.join("; ")
        );
    }
    if let Some(narrowed) = &plan.narrowed {
        let _ = writeln!(
            out,
            "<p class=\"banner\" role=\"note\"><strong>Narrowed run:</strong> this run was {}. Findings cover only what it judged.</p>",
            escape(&narrowed.sentence())
        );
    }
}

fn headline(plan: &Plan, out: &mut String) {
    let summary = &plan.summary;
    let severe = plan.open_at_or_above(crate::finding::Severity::High);
    let cards = [
        ("open-count", "open findings", summary.open, "total"),
        ("severe-count", "high or critical", severe, "severe"),
        ("waived-count", "waived", summary.waived, ""),
        ("action-count", "actions planned", summary.actions, ""),
        ("held-count", "held back", summary.held, ""),
        (
            "protected-count",
            "protected principals",
            plan.protected.len(),
            "",
        ),
    ];
    out.push_str("<section class=\"cards\" aria-label=\"headline\">\n");
    for (id, label, count, class) in cards {
        let _ = writeln!(
            out,
            "<div class=\"card {class}\"><span class=\"number\" id=\"{id}\">{count}</span><span class=\"label\">{label}</span></div>"
        );
    }
    out.push_str("</section>\n");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Judged: {} principals, {} credentials, {} grants ({} privileged, {} compliant, {} protected). {} finding(s) in all.</p>",
        summary.counts.principals,
        summary.counts.credentials,
        summary.counts.grants,
        summary.counts.privileged_grants,
        summary.counts.compliant_grants,
        summary.counts.protected_grants,
        summary.findings
    );
}

/// Open findings on privileged grants: access that stands although no policy lets it.
fn standing(plan: &Plan) -> impl Iterator<Item = &Finding> {
    plan.findings.iter().filter(|finding| {
        finding.is_open()
            && finding.evidence.privileged
            && finding.subject.subject_type == SubjectType::Grant
    })
}

fn by_owner(plan: &Plan, out: &mut String) {
    let mut owners: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    for finding in standing(plan) {
        let owner = finding.subject.owner.as_deref().unwrap_or("");
        let entry = owners.entry(owner).or_default();
        entry.0 += 1;
        *entry.1.entry(finding.kind.as_str()).or_default() += 1;
    }
    let mut rows: Vec<_> = owners.into_iter().collect();
    rows.sort_by(|left, right| right.1.0.cmp(&left.1.0).then(left.0.cmp(right.0)));
    out.push_str(
        "<section id=\"by-owner\">\n<h2>Standing privilege by owner</h2>\n<p class=\"hint\">Open findings on privileged grants, by the principal's owner or team.</p>\n",
    );
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No standing privileged access.</p>\n</section>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th>owner</th><th class=\"n\">grants</th><th>kinds</th></tr></thead>\n<tbody>\n");
    for (owner, (count, kinds)) in rows {
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        let owner = if owner.is_empty() {
            "<em>no owner</em>".to_owned()
        } else {
            escape(owner)
        };
        let _ = writeln!(
            out,
            "<tr><td>{owner}</td><td class=\"n\">{count}</td><td>{}</td></tr>",
            escape(&kinds.join(", "))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn oldest_standing(plan: &Plan, out: &mut String) {
    let mut rows: Vec<&Finding> = standing(plan).collect();
    // Known ages, oldest first; unknown ages after them: they may be the oldest of all.
    rows.sort_by_key(|finding| {
        std::cmp::Reverse(
            finding
                .evidence
                .age
                .and_then(|age| age.seconds)
                .unwrap_or(i64::MIN),
        )
    });
    out.push_str("<section id=\"oldest\">\n<h2>Oldest standing access</h2>\n");
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">None.</p>\n</section>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th>principal → entitlement</th><th class=\"n\">age</th><th>owner</th><th>finding</th></tr></thead>\n<tbody>\n");
    for finding in rows.iter().take(OLDEST) {
        let _ = writeln!(
            out,
            "<tr><td class=\"id\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&subject_label(finding)),
            age_text(finding),
            escape(finding.subject.owner.as_deref().unwrap_or("")),
            finding.kind
        );
    }
    if rows.len() > OLDEST {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"4\" class=\"hint\">… {} more in the findings table</td></tr>",
            rows.len() - OLDEST
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn credentials_by_age(plan: &Plan, out: &mut String) {
    // One entry per credential, however many findings it has.
    let mut credentials: BTreeMap<&str, &Finding> = BTreeMap::new();
    for finding in plan
        .findings
        .iter()
        .filter(|finding| finding.subject.subject_type == SubjectType::Credential)
    {
        credentials.entry(&finding.subject.id).or_insert(finding);
    }
    const BUCKETS: [(&str, i64); 4] = [
        ("under 90 days", 90),
        ("90 days to 6 months", 182),
        ("6 months to a year", 365),
        ("over a year", i64::MAX),
    ];
    let mut counts = [0_usize; 5];
    for finding in credentials.values() {
        let index = match finding.evidence.age.and_then(|age| age.seconds) {
            Some(seconds) => BUCKETS
                .iter()
                .position(|(_, days)| seconds / 86_400 < *days)
                .unwrap_or(3),
            None => 4,
        };
        counts[index] += 1;
    }
    out.push_str("<section id=\"credentials\">\n<h2>Credentials by age</h2>\n<p class=\"hint\">Keys and secrets with a finding, by age since creation.</p>\n");
    if credentials.is_empty() {
        out.push_str("<p class=\"empty\">No credential findings.</p>\n</section>\n");
        return;
    }
    let largest = counts.iter().copied().max().unwrap_or(1).max(1);
    out.push_str("<table class=\"bars\">\n<tbody>\n");
    for (index, count) in counts.iter().enumerate() {
        let label = BUCKETS.get(index).map_or("age unknown", |(label, _)| label);
        let _ = writeln!(
            out,
            "<tr><td>{label}</td><td class=\"n\">{count}</td><td class=\"bar\"><span style=\"width:{}%\"></span></td></tr>",
            count * 100 / largest
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let mut oldest: Vec<&&Finding> = credentials.values().collect();
    oldest.sort_by_key(|finding| {
        std::cmp::Reverse(
            finding
                .evidence
                .age
                .and_then(|age| age.seconds)
                .unwrap_or(i64::MIN),
        )
    });
    out.push_str("<table>\n<thead><tr><th>credential</th><th class=\"n\">age</th><th>last used</th><th>owner</th></tr></thead>\n<tbody>\n");
    for finding in oldest.iter().take(OLDEST) {
        let last_used = match finding.evidence.last_used {
            Some(lapse_sdk::Usage::At(at)) => at.as_offset().date().to_string(),
            Some(lapse_sdk::Usage::Never) => "never".to_owned(),
            Some(lapse_sdk::Usage::Unknown) | None => "unknown".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"id\">{}</td><td class=\"n\">{}</td><td>{last_used}</td><td>{}</td></tr>",
            escape(&subject_label(finding)),
            age_text(finding),
            escape(finding.subject.owner.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn expiring(plan: &Plan, out: &mut String) {
    let _ = writeln!(
        out,
        "<section id=\"expiring\">\n<h2>Expires within {EXPIRING_HORIZON_DAYS} days</h2>\n<p class=\"hint\">What ends by itself after {}: time-bound grants, credentials, declarations (their grants then become drift) and waivers (their findings open again).</p>",
        plan.now
    );
    if plan.expiring.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"empty\">Nothing ends in the next {EXPIRING_HORIZON_DAYS} days.</p>\n</section>"
        );
        return;
    }
    out.push_str("<table>\n<thead><tr><th>ends</th><th class=\"n\">in</th><th>what</th><th>subject</th><th>approved by</th></tr></thead>\n<tbody>\n");
    for item in &plan.expiring {
        let what = match item.kind {
            ExpiringKind::Grant => "grant",
            ExpiringKind::Credential => "credential",
            ExpiringKind::Declaration => "declaration",
            ExpiringKind::Exception => "waiver",
        };
        let who = item
            .principal_name
            .as_deref()
            .unwrap_or(item.principal.as_str());
        let subject = match &item.entitlement {
            Some(entitlement) => format!("{who} → {entitlement}"),
            None if item.kind == ExpiringKind::Credential => format!("{who}: {}", item.id),
            None => who.to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{what}</td><td class=\"id\">{}</td><td>{}</td></tr>",
            item.expires_at,
            duration_label(item.expires_at.seconds_since(plan.now)),
            escape(&subject),
            escape(item.approved_by.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn waivers(plan: &Plan, out: &mut String) {
    // One row per exception entry, with how much it waives.
    let mut entries: BTreeMap<(String, String), (&Finding, usize)> = BTreeMap::new();
    for finding in &plan.findings {
        if let Some(waiver) = &finding.waived {
            entries
                .entry((waiver.origin.file.clone(), waiver.origin.path.clone()))
                .or_insert((finding, 0))
                .1 += 1;
        }
    }
    let expired: Vec<&Finding> = plan
        .findings
        .iter()
        .filter(|finding| finding.kind == crate::finding::FindingKind::ExceptionExpired)
        .collect();
    out.push_str("<section id=\"waivers\">\n<h2>Waivers</h2>\n");
    if entries.is_empty() && expired.is_empty() {
        out.push_str("<p class=\"empty\">No waivers in force or lapsed.</p>\n</section>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th>status</th><th>waives</th><th>approved by</th><th>until</th><th class=\"n\">left</th><th>ticket</th><th>reason</th><th>entry</th></tr></thead>\n<tbody>\n");
    for (finding, count) in entries.values() {
        let Some(waiver) = &finding.waived else {
            continue;
        };
        let _ = writeln!(
            out,
            "<tr><td><span class=\"badge ok\">in force</span></td><td>{count} finding(s), e.g. {}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td></tr>",
            escape(&subject_label(finding)),
            escape(&waiver.approved_by),
            waiver.until.as_offset().date(),
            duration_label(waiver.until.seconds_since(plan.now)),
            escape(waiver.ticket.as_deref().unwrap_or("")),
            escape(&waiver.reason),
            escape(&format!(
                "{}:{} {}",
                waiver.origin.file, waiver.origin.line, waiver.origin.path
            ))
        );
    }
    for finding in expired {
        let origin = finding.evidence.decided_by.origin();
        let _ = writeln!(
            out,
            "<tr><td><span class=\"badge bad\">expired</span></td><td colspan=\"6\">{}</td><td class=\"id\">{}</td></tr>",
            escape(&finding.evidence.summary),
            escape(
                &origin
                    .map(|origin| format!("{}:{} {}", origin.file, origin.line, origin.path))
                    .unwrap_or_default()
            )
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn findings(plan: &Plan, out: &mut String) {
    let _ = writeln!(
        out,
        "<section id=\"findings\">\n<h2>Findings</h2>\n\
         <div class=\"controls\"><label>Filter <input id=\"filter\" type=\"search\" placeholder=\"kind, principal, owner, scope…\" autocomplete=\"off\"></label>\
         <span class=\"hint\">showing <span id=\"shown-count\">{total}</span> of <span id=\"finding-count\">{total}</span></span></div>\n\
         <noscript><p class=\"banner\">The findings table needs JavaScript; the JSON and CSV reports have the same rows.</p></noscript>\n\
         <table id=\"findings-table\">\n<thead><tr>\
         <th data-key=\"rank\" aria-sort=\"descending\">severity</th><th data-key=\"kind\">kind</th><th data-key=\"status\">status</th>\
         <th data-key=\"subject\">subject</th><th data-key=\"owner\">owner</th><th data-key=\"scope\">scope</th>\
         <th data-key=\"why\">why</th><th data-key=\"age\" class=\"n\">age</th><th data-key=\"action\">action</th><th data-key=\"id\">id</th>\
         </tr></thead>\n<tbody></tbody>\n</table>\n</section>",
        total = plan.findings.len()
    );
}

fn age_text(finding: &Finding) -> String {
    finding
        .evidence
        .age
        .and_then(|age| age.seconds)
        .map_or_else(|| "unknown".to_owned(), duration_label)
}

/// Text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(character),
        }
    }
    out
}

/// JSON that cannot end its `<script>` element or open a comment: `<`, `>` and `&` only occur
/// inside JSON strings, where their `\u` escapes mean the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_stays_text() {
        assert_eq!(
            escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        let json = serde_json::to_string("</script><script>alert(1)</script>").unwrap_or_default();
        let safe = script_safe(&json);
        assert!(!safe.contains("</script"), "{safe}");
        assert_eq!(
            serde_json::from_str::<String>(&safe).ok().as_deref(),
            Some("</script><script>alert(1)</script>")
        );
    }
}
