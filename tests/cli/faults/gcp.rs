//! Faults between lapse and the Google Cloud fake, through the binary with `--timeout 3s`: a
//! connection that hangs, one reset, a 5xx on page 2 of a two-page list, throttling without
//! end, a body cut short (length header matching), an empty 200, a body that is not JSON.
//!
//! For each: `snapshot` and `plan` exit 3 with the scope incomplete and the operation named,
//! and `apply --execute` of a plan made before the fault (its one action a key deactivation,
//! whose read before the write meets the fault) exits 1 with no write reaching the fake; every
//! command ends well within 30 s.

use std::time::{Duration, Instant};

use lapse_provider_gcp::fake::{Fault, Injection};
use serde_json::{Value, json};

use crate::NOW;
use crate::gcp::{CALLER, PROJECT, World, old_key};
use crate::live::{LiveWorld, output_text};

/// Far beyond `--timeout 3s` and its few operations: reaching it means a bound did not hold.
const BOUND: Duration = Duration::from_secs(30);

/// One row of the matrix: the fault, where `snapshot` and `plan` meet it, and the operation
/// their incomplete scope must name.
struct Case {
    fault: Fault,
    /// A `<path>?<query>` part the fault is put on.
    target: &'static str,
    /// After how many targeted requests it starts (page k of a list: k - 1).
    after: u32,
    operation: &'static str,
}

const ACCOUNT_LIST: &str = "/v1/projects/acme-prod/serviceAccounts?";
const PROJECT_POLICY: &str = "/v3/projects/acme-prod:getIamPolicy?";

/// The fake of `tests/cli/gcp.rs` with only declared or protected bindings and a two-page
/// account list, so a plan holds one action: deactivating the old key.
fn world() -> World {
    let world = World::new();
    world.fake.set_bindings(
        &format!("projects/{PROJECT}"),
        json!([
            {"role": "roles/owner", "members": ["group:sre@acme.example"]},
            {"role": "roles/pubsub.serviceAgent",
             "members": ["serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"]},
            {"role": "roles/iam.securityReviewer", "members": [format!("serviceAccount:{CALLER}")]}
        ]),
    );
    world.fake.limit_page_size(1);
    world
}

fn operations(scopes: &Value) -> Vec<String> {
    scopes
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|scope| scope["errors"].as_array().cloned().unwrap_or_default())
        .filter_map(|error| error["operation"].as_str().map(str::to_owned))
        .collect()
}

fn held(case: &Case) {
    let world = world();
    let plan = world.plan();
    let targets: Vec<&Value> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| &action["credential"]["id"])
        .collect();
    assert_eq!(targets, vec![&json!(old_key())], "{:#}", plan["actions"]);
    let injection = || {
        Injection::new(case.target, case.fault)
            .after(case.after)
            .retry_after(1)
    };

    // snapshot
    world.fake.inject(injection());
    let out = world.path("faulted-snapshot.json");
    let started = Instant::now();
    let output = world
        .lapse("snapshot")
        .args([
            "--provider",
            "gcp",
            "--project",
            PROJECT,
            "--timeout",
            "3s",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("snapshot");
    let elapsed = started.elapsed();
    let context = format!(
        "{:?} on {}: {}",
        case.fault,
        case.target,
        output_text(&output)
    );
    assert!(elapsed < BOUND, "{context}: took {elapsed:?}");
    assert_eq!(output.status.code(), Some(3), "{context}");
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("snapshot file")).expect("json");
    assert_eq!(snapshot["scopes"][0]["complete"], false, "{context}");
    assert!(
        operations(&snapshot["scopes"]).contains(&case.operation.to_owned()),
        "{context}: {:#}",
        snapshot["scopes"]
    );
    if case.fault == Fault::Hang {
        assert!(
            output_text(&output).contains("timed out after 3s") || {
                snapshot["scopes"][0]["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("timed out after 3s"))
            },
            "{context}: {:#}",
            snapshot["scopes"]
        );
    }

    // plan, which reads live the same way
    world.fake.clear_faults();
    world.fake.inject(injection());
    let started = Instant::now();
    let output = world
        .lapse("plan")
        .args([
            "--now",
            NOW,
            "--format",
            "json",
            "--timeout",
            "3s",
            "--policy",
        ])
        .arg(&world.policy)
        .output()
        .expect("plan");
    let elapsed = started.elapsed();
    let context = format!("plan, {context}");
    assert!(elapsed < BOUND, "{context}: took {elapsed:?}");
    assert_eq!(output.status.code(), Some(3), "{context}");
    let faulted: Value = serde_json::from_slice(&output.stdout).expect("plan json");
    assert!(
        operations(&faulted["scopes"]).contains(&case.operation.to_owned()),
        "{context}"
    );

    // apply of the plan made before the fault: the read before its one write meets it.
    world.fake.clear_faults();
    world
        .fake
        .inject(Injection::new(&format!("{}?", old_key()), case.fault).retry_after(1));
    let started = Instant::now();
    let output = world
        .lapse("apply")
        .arg(world.path("plan.json"))
        .arg("--journal")
        .arg(world.path("journal.jsonl"))
        .args([
            "--now",
            NOW,
            "--format",
            "json",
            "--execute",
            "--yes",
            "--timeout",
            "3s",
        ])
        .output()
        .expect("apply");
    let elapsed = started.elapsed();
    let context = format!("apply, {context}");
    assert!(elapsed < BOUND, "{context}: took {elapsed:?}");
    assert_eq!(output.status.code(), Some(1), "{context}");
    assert!(
        world.fake.writes().is_empty(),
        "{context}: {:?}",
        world.fake.writes()
    );
    assert!(!world.key_disabled(&old_key()));
}

#[test]
fn a_hang_ends_within_the_bound_and_says_it_timed_out() {
    held(&Case {
        fault: Fault::Hang,
        target: ACCOUNT_LIST,
        after: 0,
        operation: "iam.projects.serviceAccounts.list",
    });
}

#[test]
fn a_connection_reset() {
    held(&Case {
        fault: Fault::Reset,
        target: PROJECT_POLICY,
        after: 0,
        operation: "cloudresourcemanager.projects.getIamPolicy",
    });
}

#[test]
fn a_5xx_on_page_two_of_a_list() {
    held(&Case {
        fault: Fault::Status(500),
        target: ACCOUNT_LIST,
        after: 1,
        operation: "iam.projects.serviceAccounts.list",
    });
}

#[test]
fn throttling_without_end() {
    held(&Case {
        fault: Fault::Status(429),
        target: "/keys?",
        after: 0,
        operation: "iam.projects.serviceAccounts.keys.list",
    });
}

#[test]
fn a_body_cut_short_with_its_length_matching() {
    held(&Case {
        fault: Fault::Truncated,
        target: ":getIamPolicy?options.requestedPolicyVersion=3",
        after: 0,
        operation: "iam.projects.serviceAccounts.getIamPolicy",
    });
}

#[test]
fn an_empty_200() {
    held(&Case {
        fault: Fault::Empty,
        target: ACCOUNT_LIST,
        after: 0,
        operation: "iam.projects.serviceAccounts.list",
    });
}

#[test]
fn a_body_that_is_not_json() {
    held(&Case {
        fault: Fault::Garbage,
        target: PROJECT_POLICY,
        after: 0,
        operation: "cloudresourcemanager.projects.getIamPolicy",
    });
}
