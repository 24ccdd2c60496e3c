//! Reading one account into the model.
//!
//! Order: who am I (STS), then `GetAccountAuthorizationDetails` followed to its last page, the
//! credential report, and the account's OIDC providers. Any failed read marks the account
//! incomplete with the permission it needed; nothing failed is ever read as "nothing there".

use std::collections::{BTreeMap, HashMap};

use aws_sdk_iam::types::{
    AttachedPolicy, EntityType, GroupDetail, ManagedPolicyDetail, PolicyDetail, RoleDetail, Tag,
    UserDetail,
};
use lapse_sdk::{
    Cloud, Credential, CredentialKind, CredentialStatus, ExpirySource, Grant, GrantKind, Principal,
    PrincipalKind, ScopeError, ScopeKind, ScopeStatus, Snapshot, Timestamp, Usage, Via,
};

use crate::clients::Clients;
use crate::documents;
use crate::report::{self, Report, ReportRow};
use crate::{AccountScope, AwsSettings};

/// Tag naming a principal's owner.
const OWNER_TAGS: &[&str] = &["lapse:owner", "owner"];
/// Tag giving a principal's access an end date (RFC 3339 or YYYY-MM-DD).
const EXPIRY_TAG: &str = "lapse:expires-at";
/// Tag overriding the human/workload guess for a user.
const KIND_TAG: &str = "lapse:kind";

fn now() -> Timestamp {
    Timestamp::from_offset(time::OffsetDateTime::now_utc())
}

fn timestamp(value: Option<&aws_smithy_types::DateTime>) -> Option<Timestamp> {
    value.and_then(|value| Timestamp::from_unix_seconds(value.secs()))
}

fn tags(list: &[Tag]) -> BTreeMap<String, String> {
    list.iter()
        .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
        .collect()
}

/// Accumulates one account's inventory and its errors.
struct Scan {
    account: String,
    scope: lapse_sdk::ScopeId,
    partition: String,
    errors: Vec<ScopeError>,
    principals: Vec<Principal>,
    credentials: Vec<Credential>,
    grants: Vec<Grant>,
}

impl Scan {
    fn failed(&mut self, error: &lapse_sdk::ProviderError) {
        self.errors.push(ScopeError {
            operation: error.operation.clone(),
            message: error.message.clone(),
            missing_permission: error.missing_permission.clone(),
        });
    }
}

/// Reads one account. Never fails: failures are in the scope's `errors`, and `complete` is false.
/// An account whose scan did not finish: present, incomplete, with why.
pub(crate) fn failed_scan(account: &str, message: &str) -> Snapshot {
    let taken_at = now();
    let mut snapshot = Snapshot::empty(taken_at);
    snapshot.scopes.push(ScopeStatus {
        caller_identities: Vec::new(),
        id: lapse_sdk::ScopeId::from(format!(
            "aws:{}",
            if account.is_empty() {
                "unknown"
            } else {
                account
            }
        )),
        cloud: Cloud::Aws,
        kind: ScopeKind::Account,
        taken_at,
        complete: false,
        caller: None,
        errors: vec![ScopeError {
            operation: "snapshot".to_owned(),
            message: message.to_owned(),
            missing_permission: None,
        }],
    });
    snapshot
}

pub(crate) async fn scan_account(
    settings: &AwsSettings,
    scope: &AccountScope,
    requests: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Snapshot {
    let taken_at = now();
    let clients = Clients::for_account(settings, scope, requests).await;
    let named = scope.account.clone();
    let scope_id = |account: &str| lapse_sdk::ScopeId::from(format!("aws:{account}"));
    let identity = match clients.caller().await {
        Ok(identity) => identity,
        Err(error) => {
            // Without knowing who we are, nothing else can be trusted.
            let mut snapshot = Snapshot::empty(taken_at);
            snapshot.scopes.push(ScopeStatus {
                caller_identities: Vec::new(),
                id: scope_id(if named.is_empty() { "unknown" } else { &named }),
                cloud: Cloud::Aws,
                kind: ScopeKind::Account,
                taken_at,
                complete: false,
                caller: None,
                errors: vec![ScopeError {
                    operation: error.operation,
                    message: error.message,
                    missing_permission: error.missing_permission,
                }],
            });
            return snapshot;
        }
    };
    let account = if named.is_empty() {
        identity.account.clone()
    } else {
        named
    };
    let mut scan = Scan {
        scope: scope_id(&account),
        partition: identity.arn.split(':').nth(1).unwrap_or("aws").to_owned(),
        account: account.clone(),
        errors: Vec::new(),
        principals: Vec::new(),
        credentials: Vec::new(),
        grants: Vec::new(),
    };
    let mut caller_groups = Vec::new();
    if identity.account != account {
        scan.errors.push(ScopeError {
            operation: "sts:GetCallerIdentity".to_owned(),
            message: crate::AwsError::WrongAccount {
                expected: account.clone(),
                actual: identity.account.clone(),
            }
            .to_string(),
            missing_permission: None,
        });
    } else {
        // After a timeout nothing more is asked: the endpoint that hung once would hang again
        // for each call, and the account is incomplete either way.
        let details = read_authorization_details(&clients, &mut scan).await;
        // Without the bulk read nothing else can be mapped: after any failure but a denial
        // (where naming every missing permission at once saves the operator a round), the
        // account stops here rather than wait out a bound for each read that cannot help.
        let go_on = match &details {
            Ok(_) => true,
            Err(kind) => *kind == lapse_sdk::ProviderErrorKind::Denied,
        };
        let details = details.ok();
        let federation = if go_on && clients.timed_out().is_none() {
            has_oidc_provider(&clients, &mut scan).await
        } else {
            false
        };
        let report = if go_on && clients.timed_out().is_none() {
            read_credential_report(&clients, &settings.bounds, &mut scan).await
        } else {
            None
        };
        if let Some(details) = &details {
            caller_groups = groups_of(&identity.arn, details);
            map_details(&mut scan, details, federation);
            if clients.timed_out().is_none() {
                credentials(
                    &clients,
                    &mut scan,
                    details,
                    report.as_ref(),
                    settings.exact,
                )
                .await;
            }
        }
        if clients.timed_out().is_some() {
            scan.errors.push(ScopeError {
                operation: "snapshot".to_owned(),
                message: "the rest of this account was not read after a call timed out; nothing absent from this snapshot is taken as gone".to_owned(),
                missing_permission: None,
            });
        }
    }
    let caller = caller_principal(&identity.arn, &scan.principals);
    let mut snapshot = Snapshot::empty(taken_at);
    snapshot.scopes.push(ScopeStatus {
        caller_identities: caller_groups,
        id: scan.scope.clone(),
        cloud: Cloud::Aws,
        kind: ScopeKind::Account,
        taken_at,
        complete: scan.errors.is_empty(),
        caller: Some(caller),
        errors: scan.errors,
    });
    snapshot.principals = scan.principals;
    snapshot.credentials = scan.credentials;
    snapshot.grants = scan.grants;
    snapshot
}

/// The groups an IAM user caller belongs to (their ARNs): lapse's access through them is its
/// own, so the engine protects them like the caller. A role session belongs to no group.
fn groups_of(caller: &str, details: &Details) -> Vec<String> {
    let Some(user) = details.users.iter().find(|user| user.arn() == Some(caller)) else {
        return Vec::new();
    };
    let mut groups: Vec<String> = user
        .group_list()
        .iter()
        .filter_map(|name| {
            details
                .groups
                .iter()
                .find(|group| group.group_name() == Some(name.as_str()))
                .and_then(|group| group.arn())
                .map(str::to_owned)
        })
        .collect();
    groups.sort();
    groups
}

/// The caller as a principal id: an assumed-role session becomes its role's ARN (with the
/// role's path, found in the inventory), so the role lapse runs as is protected.
fn caller_principal(arn: &str, principals: &[Principal]) -> String {
    let Some(rest) = arn.split_once(":assumed-role/").map(|(_, rest)| rest) else {
        return arn.to_owned();
    };
    let role_name = rest.split('/').next().unwrap_or(rest);
    principals
        .iter()
        .find(|principal| {
            principal.kind == PrincipalKind::Role
                && principal.id.as_str().rsplit('/').next() == Some(role_name)
        })
        .map_or_else(
            || {
                let prefix = arn.split(":sts::").next().unwrap_or("arn:aws");
                let account = arn.split(':').nth(4).unwrap_or_default();
                format!("{prefix}:iam::{account}:role/{role_name}")
            },
            |principal| principal.id.0.clone(),
        )
}

#[derive(Default)]
struct Details {
    users: Vec<UserDetail>,
    groups: Vec<GroupDetail>,
    roles: Vec<RoleDetail>,
    policies: Vec<ManagedPolicyDetail>,
}

/// `GetAccountAuthorizationDetails`, every page. Customer-managed policy documents are read
/// (to spot administrators under another name); AWS-managed ones are judged by the catalog.
async fn read_authorization_details(
    clients: &Clients,
    scan: &mut Scan,
) -> Result<Details, lapse_sdk::ProviderErrorKind> {
    let mut details = Details::default();
    let mut marker: Option<String> = None;
    let mut pages = crate::whole::Pages::new("GetAccountAuthorizationDetails");
    loop {
        let page = clients
            .read("iam", "GetAccountAuthorizationDetails", || {
                clients
                    .iam
                    .get_account_authorization_details()
                    .filter(EntityType::User)
                    .filter(EntityType::Role)
                    .filter(EntityType::Group)
                    .filter(EntityType::LocalManagedPolicy)
                    .set_marker(marker.clone())
                    .max_items(1000)
                    .send()
            })
            .await;
        match page {
            Ok(page) => {
                details
                    .users
                    .extend(page.user_detail_list().iter().cloned());
                details
                    .groups
                    .extend(page.group_detail_list().iter().cloned());
                details
                    .roles
                    .extend(page.role_detail_list().iter().cloned());
                details.policies.extend(page.policies().iter().cloned());
                match pages.next(page.is_truncated(), page.marker()) {
                    Ok(Some(next)) => marker = Some(next),
                    Ok(None) => return Ok(details),
                    Err(error) => {
                        scan.failed(&error);
                        return Err(error.kind);
                    }
                }
            }
            Err(error) => {
                scan.failed(&error);
                return Err(error.kind);
            }
        }
    }
}

async fn has_oidc_provider(clients: &Clients, scan: &mut Scan) -> bool {
    match clients
        .read("iam", "ListOpenIDConnectProviders", || {
            clients.iam.list_open_id_connect_providers().send()
        })
        .await
    {
        Ok(output) => !output.open_id_connect_provider_list().is_empty(),
        Err(error) => {
            scan.failed(&error);
            false
        }
    }
}

/// Generates (when needed) and reads the credential report. AWS answers `COMPLETE` at once when
/// a report under four hours old exists; otherwise it is polled with backoff, for at most one
/// operation bound.
async fn read_credential_report(
    clients: &Clients,
    bounds: &lapse_sdk::CallBounds,
    scan: &mut Scan,
) -> Option<Report> {
    let deadline = std::time::Instant::now() + bounds.operation;
    let mut delay = bounds.first_backoff;
    loop {
        match clients
            .read("iam", "GenerateCredentialReport", || {
                clients.iam.generate_credential_report().send()
            })
            .await
        {
            Ok(output)
                if output.state() == Some(&aws_sdk_iam::types::ReportStateType::Complete) =>
            {
                break;
            }
            Ok(_) if std::time::Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Ok(_) => {
                scan.errors.push(ScopeError {
                    operation: "iam:GenerateCredentialReport".to_owned(),
                    message: format!(
                        "the credential report was still being generated after {}s; run again later, or raise --timeout",
                        bounds.operation.as_secs()
                    ),
                    missing_permission: None,
                });
                return None;
            }
            Err(error) => {
                scan.failed(&error);
                return None;
            }
        }
    }
    match clients
        .read("iam", "GetCredentialReport", || {
            clients.iam.get_credential_report().send()
        })
        .await
    {
        Ok(output) => {
            let content = output
                .content()
                .map(aws_smithy_types::Blob::as_ref)
                .unwrap_or_default();
            match report::parse(content) {
                Ok(report) => Some(report),
                Err(error) => {
                    scan.errors.push(ScopeError {
                        operation: "iam:GetCredentialReport".to_owned(),
                        message: error.to_string(),
                        missing_permission: None,
                    });
                    None
                }
            }
        }
        Err(error) => {
            scan.failed(&error);
            None
        }
    }
}

fn owner(tags: &BTreeMap<String, String>) -> Option<String> {
    OWNER_TAGS.iter().find_map(|key| tags.get(*key).cloned())
}

fn expiry(tags: &BTreeMap<String, String>) -> Option<Timestamp> {
    tags.get(EXPIRY_TAG)
        .and_then(|value| Timestamp::parse_human(value).ok())
}

/// Principals and grants from the authorization details.
fn map_details(scan: &mut Scan, details: &Details, federation: bool) {
    let documents: HashMap<&str, bool> = details
        .policies
        .iter()
        .filter_map(|policy| {
            let document = policy
                .policy_version_list()
                .iter()
                .find(|version| version.is_default_version())
                .and_then(|version| version.document())?;
            Some((
                policy.arn()?,
                documents::grants_admin(&documents::decode(document)),
            ))
        })
        .collect();
    let group_arns: HashMap<&str, &str> = details
        .groups
        .iter()
        .filter_map(|group| Some((group.group_name()?, group.arn()?)))
        .collect();
    let account = scan.account.clone();

    for group in &details.groups {
        let Some(arn) = group.arn() else { continue };
        scan.principals.push(Principal {
            unique_id: group.group_id().map(str::to_owned),
            id: arn.into(),
            cloud: Cloud::Aws,
            scope: scan.scope.clone(),
            kind: PrincipalKind::Group,
            native_type: Some("iam-group".to_owned()),
            display_name: group.group_name().map(str::to_owned),
            created_at: timestamp(group.create_date()),
            last_activity: Usage::Unknown,
            owner: None,
            tags: BTreeMap::new(),
            enabled: true,
            cloud_managed: false,
            federation_available: false,
        });
        let policies = policy_grants(
            arn,
            group.attached_managed_policies(),
            group.group_policy_list(),
            &documents,
        );
        push_grants(scan, arn, &account, &policies, &Via::Direct, None);
    }

    for role in &details.roles {
        let Some(arn) = role.arn() else { continue };
        let role_tags = tags(role.tags());
        let path = role.path().unwrap_or("/");
        let created_at = timestamp(role.create_date());
        let last_used = timestamp(role.role_last_used().and_then(|used| used.last_used_date()));
        scan.principals.push(Principal {
            unique_id: role.role_id().map(str::to_owned),
            id: arn.into(),
            cloud: Cloud::Aws,
            scope: scan.scope.clone(),
            kind: PrincipalKind::Role,
            native_type: Some("iam-role".to_owned()),
            display_name: role.role_name().map(str::to_owned),
            created_at,
            last_activity: role_activity(last_used, created_at),
            owner: owner(&role_tags),
            cloud_managed: path.starts_with("/aws-service-role/")
                || path.starts_with("/aws-reserved/"),
            tags: role_tags.clone(),
            enabled: true,
            federation_available: false,
        });
        let policies = policy_grants(
            arn,
            role.attached_managed_policies(),
            role.role_policy_list(),
            &documents,
        );
        push_grants(
            scan,
            arn,
            &account,
            &policies,
            &Via::Direct,
            expiry(&role_tags),
        );
        if let Some(trust) = role.assume_role_policy_document() {
            for trusted in documents::trusted_principals(&documents::decode(trust), &scan.partition)
            {
                scan.grants.push(Grant {
                    id: format!("{arn}|trust|{trusted}").into(),
                    cloud: Cloud::Aws,
                    scope: scan.scope.clone(),
                    principal: trusted.as_str().into(),
                    entitlement: arn.to_owned(),
                    entitlement_id: None,
                    resource: account.clone(),
                    kind: GrantKind::RoleTrust,
                    via: Via::Direct,
                    created_at: None,
                    expires_at: None,
                    expiry_source: None,
                    condition: None,
                    privileged: false,
                });
            }
        }
    }

    for user in &details.users {
        let Some(arn) = user.arn() else { continue };
        let user_tags = tags(user.tags());
        scan.principals.push(Principal {
            unique_id: user.user_id().map(str::to_owned),
            id: arn.into(),
            cloud: Cloud::Aws,
            scope: scan.scope.clone(),
            // Settled once credentials are known: a console password means a person.
            kind: PrincipalKind::Workload,
            native_type: Some("iam-user".to_owned()),
            display_name: user.user_name().map(str::to_owned),
            created_at: timestamp(user.create_date()),
            last_activity: Usage::Unknown,
            owner: owner(&user_tags),
            tags: user_tags.clone(),
            enabled: true,
            cloud_managed: false,
            federation_available: federation,
        });
        let expires_at = expiry(&user_tags);
        let policies = policy_grants(
            arn,
            user.attached_managed_policies(),
            user.user_policy_list(),
            &documents,
        );
        push_grants(scan, arn, &account, &policies, &Via::Direct, expires_at);
        for group_name in user.group_list() {
            let Some(group_arn) = group_arns.get(group_name.as_str()).copied() else {
                continue;
            };
            scan.grants.push(Grant {
                id: format!("{arn}|member|{group_arn}").into(),
                cloud: Cloud::Aws,
                scope: scan.scope.clone(),
                principal: arn.into(),
                entitlement: group_arn.to_owned(),
                entitlement_id: None,
                resource: account.clone(),
                kind: GrantKind::GroupMembership,
                via: Via::Direct,
                created_at: None,
                expires_at,
                expiry_source: expires_at.map(|_| ExpirySource::Tag),
                condition: None,
                privileged: false,
            });
            // What the membership brings, held via the group.
            if let Some(group) = details
                .groups
                .iter()
                .find(|group| group.arn() == Some(group_arn))
            {
                let inherited = policy_grants(
                    arn,
                    group.attached_managed_policies(),
                    group.group_policy_list(),
                    &documents,
                );
                push_grants(
                    scan,
                    arn,
                    &account,
                    &inherited,
                    &Via::Group(group_arn.into()),
                    None,
                );
            }
        }
    }
}

/// A role unused in the 400 days AWS tracks, and younger than that, was never used.
fn role_activity(last_used: Option<Timestamp>, created_at: Option<Timestamp>) -> Usage {
    match (last_used, created_at) {
        (Some(at), _) => Usage::At(at),
        (None, Some(created)) if now().seconds_since(created) < 400 * 86_400 => Usage::Never,
        _ => Usage::Unknown,
    }
}

/// (entitlement, kind, privileged-by-document) for a principal's attached and inline policies.
fn policy_grants(
    _principal: &str,
    attached: &[AttachedPolicy],
    inline: &[PolicyDetail],
    documents: &HashMap<&str, bool>,
) -> Vec<(String, GrantKind, bool)> {
    let mut grants = Vec::new();
    for policy in attached {
        if let Some(arn) = policy.policy_arn() {
            grants.push((
                arn.to_owned(),
                GrantKind::ManagedPolicy,
                documents.get(arn).copied().unwrap_or(false),
            ));
        }
    }
    for policy in inline {
        if let Some(name) = policy.policy_name() {
            let admin = policy
                .policy_document()
                .is_some_and(|document| documents::grants_admin(&documents::decode(document)));
            grants.push((format!("inline:{name}"), GrantKind::InlinePolicy, admin));
        }
    }
    grants
}

fn push_grants(
    scan: &mut Scan,
    principal: &str,
    account: &str,
    policies: &[(String, GrantKind, bool)],
    via: &Via,
    expires_at: Option<Timestamp>,
) {
    for (entitlement, kind, privileged) in policies {
        let id = match via {
            Via::Direct => format!("{principal}|policy|{entitlement}"),
            Via::Group(group) => format!("{principal}|via|{group}|{entitlement}"),
            Via::Inherited(from) => format!("{principal}|via|{from}|{entitlement}"),
        };
        scan.grants.push(Grant {
            id: id.into(),
            cloud: Cloud::Aws,
            scope: scan.scope.clone(),
            principal: principal.into(),
            entitlement: entitlement.clone(),
            entitlement_id: None,
            resource: account.to_owned(),
            kind: *kind,
            via: via.clone(),
            created_at: None,
            expires_at,
            expiry_source: expires_at.map(|_| ExpirySource::Tag),
            condition: None,
            privileged: *privileged,
        });
    }
}

/// The id of an access key known only from the credential report: the user and the key's
/// creation instant, which is unique per user. The provider resolves it to the key id with one
/// `ListAccessKeys` call when an action targets it.
pub(crate) fn report_key_id(user_arn: &str, created_at: Timestamp) -> String {
    format!("{user_arn}#access-key@{created_at}")
}

/// Credentials: from the credential report where it has the user, else per user; in exact mode
/// every user's keys are listed for their ids.
async fn credentials(
    clients: &Clients,
    scan: &mut Scan,
    details: &Details,
    report: Option<&Report>,
    exact: bool,
) {
    for user in &details.users {
        if clients.timed_out().is_some() {
            break;
        }
        let (Some(arn), Some(name)) = (user.arn(), user.user_name()) else {
            continue;
        };
        let row = report.and_then(|report| report.get(arn));
        let user_created = timestamp(user.create_date());
        let mut found = Vec::new();
        // Two keys created in the same second cannot be told apart by the report: list them.
        let ambiguous = row.is_some_and(|row| {
            row.access_keys.len() == 2
                && row.access_keys[0].created_at == row.access_keys[1].created_at
        });
        match row {
            Some(row) if !exact && !ambiguous => {
                found.extend(from_report(scan, arn, row, user_created));
            }
            _ => {
                let listed = list_user_credentials(clients, scan, arn, name, row).await;
                found.extend(listed);
            }
        }
        // A console password makes the user a person, unless a tag says otherwise.
        let has_password = found
            .iter()
            .any(|credential| credential.kind == CredentialKind::AwsConsolePassword);
        if let Some(principal) = scan
            .principals
            .iter_mut()
            .find(|principal| principal.id.as_str() == arn)
        {
            principal.kind = match principal.tags.get(KIND_TAG).map(String::as_str) {
                Some("human") => PrincipalKind::Human,
                Some("workload") => PrincipalKind::Workload,
                _ if has_password => PrincipalKind::Human,
                _ => PrincipalKind::Workload,
            };
            principal.last_activity = last_activity(&found);
        }
        scan.credentials.extend(found);
    }
}

/// A user's last activity: the latest use of any credential; unknown if any credential's use is
/// unknown (a later use may hide there); never when nothing was ever used.
fn last_activity(credentials: &[Credential]) -> Usage {
    let mut latest: Option<Timestamp> = None;
    for credential in credentials
        .iter()
        .filter(|credential| credential.kind != CredentialKind::AwsSigningCertificate)
    {
        match credential.last_used {
            Usage::Unknown => return Usage::Unknown,
            Usage::Never => {}
            Usage::At(at) => latest = Some(latest.map_or(at, |current| current.max(at))),
        }
    }
    latest.map_or(Usage::Never, Usage::At)
}

fn credential(scan: &Scan, id: String, principal: &str, kind: CredentialKind) -> Credential {
    Credential {
        id: id.into(),
        principal: principal.into(),
        cloud: Cloud::Aws,
        scope: scan.scope.clone(),
        kind,
        display_name: None,
        created_at: None,
        expires_at: None,
        last_used: Usage::Unknown,
        status: CredentialStatus::Active,
        cloud_managed: false,
    }
}

fn from_report(
    scan: &Scan,
    arn: &str,
    row: &ReportRow,
    user_created: Option<Timestamp>,
) -> Vec<Credential> {
    let mut found = Vec::new();
    if row.password_enabled {
        let mut password = credential(
            scan,
            format!("{arn}#console-password"),
            arn,
            CredentialKind::AwsConsolePassword,
        );
        password.created_at = row.password_last_changed.or(user_created);
        password.last_used = row.password_last_used;
        password.display_name = Some("console password".to_owned());
        found.push(password);
    }
    for key in &row.access_keys {
        let mut access_key = credential(
            scan,
            report_key_id(arn, key.created_at),
            arn,
            CredentialKind::AwsAccessKey,
        );
        access_key.created_at = Some(key.created_at);
        access_key.last_used = key.last_used;
        access_key.status = if key.active {
            CredentialStatus::Active
        } else {
            CredentialStatus::Inactive
        };
        access_key.display_name = Some(format!("access key {}", key.slot));
        found.push(access_key);
    }
    for certificate in &row.certificates {
        let mut cert = credential(
            scan,
            format!("{arn}#signing-certificate@{}", certificate.created_at),
            arn,
            CredentialKind::AwsSigningCertificate,
        );
        cert.created_at = Some(certificate.created_at);
        cert.status = if certificate.active {
            CredentialStatus::Active
        } else {
            CredentialStatus::Inactive
        };
        cert.display_name = Some(format!("signing certificate {}", certificate.slot));
        found.push(cert);
    }
    found
}

/// Per-user reads, for users the report does not cover (or every user in exact mode): keys with
/// their ids, their last use (from the report's slot when it has the same key, else asked), and
/// the console password.
async fn list_user_credentials(
    clients: &Clients,
    scan: &mut Scan,
    arn: &str,
    name: &str,
    row: Option<&ReportRow>,
) -> Vec<Credential> {
    let mut found = Vec::new();
    match clients
        .read("iam", "ListAccessKeys", || {
            clients.iam.list_access_keys().user_name(name).send()
        })
        .await
    {
        // IAM gives a user at most two keys, so their list never pages: a page saying more
        // follow is not understood, and not taken as all there is.
        Ok(output) if output.is_truncated() => {
            scan.failed(&crate::whole::unexpected_page("ListAccessKeys"))
        }
        Ok(output) => {
            for metadata in output.access_key_metadata() {
                let Some(key_id) = metadata.access_key_id() else {
                    continue;
                };
                let created_at = timestamp(metadata.create_date());
                let mut key =
                    credential(scan, key_id.to_owned(), arn, CredentialKind::AwsAccessKey);
                key.created_at = created_at;
                key.status = match metadata.status() {
                    Some(aws_sdk_iam::types::StatusType::Inactive) => CredentialStatus::Inactive,
                    _ => CredentialStatus::Active,
                };
                // The report's slot tells this key's last use only when one slot has its
                // creation time.
                let from_report = row.and_then(|row| {
                    let mut slots = row
                        .access_keys
                        .iter()
                        .filter(|slot| Some(slot.created_at) == created_at);
                    match (slots.next(), slots.next()) {
                        (Some(slot), None) => Some(slot.last_used),
                        _ => None,
                    }
                });
                key.last_used = match from_report {
                    Some(usage) => usage,
                    None => match clients
                        .read("iam", "GetAccessKeyLastUsed", || {
                            clients
                                .iam
                                .get_access_key_last_used()
                                .access_key_id(key_id)
                                .send()
                        })
                        .await
                    {
                        Ok(output) => timestamp(
                            output
                                .access_key_last_used()
                                .and_then(|used| used.last_used_date()),
                        )
                        .map_or(Usage::Never, Usage::At),
                        Err(error) => {
                            scan.failed(&error);
                            Usage::Unknown
                        }
                    },
                };
                found.push(key);
            }
        }
        Err(error) => scan.failed(&error),
    }
    match row {
        Some(row) if row.password_enabled => {
            let mut password = credential(
                scan,
                format!("{arn}#console-password"),
                arn,
                CredentialKind::AwsConsolePassword,
            );
            password.created_at = row.password_last_changed;
            password.last_used = row.password_last_used;
            password.display_name = Some("console password".to_owned());
            found.push(password);
        }
        Some(_) => {}
        None => match clients
            .read("iam", "GetLoginProfile", || {
                clients.iam.get_login_profile().user_name(name).send()
            })
            .await
        {
            Ok(output) => {
                let mut password = credential(
                    scan,
                    format!("{arn}#console-password"),
                    arn,
                    CredentialKind::AwsConsolePassword,
                );
                password.created_at =
                    timestamp(output.login_profile().map(|profile| profile.create_date()));
                password.display_name = Some("console password".to_owned());
                found.push(password);
            }
            Err(error) if error.kind == lapse_sdk::ProviderErrorKind::NotFound => {}
            Err(error) => scan.failed(&error),
        },
    }
    found
}
