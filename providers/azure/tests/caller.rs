//! lapse's own identity in a tenant is more than the caller's object id: a service principal
//! signs in with its application's secrets and federated credentials, and holds access through
//! the groups it belongs to. Every scope of the tenant names them in `caller_identities`, so the
//! engine can protect them as it protects the caller.

use lapse_provider_azure::fake::{
    FakeAzure, Fault, SUBSCRIPTION, State, StaticCredential, TENANT, ids,
};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_sdk::{Snapshot, SnapshotRequest};
use serde_json::json;

/// lapse's service principal, its application and that application's client secret.
const LAPSE_SP: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const LAPSE_APP: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
const LAPSE_APP_ID: &str = "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f";
const LAPSE_SECRET: &str = "4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f80";
/// A group holding a group that lapse's service principal is in.
const PLATFORM: &str = "5e6f7a8b-9c0d-4e1f-8a3b-4c5d6e7f8091";

/// Contoso, where lapse runs as its own service principal, in the auditors group (itself in
/// the platform group).
fn lapse_as_a_service_principal() -> State {
    let mut state = State::contoso();
    state.applications.push(json!({"id": LAPSE_APP, "appId": LAPSE_APP_ID, "displayName": "lapse", "createdDateTime": "2024-05-01T00:00:00Z", "tags": [],
        "passwordCredentials": [{"customKeyIdentifier": null, "displayName": "lapse nightly", "endDateTime": "2027-05-01T00:00:00Z", "hint": "abc", "keyId": LAPSE_SECRET, "secretText": null, "startDateTime": "2024-05-01T00:00:00Z"}],
        "keyCredentials": []}));
    state.service_principals.push(json!({"id": LAPSE_SP, "appId": LAPSE_APP_ID, "displayName": "lapse", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": TENANT, "passwordCredentials": [], "keyCredentials": [], "tags": []}));
    state.groups.push(json!({"id": PLATFORM, "displayName": "platform", "createdDateTime": "2021-01-01T00:00:00Z"}));
    state.memberships.insert(
        LAPSE_SP.to_owned(),
        vec![ids::AUDITORS.to_owned(), PLATFORM.to_owned()],
    );
    state
}

async fn snapshot(fake: &FakeAzure, caller: &str) -> Snapshot {
    AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: vec![SUBSCRIPTION.to_owned()],
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(StaticCredential::for_caller(caller, TENANT)),
        bounds: lapse_sdk::CallBounds::default(),
    })
    .take_snapshot(&SnapshotRequest::default())
    .await
}

#[tokio::test]
async fn a_service_principal_caller_is_also_its_application_and_its_groups_in_every_scope() {
    let fake = FakeAzure::start(lapse_as_a_service_principal());
    let snapshot = snapshot(&fake, LAPSE_SP).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    let mut expected = vec![
        LAPSE_APP.to_owned(),
        ids::AUDITORS.to_owned(),
        PLATFORM.to_owned(),
    ];
    expected.sort();
    assert_eq!(snapshot.scopes.len(), 2);
    for scope in &snapshot.scopes {
        assert_eq!(scope.caller.as_deref(), Some(LAPSE_SP), "{}", scope.id);
        assert_eq!(scope.caller_identities, expected, "{}", scope.id);
    }
    // The secret lapse signs in with hangs off the application named there.
    let secret = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == LAPSE_SECRET)
        .expect("lapse's secret");
    assert_eq!(secret.principal.as_str(), LAPSE_APP);
    assert!(
        fake.state()
            .requests
            .iter()
            .any(|request| request.starts_with(&format!(
                "GET /v1.0/servicePrincipals/{LAPSE_SP}/transitiveMemberOf"
            ))),
        "read as a service principal"
    );
}

#[tokio::test]
async fn a_user_caller_is_also_its_groups() {
    let mut state = State::contoso();
    state
        .memberships
        .insert(ids::LAPSE_READER.to_owned(), vec![ids::AUDITORS.to_owned()]);
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&fake, ids::LAPSE_READER).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    for scope in &snapshot.scopes {
        assert_eq!(scope.caller_identities, vec![ids::AUDITORS.to_owned()]);
    }
}

#[tokio::test]
async fn without_the_callers_groups_no_scope_of_the_tenant_is_complete() {
    let fake = FakeAzure::start(lapse_as_a_service_principal());
    fake.fault(Fault::new(
        Some("GET"),
        "/transitiveMemberOf",
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    ));
    let snapshot = snapshot(&fake, LAPSE_SP).await;
    assert_eq!(snapshot.scopes.len(), 2);
    for scope in &snapshot.scopes {
        assert!(!scope.complete, "{}", scope.id);
        let error = scope.errors.last().expect("an error");
        assert!(
            error
                .message
                .contains("cannot tell which groups its own identity"),
            "{error:?}"
        );
        assert_eq!(
            error.missing_permission.as_deref(),
            Some("Application.Read.All")
        );
    }
}
