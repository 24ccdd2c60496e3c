//! Forged or edited records: a revocation acts only on the exact object lapse read. A record
//! whose role id is missing or not the live object's, or whose assignment lies outside the
//! scope it is filed under, is refused before any mutating call, proven by what reached the
//! fake; and the live read names the principal by its immutable object id.

use lapse_provider_azure::fake::{
    FakeAzure, OWNER, READER, SECOND_SUBSCRIPTION, SUBSCRIPTION, State, StaticCredential, TENANT,
    ids,
};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_sdk::{Action, Grant, GrantKind, Provider, Snapshot, SnapshotRequest};

fn provider(fake: &FakeAzure) -> AzureProvider {
    AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: vec![SUBSCRIPTION.to_owned(), SECOND_SUBSCRIPTION.to_owned()],
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(StaticCredential::for_caller(ids::LAPSE_READER, TENANT)),
        bounds: lapse_sdk::CallBounds::default(),
    })
}

async fn snapshot(provider: &AzureProvider) -> Snapshot {
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    snapshot
}

fn grant(snapshot: &Snapshot, id_ends_with: &str) -> Grant {
    snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(id_ends_with))
        .expect("grant")
        .clone()
}

fn role_definition(subscription: &str, role: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )
}

/// Requests that could change something.
fn writes(fake: &FakeAzure) -> Vec<String> {
    fake.state()
        .requests
        .iter()
        .filter(|request| !request.starts_with("GET "))
        .cloned()
        .collect()
}

fn has_assignment(fake: &FakeAzure, name: &str) -> bool {
    fake.state().subscriptions[SUBSCRIPTION]
        .role_assignments
        .iter()
        .any(|item| item["name"] == name)
}

/// Both ways into a revocation: the engine's read first, then the change; and the change
/// alone. Each must refuse.
async fn refused(provider: &AzureProvider, grant: Grant) -> String {
    let action = Action::RevokeGrant { grant };
    let read = provider
        .read_target(&action)
        .await
        .expect_err("read refused");
    provider.apply(&action).await.expect_err("apply refused");
    read.message
}

#[tokio::test]
async fn an_assignment_record_naming_another_role_is_refused_before_any_change() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake);
    let mut owner = grant(&snapshot(&provider).await, ids::JSMITH_OWNER);
    // Edited to look like a Reader assignment, which a policy may let go.
    owner.entitlement = "Reader".to_owned();
    owner.entitlement_id = Some(role_definition(SUBSCRIPTION, READER));
    let message = refused(&provider, owner).await;
    assert!(
        message.contains("no longer matches the plan: role"),
        "{message}"
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
    assert!(has_assignment(&fake, ids::JSMITH_OWNER));
}

#[tokio::test]
async fn an_assignment_record_without_its_role_id_is_refused_without_a_call() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake);
    let mut owner = grant(&snapshot(&provider).await, ids::JSMITH_OWNER);
    let sent = fake.request_count();
    for missing in [None, Some(String::new())] {
        owner.entitlement_id = missing;
        let message = refused(&provider, owner.clone()).await;
        assert!(message.contains("names no role id"), "{message}");
    }
    assert_eq!(fake.request_count(), sent, "refused before any call");
    assert!(has_assignment(&fake, ids::JSMITH_OWNER));
}

#[tokio::test]
async fn an_assignment_outside_the_subscription_it_is_filed_under_is_refused_without_a_call() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake);
    let snapshot = snapshot(&provider).await;
    let sent = fake.request_count();

    // This subscription's Owner assignment, said to grant on another subscription.
    let mut elsewhere = grant(&snapshot, ids::JSMITH_OWNER);
    elsewhere.resource = format!("/subscriptions/{SECOND_SUBSCRIPTION}");
    let message = refused(&provider, elsewhere).await;
    assert!(message.contains("inside the scope"), "{message}");

    // Another subscription's assignment filed under this one.
    let mut filed = grant(&snapshot, ids::SECOND_READER);
    filed.scope = format!("azure:/subscriptions/{SUBSCRIPTION}").into();
    refused(&provider, filed).await;

    // A management group's assignment claimed as held directly in this subscription.
    let mut inherited = grant(&snapshot, ids::INHERITED_OWNER);
    inherited.via = lapse_sdk::Via::Direct;
    refused(&provider, inherited).await;

    assert_eq!(fake.request_count(), sent, "refused before any call");
}

#[tokio::test]
async fn directory_and_application_permission_records_naming_another_role_change_nothing() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake);
    let snapshot = snapshot(&provider).await;

    let mut directory = grant(&snapshot, ids::DWHITFIELD_GLOBAL_ADMIN);
    assert_eq!(directory.kind, GrantKind::DirectoryRole);
    directory.entitlement_id = Some("fe930be7-5e62-47db-91af-98c3a49a38b1".to_owned());
    refused(&provider, directory).await;

    let mut permission = grant(&snapshot, ids::DEPLOY_ROLE_MANAGEMENT);
    permission.entitlement_id = Some(lapse_provider_azure::fake::USER_READ_ALL.to_owned());
    refused(&provider, permission).await;

    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn the_live_read_names_the_principal_by_its_object_id() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake);
    let snapshot = snapshot(&provider).await;
    // Entra's object id is the immutable id, and the snapshot says so.
    for principal in &snapshot.principals {
        assert_eq!(
            principal.unique_id.as_deref(),
            Some(principal.id.as_str()),
            "{principal:?}"
        );
    }
    let owner = grant(&snapshot, ids::JSMITH_OWNER);
    assert_eq!(
        owner.entitlement_id.as_deref(),
        Some(role_definition(SUBSCRIPTION, OWNER).as_str())
    );
    let live = provider
        .read_target(&Action::RevokeGrant { grant: owner })
        .await
        .expect("read");
    assert_eq!(live.unique_id.as_deref(), Some(ids::JSMITH));

    let deploy = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == ids::DEPLOY_SP)
        .expect("deploy")
        .clone();
    let live = provider
        .read_target(&Action::DisablePrincipal { principal: deploy })
        .await
        .expect("read");
    assert_eq!(live.unique_id.as_deref(), Some(ids::DEPLOY_SP));

    let secret = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_SECRET)
        .expect("secret")
        .clone();
    let live = provider
        .read_target(&Action::DeleteCredential { credential: secret })
        .await
        .expect("read");
    assert_eq!(live.unique_id.as_deref(), Some(ids::BILLING_APP));
    assert_eq!(writes(&fake), Vec::<String>::new());
}
