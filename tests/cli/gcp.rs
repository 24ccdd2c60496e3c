//! The Google Cloud provider through the binary, against the in-repo fake of IAM and Resource Manager.
//!
//! Credentials take the real application-default path: the test generates a service-account
//! key, writes it as a `service_account` key file and points `GOOGLE_APPLICATION_CREDENTIALS` at
//! it; google-cloud-auth signs its own JWT, which the fake verifies against the key. The file's
//! `token_uri` is a closed port, so a path that tried to exchange the key would fail loudly.

use std::path::{Path, PathBuf};

use lapse_provider_gcp::fake::{FakeGcp, FakeKey, TestServiceAccountKey};
use serde_json::{Value, json};

use crate::live::{LiveWorld, findings, output_text};
use crate::*;

pub(crate) const PROJECT: &str = "acme-prod";
pub(crate) const CALLER: &str = "lapse-reader@acme-ops.iam.gserviceaccount.com";
const EXPIRED: &str = r#"request.time < timestamp("2026-10-01T00:00:00Z")"#;
const LATER: &str = r#"request.time < timestamp("2027-03-31T00:00:00Z")"#;

fn exporter() -> String {
    format!("legacy-exporter@{PROJECT}.iam.gserviceaccount.com")
}

pub(crate) fn old_key() -> String {
    format!(
        "projects/{PROJECT}/serviceAccounts/{}/keys/5c0e7a19d3b24f68",
        exporter()
    )
}

/// The fake, a key file for ADC, a policy and a folder for plans and journals.
pub(crate) struct World {
    pub(crate) fake: FakeGcp,
    folder: tempfile::TempDir,
    pub(crate) policy: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl World {
    pub(crate) fn new() -> World {
        let fake = FakeGcp::start();
        let key = TestServiceAccountKey::generate(CALLER);
        fake.require_signed_by(&key);
        let exporter = fake.add_service_account(PROJECT, "legacy-exporter", "legacy-exporter");
        fake.add_account_email(
            PROJECT,
            "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com",
            "Cloud Pub/Sub Service Agent",
        );
        // A key older than the policy's 90 days, and a fresh one.
        fake.add_key(
            PROJECT,
            &exporter,
            FakeKey::user("5c0e7a19d3b24f68", "2025-01-14T09:05:33Z"),
        );
        fake.add_key(
            PROJECT,
            &exporter,
            FakeKey::user("fresh0001", "2026-11-01T00:00:00Z"),
        );
        fake.set_bindings(
            &format!("projects/{PROJECT}"),
            json!([
                {"role": "roles/owner", "members": ["group:sre@acme.example"]},
                {"role": "roles/editor", "members": ["user:li.wei@partner.example"]},
                {"role": "roles/viewer", "members": ["user:li.wei@partner.example"]},
                {"role": "roles/cloudkms.admin", "members": ["user:ana@acme.example"],
                 "condition": {"title": "pam-grant-kms-rotation", "description": "PAM grant SEC-2201",
                               "expression": EXPIRED}},
                {"role": "roles/storage.objectViewer", "members": ["user:ana@acme.example", format!("serviceAccount:{exporter}")],
                 "condition": {"title": "exports-until-march", "expression": LATER}},
                {"role": "roles/pubsub.serviceAgent",
                 "members": ["serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"]},
                {"role": "roles/iam.securityReviewer", "members": [format!("serviceAccount:{CALLER}")]}
            ]),
        );
        let folder = tempfile::tempdir().expect("tempdir");
        let key_file = folder.path().join("lapse-reader.json");
        std::fs::write(
            &key_file,
            serde_json::to_vec(&key.to_json("http://127.0.0.1:9/token")).expect("json"),
        )
        .expect("key file");
        let policy = folder.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "version: 1
scopes:
  gcp: [{{project: {PROJECT}}}]
rules:
  - id: key-hygiene
    match: {{credential: [gcp-sa-key]}}
    max_age: 90d
    action: deactivate
grants:
  - {{principal: 'group:sre@acme.example', entitlement: roles/owner, owner: platform, expires: 2099-01-01}}
  - {{principal: 'serviceAccount:{CALLER}', entitlement: roles/iam.securityReviewer, owner: security, expires: 2099-01-01}}
  - {{principal: '*', entitlement: roles/storage.objectViewer, owner: data, expires: 2099-01-01}}
  - {{principal: 'user:li.wei@partner.example', entitlement: roles/viewer, owner: partners, expires: 2099-01-01}}
"
            ),
        )
        .expect("policy");
        World {
            fake,
            folder,
            policy,
            key_file,
        }
    }

    pub(crate) fn snapshot(&self, name: &str) -> Value {
        self.snapshot_with(name, &["--provider", "gcp", "--project", PROJECT])
    }

    pub(crate) fn bindings(&self) -> Vec<Value> {
        self.fake
            .policy(&format!("projects/{PROJECT}"))
            .expect("policy")
            .0["bindings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn holds(&self, role: &str, member: &str) -> bool {
        self.bindings().iter().any(|binding| {
            binding["role"] == role
                && binding["members"]
                    .as_array()
                    .is_some_and(|members| members.iter().any(|held| held == member))
        })
    }

    pub(crate) fn key_disabled(&self, name: &str) -> bool {
        self.fake.key(name).expect("key")["disabled"] == true
    }
}

impl LiveWorld for World {
    /// `lapse <subcommand>` with ADC pointed at the key file and every endpoint at the fake.
    fn lapse(&self, subcommand: &str) -> assert_cmd::Command {
        let mut command = lapse();
        command
            .current_dir(self.folder.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &self.key_file)
            .env_remove("GOOGLE_CLOUD_QUOTA_PROJECT")
            .env("LAPSE_GCP_IAM_URL", self.fake.url())
            .env("LAPSE_GCP_RESOURCE_MANAGER_URL", self.fake.url())
            .env("LAPSE_GCP_POLICY_ANALYZER_URL", self.fake.url())
            .arg(subcommand);
        if subcommand != "snapshot" {
            // `snapshot` records no state unless asked to.
            command.arg("--no-state");
        }
        command
    }

    fn folder(&self) -> &Path {
        self.folder.path()
    }

    fn policy(&self) -> &Path {
        &self.policy
    }
}

#[test]
fn a_live_snapshot_reads_the_project_through_application_default_credentials() {
    let world = World::new();
    let snapshot = world.snapshot("before.json");
    let scope = &snapshot["scopes"][0];
    assert_eq!(scope["id"], "gcp:projects/acme-prod");
    assert_eq!(scope["complete"], true, "{scope}");
    assert_eq!(scope["caller"], format!("serviceAccount:{CALLER}"));
    let key = snapshot["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|credential| credential["id"] == old_key())
        .expect("old key");
    assert_eq!(key["kind"], "gcp-sa-key");
    assert_eq!(key["created_at"], "2025-01-14T09:05:33Z");
    assert!(key.get("expires_at").is_none(), "9999-12-31 is no expiry");
    let expired = snapshot["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|grant| {
            grant["id"]
                == "projects/acme-prod|roles/cloudkms.admin|user:ana@acme.example|pam-grant-kms-rotation"
        })
        .expect("conditional grant");
    assert_eq!(expired["expires_at"], "2026-10-01T00:00:00Z");
    assert_eq!(expired["expiry_source"], "condition");
    assert_eq!(expired["condition"]["expression"], EXPIRED);
    // Every request carried a JWT the generated key signed (the fake refuses anything else).
    assert!(world.fake.request_count() > 0);
}

#[test]
fn a_project_lapse_may_not_read_exits_incomplete_naming_the_permission() {
    let world = World::new();
    world
        .fake
        .deny(PROJECT, "resourcemanager.projects.getIamPolicy");
    let out = world.path("denied.json");
    let output = world
        .lapse("snapshot")
        .args(["--provider", "gcp", "--project", PROJECT, "--out"])
        .arg(&out)
        .output()
        .expect("snapshot");
    assert_eq!(output.status.code(), Some(3), "{}", output_text(&output));
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("json");
    let scope = &snapshot["scopes"][0];
    assert_eq!(scope["complete"], false);
    assert_eq!(
        scope["errors"][0]["missing_permission"],
        "resourcemanager.projects.getIamPolicy"
    );
}

#[test]
fn plan_apply_re_snapshot_and_undo_through_the_binary() {
    let world = World::new();
    let before = world.bindings();
    let plan = world.plan();
    let found = findings(&plan);
    let expired_id =
        "projects/acme-prod|roles/cloudkms.admin|user:ana@acme.example|pam-grant-kms-rotation";
    let editor_id = "projects/acme-prod|roles/editor|user:li.wei@partner.example";
    for expected in [
        ("expired-binding", expired_id.to_owned()),
        ("standing-privilege", editor_id.to_owned()),
        ("credential-too-old", old_key()),
    ] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1.clone())),
            "{expected:?} in {found:#?}"
        );
    }
    // Declared, protected (the service agent, lapse's own account) or fresh: nothing planned.
    let targets: Vec<String> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|action| {
            action["grant"]["id"]
                .as_str()
                .or(action["credential"]["id"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let mut sorted = targets.clone();
    sorted.sort();
    let mut expected = vec![expired_id.to_owned(), editor_id.to_owned(), old_key()];
    expected.sort();
    assert_eq!(sorted, expected, "{:#}", plan["actions"]);

    // A dry run prints the exact calls and changes nothing.
    let dry = world.apply(&[]);
    assert_eq!(dry.status.code(), Some(0), "{}", output_text(&dry));
    let shown = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        shown.contains(&format!("/v3/projects/{PROJECT}:setIamPolicy")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("/v1/{}:disable", old_key())),
        "{shown}"
    );
    assert_eq!(world.bindings(), before, "a dry run writes nothing");

    // The cap refuses more revocations than allowed, before any call.
    let refused = world.apply(&["--execute", "--yes", "--max-revocations", "2"]);
    assert_eq!(refused.status.code(), Some(4), "{}", output_text(&refused));
    assert_eq!(world.bindings(), before);

    let output = world.apply(&["--execute", "--yes", "--max-revocations", "3"]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    for action in report["actions"].as_array().expect("actions") {
        assert_eq!(action["status"], "done", "{action}");
        assert_eq!(action["verified"], true, "{action}");
    }
    assert!(!world.holds("roles/editor", "user:li.wei@partner.example"));
    assert!(!world.holds("roles/cloudkms.admin", "user:ana@acme.example"));
    assert!(world.key_disabled(&old_key()));
    // Everything else is as it was, conditions included.
    assert!(world.holds("roles/owner", "group:sre@acme.example"));
    let viewer = world
        .bindings()
        .into_iter()
        .find(|binding| binding["role"] == "roles/storage.objectViewer")
        .expect("conditional binding");
    assert_eq!(viewer["condition"]["expression"], LATER);
    assert_eq!(viewer["members"].as_array().map(Vec::len), Some(2));

    // A new snapshot shows the change.
    let after = world.snapshot("after.json");
    let grant_ids: Vec<&str> = after["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(|grant| grant["id"].as_str())
        .collect();
    assert!(!grant_ids.contains(&expired_id), "{grant_ids:?}");
    assert!(!grant_ids.contains(&editor_id), "{grant_ids:?}");
    let key = after["credentials"]
        .as_array()
        .expect("credentials")
        .iter()
        .find(|credential| credential["id"] == old_key())
        .expect("key is still there");
    assert_eq!(key["status"], "inactive");

    // Undo puts back each member with its condition, and the key.
    let output = world.undo(&["--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    for action in serde_json::from_slice::<Value>(&output.stdout).expect("report")["actions"]
        .as_array()
        .expect("actions")
    {
        assert_eq!(action["verified"], true, "{action}");
    }
    assert!(world.holds("roles/editor", "user:li.wei@partner.example"));
    let restored = world
        .bindings()
        .into_iter()
        .find(|binding| binding["role"] == "roles/cloudkms.admin")
        .expect("binding back");
    assert_eq!(
        restored["condition"],
        json!({"title": "pam-grant-kms-rotation", "description": "PAM grant SEC-2201", "expression": EXPIRED})
    );
    assert!(!world.key_disabled(&old_key()));
    let mut now: Vec<String> = world.bindings().iter().map(Value::to_string).collect();
    let mut was: Vec<String> = before.iter().map(Value::to_string).collect();
    now.sort();
    was.sort();
    assert_eq!(now, was, "the policy holds the same bindings as before");
}

#[test]
fn grants_on_a_service_account_are_judged_by_the_catalog_and_federation_flags_its_keys() {
    let world = World::new();
    let account = format!("projects/{PROJECT}/serviceAccounts/{}", exporter());
    let pool = "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/github/attribute.repository/acme/exports";
    world.fake.set_account_bindings(
        PROJECT,
        &exporter(),
        json!([
            {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:li.wei@partner.example"]},
            {"role": "roles/iam.workloadIdentityUser", "members": [pool]}
        ]),
    );
    let plan = world.plan();
    let found = findings(&plan);
    // Who can mint the account's tokens holds a privileged role on it, by the engine's catalog.
    let minter =
        format!("{account}|roles/iam.serviceAccountTokenCreator|user:li.wei@partner.example");
    assert!(
        found.contains(&("standing-privilege".to_owned(), minter.clone())),
        "{found:#?}"
    );
    // The account can authenticate by federation, so its keys are avoidable secrets.
    assert!(
        found.contains(&("static-credential".to_owned(), old_key())),
        "{found:#?}"
    );
    // The dry run edits the account's own policy through IAM v1.
    let dry = world.apply(&[]);
    assert_eq!(dry.status.code(), Some(0), "{}", output_text(&dry));
    let shown = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        shown.contains(&format!("/v1/{account}:setIamPolicy")),
        "{shown}"
    );
}

#[test]
fn the_accounts_an_impersonation_passes_through_are_the_callers_own() {
    let mut world = World::new();
    // CI's own account impersonates lapse's reader through one delegate, as an
    // `impersonated_service_account` file says (gcloud writes it with
    // `--impersonate-service-account=hop,reader`).
    let source = TestServiceAccountKey::generate("ci-runner@acme-ci.iam.gserviceaccount.com");
    world.fake.require_signed_by(&source);
    let hop = "projects/-/serviceAccounts/hop@acme-ops.iam.gserviceaccount.com";
    let file = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{CALLER}:generateAccessToken", world.fake.url()),
        "source_credentials": source.to_json("http://127.0.0.1:9/token"),
        "delegates": [hop]
    });
    let path = world.path("impersonated.json");
    std::fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("file");
    world.key_file = path;

    let snapshot = world.snapshot("impersonated-snapshot.json");
    let scope = &snapshot["scopes"][0];
    assert_eq!(scope["complete"], true, "{scope}");
    assert_eq!(scope["caller"], format!("serviceAccount:{CALLER}"));
    assert_eq!(
        scope["caller_identities"],
        json!([
            "serviceAccount:ci-runner@acme-ci.iam.gserviceaccount.com",
            "serviceAccount:hop@acme-ops.iam.gserviceaccount.com"
        ])
    );
    // The token really came through the chain the file names.
    assert_eq!(
        world.fake.impersonations(),
        vec![(CALLER.to_owned(), vec![hop.to_owned()])]
    );
}

#[test]
fn a_forged_snapshot_moving_a_grant_into_another_project_is_refused_where_it_is_read() {
    let world = World::new();
    let dev = "acme-dev";
    world.fake.add_project(dev);
    world.fake.set_bindings(
        &format!("projects/{dev}"),
        json!([{"role": "roles/viewer", "members": [format!("serviceAccount:{CALLER}")]}]),
    );
    world.fake.set_bindings(
        &format!("projects/{PROJECT}"),
        json!([
            {"role": "roles/owner", "members": ["group:sre@acme.example"]},
            {"role": "roles/editor", "members": ["user:li.wei@partner.example"]},
            {"role": "roles/iam.securityReviewer", "members": [format!("serviceAccount:{CALLER}")]}
        ]),
    );
    let policy = world.path("two-projects.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1
scopes:
  gcp: [{{project: {PROJECT}}}, {{project: {dev}}}]
grants:
  - {{principal: 'group:sre@acme.example', entitlement: roles/owner, owner: platform, expires: 2099-01-01}}
  - {{principal: 'user:li.wei@partner.example', entitlement: roles/editor, scope: 'gcp:projects/{PROJECT}', owner: partners, expires: 2099-01-01}}
  - {{principal: 'serviceAccount:{CALLER}', entitlement: '*', owner: security, expires: 2099-01-01}}
"
        ),
    )
    .expect("policy");
    let real = world.snapshot_with(
        "real.json",
        &["--provider", "gcp", "--project", PROJECT, "--project", dev],
    );
    // The production editor, claimed to be a grant of the dev project: undeclared there, it
    // would be planned for revocation with every guard judging the dev project.
    let mut forged = real;
    let editor = "projects/acme-prod|roles/editor|user:li.wei@partner.example";
    for grant in forged["grants"].as_array_mut().expect("grants") {
        if grant["id"] == editor {
            grant["scope"] = json!(format!("gcp:projects/{dev}"));
        }
    }
    let forged_path = world.path("forged.json");
    std::fs::write(&forged_path, serde_json::to_vec(&forged).expect("json")).expect("forged");
    // Refused where the file is read, before any plan or call: the grant's resource is
    // another project than the scope it claims. (The provider refuses the same record on its
    // own too: providers/gcp/tests/forged.rs.)
    let plan = world.path("forged-plan.json");
    let output = world
        .lapse("plan")
        .arg("--snapshot")
        .arg(&forged_path)
        .arg("--policy")
        .arg(&policy)
        .args(["--now", NOW, "--format", "json", "--out"])
        .arg(&plan)
        .output()
        .expect("plan");
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("forged.json"), "{text}");
    assert!(
        text.contains(editor) || text.contains("projects/acme-prod"),
        "{text}"
    );
    assert!(!plan.exists(), "no plan is written from a forged snapshot");
    assert!(world.fake.writes().is_empty(), "{:?}", world.fake.writes());
    assert!(world.holds("roles/editor", "user:li.wei@partner.example"));
}
