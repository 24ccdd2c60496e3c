//! An in-process fake of the Graph and ARM endpoints lapse uses, for tests. No Microsoft
//! emulator exists for either; this one serves the documented shapes, pages every list,
//! throttles on demand (429 + `Retry-After`), answers chosen errors on demand ([`Fault`]) or
//! misbehaves as a broken network or proxy would ([`Misbehaviour`]: never answering, resetting
//! the connection, a body cut short, an empty or a garbled 200), refuses chosen subscriptions
//! with ARM's 403, and keeps state that revocations change.
//!
//! Shapes follow Microsoft's own examples: ARM role assignments as in the REST API spec's
//! `Microsoft.Authorization/stable/2022-04-01/examples/RoleAssignments_Get.json` and
//! `RoleAssignments_ListForScope.json`, PIM instances as in `2020-10-01` `RoleAssignmentScheduleInstances_Get.json`;
//! Graph objects as in the v1.0 reference pages (`rbacapplication-list-roleassignments.md`,
//! `serviceprincipal-list.md`, `application-list-federatedidentitycredentials.md`,
//! `serviceprincipal-removepassword.md`, `serviceprincipal-list-approleassignments.md` and
//! `serviceprincipal-post-approleassignments.md` with the `appRoleAssignment` and `appRole`
//! resources) and the beta `reports` pages for sign-in activity. An `$expand`ed relationship
//! holds at most 20 items and no next link, as Graph's known issues say of directory objects.
//! Errors use both services' `{"error": {"code", "message"}}` envelope.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The tenant of [`State::contoso`].
pub const TENANT: &str = "4f9b2c1d-8a3e-4d5b-9c7f-2e1a6b3d8c90";
/// The subscription of [`State::contoso`].
pub const SUBSCRIPTION: &str = "3c1f8e2a-7b4d-4e9a-a1c5-9d2f6e8b0a17";
/// A second subscription of [`State::contoso`], with one Reader assignment.
pub const SECOND_SUBSCRIPTION: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
/// Built-in role definition GUIDs (the same in every tenant).
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Contributor.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// User Access Administrator.
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
/// Global Administrator's directory role template id.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Microsoft Graph's appId (the same in every tenant).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Microsoft Graph application permissions (app role ids, the same in every tenant).
pub const ROLE_MANAGEMENT_READ_WRITE_DIRECTORY: &str = "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8";
/// `AppRoleAssignment.ReadWrite.All`.
pub const APP_ROLE_ASSIGNMENT_READ_WRITE_ALL: &str = "06b708a9-e830-4db3-a914-8e69da51d44f";
/// `Application.ReadWrite.All`.
pub const APPLICATION_READ_WRITE_ALL: &str = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9";
/// `Directory.ReadWrite.All`.
pub const DIRECTORY_READ_WRITE_ALL: &str = "19dbc75e-c2e2-444c-a770-ec69d8559fc7";
/// `User.Read.All`.
pub const USER_READ_ALL: &str = "df021288-bdef-4463-88db-98f22de89214";

/// Objects of [`State::contoso`].
pub mod ids {
    /// lapse's own identity in the fake's tokens: a user (`lapse-reader`) unless a test makes
    /// it a service principal.
    pub const LAPSE_READER: &str = "e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02";
    /// A user who is Owner of the subscription.
    pub const JSMITH: &str = "7d2e9a41-5c3b-4f8e-9a16-0b4c2d8e6f13";
    /// A user with PIM eligibility and an activation.
    pub const MKHAN: &str = "a1c4e7f2-3b6d-4e8a-9c0f-5d2b7e1a4c68";
    /// A Global Administrator.
    pub const DWHITFIELD: &str = "5e8b1d3f-9a2c-4e7b-8d06-3f1a9c5e2b74";
    /// A group that is Reader.
    pub const AUDITORS: &str = "c0ffee00-1111-4222-8333-944455556666";
    /// The deploy pipeline's service principal (Contributor on a resource group).
    pub const DEPLOY_SP: &str = "9b3e5d71-4c2a-4f86-a0d9-6e1b8c3f5a42";
    /// The deploy pipeline's application (appId).
    pub const DEPLOY_APP_ID: &str = "11111111-2222-4333-8444-555555555555";
    /// The billing API's application object, with a secret and a federated credential.
    pub const BILLING_APP: &str = "6d1a8e4c-0f3b-4c97-b25e-8a4f2d6c1e39";
    /// The billing API's appId.
    pub const BILLING_APP_ID: &str = "22222222-3333-4444-8555-666666666666";
    /// The billing API's service principal.
    pub const BILLING_SP: &str = "2c7f4a90-8e1d-4b53-96a2-d5e3b0c7f918";
    /// The billing API's client secret.
    pub const BILLING_SECRET: &str = "c3e9f1a7-6b2d-4d58-8e0a-1f7b3c5d9e24";
    /// The billing API's certificate.
    pub const BILLING_CERTIFICATE: &str = "4a7d2f9c-3e1b-4c86-a9f5-7b0e2d4c6a18";
    /// The billing API's federated credential.
    pub const BILLING_FEDERATED: &str = "8f2b6d4e-1a9c-4e37-b5d0-2c6e8a4f1b93";
    /// A Microsoft first-party service principal (Microsoft Graph).
    pub const GRAPH_SP: &str = "0e4c1d2b-3a5f-4e6d-8c7b-9a0f1e2d3c4b";
    /// A third-party service principal.
    pub const VENDOR_SP: &str = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9";
    /// A user-assigned managed identity's service principal.
    pub const MANAGED_IDENTITY: &str = "d7c6b5a4-9382-4716-8504-f3e2d1c0b9a8";
    /// Role assignment names (GUIDs).
    pub const JSMITH_OWNER: &str = "1e5c9a3f-7d2b-4f60-8a4e-3c9f1b7d5e02";
    /// The deploy SP's Contributor on rg-billing-prod.
    pub const DEPLOY_CONTRIBUTOR: &str = "d4a8c2e6-5f1b-4e93-87a0-2b6d9f3c1e57";
    /// The auditors group's Reader.
    pub const AUDITORS_READER: &str = "3f9e1c5a-8b4d-4d72-a6f0-1e3b5d7c9a28";
    /// An Owner inherited from a management group.
    pub const INHERITED_OWNER: &str = "5a5a5a5a-6b6b-4c7c-8d8d-9e9e9e9e9e9e";
    /// The role assignment materializing mkhan's PIM activation.
    pub const MKHAN_ACTIVATED: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    /// mkhan's active PIM instance.
    pub const MKHAN_ACTIVE_INSTANCE: &str = "7a3d9f1e-2c6b-4b58-9e04-8d1f3a5c7e60";
    /// mkhan's eligible PIM instance.
    pub const MKHAN_ELIGIBLE_INSTANCE: &str = "e2b6a0d4-9f3c-4e71-b8a5-4c0e6f2d8b19";
    /// The Global Administrator directory role assignment.
    pub const DWHITFIELD_GLOBAL_ADMIN: &str = "lAPpYvVpN0KRkAEhdxReEE8dIXfDKoxJqeuvD0GrjeU-1";
    /// The second subscription's Reader assignment.
    pub const SECOND_READER: &str = "2b2b2b2b-3c3c-4d4d-8e5e-6f6f6f6f6f6f";
    /// The deploy SP's Microsoft Graph `RoleManagement.ReadWrite.Directory` (app role
    /// assignment id).
    pub const DEPLOY_ROLE_MANAGEMENT: &str = "cV03m0oshk-g2W4bjD9aQm1ndw8uUHdOnGMK5z3fU2Q";
    /// The deploy SP's Microsoft Graph `User.Read.All`.
    pub const DEPLOY_USER_READ: &str = "cV03m0oshk-g2W4bjD9aQpK3xV1dTqJAu2nJ7WcYk0E";
}

/// A throttle armed on demand: the next `remaining` requests whose path contains `path`
/// get 429 with `Retry-After: retry_after`.
#[derive(Clone, Debug)]
pub struct Throttle {
    /// A fragment of the request path.
    pub path: String,
    /// How many more requests to refuse.
    pub remaining: usize,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: u64,
}

/// How a fault answers, when not with an error status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Accept the request and never answer (until the fake stops).
    Hang,
    /// Close the connection with a TCP reset instead of answering.
    Reset,
    /// The real answer cut in half, with a `Content-Length` that matches the cut: a whole HTTP
    /// message whose JSON is not. The request is carried out.
    Truncated,
    /// `200 OK` with an empty body.
    Empty,
    /// `200 OK` with a body that is not JSON (a proxy's HTML page).
    Garbage,
}

/// An error answer armed on demand: the next `remaining` requests with this method (any, when
/// `None`) whose path and query (decoded) contain `path` get `status` with Graph's and ARM's
/// error envelope `{"error": {"code", "message"}}` and these headers, or, when `misbehaviour`
/// is set, that instead.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The method, or `None` for any.
    pub method: Option<String>,
    /// A fragment of the request path and query (`roleAssignments?$skiptoken=2` picks the
    /// second page of a list).
    pub path: String,
    /// How many more requests to answer so.
    pub remaining: usize,
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// Response headers (`Retry-After`, `retry-after-ms`, ...).
    pub headers: Vec<(String, String)>,
    /// True: the request is carried out first and the error answered after, as a server that
    /// fails after acting does.
    pub after_applying: bool,
    /// Set: the answer is this instead of the error status.
    pub misbehaviour: Option<Misbehaviour>,
}

impl Fault {
    /// One error answer to the next matching request, before it is carried out.
    #[must_use]
    pub fn new(method: Option<&str>, path: &str, status: u16, code: &str, message: &str) -> Self {
        Fault {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            remaining: 1,
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
            after_applying: false,
            misbehaviour: None,
        }
    }

    /// The next matching request misbehaves so.
    #[must_use]
    pub fn misbehaving(method: Option<&str>, path: &str, misbehaviour: Misbehaviour) -> Self {
        Fault {
            misbehaviour: Some(misbehaviour),
            ..Fault::new(method, path, 200, "", "")
        }
    }

    /// Answers this many matching requests.
    #[must_use]
    pub fn times(mut self, remaining: usize) -> Self {
        self.remaining = remaining;
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Carries the request out before answering the error.
    #[must_use]
    pub fn after_applying(mut self) -> Self {
        self.after_applying = true;
        self
    }

    /// What the fake does instead of answering `real` (the request's own answer, when it was
    /// carried out).
    fn outcome(&self, real: Option<Response>) -> Outcome {
        match self.misbehaviour {
            None => Outcome::Respond(self.response()),
            Some(Misbehaviour::Hang) => Outcome::Hang,
            Some(Misbehaviour::Reset) => Outcome::Reset,
            Some(Misbehaviour::Truncated) => {
                Outcome::Truncate(real.unwrap_or_else(|| self.response()))
            }
            Some(Misbehaviour::Empty) => Outcome::Respond(
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    Body::empty(),
                )
                    .into_response(),
            ),
            Some(Misbehaviour::Garbage) => Outcome::Respond(
                (
                    StatusCode::OK,
                    [("content-type", "text/html")],
                    "<html><body><h1>502 Bad Gateway</h1><p>The proxy could not reach the upstream server.</p></body></html>",
                )
                    .into_response(),
            ),
        }
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining > 0
            && self
                .method
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method.as_str()))
            && path.contains(&self.path)
    }

    fn response(&self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(status, &self.code, &self.message);
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                axum::http::HeaderValue::from_str(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// One subscription's RBAC state.
#[derive(Clone, Debug, Default)]
pub struct Subscription {
    /// Role assignments at and below the subscription (ARM resource shape).
    pub role_assignments: Vec<Value>,
    /// Role assignment schedule instances (ARM resource shape).
    pub active_instances: Vec<Value>,
    /// Role eligibility schedule instances (ARM resource shape).
    pub eligible_instances: Vec<Value>,
}

/// Everything the fake serves, and what it saw.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The tenant id.
    pub tenant_id: String,
    /// `servicePrincipal` objects.
    pub service_principals: Vec<Value>,
    /// `application` objects.
    pub applications: Vec<Value>,
    /// Federated identity credentials by application object id.
    pub federated: BTreeMap<String, Vec<Value>>,
    /// `user` objects (with `signInActivity`).
    pub users: Vec<Value>,
    /// `group` objects.
    pub groups: Vec<Value>,
    /// Group ids each object (user or service principal) belongs to, directly or through other
    /// groups: what `transitiveMemberOf` lists.
    pub memberships: BTreeMap<String, Vec<String>>,
    /// `appRoleAssignment` objects granted to service principals (each names its holder in
    /// `principalId`).
    pub app_role_assignments: Vec<Value>,
    /// `unifiedRoleDefinition` objects.
    pub directory_role_definitions: Vec<Value>,
    /// `unifiedRoleAssignment` objects.
    pub directory_role_assignments: Vec<Value>,
    /// `unifiedRoleAssignmentScheduleInstance` objects.
    pub directory_active_instances: Vec<Value>,
    /// `unifiedRoleEligibilityScheduleInstance` objects.
    pub directory_eligible_instances: Vec<Value>,
    /// `servicePrincipalSignInActivity` items; `None` answers 403 as an unlicensed tenant does.
    pub service_principal_sign_ins: Option<Vec<Value>>,
    /// `appCredentialSignInActivity` items; `None` answers 403.
    pub credential_sign_ins: Option<Vec<Value>>,
    /// False answers 403 to a `$select` of `signInActivity` on users.
    pub user_sign_in_activity: bool,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// ARM role definitions by GUID.
    pub role_definitions: BTreeMap<String, Value>,
    /// Items per page of every list.
    pub page_size: usize,
    /// Subscriptions whose every call is refused with 403 `AuthorizationFailed`.
    pub denied_subscriptions: BTreeSet<String>,
    /// Armed throttles.
    pub throttles: Vec<Throttle>,
    /// Armed error answers.
    pub faults: Vec<Fault>,
    /// Every request seen, as `METHOD /path?query` (decoded).
    pub requests: Vec<String>,
    /// Bearer tokens seen.
    pub tokens: BTreeSet<String>,
    /// Bodies of PIM schedule requests received.
    pub schedule_requests: Vec<Value>,
    /// Path fragments whose lists answer an empty page whose next link is the page itself
    /// (a faulty pager, to test that lapse stops).
    pub looping_pages: Vec<String>,
    /// Path fragments whose lists answer their first page with a next link that is a number,
    /// not a link (a page that does not say whether more follow).
    pub garbled_next_links: Vec<String>,
    /// `(path fragment, base URL)`: lists whose path contains the fragment put this base in
    /// their next links instead of the fake's own (a next link to another host).
    pub next_link_bases: Vec<(String, String)>,
    /// True: `$expand` is not carried out, as by a service that ignores it.
    pub ignores_expand: bool,
}

fn role_definition(guid: &str, name: &str) -> Value {
    // Shape: RoleDefinitions_Get.json (2022-04-01).
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name,
            "type": "BuiltInRole",
            "description": format!("{name} built-in role"),
            "assignableScopes": ["/"],
            "permissions": [{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]
        }
    })
}

/// An ARM role assignment in the documented shape.
#[must_use]
pub fn role_assignment(
    scope: &str,
    name: &str,
    role: &str,
    principal: &str,
    principal_type: &str,
    created: &str,
) -> Value {
    let subscription = subscription_of(scope).unwrap_or_else(|| SUBSCRIPTION.to_owned());
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": principal,
            "principalType": principal_type,
            "scope": scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": created,
            "updatedOn": created,
            "createdBy": null,
            "updatedBy": null,
            "delegatedManagedIdentityResourceId": null,
            "description": null
        }
    })
}

fn subscription_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/subscriptions/")?;
    Some(rest.split('/').next().unwrap_or(rest).to_ascii_lowercase())
}

/// An app role assignment to a service principal, in the documented shape (the
/// `appRoleAssignment` resource; `serviceprincipal-list-approleassignments.md`).
#[must_use]
pub fn app_role_assignment(
    id: &str,
    principal: (&str, &str),
    resource: (&str, &str),
    role: &str,
    created: &str,
) -> Value {
    json!({
        "id": id,
        "deletedDateTime": null,
        "appRoleId": role,
        "createdDateTime": created,
        "principalDisplayName": principal.1,
        "principalId": principal.0,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource.1,
        "resourceId": resource.0,
    })
}

/// Microsoft Graph's own application permissions, as its service principal lists them in
/// `appRoles` (the `appRole` resource; values, ids and texts from the permissions reference).
fn graph_app_roles() -> Value {
    let role = |id: &str, value: &str, name: &str, description: &str| json!({"allowedMemberTypes": ["Application"], "description": description, "displayName": name, "id": id, "isEnabled": true, "origin": "Application", "value": value});
    json!([
        role(
            ROLE_MANAGEMENT_READ_WRITE_DIRECTORY,
            "RoleManagement.ReadWrite.Directory",
            "Read and write all directory RBAC settings",
            "Allows the app to read and manage the role-based access control (RBAC) settings for your company's directory, without a signed-in user. This includes instantiating directory roles and managing directory role membership, and reading directory role templates, directory roles and memberships."
        ),
        role(
            APP_ROLE_ASSIGNMENT_READ_WRITE_ALL,
            "AppRoleAssignment.ReadWrite.All",
            "Manage app permission grants and app role assignments",
            "Allows the app to manage permission grants for application permissions to any API (including Microsoft Graph) and application assignments for any app, without a signed-in user."
        ),
        role(
            APPLICATION_READ_WRITE_ALL,
            "Application.ReadWrite.All",
            "Read and write all applications",
            "Allows the app to create, read, update and delete applications and service principals without a signed-in user. Does not allow management of consent grants."
        ),
        role(
            DIRECTORY_READ_WRITE_ALL,
            "Directory.ReadWrite.All",
            "Read and write directory data",
            "Allows the app to read and write data in your organization's directory, such as users, and groups, without a signed-in user. Does not allow user or group deletion."
        ),
        role(
            USER_READ_ALL,
            "User.Read.All",
            "Read all users' full profiles",
            "Allows the app to read user profiles without a signed-in user."
        ),
    ])
}

fn password(key: &str, name: &str, start: &str, end: &str) -> Value {
    // Shape: passwordCredential resource (v1.0); `secretText` is never returned on reads.
    json!({"customKeyIdentifier": null, "displayName": name, "endDateTime": end, "hint": "abc", "keyId": key, "secretText": null, "startDateTime": start})
}

impl State {
    /// An empty tenant with small pages, but for lapse's own identity: the user
    /// [`ids::LAPSE_READER`], which the tests' tokens name (lapse reads which groups it is in).
    #[must_use]
    pub fn new(tenant: &str) -> Self {
        State {
            users: vec![
                json!({"id": ids::LAPSE_READER, "displayName": "lapse reader", "userPrincipalName": "lapse-reader@contoso.com", "userType": "Member", "accountEnabled": true, "createdDateTime": "2024-01-01T00:00:00Z"}),
            ],
            tenant_id: tenant.to_owned(),
            page_size: 2,
            user_sign_in_activity: true,
            service_principal_sign_ins: Some(Vec::new()),
            credential_sign_ins: Some(Vec::new()),
            ..State::default()
        }
    }

    /// A small estate like the demo's Contoso: users, service principals (one first-party, one
    /// third-party, one managed identity), an application with a secret, a certificate and a
    /// federated credential, Owner/Contributor/Reader assignments (one from a management
    /// group), PIM eligibility and an activation, a Global Administrator, sign-in reports.
    #[must_use]
    pub fn contoso() -> Self {
        use ids::*;
        let mut state = State::new(TENANT);
        let sub = format!("/subscriptions/{SUBSCRIPTION}");
        state.users.extend([
            json!({"id": JSMITH, "displayName": "J Smith", "userPrincipalName": "jsmith@contoso.com", "userType": "Member", "accountEnabled": true, "createdDateTime": "2022-08-01T09:00:00Z", "signInActivity": {"lastSignInDateTime": "2026-11-19T17:45:12Z", "lastNonInteractiveSignInDateTime": "2026-11-18T10:00:00Z", "lastSuccessfulSignInDateTime": "2026-11-19T17:45:12Z"}}),
            json!({"id": MKHAN, "displayName": "M Khan", "userPrincipalName": "mkhan@contoso.com", "userType": "Member", "accountEnabled": true, "createdDateTime": "2023-02-13T09:00:00Z", "signInActivity": {"lastSignInDateTime": "2026-11-20T04:28:40Z"}}),
            json!({"id": DWHITFIELD, "displayName": "D Whitfield", "userPrincipalName": "dwhitfield@contoso.com", "userType": "Member", "accountEnabled": true, "createdDateTime": "2020-11-02T09:00:00Z", "signInActivity": {"lastSignInDateTime": null, "lastNonInteractiveSignInDateTime": null}}),
        ]);
        state.groups = vec![
            json!({"id": AUDITORS, "displayName": "auditors", "createdDateTime": "2021-01-01T00:00:00Z"}),
        ];
        state.applications = vec![
            json!({"id": BILLING_APP, "appId": BILLING_APP_ID, "displayName": "contoso-billing-api", "createdDateTime": "2025-06-09T11:20:45Z", "signInAudience": "AzureADMyOrg", "tags": ["owner:billing-team"],
                "passwordCredentials": [password(BILLING_SECRET, "github-actions-fallback", "2026-10-05T13:14:15Z", "2027-04-05T13:14:15Z")],
                "keyCredentials": [{"customKeyIdentifier": "AB12", "displayName": "CN=billing", "endDateTime": "2027-03-01T00:00:00Z", "key": null, "keyId": BILLING_CERTIFICATE, "startDateTime": "2025-03-01T00:00:00Z", "type": "AsymmetricX509Cert", "usage": "Verify"}]}),
            json!({"id": "3d3d3d3d-4e4e-4f5f-8a6a-7b7b7b7b7b7b", "appId": DEPLOY_APP_ID, "displayName": "deploy-pipeline", "createdDateTime": "2024-03-18T10:11:12Z", "tags": ["owner:platform-team"], "passwordCredentials": [], "keyCredentials": []}),
        ];
        state.federated.insert(
            BILLING_APP.to_owned(),
            vec![json!({"id": BILLING_FEDERATED, "name": "github-prod", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:contoso/billing-api:environment:prod", "description": null, "audiences": ["api://AzureADTokenExchange"]})],
        );
        state.service_principals = vec![
            json!({"id": BILLING_SP, "appId": BILLING_APP_ID, "displayName": "contoso-billing-api", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": TENANT, "passwordCredentials": [], "keyCredentials": [], "tags": []}),
            json!({"id": DEPLOY_SP, "appId": DEPLOY_APP_ID, "displayName": "deploy-pipeline", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": TENANT, "passwordCredentials": [], "keyCredentials": [], "tags": ["owner:platform-team"]}),
            json!({"id": GRAPH_SP, "appId": GRAPH_APP_ID, "displayName": "Microsoft Graph", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a", "passwordCredentials": [], "keyCredentials": [], "tags": [], "appRoles": graph_app_roles()}),
            json!({"id": VENDOR_SP, "appId": "33333333-4444-4555-8666-777777777777", "displayName": "vendor-backup", "servicePrincipalType": "Application", "accountEnabled": true, "appOwnerOrganizationId": "abcdefab-cdef-4abc-8def-abcdefabcdef", "passwordCredentials": [], "keyCredentials": [], "tags": []}),
            json!({"id": MANAGED_IDENTITY, "appId": "44444444-5555-4666-8777-888888888888", "displayName": "id-billing-worker", "servicePrincipalType": "ManagedIdentity", "accountEnabled": true, "appOwnerOrganizationId": null, "passwordCredentials": [], "keyCredentials": [], "tags": []}),
        ];
        // The deploy pipeline holds one application permission that reaches tenant-wide
        // control (it can assign itself Global Administrator) and one that only reads.
        state.app_role_assignments = vec![
            app_role_assignment(
                DEPLOY_ROLE_MANAGEMENT,
                (DEPLOY_SP, "deploy-pipeline"),
                (GRAPH_SP, "Microsoft Graph"),
                ROLE_MANAGEMENT_READ_WRITE_DIRECTORY,
                "2024-03-18T10:40:00Z",
            ),
            app_role_assignment(
                DEPLOY_USER_READ,
                (DEPLOY_SP, "deploy-pipeline"),
                (GRAPH_SP, "Microsoft Graph"),
                USER_READ_ALL,
                "2024-03-18T10:41:00Z",
            ),
        ];
        state.service_principal_sign_ins = Some(vec![
            json!({"id": "ZGVwbG95", "appId": DEPLOY_APP_ID, "lastSignInActivity": {"lastSignInDateTime": "2026-11-20T05:48:03Z", "lastSignInRequestId": "r1"}, "applicationAuthenticationClientSignInActivity": {"lastSignInDateTime": "2026-11-20T05:48:03Z"}}),
        ]);
        state.credential_sign_ins = Some(vec![
            json!({"id": "Y3JlZA", "keyId": BILLING_SECRET, "keyType": "clientSecret", "keyUsage": "verify", "appId": BILLING_APP_ID, "appObjectId": BILLING_APP, "servicePrincipalObjectId": BILLING_SP, "resourceId": GRAPH_SP, "credentialOrigin": "application", "expirationDateTime": "2027-04-05T13:14:15Z", "signInActivity": {"lastSignInDateTime": "2026-11-01T08:00:00Z", "lastSignInRequestId": "r2"}}),
        ]);
        state.directory_role_definitions = vec![
            json!({"id": GLOBAL_ADMINISTRATOR, "displayName": "Global Administrator", "templateId": GLOBAL_ADMINISTRATOR, "isBuiltIn": true}),
        ];
        state.directory_role_assignments = vec![
            json!({"id": DWHITFIELD_GLOBAL_ADMIN, "principalId": DWHITFIELD, "resourceScope": "/", "directoryScopeId": "/", "roleDefinitionId": GLOBAL_ADMINISTRATOR}),
        ];
        for (guid, name) in [
            (OWNER, "Owner"),
            (CONTRIBUTOR, "Contributor"),
            (READER, "Reader"),
            (USER_ACCESS_ADMINISTRATOR, "User Access Administrator"),
        ] {
            state
                .role_definitions
                .insert(guid.to_owned(), role_definition(guid, name));
        }
        let mut main = Subscription {
            role_assignments: vec![
                role_assignment(
                    &sub,
                    JSMITH_OWNER,
                    OWNER,
                    JSMITH,
                    "User",
                    "2025-11-03T16:22:09.51779Z",
                ),
                role_assignment(
                    &format!("{sub}/resourceGroups/rg-billing-prod"),
                    DEPLOY_CONTRIBUTOR,
                    CONTRIBUTOR,
                    DEPLOY_SP,
                    "ServicePrincipal",
                    "2024-03-18T10:30:00Z",
                ),
                role_assignment(
                    &sub,
                    AUDITORS_READER,
                    READER,
                    AUDITORS,
                    "Group",
                    "2025-02-27T15:40:51Z",
                ),
                role_assignment(
                    "/providers/Microsoft.Management/managementGroups/contoso-root",
                    INHERITED_OWNER,
                    OWNER,
                    DWHITFIELD,
                    "User",
                    "2020-11-02T10:00:00Z",
                ),
                role_assignment(
                    &sub,
                    MKHAN_ACTIVATED,
                    USER_ACCESS_ADMINISTRATOR,
                    MKHAN,
                    "User",
                    "2026-11-20T04:30:00Z",
                ),
            ],
            ..Subscription::default()
        };
        let role_id =
            |guid: &str| format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}");
        // Shape: RoleAssignmentScheduleInstances_Get.json / RoleEligibilityScheduleInstances_Get.json (2020-10-01).
        main.active_instances = vec![
            json!({"id": format!("{sub}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances/{MKHAN_ACTIVE_INSTANCE}"), "name": MKHAN_ACTIVE_INSTANCE, "type": "Microsoft.Authorization/RoleAssignmentScheduleInstances",
                "properties": {"roleAssignmentScheduleId": "s1", "originRoleAssignmentId": format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{MKHAN_ACTIVATED}"), "scope": sub, "roleDefinitionId": role_id(USER_ACCESS_ADMINISTRATOR), "principalId": MKHAN, "principalType": "User", "status": "Provisioned", "startDateTime": "2026-11-20T04:30:00Z", "endDateTime": "2026-11-20T12:30:00Z", "linkedRoleEligibilityScheduleId": "e1", "linkedRoleEligibilityScheduleInstanceId": MKHAN_ELIGIBLE_INSTANCE, "assignmentType": "Activated", "memberType": "Direct", "condition": null, "conditionVersion": null, "createdOn": "2026-11-20T04:30:00Z"}}),
            // Every plain assignment also shows as a permanent "Assigned" instance.
            json!({"id": format!("{sub}/providers/Microsoft.Authorization/roleAssignmentScheduleInstances/{JSMITH_OWNER}"), "name": JSMITH_OWNER, "type": "Microsoft.Authorization/RoleAssignmentScheduleInstances",
                "properties": {"originRoleAssignmentId": format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{JSMITH_OWNER}"), "scope": sub, "roleDefinitionId": role_id(OWNER), "principalId": JSMITH, "principalType": "User", "status": "Provisioned", "startDateTime": "2025-11-03T16:22:09Z", "endDateTime": null, "assignmentType": "Assigned", "memberType": "Direct"}}),
        ];
        main.eligible_instances = vec![
            json!({"id": format!("{sub}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances/{MKHAN_ELIGIBLE_INSTANCE}"), "name": MKHAN_ELIGIBLE_INSTANCE, "type": "Microsoft.Authorization/RoleEligibilityScheduleInstances",
                "properties": {"roleEligibilityScheduleId": "e1", "scope": sub, "roleDefinitionId": role_id(OWNER), "principalId": MKHAN, "principalType": "User", "status": "Provisioned", "startDateTime": "2026-03-02T09:00:00Z", "endDateTime": "2027-03-02T09:00:00Z", "memberType": "Direct", "condition": null, "conditionVersion": null, "createdOn": "2026-03-02T09:00:00Z"}}),
        ];
        state.subscriptions.insert(SUBSCRIPTION.to_owned(), main);
        let second = format!("/subscriptions/{SECOND_SUBSCRIPTION}");
        state.subscriptions.insert(
            SECOND_SUBSCRIPTION.to_owned(),
            Subscription {
                role_assignments: vec![role_assignment(
                    &second,
                    SECOND_READER,
                    READER,
                    JSMITH,
                    "User",
                    "2026-01-15T10:05:00Z",
                )],
                ..Subscription::default()
            },
        );
        state
    }
}

/// A running fake; stopped when dropped.
#[derive(Debug)]
pub struct FakeAzure {
    /// `http://127.0.0.1:<port>`: both the Graph and the ARM base URL.
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What one request gets.
enum Outcome {
    Respond(Response),
    /// No answer until the fake stops.
    Hang,
    /// The connection reset.
    Reset,
    /// This answer, cut in half.
    Truncate(Response),
}

/// The fake's connections: each can be made to end in a reset.
struct Listener(tokio::net::TcpListener);

/// One connection, with the switch that turns its next read or write into a reset.
struct Connection {
    stream: tokio::net::TcpStream,
    reset: ResetSwitch,
}

/// Set by a request that must end its connection with a reset: the connection's next read or
/// write fails, and the socket closes with no linger, which sends RST.
#[derive(Clone, Debug, Default)]
struct ResetSwitch(Arc<AtomicBool>);

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = ResetSwitch;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((stream, _)) = self.0.accept().await {
                let reset = ResetSwitch::default();
                return (
                    Connection {
                        stream,
                        reset: reset.clone(),
                    },
                    reset,
                );
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ResetSwitch::default())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>>
    for ResetSwitch
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connection {
    fn reset(&self) -> Option<std::io::Error> {
        self.reset.0.load(Ordering::SeqCst).then(|| {
            let _ = self.stream.set_zero_linger();
            std::io::Error::from(std::io::ErrorKind::ConnectionReset)
        })
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(error) = self.reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(error) = self.reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(error) = self.reset() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// Carries out what [`handle`] decided, waiting where it must.
async fn deliver(
    outcome: Outcome,
    reset: &ResetSwitch,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Response {
    match outcome {
        Outcome::Respond(response) => response,
        Outcome::Hang => {
            let _ = stop.wait_for(|stopped| *stopped).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Outcome::Reset => {
            reset.0.store(true, Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
        Outcome::Truncate(response) => {
            let (mut parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
        }
    }
}

impl FakeAzure {
    /// Starts a fake serving `state` on 127.0.0.1 with a port the OS picks, on its own thread
    /// and runtime (so a separate process can use it too).
    ///
    /// # Panics
    /// When no local port can be bound.
    #[must_use]
    pub fn start(state: State) -> Self {
        let state = Arc::new(Mutex::new(state));
        let (ready_sender, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the fake");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a local port for the fake");
                let port = listener.local_addr().expect("bound address").port();
                let base = format!("http://127.0.0.1:{port}");
                let _ = ready_sender.send(base.clone());
                let hung = stopped.clone();
                let app = axum::Router::new().fallback(
                    move |ConnectInfo(reset): ConnectInfo<ResetSwitch>,
                          method: Method,
                          uri: Uri,
                          headers: HeaderMap,
                          body: Bytes| {
                        let shared = Arc::clone(&shared);
                        let base = base.clone();
                        let stop = hung.clone();
                        async move {
                            let outcome = handle(&shared, &base, &method, &uri, &headers, &body);
                            deliver(outcome, &reset, stop).await
                        }
                    },
                );
                let mut stopped = stopped;
                let _ = axum::serve(
                    Listener(listener),
                    app.into_make_service_with_connect_info::<ResetSwitch>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                })
                .await;
            });
        });
        let url = ready.recv().expect("the fake reports its address");
        FakeAzure {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The state, to read or change.
    ///
    /// # Panics
    /// When a handler panicked while holding it.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// Arms a throttle: the next `times` requests whose path contains `path` get 429.
    pub fn throttle(&self, path: &str, times: usize, retry_after: u64) {
        self.state().throttles.push(Throttle {
            path: path.to_owned(),
            remaining: times,
            retry_after,
        });
    }

    /// Arms an error answer.
    pub fn fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Requests seen so far.
    #[must_use]
    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        // Ends hung answers too, so the graceful shutdown has no request left to wait for.
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                if let Ok(value) = u8::from_str_radix(hex, 16) {
                    out.push(value);
                    index += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// True when `$expand` names this relationship.
fn expands(query: &BTreeMap<String, String>, relationship: &str) -> bool {
    query
        .get("$expand")
        .is_some_and(|expand| expand.split(',').any(|name| name.trim() == relationship))
}

/// Keeps only `$select`ed fields (and `id`, `@odata.type`, and what `$expand` brought), as
/// Graph does.
fn project(item: &Value, query: &BTreeMap<String, String>) -> Value {
    let Some(select) = query.get("$select") else {
        return item.clone();
    };
    let expanded = query
        .get("$expand")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',');
    let mut kept = serde_json::Map::new();
    for field in select
        .split(',')
        .chain(expanded)
        .map(str::trim)
        // Graph names each directory object's type in a mixed collection whatever is selected.
        .chain(["id", "@odata.type"])
    {
        if let Some(value) = item.get(field) {
            kept.insert(field.to_owned(), value.clone());
        }
    }
    Value::Object(kept)
}

/// One page of a list, with the service's next link when more remain.
fn page(
    items: &[Value],
    query: &BTreeMap<String, String>,
    raw_query: &str,
    base: &str,
    path: &str,
    graph: bool,
    page_size: usize,
) -> Response {
    let size = query
        .get("$top")
        .and_then(|top| top.parse::<usize>().ok())
        .map_or(page_size, |top| top.min(page_size))
        .max(1);
    let start = query
        .get("$skiptoken")
        .and_then(|token| token.parse::<usize>().ok())
        .unwrap_or(0);
    let slice: Vec<Value> = items
        .iter()
        .skip(start)
        .take(size)
        .map(|item| {
            if graph {
                project(item, query)
            } else {
                item.clone()
            }
        })
        .collect();
    let mut body = json!({"value": slice});
    if start + size < items.len() {
        let rest: Vec<&str> = raw_query
            .split('&')
            .filter(|pair| {
                !pair.is_empty()
                    && !pair.starts_with("$skiptoken=")
                    && !pair.starts_with("%24skiptoken=")
            })
            .collect();
        let mut link = format!("{base}{path}?$skiptoken={}", start + size);
        for pair in rest {
            link.push('&');
            link.push_str(pair);
        }
        body[if graph { "@odata.nextLink" } else { "nextLink" }] = Value::String(link);
    }
    if graph {
        body["@odata.context"] = json!(format!(
            "https://graph.microsoft.com/v1.0/$metadata#{}",
            path.rsplit('/').next().unwrap_or_default()
        ));
    }
    ok(body)
}

/// `id in ('a','b')` → the ids.
fn ids_in(filter: &str) -> Vec<String> {
    let Some(start) = filter.find('(') else {
        return Vec::new();
    };
    filter[start + 1..]
        .trim_end_matches(')')
        .split(',')
        .map(|id| id.trim().trim_matches('\'').to_owned())
        .collect()
}

/// `field eq 'value'` clauses joined by `and`.
fn equalities(filter: &str) -> Vec<(String, String)> {
    filter
        .split(" and ")
        .filter_map(|clause| {
            let (field, value) = clause.split_once(" eq ")?;
            Some((
                field.trim().to_owned(),
                value.trim().trim_matches('\'').to_owned(),
            ))
        })
        .collect()
}

fn same(left: &Value, right: &str) -> bool {
    left.as_str()
        .is_some_and(|text| text.eq_ignore_ascii_case(right))
}

fn handle(
    shared: &Mutex<State>,
    base: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Outcome {
    let Ok(mut state) = shared.lock() else {
        return Outcome::Respond(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "fake state poisoned",
        ));
    };
    let path = decode(uri.path());
    let raw_query = uri.query().unwrap_or("");
    let query = query_pairs(raw_query);
    let path_and_query = format!("{path}?{}", decode(raw_query));
    state.requests.push(format!("{method} {path_and_query}"));
    let Some(token) = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return Outcome::Respond(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    state.tokens.insert(token.to_owned());
    if let Some(throttle) = state
        .throttles
        .iter_mut()
        .find(|throttle| throttle.remaining > 0 && path.contains(&throttle.path))
    {
        throttle.remaining -= 1;
        let retry_after = throttle.retry_after.to_string();
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please retry after the time given in Retry-After.",
        );
        if let Ok(value) = retry_after.parse() {
            response.headers_mut().insert("retry-after", value);
        }
        return Outcome::Respond(response);
    }
    if method == Method::GET
        && state
            .looping_pages
            .iter()
            .any(|fragment| path.contains(fragment.as_str()))
    {
        let link = format!(
            "{base}{}",
            uri.path_and_query().map_or("", |pq| pq.as_str())
        );
        return Outcome::Respond(ok(
            json!({"value": [], "@odata.nextLink": link, "nextLink": link}),
        ));
    }
    if method == Method::GET
        && state
            .garbled_next_links
            .iter()
            .any(|fragment| path.contains(fragment.as_str()))
    {
        return Outcome::Respond(ok(
            json!({"value": [], "@odata.nextLink": 2, "nextLink": 2}),
        ));
    }
    let fault = state
        .faults
        .iter_mut()
        .find(|fault| fault.matches(method, &path_and_query))
        .map(|fault| {
            fault.remaining -= 1;
            fault.clone()
        });
    // A cut answer is a cut real one: the request is carried out.
    if let Some(fault) = &fault
        && !fault.after_applying
        && fault.misbehaviour != Some(Misbehaviour::Truncated)
    {
        return fault.outcome(None);
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let base = state
        .next_link_bases
        .iter()
        .find(|(fragment, _)| path.contains(fragment.as_str()))
        .map_or_else(|| base.to_owned(), |(_, other)| other.clone());
    let response = if path.starts_with("/v1.0/") || path.starts_with("/beta/") {
        graph(&mut state, &base, method, &path, &query, raw_query, &body)
    } else {
        arm(&mut state, &base, method, &path, &query, raw_query, &body)
    };
    match fault {
        Some(fault) => fault.outcome(Some(response)),
        None => Outcome::Respond(response),
    }
}

#[allow(clippy::too_many_lines)]
fn graph(
    state: &mut State,
    base: &str,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    raw_query: &str,
    body: &Value,
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let page_size = state.page_size;
    let list = |items: &[Value]| page(items, query, raw_query, base, path, true, page_size);
    match (method.as_str(), &segments[1..]) {
        // `$expand=appRoleAssignments` (the servicePrincipal resource: "Supports $expand"),
        // at most 20 each with no next link, as Graph expands directory relationships.
        ("GET", ["servicePrincipals"]) if expands(query, "appRoleAssignments") => {
            let items: Vec<Value> = state
                .service_principals
                .iter()
                .map(|sp| {
                    let mut sp = sp.clone();
                    if !state.ignores_expand {
                        let held: Vec<Value> = state
                            .app_role_assignments
                            .iter()
                            .filter(|item| {
                                same(&item["principalId"], sp["id"].as_str().unwrap_or_default())
                            })
                            .take(20)
                            .cloned()
                            .collect();
                        sp["appRoleAssignments"] = json!(held);
                    }
                    sp
                })
                .collect();
            list(&items)
        }
        ("GET", ["servicePrincipals"]) => list(&state.service_principals),
        ("GET", ["servicePrincipals", id, "appRoleAssignments"]) => {
            if !state
                .service_principals
                .iter()
                .any(|sp| same(&sp["id"], id))
            {
                return not_found(id);
            }
            let items: Vec<Value> = state
                .app_role_assignments
                .iter()
                .filter(|item| same(&item["principalId"], id))
                .cloned()
                .collect();
            list(&items)
        }
        // serviceprincipal-post-approleassignments.md: 201 with the assignment, under a new id.
        ("POST", ["servicePrincipals", id, "appRoleAssignments"]) => {
            let Some(holder) = state
                .service_principals
                .iter()
                .find(|sp| same(&sp["id"], id))
            else {
                return not_found(id);
            };
            let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
            let (principal, resource_id, role) = (
                field("principalId"),
                field("resourceId"),
                field("appRoleId"),
            );
            if !principal.eq_ignore_ascii_case(id) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "The principalId must be the service principal in the request path.",
                );
            }
            let Some(resource) = state
                .service_principals
                .iter()
                .find(|sp| same(&sp["id"], &resource_id))
            else {
                return not_found(&resource_id);
            };
            let defined = resource["appRoles"]
                .as_array()
                .is_some_and(|roles| roles.iter().any(|item| same(&item["id"], &role)));
            if !defined {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Permission being assigned was not found on application '{resource_id}'."
                    ),
                );
            }
            let exists = state.app_role_assignments.iter().any(|item| {
                same(&item["principalId"], &principal)
                    && same(&item["resourceId"], &resource_id)
                    && same(&item["appRoleId"], &role)
            });
            if exists {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Permission being assigned already exists on the object",
                );
            }
            let created = app_role_assignment(
                &uuid::Uuid::new_v4().simple().to_string(),
                (
                    &principal,
                    holder["displayName"].as_str().unwrap_or_default(),
                ),
                (
                    &resource_id,
                    resource["displayName"].as_str().unwrap_or_default(),
                ),
                &role,
                "2026-11-21T00:00:00Z",
            );
            state.app_role_assignments.push(created.clone());
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        ("GET" | "DELETE", ["servicePrincipals", holder, "appRoleAssignments", id]) => {
            let items = &mut state.app_role_assignments;
            let Some(position) = items
                .iter()
                .position(|item| same(&item["id"], id) && same(&item["principalId"], holder))
            else {
                return not_found(id);
            };
            if method == Method::GET {
                ok(items[position].clone())
            } else {
                items.remove(position);
                no_content()
            }
        }
        // `$expand=federatedIdentityCredentials` puts each application's credentials in it
        // (application-list.md, "Supports $expand" on the relationship).
        ("GET", ["applications"]) if expands(query, "federatedIdentityCredentials") => {
            let items: Vec<Value> = state
                .applications
                .iter()
                .map(|app| {
                    let mut app = app.clone();
                    if !state.ignores_expand {
                        let id = app["id"].as_str().unwrap_or_default();
                        app["federatedIdentityCredentials"] =
                            json!(state.federated.get(id).cloned().unwrap_or_default());
                    }
                    app
                })
                .collect();
            list(&items)
        }
        ("GET", ["applications"]) => list(&state.applications),
        (
            "GET",
            [
                collection @ ("servicePrincipals" | "applications" | "users"),
                id,
            ],
        ) => {
            let items = collection_of(state, collection);
            items
                .iter()
                .find(|item| same(&item["id"], id))
                .map_or_else(|| not_found(id), |item| ok(project(item, query)))
        }
        ("PATCH", [collection @ ("servicePrincipals" | "users"), id]) => {
            let items = collection_of(state, collection);
            let Some(item) = items.iter_mut().find(|item| same(&item["id"], id)) else {
                return not_found(id);
            };
            if let (Some(target), Some(changes)) = (item.as_object_mut(), body.as_object()) {
                for (key, value) in changes {
                    target.insert(key.clone(), value.clone());
                }
            }
            no_content()
        }
        (
            "POST",
            [
                collection @ ("servicePrincipals" | "applications"),
                id,
                "removePassword",
            ],
        ) => {
            let items = collection_of(state, collection);
            let Some(item) = items.iter_mut().find(|item| same(&item["id"], id)) else {
                return not_found(id);
            };
            let key = body["keyId"].as_str().unwrap_or_default().to_owned();
            let Some(list) = item["passwordCredentials"].as_array_mut() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "No password credentials.",
                );
            };
            let before = list.len();
            list.retain(|credential| !same(&credential["keyId"], &key));
            if list.len() == before {
                // Graph's answer here is undocumented; lapse re-reads the list either way.
                return error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!("No password credential found with keyId {key}."),
                );
            }
            no_content()
        }
        ("GET", ["applications", id, "federatedIdentityCredentials"]) => {
            if !state.applications.iter().any(|app| same(&app["id"], id)) {
                return not_found(id);
            }
            let items = state.federated.get(*id).cloned().unwrap_or_default();
            list(&items)
        }
        ("POST", ["applications", id, "federatedIdentityCredentials"]) => {
            let mut created = body.clone();
            created["id"] = json!(uuid::Uuid::new_v4().to_string());
            state
                .federated
                .entry((*id).to_owned())
                .or_default()
                .push(created.clone());
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        ("GET" | "DELETE", ["applications", app, "federatedIdentityCredentials", id]) => {
            let items = state.federated.entry((*app).to_owned()).or_default();
            let Some(position) = items
                .iter()
                .position(|item| same(&item["id"], id) || same(&item["name"], id))
            else {
                return not_found(id);
            };
            if method == Method::GET {
                ok(items[position].clone())
            } else {
                items.remove(position);
                no_content()
            }
        }
        ("GET", [collection @ ("users" | "groups")]) => {
            let wanted = query
                .get("$filter")
                .map(|filter| ids_in(filter))
                .unwrap_or_default();
            if *collection == "users"
                && !state.user_sign_in_activity
                && query
                    .get("$select")
                    .is_some_and(|select| select.contains("signInActivity"))
            {
                return error(
                    StatusCode::FORBIDDEN,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                );
            }
            let items: Vec<Value> = collection_of(state, collection)
                .iter()
                .filter(|item| wanted.is_empty() || wanted.iter().any(|id| same(&item["id"], id)))
                .cloned()
                .collect();
            list(&items)
        }
        // serviceprincipal-list-transitivememberof.md, user-list-transitivememberof.md:
        // directory objects with their `@odata.type`.
        (
            "GET",
            [
                collection @ ("servicePrincipals" | "users"),
                id,
                "transitiveMemberOf",
            ],
        ) => {
            if !collection_of(state, collection)
                .iter()
                .any(|item| same(&item["id"], id))
            {
                return not_found(id);
            }
            let groups: Vec<Value> = state
                .memberships
                .iter()
                .find(|(member, _)| member.eq_ignore_ascii_case(id))
                .map(|(_, groups)| groups.clone())
                .unwrap_or_default()
                .iter()
                .map(|group| {
                    let mut item = state
                        .groups
                        .iter()
                        .find(|item| same(&item["id"], group))
                        .cloned()
                        .unwrap_or_else(|| json!({"id": group}));
                    item["@odata.type"] = json!("#microsoft.graph.group");
                    item
                })
                .collect();
            list(&groups)
        }
        ("GET", ["roleManagement", "directory", "roleDefinitions"]) => {
            list(&state.directory_role_definitions)
        }
        ("GET", ["roleManagement", "directory", "roleAssignments"]) => {
            let clauses = query
                .get("$filter")
                .map(|filter| equalities(filter))
                .unwrap_or_default();
            let items: Vec<Value> = state
                .directory_role_assignments
                .iter()
                .filter(|item| {
                    clauses
                        .iter()
                        .all(|(field, value)| same(&item[field.as_str()], value))
                })
                .cloned()
                .collect();
            list(&items)
        }
        ("POST", ["roleManagement", "directory", "roleAssignments"]) => {
            let mut created = body.clone();
            created["id"] = json!(uuid::Uuid::new_v4().to_string());
            created["resourceScope"] = created["directoryScopeId"].clone();
            state.directory_role_assignments.push(created.clone());
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        ("GET" | "DELETE", ["roleManagement", "directory", "roleAssignments", id]) => {
            let items = &mut state.directory_role_assignments;
            let Some(position) = items.iter().position(|item| same(&item["id"], id)) else {
                return not_found(id);
            };
            if method == Method::GET {
                ok(items[position].clone())
            } else {
                items.remove(position);
                no_content()
            }
        }
        (
            "GET",
            [
                "roleManagement",
                "directory",
                collection @ ("roleAssignmentScheduleInstances"
                | "roleEligibilityScheduleInstances"),
            ],
        ) => {
            let items = if *collection == "roleAssignmentScheduleInstances" {
                state.directory_active_instances.clone()
            } else {
                state.directory_eligible_instances.clone()
            };
            list(&items)
        }
        (
            "GET",
            [
                "roleManagement",
                "directory",
                collection @ ("roleAssignmentScheduleInstances"
                | "roleEligibilityScheduleInstances"),
                id,
            ],
        ) => {
            let items = if *collection == "roleAssignmentScheduleInstances" {
                &state.directory_active_instances
            } else {
                &state.directory_eligible_instances
            };
            items
                .iter()
                .find(|item| same(&item["id"], id))
                .map_or_else(|| not_found(id), |item| ok(item.clone()))
        }
        (
            "POST",
            [
                "roleManagement",
                "directory",
                collection @ ("roleAssignmentScheduleRequests" | "roleEligibilityScheduleRequests"),
            ],
        ) => {
            state.schedule_requests.push(body.clone());
            if body["action"].as_str() == Some("adminRemove") {
                let principal = body["principalId"].as_str().unwrap_or_default().to_owned();
                let role = body["roleDefinitionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let matches = |item: &Value| {
                    same(&item["principalId"], &principal) && same(&item["roleDefinitionId"], &role)
                };
                if *collection == "roleAssignmentScheduleRequests" {
                    state
                        .directory_active_instances
                        .retain(|item| !matches(item));
                    state
                        .directory_role_assignments
                        .retain(|item| !matches(item));
                } else {
                    state
                        .directory_eligible_instances
                        .retain(|item| !matches(item));
                }
            }
            let mut created = body.clone();
            created["id"] = json!(uuid::Uuid::new_v4().to_string());
            created["status"] = json!("Revoked");
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        ("GET", ["reports", "servicePrincipalSignInActivities"]) => {
            match state.service_principal_sign_ins.clone() {
                Some(items) => list(&items),
                None => error(
                    StatusCode::FORBIDDEN,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                ),
            }
        }
        ("GET", ["reports", "appCredentialSignInActivities"]) => {
            match state.credential_sign_ins.clone() {
                Some(items) => list(&items),
                None => error(
                    StatusCode::FORBIDDEN,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                ),
            }
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the fake does not serve {method} {path}"),
        ),
    }
}

fn collection_of<'a>(state: &'a mut State, collection: &str) -> &'a mut Vec<Value> {
    match collection {
        "servicePrincipals" => &mut state.service_principals,
        "applications" => &mut state.applications,
        "groups" => &mut state.groups,
        _ => &mut state.users,
    }
}

/// The ARM authorization action a request needs, as ARM names it in a 403.
fn arm_action(method: &Method, path: &str) -> String {
    let lowered = path.to_ascii_lowercase();
    let kind = [
        "roleassignmentscheduleinstances",
        "roleeligibilityscheduleinstances",
        "roleassignmentschedulerequests",
        "roleeligibilityschedulerequests",
        "roledefinitions",
        "roleassignments",
    ]
    .into_iter()
    .find(|kind| lowered.contains(kind))
    .unwrap_or("roleassignments");
    let proper = match kind {
        "roleassignmentscheduleinstances" => "roleAssignmentScheduleInstances",
        "roleeligibilityscheduleinstances" => "roleEligibilityScheduleInstances",
        "roleassignmentschedulerequests" => "roleAssignmentScheduleRequests",
        "roleeligibilityschedulerequests" => "roleEligibilityScheduleRequests",
        "roledefinitions" => "roleDefinitions",
        _ => "roleAssignments",
    };
    let verb = match *method {
        Method::GET => "read",
        Method::DELETE => "delete",
        _ => "write",
    };
    format!("Microsoft.Authorization/{proper}/{verb}")
}

#[allow(clippy::too_many_lines)]
fn arm(
    state: &mut State,
    base: &str,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    raw_query: &str,
    body: &Value,
) -> Response {
    let page_size = state.page_size;
    if path == "/subscriptions" {
        let tenant = state.tenant_id.clone();
        let items: Vec<Value> = state
            .subscriptions
            .keys()
            .map(|id| json!({"id": format!("/subscriptions/{id}"), "subscriptionId": id, "tenantId": tenant, "displayName": format!("sub-{}", &id[..8]), "state": "Enabled"}))
            .collect();
        return page(&items, query, raw_query, base, path, false, page_size);
    }
    // Role definitions are served at any scope.
    let lowered = path.to_ascii_lowercase();
    if let Some((_, guid)) =
        lowered.split_once("/providers/microsoft.authorization/roledefinitions/")
    {
        if let Some(subscription) = subscription_of(path)
            && state.denied_subscriptions.contains(&subscription)
        {
            return denied(method, path, &subscription);
        }
        return state.role_definitions.get(guid).map_or_else(
            || {
                error(
                    StatusCode::NOT_FOUND,
                    "RoleDefinitionDoesNotExist",
                    "The specified role definition does not exist.",
                )
            },
            |definition| {
                let mut definition = definition.clone();
                definition["id"] = json!(path);
                ok(definition)
            },
        );
    }
    let Some(subscription) = subscription_of(path).or_else(|| {
        // A management-group assignment read by id: look for it in every subscription.
        state
            .subscriptions
            .iter()
            .find(|(_, sub)| {
                sub.role_assignments
                    .iter()
                    .any(|item| same(&item["id"], path))
            })
            .map(|(id, _)| id.clone())
    }) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "not found");
    };
    if state.denied_subscriptions.contains(&subscription) {
        return denied(method, path, &subscription);
    }
    let Some(sub) = state.subscriptions.get_mut(&subscription) else {
        return error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{subscription}' could not be found."),
        );
    };
    let marker = "/providers/Microsoft.Authorization/";
    let Some((scope, rest)) = path.split_once(marker) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the fake serves Microsoft.Authorization only",
        );
    };
    let rest: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), rest.as_slice()) {
        ("GET", ["roleAssignments"]) => page(
            &sub.role_assignments,
            query,
            raw_query,
            base,
            path,
            false,
            page_size,
        ),
        ("GET", ["roleAssignmentScheduleInstances"]) => page(
            &sub.active_instances,
            query,
            raw_query,
            base,
            path,
            false,
            page_size,
        ),
        ("GET", ["roleEligibilityScheduleInstances"]) => page(
            &sub.eligible_instances,
            query,
            raw_query,
            base,
            path,
            false,
            page_size,
        ),
        (
            "GET",
            [
                collection @ ("roleAssignmentScheduleInstances"
                | "roleEligibilityScheduleInstances"),
                _,
            ],
        ) => {
            let items = if *collection == "roleAssignmentScheduleInstances" {
                &sub.active_instances
            } else {
                &sub.eligible_instances
            };
            items
                .iter()
                .find(|item| same(&item["id"], path))
                .map_or_else(
                    || {
                        error(
                            StatusCode::NOT_FOUND,
                            "ResourceNotFound",
                            "The schedule instance was not found.",
                        )
                    },
                    |item| ok(item.clone()),
                )
        }
        ("GET", ["roleAssignments", _]) => sub
            .role_assignments
            .iter()
            .find(|item| same(&item["id"], path))
            .map_or_else(
                || {
                    error(
                        StatusCode::NOT_FOUND,
                        "RoleAssignmentNotFound",
                        "The role assignment was not found.",
                    )
                },
                |item| ok(item.clone()),
            ),
        // RoleAssignments_Delete.json: 200 with the deleted assignment, 204 when absent.
        ("DELETE", ["roleAssignments", _]) => {
            match sub
                .role_assignments
                .iter()
                .position(|item| same(&item["id"], path))
            {
                Some(position) => ok(sub.role_assignments.remove(position)),
                None => no_content(),
            }
        }
        // RoleAssignments_Create.json: 201 with the assignment.
        ("PUT", ["roleAssignments", name]) => {
            if sub
                .role_assignments
                .iter()
                .any(|item| same(&item["id"], path))
            {
                return error(
                    StatusCode::CONFLICT,
                    "RoleAssignmentExists",
                    "The role assignment already exists.",
                );
            }
            let properties = &body["properties"];
            let mut created = role_assignment(
                scope,
                name,
                properties["roleDefinitionId"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default(),
                properties["principalId"].as_str().unwrap_or_default(),
                properties["principalType"].as_str().unwrap_or("User"),
                "2026-11-21T00:00:00Z",
            );
            created["properties"]["roleDefinitionId"] = properties["roleDefinitionId"].clone();
            for field in ["condition", "conditionVersion", "description"] {
                if !properties[field].is_null() {
                    created["properties"][field] = properties[field].clone();
                }
            }
            sub.role_assignments.push(created.clone());
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        (
            "PUT",
            [
                collection @ ("roleAssignmentScheduleRequests" | "roleEligibilityScheduleRequests"),
                name,
            ],
        ) => {
            state_requests_push(sub, body, collection);
            let mut created = json!({"id": path, "name": name, "type": format!("Microsoft.Authorization/{collection}"), "properties": body["properties"].clone()});
            created["properties"]["status"] = json!("Revoked");
            created["properties"]["scope"] = json!(scope);
            let response = (StatusCode::CREATED, axum::Json(created.clone())).into_response();
            state.schedule_requests.push(created);
            response
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the fake does not serve {method} {path}"),
        ),
    }
}

/// An ARM AdminRemove request: the matching instances go, and an activation's role assignment
/// with it.
fn state_requests_push(sub: &mut Subscription, body: &Value, collection: &str) {
    let properties = &body["properties"];
    if properties["requestType"].as_str() != Some("AdminRemove") {
        return;
    }
    let principal = properties["principalId"].as_str().unwrap_or_default();
    let role = properties["roleDefinitionId"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let matches = |item: &Value| {
        same(&item["properties"]["principalId"], principal)
            && item["properties"]["roleDefinitionId"]
                .as_str()
                .is_some_and(|id| id.to_ascii_lowercase().ends_with(&role))
    };
    if collection == "roleAssignmentScheduleRequests" {
        let origins: Vec<String> = sub
            .active_instances
            .iter()
            .filter(|item| matches(item))
            .filter_map(|item| {
                item["properties"]["originRoleAssignmentId"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        sub.active_instances.retain(|item| !matches(item));
        sub.role_assignments
            .retain(|item| !origins.iter().any(|origin| same(&item["id"], origin)));
    } else {
        sub.eligible_instances.retain(|item| !matches(item));
    }
}

fn denied(method: &Method, path: &str, subscription: &str) -> Response {
    let action = arm_action(method, path);
    error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client 'lapse-reader' with object id 'e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02' does not have authorization to perform action '{action}' over scope '/subscriptions/{subscription}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// A JWT-shaped token whose claims name a caller (unsigned: the fake and lapse only read it).
#[must_use]
pub fn token_for(object_id: &str, tenant: &str) -> String {
    use base64::Engine;
    let encode =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.fake-signature",
        encode(json!({"typ": "JWT", "alg": "none"})),
        encode(json!({"oid": object_id, "tid": tenant, "aud": "https://graph.microsoft.com"}))
    )
}

/// A credential that hands out one fixed token: what tests inject instead of lapse's chain.
pub struct StaticCredential {
    token: String,
    /// Token requests served, by scope.
    pub scopes: Mutex<Vec<String>>,
}

impl std::fmt::Debug for StaticCredential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("StaticCredential { .. }")
    }
}

impl StaticCredential {
    /// A credential whose token names this caller.
    #[must_use]
    pub fn for_caller(object_id: &str, tenant: &str) -> Arc<Self> {
        Arc::new(StaticCredential {
            token: token_for(object_id, tenant),
            scopes: Mutex::default(),
        })
    }
}

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for StaticCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        if let Ok(mut seen) = self.scopes.lock() {
            seen.extend(scopes.iter().map(|scope| (*scope).to_owned()));
        }
        Ok(azure_core::credentials::AccessToken::new(
            azure_core::credentials::Secret::new(self.token.clone()),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}
