//! JUnit XML for CI test tabs: one test suite per scope read (plus `policy` for findings about
//! policy entries), one test case per (scope, finding kind). A case fails when the scope has open
//! findings of that kind, listing them; waived ones are printed to `system-out`. A scope that
//! could not be fully read gets an erroring `scope-read-completely` case, so an incomplete
//! snapshot is as loud in the test tab as in the exit code; a scope no snapshot file covered
//! gets that case alone, since nothing of it was judged. A scope a narrowed run left out on
//! purpose (`--provider`, `--scope`) gets a suite with a skipped `scope-judged` case, so it does
//! not pass for clean. Versioned by the `lapse.report.format` property of each suite.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::finding::{Finding, FindingKind};
use crate::plan::Plan;

/// The name and version of this report's shape.
const REPORT_FORMAT: &str = "lapse-junit/1";
/// The suite for findings that are about the policy itself, not a scope.
const POLICY_SUITE: &str = "policy";
/// Kinds whose subject is a policy entry, never a scope.
const POLICY_KINDS: [FindingKind; 2] =
    [FindingKind::DeclaredMissing, FindingKind::ExceptionExpired];

struct Suite<'a> {
    name: String,
    incomplete: Option<String>,
    /// Not read at all (no snapshot file covered it): only the erroring case.
    not_read: bool,
    /// Left out on purpose by a narrowed run: one skipped case, nothing judged.
    left_out: bool,
    findings: Vec<&'a Finding>,
}

struct Case<'a> {
    name: &'static str,
    open: Vec<&'a Finding>,
    waived: Vec<&'a Finding>,
}

pub(super) fn render(plan: &Plan) -> Result<String, String> {
    write(plan).map_err(|error| error.to_string())
}

fn write(plan: &Plan) -> io::Result<String> {
    let suites = suites(plan);
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let cases: Vec<Vec<Case<'_>>> = suites.iter().map(cases).collect();
    let total: usize = cases.iter().map(Vec::len).sum::<usize>()
        + suites
            .iter()
            .filter(|suite| suite.incomplete.is_some() || suite.left_out)
            .count();
    let failures: usize = cases
        .iter()
        .flatten()
        .filter(|case| !case.open.is_empty())
        .count();
    let errors = suites
        .iter()
        .filter(|suite| suite.incomplete.is_some())
        .count();
    let now = plan.now.to_string();
    let narrowed = plan
        .narrowed
        .as_ref()
        .map(|narrowed| clean(&narrowed.sentence()));
    writer.write_event(Event::Start(BytesStart::new("testsuites").with_attributes(
        [
            ("name", "lapse"),
            ("tests", total.to_string().as_str()),
            ("failures", failures.to_string().as_str()),
            ("errors", errors.to_string().as_str()),
            ("time", "0"),
            ("timestamp", now.as_str()),
        ],
    )))?;
    for (suite, cases) in suites.iter().zip(&cases) {
        let suite_failures = cases.iter().filter(|case| !case.open.is_empty()).count();
        let suite_errors = usize::from(suite.incomplete.is_some());
        let suite_skipped = usize::from(suite.left_out);
        let name = clean(&suite.name);
        writer.write_event(Event::Start(
            BytesStart::new("testsuite").with_attributes([
                ("name", name.as_str()),
                (
                    "tests",
                    (cases.len() + suite_errors + suite_skipped)
                        .to_string()
                        .as_str(),
                ),
                ("failures", suite_failures.to_string().as_str()),
                ("errors", suite_errors.to_string().as_str()),
                ("skipped", suite_skipped.to_string().as_str()),
                ("time", "0"),
                ("timestamp", now.as_str()),
            ]),
        ))?;
        writer.write_event(Event::Start(BytesStart::new("properties")))?;
        for (key, value) in [
            ("lapse.report.format", REPORT_FORMAT),
            ("lapse.version", env!("CARGO_PKG_VERSION")),
            ("lapse.plan.now", now.as_str()),
            ("lapse.snapshot.digest", plan.snapshot.digest.as_str()),
            ("lapse.policy.digest", plan.policy.digest.as_str()),
        ] {
            writer.write_event(Event::Empty(
                BytesStart::new("property").with_attributes([("name", key), ("value", value)]),
            ))?;
        }
        if let Some(narrowed) = &narrowed {
            writer.write_event(Event::Empty(BytesStart::new("property").with_attributes([
                ("name", "lapse.plan.narrowed"),
                ("value", narrowed.as_str()),
            ])))?;
        }
        writer.write_event(Event::End(BytesEnd::new("properties")))?;
        if let Some(reason) = &suite.incomplete {
            writer.write_event(Event::Start(BytesStart::new("testcase").with_attributes([
                ("classname", name.as_str()),
                ("name", "scope-read-completely"),
                ("time", "0"),
            ])))?;
            let reason = clean(reason);
            writer.write_event(Event::Start(BytesStart::new("error").with_attributes([
                ("type", "incomplete-snapshot"),
                (
                    "message",
                    "the scope could not be fully read: findings are a lower bound",
                ),
            ])))?;
            writer.write_event(Event::Text(BytesText::new(&reason)))?;
            writer.write_event(Event::End(BytesEnd::new("error")))?;
            writer.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        if suite.left_out {
            writer.write_event(Event::Start(BytesStart::new("testcase").with_attributes([
                ("classname", name.as_str()),
                ("name", "scope-judged"),
                ("time", "0"),
            ])))?;
            writer.write_event(Event::Empty(BytesStart::new("skipped").with_attributes([
                (
                    "message",
                    "left out on purpose by a narrowed run (--provider, --scope): not judged",
                ),
            ])))?;
            writer.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        for case in cases {
            write_case(&mut writer, &name, case)?;
        }
        writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let mut text = String::from_utf8(writer.into_inner())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    text.push('\n');
    Ok(text)
}

fn write_case(writer: &mut Writer<Vec<u8>>, suite: &str, case: &Case<'_>) -> io::Result<()> {
    let start = BytesStart::new("testcase").with_attributes([
        ("classname", suite),
        ("name", case.name),
        ("time", "0"),
    ]);
    if case.open.is_empty() && case.waived.is_empty() {
        writer.write_event(Event::Empty(start))?;
        return Ok(());
    }
    writer.write_event(Event::Start(start))?;
    if !case.open.is_empty() {
        let mut by_severity: BTreeMap<_, usize> = BTreeMap::new();
        for finding in &case.open {
            *by_severity.entry(finding.severity).or_default() += 1;
        }
        let severities: Vec<String> = by_severity
            .iter()
            .rev()
            .map(|(severity, count)| format!("{count} {severity}"))
            .collect();
        let message = format!(
            "{} open finding(s) ({})",
            case.open.len(),
            severities.join(", ")
        );
        writer.write_event(Event::Start(
            BytesStart::new("failure")
                .with_attributes([("type", case.name), ("message", message.as_str())]),
        ))?;
        writer.write_event(Event::Text(BytesText::new(&clean(&lines(&case.open)))))?;
        writer.write_event(Event::End(BytesEnd::new("failure")))?;
    }
    if !case.waived.is_empty() {
        writer.write_event(Event::Start(BytesStart::new("system-out")))?;
        writer.write_event(Event::Text(BytesText::new(&clean(&lines(&case.waived)))))?;
        writer.write_event(Event::End(BytesEnd::new("system-out")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("testcase")))?;
    Ok(())
}

/// One line per finding: what, why, and what would be done.
fn lines(findings: &[&Finding]) -> String {
    let mut text = String::new();
    for finding in findings {
        let outcome = match &finding.waived {
            Some(waiver) => format!(
                "waived by {} until {}",
                waiver.approved_by,
                waiver.until.as_offset().date()
            ),
            None => finding.action.label(),
        };
        let _ = writeln!(
            text,
            "[{}] {}: {} -> {} ({})",
            finding.severity,
            super::subject_label(finding),
            finding.evidence.summary,
            outcome,
            finding.id
        );
    }
    text
}

fn suites(plan: &Plan) -> Vec<Suite<'_>> {
    let mut suites: Vec<Suite<'_>> = plan
        .scopes
        .iter()
        .map(|scope| Suite {
            name: scope.id.to_string(),
            incomplete: (!scope.complete).then(|| {
                scope
                    .errors
                    .iter()
                    .map(|error| {
                        format!(
                            "{}: {}{}",
                            error.operation,
                            error.message,
                            error
                                .missing_permission
                                .as_deref()
                                .map(|permission| format!(" (missing permission: {permission})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }),
            not_read: crate::coverage::was_not_read(scope),
            left_out: false,
            findings: Vec::new(),
        })
        .collect();
    suites.extend(
        plan.narrowed
            .iter()
            .flat_map(|narrowed| &narrowed.left_out)
            .map(|scope| Suite {
                name: scope.to_string(),
                incomplete: None,
                not_read: false,
                left_out: true,
                findings: Vec::new(),
            }),
    );
    let mut policy = Suite {
        name: POLICY_SUITE.to_owned(),
        incomplete: None,
        not_read: false,
        left_out: false,
        findings: Vec::new(),
    };
    for finding in &plan.findings {
        let scope = finding.subject.scope.as_ref().map(ToString::to_string);
        let suite = match scope {
            Some(scope) => match suites.iter().position(|suite| suite.name == scope) {
                Some(index) => &mut suites[index],
                None => {
                    suites.push(Suite {
                        name: scope,
                        incomplete: None,
                        not_read: false,
                        left_out: false,
                        findings: Vec::new(),
                    });
                    let last = suites.len() - 1;
                    &mut suites[last]
                }
            },
            None => &mut policy,
        };
        suite.findings.push(finding);
    }
    suites.push(policy);
    suites
}

/// Every kind a scope can have a finding of, plus any kind it does have; for the policy suite,
/// the policy kinds.
fn cases<'a>(suite: &Suite<'a>) -> Vec<Case<'a>> {
    if suite.left_out || suite.not_read {
        // Nothing was judged there: a passing case per kind would read as clean.
        return Vec::new();
    }
    FindingKind::ALL
        .iter()
        .filter(|kind| {
            let policy_kind = POLICY_KINDS.contains(kind);
            (policy_kind == (suite.name == POLICY_SUITE))
                || suite.findings.iter().any(|finding| finding.kind == **kind)
        })
        .map(|kind| {
            let (open, waived) = suite
                .findings
                .iter()
                .filter(|finding| finding.kind == *kind)
                .partition(|finding| finding.is_open());
            Case {
                name: kind.as_str(),
                open,
                waived,
            }
        })
        .collect()
}

/// XML 1.0 cannot carry most control characters even escaped: a principal name with one must
/// not make the whole report unreadable.
fn clean(text: &str) -> String {
    text.chars()
        .map(|character| match character {
            '\t' | '\n' | '\r' => character,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => character,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(clean("a\u{1}b\tc\n"), "a\u{fffd}b\tc\n");
    }
}
