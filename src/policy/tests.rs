//! Policy loading: every error names file, line and column and says what was expected.

use std::path::PathBuf;

use super::*;

fn load_text(text: &str) -> Result<Policy> {
    from_sources(&[(PathBuf::from("policy.yaml"), text.to_owned())])
}

fn error_text(text: &str) -> String {
    match load_text(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_typo_in_a_key_names_file_line_column_and_the_expected_keys() {
    let message = error_text("version: 1\nrules:\n  - id: keys\n    max_aeg: 90d\n");
    assert!(
        message.contains("policy.yaml:4:5: rules[0]: unknown field `max_aeg`"),
        "{message}"
    );
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn a_wrong_duration_points_at_the_value() {
    let message = error_text("version: 1\ndefaults:\n  credential_max_age: 90 days\n");
    assert!(message.contains("policy.yaml:3:23:"), "{message}");
    assert!(message.contains("`90 days`"), "{message}");
    assert!(message.contains("such as 30m, 8h or 90d"), "{message}");
}

#[test]
fn a_yaml_syntax_error_is_positioned() {
    let message = error_text("version: 1\nrules:\n  - id: a\n  b: [\n");
    assert!(message.contains("policy.yaml:4:"), "{message}");
}

#[test]
fn an_unknown_credential_kind_lists_the_known_ones() {
    let message = error_text(
        "version: 1\nrules:\n  - id: k\n    match: {credential: aws-acess-key}\n    max_age: 90d\n",
    );
    assert!(message.contains("policy.yaml:4:"), "{message}");
    assert!(message.contains("aws-access-key"), "{message}");
}

#[test]
fn a_future_policy_version_is_refused_plainly() {
    let message = error_text("version: 2\n");
    assert!(
        message.contains("policy.yaml:1:10: version: policy version 2 is not supported"),
        "{message}"
    );
}

#[test]
fn a_missing_version_says_how_a_policy_starts() {
    let message = error_text("rules: []\n");
    assert!(message.contains("version: 1"), "{message}");
}

#[test]
fn duplicate_rule_ids_point_at_both() {
    let message =
        error_text("version: 1\nrules:\n  - id: a\n    max_ttl: 8h\n  - id: a\n    max_ttl: 1h\n");
    assert!(
        message.contains("policy.yaml:5:9: rule id `a` is already used at policy.yaml:3:5"),
        "{message}"
    );
}

#[test]
fn an_exception_for_a_missing_rule_lists_the_rules() {
    let message = error_text(
        "version: 1\nrules:\n  - id: keys\n    max_age: 90d\nexceptions:\n  - rule: kyes\n    principal: x\n    until: 2026-12-31\n    approved_by: bob\n    reason: migration\n",
    );
    assert!(
        message.contains("policy.yaml:6:11: exception names rule `kyes`"),
        "{message}"
    );
    assert!(message.contains("keys, defaults"), "{message}");
}

#[test]
fn a_rule_without_a_subject_or_limit_says_what_to_add() {
    let message = error_text("version: 1\nrules:\n  - id: vague\n    action: report\n");
    assert!(message.contains("subject: grants"), "{message}");
    let message = error_text("version: 1\nrules:\n  - id: empty\n    subject: grants\n");
    assert!(message.contains("sets no limit: add max_ttl"), "{message}");
}

#[test]
fn an_action_that_does_not_fit_the_subject_is_refused() {
    let message =
        error_text("version: 1\nrules:\n  - id: k\n    max_age: 90d\n    action: revoke\n");
    assert!(
        message.contains("policy.yaml:5:13: action `revoke` does not apply to credentials"),
        "{message}"
    );
}

#[test]
fn an_exception_needs_an_approver_and_a_target() {
    let message = error_text(
        "version: 1\nexceptions:\n  - principal: x\n    until: 2026-12-31\n    approved_by: ''\n    reason: r\n",
    );
    assert!(message.contains("must say what it waives"), "{message}");
    assert!(message.contains("`approved_by` is empty"), "{message}");
}

#[test]
fn folders_merge_and_a_default_set_twice_is_refused() {
    let sources = vec![
        (
            PathBuf::from("a.yaml"),
            "version: 1\ndefaults: {credential_max_age: 90d}\nrules:\n  - id: a\n    max_ttl: 8h\n"
                .to_owned(),
        ),
        (
            PathBuf::from("b.yaml"),
            "version: 1\ndefaults: {credential_max_age: 30d}\n".to_owned(),
        ),
    ];
    let message = from_sources(&sources).expect_err("conflict").to_string();
    assert!(
        message.contains("b.yaml:2:32: `defaults.credential_max_age` is already set at a.yaml:2"),
        "{message}"
    );
}

#[test]
fn a_valid_policy_compiles_with_origins_and_a_digest() {
    let policy = load_text(
        "version: 1\ndefaults:\n  credential_max_age: 90d\ngrants:\n  - principal: arn:aws:iam::1:role/ci\n    entitlement: arn:aws:iam::aws:policy/PowerUserAccess\n    expires: 2027-03-31\n",
    )
    .expect("valid");
    assert_eq!(policy.grants[0].origin.line, 5);
    assert_eq!(policy.grants[0].cloud, Some(Cloud::Aws));
    assert_eq!(
        policy.grants[0].expires.map(|t| t.to_string()).as_deref(),
        Some("2027-04-01T00:00:00Z")
    );
    assert!(policy.digest.starts_with("sha256:"));
    assert_eq!(policy.defaults.owner_tags, vec!["lapse:owner", "owner"]);
}

#[test]
fn the_schema_names_every_section() {
    let schema = serde_json::to_value(json_schema()).expect("schema");
    let properties = &schema["properties"];
    for key in [
        "version",
        "scopes",
        "defaults",
        "privileged",
        "protect",
        "grants",
        "rules",
        "exceptions",
        "owners",
    ] {
        assert!(properties.get(key).is_some(), "schema lacks {key}");
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}

#[cfg(unix)]
#[test]
fn a_folder_linked_back_to_its_parent_is_read_once() {
    let folder = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        folder.path().join("policy.yaml"),
        "version: 1\nrules:\n  - {id: keys, max_age: 90d}\n",
    )
    .expect("write");
    std::fs::create_dir(folder.path().join("team")).expect("mkdir");
    std::os::unix::fs::symlink("..", folder.path().join("team/loop")).expect("symlink");
    std::os::unix::fs::symlink("../policy.yaml", folder.path().join("team/shared.yaml"))
        .expect("symlink");
    // Before, the link was followed forty levels deep, reading the file again at each, until
    // the system refused the path ("too many levels of symbolic links").
    let policy = load(folder.path()).expect("one policy");
    assert_eq!(policy.files.len(), 1, "{:?}", policy.files);
    assert_eq!(policy.rules.len(), 1);
}
