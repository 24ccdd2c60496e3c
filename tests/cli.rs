//! End-to-end tests of the `lapse` binary: exit codes, outputs, and bad input.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const NOW: &str = "2026-11-20T06:00:00Z";

fn lapse() -> Command {
    let mut command = Command::cargo_bin("lapse").expect("lapse binary");
    command.env_remove("LAPSE_POLICY").env("NO_COLOR", "1");
    command
}

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join(file)
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn demo_snapshots() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("examples/demo"))
        .expect("examples/demo")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

fn plan_json(policy: &Path, snapshots: &[PathBuf]) -> (i32, Value) {
    let output = lapse()
        .arg("plan")
        .arg("--policy")
        .arg(policy)
        .arg("--snapshot")
        .args(snapshots)
        .args(["--now", NOW, "--format", "json"])
        .output()
        .expect("run");
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().expect("exit code"), json)
}

/// Writes `text` to a temporary policy file and returns its folder and path.
fn temp_policy(text: &str) -> (tempfile::TempDir, PathBuf) {
    let folder = tempfile::tempdir().expect("tempdir");
    let path = folder.path().join("policy.yaml");
    std::fs::write(&path, text).expect("write");
    (folder, path)
}

mod plan {
    use super::*;

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
            .arg("--snapshot")
            .arg(fixture("basic", "snapshot.json"))
            .output()
            .expect("run");
        insta::assert_snapshot!("basic_table", String::from_utf8_lossy(&table.stdout));
        let (_, mut plan) = plan_json(
            &fixture("basic", "policy.yaml"),
            &[fixture("basic", "snapshot.json")],
        );
        // Paths differ between machines; everything else must not.
        plan["policy"]["files"] = Value::Null;
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
}

mod inputs {
    use super::*;

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
}

mod commands {
    use super::*;

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
}

mod examples {
    use super::*;

    #[test]
    fn the_demo_shows_every_finding_kind_and_exits_2() {
        let (code, plan) = plan_json(&repo("examples/demo/policy.yaml"), &demo_snapshots());
        assert_eq!(code, 2);
        let by_kind = plan["summary"]["by_kind"].as_object().expect("by_kind");
        for kind in [
            "standing-privilege",
            "undeclared-grant",
            "declared-grant-expired",
            "ttl-exceeded",
            "credential-too-old",
            "credential-idle",
            "principal-idle",
            "unowned",
            "static-credential",
            "exception-expired",
            "declared-missing",
            "expired-binding",
        ] {
            assert!(
                by_kind.contains_key(kind),
                "the demo lacks {kind}: {by_kind:?}"
            );
        }
        assert!(plan["summary"]["waived"].as_u64().unwrap_or(0) > 0);
        assert!(!plan["protected"].as_array().expect("protected").is_empty());
        let clouds: std::collections::BTreeSet<&str> = plan["scopes"]
            .as_array()
            .expect("scopes")
            .iter()
            .map(|scope| scope["cloud"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            clouds.into_iter().collect::<Vec<_>>(),
            ["aws", "azure", "gcp"]
        );
    }

    #[test]
    fn every_policy_pack_validates_and_plans_the_demo() {
        for pack in [
            "policies/baseline.yaml",
            "policies/strict-jit.yaml",
            "policies/cis-key-hygiene.yaml",
        ] {
            lapse()
                .arg("validate")
                .arg("--policy")
                .arg(repo(pack))
                .assert()
                .success();
            let (code, plan) = plan_json(&repo(pack), &demo_snapshots());
            assert!(code == 0 || code == 2, "{pack} exited {code}");
            assert_eq!(plan["format"], "lapse-plan", "{pack}");
        }
    }

    #[test]
    fn the_strict_pack_is_stricter_than_the_baseline() {
        let (_, baseline) = plan_json(&repo("policies/baseline.yaml"), &demo_snapshots());
        let (_, strict) = plan_json(&repo("policies/strict-jit.yaml"), &demo_snapshots());
        let actions = |plan: &Value| plan["summary"]["actions"].as_u64().unwrap_or(0);
        assert!(
            actions(&strict) > actions(&baseline),
            "strict {} vs baseline {}",
            actions(&strict),
            actions(&baseline)
        );
    }
}
