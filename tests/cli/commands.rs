//! `validate`, `init`, `schema` and policy folders.

use crate::*;

#[test]
fn validate_summarizes_a_good_policy_and_rejects_a_bad_one() {
    lapse()
        .arg("validate")
        .arg("--policy")
        .arg(fixture("basic", "policy.yaml"))
        .arg("--snapshot")
        .arg(fixture("basic", "snapshot.json"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "policy ok: 1 file(s), 1 declared grant(s)",
        ))
        .stdout(predicate::str::contains(
            "snapshot ok: 1 file(s), 1 scope(s) (0 incomplete), 4 principals",
        ));
    let (_folder, path) = temp_policy("version: 1\nprotect:\n  - {}\n");
    lapse()
        .arg("validate")
        .arg("--policy")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "policy.yaml:3:3: an empty `protect` entry would protect everything",
        ));
}

#[test]
fn a_policy_folder_merges_its_files() {
    let folder = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        folder.path().join("10-defaults.yaml"),
        "version: 1\ndefaults: {credential_max_age: 90d}\n",
    )
    .expect("write");
    std::fs::create_dir(folder.path().join("teams")).expect("mkdir");
    std::fs::write(
        folder.path().join("teams/platform.yml"),
        "version: 1\ngrants:\n  - {principal: 'arn:aws:iam::111122223333:user/ana', entitlement: 'arn:aws:iam::aws:policy/AdministratorAccess', owner: sre}\n",
    )
    .expect("write");
    let (_, plan) = plan_json(folder.path(), &[fixture("basic", "snapshot.json")]);
    assert_eq!(plan["policy"]["files"].as_array().map(Vec::len), Some(2));
    let findings: Vec<(&str, &str)> = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|finding| {
            (
                finding["kind"].as_str().unwrap_or_default(),
                finding["subject"]["principal"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        !findings.contains(&("standing-privilege", "arn:aws:iam::111122223333:user/ana")),
        "the team file declares ana's admin access: {findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|(kind, _)| *kind == "credential-too-old"),
        "the defaults file applies: {findings:?}"
    );
}

#[test]
fn init_writes_a_policy_that_plans_clean_and_refuses_to_overwrite() {
    let folder = tempfile::tempdir().expect("tempdir");
    let policy = folder.path().join("adopted.yaml");
    let mut snapshots = demo_snapshots();
    snapshots.push(fixture("basic", "snapshot.json"));
    lapse()
        .args(["init", "--now", NOW, "--out"])
        .arg(&policy)
        .arg("--snapshot")
        .args(&snapshots)
        .assert()
        .success();
    let (code, plan) = plan_json(&policy, &snapshots);
    assert_eq!(code, 0, "adoption starts clean: {}", plan["summary"]);
    assert!(
        plan["summary"]["waived"].as_u64().unwrap_or(0) > 0,
        "today's hygiene findings are waived, not hidden"
    );
    lapse()
        .args(["init", "--now", NOW, "--out"])
        .arg(&policy)
        .arg("--snapshot")
        .args(&snapshots)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--force"));
}

#[test]
fn schema_prints_the_policy_schema_for_editors() {
    let output = lapse().args(["schema", "policy"]).output().expect("run");
    let schema: Value = serde_json::from_slice(&output.stdout).expect("json schema");
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["rules"].is_object());
    for kind in ["snapshot", "plan"] {
        let output = lapse().args(["schema", kind]).output().expect("run");
        let schema: Value = serde_json::from_slice(&output.stdout).expect("json schema");
        assert!(schema["properties"]["version"].is_object(), "{kind}");
    }
}

#[test]
fn plain_http_endpoints_to_another_machine_are_refused_before_any_call() {
    let refused = |args: &[&str], environment: &[(&str, &str)], setting: &str| {
        let started = std::time::Instant::now();
        let mut command = lapse();
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_STS",
        ] {
            command.env_remove(name);
        }
        let output = command
            .envs(environment.iter().copied())
            .args(args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(setting) && stderr.contains("loopback"),
            "{args:?}: {stderr}"
        );
        // Refused up front: 192.0.2.0/24 is never routed, so a call would hang, not fail.
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    };
    refused(
        &[
            "snapshot",
            "--provider",
            "aws",
            "--account",
            "111122223333",
            "--aws-endpoint-url",
            "http://192.0.2.10:5000",
        ],
        &[],
        "--aws-endpoint-url",
    );
    refused(
        &["snapshot", "--provider", "aws", "--account", "111122223333"],
        &[("AWS_ENDPOINT_URL", "http://192.0.2.10:5000")],
        "AWS_ENDPOINT_URL",
    );
    refused(
        &["snapshot", "--provider", "azure", "--subscription", "s1"],
        &[("LAPSE_AZURE_GRAPH_URL", "http://graph.example.com")],
        "LAPSE_AZURE_GRAPH_URL",
    );
    let policy = repo("examples/demo/policy.yaml");
    refused(
        &[
            "plan",
            "--no-state",
            "--policy",
            policy.to_str().expect("utf-8 path"),
            "--provider",
            "gcp",
            "--gcp-oauth2-url",
            "http://oauth2.example.com",
        ],
        &[],
        "--gcp-oauth2-url",
    );
}
