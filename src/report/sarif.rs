//! SARIF 2.1.0 for code-scanning UIs (GitHub code scanning, Azure DevOps, GitLab).
//!
//! One rule per finding kind, with help text and the framework ids as tags; one result per
//! finding. A result's `partialFingerprints` carry the finding's stable id, so the same drift
//! keeps the same alert from run to run instead of being closed and reopened. Each result
//! points at the policy entry that decided it, or at line 1 of the policy when lapse itself
//! decided (code-scanning UIs drop results without a location). Waived findings are kept, with
//! an accepted external suppression naming the approver. Versioned by the SARIF version and
//! `tool.driver.version`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::finding::{Finding, FindingKind, Severity};
use crate::plan::Plan;
use crate::policy::Origin;

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// The fingerprint key: bump its suffix if finding ids are ever computed differently.
const FINGERPRINT: &str = "lapseFindingId/v1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool,
    automation_details: AutomationDetails,
    invocations: Vec<Invocation>,
    column_kind: &'static str,
    results: Vec<SarifResult<'a>>,
    properties: RunProperties<'a>,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    semantic_version: &'static str,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: &'static str,
    name: String,
    short_description: Text,
    full_description: Text,
    help: Help,
    default_configuration: Configuration,
    properties: RuleProperties,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Help {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
struct RuleProperties {
    tags: Vec<String>,
    precision: &'static str,
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AutomationDetails {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Serialize)]
struct Notification {
    level: &'static str,
    message: Text,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunProperties<'a> {
    plan_format: &'a str,
    plan_version: u32,
    evaluated_at: String,
    snapshot_digest: &'a str,
    policy_digest: &'a str,
    snapshot_complete: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    rule_index: usize,
    level: &'static str,
    message: Text,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location<'a>>,
    partial_fingerprints: BTreeMap<&'static str, &'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<Suppression>,
    properties: ResultProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation,
    logical_locations: Vec<LogicalLocation<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
    start_column: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation<'a> {
    name: &'a str,
    fully_qualified_name: String,
    kind: &'static str,
}

#[derive(Serialize)]
struct Suppression {
    kind: &'static str,
    status: &'static str,
    justification: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultProperties<'a> {
    severity: Severity,
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
    subject_type: &'static str,
    principal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<&'a str>,
    decided_by: String,
}

pub(super) fn render(plan: &Plan) -> serde_json::Result<String> {
    let rules: Vec<Rule> = FindingKind::ALL.iter().map(|kind| rule(*kind)).collect();
    let fallback = plan.policy.files.first().map(|file| Origin {
        file: file.clone(),
        line: 1,
        column: 1,
        path: String::new(),
    });
    let results = plan
        .findings
        .iter()
        .map(|finding| result(finding, fallback.as_ref()))
        .collect();
    let notifications = plan
        .scopes
        .iter()
        .filter(|scope| !scope.complete)
        .flat_map(|scope| {
            let summary = Notification {
                level: "error",
                message: Text {
                    text: format!(
                        "Scope {} could not be fully read: findings are a lower bound and nothing absent is taken as gone.",
                        scope.id
                    ),
                },
            };
            std::iter::once(summary).chain(scope.errors.iter().map(move |error| Notification {
                level: "error",
                message: Text {
                    text: format!(
                        "{}: {}: {}{}",
                        scope.id,
                        error.operation,
                        error.message,
                        error
                            .missing_permission
                            .as_deref()
                            .map(|permission| format!(" (missing permission: {permission})"))
                            .unwrap_or_default()
                    ),
                },
            }))
        })
        .chain(plan.narrowed.iter().map(|narrowed| Notification {
            level: "warning",
            message: Text {
                text: format!(
                    "This run was {}: findings cover only what it judged.",
                    narrowed.sentence()
                ),
            },
        }))
        .collect();
    let log = Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "lapse",
                    version: env!("CARGO_PKG_VERSION"),
                    semantic_version: env!("CARGO_PKG_VERSION"),
                    rules,
                },
            },
            // GitHub reads the part before the last `/` as the analysis category.
            automation_details: AutomationDetails {
                id: format!("lapse/{}", plan.now),
            },
            invocations: vec![Invocation {
                execution_successful: true,
                tool_execution_notifications: notifications,
            }],
            column_kind: "unicodeCodePoints",
            results,
            properties: RunProperties {
                plan_format: &plan.format,
                plan_version: plan.version,
                evaluated_at: plan.now.to_string(),
                snapshot_digest: &plan.snapshot.digest,
                policy_digest: &plan.policy.digest,
                snapshot_complete: plan.snapshot.complete,
            },
        }],
    };
    let mut text = serde_json::to_string_pretty(&log)?;
    text.push('\n');
    Ok(text)
}

fn rule(kind: FindingKind) -> Rule {
    let frameworks = kind.frameworks();
    let description = kind.description();
    let mut tags = vec!["security".to_owned(), "entitlements".to_owned()];
    tags.extend(frameworks.iter().map(|framework| (*framework).to_owned()));
    let severity = kind.default_severity();
    Rule {
        id: kind.as_str(),
        // SARIF wants a name that differs from the id; a one-word kind gets a noun.
        name: match kind {
            FindingKind::Unowned => "UnownedIdentity".to_owned(),
            _ => pascal_case(kind.as_str()),
        },
        short_description: Text {
            text: format!("lapse: {}", kind.as_str()),
        },
        full_description: Text {
            text: description.to_owned(),
        },
        help: Help {
            text: format!(
                "{description}\n\nDefault severity: {severity}.\nFrameworks: {}.",
                frameworks.join("; ")
            ),
            markdown: format!(
                "**{}**: {description}\n\nDefault severity: **{severity}**.\n\nFrameworks:\n{}",
                kind.as_str(),
                frameworks
                    .iter()
                    .map(|framework| format!("- {framework}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        },
        default_configuration: Configuration {
            level: level(severity),
        },
        properties: RuleProperties {
            tags,
            precision: "high",
            security_severity: security_severity(severity),
        },
    }
}

fn result<'a>(finding: &'a Finding, fallback: Option<&Origin>) -> SarifResult<'a> {
    let subject = &finding.subject;
    let origin = finding.evidence.decided_by.origin().or(fallback);
    let locations = origin
        .map(|origin| Location {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation {
                    uri: file_uri(&origin.file),
                },
                region: Region {
                    start_line: origin.line.max(1),
                    start_column: origin.column.max(1),
                },
            },
            logical_locations: vec![LogicalLocation {
                name: &subject.id,
                fully_qualified_name: match &subject.scope {
                    Some(scope) => format!("{scope}/{}", subject.id),
                    None => subject.id.clone(),
                },
                kind: "resource",
            }],
        })
        .into_iter()
        .collect();
    let suppressions = finding
        .waived
        .iter()
        .map(|waiver| Suppression {
            kind: "external",
            status: "accepted",
            justification: format!(
                "waived by {} until {}{}: {}",
                waiver.approved_by,
                waiver.until,
                waiver
                    .ticket
                    .as_deref()
                    .map(|ticket| format!(" ({ticket})"))
                    .unwrap_or_default(),
                waiver.reason
            ),
        })
        .collect();
    SarifResult {
        rule_id: finding.kind.as_str(),
        rule_index: FindingKind::ALL
            .iter()
            .position(|kind| *kind == finding.kind)
            .unwrap_or_default(),
        level: level(finding.severity),
        message: Text {
            text: format!(
                "{}: {}.",
                super::subject_label(finding),
                finding.evidence.summary
            ),
        },
        locations,
        partial_fingerprints: BTreeMap::from([(FINGERPRINT, finding.id.as_str())]),
        suppressions,
        properties: ResultProperties {
            severity: finding.severity,
            security_severity: security_severity(finding.severity),
            subject_type: match subject.subject_type {
                crate::finding::SubjectType::Grant => "grant",
                crate::finding::SubjectType::Credential => "credential",
                crate::finding::SubjectType::Principal => "principal",
                crate::finding::SubjectType::PolicyEntry => "policy-entry",
            },
            principal: subject.principal.as_str(),
            owner: subject.owner.as_deref(),
            action: finding.action.label(),
            held: finding.action.held.as_deref(),
            decided_by: finding.evidence.decided_by.label(),
        },
    }
}

/// SARIF levels: GitHub shows `error` as an error, `warning` as a warning, `note` as a note.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub's scale: 9.0 and up critical, 7.0 high, 4.0 medium, below that low.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn pascal_case(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|word| {
            let mut characters = word.chars();
            characters
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + characters.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A policy path as a URI reference: relative paths stay relative (code-scanning UIs resolve
/// them against the repository root), absolute ones become `file:` URIs.
fn file_uri(path: &str) -> String {
    let slashed = path.replace('\\', "/");
    let mut encoded = String::with_capacity(slashed.len());
    for byte in slashed.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let drive_letter =
        matches!(slashed.as_bytes(), [letter, b':', b'/', ..] if letter.is_ascii_alphabetic());
    if slashed.starts_with('/') {
        format!("file://{encoded}")
    } else if drive_letter {
        format!("file:///{encoded}")
    } else if encoded
        .split('/')
        .next()
        .is_some_and(|first| first.contains(':'))
    {
        // A colon in the first segment would read as a scheme.
        format!("./{encoded}")
    } else {
        encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_paths_become_uri_references() {
        assert_eq!(file_uri("policy/main.yaml"), "policy/main.yaml");
        assert_eq!(file_uri("my policy#1.yaml"), "my%20policy%231.yaml");
        assert_eq!(file_uri("/srv/policy.yaml"), "file:///srv/policy.yaml");
        assert_eq!(
            file_uri("C:\\lapse\\policy.yaml"),
            "file:///C:/lapse/policy.yaml"
        );
        assert_eq!(file_uri("a:b.yaml"), "./a:b.yaml");
    }

    #[test]
    fn rule_names_are_pascal_case() {
        assert_eq!(pascal_case("standing-privilege"), "StandingPrivilege");
        assert_eq!(pascal_case("unowned"), "Unowned");
    }
}
