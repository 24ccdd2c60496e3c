//! The bundled demo estate and the policy packs.

use crate::*;

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
