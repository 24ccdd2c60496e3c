//! The Google Cloud provider against the in-repo fake of IAM, Resource Manager and Policy
//! Analyzer, authenticating with a service-account key generated for the test through the real
//! google-cloud-auth code (a self-signed JWT the fake verifies; no token endpoint is called).

use lapse_provider_gcp::fake::{FakeGcp, FakeKey, NO_EXPIRY, TestServiceAccountKey};
use lapse_provider_gcp::{GcpProvider, GcpSettings};
use lapse_sdk::{
    Action, ActionKind, ActionOutcome, CallBounds, CredentialStatus, ExpirySource, Grant,
    PrincipalKind, Provider, ProviderErrorKind, Snapshot, SnapshotRequest, Timestamp, Usage,
};
use serde_json::{Value, json};

const PROJECT: &str = "acme-prod";
/// Nothing listens here: a service-account key must never call its token endpoint.
const CLOSED_TOKEN_URI: &str = "http://127.0.0.1:9/token";
const LAPSE: &str = "lapse-reader@acme-ops.iam.gserviceaccount.com";

/// The fake with a signing key required, and settings that use that key.
fn signed_fake(projects: &[&str]) -> (FakeGcp, GcpSettings) {
    let fake = FakeGcp::start();
    let key = TestServiceAccountKey::generate(LAPSE);
    fake.require_signed_by(&key);
    let settings = GcpSettings {
        credentials: Some(key.credentials(CLOSED_TOKEN_URI)),
        ..fake.settings(projects)
    };
    (fake, settings)
}

async fn take(settings: &GcpSettings) -> (GcpProvider, Snapshot) {
    let provider = GcpProvider::new(settings.clone());
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    (provider, snapshot)
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("instant")
}

fn grant<'s>(snapshot: &'s Snapshot, id: &str) -> &'s Grant {
    snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str() == id)
        .unwrap_or_else(|| {
            panic!(
                "no grant {id} in {:#?}",
                snapshot.grants.iter().map(|g| &g.id).collect::<Vec<_>>()
            )
        })
}

fn email(account: &str) -> String {
    format!("{account}@{PROJECT}.iam.gserviceaccount.com")
}

const EXPIRED: &str = r#"request.time < timestamp("2026-10-01T00:00:00Z")"#;
const FUTURE: &str = r#"request.time < timestamp("2027-03-31T00:00:00Z") && resource.name.startsWith("projects/_/buckets/exports")"#;

/// The estate most tests use: three accounts (one disabled, one a service agent), keys of every
/// sort, and a policy with plain, expired and live conditional bindings.
fn seed(fake: &FakeGcp) {
    let exporter = fake.add_service_account(PROJECT, "legacy-exporter", "legacy-exporter");
    let deployer = fake.add_service_account(PROJECT, "ci-deployer", "CI deployer");
    fake.add_account_email(
        PROJECT,
        "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com",
        "Cloud Pub/Sub Service Agent",
    );
    let old = fake.add_service_account(PROJECT, "old-batch", "");
    fake.add_key(
        PROJECT,
        &exporter,
        FakeKey::user("aaaa1111", "2025-01-14T09:05:33Z"),
    );
    fake.add_key(
        PROJECT,
        &exporter,
        FakeKey {
            disabled: true,
            ..FakeKey::user("bbbb2222", "2024-02-01T00:00:00Z")
        },
    );
    fake.add_key(
        PROJECT,
        &exporter,
        FakeKey {
            key_type: "SYSTEM_MANAGED".to_owned(),
            valid_before: "2027-01-14T09:05:33Z".to_owned(),
            ..FakeKey::user("cccc3333", "2025-01-14T09:05:33Z")
        },
    );
    fake.add_key(
        PROJECT,
        &deployer,
        FakeKey {
            valid_before: "2026-12-31T00:00:00Z".to_owned(),
            ..FakeKey::user("dddd4444", "2026-06-01T00:00:00Z")
        },
    );
    let _ = old;
    fake.set_bindings(
        &format!("projects/{PROJECT}"),
        json!([
            {"role": "roles/owner", "members": ["group:sre@acme.example"]},
            {"role": "roles/editor", "members": [
                "user:li.wei@partner.example",
                format!("serviceAccount:{deployer}")
            ]},
            {"role": "roles/editor", "members": ["user:li.wei@partner.example"],
             "condition": {"title": "temporary-access-sec-1101", "description": "SEC-1101 until October", "expression": EXPIRED}},
            {"role": "roles/storage.objectViewer", "members": [format!("serviceAccount:{exporter}"), "user:ana@acme.example"],
             "condition": {"title": "exports-until-march", "expression": FUTURE}},
            {"role": "roles/pubsub.serviceAgent", "members": ["serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"]},
            {"role": "roles/iam.securityReviewer", "members": [format!("serviceAccount:{LAPSE}")]}
        ]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_reads_accounts_keys_and_conditional_bindings() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (_, snapshot) = take(&settings).await;

    let [scope] = snapshot.scopes.as_slice() else {
        panic!("one scope: {:?}", snapshot.scopes);
    };
    assert_eq!(scope.id.as_str(), "gcp:projects/acme-prod");
    assert!(scope.complete, "{:?}", scope.errors);
    assert_eq!(
        scope.caller.as_deref(),
        Some("serviceAccount:lapse-reader@acme-ops.iam.gserviceaccount.com"),
        "the caller is the key's account"
    );

    // Keys: an enabled one, a disabled one, a Google-managed one, one with a real expiry.
    let key = |id: &str| {
        snapshot
            .credentials
            .iter()
            .find(|credential| credential.id.as_str().ends_with(id))
            .unwrap_or_else(|| panic!("key {id}"))
    };
    let enabled = key("aaaa1111");
    assert_eq!(
        enabled.id.as_str(),
        format!(
            "projects/acme-prod/serviceAccounts/{}/keys/aaaa1111",
            email("legacy-exporter")
        )
    );
    assert_eq!(
        enabled.principal.as_str(),
        format!("serviceAccount:{}", email("legacy-exporter"))
    );
    assert_eq!(enabled.kind.as_str(), "gcp-sa-key");
    assert_eq!(enabled.created_at, Some(at("2025-01-14T09:05:33Z")));
    assert_eq!(enabled.expires_at, None, "9999-12-31 means no expiry");
    assert_eq!(enabled.status, CredentialStatus::Active);
    assert!(!enabled.cloud_managed);
    assert_eq!(
        enabled.last_used,
        Usage::Unknown,
        "Policy Analyzer is off here"
    );
    assert_eq!(key("bbbb2222").status, CredentialStatus::Inactive);
    let system = key("cccc3333");
    assert!(
        system.cloud_managed,
        "SYSTEM_MANAGED keys are recorded as such"
    );
    assert_eq!(system.expires_at, Some(at("2027-01-14T09:05:33Z")));
    assert_eq!(key("dddd4444").expires_at, Some(at("2026-12-31T00:00:00Z")));
    assert_eq!(snapshot.credentials.len(), 4);

    // Principals: accounts as workloads, members by type, agents cloud-managed.
    let principal = |id: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == id)
            .unwrap_or_else(|| panic!("principal {id}"))
    };
    let deployer = principal(&format!("serviceAccount:{}", email("ci-deployer")));
    assert_eq!(deployer.kind, PrincipalKind::Workload);
    assert_eq!(deployer.native_type.as_deref(), Some("serviceAccount"));
    assert_eq!(deployer.display_name.as_deref(), Some("CI deployer"));
    assert_eq!(deployer.created_at, None, "IAM gives no creation time");
    assert!(deployer.enabled);
    assert!(
        principal("serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com")
            .cloud_managed
    );
    assert_eq!(
        principal("user:ana@acme.example").kind,
        PrincipalKind::Human
    );
    assert_eq!(
        principal("group:sre@acme.example").kind,
        PrincipalKind::Group
    );
    // A member from another project still resolves to a principal.
    assert_eq!(
        principal(&format!("serviceAccount:{LAPSE}")).kind,
        PrincipalKind::Workload
    );
    assert_eq!(
        principal(&format!("serviceAccount:{}", email("old-batch"))).display_name,
        None
    );

    // Grants: ids as the demo estate spells them, conditions verbatim, expiry from conditions.
    let owner = grant(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    assert_eq!(owner.resource, "projects/acme-prod");
    assert_eq!(owner.entitlement, "roles/owner");
    assert_eq!(owner.condition, None);
    assert_eq!(owner.expires_at, None);
    let expired = grant(
        &snapshot,
        "projects/acme-prod|roles/editor|user:li.wei@partner.example|temporary-access-sec-1101",
    );
    assert_eq!(expired.expires_at, Some(at("2026-10-01T00:00:00Z")));
    assert_eq!(expired.expiry_source, Some(ExpirySource::Condition));
    let condition = expired.condition.as_ref().expect("condition");
    assert_eq!(condition.expression, EXPIRED);
    assert_eq!(
        condition.title.as_deref(),
        Some("temporary-access-sec-1101")
    );
    // The same member's unconditional editor binding is its own grant.
    let plain = grant(
        &snapshot,
        "projects/acme-prod|roles/editor|user:li.wei@partner.example",
    );
    assert_eq!(plain.expires_at, None);
    let conjunction = grant(
        &snapshot,
        "projects/acme-prod|roles/storage.objectViewer|user:ana@acme.example|exports-until-march",
    );
    assert_eq!(conjunction.expires_at, Some(at("2027-03-31T00:00:00Z")));
    assert_eq!(snapshot.grants.len(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_read_over_every_page_with_one_key_list_and_one_policy_each() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    fake.limit_page_size(10);
    for index in 0..45 {
        let account = fake.add_service_account(PROJECT, &format!("worker-{index:02}"), "worker");
        fake.add_key(
            PROJECT,
            &account,
            FakeKey::user(&format!("key{index:02}"), "2026-01-01T00:00:00Z"),
        );
    }
    let (provider, snapshot) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(snapshot.principals.len(), 45);
    assert_eq!(snapshot.credentials.len(), 45);
    let pages = fake
        .requests()
        .iter()
        .filter(|request| request.ends_with("/serviceAccounts"))
        .count();
    assert_eq!(pages, 5, "45 accounts at 10 a page");
    let account_policies = fake
        .requests()
        .iter()
        .filter(|request| {
            request.starts_with("POST /v1/projects/acme-prod/serviceAccounts/")
                && request.ends_with(":getIamPolicy")
        })
        .count();
    assert_eq!(account_policies, 45, "one policy read per account");
    // 5 pages + 45 key lists + 45 account policies + 1 project policy + 2 Policy Analyzer
    // queries (one per activity type): ⌈45/10⌉ + 2 × 45 + 3.
    assert_eq!(provider.request_count(), 98);
    assert_eq!(fake.request_count(), 98);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_and_only_then_reported() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    fake.throttle("/serviceAccounts", 3);
    fake.unavailable(":getIamPolicy", 1);
    let (provider, snapshot) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(snapshot.credentials.len(), 4);
    let retried = fake.request_count();
    assert_eq!(provider.request_count() as usize, retried);

    // Past the retry budget: the scope is incomplete and says it was throttled.
    let project_policy = "/v3/projects/acme-prod:getIamPolicy";
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    fake.throttle(project_policy, 100);
    let settings = GcpSettings {
        bounds: CallBounds {
            attempts: 3,
            ..settings.bounds
        },
        ..settings
    };
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(!scope.complete);
    assert_eq!(
        scope.errors[0].operation,
        "cloudresourcemanager.projects.getIamPolicy"
    );
    assert!(
        scope.errors[0].message.contains("429 RESOURCE_EXHAUSTED"),
        "{}",
        scope.errors[0].message
    );
    assert_eq!(scope.errors.len(), 1, "{:?}", scope.errors);
    assert!(
        snapshot
            .grants
            .iter()
            .all(|grant| grant.resource.contains("/serviceAccounts/")),
        "no project grant from an unread policy"
    );
    let attempts = fake
        .requests()
        .iter()
        .filter(|request| request.ends_with(project_policy))
        .count();
    assert_eq!(attempts, 3, "one call and two retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_project_is_incomplete_and_names_the_permission() {
    let (fake, settings) = signed_fake(&[PROJECT, "acme-dev"]);
    seed(&fake);
    fake.add_service_account("acme-dev", "builder", "builder");
    fake.deny("acme-dev", "iam.serviceAccountKeys.list");
    let (_, snapshot) = take(&settings).await;
    let scope = |id: &str| {
        snapshot
            .scopes
            .iter()
            .find(|scope| scope.id.as_str() == id)
            .expect("scope")
    };
    assert!(scope("gcp:projects/acme-prod").complete);
    let denied = scope("gcp:projects/acme-dev");
    assert!(!denied.complete, "a denied read is never 'nothing there'");
    assert_eq!(
        denied.errors[0].missing_permission.as_deref(),
        Some("iam.serviceAccountKeys.list")
    );
    assert!(
        denied.errors[0]
            .message
            .contains("grant `iam.serviceAccountKeys.list`")
    );
    // What could be read is still there.
    assert!(
        snapshot
            .principals
            .iter()
            .any(|principal| principal.id.as_str().contains("builder@acme-dev"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_api_names_the_api_to_enable_and_leaves_the_scope_incomplete() {
    // Policy Analyzer off (the fake's default): last use unknown, and nothing else said.
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(
        scope.complete && scope.errors.is_empty(),
        "{:?}",
        scope.errors
    );
    assert!(
        snapshot
            .credentials
            .iter()
            .all(|credential| credential.last_used == Usage::Unknown)
    );

    // The IAM API off: accounts and keys are unread, and the error says which API to enable.
    fake.disable_api(PROJECT, "iam.googleapis.com");
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(
        !scope.complete,
        "an unread account list is never 'no accounts'"
    );
    assert_eq!(scope.errors.len(), 1, "{:?}", scope.errors);
    let error = &scope.errors[0];
    assert_eq!(error.operation, "iam.projects.serviceAccounts.list");
    assert_eq!(error.missing_permission, None, "no permission is missing");
    assert!(!error.message.contains("grant `"), "{}", error.message);
    assert!(
        error
            .message
            .contains("gcloud services enable iam.googleapis.com --project=123456789012"),
        "{}",
        error.message
    );
    assert!(snapshot.credentials.is_empty());
    // Resource Manager is still on: the bindings are read.
    assert!(!snapshot.grants.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_project_is_refused_not_read() {
    let (fake, settings) = signed_fake(&["-"]);
    let (_, snapshot) = take(&settings).await;
    assert!(!snapshot.scopes[0].complete);
    assert!(
        snapshot.scopes[0].errors[0]
            .message
            .contains("explicit project id")
    );
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn last_authentication_comes_from_policy_analyzer_when_enabled() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    fake.enable_policy_analyzer(PROJECT);
    let exporter = email("legacy-exporter");
    fake.add_last_authentication(
        PROJECT,
        "serviceAccountKeyLastAuthentication",
        &format!("projects/{PROJECT}/serviceAccounts/{exporter}/keys/aaaa1111"),
        "2026-06-30T02:00:09Z",
    );
    fake.add_last_authentication(
        PROJECT,
        "serviceAccountLastAuthentication",
        &format!("projects/{PROJECT}/serviceAccounts/{exporter}"),
        "2026-06-30T02:00:09Z",
    );
    let (_, snapshot) = take(&settings).await;
    assert!(snapshot.is_complete());
    let last_used = |id: &str| {
        snapshot
            .credentials
            .iter()
            .find(|credential| credential.id.as_str().ends_with(id))
            .expect("key")
            .last_used
    };
    assert_eq!(last_used("aaaa1111"), Usage::At(at("2026-06-30T02:00:09Z")));
    // Absent from the answer, even when created inside another record's observation period:
    // the analyzer lists what authenticated and never says "never used".
    assert_eq!(last_used("dddd4444"), Usage::Unknown);
    assert_eq!(last_used("bbbb2222"), Usage::Unknown);
    let account = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == format!("serviceAccount:{exporter}"))
        .expect("account");
    assert_eq!(account.last_activity, Usage::At(at("2026-06-30T02:00:09Z")));
}

fn revoke(snapshot: &Snapshot, id: &str) -> Action {
    Action::RevokeGrant {
        grant: grant(snapshot, id).clone(),
    }
}

fn bindings(fake: &FakeGcp) -> Vec<Value> {
    fake.policy(&format!("projects/{PROJECT}"))
        .expect("policy")
        .0["bindings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn members_of(fake: &FakeGcp, role: &str, title: Option<&str>) -> Vec<String> {
    bindings(fake)
        .iter()
        .filter(|binding| {
            binding["role"] == role && binding["condition"]["title"].as_str() == title
        })
        .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|member| member.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_member_is_removed_exactly_and_undo_restores_its_condition() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/editor|user:li.wei@partner.example|temporary-access-sec-1101",
    );
    let before_bindings = bindings(&fake);
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    assert_eq!(
        before.restore["condition"]["description"], "SEC-1101 until October",
        "the journal keeps the whole condition"
    );
    let (_, etag_before) = fake.policy("projects/acme-prod").expect("policy");

    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    // The conditional binding is gone (it held only this member); the same member's plain
    // editor binding and every other binding are untouched.
    assert!(
        !bindings(&fake)
            .iter()
            .any(|binding| binding["condition"]["title"] == "temporary-access-sec-1101")
    );
    assert_eq!(
        members_of(&fake, "roles/editor", None),
        vec![
            "user:li.wei@partner.example".to_owned(),
            format!("serviceAccount:{}", email("ci-deployer"))
        ]
    );
    assert_eq!(bindings(&fake).len(), before_bindings.len() - 1);
    let (_, etag_after) = fake.policy("projects/acme-prod").expect("policy");
    assert_ne!(etag_before, etag_after, "every write moves the etag");
    let after = provider.read_target(&action).await.expect("read");
    assert!(after.revoked);
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );

    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let restored = bindings(&fake)
        .into_iter()
        .find(|binding| binding["condition"]["title"] == "temporary-access-sec-1101")
        .expect("binding recreated");
    assert_eq!(restored["members"], json!(["user:li.wei@partner.example"]));
    assert_eq!(restored["condition"]["expression"], EXPIRED);
    assert_eq!(
        restored["condition"]["description"],
        "SEC-1101 until October"
    );
    let again = provider.read_target(&action).await.expect("read");
    assert!(again.present && !again.revoked);
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo again"),
        ActionOutcome::AlreadyDone
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_of_a_shared_binding_is_removed_alone_and_re_added_to_it() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/storage.objectViewer|user:ana@acme.example|exports-until-march",
    );
    let before = provider.read_target(&action).await.expect("read");
    provider.apply(&action).await.expect("apply");
    assert_eq!(
        members_of(
            &fake,
            "roles/storage.objectViewer",
            Some("exports-until-march")
        ),
        vec![format!("serviceAccount:{}", email("legacy-exporter"))]
    );
    provider.undo(&action, &before).await.expect("undo");
    let mut members = members_of(
        &fake,
        "roles/storage.objectViewer",
        Some("exports-until-march"),
    );
    members.sort();
    assert_eq!(
        members,
        vec![
            format!("serviceAccount:{}", email("legacy-exporter")),
            "user:ana@acme.example".to_owned()
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_writer_between_read_and_write_keeps_its_change() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    // Right after lapse reads the policy, someone else grants a new conditional binding.
    fake.write_after_next_read("projects/acme-prod", |policy| {
        policy["bindings"]
            .as_array_mut()
            .expect("bindings")
            .push(json!({
                "role": "roles/cloudkms.admin",
                "members": ["user:ana@acme.example"],
                "condition": {"title": "pam-grant-kms-rotation",
                              "expression": "request.time < timestamp(\"2026-11-20T09:00:00Z\")"}
            }));
    });
    let earlier = fake.request_count();
    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    let requests = fake.requests().split_off(earlier);
    let count = |suffix: &str| {
        requests
            .iter()
            .filter(|request| request.ends_with(suffix))
            .count()
    };
    assert_eq!(count(":getIamPolicy"), 2, "{requests:?}");
    assert_eq!(
        count(":setIamPolicy"),
        2,
        "the first write met 409 and the cycle was redone"
    );
    // lapse's removal happened; the other writer's binding and every conditional binding
    // survived.
    assert!(members_of(&fake, "roles/owner", None).is_empty());
    assert_eq!(
        members_of(
            &fake,
            "roles/cloudkms.admin",
            Some("pam-grant-kms-rotation")
        ),
        vec!["user:ana@acme.example".to_owned()]
    );
    assert_eq!(
        members_of(&fake, "roles/editor", Some("temporary-access-sec-1101")),
        vec!["user:li.wei@partner.example".to_owned()]
    );
    assert_eq!(
        members_of(
            &fake,
            "roles/storage.objectViewer",
            Some("exports-until-march")
        )
        .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_keeps_changing_is_given_up_on_without_writing() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let settings = GcpSettings {
        policy_write_attempts: 1,
        ..settings
    };
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    fake.write_after_next_read("projects/acme-prod", |policy| {
        policy["bindings"]
            .as_array_mut()
            .expect("bindings")
            .push(json!({"role": "roles/viewer", "members": ["user:bo@acme.example"]}));
    });
    let error = provider.apply(&action).await.expect_err("stale etag");
    assert_eq!(error.kind, ProviderErrorKind::Throttled);
    assert!(error.message.contains("409 ABORTED"), "{}", error.message);
    assert_eq!(
        members_of(&fake, "roles/owner", None),
        vec!["group:sre@acme.example".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_409_gives_up_at_once_without_a_pause() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    // One attempt and a five-minute backoff: a pause after the only 409 would take minutes, so
    // the bound below has a margin no machine load can eat.
    let settings = GcpSettings {
        policy_write_attempts: 1,
        bounds: CallBounds {
            first_backoff: std::time::Duration::from_secs(300),
            max_backoff: std::time::Duration::from_secs(300),
            operation: std::time::Duration::from_secs(900),
            ..settings.bounds
        },
        ..settings
    };
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    fake.write_after_next_read("projects/acme-prod", |policy| {
        policy["bindings"]
            .as_array_mut()
            .expect("bindings")
            .push(json!({"role": "roles/viewer", "members": ["user:bo@acme.example"]}));
    });
    let started = std::time::Instant::now();
    let error = provider.apply(&action).await.expect_err("stale etag");
    assert!(error.message.contains("409 ABORTED"), "{}", error.message);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_live_bindings_with_the_same_role_and_condition_are_refused() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    fake.add_project(PROJECT);
    let condition =
        json!({"title": "t", "expression": "request.time < timestamp(\"2027-01-01T00:00:00Z\")"});
    fake.set_bindings(
        "projects/acme-prod",
        json!([
            {"role": "roles/viewer", "members": ["user:a@x.example"], "condition": condition},
            {"role": "roles/viewer", "members": ["user:a@x.example", "user:b@x.example"], "condition": condition}
        ]),
    );
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/viewer|user:a@x.example|t",
    );
    let error = provider.apply(&action).await.expect_err("ambiguous");
    assert!(error.message.contains("more than one binding"));
    assert_eq!(bindings(&fake).len(), 2, "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_disabled_enabled_and_deleted_but_never_google_managed_ones() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let credential = |id: &str| {
        snapshot
            .credentials
            .iter()
            .find(|credential| credential.id.as_str().ends_with(id))
            .expect("key")
            .clone()
    };
    let deactivate = Action::DeactivateCredential {
        credential: credential("aaaa1111"),
    };
    let name = deactivate.target_id().to_owned();
    let before = provider.read_target(&deactivate).await.expect("read");
    assert_eq!(before.status, Some(CredentialStatus::Active));
    assert_eq!(
        provider.describe_apply(&deactivate, &before),
        vec![format!("POST {}/v1/{name}:disable {{}}", fake.url())]
    );
    assert_eq!(
        provider.apply(&deactivate).await.expect("disable"),
        ActionOutcome::Done
    );
    assert_eq!(fake.key(&name).expect("key")["disabled"], true);
    assert!(
        provider
            .read_target(&deactivate)
            .await
            .expect("read")
            .revoked
    );
    assert_eq!(
        provider.apply(&deactivate).await.expect("again"),
        ActionOutcome::AlreadyDone
    );
    assert_eq!(
        provider.undo(&deactivate, &before).await.expect("enable"),
        ActionOutcome::Done
    );
    assert!(
        fake.key(&name).expect("key").get("disabled").is_none(),
        "enabled keys leave `disabled` out"
    );

    let system = Action::DeactivateCredential {
        credential: credential("cccc3333"),
    };
    let error = provider.apply(&system).await.expect_err("refused");
    assert_eq!(error.kind, ProviderErrorKind::Unsupported);
    assert!(error.message.contains("SYSTEM_MANAGED"));
    // Even a record that does not say so is checked live.
    let mut unmarked = credential("cccc3333");
    unmarked.cloud_managed = false;
    let error = provider
        .apply(&Action::DeleteCredential {
            credential: unmarked,
        })
        .await
        .expect_err("refused");
    assert!(error.message.contains("SYSTEM_MANAGED"));
    assert!(fake.key(&credential("cccc3333").id.0).is_some());

    let delete = Action::DeleteCredential {
        credential: credential("bbbb2222"),
    };
    let live = provider.read_target(&delete).await.expect("read");
    assert!(live.present && !live.revoked);
    assert_eq!(live.status, Some(CredentialStatus::Inactive));
    assert_eq!(
        provider.apply(&delete).await.expect("delete"),
        ActionOutcome::Done
    );
    assert!(fake.key(delete.target_id()).is_none());
    assert!(!provider.read_target(&delete).await.expect("read").present);
    assert_eq!(
        provider.apply(&delete).await.expect("again"),
        ActionOutcome::AlreadyDone
    );
    assert!(provider.undo(&delete, &live).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_is_disabled_and_enabled_again() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let principal = |id: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == id)
            .expect("principal")
            .clone()
    };
    let action = Action::DisablePrincipal {
        principal: principal(&format!("serviceAccount:{}", email("ci-deployer"))),
    };
    let before = provider.read_target(&action).await.expect("read");
    assert!(provider.describe_apply(&action, &before)[0].contains("already issued are rejected"));
    assert_eq!(
        provider.apply(&action).await.expect("disable"),
        ActionOutcome::Done
    );
    assert_eq!(
        fake.account_disabled(PROJECT, &email("ci-deployer")),
        Some(true)
    );
    assert!(provider.read_target(&action).await.expect("read").revoked);
    provider.undo(&action, &before).await.expect("enable");
    assert_eq!(
        fake.account_disabled(PROJECT, &email("ci-deployer")),
        Some(false)
    );

    let agent = Action::DisablePrincipal {
        principal: principal(
            "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com",
        ),
    };
    assert!(provider.apply(&agent).await.is_err());
    let human = Action::DisablePrincipal {
        principal: principal("user:ana@acme.example"),
    };
    assert_eq!(
        provider
            .apply(&human)
            .await
            .expect_err("not an account")
            .kind,
        ProviderErrorKind::Unsupported
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_write_names_the_permission() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    fake.deny(PROJECT, "resourcemanager.projects.setIamPolicy");
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    let error = provider.apply(&action).await.expect_err("denied");
    assert_eq!(error.kind, ProviderErrorKind::Denied);
    assert_eq!(
        error.missing_permission.as_deref(),
        Some("resourcemanager.projects.setIamPolicy")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_another_key_is_refused_and_said_so() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let stranger = TestServiceAccountKey::generate(LAPSE);
    let settings = GcpSettings {
        credentials: Some(stranger.credentials(CLOSED_TOKEN_URI)),
        ..settings
    };
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(!scope.complete);
    assert!(
        scope.errors[0].message.contains("401 UNAUTHENTICATED"),
        "{}",
        scope.errors[0].message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_and_organization_policies_are_read_when_asked() {
    let (fake, settings) = signed_fake(&[]);
    fake.set_bindings(
        "folders/1234",
        json!([{"role": "roles/resourcemanager.folderAdmin", "members": ["user:ana@acme.example"]}]),
    );
    fake.set_bindings(
        "organizations/99",
        json!([{"role": "roles/owner", "members": ["domain:acme.example"]}]),
    );
    let settings = GcpSettings {
        folders: vec!["1234".to_owned()],
        organizations: vec!["99".to_owned()],
        ..settings
    };
    let (_, snapshot) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    grant(
        &snapshot,
        "folders/1234|roles/resourcemanager.folderAdmin|user:ana@acme.example",
    );
    let org = grant(
        &snapshot,
        "organizations/99|roles/owner|domain:acme.example",
    );
    assert_eq!(org.scope.as_str(), "gcp:organizations/99");
    assert_eq!(org.resource, "organizations/99");
}

/// The fake's bodies against the documented examples, field by field.
#[tokio::test(flavor = "multi_thread")]
async fn the_fake_answers_in_the_documented_shapes() {
    let fake = FakeGcp::start();
    let account =
        fake.add_service_account("my-project", "my-service-account", "My service account");
    fake.add_key(
        "my-project",
        &account,
        FakeKey::user(
            "90c48f61c65cd56224a12ab18e6ee9ca9c3aee7c",
            "2020-03-04T17:39:47Z",
        ),
    );
    // https://cloud.google.com/iam/docs/reference/rest/v1/Policy (the `expirable access` example).
    let documented_policy = json!({
        "bindings": [
            {"role": "roles/resourcemanager.organizationAdmin",
             "members": ["user:mike@example.com", "group:admins@example.com", "domain:google.com",
                         "serviceAccount:my-project-id@appspot.gserviceaccount.com"]},
            {"role": "roles/resourcemanager.organizationViewer",
             "members": ["user:eve@example.com"],
             "condition": {"title": "expirable access",
                           "description": "Does not grant access after Sep 2020",
                           "expression": "request.time < timestamp('2020-10-01T00:00:00.000Z')"}}
        ],
        "etag": "BwWWja0YfJA=",
        "version": 3
    });
    fake.set_bindings("projects/my-project", documented_policy["bindings"].clone());
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            http.get(path)
                .send()
                .await
                .expect("send")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    };

    // https://cloud.google.com/iam/docs/service-accounts-list-edit#listing (response example),
    // less `description`, which the fake's accounts do not have.
    let listed = get(format!(
        "{}/v1/projects/my-project/serviceAccounts",
        fake.url()
    ))
    .await;
    let documented_account = json!({
        "name": "projects/my-project/serviceAccounts/my-service-account@my-project.iam.gserviceaccount.com",
        "projectId": "my-project",
        "uniqueId": "123456789012345678901",
        "email": "my-service-account@my-project.iam.gserviceaccount.com",
        "displayName": "My service account",
        "etag": "BwUp3rVlzes=",
        "oauth2ClientId": "987654321098765432109"
    });
    let served = &listed["accounts"][0];
    assert_eq!(keys(served), keys(&documented_account));
    for field in ["name", "projectId", "email", "displayName"] {
        assert_eq!(served[field], documented_account[field], "{field}");
    }
    assert!(served["uniqueId"].is_string() && served["oauth2ClientId"].is_string());
    assert!(
        listed.get("nextPageToken").is_none(),
        "a last page has no token"
    );

    // https://cloud.google.com/iam/docs/keys-list-get#listing (response example).
    let documented_key = json!({
        "name": "projects/my-project/serviceAccounts/my-service-account@my-project.iam.gserviceaccount.com/keys/90c48f61c65cd56224a12ab18e6ee9ca9c3aee7c",
        "validAfterTime": "2020-03-04T17:39:47Z",
        "validBeforeTime": "9999-12-31T23:59:59Z",
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED"
    });
    let listed = get(format!(
        "{}/v1/projects/my-project/serviceAccounts/{account}/keys",
        fake.url()
    ))
    .await;
    assert_eq!(listed["keys"][0], documented_key);
    assert_eq!(NO_EXPIRY, documented_key["validBeforeTime"]);

    let policy = http
        .post(format!(
            "{}/v3/projects/my-project:getIamPolicy",
            fake.url()
        ))
        .json(&json!({"options": {"requestedPolicyVersion": 3}}))
        .send()
        .await
        .expect("send")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(keys(&policy), keys(&documented_policy));
    assert_eq!(policy["bindings"], documented_policy["bindings"]);
    assert_eq!(policy["version"], 3);
    assert!(policy["etag"].is_string());

    // A service account's own policy is the same Policy resource, through IAM v1:
    // https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/getIamPolicy
    // (`options.requestedPolicyVersion` is a query parameter; the request body must be empty).
    let account_policy = format!(
        "{}/v1/projects/my-project/serviceAccounts/{account}:getIamPolicy",
        fake.url()
    );
    fake.set_account_bindings(
        "my-project",
        &account,
        documented_policy["bindings"].clone(),
    );
    let policy = http
        .post(format!("{account_policy}?options.requestedPolicyVersion=3"))
        .send()
        .await
        .expect("send")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(keys(&policy), keys(&documented_policy));
    assert_eq!(policy["bindings"], documented_policy["bindings"]);
    assert_eq!(policy["version"], 3);
    assert!(policy["etag"].is_string());
    // Without the version, conditional bindings come flattened, as the docs warn.
    let flattened = http
        .post(&account_policy)
        .send()
        .await
        .expect("send")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(flattened["version"], 1);
    assert!(
        flattened["bindings"][1]["role"]
            .as_str()
            .is_some_and(|role| role.contains("_withcond_")),
        "{flattened}"
    );

    // Errors: https://cloud.google.com/apis/design/errors#http_mapping
    let missing = http
        .get(format!(
            "{}/v1/projects/my-project/serviceAccounts/nobody@my-project.iam.gserviceaccount.com",
            fake.url()
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert!(body["error"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_revocations_on_one_policy_take_turns_instead_of_colliding() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    fake.add_project(PROJECT);
    let members: Vec<String> = (0..6)
        .map(|index| format!("user:u{index}@acme.example"))
        .collect();
    fake.set_bindings(
        "projects/acme-prod",
        json!([{"role": "roles/editor", "members": members}, {"role": "roles/viewer", "members": members}]),
    );
    // One attempt each: any collision between lapse's own writes would fail an action.
    let settings = GcpSettings {
        policy_write_attempts: 1,
        ..settings
    };
    let (provider, snapshot) = take(&settings).await;
    let actions: Vec<Action> = members
        .iter()
        .map(|member| {
            revoke(
                &snapshot,
                &format!("projects/acme-prod|roles/editor|{member}"),
            )
        })
        .collect();
    let outcomes =
        futures_util::future::join_all(actions.iter().map(|action| provider.apply(action))).await;
    for outcome in outcomes {
        assert_eq!(
            outcome.expect("no 409 between lapse's own writes"),
            ActionOutcome::Done
        );
    }
    assert!(members_of(&fake, "roles/editor", None).is_empty());
    assert_eq!(members_of(&fake, "roles/viewer", None), members);
}

#[tokio::test(flavor = "multi_thread")]
async fn user_credentials_name_their_user_through_token_info() {
    let fake = FakeGcp::start();
    seed(&fake);
    let login = [
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/cloud-platform",
    ];
    let settings = GcpSettings {
        credentials: Some(fake.user_credentials("ana@acme.example", &login)),
        ..fake.settings(&[PROJECT, "acme-dev"])
    };
    fake.add_project("acme-dev");
    let (provider, snapshot) = take(&settings).await;
    assert_eq!(snapshot.scopes.len(), 2);
    for scope in &snapshot.scopes {
        assert!(scope.complete, "{:?}", scope.errors);
        assert_eq!(scope.caller.as_deref(), Some("user:ana@acme.example"));
    }
    let asked = fake
        .requests()
        .iter()
        .filter(|request| *request == "POST /tokeninfo")
        .count();
    assert_eq!(asked, 1, "the caller is found once per provider");
    assert!(provider.request_count() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_nothing_names_is_left_empty_and_the_reads_stay_complete() {
    let fake = FakeGcp::start();
    seed(&fake);
    // A login without the email scope: token info answers, but names no one.
    let login = ["https://www.googleapis.com/auth/cloud-platform"];
    let settings = GcpSettings {
        credentials: Some(fake.user_credentials("ana@acme.example", &login)),
        ..fake.settings(&[PROJECT])
    };
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(scope.complete, "{:?}", scope.errors);
    assert!(scope.errors.is_empty());
    assert_eq!(scope.caller, None);
    assert!(!snapshot.grants.is_empty());
}

fn set_policy_writes(fake: &FakeGcp) -> usize {
    fake.requests()
        .iter()
        .filter(|request| request.ends_with(":setIamPolicy"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_read_at_version_1_is_neither_reported_nor_written_back() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    fake.answer_policies_at_version_1();

    let (_, flattened) = take(&settings).await;
    let scope = &flattened.scopes[0];
    assert!(!scope.complete, "a flattened policy is not the policy");
    assert_eq!(
        scope.errors[0].operation,
        "cloudresourcemanager.projects.getIamPolicy"
    );
    assert!(
        scope.errors[0].message.contains("_withcond_"),
        "{}",
        scope.errors[0].message
    );
    assert!(
        !flattened
            .grants
            .iter()
            .any(|grant| grant.entitlement.contains("_withcond_")),
        "{:?}",
        flattened.grants
    );

    let before = bindings(&fake);
    let error = provider.apply(&action).await.expect_err("refused");
    assert!(error.message.contains("_withcond_"), "{}", error.message);
    assert_eq!(set_policy_writes(&fake), 0, "nothing written");
    assert_eq!(bindings(&fake), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_without_an_etag_is_never_written() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    fake.omit_policy_etag();
    let error = provider.apply(&action).await.expect_err("refused");
    assert!(error.message.contains("etag"), "{}", error.message);
    assert_eq!(set_policy_writes(&fake), 0, "no blind write");
    assert_eq!(
        members_of(&fake, "roles/owner", None),
        vec!["group:sre@acme.example".to_owned()]
    );
    let (_, snapshot) = take(&settings).await;
    assert!(!snapshot.scopes[0].complete);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_list_answering_404_leaves_the_scope_incomplete() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    // One account's key list says "not found" (eventual consistency, or a bad name).
    fake.not_found("/keys", 1);
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(
        !scope.complete,
        "a key list that was not read is not an empty one"
    );
    assert_eq!(
        scope.errors[0].operation,
        "iam.projects.serviceAccounts.keys.list"
    );
    assert!(
        scope.errors[0].message.contains("404"),
        "{:?}",
        scope.errors
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pager_that_repeats_its_token_is_stopped_and_reported() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    fake.enable_policy_analyzer(PROJECT);
    fake.loop_pages();
    let snapshot = tokio::time::timeout(std::time::Duration::from_secs(30), take(&settings))
        .await
        .expect("the snapshot ends")
        .1;
    let scope = &snapshot.scopes[0];
    assert!(!scope.complete);
    let operations: Vec<&str> = scope
        .errors
        .iter()
        .map(|error| error.operation.as_str())
        .collect();
    assert!(
        operations.contains(&"iam.projects.serviceAccounts.list"),
        "{operations:?}"
    );
    assert!(
        operations
            .iter()
            .any(|operation| operation.starts_with("policyanalyzer.")),
        "{operations:?}"
    );
    assert!(fake.request_count() < 100, "{}", fake.request_count());
}

fn credential_named(snapshot: &Snapshot, suffix: &str) -> lapse_sdk::Credential {
    snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str().ends_with(suffix))
        .expect("key")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_that_would_reach_another_object_are_refused_before_any_request() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let key = credential_named(&snapshot, "aaaa1111");
    let account = format!(
        "projects/{PROJECT}/serviceAccounts/{}",
        email("legacy-exporter")
    );
    let earlier = fake.request_count();
    for bad in [
        // `keys/..` is the account itself once the URL is normalised.
        format!("{account}/keys/.."),
        format!("{account}/keys/%2e%2e"),
        format!("{account}/keys/aaaa1111?x=1"),
        format!("{account}/keys/aaaa1111#x"),
        format!("projects/{PROJECT}/serviceAccounts/../keys/aaaa1111"),
        format!(
            "projects/-/serviceAccounts/{}/keys/aaaa1111",
            email("legacy-exporter")
        ),
    ] {
        let mut credential = key.clone();
        credential.id = bad.clone().into();
        let error = provider
            .apply(&Action::DeleteCredential { credential })
            .await
            .expect_err(&bad);
        assert_eq!(error.kind, ProviderErrorKind::Unsupported, "{bad}");
    }
    let mut principal = snapshot
        .principals
        .iter()
        .find(|principal| {
            principal.id.as_str() == format!("serviceAccount:{}", email("ci-deployer"))
        })
        .expect("account")
        .clone();
    principal.id = format!("serviceAccount:{}:undelete", email("ci-deployer")).into();
    let error = provider
        .apply(&Action::DisablePrincipal { principal })
        .await
        .expect_err("refused");
    assert_eq!(error.kind, ProviderErrorKind::Unsupported);
    assert_eq!(fake.request_count(), earlier, "{:?}", fake.requests());
    assert!(fake.key(&key.id.0).is_some());

    // Scopes too: a query or fragment in an id would read another resource under its name.
    let settings = GcpSettings {
        projects: vec!["acme-prod?x".to_owned(), "acme-prod#x".to_owned()],
        folders: vec!["12a".to_owned()],
        ..settings
    };
    let (_, snapshot) = take(&settings).await;
    assert_eq!(snapshot.scopes.len(), 3);
    assert!(snapshot.scopes.iter().all(|scope| !scope.complete));
    assert_eq!(fake.request_count(), earlier);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_agent_is_never_disabled_even_when_its_record_does_not_say_so() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let agent = "service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com";
    let mut principal = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == format!("serviceAccount:{agent}"))
        .expect("agent")
        .clone();
    principal.cloud_managed = false;
    let earlier = fake.request_count();
    let error = provider
        .apply(&Action::DisablePrincipal { principal })
        .await
        .expect_err("refused");
    assert_eq!(error.kind, ProviderErrorKind::Unsupported);
    assert!(error.message.contains("service agent"), "{}", error.message);
    assert_eq!(fake.request_count(), earlier);
    assert_eq!(fake.account_disabled(PROJECT, agent), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_from_a_verb_is_done_only_when_a_read_agrees_and_never_for_undo() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let deactivate = Action::DeactivateCredential {
        credential: credential_named(&snapshot, "aaaa1111"),
    };
    let name = deactivate.target_id().to_owned();
    let before = provider.read_target(&deactivate).await.expect("read");
    // The key is there, but the verb missed it: not done.
    fake.not_found(":disable", 1);
    let error = provider.apply(&deactivate).await.expect_err("not done");
    assert_eq!(error.kind, ProviderErrorKind::NotFound);
    assert!(fake.key(&name).expect("key").get("disabled").is_none());

    let principal = snapshot
        .principals
        .iter()
        .find(|principal| {
            principal.id.as_str() == format!("serviceAccount:{}", email("ci-deployer"))
        })
        .expect("account")
        .clone();
    let disable = Action::DisablePrincipal { principal };
    let account_before = provider.read_target(&disable).await.expect("read");
    fake.not_found(":disable", 1);
    assert!(provider.apply(&disable).await.is_err());
    assert_eq!(
        fake.account_disabled(PROJECT, &email("ci-deployer")),
        Some(false)
    );

    // Undo: an enable that finds nothing has restored nothing.
    provider.apply(&deactivate).await.expect("disable");
    provider.apply(&disable).await.expect("disable");
    fake.not_found(":enable", 2);
    assert!(provider.undo(&deactivate, &before).await.is_err());
    assert!(provider.undo(&disable, &account_before).await.is_err());
    assert_eq!(fake.key(&name).expect("key")["disabled"], true);
    assert_eq!(
        fake.account_disabled(PROJECT, &email("ci-deployer")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_never_enables_on_a_journal_that_does_not_say_it_was_enabled() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    let (provider, snapshot) = take(&settings).await;
    let deactivate = Action::DeactivateCredential {
        credential: credential_named(&snapshot, "bbbb2222"),
    };
    let name = deactivate.target_id().to_owned();
    let mut before = provider.read_target(&deactivate).await.expect("read");
    before.restore = json!({"name": name});
    assert!(provider.undo(&deactivate, &before).await.is_err());
    // The dry run says what undo does: nothing, and why.
    let described = provider.describe_undo(&deactivate, &before);
    assert!(
        described.len() == 1
            && described[0].starts_with("none:")
            && described[0].contains("does not say"),
        "{described:?}"
    );
    before.restore = json!({"name": format!("{name}0"), "disabled": false});
    assert!(provider.undo(&deactivate, &before).await.is_err());
    assert!(
        provider.describe_undo(&deactivate, &before)[0].starts_with("none:"),
        "another object's journal enables nothing"
    );
    before.restore = json!({"name": name, "disabled": false});
    assert!(provider.describe_undo(&deactivate, &before)[0].ends_with(":enable {}"));

    let account = format!("serviceAccount:{}", email("ci-deployer"));
    let principal = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == account)
        .expect("account")
        .clone();
    let disable = Action::DisablePrincipal { principal };
    let mut account_before = provider.read_target(&disable).await.expect("read");
    account_before.restore = json!({"name": account_before.restore["name"]});
    assert!(provider.describe_undo(&disable, &account_before)[0].starts_with("none:"));
    assert_eq!(
        fake.key(&name).expect("key")["disabled"],
        true,
        "disabled before lapse, still disabled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn undo_restores_the_member_under_its_exact_condition_description_included() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    fake.add_project(PROJECT);
    let expression = r#"request.time < timestamp("2027-01-01T00:00:00Z")"#;
    fake.set_bindings(
        "projects/acme-prod",
        json!([
            {"role": "roles/viewer", "members": ["user:a@x.example"],
             "condition": {"title": "t", "description": "ticket SEC-1", "expression": expression}},
            {"role": "roles/viewer", "members": ["user:b@x.example"],
             "condition": {"title": "t", "description": "ticket SEC-2", "expression": expression}}
        ]),
    );
    let (provider, snapshot) = take(&settings).await;
    let action = revoke(
        &snapshot,
        "projects/acme-prod|roles/viewer|user:a@x.example|t",
    );
    let before = provider.read_target(&action).await.expect("read");
    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    assert_eq!(bindings(&fake).len(), 1);
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let holder = |member: &str| {
        bindings(&fake)
            .into_iter()
            .filter(|binding| {
                binding["members"]
                    .as_array()
                    .is_some_and(|members| members.contains(&json!(member)))
            })
            .map(|binding| binding["condition"]["description"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(holder("user:a@x.example"), vec![json!("ticket SEC-1")]);
    assert_eq!(holder("user:b@x.example"), vec![json!("ticket SEC-2")]);
}

/// A service account's own IAM policy: the grants on the account (who may act as it).
fn account_policy(account: &str) -> String {
    format!("projects/{PROJECT}/serviceAccounts/{}", email(account))
}

fn account_bindings(fake: &FakeGcp, account: &str) -> Vec<Value> {
    fake.policy(&account_policy(account)).expect("policy").0["bindings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

const POOL_REPOSITORY: &str = "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/github/attribute.repository/acme/deploy";
const BREAK_GLASS: &str = r#"request.time < timestamp("2027-06-30T00:00:00Z")"#;

/// Seeds the accounts' own policies: a user who can mint tokens as the exporter (plainly, and
/// again under a break-glass condition), and a GitHub repository that can act as the deployer
/// through a workload identity pool.
fn seed_account_policies(fake: &FakeGcp) {
    fake.set_account_bindings(
        PROJECT,
        &email("legacy-exporter"),
        json!([
            {"role": "roles/iam.serviceAccountTokenCreator",
             "members": ["user:ana@acme.example", "user:bo@acme.example"]},
            {"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:ana@acme.example"],
             "condition": {"title": "break-glass", "description": "SEC-3001 on-call", "expression": BREAK_GLASS}}
        ]),
    );
    fake.set_account_bindings(
        PROJECT,
        &email("ci-deployer"),
        json!([{"role": "roles/iam.workloadIdentityUser", "members": [POOL_REPOSITORY]}]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_accounts_own_policy_becomes_grants_on_the_account() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    let (_, snapshot) = take(&settings).await;
    // Complete: the conditional binding came at version 3 (the version is asked for in the
    // query, where IAM v1 reads it; asked anywhere else, the fake flattens it).
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);

    let exporter = account_policy("legacy-exporter");
    let minter = grant(
        &snapshot,
        &format!("{exporter}|roles/iam.serviceAccountTokenCreator|user:ana@acme.example"),
    );
    assert_eq!(minter.resource, exporter);
    assert_eq!(minter.scope.as_str(), "gcp:projects/acme-prod");
    assert_eq!(minter.entitlement, "roles/iam.serviceAccountTokenCreator");
    assert_eq!(minter.principal.as_str(), "user:ana@acme.example");
    assert_eq!(minter.condition, None);
    assert!(
        !minter.privileged,
        "the engine's catalog judges roles, not the provider"
    );
    let break_glass = grant(
        &snapshot,
        &format!(
            "{exporter}|roles/iam.serviceAccountTokenCreator|user:ana@acme.example|break-glass"
        ),
    );
    assert_eq!(break_glass.expires_at, Some(at("2027-06-30T00:00:00Z")));
    grant(
        &snapshot,
        &format!("{exporter}|roles/iam.serviceAccountTokenCreator|user:bo@acme.example"),
    );
    // Every member is a principal, the pool set too.
    let principal = |id: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == id)
            .unwrap_or_else(|| panic!("principal {id}"))
    };
    assert_eq!(principal("user:bo@acme.example").kind, PrincipalKind::Human);
    assert_eq!(
        principal(POOL_REPOSITORY).native_type.as_deref(),
        Some("principalSet")
    );
    // The project's 8 grants, 3 on the exporter, 1 on the deployer.
    assert_eq!(snapshot.grants.len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_identity_pool_on_an_account_makes_federation_available() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    // A pool binding whose condition has ended federates no more; a GKE workload identity
    // member is the same thing in its older form.
    fake.set_account_bindings(
        PROJECT,
        &email("old-batch"),
        json!([{"role": "roles/iam.workloadIdentityUser",
                "members": ["principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/batch/subject/job-1"],
                "condition": {"title": "until-migration", "expression": EXPIRED}}]),
    );
    let gke = fake.add_service_account(PROJECT, "gke-reader", "GKE reader");
    fake.set_account_bindings(
        PROJECT,
        &gke,
        json!([{"role": "roles/iam.workloadIdentityUser",
                "members": [format!("serviceAccount:{PROJECT}.svc.id.goog[reports/reader]")]}]),
    );
    let (_, snapshot) = take(&settings).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    let federates = |account: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == format!("serviceAccount:{}", email(account)))
            .unwrap_or_else(|| panic!("{account}"))
            .federation_available
    };
    assert!(federates("ci-deployer"), "a principalSet:// pool member");
    assert!(federates("gke-reader"), "a GKE workload identity member");
    assert!(!federates("old-batch"), "its pool binding has ended");
    assert!(
        !federates("legacy-exporter"),
        "token creators are people, not federation"
    );
    // The pool binding is a grant like any other.
    let binding = grant(
        &snapshot,
        &format!(
            "{}|roles/iam.workloadIdentityUser|{POOL_REPOSITORY}",
            account_policy("ci-deployer")
        ),
    );
    assert_eq!(binding.principal.as_str(), POOL_REPOSITORY);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_policy_lapse_may_not_read_leaves_the_scope_incomplete() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    fake.deny(PROJECT, "iam.serviceAccounts.getIamPolicy");
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(
        !scope.complete,
        "an unread account policy is never 'nobody can act as it'"
    );
    let error = &scope.errors[0];
    assert_eq!(error.operation, "iam.projects.serviceAccounts.getIamPolicy");
    assert_eq!(
        error.missing_permission.as_deref(),
        Some("iam.serviceAccounts.getIamPolicy")
    );
    assert!(
        error
            .message
            .contains("grant `iam.serviceAccounts.getIamPolicy`"),
        "{}",
        error.message
    );
    // The rest was read: keys and the project's bindings.
    assert_eq!(snapshot.credentials.len(), 4);
    grant(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
    assert!(
        !snapshot
            .grants
            .iter()
            .any(|grant| grant.resource.contains("/serviceAccounts/"))
    );

    // Throttled past the retry budget: incomplete too, and says so.
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    fake.throttle("iam.gserviceaccount.com:getIamPolicy", 1000);
    let settings = GcpSettings {
        bounds: CallBounds {
            attempts: 2,
            ..settings.bounds
        },
        ..settings
    };
    let (_, snapshot) = take(&settings).await;
    let scope = &snapshot.scopes[0];
    assert!(!scope.complete);
    assert!(
        scope.errors.iter().all(|error| {
            error.operation == "iam.projects.serviceAccounts.getIamPolicy"
                && error.message.contains("429 RESOURCE_EXHAUSTED")
        }),
        "{:?}",
        scope.errors
    );
    grant(
        &snapshot,
        "projects/acme-prod|roles/owner|group:sre@acme.example",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_level_member_is_revoked_and_restored_beside_a_conditional_binding() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    let (provider, snapshot) = take(&settings).await;
    let exporter = account_policy("legacy-exporter");
    let action = revoke(
        &snapshot,
        &format!("{exporter}|roles/iam.serviceAccountTokenCreator|user:ana@acme.example"),
    );
    assert!(
        provider
            .permissions(ActionKind::RevokeGrant)
            .contains(&"iam.serviceAccounts.setIamPolicy")
    );
    let project_before = bindings(&fake);
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    let described = provider.describe_apply(&action, &before);
    assert_eq!(
        described[0],
        format!(
            "POST {}/v1/{exporter}:getIamPolicy?options.requestedPolicyVersion=3",
            fake.url()
        )
    );
    assert!(
        described[1].starts_with(&format!("POST {}/v1/{exporter}:setIamPolicy ", fake.url())),
        "{described:?}"
    );
    let (_, etag_before) = fake.policy(&exporter).expect("policy");
    let earlier = fake.request_count();

    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    let requests = fake.requests().split_off(earlier);
    assert_eq!(
        requests,
        vec![
            format!("POST /v1/{exporter}:getIamPolicy"),
            format!("POST /v1/{exporter}:setIamPolicy"),
        ],
        "the account's own policy, through IAM v1"
    );
    let (_, etag_after) = fake.policy(&exporter).expect("policy");
    assert_ne!(etag_before, etag_after);
    // Bo keeps the plain binding; Ana keeps her break-glass binding, condition and all.
    assert_eq!(
        account_bindings(&fake, "legacy-exporter"),
        vec![
            json!({"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:bo@acme.example"]}),
            json!({"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:ana@acme.example"],
                   "condition": {"title": "break-glass", "description": "SEC-3001 on-call", "expression": BREAK_GLASS}}),
        ]
    );
    assert_eq!(bindings(&fake), project_before, "the project is untouched");
    assert!(provider.read_target(&action).await.expect("read").revoked);
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );

    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let mut members: Vec<Value> = account_bindings(&fake, "legacy-exporter")
        .into_iter()
        .filter(|binding| binding.get("condition").is_none())
        .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default())
        .collect();
    members.sort_by_key(Value::to_string);
    assert_eq!(
        members,
        vec![
            json!("user:ana@acme.example"),
            json!("user:bo@acme.example")
        ]
    );

    // The conditional one: removed alone, and restored under its exact condition.
    let conditional = revoke(
        &snapshot,
        &format!(
            "{exporter}|roles/iam.serviceAccountTokenCreator|user:ana@acme.example|break-glass"
        ),
    );
    let before = provider.read_target(&conditional).await.expect("read");
    provider.apply(&conditional).await.expect("apply");
    assert!(
        !account_bindings(&fake, "legacy-exporter")
            .iter()
            .any(|binding| binding.get("condition").is_some())
    );
    provider.undo(&conditional, &before).await.expect("undo");
    let restored = account_bindings(&fake, "legacy-exporter")
        .into_iter()
        .find(|binding| binding.get("condition").is_some())
        .expect("restored");
    assert_eq!(
        restored["condition"],
        json!({"title": "break-glass", "description": "SEC-3001 on-call", "expression": BREAK_GLASS})
    );
    assert_eq!(restored["members"], json!(["user:ana@acme.example"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_writer_on_an_account_policy_keeps_its_change() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    let (provider, snapshot) = take(&settings).await;
    let exporter = account_policy("legacy-exporter");
    let action = revoke(
        &snapshot,
        &format!("{exporter}|roles/iam.serviceAccountTokenCreator|user:bo@acme.example"),
    );
    // Right after lapse reads the account's policy, someone lets a pipeline act as it.
    fake.write_after_next_read(&exporter, |policy| {
        policy["bindings"]
            .as_array_mut()
            .expect("bindings")
            .push(json!({"role": "roles/iam.serviceAccountUser", "members": ["serviceAccount:deploy@acme-ops.iam.gserviceaccount.com"]}));
    });
    let earlier = fake.request_count();
    assert_eq!(
        provider.apply(&action).await.expect("apply"),
        ActionOutcome::Done
    );
    let requests = fake.requests().split_off(earlier);
    let count = |suffix: &str| {
        requests
            .iter()
            .filter(|request| request.ends_with(&format!("{exporter}{suffix}")))
            .count()
    };
    assert_eq!(count(":getIamPolicy"), 2, "{requests:?}");
    assert_eq!(
        count(":setIamPolicy"),
        2,
        "the first write met 409 and the cycle was redone"
    );
    let bindings = account_bindings(&fake, "legacy-exporter");
    assert!(
        bindings
            .iter()
            .any(|binding| binding["role"] == "roles/iam.serviceAccountUser"),
        "{bindings:?}"
    );
    assert!(
        !bindings.iter().any(|binding| binding["members"]
            .as_array()
            .is_some_and(|members| members.contains(&json!("user:bo@acme.example")))),
        "{bindings:?}"
    );
    assert!(
        bindings
            .iter()
            .any(|binding| binding["condition"]["title"] == "break-glass"),
        "{bindings:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn account_policy_names_that_would_reach_another_object_are_refused() {
    let (fake, settings) = signed_fake(&[PROJECT]);
    seed(&fake);
    seed_account_policies(&fake);
    let (provider, snapshot) = take(&settings).await;
    let exporter = account_policy("legacy-exporter");
    let planned = grant(
        &snapshot,
        &format!("{exporter}|roles/iam.serviceAccountTokenCreator|user:bo@acme.example"),
    )
    .clone();
    let earlier = fake.request_count();
    for bad in [
        format!("{exporter}/keys/aaaa1111"),
        format!("{exporter}:undelete"),
        format!("projects/{PROJECT}/serviceAccounts/.."),
        format!("projects/-/serviceAccounts/{}", email("legacy-exporter")),
        format!("projects/{PROJECT}/serviceAccounts/x%40y.example"),
    ] {
        let mut grant = planned.clone();
        grant.resource = bad.clone();
        let action = Action::RevokeGrant { grant };
        let error = provider.apply(&action).await.expect_err(&bad);
        assert_eq!(error.kind, ProviderErrorKind::Unsupported, "{bad}");
        assert!(
            provider.describe_apply(&action, &Default::default())[0].starts_with("none:"),
            "{bad}"
        );
    }
    assert_eq!(fake.request_count(), earlier, "{:?}", fake.requests());
}
