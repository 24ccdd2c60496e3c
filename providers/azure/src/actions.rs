//! Revocations, each on one exact target: one role assignment, one PIM instance, one directory
//! role assignment, one app role assignment (application permission), one service principal,
//! one federated credential, one secret by `keyId` (never a rewrite of a whole credential
//! array). "Already gone" is success only after a read
//! shows the target gone.

use lapse_sdk::{
    Action, ActionKind, ActionOutcome, Credential, CredentialKind, CredentialStatus, Grant,
    GrantKind, Principal, ProviderError, ProviderErrorKind, TargetState, Via,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::TenantScope;
use crate::error::AzureError;
use crate::http::{Api, Client, Operation};
use crate::snapshot::{ARM_AUTHORIZATION_VERSION, ARM_PIM_VERSION, restorable_assignment};

const JUSTIFICATION: &str = "Removed by lapse: not declared in the access policy";

/// The Graph and ARM permissions each action kind needs (including the reads around it).
pub(crate) fn permissions(kind: ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::RevokeGrant => &[
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.Authorization/roleAssignments/write (undo)",
            "Microsoft.Authorization/roleAssignmentScheduleInstances/read",
            "Microsoft.Authorization/roleAssignmentScheduleRequests/write",
            "Microsoft.Authorization/roleEligibilityScheduleInstances/read",
            "Microsoft.Authorization/roleEligibilityScheduleRequests/write",
            "RoleManagement.ReadWrite.Directory",
            "RoleAssignmentSchedule.ReadWrite.Directory",
            "RoleEligibilitySchedule.ReadWrite.Directory",
            "Application.Read.All",
            "AppRoleAssignment.ReadWrite.All",
        ],
        ActionKind::DeactivateCredential | ActionKind::DeleteCredential => {
            &["Application.ReadWrite.All"]
        }
        ActionKind::DisablePrincipal => {
            &["Application.ReadWrite.All", "User.EnableDisableAccount.All"]
        }
    }
}

/// The tenant whose credential acts on a scope: the tenant itself, else the configured tenant
/// that lists the subscription, else the only (first) configured tenant.
pub(crate) fn tenant_of(tenants: &[TenantScope], scope: &str) -> String {
    let id = scope.trim_start_matches("azure:");
    if let Some(tenant) = id.strip_prefix("/tenants/") {
        if tenants.iter().any(|scope| scope.tenant == tenant) || tenants.len() != 1 {
            return tenant.to_owned();
        }
        // One configured tenant, named by domain: the scope id is its GUID.
        return tenants[0].tenant.clone();
    }
    let subscription = id.trim_start_matches("/subscriptions/");
    tenants
        .iter()
        .find(|scope| scope.subscriptions.iter().any(|sub| sub == subscription))
        .or_else(|| tenants.first())
        .map(|scope| scope.tenant.clone())
        .unwrap_or_default()
}

fn unsupported(operation: &str, message: impl Into<String>) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Unsupported,
        operation: operation.to_owned(),
        message: message.into(),
        missing_permission: None,
    }
}

fn failed(error: AzureError) -> ProviderError {
    error.into_provider_error()
}

fn gone() -> TargetState {
    TargetState {
        present: false,
        revoked: true,
        ..TargetState::default()
    }
}

fn is_tenant_scope(scope: &str) -> bool {
    scope.starts_with("azure:/tenants/")
}

fn refused(operation: &str, message: String) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Other,
        operation: operation.to_owned(),
        message,
        missing_permission: None,
    }
}

/// An id as one URL path segment. Ids come from a snapshot or plan file, so a `/`, `?` or `..`
/// in one must not be able to turn a call on one object into a call on another.
pub(crate) fn segment(id: &str) -> Result<String, ProviderError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(refused(
            "build request",
            format!("`{id}` is not an Azure object id"),
        ));
    }
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(encoded)
}

/// An ARM path taken from a record (a grant id, a live scope): absolute, with no query,
/// fragment, escape or dot segment that would make it address something else.
fn plain_arm_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['?', '#', '%', '\\', ' '])
        && path
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// A grant id that is an ARM resource of `collection` under the grant's own subscription,
/// named by a GUID; anything else is refused before a call is built from it.
fn arm_resource_id<'a>(grant: &'a Grant, collection: &str) -> Result<&'a str, ProviderError> {
    let id = grant.id.as_str();
    let subscription = grant
        .scope
        .as_str()
        .trim_start_matches("azure:")
        .to_ascii_lowercase();
    let lowered = id.to_ascii_lowercase();
    let suffix = format!(
        "/providers/microsoft.authorization/{}/",
        collection.to_ascii_lowercase()
    );
    let name_ok = lowered
        .rsplit_once(&suffix)
        .is_some_and(|(_, name)| uuid::Uuid::parse_str(name).is_ok());
    let under_subscription = subscription.starts_with("/subscriptions/")
        && (lowered.starts_with(&format!("{subscription}/")));
    // What it grants access to must lie in the same subscription: a record that pairs this
    // subscription's assignment with another scope is not one lapse read.
    let resource = grant.resource.to_ascii_lowercase();
    let resource_inside = plain_arm_path(&grant.resource)
        && (resource == subscription || resource.starts_with(&format!("{subscription}/")));
    if plain_arm_path(id) && name_ok && under_subscription && resource_inside {
        Ok(id)
    } else {
        Err(refused(
            "RevokeGrant",
            format!(
                "{id} (on {}) is not a {collection} id in {}; lapse acts only on ids it read from ARM, on what lies inside the scope they were read in",
                grant.resource, grant.scope
            ),
        ))
    }
}

const CERTIFICATE_HELP: &str = "Entra removes a certificate only with a proof signed by one of the application's own certificates, which lapse does not hold, and lapse never rewrites the whole keyCredentials list; remove it by hand: `az ad app credential delete --id <app id> --key-id <key id> --cert`, or in the portal under Certificates & secrets";

/// What a grant's revocation calls, by kind and scope.
enum GrantTarget<'a> {
    Assignment {
        id: &'a str,
    },
    ArmPim {
        id: &'a str,
        eligible: bool,
    },
    DirectoryPim {
        id: &'a str,
        eligible: bool,
    },
    DirectoryRole {
        id: &'a str,
    },
    /// An app role assignment, addressed under the service principal that holds it.
    AppRole {
        principal: &'a str,
        id: &'a str,
    },
}

/// What a grant's revocation calls, refused before any call unless the record names the role
/// (the role definition or app role id) that [`check_live`] compares with the live object.
fn grant_target(grant: &Grant) -> Result<GrantTarget<'_>, ProviderError> {
    let target = target_of(grant)?;
    if grant
        .entitlement_id
        .as_deref()
        .is_none_or(|role| role.trim().is_empty())
    {
        return Err(refused(
            "RevokeGrant",
            format!(
                "{} names no role id ({} has none in this record); lapse compares the role with the live assignment before acting and refuses a record without one: take a new snapshot and plan again",
                grant.id, grant.entitlement
            ),
        ));
    }
    Ok(target)
}

fn target_of(grant: &Grant) -> Result<GrantTarget<'_>, ProviderError> {
    if grant.via != Via::Direct {
        return Err(unsupported(
            "RevokeGrant",
            format!(
                "{} is inherited; change it where it is granted ({})",
                grant.id,
                match &grant.via {
                    Via::Inherited(scope) => scope.as_str(),
                    Via::Group(group) => group.as_str(),
                    Via::Direct => "",
                }
            ),
        ));
    }
    let id = grant.id.as_str();
    let tenant = is_tenant_scope(grant.scope.as_str());
    match (grant.kind, tenant) {
        (GrantKind::RoleAssignment, false) => Ok(GrantTarget::Assignment {
            id: arm_resource_id(grant, "roleAssignments")?,
        }),
        (GrantKind::PimActive | GrantKind::PimEligible, false) => {
            let eligible = grant.kind == GrantKind::PimEligible;
            let collection = if eligible {
                "roleEligibilityScheduleInstances"
            } else {
                "roleAssignmentScheduleInstances"
            };
            Ok(GrantTarget::ArmPim {
                id: arm_resource_id(grant, collection)?,
                eligible,
            })
        }
        (GrantKind::PimActive | GrantKind::PimEligible, true) => Ok(GrantTarget::DirectoryPim {
            id,
            eligible: grant.kind == GrantKind::PimEligible,
        }),
        (GrantKind::DirectoryRole, true) => Ok(GrantTarget::DirectoryRole { id }),
        (GrantKind::AppRole, true) => Ok(GrantTarget::AppRole {
            principal: grant.principal.as_str(),
            id,
        }),
        (kind, _) => Err(unsupported(
            "RevokeGrant",
            format!(
                "lapse does not revoke Azure {} grants ({}); remove it in the portal",
                kind.as_str(),
                grant.id
            ),
        )),
    }
}

/// 404 codes that are about the container (a subscription the credential cannot see, a resource
/// group, an unknown resource type), not the object: no evidence that the object is gone.
const CONTAINER_NOT_FOUND: &[&str] = &[
    "SubscriptionNotFound",
    "MissingSubscription",
    "InvalidSubscriptionId",
    "ResourceGroupNotFound",
    "ParentResourceNotFound",
    "NoRegisteredProviderFound",
    "InvalidResourceNamespace",
    "InvalidResourceType",
];

/// True when a 404 is the service saying the object itself does not exist. A 404 without the
/// service's error code (a proxy, a wrong base URL) proves nothing.
pub(crate) fn object_missing(error: &AzureError) -> bool {
    error.status() == Some(404)
        && !error.code().is_empty()
        && !CONTAINER_NOT_FOUND
            .iter()
            .any(|code| code.eq_ignore_ascii_case(error.code()))
}

/// A GET that reads the service's own "no such object" as "gone".
async fn read_or_gone(
    client: &Client,
    api: Api,
    url: &str,
    operation: Operation,
) -> Result<Option<Value>, ProviderError> {
    match client.get(api, url, operation).await {
        Ok(body) => Ok(Some(body)),
        Err(error) if object_missing(&error) => Ok(None),
        Err(error) => Err(failed(error)),
    }
}

fn last_segment(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()
}

fn text_of(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn same_text(live: &Value, planned: &str) -> bool {
    live.as_str()
        .is_some_and(|live| live.eq_ignore_ascii_case(planned))
}

/// What a live grant is, as read; compared with the plan before anything is built from it.
struct LiveGrant<'a> {
    principal: &'a Value,
    role: &'a Value,
    scope: &'a Value,
    member_type: &'a Value,
    /// What `scope` is called in a refusal: a scope, or an app role's resource.
    scope_name: &'static str,
}

/// The live object must still be the planned grant: same principal, role and scope, held
/// directly. Otherwise nothing is done, so a removal (PIM removes by principal, role and
/// scope) never lands on another grant than the one reviewed.
fn check_live(grant: &Grant, live: &LiveGrant<'_>) -> Result<(), ProviderError> {
    let shown = |value: &Value| value.as_str().unwrap_or("nothing").to_owned();
    let mut differences = Vec::new();
    if !same_text(live.principal, grant.principal.as_str()) {
        differences.push(format!(
            "principal {} (planned {})",
            shown(live.principal),
            grant.principal
        ));
    }
    // Required by [`grant_target`]; an empty one matches no live role.
    let planned = grant.entitlement_id.as_deref().unwrap_or_default();
    if planned.trim().is_empty()
        || live
            .role
            .as_str()
            .is_none_or(|role| last_segment(role) != last_segment(planned))
    {
        differences.push(format!("role {} (planned {planned})", shown(live.role)));
    }
    if !same_text(live.scope, &grant.resource) {
        differences.push(format!(
            "{} {} (planned {})",
            live.scope_name,
            shown(live.scope),
            grant.resource
        ));
    }
    if !(live.member_type.is_null() || same_text(live.member_type, "Direct")) {
        differences.push(format!(
            "membership {} (only a direct one is revoked here)",
            shown(live.member_type)
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(refused(
            "RevokeGrant",
            format!(
                "{} no longer matches the plan: {}; take a new snapshot and plan again",
                grant.id,
                differences.join(", ")
            ),
        ))
    }
}

/// A live grant, with the object id of the principal holding it as read now.
fn present(restore: Value, principal: &Value) -> TargetState {
    TargetState {
        present: true,
        revoked: false,
        restore,
        unique_id: principal.as_str().map(str::to_owned),
        ..TargetState::default()
    }
}

const READ_ASSIGNMENT: Operation = Operation {
    name: "arm:GET roleAssignments/{name}",
    permission: "Microsoft.Authorization/roleAssignments/read",
};
const DELETE_ASSIGNMENT: Operation = Operation {
    name: "arm:DELETE roleAssignments/{name}",
    permission: "Microsoft.Authorization/roleAssignments/delete",
};
const PUT_ASSIGNMENT: Operation = Operation {
    name: "arm:PUT roleAssignments/{name}",
    permission: "Microsoft.Authorization/roleAssignments/write",
};
const READ_ARM_ACTIVE: Operation = Operation {
    name: "arm:GET roleAssignmentScheduleInstances/{name}",
    permission: "Microsoft.Authorization/roleAssignmentScheduleInstances/read",
};
const READ_ARM_ELIGIBLE: Operation = Operation {
    name: "arm:GET roleEligibilityScheduleInstances/{name}",
    permission: "Microsoft.Authorization/roleEligibilityScheduleInstances/read",
};
const ARM_ACTIVE_REQUEST: Operation = Operation {
    name: "arm:PUT roleAssignmentScheduleRequests/{name}",
    permission: "Microsoft.Authorization/roleAssignmentScheduleRequests/write",
};
const ARM_ELIGIBLE_REQUEST: Operation = Operation {
    name: "arm:PUT roleEligibilityScheduleRequests/{name}",
    permission: "Microsoft.Authorization/roleEligibilityScheduleRequests/write",
};
const READ_DIRECTORY_ROLE: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleAssignments/{id}",
    permission: "RoleManagement.Read.Directory",
};
const DELETE_DIRECTORY_ROLE: Operation = Operation {
    name: "graph:DELETE /roleManagement/directory/roleAssignments/{id}",
    permission: "RoleManagement.ReadWrite.Directory",
};
const CREATE_DIRECTORY_ROLE: Operation = Operation {
    name: "graph:POST /roleManagement/directory/roleAssignments",
    permission: "RoleManagement.ReadWrite.Directory",
};
const READ_DIRECTORY_ACTIVE: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleAssignmentScheduleInstances/{id}",
    permission: "RoleAssignmentSchedule.Read.Directory",
};
const READ_DIRECTORY_ELIGIBLE: Operation = Operation {
    name: "graph:GET /roleManagement/directory/roleEligibilityScheduleInstances/{id}",
    permission: "RoleEligibilitySchedule.Read.Directory",
};
const DIRECTORY_ACTIVE_REQUEST: Operation = Operation {
    name: "graph:POST /roleManagement/directory/roleAssignmentScheduleRequests",
    permission: "RoleAssignmentSchedule.ReadWrite.Directory",
};
const DIRECTORY_ELIGIBLE_REQUEST: Operation = Operation {
    name: "graph:POST /roleManagement/directory/roleEligibilityScheduleRequests",
    permission: "RoleEligibilitySchedule.ReadWrite.Directory",
};
const READ_APP_ROLE: Operation = Operation {
    name: "graph:GET /servicePrincipals/{id}/appRoleAssignments/{id}",
    permission: "Application.Read.All",
};
const READ_APP_ROLES: Operation = Operation {
    name: "graph:GET /servicePrincipals/{id}/appRoleAssignments",
    permission: "Application.Read.All",
};
const DELETE_APP_ROLE: Operation = Operation {
    name: "graph:DELETE /servicePrincipals/{id}/appRoleAssignments/{id}",
    permission: "AppRoleAssignment.ReadWrite.All",
};
const CREATE_APP_ROLE: Operation = Operation {
    name: "graph:POST /servicePrincipals/{id}/appRoleAssignments",
    permission: "AppRoleAssignment.ReadWrite.All",
};
const READ_ACCOUNT: Operation = Operation {
    name: "graph:GET accountEnabled",
    permission: "Application.Read.All",
};
const PATCH_ACCOUNT: Operation = Operation {
    name: "graph:PATCH accountEnabled",
    permission: "Application.ReadWrite.All",
};
const READ_FEDERATED: Operation = Operation {
    name: "graph:GET /applications/{id}/federatedIdentityCredentials/{id}",
    permission: "Application.Read.All",
};
const DELETE_FEDERATED: Operation = Operation {
    name: "graph:DELETE /applications/{id}/federatedIdentityCredentials/{id}",
    permission: "Application.ReadWrite.All",
};
const CREATE_FEDERATED: Operation = Operation {
    name: "graph:POST /applications/{id}/federatedIdentityCredentials",
    permission: "Application.ReadWrite.All",
};
const READ_PASSWORDS: Operation = Operation {
    name: "graph:GET passwordCredentials",
    permission: "Application.Read.All",
};
const REMOVE_PASSWORD: Operation = Operation {
    name: "graph:POST removePassword",
    permission: "Application.ReadWrite.All",
};

fn arm_pim_path(id: &str, eligible: bool) -> (String, Operation) {
    let _ = eligible;
    (
        format!("{id}?api-version={ARM_PIM_VERSION}"),
        if eligible {
            READ_ARM_ELIGIBLE
        } else {
            READ_ARM_ACTIVE
        },
    )
}

fn directory_pim_path(id: &str, eligible: bool) -> Result<(String, Operation), ProviderError> {
    let id = segment(id)?;
    Ok(if eligible {
        (
            format!("/v1.0/roleManagement/directory/roleEligibilityScheduleInstances/{id}"),
            READ_DIRECTORY_ELIGIBLE,
        )
    } else {
        (
            format!("/v1.0/roleManagement/directory/roleAssignmentScheduleInstances/{id}"),
            READ_DIRECTORY_ACTIVE,
        )
    })
}

/// Which collection a principal is changed in.
fn account_path(principal: &Principal) -> Result<String, ProviderError> {
    match principal.native_type.as_deref() {
        Some("user") => Ok(format!("/v1.0/users/{}", segment(principal.id.as_str())?)),
        Some("servicePrincipal" | "managedIdentity") => Ok(format!(
            "/v1.0/servicePrincipals/{}",
            segment(principal.id.as_str())?
        )),
        Some("application") => Err(unsupported(
            "DisablePrincipal",
            format!(
                "{} is an application registration, which has no on/off switch; disable its service principal instead",
                principal.id
            ),
        )),
        other => Err(unsupported(
            "DisablePrincipal",
            format!(
                "lapse does not disable Azure {} principals ({})",
                other.unwrap_or("unknown"),
                principal.id
            ),
        )),
    }
}

/// Reads the target's live state.
pub(crate) async fn read_target(
    client: &Client,
    action: &Action,
) -> Result<TargetState, ProviderError> {
    match action {
        Action::RevokeGrant { grant } => read_grant(client, grant).await,
        Action::DisablePrincipal { principal } => {
            let path = account_path(principal)?;
            let url = client.graph(&format!("{path}?$select=id,accountEnabled"));
            Ok(
                match read_or_gone(client, Api::Graph, &url, READ_ACCOUNT).await? {
                    None => gone(),
                    Some(body) => {
                        if !same_text(&body["id"], principal.id.as_str()) {
                            return Err(failed(AzureError::Malformed {
                                operation: READ_ACCOUNT.name.to_owned(),
                                message: format!(
                                    "asked for {}, Graph answered with {}",
                                    principal.id,
                                    body["id"].as_str().unwrap_or("no id")
                                ),
                            }));
                        }
                        // Not knowing is not "enabled": undo would switch on an account
                        // that lapse never switched off.
                        let Some(enabled) = body["accountEnabled"].as_bool() else {
                            return Err(failed(AzureError::Malformed {
                                operation: READ_ACCOUNT.name.to_owned(),
                                message: format!(
                                    "{} came back without accountEnabled",
                                    principal.id
                                ),
                            }));
                        };
                        TargetState {
                            present: true,
                            revoked: !enabled,
                            restore: json!({"accountEnabled": enabled}),
                            unique_id: text_of(&body["id"]),
                            ..TargetState::default()
                        }
                    }
                },
            )
        }
        Action::DeactivateCredential { credential } => match credential.kind {
            CredentialKind::AzureFederated => read_federated(client, credential).await,
            kind => Err(unsupported(
                "DeactivateCredential",
                format!(
                    "Entra cannot deactivate an {kind}; delete it instead (a rule with action: delete), which cannot be undone"
                ),
            )),
        },
        Action::DeleteCredential { credential } => match credential.kind {
            CredentialKind::AzureFederated => read_federated(client, credential).await,
            CredentialKind::AzurePassword => read_password(client, credential).await,
            CredentialKind::AzureCertificate => {
                Err(unsupported("DeleteCredential", CERTIFICATE_HELP))
            }
            kind => Err(unsupported(
                "DeleteCredential",
                format!("{kind} is not an Azure credential"),
            )),
        },
    }
}

async fn read_grant(client: &Client, grant: &Grant) -> Result<TargetState, ProviderError> {
    let null = Value::Null;
    match grant_target(grant)? {
        GrantTarget::Assignment { id } => {
            let url = client.arm(&format!("{id}?api-version={ARM_AUTHORIZATION_VERSION}"));
            let Some(body) = read_or_gone(client, Api::Arm, &url, READ_ASSIGNMENT).await? else {
                return Ok(gone());
            };
            let properties = &body["properties"];
            check_live(
                grant,
                &LiveGrant {
                    principal: &properties["principalId"],
                    role: &properties["roleDefinitionId"],
                    scope: &properties["scope"],
                    member_type: &null,
                    scope_name: "scope",
                },
            )?;
            Ok(present(
                restorable_assignment(&body),
                &properties["principalId"],
            ))
        }
        GrantTarget::ArmPim { id, eligible } => {
            let (path, operation) = arm_pim_path(id, eligible);
            let url = client.arm(&path);
            let Some(body) = read_or_gone(client, Api::Arm, &url, operation).await? else {
                return Ok(gone());
            };
            let properties = &body["properties"];
            check_live(
                grant,
                &LiveGrant {
                    principal: &properties["principalId"],
                    role: &properties["roleDefinitionId"],
                    scope: &properties["scope"],
                    member_type: &properties["memberType"],
                    scope_name: "scope",
                },
            )?;
            if !properties["scope"].as_str().is_some_and(plain_arm_path) {
                return Err(refused(
                    "RevokeGrant",
                    format!("{id} has a scope lapse will not build a request on"),
                ));
            }
            Ok(present(
                json!({
                    "scope": properties["scope"],
                    "principalId": properties["principalId"],
                    "roleDefinitionId": properties["roleDefinitionId"],
                }),
                &properties["principalId"],
            ))
        }
        GrantTarget::DirectoryPim { id, eligible } => {
            let (path, operation) = directory_pim_path(id, eligible)?;
            let url = client.graph(&path);
            let Some(body) = read_or_gone(client, Api::Graph, &url, operation).await? else {
                return Ok(gone());
            };
            check_live(
                grant,
                &LiveGrant {
                    principal: &body["principalId"],
                    role: &body["roleDefinitionId"],
                    scope: &body["directoryScopeId"],
                    member_type: &body["memberType"],
                    scope_name: "scope",
                },
            )?;
            Ok(present(directory_restore(&body), &body["principalId"]))
        }
        GrantTarget::DirectoryRole { id } => {
            let url = client.graph(&format!(
                "/v1.0/roleManagement/directory/roleAssignments/{}",
                segment(id)?
            ));
            let Some(body) = read_or_gone(client, Api::Graph, &url, READ_DIRECTORY_ROLE).await?
            else {
                return Ok(gone());
            };
            check_live(
                grant,
                &LiveGrant {
                    principal: &body["principalId"],
                    role: &body["roleDefinitionId"],
                    scope: &body["directoryScopeId"],
                    member_type: &null,
                    scope_name: "scope",
                },
            )?;
            Ok(present(directory_restore(&body), &body["principalId"]))
        }
        GrantTarget::AppRole { principal, id } => {
            let url = client.graph(&app_role_path(principal, id)?);
            let Some(body) = read_or_gone(client, Api::Graph, &url, READ_APP_ROLE).await? else {
                return same_app_role_held(client, grant, principal).await;
            };
            check_live(
                grant,
                &LiveGrant {
                    principal: &body["principalId"],
                    role: &body["appRoleId"],
                    scope: &body["resourceId"],
                    member_type: &null,
                    scope_name: "resource",
                },
            )?;
            // What a POST re-creates it from (the id is the service's to give).
            Ok(present(
                json!({
                    "principalId": body["principalId"],
                    "resourceId": body["resourceId"],
                    "appRoleId": body["appRoleId"],
                }),
                &body["principalId"],
            ))
        }
    }
}

/// When the planned assignment id is gone: the same permission (principal, resource, app role)
/// held under another id, as undo re-creates it (Graph gives a new id), so a restore shows as
/// restored. Its id is kept apart in the state so a revocation never deletes it in the
/// planned one's place.
async fn same_app_role_held(
    client: &Client,
    grant: &Grant,
    principal: &str,
) -> Result<TargetState, ProviderError> {
    let Some(role) = grant.entitlement_id.as_deref() else {
        return Ok(gone());
    };
    let url = client.graph(&app_roles_path(principal)?);
    let held = match client.list(Api::Graph, &url, READ_APP_ROLES).await {
        Ok(held) => held,
        Err(error) if object_missing(&error) => return Ok(gone()),
        Err(error) => return Err(failed(error)),
    };
    Ok(held
        .iter()
        .find(|item| {
            same_text(&item["principalId"], grant.principal.as_str())
                && same_text(&item["resourceId"], &grant.resource)
                && same_text(&item["appRoleId"], role)
        })
        .map_or_else(gone, |item| {
            present(
                json!({
                    "principalId": item["principalId"],
                    "resourceId": item["resourceId"],
                    "appRoleId": item["appRoleId"],
                    "heldAs": item["id"],
                }),
                &item["principalId"],
            )
        }))
}

/// One app role assignment of a service principal, both ids encoded.
fn app_role_path(principal: &str, id: &str) -> Result<String, ProviderError> {
    Ok(format!("{}/{}", app_roles_path(principal)?, segment(id)?))
}

/// The app role assignments a service principal holds.
fn app_roles_path(principal: &str) -> Result<String, ProviderError> {
    Ok(format!(
        "/v1.0/servicePrincipals/{}/appRoleAssignments",
        segment(principal)?
    ))
}

/// Checked by [`check_live`] to be present: a missing scope is never taken as the tenant's `/`.
fn directory_restore(body: &Value) -> Value {
    json!({
        "principalId": body["principalId"],
        "roleDefinitionId": body["roleDefinitionId"],
        "directoryScopeId": body["directoryScopeId"],
    })
}

/// One federated credential of an application, both ids encoded.
fn federated_path(credential: &Credential) -> Result<String, ProviderError> {
    Ok(format!(
        "/v1.0/applications/{}/federatedIdentityCredentials/{}",
        segment(credential.principal.as_str())?,
        segment(credential.id.as_str())?
    ))
}

/// What a federated credential is re-created from: the name, issuer, subject and audiences
/// Graph requires to create one (and the description, when it has one). `Err` names what is
/// missing: a credential that cannot be put back is not taken away.
fn federated_restore(body: &Value) -> Result<Value, &'static str> {
    for field in ["name", "issuer", "subject"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return Err(field);
        }
    }
    let audiences = body["audiences"].as_array();
    if audiences
        .is_none_or(|audiences| audiences.is_empty() || !audiences.iter().all(Value::is_string))
    {
        return Err("audiences");
    }
    let mut restore = serde_json::Map::new();
    for field in ["name", "issuer", "subject", "audiences", "description"] {
        if !body[field].is_null() {
            restore.insert(field.to_owned(), body[field].clone());
        }
    }
    Ok(Value::Object(restore))
}

async fn read_federated(
    client: &Client,
    credential: &Credential,
) -> Result<TargetState, ProviderError> {
    let url = client.graph(&federated_path(credential)?);
    Ok(
        match read_or_gone(client, Api::Graph, &url, READ_FEDERATED).await? {
            None => gone(),
            Some(body) => {
                let restore = federated_restore(&body).map_err(|missing| {
                    failed(AzureError::Malformed {
                        operation: READ_FEDERATED.name.to_owned(),
                        message: format!(
                            "federated credential {} of {} came without {missing}: lapse would delete it with nothing to re-create it from, so it is left alone",
                            credential.id, credential.principal
                        ),
                    })
                })?;
                TargetState {
                    present: true,
                    revoked: false,
                    restore,
                    status: Some(CredentialStatus::Active),
                    // Read under its application's path: that object holds it now.
                    unique_id: Some(credential.principal.as_str().to_owned()),
                    ..TargetState::default()
                }
            }
        },
    )
}

/// The password credentials of the application (or, failing that, the service principal)
/// that owns a credential: which collection, and the list. `None` when neither exists.
async fn passwords_of(
    client: &Client,
    owner: &str,
) -> Result<Option<(&'static str, Vec<Value>)>, ProviderError> {
    let owner = segment(owner)?;
    for collection in ["applications", "servicePrincipals"] {
        let url = client.graph(&format!(
            "/v1.0/{collection}/{owner}?$select=id,passwordCredentials"
        ));
        if let Some(body) = read_or_gone(client, Api::Graph, &url, READ_PASSWORDS).await? {
            if !same_text(&body["id"], &owner) {
                return Err(failed(AzureError::Malformed {
                    operation: READ_PASSWORDS.name.to_owned(),
                    message: format!(
                        "asked for {collection}/{owner}, Graph answered with {}",
                        body["id"].as_str().unwrap_or("no id")
                    ),
                }));
            }
            // A body without the list says nothing about the key: it is no proof of removal.
            let Some(list) = body["passwordCredentials"].as_array().cloned() else {
                return Err(failed(AzureError::Malformed {
                    operation: READ_PASSWORDS.name.to_owned(),
                    message: format!("{collection}/{owner} came back without passwordCredentials"),
                }));
            };
            return Ok(Some((collection, list)));
        }
    }
    Ok(None)
}

fn same_key(item: &Value, key: &str) -> bool {
    item["keyId"]
        .as_str()
        .is_some_and(|id| id.eq_ignore_ascii_case(key))
}

async fn read_password(
    client: &Client,
    credential: &Credential,
) -> Result<TargetState, ProviderError> {
    let Some((collection, list)) = passwords_of(client, credential.principal.as_str()).await?
    else {
        return Ok(gone());
    };
    let Some(item) = list
        .iter()
        .find(|item| same_key(item, credential.id.as_str()))
    else {
        return Ok(gone());
    };
    // Metadata only: Graph never returns a secret's value after creation, and lapse keeps none
    // (not even `hint`, the secret's first characters).
    Ok(TargetState {
        present: true,
        revoked: false,
        restore: json!({
            "collection": collection,
            "keyId": item["keyId"],
            "displayName": item["displayName"],
            "startDateTime": item["startDateTime"],
            "endDateTime": item["endDateTime"],
        }),
        status: Some(CredentialStatus::Active),
        unique_id: Some(credential.principal.as_str().to_owned()),
        ..TargetState::default()
    })
}

/// After a call that said "not there" (404, or ARM's 204 on delete), the target is read again;
/// only a read that shows it gone makes it "already done".
async fn confirm_gone(client: &Client, action: &Action) -> Result<ActionOutcome, ProviderError> {
    let live = read_target(client, action).await?;
    if live.present && !live.revoked {
        return Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: action.kind().as_str().to_owned(),
            message: format!(
                "{} was reported absent but is still there; run apply again to retry it",
                action.target_id()
            ),
            missing_permission: None,
        });
    }
    Ok(ActionOutcome::AlreadyDone)
}

/// Carries out an action.
pub(crate) async fn apply(
    client: &Client,
    action: &Action,
) -> Result<ActionOutcome, ProviderError> {
    match action {
        Action::RevokeGrant { grant } => revoke(client, action, grant).await,
        Action::DisablePrincipal { principal } => {
            let path = account_path(principal)?;
            let url = client.graph(&path);
            let body = json!({"accountEnabled": false});
            match client
                .send(Api::Graph, Method::PATCH, &url, Some(&body), PATCH_ACCOUNT)
                .await
            {
                Ok(_) => Ok(ActionOutcome::Done),
                Err(error) if error.status() == Some(404) => confirm_gone(client, action).await,
                Err(error) => Err(failed(error)),
            }
        }
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            match credential.kind {
                CredentialKind::AzureFederated => {
                    let url = client.graph(&federated_path(credential)?);
                    match client
                        .send(Api::Graph, Method::DELETE, &url, None, DELETE_FEDERATED)
                        .await
                    {
                        Ok(_) => Ok(ActionOutcome::Done),
                        Err(error) if error.status() == Some(404) => {
                            confirm_gone(client, action).await
                        }
                        Err(error) => Err(failed(error)),
                    }
                }
                CredentialKind::AzurePassword
                    if matches!(action, Action::DeleteCredential { .. }) =>
                {
                    remove_password(client, action, credential).await
                }
                _ => read_target(client, action)
                    .await
                    .map(|_| ActionOutcome::AlreadyDone),
            }
        }
    }
}

async fn remove_password(
    client: &Client,
    action: &Action,
    credential: &Credential,
) -> Result<ActionOutcome, ProviderError> {
    let Some((collection, list)) = passwords_of(client, credential.principal.as_str()).await?
    else {
        return Ok(ActionOutcome::AlreadyDone);
    };
    if !list
        .iter()
        .any(|item| same_key(item, credential.id.as_str()))
    {
        return Ok(ActionOutcome::AlreadyDone);
    }
    let url = client.graph(&format!(
        "/v1.0/{collection}/{}/removePassword",
        segment(credential.principal.as_str())?
    ));
    let body = json!({"keyId": credential.id.as_str()});
    let result = client
        .send(Api::Graph, Method::POST, &url, Some(&body), REMOVE_PASSWORD)
        .await;
    // The answer for an unknown keyId is not documented: the list, read again, decides.
    let live = read_target(client, action).await?;
    match result {
        Ok(_) if !live.present => Ok(ActionOutcome::Done),
        Err(_) if !live.present => Ok(ActionOutcome::AlreadyDone),
        Err(error) => Err(failed(error)),
        Ok(_) => Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: REMOVE_PASSWORD.name.to_owned(),
            message: format!(
                "Entra accepted the removal of {} but still lists it (Graph replicates with a delay); run apply again to check",
                credential.id
            ),
            missing_permission: None,
        }),
    }
}

fn new_request_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Revokes one grant: the live object is read and checked against the record first (so a
/// forged or edited record is refused before any change, whoever calls), then removed.
async fn revoke(
    client: &Client,
    action: &Action,
    grant: &Grant,
) -> Result<ActionOutcome, ProviderError> {
    let target = grant_target(grant)?;
    let live = read_grant(client, grant).await?;
    if !live.present {
        return Ok(ActionOutcome::AlreadyDone);
    }
    if let Some(other) = live.restore["heldAs"].as_str() {
        return Err(refused(
            "RevokeGrant",
            format!(
                "{} is gone, but {} holds the same permission as assignment {other}; lapse deletes only the assignment it planned: take a new snapshot and plan again",
                grant.id, grant.principal
            ),
        ));
    }
    match target {
        GrantTarget::Assignment { id } => {
            let url = client.arm(&format!("{id}?api-version={ARM_AUTHORIZATION_VERSION}"));
            match client
                .send(Api::Arm, Method::DELETE, &url, None, DELETE_ASSIGNMENT)
                .await
            {
                // 204: "already deleted or does not exist".
                Ok(response) if response.status == 204 => confirm_gone(client, action).await,
                Ok(_) => Ok(ActionOutcome::Done),
                Err(error) if error.status() == Some(404) => confirm_gone(client, action).await,
                Err(error) => Err(failed(error)),
            }
        }
        GrantTarget::ArmPim { eligible, .. } => {
            let (path, body) = arm_pim_request(&live.restore, eligible);
            let url = client.arm(&path);
            let operation = if eligible {
                ARM_ELIGIBLE_REQUEST
            } else {
                ARM_ACTIVE_REQUEST
            };
            client
                .send(Api::Arm, Method::PUT, &url, Some(&body), operation)
                .await
                .map_err(failed)?;
            Ok(ActionOutcome::Done)
        }
        GrantTarget::DirectoryPim { eligible, .. } => {
            let (path, body) = directory_pim_request(&live.restore, eligible);
            let url = client.graph(&path);
            let operation = if eligible {
                DIRECTORY_ELIGIBLE_REQUEST
            } else {
                DIRECTORY_ACTIVE_REQUEST
            };
            client
                .send(Api::Graph, Method::POST, &url, Some(&body), operation)
                .await
                .map_err(failed)?;
            Ok(ActionOutcome::Done)
        }
        GrantTarget::DirectoryRole { id } => {
            let url = client.graph(&format!(
                "/v1.0/roleManagement/directory/roleAssignments/{}",
                segment(id)?
            ));
            match client
                .send(
                    Api::Graph,
                    Method::DELETE,
                    &url,
                    None,
                    DELETE_DIRECTORY_ROLE,
                )
                .await
            {
                Ok(_) => Ok(ActionOutcome::Done),
                Err(error) if error.status() == Some(404) => confirm_gone(client, action).await,
                Err(error) => Err(failed(error)),
            }
        }
        GrantTarget::AppRole { principal, id } => {
            let url = client.graph(&app_role_path(principal, id)?);
            match client
                .send(Api::Graph, Method::DELETE, &url, None, DELETE_APP_ROLE)
                .await
            {
                Ok(_) => Ok(ActionOutcome::Done),
                Err(error) if error.status() == Some(404) => {
                    let live = read_target(client, action).await?;
                    if let Some(other) = live.restore["heldAs"].as_str() {
                        return Err(refused(
                            "RevokeGrant",
                            format!(
                                "{id} is gone, but {principal} holds the same permission as assignment {other}; lapse deletes only the assignment it planned: take a new snapshot and plan again"
                            ),
                        ));
                    }
                    confirm_gone(client, action).await
                }
                Err(error) => Err(failed(error)),
            }
        }
    }
}

/// The ARM PIM removal request: a PUT of a new request named by a fresh GUID at the
/// instance's scope.
fn arm_pim_request(restore: &Value, eligible: bool) -> (String, Value) {
    let collection = if eligible {
        "roleEligibilityScheduleRequests"
    } else {
        "roleAssignmentScheduleRequests"
    };
    let scope = restore["scope"].as_str().unwrap_or_default();
    (
        format!(
            "{scope}/providers/Microsoft.Authorization/{collection}/{}?api-version={ARM_PIM_VERSION}",
            new_request_name()
        ),
        json!({"properties": {
            "principalId": restore["principalId"],
            "roleDefinitionId": restore["roleDefinitionId"],
            "requestType": "AdminRemove",
            "justification": JUSTIFICATION,
        }}),
    )
}

fn directory_pim_request(restore: &Value, eligible: bool) -> (String, Value) {
    let collection = if eligible {
        "roleEligibilityScheduleRequests"
    } else {
        "roleAssignmentScheduleRequests"
    };
    (
        format!("/v1.0/roleManagement/directory/{collection}"),
        json!({
            "action": "adminRemove",
            "principalId": restore["principalId"],
            "roleDefinitionId": restore["roleDefinitionId"],
            "directoryScopeId": restore["directoryScopeId"],
            "justification": JUSTIFICATION,
        }),
    )
}

fn cannot_restore(action: &Action, why: &str) -> ProviderError {
    unsupported(
        "undo",
        format!("{} cannot be restored by lapse: {why}", action.target_id()),
    )
}

/// The body an app role assignment is re-created from: the journal's principal, resource and
/// app role, each an id, the principal the grant's own. Anything less is refused, not guessed.
fn app_role_restore(
    action: &Action,
    grant: &Grant,
    restore: &Value,
) -> Result<Value, ProviderError> {
    for field in ["principalId", "resourceId", "appRoleId"] {
        if restore[field]
            .as_str()
            .is_none_or(|id| uuid::Uuid::parse_str(id).is_err())
        {
            return Err(cannot_restore(
                action,
                &format!("the journal's {field} is not an id"),
            ));
        }
    }
    if !same_text(&restore["principalId"], grant.principal.as_str()) {
        return Err(cannot_restore(
            action,
            "the journal names another service principal than the grant",
        ));
    }
    Ok(json!({
        "principalId": restore["principalId"],
        "resourceId": restore["resourceId"],
        "appRoleId": restore["appRoleId"],
    }))
}

/// Restores what a reversible action changed, from the state journaled before it.
pub(crate) async fn undo(
    client: &Client,
    action: &Action,
    before: &TargetState,
) -> Result<ActionOutcome, ProviderError> {
    if !before.present || before.revoked {
        // The action found nothing to change; there is nothing to put back.
        return Ok(ActionOutcome::AlreadyDone);
    }
    match action {
        Action::RevokeGrant { grant } => match grant_target(grant)? {
            GrantTarget::Assignment { id } => {
                let live = read_grant(client, grant).await?;
                if live.present {
                    return Ok(ActionOutcome::AlreadyDone);
                }
                let url = client.arm(&format!("{id}?api-version={ARM_AUTHORIZATION_VERSION}"));
                let body = json!({"properties": before.restore["properties"]});
                client
                    .send(Api::Arm, Method::PUT, &url, Some(&body), PUT_ASSIGNMENT)
                    .await
                    .map_err(failed)?;
                Ok(ActionOutcome::Done)
            }
            GrantTarget::ArmPim { .. } | GrantTarget::DirectoryPim { .. } => Err(cannot_restore(
                action,
                "a PIM assignment comes back through PIM: have an administrator assign it again, or activate the eligibility again",
            )),
            GrantTarget::DirectoryRole { .. } => {
                let restore = &before.restore;
                // Both are GUIDs as read; anything else is not put into a query.
                for field in ["principalId", "roleDefinitionId"] {
                    if restore[field]
                        .as_str()
                        .is_none_or(|id| uuid::Uuid::parse_str(id).is_err())
                    {
                        return Err(cannot_restore(
                            action,
                            &format!("the journal's {field} is not an id"),
                        ));
                    }
                }
                if !restore["directoryScopeId"].is_string() {
                    return Err(cannot_restore(
                        action,
                        "the journal names no directory scope",
                    ));
                }
                let filter = format!(
                    "principalId eq '{}' and roleDefinitionId eq '{}'",
                    restore["principalId"].as_str().unwrap_or_default(),
                    restore["roleDefinitionId"].as_str().unwrap_or_default()
                );
                let url = client.graph(&format!(
                    "/v1.0/roleManagement/directory/roleAssignments?$filter={filter}"
                ));
                let existing = client
                    .list(Api::Graph, &url, READ_DIRECTORY_ROLE)
                    .await
                    .map_err(failed)?;
                if existing
                    .iter()
                    .any(|item| item["directoryScopeId"] == restore["directoryScopeId"])
                {
                    return Ok(ActionOutcome::AlreadyDone);
                }
                let url = client.graph("/v1.0/roleManagement/directory/roleAssignments");
                client
                    .send(
                        Api::Graph,
                        Method::POST,
                        &url,
                        Some(restore),
                        CREATE_DIRECTORY_ROLE,
                    )
                    .await
                    .map_err(failed)?;
                Ok(ActionOutcome::Done)
            }
            GrantTarget::AppRole { principal, .. } => {
                let body = app_role_restore(action, grant, &before.restore)?;
                let url = client.graph(&app_roles_path(principal)?);
                let held = client
                    .list(Api::Graph, &url, READ_APP_ROLES)
                    .await
                    .map_err(failed)?;
                // Graph refuses a second identical assignment; one already there is the
                // permission back (put back by someone, or by an earlier undo).
                if held.iter().any(|item| {
                    ["resourceId", "appRoleId"]
                        .iter()
                        .all(|field| same_text(&item[*field], body[*field].as_str().unwrap_or("")))
                }) {
                    return Ok(ActionOutcome::AlreadyDone);
                }
                client
                    .send(Api::Graph, Method::POST, &url, Some(&body), CREATE_APP_ROLE)
                    .await
                    .map_err(failed)?;
                Ok(ActionOutcome::Done)
            }
        },
        Action::DisablePrincipal { principal } => {
            let path = account_path(principal)?;
            let url = client.graph(&path);
            let body = json!({"accountEnabled": true});
            client
                .send(Api::Graph, Method::PATCH, &url, Some(&body), PATCH_ACCOUNT)
                .await
                .map_err(failed)?;
            Ok(ActionOutcome::Done)
        }
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential }
            if credential.kind == CredentialKind::AzureFederated =>
        {
            // A journal without what Graph needs to create the credential would post `{}` or
            // half a trust; it is refused, not guessed.
            if let Err(missing) = federated_restore(&before.restore) {
                return Err(cannot_restore(
                    action,
                    &format!("the journal's record of it has no {missing}"),
                ));
            }
            let list_url = client.graph(&format!(
                "/v1.0/applications/{}/federatedIdentityCredentials",
                segment(credential.principal.as_str())?
            ));
            let existing = client
                .list(Api::Graph, &list_url, READ_FEDERATED)
                .await
                .map_err(failed)?;
            // Names are unique per application: one by this name is either the credential
            // put back, or another that trusts something else and must not pass for it.
            if let Some(item) = existing
                .iter()
                .find(|item| item["name"] == before.restore["name"])
            {
                let same = ["issuer", "subject", "audiences"]
                    .iter()
                    .all(|field| item[*field] == before.restore[*field]);
                if same {
                    return Ok(ActionOutcome::AlreadyDone);
                }
                return Err(refused(
                    "undo",
                    format!(
                        "{} has a federated credential named {} that trusts a different issuer, subject or audience; it was not restored",
                        credential.principal, before.restore["name"]
                    ),
                ));
            }
            client
                .send(
                    Api::Graph,
                    Method::POST,
                    &list_url,
                    Some(&before.restore),
                    CREATE_FEDERATED,
                )
                .await
                .map_err(failed)?;
            Ok(ActionOutcome::Done)
        }
        Action::DeactivateCredential { .. } | Action::DeleteCredential { .. } => {
            Err(cannot_restore(
                action,
                "a removed secret or certificate is gone for good; create a new one",
            ))
        }
    }
}

/// The calls `apply` makes, one line each.
pub(crate) fn describe_apply(action: &Action, live: &TargetState) -> Vec<String> {
    describe(action, live, false)
}

/// The calls `undo` makes, one line each.
pub(crate) fn describe_undo(action: &Action, before: &TargetState) -> Vec<String> {
    describe(action, before, true)
}

fn describe(action: &Action, state: &TargetState, undo: bool) -> Vec<String> {
    let line = match action {
        Action::RevokeGrant { grant } => match grant_target(grant) {
            Err(error) => format!("none: {}", error.message),
            Ok(GrantTarget::Assignment { id }) if undo => format!(
                "ARM PUT {id}?api-version={ARM_AUTHORIZATION_VERSION} {}",
                json!({"properties": state.restore["properties"]})
            ),
            Ok(GrantTarget::Assignment { id }) => {
                format!("ARM DELETE {id}?api-version={ARM_AUTHORIZATION_VERSION}")
            }
            Ok(GrantTarget::ArmPim { .. } | GrantTarget::DirectoryPim { .. }) if undo => {
                "none: a PIM assignment comes back through PIM".to_owned()
            }
            Ok(GrantTarget::ArmPim { eligible, .. }) => {
                let (path, body) = arm_pim_request(&state.restore, eligible);
                let path = path.replacen(
                    path.rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .split('?')
                        .next()
                        .unwrap_or_default(),
                    "{new GUID}",
                    1,
                );
                format!("ARM PUT {path} {body}")
            }
            Ok(GrantTarget::DirectoryPim { eligible, .. }) => {
                let (path, body) = directory_pim_request(&state.restore, eligible);
                format!("Graph POST {path} {body}")
            }
            Ok(GrantTarget::DirectoryRole { .. }) if undo => format!(
                "Graph POST /v1.0/roleManagement/directory/roleAssignments {}",
                state.restore
            ),
            Ok(GrantTarget::DirectoryRole { id }) => {
                format!("Graph DELETE /v1.0/roleManagement/directory/roleAssignments/{id}")
            }
            Ok(GrantTarget::AppRole { principal, .. }) if undo => {
                match (
                    app_roles_path(principal),
                    app_role_restore(action, grant, &state.restore),
                ) {
                    (Ok(path), Ok(body)) => format!(
                        "Graph POST {path} {body} (the permission comes back under a new assignment id)"
                    ),
                    (Err(error), _) | (_, Err(error)) => format!("none: {}", error.message),
                }
            }
            Ok(GrantTarget::AppRole { principal, id }) => match app_role_path(principal, id) {
                Ok(path) => format!("Graph DELETE {path}"),
                Err(error) => format!("none: {}", error.message),
            },
        },
        Action::DisablePrincipal { principal } => match account_path(principal) {
            Err(error) => format!("none: {}", error.message),
            Ok(path) => format!("Graph PATCH {path} {}", json!({"accountEnabled": undo})),
        },
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            match credential.kind {
                CredentialKind::AzureFederated if undo => format!(
                    "Graph POST /v1.0/applications/{}/federatedIdentityCredentials {}",
                    credential.principal, state.restore
                ),
                CredentialKind::AzureFederated => format!(
                    "Graph DELETE /v1.0/applications/{}/federatedIdentityCredentials/{}",
                    credential.principal, credential.id
                ),
                CredentialKind::AzurePassword
                    if !undo && matches!(action, Action::DeleteCredential { .. }) =>
                {
                    format!(
                        "Graph POST /v1.0/{}/{}/removePassword {}",
                        state.restore["collection"]
                            .as_str()
                            .unwrap_or("applications"),
                        credential.principal,
                        json!({"keyId": credential.id.as_str()})
                    )
                }
                CredentialKind::AzureCertificate => format!("none: {CERTIFICATE_HELP}"),
                _ if undo => "none: a removed secret cannot be restored".to_owned(),
                kind => format!("none: Entra cannot deactivate an {kind}"),
            }
        }
    };
    vec![line]
}

#[cfg(test)]
mod tests {
    use lapse_sdk::{Cloud, Timestamp};

    use super::*;

    fn grant(kind: GrantKind, scope: &str, id: &str) -> Grant {
        Grant {
            id: id.into(),
            cloud: Cloud::Azure,
            scope: scope.into(),
            principal: "p".into(),
            entitlement: "Owner".to_owned(),
            entitlement_id: Some(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
                    .to_owned(),
            ),
            resource: "/subscriptions/s".to_owned(),
            kind,
            via: Via::Direct,
            created_at: Some(Timestamp::UNIX_EPOCH),
            expires_at: None,
            expiry_source: None,
            condition: None,
            privileged: false,
        }
    }

    #[test]
    fn a_dry_run_names_the_exact_arm_delete() {
        let id = "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/1e5c9a3f-7d2b-4f60-8a4e-3c9f1b7d5e02";
        let action = Action::RevokeGrant {
            grant: grant(GrantKind::RoleAssignment, "azure:/subscriptions/s", id),
        };
        assert_eq!(
            describe_apply(&action, &TargetState::default()),
            vec![format!("ARM DELETE {id}?api-version=2022-04-01")]
        );
    }

    #[test]
    fn inherited_grants_and_app_roles_outside_a_tenant_are_not_revoked_here() {
        let mut inherited = grant(GrantKind::RoleAssignment, "azure:/subscriptions/s", "x");
        inherited.via =
            Via::Inherited("/providers/Microsoft.Management/managementGroups/m".to_owned());
        let error = grant_target(&inherited).err().expect("inherited");
        assert_eq!(error.kind, ProviderErrorKind::Unsupported);
        assert!(
            error.message.contains("managementGroups/m"),
            "{}",
            error.message
        );
        // App role assignments live in the tenant; one filed under a subscription is not one.
        let misplaced = grant(GrantKind::AppRole, "azure:/subscriptions/s", "x");
        assert!(grant_target(&misplaced).is_err());
        let app_role = grant(GrantKind::AppRole, "azure:/tenants/t", "x");
        assert!(matches!(
            grant_target(&app_role),
            Ok(GrantTarget::AppRole {
                principal: "p",
                id: "x"
            })
        ));
    }

    #[test]
    fn a_pim_removal_is_a_new_admin_remove_request_at_the_instance_scope() {
        let restore =
            json!({"scope": "/subscriptions/s", "principalId": "p", "roleDefinitionId": "/r"});
        let (path, body) = arm_pim_request(&restore, true);
        assert!(path.starts_with(
            "/subscriptions/s/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/"
        ));
        assert_eq!(body["properties"]["requestType"], "AdminRemove");
        let (other, _) = arm_pim_request(&restore, true);
        assert_ne!(path, other, "each request has its own name");
    }

    #[test]
    fn only_the_service_saying_the_object_is_missing_makes_it_gone() {
        let missing = |code: &str| {
            let body = json!({"error": {"code": code, "message": "x"}});
            object_missing(&crate::error::service_error("op", "p", 404, &body))
        };
        assert!(missing("RoleAssignmentNotFound"));
        assert!(missing("Request_ResourceNotFound"));
        assert!(!missing("SubscriptionNotFound"));
        // A 404 page from a proxy or a wrong base URL carries no service code.
        let html = Value::String("<html>Not Found</html>".to_owned());
        assert!(!object_missing(&crate::error::service_error(
            "op", "p", 404, &html
        )));
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(
            segment("lAPpYvVpN0KRkAEhdxReEE8dIXfDKoxJqeuvD0GrjeU-1").expect("id"),
            "lAPpYvVpN0KRkAEhdxReEE8dIXfDKoxJqeuvD0GrjeU-1"
        );
        assert_eq!(segment("a/../b?c").expect("id"), "a%2F..%2Fb%3Fc");
        assert!(segment("..").is_err());
        assert!(segment("").is_err());
    }

    #[test]
    fn actions_find_their_tenant() {
        let tenants = vec![TenantScope {
            tenant: "contoso.onmicrosoft.com".to_owned(),
            subscriptions: vec!["s1".to_owned()],
        }];
        assert_eq!(
            tenant_of(&tenants, "azure:/subscriptions/s1"),
            "contoso.onmicrosoft.com"
        );
        assert_eq!(
            tenant_of(&tenants, "azure:/tenants/4f9b"),
            "contoso.onmicrosoft.com"
        );
        assert_eq!(tenant_of(&[], "azure:/tenants/4f9b"), "4f9b");
    }
}
