//! `lapse plan`: exit codes, saved plans, stable outputs.

use crate::*;

#[test]
fn drift_exits_2_and_the_json_plan_is_versioned() {
    let (code, plan) = plan_json(
        &fixture("basic", "policy.yaml"),
        &[fixture("basic", "snapshot.json")],
    );
    assert_eq!(code, 2);
    assert_eq!(plan["format"], "lapse-plan");
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["now"], NOW);
    assert_eq!(plan["summary"]["open"], 4);
    assert_eq!(plan["summary"]["waived"], 1);
    let actions = plan["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["action"], "revoke-grant");
    assert_eq!(
        actions[0]["grant"]["principal"],
        "arn:aws:iam::111122223333:user/ana"
    );
}

#[test]
fn fail_on_high_ignores_lower_drift_and_none_never_fails() {
    let run = |level: &str| {
        lapse()
            .args([
                "plan",
                "--now",
                NOW,
                "--format",
                "json",
                "--fail-on",
                level,
                "--no-state",
                "--policy",
            ])
            .arg(fixture("basic", "policy.yaml"))
            .arg("--snapshot")
            .arg(fixture("basic", "snapshot.json"))
            .output()
            .expect("run")
            .status
            .code()
    };
    assert_eq!(run("high"), Some(2), "a high finding is there");
    assert_eq!(run("critical"), Some(0));
    assert_eq!(run("none"), Some(0));
}

#[test]
fn an_incomplete_scope_exits_3_even_with_nothing_found() {
    let (code, plan) = plan_json(
        &fixture("incomplete", "policy.yaml"),
        &[fixture("incomplete", "snapshot.json")],
    );
    assert_eq!(code, 3);
    assert_eq!(plan["snapshot"]["complete"], false);
    assert_eq!(plan["summary"]["incomplete_scopes"], 1);
    // The declared grant cannot be called missing from an account that could not be read.
    let kinds: Vec<&str> = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| finding["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(!kinds.contains(&"declared-missing"), "{kinds:?}");
}

#[test]
fn the_table_names_incomplete_scopes_and_the_missing_permission() {
    lapse()
        .args(["plan", "--now", NOW, "--format", "table", "--policy"])
        .arg(fixture("incomplete", "policy.yaml"))
        .arg("--no-state")
        .arg("--snapshot")
        .arg(fixture("incomplete", "snapshot.json"))
        .assert()
        .code(3)
        .stdout(predicate::str::contains("INCOMPLETE aws:111122223333"))
        .stdout(predicate::str::contains(
            "missing permission: iam:GetAccountAuthorizationDetails",
        ));
}

#[test]
fn out_saves_the_same_plan_as_stdout_json() {
    let folder = tempfile::tempdir().expect("tempdir");
    let out = folder.path().join("plan.json");
    let output = lapse()
        .args(["plan", "--now", NOW, "--format", "json", "--policy"])
        .arg(fixture("basic", "policy.yaml"))
        .arg("--no-state")
        .arg("--snapshot")
        .arg(fixture("basic", "snapshot.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(std::fs::read(&out).expect("plan file"), output.stdout);
}

#[test]
fn the_table_and_json_outputs_are_stable() {
    let table = lapse()
        .args(["plan", "--now", NOW, "--format", "table", "--policy"])
        .arg(fixture("basic", "policy.yaml"))
        .arg("--no-state")
        .arg("--snapshot")
        .arg(fixture("basic", "snapshot.json"))
        .output()
        .expect("run");
    insta::assert_snapshot!("basic_table", String::from_utf8_lossy(&table.stdout));
    let (_, mut plan) = plan_json(
        &fixture("basic", "policy.yaml"),
        &[fixture("basic", "snapshot.json")],
    );
    // Paths differ between machines; everything else must not. The policy digest covers the
    // file names as given, which are absolute here.
    plan["policy"]["files"] = Value::Null;
    plan["policy"]["digest"] = Value::from("[digest of the policy paths and contents]");
    for finding in plan["findings"].as_array_mut().expect("findings") {
        for origin in ["decided_by", "waived"] {
            let holder = if origin == "waived" {
                &mut finding["waived"]
            } else {
                &mut finding["evidence"]["decided_by"]
            };
            if holder.get("origin").is_some() {
                holder["origin"]["file"] = Value::from("[policy]");
            }
        }
    }
    insta::assert_json_snapshot!("basic_plan", plan);
}
