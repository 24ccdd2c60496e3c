//! Revocations, each on one exact target: one key (never "all keys of a user"), one attachment,
//! one inline policy, one membership. `NoSuchEntity` is "already done" only after a read shows
//! the target in the revoked state.

use aws_sdk_iam::types::StatusType;
use lapse_sdk::{
    Action, ActionKind, ActionOutcome, Credential, CredentialKind, CredentialStatus, Grant,
    GrantKind, ProviderError, ProviderErrorKind, TargetState, Timestamp, Usage, Via,
};
use serde_json::json;

use crate::clients::Clients;
use crate::documents;

/// The IAM permissions each action kind needs (including the reads around it).
pub(crate) fn permissions(kind: ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::RevokeGrant => &[
            "iam:GetUser",
            "iam:GetRole",
            "iam:GetGroup",
            "iam:ListAttachedUserPolicies",
            "iam:ListAttachedRolePolicies",
            "iam:ListAttachedGroupPolicies",
            "iam:DetachUserPolicy",
            "iam:DetachRolePolicy",
            "iam:DetachGroupPolicy",
            "iam:GetUserPolicy",
            "iam:GetRolePolicy",
            "iam:GetGroupPolicy",
            "iam:DeleteUserPolicy",
            "iam:DeleteRolePolicy",
            "iam:DeleteGroupPolicy",
            "iam:ListGroupsForUser",
            "iam:RemoveUserFromGroup",
        ],
        ActionKind::DeactivateCredential => &[
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:GetAccessKeyLastUsed",
            "iam:UpdateAccessKey",
        ],
        ActionKind::DeleteCredential => &[
            "iam:ListAccessKeys",
            "iam:GetAccessKeyLastUsed",
            "iam:DeleteAccessKey",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:DeleteLoginProfile",
        ],
        ActionKind::DisablePrincipal => &[],
    }
}

fn unsupported(operation: &str, message: impl Into<String>) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Unsupported,
        operation: operation.to_owned(),
        message: message.into(),
        missing_permission: None,
    }
}

/// The account and partition lapse acts in: every target must be there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acting<'a> {
    pub(crate) account: &'a str,
    pub(crate) partition: &'a str,
}

/// An IAM user, role or group ARN, read in full: a record is acted on only when every part of
/// it is the live object's.
#[derive(Debug, PartialEq, Eq)]
struct IamArn<'a> {
    partition: &'a str,
    account: &'a str,
    /// `user`, `role` or `group`.
    kind: &'a str,
    /// `/` or `/a/b/`.
    path: String,
    name: &'a str,
}

/// Characters IAM allows in user, role and group names, and in path segments.
fn iam_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn parse_arn(arn: &str) -> Option<IamArn<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let (kind, rest) = resource.split_once('/')?;
    let mut segments: Vec<&str> = rest.split('/').collect();
    let name = segments.pop()?;
    let valid = matches!(kind, "user" | "role" | "group")
        && !partition.is_empty()
        && account.len() == 12
        && account.bytes().all(|byte| byte.is_ascii_digit())
        && iam_name(name)
        && segments.iter().all(|segment| iam_name(segment));
    valid.then(|| IamArn {
        partition,
        account,
        kind,
        path: if segments.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}/", segments.join("/"))
        },
        name,
    })
}

fn refused(operation: &str, message: String) -> ProviderError {
    ProviderError {
        kind: ProviderErrorKind::Unsupported,
        operation: operation.to_owned(),
        message,
        missing_permission: None,
    }
}

/// Checks an ARN from a record (a snapshot or plan lapse did not write this minute) before
/// anything is done with it: a user, role or group in the partition and account being acted
/// in, of the kind the action needs.
fn own_entity<'a>(
    acting: Acting<'_>,
    arn: &'a str,
    kinds: &[&str],
    operation: &str,
) -> Result<IamArn<'a>, ProviderError> {
    let Some(parsed) = parse_arn(arn) else {
        return Err(refused(
            operation,
            format!(
                "refused: {arn} is not an IAM {} ARN; nothing was changed",
                kinds.join(" or ")
            ),
        ));
    };
    if !kinds.contains(&parsed.kind) {
        return Err(refused(
            operation,
            format!(
                "refused: {arn} is an IAM {}, not a {}; nothing was changed",
                parsed.kind,
                kinds.join(" or ")
            ),
        ));
    }
    if parsed.account != acting.account || parsed.partition != acting.partition {
        return Err(refused(
            operation,
            format!(
                "refused: {arn} belongs to account {} ({}), and lapse is acting in account {} ({}); a record naming another account is never acted on here. Nothing was changed",
                parsed.account, parsed.partition, acting.account, acting.partition
            ),
        ));
    }
    Ok(parsed)
}

/// A managed policy ARN an action detaches or attaches: AWS's own or this account's.
fn own_policy(acting: Acting<'_>, arn: &str, operation: &str) -> Result<(), ProviderError> {
    let mut parts = arn.splitn(6, ':');
    let fits = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource))
            if partition == acting.partition
                && (account == "aws" || account == acting.account)
                && resource.starts_with("policy/")
    );
    if fits {
        Ok(())
    } else {
        Err(refused(
            operation,
            format!(
                "refused: {arn} is not a managed policy of AWS or of account {}; nothing was changed",
                acting.account
            ),
        ))
    }
}

/// The live principal an action's record names: `None` when no principal has that name any
/// more; an error when one does under another ARN (another path: IAM names are unique per
/// account whatever the path, so the record names an object that does not exist, and the
/// object under that name is not the one judged). Its immutable id comes back for the engine
/// to compare with the plan's.
async fn live_principal(
    clients: &Clients,
    arn: &IamArn<'_>,
    record: &str,
) -> Result<Option<String>, ProviderError> {
    let answer = match arn.kind {
        "user" => clients
            .read("iam", "GetUser", || {
                clients.iam.get_user().user_name(arn.name).send()
            })
            .await
            .map(|output| {
                output
                    .user()
                    .map(|user| (user.arn().to_owned(), user.user_id().to_owned()))
            }),
        "role" => clients
            .read("iam", "GetRole", || {
                clients.iam.get_role().role_name(arn.name).send()
            })
            .await
            .map(|output| {
                output
                    .role()
                    .map(|role| (role.arn().to_owned(), role.role_id().to_owned()))
            }),
        _ => clients
            .read("iam", "GetGroup", || {
                clients
                    .iam
                    .get_group()
                    .group_name(arn.name)
                    .max_items(1)
                    .send()
            })
            .await
            .map(|output| {
                output
                    .group()
                    .map(|group| (group.arn().to_owned(), group.group_id().to_owned()))
            }),
    };
    let operation = match arn.kind {
        "user" => "iam:GetUser",
        "role" => "iam:GetRole",
        _ => "iam:GetGroup",
    };
    match answer {
        Ok(Some((live, unique_id))) if live == record && !unique_id.is_empty() => {
            Ok(Some(unique_id))
        }
        Ok(Some((live, _))) => Err(refused(
            operation,
            format!(
                "refused: the record names {record}, and the live {} named {} is {live}; nothing was changed. Take a new snapshot and plan",
                arn.kind, arn.name
            ),
        )),
        Ok(None) => Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: operation.to_owned(),
            message: format!("the answer for {record} has no {}", arn.kind),
            missing_permission: None,
        }),
        Err(error) if error.kind == ProviderErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Every check of an action's record against the account and the live objects, before any
/// other call: the principal (and a membership's group) in the account acted in, a managed
/// policy of AWS or this account, and the live principal under exactly the record's ARN.
/// `Ok(None)`: the principal is gone. `Ok(Some(id))`: its live immutable id.
async fn check_target(
    clients: &Clients,
    acting: Acting<'_>,
    action: &Action,
) -> Result<Option<String>, ProviderError> {
    let operation = action.kind().as_str();
    let principal = match action {
        Action::RevokeGrant { grant } => {
            let principal = own_entity(
                acting,
                grant.principal.as_str(),
                &["user", "role", "group"],
                operation,
            )?;
            match grant.kind {
                GrantKind::ManagedPolicy => own_policy(acting, &grant.entitlement, operation)?,
                GrantKind::GroupMembership => {
                    own_entity(acting, &grant.entitlement, &["group"], operation)?;
                }
                _ => {}
            }
            principal
        }
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            own_entity(acting, credential.principal.as_str(), &["user"], operation)?
        }
        Action::DisablePrincipal { .. } => {
            return Err(unsupported(
                "DisablePrincipal",
                "IAM has no disable for users or roles; revoke their grants and credentials instead",
            ));
        }
    };
    if action.scope().as_str() != format!("aws:{}", acting.account) {
        return Err(refused(
            operation,
            format!(
                "refused: the action is for scope {}, and lapse is acting in account {}; nothing was changed",
                action.scope(),
                acting.account
            ),
        ));
    }
    let record = match action {
        Action::RevokeGrant { grant } => grant.principal.as_str(),
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            credential.principal.as_str()
        }
        Action::DisablePrincipal { principal } => principal.id.as_str(),
    };
    live_principal(clients, &principal, record).await
}

/// What an IAM ARN names: `user`, `role` or `group`, and the name (the last path segment).
/// Used only after [`check_target`] has matched the whole ARN with the live object.
fn entity(arn: &str) -> Option<(&str, &str)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (kind, rest) = resource.split_once('/')?;
    let name = rest.rsplit('/').next()?;
    matches!(kind, "user" | "role" | "group").then_some((kind, name))
}

/// The IAM user a credential belongs to (empty when its principal is not a user: the call then
/// fails with the cloud's own error).
fn user_name(credential: &Credential) -> &str {
    entity(credential.principal.as_str()).map_or("", |(_, name)| name)
}

fn bad_target(action: &Action) -> ProviderError {
    unsupported(
        action.kind().as_str(),
        format!(
            "{} is not an IAM user, role or group target lapse can change",
            action.target_id()
        ),
    )
}

/// Reads the target's live state.
pub(crate) async fn read_target(
    clients: &Clients,
    acting: Acting<'_>,
    action: &Action,
) -> Result<TargetState, ProviderError> {
    let Some(unique_id) = check_target(clients, acting, action).await? else {
        return Ok(gone());
    };
    let state = match action {
        Action::RevokeGrant { grant } => read_grant(clients, grant).await,
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            read_credential(clients, credential).await
        }
        Action::DisablePrincipal { .. } => Err(unsupported(
            "DisablePrincipal",
            "IAM has no disable for users or roles; revoke their grants and credentials instead",
        )),
    }?;
    Ok(TargetState {
        unique_id: Some(unique_id),
        ..state
    })
}

async fn read_grant(clients: &Clients, grant: &Grant) -> Result<TargetState, ProviderError> {
    if grant.via != Via::Direct {
        return Err(unsupported(
            "RevokeGrant",
            "an inherited grant is changed at its source",
        ));
    }
    let Some((kind, name)) = entity(grant.principal.as_str()) else {
        return Err(unsupported(
            "RevokeGrant",
            format!("{} is not an IAM user, role or group", grant.principal),
        ));
    };
    let iam = &clients.iam;
    match grant.kind {
        GrantKind::ManagedPolicy => {
            let mut attached = Vec::new();
            let mut marker: Option<String> = None;
            let mut pages = crate::whole::Pages::new(match kind {
                "user" => "ListAttachedUserPolicies",
                "role" => "ListAttachedRolePolicies",
                _ => "ListAttachedGroupPolicies",
            });
            loop {
                let page = match kind {
                    "user" => clients
                        .read("iam", "ListAttachedUserPolicies", || {
                            iam.list_attached_user_policies()
                                .user_name(name)
                                .set_marker(marker.clone())
                                .send()
                        })
                        .await
                        .map(|page| {
                            (
                                page.attached_policies().to_vec(),
                                page.is_truncated(),
                                page.marker().map(str::to_owned),
                            )
                        }),
                    "role" => clients
                        .read("iam", "ListAttachedRolePolicies", || {
                            iam.list_attached_role_policies()
                                .role_name(name)
                                .set_marker(marker.clone())
                                .send()
                        })
                        .await
                        .map(|page| {
                            (
                                page.attached_policies().to_vec(),
                                page.is_truncated(),
                                page.marker().map(str::to_owned),
                            )
                        }),
                    _ => clients
                        .read("iam", "ListAttachedGroupPolicies", || {
                            iam.list_attached_group_policies()
                                .group_name(name)
                                .set_marker(marker.clone())
                                .send()
                        })
                        .await
                        .map(|page| {
                            (
                                page.attached_policies().to_vec(),
                                page.is_truncated(),
                                page.marker().map(str::to_owned),
                            )
                        }),
                };
                let (policies, truncated, next) = match page {
                    Ok(page) => page,
                    Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(gone()),
                    Err(error) => return Err(error),
                };
                attached.extend(
                    policies
                        .into_iter()
                        .filter_map(|policy| policy.policy_arn().map(str::to_owned)),
                );
                match pages.next(truncated, next.as_deref())? {
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
            let present = attached.contains(&grant.entitlement);
            Ok(TargetState {
                present,
                revoked: !present,
                restore: json!({"policy_arn": grant.entitlement}),
                ..TargetState::default()
            })
        }
        GrantKind::InlinePolicy => {
            let policy_name = grant.entitlement.trim_start_matches("inline:");
            let document = match kind {
                "user" => clients
                    .read("iam", "GetUserPolicy", || {
                        iam.get_user_policy()
                            .user_name(name)
                            .policy_name(policy_name)
                            .send()
                    })
                    .await
                    .map(|output| output.policy_document().to_owned()),
                "role" => clients
                    .read("iam", "GetRolePolicy", || {
                        iam.get_role_policy()
                            .role_name(name)
                            .policy_name(policy_name)
                            .send()
                    })
                    .await
                    .map(|output| output.policy_document().to_owned()),
                _ => clients
                    .read("iam", "GetGroupPolicy", || {
                        iam.get_group_policy()
                            .group_name(name)
                            .policy_name(policy_name)
                            .send()
                    })
                    .await
                    .map(|output| output.policy_document().to_owned()),
            };
            match document {
                // The document is kept so that undo can put it back as it was, and judged as
                // the snapshot judges it, so that a rewrite since the plan shows.
                Ok(document) => {
                    let document = documents::decode(&document);
                    Ok(TargetState {
                        present: true,
                        revoked: false,
                        privileged: Some(documents::grants_admin(&document)),
                        restore: json!({"policy_name": policy_name, "document": document}),
                        ..TargetState::default()
                    })
                }
                Err(error) if error.kind == ProviderErrorKind::NotFound => Ok(gone()),
                Err(error) => Err(error),
            }
        }
        GrantKind::GroupMembership => {
            let Some((_, group_name)) = entity(&grant.entitlement) else {
                return Err(unsupported(
                    "RevokeGrant",
                    format!("{} is not an IAM group", grant.entitlement),
                ));
            };
            let mut groups = Vec::new();
            let mut marker: Option<String> = None;
            let mut pages = crate::whole::Pages::new("ListGroupsForUser");
            loop {
                let page = match clients
                    .read("iam", "ListGroupsForUser", || {
                        iam.list_groups_for_user()
                            .user_name(name)
                            .set_marker(marker.clone())
                            .send()
                    })
                    .await
                {
                    Ok(page) => page,
                    Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(gone()),
                    Err(error) => return Err(error),
                };
                groups.extend(
                    page.groups()
                        .iter()
                        .map(|group| group.group_name().to_owned()),
                );
                match pages.next(page.is_truncated(), page.marker())? {
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
            let present = groups.iter().any(|group| group == group_name);
            Ok(TargetState {
                present,
                revoked: !present,
                restore: json!({"group_name": group_name}),
                ..TargetState::default()
            })
        }
        _ => Err(unsupported(
            "RevokeGrant",
            format!(
                "{} grants are not revoked automatically on AWS",
                grant.kind.as_str()
            ),
        )),
    }
}

fn gone() -> TargetState {
    TargetState {
        present: false,
        revoked: true,
        ..TargetState::default()
    }
}

/// The key a credential record names: by id, or (for ids taken from the credential report) by
/// its creation instant among the user's keys.
async fn find_key(
    clients: &Clients,
    credential: &Credential,
) -> Result<Option<(String, StatusType)>, ProviderError> {
    let user_arn = credential.principal.as_str();
    let Some(("user", user_name)) = entity(user_arn) else {
        return Err(unsupported(
            "UpdateAccessKey",
            format!("{user_arn} is not an IAM user"),
        ));
    };
    let listed = match clients
        .read("iam", "ListAccessKeys", || {
            clients.iam.list_access_keys().user_name(user_name).send()
        })
        .await
    {
        Ok(listed) => listed,
        Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if listed.is_truncated() {
        return Err(crate::whole::unexpected_page("ListAccessKeys"));
    }
    let by_creation = credential
        .id
        .as_str()
        .split_once("#access-key@")
        .and_then(|(_, created)| Timestamp::parse_rfc3339(created).ok());
    let matches: Vec<_> = listed
        .access_key_metadata()
        .iter()
        .filter(|key| match by_creation {
            Some(created) => {
                key.create_date().map(|date| date.secs()) == Some(created.unix_seconds())
            }
            None => key.access_key_id() == Some(credential.id.as_str()),
        })
        .collect();
    match matches.as_slice() {
        // No key at all: whatever the record named is gone.
        [] if listed.access_key_metadata().is_empty() => Ok(None),
        [] if by_creation.is_none() => Ok(None),
        // Keys exist, none created in the recorded second: the record cannot be matched to a
        // key, which is not the same as the key being gone (it may be active right there).
        [] => Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: "iam:ListAccessKeys".to_owned(),
            message: format!(
                "no access key of {user_name} was created in the second {} names (its keys were created at {}), so lapse cannot tell which key it meant; nothing was changed. Take the snapshot with --exact for key ids",
                credential.id,
                listed
                    .access_key_metadata()
                    .iter()
                    .filter_map(|key| key.create_date())
                    .filter_map(|date| Timestamp::from_unix_seconds(date.secs()))
                    .map(|at| at.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            missing_permission: None,
        }),
        [key] => Ok(Some((
            key.access_key_id().unwrap_or_default().to_owned(),
            key.status().cloned().unwrap_or(StatusType::Active),
        ))),
        // Two keys created in the same second: refuse rather than guess which one was meant.
        _ => Err(ProviderError {
            kind: ProviderErrorKind::Other,
            operation: "iam:ListAccessKeys".to_owned(),
            message: format!(
                "{} matches more than one access key of {user_name}: take the snapshot with --exact for key ids",
                credential.id
            ),
            missing_permission: None,
        }),
    }
}

async fn read_credential(
    clients: &Clients,
    credential: &Credential,
) -> Result<TargetState, ProviderError> {
    match credential.kind {
        CredentialKind::AwsAccessKey => {
            let Some((key_id, status)) = find_key(clients, credential).await? else {
                return Ok(gone());
            };
            // Last use is read live, not from the credential report (which may be hours old):
            // a key used since the plan must be seen as changed.
            let last_used = match clients
                .read("iam", "GetAccessKeyLastUsed", || {
                    clients
                        .iam
                        .get_access_key_last_used()
                        .access_key_id(&key_id)
                        .send()
                })
                .await
            {
                Ok(output) => output
                    .access_key_last_used()
                    .and_then(|used| used.last_used_date())
                    .and_then(|date| Timestamp::from_unix_seconds(date.secs()))
                    .map_or(Usage::Never, Usage::At),
                Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(gone()),
                Err(error) => return Err(error),
            };
            Ok(TargetState {
                unique_id: None,
                present: true,
                revoked: status == StatusType::Inactive,
                restore: json!({"access_key_id": key_id, "status": status.as_str()}),
                status: Some(if status == StatusType::Inactive {
                    CredentialStatus::Inactive
                } else {
                    CredentialStatus::Active
                }),
                last_used,
                privileged: None,
            })
        }
        CredentialKind::AwsConsolePassword => {
            let Some(("user", user_name)) = entity(credential.principal.as_str()) else {
                return Err(unsupported("GetLoginProfile", "not an IAM user"));
            };
            match clients
                .read("iam", "GetLoginProfile", || {
                    clients.iam.get_login_profile().user_name(user_name).send()
                })
                .await
            {
                Ok(_) => {}
                Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(gone()),
                Err(error) => return Err(error),
            }
            // The user's `PasswordLastUsed`: a sign-in since the plan must be seen.
            let last_used = match clients
                .read("iam", "GetUser", || {
                    clients.iam.get_user().user_name(user_name).send()
                })
                .await
            {
                Ok(output) => output
                    .user()
                    .and_then(|user| user.password_last_used())
                    .and_then(|date| Timestamp::from_unix_seconds(date.secs()))
                    .map_or(Usage::Never, Usage::At),
                Err(error) if error.kind == ProviderErrorKind::NotFound => return Ok(gone()),
                Err(error) => return Err(error),
            };
            Ok(TargetState {
                present: true,
                revoked: false,
                last_used,
                ..TargetState::default()
            })
        }
        other => Err(unsupported(
            "read",
            format!(
                "{} credentials are not revoked automatically yet",
                other.as_str()
            ),
        )),
    }
}

/// Carries out an action on its exact target.
pub(crate) async fn apply(
    clients: &Clients,
    acting: Acting<'_>,
    action: &Action,
) -> Result<ActionOutcome, ProviderError> {
    if check_target(clients, acting, action).await?.is_none() {
        // No principal under that name: nothing of it is left to remove (the verifying read
        // agrees or the engine says otherwise).
        return Ok(ActionOutcome::AlreadyDone);
    }
    let iam = &clients.iam;
    match action {
        Action::RevokeGrant { grant } => {
            if grant.via != Via::Direct {
                return Err(unsupported(
                    "RevokeGrant",
                    "an inherited grant is changed at its source",
                ));
            }
            let Some((kind, name)) = entity(grant.principal.as_str()) else {
                return Err(bad_target(action));
            };
            let result = match (grant.kind, kind) {
                (GrantKind::ManagedPolicy, "user") => clients
                    .write("iam", "DetachUserPolicy", || {
                        iam.detach_user_policy()
                            .user_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::ManagedPolicy, "role") => clients
                    .write("iam", "DetachRolePolicy", || {
                        iam.detach_role_policy()
                            .role_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::ManagedPolicy, _) => clients
                    .write("iam", "DetachGroupPolicy", || {
                        iam.detach_group_policy()
                            .group_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::InlinePolicy, kind) => {
                    let policy_name = grant.entitlement.trim_start_matches("inline:");
                    match kind {
                        "user" => clients
                            .write("iam", "DeleteUserPolicy", || {
                                iam.delete_user_policy()
                                    .user_name(name)
                                    .policy_name(policy_name)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                        "role" => clients
                            .write("iam", "DeleteRolePolicy", || {
                                iam.delete_role_policy()
                                    .role_name(name)
                                    .policy_name(policy_name)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                        _ => clients
                            .write("iam", "DeleteGroupPolicy", || {
                                iam.delete_group_policy()
                                    .group_name(name)
                                    .policy_name(policy_name)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                    }
                }
                (GrantKind::GroupMembership, "user") => {
                    let Some((_, group_name)) = entity(&grant.entitlement) else {
                        return Err(bad_target(action));
                    };
                    clients
                        .write("iam", "RemoveUserFromGroup", || {
                            iam.remove_user_from_group()
                                .user_name(name)
                                .group_name(group_name)
                                .send()
                        })
                        .await
                        .map(|_| ())
                }
                _ => return Err(bad_target(action)),
            };
            settle(result)
        }
        Action::DeactivateCredential { credential } => match credential.kind {
            CredentialKind::AwsAccessKey => {
                let Some((key_id, status)) = find_key(clients, credential).await? else {
                    return Ok(ActionOutcome::AlreadyDone);
                };
                if status == StatusType::Inactive {
                    return Ok(ActionOutcome::AlreadyDone);
                }
                let user_name = user_name(credential);
                settle(
                    clients
                        .write("iam", "UpdateAccessKey", || {
                            iam.update_access_key()
                                .user_name(user_name)
                                .access_key_id(&key_id)
                                .status(StatusType::Inactive)
                                .send()
                        })
                        .await
                        .map(|_| ()),
                )
            }
            CredentialKind::AwsConsolePassword => Err(unsupported(
                "DeactivateCredential",
                "a console password cannot be deactivated, only deleted (irreversible): opt in to deletion in the policy",
            )),
            other => Err(unsupported(
                "DeactivateCredential",
                format!(
                    "{} credentials are not revoked automatically yet",
                    other.as_str()
                ),
            )),
        },
        Action::DeleteCredential { credential } => match credential.kind {
            CredentialKind::AwsAccessKey => {
                let Some((key_id, _)) = find_key(clients, credential).await? else {
                    return Ok(ActionOutcome::AlreadyDone);
                };
                let user_name = user_name(credential);
                settle(
                    clients
                        .write("iam", "DeleteAccessKey", || {
                            iam.delete_access_key()
                                .user_name(user_name)
                                .access_key_id(&key_id)
                                .send()
                        })
                        .await
                        .map(|_| ()),
                )
            }
            CredentialKind::AwsConsolePassword => {
                let user_name = user_name(credential);
                settle(
                    clients
                        .write("iam", "DeleteLoginProfile", || {
                            iam.delete_login_profile().user_name(user_name).send()
                        })
                        .await
                        .map(|_| ()),
                )
            }
            other => Err(unsupported(
                "DeleteCredential",
                format!(
                    "{} credentials are not deleted automatically yet",
                    other.as_str()
                ),
            )),
        },
        Action::DisablePrincipal { .. } => Err(unsupported(
            "DisablePrincipal",
            "IAM has no disable for users or roles; revoke their grants and credentials instead",
        )),
    }
}

/// `NoSuchEntity` on a removal means someone else already removed it; the caller's verifying
/// read confirms.
fn settle(result: Result<(), ProviderError>) -> Result<ActionOutcome, ProviderError> {
    match result {
        Ok(()) => Ok(ActionOutcome::Done),
        Err(error) if error.kind == ProviderErrorKind::NotFound => Ok(ActionOutcome::AlreadyDone),
        Err(error) => Err(error),
    }
}

/// Puts a target back as the journaled before-state had it.
pub(crate) async fn undo(
    clients: &Clients,
    acting: Acting<'_>,
    action: &Action,
    before: &TargetState,
) -> Result<ActionOutcome, ProviderError> {
    let iam = &clients.iam;
    if !before.present {
        return Ok(ActionOutcome::AlreadyDone);
    }
    match check_target(clients, acting, action).await? {
        None => {
            return Err(ProviderError {
                kind: ProviderErrorKind::NotFound,
                operation: action.kind().as_str().to_owned(),
                message: format!(
                    "cannot restore: no principal {} exists any more",
                    action_principal(action)
                ),
                missing_permission: None,
            });
        }
        // A principal deleted and re-created under the same name is someone else: what the
        // journal restores was the old one's.
        Some(live)
            if before
                .unique_id
                .as_ref()
                .is_some_and(|journaled| *journaled != live) =>
        {
            return Err(refused(
                action.kind().as_str(),
                format!(
                    "refused: {} was deleted and re-created since the change (id {} then, {live} now); nothing was restored to the newcomer",
                    action_principal(action),
                    before.unique_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        Some(_) => {}
    }
    match action {
        Action::RevokeGrant { grant } => {
            let Some((kind, name)) = entity(grant.principal.as_str()) else {
                return Err(bad_target(action));
            };
            let result = match (grant.kind, kind) {
                (GrantKind::ManagedPolicy, "user") => clients
                    .write("iam", "AttachUserPolicy", || {
                        iam.attach_user_policy()
                            .user_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::ManagedPolicy, "role") => clients
                    .write("iam", "AttachRolePolicy", || {
                        iam.attach_role_policy()
                            .role_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::ManagedPolicy, _) => clients
                    .write("iam", "AttachGroupPolicy", || {
                        iam.attach_group_policy()
                            .group_name(name)
                            .policy_arn(&grant.entitlement)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                (GrantKind::InlinePolicy, kind) => {
                    let policy_name = grant.entitlement.trim_start_matches("inline:");
                    let Some(document) = before
                        .restore
                        .get("document")
                        .and_then(serde_json::Value::as_str)
                    else {
                        return Err(unsupported(
                            "PutPolicy",
                            "the journal holds no document to restore",
                        ));
                    };
                    match kind {
                        "user" => clients
                            .write("iam", "PutUserPolicy", || {
                                iam.put_user_policy()
                                    .user_name(name)
                                    .policy_name(policy_name)
                                    .policy_document(document)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                        "role" => clients
                            .write("iam", "PutRolePolicy", || {
                                iam.put_role_policy()
                                    .role_name(name)
                                    .policy_name(policy_name)
                                    .policy_document(document)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                        _ => clients
                            .write("iam", "PutGroupPolicy", || {
                                iam.put_group_policy()
                                    .group_name(name)
                                    .policy_name(policy_name)
                                    .policy_document(document)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                    }
                }
                (GrantKind::GroupMembership, "user") => {
                    let Some((_, group_name)) = entity(&grant.entitlement) else {
                        return Err(bad_target(action));
                    };
                    clients
                        .write("iam", "AddUserToGroup", || {
                            iam.add_user_to_group()
                                .user_name(name)
                                .group_name(group_name)
                                .send()
                        })
                        .await
                        .map(|_| ())
                }
                _ => return Err(bad_target(action)),
            };
            result.map(|()| ActionOutcome::Done)
        }
        Action::DeactivateCredential { credential }
            if credential.kind == CredentialKind::AwsAccessKey =>
        {
            let Some(key_id) = before
                .restore
                .get("access_key_id")
                .and_then(serde_json::Value::as_str)
            else {
                return Err(unsupported(
                    "UpdateAccessKey",
                    "the journal holds no key id to restore",
                ));
            };
            if before
                .restore
                .get("status")
                .and_then(serde_json::Value::as_str)
                != Some("Active")
            {
                return Ok(ActionOutcome::AlreadyDone);
            }
            let user_name = user_name(credential);
            clients
                .write("iam", "UpdateAccessKey", || {
                    iam.update_access_key()
                        .user_name(user_name)
                        .access_key_id(key_id)
                        .status(StatusType::Active)
                        .send()
                })
                .await
                .map(|_| ActionOutcome::Done)
        }
        _ => Err(unsupported(
            action.kind().as_str(),
            "this action is not reversible: nothing to undo",
        )),
    }
}

fn action_principal(action: &Action) -> &str {
    match action {
        Action::RevokeGrant { grant } => grant.principal.as_str(),
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            credential.principal.as_str()
        }
        Action::DisablePrincipal { principal } => principal.id.as_str(),
    }
}

/// The mutating call [`apply`] makes for an action, with its exact arguments: what a dry run
/// shows. `live` names the exact key when the record names it by creation time.
pub(crate) fn describe_apply(action: &Action, live: &TargetState) -> Vec<String> {
    describe(action, live, false)
}

/// The call [`undo`] makes to restore `before`.
pub(crate) fn describe_undo(action: &Action, before: &TargetState) -> Vec<String> {
    describe(action, before, true)
}

fn describe(action: &Action, state: &TargetState, undo: bool) -> Vec<String> {
    let restore_text = |key: &str| {
        state
            .restore
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let call = match action {
        Action::RevokeGrant { grant } => {
            let Some((kind, name)) = entity(grant.principal.as_str()) else {
                return vec![format!("none: {}", bad_target(action))];
            };
            let holder = match kind {
                "user" => "User",
                "role" => "Role",
                _ => "Group",
            };
            match grant.kind {
                GrantKind::ManagedPolicy => format!(
                    "iam:{}{holder}Policy {holder}Name={name} PolicyArn={}",
                    if undo { "Attach" } else { "Detach" },
                    grant.entitlement
                ),
                GrantKind::InlinePolicy => format!(
                    "iam:{}{holder}Policy {holder}Name={name} PolicyName={}{}",
                    if undo { "Put" } else { "Delete" },
                    grant.entitlement.trim_start_matches("inline:"),
                    if undo {
                        " PolicyDocument=<the journaled document>"
                    } else {
                        ""
                    }
                ),
                GrantKind::GroupMembership => format!(
                    "iam:{} UserName={name} GroupName={}",
                    if undo {
                        "AddUserToGroup"
                    } else {
                        "RemoveUserFromGroup"
                    },
                    entity(&grant.entitlement)
                        .map_or(grant.entitlement.as_str(), |(_, group)| group)
                ),
                _ => return vec![format!("none: {}", bad_target(action))],
            }
        }
        Action::DeactivateCredential { credential } | Action::DeleteCredential { credential } => {
            let user = entity(credential.principal.as_str()).map_or("?", |(_, name)| name);
            let key = restore_text("access_key_id").unwrap_or_else(|| credential.id.0.clone());
            match (action.kind(), credential.kind, undo) {
                (ActionKind::DeactivateCredential, CredentialKind::AwsAccessKey, false) => {
                    format!("iam:UpdateAccessKey UserName={user} AccessKeyId={key} Status=Inactive")
                }
                (ActionKind::DeactivateCredential, CredentialKind::AwsAccessKey, true) => {
                    format!("iam:UpdateAccessKey UserName={user} AccessKeyId={key} Status=Active")
                }
                (ActionKind::DeleteCredential, CredentialKind::AwsAccessKey, false) => {
                    format!("iam:DeleteAccessKey UserName={user} AccessKeyId={key}")
                }
                (ActionKind::DeleteCredential, CredentialKind::AwsConsolePassword, false) => {
                    format!("iam:DeleteLoginProfile UserName={user}")
                }
                (_, _, true) => "none: not reversible".to_owned(),
                _ => format!(
                    "none: {} credentials are not changed automatically",
                    credential.kind.as_str()
                ),
            }
        }
        Action::DisablePrincipal { .. } => "none: IAM has no disable for users or roles".to_owned(),
    };
    vec![call]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_read_in_full() {
        let arn = parse_arn("arn:aws:iam::111122223333:role/x/OrganizationAccountAccessRole")
            .expect("a role ARN");
        assert_eq!(
            arn,
            IamArn {
                partition: "aws",
                account: "111122223333",
                kind: "role",
                path: "/x/".to_owned(),
                name: "OrganizationAccountAccessRole",
            }
        );
        assert_eq!(
            parse_arn("arn:aws-cn:iam::111122223333:user/bob").map(|arn| arn.path),
            Some("/".to_owned())
        );
        for bad in [
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role//x",
            "arn:aws:iam::1:role/x",
            "arn:aws:iam:us-east-1:111122223333:role/x",
            "arn:aws:sts::111122223333:assumed-role/x/session",
            "arn:aws:iam::111122223333:policy/x",
            "arn:aws:iam::111122223333:role/x?y",
            "role/x",
        ] {
            assert_eq!(parse_arn(bad), None, "{bad}");
        }
        let acting = Acting {
            account: "111122223333",
            partition: "aws",
        };
        assert!(own_entity(acting, "arn:aws:iam::444455556666:role/x", &["role"], "t").is_err());
        assert!(
            own_entity(
                acting,
                "arn:aws-cn:iam::111122223333:role/x",
                &["role"],
                "t"
            )
            .is_err()
        );
        assert!(own_entity(acting, "arn:aws:iam::111122223333:group/x", &["role"], "t").is_err());
        assert!(own_entity(acting, "arn:aws:iam::111122223333:role/a/x", &["role"], "t").is_ok());
        assert!(own_policy(acting, "arn:aws:iam::aws:policy/ReadOnlyAccess", "t").is_ok());
        assert!(own_policy(acting, "arn:aws:iam::111122223333:policy/p/q", "t").is_ok());
        assert!(own_policy(acting, "arn:aws:iam::444455556666:policy/q", "t").is_err());
    }

    #[test]
    fn arns_name_their_entity() {
        assert_eq!(
            entity("arn:aws:iam::1:user/path/to/bob"),
            Some(("user", "bob"))
        );
        assert_eq!(entity("arn:aws:iam::1:role/ci"), Some(("role", "ci")));
        assert_eq!(
            entity("arn:aws:iam::1:group/admins"),
            Some(("group", "admins"))
        );
        assert_eq!(entity("arn:aws:iam::1:root"), None);
        assert_eq!(entity("arn:aws:iam::aws:policy/AdministratorAccess"), None);
    }
}
