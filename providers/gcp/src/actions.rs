//! Revocations, each on one exact target: one key, one service account, one member of one
//! binding (exact role, member and condition) in the policy of a project, folder,
//! organization or service account.
//!
//! A binding member is removed by read-modify-write (Resource Manager v3 for containers, IAM v1
//! for a service account's own policy; the same loop): `getIamPolicy` at version 3, the one edit
//! on the live policy, `setIamPolicy` with the etag just read and `updateMask: bindings,etag`;
//! on 409 `ABORTED` (another writer came between) the whole cycle is repeated from the read.
//! A policy rebuilt from the snapshot is never written: the snapshot is only used to name
//! the member to remove.

use backon::{BackoffBuilder, ExponentialBuilder};
use lapse_sdk::{
    Action, ActionKind, ActionOutcome, Credential, CredentialStatus, Grant, GrantKind, Principal,
    ProviderError, ProviderErrorKind, TargetState, Usage, Via,
};
use serde_json::{Value, json};

use crate::GcpSettings;
use crate::client::{CallError, Client};
use crate::error::{GcpError, Method};
use crate::policy::{Binding, Expr, Policy};
use crate::snapshot::{self, Container, Key, PolicyHolder};

const GET_KEY: Method = Method {
    name: "iam.projects.serviceAccounts.keys.get",
    permission: "iam.serviceAccountKeys.get",
    reads: true,
};
const DISABLE_KEY: Method = Method {
    name: "iam.projects.serviceAccounts.keys.disable",
    permission: "iam.serviceAccountKeys.disable",
    reads: false,
};
const ENABLE_KEY: Method = Method {
    name: "iam.projects.serviceAccounts.keys.enable",
    permission: "iam.serviceAccountKeys.enable",
    reads: false,
};
const DELETE_KEY: Method = Method {
    name: "iam.projects.serviceAccounts.keys.delete",
    permission: "iam.serviceAccountKeys.delete",
    reads: false,
};
const GET_ACCOUNT: Method = Method {
    name: "iam.projects.serviceAccounts.get",
    permission: "iam.serviceAccounts.get",
    reads: true,
};
const DISABLE_ACCOUNT: Method = Method {
    name: "iam.projects.serviceAccounts.disable",
    permission: "iam.serviceAccounts.disable",
    reads: false,
};
const ENABLE_ACCOUNT: Method = Method {
    name: "iam.projects.serviceAccounts.enable",
    permission: "iam.serviceAccounts.enable",
    reads: false,
};
const KEY_LAST_USE: Method = Method {
    name: "policyanalyzer.projects.locations.activityTypes.activities.query(serviceAccountKeyLastAuthentication)",
    permission: "policyanalyzer.serviceAccountKeyLastAuthenticationActivities.query",
    reads: true,
};

/// The permissions each action kind needs, including the reads around it and its undo.
pub(crate) fn permissions(kind: ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::RevokeGrant => &[
            "resourcemanager.projects.getIamPolicy",
            "resourcemanager.projects.setIamPolicy",
            "resourcemanager.folders.getIamPolicy",
            "resourcemanager.folders.setIamPolicy",
            "resourcemanager.organizations.getIamPolicy",
            "resourcemanager.organizations.setIamPolicy",
            "iam.serviceAccounts.getIamPolicy",
            "iam.serviceAccounts.setIamPolicy",
        ],
        ActionKind::DeactivateCredential => &[
            "iam.serviceAccountKeys.get",
            "iam.serviceAccountKeys.disable",
            "iam.serviceAccountKeys.enable",
            "policyanalyzer.serviceAccountKeyLastAuthenticationActivities.query",
        ],
        ActionKind::DeleteCredential => &[
            "iam.serviceAccountKeys.get",
            "iam.serviceAccountKeys.delete",
            "policyanalyzer.serviceAccountKeyLastAuthenticationActivities.query",
        ],
        ActionKind::DisablePrincipal => &[
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.disable",
            "iam.serviceAccounts.enable",
        ],
    }
}

fn refuse(operation: &str, message: impl Into<String>) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Unsupported,
        operation: operation.to_owned(),
        message: message.into(),
        missing_permission: None,
    }
}

fn gone() -> TargetState {
    TargetState {
        present: false,
        revoked: true,
        ..TargetState::default()
    }
}

fn iam(settings: &GcpSettings) -> &str {
    settings.iam_url.trim_end_matches('/')
}

/// The key's resource name, checked to be one explicit key of one explicit project.
fn key_name(credential: &Credential) -> Result<&str, ProviderError> {
    let name = credential.id.as_str();
    let parts: Vec<&str> = name.split('/').collect();
    // Every segment checked: a `..`, `?`, `#`, `%` or `:` would make the URL name another
    // object (`keys/..` is the account itself) than the key planned.
    let valid = parts.len() == 6
        && parts[0] == "projects"
        && snapshot::is_project_id(parts[1])
        && parts[2] == "serviceAccounts"
        && snapshot::is_account_email(parts[3])
        && parts[4] == "keys"
        && snapshot::is_key_id(parts[5]);
    if valid {
        Ok(name)
    } else {
        Err(refuse(
            GET_KEY.name,
            format!(
                "{name} is not a service-account key name (projects/<project id>/serviceAccounts/<email>/keys/<key id>)"
            ),
        ))
    }
}

/// The account's resource name: the project its email names (`…@<project>.iam.gserviceaccount.com`),
/// else the project it was read from.
fn account_name(principal: &Principal) -> Result<String, ProviderError> {
    let Some(email) = principal.id.as_str().strip_prefix("serviceAccount:") else {
        return Err(refuse(
            DISABLE_ACCOUNT.name,
            format!(
                "{} is not a service account: only service accounts can be disabled in Google Cloud IAM",
                principal.id
            ),
        ));
    };
    if !snapshot::is_account_email(email) {
        return Err(refuse(
            DISABLE_ACCOUNT.name,
            format!("{email} is not a service-account email lapse can name in a request"),
        ));
    }
    let from_email = email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .filter(|project| !project.contains('.'));
    let from_scope = principal
        .scope
        .as_str()
        .strip_prefix("gcp:projects/")
        .filter(|project| snapshot::is_project_id(project));
    match from_email.or(from_scope) {
        Some(project) => Ok(format!("projects/{project}/serviceAccounts/{email}")),
        None => Err(refuse(
            DISABLE_ACCOUNT.name,
            format!("cannot tell which project {email} lives in: name the project explicitly"),
        )),
    }
}

/// Refuses an action whose target does not lie inside the scope its record names. The guards
/// before an apply judge that scope (named by the policy, read live with lapse's own
/// credentials, its caller protected), so the action must touch nothing outside it: a project
/// scope holds `projects/<id>` and its service accounts, a folder or organization scope its own
/// policy. A grant's id must name its resource, role and member, a key its account, so a record
/// edited in a plan or forged in a snapshot file is refused here, before any request.
fn inside_scope(action: &Action) -> Result<(), ProviderError> {
    let scope = action.scope().as_str();
    let operation = match action {
        Action::RevokeGrant { .. } => "setIamPolicy",
        Action::DeactivateCredential { .. } => DISABLE_KEY.name,
        Action::DeleteCredential { .. } => DELETE_KEY.name,
        Action::DisablePrincipal { .. } => DISABLE_ACCOUNT.name,
    };
    let outside = |what: &str| {
        refuse(
            operation,
            format!(
                "{what}, but the record names scope {scope}, which is what lapse's guards checked: lapse acts only inside the scope it judged (the record was edited or forged: take a new snapshot and plan again)"
            ),
        )
    };
    let Some((container, id)) = scope.strip_prefix("gcp:").and_then(Container::of) else {
        return Err(refuse(
            operation,
            format!("{scope} is not an explicit Google Cloud project, folder or organization"),
        ));
    };
    let own = format!("{}/{id}", container.collection());
    let project = (container == Container::Project).then_some(id);
    match action {
        Action::RevokeGrant { grant } => {
            let resource = grant.resource.as_str();
            let account_of_project = project.is_some()
                && resource
                    .strip_prefix(&format!("{own}/serviceAccounts/"))
                    .is_some_and(snapshot::is_account_email);
            if resource != own && !account_of_project {
                return Err(outside(&format!("the grant acts on {resource}")));
            }
            let named = format!("{resource}|{}|{}", grant.entitlement, grant.principal);
            let id = grant.id.as_str();
            if id != named && !id.starts_with(&format!("{named}|")) {
                return Err(refuse(
                    operation,
                    format!(
                        "the grant {id} does not name its own resource, role and member ({named}): the record was edited or forged; take a new snapshot and plan again"
                    ),
                ));
            }
        }
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            let name = key_name(credential)?;
            let parts: Vec<&str> = name.split('/').collect();
            if project != Some(parts[1]) {
                return Err(outside(&format!(
                    "the key {name} belongs to project {}",
                    parts[1]
                )));
            }
            let owner = format!("serviceAccount:{}", parts[3]);
            if credential.principal.as_str() != owner {
                return Err(refuse(
                    operation,
                    format!(
                        "the key {name} belongs to {owner}, not to {} as its record says: the record was edited or forged; take a new snapshot and plan again",
                        credential.principal
                    ),
                ));
            }
        }
        Action::DisablePrincipal { principal } => {
            let name = account_name(principal)?;
            let account_project = name.split('/').nth(1).unwrap_or_default();
            if project != Some(account_project) {
                return Err(outside(&format!(
                    "{} lives in project {account_project}",
                    principal.id
                )));
            }
        }
    }
    Ok(())
}

/// Reads an action's target live.
pub(crate) async fn read_target(
    client: &Client,
    settings: &GcpSettings,
    action: &Action,
) -> Result<TargetState, ProviderError> {
    inside_scope(action)?;
    match action {
        Action::RevokeGrant { grant } => read_grant(client, settings, grant).await,
        Action::DeactivateCredential { credential } => {
            read_key(client, settings, credential, false).await
        }
        Action::DeleteCredential { credential } => {
            read_key(client, settings, credential, true).await
        }
        Action::DisablePrincipal { principal } => read_account(client, settings, principal).await,
    }
}

async fn get_key(
    client: &Client,
    settings: &GcpSettings,
    name: &str,
) -> Result<Option<Key>, ProviderError> {
    let url = format!("{}/v1/{name}", iam(settings));
    match client
        .call::<Key>(GET_KEY, reqwest::Method::GET, &url, &[], None)
        .await
    {
        Ok(key) => Ok(Some(key)),
        Err(error) if error.status() == Some(404) => Ok(None),
        Err(error) => Err(error.into_provider_error(GET_KEY)),
    }
}

async fn read_key(
    client: &Client,
    settings: &GcpSettings,
    credential: &Credential,
    deletion: bool,
) -> Result<TargetState, ProviderError> {
    let name = key_name(credential)?;
    let Some(key) = get_key(client, settings, name).await? else {
        return Ok(gone());
    };
    let last_used = key_last_use(client, settings, name).await?;
    Ok(TargetState {
        unique_id: None,
        present: true,
        // A deletion shows only as absence; a deactivation as `disabled`.
        revoked: !deletion && key.disabled,
        restore: json!({
            "name": name,
            "disabled": key.disabled,
            "keyType": key.key_type,
        }),
        status: Some(if key.disabled {
            CredentialStatus::Inactive
        } else {
            CredentialStatus::Active
        }),
        last_used,
        privileged: None,
    })
}

/// The key's last authentication, read live from Policy Analyzer for this one key. Unknown when
/// the analyzer is not enabled or not readable, or has nothing on the key.
async fn key_last_use(
    client: &Client,
    settings: &GcpSettings,
    name: &str,
) -> Result<Usage, ProviderError> {
    let Some(project) = name.split('/').nth(1) else {
        return Ok(Usage::Unknown);
    };
    let url = format!(
        "{}/v1/projects/{project}/locations/global/activityTypes/serviceAccountKeyLastAuthentication/activities:query",
        settings.policy_analyzer_url.trim_end_matches('/')
    );
    let filter = format!("activities.fullResourceName=\"//iam.googleapis.com/{name}\"");
    let key_id = name.rsplit('/').next().unwrap_or_default();
    match client
        .call::<Value>(
            KEY_LAST_USE,
            reqwest::Method::GET,
            &url,
            &[("filter", filter.as_str()), ("pageSize", "10")],
            None,
        )
        .await
    {
        Ok(page) => Ok(page["activities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|activity| {
                activity["fullResourceName"]
                    .as_str()
                    .is_some_and(|full| full.rsplit('/').next() == Some(key_id))
            })
            .filter_map(|activity| activity["activity"]["lastAuthenticatedTime"].as_str())
            .filter_map(|text| lapse_sdk::Timestamp::parse_rfc3339(text).ok())
            .max()
            .map_or(Usage::Unknown, Usage::At)),
        Err(error) if matches!(error.status(), Some(403 | 404)) => Ok(Usage::Unknown),
        Err(error) => Err(error.into_provider_error(KEY_LAST_USE)),
    }
}

async fn read_account(
    client: &Client,
    settings: &GcpSettings,
    principal: &Principal,
) -> Result<TargetState, ProviderError> {
    let name = account_name(principal)?;
    let url = format!("{}/v1/{name}", iam(settings));
    match client
        .call::<snapshot::ServiceAccount>(GET_ACCOUNT, reqwest::Method::GET, &url, &[], None)
        .await
    {
        Ok(account) => {
            let disabled = account.disabled;
            Ok(TargetState {
                present: true,
                revoked: disabled,
                restore: json!({"name": name, "disabled": disabled}),
                unique_id: Some(account.unique_id).filter(|unique| !unique.is_empty()),
                ..TargetState::default()
            })
        }
        Err(error) if error.status() == Some(404) => Ok(gone()),
        Err(error) => Err(error.into_provider_error(GET_ACCOUNT)),
    }
}

/// The kind of resource whose policy holds a grant, refusing wildcards, names a URL would read
/// as another object, and inherited grants.
fn grant_holder(grant: &Grant) -> Result<PolicyHolder, ProviderError> {
    if grant.kind != GrantKind::IamBinding {
        return Err(refuse(
            "setIamPolicy",
            format!("{} is not a Google IAM binding member", grant.id),
        ));
    }
    if grant.via != Via::Direct {
        return Err(refuse(
            "setIamPolicy",
            "an inherited grant is changed at its source: revoke it on the folder or organization that grants it",
        ));
    }
    PolicyHolder::of(&grant.resource).ok_or_else(|| {
        refuse(
            "setIamPolicy",
            format!(
                "{} is not an explicit project, folder, organization or service account (projects/<id>, folders/<id>, organizations/<id>, projects/<id>/serviceAccounts/<email>)",
                grant.resource
            ),
        )
    })
}

/// Indices of the live bindings with the grant's role and exact condition that hold `member`.
fn holding(
    policy: &Policy,
    role: &str,
    condition: Option<(&str, Option<&str>)>,
    member: &str,
) -> Vec<usize> {
    policy
        .bindings
        .iter()
        .enumerate()
        .filter(|(_, binding)| {
            binding.role == role
                && match (&binding.condition, condition) {
                    (None, None) => true,
                    (Some(live), Some((expression, title))) => live.matches(expression, title),
                    _ => false,
                }
                && binding.members.iter().any(|held| held == member)
        })
        .map(|(index, _)| index)
        .collect()
}

fn grant_condition(grant: &Grant) -> Option<(&str, Option<&str>)> {
    grant
        .condition
        .as_ref()
        .map(|condition| (condition.expression.as_str(), condition.title.as_deref()))
}

fn ambiguous(grant: &Grant, method: Method) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Other,
        operation: method.name.to_owned(),
        message: format!(
            "{} is held through more than one binding with the same role and condition; lapse will not guess which one to change: merge the bindings, then plan again",
            grant.id
        ),
        missing_permission: None,
    }
}

async fn read_grant(
    client: &Client,
    settings: &GcpSettings,
    grant: &Grant,
) -> Result<TargetState, ProviderError> {
    let holder = grant_holder(grant)?;
    let policy = snapshot::get_policy(client, settings, holder, &grant.resource)
        .await
        .map_err(|error| error.into_provider_error(holder.get_policy()))?;
    let member = grant.principal.as_str();
    let found = holding(&policy, &grant.entitlement, grant_condition(grant), member);
    match found.as_slice() {
        [] => Ok(gone()),
        [index] => {
            let binding = &policy.bindings[*index];
            let unique_id = member_unique_id(client, settings, grant).await?;
            Ok(TargetState {
                unique_id,
                present: true,
                revoked: false,
                // The whole condition (with its description): undo re-adds the member under
                // exactly this condition.
                restore: json!({
                    "resource": grant.resource,
                    "role": binding.role,
                    "member": member,
                    "condition": binding.condition,
                }),
                ..TargetState::default()
            })
        }
        _ => Err(ambiguous(grant, holder.get_policy())),
    }
}

/// The live unique id of the service account a grant's member names, so a grant planned for
/// one account is not carried out on another re-created under its email. `None` for other
/// members, and for an account lapse cannot read (another organization's, or gone): no
/// information, never a guess.
async fn member_unique_id(
    client: &Client,
    settings: &GcpSettings,
    grant: &Grant,
) -> Result<Option<String>, ProviderError> {
    let Some(email) = grant.principal.as_str().strip_prefix("serviceAccount:") else {
        return Ok(None);
    };
    if !snapshot::is_account_email(email) {
        return Ok(None);
    }
    // The project an account's email names, else the grant's own project (a default compute
    // or App Engine account lives in the project it serves).
    let project = email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .or_else(|| {
            grant
                .resource
                .strip_prefix("projects/")
                .map(|rest| rest.split('/').next().unwrap_or(rest))
        })
        .filter(|project| snapshot::is_project_id(project));
    let Some(project) = project else {
        return Ok(None);
    };
    let url = format!(
        "{}/v1/projects/{project}/serviceAccounts/{email}",
        iam(settings)
    );
    match client
        .call::<snapshot::ServiceAccount>(GET_ACCOUNT, reqwest::Method::GET, &url, &[], None)
        .await
    {
        Ok(account) => Ok(Some(account.unique_id).filter(|unique| !unique.is_empty())),
        Err(error) if matches!(error.status(), Some(403 | 404)) => Ok(None),
        Err(error) => Err(error.into_provider_error(GET_ACCOUNT)),
    }
}

/// Carries out an action.
pub(crate) async fn apply(
    client: &Client,
    settings: &GcpSettings,
    action: &Action,
) -> Result<ActionOutcome, ProviderError> {
    if let Action::DisablePrincipal { principal } = action {
        refuse_service_agent(principal)?;
    }
    inside_scope(action)?;
    match action {
        Action::RevokeGrant { grant } => {
            let holder = grant_holder(grant)?;
            let member = grant.principal.as_str();
            let condition = grant_condition(grant);
            read_modify_write(client, settings, holder, &grant.resource, |policy| {
                let found = holding(policy, &grant.entitlement, condition, member);
                match found.as_slice() {
                    [] => Ok(false),
                    [index] => {
                        let binding = &mut policy.bindings[*index];
                        binding.members.retain(|held| held != member);
                        if binding.members.is_empty() {
                            policy.bindings.remove(*index);
                        }
                        Ok(true)
                    }
                    _ => Err(ambiguous(grant, holder.set_policy())),
                }
            })
            .await
        }
        Action::DeactivateCredential { credential } => {
            let name = checked_key(client, settings, credential).await?;
            let Some(name) = name else {
                return Ok(ActionOutcome::AlreadyDone);
            };
            if name.1 {
                return Ok(ActionOutcome::AlreadyDone);
            }
            match post(
                client,
                &format!("{}/v1/{}:disable", iam(settings), name.0),
                DISABLE_KEY,
            )
            .await
            {
                // Gone since the read: already done, once a read agrees.
                Err(error) if error.status() == Some(404) => {
                    match get_key(client, settings, &name.0).await? {
                        None => Ok(ActionOutcome::AlreadyDone),
                        Some(_) => Err(error.into_provider_error(DISABLE_KEY)),
                    }
                }
                result => done(result, DISABLE_KEY),
            }
        }
        Action::DeleteCredential { credential } => {
            let Some((name, _)) = checked_key(client, settings, credential).await? else {
                return Ok(ActionOutcome::AlreadyDone);
            };
            let url = format!("{}/v1/{name}", iam(settings));
            match client
                .send(DELETE_KEY, reqwest::Method::DELETE, &url, &[], None)
                .await
            {
                // The status says it is done; the body (`{}`) adds nothing.
                Ok(_) => Ok(ActionOutcome::Done),
                // Someone else deleted it first: already done, once a read agrees.
                Err(error) if error.status() == Some(404) => {
                    match get_key(client, settings, &name).await? {
                        None => Ok(ActionOutcome::AlreadyDone),
                        Some(_) => Err(error.into_provider_error(DELETE_KEY)),
                    }
                }
                Err(error) => Err(error.into_provider_error(DELETE_KEY)),
            }
        }
        Action::DisablePrincipal { principal } => {
            let live = read_account(client, settings, principal).await?;
            if !live.present || live.revoked {
                return Ok(ActionOutcome::AlreadyDone);
            }
            // The engine judges this too; checked again here, on the read the disable follows.
            if let (Some(planned), Some(now)) = (&principal.unique_id, &live.unique_id)
                && planned != now
            {
                return Err(ProviderError {
                    kind: ProviderErrorKind::Other,
                    operation: DISABLE_ACCOUNT.name.to_owned(),
                    message: format!(
                        "{} is another account than the one planned (unique id {now}, planned {planned}): it was deleted and re-created under the same email; take a new snapshot and plan again",
                        principal.id
                    ),
                    missing_permission: None,
                });
            }
            let name = account_name(principal)?;
            match post(
                client,
                &format!("{}/v1/{name}:disable", iam(settings)),
                DISABLE_ACCOUNT,
            )
            .await
            {
                Err(error) if error.status() == Some(404) => {
                    if read_account(client, settings, principal).await?.present {
                        Err(error.into_provider_error(DISABLE_ACCOUNT))
                    } else {
                        Ok(ActionOutcome::AlreadyDone)
                    }
                }
                result => done(result, DISABLE_ACCOUNT),
            }
        }
    }
}

/// Refuses a Google-managed service agent. The email decides too: a record read from a policy
/// or edited in a plan may not say that the account is one.
fn refuse_service_agent(principal: &Principal) -> Result<(), ProviderError> {
    let agent = principal
        .id
        .as_str()
        .strip_prefix("serviceAccount:")
        .is_some_and(crate::policy::is_service_agent);
    if principal.cloud_managed || agent {
        return Err(refuse(
            DISABLE_ACCOUNT.name,
            format!(
                "{} is a Google-managed service agent: lapse never disables it",
                principal.id
            ),
        ));
    }
    Ok(())
}

/// The live key behind a credential record, with whether it is disabled; refuses
/// Google-managed keys. `None` when it no longer exists.
async fn checked_key(
    client: &Client,
    settings: &GcpSettings,
    credential: &Credential,
) -> Result<Option<(String, bool)>, ProviderError> {
    let name = key_name(credential)?;
    if credential.cloud_managed {
        return Err(system_managed(name));
    }
    let Some(key) = get_key(client, settings, name).await? else {
        return Ok(None);
    };
    if key.is_system_managed() {
        return Err(system_managed(name));
    }
    Ok(Some((name.to_owned(), key.disabled)))
}

fn system_managed(name: &str) -> ProviderError {
    refuse(
        DISABLE_KEY.name,
        format!("{name} is a SYSTEM_MANAGED key: Google rotates it and lapse never changes it"),
    )
}

/// A `:disable`/`:enable` verb. A 404 is left to the caller: only a read can tell "gone"
/// from a request that missed its object, and an undo cannot restore what is gone.
/// The status says whether it is done; the body adds nothing.
async fn post(client: &Client, url: &str, method: Method) -> Result<(), CallError> {
    client
        .send(method, reqwest::Method::POST, url, &[], Some(&json!({})))
        .await
        .map(|_| ())
}

fn done(result: Result<(), CallError>, method: Method) -> Result<ActionOutcome, ProviderError> {
    result
        .map(|()| ActionOutcome::Done)
        .map_err(|error| error.into_provider_error(method))
}

/// One edit of a live IAM policy. `edit` changes the policy just read and says whether it
/// changed anything; nothing is written when it did not. Repeated from the read on 409, within
/// one operation's bound: a cycle is not begun, nor a pause taken, that would end past it.
async fn read_modify_write(
    client: &Client,
    settings: &GcpSettings,
    holder: PolicyHolder,
    resource: &str,
    edit: impl Fn(&mut Policy) -> Result<bool, ProviderError>,
) -> Result<ActionOutcome, ProviderError> {
    let bounds = client.bounds();
    let deadline = tokio::time::Instant::now() + bounds.operation;
    let attempts = settings.policy_write_attempts.max(1);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(bounds.first_backoff)
        .with_max_delay(bounds.max_backoff)
        .with_max_times(attempts as usize)
        .with_jitter()
        .build();
    let url = holder.url(settings, resource, "setIamPolicy");
    let mut tried = 0;
    for attempt in 1..=attempts {
        tried = attempt;
        let mut policy = snapshot::get_policy(client, settings, holder, resource)
            .await
            .map_err(|error| error.into_provider_error(holder.get_policy()))?;
        if !edit(&mut policy)? {
            return Ok(ActionOutcome::AlreadyDone);
        }
        // Version 3 keeps conditional bindings; the etag just read makes a concurrent write fail
        // with 409 instead of being overwritten.
        policy.version = 3;
        let body = json!({"policy": policy, "updateMask": "bindings,etag"});
        // The status says whether the write landed; the policy it answers is not needed.
        match client
            .send(
                holder.set_policy(),
                reqwest::Method::POST,
                &url,
                &[],
                Some(&body),
            )
            .await
        {
            Ok(_) => return Ok(ActionOutcome::Done),
            Err(CallError::Api(failure)) if failure.is_conflict() => {
                // No pause after the last attempt: nothing follows it.
                if attempt == attempts {
                    break;
                }
                match delays.next() {
                    Some(delay) if tokio::time::Instant::now() + delay < deadline => {
                        tokio::time::sleep(delay).await;
                    }
                    _ => break,
                }
            }
            Err(error) => return Err(error.into_provider_error(holder.set_policy())),
        }
    }
    Err(GcpError::Contention {
        resource: resource.to_owned(),
        attempts: tried,
    }
    .into_provider_error(holder.set_policy().name))
}

/// Puts a target back as the journaled before-state had it.
pub(crate) async fn undo(
    client: &Client,
    settings: &GcpSettings,
    action: &Action,
    before: &TargetState,
) -> Result<ActionOutcome, ProviderError> {
    inside_scope(action)?;
    if !before.present {
        return Ok(ActionOutcome::AlreadyDone);
    }
    match action {
        Action::RevokeGrant { grant } => {
            let holder = grant_holder(grant)?;
            let restore = &before.restore;
            let (Some(role), Some(member)) = (restore["role"].as_str(), restore["member"].as_str())
            else {
                return Err(refuse(
                    holder.set_policy().name,
                    "the journal holds no binding to restore",
                ));
            };
            let condition: Option<Expr> = match &restore["condition"] {
                Value::Null => None,
                value => Some(serde_json::from_value(value.clone()).map_err(|error| {
                    refuse(
                        holder.set_policy().name,
                        format!("the journaled condition cannot be read: {error}"),
                    )
                })?),
            };
            // The binding the member is restored to has the journaled condition exactly,
            // description included: one that only shares its title and expression is another
            // binding.
            let exact = |binding: &Binding| {
                binding.role == role
                    && match (&binding.condition, &condition) {
                        (None, None) => true,
                        (Some(live), Some(journaled)) => live.same_as(journaled),
                        _ => false,
                    }
            };
            read_modify_write(client, settings, holder, &grant.resource, |policy| {
                if policy.bindings.iter().any(|binding| {
                    exact(binding) && binding.members.iter().any(|held| held == member)
                }) {
                    return Ok(false);
                }
                let same = policy.bindings.iter_mut().find(|binding| exact(binding));
                match same {
                    Some(binding) => binding.members.push(member.to_owned()),
                    None => policy.bindings.push(Binding {
                        role: role.to_owned(),
                        members: vec![member.to_owned()],
                        condition: condition.clone(),
                        rest: serde_json::Map::new(),
                    }),
                }
                Ok(true)
            })
            .await
        }
        Action::DeactivateCredential { credential } => {
            let name = key_name(credential)?;
            if journaled_disabled(before, name, ENABLE_KEY)? {
                return Ok(ActionOutcome::AlreadyDone);
            }
            done(
                post(
                    client,
                    &format!("{}/v1/{name}:enable", iam(settings)),
                    ENABLE_KEY,
                )
                .await,
                ENABLE_KEY,
            )
        }
        Action::DisablePrincipal { principal } => {
            let name = account_name(principal)?;
            if journaled_disabled(before, &name, ENABLE_ACCOUNT)? {
                return Ok(ActionOutcome::AlreadyDone);
            }
            done(
                post(
                    client,
                    &format!("{}/v1/{name}:enable", iam(settings)),
                    ENABLE_ACCOUNT,
                )
                .await,
                ENABLE_ACCOUNT,
            )
        }
        Action::DeleteCredential { .. } => Err(refuse(
            DELETE_KEY.name,
            "a deleted key cannot be restored: nothing to undo",
        )),
    }
}

/// Whether the journaled before-state was already disabled. A journal that does not say, or
/// names another object, is refused: guessing "enabled" would enable what lapse never disabled.
fn journaled_disabled(
    before: &TargetState,
    name: &str,
    method: Method,
) -> Result<bool, ProviderError> {
    match (
        before.restore["name"].as_str(),
        before.restore["disabled"].as_bool(),
    ) {
        (Some(journaled), Some(disabled)) if journaled == name => Ok(disabled),
        _ => Err(refuse(
            method.name,
            format!(
                "the journal does not say whether {name} was disabled before: nothing is enabled"
            ),
        )),
    }
}

/// The calls [`apply`] makes, with their exact arguments.
pub(crate) fn describe_apply(
    settings: &GcpSettings,
    action: &Action,
    live: &TargetState,
) -> Vec<String> {
    let _ = live;
    if let Err(error) = inside_scope(action) {
        return vec![format!("none: {}", error.message)];
    }
    match action {
        Action::RevokeGrant { grant } => describe_policy_edit(settings, grant, false),
        Action::DeactivateCredential { credential } => match key_name(credential) {
            Ok(_) if credential.cloud_managed => vec![format!(
                "none: {}",
                system_managed(credential.id.as_str()).message
            )],
            Ok(name) => vec![format!("POST {}/v1/{name}:disable {{}}", iam(settings))],
            Err(error) => vec![format!("none: {}", error.message)],
        },
        Action::DeleteCredential { credential } => match key_name(credential) {
            Ok(_) if credential.cloud_managed => vec![format!(
                "none: {}",
                system_managed(credential.id.as_str()).message
            )],
            Ok(name) => vec![format!(
                "DELETE {}/v1/{name} (irreversible; tokens already minted with the key stay valid until they expire)",
                iam(settings)
            )],
            Err(error) => vec![format!("none: {}", error.message)],
        },
        Action::DisablePrincipal { principal } => match account_name(principal) {
            Ok(name) => vec![format!(
                "POST {}/v1/{name}:disable {{}} (the account's access tokens already issued are rejected too, until it is enabled again)",
                iam(settings)
            )],
            Err(error) => vec![format!("none: {}", error.message)],
        },
    }
}

/// The calls [`undo`] makes to restore `before`, refusing exactly where it refuses.
pub(crate) fn describe_undo(
    settings: &GcpSettings,
    action: &Action,
    before: &TargetState,
) -> Vec<String> {
    if let Err(error) = inside_scope(action) {
        return vec![format!("none: {}", error.message)];
    }
    if !before.present {
        return vec!["none: the target did not exist before lapse acted".to_owned()];
    }
    // Same checks as `undo`: a journal that does not say "enabled" enables nothing.
    let enable = |name: Result<String, ProviderError>, method: Method| {
        let name = match name {
            Ok(name) => name,
            Err(error) => return vec![format!("none: {}", error.message)],
        };
        match journaled_disabled(before, &name, method) {
            Ok(true) => vec!["none: it was already disabled before lapse acted".to_owned()],
            Ok(false) => vec![format!("POST {}/v1/{name}:enable {{}}", iam(settings))],
            Err(error) => vec![format!("none: {}", error.message)],
        }
    };
    match action {
        Action::RevokeGrant { grant } => {
            let restore = &before.restore;
            if restore["role"].as_str().is_none() || restore["member"].as_str().is_none() {
                return vec!["none: the journal holds no binding to restore".to_owned()];
            }
            describe_policy_edit(settings, grant, true)
        }
        Action::DeactivateCredential { credential } => {
            enable(key_name(credential).map(str::to_owned), ENABLE_KEY)
        }
        Action::DisablePrincipal { principal } => enable(account_name(principal), ENABLE_ACCOUNT),
        Action::DeleteCredential { .. } => {
            vec!["none: a deleted key cannot be restored".to_owned()]
        }
    }
}

fn describe_policy_edit(settings: &GcpSettings, grant: &Grant, undo: bool) -> Vec<String> {
    // Same refusals as `apply`/`undo`: nothing is shown that would not be sent.
    let holder = match grant_holder(grant) {
        Ok(holder) => holder,
        Err(error) => return vec![format!("none: {}", error.message)],
    };
    let resource = &grant.resource;
    let condition = grant.condition.as_ref().map_or_else(
        || "no condition".to_owned(),
        |condition| {
            format!(
                "condition {{title: {:?}, expression: {:?}}}",
                condition.title.clone().unwrap_or_default(),
                condition.expression
            )
        },
    );
    let edit = if undo {
        format!(
            "the live policy with {} added back to the binding of {} with {condition} (the binding recreated if gone)",
            grant.principal, grant.entitlement
        )
    } else {
        format!(
            "the live policy without {} in the binding of {} with {condition} (the binding dropped if left empty)",
            grant.principal, grant.entitlement
        )
    };
    let get = holder.url(settings, resource, "getIamPolicy");
    let get = match holder.version_3() {
        (_, Some(body)) => format!("POST {get} {body}"),
        (query, None) => {
            let query: Vec<String> = query
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!("POST {get}?{}", query.join("&"))
        }
    };
    vec![
        get,
        format!(
            "POST {} {{\"policy\": <{edit}, \"version\":3, \"etag\": <the etag just read>>, \"updateMask\":\"bindings,etag\"}} (the whole read-modify-write repeated on 409 ABORTED)",
            holder.url(settings, resource, "setIamPolicy")
        ),
    ]
}
