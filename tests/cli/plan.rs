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

/// `plan` over the demo policy and only the AWS file of its three, as a CI matrix whose Azure
/// and Google jobs left no file would run it.
fn demo_aws_only(extra: &[&str]) -> std::process::Output {
    lapse()
        .args(["plan", "--now", NOW, "--no-state", "--policy"])
        .arg(repo("examples/demo/policy.yaml"))
        .arg("--snapshot")
        .arg(repo("examples/demo/aws-111122223333.json"))
        .args(extra)
        .output()
        .expect("run")
}

const UNREAD: [&str; 3] = [
    "azure:/subscriptions/3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17",
    "azure:/tenants/contoso.onmicrosoft.com",
    "gcp:projects/acme-prod",
];

#[test]
fn scopes_the_policy_names_and_no_file_covers_are_not_read_and_exit_3() {
    let output = demo_aws_only(&["--format", "json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let plan: Value = serde_json::from_slice(&output.stdout).expect("plan");
    assert_eq!(plan["snapshot"]["complete"], false);
    assert_eq!(plan["summary"]["incomplete_scopes"], 3);
    let unread: Vec<&str> = plan["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter(|scope| scope["complete"] == false)
        .map(|scope| {
            assert!(
                scope["errors"][0]["message"].as_str().is_some_and(
                    |message| message.starts_with("not read: no snapshot file covers it")
                ),
                "{scope}"
            );
            scope["id"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(unread, UNREAD);
    for scope in UNREAD {
        assert!(stderr.contains(scope), "{stderr}");
    }
    // The AWS findings are still there: a lower bound, not nothing.
    assert!(plan["summary"]["open"].as_u64().unwrap_or(0) > 0);

    lapse()
        .args(["plan", "--now", NOW, "--no-state", "--format", "table"])
        .arg("--policy")
        .arg(repo("examples/demo/policy.yaml"))
        .arg("--snapshot")
        .arg(repo("examples/demo/aws-111122223333.json"))
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "INCOMPLETE gcp:projects/acme-prod",
        ))
        .stdout(predicate::str::contains(
            "INCOMPLETE azure:/tenants/contoso.onmicrosoft.com",
        ))
        .stdout(predicate::str::contains(
            "not read: no snapshot file covers it",
        ));
}

#[test]
fn a_run_narrowed_on_purpose_judges_only_what_it_names_and_says_what_it_left_out() {
    for narrowing in [
        &["--provider", "aws"][..],
        &["--scope", "aws:111122223333"][..],
    ] {
        let output = demo_aws_only(&[&["--format", "json"][..], narrowing].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{narrowing:?}: {stderr}");
        let plan: Value = serde_json::from_slice(&output.stdout).expect("plan");
        assert_eq!(plan["snapshot"]["complete"], true);
        let scopes: Vec<&str> = plan["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .map(|scope| scope["id"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(scopes, ["aws:111122223333"]);
        let left_out: Vec<&str> = plan["narrowed"]["left_out"]
            .as_array()
            .expect("the plan says what it left out")
            .iter()
            .map(|scope| scope.as_str().unwrap_or_default())
            .collect();
        assert_eq!(left_out, UNREAD, "{narrowing:?}");
        assert!(stderr.contains("narrowed on purpose"), "{stderr}");
    }
    // The demo's other files hold Azure and Google records: narrowed to AWS, none is judged.
    let output = lapse()
        .args(["plan", "--now", NOW, "--no-state", "--format", "json"])
        .args(["--provider", "aws", "--policy"])
        .arg(repo("examples/demo/policy.yaml"))
        .arg("--snapshot")
        .args(demo_snapshots())
        .output()
        .expect("run");
    let plan: Value = serde_json::from_slice(&output.stdout).expect("plan");
    assert!(
        plan["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .all(|finding| finding["subject"]["cloud"] == "aws"
                || finding["subject"]["cloud"].is_null()),
        "only AWS is judged"
    );
    assert_eq!(plan["narrowed"]["clouds"], serde_json::json!(["aws"]));
}

#[test]
fn a_scope_named_to_judge_that_no_file_covers_is_not_read() {
    let output = demo_aws_only(&["--format", "json", "--scope", "gcp:projects/acme-staging"]);
    assert_eq!(output.status.code(), Some(3));
    let plan: Value = serde_json::from_slice(&output.stdout).expect("plan");
    let states: Vec<(&str, bool)> = plan["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| {
            (
                scope["id"].as_str().unwrap_or_default(),
                scope["complete"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(states, [("gcp:projects/acme-staging", false)]);
}

#[test]
fn live_scope_flags_over_files_and_scope_without_files_are_refused() {
    let output = demo_aws_only(&["--account", "111122223333"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--scope aws:111122223333"), "{stderr}");
    lapse()
        .args([
            "plan",
            "--no-state",
            "--scope",
            "aws:111122223333",
            "--policy",
        ])
        .arg(repo("examples/demo/policy.yaml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--snapshot"));
    let output = demo_aws_only(&["--scope", "111122223333"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("is not a scope id"), "{stderr}");
}

#[test]
fn every_form_of_lapses_own_identity_is_protected_and_the_plan_says_why() {
    let (code, plan) = plan_json(
        &fixture("own-identity", "policy.yaml"),
        &[fixture("own-identity", "snapshot.json")],
    );
    assert_eq!(code, 2);
    const APPLICATION: &str = "a1b2c3d4-0000-4000-8000-00000000a001";
    const GROUP: &str = "a1b2c3d4-0000-4000-8000-00000000a002";
    const CHAIN: &str = "serviceAccount:lapse-impersonator@acme-ops.iam.gserviceaccount.com";
    // Nothing lapse reads or acts as is planned: not the application's secret, not the group's
    // role, not the impersonated account's key or grant.
    let targeted: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| {
            action["grant"]["principal"]
                .as_str()
                .or(action["credential"]["principal"].as_str())
                .unwrap_or_default()
        })
        .collect();
    for own in [APPLICATION, GROUP, CHAIN] {
        assert!(!targeted.contains(&own), "{own} is targeted: {targeted:?}");
    }
    // The same rules still reach another team's identities.
    assert_eq!(
        targeted,
        [
            "a1b2c3d4-0000-4000-8000-00000000a003",
            "a1b2c3d4-0000-4000-8000-00000000a003",
            "serviceAccount:legacy-exporter@acme-prod.iam.gserviceaccount.com"
        ]
    );
    let protected: Vec<(&str, &str, u64, u64)> = plan["protected"]
        .as_array()
        .expect("protected")
        .iter()
        .map(|entry| {
            (
                entry["principal"].as_str().unwrap_or_default(),
                entry["reason"].as_str().unwrap_or_default(),
                entry["grants"].as_u64().unwrap_or_default(),
                entry["credentials"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let azure = "lapse's own identity: holds lapse's own access (caller e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02)";
    assert!(
        protected.contains(&(APPLICATION, azure, 0, 1)),
        "{protected:?}"
    );
    assert!(protected.contains(&(GROUP, azure, 1, 0)), "{protected:?}");
    assert!(
        protected.contains(&(
            CHAIN,
            "lapse's own identity: holds lapse's own access (caller serviceAccount:lapse-reader@acme-ops.iam.gserviceaccount.com)",
            1,
            1
        )),
        "{protected:?}"
    );
}
