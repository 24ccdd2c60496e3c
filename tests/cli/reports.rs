//! Reports: every format over the demo estate (snapshots), `lapse report` over a saved plan,
//! SARIF checked against the official schema, JUnit parsed back, the HTML page driven in
//! headless Chromium, Markdown within the comment limit on a large estate, hostile names.

use std::path::{Path, PathBuf};
use std::process::Output;

use lapse::report::{COMMENT_LIMIT, Format, RenderOptions, render};

use crate::*;

const FORMATS: [&str; 7] = ["table", "json", "sarif", "junit", "markdown", "csv", "html"];

/// A folder holding a copy of the demo estate at `examples/demo/`: commands run inside it with
/// relative paths, so outputs name the policy as a CI checkout would, on any machine, and
/// anything a run leaves behind stays in the folder.
struct Estate {
    folder: tempfile::TempDir,
    runs: std::cell::Cell<usize>,
}

impl Estate {
    fn demo() -> Estate {
        let folder = tempfile::tempdir().expect("tempdir");
        let demo = folder.path().join("examples/demo");
        std::fs::create_dir_all(&demo).expect("mkdir");
        for file in demo_snapshots()
            .into_iter()
            .chain([repo("examples/demo/policy.yaml")])
        {
            std::fs::copy(&file, demo.join(file.file_name().expect("name"))).expect("copy");
        }
        Estate {
            folder,
            runs: std::cell::Cell::new(0),
        }
    }

    /// The demo policy with only the AWS file of its three: Azure and Google Cloud not read.
    fn demo_aws_only() -> Estate {
        let estate = Estate::demo();
        for name in ["azure-contoso.json", "gcp-acme-prod.json"] {
            std::fs::remove_file(estate.path("examples/demo").join(name)).expect("remove");
        }
        estate
    }

    fn hostile() -> Estate {
        let folder = tempfile::tempdir().expect("tempdir");
        let demo = folder.path().join("examples/demo");
        std::fs::create_dir_all(&demo).expect("mkdir");
        for file in ["policy.yaml", "snapshot.json"] {
            std::fs::copy(fixture("hostile", file), demo.join(file)).expect("copy");
        }
        Estate {
            folder,
            runs: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// `lapse plan` over the estate with `arguments` after the inputs.
    fn plan(&self, arguments: &[&str]) -> Output {
        let mut snapshots: Vec<String> = std::fs::read_dir(self.path("examples/demo"))
            .expect("estate")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".json"))
            .map(|name| format!("examples/demo/{name}"))
            .collect();
        snapshots.sort();
        // Every run is a first run: a state file remembered from an earlier run in the same test
        // would give grants an age and change the findings.
        self.runs.set(self.runs.get() + 1);
        let state = self.path(&format!("state/{}/state.db", self.runs.get()));
        lapse()
            .current_dir(self.folder.path())
            .env("LAPSE_STATE", state)
            .args([
                "plan",
                "--now",
                NOW,
                "--policy",
                "examples/demo/policy.yaml",
            ])
            .arg("--snapshot")
            .args(&snapshots)
            .args(arguments)
            .output()
            .expect("run")
    }

    fn report(&self, arguments: &[&str]) -> Output {
        lapse()
            .current_dir(self.folder.path())
            .arg("report")
            .args(arguments)
            .output()
            .expect("run")
    }

    /// The plan as JSON, saved as `plan.json`.
    fn saved_plan(&self) -> serde_json::Value {
        let output = self.plan(&["--format", "json", "--out", "plan.json"]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        serde_json::from_slice(&std::fs::read(self.path("plan.json")).expect("plan"))
            .expect("plan json")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_format_renders_the_demo_estate_stably() {
    let estate = Estate::demo();
    for format in FORMATS {
        let output = estate.plan(&["--format", format]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{format}: {}",
            stderr(&output)
        );
        insta::assert_snapshot!(format!("demo_{format}"), stdout(&output));
    }
}

const UNREAD: [&str; 3] = [
    "azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
    "azure:/tenants/contoso.onmicrosoft.com",
    "gcp:projects/acme-prod",
];

#[test]
fn every_format_shows_the_scopes_no_file_covers() {
    let estate = Estate::demo_aws_only();
    for format in ["table", "sarif", "junit", "markdown", "html"] {
        let output = estate.plan(&["--format", format]);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{format}: {}",
            stderr(&output)
        );
        let text = stdout(&output);
        for scope in UNREAD {
            assert!(text.contains(scope), "{format} does not name {scope}");
        }
        assert!(
            text.contains("not read: no snapshot file covers it"),
            "{format} does not say why"
        );
        if matches!(format, "markdown" | "junit") {
            insta::assert_snapshot!(format!("demo_aws_only_{format}"), text);
        }
    }
    let output = estate.plan(&["--format", "junit"]);
    let junit = stdout(&output);
    let document = roxmltree::Document::parse(&junit).expect("xml");
    let erroring: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name("error"))
        .filter_map(|error| error.parent()?.parent()?.attribute("name"))
        .collect();
    assert_eq!(erroring, UNREAD);
    let output = estate.plan(&["--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sarif");
    assert!(sarif_validator().is_valid(&sarif));
    assert_eq!(sarif["runs"][0]["properties"]["snapshotComplete"], false);
}

#[test]
fn a_narrowed_run_says_in_every_format_what_it_left_out() {
    let estate = Estate::demo_aws_only();
    for format in ["table", "sarif", "junit", "markdown", "html"] {
        let output = estate.plan(&["--format", format, "--provider", "aws"]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{format}: {}",
            stderr(&output)
        );
        let text = stdout(&output);
        assert!(
            text.contains("narrowed on purpose"),
            "{format} does not say the run was narrowed"
        );
        for scope in UNREAD {
            assert!(text.contains(scope), "{format} does not name {scope}");
        }
    }
    let output = estate.plan(&["--format", "junit", "--provider", "aws"]);
    let junit = stdout(&output);
    let document = roxmltree::Document::parse(&junit).expect("xml");
    let skipped: Vec<&str> = document
        .descendants()
        .filter(|node| node.has_tag_name("skipped"))
        .filter_map(|skipped| skipped.parent()?.parent()?.attribute("name"))
        .collect();
    assert_eq!(skipped, UNREAD, "left-out scopes are skipped, not passed");
    for suite in document
        .descendants()
        .filter(|node| node.has_tag_name("testsuite"))
        .filter(|suite| UNREAD.contains(&suite.attribute("name").unwrap_or_default()))
    {
        assert_eq!(suite.attribute("tests"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("1"));
    }
    let output = estate.plan(&["--format", "sarif", "--provider", "aws"]);
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sarif");
    assert!(sarif_validator().is_valid(&sarif));
    let notifications = &sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert_eq!(notifications[0]["level"], "warning", "{notifications}");
}

#[test]
fn several_formats_go_to_their_files_in_one_run() {
    let estate = Estate::demo();
    let output = estate.plan(&[
        "--format",
        "sarif=drift.sarif",
        "--format",
        "html=out/drift.html",
        "--format",
        "markdown",
        "--out",
        "plan.json",
    ]);
    // A missing folder is an error, not a silent skip.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("out/drift.html"),
        "{}",
        stderr(&output)
    );
    std::fs::create_dir(estate.path("out")).expect("mkdir");
    let output = estate.plan(&[
        "--format",
        "sarif=drift.sarif",
        "--format",
        "html=out/drift.html",
        "--format",
        "markdown",
        "--out",
        "plan.json",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("## lapse: 26 open finding(s)"));
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(estate.path("drift.sarif")).expect("sarif"))
            .expect("json");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        std::fs::read_to_string(estate.path("out/drift.html"))
            .expect("html")
            .starts_with("<!DOCTYPE html>")
    );
    assert!(estate.path("plan.json").exists());

    // -o: the file of the one --format, or the format from the extension.
    let output = estate.plan(&["--format", "csv", "-o", "findings.csv"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    assert!(
        std::fs::read_to_string(estate.path("findings.csv"))
            .expect("csv")
            .starts_with("id,kind,severity")
    );
    let output = estate.plan(&["-o", "results.xml"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        std::fs::read_to_string(estate.path("results.xml"))
            .expect("junit")
            .contains("<testsuites")
    );

    // Two outputs on stdout cannot be told apart: refused before anything is written.
    let output = estate.plan(&["--format", "sarif", "--format", "markdown"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("sarif, markdown would all go to stdout"),
        "{}",
        stderr(&output)
    );
    let output = estate.plan(&["-o", "report.pdf"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot tell the format"));
    let output = estate.plan(&["--format", "yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown format `yaml`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn report_renders_a_saved_plan_as_plan_would() {
    let estate = Estate::demo();
    estate.saved_plan();
    // The JSON round trip is byte-identical: nothing is lost or reordered by reading a plan.
    let output = estate.report(&["--plan", "plan.json", "--format", "json"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        output.stdout,
        std::fs::read(estate.path("plan.json")).expect("plan")
    );
    for format in FORMATS {
        let planned = estate.plan(&["--format", format]);
        let reported = estate.report(&["--plan", "plan.json", "--format", format]);
        if format == "json" {
            // A saved plan may also say who made it, when and where; the judgement must match.
            let mut saved: serde_json::Value =
                serde_json::from_slice(&reported.stdout).expect("json");
            saved.as_object_mut().expect("object").remove("made");
            let printed: serde_json::Value = serde_json::from_slice(&planned.stdout).expect("json");
            assert_eq!(printed, saved, "json differs between plan and report");
            continue;
        }
        assert_eq!(
            stdout(&planned),
            stdout(&reported),
            "{format} differs between plan and report"
        );
    }
    let stdin = lapse()
        .current_dir(estate.folder.path())
        .args(["report", "--plan", "-", "--format", "markdown"])
        .write_stdin(std::fs::read(estate.path("plan.json")).expect("plan"))
        .output()
        .expect("run");
    assert_eq!(stdin.status.code(), Some(2), "{}", stderr(&stdin));
    assert!(stdout(&stdin).starts_with("## lapse"));

    // A plan on stdin is checked like a plan file: a byte that is not UTF-8 is placed, and a
    // forged record is refused, not rendered.
    let mut bytes = std::fs::read(estate.path("plan.json")).expect("plan");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    let at = text.find("\"actions\"").expect("actions");
    bytes.insert(at + 1, 0xff);
    let garbled = lapse()
        .args(["report", "--plan", "-", "--format", "markdown"])
        .write_stdin(bytes)
        .output()
        .expect("run");
    assert_eq!(garbled.status.code(), Some(1), "{}", stderr(&garbled));
    assert!(
        stderr(&garbled).contains("<stdin>:") && stderr(&garbled).contains("not UTF-8"),
        "{}",
        stderr(&garbled)
    );
    let mut plan: serde_json::Value = serde_json::from_str(&text).expect("json");
    plan["actions"][0]["target_digest"] = serde_json::Value::from("0".repeat(64));
    let forged = lapse()
        .args(["report", "--plan", "-", "--format", "markdown"])
        .write_stdin(serde_json::to_vec(&plan).expect("json"))
        .output()
        .expect("run");
    assert_eq!(forged.status.code(), Some(1), "{}", stderr(&forged));
    assert!(stdout(&forged).is_empty(), "{}", stdout(&forged));
}

#[test]
fn report_exits_like_plan_and_refuses_what_is_not_a_plan_it_reads() {
    let estate = Estate::demo();
    let mut plan = estate.saved_plan();
    let code = |arguments: &[&str]| estate.report(arguments).status.code();
    assert_eq!(code(&["--plan", "plan.json", "--format", "json"]), Some(2));
    assert_eq!(
        code(&["--plan", "plan.json", "-f", "json", "--fail-on", "critical"]),
        Some(0)
    );
    assert_eq!(
        code(&["--plan", "plan.json", "-f", "json", "--fail-on", "none"]),
        Some(0)
    );

    plan["snapshot"]["complete"] = serde_json::Value::Bool(false);
    std::fs::write(estate.path("incomplete.json"), plan.to_string()).expect("write");
    assert_eq!(code(&["--plan", "incomplete.json", "-f", "json"]), Some(3));

    plan["version"] = serde_json::Value::from(99);
    std::fs::write(estate.path("newer.json"), plan.to_string()).expect("write");
    let output = estate.report(&["--plan", "newer.json", "-f", "json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("newer.json is plan format version 99; this lapse reads version 1"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());

    let output = estate.report(&["--plan", "examples/demo/aws-111122223333.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not a lapse plan (format \"lapse-snapshot\""),
        "{}",
        stderr(&output)
    );
    let output = estate.report(&["--plan", "missing.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read missing.json"));
}

/// The official SARIF 2.1.0 schema, vendored: `sarif-2.1.0.json` as shipped in the npm package
/// `@microsoft/sarif-multitool-linux` 5.7.0 (the SARIF SDK's copy of the OASIS schema, in JSON
/// Schema draft 2020-12; SHA-256
/// 1c49a0f2b60444c71bb14878e21e0d882198eff4c539861b133093ad89ed798c).
fn sarif_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("sarif", "sarif-schema-2.1.0.json")).expect("schema"),
    )
    .expect("schema json");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("valid schema")
}

#[test]
fn sarif_passes_the_official_schema_with_stable_fingerprints_and_policy_locations() {
    let estate = Estate::demo();
    let plan = estate.saved_plan();
    let output = estate.report(&["--plan", "plan.json", "--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sarif json");
    let validator = sarif_validator();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} error(s):\n{}",
        errors.len(),
        errors.join("\n")
    );
    // The validator does find errors: a result without its required message fails.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]
        .as_object_mut()
        .expect("result")
        .remove("message");
    assert!(!validator.is_valid(&broken));

    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 12, "one rule per finding kind");
    for rule in rules {
        assert!(
            rule["help"]["text"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
        );
        let tags = rule["properties"]["tags"].as_array().expect("tags");
        assert!(
            tags.iter()
                .any(|tag| tag.as_str().is_some_and(|tag| tag.starts_with("NIST-CSF")))
        );
        assert!(rule["properties"]["security-severity"].as_str().is_some());
    }
    let results = run["results"].as_array().expect("results");
    let findings = plan["findings"].as_array().expect("findings");
    assert_eq!(results.len(), findings.len());
    for (result, finding) in results.iter().zip(findings) {
        assert_eq!(result["ruleId"], finding["kind"]);
        assert_eq!(
            result["partialFingerprints"]["lapseFindingId/v1"],
            finding["id"]
        );
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(
            location["artifactLocation"]["uri"],
            "examples/demo/policy.yaml"
        );
        let line = location["region"]["startLine"].as_u64().expect("line");
        match finding["evidence"]["decided_by"]["origin"]["line"].as_u64() {
            Some(expected) => assert_eq!(line, expected),
            None => assert_eq!(line, 1, "lapse's own decisions point at the policy's start"),
        }
        assert_eq!(
            result["suppressions"].is_array(),
            finding["waived"].is_object(),
            "waived findings, and only they, are suppressed"
        );
    }
    // The same drift on the next run keeps its fingerprints.
    let later = estate.plan(&["--format", "sarif"]);
    let later: serde_json::Value = serde_json::from_slice(&later.stdout).expect("sarif");
    let fingerprints = |log: &serde_json::Value| -> Vec<String> {
        log["runs"][0]["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|result| result["partialFingerprints"]["lapseFindingId/v1"].to_string())
            .collect()
    };
    assert_eq!(fingerprints(&sarif), fingerprints(&later));
}

#[test]
fn an_incomplete_snapshot_is_a_tool_notification_in_sarif_and_an_error_in_junit() {
    let folder = tempfile::tempdir().expect("tempdir");
    let output = lapse()
        .current_dir(folder.path())
        .args(["plan", "--now", NOW, "--format", "sarif", "--policy"])
        .arg(fixture("incomplete", "policy.yaml"))
        .arg("--snapshot")
        .arg(fixture("incomplete", "snapshot.json"))
        .args(["--format", "junit=junit.xml"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3));
    let junit = std::fs::read_to_string(folder.path().join("junit.xml")).expect("junit");
    let document = roxmltree::Document::parse(&junit).expect("xml");
    let error = document
        .descendants()
        .find(|node| node.has_tag_name("error"))
        .expect("an erroring case");
    assert_eq!(
        error.parent().and_then(|case| case.attribute("name")),
        Some("scope-read-completely")
    );
    let sarif: serde_json::Value = serde_json::from_slice(&output.stdout).expect("sarif");
    let notifications = &sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert!(
        notifications
            .to_string()
            .contains("iam:GetAccountAuthorizationDetails"),
        "{notifications}"
    );
    assert!(sarif_validator().is_valid(&sarif));
}

#[test]
fn junit_parses_back_with_one_case_per_scope_and_kind() {
    let estate = Estate::demo();
    let plan = estate.saved_plan();
    let output = estate.report(&["--plan", "plan.json", "--format", "junit"]);
    let text = stdout(&output);
    let document = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<roxmltree::Node<'_, '_>> = root
        .children()
        .filter(|node| node.has_tag_name("testsuite"))
        .collect();
    let scopes = plan["scopes"].as_array().expect("scopes").len();
    assert_eq!(
        suites.len(),
        scopes + 1,
        "one suite per scope, plus the policy"
    );

    // Every (scope, kind) with open findings is exactly one failing case.
    let mut expected: Vec<(String, String)> = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding.get("waived").is_none())
        .map(|finding| {
            (
                finding["subject"]["scope"]
                    .as_str()
                    .unwrap_or("policy")
                    .to_owned(),
                finding["kind"].as_str().expect("kind").to_owned(),
            )
        })
        .collect();
    expected.sort();
    expected.dedup();
    let mut failing: Vec<(String, String)> = document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .filter(|case| case.children().any(|child| child.has_tag_name("failure")))
        .map(|case| {
            (
                case.attribute("classname").expect("classname").to_owned(),
                case.attribute("name").expect("name").to_owned(),
            )
        })
        .collect();
    failing.sort();
    assert_eq!(failing, expected);
    let cases = document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .count();
    assert_eq!(root.attribute("tests"), Some(cases.to_string().as_str()));
    assert_eq!(
        root.attribute("failures"),
        Some(expected.len().to_string().as_str())
    );
}

#[test]
fn csv_has_one_row_per_finding_with_every_evidence_column() {
    let estate = Estate::demo();
    let plan = estate.saved_plan();
    let output = estate.report(&["--plan", "plan.json", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    for column in [
        "id",
        "owner",
        "age_seconds",
        "last_used",
        "idle_seconds",
        "limit_seconds",
        "expired_at",
        "privileged",
        "via",
        "policy_line",
        "waiver_approved_by",
        "frameworks",
        "report_format",
    ] {
        assert!(header.iter().any(|name| name == column), "{column}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(|row| row.expect("row")).collect();
    let findings = plan["findings"].as_array().expect("findings");
    assert_eq!(rows.len(), findings.len());
    for (row, finding) in rows.iter().zip(findings) {
        assert_eq!(row.len(), header.len());
        assert_eq!(
            Some(row[0].to_owned()),
            finding["id"].as_str().map(str::to_owned)
        );
    }
}

#[test]
fn hostile_names_stay_text_in_every_format() {
    let estate = Estate::hostile();
    for format in FORMATS {
        let output = estate.plan(&["--format", format]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{format}: {}",
            stderr(&output)
        );
        let text = stdout(&output);
        match format {
            "html" => {
                assert!(!text.contains("<script>document.title"), "{format}");
                assert!(!text.contains("<img src=x"), "{format}");
            }
            "markdown" => {
                assert!(!text.contains("<script>"), "{format}");
                assert!(
                    text.contains("@&#8203;acme/admins"),
                    "{format}: mention broken"
                );
                assert!(!text.contains("admins | ops"), "{format}: pipe escaped");
            }
            "junit" => {
                roxmltree::Document::parse(&text).expect("still well-formed XML");
            }
            "csv" => {
                let mut reader = csv::Reader::from_reader(text.as_bytes());
                let cells: Vec<String> = reader
                    .records()
                    .flat_map(|row| {
                        row.expect("row")
                            .iter()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                assert!(
                    cells.iter().all(|cell| !cell.starts_with('=')),
                    "a formula cell survived"
                );
            }
            "sarif" => {
                let sarif: serde_json::Value = serde_json::from_str(&text).expect("json");
                assert!(sarif_validator().is_valid(&sarif));
            }
            _ => {}
        }
    }
}

#[test]
fn markdown_stays_under_the_comment_limit_on_a_100k_finding_estate() {
    // A plan built directly: the demo's findings repeated under new ids.
    let estate = Estate::demo();
    estate.saved_plan();
    let mut plan =
        lapse::report::read_plan(&estate.path("plan.json")).expect("the saved plan reads back");
    let template = plan.findings.clone();
    plan.findings = (0..100_000)
        .map(|index| {
            let mut finding = template[index % template.len()].clone();
            finding.id = format!("LPS-{index:012x}");
            finding.subject.id = format!("{}-{index}", finding.subject.id);
            finding
        })
        .collect();
    plan.summary.findings = plan.findings.len();
    plan.summary.open = plan
        .findings
        .iter()
        .filter(|finding| finding.is_open())
        .count();
    plan.summary.waived = plan.findings.len() - plan.summary.open;
    let markdown = render(&plan, Format::Markdown, &RenderOptions::default()).expect("render");
    let characters = markdown.chars().count();
    #[allow(clippy::print_stderr)] // the size is what the test measures: shown with --nocapture
    {
        eprintln!("markdown for 100,000 findings: {characters} characters");
    }
    assert!(characters <= COMMENT_LIMIT, "{characters} characters");
    assert!(
        characters > COMMENT_LIMIT - 5_000,
        "the budget is used: {characters}"
    );
    assert!(markdown.contains("**Truncated**"), "the cut is said");
    assert!(markdown.contains("<details><summary>All findings (100000)</summary>"));
    assert_eq!(
        markdown.matches("<details>").count(),
        markdown.matches("</details>").count()
    );
}

/// Headless Chromium, as the test script installs it. Absent, the test fails: the HTML report's
/// promise is that it works in a real browser.
fn chromium() -> PathBuf {
    let path = std::env::var_os("LAPSE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: scripts/test installs Debian's chromium package (or set LAPSE_CHROMIUM)",
        path.display()
    );
    path
}

fn headless(page: &Path, fragment: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let output = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(output.status.success(), "chromium: {}", stderr(&output));
    stdout(&output)
}

/// The text of the element with `id`, from a dumped DOM.
fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} in the page"));
    let text = &dom[start..];
    let open = text.find('>').expect("tag end") + 1;
    let close = text[open..].find('<').expect("text end");
    &text[open..open + close]
}

/// Table rows the filter left visible.
fn visible_rows(dom: &str) -> usize {
    dom.split("<tr data-finding=")
        .skip(1)
        .filter(|row| {
            let tag = &row[..row.find('>').unwrap_or(row.len())];
            !tag.contains("hidden")
        })
        .count()
}

#[test]
fn the_html_report_works_in_headless_chromium() {
    let estate = Estate::demo();
    let plan = estate.saved_plan();
    let output = estate.report(&["--plan", "plan.json", "--format", "html=report.html"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let page = estate.path("report.html");

    let dom = headless(&page, "", &["--dump-dom".to_owned()]);
    let findings = plan["findings"].as_array().expect("findings").len();
    assert_eq!(element_text(&dom, "finding-count"), findings.to_string());
    assert_eq!(element_text(&dom, "shown-count"), findings.to_string());
    assert_eq!(visible_rows(&dom), findings, "the script built every row");
    assert_eq!(
        element_text(&dom, "open-count"),
        plan["summary"]["open"].to_string()
    );

    // The filter box narrows the table: pre-set from the address, as a shared link would.
    let expected = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding.to_string().contains("legacy-exporter"))
        .count();
    assert!(expected > 0 && expected < findings);
    let filtered = headless(&page, "#filter=legacy-exporter", &["--dump-dom".to_owned()]);
    assert_eq!(element_text(&filtered, "shown-count"), expected.to_string());
    assert_eq!(visible_rows(&filtered), expected);
    // Sorted by age, oldest first: the first visible row is the oldest finding.
    let sorted = headless(&page, "#sort=-age", &["--dump-dom".to_owned()]);
    let first = sorted
        .split("<tr data-finding=\"")
        .nth(1)
        .and_then(|row| row.split('"').next())
        .expect("a row");
    let oldest = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|finding| finding["evidence"]["age"]["seconds"].is_null())
        .map(|finding| finding["id"].as_str().expect("id"))
        .min()
        .expect("unknown ages sort first");
    assert_eq!(first, oldest);

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = artifacts.join("lapse-report.png");
    let _ = std::fs::remove_file(&screenshot);
    headless(
        &page,
        "",
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,2400".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
    );
    let image = std::fs::read(&screenshot).expect("screenshot written");
    assert!(image.starts_with(b"\x89PNG"), "a PNG");
    #[allow(clippy::print_stderr)] // where the artifact is
    {
        eprintln!("screenshot: {}", screenshot.display());
    }
}

#[test]
fn hostile_names_do_not_run_in_the_browser() {
    let estate = Estate::hostile();
    let output = estate.plan(&["--format", "html=report.html"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let dom = headless(&estate.path("report.html"), "", &["--dump-dom".to_owned()]);
    assert!(dom.contains("<title>lapse drift report"), "the title stays");
    assert!(!dom.contains("pwned</title>"));
    assert!(!dom.contains("<img src=\"x\""), "no element from a name");
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
    assert_eq!(visible_rows(&dom), 2);
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definitions() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = lapse().args(["completions", shell]).output().expect("run");
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("lapse"), "{shell}");
        assert!(script.contains("report"), "{shell}: knows the subcommands");
    }
    let output = lapse().arg("man").output().expect("run");
    assert_eq!(output.status.code(), Some(0));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH lapse"),
        "{page}"
    );
    assert!(page.contains("report"));
}

#[test]
fn the_ci_examples_are_valid_yaml() {
    for file in [
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
    ] {
        let text = std::fs::read_to_string(repo(file)).expect(file);
        let document: serde_yaml::Value = serde_yaml::from_str(&text).expect(file);
        assert!(document.is_mapping(), "{file}");
        assert!(text.contains("--format"), "{file} renders reports");
        assert!(text.contains("sarif"), "{file}");
        assert!(text.contains(".lapse/state.db"), "{file} keeps state");
    }
}
