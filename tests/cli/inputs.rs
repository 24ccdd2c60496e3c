//! Bad input: every error names where, exits 1, and writes nothing.

use crate::*;

fn plan_with_policy(text: &str) -> (assert_cmd::assert::Assert, tempfile::TempDir, PathBuf) {
    let (folder, path) = temp_policy(text);
    let out = folder.path().join("plan.json");
    let assert = lapse()
        .args(["plan", "--now", NOW, "--policy"])
        .arg(&path)
        .arg("--snapshot")
        .arg(fixture("basic", "snapshot.json"))
        .arg("--out")
        .arg(&out)
        .assert();
    (assert, folder, out)
}

#[test]
fn a_typo_in_a_key_is_an_error_naming_file_line_and_column_and_writes_nothing() {
    let (assert, _folder, out) =
        plan_with_policy("version: 1\ndefaults:\n  credential_max_aeg: 90d\n");
    assert
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "policy.yaml:3:3: defaults: unknown field `credential_max_aeg`",
        ))
        .stderr(predicate::str::contains("expected one of"));
    assert!(!out.exists(), "no plan may be written from a bad policy");
}

#[test]
fn a_wrong_duration_is_an_error_at_its_value() {
    let (assert, _folder, out) =
        plan_with_policy("version: 1\nrules:\n  - id: keys\n    max_age: ninety days\n");
    assert.code(1).stderr(predicate::str::contains(
        "policy.yaml:4:14: rules[0].max_age: `ninety days`",
    ));
    assert!(!out.exists());
}

#[test]
fn a_yaml_syntax_error_is_an_error_with_its_position() {
    let (assert, _folder, out) =
        plan_with_policy("version: 1\ngrants:\n  - principal: [unclosed\n");
    assert
        .code(1)
        .stderr(predicate::str::is_match(r"policy\.yaml:\d+:\d+: ").expect("regex"));
    assert!(!out.exists());
}

#[test]
fn an_unreadable_policy_is_an_error_that_names_it() {
    lapse()
        .args([
            "plan",
            "--now",
            NOW,
            "--policy",
            "no/such/policy.yaml",
            "--snapshot",
        ])
        .arg(fixture("basic", "snapshot.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read no/such/policy.yaml"));
}

#[test]
fn a_snapshot_of_an_unknown_version_is_refused_with_what_to_do() {
    let folder = tempfile::tempdir().expect("tempdir");
    let snapshot = folder.path().join("future.json");
    std::fs::write(&snapshot, r#"{"format":"lapse-snapshot","version":9,"taken_at":"2026-11-20T06:00:00Z","scopes":[],"hologram":[]}"#).expect("write");
    let out = folder.path().join("plan.json");
    lapse()
        .args(["plan", "--now", NOW, "--policy"])
        .arg(fixture("basic", "policy.yaml"))
        .arg("--snapshot")
        .arg(&snapshot)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "future.json: snapshot format version 9 is not supported",
        ))
        .stderr(predicate::str::contains("upgrade lapse"));
    assert!(!out.exists());
}

#[test]
fn a_malformed_snapshot_names_line_and_column() {
    let folder = tempfile::tempdir().expect("tempdir");
    let snapshot = folder.path().join("broken.json");
    std::fs::write(
        &snapshot,
        "{\"format\": \"lapse-snapshot\",\n \"version\": 1,\n \"taken_at\": oops}",
    )
    .expect("write");
    lapse()
        .args(["plan", "--now", NOW, "--policy"])
        .arg(fixture("basic", "policy.yaml"))
        .arg("--snapshot")
        .arg(&snapshot)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "broken.json: not a lapse snapshot: expected value at line 3 column 14",
        ));
}

#[test]
fn usage_errors_exit_1_not_the_drift_code() {
    lapse().args(["plan", "--bogus"]).assert().code(1);
    lapse().arg("--help").assert().code(0);
}

#[test]
fn a_bad_now_is_an_error() {
    lapse()
        .args(["plan", "--now", "next monday", "--policy"])
        .arg(fixture("basic", "policy.yaml"))
        .arg("--snapshot")
        .arg(fixture("basic", "snapshot.json"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--now"));
}
