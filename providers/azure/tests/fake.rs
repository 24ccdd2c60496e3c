//! The Azure provider against the in-repo fake of Graph and ARM: reading, paging, throttling,
//! denied subscriptions, revocations that change the fake's state, and their undo.

use std::sync::Arc;

use lapse_provider_azure::fake::{
    DIRECTORY_READ_WRITE_ALL, FakeAzure, OWNER, ROLE_MANAGEMENT_READ_WRITE_DIRECTORY,
    SECOND_SUBSCRIPTION, SUBSCRIPTION, State, StaticCredential, TENANT, USER_READ_ALL,
    app_role_assignment, ids,
};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_sdk::{
    Action, ActionOutcome, CredentialKind, Grant, GrantKind, PrincipalKind, Provider,
    ProviderErrorKind, Snapshot, SnapshotRequest, Timestamp, Usage, Via,
};
use serde_json::{Value, json};

const CALLER: &str = "e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02";

fn provider(fake: &FakeAzure, subscriptions: &[&str]) -> AzureProvider {
    AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: subscriptions.iter().map(|sub| (*sub).to_owned()).collect(),
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(StaticCredential::for_caller(CALLER, TENANT)),
        bounds: lapse_sdk::CallBounds::default(),
    })
}

async fn snapshot(provider: &AzureProvider) -> Snapshot {
    provider.take_snapshot(&SnapshotRequest::default()).await
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).expect("instant")
}

fn tenant_scope() -> String {
    format!("azure:/tenants/{TENANT}")
}

fn grant<'a>(snapshot: &'a Snapshot, id: &str) -> Option<&'a Grant> {
    snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().eq_ignore_ascii_case(id))
}

fn assignment_id(subscription: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments/{name}"
    )
}

#[tokio::test]
async fn a_snapshot_reads_the_tenant_and_its_subscription_into_the_model() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;

    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    let scope_ids: Vec<&str> = snapshot
        .scopes
        .iter()
        .map(|scope| scope.id.as_str())
        .collect();
    assert_eq!(
        scope_ids,
        vec![
            format!("azure:/subscriptions/{SUBSCRIPTION}"),
            tenant_scope()
        ]
    );
    assert!(
        snapshot
            .scopes
            .iter()
            .all(|scope| scope.caller.as_deref() == Some(CALLER))
    );

    let principal = |id: &str| {
        snapshot
            .principals
            .iter()
            .find(|principal| principal.id.as_str() == id)
            .unwrap_or_else(|| panic!("principal {id}"))
    };
    // Users and groups appear because they hold something; their sign-in is read.
    let jsmith = principal(ids::JSMITH);
    assert_eq!(jsmith.kind, PrincipalKind::Human);
    assert_eq!(jsmith.display_name.as_deref(), Some("jsmith@contoso.com"));
    assert_eq!(jsmith.last_activity, Usage::At(at("2026-11-19T17:45:12Z")));
    // No sign-in recorded is "unknown", never "never".
    assert_eq!(principal(ids::DWHITFIELD).last_activity, Usage::Unknown);
    assert_eq!(principal(ids::AUDITORS).kind, PrincipalKind::Group);

    let graph = principal(ids::GRAPH_SP);
    assert!(
        graph.cloud_managed,
        "Microsoft's own apps are cloud managed"
    );
    assert_eq!(
        graph.tags.get("lapse:app-owner").map(String::as_str),
        Some("first-party")
    );
    let vendor = principal(ids::VENDOR_SP);
    assert!(!vendor.cloud_managed);
    assert_eq!(
        vendor.tags.get("lapse:app-owner").map(String::as_str),
        Some("third-party")
    );
    assert_eq!(
        principal(ids::MANAGED_IDENTITY).native_type.as_deref(),
        Some("managedIdentity")
    );
    let deploy = principal(ids::DEPLOY_SP);
    assert_eq!(deploy.kind, PrincipalKind::Workload);
    assert_eq!(deploy.owner.as_deref(), Some("platform-team"));
    assert_eq!(deploy.last_activity, Usage::At(at("2026-11-20T05:48:03Z")));
    assert_eq!(deploy.created_at, Some(at("2024-03-18T10:11:12Z")));
    let billing = principal(ids::BILLING_APP);
    assert_eq!(billing.native_type.as_deref(), Some("application"));
    assert!(billing.federation_available);
    assert!(principal(ids::BILLING_SP).federation_available);
    assert!(!deploy.federation_available);

    let credential = |id: &str| {
        snapshot
            .credentials
            .iter()
            .find(|credential| credential.id.as_str() == id)
            .unwrap_or_else(|| panic!("credential {id}"))
    };
    let secret = credential(ids::BILLING_SECRET);
    assert_eq!(secret.kind, CredentialKind::AzurePassword);
    assert_eq!(secret.principal.as_str(), ids::BILLING_APP);
    assert_eq!(secret.created_at, Some(at("2026-10-05T13:14:15Z")));
    assert_eq!(secret.expires_at, Some(at("2027-04-05T13:14:15Z")));
    assert_eq!(secret.last_used, Usage::At(at("2026-11-01T08:00:00Z")));
    let certificate = credential(ids::BILLING_CERTIFICATE);
    assert_eq!(certificate.kind, CredentialKind::AzureCertificate);
    assert_eq!(certificate.last_used, Usage::Unknown);
    let federated = credential(ids::BILLING_FEDERATED);
    assert_eq!(federated.kind, CredentialKind::AzureFederated);
    assert_eq!(
        federated.display_name.as_deref(),
        Some("repo:contoso/billing-api:environment:prod")
    );

    let owner = grant(&snapshot, &assignment_id(SUBSCRIPTION, ids::JSMITH_OWNER)).expect("owner");
    assert_eq!(owner.kind, GrantKind::RoleAssignment);
    assert_eq!(owner.entitlement, "Owner");
    assert!(
        owner
            .entitlement_id
            .as_deref()
            .is_some_and(|id| id.ends_with(OWNER))
    );
    assert_eq!(owner.resource, format!("/subscriptions/{SUBSCRIPTION}"));
    assert_eq!(owner.created_at, Some(at("2025-11-03T16:22:09.51779Z")));
    assert_eq!(owner.via, Via::Direct);
    let contributor = grant(
        &snapshot,
        &format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-billing-prod/providers/Microsoft.Authorization/roleAssignments/{}",
            ids::DEPLOY_CONTRIBUTOR
        ),
    )
    .expect("a resource-group assignment below the subscription");
    assert_eq!(contributor.entitlement, "Contributor");
    let inherited = snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::INHERITED_OWNER))
        .expect("management group assignment");
    assert_eq!(
        inherited.via,
        Via::Inherited("/providers/Microsoft.Management/managementGroups/contoso-root".to_owned())
    );

    // The activation is one PIM grant with its end; its role assignment is not repeated, and
    // the permanent "Assigned" instance of Owner is not a second Owner grant.
    let active = snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::MKHAN_ACTIVE_INSTANCE))
        .expect("active instance");
    assert_eq!(active.kind, GrantKind::PimActive);
    assert_eq!(active.entitlement, "User Access Administrator");
    assert_eq!(active.expires_at, Some(at("2026-11-20T12:30:00Z")));
    assert!(
        grant(
            &snapshot,
            &assignment_id(SUBSCRIPTION, ids::MKHAN_ACTIVATED)
        )
        .is_none()
    );
    let owners_of_jsmith = snapshot
        .grants
        .iter()
        .filter(|grant| grant.principal.as_str() == ids::JSMITH && grant.entitlement == "Owner")
        .count();
    assert_eq!(owners_of_jsmith, 1);
    let eligible = snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::MKHAN_ELIGIBLE_INSTANCE))
        .expect("eligible instance");
    assert_eq!(eligible.kind, GrantKind::PimEligible);
    assert_eq!(eligible.expires_at, Some(at("2027-03-02T09:00:00Z")));

    let admin = grant(&snapshot, ids::DWHITFIELD_GLOBAL_ADMIN).expect("directory role");
    assert_eq!(admin.kind, GrantKind::DirectoryRole);
    assert_eq!(admin.entitlement, "Global Administrator");
    assert_eq!(admin.resource, "/");
    assert_eq!(admin.scope.as_str(), tenant_scope());
}

#[tokio::test]
async fn lists_are_followed_over_every_page() {
    let fake = FakeAzure::start(State::contoso());
    fake.state().page_size = 2;
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;
    assert!(snapshot.is_complete());
    let service_principals = snapshot
        .principals
        .iter()
        .filter(|principal| {
            matches!(
                principal.native_type.as_deref(),
                Some("servicePrincipal" | "managedIdentity")
            )
        })
        .count();
    assert_eq!(service_principals, 5);
    let pages = fake
        .state()
        .requests
        .iter()
        .filter(|request| request.starts_with("GET /v1.0/servicePrincipals?"))
        .count();
    assert_eq!(pages, 3, "five service principals, two per page");
    let assignment_pages = fake
        .state()
        .requests
        .iter()
        .filter(|request| request.contains("/providers/Microsoft.Authorization/roleAssignments?"))
        .count();
    assert_eq!(assignment_pages, 3, "five role assignments, two per page");
}

#[tokio::test]
async fn a_throttled_read_waits_as_told_and_succeeds() {
    let fake = FakeAzure::start(State::contoso());
    fake.throttle("/v1.0/applications", 1, 1);
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let started = std::time::Instant::now();
    let snapshot = snapshot(&provider).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert!(
        snapshot
            .credentials
            .iter()
            .any(|credential| credential.id.as_str() == ids::BILLING_SECRET)
    );
}

#[tokio::test]
async fn throttling_that_never_ends_marks_the_scope_incomplete() {
    let fake = FakeAzure::start(State::contoso());
    fake.throttle("/v1.0/servicePrincipals", 100, 0);
    let provider = provider(&fake, &[]);
    let before = provider.request_count();
    let snapshot = snapshot(&provider).await;
    let tenant = &snapshot.scopes[0];
    assert!(!tenant.complete);
    assert!(
        tenant
            .errors
            .iter()
            .any(|error| error.message.contains("429")),
        "{:?}",
        tenant.errors
    );
    // Bounded: the attempts the call bounds allow, the first included.
    let attempts = lapse_sdk::CallBounds::default().attempts as usize;
    let throttled = fake
        .state()
        .requests
        .iter()
        .filter(|request| request.starts_with("GET /v1.0/servicePrincipals?"))
        .count();
    assert_eq!(throttled, attempts);
    assert!(provider.request_count() > before + attempts as u64);
}

#[tokio::test]
async fn a_denied_subscription_is_incomplete_and_names_the_permission() {
    let fake = FakeAzure::start(State::contoso());
    fake.state()
        .denied_subscriptions
        .insert(SECOND_SUBSCRIPTION.to_owned());
    let provider = provider(&fake, &["*"]);
    let snapshot = snapshot(&provider).await;
    let scope = |id: &str| {
        snapshot
            .scopes
            .iter()
            .find(|scope| scope.id.as_str() == format!("azure:/subscriptions/{id}"))
            .unwrap_or_else(|| panic!("scope {id}"))
    };
    let denied = scope(SECOND_SUBSCRIPTION);
    assert!(!denied.complete);
    assert_eq!(
        denied.errors[0].missing_permission.as_deref(),
        Some("Microsoft.Authorization/roleAssignments/read")
    );
    assert!(denied.errors[0].message.contains("AuthorizationFailed"));
    assert!(scope(SUBSCRIPTION).complete);
    assert!(
        snapshot
            .scopes
            .iter()
            .find(|scope| scope.id.as_str() == tenant_scope())
            .is_some_and(|scope| scope.complete)
    );
    // Nothing is reported from the denied subscription: not read as "nothing there", but as
    // not read.
    assert!(
        !snapshot
            .grants
            .iter()
            .any(|grant| grant.id.as_str().contains(SECOND_SUBSCRIPTION))
    );
}

#[tokio::test]
async fn without_sign_in_reports_last_use_is_unknown_and_the_scope_complete() {
    let mut state = State::contoso();
    state.service_principal_sign_ins = None;
    state.credential_sign_ins = None;
    state.user_sign_in_activity = false;
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert!(
        snapshot
            .credentials
            .iter()
            .all(|credential| credential.last_used == Usage::Unknown)
    );
    let jsmith = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == ids::JSMITH)
        .expect("users are still read without their sign-in activity");
    assert_eq!(jsmith.last_activity, Usage::Unknown);
}

#[tokio::test]
async fn a_revoked_role_assignment_is_gone_and_undo_puts_back_the_same_one() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let id = assignment_id(SUBSCRIPTION, ids::JSMITH_OWNER);
    let original = fake.state().subscriptions[SUBSCRIPTION].role_assignments[0].clone();
    let before_snapshot = snapshot(&provider).await;
    let action = Action::RevokeGrant {
        grant: grant(&before_snapshot, &id).expect("owner").clone(),
    };

    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    assert_eq!(before.restore["name"], ids::JSMITH_OWNER);
    assert_eq!(
        provider.describe_apply(&action, &before),
        vec![format!("ARM DELETE {id}?api-version=2022-04-01")]
    );
    assert_eq!(
        provider.apply(&action).await.expect("delete"),
        ActionOutcome::Done
    );
    let after = provider.read_target(&action).await.expect("read after");
    assert!(!after.present && after.revoked);
    assert!(grant(&snapshot(&provider).await, &id).is_none());
    // ARM answers 204 for an assignment already gone: "already done" after a read.
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );

    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let restored = fake.state().subscriptions[SUBSCRIPTION]
        .role_assignments
        .iter()
        .find(|item| item["id"] == Value::String(id.clone()))
        .cloned()
        .expect("restored with the same name");
    for field in ["roleDefinitionId", "principalId", "principalType", "scope"] {
        assert_eq!(
            restored["properties"][field], original["properties"][field],
            "{field}"
        );
    }
    let again = snapshot(&provider).await;
    assert_eq!(
        grant(&again, &id).map(|grant| grant.entitlement.as_str()),
        Some("Owner")
    );
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo again"),
        ActionOutcome::AlreadyDone
    );
}

#[tokio::test]
async fn removing_a_secret_is_by_key_id_and_idempotent() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_SECRET)
        .expect("secret")
        .clone();
    let action = Action::DeleteCredential { credential };
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present);
    assert_eq!(before.restore["collection"], "applications");
    assert!(before.restore.get("secretText").is_none());
    assert_eq!(
        provider.describe_apply(&action, &before),
        vec![format!(
            "Graph POST /v1.0/applications/{}/removePassword {{\"keyId\":\"{}\"}}",
            ids::BILLING_APP,
            ids::BILLING_SECRET
        )]
    );
    assert_eq!(
        provider.apply(&action).await.expect("remove"),
        ActionOutcome::Done
    );
    assert_eq!(
        provider.apply(&action).await.expect("remove again"),
        ActionOutcome::AlreadyDone
    );
    let undo = provider
        .undo(&action, &before)
        .await
        .expect_err("irreversible");
    assert_eq!(undo.kind, ProviderErrorKind::Unsupported);
    let state = fake.state();
    let app = state
        .applications
        .iter()
        .find(|app| app["id"] == ids::BILLING_APP)
        .expect("app");
    assert_eq!(app["passwordCredentials"], json!([]));
    // The certificate beside it was not touched: no whole-array rewrite.
    assert_eq!(app["keyCredentials"].as_array().map(Vec::len), Some(1));
    assert!(
        state
            .requests
            .iter()
            .all(|request| !request.starts_with("PATCH /v1.0/applications")),
        "never a PATCH of the credential arrays"
    );
}

#[tokio::test]
async fn a_certificate_is_left_for_a_person_with_instructions() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_CERTIFICATE)
        .expect("certificate")
        .clone();
    let error = provider
        .apply(&Action::DeleteCredential { credential })
        .await
        .expect_err("unsupported");
    assert_eq!(error.kind, ProviderErrorKind::Unsupported);
    assert!(
        error.message.contains("az ad app credential delete"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn disabling_a_service_principal_is_reversible() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let principal = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == ids::DEPLOY_SP)
        .expect("sp")
        .clone();
    let action = Action::DisablePrincipal { principal };
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    provider.apply(&action).await.expect("disable");
    let enabled = |fake: &FakeAzure| {
        fake.state()
            .service_principals
            .iter()
            .find(|sp| sp["id"] == ids::DEPLOY_SP)
            .map(|sp| sp["accountEnabled"].clone())
    };
    assert_eq!(enabled(&fake), Some(json!(false)));
    assert!(provider.read_target(&action).await.expect("read").revoked);
    provider.undo(&action, &before).await.expect("enable");
    assert_eq!(enabled(&fake), Some(json!(true)));
}

#[tokio::test]
async fn a_deleted_federated_credential_is_recreated_by_undo() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_FEDERATED)
        .expect("federated")
        .clone();
    let action = Action::DeactivateCredential { credential };
    let before = provider.read_target(&action).await.expect("read");
    assert_eq!(
        before.restore["subject"],
        "repo:contoso/billing-api:environment:prod"
    );
    assert_eq!(
        provider.apply(&action).await.expect("delete"),
        ActionOutcome::Done
    );
    assert!(fake.state().federated[ids::BILLING_APP].is_empty());
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );
    provider.undo(&action, &before).await.expect("recreate");
    let state = fake.state();
    let recreated = &state.federated[ids::BILLING_APP];
    assert_eq!(recreated.len(), 1);
    assert_eq!(recreated[0]["name"], "github-prod");
    assert_eq!(
        recreated[0]["issuer"],
        "https://token.actions.githubusercontent.com"
    );
}

#[tokio::test]
async fn a_pim_activation_is_removed_by_an_admin_remove_request() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let before_snapshot = snapshot(&provider).await;
    let active = before_snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::MKHAN_ACTIVE_INSTANCE))
        .expect("active")
        .clone();
    let action = Action::RevokeGrant { grant: active };
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present);
    assert_eq!(
        provider.apply(&action).await.expect("remove"),
        ActionOutcome::Done
    );
    {
        let state = fake.state();
        let request = state.schedule_requests.last().expect("a schedule request");
        assert_eq!(request["properties"]["requestType"], "AdminRemove");
        assert_eq!(request["properties"]["principalId"], ids::MKHAN);
        assert!(
            request["id"]
                .as_str()
                .is_some_and(|id| id.contains("/roleAssignmentScheduleRequests/"))
        );
    }
    let after = snapshot(&provider).await;
    assert!(
        !after
            .grants
            .iter()
            .any(|grant| grant.principal.as_str() == ids::MKHAN
                && grant.entitlement == "User Access Administrator")
    );
    let undo = provider
        .undo(&action, &before)
        .await
        .expect_err("PIM comes back through PIM");
    assert_eq!(undo.kind, ProviderErrorKind::Unsupported);
}

#[tokio::test]
async fn a_directory_role_is_deleted_and_recreated_by_undo() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let action = Action::RevokeGrant {
        grant: grant(&snapshot, ids::DWHITFIELD_GLOBAL_ADMIN)
            .expect("global admin")
            .clone(),
    };
    let before = provider.read_target(&action).await.expect("read");
    provider.apply(&action).await.expect("delete");
    assert!(fake.state().directory_role_assignments.is_empty());
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let state = fake.state();
    assert_eq!(state.directory_role_assignments.len(), 1);
    assert_eq!(
        state.directory_role_assignments[0]["principalId"],
        ids::DWHITFIELD
    );
    assert_eq!(state.directory_role_assignments[0]["directoryScopeId"], "/");
}

/// The fake's answers against Microsoft's own examples, field by field.
#[tokio::test]
async fn the_fake_answers_in_the_documented_shapes() {
    // azure-rest-api-specs: Microsoft.Authorization/stable/2022-04-01/examples/RoleAssignments_Get.json
    let documented_assignment = json!({
        "properties": {
            "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/0b5fe924-9a61-425c-96af-cfe6e287ca2d",
            "principalId": "ce2ce14e-85d7-4629-bdbc-454d0519d987",
            "principalType": "User",
            "scope": "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2"
        },
        "id": "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/providers/Microsoft.Authorization/roleAssignments/b0f43c54-e787-4862-89b1-a653fa9cf747",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": "b0f43c54-e787-4862-89b1-a653fa9cf747"
    });
    // microsoft-graph-docs-contrib: api-reference/v1.0/api/rbacapplication-list-roleassignments.md, example 2.
    let documented_directory = json!({
        "id": "lAPpYvVpN0KRkAEhdxReEHJ1hPGqSKpHlqMuxhkE9B8-1",
        "principalId": "f1847572-48aa-47aa-96a3-2ec61904f41f",
        "resourceScope": "/",
        "directoryScopeId": "/",
        "roleDefinitionId": "62e90394-69f5-4237-9190-012177145e10"
    });
    let subscription = "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2";
    let mut state = State::new(TENANT);
    let mut seeded = lapse_provider_azure::fake::role_assignment(
        &format!("/subscriptions/{subscription}"),
        "b0f43c54-e787-4862-89b1-a653fa9cf747",
        "0b5fe924-9a61-425c-96af-cfe6e287ca2d",
        "ce2ce14e-85d7-4629-bdbc-454d0519d987",
        "User",
        "2022-01-26T20:44:07.51779Z",
    );
    seeded["properties"]["roleDefinitionId"] =
        documented_assignment["properties"]["roleDefinitionId"].clone();
    state.subscriptions.insert(
        subscription.to_owned(),
        lapse_provider_azure::fake::Subscription {
            role_assignments: vec![seeded],
            ..Default::default()
        },
    );
    state.directory_role_assignments = vec![documented_directory.clone()];
    let fake = FakeAzure::start(state);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", fake.url);
        async move {
            http.get(url)
                .bearer_auth("t")
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let served = get(format!(
        "{}?api-version=2022-04-01",
        documented_assignment["id"].as_str().expect("id")
    ))
    .await;
    for field in ["id", "type", "name"] {
        assert_eq!(served[field], documented_assignment[field], "{field}");
    }
    for field in ["roleDefinitionId", "principalId", "principalType", "scope"] {
        assert_eq!(
            served["properties"][field], documented_assignment["properties"][field],
            "properties.{field}"
        );
    }
    let listed = get("/v1.0/roleManagement/directory/roleAssignments".to_owned()).await;
    let first = &listed["value"][0];
    for field in [
        "id",
        "principalId",
        "resourceScope",
        "directoryScopeId",
        "roleDefinitionId",
    ] {
        assert_eq!(first[field], documented_directory[field], "{field}");
    }
}

#[tokio::test]
async fn the_injected_credential_is_asked_for_graph_and_arm_tokens() {
    let fake = FakeAzure::start(State::contoso());
    let credential = StaticCredential::for_caller(CALLER, TENANT);
    let provider = AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: vec![SUBSCRIPTION.to_owned()],
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        concurrency: 2,
        credential: Some(Arc::clone(&credential) as _),
        bounds: lapse_sdk::CallBounds::default(),
    });
    assert_eq!(
        provider.credential_source(),
        lapse_provider_azure::CredentialSource::Injected
    );
    let snapshot = snapshot(&provider).await;
    assert!(snapshot.is_complete());
    let scopes = credential.scopes.lock().expect("scopes").clone();
    // One token per audience for the whole snapshot, not one per request.
    assert_eq!(
        scopes,
        vec![
            "https://graph.microsoft.com/.default".to_owned(),
            "https://management.azure.com/.default".to_owned()
        ]
    );
    let debug = format!("{:?}", provider);
    assert!(!debug.contains(&lapse_provider_azure::fake::token_for(CALLER, TENANT)));
}

fn schedule_requests_sent(fake: &FakeAzure) -> usize {
    fake.state()
        .requests
        .iter()
        .filter(|request| request.contains("ScheduleRequests"))
        .count()
}

#[tokio::test]
async fn a_subscription_the_credential_cannot_see_is_no_proof_an_assignment_is_gone() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let id = assignment_id(SUBSCRIPTION, ids::JSMITH_OWNER);
    let action = Action::RevokeGrant {
        grant: grant(&snapshot(&provider).await, &id)
            .expect("owner")
            .clone(),
    };
    // ARM now answers 404 SubscriptionNotFound for everything in it (wrong tenant's token,
    // subscription moved): that is about the subscription, not the assignment.
    let moved = fake
        .state()
        .subscriptions
        .remove(SUBSCRIPTION)
        .expect("subscription");
    let error = provider.read_target(&action).await.expect_err("unknown");
    assert!(error.message.contains("SubscriptionNotFound"), "{error:?}");
    provider
        .apply(&action)
        .await
        .expect_err("not reported as already done");
    fake.state()
        .subscriptions
        .insert(SUBSCRIPTION.to_owned(), moved);
    assert!(
        provider
            .read_target(&action)
            .await
            .expect("readable again")
            .present
    );
}

#[tokio::test]
async fn a_pim_removal_is_refused_when_the_live_instance_is_not_the_planned_one() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;
    let active = snapshot
        .grants
        .iter()
        .find(|grant| grant.id.as_str().ends_with(ids::MKHAN_ACTIVE_INSTANCE))
        .expect("active")
        .clone();
    let action = Action::RevokeGrant { grant: active };
    let instance = |fake: &FakeAzure| {
        let mut state = fake.state();
        let sub = state.subscriptions.get_mut(SUBSCRIPTION).expect("sub");
        std::mem::take(&mut sub.active_instances[0])
    };
    let put_back = |fake: &FakeAzure, item: Value| {
        fake.state()
            .subscriptions
            .get_mut(SUBSCRIPTION)
            .expect("sub")
            .active_instances[0] = item;
    };
    let original = instance(&fake);

    // Another principal under the same instance id: an AdminRemove would hit jsmith.
    let mut other = original.clone();
    other["properties"]["principalId"] = json!(ids::JSMITH);
    put_back(&fake, other);
    let error = provider.apply(&action).await.expect_err("not the plan");
    assert!(error.message.contains("no longer matches"), "{error:?}");
    // No scope in the answer: the request must not fall back to the tenant root `/`.
    let mut unscoped = original.clone();
    unscoped["properties"]
        .as_object_mut()
        .expect("properties")
        .remove("scope");
    put_back(&fake, unscoped);
    provider.apply(&action).await.expect_err("no scope");
    // Held through a group: removing "principal, role, scope" would hit a direct grant.
    let mut through_group = original.clone();
    through_group["properties"]["memberType"] = json!("Group");
    put_back(&fake, through_group);
    provider.apply(&action).await.expect_err("group membership");
    assert_eq!(schedule_requests_sent(&fake), 0);

    put_back(&fake, original);
    assert_eq!(
        provider.apply(&action).await.expect("as planned"),
        ActionOutcome::Done
    );
}

#[tokio::test]
async fn a_directory_pim_removal_never_defaults_its_scope_to_the_whole_tenant() {
    let mut state = State::contoso();
    state.directory_active_instances = vec![json!({
        "id": "au-activation-1", "principalId": ids::MKHAN, "roleDefinitionId": fake_global_admin(),
        "directoryScopeId": "/administrativeUnits/b1f0c9a2-0d4e-4a5b-8c6d-7e8f9a0b1c2d",
        "assignmentType": "Activated", "memberType": "Direct",
        "startDateTime": "2026-11-20T04:30:00Z", "endDateTime": "2026-11-20T12:30:00Z"
    })];
    let fake = FakeAzure::start(state);
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let action = Action::RevokeGrant {
        grant: grant(&snapshot, "au-activation-1")
            .expect("activation")
            .clone(),
    };
    fake.state().directory_active_instances[0]
        .as_object_mut()
        .expect("instance")
        .remove("directoryScopeId");
    provider
        .apply(&action)
        .await
        .expect_err("the scope is unknown");
    assert_eq!(schedule_requests_sent(&fake), 0);
}

fn fake_global_admin() -> &'static str {
    lapse_provider_azure::fake::GLOBAL_ADMINISTRATOR
}

#[tokio::test]
async fn ids_from_a_record_cannot_address_another_object() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;

    // A role assignment id with a dot segment that resolves to jsmith's Owner.
    let mut reader = grant(
        &snapshot,
        &assignment_id(SUBSCRIPTION, ids::AUDITORS_READER),
    )
    .expect("reader")
    .clone();
    reader.id = format!(
        "{}/../{}",
        assignment_id(SUBSCRIPTION, ids::AUDITORS_READER),
        ids::JSMITH_OWNER
    )
    .into();
    let action = Action::RevokeGrant { grant: reader };
    provider.read_target(&action).await.expect_err("refused");
    provider.apply(&action).await.expect_err("refused");

    // A federated credential id that would climb to a user.
    let mut federated = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_FEDERATED)
        .expect("federated")
        .clone();
    federated.id = format!("x/../../../users/{}", ids::JSMITH).into();
    let _ = provider
        .apply(&Action::DeleteCredential {
            credential: federated,
        })
        .await;

    let state = fake.state();
    assert!(
        state.subscriptions[SUBSCRIPTION]
            .role_assignments
            .iter()
            .any(|item| item["name"] == ids::JSMITH_OWNER),
        "jsmith's Owner untouched"
    );
    assert!(
        state
            .requests
            .iter()
            .all(|request| !request.contains("/users/")
                || request.contains("federatedIdentityCredentials")
                || request.starts_with(&format!("GET /v1.0/users/{CALLER}/transitiveMemberOf"))),
        "{:?}",
        state.requests
    );
}

#[tokio::test]
async fn an_account_whose_state_is_not_returned_is_not_taken_as_enabled() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;
    let principal = snapshot
        .principals
        .iter()
        .find(|principal| principal.id.as_str() == ids::JSMITH)
        .expect("user")
        .clone();
    fake.state()
        .users
        .iter_mut()
        .find(|user| user["id"] == ids::JSMITH)
        .and_then(Value::as_object_mut)
        .expect("user")
        .remove("accountEnabled");
    provider
        .read_target(&Action::DisablePrincipal { principal })
        .await
        .expect_err("unknown state");
}

#[tokio::test]
async fn a_password_list_that_is_not_returned_is_no_proof_the_secret_is_gone() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_SECRET)
        .expect("secret")
        .clone();
    let action = Action::DeleteCredential { credential };
    let before = provider.read_target(&action).await.expect("read");
    assert!(before.restore.get("hint").is_none(), "{}", before.restore);
    let saved = fake
        .state()
        .applications
        .iter_mut()
        .find(|app| app["id"] == ids::BILLING_APP)
        .and_then(Value::as_object_mut)
        .and_then(|app| app.remove("passwordCredentials"))
        .expect("passwords");
    provider.read_target(&action).await.expect_err("unknown");
    provider.apply(&action).await.expect_err("not already done");
    assert_eq!(
        saved.as_array().map(Vec::len),
        Some(1),
        "the secret was never removed"
    );
}

#[tokio::test]
async fn undo_does_not_take_another_federated_credential_with_the_same_name_for_the_original() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let snapshot = snapshot(&provider).await;
    let credential = snapshot
        .credentials
        .iter()
        .find(|credential| credential.id.as_str() == ids::BILLING_FEDERATED)
        .expect("federated")
        .clone();
    let action = Action::DeleteCredential { credential };
    let before = provider.read_target(&action).await.expect("read");
    provider.apply(&action).await.expect("delete");
    fake.state()
        .federated
        .entry(ids::BILLING_APP.to_owned())
        .or_default()
        .push(json!({"id": "0b0b0b0b-1c1c-4d2d-8e3e-4f4f4f4f4f4f", "name": "github-prod", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:someone-else/fork:ref:refs/heads/main", "audiences": ["api://AzureADTokenExchange"]}));
    let error = provider
        .undo(&action, &before)
        .await
        .expect_err("a different credential holds the name");
    assert!(error.message.contains("different"), "{error:?}");
}

#[tokio::test]
async fn a_pager_that_repeats_its_link_ends_as_an_incomplete_scope() {
    let mut state = State::contoso();
    state.looping_pages = vec!["/roleAssignments".to_owned()];
    let fake = FakeAzure::start(state);
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = tokio::time::timeout(std::time::Duration::from_secs(20), snapshot(&provider))
        .await
        .expect("paging stops");
    let subscription = snapshot
        .scopes
        .iter()
        .find(|scope| scope.id.as_str() == format!("azure:/subscriptions/{SUBSCRIPTION}"))
        .expect("subscription scope");
    assert!(!subscription.complete);
    assert!(
        subscription.errors[0].operation.contains("roleAssignments"),
        "{:?}",
        subscription.errors
    );
}

fn scope_of<'a>(snapshot: &'a Snapshot, id: &str) -> &'a lapse_sdk::ScopeStatus {
    snapshot
        .scopes
        .iter()
        .find(|scope| scope.id.as_str() == id)
        .unwrap_or_else(|| panic!("scope {id}: {:?}", snapshot.scopes))
}

#[tokio::test]
async fn an_item_without_an_id_leaves_its_scope_incomplete_instead_of_vanishing() {
    let mut state = State::contoso();
    let strip = |item: &mut Value, field: &str| {
        item.as_object_mut().expect("object").remove(field);
    };
    let vendor = state
        .service_principals
        .iter_mut()
        .find(|sp| sp["id"] == ids::VENDOR_SP)
        .expect("vendor");
    strip(vendor, "id");
    let billing = state
        .applications
        .iter_mut()
        .find(|app| app["id"] == ids::BILLING_APP)
        .expect("billing");
    strip(&mut billing["passwordCredentials"][0], "keyId");
    let owner = state
        .subscriptions
        .get_mut(SUBSCRIPTION)
        .expect("subscription")
        .role_assignments
        .iter_mut()
        .find(|item| item["name"] == ids::AUDITORS_READER)
        .expect("reader");
    strip(owner, "id");
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;

    let tenant = scope_of(&snapshot, &tenant_scope());
    assert!(!tenant.complete);
    let names = |scope: &lapse_sdk::ScopeStatus, operation: &str| {
        scope
            .errors
            .iter()
            .any(|error| error.operation == operation && error.message.contains("without an id"))
    };
    assert!(
        names(tenant, "graph:GET /servicePrincipals"),
        "{:?}",
        tenant.errors
    );
    assert!(
        tenant
            .errors
            .iter()
            .any(|error| error.operation == "graph:GET /applications"
                && error.message.contains("passwordCredentials[].keyId")),
        "{:?}",
        tenant.errors
    );
    let subscription = scope_of(&snapshot, &format!("azure:/subscriptions/{SUBSCRIPTION}"));
    assert!(!subscription.complete);
    assert!(
        names(subscription, "arm:GET roleAssignments"),
        "{:?}",
        subscription.errors
    );
    // Everything that could be identified is still there.
    assert!(grant(&snapshot, &assignment_id(SUBSCRIPTION, ids::JSMITH_OWNER)).is_some());
    assert!(
        snapshot
            .principals
            .iter()
            .any(|principal| principal.id.as_str() == ids::DEPLOY_SP)
    );
}

#[tokio::test]
async fn only_the_documented_missing_licence_answer_makes_pim_empty() {
    use lapse_provider_azure::fake::Fault;
    // A tenant without Entra ID P2: Graph and ARM refuse PIM reads with the documented 400.
    let fake = FakeAzure::start(State::contoso());
    for path in [
        "roleAssignmentScheduleInstances",
        "roleEligibilityScheduleInstances",
    ] {
        fake.fault(
            Fault::new(
                Some("GET"),
                path,
                400,
                "AadPremiumLicenseRequired",
                "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
            )
            .times(usize::MAX),
        );
    }
    let unlicensed = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
    assert!(unlicensed.is_complete(), "{:?}", unlicensed.scopes);
    assert!(
        !unlicensed
            .grants
            .iter()
            .any(|grant| matches!(grant.kind, GrantKind::PimActive | GrantKind::PimEligible))
    );

    // A refusal for something else that happens to mention a licence is not "nothing there".
    let fake = FakeAzure::start(State::contoso());
    fake.fault(
        Fault::new(
            Some("GET"),
            "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances",
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation; check the license and the permissions.",
        )
        .times(usize::MAX),
    );
    let refused = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;
    let tenant = scope_of(&refused, &tenant_scope());
    assert!(!tenant.complete);
    assert!(
        tenant.errors.iter().any(|error| error.operation
            == "graph:GET /roleManagement/directory/roleEligibilityScheduleInstances"
            && error.missing_permission.as_deref()
                == Some("RoleEligibilitySchedule.Read.Directory")),
        "{:?}",
        tenant.errors
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_and_gets_no_token() {
    let elsewhere = FakeAzure::start(State::contoso());
    let mut state = State::contoso();
    state.next_link_bases = vec![
        ("/v1.0/servicePrincipals".to_owned(), elsewhere.url.clone()),
        ("/roleAssignments".to_owned(), elsewhere.url.clone()),
    ];
    let fake = FakeAzure::start(state);
    let snapshot = snapshot(&provider(&fake, &[SUBSCRIPTION])).await;

    assert_eq!(
        elsewhere.request_count(),
        0,
        "{:?}",
        elsewhere.state().requests
    );
    assert!(elsewhere.state().tokens.is_empty());
    let stopped = |scope: &lapse_sdk::ScopeStatus, operation: &str| {
        !scope.complete
            && scope.errors.iter().any(|error| {
                error.operation == operation && error.message.contains("where the list started")
            })
    };
    let tenant = scope_of(&snapshot, &tenant_scope());
    assert!(
        stopped(tenant, "graph:GET /servicePrincipals"),
        "{:?}",
        tenant.errors
    );
    let subscription = scope_of(&snapshot, &format!("azure:/subscriptions/{SUBSCRIPTION}"));
    assert!(
        stopped(subscription, "arm:GET roleAssignments"),
        "{:?}",
        subscription.errors
    );
}

#[tokio::test]
async fn every_retry_header_the_azure_pipeline_honours_is_honoured() {
    use lapse_provider_azure::fake::Fault;
    for (header, value, at_least) in [
        ("retry-after-ms", None, 1400),
        ("x-ms-retry-after-ms", None, 1400),
        // An HTTP date has whole seconds: three seconds from now is at least two away.
        ("retry-after", Some(3), 1900),
    ] {
        let value = value.map_or_else(
            || "1500".to_owned(),
            |seconds| {
                azure_core::time::to_rfc7231(
                    &(time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds)),
                )
            },
        );
        let fake = FakeAzure::start(State::contoso());
        fake.fault(
            Fault::new(
                Some("GET"),
                "/v1.0/applications",
                429,
                "TooManyRequests",
                "Too many requests.",
            )
            .header(header, &value),
        );
        let started = std::time::Instant::now();
        let snapshot = snapshot(&provider(&fake, &[])).await;
        assert!(snapshot.is_complete(), "{header}: {:?}", snapshot.scopes);
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(at_least),
            "{header}: {value} was honoured, waited {:?}",
            started.elapsed()
        );
    }
}

fn directory_activation() -> State {
    let mut state = State::contoso();
    state.directory_active_instances = vec![json!({
        "id": "activation-1", "principalId": ids::MKHAN, "roleDefinitionId": fake_global_admin(),
        "directoryScopeId": "/", "assignmentType": "Activated", "memberType": "Direct",
        "startDateTime": "2026-11-20T04:30:00Z", "endDateTime": "2026-11-20T12:30:00Z"
    })];
    state
}

async fn revoke_directory_activation(fake: &FakeAzure) -> Result<ActionOutcome, String> {
    let provider = provider(fake, &[]);
    let snapshot = snapshot(&provider).await;
    let action = Action::RevokeGrant {
        grant: grant(&snapshot, "activation-1")
            .expect("activation")
            .clone(),
    };
    provider.apply(&action).await.map_err(|error| error.message)
}

fn posts_to(fake: &FakeAzure, fragment: &str) -> usize {
    fake.state()
        .requests
        .iter()
        .filter(|request| request.starts_with("POST ") && request.contains(fragment))
        .count()
}

#[tokio::test]
async fn a_pim_removal_that_may_have_landed_is_not_sent_again() {
    use lapse_provider_azure::fake::Fault;
    // The service acts on the request, then answers 503: sending it again could act twice.
    let fake = FakeAzure::start(directory_activation());
    fake.fault(
        Fault::new(
            Some("POST"),
            "/roleAssignmentScheduleRequests",
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        )
        .header("retry-after", "0")
        .after_applying(),
    );
    let outcome = revoke_directory_activation(&fake).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(posts_to(&fake, "/roleAssignmentScheduleRequests"), 1);
    assert_eq!(fake.state().schedule_requests.len(), 1);

    // A 429 says the request was refused, not carried out: it is sent again.
    let fake = FakeAzure::start(directory_activation());
    fake.fault(
        Fault::new(
            Some("POST"),
            "/roleAssignmentScheduleRequests",
            429,
            "TooManyRequests",
            "Too many requests.",
        )
        .header("retry-after-ms", "10"),
    );
    assert_eq!(
        revoke_directory_activation(&fake).await,
        Ok(ActionOutcome::Done)
    );
    assert_eq!(posts_to(&fake, "/roleAssignmentScheduleRequests"), 2);
    assert_eq!(fake.state().schedule_requests.len(), 1);
}

fn federated_reads(fake: &FakeAzure) -> usize {
    fake.state()
        .requests
        .iter()
        .filter(|request| request.contains("/federatedIdentityCredentials"))
        .count()
}

#[tokio::test]
async fn the_sample_snapshot_takes_one_request_per_page() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[SUBSCRIPTION]);
    let snapshot = snapshot(&provider).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    // Two per page. Graph: service principals 3 pages (5), applications with their federated
    // credentials 1 (2), role definitions, role assignments, PIM active, PIM eligible and the
    // two sign-in reports 1 each, users 2 (3 of 4 holders), groups 1 (the rest), the caller's
    // groups 1. ARM: role assignments 3 (5), PIM active and eligible 1 each, 4 distinct role
    // definitions.
    assert_eq!(
        provider.request_count(),
        3 + 1 + 6 + 2 + 1 + 1 + 3 + 2 + 4,
        "{:#?}",
        fake.state().requests
    );
    assert_eq!(federated_reads(&fake), 0);
    // App role assignments come in the service-principal pages, their roles from the list.
    assert_eq!(app_role_reads(&fake), 0, "{:#?}", fake.state().requests);
}

#[tokio::test]
async fn federated_credentials_come_with_their_applications_in_pages() {
    let mut state = State::contoso();
    for index in 0..10 {
        let id = format!("aaaaaaaa-0000-4000-8000-{index:012}");
        state.applications.push(json!({"id": id, "appId": format!("bbbbbbbb-0000-4000-8000-{index:012}"), "displayName": format!("app-{index}"), "createdDateTime": "2025-01-01T00:00:00Z", "passwordCredentials": [], "keyCredentials": []}));
        state.federated.insert(id, vec![json!({"id": format!("cccccccc-0000-4000-8000-{index:012}"), "name": "ci", "issuer": "https://token.actions.githubusercontent.com", "subject": format!("repo:contoso/app-{index}:ref:refs/heads/main"), "description": null, "audiences": ["api://AzureADTokenExchange"]})]);
    }
    let fake = FakeAzure::start(state);
    let expanded = snapshot(&provider(&fake, &[])).await;
    assert!(expanded.is_complete(), "{:?}", expanded.scopes);
    let federated = expanded
        .credentials
        .iter()
        .filter(|credential| credential.kind == CredentialKind::AzureFederated)
        .count();
    assert_eq!(federated, 11);
    let application_pages = fake
        .state()
        .requests
        .iter()
        .filter(|request| request.starts_with("GET /v1.0/applications?"))
        .count();
    assert_eq!(application_pages, 6, "twelve applications, two per page");
    assert_eq!(federated_reads(&fake), 0);

    // A service that leaves the expansion out: each application's own list is read instead,
    // not taken as "no federated credentials".
    let mut state = State::contoso();
    state.ignores_expand = true;
    let fake = FakeAzure::start(state);
    let fallback = snapshot(&provider(&fake, &[])).await;
    assert!(fallback.is_complete(), "{:?}", fallback.scopes);
    assert!(
        fallback
            .credentials
            .iter()
            .any(|credential| credential.id.as_str() == ids::BILLING_FEDERATED)
    );
    assert_eq!(federated_reads(&fake), 2);
}

fn app_role_reads(fake: &FakeAzure) -> usize {
    fake.state()
        .requests
        .iter()
        .filter(|request| {
            request.contains("/appRoleAssignments")
                || request.starts_with("GET /v1.0/servicePrincipals/")
        })
        .count()
}

fn app_role_grants(snapshot: &Snapshot) -> Vec<&Grant> {
    snapshot
        .grants
        .iter()
        .filter(|grant| grant.kind == GrantKind::AppRole)
        .collect()
}

#[tokio::test]
async fn application_permissions_are_read_with_their_service_principals_and_named_by_value() {
    let fake = FakeAzure::start(State::contoso());
    let snapshot = snapshot(&provider(&fake, &[])).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(app_role_grants(&snapshot).len(), 2);
    for (id, role, value, created) in [
        (
            ids::DEPLOY_ROLE_MANAGEMENT,
            ROLE_MANAGEMENT_READ_WRITE_DIRECTORY,
            "RoleManagement.ReadWrite.Directory",
            "2024-03-18T10:40:00Z",
        ),
        (
            ids::DEPLOY_USER_READ,
            USER_READ_ALL,
            "User.Read.All",
            "2024-03-18T10:41:00Z",
        ),
    ] {
        let held = grant(&snapshot, id).unwrap_or_else(|| panic!("app role {id}"));
        assert_eq!(held.kind, GrantKind::AppRole);
        assert_eq!(held.principal.as_str(), ids::DEPLOY_SP);
        assert_eq!(held.entitlement, format!("Microsoft Graph/{value}"));
        assert_eq!(held.entitlement_id.as_deref(), Some(role));
        assert_eq!(held.resource, ids::GRAPH_SP);
        assert_eq!(held.created_at, Some(at(created)));
        assert_eq!(held.scope.as_str(), tenant_scope());
        assert_eq!(held.via, Via::Direct);
        // Whether a permission is privileged is the engine's catalog's call.
        assert!(!held.privileged, "{id}");
    }
}

#[tokio::test]
async fn a_service_principal_whose_expansion_may_be_cut_short_has_its_own_list_read() {
    let mut state = State::contoso();
    // 25 permissions: Graph expands at most 20, with no next link.
    for index in 0..25 {
        state.app_role_assignments.push(app_role_assignment(
            &format!("dmVuZG9y-{index:02}"),
            (ids::VENDOR_SP, "vendor-backup"),
            (ids::GRAPH_SP, "Microsoft Graph"),
            USER_READ_ALL,
            "2025-01-01T00:00:00Z",
        ));
    }
    // Pages large enough that one list is one request.
    state.page_size = 100;
    let fake = FakeAzure::start(state);
    let full = snapshot(&provider(&fake, &[])).await;
    assert!(full.is_complete(), "{:?}", full.scopes);
    assert_eq!(app_role_grants(&full).len(), 27);
    assert_eq!(app_role_reads(&fake), 1, "{:#?}", fake.state().requests);

    // A service that leaves the expansion out: each service principal's own list is read,
    // not taken as "no permissions".
    let mut state = State::contoso();
    state.ignores_expand = true;
    let fake = FakeAzure::start(state);
    let fallback = snapshot(&provider(&fake, &[])).await;
    assert!(fallback.is_complete(), "{:?}", fallback.scopes);
    assert_eq!(app_role_grants(&fallback).len(), 2);
    assert_eq!(
        grant(&fallback, ids::DEPLOY_ROLE_MANAGEMENT).map(|grant| grant.entitlement.as_str()),
        Some("Microsoft Graph/RoleManagement.ReadWrite.Directory")
    );
    assert_eq!(app_role_reads(&fake), 5, "one list per service principal");
}

#[tokio::test]
async fn an_app_role_that_cannot_be_resolved_keeps_its_id() {
    use lapse_provider_azure::fake::Fault;
    const RETIRED_ROLE: &str = "7b7b7b7b-8c8c-4d9d-8eae-9f9f9f9f9f9f";
    const DELETED_RESOURCE: &str = "6a6a6a6a-7b7b-4c8c-9d9d-0e0e0e0e0e0e";
    let seeded = || {
        let mut state = State::contoso();
        state.app_role_assignments.extend([
            // A role the resource no longer defines.
            app_role_assignment(
                "dmVuZG9y-retired",
                (ids::VENDOR_SP, "vendor-backup"),
                (ids::GRAPH_SP, "Microsoft Graph"),
                RETIRED_ROLE,
                "2025-01-01T00:00:00Z",
            ),
            // Two roles of a resource outside the list: it is read once.
            app_role_assignment(
                "dmVuZG9y-gone-1",
                (ids::VENDOR_SP, "vendor-backup"),
                (DELETED_RESOURCE, "legacy-api"),
                RETIRED_ROLE,
                "2025-01-01T00:00:00Z",
            ),
            app_role_assignment(
                "dmVuZG9y-gone-2",
                (ids::MANAGED_IDENTITY, "id-billing-worker"),
                (DELETED_RESOURCE, "legacy-api"),
                USER_READ_ALL,
                "2025-01-01T00:00:00Z",
            ),
        ]);
        state
    };
    let fake = FakeAzure::start(seeded());
    let snapshot = snapshot(&provider(&fake, &[])).await;
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    assert_eq!(app_role_grants(&snapshot).len(), 5, "none dropped");
    let named = |id: &str| grant(&snapshot, id).map(|grant| grant.entitlement.clone());
    assert_eq!(
        named("dmVuZG9y-retired"),
        Some(format!("Microsoft Graph/{RETIRED_ROLE}"))
    );
    assert_eq!(
        named("dmVuZG9y-gone-1"),
        Some(format!("legacy-api/{RETIRED_ROLE}"))
    );
    assert_eq!(
        named("dmVuZG9y-gone-2"),
        Some(format!("legacy-api/{USER_READ_ALL}"))
    );
    let resource_reads = fake
        .state()
        .requests
        .iter()
        .filter(|request| {
            request.starts_with(&format!("GET /v1.0/servicePrincipals/{DELETED_RESOURCE}?"))
        })
        .count();
    assert_eq!(resource_reads, 1);

    // A resource that could not be read (not "does not exist") leaves the names unknown and
    // says so: a declared permission must not pass for an undeclared one unnoticed.
    let fake = FakeAzure::start(seeded());
    fake.fault(
        Fault::new(
            Some("GET"),
            &format!("/v1.0/servicePrincipals/{DELETED_RESOURCE}"),
            500,
            "InternalServerError",
            "Something went wrong.",
        )
        .times(usize::MAX),
    );
    let unreadable = super_snapshot(&fake).await;
    let tenant = scope_of(&unreadable, &tenant_scope());
    assert!(!tenant.complete);
    assert!(
        tenant
            .errors
            .iter()
            .any(|error| error.operation == "graph:GET /servicePrincipals/{id}"),
        "{:?}",
        tenant.errors
    );
    assert_eq!(app_role_grants(&unreadable).len(), 5);
}

async fn super_snapshot(fake: &FakeAzure) -> Snapshot {
    snapshot(&provider(fake, &[])).await
}

fn deploy_role_management(snapshot: &Snapshot) -> Action {
    Action::RevokeGrant {
        grant: grant(snapshot, ids::DEPLOY_ROLE_MANAGEMENT)
            .expect("app role")
            .clone(),
    }
}

fn held_by_deploy(fake: &FakeAzure) -> Vec<Value> {
    fake.state()
        .app_role_assignments
        .iter()
        .filter(|item| item["principalId"] == ids::DEPLOY_SP)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_revoked_app_role_is_that_assignment_deleted_and_undo_grants_it_again() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let action = deploy_role_management(&snapshot(&provider).await);
    let path = format!(
        "/v1.0/servicePrincipals/{}/appRoleAssignments",
        ids::DEPLOY_SP
    );

    let before = provider.read_target(&action).await.expect("read");
    assert!(before.present && !before.revoked);
    let body = json!({"principalId": ids::DEPLOY_SP, "resourceId": ids::GRAPH_SP, "appRoleId": ROLE_MANAGEMENT_READ_WRITE_DIRECTORY});
    assert_eq!(before.restore, body);
    assert_eq!(
        provider.describe_apply(&action, &before),
        vec![format!(
            "Graph DELETE {path}/{}",
            ids::DEPLOY_ROLE_MANAGEMENT
        )]
    );
    assert_eq!(
        provider.apply(&action).await.expect("delete"),
        ActionOutcome::Done
    );
    let left = held_by_deploy(&fake);
    assert_eq!(left.len(), 1, "only that assignment went");
    assert_eq!(left[0]["id"], ids::DEPLOY_USER_READ);
    assert!(!provider.read_target(&action).await.expect("read").present);
    // Graph's 404 Request_ResourceNotFound, and a read that agrees: already done.
    assert_eq!(
        provider.apply(&action).await.expect("again"),
        ActionOutcome::AlreadyDone
    );

    assert_eq!(
        provider.describe_undo(&action, &before),
        vec![format!(
            "Graph POST {path} {body} (the permission comes back under a new assignment id)"
        )]
    );
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo"),
        ActionOutcome::Done
    );
    let again = held_by_deploy(&fake);
    let restored = again
        .iter()
        .find(|item| item["appRoleId"] == ROLE_MANAGEMENT_READ_WRITE_DIRECTORY)
        .expect("granted again");
    assert_eq!(restored["resourceId"], ids::GRAPH_SP);
    assert_ne!(restored["id"], ids::DEPLOY_ROLE_MANAGEMENT, "a new id");
    // The engine verifies an undo by reading the target: the permission held again, under
    // its new id, shows as restored.
    let after = provider
        .read_target(&action)
        .await
        .expect("read after undo");
    assert!(after.present && !after.revoked, "{after:?}");
    assert_eq!(after.restore["heldAs"], restored["id"]);
    assert_eq!(
        provider.undo(&action, &before).await.expect("undo again"),
        ActionOutcome::AlreadyDone
    );
    assert_eq!(held_by_deploy(&fake).len(), 2);
    // The old plan never deletes the new assignment in the planned one's place.
    let error = provider.apply(&action).await.expect_err("another id");
    assert!(error.message.contains("plan again"), "{error:?}");
    assert_eq!(held_by_deploy(&fake).len(), 2);
}

#[tokio::test]
async fn an_app_role_assignment_that_no_longer_matches_the_plan_is_refused() {
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let action = deploy_role_management(&snapshot(&provider).await);
    let set = |fake: &FakeAzure, field: &str, value: &str| {
        let mut state = fake.state();
        let item = state
            .app_role_assignments
            .iter_mut()
            .find(|item| item["id"] == ids::DEPLOY_ROLE_MANAGEMENT)
            .expect("assignment");
        item[field] = json!(value);
    };
    for (field, other, word) in [
        ("appRoleId", DIRECTORY_READ_WRITE_ALL, "role"),
        ("resourceId", ids::VENDOR_SP, "resource"),
    ] {
        set(&fake, field, other);
        // The engine reads every target right before acting on it; this read refuses.
        let error = provider
            .read_target(&action)
            .await
            .expect_err("not the plan");
        assert!(
            error.message.contains("no longer matches") && error.message.contains(word),
            "{error:?}"
        );
    }
    assert!(
        fake.state()
            .requests
            .iter()
            .all(|request| !request.starts_with("DELETE ")),
        "nothing deleted"
    );
    assert_eq!(held_by_deploy(&fake).len(), 2);
}

#[tokio::test]
async fn an_app_role_is_not_gone_on_a_404_that_the_service_did_not_give() {
    use lapse_provider_azure::fake::Fault;
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let action = deploy_role_management(&snapshot(&provider).await);
    // A proxy's 404 (no Graph error code) on the DELETE: the verifying read finds it there.
    fake.fault(Fault::new(
        Some("DELETE"),
        "/appRoleAssignments/",
        404,
        "",
        "Not Found",
    ));
    let error = provider
        .apply(&action)
        .await
        .expect_err("not known to be gone");
    assert!(error.message.contains("still there"), "{error:?}");
    assert_eq!(held_by_deploy(&fake).len(), 2);
    // The service itself answering: the deletion goes through.
    assert_eq!(
        provider.apply(&action).await.expect("delete"),
        ActionOutcome::Done
    );
    assert_eq!(held_by_deploy(&fake).len(), 1);
}

#[tokio::test]
async fn undo_of_an_app_role_needs_its_principal_resource_and_role_and_posts_once() {
    use lapse_provider_azure::fake::Fault;
    let fake = FakeAzure::start(State::contoso());
    let provider = provider(&fake, &[]);
    let action = deploy_role_management(&snapshot(&provider).await);
    let before = provider.read_target(&action).await.expect("read");
    provider.apply(&action).await.expect("delete");
    for field in ["principalId", "resourceId", "appRoleId"] {
        let mut partial = before.clone();
        partial
            .restore
            .as_object_mut()
            .expect("restore")
            .remove(field);
        let error = provider
            .undo(&action, &partial)
            .await
            .expect_err("incomplete journal");
        assert_eq!(error.kind, ProviderErrorKind::Unsupported);
        assert!(error.message.contains(field), "{error:?}");
    }
    assert_eq!(posts_to(&fake, "/appRoleAssignments"), 0);

    // The POST is carried out, then answered 503: it is not sent again.
    fake.fault(
        Fault::new(
            Some("POST"),
            "/appRoleAssignments",
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        )
        .header("retry-after", "0")
        .after_applying(),
    );
    provider
        .undo(&action, &before)
        .await
        .expect_err("the caller verifies");
    assert_eq!(posts_to(&fake, "/appRoleAssignments"), 1);
    assert_eq!(held_by_deploy(&fake).len(), 2);
}
