//! The Azure provider through the binary, against the in-repo fake of Graph and ARM.
//!
//! Credentials take lapse's real chain: with no service-principal or managed-identity variables
//! set, it picks the Azure CLI, and azure_identity runs `az account get-access-token`. The test
//! puts a stand-in `az` first on PATH that prints what the real one prints (and logs its
//! arguments), so the shipped binary has no test-only way in.

use std::path::{Path, PathBuf};

use lapse_provider_azure::fake::{
    FakeAzure, OWNER, READER, SUBSCRIPTION, State, TENANT, ids, role_assignment, token_for,
};
use serde_json::Value;

use crate::live::{LiveWorld, output_text};
use crate::*;

const CALLER: &str = "e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02";
/// A second Owner of the subscription, declared, so removing the other one leaves a holder.
const BREAK_GLASS_OWNER: &str = "6c6c6c6c-7d7d-4e8e-9f9f-0a0a0a0a0a0a";

/// The fake, a stand-in `az`, a policy and a folder for plans and journals.
pub(crate) struct World {
    pub(crate) fake: FakeAzure,
    folder: tempfile::TempDir,
    policy: PathBuf,
    bin: PathBuf,
}

impl World {
    pub(crate) fn new() -> World {
        World::with(CALLER, |_| {})
    }

    /// The world with lapse signed in as `caller` and the fake's state changed by `change`.
    pub(crate) fn with(caller: &str, change: impl FnOnce(&mut State)) -> World {
        let mut state = State::contoso();
        let subscription = format!("/subscriptions/{SUBSCRIPTION}");
        if let Some(sub) = state.subscriptions.get_mut(SUBSCRIPTION) {
            sub.role_assignments.push(role_assignment(
                &subscription,
                BREAK_GLASS_OWNER,
                OWNER,
                ids::DWHITFIELD,
                "User",
                "2023-06-30T12:10:00Z",
            ));
            // Both identities whose admin roles go keep a declared Reader: hygiene, not
            // offboarding (lapse refuses to strip an identity of everything).
            for (name, principal, kind) in [
                ("7e7e7e7e-8f8f-4a9a-8b0b-1c1c1c1c1c1c", ids::JSMITH, "User"),
                (
                    "8f8f8f8f-9a9a-4b0b-8c1c-2d2d2d2d2d2d",
                    ids::DEPLOY_SP,
                    "ServicePrincipal",
                ),
            ] {
                sub.role_assignments.push(role_assignment(
                    &subscription,
                    name,
                    READER,
                    principal,
                    kind,
                    "2024-01-01T00:00:00Z",
                ));
            }
        }
        change(&mut state);
        let fake = FakeAzure::start(state);
        let folder = tempfile::tempdir().expect("tempdir");
        let bin = folder.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        // What `az account get-access-token -o json` prints (Azure CLI 2.54 and later).
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> '{log}'\ncat <<'EOF'\n{{\"accessToken\": \"{token}\", \"expiresOn\": \"2030-01-01 00:00:00.000000\", \"expires_on\": {expires}, \"subscription\": \"{SUBSCRIPTION}\", \"tenant\": \"{TENANT}\", \"tokenType\": \"Bearer\"}}\nEOF\n",
            log = folder.path().join("az.log").display(),
            token = token_for(caller, TENANT),
        );
        let az = bin.join("az");
        std::fs::write(&az, script).expect("az");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let policy = folder.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "version: 1
scopes:
  azure: [{{tenant: {TENANT}, subscriptions: [{SUBSCRIPTION}]}}]
grants:
  - {{principal: '{dwhitfield}', entitlement: Owner, owner: security, expires: 2099-01-01}}
  - {{principal: '{mkhan}', entitlement: Owner, owner: platform, expires: 2099-01-01}}
  - {{principal: '*', entitlement: Reader, owner: platform, expires: 2099-01-01}}
  - {{principal: '*', entitlement: User Access Administrator, owner: platform, expires: 2099-01-01}}
  - {{principal: '*', entitlement: Global Administrator, owner: security, expires: 2099-01-01}}
  - {{principal: '{deploy}', entitlement: 'Microsoft Graph/*', owner: platform, expires: 2099-01-01}}
",
                dwhitfield = ids::DWHITFIELD,
                mkhan = ids::MKHAN,
                deploy = ids::DEPLOY_SP,
            ),
        )
        .expect("policy");
        World {
            fake,
            folder,
            policy,
            bin,
        }
    }

    fn snapshot(&self, name: &str) -> Value {
        self.snapshot_with(
            name,
            &[
                "--provider",
                "azure",
                "--tenant",
                TENANT,
                "--subscription",
                SUBSCRIPTION,
            ],
        )
    }

    fn assignments(&self) -> Vec<Value> {
        self.fake.state().subscriptions[SUBSCRIPTION]
            .role_assignments
            .clone()
    }

    fn has_assignment(&self, name: &str) -> bool {
        self.assignments()
            .iter()
            .any(|assignment| assignment["name"] == name)
    }
}

impl LiveWorld for World {
    /// `lapse <subcommand>` with the stand-in `az` first on PATH and both endpoints at the fake.
    fn lapse(&self, subcommand: &str) -> assert_cmd::Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(&path));
        let mut command = lapse();
        command
            .current_dir(self.folder.path())
            .env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env("LAPSE_AZURE_GRAPH_URL", &self.fake.url)
            .env("LAPSE_AZURE_ARM_URL", &self.fake.url);
        // Nothing from the machine running the tests may pick another credential.
        for variable in [
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "IDENTITY_ENDPOINT",
            "MSI_ENDPOINT",
            "LAPSE_AZURE_MANAGED_IDENTITY",
        ] {
            command.env_remove(variable);
        }
        command.arg(subcommand);
        if subcommand != "snapshot" {
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

fn assignment_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments/{name}"
    )
}

fn contributor_id() -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-billing-prod/providers/Microsoft.Authorization/roleAssignments/{}",
        ids::DEPLOY_CONTRIBUTOR
    )
}

#[test]
fn a_live_snapshot_authenticates_through_the_azure_cli_and_reads_both_scopes() {
    let world = World::new();
    let snapshot = world.snapshot("before.json");
    let scopes: Vec<(&str, bool)> = snapshot["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|scope| {
            (
                scope["id"].as_str().unwrap_or_default(),
                scope["complete"] == true,
            )
        })
        .collect();
    assert_eq!(
        scopes,
        vec![
            (
                format!("azure:/subscriptions/{SUBSCRIPTION}").as_str(),
                true
            ),
            (format!("azure:/tenants/{TENANT}").as_str(), true)
        ]
    );
    assert_eq!(snapshot["scopes"][0]["caller"], CALLER);
    // azure_identity ran `az` once per audience, for the tenant asked for.
    let log = std::fs::read_to_string(world.path("az.log")).expect("az ran");
    assert!(
        log.contains(&format!(
            "--scope https://graph.microsoft.com/.default --tenant {TENANT}"
        )),
        "{log}"
    );
    assert!(
        log.contains("--scope https://management.azure.com/.default"),
        "{log}"
    );
    assert!(
        world
            .fake
            .state()
            .tokens
            .contains(&token_for(CALLER, TENANT)),
        "the CLI's token reached Graph and ARM"
    );
    let grant_ids: Vec<&str> = snapshot["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(|grant| grant["id"].as_str())
        .collect();
    assert!(grant_ids.contains(&assignment_id(ids::JSMITH_OWNER).as_str()));
    assert!(grant_ids.contains(&ids::DWHITFIELD_GLOBAL_ADMIN));
}

#[test]
fn a_subscription_lapse_may_not_read_exits_incomplete_naming_the_permission() {
    let world = World::new();
    world
        .fake
        .state()
        .denied_subscriptions
        .insert(SUBSCRIPTION.to_owned());
    let output = world
        .lapse("plan")
        .args(["--now", NOW, "--format", "table", "--policy"])
        .arg(&world.policy)
        .output()
        .expect("plan");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{}", output_text(&output));
    assert!(
        stdout.contains(&format!("INCOMPLETE azure:/subscriptions/{SUBSCRIPTION}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing permission: Microsoft.Authorization/roleAssignments/read"),
        "{stdout}"
    );
    assert!(!stdout.contains(&token_for(CALLER, TENANT)));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&token_for(CALLER, TENANT)));
}

#[test]
fn plan_apply_re_snapshot_and_undo_restore_the_same_role_assignments() {
    let world = World::new();
    let before = world.assignments();
    let plan = world.plan();
    let mut targets: Vec<String> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["grant"]["id"].as_str().map(str::to_owned))
        .collect();
    targets.sort();
    let mut expected = vec![assignment_id(ids::JSMITH_OWNER), contributor_id()];
    expected.sort();
    assert_eq!(targets, expected, "{:#}", plan["actions"]);

    // A dry run prints the exact calls and changes nothing.
    let dry = world.apply(&[]);
    assert_eq!(dry.status.code(), Some(0), "{}", output_text(&dry));
    let shown = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        shown.contains(&format!(
            "ARM DELETE {}?api-version=2022-04-01",
            assignment_id(ids::JSMITH_OWNER)
        )),
        "{shown}"
    );
    assert_eq!(world.assignments(), before, "a dry run writes nothing");

    let refused = world.apply(&["--execute", "--yes", "--max-revocations", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", output_text(&refused));
    assert_eq!(world.assignments(), before);

    let output = world.apply(&["--execute", "--yes", "--max-revocations", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report");
    for action in report["actions"].as_array().expect("actions") {
        assert_eq!(action["status"], "done", "{action}");
        assert_eq!(action["verified"], true, "{action}");
    }
    assert!(!world.has_assignment(ids::JSMITH_OWNER));
    assert!(!world.has_assignment(ids::DEPLOY_CONTRIBUTOR));
    assert!(
        world.has_assignment(BREAK_GLASS_OWNER),
        "the other Owner stays"
    );

    let after = world.snapshot("after.json");
    let grant_ids: Vec<&str> = after["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(|grant| grant["id"].as_str())
        .collect();
    assert!(!grant_ids.contains(&assignment_id(ids::JSMITH_OWNER).as_str()));
    assert!(!grant_ids.contains(&contributor_id().as_str()));

    let output = world.undo(&["--execute", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
    for action in serde_json::from_slice::<Value>(&output.stdout).expect("report")["actions"]
        .as_array()
        .expect("actions")
    {
        assert_eq!(action["verified"], true, "{action}");
    }
    // The same assignments, by name, with the same role, principal and scope.
    let key = |assignment: &Value| {
        let properties = &assignment["properties"];
        format!(
            "{} {} {} {}",
            assignment["id"],
            properties["roleDefinitionId"],
            properties["principalId"],
            properties["scope"]
        )
    };
    let mut now: Vec<String> = world.assignments().iter().map(key).collect();
    let mut was: Vec<String> = before.iter().map(key).collect();
    now.sort();
    was.sort();
    assert_eq!(now, was);
    let restored = world.snapshot("restored.json");
    let owner = restored["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|grant| grant["id"] == assignment_id(ids::JSMITH_OWNER))
        .expect("owner back");
    assert_eq!(owner["entitlement"], "Owner");
}

/// lapse's own service principal in the fake, its application and that application's client
/// secret (older than the rule below allows), and a second application's secret as old.
const LAPSE_SP: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const LAPSE_APP: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
const LAPSE_SECRET: &str = "4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f80";

/// The world where lapse signs in as its own service principal, a member of the auditors
/// group, with a rule that deletes client secrets older than 30 days.
fn lapse_signed_in_as_its_service_principal() -> (World, PathBuf) {
    let world = World::with(LAPSE_SP, |state| {
        let app_id = "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f";
        state.applications.push(serde_json::json!({"id": LAPSE_APP, "appId": app_id, "displayName": "lapse", "createdDateTime": "2024-05-01T00:00:00Z", "tags": ["owner:security"],
            "passwordCredentials": [{"customKeyIdentifier": null, "displayName": "lapse nightly", "endDateTime": "2027-05-01T00:00:00Z", "hint": "abc", "keyId": LAPSE_SECRET, "secretText": null, "startDateTime": "2024-05-01T00:00:00Z"}],
            "keyCredentials": []}));
        state.service_principals.push(serde_json::json!({"id": LAPSE_SP, "appId": app_id, "displayName": "lapse", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": TENANT, "passwordCredentials": [], "keyCredentials": [], "tags": ["owner:security"]}));
        state
            .memberships
            .insert(LAPSE_SP.to_owned(), vec![ids::AUDITORS.to_owned()]);
    });
    let policy = world.path("secrets.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1
scopes:
  azure: [{{tenant: {TENANT}, subscriptions: [{SUBSCRIPTION}]}}]
rules:
  - {{id: secret-rotation, match: {{credential: azure-password}}, max_age: 30d, action: delete}}
"
        ),
    )
    .expect("policy");
    (world, policy)
}

#[test]
fn a_snapshot_names_lapses_own_application_and_groups_in_every_scope() {
    let (world, _) = lapse_signed_in_as_its_service_principal();
    let snapshot = world.snapshot("own.json");
    let mut expected = vec![LAPSE_APP, ids::AUDITORS];
    expected.sort_unstable();
    for scope in snapshot["scopes"].as_array().expect("scopes") {
        assert_eq!(scope["caller"], LAPSE_SP, "{scope}");
        assert_eq!(
            scope["caller_identities"],
            serde_json::json!(expected),
            "{scope}"
        );
    }
}

#[test]
fn lapses_own_application_secret_is_never_planned_for_deletion() {
    let (world, policy) = lapse_signed_in_as_its_service_principal();
    let output = world
        .lapse("plan")
        .args(["--now", NOW, "--format", "json", "--policy"])
        .arg(&policy)
        .output()
        .expect("plan");
    let plan: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", output_text(&output)));
    let targets: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["credential"]["id"].as_str())
        .collect();
    // The billing API's secret is as old, and goes: the rule itself works.
    assert!(targets.contains(&ids::BILLING_SECRET), "{targets:?}");
    assert!(
        !targets.contains(&LAPSE_SECRET),
        "lapse would delete the secret it signs in with: {targets:?}"
    );
}
