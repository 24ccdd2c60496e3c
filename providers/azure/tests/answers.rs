//! Whole answers: every Graph and ARM answer lapse reads must be the documented JSON, whole, or
//! its scope is incomplete (a read) or the action fails (a revocation), never an empty success.
//! A role must keep its name and id, and a federated credential is never deleted without what
//! re-creates it.

use lapse_provider_azure::fake::{
    FakeAzure, Fault, Misbehaviour, OWNER, SUBSCRIPTION, State, StaticCredential, TENANT, ids,
};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_sdk::{
    Action, CredentialKind, Provider, ProviderErrorKind, ScopeStatus, Snapshot, SnapshotRequest,
    TargetState,
};
use serde_json::json;

fn provider(fake: &FakeAzure, subscriptions: &[&str]) -> AzureProvider {
    AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: subscriptions.iter().map(|sub| (*sub).to_owned()).collect(),
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(StaticCredential::for_caller(ids::LAPSE_READER, TENANT)),
        bounds: lapse_sdk::CallBounds {
            first_backoff: std::time::Duration::from_millis(10),
            ..lapse_sdk::CallBounds::default()
        },
    })
}

async fn snapshot(provider: &AzureProvider) -> Snapshot {
    provider.take_snapshot(&SnapshotRequest::default()).await
}

fn scope<'a>(snapshot: &'a Snapshot, kind: &str) -> &'a ScopeStatus {
    snapshot
        .scopes
        .iter()
        .find(|scope| scope.id.as_str().contains(kind))
        .expect("scope")
}

fn said(scope: &ScopeStatus) -> String {
    scope
        .errors
        .iter()
        .map(|error| format!("{}: {}", error.operation, error.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn writes(fake: &FakeAzure) -> Vec<String> {
    fake.state()
        .requests
        .iter()
        .filter(|request| !request.starts_with("GET "))
        .cloned()
        .collect()
}

const UNREADABLE: [Misbehaviour; 3] = [
    Misbehaviour::Empty,
    Misbehaviour::Garbage,
    Misbehaviour::Truncated,
];

#[tokio::test]
async fn a_role_definition_that_is_not_whole_leaves_its_subscription_incomplete() {
    for misbehaviour in UNREADABLE {
        let fake = FakeAzure::start(State::contoso());
        fake.fault(
            Fault::misbehaving(Some("GET"), "/roleDefinitions/", misbehaviour).times(usize::MAX),
        );
        let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
        let subscription = scope(&snapshot, "/subscriptions/");
        assert!(!subscription.complete, "{misbehaviour:?}");
        let text = said(subscription);
        assert!(
            text.contains("arm:GET roleDefinitions/{id}: the answer from http://127.0.0.1:")
                && text.contains("was not whole"),
            "{misbehaviour:?}: {text}"
        );
        // Nothing was read as a role named by its id.
        assert!(scope(&snapshot, "/tenants/").complete, "{misbehaviour:?}");
    }
}

#[tokio::test]
async fn a_role_definition_without_its_name_is_never_named_by_its_id_silently() {
    let mut state = State::contoso();
    if let Some(owner) = state.role_definitions.get_mut(OWNER) {
        owner["properties"]
            .as_object_mut()
            .expect("properties")
            .remove("roleName");
    }
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
    let subscription = scope(&snapshot, "/subscriptions/");
    assert!(!subscription.complete);
    let text = said(subscription);
    assert!(
        text.contains(&format!(
            "role definition {OWNER} came without properties.roleName"
        )),
        "{text}"
    );
    // jsmith's Owner is still in the snapshot, with the role's id: the engine's last-holder
    // hold keys on it.
    let owner = snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::JSMITH_OWNER))
        .expect("jsmith's Owner");
    assert!(
        owner
            .entitlement_id
            .as_deref()
            .is_some_and(|id| id.ends_with(OWNER)),
        "{owner:?}"
    );
}

#[tokio::test]
async fn an_assignment_without_its_role_or_principal_is_not_kept_as_a_grant_of_nothing() {
    let mut state = State::contoso();
    let main = state
        .subscriptions
        .get_mut(SUBSCRIPTION)
        .expect("subscription");
    for (name, field) in [
        (ids::JSMITH_OWNER, "roleDefinitionId"),
        (ids::AUDITORS_READER, "principalId"),
    ] {
        let assignment = main
            .role_assignments
            .iter_mut()
            .find(|item| item["name"] == name)
            .expect("assignment");
        assignment["properties"]
            .as_object_mut()
            .expect("properties")
            .remove(field);
    }
    // A directory role assignment without its role, too.
    for assignment in &mut state.directory_role_assignments {
        assignment
            .as_object_mut()
            .expect("assignment")
            .remove("roleDefinitionId");
    }
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
    let subscription = scope(&snapshot, "/subscriptions/");
    assert!(!subscription.complete);
    let text = said(subscription);
    assert!(text.contains("`properties.roleDefinitionId`"), "{text}");
    assert!(text.contains("`properties.principalId`"), "{text}");
    let tenant = scope(&snapshot, "/tenants/");
    assert!(!tenant.complete);
    assert!(
        said(tenant).contains("`roleDefinitionId`"),
        "{}",
        said(tenant)
    );
    for name in [
        ids::JSMITH_OWNER,
        ids::AUDITORS_READER,
        ids::DWHITFIELD_GLOBAL_ADMIN,
    ] {
        assert!(
            !snapshot
                .grants
                .iter()
                .any(|grant| grant.id.as_str().ends_with(name)),
            "{name} left out"
        );
    }
    // Every role assignment kept has its role definition id.
    assert!(snapshot.grants.iter().all(|grant| {
        grant
            .entitlement_id
            .as_deref()
            .is_some_and(|id| !id.is_empty())
    }));
}

#[tokio::test]
async fn a_page_that_does_not_say_whether_more_follow_leaves_the_list_incomplete() {
    let fake = FakeAzure::start(State::contoso());
    fake.state()
        .garbled_next_links
        .push("/v1.0/applications".to_owned());
    let snapshot = snapshot(&provider(&fake, &[])).await;
    let tenant = scope(&snapshot, "/tenants/");
    assert!(!tenant.complete);
    let text = said(tenant);
    assert!(
        text.contains("graph:GET /applications: the answer from")
            && text.contains("page 1 has a `@odata.nextLink` that is not a link"),
        "{text}"
    );
}

fn federated(snapshot: &Snapshot) -> Action {
    Action::DeleteCredential {
        credential: snapshot
            .credentials
            .iter()
            .find(|credential| credential.kind == CredentialKind::AzureFederated)
            .expect("federated credential")
            .clone(),
    }
}

#[tokio::test]
async fn a_federated_credential_that_cannot_be_read_whole_is_never_deleted() {
    for misbehaviour in UNREADABLE {
        let fake = FakeAzure::start(State::contoso());
        let provider = provider(&fake, &[]);
        let action = federated(&snapshot(&provider).await);
        fake.fault(
            Fault::misbehaving(
                Some("GET"),
                &format!("federatedIdentityCredentials/{}", ids::BILLING_FEDERATED),
                misbehaviour,
            )
            .times(usize::MAX),
        );
        let error = provider
            .read_target(&action)
            .await
            .expect_err("no state to journal, so no deletion");
        assert!(
            error.message.contains("was not whole"),
            "{misbehaviour:?}: {error}"
        );
        assert_eq!(writes(&fake), Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_federated_credential_read_without_its_trust_is_not_deleted() {
    let mut state = State::contoso();
    // Valid JSON, but without the issuer a re-creation needs.
    for credential in state.federated.values_mut().flatten() {
        credential
            .as_object_mut()
            .expect("credential")
            .remove("issuer");
    }
    let fake = FakeAzure::start(state);
    let provider = provider(&fake, &[]);
    let action = federated(&snapshot(&provider).await);
    let error = provider.read_target(&action).await.expect_err("refused");
    assert!(
        error.message.contains("came without issuer")
            && error.message.contains("nothing to re-create it from"),
        "{error}"
    );
    assert_eq!(writes(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn undo_never_posts_a_federated_credential_the_journal_cannot_describe() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let action = federated(&snapshot(&provider).await);
    for restore in [
        json!({}),
        json!({"name": "github-prod", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:contoso/billing-api:environment:prod"}),
    ] {
        let before = TargetState {
            present: true,
            restore,
            ..TargetState::default()
        };
        let error = provider.undo(&action, &before).await.expect_err("refused");
        assert_eq!(error.kind, ProviderErrorKind::Unsupported, "{error}");
        assert!(error.message.contains("the journal's record"), "{error}");
    }
    assert_eq!(writes(&fake), Vec::<String>::new());
}
