//! Records lapse did not read as they are: a grant, key or account whose target lies outside
//! the scope the record names (the scope the apply guards judged), a grant id that names
//! another resource, a key claimed by another account, and an account deleted and re-created
//! under the same email. Each is refused before any request that could change something,
//! counted at the in-repo fake.

use lapse_provider_gcp::fake::{FakeGcp, FakeKey, TestServiceAccountKey};
use lapse_provider_gcp::{GcpProvider, GcpSettings};
use lapse_sdk::{
    Action, ActionOutcome, Credential, Grant, Principal, Provider, ProviderErrorKind, Snapshot,
    SnapshotRequest, TargetState,
};
use serde_json::json;

const PROJECT: &str = "acme-prod";
/// Another project lapse reads: what a forged record claims as its scope.
const DEV: &str = "acme-dev";
const LAPSE: &str = "lapse-reader@acme-ops.iam.gserviceaccount.com";
const EXPORTER: &str = "exporter@acme-prod.iam.gserviceaccount.com";
const KEY: &str = "5c0e7a19d3b24f68";

fn world() -> (FakeGcp, GcpSettings) {
    let fake = FakeGcp::start();
    let key = TestServiceAccountKey::generate(LAPSE);
    fake.require_signed_by(&key);
    fake.add_service_account(PROJECT, "exporter", "exporter");
    fake.add_key(
        PROJECT,
        EXPORTER,
        FakeKey::user(KEY, "2025-01-14T09:05:33Z"),
    );
    fake.add_service_account(DEV, "builder", "builder");
    fake.set_bindings(
        &format!("projects/{PROJECT}"),
        json!([
            {"role": "roles/editor", "members": ["user:li.wei@partner.example", format!("serviceAccount:{EXPORTER}")]},
        ]),
    );
    fake.set_account_bindings(
        PROJECT,
        EXPORTER,
        json!([{"role": "roles/iam.serviceAccountTokenCreator", "members": ["user:li.wei@partner.example"]}]),
    );
    fake.set_bindings(
        &format!("projects/{DEV}"),
        json!([{"role": "roles/viewer", "members": ["user:ana@acme.example"]}]),
    );
    let settings = GcpSettings {
        credentials: Some(key.credentials("http://127.0.0.1:9/token")),
        ..fake.settings(&[PROJECT, DEV])
    };
    (fake, settings)
}

async fn take(settings: &GcpSettings) -> (GcpProvider, Snapshot) {
    let provider = GcpProvider::new(settings.clone());
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    (provider, snapshot)
}

fn grant(snapshot: &Snapshot, id: &str) -> Grant {
    snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str() == id)
        .unwrap_or_else(|| panic!("no grant {id}"))
        .clone()
}

fn key(snapshot: &Snapshot) -> Credential {
    snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str().ends_with(KEY))
        .expect("key")
        .clone()
}

fn account(snapshot: &Snapshot) -> Principal {
    snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == format!("serviceAccount:{EXPORTER}"))
        .expect("account")
        .clone()
}

/// `action` refused by every entry point, with no request sent at all.
async fn refused_before_any_request(fake: &FakeGcp, provider: &GcpProvider, action: &Action) {
    let before = fake.request_count();
    let read = provider
        .read_target(action)
        .await
        .expect_err("read refused");
    assert_eq!(
        read.kind,
        ProviderErrorKind::Unsupported,
        "{}",
        read.message
    );
    let applied = provider.apply(action).await.expect_err("apply refused");
    assert_eq!(applied.kind, ProviderErrorKind::Unsupported);
    let present = TargetState {
        present: true,
        restore: json!({"role": "roles/editor", "member": "user:li.wei@partner.example", "name": "x", "disabled": false}),
        ..TargetState::default()
    };
    provider
        .undo(action, &present)
        .await
        .expect_err("undo refused");
    let shown = provider.describe_apply(action, &present);
    assert!(
        shown.iter().all(|call| call.starts_with("none:")),
        "{shown:?}"
    );
    assert_eq!(fake.request_count(), before, "{:?}", fake.requests());
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_whose_resource_lies_outside_its_scope_is_refused() {
    let (fake, settings) = world();
    let (provider, snapshot) = take(&settings).await;
    let real = grant(
        &snapshot,
        "projects/acme-prod|roles/editor|user:li.wei@partner.example",
    );
    // Claimed for the dev project (which the guards would check), acting on production.
    let forged = Grant {
        scope: format!("gcp:projects/{DEV}").into(),
        ..real.clone()
    };
    refused_before_any_request(&fake, &provider, &Action::RevokeGrant { grant: forged }).await;
    let message = provider
        .read_target(&Action::RevokeGrant {
            grant: Grant {
                scope: format!("gcp:projects/{DEV}").into(),
                ..real.clone()
            },
        })
        .await
        .expect_err("refused")
        .message;
    assert!(message.contains("projects/acme-prod"), "{message}");
    assert!(message.contains("gcp:projects/acme-dev"), "{message}");

    // The same through another project's service account.
    let on_account = grant(
        &snapshot,
        &format!(
            "projects/acme-prod/serviceAccounts/{EXPORTER}|roles/iam.serviceAccountTokenCreator|user:li.wei@partner.example"
        ),
    );
    let forged = Grant {
        scope: format!("gcp:projects/{DEV}").into(),
        ..on_account
    };
    refused_before_any_request(&fake, &provider, &Action::RevokeGrant { grant: forged }).await;

    // A folder scope holds only the folder's own policy.
    let forged = Grant {
        scope: "gcp:folders/123456".into(),
        ..real.clone()
    };
    refused_before_any_request(&fake, &provider, &Action::RevokeGrant { grant: forged }).await;

    // The id names production, the resource names dev: which was judged is unclear.
    let forged = Grant {
        scope: format!("gcp:projects/{DEV}").into(),
        resource: format!("projects/{DEV}"),
        ..real
    };
    refused_before_any_request(&fake, &provider, &Action::RevokeGrant { grant: forged }).await;

    // The real record still works.
    let real = grant(
        &snapshot,
        "projects/acme-prod|roles/editor|user:li.wei@partner.example",
    );
    let outcome = provider
        .apply(&Action::RevokeGrant { grant: real })
        .await
        .expect("revoked");
    assert_eq!(outcome, ActionOutcome::Done);
    assert_eq!(fake.writes().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_outside_its_scope_or_claimed_by_another_account_is_refused() {
    let (fake, settings) = world();
    let (provider, snapshot) = take(&settings).await;
    let real = key(&snapshot);
    let forged = Credential {
        scope: format!("gcp:projects/{DEV}").into(),
        ..real.clone()
    };
    refused_before_any_request(
        &fake,
        &provider,
        &Action::DeactivateCredential {
            credential: forged.clone(),
        },
    )
    .await;
    refused_before_any_request(
        &fake,
        &provider,
        &Action::DeleteCredential { credential: forged },
    )
    .await;
    // Its record says another account holds it: the guards protected that one, not this one.
    let forged = Credential {
        principal: format!("serviceAccount:builder@{DEV}.iam.gserviceaccount.com").into(),
        ..real
    };
    refused_before_any_request(
        &fake,
        &provider,
        &Action::DeactivateCredential { credential: forged },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_outside_its_scope_is_refused() {
    let (fake, settings) = world();
    let (provider, snapshot) = take(&settings).await;
    let forged = Principal {
        scope: format!("gcp:projects/{DEV}").into(),
        ..account(&snapshot)
    };
    refused_before_any_request(
        &fake,
        &provider,
        &Action::DisablePrincipal { principal: forged },
    )
    .await;
    assert_eq!(fake.account_disabled(PROJECT, EXPORTER), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_re_created_under_the_same_email_is_another_account() {
    let (fake, settings) = world();
    let (provider, snapshot) = take(&settings).await;
    let planned = account(&snapshot);
    let planned_id = planned
        .unique_id
        .clone()
        .expect("the snapshot keeps uniqueId");
    let grant = grant(
        &snapshot,
        &format!("projects/acme-prod|roles/editor|serviceAccount:{EXPORTER}"),
    );
    let action = Action::DisablePrincipal {
        principal: planned.clone(),
    };
    let live = provider.read_target(&action).await.expect("read");
    assert_eq!(live.unique_id.as_deref(), Some(planned_id.as_str()));
    let held = provider
        .read_target(&Action::RevokeGrant {
            grant: grant.clone(),
        })
        .await
        .expect("read");
    assert_eq!(held.unique_id.as_deref(), Some(planned_id.as_str()));

    // Deleted and created again: same email, new uniqueId.
    fake.add_service_account(PROJECT, "exporter", "exporter");
    let live = provider.read_target(&action).await.expect("read");
    assert!(live.present);
    assert_ne!(live.unique_id.as_deref(), Some(planned_id.as_str()));
    let held = provider
        .read_target(&Action::RevokeGrant { grant })
        .await
        .expect("read");
    assert_ne!(held.unique_id.as_deref(), Some(planned_id.as_str()));
    let error = provider.apply(&action).await.expect_err("another account");
    assert!(error.message.contains("re-created"), "{}", error.message);
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert_eq!(fake.account_disabled(PROJECT, EXPORTER), Some(false));
}
