//! Requests and wall time of an Azure and a Google Cloud snapshot against the in-repo fakes, on
//! estates of N workloads: the numbers behind "requests grow with pages" (Azure) and "one key
//! list per service account" (Google Cloud, whose keys API has no bulk form).
//!
//! `cargo run --release --example provider-requests -- 1000 5000`
//!
//! Azure: N service principals with their applications (each with a client secret and a
//! federated credential), N role assignments on one subscription (one per service principal)
//! and N/10 users holding Reader. Google Cloud: N service accounts in one project, each with a
//! user-managed key and a binding, and Policy Analyzer on. Pages are the services' own sizes
//! (Graph `$top=999`, IAM `pageSize=100`).

use std::time::Instant;

use lapse_provider_azure::fake::{FakeAzure, READER, State, StaticCredential, Subscription};
use lapse_provider_azure::{AzureProvider, AzureSettings, TenantScope};
use lapse_provider_gcp::GcpProvider;
use lapse_provider_gcp::fake::{FakeGcp, FakeKey, TestServiceAccountKey};
use lapse_sdk::SnapshotRequest;
use serde_json::json;

const TENANT: &str = "4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90";
const SUBSCRIPTION: &str = "3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17";
const CALLER: &str = "e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

/// A GUID-shaped id, distinct per `(kind, index)`.
fn guid(kind: u32, index: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{index:012x}")
}

fn azure_state(workloads: usize) -> State {
    let mut state = State::new(TENANT);
    state.page_size = 999;
    let scope = format!("/subscriptions/{SUBSCRIPTION}");
    let mut subscription = Subscription::default();
    for index in 0..workloads {
        let (app, app_id, sp) = (guid(1, index), guid(2, index), guid(3, index));
        state.applications.push(json!({
            "id": app, "appId": app_id, "displayName": format!("app-{index}"),
            "createdDateTime": "2025-01-01T00:00:00Z", "signInAudience": "AzureADMyOrg",
            "passwordCredentials": [{"keyId": guid(4, index), "displayName": "ci",
                "startDateTime": "2025-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}],
            "keyCredentials": []
        }));
        state.federated.insert(
            app.clone(),
            vec![json!({"id": guid(5, index), "name": "github", "issuer": "https://token.actions.githubusercontent.com",
                "subject": format!("repo:acme/app-{index}:ref:refs/heads/main"), "description": null,
                "audiences": ["api://AzureADTokenExchange"]})],
        );
        state.service_principals.push(json!({
            "id": sp, "appId": app_id, "displayName": format!("app-{index}"),
            "servicePrincipalType": "Application", "accountEnabled": true,
            "appOwnerOrganizationId": TENANT, "passwordCredentials": [], "keyCredentials": [], "tags": []
        }));
        subscription
            .role_assignments
            .push(lapse_provider_azure::fake::role_assignment(
                &scope,
                &guid(6, index),
                CONTRIBUTOR,
                &sp,
                "ServicePrincipal",
                "2025-01-01T00:00:00Z",
            ));
    }
    for index in 0..workloads / 10 {
        let user = guid(7, index);
        state.users.push(json!({
            "id": user, "displayName": format!("user {index}"),
            "userPrincipalName": format!("user{index}@contoso.example"), "userType": "Member",
            "accountEnabled": true, "createdDateTime": "2024-01-01T00:00:00Z"
        }));
        subscription
            .role_assignments
            .push(lapse_provider_azure::fake::role_assignment(
                &scope,
                &guid(8, index),
                READER,
                &user,
                "User",
                "2025-01-01T00:00:00Z",
            ));
    }
    state
        .subscriptions
        .insert(SUBSCRIPTION.to_owned(), subscription);
    for (role, name) in [(CONTRIBUTOR, "Contributor"), (READER, "Reader")] {
        // Shape: RoleDefinitions_Get.json (2022-04-01).
        state.role_definitions.insert(
            role.to_owned(),
            json!({"id": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                "name": role, "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": name, "type": "BuiltInRole", "assignableScopes": ["/"],
                    "permissions": [{"actions": ["*/read"], "notActions": []}]}}),
        );
    }
    state
}

async fn azure(workloads: usize) -> (usize, usize, f64) {
    let fake = FakeAzure::start(azure_state(workloads));
    let provider = AzureProvider::new(AzureSettings {
        tenants: vec![TenantScope {
            tenant: TENANT.to_owned(),
            subscriptions: vec![SUBSCRIPTION.to_owned()],
        }],
        graph_url: fake.url.clone(),
        arm_url: fake.url.clone(),
        credential: Some(StaticCredential::for_caller(CALLER, TENANT)),
        ..AzureSettings::default()
    });
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    (fake.request_count(), snapshot.grants.len(), seconds)
}

async fn gcp(accounts: usize) -> (usize, usize, f64) {
    const PROJECT: &str = "acme-prod";
    let fake = FakeGcp::start();
    let key = TestServiceAccountKey::generate("lapse-reader@acme-ops.iam.gserviceaccount.com");
    fake.require_signed_by(&key);
    fake.enable_policy_analyzer(PROJECT);
    let mut members = Vec::new();
    for index in 0..accounts {
        let email = fake.add_service_account(PROJECT, &format!("sa-{index}"), "workload");
        fake.add_key(
            PROJECT,
            &email,
            FakeKey::user(&format!("{index:040x}"), "2025-01-01T00:00:00Z"),
        );
        members.push(format!("serviceAccount:{email}"));
    }
    fake.set_bindings(
        &format!("projects/{PROJECT}"),
        json!([{"role": "roles/storage.objectViewer", "members": members}]),
    );
    let provider = GcpProvider::new(lapse_provider_gcp::GcpSettings {
        credentials: Some(key.credentials("http://127.0.0.1:9/token")),
        ..fake.settings(&[PROJECT])
    });
    let started = Instant::now();
    let snapshot = provider.take_snapshot(&SnapshotRequest::default()).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(snapshot.is_complete(), "{:?}", snapshot.scopes);
    (
        provider.request_count() as usize,
        snapshot.credentials.len(),
        seconds,
    )
}

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|size| size.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 5000]
    } else {
        sizes
    };
    println!(
        "| workloads | Azure requests | Azure grants | Azure wall | Google requests | Google keys | Google wall |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for size in sizes {
        let (azure_requests, grants, azure_wall) = azure(size).await;
        let (gcp_requests, keys, gcp_wall) = gcp(size).await;
        println!(
            "| {size} | {azure_requests} | {grants} | {azure_wall:.2} s | {gcp_requests} | {keys} | {gcp_wall:.2} s |"
        );
    }
}
