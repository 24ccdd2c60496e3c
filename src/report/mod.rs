//! Renderers: each turns a [`Plan`] into one output format. The engine knows no formats, and no
//! renderer reads a clock: every date in a report comes from the plan (`plan.now`).
//!
//! | format | for | file |
//! |---|---|---|
//! | table | people at a terminal | `table.rs` |
//! | json | machines: the plan itself, schema from `lapse schema plan` | `json.rs` |
//! | sarif | code-scanning UIs (SARIF 2.1.0) | `sarif.rs` |
//! | junit | CI test tabs | `junit.rs` |
//! | markdown | job summaries and pull-request comments | `markdown.rs` |
//! | csv | spreadsheets: one row per finding | `csv.rs` |
//! | html | governance and audit: one self-contained page | `html.rs` |

mod csv;
mod html;
mod json;
mod junit;
mod markdown;
mod sarif;
mod table;

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use lapse_sdk::json_position::{Segment, line_column, position_of};

use crate::error::{Error, Result};
use crate::finding::{Finding, Severity, SubjectType};
use crate::input::{self, InputKind};
use crate::plan::{PLAN_FORMAT, PLAN_VERSION, Plan};
use crate::plan_check;

pub use markdown::COMMENT_LIMIT;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// Human-readable table (the terminal default).
    Table,
    /// The plan as versioned JSON.
    Json,
    /// SARIF 2.1.0 for code-scanning UIs.
    Sarif,
    /// JUnit XML for CI test tabs.
    Junit,
    /// A Markdown summary for job summaries and pull-request comments.
    Markdown,
    /// CSV, one row per finding.
    Csv,
    /// One self-contained HTML page.
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 7] = [
        Format::Table,
        Format::Json,
        Format::Sarif,
        Format::Junit,
        Format::Markdown,
        Format::Csv,
        Format::Html,
    ];

    /// The name used on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Junit => "junit",
            Format::Markdown => "markdown",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }

    /// The format a file name suggests (`drift.sarif`, `report.html`, `junit.xml`), if any.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "txt" => Format::Table,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "xml" => Format::Junit,
            "md" | "markdown" => Format::Markdown,
            "csv" => Format::Csv,
            "html" | "htm" => Format::Html,
            _ => return None,
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Options for renderers that are not pure data.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Use colour (table only).
    pub color: bool,
    /// Width to fit (table only).
    pub width: u16,
    /// At most this many finding rows in the table (0: all). Other formats have all.
    pub max_rows: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 100,
            max_rows: 100,
        }
    }
}

/// Renders a plan.
///
/// # Errors
/// [`Error::Render`] when a format writer fails; writing to memory, it does not in practice.
pub fn render(plan: &Plan, format: Format, options: &RenderOptions) -> Result<String> {
    let failed = |message: String| Error::Render {
        format: format.name(),
        message,
    };
    match format {
        Format::Table => Ok(table::render(plan, options)),
        Format::Json => json::render(plan).map_err(|error| failed(error.to_string())),
        Format::Sarif => sarif::render(plan).map_err(|error| failed(error.to_string())),
        Format::Junit => junit::render(plan).map_err(failed),
        Format::Markdown => Ok(markdown::render(plan)),
        Format::Csv => csv::render(plan).map_err(|error| failed(error.to_string())),
        Format::Html => html::render(plan).map_err(|error| failed(error.to_string())),
    }
}

/// Reads a plan saved by `lapse plan --out` (or `--format json`). The header is checked first,
/// so a file from a newer lapse, or not a plan at all, is refused with a clear reason; then
/// that it holds together (see [`crate::plan_check`]).
///
/// # Errors
/// [`Error::Read`] when the file cannot be read, [`Error::TooLarge`] past
/// [`input::PLAN_LIMIT`]; see [`parse_plan_bytes`].
pub fn read_plan(path: &Path) -> Result<Plan> {
    read_plan_file(path).map(|(plan, _)| plan)
}

/// Reads a saved plan as [`read_plan`] does, and returns its bytes too (`apply` names its
/// journal after their digest).
///
/// # Errors
/// As [`read_plan`].
pub fn read_plan_file(path: &Path) -> Result<(Plan, Vec<u8>)> {
    let bytes = input::read(path, InputKind::Plan)?;
    let plan = parse_plan_bytes(&bytes, path)?;
    Ok((plan, bytes))
}

/// Parses a saved plan's bytes; `path` names it in errors.
///
/// # Errors
/// [`Error::PlanEncoding`] for a byte-order mark, [`Error::NotUtf8`] for text that is not
/// UTF-8; see [`parse_plan`].
pub fn parse_plan_bytes(bytes: &[u8], path: &Path) -> Result<Plan> {
    if let Some(encoding) = lapse_sdk::byte_order_mark(bytes) {
        return Err(Error::PlanEncoding {
            path: path.to_owned(),
            encoding,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = line_column(bytes, error.valid_up_to());
        Error::NotUtf8 {
            path: path.to_owned(),
            line,
            column,
            byte: bytes.get(error.valid_up_to()).copied().unwrap_or_default(),
        }
    })?;
    parse_plan(text, path)
}

/// Parses a saved plan; `path` names it in errors.
///
/// serde_json's recursion limit (128 levels) bounds the stack on deeply nested input.
///
/// # Errors
/// [`Error::PlanFormat`] when it is not a lapse plan, [`Error::PlanVersion`] when its version is
/// not one this build reads, [`Error::PlanFile`] when it is malformed, [`Error::PlanForged`]
/// when it does not hold together.
pub fn parse_plan(text: &str, path: &Path) -> Result<Plan> {
    #[derive(Deserialize)]
    struct Header {
        format: Option<String>,
        version: Option<u32>,
    }
    let malformed = |source| Error::PlanFile {
        path: path.to_owned(),
        source,
    };
    let at = |key: &str| position_of(text.as_bytes(), &[Segment::Key(key)]).unwrap_or((1, 1));
    let header: Header = serde_json::from_str(text).map_err(malformed)?;
    if header.format.as_deref() != Some(PLAN_FORMAT) {
        let (line, column) = at("format");
        return Err(Error::PlanFormat {
            path: path.to_owned(),
            found: header.format.unwrap_or_default(),
            line,
            column,
        });
    }
    let plan: Plan = match header.version {
        Some(PLAN_VERSION) => serde_json::from_str(text).map_err(malformed)?,
        found => {
            let (line, column) = at("version");
            return Err(Error::PlanVersion {
                path: path.to_owned(),
                found: found.map_or_else(|| "none".to_owned(), |version| version.to_string()),
                supported: PLAN_VERSION,
                line,
                column,
            });
        }
    };
    let problems = plan_check::check(&plan);
    if !problems.is_empty() {
        return Err(Error::PlanForged {
            path: path.to_owned(),
            problems: lapse_sdk::place_problems(text.as_bytes(), problems, &[]),
        });
    }
    Ok(plan)
}

/// "who -> entitlement", "who key-kind id", "who", or the policy entry: one line per subject.
pub(crate) fn subject_label(finding: &Finding) -> String {
    let subject = &finding.subject;
    let who = subject
        .principal_name
        .as_deref()
        .unwrap_or(subject.principal.as_str());
    match subject.subject_type {
        SubjectType::Grant => format!(
            "{who} -> {}",
            subject.entitlement.as_deref().unwrap_or_default()
        ),
        SubjectType::Credential => format!(
            "{who} {} {}",
            subject
                .credential_kind
                .map(|kind| kind.as_str())
                .unwrap_or_default(),
            subject.id
        ),
        SubjectType::Principal => who.to_owned(),
        SubjectType::PolicyEntry => subject.id.clone(),
    }
}

/// "open", "waived": whether a finding counts as drift.
/// Open findings by severity, highest first, as " (1 high, 3 low)"; empty when there are none.
pub(crate) fn severity_counts(plan: &Plan) -> String {
    let counts: Vec<String> = Severity::DESCENDING
        .iter()
        .filter_map(|severity| {
            plan.summary
                .by_severity
                .get(severity)
                .map(|count| format!("{count} {severity}"))
        })
        .collect();
    if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.join(", "))
    }
}

pub(crate) fn status_label(finding: &Finding) -> &'static str {
    if finding.is_open() { "open" } else { "waived" }
}

/// A duration for people: `45d`, `8h`, `30m`, `12s`.
pub(crate) fn duration_label(seconds: i64) -> String {
    let magnitude = seconds.unsigned_abs();
    let text = if magnitude >= 86_400 {
        format!("{}d", magnitude / 86_400)
    } else if magnitude >= 3_600 {
        format!("{}h", magnitude / 3_600)
    } else if magnitude >= 60 {
        format!("{}m", magnitude / 60)
    } else {
        format!("{magnitude}s")
    };
    if seconds < 0 {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_largest_unit() {
        assert_eq!(duration_label(90 * 86_400 + 5), "90d");
        assert_eq!(duration_label(8 * 3_600), "8h");
        assert_eq!(duration_label(59), "59s");
        assert_eq!(duration_label(-120), "-2m");
    }

    #[test]
    fn file_names_suggest_formats() {
        assert_eq!(
            Format::from_path(Path::new("drift.sarif")),
            Some(Format::Sarif)
        );
        assert_eq!(
            Format::from_path(Path::new("a/junit.XML")),
            Some(Format::Junit)
        );
        assert_eq!(
            Format::from_path(Path::new("report.htm")),
            Some(Format::Html)
        );
        assert_eq!(Format::from_path(Path::new("plan")), None);
    }

    #[test]
    fn every_format_renders_a_plan_with_nothing_in_it() {
        let plan = parse_plan(
            r#"{"format": "lapse-plan", "version": 1, "now": "2026-11-20T06:00:00Z",
                "snapshot": {"digest": "sha256:00", "taken_at": "2026-11-20T06:00:00Z", "complete": true},
                "policy": {"digest": "sha256:11", "files": ["policy.yaml"]},
                "summary": {"principals": 0, "credentials": 0, "grants": 0, "compliant_grants": 0,
                            "protected_grants": 0, "privileged_grants": 0, "findings": 0, "open": 0,
                            "waived": 0, "by_kind": {}, "by_severity": {}, "actions": 0, "held": 0,
                            "incomplete_scopes": 0},
                "scopes": [], "findings": [], "actions": [], "protected": []}"#,
            Path::new("empty.json"),
        )
        .expect("a minimal plan reads");
        for format in Format::ALL {
            let text = render(&plan, format, &RenderOptions::default()).expect("renders");
            assert!(!text.is_empty(), "{format}");
        }
        let markdown =
            render(&plan, Format::Markdown, &RenderOptions::default()).unwrap_or_default();
        assert!(markdown.contains("No open findings."), "{markdown}");
        let json = render(&plan, Format::Json, &RenderOptions::default()).unwrap_or_default();
        assert!(
            !json.contains("expiring"),
            "empty optional sections stay out"
        );
    }

    #[test]
    fn a_plan_of_another_format_or_version_is_refused() {
        let path = Path::new("plan.json");
        let error = parse_plan(r#"{"format": "lapse-snapshot", "version": 1}"#, path)
            .expect_err("not a plan");
        assert!(matches!(error, Error::PlanFormat { .. }), "{error}");
        let error =
            parse_plan(r#"{"format": "lapse-plan", "version": 99}"#, path).expect_err("newer");
        assert!(
            matches!(&error, Error::PlanVersion { found, .. } if found == "99"),
            "{error}"
        );
        let error = parse_plan("[1, 2", path).expect_err("malformed");
        assert!(matches!(error, Error::PlanFile { .. }), "{error}");
    }
}
