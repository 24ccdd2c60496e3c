//! Reading one tenant and its subscriptions into the model.
//!
//! Graph: service principals and applications with their password and certificate credentials
//! (one paged list each, `$select`ed; the service principals with their app role assignments
//! and the applications with their federated credentials `$expand`ed), directory role
//! definitions, assignments and PIM instances, the beta sign-in
//! activity reports (optional), and the users and groups that hold something. ARM, per
//! subscription: role assignments at and below it, PIM schedule instances, and each distinct
//! role definition once. The subscriptions and the directory are read side by side, each scope
//! with its own client, so an endpoint that hangs ends them all in about one operation bound.
//! Every scope of the tenant names lapse's own application and groups in `caller_identities`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use lapse_sdk::{
    Cloud, Condition, Credential, CredentialKind, CredentialStatus, ExpirySource, Grant, GrantKind,
    Principal, PrincipalId, PrincipalKind, ProviderError, ScopeError, ScopeId, ScopeKind,
    ScopeStatus, Snapshot, Timestamp, Usage, Via,
};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

use crate::error::AzureError;
use crate::http::{Api, Caller, Client, Operation};
use crate::{AzureSettings, TenantScope};

/// Tenants that own Microsoft's first-party applications (Microsoft Services, Microsoft, and
/// the AME tenant), as Microsoft's "verify first-party Microsoft applications" page lists them.
pub(crate) const MICROSOFT_TENANTS: &[&str] = &[
    "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "33e01921-4d64-4f8c-a055-5bdaffd5e33d",
];

pub(crate) const ARM_AUTHORIZATION_VERSION: &str = "2022-04-01";
pub(crate) const ARM_PIM_VERSION: &str = "2020-10-01";

const SERVICE_PRINCIPALS: Operation = Operation {
    name: "graph:GET /servicePrincipals",
    permission: "Application.Read.All",
};
const APPLICATIONS: Operation = Operation {
    name: "graph:GET /applications",
    permission: "Application.Read.All",
};
const FEDERATED: Operation = Operation {
    name: "graph:GET /applications/{id}/federatedIdentityCredentials",
    permission: "Application.Read.All",
};
const APP_ROLE_ASSIGNMENTS: Operation = Operation {
    name: "graph:GET /servicePrincipals/{id}/appRoleAssignments",
    permission: "Application.Read.All",
};
const RESOURCE_SERVICE_PRINCIPAL: Operation = Operation {
    name: "graph:GET /servicePrincipals/{id}",
    permission: "Application.Read.All",
};

/// Graph returns at most this many items of an `$expand`ed directory relationship, with no
/// next link ("Known issues with Microsoft Graph": query parameter limitations; the
/// `query-parameters` page says the same): a list this long may be cut short.
const EXPAND_LIMIT: usize = 20;
const DIRECTORY_ROLE_DEFINITIONS: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleDefinitions",
    permission: "RoleManagement.Read.Directory",
};
const DIRECTORY_ROLE_ASSIGNMENTS: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleAssignments",
    permission: "RoleManagement.Read.Directory",
};
const DIRECTORY_PIM_ACTIVE: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleAssignmentScheduleInstances",
    permission: "RoleAssignmentSchedule.Read.Directory",
};
const DIRECTORY_PIM_ELIGIBLE: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleEligibilityScheduleInstances",
    permission: "RoleEligibilitySchedule.Read.Directory",
};
const SP_SIGN_INS: Operation = Operation {
    name: "graph:GET /beta/reports/servicePrincipalSignInActivities",
    permission: "AuditLog.Read.All",
};
const CREDENTIAL_SIGN_INS: Operation = Operation {
    name: "graph:GET /beta/reports/appCredentialSignInActivities",
    permission: "AuditLog.Read.All",
};
/// The groups lapse's own service principal is in (Graph documents `Application.Read.All` as
/// enough: groups it cannot read come with their type and id, all lapse needs).
const CALLER_GROUPS: Operation = Operation {
    name: "graph:GET /servicePrincipals/{id}/transitiveMemberOf (lapse's own identity)",
    permission: "Application.Read.All",
};
/// The groups lapse's own user is in.
const CALLER_USER_GROUPS: Operation = Operation {
    name: "graph:GET /users/{id}/transitiveMemberOf (lapse's own identity)",
    permission: "GroupMember.Read.All",
};
const USERS: Operation = Operation {
    name: "graph:GET /users",
    permission: "User.Read.All",
};
const GROUPS: Operation = Operation {
    name: "graph:GET /groups",
    permission: "GroupMember.Read.All",
};
const SUBSCRIPTIONS: Operation = Operation {
    name: "arm:GET /subscriptions",
    permission: "Microsoft.Resources/subscriptions/read",
};
const ROLE_ASSIGNMENTS: Operation = Operation {
    name: "arm:GET roleAssignments",
    permission: "Microsoft.Authorization/roleAssignments/read",
};
const ROLE_DEFINITION: Operation = Operation {
    name: "arm:GET roleDefinitions/{id}",
    permission: "Microsoft.Authorization/roleDefinitions/read",
};
const ARM_PIM_ACTIVE: Operation = Operation {
    name: "arm:GET roleAssignmentScheduleInstances",
    permission: "Microsoft.Authorization/roleAssignmentScheduleInstances/read",
};
const ARM_PIM_ELIGIBLE: Operation = Operation {
    name: "arm:GET roleEligibilityScheduleInstances",
    permission: "Microsoft.Authorization/roleEligibilityScheduleInstances/read",
};

/// Which tenants (and subscriptions in them) a request asks for. Empty: the configured ones,
/// else the credential's own tenant. Requested ids may be scope ids (`azure:/tenants/…`,
/// `azure:/subscriptions/…`) or bare ids; a bare id that is no configured tenant is taken as a
/// subscription of the first configured tenant.
pub(crate) fn requested_tenants(
    configured: &[TenantScope],
    requested: &[String],
) -> Vec<TenantScope> {
    if requested.is_empty() {
        if configured.is_empty() {
            return vec![TenantScope::default()];
        }
        return configured.to_vec();
    }
    let mut tenants: Vec<TenantScope> = Vec::new();
    fn entry(tenants: &mut Vec<TenantScope>, tenant: &str) -> usize {
        if let Some(index) = tenants.iter().position(|scope| scope.tenant == tenant) {
            return index;
        }
        tenants.push(TenantScope {
            tenant: tenant.to_owned(),
            subscriptions: Vec::new(),
        });
        tenants.len() - 1
    }
    let first = configured
        .first()
        .map(|scope| scope.tenant.clone())
        .unwrap_or_default();
    for id in requested {
        let id = id.trim_start_matches("azure:");
        if let Some(tenant) = id.strip_prefix("/tenants/") {
            entry(&mut tenants, tenant);
        } else {
            let subscription = id.trim_start_matches("/subscriptions/");
            if configured.iter().any(|scope| scope.tenant == subscription) {
                entry(&mut tenants, subscription);
                continue;
            }
            let owner = configured
                .iter()
                .find(|scope| scope.subscriptions.iter().any(|sub| sub == subscription))
                .map_or_else(|| first.clone(), |scope| scope.tenant.clone());
            let index = entry(&mut tenants, &owner);
            tenants[index].subscriptions.push(subscription.to_owned());
        }
    }
    tenants
}

fn now() -> Timestamp {
    Timestamp::from_offset(time::OffsetDateTime::now_utc())
}

fn is_guid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

pub(crate) fn tenant_scope_id(tenant: &str) -> ScopeId {
    ScopeId(format!("azure:/tenants/{tenant}"))
}

pub(crate) fn subscription_scope_id(subscription: &str) -> ScopeId {
    ScopeId(format!("azure:/subscriptions/{subscription}"))
}

fn time_of(value: &Value) -> Option<Timestamp> {
    value
        .as_str()
        .and_then(|text| Timestamp::parse_rfc3339(text).ok())
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// Error codes with which Graph and ARM say the tenant lacks the licence a feature needs: Graph's
/// sign-in activity and reports answer 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant`
/// (Microsoft's support article on "Neither tenant is B2C or tenant doesn't have premium
/// license"); PIM, in Graph and in ARM, answers 400 `AadPremiumLicenseRequired`.
const LICENCE_CODES: &[&str] = &[
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "AadPremiumLicenseRequired",
];

/// The messages that come with those codes, for an answer that carries the message alone.
const LICENCE_MESSAGES: &[&str] = &[
    "Neither tenant is B2C or tenant doesn't have premium license",
    "Tenant is not a B2C tenant and doesn't have premium license",
    "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license",
    "The tenant needs an AAD Premium 2 license",
];

/// True only for the documented answers of a tenant without the licence a feature needs (PIM
/// without Entra ID P2, sign-in activity and reports without P1): the feature cannot hold
/// anything then. Any other failure, whatever its text says, leaves what it read unknown.
fn unlicensed(error: &AzureError) -> bool {
    let AzureError::Service {
        status: 400 | 403,
        code,
        message,
        ..
    } = error
    else {
        return false;
    };
    let message = message.trim().trim_end_matches('.');
    LICENCE_CODES
        .iter()
        .any(|known| code.eq_ignore_ascii_case(known))
        || LICENCE_MESSAGES
            .iter()
            .any(|known| message.eq_ignore_ascii_case(known))
}

/// What a scope's reads produced.
struct Reading {
    status: ScopeStatus,
    principals: Vec<Principal>,
    credentials: Vec<Credential>,
    grants: Vec<Grant>,
    /// Items that came without an id, by the operation that listed them and the field read:
    /// reported once per list when the reading is finished.
    unidentified: BTreeMap<(String, &'static str), usize>,
}

impl Reading {
    fn new(id: ScopeId, kind: ScopeKind, caller: Option<String>) -> Self {
        Reading {
            status: ScopeStatus {
                caller_identities: Vec::new(),
                id,
                cloud: Cloud::Azure,
                kind,
                taken_at: now(),
                complete: true,
                caller,
                errors: Vec::new(),
            },
            principals: Vec::new(),
            credentials: Vec::new(),
            grants: Vec::new(),
            unidentified: BTreeMap::new(),
        }
    }

    /// An item's id. An item without one cannot be named in a plan or matched in a diff; it is
    /// left out, and noted so the scope says it is incomplete instead of quietly missing it.
    fn id_of(&mut self, item: &Value, field: &'static str, operation: &str) -> Option<String> {
        let id = text(&item[field]);
        if id.is_none() {
            self.unidentified(operation, field);
        }
        id
    }

    fn unidentified(&mut self, operation: &str, field: &'static str) {
        *self
            .unidentified
            .entry((operation.to_owned(), field))
            .or_default() += 1;
    }

    /// The reading with every item left out for want of an id reported as an error.
    fn finish(mut self) -> Self {
        for ((operation, field), count) in std::mem::take(&mut self.unidentified) {
            let (items, them) = if count == 1 {
                ("an item came".to_owned(), "it")
            } else {
                (format!("{count} items came"), "them")
            };
            self.fail(AzureError::Malformed {
                operation,
                message: format!(
                    "{items} without an id (`{field}`), so lapse cannot identify {them} and left {them} out of the snapshot"
                ),
            });
        }
        self
    }

    /// Takes in what another reading of the same scope found wrong.
    fn absorb(&mut self, other: Reading) {
        self.status.complete &= other.status.complete;
        self.status.errors.extend(other.status.errors);
        for (key, count) in other.unidentified {
            *self.unidentified.entry(key).or_default() += count;
        }
    }

    fn fail(&mut self, error: AzureError) {
        self.status.complete = false;
        self.status.errors.push(error.into_scope_error());
    }

    /// A list read: its items, or none and the scope marked incomplete.
    fn keep(&mut self, result: Result<Vec<Value>, AzureError>) -> Vec<Value> {
        match result {
            Ok(items) => items,
            Err(error) => {
                self.fail(error);
                Vec::new()
            }
        }
    }

    /// A list read of a licensed feature: no licence means nothing of it exists.
    fn keep_licensed(&mut self, result: Result<Vec<Value>, AzureError>) -> Vec<Value> {
        match result {
            Err(error) if unlicensed(&error) => Vec::new(),
            other => self.keep(other),
        }
    }
}

/// A snapshot where nothing could be read: every scope asked for, incomplete, with the reason.
fn unreadable(scope: &TenantScope, error: &ProviderError) -> Snapshot {
    let scope_error = ScopeError {
        operation: error.operation.clone(),
        message: error.message.clone(),
        missing_permission: error.missing_permission.clone(),
    };
    let mut snapshot = Snapshot::empty(now());
    let tenant = if scope.tenant.is_empty() {
        "unknown"
    } else {
        &scope.tenant
    };
    let mut ids = vec![(tenant_scope_id(tenant), ScopeKind::Tenant)];
    ids.extend(
        scope
            .subscriptions
            .iter()
            .filter(|sub| *sub != "*")
            .map(|sub| (subscription_scope_id(sub), ScopeKind::Subscription)),
    );
    for (id, kind) in ids {
        snapshot.scopes.push(ScopeStatus {
            caller_identities: Vec::new(),
            id,
            cloud: Cloud::Azure,
            kind,
            taken_at: snapshot.taken_at,
            complete: false,
            caller: None,
            errors: vec![scope_error.clone()],
        });
    }
    snapshot
}

/// Reads one tenant and its subscriptions.
pub(crate) async fn scan_tenant(
    settings: &AzureSettings,
    client: Result<Client, ProviderError>,
    scope: &TenantScope,
) -> Snapshot {
    let _ = settings;
    let client = match client {
        Ok(client) => client,
        Err(error) => return unreadable(scope, &error),
    };
    let caller = match client.caller().await {
        Ok(caller) => caller,
        Err(error) => return unreadable(scope, &error.into_provider_error()),
    };
    // A domain name is resolved to the tenant id the token was issued in.
    let tenant_id = if is_guid(&scope.tenant) {
        scope.tenant.clone()
    } else {
        caller
            .tenant
            .clone()
            .unwrap_or_else(|| scope.tenant.clone())
    };
    let tenant_id = if tenant_id.is_empty() {
        "unknown".to_owned()
    } else {
        tenant_id
    };
    let mut tenant = Reading::new(
        tenant_scope_id(&tenant_id),
        ScopeKind::Tenant,
        caller.id.clone(),
    );
    // What listing the subscriptions finds wrong is the tenant's to report.
    let mut listing = Reading::new(
        tenant_scope_id(&tenant_id),
        ScopeKind::Tenant,
        caller.id.clone(),
    );

    // The subscriptions and the directory are read side by side (each scope with its own
    // client, so a timeout in one ends only that scope's calls to the service): a service
    // that hangs costs about one operation bound, not one per phase.
    let tenant_client = client.for_scope();
    let roles: Arc<Mutex<HashMap<String, Role>>> = Arc::default();
    let (readings, identities) = tokio::join!(
        async {
            let subscriptions =
                subscriptions(&tenant_client, scope, &tenant_id, &mut listing).await;
            read_subscriptions(
                subscriptions,
                client.concurrency(),
                caller.id.clone(),
                |subscription| {
                    let client = client.for_scope();
                    let roles = Arc::clone(&roles);
                    let caller = caller.id.clone();
                    async move { scan_subscription(&client, &subscription, caller, &roles).await }
                },
            )
            .await
        },
        read_directory(&tenant_client, &caller, &mut tenant),
    );
    tenant.absorb(listing);
    let mut readings = readings;
    // lapse's own identity reaches every scope of the tenant through its application and its
    // groups; without them known, no scope of it can be judged safe to change.
    match identities {
        Ok(identities) => {
            for reading in std::iter::once(&mut tenant).chain(readings.iter_mut()) {
                reading.status.caller_identities.clone_from(&identities);
            }
        }
        Err(error) => {
            let mut scope_error = error.into_scope_error();
            scope_error.message = format!(
                "lapse cannot tell which groups its own identity {} belongs to, so it cannot keep itself from being locked out of this tenant: {}",
                caller.id.as_deref().unwrap_or("(unknown)"),
                scope_error.message
            );
            for reading in std::iter::once(&mut tenant).chain(readings.iter_mut()) {
                reading.status.complete = false;
                reading.status.errors.push(scope_error.clone());
            }
        }
    }

    // Users and groups that hold a grant anywhere in this tenant and are not yet known.
    let known: HashSet<String> = tenant
        .principals
        .iter()
        .map(|principal| principal.id.0.clone())
        .collect();
    let mut wanted: Vec<String> = readings
        .iter()
        .chain(std::iter::once(&tenant))
        .flat_map(|reading| reading.grants.iter())
        .map(|grant| grant.principal.0.clone())
        .filter(|id| !known.contains(id) && is_guid(id))
        .collect();
    wanted.sort();
    wanted.dedup();
    resolve_principals(&tenant_client, &wanted, &mut tenant).await;

    let mut snapshot = Snapshot::empty(tenant.status.taken_at);
    for reading in std::iter::once(tenant.finish()).chain(readings) {
        snapshot.scopes.push(reading.status);
        snapshot.principals.extend(reading.principals);
        snapshot.credentials.extend(reading.credentials);
        snapshot.grants.extend(reading.grants);
    }
    Snapshot::merge(vec![snapshot])
}

/// Reads subscriptions, `concurrency` at a time, in their given order. A read that panics or is
/// cancelled still gives its subscription a scope, incomplete and saying why: a subscription
/// that dropped out of the snapshot would pass for one lapse was never asked to read.
async fn read_subscriptions<F, Fut>(
    subscriptions: Vec<String>,
    concurrency: usize,
    caller: Option<String>,
    read: F,
) -> Vec<Reading>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Reading> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending: HashMap<tokio::task::Id, usize> = HashMap::new();
    for (index, subscription) in subscriptions.iter().enumerate() {
        let limit = Arc::clone(&limit);
        let reading = read(subscription.clone());
        let handle = tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            reading.await
        });
        pending.insert(handle.id(), index);
    }
    let mut readings: Vec<Option<Reading>> = subscriptions.iter().map(|_| None).collect();
    let mut failures: HashMap<usize, String> = HashMap::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((id, reading)) => {
                if let Some(index) = pending.remove(&id) {
                    readings[index] = Some(reading);
                }
            }
            Err(error) => {
                if let Some(index) = pending.remove(&error.id()) {
                    let what = if error.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    failures.insert(index, format!("{what}: {error}"));
                }
            }
        }
    }
    readings
        .into_iter()
        .zip(subscriptions)
        .enumerate()
        .map(|(index, (reading, subscription))| {
            reading.unwrap_or_else(|| {
                let why = failures
                    .remove(&index)
                    .unwrap_or_else(|| "never reported back".to_owned());
                let mut reading = Reading::new(
                    subscription_scope_id(&subscription),
                    ScopeKind::Subscription,
                    caller.clone(),
                );
                reading.status.complete = false;
                reading.status.errors.push(ScopeError {
                    operation: "arm:read subscription".to_owned(),
                    message: format!(
                        "the read of subscription {subscription} stopped before it finished (it {why}); nothing from it is in the snapshot; this is a lapse bug, please report it"
                    ),
                    missing_permission: None,
                });
                reading
            })
        })
        .collect()
}

/// The subscriptions to read: the named ones, or every one the caller sees in this tenant.
async fn subscriptions(
    client: &Client,
    scope: &TenantScope,
    tenant_id: &str,
    tenant: &mut Reading,
) -> Vec<String> {
    let mut named: Vec<String> = scope
        .subscriptions
        .iter()
        .filter(|sub| *sub != "*")
        .cloned()
        .collect();
    if scope.subscriptions.iter().any(|sub| sub == "*") {
        let url = client.arm("/subscriptions?api-version=2022-12-01");
        let listed = tenant.keep(client.list(Api::Arm, &url, SUBSCRIPTIONS).await);
        for sub in &listed {
            let elsewhere =
                is_guid(tenant_id) && sub["tenantId"].as_str().is_some_and(|id| id != tenant_id);
            if elsewhere {
                continue;
            }
            if let Some(id) = tenant.id_of(sub, "subscriptionId", SUBSCRIPTIONS.name) {
                named.push(id);
            }
        }
    }
    named.sort();
    named.dedup();
    named
}

/// A role definition as read once per run.
#[derive(Clone, Debug)]
struct Role {
    name: String,
    privileged: bool,
}

/// True for a custom role whose own content is broad: every action, or the power to change
/// authorization (and so to grant itself anything). Built-in roles are the catalog's call.
fn custom_role_privileged(definition: &Value) -> bool {
    if definition["properties"]["type"].as_str() != Some("CustomRole") {
        return false;
    }
    definition["properties"]["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|permission| permission["actions"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .any(|action| {
            let action = action.to_ascii_lowercase();
            action == "*"
                || action == "microsoft.authorization/*"
                || action.starts_with("microsoft.authorization/roleassignments/")
                    && (action.ends_with("/write") || action.ends_with("/*"))
        })
}

fn guid_of(resource_id: &str) -> String {
    resource_id
        .rsplit('/')
        .next()
        .unwrap_or(resource_id)
        .to_ascii_lowercase()
}

async fn role_names(
    client: &Client,
    definition_ids: Vec<String>,
    roles: &Mutex<HashMap<String, Role>>,
    reading: &mut Reading,
) {
    for definition_id in definition_ids {
        let key = guid_of(&definition_id);
        if roles.lock().await.contains_key(&key) {
            continue;
        }
        let url = client.arm(&format!(
            "{definition_id}?api-version={ARM_AUTHORIZATION_VERSION}"
        ));
        match client.get(Api::Arm, &url, ROLE_DEFINITION).await {
            Ok(definition) => match text(&definition["properties"]["roleName"]) {
                Some(name) => {
                    let role = Role {
                        name,
                        privileged: custom_role_privileged(&definition),
                    };
                    roles.lock().await.insert(key, role);
                }
                // Its assignments keep the role's id for a name: the last-Owner hold and the
                // policy's role names would not see them, so the scope says it is not whole.
                None => reading.fail(AzureError::Malformed {
                    operation: ROLE_DEFINITION.name.to_owned(),
                    message: format!(
                        "role definition {key} came without properties.roleName, so its assignments are named by its id"
                    ),
                }),
            },
            Err(error) => reading.fail(error),
        }
    }
}

fn via_for(scope: &str) -> Via {
    if scope == "/" || scope.starts_with("/providers/Microsoft.Management/managementGroups") {
        Via::Inherited(scope.to_owned())
    } else {
        Via::Direct
    }
}

/// Reads one subscription's role assignments and PIM instances.
async fn scan_subscription(
    client: &Client,
    subscription: &str,
    caller: Option<String>,
    roles: &Mutex<HashMap<String, Role>>,
) -> Reading {
    let scope_id = subscription_scope_id(subscription);
    let mut reading = Reading::new(scope_id.clone(), ScopeKind::Subscription, caller);
    let base = format!("/subscriptions/{subscription}/providers/Microsoft.Authorization");
    let assignments_url = client.arm(&format!(
        "{base}/roleAssignments?api-version={ARM_AUTHORIZATION_VERSION}"
    ));
    let assignments = client
        .list(Api::Arm, &assignments_url, ROLE_ASSIGNMENTS)
        .await;
    let denied = matches!(&assignments, Err(error) if error.status() == Some(403));
    let assignments = reading.keep(assignments);
    if denied {
        // Everything else here needs at least what was just refused.
        return reading;
    }
    let active_url = client.arm(&format!(
        "{base}/roleAssignmentScheduleInstances?api-version={ARM_PIM_VERSION}"
    ));
    let eligible_url = client.arm(&format!(
        "{base}/roleEligibilityScheduleInstances?api-version={ARM_PIM_VERSION}"
    ));
    let (active, eligible) = tokio::join!(
        client.list(Api::Arm, &active_url, ARM_PIM_ACTIVE),
        client.list(Api::Arm, &eligible_url, ARM_PIM_ELIGIBLE)
    );
    let active = reading.keep_licensed(active);
    let eligible = reading.keep_licensed(eligible);

    let mut definitions: Vec<String> = assignments
        .iter()
        .chain(&active)
        .chain(&eligible)
        .filter_map(|item| text(&item["properties"]["roleDefinitionId"]))
        .collect();
    definitions.sort_by_key(|id| guid_of(id));
    definitions.dedup_by_key(|id| guid_of(id));
    role_names(client, definitions, roles, &mut reading).await;
    let roles = roles.lock().await.clone();
    let role = |definition: &str| roles.get(&guid_of(definition)).cloned();

    // Active instances that are time-bound or activations are reported as PIM grants, with
    // their end; the role assignment each materializes is then left out, so nothing counts
    // twice. A permanent "Assigned" instance is the plain role assignment itself.
    let mut materialized = HashSet::new();
    for instance in &active {
        let properties = &instance["properties"];
        let activated = properties["assignmentType"].as_str() == Some("Activated");
        let ends = time_of(&properties["endDateTime"]);
        if !activated && ends.is_none() {
            continue;
        }
        if let Some(origin) = text(&properties["originRoleAssignmentId"]) {
            materialized.insert(guid_of(&origin));
        }
        if let Some((id, definition, principal)) =
            arm_identity(&mut reading, instance, ARM_PIM_ACTIVE.name)
        {
            let grant = pim_grant(
                &scope_id,
                (id, definition, principal),
                instance,
                GrantKind::PimActive,
                &role,
            );
            reading.grants.push(grant);
        }
    }
    for instance in &eligible {
        if let Some(identity) = arm_identity(&mut reading, instance, ARM_PIM_ELIGIBLE.name) {
            let grant = pim_grant(&scope_id, identity, instance, GrantKind::PimEligible, &role);
            reading.grants.push(grant);
        }
    }
    for assignment in &assignments {
        let Some((id, definition, principal)) =
            arm_identity(&mut reading, assignment, ROLE_ASSIGNMENTS.name)
        else {
            continue;
        };
        if materialized.contains(&guid_of(&id)) {
            continue;
        }
        let properties = &assignment["properties"];
        let resource = text(&properties["scope"]).unwrap_or_default();
        let role = role(&definition);
        reading.grants.push(Grant {
            id: id.into(),
            cloud: Cloud::Azure,
            scope: scope_id.clone(),
            principal: principal.into(),
            entitlement: role
                .as_ref()
                .map_or_else(|| guid_of(&definition), |role| role.name.clone()),
            entitlement_id: Some(definition),
            via: via_for(&resource),
            resource,
            kind: GrantKind::RoleAssignment,
            created_at: time_of(&properties["createdOn"]),
            expires_at: None,
            expiry_source: None,
            condition: text(&properties["condition"]).map(|expression| Condition {
                expression,
                title: None,
            }),
            privileged: role.is_some_and(|role| role.privileged),
        });
    }
    reading.finish()
}

/// What names an ARM role assignment or PIM instance: its id, its role definition id and its
/// principal. An item missing any of them is left out and its scope marked incomplete: a grant
/// without its role id could not be told apart from another role's, nor held as a last Owner.
fn arm_identity(
    reading: &mut Reading,
    item: &Value,
    operation: &str,
) -> Option<(String, String, String)> {
    let id = reading.id_of(item, "id", operation)?;
    let properties = &item["properties"];
    let Some(definition) = text(&properties["roleDefinitionId"]) else {
        reading.unidentified(operation, "properties.roleDefinitionId");
        return None;
    };
    let Some(principal) = text(&properties["principalId"]) else {
        reading.unidentified(operation, "properties.principalId");
        return None;
    };
    Some((id, definition, principal))
}

fn pim_grant(
    scope_id: &ScopeId,
    (id, definition, principal): (String, String, String),
    instance: &Value,
    kind: GrantKind,
    role: &impl Fn(&str) -> Option<Role>,
) -> Grant {
    let properties = &instance["properties"];
    let resource = text(&properties["scope"]).unwrap_or_default();
    let role = role(&definition);
    let expires_at = time_of(&properties["endDateTime"]);
    let via = if properties["memberType"].as_str() == Some("Inherited") {
        Via::Inherited(resource.clone())
    } else {
        via_for(&resource)
    };
    Grant {
        id: id.into(),
        cloud: Cloud::Azure,
        scope: scope_id.clone(),
        principal: principal.into(),
        entitlement: role
            .as_ref()
            .map_or_else(|| guid_of(&definition), |role| role.name.clone()),
        entitlement_id: Some(definition),
        resource,
        kind,
        via,
        created_at: time_of(&properties["startDateTime"]),
        expires_at,
        expiry_source: expires_at.map(|_| ExpirySource::Pim),
        condition: text(&properties["condition"]).map(|expression| Condition {
            expression,
            title: None,
        }),
        privileged: role.is_some_and(|role| role.privileged),
    }
}

/// Tags as `key:value` or `key=value` become pairs; a bare tag keeps an empty value.
fn tags_of(object: &Value) -> BTreeMap<String, String> {
    object["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|tag| match tag.split_once([':', '=']) {
            Some((key, value)) => (key.trim().to_owned(), value.trim().to_owned()),
            None => (tag.to_owned(), String::new()),
        })
        .collect()
}

/// The later of the report's sign-in times.
fn last_sign_in(activity: &Value) -> Usage {
    [
        "lastSignInDateTime",
        "lastNonInteractiveSignInDateTime",
        "lastSuccessfulSignInDateTime",
    ]
    .iter()
    .filter_map(|field| time_of(&activity[*field]))
    .max()
    .map_or(Usage::Unknown, Usage::At)
}

/// Graph `$select` lists: only what the model uses, to keep pages small.
const SP_SELECT: &str = "id,appId,displayName,servicePrincipalType,accountEnabled,appOwnerOrganizationId,passwordCredentials,keyCredentials,tags,appRoles";
const APP_SELECT: &str =
    "id,appId,displayName,createdDateTime,passwordCredentials,keyCredentials,tags";

/// Reads the tenant's own objects into `tenant`, and says through which other principals
/// lapse's own identity holds access ([`caller_identities`]).
async fn read_directory(
    client: &Client,
    caller: &Caller,
    tenant: &mut Reading,
) -> Result<Vec<String>, AzureError> {
    let scope = tenant.status.id.clone();
    // App role assignments (application permissions) come with their service principal:
    // requests grow with pages of service principals, not with service principals.
    let sp_url = client.graph(&format!(
        "/v1.0/servicePrincipals?$select={SP_SELECT}&$expand=appRoleAssignments&$top=999"
    ));
    // Federated credentials come with their application (at most 20 per application, so the
    // expansion is whole): requests grow with pages of applications, not with applications.
    let app_url = client.graph(&format!(
        "/v1.0/applications?$select={APP_SELECT}&$expand=federatedIdentityCredentials&$top=999"
    ));
    let definitions_url = client
        .graph("/v1.0/roleManagement/directory/roleDefinitions?$select=id,displayName,templateId");
    let assignments_url = client.graph(
        "/v1.0/roleManagement/directory/roleAssignments?$select=id,principalId,roleDefinitionId,directoryScopeId",
    );
    let active_url = client.graph(
        "/v1.0/roleManagement/directory/roleAssignmentScheduleInstances?$select=id,principalId,roleDefinitionId,directoryScopeId,startDateTime,endDateTime,assignmentType,roleAssignmentOriginId,memberType",
    );
    let eligible_url = client.graph(
        "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances?$select=id,principalId,roleDefinitionId,directoryScopeId,startDateTime,endDateTime,memberType",
    );
    let sp_report_url = client.graph("/beta/reports/servicePrincipalSignInActivities");
    let credential_report_url = client.graph("/beta/reports/appCredentialSignInActivities");
    let (sps, apps, definitions, assignments) = tokio::join!(
        client.list(Api::Graph, &sp_url, SERVICE_PRINCIPALS),
        client.list(Api::Graph, &app_url, APPLICATIONS),
        client.list(Api::Graph, &definitions_url, DIRECTORY_ROLE_DEFINITIONS),
        client.list(Api::Graph, &assignments_url, DIRECTORY_ROLE_ASSIGNMENTS),
    );
    let (active, eligible, sp_report, credential_report) = tokio::join!(
        client.list(Api::Graph, &active_url, DIRECTORY_PIM_ACTIVE),
        client.list(Api::Graph, &eligible_url, DIRECTORY_PIM_ELIGIBLE),
        client.list(Api::Graph, &sp_report_url, SP_SIGN_INS),
        client.list(Api::Graph, &credential_report_url, CREDENTIAL_SIGN_INS),
    );
    let sps = tenant.keep(sps);
    let apps = tenant.keep(apps);
    let definitions = tenant.keep(definitions);
    let assignments = tenant.keep(assignments);
    let active = tenant.keep_licensed(active);
    let eligible = tenant.keep_licensed(eligible);
    // Last use is enrichment: without the report (no licence, no permission, a cloud without
    // the beta endpoint) it stays unknown and the scope is still complete. A report that timed
    // out is another matter: the service stopped answering, and this scope's later reads of it
    // are not sent.
    let mut enrichment = |report: Result<Vec<Value>, AzureError>| match report {
        Err(error) if error.timed_out() => {
            tenant.fail(error);
            Vec::new()
        }
        report => report.unwrap_or_default(),
    };
    let sp_report = enrichment(sp_report);
    let credential_report = enrichment(credential_report);
    let identities = caller_identities(client, caller, &sps, &apps).await;

    let sp_last_use: HashMap<&str, Usage> = sp_report
        .iter()
        .filter_map(|item| {
            let usage = last_sign_in(&item["lastSignInActivity"]);
            item["appId"].as_str().map(|app| (app, usage))
        })
        .collect();
    let credential_last_use: HashMap<String, Usage> = credential_report
        .iter()
        .filter_map(|item| {
            let usage = last_sign_in(&item["signInActivity"]);
            item["keyId"]
                .as_str()
                .map(|key| (key.to_ascii_lowercase(), usage))
        })
        .collect();
    let key_usage = |key: &str| {
        credential_last_use
            .get(&key.to_ascii_lowercase())
            .copied()
            .unwrap_or_default()
    };

    // Federated credentials as expanded in the list, with the operation that read them. An
    // application that came without the expansion is not taken to have none: its own list is
    // read, a few at a time.
    let mut federated_by_app: HashMap<String, (Vec<Value>, &str)> = HashMap::new();
    let mut unexpanded = Vec::new();
    for app in &apps {
        let Some(id) = text(&app["id"]) else {
            continue;
        };
        match app["federatedIdentityCredentials"].as_array() {
            Some(items) => {
                federated_by_app.insert(id, (items.clone(), APPLICATIONS.name));
            }
            None => unexpanded.push(id),
        }
    }
    let federated: Vec<(String, Result<Vec<Value>, AzureError>)> =
        futures_util::stream::iter(unexpanded)
            .map(|id| async move {
                let url = client.graph(&format!(
                    "/v1.0/applications/{id}/federatedIdentityCredentials"
                ));
                let result = client.list(Api::Graph, &url, FEDERATED).await;
                (id, result)
            })
            .buffer_unordered(client.concurrency() * 2)
            .collect()
            .await;
    for (id, result) in federated {
        let items = tenant.keep(result);
        federated_by_app.insert(id, (items, FEDERATED.name));
    }

    let mut federated_app_ids: HashSet<String> = HashSet::new();
    let mut app_created: HashMap<String, Timestamp> = HashMap::new();
    for app in &apps {
        let Some(id) = tenant.id_of(app, "id", APPLICATIONS.name) else {
            continue;
        };
        // The appId only joins the application to its service principal and sign-in reports;
        // an application without one is still reported.
        let app_id = text(&app["appId"]);
        let (federated, federated_operation) = federated_by_app
            .remove(&id)
            .unwrap_or((Vec::new(), FEDERATED.name));
        if let Some(app_id) = &app_id {
            if !federated.is_empty() {
                federated_app_ids.insert(app_id.clone());
            }
            if let Some(created) = time_of(&app["createdDateTime"]) {
                app_created.insert(app_id.clone(), created);
            }
        }
        let tags = tags_of(app);
        tenant.principals.push(Principal {
            // The object id is the immutable id: Entra never gives it to another object.
            unique_id: Some(id.clone()),
            id: id.clone().into(),
            cloud: Cloud::Azure,
            scope: scope.clone(),
            kind: PrincipalKind::Workload,
            native_type: Some("application".to_owned()),
            display_name: text(&app["displayName"]),
            created_at: time_of(&app["createdDateTime"]),
            last_activity: app_id
                .as_deref()
                .and_then(|app_id| sp_last_use.get(app_id))
                .copied()
                .unwrap_or_default(),
            owner: tags.get("owner").cloned(),
            tags,
            enabled: true,
            cloud_managed: false,
            federation_available: !federated.is_empty(),
        });
        push_secrets(tenant, &id, app, &key_usage, APPLICATIONS.name);
        for credential in &federated {
            let Some(credential_id) = tenant.id_of(credential, "id", federated_operation) else {
                continue;
            };
            tenant.credentials.push(Credential {
                id: credential_id.into(),
                principal: id.clone().into(),
                cloud: Cloud::Azure,
                scope: scope.clone(),
                kind: CredentialKind::AzureFederated,
                display_name: text(&credential["subject"]).or_else(|| text(&credential["name"])),
                created_at: None,
                expires_at: None,
                last_used: Usage::Unknown,
                status: CredentialStatus::Active,
                cloud_managed: false,
            });
        }
    }

    let tenant_id = scope.0.trim_start_matches("azure:/tenants/").to_owned();
    for sp in &sps {
        let Some(id) = tenant.id_of(sp, "id", SERVICE_PRINCIPALS.name) else {
            continue;
        };
        let app_id = text(&sp["appId"]).unwrap_or_default();
        let owner_tenant = sp["appOwnerOrganizationId"].as_str().unwrap_or_default();
        let first_party = MICROSOFT_TENANTS.contains(&owner_tenant);
        let mut tags = tags_of(sp);
        if !owner_tenant.is_empty() {
            // Who publishes the application: what a reviewer asks first about a service
            // principal, and what a policy can select on.
            let publisher = if first_party {
                "first-party"
            } else if owner_tenant == tenant_id {
                "this-tenant"
            } else {
                "third-party"
            };
            tags.insert("lapse:app-owner".to_owned(), publisher.to_owned());
        }
        let managed_identity = sp["servicePrincipalType"].as_str() == Some("ManagedIdentity");
        tenant.principals.push(Principal {
            unique_id: Some(id.clone()),
            id: id.clone().into(),
            cloud: Cloud::Azure,
            scope: scope.clone(),
            kind: PrincipalKind::Workload,
            native_type: Some(
                if managed_identity {
                    "managedIdentity"
                } else {
                    "servicePrincipal"
                }
                .to_owned(),
            ),
            display_name: text(&sp["displayName"]),
            created_at: app_created.get(&app_id).copied(),
            last_activity: sp_last_use
                .get(app_id.as_str())
                .copied()
                .unwrap_or_default(),
            owner: tags.get("owner").cloned(),
            tags,
            enabled: sp["accountEnabled"].as_bool() != Some(false),
            cloud_managed: first_party,
            federation_available: federated_app_ids.contains(&app_id),
        });
        push_secrets(tenant, &id, sp, &key_usage, SERVICE_PRINCIPALS.name);
    }

    app_role_grants(client, &sps, tenant).await;

    directory_grants(
        &scope,
        &definitions,
        &assignments,
        &active,
        &eligible,
        tenant,
    );
    identities
}

/// The other principals through which lapse's own identity holds access in a tenant: the
/// application whose secrets and federated credentials the caller (its service principal) signs
/// in with, and every group the caller belongs to, directly or through other groups (Graph's
/// `transitiveMemberOf`, read for the caller as a service principal when the tenant lists it
/// as one, else as a user). The engine protects them as it protects the caller.
async fn caller_identities(
    client: &Client,
    caller: &Caller,
    sps: &[Value],
    apps: &[Value],
) -> Result<Vec<String>, AzureError> {
    let Some(caller_id) = caller.id.as_deref() else {
        return Ok(Vec::new());
    };
    let service_principal = sps.iter().find(|sp| same_id(&sp["id"], caller_id));
    let application_ids: Vec<&str> = service_principal
        .and_then(|sp| sp["appId"].as_str())
        .into_iter()
        .chain(caller.application.as_deref())
        .collect();
    let mut identities: Vec<String> = apps
        .iter()
        .filter(|app| {
            application_ids
                .iter()
                .any(|application| same_id(&app["appId"], application))
        })
        .filter_map(|app| text(&app["id"]))
        .collect();
    let (collection, operation) = if service_principal.is_some() {
        ("servicePrincipals", CALLER_GROUPS)
    } else {
        ("users", CALLER_USER_GROUPS)
    };
    let url = client.graph(&format!(
        "/v1.0/{collection}/{}/transitiveMemberOf?$select=id&$top=999",
        crate::actions::segment(caller_id).map_err(|error| AzureError::Malformed {
            operation: operation.name.to_owned(),
            message: error.message,
        })?
    ));
    for item in client.list(Api::Graph, &url, operation).await? {
        // Directory roles and administrative units come in the same list; they hold no grant.
        let group = item["@odata.type"]
            .as_str()
            .is_none_or(|kind| kind.eq_ignore_ascii_case("#microsoft.graph.group"));
        match text(&item["id"]) {
            Some(id) if group => identities.push(id),
            Some(_) => {}
            None => {
                return Err(AzureError::Malformed {
                    operation: operation.name.to_owned(),
                    message: "a group came without an id".to_owned(),
                });
            }
        }
    }
    identities.sort();
    identities.dedup();
    Ok(identities)
}

fn same_id(value: &Value, id: &str) -> bool {
    value
        .as_str()
        .is_some_and(|value| value.eq_ignore_ascii_case(id))
}

/// A resource service principal as far as app role assignments need it: its name and its app
/// roles' values by id.
struct Resource {
    name: Option<String>,
    roles: HashMap<String, String>,
}

fn resource_of(sp: &Value) -> Resource {
    Resource {
        name: text(&sp["displayName"]),
        roles: sp["appRoles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|role| {
                Some((
                    text(&role["id"])?.to_ascii_lowercase(),
                    text(&role["value"])?,
                ))
            })
            .collect(),
    }
}

/// Application permissions held by service principals: one `app-role` grant per app role
/// assignment, named `<resource>/<permission value>`. The assignments come `$expand`ed in the
/// service-principal list; a service principal returned without the expansion, or with a
/// full one (which Graph may have cut at [`EXPAND_LIMIT`]), has its own list read. Each role
/// is resolved through its resource's `appRoles`, from the list, or read once per resource
/// outside it. Whether a permission is privileged is the engine's catalog's call, not set here.
async fn app_role_grants(client: &Client, sps: &[Value], tenant: &mut Reading) {
    let mut resources: HashMap<String, Option<Resource>> = HashMap::new();
    let mut holders: Vec<(String, Vec<Value>, &str)> = Vec::new();
    let mut unexpanded = Vec::new();
    for sp in sps {
        let Some(id) = text(&sp["id"]) else {
            continue;
        };
        resources.insert(id.to_ascii_lowercase(), Some(resource_of(sp)));
        match sp["appRoleAssignments"].as_array() {
            Some(items) if items.len() < EXPAND_LIMIT => {
                holders.push((id, items.clone(), SERVICE_PRINCIPALS.name));
            }
            _ => unexpanded.push(id),
        }
    }
    let listed: Vec<(String, Result<Vec<Value>, AzureError>)> =
        futures_util::stream::iter(unexpanded)
            .map(|id| async move {
                let url = client.graph(&format!(
                    "/v1.0/servicePrincipals/{}/appRoleAssignments",
                    crate::actions::segment(&id).unwrap_or_default()
                ));
                let result = client.list(Api::Graph, &url, APP_ROLE_ASSIGNMENTS).await;
                (id, result)
            })
            .buffer_unordered(client.concurrency() * 2)
            .collect()
            .await;
    for (id, result) in listed {
        let items = tenant.keep(result);
        holders.push((id, items, APP_ROLE_ASSIGNMENTS.name));
    }

    // Resources the list did not hold (it failed part way, or the resource lives elsewhere).
    let mut outside: Vec<String> = holders
        .iter()
        .flat_map(|(_, items, _)| items.iter())
        .filter_map(|item| text(&item["resourceId"]))
        .filter(|id| is_guid(id) && !resources.contains_key(&id.to_ascii_lowercase()))
        .map(|id| id.to_ascii_lowercase())
        .collect();
    outside.sort();
    outside.dedup();
    let read: Vec<(String, Result<Value, AzureError>)> = futures_util::stream::iter(outside)
        .map(|id| async move {
            let url = client.graph(&format!(
                "/v1.0/servicePrincipals/{id}?$select=id,displayName,appRoles"
            ));
            let result = client
                .get(Api::Graph, &url, RESOURCE_SERVICE_PRINCIPAL)
                .await;
            (id, result)
        })
        .buffer_unordered(client.concurrency() * 2)
        .collect()
        .await;
    for (id, result) in read {
        let resource = match result {
            Ok(body) if body["appRoles"].is_array() => Some(resource_of(&body)),
            // Without its roles every permission on it would keep its id for a name.
            Ok(_) => {
                tenant.fail(AzureError::Malformed {
                    operation: RESOURCE_SERVICE_PRINCIPAL.name.to_owned(),
                    message: format!("service principal {id} came without appRoles"),
                });
                None
            }
            // Deleted: its roles keep their ids, and the scope is still complete.
            Err(error) if crate::actions::object_missing(&error) => None,
            // Unknown names would make declared permissions look undeclared.
            Err(error) => {
                tenant.fail(error);
                None
            }
        };
        resources.insert(id, resource);
    }

    let scope = tenant.status.id.clone();
    for (holder, items, operation) in holders {
        for item in &items {
            let (Some(id), Some(role_id), Some(resource_id)) = (
                tenant.id_of(item, "id", operation),
                tenant.id_of(item, "appRoleId", operation),
                tenant.id_of(item, "resourceId", operation),
            ) else {
                continue;
            };
            let resource = resources
                .get(&resource_id.to_ascii_lowercase())
                .and_then(Option::as_ref);
            let resource_name = resource
                .and_then(|resource| resource.name.clone())
                .or_else(|| text(&item["resourceDisplayName"]))
                .unwrap_or_else(|| resource_id.clone());
            // A role the resource no longer defines (or an unreadable resource) keeps its id.
            let permission = resource
                .and_then(|resource| resource.roles.get(&role_id.to_ascii_lowercase()))
                .cloned()
                .unwrap_or_else(|| role_id.clone());
            tenant.grants.push(Grant {
                id: id.into(),
                cloud: Cloud::Azure,
                scope: scope.clone(),
                principal: holder.clone().into(),
                entitlement: format!("{resource_name}/{permission}"),
                entitlement_id: Some(role_id),
                resource: resource_id,
                kind: GrantKind::AppRole,
                via: Via::Direct,
                created_at: time_of(&item["createdDateTime"]),
                expires_at: None,
                expiry_source: None,
                condition: None,
                privileged: false,
            });
        }
    }
}

/// Password and certificate credentials of an application or service principal.
fn push_secrets(
    tenant: &mut Reading,
    owner: &str,
    object: &Value,
    usage: &impl Fn(&str) -> Usage,
    operation: &str,
) {
    for (field, key_field, kind) in [
        (
            "passwordCredentials",
            "passwordCredentials[].keyId",
            CredentialKind::AzurePassword,
        ),
        (
            "keyCredentials",
            "keyCredentials[].keyId",
            CredentialKind::AzureCertificate,
        ),
    ] {
        for secret in object[field].as_array().into_iter().flatten() {
            let Some(key) = text(&secret["keyId"]) else {
                tenant.unidentified(operation, key_field);
                continue;
            };
            tenant.credentials.push(Credential {
                id: key.clone().into(),
                principal: owner.into(),
                cloud: Cloud::Azure,
                scope: tenant.status.id.clone(),
                kind,
                display_name: text(&secret["displayName"]),
                created_at: time_of(&secret["startDateTime"]),
                expires_at: time_of(&secret["endDateTime"]),
                last_used: usage(&key),
                status: CredentialStatus::Active,
                cloud_managed: false,
            });
        }
    }
}

/// Directory role assignments and PIM instances, joined as for ARM: an activation or a
/// time-bound assignment is one PIM grant, not also a plain assignment.
fn directory_grants(
    scope: &ScopeId,
    definitions: &[Value],
    assignments: &[Value],
    active: &[Value],
    eligible: &[Value],
    tenant: &mut Reading,
) {
    let mut names: HashMap<String, String> = HashMap::new();
    for definition in definitions {
        // A role without its name would be judged by its id: a policy naming the role, or the
        // catalog's privileged roles, would not see its holders.
        let Some(name) = text(&definition["displayName"]) else {
            tenant.unidentified(DIRECTORY_ROLE_DEFINITIONS.name, "displayName");
            continue;
        };
        for key in [&definition["id"], &definition["templateId"]] {
            if let Some(key) = text(key) {
                names.insert(key.to_ascii_lowercase(), name.clone());
            }
        }
    }
    let grant = |item: &Value, (id, definition, principal): (String, String, String), kind| {
        let expires_at = time_of(&item["endDateTime"]);
        Grant {
            id: id.into(),
            cloud: Cloud::Azure,
            scope: scope.clone(),
            principal: principal.into(),
            entitlement: names
                .get(&definition.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| definition.clone()),
            entitlement_id: Some(definition),
            resource: text(&item["directoryScopeId"]).unwrap_or_else(|| "/".to_owned()),
            kind,
            via: Via::Direct,
            created_at: time_of(&item["startDateTime"]),
            expires_at,
            expiry_source: expires_at.map(|_| ExpirySource::Pim),
            condition: None,
            privileged: false,
        }
    };
    let mut materialized = HashSet::new();
    for instance in active {
        let activated = instance["assignmentType"].as_str() == Some("Activated");
        if !activated && time_of(&instance["endDateTime"]).is_none() {
            continue;
        }
        let Some(identity) = directory_identity(tenant, instance, DIRECTORY_PIM_ACTIVE.name) else {
            continue;
        };
        materialized.insert(identity.0.clone());
        if let Some(origin) = text(&instance["roleAssignmentOriginId"]) {
            materialized.insert(origin);
        }
        tenant
            .grants
            .push(grant(instance, identity, GrantKind::PimActive));
    }
    for instance in eligible {
        if let Some(identity) = directory_identity(tenant, instance, DIRECTORY_PIM_ELIGIBLE.name) {
            tenant
                .grants
                .push(grant(instance, identity, GrantKind::PimEligible));
        }
    }
    for assignment in assignments {
        let Some(identity) =
            directory_identity(tenant, assignment, DIRECTORY_ROLE_ASSIGNMENTS.name)
        else {
            continue;
        };
        if materialized.contains(&identity.0) {
            continue;
        }
        tenant
            .grants
            .push(grant(assignment, identity, GrantKind::DirectoryRole));
    }
}

/// A directory role assignment's or PIM instance's id, role definition id and principal; an
/// item missing one is left out and the scope marked incomplete (see [`arm_identity`]).
fn directory_identity(
    tenant: &mut Reading,
    item: &Value,
    operation: &str,
) -> Option<(String, String, String)> {
    let id = tenant.id_of(item, "id", operation)?;
    let definition = tenant.id_of(item, "roleDefinitionId", operation)?;
    let principal = tenant.id_of(item, "principalId", operation)?;
    Some((id, definition, principal))
}

/// Reads users, then groups, among `ids`, fifteen ids per request (Graph's limit for `in`).
async fn resolve_principals(client: &Client, ids: &[String], tenant: &mut Reading) {
    let scope = tenant.status.id.clone();
    let mut found: HashSet<String> = HashSet::new();
    let mut with_sign_in = true;
    for chunk in ids.chunks(15) {
        let filter = chunk
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let select = "id,displayName,userPrincipalName,userType,accountEnabled,createdDateTime";
        let mut users = Err(AzureError::Malformed {
            operation: USERS.name.to_owned(),
            message: "not read".to_owned(),
        });
        if with_sign_in {
            let url = client.graph(&format!(
                "/v1.0/users?$filter=id in ({filter})&$select={select},signInActivity"
            ));
            users = client.list(Api::Graph, &url, USERS).await;
            // Sign-in activity needs AuditLog.Read.All and a P1 licence: without them the users
            // are still read, and their last sign-in stays unknown.
            if matches!(&users, Err(error) if matches!(error.status(), Some(400 | 403)) ) {
                with_sign_in = false;
            }
        }
        if !with_sign_in {
            let url = client.graph(&format!(
                "/v1.0/users?$filter=id in ({filter})&$select={select}"
            ));
            users = client.list(Api::Graph, &url, USERS).await;
        }
        for user in tenant.keep(users) {
            let Some(id) = tenant.id_of(&user, "id", USERS.name) else {
                continue;
            };
            found.insert(id.clone());
            tenant.principals.push(Principal {
                unique_id: Some(id.clone()),
                id: id.into(),
                cloud: Cloud::Azure,
                scope: scope.clone(),
                kind: PrincipalKind::Human,
                native_type: Some("user".to_owned()),
                display_name: text(&user["userPrincipalName"])
                    .or_else(|| text(&user["displayName"])),
                created_at: time_of(&user["createdDateTime"]),
                last_activity: last_sign_in(&user["signInActivity"]),
                owner: None,
                tags: BTreeMap::new(),
                enabled: user["accountEnabled"].as_bool() != Some(false),
                cloud_managed: false,
                federation_available: false,
            });
        }
    }
    let rest: Vec<&String> = ids.iter().filter(|id| !found.contains(*id)).collect();
    for chunk in rest.chunks(15) {
        let filter = chunk
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let url = client.graph(&format!(
            "/v1.0/groups?$filter=id in ({filter})&$select=id,displayName,createdDateTime"
        ));
        let groups = client.list(Api::Graph, &url, GROUPS).await;
        for group in tenant.keep(groups) {
            let Some(id) = tenant.id_of(&group, "id", GROUPS.name) else {
                continue;
            };
            tenant.principals.push(Principal {
                unique_id: Some(id.clone()),
                id: PrincipalId(id),
                cloud: Cloud::Azure,
                scope: scope.clone(),
                kind: PrincipalKind::Group,
                native_type: Some("group".to_owned()),
                display_name: text(&group["displayName"]),
                created_at: time_of(&group["createdDateTime"]),
                last_activity: Usage::Unknown,
                owner: None,
                tags: BTreeMap::new(),
                enabled: true,
                cloud_managed: false,
                federation_available: false,
            });
        }
    }
}

/// The body an ARM role assignment is re-created from: its name, scope and every property a
/// PUT accepts (never the read-only audit fields).
pub(crate) fn restorable_assignment(assignment: &Value) -> Value {
    let properties = &assignment["properties"];
    let mut kept = serde_json::Map::new();
    for field in [
        "roleDefinitionId",
        "principalId",
        "principalType",
        "description",
        "condition",
        "conditionVersion",
        "delegatedManagedIdentityResourceId",
    ] {
        if !properties[field].is_null() {
            kept.insert(field.to_owned(), properties[field].clone());
        }
    }
    json!({
        "id": assignment["id"],
        "name": assignment["name"],
        "scope": properties["scope"],
        "properties": Value::Object(kept),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscription_whose_read_panics_stays_in_the_snapshot_as_incomplete() {
        use crate::fake::{FakeAzure, SECOND_SUBSCRIPTION, SUBSCRIPTION, State, StaticCredential};
        let fake = FakeAzure::start(State::contoso());
        let settings = AzureSettings {
            graph_url: fake.url.clone(),
            arm_url: fake.url.clone(),
            ..AzureSettings::default()
        };
        let client = Client::new(
            &settings,
            StaticCredential::for_caller(
                "e7c1a5f3-6d9b-4b20-8f4e-1a3c5e7b9d02",
                crate::fake::TENANT,
            ),
            crate::CredentialSource::Injected,
            Arc::default(),
        )
        .expect("client");
        let roles: Arc<Mutex<HashMap<String, Role>>> = Arc::default();
        let readings = read_subscriptions(
            vec![SUBSCRIPTION.to_owned(), SECOND_SUBSCRIPTION.to_owned()],
            2,
            None,
            |subscription| {
                let client = client.clone();
                let roles = Arc::clone(&roles);
                async move {
                    // A bug in the read of one subscription, as a panic.
                    assert_ne!(subscription, SECOND_SUBSCRIPTION, "a simulated bug");
                    scan_subscription(&client, &subscription, None, &roles).await
                }
            },
        )
        .await;
        let scopes: Vec<(&str, bool)> = readings
            .iter()
            .map(|reading| (reading.status.id.as_str(), reading.status.complete))
            .collect();
        assert_eq!(
            scopes,
            vec![
                (subscription_scope_id(SUBSCRIPTION).as_str(), true),
                (subscription_scope_id(SECOND_SUBSCRIPTION).as_str(), false),
            ]
        );
        assert!(!readings[0].grants.is_empty());
        let error = &readings[1].status.errors[0];
        assert!(error.message.contains("panicked"), "{error:?}");
        assert!(readings[1].grants.is_empty());
    }

    #[test]
    fn a_custom_role_that_can_write_role_assignments_is_privileged() {
        let role = json!({"properties": {"type": "CustomRole", "permissions": [{"actions": ["Microsoft.Authorization/roleAssignments/write"]}]}});
        assert!(custom_role_privileged(&role));
        let reader = json!({"properties": {"type": "CustomRole", "permissions": [{"actions": ["Microsoft.Storage/*/read"]}]}});
        assert!(!custom_role_privileged(&reader));
        // Built-in roles are judged by the catalog, by name.
        let owner =
            json!({"properties": {"type": "BuiltInRole", "permissions": [{"actions": ["*"]}]}});
        assert!(!custom_role_privileged(&owner));
    }

    #[test]
    fn only_the_documented_answers_say_a_feature_is_unlicensed() {
        let error = |status: u16, code: &str, message: &str| {
            crate::error::service_error(
                "graph:GET /roleManagement/directory/roleEligibilityScheduleInstances",
                "RoleEligibilitySchedule.Read.Directory",
                status,
                &json!({"error": {"code": code, "message": message}}),
            )
        };
        assert!(unlicensed(&error(
            400,
            "AadPremiumLicenseRequired",
            "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license."
        )));
        assert!(unlicensed(&error(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license"
        )));
        assert!(unlicensed(&error(
            400,
            "",
            "The tenant needs an AAD Premium 2 license."
        )));
        // A missing permission, an outage or a missing object that mention a licence.
        assert!(!unlicensed(&error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation; check the license and the permissions."
        )));
        assert!(!unlicensed(&error(
            503,
            "ServiceUnavailable",
            "The license service is unavailable."
        )));
        assert!(!unlicensed(&error(
            404,
            "AadPremiumLicenseRequired",
            "not found"
        )));
    }

    #[test]
    fn management_group_assignments_are_inherited() {
        assert_eq!(
            via_for("/providers/Microsoft.Management/managementGroups/root"),
            Via::Inherited("/providers/Microsoft.Management/managementGroups/root".to_owned())
        );
        assert_eq!(via_for("/subscriptions/s/resourceGroups/rg"), Via::Direct);
    }

    #[test]
    fn requested_ids_are_sorted_into_tenants_and_subscriptions() {
        let configured = vec![TenantScope {
            tenant: "t1".to_owned(),
            subscriptions: vec!["s1".to_owned()],
        }];
        let tenants = requested_tenants(
            &configured,
            &[
                "azure:/subscriptions/s1".to_owned(),
                "azure:/tenants/t2".to_owned(),
            ],
        );
        assert_eq!(tenants.len(), 2);
        assert_eq!(tenants[0].tenant, "t1");
        assert_eq!(tenants[0].subscriptions, vec!["s1".to_owned()]);
        assert_eq!(tenants[1].tenant, "t2");
        assert!(tenants[1].subscriptions.is_empty());
    }

    #[test]
    fn tags_split_into_pairs() {
        let tags = tags_of(
            &json!({"tags": ["owner:platform-team", "WindowsAzureActiveDirectoryIntegratedApp"]}),
        );
        assert_eq!(tags.get("owner").map(String::as_str), Some("platform-team"));
        assert_eq!(
            tags.get("WindowsAzureActiveDirectoryIntegratedApp")
                .map(String::as_str),
            Some("")
        );
    }
}
